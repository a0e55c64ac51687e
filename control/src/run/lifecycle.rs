//! The node lifecycle controller's shell: the Lease informer records when this
//! term saw each node's Lease move (`Plane::lease_changed`); once a second
//! [`nodelifecycle::decide`] runs over the Node cache and the pods of suspect
//! nodes (by the pod cache's node index), and its actions are written with
//! preconditions, at most `PARALLEL` at once. Nothing is listed: at
//! thousands of nodes the former shell's list of every Node and Lease each
//! second was a sixth of the leader's CPU.

use super::{Plane, Source};
use crate::api::{with_body, write};
use crate::cache::{Change, BY_NODE};
use crate::nodelifecycle::{self, Action, PodView, Registration, Timings, UNREACHABLE};
use crate::podgc::{condition_patch, disruption_target, Disruption};
use ferry_api::object::{ObjectRequest, PatchType, Verb};
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where node agents keep their Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

fn now_rfc3339() -> String {
    ferry_api::clock::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Plane<'_> {
    /// A Lease seen: in `kube-node-lease`, its node's renewal time.
    pub(super) fn lease_changed(&self, (_, new): &Change<Lease>) {
        let Some(l) = new else { return };
        if l.metadata.namespace.as_deref() != Some(NODE_LEASE_NAMESPACE) {
            return;
        }
        let (Some(name), Some(renew)) = (
            l.metadata.name.as_deref(),
            l.spec.as_ref().and_then(|s| s.renew_time.as_ref()),
        ) else {
            return;
        };
        self.observed
            .borrow_mut()
            .lease(name, &renew.0.to_string(), Instant::now());
    }

    pub(super) async fn node_lifecycle_loop(&self) {
        let t = Timings::default();
        self.synced().await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = Instant::now();
            let nodes = self.nodes.list();
            self.announce_nodes(&nodes);
            let views: Vec<_> = nodes
                .iter()
                .filter_map(|n| nodelifecycle::node_view(n))
                .collect();
            let pods: Vec<PodView> = {
                let obs = self.observed.borrow();
                views
                    .iter()
                    .filter(|n| obs.suspect(&n.name, now, &t))
                    .flat_map(|n| self.pods.by_index(BY_NODE, &n.name))
                    .filter_map(|p| nodelifecycle::pod_view(&p))
                    .collect()
            };
            let actions = {
                let mut obs = self.observed.borrow_mut();
                nodelifecycle::decide(now, &views, &pods, &mut obs, &t)
            };
            if actions.is_empty() || !self.api.is_leader() {
                continue;
            }
            // Pods by uid (not a scan per eviction), and the writes at most
            // PARALLEL at once (not one after another: thousands of nodes
            // marked at once took as many round trips in a row).
            let by_uid: HashMap<&str, &PodView> =
                pods.iter().map(|p| (p.uid.as_str(), p)).collect();
            futures_util::stream::iter(&actions)
                .for_each_concurrent(super::PARALLEL, |a| self.act_on_node(a, &by_uid))
                .await;
        }
    }

    /// `RegisteredNode` for each node this term sees first, `RemovingNode`
    /// for each gone, as Kubernetes' node lifecycle controller records them.
    fn announce_nodes(&self, nodes: &[std::sync::Arc<Node>]) {
        let regs = self
            .observed
            .borrow_mut()
            .registrations(nodes.iter().map(|n| {
                let m = &n.metadata;
                (
                    m.name.as_deref().unwrap_or_default(),
                    m.uid.as_deref().unwrap_or_default(),
                )
            }));
        for r in regs {
            let (Registration::Registered(name, uid) | Registration::Removed(name, uid)) = &r;
            let about = ObjectMeta {
                name: Some(name.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            };
            let (reason, message) = r.event();
            self.event(
                Source::NodeLifecycle,
                &about,
                "Node",
                "Normal",
                reason,
                &message,
            );
        }
    }

    async fn act_on_node(&self, a: &Action, pods: &HashMap<&str, &PodView>) {
        match a {
            Action::MarkUnreachable(name) | Action::Untaint(name) => {
                let Some(node) = self.nodes.get(name) else {
                    return;
                };
                let unreachable = matches!(a, Action::MarkUnreachable(_));
                if nodelifecycle::tainted(&node) != unreachable {
                    self.set_unreachable_taint(&node, unreachable).await;
                }
                let ready = nodelifecycle::node_view(&node).map(|v| v.ready);
                if unreachable
                    && ready.as_deref() != Some("Unknown")
                    && self.mark_status_unknown(&node).await
                    && ready.as_deref() == Some("True")
                {
                    let name = node.metadata.name.as_deref().unwrap_or_default();
                    let msg = format!("Node {name} status is now: NodeNotReady");
                    self.event(
                        Source::NodeLifecycle,
                        &node.metadata,
                        "Node",
                        "Normal",
                        "NodeNotReady",
                        &msg,
                    );
                }
            }
            Action::Evict(ns, name, uid) => {
                // Marked `DisruptionTarget` first, as Kubernetes' taint
                // eviction controller does; the delete goes ahead if the mark
                // fails.
                let conds = pods.get(uid.as_str()).map(|p| p.conditions.clone());
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
                    let w = write(self.api, with_body(m, &condition_patch(&c, None, None))).await;
                    if !w.ok() {
                        tracing::debug!(pod = %name, "marking a pod disrupted: {}", w.message);
                    }
                }
                let del = with_body(
                    ObjectRequest::new(Verb::Delete, "pods", Some(ns), Some(name)),
                    &json!({"preconditions": {"uid": uid}}),
                );
                let w = write(self.api, del).await;
                if w.ok() {
                    tracing::warn!(pod = %name, namespace = %ns, "evicted a pod from an unreachable node");
                } else {
                    tracing::debug!(pod = %name, "evicting a pod: {}", w.message);
                }
            }
        }
    }

    /// Adds or removes the unreachable taint, with the resourceVersion read:
    /// a concurrent change makes this fail, and the next pass decides again.
    async fn set_unreachable_taint(&self, node: &Node, unreachable: bool) {
        let mut taints: Vec<Value> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .map(|ts| {
                ts.iter()
                    .filter(|t| t.key != UNREACHABLE)
                    .filter_map(|t| serde_json::to_value(t).ok())
                    .collect()
            })
            .unwrap_or_default();
        if unreachable {
            taints.push(
                json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now_rfc3339()}),
            );
        }
        let name = node.metadata.name.as_deref();
        let r = ObjectRequest::new(Verb::Patch(PatchType::Merge), "nodes", None, name);
        let body = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        let w = write(self.api, with_body(r, &body)).await;
        if !w.ok() {
            tracing::debug!(node = ?name, "tainting a node: {}", w.message);
        }
    }

    /// Every condition `Unknown`, as Kubernetes' node lifecycle controller
    /// writes when the kubelet stops posting status; whether it was written.
    async fn mark_status_unknown(&self, node: &Node) -> bool {
        let now = now_rfc3339();
        let conds: Vec<Value> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .map(|mut c| {
                        c["status"] = json!("Unknown");
                        c["reason"] = json!("NodeStatusUnknown");
                        c["message"] = json!("Kubelet stopped posting node status.");
                        c["lastTransitionTime"] = json!(now);
                        c
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = node.metadata.name.as_deref();
        let mut s = ObjectRequest::new(Verb::Patch(PatchType::Merge), "nodes", None, name);
        s.subresource = Some("status".into());
        let w = write(
            self.api,
            with_body(s, &json!({"status": {"conditions": conds}})),
        )
        .await;
        if w.ok() {
            tracing::warn!(node = ?name, "node lease expired: Ready=Unknown, tainted unreachable");
        } else {
            tracing::debug!(node = ?name, "marking a node unready: {}", w.message);
        }
        w.ok()
    }
}
