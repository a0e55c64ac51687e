//! Remembered request ids: exactly-once writes (Raft dissertation §6.3).
//!
//! A `Command::V2` write carries a [`RequestId`]. Its outcome is stored under
//! `r/<id>` with the id's sequence number (ids remembered before it) and the
//! entry's leader-stamped time; `q/<rev>` lists the ids an entry remembered, in
//! log order, for expiry. A write whose id is remembered and still valid is not
//! applied again: it answers the stored outcome.
//!
//! Validity is a function of the log alone — fewer than [`MAX_IDS`] ids
//! remembered since, and at most [`MAX_AGE_MS`] older than the current entry's
//! leader time — and is checked on every lookup. Physical deletion of expired
//! records is lazy and bounded per apply call, so it may differ between masters
//! without changing any answer. A record is only deleted by the `q/` record that
//! remembered it (a newer record of the same id has a higher sequence number).

use super::apply::Writes;
use super::keys;
use crate::types::{decode, encode};
use ferry_api::kv::{KvError, RequestId, WriteOutcome};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An id is forgotten once this many ids were remembered after it.
pub const MAX_IDS: u64 = 250_000;
/// An id is forgotten once an entry's leader time is this much later than its own.
pub const MAX_AGE_MS: u64 = 10 * 60 * 1000;
/// Expired `q/` records deleted per expiry pass beyond twice the entries added.
const EXPIRE_SLACK: usize = 8;
/// An apply call looks for expired records when the id count crosses a
/// multiple of this (not on every call: the scan costs more than the deletes).
const EXPIRE_EVERY: u64 = 256;

/// The outcome of one write, as remembered under `r/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    seq: u64,
    at_ms: u64,
    result: Result<WriteOutcome, KvError>,
}

/// The ids one entry remembered (`q/<rev>`).
#[derive(Debug, Serialize, Deserialize)]
struct EntryIds {
    /// Sequence number of the last id.
    last_seq: u64,
    at_ms: u64,
    ids: Vec<RequestId>,
}

/// One apply call's view of the remembered ids.
#[derive(Default)]
pub struct Sessions {
    /// Ids remembered so far (`m/requests`), loaded on first use.
    seq: Option<u64>,
    /// The count as loaded (`None`: not loaded from the tree).
    start: Option<u64>,
    overlay: HashMap<RequestId, Remembered>,
    revision: u64,
    at_ms: u64,
    /// Ids the current entry remembered.
    entry: Vec<RequestId>,
    /// Entries of this call that remembered ids.
    entries: usize,
}

fn record_key(id: RequestId) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(keys::REQUEST);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

