//! `ferry`: one binary for masters, the local cluster, the CLI and the benchmarks.
//!
//! Layout:
//! - [`master`]: `ferry master` — run one master.
//! - [`up`]: `ferry up` — a local HA cluster of real processes, supervised.
//! - [`kv`]: `ferry kv` — etcdctl-like access to the raw store (admin only).
//! - [`cluster`]: `ferry cluster status|remove`, `ferry api-resources`.
//! - [`ca`]: `ferry ca status|rotate --step trust|reissue|drop` — the cluster CA's rotation.
//! - [`objects`]: `ferry get|describe|create|apply|delete|scale|label|annotate|patch|edit|explain`,
//!   `ferry config view`, `ferry completion` — Kubernetes objects over QUIC.
//! - [`printers`]: tables, `-o` formats, describe and explain text.
//! - [`snapshot`]: `ferry snapshot save|status` — backups of the store.
//! - [`bench`]: `ferry bench store|api|http|failover|scheduler|startup|nodes|proxy|watch`
//!   ([`failover`]: leader kills, measured; [`podbench`]: scheduling and pod startup, timed;
//!   [`watchbench`]: field-selected pod watches' fan-out).
//! - [`chaos`]: `ferry chaos` — seeded faults against a local cluster, a linearizability
//!   checker, `ferry chaos check FILE`.
//! - [`client`]: finding and loading the client config.
//! - [`output`]: stdout that survives a closed pipe.
//! - [`printers`]: what `get`, `describe` and `explain` print (kubectl's formats).

/// mimalloc: the store allocates and frees many small buffers per request;
/// glibc malloc spent ~20% of a master's CPU under load. Built with `no_thp`:
/// mimalloc 3 otherwise madvises its arenas into transparent huge pages, and the
/// kernel spent ~13% of a follower's CPU zeroing 2 MiB pages faulted back in
/// after each purge.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[macro_use]
mod output;
mod bench;
mod ca;
mod chaos;
mod client;
mod cluster;
mod exec;
mod failover;
mod kubeconfig;
mod kv;
mod logs;
mod master;
mod node;
mod objects;
mod owner;
mod podbench;
mod portforward;
mod printers;
mod proxybench;
mod snapshot;
mod token;
mod up;
mod watchbench;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// ferry: a Kubernetes-style orchestrator with an embedded Raft store.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
pub(crate) struct Cli {
    /// Config file: the client config (default: $FERRY_CONFIG, then ~/.ferry/config);
    /// for `ferry master`, the master config.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Namespace for object commands (default: `default`).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Act as this user (or `system:serviceaccount:NS:NAME`) for object
    /// requests, as kubectl's `--as`: needs `impersonate` on it.
    #[arg(long = "as", global = true, value_name = "USER")]
    as_user: Option<String>,
    /// A group to act as (repeatable), with `--as`.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    as_group: Vec<String>,
    /// The uid to act as, with `--as`.
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    as_uid: Option<String>,
    /// An extra attribute to act with, `KEY=VALUE` (repeatable), with `--as`.
    #[arg(long = "as-user-extra", global = true, value_name = "KEY=VALUE")]
    as_user_extra: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whom `--as`, `--as-group`, `--as-uid` and `--as-user-extra` ask to act as.
    fn acting_as(&self) -> anyhow::Result<ferry_api::proto::Impersonate> {
        let mut extra = Vec::new();
        for e in &self.as_user_extra {
            let Some((k, v)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                anyhow::bail!("--as-user-extra {e:?}: expected KEY=VALUE");
            };
            extra.push((k.to_string(), v.to_string()));
        }
        let as_ = ferry_api::proto::Impersonate {
            user: self.as_user.clone(),
            groups: self.as_group.clone(),
            uid: self.as_uid.clone(),
            extra,
        };
        if !as_.is_empty() && as_.user.as_deref().unwrap_or_default().is_empty() {
            anyhow::bail!("--as-group, --as-uid and --as-user-extra need --as USER");
        }
        let local = matches!(
            self.command,
            Command::Master(_)
                | Command::Up(_)
                | Command::Node(_)
                | Command::Shim(_)
                | Command::Nsenter(_)
                | Command::Runas(_)
                | Command::Echo(_)
                | Command::Chaos(_)
                | Command::Bench(_)
                | Command::ApiResources
        );
        if !as_.is_empty() && local {
            anyhow::bail!("--as applies to commands that send object requests (get, create, apply, delete, ...), not to this one");
        }
        Ok(as_)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one master.
    Master(master::Args),
    /// Run a worker node: join with a bootstrap token, then run pods bound to it.
    Node(node::Args),
    /// Run one container's command for the process runtime (started by `ferry node`).
    #[command(hide = true)]
    Shim(node::ShimArgs),
    /// Run a command in a container's mount namespace (started by `ferry node` for exec).
    #[command(hide = true)]
    Nsenter(node::NsenterArgs),
    /// Become a container's user, then run its command (started by `ferry shim`).
    #[command(hide = true)]
    Runas(node::RunasArgs),
    /// A TCP echo server (the pod `ferry bench proxy` measures through).
    #[command(hide = true)]
    Echo(proxybench::EchoArgs),
    /// Start a local HA cluster on loopback and supervise it until interrupted.
    Up(up::Args),
    /// Raw key-value access to the store (debugging; admin only).
    #[command(subcommand)]
    Kv(kv::Cmd),
    /// Cluster membership.
    #[command(subcommand)]
    Cluster(cluster::Cmd),
    /// The cluster CA: its rotation in steps (trust, reissue, drop) and status.
    #[command(subcommand)]
    Ca(ca::Cmd),
    /// Backups of the whole store: save one, check one (restore with `ferry master --init --restore`).
    #[command(subcommand)]
    Snapshot(snapshot::Cmd),
    /// Print a container's output (`-f` to follow, `--previous`, `--tail N`, `--since 5m`).
    Logs(logs::Args),
    /// Run a command in a container (`ferry exec POD [-c C] [-i] -- CMD ARGS...`).
    Exec(exec::Args),
    /// Forward local ports to a pod (`ferry port-forward POD [LOCAL:]REMOTE...`).
    PortForward(portforward::Args),
    /// Bootstrap tokens for nodes to join with.
    #[command(subcommand)]
    Token(token::Cmd),
    /// Print (or write) a kubeconfig for kubectl: the admin's, or a new user's (--user).
    Kubeconfig(kubeconfig::Args),
    /// Benchmarks against a running cluster.
    #[command(subcommand)]
    Bench(bench::Cmd),
    /// Fault injection with a linearizability checker: a local cluster it starts,
    /// seeded faults, a checked history (`ferry chaos check FILE` checks a saved one).
    Chaos(chaos::Args),
    /// The kinds ferry serves (as `kubectl api-resources` prints them).
    ApiResources,
    #[command(flatten)]
    Objects(objects::Cmd),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,quinn=warn")
    });
    // Colour only on a terminal: `ferry up` sends each master's stderr to master.log.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Whether `command` runs a master on one thread (its actors then share it).
