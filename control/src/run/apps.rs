//! The ReplicaSet, ReplicationController and Deployment controllers' shells.

use super::adopt::Claimant;
use super::*;

impl Plane<'_> {
    pub(super) async fn replicasets(&self) {
        let sync = async |k: &str| self.sync_rs(k).await;
        self.work(&self.rs_q, "rs", || self.pods.revision(), sync)
            .await;
    }

    /// One ReplicaSet pass; false when a write failed (retried with back-off).
    async fn sync_rs(&self, key: &str) -> bool {
        let Some(rs) = self.rss.get(key) else {
            return true;
        };
        if rs.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let who = Claimant {
            meta: &rs.metadata,
            owner_ref: meta::controller_ref("apps/v1", "ReplicaSet", &rs.metadata),
            selector: rs.spec.as_ref().map(|s| &s.selector),
            tag: &format!("rs:{key}"),
        };
        let pods = match self
            .claimed(&self.pods, "pods", who, meta::pod_active)
            .await
        {
            Ok(pods) => pods,
            Err(ok) => return ok,
        };
        let now = ferry_api::clock::now();
        let d = replicaset::reconcile(&rs, &pods, now);
        if !self.api.is_leader() {
            return true;
        }
        let mut ok = self
            .write_pods(
                Source::ReplicaSet,
                &rs.metadata,
                "ReplicaSet",
                &format!("rs:{key}"),
                &d.create,
                &d.delete,
            )
            .await;
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

    pub(super) async fn replication_controllers(&self) {
        let sync = async |k: &str| self.sync_rc(k).await;
        self.work(&self.rc_q, "rc", || self.pods.revision(), sync)
            .await;
    }

    /// One ReplicationController pass, as a ReplicaSet's (see
    /// [`replicationcontroller`]).
    async fn sync_rc(&self, key: &str) -> bool {
        let Some(rc) = self.rcs.get(key) else {
            return true;
        };
        if rc.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let selector = replicationcontroller::selector(&rc);
        let tag = format!("rc:{key}");
        let who = Claimant {
            meta: &rc.metadata,
            owner_ref: meta::controller_ref("v1", "ReplicationController", &rc.metadata),
            selector: selector.as_ref(),
            tag: &tag,
        };
        let pods = match self
            .claimed(&self.pods, "pods", who, meta::pod_active)
            .await
        {
            Ok(pods) => pods,
            Err(ok) => return ok,
        };
        let d = replicationcontroller::reconcile(&rc, &pods, ferry_api::clock::now());
        if !self.api.is_leader() {
            return true;
        }
        let mut ok = self
            .write_pods(
                Source::ReplicationController,
                &rc.metadata,
                "ReplicationController",
                &tag,
                &d.create,
                &d.delete,
            )
            .await;
        if let Some(status) = d.status {
            let mut with_status = (*rc).clone();
            with_status.status = Some(status);
            let w = api::write(
                self.api,
                status_update("replicationcontrollers", &with_status),
            )
            .await;
            ok &= w.ok() || w.code == 404;
        }
        if let Some(after) = d.requeue_after {
            self.rc_q.add_after(key, after);
        }
        ok
    }

    pub(super) async fn deployments(&self) {
        let sync = async |k: &str| self.sync_deployment(k).await;
        self.work(&self.deploy_q, "deploy", || self.rss.revision(), sync)
            .await;
    }

    async fn sync_deployment(&self, key: &str) -> bool {
        let Some(d) = self.deploys.get(key) else {
            return true;
        };
        if d.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let who = Claimant {
            meta: &d.metadata,
            owner_ref: meta::controller_ref("apps/v1", "Deployment", &d.metadata),
            selector: d.spec.as_ref().map(|s| &s.selector),
            tag: &format!("deploy:{key}"),
        };
        let rss = match self.claimed(&self.rss, "replicasets", who, |_| true).await {
            Ok(rss) => rss,
            Err(ok) => return ok,
        };
        let pods: Vec<Arc<Pod>> = rss
            .iter()
            .flat_map(|rs| {
                self.pods
                    .by_index(BY_OWNER, rs.metadata.uid.as_deref().unwrap_or(""))
            })
            .collect();
        let now = ferry_api::clock::now();
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
                            Source::Deployment,
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
                                Source::Deployment,
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
}

impl Plane<'_> {
    pub(super) async fn daemonset_loop(&self) {
        let sync = async |k: &str| self.sync_daemonset(k).await;
        self.work(&self.ds_q, "ds", || self.pods.revision(), sync)
            .await;
    }

    /// One DaemonSet pass over every node.
    async fn sync_daemonset(&self, key: &str) -> bool {
        let Some(ds) = self.daemonsets.get(key) else {
            return true;
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let tag = format!("ds:{key}");
        let who = Claimant {
            meta: &ds.metadata,
            owner_ref: meta::controller_ref("apps/v1", "DaemonSet", &ds.metadata),
            selector: ds.spec.as_ref().map(|s| &s.selector),
            tag: &tag,
        };
        let pods = match self
            .claimed(&self.pods, "pods", who, meta::pod_active)
            .await
        {
            Ok(pods) => pods,
            Err(ok) => return ok,
        };
        if ds.metadata.deletion_timestamp.is_none() {
            let plan = daemonset::revisions(&ds, &pods, &self.revisions.by_index(BY_OWNER, &uid));
            match self.write_history(&tag, &ds.metadata, plan).await {
                History::Ready => {}
                History::Wait => {
                    self.ds_q.add_after(key, Duration::from_millis(50));
                    return true;
                }
                History::Failed => return false,
                History::Collision => {
                    let mut with_status = (*ds).clone();
                    let status = with_status.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    let w = api::write(self.api, status_update("daemonsets", &with_status)).await;
                    return w.ok() || w.code == 404;
                }
            }
        }
        let d = daemonset::reconcile(&ds, &self.nodes.list(), &pods, ferry_api::clock::now());
        if !self.api.is_leader() {
            return true;
        }
        let mut ok = self
            .write_pods(
                Source::DaemonSet,
                &ds.metadata,
                "DaemonSet",
                &tag,
                &d.create,
                &d.delete,
            )
            .await;
        if let Some(status) = d.status {
            let mut with_status = (*ds).clone();
            with_status.status = Some(status);
            let w = api::write(self.api, status_update("daemonsets", &with_status)).await;
            ok &= w.ok() || w.code == 404;
        }
        if let Some(after) = d.requeue_after {
            self.ds_q.add_after(key, after);
        }
        ok
    }

    pub(super) async fn statefulset_loop(&self) {
        let sync = async |k: &str| self.sync_statefulset(k).await;
        self.work(&self.sts_q, "sts", || self.pods.revision(), sync)
            .await;
    }

    /// One StatefulSet pass.
    async fn sync_statefulset(&self, key: &str) -> bool {
        let Some(sts) = self.statefulsets.get(key) else {
            return true;
        };
        let uid = sts.metadata.uid.clone().unwrap_or_default();
        let tag = format!("sts:{key}");
        let who = Claimant {
            meta: &sts.metadata,
            owner_ref: meta::controller_ref("apps/v1", "StatefulSet", &sts.metadata),
            selector: sts.spec.as_ref().map(|s| &s.selector),
            tag: &tag,
        };
        let member = |p: &Pod| statefulset::member(&sts, p);
        let pods = match self.claimed(&self.pods, "pods", who, member).await {
            Ok(pods) => pods,
            Err(ok) => return ok,
        };
        let revisions = self.revisions.by_index(BY_OWNER, &uid);
        let mut stored = statefulset::Stored::default();
        if sts.metadata.deletion_timestamp.is_none() {
            let plan = statefulset::revisions(&sts, &pods, &revisions);
            stored.update = Some(plan.name.clone());
            match self.write_history(&tag, &sts.metadata, plan).await {
                History::Ready => {}
                History::Wait => {
                    self.sts_q.add_after(key, Duration::from_millis(50));
                    return true;
                }
                History::Failed => return false,
                History::Collision => {
                    let mut with_status = (*sts).clone();
                    let status = with_status.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    let w = api::write(self.api, status_update("statefulsets", &with_status)).await;
                    return w.ok() || w.code == 404;
                }
            }
        }
        stored.current = statefulset::current_template(&sts, &revisions);
        let d = statefulset::reconcile_with(&sts, &pods, &stored, ferry_api::clock::now());
        if !self.api.is_leader() {
            return true;
        }
        // Claims follow the retention policy before a condemned pod goes.
        if sts.metadata.deletion_timestamp.is_none() && !self.claim_owners(&sts, &pods).await {
            return false;
        }
        // A pod starts only with its claims there to mount; a claim still
        // being deleted (scaled away with `whenScaled: Delete`) is waited for.
        let claims = self.create_claims(&sts, &d.create).await;
        if claims.is_none() {
            self.sts_q.add_after(key, Duration::from_millis(500));
        }
        let create = if claims == Some(true) {
            &d.create[..]
        } else {
            &[]
        };
        let written = self
            .write_pods(
                Source::StatefulSet,
                &sts.metadata,
                "StatefulSet",
                &tag,
                create,
                &d.delete,
            )
            .await;
        let mut ok = claims != Some(false) && written;
        if let Some(status) = d.status {
            let mut with_status = (*sts).clone();
            with_status.status = Some(status);
            let w = api::write(self.api, status_update("statefulsets", &with_status)).await;
            ok &= w.ok() || w.code == 404;
        }
        if let Some(after) = d.requeue_after {
            self.sts_q.add_after(key, after);
        }
        ok
    }
}

impl Plane<'_> {
    pub(super) async fn disruption_loop(&self) {
        let sync = async |k: &str| self.sync_disruption(k).await;
        self.work(&self.pdb_q, "pdb", || self.pods.revision(), sync)
            .await;
    }

    /// The replicas the controllers of `pods` want (ReplicaSets,
    /// ReplicationControllers and StatefulSets), or None when a pod has no such controller.
    fn scale_of(&self, pods: &[Arc<Pod>]) -> Option<i32> {
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0;
        for p in pods {
            let owner = meta::controller_of(&p.metadata)?;
            if !seen.insert(owner.uid.clone()) {
                continue;
            }
            let key = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                owner.name
            );
            total += match owner.kind.as_str() {
                "ReplicaSet" => self.rss.get(&key)?.spec.as_ref()?.replicas.unwrap_or(1),
                "ReplicationController" => self.rcs.get(&key)?.spec.as_ref()?.replicas.unwrap_or(1),
                "StatefulSet" => statefulset::replicas(&*self.statefulsets.get(&key)?),
                _ => return None,
            };
        }
        Some(total)
    }

    /// One PodDisruptionBudget pass: its status.
    async fn sync_disruption(&self, key: &str) -> bool {
        let Some(pdb) = self.pdbs.get(key) else {
            return true;
        };
        let ns = key.split_once('/').map_or("", |(ns, _)| ns);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .in_namespace(ns)
            .into_iter()
            .filter(|p| disruption::covers(&pdb, p))
            .collect();
        let scale = self.scale_of(&pods);
        let Some(status) = disruption::reconcile(&pdb, &pods, scale, ferry_api::clock::now())
        else {
            return true;
        };
        if !self.api.is_leader() {
            return true;
        }
        let mut with_status = (*pdb).clone();
        with_status.status = Some(status);
        let w = api::write(
            self.api,
            status_update("poddisruptionbudgets", &with_status),
        )
        .await;
        w.ok() || w.code == 404
    }
}

