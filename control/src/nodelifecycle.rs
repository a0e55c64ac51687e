//! Node lifecycle, pure: a node whose Lease is not seen to move within the
//! grace period becomes `Ready=Unknown` and gets the
//! `node.kubernetes.io/unreachable:NoExecute` taint; pods bound to it that do
//! not tolerate the taint (for longer) are evicted. A node whose Lease moves
//! again loses the taint.
//!
//! Grace is measured on the leader's clock from when it *saw* each Lease
//! change, never by comparing a Lease's `renewTime` with its own clock (as
//! Kubernetes' node lifecycle controller does): a master that just became
//! leader starts every grace period afresh, so a failover alone never marks a
//! node unready. When more than half of the nodes are unreachable at once
//! (this master's own network, most likely), pods are not evicted
//! (Kubernetes' full-disruption mode).
//!
//! [`decide`] is the decision; the shell (`run::lifecycle`) feeds it from the
//! Node, Lease and Pod informers and writes through the API.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The taint an unreachable node gets.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The controller's timings.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// A Lease not seen to move for this long makes its node unreachable.
    pub grace: Duration,
    /// How long a pod without its own toleration stays on an unreachable node
    /// (the toleration Kubernetes' admission adds, with ferry's default).
    pub default_toleration: Duration,
}

impl Default for Timings {
    /// A dead node's pods are marked for deletion within 7 + 4 s of its last
    /// renewal as seen here (renewals come every 2 s, seen within a second's
    /// polling): 13 s at worst, under the 15 s target. Grace is 3.5 renewal
    /// intervals (Kubernetes: 4).
    fn default() -> Self {
        Timings {
            grace: Duration::from_secs(7),
            default_toleration: Duration::from_secs(4),
        }
    }
}

/// What the controller knows of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Name.
    pub name: String,
    /// Its Ready condition's status (`True`, `False`, `Unknown`).
    pub ready: String,
    /// Whether it carries the unreachable NoExecute taint.
    pub tainted: bool,
}

/// A pod bound to a node.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid (the delete's precondition).
    pub uid: String,
    /// Its node.
    pub node: String,
    /// Already marked for deletion.
    pub deleting: bool,
    /// How long it tolerates the unreachable taint: `None` = no toleration
    /// (the default applies), `Some(None)` = forever.
    pub toleration: Option<Option<Duration>>,
    /// Its `status.conditions` (the eviction marks it `DisruptionTarget`).
    pub conditions: Value,
}

/// What this master observed: when it last saw each node's Lease change, and
/// since when each node has been unreachable.
#[derive(Debug, Default)]
pub struct Observed {
    leases: HashMap<String, (String, Instant)>,
    unreachable_since: HashMap<String, Instant>,
    /// The nodes this term has registered, name → uid.
    registered: HashMap<String, String>,
}

/// A node this term's controller started or stopped watching over, as
/// Kubernetes' node lifecycle controller announces them (its `knownNodeSet`:
/// every node again under a new leader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// First seen (`RegisteredNode`): name, uid.
    Registered(String, String),
    /// Gone (`RemovingNode`): name, uid.
    Removed(String, String),
}

impl Registration {
    /// The Event's reason and message, in Kubernetes' words.
    pub fn event(&self) -> (&'static str, String) {
        match self {
            Registration::Registered(n, _) => (
                "RegisteredNode",
                format!("Node {n} event: Registered Node {n} in Controller"),
            ),
            Registration::Removed(n, _) => (
                "RemovingNode",
                format!("Node {n} event: Removing Node {n} from Controller"),
            ),
        }
    }
}

impl Observed {
    /// Records a node's Lease `renewTime` as read at `now`.
    pub fn lease(&mut self, node: &str, renew: &str, now: Instant) {
        match self.leases.get(node) {
            Some((r, _)) if r == renew => {}
            _ => {
                self.leases
                    .insert(node.to_string(), (renew.to_string(), now));
            }
        }
    }

    /// The nodes (name, uid) now in the cache against those registered
    /// before: the new ones registered, the missing ones removed, in name order.
    pub fn registrations<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<Registration> {
        let now: HashMap<&str, &str> = nodes.into_iter().collect();
        let mut out: Vec<Registration> = self
            .registered
            .iter()
            .filter(|(n, _)| !now.contains_key(n.as_str()))
            .map(|(n, u)| Registration::Removed(n.clone(), u.clone()))
            .collect();
        for r in &out {
            if let Registration::Removed(n, _) = r {
                self.registered.remove(n);
            }
        }
        for (n, u) in now {
            if !self.registered.contains_key(n) {
                self.registered.insert(n.to_string(), u.to_string());
                out.push(Registration::Registered(n.to_string(), u.to_string()));
            }
        }
        out.sort_by(|a, b| {
            let name = |r: &Registration| match r {
                Registration::Registered(n, _) | Registration::Removed(n, _) => n.clone(),
            };
            name(a).cmp(&name(b))
        });
        out
    }

