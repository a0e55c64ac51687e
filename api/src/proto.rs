//! Requests and responses on the `ferry-api/1` and `ferry-join/1` ALPNs.
//!
//! One bidirectional stream per request: the client writes one [`ApiRequest`]
//! frame, the server answers with one `Result<ApiResponse, ApiError>` frame — or,
//! for a watch, a stream of `Result<WatchItem, ApiError>` frames until either side closes.

use crate::kv::{KeyValue, KvError, RequestId, Write, WriteOutcome};
use crate::object::{ObjectRequest, ObjectResponse};
use serde::{Deserialize, Serialize};

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read started (read index).
    Linearizable,
    /// Whatever the serving master has applied.
    Local,
    /// At exactly this revision (from the watch history window); any master
    /// that has applied it may serve it.
    AtRevision(u64),
}

/// A range (list) request over a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// Keys starting with this prefix.
    pub prefix: String,
    /// Continue after this key (exclusive), from a previous page.
    pub start_after: Option<String>,
    /// At most this many keys (0 = no limit).
    pub limit: u64,
    /// Freshness; a continued list passes `AtRevision(previous.revision)`.
    pub consistency: Consistency,
}

/// A page of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// Keys in order.
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: u64,
    /// More keys follow; continue after the last key at `revision`.
    pub more: bool,
}

/// A watch request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// Keys starting with this prefix.
    pub prefix: String,
    /// Send events with revisions strictly greater than this; `None` starts at the
    /// serving master's current revision.
    pub after_revision: Option<u64>,
    /// Send a bookmark after this many idle milliseconds (0 = never).
    pub bookmark_ms: u64,
}

