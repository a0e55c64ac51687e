//! `ferry bench store` and `ferry bench api`: N concurrent clients, each doing
//! sequential writes of distinct keys or objects, over QUIC.
//!
//! `store` is the load `../shared/tools/etcd-anchor` drives etcd with (raw
//! puts); `api` creates objects through the whole API pipeline (admission,
//! preconditions, JSON) and is compared with the same anchor. `failover`
//! (in [`crate::failover`]) starts a cluster of its own and kills its leader;
//! `scheduler` and `startup` (in [`crate::podbench`]) time pods.

use crate::client::config_path;
use anyhow::{bail, Context, Result};
use ferry_api::kv::Expect;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::Client;
use ferry_config::ClientConfig;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Options every benchmark takes.
#[derive(clap::Args)]
pub struct Common {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// QUIC connections shared by the clients.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Put throughput and latency of the replicated store.
    Store {
        #[command(flatten)]
        common: Common,
        /// Total puts (split evenly between clients).
        #[arg(long, default_value_t = 32000)]
        ops: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
    },
    /// Failover: SIGKILLs the leader of a local cluster it starts, N times, and
    /// measures the time to a new leader and to the first acknowledged write.
    Failover(crate::failover::Args),
    /// Create throughput and latency through the Kubernetes REST API: HTTPS with
    /// HTTP/2, the clients' requests multiplexed over `--conns` connections as
    /// client-go does.
    Http {
        #[command(flatten)]
        common: Common,
        /// Total objects to create (split evenly between clients).
        #[arg(long, default_value_t = 16000)]
        objects: usize,
        /// Namespace to create ConfigMaps in.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The API server URL (default: the client config's `api_server`, else
        /// the leader's address over HTTPS).
        #[arg(long)]
        server: Option<String>,
    },
    /// Scheduling throughput: runs `--nodes` hollow nodes in this process,
    /// creates `--pods` pods and times each from its create to its binding.
    Scheduler(crate::podbench::SchedulerArgs),
    /// Pod startup latency on the cluster's real nodes: create to Running and Ready.
    Startup(crate::podbench::StartupArgs),
    /// Node heartbeats at scale: `--nodes` hollow nodes in this process renew
    /// their Leases for `--seconds`; Lease writes per second, their p99, the
    /// leader's CPU, and any node a master marked not Ready.
    Nodes(crate::podbench::NodesArgs),
    /// The Service proxy's cost: round trips to a pod directly and through
    /// its ClusterIP (needs nodes running pods in their own network namespaces).
    Proxy(crate::proxybench::ProxyArgs),
    /// Watch fan-out: `--watchers` pod watches on the leader, each selecting
    /// one node's pods by `spec.nodeName` as node agents do, while `--pods`
    /// bound pods are created; the create rate, create-to-watch p99 and the
    /// leader's CPU.
    Watch(crate::watchbench::WatchArgs),
    /// Create throughput and latency through the API pipeline.
    Api {
        #[command(flatten)]
        common: Common,
        /// Total objects to create (split evenly between clients).
        #[arg(long, default_value_t = 16000)]
        objects: usize,
        /// What to create: configmaps, or pods with no node.
        #[arg(long, default_value = "configmaps", value_parser = ["configmaps", "pods"])]
        kind: String,
        /// Namespace to create them in.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

/// The `bench store` load (`clients` clients, `ops` puts of 256 bytes) against
/// the cluster of the client config at `config`; prints its summary line.
pub(crate) async fn store_load(
    config: &Path,
    clients: usize,
    conns: usize,
    ops: usize,
) -> Result<ExitCode> {
    let common = Common {
        clients,
        conns,
        json: false,
    };
    // Boxed: `run` reaches this function again through `bench failover`.
    Box::pin(run(
        Cmd::Store {
            common,
            ops,
            value_size: 256,
        },
        Some(config),
    ))
    .await
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    match cmd {
        Cmd::Failover(a) => crate::failover::run(a).await,
        Cmd::Scheduler(a) => crate::podbench::scheduler(a, config).await,
        Cmd::Startup(a) => crate::podbench::startup(a, config).await,
        Cmd::Nodes(a) => crate::podbench::nodes(a, config).await,
        Cmd::Proxy(a) => crate::proxybench::run(a, config).await,
        Cmd::Watch(a) => crate::watchbench::run(a, config).await,
        Cmd::Store {
            common,
            ops,
            value_size,
        } => {
            let value = Arc::new(vec![b'v'; value_size]);
            let run_id: u32 = rand::random();
            let pool = quic_pool(&common, config).await?;
            drive("store", &common, ops, pool, move |client, c, i| {
                let value = value.clone();
                async move {
                    let key = format!("bench/{run_id:08x}/{c}/{i}");
                    match client.put(&key, value.to_vec(), Expect::Any).await? {
                        Ok(_) => Ok(()),
                        Err(e) => bail!("put {key}: {e}"),
                    }
                }
            })
            .await
        }
        Cmd::Api {
            common,
            objects,
            kind,
            namespace,
        } => {
            let run_id: u32 = rand::random();
            let ns = Arc::new(namespace);
            let pool = quic_pool(&common, config).await?;
            drive("api", &common, objects, pool, move |client, c, i| {
                let (kind, ns) = (kind.clone(), ns.clone());
                async move {
                    let name = format!("bench-{run_id:08x}-{c}-{i}");
                    let body = object(&kind, &name);
                    let mut req = ObjectRequest::new(Verb::Create, &kind, Some(&ns), None);
                    req.body = serde_json::to_vec(&body)?;
                    let resp = client.object(req).await?;
                    match resp.status() {
                        None => Ok(()),
                        Some(s) => bail!("create {kind}/{name}: {}", s.message),
                    }
                }
            })
            .await
        }
        Cmd::Http {
            common,
            objects,
            namespace,
            server,
        } => {
            let run_id: u32 = rand::random();
            let pool = http_pool(&common, config, server).await?;
            let ns = Arc::new(namespace);
            drive("http", &common, objects, pool, move |conn, c, i| {
                let ns = ns.clone();
                async move {
                    let name = format!("bench-{run_id:08x}-{c}-{i}");
                    let body = serde_json::to_vec(&object("configmaps", &name))?;
                    let path = format!("/api/v1/namespaces/{ns}/configmaps");
                    let (code, answer) = conn.post(&path, body).await?;
                    if code != 201 {
                        bail!(
                            "create configmaps/{name}: HTTP {code}: {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                    Ok(())
                }
            })
            .await
        }
    }
}

/// `--conns` QUIC clients for the cluster of the client config at `config`,
/// each preferring the leader.
async fn quic_pool(common: &Common, config: Option<&Path>) -> Result<Vec<Arc<Client>>> {
    let path = config_path(config);
    let cfg =
        ClientConfig::load(&path).with_context(|| format!("client config {}", path.display()))?;
    let probe = Client::new(&cfg)?;
    let leader = probe.status().await?.leader_addr;
    let mut pool = Vec::new();
    for _ in 0..common.conns.max(1) {
        let c = Client::new(&cfg)?;
        if let Some(l) = &leader {
            let _ = c.prefer(l).await;
        }
        pool.push(Arc::new(c));
    }
    Ok(pool)
}

/// `--conns` HTTP/2 connections to the API server, with the client config's certificate.
async fn http_pool(
    common: &Common,
    config: Option<&Path>,
    server: Option<String>,
) -> Result<Vec<Arc<H2>>> {
    let path = config_path(config);
    let cfg =
        ClientConfig::load(&path).with_context(|| format!("client config {}", path.display()))?;
    let server = match server.or(cfg.api_server.clone()) {
        Some(s) => s,
        None => {
            let leader = Client::new(&cfg)?.status().await?.leader_addr;
            format!("https://{}", leader.context("the cluster has no leader")?)
        }
    };
    let authority = server
        .strip_prefix("https://")
        .with_context(|| format!("--server {server:?}: must be an https:// URL"))?
        .trim_end_matches('/')
        .to_string();
    let tls = ferry_api::tls::https_client_config(
        &cfg.ca_cert,
        &ferry_api::tls::CertPair {
            cert_pem: cfg.client_cert.clone(),
            key_pem: cfg.client_key.clone(),
        },
        &[b"h2"],
    )?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .with_context(|| format!("server name {host:?}"))?;
    let mut pool = Vec::new();
    for _ in 0..common.conns.max(1) {
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        tcp.set_nodelay(true)?;
        let stream = connector
            .connect(name.clone(), tcp)
            .await
            .with_context(|| format!("TLS to {authority}"))?;
        let (send, conn) = h2::client::handshake(stream)
            .await
            .with_context(|| format!("HTTP/2 to {authority}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        pool.push(Arc::new(H2 {
            send,
            authority: authority.clone(),
        }));
    }
    Ok(pool)
}

/// One HTTP/2 connection to the API server.
struct H2 {
    send: h2::client::SendRequest<bytes::Bytes>,
    authority: String,
}

impl H2 {
    /// POSTs a JSON body; answers the status code and the response body.
    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>)> {
        let mut send = self.send.clone().ready().await?;
        let req = http::Request::post(format!("https://{}{path}", self.authority))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(())?;
        let (resp, mut stream) = send.send_request(req, false)?;
        stream.send_data(bytes::Bytes::from(body), true)?;
        let resp = resp.await?;
        let code = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        Ok((code, out))
    }
}

/// The object `ferry bench api` creates.
fn object(kind: &str, name: &str) -> serde_json::Value {
    if kind == "pods" {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]},
        })
    } else {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "data": {"key": "v".repeat(200)},
        })
    }
}

/// Runs `op(conn, c, i)` for `total / clients` sequential `i` in each of
/// `clients` concurrent tasks (client `c` on connection `c % pool.len()`) and
/// prints the summary line.
async fn drive<C, F, Fut>(
    name: &str,
    common: &Common,
    total: usize,
    pool: Vec<Arc<C>>,
    op: F,
) -> Result<ExitCode>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let clients = common.clients;
    if clients == 0 || total < clients {
        bail!("--clients must be at least 1 and the operation count at least --clients");
    }
    let per = total / clients;
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = pool[c % pool.len()].clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            for i in 0..per {
                let t = Instant::now();
                op(client.clone(), c, i).await?;
                h.record(t.elapsed().as_micros() as u64).expect("record");
            }
            Ok::<_, anyhow::Error>(h)
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
    if common.json {
        outln!(
            "{}",
            serde_json::json!({"bench": name, "clients": clients, "ops": n, "secs": secs,
                "ops_per_s": ops_per_s.round(), "p50_us": p50, "p99_us": p99})
        );
    } else {
        outln!("{name} clients={clients} ops={n} secs={secs:.2} ops_per_s={ops_per_s:.0} p50_us={p50} p99_us={p99}");
    }
    Ok(ExitCode::SUCCESS)
}
