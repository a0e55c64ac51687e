//! The ResourceQuota controller's shell: a quota's `status.hard` follows its
//! spec and `status.used` is recounted from the objects of its namespace
//! (pods from the cache, other kinds listed), releasing what deletions freed
//! since quota admission charged it; a scoped quota counts only the pods
//! its scopes select. Counting is `ferry_api::quota`'s.

use super::*;
use ferry_api::quantity::Quantity;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use std::collections::BTreeSet;

impl Plane<'_> {
    /// Queues the quotas of a pod's namespace when the pod stops counting
    /// (deleted, or Succeeded/Failed): what admission charged is released.
    /// A new pod is not a reason to recount: admission charged it already,
    /// and a recount before it is stored would undo the charge.
    pub(super) fn pod_quotas(&self, (old, new): &Change<Pod>) {
        let counts = |p: &Option<Arc<Pod>>| p.as_ref().is_some_and(|p| meta::pod_active(p));
        let gone = old.is_some() && new.is_none();
        if !gone && (!counts(old) || counts(new)) {
            return;
        }
        let ns = old.as_ref().and_then(|p| p.metadata.namespace.clone());
        if let Some(ns) = ns {
            for q in self.quotas.in_namespace(&ns) {
                self.quota_q.add(&meta::key(&q.metadata));
            }
        }
    }

    /// Queues a quota whose limits changed (not its status: admission's
    /// charges are status writes, and recounting on them would race them).
    pub(super) fn quota_changed(&self, (old, new): &Change<ResourceQuota>) {
        let hard = |q: &Option<Arc<ResourceQuota>>| {
            q.as_ref().map(|q| q.spec.as_ref().map(|s| s.hard.clone()))
        };
        let unset = new
            .as_ref()
            .is_some_and(|q| q.status.as_ref().and_then(|s| s.used.as_ref()).is_none());
        if hard(old) != hard(new) || unset {
            if let Some(q) = new {
                self.quota_q.add(&meta::key(&q.metadata));
            }
        }
    }

    pub(super) async fn quota_loop(&self) {
        let sync = async |k: &str| self.sync_quota(k).await;
        self.work(&self.quota_q, "quota", || self.quotas.revision(), sync)
            .await;
    }

    async fn sync_quota(&self, key: &str) -> bool {
        let Some(q) = self.quotas.get(key) else {
            return true;
        };
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let hard = q
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        let kinds: BTreeSet<(String, String)> = hard
            .keys()
            .filter_map(|k| ferry_api::quota::counted_kind(k))
            .collect();
        let quota = serde_json::to_value(&*q).unwrap_or_default();
        let mut used: BTreeMap<String, Quantity> =
            hard.keys().map(|k| (k.clone(), Quantity::ZERO)).collect();
        for (plural, group) in kinds {
            let objects: Vec<Value> = if plural == "pods" && group.is_empty() {
                self.pods
                    .in_namespace(&ns)
                    .iter()
                    .filter_map(|p| serde_json::to_value(&**p).ok())
                    .collect()
            } else {
                let r = ObjectRequest::new(Verb::List, &plural, Some(&ns), None);
                match self.api.request(r).await {
                    Ok(resp) if resp.code == 200 => resp
                        .json()
                        .ok()
                        .and_then(|mut v: Value| match v.get_mut("items").map(Value::take) {
                            Some(Value::Array(items)) => Some(items),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    // A kind ferry does not serve counts nothing.
                    Ok(resp) if resp.code == 404 => Vec::new(),
                    _ => return false,
                }
            };
            for o in objects
                .iter()
                .filter(|o| ferry_api::quota::matches(&quota, &plural, &group, o))
            {
                for (k, v) in ferry_api::quota::usage(&plural, &group, o) {
                    if let Some(total) = used.get_mut(&k) {
                        *total = Quantity(total.0 + v.0);
                    }
                }
            }
        }
        let used: BTreeMap<String, K8sQuantity> = used
            .into_iter()
            .map(|(k, v)| {
                let text = ferry_api::quota::format(&k, v);
                (k, K8sQuantity(text))
            })
            .collect();
        let status = q.status.clone().unwrap_or_default();
        if status.hard.as_ref() == Some(&hard) && status.used.as_ref() == Some(&used) {
            return true;
        }
        if !self.api.is_leader() {
            return true;
        }
        let mut with_status: ResourceQuota = (*q).clone();
        with_status.status = Some(k8s_openapi::api::core::v1::ResourceQuotaStatus {
            hard: Some(hard),
            used: Some(used),
        });
        let w = api::write(self.api, status_update("resourcequotas", &with_status)).await;
        self.expect_revision(&format!("quota:{key}"), w.revision);
        w.ok() || w.code == 404
    }
}
