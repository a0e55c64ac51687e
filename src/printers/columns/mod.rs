//! Each kind's `get` columns and cells, as kubectl's printers define them.
//!
//! Layout: this file (headers, dispatch, workloads), `pod` (the pod rules),
//! `network` (services, endpoints), `node` (nodes, events).

mod network;
mod node;
mod pod;

pub(super) use network::{endpoints, endpoints_of_port, service_ports};
use network::{service_cluster_ip, service_external_ip};
use node::{event, node, node_address};

use super::age::{age, human_duration};
use super::{int, labels_string, list, selector_string, text};
use jiff::Timestamp;
use serde_json::Value;

/// The header of a kind's table; `wide` adds its extra columns.
pub(super) fn header(kind: &str, wide: bool) -> Vec<&'static str> {
    let (base, extra): (&[&str], &[&str]) = match kind {
        "Pod" => (
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        "Deployment" => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            WORKLOAD_WIDE,
        ),
        "ReplicaSet" => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            WORKLOAD_WIDE,
        ),
        "DaemonSet" => (
            &[
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            WORKLOAD_WIDE,
        ),
        "StatefulSet" => (&["NAME", "READY", "AGE"], &["CONTAINERS", "IMAGES"]),
        "Job" => (
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            WORKLOAD_WIDE,
        ),
        "CronJob" => (
            &[
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            WORKLOAD_WIDE,
        ),
        "Service" => (
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        "Endpoints" => (&["NAME", "ENDPOINTS", "AGE"], &[]),
        "ConfigMap" => (&["NAME", "DATA", "AGE"], &[]),
        "Secret" => (&["NAME", "TYPE", "DATA", "AGE"], &[]),
        "ServiceAccount" => (&["NAME", "SECRETS", "AGE"], &[]),
        "Namespace" => (&["NAME", "STATUS", "AGE"], &[]),
        "Node" => (
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &[
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ],
        ),
        "Event" => (
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &[
                "SUBOBJECT",
                "SOURCE",
                "MESSAGE",
                "FIRST SEEN",
                "COUNT",
                "NAME",
            ],
        ),
        "Lease" => (&["NAME", "HOLDER", "AGE"], &[]),
        _ => (&["NAME", "AGE"], &[]),
    };
    if !wide {
        return base.to_vec();
    }
    if kind == "Event" {
        // The wide columns sit in the middle: SUBOBJECT and SOURCE before MESSAGE.
        let mut h = base[..4].to_vec();
        h.extend_from_slice(extra);
        return h;
    }
    let mut h = base.to_vec();
    h.extend_from_slice(extra);
    h
}

/// The wide columns of the pod-owning kinds.
const WORKLOAD_WIDE: &[&str] = &["CONTAINERS", "IMAGES", "SELECTOR"];

/// One object's cells, in [`header`]'s order.
pub(super) fn cells(kind: &str, o: &Value, wide: bool, now: Timestamp) -> Vec<String> {
    let name = text(o, "/metadata/name").to_string();
    let created = age(text(o, "/metadata/creationTimestamp"), now);
    let n = |ptr: &str| int(o, ptr).to_string();
    let mut row = match kind {
        "Pod" => return pod::cells(o, wide, now),
        "Event" => return event(o, wide, now),
        "Deployment" => vec![
            name,
            format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)),
            n("/status/updatedReplicas"),
            n("/status/availableReplicas"),
            created,
        ],
        "ReplicaSet" => vec![
            name,
            replicas(o).to_string(),
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
            labels_string(o.pointer("/spec/template/spec/nodeSelector")),
            created,
        ],
        "StatefulSet" => vec![
            name,
            format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)),
            created,
        ],
        "Job" => vec![
            name,
            job_status(o),
            job_completions(o),
            job_duration(o, now),
            created,
        ],
        "CronJob" => vec![
            name,
            text(o, "/spec/schedule").to_string(),
            or_none(text(o, "/spec/timeZone")),
            match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True".to_string(),
                Some(false) => "False".to_string(),
                None => "<unset>".to_string(),
            },
            list(o, "/status/active").len().to_string(),
            match o
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
            {
                Some(t) => age(t, now),
                None => "<none>".to_string(),
            },
            created,
        ],
        "Service" => vec![
            name,
            text(o, "/spec/type").to_string(),
            service_cluster_ip(o),
            service_external_ip(o, wide),
            or_none(&service_ports(o)),
            created,
        ],
        "Endpoints" => vec![name, endpoints(o), created],
        "ConfigMap" => vec![
            name,
            (keys(o, "/data") + keys(o, "/binaryData")).to_string(),
            created,
        ],
        "Secret" => vec![
            name,
            text(o, "/type").to_string(),
            keys(o, "/data").to_string(),
            created,
        ],
        "ServiceAccount" => vec![name, list(o, "/secrets").len().to_string(), created],
        "Namespace" => vec![name, text(o, "/status/phase").to_string(), created],
        "Node" => node(o, created),
        "Lease" => vec![name, text(o, "/spec/holderIdentity").to_string(), created],
        _ => vec![name, created],
    };
    if wide {
        row.extend(wide_cells(kind, o));
    }
    row
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
        "CronJob" => {
            let mut c = containers(o.pointer("/spec/jobTemplate/spec/template/spec"));
            c.push(match o.pointer("/spec/jobTemplate/spec/selector") {
                Some(s) => selector_string(Some(s)),
                None => "<none>".to_string(),
            });
            c
        }
        "Service" => vec![labels_string(o.pointer("/spec/selector"))],
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
pub(super) fn or_none(s: &str) -> String {
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