/// What a master can be asked over `ferry-api/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiRequest {
    /// A write; forwarded to the leader.
    Write(Write),
    /// Read one key.
    Get {
        /// Key.
        key: String,
        /// Freshness.
        consistency: Consistency,
    },
    /// Read a key range.
    Range(RangeRequest),
    /// Stream changes.
    Watch(WatchRequest),
    /// Cluster membership and progress.
    Status,
    /// Remove a master from the cluster.
    RemoveMember {
        /// The master's id.
        id: u64,
        /// Allow an even number of voters.
        force: bool,
    },
    /// Join the cluster (only on `ferry-join/1`).
    Join(JoinRequest),
    /// A Kubernetes object request (a watch answers with a stream of
    /// `Result<ObjectEvent, ApiError>` frames).
    Object(Box<ObjectRequest>),
    /// A backup of the whole store (admin only), answered with a stream of
    /// `Result<SnapshotPart, ApiError>` frames: `Begin`, `Chunk`s, `End`.
    Snapshot {
        /// The answering master's own applied state, without confirming it with
        /// the leader (works without quorum; may lag the cluster).
        local: bool,
    },
    /// A write with its request id, answered as [`ApiRequest::Write`] is. Sent
    /// again with the same id it is not applied twice: a repeat answers the
    /// first outcome, so a client may retry it on any master until its deadline.
    WriteOnce {
        /// Unique per write (not per attempt).
        id: RequestId,
        /// The write.
        write: Write,
    },
    /// An object write with the client's request id, answered as
    /// [`ApiRequest::Object`] is. The API server makes every store write of the
    /// request under an id derived from `id` (one per logical step), so sent
    /// again — to any master, after the first one died mid-request — it is not
    /// applied twice, and the answer describes what was stored.
    ObjectOnce {
        /// Unique per request (not per attempt).
        id: RequestId,
        /// 1 for the first attempt, counted up by each retry (a retry's answer
        /// is read back from the store rather than built by this attempt).
        attempt: u32,
        /// The object request (a mutating verb).
        req: Box<ObjectRequest>,
    },
    /// A node asks for the cluster CA before it trusts any master (only on
    /// `ferry-join/1`), naming its bootstrap token's id; the answer carries a
    /// proof that the master knows the token's secret (see [`crate::token`]).
    NodeDiscover {
        /// The bootstrap token's id (its public half).
        token_id: String,
        /// Fresh random bytes the proof covers.
        nonce: Vec<u8>,
    },
    /// A node joins with its bootstrap token (only on `ferry-join/1`, over a
    /// connection pinned to the discovered CA): answered with its certificate.
    NodeJoin(NodeJoinRequest),
    /// A node offers its connection for streams masters open to it (container
    /// logs): node identities only. Answered with [`ApiResponse::TunnelOpen`];
    /// the master uses the connection until it closes.
    NodeTunnel,
    /// A container's log, streamed as `Result<Vec<u8>, ApiError>` frames (the
    /// log's text) until its end, or with `follow` until the container's run
    /// ends or the client goes away.
    PodLogs(LogsRequest),
    /// Runs a command in a container: after this frame the client sends
    /// [`ExecFrame`]s (stdin) and receives [`ExecFrame`]s (output, then `Exit`).
    PodExec(ExecRequest),
    /// A node renews its certificate before it expires (on `ferry-api/1`, with
    /// its current certificate): answered as [`ApiRequest::NodeJoin`] is.
    RenewNodeCert {
        /// A certificate signing request (PEM) for the node's new key.
        csr: String,
        /// The lifetime asked for, in seconds.
        lifetime_secs: u64,
    },
    /// The admin asks for a user's client certificate (`ferry kubeconfig
    /// --user`): identity `user:<name>` with `groups`, for the key behind `csr`.
    /// Answered with [`ApiResponse::UserCert`].
    IssueUserCert {
        /// A certificate signing request (PEM) for the user's key.
        csr: String,
        /// The user name.
        name: String,
        /// The user's groups.
        groups: Vec<String>,
        /// The lifetime asked for, in seconds (clamped to 10 minutes-10 years).
        lifetime_secs: u64,
    },
    /// A TCP connection to a port inside a pod (`ferry port-forward`, kubectl's
    /// `pods/portforward`): answered with one `Result<(), ApiError>` frame
    /// (connected, or why not); after an `Ok` the stream carries the
    /// connection's bytes both ways, each side's finish half-closing it.
    PodPortForward(PortForwardRequest),
    /// A node's latest resource usage (node identities only, their own node):
    /// kept in the answering master's memory, answered with
    /// [`ApiResponse::Reported`]. Nodes send it to every master.
    ReportMetrics(Box<crate::metrics::NodeReport>),
    /// [`ApiRequest::Status`] with each member's health as the leader sees
    /// it, answered with [`ApiResponse::StatusHealth`]. Added after `Status`
    /// rather than changing its answer, so older clients and masters keep
    /// their encoding; a master that predates it answers `BadRequest`, and the
    /// client then asks for `Status`.
    StatusHealth,
    /// Swap dead voter `dead` for the learner at `with` in one membership change
    /// (`ferry cluster replace`), answered with [`ApiResponse::Replaced`].
    ReplaceMember {
        /// The dead voter's id.
        dead: u64,
        /// The QUIC address of a master that joined as a learner.
        with: String,
        /// Replace `dead` even though the leader still hears from it.
        force: bool,
    },
    /// An object request run as someone else (`ferry --as`, what kubectl's
    /// `Impersonate-*` headers ask over HTTPS): the caller needs `impersonate`
    /// on each thing `as_` names, checked as over HTTPS, then `req` — an
    /// [`ApiRequest::Object`] (a watch too) or [`ApiRequest::ObjectOnce`] —
    /// runs as that user, answered as it would be. Appended, so older frames
    /// keep their bytes; a master that predates it answers `BadRequest`.
    ObjectAs {
        /// Who to act as.
        as_: Impersonate,
        /// The object request.
        req: Box<ApiRequest>,
    },
    /// The admin moves a rotation of the cluster CA on (`ferry ca rotate
    /// --step`): `step` is `trust`, `reissue` or `drop`, in that order (see
    /// [`crate::carotation`]); answered with [`ApiResponse::CaRotated`].
    CaRotate {
        /// The step.
        step: String,
    },
    /// Where a CA rotation stands (`ferry ca status`), answered with
    /// [`ApiResponse::CaStatus`].
    CaStatus,
    /// A node reports what it trusts and which CA issued its certificate,
    /// and asks what to trust (node identities only); answered with
    /// [`ApiResponse::ClusterTrust`]. A master that predates it answers
    /// `BadRequest`.
    ClusterTrust(crate::carotation::MemberTls),
    /// The answering master's binary version and data dir format (`ferry
    /// cluster status` asks each member), answered with
    /// [`ApiResponse::Version`]. A master that predates it answers `BadRequest`.
    Version,
}

