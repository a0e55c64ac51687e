//! Preemption, as kube-scheduler's DefaultPreemption does it: a pending pod
//! that fits nowhere may evict pods of lower priority from one node.
//!
//! On each node that passes the filters preemption cannot change
//! (readiness, cordon, taints, node affinity), every lower-priority pod is
//! taken off and the filters it can change — resources, host ports, topology
//! spread, inter-pod affinity and anti-affinity — run for the node as it
//! would then be, with the rest of the cluster as it is (the cluster-wide
//! spread and affinity counts taken once, and adjusted for the pods that
//! leave, as kube-scheduler's `RemovePod` extensions do). If the pod fits,
//! the removed pods are given back (reprieved) most important first — those
//! whose eviction would break a PodDisruptionBudget before the others —
//! while it still fits; what is left are the victims. Among the candidate
//! nodes the one chosen has the fewest budget violations, then the lowest
//! highest victim priority, the lowest (shifted) priority sum, the fewest
//! victims, and the latest start of its most important victims.
//! As kube-scheduler, the dry run stops once enough candidates are found
//! (10% of the nodes, at least 100) and one of them breaks no budget.
//!
//! Pods already terminating are never victims: the dry run counts them gone.
//! A pod nominated to a node where lower-priority pods are still
//! terminating (its earlier victims) waits for them rather than preempting
//! more, as `PodEligibleToPreemptOthers` decides, unless that node can no
//! longer take it (not Ready, cordoned, tainted, out of its affinity).

use super::filters::{self, node_affinity, node_ready, node_unschedulable, taint_toleration};
use super::{interpod, spread, NodeInfo, PodInfo};
use crate::disruption;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use std::cmp::Reverse;
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

/// Whether a pod is being deleted.
fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The filters no eviction can change fail for `pod` on `node`
/// (`UnschedulableAndUnresolvable`).
fn unresolvable(pod: &Pod, node: &NodeInfo) -> bool {
    let n = &node.node;
    node_ready(n).is_some()
        || node_unschedulable(pod, n).is_some()
        || taint_toleration(pod, n).is_some()
        || node_affinity(pod, n).is_some()
}

/// Kubernetes' `PodEligibleToPreemptOthers` past the policy: the index of
/// the pod's nominated node when lower-priority pods are terminating there
/// and the node could still take it, so the pod waits for them.
fn waits_on(pod: &Pod, cluster: &[NodeInfo]) -> Option<usize> {
    let status = pod.status.as_ref();
    let nominated = status.and_then(|s| s.nominated_node_name.as_deref());
    let nominated = nominated.filter(|n| !n.is_empty())?;
    let i = cluster.iter().position(|n| n.name() == nominated)?;
    let node = &cluster[i];
    let prio = priority(pod);
    let leaving = node
        .pods
        .iter()
        .any(|q| priority(q) < prio && terminating(q));
    (leaving && !unresolvable(pod, node)).then_some(i)
}

/// When a pod started (`status.startTime`, else its creation; never: now).
fn start_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref().and_then(|s| s.start_time.as_ref());
    let created = pod.metadata.creation_timestamp.as_ref();
    status.or(created).map_or(Timestamp::MAX, |t| t.0)
}

/// Kubernetes' `MoreImportantPod` as a sort key: higher priority, then
/// earlier start, first.
fn importance(pod: &Pod) -> (Reverse<i32>, Timestamp) {
    (Reverse(priority(pod)), start_time(pod))
}

/// `node` with only `pods` on it.
fn with_pods(node: &NodeInfo, pods: &[Arc<Pod>]) -> NodeInfo {
    let mut n = NodeInfo::new(node.node.clone());
    for p in pods {
        n.add(p.clone());
    }
    n
}

/// The pod being placed and what its filters need.
struct Preemptor<'a> {
    info: PodInfo<'a>,
    cluster: &'a [NodeInfo],
    /// Neither the pod nor any placed pod has affinity terms, and the pod
    /// has no hard spread constraint: only ports and resources can change
    /// when pods leave a node.
    simple: bool,
    /// The spread and inter-pod affinity counts over the whole cluster
    /// (PreFilter), adjusted per node as pods leave it.
    spread: spread::FilterState,
    interpod: interpod::FilterState,
}

impl Preemptor<'_> {
    /// Whether the pod passes the filters pods leaving can change — ports,
    /// resources, topology spread, inter-pod affinity — on `node`, standing
    /// in for `cluster[i]` with some of its pods gone.
    fn fits(&self, i: usize, node: &NodeInfo) -> bool {
        // Ports and resources first: they alone need no cluster-wide view.
        let room = filters::node_ports(self.info.pod, node).is_none()
            && filters::resources_fit(&self.info, node).is_empty();
        if self.simple || !room {
            return room;
        }
        let pod = self.info.pod;
        let original = &self.cluster[i];
        let removed: Vec<Arc<Pod>> = original
            .pods
            .iter()
            .filter(|p| !node.pods.iter().any(|q| Arc::ptr_eq(p, q)))
            .cloned()
            .collect();
        self.spread.filter_replaced(pod, original, node).is_none()
            && self
                .interpod
                .without(pod, original, &removed)
                .filter(node)
                .is_none()
    }
}

