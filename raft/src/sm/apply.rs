//! Applying writes: preconditions, all-or-nothing transactions, events, history trim.
//!
//! Everything one `apply` call does lands in one sled batch; reads of keys written
//! earlier in the same batch go through the overlay.

use super::keys::{self, StoredKv};
use super::sessions::{IndexChanges, PrevRef, RequestIndex, Sessions, Stored};
use crate::types::{decode, encode};
use ferry_api::kv::{
    Event, EventKind, Expect, KeyValue, KvError, RequestId, Write, WriteOp, WriteOutcome,
};
use std::collections::HashMap;

/// One apply call's changes to the tree, in order.
///
/// Written with plain inserts, never `sled::Batch`: sled's first batch switches
/// every later sled operation in the process onto a global lock that a flush
/// holds for its whole fsync.
#[derive(Default)]
pub struct Writes(Vec<(sled::IVec, Option<sled::IVec>)>);

impl Writes {
    /// Sets `key`.
    pub fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        self.0.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<sled::IVec>) {
        self.0.push((key.into(), None));
    }

    /// Writes everything to `tree`, in order.
    pub fn write_to(self, tree: &sled::Tree) -> sled::Result<()> {
        for (k, v) in self.0 {
            match v {
                Some(v) => tree.insert(k, v)?,
                None => tree.remove(k)?,
            };
        }
        Ok(())
    }
}

/// A history run closes once its events hold this many key and value bytes, so a
/// stored run stays well under sled's 4 MiB value limit (one event can add 1.5 MiB).
const HIST_RUN_BYTES: usize = 1024 * 1024;

/// An [`Event`] as history stores it: encoded exactly like an `Event` without `prev`.
#[derive(serde::Serialize)]
struct StoredEvent<'a> {
    kind: EventKind,
    kv: &'a KeyValue,
    prev: Option<&'a KeyValue>,
}

/// Accumulates one apply call's changes.
pub struct ApplyCtx<'a> {
    tree: &'a sled::Tree,
    overlay: HashMap<String, Option<StoredKv>>,
    pub batch: Writes,
    revision: u64,
    seq: u32,
    events: Vec<Event>,
    /// `events[hist_from..]` are not yet in the history; the first has seq `hist_seq`.
    hist_from: usize,
    hist_seq: u32,
    hist_bytes: usize,
    /// Revisions at or below this have no history.
    pub compacted: u64,
    /// Remembered request ids.
    sessions: Sessions<'a>,
}

impl<'a> ApplyCtx<'a> {
    pub fn new(tree: &'a sled::Tree, compacted: u64, requests: &'a RequestIndex) -> Self {
        ApplyCtx {
            tree,
            overlay: HashMap::new(),
            batch: Writes::default(),
            revision: 0,
            seq: 0,
            events: Vec::new(),
            hist_from: 0,
            hist_seq: 0,
            hist_bytes: 0,
            compacted,
            sessions: Sessions::new(requests),
        }
    }

    /// Starts a `Command::V2` entry at `revision`, stamped `at_ms` by its leader.
    pub fn begin_with_ids(&mut self, revision: u64, at_ms: u64) {
        self.begin(revision);
        self.sessions.begin(revision, at_ms);
    }

    /// Applies a write carrying request id `id` — or, when `id` is remembered,
    /// answers its first outcome without applying it again.
    pub fn apply_once(
        &mut self,
        id: RequestId,
        w: &Write,
    ) -> crate::Result<Result<WriteOutcome, KvError>> {
        if let Some(first) = self.sessions.lookup(self.tree, id)? {
            return match first {
                Stored::Full(out) => Ok(Ok(out)),
                Stored::Failed(e) => Ok(Err(e)),
                Stored::Applied { revision, prev } => Ok(Ok(WriteOutcome {
                    revision,
                    prev: self.rebuild_prev(w, revision, &prev)?.unwrap_or_default(),
                })),
            };
        }
        let seq = self.seq;
        let r = self.apply_write(w)?;
        let stored = match &r {
            Ok(out) => Stored::Applied {
                revision: out.revision,
                prev: prev_refs(w, out, seq),
            },
            Err(e) => Stored::Failed(e.clone()),
        };
        self.sessions
            .remember(self.tree, &mut self.batch, id, &r, &stored)?;
        Ok(r)
    }

