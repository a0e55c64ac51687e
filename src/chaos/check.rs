//! The checkers of `ferry chaos` (pure): linearizability of per-key register
//! histories, watch-stream guarantees, and acknowledged writes lost.
//!
//! Linearizability is checked per key (a register history is linearizable
//! iff each key's is: P-compositionality) with Wing–Gong/Lowe's search as
//! Porcupine runs it: the history's call and return entries in time order in a
//! linked list; a call is linearized (lifted out with its return) when the
//! register model accepts it from the current state, and the search backtracks
//! when it meets the return of an operation not yet linearized. Each
//! (linearized set, state) reached is remembered, so a configuration is never
//! explored twice. An operation with an unknown outcome returns at infinity:
//! it may be linearized anywhere after its call, or last of all, which is the
//! same as never taking effect.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The format version of a saved history.
pub const HISTORY_VERSION: u32 = 1;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// Reads the key: `result` is the value read (`null`: absent).
    Read,
    /// Sets the key to `value` (`null`: deletes it).
    Write,
    /// Sets the key to `value` if it holds `expect` (`null`: absent).
    Cas,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect (a read: it returned `result`).
    Ok,
    /// It took no effect. A `cas` that fails without an `error` failed its
    /// comparison: the key did not hold `expect` at its linearization point.
    Fail,
    /// It may or may not have taken effect, at any time after its invocation.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client that ran it.
    pub process: u64,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What a write or cas sets.
    #[serde(default)]
    pub value: Option<String>,
    /// What a cas expects.
    #[serde(default)]
    pub expect: Option<String>,
    pub invoke_ns: u64,
    /// When the answer came (for `unknown`: when the client gave up; ignored).
    pub complete_ns: u64,
    pub outcome: Outcome,
    /// What a read returned.
    #[serde(default)]
    pub result: Option<String>,
    /// The store revision: a write's or cas's applied revision, a read's
    /// `mod_revision` (0: not known).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u64,
    /// Why it failed, when it failed for a reason other than its comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One change a watcher received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub revision: u64,
    pub key: String,
    /// The value put (`null`: a delete).
    pub value: Option<String>,
}

/// Everything one watcher received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    pub watcher: u64,
    /// The watched key prefix.
    pub prefix: String,
    /// The watch asked for the changes after this revision.
    pub after_revision: u64,
    /// The watcher was told (by events or a bookmark) that it had everything up to here.
    pub through_revision: u64,
    /// The changes, in the order received.
    pub events: Vec<WatchEvent>,
    /// The error that ended the stream, if one did.
    #[serde(default)]
    pub error: Option<String>,
}

/// A key's state after the run, read linearizably once every fault was healed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    pub key: String,
    pub value: Option<String>,
    /// Its `mod_revision` (0: absent).
    pub revision: u64,
}

/// A saved history (`docs/chaos.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub version: u32,
    #[serde(default)]
    pub seed: Option<u64>,
    pub ops: Vec<Op>,
    #[serde(default)]
    pub watches: Vec<WatchStream>,
    #[serde(default)]
    pub finals: Vec<FinalRead>,
}

/// The checker's verdict on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Linearizable,
    Violation,
    /// The search ran out of its step budget.
    Undecided,
}

/// Search steps one key's check may take before it gives up.
pub const STEP_BUDGET: u64 = 20_000_000;

/// Time one key's check, and one shrink phase, may take before giving up.
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// One operation as the search sees it: values interned.
#[derive(Clone, Copy)]
struct Lop {
    kind: OpType,
    outcome: Outcome,
    value: Option<u32>,
    expect: Option<u32>,
    result: Option<u32>,
}

impl Lop {
    /// The state after this operation from `state`, if the model allows it there.
    fn step(&self, state: Option<u32>) -> Option<Option<u32>> {
        match (self.kind, self.outcome) {
            (OpType::Read, _) => (state == self.result).then_some(state),
            (OpType::Write, _) => Some(self.value),
            (OpType::Cas, Outcome::Ok) => (state == self.expect).then_some(self.value),
            (OpType::Cas, Outcome::Fail) => (state != self.expect).then_some(state),
            (OpType::Cas, Outcome::Unknown) => Some(if state == self.expect {
                self.value
            } else {
                state
            }),
        }
    }
}

