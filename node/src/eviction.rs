//! Node-pressure eviction, as the kubelet's eviction manager does it with
//! hard and soft thresholds (`evictionHard`, `evictionSoft` with
//! `evictionSoftGracePeriod` and `evictionMaxPodGracePeriod`,
//! [`ferry_config::node::Eviction`]), and the kubelet's admission of new pods
//! under pressure or shutdown ([`admit`]).
//!
//! [`decide_at`] is pure: from the node's signals (`memory.available` —
//! `MemAvailable` of `/proc/meminfo` —, `nodefs.available` — the data
//! dir's file system — and `pid.available`, [`pid_signal`]) and the pods'
//! requests and usage, whether the node is under
//! MemoryPressure/DiskPressure/PIDPressure and which one pod to evict this round
//! (the kubelet evicts one per housekeeping interval). Pods are ranked as
//! the kubelet ranks them: those whose usage exceeds their requests first
//! (BestEffort pods request nothing), then by priority (lowest first), then
//! by usage above requests (largest first) — for process ids, by priority
//! then processes (the kubelet's `rankPIDPressure`); critical pods (priority
//! `system-node-critical` and above) are never evicted. The victim ends
//! `Failed` with reason `Evicted`, the kubelet's message, and
//! `DisruptionTarget` (`TerminationByKubelet`); the shell is
//! [`crate::agent`].

use ferry_config::node::{Eviction as Thresholds, Threshold};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The eviction status reason.
pub const REASON: &str = "Evicted";
/// The `DisruptionTarget` reason of a kubelet's eviction.
pub const DISRUPTION_REASON: &str = "TerminationByKubelet";
/// Pods of this priority or above are never evicted (`system-node-critical`).
pub const CRITICAL_PRIORITY: i32 = 2_000_001_000;

/// Pods of this priority or above are critical to the kubelet
/// (`system-cluster-critical`, `IsCriticalPod`): admitted under pressure,
/// stopped last on a graceful node shutdown.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// What the node reads of itself: bytes, and process ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// `memory.available` (`MemAvailable`).
    pub memory_available: u64,
    /// Memory capacity (`MemTotal`).
    pub memory_capacity: u64,
    /// `nodefs.available`: free bytes of the data dir's file system.
    pub nodefs_available: u64,
    /// Its size.
    pub nodefs_capacity: u64,
    /// `pid.available`: process ids left ([`pid_signal`]).
    pub pid_available: u64,
    /// Process ids in all (the lower of `pid_max` and `threads-max`).
    pub pid_capacity: u64,
}

/// A starved resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starved {
    /// `memory.available` below its threshold.
    Memory,
    /// `nodefs.available` below its threshold.
    Disk,
    /// `pid.available` below its threshold.
    Pid,
}

impl Starved {
    /// The kubelet's name for the resource in messages.
    pub fn resource(&self) -> &'static str {
        match self {
            Starved::Memory => "memory",
            Starved::Disk => "ephemeral-storage",
            Starved::Pid => "pids",
        }
    }
    /// The kubelet's name for the node condition it raises.
    pub fn condition(&self) -> &'static str {
        match self {
            Starved::Memory => "MemoryPressure",
            Starved::Disk => "DiskPressure",
            Starved::Pid => "PIDPressure",
        }
    }
    /// In the kubelet's order of eviction priority (and [`State`]'s).
    const ALL: [Starved; 3] = [Starved::Memory, Starved::Disk, Starved::Pid];
}

/// One container of a candidate pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUse {
    /// Its name.
    pub name: String,
    /// Its memory request in bytes.
    pub memory_request: u64,
    /// Its working set in bytes (unknown: not measured yet).
    pub memory_usage: Option<u64>,
    /// Its ephemeral-storage request in bytes.
    pub disk_request: u64,
    /// Bytes it wrote on the node's file system (logs, writable layer).
    pub disk_usage: Option<u64>,
    /// Processes (tasks) it runs (unknown: not counted).
    pub processes: Option<u64>,
}

/// A running pod the node may evict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidate {
    /// Its uid.
    pub uid: String,
    /// `namespace/name`.
    pub name: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Its app containers.
    pub containers: Vec<ContainerUse>,
}

impl Candidate {
    fn usage(&self, r: Starved) -> u64 {
        self.containers
            .iter()
            .map(|c| match r {
                Starved::Memory => c.memory_usage.unwrap_or(0),
                Starved::Disk => c.disk_usage.unwrap_or(0),
                Starved::Pid => c.processes.unwrap_or(0),
            })
            .sum()
    }
    fn request(&self, r: Starved) -> u64 {
        self.containers
            .iter()
            .map(|c| match r {
                Starved::Memory => c.memory_request,
                Starved::Disk => c.disk_request,
                // Pods request no process ids.
                Starved::Pid => 0,
            })
            .sum()
    }
    fn exceeds(&self, r: Starved) -> bool {
        self.usage(r) > self.request(r)
    }
}

