//! Each kind's `get` columns and cells, as Kubernetes' printers define them.
//!
//! Layout: this file (columns, headers, dispatch, workloads), `definitions`
//! (each kind's column definitions), `pod` (the pod rules), `network`
//! (services, endpoints), `node` (nodes, events).

mod definitions;
mod network;
mod node;
mod pod;

pub use definitions::definitions;
pub(crate) use definitions::{CREATION_TIMESTAMP, NAME};
pub use network::{endpoints, endpoints_of_port, service_ports};
use network::{service_cluster_ip, service_external_ip};
use node::{event, node, node_address};

use super::age::{age, human_duration};
use super::{int, labels_string, list, selector_string, text};
use jiff::Timestamp;
use serde_json::Value;
use std::fmt;

/// A column of a kind's table: Kubernetes' `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human-readable name ("Name", "Up-to-date"); kubectl prints it upper-cased.
    pub name: &'static str,
    /// OpenAPI type: "string", "integer", "boolean", "date".
    pub type_: &'static str,
    /// OpenAPI format ("name" for the object's name column), or "".
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for the default columns, 1 for the `-o wide` ones.
    pub priority: i32,
}

/// One cell of a row: text, or an integer where Kubernetes' printers put an
/// `int64` (the column's declared type may still say "string").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A string cell.
    Text(String),
    /// An integer cell.
    Int(i64),
    /// A boolean cell (`Global-Default`).
    Bool(bool),
}

