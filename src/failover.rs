//! `ferry bench failover`: how long writes stop when the leader dies.
//!
//! Starts its own local cluster of real `ferry master` processes (as `ferry up`
//! does), keeps a few writers and a watcher running, runs a `bench store`-like
//! load phase (64 clients), then SIGKILLs the leader `--rounds` times. Per
//! round it measures the time from the kill to the first observation of a new
//! leader and to the first acknowledged write (of the running writers, or of a
//! fresh client started at the kill, as a new `ferry kv put` would be), then
//! restarts the killed master and waits until it has caught up. At the end it
//! reads every acknowledged key back (`lost`) and checks the watcher saw it.
//! `spurious_elections` counts leader changes that no kill explains, over the
//! whole run (load phase included).

use crate::up;
use anyhow::{bail, Context, Result};
use ferry_api::kv::{Expect, WatchItem};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::Client;
use ferry_config::ClientConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `ferry bench failover`.
#[derive(clap::Args)]
pub struct Args {
    /// Leader kills.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Masters in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    masters: u8,
    /// Directory for the cluster's data dirs and logs (default: a temporary
    /// directory, removed afterwards; a given one is kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// UDP port of the first master (0: free ports picked at random).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Raft and transport timings of the masters: `new` (the defaults) or
    /// `old` (heartbeat 100 ms, election 600-1200 ms, idle timeout 4 s,
    /// keep-alive 500 ms: the defaults before the failover work), the anchor.
    #[arg(long, default_value = "new", value_parser = ["new", "old"])]
    timings: String,
    /// Puts of the load phase at 64 clients before the kills (0: none).
    #[arg(long, default_value_t = 16000)]
    load_ops: usize,
    /// Concurrent writers kept running through the kills.
    #[arg(long, default_value_t = 4)]
    writers: usize,
}

/// The master config `--timings old` gives every master.
const OLD_TIMINGS: &str = "[raft]\nheartbeat_ms = 100\nelection_min_ms = 600\nelection_max_ms = 1200\n\n[transport]\nidle_timeout_ms = 4000\nkeepalive_ms = 500\n";

/// How long one round may take to fail over before the run gives up.
const ROUND_LIMIT: Duration = Duration::from_secs(20);

/// One acknowledged write.
struct Ack {
    key: String,
    value: Vec<u8>,
    /// When the write was sent, and when it was acknowledged.
    sent: Instant,
    at: Instant,
    revision: u64,
}

/// Leader changes seen by the monitor.
#[derive(Default)]
struct Leaders {
    /// Highest term seen with a leader, and that leader.
    term: u64,
    leader: Option<u64>,
    /// A kill is in progress: the next leader change is its failover.
    expect: bool,
    /// When the expected change was seen.
    changed_at: Option<Instant>,
    spurious: u64,
}

struct Shared {
    acks: Mutex<Vec<Ack>>,
    leaders: Mutex<Leaders>,
    stop: AtomicBool,
    write_errors: std::sync::atomic::AtomicU64,
}

/// What the watcher saw: keys, the highest revision, the error that ended it.
type Watched = (HashSet<String>, u64, Option<String>);

/// Results of one round.
struct Round {
    killed: String,
    leader_ms: f64,
    write_ms: f64,
    fresh_ms: f64,
    rejoin_ms: f64,
}

pub async fn run(a: Args) -> Result<ExitCode> {
    if a.rounds == 0 || a.writers == 0 {
        bail!("--rounds and --writers must be at least 1");
    }
    let n = a.masters as usize;
    if n != 3 && n != 5 {
        bail!("--masters must be 3 or 5");
    }
    let (dir, temp) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ferry-failover-{}", std::process::id())),
            true,
        ),
    };
    if dir.join("m1").exists() {
        bail!(
            "{} already holds a cluster; give an empty --dir",
            dir.display()
        );
    }
    ferry_actors::master::identity::create_private_dir(&dir)?;
    let cfg_path = if a.timings == "old" {
        let p = dir.join("master-old-timings.toml");
        std::fs::write(&p, OLD_TIMINGS)?;
        Some(p)
    } else {
        None
    };
    let port = if a.port == 0 { free_ports(n)? } else { a.port };
    let mut local = up::start(&dir, n, port, None, false, cfg_path.as_deref()).await?;
    let result = drive(&a, &mut local, cfg_path.as_deref()).await;
    up::stop_all(&mut local.procs);
    if temp && result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else if temp {
        eprintln!("ferry bench failover: logs kept in {}", dir.display());
    }
    result
}

