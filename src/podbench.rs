//! `ferry bench scheduler` and `ferry bench startup`: pods created in a fresh
//! namespace, timed from their create request to what a watch of that
//! namespace shows — bound (`spec.nodeName` set) for the scheduler, Running and
//! Ready for startup. The scheduler's nodes are hollow (`ferry_node::hollow`),
//! run in this process; startup uses the cluster's real nodes.

use anyhow::{bail, Context, Result};
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::Client;
use ferry_node::hollow;
use ferry_node::objects::Objects;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hollow nodes joining at once (`bench nodes`).
const JOINS_AT_ONCE: usize = 64;

#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// Hollow nodes to run (in this process) for the pods.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods to create.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Concurrent pod creates.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// The hollow nodes' Lease renewal interval, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    lease_interval_ms: u64,
    /// The hollow nodes' name prefix.
    #[arg(long, default_value = "bench-hollow")]
    name_prefix: String,
}

#[derive(clap::Args)]
pub struct NodesArgs {
    /// Hollow nodes to run (in this process, over `--connections` connections).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// How long to hold them, after they are registered.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Lease renewal interval in milliseconds (`ferry node`'s default: 2 s,
    /// within the masters' 7 s grace).
    #[arg(long, default_value_t = 2000)]
    lease_interval_ms: u64,
    /// The hollow nodes' name prefix.
    #[arg(long, default_value = "bench-node")]
    name_prefix: String,
    /// 0 (the default): every hollow node joins with a bootstrap token and
    /// keeps its own QUIC connection with its own certificate (`node:<name>`,
    /// the node authorizer applying), as `ferry node` does. C > 0: the
    /// hollow nodes share C connections with the admin's credentials (node i
    /// uses connection i mod C), spread over the masters in turn.
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Run even when the cluster CIDR holds fewer node pod ranges than
    /// `--nodes` (the rest wait for one: node IPAM under exhaustion). By
    /// default that is refused: start the cluster with `ferry up
    /// --cluster-cidr` wide enough.
    #[arg(long)]
    exhaust_pod_ranges: bool,
}

#[derive(clap::Args)]
pub struct StartupArgs {
    /// Pods to create (each runs `sleep 3600` on a real node).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Concurrent pod creates.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// Per pod: when its create was sent, and when the watch showed it arrive.
#[derive(Default)]
pub(crate) struct Times {
    pub(crate) sent: Vec<Option<Instant>>,
    pub(crate) seen: Vec<Option<Instant>>,
    count: usize,
}

impl Times {
    pub(crate) fn new(n: usize) -> Times {
        Times {
            sent: vec![None; n],
            seen: vec![None; n],
            count: 0,
        }
    }

