//! PodTopologySpread: `DoNotSchedule` constraints filter, `ScheduleAnyway`
//! ones score. A pod with no constraints at all gets kube-scheduler's system
//! defaults (hostname maxSkew 3, zone maxSkew 5), selecting the pods of the
//! same controller — so a ReplicaSet's replicas spread across nodes.

use super::filters::{taints, tolerates, tolerations};
use super::{namespace, node_affinity, NodeInfo};
use crate::meta::{controller_of, selector_matches};
use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::{HashMap, HashSet};

/// A node's domain holds too many matching pods.
pub(crate) const SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// A node lacks a constraint's topology key.
pub(crate) const SPREAD_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// The hostname label; its domains are the nodes themselves.
const HOSTNAME: &str = "kubernetes.io/hostname";
/// The zone label of the system default constraints.
const ZONE: &str = "topology.kubernetes.io/zone";

/// Which pods a constraint counts.
#[derive(Debug, Clone)]
enum Matcher {
    /// A label selector (none: nothing, as in Kubernetes).
    Labels(Option<LabelSelector>),
    /// Pods of one controller (the system defaults' stand-in for Kubernetes'
    /// Service/ReplicaSet selectors, which this core does not see).
    Controller(String),
}

/// One spread constraint, resolved against the incoming pod.
#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    matcher: Matcher,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    /// `c` as `pod` carries it; `matchLabelKeys` take the pod's own values.
    fn new(pod: &Pod, c: &TopologySpreadConstraint) -> Constraint {
        let selector = c.label_selector.clone().map(|mut s| {
            let labels = pod.metadata.labels.as_ref();
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = labels.and_then(|l| l.get(k)) {
                    s.match_expressions
                        .get_or_insert_default()
                        .push(LabelSelectorRequirement {
                            key: k.clone(),
                            operator: "In".into(),
                            values: Some(vec![v.clone()]),
                        });
                }
            }
            s
        });
        Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            matcher: Matcher::Labels(selector),
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// A system default constraint over `owner`'s pods.
    fn default(key: &str, max_skew: i64, owner: &str) -> Constraint {
        Constraint {
            max_skew,
            key: key.into(),
            matcher: Matcher::Controller(owner.into()),
            min_domains: 1,
            honor_affinity: true,
            honor_taints: false,
        }
    }

    /// Whether `other` counts for the incoming `pod` (same namespace,
    /// selected, not terminating, as `countPodsMatchSelector` counts).
    fn selects(&self, pod: &Pod, other: &Pod) -> bool {
        other.metadata.deletion_timestamp.is_none()
            && namespace(pod) == namespace(other)
            && match &self.matcher {
                Matcher::Labels(s) => s
                    .as_ref()
                    .is_some_and(|s| selector_matches(s, other.metadata.labels.as_ref())),
                Matcher::Controller(uid) => {
                    controller_of(&other.metadata).is_some_and(|o| &o.uid == uid)
                }
            }
    }

    /// Whether `node` takes part in this constraint's spread for `pod`
    /// (nodeAffinityPolicy and nodeTaintsPolicy).
    fn includes(&self, pod: &Pod, node: &NodeInfo) -> bool {
        let affinity_ok = !self.honor_affinity || node_affinity::required_matches(pod, &node.node);
        let taints_ok = !self.honor_taints
            || taints(&node.node)
                .iter()
                .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
                .all(|t| tolerations(pod).iter().any(|tol| tolerates(tol, t)));
        affinity_ok && taints_ok
    }

    /// How many of `node`'s pods this constraint counts.
    fn count_on(&self, pod: &Pod, node: &NodeInfo) -> i64 {
        let n = node.pods.iter().filter(|p| self.selects(pod, p)).count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// Whether `pod` has a `DoNotSchedule` spread constraint.
pub(crate) fn has_hard_constraints(pod: &Pod) -> bool {
    !constraints(pod, "DoNotSchedule").is_empty()
}

/// `pod`'s own constraints with `whenUnsatisfiable == when`.
fn constraints(pod: &Pod, when: &str) -> Vec<Constraint> {
    let all = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref());
    all.into_iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint::new(pod, c))
        .collect()
}

/// Whether `node` has every constraint's topology key.
fn has_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| node.label(&c.key).is_some())
}

/// The filter's view of the cluster for one incoming pod (PreFilter).
pub(crate) struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: matching pods per domain value.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the emptiest domain's count.
    min: Vec<i64>,
    /// Per constraint: whether the incoming pod counts itself.
    self_match: Vec<bool>,
}

