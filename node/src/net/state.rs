//! The node agent's view of its pod network: the [`Mode`] found at start,
//! learning the [`NetInfo`] (the `kube-system/ferry-network` ConfigMap and the
//! Node's `spec.podCIDR`, polled until both are there), setting up the host,
//! and each pod's [`pods::Network`].
//!
//! Lifetime: a pod's network lives as long as the pod on this node. When the
//! agent stops, the node's network (its interface, `unreachable` routes and
//! pod namespaces) stays while any of its containers still runs — they keep
//! their addresses and the machine keeps its "no cluster packet leaves"
//! routes, and a restarted agent re-adopts it all — and is removed entirely
//! when none runs. Stopping a node together with its pods (`ferry up`'s
//! Ctrl-C: the agent, then its containers) ends with [`podnet::teardown_node`],
//! so a stopped node leaves no routes, interfaces or namespaces behind.

use super::podnet::{self, NetError, PodNetwork};
use super::{Mode, NetInfo};
use crate::node::NetworkReport;
use crate::objects::Objects;
use crate::pods::{self, PodWorker};
use ferry_api::network::{Network, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often a missing ConfigMap or podCIDR is looked for again.
const POLL: Duration = Duration::from_secs(1);
/// How often a failed host setup (a route clash) is tried again.
const RETRY: Duration = Duration::from_secs(10);

/// Where the node's network stands.
#[derive(Debug, Clone)]
pub enum State {
    /// Pods share the node's network.
    Host,
    /// Not known yet, or not set up: the Node condition's reason and message.
    Pending(String, String),
    /// Set up: pods get their own networks.
    Ready(PodNetwork),
}

/// The node's pod network, as the agent drives it.
pub struct NodeNetwork {
    /// The mode found at start.
    pub mode: Mode,
    /// Why that mode.
    pub why: String,
    /// Where it stands.
    pub state: State,
    node: String,
    /// What names the node's objects on the machine ([`super::host_key`]).
    key: String,
    data_dir: PathBuf,
    next_try: Instant,
    /// Pods whose network this agent has set up (or re-applied).
    applied: HashSet<String>,
}

impl NodeNetwork {
    /// Detects the mode (`force_host`: use [`Mode::Host`] without trying).
    pub fn detect(node: &str, data_dir: &std::path::Path, force_host: bool) -> NodeNetwork {
        let (mode, why) = if force_host {
            (
                Mode::Host,
                "--pod-network host: pods share the node's network".to_string(),
            )
        } else {
            podnet::detect_mode(node)
        };
        let state = match mode {
            Mode::Host => State::Host,
            Mode::Namespaces => State::Pending(
                "NoNetworkConfig".into(),
                "waiting for the cluster network and this node's pod range".into(),
            ),
        };
        NodeNetwork {
            mode,
            why,
            state,
            node: node.to_string(),
            key: super::host_key_in(data_dir, node),
            data_dir: data_dir.to_path_buf(),
            next_try: Instant::now(),
            applied: HashSet::new(),
        }
    }

    /// What the Node reports.
    pub fn report(&self) -> NetworkReport {
        let (ready, reason, message) = match &self.state {
            // Said where users look: nothing of a NetworkPolicy is enforced here.
            State::Host => (
                true,
                "HostNetwork".to_string(),
                format!(
                    "{}; NetworkPolicies are not enforced on this node",
                    self.why
                ),
            ),
            State::Ready(n) => (
                true,
                "PodNetworkReady".to_string(),
                format!(
                    "pods get addresses from {} on interface {}",
                    n.info.pod_cidr,
                    super::node_iface(&self.key)
                ),
            ),
            State::Pending(r, m) => (false, r.clone(), m.clone()),
        };
        NetworkReport {
            mode: self.mode.as_str().to_string(),
            ready,
            reason,
            message,
        }
    }

    /// The network info, once set up.
    pub fn info(&self) -> Option<&NetInfo> {
        match &self.state {
            State::Ready(n) => Some(&n.info),
            _ => None,
        }
    }

    /// Moves towards [`State::Ready`]: reads what is missing, sets up the
    /// host. Returns whether the state changed (the Node status is then due).
    pub async fn advance(&mut self, api: &Objects) -> bool {
        if !matches!(self.state, State::Pending(..)) || Instant::now() < self.next_try {
            return false;
        }
        let next = match self.try_ready(api).await {
            Ok(n) => State::Ready(n),
            Err((reason, msg, wait)) => {
                self.next_try = Instant::now() + wait;
                State::Pending(reason, msg)
            }
        };
        let changed = match (&self.state, &next) {
            (State::Pending(a, b), State::Pending(c, d)) => (a, b) != (c, d),
            _ => true,
        };
        if changed {
            match &next {
                State::Ready(n) => tracing::info!(
                    pod_cidr = %n.info.pod_cidr, gateway = %n.info.gateway(),
                    iface = %super::node_iface(&self.key), "pod network ready"),
                State::Pending(r, m) if r == "RouteClash" || r == "SetupFailed" => {
                    tracing::error!(reason = %r, "pods cannot start: {m}")
                }
                State::Pending(_, m) => tracing::info!("pod network not ready: {m}"),
                State::Host => {}
            }
        }
        if let State::Ready(_) = &next {
            // Networks of pods that went away while no agent ran.
            let pods_dir = self.data_dir.join("pods");
            for uid in podnet::remove_unknown(&self.data_dir, |u| pods_dir.join(u).exists()) {
                tracing::info!(pod = %uid, "removed the network of a pod that is gone");
            }
        }
        self.state = next;
        changed
    }

    async fn try_ready(&self, api: &Objects) -> Result<PodNetwork, (String, String, Duration)> {
        let pending = |r: &str, m: String| (r.to_string(), m, POLL);
        let cm = api
            .get("configmaps", Some(CONFIGMAP_NAMESPACE), CONFIGMAP_NAME)
            .await
            .map_err(|e| pending("NoNetworkConfig", format!("reading ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {e}")))?
            .ok_or_else(|| pending("NoNetworkConfig", format!(
                "waiting for ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} (the cluster network, published by the leader)"
            )))?;
        let data = serde_json::from_value(cm["data"].clone()).unwrap_or_default();
        let network = Network::from_data(&data).map_err(|e| pending("BadNetworkConfig", e))?;
        let node = api
            .get("nodes", None, &self.node)
            .await
            .map_err(|e| pending("NoPodCIDR", format!("reading the Node: {e}")))?
            .unwrap_or_default();
        let cidr = node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                pending(
                    "NoPodCIDR",
                    "waiting for the Node's spec.podCIDR (set by the node IPAM controller)".into(),
                )
            })?;
        let cidr = cidr
            .parse()
            .map_err(|e| pending("BadPodCIDR", format!("the Node's spec.podCIDR: {e}")))?;
        let info = NetInfo::new(self.mode, network, cidr, &self.node, &self.key)
            .map_err(|e| pending("BadPodCIDR", e))?;
        let net = PodNetwork::new(info, &self.data_dir);
        match net.setup_host() {
            Ok(()) => Ok(net),
            Err(e @ NetError::Clash(_)) => Err(("RouteClash".into(), e.to_string(), RETRY)),
            Err(e) => Err((
                "SetupFailed".into(),
                format!("setting up the host: {e}"),
                RETRY,
            )),
        }
    }

    /// The network pod `w` gets now (setting it up when the node's network
    /// is ready), with `host_ip` the node's address.
    pub fn for_pod(&mut self, w: &mut PodWorker, host_ip: &str) -> pods::Network {
        let pod = &w.pod;
        if self.mode == Mode::Host || pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
            return pods::Network::host(host_ip);
        }
        let mut net = pods::Network {
            host_ip: host_ip.to_string(),
            ..pods::Network::default()
        };
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if w.net.is_none() && matches!(phase, Some("Succeeded" | "Failed")) {
            // Finished: no network to make; keep reporting the address it had.
            net.pod_ip = pod
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .map(str::to_string);
            return net;
        }
        if w.net.is_none() {
            w.net = podnet::recorded(&self.data_dir, &w.uid);
        }
        match &self.state {
            State::Ready(n) if !self.applied.contains(&w.uid) => match n.ensure_pod(&w.uid) {
                Ok(a) => {
                    if w.net.as_ref() != Some(&a) {
                        tracing::info!(pod = %w.uid, ip = %a.ip, "pod network set up");
                    }
                    w.net = Some(a);
                    self.applied.insert(w.uid.clone());
                }
                Err(e) => {
                    net.pending = Some(e.to_string());
                    return net;
                }
            },
            State::Ready(_) => {}
            State::Pending(_, m) if w.net.is_none() => {
                net.pending = Some(m.clone());
                return net;
            }
            // Set up by an earlier agent: usable while the host is pending.
            State::Pending(..) | State::Host => {}
        }
        if let Some(a) = &w.net {
            net.pod_ip = Some(a.ip.to_string());
            net.netns = Some(a.netns.clone());
        }
        let network = self.info().map(|i| i.network.clone()).unwrap_or_default();
        net.dns_ip = match network.dns_service_ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        };
        net.cluster_domain = Some(network.cluster_domain);
        net
    }

    /// Pod `uid` is gone from this node: remove its network.
    pub fn pod_removed(&mut self, uid: &str) {
        self.applied.remove(uid);
        if self.mode == Mode::Namespaces {
            if let Err(e) = podnet::remove_pod(&self.data_dir, uid) {
                tracing::warn!(pod = %uid, error = %e, "removing the pod's network failed");
            }
        }
    }

    /// The agent stops with `live` containers still running (see the module
    /// doc): with none, the node's network is removed.
    pub fn shutdown(&self, live: usize) {
        if self.mode != Mode::Namespaces {
            return;
        }
        if live > 0 {
            tracing::info!(
                live,
                "containers keep running: the node's pod network stays for them"
            );
            return;
        }
        match podnet::teardown_node(&self.data_dir, &self.key) {
            Ok(()) => tracing::info!("pod network removed"),
            Err(e) => tracing::warn!(error = %e, "removing the pod network failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_mode_node_says_network_policies_are_not_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let n = NodeNetwork::detect("n1", dir.path(), true);
        let r = n.report();
        assert_eq!(
            (r.mode.as_str(), r.ready, r.reason.as_str()),
            ("host", true, "HostNetwork")
        );
        assert!(
            r.message
                .contains("NetworkPolicies are not enforced on this node"),
            "{}",
            r.message
        );
    }
}
