//! The two rollout strategies (Kubernetes' `rolling.go`, `recreate.go`): one
//! step per pass; the ReplicaSet writes wake the next pass.

use super::status::complete;
use super::{desired, is_recreate, max_surge, max_unavailable, Pass};
use crate::meta;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

impl Pass<'_> {
    /// RollingUpdate: scale the new ReplicaSet up within maxSurge, else the
    /// old ones down within maxUnavailable, else prune history once complete.
    pub(super) fn rolling(&mut self) {
        if !self.sync_revision(true) {
            return;
        }
        if self.reconcile_new() || self.reconcile_old() {
            return self.rollout_status();
        }
        if complete(self.d, &self.status) {
            self.cleanup();
        }
        self.rollout_status();
    }

    /// Recreate: every old ReplicaSet to 0, wait until none of their pods
    /// runs (terminating ones included), then the new one to full size.
    pub(super) fn recreate(&mut self, pods: &[Arc<Pod>]) {
        if !self.sync_revision(false) {
            return;
        }
        let mut scaled = false;
        for i in self.olds() {
            if self.replicas(i) > 0 {
                scaled |= self.scale_and_record(i, 0);
            }
        }
        if scaled || self.old_pods_running(pods) {
            return self.rollout_status();
        }
        if self.new.is_none() && !self.sync_revision(true) {
            return;
        }
        if let Some(i) = self.new {
            self.scale_and_record(i, desired(self.d));
        }
        if complete(self.d, &self.status) {
            self.cleanup();
        }
        self.rollout_status();
    }

    /// Kubernetes' `oldPodsRunning`: old ReplicaSets still report pods, or a
    /// pod not of the new ReplicaSet is not finished.
    fn old_pods_running(&self, pods: &[Arc<Pod>]) -> bool {
        let reported: i32 = self
            .olds()
            .iter()
            .map(|i| self.sets[*i].rs.status.as_ref().map_or(0, |s| s.replicas))
            .fold(0, i32::saturating_add);
        if reported > 0 {
            return true;
        }
        let new_uid = self
            .new
            .and_then(|i| self.sets[i].rs.metadata.uid.as_deref());
        pods.iter().any(|p| {
            let owner = meta::controller_of(&p.metadata).map(|o| o.uid.as_str());
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            (new_uid.is_none() || owner != new_uid)
                && !matches!(phase, Some("Succeeded" | "Failed"))
        })
    }

    /// Kubernetes' `reconcileNewReplicaSet`: true when it scaled.
    fn reconcile_new(&mut self) -> bool {
        let Some(i) = self.new else { return false };
        let want = desired(self.d);
        let n = if self.replicas(i) > want {
            want
        } else {
            self.new_rs_new_replicas(i)
        };
        self.scale_and_record(i, n)
    }

    /// Kubernetes' `NewRSNewReplicas`: the new ReplicaSet's size within
    /// replicas + maxSurge pods in all (the full size for Recreate).
    pub(super) fn new_rs_new_replicas(&self, i: usize) -> i32 {
        let want = desired(self.d);
        if is_recreate(self.d) {
            return want;
        }
        let max_total = want.saturating_add(max_surge(self.d));
        let current = self.total_pods();
        if current >= max_total {
            return self.replicas(i);
        }
        let up = (max_total - current).min(want - self.replicas(i));
        self.replicas(i) + up.max(0)
    }

    /// The pods the surge counts: each ReplicaSet's replicas, or its active
    /// pods while it has more (a scale-down its controller has not carried
    /// out yet: new pods made first would stand beside them, above
    /// replicas + maxSurge).
    fn total_pods(&self) -> i32 {
        (0..self.sets.len())
            .map(|i| {
                let uid = self.sets[i].rs.metadata.uid.as_deref().unwrap_or("");
                let live = self.live.get(uid).copied().unwrap_or(0);
                self.replicas(i).max(live)
            })
            .fold(0, i32::saturating_add)
    }

    fn total_replicas(&self) -> i32 {
        (0..self.sets.len())
            .map(|i| self.replicas(i))
            .fold(0, i32::saturating_add)
    }

    /// Available pods by ReplicaSet status (what the ReplicaSets reported),
    /// never more than the ReplicaSet's replicas. The ReplicaSet controller
    /// reports the pods it had when it deleted its surplus (as Kubernetes'
    /// does) and the rest on its next pass; a status read in between counts
    /// pods already being deleted, and a scale-down trusting it takes the
    /// same pods away twice (issue 18: a leader died between the two
    /// passes, and the next one's first Deployment pass saw an old
    /// ReplicaSet of 3 report 4 available: 3 live pods, 2 Ready, for a floor
    /// of 3). Its pods above its replicas are being deleted; of the others at
    /// most the reported number are available.
    fn available(&self, i: usize) -> i32 {
        self.sets[i]
            .rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            .min(self.replicas(i))
    }

    /// Kubernetes' `reconcileOldReplicaSets`: scale old ReplicaSets down as
    /// far as keeps replicas - maxUnavailable available, counting the new
    /// ReplicaSet's unavailable pods against the budget. True when it scaled.
    fn reconcile_old(&mut self) -> bool {
        let Some(new) = self.new else { return false };
        let old: Vec<usize> = self
            .olds()
            .into_iter()
            .filter(|i| self.replicas(*i) > 0)
            .collect();
        if old.is_empty() {
            return false;
        }
        let min_available = desired(self.d) - max_unavailable(self.d);
        let new_unavailable = self.replicas(new) - self.available(new);
        let max_scaled_down = self.total_replicas() - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down);
        let scaled = self.scale_down_old(&old, min_available);
        cleaned + scaled > 0
    }

    /// Kubernetes' `cleanupUnhealthyReplicas`: drop old replicas that are
    /// not available first; they would otherwise block the rollout.
    fn cleanup_unhealthy(&mut self, old: &[usize], max_cleanup: i32) -> i32 {
        let mut old = old.to_vec();
        self.sort_oldest_first(&mut old);
        let mut total = 0;
        for i in old {
            if total >= max_cleanup {
                break;
            }
            let (n, avail) = (self.replicas(i), self.available(i));
            if n == 0 || n <= avail {
                continue;
            }
            let down = (max_cleanup - total).min(n - avail);
            self.scale_and_record(i, n - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `scaleDownOldReplicaSetsForRollingUpdate`: oldest first,
    /// only the available pods above replicas - maxUnavailable.
    fn scale_down_old(&mut self, old: &[usize], min_available: i32) -> i32 {
        let available: i32 = (0..self.sets.len())
            .map(|i| self.available(i))
            .fold(0, i32::saturating_add);
        if available <= min_available {
            return 0;
        }
        let budget = available - min_available;
        let mut old = old.to_vec();
        self.sort_oldest_first(&mut old);
        let mut total = 0;
        for i in old {
            if total >= budget {
                break;
            }
            let n = self.replicas(i);
            if n == 0 {
                continue;
            }
            let down = n.min(budget - total);
            self.scale_and_record(i, n - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: true when the size changed.
    pub(super) fn scale_and_record(&mut self, i: usize, n: i32) -> bool {
        if self.replicas(i) == n {
            return false;
        }
        self.scale(i, n)
    }

    /// Kubernetes' `scaleReplicaSet`: the size and the replica annotations.
    pub(super) fn scale(&mut self, i: usize, n: i32) -> bool {
        let changed = self.replicas(i) != n;
        self.set_replicas(i, n);
        self.set_replica_annotations(i);
        changed
    }
}
