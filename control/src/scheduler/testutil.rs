//! Small builders for the scheduler's tests: a ready node and a one-container
//! pod, each with a JSON patch merged in.

use super::NodeInfo;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use std::sync::Arc;

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub(crate) fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A Ready node with 4 cpu, 8Gi memory, 110 pods, the hostname label, and `patch`.
pub(crate) fn node(name: &str, patch: Value) -> Arc<Node> {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut v, patch);
    Arc::new(serde_json::from_value(v).expect("node"))
}

/// A pod in `default` with uid `<name>-uid`, one container, and `patch`.
pub(crate) fn pod(name: &str, patch: Value) -> Arc<Pod> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    });
    merge(&mut v, patch);
    Arc::new(serde_json::from_value(v).expect("pod"))
}

/// A pod whose one container requests `cpu` and `memory`.
pub(crate) fn pod_requesting(name: &str, cpu: &str, memory: &str) -> Arc<Pod> {
    pod(
        name,
        json!({"spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}),
    )
}

/// `pod` bound to `node`.
pub(crate) fn on(node: &str, pod: &Arc<Pod>) -> Arc<Pod> {
    let mut p = (**pod).clone();
    if let Some(s) = p.spec.as_mut() {
        s.node_name = Some(node.to_string());
    }
    Arc::new(p)
}

/// `nodes` with `bound` counted on them.
pub(crate) fn cluster(nodes: &[Arc<Node>], bound: &[Arc<Pod>]) -> Vec<NodeInfo> {
    super::snapshot(nodes, bound)
}

/// A pod owned (as controller) by the ReplicaSet with uid `owner`.
pub(crate) fn replica(name: &str, owner: &str, patch: Value) -> Arc<Pod> {
    let mut p = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": true}]}});
    merge(&mut p, patch);
    pod(name, p)
}
