//! The scheduler's pure core: `(nodes, pods already bound, pending pods) ->
//! placements`. Filters, then scores, as kube-scheduler's framework does; a
//! pod that fits nowhere gets Kubernetes' own message
//! (`0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: infra}, 3 Insufficient cpu.`).
//!
//! Layout: `filters` runs the filter chain (node readiness, NodeUnschedulable,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, then the
//! cluster-wide `spread` and `interpod` checks); `scores` sums the score
//! plugins with kube-scheduler's default weights. Ties go to a hash of pod uid
//! and node name, so results are stable yet equal nodes share the load.

pub(crate) mod filters;
mod interpod;
mod node_affinity;
pub mod preempt;
mod resources;
mod scores;
mod spread;

use crate::meta::pod_terminal;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use preempt::Preemption;
use resources::{container_nonzero, container_requests, pod_requests, Resources};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the scheduler decides for one pending pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Bind the pod to `node`.
    Bind {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// uid (the binding's precondition).
        uid: String,
        /// The chosen node.
        node: String,
    },
    /// No node fits, but evicting `victims` (pods of lower priority) from
    /// `node` would make room: the pod is nominated there (its
    /// `status.nominatedNodeName`) and the victims are deleted; `message`
    /// says why it did not fit.
    Preempt {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
        /// The node it is nominated to.
        node: String,
        /// The pods to evict.
        victims: Vec<Arc<Pod>>,
        /// Kubernetes' message, e.g. `0/2 nodes are available: 2 Insufficient cpu.`
        message: String,
    },
    /// No node fits: `PodScheduled=False`, reason `Unschedulable`, and an event.
    Unschedulable {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
        /// Kubernetes' message, e.g. `0/2 nodes are available: 2 Insufficient cpu.`
        message: String,
        /// The node the pod stays nominated to: its earlier preemption's
        /// victims are still leaving it (`PodEligibleToPreemptOthers`).
        nominated: Option<String>,
    },
}

/// Places `pending` (in order) onto `nodes`, given the pods already bound
/// (`bound`: unfinished pods with `spec.nodeName` set, terminating ones
/// included: they hold their room until gone). Each placement counts
/// against its node for the pods after it.
pub fn schedule(nodes: &[Arc<Node>], bound: &[Arc<Pod>], pending: &[Arc<Pod>]) -> Vec<Placement> {
    schedule_from(nodes, bound, pending, &mut 0)
}

/// [`schedule`], filtering the first pod's nodes from index `next_start` (of
/// `nodes`); on return it holds where the next pod's filtering starts. In a
/// cluster of 100 nodes or more, each pod is filtered only until enough nodes
/// fit ([`filters::nodes_to_find`]), from where the previous pod stopped.
pub fn schedule_from(
    nodes: &[Arc<Node>],
    bound: &[Arc<Pod>],
    pending: &[Arc<Pod>],
    next_start: &mut usize,
) -> Vec<Placement> {
    let mut s = Snapshot::new(nodes, bound);
    s.next_start = *next_start;
    let out = pending.iter().map(|pod| s.place(pod)).collect();
    *next_start = s.next_start;
    out
}

/// The cluster as one scheduling pass sees it, placing pods one at a time
/// (so the caller may yield between them); each placement counts against its
/// node for the pods after it.
pub struct Snapshot {
    cluster: Vec<NodeInfo>,
    /// The PodDisruptionBudgets preemption prefers not to break.
    pub budgets: Vec<Arc<PodDisruptionBudget>>,
    /// The node index the next pod's filtering starts from.
    pub next_start: usize,
}

impl Snapshot {
    /// `nodes` with the unfinished pods of `bound` on them.
    pub fn new(nodes: &[Arc<Node>], bound: &[Arc<Pod>]) -> Snapshot {
        Snapshot {
            cluster: snapshot(nodes, bound),
            budgets: Vec::new(),
            next_start: 0,
        }
    }

    /// Decides where `pod` goes, and counts it there.
    pub fn place(&mut self, pod: &Arc<Pod>) -> Placement {
        let (namespace, name, uid) = identity(pod);
        match place(pod, &self.cluster, &mut self.next_start) {
            Ok(i) => {
                let node = self.cluster[i].name().to_string();
                self.cluster[i].add(pod.clone());
                Placement::Bind {
                    namespace,
                    name,
                    uid,
                    node,
                }
            }
            Err(message) => match preempt::preempt(pod, &self.cluster, &self.budgets) {
                Preemption::Evict(i, victims) => {
                    // The room is the pod's from now on in this pass.
                    let keep: Vec<Arc<Pod>> = self.cluster[i]
                        .pods
                        .iter()
                        .filter(|p| !victims.iter().any(|v| Arc::ptr_eq(v, p)))
                        .cloned()
                        .collect();
                    let mut node = NodeInfo::new(self.cluster[i].node.clone());
                    for p in keep {
                        node.add(p);
                    }
                    node.add(pod.clone());
                    let name_of = node.name().to_string();
                    self.cluster[i] = node;
                    Placement::Preempt {
                        namespace,
                        name,
                        uid,
                        node: name_of,
                        victims,
                        message,
                    }
                }
                Preemption::Wait(i) => Placement::Unschedulable {
                    namespace,
                    name,
                    uid,
                    message,
                    nominated: Some(self.cluster[i].name().to_string()),
                },
                Preemption::None => Placement::Unschedulable {
                    namespace,
                    name,
                    uid,
                    message,
                    nominated: None,
                },
            },
        }
    }
}

