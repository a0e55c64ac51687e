//! ResourceQuota accounting, shared by the API server's quota admission and
//! the masters' quota controller: what one object counts toward
//! ([`usage`]), whether adding it stays within a quota ([`admit`]), and the
//! quantities as Kubernetes prints them ([`format`]).
//!
//! Tracked: object counts (`pods`, `services`, `configmaps`, `secrets`,
//! `persistentvolumeclaims`, `services.nodeports`,
//! `services.loadbalancers`, and `count/<resource>[.<group>]` for every
//! kind), a non-terminal pod's `requests.cpu` (= `cpu`), `requests.memory`
//! (= `memory`), `limits.cpu`, `limits.memory`, and a claim's
//! `requests.storage`. A quota's `scopes` and `scopeSelector` ([`matches`])
//! narrow it to the pods they select (Terminating, NotTerminating,
//! BestEffort, NotBestEffort, PriorityClass, CrossNamespacePodAffinity);
//! a scoped quota counts no other kind, as Kubernetes' evaluators.

use crate::quantity::Quantity;
use serde_json::Value;
use std::collections::BTreeMap;

/// Resource names measured in milli-units (printed as `500m`, `2`).
fn milli(resource: &str) -> bool {
    resource.ends_with("cpu")
}

/// A quantity as Kubernetes prints `status.used`: cpu in cores or `m`,
/// other resources in whole units with the largest exact binary suffix.
pub fn format(resource: &str, q: Quantity) -> String {
    if milli(resource) {
        let m = q.milli();
        return if m % 1000 == 0 {
            (m / 1000).to_string()
        } else {
            format!("{m}m")
        };
    }
    ferry_config::units::binary_bytes(q.value())
}

fn one() -> Quantity {
    Quantity::parse("1").expect("1 parses")
}

fn add(map: &mut BTreeMap<String, Quantity>, k: &str, q: Quantity) {
    let e = map.entry(k.to_string()).or_insert(Quantity::ZERO);
    *e = Quantity(e.0 + q.0);
}

/// A container's `resources.<kind>.<name>` (zero when absent).
fn container_quantity(c: &Value, kind: &str, name: &str) -> Option<Quantity> {
    c.pointer(&format!("/resources/{kind}/{name}"))
        .and_then(Value::as_str)
        .and_then(Quantity::parse)
}

/// A pod's effective amount of `kind.name`: the containers' sum, or the
/// largest init container when that is more (as Kubernetes counts it).
fn pod_amount(pod: &Value, kind: &str, name: &str) -> Quantity {
    let sum = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| container_quantity(c, kind, name))
        .fold(Quantity::ZERO, |a, b| Quantity(a.0 + b.0));
    pod.pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| container_quantity(c, kind, name))
        .fold(sum, |a, b| if b > a { b } else { a })
}

/// Whether a pod still counts: not Succeeded or Failed.
fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What one object of `plural` in `group` counts toward, by resource name.
pub fn usage(plural: &str, group: &str, obj: &Value) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    if plural == "pods" && !pod_counts(obj) {
        return out;
    }
    let count = if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    };
    add(&mut out, &count, one());
    if group.is_empty()
        && matches!(
            plural,
            "pods" | "services" | "configmaps" | "secrets" | "persistentvolumeclaims"
        )
    {
        add(&mut out, plural, one());
    }
    match (group, plural) {
        ("", "pods") => {
            for (kind, name, keys) in [
                ("requests", "cpu", &["requests.cpu", "cpu"][..]),
                ("requests", "memory", &["requests.memory", "memory"][..]),
                ("limits", "cpu", &["limits.cpu"][..]),
                ("limits", "memory", &["limits.memory"][..]),
            ] {
                let q = pod_amount(obj, kind, name);
                for k in keys {
                    add(&mut out, k, q);
                }
            }
        }
        ("", "services") => match obj.pointer("/spec/type").and_then(Value::as_str) {
            Some("NodePort") => add(&mut out, "services.nodeports", one()),
            Some("LoadBalancer") => {
                add(&mut out, "services.loadbalancers", one());
                add(&mut out, "services.nodeports", one());
            }
            _ => {}
        },
        ("", "persistentvolumeclaims") => {
            let q = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(Quantity::parse)
                .unwrap_or(Quantity::ZERO);
            add(&mut out, "requests.storage", q);
        }
        _ => {}
    }
    out
}

