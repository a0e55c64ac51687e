//! The state machine: a versioned key-value store in sled.
//!
//! Layout:
//! - [`keys`]: the key layout inside the state-machine tree.
//! - [`apply`]: applying a batch of entries (preconditions, txn, events, history trim).
//! - [`read`]: reads, latest or at a revision.
//! - [`sessions`]: remembered request ids, so a repeated write answers its first outcome.
//! - [`snapshot`]: snapshot files: dump, validate, load.
//!
//! The state lives in one tree, `sm.<generation>`; installing a snapshot loads a
//! new generation and switches to it with one durable write, so a crash mid-install
//! leaves the old state whole.
//!
//! Apply writes with plain sled inserts, not `sled::Batch` (whose global lock
//! stalls every sled call behind each fsync). It writes `m/applying` first and
//! `m/applied` last; sled recovers a prefix of its writes, so after a crash
//! `m/applying > m/applied` means an apply was cut short, and [`StateMachine::open`]
//! rebuilds the state from the current snapshot (Raft then re-applies the log).
//! Old generations are cleared rather than dropped: `drop_tree` takes the same lock.

pub mod apply;
pub mod keys;
pub mod read;
pub mod sessions;
pub mod snapshot;

use crate::log_store::Flusher;
use crate::types::{
    decode, encode, Command, CommandResponse, LogId, StorageError, StoredMembership, TypeConfig,
};
use apply::ApplyCtx;
use ferry_api::kv::Event;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, Snapshot, SnapshotMeta};
use sessions::RequestIndex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, watch};

const GENERATION: &[u8] = b"sm_generation";

/// What apply tells watchers.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The events of one revision.
    Revision {
        /// The revision.
        revision: u64,
        /// Its events, in order.
        events: Arc<Vec<Event>>,
    },
    /// The state was replaced by a snapshot: re-read history.
    Reset,
}

/// State shared between the state machine (the only writer) and readers.
pub struct SmShared {
    tree: RwLock<sled::Tree>,
    applied: watch::Sender<u64>,
    compacted: AtomicU64,
    events: broadcast::Sender<Applied>,
}

impl SmShared {
    /// Revision applied so far.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// A receiver that sees every change of the applied revision.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// History at or below this revision is gone.
    pub fn compacted(&self) -> u64 {
        self.compacted.load(Ordering::Acquire)
    }

    /// Live applied events.
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.events.subscribe()
    }
}

/// The openraft state machine.
pub struct StateMachine {
    db: sled::Db,
    shared: Arc<SmShared>,
    snap_dir: PathBuf,
    window: u64,
    flusher: Flusher,
    generation: u64,
    /// Remembered request ids of the current tree (see [`sessions`]).
    requests: RequestIndex,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

/// Runs `work` (sled or file work proportional to the whole state) on a
/// blocking thread and waits for it: the caller's runtime thread is free meanwhile.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| crate::Error::Storage(format!("state machine worker thread: {e}")))?
}

fn tree_name(generation: u64) -> String {
    format!("sm.{generation}")
}

