//! `metadata.generation` per kind, as Kubernetes 1.33 keeps it: 1 on create
//! and one more per spec change for Pods and the workload kinds (and
//! NetworkPolicies, Ingresses, PodDisruptionBudgets, EndpointSlices); none
//! for Services, ConfigMaps, Namespaces and the other kinds, whose client-set
//! value a create keeps and no update changes; one more when a deletion marks
//! an object that has one.

use crate::api::{cluster, configmap, pod, Api};
use ferry_api::object::PatchType;
use serde_json::{json, Value};

fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

/// Merge-patches `p` into `resource/name`; asserts 200, returns the object.
async fn patch(api: &Api, resource: &str, ns: Option<&str>, name: &str, p: Value) -> Value {
    let (code, v) = api
        .patch(resource, ns, name, PatchType::Merge, &p, None)
        .await;
    assert_eq!(code, 200, "patch {resource}/{name}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_is_kept_per_kind_as_kubernetes_1_33_keeps_it() {
    let (_c, api) = cluster().await;
    let ns = Some("default");

    // A Pod: 1 on create (a client's value ignored), one more per spec change,
    // none for labels or status.
    let mut p = pod("gen-pod");
    p["metadata"]["generation"] = json!(7);
    let made = api.create("pods", ns, &p).await;
    assert_eq!(generation(&made), Some(1), "{made}");
    let labelled = patch(
        &api,
        "pods",
        ns,
        "gen-pod",
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(generation(&labelled), Some(1));
    let image = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}});
    let changed = patch(&api, "pods", ns, "gen-pod", image).await;
    assert_eq!(generation(&changed), Some(2), "{changed}");
    let mut status = changed.clone();
    status["status"]["phase"] = json!("Running");
    let (code, v) = api
        .update("pods", ns, "gen-pod", &status, Some("status"))
        .await;
    assert_eq!((code, generation(&v)), (200, Some(2)), "{v}");

    // A Service, a ConfigMap, a Namespace: none, on create or update.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gen-svc"},
        "spec": {"ports": [{"port": 80}]}});
    let made = api.create("services", ns, &svc).await;
    assert_eq!(generation(&made), None, "{made}");
    let changed = patch(
        &api,
        "services",
        ns,
        "gen-svc",
        json!({"spec": {"ports": [{"port": 81}]}}),
    )
    .await;
    assert_eq!(generation(&changed), None, "{changed}");
    let made = api
        .create("configmaps", ns, &configmap("gen-cm", json!({})))
        .await;
    assert_eq!(generation(&made), None, "{made}");
    let changed = patch(
        &api,
        "configmaps",
        ns,
        "gen-cm",
        json!({"data": {"k": "w"}}),
    )
    .await;
    assert_eq!(generation(&changed), None, "{changed}");
    let made = api
        .create(
            "namespaces",
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gen-ns"}}),
        )
        .await;
    assert_eq!(generation(&made), None, "{made}");

    // A client's generation on such a kind is kept on create, and no update
    // moves it (Kubernetes' BeforeUpdate copies the stored one).
    let mut cm = configmap("gen-cm2", json!({}));
    cm["metadata"]["generation"] = json!(5);
    let made = api.create("configmaps", ns, &cm).await;
    assert_eq!(generation(&made), Some(5), "{made}");
    let changed = patch(
        &api,
        "configmaps",
        ns,
        "gen-cm2",
        json!({"metadata": {"generation": 9}, "data": {"k": "x"}}),
    )
    .await;
    assert_eq!(generation(&changed), Some(5), "{changed}");

    // A NetworkPolicy tracks its spec; a ResourceQuota and a Role do not.
    let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gen-np"}, "spec": {"podSelector": {}}});
    let made = api.create("networkpolicies", ns, &np).await;
    assert_eq!(generation(&made), Some(1), "{made}");
    let changed = patch(
        &api,
        "networkpolicies",
        ns,
        "gen-np",
        json!({"spec": {"podSelector": {"matchLabels": {"a": "b"}}}}),
    )
    .await;
    assert_eq!(generation(&changed), Some(2), "{changed}");
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gen-q"},
        "spec": {"hard": {"pods": "100"}}});
    let made = api.create("resourcequotas", Some("gen-ns"), &quota).await;
    assert_eq!(generation(&made), None, "{made}");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "gen-role"}, "rules": []});
    let made = api.create("roles", ns, &role).await;
    assert_eq!(generation(&made), None, "{made}");

    // A deletion that marks an object moves its generation (a finalizer
    // keeps it); an object without one stays without.
    let mut p = pod("gen-held");
    p["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create("pods", ns, &p).await;
    let (code, marked) = api.delete("pods", ns, "gen-held", &json!({})).await;
    assert_eq!((code, generation(&marked)), (202, Some(2)), "{marked}");
    let mut cm = configmap("gen-cm3", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create("configmaps", ns, &cm).await;
    let (code, marked) = api.delete("configmaps", ns, "gen-cm3", &json!({})).await;
    assert_eq!((code, generation(&marked)), (202, None), "{marked}");
}
