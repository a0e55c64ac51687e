//! Node lifecycle (leader only): a node whose Lease is not renewed within the
//! grace period becomes `Ready=Unknown` and gets the
//! `node.kubernetes.io/unreachable:NoExecute` taint; pods bound to it that do
//! not tolerate the taint (for longer) are marked for deletion. A node whose
//! Lease moves again loses the taint. And the bootstrap token cleaner: expired
//! token Secrets are deleted.
//!
//! Grace is measured on this master's clock from when it *saw* each Lease
//! change, never by comparing a Lease's `renewTime` with its own clock (as
//! Kubernetes' node lifecycle controller does): a master that just became
//! leader starts every grace period afresh, so a failover alone never marks a
//! node unready. When more than half of the nodes are unreachable at once
//! (this master's own network, most likely), pods are not evicted
//! (Kubernetes' full-disruption mode).
//!
//! [`decide`] is pure; [`run`] is the shell that reads and writes through the
//! API pipeline with preconditions.

use crate::apiserver::{ApiServer, NODE_LEASE_NAMESPACE};
use ferry_api::object::{ListOptions, ObjectRequest, PatchType, Verb};
use ferry_api::tls::Identity;
use ferry_api::token::{self, TokenSecret};
use ferry_control::podgc::{condition_patch, disruption_target, Disruption};
use serde_json::{json, Value};
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

fn node_view(n: &Value) -> Option<NodeView> {
    let name = n.pointer("/metadata/name")?.as_str()?.to_string();
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_string();
    let tainted = n
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == UNREACHABLE));
    Some(NodeView {
        name,
        ready,
        tainted,
    })
}

/// How long `pod` tolerates the unreachable NoExecute taint.
pub fn toleration(pod: &Value) -> Option<Option<Duration>> {
    let ts = pod.pointer("/spec/tolerations")?.as_array()?;
    let t = ts.iter().find(|t| {
        let key_matches = match t["key"].as_str() {
            None | Some("") => t["operator"] == "Exists",
            Some(k) => k == UNREACHABLE,
        };
        let effect = t["effect"].as_str().unwrap_or("");
        key_matches && (effect.is_empty() || effect == "NoExecute")
    })?;
    Some(
        t["tolerationSeconds"]
            .as_i64()
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    )
}

fn pod_view(p: &Value) -> Option<PodView> {
    let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    Some(PodView {
        namespace: s("/metadata/namespace")?,
        name: s("/metadata/name")?,
        uid: s("/metadata/uid")?,
        node: s("/spec/nodeName")?,
        deleting: p.pointer("/metadata/deletionTimestamp").is_some(),
        toleration: toleration(p),
        conditions: p
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or(Value::Null),
    })
}

async fn list(
    api: &ApiServer,
    plural: &str,
    ns: Option<&str>,
    fields: Option<&str>,
) -> Option<Vec<Value>> {
    let mut r = ObjectRequest::new(Verb::List, plural, ns, None);
    r.list = ListOptions {
        field_selector: fields.map(str::to_string),
        ..ListOptions::default()
    };
    let resp = api.handle(&Identity::Admin, &r).await.ok()?;
    if resp.code != 200 {
        return None;
    }
    resp.json().ok()?["items"].as_array().cloned()
}

