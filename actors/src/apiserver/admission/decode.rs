//! Strict decoding into k8s-openapi types.
//!
//! k8s-openapi skips fields it does not know, so unknown fields are found by
//! re-encoding the typed value and listing every input key that did not survive,
//! as Kubernetes' strict field validation reports them.

use ferry_api::object::{FieldValidation, Status};
use ferry_api::resources::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Decodes `obj` as kind `res` into `T`, refusing type errors (400). Unknown
/// fields are refused under `Strict` (400, each named), dropped under `Ignore`,
/// and dropped with one warning each under `Warn` (pushed to `warnings`).
pub(crate) fn decode<T: DeserializeOwned + Serialize>(
    res: &Resource,
    obj: &Value,
    fv: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<T, Status> {
    check_type_meta(res, obj)?;
    let cannot = |why: String| {
        Status::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {why}",
            res.kind, res.version, res.kind
        ))
    };
    // Most bodies decode: track the path (which costs) only to report an error.
    let typed: T = match T::deserialize(obj) {
        Ok(t) => t,
        Err(plain) => {
            return Err(match serde_path_to_error::deserialize::<_, T>(obj) {
                Err(e) if e.path().to_string() != "." => {
                    cannot(format!("{}: {}", e.path(), e.inner()))
                }
                Err(e) => cannot(e.inner().to_string()),
                Ok(_) => cannot(plain.to_string()),
            })
        }
    };
    if fv == FieldValidation::Ignore {
        return Ok(typed);
    }
    let back = serde_json::to_value(&typed).map_err(|e| Status::internal(e.to_string()))?;
    let mut unknown = Vec::new();
    diff("", obj, &back, &mut unknown);
    let list = unknown.iter().map(|p| format!("unknown field {p:?}"));
    match fv {
        _ if unknown.is_empty() => {}
        FieldValidation::Strict => {
            let list: Vec<String> = list.collect();
            return Err(cannot(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
        _ => warnings.extend(list),
    }
    Ok(typed)
}

/// Decodes the stored object; it was admitted before, so any failure is ours (500).
pub(crate) fn decode_stored<T: DeserializeOwned>(res: &Resource, obj: &Value) -> Result<T, Status> {
    serde_json::from_value(obj.clone())
        .map_err(|e| Status::internal(format!("stored {} does not decode: {e}", res.kind)))
}

/// apiVersion and kind, when present, must name `res`.
fn check_type_meta(res: &Resource, obj: &Value) -> Result<(), Status> {
    let Some(map) = obj.as_object() else {
        return Err(Status::bad_request(format!(
            "the body of a {} must be a JSON object",
            res.kind
        )));
    };
    let want = res.api_version();
    match map.get("apiVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if *v == want => {}
        Some(v) => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({want})",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            )))
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(k)) if k == res.kind => Ok(()),
        Some(k) => Err(Status::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the kind in the data does not match the expected kind {:?}",
            k.as_str().map(str::to_string).unwrap_or_else(|| k.to_string()),
            res.version,
            res.kind,
            res.kind
        ))),
    }
}

/// Collects the paths of keys in `input` missing from `output` (nulls are absent values).
fn diff(path: &str, input: &Value, output: &Value, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(w) => diff(&p, v, w, unknown),
                    None => unknown.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, unknown);
            }
        }
        _ => {}
    }
}
