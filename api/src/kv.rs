//! The store's business types: what a write asks for and what it answers.
//!
//! Revisions are Raft log indexes: every write applied by one log entry carries
//! that entry's index as its `mod_revision`. Business failures (exists, not found,
//! conflict) are values of [`KvError`], never transport or storage errors.

use serde::{Deserialize, Serialize};

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (empty in a delete event).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Revision that created the key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the last change.
    pub mod_revision: u64,
    /// Number of changes since creation (1 on create).
    pub version: u64,
}

/// A precondition on a key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// No precondition.
    Any,
    /// The key must not exist (create).
    Absent,
    /// The key must exist.
    Exists,
    /// The key must exist with exactly this `mod_revision`.
    ModRevision(u64),
}

/// One write to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Set the value.
    Put {
        /// Key.
        key: String,
        /// Value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Precondition.
        expect: Expect,
    },
    /// Remove the key.
    Delete {
        /// Key.
        key: String,
        /// Precondition.
        expect: Expect,
    },
    /// Change nothing; only the precondition must hold (a guard in a
    /// transaction, e.g. "the namespace is still the one checked"). Added after
    /// `Put` and `Delete`: the log's encoding of those is unchanged.
    Check {
        /// Key.
        key: String,
        /// Precondition.
        expect: Expect,
    },
}

impl WriteOp {
    /// The key this op writes.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => {
                key
            }
        }
    }

    /// The precondition.
    pub fn expect(&self) -> Expect {
        match self {
            WriteOp::Put { expect, .. }
            | WriteOp::Delete { expect, .. }
            | WriteOp::Check { expect, .. } => *expect,
        }
    }

    /// Approximate encoded size, for batching.
    pub fn size(&self) -> usize {
        match self {
            WriteOp::Put { key, value, .. } => key.len() + value.len() + 16,
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => key.len() + 16,
        }
    }
}

/// One client write: a single op, an all-or-nothing transaction, or a compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// One op.
    Op(WriteOp),
    /// Every op's precondition holds, then all apply; otherwise none does.
    Txn(Vec<WriteOp>),
    /// Drop watch history at and below this revision.
    Compact(u64),
}

impl Write {
    /// Approximate encoded size, for batching.
    pub fn size(&self) -> usize {
        match self {
            Write::Op(op) => op.size(),
            Write::Txn(ops) => ops.iter().map(WriteOp::size).sum::<usize>() + 8,
            Write::Compact(_) => 16,
        }
    }

    /// A write is safe to retry when a repeat cannot apply twice: every op is
    /// conditional on an exact `mod_revision` (a repeat after success conflicts),
    /// or it is a compaction. `Exists` and `Any` could apply again; `Absent` would
    /// report `AlreadyExists` for its own success.
    pub fn is_idempotent(&self) -> bool {
        let exact = |o: &WriteOp| matches!(o.expect(), Expect::ModRevision(_));
        match self {
            Write::Op(op) => exact(op),
            Write::Txn(ops) => ops.iter().all(exact),
            Write::Compact(_) => true,
        }
    }
}

/// A write's unique id: a repeat of the same id is answered with the first
/// outcome instead of applying again (exactly-once writes, Raft dissertation §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u128);

impl RequestId {
    /// A new id: the wall clock in nanoseconds in the high 64 bits, 64 random
    /// bits below (collisions are not a concern). Time first, so the state
    /// machine's records of remembered ids (keyed by id) are inserted near one
    /// another at the end of their tree instead of at random places in it.
    pub fn random() -> RequestId {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RequestId((u128::from(nanos) << 64) | u128::from(rand::random::<u64>()))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// What a successful write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The revision (Raft log index) at which it applied.
    pub revision: u64,
    /// For each op, the previous value of its key (if it existed). Empty when
    /// this answers a repeat of a remembered request id whose previous values
    /// have left the store's history window (the store keeps outcomes without
    /// values and reads them back from its history).
    pub prev: Vec<Option<KeyValue>>,
}

/// A business failure of a write or read; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// Key.
        key: String,
    },
    /// Update or delete of a key that does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// Key.
        key: String,
    },
    /// The key's mod_revision is not the expected one.
    #[error("conflict on key {key}: expected mod_revision {expected}, found {actual}")]
    Conflict {
        /// Key.
        key: String,
        /// Precondition.
        expected: u64,
        /// Current mod_revision (0 when the key does not exist).
        actual: u64,
    },
    /// A transaction op failed; no op of the transaction was applied.
    #[error("transaction op {index} failed: {source}")]
    TxnFailed {
        /// Index of the failing op.
        index: usize,
        /// Why it failed.
        source: Box<KvError>,
    },
    /// The revision asked for has been compacted away.
    #[error("revision {revision} is compacted (oldest available is {compacted}); re-list and watch again")]
    TooOld {
        /// Requested revision.
        revision: u64,
        /// Compacted revision: history at or below it is gone.
        compacted: u64,
    },
    /// The revision asked for is in the future.
    #[error("revision {revision} is newer than the current revision {current}")]
    FutureRevision {
        /// Requested revision.
        revision: u64,
        /// Current revision.
        current: u64,
    },
    /// The request is malformed (empty key, value too large...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Kind of change in a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: key, empty value, mod_revision of the delete).
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev: Option<KeyValue>,
}

/// Every event of one revision under a watched prefix, or a bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchItem {
    /// The events of one revision, in the order they were applied. Never split.
    Events {
        /// The revision.
        revision: u64,
        /// Its events under the watched prefix.
        events: Vec<Event>,
    },
    /// Progress notification: every event up to this revision has been sent.
    Bookmark {
        /// The revision.
        revision: u64,
    },
}

impl WatchItem {
    /// The revision this item reports.
    pub fn revision(&self) -> u64 {
        match self {
            WatchItem::Events { revision, .. } | WatchItem::Bookmark { revision } => *revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `KeyValue` before values were marked as byte strings.
    #[derive(Serialize)]
    struct SeqKeyValue {
        key: String,
        value: Vec<u8>,
        create_revision: u64,
        mod_revision: u64,
        version: u64,
    }

    #[test]
    fn byte_string_values_keep_the_sequence_encoding() {
        let kv = KeyValue {
            key: "k".into(),
            value: vec![0, 1, 200, 255],
            create_revision: 1,
            mod_revision: 2,
            version: 1,
        };
        let old = SeqKeyValue {
            key: kv.key.clone(),
            value: kv.value.clone(),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
        };
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&kv, cfg).unwrap();
        assert_eq!(bytes, bincode::serde::encode_to_vec(&old, cfg).unwrap());
        let (back, _): (KeyValue, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, kv);
    }
}
