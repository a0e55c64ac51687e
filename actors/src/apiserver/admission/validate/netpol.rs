//! NetworkPolicies (networking.k8s.io/v1).

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use super::pod::port_name_errors;
use crate::apiserver::admission::field::{at, q, Errors};

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const CIDR_SYNTAX: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// `addr/prefix` as Kubernetes' sloppy parser reads it (host bits allowed):
/// the network's address bits as a u128, the prefix and the family's width.
fn cidr(s: &str) -> Option<(u128, u8, u8)> {
    let (a, p) = s.split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))?;
    let (bits, n) = match addr {
        IpAddr::V4(v) => (32, u128::from(u32::from(v))),
        IpAddr::V6(v) => (128, u128::from(v)),
    };
    if prefix > bits {
        return None;
    }
    let host = u32::from(bits - prefix);
    let mask = if host >= 128 {
        0
    } else {
        !((1u128 << host) - 1)
    };
    Some((n & mask, prefix, bits))
}

fn ip_block(path: &str, b: &IPBlock, errs: &mut Errors) {
    let cp = at(path, "cidr");
    if b.cidr.is_empty() {
        return errs.required(&cp, "");
    }
    let Some((net, prefix, bits)) = cidr(&b.cidr) else {
        return errs.invalid(&cp, q(&b.cidr), CIDR_SYNTAX);
    };
    for (i, e) in b.except.iter().flatten().enumerate() {
        let ep = format!("{path}.except[{i}]");
        let Some((enet, eprefix, ebits)) = cidr(e) else {
            errs.invalid(&ep, q(e), CIDR_SYNTAX);
            continue;
        };
        let host = u32::from(bits - prefix);
        let mask = if host >= 128 {
            0
        } else {
            !((1u128 << host) - 1)
        };
        if ebits != bits || enet & mask != net || eprefix <= prefix {
            errs.invalid(&ep, q(e), "must be a strict subset of `cidr`");
        }
    }
}

fn peer(path: &str, p: &NetworkPolicyPeer, errs: &mut Errors) {
    let mut n = 0;
    if let Some(s) = &p.pod_selector {
        n += 1;
        meta::selector(&at(path, "podSelector"), s, errs);
    }
    if let Some(s) = &p.namespace_selector {
        n += 1;
        meta::selector(&at(path, "namespaceSelector"), s, errs);
    }
    if let Some(b) = &p.ip_block {
        n += 1;
        ip_block(&at(path, "ipBlock"), b, errs);
    }
    if n == 0 {
        errs.required(path, "must specify a peer");
    } else if n > 1 && p.ip_block.is_some() {
        errs.forbidden(path, "may not specify both ipBlock and another peer");
    }
}

fn port(path: &str, p: &NetworkPolicyPort, errs: &mut Errors) {
    if let Some(proto) = &p.protocol {
        errs.one_of(&at(path, "protocol"), Some(proto), &["TCP", "UDP", "SCTP"]);
    }
    let ep = at(path, "endPort");
    match &p.port {
        Some(IntOrString::Int(n)) => {
            if !(1..=65535).contains(n) {
                errs.invalid(&at(path, "port"), n, PORT_RANGE);
            }
            if let Some(end) = p.end_port {
                if end < *n {
                    errs.invalid(&ep, n, "must be greater than or equal to `port`");
                }
                if !(1..=65535).contains(&end) {
                    errs.invalid(&ep, end, PORT_RANGE);
                }
            }
        }
        Some(IntOrString::String(s)) => {
            if let Some(end) = p.end_port {
                errs.invalid(&ep, end, "may not be specified when `port` is non-numeric");
            }
            for why in port_name_errors(s) {
                errs.invalid(&at(path, "port"), q(s), why);
            }
        }
        None => {
            if let Some(end) = p.end_port {
                errs.invalid(
                    &ep,
                    end,
                    "may not be specified when `port` is not specified",
                );
            }
        }
    }
}

