//! The Deployment controller's pure core.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One write the Deployment controller decides on.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet (the new template's).
    CreateReplicaSet(ReplicaSet),
    /// Set a ReplicaSet's replicas and annotations (a patch with its
    /// resourceVersion as precondition).
    UpdateReplicaSet {
        /// Name.
        name: String,
        /// resourceVersion read.
        resource_version: String,
        /// `spec.replicas`.
        replicas: i32,
        /// Annotations to set (revision, desired-replicas, max-replicas).
        annotations: BTreeMap<String, String>,
    },
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`: (name, uid).
    DeleteReplicaSet(String, String),
    /// Write the Deployment's status.
    Status(DeploymentStatus),
}

/// One pass over `d`, the ReplicaSets it controls and their pods.
pub fn reconcile(
    d: &Deployment,
    rss: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Vec<Action> {
    let _ = (d, rss, pods, now);
    Vec::new()
}
