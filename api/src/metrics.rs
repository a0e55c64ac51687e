//! Resource metrics (`metrics.k8s.io/v1beta1`), as metrics-server serves them:
//! what a node reports ([`NodeReport`]), the latest report per node that every
//! master keeps in memory ([`MetricsStore`], never in Raft), and the
//! `NodeMetrics` / `PodMetrics` objects built from it.
//!
//! A node samples its containers' cgroups and sends one [`NodeReport`] to every
//! master it knows, so each master answers alone.

use crate::object::{ListOptions, ObjectResponse, Status};
use crate::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The metrics API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its version.
pub const VERSION: &str = "v1beta1";
/// `ObjectRequest.resource` for NodeMetrics (the core `nodes` is taken).
pub const NODES: &str = "nodes.metrics.k8s.io";
/// `ObjectRequest.resource` for PodMetrics.
pub const PODS: &str = "pods.metrics.k8s.io";

/// How long a node's report is served after it arrived: a node that stopped
/// reporting (dead, cut off) has no metrics after this.
pub const STALE: Duration = Duration::from_secs(90);

/// One container's usage over the report's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// CPU, in nanocores (billionths of a core) averaged over the window.
    pub cpu_nanocores: u64,
    /// Memory working set in bytes (usage less inactive file pages).
    pub memory_bytes: u64,
}

/// One pod's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsage {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The pod's labels (selectors on PodMetrics match them).
    pub labels: BTreeMap<String, String>,
    /// Its running containers.
    pub containers: Vec<ContainerUsage>,
}

/// What a node sends every sampling interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's name (must be the sender's identity).
    pub node: String,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// When the window ended (RFC 3339).
    pub timestamp: String,
    /// The window's length in milliseconds.
    pub window_ms: u64,
    /// Whole-node CPU, nanocores.
    pub cpu_nanocores: u64,
    /// Whole-node memory working set, bytes.
    pub memory_bytes: u64,
    /// Its pods.
    pub pods: Vec<PodUsage>,
}

/// CPU use in nanocores from two readings of a cumulative counter (ns of CPU
/// time) `elapsed` apart; `None` when the counter went back (a restarted
/// container) or no time passed.
pub fn rate(before_ns: u64, after_ns: u64, elapsed: Duration) -> Option<u64> {
    let used = after_ns.checked_sub(before_ns)?;
    let el = elapsed.as_nanos();
    if el == 0 {
        return None;
    }
    u64::try_from(used as u128 * 1_000_000_000 / el).ok()
}

/// A CPU quantity as metrics-server writes it: nanocores (`123456n`), `0` for none.
pub fn cpu_quantity(nanocores: u64) -> String {
    if nanocores == 0 {
        "0".into()
    } else {
        format!("{nanocores}n")
    }
}

/// A memory quantity as metrics-server writes it: KiB (`1024Ki`), `0` for none.
pub fn memory_quantity(bytes: u64) -> String {
    if bytes == 0 {
        "0".into()
    } else {
        format!("{}Ki", bytes / 1024)
    }
}

fn window(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

fn labels_value(l: &BTreeMap<String, String>) -> Map<String, Value> {
    l.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

fn usage(cpu: u64, mem: u64) -> Value {
    json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(mem)})
}

/// The `NodeMetrics` object of a report (`now`: its creationTimestamp, as
/// metrics-server sets it to the time of the request).
pub fn node_metrics(r: &NodeReport, now: &str) -> Value {
    let mut meta = json!({"name": r.node, "creationTimestamp": now});
    if !r.labels.is_empty() {
        meta["labels"] = Value::Object(labels_value(&r.labels));
    }
    json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta,
        "timestamp": r.timestamp,
        "window": window(r.window_ms),
        "usage": usage(r.cpu_nanocores, r.memory_bytes),
    })
}

/// The `PodMetrics` object of one pod in a report.
pub fn pod_metrics(r: &NodeReport, p: &PodUsage, now: &str) -> Value {
    let mut meta = json!({"name": p.name, "namespace": p.namespace, "creationTimestamp": now});
    if !p.labels.is_empty() {
        meta["labels"] = Value::Object(labels_value(&p.labels));
    }
    let containers: Vec<Value> = p
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": usage(c.cpu_nanocores, c.memory_bytes)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta,
        "timestamp": r.timestamp,
        "window": window(r.window_ms),
        "containers": containers,
    })
}

/// The latest report of every node, with when it arrived. Cheap to clone
/// (one shared map); every master has its own.
#[derive(Debug, Default, Clone)]
pub struct MetricsStore(Arc<Mutex<HashMap<String, (Instant, NodeReport)>>>);

impl MetricsStore {
    /// Keeps `r` as its node's latest report, received at `at`.
    pub fn put(&self, r: NodeReport, at: Instant) {
        self.0
            .lock()
            .expect("metrics lock")
            .insert(r.node.clone(), (at, r));
    }

