//! Bad requests get a Kubernetes `Status` naming the problem, and write nothing.

use crate::api::{configmap, Api};

use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::tls::{Ca, Identity};
use ferry_api::Client;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_write_nothing() {
    let (c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let raw = |body: &[u8]| {
        let mut r = ObjectRequest::new(Verb::Create, "configmaps", ns, None);
        r.body = body.to_vec();
        r
    };
    let big = configmap("big", json!({}));
    let mut big = big;
    big["data"] = json!({"blob": "x".repeat(1_600_000)});
    let mut big_pod = crate::api::pod("huge");
    big_pod["spec"]["containers"][0]["args"] = json!(["y".repeat(1_600_000)]);
    let mut mismatch = configmap("m", json!({}));
    mismatch["metadata"]["namespace"] = json!("kube-system");
    let cases: Vec<(ObjectRequest, u16, &str)> = vec![
        (raw(b"{not json"), 400, "not valid JSON"),
        (raw(b"[1,2]"), 400, "must be a JSON object"),
        (
            Api::req(
                Verb::Create,
                "configmaps",
                ns,
                None,
                Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
            ),
            422,
            "name or generateName is required",
        ),
        (
            Api::req(
                Verb::Create,
                "gizmos",
                ns,
                None,
                Some(&configmap("g", json!({}))),
            ),
            404,
            "could not find the requested resource",
        ),
        (
            Api::req(Verb::Create, "configmaps", ns, None, Some(&mismatch)),
            400,
            "does not match the namespace",
        ),
        (
            Api::req(Verb::Create, "configmaps", ns, None, Some(&big)),
            422,
            "may not be more than 1048576 bytes",
        ),
        (
            Api::req(Verb::Create, "pods", ns, None, Some(&big_pod)),
            413,
            "the limit is 1572864 bytes",
        ),
        (
            Api::req(
                Verb::Create,
                "configmaps",
                ns,
                None,
                Some(&configmap("Bad_Name", json!({}))),
            ),
            422,
            "metadata.name: Invalid value: \"Bad_Name\"",
        ),
        (
            Api::req(
                Verb::Create,
                "configmaps",
                ns,
                None,
                Some(
                    &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "dataa": {}}),
                ),
            ),
            400,
            "unknown field \"dataa\"",
        ),
        (
            Api::req(
                Verb::Create,
                "configmaps",
                ns,
                None,
                Some(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}})),
            ),
            400,
            "Secret",
        ),
        (
            Api::req(
                Verb::Create,
                "deployments",
                ns,
                None,
                Some(
                    &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}}),
                ),
            ),
            400,
            "spec.replicas",
        ),
        (
            Api::req(Verb::Get, "configmaps", ns, None, None),
            400,
            "needs an object name",
        ),
        (
            Api::req(Verb::Get, "configmaps", Some("Bad_NS"), Some("x"), None),
            400,
            "metadata.namespace",
        ),
        (
            Api::req(
                Verb::Delete,
                "configmaps",
                ns,
                Some("x"),
                Some(&json!({"propagationPolicy": "Sideways"})),
            ),
            400,
            "Unsupported value",
        ),
    ];
    for (req, code, want) in cases {
        let what = format!(
            "{:?} {} {:?}",
            req.verb,
            req.resource,
            String::from_utf8_lossy(&req.body[..req.body.len().min(80)])
        );
        let (got, body) = api.call(req).await;
        assert_eq!(got, code, "{what}: {body}");
        assert_eq!(body["kind"], "Status", "{what}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{what}: {msg}");
    }
    let (_, list) = api.list("configmaps", ns, Default::default()).await;
    assert!(Api::names(&list).is_empty(), "nothing written: {list}");

    // A user certificate without RBAC grants may not write; the message says who and what.
    let data = &c.master(0).data;
    let pair = data.ca().unwrap();
    let ca = Ca::load(&pair.cert_pem, &pair.key_pem).unwrap();
    let user = ca
        .issue(
            &Identity::User {
                name: "alice".into(),
                groups: vec!["dev".into()],
                uid: String::new(),
                extra: Default::default(),
            },
            &[],
        )
        .unwrap();
    let mut cfg =
        ferry_actors::master::admin_config(data, &[c.master(0).addr.to_string()]).unwrap();
    cfg.client_cert = user.cert_pem;
    cfg.client_key = user.key_pem;
    let alice = Api(Arc::new(Client::new(&cfg).unwrap()));
    let (code, body) = alice
        .call(Api::req(
            Verb::Create,
            "configmaps",
            ns,
            None,
            Some(&configmap("a", json!({}))),
        ))
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"alice\" cannot create resource \"configmaps\""),
        "{body}"
    );
}
