//! Which objects a controller controls, as Kubernetes' `ControllerRefManager`
//! decides it (`ClaimPods`, `ClaimReplicaSets`): a controller adopts the
//! orphans its selector matches and releases the objects it controls that its
//! selector no longer matches. So a ReplicaSet deleted with
//! `--cascade=orphan` and created again takes its pods back instead of
//! starting new ones, and a pod relabelled out of its ReplicaSet is let go
//! (and replaced) rather than counted forever.
//!
//! Pure: the shell writes the adoptions and releases as patches with the
//! object's resourceVersion as precondition, and counts an object as
//! controlled only once its cache shows the new owner reference.

use crate::meta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::Metadata;
use std::sync::Arc;

/// What claiming decides for one controller.
#[derive(Debug)]
pub struct Claim<K> {
    /// Objects this controller controls, its selector matching them.
    pub owned: Vec<Arc<K>>,
    /// Orphans to adopt: each gets this controller's reference.
    pub adopt: Vec<Arc<K>>,
    /// Controlled objects the selector no longer matches: each loses this
    /// controller's reference.
    pub release: Vec<Arc<K>>,
}

impl<K> Claim<K> {
    /// Whether claiming has writes to make before the pass can count.
    pub fn changes(&self) -> bool {
        !self.adopt.is_empty() || !self.release.is_empty()
    }
}

/// Claims among `candidates` (the objects `owner` controls and the orphans of
/// its namespace; anything else is ignored) those `selector` matches: orphans
/// only when `adoptable` too (a ReplicaSet takes no finished pod, a
/// StatefulSet only pods named for it). A controller being deleted adopts and
/// releases nothing (and no longer counts what it controls but does not
/// match); an orphan being deleted is not adopted; an object another
/// controller controls is never touched. No selector adopts and releases
/// nothing.
pub fn claim<K: Metadata<Ty = ObjectMeta>>(
    owner: &ObjectMeta,
    selector: Option<&LabelSelector>,
    candidates: impl IntoIterator<Item = Arc<K>>,
    adoptable: impl Fn(&K) -> bool,
) -> Claim<K> {
    let uid = owner.uid.as_deref().unwrap_or_default();
    let deleting = owner.deletion_timestamp.is_some();
    let mut out = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for obj in candidates {
        let m = obj.metadata();
        if m.namespace != owner.namespace {
            continue;
        }
        let matches = selector.is_some_and(|s| meta::selector_matches(s, m.labels.as_ref()));
        match meta::controller_of(m) {
            Some(c) if c.uid == uid => {
                if matches || selector.is_none() {
                    out.owned.push(obj);
                } else if !deleting {
                    out.release.push(obj);
                }
            }
            Some(_) => {}
            None => {
                if matches
                    && adoptable(&obj)
                    && !deleting
                    && m.deletion_timestamp.is_none()
                    && !uid.is_empty()
                {
                    out.adopt.push(obj);
                }
            }
        }
    }
    out
}

/// `m`'s owner references with `owner` added as controller (adoption).
pub fn adopted(m: &ObjectMeta, owner: OwnerReference) -> Vec<OwnerReference> {
    let mut refs: Vec<OwnerReference> = m
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.uid != owner.uid)
        .cloned()
        .collect();
    refs.push(owner);
    refs
}

/// `m`'s owner references without the one of `owner_uid` (release).
pub fn released(m: &ObjectMeta, owner_uid: &str) -> Vec<OwnerReference> {
    m.owner_references
        .iter()
        .flatten()
        .filter(|o| o.uid != owner_uid)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn owner(deleting: bool) -> ObjectMeta {
        let mut m = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u-rs".into()),
            ..Default::default()
        };
        if deleting {
            m.deletion_timestamp = Some(meta::time(jiff::Timestamp::UNIX_EPOCH));
        }
        m
    }

    fn pod(name: &str, app: &str, controller: Option<&str>) -> Arc<Pod> {
        let mut m = json!({"name": name, "namespace": "ns", "labels": {"app": app}});
        if let Some(uid) = controller {
            m["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "x", "uid": uid, "controller": true}]);
        }
        Arc::new(serde_json::from_value(json!({"metadata": m})).unwrap())
    }

    fn names(v: &[Arc<Pod>]) -> Vec<&str> {
        v.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    fn selector() -> LabelSelector {
        serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap()
    }

    #[test]
    fn orphans_are_adopted_and_relabelled_pods_released() {
        let mut elsewhere = (*pod("elsewhere", "web", None)).clone();
        elsewhere.metadata.namespace = Some("other".into());
        let mut going = (*pod("going", "web", None)).clone();
        going.metadata.deletion_timestamp = Some(meta::time(jiff::Timestamp::UNIX_EPOCH));
        let pods = vec![
            pod("mine", "web", Some("u-rs")),
            pod("relabelled", "debug", Some("u-rs")),
            pod("orphan", "web", None),
            pod("stranger", "db", None),
            pod("theirs", "web", Some("u-other")),
            Arc::new(elsewhere),
            Arc::new(going),
        ];
        let sel = selector();
        let c = claim(&owner(false), Some(&sel), pods.clone(), |_| true);
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["relabelled"]);
        assert!(c.changes());

        // Being deleted: keeps what it controls and matches, adopts and
        // releases nothing.
        let c = claim(&owner(true), Some(&sel), pods.clone(), |_| true);
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(!c.changes());

        // Not `adoptable` (a StatefulSet's pod of another name): not
        // adopted; what it controls is claimed by the selector alone.
        let c = claim(&owner(false), Some(&sel), pods.clone(), |p: &Pod| {
            p.metadata.name.as_deref() != Some("orphan")
        });
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(c.adopt.is_empty());
        assert_eq!(names(&c.release), ["relabelled"]);

        // No selector: nothing adopted or released.
        let c = claim(&owner(false), None, pods, |_| true);
        assert_eq!(names(&c.owned), ["mine", "relabelled"]);
        assert!(!c.changes());
    }

    #[test]
    fn adoption_replaces_only_a_reference_of_the_same_owner() {
        let p = pod("p", "web", None);
        let mut m = p.metadata.clone();
        m.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "cm".into(),
            uid: "u-cm".into(),
            ..Default::default()
        }]);
        let me = meta::controller_ref("apps/v1", "ReplicaSet", &owner(false));
        let refs = adopted(&m, me.clone());
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[1], me);
        m.owner_references = Some(refs);
        assert_eq!(adopted(&m, me.clone()).len(), 2);
        let left = released(&m, "u-rs");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].uid, "u-cm");
    }
}