impl FilterState {
    /// Counts matching pods per domain over the nodes that take part.
    pub(crate) fn new(pod: &Pod, cluster: &[NodeInfo]) -> FilterState {
        let constraints = constraints(pod, "DoNotSchedule");
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in cluster.iter().filter(|n| has_keys(n, &constraints)) {
            for (c, m) in constraints.iter().zip(counts.iter_mut()) {
                if let (true, Some(v)) = (c.includes(pod, node), node.label(&c.key)) {
                    *m.entry(v.to_string()).or_insert(0) += c.count_on(pod, node);
                }
            }
        }
        let min = constraints
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                let domains = i64::try_from(m.len()).unwrap_or(i64::MAX);
                // Fewer domains than minDomains: the missing ones count as empty.
                if domains < c.min_domains {
                    0
                } else {
                    m.values().min().copied().unwrap_or(i64::MAX)
                }
            })
            .collect();
        let self_match = constraints.iter().map(|c| c.selects(pod, pod)).collect();
        FilterState {
            constraints,
            counts,
            min,
            self_match,
        }
    }

    /// The reason `modified` fails standing in for `original` (the same
    /// node with some of its pods gone), the rest of the cluster as counted:
    /// only the node's own domains change, and their counts only go down.
    pub(crate) fn filter_replaced(
        &self,
        pod: &Pod,
        original: &NodeInfo,
        modified: &NodeInfo,
    ) -> Option<String> {
        let takes_part = has_keys(original, &self.constraints);
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = modified.label(&c.key) else {
                return Some(SPREAD_MISSING_LABEL.into());
            };
            let mut matched = self.counts[i].get(value).copied().unwrap_or(0);
            let mut min = self.min[i];
            if takes_part && c.includes(pod, original) {
                matched = matched - c.count_on(pod, original) + c.count_on(pod, modified);
                let domains = i64::try_from(self.counts[i].len()).unwrap_or(i64::MAX);
                if domains >= c.min_domains {
                    min = min.min(matched);
                }
            }
            let skew = matched
                .saturating_add(i64::from(self.self_match[i]))
                .saturating_sub(min);
            if skew > c.max_skew {
                return Some(SPREAD.into());
            }
        }
        None
    }

    /// The reason `node` fails, if it does.
    pub(crate) fn filter(&self, node: &NodeInfo) -> Option<String> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.key) else {
                return Some(SPREAD_MISSING_LABEL.into());
            };
            let matched = self.counts[i].get(value).copied().unwrap_or(0);
            let skew = matched
                .saturating_add(i64::from(self.self_match[i]))
                .saturating_sub(self.min[i]);
            if skew > c.max_skew {
                return Some(SPREAD.into());
            }
        }
        None
    }
}

/// The PodTopologySpread score of each feasible node, 0..=100 (fewer
/// matching pods in the node's domains scores higher).
pub(crate) fn scores(pod: &Pod, cluster: &[NodeInfo], feasible: &[usize]) -> Vec<i64> {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    let cs = if own {
        constraints(pod, "ScheduleAnyway")
    } else {
        defaults(pod)
    };
    if cs.is_empty() {
        return vec![0; feasible.len()];
    }
    // The pod's own constraints need every key; the defaults use what is there.
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|&i| own && !has_keys(&cluster[i], &cs))
        .collect();
    let candidates: Vec<&NodeInfo> = feasible
        .iter()
        .zip(&ignored)
        .filter(|(_, &ig)| !ig)
        .map(|(&i, _)| &cluster[i])
        .collect();
    let weights: Vec<f64> = cs.iter().map(|c| weight(c, &candidates)).collect();
    let counts = domain_counts(pod, cluster, &cs, &candidates, own);
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .zip(&ignored)
        .map(|(&i, &ig)| (!ig).then(|| node_score(pod, &cluster[i], &cs, &weights, &counts)))
        .collect();
    normalize(raw)
}

/// The system default constraints, over the pod's controller's pods.
fn defaults(pod: &Pod) -> Vec<Constraint> {
    let Some(owner) = controller_of(&pod.metadata) else {
        return Vec::new();
    };
    vec![
        Constraint::default(HOSTNAME, 3, &owner.uid),
        Constraint::default(ZONE, 5, &owner.uid),
    ]
}

/// A constraint's weight: ln(domains + 2), so constraints over many domains
/// weigh more, as in kube-scheduler.
fn weight(c: &Constraint, candidates: &[&NodeInfo]) -> f64 {
    let domains = if c.key == HOSTNAME {
        candidates.len()
    } else {
        let values: HashSet<&str> = candidates.iter().filter_map(|n| n.label(&c.key)).collect();
        values.len()
    };
    (domains as f64 + 2.0).ln()
}

/// Per constraint (hostname excepted): matching pods per domain, over the
/// domains of the candidate nodes.
fn domain_counts(
    pod: &Pod,
    cluster: &[NodeInfo],
    cs: &[Constraint],
    candidates: &[&NodeInfo],
    require_all: bool,
) -> Vec<HashMap<String, i64>> {
    cs.iter()
        .map(|c| {
            let mut m: HashMap<String, i64> = HashMap::new();
            if c.key == HOSTNAME {
                return m;
            }
            for n in candidates {
                if let Some(v) = n.label(&c.key) {
                    m.insert(v.to_string(), 0);
                }
            }
            for node in cluster.iter().filter(|n| !require_all || has_keys(n, cs)) {
                let slot = node.label(&c.key).and_then(|v| m.get_mut(v));
                if let (true, Some(slot)) = (c.includes(pod, node), slot) {
                    *slot += c.count_on(pod, node);
                }
            }
            m
        })
        .collect()
}

