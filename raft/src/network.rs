//! Raft RPCs between masters over QUIC (`ferry-raft/1`).
//!
//! One connection per peer, one bidirectional stream per RPC, one request frame
//! and one response frame. The same messages carry the requests a follower
//! forwards to the leader (writes, read index, membership changes).

use crate::types::{NodeId, TypeConfig};
use ferry_api::frame::{encode, read_frame};
use ferry_api::kv::{KvError, RequestId, Write, WriteOutcome};
use ferry_api::proto::{ApiError, ClusterStatus, StatusHealth};
use ferry_api::MASTER_SERVER_NAME;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Largest AppendEntries request (bytes) sent with more than one entry.
const APPEND_BUDGET: usize = 2 * 1024 * 1024;

/// A request from one master to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client write forwarded to the leader.
    Forward(Write),
    /// The leader's read index for a linearizable read.
    ReadIndex,
    /// Add a master as learner, then promote it when the voter count allows.
    AddMember {
        /// Id.
        id: NodeId,
        /// QUIC address.
        addr: String,
        /// Allow an even number of voters.
        force: bool,
    },
    /// Remove a master.
    RemoveMember {
        /// Id.
        id: NodeId,
        /// Allow an even number of voters.
        force: bool,
    },
    /// Allocate an id for a joining master.
    NextId,
    /// The leader's view of the cluster.
    Status,
    /// A client write with its request id, forwarded to the leader (answered
    /// with `PeerResponse::Forward`).
    ForwardOnce {
        /// The request id.
        id: RequestId,
        /// The write.
        write: Write,
    },
    /// The leader's view of the cluster with members' health (answered with
    /// `PeerResponse::StatusHealth`; a master that predates it resets the stream).
    StatusHealth,
    /// Swap dead voter `dead` for the learner at `with` (answered with
    /// `PeerResponse::Id`: the new voter's id).
    ReplaceMember {
        /// The dead voter.
        dead: NodeId,
        /// The learner's QUIC address.
        with: String,
        /// Even though the leader still hears from `dead`.
        force: bool,
    },
    /// The membership this master has committed (answered with
    /// `PeerResponse::Membership`), so a master can learn it was removed.
    Membership,
    /// Would this voter vote for the candidate (answered with
    /// `PeerResponse::PreVote`; a master that predates it resets the stream,
    /// which counts as no)?
    PreVote(crate::node::PreVote),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// AppendEntries result.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Vote result.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Snapshot chunk result.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Forwarded write result.
    Forward(Result<Result<WriteOutcome, KvError>, ApiError>),
    /// Read index.
    ReadIndex(Result<u64, ApiError>),
    /// Membership change result.
    Done(Result<(), ApiError>),
    /// Allocated id.
    Id(Result<NodeId, ApiError>),
    /// Leader's status.
    Status(Result<ClusterStatus, ApiError>),
    /// Leader's status with members' health.
    StatusHealth(Result<StatusHealth, ApiError>),
    /// The membership the answering master has committed.
    Membership(Result<CommittedMembership, ApiError>),
    /// The answer to a pre-vote: whether this voter would vote.
    PreVote(Result<bool, ApiError>),
}

/// A master's committed membership: the log index of the entry that set it
/// and every member (voters and learners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedMembership {
    /// Index of the membership entry (none before the first).
    pub index: Option<u64>,
    /// Voters and learners.
    pub members: std::collections::BTreeSet<NodeId>,
}

/// One peer's connection; dialing holds only this peer's lock, so a dead peer's
/// handshake timeout never delays RPCs to live peers.
type Slot = Arc<Mutex<Option<quinn::Connection>>>;

/// Outgoing connections to other masters, one per address.
pub struct Peers {
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
    conns: std::sync::Mutex<HashMap<String, Slot>>,
    max_frame: usize,
    /// Each address's last answer and failures since, for `cluster status`.
    contacts: std::sync::Mutex<HashMap<String, Contact>>,
}

/// What this master knows of one peer's liveness: its last answer to any
/// request (Raft RPCs included: a leader sends every member a heartbeat each
/// `heartbeat_ms`), and since when its requests have failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contact {
    /// When it last answered.
    pub last_ok: Option<Instant>,
    /// When its first failed request since `last_ok` (or ever) was made.
    pub failing_since: Option<Instant>,
}

