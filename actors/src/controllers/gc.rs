//! The garbage collector and namespace lifecycle, run on the leader.
//!
//! Triggered by deletions and by objects marked for deletion, it reconciles the
//! whole object graph from one read: dependents whose owners are all gone are
//! deleted (background propagation); an owner marked `foregroundDeletion` has
//! its dependents deleted first and loses the finalizer once none remain; an
//! owner marked `orphan` has its dependents' owner references removed first; a
//! terminating namespace has its content deleted, then goes itself. Every write
//! goes through the API pipeline with a resourceVersion precondition, so a
//! second collector (a leader change) can only conflict, never corrupt.

use crate::apiserver::delete::{FOREGROUND, ORPHAN};
use crate::apiserver::meta::{self, metadata_mut};
use crate::apiserver::read::Filter;
use crate::apiserver::ApiServer;
use ferry_api::kv::{EventKind, Expect, WatchItem, Write, WriteOp};
use ferry_api::object::{ListOptions, ObjectRequest, Verb};
use ferry_api::proto::{Consistency, WatchRequest};
use ferry_api::resources::{Resource, RESOURCES};
use ferry_api::tls::Identity;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Namespaces every cluster has (each gets a ServiceAccount `default`).
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// One stored object with its kind.
struct Item {
    res: &'static Resource,
    obj: Value,
}

impl Item {
    fn uid(&self) -> &str {
        meta::meta_str(&self.obj, "uid").unwrap_or_default()
    }
    fn name(&self) -> &str {
        meta::name(&self.obj).unwrap_or_default()
    }
    fn namespace(&self) -> Option<&str> {
        meta::meta_str(&self.obj, "namespace")
    }
    fn deleting(&self) -> bool {
        self.obj.pointer("/metadata/deletionTimestamp").is_some()
    }
}

/// Whether this master is the Raft leader now (the store's leadership watch).
pub(crate) fn is_leader(api: &ApiServer) -> bool {
    api.store().is_leader()
}

/// The collector's loop; it runs until its actor stops.
pub async fn run(api: ApiServer) {
    let mut namespaces_ready = false;
    let mut dirty = true;
    let mut watch = None;
    loop {
        if watch.is_none() {
            watch = api
                .store()
                .watch(&WatchRequest {
                    prefix: "/registry/".into(),
                    after_revision: None,
                    bookmark_ms: 0,
                })
                .ok();
        }
        if is_leader(&api) {
            if !namespaces_ready {
                namespaces_ready = ensure_namespaces(&api).await
                    && ensure_priority_classes(&api).await
                    && ensure_rbac(&api).await
                    && ensure_storage_class(&api).await
                    && api.ensure_sa_key().await;
            }
            if dirty {
                match reconcile(&api).await {
                    Ok(pending) => dirty = pending,
                    Err(e) => tracing::debug!("garbage collection pass failed: {e}"),
                }
            }
        } else {
            namespaces_ready = false;
            dirty = true;
        }
        let Some(w) = watch.as_mut() else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(1), w.next()).await {
            // A follower reconciles anyway once it leads; the leader looks for
            // deletions and objects that may be marked for one. The byte search
            // stands in for parsing every object written: a false hit (the word in
            // an object's data) costs one extra pass, and a marked object always
            // holds it.
            Ok(Ok(WatchItem::Events { events, .. })) if is_leader(&api) => {
                // A new namespace needs its default ServiceAccount too.
                dirty |= events.iter().any(|e| {
                    e.kind == EventKind::Delete
                        || may_be_marked(&e.kv.value)
                        || e.kv.key.starts_with("/registry/namespaces/")
                });
            }
            Ok(Ok(WatchItem::Events { .. })) => {}
            Ok(Ok(WatchItem::Bookmark { .. })) => {}
            Ok(Err(_)) => watch = None,
            Err(_) => {}
        }
    }
}

/// Whether a stored object's JSON may carry `metadata.deletionTimestamp`.
fn may_be_marked(json: &[u8]) -> bool {
    memchr::memmem::find(json, b"\"deletionTimestamp\"").is_some()
}

fn request(verb: Verb, item: &Item) -> ObjectRequest {
    let mut r = ObjectRequest::new(verb, item.res.plural, item.namespace(), Some(item.name()));
    r.list = ListOptions::default();
    r
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

/// Every active namespace has a ServiceAccount `default`, as Kubernetes'
/// service account controller keeps one (made again when deleted). False when
/// a create failed (the pass is tried again).
async fn ensure_service_accounts(api: &ApiServer, items: &[Item]) -> bool {
    let mut ok = true;
    for ns in items
        .iter()
        .filter(|i| i.res.kind == "Namespace" && !i.deleting())
    {
        let name = ns.name();
        let has = items.iter().any(|i| {
            i.res.kind == "ServiceAccount" && i.namespace() == Some(name) && i.name() == "default"
        });
        if has {
            continue;
        }
        let mut r = ObjectRequest::new(Verb::Create, "serviceaccounts", Some(name), None);
        r.body = serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": name},
        }))
        .unwrap_or_default();
        match api.handle(&Identity::Admin, &r).await {
            // 403: the namespace began terminating meanwhile.
            Ok(resp) if matches!(resp.code, 201 | 403 | 409) => {}
            _ => ok = false,
        }
    }
    ok
}

