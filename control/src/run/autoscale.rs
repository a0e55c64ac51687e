//! The HorizontalPodAutoscaler shell: every [`SYNC`] each autoscaler's
//! target scale is read (`<kind>/scale`), its pods come from the pod cache
//! and their usage from `metrics.k8s.io` (the masters' memory, through the
//! API), [`crate::hpa::reconcile`] decides, and the shell writes the scale
//! subresource and the autoscaler's status. The recommendations for the
//! stabilisation window live in this term's memory, as in Kubernetes (a new
//! leader starts with none).

use super::{status_update, Plane, Source};
use crate::api::{self, merge_patch, Written};
use crate::hpa::{self, PodInfo, Usage};
use ferry_api::object::{ListOptions, ObjectRequest, Verb};
use ferry_api::selector::LabelSelector;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// How often autoscalers are reconciled (Kubernetes' `--horizontal-pod-autoscaler-sync-period`).
pub const SYNC: Duration = Duration::from_secs(15);

fn quantity(v: Option<&Value>, milli: bool) -> Option<i64> {
    let q = ferry_api::quantity::Quantity::parse(v?.as_str()?)?;
    i64::try_from(if milli { q.milli() } else { q.value() }).ok()
}

/// What the decision needs of a pod: phase, readiness, summed requests.
pub fn pod_info(p: &Pod) -> PodInfo {
    let spec = p.spec.clone().unwrap_or_default();
    let sum = |res: &str, milli: bool| -> Option<i64> {
        spec.containers
            .iter()
            .map(|c| {
                let r = c.resources.as_ref()?.requests.as_ref()?.get(res)?;
                quantity(Some(&Value::String(r.0.clone())), milli)
            })
            .sum()
    };
    PodInfo {
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        ready: crate::meta::pod_ready(p),
        deleting: p.metadata.deletion_timestamp.is_some(),
        cpu_request: sum("cpu", true),
        memory_request: sum("memory", false),
    }
}

/// Each pod's usage from a `PodMetricsList`: containers summed.
pub fn usage_of(list: &Value) -> HashMap<String, Usage> {
    let mut out = HashMap::new();
    for m in list["items"].as_array().into_iter().flatten() {
        let mut u = Usage::default();
        for c in m["containers"].as_array().into_iter().flatten() {
            u.cpu += quantity(c.pointer("/usage/cpu"), true).unwrap_or(0);
            u.memory += quantity(c.pointer("/usage/memory"), false).unwrap_or(0);
        }
        if let Some(n) = m["metadata"]["name"].as_str() {
            out.insert(n.to_string(), u);
        }
    }
    out
}

/// What the shell remembers of one autoscaler between passes: its
/// recommendations (time, replicas) and its scale events.
type Memory = (Vec<(Timestamp, i32)>, Vec<hpa::ScaleEvent>);

