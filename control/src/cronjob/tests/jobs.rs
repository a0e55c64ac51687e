//! History limits, the active list and the last times.

use super::*;

#[test]
fn finished_jobs_beyond_the_history_limits_go_oldest_first() {
    let jobs = vec![
        job("ok-3", "Complete", Some("2024-05-15T10:00:00Z")),
        job("ok-1", "Complete", Some("2024-05-15T09:40:00Z")),
        job("ok-never", "Complete", None),
        job("ok-2", "Complete", Some("2024-05-15T09:50:00Z")),
        job("bad-1", "Failed", Some("2024-05-15T09:00:00Z")),
        job("bad-2", "Failed", Some("2024-05-15T09:10:00Z")),
        job("running", "active", Some("2024-05-15T10:20:00Z")),
    ];
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "2 successful, 1 failed kept",
            json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
            vec!["ok-1", "ok-2", "bad-1"],
        ),
        (
            "none kept",
            json!({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0}),
            vec!["ok-1", "ok-2", "ok-3", "ok-never", "bad-1", "bad-2"],
        ),
        ("no limits: all kept", json!({}), vec![]),
        (
            "within the limits",
            json!({"successfulJobsHistoryLimit": 4, "failedJobsHistoryLimit": 2}),
            vec![],
        ),
    ];
    for (what, limits, want) in cases {
        let c =
            cron(json!({"spec": limits, "status": {"lastScheduleTime": "2024-05-15T10:30:00Z"}}));
        let d = reconcile(&c, &jobs, now());
        let deleted: Vec<&str> = d.delete.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(deleted, want, "{what}");
        let events: Vec<String> = d.events.iter().map(|e| e.2.clone()).collect();
        let expect: Vec<String> = want.iter().map(|n| format!("Deleted job {n}")).collect();
        assert_eq!(events, expect, "{what}");
    }
    // A Job already being deleted neither counts nor goes again.
    let mut going = (*job("ok-0", "Complete", Some("2024-05-15T09:00:00Z"))).clone();
    going.metadata.deletion_timestamp = Some(meta::time(now()));
    let c = cron(json!({"spec": {"successfulJobsHistoryLimit": 1}}));
    let d = reconcile(
        &c,
        &[
            Arc::new(going),
            job("ok-1", "Complete", Some("2024-05-15T09:40:00Z")),
        ],
        now(),
    );
    assert!(d.delete.is_empty(), "{:?}", d.delete);
}

#[test]
fn status_tracks_active_jobs_completions_and_missing_ones() {
    let stored = |name: &str, rv: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "name": name, "namespace": "ns",
               "uid": format!("uid-{name}"), "resourceVersion": rv})
    };
    let c = cron(json!({"status": {
        "lastScheduleTime": "2024-05-15T10:30:00Z",
        "lastSuccessfulTime": "2024-05-15T09:00:00Z",
        "active": [stored("b", "1"), stored("done", "1"), stored("gone", "1")]
    }}));
    let jobs = [
        job("a", "active", Some("2024-05-15T10:10:00Z")),
        job("b", "active", Some("2024-05-15T10:20:00Z")),
        job("done", "Complete", Some("2024-05-15T10:00:00Z")),
        job("old", "Complete", Some("2024-05-15T08:00:00Z")),
    ];
    let d = reconcile(&c, &jobs, now());
    let s = d.status.clone().expect("the active list changed");
    assert_eq!(active_names(&s), ["b", "a"], "stored order, then new ones");
    let refs = s.active.as_ref().unwrap();
    assert_eq!(
        refs[0].resource_version.as_deref(),
        Some("1"),
        "stored references kept"
    );
    assert_eq!(
        (
            refs[1].api_version.as_deref(),
            refs[1].kind.as_deref(),
            refs[1].uid.as_deref()
        ),
        (Some("batch/v1"), Some("Job"), Some("uid-a"))
    );
    assert_eq!(
        (
            refs[1].namespace.as_deref(),
            refs[1].resource_version.as_deref()
        ),
        (Some("ns"), Some("7"))
    );
    assert_eq!(
        s.last_successful_time,
        Some(meta::time(ts("2024-05-15T10:00:00Z")))
    );
    let events: Vec<(&str, &str)> = d
        .events
        .iter()
        .map(|e| (e.1.as_str(), e.2.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            (
                "SawCompletedJob",
                "Saw completed job: done, status: Complete"
            ),
            ("MissingJob", "Active job went missing: gone"),
        ]
    );
    // Written back, the next pass has nothing to say.
    let mut c2 = c.clone();
    c2.status = Some(s);
    let d2 = reconcile(&c2, &jobs, now());
    assert_eq!((d2.status, d2.events.len()), (None, 0));
}

#[test]
fn an_existing_job_for_the_time_is_not_made_again() {
    let name = format!("tick-{}", minutes("2024-05-15T10:30:00Z"));
    let d = reconcile(&cron(json!({})), &[job(&name, "active", Some(NOW))], now());
    assert_eq!(d.create, None);
    let s = d.status.unwrap();
    assert_eq!(
        s.last_schedule_time,
        Some(meta::time(ts("2024-05-15T10:30:00Z")))
    );
    assert_eq!(active_names(&s), [name]);
}
