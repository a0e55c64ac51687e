//! The node IPAM controller's pure core, as Kubernetes' range allocator: an
//! index of the sub-ranges of the cluster CIDR that Nodes hold, kept current
//! from the Node informer ([`Allocator::observe`]), from which a Node without
//! `spec.podCIDR` gets the lowest free one ([`Allocator::decide`]) in
//! O(log n). Held ranges are segments with a holder count (two Nodes that
//! claim one range — a store written by someone else — both count, and the
//! range is free only once both let it go); free ranges are intervals, so
//! the lowest is the first. When none is left, the Node waits in arrival
//! order until one is freed (a Node deleted): exhaustion is remembered, not
//! recomputed per Node per pass.

use ferry_api::network::Cidr;
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, HashMap};

/// What to do about one Node's pod range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It has a range in the cluster CIDR, or one is on its way.
    Keep,
    /// Its podCIDR (as written) lies outside the cluster CIDR or does not
    /// parse: left as it is.
    Outside(String),
    /// Give it this range (held for it from now on: [`Allocator::unassign`]
    /// if the write fails).
    Assign(Cidr),
    /// Every range is taken: it waits for one.
    Exhausted {
        /// It was not waiting yet (its one Event).
        first_for_node: bool,
        /// No node was waiting before it (the episode's one log line).
        episode_starts: bool,
    },
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

/// Whether a node has any pod range written.
pub fn has_pod_cidr(n: &Node) -> bool {
    !pod_cidrs(n).is_empty()
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

/// The index of assigned pod ranges for one term.
#[derive(Debug)]
pub struct Allocator {
    cluster: Cidr,
    prefix: u8,
    /// Held sub-range indexes as disjoint segments: first → (last, holders).
    held: BTreeMap<u128, (u128, u32)>,
    /// Free sub-range indexes as disjoint intervals: first → last.
    free: BTreeMap<u128, u128>,
    free_count: u128,
    /// What each Node holds as the cache shows it.
    seen: HashMap<String, Vec<(u128, u128)>>,
    /// Ranges assigned this term that the cache does not show yet.
    pending: HashMap<String, u128>,
    /// Nodes waiting for a range, in arrival order: seq → name, and back.
    waiting: BTreeMap<u64, String>,
    waiting_at: HashMap<String, u64>,
    next_seq: u64,
}

/// What [`Allocator::observe`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The node's range overlaps one another node holds (a conflict to report).
    pub conflict: bool,
    /// Ranges became free (waiting nodes may take them: [`Allocator::to_retry`]).
    pub freed: bool,
}

impl Allocator {
    /// Nothing held: every `prefix` range of `cluster` is free.
    pub fn new(cluster: Cidr, prefix: u8) -> Allocator {
        let total = cluster.subnets(prefix);
        let mut free = BTreeMap::new();
        if total > 0 {
            free.insert(0, total - 1);
        }
        Allocator {
            cluster,
            prefix,
            held: BTreeMap::new(),
            free,
            free_count: total,
            seen: HashMap::new(),
            pending: HashMap::new(),
            waiting: BTreeMap::new(),
            waiting_at: HashMap::new(),
            next_seq: 0,
        }
    }

    /// How many ranges are free.
    pub fn free(&self) -> u128 {
        self.free_count
    }

