//! `ferry up`: a local HA cluster of real `ferry master` processes on loopback.
//!
//! Starts the first master with `--init`, the others with `--join`, waits until
//! every master is a voter and namespace `default` exists, writes the admin
//! client config, then starts `--nodes` worker nodes (`ferry node`, joined with
//! a fresh bootstrap token, each on its own loopback address 127.0.1.N) and
//! waits until they are Ready. Then it supervises: a master or node that dies
//! is reported and restarted on the same data dir — except a master that
//! stopped because it was removed from the cluster (exit code
//! [`crate::master::EXIT_REMOVED`]), which is reported once and left stopped. Ctrl-C or SIGTERM stops
//! every process it started, and the pods its nodes ran.

use crate::client::ferry_home;
use anyhow::{bail, Context, Result};
use ferry_actors::master::identity::{create_private_dir, write_private, DataDir};
use ferry_api::proto::Consistency;
use ferry_api::token::BootstrapToken;
use ferry_api::Client;
use ferry_config::ClientConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Number of masters (odd, 1-7).
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Number of worker nodes (0-50), each a `ferry node` process.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Directory for data dirs, logs and admin.conf (default ~/.ferry/local).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// UDP port of the first master; the others use the following ports.
    #[arg(long, default_value_t = 7100)]
    port: u16,
    /// TCP port of the Kubernetes REST API (HTTPS): `ferry up` listens on
    /// 127.0.0.1:PORT and forwards each connection to a live master; the masters
    /// serve HTTPS on the following ports.
    #[arg(long, default_value_t = 6443)]
    https_port: u16,
    /// Allow an even number of masters.
    #[arg(long)]
    force: bool,
    /// The nodes' own config file (`ferry node --node-config`): eviction
    /// thresholds and graceful shutdown, checked before anything starts.
    #[arg(long, value_name = "FILE")]
    node_config: Option<PathBuf>,
    /// The cluster CIDR node pod ranges come from (the masters'
    /// `network.cluster_cidr`; default 10.42.0.0/16: 256 nodes of /24). It
    /// goes, with the master config given (`ferry --config FILE up`), into
    /// `<dir>/master.toml` for the masters; give it at every start.
    #[arg(long, value_name = "CIDR")]
    cluster_cidr: Option<ferry_api::network::Cidr>,
}

/// Writes `<dir>/master.toml`: the master config `base` (else the defaults)
/// with `network.cluster_cidr` set; checked as a master would load it.
fn with_cluster_cidr(
    dir: &Path,
    base: Option<&Path>,
    cidr: ferry_api::network::Cidr,
) -> Result<PathBuf> {
    let mut doc: toml::Table = match base {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading {}", p.display()))?
            .parse()
            .with_context(|| format!("{} is not TOML", p.display()))?,
        None => toml::Table::new(),
    };
    let net = doc
        .entry("network")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(net) = net.as_table_mut() else {
        bail!("the master config's `network` is not a table ([network])");
    };
    net.insert("cluster_cidr".into(), toml::Value::String(cidr.to_string()));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("master.toml");
    write_private(&path, toml::to_string(&doc)?.as_bytes())?;
    ferry_config::MasterConfig::load(&path).context("--cluster-cidr")?;
    Ok(path)
}

/// One master or node process `ferry up` (or `ferry bench failover`) runs.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) data: PathBuf,
    /// A master's QUIC address, or a node's own address.
    pub(crate) addr: String,
    /// A master's HTTPS address, when not the default (its QUIC address over TCP).
    pub(crate) https: Option<String>,
    /// The address a master advertises to peers and clients, when not `addr`
    /// (`ferry chaos` puts a fault proxy there).
    pub(crate) advertise: Option<String>,
    /// A master's fault directory (`ferry chaos`): it runs with
    /// `FERRY_FAULT_DIR` (disk stalls) and `FERRY_CLOCK_OFFSET_FILE`
    /// (`<dir>/clock-offset`) pointing there.
    pub(crate) fault_dir: Option<PathBuf>,
    /// Runtime threads: the masters share this machine's cores (0: a node).
    workers: usize,
    pub(crate) child: Option<Child>,
    /// A master of a cluster someone else started (`ferry chaos --config`):
    /// its process on this machine, if found; never restarted or stopped.
    pub(crate) external_pid: Option<i32>,
    /// Where this start's output begins in master.log (it is appended to).
    log_from: u64,
    /// The binary it runs, when not this one (`ferry chaos --upgrade-from`
    /// starts masters on an older ferry).
    pub(crate) exe: Option<PathBuf>,
}

