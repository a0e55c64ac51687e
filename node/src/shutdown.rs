//! Graceful node shutdown, as the kubelet's shutdown manager does it
//! (`shutdownGracePeriod`, `shutdownGracePeriodCriticalPods`, or
//! `shutdownGracePeriodByPodPriority`, [`ferry_config::node::Shutdown`]).
//!
//! [`Progress`] is pure: once the node is told to shut down it stops its
//! pods group by group, lowest priority first ([`Shutdown::groups`]: the
//! per-priority budgets, or the two-budget form as the kubelet migrates it
//! — regular pods, then critical ones, priority `system-cluster-critical`
//! and above). A pod belongs to the group of the highest priority not above
//! its own, or to the lowest group ([`group_of`], the kubelet's
//! `groupByPriority`). A group's pods are stopped together, each with the
//! group's budget as the most grace it has
//! ([`crate::pods::NodeKill::shutdown`]), ending `Failed`/`Terminated`; the
//! next group starts when they are gone or the budget is up, and a group
//! with no pods is skipped. The shell is [`crate::agent`]: it turns the Node
//! NotReady (`node is shutting down`), refuses new pods (`NodeShutdown`) and
//! exits once [`Stage::Done`].

use ferry_config::node::{PriorityGrace, Shutdown};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where a shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The pods of this group (an index into [`Progress::groups`]) are being
    /// stopped, those of lower groups were.
    Stopping(usize),
    /// Every group is done: its pods gone, or its budget spent.
    Done,
}

/// After a group's budget, how long its SIGKILLed processes get to be reaped.
const REAP: Duration = Duration::from_secs(2);

/// A shutdown under way.
#[derive(Debug, Clone)]
pub struct Progress {
    groups: Vec<PriorityGrace>,
    /// The group being stopped.
    current: usize,
    /// Since when.
    current_from: Instant,
}

/// The index of the group in `groups` (sorted by priority, not empty) whose
/// pods include one of `priority`: the group of the highest priority not
/// above it, else the lowest (the kubelet's `groupByPriority`).
pub fn group_of(groups: &[PriorityGrace], priority: i32) -> usize {
    groups
        .iter()
        .rposition(|g| g.priority <= priority)
        .unwrap_or(0)
}

/// A pod's priority (`spec.priority`, 0 when unset).
pub fn priority(pod: &Value) -> i32 {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0)
}

impl Progress {
    /// A shutdown beginning at `now`.
    pub fn new(cfg: &Shutdown, now: Instant) -> Progress {
        Progress {
            groups: cfg.groups(),
            current: 0,
            current_from: now,
        }
    }

    /// The priority groups, lowest first.
    pub fn groups(&self) -> &[PriorityGrace] {
        &self.groups
    }

    /// The group of a pod of `priority` (0 when there are no groups).
    pub fn group(&self, priority: i32) -> usize {
        group_of(&self.groups, priority)
    }

    /// Seconds the pods of `group` get.
    pub fn budget(&self, group: usize) -> u64 {
        self.groups.get(group).map_or(0, |g| g.grace_period_secs)
    }

