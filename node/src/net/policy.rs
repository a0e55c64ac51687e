//! NetworkPolicy enforcement: nftables chains and sets in the node's proxy
//! table ([`super::proxy`]) from the policies, pods and namespaces it knows.
//!
//! [`rules`] (pure) isolates this node's pods (addresses in its pod range):
//! a pod selected by a policy with `Ingress` in its `policyTypes` gets a
//! chain `pol-in-<ip>` that returns for traffic some ingress rule allows and
//! drops the rest; `Egress` likewise with `pol-out-<ip>`. The base chains
//! accept replies first (`ct state established,related`), then jump through
//! the verdict maps `pol-egress` (by source) and `pol-ingress` (by
//! destination):
//! - `policy-forward` (forward hook): pod traffic is routed through the host,
//!   and after prerouting's DNAT, so a Service's traffic is checked against
//!   the endpoint pod it went to, as in Kubernetes.
//! - `policy-input` (input hook): this node's pods reaching the node (the
//!   cluster DNS on the gateway included: as in Kubernetes it is not allowed
//!   implicitly under an egress policy).
//!
//! The node's own traffic to its pods (output hook: probes) is not checked.
//! Peers become interval sets of addresses (`pol-<hash>-<in|out><rule>`):
//! selected pods' IPs and `ipBlock`s minus their `except`s. Named ports
//! resolve against the destination pod's container ports.

use super::NetInfo;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The verdict maps the policy chains use (flushed on every sync).
pub const MAPS: [&str; 2] = ["pol-ingress", "pol-egress"];

/// What policy evaluation keeps of a Pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(from = "Pod")]
pub struct PolicyPod {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `status.podIP` (IPv4), unset for host-network and finished pods.
    pub ip: Option<Ipv4Addr>,
    /// Named container ports: name, protocol, number.
    pub ports: Vec<(String, String, u16)>,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// Container ports published on the node: protocol, `hostPort`, `containerPort`.
    pub host_ports: Vec<(String, u16, u16)>,
}

impl From<Pod> for PolicyPod {
    fn from(p: Pod) -> PolicyPod {
        let spec = p.spec.unwrap_or_default();
        let status = p.status.unwrap_or_default();
        let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let ip = status
            .pod_ip
            .as_deref()
            .and_then(|a| a.parse().ok())
            .filter(|_| !finished && spec.host_network != Some(true));
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|cp| {
                Some((
                    cp.name.clone().filter(|n| !n.is_empty())?,
                    cp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    u16::try_from(cp.container_port).ok()?,
                ))
            })
            .collect();
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|cp| {
                Some((
                    cp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    u16::try_from(cp.host_port?).ok().filter(|p| *p > 0)?,
                    u16::try_from(cp.container_port).ok()?,
                ))
            })
            .collect();
        PolicyPod {
            node: spec.node_name.clone(),
            host_ports,
            namespace: p.metadata.namespace.unwrap_or_default(),
            name: p.metadata.name.unwrap_or_default(),
            labels: p.metadata.labels.unwrap_or_default(),
            ip,
            ports,
        }
    }
}

/// What policy evaluation keeps of a Namespace: its labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(from = "Namespace")]
pub struct NamespaceLabels(pub BTreeMap<String, String>);

impl From<Namespace> for NamespaceLabels {
    fn from(n: Namespace) -> NamespaceLabels {
        let mut l = n.metadata.labels.unwrap_or_default();
        // Kubernetes sets it on every namespace; older objects may lack it.
        if let Some(name) = n.metadata.name {
            l.entry("kubernetes.io/metadata.name".into())
                .or_insert(name);
        }
        NamespaceLabels(l)
    }
}

/// The policy part of the node's table: chains and sets by name (bodies
/// as the proxy writes them inside `chain NAME { ... }` / `set NAME { ... }`)
/// and the verdict maps' elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Chains by name.
    pub chains: BTreeMap<String, String>,
    /// Address sets by name.
    pub sets: BTreeMap<String, String>,
    /// `pol-ingress` elements: pod address to `jump pol-in-<ip>`.
    pub ingress: BTreeMap<Ipv4Addr, String>,
    /// `pol-egress` elements: pod address to `jump pol-out-<ip>`.
    pub egress: BTreeMap<Ipv4Addr, String>,
    /// This node's pods' `hostPort`s (protocol, host port, pod address,
    /// container port), which the proxy's table publishes on the node's
    /// addresses (the kubelet's hostport mapping).
    pub host_ports: Vec<(String, u16, Ipv4Addr, u16)>,
}

