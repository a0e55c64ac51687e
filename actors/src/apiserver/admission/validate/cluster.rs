//! Namespace, Node, ServiceAccount, Event and Lease.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, ServiceAccount};

use super::meta::{label_value, qualified_name, qualified_name_errors};
use crate::apiserver::admission::field::{at, q, Errors};

/// Namespace: finalizer names are standard (`kubernetes`) or fully qualified.
pub(crate) fn namespace(ns: &Namespace, errs: &mut Errors) {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref());
    for (i, f) in finalizers.into_iter().flatten().enumerate() {
        let p = format!("spec.finalizers[{i}]");
        let errors = qualified_name_errors(f);
        if !errors.is_empty() {
            qualified_name(&p, f, errs);
        } else if !f.contains('/') && f != "kubernetes" {
            errs.invalid(
                &p,
                q(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

/// Node: taints and pod CIDRs.
pub(crate) fn node(n: &Node, errs: &mut Errors) {
    let Some(s) = &n.spec else { return };
    let mut seen = BTreeSet::new();
    for (i, t) in s.taints.iter().flatten().enumerate() {
        let p = format!("spec.taints[{i}]");
        if t.key.is_empty() {
            errs.required(&at(&p, "key"), "");
        } else {
            qualified_name(&at(&p, "key"), &t.key, errs);
        }
        if let Some(v) = &t.value {
            label_value(&at(&p, "value"), v, errs);
        }
        if t.effect.is_empty() {
            errs.required(&at(&p, "effect"), "");
        } else {
            errs.one_of(
                &at(&p, "effect"),
                Some(&t.effect),
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            );
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            errs.duplicate(&at(&p, "effect"), q(&t.effect));
        }
    }
    let cidrs = s.pod_cidr.iter().chain(s.pod_cidrs.iter().flatten());
    for (i, c) in cidrs.enumerate() {
        let field = if i == 0 && s.pod_cidr.is_some() {
            "spec.podCIDR".to_string()
        } else {
            format!("spec.podCIDRs[{}]", i - usize::from(s.pod_cidr.is_some()))
        };
        if !cidr_ok(c) {
            errs.invalid(
                &field,
                q(c),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            );
        }
    }
}

fn cidr_ok(c: &str) -> bool {
    let Some((ip, bits)) = c.split_once('/') else {
        return false;
    };
    let max = match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => 32,
        Ok(IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// ServiceAccount: referenced secrets are named.
pub(crate) fn service_account(sa: &ServiceAccount, errs: &mut Errors) {
    for (i, r) in sa.image_pull_secrets.iter().flatten().enumerate() {
        if r.name.is_empty() {
            errs.required(&format!("imagePullSecrets[{i}].name"), "");
        }
    }
    for (i, r) in sa.secrets.iter().flatten().enumerate() {
        if r.name.as_deref().is_none_or(str::is_empty) {
            errs.required(&format!("secrets[{i}].name"), "");
        }
    }
}

/// Event: names what it is about, in its own namespace.
pub(crate) fn event(e: &Event, errs: &mut Errors) {
    let o = &e.involved_object;
    if o.kind.as_deref().is_none_or(str::is_empty) && o.name.as_deref().is_none_or(str::is_empty) {
        errs.required("involvedObject", "");
    }
    let ev_ns = e.metadata.namespace.as_deref().unwrap_or_default();
    let obj_ns = o.namespace.as_deref().unwrap_or_default();
    let ok = if obj_ns.is_empty() {
        ev_ns.is_empty() || ev_ns == "default" || (e.event_time.is_some() && ev_ns == "kube-system")
    } else {
        ev_ns.is_empty() || ev_ns == obj_ns
    };
    if !ok {
        errs.invalid(
            "involvedObject.namespace",
            q(obj_ns),
            "does not match event.namespace",
        );
    }
    if e.event_time.is_some() {
        for (f, v) in [
            ("reportingComponent", &e.reporting_component),
            ("reportingInstance", &e.reporting_instance),
            ("action", &e.action),
            ("reason", &e.reason),
        ] {
            if v.as_deref().is_none_or(str::is_empty) {
                errs.required(f, "");
            }
        }
    }
    errs.non_negative("count", e.count.map(i64::from));
}

/// Lease: positive duration, non-negative transitions, a known strategy.
pub(crate) fn lease(l: &Lease, errs: &mut Errors) {
    let Some(s) = &l.spec else { return };
    if let Some(d) = s.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.invalid("spec.leaseDurationSeconds", d, "must be greater than 0");
    }
    errs.non_negative("spec.leaseTransitions", s.lease_transitions.map(i64::from));
    errs.one_of(
        "spec.strategy",
        s.strategy.as_deref(),
        &["OldestEmulationVersion"],
    );
    if s.preferred_holder.as_deref().is_some_and(|h| !h.is_empty())
        && s.strategy.as_deref().is_none_or(str::is_empty)
    {
        errs.forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        );
    }
}

/// PodDisruptionBudget: at most one of minAvailable and maxUnavailable, each
/// a non-negative number or a percentage; a valid selector.
pub(crate) fn pod_disruption_budget(
    p: &k8s_openapi::api::policy::v1::PodDisruptionBudget,
    errs: &mut Errors,
) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let Some(s) = &p.spec else { return };
    if s.min_available.is_some() && s.max_unavailable.is_some() {
        errs.invalid(
            "spec",
            "{...}",
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (f, v) in [
        ("spec.minAvailable", &s.min_available),
        ("spec.maxUnavailable", &s.max_unavailable),
    ] {
        match v {
            Some(IntOrString::Int(n)) if *n < 0 => {
                errs.invalid(f, n, "must be greater than or equal to 0")
            }
            Some(IntOrString::String(t)) => {
                let pct = t.strip_suffix('%').and_then(|n| n.parse::<u32>().ok());
                match pct {
                    None => errs.invalid(f, q(t), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
                    Some(n) if n > 100 => errs.invalid(f, q(t), "must not be greater than 100%"),
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    if let Some(sel) = &s.selector {
        super::meta::selector("spec.selector", sel, errs);
    }
    errs.one_of(
        "spec.unhealthyPodEvictionPolicy",
        s.unhealthy_pod_eviction_policy.as_deref(),
        &["IfHealthyBudget", "AlwaysAllow"],
    );
}

/// The highest priority a user-defined PriorityClass may have.
pub(crate) const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

/// The system PriorityClasses Kubernetes defines, by name and value.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i32)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// PriorityClass: user classes stay at or below 1e9; the `system-` names are
/// reserved for Kubernetes' own classes, with their own values.
pub(crate) fn priority_class(
    pc: &k8s_openapi::api::scheduling::v1::PriorityClass,
    errs: &mut Errors,
) {
    let name = pc.metadata.name.as_deref().unwrap_or_default();
    if name.starts_with("system-") {
        match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => errs.forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved for system use only",
            ),
            Some((_, value)) if *value != pc.value => errs.forbidden(
                "value",
                &format!("value of {name} PriorityClass must be {value}"),
            ),
            Some(_) => {}
        }
    } else if pc.value > HIGHEST_USER_PRIORITY {
        errs.forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        );
    }
    errs.one_of(
        "preemptionPolicy",
        pc.preemption_policy.as_deref(),
        &["Never", "PreemptLowerPriority"],
    );
}

/// PriorityClass updates: the value and the preemption policy stay.
pub(crate) fn priority_class_update(
    new: &k8s_openapi::api::scheduling::v1::PriorityClass,
    old: &k8s_openapi::api::scheduling::v1::PriorityClass,
    errs: &mut Errors,
) {
    if new.value != old.value {
        errs.forbidden("value", "may not be changed in an update.");
    }
    errs.immutable(
        "preemptionPolicy",
        &new.preemption_policy,
        &old.preemption_policy,
    );
}

/// LimitRange: known item types, and quantities that parse.
pub(crate) fn limit_range(lr: &k8s_openapi::api::core::v1::LimitRange, errs: &mut Errors) {
    let Some(spec) = &lr.spec else {
        return errs.required("spec", "");
    };
    let types = ["Container", "PersistentVolumeClaim", "Pod"];
    for (i, item) in spec.limits.iter().enumerate() {
        let p = format!("spec.limits[{i}]");
        if !types.contains(&item.type_.as_str()) {
            errs.not_supported(&format!("{p}.type"), &item.type_, &types);
        }
        let fields = [
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("max", &item.max),
            ("min", &item.min),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        for (field, map) in fields {
            for (k, v) in map.iter().flatten() {
                if ferry_api::quantity::Quantity::parse(&v.0).is_none() {
                    errs.invalid(
                        &format!("{p}.{field}[{k}]"),
                        q(&v.0),
                        ferry_api::quantity::QUANTITY_SYNTAX,
                    );
                }
            }
        }
    }
}

/// ResourceQuota: each hard limit a non-negative quantity; scopes are not
/// carried out by ferry's quota, so a scoped quota is refused rather than
/// enforced wrongly.
pub(crate) fn resource_quota(rq: &k8s_openapi::api::core::v1::ResourceQuota, errs: &mut Errors) {
    let Some(spec) = &rq.spec else { return };
    for (k, v) in spec.hard.iter().flatten() {
        let p = format!("spec.hard[{k}]");
        match ferry_api::quantity::Quantity::parse(&v.0) {
            None => errs.invalid(&p, q(&v.0), ferry_api::quantity::QUANTITY_SYNTAX),
            Some(n) if n < ferry_api::quantity::Quantity::ZERO => {
                errs.invalid(&p, q(&v.0), "must be greater than or equal to 0")
            }
            Some(_) => {}
        }
    }
    if spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) || spec.scope_selector.is_some() {
        errs.forbidden("spec.scopes", "quota scopes are not supported by ferry yet");
    }
}