/// Whom a request acts as ([`ApiRequest::ObjectAs`]): kubectl's `--as`,
/// `--as-group`, `--as-uid` and `--as-user-extra`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Impersonate {
    /// `--as`: a user name, or `system:serviceaccount:<ns>:<name>`.
    pub user: Option<String>,
    /// `--as-group`, in order.
    pub groups: Vec<String>,
    /// `--as-uid`.
    pub uid: Option<String>,
    /// `--as-user-extra KEY=VALUE`, in order.
    pub extra: Vec<(String, String)>,
}

impl Impersonate {
    /// Whether it asks for nothing (no flag given).
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.groups.is_empty() && self.uid.is_none() && self.extra.is_empty()
    }

    /// The same request as kubectl's `Impersonate-*` headers, `(name, value)`
    /// in the order kubectl sends them.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            out.push(("Impersonate-User".to_string(), u.clone()));
        }
        if let Some(uid) = &self.uid {
            out.push(("Impersonate-Uid".to_string(), uid.clone()));
        }
        for g in &self.groups {
            out.push(("Impersonate-Group".to_string(), g.clone()));
        }
        for (k, v) in &self.extra {
            // The server unescapes `%XX` in a key: a literal `%` goes as `%25`.
            let k = k.replace('%', "%25");
            out.push((format!("Impersonate-Extra-{k}"), v.clone()));
        }
        out
    }
}

/// What `ferry port-forward` asks for: one connection to `port` on the pod's
/// loopback (its network namespace, or the node's when it shares the host's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwardRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The port inside the pod.
    pub port: u16,
}

/// What `ferry logs` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The container (default: the first).
    pub container: Option<String>,
    /// Stream new output until the container's run ends.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail: Option<u64>,
    /// The previous run's log.
    pub previous: bool,
    /// Prefix each line with its time (RFC 3339).
    pub timestamps: bool,
    /// Only lines written in the last this many seconds.
    pub since_secs: Option<u64>,
}

/// What `ferry exec` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The container (default: the first).
    pub container: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether stdin is sent.
    pub stdin: bool,
    /// Run the command on a terminal (its output then comes as `Stdout` only).
    #[serde(default)]
    pub tty: bool,
    /// Attach to the container's own process instead of running `command`:
    /// stdin into its stdin FIFO, its output from its log, its exit at the end.
    #[serde(default)]
    pub attach: bool,
}

/// One frame of an exec session, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecFrame {
    /// Input for the command.
    Stdin(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The input ended.
    StdinEnd,
    /// Output.
    Stdout(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Error output.
    Stderr(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The command ended with this code (128 + signal when killed).
    Exit(i32),
    /// The command could not run.
    Error(ApiError),
    /// The client's terminal size (columns, rows), for a command run with a
    /// tty. Added last, so every older frame keeps its encoding; a node that
    /// predates it ends the session's input on it.
    Resize { width: u16, height: u16 },
}

/// A stream a master opens to a node over its tunnel: one request frame, then
/// the node answers as the request says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStream {
    /// A container's log, answered as [`ApiRequest::PodLogs`] is.
    Logs {
        /// The pod's uid (its directory on the node).
        uid: String,
        /// The container.
        container: String,
        /// The request's options (its namespace and name are informational).
        req: LogsRequest,
    },
    /// A command in a container, then [`ExecFrame`]s both ways.
    Exec {
        /// The pod's uid.
        uid: String,
        /// The container.
        container: String,
        /// The request.
        req: ExecRequest,
    },
    /// A connection to `port` on the pod's loopback, answered as
    /// [`ApiRequest::PodPortForward`] is.
    PortForward {
        /// The pod's uid.
        uid: String,
        /// The port.
        port: u16,
    },
}

/// A node's join request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeJoinRequest {
    /// The bootstrap token (`<id>.<secret>`).
    pub token: String,
    /// The node's name (becomes identity `node:<name>`).
    pub name: String,
    /// A certificate signing request (PEM) for the node's key, made on the node.
    pub csr: String,
    /// The certificate lifetime asked for, in seconds.
    pub lifetime_secs: u64,
}

