//! Controllers claim what their selectors match, as Kubernetes'
//! `ControllerRefManager` does: a ReplicaSet, Deployment or StatefulSet
//! deleted with `propagationPolicy: Orphan` and created again takes back the
//! pods (ReplicaSets) it left instead of making new ones, and a pod relabelled
//! out of its ReplicaSet is released and replaced. No node runs here: pending
//! pods are replicas all the same.

use crate::api::{deployment, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::{ListOptions, PatchType};
use serde_json::{json, Value};
use std::time::Duration;

const NS: Option<&str> = Some("default");

fn replicaset(name: &str, replicas: i64) -> Value {
    let mut d = deployment(name, replicas);
    d["kind"] = json!("ReplicaSet");
    d
}

fn statefulset(name: &str, replicas: i64) -> Value {
    let mut d = deployment(name, replicas);
    d["kind"] = json!("StatefulSet");
    d["spec"]["podManagementPolicy"] = json!("Parallel");
    d["spec"]["serviceName"] = json!(name);
    d
}

/// Every object of `resource` labelled `app=<app>`: (name, uid, controller uid).
pub(crate) async fn labelled(
    api: &Api,
    resource: &str,
    app: &str,
) -> Vec<(String, String, String)> {
    let opts = ListOptions {
        label_selector: Some(format!("app={app}")),
        ..Default::default()
    };
    let (code, list) = api.list(resource, NS, opts).await;
    assert_eq!(code, 200, "{list}");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let controller = m["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == true)
                .map(|r| r["uid"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["uid"].as_str().unwrap_or_default().to_string(),
                controller,
            )
        })
        .collect()
}

/// Waits until exactly `n` objects of `resource` labelled `app` exist, all
/// controlled by `owner`; returns their (name, uid) pairs.
pub(crate) async fn controlled(
    api: &Api,
    resource: &str,
    app: &str,
    owner: &Value,
    n: usize,
) -> Vec<(String, String)> {
    let uid = owner["metadata"]["uid"]
        .as_str()
        .expect("owner uid")
        .to_string();
    let what = format!("{n} {resource} of {app} controlled by {uid}");
    eventually(&what, WAIT, || async {
        let all = labelled(api, resource, app).await;
        (all.len() == n && all.iter().all(|(_, _, c)| *c == uid))
            .then(|| all.into_iter().map(|(n, u, _)| (n, u)).collect())
    })
    .await
}

/// Deletes `name` orphaning its dependents, and waits for it to be gone and
/// for `app`'s `dependents` to carry no controller.
async fn orphan(api: &Api, resource: &str, name: &str, dependents: &str, n: usize) {
    let (code, body) = api
        .delete(resource, NS, name, &json!({"propagationPolicy": "Orphan"}))
        .await;
    assert!(code == 200 || code == 202, "{code} {body}");
    eventually(
        &format!("{resource}/{name} gone, its {dependents} orphaned"),
        WAIT,
        || async {
            let left = labelled(api, dependents, name).await;
            (api.get(resource, NS, name).await.is_none()
                && left.len() == n
                && left.iter().all(|(_, _, c)| c.is_empty()))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_adopt_their_orphans_and_release_relabelled_pods() {
    let (_cluster, api) = crate::api::with_controllers().await;

    // A ReplicaSet's pods, orphaned, are adopted by its successor: the same
    // three pods (names and uids), no new one.
    let rs = api.create("replicasets", NS, &replicaset("web", 3)).await;
    let pods = controlled(&api, "pods", "web", &rs, 3).await;
    orphan(&api, "replicasets", "web", "pods", 3).await;
    let rs = api.create("replicasets", NS, &replicaset("web", 3)).await;
    let mut again = controlled(&api, "pods", "web", &rs, 3).await;
    again.sort();
    let mut before = pods.clone();
    before.sort();
    assert_eq!(again, before, "the orphans adopted, none made anew");
    // Nothing more is made once the cache shows the adoptions.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(labelled(&api, "pods", "web").await.len(), 3);

    // A pod relabelled out of the selector is released (its controller
    // reference removed) and replaced.
    let (out, _) = &pods[0];
    let (code, body) = api
        .patch(
            "pods",
            NS,
            out,
            PatchType::Merge,
            &json!({"metadata": {"labels": {"app": "debug"}}}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    eventually("the relabelled pod released", WAIT, || async {
        let p = api.get("pods", NS, out).await?;
        p["metadata"]["ownerReferences"].is_null().then_some(())
    })
    .await;
    let now = controlled(&api, "pods", "web", &rs, 3).await;
    assert!(now.iter().all(|(n, _)| n != out), "{now:?}");

    // A Deployment orphaning its ReplicaSet: its successor adopts it (one
    // ReplicaSet, the same pods).
    let d = api.create("deployments", NS, &deployment("api", 2)).await;
    let rss = controlled(&api, "replicasets", "api", &d, 1).await;
    let rs_api = api.get("replicasets", NS, &rss[0].0).await.expect("rs");
    let pods = controlled(&api, "pods", "api", &rs_api, 2).await;
    orphan(&api, "deployments", "api", "replicasets", 1).await;
    let d = api.create("deployments", NS, &deployment("api", 2)).await;
    assert_eq!(controlled(&api, "replicasets", "api", &d, 1).await, rss);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut left = labelled(&api, "pods", "api").await;
    left.sort();
    let mut want: Vec<_> = pods
        .iter()
        .map(|(n, u)| {
            (
                n.clone(),
                u.clone(),
                rs_api["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(left, want, "the adopted ReplicaSet's pods unchanged");

    // A StatefulSet adopts its members, not a pod merely labelled like them.
    let sts = api.create("statefulsets", NS, &statefulset("db", 2)).await;
    controlled(&api, "pods", "db", &sts, 2).await;
    orphan(&api, "statefulsets", "db", "pods", 2).await;
    let mut stranger = crate::api::pod("db-x");
    stranger["metadata"]["labels"] = json!({"app": "db"});
    api.create("pods", NS, &stranger).await;
    let sts = api.create("statefulsets", NS, &statefulset("db", 2)).await;
    let uid = sts["metadata"]["uid"].as_str().unwrap().to_string();
    eventually("db-0 and db-1 adopted", WAIT, || async {
        let all = labelled(&api, "pods", "db").await;
        let owned: Vec<_> = all
            .iter()
            .filter(|(_, _, c)| *c == uid)
            .map(|(n, _, _)| n.as_str())
            .collect();
        (owned.len() == 2 && owned.contains(&"db-0") && owned.contains(&"db-1")).then_some(())
    })
    .await;
    let x = api.get("pods", NS, "db-x").await.expect("db-x");
    assert!(x["metadata"]["ownerReferences"].is_null(), "{x}");
}
