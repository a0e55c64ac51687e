//! Which Ingresses ferry's ingress controller serves (pure; the nodes route
//! them, the control plane writes their status).
//!
//! As Kubernetes' controllers choose: an Ingress whose `ingressClassName`
//! (or the deprecated `kubernetes.io/ingress.class` annotation) names an
//! IngressClass of controller [`CONTROLLER`] — or names [`CLASS`] itself,
//! which the leader creates —, or one without a class while a default
//! IngressClass (annotation [`DEFAULT_CLASS_ANNOTATION`] `"true"`) of
//! controller [`CONTROLLER`] exists.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The IngressClass the leader creates when none exists.
pub const CLASS: &str = "ferry";
/// `spec.controller` of ferry's IngressClasses.
pub const CONTROLLER: &str = "ferry.dev/ingress";
/// The annotation that makes an IngressClass the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated class annotation on Ingresses.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

fn ours(c: &IngressClass) -> bool {
    c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
}

fn is_default(c: &IngressClass) -> bool {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether ferry serves `ing`, given every IngressClass.
pub fn served(ing: &Ingress, classes: &[IngressClass]) -> bool {
    let named = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION).cloned())
        })
        .filter(|n| !n.is_empty());
    match named {
        Some(name) => {
            name == CLASS
                || classes
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some(name.as_str()) && ours(c))
        }
        None => classes.iter().any(|c| is_default(c) && ours(c)),
    }
}

/// The Secrets (names, in the Ingress's namespace) `ing`'s `spec.tls`
/// names, sorted, without repeats: what the nodes serving it read.
pub fn tls_secrets(ing: &Ingress) -> Vec<String> {
    let mut out: Vec<String> = ing
        .spec
        .iter()
        .flat_map(|s| s.tls.iter().flatten())
        .filter_map(|t| t.secret_name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ing(v: serde_json::Value) -> Ingress {
        serde_json::from_value(v).unwrap()
    }
    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let ann = if default {
            json!({DEFAULT_CLASS_ANNOTATION: "true"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": ann},
            "spec": {"controller": controller},
        }))
        .unwrap()
    }

    #[test]
    fn classes_by_name_annotation_and_default() {
        let by_name =
            ing(json!({"metadata": {"name": "a"}, "spec": {"ingressClassName": "ferry"}}));
        let other = ing(json!({"metadata": {"name": "b"}, "spec": {"ingressClassName": "nginx"}}));
        let own = ing(json!({"metadata": {"name": "c"}, "spec": {"ingressClassName": "mine"}}));
        let annotated = ing(json!({"metadata": {"name": "d",
            "annotations": {CLASS_ANNOTATION: "ferry"}}, "spec": {}}));
        let none = ing(json!({"metadata": {"name": "e"}, "spec": {}}));
        let nginx = class("nginx", "k8s.io/ingress-nginx", true);
        let mine = class("mine", CONTROLLER, false);
        let ferry_default = class("ferry", CONTROLLER, true);
        assert!(served(&by_name, &[]), "class ferry without its object");
        assert!(!served(&other, &[nginx.clone(), mine.clone()]));
        assert!(served(&own, std::slice::from_ref(&mine)));
        assert!(!served(&own, &[]), "an unknown class of another name");
        assert!(served(&annotated, &[]));
        // No class: only when a default class is ferry's.
        assert!(!served(&none, &[nginx.clone(), mine.clone()]));
        assert!(served(&none, &[nginx, ferry_default]));
    }

    #[test]
    fn tls_secrets_are_the_named_ones() {
        let i = ing(json!({"metadata": {"name": "a"}, "spec": {"tls": [
            {"hosts": ["a.example"], "secretName": "s2"},
            {"hosts": ["b.example"], "secretName": "s1"},
            {"hosts": ["c.example"]},
            {"secretName": ""},
            {"secretName": "s2"}]}}));
        assert_eq!(tls_secrets(&i), ["s1", "s2"]);
        assert!(tls_secrets(&ing(json!({"metadata": {"name": "b"}}))).is_empty());
    }
}
