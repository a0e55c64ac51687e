//! A leader replicates entries before its own copy is flushed, so a SIGKILL can
//! take from it entries its followers hold and have committed. Restarted, it must
//! not resume leading the same term: it would give the lost entries' log ids to
//! new entries, and followers holding the old ones would skip the new ones as
//! already present — two members applying different writes at one revision.

use crate::harness::{serial, Cluster};
use ferry_api::kv::Expect;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_unflushed_entries_does_not_fork_the_log() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let l = c.leader(&[]).await;
    c.put("fork/before", b"0").await;

    // The leader's flushes are held: this write commits on the two followers'
    // flushes alone, and the leader's copy exists only in its memory.
    c.hold_flush(l, true);
    let lost_on_leader = c.put("fork/acked", b"committed by the followers").await;
    c.kill(l);
    c.hold_flush(l, false);
    // Back at once, well inside the followers' election timeout.
    c.restart(l).await;

    // Writes after the restart, through the restarted master (forwarded to
    // whichever master leads now).
    let client = c.client_for(l, Duration::from_secs(30));
    let mut last = lost_on_leader;
    for i in 0..5 {
        let key = format!("fork/after/{i}");
        let out = client
            .put(&key, b"after".to_vec(), Expect::Any)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert!(
            out.revision > last,
            "{key} at {} after {last}",
            out.revision
        );
        last = out.revision;
    }

    // Every member applied the same writes at the same revisions.
    let mut states = Vec::new();
    for i in 0..3 {
        c.wait_applied(i, last).await;
        states.push(c.local_range(i, "fork/").await);
    }
    for (i, state) in states.iter().enumerate() {
        let acked = state
            .get("fork/acked")
            .unwrap_or_else(|| panic!("m{} lost the acknowledged write", i + 1));
        assert_eq!(acked.mod_revision, lost_on_leader, "m{}", i + 1);
        for k in 0..5 {
            assert!(
                state.contains_key(&format!("fork/after/{k}")),
                "m{} lacks fork/after/{k}",
                i + 1
            );
        }
        assert_eq!(state, &states[0], "m{} and m1 differ", i + 1);
    }
}
