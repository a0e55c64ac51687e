//! End-to-end tests of `schedule`: placements in order, and the message.

use super::testutil::{node, on, pod, pod_requesting, replica};
use super::*;
use serde_json::{json, Value};

/// The node each placement binds to, or its unschedulable message.
fn outcomes(placements: &[Placement]) -> Vec<String> {
    placements
        .iter()
        .map(|p| match p {
            Placement::Bind { node, .. } => node.clone(),
            Placement::Unschedulable { message, .. } => message.clone(),
            Placement::Preempt { node, .. } => format!("preempt on {node}"),
        })
        .collect()
}

#[test]
fn the_message_sorts_count_and_reason_strings_bytewise() {
    let reasons = BTreeMap::from([
        (
            "node(s) had untolerated taint {dedicated: infra}".to_string(),
            2,
        ),
        ("Insufficient cpu".to_string(), 3),
        ("Insufficient memory".to_string(), 10),
    ]);
    assert_eq!(
        fit_error(15, &reasons),
        "0/15 nodes are available: 10 Insufficient memory, 2 node(s) had untolerated taint \
         {dedicated: infra}, 3 Insufficient cpu."
    );
    assert_eq!(
        fit_error(0, &BTreeMap::new()),
        "no nodes available to schedule pods"
    );
}

#[test]
fn placements_name_the_pod_and_its_node() {
    let got = schedule(&[node("n1", json!({}))], &[], &[pod("p", json!({}))]);
    let want = Placement::Bind {
        namespace: "default".into(),
        name: "p".into(),
        uid: "p-uid".into(),
        node: "n1".into(),
    };
    assert_eq!(got, [want]);
}

#[test]
fn no_nodes_means_no_nodes_available() {
    let got = schedule(&[], &[], &[pod("p", json!({}))]);
    let want = Placement::Unschedulable {
        namespace: "default".into(),
        name: "p".into(),
        uid: "p-uid".into(),
        message: "no nodes available to schedule pods".into(),
        nominated: None,
    };
    assert_eq!(got, [want]);
}

#[test]
fn earlier_placements_fill_a_node_and_the_third_pod_goes_elsewhere() {
    // n2 carries a soft taint so the first pods prefer n1 until it is full.
    let nodes = [
        node("n1", json!({"status": {"allocatable": {"cpu": "2"}}})),
        node(
            "n2",
            json!({"spec": {"taints": [{"key": "spare", "effect": "PreferNoSchedule"}]}}),
        ),
    ];
    let pending: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| pod_requesting(n, "1", "128Mi"))
        .collect();
    assert_eq!(
        outcomes(&schedule(&nodes, &[], &pending)),
        ["n1", "n1", "n2"]
    );
}

#[test]
fn bound_pods_take_room_unless_finished_or_on_unknown_nodes() {
    let nodes = [node("n1", json!({"status": {"allocatable": {"cpu": "1"}}}))];
    let big = pod_requesting("big", "1", "0");
    let done = pod_requesting("done", "1", "0");
    let mut done = (*on("n1", &done)).clone();
    done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
    let pending = [pod_requesting("p", "500m", "0")];
    let free = schedule(&nodes, &[Arc::new(done), on("gone", &big)], &pending);
    assert_eq!(outcomes(&free), ["n1"]);
    let full = schedule(&nodes, &[on("n1", &big)], &pending);
    assert_eq!(
        outcomes(&full),
        ["0/1 nodes are available: 1 Insufficient cpu."]
    );
}