/// A base port with `n` consecutive free UDP ports after it, in 20000-29999:
/// below Linux's ephemeral ports (32768-60999), which another process's client
/// socket could take between this check and the master's bind, and below the
/// NodePort range (30000-32767).
pub(crate) fn free_ports(n: usize) -> Result<u16> {
    for _ in 0..100 {
        let base: u16 = 20000 + rand::random::<u16>() % (10000 - n as u16);
        let all_free =
            (0..n as u16).all(|k| std::net::UdpSocket::bind(("127.0.0.1", base + k)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    bail!("no {n} consecutive free UDP ports found")
}

/// A client of the master at `addr` only.
fn client_of(admin: &ClientConfig, addr: &str) -> Result<Client> {
    let mut cfg = admin.clone();
    cfg.masters = vec![addr.to_string()];
    Ok(Client::new(&cfg)?)
}

async fn drive(a: &Args, local: &mut up::Local, cfg: Option<&Path>) -> Result<ExitCode> {
    let admin = local.admin.clone();
    let run_id: u32 = rand::random();
    let prefix = format!("failover/{run_id:08x}/");
    let shared = Arc::new(Shared {
        acks: Mutex::new(Vec::new()),
        leaders: Mutex::new(Leaders::default()),
        stop: AtomicBool::new(false),
        write_errors: Default::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();

    // Monitor: every master's answer to `status` (the leader's view while it
    // has one), every 25 ms.
    for addr in &local.masters {
        let client = client_of(&admin, addr)?;
        let shared = shared.clone();
        tasks.spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let asked = tokio::time::timeout(Duration::from_millis(250), client.status());
                if let Ok(Ok(s)) = asked.await {
                    if let Some(leader) = s.leader {
                        let mut l = shared.leaders.lock().expect("leaders");
                        if s.term > l.term {
                            if l.leader.is_some() {
                                if l.expect {
                                    l.expect = false;
                                    l.changed_at = Some(Instant::now());
                                } else {
                                    l.spurious += 1;
                                    eprintln!(
                                        "failover: spurious election: term {} -> {} (leader {:?} -> {leader})",
                                        l.term, s.term, l.leader
                                    );
                                }
                            }
                            l.term = s.term;
                            l.leader = Some(leader);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
    }

    // Writers, each on its own connection, starting at a different master.
    for w in 0..a.writers {
        let mut cfg = admin.clone();
        let n = cfg.masters.len();
        cfg.masters.rotate_left(w % n);
        let client = Client::new(&cfg)?;
        let (shared, prefix) = (shared.clone(), prefix.clone());
        tasks.spawn(async move {
            let mut i = 0u64;
            while !shared.stop.load(Ordering::Relaxed) {
                let key = format!("{prefix}w{w}/{i}");
                let value = format!("{w}-{i}").into_bytes();
                i += 1;
                let sent = Instant::now();
                match client.put(&key, value.clone(), Expect::Any).await {
                    Ok(Ok(out)) => shared.acks.lock().expect("acks").push(Ack {
                        key,
                        value,
                        sent,
                        at: Instant::now(),
                        revision: out.revision,
                    }),
                    _ => {
                        shared.write_errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    // Watcher: every event under the prefix, across failovers.
    let watch_client = Arc::new(Client::new(&admin)?);
    let seen: Arc<Mutex<Watched>> = Arc::default();
    let watcher = {
        let seen = seen.clone();
        let status = Client::new(&admin)?.status().await?;
        let mut watch = watch_client.watch(&prefix, Some(status.commit_index), 100);
        // `Watch::next` is not cancel-safe: the task runs until aborted.
        tokio::spawn(async move {
            loop {
                let item = watch.next().await;
                let mut s = seen.lock().expect("seen");
                match item {
                    Ok(WatchItem::Events { revision, events }) => {
                        for e in events {
                            s.0.insert(e.kv.key);
                        }
                        s.1 = s.1.max(revision);
                    }
                    Ok(WatchItem::Bookmark { revision }) => s.1 = s.1.max(revision),
                    Err(e) => {
                        s.2 = Some(e.to_string());
                        return;
                    }
                }
            }
        })
    };

    // Wait for the monitor to see the leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.leaders.lock().expect("leaders").leader.is_none() {
        if Instant::now() > deadline {
            bail!("the monitor saw no leader within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    if a.load_ops > 0 {
        crate::bench::store_load(&local.admin_path, 64, 4, a.load_ops).await?;
    }

    let mut rounds = Vec::new();
    for r in 1..=a.rounds {
        let round = kill_round(local, &admin, &shared, &prefix, r, cfg).await?;
        outln!(
            "round={r} killed={} leader_ms={:.0} write_ms={:.0} fresh_client_ms={:.0} rejoin_ms={:.0}",
            round.killed,
            round.leader_ms,
            round.write_ms,
            round.fresh_ms,
            round.rejoin_ms
        );
        rounds.push(round);
    }

    shared.stop.store(true, Ordering::Relaxed);
    while let Some(t) = tasks.join_next().await {
        t?;
    }
    let acks = std::mem::take(&mut *shared.acks.lock().expect("acks"));
    let top = acks.iter().map(|a| a.revision).max().unwrap_or(0);
    // Let the watcher catch up with the last acknowledged write.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("seen").1 < top && Instant::now() < deadline {
        if seen.lock().expect("seen").2.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();

    // Every acknowledged write must be readable.
    let reader = Client::new(&admin)?;
    let mut stored: HashMap<String, Vec<u8>> = HashMap::new();
    let mut start_after = None;
    loop {
        let page = reader
            .range(RangeRequest {
                prefix: prefix.clone(),
                start_after: start_after.clone(),
                limit: 1000,
                consistency: Consistency::Linearizable,
            })
            .await?
            .map_err(|e| anyhow::anyhow!("reading back: {e}"))?;
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        for kv in page.kvs {
            stored.insert(kv.key, kv.value);
        }
        if !page.more {
            break;
        }
    }
    let lost = acks
        .iter()
        .filter(|a| stored.get(&a.key) != Some(&a.value))
        .count();
    let seen = seen.lock().expect("seen");
    let unwatched = acks.iter().filter(|a| !seen.0.contains(&a.key)).count();
    let spurious = shared.leaders.lock().expect("leaders").spurious;

    let pct = |v: &mut Vec<f64>, q: f64| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    };
    let mut write: Vec<f64> = rounds.iter().map(|r| r.write_ms).collect();
    let mut leader: Vec<f64> = rounds.iter().map(|r| r.leader_ms).collect();
    let mut fresh: Vec<f64> = rounds.iter().map(|r| r.fresh_ms).collect();
    outln!(
        "failover timings={} masters={} acked_writes={} write_errors={} watch_missing={unwatched}{} \
         leader_p50_ms={:.0} leader_max_ms={:.0} fresh_client_p50_ms={:.0} fresh_client_max_ms={:.0}",
        a.timings,
        a.masters,
        acks.len(),
        shared.write_errors.load(Ordering::Relaxed),
        match &seen.2 {
            None => String::new(),
            Some(e) => format!(" watch_error=\"{e}\""),
        },
        pct(&mut leader, 0.5),
        pct(&mut leader, 1.0),
        pct(&mut fresh, 0.5),
        pct(&mut fresh, 1.0),
    );
    outln!(
        "failover rounds={} p50_ms={:.0} p99_ms={:.0} max_ms={:.0} lost={lost} spurious_elections={spurious}",
        a.rounds,
        pct(&mut write, 0.5),
        pct(&mut write, 0.99),
        pct(&mut write, 1.0),
    );
    Ok(if lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Kills the leader, measures the failover, restarts the killed master and
/// waits until it has caught up.
async fn kill_round(
    local: &mut up::Local,
    admin: &ClientConfig,
    shared: &Arc<Shared>,
    prefix: &str,
    round: usize,
    cfg: Option<&Path>,
) -> Result<Round> {
    let client = Client::new(admin)?;
    let status = client.status().await?;
    let leader = status.leader.context("no leader before the kill")?;
    let addr = status
        .members
        .iter()
        .find(|m| m.id == leader)
        .map(|m| m.addr.clone())
        .context("the leader is not a member")?;
    let idx = local
        .procs
        .iter()
        .position(|p| p.addr == addr)
        .with_context(|| format!("leader {addr} is none of ours"))?;
    let before = shared
        .acks
        .lock()
        .expect("acks")
        .iter()
        .map(|a| a.revision)
        .max()
        .unwrap_or(0);
    {
        let mut l = shared.leaders.lock().expect("leaders");
        l.expect = true;
        l.changed_at = None;
    }
    let mut child = local.procs[idx]
        .child
        .take()
        .context("the leader's process is not running")?;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL)?;
    let killed_at = Instant::now();
    let _ = child.wait();

    // A fresh client, as a new `ferry kv put` would be.
    let fresh = {
        let (admin, shared) = (admin.clone(), shared.clone());
        let key = format!("{prefix}fresh/{round}");
        tokio::spawn(async move {
            loop {
                let client = Client::new(&admin)?;
                let value = format!("fresh-{round}").into_bytes();
                let sent = Instant::now();
                if let Ok(Ok(out)) = client.put(&key, value.clone(), Expect::Any).await {
                    let at = Instant::now();
                    shared.acks.lock().expect("acks").push(Ack {
                        key: key.clone(),
                        value,
                        sent,
                        at,
                        revision: out.revision,
                    });
                    return Ok::<_, anyhow::Error>(at);
                }
                if killed_at.elapsed() > ROUND_LIMIT {
                    bail!("no write acknowledged within {ROUND_LIMIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let ms = |t: Instant| t.duration_since(killed_at).as_secs_f64() * 1000.0;
    let (leader_at, write_at) = loop {
        let leader_at = shared.leaders.lock().expect("leaders").changed_at;
        let write_at = shared
            .acks
            .lock()
            .expect("acks")
            .iter()
            .filter(|a| a.sent > killed_at && a.revision > before)
            .map(|a| a.at)
            .min();
        if let (Some(l), Some(w)) = (leader_at, write_at) {
            break (l, w);
        }
        if killed_at.elapsed() > ROUND_LIMIT {
            bail!(
                "round {round}: no new leader ({leader_at:?}) or no acknowledged write \
                 ({write_at:?}) within {ROUND_LIMIT:?} of killing {addr}"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let fresh_at = fresh.await??;

    // Restart the killed master and wait until it has caught up.
    let restart_at = Instant::now();
    let p = &mut local.procs[idx];
    p.child = Some(up::spawn(p, &[], cfg)?);
    let mine = client_of(admin, &addr)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            bail!("round {round}: {addr} did not catch up within 60 s after its restart");
        }
        let asked = tokio::time::timeout(Duration::from_millis(500), async {
            let theirs = client.status().await.ok()?;
            let own = mine.status().await.ok()?;
            Some((theirs, own))
        })
        .await;
        if let Ok(Some((theirs, own))) = asked {
            let back = theirs
                .members
                .iter()
                .find(|m| m.addr == addr)
                .is_some_and(|m| m.voter && m.lag.is_some_and(|lag| lag < 64));
            if back && own.leader.is_some() && own.leader == theirs.leader {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rejoin_ms = restart_at.elapsed().as_secs_f64() * 1000.0;
    // A moment of calm before the next kill, so each round starts from a
    // cluster whose restarted master has settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Round {
        killed: local.procs[idx].name.clone(),
        leader_ms: ms(leader_at),
        write_ms: ms(write_at),
        fresh_ms: ms(fresh_at),
        rejoin_ms,
    })
}
