//! Each store event decoded once per master, shared by every watch that sees
//! it: a watch whose filter rejects the event pays only the filter check, and
//! the watches it matches share one serialization of the object they report.
//!
//! An event is named by its revision, its key and which of that key's events
//! in the revision it is (a revision may change a key twice): a revision's
//! events are the same on every master and forever. The most recent events are
//! kept, up to [`BUDGET`] stored bytes; a watch further behind decodes again.

use crate::apiserver::meta::{decode, set_resource_version};
use ferry_api::kv::{Event, EventKind};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Stored bytes (keys and values) of the events kept decoded; decoded they
/// take a few times that.
const BUDGET: usize = 16 << 20;

/// One event's objects, decoded.
pub struct Decoded {
    /// The object before the change (at its own resourceVersion), if any.
    pub old: Option<Value>,
    /// The object a put stored; `None` for a delete.
    pub cur: Option<Value>,
    /// What a watch event reports, serialized: `cur`, or for a delete `old`
    /// at the delete's revision.
    reported: OnceLock<Vec<u8>>,
}

impl Decoded {
    fn new(ev: &Event) -> Decoded {
        Decoded {
            old: ev.prev.as_ref().and_then(|kv| decode(kv).ok()),
            cur: match ev.kind {
                EventKind::Put => decode(&ev.kv).ok(),
                EventKind::Delete => None,
            },
            reported: OnceLock::new(),
        }
    }

    /// The reported object's JSON, made by the first watch that asks.
    pub fn reported(&self, revision: u64) -> &[u8] {
        self.reported.get_or_init(|| {
            let json = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
            match (&self.cur, &self.old) {
                (Some(cur), _) => json(cur),
                (None, Some(old)) => {
                    let mut o = old.clone();
                    set_resource_version(&mut o, revision);
                    json(&o)
                }
                (None, None) => Vec::new(),
            }
        })
    }
}

type Slot = Arc<OnceLock<Arc<Decoded>>>;

/// The recent events this master's watches decoded: cheap to clone, shared.
#[derive(Clone, Default)]
pub struct DecodedEvents(Arc<Inner>);

#[derive(Default)]
struct Inner {
    recent: Mutex<Recent>,
    decodes: AtomicU64,
}

/// Slots by revision, then key, then the key's place among the revision's events.
#[derive(Default)]
struct Recent {
    revisions: BTreeMap<u64, HashMap<String, Vec<Slot>>>,
    /// Stored bytes of the events in `revisions`.
    bytes: usize,
    /// Stored bytes of each revision's events there.
    sizes: HashMap<u64, usize>,
}

impl DecodedEvents {
    /// Events decoded so far: once each while they stay recent.
    pub fn decodes(&self) -> u64 {
        self.0.decodes.load(Ordering::Relaxed)
    }

    /// `events` (those of `revision` under one watch's prefix, in order), decoded.
    pub fn get(&self, revision: u64, events: &[Event]) -> Vec<Arc<Decoded>> {
        if events.is_empty() {
            return Vec::new();
        }
        let slots = self.slots(revision, events);
        events
            .iter()
            .zip(slots)
            .map(|(ev, slot)| {
                slot.get_or_init(|| {
                    self.0.decodes.fetch_add(1, Ordering::Relaxed);
                    Arc::new(Decoded::new(ev))
                })
                .clone()
            })
            .collect()
    }

