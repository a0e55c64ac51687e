//! The ReplicaSet controller's pure core, after Kubernetes'
//! `pkg/controller/replicaset`: count the active pods against
//! `spec.replicas`, create or delete the difference, and report the counts.

mod rank;
#[cfg(test)]
mod tests;

use crate::meta;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::sync::Arc;
use std::time::Duration;

/// Most pods created or deleted in one pass (Kubernetes' `BurstReplicas`).
pub const BURST: usize = 500;

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
    /// Run the pass again after this long: a Ready pod becomes available
    /// (`minReadySeconds`) with no event to wake the controller.
    pub requeue_after: Option<Duration>,
}

/// One pass over `rs` and the pods it controls (active or not).
pub fn reconcile(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> Decision {
    let active: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| meta::pod_active(p))
        .collect();
    let want = usize::try_from(spec_replicas(rs)).unwrap_or(0);
    let mut decision = Decision::default();
    // A ReplicaSet being deleted leaves its pods to the garbage collector.
    if rs.metadata.deletion_timestamp.is_none() {
        if active.len() < want {
            let n = (want - active.len()).min(BURST);
            decision.create = (0..n).map(|_| pod_from_template(rs)).collect();
        } else if active.len() > want {
            let n = (active.len() - want).min(BURST);
            decision.delete = rank::victims(&active, n)
                .into_iter()
                .map(|p| {
                    let m = &p.metadata;
                    (
                        m.name.clone().unwrap_or_default(),
                        m.uid.clone().unwrap_or_default(),
                    )
                })
                .collect();
        }
    }
    let status = status(rs, &active, now);
    if normalized(rs.status.clone().unwrap_or_default()) != status {
        decision.status = Some(status);
    }
    decision.requeue_after = next_available(rs, &active, now);
    decision
}

/// `spec.replicas`, defaulted to 1 as the API defaults it.
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// A new pod as Kubernetes' `GetPodFromTemplate` builds it.
fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or(""))),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![meta::controller_ref(
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

/// The status Kubernetes' `calculateStatus` reports for these active pods.
fn status(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .into_iter()
                .flatten()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| meta::pod_ready(p)).count();
    let min_ready = min_ready_seconds(rs);
    let available = active
        .iter()
        .filter(|p| meta::pod_available(p, min_ready, now))
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let stored = rs.status.clone().unwrap_or_default();
    normalized(ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(available)),
        observed_generation: rs.metadata.generation,
        // ReplicaFailure is the shell's to set (it sees the create errors).
        conditions: stored.conditions,
        terminating_replicas: None,
    })
}

/// Zero counts as absent, as Kubernetes' `omitempty` writes them, so a stored
/// status read back compares equal to a computed one.
fn normalized(mut s: ReplicaSetStatus) -> ReplicaSetStatus {
    for f in [
        &mut s.fully_labeled_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.terminating_replicas,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    if s.observed_generation == Some(0) {
        s.observed_generation = None;
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// How long until the next Ready pod passes `minReadySeconds`.
fn next_available(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = i64::from(min_ready_seconds(rs));
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter_map(|p| meta::ready_since(p))
        .map(|since| match since {
            Some(t) => t.as_second() + min_ready - now.as_second(),
            // Ready with no transition time: look again after a full wait.
            None => min_ready,
        })
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left.unsigned_abs()))
}
