//! `ferry node`: a worker node — joins with a bootstrap token (once), then runs
//! the node agent until SIGINT or SIGTERM (with `[shutdown]` in its node
//! config, SIGTERM first shuts the node down gracefully: its pods are
//! stopped and end `Failed`/`Terminated`); and `ferry shim`, the process that
//! runs each container for the process runtime. `ferry node --simulate N`
//! runs N hollow nodes instead (`ferry_node::hollow`), with the client config's
//! credentials.

use anyhow::{bail, Context, Result};
use ferry_api::token::BootstrapToken;
use ferry_node::{agent, join, node::Reserved};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Where the node keeps its credentials and its pods' directories.
    #[arg(long, required_unless_present = "simulate")]
    data_dir: Option<PathBuf>,
    /// Masters to join through (`host:port`, comma-separated); needed only
    /// until the node holds credentials.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`), needed for the first start only.
    #[arg(long, env = "FERRY_NODE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// The node's address (InternalIP; pods share it). Default 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    /// Lease renewal interval, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    lease_interval_ms: u64,
    /// Node status is written at least this often (seconds), and on change.
    #[arg(long, default_value_t = 60)]
    status_interval_secs: u64,
    /// Lifetime of the node's certificate, in days (renewed at two thirds).
    #[arg(long, default_value_t = 365)]
    cert_days: u64,
    /// CPU reserved for the system, in millicores.
    #[arg(long, default_value_t = 0)]
    reserved_cpu_millis: u64,
    /// Memory reserved for the system, in MiB.
    #[arg(long, default_value_t = 0)]
    reserved_memory_mib: u64,
    /// Pod networking: `auto` gives each pod its own network namespace and
    /// address when the node may (root), `host` makes pods share the node's.
    #[arg(long, default_value = "auto", value_parser = ["auto", "host"])]
    pod_network: String,
    /// The node's own config file (TOML): `[eviction]` thresholds, hard and
    /// soft (`memory_available = "100Mi"`, `nodefs_available = "10%"`,
    /// `pid_available`, as the kubelet's evictionHard/evictionSoft), their
    /// `minimum_reclaim` and `pressure_transition_period_secs`, and
    /// `[shutdown]` (graceful node shutdown on SIGTERM, also by pod
    /// priority; see config/examples/node.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "simulate")]
    node_config: Option<PathBuf>,
    /// Run N hollow nodes (`<name-prefix>-0` ..) in this process instead: they
    /// register, renew their Leases and report the pods bound to them Running
    /// and Ready without starting processes (as kubemark). They write every
    /// node's objects, so they use the client config (`--config`, e.g. `ferry
    /// up`'s admin.conf), not a join token.
    #[arg(long, value_name = "N", conflicts_with_all = ["data_dir", "join", "token", "name"])]
    simulate: Option<usize>,
    /// Name prefix of the hollow nodes.
    #[arg(long, default_value = "hollow", requires = "simulate")]
    name_prefix: String,
}

