//! The Raft log in sled, with durable acknowledgement.
//!
//! Entries live in tree `log` keyed by big-endian index; the vote, the committed
//! log id and the last purged log id live in tree `raft`. `append` writes the
//! entries and hands the `LogFlushed` callback to the [`Flusher`], which
//! acknowledges only after `sled::Db::flush` *and* an `fdatasync` of sled's data
//! file (sled's own flush uses `sync_file_range`, which leaves the disk cache dirty).
//! Concurrent flush requests share one flush (group fsync).

use crate::log_cache::LogCache;
use crate::types::{decode, encode, LogId, NodeId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"last_purged";

type Done = Box<dyn FnOnce(std::io::Result<()>) + Send>;

/// Fault hooks of a [`Flusher`], for tests and chaos runs.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Hold every flush while this file exists.
    pub hold: Option<PathBuf>,
    /// A stalled disk: every `fdatasync` (after sled's flush, before any
    /// acknowledgement) waits while this file exists. Set from
    /// `FERRY_FAULT_DIR` in every build ([`crate::fault::stall_file`]).
    pub stall: Option<PathBuf>,
    /// Emulate a power failure's view of the disk: every sync of the data file
    /// also copies it to `db.synced` ([`SYNC_IMAGE`]), and every synced blob
    /// is copied to `blobs.synced/` ([`BLOB_IMAGE`]), so a test can put back
    /// exactly what the syncs made durable ([`restore_sync_image`]).
    pub sync_image: bool,
}

/// The file name, beside sled's `db`, of the image of its last sync.
pub const SYNC_IMAGE: &str = "db.synced";

/// The directory, beside sled's `blobs/`, holding a copy of each blob as of its
/// sync. While it exists (and only in builds with the `failpoints` feature),
/// the vendored sled copies every blob there when `write_blob` has synced it
/// (`ferry_sync_image` feature of `vendor/sled`), and [`crate::open_db`] images
/// what it syncs on open.
pub const BLOB_IMAGE: &str = "blobs.synced";

/// Whether the store in `dir` keeps power-failure images (see [`Faults`]).
pub fn keeps_sync_image(dir: &Path) -> bool {
    cfg!(feature = "failpoints") && dir.join(BLOB_IMAGE).is_dir()
}

/// Copies `from` to `to` through a temporary name, so `to` is always whole.
fn copy_whole(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)
}

/// Records `<dir>/db` as synced: the image a power failure would leave.
pub(crate) fn image_db(dir: &Path) -> std::io::Result<()> {
    copy_whole(&dir.join("db"), &dir.join(SYNC_IMAGE))
}

/// Records the blob at `path` (in `<dir>/blobs/`) as synced.
pub(crate) fn image_blob(dir: &Path, path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("blob path {}", path.display())))?;
    copy_whole(path, &dir.join(BLOB_IMAGE).join(name))
}

/// Puts a store that kept power-failure images (its process gone, SIGKILLed)
/// back to what a power failure would have left of it: `db` as of its last
/// sync (empty if it never was), and only the blobs that were synced. The
/// images stay, so it can happen again.
pub fn restore_sync_image(dir: &Path) -> std::io::Result<()> {
    let image = dir.join(SYNC_IMAGE);
    if image.exists() {
        copy_whole(&image, &dir.join("db"))?;
    } else {
        std::fs::File::create(dir.join("db"))?;
    }
    let blobs = dir.join("blobs");
    if blobs.exists() {
        std::fs::remove_dir_all(&blobs)?;
    }
    std::fs::create_dir_all(&blobs)?;
    if let Ok(entries) = std::fs::read_dir(dir.join(BLOB_IMAGE)) {
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // `.content`: bytes synced, entry not (yet): gone after power loss.
            let n = name.to_string_lossy();
            if !n.ends_with(".tmp") && !n.ends_with(".content") {
                std::fs::copy(entry.path(), blobs.join(name))?;
            }
        }
    }
    Ok(())
}

/// sled's data file, whose `sync_data` is the durability barrier of every
/// acknowledgement.
struct DataFile {
    file: std::fs::File,
    /// Its path (for the `"fsync"` fault point).
    path: PathBuf,
    /// The store directory, when emulating power failures.
    image: Option<PathBuf>,
    /// Waits while this file exists before each sync (a stalled disk).
    stall: Option<PathBuf>,
}

