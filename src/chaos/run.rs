//! One `ferry chaos` run: a local cluster of real masters (started as `ferry
//! up` does), a fault schedule drawn from the seed, clients doing reads,
//! writes and compare-and-set on a few keys through the QUIC client, watchers
//! on them; then healing, final reads, the checkers, the figures per fault.

use super::check::{
    self, FinalRead, History, Op, OpType, Outcome, WatchEvent, WatchStream, HISTORY_VERSION,
};
use super::pods;
use crate::objects::api::Api;
use crate::up;
use anyhow::{bail, Context, Result};
use ferry_api::kv::{EventKind, Expect, KvError, WatchItem};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::Client;
use ferry_config::ClientConfig;
use nix::sys::signal::{kill, Signal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fault `ferry chaos` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the leader; restart it after a hold.
    KillLeader,
    /// SIGKILL a follower; restart it after a hold.
    KillFollower,
    /// SIGSTOP the leader; SIGCONT it after a hold.
    StopLeader,
    /// SIGSTOP a follower; SIGCONT it after a hold.
    StopFollower,
    /// SIGKILL the leader and a follower (a majority of 3); restart both.
    KillTwo,
    /// SIGKILL every master, then restart them all.
    RestartAll,
    /// Cut the leader off from every other master, both ways (clients reach all).
    PartitionLeader,
    /// The leader's packets reach the other masters, theirs do not reach it.
    PartitionAsym,
    /// Every master's traffic: 20% loss, 10% duplicated, up to 20 ms delay.
    LossyNet,
    /// SIGKILL a majority (the leader and followers); restart them.
    KillMajority,
    /// Cut a minority of the masters (leader or not) off from the others, both ways.
    PartitionMinority,
    /// Hold the leader's or a follower's fsyncs (and so every acknowledgement
    /// waiting for them) for 1–3 s.
    DiskStall,
    /// Jump the leader's or a follower's wall clock by ±60–3600 s for 1–3 s.
    ClockJump,
    /// SIGKILL a node agent (`--nodes`, `--real-nodes`); restart it after
    /// 3–11 s (real nodes: 3–20 s).
    KillNode,
    /// SIGSTOP a node agent (`--nodes`, `--real-nodes`); SIGCONT it after
    /// 3–11 s (real nodes: 3–20 s).
    StopNode,
    /// Cut a real node agent (`--real-nodes`) off from every master for
    /// 1–2 s (under the grace) or 9–14 s (past it), then heal.
    PartitionNode,
    /// SIGTERM every master in turn, followers first and the leader last,
    /// each started again on this binary once it exited: a rolling restart,
    /// or with `--upgrade-from OLD` a rolling upgrade from OLD.
    RollingRestart,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::StopLeader => "stop-leader",
            Fault::StopFollower => "stop-follower",
            Fault::KillTwo => "kill-two",
            Fault::RestartAll => "restart-all",
            Fault::PartitionLeader => "partition-leader",
            Fault::PartitionAsym => "partition-asym",
            Fault::LossyNet => "lossy-net",
            Fault::KillMajority => "kill-majority",
            Fault::PartitionMinority => "partition-minority",
            Fault::DiskStall => "disk-stall",
            Fault::ClockJump => "clock-jump",
            Fault::KillNode => "kill-node",
            Fault::StopNode => "stop-node",
            Fault::PartitionNode => "partition-node",
            Fault::RollingRestart => "rolling-restart",
        }
    }

    /// Whether it hits a node agent (`--nodes` must be given).
    fn node(self) -> bool {
        matches!(
            self,
            Fault::KillNode | Fault::StopNode | Fault::PartitionNode
        )
    }

    /// Whether it needs the fault proxies.
    fn network(self) -> bool {
        matches!(
            self,
            Fault::PartitionLeader
                | Fault::PartitionAsym
                | Fault::LossyNet
                | Fault::PartitionMinority
        )
    }

    /// Whether it takes the leader away (its figures count toward `failover_p99_ms`).
    fn hits_leader(self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::StopLeader | Fault::PartitionLeader
        )
    }
}

/// The default faults: the process faults.
const DEFAULT_FAULTS: &[Fault] = &[
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::StopLeader,
    Fault::StopFollower,
    Fault::KillTwo,
    Fault::RestartAll,
];

/// A named set of faults (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// SIGKILL of the leader.
    KillLeader,
    /// SIGSTOP of the leader.
    PauseLeader,
    /// The leader partitioned from the other masters.
    PartitionLeader,
    /// A minority of the masters partitioned from the rest.
    PartitionMinority,
    /// The leader hears no other master; they hear it.
    Asymmetric,
    /// SIGKILL of a majority of the masters.
    KillMajority,
    /// SIGKILL of every master.
    RestartAll,
    /// Stalled fsyncs on the leader or a follower.
    DiskStall,
    /// A wall-clock jump on the leader or a follower.
    ClockJump,
    /// SIGKILL or SIGSTOP of a node agent (starts 3 hollow nodes unless
    /// `--nodes` or `--real-nodes`), and with real nodes, a node cut off
    /// from the masters.
    NodeLoss,
    /// The leader stopped or killed again and again, with short calms.
    FlappingLeader,
    /// Rolling restarts of every master; with `--upgrade-from OLD` the
    /// masters start on OLD and the first one upgrades them to this binary.
    RollingUpgrade,
    /// Every fault above (the node faults when nodes are given).
    Mixed,
}

impl Scenario {
    /// Its faults (with nodes or not; `real`: real node agents).
    fn faults(self, nodes: bool, real: bool) -> Vec<Fault> {
        use Fault::*;
        match self {
            Scenario::KillLeader => vec![KillLeader],
            Scenario::PauseLeader => vec![StopLeader],
            Scenario::PartitionLeader => vec![PartitionLeader],
            Scenario::PartitionMinority => vec![PartitionMinority],
            Scenario::Asymmetric => vec![PartitionAsym],
            Scenario::KillMajority => vec![KillMajority],
            Scenario::RestartAll => vec![RestartAll],
            Scenario::DiskStall => vec![DiskStall],
            Scenario::ClockJump => vec![ClockJump],
            Scenario::NodeLoss if real => vec![KillNode, StopNode, PartitionNode],
            Scenario::NodeLoss => vec![KillNode, StopNode],
            Scenario::FlappingLeader => vec![StopLeader, KillLeader],
            Scenario::RollingUpgrade => vec![RollingRestart],
            Scenario::Mixed => {
                let mut v = vec![
                    KillLeader,
                    KillFollower,
                    StopLeader,
                    StopFollower,
                    KillMajority,
                    RestartAll,
                    PartitionLeader,
                    PartitionMinority,
                    PartitionAsym,
                    LossyNet,
                    DiskStall,
                    ClockJump,
                ];
                if nodes {
                    v.extend([KillNode, StopNode]);
                }
                if real {
                    v.push(PartitionNode);
                }
                v
            }
        }
    }

    /// The calm before each fault, in milliseconds.
    fn calm_ms(self) -> std::ops::Range<u64> {
        match self {
            Scenario::FlappingLeader => 200..600,
            _ => 1000..2000,
        }
    }
}

/// `30`, `30s`, `2m`, `1m30s`, `500ms` as a duration (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("{s:?} is not a duration (e.g. 30, 30s, 2m, 1m30s)");
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(d).ok_or_else(bad)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// Options of a `ferry chaos` run.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Directory for the cluster's data dirs and logs, the history
    /// (`history.json`) and the report (`report.json`); must not hold a cluster.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Masters in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    masters: u8,
    /// How long the workload and the faults run: seconds, or `30s`, `2m`
    /// (`--duration` is the same option).
    #[arg(long = "seconds", visible_alias = "duration", value_name = "DURATION",
          default_value = "60", value_parser = parse_duration)]
    seconds: Duration,
    /// Seed of the fault schedule and the workload (default: random; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Faults to draw from (default: kill-leader, kill-follower, stop-leader,
    /// stop-follower, kill-two, restart-all). The network faults put a UDP
    /// fault proxy in front of every master (each master advertises its
    /// proxy's address); `kill-node` and `stop-node` need `--nodes` or
    /// `--real-nodes`, `partition-node` `--real-nodes`. With `--config`
    /// (an existing cluster) only stop-leader and stop-follower.
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// A named set of faults instead of `--faults`.
    #[arg(long, value_enum, conflicts_with = "faults")]
    scenario: Option<Scenario>,
    /// Hollow nodes to run, each a `ferry node --simulate 1` process (0–20);
    /// checked: no node goes NotReady but for a fault of its own.
    #[arg(long)]
    nodes: Option<usize>,
    /// Real node agents to run (`ferry node`, 1–5), with a Deployment and a
    /// StatefulSet on them and a writer of ConfigMaps; checked besides: the
    /// workloads converge, no pod runs twice, a node fault stops no pod, no
    /// acknowledged object write is lost. Pods run as processes of this
    /// machine (pod network namespaces as root): no other cluster's nodes
    /// may run here meanwhile (their pod ranges would collide).
    #[arg(long, conflicts_with = "nodes")]
    real_nodes: Option<usize>,
    /// No faults: the workload and the checks alone (e.g. against an
    /// existing cluster given by `--config` whose masters are not local).
    #[arg(long, conflicts_with_all = ["faults", "scenario"])]
    no_faults: bool,
    /// Start the masters on this (older) ferry binary: each
    /// `rolling-restart` fault then brings them back, one by one, on this
    /// binary — a rolling upgrade under the workload and its checks.
    #[arg(long, value_name = "FERRY")]
    upgrade_from: Option<PathBuf>,
    /// Clients doing reads, writes and compare-and-set.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keys they work on.
    #[arg(long, default_value_t = 3)]
    keys: usize,
    /// Watchers of the keys.
    #[arg(long, default_value_t = 2)]
    watchers: usize,
}

