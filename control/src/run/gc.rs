//! The garbage collector's and the namespace controller's shell, on every
//! master whether or not it runs the workload controllers: while this master
//! leads, one informer per served kind that can be watched (every kind may
//! carry ownerReferences, so all are watched from the start; objects are
//! cached as metadata only, [`Head`]) feeds caches indexed by uid and by every
//! owner's uid, plus one typed Namespace informer. A change queues the object,
//! its dependents and its owners for [`gc::reconcile`], and its namespace for
//! [`namespace::reconcile`]; the writes they return go through the API with
//! uid or resourceVersion preconditions, after a leadership check. Nothing is
//! re-listed per pass: a new term lists once (its full resync) and watches.

use super::{lost, status_update};
use crate::api::{set_metadata_list, with_body, write, ControlApi, Written};
use crate::cache::{Cache, Change};
use crate::gc::{self, Action, Graph, Head, Object, Target};
use crate::namespace;
use crate::queue::WorkQueue;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::resources::{Resource, RESOURCES};
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Index of objects by their own uid.
const BY_UID: &str = "uid";
/// Index of objects by every owner's uid (the cache's own `owner` index
/// holds only the controller's).
const BY_ANY_OWNER: &str = "owners";
/// How often everything is queued again (a missed wake-up heals).
const RESYNC: Duration = Duration::from_secs(30);
/// How long a key waits for the caches to show its last writes.
const EXPECT: Duration = Duration::from_secs(30);

fn uid_index(h: &Head) -> Vec<String> {
    h.metadata.uid.clone().into_iter().collect()
}

fn owners_index(h: &Head) -> Vec<String> {
    h.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

/// The kinds the collector watches: every served kind with `watch`.
pub fn watched_kinds() -> Vec<&'static Resource> {
    RESOURCES
        .iter()
        .filter(|r| r.discovery().verbs.contains(&"watch"))
        .collect()
}

/// Runs the collector and the namespace controller for as long as the
/// future lives, acting only while `api` says this master leads.
pub async fn run(api: &dyn ControlApi) {
    let mut leadership = api.leadership();
    loop {
        while !*leadership.borrow_and_update() {
            if leadership.changed().await.is_err() {
                return;
            }
        }
        tracing::info!("garbage collector: this master leads; informers start");
        let plane = Collector::new(api);
        tokio::select! {
            () = plane.run() => {}
            () = lost(&mut leadership) => {}
        }
        tracing::info!("garbage collector: leadership lost; stopped");
    }
}

/// (kind index, revision) pairs a key's caches must reach, and since when.
type Expected = (Vec<(usize, u64)>, Instant);

/// One term's state.
struct Collector<'a> {
    api: &'a dyn ControlApi,
    kinds: Vec<(&'static Resource, Cache<Head>)>,
    namespaces: Cache<Namespace>,
    /// `<plural>|<key>` of objects to collect.
    q: WorkQueue,
    /// Namespaces to reconcile.
    ns_q: WorkQueue,
    /// GC key → the revisions its kinds' caches must reach, and since when.
    expect: RefCell<HashMap<String, Expected>>,
    /// Namespace → the failures of its last pass's deletes.
    failures: RefCell<HashMap<String, Vec<String>>>,
}

impl Graph for Collector<'_> {
    fn by_uid(&self, uid: &str) -> Option<Object> {
        self.kinds.iter().find_map(|(res, c)| {
            c.by_index(BY_UID, uid)
                .into_iter()
                .next()
                .map(|head| Object { res, head })
        })
    }
    fn dependents(&self, uid: &str) -> Vec<Object> {
        self.kinds
            .iter()
            .flat_map(|(res, c)| {
                c.by_index(BY_ANY_OWNER, uid)
                    .into_iter()
                    .map(|head| Object { res, head })
            })
            .collect()
    }
}

fn gc_key(res: &Resource, h: &Head) -> String {
    format!("{}|{}", res.plural, crate::meta::key(&h.metadata))
}

fn target_request(verb: Verb, t: &Target) -> ObjectRequest {
    ObjectRequest::new(verb, t.plural, t.namespace.as_deref(), Some(&t.name))
}

