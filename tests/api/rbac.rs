//! RBAC: a user certificate gets what Roles and bindings grant it, and
//! nothing more; access reviews; escalation prevention.

use crate::api::{cluster, configmap, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::Verb;
use ferry_api::tls::{Ca, Identity};
use ferry_api::Client;
use serde_json::{json, Value};
use std::sync::Arc;

/// A client for user `name` with `groups`, through master 0.
fn user(c: &crate::harness::TestCluster, name: &str, groups: &[&str]) -> Api {
    let data = &c.master(0).data;
    let pair = data.ca().unwrap();
    let ca = Ca::load(&pair.cert_pem, &pair.key_pem).unwrap();
    let cert = ca
        .issue(
            &Identity::User {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                uid: String::new(),
                extra: Default::default(),
            },
            &[],
        )
        .unwrap();
    let mut cfg =
        ferry_actors::master::admin_config(data, &[c.master(0).addr.to_string()]).unwrap();
    cfg.client_cert = cert.cert_pem;
    cfg.client_key = cert.key_pem;
    Api(Arc::new(Client::new(&cfg).unwrap()))
}

fn role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": name}, "rules": rules})
}

fn binding(name: &str, kind: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

/// `kubectl auth can-i VERB RESOURCE -n NS` as `api`.
async fn can_i(api: &Api, verb: &str, resource: &str, ns: &str) -> bool {
    let group = match resource {
        "roles" | "rolebindings" => "rbac.authorization.k8s.io",
        _ => "",
    };
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource}}});
    let (code, body) = api
        .call(Api::req(
            Verb::Create,
            "selfsubjectaccessreviews",
            None,
            None,
            Some(&review),
        ))
        .await;
    assert_eq!(code, 201, "{body}");
    body["status"]["allowed"].as_bool().expect("status.allowed")
}

async fn code(
    api: &Api,
    verb: Verb,
    resource: &str,
    ns: &str,
    name: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    api.call(Api::req(verb, resource, Some(ns), name, body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_binding_grants_a_user_its_roles_rules_in_its_namespace() {
    let (c, admin) = cluster().await;
    let alice = user(&c, "alice", &["dev"]);
    admin
        .create(
            "namespaces",
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
    // The default roles exist.
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
    ] {
        eventually(name, WAIT, || async {
            admin.get("clusterroles", None, name).await
        })
        .await;
    }
    eventually("cluster-admin binding", WAIT, || async {
        admin
            .get("clusterrolebindings", None, "cluster-admin")
            .await
    })
    .await;

    // The aggregation controller writes `admin`'s gathered rules into it:
    // its own (roles, rolebindings) and edit's, which holds view's.
    eventually("admin aggregated", WAIT, || async {
        let admin_role = admin.get("clusterroles", None, "admin").await?;
        let rules = admin_role["rules"].as_array()?;
        let has = |res: &str| {
            rules.iter().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x == res))
            })
        };
        (has("rolebindings") && has("pods/exec") && has("pods/log")).then_some(())
    })
    .await;

    // No grants: refused, in Kubernetes' words.
    let (got, body) = code(&alice, Verb::List, "configmaps", "team", None, None).await;
    assert_eq!(got, 403, "{body}");
    assert_eq!(
        body["message"],
        "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    // A named object is named, and a group's resource qualified.
    let (got, body) = code(&alice, Verb::Get, "configmaps", "team", Some("cfg"), None).await;
    assert_eq!(got, 403, "{body}");
    assert_eq!(
        body["message"],
        "configmaps \"cfg\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    let (got, body) = code(
        &alice,
        Verb::Delete,
        "deployments",
        "team",
        Some("web"),
        None,
    )
    .await;
    assert_eq!(got, 403, "{body}");
    assert_eq!(
        body["message"],
        "deployments.apps \"web\" is forbidden: User \"alice\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"team\""
    );

    admin
        .create(
            "roles",
            Some("team"),
            &role(
                "cm-reader",
                json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
            ),
        )
        .await;
    admin
        .create(
            "rolebindings",
            Some("team"),
            &binding("alice-reads", "Role", "cm-reader", "alice"),
        )
        .await;
    admin
        .create("configmaps", Some("team"), &configmap("a", json!({})))
        .await;
    // Every master's cache follows its watch: soon allowed.
    eventually("alice may list", WAIT, || async {
        let (got, _) = code(&alice, Verb::List, "configmaps", "team", None, None).await;
        (got == 200).then_some(())
    })
    .await;
    let (got, body) = code(&alice, Verb::Get, "configmaps", "team", Some("a"), None).await;
    assert_eq!(
        (got, body["data"]["k"].as_str()),
        (200, Some("v")),
        "{body}"
    );
    // Only what the Role says, only where the binding is.
    let (got, body) = code(
        &alice,
        Verb::Create,
        "configmaps",
        "team",
        None,
        Some(&configmap("b", json!({}))),
    )
    .await;
    assert_eq!(got, 403, "{body}");
    let (got, _) = code(&alice, Verb::List, "configmaps", "default", None, None).await;
    assert_eq!(got, 403);
    let (got, _) = code(&alice, Verb::List, "secrets", "team", None, None).await;
    assert_eq!(got, 403);

    // Access reviews say the same (kubectl auth can-i).
    assert!(can_i(&alice, "list", "configmaps", "team").await);
    assert!(!can_i(&alice, "create", "configmaps", "team").await);
    assert!(!can_i(&alice, "list", "configmaps", "default").await);
    let whoami = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let (got, body) = alice
        .call(Api::req(
            Verb::Create,
            "selfsubjectreviews",
            None,
            None,
            Some(&whoami),
        ))
        .await;
    assert_eq!(got, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!(["dev", "system:authenticated"])
    );
    let rules = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": "team"}});
    let (got, body) = alice
        .call(Api::req(
            Verb::Create,
            "selfsubjectrulesreviews",
            None,
            None,
            Some(&rules),
        ))
        .await;
    assert_eq!(got, 201, "{body}");
    let resource_rules = body["status"]["resourceRules"].as_array().unwrap();
    assert!(
        resource_rules.contains(
            &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]})
        ),
        "{body}"
    );

    // A member of system:masters is a cluster admin.
    let root = user(&c, "root", &["system:masters"]);
    let (got, _) = code(&root, Verb::List, "secrets", "kube-system", None, None).await;
    assert_eq!(got, 200);

    // Escalation: with the aggregated `admin` role in team, alice may make
    // Roles and bindings there, but grant only what she holds.
    admin
        .create(
            "rolebindings",
            Some("team"),
            &binding("alice-admin", "ClusterRole", "admin", "alice"),
        )
        .await;
    eventually("alice is admin in team", WAIT, || async {
        can_i(&alice, "create", "roles", "team").await.then_some(())
    })
    .await;
    let modest = role(
        "reader",
        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]),
    );
    let (got, body) = code(&alice, Verb::Create, "roles", "team", None, Some(&modest)).await;
    assert_eq!(got, 201, "{body}");
    let greedy = role(
        "greedy",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
    );
    let (got, body) = code(&alice, Verb::Create, "roles", "team", None, Some(&greedy)).await;
    assert_eq!(got, 403, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("roles.rbac.authorization.k8s.io \"greedy\" is forbidden: user \"alice\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"),
        "{msg}"
    );
    let (got, body) = code(
        &alice,
        Verb::Create,
        "rolebindings",
        "team",
        None,
        Some(&binding("bob-admin", "ClusterRole", "cluster-admin", "bob")),
    )
    .await;
    assert_eq!(got, 403, "{body}");
    let (got, body) = code(
        &alice,
        Verb::Create,
        "rolebindings",
        "team",
        None,
        Some(&binding("bob-reads", "Role", "reader", "bob")),
    )
    .await;
    assert_eq!(got, 201, "{body}");

    // Bad RBAC objects get Kubernetes' messages.
    let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bad"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Pod", "name": "x"},
        "subjects": [{"kind": "Robot", "name": "r"}]});
    let (got, body) = code(
        &admin,
        Verb::Create,
        "rolebindings",
        "team",
        None,
        Some(&bad),
    )
    .await;
    assert_eq!(got, 422, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\""
        ),
        "{msg}"
    );
    assert!(
        msg.contains("subjects[0].kind: Unsupported value: \"Robot\""),
        "{msg}"
    );
    drop(c);
}

