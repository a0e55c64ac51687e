//! Table tests for the CronJob controller: scheduling here, the Jobs it
//! keeps (history, active list) in `jobs`.

mod jobs;

use super::*;
use crate::meta;
use serde_json::{json, Value};

/// 20 s after a 10-minute mark.
const NOW: &str = "2024-05-15T10:30:20Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    ts(NOW)
}

/// Overlays `patch` onto `base` (objects merge, everything else replaces).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Every 10 minutes, last run at 10:20.
fn cron(patch: Value) -> CronJob {
    let mut v = json!({
        "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid",
                     "creationTimestamp": "2024-05-15T09:00:00Z"},
        "spec": {
            "schedule": "*/10 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}, "annotations": {"x": "y"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]
                }}}
            }
        },
        "status": {"lastScheduleTime": "2024-05-15T10:20:00Z"}
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

/// A Job of the CronJob: `state` is `active`, `Complete` or `Failed`.
fn job(name: &str, state: &str, started: Option<&str>) -> Arc<Job> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                     "resourceVersion": "7", "creationTimestamp": started,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                          "uid": "cj-uid", "controller": true}]},
        "spec": {"template": {}},
        "status": {"startTime": started}
    });
    if state != "active" {
        merge(
            &mut v,
            json!({"status": {"conditions": [{"type": state, "status": "True"}]}}),
        );
    }
    if state == "Complete" {
        merge(&mut v, json!({"status": {"completionTime": started}}));
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

fn minutes(t: &str) -> i64 {
    ts(t).as_second() / 60
}

fn reasons(d: &Decision) -> Vec<&str> {
    d.events.iter().map(|(_, r, _)| r.as_str()).collect()
}

fn status_of(cj: &CronJob, d: &Decision) -> CronJobStatus {
    d.status
        .clone()
        .or_else(|| cj.status.clone())
        .unwrap_or_default()
}

fn active_names(s: &CronJobStatus) -> Vec<String> {
    s.active
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect()
}

/// 10:40:00 plus Kubernetes' 100 ms slack, from 10:30:20.
fn until_next() -> Option<Duration> {
    Some(Duration::from_millis(580_000 + 100))
}

#[test]
fn starts_a_job_for_the_most_recent_unmet_time_from_the_template() {
    let c = cron(json!({}));
    let d = reconcile(&c, &[], now());
    let j = d.create.as_ref().expect("10:30 is due");
    let m = &j.metadata;
    let name = format!("tick-{}", minutes("2024-05-15T10:30:00Z"));
    assert_eq!(m.name.as_deref(), Some(name.as_str()));
    assert_eq!(m.namespace.as_deref(), Some("ns"));
    assert_eq!(m.labels.as_ref().unwrap()["app"], "tick");
    let ann = m.annotations.as_ref().unwrap();
    assert_eq!(ann["x"], "y");
    assert_eq!(ann[SCHEDULED_KEY], "2024-05-15T10:30:00Z");
    let owner = meta::controller_of(m).unwrap();
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.uid.as_str()
        ),
        ("batch/v1", "CronJob", "cj-uid")
    );
    assert_eq!(j.spec.as_ref().unwrap().backoff_limit, Some(2));
    assert_eq!(
        d.events,
        [(
            "Normal".into(),
            "SuccessfulCreate".into(),
            format!("Created job {name}")
        )]
    );
    let s = d.status.unwrap();
    assert_eq!(
        s.last_schedule_time,
        Some(meta::time(ts("2024-05-15T10:30:00Z")))
    );
    assert_eq!(d.requeue_after, until_next());
}

#[test]
fn with_nothing_due_it_only_waits_for_the_next_time() {
    let c = cron(json!({"status": {"lastScheduleTime": "2024-05-15T10:30:00Z"}}));
    let d = reconcile(&c, &[], now());
    assert_eq!(d.create, None);
    assert_eq!(d.status, None, "an idle pass writes nothing");
    assert!(d.events.is_empty());
    assert_eq!(d.requeue_after, until_next());
}

#[test]
fn missed_runs_start_only_the_latest() {
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "fifteen missed since 08:00",
            json!({"status": {"lastScheduleTime": "2024-05-15T08:00:00Z"}}),
            false,
        ),
        (
            "never run: counted from creation",
            json!({"status": null}),
            false,
        ),
        (
            "two weeks missed: a warning too",
            json!({"metadata": {"creationTimestamp": "2024-05-01T00:00:00Z"}, "status": null}),
            true,
        ),
    ];
    let latest = format!("tick-{}", minutes("2024-05-15T10:30:00Z"));
    for (what, patch, warned) in cases {
        let d = reconcile(&cron(patch), &[], now());
        let made = d.create.as_ref().and_then(|j| j.metadata.name.clone());
        assert_eq!(made.as_deref(), Some(latest.as_str()), "{what}");
        let warning = d.events.iter().find(|e| e.1 == "TooManyMissedTimes");
        assert_eq!(warning.is_some(), warned, "{what}");
        if let Some((t, _, msg)) = warning {
            assert_eq!(t, "Warning");
            assert!(
                msg.starts_with("too many missed start times: 2079."),
                "{msg}"
            );
        }
    }
}

#[test]
fn a_starting_deadline_skips_times_too_old() {
    let cases = [(10, false), (20, true), (300, true)];
    for (deadline, starts) in cases {
        let c = cron(json!({"spec": {"startingDeadlineSeconds": deadline}}));
        let d = reconcile(&c, &[], now());
        assert_eq!(d.create.is_some(), starts, "deadline {deadline}");
        if !starts {
            let msg = "Missed scheduled time to start a job: Wed, 15 May 2024 10:30:00 +0000";
            assert_eq!(
                d.events,
                [("Warning".into(), "MissSchedule".into(), msg.into())]
            );
            assert_eq!(d.status, None, "the missed time is not recorded");
            assert_eq!(d.requeue_after, until_next());
        }
    }
}

