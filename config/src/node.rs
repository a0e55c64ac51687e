//! A node agent's config (`ferry node --node-config FILE`, `ferry up
//! --node-config FILE`): its eviction thresholds, hard and soft, as the
//! kubelet's `evictionHard`/`evictionSoft`, with `evictionMinimumReclaim`
//! and `evictionPressureTransitionPeriod`, and graceful node shutdown, as
//! its `shutdownGracePeriod`/`shutdownGracePeriodCriticalPods` or
//! `shutdownGracePeriodByPodPriority`.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A node's config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node-pressure eviction.
    pub eviction: Eviction,
    /// Graceful node shutdown.
    pub shutdown: Shutdown,
}

/// Graceful node shutdown (the kubelet's `shutdownGracePeriod` and
/// `shutdownGracePeriodCriticalPods`). Off (0) by default: SIGTERM stops the
/// agent and leaves its pods running for a restarted agent to re-adopt, as a
/// kubelet restart does. On, SIGTERM means the node is shutting down (systemd
/// stops a node's services with SIGTERM): the Node turns NotReady, regular
/// pods are stopped within `grace_period_secs - critical_pods_grace_period_secs`,
/// then critical pods (priority `system-cluster-critical` and above) within
/// `critical_pods_grace_period_secs`, each ending `Failed`/`Terminated` so its
/// controller replaces it elsewhere. SIGINT always leaves pods running.
/// `grace_period_by_pod_priority` replaces the two with budgets per
/// priority group ([`Shutdown::groups`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// Seconds the whole shutdown may take (0: off).
    pub grace_period_secs: u64,
    /// Seconds of it kept for critical pods, stopped last.
    pub critical_pods_grace_period_secs: u64,
    /// The kubelet's `shutdownGracePeriodByPodPriority`: pods stopped in
    /// groups, lowest priority first, each group within its own budget.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grace_period_by_pod_priority: Vec<PriorityGrace>,
}

/// One priority group of a graceful shutdown (the kubelet's
/// `ShutdownGracePeriodByPodPriority` item): the pods of priority
/// `priority` up to the next group's get `grace_period_secs`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PriorityGrace {
    /// The group's lowest priority.
    pub priority: i32,
    /// Seconds its pods get (`shutdownGracePeriodSeconds`).
    pub grace_period_secs: u64,
}

/// `system-cluster-critical`: the critical pods' group of the two-budget form.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

impl Shutdown {
    /// The priority groups, lowest priority first; empty when graceful
    /// shutdown is off. The two-budget form is the kubelet's migration of
    /// it: priority 0 gets `grace_period_secs - critical_pods_grace_period_secs`,
    /// `system-cluster-critical` gets `critical_pods_grace_period_secs`.
    pub fn groups(&self) -> Vec<PriorityGrace> {
        let mut groups = if !self.grace_period_by_pod_priority.is_empty() {
            self.grace_period_by_pod_priority.clone()
        } else if self.grace_period_secs == 0
            || self.critical_pods_grace_period_secs > self.grace_period_secs
        {
            Vec::new()
        } else {
            vec![
                PriorityGrace {
                    priority: 0,
                    grace_period_secs: self.grace_period_secs
                        - self.critical_pods_grace_period_secs,
                },
                PriorityGrace {
                    priority: SYSTEM_CRITICAL_PRIORITY,
                    grace_period_secs: self.critical_pods_grace_period_secs,
                },
            ]
        };
        groups.sort_by_key(|g| g.priority);
        groups
    }

    /// Seconds the whole shutdown may take: its groups' budgets summed (0: off).
    pub fn total_secs(&self) -> u64 {
        self.groups()
            .iter()
            .fold(0, |sum: u64, g| sum.saturating_add(g.grace_period_secs))
    }
}

/// Soft eviction thresholds (the kubelet's `evictionSoft`): as the hard ones,
/// but a pod is evicted only once one has held for its grace period, and
/// with a grace period of its own (`max_pod_grace_period_secs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Soft {
    /// `memory.available` (default off).
    pub memory_available: Threshold,
    /// `nodefs.available` (default off).
    pub nodefs_available: Threshold,
    /// `pid.available`: a number of process ids or a share (default off).
    pub pid_available: Threshold,
}

impl Default for Soft {
    fn default() -> Self {
        Soft {
            memory_available: Threshold::Bytes(0),
            nodefs_available: Threshold::Bytes(0),
            pid_available: Threshold::Bytes(0),
        }
    }
}

