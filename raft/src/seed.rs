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
use crate::sm::snapshot::{self, fsync_dir};
use crate::sm::{keys, StateMachine};
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

/// Names `file` in an error about it.
fn about(file: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", file.display())),
        Error::Storage(m) => Error::Storage(format!("cannot read {}: {m}", file.display())),
        e => e,
    }
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
    let (meta, _) = snapshot::validate(file).map_err(|e| about(file, e))?;
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
        crate::format::prepare(data_dir)?;
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
        let contiguous = entries.iter().zip(from..).all(|(e, i)| e.log_id.index == i);
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

/// Moves the store and snapshot directories (if any) into `<data>/replaced-<time>/`
/// with the format record that describes them: recorded there first, removed
/// here last, so neither copy of a store is ever without its record; the
/// seeded store then gets this binary's.
fn set_aside(data_dir: &Path) -> Result<Option<PathBuf>> {
    use ferry_api::files::format;
    let record = format::read(data_dir)?;
    let present: Vec<_> = ["store", "snapshots"]
        .iter()
        .filter(|d| data_dir.join(d).exists())
        .collect();
    if present.is_empty() && record.is_none() {
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
    if let Some(version) = record {
        format::record(&aside, version)?;
    }
    for d in present {
        std::fs::rename(data_dir.join(d), aside.join(d))?;
    }
    fsync_dir(&aside)?;
    fsync_dir(data_dir)?;
    if record.is_some() {
        std::fs::remove_file(data_dir.join(format::FILE))?;
        fsync_dir(data_dir)?;
    }
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
    let (found, pairs) = snapshot::validate(&staged).map_err(|e| about(&staged, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Command;
    use ferry_api::kv::{Expect, Write, WriteOp};
    use openraft::{Entry, EntryPayload};
    use std::sync::Arc;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn put(index: u64, key: &str) -> Entry<crate::TypeConfig> {
        let w = Write::Op(WriteOp::Put {
            key: key.into(),
            value: key.as_bytes().to_vec(),
            expect: Expect::Any,
        });
        Entry {
            log_id: id(2, index),
            payload: EntryPayload::Normal(Command::V1 {
                writes: Arc::new(vec![w]),
            }),
        }
    }

    /// A store whose log holds 1..=4 (membership, then puts of a, b, c), whose
    /// state machine applied 1..=2, and whose recorded commit index is 3.
    async fn old_store(dir: &Path) {
        let mut st = Offline::open(dir, 1000).unwrap();
        let membership = Entry {
            log_id: id(1, 1),
            payload: EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([1, 2, 3])],
                BTreeSet::from([1, 2, 3]),
            )),
        };
        let entries = [membership, put(2, "a"), put(3, "b"), put(4, "c")];
        for e in &entries {
            st.log.insert_entry(e).unwrap();
        }
        st.sm.apply(entries[..2].to_vec()).await.unwrap();
        st.log.save_committed(Some(id(2, 3))).await.unwrap();
        st.flusher.flush().await.unwrap();
        st.close().await;
    }

    fn value(st: &Offline, key: &str) -> Option<Vec<u8>> {
        let (kv, _) = st.sm.shared().get(key, None).unwrap().unwrap();
        kv.map(|kv| kv.value)
    }

    #[tokio::test]
    async fn force_new_cluster_keeps_what_was_committed_and_makes_this_master_the_only_voter() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        old_store(dir).await;

        assert_eq!(stage_local(dir, 1000).await.unwrap(), 3);
        assert!(staged(dir));
        let (seeded, aside) = seed(dir, 7, "127.0.0.1:7100", 1000).await.unwrap();
        assert_eq!(seeded.revision, 3);
        assert!(!staged(dir), "the staged seed is removed once seeded");
        let aside = aside.expect("the old store is moved aside");
        assert!(aside.join("store").join("db").exists());
        let format = ferry_api::files::format::read;
        assert_eq!(
            format(&aside).unwrap(),
            Some(crate::format::CURRENT),
            "with its record"
        );
        assert_eq!(
            format(dir).unwrap(),
            Some(crate::format::CURRENT),
            "the seeded store's"
        );

        let mut st = Offline::open(dir, 1000).unwrap();
        let restart_at = LogId::new(CommittedLeaderId::new(0, 7), 3);
        let (applied, membership) = st.sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(restart_at));
        let voters: Vec<u64> = membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![7]);
        let log = st.log.get_log_state().await.unwrap();
        assert_eq!(log.last_purged_log_id, Some(restart_at));
        assert_eq!(log.last_log_id, Some(restart_at));
        assert_eq!(st.log.read_vote().await.unwrap(), None);
        // Committed entry 3 was applied on the way; entry 4 was never known committed.
        assert_eq!(value(&st, "a").as_deref(), Some(&b"a"[..]));
        assert_eq!(value(&st, "b").as_deref(), Some(&b"b"[..]));
        assert_eq!(value(&st, "c"), None);
        st.close().await;
    }

    #[tokio::test]
    async fn a_seed_cut_short_is_finished_by_running_it_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir_all(&dst).unwrap();
        old_store(&src).await;
        stage_local(&src, 1000).await.unwrap();
        stage_file(&src.join(STAGED), &dst).unwrap();
        // A crash part way through seeding left a half-written store behind.
        let db = crate::open_db(&dst.join("store")).unwrap();
        db.insert(b"half", b"written".to_vec()).unwrap();
        db.flush().unwrap();
        drop(db);

        let (seeded, aside) = seed(&dst, 1, "127.0.0.1:7100", 1000).await.unwrap();
        assert_eq!(seeded.revision, 3);
        assert!(aside.is_some_and(|a| a.join("store").exists()));
        let st = Offline::open(&dst, 1000).unwrap();
        assert_eq!(value(&st, "b").as_deref(), Some(&b"b"[..]));
        st.close().await;
    }

    #[test]
    fn a_damaged_file_is_not_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.snap");
        std::fs::write(&bad, b"\0\0\0\x05hello").unwrap();
        let e = stage_file(&bad, tmp.path()).unwrap_err().to_string();
        assert!(e.contains("bad.snap"), "{e}");
        assert!(!staged(tmp.path()));
    }
}
