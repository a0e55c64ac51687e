use super::*;
use serde_json::json;

fn hpa(min: i32, max: i32, target: i32, behavior: serde_json::Value) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}}}],
            "behavior": behavior,
        }
    }))
    .unwrap()
}

fn pod(name: &str, ready: bool, request: Option<i64>) -> PodInfo {
    PodInfo {
        name: name.into(),
        phase: "Running".into(),
        ready,
        deleting: false,
        cpu_request: request,
        memory_request: None,
    }
}

fn usage(cpu: &[(&str, i64)]) -> HashMap<String, Usage> {
    cpu.iter()
        .map(|(n, c)| (n.to_string(), Usage { cpu: *c, memory: 0 }))
        .collect()
}

fn cond<'a>(d: &'a Decision, t: &str) -> &'a HorizontalPodAutoscalerCondition {
    d.status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
}

const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).unwrap()
}

#[test]
fn replica_counts_as_kubernetes_computes_them() {
    let two = [pod("a", true, Some(100)), pod("b", true, Some(100))];
    let three = [
        pod("a", true, Some(100)),
        pod("b", true, Some(100)),
        pod("c", true, Some(100)),
    ];
    let with_unready = [
        pod("a", true, Some(100)),
        pod("b", true, Some(100)),
        pod("c", false, Some(100)),
    ];
    let mut pending = pod("c", false, Some(100));
    pending.phase = "Pending".into();
    let with_pending = [
        pod("a", true, Some(100)),
        pod("b", true, Some(100)),
        pending,
    ];
    let mut deleting = pod("c", true, Some(100));
    deleting.deleting = true;
    let mut failed = pod("d", true, Some(100));
    failed.phase = "Failed".into();
    let with_gone = [
        pod("a", true, Some(100)),
        pod("b", true, Some(100)),
        deleting,
        failed,
    ];
    // (name, pods, replicas, usage, history, max, want scale_to, want desired)
    type Case<'a> = (
        &'a str,
        &'a [PodInfo],
        i32,
        Vec<(&'a str, i64)>,
        Vec<(Timestamp, i32)>,
        i32,
        Option<i32>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "100% of request against 50%: twice the pods",
            &two,
            2,
            vec![("a", 100), ("b", 100)],
            vec![],
            10,
            Some(4),
            4,
        ),
        (
            "52% against 50%: within tolerance",
            &two,
            2,
            vec![("a", 52), ("b", 52)],
            vec![],
            10,
            None,
            2,
        ),
        (
            "idle, no history: down to one",
            &two,
            2,
            vec![("a", 5), ("b", 5)],
            vec![],
            10,
            Some(1),
            1,
        ),
        (
            "idle, a higher recommendation 100 s ago: stabilised",
            &two,
            2,
            vec![("a", 5), ("b", 5)],
            vec![(at(100), 2)],
            10,
            None,
            2,
        ),
        (
            "idle, that recommendation 301 s ago: down",
            &two,
            2,
            vec![("a", 5), ("b", 5)],
            vec![(at(301), 2)],
            10,
            Some(1),
            1,
        ),
        (
            "far over: the rate limit (max of double and +4) then max",
            &two,
            2,
            vec![("a", 1000), ("b", 1000)],
            vec![],
            5,
            Some(5),
            5,
        ),
        (
            "far over, high max: +4 wins over doubling",
            &two,
            2,
            vec![("a", 1000), ("b", 1000)],
            vec![],
            100,
            Some(6),
            6,
        ),
        (
            "missing pod on a scale-down counts 100%",
            &three,
            3,
            vec![("a", 10), ("b", 10)],
            vec![],
            10,
            None,
            3,
        ),
        (
            "missing pod on a scale-up counts 0",
            &three,
            3,
            vec![("a", 200), ("b", 200)],
            vec![],
            10,
            Some(7),
            7,
        ),
        (
            "unready pod on a scale-up counts 0",
            &with_unready,
            3,
            vec![("a", 100), ("b", 100), ("c", 100)],
            vec![],
            10,
            Some(4),
            4,
        ),
        (
            "pending pod without metrics is unready, not missing",
            &with_pending,
            3,
            vec![("a", 100), ("b", 100)],
            vec![],
            10,
            Some(4),
            4,
        ),
        (
            "deleting and failed pods are ignored",
            &with_gone,
            2,
            vec![("a", 100), ("b", 100), ("c", 0), ("d", 0)],
            vec![],
            10,
            Some(4),
            4,
        ),
    ];
    for (name, pods, replicas, u, history, max, want_scale, want_desired) in cases {
        let h = hpa(1, max, 50, json!(null));
        let u = usage(&u);
        let d = reconcile(&Input {
            hpa: &h,
            spec_replicas: replicas,
            status_replicas: replicas,
            pods,
            usage: Ok(&u),
            now: at(0),
            history: &history,
            events: &[],
        });
        assert_eq!(d.scale_to, want_scale, "{name}");
        assert_eq!(d.status.desired_replicas, want_desired, "{name}");
        assert_eq!(cond(&d, "ScalingActive").status, "True", "{name}");
    }
}

