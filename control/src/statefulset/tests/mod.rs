mod rolling;
mod scale;

use super::*;
use serde_json::{json, Value};

type Pods = Vec<Arc<Pod>>;

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

/// StatefulSet `web` (generation 2, service `web-svc`, image db:1) with `patch`.
fn sts(replicas: i32, patch: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "sts-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "serviceName": "web-svc",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "db:1"}]}
            }
        }
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

/// The revision `s`'s template makes: `web-<hash>`.
fn rev(s: &StatefulSet) -> String {
    format!(
        "web-{}",
        meta::template_hash(&s.spec.as_ref().unwrap().template, None)
    )
}

/// The revision of the unpatched set (image db:1).
fn old() -> String {
    rev(&sts(1, json!({})))
}

/// Member `name` of revision `rev`, Running; `ready` is how long ago it
/// became Ready.
fn pod(name: &str, rev: &str, ready: Option<i64>, patch: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "labels": {"app": "web", REVISION_LABEL: rev},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                 "uid": "sts-uid", "controller": true}]
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "db:1"}]},
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

/// Ready members `web-0..n` of the unpatched revision.
fn ready_pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| pod(&format!("web-{i}"), &old(), Some(60), json!({})))
        .collect()
}

fn terminating_patch() -> Value {
    json!({"metadata": {"deletionTimestamp": ago(1)}})
}

fn created(d: &Decision) -> Vec<&str> {
    d.create
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect()
}

fn deleted(d: &Decision) -> Vec<&str> {
    d.delete.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_created_pod_has_its_stable_identity() {
    let set = sts(3, json!({}));
    let d = reconcile(&set, &[], now());
    assert_eq!(created(&d), ["web-0"]);
    let p = &d.create[0];
    let m = &p.metadata;
    assert_eq!(m.generate_name, None);
    assert_eq!(m.namespace.as_deref(), Some("ns"));
    let labels = m.labels.as_ref().unwrap();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels[POD_NAME_LABEL], "web-0");
    assert_eq!(labels[POD_INDEX_LABEL], "0");
    assert_eq!(labels[REVISION_LABEL], rev(&set));
    assert_eq!(m.annotations.as_ref().unwrap()["a"], "b");
    let owner = meta::controller_of(m).expect("a controller owner");
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.uid.as_str()
        ),
        ("apps/v1", "StatefulSet", "sts-uid")
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
    assert_eq!(spec.containers[0].image.as_deref(), Some("db:1"));
    // No service name: no subdomain.
    let bare = sts(1, json!({"spec": {"serviceName": null}}));
    let d = reconcile(&bare, &[], now());
    assert_eq!(d.create[0].spec.as_ref().unwrap().subdomain, None);
}

#[test]
fn ordered_creation_waits_for_each_predecessor() {
    let r = old();
    let pending = json!({"status": {"phase": "Pending"}});
    // (why, set patch, pods, the pod created)
    let cases: Vec<(&str, Value, Pods, Option<&str>)> = vec![
        ("none yet", json!({}), vec![], Some("web-0")),
        (
            "web-0 pending",
            json!({}),
            vec![pod("web-0", &r, None, pending.clone())],
            None,
        ),
        (
            "web-0 ready but not running",
            json!({}),
            vec![pod("web-0", &r, Some(60), pending)],
            None,
        ),
        (
            "web-0 not ready",
            json!({}),
            vec![pod("web-0", &r, None, json!({}))],
            None,
        ),
        (
            "web-0 ready",
            json!({}),
            vec![pod("web-0", &r, Some(60), json!({}))],
            Some("web-1"),
        ),
        (
            "web-0 not available yet",
            json!({"spec": {"minReadySeconds": 10}}),
            vec![pod("web-0", &r, Some(4), json!({}))],
            None,
        ),
        (
            "web-0 available",
            json!({"spec": {"minReadySeconds": 10}}),
            vec![pod("web-0", &r, Some(10), json!({}))],
            Some("web-1"),
        ),
        (
            "a hole is filled first",
            json!({}),
            vec![
                pod("web-0", &r, Some(60), json!({})),
                pod("web-2", &r, Some(60), json!({})),
            ],
            Some("web-1"),
        ),
        (
            "ordinals start at 5",
            json!({"spec": {"ordinals": {"start": 5}}}),
            vec![],
            Some("web-5"),
        ),
        (
            "not members",
            json!({}),
            vec![
                pod("web-00", &r, Some(60), json!({})),
                pod("db-0", &r, Some(60), json!({})),
            ],
            Some("web-0"),
        ),
    ];
    for (why, patch, pods, want) in cases {
        let d = reconcile(&sts(3, patch), &pods, now());
        assert_eq!(created(&d), want.into_iter().collect::<Vec<_>>(), "{why}");
        assert!(d.delete.is_empty(), "{why}");
    }
    let set = sts(3, json!({"spec": {"minReadySeconds": 10}}));
    let d = reconcile(&set, &[pod("web-0", &r, Some(4), json!({}))], now());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(6)));
}

#[test]
fn parallel_creates_every_missing_pod_at_once() {
    let set = sts(3, json!({"spec": {"podManagementPolicy": "Parallel"}}));
    assert_eq!(
        created(&reconcile(&set, &[], now())),
        ["web-0", "web-1", "web-2"]
    );
    let huge = sts(900, json!({"spec": {"podManagementPolicy": "Parallel"}}));
    let d = reconcile(&huge, &[], now());
    assert_eq!(d.create.len(), crate::replicaset::BURST, "a burst per pass");
    let starting = [pod(
        "web-1",
        &old(),
        None,
        json!({"status": {"phase": "Pending"}}),
    )];
    assert_eq!(
        created(&reconcile(&set, &starting, now())),
        ["web-0", "web-2"]
    );
}

