//! PriorityClasses, pod priority admission, and preemption by the scheduler.

use crate::api::{cluster, Api};
use crate::harness::{eventually, WAIT};
use ferry_api::object::{ListOptions, Verb};
use serde_json::{json, Value};

fn class(name: &str, value: i64, default: bool) -> Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": value, "globalDefault": default})
}

fn pod(name: &str, class: Option<&str>, cpu: &str) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"],
            "resources": {"requests": {"cpu": cpu}}}]}});
    if let Some(c) = class {
        p["spec"]["priorityClassName"] = json!(c);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_their_class_priority_and_bad_classes_are_refused() {
    let (_c, api) = cluster().await;
    // The system classes exist from the start.
    let sys = eventually("system-node-critical", WAIT, || async {
        api.get("priorityclasses", None, "system-node-critical")
            .await
    })
    .await;
    assert_eq!(sys["value"], 2_000_001_000);

    api.create("priorityclasses", None, &class("high", 1000, false))
        .await;
    let p = api
        .create("pods", Some("default"), &pod("p-high", Some("high"), "10m"))
        .await;
    assert_eq!(p["spec"]["priority"], 1000, "{p}");
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority", "{p}");
    let p = api
        .create("pods", Some("default"), &pod("p-none", None, "10m"))
        .await;
    assert_eq!(p["spec"]["priority"], 0, "{p}");

    // A class that does not exist.
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "pods",
            Some("default"),
            None,
            Some(&pod("p-bad", Some("nope"), "10m")),
        ))
        .await;
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        "pods \"p-bad\" is forbidden: no PriorityClass with name nope was found"
    );
    // A priority that disagrees with the class.
    let mut wrong = pod("p-wrong", Some("high"), "10m");
    wrong["spec"]["priority"] = json!(7);
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "pods",
            Some("default"),
            None,
            Some(&wrong),
        ))
        .await;
    assert_eq!(code, 403, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("the integer value of priority (7) must not be provided in pod spec"),
        "{s}"
    );

    // One global default; a second is refused; pods without a class take it.
    api.create("priorityclasses", None, &class("base", 100, true))
        .await;
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "priorityclasses",
            None,
            None,
            Some(&class("base2", 200, true)),
        ))
        .await;
    assert_eq!(code, 403, "{s}");
    assert!(
        s["message"].as_str().unwrap().contains(
            "PriorityClass base is already marked as default. Only one default can exist"
        ),
        "{s}"
    );
    let p = api
        .create("pods", Some("default"), &pod("p-default", None, "10m"))
        .await;
    assert_eq!(p["spec"]["priority"], 100, "{p}");
    assert_eq!(p["spec"]["priorityClassName"], "base", "{p}");
    // A user class above 1e9 is refused.
    let (code, s) = api
        .call(Api::req(
            Verb::Create,
            "priorityclasses",
            None,
            None,
            Some(&class("huge", 2_000_000_000, false)),
        ))
        .await;
    assert_eq!(code, 422, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_preempts_a_lower_one_on_a_full_node() {
    let (_cluster, api) = crate::api::with_controllers().await;
    // A node (no agent: the test plays its part) with one cpu.
    api.create(
        "nodes",
        None,
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
                "capacity": {"cpu": "1", "memory": "1Gi", "pods": "10"},
                "conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .await;
    api.create("priorityclasses", None, &class("low", 10, false))
        .await;
    api.create("priorityclasses", None, &class("high", 1000, false))
        .await;
    api.create("pods", Some("default"), &pod("victim", Some("low"), "800m"))
        .await;
    eventually("the low pod bound", WAIT, || async {
        let p = api.get("pods", Some("default"), "victim").await?;
        (p["spec"]["nodeName"] == "n1").then_some(())
    })
    .await;
    api.create("pods", Some("default"), &pod("vip", Some("high"), "800m"))
        .await;
    // The victim is deleted (it terminates: no agent confirms) and the
    // preemptor nominated to its node; the victim holds its room until it
    // is gone, and the preemptor waits for it rather than preempting more.
    eventually("the victim deleted", WAIT, || async {
        let p = api.get("pods", Some("default"), "victim").await;
        p.is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string())
            .then_some(())
    })
    .await;
    eventually("the preemptor nominated", WAIT, || async {
        let p = api.get("pods", Some("default"), "vip").await?;
        (p["status"]["nominatedNodeName"] == "n1").then_some(())
    })
    .await;
    // Marked before its delete, as kube-scheduler marks its victims.
    let victim = api.get("pods", Some("default"), "victim").await.unwrap();
    let marked = victim["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .unwrap_or_else(|| panic!("no DisruptionTarget: {victim}"));
    assert_eq!(marked["status"], "True", "{victim}");
    assert_eq!(marked["reason"], "PreemptionByScheduler", "{victim}");
    assert_eq!(
        marked["message"], "default-scheduler: preempting to accommodate a higher priority pod",
        "{victim}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let vip = api.get("pods", Some("default"), "vip").await.unwrap();
    assert!(
        vip["spec"]["nodeName"].is_null(),
        "bound beside its victim: {vip}"
    );
    assert_eq!(vip["status"]["nominatedNodeName"], "n1", "{vip}");
    // The agent's part: the victim's containers stopped, it goes.
    let (code, s) = api
        .delete(
            "pods",
            Some("default"),
            "victim",
            &json!({"gracePeriodSeconds": 0}),
        )
        .await;
    assert!(code == 200 || code == 404, "{code} {s}");
    eventually("the preemptor bound", WAIT, || async {
        let p = api.get("pods", Some("default"), "vip").await?;
        (p["spec"]["nodeName"] == "n1").then_some(())
    })
    .await;
    // Its event, written in a batch after the delete.
    eventually("the Preempted event", WAIT, || async {
        let (_, events) = api
            .list("events", Some("default"), ListOptions::default())
            .await;
        events["items"]
            .as_array()?
            .iter()
            .any(|e| {
                e["reason"] == "Preempted"
                    && e["involvedObject"]["name"] == "victim"
                    && e["message"].as_str().is_some_and(|m| {
                        m.starts_with("Preempted by pod ") && m.ends_with(" on node n1")
                    })
            })
            .then_some(())
    })
    .await;
}

/// The pod garbage collector: a pod bound to a node that is gone for its
/// quarantine (40 s) is marked `Failed` with `DisruptionTarget`
/// (`DeletionByPodGC`, Kubernetes' message) and deleted with no grace (a
/// finalizer keeps it here to be read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_node_is_gone_is_marked_failed_and_collected() {
    let (_cluster, api) = crate::api::with_controllers().await;
    api.create(
        "nodes",
        None,
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gone"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .await;
    let mut orphan = pod("orphan", None, "10m");
    orphan["metadata"]["finalizers"] = json!(["example.com/keep"]);
    orphan["spec"]["nodeName"] = json!("gone");
    api.create("pods", Some("default"), &orphan).await;
    let (code, s) = api.delete("nodes", None, "gone", &json!({})).await;
    assert_eq!(code, 200, "{s}");
    let p = eventually(
        "the orphan collected",
        std::time::Duration::from_secs(120),
        || async {
            let p = api.get("pods", Some("default"), "orphan").await?;
            p["metadata"]["deletionTimestamp"].is_string().then_some(p)
        },
    )
    .await;
    assert_eq!(p["status"]["phase"], "Failed", "{p}");
    let c = p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .unwrap_or_else(|| panic!("no DisruptionTarget: {p}"));
    assert_eq!(c["status"], "True", "{p}");
    assert_eq!(c["reason"], "DeletionByPodGC", "{p}");
    assert_eq!(c["message"], "PodGC: node no longer exists", "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 0, "{p}");
}
