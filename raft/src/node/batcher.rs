//! Group commit: writes arriving together at the leader become one Raft entry.
//!
//! openraft 0.9 appends and flushes one entry per `client_write`. The batcher
//! keeps up to `max_inflight_batches` entries in flight; while they are busy,
//! new writes queue and leave together as the next entry. A lone write under
//! no load goes out at once.

use super::WriteResult;
use crate::types::{Command, Raft};
use ferry_api::kv::Write;
use ferry_api::proto::{ApiError, ErrorCode};
use ferry_config::StoreLimits;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A write waiting for its batch.
pub struct Pending {
    pub write: Write,
    pub size: usize,
    pub tx: oneshot::Sender<WriteResult>,
}

pub async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, limits: StoreLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight_batches));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < limits.max_batch_ops && bytes < limits.max_batch_bytes {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.size;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(permit);
        });
    }
}

async fn commit(raft: &Raft, batch: Vec<Pending>) {
    let (writes, txs): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.write, p.tx)).unzip();
    let n = writes.len();
    tracing::trace!(writes = n, "group commit");
    match raft
        .client_write(Command::V1 {
            writes: Arc::new(writes),
        })
        .await
    {
        Ok(resp) if resp.data.results.len() == n => {
            for (tx, r) in txs.into_iter().zip(resp.data.results) {
                let _ = tx.send(Ok(r));
            }
        }
        Ok(resp) => fail(
            txs,
            ApiError::new(
                ErrorCode::Internal,
                format!(
                    "entry applied {} results for {n} writes",
                    resp.data.results.len()
                ),
            ),
        ),
        // Not appended, or appended and then truncated: definitely not applied.
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => fail(
            txs,
            ApiError::new(
                ErrorCode::Unavailable,
                format!("not the leader (leader: {:?}); retry", f.leader_id),
            ),
        ),
        Err(e) => fail(
            txs,
            ApiError::new(
                ErrorCode::Indeterminate,
                format!("raft failed while the write was in flight: {e}"),
            ),
        ),
    }
}

fn fail(txs: Vec<oneshot::Sender<WriteResult>>, e: ApiError) {
    for tx in txs {
        let _ = tx.send(Err(e.clone()));
    }
}
