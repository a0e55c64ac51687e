//! The CronJob controller's pure core, after Kubernetes'
//! `pkg/controller/cronjob` (v2): start a Job for the most recent scheduled
//! time not yet started (within `startingDeadlineSeconds`), as the
//! concurrency policy allows; keep `status.active` and the last schedule and
//! success times; delete finished Jobs beyond the history limits.
//!
//! `status.active` is rebuilt from the Jobs read, so the Job this pass
//! creates joins it on the pass that first sees it; `lastScheduleTime`
//! (written with the create) keeps that time from starting twice, and the
//! Job's name is the same for the same time anyway. The shell should write
//! the status only once the create succeeded (or found the Job existing).

mod jobs;
pub mod schedule;
#[cfg(test)]
mod tests;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use std::sync::Arc;
use std::time::Duration;

pub use jobs::SCHEDULED_KEY;

/// A Kubernetes event: (type `Normal`|`Warning`, reason, message).
pub type Event = (String, String, String);

/// Slack after a scheduled time before the requeue, so the pass it wakes
/// finds the time passed (Kubernetes' `nextScheduleDelta`).
const REQUEUE_SLACK_MS: i64 = 100;

/// What one pass decides for a CronJob.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The Job to create (a fixed name per scheduled time).
    pub create: Option<Job>,
    /// Jobs to delete: (name, uid): finished ones beyond the history limits,
    /// or the active ones a `Replace` run replaces.
    pub delete: Vec<(String, String)>,
    /// The new status, only when it differs from the stored one.
    pub status: Option<CronJobStatus>,
    /// Run the pass again after this long (just past the next scheduled time).
    pub requeue_after: Option<Duration>,
    /// Events to record on the CronJob.
    pub events: Vec<Event>,
}

/// One pass over `cj` and the Jobs it controls.
pub fn reconcile(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> Decision {
    let Some(spec) = cj.spec.as_ref() else {
        return Decision::default();
    };
    let mut pass = Pass {
        cj,
        spec,
        jobs,
        now,
        status: cj.status.clone().unwrap_or_default(),
        decision: Decision::default(),
    };
    pass.track_jobs();
    if cj.metadata.deletion_timestamp.is_none() {
        pass.schedule();
        pass.clean_history();
    }
    pass.finish()
}

/// The state of one pass.
struct Pass<'a> {
    cj: &'a CronJob,
    spec: &'a CronJobSpec,
    jobs: &'a [Arc<Job>],
    now: Timestamp,
    status: CronJobStatus,
    decision: Decision,
}

