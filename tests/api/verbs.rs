//! create / get / update / patch and the status, scale and binding subresources.

use crate::api::{configmap, deployment, pod, rv, Api};
use crate::harness::TestCluster;
use ferry_api::object::PatchType;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_and_subresource_on_three_masters() {
    let c = TestCluster::new(3).await;
    let api = Api(c.client.clone());
    let ns = Some("default");
    // The default namespaces appear once a leader exists.
    crate::harness::eventually("namespace default", crate::harness::WAIT, || async {
        api.get("namespaces", None, "default").await
    })
    .await;

    // create: system metadata is set, resourceVersion is the store revision.
    let d = api.create("deployments", ns, &deployment("web", 2)).await;
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(d["metadata"]["creationTimestamp"].is_string());
    let (code, dup) = api
        .call(Api::req(
            ferry_api::object::Verb::Create,
            "deployments",
            ns,
            None,
            Some(&deployment("web", 1)),
        ))
        .await;
    assert_eq!(
        (code, dup["reason"].as_str()),
        (409, Some("AlreadyExists")),
        "{dup}"
    );

    // generateName.
    let mut g = configmap("", json!({}));
    g["metadata"] = json!({"generateName": "gen-"});
    let made = api.create("configmaps", ns, &g).await;
    let name = made["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // get from every master's connection sees the same object.
    for i in 0..3 {
        let local = Api(c.local_arc(i));
        let got = local.get("deployments", ns, "web").await.expect("exists");
        assert_eq!(got["metadata"]["uid"], d["metadata"]["uid"]);
    }

    // update: spec change bumps generation; stale resourceVersion is a 409.
    let mut u = d.clone();
    u["spec"]["replicas"] = json!(3);
    let (code, u1) = api.update("deployments", ns, "web", &u, None).await;
    assert_eq!(code, 200, "{u1}");
    assert_eq!(u1["metadata"]["generation"], 2);
    assert!(rv(&u1).parse::<u64>().unwrap() > rv(&d).parse::<u64>().unwrap());
    let (code, stale) = api.update("deployments", ns, "web", &u, None).await;
    assert_eq!(
        (code, stale["reason"].as_str()),
        (409, Some("Conflict")),
        "{stale}"
    );
    assert!(stale["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));

    // An update cannot change status; the status subresource cannot change spec.
    let mut with_status = u1.clone();
    with_status["status"] = json!({"replicas": 7});
    let (_, u2) = api
        .update("deployments", ns, "web", &with_status, None)
        .await;
    assert!(u2["status"].get("replicas").is_none(), "{u2}");
    let mut st = u2.clone();
    st["status"] = json!({"replicas": 3, "readyReplicas": 1});
    st["spec"]["replicas"] = json!(9);
    let (code, u3) = api
        .update("deployments", ns, "web", &st, Some("status"))
        .await;
    assert_eq!(code, 200, "{u3}");
    assert_eq!(
        (
            u3["status"]["readyReplicas"].clone(),
            u3["spec"]["replicas"].clone()
        ),
        (json!(1), json!(3))
    );

    // patches: merge, JSON, strategic (container merged by name, Kubernetes' order).
    let (code, p1) = api
        .patch(
            "deployments",
            ns,
            "web",
            PatchType::Merge,
            &json!({"metadata": {"labels": {"tier": "front"}}}),
            None,
        )
        .await;
    assert_eq!(
        (code, p1["metadata"]["labels"]["tier"].as_str()),
        (200, Some("front")),
        "{p1}"
    );
    let jp = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}, {"op": "test", "path": "/metadata/name", "value": "web"}]);
    let (code, p2) = api
        .patch("deployments", ns, "web", PatchType::Json, &jp, None)
        .await;
    assert_eq!(
        (code, p2["spec"]["replicas"].clone()),
        (200, json!(4)),
        "{p2}"
    );
    let bad_test = json!([{"op": "test", "path": "/spec/replicas", "value": 99}]);
    let (code, _) = api
        .patch("deployments", ns, "web", PatchType::Json, &bad_test, None)
        .await;
    assert_eq!(code, 422);
    let sp = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:1"}]}}}});
    let (code, p3) = api
        .patch("deployments", ns, "web", PatchType::Strategic, &sp, None)
        .await;
    assert_eq!(code, 200, "{p3}");
    let names: Vec<&str> = p3["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // Kubernetes' order: what the patch adds goes before the live items.
    assert_eq!(names, ["sidecar", "c"]);
    // A patch pinned to a stale resourceVersion conflicts.
    let pinned = json!({"metadata": {"resourceVersion": rv(&d)}, "spec": {"replicas": 1}});
    let (code, _) = api
        .patch("deployments", ns, "web", PatchType::Merge, &pinned, None)
        .await;
    assert_eq!(code, 409);

    // scale subresource.
    let mut get_scale = Api::req(
        ferry_api::object::Verb::Get,
        "deployments",
        ns,
        Some("web"),
        None,
    );
    get_scale.subresource = Some("scale".into());
    let (code, s) = api.call(get_scale).await;
    assert_eq!(
        (code, s["kind"].as_str(), s["spec"]["replicas"].clone()),
        (200, Some("Scale"), json!(4)),
        "{s}"
    );
    assert_eq!(s["status"]["selector"], "app=web");
    let (code, s2) = api
        .patch(
            "deployments",
            ns,
            "web",
            PatchType::Merge,
            &json!({"spec": {"replicas": 6}}),
            Some("scale"),
        )
        .await;
    assert_eq!(
        (code, s2["spec"]["replicas"].clone()),
        (200, json!(6)),
        "{s2}"
    );
    assert_eq!(
        api.get("deployments", ns, "web").await.unwrap()["spec"]["replicas"],
        6
    );
    let (code, _) = api
        .patch(
            "configmaps",
            ns,
            name,
            PatchType::Merge,
            &json!({"spec": {"replicas": 1}}),
            Some("scale"),
        )
        .await;
    assert_eq!(code, 404);

    // binding: assigns once.
    api.create("pods", ns, &pod("p1")).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "n1"}});
    let mut b = Api::req(
        ferry_api::object::Verb::Create,
        "pods",
        ns,
        Some("p1"),
        Some(&binding),
    );
    b.subresource = Some("binding".into());
    let (code, _) = api.call(b.clone()).await;
    assert_eq!(code, 201);
    let p = api.get("pods", ns, "p1").await.unwrap();
    assert_eq!(p["spec"]["nodeName"], "n1");
    let (code, again) = api.call(b).await;
    assert_eq!(code, 409, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already assigned"),
        "{again}"
    );

    // dry run stores nothing.
    let mut dry = Api::req(
        ferry_api::object::Verb::Create,
        "configmaps",
        ns,
        None,
        Some(&configmap("dry", json!({}))),
    );
    dry.dry_run = true;
    assert_eq!(api.call(dry).await.0, 201);
    assert!(api.get("configmaps", ns, "dry").await.is_none());
}
