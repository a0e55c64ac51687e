use super::*;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// An RFC 3339 time `ago` seconds before [`now`].
fn ago(secs: i64) -> String {
    Timestamp::from_second(NOW - secs).unwrap().to_string()
}

/// Overlays `patch` onto `base` (objects merge, everything else replaces).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn rs(replicas: i32, patch: Value) -> ReplicaSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

/// A pod of the ReplicaSet; `ready` is how long ago it became Ready.
fn pod(name: &str, ready: Option<i64>, patch: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "labels": {"app": "web", "tier": "front"},
            "creationTimestamp": ago(1000),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                 "uid": "rs-uid", "controller": true}]
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running"}
    });
    if let Some(secs) = ready {
        merge(
            &mut v,
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(secs)}
            ]}}),
        );
    }
    merge(&mut v, patch);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn names(d: &Decision) -> Vec<&str> {
    d.delete.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn creates_the_missing_pods_from_the_template_owned_by_the_replicaset() {
    let set = rs(3, json!({}));
    let pods = [
        pod("a", Some(100), json!({})),
        pod(
            "gone",
            Some(100),
            json!({"metadata": {"deletionTimestamp": ago(1)}}),
        ),
        pod("done", None, json!({"status": {"phase": "Succeeded"}})),
    ];
    let d = reconcile(&set, &pods, now());
    assert_eq!(d.create.len(), 2, "3 wanted, 1 active");
    assert!(d.delete.is_empty());
    for p in &d.create {
        let m = &p.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("web-"));
        assert_eq!(m.name, None);
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        assert_eq!(m.labels.as_ref().unwrap()["tier"], "front");
        assert_eq!(m.annotations.as_ref().unwrap()["a"], "b");
        let owner = meta::controller_of(m).expect("a controller owner");
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "rs-uid")
        );
        assert_eq!(owner.api_version, "apps/v1");
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx")
        );
    }
}

#[test]
fn creates_at_most_a_burst_per_pass_and_defaults_to_one_replica() {
    assert_eq!(
        reconcile(&rs(900, json!({})), &[], now()).create.len(),
        BURST
    );
    let mut one = rs(1, json!({}));
    one.spec.as_mut().unwrap().replicas = None;
    assert_eq!(reconcile(&one, &[], now()).create.len(), 1);
}

#[test]
fn deletes_the_surplus_in_kubernetes_rank_order() {
    // (the pod to delete first, the pod to keep): one pair per rule.
    let cases = [
        (
            "unassigned",
            pod("x", None, json!({"spec": {"nodeName": null}})),
            pod("y", None, json!({})),
        ),
        (
            "pending before running",
            pod("x", None, json!({"status": {"phase": "Pending"}})),
            pod("y", None, json!({})),
        ),
        (
            "pending before unknown",
            pod("x", None, json!({"status": {"phase": "Pending"}})),
            pod("y", None, json!({"status": {"phase": "Unknown"}})),
        ),
        (
            "unknown before running",
            pod("x", None, json!({"status": {"phase": "Unknown"}})),
            pod("y", None, json!({})),
        ),
        (
            "not ready before ready",
            pod("x", None, json!({})),
            pod("y", Some(10), json!({})),
        ),
        (
            "lower deletion cost",
            pod(
                "x",
                Some(10),
                json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-5"}}}),
            ),
            pod("y", Some(10), json!({})),
        ),
        (
            "ready for less time",
            pod("x", Some(10), json!({})),
            pod("y", Some(500), json!({})),
        ),
        (
            "more restarts",
            pod(
                "x",
                Some(10),
                json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                    "ready": true, "restartCount": 4}]}}),
            ),
            pod("y", Some(10), json!({})),
        ),
        (
            "newer",
            pod(
                "x",
                Some(10),
                json!({"metadata": {"creationTimestamp": ago(5)}}),
            ),
            pod("y", Some(10), json!({})),
        ),
    ];
    for (why, first, keep) in cases {
        for pods in [[first.clone(), keep.clone()], [keep.clone(), first.clone()]] {
            let d = reconcile(&rs(1, json!({})), &pods, now());
            assert_eq!(names(&d), ["x"], "{why}");
            assert!(d.create.is_empty(), "{why}");
        }
    }
}

