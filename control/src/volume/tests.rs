//! Table tests of the PersistentVolume controller's decisions.

use super::*;
use serde_json::{json, Value};

fn claim(v: Value) -> PersistentVolumeClaim {
    let mut base = json!({"metadata": {"name": "data", "namespace": "default", "uid": "u1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
            "resources": {"requests": {"storage": "1Gi"}}}});
    merge(&mut base, v);
    serde_json::from_value(base).unwrap()
}

fn volume(name: &str, v: Value) -> Arc<PersistentVolume> {
    let mut base = json!({"metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
            "storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": "/srv"}}});
    merge(&mut base, v);
    Arc::new(serde_json::from_value(base).unwrap())
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn class(mode: &str, provisioner: &str) -> Arc<StorageClass> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "local-path"},
            "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": mode}))
        .unwrap(),
    )
}

fn node(name: &str) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": format!("host-{name}")},
            "annotations": {NODE_STORAGE_DIR: format!("/data/{name}/storage")}}}))
        .unwrap(),
    )
}

#[test]
fn claims_bind_to_the_smallest_volume_that_fits() {
    let wffc = [class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER)];
    let vols = [
        volume("big", json!({"spec": {"capacity": {"storage": "10Gi"}}})),
        volume("small", json!({"spec": {"capacity": {"storage": "2Gi"}}})),
        volume("tiny", json!({"spec": {"capacity": {"storage": "512Mi"}}})),
        volume("rox", json!({"spec": {"accessModes": ["ReadOnlyMany"]}})),
        volume("other-class", json!({"spec": {"storageClassName": "fast"}})),
        volume(
            "taken",
            json!({"spec": {"claimRef": {"namespace": "default", "name": "x"}}}),
        ),
    ];
    let c = claim(json!({}));
    assert_eq!(
        reconcile_claim(&c, &vols, &wffc, &[], false),
        ClaimAction::Bind("small".into())
    );
    // Nothing fits and no node chosen yet: wait.
    let huge = claim(json!({"spec": {"resources": {"requests": {"storage": "1Ti"}}}}));
    assert_eq!(
        reconcile_claim(&huge, &vols, &wffc, &[node("n1")], false),
        ClaimAction::Keep
    );
    // A volume pre-bound to the claim wins over a better fit.
    let pre = volume(
        "pre",
        json!({"spec": {"capacity": {"storage": "100Gi"},
        "claimRef": {"namespace": "default", "name": "data"}}}),
    );
    let mut with_pre = vols.to_vec();
    with_pre.push(pre);
    assert_eq!(
        reconcile_claim(&c, &with_pre, &wffc, &[], false),
        ClaimAction::Bind("pre".into())
    );
}

#[test]
fn local_path_provisions_on_the_selected_node_only() {
    let wffc = [class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER)];
    let nodes = [node("n1"), node("n2")];
    let waiting = claim(json!({}));
    assert_eq!(
        reconcile_claim(&waiting, &[], &wffc, &nodes, false),
        ClaimAction::Keep
    );
    let selected = claim(json!({"metadata": {"annotations": {SELECTED_NODE: "n2"}}}));
    let ClaimAction::Provision(pv) = reconcile_claim(&selected, &[], &wffc, &nodes, false) else {
        panic!("a claim with a selected node is provisioned");
    };
    let pv = serde_json::to_value(&*pv).unwrap();
    assert_eq!(pv["metadata"]["name"], "pvc-u1");
    assert_eq!(
        pv["spec"]["hostPath"]["path"],
        "/data/n2/storage/pvc-u1_default_data"
    );
    assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["claimRef"]["uid"], "u1");
    let term = &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0];
    assert_eq!(term["matchExpressions"][0]["values"], json!(["host-n2"]));
    // Immediate binding takes any node; another provisioner's class is left alone.
    let immediate = [class("Immediate", LOCAL_PATH_PROVISIONER)];
    assert!(matches!(
        reconcile_claim(&waiting, &[], &immediate, &nodes, false),
        ClaimAction::Provision(_)
    ));
    let foreign = [class("Immediate", "ebs.csi.aws.com")];
    assert_eq!(
        reconcile_claim(&waiting, &[], &foreign, &nodes, false),
        ClaimAction::Keep
    );
}