/// One eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    /// The pod's uid.
    pub uid: String,
    /// `namespace/name`.
    pub name: String,
    /// What it is evicted for.
    pub starved: Starved,
    /// For a soft threshold (else a hard one).
    pub soft: bool,
    /// The most grace its containers get, in seconds: 0 for a hard
    /// threshold, `max_pod_grace_period_secs` for a soft one (its own
    /// grace period if less).
    pub grace_cap_secs: u64,
    /// The kubelet's message (status, event and `DisruptionTarget`).
    pub message: String,
}

/// What the node does this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The MemoryPressure condition.
    pub memory_pressure: bool,
    /// The DiskPressure condition.
    pub disk_pressure: bool,
    /// The PIDPressure condition.
    pub pid_pressure: bool,
    /// The pod to evict, if any.
    pub victim: Option<Victim>,
}

/// What the eviction manager remembers between checks, as the kubelet's
/// `thresholdsFirstObservedAt`, `thresholdsMet` and
/// `nodeConditionsLastObservedAt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// Per resource ([`Starved::ALL`]'s order), its hard then soft threshold.
    thresholds: [[Seen; 2]; 3],
    /// When each resource's condition was last observed.
    condition_at: [Option<Instant>; 3],
}

/// One threshold across checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    /// When it was first met in a row of checks (`None`: not met at the last).
    since: Option<Instant>,
    /// It drove eviction at the last check (a hard one met, a soft one met
    /// for its grace period): it stays met until its signal is back at the
    /// threshold plus the minimum reclaim.
    evicting: bool,
}

impl State {
    /// Whether `r` is starved by the thresholds `t` at signals `s`: a
    /// threshold met, or one that drove eviction and is not yet reclaimed.
    /// The shell measures the pods' use of `r` only then.
    pub fn starving(&self, t: &Thresholds, s: &Signals, r: Starved) -> bool {
        let i = r as usize;
        [0, 1]
            .into_iter()
            .any(|k| met(t, s, r, k, self.thresholds[i][k].evicting))
    }
}

/// The available amount and capacity of `r`.
fn signal(s: &Signals, r: Starved) -> (u64, u64) {
    match r {
        Starved::Memory => (s.memory_available, s.memory_capacity),
        Starved::Disk => (s.nodefs_available, s.nodefs_capacity),
        Starved::Pid => (s.pid_available, s.pid_capacity),
    }
}

/// The threshold of `r`, hard (`k` 0) or soft (1), with its grace period
/// (0 for a hard one).
fn threshold(t: &Thresholds, r: Starved, k: usize) -> (Threshold, u64) {
    let (soft, grace) = (&t.soft, &t.soft_grace_period_secs);
    match (r, k) {
        (Starved::Memory, 0) => (t.memory_available, 0),
        (Starved::Disk, 0) => (t.nodefs_available, 0),
        (Starved::Pid, 0) => (t.pid_available, 0),
        (Starved::Memory, _) => (soft.memory_available, grace.memory_available),
        (Starved::Disk, _) => (soft.nodefs_available, grace.nodefs_available),
        (Starved::Pid, _) => (soft.pid_available, grace.pid_available),
    }
}

/// The minimum reclaim of `r`.
fn min_reclaim(t: &Thresholds, r: Starved) -> Threshold {
    let m = &t.minimum_reclaim;
    match r {
        Starved::Memory => m.memory_available,
        Starved::Disk => m.nodefs_available,
        Starved::Pid => m.pid_available,
    }
}

/// Whether threshold `k` of `r` is met: its signal below it, or — while it
/// drives eviction (`evicting`) — below it plus the minimum reclaim (the
/// kubelet's `thresholdsMet` with `enforceMinReclaim`).
fn met(t: &Thresholds, s: &Signals, r: Starved, k: usize, evicting: bool) -> bool {
    let (avail, cap) = signal(s, r);
    let Some(level) = threshold(t, r, k).0.bytes(cap) else {
        return false;
    };
    let reclaim = if evicting {
        min_reclaim(t, r).bytes(cap).unwrap_or(0)
    } else {
        0
    };
    avail < level.saturating_add(reclaim)
}

