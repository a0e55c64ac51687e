//! A CronJob's Jobs: their state, their references, and new ones from the
//! template; and the times the schedule missed.

use super::schedule::Schedule;
use crate::meta;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The annotation with a Job's scheduled time.
pub const SCHEDULED_KEY: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// More missed times than this earn a warning.
const TOO_MANY_MISSED: u64 = 100;

/// `Complete` or `Failed`, whichever condition is True.
pub(super) fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

pub(super) fn name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or("")
}

pub(super) fn uid(job: &Job) -> &str {
    job.metadata.uid.as_deref().unwrap_or("")
}

/// The reference to `job` in `status.active`.
pub(super) fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Kubernetes' `getJobName`: the scheduled time in minutes since the epoch,
/// so one scheduled time always names the same Job.
pub(super) fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    let cj_name = cj.metadata.name.as_deref().unwrap_or("");
    format!("{cj_name}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job for `scheduled`, as Kubernetes' `getJobFromTemplate2` builds it.
pub(super) fn from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj.spec.as_ref().map(|s| &s.job_template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let mut annotations = tmeta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(SCHEDULED_KEY.into(), rfc3339(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![meta::controller_ref(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

/// Go's RFC 3339 in `tz`: `Z` for a zero offset, `±hh:mm` otherwise.
pub(super) fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's RFC 1123 with a numeric zone, in UTC, as Kubernetes' events print times.
pub(super) fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// The latest scheduled time in (`earliest`, `now`], with a warning count
/// when more than a hundred were missed; `Err` for a schedule that never fires.
pub(super) fn most_recent(
    s: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> Result<Option<(Timestamp, Option<u64>)>, String> {
    let never = || "no time matches the schedule".to_string();
    let first = s.next(earliest, tz).ok_or_else(never)?;
    if first > now {
        return Ok(None);
    }
    let mut last = first;
    for _ in 0..TOO_MANY_MISSED {
        match s.next(last, tz) {
            Some(t) if t <= now => last = t,
            _ => return Ok(Some((last, None))),
        }
    }
    let second = s.next(first, tz).ok_or_else(never)?;
    // Kubernetes' estimate: how many first-to-second periods fit until now.
    let period = (second.as_second() - first.as_second()).max(1);
    let missed = (now.as_second() - first.as_second()) / period + 1;
    Ok(Some((latest(s, tz, last, now), u64::try_from(missed).ok())))
}

/// The latest scheduled time at or before `now`, given `from` with
/// `next(from) <= now`: a binary search over `next`, which only grows.
fn latest(s: &Schedule, tz: &TimeZone, from: Timestamp, now: Timestamp) -> Timestamp {
    let fires_by = |secs: i64| {
        Timestamp::from_second(secs)
            .ok()
            .and_then(|t| s.next(t, tz))
            .is_some_and(|t| t <= now)
    };
    let (mut lo, mut hi) = (from.as_second(), now.as_second());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fires_by(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Timestamp::from_second(lo)
        .ok()
        .and_then(|t| s.next(t, tz))
        .filter(|t| *t <= now)
        .unwrap_or(from)
}
