//! The ReplicationController controller's pure core. As Kubernetes'
//! `pkg/controller/replication` does, it is the ReplicaSet controller run over
//! an adapter: a ReplicationController is a ReplicaSet whose selector is a
//! plain label map, so [`as_replica_set`] converts it, [`replicaset::reconcile`]
//! decides, and [`reconcile`] turns the decision back (pods owned by the
//! ReplicationController, a `ReplicationControllerStatus`).

use crate::{meta, replicaset};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::sync::Arc;
use std::time::Duration;

/// What one pass decides for a ReplicationController (see [`replicaset::Decision`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Pods to create, whole, with the ReplicationController as controller owner.
    pub create: Vec<Pod>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The new status, when it differs from the stored one.
    pub status: Option<ReplicationControllerStatus>,
    /// Run the pass again after this long (`minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

/// The selector as a `LabelSelector` (`matchLabels`); None when the map is
/// absent or empty, which selects nothing (validation refuses it).
pub fn selector(rc: &ReplicationController) -> Option<LabelSelector> {
    let m = rc
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|m| !m.is_empty())?;
    Some(LabelSelector {
        match_labels: Some(m.clone()),
        match_expressions: None,
    })
}

/// The ReplicaSet `rc` stands for: same metadata, replicas, minReadySeconds,
/// template and status; the map selector as `matchLabels`.
pub fn as_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.as_ref();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            min_ready_seconds: spec.and_then(|s| s.min_ready_seconds),
            replicas: spec.and_then(|s| s.replicas),
            selector: selector(rc).unwrap_or_default(),
            template: spec.and_then(|s| s.template.clone()),
        }),
        status: rc.status.clone().map(same_fields),
    }
}

/// A ReplicaSet status as the ReplicationController status it stands for.
pub fn rc_status(s: ReplicaSetStatus) -> ReplicationControllerStatus {
    same_fields(s)
}

/// One status type as the other: the two have the same fields and
/// conditions (a ReplicaSet's `terminatingReplicas` is dropped).
fn same_fields<A: serde::Serialize, B: serde::de::DeserializeOwned + Default>(a: A) -> B {
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

/// One pass over `rc` and the pods it controls: the ReplicaSet controller's
/// decision, its new pods owned by the ReplicationController.
pub fn reconcile(rc: &ReplicationController, pods: &[Arc<Pod>], now: Timestamp) -> Decision {
    let d = replicaset::reconcile(&as_replica_set(rc), pods, now);
    let owner = meta::controller_ref("v1", "ReplicationController", &rc.metadata);
    let create = d
        .create
        .into_iter()
        .map(|mut p| {
            p.metadata.owner_references = Some(vec![owner.clone()]);
            p
        })
        .collect();
    Decision {
        create,
        delete: d.delete,
        status: d.status.map(rc_status),
        requeue_after: d.requeue_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_convert_both_ways_with_their_conditions() {
        let st = json!({"replicas": 3, "readyReplicas": 2, "availableReplicas": 1,
            "fullyLabeledReplicas": 3, "observedGeneration": 4,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "quota"}]});
        let r = rc(3, st.clone());
        let as_rs = as_replica_set(&r).status.unwrap();
        assert_eq!(as_rs.ready_replicas, Some(2));
        assert_eq!(
            as_rs.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("FailedCreate")
        );
        assert_eq!(serde_json::to_value(rc_status(as_rs)).unwrap(), st);
    }

    fn rc(replicas: i32, status: serde_json::Value) -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "ns", "uid": "u-rc", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"app": "shop"},
                "template": {"metadata": {"labels": {"app": "shop", "tier": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                    "labels": {"app": "shop"},
                    "creationTimestamp": "2026-12-06T00:00:00Z"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready",
                    "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": "2026-12-06T00:00:00Z"}]},
            }))
            .unwrap(),
        )
    }

    fn now() -> Timestamp {
        "2026-12-06T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_adapter_keeps_the_map_selector_as_match_labels() {
        let rs = as_replica_set(&rc(3, json!({"replicas": 1, "readyReplicas": 1})));
        let s = rs.spec.unwrap();
        assert_eq!(
            s.selector
                .match_labels
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [("app".to_string(), "shop".to_string())]
        );
        assert_eq!(s.replicas, Some(3));
        assert_eq!(rs.status.unwrap().ready_replicas, Some(1));
        let mut empty = rc(1, json!(null));
        empty.spec.as_mut().unwrap().selector = Some(Default::default());
        assert_eq!(selector(&empty), None, "an empty map selects nothing");
    }

    #[test]
    fn too_few_pods_are_created_owned_by_the_replication_controller() {
        let d = reconcile(&rc(3, json!(null)), &[pod("shop-a", true)], now());
        assert_eq!(d.create.len(), 2);
        let p = &d.create[0];
        assert_eq!(p.metadata.generate_name.as_deref(), Some("shop-"));
        let owners = p.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        let o = &owners[0];
        assert_eq!(
            (
                o.api_version.as_str(),
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str()
            ),
            ("v1", "ReplicationController", "shop", "u-rc")
        );
        assert_eq!(o.controller, Some(true));
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .unwrap()
                .get("tier")
                .map(String::as_str),
            Some("web"),
            "labels from the template"
        );
        assert!(d.delete.is_empty());
        let s = d.status.unwrap();
        assert_eq!((s.replicas, s.ready_replicas), (1, Some(1)));
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn too_many_pods_are_deleted_not_ready_first() {
        let pods = [
            pod("shop-a", true),
            pod("shop-b", false),
            pod("shop-c", true),
        ];
        let d = reconcile(&rc(2, json!(null)), &pods, now());
        assert!(d.create.is_empty());
        assert_eq!(d.delete, [("shop-b".to_string(), "u-shop-b".to_string())]);
    }

    #[test]
    fn a_status_already_stored_is_not_written_again() {
        let stored = json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "observedGeneration": 2});
        let d = reconcile(
            &rc(2, stored),
            &[pod("shop-a", true), pod("shop-b", true)],
            now(),
        );
        assert_eq!(d, Decision::default());
    }
}