fn one_thread_master(command: &Command) -> bool {
    matches!(command, Command::Master(a) if a.worker_threads() == Some(1))
}

/// The async runtime a command runs on.
///
/// A master gets a multi-thread runtime (`--worker-threads`, default one thread
/// per core), or tokio's current-thread scheduler when given one thread (as
/// `ferry up` gives each master on a small machine). Client commands (`ferry
/// get`, `ferry bench`, ...) run on the current-thread scheduler too. Its run
/// queue is FIFO, while the multi-thread scheduler runs the task a task wakes
/// next (its LIFO slot): there, each answer or request a task wrote woke its QUIC
/// connection's driver, which sent it at once in a datagram of its own; here,
/// the answers written in one tick leave together (`docs/benchmarks.md`).
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    match command {
        c if one_thread_master(c) => tokio::runtime::Builder::new_current_thread(),
        Command::Master(a) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = a.worker_threads() {
                b.worker_threads(n);
            }
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // Before any runtime or logging: the shim is the container's parent,
        // and both need a single-threaded process for their namespaces.
        Command::Shim(a) => return node::shim(a),
        Command::Nsenter(a) => return node::nsenter(a),
        Command::Runas(a) => return node::runas(a),
        _ => {}
    }
    init_logging();
    match cli.acting_as() {
        Ok(as_) => client::set_acting_as(as_),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    let rt = match runtime_for(&cli.command).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // A master on one thread runs its actors on that thread too (see
    // `ferry_actors::supervisor`): the runtime goes inside an actix System.
    let one_thread = one_thread_master(&cli.command);
    let run = async move {
        match cli.command {
            Command::Master(a) => master::run(a, cli.config).await,
            Command::Up(a) => up::run(a, cli.config).await,
            Command::Node(a) => node::run(a, cli.config.as_deref()).await,
            Command::Shim(_) | Command::Nsenter(_) | Command::Runas(_) => {
                unreachable!("run before the runtime")
            }
            Command::Kv(c) => kv::run(c, cli.config.as_deref()).await,
            Command::Cluster(c) => cluster::run(c, cli.config.as_deref()).await,
            Command::Ca(c) => ca::run(c, cli.config.as_deref()).await,
            Command::Token(c) => token::run(c, cli.config.as_deref()).await,
            Command::Kubeconfig(a) => kubeconfig::run(a, cli.config.as_deref()).await,
            Command::Exec(a) => exec::run(a, cli.config.as_deref(), cli.namespace.as_deref()).await,
            Command::PortForward(a) => {
                portforward::run(a, cli.config.as_deref(), cli.namespace.as_deref()).await
            }
            Command::Logs(a) => logs::run(a, cli.config.as_deref(), cli.namespace.as_deref()).await,
            Command::Bench(c) => bench::run(c, cli.config.as_deref()).await,
            Command::Echo(a) => proxybench::echo(a).await,
            Command::Chaos(a) => chaos::run(a, cli.config.as_deref()).await,
            Command::Snapshot(c) => snapshot::run(c, cli.config.as_deref()).await,
            Command::Objects(c) => {
                objects::run(c, cli.config.as_deref(), cli.namespace.as_deref()).await
            }
            Command::ApiResources => {
                cluster::print_api_resources();
                Ok(ExitCode::SUCCESS)
            }
        }
    };
    let result = if one_thread {
        actix_rt::System::with_tokio_rt(|| rt).block_on(run)
    } else {
        rt.block_on(run)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