/// Snapshots and log purges every 300 entries, so restarted masters catch up
/// through snapshot installs as well as through the log.
const MASTER_CONFIG: &str = "[raft]\nsnapshot_every = 300\nkeep_behind_snapshot = 50\n";

/// A workload client's deadline per operation: past it the outcome is unknown.
const OP_TIMEOUT_MS: u64 = 4000;

/// Time after `--seconds` for healing, final reads and checks.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(45);

/// `partition-node` cuts shorter than this must go unnoticed: the masters'
/// grace (7 s) less a Lease renewal interval (2 s), their polling (1 s)
/// and 2 s for the node's connection to carry its renewal again after the
/// heal (QUIC's retransmission backs off during the cut).
const SHORT_CUT: Duration = Duration::from_secs(2);

/// What became of the object workload (`--real-nodes`).
#[derive(Debug, Clone, Serialize)]
struct WorkloadOutcome {
    /// `None`: converged after the faults (to the Deployment's last spec);
    /// else what was missing at the end.
    converged: Option<String>,
    /// The Deployment's spec at the end, as read back.
    last_spec: Option<pods::Want>,
    /// Every spec change of the Deployment (the first: its creation).
    deployment_changes: Vec<super::deploy::SpecChange>,
    /// Rolling-update fences breached while no node fault was active.
    fence_violations: Vec<String>,
    /// Samples the fences were checked on.
    fence_samples: usize,
    /// Every fence sample: (time, the Deployment's pods not terminating, Ready).
    fence: Vec<(u64, usize, usize)>,
    /// From the end of the faults to the desired state.
    converge_ms: Option<f64>,
    /// Each duplicate seen (time, what).
    duplicates: Vec<(u64, String)>,
    /// Container processes a node fault stopped.
    stopped: Vec<String>,
    /// ConfigMap creates acknowledged, of unknown outcome, refused.
    acked: usize,
    unknown: usize,
    failed: usize,
    /// Acknowledged ConfigMaps missing at the end.
    lost: Vec<String>,
    /// Whether the final list answered.
    listed: bool,
}

impl WorkloadOutcome {
    fn ok(&self) -> bool {
        self.converged.is_none()
            && self.fence_violations.is_empty()
            && self.duplicates.is_empty()
            && self.stopped.is_empty()
            && self.lost.is_empty()
            && self.listed
    }
}

