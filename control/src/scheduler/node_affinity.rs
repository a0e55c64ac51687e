//! Node selection terms: `nodeSelector`, and node affinity's required terms
//! (ORed; expressions within a term ANDed) and weighted preferences.

use k8s_openapi::api::core::v1::{
    Node, NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

/// Whether `node` satisfies `pod`'s `nodeSelector` and required node affinity.
pub(crate) fn required_matches(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required = node_affinity(pod).and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    selector_ok
        && required.is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
        })
}

/// The summed weights of `pod`'s preferred node affinity terms `node` matches.
pub(crate) fn preferred_weight(pod: &Pod, node: &Node) -> i64 {
    node_affinity(pod)
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A pod's node affinity.
fn node_affinity(pod: &Pod) -> Option<&NodeAffinity> {
    pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()
}

/// One term: all of its expressions (labels) and fields (`metadata.name`)
/// hold. A term with neither matches nothing, as in Kubernetes.
pub(crate) fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    exprs.iter().all(|r| requirement_matches(r, label(&r.key)))
        && fields.iter().all(|r| field_matches(r, node))
}

/// `matchFields`: only `metadata.name` with In or NotIn exists.
fn field_matches(r: &NodeSelectorRequirement, node: &Node) -> bool {
    r.key == "metadata.name"
        && matches!(r.operator.as_str(), "In" | "NotIn")
        && requirement_matches(r, node.metadata.name.as_deref())
}

/// One requirement against a label's value (`None`: the label is absent).
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    match r.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => value.is_none_or(|v| !listed(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => compare(r.operator.as_str(), values, value),
        _ => false,
    }
}

/// Gt and Lt: one integer value against an integer label.
fn compare(op: &str, values: &[String], value: Option<&str>) -> bool {
    let [bound] = values else {
        return false;
    };
    let (Ok(bound), Some(Ok(v))) = (bound.parse::<i64>(), value.map(str::parse::<i64>)) else {
        return false;
    };
    if op == "Gt" {
        v > bound
    } else {
        v < bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::{json, Value};

    fn required(terms: Value) -> std::sync::Arc<Pod> {
        pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
        )
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]})
    }

    #[test]
    fn required_node_affinity_operators() {
        let n = node(
            "n1",
            json!({"metadata": {"labels": {"zone": "a", "cores": "8"}}}),
        );
        let cases = [
            (json!([expr("zone", "In", &["a", "b"])]), true),
            (json!([expr("zone", "In", &["b"])]), false),
            (json!([expr("zone", "NotIn", &["b"])]), true),
            (json!([expr("rack", "NotIn", &["b"])]), true),
            (json!([expr("zone", "Exists", &[])]), true),
            (json!([expr("zone", "DoesNotExist", &[])]), false),
            (json!([expr("cores", "Gt", &["4"])]), true),
            (json!([expr("cores", "Lt", &["4"])]), false),
            (json!([expr("cores", "Gt", &["x"])]), false),
            (json!([expr("zone", "Gt", &["1"])]), false),
            (
                json!([expr("zone", "In", &["b"]), expr("zone", "In", &["a"])]),
                true,
            ),
            (
                json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "In", "values": ["2"]}]}]),
                false,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
                false,
            ),
            (json!([{}]), false),
            (json!([]), false),
        ];
        for (terms, want) in cases {
            assert_eq!(
                required_matches(&required(terms.clone()), &n),
                want,
                "{terms}"
            );
        }
    }

    #[test]
    fn node_selector_and_affinity_both_apply() {
        let n = node(
            "n",
            json!({"metadata": {"labels": {"zone": "a", "disk": "ssd"}}}),
        );
        let mut p = (*required(json!([expr("zone", "In", &["a"])]))).clone();
        assert!(required_matches(&p, &n));
        if let Some(s) = p.spec.as_mut() {
            s.node_selector = Some([("disk".to_string(), "hdd".to_string())].into());
        }
        assert!(!required_matches(&p, &n));
    }

    #[test]
    fn preferred_terms_sum_their_weights() {
        let n = node(
            "n",
            json!({"metadata": {"labels": {"zone": "a", "disk": "ssd"}}}),
        );
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": expr("zone", "In", &["a"])},
                {"weight": 5, "preference": expr("disk", "In", &["ssd"])},
                {"weight": 50, "preference": expr("disk", "In", &["hdd"])},
                {"weight": 70, "preference": {}},
            ]}}}}),
        );
        assert_eq!(preferred_weight(&p, &n), 15);
        assert_eq!(preferred_weight(&pod("q", json!({})), &n), 0);
    }
}
