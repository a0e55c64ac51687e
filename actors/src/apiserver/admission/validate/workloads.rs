//! Deployment, ReplicaSet, ReplicationController, StatefulSet, DaemonSet, Job
//! and CronJob.

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{self, selector_is_empty, selector_matches, show_selector};
use super::pod::{pod_spec, RESTART_POLICIES};
use crate::apiserver::admission::cron;
use crate::apiserver::admission::field::{at, go_map, q, Errors};

/// A selector that must be set and must select the template's labels.
fn selector_and_template(
    kind: &str,
    sel: &LabelSelector,
    t: &PodTemplateSpec,
    restart: &[&str],
    errs: &mut Errors,
) {
    if selector_is_empty(sel) {
        errs.required("spec.selector", "");
    } else {
        meta::selector("spec.selector", sel, errs);
        let labels = t.metadata.as_ref().and_then(|m| m.labels.as_ref());
        if !selector_matches(sel, labels) {
            errs.invalid(
                "spec.template.metadata.labels",
                go_map(labels),
                "`selector` does not match template `labels`",
            );
        }
    }
    template(kind, "spec.template", t, restart, errs);
}

/// A pod template: its labels, its pod spec, and the restart policies the kind allows.
fn template(kind: &str, path: &str, t: &PodTemplateSpec, restart: &[&str], errs: &mut Errors) {
    if let Some(m) = &t.metadata {
        meta::labels(&at(path, "metadata.labels"), m.labels.as_ref(), errs);
        meta::annotations(
            &at(path, "metadata.annotations"),
            m.annotations.as_ref(),
            errs,
        );
    }
    let Some(spec) = &t.spec else {
        errs.required(&at(path, "spec"), "");
        return;
    };
    let sp = at(path, "spec");
    pod_spec(&sp, spec, errs);
    // `ValidatePodTemplateSpec`: ephemeral containers only join a running pod.
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.forbidden(
            &at(&sp, "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    }
    let rp = spec.restart_policy.as_deref().unwrap_or_default();
    // pod_spec already refused values outside the three policies.
    if RESTART_POLICIES.contains(&rp) && !restart.contains(&rp) {
        errs.not_supported(&at(&sp, "restartPolicy"), rp, restart);
    }
    if restart == ["Always"] && spec.active_deadline_seconds.is_some() {
        errs.forbidden(
            &at(&sp, "activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        );
    }
}

/// An int ≥ 0 or a percentage `0%`..`100%`.
fn int_or_percent(field: &str, v: Option<&IntOrString>, errs: &mut Errors) {
    match v {
        Some(IntOrString::Int(i)) if *i < 0 => {
            errs.invalid(field, i, "must be greater than or equal to 0")
        }
        Some(IntOrString::String(s)) => match s.strip_suffix('%').map(str::parse::<u32>) {
            Some(Ok(p)) if p > 100 => errs.invalid(field, q(s), "must not be greater than 100%"),
            Some(Ok(_)) => {}
            _ => errs.invalid(field, q(s), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
        },
        _ => {}
    }
}

fn is_zero(v: Option<&IntOrString>) -> bool {
    match v {
        None => true,
        Some(IntOrString::Int(i)) => *i == 0,
        Some(IntOrString::String(s)) => s == "0%",
    }
}

/// maxUnavailable and maxSurge of a rolling update at `path`.
fn rolling(
    path: &str,
    unavailable: Option<&IntOrString>,
    surge: Option<&IntOrString>,
    errs: &mut Errors,
) {
    int_or_percent(&at(path, "maxUnavailable"), unavailable, errs);
    int_or_percent(&at(path, "maxSurge"), surge, errs);
    if is_zero(unavailable) && is_zero(surge) {
        errs.invalid(
            &at(path, "maxUnavailable"),
            0,
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

/// Deployment spec.
pub(crate) fn deployment(d: &Deployment, errs: &mut Errors) {
    let Some(s) = &d.spec else {
        return errs.required("spec", "");
    };
    errs.non_negative("spec.replicas", s.replicas.map(i64::from));
    errs.non_negative("spec.minReadySeconds", s.min_ready_seconds.map(i64::from));
    errs.non_negative(
        "spec.revisionHistoryLimit",
        s.revision_history_limit.map(i64::from),
    );
    if let Some(p) = s.progress_deadline_seconds {
        errs.non_negative("spec.progressDeadlineSeconds", Some(p.into()));
        if p <= s.min_ready_seconds.unwrap_or(0) {
            errs.invalid(
                "spec.progressDeadlineSeconds",
                p,
                "must be greater than minReadySeconds",
            );
        }
    }
    selector_and_template("Deployment", &s.selector, &s.template, &["Always"], errs);
    if let Some(st) = &s.strategy {
        match st.type_.as_deref().unwrap_or_default() {
            "Recreate" if st.rolling_update.is_some() => errs.forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            ),
            "Recreate" => {}
            "RollingUpdate" => {
                if let Some(ru) = &st.rolling_update {
                    rolling(
                        "spec.strategy.rollingUpdate",
                        ru.max_unavailable.as_ref(),
                        ru.max_surge.as_ref(),
                        errs,
                    );
                }
            }
            t => errs.not_supported("spec.strategy.type", t, &["Recreate", "RollingUpdate"]),
        }
    }
}

/// Deployment update: the selector is immutable.
pub(crate) fn deployment_update(new: &Deployment, old: &Deployment, errs: &mut Errors) {
    let sel = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone());
    selector_immutable(sel(new), sel(old), errs);
}

fn selector_immutable(new: Option<LabelSelector>, old: Option<LabelSelector>, errs: &mut Errors) {
    if new != old {
        let shown = new
            .as_ref()
            .map(show_selector)
            .unwrap_or_else(|| "null".into());
        errs.invalid("spec.selector", shown, "field is immutable");
    }
}

/// ControllerRevision, as `ValidateControllerRevision`: data is mandatory,
/// revision non-negative.
pub(crate) fn controller_revision(r: &ControllerRevision, errs: &mut Errors) {
    if r.data.as_ref().is_none_or(|d| d.0.is_null()) {
        errs.required("data", "data is mandatory");
    }
    errs.non_negative("revision", Some(r.revision));
}

/// ControllerRevision update: data is immutable.
pub(crate) fn controller_revision_update(
    new: &ControllerRevision,
    old: &ControllerRevision,
    errs: &mut Errors,
) {
    if new.data != old.data {
        errs.invalid("data", "{...}", "field is immutable");
    }
}

/// ReplicaSet spec.
pub(crate) fn replica_set(r: &ReplicaSet, errs: &mut Errors) {
    let Some(s) = &r.spec else {
        return errs.required("spec", "");
    };
    errs.non_negative("spec.replicas", s.replicas.map(i64::from));
    errs.non_negative("spec.minReadySeconds", s.min_ready_seconds.map(i64::from));
    match &s.template {
        Some(t) => selector_and_template("ReplicaSet", &s.selector, t, &["Always"], errs),
        None => errs.required("spec.template", ""),
    }
}

/// ReplicaSet update: the selector is immutable.
pub(crate) fn replica_set_update(new: &ReplicaSet, old: &ReplicaSet, errs: &mut Errors) {
    let sel = |d: &ReplicaSet| d.spec.as_ref().map(|s| s.selector.clone());
    selector_immutable(sel(new), sel(old), errs);
}

/// ReplicationController spec, as `ValidateReplicationControllerSpec`: its
/// selector is a plain map, required (defaulted from the template's labels)
/// and matching them. Unlike a ReplicaSet's it may change on update.
pub(crate) fn replication_controller(rc: &ReplicationController, errs: &mut Errors) {
    let Some(s) = &rc.spec else {
        return errs.required("spec", "");
    };
    errs.non_negative("spec.minReadySeconds", s.min_ready_seconds.map(i64::from));
    let selector = s.selector.as_ref().filter(|m| !m.is_empty());
    if selector.is_none() {
        errs.required("spec.selector", "");
    }
    errs.non_negative("spec.replicas", s.replicas.map(i64::from));
    let Some(t) = &s.template else {
        return errs.required("spec.template", "");
    };
    let labels = t.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let matches = |sel: &std::collections::BTreeMap<String, String>| {
        sel.iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    };
    if selector.is_some_and(|sel| !matches(sel)) {
        errs.invalid(
            "spec.template.metadata.labels",
            go_map(labels),
            "`selector` does not match template `labels`",
        );
    }
    template(
        "ReplicationController",
        "spec.template",
        t,
        &["Always"],
        errs,
    );
}

/// DaemonSet spec.
pub(crate) fn daemon_set(d: &DaemonSet, errs: &mut Errors) {
    let Some(s) = &d.spec else {
        return errs.required("spec", "");
    };
    errs.non_negative("spec.minReadySeconds", s.min_ready_seconds.map(i64::from));
    errs.non_negative(
        "spec.revisionHistoryLimit",
        s.revision_history_limit.map(i64::from),
    );
    selector_and_template("DaemonSet", &s.selector, &s.template, &["Always"], errs);
    if let Some(u) = &s.update_strategy {
        match u.type_.as_deref().unwrap_or_default() {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(ru) = &u.rolling_update {
                    rolling(
                        "spec.updateStrategy.rollingUpdate",
                        ru.max_unavailable.as_ref(),
                        ru.max_surge.as_ref(),
                        errs,
                    );
                }
            }
            t => errs.not_supported(
                "spec.updateStrategy.type",
                t,
                &["OnDelete", "RollingUpdate"],
            ),
        }
    }
}

/// DaemonSet update: the selector is immutable.
pub(crate) fn daemon_set_update(new: &DaemonSet, old: &DaemonSet, errs: &mut Errors) {
    let sel = |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone());
    selector_immutable(sel(new), sel(old), errs);
}

/// StatefulSet spec.
pub(crate) fn stateful_set(st: &StatefulSet, errs: &mut Errors) {
    let Some(s) = &st.spec else {
        return errs.required("spec", "");
    };
    errs.non_negative("spec.replicas", s.replicas.map(i64::from));
    errs.non_negative("spec.minReadySeconds", s.min_ready_seconds.map(i64::from));
    errs.non_negative(
        "spec.revisionHistoryLimit",
        s.revision_history_limit.map(i64::from),
    );
    if let Some(name) = s.service_name.as_deref().filter(|n| !n.is_empty()) {
        meta::check_name("spec.serviceName", name, meta::NameRule::Dns1035, errs);
    }
    match s.pod_management_policy.as_deref().unwrap_or_default() {
        "OrderedReady" | "Parallel" => {}
        p => errs.invalid(
            "spec.podManagementPolicy",
            q(p),
            "must be 'OrderedReady' or 'Parallel'",
        ),
    }
    if let Some(u) = &s.update_strategy {
        match u.type_.as_deref().unwrap_or_default() {
            "RollingUpdate" => {
                let ru = u.rolling_update.as_ref();
                errs.non_negative(
                    "spec.updateStrategy.rollingUpdate.partition",
                    ru.and_then(|r| r.partition).map(i64::from),
                );
                int_or_percent(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    ru.and_then(|r| r.max_unavailable.as_ref()),
                    errs,
                );
            }
            "OnDelete" if u.rolling_update.is_some() => errs.invalid(
                "spec.updateStrategy.rollingUpdate",
                "{...}",
                "only allowed for updateStrategy 'RollingUpdate'",
            ),
            "OnDelete" => {}
            t => errs.invalid(
                "spec.updateStrategy",
                q(t),
                "must be 'RollingUpdate' or 'OnDelete'",
            ),
        }
    }
    if let Some(r) = &s.persistent_volume_claim_retention_policy {
        let policies = ["Retain", "Delete"];
        let p = "spec.persistentVolumeClaimRetentionPolicy";
        errs.one_of(&at(p, "whenDeleted"), r.when_deleted.as_deref(), &policies);
        errs.one_of(&at(p, "whenScaled"), r.when_scaled.as_deref(), &policies);
    }
    for (i, pvc) in s.volume_claim_templates.iter().flatten().enumerate() {
        let p = format!("spec.volumeClaimTemplates[{i}].metadata.name");
        match pvc.metadata.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => meta::check_name(&p, n, meta::NameRule::Subdomain, errs),
            None => errs.required(&p, ""),
        }
    }
    // Containers mount the claims by their template's name, as the pods'
    // volumes will be.
    let mut template = s.template.clone();
    let claims = s.volume_claim_templates.iter().flatten();
    if let Some(spec) = template.spec.as_mut() {
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for name in claims.filter_map(|c| c.metadata.name.clone()) {
            if !volumes.iter().any(|v| v.name == name) {
                volumes.push(k8s_openapi::api::core::v1::Volume {
                    persistent_volume_claim: Some(
                        k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                            claim_name: format!("{name}-claim"),
                            read_only: None,
                        },
                    ),
                    name,
                    ..Default::default()
                });
            }
        }
    }
    selector_and_template("StatefulSet", &s.selector, &template, &["Always"], errs);
}

/// StatefulSet update: only replicas, ordinals, template, updateStrategy,
/// persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
pub(crate) fn stateful_set_update(new: &StatefulSet, old: &StatefulSet, errs: &mut Errors) {
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
        return;
    };
    let mut masked = n.clone();
    masked.replicas = o.replicas;
    masked.ordinals = o.ordinals.clone();
    masked.template = o.template.clone();
    masked.update_strategy = o.update_strategy.clone();
    masked.persistent_volume_claim_retention_policy =
        o.persistent_volume_claim_retention_policy.clone();
    masked.min_ready_seconds = o.min_ready_seconds;
    if masked != *o {
        errs.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
    }
}

/// Job spec at `path` (`spec` or `spec.jobTemplate.spec`).
fn job_spec(path: &str, s: &JobSpec, errs: &mut Errors) {
    for (f, v) in [
        ("parallelism", s.parallelism.map(i64::from)),
        ("completions", s.completions.map(i64::from)),
        ("backoffLimit", s.backoff_limit.map(i64::from)),
        ("activeDeadlineSeconds", s.active_deadline_seconds),
        (
            "ttlSecondsAfterFinished",
            s.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        errs.non_negative(&at(path, f), v);
    }
    errs.one_of(
        &at(path, "completionMode"),
        s.completion_mode.as_deref(),
        &["NonIndexed", "Indexed"],
    );
    if s.completion_mode.as_deref() == Some("Indexed") && s.completions.is_none() {
        errs.required(&at(path, "completions"), "when completion mode is Indexed");
    }
    let tp = at(path, "template");
    if let Some(sel) = s.selector.as_ref().filter(|s| !selector_is_empty(s)) {
        meta::selector(&at(path, "selector"), sel, errs);
        let labels = s.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        if !selector_matches(sel, labels) {
            errs.invalid(
                &at(&tp, "metadata.labels"),
                go_map(labels),
                "`selector` does not match template `labels`",
            );
        }
    } else if s.manual_selector == Some(true) {
        errs.required(&at(path, "selector"), "");
    }
    template("Job", &tp, &s.template, &["OnFailure", "Never"], errs);
}

/// Job spec.
pub(crate) fn job(j: &Job, errs: &mut Errors) {
    match &j.spec {
        Some(s) => job_spec("spec", s, errs),
        None => errs.required("spec", ""),
    }
}

/// Job update: selector, template and completionMode are immutable. An update that
/// leaves the selector out keeps the stored one (the registry may have generated it).
pub(crate) fn job_update(new: &mut Job, old: &Job, errs: &mut Errors) {
    let (Some(n), Some(o)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    if n.selector.is_none() {
        n.selector = o.selector.clone();
    }
    errs.immutable("spec.selector", &n.selector, &o.selector);
    if n.template != o.template {
        errs.invalid("spec.template", "{...}", "field is immutable");
    }
    errs.immutable(
        "spec.completionMode",
        &n.completion_mode,
        &o.completion_mode,
    );
}

/// CronJob spec.
pub(crate) fn cron_job(c: &CronJob, errs: &mut Errors) {
    if let Some(n) = c.metadata.name.as_deref().filter(|n| n.len() > 52) {
        errs.invalid("metadata.name", q(n), "must be no more than 52 characters");
    }
    let Some(s) = &c.spec else {
        return errs.required("spec", "");
    };
    if s.schedule.is_empty() {
        errs.required("spec.schedule", "");
    } else if s.schedule.contains("TZ") {
        errs.invalid(
            "spec.schedule",
            q(&s.schedule),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        );
    } else if let Err(why) = cron::check(&s.schedule) {
        errs.invalid("spec.schedule", q(&s.schedule), &why);
    }
    if let Some(tz) = s.time_zone.as_deref() {
        time_zone(tz, errs);
    }
    errs.one_of(
        "spec.concurrencyPolicy",
        s.concurrency_policy.as_deref(),
        &["Allow", "Forbid", "Replace"],
    );
    errs.non_negative("spec.startingDeadlineSeconds", s.starting_deadline_seconds);
    errs.non_negative(
        "spec.successfulJobsHistoryLimit",
        s.successful_jobs_history_limit.map(i64::from),
    );
    errs.non_negative(
        "spec.failedJobsHistoryLimit",
        s.failed_jobs_history_limit.map(i64::from),
    );
    if let Some(m) = &s.job_template.metadata {
        meta::labels("spec.jobTemplate.metadata.labels", m.labels.as_ref(), errs);
    }
    match &s.job_template.spec {
        Some(js) => job_spec("spec.jobTemplate.spec", js, errs),
        None => errs.required("spec.jobTemplate.spec", ""),
    }
}

/// An IANA time zone name; checked against the time zone database when one is present.
fn time_zone(tz: &str, errs: &mut Errors) {
    if tz.is_empty() || tz.eq_ignore_ascii_case("local") {
        errs.invalid(
            "spec.timeZone",
            q(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        );
    } else if !jiff::tz::db().is_definitively_empty() && jiff::tz::TimeZone::get(tz).is_err() {
        errs.invalid("spec.timeZone", q(tz), &format!("unknown time zone {tz}"));
    }
}
