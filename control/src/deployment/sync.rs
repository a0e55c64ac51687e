//! The new ReplicaSet (found, adopted on rollback, or made), its annotations
//! and revision, and the pruning of old ReplicaSets past the history limit
//! (Kubernetes' `sync.go` and `deployment_util.go`).

use super::status::{condition, has_condition, PROGRESSING};
use super::{desired, max_surge, progress_deadline, spec, Pass, Set};
use crate::meta;
use crate::replicaset::spec_replicas;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The ReplicaSet's revision (its place in `kubectl rollout history`).
pub(super) const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before a rollback moved it on.
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub(super) const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub(super) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that keeps each template's pods apart.
const HASH_LABEL: &str = "pod-template-hash";
/// Kubernetes' cap on the revision-history annotation.
const MAX_HISTORY_CHARS: usize = 2000;

/// Deployment annotations a ReplicaSet never copies: kubectl's own, and the
/// controller's bookkeeping.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// A template without its hash label, empty parts dropped, for comparing.
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
        }
        if m.labels.as_ref().is_some_and(BTreeMap::is_empty) {
            m.labels = None;
        }
        if m.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
            m.annotations = None;
        }
    }
    if t.metadata == Some(ObjectMeta::default()) {
        t.metadata = None;
    }
    t
}

/// A ReplicaSet's revision; unparsable counts as none.
pub(super) fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION)?
        .parse()
        .ok()
}

/// Appends `old` to the revision history, dropping the oldest entries past
/// the cap, as Kubernetes does.
fn push_history(ann: &mut BTreeMap<String, String>, old: &str) {
    let history = ann.get(REVISION_HISTORY).cloned().unwrap_or_default();
    if history.is_empty() {
        ann.insert(REVISION_HISTORY.into(), old.into());
        return;
    }
    let parts: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_HISTORY_CHARS && start < parts.len() {
        total -= parts[start].len() + 1;
        start += 1;
    }
    if total <= MAX_HISTORY_CHARS {
        let mut kept = parts[start..].to_vec();
        kept.push(old);
        ann.insert(REVISION_HISTORY.into(), kept.join(","));
    }
}

