//! The StatefulSet controller's pure core, after Kubernetes'
//! `pkg/controller/statefulset`: pods with stable names `<sts>-<ordinal>`,
//! created in order and each only once its predecessors are Running and
//! Ready (`OrderedReady`) or all at once (`Parallel`), removed from the
//! highest ordinal down, and replaced from the highest ordinal down to the
//! partition when the template changes.
//!
//! Simpler than Kubernetes:
//! - `volumeClaimTemplates`: each pod's claims ([`claims`]) are created by
//!   the shell before the pod, and owned as the retention policy wants.
//! - A revision is named `<sts>-<hash>` from [`meta::template_hash`] (with
//!   `status.collisionCount`) rather than a hash of the revision's data; it
//!   is kept as a ControllerRevision labelled `controller.kubernetes.io/hash`
//!   ([`revisions`]) and its name is carried in each pod's
//!   `controller-revision-hash` label and in `status.currentRevision` /
//!   `updateRevision`. A stored revision equal to the template keeps its
//!   name (`FindEqualRevisions`); a pod recreated below the partition gets
//!   the current revision's template ([`reconcile_with`]).
//! - `partition` is compared with ordinals (as documented), which matters
//!   only with `ordinals.start` set.
//! - Identity drift on existing pods (labels, hostname) is not repaired:
//!   the controller only creates and deletes.

pub mod claims;
mod status;
mod sync;
#[cfg(test)]
mod tests;

use crate::{history, meta};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The label naming the revision a pod was made from (`<sts>-<hash>`).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label carrying a pod's own name, for per-pod Services.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What one pass decides for a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Pods to create, whole, under their exact names `<sts>-<ordinal>`.
    pub create: Vec<Pod>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The new status, when it differs from the stored one.
    pub status: Option<StatefulSetStatus>,
    /// Run the pass again after this long: a Ready pod becomes available
    /// (`minReadySeconds`) with no event to wake the controller.
    pub requeue_after: Option<Duration>,
}

/// One pass over `sts` and the pods it controls, with no stored revisions
/// (every pod gets the set's template).
pub fn reconcile(sts: &StatefulSet, pods: &[Arc<Pod>], now: Timestamp) -> Decision {
    reconcile_with(sts, pods, &Stored::default(), now)
}

/// What the set's stored ControllerRevisions tell a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// The template of `status.currentRevision` ([`current_template`]).
    pub current: Option<PodTemplateSpec>,
    /// The update revision's name when a stored revision holds the set's
    /// template (the plan's name from [`revisions`]); else `<sts>-<hash>`.
    pub update: Option<String>,
}

/// One pass with the stored revisions: pods recreated below the partition
/// (or, without `rollingUpdate`, below `status.currentReplicas`) get the
/// current revision's template, as Kubernetes' `newVersionedStatefulSetPod`
/// does, and new pods the update revision's name.
pub fn reconcile_with(
    sts: &StatefulSet,
    pods: &[Arc<Pod>],
    stored: &Stored,
    now: Timestamp,
) -> Decision {
    let mut view = View::new(sts, pods, now);
    view.current_template = stored.current.clone();
    if let Some(update) = stored.update.as_ref().filter(|u| !u.is_empty()) {
        let status = sts.status.as_ref();
        if status
            .and_then(|s| s.current_revision.as_deref())
            .is_none_or(str::is_empty)
        {
            view.current_revision = update.clone();
        }
        view.update_revision = update.clone();
    }
    let mut decision = Decision::default();
    // A StatefulSet being deleted leaves its pods to the garbage collector.
    if sts.metadata.deletion_timestamp.is_none() {
        sync::sync(&view, &mut decision);
    }
    let status = status::compute(&view);
    if status::normalized(sts.status.clone().unwrap_or_default()) != status {
        decision.status = Some(status);
    }
    decision.requeue_after = status::next_available(&view);
    decision
}

