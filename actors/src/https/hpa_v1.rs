//! `autoscaling/v1` HorizontalPodAutoscalers over HTTPS (what `kubectl
//! autoscale` 1.32 sends): stored as `autoscaling/v2`, converted at the front
//! end as Kubernetes converts them. v1's `targetCPUUtilizationPercentage` is
//! v2's cpu `Utilization` metric; v1's status `currentCPUUtilizationPercentage`
//! is the cpu metric's current utilization. Other v2 metrics and `behavior`
//! are not visible in v1 (Kubernetes keeps them in an annotation; ferry does
//! not). Patches pass through as sent (they must use v2's fields).

use serde_json::{json, Value};

/// A v1 object body as the v2 object the pipeline stores.
pub fn to_v2(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    if v["apiVersion"] != "autoscaling/v1" {
        return body.to_vec();
    }
    v["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(t) = spec.remove("targetCPUUtilizationPercentage") {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": t}}}]),
            );
        }
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("currentCPUUtilizationPercentage");
        status.entry("desiredReplicas").or_insert(json!(0));
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())
}

fn object_to_v1(o: &mut Value) {
    if o["kind"] != "HorizontalPodAutoscaler" && o.get("spec").is_none() {
        return;
    }
    o["apiVersion"] = json!("autoscaling/v1");
    let cpu_target = |m: &Value| {
        (m["type"] == "Resource" && m["resource"]["name"] == "cpu")
            .then(|| m.pointer("/resource/target/averageUtilization").cloned())
            .flatten()
    };
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        let target = spec
            .get("metrics")
            .and_then(Value::as_array)
            .and_then(|ms| ms.iter().find_map(cpu_target));
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(t) = target {
            spec.insert("targetCPUUtilizationPercentage".into(), t);
        }
    }
    if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
        let current = status
            .get("currentMetrics")
            .and_then(Value::as_array)
            .and_then(|ms| {
                ms.iter().find_map(|m| {
                    (m["type"] == "Resource" && m["resource"]["name"] == "cpu")
                        .then(|| m.pointer("/resource/current/averageUtilization").cloned())
                        .flatten()
                })
            });
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(c) = current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
}

/// A v2 answer (an object or a list) as v1.
pub fn to_v1(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    match v.get_mut("items").and_then(Value::as_array_mut) {
        Some(items) => {
            items.iter_mut().for_each(object_to_v1);
            v["apiVersion"] = json!("autoscaling/v1");
        }
        None => object_to_v1(&mut v),
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_convert_both_ways() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 0, "desiredReplicas": 0}});
        let v2: Value = serde_json::from_slice(&to_v2(&serde_json::to_vec(&v1).unwrap())).unwrap();
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
        // Stored and answered: with a status, in a list.
        let mut stored = v2.clone();
        stored["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 300}});
        stored["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 72, "averageValue": "72m"}}}],
            "conditions": [{"type": "AbleToScale", "status": "True"}]});
        let list = json!({"kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2",
            "items": [stored.clone()]});
        let back: Value =
            serde_json::from_slice(&to_v1(&serde_json::to_vec(&list).unwrap())).unwrap();
        let o = &back["items"][0];
        assert_eq!(back["apiVersion"], "autoscaling/v1");
        assert_eq!(o["apiVersion"], "autoscaling/v1");
        assert_eq!(o["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(o["spec"].get("metrics").is_none() && o["spec"].get("behavior").is_none());
        assert_eq!(o["status"]["currentCPUUtilizationPercentage"], 72);
        assert_eq!(o["status"]["desiredReplicas"], 3);
        assert!(o["status"].get("conditions").is_none());
        // A Status (an error) passes unchanged.
        let s = json!({"kind": "Status", "code": 404});
        assert_eq!(
            to_v1(&serde_json::to_vec(&s).unwrap()),
            serde_json::to_vec(&s).unwrap()
        );
    }
}
