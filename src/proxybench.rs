//! `ferry bench proxy`: what the Service proxy costs. A pod on a real node
//! runs `ferry echo` (a TCP echo server in this binary); a ClusterIP Service
//! fronts it. From this host, connections do request/response round trips of
//! `--size` bytes, alternately straight to the pod's address and through the
//! Service (nftables DNAT on the node), `--rounds` times each; the medians of
//! the rounds are compared. Needs nodes that give pods their own addresses
//! (root); traffic stays on this machine (pod and Service ranges).

use anyhow::{bail, Context, Result};
use ferry_node::objects::Objects;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args)]
pub struct ProxyArgs {
    /// Concurrent connections per measurement.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds per measurement (one path, one round).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Measurements per path, alternating direct and Service.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Bytes per request (echoed back).
    #[arg(long, default_value_t = 64)]
    size: usize,
}

#[derive(clap::Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
}

/// `ferry echo`: echoes every TCP connection's bytes back until it closes.
pub async fn echo(a: EchoArgs) -> Result<ExitCode> {
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// One measurement: round trips per second and latency quantiles (µs).
#[derive(Debug, Clone, Copy)]
struct Run {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `connections` connections to `to`, each doing sequential round trips of
/// `size` bytes for `secs`.
async fn measure(to: SocketAddr, connections: usize, secs: u64, size: usize) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to))
                .await
                .context("connect timed out")?
                .with_context(|| format!("connecting to {to}"))?;
            s.set_nodelay(true)?;
            let req = vec![b'x'; size];
            let mut resp = vec![0u8; size];
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                s.write_all(&req).await?;
                s.read_exact(&mut resp).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    if all.is_empty() {
        bail!("no round trip completed to {to}");
    }
    all.sort_by(f64::total_cmp);
    Ok(Run {
        ops_per_s: all.len() as f64 / secs as f64,
        p50_us: quantile(&all, 0.5),
        p99_us: quantile(&all, 0.99),
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The median of the runs, field by field.
fn median(runs: &[Run]) -> Run {
    let mid = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Run {
        ops_per_s: mid(|r| r.ops_per_s),
        p50_us: mid(|r| r.p50_us),
        p99_us: mid(|r| r.p99_us),
    }
}

/// `ferry bench proxy`.
pub async fn run(a: ProxyArgs, config: Option<&Path>) -> Result<ExitCode> {
    if a.connections == 0 || a.seconds == 0 || a.rounds == 0 || a.size == 0 {
        bail!("--connections, --seconds, --rounds and --size must be at least 1");
    }
    let client = crate::client::connect(config)?;
    // No pod of this command's is given the CA.
    let api = Objects {
        client,
        ca_pem: "".into(),
    };
    let ns = format!("bench-proxy-{:08x}", rand::random::<u32>());
    let result = bench(&api, &a, &ns).await;
    let cleanup = api.delete("namespaces", None, &ns, &json!({})).await;
    let (direct, service) = result?;
    cleanup.context("deleting the benchmark's namespace")?;
    outln!(
        "direct:  {:.0} round trips/s, p50 {:.0} µs, p99 {:.0} µs",
        direct.ops_per_s,
        direct.p50_us,
        direct.p99_us
    );
    outln!(
        "service: {:.0} round trips/s, p50 {:.0} µs, p99 {:.0} µs",
        service.ops_per_s,
        service.p50_us,
        service.p99_us
    );
    outln!(
        "proxy connections={} secs={} direct_ops_per_s={:.0} service_ops_per_s={:.0} ratio={:.3} added_p99_us={:.0}",
        a.connections,
        a.seconds,
        direct.ops_per_s,
        service.ops_per_s,
        service.ops_per_s / direct.ops_per_s,
        service.p99_us - direct.p99_us
    );
    Ok(ExitCode::SUCCESS)
}

async fn bench(api: &Objects, a: &ProxyArgs, ns: &str) -> Result<(Run, Run)> {
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await
    .with_context(|| format!("creating namespace {ns}"))?;
    let exe = std::env::current_exe().context("finding this ferry binary")?;
    api.create(
        "pods",
        Some(ns),
        &json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "echo", "labels": {"app": "echo"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "echo", "image": "ferry",
                    "command": [exe.to_string_lossy(), "echo", "--listen", "0.0.0.0:8080"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}),
    )
    .await
    .context("creating the echo pod")?;
    let svc = api
        .create(
            "services",
            Some(ns),
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        )
        .await
        .context("creating the echo Service")?;
    let cluster_ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .context("the Service has no clusterIP")?
        .to_string();
    let pod_ip = ready_pod_ip(api, ns).await?;
    let direct: SocketAddr = format!("{pod_ip}:8080").parse()?;
    let service: SocketAddr = format!("{cluster_ip}:80").parse()?;
    // The proxy programs the Service once its EndpointSlice shows the pod.
    let deadline = Instant::now() + Duration::from_secs(30);
    while measure(service, 1, 1, a.size).await.is_err() {
        if Instant::now() > deadline {
            bail!("the Service {service} did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut d, mut s) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        d.push(measure(direct, a.connections, a.seconds, a.size).await?);
        s.push(measure(service, a.connections, a.seconds, a.size).await?);
    }
    Ok((median(&d), median(&s)))
}

/// The echo pod's address once it is Ready; refuses a pod on the node's own
/// network (host mode), where there is no pod address to compare with.
async fn ready_pod_ip(api: &Objects, ns: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = api.get("pods", Some(ns), "echo").await? {
            let ready = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            let ip = p.pointer("/status/podIP").and_then(Value::as_str);
            let host = p.pointer("/status/hostIP").and_then(Value::as_str);
            if let (true, Some(ip)) = (ready, ip) {
                if Some(ip) == host {
                    bail!(
                        "the echo pod runs on its node's network ({ip}): `ferry bench proxy` needs \
                         nodes that give pods their own addresses (run the nodes as root)"
                    );
                }
                return Ok(ip.to_string());
            }
        }
        if Instant::now() > deadline {
            bail!("the echo pod was not Ready within 60 s (are the nodes up?)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_echo_server_answers_measured_round_trips() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let server = tokio::spawn(echo(EchoArgs { listen: addr }));
        let mut tries = 0;
        let run = loop {
            match measure(addr, 2, 1, 16).await {
                Ok(r) => break r,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = e;
                }
                Err(e) => panic!("{e:#}"),
            }
        };
        assert!(run.ops_per_s > 0.0);
        assert!(run.p50_us <= run.p99_us);
        server.abort();
    }

    #[test]
    fn medians_are_taken_per_field() {
        let r = |o, p50, p99| Run {
            ops_per_s: o,
            p50_us: p50,
            p99_us: p99,
        };
        let m = median(&[r(3.0, 30.0, 9.0), r(1.0, 10.0, 7.0), r(2.0, 20.0, 8.0)]);
        assert_eq!((m.ops_per_s, m.p50_us, m.p99_us), (2.0, 20.0, 8.0));
    }
}