fn entry_key(revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.extend_from_slice(keys::REQUESTS_BY_REV);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

impl Sessions {
    fn seq(&mut self, tree: &sled::Tree) -> crate::Result<u64> {
        if let Some(s) = self.seq {
            return Ok(s);
        }
        let s = match tree.get(keys::REQUEST_SEQ)? {
            Some(b) => decode(&b, "request id count")?,
            None => 0,
        };
        self.seq = Some(s);
        self.start = Some(s);
        Ok(s)
    }

    /// Starts a V2 entry at `revision`, stamped `at_ms` by its leader.
    pub fn begin(&mut self, revision: u64, at_ms: u64) {
        self.revision = revision;
        self.at_ms = at_ms;
        self.entry.clear();
    }

    /// The remembered outcome of `id`, if it is still valid.
    pub fn lookup(
        &mut self,
        tree: &sled::Tree,
        id: RequestId,
    ) -> crate::Result<Option<Result<WriteOutcome, KvError>>> {
        let seq = self.seq(tree)?;
        let rec = match self.overlay.get(&id) {
            Some(r) => r.clone(),
            None => match tree.get(record_key(id))? {
                Some(b) => decode::<Remembered>(&b, "remembered request")?,
                None => return Ok(None),
            },
        };
        let valid = seq.saturating_sub(rec.seq) < MAX_IDS
            && self.at_ms.saturating_sub(rec.at_ms) <= MAX_AGE_MS;
        Ok(valid.then_some(rec.result))
    }

    /// Remembers `result` as the outcome of `id`.
    pub fn remember(
        &mut self,
        tree: &sled::Tree,
        batch: &mut Writes,
        id: RequestId,
        result: &Result<WriteOutcome, KvError>,
    ) -> crate::Result<()> {
        let seq = self.seq(tree)? + 1;
        self.seq = Some(seq);
        let rec = Remembered {
            seq,
            at_ms: self.at_ms,
            result: result.clone(),
        };
        batch.insert(record_key(id), encode(&rec));
        self.overlay.insert(id, rec);
        self.entry.push(id);
        Ok(())
    }

    /// Ends the entry: records which ids it remembered.
    pub fn end(&mut self, batch: &mut Writes) {
        if self.entry.is_empty() {
            return;
        }
        let rec = EntryIds {
            last_seq: self.seq.expect("set by remember"),
            at_ms: self.at_ms,
            ids: std::mem::take(&mut self.entry),
        };
        batch.insert(entry_key(self.revision), encode(&rec));
        self.entries += 1;
    }

    /// Ends the apply call: stores the id count and deletes some expired records.
    pub fn finish(&mut self, tree: &sled::Tree, batch: &mut Writes) -> crate::Result<()> {
        if self.entries == 0 {
            return Ok(());
        }
        let seq = self.seq.expect("set by remember");
        batch.insert(keys::REQUEST_SEQ, encode(&seq));
        if self
            .start
            .is_some_and(|s| s / EXPIRE_EVERY == seq / EXPIRE_EVERY)
        {
            return Ok(());
        }
        // Up to EXPIRE_EVERY ids (so entries) were added since the last pass.
        let since = self.start.map_or(0, |_| EXPIRE_EVERY as usize);
        let budget = 2 * (self.entries + since) + EXPIRE_SLACK;
        for item in tree.scan_prefix(keys::REQUESTS_BY_REV).take(budget) {
            let (k, v) = item?;
            let e: EntryIds = decode(&v, "remembered request ids")?;
            let expired = seq.saturating_sub(e.last_seq) >= MAX_IDS
                || self.at_ms.saturating_sub(e.at_ms) > MAX_AGE_MS;
            if !expired {
                break;
            }
            for id in e.ids {
                if self.overlay.contains_key(&id) {
                    continue; // remembered again by this call
                }
                let key = record_key(id);
                let Some(b) = tree.get(&key)? else { continue };
                if decode::<Remembered>(&b, "remembered request")?.seq <= e.last_seq {
                    batch.remove(key);
                }
            }
            batch.remove(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(revision: u64) -> Result<WriteOutcome, KvError> {
        Ok(WriteOutcome {
            revision,
            prev: vec![],
        })
    }

    /// Remembers one id per entry at revisions `from..to`, `at_ms` = revision.
    fn fill(tree: &sled::Tree, from: u64, to: u64) {
        let mut s = Sessions::default();
        let mut batch = Writes::default();
        for rev in from..to {
            s.begin(rev, rev);
            s.remember(tree, &mut batch, RequestId(rev as u128), &ok(rev))
                .unwrap();
            s.end(&mut batch);
        }
        s.finish(tree, &mut batch).unwrap();
        batch.write_to(tree).unwrap();
    }

    fn lookup(tree: &sled::Tree, at_ms: u64, id: u128) -> Option<Result<WriteOutcome, KvError>> {
        let mut s = Sessions::default();
        s.begin(u64::MAX, at_ms);
        s.lookup(tree, RequestId(id)).unwrap()
    }

    #[test]
    fn ids_expire_by_count_and_age_and_are_deleted_in_bounded_steps() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        fill(&tree, 1, 31);
        assert_eq!(lookup(&tree, 30, 1), Some(ok(1)));
        assert_eq!(lookup(&tree, 30, 99), None);
        // By age: the entry's leader time, not the applier's clock.
        assert_eq!(lookup(&tree, 1 + MAX_AGE_MS, 1), Some(ok(1)));
        assert_eq!(lookup(&tree, 2 + MAX_AGE_MS, 1), None);
        assert_eq!(lookup(&tree, 2 + MAX_AGE_MS, 2), Some(ok(2)));

        // By count: MAX_IDS ids after id 1, it is invalid whatever the time.
        let mut s = Sessions::default();
        let mut batch = Writes::default();
        s.begin(31, 31);
        s.seq = Some(MAX_IDS);
        s.remember(&tree, &mut batch, RequestId(1000), &ok(31))
            .unwrap();
        s.end(&mut batch);
        s.finish(&tree, &mut batch).unwrap();
        batch.write_to(&tree).unwrap();
        assert_eq!(lookup(&tree, 31, 1), None, "count expiry");
        assert_eq!(lookup(&tree, 31, 2), Some(ok(2)));
        assert!(tree.get(record_key(RequestId(1))).unwrap().is_none());
        assert!(tree.get(entry_key(1)).unwrap().is_none());
        assert!(tree.get(record_key(RequestId(2))).unwrap().is_some());

        // Everything expires by age at once: one apply call deletes a bounded
        // number of records; the rest stay on disk but answer nothing.
        let late = 100 + MAX_AGE_MS;
        let mut s = Sessions::default();
        let mut batch = Writes::default();
        s.begin(32, late);
        s.seq = Some(MAX_IDS + 1); // as stored, without scheduling the pass by count
        s.remember(&tree, &mut batch, RequestId(2000), &ok(32))
            .unwrap();
        s.end(&mut batch);
        s.finish(&tree, &mut batch).unwrap();
        batch.write_to(&tree).unwrap();
        let left = tree.scan_prefix(keys::REQUESTS_BY_REV).count();
        assert_eq!(left, 30 - (2 + EXPIRE_SLACK) + 1);
        assert_eq!(lookup(&tree, late, 30), None);
        assert_eq!(lookup(&tree, late, 2000), Some(ok(32)));
    }

    #[test]
    fn expiry_keeps_a_newer_record_of_the_same_id() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        fill(&tree, 1, 3);
        // Id 1 comes back after its record expired by age: remembered anew.
        let mut s = Sessions::default();
        let mut batch = Writes::default();
        let late = 10 + MAX_AGE_MS;
        s.begin(3, late);
        s.seq = Some(2); // as stored, without scheduling the pass by count
        assert_eq!(s.lookup(&tree, RequestId(1)).unwrap(), None);
        s.remember(&tree, &mut batch, RequestId(1), &ok(3)).unwrap();
        s.end(&mut batch);
        s.finish(&tree, &mut batch).unwrap();
        batch.write_to(&tree).unwrap();
        assert!(
            tree.get(entry_key(1)).unwrap().is_none(),
            "old entry expired"
        );
        assert_eq!(lookup(&tree, late, 1), Some(ok(3)));
        // Later expiry of nothing else does not touch it either.
        fill(&tree, 4, 5);
        assert_eq!(lookup(&tree, late, 1), Some(ok(3)));
    }
}
