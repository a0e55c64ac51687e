//! Rolling updates and OnDelete.

use super::*;

/// A DaemonSet on image agent:2 with `strategy`; its pods' template was agent:1.
fn updated_ds(strategy: Value) -> DaemonSet {
    ds(json!({"spec": {
        "updateStrategy": strategy,
        "template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}
    }}))
}

fn old() -> String {
    hash(&ds(json!({})))
}

/// Available old pods `p1..` on nodes `n1..`.
fn old_pods(n: usize) -> (Vec<Arc<Node>>, Vec<Arc<Pod>>) {
    let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    let ns = names.iter().map(|n| node(n, json!({}))).collect();
    let pods = (1..=n)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("n{i}"),
                &old(),
                Some(60),
                json!({}),
            )
        })
        .collect();
    (ns, pods)
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    let ru = json!({"maxSurge": surge, "maxUnavailable": unavailable});
    json!({"type": "RollingUpdate", "rollingUpdate": ru})
}

#[test]
fn the_default_replaces_one_node_at_a_time() {
    let set = updated_ds(json!(null));
    assert_ne!(hash(&set), old());
    let (ns, mut pods) = old_pods(3);
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(deleted(&d), ["p1"]);
    assert!(d.create.is_empty());
    assert_eq!(d.status.unwrap().updated_number_scheduled, None);
    // Being deleted, p1's node counts as unavailable: nothing more goes.
    pods[0] = pod(
        "p1",
        "n1",
        &old(),
        Some(60),
        json!({"metadata": {"deletionTimestamp": ago(1)}}),
    );
    let d = reconcile(&set, &ns, &pods, now());
    assert!(d.delete.is_empty() && d.create.is_empty());
    // Gone: the manage pass recreates it from the new template.
    pods.remove(0);
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n1"]);
    assert_eq!(
        d.create[0].metadata.labels.as_ref().unwrap()[HASH_LABEL],
        hash(&set)
    );
    assert!(
        d.delete.is_empty(),
        "no replacement while a pod is being made"
    );
    // The new pod not yet available still counts against the budget.
    pods.insert(0, pod("q1", "n1", &hash(&set), None, json!({})));
    let d = reconcile(&set, &ns, &pods, now());
    assert!(d.delete.is_empty() && d.create.is_empty());
    // Available: the next node.
    pods[0] = pod("q1", "n1", &hash(&set), Some(1), json!({}));
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(deleted(&d), ["p2"]);
    assert_eq!(d.status.unwrap().updated_number_scheduled, Some(1));
}

/// (why, maxUnavailable, the pod replacing each node's old one, the pods deleted)
type Case<'a> = (&'a str, Value, Vec<Option<Arc<Pod>>>, Vec<&'a str>);

#[test]
fn max_unavailable_counts_nodes_already_unavailable() {
    let new = hash(&updated_ds(json!(null)));
    // (why, maxUnavailable, pod patches by node, the pods deleted)
    let cases: [Case; 5] = [
        (
            "two of four",
            json!(2),
            vec![None, None, None, None],
            vec!["p1", "p2"],
        ),
        (
            "30% of 4 rounds up to 2",
            json!("30%"),
            vec![None, None, None, None],
            vec!["p1", "p2"],
        ),
        (
            "a new pod not yet available takes one",
            json!(2),
            vec![
                Some(pod("q1", "n1", &new, None, json!({}))),
                None,
                None,
                None,
            ],
            vec!["p2"],
        ),
        (
            "an unavailable old pod goes regardless",
            json!(1),
            vec![
                None,
                None,
                Some(pod("p3", "n3", &old(), None, json!({}))),
                None,
            ],
            vec!["p3", "p1"],
        ),
        (
            "at the budget nothing available goes",
            json!(1),
            vec![
                None,
                Some(pod("q2", "n2", &new, None, json!({}))),
                Some(pod("p3", "n3", &old(), None, json!({}))),
                None,
            ],
            vec!["p3"],
        ),
    ];
    for (why, max, overrides, want) in cases {
        let set = updated_ds(rolling(json!(0), max));
        let (ns, mut pods) = old_pods(4);
        for (i, o) in overrides.into_iter().enumerate() {
            if let Some(p) = o {
                pods[i] = p;
            }
        }
        let d = reconcile(&set, &ns, &pods, now());
        assert_eq!(deleted(&d), want, "{why}");
        assert!(d.create.is_empty(), "{why}");
    }
}

#[test]
fn surge_starts_the_new_pod_before_the_old_one_goes() {
    let set = updated_ds(rolling(json!(1), json!(0)));
    let new = hash(&set);
    let (ns, mut pods) = old_pods(3);
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n1"], "one node at a time");
    assert!(
        d.delete.is_empty(),
        "nothing is deleted before its successor serves"
    );
    // The new pod starting beside the old one: both stay, nothing more.
    pods.push(pod(
        "q1",
        "n1",
        &new,
        None,
        json!({"metadata": {"creationTimestamp": ago(5)}}),
    ));
    let d = reconcile(&set, &ns, &pods, now());
    assert!(d.create.is_empty() && d.delete.is_empty());
    // Available: the old one goes.
    pods[3] = pod(
        "q1",
        "n1",
        &new,
        Some(1),
        json!({"metadata": {"creationTimestamp": ago(5)}}),
    );
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(deleted(&d), ["p1"]);
    pods.remove(0);
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n2"]);
}

#[test]
fn surge_replaces_unavailable_old_pods_at_once() {
    let set = updated_ds(rolling(json!(1), json!(0)));
    let (ns, mut pods) = old_pods(3);
    pods[2] = pod("p3", "n3", &old(), None, json!({}));
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n3", "n1"]);
    // With an old pod that is not even Ready, the new one need not wait.
    let new = hash(&set);
    pods.push(pod("q3", "n3", &new, None, json!({})));
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(deleted(&d), ["p3"]);
}

#[test]
fn on_delete_replaces_only_pods_someone_deleted() {
    let set = updated_ds(json!({"type": "OnDelete"}));
    let (ns, mut pods) = old_pods(3);
    let d = reconcile(&set, &ns, &pods, now());
    assert!(d.create.is_empty() && d.delete.is_empty());
    pods.remove(1);
    let d = reconcile(&set, &ns, &pods, now());
    assert_eq!(created_on(&d), ["n2"]);
    assert_eq!(
        d.create[0].metadata.labels.as_ref().unwrap()[HASH_LABEL],
        hash(&set)
    );
    assert!(d.delete.is_empty());
}

#[test]
fn a_stored_collision_count_of_zero_keeps_the_hash() {
    let set = ds(
        json!({"status": {"collisionCount": 0, "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1,
        "numberAvailable": 1, "updatedNumberScheduled": 1, "observedGeneration": 3}}),
    );
    let pods = [pod("a", "n1", &hash(&ds(json!({}))), Some(60), json!({}))];
    assert_eq!(
        reconcile(&set, &nodes(&["n1"]), &pods, now()),
        Decision::default()
    );
    let mut bumped = set.clone();
    bumped.status.as_mut().unwrap().collision_count = Some(1);
    assert_eq!(
        deleted(&reconcile(&bumped, &nodes(&["n1"]), &pods, now())),
        ["a"]
    );
}