/// [`set_metadata_list`] on `t`.
fn set_list<T: serde::Serialize>(
    t: &Target,
    resource_version: &str,
    field: &str,
    values: &[T],
) -> ObjectRequest {
    set_metadata_list(
        t.plural,
        t.namespace.as_deref(),
        &t.name,
        resource_version,
        field,
        values,
    )
}

/// Whether a write's answer lets the pass go on: done, already gone, or
/// (a delete) already deleting.
fn fine(w: &Written) -> bool {
    w.ok() || w.code == 404
}

impl<'a> Collector<'a> {
    fn new(api: &'a dyn ControlApi) -> Self {
        Collector {
            api,
            kinds: watched_kinds()
                .into_iter()
                .map(|r| {
                    (
                        r,
                        Cache::new(vec![
                            (BY_UID, uid_index as fn(&Head) -> Vec<String>),
                            (BY_ANY_OWNER, owners_index),
                        ]),
                    )
                })
                .collect(),
            namespaces: Cache::new(Vec::new()),
            q: WorkQueue::default(),
            ns_q: WorkQueue::default(),
            expect: RefCell::default(),
            failures: RefCell::default(),
        }
    }

    async fn run(&self) {
        let informers = self.kinds.iter().enumerate().map(|(i, (res, cache))| {
            crate::informer::run(self.api, res.plural, cache, move |c| self.changed(i, c))
        });
        tokio::join!(
            join_all(informers),
            crate::informer::run(self.api, "namespaces", &self.namespaces, |(o, n)| {
                for ns in [o, n].into_iter().flatten() {
                    self.ns_q.add(&crate::meta::key(&ns.metadata));
                }
            }),
            self.gc_loop(),
            self.namespace_loop(),
            self.resync(),
        );
    }

