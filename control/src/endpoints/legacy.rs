//! The Endpoints controller's reconciler: the core/v1 `Endpoints` object
//! named like its Service, its subsets packed as Kubernetes'
//! `RepackSubsets` packs them (addresses that serve the same ports share a
//! subset; ready ones in `addresses`, the others in `notReadyAddresses`).

use super::*;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// An address with its readiness, ordered by IP then pod uid.
type Addr = (String, String, bool);
/// A port's identity: name, number, protocol.
type PortKey = (Option<String>, i32, Option<String>);

fn port_order(p: &EndpointPort) -> PortKey {
    (p.name.clone(), p.port, p.protocol.clone())
}

/// The subsets `pods` give `svc` (every pod of any namespace may be passed;
/// the Service's selector picks).
fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let tolerate = publish_not_ready(svc);
    let no_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_none_or(Vec::is_empty);
    // Each port (None: a headless Service without ports) → its addresses.
    let mut by_port: BTreeMap<Option<PortKey>, BTreeSet<Addr>> = BTreeMap::new();
    let mut addrs: BTreeMap<(String, String), EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<(Option<String>, i32, Option<String>), EndpointPort> = BTreeMap::new();
    for p in selected(svc, pods).filter(|p| in_endpoints(p, tolerate)) {
        let Some(ip) = pod_ipv4(p) else { continue };
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let ready = tolerate || meta::pod_ready(p);
        addrs.insert(
            (ip.clone(), uid.clone()),
            EndpointAddress {
                ip: ip.clone(),
                hostname: hostname(svc, p),
                node_name: node_name(p),
                target_ref: Some(target_ref(p)),
            },
        );
        let a = (ip, uid, ready);
        if no_ports {
            if headless(svc) {
                by_port.entry(None).or_default().insert(a);
            }
            continue;
        }
        for r in resolve_ports(svc, p) {
            let ep = EndpointPort {
                name: Some(r.name).filter(|n| !n.is_empty()),
                port: r.port,
                protocol: Some(r.protocol),
                app_protocol: r.app_protocol,
            };
            let k = port_order(&ep);
            ports.insert(k.clone(), ep);
            by_port.entry(Some(k)).or_default().insert(a.clone());
        }
    }
    // Addresses serving the same ports share a subset.
    let mut by_addrs: BTreeMap<BTreeSet<Addr>, Vec<EndpointPort>> = BTreeMap::new();
    for (port, set) in by_port {
        let entry = by_addrs.entry(set).or_default();
        if let Some(k) = port {
            entry.push(ports[&k].clone());
        }
    }
    by_addrs
        .into_iter()
        .map(|(set, ports)| {
            let pick = |ready: bool| {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|a| a.2 == ready)
                    .map(|(ip, uid, _)| addrs[&(ip.clone(), uid.clone())].clone())
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// The labels the Endpoints carries: the Service's, and skip-mirror.
fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = service_labels(svc);
    l.insert(SKIP_MIRROR_LABEL.into(), "true".into());
    l
}

/// The Endpoints object `svc` should have, or None when `current` already
/// is it. Built on `current` (its resourceVersion a precondition) when there
/// is one. The Service must be [`managed`].
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    current: Option<&Endpoints>,
) -> Option<Endpoints> {
    reconcile_subsets(svc, subsets(svc, pods), current)
}

/// [`reconcile`] for subsets already made (a Service whose endpoints are
/// not pods: the `kubernetes` Service's masters).
pub(crate) fn reconcile_subsets(
    svc: &Service,
    subsets: Vec<EndpointSubset>,
    current: Option<&Endpoints>,
) -> Option<Endpoints> {
    let subsets = Some(subsets).filter(|s| !s.is_empty());
    let labels = labels(svc);
    if let Some(c) = current {
        let same_subsets = c.subsets.as_ref().filter(|s| !s.is_empty()) == subsets.as_ref();
        if same_subsets && c.metadata.labels.as_ref() == Some(&labels) {
            return None;
        }
    }
    let mut e = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        ..Endpoints::default()
    });
    e.metadata.labels = Some(labels);
    e.subsets = subsets;
    Some(e)
}

