//! The pod network on a node (see [`super`] for the design): detecting the
//! [`Mode`], setting up the host namespace once the node knows its
//! [`NetInfo`], and each pod's namespace, veth, address and routes.
//!
//! What to do is planned by pure functions ([`host_plan`], [`pod_plan`], ...)
//! returning [`Step`]s, carried out by [`cmd::apply`]; every step is
//! idempotent (`replace`, or a tolerated "exists"), so a restarted agent
//! applies the same plans again and re-adopts what exists. A node's state
//! (address assignments) lives under `<data dir>/net`.

use super::cmd::{self, ip, sysctl, CmdError, Step, EXISTS, NO_DEVICE, NO_NETNS, NO_ROUTE};
use super::ipam::Ipam;
use super::{netns_name, node_iface, node_iface_peer, pod_veth, route_metric, Mode, NetInfo};
use super::{routes, POD_GATEWAY};
use ferry_api::network::Cidr;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The MAC address of every pod veth's host end (as Calico's): pods hold a
/// permanent neighbour entry for [`POD_GATEWAY`] with it, so they reach the
/// host even where proxy ARP would find no route to answer for.
pub const HOST_VETH_MAC: &str = "ee:ee:ee:ee:ee:ee";

/// The pod network's errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A command or sysctl failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The machine has routes in the cluster's ranges.
    #[error("the cluster network clashes with this machine's routes: {}; pods will not start until the routes are removed or ferry's [network] ranges are changed", .0.join("; "))]
    Clash(Vec<String>),
    /// No address for the pod.
    #[error("allocating the pod's address: {0}")]
    Ipam(String),
}

/// A pod's network as the runtime needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddr {
    /// The pod's address.
    pub ip: IpAddr,
    /// Its network namespace (`/run/netns/<name>`), which containers join.
    pub netns: PathBuf,
}

/// Where `ip netns` keeps the namespace of pod `uid`.
pub fn netns_path(uid: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(uid))
}

fn ipam(data_dir: &Path) -> Ipam {
    Ipam::new(data_dir.join("net").join("ips"))
}

/// The node's mode: [`Mode::Namespaces`] when this process is root and may
/// create a network namespace and a veth pair into it (tried once, removed
/// again), else [`Mode::Host`]. The string says why.
pub fn detect_mode(node: &str) -> (Mode, String) {
    if !nix::unistd::geteuid().is_root() {
        return (
            Mode::Host,
            "not running as root: pods share the node's network".into(),
        );
    }
    let tag = format!(
        "{:08x}",
        super::fnv(&format!("{node}/{}", std::process::id()))
    );
    let (ns, veth) = (format!("ferry-probe-{tag}"), format!("fq{tag}"));
    let tried = cmd::apply(&[
        ip(&["netns", "add", &ns], &[]),
        ip(
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
            &[],
        ),
    ]);
    let _ = cmd::apply(&[
        ip(&["link", "del", &veth], &[NO_DEVICE]),
        ip(&["netns", "del", &ns], &[NO_NETNS]),
    ]);
    match tried {
        Ok(()) => (
            Mode::Namespaces,
            "each pod gets its own network namespace and address".into(),
        ),
        Err(e) => (
            Mode::Host,
            format!("network namespaces are not available ({e}): pods share the node's network"),
        ),
    }
}

/// The ranges this node routes `unreachable` (cluster, service, LoadBalancer).
fn unreachable_ranges(info: &NetInfo) -> [Cidr; 3] {
    let n = &info.network;
    [n.cluster_cidr, n.service_cidr, n.load_balancer_pool]
}

/// Setting up the host namespace: the node's interface with the gateway
/// address, `unreachable` routes for the cluster's ranges, forwarding.
pub fn host_plan(info: &NetInfo) -> Vec<Step> {
    let iface = node_iface(&info.key);
    let metric = route_metric(&info.key).to_string();
    let gw = format!("{}/32", info.gateway());
    let mut plan = vec![
        Step::Iface {
            name: iface.clone(),
            peer: node_iface_peer(&info.key),
        },
        ip(&["link", "set", &iface, "up"], &[]),
        ip(
            &[
                "link",
                "set",
                &iface,
                "alias",
                &routes::owner_alias(&info.key, std::process::id()),
            ],
            &[],
        ),
        ip(&["addr", "replace", &gw, "dev", &iface], &[]),
    ];
    for r in unreachable_ranges(info) {
        let r = r.to_string();
        plan.push(ip(
            &["route", "replace", "unreachable", &r, "metric", &metric],
            &[],
        ));
    }
    plan.push(sysctl("net/ipv4/ip_forward", "1"));
    plan
}

