//! Field errors worded as Kubernetes words them (`k8s.io/apimachinery/pkg/util/validation/field`).

use std::collections::BTreeMap;

use ferry_api::object::StatusCause;
use ferry_api::resources::ResourceError;

/// The causes found while validating one object.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<StatusCause>);

impl Errors {
    fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(StatusCause {
            reason: reason.to_string(),
            message,
            field: field.to_string(),
        });
    }

    /// `Invalid value: <value>: <detail>`; `value` is already formatted ([`q`] for strings).
    pub(crate) fn invalid(&mut self, field: &str, value: impl std::fmt::Display, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {detail}"),
        );
    }

    /// `Required value` (with an optional detail).
    pub(crate) fn required(&mut self, field: &str, detail: &str) {
        let msg = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, msg);
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub(crate) fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| q(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                q(value),
                list.join(", ")
            ),
        );
    }

    /// `Duplicate value: <value>`.
    pub(crate) fn duplicate(&mut self, field: &str, value: impl std::fmt::Display) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {value}"),
        );
    }

    /// `Forbidden: <detail>`.
    pub(crate) fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }

    /// `Too long: may not be more than <max> bytes`.
    pub(crate) fn too_long(&mut self, field: &str, max: usize) {
        self.push(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        );
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub(crate) fn too_many(&mut self, field: &str, actual: usize, max: usize) {
        self.push(
            "FieldValueTooMany",
            field,
            format!("Too many: {actual}: must have at most {max} items"),
        );
    }

    /// `Not found: <value>`.
    pub(crate) fn not_found(&mut self, field: &str, value: impl std::fmt::Display) {
        self.push("FieldValueNotFound", field, format!("Not found: {value}"));
    }

    /// Records a name-check failure from `ferry_api::resources`.
    pub(crate) fn name(&mut self, r: Result<(), ResourceError>) {
        if let Err(ResourceError::InvalidName {
            field,
            value,
            reason,
        }) = r
        {
            self.invalid(&field, q(&value), &reason);
        }
    }

    /// `value` must be ≥ 0.
    pub(crate) fn non_negative(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v < 0) {
            self.invalid(field, v, "must be greater than or equal to 0");
        }
    }

    /// `value` must be one of `supported` when set.
    pub(crate) fn one_of(&mut self, field: &str, value: Option<&str>, supported: &[&str]) {
        if let Some(v) = value.filter(|v| !supported.contains(v)) {
            self.not_supported(field, v, supported);
        }
    }

    /// Immutable field: `Invalid value: <new>: field is immutable`.
    pub(crate) fn immutable<T: PartialEq + serde::Serialize>(
        &mut self,
        field: &str,
        new: &T,
        old: &T,
    ) {
        if new != old {
            self.invalid(field, json(new), "field is immutable");
        }
    }
}

/// A string quoted as Go's `%q` does (close enough for ASCII).
pub(crate) fn q(s: &str) -> String {
    format!("{s:?}")
}

/// A value printed as compact JSON.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A label map printed as Go prints it: `map[string]string{"app":"web"}`.
pub(crate) fn go_map(m: Option<&BTreeMap<String, String>>) -> String {
    let inner: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{}:{}", q(k), q(v)))
        .collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

/// `base.child`, or `child` at the root.
pub(crate) fn at(base: &str, child: &str) -> String {
    if base.is_empty() {
        child.to_string()
    } else {
        format!("{base}.{child}")
    }
}