#[test]
fn an_untolerated_taint_is_named_exactly() {
    let nodes = [node(
        "n1",
        json!({"spec": {"taints": [
        {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
    )];
    let got = schedule(&nodes, &[], &[pod("p", json!({}))]);
    assert_eq!(
        outcomes(&got),
        ["0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}."]
    );
}

#[test]
fn a_pod_that_fits_nowhere_gets_every_reason_counted_per_node() {
    let infra = json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "100m"}}});
    let small = json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi"}}});
    let nodes = [
        node("t1", infra.clone()),
        node("t2", infra),
        node("s1", small.clone()),
        node("s2", small),
        node("c1", json!({"status": {"allocatable": {"cpu": "1"}}})),
        node("x1", json!({"spec": {"unschedulable": true}})),
        node(
            "d1",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        ),
    ];
    let got = schedule(&nodes, &[], &[pod_requesting("p", "2", "2Gi")]);
    assert_eq!(
        outcomes(&got),
        [
            "0/7 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, \
          2 Insufficient memory, 2 node(s) had untolerated taint {dedicated: infra}, \
          3 Insufficient cpu."
        ]
    );
}

#[test]
fn an_owners_replicas_spread_over_two_equal_nodes() {
    // Another owner's pod makes n2 busier, so the resource scores alone would
    // put every replica on n1; spreading the owner's pods must win.
    let nodes = [node("n1", json!({})), node("n2", json!({}))];
    let busy = replica(
        "db-0",
        "rs-2",
        json!({"spec": {"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}),
    );
    let small = json!({"spec": {"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}});
    let pending: Vec<_> = (0..4)
        .map(|i| replica(&format!("web-{i}"), "rs-1", small.clone()))
        .collect();
    let got = outcomes(&schedule(&nodes, &[on("n2", &busy)], &pending));
    let on_n1 = got.iter().filter(|n| *n == "n1").count();
    let on_n2 = got.iter().filter(|n| *n == "n2").count();
    assert_eq!((on_n1, on_n2), (2, 2), "{got:?}");
}

#[test]
fn placed_pods_count_for_later_pods_anti_affinity() {
    let nodes = [node("n1", json!({})), node("n2", json!({}))];
    let anti = json!({"spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}},
            "topologyKey": "kubernetes.io/hostname"}]}}}});
    let pending: Vec<_> = (0..3)
        .map(|i| replica(&format!("web-{i}"), "rs-1", anti.clone()))
        .collect();
    let mut got = outcomes(&schedule(&nodes, &[], &pending));
    let last = got.pop();
    got.sort();
    assert_eq!(got, ["n1", "n2"]);
    assert_eq!(
        last.as_deref(),
        Some("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.")
    );
}

#[test]
fn each_node_reports_only_its_first_failing_filter() {
    let nodes = [node(
        "n1",
        json!({"spec": {"unschedulable": true,
        "taints": [{"key": "k", "effect": "NoSchedule"}]}}),
    )];
    let got = schedule(&nodes, &[], &[pod_requesting("p", "100", "0")]);
    assert_eq!(
        outcomes(&got),
        ["0/1 nodes are available: 1 node(s) were unschedulable."]
    );
}

#[test]
fn ties_break_by_uid_and_node_not_by_chance() {
    let nodes: Vec<_> = (0..4).map(|i| node(&format!("n{i}"), json!({}))).collect();
    let pending: Vec<_> = (0..8).map(|i| pod(&format!("p{i}"), json!({}))).collect();
    let first = schedule(&nodes, &[], &pending);
    assert_eq!(
        first,
        schedule(&nodes, &[], &pending),
        "same input, same placements"
    );
    let lone: Vec<_> = (0..8)
        .map(|i| outcomes(&schedule(&nodes, &[], &[pending[i].clone()])).remove(0))
        .collect();
    let distinct: std::collections::BTreeSet<_> = lone.iter().collect();
    assert!(
        distinct.len() > 1,
        "equal nodes share pods by hash: {lone:?}"
    );
}

#[test]
fn malformed_and_extreme_quantities_never_panic() {
    let nodes = [
        node(
            "n1",
            json!({"status": {"allocatable": {"cpu": "lots", "memory": "-1e24", "pods": "x"}}}),
        ),
        node(
            "n2",
            json!({"status": {"allocatable": {"cpu": "1e24", "memory": "999999Ei"}}}),
        ),
    ];
    let bound = [on("n2", &pod_requesting("b", "1e24", "-1e24"))];
    let pending = [
        pod_requesting("p", "-5", "garbage"),
        pod_requesting("q", "1e24", "1e24"),
    ];
    let got = outcomes(&schedule(&nodes, &bound, &pending));
    assert_eq!(got[0], "n2", "n1 allows no pods; negative requests fit");
    assert_eq!(
        got[1],
        "0/2 nodes are available: 1 Insufficient memory, 1 Too many pods, 2 Insufficient cpu."
    );
}

#[test]
fn large_clusters_look_for_an_adaptive_share_of_feasible_nodes() {
    let cases = [
        (0, 0),
        (50, 50),
        (99, 99),
        (100, 100),
        (300, 144),
        (1000, 420),
        (5000, 500),
        (6000, 300),
        (20000, 1000),
    ];
    for (all, want) in cases {
        assert_eq!(filters::nodes_to_find(all), want, "{all} nodes");
    }
}

#[test]
fn each_pod_filters_from_where_the_last_stopped() {
    let nodes: Vec<_> = (0..300)
        .map(|i| node(&format!("n{i:03}"), json!({})))
        .collect();
    let cluster = testutil::cluster(&nodes, &[]);
    let p = pod("p", json!({}));
    let info = PodInfo::new(&p);
    let first = filters::feasible(&info, &cluster, 0);
    assert_eq!(first.fits, (0..144).collect::<Vec<_>>());
    assert_eq!(first.processed, 144);
    let wrapped = filters::feasible(&info, &cluster, 288);
    assert_eq!(
        wrapped.fits,
        (288..300).chain(0..132).collect::<Vec<_>>(),
        "wraps round"
    );
    // Nothing fits: every node is tried, and every node gives its reason.
    let picky = pod("q", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
    let none = filters::feasible(&PodInfo::new(&picky), &cluster, 17);
    assert!(none.fits.is_empty());
    assert_eq!(none.processed, 300);
    assert_eq!(none.reasons.get(filters::NODE_AFFINITY), Some(&300));
    // Three pods in one pass take three windows of nodes in turn.
    let pending: Vec<_> = (0..3).map(|i| pod(&format!("r{i}"), json!({}))).collect();
    let mut start = 0;
    let placed = outcomes(&schedule_from(&nodes, &[], &pending, &mut start));
    let index = |n: &str| n[1..].parse::<usize>().unwrap();
    assert!(index(&placed[0]) < 144, "{placed:?}");
    assert!((144..288).contains(&index(&placed[1])), "{placed:?}");
    assert!(
        index(&placed[2]) >= 288 || index(&placed[2]) < 132,
        "{placed:?}"
    );
    assert_eq!(start, 132);
    let unplaceable = schedule(&nodes, &[], &[picky]);
    assert_eq!(
        outcomes(&unplaceable),
        vec!["0/300 nodes are available: 300 node(s) didn't match Pod's node affinity/selector."]
    );
}

/// A pod with `priority` requesting `cpu`.
fn prio(name: &str, priority: i32, cpu: &str) -> Arc<Pod> {
    pod(
        name,
        json!({"spec": {"priority": priority, "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": cpu}}}]}}),
    )
}