impl StateMachine {
    /// Opens the state machine in `db`; snapshots live in `snap_dir`.
    pub fn open(
        db: &sled::Db,
        snap_dir: PathBuf,
        window: u64,
        flusher: Flusher,
    ) -> crate::Result<StateMachine> {
        std::fs::create_dir_all(&snap_dir)?;
        if let Some(parent) = snap_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            snapshot::fsync_dir(parent)?;
        }
        snapshot::remove_temporaries(&snap_dir)?;
        let generation = match db.get(GENERATION)? {
            Some(b) => decode::<u64>(&b, "state machine generation")?,
            None => 0,
        };
        // A crash during a snapshot install can leave a half-loaded generation.
        for name in db.tree_names() {
            let n = String::from_utf8_lossy(&name).into_owned();
            if n.starts_with("sm.") && n != tree_name(generation) {
                db.open_tree(&name)?.clear()?;
            }
        }
        let mut tree = db.open_tree(tree_name(generation))?;
        let mut generation = generation;
        if Self::cut_short(&tree)? {
            tracing::warn!(
                "state machine apply was cut short by a crash; rebuilding from the snapshot"
            );
            (generation, tree) = Self::rebuild(db, &snap_dir, generation, &flusher)?;
        }
        let mut applied = Self::applied_index(&tree)?;
        // A crash during an install can leave the received snapshot current (and
        // the log purged up to it) while the state machine is still the old one.
        let snap = snapshot::open_current(&snap_dir)?
            .and_then(|(_, meta)| meta.last_log_id)
            .map_or(0, |l| l.index);
        if snap > applied {
            tracing::warn!(
                applied,
                snapshot = snap,
                "the current snapshot is ahead of the state machine (an install was cut \
                 short); rebuilding from it"
            );
            (generation, tree) = Self::rebuild(db, &snap_dir, generation, &flusher)?;
            applied = Self::applied_index(&tree)?;
        }
        let compacted = match tree.get(keys::COMPACTED)? {
            Some(b) => decode::<u64>(&b, "compacted revision")?,
            None => 0,
        };
        let requests = RequestIndex::load(&tree)?;
        tracing::info!(
            generation,
            applied,
            compacted,
            remembered_ids = requests.len(),
            "state machine opened"
        );
        let (applied_tx, _) = watch::channel(applied);
        // Small: a watcher that lags falls back to the history, which is cheaper than
        // keeping thousands of revisions (with previous values) alive.
        let (events, _) = broadcast::channel(1024);
        Ok(StateMachine {
            db: db.clone(),
            shared: Arc::new(SmShared {
                tree: RwLock::new(tree),
                applied: applied_tx,
                compacted: AtomicU64::new(compacted),
                events,
            }),
            snap_dir,
            window,
            flusher,
            generation,
            requests,
        })
    }

    /// The index of the last entry `tree` applied (0: none).
    fn applied_index(tree: &sled::Tree) -> crate::Result<u64> {
        Ok(match tree.get(keys::APPLIED)? {
            Some(b) => decode::<Option<LogId>>(&b, "applied log id")?.map_or(0, |l| l.index),
            None => 0,
        })
    }

    /// Whether an apply call was interrupted (see the module doc).
    fn cut_short(tree: &sled::Tree) -> crate::Result<bool> {
        let Some(b) = tree.get(keys::APPLYING)? else {
            return Ok(false);
        };
        let applying = decode::<u64>(&b, "applying index")?;
        Ok(applying > Self::applied_index(tree)?)
    }

    /// Loads the current snapshot (or nothing) into a new generation and switches to it.
    fn rebuild(
        db: &sled::Db,
        snap_dir: &std::path::Path,
        generation: u64,
        flusher: &Flusher,
    ) -> crate::Result<(u64, sled::Tree)> {
        let next = generation + 1;
        let tree = db.open_tree(tree_name(next))?;
        tree.clear()?;
        if let Some(path) = snapshot::current_path(snap_dir) {
            snapshot::load(&path, &tree)?;
        }
        flusher.flush_blocking()?;
        db.insert(GENERATION, encode(&next))?;
        flusher.flush_blocking()?;
        db.open_tree(tree_name(generation))?.clear()?;
        Ok((next, tree))
    }

    /// The read side.
    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    fn tree(&self) -> sled::Tree {
        self.shared.tree.read().expect("tree lock").clone()
    }

    fn read_meta(&self) -> crate::Result<(Option<LogId>, StoredMembership)> {
        let tree = self.tree();
        let applied = match tree.get(keys::APPLIED)? {
            Some(b) => decode(&b, "applied log id")?,
            None => None,
        };
        let membership = match tree.get(keys::MEMBERSHIP)? {
            Some(b) => decode(&b, "membership")?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = snapshot::Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_meta().map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // A follower learns a commit with the next entries, and answers them once
        // they are flushed: let that answer leave before this apply holds the
        // thread (apply does not await).
        tokio::task::yield_now().await;
        let tree = self.tree();
        let mut ctx = ApplyCtx::new(&tree, self.shared.compacted(), &self.requests);
        let mut responses = Vec::new();
        let mut published = Vec::new();
        let mut last = None;
        for entry in entries {
            let index = entry.log_id.index;
            tracing::trace!(log_id = %entry.log_id, "apply");
            ctx.begin(index);
            let mut resp = CommandResponse::default();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::V1 { writes }) => {
                    for w in writes.iter() {
                        resp.results.push(
                            ctx.apply_write(w)
                                .map_err(|e| sm_err(ErrorVerb::Write, e))?,
                        );
                    }
                }
                EntryPayload::Normal(Command::V2 { writes, ids, at_ms }) => {
                    ctx.begin_with_ids(index, *at_ms);
                    for (i, w) in writes.iter().enumerate() {
                        let r = match ids.get(i) {
                            Some(id) => ctx.apply_once(*id, w),
                            None => ctx.apply_write(w),
                        };
                        resp.results
                            .push(r.map_err(|e| sm_err(ErrorVerb::Write, e))?);
                    }
                    ctx.end_with_ids();
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    ctx.batch.insert(keys::MEMBERSHIP, encode(&stored));
                }
            }
            let events = ctx.take_events();
            // Per entry, so the compacted revision is a function of the log
            // alone, whatever entries one apply call happens to hold.
            ctx.trim_window(index, self.window)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            if !events.is_empty() {
                published.push(Applied::Revision {
                    revision: index,
                    events: Arc::new(events),
                });
            }
            last = Some(entry.log_id);
            responses.push(resp);
        }
        let Some(last) = last else {
            return Ok(responses);
        };
        ctx.finish_ids().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        ctx.batch.insert(keys::APPLIED, encode(&Some(last)));
        let compacted = ctx.compacted;
        let batch = std::mem::take(&mut ctx.batch);
        let changes = ctx.into_index_changes();
        {
            let guard = self.shared.tree.write().expect("tree lock");
            // Raise `compacted` before the trim lands, so a history scan racing it
            // sees the new floor and reports "too old" instead of a silent gap.
            self.shared.compacted.store(compacted, Ordering::Release);
            guard
                .insert(keys::APPLYING, encode(&last.index))
                .and_then(|_| batch.write_to(&guard))
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            self.requests.commit(changes);
            for p in published {
                let _ = self.shared.events.send(p);
            }
            self.shared.applied.send_replace(last.index);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let dumped = match self.read_meta() {
            // On a blocking thread: a dump takes seconds at a few thousand
            // objects, and this runtime's thread also answers Raft's heartbeats.
            // openraft's worker awaits it, so nothing is applied meanwhile.
            Ok((last, membership)) => {
                let (tree, dir) = (self.tree(), self.snap_dir.clone());
                let started = std::time::Instant::now();
                let dumped =
                    off_thread(move || snapshot::dump(&tree, &dir, last, membership)).await;
                tracing::info!(
                    last = ?last.map(|l| l.index),
                    took_ms = started.elapsed().as_millis() as u64,
                    "dumped the state for a snapshot"
                );
                dumped
            }
            Err(e) => Err(e),
        };
        snapshot::Builder::new(dumped, self.snap_dir.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = snapshot::temp_path(&self.snap_dir, "recv");
        let f = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| {
                StorageError::from_io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e)
            })?;
        // The path is unlinked once installed; openraft only needs the handle.
        let _ = std::fs::remove_file(&path);
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let snap_err = |e: crate::Error| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        };
        let path = snapshot::persist_received(snapshot, &self.snap_dir)
            .await
            .map_err(snap_err)?;
        let next = self.generation + 1;
        let tree = self
            .db
            .open_tree(tree_name(next))
            .map_err(|e| snap_err(e.into()))?;
        let loading = (path.clone(), tree.clone());
        let loaded = off_thread(move || snapshot::load(&loading.0, &loading.1))
            .await
            .map_err(snap_err)?;
        if loaded.last_log_id != meta.last_log_id {
            return Err(snap_err(crate::Error::Corrupt(format!(
                "snapshot file is for {:?}, expected {:?}",
                loaded.last_log_id, meta.last_log_id
            ))));
        }
        // The snapshot file becomes current before the state switches to it, so
        // a crash in between never leaves a current.snap older than the state.
        let (dir, current) = (self.snap_dir.clone(), loaded.clone());
        if !off_thread(move || snapshot::make_current(&path, &dir, &current))
            .await
            .map_err(snap_err)?
        {
            tracing::warn!(
                last_log_id = ?meta.last_log_id,
                "a snapshot at least as new was already current"
            );
        }
        self.flusher.flush().await.map_err(|e| snap_err(e.into()))?;
        self.db
            .insert(GENERATION, encode(&next))
            .map_err(|e| snap_err(e.into()))?;
        self.flusher.flush().await.map_err(|e| snap_err(e.into()))?;
        let requests = RequestIndex::load(&tree).map_err(snap_err)?;
        let compacted = match tree.get(keys::COMPACTED).map_err(|e| snap_err(e.into()))? {
            Some(b) => decode::<u64>(&b, "compacted").map_err(snap_err)?,
            None => 0,
        };
        {
            let mut guard = self.shared.tree.write().expect("tree lock");
            *guard = tree;
            self.requests = requests;
            self.shared.compacted.store(compacted, Ordering::Release);
            // Reset first: a watcher that sees the new applied revision must also
            // see the reset before it may bookmark past the jump.
            let _ = self.shared.events.send(Applied::Reset);
            self.shared
                .applied
                .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        }
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            generation = next,
            "installed a snapshot from the leader"
        );
        let old = self.generation;
        self.generation = next;
        let db = self.db.clone();
        off_thread(move || Ok(db.open_tree(tree_name(old))?.clear()?))
            .await
            .map_err(snap_err)?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        snapshot::current(&self.snap_dir)
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(db: &sled::Db, dir: &std::path::Path, flusher: &Flusher) -> StateMachine {
        StateMachine::open(db, dir.join("snapshots"), 1000, flusher.clone()).unwrap()
    }

    #[tokio::test]
    async fn an_apply_cut_short_is_rebuilt_from_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::open_db(&dir.path().join("store")).unwrap();
        let flusher = Flusher::start(db.clone(), &dir.path().join("store")).unwrap();
        let sm = open(&db, dir.path(), &flusher);
        let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 1), 5);
        let tree = sm.tree();
        tree.insert(keys::kv_key("a"), b"x".to_vec()).unwrap();
        tree.insert(keys::APPLYING, encode(&5u64)).unwrap();
        tree.insert(keys::APPLIED, encode(&Some(log_id))).unwrap();
        drop(sm);

        // A completed apply is kept.
        let mut sm = open(&db, dir.path(), &flusher);
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id));
        assert_eq!(sm.generation, 0);

        // An apply that wrote `m/applying` but not `m/applied` is discarded
        // (no snapshot yet: back to the empty state).
        sm.tree().insert(keys::APPLYING, encode(&7u64)).unwrap();
        drop(sm);
        let mut sm = open(&db, dir.path(), &flusher);
        assert_eq!(sm.generation, 1);
        assert_eq!(sm.applied_state().await.unwrap().0, None);
        assert!(sm.tree().get(keys::kv_key("a")).unwrap().is_none());
        drop(sm);
        assert_eq!(open(&db, dir.path(), &flusher).generation, 1);
    }
}