impl std::fmt::Debug for NodeJoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeJoinRequest")
            .field("name", &self.name)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// What a joining (or renewing) node receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCert {
    /// The node's certificate (PEM), for identity `node:<name>`.
    pub cert: String,
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    /// Every master's QUIC address, as the cluster knows them.
    pub masters: Vec<String>,
}

impl ApiRequest {
    /// Safe to have in flight at two masters at once, the first answer
    /// counting: reads, and writes under a request id (the store applies an
    /// id once and answers every copy with the first outcome).
    pub fn may_hedge(&self) -> bool {
        match self {
            ApiRequest::Get { .. }
            | ApiRequest::Range(_)
            | ApiRequest::Status
            | ApiRequest::StatusHealth
            | ApiRequest::Version
            | ApiRequest::WriteOnce { .. }
            | ApiRequest::ObjectOnce { .. } => true,
            ApiRequest::Object(o) => {
                matches!(o.verb, crate::object::Verb::Get | crate::object::Verb::List)
            }
            ApiRequest::ObjectAs { req, .. } => req.may_hedge(),
            _ => false,
        }
    }

    /// Safe to send again to another master when the first one failed mid-request.
    pub fn is_idempotent(&self) -> bool {
        match self {
            ApiRequest::Write(w) => w.is_idempotent(),
            ApiRequest::Get { .. }
            | ApiRequest::Range(_)
            | ApiRequest::Watch(_)
            | ApiRequest::Status
            | ApiRequest::Snapshot { .. }
            | ApiRequest::WriteOnce { .. }
            | ApiRequest::ObjectOnce { .. } => true,
            ApiRequest::Object(o) => o.is_idempotent(),
            ApiRequest::ObjectAs { req, .. } => req.is_idempotent(),
            // Discovery reads; a join or renewal issues a certificate again.
            ApiRequest::NodeDiscover { .. }
            | ApiRequest::NodeJoin(_)
            | ApiRequest::RenewNodeCert { .. }
            | ApiRequest::IssueUserCert { .. }
            | ApiRequest::PodLogs(_)
            | ApiRequest::ReportMetrics(_) => true,
            ApiRequest::NodeTunnel | ApiRequest::PodExec(_) | ApiRequest::PodPortForward(_) => {
                false
            }
            ApiRequest::StatusHealth
            | ApiRequest::CaStatus
            | ApiRequest::ClusterTrust(_)
            | ApiRequest::Version => true,
            ApiRequest::CaRotate { .. }
            | ApiRequest::RemoveMember { .. }
            | ApiRequest::ReplaceMember { .. }
            | ApiRequest::Join(_) => false,
        }
    }
}

/// A master's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiResponse {
    /// The write applied, or failed on a precondition.
    Write(Result<WriteOutcome, KvError>),
    /// The key (if present) and the revision read at.
    Get {
        /// The key's entry.
        kv: Option<KeyValue>,
        /// Revision the read reflects.
        revision: u64,
    },
    /// A range page.
    Range(Result<RangeResponse, KvError>),
    /// Cluster status.
    Status(ClusterStatus),
    /// A member was removed.
    Removed,
    /// Join accepted.
    Joined(Box<JoinResponse>),
    /// The answer to an object request (errors are Kubernetes `Status` bodies).
    Object(ObjectResponse),
    /// The cluster CA and the proof that the master knows the token's secret.
    NodeDiscovered {
        /// CA certificate (PEM).
        ca_cert: String,
        /// [`crate::token::discovery_mac`] of the nonce and the CA.
        mac: Vec<u8>,
    },
    /// A node's certificate.
    NodeCert(Box<NodeCert>),
    /// A user's certificate (PEM) and the cluster CA (PEM).
    UserCert {
        /// The certificate.
        cert: String,
        /// The cluster CA certificate.
        ca_cert: String,
    },
    /// The master will open streams to the node over this connection.
    TunnelOpen,
    /// A node's metrics report was kept.
    Reported,
    /// Cluster status with members' health (see [`ApiRequest::StatusHealth`]).
    StatusHealth(Box<StatusHealth>),
    /// A dead voter was replaced: `id` is the promoted master's id.
    Replaced {
        /// The new voter.
        id: u64,
    },
    /// A CA rotation step was taken (see [`ApiRequest::CaRotate`]).
    CaRotated {
        /// The step taken.
        step: String,
        /// The CAs trusted now (PEM bundle): the admin's config takes it.
        trust: String,
        /// An admin certificate and key (PEM) from the CA issuing now, as
        /// kubeadm's `certs renew` re-issues `admin.conf`.
        admin_cert: String,
        /// Its key.
        admin_key: String,
    },
    /// Where a CA rotation stands (see [`ApiRequest::CaStatus`]).
    CaStatus(Box<CaStatus>),
    /// What a node should trust, and the CA issuing certificates now (PEM).
    ClusterTrust {
        /// The CAs trusted now (PEM bundle).
        trust: String,
        /// The issuing CA's certificate.
        signing_ca: String,
    },
    /// The answering master's versions (see [`ApiRequest::Version`]).
    Version(MasterVersion),
}

