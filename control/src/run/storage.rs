//! The PersistentVolume controller's shell: claims (keyed by claim) bind to
//! volumes or get one provisioned; volumes (keyed by volume) follow their
//! claims' lifetimes. Decisions are `crate::volume`'s; the writes go through
//! the API with resourceVersion preconditions, so a pass on a stale cache
//! fails and comes back instead of binding twice.

use super::*;
use crate::volume::{self, ClaimAction, VolumeAction};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

impl Plane<'_> {
    /// Queues the claims a volume's change concerns.
    pub(super) fn volume_changed(&self, (old, new): &Change<PersistentVolume>) {
        queue_keys(&self.pv_q, &(old.clone(), new.clone()));
        for v in [old, new].into_iter().flatten() {
            if let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                let (ns, name) = (r.namespace.as_deref(), r.name.as_deref());
                self.claim_q
                    .add(&format!("{}/{}", ns.unwrap_or(""), name.unwrap_or("")));
            }
        }
        // A volume freed or added may serve a claim still waiting.
        if new
            .as_ref()
            .is_some_and(|v| v.spec.as_ref().is_some_and(|s| s.claim_ref.is_none()))
        {
            self.claims.keys().iter().for_each(|k| self.claim_q.add(k));
        }
    }

    /// Queues the claims a pod mounts (one being deleted waits for its pods).
    pub(super) fn pod_claims(&self, (old, new): &Change<Pod>) {
        for p in [old, new].into_iter().flatten() {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            let vols = p
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_deref())
                .unwrap_or_default();
            for c in vols
                .iter()
                .filter_map(|v| v.persistent_volume_claim.as_ref())
            {
                self.claim_q.add(&format!("{ns}/{}", c.claim_name));
            }
        }
    }

    /// Queues a claim's key and the key of the volume it names.
    pub(super) fn claim_changed(&self, c: &Change<PersistentVolumeClaim>) {
        queue_keys(&self.claim_q, c);
        for claim in [&c.0, &c.1].into_iter().flatten() {
            let v = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                self.pv_q.add(v);
            }
        }
        // A claim gone: its volume is released.
        if c.1.is_none() {
            self.volumes.keys().iter().for_each(|k| self.pv_q.add(k));
        }
    }

    pub(super) async fn claim_loop(&self) {
        let sync = async |k: &str| self.sync_claim(k).await;
        self.work(&self.claim_q, "pvc", || self.claims.revision(), sync)
            .await;
    }

    pub(super) async fn volume_loop(&self) {
        let sync = async |k: &str| self.sync_volume(k).await;
        self.work(&self.pv_q, "pv", || self.volumes.revision(), sync)
            .await;
    }

    async fn sync_claim(&self, key: &str) -> bool {
        let Some(c) = self.claims.get(key) else {
            return true;
        };
        let ns_pods = self
            .pods
            .in_namespace(c.metadata.namespace.as_deref().unwrap_or(""));
        let in_use = volume::claim_in_use(&ns_pods, c.metadata.name.as_deref().unwrap_or(""));
        let action = volume::reconcile_claim(
            &c,
            &self.volumes.list(),
            &self.classes.list(),
            &self.nodes.list(),
            in_use,
        );
        if action == ClaimAction::Keep || !self.api.is_leader() {
            return true;
        }
        let ns = c.metadata.namespace.as_deref();
        let name = c.metadata.name.as_deref().unwrap_or("");
        let rv = &c.metadata.resource_version;
        match action {
            ClaimAction::Keep => true,
            ClaimAction::Provision(pv) => {
                let w = api::write(
                    self.api,
                    with_body(
                        ObjectRequest::new(Verb::Create, "persistentvolumes", None, None),
                        &pv,
                    ),
                )
                .await;
                self.expect_revision(&format!("pvc:{key}"), w.revision);
                if w.ok() {
                    let msg = format!(
                        "Successfully provisioned volume {} using {}",
                        pv.metadata.name.as_deref().unwrap_or(""),
                        ferry_api::storage::LOCAL_PATH_PROVISIONER
                    );
                    self.event(
                        Source::Provisioner,
                        &c.metadata,
                        "PersistentVolumeClaim",
                        "Normal",
                        "ProvisioningSucceeded",
                        &msg,
                    );
                }
                w.ok() || w.code == 409
            }
            ClaimAction::Bind(pv_name) => {
                let Some(pv) = self.volumes.get(&pv_name) else {
                    return false;
                };
                // The volume first (claimRef), then the claim, as Kubernetes binds.
                if pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_none()
                {
                    let w = api::write(
                        self.api,
                        merge_patch(
                            "persistentvolumes",
                            None,
                            &pv_name,
                            None,
                            &json!({"metadata": {"resourceVersion": pv.metadata.resource_version},
                                "spec": {"claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                    "namespace": ns, "name": name, "uid": c.metadata.uid,
                                    "resourceVersion": rv}}}),
                        ),
                    )
                    .await;
                    if !w.ok() {
                        return w.code == 404;
                    }
                }
                let w = api::write(
                    self.api,
                    merge_patch(
                        "persistentvolumeclaims",
                        ns,
                        name,
                        None,
                        &json!({"metadata": {"resourceVersion": rv, "annotations": {
                                "pv.kubernetes.io/bind-completed": "yes",
                                "pv.kubernetes.io/bound-by-controller": "yes"}},
                            "spec": {"volumeName": pv_name}}),
                    ),
                )
                .await;
                self.expect_revision(&format!("pvc:{key}"), w.revision);
                w.ok() || w.code == 404
            }
            ClaimAction::MarkBound(pv_name) => {
                let Some(pv) = self.volumes.get(&pv_name) else {
                    return false;
                };
                let spec = pv.spec.clone().unwrap_or_default();
                let w = api::write(
                    self.api,
                    merge_patch(
                        "persistentvolumeclaims",
                        ns,
                        name,
                        Some("status"),
                        &json!({"metadata": {"resourceVersion": rv},
                            "status": {"phase": "Bound", "accessModes": spec.access_modes,
                                "capacity": spec.capacity}}),
                    ),
                )
                .await;
                self.expect_revision(&format!("pvc:{key}"), w.revision);
                w.ok() || w.code == 404
            }
            ClaimAction::Unprotect => {
                let w = self
                    .unprotect(
                        "persistentvolumeclaims",
                        &c.metadata,
                        ferry_api::storage::CLAIM_PROTECTION,
                    )
                    .await;
                w.ok() || w.code == 404
            }
            ClaimAction::Lost => {
                let w = api::write(
                    self.api,
                    merge_patch(
                        "persistentvolumeclaims",
                        ns,
                        name,
                        Some("status"),
                        &json!({"metadata": {"resourceVersion": rv}, "status": {"phase": "Lost"}}),
                    ),
                )
                .await;
                self.event(
                    Source::PersistentVolume,
                    &c.metadata,
                    "PersistentVolumeClaim",
                    "Warning",
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                );
                w.ok() || w.code == 404
            }
        }
    }

    async fn sync_volume(&self, key: &str) -> bool {
        let Some(pv) = self.volumes.get(key) else {
            return true;
        };
        let claim = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| {
                self.claims.get(&format!(
                    "{}/{}",
                    r.namespace.as_deref().unwrap_or(""),
                    r.name.as_deref().unwrap_or("")
                ))
            });
        // An absent claim counts only once the claim cache has seen at least
        // this volume's last write (the claim existed before its claimRef).
        let written: u64 = pv
            .metadata
            .resource_version
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(u64::MAX);
        let settled = self.claims.revision() >= written;
        let action = volume::reconcile_volume(&pv, claim.as_deref(), settled);
        if !settled && claim.is_none() {
            self.pv_q.add_after(key, Duration::from_millis(200));
        }
        if action == VolumeAction::Keep || !self.api.is_leader() {
            return true;
        }
        let name = pv.metadata.name.as_deref().unwrap_or("");
        let rv = &pv.metadata.resource_version;
        let w =
            match action {
                VolumeAction::Keep => return true,
                VolumeAction::Phase(phase) => api::write(
                    self.api,
                    merge_patch(
                        "persistentvolumes",
                        None,
                        name,
                        Some("status"),
                        &json!({"metadata": {"resourceVersion": rv}, "status": {"phase": phase}}),
                    ),
                )
                .await,
                VolumeAction::Unprotect => {
                    self.unprotect(
                        "persistentvolumes",
                        &pv.metadata,
                        ferry_api::storage::VOLUME_PROTECTION,
                    )
                    .await
                }
                VolumeAction::Delete => {
                    api::write(
                        self.api,
                        with_body(
                            ObjectRequest::new(Verb::Delete, "persistentvolumes", None, Some(name)),
                            &json!({"preconditions": {"uid": pv.metadata.uid}}),
                        ),
                    )
                    .await
                }
            };
        self.expect_revision(&format!("pv:{key}"), w.revision);
        w.ok() || w.code == 404
    }

    /// Removes `finalizer` from an object being deleted (its resourceVersion
    /// as precondition).
    async fn unprotect(&self, plural: &str, m: &ObjectMeta, finalizer: &str) -> api::Written {
        let rest: Vec<&String> = m
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        api::write(
            self.api,
            merge_patch(
                plural,
                m.namespace.as_deref(),
                m.name.as_deref().unwrap_or(""),
                None,
                &json!({"metadata": {"resourceVersion": m.resource_version, "finalizers": rest}}),
            ),
        )
        .await
    }

    /// Creates the claims the StatefulSet's new pods mount (409: already
    /// there). None: a claim is still being deleted, the pods must wait.
    pub(super) async fn create_claims(&self, sts: &StatefulSet, pods: &[Pod]) -> Option<bool> {
        let ns = sts.metadata.namespace.as_deref().unwrap_or("");
        let lookup = |n: &str| self.claims.get(&format!("{ns}/{n}"));
        let creates: Vec<_> = match statefulset::claims::missing_claims(sts, pods, &lookup) {
            Ok(claims) => claims
                .iter()
                .map(|c| {
                    let ns = c.metadata.namespace.as_deref();
                    let req = ObjectRequest::new(Verb::Create, "persistentvolumeclaims", ns, None);
                    with_body(req, c)
                })
                .collect(),
            Err(_) => return None,
        };
        if creates.is_empty() {
            return Some(true);
        }
        let results = self.write_all(creates).await;
        for w in results.iter().filter(|w| !w.ok() && w.code != 409) {
            let msg = format!("create Claim failed: {}", w.message);
            self.event(
                Source::StatefulSet,
                &sts.metadata,
                "StatefulSet",
                "Warning",
                "FailedCreate",
                &msg,
            );
        }
        Some(results.iter().all(|w| w.ok() || w.code == 409))
    }

    /// Gives the claims of the StatefulSet's pods the owner references its
    /// retention policy wants, before any pod of this pass is deleted.
    pub(super) async fn claim_owners(&self, sts: &StatefulSet, pods: &[Arc<Pod>]) -> bool {
        let ns = sts.metadata.namespace.as_deref();
        let lookup = |n: &str| self.claims.get(&format!("{}/{n}", ns.unwrap_or("")));
        let updates = statefulset::claims::owner_updates(sts, pods, &lookup);
        if updates.is_empty() {
            return true;
        }
        let writes = updates
            .iter()
            .map(|u| {
                let patch = json!({"metadata": {
                    "resourceVersion": u.resource_version,
                    "ownerReferences": u.owner_references,
                }});
                merge_patch("persistentvolumeclaims", ns, &u.name, None, &patch)
            })
            .collect();
        let results = self.write_all(writes).await;
        for w in results.iter().filter(|w| !w.ok() && w.code != 404) {
            let msg = format!("update Claim owner references failed: {}", w.message);
            self.event(
                Source::StatefulSet,
                &sts.metadata,
                "StatefulSet",
                "Warning",
                "FailedUpdate",
                &msg,
            );
        }
        results.iter().all(|w| w.ok() || w.code == 404)
    }
}