#[cfg(test)]
mod store_defects {
    use super::*;

    /// A snapshot at `index` holding key `k` (built in a scratch database).
    fn snapshot_at(scratch: &std::path::Path, index: u64) -> (PathBuf, snapshot::Meta) {
        let db = crate::open_db(&scratch.join("store")).unwrap();
        let tree = db.open_tree("scratch").unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(2, 1), index);
        tree.insert(keys::kv_key("k"), b"from the snapshot".to_vec())
            .unwrap();
        tree.insert(keys::APPLIED, encode(&Some(log_id))).unwrap();
        std::fs::create_dir_all(scratch.join("snapshots")).unwrap();
        snapshot::dump(
            &tree,
            &scratch.join("snapshots"),
            Some(log_id),
            StoredMembership::default(),
        )
        .unwrap()
    }

    /// SIGKILLed during an install after the received snapshot became current
    /// (and openraft's purge removed the log up to it) but before the state
    /// machine switched to it: on open the state is rebuilt from that snapshot,
    /// or the first apply after the purged log would fail on every restart.
    #[tokio::test]
    async fn a_current_snapshot_ahead_of_the_applied_state_is_loaded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let db = crate::open_db(&dir.path().join("store")).unwrap();
        let flusher = Flusher::start(db.clone(), &dir.path().join("store")).unwrap();
        let snaps = dir.path().join("snapshots");
        let sm = StateMachine::open(&db, snaps.clone(), 1000, flusher.clone()).unwrap();
        let old = LogId::new(openraft::CommittedLeaderId::new(1, 1), 3);
        sm.tree().insert(keys::APPLIED, encode(&Some(old))).unwrap();
        drop(sm);
        let (path, meta) = snapshot_at(scratch.path(), 40);
        std::fs::copy(&path, snaps.join("current.snap")).unwrap();

        let mut sm = StateMachine::open(&db, snaps, 1000, flusher).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, meta.last_log_id);
        assert_eq!(sm.shared.applied(), 40);
        assert_eq!(
            sm.tree().get(keys::kv_key("k")).unwrap().as_deref(),
            Some(&b"from the snapshot"[..])
        );
    }

    fn put_entry(index: u64) -> openraft::Entry<TypeConfig> {
        openraft::Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::V1 {
                writes: Arc::new(vec![ferry_api::kv::Write::Op(
                    ferry_api::kv::WriteOp::Put {
                        key: format!("k{}", index % 7),
                        value: vec![b'v'; 10],
                        expect: ferry_api::kv::Expect::Any,
                    },
                )]),
            }),
        }
    }

    /// The compacted revision after applying index `i` is the same whether the
    /// entries came one per apply call or in calls of 37: it is a function of
    /// the log, so every master answers "too old" for the same revisions.
    #[tokio::test]
    async fn the_compacted_revision_does_not_depend_on_apply_grouping() {
        let mut after = std::collections::BTreeMap::new();
        for grouping in [1usize, 37] {
            let dir = tempfile::tempdir().unwrap();
            let db = crate::open_db(&dir.path().join("store")).unwrap();
            let flusher = Flusher::start(db.clone(), &dir.path().join("store")).unwrap();
            let mut sm =
                StateMachine::open(&db, dir.path().join("snapshots"), 100, flusher).unwrap();
            let entries: Vec<u64> = (1..=400).collect();
            for call in entries.chunks(grouping) {
                sm.apply(call.iter().map(|i| put_entry(*i))).await.unwrap();
                let last = *call.last().unwrap();
                let compacted = sm.shared.compacted();
                match after.get(&last) {
                    None => {
                        after.insert(last, compacted);
                    }
                    Some(c) => assert_eq!(
                        *c, compacted,
                        "after {last}: {c} with one entry per call, {compacted} with {grouping}"
                    ),
                }
            }
        }
        assert!(after[&400] > 0, "the window of 100 compacted something");
    }

    /// Dumping the state for a snapshot takes seconds at a few thousand objects,
    /// and a master's runtime is one thread that also answers Raft's heartbeats
    /// (a follower silent that long is voted out). While a dump is held, other
    /// tasks on that thread run.
    #[cfg(feature = "failpoints")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_snapshot_dump_leaves_the_runtime_thread_to_other_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::open_db(&dir.path().join("store")).unwrap();
        let flusher = Flusher::start(db.clone(), &dir.path().join("store")).unwrap();
        let snaps = dir.path().join("snapshots");
        let mut sm = StateMachine::open(&db, snaps.clone(), 1000, flusher.clone()).unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 1), 9);
        sm.tree().insert(keys::kv_key("k"), b"v".to_vec()).unwrap();
        sm.tree()
            .insert(keys::APPLIED, encode(&Some(log_id)))
            .unwrap();

        // The dump stops at the hook until released, or gives up after 5 s.
        let hold = crate::fault::hold("snapshot_dump", &snaps);
        let dump = tokio::spawn(async move {
            let mut builder = sm.get_snapshot_builder().await;
            openraft::RaftSnapshotBuilder::build_snapshot(&mut builder).await
        });
        // This task runs again only once the thread is free.
        let mut ran_while_held = false;
        for _ in 0..1000 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if hold.holding() {
                ran_while_held = true;
                break;
            }
        }
        hold.release();
        let snap = dump.await.unwrap().unwrap();
        assert!(
            ran_while_held,
            "the runtime's thread was held for the whole snapshot dump"
        );
        assert_eq!(snap.meta.last_log_id, Some(log_id));
    }
}

