use super::*;
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    let r: k8s_openapi::api::rbac::v1::PolicyRule = serde_json::from_value(v).unwrap();
    Rule::from_k8s(&r)
}

fn res<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    sub: &'a str,
    name: &'a str,
) -> Request<'a> {
    Request::Resource {
        verb,
        group,
        resource,
        subresource: sub,
        name,
        namespace: "dev",
    }
}

#[test]
fn rules_match_verbs_groups_resources_names_and_urls() {
    let pods_read =
        rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
    let star = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    let logs = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}));
    let any_status =
        rule(json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/status"]}));
    let named = rule(
        json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
    );
    let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}));
    // (rule, request, allowed)
    let table: &[(&Rule, Request, bool)] = &[
        (&pods_read, res("get", "", "pods", "", "x"), true),
        (&pods_read, res("list", "", "pods", "", ""), true),
        (&pods_read, res("watch", "", "pods", "", ""), false),
        (&pods_read, res("get", "apps", "pods", "", "x"), false),
        (&pods_read, res("get", "", "pods", "log", "x"), false),
        (&pods_read, res("get", "", "services", "", "x"), false),
        (&star, res("delete", "apps", "deployments", "", "x"), true),
        (&star, res("create", "", "pods", "eviction", "x"), true),
        (&logs, res("get", "", "pods", "log", "x"), true),
        (&logs, res("get", "", "pods", "", "x"), false),
        (
            &any_status,
            res("update", "apps", "deployments", "status", "d"),
            true,
        ),
        (
            &any_status,
            res("update", "apps", "deployments", "", "d"),
            false,
        ),
        (&named, res("get", "", "configmaps", "", "a"), true),
        (&named, res("get", "", "configmaps", "", "b"), false),
        (&named, res("get", "", "configmaps", "", ""), false),
        (
            &urls,
            Request::NonResource {
                verb: "get",
                path: "/healthz",
            },
            true,
        ),
        (
            &urls,
            Request::NonResource {
                verb: "get",
                path: "/api/v1",
            },
            true,
        ),
        (
            &urls,
            Request::NonResource {
                verb: "get",
                path: "/apis",
            },
            false,
        ),
        (
            &urls,
            Request::NonResource {
                verb: "post",
                path: "/healthz",
            },
            false,
        ),
        (
            &pods_read,
            Request::NonResource {
                verb: "get",
                path: "/healthz",
            },
            false,
        ),
        (&urls, res("get", "", "pods", "", "x"), false),
    ];
    for (r, req, want) in table {
        assert_eq!(rule_allows(r, req), *want, "{r:?} {req:?}");
    }
}

