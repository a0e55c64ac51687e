//! The disruption controller's pure core: a PodDisruptionBudget's status —
//! how many of its pods are healthy, how many must be, and so how many
//! voluntary disruptions (evictions) are allowed now — as Kubernetes'
//! `pkg/controller/disruption` computes it.

use crate::meta;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::sync::Arc;

/// The pods a budget covers: those in its namespace its selector picks (an
/// empty selector picks none, as in policy/v1).
pub fn covers(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let same_ns = pdb.metadata.namespace == pod.metadata.namespace;
    match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(sel) if sel != &Default::default() => {
            same_ns && meta::selector_matches(sel, pod.metadata.labels.as_ref())
        }
        _ => false,
    }
}

/// `value` of `total` (an int, or a percentage rounded up).
fn scaled(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            ((pct * i64::from(total) + 99) / 100) as i32
        }
    }
}

/// The status `pdb` should have, given the pods it covers and `scale`: the
/// replicas their controllers want (None: count the pods themselves);
/// `None` when the stored status is already that.
pub fn reconcile(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale: Option<i32>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let live: Vec<&Arc<Pod>> = pods.iter().filter(|p| meta::pod_active(p)).collect();
    let healthy = live.iter().filter(|p| meta::pod_ready(p)).count() as i32;
    let spec = pdb.spec.clone().unwrap_or_default();
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (live.len() as i32, *n),
        (Some(pct), _) => {
            let expected = scale.unwrap_or(live.len() as i32);
            (expected, scaled(pct, expected))
        }
        (None, Some(max)) => {
            let expected = scale.unwrap_or(live.len() as i32);
            (expected, (expected - scaled(max, expected)).max(0))
        }
        // Neither set: Kubernetes' default is minAvailable 1.
        (None, None) => (live.len() as i32, 1),
    };
    let allowed = (healthy - desired).max(0);
    let old = pdb.status.clone().unwrap_or_default();
    let (st, reason, message) = if allowed > 0 {
        ("True", "SufficientPods", "")
    } else {
        ("False", "InsufficientPods", "")
    };
    let kept = old
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed"))
        .filter(|c| c.status == st && c.reason == reason)
        .cloned();
    let condition = kept.unwrap_or_else(|| Condition {
        type_: "DisruptionAllowed".into(),
        status: st.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: meta::time(now),
        observed_generation: pdb.metadata.generation,
    });
    let new = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: old.disrupted_pods.clone(),
        conditions: Some(vec![condition]),
    };
    (new != old).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        let mut s = spec;
        s["selector"] = json!({"matchLabels": {"app": "web"}});
        serde_json::from_value(
            json!({"metadata": {"name": "b", "namespace": "d", "generation": 1},
            "spec": s}),
        )
        .unwrap()
    }

    fn pod(name: &str, ready: bool, app: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "labels": {"app": app}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        })).unwrap())
    }

    #[test]
    fn allowed_disruptions_follow_kubernetes_arithmetic() {
        let three = [
            pod("a", true, "web"),
            pod("b", true, "web"),
            pod("c", false, "web"),
        ];
        let now = Timestamp::now();
        let cases = [
            // (spec, scale, expected, desired, allowed)
            (json!({"minAvailable": 1}), None, 3, 1, 1),
            (json!({"minAvailable": 2}), None, 3, 2, 0),
            (json!({"minAvailable": "50%"}), Some(4), 4, 2, 0),
            (json!({"minAvailable": "25%"}), Some(4), 4, 1, 1),
            (json!({"maxUnavailable": 1}), Some(3), 3, 2, 0),
            (json!({"maxUnavailable": 2}), Some(3), 3, 1, 1),
            (json!({"maxUnavailable": "34%"}), Some(3), 3, 1, 1),
            (json!({"maxUnavailable": 0}), Some(3), 3, 3, 0),
        ];
        for (spec, scale, expected, desired, allowed) in cases {
            let s = reconcile(&pdb(spec.clone()), &three, scale, now).expect("a status");
            assert_eq!(
                (
                    s.expected_pods,
                    s.desired_healthy,
                    s.disruptions_allowed,
                    s.current_healthy
                ),
                (expected, desired, allowed, 2),
                "{spec}"
            );
            let c = &s.conditions.as_ref().unwrap()[0];
            assert_eq!(
                c.status,
                if allowed > 0 { "True" } else { "False" },
                "{spec}"
            );
        }
    }

    #[test]
    fn an_unchanged_status_is_not_written_again_and_selectors_pick_pods() {
        let b = pdb(json!({"minAvailable": 1}));
        let pods = [pod("a", true, "web"), pod("b", true, "web")];
        let now = Timestamp::now();
        let mut stored = b.clone();
        stored.status = reconcile(&b, &pods, None, now);
        assert!(stored.status.is_some());
        assert_eq!(reconcile(&stored, &pods, None, now), None);
        assert!(covers(&b, &pod("x", true, "web")));
        assert!(!covers(&b, &pod("x", true, "db")));
        let mut other_ns = (*pod("x", true, "web")).clone();
        other_ns.metadata.namespace = Some("e".into());
        assert!(!covers(&b, &other_ns));
    }
}
