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
//!
//! Layout: this file (the term's caches, queues, informers and the work
//! loop); [`apps`] (ReplicaSets, ReplicationControllers, Deployments,
//! DaemonSets, StatefulSets);
//! [`batch`] (Jobs, CronJobs); [`network`] (EndpointSlices, Endpoints, node
//! IPAM, LoadBalancer addresses); [`lifecycle`] (unreachable nodes, from
//! the Lease informer; its Node Events); [`storage`] (claims and volumes); [`podgc`] (the pod garbage collector); [`schedule`] (the scheduler's passes and
//! bindings); [`events`] (batched writes and Events); [`gc`] (the garbage
//! collector and the namespace controller: a plane of their own, run on every
//! master, `gc::run`).

mod adopt;
mod apps;
mod autoscale;
mod batch;
mod events;
use events::Source;
pub mod gc;
mod lifecycle;
mod network;
mod podgc;
mod quota;
mod schedule;
mod storage;

use crate::api::{self, merge_patch, with_body, ControlApi, Written};
use crate::cache::{pod_node, Cache, Change, BY_NODE, BY_OWNER};
use crate::queue::WorkQueue;
use crate::{
    cronjob, daemonset, deployment, disruption, job, meta, replicaset, replicationcontroller,
    scheduler, statefulset,
};
use ferry_api::network::Network;
use ferry_api::object::{ObjectRequest, Verb};
use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController,
    ResourceQuota, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::Metadata;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
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
/// The longest a scheduling pass computes before it yields the thread.
const SCHEDULE_SLICE: Duration = Duration::from_millis(5);

/// What the control plane is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster network: node pod ranges and LoadBalancer addresses come
    /// from it.
    pub network: Network,
    /// How long an Event is kept after it last happened.
    pub event_ttl: Duration,
    /// This master's HTTPS address, kept in its apiserver Lease (the
    /// `kubernetes` Service's endpoints); None: it publishes none.
    pub https_address: Option<std::net::SocketAddr>,
}

