//! The Service networking controllers' shells: EndpointSlices and Endpoints
//! (keyed by Service), node IPAM (keyed by Node) and LoadBalancer addresses
//! (keyed by Service). Node IPAM and LoadBalancer each run in one loop, so
//! their decisions are made one at a time: node IPAM over its range index
//! (`ipam::Allocator`, kept current by the Node informer, with what this
//! term assigned but the cache does not show yet), LoadBalancer over the
//! cache plus its pending assignments.

use super::*;
use crate::endpoints::{apiserver, legacy, slices};
use crate::{endpoints, ipam, loadbalancer};
use k8s_openapi::api::core::v1::{Node, Service};
use std::net::IpAddr;

/// Index of managed EndpointSlices by their Service's key.
pub(super) const BY_SERVICE: &str = "service";

/// The [`BY_SERVICE`] index of a slice.
pub(super) fn slice_service(s: &k8s_openapi::api::discovery::v1::EndpointSlice) -> Vec<String> {
    slices::managed_slice_service(s).into_iter().collect()
}

/// Assignments made this term: key → (value, revision written at). One is
/// dropped once its cache reaches that revision (the cache then shows it,
/// or something newer).
pub(super) type Pending<T> = RefCell<HashMap<String, (T, u64)>>;

fn pending_now<T: Clone>(p: &Pending<T>, cache_revision: u64) -> BTreeMap<String, T> {
    let mut p = p.borrow_mut();
    p.retain(|_, (_, rev)| *rev > cache_revision);
    p.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()
}

