//! Scaling without a rollout (Kubernetes' `sync`/`scale` in `sync.go`): a
//! changed `spec.replicas`, or any pass of a paused Deployment. With several
//! active ReplicaSets mid-rollout the change is spread in proportion to their
//! sizes, so the rollout's shape survives.

use super::sync::{DESIRED, MAX_REPLICAS};
use super::{desired, is_recreate, max_surge, paused, Pass};

impl Pass<'_> {
    /// Kubernetes' `sync`: scale, prune history when paused, report.
    pub(super) fn sync(&mut self) {
        self.sync_revision(false);
        self.scale_all();
        if paused(self.d) {
            self.cleanup();
        }
        self.sync_status();
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was last sized for
    /// another `spec.replicas`.
    pub(super) fn is_scaling_event(&mut self) -> bool {
        self.sync_revision(false);
        let want = desired(self.d);
        (0..self.sets.len())
            .filter(|i| self.replicas(*i) > 0)
            .filter_map(|i| self.annotation_int(i, DESIRED))
            .any(|n| n != want)
    }

    fn annotation_int(&self, i: usize, key: &str) -> Option<i32> {
        self.sets[i]
            .rs
            .metadata
            .annotations
            .as_ref()?
            .get(key)?
            .parse()
            .ok()
    }

    /// Kubernetes' `scale`.
    fn scale_all(&mut self) {
        let want = desired(self.d);
        if let Some(i) = self.active_or_latest() {
            self.scale_and_record(i, want);
            return;
        }
        if self.new.is_some_and(|i| self.saturated(i)) {
            for i in self.olds() {
                if self.replicas(i) > 0 {
                    self.scale_and_record(i, 0);
                }
            }
            return;
        }
        if !is_recreate(self.d) {
            self.scale_proportionally();
        }
    }

    /// Kubernetes' `FindActiveOrLatest`: the only active ReplicaSet, or with
    /// none active the new (else the newest) one; `None` with several active.
    fn active_or_latest(&self) -> Option<usize> {
        let mut all = self.olds();
        self.sort_oldest_first(&mut all);
        all.reverse();
        let newest_old = all.first().copied();
        all.extend(self.new);
        let active: Vec<usize> = all.into_iter().filter(|i| self.replicas(*i) > 0).collect();
        match active.as_slice() {
            [] => self.new.or(newest_old),
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Kubernetes' `IsSaturated`: the new ReplicaSet has all replicas, sized
    /// for them, and all available.
    fn saturated(&self, i: usize) -> bool {
        let want = desired(self.d);
        let available = self.sets[i]
            .rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        self.replicas(i) == want
            && self.annotation_int(i, DESIRED) == Some(want)
            && available == want
    }

    /// Spreads replicas + maxSurge over the active ReplicaSets in proportion
    /// to their sizes; the largest takes the rounding leftover.
    fn scale_proportionally(&mut self) {
        let mut active: Vec<usize> = (0..self.sets.len())
            .filter(|i| self.replicas(*i) > 0)
            .collect();
        let total: i32 = active
            .iter()
            .map(|i| self.replicas(*i))
            .fold(0, i32::saturating_add);
        let want = desired(self.d);
        let allowed = if want > 0 {
            want.saturating_add(max_surge(self.d))
        } else {
            0
        };
        let to_add = allowed - total;
        // Largest first; ties: newer first when growing, older first when shrinking.
        self.sort_oldest_first(&mut active);
        if to_add > 0 {
            active.reverse();
        }
        active.sort_by_key(|i| std::cmp::Reverse(self.replicas(*i)));
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for &i in &active {
            let part = if to_add == 0 {
                0
            } else {
                self.proportion(i, to_add, added)
            };
            sizes.push(self.replicas(i) + part);
            added += part;
        }
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
        for (i, n) in active.into_iter().zip(sizes) {
            self.scale(i, n);
        }
    }

    /// Kubernetes' `GetProportion`: this ReplicaSet's share of `to_add`,
    /// never past what is left to add (or remove).
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        if self.replicas(i) == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `getReplicaSetFraction`: its size scaled from the
    /// Deployment's size when it was last sized to the size now.
    fn fraction(&self, i: usize) -> i32 {
        let want = desired(self.d);
        let n = self.replicas(i);
        if want == 0 {
            return -n;
        }
        let max_now = want.saturating_add(max_surge(self.d));
        let before = match self.annotation_int(i, MAX_REPLICAS) {
            Some(b) if b != 0 => b,
            // Edited by hand or copied: fall back to the Deployment's size.
            _ => match self.status.replicas.unwrap_or(0) {
                0 => return 0,
                r => r,
            },
        };
        let scaled = f64::from(n) * f64::from(max_now) / f64::from(before);
        // Go's math.Round: halves away from zero, as f64::round.
        (scaled.round() as i32).saturating_sub(n)
    }
}
