//! HorizontalPodAutoscaler (`autoscaling/v2`): defaults and validation as
//! Kubernetes' `SetDefaults_HorizontalPodAutoscaler` and `ValidateHorizontalPodAutoscaler`.

use super::super::field::Errors;
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

/// minReplicas 1; no metrics → 80% average CPU utilization; a given
/// `behavior` has its missing rules and fields filled in.
pub(crate) fn defaults(h: &mut HorizontalPodAutoscaler) {
    let s = h.spec.get_or_insert_with(Default::default);
    s.min_replicas.get_or_insert(1);
    if s.metrics.as_ref().is_none_or(Vec::is_empty) {
        s.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    if let Some(b) = s.behavior.as_mut() {
        let policy = |t: &str, value: i32| HPAScalingPolicy {
            type_: t.into(),
            value,
            period_seconds: 15,
        };
        let up = b.scale_up.get_or_insert_with(Default::default);
        up.stabilization_window_seconds.get_or_insert(0);
        up.select_policy.get_or_insert_with(|| "Max".into());
        up.policies
            .get_or_insert_with(|| vec![policy("Pods", 4), policy("Percent", 100)]);
        let down = b.scale_down.get_or_insert_with(Default::default);
        down.stabilization_window_seconds.get_or_insert(300);
        down.select_policy.get_or_insert_with(|| "Max".into());
        down.policies
            .get_or_insert_with(|| vec![policy("Percent", 100)]);
    }
}

fn rules(field: &str, r: &HPAScalingRules, errs: &mut Errors) {
    if let Some(w) = r.stabilization_window_seconds {
        if !(0..=3600).contains(&w) {
            errs.invalid(
                &format!("{field}.stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            );
        }
    }
    if let Some(p) = r.select_policy.as_deref() {
        errs.one_of(
            &format!("{field}.selectPolicy"),
            Some(p),
            &["Disabled", "Max", "Min"],
        );
    }
    for (i, p) in r.policies.iter().flatten().enumerate() {
        let f = format!("{field}.policies[{i}]");
        errs.one_of(
            &format!("{f}.type"),
            Some(p.type_.as_str()),
            &["Percent", "Pods"],
        );
        if p.value <= 0 {
            errs.invalid(&format!("{f}.value"), p.value, "must be greater than zero");
        }
        if !(1..=1800).contains(&p.period_seconds) {
            errs.invalid(
                &format!("{f}.periodSeconds"),
                p.period_seconds,
                "must be greater than zero and less than or equal to 1800",
            );
        }
    }
}

/// `ValidateHorizontalPodAutoscaler`, for the fields ferry acts on.
pub(crate) fn hpa(h: &HorizontalPodAutoscaler, errs: &mut Errors) {
    let Some(s) = &h.spec else {
        return errs.required("spec", "");
    };
    let r = &s.scale_target_ref;
    if r.kind.is_empty() {
        errs.required("spec.scaleTargetRef.kind", "");
    }
    if r.name.is_empty() {
        errs.required("spec.scaleTargetRef.name", "");
    }
    let min = s.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        );
    }
    if s.max_replicas < 1 {
        errs.invalid("spec.maxReplicas", s.max_replicas, "must be greater than 0");
    } else if min > s.max_replicas {
        errs.invalid(
            "spec.maxReplicas",
            s.max_replicas,
            "must be greater than or equal to `minReplicas`",
        );
    }
    for (i, m) in s.metrics.iter().flatten().enumerate() {
        let f = format!("spec.metrics[{i}]");
        errs.one_of(
            &format!("{f}.type"),
            Some(m.type_.as_str()),
            &[
                "ContainerResource",
                "External",
                "Object",
                "Pods",
                "Resource",
            ],
        );
        if m.type_ != "Resource" {
            continue;
        }
        let Some(r) = &m.resource else {
            errs.required(
                &format!("{f}.resource"),
                "must populate information for the given metric source",
            );
            continue;
        };
        if r.name.is_empty() {
            errs.required(&format!("{f}.resource.name"), "");
        }
        let t = &r.target;
        let tf = format!("{f}.resource.target");
        errs.one_of(
            &format!("{tf}.type"),
            Some(t.type_.as_str()),
            &["AverageValue", "Utilization", "Value"],
        );
        match t.type_.as_str() {
            "Utilization" => match t.average_utilization {
                None => errs.required(
                    &format!("{tf}.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ),
                Some(u) if u <= 0 => errs.invalid(
                    &format!("{tf}.averageUtilization"),
                    u,
                    "must be greater than 0",
                ),
                _ => {}
            },
            "AverageValue" if t.average_value.is_none() => errs.required(
                &format!("{tf}.averageValue"),
                "must set either a target raw value or a target utilization",
            ),
            _ => {}
        }
    }
    if let Some(b) = &s.behavior {
        if let Some(r) = &b.scale_up {
            rules("spec.behavior.scaleUp", r, errs);
        }
        if let Some(r) = &b.scale_down {
            rules("spec.behavior.scaleDown", r, errs);
        }
    }
}