impl Peers {
    /// Uses `endpoint` (the master's own) to dial peers with `quic` (ALPN `ferry-raft/1`).
    pub fn new(endpoint: quinn::Endpoint, quic: quinn::ClientConfig, max_frame: usize) -> Peers {
        Peers {
            endpoint,
            quic,
            conns: std::sync::Mutex::new(HashMap::new()),
            max_frame,
            contacts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Largest frame sent or accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    async fn connection(&self, addr: &str) -> Result<quinn::Connection, ferry_api::Error> {
        let connect_err = |m: String| ferry_api::Error::Connect {
            addr: addr.to_string(),
            message: m,
        };
        let slot = self.slot(addr);
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let sock = addr
            .parse()
            .map_err(|e| connect_err(format!("bad address: {e}")))?;
        let connecting = self
            .endpoint
            .connect_with(self.quic.clone(), sock, MASTER_SERVER_NAME)
            .map_err(|e| connect_err(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_millis(1000), connecting)
            .await
            .map_err(|_| connect_err("handshake timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// What this master knows of `addr`'s liveness (all `None` if it has
    /// sent it nothing).
    pub fn contact(&self, addr: &str) -> Contact {
        let contacts = self.contacts.lock().expect("contacts lock");
        contacts.get(addr).copied().unwrap_or_default()
    }

    fn note(&self, addr: &str, ok: bool, at: Instant) {
        let mut contacts = self.contacts.lock().expect("contacts lock");
        let c = contacts.entry(addr.to_string()).or_default();
        if ok {
            c.last_ok = Some(c.last_ok.map_or(at, |l| l.max(at)));
            c.failing_since = None;
        } else if c.last_ok.is_none_or(|l| l < at) {
            c.failing_since.get_or_insert(at);
        }
    }

    fn slot(&self, addr: &str) -> Slot {
        let mut conns = self.conns.lock().expect("peer map lock");
        conns.entry(addr.to_string()).or_default().clone()
    }

    /// Sends one request and waits for its answer.
    pub async fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, ferry_api::Error> {
        self.call_frame(addr, encode(req)?, timeout).await
    }

    /// Sends one request already encoded as a frame and waits for its answer.
    pub async fn call_frame(
        &self,
        addr: &str,
        frame: Vec<u8>,
        timeout: Duration,
    ) -> Result<PeerResponse, ferry_api::Error> {
        let started = Instant::now();
        if self
            .endpoint
            .local_addr()
            .is_ok_and(|me| crate::fault::is_cut(&me.to_string(), addr))
        {
            self.note(addr, false, started);
            return Err(ferry_api::Error::Connect {
                addr: addr.to_string(),
                message: "cut off (fault injection)".into(),
            });
        }
        let fut = async {
            let conn = self.connection(addr).await?;
            let (mut send, mut recv) =
                conn.open_bi()
                    .await
                    .map_err(|e| ferry_api::Error::Connect {
                        addr: addr.to_string(),
                        message: e.to_string(),
                    })?;
            send.write_all(&frame)
                .await
                .map_err(|e| ferry_api::Error::Stream(e.to_string()))?;
            let _ = send.finish();
            read_frame::<_, PeerResponse>(&mut recv, self.max_frame)
                .await?
                .ok_or(ferry_api::Error::Truncated)
        };
        let res = tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| Err(ferry_api::Error::Stream(format!("{addr} timed out"))));
        match &res {
            Ok(_) => self.note(addr, true, Instant::now()),
            Err(_) => self.note(addr, false, started),
        }
        if let Err(ferry_api::Error::Connect { .. }) = &res {
            *self.slot(addr).lock().await = None;
        }
        res
    }
}

/// Builds a [`PeerNetwork`] per target for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    /// Shared connections.
    pub peers: Arc<Peers>,
    /// The leader's heartbeat interval (`raft.heartbeat_ms`): while an
    /// AppendEntries carrying entries is in flight, the follower gets a
    /// heartbeat this often beside it (see [`PeerNetwork`]).
    pub heartbeat: Duration,
    /// How long such a heartbeat may take (openraft's for its own heartbeats:
    /// `max(heartbeat_ms, election_min_ms)`).
    pub heartbeat_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
            heartbeat: self.heartbeat,
            heartbeat_timeout: self.heartbeat_timeout,
        }
    }
}

/// openraft's view of one peer.
///
/// openraft 0.9 keeps one AppendEntries in flight per follower and sends its
/// heartbeats through the same stream, so none goes out while a request carrying
/// entries travels, waits for the follower's Raft (busy syncing the previous
/// one) and is synced: on a loaded machine a MiB-sized request takes longer than
/// the follower's election timeout, and the follower, having heard nothing,
/// stands for election against a live leader (issue 16). So while such a
/// request is in flight, this sends the follower a heartbeat every
/// `heartbeat`, on a stream of its own: the same vote, `prev_log_id` and
/// commit index, no entries (what openraft's own heartbeats and its
/// leadership checks send). It carries nothing the request does not, so it
/// is safe in any order with it; its answer is not needed (the request's is).
pub struct PeerNetwork {
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl PeerNetwork {
    async fn rpc<E>(&self, req: PeerRequest, option: &RPCOption) -> Result<PeerResponse, RpcErr<E>>
    where
        E: std::error::Error,
    {
        let frame = encode(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.rpc_frame(frame, option).await
    }

    async fn rpc_frame<E>(
        &self,
        frame: Vec<u8>,
        option: &RPCOption,
    ) -> Result<PeerResponse, RpcErr<E>>
    where
        E: std::error::Error,
    {
        match self
            .peers
            .call_frame(&self.addr, frame, option.hard_ttl())
            .await
        {
            Ok(r) => Ok(r),
            Err(e @ ferry_api::Error::Connect { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    /// Sends `frame` (an AppendEntries carrying entries) and, until its answer
    /// comes, the heartbeat `beat` every `self.heartbeat` (one at a time; a
    /// heartbeat still in flight when the answer comes finishes on its own).
    async fn with_heartbeats(
        &self,
        frame: Vec<u8>,
        option: &RPCOption,
        beat: Vec<u8>,
    ) -> Result<PeerResponse, RpcErr> {
        let call = self.rpc_frame(frame, option);
        let mut call = std::pin::pin!(call);
        let start = tokio::time::Instant::now() + self.heartbeat;
        let mut ticks = tokio::time::interval_at(start, self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sending: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                res = &mut call => return res,
                _ = ticks.tick() => {
                    if sending.as_ref().is_some_and(|s| !s.is_finished()) {
                        continue;
                    }
                    let (peers, addr, beat) = (self.peers.clone(), self.addr.clone(), beat.clone());
                    let timeout = self.heartbeat_timeout;
                    sending = Some(tokio::spawn(async move {
                        let _ = peers.call_frame(&addr, beat, timeout).await;
                    }));
                }
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self, got: &PeerResponse) -> RpcErr<E> {
        let e = ferry_api::Error::Unexpected(format!("{got:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let n = rpc.entries.len() as u64;
        let beat = (n > 0).then(|| {
            encode(&PeerRequest::AppendEntries(AppendEntriesRequest {
                vote: rpc.vote,
                prev_log_id: rpc.prev_log_id,
                entries: Vec::new(),
                leader_commit: rpc.leader_commit,
            }))
        });
        let frame = encode(&PeerRequest::AppendEntries(rpc))
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // Keep each request within a frame and small enough to travel and
        // flush in reasonable time (openraft waits up to
        // `install_snapshot_timeout` for one carrying entries, vendor patch 4).
        if n > 1 && frame.len() > self.peers.max_frame.min(APPEND_BUDGET) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(n / 2),
            ));
        }
        let res = match beat {
            Some(Ok(beat)) => self.with_heartbeats(frame, &option, beat).await?,
            _ => self.rpc_frame(frame, &option).await?,
        };
        match res {
            PeerResponse::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self.rpc(PeerRequest::InstallSnapshot(rpc), &option).await? {
            PeerResponse::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.rpc(PeerRequest::Vote(rpc), &option).await? {
            PeerResponse::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }
}
