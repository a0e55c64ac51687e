//! Table tests for admission: a good manifest per kind, then one change per case
//! with the field and message Kubernetes would report.

mod cluster;
mod config;
mod decode;
mod netpol;
mod pod;
mod priority;
mod service;
mod storage;
mod workloads;

use ferry_api::object::{FieldValidation, Status};
use ferry_api::resources::{Resource, RESOURCES};
use serde_json::Value;

use super::{admit, Operation};

/// The served kind named `kind`.
fn res(kind: &str) -> &'static Resource {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind)
        .expect("served kind")
}

/// Admits `obj` as a create.
fn create(kind: &str, obj: &Value) -> Result<Value, Status> {
    let mut v = obj.clone();
    admit(
        res(kind),
        &mut v,
        None,
        Operation::Create,
        FieldValidation::Strict,
    )
    .map(|_| v)
}

/// Admits `obj` as a create and returns the defaulted object; panics with the Status.
fn ok(kind: &str, obj: &Value) -> Value {
    create(kind, obj).unwrap_or_else(|s| panic!("{kind} refused: {}", s.message))
}

/// Admits `new` as an update of `old` (which is admitted first).
fn update(kind: &str, old: &Value, new: &Value) -> Result<Value, Status> {
    let stored = ok(kind, old);
    let mut v = new.clone();
    admit(
        res(kind),
        &mut v,
        Some(&stored),
        Operation::Update,
        FieldValidation::Strict,
    )
    .map(|_| v)
}

/// `obj` with the value at JSON pointer `ptr` replaced (null removes it),
/// creating intermediate objects as needed.
fn with(obj: &Value, ptr: &str, value: Value) -> Value {
    let mut v = obj.clone();
    let mut cur = &mut v;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        cur = match cur {
            Value::Array(a) => {
                let idx: usize = p.parse().expect("array index");
                if last {
                    if idx == a.len() {
                        a.push(value);
                    } else {
                        a[idx] = value;
                    }
                    return v;
                }
                &mut a[idx]
            }
            other => {
                if !other.is_object() {
                    *other = Value::Object(Default::default());
                }
                let m = other.as_object_mut().expect("object");
                if last {
                    if value.is_null() {
                        m.remove(*p);
                    } else {
                        m.insert(p.to_string(), value);
                    }
                    return v;
                }
                m.entry(p.to_string()).or_insert(Value::Null)
            }
        };
    }
    v
}

/// One bad-manifest case: change `ptr` to `value`; expect a 422 cause on `field`
/// whose message contains `want`.
type Case = (&'static str, Value, &'static str, &'static str);

/// Runs bad-manifest cases against `base`.
/// Also checks that `base` is admitted, that defaulting is idempotent, and that
/// replacing the stored object with itself is allowed.
fn refuse_all(kind: &str, base: &Value, cases: Vec<Case>) {
    let once = ok(kind, base);
    assert_eq!(
        ok(kind, &once),
        once,
        "{kind}: defaulting twice changes the object"
    );
    let same =
        update(kind, base, &once).unwrap_or_else(|s| panic!("{kind} no-op update: {}", s.message));
    assert_eq!(same, once, "{kind}: a no-op update changes the object");
    for (ptr, value, field, want) in cases {
        let obj = with(base, ptr, value.clone());
        expect_invalid(
            kind,
            create(kind, &obj),
            field,
            want,
            &format!("{ptr} = {value}"),
        );
    }
}

/// Asserts a 422 with a cause on `field` containing `want`.
fn expect_invalid(kind: &str, got: Result<Value, Status>, field: &str, want: &str, case: &str) {
    let s = match got {
        Ok(_) => panic!("{kind} {case}: admitted, want {field}: {want}"),
        Err(s) => s,
    };
    assert_eq!(s.code, 422, "{kind} {case}: {}", s.message);
    assert!(
        s.causes
            .iter()
            .any(|c| c.field == field && c.message.contains(want)),
        "{kind} {case}: want {field}: {want}\n got: {}",
        s.message
    );
    assert!(s.message.contains(want), "{case}: message {}", s.message);
}

#[test]
fn unknown_fields_are_refused_dropped_with_a_warning_or_dropped() {
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "colour": "red"}, "data": {"a": "1"}, "extra": 1});
    let mut v = cm.clone();
    let e = admit(
        res("ConfigMap"),
        &mut v,
        None,
        Operation::Create,
        FieldValidation::Strict,
    )
    .unwrap_err();
    assert_eq!(e.code, 400);
    let mut v = cm.clone();
    let w = admit(
        res("ConfigMap"),
        &mut v,
        None,
        Operation::Create,
        FieldValidation::Warn,
    )
    .unwrap();
    assert_eq!(
        w,
        [
            r#"unknown field "extra""#,
            r#"unknown field "metadata.colour""#
        ]
    );
    assert!(
        v.get("extra").is_none() && v["metadata"].get("colour").is_none(),
        "{v}"
    );
    let mut v = cm.clone();
    let w = admit(
        res("ConfigMap"),
        &mut v,
        None,
        Operation::Create,
        FieldValidation::Ignore,
    )
    .unwrap();
    assert!(w.is_empty());
    assert!(v.get("extra").is_none(), "{v}");
    assert_eq!(v["data"]["a"], "1");
}

#[test]
fn every_served_kind_has_rules() {
    for r in RESOURCES {
        let mut v = serde_json::json!({"metadata": {"name": "x"}});
        if let Err(s) = admit(r, &mut v, None, Operation::Create, FieldValidation::Strict) {
            assert_ne!(s.code, 500, "{}: {}", r.kind, s.message);
        }
    }
}
