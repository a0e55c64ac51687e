//! Patches (placeholder until the patch branch lands).
use serde_json::Value;

/// Error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(String);

/// Merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Default::default());
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}
/// JSON patch.
pub fn json_patch(_target: &Value, _patch: &Value) -> Result<Value, PatchError> {
    Err(PatchError("unsupported".into()))
}
/// Strategic.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut t = target.clone();
    merge_patch(&mut t, patch);
    Ok(t)
}
/// Three-way (placeholder).
pub fn three_way(_kind: &str, _last: Option<&Value>, desired: &Value, live: &Value) -> Result<Value, PatchError> { let mut t = live.clone(); merge_patch(&mut t, desired); Ok(t) }
