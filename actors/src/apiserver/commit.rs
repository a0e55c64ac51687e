//! Committing one object write, resolving an unknown outcome.
//!
//! When the leader fails after a write was forwarded to it, the write may or
//! may not have committed. Once a new leader answers a linearizable read it
//! has committed everything the cluster will ever commit from the old term, so
//! the read settles it: the key holds our value (or, for a delete, is gone) —
//! the write applied; otherwise it never will, and sending it again is safe.
//! Clients thus see a definite answer instead of "indeterminate" whenever
//! their API server survives the leader.

use super::{ApiServer, Outcome};
use ferry_api::kv::{KvError, Write, WriteOp, WriteOutcome};
use ferry_api::proto::{ApiError, Consistency, ErrorCode};
use std::time::Duration;

/// Attempts before giving up on an unknown outcome.
const ATTEMPTS: usize = 3;

impl ApiServer {
    /// Writes `op` through Raft; an unknown outcome is resolved by a read.
    pub async fn commit(&self, op: WriteOp) -> Outcome<Result<WriteOutcome, KvError>> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match self.store.write(Write::Op(op.clone())).await {
                Ok(r) => return Ok(r),
                Err(e) if e.code == ErrorCode::Indeterminate => {
                    tracing::info!(
                        key = op.key(),
                        "write outcome unknown after a leader failure; reading to settle it"
                    );
                    if let Some(done) = self.settle(&op).await {
                        return Ok(Ok(done));
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| ApiError::new(ErrorCode::Indeterminate, "write outcome unknown"))
            .into())
    }

    /// `Some` when a linearizable read shows `op` applied; `None` when it did not
    /// (or no leader answered, in which case the retry reports that).
    async fn settle(&self, op: &WriteOp) -> Option<WriteOutcome> {
        for _ in 0..20 {
            match self.store.get(op.key(), Consistency::Linearizable).await {
                Ok((kv, revision)) => {
                    return match (op, kv) {
                        (WriteOp::Put { value, .. }, Some(kv)) if &kv.value == value => {
                            Some(WriteOutcome {
                                revision: kv.mod_revision,
                                prev: Vec::new(),
                            })
                        }
                        (WriteOp::Delete { .. }, None) => Some(WriteOutcome {
                            revision,
                            prev: Vec::new(),
                        }),
                        _ => None,
                    };
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        None
    }
}
