//! Client-side apply: the three-way merge `kubectl apply` performs.
//!
//! The patch is the desired manifest itself (so every field the user writes
//! wins over the live value) plus deletions for what the user wrote last time
//! and no longer does: `null` for a map key, `$patch: delete` for a list
//! element with a merge key, `$deleteFromPrimitiveList/<f>` for a set member.
//! Fields the user never wrote (status, defaults, other controllers' labels or
//! sidecars) are not in the patch, so they survive.

use serde_json::{json, Map, Value};

use super::strategic::{is_directive, list_strategy, strategic_merge_patch, ListStrategy};
use super::Result;

/// The annotation `kubectl apply` keeps the last-applied manifest in, as JSON.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The strategic merge patch that takes `live` from `last_applied` to `desired`.
///
/// `last_applied: None` is a first apply: nothing is deleted.
pub fn three_way_patch(kind: &str, last_applied: Option<&Value>, desired: &Value) -> Value {
    let mut patch = desired.clone();
    if let (Some(Value::Object(last)), Value::Object(want), Value::Object(out)) =
        (last_applied, desired, &mut patch)
    {
        let mut path = Vec::new();
        deletions(kind, &mut path, last, want, out);
    }
    patch
}

/// The object `kubectl apply` would store: `live` with `desired` applied and
/// the fields removed since `last_applied` deleted. Does not touch the
/// last-applied annotation; see [`set_last_applied`].
pub fn three_way(
    kind: &str,
    last_applied: Option<&Value>,
    desired: &Value,
    live: &Value,
) -> Result<Value> {
    strategic_merge_patch(kind, live, &three_way_patch(kind, last_applied, desired))
}

/// Reads and parses an object's last-applied annotation, if present and valid JSON.
pub fn last_applied(obj: &Value) -> Option<Value> {
    let text = obj
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?;
    serde_json::from_str(text.as_str()?).ok()
}

/// Kubernetes' limit on the total size of an object's annotations (keys and
/// values), in bytes.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Records `desired` (without its own copy of the annotation) as `obj`'s
/// last-applied configuration, as Kubernetes' `lastAppliedUpdater` writes
/// it: [`go_json`] with a final newline (Go's `json.Encoder`); when the
/// annotations would then pass 256 KiB the annotation is removed instead.
/// Does nothing if `obj` is not an object.
pub fn set_last_applied(obj: &mut Value, desired: &Value) {
    let mut recorded = desired.clone();
    if let Some(Value::Object(a)) = recorded.pointer_mut("/metadata/annotations") {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
    let Value::Object(o) = obj else { return };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let annotations = meta
        .as_object_mut()
        .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
    if let Some(a) = annotations {
        if !a.is_object() {
            *a = json!({});
        }
        if let Value::Object(a) = a {
            let mut text = go_json(&recorded);
            text.push('\n');
            a.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(text));
            let size: usize = a
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum();
            if size > ANNOTATIONS_LIMIT {
                a.remove(LAST_APPLIED_ANNOTATION);
            }
        }
    }
}