    /// The stage at `now`, given which groups still have a pod running
    /// (`live[i]` for group `i`; missing: none).
    pub fn step(&mut self, now: Instant, live: &[bool]) -> Stage {
        while self.current < self.groups.len() {
            let budget = Duration::from_secs(self.budget(self.current)) + REAP;
            let over = now.saturating_duration_since(self.current_from) >= budget;
            if live.get(self.current).copied().unwrap_or(false) && !over {
                return Stage::Stopping(self.current);
            }
            self.current += 1;
            self.current_from = now;
        }
        Stage::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(grace: u64, critical: u64) -> Shutdown {
        Shutdown {
            grace_period_secs: grace,
            critical_pods_grace_period_secs: critical,
            ..Shutdown::default()
        }
    }

    fn by_priority(groups: &[(i32, u64)]) -> Shutdown {
        Shutdown {
            grace_period_by_pod_priority: groups
                .iter()
                .map(|&(priority, grace_period_secs)| PriorityGrace {
                    priority,
                    grace_period_secs,
                })
                .collect(),
            ..Shutdown::default()
        }
    }

    #[test]
    fn regular_pods_go_first_then_critical_ones_within_their_budgets() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!((p.budget(0), p.budget(1)), (20, 10));
        let (regular, critical) = (p.group(0), p.group(2_000_000_000));
        assert_eq!((regular, critical), (0, 1));
        // (second, regular live, critical live, stage)
        for (s, r, c, want) in [
            (0, true, true, Stage::Stopping(0)),
            (10, true, true, Stage::Stopping(0)),
            // The regular budget (and the reaping time) is over.
            (22, true, true, Stage::Stopping(1)),
            (25, false, true, Stage::Stopping(1)),
            (33, false, true, Stage::Stopping(1)),
            (34, false, true, Stage::Done),
        ] {
            assert_eq!(p.step(at(s), &[r, c]), want, "at {s}s");
        }
        // Regular pods gone early: critical pods start at once.
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!(p.step(at(1), &[true, true]), Stage::Stopping(0));
        assert_eq!(p.step(at(3), &[false, true]), Stage::Stopping(1));
        assert_eq!(p.step(at(4), &[false, false]), Stage::Done);
        // No pods at all: done at once.
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!(p.step(t0, &[false, false]), Stage::Done);
        // No critical pods: done when the regular pods are (or their time).
        let mut p = Progress::new(&cfg(5, 0), t0);
        assert_eq!(p.step(at(1), &[true, false]), Stage::Stopping(0));
        assert_eq!(p.step(at(7), &[true, false]), Stage::Done);
        // Shutdown off: no groups, nothing to wait for.
        let mut p = Progress::new(&cfg(0, 0), t0);
        assert_eq!(p.step(t0, &[]), Stage::Done);
    }

    #[test]
    fn groups_by_priority_go_lowest_first_each_within_its_budget() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Listed out of order: sorted lowest first.
        let cfg = by_priority(&[(100_000, 10), (0, 20), (2_000_000_000, 5)]);
        let mut p = Progress::new(&cfg, t0);
        assert_eq!(
            (0..3).map(|g| p.budget(g)).collect::<Vec<_>>(),
            vec![20, 10, 5]
        );
        // (second, live per group, stage)
        for (s, live, want) in [
            (0, [true, true, true], Stage::Stopping(0)),
            (21, [true, true, true], Stage::Stopping(0)),
            // 20 s and the reaping time: the next group.
            (22, [true, true, true], Stage::Stopping(1)),
            // Its pods gone after 3 s: the critical group at once.
            (25, [true, false, true], Stage::Stopping(2)),
            (31, [true, false, true], Stage::Stopping(2)),
            (32, [true, false, true], Stage::Done),
        ] {
            assert_eq!(p.step(at(s), &live), want, "at {s}s");
        }
        // Groups with no pods are skipped without waiting.
        let mut p = Progress::new(&cfg, t0);
        assert_eq!(p.step(t0, &[false, true, true]), Stage::Stopping(1));
        assert_eq!(p.step(at(1), &[false, false, true]), Stage::Stopping(2));
        let mut p = Progress::new(&cfg, t0);
        assert_eq!(p.step(t0, &[false, true, false]), Stage::Stopping(1));
        assert_eq!(p.step(at(12), &[false, true, false]), Stage::Done);
    }

    #[test]
    fn pods_join_the_group_of_the_highest_priority_not_above_theirs() {
        let g = |priority| PriorityGrace {
            priority,
            grace_period_secs: 1,
        };
        let groups = [g(0), g(100_000), g(2_000_000_000)];
        // (pod priority, group)
        for (priority, want) in [
            (i32::MIN, 0),
            (-5, 0), // below the lowest group: the lowest
            (0, 0),
            (99_999, 0),
            (100_000, 1), // a group's own priority: that group
            (100_001, 1),
            (1_999_999_999, 1),
            (2_000_000_000, 2),
            (2_000_001_000, 2), // above the highest: the highest
            (i32::MAX, 2),
        ] {
            assert_eq!(group_of(&groups, priority), want, "priority {priority}");
        }
        // One group takes every pod.
        assert_eq!(group_of(&[g(1000)], -1), 0);
        assert_eq!(group_of(&[g(1000)], 5000), 0);
        // A pod's priority from its spec.
        for (pod, want) in [
            (json!({"spec": {}}), 0),
            (json!({"spec": {"priority": 1000}}), 1000),
            (json!({"spec": {"priority": -10}}), -10),
            (json!({"spec": {"priority": 2_000_001_000}}), 2_000_001_000),
        ] {
            assert_eq!(priority(&pod), want, "{pod}");
        }
    }
}
