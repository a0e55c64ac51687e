//! The Service proxy: nftables rules from Services and EndpointSlices, as
//! kube-proxy's nftables mode, in this node's own table ([`nft_table`]).
//!
//! - [`ruleset`] (pure) turns Services and EndpointSlices into the table: a
//!   verdict map from `daddr . l4proto . dport` (ClusterIPs, LoadBalancer
//!   ingress and external IPs) and one from `l4proto . dport` (NodePorts on
//!   the node's local addresses) to a chain per Service port, which picks an
//!   endpoint with `numgen random` (or the client's sticky one under
//!   `sessionAffinity: ClientIP`) and DNATs to it. Ports without a usable
//!   endpoint are rejected (TCP reset, ICMP port unreachable) in filter
//!   chains before NAT. Traffic from outside the cluster range, external
//!   traffic and hairpin traffic is SNATed to the node's gateway so replies
//!   come back. A forward guard drops pod packets for anything but the
//!   cluster, service and LoadBalancer ranges.
//! - [`Ruleset::script`] makes one `nft -f -` transaction replacing the table
//!   (conntrack entries, so established connections, stay; affinity sets keep
//!   their entries across syncs).
//! - [`sync_addresses`] puts the Service addresses on the node's dummy
//!   interface ([`node_iface`]) so host processes reach them.
//! - [`watch_objects`] keeps Services and EndpointSlices current from watches;
//!   [`run`] is the loop applying the rules.
//!
//! Several nodes may share one host namespace: each owns only its table and
//! its interface's addresses, and ignores packets from other nodes' pods.

use super::policy::{NamespaceLabels, PolicyPod};
use super::{nft_table, node_iface, NetInfo};
use anyhow::{anyhow, bail, Context, Result};
use ferry_api::network::Cidr;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

/// The packet mark bit asking for SNAT to the node's gateway (kube-proxy's).
pub const MASQ_MARK: u32 = 0x4000;
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset.
pub const DEFAULT_AFFINITY_SECS: i32 = 10800;
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The verdict maps the table has (flushed on every sync).
const MAPS: [&str; 4] = [
    "service-ips",
    "service-nodeports",
    "no-endpoint-services",
    "no-endpoint-nodeports",
];

/// A Service port's protocol (SCTP is not proxied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn parse(p: Option<&str>) -> Option<Proto> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            _ => None, // SCTP: not proxied
        }
    }

    fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One endpoint of a Service port, as its EndpointSlice says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    node: Option<String>,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// Every endpoint the Service's slices give for `port` (IPv4 only).
pub(super) fn endpoints(
    ns: &str,
    svc: &str,
    port: &ServicePort,
    slices: &[EndpointSlice],
) -> Vec<Endpoint> {
    let want_name = port.name.as_deref().unwrap_or_default();
    let want_proto = Proto::parse(port.protocol.as_deref());
    let mut out = Vec::new();
    for s in slices {
        let m = &s.metadata;
        if m.namespace.as_deref().unwrap_or_default() != ns
            || m.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) != Some(&svc.to_string())
            || s.address_type != "IPv4"
        {
            continue;
        }
        let Some(target) = s.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == want_name
                && Proto::parse(p.protocol.as_deref()) == want_proto
        }) else {
            continue;
        };
        let Some(tport) = target.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for e in &s.endpoints {
            // kube-proxy uses an endpoint's first address only.
            let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let c = e.conditions.clone().unwrap_or_default();
            // Unset ready means ready; unset serving means as ready.
            let ready = c.ready.unwrap_or(true);
            out.push(Endpoint {
                ip,
                port: tport,
                node: e.node_name.clone(),
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    out
}

/// The endpoints traffic may go to: the ready ones (only this node's when
/// `local`); when none is ready, the serving ones that are terminating.
pub(super) fn usable(eps: &[Endpoint], local: Option<&str>) -> Vec<(Ipv4Addr, u16)> {
    let here: Vec<&Endpoint> = eps
        .iter()
        .filter(|e| local.is_none_or(|n| e.node.as_deref() == Some(n)))
        .collect();
    let ready: Vec<(Ipv4Addr, u16)> = here
        .iter()
        .filter(|e| e.ready)
        .map(|e| (e.ip, e.port))
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    here.iter()
        .filter(|e| e.serving && e.terminating)
        .map(|e| (e.ip, e.port))
        .collect()
}

/// An nft identifier from object names (letters, digits, `/_.-` only).
fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn v4(s: Option<&str>) -> Option<Ipv4Addr> {
    s?.parse().ok()
}

fn prefix(c: &Cidr) -> String {
    c.to_string()
}

/// One sync's table and the Service addresses the node's interface holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    table: String,
    body: String,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
    addresses: BTreeSet<Ipv4Addr>,
}

impl Ruleset {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table definition (`table ip ... { ... }`).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The ClusterIPs and LoadBalancer addresses (within the service range
    /// and LoadBalancer pool) the node's interface must hold.
    pub fn addresses(&self) -> &BTreeSet<Ipv4Addr> {
        &self.addresses
    }

    /// One `nft -f -` transaction replacing the table. With `previous` (the
    /// ruleset the kernel holds now) the table is flushed and its stale
    /// chains and sets deleted, so affinity sets keep their entries; without
    /// it the table is deleted and made again.
    pub fn script(&self, previous: Option<&Ruleset>) -> String {
        let t = &self.table;
        let mut s = format!("table ip {t}\n");
        match previous {
            None => {
                let _ = writeln!(s, "delete table ip {t}");
            }
            Some(p) => {
                let _ = writeln!(s, "flush table ip {t}");
                for m in MAPS.iter().chain(&super::policy::MAPS) {
                    let _ = writeln!(s, "flush map ip {t} {m}");
                }
                // Policy address sets are made anew (affinity sets keep theirs).
                for set in p.sets.intersection(&self.sets) {
                    if set.starts_with("pol-") {
                        let _ = writeln!(s, "flush set ip {t} {set}");
                    }
                }
                for c in p.chains.difference(&self.chains) {
                    let _ = writeln!(s, "delete chain ip {t} {c}");
                }
                for set in p.sets.difference(&self.sets) {
                    let _ = writeln!(s, "delete set ip {t} {set}");
                }
            }
        }
        s.push_str(&self.body);
        s
    }
}

/// Where one Service port's traffic goes.
struct PortPlan {
    /// `ns/name/proto/port`.
    id: String,
    proto: Proto,
    port: u16,
    cluster_ips: Vec<Ipv4Addr>,
    external_ips: Vec<Ipv4Addr>,
    node_port: Option<u16>,
    cluster: Vec<(Ipv4Addr, u16)>,
    external: Vec<(Ipv4Addr, u16)>,
    affinity: Option<i32>,
}

fn plans(net: &NetInfo, services: &[Service], slices: &[EndpointSlice]) -> Vec<PortPlan> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind == "ExternalName" {
            continue;
        }
        // Headless (`None`), unallocated or IPv6: no rules.
        let Some(cip) = v4(spec.cluster_ip.as_deref()) else {
            continue;
        };
        let node_ports = kind == "NodePort" || kind == "LoadBalancer";
        let mut external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|a| v4(Some(a)))
            .collect();
        if kind == "LoadBalancer" {
            let ingress = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref());
            external_ips.extend(
                ingress
                    .into_iter()
                    .flatten()
                    .filter_map(|i| v4(i.ip.as_deref())),
            );
        }
        external_ips.sort();
        external_ips.dedup();
        let itp_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let etp_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_SECS)
                .clamp(1, 86400)
        });
        for p in spec.ports.iter().flatten() {
            let (Some(proto), Ok(port)) =
                (Proto::parse(p.protocol.as_deref()), u16::try_from(p.port))
            else {
                continue;
            };
            let eps = endpoints(ns, name, p, slices);
            let local = Some(net.node.as_str());
            // The cluster DNS Service: every node answers its own pods
            // (crate::dns serves on the node's gateway address).
            let node_dns = std::net::IpAddr::V4(cip) == net.network.dns_service_ip() && port == 53;
            let own_dns = match net.gateway() {
                std::net::IpAddr::V4(g) if node_dns => Some(vec![(g, 53)]),
                _ => None,
            };
            out.push(PortPlan {
                id: ident(&format!("{ns}/{name}/{}/{port}", proto.nft())),
                proto,
                port,
                cluster_ips: vec![cip],
                external_ips: external_ips.clone(),
                node_port: p
                    .node_port
                    .filter(|_| node_ports)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0),
                cluster: own_dns
                    .clone()
                    .unwrap_or_else(|| usable(&eps, local.filter(|_| itp_local))),
                external: own_dns
                    .clone()
                    .unwrap_or_else(|| usable(&eps, local.filter(|_| etp_local))),
                affinity,
            });
        }
    }
    out
}

