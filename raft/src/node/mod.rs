//! [`Store`]: the handle the rest of ferry uses to reach the replicated store.
//!
//! Layout:
//! - this file: opening the store, writes (group commit or forward), reads, watches.
//! - [`batcher`]: group commit — concurrent writes become one Raft entry.
//! - [`election`]: when to stand for election (pre-vote).
//! - [`membership`]: ids, join, promotion, removal, status.
//! - [`serve`]: the server side of `ferry-raft/1`.

mod batcher;
mod election;
mod membership;
mod readindex;
pub use election::PreVote;
pub use membership::Removed;
mod serve;

use crate::log_store::{Flusher, FlusherStopped, LogStore};
use crate::network::{NetworkFactory, PeerRequest, PeerResponse, Peers};
use crate::sm::{SmShared, StateMachine};
use crate::types::{NodeId, Raft};
use crate::watch::WatchStream;
use ferry_api::kv::{KeyValue, KvError, RequestId, Write, WriteOp, WriteOutcome};
use ferry_api::proto::{
    ApiError, Consistency, ErrorCode, RangeRequest, RangeResponse, WatchRequest,
};
use ferry_config::{RaftTimings, StoreLimits};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a store needs to open.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// This master's id.
    pub id: NodeId,
    /// This master's advertised QUIC address.
    pub addr: String,
    /// Directory for the sled database and snapshots.
    pub dir: PathBuf,
    /// Raft timing.
    pub timings: RaftTimings,
    /// Limits and batching.
    pub limits: StoreLimits,
}

/// Cheap-to-clone handle to this master's replicated store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    addr: String,
    raft: Raft,
    /// Whether this master leads (see [`Store::leadership`]).
    leading: tokio::sync::watch::Receiver<bool>,
    shared: Arc<SmShared>,
    peers: Arc<Peers>,
    batch_tx: mpsc::Sender<batcher::Pending>,
    /// Linearizable reads waiting at the leader share leadership checks.
    reads: Arc<readindex::ReadRounds>,
    limits: StoreLimits,
    committed: Arc<AtomicU64>,
    membership: tokio::sync::Mutex<()>,
    /// Replacements this master made as leader (dead, new), so a retried
    /// `replace` whose first answer was lost answers the same.
    replaced: std::sync::Mutex<Vec<(NodeId, NodeId)>>,
    election_max: Duration,
    /// A follower that has heard nothing from its leader for this long (four
    /// heartbeats; openraft sends one every 1.5) does not forward to it: it
    /// waits for the leader to speak or for the next one (see `leader`).
    silent_after: Duration,
    /// When the leader's last AppendEntries arrived, ms after `epoch`.
    heard: AtomicU64,
    /// When this master last granted a vote, ms after `epoch`.
    vote_granted: AtomicU64,
    /// The Raft log (a clone of openraft's handle), for the last log id a
    /// pre-vote compares.
    log: LogStore,
    epoch: std::time::Instant,
    storage_released: FlusherStopped,
    flusher: Flusher,
    snap_dir: PathBuf,
    /// The format version of the data dir (`FORMAT`).
    format: u32,
    _db: sled::Db,
}

/// How long a restarted master waits to hear from a leader before it may stand
/// for election (a leader's replication retries an unreachable peer every
/// 500 ms, and a dial to it times out after 1 s). It knows no leader (a former
/// leader resigned its term, see `LogStore::resign_leadership`), so it would
/// stand after a bare election timeout, before the leader's replication
/// reaches the new process (seen by `ferry bench failover` as an election
/// right after each rejoin).
const ELECTION_HOLD: Duration = Duration::from_secs(2);

/// How long `ferry snapshot save` waits for a snapshot to be built.
const BACKUP_BUILD: Duration = Duration::from_secs(120);
/// How long after a request arrived a forward of it that failed after
/// sending is still sent again (see [`Store::on_leader_with`]).
const REFORWARD_WITHIN: Duration = Duration::from_secs(5);

/// Result of a write as the wire carries it.
pub type WriteResult = Result<Result<WriteOutcome, KvError>, ApiError>;

fn unavailable(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, m)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