impl Plane<'_> {
    pub(super) async fn autoscale_loop(&self) {
        self.synced().await;
        // Per autoscaler: its recent recommendations and scale events.
        let mut history: HashMap<String, Memory> = HashMap::new();
        loop {
            match api::list::<HorizontalPodAutoscaler>(self.api, "horizontalpodautoscalers").await {
                Ok((hpas, _)) => {
                    let keys: Vec<String> =
                        hpas.iter().map(|h| crate::meta::key(&h.metadata)).collect();
                    history.retain(|k, _| keys.contains(k));
                    for h in &hpas {
                        if !self.api.is_leader() {
                            break;
                        }
                        let key = crate::meta::key(&h.metadata);
                        let past = history.remove(&key).unwrap_or_default();
                        let kept = self.autoscale(h, past).await;
                        history.insert(key, kept);
                    }
                }
                Err(e) => tracing::debug!(error = %e.message, "listing autoscalers failed"),
            }
            tokio::time::sleep(SYNC).await;
        }
    }

    /// One autoscaler's pass; returns the recommendations and scale events
    /// to keep.
    async fn autoscale(&self, h: &HorizontalPodAutoscaler, past: Memory) -> Memory {
        let ns = h.metadata.namespace.clone().unwrap_or_default();
        let Some(spec) = &h.spec else {
            return past;
        };
        let target = &spec.scale_target_ref;
        let plural = ferry_api::resources::by_cli_name(&target.kind).map(|r| r.plural);
        let mut get = ObjectRequest::new(
            Verb::Get,
            plural.unwrap_or(""),
            Some(&ns),
            Some(&target.name),
        );
        get.subresource = Some("scale".into());
        let scale = match (plural, self.api.request(get).await) {
            (Some(_), Ok(r)) if r.code == 200 => r.json().unwrap_or_default(),
            (_, r) => {
                let why = match r {
                    Ok(r) => api::status_message(&r),
                    Err(e) => e.message,
                };
                self.hpa_failed(
                    h,
                    "FailedGetScale",
                    &format!(
                        "the HPA controller was unable to get the target's current scale: {why}"
                    ),
                )
                .await;
                return past;
            }
        };
        let spec_replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0) as i32;
        let status_replicas = scale
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0) as i32;
        let selector = scale
            .pointer("/status/selector")
            .and_then(Value::as_str)
            .unwrap_or("");
        let sel = LabelSelector::parse(selector).unwrap_or_else(|_| LabelSelector::nothing());
        let pods: Vec<PodInfo> = self
            .pods
            .in_namespace(&ns)
            .into_iter()
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                let m: serde_json::Map<String, Value> = labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                !selector.is_empty() && sel.matches(&m)
            })
            .map(|p| pod_info(&p))
            .collect();
        let mut list = ObjectRequest::new(Verb::List, ferry_api::metrics::PODS, Some(&ns), None);
        list.list = ListOptions {
            label_selector: Some(selector.to_string()),
            ..Default::default()
        };
        let usage = match self.api.request(list).await {
            Ok(r) if r.code == 200 => Ok(usage_of(&r.json().unwrap_or_default())),
            Ok(r) => Err(api::status_message(&r)),
            Err(e) => Err(e.message),
        };
        let d = hpa::reconcile(&hpa::Input {
            hpa: h,
            spec_replicas,
            status_replicas,
            pods: &pods,
            usage: usage.as_ref().map_err(String::clone),
            now: ferry_api::clock::now(),
            history: &past.0,
            events: &past.1,
        });
        for (reason, message) in &d.warnings {
            self.event(
                Source::Autoscaler,
                &h.metadata,
                "HorizontalPodAutoscaler",
                "Warning",
                reason,
                message,
            );
        }
        let mut events = d.events.clone();
        let mut status = d.status.clone();
        if let Some(n) = d.scale_to {
            let patch = json!({"spec": {"replicas": n}});
            let req = merge_patch(
                plural.unwrap_or(""),
                Some(&ns),
                &target.name,
                Some("scale"),
                &patch,
            );
            let w: Written = api::write(self.api, req).await;
            if w.ok() {
                let reason = if n > spec_replicas { "above" } else { "below" };
                self.event(
                    Source::Autoscaler,
                    &h.metadata,
                    "HorizontalPodAutoscaler",
                    "Normal",
                    "SuccessfulRescale",
                    &format!("New size: {n}; reason: cpu resource utilization (percentage of request) {reason} target"),
                );
            } else {
                let msg = format!(
                    "the HPA controller was unable to update the target scale: {}",
                    w.message
                );
                self.event(
                    Source::Autoscaler,
                    &h.metadata,
                    "HorizontalPodAutoscaler",
                    "Warning",
                    "FailedRescale",
                    &msg,
                );
                // Not scaled: no event.
                events.pop();
                status.desired_replicas = spec_replicas;
                status.last_scale_time = h.status.as_ref().and_then(|s| s.last_scale_time.clone());
                if let Some(c) = status.conditions.as_mut().and_then(|c| c.first_mut()) {
                    c.status = "False".into();
                    c.reason = Some("FailedUpdateScale".into());
                    c.message = Some(msg);
                }
            }
        }
        self.hpa_status(h, status).await;
        (d.history, events)
    }

    async fn hpa_status(
        &self,
        h: &HorizontalPodAutoscaler,
        status: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus,
    ) {
        if h.status.as_ref() == Some(&status) || !self.api.is_leader() {
            return;
        }
        let mut new = h.clone();
        new.status = Some(status);
        let w = api::write(self.api, status_update("horizontalpodautoscalers", &new)).await;
        if !w.ok() {
            tracing::debug!(hpa = ?h.metadata.name, message = %w.message, "autoscaler status not written");
        }
    }

    async fn hpa_failed(&self, h: &HorizontalPodAutoscaler, reason: &str, message: &str) {
        let mut status = h.status.clone().unwrap_or_default();
        let c = k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerCondition {
            type_: "AbleToScale".into(),
            status: "False".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                ferry_api::clock::now(),
            )),
        };
        let mut cs = status.conditions.unwrap_or_default();
        match cs.iter_mut().find(|x| x.type_ == "AbleToScale") {
            Some(x) if x.status == "False" && x.reason == c.reason => x.message = c.message,
            Some(x) => *x = c,
            None => cs.insert(0, c),
        }
        status.conditions = Some(cs);
        self.event(
            Source::Autoscaler,
            &h.metadata,
            "HorizontalPodAutoscaler",
            "Warning",
            reason,
            message,
        );
        self.hpa_status(h, status).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_requests_and_metrics_sum_over_containers() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"containers": [
                {"name": "x", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "y", "resources": {"requests": {"cpu": "0.2"}}},
            ]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let i = pod_info(&p);
        assert_eq!(i.cpu_request, Some(300));
        assert_eq!(i.memory_request, None, "y has no memory request");
        assert!(i.ready);
        assert_eq!(i.phase, "Running");
        let list = json!({"items": [{"metadata": {"name": "a"}, "containers": [
            {"name": "x", "usage": {"cpu": "150000000n", "memory": "1024Ki"}},
            {"name": "y", "usage": {"cpu": "50m", "memory": "0"}},
        ]}]});
        let u = usage_of(&list);
        assert_eq!(
            u["a"],
            Usage {
                cpu: 200,
                memory: 1 << 20
            }
        );
    }
}
