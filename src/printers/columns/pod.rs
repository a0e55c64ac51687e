//! A Pod's `get` row: kubectl's READY, STATUS and RESTARTS rules.

use super::or_none;
use crate::printers::age::age;
use crate::printers::{int, list, text};
use jiff::Timestamp;
use serde_json::Value;

/// NAME READY STATUS RESTARTS AGE, and with `wide` IP NODE NOMINATED NODE READINESS GATES.
pub(super) fn cells(o: &Value, wide: bool, now: Timestamp) -> Vec<String> {
    let s = status(o);
    let restarts = match (s.restarts, &s.last_restart) {
        (0, _) | (_, None) => s.restarts.to_string(),
        (n, Some(t)) => format!("{n} ({} ago)", age(t, now)),
    };
    let mut row = vec![
        text(o, "/metadata/name").to_string(),
        format!("{}/{}", s.ready, s.total),
        s.reason,
        restarts,
        age(text(o, "/metadata/creationTimestamp"), now),
    ];
    if wide {
        let ip = list(o, "/status/podIPs")
            .first()
            .map_or("", |p| text(p, "/ip"));
        row.push(or_none(ip));
        row.push(or_none(text(o, "/spec/nodeName")));
        row.push(or_none(text(o, "/status/nominatedNodeName")));
        row.push(readiness_gates(o));
    }
    row
}

/// What kubectl derives from a pod's status.
struct PodStatus {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    /// When the most recently restarted container last terminated.
    last_restart: Option<String>,
}

/// Restart counts and the latest last-termination time of some container statuses.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<String>,
}

impl Restarts {
    fn add(&mut self, cs: &Value) {
        self.count += int(cs, "/restartCount");
        let finished = text(cs, "/lastState/terminated/finishedAt");
        if !finished.is_empty() && self.last.as_deref().is_none_or(|l| later(finished, l)) {
            self.last = Some(finished.to_string());
        }
    }
}

/// `a` is a later RFC 3339 time than `b`.
fn later(a: &str, b: &str) -> bool {
    match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

/// kubectl's `printPod` status logic: init containers first, then the
/// containers (last one wins), then deletion.
fn status(o: &Value) -> PodStatus {
    let phase = text(o, "/status/phase");
    let mut reason = match text(o, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if list(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let init_specs = list(o, "/spec/initContainers");
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let mut total = list(o, "/spec/containers").len();
    total += init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .count();
    let mut ready = 0;
    let (mut all, mut sidecars) = (Restarts::default(), Restarts::default());
    let mut initializing = false;
    for (i, cs) in list(o, "/status/initContainerStatuses").iter().enumerate() {
        all.add(cs);
        let is_sidecar = sidecar(text(cs, "/name"));
        if is_sidecar {
            sidecars.add(cs);
        }
        let terminated = cs.pointer("/state/terminated");
        let waiting = text(cs, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && cs.get("started").and_then(Value::as_bool) == Some(true) {
            ready += usize::from(cs.get("ready").and_then(Value::as_bool) == Some(true));
            continue;
        }
        reason = if let Some(t) = terminated {
            match (text(t, "/reason"), int(t, "/signal")) {
                ("", 0) => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                ("", sig) => format!("Init:Signal:{sig}"),
                (r, _) => format!("Init:{r}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    let initialized = list(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "Initialized" && text(c, "/status") == "True");
    if !initializing || initialized {
        all = sidecars;
        let mut running = false;
        for cs in list(o, "/status/containerStatuses").iter().rev() {
            all.add(cs);
            let waiting = text(cs, "/state/waiting/reason");
            let terminated = cs.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match (text(t, "/reason"), int(t, "/signal")) {
                    ("", 0) => format!("ExitCode:{}", int(t, "/exitCode")),
                    ("", sig) => format!("Signal:{sig}"),
                    (r, _) => r.to_string(),
                };
            } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
                && cs.pointer("/state/running").is_some()
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let pod_ready = list(o, "/status/conditions")
                .iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        if text(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }
    PodStatus {
        ready,
        total,
        reason,
        restarts: all.count,
        last_restart: all.last,
    }
}

/// READINESS GATES: how many of the pod's gates have a True condition, or `<none>`.
fn readiness_gates(o: &Value) -> String {
    let gates = list(o, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = list(o, "/status/conditions");
    let met = gates
        .iter()
        .filter(|g| {
            conditions
                .iter()
                .find(|c| text(c, "/type") == text(g, "/conditionType"))
                .is_some_and(|c| text(c, "/status") == "True")
        })
        .count();
    format!("{met}/{}", gates.len())
}
