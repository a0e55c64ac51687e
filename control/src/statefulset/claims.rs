//! A StatefulSet's PersistentVolumeClaims, as Kubernetes'
//! `getPersistentVolumeClaims`: one per `volumeClaimTemplates` entry and
//! ordinal, named `<template>-<set>-<ordinal>`, labelled with the set's
//! selector. The pod mounts each by the template's name.
//!
//! `persistentVolumeClaimRetentionPolicy` is carried out through owner
//! references, as Kubernetes' `isClaimOwnerUpToDate` and
//! `updateClaimOwnerRefForSetAndPod` do, so the garbage collector deletes
//! the claims: `whenDeleted: Delete` makes the set the claims' controller
//! (new claims are created so), `whenScaled: Delete` makes a condemned pod
//! (an ordinal being scaled away) the controller of its claims instead.
//! `Retain` leaves no reference of ours. References to an earlier set or pod
//! of the same name (another uid) and other controllers are left alone.

use super::{ordinal, spec, terminating};
use crate::meta;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::sync::Arc;

/// A claim whose owner references must change, and to what.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimOwners {
    /// The claim's name (in the set's namespace).
    pub name: String,
    /// The claim's resourceVersion as read, the write's precondition.
    pub resource_version: Option<String>,
    /// Its whole new `metadata.ownerReferences`.
    pub owner_references: Vec<OwnerReference>,
}

/// The set's retention policy: (delete with the set, delete when scaled
/// away). Absent or unknown values retain, as Kubernetes treats them.
fn policy(sts: &StatefulSet) -> (bool, bool) {
    let p = spec(sts).and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// An owner as a claim refers to it: (apiVersion, kind, metadata).
type Owner<'a> = (&'static str, &'static str, &'a ObjectMeta);

fn set_owner(sts: &StatefulSet) -> Owner<'_> {
    ("apps/v1", "StatefulSet", &sts.metadata)
}

fn pod_owner(pod: &Pod) -> Owner<'_> {
    ("v1", "Pod", &pod.metadata)
}

/// Kubernetes' `matchesRef`: same apiVersion, kind and name (any uid).
fn matches(r: &OwnerReference, (api, kind, m): Owner) -> bool {
    r.api_version == api && r.kind == kind && Some(&r.name) == m.name.as_ref()
}

/// Kubernetes' `hasOwnerRef`: a reference to this owner's uid.
fn has_ref(claim: &PersistentVolumeClaim, (_, _, m): Owner) -> bool {
    refs(claim).iter().any(|r| Some(&r.uid) == m.uid.as_ref())
}

