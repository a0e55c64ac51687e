//! Graceful node shutdown, as the kubelet's shutdown manager does it
//! (`shutdownGracePeriod`, `shutdownGracePeriodCriticalPods`,
//! [`ferry_config::node::Shutdown`]).
//!
//! [`Progress`] is pure: once the node is told to shut down it stops the
//! regular pods within `grace_period_secs - critical_pods_grace_period_secs`,
//! then — when they are gone or their time is up — the critical pods
//! (priority `system-cluster-critical` and above, the kubelet's
//! `IsCriticalPod`) within `critical_pods_grace_period_secs`. Each pod gets
//! its group's budget as the most grace it has ([`crate::pods::NodeKill::shutdown`])
//! and ends `Failed`/`Terminated`. The shell is [`crate::agent`]: it turns
//! the Node NotReady (`node is shutting down`), refuses new pods
//! (`NodeShutdown`) and exits once [`Stage::Done`].

use ferry_config::node::Shutdown;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where a shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Regular pods are being stopped.
    Regular,
    /// Critical pods are being stopped (the regular ones are gone or out of time).
    Critical,
    /// Every pod is gone, or the whole budget is spent.
    Done,
}

/// After a group's budget, how long its SIGKILLed processes get to be reaped.
const REAP: Duration = Duration::from_secs(2);

/// A shutdown under way.
#[derive(Debug, Clone)]
pub struct Progress {
    cfg: Shutdown,
    started: Instant,
    critical_from: Option<Instant>,
}

impl Progress {
    /// A shutdown beginning at `now`.
    pub fn new(cfg: &Shutdown, now: Instant) -> Progress {
        Progress {
            cfg: cfg.clone(),
            started: now,
            critical_from: None,
        }
    }

    /// Seconds regular pods get.
    pub fn regular_budget(&self) -> u64 {
        self.cfg
            .grace_period_secs
            .saturating_sub(self.cfg.critical_pods_grace_period_secs)
    }

    /// Seconds critical pods get.
    pub fn critical_budget(&self) -> u64 {
        self.cfg.critical_pods_grace_period_secs
    }

    /// The stage at `now`, given whether any regular and any critical pod
    /// still runs.
    pub fn step(&mut self, now: Instant, regular_live: bool, critical_live: bool) -> Stage {
        let since = |at: Instant| now.saturating_duration_since(at);
        let regular_over = since(self.started) >= Duration::from_secs(self.regular_budget()) + REAP;
        if self.critical_from.is_none() && (!regular_live || regular_over) {
            self.critical_from = Some(now);
        }
        match self.critical_from {
            None => Stage::Regular,
            Some(at) => {
                let critical_over = since(at) >= Duration::from_secs(self.critical_budget()) + REAP;
                if (!regular_live && !critical_live) || critical_over {
                    Stage::Done
                } else {
                    Stage::Critical
                }
            }
        }
    }
}

/// Whether the kubelet counts `pod` critical (stopped last).
pub fn is_critical(pod: &Value) -> bool {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .is_some_and(|p| p >= i64::from(crate::eviction::SYSTEM_CRITICAL_PRIORITY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(grace: u64, critical: u64) -> Shutdown {
        Shutdown {
            grace_period_secs: grace,
            critical_pods_grace_period_secs: critical,
        }
    }

    #[test]
    fn regular_pods_go_first_then_critical_ones_within_their_budgets() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!((p.regular_budget(), p.critical_budget()), (20, 10));
        // (second, regular live, critical live, stage)
        for (s, r, c, want) in [
            (0, true, true, Stage::Regular),
            (10, true, true, Stage::Regular),
            // The regular budget (and the reaping time) is over.
            (22, true, true, Stage::Critical),
            (25, false, true, Stage::Critical),
            (33, false, true, Stage::Critical),
            (34, false, true, Stage::Done),
        ] {
            assert_eq!(p.step(at(s), r, c), want, "at {s}s");
        }
        // Regular pods gone early: critical pods start at once.
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!(p.step(at(1), true, true), Stage::Regular);
        assert_eq!(p.step(at(3), false, true), Stage::Critical);
        assert_eq!(p.step(at(4), false, false), Stage::Done);
        // No pods at all: done at once.
        let mut p = Progress::new(&cfg(30, 10), t0);
        assert_eq!(p.step(t0, false, false), Stage::Done);
        // No critical budget: done when the regular pods are.
        let mut p = Progress::new(&cfg(5, 0), t0);
        assert_eq!(p.step(at(1), true, false), Stage::Regular);
        assert_eq!(p.step(at(7), true, false), Stage::Critical);
        assert_eq!(p.step(at(9), true, false), Stage::Done);
    }

    #[test]
    fn critical_pods_are_those_of_system_priority() {
        for (priority, critical) in [
            (None, false),
            (Some(1000), false),
            (Some(1_999_999_999), false),
            (Some(2_000_000_000), true), // system-cluster-critical
            (Some(2_000_001_000), true), // system-node-critical
        ] {
            let pod = json!({"spec": {"priority": priority}});
            assert_eq!(is_critical(&pod), critical, "{priority:?}");
        }
    }
}
