//! PriorityClasses.

use serde_json::{json, Value};

use super::{expect_invalid, ok, refuse_all, update, with};

fn class() -> Value {
    json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high"},
        "value": 1000, "description": "important"
    })
}

#[test]
fn defaults() {
    let pc = ok("PriorityClass", &class());
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let sys = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "system-cluster-critical"}, "value": 2_000_000_000});
    ok("PriorityClass", &sys);
}

#[test]
fn bad_classes_are_refused() {
    let cases = vec![
        (
            "/value",
            json!(1_000_000_001),
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        ),
        (
            "/metadata/name",
            json!("system-mine"),
            "metadata.name",
            "priority class names with 'system-' prefix are reserved for system use only",
        ),
        (
            "/preemptionPolicy",
            json!("Sometimes"),
            "preemptionPolicy",
            "Unsupported value: \"Sometimes\"",
        ),
    ];
    refuse_all("PriorityClass", &class(), cases);
    let sys = with(&class(), "/metadata/name", json!("system-node-critical"));
    expect_invalid(
        "PriorityClass",
        super::create("PriorityClass", &sys),
        "value",
        "value of system-node-critical PriorityClass must be 2000001000",
        "system class with another value",
    );
}

#[test]
fn value_and_policy_do_not_change() {
    let old = ok("PriorityClass", &class());
    let got = update("PriorityClass", &old, &with(&old, "/value", json!(5)));
    expect_invalid(
        "PriorityClass",
        got,
        "value",
        "may not be changed in an update.",
        "value changed",
    );
    let got = update(
        "PriorityClass",
        &old,
        &with(&old, "/preemptionPolicy", json!("Never")),
    );
    expect_invalid(
        "PriorityClass",
        got,
        "preemptionPolicy",
        "field is immutable",
        "policy changed",
    );
    // The description may change.
    update(
        "PriorityClass",
        &old,
        &with(&old, "/description", json!("less important")),
    )
    .expect("a new description");
}
