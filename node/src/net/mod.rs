//! The node's network: pod network namespaces and routes ([`podnet`]), the
//! Service proxy ([`proxy`]), and the names both use for what they create in
//! the host's network namespace, so several nodes on one machine never touch
//! each other's interfaces, routes or nftables tables.
//!
//! Design (the "host routes" model, as Calico's): every pod has its own
//! network namespace with `eth0`, one end of a veth pair whose host end has no
//! address and answers ARP for the pod's gateway `169.254.1.1` (proxy ARP).
//! The host routes each pod's address (`/32`) to its veth; a node's pod range
//! is reached through those routes on this machine (and through the node's
//! InternalIP from other machines). Pods get routes to the cluster, service
//! and LoadBalancer ranges only — no default route — so no pod packet can be
//! routed off the machine. The node's own interface ([`node_iface`], a dummy)
//! holds the node's gateway address (the second address of its pod range,
//! the source of host-to-pod traffic) and the Service addresses the proxy
//! answers for. `unreachable` routes for the cluster, service and
//! LoadBalancer ranges (metric [`route_metric`]) keep anything else local.
//!
//! Details settled by the implementation: where the kernel has no dummy
//! driver the node's interface is a veth whose peer ([`node_iface_peer`])
//! stays in the host; pods also hold a permanent neighbour entry for the
//! gateway (the host veth's fixed MAC), so they reach the host even where
//! proxy ARP finds no route to answer for. When the agent stops, the node's
//! network stays while any of its containers runs, and goes when none does
//! (see [`state`]); a node stopped with its pods leaves nothing behind.
//!
//! Layout: [`cmd`] (running `ip`, sysctls; errors naming the command),
//! [`routes`] (the machine's routes, clash check), [`ipam`] (pod addresses on
//! disk), [`podnet`] (the plans and their execution), [`state`] (the agent's
//! side), [`proxy`] (Services: nftables), [`userspace`] (Services in host
//! mode: a userspace proxy on the NodePorts).

pub mod cmd;
pub mod ingress;
pub mod ipam;
pub mod podnet;
pub mod policy;
pub mod proxy;
pub mod routes;
pub mod state;
pub mod userspace;

use ferry_api::network::{Cidr, Network};
use std::net::IpAddr;

/// The pod gateway every pod routes through (answered by proxy ARP on the
/// host end of its veth).
pub const POD_GATEWAY: &str = "169.254.1.1";

/// How pods of this node are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each pod in its own network namespace with its own address.
    Namespaces,
    /// Pods share the node's network (no privilege to make namespaces).
    Host,
}

impl Mode {
    /// As reported in the Node's `ferry.dev/pod-network` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Namespaces => "namespaces",
            Mode::Host => "host",
        }
    }
}

/// The Node annotation saying which [`Mode`] the node runs.
pub const MODE_ANNOTATION: &str = "ferry.dev/pod-network";

/// What the node's network is, once known.
#[derive(Debug, Clone)]
pub struct NetInfo {
    /// The mode.
    pub mode: Mode,
    /// The cluster network (from the `kube-system/ferry-network` ConfigMap).
    pub network: Network,
    /// This node's pod range (its Node's `spec.podCIDR`).
    pub pod_cidr: Cidr,
    /// The node's name.
    pub node: String,
    /// What names the node's objects on the machine ([`host_key`]).
    pub key: String,
}

impl NetInfo {
    /// The network of node `node` (its objects on the machine named by `key`,
    /// see [`host_key`]) with pod range `pod_cidr` (its Node's
    /// `spec.podCIDR`), which must lie in the cluster CIDR.
    pub fn new(
        mode: Mode,
        network: Network,
        pod_cidr: Cidr,
        node: &str,
        key: &str,
    ) -> Result<NetInfo, String> {
        let c = network.cluster_cidr;
        if pod_cidr.is_ipv4() != c.is_ipv4()
            || pod_cidr.prefix() < c.prefix()
            || !c.contains(pod_cidr.addr())
        {
            return Err(format!(
                "the Node's spec.podCIDR {pod_cidr} is not inside the cluster CIDR {c}"
            ));
        }
        if pod_cidr.size() < 4 {
            return Err(format!(
                "the Node's spec.podCIDR {pod_cidr} is too small (at least 4 addresses)"
            ));
        }
        Ok(NetInfo {
            mode,
            network,
            pod_cidr,
            node: node.to_string(),
            key: key.to_string(),
        })
    }