/// A node preemption could use.
#[derive(Debug)]
struct Candidate {
    index: usize,
    victims: Vec<Arc<Pod>>,
    /// How many victims' eviction breaks a PodDisruptionBudget.
    violations: usize,
}

impl Candidate {
    /// `pickOneNodeForPreemption`'s order: the smallest key wins.
    fn key(&self) -> (usize, i32, i64, usize, Reverse<Timestamp>, usize) {
        let highest = self.victims.iter().map(|q| priority(q)).max();
        let highest = highest.unwrap_or(i32::MIN);
        // Shifted so that negative priorities still add up to more.
        let sum: i64 = self
            .victims
            .iter()
            .map(|q| i64::from(priority(q)) + i64::from(i32::MAX) + 1)
            .sum();
        let earliest = self
            .victims
            .iter()
            .filter(|q| priority(q) == highest)
            .map(|q| start_time(q))
            .min()
            .unwrap_or(Timestamp::MAX);
        (
            self.violations,
            highest,
            sum,
            self.victims.len(),
            Reverse(earliest),
            self.index,
        )
    }
}

/// Kubernetes' `filterPodsWithPDBViolation`: `pods` (most important first)
/// split into those whose eviction would take a budget below zero allowed
/// disruptions (each eviction counted against every budget covering the
/// pod) and the rest.
fn split_by_budgets(
    pods: Vec<Arc<Pod>>,
    budgets: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
    let mut allowed: Vec<i32> = budgets
        .iter()
        .map(|b| b.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for p in pods {
        let mut breaks = false;
        for (b, left) in budgets.iter().zip(allowed.iter_mut()) {
            if disruption::covers(b, &p) {
                *left -= 1;
                breaks |= *left < 0;
            }
        }
        if breaks {
            violating.push(p);
        } else {
            fine.push(p);
        }
    }
    (violating, fine)
}

/// `SelectVictimsOnNode`: the victims that would make room for the pod on
/// `cluster[i]`, if any would.
fn victims_on(p: &Preemptor, i: usize, budgets: &[Arc<PodDisruptionBudget>]) -> Option<Candidate> {
    let node = &p.cluster[i];
    let pod = p.info.pod;
    if unresolvable(pod, node) {
        return None;
    }
    let prio = priority(pod);
    let (lower, higher): (Vec<_>, Vec<_>) =
        node.pods.iter().cloned().partition(|q| priority(q) < prio);
    // Lower-priority pods already leaving are neither kept nor chosen again.
    let mut lower: Vec<_> = lower.into_iter().filter(|q| !terminating(q)).collect();
    if lower.is_empty() || !p.fits(i, &with_pods(node, &higher)) {
        return None;
    }
    lower.sort_by_key(|q| importance(q));
    let (violating, fine) = split_by_budgets(lower, budgets);
    let mut kept = higher;
    let mut c = Candidate {
        index: i,
        victims: Vec::new(),
        violations: 0,
    };
    let mut reprieve = |q: Arc<Pod>, breaks: bool| {
        kept.push(q.clone());
        if !p.fits(i, &with_pods(node, &kept)) {
            kept.pop();
            c.victims.push(q);
            c.violations += usize::from(breaks);
        }
    };
    violating.into_iter().for_each(|q| reprieve(q, true));
    fine.into_iter().for_each(|q| reprieve(q, false));
    (!c.victims.is_empty()).then_some(c)
}

/// What preemption does for a pod that fits nowhere.
#[derive(Debug)]
pub(crate) enum Preemption {
    /// Evict these pods of node `.0` and nominate the pod there.
    Evict(usize, Vec<Arc<Pod>>),
    /// Wait: the earlier victims on its nominated node `.0` are leaving.
    Wait(usize),
    /// The pod may not preempt, or no eviction would help.
    None,
}

/// Whether and where `pod` preempts: the node's index and the victims.
pub(crate) fn preempt(
    pod: &Pod,
    cluster: &[NodeInfo],
    budgets: &[Arc<PodDisruptionBudget>],
) -> Preemption {
    if !may_preempt(pod) {
        return Preemption::None;
    }
    if let Some(i) = waits_on(pod, cluster) {
        return Preemption::Wait(i);
    }
    let simple = !interpod::has_terms(pod)
        && !spread::has_hard_constraints(pod)
        && cluster.iter().all(|n| n.with_affinity.is_empty());
    let (spread, interpod) = if simple {
        (
            spread::FilterState::new(pod, &[]),
            interpod::FilterState::new(pod, &[]),
        )
    } else {
        (
            spread::FilterState::new(pod, cluster),
            interpod::FilterState::new(pod, cluster),
        )
    };
    let p = Preemptor {
        info: PodInfo::new(pod),
        cluster,
        simple,
        spread,
        interpod,
    };
    let enough = (cluster.len() / 10).max(100).min(cluster.len());
    let mut candidates: Vec<Candidate> = Vec::new();
    for i in 0..cluster.len() {
        if let Some(c) = victims_on(&p, i, budgets) {
            candidates.push(c);
        }
        if candidates.len() >= enough && candidates.iter().any(|c| c.violations == 0) {
            break;
        }
    }
    match candidates.into_iter().min_by_key(Candidate::key) {
        Some(best) => Preemption::Evict(best.index, best.victims),
        None => Preemption::None,
    }
}
