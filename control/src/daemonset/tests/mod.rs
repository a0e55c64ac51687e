mod nodes;
mod rolling;

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

/// DaemonSet `agent` (generation 3, image agent:1) with `patch`.
fn ds(patch: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]}
            }
        }
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

/// The current template hash of `d`.
fn hash(d: &DaemonSet) -> String {
    meta::template_hash(&d.spec.as_ref().unwrap().template, None)
}

/// A Ready node with `patch`.
fn node(name: &str, patch: Value) -> Arc<Node> {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    merge(&mut v, patch);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
    names.iter().map(|n| node(n, json!({}))).collect()
}

/// A Running daemon pod bound to `on`, of template `rev`, created 1000 s
/// ago; `ready` is how long ago it became Ready.
fn pod(name: &str, on: &str, rev: &str, ready: Option<i64>, patch: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "labels": {"app": "agent", HASH_LABEL: rev},
            "creationTimestamp": ago(1000),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                 "uid": "ds-uid", "controller": true}]
        },
        "spec": {"nodeName": on, "containers": [{"name": "c", "image": "agent:1"}]},
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

/// The nodes the created pods are pinned to.
fn created_on(d: &Decision) -> Vec<&str> {
    d.create
        .iter()
        .map(|p| eligible::target_node(p).expect("pinned"))
        .collect()
}

fn deleted(d: &Decision) -> Vec<&str> {
    d.delete.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_created_pod_is_pinned_by_affinity_labelled_and_owned() {
    let set = ds(
        json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "x", "operator": "Exists"}]}}]}}}}}}),
    );
    let n1 = node("n1", json!({"metadata": {"labels": {"zone": "a"}}}));
    let d = reconcile(&set, &[n1], &[], now());
    assert_eq!(created_on(&d), ["n1"]);
    let p = &d.create[0];
    let m = &p.metadata;
    assert_eq!(m.generate_name.as_deref(), Some("agent-"));
    assert_eq!(m.name, None);
    assert_eq!(m.namespace.as_deref(), Some("ns"));
    let labels = m.labels.as_ref().unwrap();
    assert_eq!(labels["app"], "agent");
    assert_eq!(labels[HASH_LABEL], hash(&set));
    assert_eq!(labels[GENERATION_LABEL], "3");
    assert_eq!(m.annotations.as_ref().unwrap()["a"], "b");
    let owner = meta::controller_of(m).expect("a controller owner");
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.uid.as_str()
        ),
        ("apps/v1", "DaemonSet", "ds-uid")
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.node_name, None, "the scheduler binds it");
    let na = spec
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let required =
        serde_json::to_value(&na.required_during_scheduling_ignored_during_execution).unwrap();
    assert_eq!(
        required,
        json!({"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}),
        "the template's own terms are replaced by the node"
    );
    assert!(na
        .preferred_during_scheduling_ignored_during_execution
        .is_some());
    assert_eq!(spec.containers[0].image.as_deref(), Some("agent:1"));
}

#[test]
fn created_pods_carry_the_daemon_tolerations() {
    let keys = |set: &DaemonSet| -> Vec<(String, String)> {
        let d = reconcile(set, &nodes(&["n1"]), &[], now());
        let tols = d.create[0]
            .spec
            .as_ref()
            .unwrap()
            .tolerations
            .clone()
            .unwrap();
        for t in &tols {
            assert_eq!(t.operator.as_deref(), Some("Exists"), "{t:?}");
            assert_eq!(t.toleration_seconds, None, "{t:?}");
        }
        let kv = |t: &k8s_openapi::api::core::v1::Toleration| {
            (
                t.key.clone().unwrap_or_default(),
                t.effect.clone().unwrap_or_default(),
            )
        };
        tols.iter().map(kv).collect()
    };
    let want = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let base = [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ];
        let all = base.iter().chain(extra);
        all.map(|(k, e)| (k.to_string(), e.to_string())).collect()
    };
    assert_eq!(keys(&ds(json!({}))), want(&[]));
    let host = ds(json!({"spec": {"template": {"spec": {"hostNetwork": true}}}}));
    assert_eq!(
        keys(&host),
        want(&[("node.kubernetes.io/network-unavailable", "NoSchedule")])
    );
    // A template toleration that is the same one is replaced, not doubled.
    let own = ds(json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30},
        {"key": "dedicated", "operator": "Exists"}]}}}}));
    let mut got = keys(&own);
    assert_eq!(got.remove(1), ("dedicated".into(), String::new()));
    assert_eq!(got, want(&[]));
}