/// Puts `key` into `map` unless it or `other` has it already (the first
/// Service claiming an address and port keeps it); whether it did.
fn claim(
    map: &mut BTreeMap<String, String>,
    other: &BTreeMap<String, String>,
    key: String,
    verdict: String,
) -> bool {
    if other.contains_key(&key) {
        return false;
    }
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(verdict);
            true
        }
        std::collections::btree_map::Entry::Occupied(_) => false,
    }
}

/// The nftables table for `services` and `slices` on the node `net` names
/// (no NetworkPolicy chains).
pub fn ruleset(net: &NetInfo, services: &[Service], slices: &[EndpointSlice]) -> Ruleset {
    ruleset_with_policy(net, services, slices, &super::policy::Rules::default())
}

/// [`ruleset`] with the NetworkPolicy chains, sets and maps of `policy`
/// ([`super::policy::rules`]) in the same table, so one transaction applies both.
pub fn ruleset_with_policy(
    net: &NetInfo,
    services: &[Service],
    slices: &[EndpointSlice],
    policy: &super::policy::Rules,
) -> Ruleset {
    let nw = &net.network;
    let table = nft_table(&net.key);
    let cluster = prefix(&nw.cluster_cidr);
    let pods = prefix(&net.pod_cidr);
    let gateway = net.gateway();
    let not_local_services = format!(
        "ip daddr != {{ {}, {} }}",
        prefix(&nw.service_cidr),
        prefix(&nw.load_balancer_pool)
    );
    let other_pods = format!("ip saddr {cluster} ip saddr != {pods} return");
    let plans = plans(net, services, slices);

    // Map elements, keyed so a duplicate address/port keeps the first.
    let mut service_ips: BTreeMap<String, String> = BTreeMap::new();
    let mut node_ports: BTreeMap<String, String> = BTreeMap::new();
    let mut no_ep_ips: BTreeMap<String, String> = BTreeMap::new();
    let mut no_ep_ports: BTreeMap<String, String> = BTreeMap::new();
    let mut chains: BTreeMap<String, String> = BTreeMap::new();
    let mut sets: BTreeMap<String, String> = BTreeMap::new();
    let mut addresses = BTreeSet::new();

    for p in &plans {
        let proto = p.proto.nft();
        let ep_chain = |ip: Ipv4Addr, port: u16| format!("ep-{}/{ip}/{port}", p.id);
        let aff_set =
            |ip: Ipv4Addr, port: u16, secs: i32| format!("aff-{}/{ip}/{port}/{secs}", p.id);
        // The chain picking among `eps`; `always_mark`: external traffic.
        let mut pick = |name: String, eps: &[(Ipv4Addr, u16)], always_mark: bool| {
            let mut c = String::new();
            if always_mark {
                c.push_str("jump mark-for-masquerade\n");
            } else {
                let _ = writeln!(c, "ip saddr != {cluster} jump mark-for-masquerade");
            }
            if let Some(secs) = p.affinity {
                for &(ip, port) in eps {
                    let _ = writeln!(
                        c,
                        "ip saddr @{} goto {}",
                        aff_set(ip, port, secs),
                        ep_chain(ip, port)
                    );
                }
            }
            let arms: Vec<String> = eps
                .iter()
                .enumerate()
                .map(|(i, &(ip, port))| format!("{i} : goto {}", ep_chain(ip, port)))
                .collect();
            let _ = writeln!(
                c,
                "numgen random mod {} vmap {{ {} }}",
                eps.len(),
                arms.join(", ")
            );
            chains.insert(name, c);
            for &(ip, port) in eps {
                let mut e = String::new();
                let _ = writeln!(e, "ip saddr {ip} jump mark-for-masquerade");
                if let Some(secs) = p.affinity {
                    let set = aff_set(ip, port, secs);
                    let _ = writeln!(e, "update @{set} {{ ip saddr }}");
                    sets.insert(
                        set,
                        format!("type ipv4_addr; flags dynamic,timeout; timeout {secs}s;\n"),
                    );
                }
                let _ = writeln!(e, "meta l4proto {proto} dnat to {ip}:{port}");
                chains.insert(ep_chain(ip, port), e);
            }
        };
        for &ip in &p.cluster_ips {
            if nw.service_cidr.contains(IpAddr::V4(ip)) {
                addresses.insert(ip);
            }
            let key = format!("{ip} . {proto} . {}", p.port);
            if p.cluster.is_empty() {
                claim(
                    &mut no_ep_ips,
                    &service_ips,
                    key,
                    "goto reject-chain".into(),
                );
            } else {
                let name = format!("svc-{}", p.id);
                if claim(&mut service_ips, &no_ep_ips, key, format!("goto {name}")) {
                    pick(name, &p.cluster, false);
                }
            }
        }
        let ext = format!("ext-{}", p.id);
        let mut use_ext = false;
        for &ip in &p.external_ips {
            if nw.load_balancer_pool.contains(IpAddr::V4(ip)) {
                addresses.insert(ip);
            }
            let key = format!("{ip} . {proto} . {}", p.port);
            if p.external.is_empty() {
                claim(
                    &mut no_ep_ips,
                    &service_ips,
                    key,
                    "goto reject-chain".into(),
                );
            } else {
                use_ext |= claim(&mut service_ips, &no_ep_ips, key, format!("goto {ext}"));
            }
        }
        if let Some(np) = p.node_port {
            let key = format!("{proto} . {np}");
            if p.external.is_empty() {
                claim(
                    &mut no_ep_ports,
                    &node_ports,
                    key,
                    "goto reject-chain".into(),
                );
            } else {
                use_ext |= claim(&mut node_ports, &no_ep_ports, key, format!("goto {ext}"));
            }
        }
        if use_ext {
            pick(ext, &p.external, true);
        }
    }

    let mut b = format!("table ip {table} {{\n");
    let map = |b: &mut String, name: &str, ty: &str, elems: &BTreeMap<String, String>| {
        let _ = writeln!(b, "map {name} {{\ntype {ty} : verdict;");
        if !elems.is_empty() {
            let e: Vec<String> = elems.iter().map(|(k, v)| format!("{k} : {v}")).collect();
            let _ = writeln!(b, "elements = {{ {} }}", e.join(", "));
        }
        b.push_str("}\n");
    };
    let addr_port = "ipv4_addr . inet_proto . inet_service";
    map(&mut b, "service-ips", addr_port, &service_ips);
    map(
        &mut b,
        "service-nodeports",
        "inet_proto . inet_service",
        &node_ports,
    );
    map(&mut b, "no-endpoint-services", addr_port, &no_ep_ips);
    map(
        &mut b,
        "no-endpoint-nodeports",
        "inet_proto . inet_service",
        &no_ep_ports,
    );
    let (policy_maps, policy_chains) = policy.fixed();
    b.push_str(&policy_maps);
    sets.extend(policy.sets.iter().map(|(k, v)| (k.clone(), v.clone())));
    chains.extend(policy.chains.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (name, def) in policy_chains {
        chains.insert(name.to_string(), def);
    }
    for (name, def) in &sets {
        let _ = write!(b, "set {name} {{\n{def}}}\n");
    }
    // hostPort: the node's own addresses, port → the pod (marked so the
    // answer comes back through the node's gateway).
    let mut hostports = String::new();
    for (proto, host, ip, port) in &policy.host_ports {
        let Some(proto) = Proto::parse(Some(proto)) else {
            continue;
        };
        let p = proto.nft();
        let _ = writeln!(
            hostports,
            "fib daddr type local {p} dport {host} meta mark set meta mark | {MASQ_MARK:#x} dnat to {ip}:{port}"
        );
    }
    chains.insert("hostports".to_string(), hostports);
    let fixed: [(&str, String); 10] = [
        ("reject-chain", "reject with tcp reset\nreject\n".into()),
        (
            "mark-for-masquerade",
            format!("meta mark set meta mark | {MASQ_MARK:#x}\n"),
        ),
        (
            "services",
            format!(
                "jump hostports\n\
                 ip daddr . meta l4proto . th dport vmap @service-ips\n\
                 {not_local_services} fib daddr type local meta l4proto . th dport vmap @service-nodeports\n"
            ),
        ),
        (
            "endpoints-check",
            format!(
                "ip daddr . meta l4proto . th dport vmap @no-endpoint-services\n\
                 {not_local_services} fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports\n"
            ),
        ),
        (
            "nat-prerouting",
            format!(
                "type nat hook prerouting priority -100; policy accept;\n{other_pods}\njump services\n"
            ),
        ),
        (
            "nat-output",
            "type nat hook output priority -100; policy accept;\njump services\n".into(),
        ),
        (
            "nat-postrouting",
            format!(
                "type nat hook postrouting priority 100; policy accept;\n\
                 meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} meta mark set meta mark & {:#x} snat to {gateway}\n",
                !MASQ_MARK
            ),
        ),
        (
            "filter-input",
            format!(
                "type filter hook input priority -110; policy accept;\n{other_pods}\nct state new jump endpoints-check\n"
            ),
        ),
        (
            "filter-output",
            "type filter hook output priority -110; policy accept;\nct state new jump endpoints-check\n"
                .into(),
        ),
        (
            "filter-forward",
            format!(
                "type filter hook forward priority -110; policy accept;\n\
                 iifname \"fp*\" ip daddr != {{ {cluster}, {}, {} }} drop\n\
                 {other_pods}\nct state new jump endpoints-check\n",
                prefix(&nw.service_cidr),
                prefix(&nw.load_balancer_pool)
            ),
        ),
    ];
    for (name, def) in fixed {
        chains.insert(name.to_string(), def);
    }
    for (name, def) in &chains {
        let _ = write!(b, "chain {name} {{\n{def}}}\n");
    }
    b.push_str("}\n");
    Ruleset {
        table,
        body: b,
        chains: chains.into_keys().collect(),
        sets: sets.into_keys().collect(),
        addresses,
    }
}

/// Runs `nft -f -` with `script`; `Err` holds nft's complaint.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (is the nftables package installed?)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft -f: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Deletes the table of the node with [`super::host_key`] `key` (nothing if
/// it is not there).
pub fn delete_table(key: &str) -> Result<()> {
    let t = nft_table(key);
    apply(&format!("table ip {t}\ndelete table ip {t}\n"))
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The IPv4 `/32`s within `owned` that `ip -j addr show` output lists.
fn owned_addresses(json: &str, owned: &[Cidr]) -> Result<BTreeSet<Ipv4Addr>> {
    let v: serde_json::Value = serde_json::from_str(json).context("ip -j addr show")?;
    let mut out = BTreeSet::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["family"] != "inet" || a["prefixlen"] != 32 {
                continue;
            }
            let Some(ip) = v4(a["local"].as_str()) else {
                continue;
            };
            if owned.iter().any(|c| c.contains(IpAddr::V4(ip))) {
                out.insert(ip);
            }
        }
    }
    Ok(out)
}

