//! Node-pressure eviction on `ferry up`: a third real node joins with a
//! `--node-config` whose `memory.available` threshold is above any machine's
//! free memory (checked first every 20 s, so the pods start before it). It
//! reports MemoryPressure and gets the `memory-pressure:NoSchedule` taint;
//! of its two pods the BestEffort one is evicted (Failed, `Evicted`, the
//! kubelet's message, `DisruptionTarget`/`TerminationByKubelet`) while the
//! Guaranteed one runs on, and its ReplicaSet's replacement runs on another
//! node, not the tainted one. A BestEffort pod bound to it then is refused
//! (kubelet admission: Failed, `Evicted`, `Pod was rejected: The node had
//! condition: [MemoryPressure]. `). Last, SIGTERM shuts n3 down gracefully
//! (its `[shutdown]`, budgets by pod priority — the regular group empty by
//! then, skipped): the Node turns NotReady (`node is shutting down`) and its
//! system-node-critical pod ends `Failed`/`Terminated` with the kubelet's
//! message after its group's 3 s before the agent exits on its own.

use crate::harness::{wait_until, LocalUp};
use crate::procs::T;
use serde_json::Value;
use std::time::Duration;

const PODS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: hog}
spec:
  replicas: 1
  selector: {matchLabels: {app: hog}}
  template:
    metadata: {labels: {app: hog}}
    spec:
      nodeSelector: {ferry.test/pool: pressure}
      terminationGracePeriodSeconds: 1
      containers:
      - {name: hog, image: busybox, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: steady, labels: {app: steady}}
spec:
  nodeSelector: {ferry.test/pool: pressure}
  terminationGracePeriodSeconds: 1
  containers:
  - name: steady
    image: busybox
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 10m, memory: 64Mi}
      limits: {cpu: 10m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: critical, namespace: kube-system}
spec:
  nodeName: n3
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 30
  containers:
  # Deaf to SIGTERM: it stays until its 3 s budget ends in SIGKILL.
  - {name: critical, image: busybox, command: ["sh", "-c", "trap '' TERM; sleep 3600"]}
"#;

const LATE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  nodeName: n3
  containers:
  - {name: late, image: busybox, command: ["sleep", "3600"]}
"#;

