//! The filter chain. As kube-scheduler, each node stops at its first failing
//! plugin, and that plugin may give several reasons (NodeResourcesFit names
//! every short resource). Order follows the default profile.

use super::{interpod, node_affinity, spread, NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use std::collections::BTreeMap;

/// NodeUnschedulable's reason.
pub(crate) const UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// The reason for a node whose Ready condition is not True.
pub(crate) const NOT_READY: &str = "node(s) were not ready";
/// NodeAffinity's reason (nodeSelector and required node affinity).
pub(crate) const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodePorts' reason.
pub(crate) const PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// NodeResourcesFit's reason when the node holds its maximum of pods.
pub(crate) const TOO_MANY_PODS: &str = "Too many pods";

/// The taint a cordoned node stands for.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// How many feasible nodes are looked for before filtering stops
/// (kube-scheduler's `numFeasibleNodesToFind` with the adaptive default of
/// `percentageOfNodesToScore`): every node of a cluster under 100 nodes; else
/// 50% less one point per 125 nodes, at least 5%, and at least 100 nodes.
pub(crate) fn nodes_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(5);
    (all * percent / 100).max(100)
}

/// What filtering found for one pod.
pub(crate) struct Found {
    /// Indexes of nodes the pod fits, at most [`nodes_to_find`] of them.
    pub(crate) fits: Vec<usize>,
    /// For the nodes it does not fit, how many gave each reason.
    pub(crate) reasons: BTreeMap<String, usize>,
    /// How many nodes were filtered (from `start`, wrapping round).
    pub(crate) processed: usize,
}

/// Filters the nodes for `pod` from index `start` round the cluster, until
/// [`nodes_to_find`] fit or every node was tried (as kube-scheduler, which
/// starts each pod where the last one stopped, so all nodes take turns).
pub(crate) fn feasible(pod: &PodInfo, cluster: &[NodeInfo], start: usize) -> Found {
    let spread = spread::FilterState::new(pod.pod, cluster);
    let interpod = interpod::FilterState::new(pod.pod, cluster);
    let want = nodes_to_find(cluster.len());
    let mut found = Found {
        fits: Vec::new(),
        reasons: BTreeMap::new(),
        processed: 0,
    };
    let n = cluster.len();
    for k in 0..n {
        if found.fits.len() >= want {
            break;
        }
        let i = (start + k) % n;
        found.processed += 1;
        let mut failed = run(pod, &cluster[i], &spread, &interpod);
        if failed.is_empty() {
            found.fits.push(i);
        }
        failed.sort();
        failed.dedup();
        for r in failed {
            *found.reasons.entry(r).or_insert(0) += 1;
        }
    }
    found
}

/// The reasons of the first failing filter for `node`; empty when it fits.
fn run(
    pod: &PodInfo,
    node: &NodeInfo,
    spread: &spread::FilterState,
    interpod: &interpod::FilterState,
) -> Vec<String> {
    let one = |r: Option<String>| r.into_iter().collect::<Vec<_>>();
    let checks: [&dyn Fn() -> Vec<String>; 8] = [
        &|| one(node_ready(&node.node)),
        &|| one(node_unschedulable(pod.pod, &node.node)),
        &|| one(taint_toleration(pod.pod, &node.node)),
        &|| one(node_affinity(pod.pod, &node.node)),
        &|| one(node_ports(pod.pod, node)),
        &|| resources_fit(pod, node),
        &|| one(spread.filter(node)),
        &|| one(interpod.filter(node)),
    ];
    checks
        .iter()
        .map(|c| c())
        .find(|r| !r.is_empty())
        .unwrap_or_default()
}

/// A node must report Ready=True.
pub(crate) fn node_ready(node: &Node) -> Option<String> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    (!ready).then(|| NOT_READY.to_string())
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating its taint.
pub(crate) fn node_unschedulable(pod: &Pod, node: &Node) -> Option<String> {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let taint = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    (cordoned && !tolerations(pod).iter().any(|t| tolerates(t, &taint)))
        .then(|| UNSCHEDULABLE.to_string())
}

/// TaintToleration: the first NoSchedule or NoExecute taint the pod does not
/// tolerate, in Kubernetes' wording.
pub(crate) fn taint_toleration(pod: &Pod, node: &Node) -> Option<String> {
    let tols = tolerations(pod);
    let taint = taints(node)
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .find(|t| !tols.iter().any(|tol| tolerates(tol, t)))?;
    Some(format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    ))
}

