//! Strict decoding into k8s-openapi types.
//!
//! k8s-openapi skips fields it does not know (as `IgnoredAny`); decoding
//! through `serde_ignored` reports each such key with its path, as
//! Kubernetes' strict field validation names them (`spec.containers[0].imagee`),
//! without encoding the typed value back to compare.

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
    let mut unknown = Vec::new();
    let decoded = serde_ignored::deserialize(obj, |path| {
        if fv != FieldValidation::Ignore {
            unknown.push(k8s_path(&path));
        }
    });
    let typed: T = match decoded {
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
    // A key whose value is null is an absent value, not an unknown field.
    unknown.retain(|p| !is_null_at(obj, p));
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

/// A `serde_ignored` path as Kubernetes writes field paths: `a.b[0].c`.
fn k8s_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", k8s_path(parent)),
        Path::Map { parent, key } => {
            let p = k8s_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => k8s_path(parent),
    }
}

/// Whether the value at a Kubernetes field path in `obj` is JSON null.
fn is_null_at(obj: &Value, path: &str) -> bool {
    let mut v = obj;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        match v.get(key) {
            Some(next) => v = next,
            None => return false,
        }
        for ix in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            match ix.parse::<usize>().ok().and_then(|i| v.get(i)) {
                Some(next) => v = next,
                None => return false,
            }
        }
    }
    v.is_null()
}
