//! Storage on `ferry up` through unmodified kubectl: a StatefulSet's
//! `volumeClaimTemplates` become claims bound to `local-path` volumes made on
//! the node each pod was scheduled to; a replaced pod finds its data; a claim
//! in use is kept (Terminating) until its pod is gone; deleting the claims
//! deletes their volumes and the nodes remove the directories.

use crate::harness::{serial, wait_until};
use crate::kubectl::Kubectl;
use crate::network::is_root;
use crate::procs::{free_ports, T};
use crate::up::Up;
use serde_json::Value;
use std::time::Duration;

const DB: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "echo \"start $(hostname)\" >> /data/runs; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
"#;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_claims_get_local_volumes_that_outlive_their_pods() {
    if !is_root() {
        eprintln!("skipped: bind-mounting volumes needs a mount namespace (root)");
        return;
    }
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let dir = home.join("local");
    let mut up = Up::start(home, &dir, free_ports(3), 1);
    up.wait_log("is up", Duration::from_secs(120)).await;
    let k = Kubectl::of_up(home, &dir);

    // The default class is there, as k3s has one.
    let sc = k.ok(&["get", "storageclass"]);
    assert!(sc.contains("local-path (default)"), "{sc}");
    assert!(sc.contains("WaitForFirstConsumer"), "{sc}");

    k.ok_in(&["apply", "-f", "-"], DB);
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    // Each pod's claim is bound to a volume on the pod's node, with its hostname.
    let mut dirs = Vec::new();
    for pod in ["db-0", "db-1"] {
        let p = k.json(&["get", "pod", pod]);
        let node = p["spec"]["nodeName"].as_str().unwrap().to_string();
        let claim = k.json(&["get", "pvc", &format!("data-{pod}")]);
        assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
        assert_eq!(claim["spec"]["storageClassName"], "local-path", "{claim}");
        let pv_name = claim["spec"]["volumeName"].as_str().unwrap().to_string();
        let pv = k.json(&["get", "pv", &pv_name]);
        assert_eq!(pv["status"]["phase"], "Bound", "{pv}");
        assert_eq!(pv["spec"]["claimRef"]["name"], format!("data-{pod}"));
        let term = &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0];
        assert_eq!(term["matchExpressions"][0]["values"][0], node, "{pv}");
        let path = pv["spec"]["hostPath"]["path"].as_str().unwrap().to_string();
        assert!(
            path.starts_with(dir.join(&node).to_str().unwrap()),
            "{path}"
        );
        let runs = k.ok(&["exec", pod, "--", "cat", "/data/runs"]);
        assert_eq!(runs.trim(), format!("start {pod}"));
        assert_eq!(
            std::fs::read_to_string(format!("{path}/runs"))
                .unwrap()
                .trim(),
            format!("start {pod}")
        );
        dirs.push(path);
    }

    // A replaced pod comes back on its volume's node and finds its data.
    let before = k.json(&["get", "pod", "db-1"]);
    k.ok(&["delete", "pod", "db-1"]);
    wait_until("db-1 back with its data", T, || {
        let p = k.json(&["get", "pod", "db-1", "--ignore-not-found", "-o", "json"]);
        let replaced =
            p["metadata"]["uid"] != before["metadata"]["uid"] && p["status"]["phase"] == "Running";
        let runs = if replaced {
            k.run(&["exec", "db-1", "--", "cat", "/data/runs"], None)
                .stdout
        } else {
            String::new()
        };
        async move {
            match runs.lines().count() {
                2 => Ok(()),
                n => Err(format!("{n} runs recorded")),
            }
        }
    })
    .await;
    let after = k.json(&["get", "pod", "db-1"]);
    assert_eq!(after["spec"]["nodeName"], before["spec"]["nodeName"]);

    // A claim in use waits for its pod; then claims, volumes and data go.
    k.ok(&["delete", "pvc", "data-db-0", "--wait=false"]);
    let c = k.json(&["get", "pvc", "data-db-0"]);
    assert!(c["metadata"]["deletionTimestamp"].is_string(), "{c}");
    assert_eq!(
        k.ok(&["exec", "db-0", "--", "cat", "/data/runs"]).trim(),
        "start db-0"
    );
    k.ok(&["delete", "statefulset", "db"]);
    k.ok(&["delete", "pvc", "data-db-1", "--wait=false"]);
    wait_until("claims and volumes gone", T, || {
        let claims = items(&k.json(&["get", "pvc", "-o", "json"])).len();
        let volumes = items(&k.json(&["get", "pv", "-o", "json"])).len();
        async move {
            if claims + volumes == 0 {
                Ok(())
            } else {
                Err(format!("{claims} claims, {volumes} volumes left"))
            }
        }
    })
    .await;
    wait_until("volume directories removed", T, || {
        let left: Vec<_> = dirs
            .iter()
            .filter(|d| std::path::Path::new(d).exists())
            .cloned()
            .collect();
        async move {
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        }
    })
    .await;
}