#[test]
fn the_concurrency_policy_decides_about_running_jobs() {
    let running = || job("tick-1", "active", Some("2024-05-15T10:20:00Z"));
    let finished = || job("tick-0", "Complete", Some("2024-05-15T10:10:00Z"));
    /// (case, policy, jobs, starts, deleted)
    type Row = (
        &'static str,
        &'static str,
        Vec<Arc<Job>>,
        bool,
        Vec<&'static str>,
    );
    let cases: Vec<Row> = vec![
        (
            "Allow runs alongside",
            "Allow",
            vec![running()],
            true,
            vec![],
        ),
        ("Forbid waits", "Forbid", vec![running()], false, vec![]),
        (
            "Forbid ignores finished jobs",
            "Forbid",
            vec![finished()],
            true,
            vec![],
        ),
        (
            "Replace deletes the running job",
            "Replace",
            vec![running()],
            true,
            vec!["tick-1"],
        ),
    ];
    for (what, policy, jobs, starts, gone) in cases {
        let c = cron(json!({"spec": {"concurrencyPolicy": policy}}));
        let d = reconcile(&c, &jobs, now());
        assert_eq!(d.create.is_some(), starts, "{what}");
        let deleted: Vec<&str> = d.delete.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(deleted, gone, "{what}");
        let s = status_of(&c, &d);
        match policy {
            "Forbid" if !starts => {
                assert_eq!(reasons(&d), ["JobAlreadyActive"], "{what}");
                assert_eq!(
                    s.last_schedule_time,
                    c.status.as_ref().unwrap().last_schedule_time,
                    "{what}"
                );
            }
            "Replace" => {
                assert_eq!(d.delete[0].1, "uid-tick-1", "{what}");
                assert_eq!(
                    reasons(&d),
                    ["SuccessfulDelete", "SuccessfulCreate"],
                    "{what}"
                );
                assert_eq!(d.events[0].2, "Deleted job tick-1", "{what}");
                assert!(active_names(&s).is_empty(), "{what}");
            }
            _ => {}
        }
    }
}

#[test]
fn a_suspended_cronjob_starts_nothing() {
    let c = cron(json!({"spec": {"suspend": true}}));
    let d = reconcile(&c, &[], now());
    assert_eq!(d, Decision::default());
}

#[test]
fn schedules_read_in_the_time_zone() {
    // 06:00 in New York (EDT, UTC-4) is 10:00Z.
    let at = ts("2024-05-15T10:00:20Z");
    let last = json!({"status": {"lastScheduleTime": "2024-05-14T10:00:00Z"}});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "spec.timeZone",
            json!({"spec": {"timeZone": "America/New_York", "schedule": "0 6 * * *"}}),
            "2024-05-15T06:00:00-04:00",
        ),
        (
            "a TZ= prefix",
            json!({"spec": {"schedule": "TZ=America/New_York 0 6 * * *"}}),
            "2024-05-15T10:00:00Z",
        ),
        (
            "a CRON_TZ= prefix",
            json!({"spec": {"schedule": "CRON_TZ=America/New_York 0 6 * * *"}}),
            "2024-05-15T10:00:00Z",
        ),
    ];
    for (what, mut patch, annotation) in cases {
        merge(&mut patch, last.clone());
        let d = reconcile(&cron(patch), &[], at);
        let j = d
            .create
            .unwrap_or_else(|| panic!("{what}: 06:00 local is due"));
        let m = j.metadata;
        assert_eq!(
            m.name,
            Some(format!("tick-{}", minutes("2024-05-15T10:00:00Z"))),
            "{what}"
        );
        assert_eq!(m.annotations.unwrap()[SCHEDULED_KEY], annotation, "{what}");
        assert_eq!(
            d.requeue_after,
            Some(Duration::from_millis(86_400_000 - 20_000 + 100)),
            "{what}"
        );
    }
}

#[test]
fn unknown_zones_and_bad_schedules_only_warn() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "unknown zone",
            json!({"spec": {"timeZone": "Mars/Olympus"}}),
            "UnknownTimeZone",
            "invalid timeZone: \"Mars/Olympus\"",
        ),
        (
            "unparseable",
            json!({"spec": {"schedule": "61 * * * *"}}),
            "InvalidSchedule",
            "invalid schedule: 61 * * * * : end of range (61) above maximum (59)",
        ),
        (
            "never fires",
            json!({"spec": {"schedule": "0 0 31 2 *"}}),
            "InvalidSchedule",
            "invalid schedule: 0 0 31 2 * : ",
        ),
    ];
    for (what, patch, reason, msg) in cases {
        let d = reconcile(&cron(patch), &[], now());
        assert_eq!(d.events.len(), 1, "{what}");
        let (t, r, m) = &d.events[0];
        assert_eq!((t.as_str(), r.as_str()), ("Warning", reason), "{what}");
        assert!(m.starts_with(msg), "{what}: {m}");
        assert_eq!(
            (d.create, d.requeue_after, d.status),
            (None, None, None),
            "{what}"
        );
    }
}

#[test]
fn a_cronjob_being_deleted_starts_and_deletes_nothing() {
    let c = cron(
        json!({"metadata": {"deletionTimestamp": NOW}, "spec": {"successfulJobsHistoryLimit": 0}}),
    );
    let d = reconcile(
        &c,
        &[job("ok", "Complete", Some("2024-05-15T09:00:00Z"))],
        now(),
    );
    assert_eq!((d.create, d.delete.len(), d.requeue_after), (None, 0, None));
}
