//! The DaemonSet's status, as Kubernetes' `updateDaemonSetStatus` counts it:
//! per node that should run a pod, its oldest daemon pod.

use super::{terminating, View};
use crate::meta;
use k8s_openapi::api::apps::v1::DaemonSetStatus;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;
use std::time::Duration;

/// The status for this pass's view.
pub(super) fn compute(v: &View) -> DaemonSetStatus {
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for slot in v.slots.iter().filter(|s| s.listed) {
        let first = slot.pods.first();
        if !slot.fit.should_run {
            misscheduled += i32::from(first.is_some());
            continue;
        }
        desired += 1;
        let Some(p) = first else {
            continue;
        };
        current += 1;
        if meta::pod_ready(p) {
            ready += 1;
            available += i32::from(v.available(p));
        }
        updated += i32::from(v.updated(p));
    }
    let stored = v.ds.status.clone().unwrap_or_default();
    normalized(DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some(desired - available),
        updated_number_scheduled: Some(updated),
        observed_generation: v.ds.metadata.generation,
        // Neither is this controller's to change here.
        collision_count: stored.collision_count,
        conditions: stored.conditions,
    })
}

/// Zero counts as absent, as Kubernetes' `omitempty` writes them, so a stored
/// status read back compares equal to a computed one.
pub(super) fn normalized(mut s: DaemonSetStatus) -> DaemonSetStatus {
    for f in [
        &mut s.number_available,
        &mut s.number_unavailable,
        &mut s.updated_number_scheduled,
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

/// How long until the next Ready daemon pod passes `minReadySeconds` (the
/// counts and a surge both wait on it).
pub(super) fn next_available(v: &View, pods: &[Arc<Pod>]) -> Option<Duration> {
    let min_ready = i64::from(v.min_ready);
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| !terminating(p))
        .filter_map(|p| meta::ready_since(p))
        .map(|since| match since {
            Some(t) => t.as_second() + min_ready - v.now.as_second(),
            // Ready with no transition time: look again after a full wait.
            None => min_ready,
        })
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left.unsigned_abs()))
}
