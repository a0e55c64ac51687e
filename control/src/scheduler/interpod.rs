//! InterPodAffinity: required pod affinity and anti-affinity (the incoming
//! pod's, and existing pods' anti-affinity against it) as a filter, and the
//! preferred terms (plus existing pods' required affinity, weight 1) as a score.

use super::{namespace, NodeInfo};
use crate::meta::selector_matches;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The incoming pod's required affinity is not met.
pub(crate) const AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The incoming pod's required anti-affinity is not met.
pub(crate) const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// An existing pod's required anti-affinity refuses the incoming pod.
pub(crate) const EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// The label every namespace carries with its own name; the only namespace
/// label the scheduler can know without reading Namespaces.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A topology domain: label key and value.
type Pair = (String, String);

/// An affinity term resolved against the pod that carries it.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    namespaces: Vec<String>,
    namespace_selector: Option<LabelSelector>,
    selector: Option<LabelSelector>,
    key: String,
    weight: i64,
}

impl Term {
    /// `t` as carried by `owner`: no namespaces means the owner's own, and
    /// `matchLabelKeys`/`mismatchLabelKeys` take their values from its labels.
    fn new(owner: &Pod, t: &PodAffinityTerm, weight: i64) -> Term {
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.push(namespace(owner).to_string());
        }
        let selector = t.label_selector.clone().map(|mut s| {
            let labels = owner.metadata.labels.as_ref();
            let mut add = |keys: &Option<Vec<String>>, op: &str| {
                for k in keys.iter().flatten() {
                    if let Some(v) = labels.and_then(|l| l.get(k)) {
                        s.match_expressions.get_or_insert_default().push(
                            LabelSelectorRequirement {
                                key: k.clone(),
                                operator: op.into(),
                                values: Some(vec![v.clone()]),
                            },
                        );
                    }
                }
            };
            add(&t.match_label_keys, "In");
            add(&t.mismatch_label_keys, "NotIn");
            s
        });
        Term {
            namespaces,
            namespace_selector: t.namespace_selector.clone(),
            selector,
            key: t.topology_key.clone(),
            weight,
        }
    }

    /// Whether `pod` is one this term selects. A term without a label
    /// selector selects nothing, as in Kubernetes.
    fn matches(&self, pod: &Pod) -> bool {
        let ns = namespace(pod);
        let ns_labels = BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())]);
        let ns_ok = self.namespaces.iter().any(|n| n == ns)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, Some(&ns_labels)));
        ns_ok
            && self
                .selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, pod.metadata.labels.as_ref()))
    }

    /// The domain `node` is in for this term's topology key.
    fn pair(&self, node: &NodeInfo) -> Option<Pair> {
        Some((self.key.clone(), node.label(&self.key)?.to_string()))
    }
}

/// Which of a pod's four term lists to read.
#[derive(Clone, Copy)]
enum Kind {
    Affinity,
    AntiAffinity,
}

/// Whether `pod` has any pod affinity or anti-affinity term.
pub(crate) fn has_terms(pod: &Pod) -> bool {
    let a = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let aff = a.and_then(|a| a.pod_affinity.as_ref());
    let anti = a.and_then(|a| a.pod_anti_affinity.as_ref());
    let some = |v: Option<usize>| v.is_some_and(|n| n > 0);
    some(aff.and_then(|p| {
        p.required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(Vec::len)
    })) || some(aff.and_then(|p| {
        p.preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .map(Vec::len)
    })) || some(anti.and_then(|p| {
        p.required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(Vec::len)
    })) || some(anti.and_then(|p| {
        p.preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .map(Vec::len)
    }))
}

/// A pod's required terms of `kind`.
fn required(pod: &Pod, kind: Kind) -> Vec<Term> {
    let a = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms: Option<&Vec<PodAffinityTerm>> = match kind {
        Kind::Affinity => a.and_then(|a| a.pod_affinity.as_ref()).and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
        }),
        Kind::AntiAffinity => a.and_then(|a| a.pod_anti_affinity.as_ref()).and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
        }),
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| Term::new(pod, t, 1))
        .collect()
}