impl DataFile {
    /// `fdatasync` (after a stall, if one is injected); then, emulating power
    /// failures, the image of what it made durable.
    fn sync_data(&self) -> std::io::Result<()> {
        if let Some(stall) = &self.stall {
            crate::fault::wait_stall(stall);
        }
        self.file.sync_data()?;
        crate::fault::hit("fsync", &self.path);
        if let Some(dir) = &self.image {
            image_db(dir)?;
        }
        Ok(())
    }
}

/// A thread that makes sled durable and then runs the callbacks waiting for it.
#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::Sender<Done>,
    stopped: tokio::sync::watch::Receiver<bool>,
    /// Flush requests made so far, and how many of them have completed.
    requested: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
    /// The store directory (`<data dir>/store`).
    dir: Arc<Path>,
}

impl Flusher {
    /// Starts the flusher for `db`, whose data file is `<dir>/db`.
    ///
    /// Fault injection, compiled in only with the `failpoints` feature (the
    /// test builds turn it on; release builds have no such hook): with
    /// `FERRY_FAULT_HOLD_FLUSH` set in the environment, the flusher holds every
    /// flush while a file `hold-flush` exists beside `dir` (in the master's data
    /// dir), so a test can let a master append entries that a SIGKILL then
    /// takes away.
    ///
    /// With `FERRY_FAULT_SYNC_IMAGE` set (same feature), every sync also copies
    /// the data file to `db.synced` beside it, and sled copies each blob it
    /// synced to `blobs.synced/`: what a power failure would leave. A test puts
    /// those images back after a SIGKILL ([`restore_sync_image`]).
    ///
    /// In every build, with `FERRY_FAULT_DIR` set, each `fdatasync` waits while
    /// `<FERRY_FAULT_DIR>/stall-fsync` exists (`ferry chaos`'s disk stalls).
    pub fn start(db: sled::Db, dir: &Path) -> crate::Result<Flusher> {
        let stall = crate::fault::stall_file().map(Path::to_path_buf);
        #[cfg(feature = "failpoints")]
        let faults = Faults {
            hold: std::env::var_os("FERRY_FAULT_HOLD_FLUSH")
                .map(|_| dir.with_file_name("hold-flush")),
            stall,
            sync_image: std::env::var_os("FERRY_FAULT_SYNC_IMAGE").is_some(),
        };
        #[cfg(not(feature = "failpoints"))]
        let faults = Faults {
            stall,
            ..Faults::default()
        };
        Flusher::start_with(db, dir, faults)
    }

