//! Which nodes get a daemon pod, and which pods go.

use super::*;

fn taint(key: &str, effect: &str) -> Value {
    json!({"spec": {"taints": [{"key": key, "effect": effect}]}})
}

#[test]
fn one_pod_per_eligible_node() {
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let edge = json!({"metadata": {"labels": {"role": "edge"}}});
    let zone_a = json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}}}});
    let host_net = json!({"spec": {"template": {"spec": {"hostNetwork": true}}}});
    let tolerating = json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}});
    // (why, node patch, DaemonSet patch, whether the node gets a pod)
    let cases = [
        ("a plain node", json!({}), json!({}), true),
        (
            "untolerated NoSchedule",
            taint("dedicated", "NoSchedule"),
            json!({}),
            false,
        ),
        (
            "tolerated NoSchedule",
            taint("dedicated", "NoSchedule"),
            tolerating,
            true,
        ),
        (
            "untolerated NoExecute",
            taint("dedicated", "NoExecute"),
            json!({}),
            false,
        ),
        (
            "PreferNoSchedule",
            taint("dedicated", "PreferNoSchedule"),
            json!({}),
            true,
        ),
        (
            "cordoned",
            json!({"spec": {"unschedulable": true}}),
            json!({}),
            true,
        ),
        (
            "cordon taint",
            taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            json!({}),
            true,
        ),
        ("NotReady, untainted", not_ready.clone(), json!({}), true),
        (
            "not-ready NoExecute",
            taint("node.kubernetes.io/not-ready", "NoExecute"),
            json!({}),
            true,
        ),
        (
            "not-ready NoSchedule",
            taint("node.kubernetes.io/not-ready", "NoSchedule"),
            json!({}),
            false,
        ),
        (
            "unreachable NoExecute",
            taint("node.kubernetes.io/unreachable", "NoExecute"),
            json!({}),
            true,
        ),
        (
            "memory pressure",
            taint("node.kubernetes.io/memory-pressure", "NoSchedule"),
            json!({}),
            true,
        ),
        (
            "network unavailable",
            taint("node.kubernetes.io/network-unavailable", "NoSchedule"),
            json!({}),
            false,
        ),
        (
            "network unavailable, hostNetwork",
            taint("node.kubernetes.io/network-unavailable", "NoSchedule"),
            host_net,
            true,
        ),
        (
            "nodeSelector matches",
            edge.clone(),
            json!({"spec": {"template": {"spec": {"nodeSelector": {"role": "edge"}}}}}),
            true,
        ),
        (
            "nodeSelector differs",
            edge,
            json!({"spec": {"template": {"spec": {"nodeSelector": {"role": "core"}}}}}),
            false,
        ),
        (
            "affinity matches",
            json!({"metadata": {"labels": {"zone": "a"}}}),
            zone_a.clone(),
            true,
        ),
        (
            "affinity differs",
            json!({"metadata": {"labels": {"zone": "b"}}}),
            zone_a,
            false,
        ),
        (
            "template names another node",
            json!({}),
            json!({"spec": {"template": {"spec": {"nodeName": "n9"}}}}),
            false,
        ),
        (
            "template names this node",
            json!({}),
            json!({"spec": {"template": {"spec": {"nodeName": "n1"}}}}),
            true,
        ),
    ];
    for (why, node_patch, ds_patch, want) in cases {
        let d = reconcile(&ds(ds_patch), &[node("n1", node_patch)], &[], now());
        let want: &[&str] = if want { &["n1"] } else { &[] };
        assert_eq!(created_on(&d), want, "{why}");
        let s = d.status.unwrap();
        assert_eq!(s.desired_number_scheduled, want.len() as i32, "{why}");
    }
}

#[test]
fn a_node_added_later_gets_its_pod() {
    let set = ds(json!({}));
    let h = hash(&set);
    let pods = [pod("a", "n1", &h, Some(60), json!({}))];
    let d = reconcile(&set, &nodes(&["n1"]), &pods, now());
    assert!(d.create.is_empty() && d.delete.is_empty());
    let d = reconcile(&set, &nodes(&["n1", "n2"]), &pods, now());
    assert_eq!(created_on(&d), ["n2"]);
    assert!(d.delete.is_empty());
}