/// Runs the control plane for as long as the future lives: its controllers
/// act only while `api` says this master leads.
pub async fn run(api: &dyn ControlApi, settings: &Settings) {
    let network = &settings.network;
    let event_ttl = settings.event_ttl;
    let mut leadership = api.leadership();
    loop {
        while !*leadership.borrow_and_update() {
            if leadership.changed().await.is_err() {
                return;
            }
        }
        tracing::info!("control plane: this master leads; informers and controllers start");
        let plane = Plane::new(api, network, event_ttl);
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
    network: &'a Network,
    event_ttl: Duration,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    leases: Cache<Lease>,
    /// When this term saw each node's Lease move (the node lifecycle's grace).
    observed: RefCell<crate::nodelifecycle::Observed>,
    /// Masters' apiserver leases: key → (renewTime, when this term saw it).
    apiservers: RefCell<HashMap<String, (String, Instant)>>,
    rss: Cache<ReplicaSet>,
    rcs: Cache<ReplicationController>,
    deploys: Cache<Deployment>,
    daemonsets: Cache<DaemonSet>,
    statefulsets: Cache<StatefulSet>,
    /// DaemonSets' and StatefulSets' ControllerRevisions.
    revisions: Cache<ControllerRevision>,
    jobs: Cache<Job>,
    cronjobs: Cache<CronJob>,
    pdbs: Cache<PodDisruptionBudget>,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
    endpoints: Cache<Endpoints>,
    claims: Cache<PersistentVolumeClaim>,
    volumes: Cache<PersistentVolume>,
    classes: Cache<StorageClass>,
    quotas: Cache<ResourceQuota>,
    ingresses: Cache<Ingress>,
    ingress_classes: Cache<IngressClass>,
    rs_q: WorkQueue,
    rc_q: WorkQueue,
    deploy_q: WorkQueue,
    ds_q: WorkQueue,
    sts_q: WorkQueue,
    job_q: WorkQueue,
    cj_q: WorkQueue,
    pdb_q: WorkQueue,
    /// Services whose EndpointSlices / Endpoints / LoadBalancer status to sync.
    slice_q: WorkQueue,
    ep_q: WorkQueue,
    lb_q: WorkQueue,
    /// Ingresses whose status to sync.
    ing_q: WorkQueue,
    /// Nodes whose pod range to check.
    ipam_q: WorkQueue,
    /// Claims to bind or provision for; volumes whose phase to check.
    claim_q: WorkQueue,
    pv_q: WorkQueue,
    /// Quotas to recount.
    quota_q: WorkQueue,
    /// The pod ranges Nodes hold (node IPAM's index, built from the Node
    /// informer as it lists and kept current by its events).
    cidrs: RefCell<crate::ipam::Allocator>,
    /// LoadBalancer addresses assigned but not yet seen.
    lb_pending: network::Pending<std::net::IpAddr>,
    /// Warnings already given this term (see `first_notice`).
    noticed: RefCell<HashSet<String>>,
    sched: Notify,
    /// The node index the scheduler's next pod filters from (see `scheduler::schedule_from`).
    sched_start: std::cell::Cell<usize>,
    /// key → (revision its cache must reach, since when).
    expect: RefCell<HashMap<String, (u64, Instant)>>,
    /// pod key → (node, since when): bindings made but not yet seen.
    assumed: RefCell<HashMap<String, (String, Instant)>>,
    /// pod key → the unschedulable message last written.
    unschedulable: RefCell<HashMap<String, String>>,
    /// Events waiting for the event writer, and where each repeat key
    /// (object uid, reason, message) sits among them.
    events: RefCell<(Vec<Value>, HashMap<String, usize>)>,
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

/// Queues the controllers in `owners` of the orphan `m`'s namespace whose
/// selector matches it: they may adopt it (see [`crate::claim`]).
fn queue_adopters<O: Metadata<Ty = ObjectMeta>>(
    owners: &Cache<O>,
    q: &WorkQueue,
    m: &ObjectMeta,
    selector: impl Fn(&O) -> Option<&LabelSelector>,
) {
    let ns = m.namespace.as_deref().unwrap_or_default();
    for o in owners.in_namespace(ns) {
        if selector(&o).is_some_and(|s| meta::selector_matches(s, m.labels.as_ref())) {
            q.add(&meta::key(o.metadata()));
        }
    }
}

/// Queues the keys of a change's objects.
fn queue_keys<K: Metadata<Ty = ObjectMeta>>(q: &WorkQueue, (old, new): &Change<K>) {
    for o in [old, new].into_iter().flatten() {
        q.add(&meta::key(o.metadata()));
    }
}

/// Whether a Node change touches what DaemonSets and Ingresses read of it:
/// labels, spec (taints, unschedulable), addresses, the conditions' statuses
/// (not their times). A Node added or deleted always does.
fn placement_changed((old, new): &Change<Node>) -> bool {
    let (Some(o), Some(n)) = (old, new) else {
        return true;
    };
    o.metadata.labels != n.metadata.labels
        || o.spec != n.spec
        || node_addresses(o) != node_addresses(n)
        || condition_statuses(o) != condition_statuses(n)
}

fn node_addresses(n: &Node) -> Option<&Vec<k8s_openapi::api::core::v1::NodeAddress>> {
    n.status.as_ref().and_then(|s| s.addresses.as_ref())
}

fn condition_statuses(n: &Node) -> Vec<(&str, &str)> {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect()
}

fn bound(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

impl<'a> Plane<'a> {
    fn new(api: &'a dyn ControlApi, network: &'a Network, event_ttl: Duration) -> Self {
        Plane {
            api,
            network,
            event_ttl,
            pods: Cache::new(vec![(BY_NODE, pod_node)]),
            nodes: Cache::new(Vec::new()),
            leases: Cache::new(Vec::new()),
            observed: RefCell::default(),
            apiservers: RefCell::default(),
            rss: Cache::new(Vec::new()),
            rcs: Cache::new(Vec::new()),
            deploys: Cache::new(Vec::new()),
            daemonsets: Cache::new(Vec::new()),
            statefulsets: Cache::new(Vec::new()),
            revisions: Cache::new(Vec::new()),
            jobs: Cache::new(Vec::new()),
            cronjobs: Cache::new(Vec::new()),
            pdbs: Cache::new(Vec::new()),
            services: Cache::new(Vec::new()),
            slices: Cache::new(vec![(network::BY_SERVICE, network::slice_service)]),
            endpoints: Cache::new(Vec::new()),
            claims: Cache::new(Vec::new()),
            volumes: Cache::new(Vec::new()),
            classes: Cache::new(Vec::new()),
            quotas: Cache::new(Vec::new()),
            ingresses: Cache::new(Vec::new()),
            ingress_classes: Cache::new(Vec::new()),
            rs_q: WorkQueue::default(),
            rc_q: WorkQueue::default(),
            deploy_q: WorkQueue::default(),
            ds_q: WorkQueue::default(),
            sts_q: WorkQueue::default(),
            job_q: WorkQueue::default(),
            cj_q: WorkQueue::default(),
            pdb_q: WorkQueue::default(),
            slice_q: WorkQueue::default(),
            ep_q: WorkQueue::default(),
            lb_q: WorkQueue::default(),
            ing_q: WorkQueue::default(),
            ipam_q: WorkQueue::default(),
            claim_q: WorkQueue::default(),
            pv_q: WorkQueue::default(),
            quota_q: WorkQueue::default(),
            cidrs: RefCell::new(crate::ipam::Allocator::new(
                network.cluster_cidr,
                network.node_cidr_prefix,
            )),
            lb_pending: RefCell::default(),
            noticed: RefCell::default(),
            sched: Notify::new(),
            sched_start: std::cell::Cell::new(0),
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
            crate::informer::run(api, "pods", &self.pods, |c| {
                self.pod_changed(c);
                self.pod_services(c);
                self.pod_claims(c);
                self.pod_quotas(c);
            }),
            crate::informer::run(api, "nodes", &self.nodes, |c| {
                self.sched.notify_one();
                self.node_cidr_changed(c);
                // A node's labels, taints or readiness decide where daemons
                // run; Ready nodes' addresses are the Ingresses' status. A
                // status write that changes neither (heartbeat times) queues
                // nothing: each pass reads every node.
                if placement_changed(c) {
                    self.daemonsets.keys().iter().for_each(|k| self.ds_q.add(k));
                    self.ingresses.keys().iter().for_each(|k| self.ing_q.add(k));
                }
            }),
            crate::informer::run(api, "leases", &self.leases, |c| {
                self.lease_changed(c);
                self.apiserver_lease_changed(c);
            }),
            self.apiserver_loop(),
            self.node_lifecycle_loop(),
            crate::informer::run(api, "replicasets", &self.rss, |c| self.rs_changed(c)),
            crate::informer::run(api, "replicationcontrollers", &self.rcs, |c| {
                queue_keys(&self.rc_q, c)
            }),
            crate::informer::run(api, "deployments", &self.deploys, |c| {
                for o in [&c.0, &c.1].into_iter().flatten() {
                    self.deploy_q.add(&meta::key(o.metadata()));
                }
            }),
            crate::informer::run(api, "daemonsets", &self.daemonsets, |c| {
                queue_keys(&self.ds_q, c)
            }),
            crate::informer::run(api, "statefulsets", &self.statefulsets, |c| {
                queue_keys(&self.sts_q, c)
            }),
            crate::informer::run(api, "controllerrevisions", &self.revisions, |c| {
                for r in [&c.0, &c.1].into_iter().flatten() {
                    if let Some(k) = owner_key(&r.metadata, "DaemonSet") {
                        self.ds_q.add(&k);
                    }
                    if let Some(k) = owner_key(&r.metadata, "StatefulSet") {
                        self.sts_q.add(&k);
                    }
                }
            }),
            crate::informer::run(api, "jobs", &self.jobs, |c| self.job_changed(c)),
            crate::informer::run(api, "cronjobs", &self.cronjobs, |c| {
                queue_keys(&self.cj_q, c)
            }),
            self.replicasets(),
            self.replication_controllers(),
            self.deployments(),
            self.daemonset_loop(),
            self.statefulset_loop(),
            self.job_loop(),
            self.cronjob_loop(),
            crate::informer::run(api, "poddisruptionbudgets", &self.pdbs, |c| {
                queue_keys(&self.pdb_q, c)
            }),
            self.disruption_loop(),
            crate::informer::run(api, "services", &self.services, |c| {
                self.service_changed(c)
            }),
            crate::informer::run(api, "endpointslices", &self.slices, |c| {
                for s in [&c.0, &c.1].into_iter().flatten() {
                    network::slice_service(s)
                        .iter()
                        .for_each(|k| self.slice_q.add(k));
                }
            }),
            crate::informer::run(api, "endpoints", &self.endpoints, |c| {
                queue_keys(&self.ep_q, c)
            }),
            crate::informer::run(api, "persistentvolumeclaims", &self.claims, |c| {
                self.claim_changed(c);
                self.sched.notify_one();
            }),
            crate::informer::run(api, "persistentvolumes", &self.volumes, |c| {
                self.volume_changed(c);
                self.sched.notify_one();
            }),
            crate::informer::run(api, "storageclasses", &self.classes, |_| {
                self.claims.keys().iter().for_each(|k| self.claim_q.add(k));
            }),
            crate::informer::run(api, "resourcequotas", &self.quotas, |c| {
                self.quota_changed(c)
            }),
            crate::informer::run(api, "ingresses", &self.ingresses, |c| {
                queue_keys(&self.ing_q, c)
            }),
            crate::informer::run(api, "ingressclasses", &self.ingress_classes, |_| {
                self.ingresses.keys().iter().for_each(|k| self.ing_q.add(k));
            }),
            self.ingress_loop(),
            self.quota_loop(),
            self.claim_loop(),
            self.volume_loop(),
            self.slice_loop(),
            self.endpoints_loop(),
            self.ipam_loop(),
            self.lb_loop(),
            self.scheduler(),
            self.resync(),
            self.event_writer(),
            self.event_sweeper(),
            self.autoscale_loop(),
            self.pod_gc_loop(),
        );
    }

    fn pod_changed(&self, (old, new): &Change<Pod>) {
        for p in [old, new].into_iter().flatten() {
            for (kind, q) in [
                ("ReplicaSet", &self.rs_q),
                ("ReplicationController", &self.rc_q),
                ("DaemonSet", &self.ds_q),
                ("StatefulSet", &self.sts_q),
                ("Job", &self.job_q),
            ] {
                if let Some(k) = owner_key(&p.metadata, kind) {
                    q.add(&k);
                }
            }
        }
        // An orphan: the controllers that may adopt it look.
        if let Some(p) = new
            .as_ref()
            .filter(|p| meta::controller_of(&p.metadata).is_none())
        {
            let m = &p.metadata;
            queue_adopters(&self.rss, &self.rs_q, m, |o| {
                o.spec.as_ref().map(|s| &s.selector)
            });
            let ns = m.namespace.as_deref().unwrap_or_default();
            for rc in self.rcs.in_namespace(ns) {
                let sel = replicationcontroller::selector(&rc);
                if sel.is_some_and(|s| meta::selector_matches(&s, m.labels.as_ref())) {
                    self.rc_q.add(&meta::key(&rc.metadata));
                }
            }
            queue_adopters(&self.daemonsets, &self.ds_q, m, |o| {
                o.spec.as_ref().map(|s| &s.selector)
            });
            queue_adopters(&self.statefulsets, &self.sts_q, m, |o| {
                o.spec.as_ref().map(|s| &s.selector)
            });
            queue_adopters(&self.jobs, &self.job_q, m, |o| {
                o.spec.as_ref().and_then(|s| s.selector.as_ref())
            });
        }
        // The budgets of the pod's namespace count it.
        if let Some(ns) = new
            .as_ref()
            .or(old.as_ref())
            .and_then(|p| p.metadata.namespace.as_deref())
        {
            let prefix = format!("{ns}/");
            for k in self.pdbs.keys().iter().filter(|k| k.starts_with(&prefix)) {
                self.pdb_q.add(k);
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

    fn job_changed(&self, (old, new): &Change<Job>) {
        for j in [old, new].into_iter().flatten() {
            self.job_q.add(&meta::key(&j.metadata));
            if let Some(k) = owner_key(&j.metadata, "CronJob") {
                self.cj_q.add(&k);
            }
        }
    }

    fn rs_changed(&self, (old, new): &Change<ReplicaSet>) {
        for rs in [old, new].into_iter().flatten() {
            self.rs_q.add(&meta::key(&rs.metadata));
            if let Some(k) = owner_key(&rs.metadata, "Deployment") {
                self.deploy_q.add(&k);
            }
        }
        if let Some(rs) = new
            .as_ref()
            .filter(|o| meta::controller_of(&o.metadata).is_none())
        {
            queue_adopters(&self.deploys, &self.deploy_q, &rs.metadata, |o| {
                o.spec.as_ref().map(|s| &s.selector)
            });
        }
    }

    async fn synced(&self) {
        while !(self.pods.synced()
            && self.nodes.synced()
            && self.leases.synced()
            && self.rss.synced()
            && self.rcs.synced()
            && self.deploys.synced()
            && self.daemonsets.synced()
            && self.statefulsets.synced()
            && self.revisions.synced()
            && self.jobs.synced()
            && self.cronjobs.synced()
            && self.pdbs.synced()
            && self.services.synced()
            && self.slices.synced()
            && self.endpoints.synced()
            && self.claims.synced()
            && self.volumes.synced()
            && self.classes.synced()
            && self.quotas.synced()
            && self.ingresses.synced()
            && self.ingress_classes.synced())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn resync(&self) {
        loop {
            tokio::time::sleep(RESYNC).await;
            self.rss.keys().iter().for_each(|k| self.rs_q.add(k));
            self.rcs.keys().iter().for_each(|k| self.rc_q.add(k));
            self.daemonsets.keys().iter().for_each(|k| self.ds_q.add(k));
            self.statefulsets
                .keys()
                .iter()
                .for_each(|k| self.sts_q.add(k));
            self.jobs.keys().iter().for_each(|k| self.job_q.add(k));
            self.cronjobs.keys().iter().for_each(|k| self.cj_q.add(k));
            self.pdbs.keys().iter().for_each(|k| self.pdb_q.add(k));
            for k in self.services.keys() {
                self.slice_q.add(&k);
                self.ep_q.add(&k);
                self.lb_q.add(&k);
            }
            // (Node IPAM is event-driven: new nodes, failed writes' back-off
            // and freed ranges queue what needs a range; nothing to resync.)
            self.ingresses.keys().iter().for_each(|k| self.ing_q.add(k));
            self.claims.keys().iter().for_each(|k| self.claim_q.add(k));
            self.volumes.keys().iter().for_each(|k| self.pv_q.add(k));
            self.quotas.keys().iter().for_each(|k| self.quota_q.add(k));
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

    /// A controller's loop: keys from `q`, each reconciled by `sync` once the
    /// cache `rev` reads has caught up with the key's last writes; a failed
    /// pass comes back after its back-off.
    async fn work(
        &self,
        q: &WorkQueue,
        tag: &str,
        rev: impl Fn() -> u64,
        sync: impl AsyncFn(&str) -> bool,
    ) {
        self.synced().await;
        loop {
            let key = q.next().await;
            if !self.expectations_met(&format!("{tag}:{key}"), rev()) {
                q.add_after(&key, Duration::from_millis(50));
                continue;
            }
            if sync(&key).await {
                q.forget(&key);
            } else {
                q.retry(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: Value) -> Option<Arc<Node>> {
        Some(Arc::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn only_node_changes_daemonsets_and_ingresses_read_queue_them() {
        let base = json!({"metadata": {"name": "n", "labels": {"a": "1"}},
            "spec": {"podCIDR": "10.42.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.1.0.1"}],
                "conditions": [{"type": "Ready", "status": "True",
                    "lastHeartbeatTime": "2026-12-06T00:00:00Z"}]}});
        let with = |ptr: &str, v: Value| {
            let mut n = base.clone();
            *n.pointer_mut(ptr).unwrap() = v;
            node(n)
        };
        let cases = [
            ("added", None, node(base.clone()), true),
            ("deleted", node(base.clone()), None, true),
            ("unchanged", node(base.clone()), node(base.clone()), false),
            (
                "a heartbeat time",
                node(base.clone()),
                with(
                    "/status/conditions/0/lastHeartbeatTime",
                    json!("2026-12-06T00:01:00Z"),
                ),
                false,
            ),
            (
                "readiness",
                node(base.clone()),
                with("/status/conditions/0/status", json!("Unknown")),
                true,
            ),
            (
                "a label",
                node(base.clone()),
                with("/metadata/labels", json!({"a": "2"})),
                true,
            ),
            (
                "a taint",
                node(base.clone()),
                with(
                    "/spec",
                    json!({"podCIDR": "10.42.0.0/24",
                "taints": [{"key": "k", "effect": "NoSchedule"}]}),
                ),
                true,
            ),
            (
                "an address",
                node(base.clone()),
                with("/status/addresses/0/address", json!("127.1.0.2")),
                true,
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(placement_changed(&(old, new)), want, "{what}");
        }
    }
}
