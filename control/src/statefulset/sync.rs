//! Kubernetes' `updateStatefulSet`: first the wanted ordinals (create,
//! replace finished pods), then the condemned ones above the range (delete,
//! highest first), then the rolling update. Under `OrderedReady` the pass
//! stops at the first step it takes or waits on.

use super::{name_uid, phase, revision, spec, terminating, Decision, View};
use crate::deployment::scaled_value;
use crate::replicaset::BURST;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Everything this pass does.
pub(super) fn sync(v: &View, d: &mut Decision) {
    let monotonic = v.monotonic();
    if replicas(v, d, monotonic) && monotonic {
        return;
    }
    if condemned(v, d, monotonic) && monotonic {
        return;
    }
    rolling_update(v, d);
}

/// Kubernetes' `processReplica` for each wanted ordinal, lowest first; true
/// when ordered mode must stop here.
fn replicas(v: &View, d: &mut Decision, monotonic: bool) -> bool {
    for (ord, pod) in &v.slots {
        let blocked = match pod {
            None => {
                // Parallel sets create at most a burst per pass, as ReplicaSets do.
                if d.create.len() < BURST {
                    d.create.push(v.new_pod(*ord));
                }
                true
            }
            // Finished pods are deleted and recreated under the same name
            // on a later pass, once the name is free.
            Some(p) if matches!(phase(p), Some("Failed" | "Succeeded")) => {
                if !terminating(p) {
                    d.delete.push(name_uid(p));
                }
                true
            }
            // Terminating, starting, or not yet available: later ordinals wait.
            Some(p) => terminating(p) || !v.running_ready(p) || !v.running_available(p),
        };
        if blocked && monotonic {
            return true;
        }
    }
    false
}

/// Kubernetes' `processCondemned`, highest ordinal first; true when ordered
/// mode must stop here.
fn condemned(v: &View, d: &mut Decision, monotonic: bool) -> bool {
    let first_unhealthy = first_unhealthy(v);
    for p in &v.condemned {
        if terminating(p) {
            if monotonic {
                return true;
            }
            continue;
        }
        // Ordered mode removes only healthy pods, or the one unhealthy pod
        // nearest the bottom (it blocks everything else anyway).
        let is_first = first_unhealthy.is_some_and(|f| std::ptr::eq(f, *p));
        let settled = v.running_ready(p) && v.running_available(p);
        if monotonic && !settled && !is_first {
            return true;
        }
        d.delete.push(name_uid(p));
        if monotonic {
            return true;
        }
    }
    false
}

/// The lowest-ordinal unhealthy condemned pod, when every wanted ordinal is
/// healthy (a missing one counts as unhealthy, and comes first).
fn first_unhealthy<'a>(v: &View<'a>) -> Option<&'a Pod> {
    if v.slots.iter().any(|(_, p)| p.is_none_or(|p| !v.healthy(p))) {
        return None;
    }
    v.condemned.iter().rev().copied().find(|p| !v.healthy(p))
}

/// Replaces old-revision pods from the highest ordinal down to the
/// partition, while fewer than maxUnavailable wanted ordinals are unhealthy.
fn rolling_update(v: &View, d: &mut Decision) {
    let strategy = spec(v.sts).and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return;
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let partition = ru.and_then(|r| r.partition).unwrap_or(0);
    let one = IntOrString::Int(1);
    let max = ru.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&one);
    // Rounded up, and at least 1 (Kubernetes' `getStatefulSetMaxUnavailable`).
    let max = scaled_value(max, super::replicas(v.sts), true).max(1);
    let unhealthy = v
        .slots
        .iter()
        .filter(|(_, p)| p.is_none_or(|p| !v.healthy(p)))
        .count();
    let mut room = usize::try_from(max).unwrap_or(0).saturating_sub(unhealthy);
    for (ord, pod) in v.slots.iter().rev() {
        if room == 0 || *ord < partition {
            break;
        }
        let Some(p) = pod else {
            continue;
        };
        let old = revision(p) != Some(v.update_revision.as_str());
        let victim = name_uid(p);
        if old && !terminating(p) && !d.delete.contains(&victim) {
            d.delete.push(victim);
            room -= 1;
        }
    }
}