    /// How many nodes wait for a range.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a Node's state as the cache now shows it (`None`: deleted).
    pub fn observe(&mut self, name: &str, node: Option<&Node>) -> Observed {
        let now: Vec<(u128, u128)> = node
            .map(pod_cidrs)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.parse::<Cidr>().ok())
            .filter_map(|c| covered(self.cluster, self.prefix, c))
            .collect();
        let before = self.free_count;
        let mut out = Observed::default();
        let has_range = node.is_some_and(has_pod_cidr);
        // A range written, or the node gone: what this term assigned it is
        // the cache's now (or no one's).
        if node.is_none() || has_range {
            if let Some(i) = self.pending.remove(name) {
                self.release((i, i));
            }
            self.stop_waiting(name);
        }
        if self.seen.get(name).map(Vec::as_slice) != Some(now.as_slice()) {
            for iv in self.seen.remove(name).unwrap_or_default() {
                self.release(iv);
            }
            for &iv in &now {
                out.conflict |= self.hold(iv);
            }
            if !now.is_empty() {
                self.seen.insert(name.to_string(), now);
            }
        }
        out.freed = self.free_count > before;
        out
    }

    /// Decides `node`'s range; an assignment is held for it at once.
    pub fn decide(&mut self, node: &Node) -> Decision {
        let name = node.metadata.name.as_deref().unwrap_or("");
        if let Some(first) = pod_cidrs(node).first() {
            return match first.parse::<Cidr>() {
                Ok(c) if self.cluster.contains(c.addr()) && c.prefix() >= self.cluster.prefix() => {
                    Decision::Keep
                }
                _ => Decision::Outside(first.clone()),
            };
        }
        if self.pending.contains_key(name) {
            return Decision::Keep;
        }
        let Some((&i, _)) = self.free.first_key_value() else {
            let episode_starts = self.waiting.is_empty();
            let first_for_node = !self.waiting_at.contains_key(name);
            if first_for_node {
                self.waiting.insert(self.next_seq, name.to_string());
                self.waiting_at.insert(name.to_string(), self.next_seq);
                self.next_seq += 1;
            }
            return Decision::Exhausted {
                first_for_node,
                episode_starts,
            };
        };
        let Some(c) = self.cluster.subnet(self.prefix, i) else {
            return Decision::Outside(String::new()); // not reached: i < total
        };
        self.hold((i, i));
        self.pending.insert(name.to_string(), i);
        self.stop_waiting(name);
        Decision::Assign(c)
    }

    /// The assignment [`decide`](Allocator::decide) made for `name` was not
    /// written: its range is free again.
    pub fn unassign(&mut self, name: &str) {
        if let Some(i) = self.pending.remove(name) {
            self.release((i, i));
        }
    }

    /// The waiting nodes that may get a range now: the first ones, as many
    /// as ranges are free.
    pub fn to_retry(&self) -> Vec<String> {
        let n = usize::try_from(self.free_count).unwrap_or(usize::MAX);
        self.waiting.values().take(n).cloned().collect()
    }

    fn stop_waiting(&mut self, name: &str) {
        if let Some(seq) = self.waiting_at.remove(name) {
            self.waiting.remove(&seq);
        }
    }

    /// Cuts the held segment that spans `at` so one starts there.
    fn split(&mut self, at: u128) {
        if let Some((&s, &(e, c))) = self.held.range(..at).next_back() {
            if e >= at {
                self.held.insert(s, (at - 1, c));
                self.held.insert(at, (e, c));
            }
        }
    }

    /// The held segments within `first..=last` as (start, end, holders),
    /// split at its bounds first so each lies wholly inside.
    fn held_segments(&mut self, first: u128, last: u128) -> Vec<(u128, u128, u32)> {
        self.split(first);
        self.split(last + 1);
        self.held
            .range(first..=last)
            .map(|(&s, &(e, c))| (s, e, c))
            .collect()
    }

    /// One more holder of `first..=last`; true if another held part of it.
    fn hold(&mut self, (first, last): (u128, u128)) -> bool {
        let segs = self.held_segments(first, last);
        let conflict = !segs.is_empty();
        let mut at = first;
        for (s, e, c) in segs {
            if s > at {
                self.held.insert(at, (s - 1, 1));
            }
            self.held.insert(s, (e, c + 1));
            at = e + 1;
        }
        if at <= last {
            self.held.insert(at, (last, 1));
        }
        self.take_free(first, last);
        conflict
    }

    /// One holder fewer of `first..=last`; what no one holds any more is free.
    fn release(&mut self, (first, last): (u128, u128)) {
        let segs = self.held_segments(first, last);
        for (s, e, c) in segs {
            if c > 1 {
                self.held.insert(s, (e, c - 1));
            } else {
                self.held.remove(&s);
                self.give_free(s, e);
            }
        }
    }

    /// Removes `first..=last` from the free intervals.
    fn take_free(&mut self, first: u128, last: u128) {
        let mut touching: Vec<(u128, u128)> = self
            .free
            .range(..first)
            .next_back()
            .filter(|(_, &e)| e >= first)
            .map(|(&s, &e)| (s, e))
            .into_iter()
            .collect();
        touching.extend(self.free.range(first..=last).map(|(&s, &e)| (s, e)));
        for (s, e) in touching {
            self.free.remove(&s);
            let (a, b) = (s.max(first), e.min(last));
            self.free_count -= b - a + 1;
            if s < first {
                self.free.insert(s, first - 1);
            }
            if e > last {
                self.free.insert(last + 1, e);
            }
        }
    }

    /// Adds `first..=last` (not free before) to the free intervals, joining
    /// its neighbours.
    fn give_free(&mut self, mut first: u128, mut last: u128) {
        self.free_count += last - first + 1;
        if let Some((&s, &e)) = self.free.range(..first).next_back() {
            if e + 1 == first {
                self.free.remove(&s);
                first = s;
            }
        }
        if let Some(e) = self.free.get(&(last + 1)).copied() {
            self.free.remove(&(last + 1));
            last = e;
        }
        self.free.insert(first, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>) -> Node {
        let mut v = json!({"metadata": {"name": name}, "spec": {}});
        if let Some(c) = cidr {
            v["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
        }
        serde_json::from_value(v).unwrap()
    }

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    /// An allocator that has seen `nodes` (name, podCIDR).
    fn seen(cluster: &str, prefix: u8, nodes: &[(&str, &str)]) -> Allocator {
        let mut a = Allocator::new(c(cluster), prefix);
        for (n, cidr) in nodes {
            a.observe(n, Some(&node(n, Some(cidr))));
        }
        a
    }

    #[test]
    fn nodes_get_the_lowest_free_range() {
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Decision);
        let cases: Vec<Case> = vec![
            ("first node", vec![], Decision::Assign(c("10.42.0.0/24"))),
            (
                "a gap is reused",
                vec![("a", "10.42.0.0/24"), ("b", "10.42.2.0/24")],
                Decision::Assign(c("10.42.1.0/24")),
            ),
            (
                "a wider range covers several",
                vec![("a", "10.42.0.0/23")],
                Decision::Assign(c("10.42.2.0/24")),
            ),
            (
                "ranges outside the cluster CIDR take nothing",
                vec![("a", "10.99.0.0/24"), ("b", "bogus")],
                Decision::Assign(c("10.42.0.0/24")),
            ),
            (
                "a range wider than the cluster CIDR takes it all",
                vec![("a", "10.0.0.0/8")],
                Decision::Exhausted {
                    first_for_node: true,
                    episode_starts: true,
                },
            ),
        ];
        for (what, nodes, want) in cases {
            let mut a = seen("10.42.0.0/16", 24, &nodes);
            assert_eq!(a.decide(&node("me", None)), want, "{what}");
        }
    }

    #[test]
    fn nodes_with_a_range_or_one_on_its_way_keep_it() {
        let mut a = Allocator::new(c("10.42.0.0/16"), 24);
        assert_eq!(a.decide(&node("a", Some("10.42.7.0/24"))), Decision::Keep);
        assert_eq!(
            a.decide(&node("b", Some("192.168.0.0/24"))),
            Decision::Outside("192.168.0.0/24".into())
        );
        assert_eq!(
            a.decide(&node("c", None)),
            Decision::Assign(c("10.42.0.0/24"))
        );
        // Asked again before the cache shows it: nothing new.
        assert_eq!(a.decide(&node("c", None)), Decision::Keep);
        assert_eq!(
            a.decide(&node("d", None)),
            Decision::Assign(c("10.42.1.0/24"))
        );
        // A stale copy of c without its range changes nothing; the cache
        // showing the range takes the assignment over, still held once.
        a.observe("c", Some(&node("c", None)));
        assert_eq!(a.decide(&node("c", None)), Decision::Keep);
        a.observe("c", Some(&node("c", Some("10.42.0.0/24"))));
        assert_eq!(a.free(), 254);
        // d's write failed: its range is the next one again.
        a.unassign("d");
        assert_eq!(a.free(), 255);
        assert_eq!(
            a.decide(&node("e", None)),
            Decision::Assign(c("10.42.1.0/24"))
        );
    }

    #[test]
    fn a_deleted_node_gives_its_range_back() {
        let mut a = seen(
            "10.42.0.0/16",
            24,
            &[("a", "10.42.0.0/24"), ("b", "10.42.1.0/24")],
        );
        assert_eq!(a.free(), 254);
        let o = a.observe("a", None);
        assert!(o.freed && !o.conflict);
        assert_eq!(a.free(), 255);
        assert_eq!(
            a.decide(&node("c", None)),
            Decision::Assign(c("10.42.0.0/24"))
        );
        // The same node seen again unchanged (a status update) frees nothing.
        assert_eq!(
            a.observe("b", Some(&node("b", Some("10.42.1.0/24")))),
            Observed::default()
        );
        assert_eq!(a.free(), 254);
    }

    #[test]
    fn exhaustion_is_remembered_until_a_range_is_freed() {
        // A /22 split by /24: four ranges.
        let mut a = Allocator::new(c("10.42.0.0/22"), 24);
        for i in 0..4 {
            let d = a.decide(&node(&format!("n{i}"), None));
            assert_eq!(d, Decision::Assign(c(&format!("10.42.{i}.0/24"))));
        }
        let exhausted = |first_for_node, episode_starts| Decision::Exhausted {
            first_for_node,
            episode_starts,
        };
        assert_eq!(a.decide(&node("late1", None)), exhausted(true, true));
        assert_eq!(a.decide(&node("late2", None)), exhausted(true, false));
        // Asked again (a resync, a status update): no new Event, no new log.
        assert_eq!(a.decide(&node("late1", None)), exhausted(false, false));
        assert_eq!(a.waiting(), 2);
        assert!(a.to_retry().is_empty());
        // The cache shows the four; one goes: the first waiting node is retried.
        for i in 0..4 {
            let n = format!("n{i}");
            a.observe(&n, Some(&node(&n, Some(&format!("10.42.{i}.0/24")))));
        }
        assert!(a.observe("n2", None).freed);
        assert_eq!(a.to_retry(), ["late1"]);
        assert_eq!(
            a.decide(&node("late1", None)),
            Decision::Assign(c("10.42.2.0/24"))
        );
        assert_eq!(a.decide(&node("late2", None)), exhausted(false, false));
        // A waiting node deleted stops waiting; the next freed range goes to
        // whoever waits then.
        a.observe("late2", None);
        assert_eq!(a.waiting(), 0);
        assert_eq!(a.decide(&node("late3", None)), exhausted(true, true));
        a.observe("n0", None);
        assert_eq!(a.to_retry(), ["late3"]);
    }

    #[test]
    fn a_restart_counts_conflicting_ranges_until_every_holder_is_gone() {
        // As a new leader finds the store: a and b claim one range, c a /23,
        // d a range outside.
        let mut a = Allocator::new(c("10.42.0.0/16"), 24);
        assert!(
            !a.observe("a", Some(&node("a", Some("10.42.0.0/24"))))
                .conflict
        );
        assert!(
            a.observe("b", Some(&node("b", Some("10.42.0.0/24"))))
                .conflict
        );
        assert!(
            !a.observe("c", Some(&node("c", Some("10.42.2.0/23"))))
                .conflict
        );
        assert!(
            a.observe("e", Some(&node("e", Some("10.42.3.0/24"))))
                .conflict
        );
        a.observe("d", Some(&node("d", Some("10.99.0.0/24"))));
        assert_eq!(a.free(), 256 - 3);
        assert_eq!(
            a.decide(&node("new1", None)),
            Decision::Assign(c("10.42.1.0/24"))
        );
        assert_eq!(
            a.decide(&node("new2", None)),
            Decision::Assign(c("10.42.4.0/24"))
        );
        // a goes: b still holds the range.
        assert!(!a.observe("a", None).freed);
        // c goes: 10.42.2.0 is free, 10.42.3.0 still e's.
        assert!(a.observe("c", None).freed);
        assert_eq!(
            a.decide(&node("new3", None)),
            Decision::Assign(c("10.42.2.0/24"))
        );
        assert!(a.observe("b", None).freed);
        assert_eq!(
            a.decide(&node("new4", None)),
            Decision::Assign(c("10.42.0.0/24"))
        );
    }

    #[test]
    fn the_index_agrees_with_a_brute_force_count_under_random_changes() {
        // 16 ranges (/24 split by /28); random nodes come, change and go.
        let cluster = c("10.42.0.0/24");
        let mut a = Allocator::new(cluster, 28);
        let mut model: BTreeMap<String, Vec<u128>> = BTreeMap::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..5000 {
            let name = format!("n{}", rnd(24));
            match rnd(4) {
                0 => {
                    a.observe(&name, None);
                    model.remove(&name);
                }
                1 => {
                    // Written by someone else: any /28 or /27, conflicts allowed.
                    let (p, i) = if rnd(3) == 0 {
                        (27, rnd(8))
                    } else {
                        (28, rnd(16))
                    };
                    let r = cluster.subnet(p, i as u128).unwrap();
                    a.observe(&name, Some(&node(&name, Some(&r.to_string()))));
                    let k = if p == 27 {
                        vec![i as u128 * 2, i as u128 * 2 + 1]
                    } else {
                        vec![i as u128]
                    };
                    model.insert(name, k);
                }
                _ => {
                    if model.contains_key(&name) {
                        continue;
                    }
                    let held: std::collections::BTreeSet<u128> =
                        model.values().flatten().copied().collect();
                    let lowest = (0..16u128).find(|i| !held.contains(i));
                    match (a.decide(&node(&name, None)), lowest) {
                        (Decision::Assign(r), Some(i)) => {
                            assert_eq!(r, cluster.subnet(28, i).unwrap(), "step {step}");
                            // The cache shows it at once.
                            a.observe(&name, Some(&node(&name, Some(&r.to_string()))));
                            model.insert(name, vec![i]);
                        }
                        (Decision::Exhausted { .. }, None) => {}
                        (d, want) => panic!("step {step}: {d:?}, want lowest {want:?}"),
                    }
                }
            }
            let held: std::collections::BTreeSet<u128> =
                model.values().flatten().copied().collect();
            assert_eq!(a.free(), 16 - held.len() as u128, "step {step}");
        }
    }
}
