//! The score plugins, each 0..=100 per feasible node, summed with
//! kube-scheduler's default weights.

use super::filters::{taints, tolerations};
use super::{interpod, node_affinity, spread, NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{Node, Pod};

/// The best score a plugin gives.
const MAX: i64 = 100;
// Plugin weights: kube-scheduler's default profile.
/// TaintToleration's weight.
const W_TAINT: i64 = 3;
/// NodeAffinity's weight.
const W_NODE_AFFINITY: i64 = 2;
/// PodTopologySpread's weight.
const W_SPREAD: i64 = 2;
/// InterPodAffinity's weight.
const W_INTERPOD: i64 = 2;
/// NodeResourcesFit's weight.
const W_LEAST_ALLOCATED: i64 = 1;
/// NodeResourcesBalancedAllocation's weight.
const W_BALANCED: i64 = 1;

/// The weighted total score of each feasible node.
pub(crate) fn total(pod: &PodInfo, cluster: &[NodeInfo], feasible: &[usize]) -> Vec<i64> {
    let nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| &cluster[i]).collect();
    let per_node = |f: &dyn Fn(&NodeInfo) -> i64| nodes.iter().map(|n| f(n)).collect::<Vec<_>>();
    let plugins: [(i64, Vec<i64>); 6] = [
        (W_LEAST_ALLOCATED, per_node(&|n| least_allocated(pod, n))),
        (W_BALANCED, per_node(&|n| balanced_allocation(pod, n))),
        (W_NODE_AFFINITY, node_affinity_scores(pod.pod, &nodes)),
        (W_TAINT, taint_scores(pod.pod, &nodes)),
        (W_SPREAD, spread::scores(pod.pod, cluster, feasible)),
        (W_INTERPOD, interpod::scores(pod.pod, cluster, feasible)),
    ];
    let mut sum = vec![0; feasible.len()];
    for (w, scores) in plugins {
        sum.iter_mut().zip(scores).for_each(|(t, s)| *t += w * s);
    }
    sum
}

/// The resources the allocation scores weigh (equally).
const SCORED: [&str; 2] = ["cpu", "memory"];

/// NodeResourcesFit (LeastAllocated): the share of cpu and memory left after
/// placing the pod, counting unset requests as 100m / 200Mi.
pub(crate) fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let shares: Vec<i64> = SCORED
        .iter()
        .filter(|r| node.allocatable.get(r) > 0)
        .map(|r| {
            let capacity = node.allocatable.get(r);
            let requested = node.nonzero.get(r).saturating_add(pod.nonzero.get(r));
            let left = capacity
                .saturating_sub(requested)
                .saturating_mul(i128::from(MAX));
            // Negative requests (refused by admission) must not lift a score past 100.
            i64::try_from((left / capacity).clamp(0, i128::from(MAX))).unwrap_or(0)
        })
        .collect();
    let n = i64::try_from(shares.len()).unwrap_or(1);
    if n == 0 {
        0
    } else {
        shares.iter().sum::<i64>() / n
    }
}

/// NodeResourcesBalancedAllocation: cpu and memory used in equal shares
/// score high (1 - standard deviation of the used fractions).
pub(crate) fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fractions: Vec<f64> = SCORED
        .iter()
        .filter(|r| node.allocatable.get(r) > 0)
        .map(|r| {
            let used = node.requested.get(r) + pod.requests.get(r);
            (used as f64 / node.allocatable.get(r) as f64).min(1.0)
        })
        .collect();
    if fractions.is_empty() {
        return 0;
    }
    let n = fractions.len() as f64;
    let mean = fractions.iter().sum::<f64>() / n;
    let variance = fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n;
    ((1.0 - variance.sqrt()) * MAX as f64) as i64
}

/// NodeAffinity: preferred terms' weights, scaled so the best node gets 100.
pub(crate) fn node_affinity_scores(pod: &Pod, nodes: &[&NodeInfo]) -> Vec<i64> {
    let raw = nodes
        .iter()
        .map(|n| node_affinity::preferred_weight(pod, &n.node))
        .collect();
    normalize(raw, false)
}

/// TaintToleration: fewer untolerated PreferNoSchedule taints score higher.
pub(crate) fn taint_scores(pod: &Pod, nodes: &[&NodeInfo]) -> Vec<i64> {
    let raw = nodes.iter().map(|n| soft_taints(pod, &n.node)).collect();
    normalize(raw, true)
}

/// The PreferNoSchedule taints of `node` that `pod` does not tolerate.
fn soft_taints(pod: &Pod, node: &Node) -> i64 {
    let tols: Vec<_> = tolerations(pod)
        .iter()
        .filter(|t| matches!(t.effect.as_deref(), None | Some("" | "PreferNoSchedule")))
        .collect();
    let untolerated = taints(node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !tols.iter().any(|tol| super::filters::tolerates(tol, t)))
        .count();
    i64::try_from(untolerated).unwrap_or(i64::MAX)
}

