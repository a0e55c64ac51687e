//! A StatefulSet's PersistentVolumeClaims, as Kubernetes'
//! `getPersistentVolumeClaims`: one per `volumeClaimTemplates` entry and
//! ordinal, named `<template>-<set>-<ordinal>`, labelled with the set's
//! selector, and owned by the set only when its retention policy deletes
//! claims with it (`whenDeleted: Delete`). The pod mounts each by the
//! template's name.

use super::spec;
use crate::meta;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The claim name of `template` for pod `pod` (`<template>-<pod>`).
pub fn claim_name(template: &str, pod: &str) -> String {
    format!("{template}-{pod}")
}

/// The claims pod `<set>-<ordinal>` needs, whole, to create when missing.
pub fn claims_for(sts: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set = sts.metadata.name.as_deref().unwrap_or("");
    let pod = format!("{set}-{ordinal}");
    let labels = spec(sts).and_then(|s| s.selector.match_labels.clone());
    let delete_with_set = spec(sts)
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    let templates = spec(sts)
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    templates
        .into_iter()
        .map(|t| {
            let name = claim_name(t.metadata.name.as_deref().unwrap_or(""), &pod);
            let mut claim_labels = t.metadata.labels.clone().unwrap_or_default();
            claim_labels.extend(labels.clone().unwrap_or_default());
            let mut owner = meta::controller_ref("apps/v1", "StatefulSet", &sts.metadata);
            owner.controller = None;
            owner.block_owner_deletion = None;
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
    use serde_json::json;

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
        assert!(owned["metadata"]["ownerReferences"][0]
            .get("controller")
            .is_none());
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
