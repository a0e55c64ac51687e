//! The master's components, wired at start-up.
//!
//! Layout:
//! - [`master`]: starting a master — data dir and identity ([`master::identity`]),
//!   the QUIC endpoint and its ALPN dispatch.
//! - [`api_server`]: the `ferry-api/1` request handler (authenticate → authorize → store)
//!   and the `ferry-join/1` handler.
//! - [`join`]: joining, for masters and nodes (`ferry-join/1`), and node
//!   certificate renewal.
//! - [`tunnel`]: `ferry logs` and `ferry exec` proxied to a node over its tunnel.
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
pub mod https;
pub mod join;
pub mod master;
pub mod supervisor;
pub mod tunnel;

pub use master::{Bootstrap, Master};

/// Errors starting or running a master. Each failure has its own variant and
/// keeps its cause as `source`; nothing is decided by matching error text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the data dir could not be read or written.
    #[error("{}: {source}", path.display())]
    DataDir {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The data dir is in a state this start cannot go on from.
    #[error("{}: {message}", path.display())]
    DataDirState {
        /// The file or directory that says so.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS address could not be bound.
    #[error(
        "cannot bind TCP {addr} for the HTTPS API: {source} (set https_listen or --https-listen)"
    )]
    BindHttps {
        /// The address.
        addr: std::net::SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The QUIC endpoint could not be set up on the bound socket.
    #[error("QUIC endpoint: {source}")]
    Endpoint {
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The actor system could not start.
    #[error("cannot start the actor system: {source}")]
    Actors {
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The join token is malformed.
    #[error("bad join token: {0}")]
    Token(String),
    /// The master a join went through is not of the cluster the token names.
    #[error("join via {via}: the master's CA does not match the join token's CA hash")]
    CaMismatch {
        /// The master asked.
        via: String,
    },
    /// Joining the cluster failed.
    #[error("join via {via}: {reason}")]
    Join {
        /// The master asked.
        via: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_raft::Error),
    /// Wire or TLS failure.
    #[error(transparent)]
    Wire(#[from] ferry_api::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
