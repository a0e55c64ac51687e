//! Preemption, as kube-scheduler's DefaultPreemption does it for resources
//! and host ports: a pending pod that fits nowhere may evict pods of lower
//! priority from one node. On each node that passes the filters preemption
//! cannot change (readiness, cordon, taints, node affinity), every lower
//! priority pod is taken off; if the pod then fits, victims are given back
//! from the highest priority down while it still fits, and what is left are
//! the victims. The node whose victims have the lowest highest priority, then
//! the lowest priority sum, then the fewest pods, is chosen. Pod affinity and
//! topology spread are not re-checked here (they are at binding).

use super::filters::{
    node_affinity, node_ports, node_ready, node_unschedulable, resources_fit, taint_toleration,
};
use super::{NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

/// A pod's priority (0 when the API set none).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether `pod` may preempt others at all.
fn may_preempt(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        != Some("Never")
}

/// Whether `pod` fits `node` as far as what preemption can change.
fn fits(pod: &PodInfo, node: &NodeInfo) -> bool {
    node_ports(pod.pod, node).is_none() && resources_fit(pod, node).is_empty()
}

/// `node` with only `pods` on it.
fn with_pods(node: &NodeInfo, pods: &[Arc<Pod>]) -> NodeInfo {
    let mut n = NodeInfo::new(node.node.clone());
    for p in pods {
        n.add(p.clone());
    }
    n
}

/// The victims that would make room for `pod` on `node`, if any would.
fn victims_on(pod: &PodInfo, node: &NodeInfo) -> Option<Vec<Arc<Pod>>> {
    let n = &node.node;
    let unresolvable = node_ready(n).is_some()
        || node_unschedulable(pod.pod, n).is_some()
        || taint_toleration(pod.pod, n).is_some()
        || node_affinity(pod.pod, n).is_some();
    if unresolvable {
        return None;
    }
    let p = priority(pod.pod);
    let (mut lower, higher): (Vec<_>, Vec<_>) =
        node.pods.iter().cloned().partition(|q| priority(q) < p);
    if lower.is_empty() || !fits(pod, &with_pods(node, &higher)) {
        return None;
    }
    // Give back the most important first; ties: the older pod stays.
    lower.sort_by_key(|q| {
        (
            std::cmp::Reverse(priority(q)),
            q.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let mut kept = higher;
    let mut victims = Vec::new();
    for q in lower {
        kept.push(q.clone());
        if !fits(pod, &with_pods(node, &kept)) {
            kept.pop();
            victims.push(q);
        }
    }
    Some(victims)
}

/// Where `pod` could go by evicting lower-priority pods: the node's index and
/// the victims. None when the pod may not preempt or nothing would help.
pub(crate) fn preempt(pod: &Pod, cluster: &[NodeInfo]) -> Option<(usize, Vec<Arc<Pod>>)> {
    if !may_preempt(pod) {
        return None;
    }
    let info = PodInfo::new(pod);
    cluster
        .iter()
        .enumerate()
        .filter_map(|(i, node)| victims_on(&info, node).map(|v| (i, v)))
        .filter(|(_, v)| !v.is_empty())
        .min_by_key(|(i, v)| {
            let highest = v.iter().map(|q| priority(q)).max().unwrap_or(i32::MIN);
            let sum: i64 = v.iter().map(|q| i64::from(priority(q))).sum();
            (highest, sum, v.len(), *i)
        })
}
