//! The newest log entries, kept decoded in memory.
//!
//! Replication to each follower and apply both read the entries the leader has
//! just appended; serving them from here spares a sled range scan and a decode
//! per reader. The cache always holds a suffix of the log (or nothing), so a
//! range starting inside it is answered from it in full.

type Entry = openraft::Entry<TypeConfig>;

use crate::types::TypeConfig;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

/// Entries kept at most.
const MAX_ENTRIES: usize = 1024;
/// Encoded bytes kept at most (the newest entry is kept whatever its size).
const MAX_BYTES: usize = 32 * 1024 * 1024;

/// A suffix of the log: `entries[i]` has index `first + i`.
#[derive(Default)]
pub struct LogCache {
    entries: VecDeque<(Entry, usize)>,
    first: u64,
    bytes: usize,
}

impl LogCache {
    /// Records an entry just appended at the end of the log, with its encoded size.
    pub fn push(&mut self, entry: Entry, size: usize) {
        let index = entry.log_id.index;
        // An append below the end rewrites the log from `index`; one past the
        // end leaves a gap we cannot serve across.
        self.truncate(index);
        if index != self.first + self.entries.len() as u64 {
            self.clear();
        }
        if self.entries.is_empty() {
            self.first = index;
        }
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > 1 && (self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES)
        {
            self.pop_front();
        }
    }

    /// Entries at or after `index` were removed from the log.
    pub fn truncate(&mut self, index: u64) {
        while !self.entries.is_empty() && self.first + self.entries.len() as u64 > index {
            let (_, size) = self.entries.pop_back().expect("not empty");
            self.bytes -= size;
        }
    }

    /// Entries at or before `index` were removed from the log.
    pub fn purge(&mut self, index: u64) {
        while !self.entries.is_empty() && self.first <= index {
            self.pop_front();
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
            self.first += 1;
        }
    }

    /// The entries of `range`, if the cache holds its start (and so all of it).
    pub fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        if self.entries.is_empty() || start < self.first {
            return None;
        }
        let end = self.first + self.entries.len() as u64;
        let end = match range.end_bound() {
            Bound::Included(i) => end.min(i.saturating_add(1)),
            Bound::Excluded(i) => end.min(*i),
            Bound::Unbounded => end,
        };
        let from = (start - self.first) as usize;
        let to = (end.max(start) - self.first) as usize;
        Some(
            self.entries
                .range(from..to)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(got: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        got.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn holds_a_suffix_of_the_log() {
        let mut c = LogCache::default();
        assert_eq!(indexes(c.get(&(1..))), None);
        for i in 5..=8 {
            c.push(entry(i), 10);
        }
        assert_eq!(indexes(c.get(&(6..8))), Some(vec![6, 7]));
        assert_eq!(indexes(c.get(&(6..=20))), Some(vec![6, 7, 8]));
        assert_eq!(indexes(c.get(&(9..))), Some(vec![]));
        assert_eq!(indexes(c.get(&(4..))), None, "starts before the cache");
        // Rewriting from 7 drops 7 and 8.
        c.push(entry(7), 10);
        assert_eq!(indexes(c.get(&(5..))), Some(vec![5, 6, 7]));
        c.truncate(6);
        assert_eq!(indexes(c.get(&(5..))), Some(vec![5]));
        c.purge(5);
        assert_eq!(indexes(c.get(&(5..))), None);
        // A gap restarts the cache.
        c.push(entry(6), 10);
        c.push(entry(9), 10);
        assert_eq!(indexes(c.get(&(6..))), None);
        assert_eq!(indexes(c.get(&(9..))), Some(vec![9]));
    }

    #[test]
    fn stays_bounded() {
        let mut c = LogCache::default();
        for i in 1..=(MAX_ENTRIES as u64 + 10) {
            c.push(entry(i), 1);
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert_eq!(indexes(c.get(&(10..12))), None);
        c.push(entry(MAX_ENTRIES as u64 + 11), MAX_BYTES);
        assert_eq!(
            c.entries.len(),
            1,
            "the newest entry stays whatever its size"
        );
    }
}