/// Whether an operation constrains the search: reads that returned, and
/// writes that may have taken effect or failed a comparison.
fn relevant(op: &Op) -> bool {
    match op.kind {
        OpType::Read => op.outcome == Outcome::Ok,
        OpType::Write => op.outcome != Outcome::Fail,
        OpType::Cas => !(op.outcome == Outcome::Fail && op.error.is_some()),
    }
}

const NIL: usize = usize::MAX;

/// Checks one key's operations (all of one key; irrelevant ones are skipped).
pub fn check_key<'a>(ops: &[&'a Op], budget: u64) -> Verdict {
    let ops: Vec<&Op> = ops.iter().copied().filter(|o| relevant(o)).collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut intern = |v: Option<&'a str>| -> Option<u32> {
        v.map(|s| {
            let next = ids.len() as u32;
            *ids.entry(s).or_insert(next)
        })
    };
    let lops: Vec<Lop> = ops
        .iter()
        .map(|o| Lop {
            kind: o.kind,
            outcome: o.outcome,
            value: intern(o.value.as_deref()),
            expect: intern(o.expect.as_deref()),
            result: intern(o.result.as_deref()),
        })
        .collect();
    // Entries: node 0 is the head; op i has its call at 1 + 2i, its return at 2 + 2i.
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        let ret = if o.outcome == Outcome::Unknown {
            u64::MAX
        } else {
            o.complete_ns.max(o.invoke_ns)
        };
        order.push((o.invoke_ns, 0, 1 + 2 * i));
        order.push((ret, 1, 2 + 2 * i));
    }
    // Calls before returns at the same instant: they overlap.
    order.sort();
    let nodes = 1 + 2 * n;
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut last = 0;
    for &(_, _, e) in &order {
        next[last] = e;
        prev[e] = last;
        last = e;
    }
    let is_call = |e: usize| e % 2 == 1;
    let op_of = |e: usize| (e - 1) / 2;
    let ret_of = |e: usize| e + 1;

    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        for x in [e, ret_of(e)] {
            next[prev[x]] = next[x];
            if next[x] != NIL {
                prev[next[x]] = prev[x];
            }
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        for x in [ret_of(e), e] {
            next[prev[x]] = x;
            if next[x] != NIL {
                prev[next[x]] = x;
            }
        }
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u32>)> = HashSet::new();
    let mut calls: Vec<(usize, Option<u32>)> = Vec::new();
    let mut state: Option<u32> = None;
    let mut entry = next[0];
    let mut steps = 0u64;
    let started = std::time::Instant::now();
    while next[0] != NIL {
        steps += 1;
        if steps > budget || (steps.is_multiple_of(4096) && started.elapsed() > TIME_BUDGET) {
            return Verdict::Undecided;
        }
        if entry == NIL {
            // Only reachable when every remaining entry was skipped: backtrack.
            let Some((e, s)) = calls.pop() else {
                return Verdict::Violation;
            };
            state = s;
            linearized[op_of(e) / 64] &= !(1 << (op_of(e) % 64));
            unlift(&mut next, &mut prev, e);
            entry = next[e];
            continue;
        }
        if is_call(entry) {
            let i = op_of(entry);
            if let Some(after) = lops[i].step(state) {
                let mut lin = linearized.clone();
                lin[i / 64] |= 1 << (i % 64);
                if seen.insert((lin.clone(), after)) {
                    calls.push((entry, state));
                    state = after;
                    linearized = lin;
                    lift(&mut next, &mut prev, entry);
                    entry = next[0];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            // The return of an operation not linearized yet: backtrack.
            let Some((e, s)) = calls.pop() else {
                return Verdict::Violation;
            };
            state = s;
            linearized[op_of(e) / 64] &= !(1 << (op_of(e) % 64));
            unlift(&mut next, &mut prev, e);
            entry = next[e];
        }
    }
    Verdict::Linearizable
}

/// Values a sub-history reads or compares against without writing them,
/// among those the whole key history does write: a sub-history missing such
/// a write would show a different anomaly (a read of a value never written).
fn orphaned(sub: &[&Op], written_anywhere: &HashSet<&str>) -> bool {
    let written: HashSet<&str> = sub
        .iter()
        .filter(|o| o.kind != OpType::Read && o.outcome != Outcome::Fail)
        .filter_map(|o| o.value.as_deref())
        .collect();
    sub.iter().any(|o| {
        let used = match o.kind {
            OpType::Read => o.result.as_deref(),
            OpType::Cas => o.expect.as_deref(),
            OpType::Write => None,
        };
        used.is_some_and(|v| written_anywhere.contains(v) && !written.contains(v))
    })
}

/// Most linearizability checks one shrink may run.
const SHRINK_CHECKS: usize = 3000;

/// Whether an operation only observes the state: a read, or a cas that
/// failed its comparison. Dropping one never makes a linearizable history a
/// violating one.
fn observer(o: &Op) -> bool {
    o.kind == OpType::Read || (o.kind == OpType::Cas && o.outcome == Outcome::Fail)
}

/// Drops chunks of the operations `removable` allows, halving the chunk down
/// to one, while `keep` accepts what is left; counts its checks in `checks`.
fn shrink<'a>(
    mut cur: Vec<&'a Op>,
    removable: impl Fn(&Op) -> bool,
    keep: impl Fn(&[&'a Op], &mut usize) -> bool,
    checks: &mut usize,
) -> Vec<&'a Op> {
    let mut chunk = cur
        .iter()
        .filter(|o| removable(o))
        .count()
        .div_ceil(2)
        .max(1);
    let started = std::time::Instant::now();
    let spent = |checks: &usize| *checks >= SHRINK_CHECKS || started.elapsed() > TIME_BUDGET;
    loop {
        let mut i = 0;
        while i < cur.len() && !spent(checks) {
            // The next `chunk` removable operations from position i.
            let mut end = i;
            let mut taken = 0;
            while end < cur.len() && taken < chunk {
                if removable(cur[end]) {
                    taken += 1;
                }
                end += 1;
            }
            if taken == 0 {
                break;
            }
            let candidate: Vec<&Op> = cur[..i]
                .iter()
                .chain(cur[i..end].iter().filter(|o| !removable(o)))
                .chain(&cur[end..])
                .copied()
                .collect();
            if keep(&candidate, checks) {
                cur = candidate;
            } else {
                i = end;
            }
        }
        if chunk == 1 || spent(checks) {
            return cur;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// A small sub-history of a violating key history that shows its violation
/// (1-minimal when the shrink finishes within its budget of checks and
/// time, per phase). First observers
/// (reads, failed cas) are dropped while the rest still violates — that can
/// create no new violation. Then writes are dropped while the rest still
/// violates, still writes every value it reads or compares, is linearizable
/// without its observers, and without any one of them: so the violation left
/// is the one those observers showed, not one made by removing a write.
pub fn minimal_violation<'a>(ops: &[&'a Op]) -> Vec<&'a Op> {
    let all: Vec<&Op> = ops.iter().copied().filter(|o| relevant(o)).collect();
    let written_anywhere: HashSet<&str> = all
        .iter()
        .filter(|o| o.kind != OpType::Read && o.outcome != Outcome::Fail)
        .filter_map(|o| o.value.as_deref())
        .collect();
    let violates = |h: &[&Op], checks: &mut usize| {
        *checks += 1;
        check_key(h, STEP_BUDGET / 10) == Verdict::Violation
    };
    let lin = |h: &[&Op], checks: &mut usize| {
        *checks += 1;
        check_key(h, STEP_BUDGET / 10) == Verdict::Linearizable
    };
    let mut checks = 0;
    let cur = shrink(all, observer, |c, n| violates(c, n), &mut checks);
    let cur = shrink(
        cur,
        |o| !observer(o),
        |c, n| {
            if orphaned(c, &written_anywhere) || !violates(c, n) {
                return false;
            }
            let writes: Vec<&Op> = c.iter().copied().filter(|o| !observer(o)).collect();
            if !lin(&writes, n) {
                return false;
            }
            (0..c.len()).filter(|&i| observer(c[i])).all(|i| {
                let without: Vec<&Op> = c[..i].iter().chain(&c[i + 1..]).copied().collect();
                lin(&without, n)
            })
        },
        &mut checks,
    );
    let mut cur = cur;
    cur.sort_by_key(|o| (o.invoke_ns, o.complete_ns));
    cur
}

/// One key's result.
#[derive(Debug, Clone, Serialize)]
pub struct KeyResult {
    pub key: String,
    pub ops: usize,
    pub verdict: Verdict,
    /// For a violation: the smallest sub-history found that shows it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub minimal: Vec<Op>,
}

/// Checks every key of `ops` (each key on its own).
pub fn check_linearizable(ops: &[Op]) -> Vec<KeyResult> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        by_key.entry(&o.key).or_default().push(o);
    }
    by_key
        .into_iter()
        .map(|(key, ops)| {
            let verdict = check_key(&ops, STEP_BUDGET);
            let minimal = if verdict == Verdict::Violation {
                minimal_violation(&ops).into_iter().cloned().collect()
            } else {
                Vec::new()
            };
            KeyResult {
                key: key.to_string(),
                ops: ops.len(),
                verdict,
                minimal,
            }
        })
        .collect()
}

