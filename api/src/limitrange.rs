//! LimitRange admission, as Kubernetes' `LimitRanger` plugin: a `type:
//! Container` item's `defaultRequest` and `default` fill in what a container
//! leaves out, then its `min`, `max` and `maxLimitRequestRatio` bound each
//! container's requests and limits; a `type: Pod` item bounds the sums over
//! the pod's containers (sidecars added, an init container counting when it
//! and the sidecars before it are larger, as `podRequests`); a `type:
//! PersistentVolumeClaim` item bounds a claim's requests (`storage`). Errors
//! in Kubernetes' words. Pure: the API server reads the namespace's
//! LimitRanges and calls [`apply`] or [`check_claim`].

use crate::quantity::Quantity;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

fn quantity(v: Option<&Value>) -> Option<Quantity> {
    v.and_then(Value::as_str).and_then(Quantity::parse)
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The items of `type` across `ranges` (LimitRange objects).
fn items<'a>(ranges: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|i| i.get("type").and_then(Value::as_str) == Some(kind))
        .collect()
}

/// An observed amount: the quantity and how Kubernetes prints it.
type Amounts = BTreeMap<String, (Quantity, String)>;

fn amounts(v: Option<&Value>) -> Amounts {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), (quantity(Some(v))?, text(Some(v))))))
        .collect()
}