/// Whether an Endpoints object is one these controllers made (so it may go
/// when its Service is gone).
pub fn controller_made(e: &Endpoints) -> bool {
    e.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    fn sub(v: serde_json::Value) -> EndpointSubset {
        serde_json::from_value(v).unwrap()
    }

    fn addr(ip: &str, pod: &str) -> serde_json::Value {
        json!({"ip": ip, "nodeName": "n1",
            "targetRef": {"kind": "Pod", "name": pod, "namespace": "d", "uid": format!("uid-{pod}")}})
    }

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset_per_port_set() {
        let pods = [
            arc(pod("b", "web", Some("10.42.1.6"), true)),
            arc(pod("a", "web", Some("10.42.1.5"), true)),
            arc(pod("c", "web", Some("10.42.1.7"), false)),
            arc(pod("x", "other", Some("10.42.1.9"), true)),
            arc(pod("n", "web", None, true)),
        ];
        let e = reconcile(&web(), &pods, None).unwrap();
        assert_eq!(e.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            e.metadata.labels.as_ref().unwrap(),
            &BTreeMap::from([
                (SKIP_MIRROR_LABEL.to_string(), "true".to_string()),
                ("team".into(), "a".into())
            ])
        );
        assert_eq!(
            e.subsets.unwrap(),
            [sub(json!({
                "addresses": [addr("10.42.1.5", "a"), addr("10.42.1.6", "b")],
                "notReadyAddresses": [addr("10.42.1.7", "c")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }))]
        );
    }

    #[test]
    fn pods_resolving_different_ports_get_different_subsets() {
        let svc = service(json!([
            {"name": "a", "port": 80, "targetPort": 9000, "protocol": "TCP"},
            {"name": "b", "port": 81, "targetPort": "http", "protocol": "TCP"},
        ]));
        let mut bare = pod("q", "web", Some("10.42.1.8"), true);
        bare["spec"]["containers"][0]["ports"] = json!([]);
        let pods = [arc(pod("p", "web", Some("10.42.1.5"), true)), arc(bare)];
        let e = reconcile(&svc, &pods, None).unwrap();
        let got = e.subsets.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.contains(&sub(json!({
            "addresses": [addr("10.42.1.5", "p")],
            "ports": [{"name": "b", "port": 8080, "protocol": "TCP"}]
        }))));
        assert!(got.contains(&sub(json!({
            "addresses": [addr("10.42.1.5", "p"), addr("10.42.1.8", "q")],
            "ports": [{"name": "a", "port": 9000, "protocol": "TCP"}]
        }))));
    }

    #[test]
    fn terminating_pods_leave_unless_published_and_empty_means_no_subsets() {
        let mut gone = pod("a", "web", Some("10.42.1.5"), true);
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [arc(gone)];
        let e = reconcile(&web(), &pods, None).unwrap();
        assert_eq!(e.subsets, None, "a Service with no endpoints");
        let mut publish = web();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let e = reconcile(&publish, &pods, None).unwrap();
        let s = &e.subsets.unwrap()[0];
        assert_eq!(s.addresses.as_ref().unwrap().len(), 1);
        assert!(s.not_ready_addresses.is_none());
    }

    #[test]
    fn an_unchanged_object_is_not_written_and_a_change_keeps_its_metadata() {
        let pods = [arc(pod("a", "web", Some("10.42.1.5"), true))];
        let mut stored = reconcile(&web(), &pods, None).unwrap();
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.uid = Some("ep-uid".into());
        assert_eq!(reconcile(&web(), &pods, Some(&stored)), None);
        let not_ready = [arc(pod("a", "web", Some("10.42.1.5"), false))];
        let next = reconcile(&web(), &not_ready, Some(&stored)).unwrap();
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
        let s = &next.subsets.unwrap()[0];
        assert!(s.addresses.is_none());
        assert_eq!(s.not_ready_addresses.as_ref().unwrap()[0].ip, "10.42.1.5");
        // A Service label change reaches the Endpoints.
        let mut relabelled = web();
        relabelled.metadata.labels = None;
        let next = reconcile(&relabelled, &pods, Some(&stored)).unwrap();
        assert!(!next.metadata.labels.unwrap().contains_key("team"));
        assert!(controller_made(&stored));
    }

    #[test]
    fn a_headless_service_without_ports_lists_bare_addresses() {
        let mut svc = service(json!([]));
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let pods = [arc(pod("a", "web", Some("10.42.1.5"), true))];
        let e = reconcile(&svc, &pods, None).unwrap();
        assert_eq!(
            e.subsets.unwrap(),
            [sub(json!({"addresses": [addr("10.42.1.5", "a")]}))]
        );
        assert_eq!(e.metadata.labels.unwrap()[HEADLESS_LABEL], "");
    }
}