/// A master's binary version and the format of its data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterVersion {
    /// [`crate::binary_version`] of the answering master.
    pub binary: String,
    /// The format version of its data dir (`<data_dir>/FORMAT`).
    pub format: u32,
}

/// The answer to [`ApiRequest::CaStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaStatus {
    /// The last step taken (`trust`, `reissue`, `drop`), none if the cluster
    /// never rotated its CA.
    pub step: Option<String>,
    /// The CAs trusted: (hash, PEM), the issuing one first.
    pub trusted: Vec<(String, String)>,
    /// Each master and node with its report, if any.
    pub members: Vec<(String, Option<crate::carotation::MemberTls>)>,
    /// What the next step would refuse over (empty: nothing).
    pub blocking: Vec<String>,
}

/// One frame of a streamed snapshot (the answer to [`ApiRequest::Snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotPart {
    /// What follows: a snapshot file at `revision`, `bytes` long.
    Begin {
        /// The store revision the snapshot holds.
        revision: u64,
        /// The file's length.
        bytes: u64,
    },
    /// The next bytes of the file.
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The file is complete.
    End,
}

/// Why a request failed before reaching the store (or after, with no answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// Machine-readable class.
    pub code: ErrorCode,
    /// Human-readable message naming the problem.
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Error classes; the client uses them to decide whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request is malformed; do not retry.
    BadRequest,
    /// The peer has no valid identity for this request.
    Unauthenticated,
    /// The identity may not do this.
    Forbidden,
    /// No leader right now, or this master cannot serve; nothing was applied. Retry.
    Unavailable,
    /// The write reached a leader that failed before answering; it may have applied.
    Indeterminate,
    /// The watch's start revision is compacted; re-list.
    TooOld,
    /// A membership change was refused.
    Refused,
    /// A bug or storage failure.
    Internal,
}

/// One member of the cluster as seen by the serving master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Persisted master id.
    pub id: u64,
    /// QUIC address.
    pub addr: String,
    /// Voter (true) or learner.
    pub voter: bool,
    /// Highest log index known replicated to it (leader's view; None elsewhere).
    pub matched: Option<u64>,
    /// Entries it is behind the leader's last log index (leader's view).
    pub lag: Option<u64>,
}

/// `ferry cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Id of the serving master.
    pub serving: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Leader's address, if known.
    pub leader_addr: Option<String>,
    /// Current term.
    pub term: u64,
    /// Last log index on the serving master.
    pub last_log_index: u64,
    /// Committed index seen by the serving master.
    pub commit_index: u64,
    /// Applied index of the serving master.
    pub applied_index: u64,
    /// Members.
    pub members: Vec<MemberStatus>,
}

/// One member's health as the leader sees it: its last answer to the leader
/// (each member gets a heartbeat every `raft.heartbeat_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHealth {
    /// The member's id.
    pub id: u64,
    /// It answered the leader within the last [`StatusHealth::unreachable_after_ms`].
    pub reachable: bool,
    /// Milliseconds since it last answered the leader (`None`: never, since
    /// this leader's process started). 0 for the leader itself.
    pub last_contact_ms: Option<u64>,
    /// When unreachable: milliseconds since it last answered, or, if it never
    /// did, since the leader's first failed request to it (a lower bound).
    pub down_ms: Option<u64>,
}

