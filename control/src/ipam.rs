//! The node IPAM controller's pure core (Kubernetes' range allocator): a
//! Node without `spec.podCIDR` gets the lowest sub-range of the cluster CIDR
//! no other Node holds — counting the ranges this term assigned that the
//! cache does not show yet.

use ferry_api::network::Cidr;
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What to do about one Node's pod range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It has a range in the cluster CIDR, or one is on its way.
    Keep,
    /// Its podCIDR (as written) lies outside the cluster CIDR or does not
    /// parse: left as it is.
    Outside(String),
    /// Give it this range.
    Assign(Cidr),
    /// Every range is taken.
    Exhausted,
}

/// The node's pod ranges as written (`podCIDRs`, else `podCIDR`).
fn pod_cidrs(n: &Node) -> Vec<String> {
    let Some(spec) = &n.spec else {
        return Vec::new();
    };
    match spec.pod_cidrs.as_deref() {
        Some(l) if !l.is_empty() => l.to_vec(),
        _ => spec
            .pod_cidr
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect(),
    }
}

/// The sub-range indexes `used` covers in `cluster` split by `prefix`, as
/// an inclusive interval; None when they do not meet.
fn covered(cluster: Cidr, prefix: u8, used: Cidr) -> Option<(u128, u128)> {
    if !cluster.overlaps(&used) {
        return None;
    }
    let step = cluster.subnet(prefix, 0)?.size();
    let (off, len) = match cluster.index_of(used.addr()) {
        Some(off) => (off, used.size()),
        None => (0, cluster.size()), // `used` holds the whole cluster range
    };
    let last = (off + len.max(1) - 1) / step;
    Some((off / step, last.min(cluster.subnets(prefix) - 1)))
}

/// The pod range `node` should get: `nodes` is every Node in the cache
/// (`node` among them), `pending` the ranges this term assigned by node name.
pub fn decide(
    cluster: Cidr,
    prefix: u8,
    node: &Node,
    nodes: &[Arc<Node>],
    pending: &BTreeMap<String, Cidr>,
) -> Decision {
    let name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(first) = pod_cidrs(node).first() {
        return match first.parse::<Cidr>() {
            Ok(c) if cluster.contains(c.addr()) && c.prefix() >= cluster.prefix() => Decision::Keep,
            _ => Decision::Outside(first.clone()),
        };
    }
    if pending.contains_key(name) {
        return Decision::Keep;
    }
    let mut taken: Vec<(u128, u128)> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(name))
        .flat_map(|n| pod_cidrs(n))
        .filter_map(|c| c.parse::<Cidr>().ok())
        .chain(
            pending
                .iter()
                .filter(|(n, _)| n.as_str() != name)
                .map(|(_, c)| *c),
        )
        .filter_map(|c| covered(cluster, prefix, c))
        .collect();
    taken.sort();
    // The lowest index before, between or after the taken intervals.
    let mut next = 0u128;
    for (first, last) in taken {
        if first > next {
            break;
        }
        next = next.max(last + 1);
    }
    match cluster.subnet(prefix, next) {
        Some(c) => Decision::Assign(c),
        None => Decision::Exhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>) -> Arc<Node> {
        let mut v = json!({"metadata": {"name": name}, "spec": {}});
        if let Some(c) = cidr {
            v["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn nodes_get_the_lowest_free_range() {
        let cluster = c("10.42.0.0/16");
        let none: BTreeMap<String, Cidr> = BTreeMap::new();
        let pending = BTreeMap::from([("n9".to_string(), c("10.42.2.0/24"))]);
        type Case<'a> = (
            &'a str,
            Vec<Arc<Node>>,
            &'a BTreeMap<String, Cidr>,
            Decision,
        );
        let cases: Vec<Case> = vec![
            (
                "first node",
                vec![],
                &none,
                Decision::Assign(c("10.42.0.0/24")),
            ),
            (
                "a gap is reused",
                vec![
                    node("a", Some("10.42.0.0/24")),
                    node("b", Some("10.42.2.0/24")),
                ],
                &none,
                Decision::Assign(c("10.42.1.0/24")),
            ),
            (
                "an assignment the cache does not show yet counts",
                vec![
                    node("a", Some("10.42.0.0/24")),
                    node("b", Some("10.42.1.0/24")),
                ],
                &pending,
                Decision::Assign(c("10.42.3.0/24")),
            ),
            (
                "a wider range covers several",
                vec![node("a", Some("10.42.0.0/23"))],
                &none,
                Decision::Assign(c("10.42.2.0/24")),
            ),
            (
                "ranges outside the cluster CIDR take nothing",
                vec![node("a", Some("10.99.0.0/24"))],
                &none,
                Decision::Assign(c("10.42.0.0/24")),
            ),
        ];
        for (what, mut nodes, pending, want) in cases {
            let me = node("me", None);
            nodes.push(me.clone());
            assert_eq!(decide(cluster, 24, &me, &nodes, pending), want, "{what}");
        }
    }

    #[test]
    fn nodes_with_a_range_or_one_on_its_way_keep_it() {
        let cluster = c("10.42.0.0/16");
        let none = BTreeMap::new();
        let has = node("a", Some("10.42.7.0/24"));
        assert_eq!(
            decide(cluster, 24, &has, std::slice::from_ref(&has), &none),
            Decision::Keep
        );
        let outside = node("b", Some("192.168.0.0/24"));
        assert_eq!(
            decide(cluster, 24, &outside, std::slice::from_ref(&outside), &none),
            Decision::Outside("192.168.0.0/24".into())
        );
        let me = node("c", None);
        let pending = BTreeMap::from([("c".to_string(), c("10.42.0.0/24"))]);
        assert_eq!(
            decide(cluster, 24, &me, std::slice::from_ref(&me), &pending),
            Decision::Keep
        );
    }

    #[test]
    fn no_two_nodes_get_one_range_and_a_full_cluster_range_is_exhausted() {
        // A /22 split by /24: four ranges.
        let cluster = c("10.42.0.0/22");
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut pending = BTreeMap::new();
        for i in 0..4 {
            let me = node(&format!("n{i}"), None);
            let mut all = nodes.clone();
            all.push(me.clone());
            let Decision::Assign(r) = decide(cluster, 24, &me, &all, &pending) else {
                panic!("n{i} got no range");
            };
            assert_eq!(r, cluster.subnet(24, i).unwrap());
            // Half are seen by the cache, half still pending.
            if i % 2 == 0 {
                nodes.push(node(&format!("n{i}"), Some(&r.to_string())));
            } else {
                nodes.push(me);
                pending.insert(format!("n{i}"), r);
            }
        }
        let late = node("late", None);
        nodes.push(late.clone());
        assert_eq!(
            decide(cluster, 24, &late, &nodes, &pending),
            Decision::Exhausted
        );
        // A whole-cluster range on one node leaves nothing either.
        let greedy = node("g", Some("10.42.0.0/22"));
        assert_eq!(
            decide(
                cluster,
                24,
                &late,
                &[greedy, late.clone()],
                &BTreeMap::new()
            ),
            Decision::Exhausted
        );
    }
}