    /// Milliseconds from send to arrival, sorted.
    pub(crate) fn latencies_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .sent
            .iter()
            .zip(&self.seen)
            .filter_map(|(s, a)| Some(a.as_ref()?.saturating_duration_since(*s.as_ref()?)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The index `i` of a pod named `p-<i>`.
pub(crate) fn pod_index(pod: &Value) -> Option<usize> {
    pod.pointer("/metadata/name")?
        .as_str()?
        .strip_prefix("p-")?
        .parse()
        .ok()
}

fn bound(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

fn running_ready(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .is_some_and(|c| c["status"] == "True")
}

/// Connects with the client config, preferring the leader (the scheduler and
/// every write are there).
pub(crate) async fn connect(config: Option<&Path>) -> Result<Objects> {
    let client = crate::client::connect(config)?;
    if let Some(l) = client.status().await?.leader_addr {
        let _ = client.prefer(&l).await;
    }
    Ok(Objects {
        client,
        ca_pem: "".into(),
    })
}

pub(crate) async fn create_namespace(api: &Objects, ns: &str) -> Result<()> {
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await
    .with_context(|| format!("creating namespace {ns}"))?;
    Ok(())
}

/// Deletes namespace `ns` and waits (up to `limit`) until it is gone.
pub(crate) async fn delete_namespace(api: &Objects, ns: &str, limit: Duration) -> Result<()> {
    api.delete("namespaces", None, ns, &json!({})).await?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if api.get("namespaces", None, ns).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("namespace {ns} still exists after {}s", limit.as_secs())
}

/// Watches pods in `ns` and records, per `p-<i>`, when `arrived(pod)` first
/// held; returns once every pod arrived.
async fn watch_arrivals(
    client: Arc<Client>,
    ns: String,
    times: Arc<Mutex<Times>>,
    arrived: fn(&Value) -> bool,
) -> Result<()> {
    let mut w = client.watch_objects(ObjectRequest::new(Verb::Watch, "pods", Some(&ns), None));
    loop {
        let ev = w.next().await?;
        let now = Instant::now();
        let Ok(pod) = serde_json::from_slice::<Value>(&ev.object) else {
            continue;
        };
        let Some(i) = pod_index(&pod) else { continue };
        if !arrived(&pod) {
            continue;
        }
        let mut t = times.lock().expect("not poisoned");
        if i < t.seen.len() && t.seen[i].is_none() {
            t.seen[i] = Some(now);
            t.count += 1;
            if t.count == t.seen.len() {
                return Ok(());
            }
        }
    }
}

/// Creates pods `p-0` .. `p-<n-1>` in `ns` from `pod(i)`, `clients` at a time,
/// recording when each create was sent.
pub(crate) async fn create_pods(
    api: &Objects,
    ns: &str,
    n: usize,
    clients: usize,
    times: &Arc<Mutex<Times>>,
    pod: impl Fn(usize) -> Value,
) -> Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(clients.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let (api, ns, times, body) = (api.clone(), ns.to_string(), times.clone(), pod(i));
        set.spawn(async move {
            times.lock().expect("not poisoned").sent[i] = Some(Instant::now());
            let r = api.create("pods", Some(&ns), &body).await;
            drop(permit);
            r.with_context(|| format!("creating pod p-{i}"))
        });
        // Surface a failing cluster early rather than after every create.
        while let Some(done) = set.try_join_next() {
            done??;
        }
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(())
}

/// Waits for `watch` to see every pod, at most `limit`, saying every 5 s how
/// many it has seen.
async fn arrivals(
    mut watch: tokio::task::JoinHandle<Result<()>>,
    times: &Arc<Mutex<Times>>,
    limit: Duration,
    what: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = || {
            let t = times.lock().expect("not poisoned");
            (t.count, t.seen.len())
        };
        tokio::select! {
            r = &mut watch => return r?,
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                let (n, of) = seen();
                eprintln!("{n} of {of} pods {what}");
            }
            () = tokio::time::sleep_until(deadline) => {
                watch.abort();
                let (n, of) = seen();
                bail!("only {n} of {of} pods {what} within {}s", limit.as_secs())
            }
        }
    }
}

/// `ferry bench scheduler`.
pub async fn scheduler(a: SchedulerArgs, config: Option<&Path>) -> Result<ExitCode> {
    if a.nodes == 0 || a.pods == 0 {
        bail!("--nodes and --pods must be at least 1");
    }
    if a.pods > a.nodes * ferry_node::node::MAX_PODS as usize {
        bail!(
            "--pods {} do not fit on {} nodes of {} pods each",
            a.pods,
            a.nodes,
            ferry_node::node::MAX_PODS
        );
    }
    let api = connect(config).await?;
    let opts = hollow::Options::new(
        &a.name_prefix,
        a.nodes,
        Duration::from_millis(a.lease_interval_ms.max(100)),
    );
    let t = Instant::now();
    let conns = hollow::Conns::new(vec![api.clone()])?;
    hollow::register(&conns, &opts).await?;
    eprintln!(
        "{} hollow nodes registered in {:.1}s",
        a.nodes,
        t.elapsed().as_secs_f64()
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let nodes = tokio::spawn(hollow::run(conns.clone(), opts.clone(), stop));
    let ns = format!("bench-sched-{:08x}", rand::random::<u32>());
    let result = measure_scheduler(&api, &a, &opts, &ns).await;
    // Pods deleted with the namespace are finished by the hollow nodes.
    let cleanup = delete_namespace(&api, &ns, Duration::from_secs(300)).await;
    let _ = stop_tx.send(true);
    let _ = nodes.await;
    let unregistered = hollow::unregister(&conns, &opts).await;
    let secs_and_p99 = result?;
    cleanup?;
    unregistered?;
    let (secs, p99) = secs_and_p99;
    outln!(
        "scheduler nodes={} pods={} secs={secs:.2} pods_per_s={:.0} p99_schedule_ms={p99:.0}",
        a.nodes,
        a.pods,
        a.pods as f64 / secs
    );
    Ok(ExitCode::SUCCESS)
}

/// `ferry bench nodes`: registers hollow nodes, holds them for `--seconds`
/// renewing their Leases, and reports Lease writes per second, their p99,
/// the leader's CPU share (when it runs on this machine) and every hollow
/// node a master marked not Ready meanwhile.
pub async fn nodes(a: NodesArgs, config: Option<&Path>) -> Result<ExitCode> {
    if a.nodes == 0 || a.nodes > 50_000 || a.seconds == 0 {
        bail!("--nodes must be 1..=50000 and --seconds at least 1");
    }
    if a.connections > 1000 {
        bail!("--connections must be 0..=1000, got {}", a.connections);
    }
    let api = connect(config).await?;
    check_pod_ranges(&api, a.nodes, a.exhaust_pod_ranges).await?;
    let mut opts = hollow::Options::new(
        &a.name_prefix,
        a.nodes,
        Duration::from_millis(a.lease_interval_ms.max(100)),
    );
    let (conns, how) = if a.connections == 0 {
        let t = Instant::now();
        let nodes = joined_connections(&api, config, &opts).await?;
        eprintln!(
            "{} hollow nodes joined in {:.1}s (a bootstrap token, a certificate each)",
            a.nodes,
            t.elapsed().as_secs_f64()
        );
        let how = format!(
            "{} connections, one per node with its own identity",
            a.nodes
        );
        (hollow::Conns::per_node(nodes, api.clone())?, how)
    } else {
        let n = a.connections.min(a.nodes);
        let conns = hollow::Conns::new(spread_connections(config, n).await?)?;
        (conns, format!("{n} shared admin connections"))
    };
    let beats = Arc::new(Mutex::new(Vec::new()));
    opts.heartbeats = Some(beats.clone());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Leases are renewed from the start: with a connection and a certificate
    // each, registering 5,000 nodes takes longer than the masters' grace, and
    // the first ones registered would go unready waiting for the last.
    let nodes = tokio::spawn(hollow::run(conns.clone(), opts.clone(), stop));
    // Marks are watched from the start and counted apart: while nodes
    // register, and from the end of registration on (the hold).
    let marks = Arc::new(Mutex::new(Marks::default()));
    let unready = tokio::spawn(not_ready_marks(
        api.client.clone(),
        opts.clone(),
        marks.clone(),
    ));
    let t = Instant::now();
    hollow::register(&conns, &opts).await?;
    eprintln!(
        "{} hollow nodes registered in {:.1}s over {how}",
        a.nodes,
        t.elapsed().as_secs_f64(),
    );
    marks
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .holding = true;
    // A first interval to spread the renewals, then the measured window.
    tokio::time::sleep(opts.lease_interval).await;
    let leader = leader_process(&api.client).await;
    let cpu0 = leader.and_then(cpu_ticks);
    beats
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = leader.and_then(cpu_ticks);
    let mut lat = std::mem::take(&mut *beats.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let _ = stop_tx.send(true);
    let _ = nodes.await;
    unready.abort();
    let marked = std::mem::take(&mut *marks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let unregistered = hollow::unregister(&conns, &opts).await;
    lat.sort_unstable();
    let p99 = lat
        .get((lat.len() * 99 / 100).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |us| *us as f64 / 1000.0);
    // /proc counts in USER_HZ, 100 per second on Linux.
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / secs,
        _ => {
            eprintln!("the leader does not run on this machine: leader_cpu_pct=-1");
            -1.0
        }
    };
    eprintln!(
        "nodes marked not Ready by a master while registering: {}",
        marked.registering.len()
    );
    eprintln!(
        "nodes marked not Ready by a master after registration: {}",
        marked.held.len()
    );
    for n in marked.held.iter().take(20) {
        eprintln!("  {n}");
    }
    // The figures stand even when the clean-up failed (a write's outcome
    // unknown across a failover): said here, and in the exit status.
    if let Err(e) = &unregistered {
        eprintln!("removing the hollow nodes failed: {e:#}");
    }
    outln!(
        "nodes count={} secs={secs:.0} heartbeat_writes_per_s={:.0} leader_cpu_pct={cpu:.0} p99_heartbeat_ms={p99:.0} not_ready_registering={} not_ready_held={}",
        a.nodes,
        lat.len() as f64 / secs,
        marked.registering.len(),
        marked.held.len(),
    );
    Ok(
        if !marked.held.is_empty() || !marked.registering.is_empty() {
            ExitCode::from(2)
        } else if unregistered.is_err() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Refuses `nodes` hollow nodes (unless `exhaust`) when the cluster CIDR the
/// masters publish holds fewer node pod ranges than that.
async fn check_pod_ranges(api: &Objects, nodes: usize, exhaust: bool) -> Result<()> {
    use ferry_api::network::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
    let Some(cm) = api
        .get("configmaps", Some(CONFIGMAP_NAMESPACE), CONFIGMAP_NAME)
        .await?
    else {
        eprintln!(
            "no {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} ConfigMap: the pod ranges are not checked"
        );
        return Ok(());
    };
    let data: std::collections::BTreeMap<String, String> =
        serde_json::from_value(cm["data"].clone()).unwrap_or_default();
    let net = ferry_api::network::Network::from_data(&data).map_err(anyhow::Error::msg)?;
    let ranges = net.cluster_cidr.subnets(net.node_cidr_prefix);
    if (nodes as u128) <= ranges {
        return Ok(());
    }
    let msg = format!(
        "the cluster CIDR {} holds {ranges} node pod ranges (/{}), fewer than --nodes {nodes}",
        net.cluster_cidr, net.node_cidr_prefix
    );
    if exhaust {
        eprintln!(
            "{msg}: {} hollow nodes will wait for one",
            nodes as u128 - ranges
        );
        return Ok(());
    }
    bail!(
        "{msg}; start the cluster with a wider one (`ferry up --cluster-cidr 10.64.0.0/11`: 8192 ranges), \
         or pass --exhaust-pod-ranges to run node IPAM out of ranges on purpose"
    )
}

/// `n` connections of the client config, the k-th to the (k mod masters)-th
/// master.
/// Joins every hollow node as `ferry node --join` does — a bootstrap token
/// made for the run (deleted after), a key pair and a certificate for
/// `node:<name>` each — and returns each node's own connection, node `i`'s
/// first dialing master `i mod M`.
async fn joined_connections(
    api: &Objects,
    config: Option<&Path>,
    opts: &hollow::Options,
) -> Result<Vec<Objects>> {
    use ferry_api::token::{BootstrapToken, NAMESPACE};
    let masters = crate::client::connect(config)?.masters().to_vec();
    let token = BootstrapToken::generate();
    let expires = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let secret = token.to_secret(Some(&expires), Some("ferry bench nodes"));
    api.create("secrets", Some(NAMESPACE), &secret)
        .await
        .context("creating the bench's bootstrap token")?;
    let token = Arc::new(token);
    let at_once = Arc::new(tokio::sync::Semaphore::new(JOINS_AT_ONCE));
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..opts.count {
        let permit = at_once.clone().acquire_owned().await?;
        let (token, name) = (token.clone(), opts.name(i));
        let mut order = masters.clone();
        order.rotate_left(i % masters.len().max(1));
        joins.spawn(async move {
            let joined = ferry_node::join::join(&order, &token, &name, Duration::from_secs(86_400))
                .await
                .with_context(|| format!("joining hollow node {name}"));
            drop(permit);
            let mut cfg = joined?;
            let m = cfg.masters.len().max(1);
            cfg.masters.rotate_left(i % m);
            anyhow::Ok((
                i,
                Objects {
                    client: Arc::new(Client::for_node(&cfg)?),
                    ca_pem: "".into(),
                },
            ))
        });
    }
    let mut joined: Vec<Option<Objects>> = vec![None; opts.count];
    let mut failed = None;
    while let Some(done) = joins.join_next().await {
        match done.context("a join task failed").and_then(|r| r) {
            Ok((i, o)) => joined[i] = Some(o),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    let name = token.secret_name();
    if let Err(e) = api
        .delete("secrets", Some(NAMESPACE), &name, &json!({}))
        .await
    {
        eprintln!("deleting the bench's bootstrap token {name}: {e:#}");
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(joined.into_iter().flatten().collect())
}

async fn spread_connections(config: Option<&Path>, n: usize) -> Result<Vec<Objects>> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let client = crate::client::connect(config)?;
        let masters = client.masters().to_vec();
        if let Some(m) = masters.get(k % masters.len().max(1)) {
            // A master that does not answer: the client dials another.
            if let Err(e) = client.prefer(m).await {
                eprintln!("connection {k}: master {m}: {e}; the client picks another");
            }
        }
        out.push(Objects {
            client,
            ca_pem: "".into(),
        });
    }
    Ok(out)
}

/// The hollow nodes a master marked not Ready, by when it was seen.
#[derive(Default)]
struct Marks {
    /// Set once every node is registered.
    holding: bool,
    registering: BTreeSet<String>,
    held: BTreeSet<String>,
}

/// Watches Nodes until aborted, adding to `marks` each hollow node seen with
/// Ready other than True.
async fn not_ready_marks(client: Arc<Client>, opts: hollow::Options, marks: Arc<Mutex<Marks>>) {
    let mut last = HashMap::new();
    loop {
        let mut w = client.watch_objects(ObjectRequest::new(Verb::Watch, "nodes", None, None));
        while let Ok(ev) = w.next().await {
            let Ok(node) = serde_json::from_slice::<Value>(&ev.object) else {
                continue;
            };
            let name = node.pointer("/metadata/name").and_then(Value::as_str);
            let Some(name) = name.filter(|n| opts.index(n).is_some()) else {
                continue;
            };
            let ready = node
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True");
            // A mark is a change to not Ready: a node marked while registering
            // and still unready after is not marked again.
            let was_ready = last.insert(name.to_string(), ready != Some(false));
            if ready == Some(false) && was_ready != Some(false) {
                if let Ok(mut m) = marks.lock() {
                    if m.holding {
                        m.held.insert(name.to_string());
                    } else {
                        m.registering.insert(name.to_string());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The leader's process on this machine: the one whose command line has
/// `--listen <its address>` (as `ferry up` starts masters).
pub(crate) async fn leader_process(client: &Client) -> Option<u32> {
    let s = client.status().await.ok()?;
    let addr = s.leader_addr?;
    let want = format!("--listen\0{addr}\0");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmd).contains(&want).then_some(pid)
    })
}

/// A process's user + system CPU time in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The scheduler run proper: (first create → last bound in seconds, p99 in ms).
async fn measure_scheduler(
    api: &Objects,
    a: &SchedulerArgs,
    opts: &hollow::Options,
    ns: &str,
) -> Result<(f64, f64)> {
    create_namespace(api, ns).await?;
    // The scheduler sees the nodes: a pod pinned to the last one gets bound.
    let last = opts.name(a.nodes - 1);
    let warm = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "warmup"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": last},
            "containers": [{"name": "c", "image": "busybox:1.36"}]}});
    api.create("pods", Some(ns), &warm).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = api.get("pods", Some(ns), "warmup").await?;
        if p.as_ref().is_some_and(bound) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the scheduler did not place a pod on {last} within 60s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the scheduler sees the hollow nodes; creating {} pods",
        a.pods
    );
    let times = Arc::new(Mutex::new(Times::new(a.pods)));
    let watch = tokio::spawn(watch_arrivals(
        api.client.clone(),
        ns.to_string(),
        times.clone(),
        bound,
    ));
    // The watch is open before the first create (its first answer comes at once).
    tokio::time::sleep(Duration::from_millis(200)).await;
    create_pods(api, ns, a.pods, a.clients, &times, |i| {
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench-scheduler"}},
        "spec": {
            "nodeSelector": {(hollow::LABEL.0): hollow::LABEL.1},
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.36",
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
        }})
    })
    .await?;
    let limit = Duration::from_secs(60 + a.pods as u64 / 50);
    arrivals(watch, &times, limit, "were bound").await?;
    let t = times.lock().expect("not poisoned");
    let first = t.sent.iter().flatten().min().copied().context("no pods")?;
    let last = t.seen.iter().flatten().max().copied().context("no pods")?;
    let lat = t.latencies_ms();
    Ok((
        last.duration_since(first).as_secs_f64(),
        quantile(&lat, 0.99),
    ))
}

/// `ferry bench startup`.
pub async fn startup(a: StartupArgs, config: Option<&Path>) -> Result<ExitCode> {
    if a.pods == 0 {
        bail!("--pods must be at least 1");
    }
    let api = connect(config).await?;
    let nodes = api.list("nodes", "").await?;
    let real = nodes
        .iter()
        .filter(|n| n.pointer("/metadata/labels/type").and_then(Value::as_str) != Some("hollow"))
        .filter(|n| {
            n.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True")
        })
        .count();
    if real == 0 {
        bail!("the cluster has no Ready node to start pods on (start one: `ferry up --nodes 2`)");
    }
    let ns = format!("bench-startup-{:08x}", rand::random::<u32>());
    let result = measure_startup(&api, &a, &ns).await;
    let cleanup = delete_namespace(&api, &ns, Duration::from_secs(120)).await;
    let lat = result?;
    cleanup?;
    outln!(
        "startup pods={} p50_ms={:.0} p99_ms={:.0}",
        a.pods,
        quantile(&lat, 0.5),
        quantile(&lat, 0.99)
    );
    Ok(ExitCode::SUCCESS)
}

async fn measure_startup(api: &Objects, a: &StartupArgs, ns: &str) -> Result<Vec<f64>> {
    create_namespace(api, ns).await?;
    let times = Arc::new(Mutex::new(Times::new(a.pods)));
    let watch = tokio::spawn(watch_arrivals(
        api.client.clone(),
        ns.to_string(),
        times.clone(),
        running_ready,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    create_pods(api, ns, a.pods, a.clients, &times, |i| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench-startup"}},
            "spec": {
                // Real nodes only.
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": hollow::LABEL.0, "operator": "NotIn", "values": [hollow::LABEL.1]}]}]}}},
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox:1.36",
                    "command": ["sleep", "3600"]}],
            }})
    })
    .await?;
    arrivals(
        watch,
        &times,
        Duration::from_secs(120),
        "were Running and Ready",
    )
    .await?;
    let lat = times.lock().expect("not poisoned").latencies_ms();
    Ok(lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn pods_are_told_apart_by_index_and_state() {
        assert_eq!(pod_index(&json!({"metadata": {"name": "p-12"}})), Some(12));
        assert_eq!(pod_index(&json!({"metadata": {"name": "warmup"}})), None);
        assert!(!bound(&json!({"spec": {}})));
        assert!(!bound(&json!({"spec": {"nodeName": ""}})));
        assert!(bound(&json!({"spec": {"nodeName": "n1"}})));
        let ready = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(running_ready(&ready));
        assert!(!running_ready(&json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}]}})));
        assert!(!running_ready(&json!({"status": {"phase": "Pending"}})));
    }
}