fn objects() -> Objects {
    let role = |ns: &str, name: &str, rules: serde_json::Value| -> Role {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "rules": rules}))
            .unwrap()
    };
    let cr = |v: serde_json::Value| -> ClusterRole { serde_json::from_value(v).unwrap() };
    let rb = |ns: &str, kind: &str, role: &str, subjects: serde_json::Value| -> RoleBinding {
        serde_json::from_value(json!({"metadata": {"name": "b", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects}))
        .unwrap()
    };
    let crb = |role: &str, subjects: serde_json::Value| -> ClusterRoleBinding {
        serde_json::from_value(json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}))
        .unwrap()
    };
    let agg = |label: &str| json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
    Objects {
        roles: vec![role(
            "dev",
            "pod-reader",
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]),
        )],
        cluster_roles: vec![
            cr(json!({"metadata": {"name": "admin"}, "aggregationRule": agg("to-admin")})),
            cr(
                json!({"metadata": {"name": "edit", "labels": {"to-admin": "true"}}, "aggregationRule": agg("to-edit")}),
            ),
            cr(
                json!({"metadata": {"name": "view", "labels": {"to-edit": "true"}}, "aggregationRule": agg("to-view"), "rules": [{"verbs": ["stale"], "apiGroups": [""], "resources": ["x"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "agg-view", "labels": {"to-view": "true"}}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "agg-edit", "labels": {"to-edit": "true"}}, "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "agg-admin", "labels": {"to-admin": "true"}}, "rules": [{"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}]}),
            ),
            cr(
                json!({"metadata": {"name": "nodes-reader"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
            ),
        ],
        role_bindings: vec![
            rb(
                "dev",
                "Role",
                "pod-reader",
                json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]),
            ),
            rb(
                "dev",
                "ClusterRole",
                "edit",
                json!([{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]),
            ),
            rb(
                "dev",
                "ClusterRole",
                "view",
                json!([{"kind": "ServiceAccount", "name": "robot"}]),
            ),
            rb(
                "dev",
                "Role",
                "missing",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ],
        cluster_role_bindings: vec![crb(
            "nodes-reader",
            json!([{"kind": "User", "name": "carol", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "ServiceAccount", "name": "ops", "namespace": "kube-system"}]),
        )],
    }
}

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn bindings_grant_their_roles_where_they_apply() {
    let p = Policy::build(&objects());
    let in_ns = |ns: &'static str, verb: &'static str, resource: &'static str| Request::Resource {
        verb,
        group: "",
        resource,
        subresource: "",
        name: "",
        namespace: ns,
    };
    let alice = user("alice", &["system:authenticated"]);
    let bob = user("bob", &["devs", "system:authenticated"]);
    let robot = user(
        "system:serviceaccount:dev:robot",
        &["system:serviceaccounts"],
    );
    let other_robot = user("system:serviceaccount:prod:robot", &[]);
    let carol = user("carol", &[]);
    let ops = user("system:serviceaccount:kube-system:ops", &[]);
    let table: &[(&User, Request, bool)] = &[
        // A Role in dev, through a RoleBinding: only there.
        (&alice, in_ns("dev", "list", "pods"), true),
        (&alice, in_ns("prod", "list", "pods"), false),
        (&alice, in_ns("", "list", "pods"), false),
        (&alice, in_ns("dev", "delete", "pods"), false),
        // A group bound to an aggregated ClusterRole in dev: edit = agg-edit + view's aggregate.
        (&bob, in_ns("dev", "create", "configmaps"), true),
        (&bob, in_ns("dev", "get", "configmaps"), true),
        (&bob, in_ns("prod", "get", "configmaps"), false),
        (&bob, in_ns("dev", "create", "roles"), false),
        // view's stored rules are replaced by its aggregate.
        (&robot, in_ns("dev", "stale", "x"), false),
        (&robot, in_ns("dev", "get", "configmaps"), true),
        (&robot, in_ns("dev", "create", "configmaps"), false),
        // A ServiceAccount subject without a namespace means the binding's.
        (&other_robot, in_ns("dev", "get", "configmaps"), false),
        // ClusterRoleBindings apply everywhere, cluster scope included.
        (&carol, in_ns("", "get", "nodes"), true),
        (&carol, in_ns("dev", "get", "nodes"), true),
        (
            &carol,
            Request::NonResource {
                verb: "get",
                path: "/healthz",
            },
            true,
        ),
        (&ops, in_ns("", "get", "nodes"), true),
        (&alice, in_ns("", "get", "nodes"), false),
    ];
    for (u, req, want) in table {
        assert_eq!(p.allows(u, req), *want, "{} {req:?}", u.name);
    }
    // admin aggregates edit, which aggregates view: all three levels.
    let admin: Vec<_> = p
        .cluster_role("admin")
        .unwrap()
        .iter()
        .map(|r| r.verbs[0].clone())
        .collect();
    assert_eq!(admin, ["create", "create", "get"]);
    assert_eq!(p.rules_for(&alice, "dev").len(), 1);
    assert!(p.rules_for(&alice, "prod").is_empty());
}

#[test]
fn coverage_for_escalation_checks() {
    let owner = [
        rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        ),
        rule(json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]})),
        rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a", "b"]}),
        ),
        rule(json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/status"]})),
        rule(json!({"verbs": ["get"], "nonResourceURLs": ["/api/*"]})),
    ];
    let table: &[(serde_json::Value, bool)] = &[
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            true,
        ),
        (
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]}),
            true,
        ),
        (
            json!({"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}),
            false,
        ),
        (
            json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}),
            false,
        ),
        (
            json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["c"]}),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}),
            false,
        ),
        (
            json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments/status"]}),
            true,
        ),
        (
            json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/status"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "nonResourceURLs": ["/api/v1"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "nonResourceURLs": ["/api/*"]}),
            true,
        ),
        (
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis"]}),
            false,
        ),
        (json!({"verbs": ["get"], "nonResourceURLs": ["*"]}), false),
    ];
    for (servant, want) in table {
        let s = rule(servant.clone());
        let missing = uncovered(&owner, std::slice::from_ref(&s));
        assert_eq!(missing.is_empty(), *want, "{servant} missing {missing:?}");
    }
    let star = [
        rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})),
        rule(json!({"verbs": ["*"], "nonResourceURLs": ["*"]})),
    ];
    for (servant, _) in table {
        assert!(
            uncovered(&star, &[rule(servant.clone())]).is_empty(),
            "{servant}"
        );
    }
}