/// The quota resources a pod's containers must each state, when the quota
/// tracks them: `(resource, container requirement)`.
const COMPUTE: &[(&str, &str, &str)] = &[
    ("requests.cpu", "requests", "cpu"),
    ("cpu", "requests", "cpu"),
    ("requests.memory", "requests", "memory"),
    ("memory", "requests", "memory"),
    ("limits.cpu", "limits", "cpu"),
    ("limits.memory", "limits", "memory"),
];

/// Checks adding `delta` (an object's [`usage`], `obj` the object) to quota
/// `name` with `hard` limits and `used` so far. `Ok(Some(used))`: within it,
/// with the new `status.used`; `Ok(None)`: the quota tracks none of it;
/// `Err`: Kubernetes' reason (`exceeded quota: ...`, `failed quota: ...`).
pub fn admit(
    name: &str,
    hard: &BTreeMap<String, String>,
    used: &BTreeMap<String, String>,
    plural: &str,
    obj: &Value,
    delta: &BTreeMap<String, Quantity>,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let tracked: Vec<&String> = delta.keys().filter(|k| hard.contains_key(*k)).collect();
    if tracked.is_empty() {
        return Ok(None);
    }
    if plural == "pods" {
        let mut missing = Vec::new();
        for (resource, kind, res_name) in COMPUTE {
            if !hard.contains_key(*resource) {
                continue;
            }
            let without: Vec<&str> = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| container_quantity(c, kind, res_name).is_none())
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect();
            if !without.is_empty() {
                missing.push(format!("{resource} for: {}", without.join(",")));
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "failed quota: {name}: must specify {}",
                missing.join("; ")
            ));
        }
    }
    let parse = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| Quantity::parse(v));
    let mut next = used.clone();
    let mut over = Vec::new();
    for k in &tracked {
        let Some(limit) = parse(hard, k) else {
            continue;
        };
        let Some(now) = parse(used, k) else {
            return Err(format!("status unknown for quota: {name}, resource: {k}"));
        };
        let want = Quantity(now.0 + delta[*k].0);
        if want > limit {
            over.push((k.to_string(), delta[*k], now, limit));
        }
        next.insert(k.to_string(), format(k, want));
    }
    if over.is_empty() {
        return Ok(Some(next));
    }
    // Each column: resource=amount, for requested, used and limited.
    let column = |pick: usize| {
        over.iter()
            .map(|(k, d, u, l)| format!("{k}={}", format(k, [*d, *u, *l][pick])))
            .collect::<Vec<_>>()
            .join(",")
    };
    Err(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        column(0),
        column(1),
        column(2),
    ))
}

/// The plural and group a `count/<resource>[.<group>]` name counts, or the
/// plain names' kinds (`pods`, `services`, ...): what the quota controller lists.
pub fn counted_kind(resource: &str) -> Option<(String, String)> {
    if let Some(rest) = resource.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((plural, group)) => (plural.to_string(), group.to_string()),
            None => (rest.to_string(), String::new()),
        });
    }
    let plural = match resource {
        "pods" | "cpu" | "memory" | "requests.cpu" | "requests.memory" | "limits.cpu"
        | "limits.memory" => "pods",
        "services" | "services.nodeports" | "services.loadbalancers" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "persistentvolumeclaims" | "requests.storage" => "persistentvolumeclaims",
        _ => return None,
    };
    Some((plural.to_string(), String::new()))
}