/// A pod's preferred terms of `kind`, with their weights.
fn preferred(pod: &Pod, kind: Kind) -> Vec<Term> {
    let a = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms: Option<&Vec<WeightedPodAffinityTerm>> = match kind {
        Kind::Affinity => a.and_then(|a| a.pod_affinity.as_ref()).and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }),
        Kind::AntiAffinity => a.and_then(|a| a.pod_anti_affinity.as_ref()).and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }),
    };
    let weighted = terms.into_iter().flatten();
    weighted
        .map(|w| Term::new(pod, &w.pod_affinity_term, i64::from(w.weight)))
        .collect()
}

/// The filter's view of the cluster for one incoming pod (PreFilter).
#[derive(Clone)]
pub(crate) struct FilterState {
    affinity: Vec<Term>,
    anti: Vec<Term>,
    /// Domains holding a pod that matches all of the incoming affinity terms.
    affinity_counts: HashMap<Pair, u32>,
    /// Domains holding a pod an incoming anti-affinity term selects.
    anti_counts: HashMap<Pair, u32>,
    /// Domains where an existing pod's anti-affinity refuses the incoming pod.
    existing_anti: HashMap<Pair, u32>,
    /// Whether the incoming pod matches all of its own affinity terms.
    self_match: bool,
}

impl FilterState {
    /// Counts the domains the filter needs, over every pod in the cluster.
    pub(crate) fn new(pod: &Pod, cluster: &[NodeInfo]) -> FilterState {
        let affinity = required(pod, Kind::Affinity);
        let anti = required(pod, Kind::AntiAffinity);
        let mut s = FilterState {
            self_match: affinity.iter().all(|t| t.matches(pod)),
            affinity,
            anti,
            affinity_counts: HashMap::new(),
            anti_counts: HashMap::new(),
            existing_anti: HashMap::new(),
        };
        // Without terms of its own, only existing pods' anti-affinity counts.
        let own = !s.affinity.is_empty() || !s.anti.is_empty();
        for node in cluster {
            let existing = if own { &node.pods } else { &node.with_affinity };
            for e in existing {
                s.tally(pod, e, node, true);
            }
        }
        s
    }

    /// This state with `removed` (pods that were on `node`) gone from the
    /// cluster, as kube-scheduler's `RemovePod` extension updates it.
    pub(crate) fn without(&self, pod: &Pod, node: &NodeInfo, removed: &[Arc<Pod>]) -> FilterState {
        let mut s = self.clone();
        let own = !s.affinity.is_empty() || !s.anti.is_empty();
        for e in removed.iter().filter(|e| own || has_terms(e)) {
            s.tally(pod, e, node, false);
        }
        s
    }

    /// Adds (or takes away) one existing pod's contribution.
    fn tally(&mut self, pod: &Pod, existing: &Pod, node: &NodeInfo, add: bool) {
        let bump = |m: &mut HashMap<Pair, u32>, t: &Term| {
            let Some(p) = t.pair(node) else {
                return;
            };
            if add {
                *m.entry(p).or_insert(0) += 1;
            } else if let Some(n) = m.get_mut(&p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&p);
                }
            }
        };
        for t in required(existing, Kind::AntiAffinity)
            .iter()
            .filter(|t| t.matches(pod))
        {
            bump(&mut self.existing_anti, t);
        }
        if !self.affinity.is_empty() && self.affinity.iter().all(|t| t.matches(existing)) {
            self.affinity
                .iter()
                .for_each(|t| bump(&mut self.affinity_counts, t));
        }
        for t in self.anti.iter().filter(|t| t.matches(existing)) {
            bump(&mut self.anti_counts, t);
        }
    }

    /// The reason `node` fails, if it does.
    pub(crate) fn filter(&self, node: &NodeInfo) -> Option<String> {
        if !self.affinity_ok(node) {
            return Some(AFFINITY.into());
        }
        let hit = |m: &HashMap<Pair, u32>, p: Pair| m.get(&p).is_some_and(|&n| n > 0);
        if self
            .anti
            .iter()
            .filter_map(|t| t.pair(node))
            .any(|p| hit(&self.anti_counts, p))
        {
            return Some(ANTI_AFFINITY.into());
        }
        let labels = node.labels().into_iter().flatten();
        if !self.existing_anti.is_empty()
            && labels
                .map(|(k, v)| (k.clone(), v.clone()))
                .any(|p| hit(&self.existing_anti, p))
        {
            return Some(EXISTING_ANTI_AFFINITY.into());
        }
        None
    }

    /// Every affinity term finds a matching pod in the node's domain; or no
    /// pod matches anywhere yet and the pod matches its own terms (the first
    /// of a group that wants to be together must land somewhere).
    fn affinity_ok(&self, node: &NodeInfo) -> bool {
        let mut found = true;
        for t in &self.affinity {
            let Some(p) = t.pair(node) else {
                return false;
            };
            found &= self.affinity_counts.get(&p).is_some_and(|&n| n > 0);
        }
        found || (self.affinity_counts.is_empty() && self.self_match)
    }
}