/// A broken watch guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchViolation {
    pub watcher: u64,
    /// `disorder`, `repeat`, `gap`, `wrong-revision` or `phantom`.
    pub kind: &'static str,
    pub detail: String,
}

/// Checks every watch stream against the history's acknowledged writes.
///
/// Writes group-committed in one Raft entry share its revision (in the order
/// they applied), so one key may change more than once at one revision: a
/// change is identified by (key, revision, value), values being written once.
/// Per watcher: revisions never go back (`disorder`); no change twice
/// (`repeat`); every acknowledged write of a watched key after the watch's
/// start and up to the revision it was told it had everything through is
/// there (`gap`); a change of an acknowledged value comes at the revision the
/// write was acknowledged at (`wrong-revision`); no change of a value no
/// operation wrote (`phantom`).
pub fn check_watches(h: &History) -> Vec<WatchViolation> {
    // (key, value) → revision of every acknowledged write with a known revision.
    let mut acked: BTreeMap<(&str, Option<&str>), u64> = BTreeMap::new();
    let mut written: HashMap<&str, HashSet<Option<&str>>> = HashMap::new();
    for o in &h.ops {
        if o.kind == OpType::Read || o.outcome == Outcome::Fail {
            continue;
        }
        written
            .entry(&o.key)
            .or_default()
            .insert(o.value.as_deref());
        if o.outcome == Outcome::Ok && o.revision > 0 && o.value.is_some() {
            acked.insert((&o.key, o.value.as_deref()), o.revision);
        }
    }
    let mut out = Vec::new();
    for w in &h.watches {
        let v = |kind, detail| WatchViolation {
            watcher: w.watcher,
            kind,
            detail,
        };
        let mut got: HashSet<(&str, Option<&str>, u64)> = HashSet::new();
        let mut last = 0u64;
        for e in &w.events {
            let val = e.value.as_deref();
            if !got.insert((&e.key, val, e.revision)) {
                out.push(v(
                    "repeat",
                    format!(
                        "{}={:?} at revision {} delivered twice",
                        e.key, e.value, e.revision
                    ),
                ));
                continue;
            }
            if e.revision < last {
                out.push(v(
                    "disorder",
                    format!(
                        "{} at revision {} came after revision {last}",
                        e.key, e.revision
                    ),
                ));
            }
            last = last.max(e.revision);
            if e.revision <= w.after_revision {
                out.push(v(
                    "disorder",
                    format!(
                        "{} at revision {} is not after the watch's start {}",
                        e.key, e.revision, w.after_revision
                    ),
                ));
            }
            match acked.get(&(e.key.as_str(), val)) {
                Some(&rev) if val.is_some() && rev != e.revision => out.push(v(
                    "wrong-revision",
                    format!(
                        "{}={:?} watched at revision {}, acknowledged at {rev}",
                        e.key, e.value, e.revision
                    ),
                )),
                Some(_) => {}
                None => {
                    if let Some(vals) = written.get(e.key.as_str()) {
                        if val.is_some() && !vals.contains(&val) {
                            out.push(v(
                                "phantom",
                                format!(
                                    "{} at revision {}: {:?} was never written",
                                    e.key, e.revision, e.value
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (&(key, val), &rev) in &acked {
            if key.starts_with(&w.prefix)
                && rev > w.after_revision
                && rev <= w.through_revision
                && !got.contains(&(key, val, rev))
            {
                out.push(v(
                    "gap",
                    format!(
                        "missed {key}={val:?} at revision {rev} (watch after {}, through {})",
                        w.after_revision, w.through_revision
                    ),
                ));
            }
        }
    }
    out
}

/// Acknowledged writes the final state does not hold: a write or cas
/// acknowledged at revision R of a key whose final `mod_revision` is below R
/// (the store went back in time), or is R with a value no write acknowledged
/// at R (or of unknown outcome) wrote — writes of one Raft entry share its
/// revision, so the last of them is the final value.
pub fn lost_writes(h: &History) -> Vec<Op> {
    let finals: HashMap<&str, &FinalRead> = h.finals.iter().map(|f| (f.key.as_str(), f)).collect();
    let explains = |f: &FinalRead| {
        h.ops.iter().any(|o| {
            o.kind != OpType::Read
                && o.key == f.key
                && o.value == f.value
                && (o.outcome == Outcome::Unknown
                    || (o.outcome == Outcome::Ok && o.revision == f.revision))
        })
    };
    h.ops
        .iter()
        .filter(|o| o.kind != OpType::Read && o.outcome == Outcome::Ok && o.revision > 0)
        .filter(|o| match finals.get(o.key.as_str()) {
            None => false,
            Some(f) => {
                f.revision < o.revision
                    || (f.revision == o.revision && f.value != o.value && !explains(f))
            }
        })
        .cloned()
        .collect()
}

/// Everything the checkers found in one history.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ops: usize,
    pub keys: Vec<KeyResult>,
    pub linearizable: bool,
    pub undecided_keys: usize,
    pub watch_violations: Vec<WatchViolation>,
    pub lost_writes: Vec<Op>,
}

impl CheckReport {
    /// Every check passed.
    pub fn ok(&self) -> bool {
        self.linearizable && self.watch_violations.is_empty() && self.lost_writes.is_empty()
    }
}

/// Runs every checker on `h`. An undecided key counts as not linearizable.
pub fn check_history(h: &History) -> CheckReport {
    let keys = check_linearizable(&h.ops);
    CheckReport {
        ops: h.ops.len(),
        linearizable: keys.iter().all(|k| k.verdict == Verdict::Linearizable),
        undecided_keys: keys
            .iter()
            .filter(|k| k.verdict == Verdict::Undecided)
            .count(),
        keys,
        watch_violations: check_watches(h),
        lost_writes: lost_writes(h),
    }
}

/// Structural problems of a history read from a file, named.
pub fn validate(h: &History) -> Result<(), String> {
    if h.version != HISTORY_VERSION {
        return Err(format!(
            "history format version {} is not supported (expected {HISTORY_VERSION})",
            h.version
        ));
    }
    for (i, o) in h.ops.iter().enumerate() {
        let at = || format!("ops[{i}] ({} {:?} on {})", o.process, o.kind, o.key);
        if o.complete_ns < o.invoke_ns && o.outcome != Outcome::Unknown {
            return Err(format!(
                "{}: complete_ns {} is before invoke_ns {}",
                at(),
                o.complete_ns,
                o.invoke_ns
            ));
        }
        if o.kind == OpType::Read && (o.value.is_some() || o.expect.is_some()) {
            return Err(format!("{}: a read has no value or expect", at()));
        }
        if o.kind != OpType::Read && o.result.is_some() {
            return Err(format!("{}: only a read has a result", at()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `process kind key value/expect/result invoke complete outcome`, as a
    /// compact table row: `w`, `r`, `c` (cas); `-` for null; `?` for unknown.
    fn op(p: u64, spec: &str, t0: u64, t1: u64, outcome: Outcome) -> Op {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let v = |s: &str| (s != "-").then(|| s.to_string());
        let (kind, value, expect, result) = match parts[0] {
            "w" => (OpType::Write, v(parts[1]), None, None),
            "r" => (OpType::Read, None, None, v(parts[1])),
            "c" => (OpType::Cas, v(parts[2]), v(parts[1]), None),
            k => panic!("bad kind {k}"),
        };
        Op {
            process: p,
            key: "k".into(),
            kind,
            value,
            expect,
            invoke_ns: t0,
            complete_ns: t1,
            outcome,
            result,
            revision: 0,
            error: None,
        }
    }
    use Outcome::{Fail, Ok as Done, Unknown};

    fn verdict(ops: &[Op]) -> Verdict {
        let refs: Vec<&Op> = ops.iter().collect();
        check_key(&refs, STEP_BUDGET)
    }

    #[test]
    fn linearizability_table() {
        let cases: Vec<(&str, Vec<Op>, Verdict)> = vec![
            (
                "empty read",
                vec![op(1, "r -", 0, 1, Done)],
                Verdict::Linearizable,
            ),
            (
                "read of a value never written",
                vec![op(1, "r x", 0, 1, Done)],
                Verdict::Violation,
            ),
            (
                "sequential write then read",
                vec![op(1, "w a", 0, 1, Done), op(2, "r a", 2, 3, Done)],
                Verdict::Linearizable,
            ),
            (
                "stale read after a completed overwrite",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(1, "w b", 2, 3, Done),
                    op(2, "r a", 4, 5, Done),
                ],
                Verdict::Violation,
            ),
            (
                "read concurrent with the overwrite may see either",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(1, "w b", 2, 6, Done),
                    op(2, "r a", 3, 4, Done),
                    op(3, "r b", 3, 5, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "reads going back: b then a, both after w b was invoked",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(1, "w b", 2, 10, Done),
                    op(2, "r b", 3, 4, Done),
                    op(3, "r a", 5, 6, Done),
                ],
                Verdict::Violation,
            ),
            (
                "lost write: acknowledged, then the old value again",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "w b", 2, 3, Done),
                    op(3, "r b", 4, 5, Done),
                    op(3, "r a", 6, 7, Done),
                ],
                Verdict::Violation,
            ),
            (
                "lost write: acknowledged, then absent",
                vec![op(1, "w a", 0, 1, Done), op(2, "r -", 2, 3, Done)],
                Verdict::Violation,
            ),
            (
                "cas from the value held",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "c a b", 2, 3, Done),
                    op(3, "r b", 4, 5, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "two cas from the same value both succeed",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "c a b", 2, 5, Done),
                    op(3, "c a c", 2, 5, Done),
                ],
                Verdict::Violation,
            ),
            (
                "cas fails although the value held matched",
                vec![op(1, "w a", 0, 1, Done), op(2, "c a b", 2, 3, Fail)],
                Verdict::Violation,
            ),
            (
                "cas fails against a concurrent overwrite",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "c a b", 2, 5, Fail),
                    op(3, "w c", 3, 4, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "cas succeeds on an absent key expecting absent",
                vec![op(1, "c - a", 0, 1, Done), op(2, "r a", 2, 3, Done)],
                Verdict::Linearizable,
            ),
            (
                "cas that failed for another reason is ignored",
                vec![op(1, "w a", 0, 1, Done), {
                    let mut o = op(2, "c a b", 2, 3, Fail);
                    o.error = Some("no master".into());
                    o
                }],
                Verdict::Linearizable,
            ),
            (
                "unknown write observed long after it timed out",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "w b", 2, 3, Unknown),
                    op(3, "r a", 10, 11, Done),
                    op(3, "r b", 12, 13, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "unknown write never applied",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "w b", 2, 3, Unknown),
                    op(3, "r a", 10, 11, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "unknown write cannot apply before its invocation",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(3, "r b", 2, 3, Done),
                    op(2, "w b", 4, 5, Unknown),
                ],
                Verdict::Violation,
            ),
            (
                "unknown write cannot apply twice",
                vec![
                    op(2, "w b", 0, 1, Unknown),
                    op(3, "r b", 2, 3, Done),
                    op(1, "w a", 4, 5, Done),
                    op(3, "r a", 6, 7, Done),
                    op(3, "r b", 8, 9, Done),
                ],
                Verdict::Violation,
            ),
            (
                "failed write never applies",
                vec![op(2, "w b", 0, 1, Fail), op(3, "r b", 2, 3, Done)],
                Verdict::Violation,
            ),
            (
                "unknown cas explains a later read",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "c a b", 2, 3, Unknown),
                    op(3, "r b", 4, 5, Done),
                ],
                Verdict::Linearizable,
            ),
            (
                "unknown cas cannot apply from another value",
                vec![
                    op(1, "w c", 0, 1, Done),
                    op(2, "c a b", 2, 3, Unknown),
                    op(3, "r b", 4, 5, Done),
                ],
                Verdict::Violation,
            ),
            (
                "an unknown write explains a failed cas",
                vec![
                    op(1, "w a", 0, 1, Done),
                    op(2, "w b", 2, 3, Unknown),
                    op(3, "c a c", 4, 5, Fail),
                ],
                Verdict::Linearizable,
            ),
            (
                "reads and returns at the same instant overlap",
                vec![op(1, "w a", 0, 5, Done), op(2, "r a", 5, 6, Done)],
                Verdict::Linearizable,
            ),
        ];
        for (name, ops, want) in cases {
            assert_eq!(verdict(&ops), want, "{name}");
        }
    }

    #[test]
    fn many_concurrent_ops_stay_fast() {
        // 8 writers and readers, heavily overlapping, with unknown writes.
        let mut ops = Vec::new();
        let mut t = 0;
        for round in 0..200u64 {
            let v = format!("v{round}");
            ops.push(op(round % 8, &format!("w {v}"), t, t + 30, Done));
            ops.push(op(100 + round % 3, &format!("r {v}"), t + 20, t + 35, Done));
            if round % 10 == 0 {
                ops.push(op(50, &format!("w u{round}"), t + 1, t + 2, Unknown));
            }
            t += 25;
        }
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn minimal_violation_names_the_stale_read() {
        let mut ops = vec![op(1, "w a", 0, 1, Done)];
        let mut t = 2;
        for i in 0..20 {
            ops.push(op(2, &format!("w v{i}"), t, t + 1, Done));
            ops.push(op(3, &format!("r v{i}"), t + 2, t + 3, Done));
            t += 4;
        }
        // The stale read: v18 after v19 was read.
        ops.push(op(4, "r v18", t, t + 1, Done));
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(check_key(&refs, STEP_BUDGET), Verdict::Violation);
        let min = minimal_violation(&refs);
        let shown: Vec<String> = min
            .iter()
            .map(|o| {
                format!(
                    "{:?} {}",
                    o.kind,
                    o.value.clone().or(o.result.clone()).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(shown, ["Write v18", "Write v19", "Read v18"], "{shown:?}");
    }

    #[test]
    fn minimal_violation_keeps_the_writes_a_failed_cas_needs() {
        // The read of a value never written is the violation; dropping the
        // write of b would make the failed cas a second, different one.
        let ops = [
            op(1, "w a", 0, 1, Done),
            op(1, "w b", 2, 3, Done),
            op(2, "c a c", 4, 5, Fail),
            op(1, "w d", 6, 7, Done),
            op(3, "r d", 8, 9, Done),
            op(3, "r zz", 10, 11, Done),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let min = minimal_violation(&refs);
        assert_eq!(min.len(), 1, "{min:?}");
        assert_eq!(min[0].result.as_deref(), Some("zz"));
    }

    #[test]
    fn minimal_violation_of_a_corrupted_read_is_that_read() {
        // Sequential histories of writes, reads and cas (some failing), one
        // read corrupted to a value never written, at varying places.
        for seed in 0..40u64 {
            let mut x = seed * 7919 + 13;
            let mut rnd = |m: u64| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) % m
            };
            let (mut ops, mut state, mut t) = (Vec::new(), String::from("-"), 0);
            for i in 0..60 {
                let o = match rnd(3) {
                    0 => {
                        state = format!("v{i}");
                        op(1, &format!("w {state}"), t, t + 1, Done)
                    }
                    1 => op(2, &format!("r {state}"), t, t + 1, Done),
                    _ => op(3, &format!("c v{} n{i}", i / 2), t, t + 1, Fail),
                };
                // A cas of a value held would have succeeded: keep it honest.
                if o.kind == OpType::Cas && o.expect.as_deref() == Some(state.as_str()) {
                    continue;
                }
                ops.push(o);
                t += 2;
            }
            let reads: Vec<usize> = (0..ops.len())
                .filter(|&i| ops[i].kind == OpType::Read)
                .collect();
            let bad = reads[rnd(reads.len() as u64) as usize];
            ops[bad].result = Some("zz".into());
            let refs: Vec<&Op> = ops.iter().collect();
            let min = minimal_violation(&refs);
            assert_eq!(min.len(), 1, "seed {seed}: {min:?}");
            assert_eq!(min[0].result.as_deref(), Some("zz"), "seed {seed}");
        }
    }

    fn ev(revision: u64, key: &str, value: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    fn acked(key: &str, value: &str, revision: u64) -> Op {
        let mut o = op(1, &format!("w {value}"), revision, revision + 1, Done);
        o.key = key.into();
        o.revision = revision;
        o
    }

    #[test]
    fn watch_table() {
        let ops = vec![
            acked("p/a", "1", 5),
            acked("p/b", "2", 5),
            acked("p/a", "3", 7),
            acked("p/a", "4", 7),
            acked("q/x", "9", 8),
        ];
        let stream = |events: Vec<WatchEvent>, through| WatchStream {
            watcher: 1,
            prefix: "p/".into(),
            after_revision: 4,
            through_revision: through,
            events,
            error: None,
        };
        let cases: Vec<(&str, WatchStream, Vec<&str>)> = vec![
            (
                "complete and ordered",
                stream(
                    vec![
                        ev(5, "p/a", "1"),
                        ev(5, "p/b", "2"),
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "4"),
                    ],
                    9,
                ),
                vec![],
            ),
            (
                "through 5 need not hold 7",
                stream(vec![ev(5, "p/a", "1"), ev(5, "p/b", "2")], 5),
                vec![],
            ),
            (
                "gap",
                stream(
                    vec![ev(5, "p/a", "1"), ev(7, "p/a", "3"), ev(7, "p/a", "4")],
                    9,
                ),
                vec!["gap"],
            ),
            (
                "repeat",
                stream(
                    vec![
                        ev(5, "p/a", "1"),
                        ev(5, "p/b", "2"),
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "4"),
                    ],
                    9,
                ),
                vec!["repeat"],
            ),
            (
                "disorder",
                stream(
                    vec![
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "4"),
                        ev(5, "p/a", "1"),
                        ev(5, "p/b", "2"),
                    ],
                    9,
                ),
                vec!["disorder", "disorder"],
            ),
            (
                "wrong revision",
                stream(
                    vec![
                        ev(5, "p/a", "1"),
                        ev(5, "p/b", "2"),
                        ev(6, "p/a", "3"),
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "4"),
                    ],
                    9,
                ),
                vec!["wrong-revision"],
            ),
            (
                "a gap among the changes of one revision",
                stream(
                    vec![ev(5, "p/a", "1"), ev(5, "p/b", "2"), ev(7, "p/a", "4")],
                    9,
                ),
                vec!["gap"],
            ),
            (
                "phantom",
                stream(
                    vec![
                        ev(5, "p/a", "1"),
                        ev(5, "p/b", "2"),
                        ev(6, "p/a", "zz"),
                        ev(7, "p/a", "3"),
                        ev(7, "p/a", "4"),
                    ],
                    9,
                ),
                vec!["phantom"],
            ),
        ];
        for (name, w, want) in cases {
            let h = History {
                version: HISTORY_VERSION,
                ops: ops.clone(),
                watches: vec![w],
                ..History::default()
            };
            let found = check_watches(&h);
            let got: Vec<&str> = found.iter().map(|v| v.kind).collect();
            assert_eq!(got, want, "{name}: {found:?}");
        }
    }

    #[test]
    fn lost_writes_table() {
        let ops = vec![
            acked("a", "1", 5),
            acked("a", "2", 9),
            acked("b", "3", 6),
            // Two writes of one Raft entry: either may be the final value.
            acked("c", "4", 8),
            acked("c", "5", 8),
        ];
        let fin = |key: &str, value: &str, revision| FinalRead {
            key: key.into(),
            value: Some(value.into()),
            revision,
        };
        let cases = vec![
            ("all there", vec![fin("a", "2", 9), fin("b", "3", 6)], 0),
            (
                "overwritten later",
                vec![fin("a", "x", 12), fin("b", "3", 6)],
                0,
            ),
            ("went back", vec![fin("a", "1", 5), fin("b", "3", 6)], 1),
            (
                "other value at R",
                vec![fin("a", "2", 9), fin("b", "z", 6)],
                1,
            ),
        ];
        for (name, finals, want) in cases {
            let h = History {
                version: HISTORY_VERSION,
                ops: ops.clone(),
                finals,
                ..History::default()
            };
            assert_eq!(lost_writes(&h).len(), want, "{name}");
        }
    }

    #[test]
    fn history_round_trips_and_validates() {
        let h = History {
            version: HISTORY_VERSION,
            seed: Some(7),
            ops: vec![acked("a", "1", 5), op(2, "r 1", 7, 8, Done)],
            watches: vec![],
            finals: vec![],
        };
        let text = serde_json::to_string(&h).unwrap();
        let back: History = serde_json::from_str(&text).unwrap();
        assert_eq!(back, h);
        assert!(validate(&h).is_ok());
        let mut bad = h.clone();
        bad.ops[1].complete_ns = 1;
        assert!(validate(&bad).unwrap_err().contains("before invoke_ns"));
        bad.version = 9;
        assert!(validate(&bad).unwrap_err().contains("version 9"));
    }
}