#[test]
fn status_counts_each_node_once_and_requeues_at_availability() {
    let set = ds(json!({"spec": {"minReadySeconds": 10}}));
    let h = hash(&set);
    let ns = vec![
        node("n1", json!({})),
        node("n2", json!({})),
        node("n3", json!({})),
        node("n4", json!({})),
        node(
            "off",
            json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
        ),
    ];
    let pods = [
        pod("a", "n1", &h, Some(60), json!({})),
        pod("b", "n2", "old", Some(4), json!({})),
        pod("c", "n3", &h, None, json!({})),
        pod("x", "off", &h, Some(60), json!({})),
    ];
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n4"]);
    assert!(
        d.delete.is_empty(),
        "a NoSchedule taint keeps pods already there"
    );
    let s = d.status.expect("a first status");
    assert_eq!(s.desired_number_scheduled, 4);
    assert_eq!(s.current_number_scheduled, 3);
    assert_eq!(s.number_misscheduled, 1);
    assert_eq!(s.number_ready, 2);
    assert_eq!(
        s.number_available,
        Some(1),
        "Ready 4 s ago is not available for 10 s"
    );
    assert_eq!(s.number_unavailable, Some(3));
    assert_eq!(s.updated_number_scheduled, Some(2));
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(6)));
}

#[test]
fn an_idle_pass_writes_nothing() {
    let set = ds(json!({}));
    let h = hash(&set);
    let ns = nodes(&["n1", "n2"]);
    let pods = [
        pod("a", "n1", &h, Some(60), json!({})),
        pod("b", "n2", &h, None, json!({})),
    ];
    let mut set = set;
    let first = reconcile(&set, &ns, &pods, now());
    assert!(first.create.is_empty() && first.delete.is_empty());
    set.status = Some(first.status.expect("a first status"));
    assert_eq!(reconcile(&set, &ns, &pods, now()), Decision::default());
    // A stored status with explicit zeros is the same status.
    let zeros = ds(
        json!({"status": {"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
        "numberMisscheduled": 0, "numberReady": 0, "numberAvailable": 0,
        "numberUnavailable": 0, "updatedNumberScheduled": 0, "collisionCount": 0,
        "observedGeneration": 3}}),
    );
    assert_eq!(reconcile(&zeros, &[], &[], now()), Decision::default());
    let mut newer = zeros.clone();
    newer.metadata.generation = Some(4);
    let s = reconcile(&newer, &[], &[], now())
        .status
        .expect("a new generation");
    assert_eq!(s.observed_generation, Some(4));
}

#[test]
fn a_daemonset_being_deleted_does_nothing() {
    let set = ds(json!({"metadata": {"deletionTimestamp": ago(1)}}));
    let pods = [pod("a", "gone", "old", None, json!({}))];
    assert_eq!(
        reconcile(&set, &nodes(&["n1"]), &pods, now()),
        Decision::default()
    );
}

#[test]
fn revisions_follow_the_template_and_keep_what_pods_run() {
    let v1 = ds(json!({}));
    let h1 = hash(&v1);
    // The first pass makes revision 1, named by the pods' hash label.
    let p = revisions(&v1, &[], &[]);
    let r1 = p.create.clone().expect("a first revision");
    assert_eq!(
        (r1.metadata.name.as_deref(), r1.revision),
        (Some(format!("agent-{h1}").as_str()), 1)
    );
    assert_eq!(r1.metadata.labels.as_ref().unwrap()[HASH_LABEL], h1);
    assert_eq!(
        r1.data.as_ref().unwrap().0["spec"]["template"]["spec"]["containers"][0]["image"],
        "agent:1"
    );
    let r1 = Arc::new(r1);
    // A new image: revision 2; with a limit of 0 the old revision goes
    // unless a pod still carries its hash.
    let v2 = ds(json!({"spec": {"revisionHistoryLimit": 0,
        "template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}));
    let old_pod = pod("agent-a", "n1", &h1, Some(100), json!({}));
    let p = revisions(&v2, &[old_pod], std::slice::from_ref(&r1));
    assert_eq!(p.create.as_ref().map(|c| c.revision), Some(2));
    assert!(p.delete.is_empty(), "a pod still runs revision 1");
    let p = revisions(&v2, &[], std::slice::from_ref(&r1));
    assert_eq!(p.delete, [(format!("agent-{h1}"), String::new())]);
    // Back to image 1 (`rollout undo`): revision 1 becomes revision 3.
    let mut r2 = revisions(&v2, &[], &[]).create.unwrap();
    r2.revision = 2;
    let p = revisions(&v1, &[], &[r1, Arc::new(r2)]);
    assert_eq!(p.create, None);
    assert_eq!(
        p.renumber.map(|(n, _, r)| (n, r)),
        Some((format!("agent-{h1}"), 3))
    );
}
