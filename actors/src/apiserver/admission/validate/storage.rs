//! PersistentVolumeClaims, PersistentVolumes and StorageClasses, with
//! Kubernetes' defaults, field paths and wording.

use ferry_api::quantity::{Quantity, QUANTITY_SYNTAX};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use std::collections::BTreeMap;

use crate::apiserver::admission::field::{q, Errors};

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];

use ferry_api::storage::{CLAIM_PROTECTION, VOLUME_PROTECTION};

fn protect(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, finalizer: &str) {
    let f = meta.finalizers.get_or_insert_with(Vec::new);
    if !f.iter().any(|x| x == finalizer) {
        f.push(finalizer.to_string());
    }
}

/// `volumeMode: Filesystem` when unset, and (on create) the protection
/// finalizer, as Kubernetes' StorageObjectInUseProtection plugin adds it.
pub(crate) fn claim_defaults(c: &mut PersistentVolumeClaim, create: bool) {
    if create {
        protect(&mut c.metadata, CLAIM_PROTECTION);
    }
    let s = c.spec.get_or_insert_with(Default::default);
    s.volume_mode.get_or_insert_with(|| "Filesystem".into());
    let status = c.status.get_or_insert_with(Default::default);
    status.phase.get_or_insert_with(|| "Pending".into());
}

/// A volume's defaults: reclaim policy `Retain`, `volumeMode: Filesystem`,
/// phase `Pending` until the binder looks at it.
pub(crate) fn volume_defaults(v: &mut PersistentVolume, create: bool) {
    if create {
        protect(&mut v.metadata, VOLUME_PROTECTION);
    }
    let s = v.spec.get_or_insert_with(Default::default);
    s.persistent_volume_reclaim_policy
        .get_or_insert_with(|| "Retain".into());
    s.volume_mode.get_or_insert_with(|| "Filesystem".into());
    let status = v.status.get_or_insert_with(Default::default);
    status.phase.get_or_insert_with(|| "Pending".into());
}

/// A class's defaults: reclaim policy `Delete`, binding mode `Immediate`.
pub(crate) fn class_defaults(c: &mut StorageClass) {
    c.reclaim_policy.get_or_insert_with(|| "Delete".into());
    c.volume_binding_mode
        .get_or_insert_with(|| "Immediate".into());
}

fn access_modes(path: &str, modes: Option<&Vec<String>>, errs: &mut Errors) {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    if modes.is_empty() {
        errs.required(path, "at least 1 access mode is required");
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.not_supported(path, m, ACCESS_MODES);
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.forbidden(path, "may not use ReadWriteOncePod with other access modes");
    }
}

/// A positive `storage` quantity in `list` (requests or capacity).
fn storage(path: &str, list: Option<&BTreeMap<String, K8sQuantity>>, errs: &mut Errors) {
    let key = format!("{path}[storage]");
    match list.and_then(|l| l.get("storage")) {
        None => errs.required(&key, ""),
        Some(qty) => match Quantity::parse(&qty.0) {
            Some(v) if v > Quantity::ZERO => {}
            Some(_) => errs.invalid(&key, q(&qty.0), "must be greater than zero"),
            None => errs.invalid(&key, q(&qty.0), QUANTITY_SYNTAX),
        },
    }
}

pub(crate) fn claim(c: &PersistentVolumeClaim, errs: &mut Errors) {
    let Some(s) = &c.spec else {
        return errs.required("spec", "");
    };
    access_modes("spec.accessModes", s.access_modes.as_ref(), errs);
    storage(
        "spec.resources.requests",
        s.resources.as_ref().and_then(|r| r.requests.as_ref()),
        errs,
    );
    errs.one_of("spec.volumeMode", s.volume_mode.as_deref(), VOLUME_MODES);
}

/// A claim's spec is immutable but for growing its request, and for the
/// binder filling in `volumeName` and a defaulted `storageClassName`.
pub(crate) fn claim_update(
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
    errs: &mut Errors,
) {
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
        return;
    };
    let mut masked = n.clone();
    masked.resources = o.resources.clone();
    masked.volume_attributes_class_name = o.volume_attributes_class_name.clone();
    if o.volume_name.as_deref().unwrap_or_default().is_empty() {
        masked.volume_name = o.volume_name.clone();
    }
    if o.storage_class_name.is_none() {
        masked.storage_class_name = None;
    }
    if &masked != o {
        errs.forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        );
    }
    let request = |c: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|s| Quantity::parse(&s.0))
    };
    if let (Some(a), Some(b)) = (request(n), request(o)) {
        if a < b {
            errs.forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            );
        }
    }
}

