//! ReplicationControllers (core/v1), as Kubernetes serves them: the selector
//! and labels defaulted from the template, a selector that does not match the
//! template refused with Kubernetes' message, the `scale` subresource, and
//! the controller keeping the replicas (pods it owns, made by the ReplicaSet
//! controller's core). No node runs here: pending pods are replicas all the same.

use crate::adoption::{controlled, labelled};
use crate::api::Api;
use crate::harness::{eventually, WAIT};
use ferry_api::object::{ListOptions, PatchType, Verb};
use serde_json::{json, Value};

const NS: Option<&str> = Some("default");
const RC: &str = "replicationcontrollers";

/// An RC manifest without a selector (the server defaults it).
fn rc(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
        }
    })
}

fn scale_req(verb: Verb, name: &str, body: Option<&Value>) -> ferry_api::object::ObjectRequest {
    let mut r = Api::req(verb, RC, NS, Some(name), body);
    r.subresource = Some("scale".into());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controllers_are_served_scaled_and_keep_their_replicas() {
    let (_cluster, api) = crate::api::with_controllers().await;

    // Created with its selector and labels defaulted from the template.
    let shop = api.create(RC, NS, &rc("shop", 2)).await;
    assert_eq!(shop["spec"]["selector"], json!({"app": "shop"}), "{shop}");
    assert_eq!(shop["metadata"]["labels"], json!({"app": "shop"}));
    assert_eq!(shop["metadata"]["generation"], 1);
    let got = api.get(RC, NS, "shop").await.expect("rc shop");
    assert_eq!(got["metadata"]["uid"], shop["metadata"]["uid"]);
    let (code, list) = api
        .list(
            RC,
            NS,
            ListOptions {
                label_selector: Some("app=shop".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!((code, Api::names(&list)), (200, vec!["shop".to_string()]));

    // The controller makes its pods, owned by it, and reports them.
    controlled(&api, "pods", "shop", &shop, 2).await;
    let (name, _) = &controlled(&api, "pods", "shop", &shop, 2).await[0];
    let p = api.get("pods", NS, name).await.expect("pod");
    let owner = &p["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["apiVersion"], &owner["kind"]),
        (&json!("v1"), &json!("ReplicationController")),
        "{p}"
    );
    eventually("status.replicas 2", WAIT, || async {
        let s = api.get(RC, NS, "shop").await?;
        (s["status"]["replicas"] == 2 && s["status"]["observedGeneration"] == 1).then_some(())
    })
    .await;

    // Scale: read, then patched up to 3 (the controller follows).
    let (code, s) = api.call(scale_req(Verb::Get, "shop", None)).await;
    assert_eq!(
        (
            code,
            &s["kind"],
            &s["spec"]["replicas"],
            &s["status"]["selector"]
        ),
        (200, &json!("Scale"), &json!(2), &json!("app=shop")),
        "{s}"
    );
    let (code, s) = api
        .patch(
            RC,
            NS,
            "shop",
            PatchType::Merge,
            &json!({"spec": {"replicas": 3}}),
            Some("scale"),
        )
        .await;
    assert_eq!((code, &s["spec"]["replicas"]), (200, &json!(3)), "{s}");
    controlled(&api, "pods", "shop", &shop, 3).await;

    // A selector that does not select the template's labels, and negative
    // replicas, are refused as Kubernetes refuses them.
    let mut bad = rc("bad", 1);
    bad["spec"]["selector"] = json!({"app": "other"});
    let (code, s) = api
        .call(Api::req(Verb::Create, RC, NS, None, Some(&bad)))
        .await;
    assert_eq!(
        (code, s["reason"].as_str(), s["message"].as_str()),
        (
            422,
            Some("Invalid"),
            Some("ReplicationController \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"bad\"}: `selector` does not match template `labels`")
        ),
        "{s}"
    );
    let (code, s) = api
        .call(Api::req(Verb::Create, RC, NS, None, Some(&rc("bad", -1))))
        .await;
    assert_eq!(
        (code, s["message"].as_str()),
        (
            422,
            Some("ReplicationController \"bad\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0")
        ),
        "{s}"
    );
    assert!(api.get(RC, NS, "bad").await.is_none());

    // Deleted, it takes its pods with it (the garbage collector).
    let (code, body) = api
        .delete(RC, NS, "shop", &json!({"propagationPolicy": "Background"}))
        .await;
    assert!(code == 200 || code == 202, "{code} {body}");
    eventually("the rc and its pods gone", WAIT, || async {
        (api.get(RC, NS, "shop").await.is_none() && labelled(&api, "pods", "shop").await.is_empty())
            .then_some(())
    })
    .await;
}