/// Kubernetes' `hasStaleOwnerRef`: the first reference of this name names
/// another uid (an earlier object of the same name).
fn has_stale_ref(claim: &PersistentVolumeClaim, owner: Owner) -> bool {
    let first = refs(claim).iter().find(|r| matches(r, owner));
    first.is_some_and(|r| Some(&r.uid) != owner.2.uid.as_ref())
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

/// Kubernetes' `hasUnexpectedController`: with a Delete policy, a
/// controller other than the set or pod, or a reference to them with
/// another uid.
fn unexpected_controller(claim: &PersistentVolumeClaim, set: Owner, pod: Owner) -> bool {
    refs(claim).iter().any(|r| {
        if matches(r, set) {
            Some(&r.uid) != set.2.uid.as_ref()
        } else if matches(r, pod) {
            Some(&r.uid) != pod.2.uid.as_ref()
        } else {
            r.controller == Some(true)
        }
    })
}

/// Kubernetes' `hasNonControllerOwner`: the set or pod refers to the claim
/// but not as its controller.
fn non_controller_owner(claim: &PersistentVolumeClaim, set: Owner, pod: Owner) -> bool {
    refs(claim).iter().any(|r| {
        let ours = Some(&r.uid) == set.2.uid.as_ref() || Some(&r.uid) == pod.2.uid.as_ref();
        ours && r.controller != Some(true)
    })
}

/// Which of (set, pod) should own a claim of `pod` under the policy;
/// `scaled_down`: the pod's ordinal is outside the wanted range.
fn wanted(sts: &StatefulSet, scaled_down: bool) -> (bool, bool) {
    let (with_set, when_scaled) = policy(sts);
    let pod = when_scaled && scaled_down;
    // With both Delete, a condemned pod's claims move from the set to it.
    let set = with_set && !pod;
    (set, pod)
}

/// Kubernetes' `isClaimOwnerUpToDate`: whether `claim`'s references match
/// the policy for `pod` (claims in an unknown state count as up to date,
/// so they are not touched).
pub fn owners_up_to_date(
    claim: &PersistentVolumeClaim,
    sts: &StatefulSet,
    pod: &Pod,
    scaled_down: bool,
) -> bool {
    let (set, p) = (set_owner(sts), pod_owner(pod));
    if has_stale_ref(claim, set) || has_stale_ref(claim, p) {
        return true;
    }
    if policy(sts) != (false, false) && unexpected_controller(claim, set, p) {
        return !(has_ref(claim, set) || has_ref(claim, p));
    }
    if non_controller_owner(claim, set, p) {
        return false;
    }
    let (want_set, want_pod) = wanted(sts, scaled_down);
    has_ref(claim, set) == want_set && has_ref(claim, p) == want_pod
}

/// Kubernetes' `updateClaimOwnerRefForSetAndPod`: `claim`'s references with
/// those to the set and pod replaced by what the policy wants.
pub fn updated_owners(
    claim: &PersistentVolumeClaim,
    sts: &StatefulSet,
    pod: &Pod,
    scaled_down: bool,
) -> Vec<OwnerReference> {
    let (set, p) = (set_owner(sts), pod_owner(pod));
    let unexpected = policy(sts) != (false, false) && unexpected_controller(claim, set, p);
    let mut out: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !matches(r, set) && !matches(r, p))
        .cloned()
        .collect();
    if unexpected {
        return out;
    }
    let (want_set, want_pod) = wanted(sts, scaled_down);
    for (want, (api, kind, m)) in [(want_set, set), (want_pod, p)] {
        if want && !out.iter().any(|r| Some(&r.uid) == m.uid.as_ref()) {
            out.push(meta::controller_ref(api, kind, m));
        }
    }
    out
}

