//! Deployments, services, config maps and secrets in `describe`.

use super::pod::pod_template;
use super::{conditions_table, meta, Doc};
use ferry_api::printers::age::describe_time;
use ferry_api::printers::columns::{endpoints_of_port, or_none};
use ferry_api::printers::{int, labels_string, list, selector_string, text};
use serde_json::Value;

pub(super) fn deployment(d: &mut Doc, o: &Value) {
    d.kv(
        0,
        "CreationTimestamp",
        describe_time(text(o, "/metadata/creationTimestamp")),
    );
    meta(d, o);
    d.kv(0, "Selector", selector_string(o.pointer("/spec/selector")));
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    d.kv(
        0,
        "Replicas",
        format!(
            "{desired} desired | {} updated | {} total | {} available | {} unavailable",
            int(o, "/status/updatedReplicas"),
            int(o, "/status/replicas"),
            int(o, "/status/availableReplicas"),
            int(o, "/status/unavailableReplicas"),
        ),
    );
    let strategy = Some(text(o, "/spec/strategy/type"))
        .filter(|s| !s.is_empty())
        .unwrap_or("RollingUpdate");
    d.kv(0, "StrategyType", strategy);
    d.kv(0, "MinReadySeconds", int(o, "/spec/minReadySeconds"));
    if strategy == "RollingUpdate" {
        let ru = |f: &str| match o.pointer(&format!("/spec/strategy/rollingUpdate/{f}")) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "25%".to_string(),
        };
        d.kv(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                ru("maxUnavailable"),
                ru("maxSurge")
            ),
        );
    }
    pod_template(d, o.pointer("/spec/template").unwrap_or(&Value::Null));
    conditions_table(d, o);
}

pub(super) fn service(d: &mut Doc, o: &Value, endpoints: Option<&Value>) {
    meta(d, o);
    d.kv(0, "Selector", labels_string(o.pointer("/spec/selector")));
    let kind = Some(text(o, "/spec/type"))
        .filter(|s| !s.is_empty())
        .unwrap_or("ClusterIP");
    d.kv(0, "Type", kind);
    if !text(o, "/spec/ipFamilyPolicy").is_empty() {
        d.kv(0, "IP Family Policy", text(o, "/spec/ipFamilyPolicy"));
    }
    let families: Vec<&str> = list(o, "/spec/ipFamilies")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !families.is_empty() {
        d.kv(0, "IP Families", families.join(","));
    }
    let ips: Vec<&str> = list(o, "/spec/clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ip = ips
        .first()
        .copied()
        .unwrap_or_else(|| text(o, "/spec/clusterIP"));
    d.kv(0, "IP", or_none(ip));
    if !ips.is_empty() {
        d.kv(0, "IPs", ips.join(","));
    }
    if kind == "ExternalName" {
        d.kv(0, "External Name", text(o, "/spec/externalName"));
    }
    service_ports(d, o, endpoints);
    let affinity = Some(text(o, "/spec/sessionAffinity")).filter(|s| !s.is_empty());
    d.kv(0, "Session Affinity", affinity.unwrap_or("None"));
    if !text(o, "/spec/internalTrafficPolicy").is_empty() {
        d.kv(
            0,
            "Internal Traffic Policy",
            text(o, "/spec/internalTrafficPolicy"),
        );
    }
}

pub(super) fn config_map(d: &mut Doc, o: &Value) {
    meta(d, o);
    d.line(0, "");
    d.line(0, "Data");
    d.line(0, "====");
    for (k, v) in o
        .pointer("/data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        d.line(0, format!("{k}:"));
        d.line(0, "----");
        d.line(0, v.as_str().unwrap_or_default());
        d.line(0, "");
    }
    d.line(0, "");
    d.line(0, "BinaryData");
    d.line(0, "====");
    for (k, v) in o
        .pointer("/binaryData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        d.line(
            0,
            format!("{k}: {} bytes", decoded_len(v.as_str().unwrap_or_default())),
        );
    }
    d.line(0, "");
}

pub(super) fn secret(d: &mut Doc, o: &Value) {
    meta(d, o);
    d.line(0, "");
    d.kv(0, "Type", text(o, "/type"));
    d.line(0, "");
    d.line(0, "Data");
    d.line(0, "====");
    for (k, v) in o
        .pointer("/data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        d.kv(
            0,
            k,
            format!("{} bytes", decoded_len(v.as_str().unwrap_or_default())),
        );
    }
}

/// Bytes a base64 string decodes to (secret values are never printed).
fn decoded_len(b64: &str) -> usize {
    let s = b64.trim_end_matches('=');
    s.len() * 3 / 4
}

/// Each port's `Port`, `TargetPort`, `NodePort` and, with the Endpoints
/// object, `Endpoints` lines; `Port: <none>` for a service without ports.
fn service_ports(d: &mut Doc, o: &Value, endpoints: Option<&Value>) {
    let ports = list(o, "/spec/ports");
    for p in ports {
        let name = Some(text(p, "/name"))
            .filter(|s| !s.is_empty())
            .unwrap_or("<unset>");
        let proto = Some(text(p, "/protocol"))
            .filter(|s| !s.is_empty())
            .unwrap_or("TCP");
        d.kv(0, "Port", format!("{name}\t{}/{proto}", int(p, "/port")));
        let target = match p.get("targetPort") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => int(p, "/port").to_string(),
        };
        d.kv(0, "TargetPort", format!("{target}/{proto}"));
        if int(p, "/nodePort") != 0 {
            d.kv(
                0,
                "NodePort",
                format!("{name}\t{}/{proto}", int(p, "/nodePort")),
            );
        }
        if let Some(ep) = endpoints {
            d.kv(
                0,
                "Endpoints",
                endpoints_of_port(ep, Some(text(p, "/name"))),
            );
        }
    }
    if ports.is_empty() {
        d.kv(0, "Port", "<none>");
        if let Some(ep) = endpoints {
            d.kv(0, "Endpoints", endpoints_of_port(ep, None));
        }
    }
}
