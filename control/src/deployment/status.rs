//! The Deployment's status and conditions (Kubernetes' `sync.go`
//! `calculateStatus`/`syncRolloutStatus` and `progress.go`), worded as
//! Kubernetes words them, since `kubectl rollout status` and users read them.

use super::{desired, max_unavailable, paused, progress_deadline, Pass};
use crate::meta;
use crate::replicaset::spec_replicas;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSetStatus,
};
use std::time::Duration;

/// The Progressing condition's type.
pub(super) const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// A condition that changed at `now`.
pub(super) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(meta::time(now)),
        last_transition_time: Some(meta::time(now)),
    }
}

fn get<'s>(s: &'s DeploymentStatus, type_: &str) -> Option<&'s DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Whether the status has a condition of this type.
pub(super) fn has_condition(s: &DeploymentStatus, type_: &str) -> bool {
    get(s, type_).is_some()
}

fn reason_is(s: &DeploymentStatus, type_: &str, reason: &str) -> bool {
    get(s, type_).is_some_and(|c| c.reason.as_deref() == Some(reason))
}

fn remove(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// Kubernetes' `SetDeploymentCondition`: unchanged when status and reason
/// are; the transition time kept while the status is.
fn set(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove(s, &c.type_);
    s.conditions.get_or_insert_default().push(c);
}

/// Kubernetes' `DeploymentComplete`: every replica updated and available,
/// no old ones left, the current generation observed.
pub(super) fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = desired(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: more updated, ready or available
/// replicas, or fewer old ones, than `old` reported.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_olds = n(old.replicas) - n(old.updated_replicas);
    let new_olds = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_olds < old_olds
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// When the deadline of the last progress passes; `None` when there is no
/// deadline, no Progressing condition, or the rollout finished or failed.
fn deadline(d: &Deployment, s: &DeploymentStatus) -> Option<Timestamp> {
    let limit = progress_deadline(d)?;
    let c = get(s, PROGRESSING)?;
    if matches!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE | TIMED_OUT)) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    from.checked_add(jiff::SignedDuration::try_from(limit).ok()?)
        .ok()
}

/// How long until this Deployment's progress deadline passes, so the shell
/// can run a pass then (Kubernetes' `requeueStuckDeployment`): nothing else
/// wakes a stuck rollout.
pub fn requeue_after(d: &Deployment, now: Timestamp) -> Option<Duration> {
    let s = d.status.as_ref()?;
    if complete(d, s) || paused(d) {
        return None;
    }
    let at = deadline(d, s)?;
    let left = at.as_second() - now.as_second();
    Some(Duration::from_secs(
        u64::try_from(left.max(0)).unwrap_or(0) + 1,
    ))
}