/// How [`start_advertised`] starts the masters beyond their addresses.
#[derive(Default)]
pub(crate) struct Extras {
    /// Each master with a fault directory `<dir>/m<i>-faults` ([`Proc::fault_dir`]).
    pub(crate) fault_dirs: bool,
    /// The binary the masters start on (default: this one).
    pub(crate) exe: Option<PathBuf>,
}

/// A local cluster, started and healthy.
pub(crate) struct Local {
    pub(crate) procs: Vec<Proc>,
    pub(crate) admin: ferry_config::ClientConfig,
    pub(crate) admin_path: PathBuf,
    pub(crate) masters: Vec<String>,
    pub(crate) leader: u64,
    /// What a master that lost its data dir would need to join again.
    pub(crate) join_args: Vec<String>,
}

impl Proc {
    /// A master someone else started, at `addr`, its process `pid` if local.
    pub(crate) fn external(name: String, addr: String, pid: Option<i32>) -> Proc {
        Proc {
            name,
            data: PathBuf::new(),
            addr,
            https: None,
            advertise: None,
            fault_dir: None,
            workers: 1,
            child: None,
            external_pid: pid,
            log_from: 0,
            exe: None,
        }
    }

    /// Its process: the one started here, else the external one.
    pub(crate) fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .map(|c| Pid::from_raw(c.id() as i32))
            .or(self.external_pid.map(Pid::from_raw))
    }

    fn is_node(&self) -> bool {
        self.workers == 0
    }

    fn log(&self) -> PathBuf {
        self.data.join(if self.is_node() {
            "node.log"
        } else {
            "master.log"
        })
    }

    /// What it is, for messages.
    fn what(&self) -> &'static str {
        if self.is_node() {
            "node"
        } else {
            "master"
        }
    }
}

/// The clock offset file in a master's fault directory.
pub(crate) const CLOCK_OFFSET: &str = "clock-offset";

/// Starts `p`; `cfg` is its config file: a master's `--config`, a node's
/// `--node-config`.
pub(crate) fn spawn(p: &mut Proc, extra: &[String], cfg: Option<&Path>) -> Result<Child> {
    let exe = match &p.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().context("locating the ferry binary")?,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.log())
        .with_context(|| format!("opening {}", p.log().display()))?;
    p.log_from = log.metadata().map_or(0, |m| m.len());
    let mut cmd = Command::new(exe);
    if p.is_node() {
        cmd.args(node_args(p, cfg));
    } else {
        cmd.arg("master")
            .arg("--data-dir")
            .arg(&p.data)
            .arg("--listen")
            .arg(&p.addr)
            .arg("--worker-threads")
            .arg(p.workers.to_string());
        if let Some(h) = &p.https {
            cmd.arg("--https-listen").arg(h);
        }
        if let Some(a) = &p.advertise {
            cmd.arg("--advertise").arg(a);
        }
        if let Some(c) = cfg {
            cmd.arg("--config").arg(c);
        }
        if let Some(d) = &p.fault_dir {
            cmd.env(ferry_raft::fault::FAULT_DIR_ENV, d)
                .env(ferry_api::clock::OFFSET_FILE_ENV, d.join(CLOCK_OFFSET));
        }
    }
    // It stops once this process is gone (`owner::end_with_parent`).
    cmd.args(extra)
        .env(crate::owner::PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    cmd.spawn().with_context(|| format!("starting {}", p.name))
}

/// A node's `ferry node` arguments: its data dir, name, address and node
/// config.
fn node_args(p: &Proc, cfg: Option<&Path>) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![
        "node".into(),
        "--data-dir".into(),
        p.data.clone().into(),
        "--name".into(),
        p.name.clone().into(),
        "--address".into(),
        p.addr.clone().into(),
    ];
    if let Some(c) = cfg {
        v.push("--node-config".into());
        v.push(c.into());
    }
    v
}

