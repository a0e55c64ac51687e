//! The StatefulSet's status, as Kubernetes' `computeReplicaStatus` and
//! `completeRollingUpdate` report it, over the member pods this pass saw.

use super::{revision, spec, terminating, View};
use crate::meta;
use k8s_openapi::api::apps::v1::StatefulSetStatus;
use k8s_openapi::api::core::v1::Pod;
use std::time::Duration;

/// The status for this pass's view.
pub(super) fn compute(v: &View) -> StatefulSetStatus {
    let members = members(v);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        let n = members.iter().filter(|p| f(p)).count();
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let on = |rev: &str, p: &Pod| !terminating(p) && revision(p) == Some(rev);
    let replicas = count(&|_| true);
    let ready = count(&|p| v.running_ready(p));
    let updated = count(&|p| on(&v.update_revision, p));
    let mut current_revision = v.current_revision.clone();
    let mut current = count(&|p| on(&v.current_revision, p));
    // The update is complete once every pod runs it and is Ready: it
    // becomes the current revision.
    let strategy = spec(v.sts).and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    if rolling && updated == replicas && ready == replicas {
        current_revision = v.update_revision.clone();
        current = updated;
    }
    let stored = v.sts.status.clone().unwrap_or_default();
    normalized(StatefulSetStatus {
        observed_generation: v.sts.metadata.generation,
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(count(&|p| v.running_available(p))),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(v.update_revision.clone()),
        collision_count: stored.collision_count,
        conditions: stored.conditions,
    })
}

/// The pods with a member's name, wanted or condemned.
fn members<'a>(v: &View<'a>) -> Vec<&'a Pod> {
    let wanted = v.slots.iter().filter_map(|(_, p)| *p);
    wanted.chain(v.condemned.iter().copied()).collect()
}

/// Zero counts as absent, as Kubernetes' `omitempty` writes them, so a stored
/// status read back compares equal to a computed one.
pub(super) fn normalized(mut s: StatefulSetStatus) -> StatefulSetStatus {
    for f in [
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.current_replicas,
        &mut s.updated_replicas,
        &mut s.collision_count,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    if s.observed_generation == Some(0) {
        s.observed_generation = None;
    }
    for r in [&mut s.current_revision, &mut s.update_revision] {
        if r.as_deref() == Some("") {
            *r = None;
        }
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// How long until the next Running and Ready member passes `minReadySeconds`.
pub(super) fn next_available(v: &View) -> Option<Duration> {
    let min_ready = i64::from(v.min_ready);
    if min_ready <= 0 {
        return None;
    }
    members(v)
        .into_iter()
        .filter(|p| v.running_ready(p) && !terminating(p))
        .filter_map(meta::ready_since)
        .map(|since| match since {
            Some(t) => t.as_second() + min_ready - v.now.as_second(),
            // Ready with no transition time: look again after a full wait.
            None => min_ready,
        })
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left.unsigned_abs()))
}