/// How long each soft threshold must hold before the node evicts for it
/// (the kubelet's `evictionSoftGracePeriod`), in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SoftGrace {
    /// For `soft.memory_available`.
    pub memory_available: u64,
    /// For `soft.nodefs_available`.
    pub nodefs_available: u64,
    /// For `soft.pid_available`.
    pub pid_available: u64,
}

/// How much above its threshold a signal must come back before the node
/// stops evicting for it (the kubelet's `evictionMinimumReclaim`): once a
/// threshold, hard or soft, has led to evictions, the node keeps evicting
/// until the signal is at the threshold plus this. A quantity or a share of
/// the capacity; `"0"` (the default): none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MinimumReclaim {
    /// For `memory.available`.
    pub memory_available: Threshold,
    /// For `nodefs.available`.
    pub nodefs_available: Threshold,
    /// For `pid.available`.
    pub pid_available: Threshold,
}

impl Default for MinimumReclaim {
    fn default() -> Self {
        MinimumReclaim {
            memory_available: Threshold::Bytes(0),
            nodefs_available: Threshold::Bytes(0),
            pid_available: Threshold::Bytes(0),
        }
    }
}

/// Hard eviction thresholds (the kubelet's `evictionHard`): when a signal's
/// available amount falls below its threshold the node reports pressure and
/// evicts pods. Each is a quantity (`100Mi`) or a share of the capacity
/// (`10%`); `"0"` turns it off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Eviction {
    /// `memory.available` (default `100Mi`, as the kubelet).
    pub memory_available: Threshold,
    /// `nodefs.available`, of the node's data dir file system (default off:
    /// ferry's nodes share one developer machine's file system, where the
    /// kubelet's `10%` would evict every node's pods at once).
    pub nodefs_available: Threshold,
    /// `pid.available`: process ids left (the lower of `pid_max` and
    /// `threads-max`, minus the tasks running), a number or a share
    /// (default off, as the kubelet's).
    pub pid_available: Threshold,
    /// How often the signals are read, in seconds (default 10, the
    /// kubelet's housekeeping interval).
    pub interval_secs: u64,
    /// Soft thresholds.
    pub soft: Soft,
    /// Their grace periods.
    pub soft_grace_period_secs: SoftGrace,
    /// The most grace a pod evicted for a soft threshold gets, in seconds
    /// (`evictionMaxPodGracePeriod`; its own `terminationGracePeriodSeconds`
    /// if that is less). A hard threshold kills at once.
    pub max_pod_grace_period_secs: u64,
    /// Per signal, how far above its threshold the node evicts once it has.
    pub minimum_reclaim: MinimumReclaim,
    /// Seconds a pressure condition (and its taint) stays after its
    /// thresholds are no longer met (`evictionPressureTransitionPeriod`,
    /// default 300 as the kubelet's), so a node near a threshold does not
    /// flap; 0: the condition follows each check.
    pub pressure_transition_period_secs: u64,
}

impl Default for Eviction {
    fn default() -> Self {
        Eviction {
            memory_available: Threshold::Bytes(100 << 20),
            nodefs_available: Threshold::Bytes(0),
            pid_available: Threshold::Bytes(0),
            interval_secs: 10,
            soft: Soft::default(),
            soft_grace_period_secs: SoftGrace::default(),
            max_pod_grace_period_secs: 0,
            minimum_reclaim: MinimumReclaim::default(),
            pressure_transition_period_secs: 300,
        }
    }
}

/// One threshold: bytes, or a percentage of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// An amount in bytes (0: off).
    Bytes(u64),
    /// A percentage of the capacity, 0 to 100 (0: off).
    Percent(f64),
}