    /// The slots of `events`, made empty where missing; decoding happens
    /// outside the lock, once per slot.
    fn slots(&self, revision: u64, events: &[Event]) -> Vec<Slot> {
        let mut recent = self.0.recent.lock().expect("decoded events lock");
        let recent = &mut *recent;
        let by_key = recent.revisions.entry(revision).or_default();
        let mut added = 0;
        let mut nth: HashMap<&str, usize> = HashMap::new();
        let slots = events
            .iter()
            .map(|ev| {
                let key = ev.kv.key.as_str();
                let n = nth.entry(key).or_default();
                let place = *n;
                *n += 1;
                if !by_key.contains_key(key) {
                    by_key.insert(key.to_string(), Vec::new());
                }
                let kept = by_key.get_mut(key).expect("just inserted");
                while kept.len() <= place {
                    added += ev.kv.key.len()
                        + ev.kv.value.len()
                        + ev.prev.as_ref().map_or(0, |p| p.value.len());
                    kept.push(Slot::default());
                }
                kept[place].clone()
            })
            .collect();
        if added > 0 {
            *recent.sizes.entry(revision).or_default() += added;
            recent.bytes += added;
            while recent.bytes > BUDGET {
                let Some((oldest, _)) = recent.revisions.pop_first() else {
                    break;
                };
                recent.bytes -= recent.sizes.remove(&oldest).unwrap_or(0);
            }
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::kv::KeyValue;
    use serde_json::json;

    fn put(key: &str, rev: u64, obj: Value, prev: Option<(u64, Value)>) -> Event {
        let kv = |rev: u64, v: &Value| KeyValue {
            key: key.into(),
            value: serde_json::to_vec(v).unwrap(),
            create_revision: 1,
            mod_revision: rev,
            version: 1,
        };
        Event {
            kind: EventKind::Put,
            kv: kv(rev, &obj),
            prev: prev.map(|(r, v)| kv(r, &v)),
        }
    }

    fn named(name: &str) -> Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn an_event_is_decoded_once_for_every_watch_that_sees_it() {
        let d = DecodedEvents::default();
        let evs = vec![put("/a", 5, named("a"), Some((3, named("a0"))))];
        let first = d.get(5, &evs);
        let again = d.get(5, &evs);
        assert_eq!(d.decodes(), 1);
        assert!(Arc::ptr_eq(&first[0], &again[0]));
        assert_eq!(
            first[0].cur.as_ref().unwrap()["metadata"]["resourceVersion"],
            "5"
        );
        assert_eq!(
            first[0].old.as_ref().unwrap()["metadata"]["resourceVersion"],
            "3"
        );
        // A watch of a narrower prefix sees a subset of the revision's events.
        let two = [evs[0].clone(), put("/b", 5, named("b"), None)];
        let got = d.get(5, &two[1..]);
        assert_eq!(d.decodes(), 2);
        assert_eq!(got[0].cur.as_ref().unwrap()["metadata"]["name"], "b");
    }

    #[test]
    fn a_key_changed_twice_in_one_revision_is_two_events() {
        let d = DecodedEvents::default();
        let evs = vec![
            put("/a", 7, named("first"), None),
            put("/a", 7, named("second"), Some((7, named("first")))),
        ];
        let got = d.get(7, &evs);
        assert_eq!(d.decodes(), 2);
        let names: Vec<_> = got
            .iter()
            .map(|g| g.cur.as_ref().unwrap()["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("first"), json!("second")]);
        // The second alone (a repeat of the whole revision) is still found in place.
        let again = d.get(7, &evs);
        assert!(Arc::ptr_eq(&got[1], &again[1]));
    }

    #[test]
    fn a_delete_reports_the_old_object_at_the_deletes_revision() {
        let d = DecodedEvents::default();
        let mut ev = put("/a", 9, named("x"), Some((4, named("a"))));
        ev.kind = EventKind::Delete;
        ev.kv.value.clear();
        let got = d.get(9, &[ev]);
        let reported: Value = serde_json::from_slice(got[0].reported(9)).unwrap();
        assert_eq!(reported["metadata"]["name"], "a");
        assert_eq!(reported["metadata"]["resourceVersion"], "9");
        assert!(got[0].cur.is_none());
    }

    #[test]
    fn old_revisions_are_dropped_beyond_the_budget() {
        let d = DecodedEvents::default();
        let big = json!({"metadata": {"name": "big"}, "data": "x".repeat(1 << 20)});
        for rev in 1..=40 {
            d.get(rev, &[put("/big", rev, big.clone(), None)]);
        }
        let recent = d.0.recent.lock().unwrap();
        assert!(recent.bytes <= BUDGET, "{} bytes kept", recent.bytes);
        assert_eq!(recent.revisions.keys().next_back(), Some(&40));
        assert!(!recent.revisions.contains_key(&1));
        assert_eq!(recent.revisions.len(), recent.sizes.len());
    }
}