    /// [`Flusher::start`] with the fault hooks given directly.
    pub fn start_with(db: sled::Db, dir: &Path, faults: Faults) -> crate::Result<Flusher> {
        let Faults {
            hold,
            stall,
            sync_image,
        } = faults;
        if sync_image {
            std::fs::create_dir_all(dir.join(BLOB_IMAGE))?;
        }
        let data = DataFile {
            file: std::fs::File::open(dir.join("db"))?,
            path: dir.join("db"),
            image: sync_image.then(|| dir.to_path_buf()),
            stall,
        };
        let (tx, rx) = mpsc::channel::<Done>();
        let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
        let requested = Arc::new(AtomicU64::new(0));
        let completed = Arc::new(AtomicU64::new(0));
        let done_count = completed.clone();
        std::thread::Builder::new()
            .name("ferry-flusher".into())
            .spawn(move || {
                let signal = StopSignal(stopped_tx);
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    if let Some(hold) = &hold {
                        while hold.exists() {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    }
                    waiting.extend(rx.try_iter());
                    let res = db
                        .flush()
                        .map(|_| ())
                        .map_err(std::io::Error::other)
                        .and_then(|_| data.sync_data());
                    if let Err(e) = &res {
                        tracing::error!(error = %e, "log flush failed");
                    }
                    // Counted before the callbacks run: a callback wakes a task that
                    // may call `settle` at once, which must not see this flush as
                    // outstanding and start another.
                    done_count.fetch_add(waiting.len() as u64, Ordering::Release);
                    for done in waiting {
                        done(match &res {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
                // Every Flusher handle is gone: release the database, then say so.
                drop(db);
                drop(signal);
            })?;
        Ok(Flusher {
            tx,
            stopped,
            requested,
            completed,
            dir: dir.into(),
        })
    }

    /// The store directory this flusher makes durable.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Tells when every `Flusher` handle is dropped and the thread has released its
    /// database handle. Holding it does not keep the thread alive.
    pub fn stopped(&self) -> FlusherStopped {
        FlusherStopped(self.stopped.clone())
    }

    /// Runs `done` once everything written so far is on disk.
    pub fn after_flush(&self, done: impl FnOnce(std::io::Result<()>) + Send + 'static) {
        self.requested.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(done)) = self.tx.send(Box::new(done)) {
            done(Err(std::io::Error::other("flusher stopped")));
        }
    }

    /// Waits until every flush requested so far has completed (at once when none
    /// is outstanding). A follower calls it before it acknowledges entries: some
    /// of the entries it matches may be its own appends from when it led, which
    /// the leader does not wait for (see `vendor/openraft/FERRY-PATCH.md`).
    pub async fn settle(&self) -> std::io::Result<()> {
        if self.completed.load(Ordering::Acquire) < self.requested.load(Ordering::Acquire) {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Blocks the calling thread until everything written so far is on disk.
    pub fn flush_blocking(&self) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        self.after_flush(move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("flusher stopped")))
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_flush(move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("flusher stopped")))
    }
}

/// See [`Flusher::stopped`].
#[derive(Clone)]
pub struct FlusherStopped(tokio::sync::watch::Receiver<bool>);

impl FlusherStopped {
    /// Waits until the flusher thread has released the database.
    pub async fn wait(&self) {
        let _ = self.0.clone().wait_for(|s| *s).await;
    }
}

/// Announces the flusher thread's end when dropped (also if the thread panics).
struct StopSignal(tokio::sync::watch::Sender<bool>);

impl Drop for StopSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The sled-backed Raft log.
#[derive(Clone)]
pub struct LogStore {
    log: sled::Tree,
    meta: sled::Tree,
    flusher: Flusher,
    committed: Arc<AtomicU64>,
    cache: Arc<Mutex<LogCache>>,
    /// The state machine's applied index: the log is never purged past it.
    applied: Option<tokio::sync::watch::Receiver<u64>>,
}

/// How long a purge waits for the state machine to reach the purge point (a
/// snapshot install in progress) before Raft is stopped with an error.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl LogStore {
    /// Opens the log trees in `db`.
    pub fn open(db: &sled::Db, flusher: Flusher) -> crate::Result<LogStore> {
        let store = LogStore {
            log: db.open_tree("log")?,
            meta: db.open_tree("raft")?,
            flusher,
            committed: Arc::new(AtomicU64::new(0)),
            cache: Arc::default(),
            applied: None,
        };
        if let Some(c) = store.get_meta::<LogId>(COMMITTED)? {
            store.committed.store(c.index, Ordering::Relaxed);
        }
        let purged = store.get_meta::<LogId>(PURGED)?.map(|l| l.index);
        let last = store
            .log
            .last()?
            .map(|(k, _)| u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])));
        tracing::info!(
            ?purged,
            ?last,
            committed = store.committed.load(Ordering::Relaxed),
            "log opened"
        );
        Ok(store)
    }

    /// Purges wait until the state machine has applied what they remove.
    ///
    /// openraft issues the purge that follows a snapshot install without waiting
    /// for the install; a crash between the purge and the state machine's switch
    /// to the snapshot would leave an old state machine and a log that starts
    /// after the snapshot, so no entry could ever be applied again.
    pub fn purge_only_applied(&mut self, applied: tokio::sync::watch::Receiver<u64>) {
        self.applied = Some(applied);
    }

    /// Waits (up to [`PURGE_WAIT`]) until the state machine has applied `index`.
    async fn wait_applied(&mut self, index: u64) -> Result<(), StorageError> {
        let Some(rx) = self.applied.as_mut() else {
            return Ok(());
        };
        let reached = tokio::time::timeout(PURGE_WAIT, rx.wait_for(|a| *a >= index))
            .await
            .map(|r| r.map(|_| ()));
        match reached {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(write_err("the state machine closed before a purge")),
            Err(_) => Err(write_err(format!(
                "purge up to {index} waited {PURGE_WAIT:?} for the state machine, which \
                 applied only {}",
                *rx.borrow()
            ))),
        }
    }

    /// Gives up a leadership this master held when it stopped: a saved vote
    /// committed for `id` itself becomes an uncommitted one, so openraft starts as
    /// a follower and the master must win an election (in a new term) to lead.
    ///
    /// openraft would otherwise resume leading the same term at once, appending
    /// from its own last log entry. ferry's leader replicates entries before its
    /// own copy is flushed, so a crash can take from it entries its followers
    /// already hold; resuming the term would then assign the same log ids to
    /// different entries, and followers that hold the old ones would skip the new
    /// ones as already present (the chaos soak found this as diverged members).
    pub async fn resign_leadership(&mut self, id: NodeId) -> crate::Result<()> {
        let Some(vote) = self.get_meta::<Vote<NodeId>>(VOTE)? else {
            return Ok(());
        };
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(id) {
            return Ok(());
        }
        let term = vote.leader_id().term;
        tracing::info!(
            term,
            "led term {term} when stopped; standing for election again"
        );
        self.save_vote(&Vote::new(term, id))
            .await
            .map_err(|e| crate::Error::Raft(e.to_string()))
    }

    /// The last committed index this member has recorded.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> crate::Result<Option<T>> {
        match self.meta.get(key)? {
            Some(v) => Ok(Some(decode(&v, "raft meta")?)),
            None => Ok(None),
        }
    }

    /// Writes `e` as `append` does, without a flush callback (tests of code that
    /// reads the log offline).
    #[cfg(test)]
    pub(crate) fn insert_entry(&self, e: &Entry<TypeConfig>) -> crate::Result<()> {
        self.log.insert(e.log_id.index.to_be_bytes(), encode(e))?;
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LogCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bounds(range: impl RangeBounds<u64>) -> (Bound<[u8; 8]>, Bound<[u8; 8]>) {
        let map = |b: Bound<&u64>| match b {
            Bound::Included(i) => Bound::Included(i.to_be_bytes()),
            Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        (map(range.start_bound()), map(range.end_bound()))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        if let Some(hit) = self.cache().get(&range) {
            return Ok(hit);
        }
        let mut out = Vec::new();
        for item in self.log.range(Self::bounds(range)) {
            let (_, v) = item.map_err(read_err)?;
            out.push(decode(&v, "log entry").map_err(read_err)?);
        }
        Ok(out)
    }
}

impl LogStore {
    /// The id of the last entry in the log (appended, flushed or not), or of
    /// the last purged one when the log is empty.
    pub fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last().map_err(read_err)? {
            Some((_, v)) => Ok(Some(
                decode::<Entry<TypeConfig>>(&v, "log entry")
                    .map_err(read_err)?
                    .log_id,
            )),
            None => self.get_meta(PURGED).map_err(read_err),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(PURGED).map_err(read_err)?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: self.last_log_id()?,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote_err = |e: String| io_err(ErrorSubject::Vote, ErrorVerb::Write, e);
        self.meta
            .insert(VOTE, encode(vote))
            .map_err(|e| vote_err(e.to_string()))?;
        self.flusher
            .flush()
            .await
            .map_err(|e| vote_err(e.to_string()))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = &committed {
            self.committed.store(c.index, Ordering::Relaxed);
            // Not flushed: a lost committed index is re-learned from the leader.
            self.meta.insert(COMMITTED, encode(c)).map_err(write_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(COMMITTED).map_err(read_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // In index order: sled recovers a prefix of its writes, so a crash before
        // the flush leaves a prefix of these entries, which is a valid log.
        for e in entries {
            tracing::trace!(log_id = %e.log_id, "append");
            let bytes = encode(&e);
            let size = bytes.len();
            self.log
                .insert(e.log_id.index.to_be_bytes(), bytes)
                .map_err(write_err)?;
            self.cache().push(e, size);
        }
        self.flusher
            .after_flush(move |res| callback.log_io_completed(res));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::info!(from = log_id.index, "truncating the log");
        self.cache().truncate(log_id.index);
        // Newest first, so a crash part way leaves a log without holes.
        for item in self.log.range(log_id.index.to_be_bytes()..).rev() {
            let (k, _) = item.map_err(read_err)?;
            self.log.remove(k).map_err(write_err)?;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(upto = log_id.index, "purging the log");
        self.wait_applied(log_id.index).await?;
        // Purged entries are covered by a snapshot of the state machine; make the
        // state machine (same database) durable before the entries disappear.
        self.meta
            .insert(PURGED, encode(&log_id))
            .map_err(write_err)?;
        self.flusher.flush().await.map_err(write_err)?;
        self.cache().purge(log_id.index);
        // The entries go on a blocking thread, not awaited: removing the ten
        // thousand entries a snapshot covers holds a thread for most of a
        // second, and Raft's core, which awaits this call, also sends and
        // answers heartbeats. `PURGED` is durable already, so entries still
        // there (the removal running, or cut short by a crash) are past the
        // log's start; the next purge removes them.
        let (log, flusher) = (self.log.clone(), self.flusher.clone());
        let upto = log_id.index;
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            crate::fault::hit("log_purge", flusher.dir());
            match remove_upto(&log, upto) {
                Ok(removed) => tracing::info!(
                    upto,
                    removed,
                    took_ms = started.elapsed().as_millis() as u64,
                    "purged the log"
                ),
                Err(e) => tracing::error!(upto, "purging the log: {e}"),
            }
            // The database handle first, then the flusher's: a master's
            // shutdown waits for every flusher handle, so the database is
            // released by then.
            drop(log);
            drop(flusher);
        });
        Ok(())
    }
}

/// Removes the log's entries up to `upto`, oldest first (a log with a gap
/// never exists); returns how many.
fn remove_upto(log: &sled::Tree, upto: u64) -> sled::Result<u64> {
    let mut removed = 0;
    for item in log.range(..=upto.to_be_bytes()) {
        let (k, _) = item?;
        log.remove(k)?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn open(dir: &Path, hold: Option<PathBuf>) -> (sled::Db, Flusher) {
        let store = dir.join("store");
        let db = crate::open_db(&store).unwrap();
        let faults = Faults {
            hold,
            ..Faults::default()
        };
        let flusher = Flusher::start_with(db.clone(), &store, faults).unwrap();
        (db, flusher)
    }

    #[tokio::test]
    async fn settle_waits_for_every_outstanding_flush() {
        let dir = tempfile::tempdir().unwrap();
        let hold = dir.path().join("hold-flush");
        let (_db, flusher) = open(dir.path(), Some(hold.clone()));
        // Nothing outstanding: at once.
        tokio::time::timeout(Duration::from_secs(5), flusher.settle())
            .await
            .expect("settle with nothing outstanding")
            .unwrap();

        std::fs::write(&hold, b"").unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        flusher.after_flush(move |r| {
            let _ = tx.send(r.is_ok());
        });
        let target = flusher.requested.load(Ordering::Acquire);
        // Polled once while the flush is held, settle is pending (no waiting needed:
        // the held flush cannot complete until the hold file goes).
        let mut settling = std::pin::pin!(flusher.settle());
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(settling.as_mut(), cx))
        })
        .await;
        assert!(first.is_pending(), "settle returned while a flush was held");
        assert!(flusher.completed.load(Ordering::Acquire) < target);

        std::fs::remove_file(&hold).unwrap();
        tokio::time::timeout(Duration::from_secs(5), settling)
            .await
            .expect("settle after the hold is lifted")
            .unwrap();
        assert!(
            flusher.completed.load(Ordering::Acquire) >= target,
            "settle returned before the held flush completed"
        );
        assert_eq!(rx.try_recv(), Ok(true), "the held flush completed first");
    }

    #[test]
    fn a_flush_counts_as_complete_before_its_callbacks_run() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, flusher) = open(dir.path(), None);
        let (tx, rx) = std::sync::mpsc::channel();
        let f = flusher.clone();
        flusher.after_flush(move |r| {
            r.unwrap();
            // What `settle`, called from a task this callback wakes, would see.
            let outstanding =
                f.completed.load(Ordering::Acquire) < f.requested.load(Ordering::Acquire);
            let _ = tx.send(outstanding);
        });
        let outstanding = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            !outstanding,
            "a callback's waiter would start a second flush for nothing"
        );
    }

    /// A disk stall (`ferry chaos`'s `disk-stall`) delays the sync and every
    /// acknowledgement behind it; it never skips the sync. While the stall
    /// file exists no flush completes and nothing reaches the disk image;
    /// once it is removed the flush completes, after its sync.
    #[tokio::test]
    async fn a_stall_delays_acknowledgements_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let stall = dir.path().join(crate::fault::STALL_FSYNC);
        let db = crate::open_db(&store).unwrap();
        let faults = Faults {
            stall: Some(stall.clone()),
            sync_image: true,
            ..Faults::default()
        };
        let flusher = Flusher::start_with(db.clone(), &store, faults).unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"a", b"1".to_vec()).unwrap();
        flusher.flush().await.unwrap();
        let synced_before = std::fs::read(store.join(SYNC_IMAGE)).unwrap();

        std::fs::write(&stall, b"").unwrap();
        tree.insert(b"b", vec![2u8; 4096]).unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        flusher.after_flush(move |r| {
            let _ = tx.send(r.is_ok());
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            rx.try_recv().is_err(),
            "a flush was acknowledged during the stall"
        );
        assert_eq!(
            std::fs::read(store.join(SYNC_IMAGE)).unwrap(),
            synced_before,
            "the data file was synced during the stall"
        );

        std::fs::remove_file(&stall).unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the flush completes once the stall ends")
            .unwrap();
        assert!(ok, "the stalled flush failed");
        assert_ne!(
            std::fs::read(store.join(SYNC_IMAGE)).unwrap(),
            synced_before,
            "acknowledged without a sync"
        );
    }

    /// The log's length once it is `want` (a purge removes its entries in
    /// the background), or after 10 s.
    async fn entries_left(log: &LogStore, want: usize) -> usize {
        for _ in 0..1000 {
            if log.log.len() == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log.log.len()
    }

    /// openraft purges right after handing a snapshot install to the state
    /// machine; the purge must wait for the install (the applied index), or a
    /// crash in between leaves a log that starts past the state machine.
    #[tokio::test]
    async fn purge_waits_until_the_state_machine_applied_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (db, flusher) = open(dir.path(), None);
        let mut log = LogStore::open(&db, flusher).unwrap();
        let (applied_tx, applied_rx) = tokio::sync::watch::channel(5u64);
        log.purge_only_applied(applied_rx);
        for i in 1..=12u64 {
            log.log.insert(i.to_be_bytes(), b"entry".to_vec()).unwrap();
        }
        let upto = LogId::new(openraft::CommittedLeaderId::new(1, 1), 10);
        let mut purging = log.clone();
        let purge = tokio::spawn(async move { purging.purge(upto).await });
        // While applied stays at 5 the purge must not finish (unfixed, it does
        // within a flush).
        let mut purge = purge;
        let early = tokio::time::timeout(Duration::from_millis(500), &mut purge).await;
        assert!(early.is_err(), "purged past the applied index: {early:?}");
        assert_eq!(
            log.log.len(),
            12,
            "entries the state machine lacks were removed"
        );
        applied_tx.send_replace(10);
        tokio::time::timeout(Duration::from_secs(10), purge)
            .await
            .expect("the purge finishes once applied")
            .unwrap()
            .unwrap();
        assert_eq!(entries_left(&log, 2).await, 2);
    }

    /// Removing the entries a snapshot covers (ten thousand by default) holds
    /// a thread for most of a second, and Raft's core awaits the purge: on a
    /// master's one runtime thread that silenced its heartbeats long enough
    /// for an election. The purge returns while the removal is still held,
    /// and the removal then completes.
    #[cfg(feature = "failpoints")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_purge_returns_before_its_entries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, flusher) = open(dir.path(), None);
        let mut log = LogStore::open(&db, flusher).unwrap();
        for i in 1..=12u64 {
            log.log.insert(i.to_be_bytes(), b"entry".to_vec()).unwrap();
        }
        let hold = crate::fault::hold("log_purge", &dir.path().join("store"));
        let upto = LogId::new(openraft::CommittedLeaderId::new(1, 1), 10);
        log.purge(upto).await.unwrap();
        let mut returned_while_held = false;
        for _ in 0..200 {
            if hold.holding() {
                returned_while_held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hold.release();
        assert!(
            returned_while_held,
            "the purge held its caller until its entries were removed"
        );
        assert_eq!(
            entries_left(&log, 2).await,
            2,
            "the purged entries were not removed"
        );
        assert_eq!(log.get_meta::<LogId>(PURGED).unwrap(), Some(upto));
    }

    /// A power failure keeps only what was synced: the image of the last sync
    /// put back over sled's file after the process is gone. Everything a flush
    /// acknowledged is there; what was written after it is not (removing the
    /// flusher's `sync_data` makes the first half fail).
    #[tokio::test]
    async fn a_power_failure_keeps_every_flushed_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let start = |db: &sled::Db| {
            let faults = Faults {
                sync_image: true,
                ..Faults::default()
            };
            Flusher::start_with(db.clone(), &store, faults).unwrap()
        };
        let db = crate::open_db(&store).unwrap();
        let flusher = start(&db);
        let tree = db.open_tree("t").unwrap();
        for i in 0..200u32 {
            tree.insert(i.to_be_bytes(), vec![7u8; 300]).unwrap();
            if i % 20 == 19 {
                flusher.flush().await.unwrap();
            }
        }
        // Acknowledged up to here; the rest never sees a sync.
        for i in 200..260u32 {
            tree.insert(i.to_be_bytes(), vec![7u8; 300]).unwrap();
        }
        db.flush().unwrap(); // sled's own flush: sync_file_range, not a barrier
        let stopped = flusher.stopped();
        drop((tree, flusher, db));
        stopped.wait().await;
        std::fs::rename(store.join(SYNC_IMAGE), store.join("db"))
            .expect("a sync image exists: the flusher synced");

        let db = crate::open_db(&store).unwrap();
        let tree = db.open_tree("t").unwrap();
        for i in 0..200u32 {
            assert!(
                tree.get(i.to_be_bytes()).unwrap().is_some(),
                "flushed key {i} lost in the power failure"
            );
        }
        assert!(
            tree.get(259u32.to_be_bytes()).unwrap().is_none(),
            "a write no sync covered survived: the emulation keeps too much"
        );
    }

    /// A store emulating power failures: sled opened, the flusher keeping images.
    #[cfg(feature = "failpoints")]
    fn open_imaging(store: &Path) -> (sled::Db, Flusher) {
        let db = crate::open_db(store).unwrap();
        let faults = Faults {
            sync_image: true,
            ..Faults::default()
        };
        let flusher = Flusher::start_with(db.clone(), store, faults).unwrap();
        (db, flusher)
    }

    /// Drops the store and waits until sled is released: its process is gone.
    #[cfg(feature = "failpoints")]
    async fn kill(db: sled::Db, flusher: Flusher) {
        let stopped = flusher.stopped();
        drop((flusher, db));
        stopped.wait().await;
    }

    /// A value over a quarter of sled's segment lives in a blob file, which
    /// sled writes on the inserting thread and ferry's flusher never syncs: an
    /// acknowledged one must survive a power failure, its blob included
    /// (vendored sled patch 5 syncs it inside `write_blob`; without that, the
    /// restored image lacks the blob and the value is lost).
    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn a_power_failure_keeps_every_acknowledged_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let (db, flusher) = open_imaging(&store);
        let tree = db.open_tree("t").unwrap();
        let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        tree.insert(b"big", big.clone()).unwrap();
        tree.insert(b"small", b"s".to_vec()).unwrap();
        flusher.flush().await.unwrap(); // acknowledged
        let blobs = std::fs::read_dir(store.join("blobs")).unwrap().count();
        assert!(blobs > 0, "the value did not go to a blob file");
        drop(tree);
        kill(db, flusher).await;
        restore_sync_image(&store).unwrap();

        let db = crate::open_db(&store).expect("the store opens after the power failure");
        let tree = db.open_tree("t").unwrap();
        assert_eq!(
            tree.get(b"small").unwrap().as_deref(),
            Some(&b"s"[..]),
            "an acknowledged small value was lost"
        );
        match tree.get(b"big") {
            Ok(Some(v)) => assert!(
                v.as_ref() == big.as_slice(),
                "the big value came back altered"
            ),
            other => panic!(
                "an acknowledged 5 MiB value (a blob) was lost in the power failure: {:?}",
                other.map(|v| v.map(|v| v.len()))
            ),
        }
    }

    /// After a SIGKILL sled recovers what the page cache held, synced or not;
    /// `open_db` must make it durable before the master answers anyone, or a
    /// power failure after the restart takes away what it may already have
    /// vouched for.
    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn what_sled_recovers_after_a_sigkill_is_synced_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let (db, flusher) = open_imaging(&store);
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"acked", b"1".to_vec()).unwrap();
        flusher.flush().await.unwrap();
        tree.insert(b"cached", b"2".to_vec()).unwrap();
        db.flush().unwrap(); // into the page cache, never synced by the flusher
        drop(tree);
        kill(db, flusher).await;

        // Restart after the SIGKILL: sled finds the write in the file.
        let db = crate::open_db(&store).unwrap();
        let tree = db.open_tree("t").unwrap();
        assert!(tree.get(b"cached").unwrap().is_some(), "sled recovered it");
        drop(tree);
        drop(db);
        // Then a power failure, before anything else was synced.
        restore_sync_image(&store).unwrap();
        let db = crate::open_db(&store).unwrap();
        let tree = db.open_tree("t").unwrap();
        assert!(tree.get(b"acked").unwrap().is_some());
        assert!(
            tree.get(b"cached").unwrap().is_some(),
            "a write served after the restart was not synced on open"
        );
    }

    /// Every directory that gains an entry is fsynced: the data dir when
    /// `store/` appears, `store/` for sled's files, the data dir again when
    /// `snapshots/` appears, and `snapshots/` when a snapshot becomes current.
    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn directories_are_synced_after_their_entries_are_created() {
        use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let synced = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
        let seen = synced.clone();
        let _hook = crate::fault::set("fsync", dir.path(), move |p| {
            seen.lock().unwrap().push(p.to_path_buf())
        });
        let take = || std::mem::take(&mut *synced.lock().unwrap());
        let store = data.join("store");
        let db = crate::open_db(&store).unwrap();
        let got = take();
        for want in [
            store.join("db"),
            store.join("conf"),
            store.clone(),
            data.clone(),
        ] {
            assert!(
                got.contains(&want),
                "{} not synced on open: {got:?}",
                want.display()
            );
        }
        let flusher = Flusher::start(db.clone(), &store).unwrap();
        let snaps = data.join("snapshots");
        let mut sm = crate::sm::StateMachine::open(&db, snaps.clone(), 100, flusher).unwrap();
        let got = take();
        assert!(
            got.contains(&data),
            "snapshots/ created, data dir not synced: {got:?}"
        );
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let got = take();
        assert!(
            got.contains(&snaps),
            "current.snap renamed, snapshots/ not synced: {got:?}"
        );
    }

    #[tokio::test]
    async fn a_restarted_leader_resigns_its_term() {
        let dir = tempfile::tempdir().unwrap();
        let (db, flusher) = open(dir.path(), None);
        let mut log = LogStore::open(&db, flusher).unwrap();

        // Another master's committed vote, or an uncommitted one, stays as it is.
        let theirs = Vote::new_committed(3, 2);
        log.save_vote(&theirs).await.unwrap();
        log.resign_leadership(1).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(theirs));
        let candidate = Vote::new(4, 1);
        log.save_vote(&candidate).await.unwrap();
        log.resign_leadership(1).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(candidate));

        // Its own committed vote (it led term 5) becomes an uncommitted one.
        log.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
        log.resign_leadership(1).await.unwrap();
        let vote = log.read_vote().await.unwrap().unwrap();
        assert!(!vote.is_committed(), "{vote}");
        assert_eq!(vote, Vote::new(5, 1));
    }
}
