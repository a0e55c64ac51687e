//! Errors of the store layer.

/// Store errors (business errors are [`ferry_api::kv::KvError`] values, not these).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled or the file system failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Stored bytes could not be decoded (corruption or an incompatible version).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// openraft refused or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// The data dir's format is newer than this binary or its record unreadable.
    #[error(transparent)]
    Format(#[from] ferry_api::files::format::FormatError),
    /// Transport failure.
    #[error(transparent)]
    Wire(#[from] ferry_api::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
