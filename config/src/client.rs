//! The client config (`admin.conf`): where the masters are and who the client is.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a client (CLI, bench, node) reaches the cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Every master's QUIC address (`host:port`); the client fails over between them.
    pub masters: Vec<String>,
    /// PEM of the cluster CA certificate.
    pub ca_cert: String,
    /// PEM of this client's certificate.
    pub client_cert: String,
    /// PEM of this client's private key.
    pub client_key: String,
    /// Per-request timeout in milliseconds (default 10000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The Kubernetes REST API's URL, for kubeconfigs (`ferry kubeconfig`;
    /// `ferry up` writes its local endpoint here). Absent: the first master's
    /// address over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
}

fn default_timeout() -> u64 {
    10_000
}

impl ClientConfig {
    /// Reads and validates a client config file.
    pub fn load(path: &Path) -> Result<Self> {
        let cfg: ClientConfig = crate::read_toml(path)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.masters.is_empty() {
            return Err(invalid("masters", "must list at least one master address"));
        }
        for (i, m) in self.masters.iter().enumerate() {
            if m.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(
                    &format!("masters[{i}]"),
                    format!("`{m}` is not host:port"),
                ));
            }
        }
        for (field, pem, tag) in [
            ("ca_cert", &self.ca_cert, "CERTIFICATE"),
            ("client_cert", &self.client_cert, "CERTIFICATE"),
            ("client_key", &self.client_key, "PRIVATE KEY"),
        ] {
            if !pem.contains(&format!("-----BEGIN {tag}-----"))
                || !pem.contains(&format!("-----END {tag}-----"))
            {
                return Err(invalid(field, format!("is not a complete PEM {tag}")));
            }
        }
        if let Some(u) = &self.api_server {
            if !u.starts_with("https://") {
                return Err(invalid(
                    "api_server",
                    format!("`{u}` is not an https:// URL"),
                ));
            }
        }
        if self.timeout_ms < 100 {
            return Err(invalid("timeout_ms", "must be at least 100"));
        }
        Ok(())
    }

    /// Serializes to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("client config serializes")
    }
}
