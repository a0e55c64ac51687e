//! The Deployment controller's pure core, after Kubernetes'
//! `pkg/controller/deployment`: find or make the new ReplicaSet, move replicas
//! onto it by the strategy (rolling or recreate), scale proportionally, prune
//! history, and report the rollout in the status `kubectl rollout status` reads.
//!
//! One pass works on copies of the ReplicaSets read; the writes are the
//! differences between those copies and what was read, so several steps of a
//! pass touching one ReplicaSet make one update with one precondition.

mod rolling;
mod scale;
mod status;
mod sync;
#[cfg(test)]
mod tests;

use crate::replicaset::spec_replicas;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use status::requeue_after;

/// One write the Deployment controller decides on.
// A pass yields a handful of actions, so the unboxed ReplicaSet costs
// nothing worth changing the interface for.
#[allow(clippy::large_enum_variant)]
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
        /// The full annotation set the ReplicaSet should have (revision,
        /// desired-replicas, max-replicas, the Deployment's copied ones).
        annotations: BTreeMap<String, String>,
    },
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`: (name, uid).
    DeleteReplicaSet(String, String),
    /// Set the Deployment's own `deployment.kubernetes.io/revision`
    /// annotation to the new ReplicaSet's revision (Kubernetes writes it
    /// together with the status).
    SetRevision(String),
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
    if d.spec.is_none() {
        return Vec::new();
    }
    let mut pass = Pass::new(d, rss, now);
    for p in pods.iter().filter(|p| crate::meta::pod_active(p)) {
        if let Some(o) = crate::meta::controller_of(&p.metadata) {
            *pass.live.entry(o.uid.clone()).or_default() += 1;
        }
    }
    if d.metadata.deletion_timestamp.is_some() {
        pass.sync_revision(false);
        pass.sync_status();
    } else {
        pass.check_paused_condition();
        if paused(d) || pass.is_scaling_event() {
            pass.sync();
        } else if is_recreate(d) {
            pass.recreate(pods);
        } else {
            pass.rolling();
        }
    }
    pass.finish()
}

/// A ReplicaSet as this pass has it, beside what was read.
struct Set {
    /// The working copy (replicas and annotations as decided so far).
    rs: ReplicaSet,
    /// What was read; `None` for the new ReplicaSet this pass creates.
    read: Option<Arc<ReplicaSet>>,
}

/// The state of one pass.
struct Pass<'a> {
    d: &'a Deployment,
    now: Timestamp,
    sets: Vec<Set>,
    /// Index in `sets` of the ReplicaSet matching the template.
    new: Option<usize>,
    /// The status as decided so far (starts as stored).
    status: DeploymentStatus,
    deletes: Vec<(String, String)>,
    /// Active (not terminating) pods by their ReplicaSet's uid.
    live: BTreeMap<String, i32>,
}

impl<'a> Pass<'a> {
    fn new(d: &'a Deployment, rss: &[Arc<ReplicaSet>], now: Timestamp) -> Self {
        let sets = rss
            .iter()
            .map(|r| Set {
                rs: (**r).clone(),
                read: Some(r.clone()),
            })
            .collect();
        let mut pass = Pass {
            d,
            now,
            sets,
            new: None,
            status: d.status.clone().unwrap_or_default(),
            deletes: Vec::new(),
            live: BTreeMap::new(),
        };
        pass.new = pass.find_new();
        pass
    }

    /// The working spec replicas of set `i`.
    fn replicas(&self, i: usize) -> i32 {
        spec_replicas(&self.sets[i].rs)
    }

    /// Indices of the old (not new) ReplicaSets.
    fn olds(&self) -> Vec<usize> {
        (0..self.sets.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    /// Sorts indices oldest first (Kubernetes' `ReplicaSetsByCreationTimestamp`);
    /// a ReplicaSet this pass creates is the newest.
    fn sort_oldest_first(&self, idx: &mut [usize]) {
        idx.sort_by_key(|i| self.created_key(*i));
    }

    fn created_key(&self, i: usize) -> (Option<Timestamp>, String) {
        let s = &self.sets[i];
        let t = match &s.read {
            None => Some(self.now),
            Some(r) => r.metadata.creation_timestamp.as_ref().map(|t| t.0),
        };
        (t, s.rs.metadata.name.clone().unwrap_or_default())
    }

    /// The writes: differences between the working copies and what was read.
    fn finish(self) -> Vec<Action> {
        let mut out = Vec::new();
        for s in &self.sets {
            let Some(read) = &s.read else {
                out.push(Action::CreateReplicaSet(s.rs.clone()));
                continue;
            };
            let annotations = s.rs.metadata.annotations.clone().unwrap_or_default();
            if spec_replicas(read) != spec_replicas(&s.rs)
                || read.metadata.annotations.clone().unwrap_or_default() != annotations
            {
                out.push(Action::UpdateReplicaSet {
                    name: s.rs.metadata.name.clone().unwrap_or_default(),
                    resource_version: read.metadata.resource_version.clone().unwrap_or_default(),
                    replicas: spec_replicas(&s.rs),
                    annotations,
                });
            }
        }
        out.extend(
            self.deletes
                .iter()
                .cloned()
                .map(|(n, u)| Action::DeleteReplicaSet(n, u)),
        );
        if let Some(rev) = self.revision_to_record() {
            out.push(Action::SetRevision(rev));
        }
        let stored = status::normalized(self.d.status.clone().unwrap_or_default());
        let new = status::normalized(self.status);
        if new != stored {
            out.push(Action::Status(new));
        }
        out
    }
}

fn spec(d: &Deployment) -> Option<&DeploymentSpec> {
    d.spec.as_ref()
}

/// `spec.replicas` (default 1).
fn desired(d: &Deployment) -> i32 {
    spec(d).and_then(|s| s.replicas).unwrap_or(1).max(0)
}

fn paused(d: &Deployment) -> bool {
    spec(d).and_then(|s| s.paused).unwrap_or(false)
}

fn is_recreate(d: &Deployment) -> bool {
    spec(d)
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// `progressDeadlineSeconds` (default 600); `None` when disabled (`MaxInt32`).
fn progress_deadline(d: &Deployment) -> Option<Duration> {
    match spec(d)
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600)
    {
        i32::MAX => None,
        s => Some(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    }
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`: an int as is, `"N%"` of
/// `total` rounded up or down. Anything else counts as 0 (admission refuses it).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let x = pct * i64::from(total);
            let q = if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            };
            i32::try_from(q).unwrap_or(i32::MAX)
        }
    }
}

/// Kubernetes' `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable
/// rounded down) against `desired`; both 0 would stall, so unavailable is 1.
/// Unset values take the API's default, 25%.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), desired, true).max(0);
    let unavailable = scaled_value(max_unavailable.unwrap_or(&quarter), desired, false).max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = spec(d)
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        desired(d),
    )
}

/// Kubernetes' `MaxSurge`: 0 unless rolling.
fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        0
    } else {
        fenceposts(d).0
    }
}

/// Kubernetes' `MaxUnavailable`: 0 unless rolling, at most the replicas.
fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || desired(d) == 0 {
        0
    } else {
        fenceposts(d).1.min(desired(d))
    }
}
