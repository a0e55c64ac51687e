//! What a cluster starts with, made by each new leader once per term: the
//! default namespaces, Kubernetes' system PriorityClasses, the default RBAC
//! roles and bindings, the default StorageClass and the service-account
//! signing key. Each is created when missing (409: already there; one changed
//! by the user is left as it is). The garbage collector and the namespace
//! controller run in the control plane (`ferry_control::run::gc`).

use crate::apiserver::ApiServer;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::tls::Identity;
use serde_json::json;
use std::time::Duration;

/// Namespaces every cluster has (each gets a ServiceAccount `default`).
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Whether this master is the Raft leader now (the store's leadership watch).
pub(crate) fn is_leader(api: &ApiServer) -> bool {
    api.store().is_leader()
}

/// Makes the defaults at the start of each term of this master's leadership;
/// runs until its actor stops.
pub async fn run(api: ApiServer) {
    let mut leadership = api.store().leadership();
    loop {
        while !*leadership.borrow_and_update() {
            if leadership.changed().await.is_err() {
                return;
            }
        }
        // Tried until everything is made (or leadership is lost meanwhile).
        while is_leader(&api)
            && !(ensure_namespaces(&api).await
                && ensure_priority_classes(&api).await
                && ensure_rbac(&api).await
                && ensure_storage_class(&api).await
                && api.ensure_sa_key().await)
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        while *leadership.borrow_and_update() {
            if leadership.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn ensure_namespaces(api: &ApiServer) -> bool {
    let mut ok = true;
    for ns in DEFAULT_NAMESPACES {
        let mut r = ObjectRequest::new(Verb::Create, "namespaces", None, None);
        r.body = serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .unwrap_or_default();
        match api.handle(&Identity::Admin, &r).await {
            Ok(resp) if resp.code == 201 || resp.code == 409 => {}
            _ => ok = false,
        }
    }
    ok
}

/// Kubernetes' system PriorityClasses (`system-node-critical`,
/// `system-cluster-critical`), as its scheduling API installs them.
async fn ensure_priority_classes(api: &ApiServer) -> bool {
    let mut ok = true;
    for (name, value) in crate::apiserver::admission::SYSTEM_PRIORITY_CLASSES {
        let mut r = ObjectRequest::new(Verb::Create, "priorityclasses", None, None);
        r.body = serde_json::to_vec(&json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
            "description": "Used for system critical pods that must not be moved from their current node.",
        }))
        .unwrap_or_default();
        match api.handle(&Identity::Admin, &r).await {
            Ok(resp) if resp.code == 201 || resp.code == 409 => {}
            _ => ok = false,
        }
    }
    ok
}

/// The default StorageClass `local-path` (as k3s ships one): claims without
/// a class get a directory on the node their first pod runs on.
async fn ensure_storage_class(api: &ApiServer) -> bool {
    let mut r = ObjectRequest::new(Verb::Create, "storageclasses", None, None);
    r.body = serde_json::to_vec(&json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": ferry_api::storage::LOCAL_PATH_CLASS,
            "annotations": {crate::apiserver::storage::DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": ferry_api::storage::LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
    .unwrap_or_default();
    matches!(api.handle(&Identity::Admin, &r).await, Ok(resp) if resp.code == 201 || resp.code == 409)
}

/// The default ClusterRoles and ClusterRoleBindings, created when missing
/// (one changed by the user is left as it is).
async fn ensure_rbac(api: &ApiServer) -> bool {
    use crate::apiserver::rbac::defaults;
    let mut ok = true;
    let objects = defaults::cluster_roles()
        .into_iter()
        .map(|o| ("clusterroles", o))
        .chain(
            defaults::cluster_role_bindings()
                .into_iter()
                .map(|o| ("clusterrolebindings", o)),
        );
    for (plural, obj) in objects {
        let mut r = ObjectRequest::new(Verb::Create, plural, None, None);
        r.body = serde_json::to_vec(&obj).unwrap_or_default();
        match api.handle(&Identity::Admin, &r).await {
            Ok(resp) if resp.code == 201 || resp.code == 409 => {}
            _ => ok = false,
        }
    }
    ok
}
