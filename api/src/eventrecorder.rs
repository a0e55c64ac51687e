//! The event correlator's counting, as client-go's: an Event that repeats
//! one already written (same source, object, type, reason and message) is a
//! `count` and `lastTimestamp` patch of it, not a new Event; the least
//! recently seen are forgotten past [`REMEMBERED`]. Pure: node agents and
//! the controllers do the writes and report what they gave.

use serde_json::{json, Value};
use std::collections::HashMap;

/// Events the recorder remembers at most (client-go's LRU size); the least
/// recently seen goes first.
pub const REMEMBERED: usize = 4096;

/// What makes two events one: client-go's event key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    source: String,
    uid: String,
    field_path: String,
    kind: String,
    reason: String,
    message: String,
}

impl Key {
    fn of(event: &Value) -> Key {
        let s = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or_default();
        Key {
            source: s("/source/component").into(),
            uid: s("/involvedObject/uid").into(),
            field_path: s("/involvedObject/fieldPath").into(),
            kind: s("/type").into(),
            reason: s("/reason").into(),
            message: s("/message").into(),
        }
    }
}

/// An Event this node wrote.
#[derive(Debug)]
struct Written {
    namespace: String,
    name: String,
    count: u64,
    /// When it was last seen, in observations.
    used: u64,
}

/// How to write an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new Event.
    Create(Value),
    /// A repeat: a merge patch of the Event `namespace/name`.
    Patch {
        /// The Event's namespace.
        namespace: String,
        /// The Event's name.
        name: String,
        /// `count` and `lastTimestamp`.
        patch: Value,
    },
}

/// The Events a component wrote, so a repeat counts on the Event it repeats
/// (pure: the shell does the writes and tells it what they gave).
#[derive(Debug, Default)]
pub struct Recorder {
    written: HashMap<Key, Written>,
    observed: u64,
}

impl Recorder {
    /// How to write `event` (an Event object): created when new, else a
    /// count on the Event it repeats.
    pub fn observe(&mut self, event: &Value) -> Write {
        self.observed += 1;
        let Some(w) = self.written.get_mut(&Key::of(event)) else {
            return Write::Create(event.clone());
        };
        w.count += event["count"].as_u64().unwrap_or(1);
        w.used = self.observed;
        Write::Patch {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            patch: json!({"count": w.count, "lastTimestamp": event["lastTimestamp"]}),
        }
    }

    /// `event` was created as the Event `name`.
    pub fn created(&mut self, event: &Value, name: &str) {
        let written = Written {
            namespace: event["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            name: name.into(),
            count: event["count"].as_u64().unwrap_or(1),
            used: self.observed,
        };
        self.written.insert(Key::of(event), written);
        if self.written.len() > REMEMBERED {
            let oldest = self
                .written
                .iter()
                .min_by_key(|(_, w)| w.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.written.remove(&k);
            }
        }
    }

    /// The Event `event` repeats is gone (expired): the next is new.
    pub fn lost(&mut self, event: &Value) {
        self.written.remove(&Key::of(event));
    }

    /// Forgets the Events about the object `uid` (a pod that left its node).
    pub fn forget_pod(&mut self, uid: &str) {
        self.written.retain(|k, _| k.uid != uid);
    }

    /// Events remembered.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }
}
