//! Seeding a master's store from a snapshot file, for disaster recovery:
//! `ferry master --init --restore FILE` (a new cluster from a backup that
//! `ferry snapshot save` wrote) and `ferry master --force-new-cluster` (the last
//! master of a cluster that lost quorum carries on alone).
//!
//! A seeded store holds the snapshot's state at its revision R, with this master
//! as the only voter, as if its log had been purged at R. The log id of R is
//! rewritten to term 0 of this master (the new cluster's first election takes
//! term 1), so new writes get revisions above R and every resourceVersion a
//! client holds stays meaningful.
//!
//! The seed is staged first as `<data>/seed.snap` (checked whole, fsynced,
//! renamed into place). While that file exists the master refuses to start
//! normally, and running the same command again finishes the job; a store the
//! seed replaces is moved aside, never deleted. So a crash part way neither
//! serves a half-seeded store nor loses the old one.

use crate::log_store::{Flusher, LogStore};
use crate::sm::{keys, snapshot, StateMachine};
use crate::types::{encode, LogId, NodeId, StoredMembership};
use crate::{Error, Result};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, CommittedLeaderId, Membership};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The staged seed, inside the master's data dir.
pub const STAGED: &str = "seed.snap";

/// What a seed installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// The revision the state is at; new writes get higher revisions.
    pub revision: u64,
    /// Keys in the state machine (objects, history and bookkeeping).
    pub pairs: u64,
}

