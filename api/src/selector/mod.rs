//! Kubernetes label and field selectors over `serde_json::Value` objects.
//!
//! [`LabelSelector`] parses the string syntax (`app=web,tier in (a,b),!canary`)
//! and `metav1.LabelSelector` objects (`matchLabels`, `matchExpressions`).
//! [`FieldSelector`] parses `field=value` terms against a per-kind list of
//! supported fields. Both are pure: parse once, match many objects.
//!
//! Layout: `label.rs` (requirements, `metav1.LabelSelector`, matching),
//! `parse.rs` (the label selector grammar) and `field.rs` (field selectors).

mod field;
mod label;
mod parse;

pub use field::{FieldOp, FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement};

/// Fields every kind supports in a field selector.
pub const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Errors from parsing a label or field selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector string does not follow the grammar.
    #[error("unable to parse selector {selector:?}: {message}")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// What was found and what was expected.
        message: String,
    },
    /// A label key is not a valid qualified name.
    #[error("unable to parse requirement: invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A label value is not a valid label value.
    #[error(
        "unable to parse requirement: invalid label value {value:?}: at key {key:?}: {reason}"
    )]
    InvalidValue {
        /// The key the value belongs to.
        key: String,
        /// The value.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An operator got the wrong number of values (`in ()`, `Exists` with values).
    #[error("unable to parse requirement: key {key:?}: {reason}")]
    Values {
        /// The key.
        key: String,
        /// What the operator needs.
        reason: String,
    },
    /// A `matchExpressions` operator is not In, NotIn, Exists or DoesNotExist.
    #[error("{operator:?} is not a valid label selector operator for key {key:?}; use In, NotIn, Exists or DoesNotExist")]
    UnknownOperator {
        /// The key.
        key: String,
        /// The operator as written.
        operator: String,
    },
    /// A `metav1.LabelSelector` object has the wrong shape.
    #[error("invalid label selector: {0}")]
    Malformed(String),
    /// A field selector names a field the kind does not support.
    #[error("field label not supported: {field}")]
    UnsupportedField {
        /// The field as written.
        field: String,
    },
    /// A field selector term is not `field=value`, `field==value` or `field!=value`.
    #[error(
        "invalid field selector term {term:?}: expected field=value, field==value or field!=value"
    )]
    FieldSyntax {
        /// The term as written.
        term: String,
    },
}

/// Result of selector parsing.
pub type Result<T, E = SelectorError> = std::result::Result<T, E>;

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";

fn name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(inner)
}

/// Checks a qualified name: `[prefix/]name`, prefix a DNS-1123 subdomain.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(SelectorError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return bad("prefix part must be non-empty".into());
        }
        if let Err(e) = crate::resources::check_dns_subdomain("prefix", p) {
            return bad(format!("prefix part {e}"));
        }
    }
    if name.is_empty() {
        return bad("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return bad("name part must be no more than 63 characters".into());
    }
    if !name_ok(name) {
        return bad(format!("name part {NAME_RULE}"));
    }
    Ok(())
}

pub(crate) fn check_value(key: &str, value: &str) -> Result<()> {
    let reason = if value.len() > 63 {
        "must be no more than 63 characters".to_string()
    } else if !value.is_empty() && !name_ok(value) {
        format!("a valid label must be an empty string or {NAME_RULE}")
    } else {
        return Ok(());
    };
    Err(SelectorError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })
}
