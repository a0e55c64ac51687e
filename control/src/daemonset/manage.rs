//! Kubernetes' `manage` and `podsShouldBeOnNode`: one daemon pod on every
//! node that should run one, none elsewhere.

use super::{name_uid, phase, terminating, Decision, Slot, View};
use crate::meta;
use k8s_openapi::api::core::v1::Pod;

/// Creates the missing pods and deletes the ones that should go.
pub(super) fn manage(v: &View, d: &mut Decision) {
    for slot in &v.slots {
        if slot.fit.should_run && slot.pods.is_empty() {
            d.create.push(v.new_pod(&slot.node));
        } else if slot.fit.keep_running {
            prune(v, slot, d);
        } else {
            // Not wanted here (or the node is gone): every live pod goes.
            let live = slot.pods.iter().filter(|p| !terminating(p));
            d.delete.extend(live.map(|p| name_uid(p)));
        }
    }
}

/// On a node that keeps its daemon pod: finished pods go (to be recreated
/// next pass), and extras beyond the oldest. With surge, an old and a new
/// pod may run side by side until the new one is available.
fn prune(v: &View, slot: &Slot, d: &mut Decision) {
    let mut running: Vec<&Pod> = Vec::new();
    for p in slot.pods.iter().copied().filter(|p| !terminating(p)) {
        if matches!(phase(p), Some("Failed" | "Succeeded")) {
            d.delete.push(name_uid(p));
        } else {
            running.push(p);
        }
    }
    if running.len() <= 1 {
        return;
    }
    if !v.allows_surge() {
        // `slot.pods` is oldest first: keep the first.
        d.delete.extend(running[1..].iter().map(|p| name_uid(p)));
        return;
    }
    let (mut oldest_new, mut oldest_old) = (None, None);
    for p in running {
        let keep = if v.updated(p) {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if keep.is_none() {
            *keep = Some(p);
        } else {
            d.delete.push(name_uid(p));
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
        // The old pod goes once it serves nothing, or the new one serves.
        if !meta::pod_ready(old) || v.available(new) {
            d.delete.push(name_uid(old));
        }
    }
}
