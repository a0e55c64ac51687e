//! The DaemonSet controller's pure core, after Kubernetes'
//! `pkg/controller/daemon`: one pod per node that should run it, created
//! pinned to its node by required node affinity (so the scheduler places
//! it); pods on nodes that should not run it, extras, and finished pods
//! deleted; old-template pods replaced by the update strategy.
//!
//! The current template is named by [`meta::template_hash`] (with
//! `status.collisionCount`) in each pod's `controller-revision-hash` label
//! and kept as a ControllerRevision `<ds>-<hash>` ([`revisions`]), which
//! `kubectl rollout history|undo` read. Simpler than Kubernetes: failed pods
//! are recreated without back-off.

mod eligible;
mod manage;
mod rolling;
mod status;
#[cfg(test)]
mod tests;

use crate::{history, meta};
use eligible::Fit;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetSpec, DaemonSetStatus, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The label naming the template a daemon pod was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying the DaemonSet's generation when the pod was made.
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// What one pass decides for a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Pods to create, whole (generateName `<ds>-`, required node affinity
    /// naming their node, the daemon tolerations, the DaemonSet as owner).
    pub create: Vec<Pod>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The new status, when it differs from the stored one.
    pub status: Option<DaemonSetStatus>,
    /// Run the pass again after this long: a Ready pod becomes available
    /// (`minReadySeconds`) with no event to wake the controller.
    pub requeue_after: Option<Duration>,
}

/// One pass over `ds`, the cluster's nodes and the pods `ds` controls.
pub fn reconcile(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Decision {
    // A DaemonSet being deleted leaves its pods to the garbage collector.
    if ds.metadata.deletion_timestamp.is_some() {
        return Decision::default();
    }
    let view = View::new(ds, nodes, pods, now);
    let mut decision = Decision::default();
    manage::manage(&view, &mut decision);
    // As Kubernetes' expectations do: roll only once the pods are settled.
    if decision.create.is_empty() && decision.delete.is_empty() && view.rolling() {
        rolling::update(&view, &mut decision);
    }
    let status = status::compute(&view);
    if status::normalized(ds.status.clone().unwrap_or_default()) != status {
        decision.status = Some(status);
    }
    decision.requeue_after = status::next_available(&view, pods);
    decision
}

/// The ControllerRevision writes for `ds` (its owned `revisions`): the
/// current template's revision made or renumbered, old ones beyond
/// `revisionHistoryLimit` deleted unless a live pod carries their hash.
pub fn revisions(
    ds: &DaemonSet,
    pods: &[Arc<Pod>],
    revisions: &[Arc<ControllerRevision>],
) -> history::Plan {
    let template = template(ds);
    let hash = meta::template_hash(&template, collision_count(ds));
    let live: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL))
        .map(String::as_str)
        .collect();
    let owner = history::Owner {
        meta: &ds.metadata,
        kind: "DaemonSet",
        template: &template,
        hash: &hash,
        limit: spec_field(ds, |s| s.revision_history_limit),
    };
    let is_live = |r: &ControllerRevision| {
        let h = r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
        h.is_some_and(|h| live.contains(h.as_str()))
    };
    history::plan(&owner, revisions, &is_live)
}

/// One node (or a node name pods target that no longer exists) and the
/// daemon pods on it, scheduled first then oldest first.
struct Slot<'a> {
    node: String,
    /// Whether the node is in the node list (status counts only these).
    listed: bool,
    fit: Fit,
    pods: Vec<&'a Pod>,
}

/// What a pass reads, computed once.
struct View<'a> {
    ds: &'a DaemonSet,
    hash: String,
    now: Timestamp,
    min_ready: i32,
    /// Ordered by node name, so a pass is deterministic.
    slots: Vec<Slot<'a>>,
}

