//! Finding and loading the client config.

use anyhow::{Context, Result};
use ferry_api::Client;
use ferry_config::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Whom this process's object requests act as (`--as` and friends).
static ACTING_AS: OnceLock<ferry_api::proto::Impersonate> = OnceLock::new();

/// Sets whom every client [`connect`] builds acts as (once, from the flags).
pub fn set_acting_as(as_: ferry_api::proto::Impersonate) {
    let _ = ACTING_AS.set(as_);
}

/// `~/.ferry`.
pub fn ferry_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".ferry")
}

/// The config path: `--config`/`FERRY_CONFIG`, else `~/.ferry/config`.
pub fn config_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FERRY_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| ferry_home().join("config"))
}

/// Loads the client config and builds a client.
pub fn connect(explicit: Option<&Path>) -> Result<Arc<Client>> {
    connect_with_timeout(explicit, std::time::Duration::ZERO)
}

/// [`connect`] with a request deadline of at least `at_least` (commands that
/// wait on the cluster, such as `ferry cluster replace`).
pub fn connect_with_timeout(
    explicit: Option<&Path>,
    at_least: std::time::Duration,
) -> Result<Arc<Client>> {
    let path = config_path(explicit);
    if !path.exists() {
        anyhow::bail!(
            "client config {} does not exist: pass --config FILE, set FERRY_CONFIG, or start a cluster with `ferry up`",
            path.display()
        );
    }
    let mut cfg = ClientConfig::load(&path)?;
    cfg.timeout_ms = cfg.timeout_ms.max(at_least.as_millis() as u64);
    let client = Client::new(&cfg).with_context(|| format!("client config {}", path.display()))?;
    Ok(Arc::new(
        client.acting_as(ACTING_AS.get().cloned().unwrap_or_default()),
    ))
}