/// The InterPodAffinity score of each feasible node, 0..=100.
pub(crate) fn scores(pod: &Pod, cluster: &[NodeInfo], feasible: &[usize]) -> Vec<i64> {
    let mine: Vec<(Term, i64)> = preferred(pod, Kind::Affinity)
        .into_iter()
        .map(|t| (t, 1))
        .chain(
            preferred(pod, Kind::AntiAffinity)
                .into_iter()
                .map(|t| (t, -1)),
        )
        .collect();
    let mut domains: HashMap<Pair, i64> = HashMap::new();
    for node in cluster {
        // Without terms of its own, only existing pods' terms count.
        let existing = if mine.is_empty() {
            &node.with_affinity
        } else {
            &node.pods
        };
        for existing in existing {
            let theirs = required(existing, Kind::Affinity)
                .into_iter()
                .map(|t| (t, 1))
                .chain(
                    preferred(existing, Kind::Affinity)
                        .into_iter()
                        .map(|t| (t, 1)),
                )
                .chain(
                    preferred(existing, Kind::AntiAffinity)
                        .into_iter()
                        .map(|t| (t, -1)),
                );
            let hits = mine
                .iter()
                .filter(|(t, _)| t.matches(existing))
                .cloned()
                .chain(theirs.filter(|(t, _)| t.matches(pod)));
            for (t, sign) in hits {
                if let Some(p) = t.pair(node) {
                    *domains.entry(p).or_insert(0) += sign * t.weight;
                }
            }
        }
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|&i| {
            let node = &cluster[i];
            let in_domain = |(k, v): &&Pair| node.label(k) == Some(v.as_str());
            domains
                .iter()
                .filter(|(p, _)| in_domain(p))
                .map(|(_, s)| s)
                .sum()
        })
        .collect();
    min_max_normalize(raw)
}

