//! Role, ClusterRole, RoleBinding, ClusterRoleBinding
//! (`pkg/apis/rbac/validation`), and their v1 defaults.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::meta::selector;
use crate::apiserver::admission::field::{at, json, q, Errors};

/// The RBAC API group.
pub(crate) const GROUP: &str = "rbac.authorization.k8s.io";

/// Role: its rules are namespaced (no non-resource URLs).
pub(crate) fn role(r: &Role, errs: &mut Errors) {
    rules(r.rules.as_deref(), true, errs);
}

/// ClusterRole: rules, and an aggregation rule with at least one selector.
pub(crate) fn cluster_role(r: &ClusterRole, errs: &mut Errors) {
    rules(r.rules.as_deref(), false, errs);
    if let Some(a) = &r.aggregation_rule {
        let sels = a.cluster_role_selectors.as_deref().unwrap_or_default();
        if sels.is_empty() {
            errs.required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            );
        }
        for (i, s) in sels.iter().enumerate() {
            selector(
                &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                s,
                errs,
            );
        }
    }
}

fn rules(rules: Option<&[PolicyRule]>, namespaced: bool, errs: &mut Errors) {
    for (i, r) in rules.unwrap_or_default().iter().enumerate() {
        let p = format!("rules[{i}]");
        let empty = |v: &Option<Vec<String>>| v.as_ref().is_none_or(Vec::is_empty);
        if r.verbs.is_empty() {
            errs.required(&at(&p, "verbs"), "verbs must contain at least one value");
        }
        if !empty(&r.non_resource_urls) {
            let urls = json(&r.non_resource_urls);
            if namespaced {
                errs.invalid(
                    &at(&p, "nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !empty(&r.api_groups) || !empty(&r.resources) || !empty(&r.resource_names) {
                errs.invalid(
                    &at(&p, "nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if empty(&r.api_groups) {
            errs.required(
                &at(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if empty(&r.resources) {
            errs.required(
                &at(&p, "resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

/// RoleBinding: a Role or ClusterRole, and its subjects.
pub(crate) fn role_binding(b: &RoleBinding, errs: &mut Errors) {
    role_ref(&b.role_ref, &["Role", "ClusterRole"], errs);
    subjects(b.subjects.as_deref(), true, errs);
}

/// ClusterRoleBinding: a ClusterRole, and subjects (service accounts with a namespace).
pub(crate) fn cluster_role_binding(b: &ClusterRoleBinding, errs: &mut Errors) {
    role_ref(&b.role_ref, &["ClusterRole"], errs);
    subjects(b.subjects.as_deref(), false, errs);
}

/// A binding's roleRef may not change.
pub(crate) fn role_binding_update(new: &mut RoleBinding, old: &RoleBinding, errs: &mut Errors) {
    ref_unchanged(&new.role_ref, &old.role_ref, errs);
}

/// A binding's roleRef may not change.
pub(crate) fn cluster_role_binding_update(
    new: &mut ClusterRoleBinding,
    old: &ClusterRoleBinding,
    errs: &mut Errors,
) {
    ref_unchanged(&new.role_ref, &old.role_ref, errs);
}

fn ref_unchanged(new: &RoleRef, old: &RoleRef, errs: &mut Errors) {
    if new != old {
        errs.invalid(
            "roleRef",
            format!(
                "{{APIGroup:{} Kind:{} Name:{}}}",
                new.api_group, new.kind, new.name
            ),
            "cannot change roleRef",
        );
    }
}

fn role_ref(r: &RoleRef, kinds: &[&str], errs: &mut Errors) {
    if r.api_group != GROUP {
        errs.not_supported("roleRef.apiGroup", &r.api_group, &[GROUP]);
    }
    if !kinds.contains(&r.kind.as_str()) {
        errs.not_supported("roleRef.kind", &r.kind, kinds);
    }
    if r.name.is_empty() {
        errs.required("roleRef.name", "");
    } else {
        for msg in path_segment_errors(&r.name) {
            errs.invalid("roleRef.name", q(&r.name), msg);
        }
    }
}

fn subjects(subjects: Option<&[Subject]>, namespaced: bool, errs: &mut Errors) {
    for (i, s) in subjects.unwrap_or_default().iter().enumerate() {
        let p = format!("subjects[{i}]");
        let group = s.api_group.as_deref().unwrap_or_default();
        if s.name.is_empty() {
            errs.required(&at(&p, "name"), "");
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.name.is_empty() {
                    errs.name(ferry_api::resources::check_dns_subdomain(
                        &at(&p, "name"),
                        &s.name,
                    ));
                }
                if !group.is_empty() {
                    errs.not_supported(&at(&p, "apiGroup"), group, &[""]);
                }
                if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.required(&at(&p, "namespace"), "");
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    errs.not_supported(&at(&p, "apiGroup"), group, &[GROUP]);
                }
            }
            other => {
                errs.not_supported(&at(&p, "kind"), other, &["ServiceAccount", "User", "Group"])
            }
        }
    }
}

/// `path.IsValidPathSegmentName`: RBAC object names may be anything a URL
/// path segment can hold.
pub(crate) fn path_segment_errors(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    match name {
        "." => out.push("may not be '.'"),
        ".." => out.push("may not be '..'"),
        _ => {}
    }
    if name.contains('/') {
        out.push("may not contain '/'");
    }
    if name.contains('%') {
        out.push("may not contain '%'");
    }
    out
}

/// v1 defaults: a roleRef's apiGroup, and a User or Group subject's apiGroup.
pub(crate) fn defaults_role_binding(b: &mut RoleBinding) {
    defaults(&mut b.role_ref, b.subjects.as_mut());
}

/// v1 defaults (as [`defaults_role_binding`]).
pub(crate) fn defaults_cluster_role_binding(b: &mut ClusterRoleBinding) {
    defaults(&mut b.role_ref, b.subjects.as_mut());
}

fn defaults(r: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if r.api_group.is_empty() {
        r.api_group = GROUP.to_string();
    }
    for s in subjects.into_iter().flatten() {
        if s.api_group.as_deref().is_none_or(str::is_empty)
            && matches!(s.kind.as_str(), "User" | "Group")
        {
            s.api_group = Some(GROUP.to_string());
        }
    }
}