/// The answer to [`ApiRequest::StatusHealth`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusHealth {
    /// What [`ApiRequest::Status`] answers.
    pub status: ClusterStatus,
    /// Each member's health, from the leader's view: empty when the serving
    /// master knows no leader that answers (its own view has none).
    pub health: Vec<MemberHealth>,
    /// A member silent for longer than this is unreachable.
    pub unreachable_after_ms: u64,
}

/// A master asking to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The secret half of the join token.
    pub secret: String,
    /// The joining master's QUIC address.
    pub addr: String,
    /// Promote to voter even if that makes the number of voters even.
    pub force: bool,
    /// The id this master was given by an earlier join attempt, if any.
    pub id: Option<u64>,
}

/// What a joining master receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// Its assigned id.
    pub id: u64,
    /// Cluster CA certificate (PEM).
    pub ca_cert: String,
    /// Cluster CA key (PEM): every master can admit later joiners and issue client certs.
    pub ca_key: String,
    /// The join secret, so this master can admit joiners too.
    pub secret: String,
    /// Its master certificate (PEM).
    pub cert: String,
    /// Its master key (PEM).
    pub key: String,
    /// Whether it was promoted to voter (false: stays learner to keep voters odd).
    pub voter: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bincode writes an enum's variant index first, so requests added at the
    /// end leave every older frame's bytes alone, and a decoder that predates
    /// a variant refuses it as a bad frame (the client then falls back).
    #[test]
    fn new_requests_are_appended_so_older_frames_keep_their_bytes() {
        let body = |r: &ApiRequest| crate::frame::encode(r).unwrap()[4..].to_vec();
        assert_eq!(body(&ApiRequest::Status), [4]);
        assert_eq!(body(&ApiRequest::NodeTunnel), [13]);
        assert_eq!(body(&ApiRequest::StatusHealth), [20]);
        let replace = ApiRequest::ReplaceMember {
            dead: 3,
            with: "127.0.0.1:1".into(),
            force: false,
        };
        assert_eq!(body(&replace)[0], 21);
        let as_ = ApiRequest::ObjectAs {
            as_: Impersonate {
                user: Some("bob".into()),
                ..Impersonate::default()
            },
            req: Box::new(ApiRequest::Object(Box::new(ObjectRequest::new(
                crate::object::Verb::List,
                "pods",
                None,
                None,
            )))),
        };
        let bytes = body(&as_);
        assert_eq!(bytes[0], 22);
        let rotate = ApiRequest::CaRotate {
            step: "trust".into(),
        };
        assert_eq!(body(&rotate)[0], 23);
        assert_eq!(body(&ApiRequest::CaStatus), [24]);
        let back: ApiRequest = crate::frame::decode(&bytes).unwrap();
        assert_eq!(back, as_);
        // Object and ObjectOnce keep their indices: an older master reads them.
        let plain = ApiRequest::Object(Box::new(ObjectRequest::new(
            crate::object::Verb::List,
            "pods",
            None,
            None,
        )));
        assert_eq!(body(&plain)[0], 7);
        let headers = Impersonate {
            user: Some("bob".into()),
            groups: vec!["ops".into()],
            uid: Some("u-1".into()),
            extra: vec![
                ("scopes".into(), "view".into()),
                ("a%2fb".into(), "x".into()),
            ],
        }
        .headers();
        assert_eq!(
            headers,
            [
                ("Impersonate-User".to_string(), "bob".to_string()),
                ("Impersonate-Uid".into(), "u-1".into()),
                ("Impersonate-Group".into(), "ops".into()),
                ("Impersonate-Extra-scopes".into(), "view".into()),
                ("Impersonate-Extra-a%252fb".into(), "x".into()),
            ]
        );
        assert_eq!(body(&ApiRequest::Version), [26]);
        let e = crate::frame::decode::<ApiRequest>(&[27]).unwrap_err();
        assert!(e.to_string().contains("27"), "{e}");
    }
}