    /// The node's gateway address: the pod range's first host address, held
    /// by [`node_iface`]; host-to-pod traffic leaves from it.
    pub fn gateway(&self) -> IpAddr {
        self.pod_cidr
            .nth(1)
            .expect("a pod range of at least 4 addresses")
    }
}

/// What names a node's objects in the host namespace (interface, route
/// metric, nftables table): its cluster — the first 12 hex digits of its
/// CA certificate's SHA-256 — and its name, so nodes of one name in two
/// clusters on one machine never share them. Without a CA: the name alone.
pub fn host_key(ca_pem: Option<&str>, node: &str) -> String {
    match ca_pem.and_then(|c| ferry_api::tls::ca_hash(c).ok()) {
        Some(h) => format!("{}/{node}", &h[..12]),
        None => node.to_string(),
    }
}

/// [`host_key`] of the node whose data dir is `data_dir` (its `node.conf`
/// names the CA).
pub fn host_key_in(data_dir: &std::path::Path, node: &str) -> String {
    let conf = crate::join::load(data_dir).ok().flatten();
    host_key(conf.as_ref().map(|c| c.ca_cert.as_str()), node)
}

/// 32-bit FNV-1a: short stable names from long ones.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The node's dummy interface in the host namespace (`fn` + 8 hex digits of
/// the hash of the node's [`host_key`]; interface names are at most 15 bytes).
pub fn node_iface(key: &str) -> String {
    format!("fn{:08x}", fnv(key))
}

/// The veth peer of [`node_iface`], used only where the kernel has no dummy
/// interface driver (the peer stays in the host namespace, up, unused).
pub fn node_iface_peer(key: &str) -> String {
    format!("fm{:08x}", fnv(key))
}

/// The host end of a pod's veth (`fp` + 8 hex digits of the pod uid's hash).
pub fn pod_veth(uid: &str) -> String {
    format!("fp{:08x}", fnv(uid))
}

/// The pod's network namespace name (`ip netns`, under `/run/netns`).
pub fn netns_name(uid: &str) -> String {
    format!("ferry-{uid}")
}

/// The metric of a node's `unreachable` routes (by its [`host_key`]):
/// distinct per node, so nodes on one machine each add and remove their own.
pub fn route_metric(key: &str) -> u32 {
    METRIC_BASE + fnv(key) % (METRIC_END - METRIC_BASE)
}

/// The lowest metric of a node's `unreachable` routes.
pub const METRIC_BASE: u32 = 4000;
/// One past the highest.
pub const METRIC_END: u32 = 104_000;

/// The nftables table this node's proxy owns (`ip` family).
pub fn nft_table(key: &str) -> String {
    format!("ferry-{:08x}", fnv(key))
}

/// A node `n1` with range `10.42.1.0/24` in the default network (the
/// proxy's and policy's table tests).
#[cfg(test)]
pub(crate) fn test_net() -> NetInfo {
    NetInfo {
        mode: Mode::Namespaces,
        network: Network::default(),
        pod_cidr: "10.42.1.0/24".parse().expect("static"),
        node: "n1".into(),
        key: "n1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ() {
        for n in [
            node_iface("a-very-long-node-name.example"),
            pod_veth("0c5e…"),
        ] {
            assert!(n.len() <= 15, "{n}");
        }
        assert_ne!(node_iface("n0"), node_iface("n1"));
        assert_ne!(route_metric("n0"), route_metric("n1"));
        assert_eq!(node_iface("n0"), node_iface("n0"));
        for n in ["n0", "n1", "a-very-long-node-name.example"] {
            assert!((METRIC_BASE..METRIC_END).contains(&route_metric(n)));
            assert!(routes::is_ferry_iface(&node_iface(n)));
            assert!(routes::is_ferry_iface(&node_iface_peer(n)));
        }
        assert!(routes::is_ferry_iface(&pod_veth("0c5e")));
    }

    #[test]
    fn a_pod_range_must_lie_in_the_cluster_cidr() {
        let n = Network::default();
        for (range, want) in [
            ("10.42.3.0/24", Ok("10.42.3.1")),
            (
                "10.43.0.0/24",
                Err("is not inside the cluster CIDR 10.42.0.0/16"),
            ),
            ("10.0.0.0/8", Err("is not inside")),
            ("10.42.3.0/31", Err("too small")),
        ] {
            let got = NetInfo::new(
                Mode::Namespaces,
                n.clone(),
                range.parse().unwrap(),
                "n1",
                "n1",
            )
            .map(|i| i.gateway().to_string());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(e), Err(w)) => assert!(e.contains(w), "{range}: {e}"),
                (g, w) => panic!("{range}: got {g:?}, want {w:?}"),
            }
        }
    }
}
