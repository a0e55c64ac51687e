//! The scheduler's shell: passes over pending pods, bindings, unschedulable pods.

use super::*;
use crate::podgc;
use ferry_api::object::PatchType;

impl Plane<'_> {
    pub(super) async fn scheduler(&self) {
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
        // The scheduling queue's order: higher priority first, then older.
        pending.sort_by_key(|p| {
            (
                std::cmp::Reverse(scheduler::preempt::priority(p)),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        });
        if pending.len() > SCHEDULE_BATCH {
            pending.truncate(SCHEDULE_BATCH);
            self.sched.notify_one();
        }
        let nodes = self.nodes.list();
        let mut on_nodes: Vec<Arc<Pod>> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| bound(p) && !meta::pod_terminal(p))
            .collect();
        for (key, (node, _)) in &assumed {
            if let Some(p) = self.pods.get(key).filter(|p| !bound(p)) {
                let mut p = (*p).clone();
                p.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
                on_nodes.push(Arc::new(p));
            }
        }
        // The master's thread is shared with Raft: a pass over a large cluster
        // yields every few milliseconds, so heartbeats are never held up by it.
        let mut snapshot = scheduler::Snapshot::new(&nodes, &on_nodes);
        snapshot.budgets = self.pdbs.list();
        snapshot.next_start = self.sched_start.get();
        let mut placements = Vec::with_capacity(pending.len());
        // Claims to mark with the node their first consumer goes to.
        let mut select: Vec<(String, String, String)> = Vec::new();
        let classes = self.classes.list();
        let mut slice = Instant::now();
        for pod in &pending {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let claims = crate::volume::pod_claims(
                pod,
                &|n| self.claims.get(&format!("{ns}/{n}")),
                &|n| self.volumes.get(n),
                &classes,
            );
            let placement = match claims {
                Err(why) => scheduler::Placement::Unschedulable {
                    namespace: ns.clone(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    uid: pod.metadata.uid.clone().unwrap_or_default(),
                    message: format!("0/{} nodes are available: {why}.", nodes.len()),
                    nominated: None,
                },
                Ok(c) if c == crate::volume::PodClaims::default() => snapshot.place(pod),
                Ok(c) => {
                    let placement = snapshot.place(&Arc::new(crate::volume::constrained(pod, &c)));
                    if let scheduler::Placement::Bind { node, .. } = &placement {
                        for (claim, selected) in &c.waiting {
                            if selected.as_deref() != Some(node.as_str()) {
                                select.push((ns.clone(), claim.clone(), node.clone()));
                            }
                        }
                    }
                    placement
                }
            };
            placements.push(placement);
            if slice.elapsed() >= SCHEDULE_SLICE {
                tokio::task::yield_now().await;
                slice = Instant::now();
            }
        }
        self.sched_start.set(snapshot.next_start);
        if !self.api.is_leader() {
            return;
        }
        // The claims first: their volumes are made on the chosen node.
        let marks = select
            .iter()
            .map(|(ns, claim, node)| {
                merge_patch(
                    "persistentvolumeclaims",
                    Some(ns),
                    claim,
                    None,
                    &json!({"metadata": {"annotations": {ferry_api::storage::SELECTED_NODE: node}}}),
                )
            })
            .collect();
        for w in self.write_all(marks).await.iter().filter(|w| !w.ok()) {
            tracing::debug!("selecting a claim's node failed: {} {}", w.code, w.message);
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
                    nominated,
                    ..
                } => {
                    self.unschedulable_pod(namespace, name, message, nominated.as_deref())
                        .await;
                }
                scheduler::Placement::Preempt {
                    namespace,
                    name,
                    uid,
                    node,
                    victims,
                    message,
                } => {
                    self.unschedulable_pod(namespace, name, message, Some(node))
                        .await;
                    let scheduler = self
                        .pods
                        .get(&format!("{namespace}/{name}"))
                        .and_then(|p| p.spec.as_ref()?.scheduler_name.clone())
                        .unwrap_or_else(|| "default-scheduler".into());
                    self.evict_victims(uid, node, &scheduler, victims).await;
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
                        Source::Scheduler,
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

    /// Deletes the pods a preemption evicts (uid preconditions), each first
    /// marked `DisruptionTarget` (`PreemptionByScheduler`) and deleted with a
    /// `Preempted` event, as kube-scheduler does.
    async fn evict_victims(
        &self,
        preemptor: &str,
        node: &str,
        scheduler: &str,
        victims: &[Arc<Pod>],
    ) {
        let why = podgc::Disruption::Preemption(scheduler.to_string());
        let now = ferry_api::clock::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let marks: Vec<ObjectRequest> = victims
            .iter()
            .filter_map(|v| {
                let conds = v
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| serde_json::to_value(c).ok());
                let c = podgc::disruption_target(conds.as_ref(), &why, &now)?;
                let m = &v.metadata;
                let mut r = ObjectRequest::new(
                    Verb::Patch(PatchType::Strategic),
                    "pods",
                    m.namespace.as_deref(),
                    m.name.as_deref(),
                );
                r.subresource = Some("status".into());
                Some(with_body(r, &podgc::condition_patch(&c, None, None)))
            })
            .collect();
        for w in self.write_all(marks).await {
            if !w.ok() {
                tracing::debug!("preemption: a victim was not marked: {}", w.message);
            }
        }
        let deletes = victims
            .iter()
            .map(|v| {
                let m = &v.metadata;
                with_body(
                    ObjectRequest::new(
                        Verb::Delete,
                        "pods",
                        m.namespace.as_deref(),
                        m.name.as_deref(),
                    ),
                    &json!({"preconditions": {"uid": m.uid}}),
                )
            })
            .collect();
        for (v, w) in victims.iter().zip(self.write_all(deletes).await) {
            if w.ok() {
                let msg = format!("Preempted by pod {preemptor} on node {node}");
                self.event(
                    Source::Scheduler,
                    &v.metadata,
                    "Pod",
                    "Normal",
                    "Preempted",
                    &msg,
                );
            } else {
                tracing::debug!("preemption: a victim was not deleted: {}", w.message);
            }
        }
    }

    /// Marks a pod `PodScheduled=False` with `message` (and, after a
    /// preemption, `status.nominatedNodeName`), once per message.
    async fn unschedulable_pod(
        &self,
        ns: &str,
        name: &str,
        message: &str,
        nominated: Option<&str>,
    ) {
        let key = format!("{ns}/{name}");
        let noted = format!("{message}\n{}", nominated.unwrap_or_default());
        if self.unschedulable.borrow().get(&key) == Some(&noted) {
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
            "message": message, "lastTransitionTime": meta::time(ferry_api::clock::now())}),
        );
        let w = api::write(
            self.api,
            merge_patch(
                "pods",
                Some(ns),
                name,
                Some("status"),
                &json!({"metadata": {"resourceVersion": p.metadata.resource_version},
                    "status": {"conditions": conds, "nominatedNodeName": nominated}}),
            ),
        )
        .await;
        if w.ok() {
            self.unschedulable.borrow_mut().insert(key, noted);
            self.event(
                Source::Scheduler,
                &p.metadata,
                "Pod",
                "Warning",
                "FailedScheduling",
                message,
            );
        }
    }
}