impl Store {
    /// Opens (or creates) the store in `opts.dir` and starts its Raft node.
    pub async fn open(opts: StoreOptions, peers: Arc<Peers>) -> crate::Result<Store> {
        let format = crate::format::prepare(&opts.dir)?;
        let db_dir = opts.dir.join("store");
        let db = crate::open_db(&db_dir)?;
        let flusher = Flusher::start(db.clone(), &db_dir)?;
        let storage_released = flusher.stopped();
        let mut log = LogStore::open(&db, flusher.clone())?;
        log.resign_leadership(opts.id).await?;
        let committed = log.committed_index();
        let snap_dir = opts.dir.join("snapshots");
        let sm = StateMachine::open(
            &db,
            snap_dir.clone(),
            opts.limits.history_revisions,
            flusher.clone(),
        )?;
        let shared = sm.shared();
        log.purge_only_applied(shared.subscribe_applied());
        let t = &opts.timings;
        let config = openraft::Config {
            cluster_name: "ferry".into(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            max_in_snapshot_log_to_keep: t.keep_behind_snapshot,
            snapshot_max_chunk_size: t.snapshot_chunk_bytes,
            max_payload_entries: 256,
            purge_batch_size: 256,
            ..Default::default()
        }
        .validate()
        .map_err(|e| crate::Error::Raft(e.to_string()))?;
        let network = NetworkFactory {
            peers: peers.clone(),
            heartbeat: Duration::from_millis(t.heartbeat_ms),
            heartbeat_timeout: Duration::from_millis(t.heartbeat_ms.max(t.election_min_ms)),
        };
        let log_handle = log.clone();
        let raft = Raft::new(opts.id, Arc::new(config), network, log, sm)
            .await
            .map_err(|e| crate::Error::Raft(e.to_string()))?;
        // openraft's election timer stays off: `election::run` stands with a
        // pre-vote, and holds back a restarted master.
        raft.runtime_config().elect(false);
        let (batch_tx, batch_rx) = mpsc::channel(64 * 1024);
        tokio::spawn(batcher::run(raft.clone(), batch_rx, opts.limits.clone()));
        // Leadership as a watch of its own, fed from Raft's metrics by a task
        // that holds no store handle (it ends when Raft does).
        let (lead_tx, leading) = tokio::sync::watch::channel(false);
        let mut metrics = raft.metrics();
        let me = opts.id;
        tokio::spawn(async move {
            loop {
                let leads = metrics.borrow_and_update().current_leader == Some(me);
                lead_tx.send_if_modified(|l| std::mem::replace(l, leads) != leads);
                if metrics.changed().await.is_err() {
                    lead_tx.send_replace(false);
                    return;
                }
            }
        });
        let store = Store {
            inner: Arc::new(Inner {
                id: opts.id,
                addr: opts.addr,
                raft,
                leading,
                shared,
                peers,
                batch_tx,
                reads: Arc::default(),
                limits: opts.limits,
                committed,
                membership: tokio::sync::Mutex::new(()),
                replaced: std::sync::Mutex::new(Vec::new()),
                election_max: Duration::from_millis(t.election_max_ms),
                silent_after: Duration::from_millis(4 * t.heartbeat_ms),
                heard: AtomicU64::new(0),
                vote_granted: AtomicU64::new(0),
                log: log_handle,
                epoch: std::time::Instant::now(),
                storage_released,
                flusher,
                snap_dir,
                format,
                _db: db,
            }),
        };
        let timing = election::Timing {
            tick: Duration::from_millis((t.heartbeat_ms / 2).max(5)),
            lease: Duration::from_millis(t.election_max_ms),
            min: Duration::from_millis(t.election_min_ms),
            max: Duration::from_millis(t.election_max_ms),
        };
        tokio::spawn(election::run(Arc::downgrade(&store.inner), timing));
        Ok(store)
    }

    /// Makes this master the single voter of a new cluster (`ferry master --init`).
    pub async fn initialize(&self) -> crate::Result<()> {
        let mut members = std::collections::BTreeMap::new();
        members.insert(self.inner.id, openraft::BasicNode::new(&self.inner.addr));
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(crate::Error::Raft(e.to_string())),
        }
    }

    /// This master's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The format version of this master's data dir ([`crate::format`]).
    pub fn format_version(&self) -> u32 {
        self.inner.format
    }

    /// The openraft handle (metrics, tests).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Whether this master is the Raft leader now.
    pub fn is_leader(&self) -> bool {
        *self.inner.leading.borrow()
    }

