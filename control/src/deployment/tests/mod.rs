mod cluster;
mod rollout;

use super::sync::REVISION;
use super::*;
use crate::meta;
use cluster::Cluster;
use k8s_openapi::api::apps::v1::DeploymentSpec;
use serde_json::{json, Value};

/// The tests' start time, in seconds.
const T0: i64 = 1_700_000_000;

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

/// Deployment `web` (image nginx:1, 25%/25% rolling update) with `patch`.
fn deployment(replicas: i32, patch: Value) -> Deployment {
    let mut v = json!({
        "metadata": {
            "name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1,
            "annotations": {
                "kubernetes.io/change-cause": "first",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            }
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
            },
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        }
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn creates(actions: &[Action]) -> Vec<&ReplicaSet> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(rs),
            _ => None,
        })
        .collect()
}

fn status_of(actions: &[Action]) -> Option<&DeploymentStatus> {
    actions.iter().find_map(|a| match a {
        Action::Status(s) => Some(s),
        _ => None,
    })
}

fn annotation<'r>(rs: &'r ReplicaSet, key: &str) -> Option<&'r str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let pct = |s: &str| IntOrString::String(s.into());
    let q = pct("25%");
    let cases = [
        (Some(&q), Some(&q), 1, (1, 0)),
        (Some(&q), Some(&q), 3, (1, 0)),
        (Some(&q), Some(&q), 4, (1, 1)),
        (Some(&q), Some(&q), 10, (3, 2)),
        (None, None, 10, (3, 2)),
    ];
    for (surge, unavailable, n, want) in cases {
        assert_eq!(
            resolve_fenceposts(surge, unavailable, n),
            want,
            "{n} replicas"
        );
    }
    let zero = IntOrString::Int(0);
    assert_eq!(
        resolve_fenceposts(Some(&zero), Some(&pct("0%")), 10),
        (0, 1),
        "both zero"
    );
    assert_eq!(
        resolve_fenceposts(Some(&pct("10%")), Some(&pct("10%")), 5),
        (1, 0)
    );
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&pct("junk")), 5),
        (2, 0)
    );
    // maxUnavailable never exceeds the replicas; Recreate has neither.
    let d = deployment(
        3,
        json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 5}}}}),
    );
    assert_eq!(max_unavailable(&d), 3);
    let d = deployment(
        3,
        json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
}

#[test]
fn the_first_pass_creates_the_new_replicaset_named_by_its_template_hash() {
    let d = deployment(4, json!({}));
    let actions = reconcile(&d, &[], &[], ts(T0));
    let new = creates(&actions);
    assert_eq!(new.len(), 1);
    let rs = new[0];
    let hash = meta::template_hash(&d.spec.as_ref().unwrap().template, None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(4),
        "nothing else runs: all 4 at once within the surge"
    );
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"],
        hash
    );
    let labels = spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(
        (labels["app"].as_str(), labels["pod-template-hash"].as_str()),
        ("web", hash.as_str())
    );
    let owner = meta::controller_of(&rs.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "d-uid")
    );
    assert_eq!(annotation(rs, REVISION), Some("1"));
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/desired-replicas"),
        Some("4")
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/max-replicas"),
        Some("5")
    );
    assert_eq!(annotation(rs, "kubernetes.io/change-cause"), Some("first"));
    assert_eq!(
        annotation(rs, "kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
    assert!(actions.contains(&Action::SetRevision("1".into())));
    let s = status_of(&actions).unwrap();
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(c.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        c.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
}

#[test]
fn a_name_taken_by_another_template_bumps_the_collision_count() {
    let d = deployment(2, json!({}));
    let hash = meta::template_hash(&d.spec.as_ref().unwrap().template, None);
    let other: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": format!("web-{hash}"), "uid": "x", "resourceVersion": "1"},
        "spec": {"replicas": 0, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}
    }))
    .unwrap();
    let actions = reconcile(&d, &[Arc::new(other)], &[], ts(T0));
    assert!(creates(&actions).is_empty());
    assert_eq!(status_of(&actions).unwrap().collision_count, Some(1));
}