impl Plane<'_> {
    /// Queues the Services a pod's old or new labels are selected by.
    pub(super) fn pod_services(&self, (old, new): &Change<Pod>) {
        let Some(ns) = new
            .as_ref()
            .or(old.as_ref())
            .and_then(|p| p.metadata.namespace.as_deref())
        else {
            return;
        };
        for svc in self.services.in_namespace(ns) {
            let picks = [old, new]
                .into_iter()
                .flatten()
                .any(|p| endpoints::selects(&svc, p.metadata.labels.as_ref()));
            if picks {
                let k = meta::key(&svc.metadata);
                self.slice_q.add(&k);
                self.ep_q.add(&k);
            }
        }
    }

    pub(super) fn service_changed(&self, c: &Change<Service>) {
        queue_keys(&self.slice_q, c);
        queue_keys(&self.ep_q, c);
        queue_keys(&self.lb_q, c);
        // An address given back: Services waiting for one may take it now.
        let ingress = |s: &Option<Arc<Service>>| {
            s.as_ref()
                .and_then(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref())
                .is_some_and(|i| !i.is_empty())
        };
        if ingress(&c.0) && !ingress(&c.1) {
            self.services.keys().iter().for_each(|k| self.lb_q.add(k));
        }
    }

    pub(super) async fn slice_loop(&self) {
        let sync = async |k: &str| self.sync_slices(k).await;
        self.work(&self.slice_q, "eps", || self.slices.revision(), sync)
            .await;
    }

    /// One EndpointSlice pass for a Service.
    async fn sync_slices(&self, key: &str) -> bool {
        let Some(svc) = self.services.get(key) else {
            return true; // its slices go with it (owner references)
        };
        let ns = svc.metadata.namespace.as_deref();
        if key == apiserver::SERVICE_KEY && svc.metadata.deletion_timestamp.is_none() {
            let existing = self.slices.by_index(BY_SERVICE, key);
            let addrs = self.apiserver_addresses();
            let c = apiserver::reconcile_slices(&svc, &addrs, &existing);
            return self.write_slices(key, ns, c).await;
        }
        if !endpoints::managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let pods = self.pods.in_namespace(ns.unwrap_or(""));
        let existing = self.slices.by_index(BY_SERVICE, key);
        let c = slices::reconcile(&svc, &pods, &existing);
        self.write_slices(key, ns, c).await
    }

    /// Carries out a Service's slice changes; false when one must be retried.
    async fn write_slices(&self, key: &str, ns: Option<&str>, c: slices::SliceChanges) -> bool {
        if c.is_empty() || !self.api.is_leader() {
            return true;
        }
        let mut reqs = Vec::new();
        for s in &c.create {
            reqs.push(with_body(
                ObjectRequest::new(Verb::Create, "endpointslices", ns, None),
                s,
            ));
        }
        for s in &c.update {
            let name = s.metadata.name.as_deref();
            reqs.push(with_body(
                ObjectRequest::new(Verb::Update, "endpointslices", ns, name),
                s,
            ));
        }
        for (name, uid) in &c.delete {
            reqs.push(with_body(
                ObjectRequest::new(Verb::Delete, "endpointslices", ns, Some(name)),
                &json!({"preconditions": {"uid": uid}}),
            ));
        }
        let results = self.write_all(reqs).await;
        let rev = results.iter().map(|w| w.revision).max().unwrap_or(0);
        self.expect_revision(&format!("eps:{key}"), rev);
        for w in results.iter().filter(|w| !w.ok()) {
            tracing::debug!(service = %key, "endpointslice write failed: {} {}", w.code, w.message);
        }
        results.iter().all(|w| w.ok() || w.code == 404)
    }

    pub(super) async fn endpoints_loop(&self) {
        let sync = async |k: &str| self.sync_endpoints(k).await;
        self.work(&self.ep_q, "ep", || self.endpoints.revision(), sync)
            .await;
    }

    /// One Endpoints pass for a Service (the key names both).
    async fn sync_endpoints(&self, key: &str) -> bool {
        let current = self.endpoints.get(key);
        let Some(svc) = self.services.get(key) else {
            // The Service is gone: so is the Endpoints object made for it.
            let Some(e) = current.filter(|e| legacy::controller_made(e)) else {
                return true;
            };
            // Only once the Service cache is as new as the object: a Service
            // just made may not have reached it yet.
            let written: u64 = e
                .metadata
                .resource_version
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            if self.services.revision() < written {
                return false;
            }
            if !self.api.is_leader() {
                return true;
            }
            let ns = e.metadata.namespace.as_deref();
            let w = api::write(
                self.api,
                with_body(
                    ObjectRequest::new(Verb::Delete, "endpoints", ns, e.metadata.name.as_deref()),
                    &json!({"preconditions": {"uid": e.metadata.uid}}),
                ),
            )
            .await;
            self.expect_revision(&format!("ep:{key}"), w.revision);
            return w.ok() || w.code == 404 || w.code == 409;
        };
        let ns = svc.metadata.namespace.as_deref();
        let desired = if key == apiserver::SERVICE_KEY {
            if svc.metadata.deletion_timestamp.is_some() {
                return true;
            }
            apiserver::reconcile_endpoints(&svc, &self.apiserver_addresses(), current.as_deref())
        } else {
            if !endpoints::managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
                return true;
            }
            let pods = self.pods.in_namespace(ns.unwrap_or(""));
            legacy::reconcile(&svc, &pods, current.as_deref())
        };
        let Some(e) = desired else {
            return true;
        };
        if !self.api.is_leader() {
            return true;
        }
        let req = match current {
            Some(_) => {
                ObjectRequest::new(Verb::Update, "endpoints", ns, e.metadata.name.as_deref())
            }
            None => ObjectRequest::new(Verb::Create, "endpoints", ns, None),
        };
        let w = api::write(self.api, with_body(req, &e)).await;
        self.expect_revision(&format!("ep:{key}"), w.revision);
        if !w.ok() {
            tracing::debug!(service = %key, "endpoints write failed: {} {}", w.code, w.message);
        }
        w.ok()
    }

    /// Notes `what` once a term; true the first time (Events and logs that
    /// a resync would otherwise repeat every pass).
    fn first_notice(&self, what: String) -> bool {
        self.noticed.borrow_mut().insert(what)
    }

    /// A Node seen by the informer: the range index follows it; a Node
    /// without a range is queued, and a range freed goes to the nodes that
    /// wait for one.
    pub(super) fn node_cidr_changed(&self, (old, new): &Change<Node>) {
        let Some(key) = new
            .as_ref()
            .or(old.as_ref())
            .map(|n| meta::key(&n.metadata))
        else {
            return;
        };
        let seen = self.cidrs.borrow_mut().observe(&key, new.as_deref());
        if seen.conflict && self.first_notice(format!("conflict:{key}")) {
            tracing::warn!(node = %key, "its pod range overlaps another node's; both keep theirs");
        }
        if new.as_deref().is_some_and(|n| !ipam::has_pod_cidr(n)) {
            self.ipam_q.add(&key);
        }
        if seen.freed {
            self.retry_waiting();
        }
    }

    /// Queues the waiting nodes that may take the ranges free now.
    fn retry_waiting(&self) {
        let retry = self.cidrs.borrow().to_retry();
        if !retry.is_empty() {
            tracing::info!(
                "{} pod range(s) of {} free again; {} waiting node(s) retried",
                self.cidrs.borrow().free(),
                self.network.cluster_cidr,
                retry.len()
            );
        }
        retry.iter().for_each(|k| self.ipam_q.add(k));
    }

    pub(super) async fn ipam_loop(&self) {
        let sync = async |k: &str| self.sync_node_cidr(k).await;
        self.work(&self.ipam_q, "ipam", || self.nodes.revision(), sync)
            .await;
    }

    /// One node IPAM pass for a Node: O(log n) over the range index, nothing
    /// listed.
    async fn sync_node_cidr(&self, key: &str) -> bool {
        let Some(node) = self.nodes.get(key) else {
            return true;
        };
        let net = self.network;
        let d = self.cidrs.borrow_mut().decide(&node);
        match d {
            ipam::Decision::Keep => true,
            ipam::Decision::Outside(c) => {
                if self.first_notice(format!("outside:{key}:{c}")) {
                    tracing::warn!(node = %key, "podCIDR {c} lies outside the cluster CIDR {}; left as it is", net.cluster_cidr);
                }
                true
            }
            ipam::Decision::Exhausted {
                first_for_node,
                episode_starts,
            } => {
                if first_for_node {
                    let msg = format!("Node {key} status is now: CIDRNotAvailable");
                    self.event(
                        Source::CidrAllocator,
                        &node.metadata,
                        "Node",
                        "Normal",
                        "CIDRNotAvailable",
                        &msg,
                    );
                }
                if episode_starts {
                    tracing::warn!(
                        "no free pod range left in {} ({} ranges of /{}): nodes without one wait until a node is deleted (one CIDRNotAvailable Event each)",
                        net.cluster_cidr,
                        net.cluster_cidr.subnets(net.node_cidr_prefix),
                        net.node_cidr_prefix
                    );
                }
                true
            }
            ipam::Decision::Assign(c) => {
                if !self.api.is_leader() {
                    self.cidrs.borrow_mut().unassign(key);
                    return true;
                }
                let cidr = c.to_string();
                let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                    "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                let w = api::write(self.api, merge_patch("nodes", None, key, None, &patch)).await;
                if w.ok() {
                    tracing::debug!(node = %key, "pod range {cidr} assigned");
                    self.expect_revision(&format!("ipam:{key}"), w.revision);
                } else {
                    // Not written (a conflict: the next pass decides again).
                    self.cidrs.borrow_mut().unassign(key);
                    self.retry_waiting();
                }
                w.ok() || w.code == 404
            }
        }
    }

    pub(super) async fn lb_loop(&self) {
        let sync = async |k: &str| self.sync_lb(k).await;
        self.work(&self.lb_q, "lb", || self.services.revision(), sync)
            .await;
    }

    /// One LoadBalancer pass for a Service.
    async fn sync_lb(&self, key: &str) -> bool {
        let Some(svc) = self.services.get(key) else {
            return true;
        };
        let pending: BTreeMap<String, IpAddr> =
            pending_now(&self.lb_pending, self.services.revision());
        let all = self.services.list();
        let d = loadbalancer::decide(self.network.load_balancer_pool, key, &svc, &all, &pending);
        if let loadbalancer::Decision::Fail(msg) = &d {
            if self.first_notice(format!("lb:{key}:{msg}")) {
                self.event(
                    Source::LoadBalancer,
                    &svc.metadata,
                    "Service",
                    "Warning",
                    "AllocationFailed",
                    msg,
                );
            }
            return true;
        }
        let Some(status) = loadbalancer::status_for(&d) else {
            return true;
        };
        if !self.api.is_leader() {
            return true;
        }
        let mut with_status = (*svc).clone();
        with_status
            .status
            .get_or_insert_with(Default::default)
            .load_balancer = Some(status);
        let w = api::write(self.api, status_update("services", &with_status)).await;
        if let (true, loadbalancer::Decision::Assign(ip)) = (w.ok(), &d) {
            self.lb_pending
                .borrow_mut()
                .insert(key.to_string(), (*ip, w.revision));
            self.expect_revision(&format!("lb:{key}"), w.revision);
            let msg = format!("Assigned IP [\"{ip}\"]");
            self.event(
                Source::LoadBalancer,
                &svc.metadata,
                "Service",
                "Normal",
                "IPAllocated",
                &msg,
            );
        }
        w.ok() || w.code == 404
    }

    pub(super) async fn ingress_loop(&self) {
        let sync = async |k: &str| self.sync_ingress(k).await;
        self.work(&self.ing_q, "ing", || self.ingresses.revision(), sync)
            .await;
    }

    /// One status pass for an Ingress: the Ready nodes' addresses.
    async fn sync_ingress(&self, key: &str) -> bool {
        let Some(ing) = self.ingresses.get(key) else {
            return true;
        };
        let classes = self.ingress_classes.list();
        let nodes = self.nodes.list();
        let Some(status) = crate::ingress::status(
            &ing,
            &classes,
            &nodes,
            self.network.ingress_port,
            self.network.ingress_tls_port,
        ) else {
            return true;
        };
        if !self.api.is_leader() {
            return true;
        }
        let mut with_status = (*ing).clone();
        with_status.status = Some(status);
        let w = api::write(self.api, status_update("ingresses", &with_status)).await;
        if w.ok() {
            self.expect_revision(&format!("ing:{key}"), w.revision);
        }
        w.ok() || w.code == 404
    }
}