    /// The reports fresher than [`STALE`] at `now`, by node name (stale ones are dropped).
    pub fn fresh(&self, now: Instant) -> Vec<NodeReport> {
        let mut m = self.0.lock().expect("metrics lock");
        m.retain(|_, (at, _)| now.saturating_duration_since(*at) < STALE);
        let mut out: Vec<NodeReport> = m.values().map(|(_, r)| r.clone()).collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }

    /// Answers a get or list of [`NODES`] or [`PODS`] (`resource`) from the
    /// fresh reports at `now` (`stamp`: the RFC 3339 time for creationTimestamp).
    pub fn answer(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        list: &ListOptions,
        now: Instant,
        stamp: &str,
    ) -> ObjectResponse {
        serve(&self.fresh(now), resource, namespace, name, list, stamp)
    }
}

fn selector(list: &ListOptions) -> Result<LabelSelector, Status> {
    match list.label_selector.as_deref() {
        None | Some("") => Ok(LabelSelector::everything()),
        Some(s) => LabelSelector::parse(s).map_err(|e| Status::bad_request(e.to_string())),
    }
}

fn field_ok(list: &ListOptions, obj: &Value) -> Result<bool, Status> {
    match list.field_selector.as_deref() {
        None | Some("") => Ok(true),
        Some(s) => {
            let f =
                crate::selector::FieldSelector::parse(s, &["metadata.name", "metadata.namespace"])
                    .map_err(|e| Status::bad_request(e.to_string()))?;
            Ok(f.matches(obj))
        }
    }
}

/// Get or list from `reports`, as metrics-server answers: a list filtered by
/// namespace and label/field selectors; a get of a missing one is 404
/// `nodemetrics.metrics.k8s.io "<name>" not found` (`podmetrics...`).
pub fn serve(
    reports: &[NodeReport],
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    list: &ListOptions,
    stamp: &str,
) -> ObjectResponse {
    match build(reports, resource, namespace, name, list, stamp) {
        Ok(v) => ObjectResponse::ok(200, &v),
        Err(s) => s.response(),
    }
}