/// A byte count as the kubelet prints quantities here (`51200Ki`).
pub fn ki(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// An amount of `r` as the kubelet prints it in messages.
fn shown(r: Starved, v: u64) -> String {
    match r {
        Starved::Pid => v.to_string(),
        _ => ki(v),
    }
}

/// The kubelet's eviction message for `pod` under `starved`.
pub fn message(starved: Starved, threshold: &Threshold, available: u64, pod: &Candidate) -> String {
    let r = starved.resource();
    let th = match (starved, threshold) {
        (Starved::Pid, Threshold::Bytes(n)) => n.to_string(),
        (_, t) => t.to_string(),
    };
    let mut m = format!(
        "The node was low on resource: {r}. Threshold quantity: {th}, available: {}. ",
        shown(starved, available)
    );
    for c in &pod.containers {
        let (usage, request) = match starved {
            Starved::Memory => (c.memory_usage.unwrap_or(0), c.memory_request),
            Starved::Disk => (c.disk_usage.unwrap_or(0), c.disk_request),
            // The kubelet names containers only for memory and storage.
            Starved::Pid => continue,
        };
        if usage > request {
            m.push_str(&format!(
                "Container {} was using {}, request is {}, has larger consumption of {r}. ",
                c.name,
                ki(usage),
                if request == 0 {
                    "0".to_string()
                } else {
                    ki(request)
                },
            ));
        }
    }
    m
}

/// The node's pressure and the pod to evict now, if any, with no soft
/// threshold observed before (see [`decide_at`]).
pub fn decide(t: &Thresholds, s: &Signals, pods: &[Candidate]) -> Decision {
    decide_at(t, s, pods, &mut State::default(), Instant::now())
}

/// The node's pressure and the pod to evict at `now`, if any (see the
/// module). A threshold met, hard or soft, raises its condition at once,
/// and the condition stays `pressure_transition_period_secs` after it was
/// last raised; a hard threshold evicts at once (grace 0), a soft one only
/// once it has been met at every check for its grace period (`state`
/// remembers from when), and with `max_pod_grace_period_secs`. A threshold
/// that evicts stays met until its signal is back at the threshold plus its
/// `minimum_reclaim`. Memory before disk before process ids.
pub fn decide_at(
    t: &Thresholds,
    s: &Signals,
    pods: &[Candidate],
    state: &mut State,
    now: Instant,
) -> Decision {
    let transition = Duration::from_secs(t.pressure_transition_period_secs);
    let mut pressure = [false; 3];
    // The threshold to evict for: of the first resource starved, its hard
    // threshold, or its soft one met for its grace period.
    let mut evict: Option<(Starved, Threshold, bool)> = None;
    for (i, r) in Starved::ALL.into_iter().enumerate() {
        let mut observed = false;
        // Per resource a hard threshold before a soft one.
        for k in [0, 1] {
            let seen = &mut state.thresholds[i][k];
            if !met(t, s, r, k, seen.evicting) {
                *seen = Seen::default();
                continue;
            }
            observed = true;
            let since = *seen.since.get_or_insert(now);
            let (th, grace) = threshold(t, r, k);
            seen.evicting = now.saturating_duration_since(since) >= Duration::from_secs(grace);
            if seen.evicting && evict.is_none() {
                evict = Some((r, th, k == 1));
            }
        }
        // The kubelet's nodeConditionsObservedSince; with no period the
        // condition is this check's.
        let at = &mut state.condition_at[i];
        if observed {
            *at = Some(now);
        }
        pressure[i] =
            observed || at.is_some_and(|at| now.saturating_duration_since(at) < transition);
    }
    let victim = evict.and_then(|(r, th, is_soft)| {
        let mut ranked: Vec<&Candidate> = pods
            .iter()
            .filter(|p| p.priority < CRITICAL_PRIORITY)
            .collect();
        if r == Starved::Pid {
            // The kubelet's rankPIDPressure: priority, then processes.
            ranked.sort_by(|a, b| {
                a.priority
                    .cmp(&b.priority)
                    .then(b.usage(r).cmp(&a.usage(r)))
                    .then(a.name.cmp(&b.name))
            });
        } else {
            ranked.sort_by(|a, b| {
                b.exceeds(r)
                    .cmp(&a.exceeds(r))
                    .then(a.priority.cmp(&b.priority))
                    .then_with(|| {
                        let over = |p: &Candidate| p.usage(r) as i128 - p.request(r) as i128;
                        over(b).cmp(&over(a))
                    })
                    .then(a.name.cmp(&b.name))
            });
        }
        let p = ranked.first()?;
        let (avail, cap) = signal(s, r);
        // A threshold in percent is shown as the amount it stands for.
        let shown = match th {
            Threshold::Percent(_) => Threshold::Bytes(th.bytes(cap)?),
            b => b,
        };
        Some(Victim {
            uid: p.uid.clone(),
            name: p.name.clone(),
            starved: r,
            soft: is_soft,
            grace_cap_secs: if is_soft {
                t.max_pod_grace_period_secs
            } else {
                0
            },
            message: message(r, &shown, avail, p),
        })
    });
    Decision {
        memory_pressure: pressure[0],
        disk_pressure: pressure[1],
        pid_pressure: pressure[2],
        victim,
    }
}

/// The node's conditions as the kubelet's admission names them.
fn conditions(memory: bool, disk: bool, pid: bool) -> Vec<&'static str> {
    [
        (memory, Starved::Memory),
        (disk, Starved::Disk),
        (pid, Starved::Pid),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, r)| r.condition())
    .collect()
}

