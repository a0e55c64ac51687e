//! The garbage collector's decisions, pure (kube-controller-manager's
//! `garbagecollector`: `attemptToDeleteItem`, `processDeletingDependentsItem`,
//! `orphanDependents`), over an owner-reference graph the shell keeps in its
//! informer caches ([`Graph`]: objects by uid, dependents by owner uid).
//!
//! - A dependent's owner reference is resolved by the owner's **uid**: an
//!   object of that uid whose kind and name match. A namespaced owner must be
//!   in the dependent's namespace (a cluster-scoped owner is fine for any
//!   dependent; a namespaced owner of a cluster-scoped dependent is invalid);
//!   an unresolved or invalid reference is *dangling*.
//! - An owner deleting with `foregroundDeletion` is *waiting*; any other owner
//!   that exists is *solid*.
//! - A dependent with a solid owner keeps living; its dangling and waiting
//!   references are removed. Without one, it is deleted: in the foreground
//!   when an owner waits for it and it has dependents of its own (first made
//!   non-blocking when one of those also waits — a cycle), else in the background.
//! - An owner deleting with `orphan` first removes its reference from every
//!   dependent, then its finalizer; with `foregroundDeletion` it deletes its
//!   blocking dependents (`blockOwnerDeletion: true`) and drops the finalizer
//!   once none is left.

use ferry_api::resources::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Finalizer that orphans dependents before the owner goes.
pub const ORPHAN: &str = "orphan";
/// Finalizer that deletes dependents before the owner goes.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Any object as the collector caches it: its metadata only (kube-rs's
/// `PartialObjectMeta`), without `managedFields` (the collector reads none;
/// they are skipped unread, as kube-controller-manager's informers drop
/// them); the kind is its informer's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Head {
    /// The object's metadata.
    pub metadata: ObjectMeta,
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Head, D::Error> {
        d.deserialize_map(HeadVisitor)
    }
}

/// Reads an object's `metadata` (but its `managedFields`), skipping the rest.
struct HeadVisitor;

impl<'de> serde::de::Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        while let Some(Key(key)) = map.next_key()? {
            if key == "metadata" {
                head.metadata = map.next_value_seed(MetaSeed)?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(head)
    }
}

/// `ObjectMeta` read from a map whose `managedFields` member is skipped.
struct MetaSeed;

impl<'de> serde::de::DeserializeSeed<'de> for MetaSeed {
    type Value = ObjectMeta;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
        d.deserialize_map(MetaVisitor)
    }
}

struct MetaVisitor;

impl<'de> serde::de::Visitor<'de> for MetaVisitor {
    type Value = ObjectMeta;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("object metadata")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ObjectMeta, A::Error> {
        ObjectMeta::deserialize(serde::de::value::MapAccessDeserializer::new(
            WithoutManagedFields(map),
        ))
    }
}