#[test]
fn pods_that_should_not_be_there_go() {
    let set = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"role": "edge"}}}}}));
    let h = hash(&set);
    let edge = json!({"metadata": {"labels": {"role": "edge"}}});
    let ns = vec![
        node("n1", edge.clone()),
        node("core", json!({})),
        node(
            "evicting",
            merge_into(edge, taint("dedicated", "NoExecute")),
        ),
    ];
    let pods = [
        pod("keep", "n1", &h, Some(60), json!({})),
        pod("mis", "core", &h, Some(60), json!({})),
        pod("evicted", "evicting", &h, Some(60), json!({})),
        pod("orphan", "vanished", &h, Some(60), json!({})),
        pod(
            "leaving",
            "core",
            &h,
            None,
            json!({"metadata": {"deletionTimestamp": ago(1)}}),
        ),
    ];
    let d = reconcile(&set, &ns, &pods, now());
    let mut got = deleted(&d);
    got.sort_unstable();
    assert_eq!(
        got,
        ["evicted", "mis", "orphan"],
        "a terminating pod is not deleted again"
    );
    assert_eq!(
        d.delete.iter().find(|(n, _)| n == "mis").unwrap().1,
        "uid-mis"
    );
    assert!(d.create.is_empty());
    let s = d.status.unwrap();
    assert_eq!(s.desired_number_scheduled, 1);
    assert_eq!(
        s.number_misscheduled, 2,
        "core and evicting; the vanished node is not counted"
    );
}

fn merge_into(mut a: Value, b: Value) -> Value {
    merge(&mut a, b);
    a
}

#[test]
fn extras_go_and_the_oldest_stays() {
    let set = ds(json!({}));
    let h = hash(&set);
    let pods = [
        pod(
            "young",
            "n1",
            &h,
            Some(60),
            json!({"metadata": {"creationTimestamp": ago(10)}}),
        ),
        pod(
            "eldest",
            "n1",
            &h,
            Some(60),
            json!({"metadata": {"creationTimestamp": ago(5000)}}),
        ),
        pod("middle", "n1", &h, Some(60), json!({})),
        // Not bound yet, but pinned to n1: it counts there, and goes first.
        pod(
            "pinned",
            "",
            &h,
            None,
            json!({
            "metadata": {"creationTimestamp": ago(9000)},
            "spec": {"nodeName": null, "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [
                        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}}),
        ),
    ];
    let d = reconcile(&set, &nodes(&["n1"]), &pods, now());
    let mut got = deleted(&d);
    got.sort_unstable();
    assert_eq!(got, ["middle", "pinned", "young"]);
    assert!(d.create.is_empty());
}

#[test]
fn finished_pods_are_deleted_then_replaced() {
    let set = ds(json!({}));
    let h = hash(&set);
    for phase in ["Failed", "Succeeded"] {
        let done = json!({"status": {"phase": phase}});
        let pods = [pod("a", "n1", &h, None, done.clone())];
        let d = reconcile(&set, &nodes(&["n1"]), &pods, now());
        assert_eq!(deleted(&d), ["a"], "{phase}");
        assert!(d.create.is_empty(), "{phase}: the node still holds it");
        // Once it is being deleted it no longer counts: a new pod is made.
        let pods = [pod(
            "a",
            "n1",
            &h,
            None,
            merge_into(done, json!({"metadata": {"deletionTimestamp": ago(1)}})),
        )];
        let d = reconcile(&set, &nodes(&["n1"]), &pods, now());
        assert!(d.delete.is_empty(), "{phase}");
        assert_eq!(created_on(&d), ["n1"], "{phase}");
    }
}

#[test]
fn a_terminating_pod_holds_its_node_until_gone() {
    let set = ds(json!({}));
    let h = hash(&set);
    let pods = [pod(
        "a",
        "n1",
        &h,
        Some(60),
        json!({"metadata": {"deletionTimestamp": ago(1)}}),
    )];
    let d = reconcile(&set, &nodes(&["n1"]), &pods, now());
    assert!(d.create.is_empty() && d.delete.is_empty());
}
