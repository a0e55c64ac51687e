//! Group commit: writes arriving together at the leader become one Raft entry.
//!
//! openraft 0.9 appends and flushes one entry per `client_write`. The batcher
//! keeps up to `max_inflight_batches` entries in flight; while they are busy,
//! new writes queue and leave together as the next entry. A lone write under
//! no load goes out at once.
//!
//! Under load, the writers an entry answers write again within a fraction of a
//! millisecond, just after the next entry has left with the writers that queued
//! meanwhile; left alone, the writers settle into two cohorts that take turns,
//! each waiting two rounds. So a batch waits briefly (at most [`REGROUP_WAIT`]
//! after the previous round ended) for as many writes as the last round
//! answered plus those already queued.

use super::WriteResult;
use crate::types::{Command, Raft};
use ferry_api::kv::{RequestId, Write};
use ferry_api::proto::{ApiError, ErrorCode};
use ferry_config::StoreLimits;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

/// How long after a round ends the next batch waits for that round's writers.
const REGROUP_WAIT: Duration = Duration::from_micros(2000);

/// A write waiting for its batch.
pub struct Pending {
    pub id: RequestId,
    pub write: Write,
    pub size: usize,
    pub tx: oneshot::Sender<WriteResult>,
}

/// How long a batch may wait for commit before its writers are told the outcome is unknown.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, limits: StoreLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight_batches));
    let answered = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let deadline = Instant::now() + REGROUP_WAIT;
        let expected = answered.swap(0, Ordering::Relaxed) + rx.len();
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < limits.max_batch_ops && bytes < limits.max_batch_bytes {
            let next = match rx.try_recv() {
                Ok(p) => Some(p),
                Err(TryRecvError::Empty) if batch.len() < expected => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(p) = next else { break };
            bytes += p.size;
            batch.push(p);
        }
        let raft = raft.clone();
        let answered = answered.clone();
        tokio::spawn(async move {
            let n = batch.len();
            commit(&raft, batch).await;
            answered.fetch_add(n, Ordering::Relaxed);
            drop(permit);
        });
    }
}

async fn commit(raft: &Raft, batch: Vec<Pending>) {
    let n = batch.len();
    let (mut writes, mut ids, mut txs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in batch {
        writes.push(p.write);
        ids.push(p.id);
        txs.push(p.tx);
    }
    tracing::trace!(writes = n, "group commit");
    // Jumps of the wall clock while this master runs do not move the stamps.
    let at_ms = ferry_api::clock::steady_unix_ms();
    // The term this master leads in as the entry goes out (none: a write
    // racing an election, left to openraft's answer).
    let leading = {
        let m = raft.metrics();
        let m = m.borrow();
        (m.state == openraft::ServerState::Leader).then_some(m.current_term)
    };
    let write = raft.client_write(Command::V2 {
        writes: Arc::new(writes),
        ids: Arc::new(ids),
        at_ms,
    });
    let answer = tokio::select! {
        r = tokio::time::timeout(COMMIT_TIMEOUT, write) => r,
        // openraft may never answer the entries of a term this master no
        // longer leads (a snapshot installed from the next leader replaces
        // them): without this, they held their slots for COMMIT_TIMEOUT, and
        // a master that led again within it took no write meanwhile.
        () = deposed(raft, leading) => Ok(Err(RaftError::APIError(
            ClientWriteError::ForwardToLeader(openraft::error::ForwardToLeader::empty()),
        ))),
    };
    match answer {
        Ok(Ok(resp)) if resp.data.results.len() == n => {
            for (tx, r) in txs.into_iter().zip(resp.data.results) {
                let _ = tx.send(Ok(r));
            }
        }
        Ok(Ok(resp)) => fail(
            txs,
            ApiError::new(
                ErrorCode::Internal,
                format!("entry applied {} results for {n} writes", resp.data.results.len()),
            ),
        ),
        // openraft also answers ForwardToLeader for entries it truncates, and a
        // truncation after a snapshot install can cover entries the new leader
        // committed: the write may have applied.
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => fail(
            txs,
            ApiError::new(
                ErrorCode::Indeterminate,
                format!("leadership moved (to {:?}) while the write was in flight; read the key to find out", f.leader_id),
            ),
        ),
        Ok(Err(e)) => fail(
            txs,
            ApiError::new(
                ErrorCode::Indeterminate,
                format!("raft failed while the write was in flight: {e}"),
            ),
        ),
        // A deposed leader may never answer entries a snapshot replaced; free the slot.
        Err(_) => fail(
            txs,
            ApiError::new(
                ErrorCode::Indeterminate,
                format!("no commit within {}s; the write may still apply", COMMIT_TIMEOUT.as_secs()),
            ),
        ),
    }
}

/// Resolves once this master no longer leads in the term it led in
/// (`None`: never).
async fn deposed(raft: &Raft, leading: Option<u64>) {
    let Some(term) = leading else {
        return std::future::pending().await;
    };
    let mut rx = raft.metrics();
    loop {
        {
            let m = rx.borrow_and_update();
            if m.current_term != term || m.state != openraft::ServerState::Leader {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn fail(txs: Vec<oneshot::Sender<WriteResult>>, e: ApiError) {
    for tx in txs {
        let _ = tx.send(Err(e.clone()));
    }
}
