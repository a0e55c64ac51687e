//! Events expire once older than the configured TTL (Kubernetes' `--event-ttl`),
//! and each names the controller that recorded it, as Kubernetes' do.

use crate::api::Api;
use crate::harness::{eventually, TestCluster, WAIT};
use ferry_api::object::ListOptions;
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

/// The (kind, reason, source component, reporting component) of the Events
/// in `default`.
async fn recorded(api: &Api) -> Vec<(String, String, String, String)> {
    let (_, list) = api
        .list("events", Some("default"), ListOptions::default())
        .await;
    let s = |e: &Value, p: &str| {
        e.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                s(e, "/involvedObject/kind"),
                s(e, "/reason"),
                s(e, "/source/component"),
                s(e, "/reportingComponent"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_the_controller_that_recorded_them() {
    let (_cluster, api) = crate::api::with_controllers().await;
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
        }
    });
    api.create("deployments", Some("default"), &deploy).await;
    // No node runs here: the pod stays unschedulable, which the scheduler says.
    let want = [
        ("Deployment", "ScalingReplicaSet", "deployment-controller"),
        ("ReplicaSet", "SuccessfulCreate", "replicaset-controller"),
        ("Pod", "FailedScheduling", "default-scheduler"),
    ];
    let got = eventually("the three controllers' events", WAIT, || async {
        let got = recorded(&api).await;
        want.iter()
            .all(|(k, r, _)| got.iter().any(|e| e.0 == *k && e.1 == *r))
            .then_some(got)
    })
    .await;
    for (kind, reason, component) in want {
        let e = got
            .iter()
            .find(|e| e.0 == kind && e.1 == reason)
            .expect("waited for");
        assert_eq!(
            (e.2.as_str(), e.3.as_str()),
            (component, component),
            "{kind} {reason}"
        );
    }
}
