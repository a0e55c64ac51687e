//! A client of the masters: holds every master's address, keeps one QUIC
//! connection, and moves to another master when its master fails.
//!
//! Idempotent requests are retried on another master until the deadline: reads,
//! watches, and every write [`Client::write`] sends — it gives each write a
//! request id (`ApiRequest::WriteOnce`), and the store answers a repeat of an id
//! with the first outcome instead of applying it again — and every object write
//! [`Client::object`] sends (`ApiRequest::ObjectOnce`, one id per request, from
//! which the API server derives the id of each store write it makes). Only when the deadline
//! runs out after an attempt that may have applied is the answer
//! [`Error::Indeterminate`]. A bare `ApiRequest::Write` (no id) is retried only
//! when pinned to exact revisions, and a retry of it that fails its precondition
//! is `Indeterminate` too (the first attempt's own success would cause that).
//! Watches resume from their last revision.

use crate::frame::{read_frame, write_frame};
use crate::kv::{Expect, KeyValue, KvError, RequestId, WatchItem, Write, WriteOp, WriteOutcome};
use crate::object::{ObjectEvent, ObjectRequest, ObjectResponse};
use crate::proto::{
    ApiError, ApiRequest, ApiResponse, ClusterStatus, Consistency, ErrorCode, Impersonate,
    MasterVersion, RangeRequest, RangeResponse, SnapshotPart, StatusHealth, WatchRequest,
};
use crate::tls::{self, CertPair};
use crate::{Error, Result, ALPN_API, MASTER_SERVER_NAME};
use ferry_config::{ClientConfig, TransportLimits};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A client's connection closes after this long without a packet from its master.
const CLIENT_IDLE: Duration = Duration::from_millis(500);
/// Keep-alive interval of a client's connection.
const CLIENT_KEEPALIVE: Duration = Duration::from_millis(100);
/// A node's connection: pinged after a second without traffic (5,000 nodes'
/// pings reach the masters), closed after 3 s of silence (the masters accept
/// that: `tls::ACCEPTED_IDLE_MS`).
const NODE_KEEPALIVE: Duration = Duration::from_millis(1000);
const NODE_IDLE: Duration = Duration::from_millis(3000);
/// A dial that has not completed its handshake after this long gets company:
/// the next master is dialed too, and the first to answer wins.
const DIAL_STAGGER: Duration = Duration::from_millis(100);
/// A request still unanswered after this long is sent to the next master too,
/// when it may be in flight twice (see [`Client::call`]).
const HEDGE_AFTER: Duration = Duration::from_millis(400);
/// A handshake that has not completed after this long fails.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection-holding client. Cheap to share behind an `Arc`; requests run concurrently.
pub struct Client {
    masters: Vec<String>,
    endpoint: quinn::Endpoint,
    /// Replaced by [`Client::set_credentials`] (a renewed certificate); each
    /// dial takes the current one.
    quic: std::sync::RwLock<quinn::ClientConfig>,
    timeout: Duration,
    max_frame: usize,
    /// Keep-alive interval and idle timeout of this client's connections.
    timing: (Duration, Duration),
    current: Mutex<Option<(usize, quinn::Connection)>>,
    /// Whom object requests act as (`ferry --as`), if anyone.
    acting_as: Option<Impersonate>,
}

enum Attempt {
    /// The master answered (with a response or an error).
    Done(Result<ApiResponse>),
    /// The master failed before the request was sent: safe to retry anywhere.
    NotSent(Error),
    /// The master failed after the request was sent.
    Sent(Error),
}

impl Client {
    /// Builds a client from a client config.
    pub fn new(cfg: &ClientConfig) -> Result<Client> {
        Self::timed(cfg, (CLIENT_KEEPALIVE, CLIENT_IDLE))
    }

    /// A node agent's client: [`Client::new`] with a node's keep-alive (a
    /// ping after 1 s without traffic rather than every 100 ms: 5,000 nodes
    /// pinging every 300 ms sent a master 16,000 packets a second, which
    /// overflowed its socket and dropped Raft's heartbeats with them; a
    /// silent master's connection closes after 3 s, and a request unanswered
    /// meanwhile goes to the next master after 400 ms anyway).
    pub fn for_node(cfg: &ClientConfig) -> Result<Client> {
        Self::timed(cfg, (NODE_KEEPALIVE, NODE_IDLE))
    }

    fn timed(cfg: &ClientConfig, timing: (Duration, Duration)) -> Result<Client> {
        let quic = Self::quic_of(cfg, timing)?;
        let mut c = Self::with_quic(
            cfg.masters.clone(),
            quic,
            Duration::from_millis(cfg.timeout_ms),
        )?;
        c.timing = timing;
        Ok(c)
    }