/// The last error a master logged in this start's part of its master.log (else
/// its last line).
fn last_error(p: &Proc) -> String {
    let text = std::fs::read(p.log()).unwrap_or_default();
    let from = (p.log_from as usize).min(text.len());
    let text = String::from_utf8_lossy(&text[from..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("error") || l.contains("ERROR"))
        .or(lines.last())
        .map_or_else(|| "(nothing logged)".to_string(), |l| l.trim().to_string())
}

/// Fails, naming the master and its last error, if a master has exited
/// (while the cluster comes up, a master that exits is not restarted).
fn check_running(procs: &mut [Proc]) -> Result<()> {
    for p in procs.iter_mut() {
        let Some(child) = p.child.as_mut() else {
            continue;
        };
        if let Ok(Some(status)) = child.try_wait() {
            p.child = None;
            bail!(
                "{} {} exited during start-up ({status}): {}\n  (log: {})",
                p.what(),
                p.name,
                last_error(p),
                p.log().display()
            );
        }
    }
    Ok(())
}

pub(crate) fn stop_all(procs: &mut [Proc]) {
    stop_all_within(procs, Duration::from_secs(10))
}

/// SIGTERM to each, then SIGKILL to those still running after `grace`.
pub(crate) fn stop_all_within(procs: &mut [Proc], grace: Duration) {
    for p in procs.iter() {
        if let Some(c) = &p.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    for p in procs.iter_mut() {
        if let Some(mut c) = p.child.take() {
            loop {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

async fn wait_healthy(
    client: &Client,
    procs: &mut [Proc],
    want: usize,
    all_voters: bool,
) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::from("no answer yet");
    let default_ns = ferry_api::resources::by_cli_name("namespaces")
        .expect("namespaces are served")
        .key(None, Some("default"));
    while Instant::now() < deadline {
        check_running(procs)?;
        match client.status().await {
            Ok(s) => {
                let voters = s.members.iter().filter(|m| m.voter).count();
                if let Some(l) = s.leader {
                    if s.members.len() == want && (!all_voters || voters == want) {
                        // Like kube-apiserver's bootstrap hook: `up` is done once the
                        // leader's controllers have created the default namespaces,
                        // so a manifest applied right after it finds `default`.
                        match client.get(&default_ns, Consistency::Linearizable).await {
                            Ok(Some(_)) => return Ok(l),
                            Ok(None) => last = "namespace default not created yet".into(),
                            Err(e) => last = e.to_string(),
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                last = format!(
                    "{} members, {voters} voters, leader {:?}",
                    s.members.len(),
                    s.leader
                );
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("cluster did not become healthy within 90s: {last}")
}

pub async fn run(a: Args, master_cfg: Option<PathBuf>) -> Result<ExitCode> {
    if a.nodes > 50 {
        bail!("--nodes must be between 0 and 50");
    }
    if a.masters == 0 || a.masters > 7 {
        bail!("--masters must be between 1 and 7");
    }
    if a.masters.is_multiple_of(2) && !a.force {
        bail!("--masters {}: an even number of masters tolerates no more failures than one fewer; pass --force to do it anyway", a.masters);
    }
    // A bad node config is reported before anything starts; the nodes get
    // it as an absolute path (they run in their own data dirs).
    let node_cfg = match &a.node_config {
        Some(p) => {
            let loaded = ferry_config::NodeConfig::load(p)
                .map_err(|e| anyhow::anyhow!("--node-config: {e}"))?;
            Some((std::path::absolute(p)?, loaded))
        }
        None => None,
    };
    let node_cfg_path = node_cfg.as_ref().map(|(p, _)| p.as_path());
    let dir = a.dir.clone().unwrap_or_else(|| ferry_home().join("local"));
    create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // One `ferry up` per cluster dir: a second would restart masters that
    // find their ports and stores taken, again and again.
    let _owner = crate::owner::own(
        &dir.join("up.lock"),
        &format!("the local cluster in {}", dir.display()),
        "stop that `ferry up` first (Ctrl-C), or pass another --dir",
    )?;
    let master_cfg = match a.cluster_cidr {
        Some(c) => Some(with_cluster_cidr(&dir, master_cfg.as_deref(), c)?),
        None => master_cfg,
    };
    let cfg = master_cfg.as_deref();
    let https_addr = std::net::SocketAddr::from(([127, 0, 0, 1], a.https_port));
    // Bound before any master starts: a taken port is reported at once.
    let front = tokio::net::TcpListener::bind(https_addr)
        .await
        .with_context(|| format!("binding {https_addr} for the Kubernetes API (pass --https-port to use another port)"))?;
    let mut local = start(&dir, a.masters, a.port, Some(a.https_port), a.force, cfg).await?;
    local.admin.api_server = Some(format!("https://{https_addr}"));
    write_private(&local.admin_path, local.admin.to_toml().as_bytes())?;
    let backends: Vec<String> = local.procs.iter().filter_map(|p| p.https.clone()).collect();
    let first = Arc::new(AtomicUsize::new(0));
    tokio::spawn(follow_leader(
        local.admin.clone(),
        local.admin_path.clone(),
        local.masters.clone(),
        first.clone(),
    ));
    tokio::spawn(forward(front, backends, first));
    let kubeconfig = dir.join("kubeconfig");
    write_private(
        &kubeconfig,
        ferry_api::kubeconfig::render(
            &format!("https://{https_addr}"),
            &local.admin.ca_cert,
            &local.admin.client_cert,
            &local.admin.client_key,
            "admin",
        )
        .as_bytes(),
    )?;
    let (admin, admin_path, masters, leader) = (
        local.admin.clone(),
        local.admin_path.clone(),
        local.masters.clone(),
        local.leader,
    );
    let nodes = match start_nodes(&dir, a.nodes, &local, node_cfg_path).await {
        Ok(n) => n,
        Err(e) => {
            stop_all(&mut local.procs);
            return Err(e);
        }
    };
    let (mut node_procs, join_token) = nodes;
    let home_cfg = ferry_home().join("config");
    if !home_cfg.exists() {
        create_private_dir(&ferry_home())?;
        write_private(&home_cfg, admin.to_toml().as_bytes())?;
    }
    outln!(
        "ferry: local cluster of {} masters is up (leader: master {leader})",
        a.masters
    );
    outln!("  masters:      {}", masters.join(", "));
    outln!("  admin config: {}", admin_path.display());
    outln!(
        "  kubectl:      kubectl --kubeconfig {} get nodes   (https://{https_addr})",
        kubeconfig.display()
    );
    outln!(
        "  try:          ferry --config {} cluster status",
        admin_path.display()
    );
    outln!(
        "                ferry --config {} kv put hello world",
        admin_path.display()
    );
    if !node_procs.is_empty() {
        let names: Vec<&str> = node_procs.iter().map(|p| p.name.as_str()).collect();
        outln!("  nodes:        {} (Ready)", names.join(", "));
    }
    outln!(
        "  logs:         {}/m*/master.log, {}/n*/node.log",
        dir.display(),
        dir.display()
    );
    outln!(
        "  join a node:  {}",
        crate::token::join_command(&join_token, &masters)
    );
    outln!("  Ctrl-C stops the cluster.");
    let node_join: Vec<String> = Vec::new();
    let stop = crate::master::wait_for_signal();
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => {}
        _ = supervise(&mut local.procs, cfg, &local.join_args) => {}
        _ = supervise(&mut node_procs, node_cfg_path, &node_join) => {}
    }
    outln!("ferry: stopping");
    // Nodes with a graceful shutdown get its time to stop their pods.
    let shutdown = node_cfg
        .as_ref()
        .map_or(0, |(_, c)| c.shutdown.total_secs());
    stop_all_within(
        &mut node_procs,
        Duration::from_secs(10).max(Duration::from_secs(shutdown + 5)),
    );
    for p in &node_procs {
        ferry_node::runtime::kill_all(&p.data.join("pods"));
        // The node stops with its pods: nothing of its network stays (its
        // agent removed its proxy table on stop; again here if it was killed).
        let key = ferry_node::net::host_key_in(&p.data, &p.name);
        let _ = ferry_node::net::proxy::delete_table(&key);
        if let Err(e) = ferry_node::net::podnet::teardown_node(&p.data, &key) {
            tracing::warn!(node = %p.name, error = %e, "removing the node's pod network failed");
        }
    }
    stop_all(&mut local.procs);
    Ok(ExitCode::SUCCESS)
}

/// Starts `n` nodes `n1..nN` in `dir` (joined with a fresh token where they have
/// no credentials yet) and waits until each is Ready. Returns them and a token
/// (valid a day) for the join command `up` prints.
async fn start_nodes(
    dir: &Path,
    n: usize,
    local: &Local,
    node_cfg: Option<&Path>,
) -> Result<(Vec<Proc>, BootstrapToken)> {
    let api = crate::objects::api::Api {
        client: std::sync::Arc::new(Client::new(&local.admin)?),
    };
    let token = crate::master::node_token(&local.admin)
        .await
        .context("creating the nodes' bootstrap token")?;
    let mut procs: Vec<Proc> = (1..=n)
        .map(|i| Proc {
            name: format!("n{i}"),
            data: dir.join(format!("n{i}")),
            addr: format!("127.0.1.{i}"),
            https: None,
            workers: 0,
            child: None,
            external_pid: None,
            advertise: None,
            fault_dir: None,
            log_from: 0,
            exe: None,
        })
        .collect();
    for p in procs.iter_mut() {
        create_private_dir(&p.data)?;
        let args = if p.data.join(ferry_node::join::NODE_CONF).exists() {
            vec![]
        } else {
            vec![
                "--join".to_string(),
                local.masters.join(","),
                "--token".to_string(),
                token.to_string(),
            ]
        };
        p.child = Some(spawn(p, &args, node_cfg)?);
    }
    let nodes = ferry_api::resources::by_cli_name("nodes").expect("served");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(e) = check_running(&mut procs) {
            stop_all(&mut procs);
            return Err(e);
        }
        let mut waiting = Vec::new();
        for p in &procs {
            let ready = api
                .get(nodes, None, &p.name)
                .await
                .ok()
                .flatten()
                .and_then(|n| {
                    n.pointer("/status/conditions")?
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready")
                        .map(|c| c["status"] == "True")
                })
                .unwrap_or(false);
            if !ready {
                waiting.push(p.name.clone());
            }
        }
        if waiting.is_empty() {
            return Ok((procs, token));
        }
        if Instant::now() > deadline {
            stop_all(&mut procs);
            bail!(
                "nodes {} did not become Ready within 60s; see {}/n*/node.log",
                waiting.join(", "),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts (or restarts) a local cluster of `n` masters in `dir` on UDP ports
/// from `port` (HTTPS on TCP ports after `https_port`, else on their QUIC
/// address over TCP), and waits until it is healthy: every master a voter (unless the
/// count is even without `force`), namespace `default` created.
pub(crate) async fn start(
    dir: &Path,
    n: usize,
    port: u16,
    https_port: Option<u16>,
    force: bool,
    master_cfg: Option<&Path>,
) -> Result<Local> {
    start_advertised(
        dir,
        n,
        port,
        https_port,
        force,
        master_cfg,
        None,
        Extras::default(),
    )
    .await
}

/// [`start`], each master advertising the address of `advertise` at its index
/// (peers, clients and joins use those), started as `extras` says.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_advertised(
    dir: &Path,
    n: usize,
    port: u16,
    https_port: Option<u16>,
    force: bool,
    master_cfg: Option<&Path>,
    advertise: Option<Vec<String>>,
    extras: Extras,
) -> Result<Local> {
    create_private_dir(dir)?;
    // Masters on one machine compete for its cores: more runtime threads than
    // cores only adds cross-thread wakeups to every request's path.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = (cores / n).max(1);
    let mut procs: Vec<Proc> = (1..=n)
        .map(|i| Proc {
            name: format!("m{i}"),
            data: dir.join(format!("m{i}")),
            addr: format!("127.0.0.1:{}", port as usize + i - 1),
            https: https_port.map(|p| format!("127.0.0.1:{}", p as usize + i)),
            workers,
            child: None,
            external_pid: None,
            advertise: advertise.as_ref().map(|a| a[i - 1].clone()),
            fault_dir: extras.fault_dirs.then(|| dir.join(format!("m{i}-faults"))),
            log_from: 0,
            exe: extras.exe.clone(),
        })
        .collect();
    for p in &procs {
        create_private_dir(&p.data)?;
        if let Some(d) = &p.fault_dir {
            std::fs::create_dir_all(d)?;
        }
    }
    let masters: Vec<String> = procs
        .iter()
        .map(|p| p.advertise.clone().unwrap_or_else(|| p.addr.clone()))
        .collect();
    let cfg = master_cfg;
    let is_setup = |p: &Proc| p.data.join("identity.toml").exists();

    let first_args = if is_setup(&procs[0]) {
        vec![]
    } else {
        vec!["--init".to_string()]
    };
    procs[0].child = Some(spawn(&mut procs[0], &first_args, cfg)?);
    let token_file = procs[0].data.join("join-token");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !procs[0].data.join("identity.toml").exists() || !token_file.exists() {
        if let Err(e) = check_running(&mut procs) {
            stop_all(&mut procs);
            return Err(e);
        }
        if Instant::now() > deadline {
            stop_all(&mut procs);
            bail!(
                "m1 did not set up within 30s; see {}/master.log",
                procs[0].data.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = std::fs::read_to_string(&token_file)?.trim().to_string();
    let join_args = |force: bool| {
        let mut v = vec![
            "--join".to_string(),
            masters[0].clone(),
            "--token".to_string(),
            token.clone(),
        ];
        if force {
            v.push("--force".into());
        }
        v
    };
    let admin = DataDir::new(&procs[0].data)
        .and_then(|d| ferry_actors::master::admin_config(&d, &masters))?;
    let admin_path = dir.join("admin.conf");
    write_private(&admin_path, admin.to_toml().as_bytes())?;
    let client = Client::new(&admin)?;
    // A new m1 leads alone before others join; a restarted cluster needs its quorum first.
    if !first_args.is_empty() {
        if let Err(e) = wait_healthy(&client, &mut procs, 1, true).await {
            stop_all(&mut procs);
            return Err(e);
        }
    }
    for p in procs.iter_mut().skip(1) {
        let args = if is_setup(p) {
            vec![]
        } else {
            join_args(force)
        };
        p.child = Some(spawn(p, &args, cfg)?);
    }
    let leader = match wait_healthy(&client, &mut procs, n, !n.is_multiple_of(2) || force).await {
        Ok(l) => l,
        Err(e) => {
            stop_all(&mut procs);
            return Err(e);
        }
    };
    let join_args = join_args(force);
    Ok(Local {
        procs,
        admin,
        admin_path,
        masters,
        leader,
        join_args,
    })
}

/// Keeps `first` at the index of the Raft leader among `masters` (checked
/// every second), so the local endpoint forwards to the leader and writes skip
/// a follower's forwarding hop.
/// Every second, the leader's index in `masters` into `first`, asked with
/// the admin config; when asking fails and `admin_path` holds other
/// credentials (`ferry ca rotate` rewrote it), with those from then on.
async fn follow_leader(
    mut admin: ClientConfig,
    admin_path: PathBuf,
    masters: Vec<String>,
    first: Arc<AtomicUsize>,
) {
    let mut client = match Client::new(&admin) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("ferry up: not following the leader: {e}");
            return;
        }
    };
    loop {
        match client.status().await {
            Ok(s) => {
                if let Some(i) = s
                    .leader_addr
                    .and_then(|l| masters.iter().position(|m| *m == l))
                {
                    first.store(i, Ordering::Relaxed);
                }
            }
            Err(_) => {
                if let Ok(now) = ClientConfig::load(&admin_path) {
                    if now.ca_cert != admin.ca_cert || now.client_cert != admin.client_cert {
                        if let Ok(c) = Client::new(&now) {
                            (client, admin) = (c, now);
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The local Kubernetes API endpoint: forwards each TCP connection to the
/// first master, from `first` (the leader, when known) on, that accepts it
/// within half a second, so one kubeconfig server survives a master's death
/// (TLS ends at the master; every master's certificate names 127.0.0.1).
async fn forward(front: tokio::net::TcpListener, backends: Vec<String>, first: Arc<AtomicUsize>) {
    loop {
        let Ok((mut client, _)) = front.accept().await else {
            continue;
        };
        let (backends, first) = (backends.clone(), first.clone());
        tokio::spawn(async move {
            let start = first.load(Ordering::Relaxed);
            for k in 0..backends.len() {
                let i = (start + k) % backends.len();
                let connect = tokio::net::TcpStream::connect(&backends[i]);
                if let Ok(Ok(mut server)) =
                    tokio::time::timeout(Duration::from_millis(500), connect).await
                {
                    let _ = server.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    // 64 KiB buffers: fewer syscalls per request than tokio's 8 KiB.
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut client,
                        &mut server,
                        64 * 1024,
                        64 * 1024,
                    )
                    .await;
                    return;
                }
            }
        });
    }
}

/// Restarts any process of `procs` that exits (runs until cancelled).
async fn supervise(procs: &mut [Proc], cfg: Option<&Path>, join_args: &[String]) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for p in procs.iter_mut() {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let pid = child.id();
            if !p.is_node() && status.code() == Some(i32::from(crate::master::EXIT_REMOVED)) {
                // Started again it would only find that out again, forever.
                eprintln!(
                    "ferry up: master {} (pid {pid}) was removed from the cluster and stopped \
                     (exit code {}); not restarting it (see {})",
                    p.name,
                    crate::master::EXIT_REMOVED,
                    p.log().display()
                );
                p.child = None;
                continue;
            }
            eprintln!(
                "ferry up: {} {} (pid {pid}) exited ({status}); restarting it",
                p.what(),
                p.name,
            );
            let set_up = p.data.join("identity.toml").exists()
                || p.data.join(ferry_node::join::NODE_CONF).exists();
            let args = if set_up { vec![] } else { join_args.to_vec() };
            match spawn(p, &args, cfg) {
                Ok(c) => {
                    eprintln!(
                        "ferry up: {} {} restarted (pid {})",
                        p.what(),
                        p.name,
                        c.id()
                    );
                    p.child = Some(c);
                }
                Err(e) => {
                    eprintln!("ferry up: restarting {} failed: {e:#}", p.name);
                    p.child = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_started_with_the_node_config() {
        let mut p = Proc::external("n1".into(), "127.0.1.1".into(), None);
        p.workers = 0;
        p.data = PathBuf::from("/d/n1");
        let args = |cfg: Option<&Path>| -> Vec<String> {
            node_args(&p, cfg)
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            args(Some(Path::new("/etc/ferry/node.toml"))),
            [
                "node",
                "--data-dir",
                "/d/n1",
                "--name",
                "n1",
                "--address",
                "127.0.1.1",
                "--node-config",
                "/etc/ferry/node.toml"
            ]
        );
        assert!(!args(None).iter().any(|a| a == "--node-config"));
    }

    #[test]
    fn the_cluster_cidr_flag_goes_into_the_masters_config_with_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        std::fs::write(
            &base,
            "event_ttl_seconds = 600\n[network]\nnode_cidr_prefix = 26\n",
        )
        .unwrap();
        let wide: ferry_api::network::Cidr = "10.64.0.0/11".parse().unwrap();
        let p = with_cluster_cidr(&dir.path().join("up"), Some(&base), wide).unwrap();
        let cfg = ferry_config::MasterConfig::load(&p).unwrap();
        assert_eq!(cfg.network.cluster_cidr, wide);
        assert_eq!(cfg.network.node_cidr_prefix, 26);
        assert_eq!(cfg.network.cluster_cidr.subnets(24), 8192);
        // Without a base: the defaults and the flag.
        let p = with_cluster_cidr(dir.path(), None, wide).unwrap();
        assert_eq!(
            ferry_config::MasterConfig::load(&p)
                .unwrap()
                .network
                .cluster_cidr,
            wide
        );
        // A range that overlaps the service CIDR is refused, naming both.
        let bad: ferry_api::network::Cidr = "10.32.0.0/11".parse().unwrap();
        let e = format!(
            "{:#}",
            with_cluster_cidr(dir.path(), None, bad).unwrap_err()
        );
        assert!(
            e.contains("--cluster-cidr") && e.contains("service_cidr"),
            "{e}"
        );
    }
}
