//! Table tests for the Job controller: helpers and the NonIndexed rules here,
//! failures and time in `lifecycle`, Indexed Jobs in `indexed`.

mod indexed;
mod lifecycle;

use super::*;
use crate::meta;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;

/// Pods for a table row.
type Pods = Vec<Arc<Pod>>;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// An RFC 3339 time `secs` before [`now`].
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

/// A started Job: 3 completions, 2 at a time.
fn job(patch: Value) -> Job {
    let mut v = json!({
        "metadata": {"name": "pi", "namespace": "ns", "uid": "job-uid"},
        "spec": {
            "completions": 3, "parallelism": 2, "backoffLimit": 6,
            "template": {
                "metadata": {"labels": {"app": "pi"}, "annotations": {"a": "b"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}
            }
        },
        "status": {"startTime": ago(100)}
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

/// A pod of the Job in `phase`.
fn pod(name: &str, phase: &str, patch: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "creationTimestamp": ago(50),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                 "uid": "job-uid", "controller": true}]
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "perl"}]},
        "status": {"phase": phase}
    });
    merge(&mut v, patch);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn running(name: &str) -> Arc<Pod> {
    pod(name, "Running", json!({}))
}

fn ready(name: &str) -> Arc<Pod> {
    pod(
        name,
        "Running",
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
}

fn terminating(name: &str) -> Arc<Pod> {
    pod(
        name,
        "Running",
        json!({"metadata": {"deletionTimestamp": ago(1)}}),
    )
}

/// A pod that ended in `phase` `secs` ago.
fn ended(name: &str, phase: &str, secs: i64) -> Arc<Pod> {
    pod(
        name,
        phase,
        json!({"status": {"containerStatuses": [{
            "name": "c", "image": "perl", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "finishedAt": ago(secs)}}
        }]}}),
    )
}

fn succeeded(name: &str) -> Arc<Pod> {
    ended(name, "Succeeded", 1000)
}

fn deleted(d: &Decision) -> Vec<&str> {
    d.delete.iter().map(|(n, _)| n.as_str()).collect()
}

/// The status written, or the stored one when nothing was written.
fn status_of(j: &Job, d: &Decision) -> JobStatus {
    d.status
        .clone()
        .or_else(|| j.status.clone())
        .unwrap_or_default()
}

/// (type, status, reason) of each condition.
fn conditions(s: &JobStatus) -> Vec<(String, String, String)> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            (c.type_.clone(), c.status.clone(), reason)
        })
        .collect()
}

fn reasons(d: &Decision) -> Vec<&str> {
    d.events.iter().map(|(_, r, _)| r.as_str()).collect()
}

#[test]
fn creates_pods_until_active_meets_parallelism_or_remaining_completions() {
    let cases: Vec<(&str, Value, Pods, usize)> = vec![
        ("none yet: parallelism", json!({}), vec![], 2),
        ("one running", json!({}), vec![running("a")], 1),
        (
            "one completion left caps at one",
            json!({}),
            vec![succeeded("s1"), succeeded("s2")],
            1,
        ),
        (
            "done pods and running ones fill it",
            json!({}),
            vec![succeeded("s1"), running("a"), running("b")],
            0,
        ),
        (
            "failed and terminating pods are replaced",
            json!({}),
            vec![ended("f", "Failed", 1000), terminating("t")],
            2,
        ),
        (
            "podReplacementPolicy Failed waits for terminating pods",
            json!({"spec": {"podReplacementPolicy": "Failed"}}),
            vec![terminating("t")],
            1,
        ),
        (
            "work queue: parallelism until a success",
            json!({"spec": {"completions": null, "parallelism": 3}}),
            vec![running("a")],
            2,
        ),
        (
            "work queue: no new pods after a success",
            json!({"spec": {"completions": null, "parallelism": 3}}),
            vec![succeeded("s"), running("a")],
            0,
        ),
        (
            "parallelism 0 runs nothing",
            json!({"spec": {"parallelism": 0}}),
            vec![],
            0,
        ),
    ];
    for (what, patch, pods, want) in cases {
        let d = reconcile(&job(patch), &pods, now());
        assert_eq!(d.create.len(), want, "{what}");
        assert!(d.delete.is_empty(), "{what}: {:?}", d.delete);
    }
}