#[test]
fn an_idle_pass_writes_nothing() {
    let mut c = Cluster::new(deployment(3, json!({})));
    c.converge();
    let before = c.d.status.clone();
    c.clock += 3600;
    assert_eq!(c.pass(), vec![], "an hour later, nothing to write");
    assert_eq!(c.d.status, before);
    let (status, reason, msg) = c.progressing();
    let name = c.rs_of("nginx:1").metadata.name.clone().unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "NewReplicaSetAvailable")
    );
    assert_eq!(
        msg,
        format!("ReplicaSet \"{name}\" has successfully progressed.")
    );
    let s = c.d.status.as_ref().unwrap();
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(
        (s.unavailable_replicas, s.observed_generation),
        (None, Some(1))
    );
    let avail = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(
        (avail.status.as_str(), avail.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
}

#[test]
fn scaling_a_single_replicaset_sets_its_replicas() {
    let mut c = Cluster::new(deployment(3, json!({})));
    c.converge();
    c.edit(|s| s.replicas = Some(7));
    let actions = c.pass();
    let name = c.rs_of("nginx:1").metadata.name.clone().unwrap();
    let Some(Action::UpdateReplicaSet {
        name: n,
        replicas,
        annotations,
        ..
    }) = actions.first()
    else {
        panic!("an update first: {actions:?}");
    };
    assert_eq!((n, *replicas), (&name, 7));
    assert_eq!(
        annotations["deployment.kubernetes.io/desired-replicas"],
        "7"
    );
    assert_eq!(annotations["deployment.kubernetes.io/max-replicas"], "9");
    c.converge();
    assert_eq!(c.counts(), (7, 7));
}

/// A ReplicaSet mid-rollout: `replicas`, sized for Deployment size 10.
fn mid_rollout_rs(name: &str, image: &str, replicas: i32, created: i64) -> Arc<ReplicaSet> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "uid": name, "resourceVersion": "7",
                "creationTimestamp": ts(created).to_string(),
                "annotations": {"deployment.kubernetes.io/desired-replicas": "10",
                                "deployment.kubernetes.io/max-replicas": "13",
                                REVISION: if image == "nginx:1" { "1" } else { "2" }}
            },
            "spec": {"replicas": replicas, "selector": {},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": replicas, "availableReplicas": replicas}
        }))
        .unwrap(),
    )
}

#[test]
fn scaling_mid_rollout_spreads_replicas_in_proportion() {
    let d = deployment(
        20,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
    );
    let rss = [
        mid_rollout_rs("old", "nginx:1", 8, T0),
        mid_rollout_rs("new", "nginx:2", 5, T0 + 10),
    ];
    let actions = reconcile(&d, &rss, &[], ts(T0 + 20));
    // 20 + 5 surge = 25 allowed, 13 now: +12, in proportion 8:5 of 13 → 15 and 10.
    let sizes: Vec<(&str, i32)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateReplicaSet {
                name,
                replicas,
                annotations,
                ..
            } => {
                assert_eq!(annotations["deployment.kubernetes.io/max-replicas"], "25");
                Some((name.as_str(), *replicas))
            }
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [("old", 15), ("new", 10)]);
    assert!(creates(&actions).is_empty());
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_revision_first() {
    let rs = |name: &str, rev: &str, replicas: i32, pods: i32| {
        Arc::new(
            serde_json::from_value::<ReplicaSet>(json!({
                "metadata": {"name": name, "uid": format!("u-{name}"), "resourceVersion": "1",
                             "annotations": {REVISION: rev}},
                "spec": {"replicas": replicas, "selector": {},
                         "template": {"spec": {"containers": [{"name": "c", "image": name}]}}},
                "status": {"replicas": pods}
            }))
            .unwrap(),
        )
    };
    let mut d = deployment(2, json!({"spec": {"revisionHistoryLimit": 2}}));
    let current = {
        let mut r = (*rs("cur", "9", 2, 2)).clone();
        r.spec.as_mut().unwrap().template = Some(d.spec.as_ref().unwrap().template.clone());
        let st = r.status.as_mut().unwrap();
        (st.available_replicas, st.ready_replicas) = (Some(2), Some(2));
        Arc::new(r)
    };
    d.status = Some(
        serde_json::from_value(json!({"observedGeneration": 1, "replicas": 2,
            "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}))
        .unwrap(),
    );
    let deleted = |olds: Vec<Arc<ReplicaSet>>| -> Vec<String> {
        let mut all = vec![current.clone()];
        all.extend(olds);
        reconcile(&d, &all, &[], ts(T0))
            .into_iter()
            .filter_map(|a| match a {
                Action::DeleteReplicaSet(n, uid) => {
                    assert_eq!(uid, format!("u-{n}"));
                    Some(n)
                }
                _ => None,
            })
            .collect()
    };
    let olds = vec![
        rs("r3", "3", 0, 0),
        rs("r1", "1", 0, 0),
        rs("r4", "4", 0, 0),
        rs("r2", "2", 0, 0),
    ];
    assert_eq!(deleted(olds), ["r1", "r2"]);
    // One still holding a pod is kept (and not replaced by a newer one).
    let olds = vec![
        rs("r3", "3", 0, 0),
        rs("r1", "1", 0, 1),
        rs("r4", "4", 0, 0),
        rs("r2", "2", 0, 0),
    ];
    assert_eq!(deleted(olds), ["r2"]);
    let olds = vec![rs("r3", "3", 0, 0), rs("r4", "4", 0, 0)];
    assert!(deleted(olds).is_empty(), "within the limit");
}
