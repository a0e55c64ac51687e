//! The `default/kubernetes` Service's endpoints: the masters' HTTPS
//! addresses, so a pod reaches the API server at the Service's ClusterIP
//! (`KUBERNETES_SERVICE_HOST`) or `kubernetes.default.svc`.
//!
//! Every master keeps a Lease `kube-system/apiserver-<id>` labelled
//! [`IDENTITY_LABEL`]` = kube-apiserver` (Kubernetes' apiserver identity
//! leases) with its HTTPS address in [`ADDRESS_ANNOTATION`], renewed every
//! few seconds; the leader lists the addresses of the leases it saw renewed
//! within their duration (Kubernetes' lease endpoint reconciler keeps
//! master IPs the same way). Masters on one machine differ by port, so
//! addresses group by port: one slice, and one Endpoints subset, per port.

use super::legacy;
use super::slices::{self, SliceChanges};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Namespace and name of the Service the masters back.
pub const SERVICE_KEY: &str = "default/kubernetes";
/// Namespace of the masters' leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The label marking a master's lease, as Kubernetes' apiserver identity leases.
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// [`IDENTITY_LABEL`]'s value.
pub const IDENTITY: &str = "kube-apiserver";
/// The annotation holding a master's HTTPS address (`IP:PORT`).
pub const ADDRESS_ANNOTATION: &str = "ferry.dev/https-address";
/// How long a master's lease lasts unless renewed (it is renewed every
/// [`LEASE_RENEW_SECONDS`]).
pub const LEASE_SECONDS: i32 = 15;
/// How often a master renews its lease.
pub const LEASE_RENEW_SECONDS: u64 = 5;
/// The Service port's name (and its endpoints' port name).
pub const PORT_NAME: &str = "https";

/// The lease name of master `id`.
pub fn lease_name(id: u64) -> String {
    format!("apiserver-{id}")
}

/// A master's HTTPS address, when `l` is a master's lease that names one.
pub fn lease_address(l: &Lease) -> Option<SocketAddr> {
    let m = &l.metadata;
    if m.namespace.as_deref() != Some(LEASE_NAMESPACE)
        || m.labels.as_ref()?.get(IDENTITY_LABEL).map(String::as_str) != Some(IDENTITY)
    {
        return None;
    }
    m.annotations
        .as_ref()?
        .get(ADDRESS_ANNOTATION)?
        .parse()
        .ok()
}

/// IPv4 addresses by port, each list sorted (the proxy and the Endpoints
/// object are IPv4 only, as the rest of the Service network).
fn by_port(addrs: &[SocketAddr]) -> BTreeMap<u16, Vec<String>> {
    let mut out: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for a in addrs.iter().filter(|a| a.is_ipv4()) {
        out.entry(a.port()).or_default().push(a.ip().to_string());
    }
    for ips in out.values_mut() {
        ips.sort();
        ips.dedup();
    }
    out
}

/// The writes that make `existing` (the slices managed for the Service)
/// hold `addrs`, the live masters' HTTPS addresses.
pub fn reconcile_slices(
    svc: &Service,
    addrs: &[SocketAddr],
    existing: &[Arc<EndpointSlice>],
) -> SliceChanges {
    let groups = by_port(addrs)
        .into_iter()
        .map(|(port, ips)| {
            let ports = vec![EndpointPort {
                name: Some(PORT_NAME.into()),
                port: Some(port.into()),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }];
            let eps = ips
                .into_iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Endpoint::default()
                })
                .collect();
            (ports, eps)
        })
        .collect();
    slices::reconcile_groups(svc, groups, existing)
}