impl Cell {
    /// The cell as a JSON value, as it appears in a Table's `cells`.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::from(s.as_str()),
            Cell::Int(n) => Value::from(*n),
            Cell::Bool(b) => Value::from(*b),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Int(n) => write!(f, "{n}"),
            Cell::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// The header `ferry get` prints for a kind (kubectl's: the column names
/// upper-cased); `wide` adds the priority-1 columns. NAME and AGE for a kind
/// without columns.
pub fn header(kind: &str, wide: bool) -> Vec<String> {
    match definitions(kind) {
        Some(cols) => cols
            .iter()
            .filter(|c| wide || c.priority == 0)
            .map(|c| c.name.to_ascii_uppercase())
            .collect(),
        None => vec!["NAME".to_string(), "AGE".to_string()],
    }
}

/// One object's cells, in [`header`]'s order; `wide` adds the priority-1 cells.
pub fn cells(kind: &str, o: &Value, wide: bool, now: Timestamp) -> Vec<Cell> {
    let name = Cell::from(text(o, "/metadata/name"));
    let created = Cell::from(age(text(o, "/metadata/creationTimestamp"), now));
    let n = |ptr: &str| Cell::Int(int(o, ptr));
    let mut row: Vec<Cell> = match kind {
        "Pod" => return pod::cells(o, wide, now),
        "Event" => return event(o, wide, now),
        "Deployment" => vec![
            name,
            format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)).into(),
            n("/status/updatedReplicas"),
            n("/status/availableReplicas"),
            created,
        ],
        "ReplicaSet" | "ReplicationController" => vec![
            name,
            replicas(o).into(),
            n("/status/replicas"),
            n("/status/readyReplicas"),
            created,
        ],
        "DaemonSet" => vec![
            name,
            n("/status/desiredNumberScheduled"),
            n("/status/currentNumberScheduled"),
            n("/status/numberReady"),
            n("/status/updatedNumberScheduled"),
            n("/status/numberAvailable"),
            labels_string(o.pointer("/spec/template/spec/nodeSelector")).into(),
            created,
        ],
        "StatefulSet" => vec![
            name,
            format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)).into(),
            created,
        ],
        "Job" => vec![
            name,
            job_status(o).into(),
            job_completions(o).into(),
            job_duration(o, now).into(),
            created,
        ],
        "CronJob" => vec![
            name,
            text(o, "/spec/schedule").into(),
            or_none(text(o, "/spec/timeZone")).into(),
            match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            }
            .into(),
            list(o, "/status/active").len().into(),
            match o
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
            {
                Some(t) => age(t, now),
                None => "<none>".to_string(),
            }
            .into(),
            created,
        ],
        "HorizontalPodAutoscaler" => vec![
            name,
            format!(
                "{}/{}",
                text(o, "/spec/scaleTargetRef/kind"),
                text(o, "/spec/scaleTargetRef/name")
            )
            .into(),
            hpa_targets(o).into(),
            match o.pointer("/spec/minReplicas").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => "<unset>".to_string(),
            }
            .into(),
            int(o, "/spec/maxReplicas").into(),
            int(o, "/status/currentReplicas").into(),
            created,
        ],
        "Service" => vec![
            name,
            text(o, "/spec/type").into(),
            service_cluster_ip(o).into(),
            service_external_ip(o, wide).into(),
            or_none(&service_ports(o)).into(),
            created,
        ],
        "Endpoints" => vec![name, endpoints(o).into(), created],
        "EndpointSlice" => vec![
            name,
            text(o, "/addressType").into(),
            network::slice_ports(o).into(),
            network::slice_endpoints(o).into(),
            created,
        ],
        "NetworkPolicy" => vec![
            name,
            or_none(&selector_string(o.pointer("/spec/podSelector"))).into(),
            created,
        ],
        "ConfigMap" => vec![
            name,
            (keys(o, "/data") + keys(o, "/binaryData")).into(),
            created,
        ],
        "Secret" => vec![
            name,
            text(o, "/type").into(),
            keys(o, "/data").into(),
            created,
        ],
        "ServiceAccount" => vec![name, list(o, "/secrets").len().into(), created],
        "Namespace" => vec![name, text(o, "/status/phase").into(), created],
        "Node" => node(o, created),
        "Lease" => vec![name, text(o, "/spec/holderIdentity").into(), created],
        "ControllerRevision" => vec![name, controller_name(o).into(), n("/revision"), created],
        "PriorityClass" => vec![
            name,
            int(o, "/value").into(),
            Cell::Bool(o.pointer("/globalDefault") == Some(&Value::Bool(true))),
            created,
            text(o, "/preemptionPolicy").into(),
        ],
        "Role" | "ClusterRole" | "LimitRange" => vec![
            name,
            super::server_table::created_at(text(o, "/metadata/creationTimestamp")).into(),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            format!("{}/{}", text(o, "/roleRef/kind"), text(o, "/roleRef/name")).into(),
            created,
        ],
        "PersistentVolumeClaim" => {
            let bound = !text(o, "/spec/volumeName").is_empty();
            vec![
                name,
                terminating_or(o, "/status/phase").into(),
                text(o, "/spec/volumeName").into(),
                if bound {
                    text(o, "/status/capacity/storage")
                } else {
                    ""
                }
                .into(),
                if bound {
                    access_modes(o, "/status/accessModes")
                } else {
                    String::new()
                }
                .into(),
                claim_class(o).into(),
                unset(text(o, "/spec/volumeAttributesClassName")).into(),
                created,
            ]
        }
        "PersistentVolume" => {
            let claim = match o.pointer("/spec/claimRef") {
                Some(c) => format!("{}/{}", text(c, "/namespace"), text(c, "/name")),
                None => String::new(),
            };
            vec![
                name,
                text(o, "/spec/capacity/storage").into(),
                access_modes(o, "/spec/accessModes").into(),
                text(o, "/spec/persistentVolumeReclaimPolicy").into(),
                terminating_or(o, "/status/phase").into(),
                claim.into(),
                claim_class(o).into(),
                unset(text(o, "/spec/volumeAttributesClassName")).into(),
                text(o, "/status/reason").into(),
                created,
            ]
        }
        "Ingress" => {
            let rules = list(o, "/spec/rules");
            let mut hosts: Vec<&str> = rules
                .iter()
                .map(|r| text(r, "/host"))
                .filter(|h| !h.is_empty())
                .collect();
            hosts.dedup();
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            };
            let addresses: Vec<&str> = list(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .collect();
            let ports = if list(o, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name,
                or_none(text(o, "/spec/ingressClassName")).into(),
                hosts.into(),
                addresses.join(",").into(),
                ports.into(),
                created,
            ]
        }
        "IngressClass" => {
            let params = match o.pointer("/spec/parameters") {
                Some(p) => {
                    let group = text(p, "/apiGroup");
                    let kind = if group.is_empty() {
                        text(p, "/kind").to_string()
                    } else {
                        format!("{}.{group}", text(p, "/kind"))
                    };
                    format!("{kind}/{}", text(p, "/name"))
                }
                None => "<none>".to_string(),
            };
            vec![
                name,
                text(o, "/spec/controller").into(),
                params.into(),
                created,
            ]
        }
        "ResourceQuota" => {
            // kubectl's `used/hard` pairs: limits.* under LIMIT, the rest under REQUEST.
            let hard = o
                .pointer("/status/hard")
                .or_else(|| o.pointer("/spec/hard"));
            let pairs = |limits: bool| -> String {
                let Some(Value::Object(h)) = hard else {
                    return String::new();
                };
                h.iter()
                    .filter(|(k, _)| k.starts_with("limits") == limits)
                    .map(|(k, v)| {
                        let used = o
                            .pointer("/status/used")
                            .and_then(|u| u.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or("0");
                        format!("{k}: {used}/{}", v.as_str().unwrap_or(""))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![name, created, pairs(false).into(), pairs(true).into()]
        }
        "StorageClass" => {
            let default = o
                .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true");
            let or = |ptr: &str, d: &'static str| match text(o, ptr) {
                "" => d,
                v => v,
            };
            vec![
                if default {
                    format!("{} (default)", text(o, "/metadata/name"))
                } else {
                    text(o, "/metadata/name").to_string()
                }
                .into(),
                text(o, "/provisioner").into(),
                or("/reclaimPolicy", "Delete").into(),
                or("/volumeBindingMode", "Immediate").into(),
                Cell::Bool(o.pointer("/allowVolumeExpansion") == Some(&Value::Bool(true))),
                created,
            ]
        }
        "PodDisruptionBudget" => {
            // An int or a percentage; N/A when the other field is set.
            let bound = |ptr: &str| match o.pointer(ptr) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".to_string(),
            };
            vec![
                name,
                bound("/spec/minAvailable").into(),
                bound("/spec/maxUnavailable").into(),
                int(o, "/status/disruptionsAllowed").into(),
                created,
            ]
        }
        _ => vec![name, created],
    };
    if wide {
        row.extend(wide_cells(kind, o).into_iter().map(Cell::from));
    }
    row
}