impl Pass<'_> {
    /// The oldest ReplicaSet whose template is the Deployment's.
    pub(super) fn find_new(&self) -> Option<usize> {
        let want = without_hash(&spec(self.d)?.template);
        let mut idx: Vec<usize> = (0..self.sets.len()).collect();
        self.sort_oldest_first(&mut idx);
        idx.into_iter().find(|i| {
            let t = self.sets[*i]
                .rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref());
            t.is_some_and(|t| without_hash(t) == want)
        })
    }

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: bring the new
    /// ReplicaSet's annotations up to date, or make it when `create`. False
    /// when its name is taken by another template (the collision count moves
    /// on, so the next pass hashes to another name).
    pub(super) fn sync_revision(&mut self, create: bool) -> bool {
        let rev = self
            .olds()
            .iter()
            .filter_map(|i| revision(&self.sets[*i].rs))
            .max()
            .unwrap_or(0)
            + 1;
        if let Some(i) = self.new {
            self.annotate_new(i, rev, true);
            if progress_deadline(self.d).is_some() && !has_condition(&self.status, PROGRESSING) {
                let msg = format!("Found new replica set \"{}\"", self.name(i));
                self.set_condition(condition(
                    PROGRESSING,
                    "True",
                    "FoundNewReplicaSet",
                    msg,
                    self.now,
                ));
            }
            return true;
        }
        if !create {
            return true;
        }
        self.create_new(rev)
    }

    fn create_new(&mut self, rev: i64) -> bool {
        let Some(ds) = spec(self.d) else { return false };
        let hash = meta::template_hash(&ds.template, self.status.collision_count);
        let name = format!("{}-{hash}", self.d.metadata.name.as_deref().unwrap_or(""));
        if self
            .sets
            .iter()
            .any(|s| s.rs.metadata.name.as_deref() == Some(&name))
        {
            self.status.collision_count =
                Some(self.status.collision_count.unwrap_or(0).saturating_add(1));
            return false;
        }
        let mut template = ds.template.clone();
        let labels = template
            .metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let labels = labels.clone();
        let mut selector = ds.selector.clone();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(HASH_LABEL.into(), hash);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: Some(labels),
                owner_references: Some(vec![meta::controller_ref(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: ds.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.sets.push(Set { rs, read: None });
        let i = self.sets.len() - 1;
        self.new = Some(i);
        let n = self.new_rs_new_replicas(i);
        self.set_replicas(i, n);
        self.annotate_new(i, rev, false);
        if progress_deadline(self.d).is_some() {
            let msg = format!("Created new replica set \"{name}\"");
            self.set_condition(condition(
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                msg,
                self.now,
            ));
        }
        true
    }

    /// Kubernetes' `SetNewReplicaSetAnnotations`: the Deployment's
    /// annotations, the revision (moved on, keeping the old one in the
    /// history, when a rollback adopts an old ReplicaSet), and for a new
    /// ReplicaSet the replica annotations.
    fn annotate_new(&mut self, i: usize, rev: i64, exists: bool) {
        let d_ann = self.d.metadata.annotations.clone().unwrap_or_default();
        let ann = self.sets[i].rs.metadata.annotations.get_or_insert_default();
        for (k, v) in d_ann.into_iter().filter(|(k, _)| !skip_copy(k)) {
            ann.insert(k, v);
        }
        let old = ann.get(REVISION).cloned();
        let old_rev = match old.as_deref() {
            None | Some("") => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) => n,
                Err(_) => return,
            },
        };
        if old_rev < rev {
            ann.insert(REVISION.into(), rev.to_string());
            if let Some(old) = old.filter(|o| !o.is_empty()) {
                push_history(ann, &old);
            }
        }
        if !exists {
            self.set_replica_annotations(i);
        }
    }

    /// Kubernetes' `SetReplicasAnnotations`.
    pub(super) fn set_replica_annotations(&mut self, i: usize) {
        let want = desired(self.d);
        let max = want.saturating_add(max_surge(self.d));
        let ann = self.sets[i].rs.metadata.annotations.get_or_insert_default();
        ann.insert(DESIRED.into(), want.to_string());
        ann.insert(MAX_REPLICAS.into(), max.to_string());
    }

    /// Sets the working spec replicas of set `i`.
    pub(super) fn set_replicas(&mut self, i: usize, n: i32) {
        self.sets[i].rs.spec.get_or_insert_default().replicas = Some(n);
    }

    pub(super) fn name(&self, i: usize) -> String {
        self.sets[i].rs.metadata.name.clone().unwrap_or_default()
    }

    /// The revision to record on the Deployment, when it lags the new one's.
    pub(super) fn revision_to_record(&self) -> Option<String> {
        let rev = self.sets[self.new?]
            .rs
            .metadata
            .annotations
            .as_ref()?
            .get(REVISION)?;
        let has = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        (has != Some(rev)).then(|| rev.clone())
    }

    /// Kubernetes' `cleanupDeployment`: delete the oldest revisions past
    /// `revisionHistoryLimit` (default 10) among old ReplicaSets that are
    /// scaled to 0, hold no pods and are not already being deleted.
    pub(super) fn cleanup(&mut self) {
        let limit = spec(self.d)
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        if limit == i32::MAX {
            return;
        }
        let mut alive: Vec<usize> = self
            .olds()
            .into_iter()
            .filter(|i| {
                self.sets[*i]
                    .read
                    .as_ref()
                    .is_some_and(|r| r.metadata.deletion_timestamp.is_none())
            })
            .collect();
        let excess = alive
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        alive.sort_by_key(|i| {
            (
                revision(&self.sets[*i].rs).unwrap_or(0),
                self.created_key(*i),
            )
        });
        for i in alive.into_iter().take(excess) {
            let Some(read) = self.sets[i].read.clone() else {
                continue;
            };
            let st = read.status.clone().unwrap_or_default();
            let settled =
                st.observed_generation.unwrap_or(0) >= read.metadata.generation.unwrap_or(0);
            if st.replicas != 0 || spec_replicas(&read) != 0 || self.replicas(i) != 0 || !settled {
                continue;
            }
            self.deletes
                .push((self.name(i), read.metadata.uid.clone().unwrap_or_default()));
        }
    }
}