/// A map key, borrowed from the input where it can be.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(s.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(s.to_string().into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A map's entries but `managedFields`.
struct WithoutManagedFields<A>(A);

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for WithoutManagedFields<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        use serde::de::IntoDeserializer;
        while let Some(Key(key)) = self.0.next_key()? {
            if key == "managedFields" {
                self.0.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

impl k8s_openapi::Resource for Head {
    const API_VERSION: &'static str = "meta.k8s.io/v1";
    const GROUP: &'static str = "meta.k8s.io";
    const KIND: &'static str = "PartialObjectMetadata";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "";
    type Scope = k8s_openapi::SubResourceScope;
}

impl k8s_openapi::Metadata for Head {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// One object of the graph: its kind and its metadata.
#[derive(Debug, Clone)]
pub struct Object {
    /// The kind.
    pub res: &'static Resource,
    /// The object.
    pub head: Arc<Head>,
}

impl Object {
    fn meta(&self) -> &ObjectMeta {
        &self.head.metadata
    }
    /// The uid.
    pub fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or("")
    }
    fn deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }
    fn has_finalizer(&self, f: &str) -> bool {
        self.meta().finalizers.iter().flatten().any(|x| x == f)
    }
    /// Whether it is deleting with `foregroundDeletion` (waiting for dependents).
    pub fn deleting_dependents(&self) -> bool {
        self.deleting() && self.has_finalizer(FOREGROUND)
    }
    fn refs(&self) -> &[OwnerReference] {
        self.meta().owner_references.as_deref().unwrap_or_default()
    }
    /// Who the object is, for a write.
    pub fn target(&self) -> Target {
        let m = self.meta();
        Target {
            plural: self.res.plural,
            namespace: m.namespace.clone().filter(|n| !n.is_empty()),
            name: m.name.clone().unwrap_or_default(),
            uid: self.uid().to_string(),
        }
    }
}

/// What the collector reads: objects by uid, dependents by owner uid.
pub trait Graph {
    /// The object of this uid, if any.
    fn by_uid(&self, uid: &str) -> Option<Object>;
    /// The objects naming `uid` in their ownerReferences.
    fn dependents(&self, uid: &str) -> Vec<Object>;
}

/// Every object in one list (tests, small graphs).
impl Graph for [Object] {
    fn by_uid(&self, uid: &str) -> Option<Object> {
        self.iter().find(|o| o.uid() == uid).cloned()
    }
    fn dependents(&self, uid: &str) -> Vec<Object> {
        self.iter()
            .filter(|o| o.refs().iter().any(|r| r.uid == uid))
            .cloned()
            .collect()
    }
}

/// The object a write is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its kind's plural.
    pub plural: &'static str,
    /// Its namespace (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid (the write's precondition).
    pub uid: String,
}

/// A delete's propagation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents after the object.
    Background,
    /// Blocking dependents before the object.
    Foreground,
}

impl Propagation {
    /// As `DeleteOptions.propagationPolicy` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// One write the collector wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete the object (uid precondition).
    Delete {
        /// The object.
        target: Target,
        /// Owners the caches do not hold: the shell reads each first and
        /// does nothing while one exists with its uid (its informer may lag).
        unless_present: Vec<Target>,
        /// Its propagation.
        propagation: Propagation,
        /// Why, for the log.
        why: String,
    },
    /// Replace the object's ownerReferences (resourceVersion precondition).
    SetOwners {
        /// The object.
        target: Target,
        /// As for [`Action::Delete`].
        unless_present: Vec<Target>,
        /// The resourceVersion read.
        resource_version: String,
        /// The new references (empty: none left).
        owners: Vec<OwnerReference>,
    },
    /// Replace the object's finalizers, one removed (resourceVersion precondition).
    SetFinalizers {
        /// The object.
        target: Target,
        /// The resourceVersion read.
        resource_version: String,
        /// The finalizers left.
        finalizers: Vec<String>,
    },
}

/// How one owner reference resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Solid,
    Waiting,
    /// Absent or invalid, and why; with the owner to read first when only
    /// the caches' word says it is absent.
    Dangling(String, Option<Target>),
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn resolve(dep: &Object, r: &OwnerReference, graph: &(impl Graph + ?Sized)) -> Owner {
    let Some(o) = graph.by_uid(&r.uid) else {
        let why = format!("owner {} {:?} (uid {}) is gone", r.kind, r.name, r.uid);
        // Only the caches say so: the shell reads the owner before acting.
        let confirm = ferry_api::resources::by_api_version_kind(&r.api_version, &r.kind)
            .ok()
            .filter(|res| !res.namespaced || dep.res.namespaced)
            .map(|res| Target {
                plural: res.plural,
                namespace: if res.namespaced {
                    dep.meta().namespace.clone()
                } else {
                    None
                },
                name: r.name.clone(),
                uid: r.uid.clone(),
            });
        return Owner::Dangling(why, confirm);
    };
    let om = o.meta();
    if o.res.kind != r.kind
        || o.res.group != group_of(&r.api_version)
        || om.name.as_deref() != Some(r.name.as_str())
    {
        let why = format!(
            "uid {} is not {} {:?} but {} {:?}",
            r.uid,
            r.kind,
            r.name,
            o.res.kind,
            om.name.as_deref().unwrap_or("")
        );
        return Owner::Dangling(why, None);
    }
    if o.res.namespaced {
        let dep_ns = dep.meta().namespace.as_deref().filter(|n| !n.is_empty());
        if !dep.res.namespaced || dep_ns != om.namespace.as_deref() {
            let why = format!(
                "owner {} {:?} is in namespace {:?}, not the dependent's (OwnerRefInvalidNamespace)",
                r.kind,
                r.name,
                om.namespace.as_deref().unwrap_or("")
            );
            return Owner::Dangling(why, None);
        }
    }
    if o.deleting_dependents() {
        Owner::Waiting
    } else {
        Owner::Solid
    }
}