/// Zero counts as absent, as Kubernetes' `omitempty` writes them, so a stored
/// status read back compares equal to a computed one.
pub(super) fn normalized(mut s: DeploymentStatus) -> DeploymentStatus {
    for f in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
        &mut s.terminating_replicas,
        &mut s.collision_count,
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

impl Pass<'_> {
    /// Sets a condition on the working status.
    pub(super) fn set_condition(&mut self, c: DeploymentCondition) {
        set(&mut self.status, c);
    }

    fn rs_status(&self, i: usize) -> ReplicaSetStatus {
        self.sets[i].rs.status.clone().unwrap_or_default()
    }

    /// Kubernetes' `calculateStatus`: counts from the ReplicaSets' statuses
    /// as read, and the Available condition.
    fn calculate(&self) -> DeploymentStatus {
        let all = 0..self.sets.len();
        let sum = |f: &dyn Fn(&ReplicaSetStatus) -> i32| -> i32 {
            all.clone()
                .map(|i| f(&self.rs_status(i)))
                .fold(0, i32::saturating_add)
        };
        let available = sum(&|s| s.available_replicas.unwrap_or(0));
        // Desired as read: this pass's scaling shows in the next pass.
        let total: i32 = self
            .sets
            .iter()
            .map(|s| spec_replicas(s.read.as_deref().unwrap_or(&s.rs)))
            .fold(0, i32::saturating_add);
        let mut s = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(sum(&|s| s.replicas)),
            updated_replicas: Some(self.new.map_or(0, |i| self.rs_status(i).replicas)),
            ready_replicas: Some(sum(&|s| s.ready_replicas.unwrap_or(0))),
            available_replicas: Some(available),
            unavailable_replicas: Some(total.saturating_sub(available).max(0)),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
            terminating_replicas: None,
        };
        let c = if available >= desired(self.d) - max_unavailable(self.d) {
            let msg = "Deployment has minimum availability.".to_string();
            condition(AVAILABLE, "True", "MinimumReplicasAvailable", msg, self.now)
        } else {
            let msg = "Deployment does not have minimum availability.".to_string();
            condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                msg,
                self.now,
            )
        };
        set(&mut s, c);
        s
    }

    /// Kubernetes' `syncDeploymentStatus`: counts only, no progress estimate.
    pub(super) fn sync_status(&mut self) {
        self.status = self.calculate();
    }

    /// Kubernetes' `syncRolloutStatus`: counts, then the Progressing
    /// condition (complete, progressing, or past its deadline).
    pub(super) fn rollout_status(&mut self) {
        let mut s = self.calculate();
        let old = &self.status;
        let deadline_set = progress_deadline(self.d).is_some();
        if !deadline_set {
            remove(&mut s, PROGRESSING);
        }
        let done_before =
            s.replicas == s.updated_replicas && reason_is(old, PROGRESSING, NEW_RS_AVAILABLE);
        if deadline_set && !done_before {
            let subject = match self.new {
                Some(i) => format!("ReplicaSet \"{}\"", self.name(i)),
                None => format!(
                    "Deployment \"{}\"",
                    self.d.metadata.name.as_deref().unwrap_or("")
                ),
            };
            if complete(self.d, &s) {
                let msg = format!("{subject} has successfully progressed.");
                set(
                    &mut s,
                    condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, self.now),
                );
            } else if progressing(old, &s) {
                let msg = format!("{subject} is progressing.");
                let mut c = condition(PROGRESSING, "True", "ReplicaSetUpdated", msg, self.now);
                // Progress moves lastUpdateTime even when the reason stays.
                if let Some(cur) = get(old, PROGRESSING).filter(|c| c.status == "True") {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove(&mut s, PROGRESSING);
                set(&mut s, c);
            } else if self.timed_out(&s) {
                let msg = format!("{subject} has timed out progressing.");
                set(
                    &mut s,
                    condition(PROGRESSING, "False", TIMED_OUT, msg, self.now),
                );
            }
        }
        self.copy_replica_failure(&mut s);
        self.status = s;
    }

    /// Kubernetes' `DeploymentTimedOut`.
    fn timed_out(&self, s: &DeploymentStatus) -> bool {
        if reason_is(s, PROGRESSING, TIMED_OUT) {
            return true;
        }
        deadline(self.d, s).is_some_and(|at| at < self.now)
    }

    /// The new ReplicaSet's ReplicaFailure condition (else an old one's)
    /// shows on the Deployment; none, none.
    fn copy_replica_failure(&self, s: &mut DeploymentStatus) {
        let order = self.new.into_iter().chain(self.olds());
        let failure = order
            .filter_map(|i| self.sets[i].rs.status.as_ref()?.conditions.clone())
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE);
        match failure {
            Some(c) => set(
                s,
                DeploymentCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time,
                },
            ),
            None => remove(s, REPLICA_FAILURE),
        }
    }

    /// Kubernetes' `checkPausedConditions`: Progressing says paused, or
    /// resumed, unless it already reports the deadline exceeded.
    pub(super) fn check_paused_condition(&mut self) {
        if progress_deadline(self.d).is_none() || reason_is(&self.status, PROGRESSING, TIMED_OUT) {
            return;
        }
        let paused_now = reason_is(&self.status, PROGRESSING, PAUSED);
        if paused(self.d) && !paused_now {
            let c = condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                self.now,
            );
            self.set_condition(c);
        } else if !paused(self.d) && paused_now {
            let c = condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                self.now,
            );
            self.set_condition(c);
        }
    }
}
