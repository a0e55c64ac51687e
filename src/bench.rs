//! `ferry bench store`: sequential puts of distinct keys from N concurrent clients,
//! the same load `../shared/tools/etcd-anchor` drives etcd with.

use crate::client::config_path;
use anyhow::{bail, Context, Result};
use ferry_api::kv::Expect;
use ferry_api::Client;
use ferry_config::ClientConfig;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Put throughput and latency of the replicated store.
    Store {
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Total puts (split evenly between clients).
        #[arg(long, default_value_t = 32000)]
        ops: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// QUIC connections shared by the clients.
        #[arg(long, default_value_t = 4)]
        conns: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let Cmd::Store {
        clients,
        ops,
        value_size,
        conns,
        json,
    } = cmd;
    if clients == 0 || ops < clients {
        bail!("--clients must be at least 1 and --ops at least --clients");
    }
    let path = config_path(config);
    let cfg =
        ClientConfig::load(&path).with_context(|| format!("client config {}", path.display()))?;
    let probe = Client::new(&cfg)?;
    let leader = probe.status().await?.leader_addr;
    let mut pool = Vec::new();
    for _ in 0..conns.max(1) {
        let c = Client::new(&cfg)?;
        if let Some(l) = &leader {
            let _ = c.prefer(l).await;
        }
        pool.push(Arc::new(c));
    }
    let per = ops / clients;
    let value = vec![b'v'; value_size];
    let run_id: u32 = rand::random();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = pool[c % pool.len()].clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            for i in 0..per {
                let t = Instant::now();
                let key = format!("bench/{run_id:08x}/{c}/{i}");
                match client.put(&key, value.clone(), Expect::Any).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(anyhow::anyhow!("put {key}: {e}")),
                    Err(e) => return Err(anyhow::anyhow!("put {key}: {e}")),
                }
                h.record(t.elapsed().as_micros() as u64).expect("record");
            }
            Ok(h)
        }));
    }
    let mut all = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        all.add(t.await??).expect("merge");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = per * clients;
    let ops_per_s = n as f64 / secs;
    let (p50, p99) = (all.value_at_quantile(0.5), all.value_at_quantile(0.99));
    if json {
        outln!(
            "{}",
            serde_json::json!({"bench": "store", "clients": clients, "ops": n, "secs": secs,
                "ops_per_s": ops_per_s.round(), "p50_us": p50, "p99_us": p99})
        );
    } else {
        outln!(
            "store clients={clients} ops={n} secs={secs:.2} ops_per_s={ops_per_s:.0} p50_us={p50} p99_us={p99}"
        );
    }
    Ok(ExitCode::SUCCESS)
}
