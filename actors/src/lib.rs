//! The master's components, wired at start-up.
//!
//! Layout:
//! - [`master`]: starting a master — data dir and identity ([`master::identity`]),
//!   the QUIC endpoint and its ALPN dispatch, the join handshake.
//! - [`api_server`]: the `ferry-api/1` request handler (authenticate → authorize → store)
//!   and the `ferry-join/1` handler.
//! - [`apiserver`]: the Kubernetes API: [`apiserver::admission`] (decode, default,
//!   validate), the registry verbs, watches, and its actor.
//! - [`controllers`]: the controller manager actor (garbage collector, namespace
//!   lifecycle), active while this master leads.
//! - [`supervisor`]: the master's actor tree on its own actix system.
//!
//! The store itself is `ferry_raft::Store`; components hold a clone of it.

pub mod api_server;
pub mod apiserver;
pub mod controllers;
pub mod master;
pub mod supervisor;

pub use master::{Bootstrap, Master};

/// Errors starting or running a master.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file in the data dir could not be read or written.
    #[error("{path}: {message}")]
    DataDir {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The join token is malformed.
    #[error("bad join token: {0}")]
    Token(String),
    /// Joining the cluster failed.
    #[error("join failed: {0}")]
    Join(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_raft::Error),
    /// Wire or TLS failure.
    #[error(transparent)]
    Wire(#[from] ferry_api::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
