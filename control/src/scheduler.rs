//! The scheduler's pure core: `(nodes, pods already bound, pending pods) ->
//! placements`. Filters, then scores, as kube-scheduler's framework does; a
//! pod that fits nowhere gets Kubernetes' own message
//! (`0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: infra}.`).

use k8s_openapi::api::core::v1::{Node, Pod};
use std::sync::Arc;

/// What the scheduler decides for one pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    },
}

/// Places `pending` (in order) onto `nodes`, given the pods already bound
/// (`bound`: active pods with `spec.nodeName` set). Each placement counts
/// against its node for the pods after it.
pub fn schedule(nodes: &[Arc<Node>], bound: &[Arc<Pod>], pending: &[Arc<Pod>]) -> Vec<Placement> {
    let _ = (nodes, bound, pending);
    Vec::new()
}
