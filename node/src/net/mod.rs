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

pub mod podnet;
pub mod proxy;

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
}

impl NetInfo {
    /// The node's gateway address: the pod range's first host address, held
    /// by [`node_iface`]; host-to-pod traffic leaves from it.
    pub fn gateway(&self) -> IpAddr {
        self.pod_cidr
            .nth(1)
            .expect("a pod range of at least 4 addresses")
    }
}

/// 32-bit FNV-1a: short stable names from long ones.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The node's dummy interface in the host namespace (`fn` + 8 hex digits of
/// the node name's hash; interface names are at most 15 bytes).
pub fn node_iface(node: &str) -> String {
    format!("fn{:08x}", fnv(node))
}

/// The host end of a pod's veth (`fp` + 8 hex digits of the pod uid's hash).
pub fn pod_veth(uid: &str) -> String {
    format!("fp{:08x}", fnv(uid))
}

/// The pod's network namespace name (`ip netns`, under `/run/netns`).
pub fn netns_name(uid: &str) -> String {
    format!("ferry-{uid}")
}

/// The metric of this node's `unreachable` routes: distinct per node, so
/// nodes on one machine each add and remove their own.
pub fn route_metric(node: &str) -> u32 {
    4000 + fnv(node) % 100_000
}

/// The nftables table this node's proxy owns (`ip` family).
pub fn nft_table(node: &str) -> String {
    format!("ferry-{:08x}", fnv(node))
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
    }
}
