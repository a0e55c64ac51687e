//! The EndpointSlice and Endpoints controllers' pure core: which pods back a
//! Service, on which ports, in what condition — as Kubernetes'
//! `pkg/controller/endpointslice` and `pkg/controller/endpoint` decide it.
//!
//! Layout: this file (the facts both controllers share: selection, pod
//! addresses, port resolution, labels); [`slices`] (EndpointSlices);
//! [`legacy`] (the core/v1 Endpoints object); [`apiserver`] (the
//! `kubernetes` Service's: the masters' HTTPS addresses).

pub mod apiserver;
pub mod legacy;
pub mod slices;

use crate::meta;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// On an Endpoints object: do not mirror it into slices (the controllers made both).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// On slices and Endpoints of a Service without a ClusterIP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Most endpoints the controller puts in one slice (`--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Whether the controllers keep this Service's endpoints: it has a selector
/// and is not an ExternalName Service. Others' endpoints are user-managed.
pub fn managed(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() != Some("ExternalName")
        && spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

/// Whether a managed Service's selector picks a pod with `labels` (every
/// `key: value` present).
pub fn selects(svc: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of `pods` a managed Service selects (same namespace, selector).
fn selected<'a>(
    svc: &'a Service,
    pods: &'a [std::sync::Arc<Pod>],
) -> impl Iterator<Item = &'a Pod> {
    pods.iter().map(|p| &**p).filter(move |p| {
        p.metadata.namespace == svc.metadata.namespace && selects(svc, p.metadata.labels.as_ref())
    })
}

/// `ShouldPodBeInEndpoints`: not finished, with an address, and (unless
/// `include_terminating`) not terminating.
fn in_endpoints(p: &Pod, include_terminating: bool) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
        && pod_ipv4(p).is_some()
        && (include_terminating || p.metadata.deletion_timestamp.is_none())
}

/// The pod's IPv4 address (the cluster is IPv4 only).
fn pod_ipv4(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    let ips = st.pod_ips.iter().flatten().map(|i| i.ip.as_str());
    st.pod_ip
        .as_deref()
        .into_iter()
        .chain(ips)
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// A Service port as resolved on one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Resolved {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

/// `FindPort`: a numeric targetPort as is (unset: the port itself); a named
/// one from the pod's container ports of the same name and protocol, or None.
fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports as `pod` serves them, in the Service's order; a named
/// targetPort the pod lacks is left out.
fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<Resolved> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref());
    ports
        .unwrap_or_default()
        .iter()
        .filter_map(|sp| {
            Some(Resolved {
                name: sp.name.clone().unwrap_or_default(),
                port: find_port(pod, sp)?,
                protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The pod as an endpoint's `targetRef`.
fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: p.metadata.name.clone(),
        namespace: p.metadata.namespace.clone(),
        uid: p.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The pod's hostname when it names this Service as its subdomain.
fn hostname(svc: &Service, p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    let h = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && p.metadata.namespace == svc.metadata.namespace)
        .then(|| h.to_string())
}

/// The pod's node name, if bound.
fn node_name(p: &Pod) -> Option<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

fn headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's labels as its slices and Endpoints carry them: the
/// Service's own (less the controllers' reserved ones), and the headless
/// label for a Service without a ClusterIP.
fn service_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    l.remove(SERVICE_NAME_LABEL);
    l.remove(MANAGED_BY_LABEL);
    l.remove(HEADLESS_LABEL);
    if headless(svc) {
        l.insert(HEADLESS_LABEL.into(), String::new());
    }
    l
}

/// The pod's readiness as its endpoint conditions: (ready, serving, terminating).
fn conditions(svc: &Service, p: &Pod) -> (bool, bool, bool) {
    let serving = meta::pod_ready(p);
    let terminating = p.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready(svc) || (serving && !terminating);
    (ready, serving, terminating)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Services and pods for the controllers' tests.
    use k8s_openapi::api::core::v1::{Pod, Service};
    use serde_json::{json, Value};
    use std::sync::Arc;

    /// A Service `web` in `d` selecting `app: web`, with `ports`.
    pub fn service(ports: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": ports, "clusterIP": "10.43.0.7"}
        }))
        .unwrap()
    }

    /// The usual Service: `http` 80 → 8080.
    pub fn web() -> Service {
        service(json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]))
    }

    /// A pod of app `app` at `ip` (None: no address yet), Ready or not,
    /// declaring container port `http` 8080 when `named`.
    pub fn pod(name: &str, app: &str, ip: Option<&str>, ready: bool) -> Value {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"), "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        if let Some(ip) = ip {
            v["status"]["podIP"] = json!(ip);
        }
        v
    }

    pub fn arc(v: Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(v).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn only_services_with_a_selector_are_managed() {
        let mut svc = web();
        assert!(managed(&svc));
        svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(!managed(&svc), "ExternalName");
        let mut svc = web();
        svc.spec.as_mut().unwrap().selector = None;
        assert!(!managed(&svc), "no selector");
        svc.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(!managed(&svc), "an empty selector");
        assert!(!selects(&svc, None));
    }

    #[test]
    fn ports_resolve_by_number_or_by_the_pods_named_port() {
        let svc = service(json!([
            {"name": "a", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "b", "port": 81, "targetPort": "http", "protocol": "TCP"},
            {"name": "c", "port": 53, "targetPort": "http", "protocol": "UDP"},
            {"name": "d", "port": 82, "protocol": "TCP"},
        ]));
        let p = arc(pod("p", "web", Some("10.42.1.5"), true));
        let got: Vec<(String, i32)> = resolve_ports(&svc, &p)
            .into_iter()
            .map(|r| (r.name, r.port))
            .collect();
        // c names a UDP port the pod only has as TCP: left out.
        assert_eq!(
            got,
            [("a".into(), 8080), ("b".into(), 8080), ("d".into(), 82)]
        );
    }

    #[test]
    fn conditions_follow_readiness_termination_and_publish_not_ready() {
        let deleting = |mut v: serde_json::Value| {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            v
        };
        let mut publish = web();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let cases = [
            (
                web(),
                pod("p", "web", Some("10.0.0.1"), true),
                (true, true, false),
            ),
            (
                web(),
                pod("p", "web", Some("10.0.0.1"), false),
                (false, false, false),
            ),
            (
                web(),
                deleting(pod("p", "web", Some("10.0.0.1"), true)),
                (false, true, true),
            ),
            (
                publish.clone(),
                pod("p", "web", Some("10.0.0.1"), false),
                (true, false, false),
            ),
            (
                publish,
                deleting(pod("p", "web", Some("10.0.0.1"), false)),
                (true, false, true),
            ),
        ];
        for (svc, p, want) in cases {
            assert_eq!(conditions(&svc, &arc(p.clone())), want, "{p}");
        }
    }

    #[test]
    fn pods_without_an_address_or_finished_are_not_endpoints() {
        let mut done = pod("p", "web", Some("10.0.0.1"), false);
        done["status"]["phase"] = json!("Succeeded");
        let mut v6 = pod("p", "web", Some("fd00::1"), true);
        v6["status"]["podIPs"] = json!([{"ip": "fd00::1"}, {"ip": "10.0.0.9"}]);
        let cases = [
            (pod("p", "web", Some("10.0.0.1"), false), true),
            (pod("p", "web", None, true), false),
            (done, false),
        ];
        for (p, want) in cases {
            assert_eq!(in_endpoints(&arc(p.clone()), true), want, "{p}");
        }
        assert_eq!(pod_ipv4(&arc(v6)).as_deref(), Some("10.0.0.9"));
    }
}
