//! Typed configuration for ferry processes: defaults, parsing, validation.
//!
//! Layout:
//! - [`master`]: a master's config ([`MasterConfig`]) and its per-component parts
//!   ([`RaftTimings`], [`StoreLimits`], [`TransportLimits`], [`SnapshotSchedule`]).
//! - [`network`]: the cluster network ([`Network`]: pod, service and LoadBalancer
//!   ranges, NodePorts, DNS domain) and address ranges ([`Cidr`]).
//! - [`client`]: the client config (`admin.conf`) a CLI or bench uses to reach masters.
//! - [`node`]: a node agent's config ([`NodeConfig`]: hard eviction thresholds).
//! - [`units`]: byte amounts with binary suffixes (`100Mi`), as Kubernetes prints them.
//! - [`Error`]: every parse or validation failure names the file and the field.
//!
//! Config is data: parsed once, validated, then handed to components. This crate
//! does no I/O beyond reading the file it is asked to read.

pub mod client;
pub mod master;
pub mod network;
pub mod node;
pub mod units;

pub use client::ClientConfig;
pub use master::{MasterConfig, RaftTimings, SnapshotSchedule, StoreLimits, TransportLimits};
pub use network::{Cidr, Network, PortRange};
pub use node::NodeConfig;

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
    /// The file is larger than any config file ferry writes or reads.
    #[error("config file {path} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
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

/// Largest config file read (a client config with its PEMs is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads and parses a TOML file into `T`, naming the file in any error. At most
/// [`MAX_CONFIG_BYTES`] are read: a larger file (or an endless one such as
/// `/dev/zero`) is refused before it is held in memory.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    read_toml_limited(path, MAX_CONFIG_BYTES)
}

fn read_toml_limited<T: serde::de::DeserializeOwned>(path: &Path, limit: u64) -> Result<T> {
    use std::io::Read;
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
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

    #[derive(serde::Deserialize, Debug)]
    struct Doc {
        #[allow(dead_code)]
        note: String,
    }

    #[test]
    fn config_files_over_the_size_bound_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // Exactly at the limit: read and parsed.
        let at = dir.path().join("at.toml");
        let body = format!("note = \"{}\"\n", "x".repeat(100 - 10));
        assert_eq!(body.len(), 100);
        std::fs::write(&at, &body).unwrap();
        read_toml_limited::<Doc>(&at, 100).unwrap();
        // One byte over: refused, whatever it holds.
        let over = dir.path().join("over.toml");
        std::fs::write(&over, format!("{body}#")).unwrap();
        let e = read_toml_limited::<Doc>(&over, 100).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 100, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(over.to_str().unwrap()), "{msg}");
        assert!(msg.contains("larger than the limit of 100 bytes"), "{msg}");
        // The real bound: a valid file padded past 1 MiB with comments.
        let big = dir.path().join("big.toml");
        let mut text = "note = \"a\"\n".to_string();
        while (text.len() as u64) <= MAX_CONFIG_BYTES {
            text.push_str(&format!("# {}\n", "p".repeat(1000)));
        }
        std::fs::write(&big, &text).unwrap();
        let msg = read_toml::<Doc>(&big).unwrap_err().to_string();
        assert!(
            msg.contains("big.toml") && msg.contains("1048576 bytes"),
            "{msg}"
        );
        // An endless file ends at the bound instead of filling memory.
        let msg = read_toml::<Doc>(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/dev/zero"), "{msg}");
        assert!(msg.contains("larger than the limit"), "{msg}");
        // Missing file: still the read error naming it.
        let gone = dir.path().join("gone.toml");
        let msg = read_toml::<Doc>(&gone).unwrap_err().to_string();
        assert!(
            msg.contains("cannot read config file") && msg.contains("gone.toml"),
            "{msg}"
        );
    }
}