/// The volume sources ferry knows in a PersistentVolumeSpec's JSON.
fn sources(v: &PersistentVolume) -> Vec<String> {
    const NOT_SOURCES: &[&str] = &[
        "accessModes",
        "capacity",
        "claimRef",
        "mountOptions",
        "nodeAffinity",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeAttributesClassName",
        "volumeMode",
    ];
    serde_json::to_value(&v.spec)
        .ok()
        .and_then(|j| j.as_object().cloned())
        .map(|m| {
            m.keys()
                .filter(|k| !NOT_SOURCES.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn volume(v: &PersistentVolume, errs: &mut Errors) {
    let Some(s) = &v.spec else {
        return errs.required("spec", "");
    };
    access_modes("spec.accessModes", s.access_modes.as_ref(), errs);
    storage("spec.capacity", s.capacity.as_ref(), errs);
    errs.one_of(
        "spec.persistentVolumeReclaimPolicy",
        s.persistent_volume_reclaim_policy.as_deref(),
        RECLAIM_POLICIES,
    );
    errs.one_of("spec.volumeMode", s.volume_mode.as_deref(), VOLUME_MODES);
    match sources(v).len() {
        0 => errs.required("spec", "must specify a volume type"),
        1 => {}
        _ => errs.forbidden("spec", "may not specify more than 1 volume type"),
    }
    if let Some(h) = &s.host_path {
        if !h.path.starts_with('/') {
            errs.invalid("spec.hostPath.path", q(&h.path), "must be an absolute path");
        }
    }
    if let Some(l) = &s.local {
        if !l.path.starts_with('/') {
            errs.invalid("spec.local.path", q(&l.path), "must be an absolute path");
        }
        if s.node_affinity.is_none() {
            errs.required("spec.nodeAffinity", "Local volume requires node affinity");
        }
    }
}

/// A volume's source and claim may be set once; its capacity may change.
pub(crate) fn volume_update(new: &PersistentVolume, old: &PersistentVolume, errs: &mut Errors) {
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
        return;
    };
    if sources(new) != sources(old) {
        errs.forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        );
    }
    if o.node_affinity.is_some() {
        errs.immutable("spec.nodeAffinity", &n.node_affinity, &o.node_affinity);
    }
}

pub(crate) fn class(c: &StorageClass, errs: &mut Errors) {
    if c.provisioner.is_empty() {
        errs.required("provisioner", "");
    }
    errs.one_of(
        "reclaimPolicy",
        c.reclaim_policy.as_deref(),
        &["Delete", "Retain"],
    );
    errs.one_of(
        "volumeBindingMode",
        c.volume_binding_mode.as_deref(),
        &["Immediate", "WaitForFirstConsumer"],
    );
}

/// A class's provisioner, parameters, reclaim policy and binding mode stay.
pub(crate) fn class_update(new: &StorageClass, old: &StorageClass, errs: &mut Errors) {
    if new.provisioner != old.provisioner {
        errs.forbidden("provisioner", "updates to provisioner are forbidden.");
    }
    if new.parameters != old.parameters {
        errs.forbidden("parameters", "updates to parameters are forbidden.");
    }
    if new.reclaim_policy != old.reclaim_policy {
        errs.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden.");
    }
    errs.immutable(
        "volumeBindingMode",
        &new.volume_binding_mode,
        &old.volume_binding_mode,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors<T: serde::de::DeserializeOwned>(
        v: serde_json::Value,
        f: fn(&T, &mut Errors),
    ) -> Vec<String> {
        let obj: T = serde_json::from_value(v).unwrap();
        let mut errs = Errors::default();
        f(&obj, &mut errs);
        errs.0
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn claims_need_access_modes_and_a_positive_storage_request() {
        let ok = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(errors(ok, claim).is_empty());
        let bad = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteSometimes"],
            "resources": {"requests": {"storage": "0"}}}});
        let e = errors(bad, claim);
        assert!(
            e.iter()
                .any(|e| e.starts_with("spec.accessModes") && e.contains("Unsupported value")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("spec.resources.requests[storage]")
                    && e.contains("greater than zero")),
            "{e:?}"
        );
        let none = json!({"metadata": {"name": "c"}, "spec": {}});
        let e = errors(none, claim);
        assert!(
            e.iter()
                .any(|e| e.contains("at least 1 access mode is required")),
            "{e:?}"
        );
        assert!(
            e.iter().any(
                |e| e.starts_with("spec.resources.requests[storage]") && e.contains("Required")
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_claims_spec_is_immutable_but_for_its_binding_and_a_larger_request() {
        let claim_of =
            |v: serde_json::Value| -> PersistentVolumeClaim { serde_json::from_value(v).unwrap() };
        let old = claim_of(json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}));
        let check = |new: serde_json::Value| {
            let mut errs = Errors::default();
            claim_update(&claim_of(new), &old, &mut errs);
            errs.0.into_iter().map(|c| c.message).collect::<Vec<_>>()
        };
        let bound = json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1",
            "storageClassName": "local-path", "resources": {"requests": {"storage": "2Gi"}}}});
        assert!(check(bound).is_empty());
        let changed = json!({"spec": {"accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(check(changed)[0].contains("spec is immutable after creation"));
        let shrunk = json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "512Mi"}}}});
        assert!(check(shrunk)[0].contains("can not be less than"));
    }

    #[test]
    fn volumes_need_one_source_and_local_ones_a_node() {
        let ok = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/srv/v"}}});
        assert!(errors(ok, volume).is_empty());
        let none = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}}});
        assert!(errors(none, volume)
            .iter()
            .any(|e| e.contains("must specify a volume type")));
        let local = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "local": {"path": "srv"}}});
        let e = errors(local, volume);
        assert!(
            e.iter()
                .any(|e| e.contains("Local volume requires node affinity")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.contains("must be an absolute path")),
            "{e:?}"
        );
    }

    #[test]
    fn classes_need_a_provisioner_and_keep_it() {
        let e = errors(
            json!({"metadata": {"name": "s"}, "provisioner": "",
            "volumeBindingMode": "Later"}),
            class,
        );
        assert!(
            e.iter().any(|e| e.starts_with("provisioner: Required")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("volumeBindingMode: Unsupported")),
            "{e:?}"
        );
        let a: StorageClass =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "provisioner": "a"})).unwrap();
        let b: StorageClass =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "provisioner": "b"})).unwrap();
        let mut errs = Errors::default();
        class_update(&b, &a, &mut errs);
        assert!(errs.0[0]
            .message
            .contains("updates to provisioner are forbidden"));
    }
}