fn victims(p: &Placement) -> (String, Vec<String>) {
    match p {
        Placement::Preempt { node, victims, .. } => (
            node.clone(),
            victims
                .iter()
                .map(|v| v.metadata.name.clone().unwrap_or_default())
                .collect(),
        ),
        other => panic!("want a preemption, got {other:?}"),
    }
}

#[test]
fn a_higher_priority_pod_preempts_the_fewest_least_important_pods() {
    // Two 4-cpu nodes, both full. n1 holds priority 10 and 20 pods; n2 holds
    // a priority 5 pod and a priority 100 one.
    let nodes = [node("n1", json!({})), node("n2", json!({}))];
    let bound = [
        on("n1", &prio("a10", 10, "2")),
        on("n1", &prio("b20", 20, "2")),
        on("n2", &prio("c5", 5, "3")),
        on("n2", &prio("d100", 100, "1")),
    ];
    // Needs 2 cpu at priority 50: n2 by evicting c5 (highest victim 5) beats
    // n1 (a10, highest 10).
    let out = schedule(&nodes, &bound, &[prio("p", 50, "2")]);
    assert_eq!(victims(&out[0]), ("n2".into(), vec!["c5".into()]));
    let Placement::Preempt { message, .. } = &out[0] else {
        panic!("want a preemption, got {:?}", out[0]);
    };
    assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");

    // Needing 3 cpu: on n2, c5 alone frees 3; on n1 both would go. n2 again.
    let out = schedule(&nodes, &bound, &[prio("p", 50, "3")]);
    assert_eq!(victims(&out[0]), ("n2".into(), vec!["c5".into()]));

    // At priority 15 only a10 (n1) and c5 (n2) are lower: 2 cpu fits after
    // evicting either; c5 is the less important.
    let out = schedule(&nodes, &bound, &[prio("p", 15, "2")]);
    assert_eq!(victims(&out[0]), ("n2".into(), vec!["c5".into()]));

    // Reprieve: of two victims candidates on a node, the more important one
    // stays when evicting the other suffices.
    let nodes1 = [node("n1", json!({}))];
    let bound1 = [on("n1", &prio("x1", 1, "2")), on("n1", &prio("x2", 2, "2"))];
    let out = schedule(&nodes1, &bound1, &[prio("p", 9, "2")]);
    assert_eq!(victims(&out[0]), ("n1".into(), vec!["x1".into()]));
    let out = schedule(&nodes1, &bound1, &[prio("p", 9, "4")]);
    let (_, mut v) = victims(&out[0]);
    v.sort();
    assert_eq!(v, ["x1", "x2"]);
}