/// The phase, or `Terminating` once deletion started (claims and volumes).
fn terminating_or<'a>(o: &'a Value, phase: &str) -> &'a str {
    match o.pointer("/metadata/deletionTimestamp") {
        Some(Value::String(_)) => "Terminating",
        _ => text(o, phase),
    }
}

/// `<unset>` for an empty value.
fn unset(s: &str) -> &str {
    if s.is_empty() {
        "<unset>"
    } else {
        s
    }
}

/// A claim's or volume's class: the beta annotation, else `storageClassName`.
fn claim_class(o: &Value) -> &str {
    match o
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
    {
        Some(c) => c,
        None => text(o, "/spec/storageClassName"),
    }
}

/// Access modes abbreviated in Kubernetes' order: `RWO,ROX,RWX,RWOP`.
fn access_modes(o: &Value, ptr: &str) -> String {
    let modes = list(o, ptr);
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, a)| *a)
    .collect::<Vec<_>>()
    .join(",")
}

/// kubectl's TARGETS of an autoscaler: `cpu: 40%/50%` per metric (current
/// `<unknown>` until measured), at most two then `+ N more...`, `<none>` for none.
fn hpa_targets(o: &Value) -> String {
    let specs: &[Value] = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses: &[Value] = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut out = Vec::new();
    for (i, m) in specs.iter().enumerate() {
        let cur = statuses.get(i).and_then(|s| s.pointer("/resource/current"));
        let r = &m["resource"];
        let name = r["name"].as_str().unwrap_or("");
        let t = match m["type"].as_str() {
            Some("Resource") => {
                if let Some(v) = r.pointer("/target/averageValue") {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    let c = cur
                        .and_then(|c| c.get("averageValue"))
                        .and_then(Value::as_str)
                        .unwrap_or("<unknown>");
                    format!("{name}: {c}/{v}")
                } else {
                    let c = cur
                        .and_then(|c| c.get("averageUtilization"))
                        .and_then(Value::as_i64)
                        .map_or("<unknown>".to_string(), |u| format!("{u}%"));
                    let t = r
                        .pointer("/target/averageUtilization")
                        .and_then(Value::as_i64)
                        .map_or("<auto>".to_string(), |u| format!("{u}%"));
                    format!("{name}: {c}/{t}")
                }
            }
            _ => "<unknown>".into(),
        };
        out.push(t);
    }
    let more = out.len().saturating_sub(2);
    out.truncate(2);
    let mut s = out.join(", ");
    if more > 0 {
        s.push_str(&format!(" + {more} more..."));
    }
    s
}

