//! Errors of the wire layer.

use crate::proto::ApiError;

/// Errors from framing, TLS setup and the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frame's declared length is over the limit; nothing was allocated.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Declared length.
        len: usize,
        /// Limit in force.
        limit: usize,
    },
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// Reading from or writing to a QUIC stream failed.
    #[error("stream error: {0}")]
    Stream(String),
    /// A QUIC connection could not be made or was lost.
    #[error("connection to {addr} failed: {message}")]
    Connect {
        /// The peer.
        addr: String,
        /// What happened.
        message: String,
    },
    /// Certificates or keys could not be created, parsed or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// No master answered.
    #[error("no master reachable (tried {tried}): {last}")]
    NoMaster {
        /// Addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// A write was sent but its connection failed before the answer: it may or may not
    /// have been applied. Read the key to find out.
    #[error("the write's outcome is unknown: master {addr} failed before answering ({message}); read the key to find out")]
    Indeterminate {
        /// The master that failed.
        addr: String,
        /// What happened.
        message: String,
    },
    /// The server answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The server answered with a response of the wrong kind.
    #[error("unexpected response from server: {0}")]
    Unexpected(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
