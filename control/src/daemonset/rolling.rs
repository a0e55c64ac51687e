//! Kubernetes' DaemonSet `rollingUpdate`: without surge, delete old pods on
//! at most maxUnavailable nodes at a time (the manage pass then recreates
//! them); with surge, start the new pod beside the old one on at most
//! maxSurge nodes, and delete the old one once the new one is available.

use super::{name_uid, terminating, Decision, Slot, View};
use k8s_openapi::api::core::v1::Pod;

/// The replacements this pass allows.
pub(super) fn update(v: &View, d: &mut Decision) {
    let (surge, unavailable) = v.fenceposts();
    if surge == 0 {
        replace(v, unavailable, d);
    } else {
        surge_ahead(v, surge, d);
    }
}

/// The live (new, old) pod of a node, or `None` when it has more than one
/// of either (the manage pass cleans that up first).
fn split<'a>(v: &View, slot: &Slot<'a>) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in slot.pods.iter().copied().filter(|p| !terminating(p)) {
        let side = if v.updated(p) { &mut new } else { &mut old };
        if side.replace(p).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Delete-then-create: unavailable old pods go at once; available ones only
/// while fewer than `max_unavailable` nodes are without an available pod.
fn replace(v: &View, max_unavailable: i32, d: &mut Decision) {
    let mut unavailable = 0;
    let mut broken = Vec::new();
    let mut candidates = Vec::new();
    // Nodes with no pod count too: Kubernetes adds every node that should
    // run one to the map it walks.
    for slot in v
        .slots
        .iter()
        .filter(|s| s.fit.should_run || !s.pods.is_empty())
    {
        match split(v, slot) {
            None | Some((None, None) | (Some(_), Some(_))) => unavailable += 1,
            Some((Some(new), None)) => {
                if !v.available(new) {
                    unavailable += 1;
                }
            }
            Some((None, Some(old))) => {
                if !v.available(old) {
                    broken.push(old);
                } else if unavailable < max_unavailable {
                    candidates.push(old);
                }
            }
        }
    }
    let room = usize::try_from(max_unavailable - unavailable).unwrap_or(0);
    let chosen = broken.into_iter().chain(candidates.into_iter().take(room));
    d.delete.extend(chosen.map(name_uid));
}

/// Create-then-delete: a new pod at once beside an unavailable old one,
/// beside available ones on at most `max_surge` nodes at a time.
fn surge_ahead(v: &View, max_surge: i32, d: &mut Decision) {
    let mut surging = 0;
    let mut broken = Vec::new();
    let mut candidates = Vec::new();
    for slot in &v.slots {
        match split(v, slot) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !slot.fit.should_run {
                    continue;
                }
                if !v.available(old) {
                    broken.push(slot.node.as_str());
                } else if surging < max_surge {
                    candidates.push(slot.node.as_str());
                }
            }
            Some((Some(new), Some(old))) => {
                if v.available(new) {
                    d.delete.push(name_uid(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = usize::try_from(max_surge - surging).unwrap_or(0);
    let chosen = broken.into_iter().chain(candidates.into_iter().take(room));
    d.create.extend(chosen.map(|node| v.new_pod(node)));
}
