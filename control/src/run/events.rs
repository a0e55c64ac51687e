//! Writes in parallel batches, and Events: each recorded by a named
//! [`Source`], written in batches — a repeat of one this term wrote counted
//! on it (`ferry_api::eventrecorder`) —, removed once older than the TTL
//! (`eventttl`).

use super::*;
use crate::eventttl;
use ferry_api::eventrecorder::{Recorder, Write};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Who records an Event: the component Kubernetes names in `source` and
/// `reportingComponent`, which `kubectl describe` and `kubectl get events`
/// show as FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The Deployment controller.
    Deployment,
    /// The ReplicaSet controller.
    ReplicaSet,
    /// The ReplicationController manager.
    ReplicationController,
    /// The DaemonSet controller.
    DaemonSet,
    /// The StatefulSet controller.
    StatefulSet,
    /// The Job controller.
    Job,
    /// The CronJob controller.
    CronJob,
    /// The HorizontalPodAutoscaler controller.
    Autoscaler,
    /// The node lifecycle controller.
    NodeLifecycle,
    /// The node IPAM controller's range allocator.
    CidrAllocator,
    /// The LoadBalancer address pool (MetalLB's controller in Kubernetes).
    LoadBalancer,
    /// The PersistentVolume controller.
    PersistentVolume,
    /// The built-in `local-path` provisioner.
    Provisioner,
    /// The scheduler.
    Scheduler,
}

impl Source {
    /// The component's name, as Kubernetes' controllers name their recorders.
    pub(super) fn component(self) -> &'static str {
        match self {
            Source::Deployment => "deployment-controller",
            Source::ReplicaSet => "replicaset-controller",
            Source::ReplicationController => "replication-controller",
            Source::DaemonSet => "daemonset-controller",
            Source::StatefulSet => "statefulset-controller",
            Source::Job => "job-controller",
            Source::CronJob => "cronjob-controller",
            Source::Autoscaler => "horizontal-pod-autoscaler",
            Source::NodeLifecycle => "node-controller",
            Source::CidrAllocator => "cidrAllocator",
            Source::LoadBalancer => "metallb-controller",
            Source::PersistentVolume => "persistentvolume-controller",
            Source::Provisioner => ferry_api::storage::LOCAL_PATH_PROVISIONER,
            Source::Scheduler => "default-scheduler",
        }
    }
}

/// The Event `source` records about `about` (of `kind`), as client-go's
/// recorder makes it: in the object's namespace, `default` for a
/// cluster-scoped one, whose reference has no namespace.
fn event_object(
    source: Source,
    about: &ObjectMeta,
    kind: &str,
    type_: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> Value {
    let name = about.name.clone().unwrap_or_default();
    let api_version = match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        _ => "v1",
    };
    let mut involved = json!({"apiVersion": api_version, "kind": kind, "name": name});
    let optional = [
        ("namespace", &about.namespace),
        ("uid", &about.uid),
        ("resourceVersion", &about.resource_version),
    ];
    for (field, value) in optional {
        if let Some(v) = value {
            involved[field] = json!(v);
        }
    }
    let ns = about.namespace.as_deref().unwrap_or("default");
    let component = source.component();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": type_, "count": 1,
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": component},
        "reportingComponent": component,
    })
}