#[cfg(test)]
mod remembered_ids {
    use super::*;
    use ferry_api::kv::{Expect, KvError, RequestId, Write, WriteOp, WriteOutcome};
    use openraft::RaftSnapshotBuilder;

    fn entry(
        index: u64,
        at_ms: u64,
        writes: Vec<(RequestId, Write)>,
    ) -> openraft::Entry<TypeConfig> {
        let (ids, writes): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        openraft::Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::V2 {
                writes: Arc::new(writes),
                ids: Arc::new(ids),
                at_ms,
            }),
        }
    }

    fn put(key: &str, value: &str) -> Write {
        Write::Op(WriteOp::Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            expect: Expect::Any,
        })
    }

    /// A write that changes nothing (no event, no history): only its id is
    /// remembered.
    fn check(n: u64) -> Write {
        Write::Op(WriteOp::Check {
            key: format!("absent/{n}"),
            expect: Expect::Absent,
        })
    }

    struct Sm {
        _dir: tempfile::TempDir,
        sm: StateMachine,
    }

    fn open() -> Sm {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::open_db(&dir.path().join("store")).unwrap();
        let flusher = Flusher::start(db.clone(), &dir.path().join("store")).unwrap();
        let sm = StateMachine::open(&db, dir.path().join("snapshots"), 100_000, flusher).unwrap();
        Sm { _dir: dir, sm }
    }

    /// The first put of `key` under `id` at index 2 (over a value put at 1),
    /// and its answer.
    async fn first(sm: &mut StateMachine, id: RequestId) -> Result<WriteOutcome, KvError> {
        sm.apply([entry(1, 1, vec![(RequestId(1), put("k", "old"))])])
            .await
            .unwrap();
        let mut r = sm
            .apply([entry(2, 2, vec![(id, put("k", "first"))])])
            .await
            .unwrap();
        let out = r.pop().unwrap().results.pop().unwrap();
        assert_eq!(
            out.as_ref().unwrap().prev[0]
                .as_ref()
                .map(|kv| kv.value.clone()),
            Some(b"old".to_vec())
        );
        out
    }

    /// Applies `w` under `id` at `index` and returns its answer, and whether
    /// the entry changed any key.
    async fn repeat(
        sm: &mut StateMachine,
        index: u64,
        id: RequestId,
        w: Write,
    ) -> (Result<WriteOutcome, KvError>, bool) {
        let mut events = sm.shared.subscribe();
        let mut r = sm
            .apply([entry(index, index, vec![(id, w)])])
            .await
            .unwrap();
        let wrote = events.try_recv().is_ok();
        (r.pop().unwrap().results.pop().unwrap(), wrote)
    }

    /// More ids than the old window (250 000) remembered after it, a repeat
    /// still answers the first outcome, previous value included, and applies
    /// nothing.
    #[tokio::test]
    async fn a_repeat_after_300_000_other_writes_answers_its_first_outcome() {
        let Sm { mut sm, .. } = open();
        let id = RequestId(u128::MAX - 7);
        let first = first(&mut sm, id).await;
        let (per_entry, entries) = (3000u64, 100u64);
        for e in 0..entries {
            let index = 3 + e;
            let writes = (0..per_entry)
                .map(|n| {
                    let n = e * per_entry + n;
                    (RequestId(1000 + n as u128), check(n))
                })
                .collect();
            sm.apply([entry(index, index, writes)]).await.unwrap();
        }
        let remembered: u64 =
            decode(&sm.tree().get(keys::REQUEST_SEQ).unwrap().unwrap(), "count").unwrap();
        assert!(remembered > 300_000, "{remembered} ids remembered");
        let (again, wrote) = repeat(&mut sm, 3 + entries, id, put("k", "first")).await;
        assert_eq!(again, first);
        assert!(!wrote, "the repeat applied again");
    }

    /// A snapshot carries the remembered ids and their count: the member that
    /// installs it answers a repeat as the one that built it (previous values
    /// rebuilt from the history the snapshot also carries) and applies nothing.
    #[tokio::test]
    async fn a_snapshot_round_trip_keeps_the_remembered_ids() {
        let Sm { sm: mut a, _dir } = open();
        let id = RequestId(99);
        let first = first(&mut a, id).await;
        a.apply([entry(3, 3, vec![(RequestId(5), check(5))])])
            .await
            .unwrap();
        let snap = a
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let Sm {
            sm: mut b,
            _dir: _b,
        } = open();
        b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        assert_eq!(
            b.requests, a.requests,
            "the index rebuilt from the snapshot"
        );
        assert_eq!(
            b.tree().get(keys::REQUEST_SEQ).unwrap(),
            a.tree().get(keys::REQUEST_SEQ).unwrap(),
            "the id count (the window) travels too"
        );
        for sm in [&mut a, &mut b] {
            let (again, wrote) = repeat(sm, 4, id, put("k", "first")).await;
            assert_eq!(again, first);
            assert!(!wrote, "the repeat applied again");
        }
    }
}