/// What a pass reads, computed once.
struct View<'a> {
    sts: &'a StatefulSet,
    now: Timestamp,
    min_ready: i32,
    /// The revision new pods get: `<sts>-<hash of the template>`.
    update_revision: String,
    /// The revision the set ran before its update finished.
    current_revision: String,
    /// That revision's template, when its ControllerRevision was read.
    current_template: Option<PodTemplateSpec>,
    /// The wanted ordinals, lowest first, with the pod holding each name.
    slots: Vec<(i32, Option<&'a Pod>)>,
    /// Pods with an ordinal outside the wanted range, highest first.
    condemned: Vec<&'a Pod>,
}

impl<'a> View<'a> {
    fn new(sts: &'a StatefulSet, pods: &'a [Arc<Pod>], now: Timestamp) -> Self {
        let name = sts.metadata.name.as_deref().unwrap_or("");
        // 0 reads as absent: the status is written with zeros left out, and
        // the hash must not change when it is.
        let collision = sts.status.as_ref().and_then(|s| s.collision_count);
        let collision = collision.filter(|c| *c != 0);
        let update_revision = format!("{name}-{}", meta::template_hash(&template(sts), collision));
        let current_revision = sts
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| update_revision.clone());
        let start = spec(sts)
            .and_then(|s| s.ordinals.as_ref())
            .and_then(|o| o.start);
        let start = start.unwrap_or(0).max(0);
        let end = start.saturating_add(replicas(sts));
        let mut slots: Vec<(i32, Option<&Pod>)> = (start..end).map(|o| (o, None)).collect();
        let mut condemned = Vec::new();
        for p in pods {
            // Pods whose names are not `<sts>-<ordinal>` are not members.
            let Some(ord) = ordinal(name, p) else {
                continue;
            };
            match slots.get_mut(usize::try_from(ord - start).unwrap_or(usize::MAX)) {
                Some(slot) if ord >= start => slot.1 = Some(&**p),
                _ => condemned.push((ord, &**p)),
            }
        }
        condemned.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));
        View {
            sts,
            now,
            min_ready: spec(sts).and_then(|s| s.min_ready_seconds).unwrap_or(0),
            update_revision,
            current_revision,
            current_template: None,
            slots,
            condemned: condemned.into_iter().map(|(_, p)| p).collect(),
        }
    }

    /// `OrderedReady` (the default): one step at a time, in ordinal order.
    fn monotonic(&self) -> bool {
        spec(self.sts).and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel")
    }

    /// Kubernetes' `isRunningAndReady`.
    fn running_ready(&self, p: &Pod) -> bool {
        phase(p) == Some("Running") && meta::pod_ready(p)
    }

    /// Kubernetes' `isRunningAndAvailable`.
    fn running_available(&self, p: &Pod) -> bool {
        phase(p) == Some("Running") && meta::pod_available(p, self.min_ready, self.now)
    }

    /// Kubernetes' `isHealthy`: Running, Ready and not terminating.
    fn healthy(&self, p: &Pod) -> bool {
        self.running_ready(p) && !terminating(p)
    }

    /// Whether a new pod for `ordinal` gets the current revision rather
    /// than the update revision.
    fn on_current(&self, ordinal: i32) -> bool {
        let strategy = spec(self.sts).and_then(|s| s.update_strategy.as_ref());
        if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
            return false;
        }
        match strategy.and_then(|s| s.rolling_update.as_ref()) {
            Some(ru) => ordinal < ru.partition.unwrap_or(0),
            None => {
                let status = self.sts.status.as_ref();
                ordinal < status.and_then(|s| s.current_replicas).unwrap_or(0)
            }
        }
    }

    /// The pod for `ordinal`, as Kubernetes' `newVersionedStatefulSetPod`
    /// builds it.
    fn new_pod(&self, ordinal: i32) -> Pod {
        let (template, revision) = match &self.current_template {
            Some(t) if self.on_current(ordinal) => (t.clone(), &self.current_revision),
            _ => (template(self.sts), &self.update_revision),
        };
        let tmeta = template.metadata.unwrap_or_default();
        let set_name = self.sts.metadata.name.as_deref().unwrap_or("");
        let name = format!("{set_name}-{ordinal}");
        let mut labels = tmeta.labels.unwrap_or_default();
        labels.insert(POD_NAME_LABEL.into(), name.clone());
        labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
        labels.insert(REVISION_LABEL.into(), revision.clone());
        let mut pod_spec = template.spec.unwrap_or_default();
        claims::mount_claims(self.sts, &name, &mut pod_spec);
        pod_spec.hostname = Some(name.clone());
        let service = spec(self.sts).and_then(|s| s.service_name.clone());
        if let Some(svc) = service.filter(|s| !s.is_empty()) {
            pod_spec.subdomain = Some(svc);
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.sts.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: tmeta.annotations,
                finalizers: tmeta.finalizers,
                owner_references: Some(vec![meta::controller_ref(
                    "apps/v1",
                    "StatefulSet",
                    &self.sts.metadata,
                )]),
                ..ObjectMeta::default()
            },
            spec: Some(pod_spec),
            status: None,
        }
    }
}

