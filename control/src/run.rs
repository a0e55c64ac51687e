//! The control plane's shell: while this master leads, one informer per kind
//! feeds the caches, and each controller takes keys from its work queue, calls
//! its pure `reconcile` and carries out the writes it returns, through the API
//! with preconditions. On losing leadership everything stops (the futures are
//! dropped) before another master's controllers can start acting (they wait
//! for Raft leadership, which this master no longer has); and every batch of
//! writes is preceded by a leadership check.
//!
//! Expectations are kept by revision: after a controller writes for a key, it
//! does not reconcile that key again until the cache it reads has reached the
//! revision of its last write, so it never creates or deletes twice for one
//! decision while its cache catches up.

use crate::api::{self, merge_patch, with_body, ControlApi, Written};
use crate::cache::{pod_node, Cache, Change, BY_NODE, BY_OWNER};
use crate::queue::WorkQueue;
use crate::{deployment, meta, replicaset, scheduler};
use ferry_api::object::{ObjectRequest, Verb};
use futures_util::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often every object is reconciled again even without a change (progress
/// deadlines, minReadySeconds, unschedulable pods).
const RESYNC: Duration = Duration::from_secs(10);
/// How long a binding is assumed before the pod cache shows it.
const ASSUME: Duration = Duration::from_secs(30);
/// How long a key waits for its cache to catch up with its last write.
const EXPECT: Duration = Duration::from_secs(30);
/// Writes sent at once.
const PARALLEL: usize = 64;
/// Pending pods placed per scheduling pass.
const SCHEDULE_BATCH: usize = 1000;

/// Runs the control plane for as long as the future lives: its controllers
/// act only while `api` says this master leads.
pub async fn run(api: &dyn ControlApi) {
    let mut leadership = api.leadership();
    loop {
        while !*leadership.borrow_and_update() {
            if leadership.changed().await.is_err() {
                return;
            }
        }
        tracing::info!("control plane: this master leads; informers and controllers start");
        let plane = Plane::new(api);
        tokio::select! {
            () = plane.run() => {}
            () = lost(&mut leadership) => {}
        }
        tracing::info!("control plane: leadership lost; controllers stopped");
    }
}

async fn lost(leadership: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if !*leadership.borrow_and_update() {
            return;
        }
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

/// One term's state: caches, queues, expectations.
struct Plane<'a> {
    api: &'a dyn ControlApi,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    rss: Cache<ReplicaSet>,
    deploys: Cache<Deployment>,
    rs_q: WorkQueue,
    deploy_q: WorkQueue,
    sched: Notify,
    /// key → (revision its cache must reach, since when).
    expect: RefCell<HashMap<String, (u64, Instant)>>,
    /// pod key → (node, since when): bindings made but not yet seen.
    assumed: RefCell<HashMap<String, (String, Instant)>>,
    /// pod key → the unschedulable message last written.
    unschedulable: RefCell<HashMap<String, String>>,
    /// Events waiting for the event writer.
    events: RefCell<Vec<Value>>,
    event_wake: Notify,
}

fn owner_key(m: &ObjectMeta, kind: &str) -> Option<String> {
    let o = meta::controller_of(m).filter(|o| o.kind == kind)?;
    Some(format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        o.name
    ))
}

/// An update of `obj`'s status subresource: the whole status replaced (a
/// merge patch would keep fields the new status leaves out), with the
/// resourceVersion read as precondition.
fn status_update<K: Metadata<Ty = ObjectMeta> + serde::Serialize>(
    plural: &str,
    obj: &K,
) -> ObjectRequest {
    let m = obj.metadata();
    let mut r = ObjectRequest::new(
        Verb::Update,
        plural,
        m.namespace.as_deref(),
        m.name.as_deref(),
    );
    r.subresource = Some("status".into());
    with_body(r, obj)
}