#[test]
fn conditions_and_current_metrics() {
    let pods = [pod("a", true, Some(200)), pod("b", true, Some(200))];
    let u = usage(&[("a", 150), ("b", 50)]);
    let h = hpa(1, 3, 50, json!(null));
    let d = reconcile(&Input {
        hpa: &h,
        spec_replicas: 2,
        status_replicas: 2,
        pods: &pods,
        usage: Ok(&u),
        now: at(0),
        history: &[],
        events: &[],
    });
    let m = &d.status.current_metrics.as_ref().unwrap()[0];
    let r = m.resource.as_ref().unwrap();
    assert_eq!((m.type_.as_str(), r.name.as_str()), ("Resource", "cpu"));
    assert_eq!(r.current.average_utilization, Some(50));
    assert_eq!(r.current.average_value.as_ref().unwrap().0, "100m");
    assert_eq!(d.scale_to, None, "exactly at target");
    assert_eq!(
        cond(&d, "AbleToScale").reason.as_deref(),
        Some("SucceededGetScale")
    );
    assert_eq!(
        cond(&d, "ScalingLimited").reason.as_deref(),
        Some("DesiredWithinRange")
    );
    assert_eq!(cond(&d, "ScalingLimited").status, "False");
    assert_eq!(d.status.current_replicas, Some(2));
    assert_eq!(d.status.observed_generation, Some(1));
    assert!(d.status.last_scale_time.is_none());

    // Scaled up past max: limited, rescaled, lastScaleTime set.
    let u = usage(&[("a", 400), ("b", 400)]);
    let d = reconcile(&Input {
        hpa: &h,
        spec_replicas: 2,
        status_replicas: 2,
        pods: &pods,
        usage: Ok(&u),
        now: at(0),
        history: &[],
        events: &[],
    });
    assert_eq!(d.scale_to, Some(3));
    assert_eq!(
        cond(&d, "ScalingLimited").reason.as_deref(),
        Some("TooManyReplicas")
    );
    assert_eq!(
        cond(&d, "AbleToScale").reason.as_deref(),
        Some("SucceededRescale")
    );
    assert_eq!(d.status.last_scale_time, Some(Time(at(0))));

    // A stabilised scale-down says so.
    let u = usage(&[("a", 1), ("b", 1)]);
    let d = reconcile(&Input {
        hpa: &h,
        spec_replicas: 2,
        status_replicas: 2,
        pods: &pods,
        usage: Ok(&u),
        now: at(0),
        history: &[(at(10), 2)],
        events: &[],
    });
    assert_eq!(d.scale_to, None);
    assert_eq!(
        cond(&d, "AbleToScale").reason.as_deref(),
        Some("ScaleDownStabilized")
    );
    assert_eq!(d.history.len(), 2, "the new recommendation is kept");
}

#[test]
fn behavior_windows_and_policies() {
    let pods = [pod("a", true, Some(100)), pod("b", true, Some(100))];
    let idle = usage(&[("a", 1), ("b", 1)]);
    let busy = usage(&[("a", 1000), ("b", 1000)]);
    // (behavior, usage, history, want scale_to)
    let cases = [
        (
            json!({"scaleDown": {"stabilizationWindowSeconds": 0}}),
            &idle,
            vec![(at(10), 2)],
            Some(1),
        ),
        (
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}}),
            &idle,
            vec![(at(61), 2)],
            Some(1),
        ),
        (
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}}),
            &idle,
            vec![(at(59), 2)],
            None,
        ),
        (
            json!({"scaleUp": {"stabilizationWindowSeconds": 60}}),
            &busy,
            vec![(at(30), 2)],
            None,
        ),
        (
            json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]}}),
            &busy,
            vec![],
            Some(3),
        ),
        (
            json!({"scaleUp": {"selectPolicy": "Disabled"}}),
            &busy,
            vec![],
            None,
        ),
        (
            // 10% of 2 allows 2 × 0.9 = 1.8, truncated to 1 as Kubernetes
            // converts it: the step is taken.
            json!({"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}),
            &idle,
            vec![],
            Some(1),
        ),
    ];
    for (b, u, history, want) in cases {
        let h = hpa(1, 100, 50, b.clone());
        let d = reconcile(&Input {
            hpa: &h,
            spec_replicas: 2,
            status_replicas: 2,
            pods: &pods,
            usage: Ok(u),
            now: at(0),
            history: &history,
            events: &[],
        });
        assert_eq!(d.scale_to, want, "{b}");
    }
}

