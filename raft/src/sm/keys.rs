//! Key layout inside one state-machine tree (`sm.<generation>`).
//!
//! - `k/<key>`            → [`StoredKv`] (latest value)
//! - `h/<rev:8><seq:4>`   → `Vec<`[`ferry_api::kv::Event`]`>` without `prev`: a run of
//!   the revision's events, the first with sequence number `seq` (watch history)
//! - `p/<rev:8><seq:4>`   → [`StoredKv`]: the event's previous value, if any
//! - `m/applied`, `m/membership`, `m/compacted` → metadata
//! - `m/applying` → last index of the apply call in progress (see [`crate::sm`])
//! - `o/<rev:8><part:4>` → the request ids an entry remembered, with their
//!   outcomes; `m/requests` → ids remembered so far (see [`crate::sm::sessions`])
//!
//! Big-endian revisions make history scans ordered.

use ferry_api::kv::KeyValue;
use serde::{Deserialize, Serialize};

pub const APPLIED: &[u8] = b"m/applied";
pub const APPLYING: &[u8] = b"m/applying";
pub const MEMBERSHIP: &[u8] = b"m/membership";
pub const COMPACTED: &[u8] = b"m/compacted";
pub const KV: &[u8] = b"k/";
pub const HIST: &[u8] = b"h/";
pub const PREV: &[u8] = b"p/";
pub const REMEMBERED: &[u8] = b"o/";
pub const REQUEST_SEQ: &[u8] = b"m/requests";

/// A key's stored value and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKv {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

impl StoredKv {
    pub fn to_kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }

    pub fn from_kv(kv: &KeyValue) -> StoredKv {
        StoredKv {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }
}

pub fn kv_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    k.extend_from_slice(KV);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn event_key(prefix: &[u8], rev: u64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(14);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&rev.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Revision of a history key (`h/` or `p/`).
pub fn event_rev(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[2..10]);
    u64::from_be_bytes(b)
}

/// Sequence number of a history key (`h/` or `p/`) within its revision.
pub fn event_seq(k: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&k[10..14]);
    u32::from_be_bytes(b)
}

/// Start of the history at revision `rev`.
pub fn hist_from(prefix: &[u8], rev: u64) -> Vec<u8> {
    event_key(prefix, rev, 0)
}