#[test]
fn deletes_several_worst_first_and_spreads_across_nodes() {
    let pods = [
        pod("settled", Some(900), json!({"spec": {"nodeName": "n2"}})),
        pod("young", Some(5), json!({"spec": {"nodeName": "n2"}})),
        pod("starting", None, json!({"status": {"phase": "Pending"}})),
        pod("doubled", Some(900), json!({})),
        pod(
            "doubled2",
            Some(900),
            json!({"metadata": {"creationTimestamp": ago(2000)}}),
        ),
    ];
    // Pending first; then the pods on n1 (three there) before n2's, even
    // the younger one on n2; of those on n1 the newer first.
    let d = reconcile(&rs(2, json!({})), &pods, now());
    assert_eq!(names(&d), ["starting", "doubled", "doubled2"]);
    assert_eq!(d.delete[0].1, "uid-starting");
}

#[test]
fn counts_ready_available_and_fully_labeled_pods() {
    let set = rs(4, json!({"spec": {"minReadySeconds": 10}}));
    let pods = [
        pod("long", Some(60), json!({})),
        pod("recent", Some(4), json!({})),
        pod("starting", None, json!({})),
        pod(
            "partial",
            Some(60),
            json!({"metadata": {"labels": {"tier": "back"}}}),
        ),
        pod(
            "gone",
            Some(60),
            json!({"metadata": {"deletionTimestamp": ago(1)}}),
        ),
    ];
    let d = reconcile(&set, &pods, now());
    let s = d.status.expect("a first status");
    assert_eq!(s.replicas, 4);
    assert_eq!(s.fully_labeled_replicas, Some(3));
    assert_eq!(s.ready_replicas, Some(3));
    assert_eq!(
        s.available_replicas,
        Some(2),
        "Ready 4 s ago is not available for 10 s"
    );
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(6)));
    assert!(
        d.create.is_empty() && d.delete.is_empty(),
        "the terminating pod is ignored"
    );
}

#[test]
fn writes_no_status_when_nothing_changed() {
    let pods = [pod("a", Some(60), json!({})), pod("b", None, json!({}))];
    let mut set = rs(2, json!({}));
    let first = reconcile(&set, &pods, now());
    assert!(first.status.is_some());
    set.status = first.status;
    let again = reconcile(&set, &pods, now());
    assert_eq!(again, Decision::default());
    // A stored status with explicit zeros is the same status.
    let mut zeros = rs(
        0,
        json!({"status": {"replicas": 0, "readyReplicas": 0,
        "availableReplicas": 0, "fullyLabeledReplicas": 0, "observedGeneration": 2}}),
    );
    assert_eq!(reconcile(&zeros, &[], now()).status, None);
    zeros.metadata.generation = Some(3);
    let s = reconcile(&zeros, &[], now())
        .status
        .expect("a new generation is observed");
    assert_eq!(s.observed_generation, Some(3));
}

#[test]
fn never_deletes_or_counts_terminating_pods() {
    let pods = [
        pod("a", Some(60), json!({})),
        pod("b", Some(60), json!({})),
        pod(
            "c",
            None,
            json!({"metadata": {"deletionTimestamp": ago(1)}, "spec": {"nodeName": null}}),
        ),
    ];
    let d = reconcile(&rs(1, json!({})), &pods, now());
    assert_eq!(d.delete.len(), 1);
    assert!(!names(&d).contains(&"c"));
    assert_eq!(d.status.unwrap().replicas, 2);
}

#[test]
fn a_replicaset_being_deleted_makes_no_pods() {
    let set = rs(3, json!({"metadata": {"deletionTimestamp": ago(1)}}));
    let d = reconcile(&set, &[], now());
    assert!(d.create.is_empty());
    assert_eq!(d.status.unwrap().replicas, 0);
}
