//! The pod garbage collector's shell: every [`podgc::PERIOD`], the pods of
//! nodes missing from the node cache for [`podgc::QUARANTINE`] (a node gone
//! for good), terminating pods never bound, and terminated pods past the
//! threshold are deleted with no grace — an orphan not yet terminal first
//! marked `Failed` with `DisruptionTarget` (`DeletionByPodGC`).

use super::Plane;
use crate::api::with_body;
use crate::podgc::{self, Why};
use ferry_api::object::{ObjectRequest, PatchType, Verb};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use tokio::time::Instant;

impl Plane<'_> {
    pub(super) async fn pod_gc_loop(&self) {
        self.synced().await;
        // Node name → when this term first saw pods bound to it while the node
        // was missing from the cache.
        let mut missing: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(podgc::PERIOD).await;
            let pods = self.pods.list();
            let now = Instant::now();
            let referenced: HashSet<&str> = pods
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
                .filter(|n| !n.is_empty() && self.nodes.get(n).is_none())
                .collect();
            missing.retain(|n, _| referenced.contains(n.as_str()));
            for n in &referenced {
                missing.entry(n.to_string()).or_insert(now);
            }
            let gone: HashSet<String> = missing
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= podgc::QUARANTINE)
                .map(|(n, _)| n.clone())
                .collect();
            let collect = podgc::reconcile(
                &pods,
                &gone,
                podgc::TERMINATED_THRESHOLD,
                ferry_api::clock::now(),
            );
            if collect.is_empty() || !self.api.is_leader() {
                continue;
            }
            for c in collect {
                let (ns, name) = c.key.split_once('/').unwrap_or(("", &c.key));
                if let Some(status) = &c.status {
                    let mut r = ObjectRequest::new(
                        Verb::Patch(PatchType::Strategic),
                        "pods",
                        Some(ns),
                        Some(name),
                    );
                    r.subresource = Some("status".into());
                    let w = crate::api::write(self.api, with_body(r, status)).await;
                    if !w.ok() {
                        tracing::debug!(pod = %c.key, "pod gc: marking failed: {}", w.message);
                        continue;
                    }
                }
                let del = with_body(
                    ObjectRequest::new(Verb::Delete, "pods", Some(ns), Some(name)),
                    &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": c.uid}}),
                );
                let w = crate::api::write(self.api, del).await;
                match c.why {
                    _ if !w.ok() => {
                        tracing::debug!(pod = %c.key, "pod gc: delete failed: {}", w.message)
                    }
                    Why::Orphaned => {
                        tracing::info!(pod = %c.key, "forced deletion of an orphaned pod (its node is gone)")
                    }
                    Why::UnscheduledTerminating => {
                        tracing::info!(pod = %c.key, "forced deletion of an unscheduled terminating pod")
                    }
                    Why::Terminated => {
                        tracing::info!(pod = %c.key, "deleted a terminated pod past the threshold")
                    }
                }
            }
        }
    }
}
