//! The Job and CronJob controllers' shells (and the TTL-after-finished
//! controller's delete, which the Job reconciler decides).

use super::adopt::Claimant;
use super::*;

impl Plane<'_> {
    pub(super) async fn job_loop(&self) {
        let sync = async |k: &str| self.sync_job(k).await;
        self.work(&self.job_q, "job", || self.pods.revision(), sync)
            .await;
    }

    /// One Job pass.
    async fn sync_job(&self, key: &str) -> bool {
        let Some(job) = self.jobs.get(key) else {
            return true;
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let tag = format!("job:{key}");
        let who = Claimant {
            meta: &job.metadata,
            owner_ref: meta::controller_ref("batch/v1", "Job", &job.metadata),
            selector: job.spec.as_ref().and_then(|s| s.selector.as_ref()),
            tag: &tag,
        };
        let pods = match self.claimed(&self.pods, "pods", who, |_| true).await {
            Ok(pods) => pods,
            Err(ok) => return ok,
        };
        let d = job::reconcile(&job, &pods, ferry_api::clock::now());
        if !self.api.is_leader() {
            return true;
        }
        let mut ok = self
            .write_pods(
                Source::Job,
                &job.metadata,
                "Job",
                &tag,
                &d.create,
                &d.delete,
            )
            .await;
        if let Some(status) = d.status {
            let mut with_status = (*job).clone();
            with_status.status = Some(status);
            let w = api::write(self.api, status_update("jobs", &with_status)).await;
            ok &= w.ok() || w.code == 404;
        }
        for (type_, reason, message) in &d.events {
            self.event(Source::Job, &job.metadata, "Job", type_, reason, message);
        }
        if d.delete_job && ok {
            let ns = job.metadata.namespace.as_deref();
            let name = job.metadata.name.as_deref();
            let w = api::write(
                self.api,
                with_body(
                    ObjectRequest::new(Verb::Delete, "jobs", ns, name),
                    &json!({"preconditions": {"uid": uid}, "propagationPolicy": "Background"}),
                ),
            )
            .await;
            ok &= w.ok() || w.code == 404;
        }
        if let Some(after) = d.requeue_after {
            self.job_q.add_after(key, after);
        }
        ok
    }

    pub(super) async fn cronjob_loop(&self) {
        let sync = async |k: &str| self.sync_cronjob(k).await;
        self.work(&self.cj_q, "cj", || self.jobs.revision(), sync)
            .await;
    }

    /// One CronJob pass: its Job created first, its status only after (so a
    /// failed create does not record the run as done).
    async fn sync_cronjob(&self, key: &str) -> bool {
        let Some(cj) = self.cronjobs.get(key) else {
            return true;
        };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs = self.jobs.by_index(BY_OWNER, &uid);
        let d = cronjob::reconcile(&cj, &jobs, ferry_api::clock::now());
        if !self.api.is_leader() {
            return true;
        }
        let ns = cj.metadata.namespace.as_deref();
        let mut rev = 0;
        let mut ok = true;
        for (name, juid) in &d.delete {
            let w = api::write(
                self.api,
                with_body(
                    ObjectRequest::new(Verb::Delete, "jobs", ns, Some(name)),
                    &json!({"preconditions": {"uid": juid}, "propagationPolicy": "Background"}),
                ),
            )
            .await;
            rev = rev.max(w.revision);
            ok &= w.ok() || w.code == 404;
        }
        if let Some(j) = &d.create {
            let w = api::write(
                self.api,
                with_body(ObjectRequest::new(Verb::Create, "jobs", ns, None), j),
            )
            .await;
            rev = rev.max(w.revision);
            if !(w.ok() || w.code == 409) {
                let msg = format!("Error creating job: {}", w.message);
                self.event(
                    Source::CronJob,
                    &cj.metadata,
                    "CronJob",
                    "Warning",
                    "FailedCreate",
                    &msg,
                );
                self.expect_revision(&format!("cj:{key}"), rev);
                return false;
            }
        }
        self.expect_revision(&format!("cj:{key}"), rev);
        for (type_, reason, message) in &d.events {
            self.event(
                Source::CronJob,
                &cj.metadata,
                "CronJob",
                type_,
                reason,
                message,
            );
        }
        if let Some(status) = d.status {
            let mut with_status = (*cj).clone();
            with_status.status = Some(status);
            let w = api::write(self.api, status_update("cronjobs", &with_status)).await;
            ok &= w.ok() || w.code == 404;
        }
        if let Some(after) = d.requeue_after {
            self.cj_q.add_after(key, after);
        }
        ok
    }
}
