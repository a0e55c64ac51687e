//! Services, Endpoints and EndpointSlices.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferry_api::resources::{check_dns_label, check_dns_subdomain};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use super::pod::{port_name_errors, PROTOCOLS};
use crate::apiserver::admission::field::{at, json, q, Errors};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const IP_SYNTAX: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

fn port_ok(p: i32) -> bool {
    (1..=65535).contains(&p)
}

/// Service spec.
/// A Service or Endpoints port at `pp`: its name (required and unique when there
/// are several, a DNS label) and its number.
fn port_name_and_number<'a>(
    pp: &str,
    name: Option<&'a str>,
    count: usize,
    port: i32,
    names: &mut BTreeSet<&'a str>,
    errs: &mut Errors,
) {
    match name.filter(|n| !n.is_empty()) {
        None if count > 1 => errs.required(&at(pp, "name"), ""),
        None => {}
        Some(n) => {
            errs.name(check_dns_label(&at(pp, "name"), n));
            if !names.insert(n) {
                errs.duplicate(&at(pp, "name"), q(n));
            }
        }
    }
    if !port_ok(port) {
        errs.invalid(&at(pp, "port"), port, PORT_RANGE);
    }
}

pub(crate) fn service(svc: &Service, errs: &mut Errors) {
    let Some(s) = &svc.spec else {
        return errs.required("spec", "");
    };
    let ty = s.type_.as_deref().unwrap_or_default();
    errs.one_of("spec.type", Some(ty), TYPES);
    let headless = s.cluster_ip.as_deref() == Some("None");
    let ports = s.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.required("spec.ports", "");
    }
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        port_name_and_number(
            &pp,
            p.name.as_deref(),
            ports.len(),
            p.port,
            &mut names,
            errs,
        );
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        errs.one_of(&at(&pp, "protocol"), Some(proto), PROTOCOLS);
        if !seen.insert((p.port, proto)) {
            errs.duplicate(
                &pp,
                json(&serde_json::json!({"port": p.port, "protocol": proto})),
            );
        }
        match &p.target_port {
            Some(IntOrString::Int(t)) if !port_ok(*t) => {
                errs.invalid(&at(&pp, "targetPort"), t, PORT_RANGE)
            }
            Some(IntOrString::String(n)) => {
                for why in port_name_errors(n) {
                    errs.invalid(&at(&pp, "targetPort"), q(n), why);
                }
            }
            _ => {}
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.forbidden(
                    &at(&pp, "nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                );
            } else if !port_ok(np) {
                errs.invalid(&at(&pp, "nodePort"), np, PORT_RANGE);
            }
        }
    }
    if ty == "ExternalName" {
        match s.external_name.as_deref().filter(|n| !n.is_empty()) {
            None => errs.required("spec.externalName", ""),
            Some(n) => errs.name(check_dns_subdomain(
                "spec.externalName",
                n.trim_end_matches('.'),
            )),
        }
    }
    cluster_ips(s.cluster_ip.as_deref(), s.cluster_ips.as_deref(), errs);
    meta::labels("spec.selector", s.selector.as_ref(), errs);
    errs.one_of(
        "spec.sessionAffinity",
        s.session_affinity.as_deref(),
        &["ClientIP", "None"],
    );
    errs.one_of(
        "spec.internalTrafficPolicy",
        s.internal_traffic_policy.as_deref(),
        &["Cluster", "Local"],
    );
    if let Some(p) = s.external_traffic_policy.as_deref() {
        if ty != "NodePort" && ty != "LoadBalancer" {
            errs.invalid(
                "spec.externalTrafficPolicy",
                q(p),
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            );
        } else {
            errs.one_of("spec.externalTrafficPolicy", Some(p), &["Cluster", "Local"]);
        }
    }
    for (i, ip) in s.external_ips.iter().flatten().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            errs.invalid(&format!("spec.externalIPs[{i}]"), q(ip), IP_SYNTAX);
        }
    }
}

fn cluster_ips(ip: Option<&str>, ips: Option<&[String]>, errs: &mut Errors) {
    let ok = |v: &str| v == "None" || v.parse::<IpAddr>().is_ok();
    if let Some(ip) = ip.filter(|ip| !ip.is_empty() && !ok(ip)) {
        errs.invalid("spec.clusterIP", q(ip), IP_SYNTAX);
    }
    for (i, v) in ips.unwrap_or_default().iter().enumerate() {
        if !ok(v) {
            errs.invalid(&format!("spec.clusterIPs[{i}]"), q(v), IP_SYNTAX);
        }
    }
    if let (Some(ip), Some(first)) = (ip.filter(|i| !i.is_empty()), ips.and_then(|v| v.first())) {
        if ip != first {
            errs.invalid(
                "spec.clusterIPs",
                json(&ips),
                "first value must match `spec.clusterIP`",
            );
        }
    }
}