/// `v` as Go's `encoding/json` prints it: keys sorted, no spaces, `<`, `>`,
/// `&`, U+2028 and U+2029 escaped as `\u003c`...; a float with an integral
/// value below 1e21 without its `.0`.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go(v, &mut out);
    out
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_str(k, out);
                out.push(':');
                write_go(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go(x, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_str(s, out),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Adds to `out` (a copy of `want`) the deletions that take `last` to `want`.
fn deletions(
    kind: &str,
    path: &mut Vec<String>,
    last: &Map<String, Value>,
    want: &Map<String, Value>,
    out: &mut Map<String, Value>,
) {
    for (k, old) in last {
        if is_directive(k) {
            continue;
        }
        let Some(new) = want.get(k) else {
            out.insert(k.clone(), Value::Null);
            continue;
        };
        path.push(k.clone());
        match (old, new, out.get_mut(k)) {
            (Value::Object(o), Value::Object(n), Some(Value::Object(dst))) => {
                deletions(kind, path, o, n, dst)
            }
            (Value::Array(o), Value::Array(n), _) => list_deletions(kind, path, o, n, out),
            _ => {}
        }
        path.pop();
    }
}

fn list_deletions(
    kind: &str,
    path: &mut Vec<String>,
    old: &[Value],
    new: &[Value],
    out: &mut Map<String, Value>,
) {
    let Some(field) = path.last().cloned() else {
        return;
    };
    match list_strategy(kind, path) {
        ListStrategy::Replace => {}
        ListStrategy::Primitive => {
            let gone: Vec<Value> = old.iter().filter(|v| !new.contains(v)).cloned().collect();
            if !gone.is_empty() {
                out.insert(
                    format!("$deleteFromPrimitiveList/{field}"),
                    Value::Array(gone),
                );
            }
        }
        ListStrategy::MergeKey(key) => {
            let Some(Value::Array(dst)) = out.get_mut(&field) else {
                return;
            };
            for o in old {
                let Some(id) = o.get(key) else { continue };
                match new.iter().position(|n| n.get(key) == Some(id)) {
                    None => dst.push(json!({ "$patch": "delete", key: id })),
                    Some(i) => {
                        if let (Value::Object(o), Value::Object(n), Value::Object(d)) =
                            (o, &new[i], &mut dst[i])
                        {
                            deletions(kind, path, o, n, d);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(labels: Value, containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"template": {"spec": {"containers": containers}}}
        })
    }

    #[test]
    fn removes_what_the_user_dropped_and_keeps_what_others_added() {
        let last = deployment(
            json!({"app": "web", "old": "x"}),
            json!([{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]),
        );
        let desired = deployment(
            json!({"app": "web"}),
            json!([{"name": "app", "image": "a:2", "env": [{"name": "A", "value": "1"}]}]),
        );
        let mut live = deployment(
            json!({"app": "web", "old": "x", "team": "ops"}),
            json!([
                {"name": "app", "image": "a:1", "imagePullPolicy": "IfNotPresent", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "INJECTED", "value": "y"}]},
                {"name": "sidecar", "image": "proxy:1"}
            ]),
        );
        live["status"] = json!({"replicas": 1});
        live["spec"]["replicas"] = json!(1);
        let got = three_way("Deployment", Some(&last), &desired, &live).unwrap();
        let mut want = deployment(
            json!({"app": "web", "team": "ops"}),
            json!([
                {"name": "app", "image": "a:2", "imagePullPolicy": "IfNotPresent", "env": [{"name": "A", "value": "1"}, {"name": "INJECTED", "value": "y"}]},
                {"name": "sidecar", "image": "proxy:1"}
            ]),
        );
        want["status"] = json!({"replicas": 1});
        want["spec"]["replicas"] = json!(1);
        assert_eq!(got, want);
    }

    #[test]
    fn patches_for_each_list_strategy() {
        // (last-applied, desired, expected patch)
        let cases = [
            (
                json!({"a": 1, "b": {"c": 1, "d": 2}}),
                json!({"b": {"c": 1}}),
                json!({"a": null, "b": {"c": 1, "d": null}}),
            ),
            (
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"name": "a"}, {"$patch": "delete", "name": "b"}]}}),
            ),
            (
                json!({"metadata": {"finalizers": ["x", "y"]}}),
                json!({"metadata": {"finalizers": ["x"]}}),
                json!({"metadata": {"finalizers": ["x"], "$deleteFromPrimitiveList/finalizers": ["y"]}}),
            ),
            (
                json!({"spec": {"args": ["x", "y"]}}),
                json!({"spec": {"args": ["x"]}}),
                json!({"spec": {"args": ["x"]}}),
            ),
            (json!({"a": {"b": 1}}), json!({"a": 2}), json!({"a": 2})),
        ];
        for (last, desired, want) in cases {
            assert_eq!(
                three_way_patch("Pod", Some(&last), &desired),
                want,
                "{last} -> {desired}"
            );
        }
        let first = json!({"a": 1});
        assert_eq!(three_way_patch("Pod", None, &first), first);
    }

    #[test]
    fn first_apply_and_finalizers() {
        let live = json!({"metadata": {"name": "p", "finalizers": ["keep", "mine"]}, "status": {"phase": "Running"}});
        let last = json!({"metadata": {"name": "p", "finalizers": ["mine"]}});
        let desired = json!({"metadata": {"name": "p"}});
        let got = three_way("Pod", Some(&last), &desired, &live).unwrap();
        assert_eq!(
            got,
            json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}})
        );
        let desired = json!({"metadata": {"name": "p", "finalizers": ["new"]}});
        let got = three_way("Pod", Some(&last), &desired, &live).unwrap();
        // Kubernetes' order: what the patch adds goes before the live items.
        assert_eq!(got["metadata"]["finalizers"], json!(["new", "keep"]));
        let got = three_way("Pod", None, &desired, &live).unwrap();
        assert_eq!(
            got["metadata"]["finalizers"],
            json!(["new", "keep", "mine"])
        );
    }

    #[test]
    fn go_json_prints_as_go_encoding_json_does() {
        let v = json!({"b": [1, 2.5, 3.0, true, null], "a": "x<y>&\"\\\n\u{1}\u{2028}é"});
        assert_eq!(
            go_json(&v),
            r#"{"a":"x\u003cy\u003e\u0026\"\\\n\u0001\u2028é","b":[1,2.5,3,true,null]}"#
        );
    }

    #[test]
    fn last_applied_annotation_round_trips() {
        let desired = json!({"kind": "Pod", "metadata": {"name": "p", "annotations": {LAST_APPLIED_ANNOTATION: "stale"}}});
        let mut obj = json!({"kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(last_applied(&obj), None);
        set_last_applied(&mut obj, &desired);
        let recorded = last_applied(&obj).unwrap();
        assert_eq!(
            recorded,
            json!({"kind": "Pod", "metadata": {"name": "p", "annotations": {}}})
        );
        let mut bare = json!({"kind": "Pod"});
        set_last_applied(&mut bare, &json!({"kind": "Pod"}));
        assert_eq!(last_applied(&bare), Some(json!({"kind": "Pod"})));
    }
}
