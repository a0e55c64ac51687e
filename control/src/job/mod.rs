//! The Job controller's pure core, after Kubernetes' `pkg/controller/job`:
//! keep `min(parallelism, completions - succeeded)` pods running (one per
//! completion index for Indexed Jobs), back off after failures, fail the Job
//! past `backoffLimit` or `activeDeadlineSeconds`, complete it when enough
//! pods succeeded, and delete it `ttlSecondsAfterFinished` after it finished.
//!
//! Pods carry no tracking finalizer here, so the counts come from the pods
//! the cache holds; a count never drops below the stored one, so a finished
//! pod that disappears stays counted.

mod pods;
mod status;
#[cfg(test)]
mod tests;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use status::{format_indexes, parse_indexes};

/// The annotation and label carrying an Indexed Job pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// Most pods created or deleted in one pass (Kubernetes'
/// `MaxPodCreateDeletePerSync`).
pub const BURST: usize = 500;

/// A Kubernetes event: (type `Normal`|`Warning`, reason, message).
pub type Event = (String, String, String);

/// What one pass decides for a Job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Pods to create, whole (generateName, labels, owner, spec).
    pub create: Vec<Pod>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The new status, only when it differs from the stored one.
    pub status: Option<JobStatus>,
    /// `ttlSecondsAfterFinished` has passed: delete the Job itself.
    pub delete_job: bool,
    /// Run the pass again after this long (deadline, TTL or back-off expiry).
    pub requeue_after: Option<Duration>,
    /// Events to record on the Job.
    pub events: Vec<Event>,
}

/// One pass over `job` and the pods it controls (in any phase).
pub fn reconcile(job: &Job, pods: &[Arc<Pod>], now: Timestamp) -> Decision {
    let Some(spec) = job.spec.as_ref() else {
        return Decision::default();
    };
    let stored = job.status.clone().unwrap_or_default();
    // A finished Job only waits for its TTL.
    if status::finished(&stored) {
        return ttl_decision(spec, status::finish_time(&stored), now);
    }
    // A Job being deleted leaves its pods to the garbage collector.
    if job.metadata.deletion_timestamp.is_some() {
        return Decision::default();
    }
    Pass::new(job, spec, pods, now).run()
}

/// The TTL-after-finished controller's part: delete, or wait for it.
fn ttl_decision(spec: &JobSpec, finished: Option<Timestamp>, now: Timestamp) -> Decision {
    let mut d = Decision::default();
    let (Some(ttl), Some(at)) = (spec.ttl_seconds_after_finished, finished) else {
        return d;
    };
    let left = at.as_second() + i64::from(ttl.max(0)) - now.as_second();
    if left <= 0 {
        d.delete_job = true;
    } else {
        d.requeue_after = Some(Duration::from_secs(left.unsigned_abs()));
    }
    d
}

fn suspended(spec: &JobSpec) -> bool {
    spec.suspend == Some(true)
}

fn indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The state of one pass.
struct Pass<'a> {
    job: &'a Job,
    spec: &'a JobSpec,
    now: Timestamp,
    view: pods::View<'a>,
    status: JobStatus,
    /// Indexed Jobs: the indexes done, stored and newly seen.
    done_indexes: BTreeSet<i32>,
    succeeded: i32,
    failed: i32,
    decision: Decision,
}

impl<'a> Pass<'a> {
    fn new(job: &'a Job, spec: &'a JobSpec, pods: &'a [Arc<Pod>], now: Timestamp) -> Self {
        let view = pods::View::new(pods);
        let status = job.status.clone().unwrap_or_default();
        let stored_failed = status.failed.unwrap_or(0);
        let failed = stored_failed.max(count(view.failed.len()));
        let mut done_indexes = BTreeSet::new();
        let succeeded = match spec.completions.filter(|_| indexed(spec)) {
            Some(completions) => {
                done_indexes = status
                    .completed_indexes
                    .as_deref()
                    .map(parse_indexes)
                    .unwrap_or_default();
                done_indexes.extend(view.succeeded.iter().filter_map(|p| pods::index(p)));
                done_indexes.retain(|i| (0..completions).contains(i));
                count(done_indexes.len())
            }
            None => status
                .succeeded
                .unwrap_or(0)
                .max(count(view.succeeded.len())),
        };
        Pass {
            job,
            spec,
            now,
            view,
            status,
            done_indexes,
            succeeded,
            failed,
            decision: Decision::default(),
        }
    }

