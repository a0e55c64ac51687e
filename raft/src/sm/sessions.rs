//! Remembered request ids: exactly-once writes (Raft dissertation §6.3).
//!
//! A `Command::V2` write carries a [`RequestId`]. The ids an entry remembered
//! and their outcomes are stored together under `o/<rev><part>` (one record per
//! entry; a new part once a record holds [`PART_BYTES`] of outcomes), with the
//! sequence number of the part's last id (ids remembered before it, counted in
//! `m/requests`) and the entry's leader-stamped time. A write whose id is
//! remembered and still valid is not applied again: it answers the stored
//! outcome.
//!
//! A stored success holds no values: only its revision and, per op, where its
//! previous value can be found again ([`PrevRef`]: the history's `p/` record of
//! the op's own event, or the checked value's revision and version). A repeat
//! rebuilds the previous values from there while the history still holds them
//! (the watch window); past it, the repeat answers the revision with no previous
//! values. So an id costs a few dozen bytes, and the window can be wide.
//!
//! Every master keeps a [`RequestIndex`] in memory — id to the revision of the
//! record that holds it — rebuilt from the records whenever the tree is opened
//! or replaced, so a write whose id is new (nearly all of them) costs no read.
//!
//! Validity is a function of the log alone — fewer than [`MAX_IDS`] ids
//! remembered since, and at most [`MAX_AGE_MS`] older than the current entry's
//! leader time — and is checked on every lookup. Physical deletion of expired
//! records is lazy and bounded per apply call, so it may differ between masters
//! without changing any answer. A deleted record takes its ids out of the index
//! only where the index still points at it (an id remembered anew points at its
//! newer record).

use super::apply::Writes;
use super::keys;
use crate::types::{decode, encode};
use ferry_api::kv::{KvError, RequestId, WriteOutcome};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An id is forgotten once this many ids were remembered after it: 70 s of
/// writes at 25 000 a second (the store's peak here), over twice the clients'
/// and the API server's 30 s retry deadline. The in-memory index then still
/// fits one 2^21-bucket table (~50 MiB).
pub const MAX_IDS: u64 = 1_750_000;
/// An id is forgotten once an entry's leader time is this much later than its own.
pub const MAX_AGE_MS: u64 = 10 * 60 * 1000;
/// Expired records deleted per expiry pass beyond twice the records added.
const EXPIRE_SLACK: usize = 8;
/// An apply call looks for expired records when the id count crosses a
/// multiple of this (not on every call: the scan costs more than the deletes).
const EXPIRE_EVERY: u64 = 256;
/// A record closes once its outcomes hold this many bytes, so a stored record
/// stays well under sled's value limit (one outcome can hold a 1.5 MiB value).
const PART_BYTES: usize = 1024 * 1024;

type Outcome = Result<WriteOutcome, KvError>;

/// Where a remembered success's previous value of one op can be read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrevRef {
    /// The key did not exist.
    Absent,
    /// The op wrote event `seq` of the outcome's revision: its previous value
    /// is that event's history record `p/<revision><seq>`.
    Replaced(u32),
    /// A `Check` op saw the key's value of this `mod_revision` and `version`.
    Checked { mod_revision: u64, version: u64 },
}

/// A remembered outcome as stored. The first two variants encode exactly as
/// `Result<WriteOutcome, KvError>`, so records of the layout that kept whole
/// outcomes still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stored {
    /// A success with its previous values (earlier records; this call's own).
    Full(WriteOutcome),
    /// A business failure.
    Failed(KvError),
    /// A success at `revision`, its previous values by reference.
    Applied { revision: u64, prev: Vec<PrevRef> },
}

impl From<Outcome> for Stored {
    fn from(o: Outcome) -> Stored {
        match o {
            Ok(out) => Stored::Full(out),
            Err(e) => Stored::Failed(e),
        }
    }
}

/// Ids and outcomes remembered by one entry (`o/<rev><part>`). The head fields
/// come first, so [`PartHead`] decodes from the same bytes without the outcomes.
#[derive(Debug, Serialize, Deserialize)]
struct Part {
    /// Sequence number of the last id.
    last_seq: u64,
    at_ms: u64,
    ids: Vec<RequestId>,
    /// Each id's encoded [`Stored`] outcome, in the order of `ids`.
    outcomes: Vec<serde_bytes::ByteBuf>,
}

#[derive(Debug, Deserialize)]
struct PartHead {
    last_seq: u64,
    at_ms: u64,
    ids: Vec<RequestId>,
}

