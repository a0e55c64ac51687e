//! The namespace controller's decisions, pure (kube-controller-manager's
//! `namespace` controller and its `NamespacedResourcesDeleter`): a namespace
//! with a `deletionTimestamp` has every namespaced object in it deleted (all
//! kinds), its status conditions written as Kubernetes words them, and once
//! nothing is left, its `kubernetes` finalizer removed (`namespaces/finalize`);
//! with no finalizer left at all, the namespace itself is deleted. Also the
//! service account controller's one rule: an active namespace has a
//! ServiceAccount `default`.

use crate::gc::{Object, Target};
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use std::collections::BTreeMap;

/// The finalizer the namespace controller owns (`spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// What to do for one terminating namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Content to delete (in the background, uid precondition).
    pub deletes: Vec<Target>,
    /// The status conditions to write, when they changed.
    pub conditions: Option<Vec<NamespaceCondition>>,
    /// The `spec.finalizers` to finalize with (the content is gone).
    pub finalize: Option<Vec<String>>,
    /// Whether to delete the namespace itself now (no finalizer is left).
    pub delete: bool,
}

fn condition(kind: &str, on: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: kind.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// `resource.group`, as Kubernetes prints a GroupResource.
fn group_resource(o: &Object) -> String {
    if o.res.group.is_empty() {
        o.res.plural.to_string()
    } else {
        format!("{}.{}", o.res.plural, o.res.group)
    }
}

/// How long after a namespace's deletion its content starts to go. Deleting
/// a manifest's objects one by one (`kubectl delete -f` of a Namespace and
/// what is in it) finds them still there, as on Kubernetes, whose namespace
/// controller takes about that long to begin; at once, every delete after
/// the Namespace's answered NotFound and kubectl exited 1.
pub const CONTENT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How much longer terminating namespace `ns` keeps its content (`None`:
/// not terminating, or its content may go now).
pub fn content_wait(ns: &Namespace, now: jiff::Timestamp) -> Option<std::time::Duration> {
    let since = ns.metadata.deletion_timestamp.as_ref()?.0;
    let elapsed = now.duration_since(since);
    let grace = jiff::SignedDuration::try_from(CONTENT_GRACE).ok()?;
    (elapsed < grace)
        .then(|| std::time::Duration::try_from(grace - elapsed).unwrap_or(CONTENT_GRACE))
}

/// The plan for `ns` (not terminating: nothing), given `content` (every
/// object in it, of every namespaced kind), the errors of the last pass's
/// deletes (`failures`) and the time now (RFC 3339, for new conditions).
pub fn reconcile(ns: &Namespace, content: &[Object], failures: &[String], now: &str) -> Plan {
    let mut plan = Plan::default();
    if ns.metadata.deletion_timestamp.is_none() {
        return plan;
    }
    plan.deletes = content
        .iter()
        .filter(|o| o.head.metadata.deletion_timestamp.is_none())
        .map(Object::target)
        .collect();
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for o in content {
        *remaining.entry(group_resource(o)).or_default() += 1;
        for f in o.head.metadata.finalizers.iter().flatten() {
            *finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    let content_failure = if failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                failures.len(),
                failures.join(", ")
            ),
        )
    };
    let content_remaining = if remaining.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let parts: Vec<String> = remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    };
    let finalizers_remaining = if finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let parts: Vec<String> = finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    };
    let wanted = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        content_failure,
        content_remaining,
        finalizers_remaining,
    ];
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    let mut new: Vec<NamespaceCondition> = old
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned()
        .collect();
    for mut w in wanted {
        match old.iter().find(|c| c.type_ == w.type_) {
            Some(c) if c.status == w.status => {
                w.last_transition_time = c.last_transition_time.clone();
                changed |= c.reason != w.reason || c.message != w.message;
            }
            _ => {
                w.last_transition_time = now
                    .parse()
                    .ok()
                    .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
                changed = true;
            }
        }
        new.push(w);
    }
    if changed {
        plan.conditions = Some(new);
    }
    if content.is_empty() && failures.is_empty() {
        let spec: Vec<String> = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if spec.iter().any(|f| f == FINALIZER) {
            plan.finalize = Some(spec.into_iter().filter(|f| f != FINALIZER).collect());
        } else if spec.is_empty()
            && ns
                .metadata
                .finalizers
                .as_deref()
                .unwrap_or_default()
                .is_empty()
        {
            plan.delete = true;
        }
    }
    plan
}

