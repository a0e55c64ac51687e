//! Read index rounds shared by every linearizable read waiting at the leader.
//!
//! openraft 0.9's `ensure_linearizable` confirms leadership with a round of
//! heartbeats to every voter per call. Under thousands of concurrent reads (a
//! few thousand node agents registering at once) the followers drown in
//! confirmation rounds, AppendEntries time out behind them, and elections
//! follow. As etcd's read loop does, the reads that arrive while a round is
//! under way wait together for the next one, and one round answers them all.
//!
//! Why a read may not join the round already under way: that round's read
//! index is the leader's commit index when it began, which may precede a
//! write the reader saw acknowledged before it asked. A round that begins
//! after the read arrived reflects every write acknowledged before it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A round's result as each waiter receives it: the read index, or why
/// leadership was not confirmed.
pub type RoundResult = Result<u64, String>;

/// Reads waiting for the next round, and whether a round is running.
#[derive(Default)]
pub struct ReadRounds {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<oneshot::Sender<RoundResult>>,
}

impl ReadRounds {
    /// Waits for a round that begins after this call. When none runs, a task
    /// is spawned that runs rounds with `round`, one at a time and back to
    /// back, while reads keep arriving. Rounds run in their own task, so a
    /// reader that gives up strands nobody.
    pub async fn read<F, Fut>(self: &Arc<Self>, round: F) -> RoundResult
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = RoundResult> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let drive = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.waiting.push(tx);
            !std::mem::replace(&mut s.running, true)
        };
        if drive {
            let rounds = self.clone();
            tokio::spawn(async move { rounds.drive(round).await });
        }
        match rx.await {
            Ok(r) => r,
            // The runtime is shutting down and dropped the rounds' task.
            Err(_) => Err("the read's leadership check was abandoned".into()),
        }
    }

    async fn drive<F, Fut>(&self, round: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = RoundResult>,
    {
        loop {
            let batch = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.waiting.is_empty() {
                    s.running = false;
                    return;
                }
                std::mem::take(&mut s.waiting)
            };
            let r = round().await;
            for tx in batch {
                let _ = tx.send(r.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A thousand concurrent reads share a handful of rounds, and each is
    /// answered by a round that began after it arrived.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_rounds_that_begin_after_they_arrive() {
        let rounds = Arc::new(ReadRounds::default());
        let started = Arc::new(AtomicU64::new(0));
        let commit = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (rounds, started, commit) = (rounds.clone(), started.clone(), commit.clone());
            tasks.push(tokio::spawn(async move {
                // The commit index when this read arrives: its round must
                // report at least this.
                let seen = commit.fetch_add(1, Ordering::SeqCst) + 1;
                let got = rounds
                    .read(move || {
                        let (started, commit) = (started.clone(), commit.clone());
                        async move {
                            started.fetch_add(1, Ordering::SeqCst);
                            let at = commit.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok(at)
                        }
                    })
                    .await
                    .unwrap();
                assert!(
                    got >= seen,
                    "a round that began before the read: {got} < {seen}"
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = started.load(Ordering::SeqCst);
        assert!((1..100).contains(&n), "1000 reads took {n} rounds");
    }

    /// A failed round fails every read it answers; the next read starts a
    /// fresh round.
    #[tokio::test]
    async fn a_failed_round_fails_its_reads_and_the_next_starts_afresh() {
        let rounds = Arc::new(ReadRounds::default());
        let err = rounds.read(|| async { Err("no quorum".to_string()) }).await;
        assert_eq!(err, Err("no quorum".to_string()));
        assert_eq!(rounds.read(|| async { Ok(7) }).await, Ok(7));
    }

    /// A reader that gives up while its round runs strands nobody: the
    /// round goes on in its own task and answers the readers queued behind.
    #[tokio::test]
    async fn a_reader_that_gives_up_strands_nobody() {
        let rounds = Arc::new(ReadRounds::default());
        let r1 = rounds.clone();
        let first = tokio::spawn(async move {
            r1.read(|| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(1)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r2 = rounds.clone();
        let waiter = tokio::spawn(async move { r2.read(|| async { Ok(2) }).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was stranded")
            .unwrap();
        // Answered by the round the first reader's task started (the driver's
        // closure is the first reader's), which began after it arrived.
        assert_eq!(got, Ok(1));
    }
}