/// `kubectl debug` needs `patch` on `pods/ephemeralcontainers`: `pods`
/// alone does not grant it, and the subresource alone grants nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_containers_are_authorized_as_their_subresource() {
    let (c, admin) = cluster().await;
    let bob = user(&c, "bob", &[]);
    eventually("namespace default", WAIT, || async {
        admin.get("namespaces", None, "default").await
    })
    .await;
    admin
        .create("pods", Some("default"), &crate::api::pod("web"))
        .await;
    admin
        .create(
            "roles",
            Some("default"),
            &role(
                "pod-writer",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch", "update"]}]),
            ),
        )
        .await;
    admin
        .create(
            "rolebindings",
            Some("default"),
            &binding("bob-pods", "Role", "pod-writer", "bob"),
        )
        .await;
    let debug = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}});
    let patch = |api: &Api| {
        let mut r = Api::req(
            Verb::Patch(ferry_api::object::PatchType::Strategic),
            "pods",
            Some("default"),
            Some("web"),
            Some(&debug),
        );
        r.subresource = Some("ephemeralcontainers".into());
        let api = Api(api.0.clone());
        async move { api.call(r).await }
    };
    eventually("bob may get pods", WAIT, || async {
        let (got, _) = code(&bob, Verb::Get, "pods", "default", Some("web"), None).await;
        (got == 200).then_some(())
    })
    .await;
    let (got, body) = patch(&bob).await;
    assert_eq!(got, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot patch resource \"pods/ephemeralcontainers\""),
        "{body}"
    );
    admin
        .create(
            "roles",
            Some("default"),
            &role(
                "debugger",
                json!([{"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch"]}]),
            ),
        )
        .await;
    admin
        .create(
            "rolebindings",
            Some("default"),
            &binding("bob-debugs", "Role", "debugger", "bob"),
        )
        .await;
    eventually("bob may debug", WAIT, || async {
        let (got, body) = patch(&bob).await;
        (got == 200).then_some(body)
    })
    .await;
}
