//! Events expire once older than the configured TTL (Kubernetes' `--event-ttl`).

use crate::api::Api;
use crate::harness::{eventually, TestCluster, WAIT};
use serde_json::{json, Value};

fn event(name: &str, last: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Test", "message": name, "type": "Normal", "count": 1,
        "firstTimestamp": last, "lastTimestamp": last,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_ttl_are_removed_and_fresh_ones_kept() {
    let c = TestCluster::with(1, |cfg| {
        crate::harness::fast(cfg);
        cfg.workload_controllers = true;
        cfg.event_ttl_seconds = 4;
    })
    .await;
    let api = Api(c.client.clone());
    eventually("namespace default", WAIT, || async {
        api.get("namespaces", None, "default").await
    })
    .await;
    // Whole seconds: an Event's times are stored to the second.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let old = (now - jiff::SignedDuration::from_secs(3600)).to_string();
    api.create("events", Some("default"), &event("old", &old))
        .await;
    api.create("events", Some("default"), &event("fresh", &now.to_string()))
        .await;
    // The hour-old one goes at the next sweep (every 1 s with a 4 s TTL) ...
    eventually("the old event removed", WAIT, || async {
        api.get("events", Some("default"), "old")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // ... while the fresh one is still younger than the TTL.
    let fresh_age = jiff::Timestamp::now().duration_since(now);
    if fresh_age < jiff::SignedDuration::from_secs(3) {
        assert!(
            api.get("events", Some("default"), "fresh").await.is_some(),
            "a {fresh_age:?} old event was removed with a 4 s TTL"
        );
    }
    // Once it is older than the TTL, it goes too.
    eventually("the fresh event removed after the TTL", WAIT, || async {
        api.get("events", Some("default"), "fresh")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        jiff::Timestamp::now().duration_since(now) >= jiff::SignedDuration::from_secs(4),
        "the fresh event was removed before its TTL"
    );
}
