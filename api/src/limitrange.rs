//! LimitRange admission for containers, as Kubernetes' `LimitRanger` plugin:
//! a `type: Container` item's `defaultRequest` and `default` fill in what a
//! container leaves out, then its `min` and `max` bound each container's
//! requests and limits, with Kubernetes' messages. Pure: the API server
//! reads the namespace's LimitRanges and calls [`apply`].

use crate::quantity::Quantity;
use serde_json::{Map, Value};

fn quantity(v: Option<&Value>) -> Option<Quantity> {
    v.and_then(Value::as_str).and_then(Quantity::parse)
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Fills in `pod`'s containers' requests and limits from the `type:
/// Container` items of `ranges` (LimitRange objects), then checks them;
/// `Err` holds every violation in Kubernetes' words.
pub fn apply(pod: &mut Value, ranges: &[Value]) -> Result<(), Vec<String>> {
    let items: Vec<&Value> = ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("Container"))
        .collect();
    if items.is_empty() {
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
            for item in &items {
                default_into(c, item);
            }
            for item in &items {
                check(c, item, &mut errors);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
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

fn check(c: &Value, item: &Value, errors: &mut Vec<String>) {
    let res = c.get("resources");
    let get = |key: &str, name: &str| res.and_then(|r| r.get(key)).and_then(|l| l.get(name));
    if let Some(Value::Object(min)) = item.get("min") {
        for (name, m) in min {
            let (Some(bound), shown) = (quantity(Some(m)), text(Some(m))) else {
                continue;
            };
            match quantity(get("requests", name)) {
                None => errors.push(format!(
                    "minimum {name} usage per Container is {shown}.  No request is specified"
                )),
                Some(r) if r < bound => errors.push(format!(
                    "minimum {name} usage per Container is {shown}, but request is {}",
                    text(get("requests", name))
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(Value::Object(max)) = item.get("max") {
        for (name, m) in max {
            let (Some(bound), shown) = (quantity(Some(m)), text(Some(m))) else {
                continue;
            };
            match quantity(get("limits", name)) {
                None => errors.push(format!(
                    "maximum {name} usage per Container is {shown}.  No limit is specified"
                )),
                Some(l) if l > bound => errors.push(format!(
                    "maximum {name} usage per Container is {shown}, but limit is {}",
                    text(get("limits", name))
                )),
                Some(_) => {}
            }
        }
    }
}

/// The refusal of a pod by its violations, as Kubernetes' aggregate prints it.
pub fn refusal(pod_name: &str, errors: &[String]) -> String {
    let joined = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    };
    format!("pods {pod_name:?} is forbidden: {joined}")
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
            refusal("p", &e),
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
        assert_eq!(refusal("p", &e), "pods \"p\" is forbidden: maximum memory usage per Container is 1Gi.  No limit is specified");
    }
}