#[derive(clap::Args)]
pub struct ShimArgs {
    /// Where the exit status is recorded.
    #[arg(long)]
    exit_file: PathBuf,
    /// Where the command's output is recorded.
    #[arg(long)]
    log_file: PathBuf,
    /// The volumes to bind-mount (JSON).
    #[arg(long, default_value = "[]")]
    mounts: String,
    /// The cgroup.procs files to join (JSON).
    #[arg(long, default_value = "[]")]
    cgroups: String,
    /// The pod's network namespace to join (`/run/netns/...`).
    #[arg(long)]
    netns: Option<PathBuf>,
    /// The pod's hostname (set in a UTS namespace of its own).
    #[arg(long)]
    hostname: Option<String>,
    /// The FIFO that is the command's stdin (`stdin: true`).
    #[arg(long)]
    stdin_fifo: Option<PathBuf>,
    /// Close that stdin once the first attach leaves (`stdinOnce: true`).
    #[arg(long, requires = "stdin_fifo")]
    stdin_once: bool,
    /// Give the command a terminal (`tty: true`), its device's name written
    /// to this file.
    #[arg(long)]
    tty_file: Option<PathBuf>,
    /// Run the command as `UID:GID:GROUPS` (the container's securityContext).
    #[arg(long)]
    user: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

#[derive(clap::Args)]
pub struct NsenterArgs {
    /// The container's process.
    #[arg(long)]
    pid: i32,
    /// Its start time (clock ticks since boot), so a reused pid is refused.
    #[arg(long)]
    start_ticks: u64,
    /// The working directory for the command.
    #[arg(long)]
    workdir: PathBuf,
    /// The container's `cgroup.procs` files (JSON), joined first.
    #[arg(long, default_value = "[]")]
    cgroups: String,
    /// stdin is a terminal: the command leads a session with it as its
    /// controlling terminal (Ctrl-C and job control work).
    #[arg(long)]
    tty: bool,
    /// Run as `UID:GID:GROUPS` (the container's user).
    #[arg(long)]
    user: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

#[derive(clap::Args)]
pub struct RunasArgs {
    /// `UID:GID:GROUPS`.
    #[arg(long)]
    user: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

/// Becomes a container's user, then its command.
pub fn runas(a: RunasArgs) -> ExitCode {
    let Some(user) = ferry_node::runtime::User::parse(&a.user) else {
        eprintln!("bad --user {:?}", a.user);
        return ExitCode::from(126);
    };
    let code = ferry_node::runtime::runas(&user, &a.argv);
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Runs a command in a container's namespaces and cgroup (`ferry exec`).
pub fn nsenter(a: NsenterArgs) -> ExitCode {
    let cgroups: Vec<PathBuf> = match serde_json::from_str(&a.cgroups) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad --cgroups: {e}");
            return ExitCode::from(126);
        }
    };
    let user = match a
        .user
        .as_deref()
        .map(|u| ferry_node::runtime::User::parse(u).ok_or(u))
    {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(bad)) => {
            eprintln!("bad --user {bad:?}");
            return ExitCode::from(126);
        }
    };
    let code = ferry_node::runtime::nsenter(ferry_node::runtime::Enter {
        pid: a.pid,
        ticks: a.start_ticks,
        workdir: &a.workdir,
        cgroups: &cgroups,
        tty: a.tty,
        user: user.as_ref(),
        argv: &a.argv,
    });
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Runs a container's command (see `ferry_node::runtime`).
pub fn shim(a: ShimArgs) -> ExitCode {
    let code = ferry_node::runtime::shim(ferry_node::runtime::ShimRun {
        exit_file: &a.exit_file,
        log_file: &a.log_file,
        mounts: &a.mounts,
        cgroups: &a.cgroups,
        netns: a.netns.as_deref(),
        hostname: a.hostname.as_deref(),
        stdin: a.stdin_fifo.as_deref().map(|f| (f, a.stdin_once)),
        tty: a.tty_file.as_deref(),
        user: a.user.as_deref(),
        argv: &a.argv,
    });
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `ferry node --simulate N`: hollow nodes until SIGINT or SIGTERM (their
/// Nodes stay registered, and go NotReady once their Leases lapse).
async fn simulate(a: &Args, n: usize, config: Option<&std::path::Path>) -> Result<ExitCode> {
    if n == 0 || n > 50_000 {
        bail!("--simulate must be between 1 and 50000");
    }
    ferry_api::resources::check_dns_subdomain(
        "--name-prefix",
        &format!("{}-{}", a.name_prefix, n - 1),
    )?;
    let api = ferry_node::objects::Objects {
        client: crate::client::connect(config)?,
        // Hollow nodes run no containers: no service-account volumes.
        ca_pem: "".into(),
    };
    let opts = ferry_node::hollow::Options::new(
        &a.name_prefix,
        n,
        Duration::from_millis(a.lease_interval_ms.max(100)),
    );
    let start = std::time::Instant::now();
    let conns = ferry_node::hollow::Conns::new(vec![api])?;
    ferry_node::hollow::register(&conns, &opts).await?;
    tracing::info!(
        nodes = n,
        secs = start.elapsed().as_secs_f64(),
        "hollow nodes registered"
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut run = tokio::spawn(ferry_node::hollow::run(conns, opts, stop));
    let ended = tokio::select! {
        _ = crate::master::wait_for_signal() => {
            let _ = stop_tx.send(true);
            run.await
        }
        r = &mut run => r,
    };
    match ended {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(e),
        Err(e) => bail!("hollow nodes crashed: {e}"),
    }
}

pub async fn run(a: Args, config: Option<&std::path::Path>) -> Result<ExitCode> {
    if let Some(n) = a.simulate {
        return simulate(&a, n, config).await;
    }
    let data_dir = a.data_dir.clone().context("--data-dir is required")?;
    let node_config = match &a.node_config {
        Some(p) => ferry_config::NodeConfig::load(p)?,
        None => ferry_config::NodeConfig::default(),
    };
    let name = match &a.name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_else(|_| "node".into()),
    };
    // `FERRY_NODE_CERT_SECONDS` asks for a shorter life (tests of renewal;
    // masters issue no less than their minimum).
    let lifetime = match std::env::var("FERRY_NODE_CERT_SECONDS") {
        Ok(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("FERRY_NODE_CERT_SECONDS={s:?}: not a number of seconds")
        })?),
        Err(_) => Duration::from_secs(a.cert_days.max(1) * 86_400),
    };
    // Before anything reads or writes the dir: one a newer ferry made stays as it is.
    ferry_node::format::prepare(&data_dir)?;
    // One agent per data dir: two would run every pod twice.
    let _owner = crate::owner::own(
        &data_dir.join("agent.lock"),
        &format!("the node data dir {}", data_dir.display()),
        "another `ferry node` runs on it: stop it first",
    )?;
    crate::owner::end_with_parent();
    let cfg = match join::load(&data_dir)? {
        Some(cfg) => cfg,
        None => {
            let Some(token) = &a.token else {
                bail!(join::JoinError::NoToken {
                    dir: data_dir.clone()
                });
            };
            if a.join.is_empty() {
                bail!("--join ADDR is needed to join (the masters' QUIC addresses)");
            }
            let token = BootstrapToken::parse(token)?;
            let cfg = join::join(&a.join, &token, &name, lifetime).await?;
            join::store(&data_dir, &cfg)?;
            tracing::info!(node = %name, "joined the cluster");
            cfg
        }
    };
    let identity = ferry_api::tls::cert_identity(&cfg.client_cert)?;
    let ferry_api::tls::Identity::Node(cert_name) = identity else {
        bail!(
            "{} holds a certificate for {identity:?}, not a node",
            data_dir.display()
        );
    };
    if cert_name != name && a.name.is_some() {
        bail!(
            "{} holds the credentials of node {cert_name:?}, not {name:?}",
            data_dir.display()
        );
    }
    let opts = agent::Options {
        data_dir: data_dir.clone(),
        name: cert_name,
        address: a.address,
        lease_interval: Duration::from_millis(a.lease_interval_ms.max(100)),
        lease_duration: Duration::from_millis(a.lease_interval_ms.max(100) * 4)
            .max(Duration::from_secs(1)),
        status_interval: Duration::from_secs(a.status_interval_secs.max(1)),
        reserved: Reserved {
            cpu_millis: a.reserved_cpu_millis,
            memory: a.reserved_memory_mib << 20,
        },
        cert_lifetime: lifetime,
        shim: std::env::current_exe().context("the ferry binary's path")?,
        host_network_only: a.pod_network == "host",
        eviction: node_config.eviction,
        shutdown: node_config.shutdown.clone(),
    };
    let graceful = !node_config.shutdown.groups().is_empty();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let mut agent = tokio::spawn(agent::run(opts, cfg, stop, shutdown));
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let ended = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                // Pods keep running: a restarted agent re-adopts them.
                let _ = stop_tx.send(true);
                break agent.await;
            }
            _ = term.recv() => {
                if graceful && !*shutdown_tx.borrow() {
                    // The node shuts down: its pods stop, then the agent ends.
                    tracing::info!("SIGTERM: graceful node shutdown (SIGINT stops the agent and leaves pods running)");
                    let _ = shutdown_tx.send(true);
                } else {
                    // Pods keep running: a restarted agent re-adopts them.
                    let _ = stop_tx.send(true);
                    break agent.await;
                }
            }
            r = &mut agent => break r,
        }
    };
    match ended {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(e),
        Err(e) => bail!("node agent crashed: {e}"),
    }
}
