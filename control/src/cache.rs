//! The informer cache: one kind's objects by key (`namespace/name`), with
//! indexes. One writer (its informer); readers take cheap `Arc` handles.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// An index: the values an object is filed under.
pub type Indexer<K> = fn(&K) -> Vec<String>;

/// A change the informer applied: (old, new); `None` for absent.
pub type Change<K> = (Option<Arc<K>>, Option<Arc<K>>);

/// Index of objects by their controller owner's uid.
pub const BY_OWNER: &str = "owner";
/// Index of objects with no controller owner by namespace (the orphans a
/// controller may adopt, see [`crate::claim`]).
pub const BY_ORPHAN: &str = "orphan";
/// Index of pods by `spec.nodeName` (`""` for unbound pods).
pub const BY_NODE: &str = "node";

struct Inner<K> {
    objects: BTreeMap<String, Arc<K>>,
    indexes: HashMap<&'static str, HashMap<String, BTreeSet<String>>>,
    revision: u64,
    synced: bool,
}

/// One kind's objects as last seen.
pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
    indexers: Vec<(&'static str, Indexer<K>)>,
}

/// The controller owner's uid (every cache indexes by it).
fn owner_uid<K: Metadata<Ty = ObjectMeta>>(k: &K) -> Vec<String> {
    crate::meta::controller_of(k.metadata())
        .map(|o| vec![o.uid.clone()])
        .unwrap_or_default()
}

/// The namespace of an object with no controller owner (every cache indexes
/// by it).
fn orphan_namespace<K: Metadata<Ty = ObjectMeta>>(k: &K) -> Vec<String> {
    let m = k.metadata();
    match crate::meta::controller_of(m) {
        Some(_) => Vec::new(),
        None => vec![m.namespace.clone().unwrap_or_default()],
    }
}

impl<K: Metadata<Ty = ObjectMeta>> Cache<K> {
    /// An empty cache indexed by owner, orphans' namespace and `indexers`.
    pub fn new(indexers: Vec<(&'static str, Indexer<K>)>) -> Self {
        let mut all: Vec<(&'static str, Indexer<K>)> = vec![
            (BY_OWNER, owner_uid::<K>),
            (BY_ORPHAN, orphan_namespace::<K>),
        ];
        all.extend(indexers);
        Cache {
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                indexes: HashMap::new(),
                revision: 0,
                synced: false,
            }),
            indexers: all,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One object.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object, in key order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// The objects of one namespace (keys `ns/...` are a range of the map).
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        let from = format!("{ns}/");
        let to = format!("{ns}0"); // '0' follows '/'
        self.read()
            .objects
            .range(from..to)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.read().objects.keys().cloned().collect()
    }

    /// The objects filed under `value` in `index`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let g = self.read();
        g.indexes
            .get(index)
            .and_then(|ix| ix.get(value))
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| g.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The revision the cache reflects: every write at or below it is in it.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Whether the first list has been applied.
    pub fn synced(&self) -> bool {
        self.read().synced
    }

    /// Applies one object's new state (`None`: deleted) at `revision`; returns the change.
    pub fn apply(&self, key: String, new: Option<Arc<K>>, revision: u64) -> Change<K> {
        let mut g = self.write();
        g.revision = g.revision.max(revision);
        let old = match &new {
            Some(n) => g.objects.insert(key.clone(), n.clone()),
            None => g.objects.remove(&key),
        };
        self.reindex(&mut g, &key, old.as_deref(), new.as_deref());
        (old, new)
    }

    /// Moves the revision forward (a bookmark: nothing changed up to it).
    pub fn advance(&self, revision: u64) {
        let mut g = self.write();
        g.revision = g.revision.max(revision);
    }

    /// Replaces everything with a fresh list read at `revision`; returns the changes.
    pub fn replace(&self, objects: Vec<K>, revision: u64) -> Vec<Change<K>> {
        let mut fresh: BTreeMap<String, Arc<K>> = objects
            .into_iter()
            .map(|o| (crate::meta::key(o.metadata()), Arc::new(o)))
            .collect();
        let old_keys: Vec<String> = self.keys();
        let mut changes = Vec::new();
        for k in old_keys {
            if !fresh.contains_key(&k) {
                changes.push(self.apply(k, None, revision));
            }
        }
        for (k, v) in std::mem::take(&mut fresh) {
            let same = self
                .get(&k)
                .is_some_and(|o| o.metadata().resource_version == v.metadata().resource_version);
            if !same {
                changes.push(self.apply(k, Some(v), revision));
            }
        }
        let mut g = self.write();
        g.revision = revision;
        g.synced = true;
        changes
    }

    fn reindex(&self, g: &mut Inner<K>, key: &str, old: Option<&K>, new: Option<&K>) {
        for (name, f) in &self.indexers {
            let ix = g.indexes.entry(name).or_default();
            for v in old.map(f).unwrap_or_default() {
                if let Some(set) = ix.get_mut(&v) {
                    set.remove(key);
                    if set.is_empty() {
                        ix.remove(&v);
                    }
                }
            }
            for v in new.map(f).unwrap_or_default() {
                ix.entry(v).or_default().insert(key.to_string());
            }
        }
    }
}

/// The node index of pods.
pub fn pod_node(p: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    vec![p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, owner: Option<&str>, rv: &str) -> Pod {
        let mut v = json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {"containers": []}});
        if let Some(n) = node {
            v["spec"]["nodeName"] = json!(n);
        }
        if let Some(o) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": o, "controller": true}]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn indexes_follow_every_change_and_a_relist_reports_only_differences() {
        let c: Cache<Pod> = Cache::new(vec![(BY_NODE, pod_node)]);
        assert!(!c.synced());
        let changes = c.replace(
            vec![
                pod("a", Some("n1"), Some("u1"), "5"),
                pod("b", None, Some("u1"), "6"),
            ],
            6,
        );
        assert_eq!(changes.len(), 2);
        assert!(c.synced());
        assert_eq!(c.by_index(BY_OWNER, "u1").len(), 2);
        assert_eq!(c.by_index(BY_NODE, "").len(), 1);
        // b gets bound: it moves from "" to n2 in the node index.
        c.apply(
            "default/b".into(),
            Some(Arc::new(pod("b", Some("n2"), Some("u1"), "7"))),
            7,
        );
        assert!(c.by_index(BY_NODE, "").is_empty());
        assert_eq!(c.by_index(BY_NODE, "n2").len(), 1);
        assert_eq!(c.revision(), 7);
        // A relist where a is unchanged, b is gone and c is new: two changes.
        let changes = c.replace(
            vec![
                pod("a", Some("n1"), Some("u1"), "5"),
                pod("c", None, None, "9"),
            ],
            9,
        );
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().any(|(o, n)| o.is_some() && n.is_none()));
        assert_eq!(c.by_index(BY_OWNER, "u1").len(), 1);
        assert!(c.by_index(BY_NODE, "n2").is_empty());
        assert_eq!(c.keys(), ["default/a", "default/c"]);
        assert_eq!(c.in_namespace("default").len(), 2);
        assert!(c.in_namespace("defaul").is_empty());
        c.advance(12);
        assert_eq!(c.revision(), 12);
    }
}