/// The ControllerRevision writes for `sts` (its owned `revisions`): the
/// update revision made or renumbered, old ones beyond
/// `revisionHistoryLimit` deleted unless a pod or the status names them.
pub fn revisions(
    sts: &StatefulSet,
    pods: &[Arc<Pod>],
    revisions: &[Arc<ControllerRevision>],
) -> history::Plan {
    let template = template(sts);
    let collision = sts.status.as_ref().and_then(|s| s.collision_count);
    let hash = meta::template_hash(&template, collision.filter(|c| *c != 0));
    let status = sts.status.as_ref();
    let live: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| revision(p))
        .chain(status.and_then(|s| s.current_revision.as_deref()))
        .chain(status.and_then(|s| s.update_revision.as_deref()))
        .collect();
    let owner = history::Owner {
        meta: &sts.metadata,
        kind: "StatefulSet",
        template: &template,
        hash: &hash,
        limit: spec(sts).and_then(|s| s.revision_history_limit),
    };
    let is_live =
        |r: &ControllerRevision| r.metadata.name.as_deref().is_some_and(|n| live.contains(n));
    history::plan(&owner, revisions, &is_live)
}

/// The template `status.currentRevision` names, read from `revisions`.
pub fn current_template(
    sts: &StatefulSet,
    revisions: &[Arc<ControllerRevision>],
) -> Option<PodTemplateSpec> {
    let name = sts.status.as_ref()?.current_revision.as_deref()?;
    let rev = revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))?;
    history::template_of(rev)
}

fn spec(sts: &StatefulSet) -> Option<&StatefulSetSpec> {
    sts.spec.as_ref()
}

/// `spec.replicas`, defaulted to 1 as the API defaults it.
pub fn replicas(sts: &StatefulSet) -> i32 {
    spec(sts).and_then(|s| s.replicas).unwrap_or(1).max(0)
}

fn template(sts: &StatefulSet) -> PodTemplateSpec {
    spec(sts).map(|s| s.template.clone()).unwrap_or_default()
}

/// Whether `p` is named as a member of `sts` (`<set>-<ordinal>`): only such
/// an orphan is adopted, as Kubernetes' `isMemberOf` has it.
pub fn member(sts: &StatefulSet, p: &Pod) -> bool {
    ordinal(sts.metadata.name.as_deref().unwrap_or_default(), p).is_some()
}

/// The ordinal in a member's name `<set>-<ordinal>` (canonical digits only,
/// so `web-01` is no member).
fn ordinal(set: &str, p: &Pod) -> Option<i32> {
    let name = p.metadata.name.as_deref()?;
    let digits = name.strip_prefix(set)?.strip_prefix('-')?;
    let ord: i32 = digits.parse().ok()?;
    (ord >= 0 && ord.to_string() == digits).then_some(ord)
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether a pod is being deleted.
fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// The revision a pod was made from.
fn revision(p: &Pod) -> Option<&str> {
    let labels = p.metadata.labels.as_ref()?;
    labels.get(REVISION_LABEL).map(String::as_str)
}

/// (name, uid) of a pod, as [`Decision::delete`] lists it.
fn name_uid(p: &Pod) -> (String, String) {
    (
        p.metadata.name.clone().unwrap_or_default(),
        p.metadata.uid.clone().unwrap_or_default(),
    )
}