impl Threshold {
    /// The threshold in bytes for `capacity`; `None`: off.
    pub fn bytes(&self, capacity: u64) -> Option<u64> {
        match *self {
            Threshold::Bytes(0) => None,
            Threshold::Bytes(b) => Some(b),
            Threshold::Percent(p) if p <= 0.0 => None,
            Threshold::Percent(p) => Some((capacity as f64 * p / 100.0) as u64),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Bytes(b) => f.write_str(&crate::units::binary_bytes(i128::from(*b))),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Threshold, String> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!("{s:?} is negative: it must be 0 or more"));
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage (as 10%)"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{s:?}: a percentage must be between 0% and 100%"));
            }
            return Ok(Threshold::Percent(v));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let mult: u64 = match suffix {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            _ => {
                return Err(format!(
                    "{s:?} is not a quantity (as 100Mi, 1Gi, 500M) or a percentage (as 10%)"
                ))
            }
        };
        let v: f64 = num.parse().map_err(|_| {
            format!("{s:?} is not a quantity (as 100Mi, 1Gi, 500M) or a percentage (as 10%)")
        })?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("{s:?} is too large"));
        }
        Ok(Threshold::Bytes(bytes as u64))
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Threshold, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl NodeConfig {
    /// Reads and validates a node config file.
    pub fn load(path: &Path) -> Result<Self> {
        let cfg: NodeConfig = crate::read_toml(path)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.eviction.interval_secs == 0 || self.eviction.interval_secs > 3600 {
            return Err(invalid(
                "eviction.interval_secs",
                format!(
                    "must be between 1 and 3600 seconds, got {}",
                    self.eviction.interval_secs
                ),
            ));
        }
        let soft = &self.eviction.soft;
        let grace = &self.eviction.soft_grace_period_secs;
        for (name, t, g) in [
            (
                "memory_available",
                soft.memory_available,
                grace.memory_available,
            ),
            (
                "nodefs_available",
                soft.nodefs_available,
                grace.nodefs_available,
            ),
            ("pid_available", soft.pid_available, grace.pid_available),
        ] {
            if t.bytes(u64::MAX).is_some() && g == 0 {
                return Err(invalid(
                    &format!("eviction.soft_grace_period_secs.{name}"),
                    format!(
                        "soft threshold eviction.soft.{name} = {t:?} needs a grace period \
                         above 0 (the kubelet's evictionSoftGracePeriod)",
                        t = t.to_string()
                    ),
                ));
            }
            if g > 86_400 {
                return Err(invalid(
                    &format!("eviction.soft_grace_period_secs.{name}"),
                    format!("must be at most 86400 seconds, got {g}"),
                ));
            }
        }
        if self.eviction.max_pod_grace_period_secs > 3600 {
            return Err(invalid(
                "eviction.max_pod_grace_period_secs",
                format!(
                    "must be at most 3600 seconds, got {}",
                    self.eviction.max_pod_grace_period_secs
                ),
            ));
        }
        if self.eviction.pressure_transition_period_secs > 86_400 {
            return Err(invalid(
                "eviction.pressure_transition_period_secs",
                format!(
                    "must be at most 86400 seconds, got {}",
                    self.eviction.pressure_transition_period_secs
                ),
            ));
        }
        self.shutdown.validate()
    }
}

