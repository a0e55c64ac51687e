//! `ferry master`.

use anyhow::{Context, Result};
use ferry_actors::{Bootstrap, Master};
use ferry_config::MasterConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `ferry master` flags; flags override the config file.
#[derive(clap::Args)]
pub struct Args {
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on (default 127.0.0.1:7100).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address other masters and clients use (default: the listen address).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// TCP address of the Kubernetes REST API over HTTPS (default: the listen
    /// address and port number, over TCP).
    #[arg(long)]
    https_listen: Option<SocketAddr>,
    /// Start a new cluster with this master as its only member; prints the join token.
    #[arg(long, conflicts_with = "join")]
    init: bool,
    /// Join the cluster through the master at this address.
    #[arg(long, requires = "token")]
    join: Option<String>,
    /// The join token printed by `ferry master --init`.
    #[arg(long, requires = "join")]
    token: Option<String>,
    /// With --init: start the new cluster's store from a snapshot file that
    /// `ferry snapshot save` wrote (checked whole first).
    #[arg(long, requires = "init", value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Recover a cluster that lost quorum for good: this master carries on as the
    /// only voter of a new cluster, with every write it knew committed. Its old
    /// store is kept aside in the data dir. Wipe the other masters' data dirs and
    /// join them again.
    #[arg(long, conflicts_with_all = ["init", "join"])]
    force_new_cluster: bool,
    /// Become a voter even if that makes the number of voters even.
    #[arg(long)]
    force: bool,
    /// Threads of the async runtime (default: one per core). `ferry up` gives
    /// each of its masters an equal share of this machine's cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

impl Args {
    /// The runtime size asked for, if any (`main` builds the runtime before `run`).
    pub fn worker_threads(&self) -> Option<usize> {
        self.worker_threads.map(usize::from)
    }
}

pub async fn run(a: Args, config: Option<PathBuf>) -> Result<ExitCode> {
    crate::owner::end_with_parent();
    let mut cfg = match &config {
        Some(p) => MasterConfig::load(p)?,
        None => MasterConfig::default(),
    };
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if a.advertise.is_some() {
        cfg.advertise = a.advertise;
    }
    if a.https_listen.is_some() {
        cfg.https_listen = a.https_listen;
    }
    cfg.validate()?;
    let init = a.init && !a.force_new_cluster;
    let boot = match (a.init, a.join, a.token, a.restore) {
        _ if a.force_new_cluster => Bootstrap::ForceNewCluster,
        (true, _, _, Some(file)) => Bootstrap::Restore(file),
        (true, _, _, None) => Bootstrap::Init,
        (false, Some(via), Some(token), _) => Bootstrap::Join {
            via,
            token,
            force: a.force,
        },
        _ => Bootstrap::Existing,
    };
    let master = Master::start(cfg, boot).await.context("starting master")?;
    tokio::spawn(report_held_thread());
    let token = master.data.read("join-token")?;
    if let Some(s) = &master.seeded {
        outln!(
            "store seeded at revision {} ({} keys); this master is the only voter of a new cluster",
            s.revision,
            s.pairs
        );
        if let Some(old) = &s.replaced {
            outln!("the store it replaced is kept in {}", old.display());
        }
    }
    outln!("master {} serving on {}", master.id, master.addr);
    outln!("join token: {}", token.trim());
    outln!(
        "join another master with: ferry master --data-dir DIR --listen ADDR --join {} --token {}",
        master.addr,
        token.trim()
    );
    if init {
        // A new cluster: once it serves, a bootstrap token for nodes.
        let admin = master.admin_config(&[master.addr.to_string()])?;
        let addr = master.addr.to_string();
        tokio::spawn(async move {
            match node_token(&admin).await {
                Ok(t) => outln!(
                    "join a node with: {}",
                    crate::token::join_command(&t, &[addr])
                ),
                Err(e) => tracing::warn!("no node join token: {e:#}"),
            }
        });
    }
    // A master another has seen removed (replaced, or removed while it was
    // down) stops, as etcd's removed members do, instead of standing for
    // election forever with its old membership.
    let removed = {
        // Dropped before the shutdown, which waits for every handle on the store.
        let store = master.store.clone();
        tokio::select! {
            _ = wait_for_signal() => None,
            r = store.wait_removed() => Some(r),
        }
    };
    tracing::info!("shutting down");
    master.shutdown_for_exit().await;
    match removed {
        None => Ok(ExitCode::SUCCESS),
        Some(r) => {
            tracing::error!("{r}; it stops");
            eprintln!(
                "error: {r}; it stops. To bring this machine back, start it with a new data dir and --join"
            );
            // Its own code: a supervisor (`ferry up`) must not start it again.
            Ok(ExitCode::from(EXIT_REMOVED))
        }
    }
}

/// `ferry master`'s exit code when it stops because it was removed from the
/// cluster (any other error exits 1): starting it again on the same data dir
/// only repeats that, so `ferry up` stops supervising it.
pub const EXIT_REMOVED: u8 = 3;

/// Creates a bootstrap token valid for a day through the API of a cluster
/// that is coming up (the client retries until it serves).
pub async fn node_token(
    admin: &ferry_config::ClientConfig,
) -> Result<ferry_api::token::BootstrapToken> {
    let api = crate::objects::api::Api {
        client: std::sync::Arc::new(ferry_api::Client::new(admin)?),
    };
    let token = ferry_api::token::BootstrapToken::generate();
    let expires = (ferry_api::clock::now() + jiff::SignedDuration::from_hours(24))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let secret = token.to_secret(Some(&expires), Some("nodes join with it"));
    let secrets = ferry_api::resources::by_cli_name("secrets").expect("served");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // The kube-system namespace appears once the first leader's controllers run.
        match api
            .create(secrets, Some(ferry_api::token::NAMESPACE), &secret)
            .await
        {
            Ok(_) => return Ok(token),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("creating the node token: {e:#}");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logs each time this master's runtime thread was held so long that its
/// Raft heartbeats waited (more than half the default lowest election
/// timeout): the first thing to look at when elections come under load.
async fn report_held_thread() {
    const TICK: std::time::Duration = std::time::Duration::from_millis(20);
    const HELD: std::time::Duration = std::time::Duration::from_millis(60);
    let mut last = std::time::Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let now = std::time::Instant::now();
        let late = now.duration_since(last).saturating_sub(TICK);
        if late > HELD {
            tracing::warn!(
                held_ms = late.as_millis() as u64,
                "this master's runtime thread was held; Raft's heartbeats waited"
            );
        }
        last = now;
    }
}