/// Where a set's history stands after [`Plane::write_history`].
enum History {
    /// Up to date: the pods may be managed.
    Ready,
    /// Written, or the cache is behind earlier writes: look again once the
    /// revisions cache has caught up.
    Wait,
    /// A write failed: retry with back-off.
    Failed,
    /// The revision's name is taken by other data: bump `collisionCount`.
    Collision,
}

impl Plane<'_> {
    /// Carries out a set's ControllerRevision plan (Kubernetes writes the
    /// history before it touches pods).
    async fn write_history(
        &self,
        tag: &str,
        owner: &ObjectMeta,
        plan: crate::history::Plan,
    ) -> History {
        let expect = format!("cr:{tag}");
        if !self.expectations_met(&expect, self.revisions.revision()) {
            return History::Wait;
        }
        if plan.collision {
            return History::Collision;
        }
        if !self.api.is_leader() {
            return History::Ready;
        }
        let ns = owner.namespace.as_deref();
        let mut writes = Vec::new();
        if let Some(c) = &plan.create {
            writes.push(with_body(
                ObjectRequest::new(Verb::Create, "controllerrevisions", ns, None),
                c,
            ));
        }
        if let Some((name, rv, number)) = &plan.renumber {
            writes.push(merge_patch(
                "controllerrevisions",
                ns,
                name,
                None,
                &json!({"metadata": {"resourceVersion": rv}, "revision": number}),
            ));
        }
        for (name, uid) in &plan.delete {
            writes.push(with_body(
                ObjectRequest::new(Verb::Delete, "controllerrevisions", ns, Some(name)),
                &json!({"preconditions": {"uid": uid}}),
            ));
        }
        if writes.is_empty() {
            return History::Ready;
        }
        let results = self.write_all(writes).await;
        let rev = results.iter().map(|w| w.revision).max().unwrap_or(0);
        self.expect_revision(&expect, rev);
        // The cache is caught up with this set's writes, so a create that
        // finds its name taken met a revision this set does not own.
        if plan.create.is_some() && results[0].code == 409 {
            return History::Collision;
        }
        let failed = results.iter().any(|w| !w.ok() && w.code != 404);
        if failed {
            History::Failed
        } else if plan.create.is_some() || plan.renumber.is_some() {
            History::Wait
        } else {
            History::Ready
        }
    }
}
