//! Strict decoding: unknown fields, type errors, apiVersion and kind.

use serde_json::json;

use super::{create, ok};

fn deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "resources": {"limits": {"cpu": 1}}}]}
            }
        }
    })
}

#[test]
fn bad_bodies_are_400_with_the_field() {
    ok("Deployment", &deployment());
    let mut unknown = deployment();
    unknown["spec"]["replica"] = json!(3);
    unknown["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    unknown["status"] = json!({"bogus": 1});
    let mut wrong_type = deployment();
    wrong_type["spec"]["replicas"] = json!("three");
    let mut wrong_nested = deployment();
    wrong_nested["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": "80"}]);
    let mut wrong_version = deployment();
    wrong_version["apiVersion"] = json!("extensions/v1beta1");
    let mut wrong_kind = deployment();
    wrong_kind["kind"] = json!("Pod");
    let cases = [
        (unknown, "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\", unknown field \"spec.template.spec.containers[0].imagee\", unknown field \"status.bogus\""),
        (wrong_type, "cannot be handled as a Deployment: spec.replicas: invalid type: string \"three\", expected i32"),
        (wrong_nested, "spec.template.spec.containers[0].ports[0].containerPort: invalid type: string \"80\""),
        (wrong_version, "the API version in the data (extensions/v1beta1) does not match the expected API version (apps/v1)"),
        (wrong_kind, "Pod in version \"v1\" cannot be handled as a Deployment"),
        (json!([1]), "must be a JSON object"),
    ];
    for (obj, want) in cases {
        let s = create("Deployment", &obj).unwrap_err();
        assert_eq!(
            (s.code, s.reason.as_str()),
            (400, "BadRequest"),
            "{}",
            s.message
        );
        assert!(s.message.contains(want), "want {want}\n got {}", s.message);
    }
}

#[test]
fn kind_and_version_are_filled_and_nulls_dropped() {
    let mut d = deployment();
    d.as_object_mut().unwrap().remove("apiVersion");
    d.as_object_mut().unwrap().remove("kind");
    let out = ok("Deployment", &d);
    assert_eq!(out["apiVersion"], "apps/v1");
    assert_eq!(out["kind"], "Deployment");
    assert!(out["metadata"].get("creationTimestamp").is_none());
    // A numeric quantity is accepted and kept as a string.
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "1");
}
