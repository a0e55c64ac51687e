//! Watch: ordering, no gaps, atomic revisions, resume, "too old", bookmarks.

use crate::harness::{delete, put, TestCluster, WAIT};
use ferry_api::client::Watch;
use ferry_api::kv::{Event, EventKind, Expect, Write, WriteOp};
use ferry_api::proto::ErrorCode;
use ferry_api::{Client, Error};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The next item, failing the test after [`WAIT`].
async fn next(w: &mut Watch) -> ferry_api::kv::WatchItem {
    tokio::time::timeout(WAIT, w.next())
        .await
        .unwrap_or_else(|_| panic!("no watch item within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("watch failed: {e}"))
}

/// Event revisions until `upto` is reached (bookmarks skipped); checks order and atomicity.
async fn events_until(w: &mut Watch, upto: u64) -> Vec<(u64, Vec<Event>)> {
    let mut out: Vec<(u64, Vec<Event>)> = Vec::new();
    let mut last = w.revision().unwrap_or(0);
    while last < upto {
        match next(w).await {
            ferry_api::kv::WatchItem::Events { revision, events } => {
                assert!(
                    revision > last,
                    "revision {revision} after {last}: out of order or repeated"
                );
                assert!(!events.is_empty(), "an events item at {revision} is empty");
                for e in &events {
                    assert_eq!(
                        e.kv.mod_revision, revision,
                        "event of {} in item {revision}",
                        e.kv.key
                    );
                }
                last = revision;
                out.push((revision, events));
            }
            ferry_api::kv::WatchItem::Bookmark { revision } => {
                assert!(
                    revision >= last,
                    "bookmark {revision} went back from {last}"
                );
                last = revision;
            }
        }
    }
    out
}

fn flat(items: &[(u64, Vec<Event>)]) -> Vec<(u64, String, EventKind)> {
    items
        .iter()
        .flat_map(|(r, evs)| evs.iter().map(move |e| (*r, e.kv.key.clone(), e.kind)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_every_write_in_order_without_gaps() {
    let c = TestCluster::new(3).await;
    let start = put(&c.client, "/other", "x").await.revision;
    // Watch through a follower: any master serves watches from its applied state.
    let f = c.follower().await;
    let follower: Arc<Client> = c.local_arc(f);
    let mut w = follower.watch("/w/", Some(start), 0);

    let mut writers = tokio::task::JoinSet::new();
    for t in 0..4 {
        let client = c.client.clone();
        writers.spawn(async move {
            let mut acked = Vec::new();
            for k in 0..15 {
                let key = format!("/w/{t}/{}", k % 5);
                let o = put(&client, &key, &format!("{k}")).await;
                acked.push((o.revision, key.clone(), EventKind::Put));
                put(&client, "/other", "noise").await;
                if k % 5 == 4 {
                    let o = delete(&client, &key).await;
                    acked.push((o.revision, key, EventKind::Delete));
                }
            }
            acked
        });
    }
    let mut acked = Vec::new();
    while let Some(r) = writers.join_next().await {
        acked.extend(r.expect("writer"));
    }
    acked.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let upto = acked.last().expect("writes").0;
    let got = events_until(&mut w, upto).await;
    let mut seen = flat(&got);
    seen.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    assert_eq!(
        seen, acked,
        "the watch must deliver exactly the acknowledged writes"
    );
    assert!(
        got.iter()
            .flat_map(|(_, e)| e)
            .all(|e| e.kv.key.starts_with("/w/")),
        "only keys under the prefix"
    );
    // Deletes carry the previous value.
    for (_, evs) in &got {
        for e in evs.iter().filter(|e| e.kind == EventKind::Delete) {
            assert!(e.prev.is_some(), "delete of {} without prev", e.kv.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_events_arrive_in_one_item() {
    let c = TestCluster::new(1).await;
    put(&c.client, "/x/b", "old").await;
    let mut w = c.client.watch("/x/", None, 0);
    let first = next(&mut w).await;
    assert!(
        matches!(first, ferry_api::kv::WatchItem::Bookmark { .. }),
        "a watch starts with a bookmark at its start revision, got {first:?}"
    );
    let o = c
        .client
        .write(Write::Txn(vec![
            WriteOp::Put {
                key: "/x/a".into(),
                value: b"1".to_vec(),
                expect: Expect::Absent,
            },
            WriteOp::Delete {
                key: "/x/b".into(),
                expect: Expect::Exists,
            },
            WriteOp::Put {
                key: "/y/outside".into(),
                value: b"1".to_vec(),
                expect: Expect::Any,
            },
            WriteOp::Put {
                key: "/x/c".into(),
                value: b"3".to_vec(),
                expect: Expect::Any,
            },
        ]))
        .await
        .expect("rpc")
        .expect("txn");
    let got = events_until(&mut w, o.revision).await;
    assert_eq!(got.len(), 1, "one item for one txn: {got:?}");
    let summary: Vec<_> = got[0]
        .1
        .iter()
        .map(|e| (e.kv.key.as_str(), e.kind))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("/x/a", EventKind::Put),
            ("/x/b", EventKind::Delete),
            ("/x/c", EventKind::Put)
        ],
        "the txn's events under the prefix, in op order"
    );
    assert_eq!(
        got[0].1[1].prev.as_ref().map(|p| p.value.clone()),
        Some(b"old".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_close_from_a_revision() {
    let c = TestCluster::new(3).await;
    let start = put(&c.client, "/z/0", "0").await.revision;
    let mut w = c.client.watch("/z/", Some(start), 0);
    let mut revs = vec![];
    for i in 1..=5 {
        revs.push(put(&c.client, &format!("/z/{i}"), "v").await.revision);
    }
    let got = events_until(&mut w, revs[2]).await;
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        revs[..3].to_vec()
    );
    drop(w);

    for i in 6..=8 {
        revs.push(put(&c.client, &format!("/z/{i}"), "v").await.revision);
    }
    // Resume on another master, after the last revision seen.
    let f = c.follower().await;
    let mut w = c.local_arc(f).watch("/z/", Some(revs[2]), 0);
    let got = events_until(&mut w, *revs.last().expect("revs")).await;
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        revs[3..].to_vec(),
        "resumed watch continues exactly after revision {}",
        revs[2]
    );
    let keys: Vec<_> = got.iter().map(|g| g.1[0].kv.key.clone()).collect();
    assert_eq!(keys, (4..=8).map(|i| format!("/z/{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_is_too_old() {
    let c = TestCluster::new(1).await;
    let early = put(&c.client, "/o/a", "1").await.revision;
    let mid = put(&c.client, "/o/a", "2").await.revision;
    let late = put(&c.client, "/o/a", "3").await.revision;
    c.client
        .write(Write::Compact(mid))
        .await
        .expect("rpc")
        .expect("compact");

    let mut w = c.client.watch("/o/", Some(early), 0);
    match tokio::time::timeout(WAIT, w.next())
        .await
        .expect("answer in time")
    {
        Err(Error::Api(e)) => assert_eq!(e.code, ErrorCode::TooOld, "{e}"),
        other => panic!("a watch from compacted revision {early} must be TooOld, got {other:?}"),
    }

    // At the compacted revision itself, later history is still whole.
    let mut w = c.client.watch("/o/", Some(mid), 0);
    let got = events_until(&mut w, late).await;
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![late]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_report_progress_on_a_quiet_prefix() {
    let c = TestCluster::new(1).await;
    let start = put(&c.client, "/quiet/a", "1").await.revision;
    let mut w = c.client.watch("/quiet/", Some(start), 100);
    let elsewhere = put(&c.client, "/busy/a", "1").await.revision;
    assert!(elsewhere > start);
    // Only bookmarks can arrive; one must pass the unrelated write's revision.
    let mut last = start;
    let mut marks = BTreeMap::new();
    while last < elsewhere {
        match next(&mut w).await {
            ferry_api::kv::WatchItem::Bookmark { revision } => {
                assert!(revision >= last, "bookmark went back: {revision} < {last}");
                *marks.entry(revision).or_insert(0) += 1;
                last = revision;
            }
            other => panic!("no events under /quiet/ were written, got {other:?}"),
        }
    }
    // A write under the prefix after the bookmark is still delivered.
    let r = put(&c.client, "/quiet/b", "2").await.revision;
    let got = events_until(&mut w, r).await;
    assert_eq!(
        flat(&got),
        vec![(r, "/quiet/b".to_string(), EventKind::Put)]
    );
}

/// A consumer that stalls while more revisions apply than the live channel
/// holds, for longer than a bookmark interval, must still get every revision
/// once: the stream falls back to history from the last revision it queued.
/// The bookmark timer and the lagged channel are both ready when it wakes, and
/// `select!` picks one at random, so eight streams try both orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watch_falls_back_to_history_without_skipping() {
    let c = TestCluster::new(1).await;
    let store = &c.master(0).store;
    let start = put(&c.client, "/stall/start", "x").await.revision;
    let req = ferry_api::proto::WatchRequest {
        prefix: "/stall/".into(),
        after_revision: Some(start),
        bookmark_ms: 100,
    };
    let mut streams: Vec<_> = (0..8)
        .map(|_| store.watch(&req).expect("watch starts"))
        .collect();
    for s in &mut streams {
        let first = s.next().await.expect("first item");
        assert_eq!(
            first,
            ferry_api::kv::WatchItem::Bookmark { revision: start }
        );
    }
    // One event read live, so every stream is past its initial history read.
    let warm = put(&c.client, "/stall/warm", "x").await.revision;
    for s in &mut streams {
        match s.next().await.expect("warm-up event") {
            ferry_api::kv::WatchItem::Events { revision, .. } => assert_eq!(revision, warm),
            other => panic!("expected the warm-up event, got {other:?}"),
        }
    }
    let start = warm;
    // More applied revisions than the live channel (1024) holds, each its own entry.
    let mut written = Vec::new();
    for i in 0..1300 {
        written.push(put(&c.client, &format!("/stall/{i}"), "v").await.revision);
    }
    let last = *written.last().expect("written");
    // The stall itself: every stream's next bookmark falls due while it waits.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (n, s) in streams.iter_mut().enumerate() {
        let mut seen = Vec::new();
        let mut upto = start;
        while upto < last {
            let item = tokio::time::timeout(WAIT, s.next())
                .await
                .expect("an item within the wait")
                .expect("the stream goes on");
            match item {
                ferry_api::kv::WatchItem::Events { revision, events } => {
                    assert!(revision > upto, "stream {n}: {revision} after {upto}");
                    assert_eq!(events.len(), 1, "stream {n}: one put per revision");
                    seen.push(revision);
                    upto = revision;
                }
                ferry_api::kv::WatchItem::Bookmark { revision } => {
                    assert!(revision >= upto, "stream {n}: bookmark went back");
                    assert!(
                        revision <= *seen.last().unwrap_or(&start) || seen.len() == written.len(),
                        "stream {n}: bookmark {revision} passed revisions not yet delivered \
                         (delivered {} of {})",
                        seen.len(),
                        written.len()
                    );
                    upto = revision;
                }
            }
        }
        assert_eq!(seen, written, "stream {n} skipped or repeated revisions");
    }
}
