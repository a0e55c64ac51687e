//! The openraft type config and the replicated command.

use ferry_api::kv::{KvError, RequestId, Write, WriteOutcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

openraft::declare_raft_types!(
    /// ferry's openraft type config: u64 node ids, address-carrying nodes,
    /// snapshots streamed from files.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Master id.
pub type NodeId = u64;
/// openraft's Raft handle for ferry.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// Membership as stored.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// openraft storage error.
pub type StorageError = openraft::StorageError<NodeId>;

/// The payload of a Raft log entry. This is an on-disk format: never change a
/// variant, only add new ones, so an old log replays on a new binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Version 1: a group-committed batch of client writes, applied in order at
    /// one revision (the entry's log index).
    V1 {
        /// The writes (shared: log cache, replication and apply read the same entry;
        /// serialized exactly as a `Vec`).
        writes: Arc<Vec<Write>>,
    },
    /// Version 2: as V1, each write with its request id; the state machine
    /// answers a remembered id with its first outcome instead of applying it again.
    V2 {
        /// The writes (shared, as in V1).
        writes: Arc<Vec<Write>>,
        /// `ids[i]` is the request id of `writes[i]`.
        ids: Arc<Vec<RequestId>>,
        /// The leader's wall clock when it built the entry (ms since the Unix
        /// epoch): remembered ids expire by this time, never the applier's clock.
        at_ms: u64,
    },
}

/// The result of applying one entry: one result per write, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Per-write results.
    pub results: Vec<Result<WriteOutcome, KvError>>,
}

/// bincode configuration for everything this crate stores.
pub fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a value for storage.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode_config()).expect("in-memory encode cannot fail")
}

/// Decodes a stored value, naming what it was on failure.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> crate::Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode_config())
        .map(|(v, _)| v)
        .map_err(|e| crate::Error::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::kv::{Expect, WriteOp};

    #[test]
    fn v1_entries_keep_their_encoding_and_v2_is_a_new_variant() {
        let writes = Arc::new(vec![Write::Op(WriteOp::Put {
            key: "k".into(),
            value: b"v".to_vec(),
            expect: Expect::Any,
        })]);
        let v1 = Command::V1 {
            writes: writes.clone(),
        };
        let mut want = vec![0u8]; // variant 0, then the Vec as V1 always encoded it
        want.extend(encode(&*writes));
        assert_eq!(encode(&v1), want);
        assert_eq!(decode::<Command>(&want, "v1").unwrap(), v1);
        let v2 = Command::V2 {
            writes,
            ids: Arc::new(vec![RequestId(1)]),
            at_ms: 5,
        };
        let bytes = encode(&v2);
        assert_eq!(bytes[0], 1);
        assert_eq!(decode::<Command>(&bytes, "v2").unwrap(), v2);
    }
}
