//! Writes in parallel batches, and Events: written in batches, removed once
//! older than the TTL (`eventttl`).

use super::*;
use crate::eventttl;
use k8s_openapi::api::core::v1::Event;

impl Plane<'_> {
    /// Writes queued events in batches.
    pub(super) async fn event_writer(&self) {
        loop {
            self.event_wake.notified().await;
            let (batch, _) = std::mem::take(&mut *self.events.borrow_mut());
            if !self.api.is_leader() {
                continue;
            }
            let reqs = batch
                .iter()
                .map(|ev| {
                    let ns = ev["metadata"]["namespace"].as_str();
                    with_body(ObjectRequest::new(Verb::Create, "events", ns, None), ev)
                })
                .collect();
            for w in self.write_all(reqs).await.iter().filter(|w| !w.ok()) {
                tracing::debug!("an event was not written: {}", w.message);
            }
        }
    }

    /// Removes Events older than the TTL, every tenth of it (at most a
    /// minute); each delete carries the listed resourceVersion, so an event
    /// that happened again meanwhile stays.
    pub(super) async fn event_sweeper(&self) {
        let every = (self.event_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            if !self.api.is_leader() {
                continue;
            }
            let events: Vec<Event> = match api::list(self.api, "events").await {
                Ok((events, _)) => events,
                Err(e) => {
                    tracing::debug!("events sweep: listing failed: {e}");
                    continue;
                }
            };
            let now = ferry_api::clock::now();
            let deletes: Vec<_> = events
                .iter()
                .filter(|e| eventttl::expired(e, now, self.event_ttl))
                .map(|e| {
                    let m = &e.metadata;
                    with_body(
                        ObjectRequest::new(
                            Verb::Delete,
                            "events",
                            m.namespace.as_deref(),
                            m.name.as_deref(),
                        ),
                        &json!({"preconditions": {"resourceVersion": m.resource_version}}),
                    )
                })
                .collect();
            if deletes.is_empty() {
                continue;
            }
            let n = deletes.len();
            let failed = self
                .write_all(deletes)
                .await
                .iter()
                .filter(|w| !w.ok() && w.code != 404 && w.code != 409)
                .count();
            tracing::debug!("events sweep: {n} expired, {failed} not removed");
        }
    }

    /// Creates and deletes (uid precondition) an owner's pods, with the
    /// owner's events; expects the pod cache to reach the writes' revision
    /// before `tag` is reconciled again. False when a write failed.
    pub(super) async fn write_pods(
        &self,
        owner: &ObjectMeta,
        kind: &str,
        tag: &str,
        create: &[Pod],
        delete: &[(String, String)],
    ) -> bool {
        let ns = owner.namespace.as_deref();
        let mut writes = Vec::new();
        for p in create {
            writes.push(with_body(
                ObjectRequest::new(Verb::Create, "pods", ns, None),
                p,
            ));
        }
        for (pod, puid) in delete {
            writes.push(with_body(
                ObjectRequest::new(Verb::Delete, "pods", ns, Some(pod)),
                &json!({"preconditions": {"uid": puid}}),
            ));
        }
        let results = self.write_all(writes).await;
        let (created, deleted) = results.split_at(create.len());
        let rev = results.iter().map(|w| w.revision).max().unwrap_or(0);
        self.expect_revision(tag, rev);
        for w in created.iter().filter(|w| w.ok()) {
            let msg = format!("Created pod: {}", w.name);
            self.event(owner, kind, "Normal", "SuccessfulCreate", &msg);
        }
        if let Some(failed) = created.iter().find(|w| !w.ok()) {
            let msg = format!("Error creating: {}", failed.message);
            self.event(owner, kind, "Warning", "FailedCreate", &msg);
        }
        for ((pod, _), w) in delete.iter().zip(deleted) {
            if w.ok() {
                let msg = format!("Deleted pod: {pod}");
                self.event(owner, kind, "Normal", "SuccessfulDelete", &msg);
            }
        }
        results.iter().all(|w| w.ok() || w.code == 404)
    }

    /// Sends writes, at most [`PARALLEL`] at once; their outcomes in order.
    pub(super) async fn write_all(&self, reqs: Vec<ObjectRequest>) -> Vec<Written> {
        let mut out = Vec::with_capacity(reqs.len());
        let mut reqs = reqs.into_iter().peekable();
        while reqs.peek().is_some() {
            let chunk: Vec<_> = reqs.by_ref().take(PARALLEL).collect();
            out.extend(join_all(chunk.into_iter().map(|r| api::write(self.api, r))).await);
        }
        out
    }

    /// Queues an Event about `about` for the event writer (best effort: a
    /// lost event is not retried); repeats queued together become one event
    /// with a count.
    pub(super) fn event(
        &self,
        about: &ObjectMeta,
        kind: &str,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let now = meta::time(ferry_api::clock::now());
        let ns = about.namespace.clone().unwrap_or_else(|| "default".into());
        let name = about.name.clone().unwrap_or_default();
        let api_version = match kind {
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            "HorizontalPodAutoscaler" => "autoscaling/v2",
            _ => "v1",
        };
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name,
                "namespace": ns, "uid": about.uid, "resourceVersion": about.resource_version},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": if kind == "Pod" && reason.contains("Schedul") { "default-scheduler" } else { "controller-manager" }},
            "reportingComponent": "ferry-controller-manager",
        });
        // Repeats found by key, not by a scan of the batch: thousands of
        // nodes' Events queued at once stay linear.
        let repeat = format!(
            "{}\0{kind}\0{ns}/{name}\0{reason}\0{message}",
            about.uid.as_deref().unwrap_or("")
        );
        let mut q = self.events.borrow_mut();
        let (list, at) = &mut *q;
        match at.get(&repeat) {
            Some(&i) => {
                let e = &mut list[i];
                e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
            }
            None => {
                at.insert(repeat, list.len());
                list.push(ev);
            }
        }
        drop(q);
        self.event_wake.notify_one();
    }
}
