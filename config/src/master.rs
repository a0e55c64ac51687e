//! A master's configuration.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Largest value (object) the store accepts: Kubernetes' 1.5 MiB object limit.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// Default lifetime of a master certificate: one year (kubeadm's).
pub const MASTER_CERT_SECONDS: u64 = 365 * 86_400;
/// Shortest `master_cert_seconds` a config may set.
pub const MIN_CERT_SECONDS: u64 = 600;
/// Longest `master_cert_seconds` a config may set.
pub const MAX_CERT_SECONDS: u64 = 10 * 365 * 86_400;

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
    /// How long a master certificate this master issues is valid (one year,
    /// as kubeadm's); each master renews its own at two thirds of it.
    /// `FERRY_MASTER_CERT_SECONDS` overrides it (tests, at least 10 s).
    pub master_cert_seconds: u64,
    /// The cluster network (`[network]`): pod, service and LoadBalancer ranges.
    pub network: crate::Network,
    /// Scheduled backups (`[snapshot]`): off unless `every` is set.
    pub snapshot: SnapshotSchedule,
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
            master_cert_seconds: MASTER_CERT_SECONDS,
            network: crate::Network::default(),
            snapshot: SnapshotSchedule::default(),
        }
    }
}

/// Scheduled backups: every `every`, the master saves a snapshot file as
/// `ferry snapshot save` does into `dir` and keeps the newest `keep`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSchedule {
    /// How often, as `30s`, `15m`, `1h`, `1d` or a sum such as `1h30m`
    /// (at least 1 s); unset: no scheduled backups.
    pub every: Option<String>,
    /// How many backup files to keep, newest first (default 24).
    pub keep: u32,
    /// Where the files go (default: `<data_dir>/backups`).
    pub dir: Option<PathBuf>,
}

impl Default for SnapshotSchedule {
    fn default() -> Self {
        SnapshotSchedule {
            every: None,
            keep: 24,
            dir: None,
        }
    }
}

impl SnapshotSchedule {
    /// The interval, if backups are scheduled (the config is validated).
    pub fn interval(&self) -> Option<std::time::Duration> {
        self.every.as_deref().and_then(|e| parse_duration(e).ok())
    }

    /// The directory the files go to for a master with `data_dir`.
    pub fn dir_for(&self, data_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }

    fn validate(&self) -> Result<()> {
        if let Some(every) = &self.every {
            let d = parse_duration(every).map_err(|m| invalid("snapshot.every", m))?;
            if d < std::time::Duration::from_secs(1) {
                return Err(invalid(
                    "snapshot.every",
                    format!("{every:?} is under the minimum of 1s"),
                ));
            }
        }
        if self.keep == 0 {
            return Err(invalid(
                "snapshot.keep",
                "must be at least 1 (leave snapshot.every unset for no backups)",
            ));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(invalid("snapshot.dir", "must not be empty"));
        }
        Ok(())
    }
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `1h`, `1d`, or a sum of
/// them (`1h30m`); whole numbers, no spaces.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    if s.is_empty() {
        return Err("is empty; write a duration such as \"30s\", \"15m\", \"1h\"".into());
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{s:?}: expected a whole number at {rest:?} (as in \"1h30m\")"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: {:?} is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{s:?}: {n} has no unit (use ms, s, m, h or d)")),
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                ))
            }
        };
        let part = n
            .checked_mul(ms)
            .ok_or_else(|| format!("{s:?} is too long"))?;
        total = total
            .checked_add(std::time::Duration::from_millis(part))
            .ok_or_else(|| format!("{s:?} is too long"))?;
        rest = after;
    }
    Ok(total)
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
    /// failover work). A heartbeat times out after `max(heartbeat_ms,
    /// election_min_ms)`; an AppendEntries with entries after 10 s, with a
    /// heartbeat beside it every `heartbeat_ms` meanwhile.
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
        if !(MIN_CERT_SECONDS..=MAX_CERT_SECONDS).contains(&self.master_cert_seconds) {
            return Err(invalid(
                "master_cert_seconds",
                format!("must be {MIN_CERT_SECONDS} (10 minutes) to {MAX_CERT_SECONDS} (10 years)"),
            ));
        }
        self.raft.validate()?;
        self.store.validate()?;
        self.transport.validate()?;
        self.snapshot.validate()?;
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
    fn snapshot_schedules_take_durations_with_units() {
        let ms = |s: &str| parse_duration(s).map(|d| d.as_millis() as u64);
        assert_eq!(ms("2s"), Ok(2000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1d"), Ok(86_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        for bad in ["", "h", "5", "5 s", "1.5h", "3w", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        let cfg: MasterConfig = crate::parse_toml(
            Path::new("m.toml"),
            "[snapshot]\nevery = \"2s\"\nkeep = 3\ndir = \"/b\"\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.snapshot.interval(),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(cfg.snapshot.dir_for(Path::new("/d")), Path::new("/b"));
        assert_eq!(
            SnapshotSchedule::default().dir_for(Path::new("/d")),
            Path::new("/d/backups")
        );
        assert_eq!(SnapshotSchedule::default().interval(), None);
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
            ("[snapshot]\nevery = \"1 hour\"\n", "snapshot.every"),
            ("[snapshot]\nevery = \"10\"\n", "snapshot.every"),
            ("[snapshot]\nevery = \"500ms\"\n", "snapshot.every"),
            ("[snapshot]\nevery = \"2x\"\n", "snapshot.every"),
            ("[snapshot]\nkeep = 0\n", "snapshot.keep"),
            ("[snapshot]\ndir = \"\"\n", "snapshot.dir"),
            ("[snapshot]\nevry = \"1h\"\n", "evry"),
            ("colour = \"blue\"\n", "colour"),
            ("master_cert_seconds = 5\n", "master_cert_seconds"),
            (
                "master_cert_seconds = 999999999999\n",
                "master_cert_seconds",
            ),
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
