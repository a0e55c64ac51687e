//! Rollouts simulated step by step on the in-memory cluster.

use super::*;

/// Rolls `replicas` from nginx:1 to nginx:2 one Ready pod at a time,
/// checking the fences after every step.
fn roll(replicas: i32, surge: Value, unavailable: Value) {
    let strategy = json!({"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
    let mut c = Cluster::new(deployment(
        replicas,
        json!({"spec": {"strategy": strategy}}),
    ));
    c.converge();
    let (max_surge, max_unavailable) = fenceposts(&c.d);
    let (ceiling, floor) = (replicas + max_surge, replicas - max_unavailable);
    c.set_image("nginx:2");
    let fences = |c: &Cluster, when: &str| {
        let (active, ready) = c.counts();
        let at = format!("{replicas} replicas, {when}");
        assert!(
            active <= ceiling as usize,
            "{at}: {active} pods, at most {ceiling}"
        );
        assert!(
            ready >= floor as usize,
            "{at}: {ready} Ready, at least {floor}"
        );
    };
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 200, "the rollout does not finish");
        let actions = c.pass();
        c.settle();
        fences(&c, "after a pass");
        let readied = c.ready_one();
        c.settle();
        fences(&c, "after a pod became Ready");
        c.clock += 1;
        if actions.is_empty() && !readied {
            break;
        }
    }
    let new = c.rs_of("nginx:2");
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(replicas));
    assert_eq!(c.rs_of("nginx:1").spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(c.counts(), (replicas as usize, replicas as usize));
    let new_uid = new.metadata.uid.clone();
    assert!(c
        .pods
        .iter()
        .all(|p| meta::controller_of(&p.metadata).map(|o| o.uid.clone())
            == Some(new_uid.clone().unwrap())));
    let s = c.d.status.as_ref().unwrap();
    let n = Some(replicas);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.available_replicas,
            s.observed_generation
        ),
        (n, n, n, Some(2))
    );
    assert_eq!(c.progressing().1, "NewReplicaSetAvailable");
    assert_eq!(annotation(new, REVISION), Some("2"));
}

#[test]
fn a_rolling_update_stays_within_its_fences_and_ends_on_the_new_replicaset() {
    for replicas in [1, 3, 4, 10] {
        roll(replicas, json!("25%"), json!("25%"));
    }
    roll(5, json!(0), json!(1));
    roll(5, json!(2), json!(0));
    roll(4, json!("50%"), json!("50%"));
}

/// Issue 18's fence breach across a leader kill: an old ReplicaSet's status
/// written before its scale-down's deletions were seen (the ReplicaSet
/// controller reports the pods it had when it deleted; the leader died before
/// the pass that reports the rest) still counts the deleted pod as
/// available, so the next pass scaled the old ReplicaSet down twice over:
/// 3 live pods, 2 Ready, against replicas - maxUnavailable = 3.
#[test]
fn an_old_replicasets_status_from_before_its_deletions_does_not_breach_the_fence() {
    let strategy = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let mut c = Cluster::new(deployment(4, json!({"spec": {"strategy": strategy}})));
    c.converge();
    c.graceful = true;
    c.set_image("nginx:2");
    // The new ReplicaSet at 1 (the surge), its pod created, not Ready.
    c.pass();
    c.rs_pass("nginx:2");
    c.rs_pass("nginx:2");
    // The old one down to 3: a pod deleted, and its status still says 4.
    c.pass();
    c.rs_pass("nginx:1");
    let old = c.rs_of("nginx:1");
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(old.status.as_ref().unwrap().available_replicas, Some(4));
    // The new one up to 2; its first pod becomes Ready and is reported.
    c.pass();
    c.rs_pass("nginx:2");
    assert!(c.ready_one());
    c.rs_pass("nginx:2");
    assert_eq!(c.counts(), (5, 4));
    // Against the stale status, the next pass may take one old pod, not two.
    c.pass();
    c.rs_pass("nginx:1");
    assert_eq!(c.rs_of("nginx:1").spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(c.counts(), (4, 3), "replicas - maxUnavailable = 3 Ready");
}

/// The same rollout with the controllers' passes in a seeded random order
/// (ReplicaSet passes late and out of order, as on a busy leader or across a
/// failover; pods Ready and gone at any time): the fences hold after every
/// step, and the rollout ends on the new ReplicaSet.
#[test]
fn the_fences_hold_whatever_order_the_passes_run_in() {
    for seed in 1..=300u64 {
        let strategy = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
        let mut c = Cluster::new(deployment(4, json!({"spec": {"strategy": strategy}})));
        c.converge();
        c.graceful = true;
        c.set_image("nginx:2");
        let mut state = seed;
        let mut pick = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let mut steps = Vec::new();
        for _ in 0..200 {
            match pick(4) {
                0 => {
                    c.pass();
                    steps.push("D".to_string());
                }
                1 => {
                    let i = pick(c.rss.len());
                    c.rs_pass_at(i);
                    steps.push(format!("RS{i}"));
                }
                2 => {
                    c.ready_one();
                    steps.push("ready".into());
                }
                _ => {
                    c.reap();
                    steps.push("reap".into());
                }
            }
            let (live, ready) = c.counts();
            assert!(
                live <= 5 && ready >= 3,
                "seed {seed}: {live} live, {ready} Ready after {}",
                steps.join(" ")
            );
        }
        c.converge();
        assert_eq!(
            c.rs_of("nginx:2").spec.as_ref().unwrap().replicas,
            Some(4),
            "seed {seed}"
        );
        assert_eq!(c.counts(), (4, 4), "seed {seed}");
    }
}

#[test]
fn recreate_waits_for_the_old_pods_to_be_gone() {
    let strategy = json!({"type": "Recreate", "rollingUpdate": null});
    let mut c = Cluster::new(deployment(3, json!({"spec": {"strategy": strategy}})));
    c.converge();
    c.graceful = true;
    c.set_image("nginx:2");
    let actions = c.pass();
    assert!(
        creates(&actions).is_empty(),
        "not before the old ones are down"
    );
    assert!(matches!(
        &actions[0],
        Action::UpdateReplicaSet { replicas: 0, .. }
    ));
    c.settle();
    assert_eq!(c.counts(), (0, 0));
    assert_eq!(c.pods.len(), 3, "three old pods terminating");
    for _ in 0..3 {
        c.clock += 1;
        assert!(creates(&c.pass()).is_empty(), "old pods still terminating");
        c.settle();
    }
    c.reap();
    c.clock += 1;
    let actions = c.pass();
    let new = creates(&actions);
    assert_eq!(new.len(), 1);
    assert_eq!(
        new[0].spec.as_ref().unwrap().replicas,
        Some(3),
        "all at once"
    );
    c.converge();
    assert_eq!(c.counts(), (3, 3));
    assert_eq!(c.progressing().1, "NewReplicaSetAvailable");
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll() {
    let strategy = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}});
    let mut c = Cluster::new(deployment(2, json!({"spec": {"strategy": strategy}})));
    c.converge();
    c.edit(|s| s.paused = Some(true));
    c.set_image("nginx:2");
    let actions = c.pass();
    assert!(creates(&actions).is_empty());
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::UpdateReplicaSet { .. })));
    assert_eq!(
        c.progressing(),
        (
            "Unknown".into(),
            "DeploymentPaused".into(),
            "Deployment is paused".into()
        )
    );
    c.converge();
    assert_eq!(c.rss.len(), 1, "no new ReplicaSet while paused");
    c.edit(|s| s.replicas = Some(4));
    c.converge();
    assert_eq!(c.counts(), (4, 4), "scaling still works");
    assert_eq!(c.rss.len(), 1);
    // Resumed: the rollout starts.
    c.edit(|s| s.paused = Some(false));
    c.converge();
    assert_eq!(c.rs_of("nginx:2").spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(c.rs_of("nginx:1").spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(c.counts(), (4, 4));
}

#[test]
fn resuming_mid_rollout_says_deployment_resumed() {
    let strategy = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}});
    let mut c = Cluster::new(deployment(2, json!({"spec": {"strategy": strategy}})));
    c.converge();
    c.set_image("nginx:2");
    c.pass();
    c.settle();
    // Stuck: one old pod down, the new pod not Ready.
    c.pass();
    c.settle();
    c.edit(|s| s.paused = Some(true));
    c.pass();
    assert_eq!(c.progressing().1, "DeploymentPaused");
    c.edit(|s| s.paused = Some(false));
    c.pass();
    assert_eq!(
        c.progressing(),
        (
            "Unknown".into(),
            "DeploymentResumed".into(),
            "Deployment is resumed".into()
        )
    );
}