fn bound(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

impl<'a> Plane<'a> {
    fn new(api: &'a dyn ControlApi) -> Self {
        Plane {
            api,
            pods: Cache::new(vec![(BY_NODE, pod_node)]),
            nodes: Cache::new(Vec::new()),
            rss: Cache::new(Vec::new()),
            deploys: Cache::new(Vec::new()),
            rs_q: WorkQueue::default(),
            deploy_q: WorkQueue::default(),
            sched: Notify::new(),
            expect: RefCell::default(),
            assumed: RefCell::default(),
            unschedulable: RefCell::default(),
            events: RefCell::default(),
            event_wake: Notify::new(),
        }
    }

    async fn run(&self) {
        let api = self.api;
        tokio::join!(
            crate::informer::run(api, "pods", &self.pods, |c| self.pod_changed(c)),
            crate::informer::run(api, "nodes", &self.nodes, |_| self.sched.notify_one()),
            crate::informer::run(api, "replicasets", &self.rss, |c| self.rs_changed(c)),
            crate::informer::run(api, "deployments", &self.deploys, |c| {
                for o in [&c.0, &c.1].into_iter().flatten() {
                    self.deploy_q.add(&meta::key(o.metadata()));
                }
            }),
            self.replicasets(),
            self.deployments(),
            self.scheduler(),
            self.resync(),
            self.event_writer(),
        );
    }

    fn pod_changed(&self, (old, new): &Change<Pod>) {
        for p in [old, new].into_iter().flatten() {
            if let Some(k) = owner_key(&p.metadata, "ReplicaSet") {
                self.rs_q.add(&k);
            }
        }
        let pending = new
            .as_ref()
            .is_some_and(|p| !bound(p) && meta::pod_active(p));
        let freed = old.as_ref().is_some_and(|p| bound(p))
            && new.as_ref().is_none_or(|p| !meta::pod_active(p));
        if pending || freed {
            self.sched.notify_one();
        }
    }

    fn rs_changed(&self, (old, new): &Change<ReplicaSet>) {
        for rs in [old, new].into_iter().flatten() {
            self.rs_q.add(&meta::key(&rs.metadata));
            if let Some(k) = owner_key(&rs.metadata, "Deployment") {
                self.deploy_q.add(&k);
            }
        }
    }

    async fn synced(&self) {
        while !(self.pods.synced()
            && self.nodes.synced()
            && self.rss.synced()
            && self.deploys.synced())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn resync(&self) {
        loop {
            tokio::time::sleep(RESYNC).await;
            self.rss.keys().iter().for_each(|k| self.rs_q.add(k));
            self.deploys
                .keys()
                .iter()
                .for_each(|k| self.deploy_q.add(k));
            self.sched.notify_one();
        }
    }

    /// Whether `key`'s cache has caught up with its last writes.
    fn expectations_met(&self, key: &str, cache_revision: u64) -> bool {
        let mut e = self.expect.borrow_mut();
        match e.get(key) {
            Some((rev, since)) if *rev > cache_revision && since.elapsed() < EXPECT => false,
            Some(_) => {
                e.remove(key);
                true
            }
            None => true,
        }
    }

    fn expect_revision(&self, key: &str, revision: u64) {
        if revision == 0 {
            return;
        }
        let mut e = self.expect.borrow_mut();
        let entry = e.entry(key.to_string()).or_insert((0, Instant::now()));
        entry.0 = entry.0.max(revision);
        entry.1 = Instant::now();
    }

    async fn replicasets(&self) {
        self.synced().await;
        loop {
            let key = self.rs_q.next().await;
            if !self.expectations_met(&format!("rs:{key}"), self.pods.revision()) {
                self.rs_q.add_after(&key, Duration::from_millis(50));
                continue;
            }
            match self.sync_rs(&key).await {
                true => self.rs_q.forget(&key),
                false => {
                    self.rs_q.retry(&key);
                }
            }
        }
    }

    /// One ReplicaSet pass; false when a write failed (retried with back-off).
    async fn sync_rs(&self, key: &str) -> bool {
        let Some(rs) = self.rss.get(key) else {
            return true;
        };
        if rs.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let pods = self.pods.by_index(BY_OWNER, &uid);
        let now = Timestamp::now();
        let d = replicaset::reconcile(&rs, &pods, now);
        if !self.api.is_leader() {
            return true;
        }
        let ns = rs.metadata.namespace.as_deref();
        let mut ok = true;
        let mut writes = Vec::new();
        for p in &d.create {
            writes.push(with_body(
                ObjectRequest::new(Verb::Create, "pods", ns, None),
                p,
            ));
        }
        for (pod, puid) in &d.delete {
            writes.push(with_body(
                ObjectRequest::new(Verb::Delete, "pods", ns, Some(pod)),
                &json!({"preconditions": {"uid": puid}}),
            ));
        }
        let results = self.write_all(writes).await;
        let (created, deleted) = results.split_at(d.create.len());
        let mut rev = 0;
        for w in created.iter().chain(deleted) {
            rev = rev.max(w.revision);
            if !w.ok() && w.code != 404 {
                ok = false;
            }
        }
        self.expect_revision(&format!("rs:{key}"), rev);
        for w in created.iter().filter(|w| w.ok()) {
            let msg = format!("Created pod: {}", w.name);
            self.event(
                &rs.metadata,
                "ReplicaSet",
                "Normal",
                "SuccessfulCreate",
                &msg,
            );
        }
        if let Some(failed) = created.iter().find(|w| !w.ok()) {
            let msg = format!("Error creating: {}", failed.message);
            self.event(&rs.metadata, "ReplicaSet", "Warning", "FailedCreate", &msg);
        }
        for ((pod, _), w) in d.delete.iter().zip(deleted) {
            if w.ok() {
                let msg = format!("Deleted pod: {pod}");
                self.event(
                    &rs.metadata,
                    "ReplicaSet",
                    "Normal",
                    "SuccessfulDelete",
                    &msg,
                );
            }
        }
        if let Some(status) = &d.status {
            let mut with_status = (*rs).clone();
            with_status.status = Some(status.clone());
            let w = api::write(self.api, status_update("replicasets", &with_status)).await;
            ok &= w.ok() || w.code == 404;
        }
        // minReadySeconds: look again when the next ready pod becomes available.
        if let Some(after) = d.requeue_after {
            self.rs_q.add_after(key, after);
        }
        ok
    }

    async fn deployments(&self) {
        self.synced().await;
        loop {
            let key = self.deploy_q.next().await;
            if !self.expectations_met(&format!("deploy:{key}"), self.rss.revision()) {
                self.deploy_q.add_after(&key, Duration::from_millis(50));
                continue;
            }
            match self.sync_deployment(&key).await {
                true => self.deploy_q.forget(&key),
                false => {
                    self.deploy_q.retry(&key);
                }
            }
        }
    }

    async fn sync_deployment(&self, key: &str) -> bool {
        let Some(d) = self.deploys.get(key) else {
            return true;
        };
        if d.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let rss = self.rss.by_index(BY_OWNER, &uid);
        let pods: Vec<Arc<Pod>> = rss
            .iter()
            .flat_map(|rs| {
                self.pods
                    .by_index(BY_OWNER, rs.metadata.uid.as_deref().unwrap_or(""))
            })
            .collect();
        let now = Timestamp::now();
        if let Some(after) = deployment::requeue_after(&d, now) {
            self.deploy_q.add_after(key, after);
        }
        let actions = deployment::reconcile(&d, &rss, &pods, now);
        if actions.is_empty() || !self.api.is_leader() {
            return true;
        }
        let ns = d.metadata.namespace.as_deref();
        let name = d.metadata.name.as_deref().unwrap_or("");
        let mut ok = true;
        let mut rev = 0;
        // The Deployment's resourceVersion as this pass last wrote it.
        let mut own_rv = d.metadata.resource_version.clone();
        for a in actions {
            let w = match &a {
                deployment::Action::CreateReplicaSet(rs) => {
                    let w = api::write(
                        self.api,
                        with_body(
                            ObjectRequest::new(Verb::Create, "replicasets", ns, None),
                            rs,
                        ),
                    )
                    .await;
                    if w.ok() {
                        let rs_name = rs.metadata.name.as_deref().unwrap_or("");
                        let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                        self.event(
                            &d.metadata,
                            "Deployment",
                            "Normal",
                            "ScalingReplicaSet",
                            &format!("Scaled up replica set {rs_name} from 0 to {n}"),
                        );
                    }
                    w
                }
                deployment::Action::UpdateReplicaSet {
                    name: rs_name,
                    resource_version,
                    replicas,
                    annotations,
                } => {
                    let before = self
                        .rss
                        .get(&format!("{}/{rs_name}", ns.unwrap_or("")))
                        .and_then(|rs| rs.spec.as_ref().and_then(|s| s.replicas));
                    let w = api::write(self.api, merge_patch("replicasets", ns, rs_name, None,
                        &json!({"metadata": {"resourceVersion": resource_version, "annotations": annotations},
                                "spec": {"replicas": replicas}}))).await;
                    if w.ok() {
                        if let Some(b) = before.filter(|b| b != replicas) {
                            let dir = if *replicas > b { "up" } else { "down" };
                            self.event(
                                &d.metadata,
                                "Deployment",
                                "Normal",
                                "ScalingReplicaSet",
                                &format!(
                                    "Scaled {dir} replica set {rs_name} from {b} to {replicas}"
                                ),
                            );
                        }
                    }
                    w
                }
                deployment::Action::DeleteReplicaSet(rs_name, rs_uid) => {
                    api::write(
                        self.api,
                        with_body(
                            ObjectRequest::new(Verb::Delete, "replicasets", ns, Some(rs_name)),
                            &json!({"preconditions": {"uid": rs_uid}}),
                        ),
                    )
                    .await
                }
                deployment::Action::SetRevision(revision) => {
                    let w = api::write(
                        self.api,
                        merge_patch(
                            "deployments",
                            ns,
                            name,
                            None,
                            &json!({"metadata": {"resourceVersion": own_rv,
                                "annotations": {"deployment.kubernetes.io/revision": revision}}}),
                        ),
                    )
                    .await;
                    if w.ok() {
                        own_rv = Some(w.revision.to_string());
                    }
                    w
                }
                deployment::Action::Status(status) => {
                    let mut with_status = (*d).clone();
                    with_status.metadata.resource_version = own_rv.clone();
                    with_status.status = Some(status.clone());
                    api::write(self.api, status_update("deployments", &with_status)).await
                }
            };
            if !matches!(
                a,
                deployment::Action::Status(_) | deployment::Action::SetRevision(_)
            ) {
                rev = rev.max(w.revision);
            }
            if !w.ok() && w.code != 404 {
                tracing::debug!(deployment = %key, "write failed: {} {}", w.code, w.message);
                ok = false;
                break;
            }
        }
        self.expect_revision(&format!("deploy:{key}"), rev);
        ok
    }

    async fn scheduler(&self) {
        self.synced().await;
        loop {
            tokio::select! {
                () = self.sched.notified() => {}
                () = tokio::time::sleep(RESYNC) => {}
            }
            // Let a burst of pod events land before one pass over them all.
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.schedule_pass().await;
        }
    }

    async fn schedule_pass(&self) {
        self.forget_assumed();
        let assumed = self.assumed.borrow().clone();
        let mut pending: Vec<Arc<Pod>> = self
            .pods
            .by_index(BY_NODE, "")
            .into_iter()
            .filter(|p| meta::pod_active(p) && !assumed.contains_key(&meta::key(&p.metadata)))
            .filter(|p| {
                let s = p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
                s.is_none_or(|s| s == "default-scheduler")
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        if pending.len() > SCHEDULE_BATCH {
            pending.truncate(SCHEDULE_BATCH);
            self.sched.notify_one();
        }
        let nodes = self.nodes.list();
        let mut on_nodes: Vec<Arc<Pod>> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| bound(p) && meta::pod_active(p))
            .collect();
        for (key, (node, _)) in &assumed {
            if let Some(p) = self.pods.get(key).filter(|p| !bound(p)) {
                let mut p = (*p).clone();
                p.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
                on_nodes.push(Arc::new(p));
            }
        }
        let placements = scheduler::schedule(&nodes, &on_nodes, &pending);
        if !self.api.is_leader() {
            return;
        }
        let mut binds = Vec::new();
        let mut bind_keys = Vec::new();
        for pl in &placements {
            match pl {
                scheduler::Placement::Bind {
                    namespace,
                    name,
                    node,
                    ..
                } => {
                    let mut r =
                        ObjectRequest::new(Verb::Create, "pods", Some(namespace), Some(name));
                    r.subresource = Some("binding".into());
                    binds.push(with_body(
                        r,
                        &json!({"apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name, "namespace": namespace},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": node}}),
                    ));
                    bind_keys.push((format!("{namespace}/{name}"), node.clone()));
                }
                scheduler::Placement::Unschedulable {
                    namespace,
                    name,
                    message,
                    ..
                } => {
                    self.unschedulable_pod(namespace, name, message).await;
                }
            }
        }
        let results = self.write_all(binds).await;
        for ((key, node), w) in bind_keys.into_iter().zip(results) {
            if w.ok() {
                self.unschedulable.borrow_mut().remove(&key);
                self.assumed
                    .borrow_mut()
                    .insert(key.clone(), (node.clone(), Instant::now()));
                if let Some(p) = self.pods.get(&key) {
                    self.event(
                        &p.metadata,
                        "Pod",
                        "Normal",
                        "Scheduled",
                        &format!("Successfully assigned {key} to {node}"),
                    );
                }
            } else {
                tracing::debug!(pod = %key, "binding failed: {} {}", w.code, w.message);
            }
        }
    }

    /// Drops assumed bindings the cache now shows (or that are too old).
    fn forget_assumed(&self) {
        self.assumed.borrow_mut().retain(|key, (_, since)| {
            since.elapsed() < ASSUME
                && self
                    .pods
                    .get(key)
                    .is_some_and(|p| !bound(&p) && meta::pod_active(&p))
        });
    }

    async fn unschedulable_pod(&self, ns: &str, name: &str, message: &str) {
        let key = format!("{ns}/{name}");
        if self.unschedulable.borrow().get(&key).map(String::as_str) == Some(message) {
            return;
        }
        let Some(p) = self.pods.get(&key) else { return };
        let mut conds: Vec<Value> = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .filter(|c| c.type_ != "PodScheduled")
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        conds.push(
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastTransitionTime": meta::time(Timestamp::now())}),
        );
        let w = api::write(
            self.api,
            merge_patch(
                "pods",
                Some(ns),
                name,
                Some("status"),
                &json!({"metadata": {"resourceVersion": p.metadata.resource_version},
                    "status": {"conditions": conds}}),
            ),
        )
        .await;
        if w.ok() {
            self.unschedulable
                .borrow_mut()
                .insert(key, message.to_string());
            self.event(&p.metadata, "Pod", "Warning", "FailedScheduling", message);
        }
    }

    /// Writes queued events in batches.
    async fn event_writer(&self) {
        loop {
            self.event_wake.notified().await;
            let batch = std::mem::take(&mut *self.events.borrow_mut());
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

    /// Sends writes, at most [`PARALLEL`] at once; their outcomes in order.
    async fn write_all(&self, reqs: Vec<ObjectRequest>) -> Vec<Written> {
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
    fn event(&self, about: &ObjectMeta, kind: &str, type_: &str, reason: &str, message: &str) {
        let now = meta::time(Timestamp::now());
        let ns = about.namespace.clone().unwrap_or_else(|| "default".into());
        let name = about.name.clone().unwrap_or_default();
        let api_version = match kind {
            "Deployment" | "ReplicaSet" => "apps/v1",
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
        let mut q = self.events.borrow_mut();
        let same = |e: &Value| {
            e["involvedObject"]["uid"] == ev["involvedObject"]["uid"]
                && e["reason"] == ev["reason"]
                && e["message"] == ev["message"]
        };
        match q.iter_mut().find(|e| same(e)) {
            Some(e) => e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1),
            None => q.push(ev),
        }
        drop(q);
        self.event_wake.notify_one();
    }
}