async fn read_all(api: &ApiServer) -> Result<Vec<Item>, String> {
    let everything = Filter::new(&RESOURCES[0], &ListOptions::default()).map_err(|e| e.message)?;
    let mut items = Vec::new();
    for res in RESOURCES {
        let scan = api
            .scan(
                res,
                &res.key(None, None),
                &everything,
                Consistency::Local,
                None,
                0,
            )
            .await
            .map_err(|e| format!("{e:?}"))?;
        items.extend(scan.items.into_iter().map(|obj| Item { res, obj }));
    }
    Ok(items)
}

/// One pass; returns whether work remains (something is still being deleted).
async fn reconcile(api: &ApiServer) -> Result<bool, String> {
    let items = read_all(api).await?;
    let uids: HashSet<&str> = items.iter().map(Item::uid).collect();
    let dependents = |owner: &Item| -> Vec<&Item> {
        items
            .iter()
            .filter(|d| meta::owner_uids(&d.obj).iter().any(|u| u == owner.uid()))
            .collect()
    };
    let mut pending = false;
    if !ensure_service_accounts(api, &items).await {
        pending = true;
    }
    for item in &items {
        let owners = meta::owner_uids(&item.obj);
        if !item.deleting()
            && !owners.is_empty()
            && owners.iter().all(|u| !uids.contains(u.as_str()))
        {
            delete(api, item, "Background").await;
        }
        if !item.deleting() {
            continue;
        }
        pending = true;
        let fins = meta::finalizers(&item.obj);
        if item.res.kind == "Namespace" {
            finish_namespace(api, item, &items).await;
        } else if fins.iter().any(|f| f == FOREGROUND) {
            let deps = dependents(item);
            for d in deps.iter().filter(|d| !d.deleting()) {
                delete(api, d, "Foreground").await;
            }
            if deps.is_empty() {
                drop_finalizer(api, item, FOREGROUND).await;
            }
        } else if fins.iter().any(|f| f == ORPHAN) {
            for d in dependents(item) {
                let mut obj = d.obj.clone();
                if let Some(refs) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"].as_str() != Some(item.uid()));
                    if refs.is_empty() {
                        metadata_mut(&mut obj).remove("ownerReferences");
                    }
                }
                update(api, d, obj).await;
            }
            drop_finalizer(api, item, ORPHAN).await;
        }
    }
    Ok(pending)
}

async fn delete(api: &ApiServer, item: &Item, propagation: &str) {
    let mut r = request(Verb::Delete, item);
    r.body = serde_json::to_vec(&json!({
        "propagationPolicy": propagation,
        "preconditions": {"uid": item.uid()},
    }))
    .unwrap_or_default();
    log(api.handle(&Identity::Admin, &r).await, "delete", item);
}

async fn update(api: &ApiServer, item: &Item, obj: Value) {
    let mut r = request(Verb::Update, item);
    r.body = serde_json::to_vec(&obj).unwrap_or_default();
    log(api.handle(&Identity::Admin, &r).await, "update", item);
}

async fn drop_finalizer(api: &ApiServer, item: &Item, fin: &str) {
    let mut obj = item.obj.clone();
    let fins: Vec<String> = meta::finalizers(&obj)
        .into_iter()
        .filter(|f| f != fin)
        .collect();
    meta::set_finalizers(&mut obj, &fins);
    update(api, item, obj).await;
}

fn log(
    r: Result<ferry_api::object::ObjectResponse, ferry_api::proto::ApiError>,
    what: &str,
    item: &Item,
) {
    let failed = match &r {
        Ok(resp) if resp.code < 400 || resp.code == 404 => return,
        Ok(resp) => resp.status().map(|s| s.message).unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    tracing::debug!(
        kind = item.res.kind,
        name = item.name(),
        "garbage collector {what} failed: {failed}"
    );
}

/// Deletes a terminating namespace's content; once empty, the namespace itself.
async fn finish_namespace(api: &ApiServer, ns: &Item, items: &[Item]) {
    let content: Vec<&Item> = items
        .iter()
        .filter(|i| i.res.namespaced && i.namespace() == Some(ns.name()))
        .collect();
    for i in content.iter().filter(|i| !i.deleting()) {
        delete(api, i, "Background").await;
    }
    if !content.is_empty() || !meta::finalizers(&ns.obj).is_empty() {
        return;
    }
    let Ok(Some(rev)) = meta::resource_version(&ns.obj) else {
        return;
    };
    let key = ns.res.key(None, Some(ns.name()));
    let w = Write::Op(WriteOp::Delete {
        key,
        expect: Expect::ModRevision(rev),
    });
    if let Err(e) = api.store().write(w).await {
        tracing::debug!(
            namespace = ns.name(),
            "removing terminated namespace failed: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_marked;
    use serde_json::json;

    #[test]
    fn marked_objects_are_always_found() {
        let marked =
            json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(may_be_marked(&serde_json::to_vec(&marked).unwrap()));
        let plain = json!({"metadata": {"name": "a"}, "data": {"deletion": "Timestamp"}});
        assert!(!may_be_marked(&serde_json::to_vec(&plain).unwrap()));
    }
}
