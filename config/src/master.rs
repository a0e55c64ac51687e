//! A master's configuration.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Largest value (object) the store accepts: Kubernetes' 1.5 MiB object limit.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// Configuration of one master process (`ferry master --config FILE`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MasterConfig {
    /// Directory holding the Raft log, state machine, certificates and keys.
    pub data_dir: PathBuf,
    /// UDP address the QUIC endpoint binds.
    pub listen: SocketAddr,
    /// Address other masters and clients use to reach this one (default: `listen`).
    pub advertise: Option<SocketAddr>,
    /// TCP address of the Kubernetes REST API over HTTPS (default: `listen`'s
    /// address and port number, over TCP: masters on one host never clash).
    pub https_listen: Option<SocketAddr>,
    /// Raft timing.
    pub raft: RaftTimings,
    /// Store limits and batching.
    pub store: StoreLimits,
    /// QUIC transport limits.
    pub transport: TransportLimits,
    /// Whether this master runs the scheduler and the workload controllers
    /// while it leads (default true; false gives an API-only master, as a
    /// kube-apiserver without kube-controller-manager and kube-scheduler).
    pub workload_controllers: bool,
    /// How long an Event is kept after it last happened (Kubernetes'
    /// `--event-ttl`, one hour); the leader removes older ones.
    pub event_ttl_seconds: u64,
    /// The cluster network (`[network]`): pod, service and LoadBalancer ranges.
    pub network: crate::Network,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            data_dir: PathBuf::from("ferry-data"),
            listen: "127.0.0.1:7100".parse().expect("static address"),
            advertise: None,
            https_listen: None,
            raft: RaftTimings::default(),
            store: StoreLimits::default(),
            transport: TransportLimits::default(),
            workload_controllers: true,
            event_ttl_seconds: 3600,
            network: crate::Network::default(),
        }
    }
}

/// Raft timing knobs. openraft 0.9 lets a follower that knows a leader wait
/// `election_max_ms` (the leader's lease) plus its own randomized timeout in
/// `election_min_ms..election_max_ms` after the leader's last message before it
/// stands for election, and checks that every 1.5 x `heartbeat_ms`: failover
/// after a leader dies takes about `election_max_ms + election_min_ms ..
/// 2 x election_max_ms`, plus a vote round. Lower timeouts fail over faster but
/// risk spurious elections on a loaded machine; the defaults are measured by
/// `ferry bench failover` (docs/benchmarks.md, "Failover").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTimings {
    /// Leader heartbeat interval, milliseconds (default 50; 100 before the
    /// failover work). openraft also times a replication RPC out after it.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout, milliseconds (default 120; was 600).
    pub election_min_ms: u64,
    /// Upper bound of the randomized election timeout, milliseconds (default 240; was 1200).
    pub election_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one (default 10000).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for slow followers (default 1000).
    pub keep_behind_snapshot: u64,
    /// Snapshot chunk size in bytes sent per RPC (default 1 MiB).
    pub snapshot_chunk_bytes: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings {
            heartbeat_ms: 50,
            election_min_ms: 120,
            election_max_ms: 240,
            snapshot_every: 10_000,
            keep_behind_snapshot: 1000,
            snapshot_chunk_bytes: 1024 * 1024,
        }
    }
}

/// Store limits and group-commit batching.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreLimits {
    /// Largest value accepted, bytes (default and maximum 1.5 MiB).
    pub max_value_bytes: usize,
    /// Largest key accepted, bytes (default 4096).
    pub max_key_bytes: usize,
    /// A group-commit batch closes once it holds this many bytes (default 1 MiB).
    pub max_batch_bytes: usize,
    /// A group-commit batch closes once it holds this many writes (default 2048).
    pub max_batch_ops: usize,
    /// Batches in flight through Raft at once (default 1: openraft 0.9's leader
    /// flushes each entry before it replicates or handles acks, so a second
    /// entry in flight only delays the first).
    pub max_inflight_batches: usize,
    /// Revisions of watch history kept (the watch window; default 100000).
    pub history_revisions: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_value_bytes: MAX_VALUE_BYTES,
            max_key_bytes: 4096,
            max_batch_bytes: 1024 * 1024,
            max_batch_ops: 2048,
            max_inflight_batches: 1,
            history_revisions: 100_000,
        }
    }
}

/// QUIC transport limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransportLimits {
    /// Largest frame accepted from a peer or client, bytes (default 8 MiB).
    pub max_frame_bytes: usize,
    /// A connection with no traffic for this long is closed, milliseconds
    /// (default 1000; 4000 before the failover work): how long a master's
    /// connection to a dead peer lingers.
    pub idle_timeout_ms: u64,
    /// Keep-alive interval, milliseconds (default 100; was 500).
    pub keepalive_ms: u64,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            max_frame_bytes: 8 * 1024 * 1024,
            idle_timeout_ms: 1000,
            keepalive_ms: 100,
        }
    }
}

