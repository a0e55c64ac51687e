//! Committing one object write exactly once.
//!
//! Each object write gets one request id, kept across all its attempts (derived
//! from the client's id when the request carries one, see [`Once`]); the
//! store answers a repeat of a remembered id with the first outcome instead of
//! applying it again. So when an attempt's outcome is unknown — the leader
//! failed or moved after the write was forwarded, or nothing committed within
//! the batcher's timeout — sending it again is safe, and the answer is the
//! write's one real outcome (a retried create never answers AlreadyExists for
//! its own success, nor resurrects an object deleted meanwhile). Attempts go on
//! until [`DEADLINE`]; only then is an attempt that may have applied reported,
//! as `Indeterminate` — never as a later attempt's `Unavailable`, which would
//! say that nothing applied.

use super::{ApiServer, Outcome};
use ferry_api::kv::{KvError, RequestId, Write, WriteOp, WriteOutcome};
use ferry_api::proto::{ApiError, ErrorCode};
use std::cell::Cell;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    /// The client's request id of the object request being served, if it sent one.
    static ONCE: Once;
}

/// An object request's client-supplied id, and the store writes made under it.
///
/// Each store write the request makes (a create's retry with another generated
/// name, a patch's retry on conflict, ...) is one step; step `n` is written
/// under an id derived from the request's id and `n`, so a repeat of the whole
/// request makes the same writes under the same ids, in the same order, and
/// each answers the first outcome of its step.
pub struct Once {
    id: RequestId,
    attempt: u32,
    step: Cell<u64>,
    retried: Cell<bool>,
}

impl Once {
    /// The context of attempt `attempt` (1 = first) of request `id`.
    pub fn new(id: RequestId, attempt: u32) -> Once {
        Once {
            id,
            attempt,
            step: Cell::new(0),
            retried: Cell::new(false),
        }
    }

    /// Runs `f` (an object request) with this context.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        ONCE.scope(self, f).await
    }

    /// True when an outcome may be a repeat's: the client retried the request,
    /// or one of its store writes was sent more than once. Its answer is then
    /// read back from the store.
    pub fn repeated() -> bool {
        ONCE.try_with(|o| o.attempt > 1 || o.retried.get())
            .unwrap_or(false)
    }

    /// True when the client marked the request as a retry.
    pub fn is_retry() -> bool {
        ONCE.try_with(|o| o.attempt > 1).unwrap_or(false)
    }

    /// A value derived from the request id and the next step, without taking
    /// the step (a generated name, the same on every attempt); `None` without a
    /// client id.
    pub fn seed() -> Option<u128> {
        ONCE.try_with(|o| derive(o.id, o.step.get()).0 ^ 0x6e61_6d65)
            .ok()
    }

    /// The id of the request's next store write (a fresh one without a client id).
    fn next_id() -> RequestId {
        ONCE.try_with(|o| {
            let n = o.step.get();
            o.step.set(n + 1);
            derive(o.id, n)
        })
        .unwrap_or_else(|_| RequestId::random())
    }

    fn mark_retried() {
        let _ = ONCE.try_with(|o| o.retried.set(true));
    }
}

/// Step `n` of request `id`: step 0 is the id itself, later steps mix in `n`
/// (splitmix64 on the random half, so ids of different requests' steps do not meet).
pub fn derive(id: RequestId, n: u64) -> RequestId {
    if n == 0 {
        return id;
    }
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    // The high half (the id's time, see `RequestId::random`) is kept, so the
    // steps of one request are stored beside it; the low half is mixed.
    let hi = (id.0 >> 64) as u64;
    let lo = id.0 as u64;
    let lo = mix(lo ^ mix(n) ^ mix(n.rotate_left(17) ^ hi));
    RequestId((u128::from(hi) << 64) | u128::from(lo))
}

/// How long one object write keeps trying (longer than the store's 20 s
/// commit timeout, so an attempt that timed out is followed by another).
const DEADLINE: Duration = Duration::from_secs(30);

impl ApiServer {
    /// Writes `op` through Raft under one request id, retrying until it has an answer.
    pub async fn commit(&self, op: WriteOp) -> Outcome<Result<WriteOutcome, KvError>> {
        self.commit_write(Write::Op(op)).await
    }

    /// [`ApiServer::commit`] for any write (a guarded transaction, say).
    pub async fn commit_write(&self, w: Write) -> Outcome<Result<WriteOutcome, KvError>> {
        let id = Once::next_id();
        let deadline = Instant::now() + DEADLINE;
        let mut backoff = Duration::from_millis(20);
        // Set once an attempt may have applied.
        let mut unknown: Option<ApiError> = None;
        loop {
            let e = match self.store.write_once(id, w.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Indeterminate) => e,
                Err(e) => return Err(settled(unknown, e).into()),
            };
            Once::mark_retried();
            if e.code == ErrorCode::Indeterminate {
                let key = match &w {
                    Write::Op(op) => op.key(),
                    Write::Txn(ops) => ops.last().map_or("", |o| o.key()),
                    Write::Compact(_) => "(compaction)",
                };
                tracing::info!(%key, %id, error = %e.message, "write outcome unknown; sending it again");
                unknown.get_or_insert_with(|| e.clone());
            }
            if Instant::now() + backoff >= deadline {
                return Err(settled(unknown, e).into());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

/// The error to report: `last`, unless an earlier attempt may have applied.
fn settled(unknown: Option<ApiError>, last: ApiError) -> ApiError {
    match unknown {
        Some(first) if last.code != ErrorCode::Indeterminate => ApiError::new(
            ErrorCode::Indeterminate,
            format!(
                "{}; retrying for {} s then failed: {}",
                first.message,
                DEADLINE.as_secs(),
                last.message
            ),
        ),
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_of_a_request_get_distinct_ids_the_same_on_every_attempt() {
        let id = RequestId(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        let steps = || async { (0..4).map(|_| Once::next_id()).collect::<Vec<_>>() };
        let first = Once::new(id, 1).scope(steps()).await;
        let again = Once::new(id, 2).scope(steps()).await;
        assert_eq!(first, again);
        assert_eq!(first[0], id);
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), 4);
        // Without a client id every write gets a fresh one.
        assert_ne!(Once::next_id(), Once::next_id());
        assert!(!Once::repeated());
    }

    #[test]
    fn an_unavailable_after_an_unknown_outcome_is_not_safe_to_retry() {
        let unknown = ApiError::new(ErrorCode::Indeterminate, "leader moved");
        let later = ApiError::new(ErrorCode::Unavailable, "no Raft leader");
        let e = settled(Some(unknown.clone()), later.clone());
        assert_eq!(e.code, ErrorCode::Indeterminate);
        assert!(e.message.contains("leader moved") && e.message.contains("no Raft leader"));
        assert_eq!(settled(None, later.clone()), later);
        assert_eq!(settled(Some(unknown.clone()), unknown.clone()), unknown);
    }
}