impl Plane<'_> {
    /// Writes queued events in batches: a repeat of an Event this term wrote
    /// counts on it (the recorder), anything else is created.
    pub(super) async fn event_writer(&self) {
        let mut recorder = Recorder::default();
        loop {
            self.event_wake.notified().await;
            let (batch, _) = std::mem::take(&mut *self.events.borrow_mut());
            if !self.api.is_leader() {
                continue;
            }
            let writes: Vec<Write> = batch.iter().map(|ev| recorder.observe(ev)).collect();
            let reqs = writes
                .iter()
                .map(|w| match w {
                    Write::Create(ev) => {
                        let ns = ev["metadata"]["namespace"].as_str();
                        with_body(ObjectRequest::new(Verb::Create, "events", ns, None), ev)
                    }
                    Write::Patch {
                        namespace,
                        name,
                        patch,
                    } => merge_patch("events", Some(namespace), name, None, patch),
                })
                .collect();
            let results = self.write_all(reqs).await;
            for ((ev, w), r) in batch.iter().zip(&writes).zip(&results) {
                match w {
                    Write::Create(_) if r.ok() => recorder.created(ev, &r.name),
                    Write::Patch { .. } if r.code == 404 => recorder.lost(ev),
                    _ if !r.ok() => tracing::debug!("an event was not written: {}", r.message),
                    _ => {}
                }
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
        source: Source,
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
            self.event(source, owner, kind, "Normal", "SuccessfulCreate", &msg);
        }
        if let Some(failed) = created.iter().find(|w| !w.ok()) {
            let msg = format!("Error creating: {}", failed.message);
            self.event(source, owner, kind, "Warning", "FailedCreate", &msg);
        }
        for ((pod, _), w) in delete.iter().zip(deleted) {
            if w.ok() {
                let msg = format!("Deleted pod: {pod}");
                self.event(source, owner, kind, "Normal", "SuccessfulDelete", &msg);
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

    /// Queues an Event about `about`, recorded by `source`, for the event
    /// writer (best effort: a lost event is not retried); repeats queued
    /// together become one event with a count.
    pub(super) fn event(
        &self,
        source: Source,
        about: &ObjectMeta,
        kind: &str,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let now = meta::time(ferry_api::clock::now());
        let ev = event_object(source, about, kind, type_, reason, message, &now);
        let ns = about.namespace.as_deref().unwrap_or("default");
        let name = about.name.as_deref().unwrap_or_default();
        // Repeats found by key, not by a scan of the batch: thousands of
        // nodes' Events queued at once stay linear.
        let repeat = format!(
            "{}\0{}\0{kind}\0{ns}/{name}\0{reason}\0{message}",
            source.component(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn about(ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: ns.map(Into::into),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_recording_controller_is_named_as_kubernetes_names_it() {
        let now = meta::time(jiff::Timestamp::UNIX_EPOCH);
        let cases = [
            (Source::Deployment, "Deployment", "deployment-controller"),
            (Source::ReplicaSet, "ReplicaSet", "replicaset-controller"),
            (Source::DaemonSet, "DaemonSet", "daemonset-controller"),
            (Source::StatefulSet, "StatefulSet", "statefulset-controller"),
            (Source::Job, "Job", "job-controller"),
            (Source::CronJob, "CronJob", "cronjob-controller"),
            (
                Source::Autoscaler,
                "HorizontalPodAutoscaler",
                "horizontal-pod-autoscaler",
            ),
            (Source::Scheduler, "Pod", "default-scheduler"),
        ];
        for (source, kind, component) in cases {
            let e = event_object(source, &about(Some("ns")), kind, "Normal", "R", "m", &now);
            assert_eq!(e["source"], json!({"component": component}), "{kind}");
            assert_eq!(e["reportingComponent"], component, "{kind}");
            assert_eq!(e["metadata"]["namespace"], "ns");
            assert_eq!(e["involvedObject"]["namespace"], "ns");
        }
        // Whatever the reason: a pod's FailedCreate is not the scheduler's.
        let e = event_object(
            Source::Job,
            &about(Some("ns")),
            "Job",
            "Warning",
            "FailedScheduling",
            "m",
            &now,
        );
        assert_eq!(e["source"]["component"], "job-controller");
    }

    #[test]
    fn a_cluster_scoped_objects_events_go_to_default_without_a_namespace_in_the_reference() {
        let now = meta::time(jiff::Timestamp::UNIX_EPOCH);
        let e = event_object(
            Source::NodeLifecycle,
            &about(None),
            "Node",
            "Normal",
            "RegisteredNode",
            "Node web event: Registered Node web in Controller",
            &now,
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Node", "name": "web", "uid": "u1"})
        );
        assert_eq!(e["source"]["component"], "node-controller");
    }
}
