//! The cluster network's leader-side upkeep: the `kube-system/ferry-network`
//! ConfigMap nodes read the ranges from, the `kubernetes` and `kube-system/kube-dns`
//! Services, the IngressClass `ferry` (default unless another class is), and the
//! repair of allocation markers (a marker whose Service is gone, or no longer
//! holds its value, is removed, as Kubernetes' repair loops free leaked
//! addresses and ports).

use crate::apiserver::alloc::{self, IP_PREFIX, PORT_PREFIX};
use crate::apiserver::ApiServer;
use ferry_api::kv::{Expect, WriteOp};
use ferry_api::network::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::tls::Identity;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How often leaked markers are looked for.
const REPAIR: Duration = Duration::from_secs(30);

/// Runs while the actor lives; acts while this master leads.
pub async fn run(api: ApiServer) {
    let mut published = false;
    let mut last_repair = tokio::time::Instant::now();
    loop {
        if super::bootstrap::is_leader(&api) {
            if !published {
                published = publish(&api).await;
            }
            if last_repair.elapsed() >= REPAIR {
                last_repair = tokio::time::Instant::now();
                if let Err(e) = repair(&api).await {
                    tracing::debug!("allocation repair pass failed: {e}");
                }
            }
        } else {
            published = false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn send(api: &ApiServer, r: &ObjectRequest) -> Option<(u16, Value)> {
    let resp = api.handle(&Identity::Admin, r).await.ok()?;
    Some((resp.code, resp.json().unwrap_or(Value::Null)))
}

/// Creates (or brings up to date) the network ConfigMap and the `kubernetes`
/// Service. False when something must be tried again.
async fn publish(api: &ApiServer) -> bool {
    let data: BTreeMap<String, String> = api.network().to_data();
    let get = ObjectRequest::new(
        Verb::Get,
        "configmaps",
        Some(CONFIGMAP_NAMESPACE),
        Some(CONFIGMAP_NAME),
    );
    let ok = match send(api, &get).await {
        Some((200, cm)) => {
            let stored: BTreeMap<String, String> =
                serde_json::from_value(cm["data"].clone()).unwrap_or_default();
            if stored == data {
                true
            } else {
                tracing::warn!(
                    ?stored,
                    mine = ?data,
                    "the cluster network in {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} differs from this master's [network]; publishing this master's"
                );
                let mut cm = cm;
                cm["data"] = json!(data);
                let mut r = ObjectRequest::new(
                    Verb::Update,
                    "configmaps",
                    Some(CONFIGMAP_NAMESPACE),
                    Some(CONFIGMAP_NAME),
                );
                r.body = serde_json::to_vec(&cm).unwrap_or_default();
                matches!(send(api, &r).await, Some((200, _)))
            }
        }
        Some((404, _)) => {
            let mut r =
                ObjectRequest::new(Verb::Create, "configmaps", Some(CONFIGMAP_NAMESPACE), None);
            r.body = serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIGMAP_NAMESPACE},
                "data": data,
            }))
            .unwrap_or_default();
            matches!(send(api, &r).await, Some((201 | 409, _)))
        }
        _ => false,
    };
    let net = api.network();
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": net.api_service_ip().to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    });
    // Cluster DNS: no selector and no endpoints; every node's proxy sends it
    // to that node's own DNS server (ferry_node::dns).
    let dns = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": net.dns_service_ip().to_string(),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
    });
    let mut all = ok && ingress_class(api).await;
    for svc in [kubernetes, dns] {
        let ns = svc["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut r = ObjectRequest::new(Verb::Create, "services", Some(&ns), None);
        r.body = serde_json::to_vec(&svc).unwrap_or_default();
        // 422: the address is taken (a Service made before this master's
        // network was configured): logged, not retried forever.
        all &= match send(api, &r).await {
            Some((201 | 409, _)) => true,
            Some((code, body)) => {
                tracing::warn!(code, service = %svc["metadata"]["name"], message = %body["message"], "cannot create a cluster Service");
                code == 422
            }
            None => false,
        };
    }
    all
}

/// Creates the IngressClass `ferry` (nodes serve its Ingresses) unless one
/// of that name exists, as the default class unless another one is. False
/// when it must be tried again.
async fn ingress_class(api: &ApiServer) -> bool {
    use ferry_api::ingress::{CLASS, CONTROLLER, DEFAULT_CLASS_ANNOTATION};
    let list = ObjectRequest::new(Verb::List, "ingressclasses", None, None);
    let Some((200, classes)) = send(api, &list).await else {
        return false;
    };
    let items = classes["items"].as_array().cloned().unwrap_or_default();
    if items.iter().any(|c| c["metadata"]["name"] == CLASS) {
        return true;
    }
    let other_default = items
        .iter()
        .any(|c| c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true");
    let annotations = if other_default {
        json!({})
    } else {
        json!({DEFAULT_CLASS_ANNOTATION: "true"})
    };
    let mut r = ObjectRequest::new(Verb::Create, "ingressclasses", None, None);
    r.body = serde_json::to_vec(&json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": CLASS, "annotations": annotations},
        "spec": {"controller": CONTROLLER},
    }))
    .unwrap_or_default();
    match send(api, &r).await {
        Some((201 | 409, _)) => true,
        Some((code, body)) => {
            tracing::warn!(code, message = %body["message"], "cannot create the IngressClass {CLASS}");
            code == 422
        }
        None => false,
    }
}

/// Removes markers whose Service is gone or holds another value, read at one
/// revision and deleted under a precondition on the marker's own revision.
async fn repair(api: &ApiServer) -> Result<usize, String> {
    let store = api.store();
    let read = |prefix: &str, consistency| RangeRequest {
        prefix: prefix.to_string(),
        start_after: None,
        limit: 0,
        consistency,
    };
    let svcs = store
        .range(&read("/registry/services/", Consistency::Linearizable))
        .await
        .map_err(|e| e.message)?
        .map_err(|e| e.to_string())?;
    let at = Consistency::AtRevision(svcs.revision);
    // uid → what that Service holds.
    let mut holders: HashMap<String, alloc::Held> = HashMap::new();
    for kv in &svcs.kvs {
        let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if let Some(uid) = svc["metadata"]["uid"].as_str() {
            holders.insert(uid.to_string(), alloc::held(&svc));
        }
    }
    let mut removed = 0;
    for prefix in [IP_PREFIX, PORT_PREFIX] {
        let markers = store
            .range(&read(prefix, at))
            .await
            .map_err(|e| e.message)?
            .map_err(|e| e.to_string())?;
        for kv in markers.kvs {
            let owner: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let value = &kv.key[prefix.len()..];
            let holds = owner["uid"]
                .as_str()
                .and_then(|uid| holders.get(uid))
                .is_some_and(|h| match prefix {
                    IP_PREFIX => value.parse().is_ok_and(|ip| h.ips.contains(&ip)),
                    _ => value.parse().is_ok_and(|p| h.ports.contains(&p)),
                });
            if holds {
                continue;
            }
            let del = WriteOp::Delete {
                key: kv.key.clone(),
                expect: Expect::ModRevision(kv.mod_revision),
            };
            if let Ok(Ok(_)) = api.commit(del).await {
                tracing::info!(marker = %kv.key, "freed an allocation its Service no longer holds");
                removed += 1;
            }
        }
    }
    Ok(removed)
}