/// The extra `-o wide` cells of the kinds that have them (after the normal ones).
fn wide_cells(kind: &str, o: &Value) -> Vec<String> {
    match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => {
            let mut c = containers(o.pointer("/spec/template/spec"));
            if kind != "StatefulSet" {
                c.push(selector_string(o.pointer("/spec/selector")));
            }
            c
        }
        // A plain map selector, as `labels.FormatLabels` prints it.
        "ReplicationController" => {
            let mut c = containers(o.pointer("/spec/template/spec"));
            c.push(labels_string(o.pointer("/spec/selector")));
            c
        }
        "CronJob" => {
            let mut c = containers(o.pointer("/spec/jobTemplate/spec/template/spec"));
            c.push(match o.pointer("/spec/jobTemplate/spec/selector") {
                Some(s) => selector_string(Some(s)),
                None => "<none>".to_string(),
            });
            c
        }
        "Service" => vec![labels_string(o.pointer("/spec/selector"))],
        "PersistentVolumeClaim" | "PersistentVolume" => {
            vec![unset(text(o, "/spec/volumeMode")).to_string()]
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            // `rbac.SubjectsStrings`: users, groups, then service accounts as namespace/name.
            let subjects = list(o, "/subjects");
            let of = |k: &str| {
                let names: Vec<String> = subjects
                    .iter()
                    .filter(|s| text(s, "/kind") == k)
                    .map(|s| match k {
                        "ServiceAccount" => {
                            format!("{}/{}", text(s, "/namespace"), text(s, "/name"))
                        }
                        _ => text(s, "/name").to_string(),
                    })
                    .collect();
                names.join(", ")
            };
            vec![of("User"), of("Group"), of("ServiceAccount")]
        }
        "Node" => {
            let info = |f: &str| or_unknown(text(o, &format!("/status/nodeInfo/{f}")));
            vec![
                node_address(o, "InternalIP"),
                node_address(o, "ExternalIP"),
                info("osImage"),
                info("kernelVersion"),
                info("containerRuntimeVersion"),
            ]
        }
        _ => Vec::new(),
    }
}

/// `spec.replicas` (kubectl reads the defaulted value; absent means 1).
fn replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Number of keys in the map at `ptr`.
fn keys(o: &Value, ptr: &str) -> usize {
    o.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// `s`, or `<none>` when empty.
pub fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>" } else { s }.to_string()
}

/// `s`, or `<unknown>` when empty.
fn or_unknown(s: &str) -> String {
    if s.is_empty() { "<unknown>" } else { s }.to_string()
}

/// The CONTAINERS and IMAGES cells of a pod spec.
fn containers(spec: Option<&Value>) -> Vec<String> {
    let cs = spec.map(|s| list(s, "/containers")).unwrap_or(&[]);
    let join = |f: &str| cs.iter().map(|c| text(c, f)).collect::<Vec<_>>().join(",");
    vec![join("/name"), join("/image")]
}

/// A condition of `type` with status True.
fn has_condition(o: &Value, kind: &str) -> bool {
    list(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

/// A Job's STATUS, in kubectl's order of precedence.
fn job_status(o: &Value) -> String {
    let s = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    s.to_string()
}

/// A Job's COMPLETIONS: `succeeded/completions`, or `n/1 of p` for a work queue.
fn job_completions(o: &Value) -> String {
    let succeeded = int(o, "/status/succeeded");
    match (
        o.pointer("/spec/completions").and_then(Value::as_i64),
        o.pointer("/spec/parallelism").and_then(Value::as_i64),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

/// A Job's DURATION: start to completion, or to now while running; "" before it starts.
fn job_duration(o: &Value, now: Timestamp) -> String {
    let ts = |ptr: &str| {
        o.pointer(ptr)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
    };
    let Some(start) = ts("/status/startTime") else {
        return String::new();
    };
    let end = ts("/status/completionTime").unwrap_or(now);
    human_duration(end.duration_since(start).as_secs())
}

#[cfg(test)]
mod tests;

/// `printControllerRevision`'s controller cell: `<kind>.<group>/<name>` in
/// lower case (the kind only for the core group), or `<none>`.
fn controller_name(o: &Value) -> String {
    let owner = list(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)));
    let Some(r) = owner else {
        return "<none>".to_string();
    };
    let group = text(r, "/apiVersion")
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    let kind = text(r, "/kind").to_ascii_lowercase();
    let kind = if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    };
    format!("{kind}/{}", text(r, "/name"))
}
