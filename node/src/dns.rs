//! Cluster DNS, served by every node for its own pods (as NodeLocal
//! DNSCache does): answers come from a [`Zone`] built from the node's
//! Service and EndpointSlice caches — never a store read per query — over UDP
//! and TCP, with hickory's wire format.
//!
//! Names, as the Kubernetes DNS specification gives them (`<d>` is the
//! cluster domain, `cluster.local` by default):
//! - `<svc>.<ns>.svc.<d>`: A, the ClusterIP; for a headless Service, the
//!   ready endpoints' addresses; an ExternalName Service is a CNAME.
//! - `<host>.<svc>.<ns>.svc.<d>`: A, a headless Service's endpoint by its
//!   hostname (StatefulSet pods) or its dashed address.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<d>`: SRV for named ports.
//! - `<a-b-c-d>.<ns>.pod.<d>`: A, the address in the name.
//!
//! Names outside the cluster domain are refused: ferry forwards nothing
//! off the machine. Pods reach the server at the cluster DNS Service's
//! address (`10.43.0.10` by default), which the node's proxy sends to this
//! node's server; [`resolv_conf`] writes the pod's `/etc/resolv.conf`.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Seconds answers may be cached (CoreDNS's `kubernetes` plugin default).
pub const TTL: u32 = 5;

/// One Service as DNS sees it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Svc {
    cluster_ip: Option<Ipv4Addr>,
    external_name: Option<String>,
    /// (name, protocol lower-case, port).
    ports: Vec<(String, String, u16)>,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    ip: Ipv4Addr,
    hostname: Option<String>,
    /// (name, protocol lower-case, port) as the slice resolved them.
    ports: Vec<(String, String, u16)>,
}

/// What the server answers from: every Service by `(namespace, name)`.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    domain: String,
    services: HashMap<(String, String), Svc>,
}

/// What a query gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// These records (the name exists and has them).
    Records(Vec<Record>),
    /// The name exists but has no record of the type asked.
    NoData,
    /// No such name in the cluster domain.
    NxDomain,
    /// Not a cluster name: ferry forwards nothing.
    Refused,
}

fn ports_of(list: &Value, port_field: &str) -> Vec<(String, String, u16)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p[port_field].as_u64()?).ok()?;
            Some((
                p["name"].as_str().unwrap_or_default().to_string(),
                p["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase(),
                port,
            ))
        })
        .collect()
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

