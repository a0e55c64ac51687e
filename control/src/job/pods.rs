//! A Job's pods: sorted by state, ranked for removal, aged for back-off, and
//! made from the template.

use super::INDEX_KEY;
use crate::meta;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// First pod-creation back-off after a failure (Kubernetes' `DefaultJobBackOff`).
const BACKOFF_BASE: i64 = 10;
/// Longest back-off (Kubernetes' `MaxJobBackOff`).
const BACKOFF_MAX: i64 = 360;

/// The Job's pods by state.
pub(super) struct View<'a> {
    /// Neither finished nor terminating.
    pub active: Vec<&'a Pod>,
    /// Being deleted, not finished.
    pub terminating: Vec<&'a Pod>,
    pub succeeded: Vec<&'a Pod>,
    pub failed: Vec<&'a Pod>,
}

impl<'a> View<'a> {
    pub fn new(pods: &'a [Arc<Pod>]) -> Self {
        let mut v = View {
            active: Vec::new(),
            terminating: Vec::new(),
            succeeded: Vec::new(),
            failed: Vec::new(),
        };
        for p in pods.iter().map(|p| &**p) {
            match phase(p) {
                "Succeeded" => v.succeeded.push(p),
                "Failed" => v.failed.push(p),
                _ if p.metadata.deletion_timestamp.is_some() => v.terminating.push(p),
                _ => v.active.push(p),
            }
        }
        v
    }

    /// Active pods that are Ready.
    pub fn ready(&self) -> usize {
        self.active.iter().filter(|p| meta::pod_ready(p)).count()
    }

    /// Kubernetes' `pastBackoffLimitOnFailure`: with restartPolicy OnFailure
    /// failures are container restarts in running pods, counted against the limit.
    pub fn restarts_past_limit(&self, spec: &JobSpec, limit: i32) -> bool {
        let policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref());
        if policy != Some("OnFailure") {
            return false;
        }
        let restarts: i32 = self
            .active
            .iter()
            .filter(|p| matches!(phase(p), "Running" | "Pending"))
            .filter_map(|p| p.status.as_ref())
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .fold(0, i32::saturating_add);
        if limit == 0 {
            restarts > 0
        } else {
            restarts >= limit
        }
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// A pod's completion index, from its annotation.
pub(super) fn index(p: &Pod) -> Option<i32> {
    let v = p.metadata.annotations.as_ref()?.get(INDEX_KEY)?;
    v.parse().ok().filter(|i| *i >= 0)
}

/// Splits an Indexed Job's active pods into those to keep (one per pending
/// index, the Ready or older one) and strays to delete: no valid index, an
/// index already done, or a second pod for an index.
pub(super) fn sort_indexed<'p>(
    active: &[&'p Pod],
    completions: i32,
    done: &BTreeSet<i32>,
) -> (Vec<&'p Pod>, Vec<&'p Pod>) {
    let mut by_index: BTreeMap<i32, Vec<&'p Pod>> = BTreeMap::new();
    let mut stray = Vec::new();
    for p in active {
        match index(p) {
            Some(i) if i < completions && !done.contains(&i) => {
                by_index.entry(i).or_default().push(p)
            }
            _ => stray.push(*p),
        }
    }
    let mut keep = Vec::new();
    for (_, mut pods) in by_index {
        // The last in removal order is the one most worth keeping.
        let n = pods.len();
        pods = removal_order(&pods, n);
        if let Some(best) = pods.pop() {
            keep.push(best);
        }
        stray.extend(pods);
    }
    (keep, stray)
}

/// The lowest indexes with neither a success nor an active pod.
pub(super) fn pending_indexes<'s>(
    completions: i32,
    keep: &[&Pod],
    done: &'s BTreeSet<i32>,
) -> impl Iterator<Item = i32> + 's {
    let busy: BTreeSet<i32> = keep.iter().filter_map(|p| index(p)).collect();
    (0..completions).filter(move |i| !done.contains(i) && !busy.contains(i))
}

/// The first `n` of `active` to delete: unscheduled, then pending, then not
/// Ready, then the youngest (Kubernetes' `ActivePods` order, shortened).
pub(super) fn removal_order<'p>(active: &[&'p Pod], n: usize) -> Vec<&'p Pod> {
    let mut ranked = active.to_vec();
    ranked.sort_by_key(|p| {
        let scheduled = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            scheduled,
            phase(p) != "Pending",
            meta::pod_ready(p),
            std::cmp::Reverse(created),
            p.metadata.name.clone(),
        )
    });
    ranked.truncate(n);
    ranked
}

/// How long pod creation still waits after the failures since the last
/// success: 10 s doubling per failure, at most 6 min, from the last one.
pub(super) fn backoff_left(view: &View, now: Timestamp) -> Option<Duration> {
    let last_success = view.succeeded.iter().filter_map(|p| finish_time(p)).max();
    let failures: Vec<Timestamp> = view
        .failed
        .iter()
        .filter_map(|p| finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    let shift = u32::try_from(failures.len() - 1)
        .unwrap_or(u32::MAX)
        .min(16);
    let delay = (BACKOFF_BASE << shift).min(BACKOFF_MAX);
    let left = last.as_second() + delay - now.as_second();
    (left > 0).then(|| Duration::from_secs(left.unsigned_abs()))
}

/// When a pod finished: its containers' last termination, else when it
/// stopped being Ready, else its deletion or creation time.
fn finish_time(p: &Pod) -> Option<Timestamp> {
    let status = p.status.as_ref();
    let containers = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let not_ready = || {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")?
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
    };
    let m = &p.metadata;
    containers
        .or_else(not_ready)
        .or_else(|| m.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| m.creation_timestamp.as_ref().map(|t| t.0))
}

/// A new pod as Kubernetes' Job controller builds it, for `index` when the
/// Job is Indexed.
pub(super) fn from_template(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.as_deref().unwrap_or("");
    let uid = job.metadata.uid.as_deref().unwrap_or("");
    let template = job.spec.as_ref().map(|s| &s.template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let mut labels = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        labels.insert(k.into(), v.into());
    }
    let mut pod = Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![meta::controller_ref("batch/v1", "Job", &job.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    };
    if let Some(i) = index {
        set_index(&mut pod, name, i);
    }
    pod
}

/// Marks a pod with its completion index: name, annotation, label, hostname
/// and `JOB_COMPLETION_INDEX` in every container.
fn set_index(pod: &mut Pod, job: &str, i: i32) {
    let m = &mut pod.metadata;
    m.generate_name = Some(format!("{job}-{i}-"));
    m.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(INDEX_KEY.into(), i.to_string());
    m.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(INDEX_KEY.into(), i.to_string());
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.hostname.as_deref().is_none_or(str::is_empty) {
        spec.hostname = Some(format!("{job}-{i}"));
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    containers.for_each(|c| add_index_env(c, i));
}

fn add_index_env(c: &mut Container, i: i32) {
    let env = c.env.get_or_insert_with(Vec::new);
    if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
        env.push(EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: Some(i.to_string()),
            value_from: None,
        });
    }
}