    fn run(mut self) -> Decision {
        self.sync_suspension();
        if let Some((reason, message)) = self.failure() {
            self.delete_all();
            self.fail(reason, message);
        } else {
            self.watch_deadline();
            self.manage();
            if self.complete() {
                self.succeed();
            }
        }
        self.finish()
    }

    /// The Suspended condition and the start time, as `syncJob` keeps them.
    fn sync_suspension(&mut self) {
        let now = self.now;
        if suspended(self.spec) {
            if status::set_condition(
                &mut self.status,
                "Suspended",
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                self.event("Normal", "Suspended", "Job suspended");
            }
            return;
        }
        let resumed = status::has_condition(&self.status, "Suspended", "True");
        if resumed {
            status::set_condition_false(
                &mut self.status,
                "Suspended",
                "JobResumed",
                "Job resumed",
                now,
            );
            self.event("Normal", "Resumed", "Job resumed");
        }
        // A resumed Job's deadline counts from its resumption.
        if resumed || self.status.start_time.is_none() {
            self.status.start_time = Some(crate::meta::time(now));
        }
    }

    /// Why the Job fails now, if it does: the back-off limit before the deadline.
    fn failure(&self) -> Option<(&'static str, &'static str)> {
        let limit = self.spec.backoff_limit.unwrap_or(6);
        let on_failure = self.view.restarts_past_limit(self.spec, limit);
        if self.failed > limit || on_failure {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if self.deadline_left().is_some_and(|left| left <= 0) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        }
    }

    /// Seconds left before `activeDeadlineSeconds`, counted from the stored
    /// start time; none while suspended or not started.
    fn deadline_left(&self) -> Option<i64> {
        let ads = self.spec.active_deadline_seconds?;
        let stored = self.job.status.as_ref()?.start_time.as_ref()?;
        if suspended(self.spec) {
            return None;
        }
        Some(stored.0.as_second() + ads - self.now.as_second())
    }

    fn watch_deadline(&mut self) {
        let left = match self.deadline_left() {
            Some(left) => Some(left),
            // Started this pass: the whole deadline is ahead.
            None if !suspended(self.spec) => self.spec.active_deadline_seconds,
            None => None,
        };
        if let Some(left) = left.filter(|l| *l > 0) {
            self.requeue(Duration::from_secs(left.unsigned_abs()));
        }
    }

    /// `manageJob`: delete surplus and stray pods, create missing ones.
    fn manage(&mut self) {
        if suspended(self.spec) {
            self.delete_all();
            return;
        }
        let completions = self.spec.completions;
        if indexed(self.spec) && completions.is_none() {
            return; // validation requires completions for Indexed Jobs
        }
        let (keep, stray) = match completions.filter(|_| indexed(self.spec)) {
            Some(c) => pods::sort_indexed(&self.view.active, c, &self.done_indexes),
            None => (self.view.active.clone(), Vec::new()),
        };
        self.delete_pods(stray);
        let active = keep.len();
        let want = self.want_active(active);
        if active > want {
            self.delete_pods(pods::removal_order(&keep, active - want));
        } else if active < want {
            self.create(want - active, &keep);
        }
    }

    /// How many pods should run (Kubernetes' `wantActive`).
    fn want_active(&self, active: usize) -> usize {
        let parallelism = usize::try_from(self.spec.parallelism.unwrap_or(1)).unwrap_or(0);
        match self.spec.completions {
            // Work queue: after a success, no new pods; the running ones finish.
            None if self.succeeded > 0 => active,
            None => parallelism,
            Some(c) => usize::try_from(c.saturating_sub(self.succeeded))
                .unwrap_or(0)
                .min(parallelism),
        }
    }