/// NetworkPolicy: a valid podSelector; each rule's ports (protocol, port
/// number or name, endPort not below port) and peers (exactly one kind when
/// ipBlock, valid selectors, an ipBlock CIDR with `except` strictly inside
/// it); policyTypes Ingress and Egress only.
pub(crate) fn network_policy(np: &NetworkPolicy, errs: &mut Errors) {
    let Some(s) = &np.spec else {
        return errs.required("spec", "");
    };
    if let Some(sel) = &s.pod_selector {
        meta::selector("spec.podSelector", sel, errs);
    }
    for (i, r) in s.ingress.iter().flatten().enumerate() {
        let rp = format!("spec.ingress[{i}]");
        for (j, p) in r.ports.iter().flatten().enumerate() {
            port(&format!("{rp}.ports[{j}]"), p, errs);
        }
        for (j, p) in r.from.iter().flatten().enumerate() {
            peer(&format!("{rp}.from[{j}]"), p, errs);
        }
    }
    for (i, r) in s.egress.iter().flatten().enumerate() {
        let rp = format!("spec.egress[{i}]");
        for (j, p) in r.ports.iter().flatten().enumerate() {
            port(&format!("{rp}.ports[{j}]"), p, errs);
        }
        for (j, p) in r.to.iter().flatten().enumerate() {
            peer(&format!("{rp}.to[{j}]"), p, errs);
        }
    }
    let types = s.policy_types.as_deref().unwrap_or_default();
    if types.len() > 2 {
        return errs.invalid(
            "spec.policyTypes",
            q(&types.join(",")),
            "may not specify more than two policyTypes",
        );
    }
    for (i, t) in types.iter().enumerate() {
        errs.one_of(
            &format!("spec.policyTypes[{i}]"),
            Some(t),
            &["Ingress", "Egress"],
        );
    }
}

/// Ingress: each path's `pathType` and backend as Kubernetes checks them
/// (`ValidateIngressSpec`), and a rule, TLS or default backend at all.
pub(crate) fn ingress(ing: &k8s_openapi::api::networking::v1::Ingress, errs: &mut Errors) {
    let Some(s) = &ing.spec else {
        return errs.required("spec", "");
    };
    let rules = s.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && s.default_backend.is_none() {
        errs.invalid(
            "spec.rules",
            "[]",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(b) = &s.default_backend {
        ingress_backend("spec.defaultBackend", b, errs);
    }
    for (i, r) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = r.host.as_deref().filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.invalid(
                    &format!("{rp}.host"),
                    q(host),
                    "must be a DNS name, not an IP address",
                );
            } else if ferry_api::resources::check_dns_subdomain("host", bare).is_err() {
                errs.invalid(
                    &format!("{rp}.host"),
                    q(host),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                );
            }
        }
        let Some(http) = &r.http else { continue };
        if http.paths.is_empty() {
            errs.required(&format!("{rp}.http.paths"), "");
        }
        for (j, p) in http.paths.iter().enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            let types = ["Exact", "ImplementationSpecific", "Prefix"];
            match p.path_type.as_str() {
                "" => errs.required(&format!("{pp}.pathType"), "pathType must be specified"),
                t if !types.contains(&t) => {
                    errs.not_supported(&format!("{pp}.pathType"), t, &types)
                }
                t => {
                    let path = p.path.as_deref().unwrap_or_default();
                    if t != "ImplementationSpecific" && !path.starts_with('/') {
                        errs.invalid(&format!("{pp}.path"), q(path), "must be an absolute path");
                    }
                }
            }
            ingress_backend(&format!("{pp}.backend"), &p.backend, errs);
        }
    }
}

fn ingress_backend(
    path: &str,
    b: &k8s_openapi::api::networking::v1::IngressBackend,
    errs: &mut Errors,
) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => {
            errs.invalid(path, "", "cannot set both resource and service backends")
        }
        (None, None) => errs.invalid(path, "", "resource or service backend is required"),
        (Some(svc), None) => {
            if svc.name.is_empty() {
                errs.required(&format!("{path}.service.name"), "");
            }
            match &svc.port {
                None => errs.required(&format!("{path}.service.port"), ""),
                Some(p) => match (&p.name, p.number) {
                    (Some(_), Some(_)) => errs.invalid(
                        &format!("{path}.service.port"),
                        "",
                        "cannot set both port name & port number",
                    ),
                    (None, None) => errs.invalid(
                        &format!("{path}.service.port"),
                        "",
                        "port name or number is required",
                    ),
                    (None, Some(n)) if !(1..=65535).contains(&n) => errs.invalid(
                        &format!("{path}.service.port.number"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ),
                    _ => {}
                },
            }
        }
        (None, Some(_)) => {}
    }
}

/// IngressClass: a controller name is required.
pub(crate) fn ingress_class(c: &k8s_openapi::api::networking::v1::IngressClass, errs: &mut Errors) {
    if c.spec
        .as_ref()
        .and_then(|s| s.controller.as_deref())
        .unwrap_or_default()
        .is_empty()
    {
        errs.required("spec.controller", "");
    }
}