#[test]
fn a_bound_claims_status_follows_its_volume() {
    let classes = [class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER)];
    let mine = volume(
        "pv1",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u1"}}}),
    );
    let theirs = volume(
        "pv1",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u9"}}}),
    );
    let c = claim(json!({"spec": {"volumeName": "pv1"}, "status": {"phase": "Pending"}}));
    assert_eq!(
        reconcile_claim(&c, std::slice::from_ref(&mine), &classes, &[], false),
        ClaimAction::MarkBound("pv1".into())
    );
    let bound = claim(json!({"spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}));
    assert_eq!(
        reconcile_claim(&bound, &[mine], &classes, &[], false),
        ClaimAction::Keep
    );
    assert_eq!(
        reconcile_claim(&c, &[theirs], &classes, &[], false),
        ClaimAction::Keep
    );
    assert_eq!(
        reconcile_claim(&bound, &[], &classes, &[], false),
        ClaimAction::Lost
    );
    let unclaimed = volume("pv1", json!({}));
    assert_eq!(
        reconcile_claim(&c, &[unclaimed], &classes, &[], false),
        ClaimAction::Bind("pv1".into())
    );
}

#[test]
fn a_volume_is_released_or_deleted_once_its_claim_is_gone() {
    let c = claim(json!({}));
    let free = volume("pv", json!({"status": {"phase": "Pending"}}));
    assert_eq!(
        reconcile_volume(&free, None, true),
        VolumeAction::Phase("Available")
    );
    let claimed = volume(
        "pv",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u1"}},
        "status": {"phase": "Available"}}),
    );
    assert_eq!(
        reconcile_volume(&claimed, Some(&c), true),
        VolumeAction::Phase("Bound")
    );
    assert_eq!(reconcile_volume(&claimed, None, true), VolumeAction::Delete);
    // An absence the claim cache may not have caught up with is no evidence.
    assert_eq!(reconcile_volume(&claimed, None, false), VolumeAction::Keep);
    let retained = volume(
        "pv",
        json!({"spec": {"persistentVolumeReclaimPolicy": "Retain",
        "claimRef": {"namespace": "default", "name": "data", "uid": "u1"}}, "status": {"phase": "Bound"}}),
    );
    assert_eq!(
        reconcile_volume(&retained, None, true),
        VolumeAction::Phase("Released")
    );
    // A claim of the same name but another uid is not the volume's claim.
    let other = claim(json!({"metadata": {"uid": "u2"}}));
    assert_eq!(
        reconcile_volume(&retained, Some(&other), true),
        VolumeAction::Phase("Released")
    );
}

#[test]
fn pods_are_held_to_their_volumes_nodes() {
    use k8s_openapi::api::core::v1::Pod;
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                                       {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}},
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "w", "persistentVolumeClaim": {"claimName": "wait"}}]}}))
    .unwrap();
    let classes = [class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER)];
    let pv = volume(
        "pv1",
        json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms":
        [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["h1"]}]}]}}}}),
    );
    let bound = Arc::new(claim(json!({"spec": {"volumeName": "pv1"}})));
    let waiting = Arc::new(claim(
        json!({"metadata": {"name": "wait", "annotations": {SELECTED_NODE: "n1"}}}),
    ));
    let claims = |n: &str| match n {
        "data" => Some(bound.clone()),
        "wait" => Some(waiting.clone()),
        _ => None,
    };
    let volumes = |n: &str| (n == "pv1").then(|| pv.clone());
    let pc = pod_claims(&pod, &claims, &volumes, &classes).unwrap();
    assert_eq!(
        pc.waiting,
        vec![("wait".to_string(), Some("n1".to_string()))]
    );
    let narrowed = serde_json::to_value(constrained(&pod, &pc)).unwrap();
    let terms = &narrowed["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    // (zone a OR zone b) AND hostname h1 AND name n1: two terms.
    assert_eq!(terms.as_array().unwrap().len(), 2);
    assert_eq!(terms[1]["matchExpressions"][0]["values"], json!(["b"]));
    assert_eq!(terms[1]["matchExpressions"][1]["values"], json!(["h1"]));
    assert_eq!(terms[1]["matchFields"][0]["values"], json!(["n1"]));
    // A missing claim, and an unbound Immediate claim, keep the pod pending.
    let none = |_: &str| None;
    assert_eq!(
        pod_claims(&pod, &none, &volumes, &classes).unwrap_err(),
        "persistentvolumeclaim \"data\" not found"
    );
    let unbound = Arc::new(claim(json!({"metadata": {"name": "wait"}})));
    let only_unbound = |n: &str| (n != "zzz").then(|| unbound.clone());
    let immediate = [class("Immediate", LOCAL_PATH_PROVISIONER)];
    assert_eq!(
        pod_claims(&pod, &only_unbound, &volumes, &immediate).unwrap_err(),
        "pod has unbound immediate PersistentVolumeClaims"
    );
}

#[test]
fn protection_finalizers_go_only_when_nothing_uses_the_claim_or_volume() {
    let classes = [class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER)];
    let deleting = claim(
        json!({"metadata": {"deletionTimestamp": "2026-12-05T00:00:00Z",
        "finalizers": [CLAIM_PROTECTION]}}),
    );
    assert_eq!(
        reconcile_claim(&deleting, &[], &classes, &[], true),
        ClaimAction::Keep
    );
    assert_eq!(
        reconcile_claim(&deleting, &[], &classes, &[], false),
        ClaimAction::Unprotect
    );
    let c = claim(json!({}));
    let bound = volume(
        "pv",
        json!({"metadata": {"deletionTimestamp": "2026-12-05T00:00:00Z",
        "finalizers": [VOLUME_PROTECTION]},
        "spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u1"}}}),
    );
    assert_eq!(reconcile_volume(&bound, Some(&c), true), VolumeAction::Keep);
    assert_eq!(reconcile_volume(&bound, None, false), VolumeAction::Keep);
    assert_eq!(
        reconcile_volume(&bound, None, true),
        VolumeAction::Unprotect
    );
    use k8s_openapi::api::core::v1::Pod;
    let pod = |phase: &str| -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
            "status": {"phase": phase}})).unwrap())
    };
    assert!(claim_in_use(&[pod("Running")], "data"));
    assert!(!claim_in_use(&[pod("Running")], "other"));
    assert!(!claim_in_use(&[pod("Succeeded")], "data"));
}
