//! ControllerRevisions of DaemonSets and StatefulSets, after Kubernetes'
//! `controller/history` and the two controllers' `constructHistory` /
//! `getStatefulSetRevisions`: each distinct pod template a set has run is a
//! revision named `<set>-<hash>` whose `data` is the patch that puts the
//! template back (`{"spec":{"template":{...,"$patch":"replace"}}}`, what
//! `kubectl rollout undo` sends), numbered in the order the set came to it;
//! returning to an older template renumbers its revision rather than making
//! a new one; old revisions beyond `revisionHistoryLimit` (default 10) go,
//! oldest first, unless a live pod still runs them.

use crate::meta;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};
use std::sync::Arc;

/// The label carrying a DaemonSet revision's hash (on revisions and pods).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying a StatefulSet revision's hash, as `NewControllerRevision`
/// sets it (the set's pods carry the revision's name in [`HASH_LABEL`]).
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The hash label of `kind`'s revisions: a DaemonSet's are labelled as its
/// pods are (`DefaultDaemonSetUniqueLabelKey`), others as
/// `NewControllerRevision` labels them.
pub fn hash_label(kind: &str) -> &'static str {
    if kind == "DaemonSet" {
        HASH_LABEL
    } else {
        REVISION_HASH_LABEL
    }
}
/// `revisionHistoryLimit` when the set names none.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The set whose history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The set's metadata (name, namespace, uid, annotations).
    pub meta: &'a ObjectMeta,
    /// `DaemonSet` or `StatefulSet` (apps/v1).
    pub kind: &'a str,
    /// The set's current pod template.
    pub template: &'a PodTemplateSpec,
    /// The current template's hash (with the collision count).
    pub hash: &'a str,
    /// `spec.revisionHistoryLimit`.
    pub limit: Option<i32>,
}

/// What to write so the history matches the set's current template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// A revision to create, whole.
    pub create: Option<ControllerRevision>,
    /// An existing revision equal to the current template that must become
    /// the newest: (name, resourceVersion, new revision number).
    pub renumber: Option<(String, Option<String>, i64)>,
    /// Old revisions to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The current template's revision: its name and number once written.
    pub name: String,
    pub number: i64,
    /// The name is held by a revision with other data: the set's
    /// `status.collisionCount` must go up (the next hash differs).
    pub collision: bool,
}

/// The revision data for `template`: the patch that restores it.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision's data restores, if it holds one.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// `ControllerRevisionName`: the owner's name (at most 223 characters) and
/// the hash.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let prefix: String = owner.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// Kubernetes' `SortControllerRevisions` order: revision, then age, then name.
fn order(r: &ControllerRevision) -> (i64, Option<jiff::Timestamp>, Option<String>) {
    let created = r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (r.revision, created, r.metadata.name.clone())
}

/// The revisions, oldest first, without those being deleted.
pub fn sorted(revisions: &[Arc<ControllerRevision>]) -> Vec<&ControllerRevision> {
    let mut v: Vec<&ControllerRevision> = revisions
        .iter()
        .map(|r| &**r)
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by_key(|r| order(r));
    v
}

/// The writes that bring `revisions` (the owner's) up to date; `live` says
/// whether a revision is still run by a pod (or named in the set's status),
/// which keeps it beyond the history limit.
pub fn plan(
    owner: &Owner,
    revisions: &[Arc<ControllerRevision>],
    live: &dyn Fn(&ControllerRevision) -> bool,
) -> Plan {
    let data = template_patch(owner.template);
    let all = sorted(revisions);
    let (equal, old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) = all
        .iter()
        .partition(|r| r.data.as_ref().is_some_and(|d| d.0 == data));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    let set_name = owner.meta.name.as_deref().unwrap_or("");
    let mut plan = Plan::default();
    match equal.last() {
        Some(cur) => {
            plan.name = cur.metadata.name.clone().unwrap_or_default();
            plan.number = cur.revision.max(next);
            if cur.revision < next {
                let rv = cur.metadata.resource_version.clone();
                plan.renumber = Some((plan.name.clone(), rv, next));
            }
        }
        None => {
            plan.name = revision_name(set_name, owner.hash);
            plan.number = next;
            if all
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(&plan.name))
            {
                plan.collision = true;
            } else {
                plan.create = Some(snapshot(owner, &plan.name, data, next));
            }
        }
    }
    let limit = owner.limit.unwrap_or(DEFAULT_HISTORY_LIMIT).max(0);
    let mut excess = old
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for r in &old {
        if excess == 0 {
            break;
        }
        if live(r) {
            continue;
        }
        plan.delete.push((
            r.metadata.name.clone().unwrap_or_default(),
            r.metadata.uid.clone().unwrap_or_default(),
        ));
        excess -= 1;
    }
    plan
}

