//! Service-account tokens: TokenRequest, bearer authentication on the HTTPS
//! front end (RBAC for the service account), bound tokens dying with their
//! pod, anonymous requests refused.

use crate::api::{cluster, configmap, pod, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::Verb;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTPS/1.1 to `addr` with an optional bearer token and no
/// client certificate; the status code and JSON body.
async fn get(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    request(addr, ca_pem, "GET", path, token, None).await
}

/// `method path` with an optional JSON body, as [`get`].
async fn request(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let cfg = ferry_api::tls::https_client_config_without_cert(ca_pem, &[b"http/1.1"]).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ferry_api::MASTER_SERVER_NAME).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: ferry\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let code: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    // A chunked body: the JSON is between the first chunk size line and the end.
    let json = body
        .find('{')
        .and_then(|i| body.rfind('}').map(|j| &body[i..=j]))
        .unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn token_request(api: &Api, ns: &str, sa: &str, spec: Value) -> (u16, Value) {
    let mut r = Api::req(
        Verb::Create,
        "serviceaccounts",
        Some(ns),
        Some(sa),
        Some(
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        ),
    );
    r.subresource = Some("token".into());
    api.call(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_authenticate_and_die_with_their_pod() {
    let (c, admin) = cluster().await;
    let addr = c.master(1).https_addr;
    let ca_pem = c.master(0).data.ca().unwrap().cert_pem;
    admin
        .create(
            "namespaces",
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
    let sa = admin
        .create(
            "serviceaccounts",
            Some("team"),
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}),
        )
        .await;
    admin
        .create("configmaps", Some("team"), &configmap("a", json!({})))
        .await;
    let p = admin.create("pods", Some("team"), &pod("p1")).await;

    // Anonymous: 401.
    let list = "/api/v1/namespaces/team/configmaps";
    let (code, body) = get(addr, &ca_pem, list, None).await;
    assert_eq!(code, 401, "{body}");

    // TokenRequest: too short a life is refused; a missing account is 404.
    let (code, body) =
        token_request(&admin, "team", "robot", json!({"expirationSeconds": 60})).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not specify a duration less than 10 minutes"),
        "{body}"
    );
    let (code, _) = token_request(&admin, "team", "nobody", json!({})).await;
    assert_eq!(code, 404);
    let (code, tr) = eventually("a token (the signing key exists)", WAIT, || async {
        let (code, tr) = token_request(&admin, "team", "robot", json!({})).await;
        (code != 503).then_some((code, tr))
    })
    .await;
    assert_eq!(code, 201, "{tr}");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    let (code, bound) = token_request(
        &admin,
        "team",
        "robot",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1"}}),
    )
    .await;
    assert_eq!(code, 201, "{bound}");
    assert_eq!(bound["spec"]["boundObjectRef"]["uid"], p["metadata"]["uid"]);
    let bound = bound["status"]["token"].as_str().unwrap().to_string();

    // A node asks for tokens bound to its own pods only (what its agent
    // mounts at /var/run/secrets/kubernetes.io/serviceaccount).
    let node = {
        let data = &c.master(0).data;
        let pair = data.ca().unwrap();
        let ca = ferry_api::tls::Ca::load(&pair.cert_pem, &pair.key_pem).unwrap();
        let cert = ca
            .issue(&ferry_api::tls::Identity::Node("n1".into()), &[])
            .unwrap();
        let mut cfg =
            ferry_actors::master::admin_config(data, &[c.master(0).addr.to_string()]).unwrap();
        cfg.client_cert = cert.cert_pem;
        cfg.client_key = cert.key_pem;
        Api(Arc::new(ferry_api::Client::new(&cfg).unwrap()))
    };
    let mut on_n1 = pod("on-n1");
    on_n1["spec"]["nodeName"] = json!("n1");
    on_n1["spec"]["serviceAccountName"] = json!("robot");
    admin.create("pods", Some("team"), &on_n1).await;
    let bind =
        |pod: &str| json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod}});
    let (code, body) = token_request(&node, "team", "robot", bind("on-n1")).await;
    assert_eq!(code, 201, "{body}");
    for (sa, spec) in [
        ("robot", bind("p1")),
        ("default", bind("on-n1")),
        ("robot", json!({})),
    ] {
        let (code, body) = token_request(&node, "team", sa, spec.clone()).await;
        assert_eq!(code, 403, "{sa} {spec}: {body}");
    }

    // Garbage: 401. A good token without grants: 403 naming the account.
    let (code, _) = get(addr, &ca_pem, list, Some("not.a.token")).await;
    assert_eq!(code, 401);
    let (code, body) = eventually("the key on every master", WAIT, || async {
        let (code, body) = get(addr, &ca_pem, list, Some(&token)).await;
        (code != 401).then_some((code, body))
    })
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "configmaps is forbidden: User \"system:serviceaccount:team:robot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );

    // Granted through its ServiceAccount subject (and the group all of them share).
    admin
        .create(
            "roles",
            Some("team"),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
        )
        .await;
    admin
        .create(
            "rolebindings",
            Some("team"),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "robot"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}),
        )
        .await;
    for t in [&token, &bound] {
        let (code, body) = eventually("the robot may list", WAIT, || async {
            let (code, body) = get(addr, &ca_pem, list, Some(t)).await;
            (code == 200).then_some((code, body))
        })
        .await;
        assert_eq!(
            (code, body["items"][0]["metadata"]["name"].as_str()),
            (200, Some("a"))
        );
    }
    // `kubectl auth whoami` with the bound token: the account's uid and the
    // pod it is bound to, as Kubernetes reports them.
    let whoami = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let (code, body) = request(addr, &ca_pem, "POST", path, Some(&bound), Some(&whoami)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "system:serviceaccount:team:robot", "uid": sa["metadata"]["uid"],
            "groups": ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": ["p1"],
                      "authentication.kubernetes.io/pod-uid": [p["metadata"]["uid"]]}})
    );

    // The bound token dies with its pod; the unbound one lives on.
    let del = Api::req(
        Verb::Delete,
        "pods",
        Some("team"),
        Some("p1"),
        Some(&json!({"gracePeriodSeconds": 0})),
    );
    let (code, body) = admin.call(del).await;
    assert!(matches!(code, 200 | 202), "{body}");
    eventually("the bound token refused", WAIT, || async {
        let (code, _) = get(addr, &ca_pem, list, Some(&bound)).await;
        (code == 401).then_some(())
    })
    .await;
    let (code, _) = get(addr, &ca_pem, list, Some(&token)).await;
    assert_eq!(code, 200);
    // And every token dies with its ServiceAccount.
    let (code, _) = admin
        .call(Api::req(
            Verb::Delete,
            "serviceaccounts",
            Some("team"),
            Some("robot"),
            None,
        ))
        .await;
    assert_eq!(code, 200);
    eventually("the token refused", WAIT, || async {
        let (code, _) = get(addr, &ca_pem, list, Some(&token)).await;
        (code == 401).then_some(())
    })
    .await;
    drop(c);
}
