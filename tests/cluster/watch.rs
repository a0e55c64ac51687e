//! A watch keeps streaming while the master serving it is SIGKILLed: the client
//! resumes on another master after its last revision, losing and repeating nothing.

use crate::harness::{serial, wait_until, Cluster};
use ferry_api::kv::{Expect, WatchItem};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_continues_across_master_failover() {
    let _one = serial().await;
    let mut cluster = Cluster::start(3).await;
    let watcher = cluster.client(Duration::from_secs(30));
    let mut watch = watcher.watch("wf/", None, 200);
    let first = watch.next().await.expect("first watch item");
    assert!(
        matches!(first, WatchItem::Bookmark { .. }),
        "a watch starts with a bookmark: {first:?}"
    );
    let serving = watcher.current_master().await.expect("watch is connected");
    let victim = cluster
        .addrs()
        .iter()
        .position(|a| *a == serving)
        .expect("known master");
    let writer_idx = (victim + 1) % 3;
    let writer = cluster.client_for(writer_idx, Duration::from_secs(30));

    let mut acked = Vec::new();
    let put = |key: String| {
        let writer = writer.clone();
        async move {
            // Retry until acknowledged; a retried put may apply twice, which the
            // watch must then show twice (distinct revisions), never zero times.
            wait_until(&format!("put {key}"), Duration::from_secs(60), || async {
                match writer
                    .put(&key, key.clone().into_bytes(), Expect::Any)
                    .await
                {
                    Ok(Ok(o)) => Ok(o.revision),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await
        }
    };
    for i in 0..30 {
        let key = format!("wf/before/{i:03}");
        acked.push((key.clone(), put(key).await));
    }
    cluster.kill(victim);
    for i in 0..30 {
        let key = format!("wf/after/{i:03}");
        acked.push((key.clone(), put(key).await));
    }

    let want: BTreeSet<(String, u64)> = acked.iter().cloned().collect();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut last_rev = first.revision();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&seen) {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| {
                panic!("watch stalled; missing {:?}", want.difference(&seen).next())
            })
            .expect("watch survives the failover");
        if let WatchItem::Events { revision, events } = item {
            assert!(
                revision > last_rev,
                "revision {revision} after {last_rev}: out of order or repeated"
            );
            last_rev = revision;
            for e in events {
                assert_eq!(
                    e.kv.mod_revision, revision,
                    "event carries its item's revision"
                );
                assert!(
                    seen.insert((e.kv.key.clone(), revision)),
                    "event {} at {revision} delivered twice",
                    e.kv.key
                );
            }
        }
    }
    let now_serving = watcher.current_master().await.expect("reconnected");
    assert_ne!(now_serving, serving, "the watch moved to another master");
}
