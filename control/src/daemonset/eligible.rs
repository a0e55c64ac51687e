//! Which nodes a DaemonSet runs on: Kubernetes' `NodeShouldRunDaemonPod`
//! (nodeSelector, required node affinity, taints against the tolerations
//! every daemon pod gets), and how a daemon pod names its node.

use crate::scheduler::filters;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};

/// Whether a node should get a daemon pod, and whether one already there may
/// stay (a NoExecute taint it does not tolerate evicts it; a NoSchedule one
/// only keeps new pods away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fit {
    pub should_run: bool,
    pub keep_running: bool,
}

/// Kubernetes' `AddOrUpdateDaemonPodTolerations`: daemon pods survive node
/// problems and cordons, so these are always added.
pub(super) fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = |key: &str, effect: &str| {
        let tol = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".into()),
            effect: Some(effect.to_string()),
            ..Toleration::default()
        };
        let tols = spec.tolerations.get_or_insert_with(Vec::new);
        // The same key, effect, operator and value is replaced, not doubled.
        let same = |t: &Toleration| {
            t.key == tol.key
                && t.effect == tol.effect
                && t.operator == tol.operator
                && t.value == tol.value
        };
        match tols.iter_mut().find(|t| same(t)) {
            Some(t) => *t = tol,
            None => tols.push(tol),
        }
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    for key in [
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
    ] {
        add(&format!("node.kubernetes.io/{key}"), "NoSchedule");
    }
    if spec.host_network == Some(true) {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
}

/// `NodeShouldRunDaemonPod` for `probe`: the template's pod with the daemon
/// tolerations added.
pub(super) fn fit(probe: &Pod, node: &Node) -> Fit {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let pinned = probe.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let name_ok = pinned.is_none_or(|n| n.is_empty() || n == name);
    if !name_ok || filters::node_affinity(probe, node).is_some() {
        return Fit {
            should_run: false,
            keep_running: false,
        };
    }
    if filters::taint_toleration(probe, node).is_none() {
        return Fit {
            should_run: true,
            keep_running: true,
        };
    }
    let tols = filters::tolerations(probe);
    let evicted = filters::taints(node)
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .any(|t| !tols.iter().any(|tol| filters::tolerates(tol, t)));
    Fit {
        should_run: false,
        keep_running: !evicted,
    }
}

/// Kubernetes' `GetTargetNodeName`: `spec.nodeName`, or for a pod not yet
/// bound the single node its required affinity names by `metadata.name`.
pub(super) fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        })
}

/// Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node
/// terms become the one node (the controller already checked the template's
/// own terms), so the scheduler places the pod there; preferences and pod
/// (anti-)affinity stay.
pub(super) fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}
