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
}

impl Flusher {
    /// Starts the flusher for `db`, whose data file is `<dir>/db`.
    pub fn start(db: sled::Db, dir: &Path) -> crate::Result<Flusher> {
        let data = std::fs::File::open(dir.join("db"))?;
        let mut blobs = BlobSync::new(dir.join("blobs"));
        let (tx, rx) = mpsc::channel::<Done>();
        let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
        std::thread::Builder::new()
            .name("ferry-flusher".into())
            .spawn(move || {
                let signal = StopSignal(stopped_tx);
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
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
        Ok(Flusher { tx, stopped })
    }

    /// Tells when every `Flusher` handle is dropped and the thread has released its
    /// database handle. Holding it does not keep the thread alive.
    pub fn stopped(&self) -> FlusherStopped {
        FlusherStopped(self.stopped.clone())
    }

    /// Runs `done` once everything written so far is on disk.
    pub fn after_flush(&self, done: impl FnOnce(std::io::Result<()>) + Send + 'static) {
        if let Err(mpsc::SendError(done)) = self.tx.send(Box::new(done)) {
            done(Err(std::io::Error::other("flusher stopped")));
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