/// kube-scheduler's `DefaultNormalizeScore`: scale to 0..=100 by the
/// highest score; `reverse` flips it so the lowest raw score wins.
pub(crate) fn normalize(raw: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter()
        .map(|s| match (max, reverse) {
            (0, true) => MAX,
            (0, false) => 0,
            (m, true) => MAX - MAX * s / m,
            (m, false) => MAX * s / m,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{cluster, node, on, pod, pod_requesting};
    use serde_json::json;

    #[test]
    fn least_allocated_prefers_room() {
        let nodes = [node("n1", json!({})), node("n2", json!({}))];
        let c = cluster(&nodes, &[on("n1", &pod_requesting("a", "2", "4Gi"))]);
        let p = pod_requesting("p", "1", "2Gi");
        let info = PodInfo::new(&p);
        // n1: 1/4 cpu and 2/8Gi left → 25; n2: 3/4 and 6/8 left → 75.
        assert_eq!(least_allocated(&info, &c[0]), 25);
        assert_eq!(least_allocated(&info, &c[1]), 75);
        let huge = pod_requesting("h", "8", "1Gi");
        // cpu over capacity → 0; 7/8 of memory left → 87.
        assert_eq!(least_allocated(&PodInfo::new(&huge), &c[1]), 43);
    }

    #[test]
    fn least_allocated_counts_best_effort_pods_with_defaults() {
        let nodes = [node(
            "n1",
            json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi"}}}),
        )];
        let c = cluster(&nodes, &[]);
        let p = pod("p", json!({}));
        // 100m of 1 cpu and 200Mi of 1Gi used.
        assert_eq!(least_allocated(&PodInfo::new(&p), &c[0]), (90 + 80) / 2);
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let nodes = [node("n1", json!({})), node("n2", json!({}))];
        let c = cluster(&nodes, &[on("n1", &pod_requesting("a", "2", "0"))]);
        let p = pod_requesting("p", "1", "2Gi");
        let info = PodInfo::new(&p);
        // n1: cpu 3/4, memory 1/4 → std 0.25 → 75; n2: 1/4 and 1/4 → 100.
        assert_eq!(balanced_allocation(&info, &c[0]), 75);
        assert_eq!(balanced_allocation(&info, &c[1]), 100);
    }

    #[test]
    fn preferred_node_affinity_scores_scale_to_the_best() {
        let nodes = [
            node("n1", json!({"metadata": {"labels": {"disk": "ssd"}}})),
            node("n2", json!({})),
            node(
                "n3",
                json!({"metadata": {"labels": {"disk": "ssd", "gpu": "yes"}}}),
            ),
        ];
        let c = cluster(&nodes, &[]);
        let refs: Vec<&NodeInfo> = c.iter().collect();
        let pref = |key: &str, w: i32| {
            json!({"weight": w, "preference": {"matchExpressions": [
            {"key": key, "operator": "Exists"}]}})
        };
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [pref("disk", 20), pref("gpu", 20)]}}}}),
        );
        assert_eq!(node_affinity_scores(&p, &refs), [50, 0, 100]);
        assert_eq!(node_affinity_scores(&pod("q", json!({})), &refs), [0, 0, 0]);
    }

    #[test]
    fn fewer_prefer_no_schedule_taints_score_higher() {
        let soft = |k: &str| json!({"key": k, "effect": "PreferNoSchedule"});
        let nodes = [
            node("n1", json!({"spec": {"taints": [soft("a"), soft("b")]}})),
            node("n2", json!({"spec": {"taints": [soft("a")]}})),
            node("n3", json!({})),
        ];
        let c = cluster(&nodes, &[]);
        let refs: Vec<&NodeInfo> = c.iter().collect();
        assert_eq!(taint_scores(&pod("p", json!({})), &refs), [0, 50, 100]);
        let tolerant = pod(
            "t",
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}),
        );
        assert_eq!(taint_scores(&tolerant, &refs), [0, 100, 100]);
    }

    #[test]
    fn default_normalize_scales_and_reverses() {
        assert_eq!(normalize(vec![0, 5, 10], false), [0, 50, 100]);
        assert_eq!(normalize(vec![0, 5, 10], true), [100, 50, 0]);
        assert_eq!(normalize(vec![0, 0], true), [100, 100]);
        assert_eq!(normalize(vec![0, 0], false), [0, 0]);
    }

    #[test]
    fn totals_weigh_plugins_as_kube_scheduler_does() {
        let nodes = [
            node(
                "n1",
                json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}}),
            ),
            node("n2", json!({})),
        ];
        let c = cluster(&nodes, &[]);
        let p = pod("p", json!({}));
        let t = total(&PodInfo::new(&p), &c, &[0, 1]);
        // Only the taint plugin differs: 100 points at weight 3.
        assert_eq!(t[1] - t[0], 300);
    }
}