impl<'a> View<'a> {
    fn new(ds: &'a DaemonSet, nodes: &[Arc<Node>], pods: &'a [Arc<Pod>], now: Timestamp) -> Self {
        let template = template(ds);
        let hash = meta::template_hash(&template, collision_count(ds));
        let probe = Pod {
            spec: Some(daemon_spec(&template)),
            ..Pod::default()
        };
        let mut slots: BTreeMap<String, Slot<'a>> = BTreeMap::new();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let fit = eligible::fit(&probe, n);
            slots.insert(name.clone(), slot(name, true, fit));
        }
        for p in pods {
            // A finished pod already being deleted is done with (Kubernetes'
            // `includeDeletedTerminal = false`).
            let finished = matches!(phase(p), Some("Failed" | "Succeeded"));
            if finished && p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // A pod naming no node is not a daemon pod this controller made.
            let Some(node) = eligible::target_node(p) else {
                continue;
            };
            let gone = Fit {
                should_run: false,
                keep_running: false,
            };
            slots
                .entry(node.to_string())
                .or_insert_with(|| slot(node.to_string(), false, gone))
                .pods
                .push(p);
        }
        let mut slots: Vec<Slot<'a>> = slots.into_values().collect();
        for s in &mut slots {
            s.pods.sort_by_key(|p| order_key(p));
        }
        View {
            ds,
            hash,
            now,
            min_ready: spec_field(ds, |s| s.min_ready_seconds).unwrap_or(0),
            slots,
        }
    }

    /// Whether `p` was made from the current template.
    fn updated(&self, p: &Pod) -> bool {
        let labels = p.metadata.labels.as_ref();
        labels.and_then(|l| l.get(HASH_LABEL)) == Some(&self.hash)
    }

    fn available(&self, p: &Pod) -> bool {
        meta::pod_available(p, self.min_ready, self.now)
    }

    /// The number of nodes that should run a daemon pod.
    fn desired(&self) -> i32 {
        let n = self.slots.iter().filter(|s| s.fit.should_run).count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// Whether the strategy is RollingUpdate (the default) rather than OnDelete.
    fn rolling(&self) -> bool {
        let strategy = spec_field(self.ds, |s| s.update_strategy.as_ref());
        strategy
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate"
    }

    /// (maxSurge, maxUnavailable) against the desired node count, both
    /// rounded up as Kubernetes' `SurgeCount` and `UnavailableCount` do;
    /// both 0 would stall, so unavailable becomes 1.
    fn fenceposts(&self) -> (i32, i32) {
        if !self.rolling() {
            return (0, 0);
        }
        let desired = self.desired();
        let ru = self.rolling_update();
        let scaled = |v: Option<&IntOrString>, default: i32| {
            v.map_or(default, |v| {
                crate::deployment::scaled_value(v, desired, true)
            })
            .max(0)
        };
        let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), 0);
        let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), 1);
        if desired > 0 && surge == 0 && unavailable == 0 {
            return (0, 1);
        }
        (surge, unavailable)
    }

    fn rolling_update(&self) -> Option<&'a RollingUpdateDaemonSet> {
        spec_field(self.ds, |s| s.update_strategy.as_ref()).and_then(|s| s.rolling_update.as_ref())
    }

    /// Kubernetes' `AllowsSurge`: a new pod may run beside an old one.
    fn allows_surge(&self) -> bool {
        if !self.rolling() {
            return false;
        }
        let surge = self.rolling_update().and_then(|r| r.max_surge.as_ref());
        surge.is_some_and(|v| crate::deployment::scaled_value(v, 1, true) > 0)
    }

    /// A new daemon pod for `node`, as Kubernetes' `CreatePodTemplate` and
    /// `ReplaceDaemonSetPodNodeNameNodeAffinity` build it.
    fn new_pod(&self, node: &str) -> Pod {
        let template = template(self.ds);
        let tmeta = template.metadata.clone().unwrap_or_default();
        let mut labels = tmeta.labels.unwrap_or_default();
        labels.insert(HASH_LABEL.into(), self.hash.clone());
        if let Some(g) = self.ds.metadata.generation {
            labels.insert(GENERATION_LABEL.into(), g.to_string());
        }
        let mut spec = daemon_spec(&template);
        eligible::pin_to_node(&mut spec, node);
        let name = self.ds.metadata.name.as_deref().unwrap_or("");
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                namespace: self.ds.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: tmeta.annotations,
                finalizers: tmeta.finalizers,
                owner_references: Some(vec![meta::controller_ref(
                    "apps/v1",
                    "DaemonSet",
                    &self.ds.metadata,
                )]),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }
}

fn slot<'a>(node: String, listed: bool, fit: Fit) -> Slot<'a> {
    Slot {
        node,
        listed,
        fit,
        pods: Vec::new(),
    }
}

fn spec_field<'a, T>(
    ds: &'a DaemonSet,
    f: impl FnOnce(&'a DaemonSetSpec) -> Option<T>,
) -> Option<T> {
    ds.spec.as_ref().and_then(f)
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// `status.collisionCount`, 0 read as absent: the status is written with
/// zeros left out, and the hash must not change when it is.
fn collision_count(ds: &DaemonSet) -> Option<i32> {
    let c = ds.status.as_ref().and_then(|s| s.collision_count);
    c.filter(|c| *c != 0)
}

/// The template's pod spec with the daemon tolerations added.
fn daemon_spec(template: &PodTemplateSpec) -> PodSpec {
    let mut spec = template.spec.clone().unwrap_or_default();
    eligible::add_daemon_tolerations(&mut spec);
    spec
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Kubernetes' `podByCreationTimestampAndPhase`: bound pods first, then the
/// oldest, then by name.
fn order_key(p: &Pod) -> (bool, Option<Timestamp>, Option<String>) {
    let unbound = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (unbound, created, p.metadata.name.clone())
}

/// (name, uid) of a pod, as [`Decision::delete`] lists it.
fn name_uid(p: &Pod) -> (String, String) {
    (
        p.metadata.name.clone().unwrap_or_default(),
        p.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Whether a pod is being deleted.
fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}
