//! Object metadata, labels, annotations and label selectors.

use std::collections::BTreeMap;

use ferry_api::resources::{check_dns_label, check_dns_subdomain, Resource, ResourceError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::apiserver::admission::field::{at, json, q, Errors};

/// Annotations may total at most this many bytes (keys plus values).
pub(crate) const MAX_ANNOTATIONS: usize = 256 * 1024;

const QUALIFIED_NAME_FMT: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_FMT: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// How a kind's object names are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (Namespace).
    Label,
    /// DNS-1035 label: a label that starts with a letter (Service).
    Dns1035,
    /// A URL path segment: not `.` or `..`, no `/` or `%` (RBAC kinds).
    PathSegment,
}

/// Checks `metadata` of an object of kind `res`.
pub(crate) fn object_meta(res: &Resource, meta: &ObjectMeta, rule: NameRule, errs: &mut Errors) {
    let name = meta.name.as_deref().unwrap_or_default();
    let generate = meta.generate_name.as_deref().unwrap_or_default();
    if !name.is_empty() {
        check_name("metadata.name", name, rule, errs);
    } else if !generate.is_empty() {
        // A prefix: a trailing '-' is allowed, as a suffix will follow.
        let masked = match generate.strip_suffix('-') {
            Some(p) => format!("{p}a"),
            None => generate.to_string(),
        };
        let before = errs.0.len();
        check_name("metadata.generateName", &masked, rule, errs);
        for c in &mut errs.0[before..] {
            c.message = c.message.replace(&q(&masked), &q(generate));
        }
    } else {
        errs.required("metadata.name", "name or generateName is required");
    }
    match meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) if res.namespaced => errs.name(check_dns_label("metadata.namespace", ns)),
        Some(_) => errs.forbidden("metadata.namespace", "not allowed on this type"),
        None => {}
    }
    errs.non_negative("metadata.generation", meta.generation);
    labels("metadata.labels", meta.labels.as_ref(), errs);
    annotations("metadata.annotations", meta.annotations.as_ref(), errs);
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        qualified_name(&format!("metadata.finalizers[{i}]"), f, errs);
    }
    for (i, r) in meta.owner_references.iter().flatten().enumerate() {
        let p = format!("metadata.ownerReferences[{i}]");
        for (field, v) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if v.is_empty() {
                errs.required(&at(&p, field), "");
            }
        }
    }
}

/// Checks an object name by `rule`.
pub(crate) fn check_name(field: &str, name: &str, rule: NameRule, errs: &mut Errors) {
    match rule {
        NameRule::Subdomain => errs.name(check_dns_subdomain(field, name)),
        NameRule::Label => errs.name(check_dns_label(field, name)),
        NameRule::PathSegment => {
            for msg in super::rbac::path_segment_errors(name) {
                errs.invalid(field, q(name), msg);
            }
        }
        NameRule::Dns1035 => {
            if check_dns_label(field, name).is_err()
                || !name.starts_with(|c: char| c.is_ascii_lowercase())
            {
                let why = if name.len() > 63 {
                    "must be no more than 63 characters"
                } else {
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                };
                errs.invalid(field, q(name), why);
            }
        }
    }
}

/// The immutable identity of an object on update.
pub(crate) fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta, errs: &mut Errors) {
    errs.immutable("metadata.name", &new.name, &old.name);
    if new.namespace.is_some() {
        errs.immutable("metadata.namespace", &new.namespace, &old.namespace);
    }
    if new.uid.is_some() {
        errs.immutable("metadata.uid", &new.uid, &old.uid);
    }
    if new.creation_timestamp.is_some() {
        errs.immutable(
            "metadata.creationTimestamp",
            &new.creation_timestamp,
            &old.creation_timestamp,
        );
    }
}

/// Reasons a qualified name (`[prefix/]name`) is invalid; empty when valid.
pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts[..] {
        [n] => n,
        [prefix, n] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else if let Err(ResourceError::InvalidName { reason, .. }) =
                check_dns_subdomain("", prefix)
            {
                out.push(format!("prefix part {reason}"));
            }
            n
        }
        _ => {
            out.push(format!("a qualified name {QUALIFIED_NAME_FMT} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !label_value_ok(name) {
        out.push(format!("name part {QUALIFIED_NAME_FMT}"));
    }
    out
}

/// Records every reason `value` is not a qualified name.
pub(crate) fn qualified_name(field: &str, value: &str, errs: &mut Errors) {
    for why in qualified_name_errors(value) {
        errs.invalid(field, q(value), &why);
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` (or empty).
fn label_value_ok(v: &str) -> bool {
    let b = v.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    b.is_empty()
        || (alnum(&b[0])
            && alnum(&b[b.len() - 1])
            && b.iter()
                .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.')))
}

/// Checks label keys and values.
pub(crate) fn labels(field: &str, labels: Option<&BTreeMap<String, String>>, errs: &mut Errors) {
    for (k, v) in labels.into_iter().flatten() {
        qualified_name(field, k, errs);
        label_value(field, v, errs);
    }
}

/// Checks one label value.
pub(crate) fn label_value(field: &str, v: &str, errs: &mut Errors) {
    if v.len() > 63 {
        errs.invalid(field, q(v), "must be no more than 63 characters");
    }
    if !label_value_ok(v) {
        errs.invalid(field, q(v), LABEL_VALUE_FMT);
    }
}

/// Checks annotation keys and their total size.
pub(crate) fn annotations(field: &str, ann: Option<&BTreeMap<String, String>>, errs: &mut Errors) {
    let mut total = 0;
    for (k, v) in ann.into_iter().flatten() {
        for why in qualified_name_errors(&k.to_ascii_lowercase()) {
            errs.invalid(field, q(k), &why);
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS {
        errs.too_long(field, MAX_ANNOTATIONS);
    }
}

/// Checks a label selector's syntax.
pub(crate) fn selector(field: &str, sel: &LabelSelector, errs: &mut Errors) {
    labels(&at(field, "matchLabels"), sel.match_labels.as_ref(), errs);
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{field}.matchExpressions[{i}]");
        let has_values = r.values.as_ref().is_some_and(|v| !v.is_empty());
        match r.operator.as_str() {
            "In" | "NotIn" if !has_values => errs.required(
                &at(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if has_values => errs.forbidden(
                &at(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.invalid(&at(&p, "operator"), q(op), "not a valid selector operator"),
        }
        qualified_name(&at(&p, "key"), &r.key, errs);
    }
}

/// True when the selector selects nothing specific (matches everything).
pub(crate) fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// True when `labels` satisfy `sel`.
pub(crate) fn selector_matches(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let exact = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    let exprs = sel.match_expressions.iter().flatten().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        let val = get(&r.key);
        match r.operator.as_str() {
            "In" => val.is_some_and(|v| values.contains(v)),
            "NotIn" => val.is_none_or(|v| !values.contains(v)),
            "Exists" => val.is_some(),
            "DoesNotExist" => val.is_none(),
            _ => false,
        }
    });
    exact && exprs
}

/// A selector printed for error messages.
pub(crate) fn show_selector(sel: &LabelSelector) -> String {
    json(sel)
}