fn build(
    reports: &[NodeReport],
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    list: &ListOptions,
    stamp: &str,
) -> Result<Value, Status> {
    let sel = selector(list)?;
    let (kind, items): (&str, Vec<Value>) = if resource == NODES {
        let items = reports
            .iter()
            .filter(|r| name.is_none_or(|n| n == r.node))
            .filter(|r| sel.matches(&labels_value(&r.labels)))
            .map(|r| node_metrics(r, stamp))
            .collect();
        ("NodeMetrics", items)
    } else if resource == PODS {
        let mut items: Vec<Value> = reports
            .iter()
            .flat_map(|r| r.pods.iter().map(move |p| (r, p)))
            .filter(|(_, p)| namespace.is_none_or(|ns| ns == p.namespace))
            .filter(|(_, p)| name.is_none_or(|n| n == p.name))
            .filter(|(_, p)| sel.matches(&labels_value(&p.labels)))
            .map(|(r, p)| pod_metrics(r, p, stamp))
            .collect();
        items.sort_by(|a, b| {
            let k = |v: &Value| {
                (
                    v["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    v["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            };
            k(a).cmp(&k(b))
        });
        ("PodMetrics", items)
    } else {
        return Err(Status::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource {resource:?}"),
        ));
    };
    let mut kept = Vec::new();
    for i in items {
        if field_ok(list, &i)? {
            kept.push(i);
        }
    }
    let plural = format!(
        "{}metrics.{GROUP}",
        kind.trim_end_matches("Metrics").to_lowercase()
    );
    match name {
        Some(n) => kept.into_iter().next().ok_or_else(|| {
            let shown = match namespace {
                Some(ns) if resource == PODS => format!("{ns}/{n}"),
                _ => n.to_string(),
            };
            Status::new(404, "NotFound", format!("{plural} {shown:?} not found"))
        }),
        None => Ok(json!({
            "kind": format!("{kind}List"),
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": kept,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, pods: &[(&str, &str, &str, u64, u64)]) -> NodeReport {
        NodeReport {
            node: node.into(),
            labels: [("kubernetes.io/hostname".to_string(), node.to_string())].into(),
            timestamp: "2026-12-05T10:00:00Z".into(),
            window_ms: 15_000,
            cpu_nanocores: 250_000_000,
            memory_bytes: 512 << 20,
            pods: pods
                .iter()
                .map(|(ns, name, app, cpu, mem)| PodUsage {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    labels: [("app".to_string(), app.to_string())].into(),
                    containers: vec![ContainerUsage {
                        name: "c".into(),
                        cpu_nanocores: *cpu,
                        memory_bytes: *mem,
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn rates_from_cumulative_counters() {
        let s = Duration::from_secs;
        let cases = [
            (0, 1_000_000_000, s(1), Some(1_000_000_000)), // one core
            (0, 1_500_000_000, s(15), Some(100_000_000)),  // 100m
            (5, 5, s(10), Some(0)),
            (10, 5, s(10), None), // restarted: counter went back
            (0, 5, s(0), None),
        ];
        for (a, b, el, want) in cases {
            assert_eq!(rate(a, b, el), want, "{a} {b} {el:?}");
        }
    }

    #[test]
    fn quantities_as_metrics_server_writes_them() {
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(cpu_quantity(1_234_567), "1234567n");
        assert_eq!(memory_quantity(0), "0");
        assert_eq!(memory_quantity(4096 + 100), "4Ki");
        assert_eq!(window(15_000), "15s");
        assert_eq!(window(14_250), "14.250s");
    }

    #[test]
    fn node_and_pod_metrics_lists_gets_and_selectors() {
        let reports = vec![
            report("n1", &[("default", "web-1", "web", 5_000_000, 1 << 20)]),
            report(
                "n2",
                &[
                    ("default", "web-2", "web", 7_000_000, 2 << 20),
                    ("kube-system", "dns", "dns", 0, 0),
                ],
            ),
        ];
        let list = |sel: Option<&str>| ListOptions {
            label_selector: sel.map(str::to_string),
            ..Default::default()
        };
        let names = |r: ObjectResponse| -> Vec<String> {
            let v = r.json().unwrap();
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        let t = "2026-12-05T10:00:05Z";
        // (resource, namespace, selector, names)
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str]);
        let cases: &[Case] = &[
            (NODES, None, None, &["n1", "n2"]),
            (NODES, None, Some("kubernetes.io/hostname=n2"), &["n2"]),
            (PODS, None, None, &["web-1", "web-2", "dns"]),
            (PODS, Some("default"), None, &["web-1", "web-2"]),
            (PODS, None, Some("app=web"), &["web-1", "web-2"]),
            (PODS, None, Some("app!=web"), &["dns"]),
            (PODS, Some("other"), None, &[]),
        ];
        for (res, ns, sel, want) in cases {
            let r = serve(&reports, res, *ns, None, &list(*sel), t);
            assert_eq!(r.code, 200);
            assert_eq!(names(r), *want, "{res} {ns:?} {sel:?}");
        }
        let n = serve(&reports, NODES, None, Some("n1"), &list(None), t)
            .json()
            .unwrap();
        assert_eq!(n["kind"], "NodeMetrics");
        assert_eq!(n["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(n["window"], "15s");
        assert_eq!(n["timestamp"], "2026-12-05T10:00:00Z");
        assert_eq!(n["metadata"]["creationTimestamp"], t);
        assert_eq!(n["usage"]["cpu"], "250000000n");
        assert_eq!(n["usage"]["memory"], "524288Ki");
        let p = serve(
            &reports,
            PODS,
            Some("default"),
            Some("web-2"),
            &list(None),
            t,
        )
        .json()
        .unwrap();
        assert_eq!(p["kind"], "PodMetrics");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["containers"][0]["name"], "c");
        assert_eq!(p["containers"][0]["usage"]["cpu"], "7000000n");
        assert_eq!(p["containers"][0]["usage"]["memory"], "2048Ki");
        let missing = serve(
            &reports,
            PODS,
            Some("default"),
            Some("nope"),
            &list(None),
            t,
        );
        assert_eq!(missing.code, 404);
        let s: Value = missing.json().unwrap();
        assert_eq!(
            s["message"],
            "podmetrics.metrics.k8s.io \"default/nope\" not found"
        );
        let s: Value = serve(&reports, NODES, None, Some("n9"), &list(None), t)
            .json()
            .unwrap();
        assert_eq!(s["message"], "nodemetrics.metrics.k8s.io \"n9\" not found");
        let bad = serve(&reports, PODS, None, None, &list(Some("a in (")), t);
        assert_eq!(bad.code, 400);
    }

    #[test]
    fn stale_reports_are_dropped_and_newer_ones_replace_older() {
        let store = MetricsStore::default();
        let t0 = Instant::now();
        store.put(report("n1", &[]), t0);
        let mut newer = report("n1", &[("default", "a", "a", 1, 1)]);
        newer.timestamp = "2026-12-05T10:00:15Z".into();
        store.put(newer.clone(), t0 + Duration::from_secs(15));
        store.put(report("n2", &[]), t0);
        assert_eq!(store.fresh(t0 + Duration::from_secs(16)).len(), 2);
        assert_eq!(store.fresh(t0 + Duration::from_secs(16))[0], newer);
        let later = store.fresh(t0 + STALE + Duration::from_secs(1));
        assert_eq!(
            later.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
            ["n1"],
            "n2 stopped reporting"
        );
    }
}
