//! What a pod asks for: Kubernetes' `PodRequests` (the larger of the running
//! containers' sum and the peak of the init containers, sidecars included,
//! plus the pod overhead), in milli-units per resource name.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The milli-units of a quantity, 0 when it cannot be read: a malformed
/// quantity never panics the scheduler (admission refuses them anyway).
pub(crate) fn milli_or_zero(s: &str) -> i128 {
    ferry_api::quantity::Quantity::parse(s).map_or(0, ferry_api::quantity::Quantity::milli)
}

/// The cpu request assumed for scoring when a container sets none (100m).
const DEFAULT_MILLI_CPU: i128 = 100;
/// The memory request assumed for scoring when a container sets none (200Mi).
const DEFAULT_MEMORY: i128 = 200 * 1024 * 1024 * 1000;

/// Amounts per resource name, in milli-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resources(pub(crate) BTreeMap<String, i128>);

impl Resources {
    /// Reads a Kubernetes resource list; unreadable quantities count as 0.
    pub(crate) fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        Resources(
            list.into_iter()
                .flatten()
                .map(|(k, q)| (k.clone(), milli_or_zero(&q.0)))
                .collect(),
        )
    }

    /// The amount of `name` (0 when absent).
    pub(crate) fn get(&self, name: &str) -> i128 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Adds `other` resource by resource.
    pub(crate) fn add(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Raises each resource to at least `other`'s amount.
    pub(crate) fn max_with(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// A container's requests, limits standing in for requests it does not set
/// (API defaulting does this; doing it again keeps un-defaulted pods honest).
pub(crate) fn container_requests(c: &Container) -> Resources {
    let res = c.resources.as_ref();
    let mut r = Resources::from_list(res.and_then(|r| r.requests.as_ref()));
    for (k, v) in Resources::from_list(res.and_then(|r| r.limits.as_ref())).0 {
        r.0.entry(k).or_insert(v);
    }
    r
}

/// The requests the scheduler scores with: cpu and memory only, with
/// Kubernetes' defaults for a container that sets none, so best-effort pods
/// still spread instead of piling onto one node.
pub(crate) fn container_nonzero(c: &Container) -> Resources {
    let r = container_requests(c);
    let cpu = r.0.get("cpu").copied().unwrap_or(DEFAULT_MILLI_CPU);
    let memory = r.0.get("memory").copied().unwrap_or(DEFAULT_MEMORY);
    Resources(BTreeMap::from([
        ("cpu".into(), cpu),
        ("memory".into(), memory),
    ]))
}

/// A pod's effective requests, with `per_container` reading each container.
pub(crate) fn pod_requests(pod: &Pod, per_container: fn(&Container) -> Resources) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    spec.containers
        .iter()
        .for_each(|c| total.add(&per_container(c)));
    // Sidecars (restartable init containers) run beside everything started
    // after them; a plain init container runs beside the sidecars before it.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = per_container(c);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_peak.max_with(&r);
    }
    total.max_with(&init_peak);
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn malformed_quantities_count_as_zero() {
        assert_eq!(milli_or_zero("lots"), 0);
        assert_eq!(milli_or_zero("250m"), 250);
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    fn c(requests: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": requests}})
    }

    #[test]
    fn pod_requests_follow_kubernetes() {
        let cases = [
            (
                "containers add up",
                json!({"containers": [c(json!({"cpu": "100m"})), c(json!({"cpu": "250m", "memory": "1Mi"}))]}),
                350,
                1024 * 1024 * 1000,
            ),
            (
                "a big init container wins",
                json!({"containers": [c(json!({"cpu": "100m"}))],
                       "initContainers": [c(json!({"cpu": "2"}))]}),
                2000,
                0,
            ),
            (
                "sidecars run beside containers and later init containers",
                json!({"containers": [c(json!({"cpu": "100m"}))],
                       "initContainers": [
                           {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                           c(json!({"cpu": "250m"}))]}),
                450,
                0,
            ),
            (
                "limits stand in for requests, overhead adds",
                json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Ki"}, "requests": {"memory": "1"}}}],
                       "overhead": {"cpu": "10m"}}),
                1010,
                1000,
            ),
            (
                "malformed quantities are zero",
                json!({"containers": [c(json!({"cpu": "lots"}))]}),
                0,
                0,
            ),
        ];
        for (name, spec, cpu, memory) in cases {
            let r = pod_requests(&pod(spec), container_requests);
            assert_eq!((r.get("cpu"), r.get("memory")), (cpu, memory), "{name}");
        }
    }

    #[test]
    fn nonzero_requests_default_cpu_and_memory() {
        let p = pod(json!({"containers": [c(json!({})), c(json!({"cpu": "1"}))]}));
        let r = pod_requests(&p, container_nonzero);
        assert_eq!(r.get("cpu"), 1000 + DEFAULT_MILLI_CPU);
        assert_eq!(r.get("memory"), 2 * DEFAULT_MEMORY);
    }
}
