//! The `DisruptionTarget` pod condition and the pod garbage collector, pure.
//!
//! Kubernetes (1.31+, `PodDisruptionConditions` GA) marks a pod with
//! `DisruptionTarget=True` before it deletes it for a disruption, so the pod's
//! owner (a Job's `podFailurePolicy`, a user) can tell why it went: the
//! scheduler's preemption, the Eviction API, the taint eviction controller and
//! the pod garbage collector each write their own reason and message
//! ([`Disruption`]). [`disruption_target`] is `UpdatePodCondition`'s rule: the
//! condition to write, or none when the pod already carries it.
//!
//! The pod garbage collector ([`reconcile`], as kube-controller-manager's
//! `podgc`): a pod bound to a node that has been gone for the quarantine
//! ([`QUARANTINE`]) is marked `Failed` with `DisruptionTarget` (reason
//! `DeletionByPodGC`) unless already terminal, then deleted with no grace (no
//! kubelet is left to finish it); a terminating pod that was never bound is
//! deleted with no grace; and past `threshold` terminated pods, the oldest
//! are deleted.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The condition type.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// How long a node must have been missing before its pods are collected
/// (kube-controller-manager's `quarantineTime`).
pub const QUARANTINE: Duration = Duration::from_secs(40);

/// How often the collector runs (kube-controller-manager's `gcCheckPeriod`).
pub const PERIOD: Duration = Duration::from_secs(20);

/// Kubernetes' default `--terminated-pod-gc-threshold`.
pub const TERMINATED_THRESHOLD: usize = 12500;

/// Who disrupts a pod, with the reason and message Kubernetes writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruption {
    /// kube-scheduler's preemption; the preemptor's `schedulerName`.
    Preemption(String),
    /// The `pods/eviction` subresource.
    EvictionApi,
    /// The taint eviction controller (a NoExecute taint not tolerated).
    TaintManager,
    /// The pod garbage collector (the pod's node is gone).
    PodGc,
}

impl Disruption {
    /// The condition's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Disruption::Preemption(_) => "PreemptionByScheduler",
            Disruption::EvictionApi => "EvictionByEvictionAPI",
            Disruption::TaintManager => "DeletionByTaintManager",
            Disruption::PodGc => "DeletionByPodGC",
        }
    }

    /// The condition's `message`.
    pub fn message(&self) -> String {
        match self {
            Disruption::Preemption(scheduler) => {
                format!("{scheduler}: preempting to accommodate a higher priority pod")
            }
            Disruption::EvictionApi => "Eviction API: evicting".into(),
            Disruption::TaintManager => "Taint manager: deleting due to NoExecute taint".into(),
            Disruption::PodGc => "PodGC: node no longer exists".into(),
        }
    }
}

/// The `DisruptionTarget` condition to write on a pod whose status has
/// `conditions` (`status.conditions`, any JSON), at `now` (RFC 3339): `None`
/// when the pod already carries it with this status, reason and message. An
/// existing condition of the same status keeps its `lastTransitionTime`, as
/// Kubernetes' `UpdatePodCondition` does.
pub fn disruption_target(conditions: Option<&Value>, d: &Disruption, now: &str) -> Option<Value> {
    let existing = conditions
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == DISRUPTION_TARGET));
    let (reason, message) = (d.reason(), d.message());
    let since = match existing {
        Some(c) if c["status"] == "True" => {
            if c["reason"] == reason && c["message"] == message.as_str() {
                return None;
            }
            c["lastTransitionTime"].as_str().unwrap_or(now).to_string()
        }
        _ => now.to_string(),
    };
    Some(json!({
        "type": DISRUPTION_TARGET,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": since,
    }))
}

/// The strategic merge patch of a pod's `status` that sets `condition`
/// (conditions merge by `type`, so the kubelet's are kept), with the
/// resourceVersion read as precondition when one is given.
pub fn condition_patch(condition: &Value, phase: Option<&str>, rv: Option<&str>) -> Value {
    let mut p = json!({"status": {"conditions": [condition]}});
    if let Some(phase) = phase {
        p["status"]["phase"] = json!(phase);
    }
    if let Some(rv) = rv {
        p["metadata"] = json!({"resourceVersion": rv});
    }
    p
}

