//! Typed configuration for ferry processes: defaults, parsing, validation.
//!
//! Layout:
//! - [`master`]: a master's config ([`MasterConfig`]) and its per-component parts
//!   ([`RaftTimings`], [`StoreLimits`], [`TransportLimits`]).
//! - [`client`]: the client config (`admin.conf`) a CLI or bench uses to reach masters.
//! - [`Error`]: every parse or validation failure names the file and the field.
//!
//! Config is data: parsed once, validated, then handed to components. This crate
//! does no I/O beyond reading the file it is asked to read.

pub mod client;
pub mod master;

pub use client::ClientConfig;
pub use master::{MasterConfig, RaftTimings, StoreLimits, TransportLimits};

use std::path::{Path, PathBuf};

/// Errors from loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config (truncated, corrupt, unknown field...).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("config field `{field}` is invalid: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// A field read from a config file has a value that cannot work.
    #[error("config file {path}: field `{field}` is invalid: {message}")]
    InvalidInFile {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field.
        field: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
}

impl Error {
    /// Names `path` in a validation error of a config read from that file.
    pub fn in_file(self, path: &Path) -> Error {
        match self {
            Error::Invalid { field, message } => Error::InvalidInFile {
                path: path.to_path_buf(),
                field,
                message,
            },
            other => other,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads and parses a TOML file into `T`, naming the file in any error.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parses TOML text; `path` is only used for messages.
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_from_a_file_name_the_file_and_field() {
        let path = Path::new("/etc/ferry/master.toml");
        let msg = invalid("raft.heartbeat_ms", "must be at least 1")
            .in_file(path)
            .to_string();
        assert!(msg.contains("/etc/ferry/master.toml"), "{msg}");
        assert!(msg.contains("raft.heartbeat_ms"), "{msg}");
    }
}