#[test]
fn preemption_never_helps_equal_priorities_untolerated_nodes_or_never_policies() {
    let nodes = [node("n1", json!({}))];
    let bound = [on("n1", &prio("a", 10, "4"))];
    // Equal priority: nothing to evict.
    let out = schedule(&nodes, &bound, &[prio("p", 10, "1")]);
    assert!(matches!(out[0], Placement::Unschedulable { .. }), "{out:?}");
    // PreemptionPolicy Never.
    let never = pod(
        "p",
        json!({"spec": {"priority": 100, "preemptionPolicy": "Never", "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "1"}}}]}}),
    );
    let out = schedule(&nodes, &bound, &[never]);
    assert!(matches!(out[0], Placement::Unschedulable { .. }), "{out:?}");
    // A node the pod cannot go to anyway (a taint) is no candidate.
    let tainted = [node(
        "n1",
        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
    )];
    let out = schedule(&tainted, &bound, &[prio("p", 100, "1")]);
    assert!(matches!(out[0], Placement::Unschedulable { .. }), "{out:?}");
    // More than the node has even when empty: no preemption.
    let out = schedule(&nodes, &bound, &[prio("p", 100, "5")]);
    assert!(matches!(out[0], Placement::Unschedulable { .. }), "{out:?}");
}

#[test]
fn a_preemption_reserves_the_room_for_the_rest_of_the_pass() {
    let nodes = [node("n1", json!({}))];
    let bound = [on("n1", &prio("low", 0, "4"))];
    // The preemptor takes the freed room; the next pod (lower priority) does
    // not get it and may not evict the preemptor.
    let out = schedule(
        &nodes,
        &bound,
        &[prio("high", 100, "3"), prio("mid", 50, "2")],
    );
    assert_eq!(victims(&out[0]), ("n1".into(), vec!["low".into()]));
    assert!(matches!(out[1], Placement::Unschedulable { .. }), "{out:?}");
}

/// `pod` being deleted.
fn leaving(pod: &Arc<Pod>) -> Arc<Pod> {
    let mut p = (**pod).clone();
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:00Z".parse().unwrap(),
    ));
    Arc::new(p)
}

/// A pod of `priority` requesting `cpu`, nominated to `node`.
fn nominated(name: &str, priority: i32, cpu: &str, node: &str) -> Arc<Pod> {
    let mut p = (*prio(name, priority, cpu)).clone();
    p.status
        .get_or_insert_with(Default::default)
        .nominated_node_name = Some(node.into());
    Arc::new(p)
}

#[test]
fn terminating_pods_hold_their_room_but_are_never_victims_again() {
    let nodes = [node("n1", json!({}))];
    // A terminating pod still holds its 2 cpu: nothing fits beside `low`.
    let bound = [
        on("n1", &leaving(&prio("gone", 0, "2"))),
        on("n1", &prio("low", 0, "2")),
    ];
    let out = schedule(&nodes, &bound, &[prio("p", 0, "1")]);
    assert_eq!(
        outcomes(&out),
        ["0/1 nodes are available: 1 Insufficient cpu."]
    );
    // 2 cpu will be free once `gone` is: no one is evicted, the pod waits.
    let out = schedule(&nodes, &bound, &[prio("p", 100, "2")]);
    assert!(
        matches!(
            &out[0],
            Placement::Unschedulable {
                nominated: None,
                ..
            }
        ),
        "{out:?}"
    );
    // 4 cpu: only `low` is evicted, `gone` is not chosen again.
    let out = schedule(&nodes, &bound, &[prio("p", 100, "4")]);
    assert_eq!(victims(&out[0]), ("n1".into(), vec!["low".into()]));
    // Finished pods hold nothing.
    let done = pod(
        "done",
        json!({"spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "4"}}}]}, "status": {"phase": "Succeeded"}}),
    );
    let out = schedule(&nodes, &[on("n1", &done)], &[prio("p", 0, "4")]);
    assert_eq!(outcomes(&out), ["n1"]);
}

/// (the pods on n1, n1's patch) → whether a pod nominated to n1 (priority
/// 100, 4 cpu) waits there or evicts `other` on n2.
#[test]
fn a_nominated_pod_waits_for_its_victims_instead_of_preempting_more() {
    let cases: Vec<(&str, Vec<Arc<Pod>>, Value, bool)> = vec![
        (
            "a lower-priority pod still terminating: wait",
            vec![leaving(&prio("victim", 10, "4"))],
            json!({}),
            true,
        ),
        (
            "the terminating pod has a higher priority: preempt",
            vec![leaving(&prio("boss", 200, "4"))],
            json!({}),
            false,
        ),
        (
            "nothing terminating: preempt",
            vec![prio("boss", 200, "4")],
            json!({}),
            false,
        ),
        (
            "the nominated node was cordoned: preempt elsewhere",
            vec![leaving(&prio("victim", 10, "4"))],
            json!({"spec": {"unschedulable": true}}),
            false,
        ),
        (
            "the nominated node is not Ready: preempt elsewhere",
            vec![leaving(&prio("victim", 10, "4"))],
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            false,
        ),
    ];
    for (what, on_n1, patch, waits) in cases {
        let nodes = [node("n1", patch), node("n2", json!({}))];
        let mut bound: Vec<Arc<Pod>> = on_n1.iter().map(|p| on("n1", p)).collect();
        bound.push(on("n2", &prio("other", 0, "4")));
        let out = schedule(&nodes, &bound, &[nominated("p", 100, "4", "n1")]);
        if waits {
            match &out[0] {
                Placement::Unschedulable {
                    nominated, message, ..
                } => {
                    assert_eq!(nominated.as_deref(), Some("n1"), "{what}");
                    assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");
                }
                other => panic!("{what}: want a wait, got {other:?}"),
            }
        } else {
            assert_eq!(
                victims(&out[0]),
                ("n2".into(), vec!["other".into()]),
                "{what}"
            );
        }
    }
    // A nominated node no longer in the cluster: preempt.
    let nodes = [node("n2", json!({}))];
    let out = schedule(
        &nodes,
        &[on("n2", &prio("other", 0, "4"))],
        &[nominated("p", 100, "4", "n9")],
    );
    assert_eq!(victims(&out[0]), ("n2".into(), vec!["other".into()]));
}

/// A pod labelled `app` with `priority` requesting `cpu`, started `started`
/// seconds after the epoch, and `patch`.
fn app_pod(name: &str, app: &str, priority: i32, cpu: &str, started: i64) -> Arc<Pod> {
    let start = jiff::Timestamp::from_second(started).unwrap().to_string();
    pod(
        name,
        json!({"metadata": {"labels": {"app": app}},
            "spec": {"priority": priority, "containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": start}}),
    )
}

/// A budget over `app` pods that allows `allowed` more disruptions.
fn budget(app: &str, allowed: i32) -> Arc<PodDisruptionBudget> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-pdb"), "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "minAvailable": 1},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1,
                       "expectedPods": 1}
        }))
        .unwrap(),
    )
}