fn now_rfc3339() -> String {
    ferry_api::clock::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn send(api: &ApiServer, r: &ObjectRequest, what: &str) -> bool {
    match api.handle(&Identity::Admin, r).await {
        Ok(resp) if resp.code < 300 => true,
        other => {
            tracing::debug!("{what} failed: {other:?}");
            false
        }
    }
}

async fn act(api: &ApiServer, a: &Action, nodes: &[Value], pods: &[PodView]) {
    match a {
        Action::MarkUnreachable(name) | Action::Untaint(name) => {
            let Some(node) = nodes
                .iter()
                .find(|n| n["metadata"]["name"] == name.as_str())
            else {
                return;
            };
            let Some(view) = node_view(node) else { return };
            let unreachable = matches!(a, Action::MarkUnreachable(_));
            if view.tainted != unreachable {
                let mut taints: Vec<Value> = node
                    .pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                taints.retain(|t| t["key"] != UNREACHABLE);
                if unreachable {
                    taints.push(
                        json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now_rfc3339()}),
                    );
                }
                // With the resourceVersion read: a concurrent change makes this
                // fail, and the next pass decides again on what it reads then.
                let mut r =
                    ObjectRequest::new(Verb::Patch(PatchType::Merge), "nodes", None, Some(name));
                r.body = serde_json::to_vec(&json!({
                    "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                    "spec": {"taints": taints},
                }))
                .unwrap_or_default();
                if !send(api, &r, "tainting a node").await {
                    return;
                }
            }
            if unreachable && view.ready != "Unknown" {
                let mut conds: Vec<Value> = node
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let now = now_rfc3339();
                for c in conds.iter_mut() {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now);
                }
                let mut s =
                    ObjectRequest::new(Verb::Patch(PatchType::Merge), "nodes", None, Some(name));
                s.subresource = Some("status".into());
                s.body = serde_json::to_vec(&json!({"status": {"conditions": conds}}))
                    .unwrap_or_default();
                if send(api, &s, "marking a node unready").await {
                    tracing::warn!(node = %name, "node lease expired: Ready=Unknown, tainted unreachable");
                }
            }
        }
        Action::Evict(ns, name, uid) => {
            // Marked `DisruptionTarget` first, as Kubernetes' taint eviction
            // controller does; the delete goes ahead if the mark fails.
            let conds = pods
                .iter()
                .find(|p| &p.uid == uid)
                .map(|p| p.conditions.clone());
            if let Some(c) =
                disruption_target(conds.as_ref(), &Disruption::TaintManager, &now_rfc3339())
            {
                let mut m = ObjectRequest::new(
                    Verb::Patch(PatchType::Strategic),
                    "pods",
                    Some(ns),
                    Some(name),
                );
                m.subresource = Some("status".into());
                m.body = serde_json::to_vec(&condition_patch(&c, None, None)).unwrap_or_default();
                send(api, &m, "marking a pod disrupted").await;
            }
            let mut r = ObjectRequest::new(Verb::Delete, "pods", Some(ns), Some(name));
            r.body =
                serde_json::to_vec(&json!({"preconditions": {"uid": uid}})).unwrap_or_default();
            if send(api, &r, "evicting a pod").await {
                tracing::warn!(pod = %name, namespace = %ns, "evicted a pod from an unreachable node");
            }
        }
    }
}

/// Deletes expired bootstrap token Secrets.
async fn clean_tokens(api: &ApiServer) {
    let Some(secrets) = list(api, "secrets", Some(token::NAMESPACE), None).await else {
        return;
    };
    let now = ferry_api::clock::now();
    for s in secrets {
        if s["type"] != token::SECRET_TYPE {
            continue;
        }
        let Ok(t) = TokenSecret::from_secret(&s) else {
            continue;
        };
        if !t.expired(now) {
            continue;
        }
        let name = t.token.secret_name();
        let mut r =
            ObjectRequest::new(Verb::Delete, "secrets", Some(token::NAMESPACE), Some(&name));
        r.body = serde_json::to_vec(&json!({"preconditions": {"uid": s["metadata"]["uid"]}}))
            .unwrap_or_default();
        if let Ok(resp) = api.handle(&Identity::Admin, &r).await {
            if resp.code < 300 {
                tracing::info!(token = %t.token.id, "deleted an expired bootstrap token");
            }
        }
    }
}

/// The controller's loop; it runs until its actor stops.
pub async fn run(api: ApiServer, t: Timings) {
    let mut observed: Option<Observed> = None;
    let mut next_tokens = Instant::now();
    let mut leadership = api.store().leadership();
    loop {
        // A pass a second, and at once when leadership changes.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            changed = leadership.changed() => {
                if changed.is_err() {
                    // Raft stopped: this master is stopping too.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if !*leadership.borrow_and_update() {
            // Grace periods start afresh on the next leadership.
            observed = None;
            continue;
        }
        let obs = observed.get_or_insert_with(Observed::default);
        if Instant::now() >= next_tokens {
            clean_tokens(&api).await;
            next_tokens = Instant::now() + Duration::from_secs(10);
        }
        let (Some(nodes), Some(leases)) = (
            list(&api, "nodes", None, None).await,
            list(&api, "leases", Some(NODE_LEASE_NAMESPACE), None).await,
        ) else {
            continue;
        };
        let now = Instant::now();
        for l in &leases {
            if let (Some(n), Some(r)) = (
                l.pointer("/metadata/name").and_then(Value::as_str),
                l.pointer("/spec/renewTime").and_then(Value::as_str),
            ) {
                obs.lease(n, r, now);
            }
        }
        let views: Vec<NodeView> = nodes.iter().filter_map(node_view).collect();
        let mut pods = Vec::new();
        for n in views.iter().filter(|n| {
            obs.unreachable_since.contains_key(&n.name)
                || obs
                    .leases
                    .get(&n.name)
                    .is_some_and(|(_, seen)| now.duration_since(*seen) > t.grace)
        }) {
            let sel = format!("spec.nodeName={}", n.name);
            pods.extend(
                list(&api, "pods", None, Some(&sel))
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter_map(pod_view),
            );
        }
        for a in decide(now, &views, &pods, obs, &t) {
            act(&api, &a, &nodes, &pods).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = |t: Value| json!({"spec": {"tolerations": t}});
        assert_eq!(toleration(&json!({"spec": {}})), None);
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