/// Why the collector deletes a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Bound to a node that is gone.
    Orphaned,
    /// Terminating and never bound.
    UnscheduledTerminating,
    /// One terminated pod too many.
    Terminated,
}

/// One pod to collect.
#[derive(Debug, Clone, PartialEq)]
pub struct Collect {
    /// `namespace/name`.
    pub key: String,
    /// The delete's precondition.
    pub uid: String,
    /// Why.
    pub why: Why,
    /// A strategic merge patch of `status` to write first (phase `Failed`
    /// and the `DisruptionTarget` condition), for an orphan not yet terminal.
    pub status: Option<Value>,
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn collect(p: &Pod, why: Why, status: Option<Value>) -> Collect {
    Collect {
        key: crate::meta::key(&p.metadata),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        why,
        status,
    }
}

/// The pods to collect at `now`: `gone` holds the nodes missing for at least
/// [`QUARANTINE`] (the shell keeps the clock); `threshold` is the number of
/// terminated pods kept (0: none collected for being terminated).
pub fn reconcile(
    pods: &[Arc<Pod>],
    gone: &HashSet<String>,
    threshold: usize,
    now: Timestamp,
) -> Vec<Collect> {
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    if threshold > 0 {
        let mut terminated: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| matches!(phase(p), "Succeeded" | "Failed"))
            .collect();
        if terminated.len() > threshold {
            // Oldest first (by creation, then name), as Kubernetes sorts them.
            terminated.sort_by_key(|p| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    crate::meta::key(&p.metadata),
                )
            });
            let n = terminated.len() - threshold;
            for p in &terminated[..n] {
                taken.insert(crate::meta::key(&p.metadata));
                out.push(collect(p, Why::Terminated, None));
            }
        }
    }
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for p in pods {
        let key = crate::meta::key(&p.metadata);
        if taken.contains(&key) {
            continue;
        }
        let node = node_of(p);
        if !node.is_empty() && gone.contains(node) {
            let status = (!matches!(phase(p), "Succeeded" | "Failed")).then(|| {
                let conds = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| serde_json::to_value(c).ok());
                match disruption_target(conds.as_ref(), &Disruption::PodGc, &stamp) {
                    Some(c) => condition_patch(&c, Some("Failed"), None),
                    None => json!({"status": {"phase": "Failed"}}),
                }
            });
            out.push(collect(p, Why::Orphaned, status));
        } else if node.is_empty() && p.metadata.deletion_timestamp.is_some() {
            out.push(collect(p, Why::UnscheduledTerminating, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, extra: Value) -> Arc<Pod> {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                "creationTimestamp": "2026-12-05T10:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": node},
            "status": {"phase": phase},
        });
        if let Some(o) = extra.as_object() {
            for (k, x) in o {
                for (k2, x2) in x.as_object().unwrap() {
                    v[k][k2] = x2.clone();
                }
            }
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    const NOW: &str = "2026-12-05T12:00:00Z";

    #[test]
    fn each_disruption_has_kubernetes_reason_and_message() {
        let cases = [
            (
                Disruption::Preemption("default-scheduler".into()),
                "PreemptionByScheduler",
                "default-scheduler: preempting to accommodate a higher priority pod",
            ),
            (
                Disruption::EvictionApi,
                "EvictionByEvictionAPI",
                "Eviction API: evicting",
            ),
            (
                Disruption::TaintManager,
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
            ),
            (
                Disruption::PodGc,
                "DeletionByPodGC",
                "PodGC: node no longer exists",
            ),
        ];
        for (d, reason, message) in cases {
            let c = disruption_target(None, &d, NOW).unwrap();
            assert_eq!(
                c,
                json!({"type": "DisruptionTarget", "status": "True", "reason": reason,
                    "message": message, "lastProbeTime": null, "lastTransitionTime": NOW}),
                "{d:?}"
            );
        }
    }

    #[test]
    fn the_condition_is_written_once_and_keeps_its_transition_time() {
        let earlier = "2026-12-05T11:00:00Z";
        let cases: [(&str, Value, Option<&str>); 5] = [
            ("no conditions", json!(null), Some(NOW)),
            (
                "other conditions only",
                json!([{"type": "Ready", "status": "True"}]),
                Some(NOW),
            ),
            (
                "already there, same reason and message: nothing to write",
                json!([{"type": "DisruptionTarget", "status": "True",
                    "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                    "lastTransitionTime": earlier}]),
                None,
            ),
            (
                "True with another reason: rewritten, transition time kept",
                json!([{"type": "DisruptionTarget", "status": "True",
                    "reason": "DeletionByTaintManager", "message": "x",
                    "lastTransitionTime": earlier}]),
                Some(earlier),
            ),
            (
                "False before: a transition now",
                json!([{"type": "DisruptionTarget", "status": "False",
                    "lastTransitionTime": earlier}]),
                Some(NOW),
            ),
        ];
        for (name, conds, want) in cases {
            let got = disruption_target(Some(&conds), &Disruption::EvictionApi, NOW);
            assert_eq!(
                got.as_ref()
                    .map(|c| c["lastTransitionTime"].as_str().unwrap()),
                want,
                "{name}"
            );
            if let Some(c) = got {
                assert_eq!(c["reason"], "EvictionByEvictionAPI", "{name}");
            }
        }
    }

    #[test]
    fn the_collector_takes_orphans_unbound_terminating_pods_and_old_terminated_ones() {
        let now: Timestamp = NOW.parse().unwrap();
        let gone: HashSet<String> = ["dead".to_string()].into();
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-12-05T11:59:00Z"}});
        let pods = vec![
            pod("live", "n1", "Running", json!({})),
            pod("orphan", "dead", "Running", json!({})),
            pod("orphan-done", "dead", "Succeeded", json!({})),
            pod(
                "orphan-marked",
                "dead",
                "Pending",
                json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                    "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"}]}}),
            ),
            pod("unbound-deleting", "", "Pending", deleting.clone()),
            pod("unbound", "", "Pending", json!({})),
            pod("bound-deleting", "n1", "Running", deleting),
            // A node still within its quarantine (not in `gone`) keeps its pods.
            pod("missing-recently", "n9", "Running", json!({})),
        ];
        let got = reconcile(&pods, &gone, 0, now);
        let summary: Vec<(&str, Why, Option<Value>)> = got
            .iter()
            .map(|c| (c.key.as_str(), c.why, c.status.clone()))
            .collect();
        let cond = json!({"type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists",
            "lastProbeTime": null, "lastTransitionTime": NOW});
        assert_eq!(
            summary,
            vec![
                (
                    "ns/orphan",
                    Why::Orphaned,
                    Some(json!({"status": {"phase": "Failed", "conditions": [cond]}}))
                ),
                ("ns/orphan-done", Why::Orphaned, None),
                (
                    "ns/orphan-marked",
                    Why::Orphaned,
                    Some(json!({"status": {"phase": "Failed"}}))
                ),
                ("ns/unbound-deleting", Why::UnscheduledTerminating, None),
            ]
        );
        assert_eq!(got[0].uid, "u-orphan");
    }

    #[test]
    fn past_the_threshold_the_oldest_terminated_pods_go() {
        let now: Timestamp = NOW.parse().unwrap();
        let at = |t: &str| json!({"metadata": {"creationTimestamp": t}});
        let pods = vec![
            pod("new-done", "n1", "Succeeded", at("2026-12-05T11:00:00Z")),
            pod("old-failed", "n1", "Failed", at("2026-12-05T09:00:00Z")),
            pod("running", "n1", "Running", at("2026-12-05T08:00:00Z")),
            pod("mid-done", "n1", "Succeeded", at("2026-12-05T10:00:00Z")),
        ];
        let keys = |t| {
            reconcile(&pods, &HashSet::new(), t, now)
                .into_iter()
                .map(|c| (c.key, c.why))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(1),
            vec![
                ("ns/old-failed".to_string(), Why::Terminated),
                ("ns/mid-done".to_string(), Why::Terminated)
            ]
        );
        assert_eq!(keys(3), vec![]);
        assert_eq!(keys(0), vec![], "0 turns the threshold off");
    }
}