/// One node and the pods on it, with their requests summed once.
pub(crate) struct NodeInfo {
    /// The node.
    pub(crate) node: Arc<Node>,
    /// Active pods bound or placed here.
    pub(crate) pods: Vec<Arc<Pod>>,
    /// Those of `pods` with pod affinity or anti-affinity terms (only they
    /// weigh on a pod without terms of its own, as kube-scheduler's
    /// `PodsWithAffinity` list).
    pub(crate) with_affinity: Vec<Arc<Pod>>,
    /// The sum of the pods' requests.
    pub(crate) requested: Resources,
    /// The sum of the pods' requests as scoring reads them (defaults filled in).
    pub(crate) nonzero: Resources,
    /// `status.allocatable`.
    pub(crate) allocatable: Resources,
}

impl NodeInfo {
    /// An empty node.
    pub(crate) fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable =
            Resources::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        NodeInfo {
            node,
            pods: Vec::new(),
            with_affinity: Vec::new(),
            requested: Resources::default(),
            nonzero: Resources::default(),
            allocatable,
        }
    }

    /// The node's name.
    pub(crate) fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    /// The value of one of the node's labels.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key).map(String::as_str)
    }

    /// The node's labels.
    pub(crate) fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    /// Counts `pod` against this node.
    pub(crate) fn add(&mut self, pod: Arc<Pod>) {
        self.requested.add(&pod_requests(&pod, container_requests));
        self.nonzero.add(&pod_requests(&pod, container_nonzero));
        if interpod::has_terms(&pod) {
            self.with_affinity.push(pod.clone());
        }
        self.pods.push(pod);
    }
}

/// The pod being scheduled, with its requests read once.
pub(crate) struct PodInfo<'a> {
    /// The pod.
    pub(crate) pod: &'a Pod,
    /// Its effective requests.
    pub(crate) requests: Resources,
    /// Its requests as scoring reads them.
    pub(crate) nonzero: Resources,
}

impl<'a> PodInfo<'a> {
    /// Reads `pod`'s requests.
    pub(crate) fn new(pod: &'a Pod) -> PodInfo<'a> {
        PodInfo {
            pod,
            requests: pod_requests(pod, container_requests),
            nonzero: pod_requests(pod, container_nonzero),
        }
    }
}

/// The namespace of a pod ("default" when unset, as the API would have set it).
pub(crate) fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// The nodes with the unfinished pods already bound to them; pods bound to
/// unknown nodes take no room anywhere.
fn snapshot(nodes: &[Arc<Node>], bound: &[Arc<Pod>]) -> Vec<NodeInfo> {
    let mut cluster: Vec<NodeInfo> = nodes.iter().cloned().map(NodeInfo::new).collect();
    let index: HashMap<String, usize> = cluster
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name().to_string(), i))
        .collect();
    // Terminating pods hold their room until they are gone, as in
    // kube-scheduler's cache; finished ones hold none.
    for pod in bound.iter().filter(|p| !pod_terminal(p)) {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if let Some(&i) = node.and_then(|n| index.get(n)) {
            cluster[i].add(pod.clone());
        }
    }
    cluster
}

/// The node index chosen for `pod`, or Kubernetes' unschedulable message;
/// filtering starts at node `*start` and moves it past the nodes it tried.
fn place(pod: &Pod, cluster: &[NodeInfo], start: &mut usize) -> Result<usize, String> {
    let info = PodInfo::new(pod);
    let from = if cluster.is_empty() {
        0
    } else {
        *start % cluster.len()
    };
    let filters::Found {
        fits: feasible,
        reasons,
        processed,
    } = filters::feasible(&info, cluster, from);
    *start = if cluster.is_empty() {
        0
    } else {
        (from + processed) % cluster.len()
    };
    if feasible.is_empty() {
        return Err(fit_error(cluster.len(), &reasons));
    }
    let totals = scores::total(&info, cluster, &feasible);
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    feasible
        .iter()
        .zip(totals)
        .max_by_key(|&(&i, score)| (score, Reverse(tie_hash(uid, cluster[i].name()))))
        .map(|(&i, _)| i)
        .ok_or_else(|| fit_error(cluster.len(), &reasons))
}

/// Kubernetes' `FitError` message: each reason with the number of nodes
/// giving it, as "count reason" strings sorted bytewise (Go's `sort.Strings`).
pub(crate) fn fit_error(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

/// FNV-1a of pod uid and node name: a stable tie-break that still sends
/// different pods to different equal nodes.
fn tie_hash(uid: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A pod's namespace, name and uid.
fn identity(pod: &Pod) -> (String, String, String) {
    (
        namespace(pod).to_string(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
