//! Reads from the state machine: latest or at a revision inside the history window.
//!
//! A read holds the shared side of the tree lock for its whole scan; apply takes
//! the exclusive side while it writes, so a scan sees exactly one revision.
//! History scans (watches) go without the lock and stop at the applied revision. A read at an older revision `R` undoes, from the history, every
//! change after `R` to the keys it returns.

use super::keys::{self, StoredKv};
use super::SmShared;
use crate::types::decode;
use ferry_api::kv::{Event, KeyValue, KvError};
use ferry_api::proto::RangeResponse;
use std::collections::BTreeMap;

type Fixups = BTreeMap<String, Option<StoredKv>>;

/// A page stops growing past this many bytes (it must fit one frame); `more` is set.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// Revisions of history with their matching events, and the last revision scanned.
pub type HistoryPage = (Vec<(u64, Vec<Event>)>, u64);

impl SmShared {
    fn check_revision(&self, at: u64, applied: u64) -> Result<(), KvError> {
        let compacted = self.compacted();
        if at > applied {
            return Err(KvError::FutureRevision {
                revision: at,
                current: applied,
            });
        }
        if at < compacted {
            return Err(KvError::TooOld {
                revision: at,
                compacted,
            });
        }
        Ok(())
    }

    /// Value of every key changed after `at` (and matching `prefix`) as it was at `at`.
    fn fixups(tree: &sled::Tree, at: u64, prefix: &str) -> crate::Result<Fixups> {
        let mut out = Fixups::new();
        for item in
            tree.range(keys::hist_from(keys::HIST, at + 1)..keys::hist_from(keys::HIST, u64::MAX))
        {
            let (k, v) = item?;
            let (rev, seq) = (keys::event_rev(&k), keys::event_seq(&k));
            let run: Vec<Event> = decode(&v, "history events")?;
            for (i, ev) in run.into_iter().enumerate() {
                if !ev.kv.key.starts_with(prefix) || out.contains_key(&ev.kv.key) {
                    continue;
                }
                let pk = keys::event_key(keys::PREV, rev, seq + i as u32);
                let prev = match tree.get(&pk)? {
                    Some(p) => Some(decode::<StoredKv>(&p, "history prev")?),
                    None => None,
                };
                out.insert(ev.kv.key, prev);
            }
        }
        Ok(out)
    }

    /// Reads one key, latest (`at == None`) or at a revision.
    pub fn get(
        &self,
        key: &str,
        at: Option<u64>,
    ) -> crate::Result<Result<(Option<KeyValue>, u64), KvError>> {
        let tree = self.tree.read().expect("tree lock");
        let applied = self.applied();
        let rev = at.unwrap_or(applied);
        if let Err(e) = self.check_revision(rev, applied) {
            return Ok(Err(e));
        }
        if rev < applied {
            let fix = Self::fixups(&tree, rev, key)?;
            if let Some(v) = fix.get(key) {
                return Ok(Ok((v.as_ref().map(|s| s.to_kv(key)), rev)));
            }
        }
        let kv = match tree.get(keys::kv_key(key))? {
            Some(b) => Some(decode::<StoredKv>(&b, "stored value")?.to_kv(key)),
            None => None,
        };
        Ok(Ok((kv, rev)))
    }

    /// Reads keys under `prefix` after `start_after`, at most `limit` (0 = all).
    pub fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u64,
        at: Option<u64>,
    ) -> crate::Result<Result<RangeResponse, KvError>> {
        let tree = self.tree.read().expect("tree lock");
        let applied = self.applied();
        let rev = at.unwrap_or(applied);
        if let Err(e) = self.check_revision(rev, applied) {
            return Ok(Err(e));
        }
        let mut fix = if rev < applied {
            Self::fixups(&tree, rev, prefix)?
        } else {
            Fixups::new()
        };
        if let Some(after) = start_after {
            fix = fix.split_off(&format!("{after}\0"));
        }
        let want = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let start = match start_after {
            Some(a) if a >= prefix => {
                let mut k = keys::kv_key(a);
                k.push(0);
                k
            }
            _ => keys::kv_key(prefix),
        };
        let kvp = keys::kv_key(prefix);
        let mut stored = tree
            .range(start..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&kvp)))
            .peekable();
        let mut fixes = fix.into_iter().peekable();
        let mut kvs = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        loop {
            let next_stored = match stored.peek() {
                Some(Ok((k, _))) => Some(String::from_utf8_lossy(&k[2..]).into_owned()),
                Some(Err(_)) => return Err(stored.next().expect("peeked").unwrap_err().into()),
                None => None,
            };
            let next_fix = fixes.peek().map(|(k, _)| k.clone());
            let (key, val) = match (next_stored, next_fix) {
                (None, None) => break,
                (Some(s), Some(f)) if f <= s => {
                    if f == s {
                        stored.next();
                    }
                    let (k, v) = fixes.next().expect("peeked");
                    (k, v)
                }
                (Some(s), _) => {
                    let (_, v) = stored.next().expect("peeked")?;
                    (s, Some(decode::<StoredKv>(&v, "stored value")?))
                }
                (None, Some(_)) => fixes.next().expect("peeked"),
            };
            let Some(val) = val else { continue };
            if kvs.len() == want || bytes > MAX_PAGE_BYTES {
                more = true;
                break;
            }
            bytes += key.len() + val.value.len();
            kvs.push(val.to_kv(&key));
        }
        Ok(Ok(RangeResponse {
            kvs,
            revision: rev,
            more,
        }))
    }

    /// History after revision `after` for keys under `prefix`: up to `max` revisions
    /// that have matching events, and the last revision scanned.
    pub fn history(
        &self,
        after: u64,
        prefix: &str,
        max: usize,
    ) -> crate::Result<Result<HistoryPage, KvError>> {
        let tree = self.tree.read().expect("tree lock").clone();
        // Apply writes a revision key by key; only revisions up to `applied` are
        // whole. Later ones reach the watcher live.
        let applied = self.applied();
        let compacted = self.compacted();
        if after < compacted {
            return Ok(Err(KvError::TooOld {
                revision: after,
                compacted,
            }));
        }
        let mut out: Vec<(u64, Vec<Event>)> = Vec::new();
        let mut scanned = after;
        let end = keys::hist_from(keys::HIST, applied.max(after).saturating_add(1));
        for item in tree.range(keys::hist_from(keys::HIST, after + 1)..end) {
            let (k, v) = item?;
            let (rev, seq) = (keys::event_rev(&k), keys::event_seq(&k));
            if rev != scanned && out.len() >= max {
                break;
            }
            scanned = rev;
            let run: Vec<Event> = decode(&v, "history events")?;
            for (i, mut ev) in run.into_iter().enumerate() {
                if !ev.kv.key.starts_with(prefix) {
                    continue;
                }
                let pk = keys::event_key(keys::PREV, rev, seq + i as u32);
                if let Some(p) = tree.get(&pk)? {
                    ev.prev = Some(decode::<StoredKv>(&p, "history prev")?.to_kv(&ev.kv.key));
                }
                match out.last_mut() {
                    Some((r, evs)) if *r == rev => evs.push(ev),
                    _ => out.push((rev, vec![ev])),
                }
            }
        }
        // A trim racing the scan may have removed part of what we read past.
        let compacted = self.compacted();
        if after < compacted {
            return Ok(Err(KvError::TooOld {
                revision: after,
                compacted,
            }));
        }
        Ok(Ok((out, scanned)))
    }
}
