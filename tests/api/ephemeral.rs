//! `pods/ephemeralcontainers`: added by patch or update of the subresource
//! only, never changed or removed, authorized as the subresource.

use crate::api::{cluster, pod, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::{PatchType, Verb};
use serde_json::{json, Value};

const SUB: Option<&str> = Some("ephemeralcontainers");

fn names(p: &Value) -> Vec<String> {
    p["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_containers_are_added_through_their_subresource_only() {
    let (_c, api) = cluster().await;
    let ns = Some("default");
    eventually("namespace default", WAIT, || async {
        api.get("namespaces", None, "default").await
    })
    .await;
    let p = api.create("pods", ns, &pod("web")).await;

    // Not on create.
    let mut with_eph = pod("other");
    with_eph["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "busybox"}]);
    let (code, body) = api
        .call(Api::req(Verb::Create, "pods", ns, None, Some(&with_eph)))
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{body}"
    );

    // kubectl debug's strategic merge patch; other changes it carries are dropped.
    let debug = json!({"metadata": {"labels": {"sneaky": "yes"}},
        "spec": {"ephemeralContainers": [{"name": "debugger-abc", "image": "busybox",
            "resources": {}, "stdin": true, "tty": true, "terminationMessagePolicy": "File",
            "targetContainerName": "c"}]}});
    let (code, patched) = api
        .patch("pods", ns, "web", PatchType::Strategic, &debug, SUB)
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(names(&patched), ["debugger-abc"]);
    assert_eq!(patched["spec"]["ephemeralContainers"][0]["stdin"], true);
    assert!(
        patched["metadata"]["labels"].get("sneaky").is_none(),
        "{patched}"
    );
    assert_eq!(patched["spec"]["containers"], p["spec"]["containers"]);

    // GET of the subresource is the pod.
    let (code, got) = api
        .call({
            let mut r = Api::req(Verb::Get, "pods", ns, Some("web"), None);
            r.subresource = SUB.map(str::to_string);
            r
        })
        .await;
    assert_eq!(
        (code, names(&got)),
        (200, vec!["debugger-abc".to_string()]),
        "{got}"
    );

    // A second one by merge patch (a list replaced: the first must stay).
    let mut both = got["spec"]["ephemeralContainers"].clone();
    both.as_array_mut()
        .unwrap()
        .push(json!({"name": "second", "image": "busybox"}));
    let (code, two) = api
        .patch(
            "pods",
            ns,
            "web",
            PatchType::Merge,
            &json!({"spec": {"ephemeralContainers": both}}),
            SUB,
        )
        .await;
    assert_eq!(
        (code, names(&two)),
        (200, vec!["debugger-abc".into(), "second".into()]),
        "{two}"
    );

    // Refusals, in Kubernetes' words (a strategic patch puts what it adds first).
    let refusals: Vec<(Verb, Value, &str)> = vec![
        (
            Verb::Patch(PatchType::Strategic),
            json!({"spec": {"ephemeralContainers": [{"name": "c", "image": "busybox"}]}}),
            "spec.ephemeralContainers[0].name: Duplicate value: \"c\"",
        ),
        (
            Verb::Patch(PatchType::Strategic),
            json!({"spec": {"ephemeralContainers": [{"name": "p", "image": "busybox",
                "ports": [{"containerPort": 80}]}]}}),
            "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
        ),
        (
            Verb::Patch(PatchType::Merge),
            json!({"spec": {"ephemeralContainers": [{"name": "second", "image": "busybox"}]}}),
            "Forbidden: existing ephemeral containers \"debugger-abc\" may not be removed",
        ),
        (
            Verb::Patch(PatchType::Strategic),
            json!({"spec": {"ephemeralContainers": [{"name": "second", "image": "alpine"}]}}),
            "Forbidden: existing ephemeral containers \"second\" may not be changed",
        ),
    ];
    for (verb, body, want) in refusals {
        let mut r = Api::req(verb, "pods", ns, Some("web"), Some(&body));
        r.subresource = SUB.map(str::to_string);
        let (code, got) = api.call(r).await;
        assert_eq!(code, 422, "{want}: {got}");
        assert!(
            got["message"].as_str().unwrap().contains(want),
            "{want}: {got}"
        );
    }
    // A PUT removing them is refused as well.
    let mut none = two.clone();
    none["spec"]["ephemeralContainers"] = json!([]);
    let (code, got) = api.update("pods", ns, "web", &none, SUB).await;
    assert_eq!(code, 422, "{got}");
    // The pod itself cannot change them.
    let mut direct = two.clone();
    direct["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "third", "image": "busybox", "terminationMessagePolicy": "File",
                     "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "Always"}));
    let (code, got) = api.update("pods", ns, "web", &direct, None).await;
    assert_eq!(code, 422, "{got}");
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .contains("pod updates may not change fields other than"),
        "{got}"
    );
    // Other kinds have no such subresource.
    let (code, got) = api
        .patch("configmaps", ns, "x", PatchType::Merge, &json!({}), SUB)
        .await;
    assert!(code == 405 || code == 404, "{code} {got}");
    let stored = api.get("pods", ns, "web").await.unwrap();
    assert_eq!(names(&stored), ["debugger-abc", "second"]);
}
