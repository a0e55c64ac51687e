//! Indexed Jobs: one pod per completion index, and `completedIndexes`.

use super::*;

fn indexed(patch: Value) -> Job {
    let mut base =
        json!({"spec": {"completionMode": "Indexed", "completions": 5, "parallelism": 3}});
    merge(&mut base, patch);
    job(base)
}

/// A pod for completion index `i`.
fn at(name: &str, phase: &str, i: i32) -> Arc<Pod> {
    let i = i.to_string();
    pod(
        name,
        phase,
        json!({"metadata": {"annotations": {INDEX_KEY: i}, "labels": {INDEX_KEY: i}}}),
    )
}

fn index_of(p: &Pod) -> String {
    p.metadata.annotations.as_ref().unwrap()[INDEX_KEY].clone()
}

#[test]
fn creates_the_lowest_pending_indexes_each_marked_with_its_index() {
    let pods = [at("s1", "Succeeded", 1), at("r0", "Running", 0)];
    let d = reconcile(&indexed(json!({})), &pods, now());
    let made: Vec<String> = d.create.iter().map(index_of).collect();
    assert_eq!(made, ["2", "3"], "min(3, 5 - 1) wanted, one running");
    let p = &d.create[0];
    let m = &p.metadata;
    assert_eq!(m.generate_name.as_deref(), Some("pi-2-"));
    assert_eq!(m.labels.as_ref().unwrap()[INDEX_KEY], "2");
    assert_eq!(m.labels.as_ref().unwrap()["job-name"], "pi");
    assert_eq!(
        m.annotations.as_ref().unwrap()["a"],
        "b",
        "template annotations kept"
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
    let env = spec.containers[0].env.as_ref().unwrap();
    let var = env
        .iter()
        .find(|e| e.name == "JOB_COMPLETION_INDEX")
        .unwrap();
    assert_eq!(var.value.as_deref(), Some("2"));
    let s = d.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("1"));
    assert_eq!((s.succeeded, s.active), (Some(1), Some(3)));
}

#[test]
fn a_templates_own_hostname_and_index_variable_are_kept() {
    let j = indexed(json!({"spec": {"template": {"spec": {
        "hostname": "mine",
        "containers": [{"name": "c", "image": "perl",
                        "env": [{"name": "JOB_COMPLETION_INDEX", "value": "x"}]}],
        "initContainers": [{"name": "i", "image": "busybox"}]
    }}}}));
    let d = reconcile(&j, &[], now());
    let spec = d.create[0].spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("mine"));
    let env = spec.containers[0].env.as_ref().unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].value.as_deref(), Some("x"));
    let init = spec.init_containers.as_ref().unwrap()[0]
        .env
        .as_ref()
        .unwrap();
    assert_eq!(
        init[0].value.as_deref(),
        Some("0"),
        "init containers get it too"
    );
}

#[test]
fn stray_pods_are_deleted_duplicates_keeping_the_ready_one() {
    let dup_ready = {
        let p = at("dup-ready", "Running", 0);
        let mut p = (*p).clone();
        p.status.as_mut().unwrap().conditions = ready("x").status.clone().unwrap().conditions;
        Arc::new(p)
    };
    let pods = [
        at("dup-new", "Running", 0),
        dup_ready,
        at("out-of-range", "Running", 9),
        running("no-index"),
        at("done-index", "Running", 1),
        at("s1", "Succeeded", 1),
    ];
    let d = reconcile(&indexed(json!({})), &pods, now());
    let mut gone = deleted(&d);
    gone.sort_unstable();
    assert_eq!(gone, ["done-index", "dup-new", "no-index", "out-of-range"]);
    let made: Vec<String> = d.create.iter().map(index_of).collect();
    assert_eq!(made, ["2", "3"], "index 0 kept, 1 done");
}

#[test]
fn completed_indexes_accumulate_and_complete_the_job() {
    let j = indexed(
        json!({"spec": {"completions": 3}, "status": {"completedIndexes": "0-1", "succeeded": 2}}),
    );
    let d = reconcile(&j, &[at("s2", "Succeeded", 2)], now());
    let s = d.status.clone().unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(s.succeeded, Some(3));
    assert!(conditions(&s)
        .iter()
        .any(|c| c.0 == "Complete" && c.1 == "True"));
    assert!(d.create.is_empty());
    assert_eq!(reasons(&d), ["Completed"]);
}

#[test]
fn indexes_format_as_kubernetes_writes_them() {
    let cases: &[(&[i32], &str)] = &[
        (&[], ""),
        (&[1], "1"),
        (&[0, 1], "0-1"),
        (&[1, 3], "1,3"),
        (&[1, 3, 4, 5], "1,3-5"),
        (&[0, 1, 2, 7, 9, 10], "0-2,7,9-10"),
    ];
    for (set, want) in cases {
        let set: BTreeSet<i32> = set.iter().copied().collect();
        assert_eq!(format_indexes(&set), *want);
        assert_eq!(parse_indexes(want), set, "round trip {want}");
    }
    let junk: BTreeSet<i32> = [2, 4].into();
    assert_eq!(
        parse_indexes("x,2,5-3,-1,4,,7-z"),
        junk,
        "malformed parts are skipped"
    );
}