/// Scales scores linearly so the lowest is 0 and the highest 100 (all 0
/// when they are equal).
fn min_max_normalize(raw: Vec<i64>) -> Vec<i64> {
    let (min, max) = (raw.iter().min().copied(), raw.iter().max().copied());
    let (Some(min), Some(max)) = (min, max) else {
        return raw;
    };
    raw.into_iter()
        .map(|s| {
            if max > min {
                100 * (s - min) / (max - min)
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{cluster, node, on, pod};
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn zoned(name: &str, zone: &str) -> Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"metadata": {"labels": {"zone": zone}}}))
    }

    fn with_affinity(name: &str, labels: Value, affinity: Value) -> Arc<Pod> {
        pod(
            name,
            json!({"metadata": {"labels": labels}, "spec": {"affinity": affinity}}),
        )
    }

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn filter_all(p: &Pod, c: &[NodeInfo]) -> Vec<Option<String>> {
        let s = FilterState::new(p, c);
        c.iter().map(|n| s.filter(n)).collect()
    }

    #[test]
    fn required_anti_affinity_keeps_pods_apart_per_domain() {
        let nodes = [zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")];
        let web = pod("w", json!({"metadata": {"labels": {"app": "web"}}}));
        let c = cluster(&nodes, &[on("a1", &web)]);
        let p = with_affinity(
            "p",
            json!({}),
            json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        );
        let anti = Some(ANTI_AFFINITY.to_string());
        assert_eq!(filter_all(&p, &c), [anti.clone(), anti, None]);
    }

    #[test]
    fn required_affinity_needs_a_matching_pod_in_the_domain() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b"), node("x", json!({}))];
        let db = pod("d", json!({"metadata": {"labels": {"app": "db"}}}));
        let c = cluster(&nodes, &[on("a1", &db)]);
        let p = with_affinity(
            "p",
            json!({}),
            json!({"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        let miss = Some(AFFINITY.to_string());
        assert_eq!(filter_all(&p, &c), [None, miss.clone(), miss]);
    }

    #[test]
    fn the_first_of_a_self_affine_group_goes_anywhere_with_the_key() {
        let nodes = [zoned("a1", "a"), node("x", json!({}))];
        let c = cluster(&nodes, &[]);
        let p = with_affinity(
            "p",
            json!({"app": "db"}),
            json!({"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        assert_eq!(filter_all(&p, &c), [None, Some(AFFINITY.to_string())]);
    }

    #[test]
    fn existing_anti_affinity_refuses_the_incoming_pod() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b")];
        let loner = with_affinity(
            "l",
            json!({}),
            json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        );
        let c = cluster(&nodes, &[on("a1", &loner)]);
        let web = pod("w", json!({"metadata": {"labels": {"app": "web"}}}));
        assert_eq!(
            filter_all(&web, &c),
            [Some(EXISTING_ANTI_AFFINITY.to_string()), None]
        );
        let other = pod("o", json!({"metadata": {"labels": {"app": "api"}}}));
        assert_eq!(filter_all(&other, &c), [None, None]);
    }

    #[test]
    fn terms_look_in_the_owners_namespace_unless_told() {
        let nodes = [zoned("a1", "a")];
        let elsewhere = pod(
            "w",
            json!({"metadata": {"namespace": "other", "labels": {"app": "web"}}}),
        );
        let c = cluster(&nodes, &[on("a1", &elsewhere)]);
        let anti = |t: Value| {
            with_affinity(
                "p",
                json!({}),
                json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
            )
        };
        let mut listed = term("web", "zone");
        listed["namespaces"] = json!(["other"]);
        let mut all = term("web", "zone");
        all["namespaceSelector"] = json!({});
        let mut by_name = term("web", "zone");
        by_name["namespaceSelector"] = json!({"matchLabels": {NAMESPACE_NAME_LABEL: "other"}});
        assert_eq!(filter_all(&anti(term("web", "zone")), &c), [None]);
        for t in [listed, all, by_name] {
            let got = filter_all(&anti(t.clone()), &c);
            assert_eq!(got[0].as_deref(), Some(ANTI_AFFINITY), "{t}");
        }
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_own_values() {
        let nodes = [zoned("a1", "a")];
        let old = pod(
            "o",
            json!({"metadata": {"labels": {"app": "web", "rev": "1"}}}),
        );
        let c = cluster(&nodes, &[on("a1", &old)]);
        let mut t = term("web", "zone");
        t["matchLabelKeys"] = json!(["rev"]);
        let new = with_affinity(
            "n",
            json!({"app": "web", "rev": "2"}),
            json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        );
        assert_eq!(
            filter_all(&new, &c),
            [None],
            "another revision does not count"
        );
    }

    #[test]
    fn preferred_terms_score_domains() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b"), zoned("c1", "c")];
        let db = pod("d", json!({"metadata": {"labels": {"app": "db"}}}));
        let cache = pod("k", json!({"metadata": {"labels": {"app": "cache"}}}));
        let c = cluster(&nodes, &[on("a1", &db), on("b1", &cache)]);
        let p = with_affinity(
            "p",
            json!({}),
            json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term("db", "zone")}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term("cache", "zone")}]}}),
        );
        assert_eq!(scores(&p, &c, &[0, 1, 2]), [100, 0, 50]);
        assert_eq!(scores(&pod("q", json!({})), &c, &[0, 1, 2]), [0, 0, 0]);
    }

    #[test]
    fn existing_pods_required_affinity_attracts_the_pods_it_wants() {
        let nodes = [zoned("a1", "a"), zoned("b1", "b")];
        let fan = with_affinity(
            "f",
            json!({}),
            json!({"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        let c = cluster(&nodes, &[on("b1", &fan)]);
        let db = pod("d", json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(scores(&db, &c, &[0, 1]), [0, 100]);
    }
}