/// Why the kubelet refuses a new pod: `(reason, message)` as its status
/// reads (`Failed`, the message prefixed `Pod was rejected: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `Evicted` (pressure) or `NodeShutdown`.
    pub reason: &'static str,
    /// The message without the `Pod was rejected: ` prefix.
    pub message: String,
}

/// The reason a pod is refused on a node shutting down.
pub const SHUTDOWN_REJECT_REASON: &str = "NodeShutdown";

/// Whether a node admits a new pod, as the kubelet's admission handlers
/// decide: while it shuts down, none; under pressure, critical pods
/// (priority `system-cluster-critical` and above) always, and under
/// MemoryPressure alone every pod but a BestEffort one that does not
/// tolerate the `memory-pressure:NoSchedule` taint; under DiskPressure or
/// PIDPressure, no other pod. `qos` is the pod's QoS class.
pub fn admit(
    memory: bool,
    disk: bool,
    pid: bool,
    shutting_down: bool,
    pod: &Value,
    qos: &str,
) -> Result<(), Rejection> {
    if shutting_down {
        return Err(Rejection {
            reason: SHUTDOWN_REJECT_REASON,
            message: "Pod was rejected as the node is shutting down.".into(),
        });
    }
    let conds = conditions(memory, disk, pid);
    if conds.is_empty() {
        return Ok(());
    }
    let priority = pod
        .pointer("/spec/priority")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if priority >= i64::from(SYSTEM_CRITICAL_PRIORITY) {
        return Ok(());
    }
    if conds == ["MemoryPressure"]
        && (qos != "BestEffort" || tolerates(pod, crate::node::MEMORY_PRESSURE_TAINT, "NoSchedule"))
    {
        return Ok(());
    }
    Err(Rejection {
        reason: REASON,
        message: format!("The node had condition: [{}]. ", conds.join(" ")),
    })
}

/// Whether `pod`'s tolerations tolerate a taint `key` (no value) of `effect`.
fn tolerates(pod: &Value, key: &str, effect: &str) -> bool {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| {
            let k = t["key"].as_str().unwrap_or("");
            let op = t["operator"].as_str().unwrap_or("Equal");
            let e = t["effect"].as_str().unwrap_or("");
            let v = t["value"].as_str().unwrap_or("");
            (k == key || (k.is_empty() && op == "Exists"))
                && (e.is_empty() || e == effect)
                && (op == "Exists" || v.is_empty())
        })
}

/// `pid.available` and the process-id capacity, as the kubelet reads them:
/// the lower of `kernel.pid_max` and `kernel.threads-max`, minus the tasks
/// running (`sysinfo`'s `procs`).
pub fn pid_signal(pid_max: u64, threads_max: u64, running: u64) -> (u64, u64) {
    let cap = pid_max.min(threads_max);
    (cap.saturating_sub(running), cap)
}