/// Service update: clusterIP and clusterIPs are immutable once set, except when the
/// type changes to or from ExternalName. An update that leaves them out keeps the old ones.
pub(crate) fn service_update(new: &mut Service, old: &Service, errs: &mut Errors) {
    let (Some(n), Some(o)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    // NodePorts, as Kubernetes' registry keeps them: an update that leaves a
    // port's nodePort out keeps the old one; one that changes the type away
    // from NodePort/LoadBalancer without touching them drops them.
    let node_ports = |t: &Option<String>| matches!(t.as_deref(), Some("NodePort" | "LoadBalancer"));
    let old_port = |p: &k8s_openapi::api::core::v1::ServicePort| {
        o.ports
            .iter()
            .flatten()
            .find(|q| {
                q.port == p.port
                    && q.protocol.as_deref().unwrap_or("TCP")
                        == p.protocol.as_deref().unwrap_or("TCP")
            })
            .and_then(|q| q.node_port)
    };
    let (was, is) = (node_ports(&o.type_), node_ports(&n.type_));
    if was && !is && n.external_traffic_policy == o.external_traffic_policy {
        n.external_traffic_policy = None;
    }
    let lb = |t: &Option<String>| t.as_deref() == Some("LoadBalancer");
    if lb(&o.type_) && !lb(&n.type_) {
        if n.allocate_load_balancer_node_ports == o.allocate_load_balancer_node_ports {
            n.allocate_load_balancer_node_ports = None;
        }
        if n.health_check_node_port == o.health_check_node_port {
            n.health_check_node_port = None;
        }
    }
    for p in n.ports.iter_mut().flatten() {
        let before = old_port(p);
        if was && is && p.node_port.is_none_or(|v| v == 0) {
            p.node_port = before;
        } else if was && !is && p.node_port.is_some() && p.node_port == before {
            p.node_port = None;
        }
    }
    let external = |t: &Option<String>| t.as_deref() == Some("ExternalName");
    if external(&n.type_) || external(&o.type_) {
        return;
    }
    if n.cluster_ip.as_deref().is_none_or(str::is_empty) && n.cluster_ips.is_none() {
        n.cluster_ip = o.cluster_ip.clone();
        n.cluster_ips = o.cluster_ips.clone();
    }
    if o.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
        errs.immutable("spec.clusterIP", &n.cluster_ip, &o.cluster_ip);
    }
    if o.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) && n.cluster_ips.is_some() {
        errs.immutable("spec.clusterIPs", &n.cluster_ips, &o.cluster_ips);
    }
}

/// Endpoints: addresses are IPs, ports are valid and named when there are several.
pub(crate) fn endpoints(e: &Endpoints, errs: &mut Errors) {
    for (i, s) in e.subsets.iter().flatten().enumerate() {
        let sp = format!("subsets[{i}]");
        for (field, list) in [
            ("addresses", &s.addresses),
            ("notReadyAddresses", &s.not_ready_addresses),
        ] {
            for (j, a) in list.iter().flatten().enumerate() {
                let ap = format!("{sp}.{field}[{j}]");
                if a.ip.is_empty() {
                    errs.required(&at(&ap, "ip"), "");
                } else if a.ip.parse::<IpAddr>().is_err() {
                    errs.invalid(&at(&ap, "ip"), q(&a.ip), IP_SYNTAX);
                }
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    errs.name(check_dns_label(&at(&ap, "hostname"), h));
                }
            }
        }
        let ports = s.ports.as_deref().unwrap_or_default();
        let mut names = BTreeSet::new();
        for (j, p) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{j}]");
            port_name_and_number(
                &pp,
                p.name.as_deref(),
                ports.len(),
                p.port,
                &mut names,
                errs,
            );
            errs.one_of(&at(&pp, "protocol"), p.protocol.as_deref(), PROTOCOLS);
        }
    }
}

/// Most endpoints one EndpointSlice holds.
const MAX_ENDPOINTS: usize = 1000;
/// Most addresses one endpoint holds.
const MAX_ADDRESSES: usize = 100;
/// Most ports one EndpointSlice holds (Kubernetes' validation limit).
const MAX_PORTS: usize = 20000;

