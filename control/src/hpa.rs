//! The HorizontalPodAutoscaler's decision (`autoscaling/v2`), as Kubernetes'
//! `podautoscaler` controller makes it, pure: from the target's scale, its
//! pods and their resource metrics to the replica count, the status and the
//! recommendation history the stabilisation window reads.
//!
//! Resource metrics (cpu, memory) with `Utilization` or `AverageValue`
//! targets; the largest proposal of several metrics wins. Per pod as
//! Kubernetes' replica calculator: deleted and failed pods are ignored,
//! pending and unready ones count as unready, pods without a sample are
//! missing; a scale-up does not count unready pods' usage, missing pods count
//! 100% of their request on a scale-down and 0 on a scale-up, and the
//! proposal is dropped when that reverses its direction. A ratio within the
//! tolerance (10%) keeps the count. Then the stabilisation windows (scale-up
//! 0 s, scale-down 300 s by default: the highest recommendation of the window
//! wins a scale-down), the rate policies, and `minReplicas`/`maxReplicas`.
//!
//! A rate policy bounds the change over its `periodSeconds`, as Kubernetes'
//! `calculateScaleUpLimitWithScalingRules` / `...ScaleDownLimit...` do: the
//! count the period started from is the current one less the scale-ups and
//! plus the scale-downs of the period ([`ScaleEvent`]s, which the shell keeps
//! per autoscaler as Kubernetes' `scaleUpEvents`/`scaleDownEvents`), and
//! the policy's step is taken from there.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;

/// Kubernetes' default tolerance: no change while |1 − ratio| ≤ 0.1.
pub const TOLERANCE: f64 = 0.1;
/// Default scale-down stabilisation window, seconds.
pub const DOWN_WINDOW: i64 = 300;

/// What the decision knows of one pod the target's selector picks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodInfo {
    /// Name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// Ready condition True.
    pub ready: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Requests summed over its containers: cpu millicores and memory bytes
    /// (`None` when a container has none for that resource).
    pub cpu_request: Option<i64>,
    /// Memory request, bytes.
    pub memory_request: Option<i64>,
}

/// A pod's usage from `metrics.k8s.io`: cpu millicores, memory bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU, millicores.
    pub cpu: i64,
    /// Memory, bytes.
    pub memory: i64,
}

/// The inputs of one decision.
pub struct Input<'a> {
    /// The autoscaler.
    pub hpa: &'a HorizontalPodAutoscaler,
    /// The target's `scale.spec.replicas`.
    pub spec_replicas: i32,
    /// The target's `scale.status.replicas`.
    pub status_replicas: i32,
    /// Its pods (by the scale's selector).
    pub pods: &'a [PodInfo],
    /// Pod metrics by pod name, or why they could not be read.
    pub usage: Result<&'a HashMap<String, Usage>, String>,
    /// Now.
    pub now: Timestamp,
    /// Earlier recommendations (time, replicas) kept for the windows.
    pub history: &'a [(Timestamp, i32)],
    /// The target's recent scalings by this autoscaler, for the rate policies.
    pub events: &'a [ScaleEvent],
}

/// One scaling of the target: when, and by how many replicas (positive up,
/// negative down), as Kubernetes' `timestampedScaleEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When the scale was written.
    pub at: Timestamp,
    /// New replicas less old.
    pub change: i32,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Scale the target to this many replicas (`None`: leave it).
    pub scale_to: Option<i32>,
    /// The autoscaler's new status.
    pub status: HorizontalPodAutoscalerStatus,
    /// The recommendations to keep for the next decision.
    pub history: Vec<(Timestamp, i32)>,
    /// The scale events to keep: those still inside a policy's period, and
    /// this decision's own (the shell drops it when the scale write fails).
    pub events: Vec<ScaleEvent>,
    /// Warning Events to record on the autoscaler: (reason, message), as
    /// Kubernetes' controller records a metric it cannot read
    /// (`FailedGetResourceMetric`) and a count it cannot compute
    /// (`FailedComputeMetricsReplicas`).
    pub warnings: Vec<(&'static str, String)>,
}