/// A node's raw spread score: matching pods in its domains, weighted.
fn node_score(
    pod: &Pod,
    node: &NodeInfo,
    cs: &[Constraint],
    weights: &[f64],
    counts: &[HashMap<String, i64>],
) -> i64 {
    let mut score = 0.0;
    for ((c, w), m) in cs.iter().zip(weights).zip(counts) {
        let count = if c.key == HOSTNAME {
            Some(c.count_on(pod, node))
        } else {
            node.label(&c.key).map(|v| m.get(v).copied().unwrap_or(0))
        };
        if let Some(n) = count {
            score += n as f64 * w + (c.max_skew - 1) as f64;
        }
    }
    score.round() as i64
}

/// Flips raw scores so the least crowded node gets 100; ignored nodes get 0.
fn normalize(raw: Vec<Option<i64>>) -> Vec<i64> {
    let present = raw.iter().flatten();
    let (min, max) = (present.clone().min().copied(), present.max().copied());
    let (Some(min), Some(max)) = (min, max) else {
        return vec![0; raw.len()];
    };
    raw.into_iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => 100,
            Some(s) => 100 * (max + min - s) / max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{cluster, node, on, pod, replica};
    use serde_json::{json, Value};

    fn zoned(name: &str, zone: &str) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"metadata": {"labels": {"zone": zone}}}))
    }

    fn web(name: &str) -> std::sync::Arc<Pod> {
        pod(name, json!({"metadata": {"labels": {"app": "web"}}}))
    }

    fn spreading(when: &str, extra: Value) -> std::sync::Arc<Pod> {
        let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        crate::scheduler::testutil::merge(&mut c, extra);
        pod(
            "p",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [c]}}),
        )
    }

    fn filter_all(p: &Pod, c: &[NodeInfo]) -> Vec<Option<String>> {
        let s = FilterState::new(p, c);
        c.iter().map(|n| s.filter(n)).collect()
    }

    #[test]
    fn do_not_schedule_keeps_the_skew_within_max() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b"), node("x", json!({}))];
        let c = cluster(&nodes, &[on("a1", &web("w1"))]);
        let got = filter_all(&spreading("DoNotSchedule", json!({})), &c);
        assert_eq!(
            got,
            [Some(SPREAD.into()), None, Some(SPREAD_MISSING_LABEL.into())]
        );
        let loose = filter_all(&spreading("DoNotSchedule", json!({"maxSkew": 2})), &c);
        assert_eq!(loose[..2], [None, None]);
    }

    #[test]
    fn pods_outside_the_selector_or_namespace_or_terminating_do_not_count() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b")];
        let api = pod("o", json!({"metadata": {"labels": {"app": "api"}}}));
        let elsewhere = pod(
            "e",
            json!({"metadata": {"namespace": "x", "labels": {"app": "web"}}}),
        );
        let leaving = pod(
            "l",
            json!({"metadata": {"labels": {"app": "web"}, "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let c = cluster(
            &nodes,
            &[on("a1", &api), on("a1", &elsewhere), on("a1", &leaving)],
        );
        assert_eq!(
            filter_all(&spreading("DoNotSchedule", json!({})), &c),
            [None, None]
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b")];
        let c = cluster(&nodes, &[on("a1", &web("w1")), on("b1", &web("w2"))]);
        let p = spreading("DoNotSchedule", json!({"minDomains": 3}));
        assert_eq!(
            filter_all(&p, &c),
            [Some(SPREAD.into()), Some(SPREAD.into())]
        );
        assert_eq!(
            filter_all(&spreading("DoNotSchedule", json!({})), &c),
            [None, None]
        );
    }

    #[test]
    fn schedule_anyway_only_scores() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b")];
        let c = cluster(&nodes, &[on("a1", &web("w1")), on("a1", &web("w2"))]);
        let p = spreading("ScheduleAnyway", json!({}));
        assert_eq!(filter_all(&p, &c), [None, None]);
        let s = scores(&p, &c, &[0, 1]);
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn replicas_of_one_controller_score_towards_emptier_nodes() {
        let nodes = [
            node("n1", json!({})),
            node("n2", json!({})),
            node("n3", json!({})),
        ];
        let bound = [
            on("n1", &replica("r1", "rs-1", json!({}))),
            on("n1", &replica("r2", "rs-1", json!({}))),
            on("n2", &replica("r3", "rs-1", json!({}))),
            on("n3", &replica("x1", "rs-2", json!({}))),
            on("n3", &replica("x2", "rs-2", json!({}))),
        ];
        let c = cluster(&nodes, &bound);
        let s = scores(&replica("r4", "rs-1", json!({})), &c, &[0, 1, 2]);
        assert!(s[2] > s[1] && s[1] > s[0], "{s:?}");
        assert_eq!(s[2], 100);
        assert_eq!(scores(&pod("lone", json!({})), &c, &[0, 1, 2]), [0, 0, 0]);
    }
}