/// Why `ip` may not be an endpoint (`ValidateNonSpecialIP`); empty when it may.
fn special_ip_errors(ip: IpAddr) -> Vec<String> {
    let mut out = Vec::new();
    if ip.is_unspecified() {
        out.push(format!("may not be unspecified ({ip})"));
    }
    if ip.is_loopback() {
        out.push("may not be in the loopback range (127.0.0.0/8, ::1/128)".into());
    }
    let (link_local, ll_multicast) = match ip {
        IpAddr::V4(v) => (v.is_link_local(), v.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v) => (
            v.segments()[0] & 0xffc0 == 0xfe80,
            v.segments()[0] & 0xff0f == 0xff02,
        ),
    };
    if link_local {
        out.push("may not be in the link-local range (169.254.0.0/16, fe80::/10)".into());
    }
    if ll_multicast {
        out.push("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into());
    }
    out
}

/// One endpoint address, checked against the slice's `addressType`
/// (`loopback_ok`: a loopback address may be one, see [`endpoint_slice`]).
fn slice_address(field: &str, address_type: &str, a: &str, loopback_ok: bool, errs: &mut Errors) {
    let ip = match address_type {
        "IPv4" => a.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        "IPv6" => a.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        "FQDN" => {
            if a.split('.').filter(|s| !s.is_empty()).count() < 2 {
                errs.invalid(
                    field,
                    q(a),
                    "should be a domain with at least two segments separated by dots",
                );
            } else {
                errs.name(check_dns_subdomain(field, a));
            }
            return;
        }
        // An unsupported type is reported once, on addressType.
        _ => return,
    };
    match ip {
        None => {
            let want = format!("must be a valid {address_type} address");
            errs.invalid(field, q(a), &want);
        }
        Some(ip) if loopback_ok && ip.is_loopback() => {}
        Some(ip) => {
            for why in special_ip_errors(ip) {
                errs.invalid(field, q(a), &why);
            }
        }
    }
}

/// EndpointSlice: a supported addressType, at most 1000 endpoints each with
/// 1 to 100 addresses of that type, valid node and host names; ports with a
/// unique DNS-label name, a protocol and a valid number. Addresses may not be
/// special (`ValidateNonSpecialIP`), except that the slices of ferry's own
/// controller may hold loopback ones: nodes of a local cluster have
/// addresses in 127.0.0.0/8, and so do the pods of a node in host mode.
pub(crate) fn endpoint_slice(
    e: &k8s_openapi::api::discovery::v1::EndpointSlice,
    errs: &mut Errors,
) {
    let ty = e.address_type.as_str();
    let ours = e
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
        .is_some_and(|m| m == "endpointslice-controller.k8s.io");
    if ty.is_empty() {
        errs.required("addressType", "");
    } else {
        errs.one_of("addressType", Some(ty), &["FQDN", "IPv4", "IPv6"]);
    }
    if e.endpoints.len() > MAX_ENDPOINTS {
        errs.too_many("endpoints", e.endpoints.len(), MAX_ENDPOINTS);
    } else {
        for (i, ep) in e.endpoints.iter().enumerate() {
            let ep_path = format!("endpoints[{i}]");
            let ap = at(&ep_path, "addresses");
            if ep.addresses.is_empty() {
                errs.required(&ap, "must contain at least 1 address");
            } else if ep.addresses.len() > MAX_ADDRESSES {
                errs.too_many(&ap, ep.addresses.len(), MAX_ADDRESSES);
            }
            for (j, a) in ep.addresses.iter().enumerate() {
                slice_address(&format!("{ap}[{j}]"), ty, a, ours, errs);
            }
            if let Some(n) = &ep.node_name {
                errs.name(check_dns_subdomain(&at(&ep_path, "nodeName"), n));
            }
            if let Some(h) = &ep.hostname {
                errs.name(check_dns_label(&at(&ep_path, "hostname"), h));
            }
        }
    }
    let ports = e.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        return errs.too_many("ports", ports.len(), MAX_PORTS);
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("ports[{i}]");
        let name = p.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.name(check_dns_label(&at(&pp, "name"), name));
        }
        if !names.insert(name) {
            errs.duplicate(&at(&pp, "name"), q(name));
        }
        match p.protocol.as_deref() {
            None => errs.required(&at(&pp, "protocol"), ""),
            proto => errs.one_of(&at(&pp, "protocol"), proto, PROTOCOLS),
        }
        if let Some(n) = p.port.filter(|n| !port_ok(*n)) {
            errs.invalid(&at(&pp, "port"), n, PORT_RANGE);
        }
        if let Some(ap) = &p.app_protocol {
            meta::qualified_name(&at(&pp, "appProtocol"), ap, errs);
        }
    }
}

/// EndpointSlice update: addressType is immutable.
pub(crate) fn endpoint_slice_update(
    new: &k8s_openapi::api::discovery::v1::EndpointSlice,
    old: &k8s_openapi::api::discovery::v1::EndpointSlice,
    errs: &mut Errors,
) {
    errs.immutable("addressType", &new.address_type, &old.address_type);
}