/// Whether a seed is staged (an earlier restore or force-new-cluster did not finish).
pub fn staged(data_dir: &Path) -> bool {
    data_dir.join(STAGED).exists()
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Copies `src` to `<data_dir>/seed.snap` durably: temporary file, fsync, rename.
fn stage_copy(src: &Path, data_dir: &Path) -> Result<()> {
    let tmp = snapshot::temp_path(data_dir, "seed");
    std::fs::copy(src, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(STAGED))?;
    fsync_dir(data_dir)
}

/// Checks the snapshot file `file` whole and stages it as the seed of `data_dir`.
/// Returns its revision; nothing is written when the file is bad.
pub fn stage_file(file: &Path, data_dir: &Path) -> Result<u64> {
    let (meta, _) = snapshot::validate(file)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", file.display())))?;
    let Some(last) = meta.last_log_id else {
        return Err(Error::Corrupt(format!(
            "{}: the snapshot holds no applied state",
            file.display()
        )));
    };
    stage_copy(file, data_dir)?;
    Ok(last.index)
}

/// The store's sled database, log and state machine, opened without Raft.
struct Offline {
    log: LogStore,
    sm: StateMachine,
    flusher: Flusher,
}

impl Offline {
    fn open(data_dir: &Path, window: u64) -> Result<Offline> {
        let db_dir = data_dir.join("store");
        let db = crate::open_db(&db_dir)?;
        let flusher = Flusher::start(db.clone(), &db_dir)?;
        let log = LogStore::open(&db, flusher.clone())?;
        let sm = StateMachine::open(&db, data_dir.join("snapshots"), window, flusher.clone())?;
        Ok(Offline { log, sm, flusher })
    }

    /// Closes everything and waits until sled's lock on the directory is released.
    async fn close(self) {
        let stopped = self.flusher.stopped();
        drop(self);
        stopped.wait().await;
    }
}

/// Stages this master's own committed state as its seed (`--force-new-cluster`).
///
/// Entries the log holds up to the commit index this master knew are applied
/// first; entries past it are dropped, as etcd's `--force-new-cluster` does: no
/// majority ever acknowledged them to this master. Returns the revision.
pub async fn stage_local(data_dir: &Path, window: u64) -> Result<u64> {
    let mut st = Offline::open(data_dir, window)?;
    let committed = st.log.read_committed().await.map_err(storage)?;
    let (applied, _) = st.sm.applied_state().await.map_err(storage)?;
    let from = applied.map_or(1, |l| l.index + 1);
    if let Some(c) = committed.filter(|c| c.index >= from) {
        let entries = st
            .log
            .get_log_reader()
            .await
            .try_get_log_entries(from..=c.index)
            .await
            .map_err(storage)?;
        let contiguous = entries
            .iter()
            .zip(from..)
            .all(|(e, i)| e.log_id.index == i);
        if entries.len() as u64 != c.index + 1 - from || !contiguous {
            return Err(Error::Corrupt(format!(
                "the log lacks committed entries {from}..={}",
                c.index
            )));
        }
        st.sm.apply(entries).await.map_err(storage)?;
    }
    let snap = st
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .map_err(storage)?;
    let revision = snap.meta.last_log_id.map_or(0, |l| l.index);
    if revision == 0 {
        return Err(Error::Corrupt(
            "this master has no applied state to carry on from".into(),
        ));
    }
    drop(snap);
    let current = snapshot::current_path(&data_dir.join("snapshots"))
        .ok_or_else(|| Error::Storage("the snapshot just built is missing".into()))?;
    stage_copy(&current, data_dir)?;
    st.close().await;
    Ok(revision)
}

/// Moves the store and snapshot directories (if any) into `<data>/replaced-<time>/`.
fn set_aside(data_dir: &Path) -> Result<Option<PathBuf>> {
    let present: Vec<_> = ["store", "snapshots"]
        .iter()
        .filter(|d| data_dir.join(d).exists())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = data_dir.join(format!("replaced-{secs}"));
    while aside.exists() {
        aside = data_dir.join(format!("replaced-{secs}-{}", rand::random::<u16>()));
    }
    std::fs::create_dir(&aside)?;
    for d in present {
        std::fs::rename(data_dir.join(d), aside.join(d))?;
    }
    fsync_dir(&aside)?;
    fsync_dir(data_dir)?;
    Ok(Some(aside))
}

/// Seeds `<data_dir>/store` from the staged seed with master `id` (at `addr`) as
/// the only voter, then removes the staged file. A store already there is moved
/// aside first; its path is returned with what was seeded.
pub async fn seed(
    data_dir: &Path,
    id: NodeId,
    addr: &str,
    window: u64,
) -> Result<(Seeded, Option<PathBuf>)> {
    let staged = data_dir.join(STAGED);
    let (found, pairs) = snapshot::validate(&staged)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", staged.display())))?;
    let last = found
        .last_log_id
        .ok_or_else(|| Error::Corrupt("the staged seed holds no applied state".into()))?;
    let aside = set_aside(data_dir)?;
    let mut st = Offline::open(data_dir, window)?;
    let log_id = LogId::new(CommittedLeaderId::new(0, id), last.index);
    let membership = StoredMembership::new(
        Some(log_id),
        Membership::new(
            vec![BTreeSet::from([id])],
            BTreeMap::from([(id, BasicNode::new(addr))]),
        ),
    );
    let meta = snapshot::Meta {
        last_log_id: Some(log_id),
        last_membership: membership.clone(),
        snapshot_id: format!("{}-seed", last.index),
    };
    let snap_dir = data_dir.join("snapshots");
    let rewritten = snapshot::rewrite(
        &staged,
        &snap_dir,
        &meta,
        &[
            (keys::APPLIED, Some(encode(&Some(log_id)))),
            (keys::MEMBERSHIP, Some(encode(&membership))),
            (keys::APPLYING, None),
        ],
    )?;
    let file = tokio::fs::File::open(&rewritten).await?;
    st.sm
        .install_snapshot(&meta, Box::new(file))
        .await
        .map_err(storage)?;
    std::fs::remove_file(&rewritten)?;
    // The log starts after the snapshot: purged up to it, durably.
    st.log.purge(log_id).await.map_err(storage)?;
    st.flusher.flush().await?;
    st.close().await;
    std::fs::remove_file(&staged)?;
    fsync_dir(data_dir)?;
    Ok((
        Seeded {
            revision: last.index,
            pairs,
        },
        aside,
    ))
}
