//! Leadership churn under heavy load (issue 16), as a command like the
//! benchmarks (it loads the whole machine for a minute):
//!
//! ```sh
//! cargo test --test cluster --no-run
//! FERRY_CHURN_SECS=60 flock /work/locks/nodes \
//!     cargo test --test cluster churn_under_load -- --ignored --nocapture
//! ```
//!
//! A 3-master cluster (debug build, as CI runs it) takes two writers of 1 MiB
//! values while six CPU burners and a loop of synced `dd` writes load the
//! machine; after a few seconds one follower is SIGKILLed, so every commit needs
//! the other one. It prints, for the time after the kill, how many terms passed
//! (each a leader change or a failed election) and the longest time with no
//! acknowledged write:
//! `churn secs=S terms=T longest_gap_ms=G puts=P`.
//! `FERRY_CHURN_KEEP=DIR` copies the masters' logs (with openraft's election and
//! vote messages) to DIR.

use crate::harness::{serial, Cluster};
use ferry_api::kv::Expect;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Load processes, each in its own process group, killed with it on drop.
struct Burners(Vec<Child>);

impl Burners {
    fn start(secs: u64, dir: &std::path::Path) -> Burners {
        let limit = (secs + 120).to_string();
        let cpu = "while :; do :; done".to_string();
        let dd = format!(
            "while :; do dd if=/dev/zero of={} bs=1M count=200 oflag=dsync 2>/dev/null; done",
            dir.join("fsync-burn").display()
        );
        let mut scripts = vec![cpu; 6];
        scripts.push(dd);
        let children = scripts
            .iter()
            .map(|s| {
                Command::new("timeout")
                    .args(["-s", "KILL", &limit, "sh", "-c", s])
                    .stdin(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("spawn a load process")
            })
            .collect();
        Burners(children)
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// The highest term the masters in `live` report.
async fn max_term_of(c: &Cluster, live: &[usize]) -> u64 {
    let mut max = 0;
    for &i in live {
        if let Ok(s) = c.status_of(i).await {
            max = max.max(s.term);
        }
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test that takes over the machine; run as a command (module doc)"]
async fn churn_under_load() {
    let _serial = serial().await;
    let secs: u64 = std::env::var("FERRY_CHURN_SECS")
        .ok()
        .map(|v| v.parse().expect("FERRY_CHURN_SECS is a number of seconds"))
        .unwrap_or(60);
    let log = "info,openraft=warn,openraft::engine::engine_impl=info,\
               openraft::core::raft_core=info";
    let mut c = Cluster::start_with_env(3, vec![("FERRY_LOG", log)]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let client = c.client(Duration::from_secs(5));
        let (stop, acks, seq) = (stop.clone(), acks.clone(), seq.clone());
        writers.push(tokio::spawn(async move {
            let value = vec![b'x'; 1024 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let key = format!("churn/{}", seq.fetch_add(1, Ordering::Relaxed));
                if let Ok(Ok(_)) = client.put(&key, value.clone(), Expect::Any).await {
                    acks.lock().expect("acks").push(Instant::now());
                }
            }
        }));
    }
    let burners = Burners::start(secs, c.dir.path());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let leader = c.leader(&[]).await;
    let victim = (leader + 1) % 3;
    let live: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let first_term = max_term_of(&c, &live).await;
    eprintln!(
        "churn: SIGKILL {} (follower of {}) at term {first_term}",
        c.masters[victim].name, c.masters[leader].name
    );
    c.kill(victim);
    let killed = Instant::now();
    let mut max_term = first_term;
    while killed.elapsed() < Duration::from_secs(secs) {
        max_term = max_term.max(max_term_of(&c, &live).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    drop(burners);
    max_term = max_term.max(max_term_of(&c, &live).await);
    let mut times: Vec<Instant> = acks
        .lock()
        .expect("acks")
        .iter()
        .copied()
        .filter(|t| *t > killed && *t <= end)
        .collect();
    times.sort();
    let puts = times.len();
    let mut gap = Duration::ZERO;
    let mut last = killed;
    for t in times.into_iter().chain([end]) {
        gap = gap.max(t - last);
        last = t;
    }
    if let Ok(keep) = std::env::var("FERRY_CHURN_KEEP") {
        std::fs::create_dir_all(&keep).expect("create FERRY_CHURN_KEEP");
        for m in &c.masters {
            let to = std::path::Path::new(&keep).join(format!("{}.log", m.name));
            std::fs::copy(&m.log, to).expect("copy a master log");
        }
    }
    println!(
        "churn secs={secs} terms={} longest_gap_ms={} puts={puts}",
        max_term - first_term,
        gap.as_millis()
    );
    for w in writers {
        w.abort();
    }
}
