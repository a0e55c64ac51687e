//! A work queue of object keys: a key queued twice is processed once; a key
//! that fails comes back after a per-key exponential back-off (5 ms doubling
//! to 30 s, as client-go's rate limiter but capped lower, so a controller
//! retries a write conflict at once and a broken object rarely).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

const BASE: Duration = Duration::from_millis(5);
const CAP: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Inner {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    later: BTreeMap<(Instant, u64), String>,
    seq: u64,
    failures: HashMap<String, u32>,
}

/// The queue; one consumer (its controller's loop).
#[derive(Default)]
pub struct WorkQueue {
    inner: RefCell<Inner>,
    wake: Notify,
}

impl WorkQueue {
    /// Queues `key` now (a no-op when it is already queued).
    pub fn add(&self, key: &str) {
        let mut g = self.inner.borrow_mut();
        if g.queued.insert(key.to_string()) {
            g.ready.push_back(key.to_string());
            drop(g);
            self.wake.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: &str, delay: Duration) {
        let mut g = self.inner.borrow_mut();
        g.seq += 1;
        let seq = g.seq;
        g.later
            .insert((Instant::now() + delay, seq), key.to_string());
        drop(g);
        self.wake.notify_one();
    }

    /// `key` failed: queue it again after its back-off, which doubles each time.
    pub fn retry(&self, key: &str) -> Duration {
        let n = {
            let mut g = self.inner.borrow_mut();
            let n = g.failures.entry(key.to_string()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let delay = backoff(n);
        self.add_after(key, delay);
        delay
    }

    /// `key` succeeded: its back-off starts over.
    pub fn forget(&self, key: &str) {
        self.inner.borrow_mut().failures.remove(key);
    }

    /// Keys waiting now (not counting delayed ones).
    pub fn len(&self) -> usize {
        self.inner.borrow().ready.len()
    }

    /// Whether no key waits now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key, waiting for one.
    pub async fn next(&self) -> String {
        loop {
            let due = {
                let mut g = self.inner.borrow_mut();
                let now = Instant::now();
                while let Some(entry) = g.later.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    if g.queued.insert(key.clone()) {
                        g.ready.push_back(key);
                    }
                }
                if let Some(k) = g.ready.pop_front() {
                    g.queued.remove(&k);
                    return k;
                }
                g.later.keys().next().map(|(at, _)| *at)
            };
            match due {
                Some(at) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// The back-off after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    (BASE * 2u32.pow(exp)).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_5ms_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(5), Duration::from_millis(80));
        assert_eq!(backoff(40), CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_deduplicated_and_retried_after_their_back_off() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
        let t0 = Instant::now();
        assert_eq!(q.retry("a"), Duration::from_millis(5));
        assert_eq!(q.next().await, "a");
        assert!(Instant::now() - t0 >= Duration::from_millis(5));
        assert_eq!(q.retry("a"), Duration::from_millis(10));
        q.forget("a");
        assert_eq!(
            q.retry("a"),
            Duration::from_millis(5),
            "forget resets the back-off"
        );
        // A delayed key already queued for now is processed once.
        q.add("a");
        assert_eq!(q.next().await, "a");
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(q.next().await, "a", "the delayed copy still comes");
        assert!(q.is_empty());
    }
}