    fn create(&mut self, mut n: usize, keep: &[&Pod]) {
        // With podReplacementPolicy Failed, terminating pods hold their slots.
        if self.spec.pod_replacement_policy.as_deref() == Some("Failed") {
            n = n.saturating_sub(self.view.terminating.len());
        }
        if n == 0 {
            return;
        }
        if let Some(wait) = pods::backoff_left(&self.view, self.now) {
            self.requeue(wait);
            return;
        }
        let n = n.min(BURST);
        let pods: Vec<Pod> = match self.spec.completions.filter(|_| indexed(self.spec)) {
            Some(c) => pods::pending_indexes(c, keep, &self.done_indexes)
                .take(n)
                .map(|i| pods::from_template(self.job, Some(i)))
                .collect(),
            None => (0..n)
                .map(|_| pods::from_template(self.job, None))
                .collect(),
        };
        self.decision.create = pods;
    }

    fn delete_all(&mut self) {
        let all = &self.view.active;
        self.delete_pods(pods::removal_order(all, all.len()));
    }

    fn delete_pods(&mut self, victims: Vec<&Pod>) {
        let room = BURST.saturating_sub(self.decision.delete.len());
        for p in victims.into_iter().take(room) {
            let m = &p.metadata;
            let id = (
                m.name.clone().unwrap_or_default(),
                m.uid.clone().unwrap_or_default(),
            );
            if !self.decision.delete.contains(&id) {
                self.decision.delete.push(id);
            }
        }
    }

    /// Active pods once this pass's creates and deletes are done.
    fn active_after(&self) -> usize {
        (self.view.active.len() + self.decision.create.len())
            .saturating_sub(self.decision.delete.len())
    }

    fn complete(&self) -> bool {
        if suspended(self.spec) || self.active_after() > 0 {
            return false;
        }
        match self.spec.completions {
            None => self.succeeded > 0,
            Some(c) => self.succeeded >= c,
        }
    }

    fn succeed(&mut self) {
        let (reason, message) = (
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        status::add_condition(
            &mut self.status,
            "SuccessCriteriaMet",
            reason,
            message,
            self.now,
        );
        status::add_condition(&mut self.status, "Complete", reason, message, self.now);
        self.status.completion_time = Some(crate::meta::time(self.now));
        self.event("Normal", "Completed", "Job completed");
        self.after_finish();
    }

    fn fail(&mut self, reason: &str, message: &str) {
        status::add_condition(&mut self.status, "FailureTarget", reason, message, self.now);
        status::add_condition(&mut self.status, "Failed", reason, message, self.now);
        self.event("Warning", reason, message);
        self.after_finish();
    }

    /// A Job finishing now: only its TTL is ahead (the next pass deletes it
    /// even at TTL 0, once this status is written).
    fn after_finish(&mut self) {
        self.decision.requeue_after = None;
        if let Some(ttl) = self.spec.ttl_seconds_after_finished {
            self.requeue(Duration::from_secs(u64::try_from(ttl).unwrap_or(0)));
        }
    }

    fn requeue(&mut self, after: Duration) {
        let r = &mut self.decision.requeue_after;
        *r = Some(r.map_or(after, |r| r.min(after)));
    }

    fn event(&mut self, type_: &str, reason: &str, message: &str) {
        self.decision
            .events
            .push((type_.into(), reason.into(), message.into()));
    }

    /// The counts after this pass, and the status write if anything changed.
    fn finish(mut self) -> Decision {
        let deleted: Vec<&Pod> = self
            .view
            .active
            .iter()
            .copied()
            .filter(|p| {
                let uid = p.metadata.uid.as_deref().unwrap_or_default();
                self.decision.delete.iter().any(|(_, u)| u == uid)
            })
            .collect();
        let ready_deleted = deleted.iter().filter(|p| crate::meta::pod_ready(p)).count();
        let active = count(self.active_after());
        let ready = count(self.view.ready().saturating_sub(ready_deleted));
        let s = &mut self.status;
        s.active = Some(active);
        s.ready = Some(ready);
        s.terminating = Some(count(self.view.terminating.len() + deleted.len()));
        s.succeeded = Some(self.succeeded);
        s.failed = Some(self.failed);
        if indexed(self.spec) {
            s.completed_indexes = Some(format_indexes(&self.done_indexes));
        }
        let new = status::normalized(self.status);
        let old = status::normalized(self.job.status.clone().unwrap_or_default());
        if new != old {
            self.decision.status = Some(new);
        }
        self.decision
    }
}