#[test]
fn created_pods_come_from_the_template_labelled_and_owned_by_the_job() {
    let d = reconcile(&job(json!({})), &[], now());
    assert_eq!(d.create.len(), 2);
    let p = &d.create[0];
    let m = &p.metadata;
    assert_eq!(m.generate_name.as_deref(), Some("pi-"));
    assert_eq!(
        (m.name.as_deref(), m.namespace.as_deref()),
        (None, Some("ns"))
    );
    let labels = m.labels.as_ref().unwrap();
    for (k, v) in [
        ("app", "pi"),
        ("batch.kubernetes.io/controller-uid", "job-uid"),
        ("batch.kubernetes.io/job-name", "pi"),
        ("controller-uid", "job-uid"),
        ("job-name", "pi"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(
        !labels.contains_key(INDEX_KEY),
        "NonIndexed pods have no index"
    );
    assert_eq!(m.annotations.as_ref().unwrap()["a"], "b");
    let owner = meta::controller_of(m).expect("a controller owner");
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("batch/v1", "Job", "pi", "job-uid")
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.containers[0].image.as_deref(), Some("perl"));
    assert_eq!(spec.hostname, None);
}

#[test]
fn surplus_pods_go_not_ready_first_and_leave_the_counts() {
    let j = job(json!({"spec": {"parallelism": 1}}));
    let d = reconcile(&j, &[ready("keep"), running("drop")], now());
    assert_eq!(deleted(&d), ["drop"]);
    assert!(d.create.is_empty());
    let s = d.status.expect("counts changed");
    assert_eq!(
        (s.active, s.ready, s.terminating),
        (Some(1), Some(1), Some(1))
    );
}

#[test]
fn reaching_completions_completes_the_job_and_stops_the_rest() {
    let cases: Vec<(&str, Value, Pods, bool, Vec<&str>)> = vec![
        (
            "all completions succeeded",
            json!({}),
            vec![succeeded("a"), succeeded("b"), succeeded("c")],
            true,
            vec![],
        ),
        (
            "a straggler is deleted",
            json!({}),
            vec![succeeded("a"), succeeded("b"), succeeded("c"), running("d")],
            true,
            vec!["d"],
        ),
        (
            "two of three is not done",
            json!({}),
            vec![succeeded("a"), succeeded("b")],
            false,
            vec![],
        ),
        (
            "work queue waits for the running pods",
            json!({"spec": {"completions": null}}),
            vec![succeeded("a"), running("b")],
            false,
            vec![],
        ),
        (
            "work queue: one success and none running",
            json!({"spec": {"completions": null}}),
            vec![succeeded("a"), ended("f", "Failed", 1000)],
            true,
            vec![],
        ),
        (
            "a stored count stands for pods gone",
            json!({"status": {"succeeded": 3}}),
            vec![],
            true,
            vec![],
        ),
    ];
    for (what, patch, pods, done, del) in cases {
        let j = job(patch);
        let d = reconcile(&j, &pods, now());
        assert_eq!(deleted(&d), del, "{what}");
        let s = status_of(&j, &d);
        if done {
            let t = |ty: &str| (ty.into(), "True".into(), "CompletionsReached".into());
            assert_eq!(
                conditions(&s),
                [t("SuccessCriteriaMet"), t("Complete")],
                "{what}"
            );
            assert_eq!(s.completion_time, Some(meta::time(now())), "{what}");
            assert_eq!(s.active, None, "{what}");
            assert_eq!(
                d.events,
                [("Normal".into(), "Completed".into(), "Job completed".into())],
                "{what}"
            );
            assert!(d.create.is_empty(), "{what}");
        } else {
            assert!(conditions(&s).is_empty(), "{what}");
            assert_eq!(s.completion_time, None, "{what}");
            assert!(d.events.is_empty(), "{what}");
        }
    }
}

#[test]
fn status_counts_pods_by_state() {
    let pods = [
        ready("r"),
        running("a"),
        terminating("t"),
        succeeded("s"),
        ended("f1", "Failed", 1000),
        ended("f2", "Failed", 900),
    ];
    let j = job(json!({"spec": {"completions": 10}}));
    let s = reconcile(&j, &pods, now()).status.expect("first count");
    assert_eq!(s.active, Some(2));
    assert_eq!(s.ready, Some(1));
    assert_eq!(s.terminating, Some(1));
    assert_eq!(s.succeeded, Some(1));
    assert_eq!(s.failed, Some(2));
    assert_eq!(s.start_time, j.status.unwrap().start_time, "kept");
}

#[test]
fn an_idle_pass_writes_nothing() {
    let cases: Vec<(&str, Value, Pods)> = vec![
        (
            "running",
            json!({}),
            vec![ready("a"), running("b"), succeeded("s")],
        ),
        ("suspended", json!({"spec": {"suspend": true}}), vec![]),
        (
            "indexed",
            json!({"spec": {"completionMode": "Indexed", "parallelism": 1}}),
            vec![succeeded("s")],
        ),
    ];
    for (what, patch, pods) in cases {
        let mut j = job(patch);
        j.status = None;
        let first = reconcile(&j, &pods, now());
        j.status = Some(first.status.expect("the first pass writes"));
        let later = Timestamp::from_second(NOW + 5).unwrap();
        let again = reconcile(&j, &pods, later);
        assert_eq!(again.status, None, "{what}");
        assert!(again.events.is_empty(), "{what}");
    }
}

#[test]
fn a_job_being_deleted_or_without_spec_is_left_alone() {
    let j = job(json!({"metadata": {"deletionTimestamp": ago(1)}}));
    assert_eq!(reconcile(&j, &[running("a")], now()), Decision::default());
    let mut bare = job(json!({}));
    bare.spec = None;
    assert_eq!(reconcile(&bare, &[], now()), Decision::default());
}