impl Shutdown {
    /// Checks the shutdown budgets; the error names the first bad field.
    fn validate(&self) -> Result<()> {
        let s = self;
        let by_priority = "shutdown.grace_period_by_pod_priority";
        if !s.grace_period_by_pod_priority.is_empty() {
            for (set, field) in [
                (s.grace_period_secs, "shutdown.grace_period_secs"),
                (
                    s.critical_pods_grace_period_secs,
                    "shutdown.critical_pods_grace_period_secs",
                ),
            ] {
                if set != 0 {
                    return Err(invalid(
                        by_priority,
                        format!(
                            "cannot be set with {field} (= {set}): the per-priority budgets \
                             replace it, as the kubelet's shutdownGracePeriodByPodPriority \
                             replaces shutdownGracePeriod and shutdownGracePeriodCriticalPods"
                        ),
                    ));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, g) in s.grace_period_by_pod_priority.iter().enumerate() {
                if !seen.insert(g.priority) {
                    return Err(invalid(
                        &format!("{by_priority}[{i}].priority"),
                        format!("priority {} has a group already", g.priority),
                    ));
                }
            }
            let total = s.total_secs();
            if total > 3600 {
                return Err(invalid(
                    by_priority,
                    format!(
                        "the groups' grace_period_secs add up to {total} seconds, at most 3600"
                    ),
                ));
            }
            return Ok(());
        }
        if s.grace_period_secs > 3600 {
            return Err(invalid(
                "shutdown.grace_period_secs",
                format!("must be at most 3600 seconds, got {}", s.grace_period_secs),
            ));
        }
        if s.critical_pods_grace_period_secs > s.grace_period_secs {
            return Err(invalid(
                "shutdown.critical_pods_grace_period_secs",
                format!(
                    "{} is more than shutdown.grace_period_secs ({}): the critical pods' \
                     time is part of the whole shutdown's",
                    s.critical_pods_grace_period_secs, s.grace_period_secs
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_quantities_or_percentages() {
        for (s, want) in [
            ("100Mi", Threshold::Bytes(100 << 20)),
            ("1Gi", Threshold::Bytes(1 << 30)),
            ("500M", Threshold::Bytes(500_000_000)),
            ("1.5Gi", Threshold::Bytes(3 << 29)),
            ("4096", Threshold::Bytes(4096)),
            ("0", Threshold::Bytes(0)),
            ("10%", Threshold::Percent(10.0)),
            ("7.5%", Threshold::Percent(7.5)),
        ] {
            assert_eq!(s.parse::<Threshold>(), Ok(want), "{s}");
        }
        for (s, says) in [
            ("100MB", "not a quantity"),
            ("lots", "not a quantity"),
            ("120%", "between 0% and 100%"),
            ("x%", "not a percentage"),
        ] {
            let e = s.parse::<Threshold>().unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        assert_eq!(Threshold::Bytes(100 << 20).to_string(), "100Mi");
        assert_eq!(Threshold::Bytes(1 << 50).to_string(), "1Pi");
        assert_eq!(Threshold::Bytes(1500).to_string(), "1500");
        assert_eq!(Threshold::Percent(10.0).bytes(1000), Some(100));
        assert_eq!(Threshold::Bytes(0).bytes(1000), None);
        assert_eq!(Threshold::Percent(0.0).bytes(1000), None);
    }

    #[test]
    fn a_node_config_file_reads_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(
            &p,
            "[eviction]\nmemory_available = \"1Ti\"\nnodefs_available = \"5%\"\n",
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.eviction.memory_available, Threshold::Bytes(1 << 40));
        assert_eq!(c.eviction.nodefs_available, Threshold::Percent(5.0));
        assert_eq!(c.eviction.interval_secs, 10);
        assert_eq!(NodeConfig::default().eviction, Eviction::default());
        std::fs::write(&p, "[eviction]\nmemory_available = \"lots\"\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("memory_available") && e.contains("not a quantity"),
            "{e}"
        );
        std::fs::write(&p, "[eviction]\ninterval_secs = 0\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("eviction.interval_secs"), "{e}");
        // Soft thresholds need their grace periods; shutdown budgets nest.
        std::fs::write(
            &p,
            "[eviction]\nmax_pod_grace_period_secs = 5\n[eviction.soft]\nmemory_available = \"1Gi\"\n\
             pid_available = \"10%\"\n[eviction.soft_grace_period_secs]\nmemory_available = 30\n\
             pid_available = 5\n[shutdown]\ngrace_period_secs = 30\ncritical_pods_grace_period_secs = 10\n",
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.eviction.soft.memory_available, Threshold::Bytes(1 << 30));
        assert_eq!(c.eviction.soft.pid_available, Threshold::Percent(10.0));
        assert_eq!(c.eviction.soft_grace_period_secs.memory_available, 30);
        assert_eq!(c.eviction.max_pod_grace_period_secs, 5);
        assert_eq!(
            c.shutdown,
            Shutdown {
                grace_period_secs: 30,
                critical_pods_grace_period_secs: 10,
                ..Shutdown::default()
            }
        );
        std::fs::write(&p, "[eviction.soft]\nnodefs_available = \"5%\"\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("eviction.soft_grace_period_secs.nodefs_available")
                && e.contains("needs a grace period"),
            "{e}"
        );
        std::fs::write(
            &p,
            "[shutdown]\ngrace_period_secs = 10\ncritical_pods_grace_period_secs = 20\n",
        )
        .unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("shutdown.critical_pods_grace_period_secs") && e.contains("more than"),
            "{e}"
        );
        std::fs::write(&p, "[shutdown]\ngrace_period = 10\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("grace_period"), "{e}");
        std::fs::write(&p, "[evict]\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("evict"), "{e}");
    }

    /// Loads `text` as a node config file: the config, or the error's text.
    fn load(text: &str) -> std::result::Result<NodeConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, text).unwrap();
        NodeConfig::load(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn minimum_reclaim_and_the_transition_period_read_and_name_bad_fields() {
        let d = NodeConfig::default().eviction;
        assert_eq!(d.pressure_transition_period_secs, 300);
        assert_eq!(d.minimum_reclaim, MinimumReclaim::default());
        assert_eq!(d.minimum_reclaim.memory_available.bytes(1 << 30), None);
        let c = load(
            "[eviction]\npressure_transition_period_secs = 30\n\
             [eviction.minimum_reclaim]\nmemory_available = \"500Mi\"\n\
             nodefs_available = \"5%\"\npid_available = \"100\"\n",
        )
        .unwrap();
        assert_eq!(c.eviction.pressure_transition_period_secs, 30);
        assert_eq!(
            c.eviction.minimum_reclaim,
            MinimumReclaim {
                memory_available: Threshold::Bytes(500 << 20),
                nodefs_available: Threshold::Percent(5.0),
                pid_available: Threshold::Bytes(100),
            }
        );
        // (file, words the error must hold)
        for (text, says) in [
            (
                "[eviction.minimum_reclaim]\nmemory_available = \"-100Mi\"\n",
                &["memory_available", "negative"][..],
            ),
            (
                "[eviction.minimum_reclaim]\nnodefs_available = \"-5%\"\n",
                &["nodefs_available", "negative"],
            ),
            (
                "[eviction.minimum_reclaim]\nimagefs_available = \"1Gi\"\n",
                &["imagefs_available", "memory_available"],
            ),
            (
                "[eviction.minimum_reclaim]\n\"memory.available\" = \"1Gi\"\n",
                &["memory.available", "memory_available"],
            ),
            (
                "[eviction.minimum_reclaim]\npid_available = \"lots\"\n",
                &["pid_available", "not a quantity"],
            ),
            (
                "[eviction]\npressure_transition_period_secs = 100000\n",
                &["eviction.pressure_transition_period_secs", "at most 86400"],
            ),
            (
                "[eviction]\npressure_transition_period_secs = \"5m\"\n",
                &["pressure_transition_period_secs"],
            ),
            (
                "[eviction]\npressure_transition_period_secs = -1\n",
                &["pressure_transition_period_secs"],
            ),
        ] {
            let e = load(text).unwrap_err();
            for w in says {
                assert!(e.contains(w), "{text:?}: {e:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn shutdown_groups_by_priority_or_from_the_two_budgets() {
        let g = |priority, grace_period_secs| PriorityGrace {
            priority,
            grace_period_secs,
        };
        let c = load(
            "[[shutdown.grace_period_by_pod_priority]]\npriority = 100000\ngrace_period_secs = 10\n\
             [[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 20\n\
             [[shutdown.grace_period_by_pod_priority]]\npriority = 2000000000\ngrace_period_secs = 5\n",
        )
        .unwrap();
        // Sorted lowest priority first, whatever the file's order.
        assert_eq!(
            c.shutdown.groups(),
            vec![g(0, 20), g(100_000, 10), g(2_000_000_000, 5)]
        );
        assert_eq!(c.shutdown.total_secs(), 35);
        // The two-budget form is the kubelet's migration to two groups.
        let two = Shutdown {
            grace_period_secs: 30,
            critical_pods_grace_period_secs: 10,
            ..Shutdown::default()
        };
        assert_eq!(two.groups(), vec![g(0, 20), g(2_000_000_000, 10)]);
        assert_eq!(two.total_secs(), 30);
        assert_eq!(Shutdown::default().groups(), vec![]);
        assert_eq!(Shutdown::default().total_secs(), 0);
        for (text, says) in [
            (
                "[shutdown]\ngrace_period_secs = 30\n\
                 [[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 20\n",
                &[
                    "shutdown.grace_period_by_pod_priority",
                    "shutdown.grace_period_secs",
                ][..],
            ),
            (
                "[shutdown]\ncritical_pods_grace_period_secs = 5\n\
                 [[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 20\n",
                &[
                    "shutdown.grace_period_by_pod_priority",
                    "shutdown.critical_pods_grace_period_secs",
                ],
            ),
            (
                "[[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 20\n\
                 [[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 5\n",
                &["shutdown.grace_period_by_pod_priority[1].priority", "already"],
            ),
            (
                "[[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = 3000\n\
                 [[shutdown.grace_period_by_pod_priority]]\npriority = 9\ngrace_period_secs = 3000\n",
                &["shutdown.grace_period_by_pod_priority", "6000", "at most 3600"],
            ),
            (
                "[[shutdown.grace_period_by_pod_priority]]\npriority = 0\ngrace_period_secs = -5\n",
                &["grace_period_secs"],
            ),
            (
                "[[shutdown.grace_period_by_pod_priority]]\npriority = 0\n",
                &["grace_period_secs"],
            ),
            (
                "[[shutdown.grace_period_by_pod_priority]]\npriority = 3000000000\ngrace_period_secs = 5\n",
                &["priority"],
            ),
        ] {
            let e = load(text).unwrap_err();
            for w in says {
                assert!(e.contains(w), "{text:?}: {e:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn the_example_documents_the_defaults() {
        let c: NodeConfig = toml::from_str(include_str!("../examples/node.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(
            c,
            NodeConfig::default(),
            "examples/node.toml documents the defaults"
        );
    }
}