/// The Endpoints object the Service should have for `addrs`, or None when
/// `current` already is it.
pub fn reconcile_endpoints(
    svc: &Service,
    addrs: &[SocketAddr],
    current: Option<&Endpoints>,
) -> Option<Endpoints> {
    let subsets = by_port(addrs)
        .into_iter()
        .map(|(port, ips)| EndpointSubset {
            addresses: Some(
                ips.into_iter()
                    .map(|ip| EndpointAddress {
                        ip,
                        ..EndpointAddress::default()
                    })
                    .collect(),
            ),
            not_ready_addresses: None,
            ports: Some(vec![k8s_openapi::api::core::v1::EndpointPort {
                name: Some(PORT_NAME.into()),
                port: port.into(),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]),
        })
        .collect();
    legacy::reconcile_subsets(svc, subsets, current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kubernetes() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": "u-k",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.43.0.1",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
        }))
        .unwrap()
    }

    fn addrs(a: &[&str]) -> Vec<SocketAddr> {
        a.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn lease(ns: &str, label: Option<&str>, addr: Option<&str>) -> Lease {
        let mut l = json!({"metadata": {"name": "apiserver-1", "namespace": ns}});
        if let Some(v) = label {
            l["metadata"]["labels"] = json!({IDENTITY_LABEL: v});
        }
        if let Some(a) = addr {
            l["metadata"]["annotations"] = json!({ADDRESS_ANNOTATION: a});
        }
        serde_json::from_value(l).unwrap()
    }

    #[test]
    fn only_a_masters_lease_in_kube_system_names_an_address() {
        let good = lease(
            "kube-system",
            Some("kube-apiserver"),
            Some("127.0.0.1:6444"),
        );
        assert_eq!(
            lease_address(&good),
            Some("127.0.0.1:6444".parse().unwrap())
        );
        for l in [
            lease(
                "kube-node-lease",
                Some("kube-apiserver"),
                Some("127.0.0.1:6444"),
            ),
            lease("kube-system", Some("other"), Some("127.0.0.1:6444")),
            lease("kube-system", None, Some("127.0.0.1:6444")),
            lease("kube-system", Some("kube-apiserver"), None),
            lease(
                "kube-system",
                Some("kube-apiserver"),
                Some("not an address"),
            ),
        ] {
            assert_eq!(lease_address(&l), None, "{l:?}");
        }
    }

    #[test]
    fn masters_on_one_port_share_a_slice_and_on_many_ports_get_one_each() {
        let svc = kubernetes();
        let one = reconcile_slices(&svc, &addrs(&["10.0.0.2:6443", "10.0.0.1:6443"]), &[]);
        assert_eq!(one.create.len(), 1);
        let s = &one.create[0];
        let ips: Vec<_> = s
            .endpoints
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        let p = &s.ports.as_ref().unwrap()[0];
        assert_eq!((p.name.as_deref(), p.port), (Some("https"), Some(6443)));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
            "kubernetes"
        );
        let local = addrs(&["127.0.0.1:6444", "127.0.0.1:6445", "127.0.0.1:6446"]);
        let three = reconcile_slices(&svc, &local, &[]);
        let mut ports: Vec<_> = three
            .create
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
            .collect();
        ports.sort();
        assert_eq!(ports, [6444, 6445, 6446]);
    }

    #[test]
    fn a_master_gone_leaves_its_slice_and_subset_and_nothing_changes_when_all_is_current() {
        let svc = kubernetes();
        let local = addrs(&["127.0.0.1:6444", "127.0.0.1:6445"]);
        let stored: Vec<Arc<EndpointSlice>> = reconcile_slices(&svc, &local, &[])
            .create
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.metadata.name = Some(format!("kubernetes-{i}"));
                s.metadata.uid = Some(format!("s{i}"));
                Arc::new(s)
            })
            .collect();
        assert!(reconcile_slices(&svc, &local, &stored).is_empty());
        let c = reconcile_slices(&svc, &local[..1], &stored);
        assert_eq!(c.delete, [("kubernetes-1".to_string(), "s1".to_string())]);
        assert!(c.create.is_empty() && c.update.is_empty());

        let e = reconcile_endpoints(&svc, &local, None).unwrap();
        let subsets = e.subsets.clone().unwrap();
        assert_eq!(subsets.len(), 2);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 6444);
        assert!(reconcile_endpoints(&svc, &local, Some(&e)).is_none());
        let fewer = reconcile_endpoints(&svc, &local[1..], Some(&e)).unwrap();
        assert_eq!(fewer.subsets.unwrap().len(), 1);
    }
}