/// `MemAvailable` and `MemTotal` of `/proc/meminfo`, in bytes.
pub fn meminfo(text: &str) -> Option<(u64, u64)> {
    let kb = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    Some((kb("MemAvailable:")?, kb("MemTotal:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    fn pod(name: &str, priority: i32, containers: &[(u64, Option<u64>)]) -> Candidate {
        Candidate {
            uid: format!("uid-{name}"),
            name: format!("default/{name}"),
            priority,
            containers: containers
                .iter()
                .enumerate()
                .map(|(i, (req, used))| ContainerUse {
                    name: format!("c{i}"),
                    memory_request: req * MI,
                    memory_usage: used.map(|u| u * MI),
                    ..ContainerUse::default()
                })
                .collect(),
        }
    }

    fn signals(mem_avail_mi: u64, disk_avail: u64) -> Signals {
        Signals {
            memory_available: mem_avail_mi * MI,
            memory_capacity: 8192 * MI,
            nodefs_available: disk_avail,
            nodefs_capacity: 1000,
            ..Signals::default()
        }
    }

    fn victim(d: &Decision) -> Option<&str> {
        d.victim
            .as_ref()
            .map(|v| v.name.trim_start_matches("default/"))
    }

    #[test]
    fn pressure_follows_the_thresholds() {
        let t = Thresholds {
            nodefs_available: Threshold::Percent(10.0),
            ..Thresholds::default() // memory 100Mi
        };
        let d = decide(&t, &signals(200, 500), &[]);
        assert_eq!((d.memory_pressure, d.disk_pressure), (false, false));
        let d = decide(&t, &signals(99, 500), &[]);
        assert_eq!((d.memory_pressure, d.disk_pressure), (true, false));
        let d = decide(&t, &signals(200, 99), &[]);
        assert_eq!((d.memory_pressure, d.disk_pressure), (false, true));
        // Thresholds off.
        let off = Thresholds {
            memory_available: Threshold::Bytes(0),
            nodefs_available: Threshold::Percent(0.0),
            ..Thresholds::default()
        };
        let d = decide(&off, &signals(0, 0), &[pod("a", 0, &[(0, Some(10))])]);
        assert_eq!(d, Decision::default());
        // No pressure, no victim.
        let d = decide(&t, &signals(200, 500), &[pod("a", 0, &[(0, Some(10))])]);
        assert_eq!(d.victim, None);
    }

    #[test]
    fn victims_rank_as_the_kubelet_ranks_them() {
        let t = Thresholds::default();
        let s = signals(50, 500);
        let best_effort_small = pod("be-small", 0, &[(0, Some(10))]);
        let best_effort_big = pod("be-big", 0, &[(0, Some(300))]);
        // Burstable over its request by 100Mi; another under its request.
        let burstable_over = pod("bu-over", 0, &[(100, Some(200))]);
        let burstable_under = pod("bu-under", 0, &[(500, Some(400))]);
        // Guaranteed (usage within its request), the largest user.
        let guaranteed = pod("guaranteed", 0, &[(1000, Some(950))]);
        let high_priority_be = pod("be-high", 1000, &[(0, Some(500))]);
        let critical = pod("critical", CRITICAL_PRIORITY, &[(0, Some(5000))]);
        let unmeasured = pod("unmeasured", 0, &[(0, None)]);
        let all = [
            guaranteed.clone(),
            burstable_under.clone(),
            burstable_over.clone(),
            best_effort_small.clone(),
            best_effort_big.clone(),
            high_priority_be.clone(),
            critical.clone(),
            unmeasured.clone(),
        ];
        // (pods, expected victim): over-request first, then priority, then
        // the most over request.
        let table: Vec<(Vec<Candidate>, Option<&str>)> = vec![
            (all.to_vec(), Some("be-big")),
            (
                vec![best_effort_small.clone(), burstable_over.clone()],
                Some("bu-over"),
            ),
            (
                vec![best_effort_small.clone(), guaranteed.clone()],
                Some("be-small"),
            ),
            // Priority before usage among those over their requests.
            (
                vec![high_priority_be.clone(), best_effort_small.clone()],
                Some("be-small"),
            ),
            // Nobody over requests: lowest priority, then nearest to over.
            (
                vec![guaranteed.clone(), burstable_under.clone()],
                Some("guaranteed"),
            ),
            (vec![critical.clone()], None),
            (
                vec![critical.clone(), unmeasured.clone()],
                Some("unmeasured"),
            ),
            (vec![], None),
        ];
        for (pods, want) in table {
            let d = decide(&t, &s, &pods);
            let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(victim(&d), want, "{names:?}");
            assert!(d.memory_pressure);
        }
    }

    #[test]
    fn the_message_is_the_kubelets() {
        let t = Thresholds {
            nodefs_available: Threshold::Percent(10.0),
            ..Thresholds::default()
        };
        let p = pod("be", 0, &[(0, Some(200)), (0, Some(0))]);
        let d = decide(&t, &signals(50, 500), &[p]);
        let v = d.victim.unwrap();
        assert_eq!(v.starved, Starved::Memory);
        assert_eq!(v.uid, "uid-be");
        assert_eq!(
            v.message,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. \
             Container c0 was using 204800Ki, request is 0, has larger consumption of memory. "
        );
        // Disk, with a percentage threshold shown as its amount.
        let mut p = pod("disk", 0, &[]);
        p.containers.push(ContainerUse {
            name: "w".into(),
            disk_usage: Some(4096),
            ..ContainerUse::default()
        });
        let s = Signals {
            memory_available: 1 << 40,
            memory_capacity: 1 << 40,
            nodefs_available: 50 << 10,
            nodefs_capacity: 1000 << 10,
            ..Signals::default()
        };
        let d = decide(&t, &s, &[p]);
        assert!(d.disk_pressure && !d.memory_pressure);
        assert_eq!(
            d.victim.unwrap().message,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 100Ki, \
             available: 50Ki. Container w was using 4Ki, request is 0, has larger consumption \
             of ephemeral-storage. "
        );
    }

    #[test]
    fn meminfo_reads_available_and_total() {
        let text = "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(meminfo(text), Some((4_000_000 * 1024, 8_000_000 * 1024)));
        assert_eq!(meminfo("MemTotal: 1 kB\n"), None);
    }

    fn with_processes(mut p: Candidate, n: u64) -> Candidate {
        p.containers[0].processes = Some(n);
        p
    }

    #[test]
    fn soft_thresholds_raise_pressure_at_once_and_evict_after_their_grace() {
        let t = Thresholds {
            memory_available: Threshold::Bytes(0),
            max_pod_grace_period_secs: 7,
            pressure_transition_period_secs: 0,
            soft: ferry_config::node::Soft {
                memory_available: Threshold::Bytes(500 * MI),
                ..Default::default()
            },
            soft_grace_period_secs: ferry_config::node::SoftGrace {
                memory_available: 30,
                ..Default::default()
            },
            ..Thresholds::default()
        };
        let pods = [pod("be", 0, &[(0, Some(10))])];
        let mut since = State::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (seconds, MiB available, pressure, evicts)
        for (secs, avail, pressure, evicts) in [
            (0, 400, true, false),
            (20, 400, true, false),
            // Met for 30 s: due, with the capped grace.
            (30, 400, true, true),
            (40, 450, true, true),
            // Recovered: the clock starts again.
            (50, 600, false, false),
            (60, 400, true, false),
            (89, 400, true, false),
            (90, 400, true, true),
        ] {
            let d = decide_at(&t, &signals(avail, 500), &pods, &mut since, at(secs));
            assert_eq!(d.memory_pressure, pressure, "at {secs}s");
            assert_eq!(d.victim.is_some(), evicts, "at {secs}s");
            if let Some(v) = d.victim {
                assert!(v.soft);
                assert_eq!(v.grace_cap_secs, 7);
                assert!(
                    v.message.starts_with(
                        "The node was low on resource: memory. Threshold quantity: 500Mi, available: 409600Ki. "
                    ) || avail != 400,
                    "{}",
                    v.message
                );
            }
        }
        // A hard threshold met as well evicts at once, with no grace.
        let both = Thresholds {
            memory_available: Threshold::Bytes(100 * MI),
            ..t.clone()
        };
        let mut since = State::default();
        let d = decide_at(&both, &signals(50, 500), &pods, &mut since, t0);
        let v = d.victim.unwrap();
        assert!(!v.soft);
        assert_eq!(v.grace_cap_secs, 0);
        assert!(
            v.message.contains("Threshold quantity: 100Mi"),
            "{}",
            v.message
        );
    }

    #[test]
    fn pressure_stays_for_the_transition_period_while_eviction_stops_at_once() {
        let t = Thresholds {
            pressure_transition_period_secs: 30,
            ..Thresholds::default() // memory 100Mi
        };
        let pods = [pod("be", 0, &[(0, Some(10))])];
        let t0 = Instant::now();
        let mut state = State::default();
        // (seconds, MiB available, pressure, evicts)
        for (secs, avail, pressure, evicts) in [
            (0, 50, true, true),
            // Recovered: no eviction, but the condition holds 30 s.
            (10, 200, true, false),
            (29, 200, true, false),
            (30, 200, false, false),
            // Starved again, then a blip of relief: 30 s from the last.
            (50, 50, true, true),
            (60, 200, true, false),
            (70, 99, true, true),
            (99, 200, true, false),
            (100, 200, false, false),
        ] {
            let now = t0 + Duration::from_secs(secs);
            let d = decide_at(&t, &signals(avail, 500), &pods, &mut state, now);
            assert_eq!(d.memory_pressure, pressure, "pressure at {secs}s");
            assert_eq!(d.victim.is_some(), evicts, "eviction at {secs}s");
            assert!(!d.disk_pressure && !d.pid_pressure, "at {secs}s");
        }
        // Other resources keep their own clocks.
        let t = Thresholds {
            nodefs_available: Threshold::Percent(10.0),
            ..t
        };
        let mut state = State::default();
        let d = decide_at(&t, &signals(50, 50), &pods, &mut state, t0);
        assert!(d.memory_pressure && d.disk_pressure);
        let at = |s| t0 + Duration::from_secs(s);
        let d = decide_at(&t, &signals(50, 500), &pods, &mut state, at(29));
        assert!(d.memory_pressure && d.disk_pressure);
        let d = decide_at(&t, &signals(50, 500), &pods, &mut state, at(30));
        assert!(d.memory_pressure && !d.disk_pressure);
        // No period: the condition is each check's.
        let t = Thresholds {
            pressure_transition_period_secs: 0,
            ..Thresholds::default()
        };
        let mut state = State::default();
        assert!(decide_at(&t, &signals(50, 500), &pods, &mut state, t0).memory_pressure);
        assert!(!decide_at(&t, &signals(200, 500), &pods, &mut state, at(1)).memory_pressure);
        // The kubelet's default is five minutes.
        assert_eq!(Thresholds::default().pressure_transition_period_secs, 300);
    }

    #[test]
    fn minimum_reclaim_keeps_evicting_until_the_threshold_plus_it() {
        let t = Thresholds {
            pressure_transition_period_secs: 0,
            minimum_reclaim: ferry_config::node::MinimumReclaim {
                memory_available: Threshold::Bytes(200 * MI),
                ..Default::default()
            },
            ..Thresholds::default() // memory 100Mi
        };
        let pods = [pod("a", 0, &[(0, Some(10))]), pod("b", 0, &[(0, Some(20))])];
        let t0 = Instant::now();
        let mut state = State::default();
        // (seconds, MiB available, pressure, evicts)
        for (secs, avail, pressure, evicts) in [
            // Above the threshold, never crossed: nothing.
            (0, 150, false, false),
            (10, 50, true, true),
            // Above 100Mi but short of 100Mi + 200Mi: still evicting.
            (20, 150, true, true),
            (30, 299, true, true),
            // Reclaimed.
            (40, 300, false, false),
            // Below 300Mi again but above the threshold: not crossed.
            (50, 150, false, false),
            (60, 99, true, true),
        ] {
            let now = t0 + Duration::from_secs(secs);
            let d = decide_at(&t, &signals(avail, 500), &pods, &mut state, now);
            assert_eq!(d.memory_pressure, pressure, "pressure at {secs}s");
            assert_eq!(d.victim.is_some(), evicts, "eviction at {secs}s");
            assert_eq!(
                state.starving(&t, &signals(avail, 500), Starved::Memory),
                evicts,
                "starving at {secs}s"
            );
            if let Some(v) = d.victim {
                // The message names the threshold, not the reclaim target.
                assert!(
                    v.message.contains(&format!(
                        "Threshold quantity: 100Mi, available: {}Ki",
                        avail * 1024
                    )),
                    "{}",
                    v.message
                );
                assert!(!v.soft);
            }
        }
        // A share of the capacity (8Gi: 5% is 409.6Mi), for a soft threshold:
        // only once its grace is met does the reclaim hold it.
        let t = Thresholds {
            memory_available: Threshold::Bytes(0),
            pressure_transition_period_secs: 0,
            soft: ferry_config::node::Soft {
                memory_available: Threshold::Bytes(500 * MI),
                ..Default::default()
            },
            soft_grace_period_secs: ferry_config::node::SoftGrace {
                memory_available: 30,
                ..Default::default()
            },
            minimum_reclaim: ferry_config::node::MinimumReclaim {
                memory_available: Threshold::Percent(5.0),
                ..Default::default()
            },
            ..Thresholds::default()
        };
        let mut state = State::default();
        for (secs, avail, pressure, evicts) in [
            (0, 400, true, false),
            // Not yet evicting: above the threshold is relief.
            (10, 600, false, false),
            (20, 400, true, false),
            (50, 400, true, true),
            (60, 600, true, true),
            (70, 909, true, true),
            (80, 910, false, false),
        ] {
            let now = t0 + Duration::from_secs(secs);
            let d = decide_at(&t, &signals(avail, 500), &pods, &mut state, now);
            assert_eq!(d.memory_pressure, pressure, "soft: pressure at {secs}s");
            assert_eq!(d.victim.is_some(), evicts, "soft: eviction at {secs}s");
            assert!(d.victim.is_none_or(|v| v.soft), "soft: at {secs}s");
        }
        // Process ids, by number.
        let t = Thresholds {
            pid_available: Threshold::Bytes(1000),
            pressure_transition_period_secs: 0,
            minimum_reclaim: ferry_config::node::MinimumReclaim {
                pid_available: Threshold::Bytes(500),
                ..Default::default()
            },
            ..Thresholds::default()
        };
        let pids = |n| Signals {
            pid_available: n,
            pid_capacity: 100_000,
            ..signals(4000, 500)
        };
        let mut state = State::default();
        for (secs, avail, evicts) in [(0, 900, true), (10, 1499, true), (20, 1500, false)] {
            let now = t0 + Duration::from_secs(secs);
            let d = decide_at(&t, &pids(avail), &pods, &mut state, now);
            assert_eq!(d.pid_pressure, evicts, "pids: pressure at {secs}s");
            assert_eq!(d.victim.is_some(), evicts, "pids: eviction at {secs}s");
        }
    }

    #[test]
    fn pid_pressure_ranks_by_priority_then_processes() {
        let t = Thresholds {
            pid_available: Threshold::Bytes(1000),
            ..Thresholds::default()
        };
        let s = Signals {
            pid_available: 900,
            pid_capacity: 4_194_304,
            ..signals(4000, 500)
        };
        let few = with_processes(pod("few", 0, &[(0, Some(10))]), 3);
        let many = with_processes(pod("many", 0, &[(100, Some(10))]), 300);
        let many_high = with_processes(pod("many-high", 100, &[(0, Some(10))]), 900);
        let critical = with_processes(pod("critical", CRITICAL_PRIORITY, &[(0, None)]), 5000);
        for (pods, want) in [
            (vec![few.clone(), many.clone()], Some("many")),
            (vec![few.clone(), many_high.clone()], Some("few")),
            (vec![many_high.clone(), critical.clone()], Some("many-high")),
            (vec![critical.clone()], None),
        ] {
            let d = decide(&t, &s, &pods);
            assert!(d.pid_pressure && !d.memory_pressure && !d.disk_pressure);
            assert_eq!(victim(&d), want);
        }
        let d = decide(&t, &s, &[many]);
        assert_eq!(
            d.victim.unwrap().message,
            "The node was low on resource: pids. Threshold quantity: 1000, available: 900. "
        );
        // Enough ids: no pressure.
        let d = decide(
            &t,
            &Signals {
                pid_available: 5000,
                ..s
            },
            &[few],
        );
        assert_eq!(d, Decision::default());
        assert_eq!(pid_signal(4_194_304, 126_000, 1000), (125_000, 126_000));
        assert_eq!(pid_signal(32768, 126_000, 40_000), (0, 32768));
    }

    #[test]
    fn admission_refuses_as_the_kubelet_does() {
        let pod = |priority: i64, tolerations: serde_json::Value| serde_json::json!({"spec": {"priority": priority, "tolerations": tolerations}});
        let none = serde_json::json!([]);
        let plain = pod(0, none.clone());
        let tolerant = pod(
            0,
            serde_json::json!([{"key": "node.kubernetes.io/memory-pressure",
                                "operator": "Exists", "effect": "NoSchedule"}]),
        );
        let tolerates_all = pod(0, serde_json::json!([{"operator": "Exists"}]));
        let critical = pod(2_000_000_000, none.clone());
        let rejected = |m: &str| {
            Err(Rejection {
                reason: "Evicted",
                message: m.to_string(),
            })
        };
        // (memory, disk, pid, shutting down, pod, qos, result)
        let table = [
            (false, false, false, false, &plain, "BestEffort", Ok(())),
            (
                true,
                false,
                false,
                false,
                &plain,
                "BestEffort",
                rejected("The node had condition: [MemoryPressure]. "),
            ),
            (true, false, false, false, &plain, "Burstable", Ok(())),
            (true, false, false, false, &plain, "Guaranteed", Ok(())),
            (true, false, false, false, &tolerant, "BestEffort", Ok(())),
            (
                true,
                false,
                false,
                false,
                &tolerates_all,
                "BestEffort",
                Ok(()),
            ),
            (true, false, false, false, &critical, "BestEffort", Ok(())),
            (
                false,
                true,
                false,
                false,
                &plain,
                "Guaranteed",
                rejected("The node had condition: [DiskPressure]. "),
            ),
            (
                true,
                false,
                true,
                false,
                &tolerant,
                "Guaranteed",
                rejected("The node had condition: [MemoryPressure PIDPressure]. "),
            ),
            (false, false, true, false, &critical, "BestEffort", Ok(())),
            (
                false,
                false,
                false,
                true,
                &critical,
                "Guaranteed",
                Err(Rejection {
                    reason: "NodeShutdown",
                    message: "Pod was rejected as the node is shutting down.".into(),
                }),
            ),
        ];
        for (i, (m, d, p, down, pod, qos, want)) in table.into_iter().enumerate() {
            assert_eq!(admit(m, d, p, down, pod, qos), want, "row {i}");
        }
    }
}