/// Removing the host namespace's setup of the node with host key `key`: its `unreachable`
/// routes (`ranges`, as found on the machine) and its interface (with the
/// gateway and any Service addresses on it).
pub fn host_teardown_plan(key: &str, ranges: &[Cidr]) -> Vec<Step> {
    let metric = route_metric(key).to_string();
    let mut plan: Vec<Step> = ranges
        .iter()
        .map(|r| {
            ip(
                &[
                    "route",
                    "del",
                    "unreachable",
                    &r.to_string(),
                    "metric",
                    &metric,
                ],
                &[NO_ROUTE],
            )
        })
        .collect();
    plan.push(ip(&["link", "del", &node_iface(key)], &[NO_DEVICE]));
    plan
}

/// Setting up pod `uid` with address `pod_ip`: its namespace, the veth pair,
/// the pod side (loopback, `eth0` with `pod_ip/32`, the gateway and routes to
/// the cluster's ranges only) and the host side (proxy ARP, the `/32` route).
pub fn pod_plan(info: &NetInfo, uid: &str, pod_ip: IpAddr) -> Vec<Step> {
    let (ns, veth) = (netns_name(uid), pod_veth(uid));
    let (addr, host) = (format!("{pod_ip}/32"), format!("{pod_ip}/32"));
    let gw = info.gateway().to_string();
    let mut plan = vec![
        ip(&["netns", "add", &ns], &[EXISTS]),
        ip(
            &[
                "link",
                "add",
                &veth,
                "address",
                HOST_VETH_MAC,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
            &[EXISTS],
        ),
        ip(&["-n", &ns, "link", "set", "lo", "up"], &[]),
        ip(&["-n", &ns, "addr", "replace", &addr, "dev", "eth0"], &[]),
        ip(&["-n", &ns, "link", "set", "eth0", "up"], &[]),
        ip(&["link", "set", &veth, "up"], &[]),
        sysctl(&format!("net/ipv4/conf/{veth}/proxy_arp"), "1"),
        sysctl(&format!("net/ipv4/neigh/{veth}/proxy_delay"), "0"),
        ip(
            &[
                "-n",
                &ns,
                "route",
                "replace",
                POD_GATEWAY,
                "dev",
                "eth0",
                "scope",
                "link",
            ],
            &[],
        ),
        ip(
            &[
                "-n",
                &ns,
                "neigh",
                "replace",
                POD_GATEWAY,
                "lladdr",
                HOST_VETH_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
            &[],
        ),
    ];
    for r in unreachable_ranges(info) {
        let r = r.to_string();
        plan.push(ip(
            &[
                "-n",
                &ns,
                "route",
                "replace",
                &r,
                "via",
                POD_GATEWAY,
                "dev",
                "eth0",
            ],
            &[],
        ));
    }
    plan.push(ip(
        &["route", "replace", &host, "dev", &veth, "src", &gw],
        &[],
    ));
    plan
}

/// Removing pod `uid`'s network: the veth (which takes its peer and the
/// pod's `/32` route with it), then the namespace.
pub fn pod_teardown_plan(uid: &str) -> Vec<Step> {
    vec![
        ip(&["link", "del", &pod_veth(uid)], &[NO_DEVICE]),
        ip(&["netns", "del", &netns_name(uid)], &[NO_NETNS]),
    ]
}

/// A node's pod network once it knows its [`NetInfo`].
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// What the network is.
    pub info: NetInfo,
    data_dir: PathBuf,
}

impl PodNetwork {
    /// The network of the node whose data dir is `data_dir`.
    pub fn new(info: NetInfo, data_dir: &Path) -> PodNetwork {
        PodNetwork {
            info,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Checks the machine's routes for clashes, then sets up the host
    /// namespace ([`host_plan`]).
    pub fn setup_host(&self) -> Result<(), NetError> {
        let mut clash = routes::clashes(&routes::read_all()?, &self.info.network);
        let (foreign, stale) = routes::foreign_nodes(
            &routes::read_links()?,
            &self.info.key,
            &self.info.network,
            pid_alive,
        );
        for key in stale {
            // A cluster whose agent is gone left its node's host setup behind.
            tracing::warn!(node = %key, "removing a stopped ferry node's interface and routes");
            remove_host(&key)?;
        }
        clash.extend(foreign);
        if !clash.is_empty() {
            return Err(NetError::Clash(clash));
        }
        cmd::apply(&host_plan(&self.info))?;
        Ok(())
    }

    /// Gives pod `uid` its address (the one it holds, or a new one) and sets
    /// up its network ([`pod_plan`]); reuses whatever exists.
    pub fn ensure_pod(&self, uid: &str) -> Result<PodAddr, NetError> {
        let ip = ipam(&self.data_dir)
            .allocate(&self.info.pod_cidr, uid)
            .map_err(|e| NetError::Ipam(e.to_string()))?;
        cmd::apply(&pod_plan(&self.info, uid, ip))?;
        Ok(PodAddr {
            ip,
            netns: netns_path(uid),
        })
    }
}

/// Whether process `pid` exists (a zombie counts as gone).
fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Pod `uid`'s network as set up before (by this agent or an earlier one):
/// its recorded address, if its namespace still exists.
pub fn recorded(data_dir: &Path, uid: &str) -> Option<PodAddr> {
    let netns = netns_path(uid);
    if !netns.exists() {
        return None;
    }
    let ip = ipam(data_dir).lookup(uid)?;
    Some(PodAddr { ip, netns })
}

/// Removes pod `uid`'s network and frees its address.
pub fn remove_pod(data_dir: &Path, uid: &str) -> Result<(), NetError> {
    cmd::apply(&pod_teardown_plan(uid))?;
    ipam(data_dir).release(uid);
    Ok(())
}

/// Removes the networks of pods holding an address that `keep` refuses
/// (pods gone while no agent ran); returns their uids.
pub fn remove_unknown(data_dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut gone = Vec::new();
    for (_, uid) in ipam(data_dir).all() {
        if !keep(&uid) && !gone.contains(&uid) {
            if let Err(e) = remove_pod(data_dir, &uid) {
                tracing::warn!(pod = %uid, error = %e, "removing a stale pod network failed");
            }
            gone.push(uid);
        }
    }
    gone
}

/// Removes the setup of the host namespace of the node with [`super::host_key`] `key`: its `unreachable`
/// routes (found by its metric) and its interface.
pub fn remove_host(key: &str) -> Result<(), NetError> {
    let metric = route_metric(key);
    let ranges: Vec<Cidr> = routes::read_all()?
        .into_iter()
        .filter(|r| r.kind == "unreachable" && r.metric == metric && r.table == "main")
        .map(|r| r.dst)
        .collect();
    cmd::apply(&host_teardown_plan(key, &ranges))?;
    Ok(())
}

/// Removes everything the node with host key `key` (data dir `data_dir`) made in the host
/// namespace: every pod network it recorded, then [`remove_host`]. For a
/// node that stops with its pods (their processes must be gone).
pub fn teardown_node(data_dir: &Path, key: &str) -> Result<(), NetError> {
    let mut first = None;
    for uid in remove_unknown(data_dir, |_| false) {
        tracing::debug!(pod = %uid, "pod network removed");
    }
    if let Err(e) = remove_host(key) {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

/// The pod's `/etc/hosts`, as the kubelet writes it: localhost lines, the
/// pod's own address and host name (its FQDN first when it has a
/// `subdomain`), then `hostAliases`.
pub fn hosts_file(pod: &Value, pod_ip: &str, cluster_domain: &str) -> String {
    let s = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let host = s("/spec/hostname")
        .or(s("/metadata/name"))
        .unwrap_or("localhost");
    let host = &host[..host.len().min(63)];
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match (s("/spec/subdomain"), s("/metadata/namespace")) {
        (Some(sub), Some(ns)) => out.push_str(&format!(
            "{pod_ip}\t{host}.{sub}.{ns}.svc.{cluster_domain}\t{host}\n"
        )),
        _ => out.push_str(&format!("{pod_ip}\t{host}\n")),
    }
    let aliases = pod
        .pointer("/spec/hostAliases")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    if let Some(aliases) = aliases {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names: Vec<&str> = a["hostnames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let (Some(ip), false) = (a["ip"].as_str(), names.is_empty()) {
                out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
            }
        }
    }
    out
}

/// The files the pod network gives every container of a pod, written under
/// `pod_dir` and bind-mounted over the container's (`/etc/hosts`; cluster
/// DNS will add `/etc/resolv.conf` here). A container that mounts a volume
/// at one of these paths keeps its own.
pub fn pod_files(
    pod: &Value,
    pod_dir: &Path,
    pod_ip: &str,
    cluster_domain: &str,
    dns_ip: Option<std::net::Ipv4Addr>,
) -> std::io::Result<Vec<crate::volumes::Mount>> {
    let mut files = vec![(
        "/etc/hosts",
        "etc-hosts",
        hosts_file(pod, pod_ip, cluster_domain),
    )];
    // Cluster DNS, unless the pod's dnsPolicy keeps the node's own file.
    if let Some(conf) = dns_ip.and_then(|ip| crate::dns::resolv_conf(pod, ip, cluster_domain)) {
        files.push(("/etc/resolv.conf", "etc-resolv.conf", conf));
    }
    let mut out = Vec::new();
    for (target, name, content) in files {
        let source = pod_dir.join(name);
        // Written in place: a running container sees the mounted file itself.
        if std::fs::read_to_string(&source).ok().as_deref() != Some(content.as_str()) {
            std::fs::write(&source, &content)?;
        }
        out.push(crate::volumes::Mount {
            source,
            target: PathBuf::from(target),
            read_only: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "podnet_tests.rs"]
mod tests;