impl Zone {
    /// The zone of `services` and their `slices` (EndpointSlices, matched by
    /// the `kubernetes.io/service-name` label) in `domain`.
    pub fn build(domain: &str, services: &[Value], slices: &[Value]) -> Zone {
        let mut zone = Zone {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            services: HashMap::new(),
        };
        for s in services {
            let (Some(ns), Some(name)) = (
                s["metadata"]["namespace"].as_str(),
                s["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let spec = &s["spec"];
            let svc = Svc {
                cluster_ip: spec["clusterIP"].as_str().and_then(|ip| ip.parse().ok()),
                external_name: (spec["type"] == "ExternalName")
                    .then(|| spec["externalName"].as_str().map(str::to_string))
                    .flatten(),
                ports: ports_of(&spec["ports"], "port"),
                endpoints: Vec::new(),
            };
            zone.services
                .insert((ns.to_string(), name.to_string()), svc);
        }
        for sl in slices {
            let ns = sl["metadata"]["namespace"].as_str().unwrap_or_default();
            let Some(owner) = sl["metadata"]["labels"]["kubernetes.io/service-name"].as_str()
            else {
                continue;
            };
            let Some(svc) = zone.services.get_mut(&(ns.to_string(), owner.to_string())) else {
                continue;
            };
            let ports = ports_of(&sl["ports"], "port");
            for e in sl["endpoints"].as_array().into_iter().flatten() {
                // Ready, or unknown (Kubernetes: nil means ready).
                if e["conditions"]["ready"] == Value::Bool(false) {
                    continue;
                }
                for a in e["addresses"].as_array().into_iter().flatten() {
                    if let Some(ip) = a.as_str().and_then(|a| a.parse().ok()) {
                        svc.endpoints.push(Endpoint {
                            ip,
                            hostname: e["hostname"].as_str().map(str::to_ascii_lowercase),
                            ports: ports.clone(),
                        });
                    }
                }
            }
        }
        zone
    }

    /// The answer to `qtype` for `qname`.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let full = qname.to_lowercase().to_ascii();
        let name = full.trim_end_matches('.');
        let Some(rest) = name
            .strip_suffix(self.domain.as_str())
            .and_then(|r| r.strip_suffix('.').or(r.is_empty().then_some("")))
        else {
            return Answer::Refused;
        };
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        let fqdn = |s: String| Name::from_ascii(format!("{s}.")).ok();
        let record = |rdata: RData| Record::from_rdata(qname.clone(), TTL, rdata);
        let a = |ips: Vec<Ipv4Addr>| match qtype {
            RecordType::A | RecordType::ANY if !ips.is_empty() => {
                Answer::Records(ips.into_iter().map(|ip| record(RData::A(A(ip)))).collect())
            }
            _ => Answer::NoData,
        };
        match labels.as_slice() {
            // The zone's own intermediate names exist, with no records.
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Answer::NoData,
            [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) => a(vec![ip]),
                Err(_) => Answer::NxDomain,
            },
            [svc, ns, "svc"] => {
                let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Answer::NxDomain;
                };
                if let Some(ext) = &s.external_name {
                    return match fqdn(ext.trim_end_matches('.').to_string()) {
                        Some(target) => Answer::Records(vec![record(RData::CNAME(CNAME(target)))]),
                        None => Answer::NxDomain,
                    };
                }
                match s.cluster_ip {
                    Some(ip) => a(vec![ip]),
                    None => a(s.endpoints.iter().map(|e| e.ip).collect()),
                }
            }
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                let (port, proto) = (&port[1..], &proto[1..]);
                let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Answer::NxDomain;
                };
                let base = format!("{svc}.{ns}.svc.{}", self.domain);
                let mut out = Vec::new();
                if s.cluster_ip.is_some() {
                    for (n, p, number) in &s.ports {
                        if n == port && p == proto {
                            if let Some(t) = fqdn(base.clone()) {
                                out.push(record(RData::SRV(SRV::new(0, 100, *number, t))));
                            }
                        }
                    }
                } else {
                    let count = s.endpoints.len().max(1) as u16;
                    for e in &s.endpoints {
                        let host = e.hostname.clone().unwrap_or_else(|| dashed(e.ip));
                        for (n, p, number) in &e.ports {
                            if n == port && p == proto {
                                if let Some(t) = fqdn(format!("{host}.{base}")) {
                                    out.push(record(RData::SRV(SRV::new(
                                        0,
                                        100 / count,
                                        *number,
                                        t,
                                    ))));
                                }
                            }
                        }
                    }
                }
                match (out.is_empty(), qtype) {
                    (true, _) => Answer::NxDomain,
                    (false, RecordType::SRV | RecordType::ANY) => Answer::Records(out),
                    (false, _) => Answer::NoData,
                }
            }
            [host, svc, ns, "svc"] => {
                let Some(s) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Answer::NxDomain;
                };
                let ips: Vec<Ipv4Addr> = s
                    .endpoints
                    .iter()
                    .filter(|e| e.hostname.as_deref() == Some(host) || dashed(e.ip) == *host)
                    .map(|e| e.ip)
                    .collect();
                if s.cluster_ip.is_some() || ips.is_empty() {
                    return Answer::NxDomain;
                }
                a(ips)
            }
            _ => Answer::NxDomain,
        }
    }

    /// The response to one DNS message (`None`: not a query worth answering).
    pub fn respond(&self, request: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(request).ok()?;
        if req.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        let code = match (req.metadata.op_code, req.queries.as_slice()) {
            (OpCode::Query, [q]) => {
                resp.add_query(q.clone());
                match self.answer(q.name(), q.query_type()) {
                    Answer::Records(rs) => {
                        resp.metadata.authoritative = true;
                        resp.add_answers(rs);
                        ResponseCode::NoError
                    }
                    Answer::NoData => {
                        resp.metadata.authoritative = true;
                        ResponseCode::NoError
                    }
                    Answer::NxDomain => {
                        resp.metadata.authoritative = true;
                        ResponseCode::NXDomain
                    }
                    Answer::Refused => ResponseCode::Refused,
                }
            }
            (OpCode::Query, _) => ResponseCode::FormErr,
            _ => ResponseCode::NotImp,
        };
        resp.metadata.response_code = code;
        resp.to_vec().ok()
    }
}