/// NodeAffinity: `nodeSelector` and the required node affinity.
pub(crate) fn node_affinity(pod: &Pod, node: &Node) -> Option<String> {
    (!node_affinity::required_matches(pod, node)).then(|| NODE_AFFINITY.to_string())
}

/// NodePorts: the pod's host ports must be free on the node.
pub(crate) fn node_ports(pod: &Pod, node: &NodeInfo) -> Option<String> {
    let wanted = host_ports(pod);
    if wanted.is_empty() {
        return None;
    }
    let clash = node
        .pods
        .iter()
        .flat_map(|p| host_ports(p))
        .any(|used| wanted.iter().any(|w| w.conflicts(&used)));
    clash.then(|| PORTS.to_string())
}

/// NodeResourcesFit: the pod count, then every requested resource against
/// what is left of the node's allocatable.
pub(crate) fn resources_fit(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let max_pods = node.allocatable.get("pods") / 1000;
    if i128::try_from(node.pods.len()).unwrap_or(i128::MAX) >= max_pods {
        reasons.push(TOO_MANY_PODS.to_string());
    }
    for (name, &want) in &pod.requests.0 {
        if name == "pods" || want <= 0 {
            continue;
        }
        let free = node
            .allocatable
            .get(name)
            .saturating_sub(node.requested.get(name));
        if want > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// A pod's tolerations.
pub(crate) fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// A node's taints.
pub(crate) fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// Kubernetes' `ToleratesTaint`: an empty effect or key matches any; an
/// empty operator means Equal.
pub(crate) fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let effect = tol.effect.as_deref().unwrap_or("");
    let key = tol.key.as_deref().unwrap_or("");
    if (!effect.is_empty() && effect != taint.effect) || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// One host port a pod holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    ip: String,
    protocol: String,
    port: i32,
}

impl HostPort {
    /// Same port and protocol, and the same address or a wildcard on either side.
    fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip == "0.0.0.0";
        self.port == other.port
            && self.protocol == other.protocol
            && (wildcard(&self.ip) || wildcard(&other.ip) || self.ip == other.ip)
    }
}

