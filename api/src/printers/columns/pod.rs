//! A Pod's `get` row: kubectl's READY, STATUS and RESTARTS rules.

use super::{or_none, Cell};
use crate::printers::age::age;
use crate::printers::{int, list, text};
use jiff::Timestamp;
use serde_json::Value;

/// NAME READY STATUS RESTARTS AGE, and with `wide` IP NODE NOMINATED NODE READINESS GATES.
pub(super) fn cells(o: &Value, wide: bool, now: Timestamp) -> Vec<Cell> {
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
    row.into_iter().map(Cell::from).collect()
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
    let sidecars = init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always");
    let total = list(o, "/spec/containers").len() + sidecars.count();
    let init = init_containers(o);
    let (mut ready, mut restarts) = (init.ready, init.all);
    if let Some(r) = &init.blocked {
        reason = r.clone();
    }
    if init.blocked.is_none() || condition_true(o, "Initialized") {
        restarts = init.sidecars;
        let mut running = false;
        for cs in list(o, "/status/containerStatuses").iter().rev() {
            restarts.add(cs);
            if let Some(r) = container_reason(cs, "") {
                reason = r;
            } else if flag(cs, "ready") && cs.pointer("/state/running").is_some() {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = if condition_true(o, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
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
        restarts: restarts.count,
        last_restart: restarts.last,
    }
}

/// What the init containers say.
struct Init {
    /// Restarts of all init containers (counted while the pod initializes).
    all: Restarts,
    /// Restarts of the sidecars (restartable init containers) only.
    sidecars: Restarts,
    /// Started sidecars that are ready.
    ready: usize,
    /// `Init:...` when an init container holds the pod back.
    blocked: Option<String>,
}

/// Walks the init container statuses until one has not finished successfully.
fn init_containers(o: &Value) -> Init {
    let specs = list(o, "/spec/initContainers");
    let sidecar = |name: &str| {
        specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let mut init = Init {
        all: Restarts::default(),
        sidecars: Restarts::default(),
        ready: 0,
        blocked: None,
    };
    for (i, cs) in list(o, "/status/initContainerStatuses").iter().enumerate() {
        init.all.add(cs);
        let is_sidecar = sidecar(text(cs, "/name"));
        if is_sidecar {
            init.sidecars.add(cs);
        }
        if cs
            .pointer("/state/terminated")
            .is_some_and(|t| int(t, "/exitCode") == 0)
        {
            continue;
        }
        if is_sidecar && flag(cs, "started") {
            init.ready += usize::from(flag(cs, "ready"));
            continue;
        }
        let waiting = text(cs, "/state/waiting/reason");
        init.blocked = Some(match container_reason(cs, "Init:") {
            Some(r) if waiting != "PodInitializing" => r,
            _ => format!("Init:{i}/{}", specs.len()),
        });
        break;
    }
    init
}

/// A container's waiting or terminated reason (`CrashLoopBackOff`,
/// `Completed`, `ExitCode:1`, `Signal:9`) after `prefix`; None when it runs
/// or waits without a reason.
fn container_reason(cs: &Value, prefix: &str) -> Option<String> {
    let waiting = text(cs, "/state/waiting/reason");
    if !waiting.is_empty() {
        return Some(format!("{prefix}{waiting}"));
    }
    let t = cs.pointer("/state/terminated")?;
    Some(match (text(t, "/reason"), int(t, "/signal")) {
        ("", 0) => format!("{prefix}ExitCode:{}", int(t, "/exitCode")),
        ("", sig) => format!("{prefix}Signal:{sig}"),
        (r, _) => format!("{prefix}{r}"),
    })
}

/// A boolean field that is true.
fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool) == Some(true)
}

/// The pod has a condition of `kind` with status True.
fn condition_true(o: &Value, kind: &str) -> bool {
    list(o, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
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