#[test]
fn finished_pods_are_recreated_under_the_same_name() {
    for phase in ["Failed", "Succeeded"] {
        let done = json!({"status": {"phase": phase}});
        let set = sts(2, json!({}));
        let mut pods = vec![
            pod("web-0", &old(), Some(60), json!({})),
            pod("web-1", &old(), None, done.clone()),
        ];
        let d = reconcile(&set, &pods, now());
        assert_eq!(deleted(&d), ["web-1"], "{phase}");
        assert_eq!(d.delete[0].1, "uid-web-1");
        assert!(d.create.is_empty(), "{phase}: the name is still taken");
        let mut going = done.clone();
        merge(&mut going, terminating_patch());
        pods[1] = pod("web-1", &old(), None, going);
        let d = reconcile(&set, &pods, now());
        assert!(d.create.is_empty() && d.delete.is_empty(), "{phase}");
        pods.pop();
        assert_eq!(
            created(&reconcile(&set, &pods, now())),
            ["web-1"],
            "{phase}"
        );
    }
    // A finished web-0 blocks web-1 in order; in Parallel it does not.
    let failed = [pod(
        "web-0",
        &old(),
        None,
        json!({"status": {"phase": "Failed"}}),
    )];
    let d = reconcile(&sts(2, json!({})), &failed, now());
    assert_eq!((deleted(&d), created(&d)), (vec!["web-0"], vec![]));
    let d = reconcile(
        &sts(2, json!({"spec": {"podManagementPolicy": "Parallel"}})),
        &failed,
        now(),
    );
    assert_eq!((deleted(&d), created(&d)), (vec!["web-0"], vec!["web-1"]));
}

#[test]
fn a_terminating_pod_keeps_its_name_and_blocks_ordered_sets() {
    let going = pod("web-0", &old(), Some(60), terminating_patch());
    let d = reconcile(&sts(3, json!({})), std::slice::from_ref(&going), now());
    assert!(d.create.is_empty() && d.delete.is_empty());
    let parallel = sts(3, json!({"spec": {"podManagementPolicy": "Parallel"}}));
    let d = reconcile(&parallel, &[going], now());
    assert_eq!(
        created(&d),
        ["web-1", "web-2"],
        "never web-0 while its old pod terminates"
    );
    assert!(d.delete.is_empty());
}

#[test]
fn status_counts_members_and_an_idle_pass_writes_nothing() {
    let mut set = sts(3, json!({"spec": {"minReadySeconds": 10}}));
    let r = rev(&set);
    let pods = [
        pod("web-0", &r, Some(60), json!({})),
        pod("web-1", &r, Some(4), json!({})),
        pod("web-2", &r, None, json!({})),
        pod("web-7", &r, None, terminating_patch()),
        pod("other", &r, Some(60), json!({})),
    ];
    let d = reconcile(&set, &pods, now());
    let s = d.status.clone().expect("a first status");
    assert_eq!(
        s.replicas, 4,
        "terminating members count; non-members do not"
    );
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(s.available_replicas, Some(1));
    assert_eq!(
        s.updated_replicas,
        Some(3),
        "terminating pods are not counted as updated"
    );
    assert_eq!(s.current_replicas, Some(3));
    assert_eq!(
        s.current_revision.as_deref(),
        Some(r.as_str()),
        "no stored revision: the update's"
    );
    assert_eq!(s.update_revision.as_deref(), Some(r.as_str()));
    assert_eq!(s.observed_generation, Some(2));
    set.status = d.status;
    let again = reconcile(&set, &pods, now());
    assert_eq!(
        (again.create.len(), again.delete.len(), again.status),
        (0, 0, None)
    );
    // Settled, nothing left to wait for: an empty decision.
    let mut idle = sts(2, json!({}));
    let pods = [
        pod("web-0", &rev(&idle), Some(60), json!({})),
        pod("web-1", &rev(&idle), Some(60), json!({})),
    ];
    idle.status = reconcile(&idle, &pods, now()).status;
    assert!(idle.status.is_some());
    assert_eq!(reconcile(&idle, &pods, now()), Decision::default());
    // Stored zeros are the same status; a new generation is not.
    let r0 = rev(&sts(0, json!({})));
    let zeros = sts(
        0,
        json!({"status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0,
        "currentReplicas": 0, "updatedReplicas": 0, "collisionCount": 0, "observedGeneration": 2,
        "currentRevision": r0, "updateRevision": r0}}),
    );
    assert_eq!(reconcile(&zeros, &[], now()), Decision::default());
    let mut newer = zeros;
    newer.metadata.generation = Some(3);
    let s = reconcile(&newer, &[], now())
        .status
        .expect("a new generation");
    assert_eq!(s.observed_generation, Some(3));
}

#[test]
fn a_statefulset_being_deleted_only_reports() {
    let set = sts(3, json!({"metadata": {"deletionTimestamp": ago(1)}}));
    let pods = [pod("web-5", &old(), Some(60), json!({}))];
    let d = reconcile(&set, &pods, now());
    assert!(d.create.is_empty() && d.delete.is_empty());
    assert_eq!(d.status.unwrap().replicas, 1);
}