/// A pod's `/etc/resolv.conf` for its `dnsPolicy` (and `dnsConfig`), as the
/// kubelet writes it; `None` when the pod keeps the node's own file
/// (`Default`, or `ClusterFirst` with `hostNetwork`).
pub fn resolv_conf(pod: &Value, dns_ip: Ipv4Addr, domain: &str) -> Option<String> {
    let spec = &pod["spec"];
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let host_network = spec["hostNetwork"] == Value::Bool(true);
    let policy = spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match policy {
            "ClusterFirst" if host_network => return None,
            "Default" => return None,
            "None" => (Vec::new(), Vec::new(), Vec::new()),
            _ => (
                vec![dns_ip.to_string()],
                vec![
                    format!("{ns}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_string(),
                ],
                vec!["ndots:5".to_string()],
            ),
        };
    let cfg = &spec["dnsConfig"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    for s in strs(&cfg["nameservers"]) {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    for s in strs(&cfg["searches"]) {
        if !searches.contains(&s) {
            searches.push(s);
        }
    }
    for o in cfg["options"].as_array().into_iter().flatten() {
        let Some(name) = o["name"].as_str() else {
            continue;
        };
        options.retain(|x| x.split(':').next() != Some(name));
        options.push(match o["value"].as_str() {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        });
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    // The resolver reads at most three nameservers (Kubernetes' limit too).
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(out)
}

/// The node's DNS server: once the pod network is set up (`net`), serves on
/// the node's gateway address, port 53, from a zone rebuilt whenever the
/// watched Services or EndpointSlices (`known`) change, until `stop`.
pub async fn run(
    mut net: watch::Receiver<Option<crate::net::NetInfo>>,
    mut known: watch::Receiver<crate::net::proxy::Known>,
    stop: watch::Receiver<bool>,
) {
    let info = loop {
        if let Some(i) = net.borrow_and_update().clone() {
            break i;
        }
        if net.changed().await.is_err() {
            return;
        }
    };
    let domain = info.network.cluster_domain.clone();
    let zone_of = move |k: &crate::net::proxy::Known| {
        let services: Vec<Value> = k
            .services
            .values()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
        let slices: Vec<Value> = k
            .slices
            .values()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
        Arc::new(Zone::build(&domain, &services, &slices))
    };
    let (tx, rx) = watch::channel(zone_of(&known.borrow_and_update()));
    let mut updates_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = known.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let z = zone_of(&known.borrow_and_update());
                    if z.services.len() != tx.borrow().services.len() {
                        tracing::info!(services = z.services.len(), "cluster DNS zone updated");
                    }
                    tx.send_replace(z);
                }
                _ = async { let _ = updates_stop.wait_for(|s| *s).await; } => return,
            }
        }
    });
    let addr = SocketAddr::new(info.gateway(), 53);
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        match serve(addr, rx.clone(), stop.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cluster DNS cannot serve; retrying");
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// Serves DNS on `addr` (UDP and TCP) from the latest zone until `stop`
/// turns true.
pub async fn serve(
    addr: SocketAddr,
    zone: watch::Receiver<Arc<Zone>>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let udp = Arc::new(tokio::net::UdpSocket::bind(addr).await?);
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "cluster DNS serving");
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let answer = zone.borrow().respond(&buf[..n]);
                if let Some(mut out) = answer {
                    // Over 512 bytes without EDNS: truncated, the client asks again over TCP.
                    if out.len() > 512 {
                        if let Ok(mut m) = Message::from_vec(&out) {
                            m.answers.clear();
                            m.metadata.truncation = true;
                            out = m.to_vec().unwrap_or(out);
                        }
                    }
                    let _ = udp.send_to(&out, from).await;
                }
            }
            r = tcp.accept() => {
                let Ok((mut conn, _)) = r else { continue };
                let zone = zone.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if conn.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if conn.read_exact(&mut req).await.is_err() {
                            return;
                        }
                        let answer = zone.borrow().respond(&req);
                        let Some(out) = answer else { return };
                        let Ok(n) = u16::try_from(out.len()) else { return };
                        if conn.write_all(&n.to_be_bytes()).await.is_err()
                            || conn.write_all(&out).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            _ = stop.changed() => {
                if *stop.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use serde_json::json;

    fn zone() -> Zone {
        let services = vec![
            json!({"metadata": {"namespace": "default", "name": "web"},
                   "spec": {"clusterIP": "10.43.7.7", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}),
            json!({"metadata": {"namespace": "default", "name": "db"},
                   "spec": {"clusterIP": "None", "ports": [{"name": "pg", "protocol": "TCP", "port": 5432}]}}),
            json!({"metadata": {"namespace": "default", "name": "ext"},
                   "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ];
        let slices = vec![json!({
            "metadata": {"namespace": "default", "name": "db-abc",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "ports": [{"name": "pg", "protocol": "TCP", "port": 5432}],
            "endpoints": [
                {"addresses": ["10.42.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.2.9"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["10.42.2.10"], "hostname": "db-2", "conditions": {"ready": false}},
            ]
        })];
        Zone::build("cluster.local", &services, &slices)
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Answer {
        z.answer(&Name::from_ascii(name).unwrap(), t)
    }

    fn rdata(a: &Answer) -> Vec<String> {
        match a {
            Answer::Records(rs) => rs.iter().map(|r| r.data.to_string()).collect(),
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn services_headless_endpoints_srv_pods_and_external_names() {
        let z = zone();
        let a = RecordType::A;
        assert_eq!(
            rdata(&ask(&z, "web.default.svc.cluster.local.", a)),
            ["10.43.7.7"]
        );
        assert_eq!(
            rdata(&ask(&z, "WEB.Default.svc.cluster.local", a)),
            ["10.43.7.7"]
        );
        assert_eq!(
            rdata(&ask(&z, "db.default.svc.cluster.local.", a)),
            ["10.42.1.5", "10.42.2.9"],
            "headless: the ready endpoints"
        );
        assert_eq!(
            rdata(&ask(&z, "db-1.db.default.svc.cluster.local.", a)),
            ["10.42.2.9"]
        );
        assert_eq!(
            ask(&z, "db-2.db.default.svc.cluster.local.", a),
            Answer::NxDomain,
            "not ready"
        );
        assert_eq!(
            rdata(&ask(
                &z,
                "_http._tcp.web.default.svc.cluster.local.",
                RecordType::SRV
            )),
            ["0 100 80 web.default.svc.cluster.local."]
        );
        assert_eq!(
            rdata(&ask(
                &z,
                "_pg._tcp.db.default.svc.cluster.local.",
                RecordType::SRV
            )),
            [
                "0 50 5432 db-0.db.default.svc.cluster.local.",
                "0 50 5432 db-1.db.default.svc.cluster.local."
            ]
        );
        assert_eq!(
            rdata(&ask(&z, "10-42-1-5.default.pod.cluster.local.", a)),
            ["10.42.1.5"]
        );
        assert_eq!(
            rdata(&ask(&z, "ext.default.svc.cluster.local.", a)),
            ["example.com."]
        );
        assert_eq!(
            ask(&z, "web.default.svc.cluster.local.", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            ask(&z, "nope.default.svc.cluster.local.", a),
            Answer::NxDomain
        );
        assert_eq!(
            ask(
                &z,
                "_x._tcp.web.default.svc.cluster.local.",
                RecordType::SRV
            ),
            Answer::NxDomain
        );
        assert_eq!(ask(&z, "default.svc.cluster.local.", a), Answer::NoData);
        assert_eq!(ask(&z, "example.com.", a), Answer::Refused);
        assert_eq!(ask(&z, "notcluster.local.", a), Answer::Refused);
    }

    #[test]
    fn wire_answers_keep_the_id_and_say_nxdomain_or_refused() {
        let z = zone();
        let mut q = Message::query();
        q.metadata.id = 4242;
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(
            Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let r = Message::from_vec(&z.respond(&q.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.metadata.id, 4242);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, TTL);
        let mut q2 = q.clone();
        q2.queries[0] = Query::query(
            Name::from_ascii("gone.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        );
        let r = Message::from_vec(&z.respond(&q2.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        q2.queries[0] = Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A);
        let r = Message::from_vec(&z.respond(&q2.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert_eq!(z.respond(b"\x01\x02garbage"), None);
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let ip: Ipv4Addr = "10.43.0.10".parse().unwrap();
        let pod = json!({"metadata": {"namespace": "shop"}, "spec": {}});
        assert_eq!(
            resolv_conf(&pod, ip, "cluster.local").unwrap(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        let host = json!({"metadata": {"namespace": "shop"}, "spec": {"hostNetwork": true}});
        assert_eq!(resolv_conf(&host, ip, "cluster.local"), None);
        let mut with_host = host.clone();
        with_host["spec"]["dnsPolicy"] = json!("ClusterFirstWithHostNet");
        assert!(resolv_conf(&with_host, ip, "cluster.local")
            .unwrap()
            .contains("nameserver 10.43.0.10"));
        let none = json!({"metadata": {"namespace": "a"}, "spec": {"dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.43.0.53"], "searches": ["x.local"],
                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}});
        assert_eq!(
            resolv_conf(&none, ip, "cluster.local").unwrap(),
            "search x.local\nnameserver 10.43.0.53\noptions ndots:2 edns0\n"
        );
        let merged = json!({"metadata": {"namespace": "a"}, "spec": {
            "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}});
        assert!(resolv_conf(&merged, ip, "cluster.local")
            .unwrap()
            .ends_with("options ndots:1\n"));
    }

    #[tokio::test]
    async fn serves_udp_and_tcp_on_loopback() {
        let (_tx, rx) = watch::channel(Arc::new(zone()));
        let (stop_tx, stop) = watch::channel(false);
        // A free port on loopback.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = tokio::spawn(serve(addr, rx, stop));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut q = Message::query();
        q.metadata.id = 7;
        q.add_query(Query::query(
            Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let bytes = q.to_vec().unwrap();
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&bytes, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(r.answers[0].data.to_string(), "10.43.7.7");
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        conn.write_all(&bytes).await.unwrap();
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut body).await.unwrap();
        assert_eq!(Message::from_vec(&body).unwrap().answers.len(), 1);
        stop_tx.send(true).unwrap();
        server.await.unwrap().unwrap();
    }
}
