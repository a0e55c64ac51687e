//! Node-pressure eviction, as the kubelet's eviction manager does it with
//! hard thresholds (`evictionHard`, [`ferry_config::node::Eviction`]).
//!
//! [`decide`] is pure: from the node's signals (`memory.available` —
//! `MemAvailable` of `/proc/meminfo` — and `nodefs.available` — the data
//! dir's file system) and the pods' requests and usage, whether the node is
//! under MemoryPressure/DiskPressure and which one pod to evict this round
//! (the kubelet evicts one per housekeeping interval). Pods are ranked as
//! the kubelet ranks them: those whose usage exceeds their requests first
//! (BestEffort pods request nothing), then by priority (lowest first), then
//! by usage above requests (largest first); critical pods (priority
//! `system-node-critical` and above) are never evicted. The victim ends
//! `Failed` with reason `Evicted`, the kubelet's message, and
//! `DisruptionTarget` (`TerminationByKubelet`); the shell is
//! [`crate::agent`].

use ferry_config::node::{Eviction as Thresholds, Threshold};

/// The eviction status reason.
pub const REASON: &str = "Evicted";
/// The `DisruptionTarget` reason of a kubelet's eviction.
pub const DISRUPTION_REASON: &str = "TerminationByKubelet";
/// Pods of this priority or above are never evicted (`system-node-critical`).
pub const CRITICAL_PRIORITY: i32 = 2_000_001_000;

/// What the node reads of itself, in bytes.
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
}

/// A starved resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starved {
    /// `memory.available` below its threshold.
    Memory,
    /// `nodefs.available` below its threshold.
    Disk,
}

impl Starved {
    /// The kubelet's name for the resource in messages.
    pub fn resource(&self) -> &'static str {
        match self {
            Starved::Memory => "memory",
            Starved::Disk => "ephemeral-storage",
        }
    }
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
            })
            .sum()
    }
    fn request(&self, r: Starved) -> u64 {
        self.containers
            .iter()
            .map(|c| match r {
                Starved::Memory => c.memory_request,
                Starved::Disk => c.disk_request,
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
    /// The pod to evict, if any.
    pub victim: Option<Victim>,
}

/// A byte count as the kubelet prints quantities here (`51200Ki`).
pub fn ki(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// The kubelet's eviction message for `pod` under `starved`.
pub fn message(starved: Starved, threshold: &Threshold, available: u64, pod: &Candidate) -> String {
    let r = starved.resource();
    let mut m = format!(
        "The node was low on resource: {r}. Threshold quantity: {threshold}, available: {}. ",
        ki(available)
    );
    for c in &pod.containers {
        let (usage, request) = match starved {
            Starved::Memory => (c.memory_usage.unwrap_or(0), c.memory_request),
            Starved::Disk => (c.disk_usage.unwrap_or(0), c.disk_request),
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

/// The node's pressure and the pod to evict now, if any (see the module).
pub fn decide(t: &Thresholds, s: &Signals, pods: &[Candidate]) -> Decision {
    let below = |th: &Threshold, avail: u64, cap: u64| th.bytes(cap).is_some_and(|b| avail < b);
    let memory_pressure = below(&t.memory_available, s.memory_available, s.memory_capacity);
    let disk_pressure = below(&t.nodefs_available, s.nodefs_available, s.nodefs_capacity);
    // Memory first, as the kubelet orders its thresholds.
    let starved = if memory_pressure {
        Some((Starved::Memory, t.memory_available, s.memory_available))
    } else if disk_pressure {
        Some((Starved::Disk, t.nodefs_available, s.nodefs_available))
    } else {
        None
    };
    let victim = starved.and_then(|(r, th, avail)| {
        let mut ranked: Vec<&Candidate> = pods
            .iter()
            .filter(|p| p.priority < CRITICAL_PRIORITY)
            .collect();
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
        let p = ranked.first()?;
        // A threshold in percent is shown as the amount it stands for.
        let shown = match th {
            Threshold::Percent(_) => Threshold::Bytes(th.bytes(match r {
                Starved::Memory => s.memory_capacity,
                Starved::Disk => s.nodefs_capacity,
            })?),
            b => b,
        };
        Some(Victim {
            uid: p.uid.clone(),
            name: p.name.clone(),
            starved: r,
            message: message(r, &shown, avail, p),
        })
    });
    Decision {
        memory_pressure,
        disk_pressure,
        victim,
    }
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
}
