//! `ferry cordon|uncordon|drain NODE`, as kubectl does them: cordon marks the
//! node unschedulable; drain cordons it, then evicts its pods (through the
//! `eviction` subresource, so disruption budgets get their say) and waits
//! until they are gone.

use super::api::Api;
use anyhow::{bail, Result};
use ferry_api::object::{ListOptions, ObjectRequest, PatchType, Verb};
use ferry_api::resources::{self, Resource};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn nodes() -> &'static Resource {
    resources::by_cli_name("nodes").expect("nodes served")
}

fn pods() -> &'static Resource {
    resources::by_cli_name("pods").expect("pods served")
}

/// Marks `node` (un)schedulable; prints kubectl's line.
pub async fn cordon(api: &Api, node: &str, unschedulable: bool) -> Result<ExitCode> {
    let Some(n) = api.get(nodes(), None, node).await? else {
        bail!("Error from server (NotFound): nodes {node:?} not found");
    };
    let word = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(unschedulable)
        || (!unschedulable && n.pointer("/spec/unschedulable").is_none())
    {
        outln!("node/{node} already {word}");
        return Ok(ExitCode::SUCCESS);
    }
    let patch =
        json!({"spec": {"unschedulable": if unschedulable { json!(true) } else { Value::Null }}});
    api.patch(nodes(), None, node, PatchType::Merge, &patch, None)
        .await?;
    outln!("node/{node} {word}");
    Ok(ExitCode::SUCCESS)
}

/// `ferry drain`'s options.
pub struct DrainArgs {
    /// Skip DaemonSet pods instead of refusing.
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// Evict pods no controller will replace.
    pub force: bool,
    /// Grace period for each pod (None: the pod's own).
    pub grace_period: Option<i64>,
    /// How long to wait for the pods to go (0: for ever).
    pub timeout: Duration,
}

/// Why a pod may not be evicted without a flag; `Ok(false)`: skip it quietly.
pub fn check_pod(p: &Value, a: &DrainArgs) -> Result<bool, String> {
    let name = p["metadata"]["name"].as_str().unwrap_or("");
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
    let terminal = matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let owner = p["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["controller"] == true))
        .map(|o| o["kind"].as_str().unwrap_or("").to_string());
    if owner.as_deref() == Some("DaemonSet") {
        return if a.ignore_daemonsets {
            Ok(false)
        } else {
            Err(format!("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {ns}/{name}"))
        };
    }
    if owner.is_none() && !terminal && !a.force {
        return Err(format!(
            "cannot delete Pods that declare no controller (use --force to override): {ns}/{name}"
        ));
    }
    let empty_dir = p["spec"]["volumes"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|v| v.get("emptyDir").is_some()));
    if empty_dir && !terminal && !a.delete_emptydir_data {
        return Err(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {ns}/{name}"
        ));
    }
    Ok(true)
}

/// Cordons `node`, evicts its pods and waits until they are gone.
pub async fn drain(api: &Api, node: &str, a: &DrainArgs) -> Result<ExitCode> {
    cordon(api, node, true).await?;
    let opts = ListOptions {
        field_selector: Some(format!("spec.nodeName={node}")),
        ..ListOptions::default()
    };
    let (on_node, _) = api.list(pods(), None, &opts).await?;
    let mut refusals = Vec::new();
    let mut evict = Vec::new();
    for p in &on_node {
        match check_pod(p, a) {
            Ok(true) => evict.push(p),
            Ok(false) => {}
            Err(e) => refusals.push(e),
        }
    }
    if !refusals.is_empty() {
        bail!(
            "unable to drain node {node:?} due to error: [{}], continuing command...\nThere are pending nodes to be drained:\n {node}",
            refusals.join(", ")
        );
    }
    for p in &evict {
        let (ns, name) = (
            p["metadata"]["namespace"].as_str().unwrap_or("default"),
            p["metadata"]["name"].as_str().unwrap_or(""),
        );
        outln!("evicting pod {ns}/{name}");
        let mut r = ObjectRequest::new(Verb::Create, "pods", Some(ns), Some(name));
        r.subresource = Some("eviction".into());
        let mut ev = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns}});
        if let Some(g) = a.grace_period {
            ev["deleteOptions"] = json!({"gracePeriodSeconds": g});
        }
        r.body = serde_json::to_vec(&ev)?;
        let start = Instant::now();
        // A disruption budget refuses with 429: kubectl waits 5 s and asks again.
        loop {
            match api.send(r.clone()).await {
                Ok(_) => break,
                Err(e) => match super::api::status_of(&e).map(|s| s.code) {
                    Some(404) => break,
                    Some(429) if a.timeout.is_zero() || start.elapsed() < a.timeout => {
                        outln!(
                            "error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {}",
                            super::api::status_of(&e).map_or("", |s| s.message.as_str())
                        );
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    _ => return Err(e),
                },
            }
        }
    }
    let start = Instant::now();
    for p in &evict {
        let (ns, name, uid) = (
            p["metadata"]["namespace"].as_str().unwrap_or("default"),
            p["metadata"]["name"].as_str().unwrap_or(""),
            &p["metadata"]["uid"],
        );
        loop {
            let now = api.get(pods(), Some(ns), name).await?;
            if now.is_none_or(|n| n["metadata"]["uid"] != *uid) {
                outln!("pod/{name} evicted");
                break;
            }
            if !a.timeout.is_zero() && start.elapsed() > a.timeout {
                bail!(
                    "drain did not complete within {:?}: pod {ns}/{name} is still there",
                    a.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    outln!("node/{node} drained");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DrainArgs {
        DrainArgs {
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            force: false,
            grace_period: None,
            timeout: Duration::ZERO,
        }
    }

    fn pod(owner: Option<&str>, empty_dir: bool, phase: &str) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {}, "status": {"phase": phase}});
        if let Some(k) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": k, "name": "o", "uid": "u", "controller": true}]);
        }
        if empty_dir {
            p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        }
        p
    }

    #[test]
    fn drain_refuses_what_kubectl_refuses_unless_told() {
        let a = args();
        assert_eq!(
            check_pod(&pod(Some("ReplicaSet"), false, "Running"), &a),
            Ok(true)
        );
        let e = check_pod(&pod(Some("DaemonSet"), false, "Running"), &a).unwrap_err();
        assert!(e.starts_with("cannot delete DaemonSet-managed Pods"), "{e}");
        let e = check_pod(&pod(None, false, "Running"), &a).unwrap_err();
        assert!(e.contains("declare no controller (use --force"), "{e}");
        let e = check_pod(&pod(Some("ReplicaSet"), true, "Running"), &a).unwrap_err();
        assert!(e.contains("--delete-emptydir-data"), "{e}");
        assert_eq!(
            check_pod(&pod(None, false, "Succeeded"), &a),
            Ok(true),
            "finished pods go"
        );
        let all = DrainArgs {
            ignore_daemonsets: true,
            delete_emptydir_data: true,
            force: true,
            ..args()
        };
        assert_eq!(
            check_pod(&pod(Some("DaemonSet"), false, "Running"), &all),
            Ok(false)
        );
        assert_eq!(check_pod(&pod(None, true, "Running"), &all), Ok(true));
    }
}