    /// The previous values a remembered success at `revision` answered, read
    /// back from the history: `None` once any of them left it (or the repeat
    /// names other keys than its refs count). Every master holds the same
    /// history after an entry, so every master answers alike.
    fn rebuild_prev(
        &self,
        w: &Write,
        revision: u64,
        refs: &[PrevRef],
    ) -> crate::Result<Option<Vec<Option<KeyValue>>>> {
        let ops = write_ops(w);
        if ops.len() != refs.len() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(refs.len());
        for (op, r) in ops.iter().zip(refs) {
            let key = op.key();
            let kv = match *r {
                PrevRef::Absent => None,
                PrevRef::Replaced(seq) => {
                    if revision <= self.compacted {
                        return Ok(None);
                    }
                    match self.tree.get(keys::event_key(keys::PREV, revision, seq))? {
                        Some(b) => Some(decode::<StoredKv>(&b, "history prev")?.to_kv(key)),
                        None => return Ok(None),
                    }
                }
                PrevRef::Checked {
                    mod_revision,
                    version,
                } => match self.find_value(key, mod_revision, version)? {
                    Some(kv) => Some(kv),
                    None => return Ok(None),
                },
            };
            out.push(kv);
        }
        Ok(Some(out))
    }

    /// `key`'s value of `mod_revision` and `version`: the current one, or the
    /// event that wrote it while the history holds its revision.
    fn find_value(
        &self,
        key: &str,
        mod_revision: u64,
        version: u64,
    ) -> crate::Result<Option<KeyValue>> {
        if let Some(cur) = self.current(key)? {
            if cur.mod_revision == mod_revision && cur.version == version {
                return Ok(Some(cur.to_kv(key)));
            }
        }
        if mod_revision <= self.compacted {
            return Ok(None);
        }
        let start = keys::hist_from(keys::HIST, mod_revision);
        let end = keys::hist_from(keys::HIST, mod_revision + 1);
        for item in self.tree.range(start..end) {
            let (_, v) = item?;
            let run: Vec<Event> = decode(&v, "history events")?;
            if let Some(ev) = run
                .into_iter()
                .find(|e| e.kind == EventKind::Put && e.kv.key == key && e.kv.version == version)
            {
                return Ok(Some(ev.kv));
            }
        }
        Ok(None)
    }

    /// Ends a `Command::V2` entry.
    pub fn end_with_ids(&mut self) {
        self.sessions.end(&mut self.batch);
    }

    /// Ends the apply call's id bookkeeping (count, bounded expiry).
    pub fn finish_ids(&mut self) -> crate::Result<()> {
        self.sessions.finish(self.tree, &mut self.batch)
    }

    /// The changes to the request index, to commit once the batch landed.
    pub fn into_index_changes(self) -> IndexChanges {
        self.sessions.into_changes()
    }

    /// Starts the entry at `revision` (its log index).
    pub fn begin(&mut self, revision: u64) {
        self.revision = revision;
        self.seq = 0;
    }

    /// The events of the current entry, taken (and written to the history).
    pub fn take_events(&mut self) -> Vec<Event> {
        self.write_history();
        self.hist_from = 0;
        self.hist_seq = 0;
        std::mem::take(&mut self.events)
    }

    /// Writes the pending events as one history run, `h/<rev><seq of the first>`.
    fn write_history(&mut self) {
        let run = &self.events[self.hist_from..];
        if run.is_empty() {
            return;
        }
        let stored: Vec<StoredEvent> = run
            .iter()
            .map(|e| StoredEvent {
                kind: e.kind,
                kv: &e.kv,
                prev: None,
            })
            .collect();
        self.batch.insert(
            keys::event_key(keys::HIST, self.revision, self.hist_seq),
            encode(&stored),
        );
        self.hist_from = self.events.len();
        self.hist_seq = self.seq;
        self.hist_bytes = 0;
    }