struct Proposal {
    replicas: i32,
    status: MetricStatus,
}

fn quantity_milli(m: i64) -> Quantity {
    Quantity(format!("{m}m"))
}

fn parse_target(q: &Quantity, cpu: bool) -> Option<i64> {
    let q = ferry_api::quantity::Quantity::parse(&q.0)?;
    i64::try_from(if cpu { q.milli() } else { q.value() }).ok()
}

/// Kubernetes' replica calculator for one resource metric: the proposed
/// count and the metric's status, or why it cannot tell.
fn resource_proposal(
    name: &str,
    target: &k8s_openapi::api::autoscaling::v2::MetricTarget,
    current: i32,
    pods: &[PodInfo],
    usage: &HashMap<String, Usage>,
) -> Result<Proposal, String> {
    let cpu = match name {
        "cpu" => true,
        "memory" => false,
        other => {
            return Err(format!(
                "unsupported resource {other:?}: only cpu and memory"
            ))
        }
    };
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let use_of = |u: &Usage| if cpu { u.cpu } else { u.memory };
    let request_of = |p: &PodInfo| if cpu { p.cpu_request } else { p.memory_request };
    let mut metrics: HashMap<&str, i64> = HashMap::new();
    let (mut unready, mut missing) = (Vec::new(), Vec::new());
    for p in pods {
        if p.deleting || p.phase == "Failed" {
            continue;
        }
        if p.phase == "Pending" {
            unready.push(p);
            continue;
        }
        match usage.get(&p.name) {
            None => missing.push(p),
            Some(_) if cpu && !p.ready => unready.push(p),
            Some(u) => {
                metrics.insert(&p.name, use_of(u));
            }
        }
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let utilization_target = target.average_utilization;
    let value_target = target
        .average_value
        .as_ref()
        .and_then(|q| parse_target(q, cpu));
    let requests: HashMap<&str, i64> = pods
        .iter()
        .filter_map(|p| request_of(p).map(|r| (p.name.as_str(), r)))
        .collect();
    // (usage ratio, utilization or average) of `m`.
    let ratio = |m: &HashMap<&str, i64>| -> Result<(f64, i64), String> {
        let total: i64 = m.values().sum();
        match (target.type_.as_str(), utilization_target, value_target) {
            ("Utilization", Some(t), _) => {
                let mut req = 0;
                for p in m.keys() {
                    req += requests
                        .get(p)
                        .copied()
                        .ok_or_else(|| format!("missing request for {name} in pod {p}"))?;
                }
                if req == 0 {
                    return Err(format!("no {name} requests for the pods"));
                }
                let util = total * 100 / req;
                Ok((util as f64 / t as f64, util))
            }
            ("AverageValue", _, Some(v)) if v > 0 => {
                let avg = total / m.len() as i64;
                Ok((total as f64 / (v as f64 * m.len() as f64), avg))
            }
            (t, _, _) => Err(format!(
                "invalid metric target type {t:?} for resource {name}"
            )),
        }
    };
    let (usage_ratio, measured) = ratio(&metrics)?;
    let status = |measured: i64| {
        let mut current = MetricValueStatus::default();
        if target.type_ == "Utilization" {
            current.average_utilization = Some(measured as i32);
            let avg: i64 = metrics.values().sum::<i64>() / metrics.len() as i64;
            current.average_value = Some(if cpu {
                quantity_milli(avg)
            } else {
                Quantity(avg.to_string())
            });
        } else {
            current.average_value = Some(if cpu {
                quantity_milli(measured)
            } else {
                Quantity(measured.to_string())
            });
        }
        MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: name.into(),
                current,
            }),
            ..Default::default()
        }
    };
    let ready_count = metrics.len() as f64;
    let scale_up_with_unready = !unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        let replicas = if (1.0 - usage_ratio).abs() <= TOLERANCE {
            current
        } else {
            (usage_ratio * ready_count).ceil() as i32
        };
        return Ok(Proposal {
            replicas,
            status: status(measured),
        });
    }
    let mut filled = metrics.clone();
    if usage_ratio < 1.0 {
        for p in &missing {
            let fallback = match (target.type_.as_str(), utilization_target, value_target) {
                ("Utilization", Some(t), _) => {
                    requests.get(p.name.as_str()).copied().unwrap_or(0) * (t.max(100) as i64) / 100
                }
                (_, _, Some(v)) => v,
                _ => 0,
            };
            filled.insert(&p.name, fallback);
        }
    } else if usage_ratio > 1.0 {
        for p in &missing {
            filled.insert(&p.name, 0);
        }
    }
    if scale_up_with_unready {
        for p in &unready {
            filled.insert(&p.name, 0);
        }
    }
    let (new_ratio, _) = ratio(&filled)?;
    let keep = (1.0 - new_ratio).abs() <= TOLERANCE
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0);
    let mut replicas = if keep {
        current
    } else {
        (new_ratio * filled.len() as f64).ceil() as i32
    };
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        replicas = current;
    }
    Ok(Proposal {
        replicas,
        status: status(measured),
    })
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> HorizontalPodAutoscalerCondition {
    HorizontalPodAutoscalerCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

fn window(rules: Option<&HPAScalingRules>, default: i64) -> i64 {
    rules
        .and_then(|r| r.stabilization_window_seconds)
        .map_or(default, i64::from)
}

/// A rule's policies as (type, value, periodSeconds), Kubernetes' defaults
/// when it names none (up: 4 pods or 100% per 15 s; down: 100% per 15 s).
fn policies(rules: Option<&HPAScalingRules>, up: bool) -> Vec<(String, i32, i32)> {
    match rules.and_then(|r| r.policies.as_ref()) {
        Some(p) => p
            .iter()
            .map(|p| (p.type_.clone(), p.value, p.period_seconds))
            .collect(),
        None if up => vec![("Pods".into(), 4, 15), ("Percent".into(), 100, 15)],
        None => vec![("Percent".into(), 100, 15)],
    }
}

/// The replicas added (`up`) or removed by `events` within the last
/// `period` seconds (Kubernetes' `getReplicasChangePerPeriod`).
fn changed_within(events: &[ScaleEvent], period: i32, now: Timestamp, up: bool) -> i32 {
    let period = SignedDuration::from_secs(i64::from(period));
    events
        .iter()
        .filter(|e| (e.change > 0) == up && e.change != 0)
        .filter(|e| now.duration_since(e.at) < period)
        .map(|e| e.change.abs())
        .sum()
}

/// The bound a rule's policies put on the count (highest for `up`, lowest
/// for down): each policy steps from the count its period started at, `Max`
/// (default) takes the largest change, `Min` the smallest, `Disabled` none;
/// never past the current count the other way (Kubernetes'
/// `calculateScaleUpLimitWithScalingRules` and
/// `calculateScaleDownLimitWithBehaviors`).
fn rate_limit(
    rules: Option<&HPAScalingRules>,
    current: i32,
    up: bool,
    events: &[ScaleEvent],
    now: Timestamp,
) -> i32 {
    let select = rules
        .and_then(|r| r.select_policy.clone())
        .unwrap_or_else(|| "Max".into());
    if select == "Disabled" {
        return current;
    }
    let limits = policies(rules, up).into_iter().map(|(t, v, period)| {
        let added = changed_within(events, period, now, true);
        let removed = changed_within(events, period, now, false);
        let start = f64::from(current - added + removed);
        let v = f64::from(v);
        let proposed = match (t.as_str(), up) {
            ("Percent", true) => (start * (1.0 + v / 100.0)).ceil(),
            ("Percent", false) => (start * (1.0 - v / 100.0)).trunc(),
            (_, true) => start + v,
            (_, false) => start - v,
        };
        proposed.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
    });
    let widest = (select == "Max") == up;
    let pick = if widest { limits.max() } else { limits.min() };
    let pick = pick.unwrap_or(current);
    // Past changes may already exceed the policy: hold, never reverse.
    if up {
        pick.max(current)
    } else {
        pick.min(current).max(0)
    }
}

/// The longest policy period of a behavior's rules, seconds: how long scale
/// events matter.
fn longest_period(behavior: &HorizontalPodAutoscalerBehavior) -> i32 {
    let up = policies(behavior.scale_up.as_ref(), true);
    let down = policies(behavior.scale_down.as_ref(), false);
    up.iter().chain(&down).map(|p| p.2).max().unwrap_or(0)
}

/// One decision: what Kubernetes' controller would scale the target to and write as status.
pub fn reconcile(input: &Input) -> Decision {
    let hpa = input.hpa;
    let spec = hpa.spec.clone().unwrap_or_default();
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let current = input.spec_replicas;
    let old = hpa.status.clone().unwrap_or_default();
    let mut status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(input.status_replicas),
        desired_replicas: current,
        last_scale_time: old.last_scale_time.clone(),
        observed_generation: hpa.metadata.generation,
        current_metrics: old.current_metrics.clone(),
        conditions: None,
    };
    let mut conditions = vec![condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    )];
    let mut history: Vec<(Timestamp, i32)> = input.history.to_vec();
    let behavior = spec.behavior.clone().unwrap_or_default();
    let keep_events = SignedDuration::from_secs(i64::from(longest_period(&behavior)));
    let mut events: Vec<ScaleEvent> = input
        .events
        .iter()
        .filter(|e| input.now.duration_since(e.at) < keep_events)
        .copied()
        .collect();
    let up_window = window(behavior.scale_up.as_ref(), 0);
    let down_window = window(behavior.scale_down.as_ref(), DOWN_WINDOW);
    let mut desired;
    let mut reason_limited = None;
    let mut warnings = Vec::new();
    if current == 0 && min != 0 {
        conditions.push(condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
        status.desired_replicas = 0;
        status.conditions = Some(finish(conditions, &old, input.now));
        return Decision {
            scale_to: None,
            status,
            history,
            events,
            warnings,
        };
    } else if current > max {
        // "Current number of replicas above Spec.MaxReplicas": no metrics needed.
        desired = max;
        reason_limited = Some((
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        ));
    } else if current < min {
        desired = min;
        reason_limited = Some((
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        ));
    } else {
        let metrics = spec.metrics.clone().unwrap_or_default();
        let mut best: Option<i32> = None;
        let mut statuses = Vec::new();
        // Each metric that fails: (reason, its name, why).
        let mut invalid: Vec<(&'static str, String, String)> = Vec::new();
        for m in &metrics {
            let r = match (m.type_.as_str(), &m.resource, &input.usage) {
                ("Resource", Some(r), Err(e)) => Err((
                    "FailedGetResourceMetric",
                    r.name.clone(),
                    format!(
                        "failed to get {} utilization: unable to get metrics for resource {}: {e}",
                        r.name, r.name
                    ),
                )),
                ("Resource", Some(r), Ok(usage)) => {
                    resource_proposal(&r.name, &r.target, current, input.pods, usage).map_err(|e| {
                        let why = format!("failed to get {} utilization: {e}", r.name);
                        ("FailedGetResourceMetric", r.name.clone(), why)
                    })
                }
                (t, _, _) => Err((
                    "InvalidMetricSourceType",
                    t.to_string(),
                    format!("metric type {t:?} is not supported (Resource only)"),
                )),
            };
            match r {
                Ok(p) => {
                    best = Some(best.map_or(p.replicas, |b| b.max(p.replicas)));
                    statuses.push(p.status);
                }
                Err(e) => invalid.push(e),
            }
        }
        for (reason, _, why) in &invalid {
            warnings.push((*reason, why.clone()));
        }
        match best {
            Some(b) if invalid.is_empty() || !statuses.is_empty() => {
                desired = b;
                status.current_metrics = Some(statuses);
                let names: Vec<String> = metrics
                    .iter()
                    .filter_map(|m| m.resource.as_ref().map(|r| r.name.clone()))
                    .collect();
                conditions.push(condition(
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    format!(
                        "the HPA was able to successfully calculate a replica count from {} resource utilization (percentage of request)",
                        names.join(", ")
                    ),
                ));
            }
            _ => {
                let (reason, why) = match invalid.first() {
                    Some((reason, name, why)) => {
                        warnings.push((
                            "FailedComputeMetricsReplicas",
                            format!(
                                "invalid metrics ({} invalid out of {}), first error is: failed to get {name} resource metric value: {why}",
                                invalid.len(),
                                metrics.len()
                            ),
                        ));
                        (*reason, why.clone())
                    }
                    None => (
                        "FailedGetResourceMetric",
                        "no metrics to scale on".to_string(),
                    ),
                };
                conditions.push(condition(
                    "ScalingActive",
                    false,
                    reason,
                    format!("the HPA was unable to compute the replica count: {why}"),
                ));
                status.conditions = Some(finish(conditions, &old, input.now));
                return Decision {
                    scale_to: None,
                    status,
                    history,
                    events,
                    warnings,
                };
            }
        }
        // Stabilisation: the window's recommendations bound the move.
        let keep = SignedDuration::from_secs(up_window.max(down_window));
        history.retain(|(t, _)| input.now.duration_since(*t) <= keep);
        let (mut up_rec, mut down_rec) = (desired, desired);
        for (t, r) in &history {
            let age = input.now.duration_since(*t);
            if age <= SignedDuration::from_secs(up_window) {
                up_rec = up_rec.min(*r);
            }
            if age <= SignedDuration::from_secs(down_window) {
                down_rec = down_rec.max(*r);
            }
        }
        history.push((input.now, desired));
        let mut stabilized = current;
        if stabilized < up_rec {
            stabilized = up_rec;
        }
        if stabilized > down_rec {
            stabilized = down_rec;
        }
        if stabilized != desired {
            conditions[0] = condition(
                "AbleToScale",
                true,
                if stabilized > desired {
                    "ScaleDownStabilized"
                } else {
                    "ScaleUpStabilized"
                },
                if stabilized > desired {
                    "recent recommendations were higher than current one, applying the highest recent recommendation"
                } else {
                    "recent recommendations were lower than current one, applying the lowest recent recommendation"
                }
                .into(),
            );
        }
        desired = stabilized;
        // Rate policies, over their periods' scale events.
        let now = input.now;
        if desired > current {
            let l = rate_limit(behavior.scale_up.as_ref(), current, true, &events, now);
            if desired > l && l < max {
                desired = l;
                reason_limited = Some((
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ));
            }
        } else if desired < current {
            let l = rate_limit(behavior.scale_down.as_ref(), current, false, &events, now);
            if desired < l && l > min {
                desired = l;
                reason_limited = Some((
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ));
            }
        }
    }
    if desired > max {
        desired = max;
        reason_limited = Some((
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        ));
    } else if desired < min {
        desired = min;
        reason_limited = Some((
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        ));
    }
    conditions.push(match reason_limited {
        Some((reason, msg)) => condition("ScalingLimited", true, reason, msg.into()),
        None => condition(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".into(),
        ),
    });
    if conditions.iter().all(|c| c.type_ != "ScalingActive") {
        conditions.insert(
            1,
            condition(
                "ScalingActive",
                true,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count".into(),
            ),
        );
    }
    status.desired_replicas = desired;
    let scale_to = (desired != current).then_some(desired);
    if let Some(n) = scale_to {
        events.push(ScaleEvent {
            at: input.now,
            change: n - current,
        });
        status.last_scale_time = Some(Time(input.now));
        conditions[0] = condition(
            "AbleToScale",
            true,
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {n}"),
        );
    }
    status.conditions = Some(finish(conditions, &old, input.now));
    Decision {
        scale_to,
        status,
        history,
        events,
        warnings,
    }
}

/// Sets each condition's transition time: kept from the old status while its
/// status is unchanged, else now.
fn finish(
    mut conditions: Vec<HorizontalPodAutoscalerCondition>,
    old: &HorizontalPodAutoscalerStatus,
    now: Timestamp,
) -> Vec<HorizontalPodAutoscalerCondition> {
    for c in &mut conditions {
        let before = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match before {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
    }
    conditions
}

#[cfg(test)]
mod tests;