/// Whether an active namespace lacks its ServiceAccount `default`, given the
/// ServiceAccounts in it.
pub fn needs_default_account(ns: &Namespace, accounts: &[Object]) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && !accounts
            .iter()
            .any(|a| a.head.metadata.name.as_deref() == Some("default"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::resources::RESOURCES;
    use serde_json::{json, Value};
    use std::sync::Arc;

    const NOW: &str = "2026-12-06T05:00:00Z";

    fn ns(deleting: bool, spec_fins: &[&str], conditions: Value) -> Namespace {
        let mut v = json!({"metadata": {"name": "t", "uid": "u-t", "resourceVersion": "3"},
            "spec": {"finalizers": spec_fins}, "status": {"phase": "Active"}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-06T04:59:00Z");
            v["status"] = json!({"phase": "Terminating", "conditions": conditions});
        }
        serde_json::from_value(v).unwrap()
    }

    fn obj(kind: &str, name: &str, meta: Value) -> Object {
        let res = RESOURCES.iter().find(|r| r.kind == kind).unwrap();
        let mut m = json!({"name": name, "namespace": "t", "uid": format!("u-{name}")});
        for (k, v) in meta.as_object().cloned().unwrap_or_default() {
            m[k] = v;
        }
        Object {
            res,
            head: Arc::new(serde_json::from_value(json!({"metadata": m})).unwrap()),
        }
    }

    fn by_type(c: &[NamespaceCondition], t: &str) -> (String, String, String) {
        let c = c.iter().find(|c| c.type_ == t).unwrap();
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn an_active_namespace_is_left_alone() {
        let plan = reconcile(
            &ns(false, &["kubernetes"], json!(null)),
            &[obj("Pod", "p", json!({}))],
            &[],
            NOW,
        );
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_terminating_namespace_loses_its_content_with_kubernetes_conditions() {
        let content = vec![
            obj("Pod", "p1", json!({})),
            obj(
                "Pod",
                "p2",
                json!({"deletionTimestamp": NOW, "finalizers": ["x.io/wait"]}),
            ),
            obj("Deployment", "d", json!({})),
        ];
        let plan = reconcile(&ns(true, &["kubernetes"], json!(null)), &content, &[], NOW);
        let names: Vec<&str> = plan.deletes.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["p1", "d"],
            "one already deleting is not deleted again"
        );
        assert_eq!(plan.deletes[1].plural, "deployments");
        assert_eq!(plan.deletes[1].uid, "u-d");
        let c = plan.conditions.expect("conditions written");
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "NamespaceDeletionDiscoveryFailure",
                "NamespaceDeletionGroupVersionParsingFailure",
                "NamespaceDeletionContentFailure",
                "NamespaceContentRemaining",
                "NamespaceFinalizersRemaining"
            ]
        );
        assert_eq!(
            by_type(&c, "NamespaceContentRemaining"),
            (
                "True".into(),
                "SomeResourcesRemain".into(),
                "Some resources are remaining: deployments.apps has 1 resource instances, pods has 2 resource instances".into()
            )
        );
        assert_eq!(
            by_type(&c, "NamespaceFinalizersRemaining"),
            (
                "True".into(),
                "SomeFinalizersRemain".into(),
                "Some content in the namespace has finalizers remaining: x.io/wait in 1 resource instances".into()
            )
        );
        assert_eq!(by_type(&c, "NamespaceDeletionContentFailure").0, "False");
        assert!(c.iter().all(|c| c.last_transition_time.is_some()));
        assert_eq!(plan.finalize, None, "content remains");
        assert!(!plan.delete);
    }

    #[test]
    fn a_failed_delete_is_reported_and_holds_the_finalizer() {
        let plan = reconcile(
            &ns(true, &["kubernetes"], json!(null)),
            &[],
            &["pods \"p\": the server refused".into()],
            NOW,
        );
        let c = plan.conditions.unwrap();
        assert_eq!(
            by_type(&c, "NamespaceDeletionContentFailure"),
            (
                "True".into(),
                "ContentDeletionFailed".into(),
                "Failed to delete all resource types, 1 remaining: pods \"p\": the server refused"
                    .into()
            )
        );
        assert_eq!(plan.finalize, None);
    }

    #[test]
    fn an_empty_namespace_is_finalized_then_deleted_and_conditions_are_written_once() {
        let settled = json!([
            {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
             "message": "All resources successfully discovered", "lastTransitionTime": "2026-12-06T04:00:00Z"},
            {"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "reason": "ParsedGroupVersions",
             "message": "All legacy kube types successfully parsed", "lastTransitionTime": "2026-12-06T04:00:00Z"},
            {"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
             "message": "All content successfully deleted, may be waiting on finalization", "lastTransitionTime": "2026-12-06T04:00:00Z"},
            {"type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
             "message": "All content successfully removed", "lastTransitionTime": "2026-12-06T04:00:00Z"},
            {"type": "NamespaceFinalizersRemaining", "status": "False", "reason": "ContentHasNoFinalizers",
             "message": "All content-preserving finalizers finished", "lastTransitionTime": "2026-12-06T04:00:00Z"},
        ]);
        let plan = reconcile(
            &ns(true, &["kubernetes", "x.io/other"], settled.clone()),
            &[],
            &[],
            NOW,
        );
        assert_eq!(plan.conditions, None, "nothing changed");
        assert_eq!(plan.finalize, Some(vec!["x.io/other".to_string()]));
        assert!(!plan.delete);
        let plan = reconcile(&ns(true, &["x.io/other"], settled.clone()), &[], &[], NOW);
        assert_eq!(
            (plan.finalize, plan.delete),
            (None, false),
            "another finalizer's owner must act"
        );
        let plan = reconcile(&ns(true, &[], settled), &[], &[], NOW);
        assert_eq!((plan.finalize, plan.delete), (None, true));
    }

    #[test]
    fn active_namespaces_get_a_default_service_account() {
        let sa = obj("ServiceAccount", "default", json!({}));
        let other = obj("ServiceAccount", "builder", json!({}));
        assert!(needs_default_account(
            &ns(false, &[], json!(null)),
            std::slice::from_ref(&other)
        ));
        assert!(!needs_default_account(
            &ns(false, &[], json!(null)),
            &[sa, other]
        ));
        assert!(!needs_default_account(&ns(true, &[], json!(null)), &[]));
    }

    #[test]
    fn content_waits_its_grace_after_the_deletion() {
        let mut ns = Namespace::default();
        let at: jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        assert_eq!(content_wait(&ns, at), None, "not terminating");
        ns.metadata.deletion_timestamp = Some(crate::meta::time(at));
        let later = |ms: i64| at + jiff::SignedDuration::from_millis(ms);
        assert_eq!(
            content_wait(&ns, later(500)),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(content_wait(&ns, later(2000)), None);
        assert_eq!(content_wait(&ns, later(60_000)), None);
    }
}