/// Makes the node interface `iface` exist and be up: a dummy, or where the
/// kernel has no dummy driver an `ifb` (also carrier-up and ARP-less), or a
/// port-less bridge. Any of them holds local addresses the same way.
pub fn ensure_iface(iface: &str) -> Result<()> {
    if ip(&["link", "show", "dev", iface]).is_err() {
        let mut last = None;
        for kind in ["dummy", "ifb", "bridge"] {
            match ip(&["link", "add", iface, "type", kind]) {
                Ok(_) => {
                    last = None;
                    break;
                }
                // Made meanwhile by the pod network: fine.
                Err(_) if ip(&["link", "show", "dev", iface]).is_ok() => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    ip(&["link", "set", iface, "up"]).map(|_| ())
}

/// Makes `iface` ([`ensure_iface`]) hold exactly `want` among
/// its `/32`s within `owned` (the service range and LoadBalancer pool);
/// other addresses (the pod gateway) are left alone.
pub fn sync_addresses(iface: &str, want: &BTreeSet<Ipv4Addr>, owned: &[Cidr]) -> Result<()> {
    ensure_iface(iface)?;
    let have = owned_addresses(&ip(&["-j", "addr", "show", "dev", iface])?, owned)?;
    let mut batch = String::new();
    for a in want.difference(&have) {
        let _ = writeln!(batch, "addr add {a}/32 dev {iface}");
    }
    for a in have.difference(want) {
        let _ = writeln!(batch, "addr del {a}/32 dev {iface}");
    }
    if batch.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(batch.as_bytes())?;
    let out = child.wait_with_output()?;
    let now = owned_addresses(&ip(&["-j", "addr", "show", "dev", iface])?, owned)?;
    if &now != want {
        return Err(anyhow!(
            "{iface} holds {now:?}, not {want:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The ranges whose `/32`s on the node's interface the proxy owns.
fn owned_ranges(net: &NetInfo) -> [Cidr; 2] {
    [net.network.service_cidr, net.network.load_balancer_pool]
}

/// Removes what the proxy made for `net`'s node: its table and the Service
/// addresses on its interface (the interface itself is the pod network's).
pub fn teardown(net: &NetInfo) -> Result<()> {
    let t = delete_table(&net.key);
    let iface = node_iface(&net.key);
    let a = if ip(&["link", "show", "dev", &iface]).is_ok() {
        sync_addresses(&iface, &BTreeSet::new(), &owned_ranges(net))
    } else {
        Ok(())
    };
    t.and(a)
}

/// The Services, EndpointSlices and NetworkPolicies of every namespace, the
/// pods and namespaces as policies need them, and the Ingresses and
/// IngressClasses, as watched.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Services by `namespace/name`.
    pub services: BTreeMap<String, Service>,
    /// EndpointSlices by `namespace/name`.
    pub slices: BTreeMap<String, EndpointSlice>,
    /// The services' initial list has arrived.
    pub services_synced: bool,
    /// The slices' initial list has arrived (or they cannot be watched).
    pub slices_synced: bool,
    /// NetworkPolicies by `namespace/name`.
    pub policies: BTreeMap<String, NetworkPolicy>,
    /// Every pod, as policy evaluation needs it, by `namespace/name`.
    pub pods: BTreeMap<String, PolicyPod>,
    /// Every namespace's labels, by `/name`.
    pub namespaces: BTreeMap<String, NamespaceLabels>,
    /// The policies' initial list has arrived (or they cannot be watched).
    pub policies_synced: bool,
    /// The pods' initial list has arrived (or they cannot be watched).
    pub pods_synced: bool,
    /// The namespaces' initial list has arrived (or they cannot be watched).
    pub namespaces_synced: bool,
    /// Ingresses by `namespace/name` (for [`super::ingress`]; not waited for).
    pub ingresses: BTreeMap<String, Ingress>,
    /// The ingresses' initial list has arrived (or they cannot be watched).
    pub ingresses_synced: bool,
    /// IngressClasses by `/name`.
    pub ingress_classes: BTreeMap<String, IngressClass>,
    /// The classes' initial list has arrived (or they cannot be watched).
    pub ingress_classes_synced: bool,
}

impl Known {
    /// Whether every initial list has arrived.
    pub fn synced(&self) -> bool {
        self.services_synced
            && self.slices_synced
            && self.policies_synced
            && self.pods_synced
            && self.namespaces_synced
    }

    /// The NetworkPolicy part of `net`'s table for what is known.
    pub fn policy_rules(&self, net: &NetInfo) -> super::policy::Rules {
        let policies: Vec<NetworkPolicy> = self.policies.values().cloned().collect();
        let pods: Vec<PolicyPod> = self.pods.values().cloned().collect();
        let namespaces: BTreeMap<String, NamespaceLabels> = self
            .namespaces
            .iter()
            .map(|(k, v)| (k.trim_start_matches('/').to_string(), v.clone()))
            .collect();
        let mut rules = super::policy::rules(net, &policies, &pods, &namespaces);
        rules.host_ports = pods
            .iter()
            .filter(|p| p.node.as_deref() == Some(net.node.as_str()))
            .filter_map(|p| Some((p.ip?, &p.host_ports)))
            .flat_map(|(ip, hp)| {
                hp.iter()
                    .map(move |(proto, h, c)| (proto.clone(), *h, ip, *c))
            })
            .collect();
        rules.host_ports.sort();
        rules.host_ports.dedup_by_key(|r| (r.0.clone(), r.1));
        rules
    }

    /// The Services a container of a pod in `ns` sees (its namespace's and
    /// `default/kubernetes`), for [`crate::env::service_env`].
    pub fn services_for(&self, ns: &str) -> Vec<Service> {
        self.services
            .iter()
            .filter(|(k, _)| {
                k.split_once('/').is_some_and(|(n, _)| n == ns) || *k == "default/kubernetes"
            })
            .map(|(_, s)| s.clone())
            .collect()
    }
}

type Part<K> = crate::follow::Part<Known, K>;

/// Watches Services, EndpointSlices, NetworkPolicies, Pods and Namespaces
/// of every namespace into a [`Known`]
/// until `stop` turns true.
pub fn watch_objects(
    client: std::sync::Arc<ferry_api::Client>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::sync::watch::Receiver<Known> {
    let (tx, rx) = tokio::sync::watch::channel(Known::default());
    let tx = std::sync::Arc::new(tx);
    let services: Part<Service> = |k| (&mut k.services, &mut k.services_synced);
    let slices: Part<EndpointSlice> = |k| (&mut k.slices, &mut k.slices_synced);
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "services",
        tx.clone(),
        services,
        stop.clone(),
    ));
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "endpointslices",
        tx.clone(),
        slices,
        stop.clone(),
    ));
    let policies: Part<NetworkPolicy> = |k| (&mut k.policies, &mut k.policies_synced);
    let pods: Part<PolicyPod> = |k| (&mut k.pods, &mut k.pods_synced);
    let namespaces: Part<NamespaceLabels> = |k| (&mut k.namespaces, &mut k.namespaces_synced);
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "networkpolicies",
        tx.clone(),
        policies,
        stop.clone(),
    ));
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "pods",
        tx.clone(),
        pods,
        stop.clone(),
    ));
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "namespaces",
        tx.clone(),
        namespaces,
        stop.clone(),
    ));
    let ingresses: Part<Ingress> = |k| (&mut k.ingresses, &mut k.ingresses_synced);
    let classes: Part<IngressClass> = |k| (&mut k.ingress_classes, &mut k.ingress_classes_synced);
    tokio::spawn(crate::follow::follow(
        client.clone(),
        "ingresses",
        tx.clone(),
        ingresses,
        stop.clone(),
    ));
    tokio::spawn(crate::follow::follow(
        client,
        "ingressclasses",
        tx,
        classes,
        stop,
    ));
    rx
}

