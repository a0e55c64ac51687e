//! Storage on `ferry up` through unmodified kubectl: a StatefulSet's
//! `volumeClaimTemplates` become claims bound to `local-path` volumes made on
//! the node each pod was scheduled to; a replaced pod finds its data; a claim
//! in use is kept (Terminating) until its pod is gone; deleting the claims
//! deletes their volumes and the nodes remove the directories; the
//! `persistentVolumeClaimRetentionPolicy` deletes or keeps the claims of
//! ordinals scaled away and of a deleted set.

use crate::harness::{poll, verdict, LocalUp};
use crate::procs::T;
use serde_json::Value;

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
    let Some(c) =
        LocalUp::start_as_root("bind-mounting volumes needs a mount namespace (root)").await
    else {
        return;
    };
    let (k, dir) = (&c.k, &c.dir);

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
    k.wait_json(
        "db-1 back with its data",
        T,
        &["get", "pod", "db-1", "--ignore-not-found", "-o", "json"],
        |p| {
            let replaced = p["metadata"]["uid"] != before["metadata"]["uid"]
                && p["status"]["phase"] == "Running";
            let runs = if replaced {
                k.run(&["exec", "db-1", "--", "cat", "/data/runs"], None)
                    .stdout
            } else {
                String::new()
            };
            match runs.lines().count() {
                2 => Ok(()),
                n => Err(format!("{n} runs recorded")),
            }
        },
    )
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
    poll("claims and volumes gone", T, || {
        let claims = items(&k.json(&["get", "pvc", "-o", "json"])).len();
        let volumes = items(&k.json(&["get", "pv", "-o", "json"])).len();
        verdict(claims + volumes == 0, || {
            format!("{claims} claims, {volumes} volumes left")
        })
    })
    .await;
    poll("volume directories removed", T, || {
        let left: Vec<_> = dirs
            .iter()
            .filter(|d| std::path::Path::new(d).exists())
            .cloned()
            .collect();
        verdict(left.is_empty(), || format!("left: {left:?}"))
    })
    .await;
}

/// A set of the `DB` shape named `name`, with the given retention policy.
fn retained(name: &str, when_deleted: &str, when_scaled: &str) -> String {
    DB.replace("name: db}", &format!("name: {name}}}"))
        .replace("serviceName: db", &format!("serviceName: {name}"))
        .replace("app: db", &format!("app: {name}"))
        .replace(
            "  volumeClaimTemplates:",
            &format!(
                "  persistentVolumeClaimRetentionPolicy: {{whenDeleted: {when_deleted}, whenScaled: {when_scaled}}}\n  volumeClaimTemplates:"
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_claim_retention_policy_deletes_or_keeps_claims() {
    let Some(c) =
        LocalUp::start_as_root("bind-mounting volumes needs a mount namespace (root)").await
    else {
        return;
    };
    let k = &c.k;

    // `keep` retains its claims; `drop` deletes them when scaled and deleted.
    k.ok_in(&["apply", "-f", "-"], &retained("keep", "Retain", "Retain"));
    k.ok_in(&["apply", "-f", "-"], &retained("drop", "Delete", "Delete"));
    k.ok(&["rollout", "status", "statefulset/keep", "--timeout=90s"]);
    k.ok(&["rollout", "status", "statefulset/drop", "--timeout=90s"]);
    let volume_dir = |claim: &str| {
        let c = k.json(&["get", "pvc", claim]);
        assert_eq!(c["status"]["phase"], "Bound", "{c}");
        let pv = k.json(&["get", "pv", c["spec"]["volumeName"].as_str().unwrap()]);
        let path = pv["spec"]["hostPath"]["path"].as_str().unwrap().to_string();
        assert!(std::path::Path::new(&path).exists(), "{path}");
        (c, path)
    };
    let (kept, kept_dir) = volume_dir("data-keep-1");
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
    let (dropped, dropped_dir) = volume_dir("data-drop-1");
    let owner = &dropped["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "StatefulSet", "{dropped}");
    assert_eq!(owner["name"], "drop", "{dropped}");
    let (_, drop0_dir) = volume_dir("data-drop-0");

    k.ok(&["scale", "statefulset", "keep", "drop", "--replicas=1"]);
    poll("data-drop-1 and its volume gone", T, || {
        let claims: Vec<String> = items(&k.json(&["get", "pvc", "-o", "json"]))
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let dir_left = std::path::Path::new(&dropped_dir).exists();
        if claims.iter().any(|c| c == "data-drop-1") || dir_left {
            Err(format!("claims {claims:?}, directory left: {dir_left}"))
        } else {
            Ok(())
        }
    })
    .await;
    poll("keep-1 gone", T, || {
        let p = k.ok(&["get", "pod", "keep-1", "--ignore-not-found", "-o", "name"]);
        verdict(p.trim().is_empty(), || "keep-1 still there".to_string())
    })
    .await;
    // Retain: the claim of the removed ordinal stays bound, with its data.
    let (kept, path) = volume_dir("data-keep-1");
    assert_eq!(path, kept_dir);
    assert!(kept["metadata"]["deletionTimestamp"].is_null(), "{kept}");
    assert_eq!(
        std::fs::read_to_string(format!("{path}/runs"))
            .unwrap()
            .trim(),
        "start keep-1"
    );
    // whenDeleted: Delete: the set's remaining claim goes with it; keep's stay.
    k.ok(&["delete", "statefulset", "drop"]);
    poll("data-drop-0 gone with its set", T, || {
        let claims: Vec<String> = items(&k.json(&["get", "pvc", "-o", "json"]))
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let dir_left = std::path::Path::new(&drop0_dir).exists();
        if claims.iter().any(|c| c.starts_with("data-drop")) || dir_left {
            Err(format!("claims {claims:?}, directory left: {dir_left}"))
        } else if claims != ["data-keep-0", "data-keep-1"] {
            Err(format!("claims {claims:?}"))
        } else {
            Ok(())
        }
    })
    .await;
}