/// The host ports a pod's containers hold. With `hostNetwork` a container
/// port is a host port (API defaulting; redone for un-defaulted pods).
pub(crate) fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network == Some(true);
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten());
    ports
        .filter_map(|p| {
            let port = match p.host_port {
                Some(h) if h > 0 => h,
                _ if host_network => p.container_port,
                _ => return None,
            };
            let ip = p.host_ip.as_deref().filter(|ip| !ip.is_empty());
            Some(HostPort {
                ip: ip.unwrap_or("0.0.0.0").to_string(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{cluster, node, on, pod, pod_requesting};
    use serde_json::json;

    #[test]
    fn nodes_must_be_ready() {
        let cases = [
            (json!({}), None),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                Some(NOT_READY),
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
                Some(NOT_READY),
            ),
            (json!({"status": {"conditions": []}}), Some(NOT_READY)),
        ];
        for (patch, want) in cases {
            let got = node_ready(&node("n", patch.clone()));
            assert_eq!(got.as_deref(), want, "{patch}");
        }
    }

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let cordoned = node("n", json!({"spec": {"unschedulable": true}}));
        let tolerant = pod(
            "t",
            json!({"spec": {"tolerations": [
            {"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            node_unschedulable(&pod("p", json!({})), &cordoned).as_deref(),
            Some(UNSCHEDULABLE)
        );
        assert_eq!(node_unschedulable(&tolerant, &cordoned), None);
        assert_eq!(
            node_unschedulable(&pod("p", json!({})), &node("m", json!({}))),
            None
        );
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("infra".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let tol =
            |v: serde_json::Value| -> Toleration { serde_json::from_value(v).expect("toleration") };
        let cases = [
            (
                json!({"key": "dedicated", "value": "infra", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "infra"}),
                true,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "web"}),
                false,
            ),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (
                json!({"key": "dedicated", "value": "infra", "operator": "Lt"}),
                false,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(tolerates(&tol(t.clone()), &taint), want, "{t}");
        }
    }

    #[test]
    fn untolerated_taints_are_named_in_kubernetes_words() {
        let taints = |t: serde_json::Value| node("n", json!({"spec": {"taints": t}}));
        let plain = pod("p", json!({}));
        let cases = [
            (
                json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]),
                Some("node(s) had untolerated taint {dedicated: infra}"),
            ),
            (
                json!([{"key": "gpu", "effect": "NoExecute"}]),
                Some("node(s) had untolerated taint {gpu: }"),
            ),
            (json!([{"key": "soft", "effect": "PreferNoSchedule"}]), None),
            (
                json!([{"key": "soft", "effect": "PreferNoSchedule"}, {"key": "b", "value": "2", "effect": "NoSchedule"}]),
                Some("node(s) had untolerated taint {b: 2}"),
            ),
        ];
        for (t, want) in cases {
            assert_eq!(
                taint_toleration(&plain, &taints(t.clone())).as_deref(),
                want,
                "{t}"
            );
        }
        let tolerant = pod(
            "t",
            json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}),
        );
        let infra = taints(json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]));
        assert_eq!(taint_toleration(&tolerant, &infra), None);
    }

    #[test]
    fn node_selectors_filter_nodes() {
        let n = node("n", json!({"metadata": {"labels": {"disk": "ssd"}}}));
        let wants = |sel: serde_json::Value| pod("p", json!({"spec": {"nodeSelector": sel}}));
        assert_eq!(node_affinity(&wants(json!({"disk": "ssd"})), &n), None);
        assert_eq!(
            node_affinity(&wants(json!({"disk": "hdd"})), &n).as_deref(),
            Some(NODE_AFFINITY)
        );
        assert_eq!(
            node_affinity(&wants(json!({"zone": "a"})), &n).as_deref(),
            Some(NODE_AFFINITY)
        );
    }

    #[test]
    fn host_ports_clash_by_port_protocol_and_address() {
        let with_port = |name: &str, port: serde_json::Value| {
            pod(
                name,
                json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [port]}]}}),
            )
        };
        let used = with_port(
            "u",
            json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}),
        );
        let cases = [
            (json!({"containerPort": 80, "hostPort": 8080}), Some(PORTS)),
            (
                json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}),
                Some(PORTS),
            ),
            (
                json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}),
                None,
            ),
            (
                json!({"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}),
                None,
            ),
            (json!({"containerPort": 80, "hostPort": 8081}), None),
            (json!({"containerPort": 8080}), None),
        ];
        let c = cluster(&[node("n", json!({}))], &[on("n", &used)]);
        for (port, want) in cases {
            assert_eq!(
                node_ports(&with_port("p", port.clone()), &c[0]).as_deref(),
                want,
                "{port}"
            );
        }
        let host_net = pod(
            "h",
            json!({"spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 8080}]}]}}),
        );
        assert_eq!(
            node_ports(&host_net, &c[0]).as_deref(),
            Some(PORTS),
            "hostNetwork ports are host ports"
        );
    }

    #[test]
    fn resources_fit_names_every_short_resource() {
        let n = node(
            "n",
            json!({"status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "2", "example.com/gpu": "1"}}}),
        );
        let c = cluster(&[n], &[on("n", &pod_requesting("a", "1500m", "512Mi"))]);
        let fit = |p: &Pod| resources_fit(&PodInfo::new(p), &c[0]);
        assert!(fit(&pod_requesting("p", "500m", "512Mi")).is_empty());
        assert_eq!(
            fit(&pod_requesting("p", "501m", "512Mi")),
            ["Insufficient cpu"]
        );
        assert_eq!(
            fit(&pod_requesting("p", "1", "1Gi")),
            ["Insufficient cpu", "Insufficient memory"]
        );
        let gpu = pod(
            "g",
            json!({"spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"example.com/gpu": "2", "ephemeral-storage": "200Gi"}}}]}}),
        );
        assert_eq!(
            fit(&gpu),
            [
                "Insufficient ephemeral-storage",
                "Insufficient example.com/gpu"
            ]
        );
        let full = cluster(
            &[node("n", json!({"status": {"allocatable": {"pods": "1"}}}))],
            &[on("n", &pod("a", json!({})))],
        );
        assert_eq!(
            resources_fit(&PodInfo::new(&pod("p", json!({}))), &full[0]),
            [TOO_MANY_PODS]
        );
    }
}