/// How long changes gather before one sync.
pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(30);
/// A full replacement of the table and addresses at least this often.
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(60);

/// The proxy loop: once `net` is known and says namespace mode, applies [`ruleset`] for what `known`
/// holds whenever it changes (debounced), retrying failures with back-off;
/// when `stop` turns true, removes the table and addresses.
pub async fn run(
    mut net: tokio::sync::watch::Receiver<Option<NetInfo>>,
    mut known: tokio::sync::watch::Receiver<Known>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::time::{Duration, Instant};
    let info = tokio::select! {
        n = net.wait_for(|n| n.as_ref().is_some_and(|n| n.mode == super::Mode::Namespaces)) => match n {
            Ok(n) => n.clone().expect("waited for"),
            Err(_) => return,
        },
        _ = stop.wait_for(|s| *s) => return,
    };
    if !info.pod_cidr.is_ipv4() || !info.network.service_cidr.is_ipv4() {
        tracing::warn!("proxy: only IPv4 networks are proxied; Services get no rules");
        return;
    }
    // NodePorts on loopback node addresses (127.0.1.N) are DNATed off `lo`.
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
        tracing::warn!("proxy: cannot set route_localnet (NodePorts on 127.x fail): {e}");
    }
    let mut info = info;
    let mut applied: Option<Ruleset> = None;
    let mut addresses_ok = false;
    let mut failures = 0u32;
    let mut next_full = Instant::now() + RESYNC;
    let mut retry_at: Option<Instant> = None;
    loop {
        let full_in = next_full.saturating_duration_since(Instant::now());
        let wait = retry_at.map_or(full_in, |r| {
            r.saturating_duration_since(Instant::now()).min(full_in)
        });
        tokio::select! {
            r = known.changed() => if r.is_err() { break },
            r = net.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        tokio::time::sleep(DEBOUNCE).await;
        if let Some(n) = net.borrow_and_update().clone() {
            info = n;
        }
        if Instant::now() >= next_full {
            applied = None;
            addresses_ok = false;
            next_full = Instant::now() + RESYNC;
        }
        let rules = {
            let k = known.borrow_and_update();
            if !k.synced() {
                continue;
            }
            let services: Vec<Service> = k.services.values().cloned().collect();
            let slices: Vec<EndpointSlice> = k.slices.values().cloned().collect();
            ruleset_with_policy(&info, &services, &slices, &k.policy_rules(&info))
        };
        if applied.as_ref() == Some(&rules) && addresses_ok {
            retry_at = None;
            continue;
        }
        let script = rules.script(applied.as_ref());
        let iface = node_iface(&info.key);
        let owned = owned_ranges(&info);
        let want = rules.addresses().clone();
        let result = tokio::task::spawn_blocking(move || {
            apply(&script)?;
            sync_addresses(&iface, &want, &owned).map_err(|e| anyhow!("addresses: {e}"))
        })
        .await
        .map_err(|e| anyhow!("{e}"))
        .and_then(|r| r);
        match result {
            Ok(()) => {
                tracing::debug!(table = %rules.table(), "proxy rules applied");
                applied = Some(rules);
                addresses_ok = true;
                failures = 0;
                retry_at = None;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!("proxy: sync failed (attempt {failures}): {e}");
                // The kernel's state is unknown: replace the whole table next.
                applied = None;
                addresses_ok = false;
                retry_at = Some(
                    Instant::now() + Duration::from_millis((100u64 << failures.min(6)).min(5000)),
                );
            }
        }
    }
    let result = tokio::task::spawn_blocking(move || teardown(&info)).await;
    match result {
        Ok(Ok(())) => tracing::info!("proxy: rules and Service addresses removed"),
        Ok(Err(e)) => tracing::warn!("proxy: cleaning up failed: {e}"),
        Err(e) => tracing::warn!("proxy: cleaning up failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    use crate::net::test_net as net;

    fn svc(name: &str, spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name},
            "spec": spec,
        }))
        .unwrap()
    }

    /// A slice for `svc` with port `http`/8080 and endpoints (ip, node, ready, serving, terminating).
    fn slice(svc: &str, eps: &[(&str, &str, bool, bool, bool)]) -> EndpointSlice {
        let eps: Vec<Value> = eps
            .iter()
            .map(|(ip, node, r, s, t)| {
                json!({"addresses": [ip], "nodeName": node,
                       "conditions": {"ready": r, "serving": s, "terminating": t}})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": format!("{svc}-x"),
                         "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))
        .unwrap()
    }

    fn web(extra: Value) -> Service {
        let mut spec = json!({"clusterIP": "10.43.0.10",
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        svc("web", spec)
    }

    /// The lines of chain `name` in `body`.
    fn chain<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
        let start = format!("chain {name} {{");
        let mut lines = body.lines().skip_while(|l| *l != start).skip(1);
        let mut out = Vec::new();
        for l in lines.by_ref() {
            if l == "}" {
                return out;
            }
            out.push(l);
        }
        panic!("no chain {name} in\n{body}");
    }

    const SVC: &str = "svc-ns/web/tcp/80";

    #[test]
    fn host_ports_of_this_nodes_pods_are_published_on_its_addresses() {
        let pod = |name: &str, node: &str, ip: &str| -> PolicyPod {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
                    {"containerPort": 8080, "hostPort": 8088},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                    {"containerPort": 9000}]}]},
                "status": {"podIP": ip, "phase": "Running"},
            }))
            .unwrap()
        };
        let mut k = Known::default();
        k.pods
            .insert("ns/here".into(), pod("here", "n1", "10.42.1.5"));
        k.pods
            .insert("ns/there".into(), pod("there", "n2", "10.42.2.5"));
        let r = ruleset_with_policy(&net(), &[], &[], &k.policy_rules(&net()));
        let hp = chain(r.body(), "hostports");
        assert_eq!(hp.len(), 2, "{hp:?}");
        assert!(
            hp[0].starts_with("fib daddr type local tcp dport 8088 meta mark set"),
            "{hp:?}"
        );
        assert!(hp[0].ends_with("dnat to 10.42.1.5:8080"), "{hp:?}");
        assert!(
            hp[1].contains("udp dport 5353") && hp[1].ends_with("dnat to 10.42.1.5:53"),
            "{hp:?}"
        );
        assert_eq!(chain(r.body(), "services")[0], "jump hostports");
    }

    #[test]
    fn the_cluster_dns_service_goes_to_this_nodes_own_dns_server() {
        let dns = svc(
            "kube-dns",
            json!({"clusterIP": "10.43.0.10", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
        );
        let r = ruleset(&net(), &[dns], &[]);
        let b = r.body();
        assert!(b.contains("meta l4proto udp dnat to 10.42.1.1:53"), "{b}");
        assert!(b.contains("meta l4proto tcp dnat to 10.42.1.1:53"), "{b}");
        assert!(
            !b.contains("10.43.0.10 . udp . 53 : goto reject-chain"),
            "{b}"
        );
    }

    #[test]
    fn endpoints_chosen_as_kube_proxy_does() {
        let ready = ("10.42.1.5", "n1", true, true, false);
        let other = ("10.42.2.5", "n2", true, true, false);
        let unready = ("10.42.1.6", "n1", false, false, false);
        let terminating = ("10.42.1.7", "n1", false, true, true);
        let ep = |ip: &str| format!("ep-ns/web/tcp/80/{ip}/8080");
        // (case, service fields, endpoints, endpoints the ClusterIP chain picks from)
        let cases: Vec<(&str, Value, Vec<_>, Vec<&str>)> = vec![
            (
                "ready ones only",
                json!({}),
                vec![ready, other, unready],
                vec!["10.42.1.5", "10.42.2.5"],
            ),
            (
                "terminating when none ready",
                json!({}),
                vec![unready, terminating],
                vec!["10.42.1.7"],
            ),
            (
                "ready beat terminating",
                json!({}),
                vec![terminating, other],
                vec!["10.42.2.5"],
            ),
            (
                "internal Local: this node's",
                json!({"internalTrafficPolicy": "Local"}),
                vec![ready, other],
                vec!["10.42.1.5"],
            ),
            (
                "internal Local, none here",
                json!({"internalTrafficPolicy": "Local"}),
                vec![other],
                vec![],
            ),
            ("none", json!({}), vec![], vec![]),
            ("unready only", json!({}), vec![unready], vec![]),
        ];
        for (case, extra, eps, want) in cases {
            let r = ruleset(&net(), &[web(extra)], &[slice("web", &eps)]);
            let b = r.body();
            if want.is_empty() {
                assert!(
                    b.contains("10.43.0.10 . tcp . 80 : goto reject-chain"),
                    "{case}: rejected\n{b}"
                );
                assert!(!b.contains(&format!("chain {SVC}")), "{case}");
                continue;
            }
            assert!(
                b.contains(&format!("10.43.0.10 . tcp . 80 : goto {SVC}")),
                "{case}\n{b}"
            );
            let c = chain(b, SVC);
            let arms: Vec<String> = want
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("{i} : goto {}", ep(ip)))
                .collect();
            assert_eq!(
                c.last().unwrap().to_string(),
                format!(
                    "numgen random mod {} vmap {{ {} }}",
                    want.len(),
                    arms.join(", ")
                ),
                "{case}"
            );
            assert_eq!(
                c[0], "ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
                "{case}"
            );
            for ip in want {
                assert_eq!(
                    chain(b, &ep(ip)),
                    vec![
                        format!("ip saddr {ip} jump mark-for-masquerade"),
                        format!("meta l4proto tcp dnat to {ip}:8080")
                    ],
                    "{case}: hairpin marked, then DNAT"
                );
            }
        }
    }

    #[test]
    fn which_services_get_rules() {
        let eps = [("10.42.1.5", "n1", true, true, false)];
        let cases: Vec<(&str, Service, bool)> = vec![
            ("ClusterIP", web(json!({})), true),
            ("headless", web(json!({"clusterIP": "None"})), false),
            ("no ClusterIP yet", web(json!({"clusterIP": null})), false),
            (
                "ExternalName",
                web(json!({"type": "ExternalName", "externalName": "x.example"})),
                false,
            ),
            ("IPv6", web(json!({"clusterIP": "fd00::10"})), false),
        ];
        for (case, s, rules) in cases {
            let r = ruleset(&net(), &[s], &[slice("web", &eps)]);
            assert_eq!(r.body().contains(SVC), rules, "{case}");
            assert_eq!(r.addresses().len(), usize::from(rules), "{case}");
        }
        // A slice of another Service, namespace or port name does not count.
        let mut other = slice("api", &eps);
        let r = ruleset(&net(), &[web(json!({}))], &[other.clone()]);
        assert!(
            r.body().contains("goto reject-chain"),
            "other service's slice"
        );
        other.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into());
        other.metadata.namespace = Some("elsewhere".into());
        let r = ruleset(&net(), &[web(json!({}))], &[other.clone()]);
        assert!(
            r.body().contains("goto reject-chain"),
            "other namespace's slice"
        );
        other.metadata.namespace = Some("ns".into());
        other.ports.as_mut().unwrap()[0].name = Some("metrics".into());
        let r = ruleset(&net(), &[web(json!({}))], &[other]);
        assert!(r.body().contains("goto reject-chain"), "other port name");
        // Two Services claiming one address and port: the first keeps it,
        // whether or not it has endpoints; the table stays loadable.
        let mut twin = web(json!({}));
        twin.metadata.name = Some("twin".into());
        let r = ruleset(
            &net(),
            &[web(json!({})), twin.clone()],
            &[slice("twin", &eps)],
        );
        assert!(r
            .body()
            .contains("10.43.0.10 . tcp . 80 : goto reject-chain"));
        assert!(!r.body().contains("svc-ns/twin"), "{}", r.body());
        let r = ruleset(&net(), &[twin, web(json!({}))], &[slice("twin", &eps)]);
        assert!(r
            .body()
            .contains("10.43.0.10 . tcp . 80 : goto svc-ns/twin/tcp/80"));
        assert!(!r.body().contains("reject-chain }"), "{}", r.body());
    }

    #[test]
    fn udp_ports_and_names() {
        let s = svc(
            "dns",
            json!({"clusterIP": "10.43.0.53", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "sctp", "port": 9, "protocol": "SCTP"}]}),
        );
        let sl: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "dns-1", "labels": {SERVICE_NAME_LABEL: "dns"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.42.1.9"]}],
            "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}],
        }))
        .unwrap();
        let b = ruleset(&net(), &[s], &[sl]).body().to_string();
        assert!(
            b.contains("10.43.0.53 . udp . 53 : goto svc-ns/dns/udp/53"),
            "{b}"
        );
        assert!(
            b.contains("10.43.0.53 . tcp . 53 : goto svc-ns/dns/tcp/53"),
            "{b}"
        );
        assert!(b.contains("meta l4proto udp dnat to 10.42.1.9:5353"), "{b}");
        assert!(b.contains("meta l4proto tcp dnat to 10.42.1.9:5354"), "{b}");
        assert!(!b.contains("sctp"), "SCTP ignored");
    }

    #[test]
    fn node_ports_and_load_balancers() {
        let local = ("10.42.1.5", "n1", true, true, false);
        let other = ("10.42.2.5", "n2", true, true, false);
        let lb = |extra: Value| {
            let mut s = web(json!({"type": "LoadBalancer"}));
            s.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30080);
            let patch: Service = serde_json::from_value(json!({"spec": extra})).unwrap();
            if let Some(p) = patch.spec.and_then(|s| s.external_traffic_policy) {
                s.spec.as_mut().unwrap().external_traffic_policy = Some(p);
            }
            s.status = Some(
                serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "10.44.0.3"}]}}))
                    .unwrap(),
            );
            s
        };
        let r = ruleset(&net(), &[lb(json!({}))], &[slice("web", &[local, other])]);
        let b = r.body();
        assert!(b.contains("tcp . 30080 : goto ext-ns/web/tcp/80"), "{b}");
        assert!(
            b.contains("10.44.0.3 . tcp . 80 : goto ext-ns/web/tcp/80"),
            "{b}"
        );
        let ext = chain(b, "ext-ns/web/tcp/80");
        assert_eq!(
            ext[0], "jump mark-for-masquerade",
            "external traffic is always SNATed"
        );
        assert!(ext[1].starts_with("numgen random mod 2 "), "{ext:?}");
        assert_eq!(
            r.addresses()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["10.43.0.10", "10.44.0.3"]
        );
        // externalTrafficPolicy: Local: NodePort/LB use this node's endpoints,
        // the ClusterIP all of them.
        let r = ruleset(
            &net(),
            &[lb(json!({"externalTrafficPolicy": "Local"}))],
            &[slice("web", &[local, other])],
        );
        let b = r.body();
        assert!(chain(b, "ext-ns/web/tcp/80")[1].starts_with("numgen random mod 1 "));
        assert!(chain(b, SVC)[1].starts_with("numgen random mod 2 "));
        // ... and with none here, they are rejected.
        let r = ruleset(
            &net(),
            &[lb(json!({"externalTrafficPolicy": "Local"}))],
            &[slice("web", &[other])],
        );
        let b = r.body();
        assert!(b.contains("tcp . 30080 : goto reject-chain"), "{b}");
        assert!(
            b.contains("10.44.0.3 . tcp . 80 : goto reject-chain"),
            "{b}"
        );
        assert!(
            b.contains(&format!("10.43.0.10 . tcp . 80 : goto {SVC}")),
            "{b}"
        );
        // A ClusterIP Service's nodePort field is not opened.
        let mut s = web(json!({}));
        s.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30081);
        assert!(!ruleset(&net(), &[s], &[slice("web", &[local])])
            .body()
            .contains("30081"));
    }

    #[test]
    fn session_affinity_sets() {
        let eps = [("10.42.1.5", "n1", true, true, false)];
        let cases = [
            (json!({"sessionAffinity": "ClientIP"}), Some(10800)),
            (
                json!({"sessionAffinity": "ClientIP",
                       "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
                Some(60),
            ),
            (json!({"sessionAffinity": "None"}), None),
        ];
        for (extra, secs) in cases {
            let r = ruleset(&net(), &[web(extra)], &[slice("web", &eps)]);
            let b = r.body();
            let Some(secs) = secs else {
                assert!(!b.contains("aff-"), "{b}");
                continue;
            };
            let set = format!("aff-ns/web/tcp/80/10.42.1.5/8080/{secs}");
            assert!(
                b.contains(&format!(
                    "set {set} {{\ntype ipv4_addr; flags dynamic,timeout; timeout {secs}s;"
                )),
                "{b}"
            );
            let ep = "ep-ns/web/tcp/80/10.42.1.5/8080";
            assert_eq!(chain(b, SVC)[1], format!("ip saddr @{set} goto {ep}"));
            assert_eq!(chain(b, ep)[1], format!("update @{set} {{ ip saddr }}"));
        }
    }

    #[test]
    fn guards_nat_and_other_nodes_pods() {
        let b = ruleset(&net(), &[], &[]).body().to_string();
        assert!(b.starts_with(&format!("table ip {} {{", nft_table("n1"))));
        assert_eq!(
            chain(&b, "nat-postrouting")[1],
            "meta mark & 0x4000 == 0x4000 meta mark set meta mark & 0xffffbfff snat to 10.42.1.1"
        );
        let fwd = chain(&b, "filter-forward");
        assert_eq!(
            fwd[1],
            "iifname \"fp*\" ip daddr != { 10.42.0.0/16, 10.43.0.0/16, 10.44.0.0/24 } drop"
        );
        for c in ["nat-prerouting", "filter-input", "filter-forward"] {
            assert!(
                chain(&b, c).contains(&"ip saddr 10.42.0.0/16 ip saddr != 10.42.1.0/24 return"),
                "{c} leaves other nodes' pods to their node"
            );
        }
        assert!(chain(&b, "services")[2].contains("fib daddr type local"));
    }

    #[test]
    fn scripts_replace_the_table_in_one_transaction() {
        let eps = [("10.42.1.5", "n1", true, true, false)];
        let t = nft_table("n1");
        let a = ruleset(
            &net(),
            &[web(json!({"sessionAffinity": "ClientIP"}))],
            &[slice("web", &eps)],
        );
        let b = ruleset(&net(), &[], &[]);
        let first = a.script(None);
        assert!(first.starts_with(&format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{"
        )));
        let next = b.script(Some(&a));
        let head: Vec<&str> = next.lines().take_while(|l| !l.ends_with('{')).collect();
        assert_eq!(
            head[..2],
            [format!("table ip {t}"), format!("flush table ip {t}")]
        );
        assert!(head.contains(&format!("flush map ip {t} service-ips").as_str()));
        assert!(head.contains(&format!("delete chain ip {t} {SVC}").as_str()));
        assert!(
            head.contains(&format!("delete chain ip {t} ep-ns/web/tcp/80/10.42.1.5/8080").as_str())
        );
        assert!(head.contains(
            &format!("delete set ip {t} aff-ns/web/tcp/80/10.42.1.5/8080/10800").as_str()
        ));
        assert!(
            !head
                .iter()
                .any(|l| l.contains("delete chain") && l.contains("nat-")),
            "{head:?}"
        );
        // The same inputs give the same rules (no needless syncs).
        assert_eq!(
            a,
            ruleset(
                &net(),
                &[web(json!({"sessionAffinity": "ClientIP"}))],
                &[slice("web", &eps)]
            )
        );
    }

    /// Policy sets held before and after are flushed and refilled, stale
    /// ones and their chains deleted; affinity sets are never flushed.
    #[test]
    fn scripts_refill_policy_sets_and_drop_stale_ones() {
        use super::super::policy::{self, PolicyPod};
        let t = nft_table("n1");
        let pod = |name: &str, ip: &str| -> PolicyPod {
            serde_json::from_value(
                json!({"metadata": {"namespace": "ns", "name": name, "labels": {"app": name}},
                "spec": {"containers": []}, "status": {"podIP": ip}}),
            )
            .unwrap()
        };
        let pods = [pod("a", "10.42.1.2"), pod("b", "10.42.1.3")];
        let np = |spec: Value| -> NetworkPolicy {
            serde_json::from_value(
                json!({"metadata": {"namespace": "ns", "name": "p"}, "spec": spec}),
            )
            .unwrap()
        };
        let allow = np(json!({"podSelector": {"matchLabels": {"app": "b"}},
                              "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]}));
        let deny = np(json!({"podSelector": {"matchLabels": {"app": "a"}}}));
        let svc = [web(json!({"sessionAffinity": "ClientIP"}))];
        let eps = [slice("web", &[("10.42.1.5", "n1", true, true, false)])];
        let with = |p: &NetworkPolicy| {
            let rules = policy::rules(&net(), std::slice::from_ref(p), &pods, &BTreeMap::new());
            ruleset_with_policy(&net(), &svc, &eps, &rules)
        };
        let (a, b) = (with(&allow), with(&deny));
        assert!(
            a.body().contains("10.42.1.3 : jump pol-in-10.42.1.3")
                && a.body().contains("chain policy-forward {"),
            "{}",
            a.body()
        );
        let set = a
            .sets
            .iter()
            .find(|s| s.starts_with("pol-"))
            .expect("a peer set")
            .clone();
        let again = a.script(Some(&a));
        assert!(
            again.contains(&format!("flush set ip {t} {set}\n")),
            "{again}"
        );
        assert!(again.contains(&format!("flush map ip {t} pol-ingress\n")));
        assert!(!again
            .lines()
            .any(|l| l.starts_with("flush set") && l.contains(" aff-")));
        let next = b.script(Some(&a));
        assert!(
            next.contains(&format!("delete set ip {t} {set}\n")),
            "{next}"
        );
        assert!(next.contains(&format!("delete chain ip {t} pol-in-10.42.1.3\n")));
        assert!(next.contains("10.42.1.2 : jump pol-in-10.42.1.2"));
        assert_eq!(a, with(&allow), "the same inputs give the same rules");
    }

    #[test]
    fn addresses_read_from_ip_json() {
        let json = r#"[{"ifname":"fn1","addr_info":[
            {"family":"inet","local":"10.42.1.1","prefixlen":32},
            {"family":"inet","local":"10.43.0.10","prefixlen":32},
            {"family":"inet","local":"10.43.0.11","prefixlen":16},
            {"family":"inet6","local":"fe80::1","prefixlen":64},
            {"family":"inet","local":"10.44.0.3","prefixlen":32}]}]"#;
        let owned = owned_ranges(&net());
        let got = owned_addresses(json, &owned).unwrap();
        assert_eq!(
            got.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            ["10.43.0.10", "10.44.0.3"],
            "the gateway and non-/32s are not the proxy's"
        );
    }

    /// Watch events change [`Known`] only when what is kept changes: a
    /// pod's status or resourceVersion alone does not resync the proxy.
    #[test]
    fn events_change_known_only_when_what_is_kept_changes() {
        let ev = |kind: &str, obj: Value| ferry_api::object::ObjectEvent {
            kind: kind.into(),
            revision: 1,
            object: serde_json::to_vec(&obj).unwrap(),
        };
        let pod = |rv: &str, app: &str, ready: &str| {
            json!({"metadata": {"namespace": "ns", "name": "p", "resourceVersion": rv, "labels": {"app": app}},
                   "spec": {"containers": []},
                   "status": {"podIP": "10.42.1.5", "phase": "Running",
                              "conditions": [{"type": "Ready", "status": ready}]}})
        };
        let mut pods: BTreeMap<String, PolicyPod> = BTreeMap::new();
        let steps = [
            (ev("ADDED", pod("1", "a", "False")), true, "added"),
            (
                ev("MODIFIED", pod("2", "a", "True")),
                false,
                "readiness only",
            ),
            (ev("MODIFIED", pod("3", "b", "True")), true, "labels"),
            (ev("BOOKMARK", pod("4", "c", "True")), false, "bookmark"),
            (ev("DELETED", pod("5", "b", "True")), true, "deleted"),
            (ev("DELETED", pod("5", "b", "True")), false, "deleted again"),
        ];
        for (e, want, what) in steps {
            assert_eq!(
                crate::follow::apply_event(&mut pods, &e, "pods"),
                want,
                "{what}"
            );
        }
        assert!(pods.is_empty());
    }

    // ---- The real data path (root only) ----

    fn root_with_tools() -> Result<(), String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?");
        if uid != "0" {
            return Err(format!("not root (euid {uid})"));
        }
        for tool in ["nft", "ip"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(format!("{tool} is not installed"));
            }
        }
        Ok(())
    }

    /// Network namespaces the test made, deleted on drop (with everything
    /// in them: the table, the dummy interface, the veths).
    struct Netns(Vec<String>);

    impl Drop for Netns {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", n]).status();
            }
        }
    }

    fn sh(args: &[&str]) {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a thread inside network namespace `ns`.
    fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// What connecting to `to` gives: the peer address the server saw, or the error.
    fn ask(to: &str) -> std::result::Result<String, std::io::ErrorKind> {
        use std::io::Read;
        let addr: std::net::SocketAddr = to.parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
            .map_err(|e| e.kind())?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.kind())?;
        Ok(s)
    }

    /// A server answering every connection with the peer's IP, until `stop`.
    fn serve(ns: &str, addr: &str, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let path = format!("/run/netns/{ns}");
        let addr = addr.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = std::net::TcpListener::bind(&addr).unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        rx.recv().unwrap();
    }

    /// Applies rules for Services to a "host" namespace and connects through
    /// them to a server in a "pod" namespace: ClusterIP from the host and
    /// from the pod itself (hairpin), LoadBalancer IP, NodePort on the
    /// node's address and on 127.0.0.1, a Service without endpoints refused
    /// (though the host listens on its port), then removal and teardown.
    #[test]
    fn nftables_rules_carry_connections_as_root() {
        if let Err(why) = root_with_tools() {
            eprintln!("skipping the nftables test: {why}");
            return;
        }
        let pid = std::process::id();
        let (host, pod) = (format!("ferry-pt-h{pid}"), format!("ferry-pt-p{pid}"));
        let _ns = Netns(vec![host.clone(), pod.clone()]);
        sh(&["ip", "netns", "add", &host]);
        sh(&["ip", "netns", "add", &pod]);
        for (ns, cmd) in [
            (&host, "link set lo up"),
            (
                &host,
                &*format!("link add vh{pid} type veth peer name eth0 netns {pod}"),
            ),
            (&host, &*format!("addr add 10.250.5.1/24 dev vh{pid}")),
            (&host, &*format!("link set vh{pid} up")),
            (&pod, "link set lo up"),
            (&pod, "addr add 10.250.5.2/24 dev eth0"),
            (&pod, "link set eth0 up"),
            (&pod, "route add 10.251.0.0/16 via 10.250.5.1"),
            (&pod, "route add 10.252.0.0/24 via 10.250.5.1"),
        ] {
            let mut args = vec!["ip", "-n", ns];
            args.extend(cmd.split(' '));
            sh(&args);
        }
        for knob in ["ipv4/ip_forward", "ipv4/conf/all/route_localnet"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &host,
                "sh",
                "-c",
                &format!("echo 1 > /proc/sys/net/{knob}"),
            ]);
        }
        let net = NetInfo {
            mode: super::super::Mode::Namespaces,
            network: ferry_api::network::Network {
                cluster_cidr: "10.250.0.0/16".parse().unwrap(),
                service_cidr: "10.251.0.0/16".parse().unwrap(),
                load_balancer_pool: "10.252.0.0/24".parse().unwrap(),
                ..Default::default()
            },
            pod_cidr: "10.250.5.0/24".parse().unwrap(),
            node: format!("test-{pid}"),
            key: format!("test-{pid}"),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        serve(&pod, "0.0.0.0:8080", stop.clone());
        serve(&host, "0.0.0.0:80", stop.clone());

        let mut web = svc(
            "web",
            json!({"type": "LoadBalancer", "clusterIP": "10.251.0.10", "sessionAffinity": "ClientIP",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                             {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
        );
        web.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "10.252.0.3"}]}}))
                .unwrap(),
        );
        let empty = svc(
            "empty",
            json!({"clusterIP": "10.251.0.11", "ports": [{"name": "http", "port": 80}]}),
        );
        let mut sl = slice("web", &[("10.250.5.2", "elsewhere", true, true, false)]);
        sl.ports.as_mut().unwrap().push(
            serde_json::from_value(json!({"name": "dns", "port": 5353, "protocol": "UDP"}))
                .unwrap(),
        );
        let first = ruleset(&net, &[web.clone(), empty.clone()], &[sl.clone()]);
        let second = ruleset(&net, &[empty], &[sl]);
        let iface = node_iface(&net.key);
        let owned = owned_ranges(&net);
        {
            let (first, iface) = (first.clone(), iface.clone());
            in_ns(&host, move || {
                apply(&first.script(None)).unwrap();
                sync_addresses(&iface, first.addresses(), &owned).unwrap();
                // Applying the same again, incrementally, is accepted.
                apply(&first.script(Some(&first))).unwrap();
            });
        }
        let gw = "10.250.5.1".to_string();
        let host_asks = |to: &'static str| in_ns(&host, move || ask(to));
        assert_eq!(
            host_asks("10.251.0.10:80"),
            Ok(gw.clone()),
            "ClusterIP from the host, SNATed to the gateway"
        );
        assert_eq!(
            host_asks("10.252.0.3:80"),
            Ok(gw.clone()),
            "LoadBalancer IP"
        );
        assert_eq!(
            host_asks("10.250.5.1:30080"),
            Ok(gw.clone()),
            "NodePort on a node address"
        );
        assert_eq!(
            host_asks("127.0.0.1:30080"),
            Ok(gw.clone()),
            "NodePort on localhost"
        );
        assert_eq!(
            host_asks("10.251.0.11:80"),
            Err(std::io::ErrorKind::ConnectionRefused),
            "no endpoints: refused"
        );
        assert_eq!(
            host_asks("127.0.0.1:80"),
            Ok("127.0.0.1".into()),
            "the host's own listener on that port is there"
        );
        assert_eq!(
            in_ns(&pod, || ask("10.251.0.10:80")),
            Ok(gw.clone()),
            "a pod reaching itself through its Service (hairpin)"
        );

        // The Service goes: its address and rules go with it.
        {
            let (first, second, iface) = (first.clone(), second.clone(), iface.clone());
            in_ns(&host, move || {
                apply(&second.script(Some(&first))).unwrap();
                sync_addresses(&iface, second.addresses(), &owned).unwrap();
            });
        }
        let held = {
            let iface = iface.clone();
            in_ns(&host, move || {
                ip(&["-j", "addr", "show", "dev", &iface]).unwrap()
            })
        };
        assert_eq!(
            owned_addresses(&held, &owned).unwrap(),
            [Ipv4Addr::new(10, 251, 0, 11)].into()
        );
        let gone = host_asks("10.251.0.10:80");
        assert!(
            matches!(gone, Err(k) if k != std::io::ErrorKind::TimedOut && k != std::io::ErrorKind::WouldBlock),
            "a removed Service's address fails at once: {gone:?}"
        );
        assert_eq!(
            host_asks("127.0.0.1:30080"),
            Err(std::io::ErrorKind::ConnectionRefused),
            "its NodePort too"
        );

        let (tables, held) = in_ns(&host, move || {
            teardown(&net).unwrap();
            (
                ip(&["-j", "addr", "show", "dev", &iface]).unwrap(),
                Command::new("nft")
                    .args(["list", "tables"])
                    .output()
                    .unwrap()
                    .stdout,
            )
        });
        assert_eq!(
            owned_addresses(&tables, &owned).unwrap(),
            BTreeSet::new(),
            "addresses removed"
        );
        assert!(
            !String::from_utf8_lossy(&held).contains("ferry-"),
            "table removed"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// NetworkPolicies enforced in a throwaway "host" namespace with three
    /// "pod" namespaces (a, b, c) routed through it as the pod network does:
    /// a deny-all ingress policy on b blocks a and c; allowing
    /// `from: podSelector app=a` on one port lets a in on that port only,
    /// c stays out, and the node itself still reaches b; an egress policy on
    /// a lets it reach b's http port only, not the node.
    #[test]
    fn network_policies_block_and_allow_connections_as_root() {
        use super::super::policy::{self, NamespaceLabels, PolicyPod};
        if let Err(why) = root_with_tools() {
            eprintln!("skipping the NetworkPolicy test: {why}");
            return;
        }
        let pid = std::process::id();
        let host = format!("ferry-np-h{pid}");
        let pods = [
            ("a", "10.253.5.2"),
            ("b", "10.253.5.3"),
            ("c", "10.253.5.4"),
        ];
        let mut all = vec![host.clone()];
        all.extend(pods.iter().map(|(n, _)| format!("ferry-np-{n}{pid}")));
        let _ns = Netns(all.clone());
        for n in &all {
            sh(&["ip", "netns", "add", n]);
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &host,
            "addr",
            "add",
            "10.253.5.1/32",
            "dev",
            "lo",
        ]);
        for (i, (n, addr)) in pods.iter().enumerate() {
            let ns = &all[i + 1];
            let veth = format!("fp{n}{pid}");
            for cmd in [
                format!("link add {veth} type veth peer name eth0 netns {ns}"),
                format!("link set {veth} up"),
                format!("route add {addr}/32 dev {veth} src 10.253.5.1"),
            ] {
                let mut args = vec!["ip", "-n", &host];
                args.extend(cmd.split(' '));
                sh(&args);
            }
            for cmd in [
                format!("addr add {addr}/32 dev eth0"),
                "link set eth0 up".to_string(),
                "route add 10.253.5.1/32 dev eth0".to_string(),
                "route add 10.253.0.0/16 via 10.253.5.1 dev eth0".to_string(),
            ] {
                let mut args = vec!["ip", "-n", ns];
                args.extend(cmd.split(' '));
                sh(&args);
            }
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &host,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ]);
        let net = NetInfo {
            mode: super::super::Mode::Namespaces,
            network: ferry_api::network::Network {
                cluster_cidr: "10.253.0.0/16".parse().unwrap(),
                service_cidr: "10.254.0.0/16".parse().unwrap(),
                load_balancer_pool: "10.255.0.0/24".parse().unwrap(),
                ..Default::default()
            },
            pod_cidr: "10.253.5.0/24".parse().unwrap(),
            node: format!("np-{pid}"),
            key: format!("np-{pid}"),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        serve(&all[2], "0.0.0.0:8080", stop.clone());
        serve(&all[2], "0.0.0.0:9090", stop.clone());
        serve(&host, "10.253.5.1:7070", stop.clone());
        let known: Vec<PolicyPod> = pods
            .iter()
            .map(|(n, addr)| {
                serde_json::from_value(json!({
                    "metadata": {"namespace": "ns", "name": n, "labels": {"app": n}},
                    "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                    "status": {"podIP": addr, "phase": "Running"}}))
                .unwrap()
            })
            .collect();
        let namespaces: BTreeMap<String, NamespaceLabels> = [(
            "ns".to_string(),
            serde_json::from_value(json!({"metadata": {"name": "ns"}})).unwrap(),
        )]
        .into();
        let np = |name: &str, spec: Value| -> NetworkPolicy {
            serde_json::from_value(
                json!({"metadata": {"namespace": "ns", "name": name}, "spec": spec}),
            )
            .unwrap()
        };
        let table = |pols: &[NetworkPolicy]| {
            ruleset_with_policy(
                &net,
                &[],
                &[],
                &policy::rules(&net, pols, &known, &namespaces),
            )
        };
        let open = table(&[]);
        let deny = table(&[np(
            "deny",
            json!({"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}),
        )]);
        let allow_a = table(&[
            np(
                "deny",
                json!({"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}),
            ),
            np(
                "allow-a",
                json!({"podSelector": {"matchLabels": {"app": "b"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                                    "ports": [{"port": "http"}]}]}),
            ),
        ]);
        let apply_in = |script: String| in_ns(&host, move || apply(&script));
        let from = |i: usize, to: &'static str| in_ns(&all[i + 1], move || ask(to));
        let b = "10.253.5.3:8080";
        let b_other = "10.253.5.3:9090";
        let node = "10.253.5.1:7070";

        apply_in(open.script(None)).unwrap();
        assert_eq!(
            from(0, b),
            Ok("10.253.5.2".into()),
            "no policy: a reaches b"
        );
        assert_eq!(
            from(2, b),
            Ok("10.253.5.4".into()),
            "no policy: c reaches b"
        );

        apply_in(deny.script(Some(&open))).unwrap();
        assert!(from(0, b).is_err(), "deny-all: a is blocked");
        assert!(from(2, b).is_err(), "deny-all: c is blocked");
        assert_eq!(
            in_ns(&host, move || ask(b)),
            Ok("10.253.5.1".into()),
            "the node still reaches its pod"
        );

        apply_in(allow_a.script(Some(&deny))).unwrap();
        // Applying it again, incrementally (its sets flushed and refilled), is accepted.
        apply_in(allow_a.script(Some(&allow_a))).unwrap();
        assert_eq!(from(0, b), Ok("10.253.5.2".into()), "app=a allowed on http");
        assert!(from(0, b_other).is_err(), "a on another port: blocked");
        assert!(from(2, b).is_err(), "c still blocked");

        // Egress from a: only to app=b on http; the node (input hook) too is out.
        assert_eq!(from(0, node), Ok("10.253.5.2".into()), "a reaches the node");
        let egress = table(&[np(
            "a-out",
            json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                               "ports": [{"port": "http"}]}]}),
        )]);
        apply_in(egress.script(Some(&allow_a))).unwrap();
        assert_eq!(
            from(0, b),
            Ok("10.253.5.2".into()),
            "a to b on http: allowed"
        );
        assert!(from(0, b_other).is_err(), "a to b on another port: blocked");
        assert!(from(0, node).is_err(), "a to the node: blocked");
        assert_eq!(from(2, b), Ok("10.253.5.4".into()), "c is not isolated");

        // The policies go: everything is open again.
        apply_in(open.script(Some(&egress))).unwrap();
        assert_eq!(
            from(2, b),
            Ok("10.253.5.4".into()),
            "policy removed: c reaches b"
        );
        assert_eq!(
            from(0, node),
            Ok("10.253.5.2".into()),
            "a reaches the node again"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The loop in a throwaway namespace: it applies rules once the NetInfo
    /// and both lists are there, follows changes, and removes the table and
    /// addresses on stop.
    #[test]
    fn the_loop_applies_follows_and_cleans_up_as_root() {
        if let Err(why) = root_with_tools() {
            eprintln!("skipping the proxy loop test: {why}");
            return;
        }
        let host = format!("ferry-pt-l{}", std::process::id());
        let _ns = Netns(vec![host.clone()]);
        sh(&["ip", "netns", "add", &host]);
        let net = NetInfo {
            mode: super::super::Mode::Namespaces,
            network: ferry_api::network::Network {
                cluster_cidr: "10.250.0.0/16".parse().unwrap(),
                service_cidr: "10.251.0.0/16".parse().unwrap(),
                load_balancer_pool: "10.252.0.0/24".parse().unwrap(),
                ..Default::default()
            },
            pod_cidr: "10.250.5.0/24".parse().unwrap(),
            node: format!("loop-{}", std::process::id()),
            key: format!("loop-{}", std::process::id()),
        };
        let iface = node_iface(&net.key);
        let table = nft_table(&net.key);
        in_ns(&host, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (net_tx, net_rx) = tokio::sync::watch::channel(None);
                let (known_tx, known_rx) = tokio::sync::watch::channel(Known::default());
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(run(net_rx, known_rx, stop_rx));
                let owned = owned_ranges(&net);
                let state = || async {
                    tokio::time::sleep(DEBOUNCE * 5).await;
                    let table = Command::new("nft")
                        .args(["list", "table", "ip", &table])
                        .output()
                        .unwrap();
                    let addrs = ip(&["-j", "addr", "show", "dev", &iface])
                        .ok()
                        .map(|j| owned_addresses(&j, &owned).unwrap());
                    (String::from_utf8_lossy(&table.stdout).into_owned(), addrs)
                };
                known_tx.send_modify(|k| {
                    k.services
                        .insert("ns/web".into(), web(json!({"clusterIP": "10.251.0.10"})));
                    k.services_synced = true;
                    k.slices_synced = true;
                    k.policies_synced = true;
                    k.pods_synced = true;
                    k.namespaces_synced = true;
                });
                let (t, a) = state().await;
                assert!(
                    t.is_empty() && a.is_none(),
                    "nothing before the NetInfo: {t} {a:?}"
                );
                net_tx.send(Some(net.clone())).unwrap();
                let (t, a) = state().await;
                assert!(
                    t.contains("10.251.0.10 . tcp . 80 : goto reject-chain"),
                    "{t}"
                );
                assert_eq!(a, Some([Ipv4Addr::new(10, 251, 0, 10)].into()));
                known_tx.send_modify(|k| {
                    k.slices.insert(
                        "ns/web-x".into(),
                        slice("web", &[("10.250.5.2", "n", true, true, false)]),
                    );
                });
                let (t, _) = state().await;
                assert!(t.contains("dnat to 10.250.5.2:8080"), "{t}");
                known_tx.send_modify(|k| {
                    k.services.clear();
                });
                let (t, a) = state().await;
                assert!(
                    !t.contains("10.250.5.2") && t.contains("chain nat-prerouting"),
                    "{t}"
                );
                assert_eq!(
                    a,
                    Some(BTreeSet::new()),
                    "the address went with the Service"
                );
                stop_tx.send(true).unwrap();
                tokio::time::timeout(std::time::Duration::from_secs(5), task)
                    .await
                    .unwrap()
                    .unwrap();
                let (t, _) = state().await;
                assert!(t.is_empty(), "table removed on stop: {t}");
            });
        });
    }
}