fn part_key(revision: u64, part: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(14);
    k.extend_from_slice(keys::REMEMBERED);
    k.extend_from_slice(&revision.to_be_bytes());
    k.extend_from_slice(&part.to_be_bytes());
    k
}

fn part_prefix(revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.extend_from_slice(keys::REMEMBERED);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

fn revision_of(key: &[u8]) -> crate::Result<u64> {
    key.get(keys::REMEMBERED.len()..keys::REMEMBERED.len() + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| crate::Error::Corrupt("remembered request key too short".into()))
}

/// An id as the index keys it: two `u64`s (8-byte aligned, where a `u128`
/// would make every entry 32 bytes instead of 24).
fn index_key(id: RequestId) -> (u64, u64) {
    ((id.0 >> 64) as u64, id.0 as u64)
}

/// Every remembered id still on disk, and the revision of its record.
#[derive(Debug, Default, PartialEq)]
pub struct RequestIndex(HashMap<(u64, u64), u64>);

impl RequestIndex {
    /// Reads the index from the records in `tree`, and drops the records of
    /// the first exactly-once layout (`r/`, `q/`), which nothing reads.
    pub fn load(tree: &sled::Tree) -> crate::Result<RequestIndex> {
        for old in [&b"r/"[..], &b"q/"[..]] {
            for item in tree.scan_prefix(old).keys() {
                tree.remove(item?)?;
            }
        }
        let mut index = HashMap::new();
        for item in tree.scan_prefix(keys::REMEMBERED) {
            let (k, v) = item?;
            let rev = revision_of(&k)?;
            let head: PartHead = decode(&v, "remembered requests")?;
            for id in head.ids {
                index.insert(index_key(id), rev);
            }
        }
        Ok(RequestIndex(index))
    }

    /// Whether `id` is in the index (remembered, perhaps expired).
    pub fn contains(&self, id: RequestId) -> bool {
        self.0.contains_key(&index_key(id))
    }

    /// Ids in the index.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes in what one apply call wrote, once its batch landed.
    pub fn commit(&mut self, changes: IndexChanges) {
        for (id, rev) in changes.removed {
            let key = index_key(id);
            if self.0.get(&key) == Some(&rev) {
                self.0.remove(&key);
            }
        }
        self.0.extend(
            changes
                .added
                .into_iter()
                .map(|(id, rev)| (index_key(id), rev)),
        );
    }
}

/// An apply call's changes to the [`RequestIndex`], applied after its batch.
#[derive(Debug, Default)]
pub struct IndexChanges {
    added: Vec<(RequestId, u64)>,
    removed: Vec<(RequestId, u64)>,
}

/// An id remembered earlier in this apply call.
struct Pending {
    seq: u64,
    at_ms: u64,
    outcome: Outcome,
}

/// One apply call's view of the remembered ids.
pub struct Sessions<'i> {
    index: &'i RequestIndex,
    /// Ids remembered so far (`m/requests`), loaded on first use.
    seq: Option<u64>,
    /// The count as loaded (`None`: not loaded from the tree).
    start: Option<u64>,
    pending: HashMap<RequestId, Pending>,
    revision: u64,
    at_ms: u64,
    /// The current entry's open record and its number.
    part: Part,
    part_no: u32,
    part_bytes: usize,
    /// Records written by this call.
    parts: usize,
    changes: IndexChanges,
}

impl<'i> Sessions<'i> {
    pub fn new(index: &'i RequestIndex) -> Self {
        Sessions {
            index,
            seq: None,
            start: None,
            pending: HashMap::new(),
            revision: 0,
            at_ms: 0,
            part: Part {
                last_seq: 0,
                at_ms: 0,
                ids: Vec::new(),
                outcomes: Vec::new(),
            },
            part_no: 0,
            part_bytes: 0,
            parts: 0,
            changes: IndexChanges::default(),
        }
    }