/// Waits (≤ `within`) until the workloads are at their desired state (the
/// Deployment at `want`); `Err`: what was missing last.
async fn wait_desired(
    api: &Api,
    run: &str,
    dir: &Path,
    node_dir: &dyn Fn(&str) -> String,
    want: pods::Want,
    within: Duration,
) -> Result<(), String> {
    let until = Instant::now() + within;
    let mut gap = String::from("the API did not answer");
    while Instant::now() < until {
        if let Ok(Some(o)) =
            tokio::time::timeout(Duration::from_secs(3), pods::observe(api, run)).await
        {
            match pods::at_desired_state(&o, &pods::live_shims(dir), node_dir, want) {
                Ok(()) => return Ok(()),
                Err(e) => gap = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(gap)
}

/// One injected fault and what followed it.
#[derive(Debug, Clone, Serialize)]
struct FaultRecord {
    kind: Fault,
    targets: Vec<String>,
    at_ns: u64,
    healed_ns: u64,
    /// A clock jump's size, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    jump_s: Option<i64>,
    /// A node fault: from the fault to its Node's Ready condition leaving
    /// `True` (none when the master did not notice within the excuse).
    #[serde(skip_serializing_if = "Option::is_none")]
    node_unready_ms: Option<f64>,
    /// A node fault: from its heal to its Node Ready again.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_ready_ms: Option<f64>,
    /// With real nodes: from the heal to the workloads at their desired
    /// state (before the next fault; none if not by then).
    #[serde(skip_serializing_if = "Option::is_none")]
    workload_ms: Option<f64>,
    /// A real node fault: from the fault to the Deployment serving all its
    /// replicas again elsewhere, before the heal (none if it never fell
    /// short, or not by then).
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced_ms: Option<f64>,
    /// From the fault to the first leader of a higher term seen (faults that
    /// leave the leader alone may have none).
    leader_ms: Option<f64>,
    /// From the fault to the first acknowledged write invoked after it.
    write_ms: Option<f64>,
}

impl FaultRecord {
    /// A fault on `targets` from `at_ns` to `healed_ns`, its figures to come.
    fn new(kind: Fault, targets: Vec<String>, at_ns: u64, healed_ns: u64) -> FaultRecord {
        FaultRecord {
            kind,
            targets,
            at_ns,
            healed_ns,
            jump_s: None,
            leader_ms: None,
            write_ms: None,
            node_unready_ms: None,
            node_ready_ms: None,
            workload_ms: None,
            replaced_ms: None,
        }
    }
}

/// Leader changes seen by the monitor: (time, term, leader).
type Leaders = Vec<(u64, u64, u64)>;

struct Shared {
    start: Instant,
    stop: AtomicBool,
    ops: Mutex<Vec<Op>>,
    leaders: Mutex<Leaders>,
    next_process: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

pub async fn run(a: RunArgs, config: Option<&Path>) -> Result<ExitCode> {
    let Some(dir) = a.dir.clone() else {
        bail!("--dir is required: the directory for the cluster, its logs and the report");
    };
    if a.clients == 0 || a.keys == 0 {
        bail!("--clients and --keys must not be 0");
    }
    if a.seconds < Duration::from_secs(5) {
        bail!("--seconds (--duration) must be at least 5s");
    }
    let real = a.real_nodes.is_some();
    let nodes = a
        .nodes
        .or(a.real_nodes)
        .unwrap_or(if a.scenario == Some(Scenario::NodeLoss) {
            3
        } else {
            0
        });
    if nodes > 20 {
        bail!("--nodes must be at most 20");
    }
    if real && !(1..=5).contains(&nodes) {
        bail!("--real-nodes must be between 1 and 5");
    }
    let faults = match a.scenario {
        Some(s) => s.faults(nodes > 0, real),
        None if a.faults.is_empty() => DEFAULT_FAULTS.to_vec(),
        None => a.faults.clone(),
    };
    if let Some(f) = faults.iter().find(|f| f.node()) {
        if nodes == 0 {
            bail!("fault {} needs nodes: give --nodes N", f.name());
        }
    }
    if !real && faults.contains(&Fault::PartitionNode) {
        bail!("fault partition-node needs real node agents: give --real-nodes N");
    }
    let n = a.masters as usize;
    if n != 3 && n != 5 {
        bail!("--masters must be 3 or 5");
    }
    let upgrade_from = match &a.upgrade_from {
        Some(_) if config.is_some() => {
            bail!("--upgrade-from starts the masters of a cluster ferry chaos starts itself; not with --config")
        }
        Some(_) if !faults.contains(&Fault::RollingRestart) || a.no_faults => {
            bail!("--upgrade-from needs the rolling-restart fault (--scenario rolling-upgrade, or --faults rolling-restart)")
        }
        Some(old) => Some(older_binary(old)?),
        None => None,
    };
    if let Some(config) = config {
        let asked = (a.scenario.is_some() || !a.faults.is_empty()).then_some(faults);
        return against(&a, config, &dir, asked).await;
    }
    let faults = if a.no_faults { Vec::new() } else { faults };
    if dir.join("m1").exists() {
        bail!(
            "{} already holds a cluster; give an empty --dir",
            dir.display()
        );
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    ferry_actors::master::identity::create_private_dir(&dir)?;
    // Absolute: the run's container processes are found by their directories.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let cfg = dir.join("master.toml");
    std::fs::write(&cfg, MASTER_CONFIG)?;
    let net = faults.iter().any(|f| f.network());
    // Masters on the first n ports, their proxies (if any) on the next n.
    let port = crate::failover::free_ports(if net { 2 * n } else { n })?;
    let mut proxies = Vec::new();
    if net {
        for i in 0..n {
            let at = |p: usize| -> std::net::SocketAddr {
                ([127, 0, 0, 1], (port as usize + p) as u16).into()
            };
            proxies.push(super::proxy::start(at(n + i), at(i)).await?);
        }
    }
    let advertise = net.then(|| proxies.iter().map(|p| p.addr.to_string()).collect());
    eprintln!(
        "ferry chaos: seed {seed}; starting {n} masters in {}{}",
        dir.display(),
        if net { " behind fault proxies" } else { "" }
    );
    let extras = up::Extras {
        fault_dirs: true,
        exe: upgrade_from,
    };
    let mut local =
        up::start_advertised(&dir, n, port, None, false, Some(&cfg), advertise, extras).await?;
    let mut node_procs = Vec::new();
    let plan = Plan {
        faults,
        nodes,
        real,
        calm_ms: a.scenario.map_or(1000..2000, Scenario::calm_ms),
    };
    let result = drive(
        &a,
        &plan,
        seed,
        &dir,
        &mut local,
        &mut node_procs,
        &cfg,
        &proxies,
    )
    .await;
    // Whatever happened: no master or node stays stopped, and none outlives the run.
    super::nodes::stop(&mut node_procs);
    stop_cluster(&mut local);
    result
}

/// The faults `ferry chaos --config` can inject into a cluster it did not
/// start: SIGSTOP and SIGCONT of its masters' processes on this machine.
/// The others need what only a cluster of its own gives: restarting a
/// killed master (its command line and data dir), a fault proxy in front of
/// every master (their advertised addresses), a fault directory
/// (`FERRY_FAULT_DIR`, `FERRY_CLOCK_OFFSET_FILE` at start), its own nodes.
const AGAINST_FAULTS: &[Fault] = &[Fault::StopLeader, Fault::StopFollower];

/// The process on this machine of the `ferry master` listening on or
/// advertising `addr` (its `--listen`/`--advertise`), if exactly one.
fn local_master(addr: &str) -> Option<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !argv.iter().any(|a| a == "master") {
            continue;
        }
        let names_addr = argv
            .windows(2)
            .any(|w| (w[0] == "--listen" || w[0] == "--advertise") && w[1] == addr)
            || argv
                .iter()
                .any(|a| *a == format!("--listen={addr}") || *a == format!("--advertise={addr}"));
        if names_addr {
            found.push(pid);
        }
    }
    (found.len() == 1).then(|| found[0])
}

/// `ferry chaos --config ADMIN.conf`: the workload, watchers and checks
/// against an existing cluster, and of the faults only SIGSTOP/SIGCONT of
/// its masters, when each is a process of this machine (`asked`: the faults
/// given; by default those). Nothing of the cluster is stopped or
/// restarted; every master stopped is continued whatever happens (Ctrl-C
/// included), and the run's keys are deleted at the end.
async fn against(
    a: &RunArgs,
    config: &Path,
    dir: &Path,
    asked: Option<Vec<Fault>>,
) -> Result<ExitCode> {
    if a.nodes.is_some() || a.real_nodes.is_some() {
        bail!("--nodes and --real-nodes start nodes of a cluster ferry chaos starts itself; not with --config");
    }
    let faults = match asked {
        _ if a.no_faults => Vec::new(),
        None => AGAINST_FAULTS.to_vec(),
        Some(f) => {
            if let Some(bad) = f.iter().find(|f| !AGAINST_FAULTS.contains(f)) {
                bail!(
                    "fault {} cannot be injected into an existing cluster (--config): only stop-leader and stop-follower (SIGSTOP/SIGCONT of master processes on this machine) can; the others need a cluster ferry chaos starts itself (omit --config)",
                    bad.name()
                );
            }
            f
        }
    };
    if dir.join("history.json").exists() || dir.join("m1").exists() {
        bail!(
            "{} holds an earlier run; give an empty --dir",
            dir.display()
        );
    }
    let admin = ClientConfig::load(config)
        .with_context(|| format!("reading the client config {}", config.display()))?;
    let client = Client::new(&ClientConfig {
        timeout_ms: 5000,
        ..admin.clone()
    })?;
    let status = client
        .status()
        .await
        .with_context(|| format!("asking the cluster of {} for its status", config.display()))?;
    let mut procs = Vec::new();
    for m in &status.members {
        let pid = local_master(&m.addr);
        if pid.is_none() && !faults.is_empty() {
            bail!(
                "master {} ({}) is not a process of this machine (no `ferry master` with --listen or --advertise {}): stop faults need every master local; give --no-faults to run the workload and the checks alone",
                m.id,
                m.addr,
                m.addr
            );
        }
        procs.push(up::Proc::external(
            format!("m{}", m.id),
            m.addr.clone(),
            pid,
        ));
    }
    let voters = status.members.iter().filter(|m| m.voter).count();
    if voters < 3 && !faults.is_empty() {
        bail!("the cluster has {voters} voting masters: stopping one would stop it; faults need 3 or more (or give --no-faults)");
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    ferry_actors::master::identity::create_private_dir(dir)?;
    let masters: Vec<String> = procs.iter().map(|p| p.addr.clone()).collect();
    eprintln!(
        "ferry chaos: seed {seed}; against the cluster of {} ({} masters{})",
        config.display(),
        procs.len(),
        if faults.is_empty() {
            ", no faults".to_string()
        } else {
            let pids: Vec<String> = procs
                .iter()
                .filter_map(|p| p.external_pid.map(|x| format!("{} pid {x}", p.name)))
                .collect();
            format!("; {}", pids.join(", "))
        }
    );
    let mut local = up::Local {
        procs,
        admin: admin.clone(),
        admin_path: config.to_path_buf(),
        masters,
        leader: status.leader.unwrap_or_default(),
        join_args: Vec::new(),
    };
    let plan = Plan {
        faults,
        nodes: 0,
        real: false,
        calm_ms: 1000..2000,
    };
    let (mut no_nodes, no_cfg) = (Vec::new(), dir.join("none"));
    let result = tokio::select! {
        r = drive(a, &plan, seed, dir, &mut local, &mut no_nodes, &no_cfg, &[]) => r,
        _ = crate::master::wait_for_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    // No master stays stopped; none is stopped otherwise (not started here).
    stop_cluster(&mut local);
    let prefix = format!("chaos/{seed:016x}/");
    for k in 0..a.keys {
        let _ = client.delete(&format!("{prefix}k{k}"), Expect::Any).await;
    }
    result
}

/// SIGCONT for every master (none stays stopped), then SIGTERM, SIGKILL
/// after 10 s.
fn stop_cluster(local: &mut up::Local) {
    for p in &local.procs {
        if let Some(pid) = p.pid() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
    // Only the masters started here: an existing cluster's are left running.
    up::stop_all(&mut local.procs);
}

/// A client of the master at `addr` only, with a short deadline.
fn client_of(admin: &ClientConfig, addr: &str, timeout_ms: u64) -> Result<Client> {
    let mut cfg = admin.clone();
    cfg.masters = vec![addr.to_string()];
    cfg.timeout_ms = timeout_ms;
    Ok(Client::new(&cfg)?)
}

/// What a run injects: its faults, its nodes, the calm before each fault.
struct Plan {
    faults: Vec<Fault>,
    nodes: usize,
    /// The nodes are real node agents (with the object workload).
    real: bool,
    calm_ms: std::ops::Range<u64>,
}

/// A master's fault file (`stall-fsync`, `clock-offset`).
fn fault_file(p: &up::Proc, name: &str) -> Option<PathBuf> {
    p.fault_dir.as_ref().map(|d| d.join(name))
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    a: &RunArgs,
    plan: &Plan,
    seed: u64,
    dir: &Path,
    local: &mut up::Local,
    node_procs: &mut Vec<super::nodes::NodeProc>,
    cfg: &Path,
    proxies: &[super::proxy::Proxy],
) -> Result<ExitCode> {
    let admin = local.admin.clone();
    let prefix = format!("chaos/{seed:016x}/");
    let keys: Vec<String> = (0..a.keys).map(|k| format!("{prefix}k{k}")).collect();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        ops: Mutex::new(Vec::new()),
        leaders: Mutex::new(Vec::new()),
        next_process: AtomicU64::new(a.clients as u64 + 1),
    });
    let hard_end = shared.start + a.seconds + SHUTDOWN_MARGIN;
    let mut tasks = tokio::task::JoinSet::new();

    // Monitor: every master's view of the leader, every 25 ms.
    for addr in &local.masters {
        let client = client_of(&admin, addr, 250)?;
        let shared = shared.clone();
        tasks.spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let asked = tokio::time::timeout(Duration::from_millis(250), client.status());
                if let Ok(Ok(s)) = asked.await {
                    if let Some(leader) = s.leader {
                        let mut l = shared.leaders.lock().expect("leaders");
                        if l.last().is_none_or(|&(_, term, _)| s.term > term) {
                            l.push((shared.now_ns(), s.term, leader));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
    }

    // Nodes, Ready before the workload, and a watch of their Ready conditions.
    let mut node_watch = None;
    if plan.nodes > 0 {
        let c = Client::new(&admin)?;
        if plan.real {
            eprintln!("ferry chaos: starting {} real node agents", plan.nodes);
            let masters = local
                .procs
                .iter()
                .map(|p| p.addr.parse())
                .collect::<Result<Vec<std::net::SocketAddr>, _>>()
                .context("a master's address")?;
            *node_procs = super::nodes::start_real(dir, plan.nodes, &admin, &masters, &c).await?;
        } else {
            eprintln!("ferry chaos: starting {} hollow nodes", plan.nodes);
            *node_procs = super::nodes::start(dir, plan.nodes, &local.admin_path, &c).await?;
        }
        let rev = c.status().await?.commit_index;
        let sh = shared.clone();
        node_watch = Some(super::nodes::watch(Arc::new(c), rev, move || sh.now_ns()));
    }
    let mut node_faults: Vec<super::nodes::NodeFault> = Vec::new();

    // With real nodes: the Deployment and StatefulSet, at their desired
    // state before the faults, the sampler of processes and the
    // ConfigMap writer.
    let run_label = format!("{seed:016x}");
    let api = Api {
        client: Arc::new(Client::new(&ClientConfig {
            timeout_ms: 3000,
            ..admin.clone()
        })?),
    };
    let seen = Arc::new(Mutex::new(pods::Seen::default()));
    let objects_stop = Arc::new(AtomicBool::new(false));
    let node_dirs: BTreeMap<String, String> = node_procs
        .iter()
        .map(|p| (p.node.clone(), p.dir_name()))
        .collect();
    let node_dir: Arc<dyn Fn(&str) -> String + Send + Sync> =
        Arc::new(move |n: &str| node_dirs.get(n).cloned().unwrap_or_default());
    let mut object_tasks = Vec::new();
    let mut pods_stopped: Vec<String> = Vec::new();
    // The Deployment's desired spec (as last applied) and its changes.
    let want = Arc::new(Mutex::new(pods::Want::INITIAL));
    let changes = Arc::new(Mutex::new(Vec::new()));
    let driver_stop = Arc::new(AtomicBool::new(false));
    let mut driver = None;
    if plan.real {
        let invoke_ns = shared.now_ns();
        pods::create(&api, &run_label).await?;
        changes
            .lock()
            .expect("changes")
            .push(super::deploy::SpecChange {
                action: "create".into(),
                replicas: pods::Want::INITIAL.replicas,
                rev: pods::Want::INITIAL.rev,
                invoke_ns,
                complete_ns: Some(shared.now_ns()),
                attempts: 1,
                error: None,
            });
        if let Err(gap) = wait_desired(
            &api,
            &run_label,
            dir,
            &*node_dir,
            pods::Want::INITIAL,
            Duration::from_secs(60),
        )
        .await
        {
            bail!("the chaos workload did not start within 60s: {gap}");
        }
        eprintln!(
            "ferry chaos: {} ({}) and {} ({}) run",
            pods::DEPLOYMENT,
            pods::DEPLOYMENT_INITIAL,
            pods::STATEFULSET,
            pods::STATEFULSET_REPLICAS
        );
        let sh = shared.clone();
        driver = Some(super::deploy::driver(
            api.clone(),
            seed,
            want.clone(),
            changes.clone(),
            driver_stop.clone(),
            move || sh.now_ns(),
        ));
        let sh = shared.clone();
        object_tasks.push(pods::sampler(
            api.clone(),
            run_label.clone(),
            dir.to_path_buf(),
            node_dir.clone(),
            want.clone(),
            seen.clone(),
            objects_stop.clone(),
            move || sh.now_ns(),
        ));
        object_tasks.push(pods::writer(
            api.clone(),
            run_label.clone(),
            seen.clone(),
            objects_stop.clone(),
        ));
    }

    // Watchers, from the revision before the workload.
    let start_rev = Client::new(&admin)?.status().await?.commit_index;
    let mut watchers = Vec::new();
    for w in 0..a.watchers {
        let mut wcfg = admin.clone();
        let m = wcfg.masters.len();
        wcfg.masters.rotate_left(w % m);
        let client = Arc::new(Client::new(&wcfg)?);
        let stream = Arc::new(Mutex::new(WatchStream {
            watcher: w as u64 + 1,
            prefix: prefix.clone(),
            after_revision: start_rev,
            through_revision: start_rev,
            events: Vec::new(),
            error: None,
        }));
        let mut watch = client.watch(&prefix, Some(start_rev), 100);
        let s = stream.clone();
        // `Watch::next` is not cancel-safe: the task runs until aborted.
        let handle = tokio::spawn(async move {
            loop {
                let item = watch.next().await;
                let mut s = s.lock().expect("stream");
                match item {
                    Ok(WatchItem::Events { revision, events }) => {
                        for e in events {
                            s.events.push(WatchEvent {
                                revision,
                                key: e.kv.key,
                                value: match e.kind {
                                    EventKind::Put => {
                                        Some(String::from_utf8_lossy(&e.kv.value).into_owned())
                                    }
                                    EventKind::Delete => None,
                                },
                            });
                        }
                        s.through_revision = s.through_revision.max(revision);
                    }
                    Ok(WatchItem::Bookmark { revision }) => {
                        s.through_revision = s.through_revision.max(revision)
                    }
                    Err(e) => {
                        s.error = Some(e.to_string());
                        return;
                    }
                }
            }
        });
        watchers.push((stream, handle));
    }

    // Workload clients.
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..a.clients {
        let mut wcfg = admin.clone();
        let m = wcfg.masters.len();
        wcfg.masters.rotate_left(w % m);
        wcfg.timeout_ms = OP_TIMEOUT_MS;
        let client = Client::new(&wcfg)?;
        let (shared, keys) = (shared.clone(), keys.clone());
        let rng =
            StdRng::seed_from_u64(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(w as u64 + 1)));
        workers.spawn(workload(client, w as u64 + 1, rng, keys, shared));
    }

    // The faults.
    let mut rng = StdRng::seed_from_u64(seed);
    let run_for = a.seconds;
    let mut faults: Vec<FaultRecord> = Vec::new();
    let status_client = Client::new(&ClientConfig {
        timeout_ms: 1000,
        ..admin.clone()
    })?;
    while !plan.faults.is_empty() {
        let calm = Duration::from_millis(rng.gen_range(plan.calm_ms.clone()));
        let kind = plan.faults[rng.gen_range(0..plan.faults.len())];
        let hold = Duration::from_millis(match kind {
            Fault::RestartAll => rng.gen_range(100..400),
            Fault::KillTwo | Fault::KillMajority => rng.gen_range(1000..2000),
            Fault::DiskStall | Fault::ClockJump => rng.gen_range(1000..3000),
            // Real nodes: long enough, at times, for their pods to be evicted
            // (grace 7 s, then the default toleration of 4 s).
            Fault::KillNode | Fault::StopNode if plan.real => rng.gen_range(3000..20000),
            Fault::KillNode | Fault::StopNode => rng.gen_range(3000..11000),
            Fault::PartitionNode if rng.gen_bool(0.5) => {
                rng.gen_range(1000..SHORT_CUT.as_millis() as u64)
            }
            Fault::PartitionNode => rng.gen_range(9000..14000),
            // Not a hold: the room a rolling restart needs before the end.
            Fault::RollingRestart => rng.gen_range(15000..20000),
            _ => rng.gen_range(500..1500),
        });
        let pick: usize = rng.gen();
        // Drawn only for the faults that use them (older seeds replay as before).
        let (on_leader, jump_s) = match kind {
            Fault::DiskStall => (rng.gen_bool(0.5), 0),
            Fault::ClockJump => {
                let s: i64 = rng.gen_range(60..=3600);
                (rng.gen_bool(0.5), if rng.gen_bool(0.5) { s } else { -s })
            }
            _ => (false, 0),
        };
        // Room for the fault and for the cluster to recover before the end.
        if shared.start.elapsed() + calm + hold + Duration::from_secs(4) > run_for {
            break;
        }
        tokio::time::sleep(calm).await;
        let Some(leader) = leader_index(&status_client, local).await else {
            eprintln!("ferry chaos: no leader known; skipping a {}", kind.name());
            continue;
        };
        let n = local.procs.len();
        if kind == Fault::RollingRestart {
            let at_ns = shared.now_ns();
            // Followers first, the leader last: the cluster elects once.
            let order: Vec<usize> = (0..n).filter(|&i| i != leader).chain([leader]).collect();
            let names: Vec<String> = order.iter().map(|&i| local.procs[i].name.clone()).collect();
            eprintln!(
                "ferry chaos: {:.1}s rolling-restart {}",
                at_ns as f64 / 1e9,
                names.join(",")
            );
            for i in order {
                restart_gracefully(local, i, cfg).await?;
            }
            faults.push(FaultRecord::new(kind, names, at_ns, shared.now_ns()));
            continue;
        }
        let follower = (leader + 1 + pick % (n - 1)) % n;
        let majority = n / 2 + 1;
        let minority: Vec<usize> = (0..(n - 1) / 2).map(|k| (pick + k) % n).collect();
        let targets: Vec<usize> = match kind {
            Fault::KillLeader
            | Fault::StopLeader
            | Fault::PartitionLeader
            | Fault::PartitionAsym => vec![leader],
            Fault::KillFollower | Fault::StopFollower => vec![follower],
            Fault::KillTwo => vec![leader, follower],
            Fault::KillMajority => (0..majority).map(|k| (leader + k) % n).collect(),
            Fault::PartitionMinority => minority.clone(),
            Fault::DiskStall | Fault::ClockJump if on_leader => vec![leader],
            Fault::DiskStall | Fault::ClockJump => vec![follower],
            Fault::RestartAll | Fault::LossyNet | Fault::RollingRestart => (0..n).collect(),
            Fault::KillNode | Fault::StopNode | Fault::PartitionNode => vec![],
        };
        let stop = matches!(kind, Fault::StopLeader | Fault::StopFollower);
        let at_ns = shared.now_ns();
        let at_unix_ms = jiff::Timestamp::now().as_millisecond();
        let mut killed = Vec::new();
        let mut node_target = None;
        // A real node's container processes at the fault: none may stop.
        let mut kept = Vec::new();
        if kind.network() {
            net_fault(kind, leader, &minority, local, proxies);
        }
        match kind {
            Fault::DiskStall => {
                if let Some(f) =
                    fault_file(&local.procs[targets[0]], ferry_raft::fault::STALL_FSYNC)
                {
                    std::fs::write(&f, b"")?;
                }
            }
            Fault::ClockJump => {
                if let Some(f) = fault_file(&local.procs[targets[0]], up::CLOCK_OFFSET) {
                    std::fs::write(&f, format!("{jump_s}\n"))?;
                }
            }
            Fault::KillNode | Fault::StopNode | Fault::PartitionNode => {
                let i = pick % node_procs.len();
                if plan.real {
                    kept = pods::running_on(&api, &run_label, dir, &node_procs[i].dir_name()).await;
                }
                if kind == Fault::PartitionNode {
                    node_procs[i].cut(true);
                } else if let Some(pid) = node_procs[i].pid() {
                    if kind == Fault::StopNode {
                        kill(pid, Signal::SIGSTOP)?;
                    } else {
                        kill(pid, Signal::SIGKILL)?;
                        if let Some(mut c) = node_procs[i].child.take() {
                            let _ = c.wait();
                        }
                    }
                }
                node_target = Some(i);
            }
            _ => {}
        }
        let in_process =
            !kind.network() && !kind.node() && !matches!(kind, Fault::DiskStall | Fault::ClockJump);
        for &i in &targets {
            if !in_process {
                break;
            }
            let Some(pid) = local.procs[i].pid() else {
                continue;
            };
            if stop {
                kill(pid, Signal::SIGSTOP)?;
            } else {
                kill(pid, Signal::SIGKILL)?;
                if let Some(mut c) = local.procs[i].child.take() {
                    let _ = c.wait();
                }
                killed.push(i);
            }
        }
        let mut names: Vec<String> = targets
            .iter()
            .map(|&i| local.procs[i].name.clone())
            .collect();
        if let Some(i) = node_target {
            names.push(node_procs[i].node.clone());
        }
        eprintln!(
            "ferry chaos: {:.1}s {} {}{}",
            at_ns as f64 / 1e9,
            kind.name(),
            names.join(","),
            if kind == Fault::ClockJump {
                format!(" {jump_s:+}s")
            } else {
                String::new()
            }
        );
        tokio::time::sleep(hold).await;
        let mut gone: Vec<&pods::Shim> = kept.iter().filter(|s| !pods::still_runs(s)).collect();
        if !gone.is_empty() {
            // A pod the controllers deleted before the fault (a roll, a
            // scale down) was being stopped by its agent already.
            let asked =
                tokio::time::timeout(Duration::from_secs(5), pods::observe(&api, &run_label)).await;
            if let Ok(Some(o)) = asked {
                gone.retain(|s| {
                    !o.pods.iter().any(|p| {
                        p.pointer("/metadata/uid").and_then(|u| u.as_str()) == Some(&s.uid)
                            && pods::deleted_by(p, at_unix_ms)
                    })
                });
            }
        }
        for s in gone {
            pods_stopped.push(format!(
                "{} of {} at {:.1}s: pod {} (uid {}) container {} stopped during the fault",
                kind.name(),
                names.join(","),
                at_ns as f64 / 1e9,
                s.pod.as_deref().unwrap_or("?"),
                s.uid,
                s.container
            ));
        }
        for p in proxies {
            *p.rules.lock().expect("rules") = Default::default();
        }
        for &i in &targets {
            if stop && in_process {
                if let Some(pid) = local.procs[i].pid() {
                    kill(pid, Signal::SIGCONT)?;
                }
            }
            for name in [ferry_raft::fault::STALL_FSYNC, up::CLOCK_OFFSET] {
                if let Some(f) = fault_file(&local.procs[i], name) {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
        for &i in &killed {
            let p = &mut local.procs[i];
            p.child = Some(up::spawn(p, &[], Some(cfg))?);
        }
        if let Some(i) = node_target {
            let p = &mut node_procs[i];
            match p.pid() {
                _ if kind == Fault::PartitionNode => p.cut(false),
                Some(pid) => kill(pid, Signal::SIGCONT)?,
                None => p.spawn()?,
            }
        }
        let healed_ns = shared.now_ns();
        if let Some(i) = node_target {
            node_faults.push(super::nodes::NodeFault {
                node: node_procs[i].node.clone(),
                at_ns,
                healed_ns,
                // A cut this short must go unnoticed.
                short: (kind == Fault::PartitionNode && hold < SHORT_CUT)
                    .then_some(hold.as_secs_f64()),
            });
        }
        faults.push(FaultRecord {
            jump_s: (kind == Fault::ClockJump).then_some(jump_s),
            ..FaultRecord::new(kind, names, at_ns, healed_ns)
        });
        // Until the cluster has a leader again (bounded).
        let wait_until = Instant::now() + Duration::from_secs(15);
        while leader_index(&status_client, local).await.is_none() && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The workload runs to the end.
    let left = run_for.saturating_sub(shared.start.elapsed());
    tokio::time::sleep(left).await;
    shared.stop.store(true, Ordering::Relaxed);
    driver_stop.store(true, Ordering::Relaxed);
    let join_by = Duration::from_millis(OP_TIMEOUT_MS + 2000);
    if tokio::time::timeout(join_by, async {
        while workers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        workers.abort_all();
    }
    while tasks.join_next().await.is_some() {}

    // Healed: every master runs (a start-up failure would show here).
    for p in local.procs.iter_mut() {
        if let Some(c) = p.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                eprintln!("ferry chaos: {} exited ({status}); restarting it", p.name);
                p.child = Some(up::spawn(p, &[], Some(cfg))?);
            }
        }
    }

    // Final reads, linearizable, once the cluster answers.
    let final_client = Client::new(&ClientConfig {
        timeout_ms: 10_000,
        ..admin.clone()
    })?;
    let mut finals = Vec::new();
    let mut ops_final = Vec::new();
    let mut finals_failed = false;
    for key in &keys {
        let invoke_ns = shared.now_ns();
        let kv = match final_client.get(key, Consistency::Linearizable).await {
            Ok(kv) => kv,
            Err(e) => {
                // No final state: the cluster did not recover (not converged).
                eprintln!("ferry chaos: the final read of {key} failed: {e}");
                finals_failed = true;
                continue;
            }
        };
        let complete_ns = shared.now_ns();
        let value = kv
            .as_ref()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        let revision = kv.as_ref().map_or(0, |kv| kv.mod_revision);
        finals.push(FinalRead {
            key: key.clone(),
            value: value.clone(),
            revision,
        });
        ops_final.push(Op {
            process: 0,
            key: key.clone(),
            kind: OpType::Read,
            value: None,
            expect: None,
            invoke_ns,
            complete_ns,
            outcome: Outcome::Ok,
            result: value,
            revision,
            error: None,
        });
    }
    let mut ops = std::mem::take(&mut *shared.ops.lock().expect("ops"));
    ops.extend(ops_final);
    ops.sort_by_key(|o| (o.invoke_ns, o.process));

    // Watchers catch up with the last acknowledged write (bounded).
    let top = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.kind != OpType::Read)
        .map(|o| o.revision)
        .max()
        .unwrap_or(0);
    let watch_until = Instant::now() + Duration::from_secs(10);
    for (s, _) in &watchers {
        while Instant::now() < watch_until {
            let done = {
                let st = s.lock().expect("stream");
                st.through_revision >= top || st.error.is_some()
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut streams = Vec::new();
    for (s, handle) in watchers {
        handle.abort();
        streams.push(s.lock().expect("stream").clone());
    }

    // With real nodes: the Deployment's driver stopped and its last spec
    // read back, the workloads back at their desired state (bounded), then
    // no acknowledged ConfigMap missing.
    let mut workload = None;
    if plan.real {
        driver_stop.store(true, Ordering::Relaxed);
        if let Some(d) = driver.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), d).await;
        }
        let from = shared.now_ns();
        let last_spec = read_spec(&api).await;
        let r = match last_spec {
            Some(w) => {
                wait_desired(
                    &api,
                    &run_label,
                    dir,
                    &*node_dir,
                    w,
                    Duration::from_secs(45),
                )
                .await
            }
            None => Err(format!(
                "the {} Deployment could not be read",
                pods::DEPLOYMENT
            )),
        };
        objects_stop.store(true, Ordering::Relaxed);
        for t in object_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let present = pods::present(&api, &run_label).await;
        let s = seen.lock().expect("seen");
        let lost = match &present {
            Ok(p) => pods::lost(&s.acked, p),
            Err(_) => s.acked.clone(),
        };
        if let Err(e) = &present {
            eprintln!("ferry chaos: listing the ConfigMaps written failed: {e:#}");
        }
        let deployment_changes = changes.lock().expect("changes").clone();
        // The fences, except while a node fault is active or settling.
        let excused: Vec<(u64, u64)> = node_faults
            .iter()
            .map(|f| {
                let settle = super::deploy::NODE_SETTLE.as_nanos() as u64;
                (f.at_ns, f.healed_ns + settle)
            })
            .collect();
        let fence_violations = super::deploy::fences(
            &deployment_changes,
            &s.fence,
            &excused,
            pods::MAX_SURGE,
            pods::MAX_UNAVAILABLE,
        );
        let fence_samples = s
            .fence
            .iter()
            .filter(|&&(t, _, _)| !excused.iter().any(|&(a, b)| t >= a && t <= b))
            .count();
        workload = Some(WorkloadOutcome {
            converged: r.as_ref().err().cloned(),
            last_spec,
            deployment_changes,
            fence_violations,
            fence_samples,
            fence: s.fence.clone(),
            converge_ms: r.ok().map(|_| (shared.now_ns() - from) as f64 / 1e6),
            duplicates: s.duplicates.clone(),
            stopped: pods_stopped.clone(),
            acked: s.acked.len(),
            unknown: s.unknown.len(),
            failed: s.failed,
            lost,
            listed: present.is_ok(),
        });
    }

    // Converged: every master's own state of the keys equals the linearizable
    // one, and with real nodes the workloads reached their (last) desired state.
    let converged = !finals_failed
        && converged(&admin, &local.masters, &prefix, &final_client, hard_end).await
        && workload.as_ref().is_none_or(|w| w.converged.is_none());
    // The nodes' Ready changes, and the nodes stopped before the masters.
    let ready_changes = match node_watch {
        Some((changes, handle)) => {
            handle.abort();
            let c = changes.lock().expect("changes").clone();
            c
        }
        None => Vec::new(),
    };
    super::nodes::stop(node_procs);
    // The cluster is done with: stopped before the checks, which may take long.
    stop_cluster(local);

    let history = History {
        version: HISTORY_VERSION,
        seed: Some(seed),
        ops,
        watches: streams,
        finals,
    };
    let history_path = dir.join("history.json");
    std::fs::write(&history_path, serde_json::to_vec(&history)?)
        .with_context(|| format!("writing {}", history_path.display()))?;
    let report = check::check_history(&history);

    // Figures per fault.
    let leaders = shared.leaders.lock().expect("leaders").clone();
    let next_at: Vec<u64> = faults
        .iter()
        .skip(1)
        .map(|f| f.at_ns)
        .chain([u64::MAX])
        .collect();
    for (f, until) in faults.iter_mut().zip(next_at) {
        let (leader_ms, write_ms) = figures(&history.ops, &leaders, f.at_ns, until);
        f.leader_ms = leader_ms;
        f.write_ms = write_ms;
        f.workload_ms = seen
            .lock()
            .expect("seen")
            .desired
            .iter()
            .find(|&&(t, ok)| ok && t >= f.healed_ns && t < until)
            .map(|&(t, _)| (t - f.healed_ns) as f64 / 1e6);
        if f.kind.node() && plan.real {
            f.replaced_ms =
                pods::replaced_ms(&seen.lock().expect("seen").web, f.at_ns, f.healed_ns);
        }
        if f.kind.node() {
            let (unready, ready) =
                super::nodes::figures(&ready_changes, &f.targets[0], f.at_ns, f.healed_ns);
            f.node_unready_ms = unready;
            f.node_ready_ms = ready;
        }
    }
    // No node NotReady by a master failure alone.
    let unexcused = super::nodes::check(&ready_changes, &node_faults);
    let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for f in &faults {
        if let Some(w) = f.write_ms {
            by_kind.entry(f.kind.name()).or_default().push(w);
        }
    }
    let mut leader_faults: Vec<f64> = faults
        .iter()
        .filter(|f| f.kind.hits_leader())
        .filter_map(|f| f.write_ms)
        .collect();
    let failover_p99 = percentile(&mut leader_faults, 0.99).unwrap_or(0.0);

    super::print_verdicts(&report);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    for f in &faults {
        let workload_ms = match plan.real {
            true if f.kind.node() => format!(
                " replaced_ms={} workload_ms={}",
                ms(f.replaced_ms),
                ms(f.workload_ms)
            ),
            true => format!(" workload_ms={}", ms(f.workload_ms)),
            false => String::new(),
        };
        outln!(
            "fault {:.1}s {} {}{} leader_ms={} write_ms={}{}{workload_ms}",
            f.at_ns as f64 / 1e9,
            f.kind.name(),
            f.targets.join(","),
            f.jump_s
                .map(|j| format!(" jump={j:+}s"))
                .unwrap_or_default(),
            ms(f.leader_ms),
            ms(f.write_ms),
            if f.kind.node() {
                format!(
                    " hold_ms={:.0} node_unready_ms={} node_ready_ms={}",
                    (f.healed_ns - f.at_ns) as f64 / 1e6,
                    ms(f.node_unready_ms),
                    ms(f.node_ready_ms)
                )
            } else {
                String::new()
            }
        );
    }
    for u in &unexcused {
        outln!(
            "node {}: Ready={} at {:.1}s {}",
            u.node,
            u.status,
            u.at_ns as f64 / 1e9,
            u.reason
        );
    }
    let by_masters = unexcused.iter().filter(|u| u.short_cut.is_none()).count();
    if plan.nodes > 0 {
        outln!(
            "nodes n={} ready_changes={} unready_by_masters={by_masters}{}",
            plan.nodes,
            ready_changes.len(),
            if plan.real {
                format!(" unready_by_short_cuts={}", unexcused.len() - by_masters)
            } else {
                String::new()
            }
        );
    }
    if let Some(w) = &workload {
        for (t, d) in &w.duplicates {
            outln!("duplicate at {:.1}s: {d}", *t as f64 / 1e9);
        }
        for s in &w.stopped {
            outln!("pod stopped by a node fault: {s}");
        }
        for n in &w.lost {
            outln!("lost object write: ConfigMap {}/{n}", pods::NS);
        }
        for c in &w.deployment_changes {
            outln!(
                "deployment {:.1}s {} replicas={} rev={} attempts={} {}",
                c.invoke_ns as f64 / 1e9,
                c.action,
                c.replicas,
                c.rev,
                c.attempts,
                match (&c.complete_ns, &c.error) {
                    (Some(t), _) => format!("applied_ms={:.0}", (t - c.invoke_ns) as f64 / 1e6),
                    (None, Some(e)) => format!("unknown ({e})"),
                    (None, None) => "unknown".into(),
                }
            );
        }
        for v in &w.fence_violations {
            outln!("rolling-update fence breached {v}");
        }
        if let Some(gap) = &w.converged {
            outln!("workloads did not converge within 45s: {gap}");
        }
        let n = |a: &str| {
            w.deployment_changes
                .iter()
                .filter(|c| c.action == a)
                .count()
        };
        outln!(
            "deployment scales={} rolls={} last_replicas={} last_rev={} converged={} fence_samples={} fence_violations={}",
            n("scale"),
            n("roll"),
            w.last_spec.map_or("-".into(), |s| s.replicas.to_string()),
            w.last_spec.map_or("-".into(), |s| s.rev.to_string()),
            w.converged.is_none(),
            w.fence_samples,
            w.fence_violations.len()
        );
        outln!(
            "workloads deployment={} statefulset={} converged={} converge_ms={} duplicates={} pods_stopped={} object_writes={} unknown={} lost_object_writes={}",
            w.last_spec.map_or("-".into(), |s| s.replicas.to_string()),
            pods::STATEFULSET_REPLICAS,
            w.converged.is_none(),
            ms(w.converge_ms),
            w.duplicates.len(),
            w.stopped.len(),
            w.acked,
            w.unknown,
            if w.listed {
                w.lost.len().to_string()
            } else {
                "unknown".into()
            }
        );
    }
    let mut figures_out = BTreeMap::new();
    for (kind, mut v) in by_kind {
        let p50 = percentile(&mut v, 0.5).unwrap_or(0.0);
        let p99 = percentile(&mut v, 0.99).unwrap_or(0.0);
        outln!(
            "faults {kind}: n={} write_p50_ms={p50:.0} write_p99_ms={p99:.0}",
            v.len()
        );
        figures_out.insert(
            kind,
            serde_json::json!({"n": v.len(), "write_p50_ms": p50, "write_p99_ms": p99}),
        );
    }
    let count = |o: Outcome| history.ops.iter().filter(|x| x.outcome == o).count();
    outln!(
        "ops ok={} fail={} unknown={} keys={} watchers={} events={}",
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        keys.len(),
        history.watches.len(),
        history
            .watches
            .iter()
            .map(|w| w.events.len())
            .sum::<usize>()
    );
    let out = serde_json::json!({
        "seed": seed,
        "masters": a.masters,
        "seconds": a.seconds.as_secs_f64(),
        "nodes": plan.nodes,
        "node_ready_changes": ready_changes,
        "nodes_unready_by_masters": unexcused,
        "workloads": workload,
        "faults": faults,
        "figures": figures_out,
        "failover_p99_ms": failover_p99,
        "converged": converged,
        "check": report,
        "history": history_path,
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&out)?)?;
    outln!("report: {}", dir.join("report.json").display());
    let ok = report.ok()
        && converged
        && unexcused.is_empty()
        && workload.as_ref().is_none_or(WorkloadOutcome::ok);
    outln!(
        "chaos seed={seed} faults={} ops={} linearizable={} lost_writes={} watch_violations={} failover_p99_ms={:.0} converged={converged}",
        faults.len(),
        history.ops.len(),
        report.linearizable,
        report.lost_writes.len(),
        report.watch_violations.len(),
        failover_p99
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The chaos Deployment's spec, read back (retried for up to 20 s).
async fn read_spec(api: &Api) -> Option<pods::Want> {
    let res = ferry_api::resources::by_cli_name("deployments").expect("served");
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok(Some(d)) = api.get(res, Some(pods::NS), pods::DEPLOYMENT).await {
            return Some(super::deploy::want_of(&d));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// One workload client: reads, writes of unique values, and compare-and-set
/// from the last value it read (the store compares `mod_revision`s; as every
/// value is written once, that is a comparison of values).
async fn workload(
    client: Client,
    id: u64,
    mut rng: StdRng,
    keys: Vec<String>,
    shared: Arc<Shared>,
) {
    let mut process = id;
    // The last value this client read of each key, with its mod_revision.
    let mut known: BTreeMap<String, (Option<String>, u64)> = BTreeMap::new();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let mut dice = rng.gen_range(0..10);
        if dice >= 7 && !known.contains_key(&key) {
            // A cas compares against a value read: read first.
            dice = 0;
        }
        n += 1;
        let invoke_ns = shared.now_ns();
        let mut op = Op {
            process,
            key: key.clone(),
            kind: OpType::Read,
            value: None,
            expect: None,
            invoke_ns,
            complete_ns: 0,
            outcome: Outcome::Unknown,
            result: None,
            revision: 0,
            error: None,
        };
        if dice < 4 {
            match client.get(&key, Consistency::Linearizable).await {
                Ok(kv) => {
                    let value = kv
                        .as_ref()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    op.revision = kv.as_ref().map_or(0, |kv| kv.mod_revision);
                    op.outcome = Outcome::Ok;
                    op.result = value.clone();
                    known.insert(key.clone(), (value, op.revision));
                }
                Err(e) => op.error = Some(e.to_string()),
            }
        } else {
            let value = format!("c{id}-{n}");
            op.value = Some(value.clone());
            let expect = if dice < 7 {
                op.kind = OpType::Write;
                Expect::Any
            } else {
                op.kind = OpType::Cas;
                let (v, rev) = known.get(&key).cloned().unwrap_or((None, 0));
                op.expect = v.clone();
                match v {
                    Some(_) => Expect::ModRevision(rev),
                    None => Expect::Absent,
                }
            };
            match client.put(&key, value.into_bytes(), expect).await {
                Ok(Ok(out)) => {
                    op.outcome = Outcome::Ok;
                    op.revision = out.revision;
                }
                Ok(Err(
                    e @ (KvError::Conflict { .. }
                    | KvError::AlreadyExists { .. }
                    | KvError::NotFound { .. }),
                )) if op.kind == OpType::Cas => {
                    op.outcome = Outcome::Fail;
                    // The value read is stale: the next cas reads first.
                    known.remove(&key);
                    let _ = e;
                }
                Ok(Err(e)) => {
                    op.outcome = Outcome::Fail;
                    op.error = Some(e.to_string());
                }
                // Indeterminate, or no answer: it may have applied.
                Err(e) => op.error = Some(e.to_string()),
            }
        }
        op.complete_ns = shared.now_ns();
        let unknown = op.outcome == Outcome::Unknown;
        shared.ops.lock().expect("ops").push(op);
        if unknown {
            // Its operation may still be pending: later ones are another process's.
            process = shared.next_process.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sets the proxies' rules for a network fault around `leader`: a master's
/// packets leave from its real address (`Proc::addr`), so a proxy tells
/// peers apart by source.
/// `minority`: the masters a `partition-minority` cuts off.
fn net_fault(
    kind: Fault,
    leader: usize,
    minority: &[usize],
    local: &up::Local,
    proxies: &[super::proxy::Proxy],
) {
    let real = |i: usize| -> Option<std::net::SocketAddr> { local.procs[i].addr.parse().ok() };
    let Some(l) = real(leader) else {
        return;
    };
    for (j, p) in proxies.iter().enumerate() {
        let mut r = p.rules.lock().expect("rules");
        match kind {
            Fault::LossyNet => {
                r.loss = 0.2;
                r.duplicate = 0.1;
                r.max_delay = Duration::from_millis(20);
            }
            Fault::PartitionLeader if j == leader => {
                for k in (0..proxies.len()).filter(|&k| k != leader) {
                    if let Some(a) = real(k) {
                        r.drop_from.insert(a);
                        r.drop_to.insert(a);
                    }
                }
            }
            Fault::PartitionLeader => {
                r.drop_from.insert(l);
                r.drop_to.insert(l);
            }
            // The leader hears nobody: its proxy drops what peers send it
            // (their connections to it), theirs drop what they answer it.
            Fault::PartitionAsym if j == leader => {
                for k in (0..proxies.len()).filter(|&k| k != leader) {
                    if let Some(a) = real(k) {
                        r.drop_from.insert(a);
                    }
                }
            }
            Fault::PartitionAsym => {
                r.drop_to.insert(l);
            }
            // Each side drops the other side's packets, both ways.
            Fault::PartitionMinority => {
                let inside = minority.contains(&j);
                for k in (0..proxies.len()).filter(|k| minority.contains(k) != inside) {
                    if let Some(a) = real(k) {
                        r.drop_from.insert(a);
                        r.drop_to.insert(a);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The index (in `local.procs`) of the leader, as a master reports it.
/// The older ferry a rolling upgrade starts from, checked: it runs and says
/// its version.
fn older_binary(path: &Path) -> Result<PathBuf> {
    let path = path
        .canonicalize()
        .with_context(|| format!("--upgrade-from {}", path.display()))?;
    let out = std::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("--upgrade-from {}: cannot run it", path.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !version.starts_with("ferry") {
        bail!(
            "--upgrade-from {}: not a ferry binary (`--version` answered {:?})",
            path.display(),
            version.trim()
        );
    }
    eprintln!(
        "ferry chaos: masters start on {} ({}), rolling restarts bring them to this binary",
        path.display(),
        version.trim()
    );
    Ok(path)
}

/// Stops master `i` as an operator would (SIGTERM: it drains, then exits;
/// SIGKILL after 30 s), starts it again on this binary, and waits until it
/// answers with a leader known, for up to 30 s.
async fn restart_gracefully(local: &mut up::Local, i: usize, cfg: &Path) -> Result<()> {
    let p = &mut local.procs[i];
    if let Some(pid) = p.pid() {
        kill(pid, Signal::SIGTERM)?;
    }
    if let Some(mut child) = p.child.take() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                eprintln!(
                    "ferry chaos: {} did not exit within 30s of SIGTERM; killed",
                    p.name
                );
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    p.exe = None;
    p.child = Some(up::spawn(p, &[], Some(cfg))?);
    let addr = p.advertise.clone().unwrap_or_else(|| p.addr.clone());
    let client = client_of(&local.admin, &addr, 1000)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = client.status().await {
            if s.leader_addr.is_some() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer with a leader within 30s of its restart; see {}/master.log",
                local.procs[i].name,
                local.procs[i].data.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn leader_index(client: &Client, local: &up::Local) -> Option<usize> {
    let s = tokio::time::timeout(Duration::from_millis(1500), client.status())
        .await
        .ok()?
        .ok()?;
    let addr = s.leader_addr?;
    local
        .procs
        .iter()
        .position(|p| p.advertise.as_deref().unwrap_or(&p.addr) == addr)
}

/// From the fault at `at_ns`: milliseconds to the first leader of a higher
/// term seen before `until_ns` (the next fault), and to the first
/// acknowledged write invoked after it.
fn figures(ops: &[Op], leaders: &Leaders, at_ns: u64, until_ns: u64) -> (Option<f64>, Option<f64>) {
    let term_before = leaders
        .iter()
        .filter(|&&(t, _, _)| t <= at_ns)
        .map(|&(_, term, _)| term)
        .max()
        .unwrap_or(0);
    let ms = |t: u64| (t.saturating_sub(at_ns)) as f64 / 1e6;
    let leader = leaders
        .iter()
        .find(|&&(t, term, _)| t > at_ns && t < until_ns && term > term_before)
        .map(|&(t, _, _)| ms(t));
    let write = ops
        .iter()
        .filter(|o| o.kind != OpType::Read && o.outcome == Outcome::Ok && o.invoke_ns >= at_ns)
        .map(|o| o.complete_ns)
        .min()
        .map(ms);
    (leader, write)
}

/// The `q` quantile (nearest rank) of `v`.
fn percentile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Whether every master's own applied state of `prefix` reaches the
/// linearizable one (polled until `hard_end`, at most 20 s).
async fn converged(
    admin: &ClientConfig,
    masters: &[String],
    prefix: &str,
    client: &Client,
    hard_end: Instant,
) -> bool {
    let until = (Instant::now() + Duration::from_secs(20)).min(hard_end);
    let Some(want) = read_prefix(client, prefix, Consistency::Linearizable).await else {
        return false;
    };
    for addr in masters {
        let Ok(c) = client_of(admin, addr, 1000) else {
            return false;
        };
        loop {
            if read_prefix(&c, prefix, Consistency::Local).await.as_ref() == Some(&want) {
                break;
            }
            if Instant::now() > until {
                eprintln!("ferry chaos: {addr} did not converge");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    true
}

/// Every key under `prefix` with its `mod_revision` and value (`None`: no answer).
async fn read_prefix(
    c: &Client,
    prefix: &str,
    consistency: Consistency,
) -> Option<Vec<(String, u64, Vec<u8>)>> {
    let req = RangeRequest {
        prefix: prefix.to_string(),
        start_after: None,
        limit: 10_000,
        consistency,
    };
    match c.range(req).await {
        Ok(Ok(r)) => Some(
            r.kvs
                .into_iter()
                .map(|kv| (kv.key, kv.mod_revision, kv.value))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            process: 1,
            key: "k".into(),
            kind: OpType::Write,
            value: Some("v".into()),
            expect: None,
            invoke_ns: invoke,
            complete_ns: complete,
            outcome,
            result: None,
            revision: 1,
            error: None,
        }
    }

    #[test]
    fn figures_from_the_history() {
        let leaders = vec![(0, 1, 1), (5_000_000, 2, 2)];
        let ops = vec![
            w(0, 1_000_000, Outcome::Ok),
            // Invoked before the fault: does not count.
            w(500_000, 3_000_000, Outcome::Ok),
            w(2_500_000, 9_000_000, Outcome::Unknown),
            w(2_000_000, 7_000_000, Outcome::Ok),
        ];
        let (leader, write) = figures(&ops, &leaders, 1_000_000, u64::MAX);
        assert_eq!(leader, Some(4.0));
        assert_eq!(write, Some(6.0));
        // The leader change came after the next fault: not this one's.
        assert_eq!(
            figures(&ops, &leaders, 1_000_000, 4_000_000),
            (None, Some(6.0))
        );
        assert_eq!(figures(&ops, &leaders, 6_000_000, u64::MAX), (None, None));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "30x", "m2", "-3s", "1.5m"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn scenarios_name_their_faults() {
        assert_eq!(
            Scenario::KillLeader.faults(false, false),
            [Fault::KillLeader]
        );
        assert_eq!(
            Scenario::PauseLeader.faults(false, false),
            [Fault::StopLeader]
        );
        assert_eq!(
            Scenario::Asymmetric.faults(false, false),
            [Fault::PartitionAsym]
        );
        assert_eq!(Scenario::DiskStall.faults(false, false), [Fault::DiskStall]);
        assert_eq!(Scenario::ClockJump.faults(false, false), [Fault::ClockJump]);
        assert_eq!(
            Scenario::NodeLoss.faults(true, false),
            [Fault::KillNode, Fault::StopNode]
        );
        let mixed = Scenario::Mixed.faults(false, false);
        assert!(!mixed.iter().any(|f| f.node()), "{mixed:?}");
        assert!(mixed.contains(&Fault::DiskStall) && mixed.contains(&Fault::PartitionMinority));
        assert!(Scenario::Mixed
            .faults(true, false)
            .contains(&Fault::StopNode));
        assert!(!Scenario::Mixed
            .faults(true, false)
            .contains(&Fault::PartitionNode));
        assert!(Scenario::Mixed
            .faults(true, true)
            .contains(&Fault::PartitionNode));
        assert_eq!(
            Scenario::NodeLoss.faults(true, true),
            [Fault::KillNode, Fault::StopNode, Fault::PartitionNode]
        );
        assert!(Scenario::FlappingLeader.calm_ms().end <= 1000);
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&mut [], 0.5), None);
        let mut v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), Some(3.0));
        assert_eq!(percentile(&mut v, 0.99), Some(5.0));
    }
}