impl MasterConfig {
    /// Reads a master config file and validates it.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let cfg: MasterConfig = crate::read_toml(path)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// The TCP address the HTTPS API binds.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_listen.unwrap_or(self.listen)
    }

    /// The address peers and clients should use.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Some(a) = self.advertise {
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(invalid(
                    "advertise",
                    "must be a concrete address with a port",
                ));
            }
        }
        if self.event_ttl_seconds == 0 {
            return Err(invalid("event_ttl_seconds", "must be at least 1"));
        }
        self.raft.validate()?;
        self.store.validate()?;
        self.transport.validate()?;
        self.network.validate()
    }
}

impl RaftTimings {
    fn validate(&self) -> Result<()> {
        if self.heartbeat_ms == 0 {
            return Err(invalid("raft.heartbeat_ms", "must be at least 1"));
        }
        // A follower that knows a leader also waits out the leader's lease
        // (election_max_ms) first, so its silence budget is at least
        // 2 x election_min_ms.
        if self.election_min_ms < 2 * self.heartbeat_ms {
            return Err(invalid(
                "raft.election_min_ms",
                format!(
                    "must be at least 2 x raft.heartbeat_ms ({}), got {}",
                    2 * self.heartbeat_ms,
                    self.election_min_ms
                ),
            ));
        }
        if self.election_max_ms <= self.election_min_ms {
            return Err(invalid(
                "raft.election_max_ms",
                "must be greater than raft.election_min_ms",
            ));
        }
        if self.snapshot_every == 0 {
            return Err(invalid("raft.snapshot_every", "must be at least 1"));
        }
        if !(4096..=(2 * 1024 * 1024)).contains(&self.snapshot_chunk_bytes) {
            return Err(invalid(
                "raft.snapshot_chunk_bytes",
                "must be between 4096 and 2097152",
            ));
        }
        Ok(())
    }
}

impl StoreLimits {
    fn validate(&self) -> Result<()> {
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_VALUE_BYTES {
            return Err(invalid(
                "store.max_value_bytes",
                format!("must be between 1 and {MAX_VALUE_BYTES}"),
            ));
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > 64 * 1024 {
            return Err(invalid(
                "store.max_key_bytes",
                "must be between 1 and 65536",
            ));
        }
        if self.max_batch_bytes == 0 || self.max_batch_bytes > 2 * 1024 * 1024 {
            return Err(invalid(
                "store.max_batch_bytes",
                "must be between 1 and 2097152 (larger Raft entries defeat sled's durability)",
            ));
        }
        if self.max_batch_ops == 0 {
            return Err(invalid("store.max_batch_ops", "must be at least 1"));
        }
        if self.max_inflight_batches == 0 || self.max_inflight_batches > 64 {
            return Err(invalid(
                "store.max_inflight_batches",
                "must be between 1 and 64",
            ));
        }
        if self.history_revisions < 100 {
            return Err(invalid("store.history_revisions", "must be at least 100"));
        }
        Ok(())
    }
}

impl TransportLimits {
    fn validate(&self) -> Result<()> {
        let min = crate::master::MAX_VALUE_BYTES + 64 * 1024;
        if self.max_frame_bytes < min || self.max_frame_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "transport.max_frame_bytes",
                format!("must be between {min} and 67108864"),
            ));
        }
        if self.idle_timeout_ms < 500 {
            return Err(invalid("transport.idle_timeout_ms", "must be at least 500"));
        }
        if self.keepalive_ms == 0 || self.keepalive_ms >= self.idle_timeout_ms {
            return Err(invalid(
                "transport.keepalive_ms",
                "must be at least 1 and below transport.idle_timeout_ms",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn examples_parse_and_validate() {
        let master: MasterConfig = crate::parse_toml(
            Path::new("master.toml"),
            include_str!("../examples/master.toml"),
        )
        .unwrap();
        master.validate().unwrap();
        assert_eq!(
            master,
            MasterConfig::default(),
            "examples/master.toml documents the defaults"
        );
        let local: MasterConfig = crate::parse_toml(
            Path::new("local.toml"),
            include_str!("../examples/local.toml"),
        )
        .unwrap();
        local.validate().unwrap();
        let client: crate::ClientConfig = crate::parse_toml(
            Path::new("client.toml"),
            include_str!("../examples/client.toml"),
        )
        .unwrap();
        client.validate().unwrap();
    }

    #[test]
    fn defaults_are_valid() {
        MasterConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            ("[raft]\nheartbeat_ms = 0\n", "raft.heartbeat_ms"),
            ("[raft]\nelection_min_ms = 90\n", "raft.election_min_ms"),
            (
                "[store]\nmax_value_bytes = 99999999\n",
                "store.max_value_bytes",
            ),
            (
                "[transport]\nmax_frame_bytes = 10\n",
                "transport.max_frame_bytes",
            ),
            ("listen = \"nonsense\"\n", "listen"),
            ("colour = \"blue\"\n", "colour"),
            ("[raft\nheartbeat_ms = 1", "invalid"),
        ];
        for (text, want) in cases {
            let err = crate::parse_toml::<MasterConfig>(Path::new("m.toml"), text)
                .and_then(|c| c.validate().map(|_| c))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err} should mention {want}");
        }
    }
}