#[test]
fn a_rollback_reuses_the_old_replicaset_with_a_new_revision() {
    let mut c = Cluster::new(deployment(3, json!({})));
    c.converge();
    c.set_image("nginx:2");
    c.converge();
    let v1 = c.rs_of("nginx:1").metadata.name.clone().unwrap();
    c.set_image("nginx:1");
    let actions = c.pass();
    assert!(
        creates(&actions).is_empty(),
        "no new ReplicaSet for an old template"
    );
    let up = actions.iter().find_map(|a| match a {
        Action::UpdateReplicaSet {
            name,
            annotations,
            replicas,
            ..
        } if *name == v1 => Some((annotations, replicas)),
        _ => None,
    });
    let (annotations, replicas) = up.expect("the old ReplicaSet is updated");
    assert_eq!(annotations[REVISION], "3");
    assert_eq!(
        annotations["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert!(*replicas > 0, "and scaled up");
    assert!(actions.contains(&Action::SetRevision("3".into())));
    c.converge();
    assert_eq!(c.rss.len(), 2);
    assert_eq!(c.rs_of("nginx:1").spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(annotation(c.rs_of("nginx:2"), REVISION), Some("2"));
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut c = Cluster::new(deployment(
        2,
        json!({"spec": {"progressDeadlineSeconds": 60}}),
    ));
    c.converge();
    c.set_image("bad:1");
    for _ in 0..5 {
        c.pass();
        c.settle();
    }
    assert_eq!(
        c.pass(),
        vec![],
        "nothing moves: the new pods never get Ready"
    );
    let (status, reason, _) = c.progressing();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ReplicaSetUpdated")
    );
    let wait = requeue_after(&c.d, c.now()).expect("a deadline to wake up for");
    assert!(wait.as_secs() > 55 && wait.as_secs() <= 61, "{wait:?}");
    c.clock += 30;
    assert_eq!(c.pass(), vec![], "not yet");
    c.clock += 31;
    let actions = c.pass();
    assert!(status_of(&actions).is_some());
    let name = c.rs_of("bad:1").metadata.name.clone().unwrap();
    let want = (
        "False".into(),
        "ProgressDeadlineExceeded".into(),
        format!("ReplicaSet \"{name}\" has timed out progressing."),
    );
    assert_eq!(c.progressing(), want);
    assert_eq!(requeue_after(&c.d, c.now()), None);
    c.clock += 600;
    assert_eq!(c.pass(), vec![], "reported once");
    // Progress again clears it.
    c.ready_one();
    c.settle();
    c.pass();
    assert_eq!(c.progressing().1, "ReplicaSetUpdated");
}