#[test]
fn what_stops_scaling() {
    let no_request = [pod("a", true, None)];
    let u = usage(&[("a", 100)]);
    let h = hpa(1, 5, 50, json!(null));
    let run = |replicas: i32, pods: &[PodInfo], usage: Result<&HashMap<String, Usage>, String>| {
        reconcile(&Input {
            hpa: &h,
            spec_replicas: replicas,
            status_replicas: replicas,
            pods,
            usage,
            now: at(0),
            history: &[],
            events: &[],
        })
    };
    let d = run(1, &no_request, Ok(&u));
    assert_eq!(d.scale_to, None);
    let c = cond(&d, "ScalingActive");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("FailedGetResourceMetric"))
    );
    assert!(
        c.message
            .as_ref()
            .unwrap()
            .contains("missing request for cpu in pod a"),
        "{c:?}"
    );

    let d = run(
        1,
        &[pod("a", true, Some(100))],
        Err("metrics unavailable".into()),
    );
    assert_eq!(cond(&d, "ScalingActive").status, "False");
    assert!(cond(&d, "ScalingActive")
        .message
        .as_ref()
        .unwrap()
        .contains("metrics unavailable"));
    // Recorded as Kubernetes' controller records them.
    let why = "failed to get cpu utilization: unable to get metrics for resource cpu: metrics unavailable";
    assert_eq!(
        d.warnings,
        [
            ("FailedGetResourceMetric", why.to_string()),
            (
                "FailedComputeMetricsReplicas",
                format!("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {why}")
            ),
        ]
    );
    assert_eq!(
        cond(&d, "ScalingActive").message.as_deref(),
        Some(format!("the HPA was unable to compute the replica count: {why}").as_str())
    );
    // Metrics read: no warning.
    assert!(run(1, &[pod("a", true, Some(100))], Ok(&u))
        .warnings
        .is_empty());

    let d = run(1, &[], Ok(&u));
    assert!(cond(&d, "ScalingActive")
        .message
        .as_ref()
        .unwrap()
        .contains("no pods returned by selector"));

    let d = run(0, &[], Ok(&u));
    assert_eq!(
        cond(&d, "ScalingActive").reason.as_deref(),
        Some("ScalingDisabled")
    );
    assert_eq!(d.scale_to, None);

    // Outside min/max: brought in without metrics.
    let d = run(9, &[], Err("none".into()));
    assert_eq!(d.scale_to, Some(5));
    assert_eq!(
        cond(&d, "ScalingLimited").reason.as_deref(),
        Some("TooManyReplicas")
    );
}

/// A scale event `secs_ago`, by `change` replicas.
fn ev(secs_ago: i64, change: i32) -> ScaleEvent {
    ScaleEvent {
        at: at(secs_ago),
        change,
    }
}