    /// The index changes of this call, for [`RequestIndex::commit`].
    pub fn into_changes(self) -> IndexChanges {
        self.changes
    }

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
        self.part_no = 0;
        self.part_bytes = 0;
        self.part.ids.clear();
        self.part.outcomes.clear();
    }

    /// The remembered outcome of `id`, if it is still valid: whole when it was
    /// remembered earlier in this apply call, else as stored.
    pub fn lookup(&mut self, tree: &sled::Tree, id: RequestId) -> crate::Result<Option<Stored>> {
        let (seq, at_ms, outcome) = if let Some(p) = self.pending.get(&id) {
            (p.seq, p.at_ms, Stored::from(p.outcome.clone()))
        } else if let Some(&rev) = self.index.0.get(&index_key(id)) {
            match Self::read(tree, rev, id)? {
                Some(found) => found,
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let now = self.seq(tree)?;
        let valid =
            now.saturating_sub(seq) < MAX_IDS && self.at_ms.saturating_sub(at_ms) <= MAX_AGE_MS;
        Ok(valid.then_some(outcome))
    }

    /// `id`'s sequence number, time and outcome from the records of `revision`.
    fn read(
        tree: &sled::Tree,
        revision: u64,
        id: RequestId,
    ) -> crate::Result<Option<(u64, u64, Stored)>> {
        for item in tree.scan_prefix(part_prefix(revision)) {
            let (_, v) = item?;
            let part: Part = decode(&v, "remembered requests")?;
            if let Some(pos) = part.ids.iter().position(|x| *x == id) {
                let seq = part.last_seq - (part.ids.len() - 1 - pos) as u64;
                let bytes = part.outcomes.get(pos).ok_or_else(|| {
                    crate::Error::Corrupt("remembered requests: an outcome is missing".into())
                })?;
                return Ok(Some((
                    seq,
                    part.at_ms,
                    decode(bytes, "remembered outcome")?,
                )));
            }
        }
        Ok(None)
    }

    /// Remembers `outcome` as the outcome of `id`, stored as `stored`.
    pub fn remember(
        &mut self,
        tree: &sled::Tree,
        batch: &mut Writes,
        id: RequestId,
        outcome: &Outcome,
        stored: &Stored,
    ) -> crate::Result<()> {
        let seq = self.seq(tree)? + 1;
        self.seq = Some(seq);
        let bytes = encode(stored);
        self.part_bytes += bytes.len();
        self.part.ids.push(id);
        self.part.outcomes.push(serde_bytes::ByteBuf::from(bytes));
        self.pending.insert(
            id,
            Pending {
                seq,
                at_ms: self.at_ms,
                outcome: outcome.clone(),
            },
        );
        self.changes.added.push((id, self.revision));
        if self.part_bytes >= PART_BYTES {
            self.close_part(batch);
        }
        Ok(())
    }

    fn close_part(&mut self, batch: &mut Writes) {
        if self.part.ids.is_empty() {
            return;
        }
        self.part.last_seq = self.seq.expect("set by remember");
        self.part.at_ms = self.at_ms;
        batch.insert(part_key(self.revision, self.part_no), encode(&self.part));
        self.part.ids.clear();
        self.part.outcomes.clear();
        self.part_no += 1;
        self.part_bytes = 0;
        self.parts += 1;
    }

    /// Ends the entry: stores what it remembered.
    pub fn end(&mut self, batch: &mut Writes) {
        self.close_part(batch);
    }

    /// Ends the apply call: stores the id count and deletes some expired records.
    pub fn finish(&mut self, tree: &sled::Tree, batch: &mut Writes) -> crate::Result<()> {
        if self.parts == 0 {
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
        // Up to EXPIRE_EVERY ids (so records) were added since the last pass.
        let since = self.start.map_or(0, |_| EXPIRE_EVERY as usize);
        let budget = 2 * (self.parts + since) + EXPIRE_SLACK;
        for item in tree.scan_prefix(keys::REMEMBERED).take(budget) {
            let (k, v) = item?;
            let head: PartHead = decode(&v, "remembered requests")?;
            let expired = seq.saturating_sub(head.last_seq) >= MAX_IDS
                || self.at_ms.saturating_sub(head.at_ms) > MAX_AGE_MS;
            if !expired {
                break;
            }
            let rev = revision_of(&k)?;
            self.changes
                .removed
                .extend(head.ids.into_iter().map(|id| (id, rev)));
            batch.remove(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::kv::KeyValue;

    fn ok(revision: u64) -> Outcome {
        Ok(WriteOutcome {
            revision,
            prev: vec![None],
        })
    }

    /// Remembers `outcome` whole (as the first layout stored every outcome).
    fn remember(
        s: &mut Sessions,
        tree: &sled::Tree,
        batch: &mut Writes,
        id: RequestId,
        outcome: &Outcome,
    ) -> crate::Result<()> {
        s.remember(tree, batch, id, outcome, &Stored::from(outcome.clone()))
    }

    fn whole(stored: Stored) -> Outcome {
        match stored {
            Stored::Full(out) => Ok(out),
            Stored::Failed(e) => Err(e),
            Stored::Applied { .. } => panic!("a whole outcome was stored: {stored:?}"),
        }
    }

    /// Runs one apply call: `f` with fresh sessions, then the batch and the
    /// index changes land.
    fn call(
        tree: &sled::Tree,
        index: &mut RequestIndex,
        f: impl FnOnce(&mut Sessions, &mut Writes),
    ) {
        let mut batch = Writes::default();
        let mut s = Sessions::new(index);
        f(&mut s, &mut batch);
        s.finish(tree, &mut batch).unwrap();
        let changes = s.into_changes();
        batch.write_to(tree).unwrap();
        index.commit(changes);
    }

    /// Remembers one id per entry at revisions `from..to`, `at_ms` = revision.
    fn fill(tree: &sled::Tree, index: &mut RequestIndex, from: u64, to: u64) {
        call(tree, index, |s, batch| {
            for rev in from..to {
                s.begin(rev, rev);
                remember(s, tree, batch, RequestId(rev as u128), &ok(rev)).unwrap();
                s.end(batch);
            }
        });
    }

    fn lookup(tree: &sled::Tree, index: &RequestIndex, at_ms: u64, id: u128) -> Option<Outcome> {
        let mut s = Sessions::new(index);
        s.begin(u64::MAX, at_ms);
        s.lookup(tree, RequestId(id)).unwrap().map(whole)
    }

    fn records(tree: &sled::Tree) -> usize {
        tree.scan_prefix(keys::REMEMBERED).count()
    }

    #[test]
    fn ids_expire_by_count_and_age_and_are_deleted_in_bounded_steps() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut index = RequestIndex::default();
        fill(&tree, &mut index, 1, 31);
        assert_eq!(lookup(&tree, &index, 30, 1), Some(ok(1)));
        assert_eq!(lookup(&tree, &index, 30, 99), None);
        // By age: the entry's leader time, not the applier's clock.
        assert_eq!(lookup(&tree, &index, 1 + MAX_AGE_MS, 1), Some(ok(1)));
        assert_eq!(lookup(&tree, &index, 2 + MAX_AGE_MS, 1), None);
        assert_eq!(lookup(&tree, &index, 2 + MAX_AGE_MS, 2), Some(ok(2)));

        // By count: MAX_IDS ids after id 1, it is invalid whatever the time.
        call(&tree, &mut index, |s, batch| {
            s.begin(31, 31);
            s.seq = Some(MAX_IDS);
            remember(s, &tree, batch, RequestId(1000), &ok(31)).unwrap();
            s.end(batch);
        });
        assert_eq!(lookup(&tree, &index, 31, 1), None, "count expiry");
        assert_eq!(lookup(&tree, &index, 31, 2), Some(ok(2)));
        assert!(tree.get(part_key(1, 0)).unwrap().is_none());
        assert!(!index.contains(RequestId(1)), "out of the index");
        assert!(tree.get(part_key(2, 0)).unwrap().is_some());

        // Everything expires by age at once: one apply call deletes a bounded
        // number of records; the rest stay on disk but answer nothing.
        let late = 100 + MAX_AGE_MS;
        call(&tree, &mut index, |s, batch| {
            s.begin(32, late);
            s.seq = Some(MAX_IDS + 1); // as stored, without scheduling the pass by count
            remember(s, &tree, batch, RequestId(2000), &ok(32)).unwrap();
            s.end(batch);
        });
        assert_eq!(records(&tree), 30 - (2 + EXPIRE_SLACK) + 1);
        assert_eq!(index.len(), records(&tree), "one id per record");
        assert_eq!(lookup(&tree, &index, late, 30), None);
        assert_eq!(lookup(&tree, &index, late, 2000), Some(ok(32)));
    }

    #[test]
    fn expiry_keeps_a_newer_record_of_the_same_id() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut index = RequestIndex::default();
        fill(&tree, &mut index, 1, 3);
        // Id 1 comes back after its record expired by age: remembered anew.
        let late = 10 + MAX_AGE_MS;
        call(&tree, &mut index, |s, batch| {
            s.begin(3, late);
            s.seq = Some(2); // as stored, without scheduling the pass by count
            assert_eq!(s.lookup(&tree, RequestId(1)).unwrap(), None);
            remember(s, &tree, batch, RequestId(1), &ok(3)).unwrap();
            s.end(batch);
        });
        assert!(
            tree.get(part_key(1, 0)).unwrap().is_none(),
            "old record expired"
        );
        assert_eq!(index.0.get(&index_key(RequestId(1))), Some(&3));
        assert_eq!(lookup(&tree, &index, late, 1), Some(ok(3)));
        // Later expiry of nothing else does not touch it either.
        fill(&tree, &mut index, 4, 5);
        assert_eq!(lookup(&tree, &index, late, 1), Some(ok(3)));
    }

    #[test]
    fn a_repeat_within_one_call_and_the_index_reloaded_from_disk_answer_alike() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut index = RequestIndex::default();
        let big = Ok(WriteOutcome {
            revision: 7,
            prev: vec![Some(KeyValue {
                key: "k".into(),
                value: vec![7; 700 * 1024],
                create_revision: 1,
                mod_revision: 2,
                version: 1,
            })],
        });
        let failed: Outcome = Err(KvError::AlreadyExists { key: "k".into() });
        call(&tree, &mut index, |s, batch| {
            s.begin(7, 7);
            for n in 0..4u128 {
                remember(s, &tree, batch, RequestId(n), &big).unwrap();
            }
            remember(s, &tree, batch, RequestId(9), &failed).unwrap();
            // Seen again before anything landed: answered from this call.
            assert_eq!(
                s.lookup(&tree, RequestId(2)).unwrap().map(whole),
                Some(big.clone())
            );
            s.end(batch);
        });
        // 2.8 MiB of outcomes: split into parts under PART_BYTES each.
        assert_eq!(records(&tree), 3);
        let reloaded = RequestIndex::load(&tree).unwrap();
        assert_eq!(reloaded.0, index.0);
        for n in 0..4 {
            assert_eq!(lookup(&tree, &reloaded, 7, n), Some(big.clone()));
        }
        assert_eq!(lookup(&tree, &reloaded, 7, 9), Some(failed));
        assert_eq!(lookup(&tree, &reloaded, 7, 5), None);
    }

    #[test]
    fn the_first_layout_is_dropped_on_load() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        tree.insert(b"r/0123456789abcdef", b"x".to_vec()).unwrap();
        tree.insert(b"q/01234567", b"y".to_vec()).unwrap();
        tree.insert(keys::kv_key("r/kept"), b"z".to_vec()).unwrap();
        assert!(RequestIndex::load(&tree).unwrap().is_empty());
        assert_eq!(tree.len(), 1, "only the stored key is left");
    }

    /// The old window was 250 000 ids (10 s at the store's peak rate, under
    /// the 30 s retry deadline): an id with more than that remembered after it
    /// still answers, until MAX_IDS.
    #[test]
    fn an_id_outlives_the_old_window_of_250_000_ids() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut index = RequestIndex::default();
        let applied = |rev| Stored::Applied {
            revision: rev,
            prev: vec![PrevRef::Replaced(0), PrevRef::Absent],
        };
        call(&tree, &mut index, |s, batch| {
            s.begin(1, 1);
            s.remember(&tree, batch, RequestId(1), &ok(1), &applied(1))
                .unwrap();
            s.end(batch);
        });
        for (after, valid) in [(300_000, true), (MAX_IDS - 1, true), (MAX_IDS, false)] {
            call(&tree, &mut index, |s, batch| {
                s.begin(after + 1, 2);
                s.seq = Some(after); // `after` ids remembered since id 1 (seq 1)
                s.remember(
                    &tree,
                    batch,
                    RequestId(after as u128 + 10),
                    &ok(2),
                    &applied(2),
                )
                .unwrap();
                s.end(batch);
            });
            let mut s = Sessions::new(&index);
            s.begin(u64::MAX, 2);
            let got = s.lookup(&tree, RequestId(1)).unwrap();
            assert_eq!(got, valid.then(|| applied(1)), "{after} ids after it");
        }
    }

    /// Records of the layout that stored whole outcomes read as such.
    #[test]
    fn whole_outcomes_of_the_earlier_layout_still_decode() {
        let big = ok(7);
        let failed: Outcome = Err(KvError::NotFound { key: "k".into() });
        for o in [big, failed] {
            let stored: Stored = decode(&encode(&o), "outcome").unwrap();
            assert_eq!(stored, Stored::from(o));
        }
        // And a stored success without values is a few bytes.
        let applied = Stored::Applied {
            revision: 123_456_789,
            prev: vec![PrevRef::Replaced(3)],
        };
        assert!(encode(&applied).len() < 12, "{:?}", encode(&applied));
    }
}
