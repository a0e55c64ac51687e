//! Namespace, Node, ServiceAccount, Event, Lease.

use serde_json::{json, Value};

use super::{create, expect_invalid, ok, refuse_all};

#[test]
fn namespaces() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
    let out = ok("Namespace", &ns);
    assert_eq!(out["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(out["status"]["phase"], "Active");
    assert_eq!(
        out["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    let cases = vec![
        (
            "/metadata/name",
            json!("team.a"),
            "metadata.name",
            "a lowercase RFC 1123 label",
        ),
        (
            "/metadata/name",
            json!("a".repeat(64)),
            "metadata.name",
            "must be no more than 63 characters",
        ),
        (
            "/metadata/namespace",
            json!("default"),
            "metadata.namespace",
            "Forbidden: not allowed on this type",
        ),
        (
            "/spec/finalizers",
            json!(["custom"]),
            "spec.finalizers[0]",
            "name is neither a standard finalizer name nor is it fully qualified",
        ),
    ];
    refuse_all("Namespace", &ns, cases);
}

#[test]
fn nodes() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example"},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}
    });
    ok("Node", &node);
    let cases = vec![
        ("/spec/taints/0/effect", json!("Sometimes"), "spec.taints[0].effect", "Unsupported value: \"Sometimes\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\""),
        ("/spec/taints/0/key", json!(""), "spec.taints[0].key", "Required value"),
        ("/spec/taints/1", json!({"key": "dedicated", "effect": "NoSchedule"}), "spec.taints[1].effect", "Duplicate value: \"NoSchedule\""),
        ("/spec/podCIDR", json!("10.244.1.0"), "spec.podCIDR", "must be a valid CIDR value"),
        ("/metadata/name", json!("Node_1"), "metadata.name", "a lowercase RFC 1123 subdomain"),
    ];
    refuse_all("Node", &node, cases);
}

#[test]
fn service_accounts_events_leases() {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "ci"}});
    ok("ServiceAccount", &sa);
    refuse_all(
        "ServiceAccount",
        &sa,
        vec![
            (
                "/imagePullSecrets",
                json!([{}]),
                "imagePullSecrets[0].name",
                "Required value",
            ),
            (
                "/metadata/name",
                json!("Builder"),
                "metadata.name",
                "a lowercase RFC 1123 subdomain",
            ),
        ],
    );

    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.17", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Scheduled", "message": "assigned", "type": "Normal"
    });
    ok("Event", &ev);
    refuse_all(
        "Event",
        &ev,
        vec![
            (
                "/involvedObject",
                json!(null),
                "involvedObject",
                "Required value",
            ),
            (
                "/involvedObject/namespace",
                json!("other"),
                "involvedObject.namespace",
                "Invalid value: \"other\": does not match event.namespace",
            ),
            (
                "/eventTime",
                json!("2025-01-01T00:00:00.000000Z"),
                "reportingComponent",
                "Required value",
            ),
            (
                "/count",
                json!(-1),
                "count",
                "must be greater than or equal to 0",
            ),
        ],
    );

    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "ferry-scheduler", "namespace": "kube-system"},
        "spec": {"holderIdentity": "m1", "leaseDurationSeconds": 15}
    });
    ok("Lease", &lease);
    refuse_all(
        "Lease",
        &lease,
        vec![
            (
                "/spec/leaseDurationSeconds",
                json!(0),
                "spec.leaseDurationSeconds",
                "Invalid value: 0: must be greater than 0",
            ),
            (
                "/spec/leaseTransitions",
                json!(-1),
                "spec.leaseTransitions",
                "must be greater than or equal to 0",
            ),
            (
                "/spec/preferredHolder",
                json!("m2"),
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ),
            (
                "/spec/strategy",
                json!("Newest"),
                "spec.strategy",
                "Unsupported value: \"Newest\"",
            ),
        ],
    );
    let s = create(
        "Lease",
        &json!({"metadata": {"name": "x", "namespace": "a"}, "spec": {"leaseDurationSeconds": -1}}),
    )
    .unwrap_err();
    assert!(
        s.message
            .starts_with("Lease.coordination.k8s.io \"x\" is invalid: "),
        "{}",
        s.message
    );
    let _: Option<Value> = None;
    expect_invalid(
        "Lease",
        Err(s),
        "spec.leaseDurationSeconds",
        "must be greater than 0",
        "negative",
    );
}
