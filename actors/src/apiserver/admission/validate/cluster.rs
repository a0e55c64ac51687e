//! Namespace, Node, ServiceAccount, Event and Lease.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, ServiceAccount};

use super::meta::{label_value, qualified_name, qualified_name_errors};
use crate::apiserver::admission::field::{at, json, q, Errors};

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

type Quantities = Option<
    std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
>;

/// A LimitRange item's parsed entry `k` of one of its maps, with its text.
fn parsed(m: &Quantities, k: &str) -> Option<(ferry_api::quantity::Quantity, String)> {
    let v = m.as_ref()?.get(k)?;
    Some((ferry_api::quantity::Quantity::parse(&v.0)?, v.0.clone()))
}

/// LimitRange: known item types, each once; quantities that parse; no
/// defaults for `Pod` items; a `PersistentVolumeClaim` item bounding
/// `storage`; min not above max and ratios not below 1 (Kubernetes' words).
pub(crate) fn limit_range(lr: &k8s_openapi::api::core::v1::LimitRange, errs: &mut Errors) {
    use ferry_api::quantity::Quantity;
    let Some(spec) = &lr.spec else {
        return errs.required("spec", "");
    };
    let types = ["Container", "PersistentVolumeClaim", "Pod"];
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in spec.limits.iter().enumerate() {
        let p = format!("spec.limits[{i}]");
        if !types.contains(&item.type_.as_str()) {
            errs.not_supported(&format!("{p}.type"), &item.type_, &types);
        }
        if !seen.insert(item.type_.clone()) {
            errs.duplicate(&format!("{p}.type"), q(&item.type_));
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
                if Quantity::parse(&v.0).is_none() {
                    errs.invalid(
                        &format!("{p}.{field}[{k}]"),
                        q(&v.0),
                        ferry_api::quantity::QUANTITY_SYNTAX,
                    );
                }
            }
        }
        if item.type_ == "Pod" {
            for (field, map) in [
                ("default", &item.default),
                ("defaultRequest", &item.default_request),
            ] {
                if map.as_ref().is_some_and(|m| !m.is_empty()) {
                    errs.forbidden(
                        &format!("{p}.{field}"),
                        "may not be specified when `type` is 'Pod'",
                    );
                }
            }
        }
        for (k, max) in item.max.iter().flatten() {
            let (Some((lo, lo_text)), Some(hi)) = (parsed(&item.min, k), Quantity::parse(&max.0))
            else {
                continue;
            };
            if lo > hi {
                errs.invalid(
                    &format!("{p}.min[{k}]"),
                    q(&lo_text),
                    &format!("min value {lo_text} is greater than max value {}", max.0),
                );
            }
        }
        for (k, ratio) in item.max_limit_request_ratio.iter().flatten() {
            if Quantity::parse(&ratio.0).is_some_and(|r| r < Quantity::parse("1").expect("1")) {
                errs.invalid(
                    &format!("{p}.maxLimitRequestRatio[{k}]"),
                    q(&ratio.0),
                    &format!("ratio {} is less than 1", ratio.0),
                );
            }
        }
        if item.type_ == "PersistentVolumeClaim"
            && parsed(&item.min, "storage").is_none()
            && parsed(&item.max, "storage").is_none()
        {
            errs.required(
                &format!("{p}.limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            );
        }
    }
}

/// ResourceQuota: each hard limit a non-negative quantity; scopes known,
/// valid for every standard resource the quota limits, not conflicting, and
/// selector operators fit for their scope (Kubernetes' scope checks).
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
    let hard: Vec<&str> = spec
        .hard
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let conflicting = |set: &[&str]| {
        [
            ["BestEffort", "NotBestEffort"],
            ["Terminating", "NotTerminating"],
        ]
        .iter()
        .filter(|pair| pair.iter().all(|s| set.contains(s)))
        .count()
    };
    if let Some(scopes) = spec.scopes.as_ref().filter(|s| !s.is_empty()) {
        let shown = format!(
            "[]core.ResourceQuotaScope{{{}}}",
            scopes.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        );
        for scope in scopes {
            if !STANDARD_SCOPES.contains(&scope.as_str()) {
                errs.invalid("spec.scopes", &shown, "unsupported scope");
            }
            for k in &hard {
                if !scope_valid_for(scope, k) {
                    errs.invalid(
                        "spec.scopes",
                        &shown,
                        "unsupported scope applied to resource",
                    );
                }
            }
        }
        let set: Vec<&str> = scopes.iter().map(String::as_str).collect();
        for _ in 0..conflicting(&set) {
            errs.invalid("spec.scopes", &shown, "conflicting scopes");
        }
    }
    if let Some(selector) = &spec.scope_selector {
        let p = "spec.scopeSelector.matchExpressions";
        let shown = json(selector);
        let exprs = selector.match_expressions.iter().flatten();
        for e in exprs.clone() {
            if !STANDARD_SCOPES.contains(&e.scope_name.as_str()) {
                errs.invalid(
                    &format!("{p}.scopeName"),
                    q(&e.scope_name),
                    "unsupported scope",
                );
            }
            for k in &hard {
                if !scope_valid_for(&e.scope_name, k) {
                    errs.invalid(p, &shown, "unsupported scope applied to resource");
                }
            }
            if e.scope_name != "PriorityClass" && e.operator != "Exists" {
                errs.invalid(
                    &format!("{p}.operator"),
                    q(&e.operator),
                    "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, \
                     ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, \
                     ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
                );
            }
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => errs.required(
                    &format!("{p}.values"),
                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                ),
                "Exists" | "DoesNotExist" if !values.is_empty() => errs.invalid(
                    &format!("{p}.values"),
                    json(&values),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                _ => errs.invalid(
                    &format!("{p}.operator"),
                    q(&e.operator),
                    "not a valid selector operator",
                ),
            }
        }
        let set: Vec<&str> = exprs.map(|e| e.scope_name.as_str()).collect();
        for _ in 0..conflicting(&set) {
            errs.invalid(p, &shown, "conflicting scopes");
        }
    }
}

/// ResourceQuota updates: the scopes stay.
pub(crate) fn resource_quota_update(
    new: &k8s_openapi::api::core::v1::ResourceQuota,
    old: &k8s_openapi::api::core::v1::ResourceQuota,
    errs: &mut Errors,
) {
    let scopes = |r: &k8s_openapi::api::core::v1::ResourceQuota| {
        let mut s: Vec<String> = r
            .spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default();
        s.sort();
        s.dedup();
        s
    };
    if scopes(new) != scopes(old) {
        let now = new
            .spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default();
        errs.invalid("spec.scopes", json(&now), "field is immutable");
    }
}

/// The scopes Kubernetes knows.
const STANDARD_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Kubernetes' standard quota resource names (others, such as `count/...`,
/// pass any scope).
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Kubernetes' `IsResourceQuotaScopeValidForResource` (for standard names):
/// BestEffort limits only `pods`; the other pod scopes `pods` and compute.
fn scope_valid_for(scope: &str, resource: &str) -> bool {
    let standard = STANDARD_QUOTA_RESOURCES.contains(&resource)
        || resource.starts_with("hugepages-")
        || resource.starts_with("requests.hugepages-");
    if !standard {
        return true;
    }
    let compute = [
        "cpu",
        "memory",
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.memory",
    ];
    match scope {
        "BestEffort" => resource == "pods",
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => resource == "pods" || compute.contains(&resource),
        _ => true,
    }
}