/// The victims preempting for `pending` picks, with `budgets`.
fn preempt_with(
    nodes: &[Arc<Node>],
    bound: &[Arc<Pod>],
    budgets: &[Arc<PodDisruptionBudget>],
    pending: &Arc<Pod>,
) -> (String, Vec<String>) {
    let mut s = Snapshot::new(nodes, bound);
    s.budgets = budgets.to_vec();
    let mut v = victims(&s.place(pending));
    v.1.sort();
    v
}

#[test]
fn preemption_weighs_budgets_affinity_spread_and_start_times() {
    let two = [node("n1", json!({})), node("n2", json!({}))];
    let one = [node("n1", json!({}))];
    let web = |name: &str, priority: i32, cpu: &str| app_pod(name, "web", priority, cpu, 100);
    // A preemptor that may not share a node with `app=db`.
    let shy = pod(
        "p",
        json!({"spec": {"priority": 10,
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}}}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}},
                 "topologyKey": "kubernetes.io/hostname"}]}}}}),
    );
    // A web pod that spreads by host with a skew of at most 1.
    let spreading = pod(
        "p",
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"priority": 10,
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
    );
    type Case<'a> = (
        &'a str,
        &'a [Arc<Node>],
        Vec<Arc<Pod>>,
        Vec<Arc<PodDisruptionBudget>>,
        Arc<Pod>,
        (&'a str, Vec<&'a str>),
    );
    let cases: Vec<Case> = vec![
        (
            "without budgets the lowest victim priority wins",
            &two,
            vec![
                on("n1", &app_pod("guarded", "db", 1, "4", 100)),
                on("n2", &web("free", 5, "4")),
            ],
            vec![],
            prio("p", 10, "2"),
            ("n1", vec!["guarded"]),
        ),
        (
            "a node whose victims break no budget beats a lower victim priority",
            &two,
            vec![
                on("n1", &app_pod("guarded", "db", 1, "4", 100)),
                on("n2", &web("free", 5, "4")),
            ],
            vec![budget("db", 0)],
            prio("p", 10, "2"),
            ("n2", vec!["free"]),
        ),
        (
            "a budget allowing one eviction is broken by the second",
            &two,
            vec![
                on("n1", &app_pod("a", "db", 1, "2", 100)),
                on("n1", &app_pod("b", "db", 1, "2", 100)),
                on("n2", &web("c", 3, "2")),
                on("n2", &web("d", 3, "2")),
            ],
            vec![budget("db", 1)],
            prio("p", 10, "4"),
            ("n2", vec!["c", "d"]),
        ),
        (
            "reprieve: without budgets the more important pod stays",
            &one,
            vec![
                on("n1", &app_pod("x1", "db", 1, "2", 100)),
                on("n1", &web("x2", 2, "2")),
            ],
            vec![],
            prio("p", 9, "2"),
            ("n1", vec!["x1"]),
        ),
        (
            "reprieve: a pod a budget guards is given back first",
            &one,
            vec![
                on("n1", &app_pod("x1", "db", 1, "2", 100)),
                on("n1", &web("x2", 2, "2")),
            ],
            vec![budget("db", 0)],
            prio("p", 9, "2"),
            ("n1", vec!["x2"]),
        ),
        (
            "anti-affinity: the pod it refuses is a victim though cpu would fit",
            &two,
            vec![
                on("n1", &app_pod("db", "db", 1, "1", 100)),
                on("n2", &web("big", 5, "4")),
            ],
            vec![],
            shy,
            ("n1", vec!["db"]),
        ),
        (
            "spread: pods of its own group are evicted to bring the skew down",
            &two,
            vec![
                on("n1", &web("w1", 1, "1")),
                on("n1", &web("w2", 1, "1")),
                on("n2", &app_pod("big", "db", 5, "4", 100)),
            ],
            vec![],
            spreading.clone(),
            ("n1", vec!["w1", "w2"]),
        ),
        (
            "spread: only as many of its group go as the skew needs",
            &two,
            vec![
                on("n1", &web("w1", 1, "1")),
                on("n1", &web("w2", 1, "1")),
                on("n1", &web("w3", 1, "1")),
                on("n2", &web("w4", 20, "4")),
            ],
            vec![],
            spreading.clone(),
            ("n1", vec!["w2", "w3"]),
        ),
        (
            "ties go to the node whose victim started last",
            &two,
            vec![
                on("n1", &app_pod("old", "db", 1, "4", 100)),
                on("n2", &app_pod("new", "db", 1, "4", 200)),
            ],
            vec![],
            prio("p", 10, "2"),
            ("n2", vec!["new"]),
        ),
    ];
    for (name, nodes, bound, budgets, pending, (want_node, want)) in cases {
        let got = preempt_with(nodes, &bound, &budgets, &pending);
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        assert_eq!(got, (want_node.to_string(), want), "{name}");
    }
}
