//! Service, Endpoints and EndpointSlice cells.

use super::or_none;
use crate::printers::{int, list, text};
use serde_json::Value;

/// A Service's CLUSTER-IP: the first of `clusterIPs`.
pub(super) fn service_cluster_ip(o: &Value) -> String {
    let first = list(o, "/spec/clusterIPs").first().and_then(Value::as_str);
    or_none(first.unwrap_or_else(|| text(o, "/spec/clusterIP")))
}

/// A Service's EXTERNAL-IP by type, as kubectl's `getServiceExternalIP`.
pub(super) fn service_external_ip(o: &Value, wide: bool) -> String {
    let external: Vec<&str> = list(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match text(o, "/spec/type") {
        "ClusterIP" | "NodePort" | "" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let lb: Vec<&str> = list(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if text(i, "/ip").is_empty() {
                        text(i, "/hostname")
                    } else {
                        text(i, "/ip")
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            let mut lb_text = lb.join(",");
            if !wide && lb_text.len() > 16 {
                lb_text = format!("{}...", lb_text.chars().take(13).collect::<String>());
            }
            if !external.is_empty() {
                let mut all: Vec<&str> = lb_text.split(',').filter(|s| !s.is_empty()).collect();
                all.extend(external);
                return all.join(",");
            }
            if lb_text.is_empty() {
                "<pending>".to_string()
            } else {
                lb_text
            }
        }
        "ExternalName" => text(o, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// A Service's PORT(S): `80/TCP`, `80:30080/TCP` with a node port, comma-joined.
pub fn service_ports(o: &Value) -> String {
    list(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = Some(text(p, "/protocol"))
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            match int(p, "/nodePort") {
                0 => format!("{}/{proto}", int(p, "/port")),
                np => format!("{}:{np}/{proto}", int(p, "/port")),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An Endpoints' ENDPOINTS: up to three `ip:port`, then `+ N more...`.
pub fn endpoints(o: &Value) -> String {
    endpoints_of_port(o, None)
}

/// [`endpoints`] limited to the ports named `port` (for `describe service`, per port).
pub fn endpoints_of_port(o: &Value, port: Option<&str>) -> String {
    let subsets = list(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let (mut shown, mut count) = (Vec::new(), 0);
    for ss in subsets {
        let addrs = list(ss, "/addresses");
        let ports = list(ss, "/ports");
        let ports: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports
                .iter()
                .filter(|p| port.is_none_or(|name| text(p, "/name") == name))
                .map(|p| Some(int(p, "/port")))
                .collect()
        };
        for port in ports {
            count += addrs.len();
            for a in addrs.iter().take(MAX.saturating_sub(shown.len())) {
                let ip = text(a, "/ip");
                shown.push(match port {
                    None => ip.to_string(),
                    Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                    Some(p) => format!("{ip}:{p}"),
                });
            }
        }
    }
    let joined = shown.join(",");
    if count > shown.len() {
        format!("{joined} + {} more...", count - shown.len())
    } else {
        joined
    }
}

/// At most three items, then `+ N more...`; `<unset>` for none (kubectl's
/// `listWithMoreString`).
fn three_then_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    if items.is_empty() {
        return "<unset>".to_string();
    }
    let shown = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{shown} + {} more...", items.len() - MAX)
    } else {
        shown
    }
}

/// An EndpointSlice's PORTS: each port's number, else its name, else `*`.
pub(super) fn slice_ports(o: &Value) -> String {
    let ports = list(o, "/ports").iter().map(|p| match p.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        _ => match p.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => "*".to_string(),
        },
    });
    three_then_more(ports.collect())
}

/// An EndpointSlice's ENDPOINTS: every endpoint's addresses, three shown.
pub(super) fn slice_endpoints(o: &Value) -> String {
    let addrs = list(o, "/endpoints").iter().flat_map(|e| {
        list(e, "/addresses")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    three_then_more(addrs.collect())
}