    /// Whether `node` is unreachable or past its grace at `now`: its pods are
    /// the ones [`decide`] needs.
    pub fn suspect(&self, node: &str, now: Instant, t: &Timings) -> bool {
        self.unreachable_since.contains_key(node)
            || self
                .leases
                .get(node)
                .is_some_and(|(_, seen)| now.duration_since(*seen) > t.grace)
    }
}

/// One write the controller decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set Ready=Unknown and add the taint.
    MarkUnreachable(String),
    /// Remove the taint (its Lease moves again).
    Untaint(String),
    /// Mark a pod for deletion: (namespace, name, uid).
    Evict(String, String, String),
}

/// The decisions at `now`.
pub fn decide(
    now: Instant,
    nodes: &[NodeView],
    pods: &[PodView],
    observed: &mut Observed,
    t: &Timings,
) -> Vec<Action> {
    let mut out = Vec::new();
    let mut unreachable = 0;
    for n in nodes {
        // A node whose Lease this master has not seen yet counts from now.
        let seen = observed
            .leases
            .entry(n.name.clone())
            .or_insert_with(|| (String::new(), now))
            .1;
        if now.duration_since(seen) > t.grace {
            unreachable += 1;
            observed
                .unreachable_since
                .entry(n.name.clone())
                .or_insert(now);
            if n.ready != "Unknown" || !n.tainted {
                out.push(Action::MarkUnreachable(n.name.clone()));
            }
        } else {
            observed.unreachable_since.remove(&n.name);
            if n.tainted {
                out.push(Action::Untaint(n.name.clone()));
            }
        }
    }
    // Full disruption: more than half unreachable — evict nobody.
    if unreachable * 2 > nodes.len() {
        return out;
    }
    for p in pods.iter().filter(|p| !p.deleting) {
        let Some(since) = observed.unreachable_since.get(&p.node) else {
            continue;
        };
        let tolerates = match p.toleration {
            None => Some(t.default_toleration),
            Some(d) => d,
        };
        if tolerates.is_some_and(|d| now.duration_since(*since) >= d) {
            out.push(Action::Evict(
                p.namespace.clone(),
                p.name.clone(),
                p.uid.clone(),
            ));
        }
    }
    out
}

/// A node as [`decide`] sees it.
pub fn node_view(n: &Node) -> Option<NodeView> {
    let name = n.metadata.name.clone()?;
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str())
        .to_string();
    Some(NodeView {
        name,
        ready,
        tainted: tainted(n),
    })
}

/// Whether `n` carries the unreachable taint.
pub fn tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == UNREACHABLE))
}

/// How long `pod` tolerates the unreachable NoExecute taint: `None` = no
/// toleration (the default applies), `Some(None)` = forever.
pub fn toleration(pod: &Pod) -> Option<Option<Duration>> {
    let ts = pod.spec.as_ref()?.tolerations.as_ref()?;
    let t = ts.iter().find(|t| {
        let key_matches = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == UNREACHABLE,
        };
        let effect = t.effect.as_deref().unwrap_or("");
        key_matches && (effect.is_empty() || effect == "NoExecute")
    })?;
    Some(
        t.toleration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    )
}

