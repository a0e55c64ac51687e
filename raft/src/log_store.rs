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
use std::collections::HashSet;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"last_purged";

type Done = Box<dyn FnOnce(std::io::Result<()>) + Send>;

/// A thread that makes sled durable and then runs the callbacks waiting for it.
#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::Sender<Done>,
    stopped: tokio::sync::watch::Receiver<bool>,
    /// Flush requests made so far, and how many of them have completed.
    requested: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
}

impl Flusher {
    /// Starts the flusher for `db`, whose data file is `<dir>/db`.
    ///
    /// Fault injection for tests: with `FERRY_FAULT_HOLD_FLUSH` set in the
    /// environment, the flusher holds every flush while a file `hold-flush` exists
    /// beside `dir` (in the master's data dir), so a test can let a master append
    /// entries that a SIGKILL then takes away.
    pub fn start(db: sled::Db, dir: &Path) -> crate::Result<Flusher> {
        let hold =
            std::env::var_os("FERRY_FAULT_HOLD_FLUSH").map(|_| dir.with_file_name("hold-flush"));
        Flusher::start_with_hold(db, dir, hold)
    }

    /// [`Flusher::start`] with the fault-injection hold file given directly.
    pub fn start_with_hold(
        db: sled::Db,
        dir: &Path,
        hold: Option<PathBuf>,
    ) -> crate::Result<Flusher> {
        let data = std::fs::File::open(dir.join("db"))?;
        let mut blobs = BlobSync::new(dir.join("blobs"));
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
                        .and_then(|_| data.sync_data())
                        .and_then(|_| blobs.sync_new());
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
        })
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

/// sled writes any record over a quarter of its segment size (large values, and
/// whole tree nodes holding several large values) to `blobs/` files it never
/// fsyncs; the flusher fsyncs each new blob file and the directory itself.
struct BlobSync {
    dir: PathBuf,
    synced: HashSet<std::ffi::OsString>,
}

impl BlobSync {
    fn new(dir: PathBuf) -> BlobSync {
        BlobSync {
            dir,
            synced: HashSet::new(),
        }
    }

    fn sync_new(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced.contains(&name) {
                match std::fs::File::open(self.dir.join(&name)) {
                    Ok(f) => f.sync_all()?,
                    // sled removed it meanwhile: nothing to make durable.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        self.synced = present;
        if new {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
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
}

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

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(PURGED).map_err(read_err)?;
        let last = match self.log.last().map_err(read_err)? {
            Some((_, v)) => Some(
                decode::<Entry<TypeConfig>>(&v, "log entry")
                    .map_err(read_err)?
                    .log_id,
            ),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
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
        // Purged entries are covered by a snapshot of the state machine; make the
        // state machine (same database) durable before the entries disappear.
        self.meta
            .insert(PURGED, encode(&log_id))
            .map_err(write_err)?;
        self.flusher.flush().await.map_err(write_err)?;
        // Oldest first, so a crash part way leaves a log without holes.
        for item in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = item.map_err(read_err)?;
            self.log.remove(k).map_err(write_err)?;
        }
        self.cache().purge(log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn open(dir: &Path, hold: Option<PathBuf>) -> (sled::Db, Flusher) {
        let store = dir.join("store");
        let db = crate::open_db(&store).unwrap();
        let flusher = Flusher::start_with_hold(db.clone(), &store, hold).unwrap();
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
