//! Field selectors: `field=value` terms over dotted JSON paths.

use std::fmt;

use serde_json::Value;

use super::{Result, SelectorError};

/// A field selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dot-separated path, e.g. `spec.nodeName`.
    pub field: String,
    /// Operator.
    pub op: FieldOp,
    /// Value compared against the field's string form.
    pub value: String,
}

/// A field selector: `field=value` terms that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses comma-separated terms; `\,`, `\=` and `\\` escape inside values.
    /// Every field must be in `supported` (include [`COMMON_FIELDS`]).
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector> {
        let mut terms = Vec::new();
        for raw in split_unescaped(s) {
            let term = raw.trim();
            if term.is_empty() {
                continue;
            }
            let (field, op, value) =
                split_term(term).ok_or_else(|| SelectorError::FieldSyntax {
                    term: term.to_string(),
                })?;
            let field = field.trim();
            if field.is_empty() {
                return Err(SelectorError::FieldSyntax {
                    term: term.to_string(),
                });
            }
            if !supported.contains(&field) {
                return Err(SelectorError::UnsupportedField {
                    field: field.to_string(),
                });
            }
            terms.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape(value.trim()),
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The terms, in the order written.
    pub fn fields(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// The value an equality term requires of `field`, to narrow a listing.
    pub fn equality(&self, field: &str) -> Option<&str> {
        let term = self
            .terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals);
        term.map(|t| t.value.as_str())
    }

    /// True when there are no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether every term holds; a missing field compares as `""`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let equal = field_value(obj, &t.field) == t.value;
            equal == (t.op == FieldOp::Equals)
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            let op = if t.op == FieldOp::Equals { "=" } else { "!=" };
            let value = t
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            write!(f, "{}{}{op}{value}", if i > 0 { "," } else { "" }, t.field)?;
        }
        Ok(())
    }
}

/// The string form of a dotted field: strings as is, numbers and booleans
/// printed, missing or null as `""`.
fn field_value(obj: &Value, path: &str) -> String {
    let found = path.split('.').try_fold(obj, |v, seg| v.get(seg));
    match found {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn split_unescaped(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits at the first unescaped `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        if c == '\\' {
            escaped = true;
        } else if rest.starts_with("!=") {
            return Some((&term[..i], FieldOp::NotEquals, &term[i + 2..]));
        } else if rest.starts_with("==") {
            return Some((&term[..i], FieldOp::Equals, &term[i + 2..]));
        } else if c == '=' {
            return Some((&term[..i], FieldOp::Equals, &term[i + 1..]));
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POD_FIELDS: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
    ];

    #[test]
    fn parse_and_match() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"}
        });
        let pending = json!({"metadata": {"name": "web-2", "namespace": "prod"}});
        // (selector, canonical, matches pod, matches pending)
        let cases = [
            ("", "", true, true),
            ("metadata.name=web-1", "metadata.name=web-1", true, false),
            ("metadata.name==web-1", "metadata.name=web-1", true, false),
            ("metadata.name!=web-1", "metadata.name!=web-1", false, true),
            ("spec.nodeName=", "spec.nodeName=", false, true),
            ("spec.nodeName!=", "spec.nodeName!=", true, false),
            (
                "status.phase=Running,metadata.namespace=prod",
                "status.phase=Running,metadata.namespace=prod",
                true,
                false,
            ),
            (
                " metadata.namespace = prod , ",
                "metadata.namespace=prod",
                true,
                true,
            ),
            ("metadata.name=a\\,b", "metadata.name=a\\,b", false, false),
        ];
        for (input, canonical, want_pod, want_pending) in cases {
            let s = FieldSelector::parse(input, POD_FIELDS)
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(s.to_string(), canonical, "{input:?}");
            assert_eq!(s.matches(&pod), want_pod, "{input:?} on pod");
            assert_eq!(s.matches(&pending), want_pending, "{input:?} on pending");
        }
    }

    #[test]
    fn escapes_and_accessors() {
        let s = FieldSelector::parse("metadata.name=a\\=b\\,c,metadata.namespace!=x", POD_FIELDS)
            .unwrap();
        assert_eq!(s.fields().len(), 2);
        assert_eq!(s.fields()[0].value, "a=b,c");
        assert_eq!(s.equality("metadata.name"), Some("a=b,c"));
        assert_eq!(s.equality("metadata.namespace"), None);
        assert!(s.matches(&json!({"metadata": {"name": "a=b,c"}})));
        assert!(FieldSelector::parse("", &[]).unwrap().is_empty());
        let n = FieldSelector::parse("spec.replicas=3", &["spec.replicas"]).unwrap();
        assert!(n.matches(&json!({"spec": {"replicas": 3}})));
    }

    #[test]
    fn errors() {
        let cases = [
            ("spec.foo=x", "field label not supported: spec.foo"),
            (
                "metadata.name",
                "invalid field selector term \"metadata.name\": expected field=value",
            ),
            ("=x", "invalid field selector term \"=x\""),
            (
                "metadata.name=a,status.podIP=1",
                "field label not supported: status.podIP",
            ),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input, POD_FIELDS)
                .expect_err(input)
                .to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