    /// A watch of this master's leadership: true while it leads (leader-only
    /// components start and stop on its changes).
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.leading.clone()
    }

    /// The revision this master has applied.
    pub fn applied(&self) -> u64 {
        self.inner.shared.applied()
    }

    /// Stops Raft: outstanding requests fail. The database stays open until every
    /// clone of this `Store` is dropped (this handle holds the flusher and the
    /// database itself, so nothing waited on here could see them released);
    /// [`Store::released`] tells when they are.
    pub async fn shutdown(&self) {
        let _ = self.inner.raft.shutdown().await;
    }

    /// Waits until everything written so far is on disk (flush + fdatasync).
    pub async fn flush(&self) -> std::io::Result<()> {
        self.inner.flusher.flush().await
    }

    /// Resolves once every clone of this `Store` (and Raft's log and state
    /// machine) is dropped and the flusher thread has released the database:
    /// the data dir can then be opened again. Holding it keeps nothing alive.
    pub fn released(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let released = self.inner.storage_released.clone();
        async move { released.wait().await }
    }

    /// Notes that the leader's AppendEntries just arrived.
    fn heard_from_leader(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner.heard.store(ms, Ordering::Relaxed);
    }

    /// Whether the leader has been silent longer than `silent_after`.
    fn leader_silent(&self) -> bool {
        let now = self.inner.epoch.elapsed().as_millis() as u64;
        let heard = self.inner.heard.load(Ordering::Relaxed);
        now.saturating_sub(heard) > self.inner.silent_after.as_millis() as u64
    }

    /// The current leader's id and address, waiting up to two election
    /// timeouts for one. A leader that has gone silent (most likely dead: its
    /// followers will elect another within an election timeout) is not
    /// returned until it speaks again or another takes over, so a write is not
    /// forwarded into a dead connection; after the wait, the leader known then
    /// is returned anyway.
    async fn leader(&self) -> Result<(NodeId, String), ApiError> {
        let mut rx = self.inner.raft.metrics();
        let deadline = tokio::time::Instant::now() + 2 * self.inner.election_max;
        let recheck = self.inner.silent_after / 4;
        loop {
            let known = known_leader(&rx.borrow_and_update());
            if let Some(l) = &known {
                if l.0 == self.inner.id || !self.leader_silent() {
                    return known.ok_or_else(|| internal("checked"));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return known.ok_or_else(|| {
                    unavailable("no Raft leader; the cluster may have lost quorum")
                });
            }
            let wait = if known.is_some() {
                (deadline - now).min(recheck)
            } else {
                deadline - now
            };
            if let Ok(Err(_)) = tokio::time::timeout(wait, rx.changed()).await {
                return Err(unavailable("Raft has stopped"));
            }
        }
    }

    /// Resolves once this master knows a leader other than `leader` (or Raft stops).
    async fn leader_changed(&self, leader: NodeId) {
        let mut rx = self.inner.raft.metrics();
        loop {
            if rx
                .borrow_and_update()
                .current_leader
                .is_some_and(|l| l != leader)
            {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sends `req` to the leader, or runs `local` if this master leads. A
    /// forward still unanswered when another master takes over fails as sent
    /// (`sent_failed`): the old leader may have died with it.
    async fn on_leader<T>(
        &self,
        req: PeerRequest,
        local: impl std::future::Future<Output = T>,
        unwrap: impl Fn(PeerResponse) -> Option<T>,
        sent_failed: impl Fn(String) -> T,
    ) -> Result<T, ApiError> {
        let mut req = Some(req);
        self.on_leader_with(
            (),
            |()| req.take().expect("sent once: no repeats"),
            |()| local,
            unwrap,
            sent_failed,
            false,
        )
        .await
    }

    /// [`Store::on_leader`] with `payload` moved into the local call, so it
    /// needs no copy (a write's value). With `repeat` — the request is safe
    /// to send twice: a write under a request id, a read index — a forward
    /// that fails after sending (the leader replaced before it answered, the
    /// stream lost) is sent again to whichever master leads then, for up to
    /// [`REFORWARD_WITHIN`], instead of answering `sent_failed` at once: a
    /// client whose master forwarded to a leader that was then cut off gets
    /// the new leader's answer, not an error that sends it to another master
    /// (perhaps the cut-off one).
    async fn on_leader_with<P, T, F: std::future::Future<Output = T>>(
        &self,
        payload: P,
        mut req: impl FnMut(&P) -> PeerRequest,
        local: impl FnOnce(P) -> F,
        unwrap: impl Fn(PeerResponse) -> Option<T>,
        sent_failed: impl Fn(String) -> T,
        repeat: bool,
    ) -> Result<T, ApiError> {
        let until = tokio::time::Instant::now() + REFORWARD_WITHIN;
        loop {
            let (leader, addr) = self.leader().await?;
            if leader == self.inner.id {
                return Ok(local(payload).await);
            }
            let request = req(&payload);
            let forwarded = tokio::select! {
                r = self.inner.peers.call(&addr, &request, Duration::from_secs(30)) => r,
                _ = self.leader_changed(leader) => Err(ferry_api::Error::Stream(format!(
                    "leader {leader} at {addr} was replaced before it answered"
                ))),
            };
            let failed = match forwarded {
                Ok(resp) => {
                    return unwrap(resp)
                        .ok_or_else(|| internal("leader answered with the wrong message"))
                }
                Err(ferry_api::Error::Connect { message, .. }) => {
                    let unreachable =
                        || unavailable(format!("leader {leader} at {addr} unreachable: {message}"));
                    // Not sent: a request safe to repeat waits here, for about
                    // an election (a lease plus a timeout plus a vote round),
                    // for the next leader rather than failing over to another
                    // master (which may be the unreachable one).
                    let left = until
                        .saturating_duration_since(tokio::time::Instant::now())
                        .min(3 * self.inner.election_max);
                    if !repeat
                        || tokio::time::timeout(left, self.leader_changed(leader))
                            .await
                            .is_err()
                    {
                        return Err(unreachable());
                    }
                    continue;
                }
                Err(e) => e.to_string(),
            };
            if !repeat || tokio::time::Instant::now() >= until {
                return Ok(sent_failed(failed));
            }
            tracing::debug!(%leader, %addr, error = %failed, "forward failed after sending; sending it again");
        }
    }

    /// Applies a write through Raft, on whichever master leads, under a new
    /// request id (a caller that retries uses [`Store::write_once`]).
    pub async fn write(&self, w: Write) -> WriteResult {
        self.write_once(RequestId::random(), w).await
    }

    /// Applies a write with request id `id` through Raft, on whichever master
    /// leads. Sending the same write with the same id again is safe: once the
    /// first has applied, a repeat answers its outcome without applying again
    /// (while the id is remembered, see `sm::sessions`).
    pub async fn write_once(&self, id: RequestId, w: Write) -> WriteResult {
        self.validate(&w)?;
        self.on_leader_with(
            w,
            |write| PeerRequest::ForwardOnce {
                id,
                write: write.clone(),
            },
            |w| self.write_local(id, w),
            |r| match r {
                PeerResponse::Forward(r) => Some(r),
                _ => None,
            },
            |m| {
                Err(ApiError::new(
                    ErrorCode::Indeterminate,
                    format!("forwarding to the leader failed after sending: {m}"),
                ))
            },
            true,
        )
        .await?
    }

    /// Queues a write into this master's group commit (it must lead).
    pub async fn write_local(&self, id: RequestId, w: Write) -> WriteResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let size = w.size();
        self.inner
            .batch_tx
            .send(batcher::Pending {
                id,
                write: w,
                size,
                tx,
            })
            .await
            .map_err(|_| unavailable("store is shutting down"))?;
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorCode::Indeterminate,
                "store stopped before answering",
            ))
        })
    }

    fn validate(&self, w: &Write) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::new(ErrorCode::BadRequest, m));
        let ops: &[WriteOp] = match w {
            Write::Op(op) => std::slice::from_ref(op),
            Write::Txn(ops) if ops.is_empty() => return bad("empty transaction".into()),
            Write::Txn(ops) => ops,
            Write::Compact(_) => &[],
        };
        let mut total = 0;
        for op in ops {
            let key = op.key();
            if key.is_empty() {
                return bad("empty key".into());
            }
            if key.len() > self.inner.limits.max_key_bytes {
                return bad(format!(
                    "key of {} bytes exceeds the limit of {} bytes",
                    key.len(),
                    self.inner.limits.max_key_bytes
                ));
            }
            if let WriteOp::Put { value, .. } = op {
                if value.len() > self.inner.limits.max_value_bytes {
                    return bad(format!(
                        "value of {} bytes for key {key} exceeds the limit of {} bytes",
                        value.len(),
                        self.inner.limits.max_value_bytes
                    ));
                }
            }
            total += op.size();
        }
        if total > self.inner.limits.max_value_bytes + 64 * 1024 {
            return bad(format!(
                "transaction of {total} bytes exceeds the object size limit"
            ));
        }
        Ok(())
    }

    /// The revision a linearizable read must reflect.
    pub async fn read_index(&self) -> Result<u64, ApiError> {
        let idx = self
            .on_leader_with(
                (),
                |()| PeerRequest::ReadIndex,
                |()| self.read_index_local(),
                |r| match r {
                    PeerResponse::ReadIndex(r) => Some(r),
                    _ => None,
                },
                |m| Err(unavailable(format!("read index from leader failed: {m}"))),
                true,
            )
            .await??;
        self.wait_applied(idx).await?;
        Ok(idx)
    }

    /// A snapshot file holding at least everything committed when called (for
    /// `ferry snapshot save`), or with `local` everything this master has
    /// applied (no leader needed); builds one if the newest is older. Returns
    /// the file, opened, and its revision.
    pub async fn backup(&self, local: bool) -> Result<(std::fs::File, u64), ApiError> {
        let target = match local {
            true => self.applied(),
            false => self.read_index().await?,
        };
        let covers = |m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>| {
            m.snapshot.is_some_and(|l| l.index >= target)
        };
        let mut rx = self.inner.raft.metrics();
        if !covers(&rx.borrow()) {
            self.inner
                .raft
                .trigger()
                .snapshot()
                .await
                .map_err(|e| unavailable(format!("cannot build a snapshot: {e}")))?;
            match tokio::time::timeout(BACKUP_BUILD, rx.wait_for(covers)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(unavailable("raft stopped while building the snapshot")),
                Err(_) => {
                    return Err(unavailable(format!(
                        "no snapshot at revision {target} after {} s",
                        BACKUP_BUILD.as_secs()
                    )))
                }
            }
        }
        match crate::sm::snapshot::open_current(&self.inner.snap_dir).map_err(internal)? {
            Some((file, meta)) => Ok((file, meta.last_log_id.map_or(0, |l| l.index))),
            None => Err(internal("the snapshot just built is missing")),
        }
    }

    /// The read index as leader: one leadership check serves every read
    /// that arrived before it began (see [`readindex`]).
    async fn read_index_local(&self) -> Result<u64, ApiError> {
        let raft = self.inner.raft.clone();
        self.inner
            .reads
            .read(move || {
                let raft = raft.clone();
                async move {
                    match raft.ensure_linearizable().await {
                        Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
                        Err(e) => Err(format!("leadership not confirmed: {e}")),
                    }
                }
            })
            .await
            .map_err(unavailable)
    }

    /// Waits until this master has applied `revision`.
    pub async fn wait_applied(&self, revision: u64) -> Result<(), ApiError> {
        let mut rx = self.inner.shared.subscribe_applied();
        let ok = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| *a >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        match ok {
            true => Ok(()),
            false => Err(unavailable(format!(
                "this master has not applied revision {revision} yet"
            ))),
        }
    }

    async fn read_at(&self, consistency: Consistency) -> Result<Option<u64>, ApiError> {
        match consistency {
            Consistency::Linearizable => {
                self.read_index().await?;
                Ok(None)
            }
            Consistency::Local => Ok(None),
            Consistency::AtRevision(r) => {
                self.wait_applied(r).await?;
                Ok(Some(r))
            }
        }
    }

    /// Reads one key; returns it and the revision read at.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<(Option<KeyValue>, u64), ApiError> {
        let at = self.read_at(consistency).await?;
        self.inner
            .shared
            .get(key, at)
            .map_err(internal)?
            .map_err(kv_to_api)
    }

    /// Reads a page of a key range.
    pub async fn range(
        &self,
        req: &RangeRequest,
    ) -> Result<Result<RangeResponse, KvError>, ApiError> {
        let at = self.read_at(req.consistency).await?;
        self.inner
            .shared
            .range(&req.prefix, req.start_after.as_deref(), req.limit, at)
            .map_err(internal)
    }

    /// Starts a watch served from this master's applied state.
    pub fn watch(&self, req: &WatchRequest) -> Result<WatchStream, ApiError> {
        WatchStream::start(
            self.inner.shared.clone(),
            req.prefix.clone(),
            req.after_revision,
            req.bookmark_ms,
        )
    }
}

fn kv_to_api(e: KvError) -> ApiError {
    let code = match e {
        KvError::TooOld { .. } => ErrorCode::TooOld,
        KvError::FutureRevision { .. } => ErrorCode::Unavailable,
        _ => ErrorCode::BadRequest,
    };
    ApiError::new(code, e.to_string())
}

/// The leader these metrics name, with its address, if it is a member.
fn known_leader(
    m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
) -> Option<(NodeId, String)> {
    let l = m.current_leader?;
    let node = m.membership_config.membership().get_node(&l)?;
    Some((l, node.addr.clone()))
}
