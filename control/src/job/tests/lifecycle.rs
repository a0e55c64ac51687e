//! Failures, back-off, deadlines, suspension and TTL.

use super::*;

fn failed_conditions(reason: &str) -> Vec<(String, String, String)> {
    ["FailureTarget", "Failed"]
        .map(|t| (t.into(), "True".into(), reason.into()))
        .into()
}

#[test]
fn passing_the_backoff_limit_fails_the_job_and_deletes_its_pods() {
    let cases: Vec<(&str, Value, Pods, bool)> = vec![
        (
            "failures above the limit",
            json!({"spec": {"backoffLimit": 1}}),
            vec![
                ended("f1", "Failed", 900),
                ended("f2", "Failed", 800),
                running("a"),
            ],
            true,
        ),
        (
            "failures at the limit are still allowed",
            json!({"spec": {"backoffLimit": 2}}),
            vec![
                ended("f1", "Failed", 900),
                ended("f2", "Failed", 800),
                running("a"),
            ],
            false,
        ),
        (
            "a stored failure count counts",
            json!({"spec": {"backoffLimit": 1}, "status": {"failed": 2}}),
            vec![running("a")],
            true,
        ),
        (
            "OnFailure: container restarts count",
            json!({"spec": {"backoffLimit": 2,
                            "template": {"spec": {"restartPolicy": "OnFailure"}}}}),
            vec![pod(
                "a",
                "Running",
                json!({"status": {"containerStatuses": [{
                    "name": "c", "image": "perl", "imageID": "", "ready": false, "restartCount": 2
                }]}}),
            )],
            true,
        ),
        (
            "OnFailure: fewer restarts than the limit",
            json!({"spec": {"backoffLimit": 3,
                            "template": {"spec": {"restartPolicy": "OnFailure"}}}}),
            vec![pod(
                "a",
                "Running",
                json!({"status": {"containerStatuses": [{
                    "name": "c", "image": "perl", "imageID": "", "ready": false, "restartCount": 2
                }]}}),
            )],
            false,
        ),
    ];
    for (what, patch, pods, fails) in cases {
        let j = job(patch);
        let d = reconcile(&j, &pods, now());
        let s = status_of(&j, &d);
        if fails {
            assert_eq!(
                conditions(&s),
                failed_conditions("BackoffLimitExceeded"),
                "{what}"
            );
            assert_eq!(deleted(&d), ["a"], "{what}");
            assert!(d.create.is_empty(), "{what}");
            assert_eq!((s.active, s.terminating), (None, Some(1)), "{what}");
            assert_eq!(s.completion_time, None, "{what}: failures have none");
            let warning = (
                "Warning".to_string(),
                "BackoffLimitExceeded".to_string(),
                "Job has reached the specified backoff limit".to_string(),
            );
            assert_eq!(d.events, [warning], "{what}");
        } else {
            assert!(conditions(&s).is_empty(), "{what}");
            assert!(d.delete.is_empty(), "{what}");
        }
    }
}

#[test]
fn failures_back_off_pod_creation_doubling_from_ten_seconds_up_to_six_minutes() {
    let failed = |n: usize, last: i64| -> Pods {
        (0..n)
            .map(|i| ended(&format!("f{i}"), "Failed", last + i64::try_from(i).unwrap()))
            .collect()
    };
    let cases: Vec<(&str, Pods, Option<u64>)> = vec![
        ("one failure 4 s ago: 6 s left", failed(1, 4), Some(6)),
        ("one failure 15 s ago: done waiting", failed(1, 15), None),
        (
            "two failures, the last 15 s ago: 20 s back-off",
            failed(2, 15),
            Some(5),
        ),
        ("three failures: 40 s", failed(3, 15), Some(25)),
        ("six failures: 320 s", failed(6, 100), Some(220)),
        (
            "seven failures 100 s ago: capped at 360 s",
            failed(7, 100),
            Some(260),
        ),
        (
            "failures before the last success do not count",
            vec![ended("f", "Failed", 4), ended("s", "Succeeded", 2)],
            None,
        ),
    ];
    for (what, pods, wait) in cases {
        let j = job(json!({"spec": {"completions": 10, "backoffLimit": 10}}));
        let d = reconcile(&j, &pods, now());
        match wait {
            Some(secs) => {
                assert!(d.create.is_empty(), "{what}");
                // The deadline-free Job's only timer is the back-off.
                assert_eq!(d.requeue_after, Some(Duration::from_secs(secs)), "{what}");
            }
            None => {
                assert_eq!(d.create.len(), 2, "{what}");
                assert_eq!(d.requeue_after, None, "{what}");
            }
        }
    }
}

