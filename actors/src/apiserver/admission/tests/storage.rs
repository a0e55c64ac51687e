//! PersistentVolumeClaims, PersistentVolumes, StorageClasses and Ingresses
//! through the whole admission chain (decode, defaults, validation).

use serde_json::{json, Value};

use super::{ok, refuse_all};

fn claim() -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

#[test]
fn claims_are_protected_and_checked() {
    let c = ok("PersistentVolumeClaim", &claim());
    assert_eq!(
        c["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    assert_eq!(c["spec"]["volumeMode"], "Filesystem");
    refuse_all(
        "PersistentVolumeClaim",
        &claim(),
        vec![
            (
                "/spec/accessModes",
                json!([]),
                "spec.accessModes",
                "at least 1 access mode is required",
            ),
            (
                "/spec/resources/requests/storage",
                json!("-1"),
                "spec.resources.requests[storage]",
                "must be greater than zero",
            ),
            (
                "/spec/volumeMode",
                json!("Tape"),
                "spec.volumeMode",
                "Unsupported value: \"Tape\"",
            ),
        ],
    );
}

#[test]
fn volumes_and_classes_get_kubernetes_defaults() {
    let pv = ok(
        "PersistentVolume",
        &json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                "hostPath": {"path": "/srv/pv1"}}}),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(
        pv["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
    let sc = ok(
        "StorageClass",
        &json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "fast"}, "provisioner": "example.com/fast"}),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
}

fn ingress() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

#[test]
fn ingresses_are_checked_as_kubernetes_checks_them() {
    ok("Ingress", &ingress());
    refuse_all(
        "Ingress",
        &ingress(),
        vec![
            (
                "/spec/rules/0/http/paths/0/pathType",
                json!("Glob"),
                "spec.rules[0].http.paths[0].pathType",
                "Unsupported value: \"Glob\"",
            ),
            (
                "/spec/rules/0/http/paths/0/path",
                json!("api"),
                "spec.rules[0].http.paths[0].path",
                "must be an absolute path",
            ),
            (
                "/spec/rules/0/http/paths/0/backend/service/port",
                json!({"number": 80, "name": "http"}),
                "spec.rules[0].http.paths[0].backend.service.port",
                "cannot set both port name & port number",
            ),
            (
                "/spec/rules/0/host",
                json!("10.0.0.1"),
                "spec.rules[0].host",
                "must be a DNS name, not an IP address",
            ),
            (
                "/spec/rules",
                json!([]),
                "spec.rules",
                "either `defaultBackend` or `rules` must be specified",
            ),
        ],
    );
}