    /// A change of kind `i`: the object, its dependents and owners, its namespace.
    fn changed(&self, i: usize, (old, new): &Change<Head>) {
        let res = self.kinds[i].0;
        for h in [old, new].into_iter().flatten() {
            self.q.add(&gc_key(res, h));
            if let Some(uid) = h.metadata.uid.as_deref() {
                for d in self.dependents(uid) {
                    self.q.add(&gc_key(d.res, &d.head));
                }
            }
            for r in h.metadata.owner_references.iter().flatten() {
                if let Some(o) = self.by_uid(&r.uid) {
                    self.q.add(&gc_key(o.res, &o.head));
                }
            }
            if let Some(ns) = h.metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
                let terminating = self
                    .namespaces
                    .get(ns)
                    .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
                // A terminating namespace counts its content; an active one
                // keeps its `default` ServiceAccount.
                if terminating || res.kind == "ServiceAccount" {
                    self.ns_q.add(ns);
                }
            }
        }
    }

    async fn synced(&self) {
        while !(self.namespaces.synced() && self.kinds.iter().all(|(_, c)| c.synced())) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn resync(&self) {
        self.synced().await;
        loop {
            for (res, c) in &self.kinds {
                for h in c.list() {
                    self.q.add(&gc_key(res, &h));
                }
            }
            self.namespaces.keys().iter().for_each(|k| self.ns_q.add(k));
            tokio::time::sleep(RESYNC).await;
        }
    }

    fn expectations_met(&self, key: &str) -> bool {
        let mut e = self.expect.borrow_mut();
        match e.get(key) {
            Some((revs, since))
                if since.elapsed() < EXPECT
                    && revs.iter().any(|(i, r)| self.kinds[*i].1.revision() < *r) =>
            {
                false
            }
            Some(_) => {
                e.remove(key);
                true
            }
            None => true,
        }
    }

    fn kind_index(&self, plural: &str) -> Option<usize> {
        self.kinds.iter().position(|(r, _)| r.plural == plural)
    }

    async fn gc_loop(&self) {
        self.synced().await;
        loop {
            let key = self.q.next().await;
            if !self.expectations_met(&key) {
                self.q.add_after(&key, Duration::from_millis(50));
                continue;
            }
            if self.collect(&key).await {
                self.q.forget(&key);
            } else {
                self.q.retry(&key);
            }
        }
    }

    /// One key's pass; false when a write failed (retried after back-off).
    async fn collect(&self, key: &str) -> bool {
        let Some((plural, k)) = key.split_once('|') else {
            return true;
        };
        let Some(i) = self.kind_index(plural) else {
            return true;
        };
        let (res, cache) = &self.kinds[i];
        let Some(head) = cache.get(k) else {
            return true;
        };
        let actions = gc::reconcile(&Object { res, head }, self);
        if actions.is_empty() {
            return true;
        }
        if !self.api.is_leader() {
            return true;
        }
        let mut written = Vec::new();
        for a in &actions {
            if let Some(owner) = self.present(a).await {
                // The owner's informer lags; its change will queue this key.
                tracing::debug!(
                    "garbage collector: owner {} {:?} exists; its cache lags",
                    owner.plural,
                    owner.name
                );
                return false;
            }
            let (t, w) = self.act(a).await;
            if !fine(&w) {
                tracing::debug!(
                    "garbage collector: {} {:?} failed: {}",
                    t.plural,
                    t.name,
                    w.message
                );
                return false;
            }
            if let Some(j) = self.kind_index(t.plural) {
                written.push((j, w.revision));
            }
        }
        self.expect
            .borrow_mut()
            .insert(key.to_string(), (written, Instant::now()));
        true
    }

    /// An owner the action's decision took for absent that the API still
    /// serves with its uid (a read of each, as Kubernetes' `isDangling`).
    async fn present(&self, a: &Action) -> Option<Target> {
        let (Action::Delete { unless_present, .. } | Action::SetOwners { unless_present, .. }) = a
        else {
            return None;
        };
        for t in unless_present {
            let resp = self.api.request(target_request(Verb::Get, t)).await;
            let uid = match resp {
                Ok(r) if r.code == 404 => continue,
                Ok(r) if r.code == 200 => r.json().ok().and_then(|v| {
                    v.pointer("/metadata/uid")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                }),
                // Unknown: assume present, try again later.
                _ => return Some(t.clone()),
            };
            if uid.as_deref() == Some(t.uid.as_str()) {
                return Some(t.clone());
            }
        }
        None
    }

    async fn act(&self, a: &Action) -> (Target, Written) {
        match a {
            Action::Delete {
                target,
                propagation,
                why,
                ..
            } => {
                let req = with_body(
                    target_request(Verb::Delete, target),
                    &json!({"propagationPolicy": propagation.as_str(),
                        "preconditions": {"uid": target.uid}}),
                );
                let w = write(self.api, req).await;
                if w.ok() {
                    tracing::info!(
                        "garbage collector: deleting {} {:?} ({}): {why}",
                        target.plural,
                        target.name,
                        propagation.as_str()
                    );
                }
                (target.clone(), w)
            }
            Action::SetOwners {
                target,
                resource_version,
                owners,
                ..
            } => {
                let req = set_list(target, resource_version, "ownerReferences", owners);
                (target.clone(), write(self.api, req).await)
            }
            Action::SetFinalizers {
                target,
                resource_version,
                finalizers,
            } => {
                let req = set_list(target, resource_version, "finalizers", finalizers);
                (target.clone(), write(self.api, req).await)
            }
        }
    }

    async fn namespace_loop(&self) {
        self.synced().await;
        loop {
            let name = self.ns_q.next().await;
            if self.namespace(&name).await {
                self.ns_q.forget(&name);
            } else {
                self.ns_q.retry(&name);
            }
        }
    }

    fn content(&self, ns: &str) -> Vec<Object> {
        self.kinds
            .iter()
            .filter(|(r, _)| r.namespaced)
            .flat_map(|(res, c)| {
                c.in_namespace(ns)
                    .into_iter()
                    .map(|head| Object { res, head })
            })
            .collect()
    }

    /// One namespace's pass; false to try again after back-off.
    async fn namespace(&self, name: &str) -> bool {
        let Some(ns) = self.namespaces.get(name) else {
            self.failures.borrow_mut().remove(name);
            return true;
        };
        if ns.metadata.deletion_timestamp.is_none() {
            let accounts = self
                .kind_index("serviceaccounts")
                .map(|i| {
                    self.kinds[i]
                        .1
                        .in_namespace(name)
                        .into_iter()
                        .map(|head| Object {
                            res: self.kinds[i].0,
                            head,
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if !namespace::needs_default_account(&ns, &accounts) || !self.api.is_leader() {
                return true;
            }
            let req = with_body(
                ObjectRequest::new(Verb::Create, "serviceaccounts", Some(name), None),
                &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name}}),
            );
            // 403: the namespace began terminating meanwhile.
            let w = write(self.api, req).await;
            return w.ok() || matches!(w.code, 403 | 409);
        }
        // Its content stays a moment (`namespace::CONTENT_GRACE`).
        if let Some(wait) = namespace::content_wait(&ns, ferry_api::clock::now()) {
            self.ns_q.add_after(name, wait);
            return true;
        }
        let content = self.content(name);
        let before = self
            .failures
            .borrow()
            .get(name)
            .cloned()
            .unwrap_or_default();
        let now = ferry_api::clock::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let plan = namespace::reconcile(&ns, &content, &before, &now);
        if !self.api.is_leader() {
            return true;
        }
        let mut failures = Vec::new();
        for t in &plan.deletes {
            let req = with_body(
                target_request(Verb::Delete, t),
                &json!({"propagationPolicy": "Background", "preconditions": {"uid": t.uid}}),
            );
            let w = write(self.api, req).await;
            // 409: the uid precondition failed (another object of that name now).
            if !fine(&w) && w.code != 409 {
                failures.push(format!("{} {:?}: {}", t.plural, t.name, w.message));
            }
        }
        let changed = failures != before;
        self.failures
            .borrow_mut()
            .insert(name.to_string(), failures);
        if let Some(conditions) = plan.conditions {
            let mut n = (*ns).clone();
            let st = n.status.get_or_insert_with(Default::default);
            st.phase = Some("Terminating".into());
            st.conditions = Some(conditions);
            let w = write(self.api, status_update("namespaces", &n)).await;
            if !fine(&w) {
                tracing::debug!(namespace = name, "namespace conditions: {}", w.message);
                return false;
            }
            // Finalized on the next pass, from the namespace as written now.
            return true;
        }
        if plan.finalize.is_some() || plan.delete {
            // Empty only if every kind's cache has seen past the namespace's
            // last write (the mark came after any create in it): a lagging
            // informer must not let content outlive its namespace.
            let rev: u64 = ns
                .metadata
                .resource_version
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(u64::MAX);
            if self.kinds.iter().any(|(_, c)| c.revision() < rev) {
                self.ns_q.add_after(name, Duration::from_millis(200));
                return true;
            }
        }
        if let Some(fins) = plan.finalize {
            let mut n = (*ns).clone();
            n.status = None;
            n.spec.get_or_insert_with(Default::default).finalizers = Some(fins);
            let mut req = ObjectRequest::new(Verb::Update, "namespaces", None, Some(name));
            req.subresource = Some("finalize".into());
            let w = write(self.api, with_body(req, &n)).await;
            if !fine(&w) {
                tracing::debug!(namespace = name, "finalizing: {}", w.message);
                return false;
            }
        } else if plan.delete {
            let req = with_body(
                ObjectRequest::new(Verb::Delete, "namespaces", None, Some(name)),
                &json!({"preconditions": {"uid": ns.metadata.uid}}),
            );
            let w = write(self.api, req).await;
            if !fine(&w) {
                tracing::debug!(namespace = name, "deleting: {}", w.message);
                return false;
            }
            tracing::info!(namespace = name, "terminated namespace removed");
        }
        if changed {
            self.ns_q.add_after(name, Duration::from_millis(200));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_kind_is_watched_and_the_reviews_are_not() {
        let kinds: Vec<&str> = watched_kinds().iter().map(|r| r.plural).collect();
        for k in [
            "namespaces",
            "pods",
            "configmaps",
            "replicasets",
            "clusterroles",
            "leases",
        ] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
        for k in ["tokenreviews", "subjectaccessreviews", "selfsubjectreviews"] {
            assert!(!kinds.contains(&k), "{k} is create-only");
        }
    }

    #[test]
    fn the_graph_indexes_every_owner_not_only_the_controller() {
        let h: Head = serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u-p",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "u-a", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "u-b"}]}}))
        .unwrap();
        assert_eq!(owners_index(&h), ["u-a", "u-b"]);
        assert_eq!(uid_index(&h), ["u-p"]);
    }
}