fn rv(o: &Object) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

/// A dependent's fate from its owners (`attemptToDeleteItem`).
fn attempt(item: &Object, graph: &(impl Graph + ?Sized)) -> Vec<Action> {
    if item.deleting() || item.refs().is_empty() {
        return Vec::new();
    }
    let owners: Vec<(&OwnerReference, Owner)> = item
        .refs()
        .iter()
        .map(|r| (r, resolve(item, r, graph)))
        .collect();
    let unless_present: Vec<Target> = owners
        .iter()
        .filter_map(|(_, o)| match o {
            Owner::Dangling(_, Some(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let solid = owners.iter().any(|(_, o)| *o == Owner::Solid);
    let waiting = owners.iter().any(|(_, o)| *o == Owner::Waiting);
    if solid {
        if owners.iter().all(|(_, o)| *o == Owner::Solid) {
            return Vec::new();
        }
        // Live on for the solid owners; drop the others.
        return vec![Action::SetOwners {
            target: item.target(),
            unless_present,
            resource_version: rv(item),
            owners: owners
                .iter()
                .filter(|(_, o)| *o == Owner::Solid)
                .map(|(r, _)| (*r).clone())
                .collect(),
        }];
    }
    let deps = graph.dependents(item.uid());
    if waiting && !deps.is_empty() {
        let mut out = Vec::new();
        if deps.iter().any(Object::deleting_dependents) {
            // A cycle may wait on this object: make its references non-blocking first.
            out.push(Action::SetOwners {
                target: item.target(),
                unless_present: unless_present.clone(),
                resource_version: rv(item),
                owners: item
                    .refs()
                    .iter()
                    .map(|r| OwnerReference {
                        block_owner_deletion: Some(false),
                        ..r.clone()
                    })
                    .collect(),
            });
        }
        out.push(Action::Delete {
            target: item.target(),
            unless_present: unless_present.clone(),
            propagation: Propagation::Foreground,
            why: "an owner is deleting its dependents in the foreground".into(),
        });
        return out;
    }
    let why = owners
        .iter()
        .find_map(|(_, o)| match o {
            Owner::Dangling(w, _) => Some(w.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "an owner is deleting its dependents in the foreground".into());
    vec![Action::Delete {
        target: item.target(),
        unless_present,
        propagation: Propagation::Background,
        why,
    }]
}

fn blocks(dep: &Object, owner_uid: &str) -> bool {
    dep.refs()
        .iter()
        .any(|r| r.uid == owner_uid && r.block_owner_deletion == Some(true))
}

fn without(o: &Object, f: &str) -> Action {
    Action::SetFinalizers {
        target: o.target(),
        resource_version: rv(o),
        finalizers: o
            .meta()
            .finalizers
            .iter()
            .flatten()
            .filter(|x| *x != f)
            .cloned()
            .collect(),
    }
}

/// The writes `obj` needs now, in order (the shell stops at the first that
/// fails): its own deletion when its owners are gone, or as an owner being
/// deleted, its dependents' and its finalizer's.
pub fn reconcile(obj: &Object, graph: &(impl Graph + ?Sized)) -> Vec<Action> {
    if !obj.deleting() {
        return attempt(obj, graph);
    }
    let uid = obj.uid();
    if obj.has_finalizer(ORPHAN) {
        let mut out: Vec<Action> = graph
            .dependents(uid)
            .iter()
            .map(|d| Action::SetOwners {
                target: d.target(),
                unless_present: Vec::new(),
                resource_version: rv(d),
                owners: d.refs().iter().filter(|r| r.uid != uid).cloned().collect(),
            })
            .collect();
        out.push(without(obj, ORPHAN));
        return out;
    }
    if obj.has_finalizer(FOREGROUND) {
        let blocking: Vec<Object> = graph
            .dependents(uid)
            .into_iter()
            .filter(|d| blocks(d, uid))
            .collect();
        if blocking.is_empty() {
            return vec![without(obj, FOREGROUND)];
        }
        return blocking.iter().flat_map(|d| attempt(d, graph)).collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::resources::RESOURCES;
    use serde_json::{json, Value};

    fn res(kind: &str) -> &'static Resource {
        RESOURCES.iter().find(|r| r.kind == kind).unwrap()
    }

    #[test]
    fn head_reads_metadata_without_managed_fields() {
        let meta = json!({
            "name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
            "labels": {"app": "web"}, "finalizers": ["orphan"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": "u-rs", "blockOwnerDeletion": true}],
        });
        let mut with = meta.clone();
        with["managedFields"] = json!([{"manager": "kubectl", "operation": "Update",
            "apiVersion": "v1", "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]);
        // A key with an escape is read too.
        let text = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": with, "spec": {"containers": []}}))
        .unwrap()
        .replace("\"uid\":\"u-1\"", "\"\\u0075id\":\"u-1\"");
        assert!(text.contains("u0075id"), "{text}");
        let head: Head = serde_json::from_str(&text).unwrap();
        let want: ObjectMeta = serde_json::from_value(meta).unwrap();
        assert_eq!(head.metadata, want);
        assert!(head.metadata.managed_fields.is_none());
        let bare: Head = serde_json::from_value(json!({"kind": "Pod"})).unwrap();
        assert_eq!(bare, Head::default());
    }

    /// `kind/ns/name` (ns `-`: cluster-scoped), uid `u-name`, owners as
    /// (kind, name, blocking), `extra` merged into the metadata.
    fn obj(
        kind: &str,
        ns: &str,
        name: &str,
        owners: &[(&str, &str, bool)],
        extra: Value,
    ) -> Object {
        let r = res(kind);
        let mut m = json!({"name": name, "uid": format!("u-{name}"), "resourceVersion": "7"});
        if ns != "-" {
            m["namespace"] = json!(ns);
        }
        if !owners.is_empty() {
            m["ownerReferences"] = owners
                .iter()
                .map(|(k, n, b)| {
                    json!({"apiVersion": res(k).api_version(), "kind": k, "name": n,
                        "uid": format!("u-{n}"), "blockOwnerDeletion": b})
                })
                .collect();
        }
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            m[k] = v;
        }
        Object {
            res: r,
            head: Arc::new(serde_json::from_value(json!({"metadata": m})).unwrap()),
        }
    }

    fn deleting(fins: &[&str]) -> Value {
        json!({"deletionTimestamp": "2026-12-06T00:00:00Z", "finalizers": fins})
    }

    /// The actions in short: `delete name Background`, `owners name [u-a,u-b!]`
    /// (`!`: blocking), `finalizers name [..]`.
    fn short(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Delete {
                    target,
                    propagation,
                    ..
                } => format!("delete {} {}", target.name, propagation.as_str()),
                Action::SetOwners { target, owners, .. } => format!(
                    "owners {} [{}]",
                    target.name,
                    owners
                        .iter()
                        .map(|o| format!(
                            "{}{}",
                            o.uid,
                            if o.block_owner_deletion == Some(true) {
                                "!"
                            } else {
                                ""
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Action::SetFinalizers {
                    target, finalizers, ..
                } => format!("finalizers {} [{}]", target.name, finalizers.join(",")),
            })
            .collect()
    }

    #[test]
    fn dependents_are_judged_by_their_owners_uids_kinds_and_namespaces() {
        let graph = vec![
            obj("ReplicaSet", "ns", "rs", &[], json!({})),
            obj("Node", "-", "node1", &[], json!({})),
            obj("Namespace", "-", "other", &[], json!({})),
            obj("ConfigMap", "other", "elsewhere", &[], json!({})),
        ];
        let cases: Vec<(&str, Object, Vec<&str>)> = vec![
            (
                "no owners: left alone",
                obj("Pod", "ns", "p", &[], json!({})),
                vec![],
            ),
            (
                "live owner: left alone",
                obj("Pod", "ns", "p", &[("ReplicaSet", "rs", true)], json!({})),
                vec![],
            ),
            (
                "owner gone: deleted in the background",
                obj("Pod", "ns", "p", &[("ReplicaSet", "gone", true)], json!({})),
                vec!["delete p Background"],
            ),
            (
                "owner of the same name but another uid: gone",
                {
                    let o = obj("Pod", "ns", "p", &[("ReplicaSet", "rs", true)], json!({}));
                    let mut h = (*o.head).clone();
                    h.metadata.owner_references.as_mut().unwrap()[0].uid = "u-old-rs".into();
                    Object {
                        res: o.res,
                        head: Arc::new(h),
                    }
                },
                vec!["delete p Background"],
            ),
            (
                "uid of another kind: gone",
                obj("Pod", "ns", "p", &[("Deployment", "rs", true)], json!({})),
                vec!["delete p Background"],
            ),
            (
                "owner in another namespace: invalid, so gone",
                obj(
                    "Pod",
                    "ns",
                    "p",
                    &[("ConfigMap", "elsewhere", false)],
                    json!({}),
                ),
                vec!["delete p Background"],
            ),
            (
                "cluster-scoped owner of a namespaced dependent: fine",
                obj("Pod", "ns", "p", &[("Node", "node1", false)], json!({})),
                vec![],
            ),
            (
                "namespaced owner of a cluster-scoped dependent: invalid",
                obj(
                    "PersistentVolume",
                    "-",
                    "pv",
                    &[("ReplicaSet", "rs", false)],
                    json!({}),
                ),
                vec!["delete pv Background"],
            ),
            (
                "one live owner, one gone: the dangling reference is dropped",
                obj(
                    "Pod",
                    "ns",
                    "p",
                    &[("ReplicaSet", "rs", true), ("ReplicaSet", "gone", true)],
                    json!({}),
                ),
                vec!["owners p [u-rs!]"],
            ),
            (
                "already deleting: left to finish",
                obj(
                    "Pod",
                    "ns",
                    "p",
                    &[("ReplicaSet", "gone", true)],
                    deleting(&[]),
                ),
                vec![],
            ),
        ];
        for (name, o, want) in cases {
            assert_eq!(short(&reconcile(&o, graph.as_slice())), want, "{name}");
        }
    }

    #[test]
    fn only_owners_missing_from_the_caches_are_read_before_acting() {
        let graph = vec![
            obj("ConfigMap", "other", "elsewhere", &[], json!({})),
            obj("Node", "-", "node1", &[], json!({})),
        ];
        let unless = |o: &Object| match reconcile(o, graph.as_slice()).as_slice() {
            [Action::Delete { unless_present, .. }] => unless_present.clone(),
            a => panic!("{a:?}"),
        };
        let missing = obj("Pod", "ns", "p", &[("ReplicaSet", "rs", true)], json!({}));
        assert_eq!(
            unless(&missing),
            [Target {
                plural: "replicasets",
                namespace: Some("ns".into()),
                name: "rs".into(),
                uid: "u-rs".into()
            }],
            "a namespaced owner is read in the dependent's namespace"
        );
        let missing_node = obj("Pod", "ns", "p", &[("Node", "gone", false)], json!({}));
        assert_eq!(unless(&missing_node)[0].namespace, None);
        // Definitive without a read: the uid is another object's, or the
        // owner is in another namespace.
        let mismatch = obj("Pod", "ns", "p", &[("Node", "node2", false)], json!({}));
        let mut h = (*mismatch.head).clone();
        h.metadata.owner_references.as_mut().unwrap()[0].uid = "u-node1".into();
        let mismatch = Object {
            res: mismatch.res,
            head: Arc::new(h),
        };
        assert!(unless(&mismatch).is_empty());
        let elsewhere = obj(
            "Pod",
            "ns",
            "p",
            &[("ConfigMap", "elsewhere", false)],
            json!({}),
        );
        assert!(unless(&elsewhere).is_empty());
    }

    #[test]
    fn orphan_deletion_strips_the_owner_from_dependents_then_its_finalizer() {
        let owner = obj(
            "ReplicaSet",
            "ns",
            "rs",
            &[],
            deleting(&[ORPHAN, "x.io/keep"]),
        );
        let graph = vec![
            owner.clone(),
            obj("Pod", "ns", "a", &[("ReplicaSet", "rs", true)], json!({})),
            obj(
                "Pod",
                "ns",
                "b",
                &[("ReplicaSet", "rs", true), ("Node", "n", false)],
                json!({}),
            ),
            obj("Pod", "ns", "c", &[], json!({})),
        ];
        assert_eq!(
            short(&reconcile(&owner, graph.as_slice())),
            ["owners a []", "owners b [u-n]", "finalizers rs [x.io/keep]"]
        );
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents_only() {
        let owner = obj("Deployment", "ns", "d", &[], deleting(&[FOREGROUND]));
        let rs = |name: &str, block: bool, extra: Value| {
            obj(
                "ReplicaSet",
                "ns",
                name,
                &[("Deployment", "d", block)],
                extra,
            )
        };
        let pod = obj("Pod", "ns", "p", &[("ReplicaSet", "live", true)], json!({}));
        let cases: Vec<(&str, Vec<Object>, Vec<&str>)> = vec![
            (
                "no dependents: finalizer dropped",
                vec![],
                vec!["finalizers d []"],
            ),
            (
                "a blocking dependent without dependents: deleted in the background",
                vec![rs("live", true, json!({}))],
                vec!["delete live Background"],
            ),
            (
                "a blocking dependent with dependents: deleted in the foreground",
                vec![rs("live", true, json!({})), pod.clone()],
                vec!["delete live Foreground"],
            ),
            (
                "a blocking dependent still terminating: waited for",
                vec![rs("live", true, deleting(&["x.io/slow"]))],
                vec![],
            ),
            (
                "only non-blocking dependents: not waited for",
                vec![rs("live", false, json!({}))],
                vec!["finalizers d []"],
            ),
            (
                "a blocking dependent with another live owner: the reference goes, it stays",
                vec![
                    obj(
                        "ReplicaSet",
                        "ns",
                        "live",
                        &[("Deployment", "d", true), ("Node", "n", false)],
                        json!({}),
                    ),
                    obj("Node", "-", "n", &[], json!({})),
                ],
                vec!["owners live [u-n]"],
            ),
        ];
        for (name, mut graph, want) in cases {
            graph.push(owner.clone());
            assert_eq!(short(&reconcile(&owner, graph.as_slice())), want, "{name}");
        }
    }

    /// Applies actions as the API server would (a delete marks objects with
    /// finalizers; the last finalizer's removal deletes).
    fn apply(world: &mut Vec<Object>, actions: &[Action]) {
        for a in actions {
            let uid = match a {
                Action::Delete { target, .. }
                | Action::SetOwners { target, .. }
                | Action::SetFinalizers { target, .. } => target.uid.clone(),
            };
            let Some(i) = world.iter().position(|o| o.uid() == uid) else {
                continue;
            };
            let mut h = (*world[i].head).clone();
            let m = &mut h.metadata;
            match a {
                Action::Delete { propagation, .. } => {
                    let mut fins = m.finalizers.clone().unwrap_or_default();
                    if *propagation == Propagation::Foreground
                        && !fins.iter().any(|f| f == FOREGROUND)
                    {
                        fins.push(FOREGROUND.into());
                    }
                    if fins.is_empty() {
                        world.remove(i);
                        continue;
                    }
                    m.finalizers = Some(fins);
                    m.deletion_timestamp =
                        Some(serde_json::from_value(json!("2026-12-06T00:00:00Z")).unwrap());
                }
                Action::SetOwners { owners, .. } => m.owner_references = Some(owners.clone()),
                Action::SetFinalizers { finalizers, .. } => {
                    if finalizers.is_empty() && m.deletion_timestamp.is_some() {
                        world.remove(i);
                        continue;
                    }
                    m.finalizers = Some(finalizers.clone());
                }
            }
            world[i].head = Arc::new(h);
        }
    }

    /// Reconciles every object until nothing changes (at most `rounds`).
    fn settle(world: &mut Vec<Object>, rounds: usize) {
        for _ in 0..rounds {
            let mut changed = false;
            for o in world.clone() {
                let Some(cur) = world.iter().find(|x| x.uid() == o.uid()).cloned() else {
                    continue;
                };
                let actions = reconcile(&cur, world.as_slice());
                changed |= !actions.is_empty();
                apply(world, &actions);
            }
            if !changed {
                return;
            }
        }
        panic!("the collector never settled: {world:?}");
    }

    fn names(world: &[Object]) -> Vec<String> {
        world
            .iter()
            .map(|o| o.meta().name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn cycles_in_owner_references_neither_hang_nor_leak() {
        // a and b own each other, blocking; a is deleted in the foreground.
        let mut world = vec![
            obj(
                "ConfigMap",
                "ns",
                "a",
                &[("ConfigMap", "b", true)],
                deleting(&[FOREGROUND]),
            ),
            obj(
                "ConfigMap",
                "ns",
                "b",
                &[("ConfigMap", "a", true)],
                json!({}),
            ),
            obj(
                "ConfigMap",
                "ns",
                "c",
                &[("ConfigMap", "b", true)],
                json!({}),
            ),
            obj("ConfigMap", "ns", "keep", &[], json!({})),
        ];
        settle(&mut world, 10);
        assert_eq!(names(&world), ["keep"]);
        // A cycle with no deletion: both owners live, nothing happens.
        let mut world = vec![
            obj(
                "ConfigMap",
                "ns",
                "a",
                &[("ConfigMap", "b", true)],
                json!({}),
            ),
            obj(
                "ConfigMap",
                "ns",
                "b",
                &[("ConfigMap", "a", true)],
                json!({}),
            ),
        ];
        settle(&mut world, 2);
        assert_eq!(names(&world), ["a", "b"]);
        // The same cycle after a background delete of a: b follows.
        world.remove(0);
        settle(&mut world, 3);
        assert!(world.is_empty());
    }

    #[test]
    fn a_foreground_chain_goes_bottom_up() {
        let mut world = vec![
            obj("Deployment", "ns", "d", &[], deleting(&[FOREGROUND])),
            obj(
                "ReplicaSet",
                "ns",
                "rs",
                &[("Deployment", "d", true)],
                json!({}),
            ),
            obj("Pod", "ns", "p1", &[("ReplicaSet", "rs", true)], json!({})),
            obj("Pod", "ns", "p2", &[("ReplicaSet", "rs", true)], json!({})),
        ];
        // First round: the ReplicaSet is deleted in the foreground, so it waits too.
        let first = reconcile(&world[0], world.as_slice());
        assert_eq!(short(&first), ["delete rs Foreground"]);
        apply(&mut world, &first);
        assert!(
            reconcile(&world[0], world.as_slice()).is_empty(),
            "d waits on rs, which is already deleting"
        );
        assert_eq!(
            short(&reconcile(&world[1], world.as_slice())),
            ["delete p1 Background", "delete p2 Background"]
        );
        settle(&mut world, 5);
        assert!(world.is_empty(), "{:?}", names(&world));
    }
}
