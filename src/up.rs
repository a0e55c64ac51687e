//! `ferry up`: a local HA cluster of real `ferry master` processes on loopback.
//!
//! Starts the first master with `--init`, the others with `--join`, waits until
//! every master is a voter and namespace `default` exists, writes the admin
//! client config, then supervises: a master that dies is reported and restarted
//! on the same data dir. Ctrl-C or SIGTERM stops every process it started.

use crate::client::ferry_home;
use anyhow::{bail, Context, Result};
use ferry_actors::master::identity::{create_private_dir, write_private, DataDir};
use ferry_api::proto::Consistency;
use ferry_api::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Number of masters (odd, 1-7).
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Number of worker nodes (node agents arrive with a later release; must be 0).
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Directory for data dirs, logs and admin.conf (default ~/.ferry/local).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// UDP port of the first master; the others use the following ports.
    #[arg(long, default_value_t = 7100)]
    port: u16,
    /// Allow an even number of masters.
    #[arg(long)]
    force: bool,
}

/// One master process `ferry up` (or `ferry bench failover`) runs.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) data: PathBuf,
    pub(crate) addr: String,
    /// Runtime threads: the masters share this machine's cores.
    workers: usize,
    pub(crate) child: Option<Child>,
    /// Where this start's output begins in master.log (it is appended to).
    log_from: u64,
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

pub(crate) fn spawn(p: &mut Proc, extra: &[String], master_cfg: Option<&Path>) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the ferry binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.data.join("master.log"))
        .with_context(|| format!("opening {}/master.log", p.data.display()))?;
    p.log_from = log.metadata().map_or(0, |m| m.len());
    let mut cmd = Command::new(exe);
    cmd.arg("master")
        .arg("--data-dir")
        .arg(&p.data)
        .arg("--listen")
        .arg(&p.addr)
        .arg("--worker-threads")
        .arg(p.workers.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(c) = master_cfg {
        cmd.arg("--config").arg(c);
    }
    cmd.spawn().with_context(|| format!("starting {}", p.name))
}

/// The last error a master logged in this start's part of its master.log (else
/// its last line).
fn last_error(p: &Proc) -> String {
    let text = std::fs::read(p.data.join("master.log")).unwrap_or_default();
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
                "master {} exited during start-up ({status}): {}\n  (log: {}/master.log)",
                p.name,
                last_error(p),
                p.data.display()
            );
        }
    }
    Ok(())
}

pub(crate) fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter() {
        if let Some(c) = &p.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
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
    if a.nodes > 0 {
        bail!("--nodes: node agents are not part of this release yet; use --nodes 0");
    }
    if a.masters == 0 || a.masters > 7 {
        bail!("--masters must be between 1 and 7");
    }
    if a.masters.is_multiple_of(2) && !a.force {
        bail!("--masters {}: an even number of masters tolerates no more failures than one fewer; pass --force to do it anyway", a.masters);
    }
    let dir = a.dir.clone().unwrap_or_else(|| ferry_home().join("local"));
    let cfg = master_cfg.as_deref();
    let mut local = start(&dir, a.masters, a.port, a.force, cfg).await?;
    let (admin, admin_path, masters, leader) = (
        local.admin.clone(),
        local.admin_path.clone(),
        local.masters.clone(),
        local.leader,
    );
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
        "  try:          ferry --config {} cluster status",
        admin_path.display()
    );
    outln!(
        "                ferry --config {} kv put hello world",
        admin_path.display()
    );
    outln!("  logs:         {}/m*/master.log", dir.display());
    outln!("  Ctrl-C stops the cluster.");
    supervise(&mut local.procs, cfg, &local.join_args).await;
    outln!("ferry: stopping");
    stop_all(&mut local.procs);
    Ok(ExitCode::SUCCESS)
}

/// Starts (or restarts) a local cluster of `n` masters in `dir` on UDP ports
/// from `port`, and waits until it is healthy: every master a voter (unless the
/// count is even without `force`), namespace `default` created.
pub(crate) async fn start(
    dir: &Path,
    n: usize,
    port: u16,
    force: bool,
    master_cfg: Option<&Path>,
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
            workers,
            child: None,
            log_from: 0,
        })
        .collect();
    for p in &procs {
        create_private_dir(&p.data)?;
    }
    let masters: Vec<String> = procs.iter().map(|p| p.addr.clone()).collect();
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

async fn supervise(procs: &mut [Proc], cfg: Option<&Path>, join_args: &[String]) {
    let stop = crate::master::wait_for_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for p in procs.iter_mut() {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            eprintln!(
                "ferry up: master {} (pid {}) exited ({status}); restarting it",
                p.name,
                child.id()
            );
            let args = if p.data.join("identity.toml").exists() {
                vec![]
            } else {
                join_args.to_vec()
            };
            match spawn(p, &args, cfg) {
                Ok(c) => {
                    eprintln!("ferry up: master {} restarted (pid {})", p.name, c.id());
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
