//! The ReplicaSet controller's pure core.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

/// What one pass decides for a ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Pods to create, whole (generateName `<rs>-`, labels and spec from the
    /// template, the ReplicaSet as controller owner).
    pub create: Vec<Pod>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The new status, when it differs from the stored one.
    pub status: Option<ReplicaSetStatus>,
}

/// One pass over `rs` and the pods it controls (active or not).
pub fn reconcile(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> Decision {
    let _ = (rs, pods, now);
    Decision::default()
}