impl Plane<'_> {
    /// A Lease seen by the informer: a master's apiserver lease is noted
    /// with when this term saw it renewed (its liveness is judged on this
    /// master's clock, not on the writer's `renewTime`).
    pub(super) fn apiserver_lease_changed(&self, (old, new): &Change<Lease>) {
        let Some(l) = new.as_ref().or(old.as_ref()) else {
            return;
        };
        if apiserver::lease_address(l).is_none()
            && old
                .as_ref()
                .and_then(|o| apiserver::lease_address(o))
                .is_none()
        {
            return;
        }
        let key = meta::key(&l.metadata);
        let mut seen = self.apiservers.borrow_mut();
        match new {
            None => {
                seen.remove(&key);
            }
            Some(n) => {
                let renew = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                if seen.get(&key).is_none_or(|(r, _)| *r != renew) {
                    seen.insert(key, (renew, Instant::now()));
                }
            }
        }
    }

    /// The HTTPS addresses of the masters whose leases this term saw
    /// renewed within their duration.
    pub(super) fn apiserver_addresses(&self) -> Vec<std::net::SocketAddr> {
        let seen = self.apiservers.borrow();
        let mut out: Vec<_> = self
            .leases
            .in_namespace(apiserver::LEASE_NAMESPACE)
            .iter()
            .filter_map(|l| {
                let addr = apiserver::lease_address(l)?;
                let secs = l
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_duration_seconds)
                    .unwrap_or(apiserver::LEASE_SECONDS);
                let (_, at) = seen.get(&meta::key(&l.metadata))?;
                (at.elapsed() <= Duration::from_secs(secs.max(1) as u64)).then_some(addr)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Queues the `kubernetes` Service whenever the live masters change
    /// (a lease renewed late, a master gone).
    pub(super) async fn apiserver_loop(&self) {
        self.synced().await;
        let mut last = None;
        loop {
            let now = self.apiserver_addresses();
            if last.as_ref() != Some(&now) {
                self.slice_q.add(apiserver::SERVICE_KEY);
                self.ep_q.add(apiserver::SERVICE_KEY);
                last = Some(now);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