/// A new revision, as `NewControllerRevision` makes it: the template's
/// labels and the hash label, the set's annotations, the set as controller.
fn snapshot(owner: &Owner, name: &str, data: Value, revision: i64) -> ControllerRevision {
    let tmeta = owner.template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(hash_label(owner.kind).into(), owner.hash.to_string());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: owner.meta.namespace.clone(),
            labels: Some(labels),
            annotations: owner.meta.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![meta::controller_ref(
                "apps/v1", owner.kind, owner.meta,
            )]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "agent".into())])),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn set_meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("default".into()),
            uid: Some("ds-uid".into()),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/change-cause".into(),
                "kubectl set image".into(),
            )])),
            ..ObjectMeta::default()
        }
    }

    /// A stored revision of `image` with number `n`, named by the image.
    fn rev(image: &str, n: i64) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("agent-{image}")),
                uid: Some(format!("uid-{image}")),
                resource_version: Some(format!("{n}0")),
                labels: Some(BTreeMap::from([(HASH_LABEL.into(), image.into())])),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(template_patch(&template(image)))),
            revision: n,
        })
    }

    fn plan_for(
        image: &str,
        limit: Option<i32>,
        revs: &[Arc<ControllerRevision>],
        live: &[&str],
    ) -> Plan {
        let m = set_meta();
        let t = template(image);
        let owner = Owner {
            meta: &m,
            kind: "DaemonSet",
            template: &t,
            hash: image,
            limit,
        };
        let is_live = |r: &ControllerRevision| {
            let h = r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
            h.is_some_and(|h| live.contains(&h.as_str()))
        };
        plan(&owner, revs, &is_live)
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.delete.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn the_data_is_the_replace_patch_and_reads_back() {
        let t = template("v1");
        let d = template_patch(&t);
        assert_eq!(d["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "v1"
        );
        assert_eq!(d.as_object().unwrap().len(), 1);
        let r = rev("v1", 1);
        assert_eq!(template_of(&r), Some(t));
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn plans() {
        // (case, current image, stored revisions, live hashes, limit,
        //  created (name, number), renumbered (name, number), deleted, collision)
        type Case<'a> = (
            &'a str,
            &'a str,
            Vec<Arc<ControllerRevision>>,
            Vec<&'a str>,
            Option<i32>,
            Option<(&'a str, i64)>,
            Option<(&'a str, i64)>,
            Vec<&'a str>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "first revision",
                "v1",
                vec![],
                vec![],
                None,
                Some(("agent-v1", 1)),
                None,
                vec![],
                false,
            ),
            (
                "up to date",
                "v2",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                None,
                None,
                None,
                vec![],
                false,
            ),
            (
                "template changed",
                "v3",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                None,
                Some(("agent-v3", 3)),
                None,
                vec![],
                false,
            ),
            (
                "rolled back: old revision renumbered",
                "v1",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                None,
                None,
                Some(("agent-v1", 3)),
                vec![],
                false,
            ),
            (
                "limit 1: the oldest goes",
                "v3",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                Some(1),
                Some(("agent-v3", 3)),
                None,
                vec!["agent-v1"],
                false,
            ),
            (
                "limit 0: every old one goes",
                "v3",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                Some(0),
                Some(("agent-v3", 3)),
                None,
                vec!["agent-v1", "agent-v2"],
                false,
            ),
            (
                "a live revision is kept; the next oldest goes",
                "v4",
                vec![rev("v1", 1), rev("v2", 2), rev("v3", 3)],
                vec!["v1"],
                Some(1),
                Some(("agent-v4", 4)),
                None,
                vec!["agent-v2", "agent-v3"],
                false,
            ),
            (
                "the current one never counts against the limit",
                "v2",
                vec![rev("v1", 1), rev("v2", 2)],
                vec![],
                Some(1),
                None,
                None,
                vec![],
                false,
            ),
        ];
        for (name, image, revs, live, limit, created, renumbered, deleted, collision) in cases {
            let p = plan_for(image, limit, &revs, &live);
            let c = p
                .create
                .as_ref()
                .map(|c| (c.metadata.name.as_deref().unwrap(), c.revision));
            assert_eq!(c, created, "{name}: create");
            let r = p.renumber.as_ref().map(|(n, _, v)| (n.as_str(), *v));
            assert_eq!(r, renumbered, "{name}: renumber");
            assert_eq!(names(&p), deleted, "{name}: delete");
            assert_eq!(p.collision, collision, "{name}: collision");
        }
    }

    #[test]
    fn a_new_revision_carries_labels_annotations_and_owner() {
        let p = plan_for("v1", None, &[], &[]);
        let c = p.create.unwrap();
        let labels = c.metadata.labels.unwrap();
        assert_eq!(labels["app"], "agent");
        assert_eq!(labels[HASH_LABEL], "v1");
        assert_eq!(
            c.metadata.annotations.unwrap()["kubernetes.io/change-cause"],
            "kubectl set image"
        );
        let o = &c.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str(),
                o.controller
            ),
            ("DaemonSet", "agent", "ds-uid", Some(true))
        );
        assert_eq!(c.metadata.namespace.as_deref(), Some("default"));
        assert_eq!((p.name.as_str(), p.number), ("agent-v1", 1));
    }

    #[test]
    fn a_name_held_by_other_data_is_a_collision() {
        let mut other = (*rev("v9", 1)).clone();
        other.metadata.name = Some("agent-v2".into());
        let p = plan_for("v2", None, &[Arc::new(other)], &[]);
        assert!(p.collision);
        assert_eq!(p.create, None);
    }

    #[test]
    fn renumbering_keeps_the_resource_version_as_precondition() {
        let p = plan_for("v1", None, &[rev("v1", 1), rev("v2", 2)], &[]);
        assert_eq!(p.renumber, Some(("agent-v1".into(), Some("10".into()), 3)));
        assert_eq!((p.name.as_str(), p.number), ("agent-v1", 3));
    }
}