fn condition(obj: &Value, t: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_evicts_the_best_effort_pod_and_its_replicaset_replaces_it() {
    let c = LocalUp::start().await;
    let (k, home) = (&c.k, c.home.as_path());

    // n3: always short of memory by its threshold, first checked after 20 s.
    let node_conf = home.join("pressure.toml");
    std::fs::write(
        &node_conf,
        "[eviction]\nmemory_available = \"1Pi\"\nnodefs_available = \"0\"\ninterval_secs = 20\n\
         [[shutdown.grace_period_by_pod_priority]]\npriority = 2000000000\ngrace_period_secs = 3\n\
         [[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 3\n",
    )
    .unwrap();
    let mut n3 = c.join_node(
        "n3",
        "127.0.1.3",
        &["--node-config", node_conf.to_str().unwrap()],
    );
    wait_until("n3 registered", T, || {
        let out = k.run(&["get", "node", "n3"], None);
        async move { out.ok.then_some(()).ok_or(out.stderr) }
    })
    .await;
    k.ok(&["label", "node", "n3", "ferry.test/pool=pressure"]);
    k.ok_in(&["apply", "-f", "-"], PODS);
    wait_until("steady Ready", T, || {
        let p = k.json(&["get", "pod", "steady"]);
        let ready = condition(&p, "Ready")["status"] == "True";
        async move { ready.then_some(()).ok_or(format!("{}", p["status"])) }
    })
    .await;
    k.ok(&["rollout", "status", "deployment/hog", "--timeout=30s"]);
    let first = k.json(&["get", "pods", "-l", "app=hog"])["items"][0].clone();
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(first["spec"]["nodeName"], "n3");
    assert_eq!(first["status"]["qosClass"], "BestEffort");

    // The first check: pressure reported, the node tainted.
    let node = wait_until("n3 under MemoryPressure", Duration::from_secs(40), || {
        let n = k.json(&["get", "node", "n3"]);
        let c = condition(&n, "MemoryPressure");
        let r = (c["status"] == "True")
            .then_some(n.clone())
            .ok_or(format!("{c}"));
        async move { r }
    })
    .await;
    assert_eq!(
        condition(&node, "MemoryPressure")["reason"],
        "KubeletHasInsufficientMemory"
    );
    assert_eq!(condition(&node, "Ready")["status"], "True");
    wait_until(
        "n3's memory-pressure taint",
        Duration::from_secs(15),
        || {
            let n = k.json(&["get", "node", "n3"]);
            let taints = n["spec"]["taints"].clone();
            let has = taints.as_array().into_iter().flatten().any(|t| {
                t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule"
            });
            async move { has.then_some(()).ok_or(format!("{taints}")) }
        },
    )
    .await;

    // The BestEffort pod is the one evicted, as the kubelet words it.
    let evicted = wait_until("hog evicted", Duration::from_secs(30), || {
        let p = k.json(&["get", "pod", &first_name]);
        let r = (p["status"]["phase"] == "Failed")
            .then_some(p.clone())
            .ok_or(format!("{}", p["status"]));
        async move { r }
    })
    .await;
    assert_eq!(evicted["status"]["reason"], "Evicted", "{evicted}");
    let msg = evicted["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "The node was low on resource: memory. Threshold quantity: 1Pi, available: "
        ),
        "{msg}"
    );
    let dt = condition(&evicted, "DisruptionTarget");
    assert_eq!(
        (dt["status"].as_str(), dt["reason"].as_str()),
        (Some("True"), Some("TerminationByKubelet")),
        "{evicted}"
    );
    let steady = k.json(&["get", "pod", "steady"]);
    assert_eq!(
        steady["status"]["phase"], "Running",
        "the Guaranteed pod runs on"
    );
    assert_eq!(steady["status"]["qosClass"], "Guaranteed");
    let events = k.json(&["get", "events"]);
    assert!(
        events["items"].as_array().unwrap().iter().any(|e| {
            e["involvedObject"]["name"] == first_name.as_str()
                && e["reason"] == "Evicted"
                && e["type"] == "Warning"
        }),
        "{events}"
    );

    // The ReplicaSet replaces it; the taint keeps the replacement off n3.
    k.ok(&["label", "node", "n1", "ferry.test/pool=pressure"]);
    let replacement = wait_until("hog's replacement running", T, || {
        let pods = k.json(&["get", "pods", "-l", "app=hog"]);
        let r = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["metadata"]["name"] != first_name.as_str() && p["status"]["phase"] == "Running"
            })
            .cloned()
            .ok_or(format!("{pods}"));
        async move { r }
    })
    .await;
    assert_eq!(replacement["spec"]["nodeName"], "n1");

    // Kubelet admission under MemoryPressure: a BestEffort pod bound to n3
    // (past the scheduler) is refused, not started.
    k.ok_in(&["apply", "-f", "-"], LATE);
    let late = wait_until("late refused", Duration::from_secs(20), || {
        let p = k.json(&["get", "pod", "late"]);
        let r = (p["status"]["phase"] == "Failed")
            .then_some(p.clone())
            .ok_or(format!("{}", p["status"]));
        async move { r }
    })
    .await;
    assert_eq!(late["status"]["reason"], "Evicted", "{late}");
    assert_eq!(
        late["status"]["message"], "Pod was rejected: The node had condition: [MemoryPressure]. ",
        "{late}"
    );
    assert!(
        late["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["state"]["running"].is_null()),
        "{late}"
    );

    // The pods go before n3 does, so it leaves no process behind.
    k.ok(&["delete", "deployment", "hog", "--wait=true"]);
    k.ok(&[
        "delete",
        "pod",
        "steady",
        "--ignore-not-found",
        "--wait=true",
    ]);
    k.ok(&[
        "delete",
        "pod",
        &first_name,
        "--ignore-not-found",
        "--wait=true",
    ]);
    k.ok(&["delete", "pod", "late", "--wait=true"]);

    // Graceful node shutdown: NotReady at once, the critical pod stopped
    // with the kubelet's reason, then the agent exits by itself.
    assert_eq!(
        k.json(&["get", "pod", "critical", "-n", "kube-system"])["status"]["phase"],
        "Running"
    );
    n3.sigterm();
    let node = wait_until("n3 NotReady", Duration::from_secs(15), || {
        let n = k.json(&["get", "node", "n3"]);
        let c = condition(&n, "Ready");
        let r = (c["status"] == "False")
            .then_some(n.clone())
            .ok_or(format!("{c}"));
        async move { r }
    })
    .await;
    let ready = condition(&node, "Ready");
    assert_eq!(
        (ready["reason"].as_str(), ready["message"].as_str()),
        (Some("KubeletNotReady"), Some("node is shutting down")),
        "{node}"
    );
    let critical = wait_until("critical terminated", Duration::from_secs(20), || {
        let p = k.json(&["get", "pod", "critical", "-n", "kube-system"]);
        let r = (p["status"]["phase"] == "Failed")
            .then_some(p.clone())
            .ok_or(format!("{}", p["status"]));
        async move { r }
    })
    .await;
    assert_eq!(critical["status"]["reason"], "Terminated", "{critical}");
    assert_eq!(
        critical["status"]["message"],
        "Pod was terminated in response to imminent node shutdown."
    );
    let dt = condition(&critical, "DisruptionTarget");
    assert_eq!(dt["reason"], "TerminationByKubelet", "{critical}");
    let status = wait_until(
        "n3 exits after its shutdown",
        Duration::from_secs(20),
        || {
            let r = n3.exited().ok_or_else(|| "still running".to_string());
            async move { r }
        },
    )
    .await;
    assert!(status.success(), "n3 exited with {status}");
    let mut c = c;
    c.up.stop_gracefully().await;
}