/// Fills in `pod`'s containers' requests and limits from the `type:
/// Container` items of `ranges` (LimitRange objects), then checks them and
/// the `type: Pod` items; `Err` holds every violation in Kubernetes' words.
pub fn apply(pod: &mut Value, ranges: &[Value]) -> Result<(), Vec<String>> {
    let container_items = items(ranges, "Container");
    let pod_items = items(ranges, "Pod");
    if container_items.is_empty() && pod_items.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            for item in &container_items {
                default_into(c, item);
            }
            let requests = amounts(c.pointer("/resources/requests"));
            let limits = amounts(c.pointer("/resources/limits"));
            for item in &container_items {
                check("Container", item, &requests, &limits, &mut errors);
            }
        }
    }
    if !pod_items.is_empty() {
        let (requests, limits) = (pod_total(pod, "requests"), pod_total(pod, "limits"));
        for item in &pod_items {
            check("Pod", item, &requests, &limits, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a claim against the `type: PersistentVolumeClaim` items of
/// `ranges`: `min` and `max` bound `spec.resources.requests` (its limits are
/// not user input to LimitRanger, as in Kubernetes).
pub fn check_claim(claim: &Value, ranges: &[Value]) -> Result<(), Vec<String>> {
    let requests = amounts(claim.pointer("/spec/resources/requests"));
    let mut errors = Vec::new();
    for item in items(ranges, "PersistentVolumeClaim") {
        for (name, bound, shown) in bounds(item, "min") {
            min_constraint(
                "PersistentVolumeClaim",
                &name,
                bound,
                &shown,
                &requests,
                &Amounts::new(),
                &mut errors,
            );
        }
        for (name, bound, shown) in bounds(item, "max") {
            match requests.get(&name) {
                None => errors.push(format!(
                    "maximum {name} usage per PersistentVolumeClaim is {shown}.  No request is specified"
                )),
                Some((r, t)) if *r > bound => errors.push(format!(
                    "maximum {name} usage per PersistentVolumeClaim is {shown}, but request is {t}"
                )),
                Some(_) => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Per resource: the quantity, and its text while it is one container's
/// value copied (Kubernetes prints a copied quantity as written, a sum in
/// canonical form).
type Tally = BTreeMap<String, (Quantity, Option<String>)>;

/// `list += other`, resource by resource (Kubernetes' `addResourceList`).
fn add_into(list: &mut Tally, other: &Tally) {
    for (name, (q, t)) in other {
        match list.get_mut(name) {
            Some((sum, shown)) => {
                *sum = Quantity(sum.0 + q.0);
                *shown = None;
            }
            None => {
                list.insert(name.clone(), (*q, t.clone()));
            }
        }
    }
}

/// `list = max(list, other)`, resource by resource (`maxResourceList`).
fn max_into(list: &mut Tally, other: &Tally) {
    for (name, (q, t)) in other {
        if list.get(name).is_none_or(|(v, _)| q > v) {
            list.insert(name.clone(), (*q, t.clone()));
        }
    }
}

/// A pod's `requests` or `limits` as LimitRanger's `podRequests`/`podLimits`
/// compute them (Kubernetes 1.33, pod-level resources off): the regular
/// containers and the restartable init containers (sidecars, `restartPolicy:
/// Always`) added; each other init container runs next to the sidecars
/// declared before it, so that sum (and each sidecar's start, beside the ones
/// before it) counts when larger. `spec.overhead` is not counted: LimitRanger
/// bounds what the containers declare.
fn pod_total(pod: &Value, key: &str) -> Amounts {
    let list = |l: &str| {
        pod.pointer(&format!("/spec/{l}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let of = |c: &Value| -> Tally {
        amounts(c.pointer(&format!("/resources/{key}")))
            .into_iter()
            .map(|(name, (q, t))| (name, (q, Some(t))))
            .collect()
    };
    let mut total = Tally::new();
    for c in list("containers") {
        add_into(&mut total, &of(&c));
    }
    let mut sidecars = Tally::new();
    let mut init = Tally::new();
    for c in list("initContainers") {
        let own = of(&c);
        let at_start = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut t = own;
            add_into(&mut t, &sidecars);
            t
        };
        max_into(&mut init, &at_start);
    }
    max_into(&mut total, &init);
    total
        .into_iter()
        .map(|(name, (q, shown))| {
            let shown = shown.unwrap_or_else(|| crate::quota::format(&name, q));
            (name, (q, shown))
        })
        .collect()
}

/// `default` → limits and `defaultRequest` → requests where the container
/// has none; a request still missing takes the (possibly defaulted) limit.
fn default_into(c: &mut Value, item: &Value) {
    let resources = c.as_object_mut().map(|m| {
        m.entry("resources")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    let Some(Value::Object(res)) = resources else {
        return;
    };
    for (field, key) in [("default", "limits"), ("defaultRequest", "requests")] {
        let Some(Value::Object(defaults)) = item.get(field) else {
            continue;
        };
        let target = res.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(t) = target {
            for (name, v) in defaults {
                t.entry(name.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // A limit without a request: the request is the limit (Kubernetes' defaulting).
    let limits = res
        .get("limits")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Object(req)) = res.get_mut("requests") {
        for (name, v) in limits {
            req.entry(name).or_insert(v);
        }
    } else if !limits.is_empty() {
        res.insert("requests".into(), Value::Object(limits));
    }
    for key in ["limits", "requests"] {
        if res
            .get(key)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            res.remove(key);
        }
    }
}

/// An item's `field` (`min`, `max`, `maxLimitRequestRatio`) entries that parse.
fn bounds(item: &Value, field: &str) -> Vec<(String, Quantity, String)> {
    amounts(item.get(field))
        .into_iter()
        .map(|(k, (q, t))| (k, q, t))
        .collect()
}

fn min_constraint(
    kind: &str,
    name: &str,
    bound: Quantity,
    shown: &str,
    requests: &Amounts,
    limits: &Amounts,
    errors: &mut Vec<String>,
) {
    match requests.get(name) {
        None => errors.push(format!(
            "minimum {name} usage per {kind} is {shown}.  No request is specified"
        )),
        Some((r, t)) if *r < bound => errors.push(format!(
            "minimum {name} usage per {kind} is {shown}, but request is {t}"
        )),
        Some(_) => match limits.get(name) {
            Some((l, t)) if *l < bound => errors.push(format!(
                "minimum {name} usage per {kind} is {shown}, but limit is {t}"
            )),
            _ => {}
        },
    }
}

/// Kubernetes' `min`, `max` and `maxLimitRequestRatio` constraints of one
/// item on one container's (or the pod's) requests and limits.
fn check(kind: &str, item: &Value, requests: &Amounts, limits: &Amounts, errors: &mut Vec<String>) {
    for (name, bound, shown) in bounds(item, "min") {
        min_constraint(kind, &name, bound, &shown, requests, limits, errors);
    }
    for (name, bound, shown) in bounds(item, "max") {
        match limits.get(&name) {
            None => errors.push(format!(
                "maximum {name} usage per {kind} is {shown}.  No limit is specified"
            )),
            Some((l, t)) if *l > bound => errors.push(format!(
                "maximum {name} usage per {kind} is {shown}, but limit is {t}"
            )),
            Some(_) => match requests.get(&name) {
                Some((r, t)) if *r > bound => errors.push(format!(
                    "maximum {name} usage per {kind} is {shown}, but request is {t}"
                )),
                _ => {}
            },
        }
    }
    for (name, ratio, shown) in bounds(item, "maxLimitRequestRatio") {
        let request = requests.get(&name).map(|(q, _)| q.milli()).unwrap_or(0);
        let limit = limits.get(&name).map(|(q, _)| q.milli()).unwrap_or(0);
        if request == 0 {
            errors.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0"
            ));
        } else if limit == 0 {
            errors.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
            ));
        } else if limit * 1000 > ratio.milli() * request {
            // Go's %f: six decimals.
            let observed = limit as f64 / request as f64;
            errors.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but provided ratio is {observed:.6}"
            ));
        }
    }
}

/// The refusal of an object (`plural` and name) by its violations, as
/// Kubernetes' aggregate prints it.
pub fn refusal(plural: &str, name: &str, errors: &[String]) -> String {
    let joined = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    };
    format!("{plural} {name:?} is forbidden: {joined}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range() -> Value {
        json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m"},
            "min": {"cpu": "50m"}, "max": {"cpu": "1", "memory": "1Gi"}}]}})
    }

    fn pod(resources: Value) -> Value {
        json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}})
    }

    #[test]
    fn defaults_fill_in_what_containers_leave_out() {
        let mut p = pod(json!({}));
        apply(&mut p, &[range()]).unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"},
                   "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        // What the container says stays.
        let mut p = pod(json!({"limits": {"cpu": "800m"}}));
        apply(&mut p, &[range()]).unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "800m"
        );
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "100m"
        );
        // No ranges: nothing changes.
        let mut p = pod(json!({}));
        apply(&mut p, &[]).unwrap();
        assert_eq!(p["spec"]["containers"][0]["resources"], json!({}));
    }

    #[test]
    fn min_and_max_refuse_in_kubernetes_words() {
        let mut p = pod(json!({"limits": {"cpu": "2"}, "requests": {"cpu": "10m"}}));
        let e = apply(&mut p, &[range()]).unwrap_err();
        assert_eq!(
            e,
            [
                "minimum cpu usage per Container is 50m, but request is 10m",
                "maximum cpu usage per Container is 1, but limit is 2",
            ]
        );
        assert_eq!(
            refusal("pods", "p", &e),
            "pods \"p\" is forbidden: [minimum cpu usage per Container is 50m, but request is 10m, \
             maximum cpu usage per Container is 1, but limit is 2]"
        );
        let only_max =
            json!({"spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}});
        let e = apply(&mut pod(json!({})), &[only_max]).unwrap_err();
        assert_eq!(
            e,
            ["maximum memory usage per Container is 1Gi.  No limit is specified"]
        );
        assert_eq!(refusal("pods", "p", &e), "pods \"p\" is forbidden: maximum memory usage per Container is 1Gi.  No limit is specified");
    }

    #[test]
    fn pod_items_bound_the_sum_over_containers() {
        let lr = json!({"spec": {"limits": [{"type": "Pod",
            "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "200m"}}]}});
        let two = |a: &str, b: &str| {
            json!({"spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": a, "memory": "256Mi"}, "requests": {"cpu": a}}},
                {"name": "b", "resources": {"limits": {"cpu": b, "memory": "256Mi"}, "requests": {"cpu": b}}}]}})
        };
        // 1 + 1 cores: at the pod's maximum.
        apply(&mut two("1", "1"), std::slice::from_ref(&lr)).unwrap();
        // 1500m + 1500m = 3 cores, over it; each container alone is fine.
        assert_eq!(
            apply(&mut two("1500m", "1500m"), std::slice::from_ref(&lr)).unwrap_err(),
            ["maximum cpu usage per Pod is 2, but limit is 3"]
        );
        // 50m + 100m = 150m requested: under the pod's minimum.
        assert_eq!(
            apply(&mut two("50m", "100m"), std::slice::from_ref(&lr)).unwrap_err(),
            ["minimum cpu usage per Pod is 200m, but request is 150m"]
        );
        // A larger init container counts instead of the sum.
        let mut p = two("1", "1");
        p["spec"]["initContainers"] = json!([{"name": "i",
            "resources": {"limits": {"cpu": "5", "memory": "1Gi"}, "requests": {"cpu": "5"}}}]);
        assert_eq!(
            apply(&mut p, std::slice::from_ref(&lr)).unwrap_err(),
            ["maximum cpu usage per Pod is 2, but limit is 5"]
        );
        // Nothing stated: no limit for the pod either.
        assert_eq!(
            apply(&mut pod(json!({})), &[lr]).unwrap_err(),
            [
                "minimum cpu usage per Pod is 200m.  No request is specified",
                "maximum cpu usage per Pod is 2.  No limit is specified",
                "maximum memory usage per Pod is 1Gi.  No limit is specified",
            ]
        );
    }

    /// `podRequests`/`podLimits` with sidecars (restartable init containers),
    /// as Kubernetes 1.33's LimitRanger sums them; cpu limits and requests are
    /// the same in each case, so one figure names both.
    #[test]
    fn pod_items_count_sidecars_and_init_containers_as_kubernetes() {
        let lr = json!({"spec": {"limits": [{"type": "Pod",
            "max": {"cpu": "1500m"}, "min": {"cpu": "200m"}}]}});
        let c = |name: &str, cpu: &str| json!({"name": name, "resources": {"limits": {"cpu": cpu}, "requests": {"cpu": cpu}}});
        let side = |name: &str, cpu: &str| {
            let mut s = c(name, cpu);
            s["restartPolicy"] = json!("Always");
            s
        };
        // (containers, init containers in order, overhead, the pod's cpu or Ok)
        type Case = (
            Vec<Value>,
            Vec<Value>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            // A sidecar adds to the containers' sum: 1 + 1 = 2.
            (vec![c("a", "1")], vec![side("s", "1")], None, Some("2")),
            // 1 + 500m = 1500m: at the maximum.
            (vec![c("a", "1")], vec![side("s", "500m")], None, None),
            // An init container after a sidecar runs beside it: 500m + 1200m =
            // 1700m is more than the running pod's 1500m.
            (
                vec![c("a", "1")],
                vec![side("s", "500m"), c("i", "1200m")],
                None,
                Some("1700m"),
            ),
            // The same init container before the sidecar runs alone: 1200m <
            // 1500m, so the sum holds.
            (
                vec![c("a", "1")],
                vec![c("i", "1200m"), side("s", "500m")],
                None,
                None,
            ),
            // A lone larger init container counts as written.
            (
                vec![c("a", "1")],
                vec![c("i", "1600m")],
                None,
                Some("1600m"),
            ),
            // Sidecars alone: the second starts beside the first, 800m + 800m.
            (
                vec![],
                vec![side("s1", "800m"), side("s2", "800m")],
                None,
                Some("1600m"),
            ),
            // Pod overhead is not LimitRanger's: 1 + 500m stays within 1500m.
            (vec![c("a", "1")], vec![side("s", "500m")], Some("1"), None),
            // Requests too: 100m + a 50m sidecar = 150m, under the 200m minimum.
            (
                vec![c("a", "100m")],
                vec![side("s", "50m")],
                None,
                Some("min 150m"),
            ),
        ];
        for (i, (containers, inits, overhead, want)) in cases.into_iter().enumerate() {
            let mut p = json!({"spec": {"containers": containers, "initContainers": inits}});
            if let Some(o) = overhead {
                p["spec"]["overhead"] = json!({"cpu": o});
            }
            let got = apply(&mut p, std::slice::from_ref(&lr));
            match want {
                None => assert_eq!(got, Ok(()), "case {i}"),
                Some(w) if w.starts_with("min ") => assert_eq!(
                    got.unwrap_err(),
                    [format!(
                        "minimum cpu usage per Pod is 200m, but request is {}",
                        &w[4..]
                    )],
                    "case {i}"
                ),
                Some(w) => assert_eq!(
                    got.unwrap_err(),
                    [format!(
                        "maximum cpu usage per Pod is 1500m, but limit is {w}"
                    )],
                    "case {i}"
                ),
            }
        }
    }

    #[test]
    fn max_limit_request_ratio_per_container_and_pod() {
        let lr = |kind: &str| json!({"spec": {"limits": [{"type": kind, "maxLimitRequestRatio": {"cpu": "2"}}]}});
        let res = |limit: &str, request: &str| {
            pod(json!({"limits": {"cpu": limit}, "requests": {"cpu": request}}))
        };
        apply(&mut res("1", "500m"), &[lr("Container")]).unwrap();
        assert_eq!(
            apply(&mut res("1", "250m"), &[lr("Container")]).unwrap_err(),
            ["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]
        );
        assert_eq!(
            apply(&mut res("1", "300m"), &[lr("Pod")]).unwrap_err(),
            ["cpu max limit to request ratio per Pod is 2, but provided ratio is 3.333333"]
        );
        assert_eq!(
            apply(&mut pod(json!({"requests": {"cpu": "1"}})), &[lr("Pod")]).unwrap_err(),
            ["cpu max limit to request ratio per Pod is 2, but no limit is specified or limit is 0"]
        );
        assert_eq!(
            apply(&mut pod(json!({})), &[lr("Container")]).unwrap_err(),
            ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]
        );
        // A Container maximum also bounds the request.
        let max = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}});
        assert_eq!(
            apply(&mut res("1", "2"), &[max]).unwrap_err(),
            ["maximum cpu usage per Container is 1, but request is 2"]
        );
    }

    #[test]
    fn claims_are_bounded_by_their_storage_request() {
        let lr = json!({"spec": {"limits": [{"type": "PersistentVolumeClaim",
            "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}});
        let claim = |storage: Option<&str>| {
            let mut c = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {}}});
            if let Some(s) = storage {
                c["spec"]["resources"]["requests"] = json!({"storage": s});
            }
            c
        };
        check_claim(&claim(Some("5Gi")), std::slice::from_ref(&lr)).unwrap();
        let e = check_claim(&claim(Some("500Mi")), std::slice::from_ref(&lr)).unwrap_err();
        assert_eq!(
            e,
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert_eq!(
            refusal("persistentvolumeclaims", "data", &e),
            "persistentvolumeclaims \"data\" is forbidden: minimum storage usage per \
             PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
        assert_eq!(
            check_claim(&claim(Some("20Gi")), std::slice::from_ref(&lr)).unwrap_err(),
            ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            check_claim(&claim(None), std::slice::from_ref(&lr)).unwrap_err(),
            [
                "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
                "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified",
            ]
        );
        // Claims are not pods: Container and Pod items say nothing to them,
        // and a claim item nothing to pods.
        check_claim(&claim(Some("1Mi")), &[range()]).unwrap();
        apply(&mut pod(json!({})), &[lr]).unwrap();
    }
}