/// The claims of the set's member `pods` whose owner references do not
/// match the retention policy, with the references they should have
/// (`claim` reads a claim by name). Condemned pods are covered, so the
/// shell writes these before it deletes them; pods of wanted ordinals being
/// deleted are skipped (their successors are looked at).
pub fn owner_updates(
    sts: &StatefulSet,
    pods: &[Arc<Pod>],
    claim: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> Vec<ClaimOwners> {
    let set = sts.metadata.name.as_deref().unwrap_or("");
    let templates = spec(sts)
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default();
    let start = spec(sts)
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let end = start.saturating_add(super::replicas(sts));
    let mut out = Vec::new();
    for pod in pods {
        let Some(ord) = ordinal(set, pod) else {
            continue;
        };
        let scaled_down = !(start..end).contains(&ord);
        if pod.metadata.uid.is_none() || (!scaled_down && terminating(pod)) {
            continue;
        }
        let pod_name = pod.metadata.name.as_deref().unwrap_or("");
        for t in templates {
            let name = claim_name(t.metadata.name.as_deref().unwrap_or(""), pod_name);
            let Some(c) = claim(&name) else {
                continue;
            };
            if c.metadata.deletion_timestamp.is_some()
                || owners_up_to_date(&c, sts, pod, scaled_down)
            {
                continue;
            }
            out.push(ClaimOwners {
                name,
                resource_version: c.metadata.resource_version.clone(),
                owner_references: updated_owners(&c, sts, pod, scaled_down),
            });
        }
    }
    out
}

/// The claims `pods` (new pods of the set) need that are not there yet,
/// or the name of one still being deleted: the pod must wait for it to go
/// and be made anew, as Kubernetes' `createPersistentVolumeClaims` waits.
pub fn missing_claims(
    sts: &StatefulSet,
    pods: &[Pod],
    claim: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> Result<Vec<PersistentVolumeClaim>, String> {
    let set = sts.metadata.name.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for p in pods {
        let Some(ord) = ordinal(set, p) else {
            continue;
        };
        for c in claims_for(sts, ord) {
            let name = c.metadata.name.clone().unwrap_or_default();
            match claim(&name) {
                None => out.push(c),
                Some(old) if old.metadata.deletion_timestamp.is_some() => return Err(name),
                Some(_) => {}
            }
        }
    }
    Ok(out)
}

/// The claim name of `template` for pod `pod` (`<template>-<pod>`).
pub fn claim_name(template: &str, pod: &str) -> String {
    format!("{template}-{pod}")
}

/// The claims pod `<set>-<ordinal>` needs, whole, to create when missing.
pub fn claims_for(sts: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set = sts.metadata.name.as_deref().unwrap_or("");
    let pod = format!("{set}-{ordinal}");
    let labels = spec(sts).and_then(|s| s.selector.match_labels.clone());
    // A new claim is for a wanted ordinal: owned by the set or no one.
    let (delete_with_set, _) = wanted(sts, false);
    let templates = spec(sts)
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    templates
        .into_iter()
        .map(|t| {
            let name = claim_name(t.metadata.name.as_deref().unwrap_or(""), &pod);
            let mut claim_labels = t.metadata.labels.clone().unwrap_or_default();
            claim_labels.extend(labels.clone().unwrap_or_default());
            let owner = meta::controller_ref("apps/v1", "StatefulSet", &sts.metadata);
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: sts.metadata.namespace.clone(),
                    labels: Some(claim_labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: delete_with_set.then(|| vec![owner]),
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// Points the pod's volumes named after claim templates at its own claims
/// (a template volume of the same name is replaced, as Kubernetes does).
pub fn mount_claims(sts: &StatefulSet, pod: &str, pod_spec: &mut PodSpec) {
    let templates = spec(sts)
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default();
    if templates.is_empty() {
        return;
    }
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    for t in templates {
        let tname = t.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&tname, pod),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn set(policy: Option<&str>) -> StatefulSet {
        let mut s = json!({"metadata": {"name": "db", "namespace": "prod", "uid": "s1"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}],
                             "volumes": [{"name": "data", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "disk"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        if let Some(p) = policy {
            s["spec"]["persistentVolumeClaimRetentionPolicy"] =
                json!({"whenDeleted": p, "whenScaled": "Retain"});
        }
        serde_json::from_value(s).unwrap()
    }

    #[test]
    fn each_ordinal_gets_its_own_claims_owned_only_when_deleted_with_the_set() {
        let claims = claims_for(&set(None), 2);
        assert_eq!(claims.len(), 1);
        let c = serde_json::to_value(&claims[0]).unwrap();
        assert_eq!(c["metadata"]["name"], "data-db-2");
        assert_eq!(c["metadata"]["namespace"], "prod");
        assert_eq!(
            c["metadata"]["labels"],
            json!({"app": "db", "tier": "disk"})
        );
        assert!(c["metadata"].get("ownerReferences").is_none(), "{c}");
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        let owned = serde_json::to_value(&claims_for(&set(Some("Delete")), 0)[0]).unwrap();
        assert_eq!(owned["metadata"]["ownerReferences"][0]["uid"], "s1");
        assert_eq!(owned["metadata"]["ownerReferences"][0]["controller"], true);
        // whenScaled alone does not own a claim of a wanted ordinal.
        let scaled = with_policy("Retain", "Delete");
        assert!(claims_for(&scaled, 0)[0]
            .metadata
            .owner_references
            .is_none());
    }

    fn with_policy(deleted: &str, scaled: &str) -> StatefulSet {
        let mut s = set(None);
        let spec = s.spec.as_mut().unwrap();
        spec.replicas = Some(2);
        spec.persistent_volume_claim_retention_policy = Some(
            serde_json::from_value(json!({"whenDeleted": deleted, "whenScaled": scaled})).unwrap(),
        );
        s
    }

    fn pod(ordinal: i32, uid: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {
            "name": format!("db-{ordinal}"), "namespace": "prod", "uid": uid}}))
            .unwrap(),
        )
    }

    /// A reference as Kubernetes' `NewControllerRef` makes it.
    fn ctl(api: &str, kind: &str, name: &str, uid: &str) -> Value {
        json!({"apiVersion": api, "kind": kind, "name": name, "uid": uid,
               "controller": true, "blockOwnerDeletion": true})
    }

    fn claim(name: &str, refs: Vec<Value>) -> Arc<PersistentVolumeClaim> {
        let mut c =
            json!({"metadata": {"name": name, "namespace": "prod", "resourceVersion": "7"}});
        if !refs.is_empty() {
            c["metadata"]["ownerReferences"] = Value::Array(refs);
        }
        Arc::new(serde_json::from_value(c).unwrap())
    }

    /// (whenDeleted, whenScaled, pod ordinal, the claim's refs) → the refs
    /// it should get, None when they are right.
    #[test]
    fn claim_owners_follow_the_retention_policy() {
        let set_ref = || ctl("apps/v1", "StatefulSet", "db", "s1");
        let pod_ref = |o: i32| ctl("v1", "Pod", &format!("db-{o}"), &format!("p{o}"));
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "x1"});
        let foreign = ctl("example.io/v1", "Keeper", "k", "k1");
        let non_ctl =
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s1"});
        let old_set = ctl("apps/v1", "StatefulSet", "db", "s0");
        let old_pod = ctl("v1", "Pod", "db-3", "p-old");
        /// (whenDeleted, whenScaled, ordinal, refs, wanted refs)
        type Case = (
            &'static str,
            &'static str,
            i32,
            Vec<Value>,
            Option<Vec<Value>>,
        );
        let cases: Vec<Case> = vec![
            // Retain/Retain: none of our references.
            ("Retain", "Retain", 0, vec![], None),
            ("Retain", "Retain", 3, vec![], None),
            ("Retain", "Retain", 0, vec![set_ref()], Some(vec![])),
            (
                "Retain",
                "Retain",
                3,
                vec![pod_ref(3), other.clone()],
                Some(vec![other.clone()]),
            ),
            // Retain on scale-down, Delete with the set: the set only.
            ("Delete", "Retain", 0, vec![], Some(vec![set_ref()])),
            ("Delete", "Retain", 3, vec![set_ref()], None),
            (
                "Delete",
                "Retain",
                0,
                vec![non_ctl.clone()],
                Some(vec![set_ref()]),
            ),
            // Delete on scale-down: the condemned pod only.
            ("Retain", "Delete", 0, vec![], None),
            ("Retain", "Delete", 3, vec![], Some(vec![pod_ref(3)])),
            (
                "Retain",
                "Delete",
                3,
                vec![other.clone()],
                Some(vec![other.clone(), pod_ref(3)]),
            ),
            ("Retain", "Delete", 1, vec![pod_ref(1)], Some(vec![])),
            // Both: the set while wanted, the pod once condemned.
            ("Delete", "Delete", 1, vec![set_ref()], None),
            (
                "Delete",
                "Delete",
                3,
                vec![set_ref()],
                Some(vec![pod_ref(3)]),
            ),
            ("Delete", "Delete", 3, vec![pod_ref(3)], None),
            (
                "Delete",
                "Delete",
                1,
                vec![pod_ref(1)],
                Some(vec![set_ref()]),
            ),
            // References to an earlier set or pod of the name: left alone.
            ("Delete", "Delete", 3, vec![old_set.clone()], None),
            ("Retain", "Delete", 3, vec![old_pod.clone()], None),
            // Another controller: ours removed, none added.
            ("Delete", "Delete", 3, vec![foreign.clone()], None),
            (
                "Delete",
                "Delete",
                3,
                vec![foreign.clone(), set_ref()],
                Some(vec![foreign.clone()]),
            ),
            // Under Retain/Retain another controller is no matter.
            ("Retain", "Retain", 3, vec![foreign.clone()], None),
        ];
        for (i, (deleted, scaled, ord, refs, want)) in cases.into_iter().enumerate() {
            let sts = with_policy(deleted, scaled);
            let p = pod(ord, &format!("p{ord}"));
            let c = claim(&format!("data-db-{ord}"), refs);
            let got = owner_updates(&sts, &[p], &|n| {
                (n == format!("data-db-{ord}")).then(|| c.clone())
            });
            let got: Option<Vec<Value>> = got.first().map(|u| {
                assert_eq!(u.name, format!("data-db-{ord}"));
                assert_eq!(u.resource_version.as_deref(), Some("7"));
                serde_json::from_value(serde_json::to_value(&u.owner_references).unwrap()).unwrap()
            });
            assert_eq!(got, want, "case {i}: {deleted}/{scaled} ordinal {ord}");
        }
    }

    #[test]
    fn claims_being_deleted_and_pods_being_replaced_are_skipped() {
        let sts = with_policy("Retain", "Delete");
        let mut gone = (*claim("data-db-3", vec![])).clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        let gone = Arc::new(gone);
        assert!(owner_updates(&sts, &[pod(3, "p3")], &|_| Some(gone.clone())).is_empty());
        // A wanted ordinal's pod being deleted: its successor decides.
        let mut leaving = (*pod(1, "p1")).clone();
        leaving.metadata.deletion_timestamp = gone.metadata.deletion_timestamp.clone();
        let owned = claim("data-db-1", vec![ctl("v1", "Pod", "db-1", "p1")]);
        assert!(owner_updates(&sts, &[Arc::new(leaving)], &|_| Some(owned.clone())).is_empty());
        // A condemned pod being deleted still hands its claims over.
        let mut condemned = (*pod(3, "p3")).clone();
        condemned.metadata.deletion_timestamp = gone.metadata.deletion_timestamp.clone();
        let free = claim("data-db-3", vec![]);
        assert_eq!(
            owner_updates(&sts, &[Arc::new(condemned)], &|_| Some(free.clone())).len(),
            1
        );
    }

    #[test]
    fn a_new_pod_waits_for_its_claim_being_deleted() {
        let sts = with_policy("Retain", "Delete");
        let new = |o: i32| (*pod(o, "")).clone();
        let missing = missing_claims(&sts, &[new(0), new(1)], &|n| {
            (n == "data-db-0").then(|| claim(n, vec![]))
        });
        let names: Vec<_> = missing
            .unwrap()
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect();
        assert_eq!(names, ["data-db-1"]);
        let mut gone = (*claim("data-db-1", vec![])).clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        let gone = Arc::new(gone);
        let got = missing_claims(&sts, &[new(1)], &|_| Some(gone.clone()));
        assert_eq!(got, Err("data-db-1".to_string()));
    }

    #[test]
    fn the_pod_mounts_its_claims_in_place_of_template_volumes() {
        let sts = set(None);
        let mut spec = sts.spec.clone().unwrap().template.spec.unwrap();
        mount_claims(&sts, "db-1", &mut spec);
        let v = serde_json::to_value(&spec.volumes).unwrap();
        assert_eq!(
            v,
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}])
        );
    }
}