/// A quota's scope requirements, `(scopeName, operator, values)`: each of
/// `spec.scopes` as `Exists`, then `spec.scopeSelector.matchExpressions`.
pub fn scope_requirements(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut out: Vec<_> = strs(quota.pointer("/spec/scopes"))
        .into_iter()
        .map(|s| (s, "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        out.push((field("scopeName"), field("operator"), strs(e.get("values"))));
    }
    out
}

/// Whether `pod` is BestEffort: no container (init included) requests or
/// limits a non-zero cpu or memory (Kubernetes' QoS).
pub fn best_effort(pod: &Value) -> bool {
    !["containers", "initContainers"].iter().any(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                ["requests", "limits"].iter().any(|kind| {
                    ["cpu", "memory"].iter().any(|name| {
                        container_quantity(c, kind, name).is_some_and(|q| q > Quantity::ZERO)
                    })
                })
            })
    })
}

/// Whether a pod's (anti-)affinity terms name other namespaces.
fn cross_namespace_affinity(pod: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"));
        required.chain(preferred).any(|t| {
            t.get("namespaceSelector").is_some_and(|s| !s.is_null())
                || t.get("namespaces")
                    .and_then(Value::as_array)
                    .is_some_and(|n| !n.is_empty())
        })
    })
}

/// Whether one scope requirement selects `pod`, as Kubernetes' pod
/// evaluator: `PriorityClass` matches `spec.priorityClassName` as the label
/// selector `PriorityClass <op> (values)` over `{PriorityClass: <name>}`
/// (so `Exists` wants a name, and `DoesNotExist` matches no pod).
fn scope_selects(scope: &str, operator: &str, values: &[String], pod: &Value) -> bool {
    match scope {
        "Terminating" | "NotTerminating" => {
            let terminating = pod
                .pointer("/spec/activeDeadlineSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|s| s >= 0);
            terminating == (scope == "Terminating")
        }
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match operator {
                "Exists" => !class.is_empty(),
                "In" => values.iter().any(|v| v == class),
                "NotIn" => !values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether quota `quota` (a ResourceQuota object) covers an object of
/// `plural` in `group`: an unscoped quota covers everything; a scoped one
/// only pods every requirement selects.
pub fn matches(quota: &Value, plural: &str, group: &str, obj: &Value) -> bool {
    let requirements = scope_requirements(quota);
    if requirements.is_empty() {
        return true;
    }
    (plural, group) == ("pods", "")
        && requirements
            .iter()
            .all(|(scope, op, values)| scope_selects(scope, op, values, obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(cpu: Option<&str>, phase: &str) -> Value {
        let mut c = json!({"name": "main", "image": "busybox"});
        if let Some(cpu) = cpu {
            c["resources"] =
                json!({"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"cpu": cpu}});
        }
        json!({"spec": {"containers": [c], "initContainers": [
            {"name": "init", "resources": {"requests": {"cpu": "2"}}}]}, "status": {"phase": phase}})
    }

    #[test]
    fn objects_count_toward_their_resources() {
        let u = usage("pods", "", &pod(Some("250m"), "Running"));
        assert_eq!(format("pods", u["pods"]), "1");
        assert_eq!(format("count/pods", u["count/pods"]), "1");
        // The init container's 2 cores exceed the containers' 250m.
        assert_eq!(format("requests.cpu", u["requests.cpu"]), "2");
        assert_eq!(format("limits.cpu", u["limits.cpu"]), "250m");
        assert_eq!(format("memory", u["memory"]), "64Mi");
        assert!(usage("pods", "", &pod(None, "Succeeded")).is_empty());
        let lb = usage("services", "", &json!({"spec": {"type": "LoadBalancer"}}));
        assert_eq!(
            lb.keys().collect::<Vec<_>>(),
            [
                "count/services",
                "services",
                "services.loadbalancers",
                "services.nodeports"
            ]
        );
        let d = usage("deployments", "apps", &json!({}));
        assert_eq!(d.keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
        assert_eq!(
            counted_kind("count/deployments.apps"),
            Some(("deployments".into(), "apps".into()))
        );
        assert_eq!(
            counted_kind("limits.memory"),
            Some(("pods".into(), String::new()))
        );
        assert_eq!(counted_kind("requests.nvidia.com/gpu"), None);
    }

    #[test]
    fn a_quota_admits_until_its_limit_in_kubernetes_words() {
        let hard = map(&[("pods", "2"), ("requests.cpu", "1")]);
        let p = pod(Some("400m"), "Pending");
        let d = usage("pods", "", &p);
        let used = map(&[("pods", "1"), ("requests.cpu", "0")]);
        // The init container asks 2 cores: over the 1 core hard limit.
        assert_eq!(
            admit("q", &hard, &used, "pods", &p, &d).unwrap_err(),
            "exceeded quota: q, requested: requests.cpu=2, used: requests.cpu=0, limited: requests.cpu=1"
        );
        let mut small = p.clone();
        small["spec"]["initContainers"] = json!([]);
        let d = usage("pods", "", &small);
        let next = admit("q", &hard, &used, "pods", &small, &d)
            .unwrap()
            .unwrap();
        assert_eq!(next, map(&[("pods", "2"), ("requests.cpu", "400m")]));
        let full = map(&[("pods", "2"), ("requests.cpu", "400m")]);
        assert_eq!(
            admit("q", &hard, &full, "pods", &small, &d).unwrap_err(),
            "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
        // Containers must state what the quota tracks.
        let bare = pod(None, "Pending");
        let d = usage("pods", "", &bare);
        assert_eq!(
            admit("q", &hard, &used, "pods", &bare, &d).unwrap_err(),
            "failed quota: q: must specify requests.cpu for: main"
        );
        // A quota that tracks none of it has nothing to say; one not yet
        // counted refuses until it is.
        assert_eq!(
            admit("q", &map(&[("secrets", "1")]), &used, "pods", &small, &d),
            Ok(None)
        );
        assert_eq!(
            admit(
                "q",
                &map(&[("pods", "5")]),
                &BTreeMap::new(),
                "pods",
                &small,
                &usage("pods", "", &small)
            )
            .unwrap_err(),
            "status unknown for quota: q, resource: pods"
        );
    }

    #[test]
    fn scopes_select_the_pods_a_quota_counts() {
        let quota = |spec: Value| json!({"spec": spec});
        let best = json!({"spec": {"containers": [{"name": "c"}]}});
        let burstable = pod(Some("100m"), "Running");
        let mut deadline = best.clone();
        deadline["spec"]["activeDeadlineSeconds"] = json!(30);
        let mut high = burstable.clone();
        high["spec"]["priorityClassName"] = json!("high");
        let cases = [
            (
                json!({"scopes": ["BestEffort"]}),
                [true, false, true, false],
            ),
            (
                json!({"scopes": ["NotBestEffort"]}),
                [false, true, false, true],
            ),
            (
                json!({"scopes": ["Terminating"]}),
                [false, false, true, false],
            ),
            (
                json!({"scopes": ["NotTerminating", "NotBestEffort"]}),
                [false, true, false, true],
            ),
            (
                json!({"scopes": ["PriorityClass"]}),
                [false, false, false, true],
            ),
            (
                json!({"scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "In", "values": ["high", "mid"]}]}}),
                [false, false, false, true],
            ),
            (
                json!({"scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]}}),
                [true, true, true, false],
            ),
            (
                json!({"scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}}),
                [false, false, false, false],
            ),
            (json!({"hard": {"pods": "1"}}), [true, true, true, true]),
        ];
        let pods = [&best, &burstable, &deadline, &high];
        for (spec, want) in cases {
            let q = quota(spec.clone());
            let got: Vec<bool> = pods.iter().map(|p| matches(&q, "pods", "", p)).collect();
            assert_eq!(got, want, "{spec}");
        }
        // A scoped quota counts no other kind; an unscoped one does.
        let scoped = quota(json!({"scopes": ["NotBestEffort"]}));
        assert!(!matches(&scoped, "configmaps", "", &json!({})));
        assert!(matches(&quota(json!({})), "configmaps", "", &json!({})));
        assert!(best_effort(&json!({"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "0"}}}]}})));
        let mut cross = best.clone();
        cross["spec"]["affinity"] = json!({"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "k", "namespaces": ["other"]}]}});
        let q = quota(json!({"scopes": ["CrossNamespacePodAffinity"]}));
        assert!(matches(&q, "pods", "", &cross));
        assert!(!matches(&q, "pods", "", &best));
    }
}
