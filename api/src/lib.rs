//! ferry's wire protocol: store types, QUIC framing, TLS and the client.
//!
//! Layout:
//! - [`kv`]: the store's business types (keys, values, preconditions, events, errors),
//!   shared by the state machine and every client.
//! - [`proto`]: requests and responses on the `ferry-api/1` ALPN.
//! - [`quantity`]: Kubernetes resource quantities, exactly (one parser for admission, scheduler and nodes).
//! - [`frame`]: length-prefixed bincode frames with a size limit checked before allocating.
//! - [`tls`]: the cluster CA, certificate issue, identities, and quinn configs (mutual TLS).
//! - [`carotation`]: the cluster CA rotation's steps, stored state and members' reports.
//! - [`client`]: a client that holds every master's address and fails over between them.
//! - [`object`]: Kubernetes object requests, answers and `Status` errors.
//! - [`resources`]: the served Kubernetes kinds, their store keys, discovery facts, and name rules.
//! - [`discovery`]: `/version`, discovery and OpenAPI documents for the Kubernetes REST front end.
//! - [`selector`]: label and field selectors, parsed and matched against JSON objects.
//! - [`patch`]: JSON merge, JSON and strategic merge patches, and client-side apply.
//! - [`protobuf`]: Kubernetes protobuf request bodies decoded to JSON objects.
//! - [`printers`]: Kubernetes' table columns and cells per kind, ages, and the
//!   `meta.k8s.io/v1` Table an API server answers with.
//! - [`token`]: bootstrap tokens (nodes join with them) and the node discovery proof.
//! - [`clock`]: the masters' wall clock, with a test offset (`FERRY_CLOCK_OFFSET_FILE`).
//! - [`files`]: private files (keys, certificates) written atomically and durably;
//!   `files::format`, the `FORMAT` version record of data dirs.
//! - [`eventrecorder`]: counting repeated Events on the one they repeat (node agents, controllers).
//! - [`Error`]: this crate's errors.

pub mod carotation;
pub mod client;
pub mod clock;
pub mod discovery;
pub mod error;
pub mod eventrecorder;
pub mod files;
pub mod frame;
pub mod ingress;
pub mod kubeconfig;
pub mod kv;
pub mod limitrange;
pub mod metrics;
/// The cluster network (ranges, NodePorts, DNS domain), from `ferry-config`.
pub use ferry_config::network;
pub mod object;
pub mod patch;
pub mod printers;
pub mod proto;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod resources;
pub mod satoken;
pub mod selector;
pub mod storage;
pub mod tls;
pub mod token;

pub use client::Client;
pub use error::{Error, Result};

/// ALPN for master-to-master Raft traffic.
pub const ALPN_RAFT: &[u8] = b"ferry-raft/1";
/// ALPN for clients (CLI, nodes) talking to masters.
pub const ALPN_API: &[u8] = b"ferry-api/1";
/// ALPN for a master joining the cluster (it has no certificate yet).
pub const ALPN_JOIN: &[u8] = b"ferry-join/1";
/// This binary's version, as `ferry cluster status` shows each master's: the
/// package version, and the commit when the build set `FERRY_GIT_COMMIT`.
pub fn binary_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match option_env!("FERRY_GIT_COMMIT").filter(|c| !c.is_empty()) {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_string(),
    }
}

/// The DNS name every master certificate carries and clients verify.
pub const MASTER_SERVER_NAME: &str = "ferry-master";
