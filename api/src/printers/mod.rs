//! Kubernetes' printers for ferry's kinds: the columns and cells of `get`,
//! ages, and the `meta.k8s.io/v1` Table an API server answers with. Pure
//! functions of JSON objects, shared by the CLI (`ferry get`, `ferry describe`)
//! and the Kubernetes REST front end (`Accept: ...;as=Table`).
//!
//! Layout:
//! - [`age`](mod@age): ages (`5m10s`) and describe timestamps.
//! - [`columns`]: each kind's column definitions and cells.
//! - [`table_json`], [`partial_object_metadata`]: the server's `Table` and
//!   `PartialObjectMetadata` answers.
//! - this file: small JSON readers and kubectl's label and selector strings.

pub mod age;
pub mod columns;
mod server_table;

pub use server_table::{partial_object_metadata, table_json, IncludeObject};

use serde_json::Value;

/// The string at a JSON pointer, or "" when absent or not a string.
pub fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, or 0.
pub fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at a JSON pointer, or an empty slice.
pub fn list<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A string map as `k=v,k2=v2` (sorted), or `<none>`: kubectl's `labels.FormatLabels`.
pub fn labels_string(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// A `LabelSelector` as kubectl prints it: requirements sorted by key,
/// `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`; "" when absent or empty.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        reqs.extend(
            m.iter()
                .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or("")))),
        );
    }
    for e in list(sel, "/matchExpressions") {
        let key = text(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let r = match text(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        };
        reqs.push((key.to_string(), r));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_print_like_kubectl() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(Some(&sel)), "app=web,!canary,tier in (a,b)");
    }
}
