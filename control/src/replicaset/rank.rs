//! Which surplus pods go first: Kubernetes' `ActivePodsWithRanks` order, so a
//! scale-down removes the pods that serve least (unscheduled, starting, not
//! Ready, recently Ready, crash-looping, young) before the settled ones.

use crate::meta;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The annotation that lets users steer which pods go first (lower first).
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `n` pods of `active` to delete first.
pub(super) fn victims<'a>(active: &[&'a Pod], n: usize) -> Vec<&'a Pod> {
    // Pods sharing a node with more of their siblings go first (spreading).
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in active {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = active
        .iter()
        .map(|p| (*p, on_node.get(node(p)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(order);
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

fn node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// `Less` before `Greater` means "delete first".
fn order(a: &(&Pod, usize), b: &(&Pod, usize)) -> Ordering {
    let ((pa, rank_a), (pb, rank_b)) = (a, b);
    // Unassigned before assigned.
    (!node(pa).is_empty())
        .cmp(&!node(pb).is_empty())
        // Pending < Unknown < Running.
        .then_with(|| phase(pa).cmp(&phase(pb)))
        // Not Ready before Ready.
        .then_with(|| meta::pod_ready(pa).cmp(&meta::pod_ready(pb)))
        .then_with(|| deletion_cost(pa).cmp(&deletion_cost(pb)))
        // Doubled up before alone.
        .then_with(|| rank_b.cmp(rank_a))
        .then_with(|| ready_time(pa, pb))
        // More restarts first.
        .then_with(|| restarts(pb).cmp(&restarts(pa)))
        // Newer first (no creation time counts as newest).
        .then_with(|| newer_first(created(pa), created(pb)))
        .then_with(|| pa.metadata.uid.cmp(&pb.metadata.uid))
}

fn phase(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(p: &Pod) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Both Ready: the one Ready for less time first.
fn ready_time(a: &Pod, b: &Pod) -> Ordering {
    match (meta::ready_since(a), meta::ready_since(b)) {
        (Some(ta), Some(tb)) => newer_first(ta, tb),
        _ => Ordering::Equal,
    }
}

/// Kubernetes' `afterOrZero`: a missing time first, then the later one.
fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

fn created(p: &Pod) -> Option<Timestamp> {
    p.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The most restarts of any regular container, then of any init (sidecar)
/// container, as `compareMaxContainerRestarts` compares them.
fn restarts(p: &Pod) -> (i32, i32) {
    let max = |cs: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        cs.into_iter()
            .flatten()
            .map(|c| c.restart_count)
            .max()
            .unwrap_or(0)
    };
    let s = p.status.as_ref();
    (
        max(s.and_then(|s| s.container_statuses.as_ref())),
        max(s.and_then(|s| s.init_container_statuses.as_ref())),
    )
}