impl Pass<'_> {
    /// `status.active` from the unfinished Jobs (stored references kept as
    /// written), finished ones noted, and the last success time.
    fn track_jobs(&mut self) {
        let stored: Vec<ObjectReference> = self.status.active.take().unwrap_or_default();
        let stored_has = |uid: &str| stored.iter().any(|r| r.uid.as_deref() == Some(uid));
        let mut fresh: Vec<&Job> = Vec::new();
        let mut active: Vec<ObjectReference> = Vec::new();
        for job in self.jobs.iter().map(|j| &**j) {
            match jobs::finished(job) {
                None if job.metadata.deletion_timestamp.is_none() => {
                    match stored
                        .iter()
                        .find(|r| r.uid.as_deref() == Some(jobs::uid(job)))
                    {
                        Some(r) => active.push(r.clone()),
                        None => fresh.push(job),
                    }
                }
                None => {}
                Some(how) => {
                    if stored_has(jobs::uid(job)) {
                        let msg = format!("Saw completed job: {}, status: {how}", jobs::name(job));
                        self.event("Normal", "SawCompletedJob", msg);
                    }
                    self.note_success(job);
                }
            }
        }
        // Stored order first, then new Jobs oldest first.
        let rank = |r: &ObjectReference| stored.iter().position(|s| s.uid == r.uid);
        active.sort_by_key(rank);
        fresh.sort_by_key(|j| {
            (
                j.metadata.creation_timestamp.as_ref().map(|t| t.0),
                jobs::name(j).to_string(),
            )
        });
        active.extend(fresh.into_iter().map(jobs::reference));
        for r in &stored {
            let uid = r.uid.as_deref().unwrap_or("");
            if !self.jobs.iter().any(|j| jobs::uid(j) == uid) {
                let msg = format!(
                    "Active job went missing: {}",
                    r.name.as_deref().unwrap_or("")
                );
                self.event("Normal", "MissingJob", msg);
            }
        }
        self.status.active = Some(active);
    }

    fn note_success(&mut self, job: &Job) {
        let done = job.status.as_ref().and_then(|s| s.completion_time.as_ref());
        let Some(done) = done.filter(|_| jobs::finished(job) == Some("Complete")) else {
            return;
        };
        let last = &mut self.status.last_successful_time;
        if last.as_ref().is_none_or(|l| l.0 < done.0) {
            *last = Some(done.clone());
        }
    }

    /// Starts the Job for the most recent unmet scheduled time, if allowed.
    fn schedule(&mut self) {
        let zone = match self.spec.time_zone.as_deref() {
            None => TimeZone::UTC,
            Some(name) => match TimeZone::get(name) {
                Ok(zone) => zone,
                Err(e) => {
                    let msg = format!("invalid timeZone: {name:?}: {e}");
                    return self.event("Warning", "UnknownTimeZone", msg);
                }
            },
        };
        if self.spec.suspend == Some(true) {
            return;
        }
        let sched = match schedule::parse(&self.spec.schedule) {
            Ok(s) => s,
            Err(e) => return self.invalid(&e),
        };
        let earliest = self.earliest();
        let recent = match jobs::most_recent(&sched, &zone, earliest, self.now) {
            Ok(r) => r,
            Err(e) => return self.invalid(&e),
        };
        match sched.next(self.now, &zone) {
            Some(next) => self.requeue_at(next),
            None => return self.invalid("no time matches the schedule"),
        }
        if let Some((t, _)) = recent {
            self.start(&sched, &zone, earliest, t);
        }
    }

    fn invalid(&mut self, why: &str) {
        let msg = format!("invalid schedule: {} : {why}", self.spec.schedule);
        self.event("Warning", "InvalidSchedule", msg);
    }

    /// The time after which scheduled times count: the last one started,
    /// else the CronJob's creation.
    fn earliest(&self) -> Timestamp {
        let meta = &self.cj.metadata;
        let stored = self
            .cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref());
        stored
            .or(meta.creation_timestamp.as_ref())
            .map_or(self.now, |t| t.0)
    }

    /// Starts the Job for scheduled time `t`, unless too late or forbidden.
    fn start(
        &mut self,
        sched: &schedule::Schedule,
        zone: &TimeZone,
        earliest: Timestamp,
        t: Timestamp,
    ) {
        if let Some(dl) = self.spec.starting_deadline_seconds {
            if t.as_second().saturating_add(dl) < self.now.as_second() {
                let msg = format!(
                    "Missed scheduled time to start a job: {}",
                    jobs::rfc1123z(t)
                );
                return self.event("Warning", "MissSchedule", msg);
            }
        }
        self.warn_many_missed(sched, zone, earliest);
        let name = jobs::job_name(self.cj, t);
        if self.jobs.iter().any(|j| jobs::name(j) == name) {
            // Started before, its status write lost: record the time only.
            self.status.last_schedule_time = Some(crate::meta::time(t));
            return;
        }
        let active = self.status.active.as_deref().unwrap_or_default();
        match self.spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
                return self.event("Normal", "JobAlreadyActive", msg.into());
            }
            Some("Replace") => self.replace_active(),
            _ => {}
        }
        self.event("Normal", "SuccessfulCreate", format!("Created job {name}"));
        self.decision.create = Some(jobs::from_template(self.cj, t, zone));
        self.status.last_schedule_time = Some(crate::meta::time(t));
    }

    /// Warns, as Kubernetes does, when over a hundred times were missed in
    /// the window that still counts.
    fn warn_many_missed(
        &mut self,
        sched: &schedule::Schedule,
        zone: &TimeZone,
        earliest: Timestamp,
    ) {
        let from = match self.spec.starting_deadline_seconds {
            Some(dl) => Timestamp::from_second(self.now.as_second().saturating_sub(dl))
                .map_or(earliest, |w| w.max(earliest)),
            None => earliest,
        };
        if let Ok(Some((_, Some(missed)))) = jobs::most_recent(sched, zone, from, self.now) {
            let msg = format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            );
            self.event("Warning", "TooManyMissedTimes", msg);
        }
    }

    /// `Replace`: the running Jobs go before the new one starts.
    fn replace_active(&mut self) {
        let active = self.status.active.take().unwrap_or_default();
        for r in active {
            let name = r.name.clone().unwrap_or_default();
            self.event("Normal", "SuccessfulDelete", format!("Deleted job {name}"));
            self.decision
                .delete
                .push((name, r.uid.clone().unwrap_or_default()));
        }
        self.status.active = Some(Vec::new());
    }

    /// Deletes the oldest finished Jobs beyond each history limit.
    fn clean_history(&mut self) {
        for (how, limit) in [
            ("Complete", self.spec.successful_jobs_history_limit),
            ("Failed", self.spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Job> = self
                .jobs
                .iter()
                .map(|j| &**j)
                .filter(|j| {
                    jobs::finished(j) == Some(how) && j.metadata.deletion_timestamp.is_none()
                })
                .collect();
            let surplus = done
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            // Oldest start first; never-started ones last (Kubernetes' byJobStartTime).
            done.sort_by_key(|j| {
                let start = j
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0);
                (start.is_none(), start, jobs::name(j).to_string())
            });
            for j in done.into_iter().take(surplus) {
                self.event(
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted job {}", jobs::name(j)),
                );
                self.decision
                    .delete
                    .push((jobs::name(j).into(), jobs::uid(j).into()));
            }
        }
    }

    fn requeue_at(&mut self, next: Timestamp) {
        let ms = next.as_millisecond() - self.now.as_millisecond() + REQUEUE_SLACK_MS;
        self.decision.requeue_after = Some(Duration::from_millis(ms.max(0).unsigned_abs()));
    }

    fn event(&mut self, type_: &str, reason: &str, message: String) {
        self.decision
            .events
            .push((type_.into(), reason.into(), message));
    }

    fn finish(mut self) -> Decision {
        let new = normalized(self.status);
        let old = normalized(self.cj.status.clone().unwrap_or_default());
        if new != old {
            self.decision.status = Some(new);
        }
        self.decision
    }
}

/// An empty active list as absent, as Kubernetes' `omitempty` writes it.
fn normalized(mut s: CronJobStatus) -> CronJobStatus {
    if s.active.as_ref().is_some_and(Vec::is_empty) {
        s.active = None;
    }
    s
}