/// (case, behavior, current replicas, wanted replicas, past events) → the
/// scale and the ScalingLimited reason: each policy steps from the count
/// its period started at.
#[test]
fn rate_policies_bound_the_change_over_their_period() {
    let pods_up = |v: i32, period: i32| json!({"scaleUp": {"policies": [{"type": "Pods", "value": v, "periodSeconds": period}]}});
    let down = |policies: serde_json::Value, select: &str| {
        json!({"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": select,
            "policies": policies}})
    };
    /// (case, behavior, current, wanted, events, scale to, limited reason)
    type Case = (
        &'static str,
        serde_json::Value,
        i32,
        i32,
        Vec<ScaleEvent>,
        Option<i32>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "no events: 2 → 4 by 2 pods",
            pods_up(2, 60),
            2,
            8,
            vec![],
            Some(4),
            "ScaleUpLimit",
        ),
        (
            "2 added 30 s ago within 60 s: the period is spent",
            pods_up(2, 60),
            4,
            8,
            vec![ev(30, 2)],
            None,
            "ScaleUpLimit",
        ),
        (
            "1 of 2 added: one more",
            pods_up(2, 60),
            3,
            8,
            vec![ev(30, 1)],
            Some(4),
            "ScaleUpLimit",
        ),
        (
            "events older than the period do not count",
            pods_up(2, 60),
            4,
            8,
            vec![ev(60, 2), ev(90, 2)],
            Some(6),
            "ScaleUpLimit",
        ),
        (
            "a scale-down in the period gives its room back",
            pods_up(2, 60),
            4,
            8,
            vec![ev(30, 2), ev(20, -1)],
            Some(5),
            "ScaleUpLimit",
        ),
        (
            "past the policy already: hold, never reverse",
            pods_up(2, 60),
            6,
            8,
            vec![ev(10, 4)],
            None,
            "ScaleUpLimit",
        ),
        (
            "the limit beyond max: max bounds it",
            pods_up(10, 60),
            2,
            50,
            vec![],
            Some(10),
            "TooManyReplicas",
        ),
        (
            "default up (4 pods or 100% per 15 s): +4 from 4 10 s ago spent it",
            json!(null),
            8,
            10,
            vec![ev(10, 4)],
            None,
            "ScaleUpLimit",
        ),
        (
            "default up: an event 20 s ago is outside 15 s",
            json!(null),
            4,
            10,
            vec![ev(20, 2)],
            Some(8),
            "ScaleUpLimit",
        ),
        (
            "within the limit: the wanted count",
            pods_up(4, 60),
            4,
            6,
            vec![ev(30, 1)],
            Some(6),
            "DesiredWithinRange",
        ),
        (
            "Percent down 50% of 8 per 60 s, 2 removed already",
            down(
                json!([{"type": "Percent", "value": 50, "periodSeconds": 60}]),
                "Max",
            ),
            6,
            1,
            vec![ev(30, -2)],
            Some(4),
            "ScaleDownLimit",
        ),
        (
            "Max down: the larger of 1 pod and 50% per 60 s",
            down(
                json!([{"type": "Pods", "value": 1, "periodSeconds": 60},
                       {"type": "Percent", "value": 50, "periodSeconds": 60}]),
                "Max",
            ),
            8,
            1,
            vec![],
            Some(4),
            "ScaleDownLimit",
        ),
        (
            "Min down: the smaller, and its period's events",
            down(
                json!([{"type": "Pods", "value": 1, "periodSeconds": 60},
                       {"type": "Percent", "value": 50, "periodSeconds": 10}]),
                "Min",
            ),
            7,
            1,
            vec![ev(30, -1)],
            None,
            "ScaleDownLimit",
        ),
    ];
    for (what, behavior, current, want, events, scale_to, reason) in cases {
        let h = hpa(1, 10, 50, behavior);
        // Every pod at `want / current` of the 50% target.
        let names: Vec<String> = (0..current).map(|i| format!("p{i}")).collect();
        let pods: Vec<PodInfo> = names.iter().map(|n| pod(n, true, Some(1000))).collect();
        let each = i64::from(want) * 500 / i64::from(current);
        let u: HashMap<String, Usage> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    Usage {
                        cpu: each,
                        memory: 0,
                    },
                )
            })
            .collect();
        let d = reconcile(&Input {
            hpa: &h,
            spec_replicas: current,
            status_replicas: current,
            pods: &pods,
            usage: Ok(&u),
            now: at(0),
            history: &[],
            events: &events,
        });
        assert_eq!(d.scale_to, scale_to, "{what}");
        assert_eq!(
            cond(&d, "ScalingLimited").reason.as_deref(),
            Some(reason),
            "{what}"
        );
        // The decision's own scale is remembered.
        let own = d.events.last().filter(|e| e.at == at(0)).map(|e| e.change);
        assert_eq!(own, scale_to.map(|n| n - current), "{what}");
    }
}

#[test]
fn scale_events_are_kept_for_the_longest_policy_period() {
    let h = hpa(
        1,
        10,
        50,
        json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 15},
            {"type": "Pods", "value": 1, "periodSeconds": 120}]}}),
    );
    let pods = [pod("a", true, Some(1000))];
    let u = usage(&[("a", 500)]);
    let d = reconcile(&Input {
        hpa: &h,
        spec_replicas: 1,
        status_replicas: 1,
        pods: &pods,
        usage: Ok(&u),
        now: at(0),
        history: &[],
        events: &[ev(200, 1), ev(119, -1), ev(30, 2)],
    });
    assert_eq!(d.scale_to, None);
    assert_eq!(d.events, [ev(119, -1), ev(30, 2)]);
    // Without behavior the defaults' 15 s bound them.
    let h = hpa(1, 10, 50, json!(null));
    let d = reconcile(&Input {
        hpa: &h,
        spec_replicas: 1,
        status_replicas: 1,
        pods: &pods,
        usage: Ok(&u),
        now: at(0),
        history: &[],
        events: &[ev(16, 1), ev(14, 1)],
    });
    assert_eq!(d.events, [ev(14, 1)]);
}
