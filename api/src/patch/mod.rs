//! The three Kubernetes patch types and client-side apply, over `serde_json::Value`.
//!
//! Layout:
//! - [`merge_patch`]: RFC 7386 JSON merge patch (`application/merge-patch+json`).
//! - [`json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`), atomic.
//! - [`strategic_merge_patch`]: Kubernetes strategic merge patch for the built-in
//!   kinds (`application/strategic-merge-patch+json`), with its directives.
//! - [`three_way`]: what client-side `kubectl apply` does with the last-applied
//!   configuration, the desired manifest and the live object.
//! - [`ssa`]: server-side apply (`application/apply-patch+yaml`) and the
//!   `metadata.managedFields` every write keeps.
//!
//! All functions are pure: they never change their inputs on error.

mod apply;
mod json;
pub mod ssa;
mod strategic;

use serde_json::{Map, Value};

pub use apply::{
    last_applied, set_last_applied, three_way, three_way_patch, LAST_APPLIED_ANNOTATION,
};
pub use json::json_patch;
pub use strategic::{list_strategy, strategic_merge_patch, ListStrategy};

/// Errors from applying or computing a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// A JSON patch document is not a list of operation objects.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// One JSON patch operation failed; the target was left unchanged.
    #[error("JSON patch operation {index} ({op} {path:?}): {reason}")]
    JsonPatchOp {
        /// Position of the operation in the patch, from 0.
        index: usize,
        /// The `op` member as written.
        op: String,
        /// The `path` member as written.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A strategic merge patch (or its target) has the wrong shape at a path.
    #[error("strategic merge patch at {path}: {reason}")]
    Strategic {
        /// Dotted field path (list indices omitted); `<root>` for the top.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An element of a list merged by key lacks that key.
    #[error("strategic merge patch at {path}: list element has no merge key {key:?}: {element}")]
    MissingMergeKey {
        /// Dotted path of the list.
        path: String,
        /// The merge key.
        key: String,
        /// The element, as JSON.
        element: String,
    },
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("strategic merge patch at {path}: unknown $patch directive {directive:?}; use replace, delete or merge")]
    UnknownDirective {
        /// Dotted path of the map or list.
        path: String,
        /// The directive as written.
        directive: String,
    },
}

/// Result of patching.
pub type Result<T, E = PatchError> = std::result::Result<T, E>;

/// Applies an RFC 7386 JSON merge patch: `null` deletes a member, objects merge
/// recursively, anything else (lists included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_appendix_a() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut got = target.clone();
            merge_patch(&mut got, &patch);
            assert_eq!(got, want, "{target} + {patch}");
        }
    }

    #[test]
    fn error_messages_name_the_place() {
        let cases = [
            (
                PatchError::JsonPatchOp {
                    index: 2,
                    op: "remove".into(),
                    path: "/a/b".into(),
                    reason: "path does not exist".into(),
                },
                "JSON patch operation 2 (remove \"/a/b\"): path does not exist",
            ),
            (
                PatchError::MissingMergeKey {
                    path: "spec.containers".into(),
                    key: "name".into(),
                    element: "{\"image\":\"x\"}".into(),
                },
                "strategic merge patch at spec.containers: list element has no merge key \"name\": {\"image\":\"x\"}",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
