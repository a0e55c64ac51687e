//! A Job's status: conditions, completed-index lists, and the normal form
//! stored and computed statuses are compared in.

use crate::meta;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use std::collections::BTreeSet;

/// Whether a condition of this type has this status.
pub(super) fn has_condition(s: &JobStatus, type_: &str, status: &str) -> bool {
    s.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == status)
}

/// Whether the Job has finished: Complete or Failed is True.
pub(super) fn finished(s: &JobStatus) -> bool {
    has_condition(s, "Complete", "True") || has_condition(s, "Failed", "True")
}

/// When a finished Job finished: its completion time, else when its
/// Complete or Failed condition turned True.
pub(super) fn finish_time(s: &JobStatus) -> Option<Timestamp> {
    if let Some(t) = &s.completion_time {
        return Some(t.0);
    }
    s.conditions
        .iter()
        .flatten()
        .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .find_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Appends a True condition (a finishing one: it never was there before).
pub(super) fn add_condition(
    s: &mut JobStatus,
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    s.conditions
        .get_or_insert_with(Vec::new)
        .push(condition(type_, "True", reason, message, now));
}

/// Makes a condition True, adding or flipping it; whether it changed.
pub(super) fn set_condition(
    s: &mut JobStatus,
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let conditions = s.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == "True" => false,
        Some(c) => {
            *c = condition(type_, "True", reason, message, now);
            true
        }
        None => {
            conditions.push(condition(type_, "True", reason, message, now));
            true
        }
    }
}

/// Flips an existing True condition to False (an absent one stays absent,
/// as Kubernetes' `ensureJobConditionStatus` leaves it).
pub(super) fn set_condition_false(
    s: &mut JobStatus,
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = s.conditions.iter_mut().flatten();
    if let Some(c) = conditions
        .into_iter()
        .find(|c| c.type_ == type_ && c.status == "True")
    {
        *c = condition(type_, "False", reason, message, now);
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(meta::time(now)),
        last_transition_time: Some(meta::time(now)),
    }
}

/// Indexes as Kubernetes writes `completedIndexes`: ascending, runs of
/// consecutive indexes as `first-last`, comma-separated (`1,3-5`).
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(i) => *last = i,
            _ => runs.push((i, i)),
        }
    }
    let parts: Vec<String> = runs
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    parts.join(",")
}

/// Parses a `completedIndexes` list; malformed parts are skipped.
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
            // Bounded so a hostile status cannot make a huge set.
            if a >= 0 && a <= b && b - a <= 1_000_000 {
                out.extend(a..=b);
            }
        }
    }
    out
}

/// Zero counts and empty lists as absent, so a stored status read back
/// compares equal to a computed one and an idle pass writes nothing.
pub(super) fn normalized(mut s: JobStatus) -> JobStatus {
    for f in [
        &mut s.active,
        &mut s.ready,
        &mut s.succeeded,
        &mut s.failed,
        &mut s.terminating,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    if s.completed_indexes.as_deref() == Some("") {
        s.completed_indexes = None;
    }
    if s.failed_indexes.as_deref() == Some("") {
        s.failed_indexes = None;
    }
    let uncounted = s.uncounted_terminated_pods.as_ref();
    if uncounted.is_some_and(|u| {
        u.succeeded.as_ref().is_none_or(Vec::is_empty)
            && u.failed.as_ref().is_none_or(Vec::is_empty)
    }) {
        s.uncounted_terminated_pods = None;
    }
    s
}
