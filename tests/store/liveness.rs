//! A follower that is slow to receive or to sync large AppendEntries keeps the
//! leader it has, and writes still commit (issue 16: under load, the two live
//! masters of a 3-master cluster with one down elected each other up to term
//! 197 and committed nothing for 90 s).
//!
//! One follower is stopped (so every commit needs the slow one), then the slow
//! step is injected with a fault point and 1 MiB values are written through the
//! leader. The slow step takes longer than the follower's silence budget (the
//! leader's lease, `election_max_ms`, plus its own election timeout) and than
//! the leader's wait for a heartbeat's answer.

use crate::harness::TestCluster;
use ferry_api::kv::Expect;
use std::time::Duration;

/// How late the slow step is: more than the harness's silence budget (lease
/// 600 ms + election timeout up to 600 ms) and than openraft's timeout for an
/// AppendEntries before the fix (`max(heartbeat, election_min)` = 300 ms).
const SLOW: Duration = Duration::from_millis(1500);

/// Writes `n` 1 MiB values through `leader`; each must commit, and no master
/// may change term: nothing stood for election while the leader was alive.
async fn large_writes_commit_without_elections(
    c: &TestCluster,
    leader: usize,
    slow: usize,
    n: usize,
) {
    let term = |i: usize| c.master(i).store.raft().metrics().borrow().current_term;
    let before = (term(leader), term(slow));
    let value = vec![b'v'; 1024 * 1024];
    for k in 0..n {
        let key = format!("/slow/{k}");
        // A client whose connection dropped retries (the write is idempotent):
        // what counts is that it commits and that no term passes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let put = c.local(leader).put(&key, value.clone(), Expect::Any);
            let res = tokio::time::timeout_at(deadline, put).await;
            let terms = (term(leader), term(slow));
            match res {
                Ok(Ok(Ok(_))) => break,
                Ok(Ok(Err(e))) => panic!("put {key}: {e}"),
                Ok(Err(e)) if tokio::time::Instant::now() < deadline => {
                    eprintln!("put {key} failed, retrying: {e}")
                }
                Ok(Err(e)) => panic!(
                    "put {key} failed: {e}; terms (leader, slow follower) {before:?} -> {terms:?}"
                ),
                Err(_) => panic!(
                    "put {key} did not commit within 60 s; terms (leader, slow follower) \
                     {before:?} -> {terms:?}"
                ),
            }
        }
    }
    let after = (term(leader), term(slow));
    assert_eq!(
        after, before,
        "a master stood for election while the leader was alive: terms (leader, slow \
         follower) {before:?} -> {after:?}"
    );
    let id = c.master(leader).id;
    assert_eq!(
        c.master(slow).store.raft().current_leader().await,
        Some(id),
        "the slow follower no longer follows the leader"
    );
}

/// Stops one follower; returns (leader, the other follower).
async fn one_follower_down(c: &mut TestCluster) -> (usize, usize) {
    let leader = c.leader().await;
    let gone = c.follower().await;
    c.stop(gone).await;
    let slow = c
        .running()
        .find(|i| *i != leader)
        .expect("a second follower");
    (leader, slow)
}

/// Each AppendEntries carrying entries reaches the follower's Raft `SLOW` late
/// (a starved receiver, a slow network). Before the fix the leader sent no
/// heartbeat while such a request was in flight and gave it up after 300 ms:
/// the follower stood for election again and again, and nothing committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_appends_arrive_late_keeps_its_leader() {
    let mut c = TestCluster::new(3).await;
    let (leader, slow) = one_follower_down(&mut c).await;
    let _late = ferry_raft::fault::set_delay("append_entries", &c.data_dir(slow), SLOW);
    large_writes_commit_without_elections(&c, leader, slow, 3).await;
}

/// Each fsync of the follower's store takes `SLOW` (a disk shared with heavy
/// synced writes): its Raft is busy syncing the leader's entries for longer than
/// its election timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_slow_disk_keeps_its_leader() {
    let mut c = TestCluster::new(3).await;
    let (leader, slow) = one_follower_down(&mut c).await;
    let _slow_disk =
        ferry_raft::fault::set("fsync", &c.data_dir(slow), |_| std::thread::sleep(SLOW));
    large_writes_commit_without_elections(&c, leader, slow, 3).await;
}

/// Heartbeat 40 ms, elections 100-200 ms: a follower stands after 300-400 ms
/// of silence, so a stall shorter than the client's 500 ms idle timeout (all
/// masters of this test share one process) is longer than its budget.
fn tight(cfg: &mut ferry_config::MasterConfig) {
    cfg.raft.heartbeat_ms = 40;
    cfg.raft.election_min_ms = 100;
    cfg.raft.election_max_ms = 200;
}

/// How long a stalled runtime stalls: longer than `tight`'s silence budget.
const STALL: Duration = Duration::from_millis(450);

/// The follower's runtime (one worker thread, as each master of `ferry up` on
/// 2 cores) stalls as each AppendEntries carrying entries reaches it: a
/// synchronous blob fsync under heavy synced writes, a starved process. Its
/// election timer fires as the runtime resumes, before it has had a chance to
/// hear anything. (The test's masters share the one thread, so all stall.)
/// Failed in about 3 runs of 5 before elections asked for a pre-vote (the
/// leader, alive, now refuses it); see docs/benchmarks.md, "Under heavy load
/// with a follower down".
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_follower_whose_runtime_stalls_keeps_its_leader() {
    let mut c = TestCluster::with(3, tight).await;
    let (leader, slow) = one_follower_down(&mut c).await;
    let _stall = ferry_raft::fault::set("append_entries", &c.data_dir(slow), |_| {
        std::thread::sleep(STALL)
    });
    large_writes_commit_without_elections(&c, leader, slow, 4).await;
}
