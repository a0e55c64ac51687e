//! Deletion: finalizers, grace periods, the three propagation policies,
//! preconditions, and namespace lifecycle.

use crate::api::{configmap, pod, rv, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::{PatchType, Verb};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn owned_by(name: &str, owner: &Value) -> Value {
    let mut d = configmap(name, json!({}));
    d["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": true
    }]);
    d
}

async fn gone(api: &Api, ns: Option<&str>, name: &str) {
    eventually(&format!("{name} to be deleted"), WAIT, || async {
        api.get("configmaps", ns, name)
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_grace_and_propagation() {
    let (_cluster, api) = crate::api::cluster().await;
    let ns = Some("default");

    // A finalizer holds the object, marked, until it is removed.
    let mut held = configmap("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create("configmaps", ns, &held).await;
    let (code, marked) = api.delete("configmaps", ns, "held", &json!({})).await;
    assert_eq!(code, 202, "{marked}");
    let still = api
        .get("configmaps", ns, "held")
        .await
        .expect("held by its finalizer");
    assert!(still["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = api
        .patch(
            "configmaps",
            ns,
            "held",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        api.get("configmaps", ns, "held").await.is_none(),
        "removing the last finalizer deletes"
    );

    // Preconditions.
    let p = api
        .create("configmaps", ns, &configmap("pre", json!({})))
        .await;
    let (code, e) = api
        .delete(
            "configmaps",
            ns,
            "pre",
            &json!({"preconditions": {"uid": "not-it"}}),
        )
        .await;
    assert_eq!(code, 409, "{e}");
    let (code, _) = api
        .delete(
            "configmaps",
            ns,
            "pre",
            &json!({"preconditions": {"uid": p["metadata"]["uid"]}}),
        )
        .await;
    assert_eq!(code, 200);

    // Background: the owner goes at once, the collector removes dependents.
    let owner = api
        .create("configmaps", ns, &configmap("bg-owner", json!({})))
        .await;
    for d in ["bg-1", "bg-2"] {
        api.create("configmaps", ns, &owned_by(d, &owner)).await;
    }
    let (code, _) = api
        .delete(
            "configmaps",
            ns,
            "bg-owner",
            &json!({"propagationPolicy": "Background"}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(api.get("configmaps", ns, "bg-owner").await.is_none());
    gone(&api, ns, "bg-1").await;
    gone(&api, ns, "bg-2").await;

    // Orphan: dependents stay, without the owner reference.
    let owner = api
        .create("configmaps", ns, &configmap("or-owner", json!({})))
        .await;
    api.create("configmaps", ns, &owned_by("or-1", &owner))
        .await;
    api.delete(
        "configmaps",
        ns,
        "or-owner",
        &json!({"propagationPolicy": "Orphan"}),
    )
    .await;
    gone(&api, ns, "or-owner").await;
    let orphan = api
        .get("configmaps", ns, "or-1")
        .await
        .expect("orphan kept");
    assert!(
        orphan["metadata"].get("ownerReferences").is_none(),
        "{orphan}"
    );

    // Foreground: the owner waits, marked, until its dependents are gone.
    let owner = api
        .create("configmaps", ns, &configmap("fg-owner", json!({})))
        .await;
    let mut dep = owned_by("fg-1", &owner);
    dep["metadata"]["finalizers"] = json!(["example.com/slow"]);
    api.create("configmaps", ns, &dep).await;
    let (code, o) = api
        .delete(
            "configmaps",
            ns,
            "fg-owner",
            &json!({"propagationPolicy": "Foreground"}),
        )
        .await;
    assert_eq!(code, 202, "{o}");
    eventually("fg-1 marked for deletion", WAIT, || async {
        api.get("configmaps", ns, "fg-1")
            .await
            .filter(|d| d["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    let o = api
        .get("configmaps", ns, "fg-owner")
        .await
        .expect("owner waits for its dependent");
    assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    api.patch(
        "configmaps",
        ns,
        "fg-1",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        None,
    )
    .await;
    gone(&api, ns, "fg-1").await;
    gone(&api, ns, "fg-owner").await;

    // Pods: unbound ones go at once; bound ones are marked with a grace period.
    api.create("pods", ns, &pod("loose")).await;
    assert_eq!(api.delete("pods", ns, "loose", &json!({})).await.0, 200);
    assert!(api.get("pods", ns, "loose").await.is_none());
    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("n1");
    api.create("pods", ns, &bound).await;
    let (code, m) = api
        .delete("pods", ns, "bound", &json!({"gracePeriodSeconds": 30}))
        .await;
    assert_eq!(code, 202, "{m}");
    let b = api.get("pods", ns, "bound").await.expect("terminating");
    assert_eq!(b["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(
        api.delete("pods", ns, "bound", &json!({"gracePeriodSeconds": 0}))
            .await
            .0,
        200
    );
    assert!(api.get("pods", ns, "bound").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_must_exist_and_terminate_with_their_content() {
    let (_cluster, api) = crate::api::cluster().await;
    let (code, e) = api
        .call(Api::req(
            ferry_api::object::Verb::Create,
            "configmaps",
            Some("nowhere"),
            None,
            Some(&configmap("x", json!({}))),
        ))
        .await;
    assert_eq!(
        (code, e["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found")),
        "{e}"
    );
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}),
    )
    .await;
    for i in 0..3 {
        api.create(
            "configmaps",
            Some("tmp"),
            &configmap(&format!("c{i}"), json!({})),
        )
        .await;
    }
    // One object holds a finalizer, so the namespace stays terminating until it goes.
    let mut held = configmap("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create("configmaps", Some("tmp"), &held).await;
    let (code, ns) = api.delete("namespaces", None, "tmp", &json!({})).await;
    assert_eq!(code, 202, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    // The collector empties it down to the held object, which it marks (two
    // writes: the others may be gone before the mark lands).
    eventually(
        "namespace tmp to be emptied but for the held object, marked",
        WAIT,
        || async {
            let (_, left) = api
                .list("configmaps", Some("tmp"), Default::default())
                .await;
            let marked = left["items"].as_array().is_some_and(|i| {
                i.iter()
                    .all(|o| o["metadata"]["deletionTimestamp"].is_string())
            });
            (Api::names(&left) == ["held"] && marked).then_some(())
        },
    )
    .await;
    // The namespace controller's conditions say what holds it, in Kubernetes' words.
    let conditions = eventually(
        "the namespace's conditions to name the held object",
        WAIT,
        || async {
            let ns = api.get("namespaces", None, "tmp").await?;
            let cs = ns["status"]["conditions"].as_array()?.clone();
            let find = |t: &str| cs.iter().find(|c| c["type"] == t).cloned();
            let remaining = find("NamespaceContentRemaining")?;
            (remaining["message"]
                == "Some resources are remaining: configmaps has 1 resource instances")
                .then_some((
                    ns,
                    find("NamespaceFinalizersRemaining")?,
                    find("NamespaceDeletionContentFailure")?,
                ))
        },
    )
    .await;
    let (ns, fins, failure) = conditions;
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]), "{ns}");
    assert_eq!(
        (fins["status"].as_str(), fins["reason"].as_str(), fins["message"].as_str()),
        (
            Some("True"),
            Some("SomeFinalizersRemain"),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        ),
        "{ns}"
    );
    assert_eq!(
        (failure["status"].as_str(), failure["reason"].as_str()),
        (Some("False"), Some("ContentDeleted"))
    );
    // New content is refused exactly as Kubernetes' NamespaceLifecycle refuses it.
    let (code, e) = api
        .call(Api::req(
            ferry_api::object::Verb::Create,
            "configmaps",
            Some("tmp"),
            None,
            Some(&configmap("late", json!({}))),
        ))
        .await;
    assert_eq!(
        e,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "code": 403, "reason": "Forbidden",
            "message": "configmaps \"late\" is forbidden: unable to create new content in \
                        namespace tmp because it is being terminated",
            "details": {"name": "late", "kind": "configmaps", "causes": [{
                "reason": "NamespaceTerminating",
                "message": "namespace tmp is being terminated",
                "field": "metadata.namespace",
            }]},
        }),
        "{code}"
    );
    assert_eq!(code, 403);
    assert!(api.get("namespaces", None, "tmp").await.is_some());
    // Releasing the held object lets the namespace go.
    let (code, r) = api
        .patch(
            "configmaps",
            Some("tmp"),
            "held",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{r}");
    eventually("namespace tmp to be removed", WAIT, || async {
        api.get("namespaces", None, "tmp")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let (_, left) = api
        .list("configmaps", Some("tmp"), Default::default())
        .await;
    assert!(Api::names(&left).is_empty(), "{left}");
}

/// Creates sent through a follower race the namespace's deletion through the
/// leader. The follower checks the namespace in its own state, which can lag
/// the leader's by a commit; the create's write must still carry the check
/// (a guard on the namespace's revision), so no create applies after the
/// namespace turned terminating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_create_lands_after_its_namespace_turned_terminating() {
    let (cluster, api) = crate::api::cluster().await;
    let follower = Api(cluster.local_arc(cluster.follower().await));
    for round in 0..4 {
        let ns = format!("race{round}");
        api.create(
            "namespaces",
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
        // Wait until the follower has the namespace, so creates start at once.
        eventually("the follower to see the namespace", WAIT, || async {
            let mut get = Api::req(Verb::Get, "namespaces", None, Some(&ns), None);
            get.list.resource_version = Some("0".into());
            let (code, _) = follower.call(get).await;
            (code == 200).then_some(())
        })
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let mut creators = tokio::task::JoinSet::new();
        for t in 0..6 {
            let client = follower.0.clone();
            let (ns, stop, made) = (ns.clone(), stop.clone(), made.clone());
            creators.spawn(async move {
                let api = Api(client);
                let mut created = Vec::new();
                for i in 0.. {
                    let name = format!("c{t}-{i}");
                    let body = configmap(&name, json!({}));
                    let (code, obj) = api
                        .call(Api::req(
                            Verb::Create,
                            "configmaps",
                            Some(&ns),
                            None,
                            Some(&body),
                        ))
                        .await;
                    match code {
                        201 => {
                            made.fetch_add(1, Ordering::Relaxed);
                            created.push((name, rv(&obj).parse::<u64>().expect("rv")))
                        }
                        403 | 404 if stop.load(Ordering::Relaxed) => break,
                        403 | 404 => {}
                        other => panic!("create {name}: {other} {obj}"),
                    }
                }
                created
            });
        }
        eventually("creates through the follower", WAIT, || async {
            (made.load(Ordering::Relaxed) >= 30).then_some(())
        })
        .await;
        let (code, marked) = api.delete("namespaces", None, &ns, &json!({})).await;
        assert!(code == 200 || code == 202, "{code} {marked}");
        stop.store(true, Ordering::Relaxed);
        let terminating: u64 = rv(&marked).parse().expect("rv");
        let mut late = Vec::new();
        while let Some(r) = creators.join_next().await {
            late.extend(
                r.expect("creator")
                    .into_iter()
                    .filter(|(_, rev)| *rev > terminating),
            );
        }
        assert!(
            late.is_empty(),
            "round {round}: {} creates applied after namespace {ns} turned terminating at {terminating}, e.g. {:?}",
            late.len(),
            late.first()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_made_again_when_deleted() {
    let (_cluster, api) = crate::api::cluster().await;
    let sa = |ns: &'static str| {
        let api = &api;
        async move { api.get("serviceaccounts", Some(ns), "default").await }
    };
    for ns in ["default", "kube-system"] {
        eventually(&format!("{ns}/default ServiceAccount"), WAIT, || sa(ns)).await;
    }
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .await;
    let first = eventually("team/default ServiceAccount", WAIT, || sa("team")).await;
    let (code, _) = api
        .delete("serviceaccounts", Some("team"), "default", &json!({}))
        .await;
    assert_eq!(code, 200);
    let again = eventually("team/default made again", WAIT, || async {
        sa("team")
            .await
            .filter(|s| s["metadata"]["uid"] != first["metadata"]["uid"])
    })
    .await;
    assert_eq!(again["metadata"]["name"], "default");
}
