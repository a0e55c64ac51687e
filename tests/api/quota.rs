//! ResourceQuotas: counted by the quota controller, enforced at admission in
//! Kubernetes' words, and released when objects go.

use crate::api::Api;
use crate::harness::{eventually, TestCluster, WAIT};
use ferry_api::object::Verb;
use serde_json::{json, Value};

/// One master running the controllers (the quota controller recounts), and
/// namespace `ns`.
async fn with_controllers(ns: &str) -> (TestCluster, Api) {
    let (c, api) = crate::api::with_controllers().await;
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    (c, api)
}

fn pod(name: &str, cpu: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]}});
    if let Some(cpu) = cpu {
        p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_count_refuse_over_their_limits_and_release() {
    let (_c, api) = with_controllers("qa").await;
    api.create(
        "resourcequotas",
        Some("qa"),
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "2", "requests.cpu": "500m", "configmaps": "1"}}}),
    )
    .await;
    // The controller fills in the status before anything is charged.
    eventually("the quota counted", WAIT, || async {
        let q = api.get("resourcequotas", Some("qa"), "q").await?;
        (q["status"]["used"]["pods"] == "0").then_some(q)
    })
    .await;
    let create = |obj: Value, plural: &'static str| {
        let api = &api;
        async move {
            api.call(Api::req(Verb::Create, plural, Some("qa"), None, Some(&obj)))
                .await
        }
    };
    let (code, s) = create(pod("bare", None), "pods").await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"bare\" is forbidden: failed quota: q: must specify requests.cpu for: c"
    );
    assert_eq!(create(pod("a", Some("200m")), "pods").await.0, 201);
    let (code, s) = create(pod("b", Some("400m")), "pods").await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"b\" is forbidden: exceeded quota: q, requested: requests.cpu=400m, \
         used: requests.cpu=200m, limited: requests.cpu=500m"
    );
    assert_eq!(create(pod("b", Some("300m")), "pods").await.0, 201);
    let (code, s) = create(pod("c", Some("0")), "pods").await;
    assert_eq!(code, 403, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("requested: pods=1, used: pods=2, limited: pods=2"),
        "{s}"
    );
    let cm = |n: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
    assert_eq!(create(cm("one"), "configmaps").await.0, 201);
    assert_eq!(create(cm("two"), "configmaps").await.0, 403);
    let q = api.get("resourcequotas", Some("qa"), "q").await.unwrap();
    assert_eq!(q["status"]["used"]["requests.cpu"], "500m", "{q}");

    // A deleted pod is released by the recount; then another fits.
    let (code, _) = api
        .call(Api::req(
            Verb::Delete,
            "pods",
            Some("qa"),
            Some("a"),
            Some(&json!({"gracePeriodSeconds": 0})),
        ))
        .await;
    assert!(matches!(code, 200 | 202));
    eventually("the pod released", WAIT, || async {
        let q = api.get("resourcequotas", Some("qa"), "q").await?;
        (q["status"]["used"]["pods"] == "1").then_some(())
    })
    .await;
    assert_eq!(create(pod("c", Some("100m")), "pods").await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_containers() {
    let (_c, api) = crate::api::cluster().await;
    api.create(
        "limitranges",
        Some("default"),
        &json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
            "spec": {"limits": [{"type": "Container",
                "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                "max": {"cpu": "1"}}]}}),
    )
    .await;
    let p = api
        .create("pods", Some("default"), &pod("plain", None))
        .await;
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}),
        "{p}"
    );
    let mut big = pod("big", None);
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2"}});
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "pods",
            Some("default"),
            None,
            Some(&big),
        ))
        .await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    // A bad LimitRange is refused by name.
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "limitranges",
            Some("default"),
            None,
            Some(
                &json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
                "spec": {"limits": [{"type": "Node", "max": {"cpu": "lots"}}]}}),
            ),
        ))
        .await;
    assert_eq!(code, 422, "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.limits[0].type: Unsupported value: \"Node\""),
        "{msg}"
    );
    assert!(msg.contains("spec.limits[0].max[cpu]"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_bound_pods_and_claims() {
    let (_c, api) = crate::api::cluster().await;
    let create = |plural: &'static str, obj: Value| {
        let api = &api;
        async move {
            api.call(Api::req(
                Verb::Create,
                plural,
                Some("default"),
                None,
                Some(&obj),
            ))
            .await
        }
    };
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
        "spec": {"limits": [
            {"type": "Pod", "max": {"cpu": "2"}},
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}});
    let (code, s) = create("limitranges", lr).await;
    assert_eq!(code, 201, "{s}");
    let two = |name: &str, cpu: &str| {
        let c = |n: &str| {
            json!({"name": n, "image": "busybox",
            "resources": {"limits": {"cpu": cpu}, "requests": {"cpu": cpu}}})
        };
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [c("a"), c("b")]}})
    };
    assert_eq!(create("pods", two("fits", "1")).await.0, 201);
    let (code, s) = create("pods", two("big", "1500m")).await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"big\" is forbidden: maximum cpu usage per Pod is 2, but limit is 3"
    );
    let claim = |name: &str, size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    let (code, s) = create("persistentvolumeclaims", claim("small", "500Mi")).await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "persistentvolumeclaims \"small\" is forbidden: minimum storage usage per \
         PersistentVolumeClaim is 1Gi, but request is 500Mi"
    );
    let (code, s) = create("persistentvolumeclaims", claim("ok", "2Gi")).await;
    assert_eq!(code, 201, "{s}");
    // Pod items take no defaults; claim items must bound storage.
    let (code, s) = create(
        "limitranges",
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
            "spec": {"limits": [{"type": "Pod", "default": {"cpu": "1"}},
                {"type": "PersistentVolumeClaim", "max": {"cpu": "1"}},
                {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
                 "maxLimitRequestRatio": {"cpu": "500m"}},
                {"type": "Pod", "max": {"cpu": "1"}}]}}),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.limits[1].limits: Required value: either minimum or maximum storage value is required, but neither was provided"),
        "{msg}"
    );
    for want in [
        "spec.limits[2].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
        "spec.limits[2].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1",
        "spec.limits[3].type: Duplicate value: \"Pod\"",
    ] {
        assert!(msg.contains(want), "{want} in {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_quotas_count_only_the_pods_they_select() {
    let (_c, api) = with_controllers("sq").await;
    let create = |plural: &'static str, obj: Value| {
        let api = &api;
        async move {
            api.call(Api::req(Verb::Create, plural, Some("sq"), None, Some(&obj)))
                .await
        }
    };
    let quota = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": spec});
    // Kubernetes' refusals: BestEffort cannot limit cpu; scopes conflict.
    let (code, s) = create(
        "resourcequotas",
        quota(
            "bad",
            json!({"hard": {"requests.cpu": "1"}, "scopes": ["BestEffort"]}),
        ),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\"}: unsupported scope applied to resource"),
        "{s}"
    );
    let (code, s) = create(
        "resourcequotas",
        quota(
            "bad",
            json!({"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}),
        ),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("conflicting scopes"),
        "{s}"
    );
    let (code, s) = create(
        "resourcequotas",
        quota(
            "be",
            json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    let (code, s) = create(
        "resourcequotas",
        quota(
            "high",
            json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    let (code, s) = create(
        "priorityclasses",
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high"}, "value": 1000}),
    )
    .await;
    assert!(matches!(code, 201 | 409), "{s}");
    for q in ["be", "high"] {
        eventually("the quota counted", WAIT, || async {
            let q = api.get("resourcequotas", Some("sq"), q).await?;
            (q["status"]["used"]["pods"] == "0").then_some(q)
        })
        .await;
    }
    // Two burstable pods: neither quota selects them.
    for n in ["burst-1", "burst-2"] {
        let (code, s) = create("pods", pod(n, Some("100m"))).await;
        assert_eq!(code, 201, "{s}");
    }
    // One best-effort pod fits; the second is over the BestEffort quota.
    assert_eq!(create("pods", pod("be-1", None)).await.0, 201);
    let (code, s) = create("pods", pod("be-2", None)).await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"be-2\" is forbidden: exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1"
    );
    // A burstable pod of class high is counted by the PriorityClass quota only.
    let mut hi = pod("hi-1", Some("100m"));
    hi["spec"]["priorityClassName"] = json!("high");
    let (code, s) = create("pods", hi.clone()).await;
    assert_eq!(code, 201, "{s}");
    hi["metadata"]["name"] = json!("hi-2");
    let (code, s) = create("pods", hi).await;
    assert_eq!(code, 403, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota: high"),
        "{s}"
    );
    // The controller's recount agrees: one pod each.
    let (code, _) = api
        .call(Api::req(
            Verb::Update,
            "resourcequotas",
            Some("sq"),
            Some("be"),
            Some(&{
                let mut q = api.get("resourcequotas", Some("sq"), "be").await.unwrap();
                q["spec"]["hard"]["pods"] = json!("3");
                q
            }),
        ))
        .await;
    assert_eq!(code, 200);
    eventually("the BestEffort quota recounted", WAIT, || async {
        let q = api.get("resourcequotas", Some("sq"), "be").await?;
        (q["status"]["hard"]["pods"] == "3" && q["status"]["used"]["pods"] == "1").then_some(())
    })
    .await;
    // Scopes stay as they were.
    let mut q = api.get("resourcequotas", Some("sq"), "be").await.unwrap();
    q["spec"]["scopes"] = json!(["NotBestEffort"]);
    let (code, s) = api
        .call(Api::req(
            Verb::Update,
            "resourcequotas",
            Some("sq"),
            Some("be"),
            Some(&q),
        ))
        .await;
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable"),
        "{s}"
    );
}