/// A pod as [`decide`] sees it.
pub fn pod_view(p: &Pod) -> Option<PodView> {
    Some(PodView {
        namespace: p.metadata.namespace.clone()?,
        name: p.metadata.name.clone()?,
        uid: p.metadata.uid.clone()?,
        node: p.spec.as_ref()?.node_name.clone()?,
        deleting: p.metadata.deletion_timestamp.is_some(),
        toleration: toleration(p),
        conditions: p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str, tainted: bool) -> NodeView {
        NodeView {
            name: name.into(),
            ready: ready.into(),
            tainted,
        }
    }

    fn pod(name: &str, node: &str, toleration: Option<Option<Duration>>) -> PodView {
        PodView {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: node.into(),
            deleting: false,
            toleration,
            conditions: Value::Null,
        }
    }

    #[test]
    fn a_silent_node_is_marked_then_its_pods_evicted_after_their_toleration() {
        let t = Timings::default();
        let start = Instant::now();
        let mut obs = Observed::default();
        obs.lease("n1", "r1", start);
        obs.lease("n2", "r1", start);
        obs.lease("n3", "r1", start);
        let nodes = [
            node("n1", "True", false),
            node("n2", "True", false),
            node("n3", "True", false),
        ];
        let pods = [
            pod("a", "n1", None),
            pod("b", "n1", Some(Some(Duration::from_secs(20)))),
            pod("c", "n1", Some(None)),
            pod("d", "n2", None),
        ];
        // Within grace: nothing.
        assert!(decide(start + t.grace, &nodes, &pods, &mut obs, &t).is_empty());
        // n2 and n3 renew; n1 does not.
        let later = start + t.grace + Duration::from_secs(1);
        obs.lease("n2", "r2", later);
        obs.lease("n3", "r2", later);
        assert_eq!(
            decide(later, &nodes, &pods, &mut obs, &t),
            [Action::MarkUnreachable("n1".into())]
        );
        let nodes = [
            node("n1", "Unknown", true),
            node("n2", "True", false),
            node("n3", "True", false),
        ];
        // Its pods go after the default toleration; `b` after its own 20 s; `c` never.
        // n2 and n3 keep renewing.
        let mut round = 2;
        let mut evicted = |at| {
            round += 1;
            obs.lease("n2", &format!("r{round}"), at);
            obs.lease("n3", &format!("r{round}"), at);
            decide(at, &nodes, &pods, &mut obs, &t)
        };
        assert!(evicted(later + t.default_toleration - Duration::from_secs(1)).is_empty());
        assert_eq!(
            evicted(later + t.default_toleration),
            [Action::Evict("default".into(), "a".into(), "uid-a".into())]
        );
        let all = evicted(later + Duration::from_secs(21));
        assert!(all.contains(&Action::Evict("default".into(), "b".into(), "uid-b".into())));
        assert!(!all
            .iter()
            .any(|a| matches!(a, Action::Evict(_, n, _) if n == "c" || n == "d")));
        // n1 renews again: its taint goes.
        let back = later + Duration::from_secs(30);
        for n in ["n1", "n2", "n3"] {
            obs.lease(n, "back", back);
        }
        assert_eq!(
            decide(back, &nodes, &pods, &mut obs, &t),
            [Action::Untaint("n1".into())]
        );
    }

    #[test]
    fn nodes_are_registered_once_per_term_and_removed_when_gone() {
        let mut obs = Observed::default();
        let got = obs.registrations([("n2", "u2"), ("n1", "u1")]);
        assert_eq!(
            got,
            [
                Registration::Registered("n1".into(), "u1".into()),
                Registration::Registered("n2".into(), "u2".into()),
            ]
        );
        assert_eq!(
            got[0].event(),
            (
                "RegisteredNode",
                "Node n1 event: Registered Node n1 in Controller".to_string()
            )
        );
        // Seen again: nothing; one gone and one new.
        assert!(obs.registrations([("n1", "u1"), ("n2", "u2")]).is_empty());
        let got = obs.registrations([("n1", "u1"), ("n3", "u3")]);
        assert_eq!(
            got,
            [
                Registration::Removed("n2".into(), "u2".into()),
                Registration::Registered("n3".into(), "u3".into()),
            ]
        );
        assert_eq!(
            got[0].event().1,
            "Node n2 event: Removing Node n2 from Controller"
        );
        // A new term (a new Observed) registers every node again.
        let mut next = Observed::default();
        assert_eq!(next.registrations([("n1", "u1"), ("n3", "u3")]).len(), 2);
    }

    #[test]
    fn a_new_leader_starts_every_grace_period_afresh() {
        let t = Timings::default();
        let now = Instant::now();
        // A fresh leader (empty observations), leases last renewed long ago
        // by its own clock's reckoning: nothing is marked within the grace.
        let mut obs = Observed::default();
        let nodes = [node("n1", "True", false)];
        obs.lease("n1", "2020-01-01T00:00:00.000000Z", now);
        assert!(decide(now + t.grace, &nodes, &[], &mut obs, &t).is_empty());
        // Nodes never seen at all count from the first pass too.
        let mut obs = Observed::default();
        assert!(decide(now, &nodes, &[], &mut obs, &t).is_empty());
        assert!(decide(now + t.grace, &nodes, &[], &mut obs, &t).is_empty());
    }

    #[test]
    fn more_than_half_unreachable_evicts_nobody() {
        let t = Timings::default();
        let start = Instant::now();
        let mut obs = Observed::default();
        for n in ["n1", "n2", "n3"] {
            obs.lease(n, "r", start);
        }
        let nodes = [
            node("n1", "Unknown", true),
            node("n2", "Unknown", true),
            node("n3", "True", false),
        ];
        let at = start + t.grace + Duration::from_secs(1);
        obs.lease("n3", "r2", at);
        let pods = [pod("a", "n1", None)];
        assert!(decide(at, &nodes, &pods, &mut obs, &t).is_empty());
        let acts = decide(at + Duration::from_secs(60), &nodes, &pods, &mut obs, &t);
        assert!(
            acts.iter().all(|a| !matches!(a, Action::Evict(..))),
            "{acts:?}"
        );
    }

    #[test]
    fn tolerations_of_the_unreachable_taint_are_read_as_kubernetes_does() {
        let p = |t: Value| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": [], "tolerations": t}})).unwrap()
        };
        let empty: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).unwrap();
        assert_eq!(toleration(&empty), None);
        assert_eq!(
            toleration(&p(
                json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}])
            )),
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(toleration(&p(json!([{"operator": "Exists"}]))), Some(None));
        assert_eq!(
            toleration(&p(json!([{"key": "other", "operator": "Exists"}]))),
            None
        );
        assert_eq!(
            toleration(&p(
                json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}])
            )),
            None
        );
    }
}
