//! The kubelet's events as a pod's containers go through their lifecycle:
//! real processes, started by a stand-in shim (a shell script that records
//! the exit as `ferry shim` does).

use super::*;
use std::os::unix::fs::PermissionsExt as _;

/// `ferry shim`'s command line (`shim --exit-file F ... -- ARGV`), run by `sh`.
const SHIM: &str = r#"#!/bin/sh
shift
while [ "$1" != "--" ]; do
  if [ "$1" = "--exit-file" ]; then exit_file="$2"; fi
  shift 2
done
shift
"$@"
code=$?
printf '{"code":%s,"signal":null,"finished_at":"%s"}' "$code" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$exit_file"
exit "$code"
"#;

struct Rig {
    dir: tempfile::TempDir,
    shim: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("shim");
        std::fs::write(&shim, SHIM).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        Rig { dir, shim }
    }

    /// A worker for `pod`, as an agent (re)starting finds it.
    fn worker(&self, pod: &Value) -> PodWorker {
        PodWorker::new(pod.clone(), self.dir.path().join("u1"))
    }

    /// One sync pass; the events it reported as (reason, message, fieldPath).
    fn sync(&self, w: &mut PodWorker) -> Vec<(String, String, String)> {
        w.sync(
            &self.shim,
            &env::Fetched::default(),
            &Network::host("127.0.0.1"),
            &crate::cgroups::Layout::Unavailable(String::new()),
        );
        taken(w)
    }
}

fn taken(w: &mut PodWorker) -> Vec<(String, String, String)> {
    std::mem::take(&mut w.events)
        .into_iter()
        .map(|e| (e.reason, e.message, e.field_path.unwrap_or_default()))
        .collect()
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"automountServiceAccountToken": false, "terminationGracePeriodSeconds": 1,
                 "containers": containers}})
}

/// Waits until container `c` is not running.
fn wait_exit(c: &mut Container) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.running() {
        assert!(Instant::now() < deadline, "{} still runs", c.name);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_events(fp: &str, name: &str) -> Vec<(String, String, String)> {
    [
        (
            "Pulled",
            "Container image \"busybox\" already present on machine".to_string(),
        ),
        ("Created", format!("Created container: {name}")),
        ("Started", format!("Started container {name}")),
    ]
    .into_iter()
    .map(|(r, m)| (r.to_string(), m, fp.to_string()))
    .collect()
}

#[test]
fn containers_report_their_start_each_restart_and_a_held_back_restart_once() {
    let rig = Rig::new();
    let mut p =
        pod(json!([{"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]));
    p["spec"]["initContainers"] =
        json!([{"name": "prep", "image": "busybox", "command": ["true"]}]);
    let mut w = rig.worker(&p);
    // The init container first, by its own field path.
    assert_eq!(
        rig.sync(&mut w),
        start_events("spec.initContainers{prep}", "prep")
    );
    wait_exit(&mut w.init[0]);
    // Then the container; it exits 3 and is restarted at once, reported again.
    let main = "spec.containers{main}";
    assert_eq!(rig.sync(&mut w), start_events(main, "main"));
    wait_exit(&mut w.containers[0]);
    assert_eq!(rig.sync(&mut w), start_events(main, "main"));
    assert_eq!(w.containers[0].restarts, 1);
    wait_exit(&mut w.containers[0]);
    // Its next restart is held back: one BackOff, not one per pass.
    let back_off = (
        "BackOff".to_string(),
        "Back-off restarting failed container main in pod web_default(u1)".to_string(),
        main.to_string(),
    );
    assert_eq!(rig.sync(&mut w), [back_off]);
    for _ in 0..3 {
        assert_eq!(rig.sync(&mut w), []);
    }
    assert_eq!(w.containers[0].restarts, 1);
}

#[test]
fn an_adopted_container_is_not_reported_again_and_a_stopped_one_once() {
    let rig = Rig::new();
    let p = pod(json!([{"name": "main", "image": "busybox", "command": ["sleep", "30"]}]));
    let mut w = rig.worker(&p);
    let main = "spec.containers{main}";
    assert_eq!(rig.sync(&mut w), start_events(main, "main"));
    // The agent restarts: its new worker adopts the running process, and
    // says nothing of it.
    let mut again = rig.worker(&p);
    assert!(again.containers[0].running());
    for _ in 0..3 {
        assert_eq!(rig.sync(&mut again), []);
    }
    // `kubectl debug` adds an ephemeral container: started once, by its path.
    again.pod["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "busybox", "command": ["true"]}]);
    assert_eq!(
        rig.sync(&mut again),
        start_events("spec.ephemeralContainers{debug}", "debug")
    );
    wait_exit(&mut again.ephemeral[0]);
    assert_eq!(rig.sync(&mut again), []);
    // The pod is deleted: each running container is stopped, said once.
    again.pod["metadata"]["deletionTimestamp"] = json!("2026-12-06T00:00:00Z");
    again.stop();
    let killing = (
        "Killing".to_string(),
        "Stopping container main".to_string(),
        main.to_string(),
    );
    assert_eq!(taken(&mut again), [killing]);
    again.stop();
    assert_eq!(rig.sync(&mut again), []);
    wait_exit(&mut again.containers[0]);
    assert_eq!(again.live(), 0);
    drop(w);
}

#[tokio::test]
async fn a_failed_liveness_probe_is_unhealthy_then_killing_with_the_kubelets_reason() {
    let rig = Rig::new();
    let p = pod(
        json!([{"name": "main", "image": "busybox", "command": ["sleep", "30"],
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}}]),
    );
    let mut w = rig.worker(&p);
    assert_eq!(rig.sync(&mut w).len(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = rig.sync(&mut w);
        if !events.is_empty() {
            break events;
        }
        assert!(Instant::now() < deadline, "no probe failure reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (reasons, messages): (Vec<_>, Vec<_>) =
        events.iter().map(|(r, m, _)| (r.as_str(), m)).unzip();
    assert_eq!(reasons, ["Unhealthy", "Killing"], "{events:?}");
    assert!(
        messages[0].starts_with("Liveness probe failed"),
        "{events:?}"
    );
    assert_eq!(
        messages[1],
        "Container main failed liveness probe, will be restarted"
    );
    assert!(events
        .iter()
        .all(|(_, _, fp)| fp == "spec.containers{main}"));
    wait_exit(&mut w.containers[0]);
    // Restarted (the first restart is at once), and reported so.
    assert_eq!(
        rig.sync(&mut w),
        start_events("spec.containers{main}", "main")
    );
    w.end(NodeKill::evicted("test over", 0));
    wait_exit(&mut w.containers[0]);
}
