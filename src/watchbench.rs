//! `ferry bench watch`: many field-selected pod watches on the leader, as node
//! agents keep them (`spec.nodeName=<node>`), while pods bound to those nodes
//! are created; reports the create rate, each pod's create-to-watch latency and
//! the leader's CPU.

use crate::podbench::{
    connect, cpu_ticks, create_namespace, create_pods, delete_namespace, leader_process, pod_index,
    quantile, Times,
};
use anyhow::{bail, Context, Result};
use ferry_api::object::{ObjectRequest, Verb};
use ferry_node::objects::Objects;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Pod watches, each with its own `spec.nodeName` field selector.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Pods to create, bound round-robin to the watched node names.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Concurrent pod creates.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// QUIC connections the watches share (each to the leader).
    #[arg(long, default_value_t = 10)]
    connections: usize,
}

/// Runs the benchmark; prints one summary line.
pub async fn run(a: WatchArgs, config: Option<&Path>) -> Result<ExitCode> {
    if a.watchers == 0 || a.pods < a.watchers || a.connections == 0 {
        bail!("--watchers and --connections must be at least 1, --pods at least --watchers");
    }
    let api = connect(config).await?;
    let ns = format!("bench-watch-{:08x}", rand::random::<u32>());
    create_namespace(&api, &ns).await?;
    let result = measure(&api, &a, config, &ns).await;
    let cleanup = delete_namespace(&api, &ns, Duration::from_secs(300)).await;
    let (create_secs, deliver_secs, cpu_s, p99) = result?;
    cleanup?;
    outln!(
        "watch watchers={} pods={} creates_per_s={:.0} delivered_secs={deliver_secs:.2} leader_cpu_s={cpu_s:.1} p99_watch_ms={p99:.0}",
        a.watchers,
        a.pods,
        a.pods as f64 / create_secs,
    );
    Ok(ExitCode::SUCCESS)
}

/// The node name watcher `k` selects.
fn node(k: usize) -> String {
    format!("bench-watch-node-{k}")
}

/// (create seconds, first create → last arrival in seconds, leader CPU
/// seconds meanwhile — -1 when the leader runs elsewhere —, p99 create → arrival in ms).
async fn measure(
    api: &Objects,
    a: &WatchArgs,
    config: Option<&Path>,
    ns: &str,
) -> Result<(f64, f64, f64, f64)> {
    let mut conns = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        conns.push(connect(config).await?.client);
    }
    let times = Arc::new(Mutex::new(Times::new(a.pods)));
    let mut watchers = tokio::task::JoinSet::new();
    for k in 0..a.watchers {
        let mut req = ObjectRequest::new(Verb::Watch, "pods", Some(ns), None);
        req.list.field_selector = Some(format!("spec.nodeName={}", node(k)));
        req.list.allow_bookmarks = true;
        let mut w = conns[k % conns.len()].watch_objects(req);
        // The first answer, a bookmark, says the watch is open.
        w.next().await.context("opening a watch")?;
        let (times, want) = (times.clone(), (k..a.pods).step_by(a.watchers).count());
        watchers.spawn(async move {
            let mut got = 0;
            while got < want {
                let ev = w.next().await?;
                if ev.kind != "ADDED" {
                    continue;
                }
                let pod: Value = serde_json::from_slice(&ev.object)?;
                let i = pod_index(&pod).context("a pod the bench did not create")?;
                times.lock().expect("not poisoned").seen[i] = Some(Instant::now());
                got += 1;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    eprintln!(
        "{} watches open over {} connections",
        a.watchers,
        conns.len()
    );
    let leader = leader_process(&api.client).await;
    let cpu0 = leader.and_then(cpu_ticks);
    let start = Instant::now();
    create_pods(api, ns, a.pods, a.clients, &times, |i| {
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench-watch"}},
        "spec": {
            "nodeName": node(i % a.watchers),
            "containers": [{"name": "c", "image": "busybox:1.36",
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
        }})
    })
    .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let limit = Duration::from_secs(60 + a.pods as u64 / 20);
    tokio::time::timeout(limit, async {
        while let Some(done) = watchers.join_next().await {
            done??;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("not every pod reached its watch within {limit:?}"))??;
    let deliver_secs = start.elapsed().as_secs_f64();
    // /proc counts in USER_HZ, 100 per second on Linux.
    let cpu = match (cpu0, leader.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 100.0,
        _ => {
            eprintln!("the leader does not run on this machine: leader_cpu_s=-1");
            -1.0
        }
    };
    let lat = times.lock().expect("not poisoned").latencies_ms();
    Ok((create_secs, deliver_secs, cpu, quantile(&lat, 0.99)))
}