    fn quic_of(
        cfg: &ClientConfig,
        (keepalive, idle): (Duration, Duration),
    ) -> Result<quinn::ClientConfig> {
        // A dead master's connection closes once it has been silent for
        // CLIENT_IDLE (keep-alives make a live one answer several times
        // meanwhile), so no request waits for the masters' longer idle timeout.
        let limits = TransportLimits {
            idle_timeout_ms: idle.as_millis() as u64,
            keepalive_ms: keepalive.as_millis() as u64,
            ..TransportLimits::default()
        };
        let pair = CertPair {
            cert_pem: cfg.client_cert.clone(),
            key_pem: cfg.client_key.clone(),
        };
        tls::client_config(&cfg.ca_cert, &pair, ALPN_API, &limits)
    }

    /// Takes `cfg`'s certificate and key (a renewed certificate) for every
    /// later dial; the open connection, and every clone of this client's
    /// `Arc` — watches included — carry on, and reconnect with them.
    pub fn set_credentials(&self, cfg: &ClientConfig) -> Result<()> {
        let quic = Self::quic_of(cfg, self.timing)?;
        *self.quic.write().unwrap_or_else(|e| e.into_inner()) = quic;
        Ok(())
    }

    fn quic(&self) -> quinn::ClientConfig {
        self.quic.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Builds a client from a ready quinn config (masters use this to talk to each other).
    pub fn with_quic(
        masters: Vec<String>,
        quic: quinn::ClientConfig,
        timeout: Duration,
    ) -> Result<Client> {
        let endpoint = tls::client_endpoint("0.0.0.0:0".parse().expect("static"))?;
        Ok(Client {
            masters,
            endpoint,
            quic: std::sync::RwLock::new(quic),
            timeout,
            // Answers may be large (a revision's events with previous values, a big range);
            // the server bounds what it sends.
            max_frame: crate::frame::ABSOLUTE_MAX_FRAME,
            timing: (CLIENT_KEEPALIVE, CLIENT_IDLE),
            current: Mutex::new(None),
            acting_as: None,
        })
    }

    /// This client with its object requests (and object watches) acting as
    /// `as_` ([`ApiRequest::ObjectAs`]); an empty `as_` changes nothing. Any
    /// other request it sends then fails with `BadRequest` rather than run
    /// as the caller's own identity.
    pub fn acting_as(mut self, as_: Impersonate) -> Client {
        self.acting_as = (!as_.is_empty()).then_some(as_);
        self
    }

    /// `req` as it goes on the wire: wrapped in [`ApiRequest::ObjectAs`]
    /// when this client acts as someone else.
    fn outgoing<'a>(&self, req: &'a ApiRequest) -> Result<Cow<'a, ApiRequest>> {
        let Some(as_) = &self.acting_as else {
            return Ok(Cow::Borrowed(req));
        };
        match req {
            ApiRequest::Object(_) | ApiRequest::ObjectOnce { .. } => {
                Ok(Cow::Owned(ApiRequest::ObjectAs {
                    as_: as_.clone(),
                    req: Box::new(req.clone()),
                }))
            }
            ApiRequest::ObjectAs { .. } => Ok(Cow::Borrowed(req)),
            _ => Err(Error::Api(ApiError::new(
                ErrorCode::BadRequest,
                "--as (impersonation) applies to object requests (get, list, watch, create, \
                 apply, patch, delete, ...) only; this command also sends requests that \
                 cannot act as another user (logs, exec, port-forward, kv, cluster, snapshot)",
            ))),
        }
    }

    /// The masters this client knows.
    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// Address of the master currently connected, if any.
    pub async fn current_master(&self) -> Option<String> {
        let cur = self.current.lock().await;
        cur.as_ref().map(|(i, _)| self.masters[*i].clone())
    }

    /// Connects to the master at `index` of the list and makes it current.
    pub async fn prefer(&self, addr: &str) -> Result<()> {
        let Some(i) = self.masters.iter().position(|m| m == addr) else {
            return Err(Error::Connect {
                addr: addr.to_string(),
                message: "not in this client's master list".into(),
            });
        };
        let conn = dial(&self.endpoint, self.quic(), &self.masters[i]).await?;
        *self.current.lock().await = Some((i, conn));
        Ok(())
    }

    /// Dials the masters in `order`, the first at once and each next one
    /// [`DIAL_STAGGER`] later while none has answered; the first handshake to
    /// complete wins (the others are dropped). A dead master thus delays a new
    /// connection by the stagger, not by a handshake timeout.
    async fn dial_first(
        &self,
        order: Vec<usize>,
    ) -> std::result::Result<(usize, quinn::Connection), String> {
        let mut dials = tokio::task::JoinSet::new();
        for (k, i) in order.into_iter().enumerate() {
            let (endpoint, quic, addr) =
                (self.endpoint.clone(), self.quic(), self.masters[i].clone());
            dials.spawn(async move {
                tokio::time::sleep(DIAL_STAGGER * k as u32).await;
                (i, dial(&endpoint, quic, &addr).await)
            });
        }
        let mut last = String::from("no masters configured");
        while let Some(done) = dials.join_next().await {
            match done {
                Ok((i, Ok(c))) => return Ok((i, c)),
                Ok((_, Err(e))) => last = e.to_string(),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The current connection, or a new one to the next master that answers.
    async fn connection(&self) -> Result<(usize, quinn::Connection)> {
        let mut cur = self.current.lock().await;
        if let Some((i, c)) = cur.as_ref() {
            if c.close_reason().is_none() {
                return Ok((*i, c.clone()));
            }
        }
        let start = cur.as_ref().map(|(i, _)| i + 1).unwrap_or(0);
        let n = self.masters.len();
        match self
            .dial_first((0..n).map(|k| (start + k) % n).collect())
            .await
        {
            Ok((i, c)) => {
                *cur = Some((i, c.clone()));
                Ok((i, c))
            }
            Err(last) => {
                *cur = None;
                Err(Error::NoMaster {
                    tried: self.masters.join(","),
                    last,
                })
            }
        }
    }

    async fn drop_connection(&self, index: usize) {
        let mut cur = self.current.lock().await;
        if let Some((i, c)) = cur.as_ref() {
            if *i == index {
                c.close(0u32.into(), b"failover");
                // Keep the index so the next dial starts after the failed master.
                *cur = None;
                drop(cur);
                self.advance_from(index).await;
            }
        }
    }

    /// Makes the next request go to the master after `index`, leaving the
    /// connection to `index` to the requests still on it (it closes with the
    /// last of them).
    async fn move_on_from(&self, index: usize) {
        let mut cur = self.current.lock().await;
        if cur.as_ref().is_some_and(|(i, _)| *i == index) {
            *cur = None;
            drop(cur);
            self.advance_from(index).await;
        }
    }

    async fn advance_from(&self, failed: usize) {
        let mut cur = self.current.lock().await;
        if cur.is_some() {
            return;
        }
        let n = self.masters.len();
        if let Ok(c) = self
            .dial_first((1..=n).map(|k| (failed + k) % n).collect())
            .await
        {
            *cur = Some(c);
        }
    }

    async fn attempt(&self, conn: &quinn::Connection, req: &ApiRequest) -> Attempt {
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => return Attempt::NotSent(Error::Stream(e.to_string())),
        };
        let req = match self.outgoing(req) {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(e)),
        };
        if let Err(e) = write_frame(&mut send, &*req).await {
            return Attempt::NotSent(e);
        }
        let _ = send.finish();
        match read_frame::<_, std::result::Result<ApiResponse, ApiError>>(&mut recv, self.max_frame)
            .await
        {
            Ok(Some(Ok(r))) => Attempt::Done(Ok(r)),
            Ok(Some(Err(e))) => Attempt::Done(Err(Error::Api(e))),
            Ok(None) => Attempt::Sent(Error::Truncated),
            Err(e @ (Error::Malformed(_) | Error::FrameTooLarge { .. })) => {
                Attempt::Done(Err(Error::Api(ApiError::new(
                    ErrorCode::Internal,
                    format!("bad response frame: {e}"),
                ))))
            }
            Err(e) => Attempt::Sent(e),
        }
    }

    /// Sends `req` as attempt `n` to master `i` over `conn`; when no answer
    /// came after [`HEDGE_AFTER`], sends attempt `n + 1` to the next master
    /// too. Returns the first answer that settles the request, or every
    /// attempt's failure (master, outcome) when none did within `left`.
    async fn attempt_hedged(
        &self,
        i: usize,
        conn: &quinn::Connection,
        req: &ApiRequest,
        n: u32,
        left: Duration,
    ) -> Vec<(usize, Attempt)> {
        let deadline = tokio::time::Instant::now() + left;
        let timed_out = || Attempt::Sent(Error::Stream("request timed out".into()));
        let this = numbered(req, n);
        let first = tokio::time::timeout_at(deadline, self.attempt(conn, &this));
        tokio::pin!(first);
        tokio::select! {
            o = &mut first => return vec![(i, o.unwrap_or_else(|_| timed_out()))],
            _ = tokio::time::sleep(HEDGE_AFTER.min(left)) => {}
        }
        tracing::debug!(master = %self.masters[i], "no answer yet; sending the request to the next master too");
        let copy = numbered(req, n + 1);
        let second = async {
            self.move_on_from(i).await;
            match self.connection().await {
                Ok((j, c)) if j != i => Some((
                    j,
                    tokio::time::timeout_at(deadline, self.attempt(&c, &copy))
                        .await
                        .unwrap_or_else(|_| timed_out()),
                )),
                // No other master answers: wait for the first.
                _ => None,
            }
        };
        tokio::pin!(second);
        let settles = |o: &Attempt| match o {
            Attempt::Done(Err(Error::Api(e))) => !retryable(e, req),
            Attempt::Done(_) => true,
            Attempt::NotSent(_) | Attempt::Sent(_) => false,
        };
        let mut failed = Vec::new();
        let (mut first_done, mut second_done) = (false, false);
        while !(first_done && second_done) {
            tokio::select! {
                o = &mut first, if !first_done => {
                    first_done = true;
                    let o = o.unwrap_or_else(|_| timed_out());
                    if settles(&o) {
                        return vec![(i, o)];
                    }
                    failed.push((i, o));
                }
                o = &mut second, if !second_done => {
                    second_done = true;
                    if let Some((j, o)) = o {
                        if settles(&o) {
                            return vec![(j, o)];
                        }
                        failed.push((j, o));
                    }
                }
            }
        }
        failed
    }

    /// Sends one request, failing over between masters as the request allows.
    /// A request that may be in flight twice ([`ApiRequest::may_hedge`]) and is
    /// still unanswered after [`HEDGE_AFTER`] is sent to the next master too:
    /// a master cut off from the others, which its clients still reach, holds
    /// what it cannot commit or confirm until the partition heals, while the
    /// others have elected a leader that can.
    pub async fn call(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(20);
        let mut last: Option<Error> = None;
        // Set once an attempt of this write may have applied (sent, no answer).
        let mut maybe_applied: Option<(String, String)> = None;
        let write = matches!(
            req,
            ApiRequest::Write(_) | ApiRequest::WriteOnce { .. } | ApiRequest::ObjectOnce { .. }
        );
        // A repeat of a write with an id answers the first outcome: it is the answer.
        let once = matches!(
            req,
            ApiRequest::WriteOnce { .. } | ApiRequest::ObjectOnce { .. }
        );
        // An object write's retries say so (see `numbered`).
        let mut sent = 0u32;
        let hedge = req.may_hedge() && self.masters.len() > 1;
        while Instant::now() < deadline {
            let (i, conn) = match self.connection().await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let outcomes = if hedge {
                self.attempt_hedged(i, &conn, req, sent + 1, left).await
            } else {
                let this = numbered(req, sent + 1);
                let outcome = match tokio::time::timeout(left, self.attempt(&conn, &this)).await {
                    Ok(o) => o,
                    Err(_) => Attempt::Sent(Error::Stream("request timed out".into())),
                };
                vec![(i, outcome)]
            };
            for (i, outcome) in outcomes {
                match outcome {
                    Attempt::Done(Ok(ApiResponse::Write(Err(failed))))
                        if maybe_applied.is_some() && !once =>
                    {
                        let (addr, message) = maybe_applied.expect("checked");
                        return Err(Error::Indeterminate {
                            addr,
                            message: format!(
                                "{message}; the retry then failed with \"{failed}\", as it would \
                                 if the first attempt had applied"
                            ),
                        });
                    }
                    Attempt::Done(Ok(resp)) => return Ok(resp),
                    Attempt::Done(Err(Error::Api(e))) if retryable(&e, req) => {
                        sent += 1;
                        if write && e.code == ErrorCode::Indeterminate {
                            maybe_applied
                                .get_or_insert((self.masters[i].clone(), e.message.clone()));
                        }
                        tracing::debug!(master = %self.masters[i], error = %e, "retrying at the next master");
                        last = Some(Error::Api(e));
                        // The next attempt goes to the next master: this one could
                        // not serve it (no leader it can reach, cut off, behind).
                        self.move_on_from(i).await;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                    }
                    Attempt::Done(Err(e)) => return Err(e),
                    Attempt::NotSent(e) => {
                        self.drop_connection(i).await;
                        last = Some(e);
                    }
                    Attempt::Sent(e) => {
                        tracing::debug!(master = %self.masters[i], error = %e, "no answer; the connection is dropped");
                        sent += 1;
                        self.drop_connection(i).await;
                        if !req.is_idempotent() {
                            return Err(Error::Indeterminate {
                                addr: self.masters[i].clone(),
                                message: e.to_string(),
                            });
                        }
                        if write {
                            maybe_applied.get_or_insert((self.masters[i].clone(), e.to_string()));
                        }
                        last = Some(e);
                    }
                }
            }
        }
        let last = last.unwrap_or_else(|| Error::NoMaster {
            tried: self.masters.join(","),
            last: "timed out".into(),
        });
        Err(match maybe_applied {
            Some((addr, message)) => Error::Indeterminate {
                addr,
                message: format!("{message}; retrying until the deadline then failed: {last}"),
            },
            None => last,
        })
    }

    /// Applies a write exactly once: under a new request id, retried across
    /// failovers until the client's deadline.
    pub async fn write(&self, w: Write) -> Result<std::result::Result<WriteOutcome, KvError>> {
        self.write_once(RequestId::random(), w).await
    }

    /// Applies a write under request id `id`: calling this again with the same
    /// id and write (say, after an `Indeterminate` answer) cannot apply it twice.
    pub async fn write_once(
        &self,
        id: RequestId,
        w: Write,
    ) -> Result<std::result::Result<WriteOutcome, KvError>> {
        match self.call(&ApiRequest::WriteOnce { id, write: w }).await? {
            ApiResponse::Write(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sets `key` to `value` with a precondition.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<std::result::Result<WriteOutcome, KvError>> {
        self.write(Write::Op(WriteOp::Put {
            key: key.to_string(),
            value,
            expect,
        }))
        .await
    }

    /// Deletes `key` with a precondition.
    pub async fn delete(
        &self,
        key: &str,
        expect: Expect,
    ) -> Result<std::result::Result<WriteOutcome, KvError>> {
        self.write(Write::Op(WriteOp::Delete {
            key: key.to_string(),
            expect,
        }))
        .await
    }

    /// Reads one key.
    pub async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<KeyValue>> {
        match self
            .call(&ApiRequest::Get {
                key: key.to_string(),
                consistency,
            })
            .await?
        {
            ApiResponse::Get { kv, .. } => Ok(kv),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Reads a page of keys.
    pub async fn range(
        &self,
        req: RangeRequest,
    ) -> Result<std::result::Result<RangeResponse, KvError>> {
        match self.call(&ApiRequest::Range(req)).await? {
            ApiResponse::Range(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Streams a snapshot of the whole store (admin only) into `out`; returns its
    /// revision and length. A broken stream is an error (the next call goes to
    /// another master); `out` then holds a partial file the caller discards.
    pub async fn snapshot(&self, local: bool, out: &mut impl std::io::Write) -> Result<(u64, u64)> {
        let (i, conn) = self.connection().await?;
        let streamed = async {
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| Error::Stream(e.to_string()))?;
            write_frame(&mut send, &ApiRequest::Snapshot { local }).await?;
            let _ = send.finish();
            let mut begun: Option<(u64, u64)> = None;
            let mut got = 0u64;
            loop {
                let part = read_frame::<_, std::result::Result<SnapshotPart, ApiError>>(
                    &mut recv,
                    self.max_frame,
                )
                .await?
                .ok_or(Error::Truncated)?
                .map_err(Error::Api)?;
                match (part, begun) {
                    (SnapshotPart::Begin { revision, bytes }, None) => {
                        begun = Some((revision, bytes))
                    }
                    (SnapshotPart::Chunk(c), Some((_, bytes))) => {
                        got += c.len() as u64;
                        if got > bytes {
                            return Err(Error::Unexpected(format!(
                                "snapshot longer than the {bytes} bytes announced"
                            )));
                        }
                        out.write_all(&c)
                            .map_err(|e| Error::Stream(format!("writing the snapshot: {e}")))?;
                    }
                    (SnapshotPart::End, Some((revision, bytes))) if got == bytes => {
                        return Ok((revision, bytes))
                    }
                    (part, _) => {
                        return Err(Error::Unexpected(format!(
                            "snapshot frame out of order after {got} bytes: {}",
                            match part {
                                SnapshotPart::Begin { .. } => "Begin",
                                SnapshotPart::Chunk(_) => "Chunk",
                                SnapshotPart::End => "End",
                            }
                        )))
                    }
                }
            }
        };
        let r = streamed.await;
        if matches!(r, Err(Error::Stream(_) | Error::Truncated)) {
            self.drop_connection(i).await;
        }
        r
    }

    /// Cluster status from whichever master answers.
    pub async fn status(&self) -> Result<ClusterStatus> {
        match self.call(&ApiRequest::Status).await? {
            ApiResponse::Status(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Cluster status with each member's health as the leader sees it. A
    /// master that predates health reports answers `BadRequest`: its plain
    /// status then comes with no health.
    pub async fn status_health(&self) -> Result<StatusHealth> {
        match self.call(&ApiRequest::StatusHealth).await {
            Ok(ApiResponse::StatusHealth(s)) => Ok(*s),
            Ok(other) => Err(Error::Unexpected(format!("{other:?}"))),
            Err(Error::Api(e)) if e.code == ErrorCode::BadRequest => Ok(StatusHealth {
                status: self.status().await?,
                health: Vec::new(),
                unreachable_after_ms: 0,
            }),
            Err(e) => Err(e),
        }
    }

    /// The versions of the master this client reaches (give it one address to
    /// ask a given master); `None` when that master predates the question.
    pub async fn version(&self) -> Result<Option<MasterVersion>> {
        match self.call(&ApiRequest::Version).await {
            Ok(ApiResponse::Version(v)) => Ok(Some(v)),
            Ok(other) => Err(Error::Unexpected(format!("{other:?}"))),
            Err(Error::Api(e)) if e.code == ErrorCode::BadRequest => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts a watch that survives master failures.
    pub fn watch(
        self: &Arc<Self>,
        prefix: &str,
        after_revision: Option<u64>,
        bookmark_ms: u64,
    ) -> Watch {
        Watch::new(
            self,
            WatchRequest {
                prefix: prefix.to_string(),
                after_revision,
                bookmark_ms,
            },
        )
    }

    /// Sends one object request; Kubernetes errors come back as the answer's `Status`.
    ///
    /// A write (create, update, patch, delete, a subresource write) goes out as
    /// `ApiRequest::ObjectOnce` under one new request id kept across all its
    /// attempts, so it is retried on another master — after a lost connection,
    /// `Unavailable` or `Indeterminate` — until the deadline, and applies once.
    pub async fn object(&self, req: ObjectRequest) -> Result<ObjectResponse> {
        self.object_once(RequestId::random(), req).await
    }

    /// [`Client::object`] under request id `id` (used by writes only): calling
    /// this again with the same id and request cannot apply it twice.
    pub async fn object_once(&self, id: RequestId, req: ObjectRequest) -> Result<ObjectResponse> {
        let req = if req.verb.is_read() {
            ApiRequest::Object(Box::new(req))
        } else {
            ApiRequest::ObjectOnce {
                id,
                attempt: 1,
                req: Box::new(req),
            }
        };
        match self.call(&req).await? {
            ApiResponse::Object(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends `req` to the current master (see [`Client::prefer`]) and returns
    /// its answer's stream, for requests answered by a stream of frames (logs).
    /// Not retried: the caller decides.
    pub async fn open_stream(&self, req: &ApiRequest) -> Result<quinn::RecvStream> {
        let (mut send, recv) = self.open_duplex(req).await?;
        let _ = send.finish();
        Ok(recv)
    }

    /// Like [`Client::open_stream`], keeping the sending side open for the
    /// caller (exec sessions).
    pub async fn open_duplex(
        &self,
        req: &ApiRequest,
    ) -> Result<(quinn::SendStream, quinn::RecvStream)> {
        let req = self.outgoing(req)?;
        let (_, conn) = self.connection().await?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| Error::Stream(e.to_string()))?;
        write_frame(&mut send, &*req).await?;
        Ok((send, recv))
    }

    /// Starts an object watch that survives master failures (resuming after the
    /// last event's resourceVersion).
    pub fn watch_objects(self: &Arc<Self>, req: ObjectRequest) -> Watch<ObjectRequest> {
        Watch::new(self, req)
    }
}

/// One QUIC connection to `addr`, or an error once [`HANDSHAKE_TIMEOUT`] passes.
async fn dial(
    endpoint: &quinn::Endpoint,
    quic: quinn::ClientConfig,
    addr: &str,
) -> Result<quinn::Connection> {
    let sock: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| Error::Connect {
            addr: addr.to_string(),
            message: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::Connect {
            addr: addr.to_string(),
            message: "no address".into(),
        })?;
    let connecting = endpoint
        .connect_with(quic, sock, MASTER_SERVER_NAME)
        .map_err(|e| Error::Connect {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| Error::Connect {
            addr: addr.to_string(),
            message: "handshake timed out".into(),
        })?
        .map_err(|e| Error::Connect {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    Ok(conn)
}

/// `req` as attempt `n` (1 = first): an object write's retries say so, and
/// their answers are read back from the store.
fn numbered(req: &ApiRequest, n: u32) -> Cow<'_, ApiRequest> {
    match req {
        ApiRequest::ObjectOnce { id, req: o, .. } if n > 1 => Cow::Owned(ApiRequest::ObjectOnce {
            id: *id,
            attempt: n,
            req: o.clone(),
        }),
        _ => Cow::Borrowed(req),
    }
}

fn retryable(e: &ApiError, req: &ApiRequest) -> bool {
    match e.code {
        ErrorCode::Unavailable => true,
        ErrorCode::Indeterminate => req.is_idempotent(),
        _ => false,
    }
}

/// What a resumable watch asks for and how its items advance the resume point.
pub trait WatchKind: Clone + Send {
    /// One streamed item.
    type Item: serde::de::DeserializeOwned + Send + Clone;
    /// The request that (re)starts the stream.
    fn request(&self) -> ApiRequest;
    /// The revision an item reports (0 = none, e.g. one of a watch's initial objects).
    fn revision(item: &Self::Item) -> u64;
    /// Whether the item is a change (deduplicated after a failover) rather than progress.
    fn is_change(item: &Self::Item) -> bool;
    /// The last revision delivered.
    fn after(&self) -> Option<u64>;
    /// Resume after `revision` from now on.
    fn resume_after(&mut self, revision: u64);
    /// An initial object's identity and version (see [`Initial`]); `None`: not tracked.
    fn initial_identity(_item: &Self::Item) -> Option<(String, String)> {
        None
    }
    /// `item` as an event of type `kind` (`MODIFIED`, `DELETED`), with no resume point.
    fn relabel(item: Self::Item, _kind: &str) -> Self::Item {
        item
    }
}

impl WatchKind for WatchRequest {
    type Item = WatchItem;
    fn request(&self) -> ApiRequest {
        ApiRequest::Watch(self.clone())
    }
    fn revision(item: &WatchItem) -> u64 {
        item.revision()
    }
    fn is_change(item: &WatchItem) -> bool {
        matches!(item, WatchItem::Events { .. })
    }
    fn after(&self) -> Option<u64> {
        self.after_revision
    }
    fn resume_after(&mut self, revision: u64) {
        self.after_revision = Some(revision);
    }
}

impl WatchKind for ObjectRequest {
    type Item = ObjectEvent;
    fn request(&self) -> ApiRequest {
        ApiRequest::Object(Box::new(self.clone()))
    }
    fn revision(item: &ObjectEvent) -> u64 {
        item.revision
    }
    fn is_change(item: &ObjectEvent) -> bool {
        item.kind != "BOOKMARK"
    }
    fn after(&self) -> Option<u64> {
        self.list
            .resource_version
            .as_deref()
            .and_then(|r| r.parse().ok())
    }
    fn resume_after(&mut self, revision: u64) {
        self.list.resource_version = Some(revision.to_string());
    }
    fn initial_identity(item: &ObjectEvent) -> Option<(String, String)> {
        if item.kind != "ADDED" {
            return None;
        }
        let obj: serde_json::Value = serde_json::from_slice(&item.object).ok()?;
        let m = obj.get("metadata")?;
        let field = |f: &str| m.get(f).and_then(|v| v.as_str()).unwrap_or_default();
        Some((
            format!("{}/{}", field("namespace"), field("name")),
            field("resourceVersion").to_string(),
        ))
    }
    fn relabel(mut item: ObjectEvent, kind: &str) -> ObjectEvent {
        item.kind = kind.to_string();
        item.revision = 0;
        item
    }
}

/// The initial objects a watch opened without a revision has delivered.
///
/// They carry no resume point, so when the stream breaks among them the watch
/// starts over on another master, which lists again at its own, newer revision.
/// Replayed against what was delivered, that second list repeats nothing: an
/// object already delivered at the same version is skipped, one at a newer
/// version comes as `MODIFIED`, and once the list is complete every delivered
/// object it no longer holds comes as `DELETED`.
struct Initial<I> {
    /// Identity → (version, last delivered item).
    delivered: HashMap<String, (String, I)>,
    /// Identities the current list has shown since the last restart.
    relisted: HashSet<String>,
    restarted: bool,
}

impl<I: Clone> Initial<I> {
    fn new() -> Self {
        Initial {
            delivered: HashMap::new(),
            relisted: HashSet::new(),
            restarted: false,
        }
    }

    /// What to deliver for `item` of the current list, if anything.
    fn admit<K: WatchKind<Item = I>>(&mut self, item: I) -> Option<I> {
        let Some((id, version)) = K::initial_identity(&item) else {
            return Some(item);
        };
        let out = if !self.restarted {
            Some(item.clone())
        } else {
            self.relisted.insert(id.clone());
            match self.delivered.get(&id) {
                Some((v, _)) if *v == version => None,
                Some(_) => Some(K::relabel(item.clone(), "MODIFIED")),
                None => Some(item.clone()),
            }
        };
        self.delivered.insert(id, (version, item));
        out
    }

    /// The stream broke among the initial objects: a new list follows.
    fn restart(&mut self) {
        self.restarted = true;
        self.relisted.clear();
    }

    /// The list is complete: `DELETED` for what it no longer holds, in identity order.
    fn finish<K: WatchKind<Item = I>>(self) -> Vec<I> {
        if !self.restarted {
            return Vec::new();
        }
        let mut gone: Vec<(String, I)> = self
            .delivered
            .into_iter()
            .filter(|(id, _)| !self.relisted.contains(id))
            .map(|(id, (_, item))| (id, K::relabel(item, "DELETED")))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        gone.into_iter().map(|(_, item)| item).collect()
    }
}

/// A watch that reconnects to another master and resumes after the last revision it delivered.
pub struct Watch<K: WatchKind = WatchRequest> {
    client: Arc<Client>,
    req: K,
    stream: Option<(usize, quinn::RecvStream, quinn::SendStream)>,
    /// Until the first resume point, when opened without one.
    initial: Option<Initial<K::Item>>,
    /// Items decided but not yet returned.
    queued: VecDeque<K::Item>,
    /// The revision of the last change or bookmark delivered, and how many
    /// changes of it were delivered: one group-committed Raft entry gives
    /// several changes one revision, so a stream cut among them resumes
    /// after the revision before and skips that many.
    at: (u64, usize),
    /// Changes of revision `at.0` still to skip on a resumed stream.
    skip: usize,
}

impl<K: WatchKind> Watch<K> {
    /// A watch of `req` through `client`.
    pub fn new(client: &Arc<Client>, req: K) -> Self {
        Watch {
            client: client.clone(),
            initial: (req.after().unwrap_or(0) == 0).then(Initial::new),
            req,
            stream: None,
            queued: VecDeque::new(),
            at: (0, 0),
            skip: 0,
        }
    }

    /// The last revision delivered (events or bookmark), if any.
    pub fn revision(&self) -> Option<u64> {
        match self.at.0 {
            0 => self.req.after(),
            at => Some(at),
        }
    }

    /// Records `item` (at `rev`) as delivered; false when a resumed stream
    /// repeats it.
    fn deliver(&mut self, item: &K::Item, rev: u64) -> bool {
        let (at, count) = self.at;
        if !K::is_change(item) {
            // A bookmark: everything up to `rev` has been sent.
            if rev >= at {
                self.at = (rev, 0);
                self.skip = 0;
                self.req.resume_after(rev);
            }
            return true;
        }
        if rev < at {
            return false;
        }
        if rev == at {
            if self.skip > 0 {
                self.skip -= 1;
                return false;
            }
            self.at = (rev, count + 1);
        } else {
            self.at = (rev, 1);
            self.skip = 0;
        }
        // Reopened, the stream replays this revision; `skip` drops what
        // was delivered of it.
        self.req.resume_after(rev - 1);
        true
    }

    /// The next item; reconnects transparently. Errors only when no master
    /// answers within the client's timeout, or the revision is compacted.
    pub async fn next(&mut self) -> Result<K::Item> {
        if let Some(item) = self.queued.pop_front() {
            return Ok(item);
        }
        // The client's timeout bounds the search for a master, from the moment
        // a stream is missing: time spent waiting on a healthy stream (or
        // frozen with the whole process) does not count.
        let mut deadline = None;
        let mut last = None;
        loop {
            if self.stream.is_none() {
                let deadline =
                    *deadline.get_or_insert_with(|| Instant::now() + self.client.timeout);
                if Instant::now() > deadline {
                    return Err(last.unwrap_or(Error::NoMaster {
                        tried: self.client.masters.join(","),
                        last: "watch timed out".into(),
                    }));
                }
                match self.open().await {
                    Ok(s) => self.stream = Some(s),
                    Err(Error::Api(e)) if e.code != ErrorCode::Unavailable => {
                        return Err(Error::Api(e))
                    }
                    Err(e) => {
                        last = Some(e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let (i, recv, _) = self.stream.as_mut().expect("stream set above");
            let idx = *i;
            match read_frame::<_, std::result::Result<K::Item, ApiError>>(
                recv,
                self.client.max_frame,
            )
            .await
            {
                Ok(Some(Ok(item))) => {
                    let rev = K::revision(&item);
                    if let Some(initial) = self.initial.as_mut() {
                        let item = initial.admit::<K>(item);
                        if rev == 0 {
                            match item {
                                Some(item) => return Ok(item),
                                None => continue,
                            }
                        }
                        // The first resume point: the initial objects are complete.
                        let initial = self.initial.take().expect("checked above");
                        self.queued.extend(initial.finish::<K>());
                        self.req.resume_after(rev);
                        if let Some(item) = item {
                            if self.deliver(&item, rev) {
                                self.queued.push_back(item);
                            }
                        }
                        match self.queued.pop_front() {
                            Some(item) => return Ok(item),
                            None => continue,
                        }
                    }
                    if rev == 0 {
                        return Ok(item);
                    }
                    if !self.deliver(&item, rev) {
                        continue; // already delivered before the stream broke
                    }
                    return Ok(item);
                }
                Ok(Some(Err(e))) if e.code == ErrorCode::Unavailable => {
                    self.stream = None;
                    self.restart_initial();
                    last = Some(Error::Api(e));
                }
                Ok(Some(Err(e))) => return Err(Error::Api(e)),
                Ok(None) | Err(_) => {
                    self.stream = None;
                    self.restart_initial();
                    self.client.drop_connection(idx).await;
                }
            }
        }
    }

    fn restart_initial(&mut self) {
        if let Some(initial) = self.initial.as_mut() {
            initial.restart();
        }
        // The next stream replays the changes of `at` delivered so far.
        self.skip = self.at.1;
    }

    async fn open(&self) -> Result<(usize, quinn::RecvStream, quinn::SendStream)> {
        let (i, conn) = self.client.connection().await?;
        let (mut send, recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => {
                self.client.drop_connection(i).await;
                return Err(Error::Stream(e.to_string()));
            }
        };
        let req = self.req.request();
        write_frame(&mut send, &*self.client.outgoing(&req)?).await?;
        Ok((i, recv, send))
    }
}

/// Sends `req` alone on a fresh connection to `target` made with `quic`, and
/// reads the one answer (joins, which need their own TLS config). No timeout:
/// the caller bounds it. `Err` is a transport failure, as text.
pub async fn request_once(
    endpoint: &quinn::Endpoint,
    quic: &quinn::ClientConfig,
    target: SocketAddr,
    req: &ApiRequest,
) -> std::result::Result<std::result::Result<ApiResponse, ApiError>, String> {
    let conn = endpoint
        .connect_with(quic.clone(), target, crate::MASTER_SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, req)
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    let answer = read_frame::<_, std::result::Result<ApiResponse, ApiError>>(&mut recv, 1 << 20)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the master closed the stream".to_string());
    conn.close(0u32.into(), b"done");
    answer
}
