//! Committing one object write exactly once.
//!
//! Each object write gets one request id, kept across all its attempts; the
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
use std::time::Duration;
use tokio::time::Instant;

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
        let id = RequestId::random();
        let key = match &w {
            Write::Op(op) => op.key().to_string(),
            Write::Txn(ops) => ops.last().map(|o| o.key().to_string()).unwrap_or_default(),
            Write::Compact(rev) => format!("compact@{rev}"),
        };
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
            if e.code == ErrorCode::Indeterminate {
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