impl Rules {
    /// The two verdict maps and the two base chains, for the table body.
    pub fn fixed(&self) -> (String, [(&'static str, String); 2]) {
        let mut maps = String::new();
        for (name, elems) in [("pol-ingress", &self.ingress), ("pol-egress", &self.egress)] {
            let _ = writeln!(maps, "map {name} {{\ntype ipv4_addr : verdict;");
            if !elems.is_empty() {
                let e: Vec<String> = elems.iter().map(|(k, v)| format!("{k} : {v}")).collect();
                let _ = writeln!(maps, "elements = {{ {} }}", e.join(", "));
            }
            maps.push_str("}\n");
        }
        let chains = [
            (
                "policy-forward",
                "type filter hook forward priority 0; policy accept;\n\
                 ct state established,related accept\n\
                 ip saddr vmap @pol-egress\n\
                 ip daddr vmap @pol-ingress\n"
                    .to_string(),
            ),
            (
                "policy-input",
                "type filter hook input priority 0; policy accept;\n\
                 ct state established,related accept\n\
                 iifname \"fp*\" ip saddr vmap @pol-egress\n"
                    .to_string(),
            ),
        ];
        (maps, chains)
    }
}

/// Whether `sel` selects `labels` (an invalid selector selects nothing).
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && sel.match_expressions.iter().flatten().all(|r| {
            let vals = r.values.as_deref().unwrap_or_default();
            let have = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => have.is_some_and(|h| vals.contains(h)),
                "NotIn" => have.is_none_or(|h| !vals.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

/// Address intervals `[lo, hi]`, sorted and merged.
type Ranges = Vec<(u32, u32)>;

fn merge(mut r: Ranges) -> Ranges {
    r.sort_unstable();
    let mut out: Ranges = Vec::new();
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `cidr` as an interval (host bits ignored, as Kubernetes parses it).
fn interval(cidr: &str) -> Option<(u32, u32)> {
    let (a, p) = cidr.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u32 = p.parse().ok().filter(|p| *p <= 32)?;
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    let lo = u32::from(a) & mask;
    Some((lo, lo | !mask))
}

/// `a` minus `b`.
fn subtract(a: &Ranges, b: &Ranges) -> Ranges {
    let mut out = Vec::new();
    for &(mut lo, hi) in a {
        let mut done = false;
        for &(blo, bhi) in b {
            if done || bhi < lo || blo > hi {
                continue;
            }
            if blo > lo {
                out.push((lo, blo - 1));
            }
            if bhi >= hi {
                done = true;
            } else {
                lo = bhi + 1;
            }
        }
        if !done {
            out.push((lo, hi));
        }
    }
    out
}

fn contains(r: &Ranges, ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    r.iter().any(|&(lo, hi)| lo <= ip && ip <= hi)
}

/// The addresses one peer names (IPv4; an IPv6 ipBlock names none).
fn peer_ranges(
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    pods: &[PolicyPod],
    namespaces: &BTreeMap<String, NamespaceLabels>,
) -> Ranges {
    if let Some(b) = &peer.ip_block {
        let Some(whole) = interval(&b.cidr) else {
            return Vec::new();
        };
        let except = merge(
            b.except
                .iter()
                .flatten()
                .filter_map(|e| interval(e))
                .collect(),
        );
        return subtract(&[whole].to_vec(), &except);
    }
    let ns_ok = |ns: &str| match &peer.namespace_selector {
        None => ns == policy_ns,
        Some(sel) => namespaces.get(ns).is_some_and(|l| selects(sel, &l.0)),
    };
    let everything = LabelSelector::default();
    let pod_sel = peer.pod_selector.as_ref().unwrap_or(&everything);
    merge(
        pods.iter()
            .filter(|p| ns_ok(&p.namespace) && selects(pod_sel, &p.labels))
            .filter_map(|p| p.ip)
            .map(|ip| (u32::from(ip), u32::from(ip)))
            .collect(),
    )
}

/// One port entry as nft match text, resolved for destination `dest`;
/// `None` when a named port does not resolve there.
fn port_match(p: &NetworkPolicyPort, dest: &PolicyPod) -> Option<String> {
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    let l4 = proto.to_ascii_lowercase();
    match &p.port {
        None => Some(format!("meta l4proto {l4}")),
        Some(IntOrString::Int(n)) => match p.end_port.filter(|e| e > n) {
            Some(e) => Some(format!("meta l4proto {l4} th dport {n}-{e}")),
            None => Some(format!("meta l4proto {l4} th dport {n}")),
        },
        Some(IntOrString::String(name)) => dest
            .ports
            .iter()
            .find(|(n, pr, _)| n == name && pr == proto)
            .map(|(_, _, num)| format!("meta l4proto {l4} th dport {num}")),
    }
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn set_body(r: &Ranges) -> String {
    let e: Vec<String> = r
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                Ipv4Addr::from(lo).to_string()
            } else {
                format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi))
            }
        })
        .collect();
    format!(
        "type ipv4_addr; flags interval;\nelements = {{ {} }}\n",
        e.join(", ")
    )
}

/// Whether a policy applies to ingress and egress (`policyTypes`, or when
/// unset Ingress always and Egress when it has egress rules).
fn types(np: &NetworkPolicy) -> (bool, bool) {
    let Some(s) = &np.spec else {
        return (false, false);
    };
    match s.policy_types.as_deref() {
        Some(t) if !t.is_empty() => (
            t.iter().any(|t| t == "Ingress"),
            t.iter().any(|t| t == "Egress"),
        ),
        _ => (true, s.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// The chains, sets and map elements enforcing `policies` for the pods of
/// `net`'s node (those whose address is in its pod range), given every pod
/// and namespace known.
pub fn rules(
    net: &NetInfo,
    policies: &[NetworkPolicy],
    pods: &[PolicyPod],
    namespaces: &BTreeMap<String, NamespaceLabels>,
) -> Rules {
    let mut out = Rules::default();
    let local = |p: &&PolicyPod| p.ip.is_some_and(|ip| net.pod_cidr.contains(IpAddr::V4(ip)));
    let local_pods: Vec<&PolicyPod> = pods.iter().filter(local).collect();
    // Per local pod and direction: its chain's lines (None: not isolated).
    let mut ing: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
    let mut egr: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
    let mut sorted: Vec<&NetworkPolicy> = policies.iter().collect();
    sorted.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    for np in sorted {
        let Some(spec) = &np.spec else { continue };
        let ns = np.metadata.namespace.as_deref().unwrap_or("default");
        let name = np.metadata.name.as_deref().unwrap_or_default();
        let (do_in, do_out) = types(np);
        // An unset podSelector, as an empty one, selects every pod.
        let all = LabelSelector::default();
        let pod_sel = spec.pod_selector.as_ref().unwrap_or(&all);
        let selected: Vec<&PolicyPod> = local_pods
            .iter()
            .copied()
            .filter(|p| p.namespace == ns && selects(pod_sel, &p.labels))
            .collect();
        if selected.is_empty() {
            continue;
        }
        let tag = format!("{:08x}", fnv(&format!("{ns}/{name}")));
        // The peers' addresses of one rule: None for any address.
        let mut peers = |peers: Option<&Vec<NetworkPolicyPeer>>, set: String| {
            let list = peers.filter(|l| !l.is_empty())?;
            let r = merge(
                list.iter()
                    .flat_map(|p| peer_ranges(p, ns, pods, namespaces))
                    .collect(),
            );
            if !r.is_empty() {
                out.sets.insert(set.clone(), set_body(&r));
            }
            Some((set, r))
        };
        if do_in {
            for p in &selected {
                ing.entry(p.ip.expect("local")).or_default();
            }
            for (i, rule) in spec.ingress.iter().flatten().enumerate() {
                let from = peers(rule.from.as_ref(), format!("pol-{tag}-in{i}"));
                if from.as_ref().is_some_and(|(_, r)| r.is_empty()) {
                    continue; // names no address: allows nothing
                }
                let src = from.map(|(s, _)| format!("ip saddr @{s} "));
                let src = src.as_deref().unwrap_or_default();
                for p in &selected {
                    let lines = ing.entry(p.ip.expect("local")).or_default();
                    match rule.ports.as_deref().filter(|l| !l.is_empty()) {
                        None => {
                            lines.insert(format!("{src}return"));
                        }
                        Some(ports) => {
                            for m in ports.iter().filter_map(|pp| port_match(pp, p)) {
                                lines.insert(format!("{src}{m} return"));
                            }
                        }
                    }
                }
            }
        }
        if do_out {
            for p in &selected {
                egr.entry(p.ip.expect("local")).or_default();
            }
            for (i, rule) in spec.egress.iter().flatten().enumerate() {
                let to = peers(rule.to.as_ref(), format!("pol-{tag}-out{i}"));
                if to.as_ref().is_some_and(|(_, r)| r.is_empty()) {
                    continue;
                }
                let dst = to.as_ref().map(|(s, _)| format!("ip daddr @{s} "));
                let dst = dst.as_deref().unwrap_or_default();
                let mut rule_lines = BTreeSet::new();
                for pp in rule.ports.iter().flatten() {
                    if matches!(pp.port, Some(IntOrString::String(_))) {
                        // Named: per destination pod that has it.
                        for d in pods {
                            let Some(ip) = d.ip else { continue };
                            if to.as_ref().is_some_and(|(_, r)| !contains(r, ip)) {
                                continue;
                            }
                            if let Some(m) = port_match(pp, d) {
                                rule_lines.insert(format!("ip daddr {ip} {m} return"));
                            }
                        }
                    } else if let Some(m) = port_match(pp, &PolicyPod::default()) {
                        rule_lines.insert(format!("{dst}{m} return"));
                    }
                }
                if rule.ports.as_ref().is_none_or(Vec::is_empty) {
                    rule_lines.insert(format!("{dst}return"));
                }
                for p in &selected {
                    egr.entry(p.ip.expect("local"))
                        .or_default()
                        .extend(rule_lines.iter().cloned());
                }
            }
        }
    }
    for (dir, map, chains) in [
        ("in", &ing, &mut out.ingress),
        ("out", &egr, &mut out.egress),
    ] {
        for (ip, lines) in map {
            let chain = format!("pol-{dir}-{ip}");
            let mut body = String::new();
            for l in lines {
                body.push_str(l);
                body.push('\n');
            }
            body.push_str("drop\n");
            out.chains.insert(chain.clone(), body);
            chains.insert(*ip, format!("jump {chain}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