#[test]
fn the_active_deadline_fails_the_job_counting_from_its_start() {
    let cases: Vec<(&str, Value, Option<u64>, bool)> = vec![
        (
            "past the deadline",
            json!({"spec": {"activeDeadlineSeconds": 100}}),
            None,
            true,
        ),
        (
            "before it: wake at it",
            json!({"spec": {"activeDeadlineSeconds": 130}}),
            Some(30),
            false,
        ),
        (
            "not started yet: the whole deadline ahead",
            json!({"spec": {"activeDeadlineSeconds": 100}, "status": {"startTime": null}}),
            Some(100),
            false,
        ),
        (
            "suspended Jobs have no deadline",
            json!({"spec": {"activeDeadlineSeconds": 10, "suspend": true}}),
            None,
            false,
        ),
        (
            "the back-off limit goes first",
            json!({"spec": {"activeDeadlineSeconds": 10, "backoffLimit": 0}}),
            None,
            true,
        ),
    ];
    for (what, patch, wait, fails) in cases {
        let j = job(patch);
        let backoff = j.spec.as_ref().unwrap().backoff_limit == Some(0);
        let pods = if backoff {
            vec![running("a"), ended("f", "Failed", 1000)]
        } else {
            vec![running("a")]
        };
        let d = reconcile(&j, &pods, now());
        assert_eq!(d.requeue_after, wait.map(Duration::from_secs), "{what}");
        let s = status_of(&j, &d);
        if fails {
            let reason = if backoff {
                "BackoffLimitExceeded"
            } else {
                "DeadlineExceeded"
            };
            assert_eq!(conditions(&s), failed_conditions(reason), "{what}");
            assert_eq!(deleted(&d), ["a"], "{what}");
            if !backoff {
                let msg = "Job was active longer than specified deadline";
                assert_eq!(
                    d.events,
                    [("Warning".into(), reason.into(), msg.into())],
                    "{what}"
                );
            }
        } else {
            assert!(!conditions(&s).iter().any(|c| c.0 == "Failed"), "{what}");
        }
    }
}

#[test]
fn suspending_deletes_the_pods_and_resuming_restarts_the_clock() {
    let j = job(json!({"spec": {"suspend": true}, "status": {"startTime": null}}));
    let d = reconcile(&j, &[ready("a"), running("b")], now());
    assert_eq!(deleted(&d), ["b", "a"], "not Ready first");
    assert!(d.create.is_empty());
    let s = d.status.clone().unwrap();
    assert_eq!(
        conditions(&s),
        [("Suspended".into(), "True".into(), "JobSuspended".into())]
    );
    assert_eq!(
        s.conditions.as_ref().unwrap()[0].message.as_deref(),
        Some("Job suspended")
    );
    assert_eq!(s.start_time, None, "a suspended Job does not start");
    assert_eq!((s.active, s.ready, s.terminating), (None, None, Some(2)));
    assert_eq!(reasons(&d), ["Suspended"]);

    // Resumed: the condition flips, the clock restarts, pods come back.
    let mut resumed = j.clone();
    resumed.spec.as_mut().unwrap().suspend = Some(false);
    resumed.status = Some(JobStatus {
        start_time: Some(meta::time(Timestamp::from_second(NOW - 500).unwrap())),
        ..s
    });
    let d = reconcile(&resumed, &[], now());
    let s = d.status.clone().unwrap();
    assert_eq!(
        conditions(&s),
        [("Suspended".into(), "False".into(), "JobResumed".into())]
    );
    assert_eq!(s.start_time, Some(meta::time(now())));
    assert_eq!(d.create.len(), 2);
    assert_eq!(reasons(&d), ["Resumed"]);
}

#[test]
fn the_first_pass_starts_the_clock() {
    let j = job(json!({"status": null}));
    let s = reconcile(&j, &[], now()).status.unwrap();
    assert_eq!(s.start_time, Some(meta::time(now())));
    assert_eq!(s.active, Some(2));
}

#[test]
fn a_finished_job_waits_only_for_its_ttl() {
    let complete = json!({"status": {
        "completionTime": ago(100),
        "conditions": [{"type": "Complete", "status": "True"}]
    }});
    let failed = json!({"status": {"conditions": [
        {"type": "Failed", "status": "True", "lastTransitionTime": ago(100)}
    ]}});
    /// (case, patch, ttl, deleted, requeue seconds)
    type Row = (&'static str, Value, Option<i32>, bool, Option<u64>);
    let cases: Vec<Row> = vec![
        (
            "complete, TTL passed",
            complete.clone(),
            Some(60),
            true,
            None,
        ),
        (
            "complete, TTL exactly now",
            complete.clone(),
            Some(100),
            true,
            None,
        ),
        (
            "complete, TTL ahead",
            complete.clone(),
            Some(300),
            false,
            Some(200),
        ),
        ("failed, TTL passed", failed.clone(), Some(0), true, None),
        ("failed, TTL ahead", failed, Some(160), false, Some(60)),
        ("no TTL: kept", complete, None, false, None),
    ];
    for (what, mut patch, ttl, delete, wait) in cases {
        merge(
            &mut patch,
            json!({"spec": {"ttlSecondsAfterFinished": ttl}}),
        );
        let j = job(patch);
        // No pods, yet nothing is created: a finished Job is done.
        let d = reconcile(&j, &[running("a")], now());
        assert_eq!(d.delete_job, delete, "{what}");
        assert_eq!(d.requeue_after, wait.map(Duration::from_secs), "{what}");
        assert!(d.create.is_empty() && d.delete.is_empty(), "{what}");
        assert_eq!(d.status, None, "{what}");
    }
}

#[test]
fn a_job_finishing_now_wakes_at_its_ttl_not_its_deadline() {
    let j = job(json!({"spec": {"ttlSecondsAfterFinished": 30, "activeDeadlineSeconds": 1000}}));
    let pods = [succeeded("a"), succeeded("b"), succeeded("c")];
    let d = reconcile(&j, &pods, now());
    assert!(!d.delete_job, "the status is written first");
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
}