    fn current(&self, key: &str) -> crate::Result<Option<StoredKv>> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        match self.tree.get(keys::kv_key(key))? {
            Some(b) => Ok(Some(decode(&b, "stored value")?)),
            None => Ok(None),
        }
    }

    /// Applies one client write. `Err` is a storage failure; business failures are in the result.
    pub fn apply_write(&mut self, w: &Write) -> crate::Result<Result<WriteOutcome, KvError>> {
        match w {
            Write::Op(op) => Ok(self
                .apply_ops(std::slice::from_ref(op))?
                .map_err(|(_, e)| e)),
            Write::Txn(ops) => Ok(self
                .apply_ops(ops)?
                .map_err(|(index, e)| KvError::TxnFailed {
                    index,
                    source: Box::new(e),
                })),
            Write::Compact(rev) => {
                // Never this entry's own revision, whose history is still being written.
                let target = (*rev).min(self.revision.saturating_sub(1));
                if target > self.compacted {
                    self.trim_history(target)?;
                }
                Ok(Ok(WriteOutcome {
                    revision: self.revision,
                    prev: vec![],
                }))
            }
        }
    }

    fn apply_ops(
        &mut self,
        ops: &[WriteOp],
    ) -> crate::Result<Result<WriteOutcome, (usize, KvError)>> {
        // Check every precondition against the state as the earlier ops leave it.
        let mut staged: HashMap<&str, Option<StoredKv>> = HashMap::new();
        let mut plan = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let key = op.key();
            let cur = match staged.get(key) {
                Some(v) => v.clone(),
                None => self.current(key)?,
            };
            if let Err(e) = check(op, cur.as_ref()) {
                return Ok(Err((i, e)));
            }
            if matches!(op, WriteOp::Check { .. }) {
                plan.push((key, cur, None, false));
                continue;
            }
            let next = match op {
                WriteOp::Put { value, .. } => Some(StoredKv {
                    value: value.clone(),
                    create_revision: cur.as_ref().map_or(self.revision, |c| c.create_revision),
                    mod_revision: self.revision,
                    version: cur.as_ref().map_or(1, |c| c.version + 1),
                }),
                WriteOp::Delete { .. } | WriteOp::Check { .. } => None,
            };
            staged.insert(key, next.clone());
            plan.push((key, cur, next, true));
        }
        let mut prevs = Vec::with_capacity(plan.len());
        for (key, prev, next, writes) in plan {
            prevs.push(prev.as_ref().map(|p| p.to_kv(key)));
            if writes {
                self.commit(key, prev, next);
            }
        }
        Ok(Ok(WriteOutcome {
            revision: self.revision,
            prev: prevs,
        }))
    }

    fn commit(&mut self, key: &str, prev: Option<StoredKv>, next: Option<StoredKv>) {
        let event = match &next {
            Some(n) => {
                self.batch.insert(keys::kv_key(key), encode(n));
                Event {
                    kind: EventKind::Put,
                    kv: n.to_kv(key),
                    prev: None,
                }
            }
            None => {
                self.batch.remove(keys::kv_key(key));
                let mut kv = prev.as_ref().expect("delete checked existence").to_kv(key);
                kv.value.clear();
                kv.mod_revision = self.revision;
                kv.version = 0;
                Event {
                    kind: EventKind::Delete,
                    kv,
                    prev: None,
                }
            }
        };
        if let Some(p) = &prev {
            self.batch.insert(
                keys::event_key(keys::PREV, self.revision, self.seq),
                encode(p),
            );
        }
        self.seq += 1;
        self.overlay.insert(key.to_string(), next);
        self.hist_bytes += event.kv.key.len() + event.kv.value.len();
        self.events.push(Event {
            prev: prev.map(|p| p.to_kv(key)),
            ..event
        });
        if self.hist_bytes >= HIST_RUN_BYTES {
            self.write_history();
        }
    }

    /// Keeps at most `window` revisions of history behind `applied`, trimming in
    /// steps. Called after every entry (`applied` = its index), so the compacted
    /// revision after an entry depends only on the log, never on how entries
    /// were grouped into apply calls: every master answers "too old" alike.
    pub fn trim_window(&mut self, applied: u64, window: u64) -> crate::Result<()> {
        let step = (window / 16).max(1);
        let target = applied.saturating_sub(window);
        if target >= self.compacted + step {
            self.trim_history(target)?;
        }
        Ok(())
    }

    /// Removes the history at and below `upto`: what the tree holds, and what
    /// earlier entries of this apply call queued.
    fn trim_history(&mut self, upto: u64) -> crate::Result<()> {
        for prefix in [keys::HIST, keys::PREV] {
            let start = keys::hist_from(prefix, self.compacted + 1);
            let end = keys::hist_from(prefix, upto + 1);
            let queued: Vec<sled::IVec> = self
                .batch
                .0
                .iter()
                .filter(|(k, v)| {
                    v.is_some() && k.as_ref() >= start.as_slice() && k.as_ref() < end.as_slice()
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in queued {
                self.batch.remove(k);
            }
            for item in self.tree.range(start..end) {
                let (k, _) = item?;
                self.batch.remove(k);
            }
        }
        self.compacted = upto;
        self.batch.insert(keys::COMPACTED, encode(&upto));
        Ok(())
    }
}

/// The ops of a write (none for a compaction).
fn write_ops(w: &Write) -> &[WriteOp] {
    match w {
        Write::Op(op) => std::slice::from_ref(op),
        Write::Txn(ops) => ops,
        Write::Compact(_) => &[],
    }
}

/// Where each previous value of `out` (the success of `w`, whose first event
/// was number `seq` of its revision) can be read again: every put and delete
/// of a success wrote one event, in order.
fn prev_refs(w: &Write, out: &WriteOutcome, mut seq: u32) -> Vec<PrevRef> {
    write_ops(w)
        .iter()
        .zip(&out.prev)
        .map(|(op, prev)| {
            let r = match (op, prev) {
                (WriteOp::Check { .. }, Some(kv)) => PrevRef::Checked {
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                },
                (WriteOp::Check { .. }, None) => PrevRef::Absent,
                (_, Some(_)) => PrevRef::Replaced(seq),
                (_, None) => PrevRef::Absent,
            };
            if !matches!(op, WriteOp::Check { .. }) {
                seq += 1;
            }
            r
        })
        .collect()
}

fn check(op: &WriteOp, cur: Option<&StoredKv>) -> Result<(), KvError> {
    let key = op.key();
    if key.is_empty() {
        return Err(KvError::Invalid("empty key".into()));
    }
    if matches!(op, WriteOp::Delete { .. }) && cur.is_none() {
        return Err(KvError::NotFound { key: key.into() });
    }
    match (op.expect(), cur) {
        (Expect::Any, _) | (Expect::Absent, None) | (Expect::Exists, Some(_)) => Ok(()),
        (Expect::Absent, Some(_)) => Err(KvError::AlreadyExists { key: key.into() }),
        (Expect::Exists, None) | (Expect::ModRevision(_), None) => {
            Err(KvError::NotFound { key: key.into() })
        }
        (Expect::ModRevision(r), Some(c)) if c.mod_revision == r => Ok(()),
        (Expect::ModRevision(r), Some(c)) => Err(KvError::Conflict {
            key: key.into(),
            expected: r,
            actual: c.mod_revision,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::kv::KvError::*;

    fn put(key: &str, v: &str, expect: Expect) -> WriteOp {
        WriteOp::Put {
            key: key.into(),
            value: v.as_bytes().to_vec(),
            expect,
        }
    }

    fn del(key: &str, expect: Expect) -> WriteOp {
        WriteOp::Delete {
            key: key.into(),
            expect,
        }
    }

    /// A `Check` guards a transaction without writing: it fails the whole
    /// transaction when its key moved, and changes nothing when it holds.
    #[test]
    fn a_check_guards_a_transaction_and_writes_nothing() {
        let check = |rev| WriteOp::Check {
            key: "ns".into(),
            expect: Expect::ModRevision(rev),
        };
        let out = run(vec![
            Write::Op(put("ns", "active", Expect::Absent)),
            Write::Txn(vec![check(1), put("obj", "a", Expect::Absent)]),
            Write::Op(put("ns", "terminating", Expect::Any)),
            Write::Txn(vec![check(1), put("late", "b", Expect::Absent)]),
            Write::Txn(vec![check(3)]),
        ]);
        let ok = out[1].as_ref().expect("the guard holds");
        assert_eq!(ok.revision, 2);
        assert_eq!(ok.prev.len(), 2, "one prev per op, the checked value first");
        assert!(ok.prev[0].as_ref().is_some_and(|p| p.mod_revision == 1));
        match &out[3] {
            Err(TxnFailed { index: 0, source }) => {
                assert!(matches!(**source, Conflict { actual: 3, .. }), "{source:?}")
            }
            other => panic!("a moved guard must fail the transaction: {other:?}"),
        }
        assert!(out[4].is_ok());
    }

    /// Applies `writes` one entry each (revisions 1, 2, ...) and returns each result.
    fn run(writes: Vec<Write>) -> Vec<Result<WriteOutcome, KvError>> {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let requests = RequestIndex::default();
        let mut out = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let mut ctx = ApplyCtx::new(&tree, 0, &requests);
            ctx.begin(i as u64 + 1);
            out.push(ctx.apply_write(w).unwrap());
            ctx.batch.write_to(&tree).unwrap();
        }
        out
    }

    fn err(key: &str) -> String {
        key.to_string()
    }

    #[test]
    fn preconditions_table() {
        use Expect::*;
        let cases: Vec<(&str, Vec<Write>, Result<(), KvError>)> = vec![
            ("create new", vec![Write::Op(put("a", "1", Absent))], Ok(())),
            (
                "create existing",
                vec![
                    Write::Op(put("a", "1", Any)),
                    Write::Op(put("a", "2", Absent)),
                ],
                Err(AlreadyExists { key: err("a") }),
            ),
            (
                "update missing",
                vec![Write::Op(put("a", "1", Exists))],
                Err(NotFound { key: err("a") }),
            ),
            (
                "update at right revision",
                vec![
                    Write::Op(put("a", "1", Any)),
                    Write::Op(put("a", "2", ModRevision(1))),
                ],
                Ok(()),
            ),
            (
                "update at stale revision",
                vec![
                    Write::Op(put("a", "1", Any)),
                    Write::Op(put("a", "2", Any)),
                    Write::Op(put("a", "3", ModRevision(1))),
                ],
                Err(Conflict {
                    key: err("a"),
                    expected: 1,
                    actual: 2,
                }),
            ),
            (
                "delete missing",
                vec![Write::Op(del("a", Any))],
                Err(NotFound { key: err("a") }),
            ),
            (
                "txn all hold",
                vec![Write::Txn(vec![
                    put("a", "1", Absent),
                    put("b", "1", Absent),
                ])],
                Ok(()),
            ),
            (
                "txn second fails",
                vec![Write::Txn(vec![
                    put("a", "1", Absent),
                    put("a", "2", Absent),
                ])],
                Err(TxnFailed {
                    index: 1,
                    source: Box::new(AlreadyExists { key: err("a") }),
                }),
            ),
            (
                "txn sees its own earlier op",
                vec![Write::Txn(vec![put("a", "1", Absent), del("a", Exists)])],
                Ok(()),
            ),
            (
                "empty key",
                vec![Write::Op(put("", "1", Any))],
                Err(Invalid("empty key".into())),
            ),
        ];
        for (name, writes, want) in cases {
            let got = run(writes).pop().unwrap();
            assert_eq!(got.map(|_| ()), want, "{name}");
        }
    }

    #[test]
    fn failed_txn_writes_nothing_and_revisions_advance() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let requests = RequestIndex::default();
        let mut ctx = ApplyCtx::new(&tree, 0, &requests);
        ctx.begin(5);
        let ok = ctx
            .apply_write(&Write::Txn(vec![
                put("a", "1", Expect::Absent),
                put("b", "1", Expect::Absent),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(ok.revision, 5);
        let failed = ctx
            .apply_write(&Write::Txn(vec![
                put("c", "1", Expect::Absent),
                put("a", "2", Expect::Absent),
            ]))
            .unwrap();
        assert!(failed.is_err());
        let events = ctx.take_events();
        assert_eq!(events.len(), 2, "only the successful txn emits events");
        ctx.batch.write_to(&tree).unwrap();
        assert!(
            tree.get(keys::kv_key("c")).unwrap().is_none(),
            "failed txn wrote c"
        );

        let mut ctx = ApplyCtx::new(&tree, 0, &requests);
        ctx.begin(6);
        ctx.apply_write(&Write::Op(put("a", "2", Expect::ModRevision(5))))
            .unwrap()
            .unwrap();
        let ev = ctx.take_events().pop().unwrap();
        assert_eq!(
            (ev.kv.create_revision, ev.kv.mod_revision, ev.kv.version),
            (5, 6, 2)
        );
        assert_eq!(ev.prev.unwrap().value, b"1".to_vec());
    }

    #[test]
    fn a_repeated_id_answers_the_first_outcome_within_one_apply_call() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut requests = RequestIndex::default();
        let id = RequestId(7);
        let create = Write::Op(put("a", "1", Expect::Absent));
        let mut ctx = ApplyCtx::new(&tree, 0, &requests);
        ctx.begin_with_ids(5, 1);
        let first = ctx.apply_once(id, &create).unwrap();
        assert!(first.is_ok());
        // The same entry (a batch holding the write twice) and the next entry.
        assert_eq!(ctx.apply_once(id, &create).unwrap(), first);
        ctx.end_with_ids();
        assert_eq!(ctx.take_events().len(), 1, "one create in entry 5");
        ctx.begin_with_ids(6, 2);
        ctx.apply_write(&Write::Op(del("a", Expect::Any)))
            .unwrap()
            .unwrap();
        assert_eq!(ctx.apply_once(id, &create).unwrap(), first);
        ctx.end_with_ids();
        assert_eq!(ctx.take_events().len(), 1, "only the delete of entry 6");
        ctx.finish_ids().unwrap();
        let batch = std::mem::take(&mut ctx.batch);
        let changes = ctx.into_index_changes();
        batch.write_to(&tree).unwrap();
        requests.commit(changes);
        assert!(
            tree.get(keys::kv_key("a")).unwrap().is_none(),
            "resurrected"
        );
        // A later apply call reads it from the tree.
        let mut ctx = ApplyCtx::new(&tree, 0, &requests);
        ctx.begin_with_ids(7, 3);
        assert_eq!(ctx.apply_once(id, &create).unwrap(), first);
    }

    /// One apply call at `rev` (with ids), its batch and index changes landed.
    fn call_once(
        tree: &sled::Tree,
        requests: &mut RequestIndex,
        compacted: u64,
        rev: u64,
        f: impl FnOnce(&mut ApplyCtx),
    ) -> (Vec<Event>, u64) {
        let mut ctx = ApplyCtx::new(tree, compacted, requests);
        ctx.begin_with_ids(rev, rev);
        f(&mut ctx);
        ctx.end_with_ids();
        let events = ctx.take_events();
        ctx.finish_ids().unwrap();
        let compacted = ctx.compacted;
        let batch = std::mem::take(&mut ctx.batch);
        let changes = ctx.into_index_changes();
        batch.write_to(tree).unwrap();
        requests.commit(changes);
        (events, compacted)
    }

    /// Remembered successes hold no values: a repeat in a later apply call
    /// rebuilds the first answer's previous values (a put's, a delete's, a
    /// check's) from the history and writes nothing; once the history no
    /// longer holds them it answers the revision without them.
    #[test]
    fn a_repeat_rebuilds_its_previous_values_from_the_history() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        let mut requests = RequestIndex::default();
        let id = RequestId(42);
        let txn = Write::Txn(vec![
            put("a", "2", Expect::Any),
            WriteOp::Check {
                key: "c".into(),
                expect: Expect::Exists,
            },
            del("d", Expect::Any),
            put("new", "n", Expect::Absent),
        ]);
        call_once(&tree, &mut requests, 0, 1, |ctx| {
            for (k, v) in [("a", "1"), ("c", "3"), ("d", "4")] {
                ctx.apply_write(&Write::Op(put(k, v, Expect::Any)))
                    .unwrap()
                    .unwrap();
            }
        });
        let mut first = None;
        call_once(&tree, &mut requests, 0, 2, |ctx| {
            // Another write of the same entry first: the txn's events are not
            // the revision's first.
            ctx.apply_write(&Write::Op(put("a", "1b", Expect::Any)))
                .unwrap()
                .unwrap();
            first = Some(ctx.apply_once(id, &txn).unwrap());
        });
        let first = first.unwrap().expect("the txn applies");
        let values: Vec<Option<&[u8]>> = first
            .prev
            .iter()
            .map(|p| p.as_ref().map(|kv| kv.value.as_slice()))
            .collect();
        assert_eq!(
            values,
            vec![Some(&b"1b"[..]), Some(b"3"), Some(b"4"), None],
            "{first:?}"
        );
        let (events, _) = call_once(&tree, &mut requests, 0, 3, |ctx| {
            assert_eq!(ctx.apply_once(id, &txn).unwrap(), Ok(first.clone()));
        });
        assert!(events.is_empty(), "the repeat applied again: {events:?}");
        let a: StoredKv = decode(&tree.get(keys::kv_key("a")).unwrap().unwrap(), "a").unwrap();
        assert_eq!((a.value.as_slice(), a.mod_revision), (&b"2"[..], 2));

        // The history up to revision 9 compacted: the revision alone.
        let (_, compacted) = call_once(&tree, &mut requests, 0, 10, |ctx| {
            ctx.apply_write(&Write::Compact(9)).unwrap().unwrap();
        });
        assert_eq!(compacted, 9);
        call_once(&tree, &mut requests, compacted, 11, |ctx| {
            let out = ctx.apply_once(id, &txn).unwrap().unwrap();
            assert_eq!((out.revision, out.prev.len()), (2, 0), "{out:?}");
        });
    }
}
