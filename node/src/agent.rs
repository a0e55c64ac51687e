//! The node agent's loops: registration, heartbeats (Lease and Node status),
//! certificate renewal, and pod sync.
//!
//! Pod sync is level-triggered: every [`SYNC`] the agent lists the pods bound
//! to it and drives one [`PodWorker`] per pod towards its spec; pods it runs
//! that the API no longer has (deleted while the agent was down, or forced)
//! are stopped and their directories removed.

use crate::env;
use crate::net::proxy::Known;
use crate::net::state::NodeNetwork;
use crate::node::{self, Machine, NetworkReport, Reserved};
use crate::objects::{code_of, Objects};
use crate::pods::PodWorker;
use anyhow::{Context, Result};
use ferry_api::Client;
use ferry_config::ClientConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often pods are synced.
pub const SYNC: Duration = Duration::from_millis(500);
/// How often the agent reads its Node to see whether its status needs writing.
pub const STATUS_CHECK: Duration = Duration::from_secs(5);
/// How often the directories of deleted local-path volumes are looked for.
const STORAGE_PRUNE: Duration = Duration::from_secs(20);

/// Whether a stored Node says Ready=True (what a live agent reports).
fn reports_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

/// A JSON object of strings (labels) as a sorted map.
fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// What a node agent runs with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data dir (credentials, pod directories).
    pub data_dir: PathBuf,
    /// The node's name.
    pub name: String,
    /// The node's address (InternalIP, and the pods' IP while pods share it).
    pub address: IpAddr,
    /// Lease renewal interval.
    pub lease_interval: Duration,
    /// Lease duration written into the Lease.
    pub lease_duration: Duration,
    /// Node status is written at least this often (and whenever it changes).
    pub status_interval: Duration,
    /// System reservations.
    pub reserved: Reserved,
    /// Certificate lifetime asked for on renewal.
    pub cert_lifetime: Duration,
    /// The `ferry` binary (the container shim).
    pub shim: PathBuf,
    /// Pods share the node's network without trying namespaces.
    pub host_network_only: bool,
    /// Eviction thresholds (node-pressure eviction, [`crate::eviction`]).
    pub eviction: ferry_config::node::Eviction,
    /// Graceful node shutdown ([`crate::shutdown`]).
    pub shutdown: ferry_config::node::Shutdown,
}

/// Runs the agent until `outer_stop` turns true, leaving running pods
/// running with their networks (see [`crate::net::state`]), or until a
/// graceful node shutdown that `shutdown` turning true begins is done
/// ([`crate::shutdown`]).
pub async fn run(
    opts: Options,
    cfg: ClientConfig,
    outer_stop: tokio::sync::watch::Receiver<bool>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut cfg = cfg;
    // What the agent's tasks stop on: the caller's stop, or the end of a
    // graceful shutdown.
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let (tx, mut outer) = (stop_tx.clone(), outer_stop);
        tokio::spawn(async move {
            let _ = outer.wait_for(|s| *s).await;
            tx.send_replace(true);
        });
    }
    let client = Arc::new(Client::for_node(&cfg).context("node client")?);
    let api = Objects {
        client,
        ca_pem: cfg.ca_cert.clone().into(),
    };
    let machine = Machine::read(&opts.data_dir);
    let address = opts.address.to_string();
    let mut net = NodeNetwork::detect(&opts.name, &opts.data_dir, opts.host_network_only);
    tracing::info!(mode = net.mode.as_str(), "pod network: {}", net.why);
    // Events about pods and about the node itself, as its kubelet's.
    let mut recorder = crate::events::Recorder::default();
    let mut node_changes = crate::events::NodeChanges::default();
    let before = api.get("nodes", None, &opts.name).await.ok().flatten();
    let status = register(
        &api,
        &opts,
        &machine,
        &net.report(),
        node::Pressure::default(),
        false,
    )
    .await?;
    tracing::info!(node = %opts.name, address = %address, "node registered");
    // The Lease with the registration, before anything else is written: a
    // Ready node without one looks silent to the node lifecycle controller.
    let first_lease = renew_lease(&api, &opts).await;
    if let Err(e) = &first_lease {
        tracing::warn!(error = %e, "lease renewal failed; retrying");
    }
    node_event(
        &api,
        &mut recorder,
        &opts.name,
        "Starting",
        "Starting kubelet.",
    )
    .await;
    status_events(&api, &mut recorder, &opts.name, before.as_ref(), &status).await;
    tokio::spawn(crate::tunnel::run(
        opts.data_dir.clone(),
        opts.name.clone(),
        api.clone(),
        stop.clone(),
    ));
    // Services and EndpointSlices for the proxy, DNS and the Service links;
    // the pod network sends its NetInfo into `net_tx` once set up (namespace mode).
    let known = crate::net::proxy::watch_objects(api.client.clone(), stop.clone());
    let (net_tx, net_rx) = tokio::sync::watch::channel(None::<crate::net::NetInfo>);
    tokio::spawn(crate::dns::run(net_rx.clone(), known.clone(), stop.clone()));
    tokio::spawn(crate::net::ingress::run(
        opts.address,
        opts.name.clone(),
        api.clone(),
        known.clone(),
        stop.clone(),
    ));
    let proxy = tokio::spawn(crate::net::proxy::run(net_rx, known.clone(), stop.clone()));
    // In host mode (no namespaces, no nftables) NodePorts go through a
    // userspace proxy on the node's address.
    if net.mode == crate::net::Mode::Host {
        tokio::spawn(crate::net::userspace::run(
            opts.address,
            opts.name.clone(),
            known.clone(),
            stop.clone(),
        ));
    }
    // The pods bound to this node, followed by a watch: a new pod starts as
    // soon as its binding lands, and a sync reads no list.
    let mut own = watch_own_pods(api.client.clone(), &opts.name, stop.clone());
    let mut workers: HashMap<String, PodWorker> = HashMap::new();
    let cgroups = crate::cgroups::Layout::detect();
    match &cgroups {
        crate::cgroups::Layout::Unavailable(why) => {
            tracing::warn!("container resource limits are not enforced: {why}")
        }
        layout => tracing::info!(?layout, "containers get cgroups with their limits"),
    }
    let pods_dir = opts.data_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)?;
    // Resource metrics: the sampler reads the pods this loop runs.
    let (usage_tx, usage_rx) = tokio::sync::watch::channel(crate::metrics::Snapshot::default());
    // The latest usage report, also what eviction ranks pods by.
    let (report_tx, report_rx) = tokio::sync::watch::channel(None);
    tokio::spawn(crate::metrics::run(
        opts.data_dir.clone(),
        opts.name.clone(),
        cgroups.clone(),
        usage_rx,
        report_tx,
        stop.clone(),
    ));
    let mut pressure = node::Pressure::default();
    let mut eviction_state = crate::eviction::State::default();
    let mut shutting: Option<crate::shutdown::Progress> = None;
    let eviction_every = Duration::from_secs(opts.eviction.interval_secs.max(1));
    let mut next_eviction = Instant::now() + eviction_every;
    let mut node_labels = std::collections::BTreeMap::new();
    let mut next_lease = match first_lease {
        Ok(()) => Instant::now() + opts.lease_interval,
        Err(_) => Instant::now(),
    };
    let mut next_status = Instant::now() + opts.status_interval;
    let mut next_check = Instant::now() + STATUS_CHECK;
    let mut renew_at = crate::join::renew_at(&cfg.client_cert)?;
    let storage = crate::volumes::storage_dir(&opts.data_dir);
    let mut next_prune = Instant::now() + STORAGE_PRUNE;
    loop {
        if Instant::now() >= next_lease {
            match renew_lease(&api, &opts).await {
                Ok(()) => next_lease = Instant::now() + opts.lease_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed; retrying");
                    next_lease = Instant::now() + Duration::from_millis(200);
                }
            }
        }
        if Instant::now() >= next_check {
            // As the kubelet: read the Node often, write its status only when
            // the stored one is not what this agent reports (a master marked it
            // unreachable while it was cut off) or after the longer interval.
            let stored = api.get("nodes", None, &opts.name).await;
            let stale = match &stored {
                Ok(Some(n)) => {
                    node_labels = string_map(&n["metadata"]["labels"]);
                    sync_pressure_taints(&api, &opts.name, n, pressure).await;
                    if let Some(reason) = node_changes.schedulable(n) {
                        node_status_event(&api, &mut recorder, &opts.name, reason).await;
                    }
                    reports_ready(n) == shutting.is_some() || reported_pressure(n) != pressure
                }
                Ok(None) => {
                    match register(
                        &api,
                        &opts,
                        &machine,
                        &net.report(),
                        pressure,
                        shutting.is_some(),
                    )
                    .await
                    {
                        Ok(status) => {
                            status_events(&api, &mut recorder, &opts.name, None, &status).await
                        }
                        Err(e) => tracing::warn!(error = %e, "registering the node again failed"),
                    }
                    false
                }
                Err(_) => false,
            };
            if stale || Instant::now() >= next_status {
                match write_node_status(
                    &api,
                    &opts,
                    &machine,
                    &net.report(),
                    pressure,
                    shutting.is_some(),
                )
                .await
                {
                    Ok(status) => {
                        next_status = Instant::now() + opts.status_interval;
                        if let Ok(Some(n)) = &stored {
                            status_events(&api, &mut recorder, &opts.name, Some(n), &status).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "node status update failed"),
                }
            }
            // The cluster CA as it rotates: trust what the masters trust;
            // a certificate the issuing CA did not sign is renewed now.
            match cluster_trust(&api, &cfg).await {
                Ok(None) => {}
                Ok(Some((trust, signing))) => {
                    if trust != cfg.ca_cert {
                        let new = ClientConfig {
                            ca_cert: trust,
                            ..cfg.clone()
                        };
                        crate::join::store(&opts.data_dir, &new)?;
                        api.client
                            .set_credentials(&new)
                            .context("node client credentials")?;
                        cfg = new;
                        tracing::info!("the cluster's trusted CAs changed; node trusts them");
                    }
                    if ferry_api::tls::issuer_hash(&cfg.client_cert, &[signing.as_str()]).is_none()
                    {
                        renew_at = std::time::SystemTime::now();
                    }
                }
                Err(e) => tracing::debug!(error = %e, "asking the cluster's CAs"),
            }
            next_check = Instant::now() + STATUS_CHECK;
        }
        if Instant::now() >= next_prune {
            // Volumes of the local-path provisioner deleted since: their data goes.
            for (pv, dir) in crate::volumes::stored_volumes(&storage) {
                if let Ok(None) = api.get("persistentvolumes", None, &pv).await {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {
                            tracing::info!(dir = %dir.display(), "removed a deleted volume's directory")
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "removing a deleted volume's directory failed")
                        }
                    }
                }
            }
            next_prune = Instant::now() + STORAGE_PRUNE;
        }
        if std::time::SystemTime::now() >= renew_at {
            match renew_cert(&api, &opts, &cfg).await {
                Ok(new) => {
                    // Written atomically (temporary file, fsync, rename,
                    // directory fsync) before the client takes it: every
                    // holder of this client — the pod and Service watches, the
                    // tunnel's notes — reconnects with the new certificate.
                    crate::join::store(&opts.data_dir, &new)?;
                    api.client
                        .set_credentials(&new)
                        .context("node client credentials")?;
                    renew_at = crate::join::renew_at(&new.client_cert)?;
                    cfg = new;
                    tracing::info!("node certificate renewed");
                }
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed; retrying"),
            }
        }
        if net.advance(&api).await {
            if let Err(e) = write_node_status(
                &api,
                &opts,
                &machine,
                &net.report(),
                pressure,
                shutting.is_some(),
            )
            .await
            {
                tracing::warn!(error = %e, "node status update failed");
            }
            // The proxy and DNS follow the pod network once it is set up.
            if let Some(info) = net.info() {
                if net_tx.borrow().as_ref().map(|i| &i.pod_cidr) != Some(&info.pod_cidr) {
                    net_tx.send_replace(Some(info.clone()));
                }
            }
        }
        // Graceful node shutdown: NotReady at once, then the pods group by
        // group; done once they are gone (their statuses written below).
        if shutting.is_none() && *shutdown.borrow_and_update() {
            tracing::warn!(
                groups = ?opts.shutdown.groups(),
                "node shutting down: stopping its pods, lowest priority first"
            );
            shutting = Some(crate::shutdown::Progress::new(
                &opts.shutdown,
                Instant::now(),
            ));
            if let Err(e) =
                write_node_status(&api, &opts, &machine, &net.report(), pressure, true).await
            {
                tracing::warn!(error = %e, "node status update failed");
            }
        }
        let shutdown_done = match shutting.as_mut() {
            Some(p) => shutdown_step(p, &mut workers) == crate::shutdown::Stage::Done,
            None => false,
        };
        let pods = own.borrow_and_update().current();
        if let Err(e) = sync_pods(
            &api,
            &opts,
            pods,
            &pods_dir,
            (&mut workers, &mut recorder),
            &cgroups,
            &known,
            &mut net,
            (pressure, shutting.is_some()),
        )
        .await
        {
            tracing::warn!(error = %e, "pod sync failed");
        }
        if shutdown_done {
            tracing::info!("node shutdown done: its pods are stopped");
            stop_tx.send_replace(true);
        }
        if shutting.is_none() && Instant::now() >= next_eviction {
            next_eviction = Instant::now() + eviction_every;
            let report = report_rx.borrow().clone();
            if let Some(now) =
                evict_if_starved(&opts, &mut workers, report.as_ref(), &mut eviction_state)
            {
                if now != pressure {
                    tracing::warn!(
                        memory = now.memory,
                        disk = now.disk,
                        pid = now.pid,
                        "node pressure changed (eviction thresholds: memory.available {}, nodefs.available {}, pid.available {})",
                        opts.eviction.memory_available,
                        opts.eviction.nodefs_available,
                        opts.eviction.pid_available
                    );
                    pressure = now;
                    let stored = api.get("nodes", None, &opts.name).await.ok().flatten();
                    match write_node_status(&api, &opts, &machine, &net.report(), pressure, false)
                        .await
                    {
                        Ok(status) => {
                            let before = stored.as_ref();
                            status_events(&api, &mut recorder, &opts.name, before, &status).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "node status update failed"),
                    }
                    if let Some(n) = &stored {
                        sync_pressure_taints(&api, &opts.name, n, pressure).await;
                    }
                }
            }
        }
        let snap = crate::metrics::Snapshot {
            labels: node_labels.clone(),
            pods: workers
                .values()
                .filter(|w| w.terminating.is_none())
                .map(|w| crate::metrics::PodRef {
                    uid: w.uid.clone(),
                    namespace: w.pod["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    name: w.pod["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    labels: string_map(&w.pod["metadata"]["labels"]),
                    containers: w.containers.iter().map(|c| c.name.clone()).collect(),
                })
                .collect(),
        };
        usage_tx.send_if_modified(|s| {
            let changed = *s != snap;
            *s = snap;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(SYNC) => {}
            // A pod bound, changed or deleted: sync now.
            _ = own.changed() => {}
            // Told to shut down (a dropped sender never tells).
            _ = async {
                if shutdown.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }, if shutting.is_none() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                // The proxy removes its rules and addresses before the
                // node's network (and the interface holding them) goes.
                let _ = tokio::time::timeout(Duration::from_secs(5), proxy).await;
                let live = workers.values_mut().map(PodWorker::live).sum();
                net.shutdown(live);
                return Ok(());
            }
        }
    }
}

/// Records an Event about this node, as its kubelet.
async fn node_event(
    api: &Objects,
    recorder: &mut crate::events::Recorder,
    node: &str,
    reason: &str,
    message: &str,
) {
    let e = crate::events::node_event(node, reason, message, &crate::now());
    crate::events::record(api, recorder, &e).await;
}

/// Records the changes a status write made over the stored Node (`before`).
async fn status_events(
    api: &Objects,
    recorder: &mut crate::events::Recorder,
    node: &str,
    before: Option<&Value>,
    status: &Value,
) {
    for reason in crate::events::status_changes(before, status) {
        node_status_event(api, recorder, node, reason).await;
    }
}

/// Records a change of this node's status (`NodeReady`, `NodeNotSchedulable`, ...).
async fn node_status_event(
    api: &Objects,
    recorder: &mut crate::events::Recorder,
    node: &str,
    reason: &str,
) {
    let message = crate::events::node_status_message(node, reason);
    node_event(api, recorder, node, reason, &message).await;
}

async fn register(
    api: &Objects,
    opts: &Options,
    m: &Machine,
    net: &NetworkReport,
    pressure: node::Pressure,
    shutting_down: bool,
) -> Result<Value> {
    let mut obj = node::node_object(
        &opts.name,
        &opts.address.to_string(),
        m,
        &opts.reserved,
        net,
        &crate::now(),
    );
    node::set_pressure(&mut obj["status"], pressure);
    if shutting_down {
        node::set_shutting_down(&mut obj["status"]);
    }
    // Where this node's local-path volumes live, for the provisioner.
    let storage = crate::volumes::storage_dir(&opts.data_dir);
    obj["metadata"]["annotations"][ferry_api::storage::NODE_STORAGE_DIR] =
        json!(storage.to_string_lossy());
    api.register_node(&obj).await?;
    Ok(obj["status"].take())
}

async fn write_node_status(
    api: &Objects,
    opts: &Options,
    m: &Machine,
    net: &NetworkReport,
    pressure: node::Pressure,
    shutting_down: bool,
) -> Result<Value> {
    let mut obj = node::node_object(
        &opts.name,
        &opts.address.to_string(),
        m,
        &opts.reserved,
        net,
        &crate::now(),
    );
    node::set_pressure(&mut obj["status"], pressure);
    if shutting_down {
        node::set_shutting_down(&mut obj["status"]);
    }
    api.patch(
        "nodes",
        None,
        &opts.name,
        Some("status"),
        &json!({"status": obj["status"]}),
    )
    .await?;
    Ok(obj["status"].take())
}

/// The pressure a stored Node reports.
fn reported_pressure(n: &Value) -> node::Pressure {
    let on = |t: &str| {
        n.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .is_some_and(|c| c["status"] == "True")
    };
    node::Pressure {
        memory: on("MemoryPressure"),
        disk: on("DiskPressure"),
        pid: on("PIDPressure"),
    }
}

/// Adds or removes the Node's pressure taints (`NoSchedule`) as `p` says,
/// with the read resourceVersion as precondition (a conflict waits for the
/// next check).
async fn sync_pressure_taints(api: &Objects, name: &str, n: &Value, p: node::Pressure) {
    let Some(taints) = node::pressure_taints(n.pointer("/spec/taints"), p) else {
        return;
    };
    let patch = json!({"metadata": {"resourceVersion": n["metadata"]["resourceVersion"]},
                       "spec": {"taints": taints}});
    if let Err(e) = api.patch("nodes", None, name, None, &patch).await {
        tracing::debug!(error = %e, "updating the node's pressure taints failed");
    }
}

/// The node's eviction signals now: `/proc/meminfo` and the data dir's
/// file system.
fn read_signals(data_dir: &std::path::Path) -> Option<crate::eviction::Signals> {
    let (memory_available, memory_capacity) =
        crate::eviction::meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    let fs = nix::sys::statvfs::statvfs(data_dir).ok()?;
    let number = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    // Tasks in all: the fourth field of /proc/loadavg, "running/total".
    let tasks = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())?;
    let (pid_available, pid_capacity) = crate::eviction::pid_signal(
        number("/proc/sys/kernel/pid_max")?,
        number("/proc/sys/kernel/threads-max")?,
        tasks,
    );
    Some(crate::eviction::Signals {
        memory_available,
        memory_capacity,
        nodefs_available: fs.blocks_available() * fs.fragment_size(),
        nodefs_capacity: fs.blocks() * fs.fragment_size(),
        pid_available,
        pid_capacity,
    })
}

/// Tasks (threads) by process group, from `/proc`: a container's processes
/// are its shim's process group.
fn tasks_by_group() -> HashMap<i32, u64> {
    let mut by = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // After "(comm)": state, ppid, pgrp, ... num_threads (the 18th).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(pgrp), Some(threads)) = (
            fields.get(2).and_then(|f| f.parse::<i32>().ok()),
            fields.get(17).and_then(|f| f.parse::<u64>().ok()),
        ) {
            *by.entry(pgrp).or_insert(0) += threads;
        }
    }
    by
}

/// One round of shutdown: the pods group by group, lowest priority first,
/// each ended with its group's budget; the stage it is at.
fn shutdown_step(
    p: &mut crate::shutdown::Progress,
    workers: &mut HashMap<String, PodWorker>,
) -> crate::shutdown::Stage {
    use crate::shutdown::{priority, Stage};
    let mut live = vec![false; p.groups().len()];
    for w in workers.values_mut() {
        if w.live() > 0 {
            if let Some(l) = live.get_mut(p.group(priority(&w.pod))) {
                *l = true;
            }
        }
    }
    let stage = p.step(Instant::now(), &live);
    for w in workers.values_mut() {
        let group = p.group(priority(&w.pod));
        let due = match stage {
            Stage::Stopping(current) => group <= current,
            Stage::Done => true,
        };
        let finished = w
            .written
            .as_ref()
            .and_then(|s| s["phase"].as_str())
            .is_some_and(|p| p == "Failed" || p == "Succeeded");
        if due && w.evicted.is_none() && w.terminating.is_none() && !finished {
            w.end(crate::pods::NodeKill::shutdown(p.budget(group)));
        }
    }
    stage
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// One round of the eviction manager: the node's pressure, and the pod
/// [`crate::eviction::decide`] picks evicted (`None`: the signals could not
/// be read).
fn evict_if_starved(
    opts: &Options,
    workers: &mut HashMap<String, PodWorker>,
    report: Option<&ferry_api::metrics::NodeReport>,
    state: &mut crate::eviction::State,
) -> Option<node::Pressure> {
    use crate::eviction::{Candidate, ContainerUse};
    let signals = read_signals(&opts.data_dir)?;
    // Use is measured only for a starved resource (below a threshold, or
    // still short of its minimum reclaim).
    use crate::eviction::Starved;
    let disk_low = state.starving(&opts.eviction, &signals, Starved::Disk);
    let pids_low = state.starving(&opts.eviction, &signals, Starved::Pid);
    let tasks = if pids_low {
        tasks_by_group()
    } else {
        HashMap::new()
    };
    let bytes = |v: Option<&Value>| -> u64 {
        v.and_then(Value::as_str)
            .and_then(ferry_api::quantity::Quantity::parse)
            .map_or(0, |q| u64::try_from(q.value()).unwrap_or(0))
    };
    let candidates: Vec<Candidate> = workers
        .values()
        .filter(|w| w.terminating.is_none() && w.evicted.is_none())
        .filter(|w| {
            !w.written
                .as_ref()
                .and_then(|s| s["phase"].as_str())
                .is_some_and(|p| p == "Failed" || p == "Succeeded")
        })
        .map(|w| {
            let ns = w.pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = w.pod["metadata"]["name"].as_str().unwrap_or_default();
            let usage =
                report.and_then(|r| r.pods.iter().find(|p| p.namespace == ns && p.name == name));
            Candidate {
                uid: w.uid.clone(),
                name: format!("{ns}/{name}"),
                priority: w.pod["spec"]["priority"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
                containers: w
                    .containers
                    .iter()
                    .map(|c| ContainerUse {
                        name: c.name.clone(),
                        memory_request: bytes(c.spec.pointer("/resources/requests/memory")),
                        memory_usage: usage.and_then(|u| {
                            u.containers
                                .iter()
                                .find(|x| x.name == c.name)
                                .map(|x| x.memory_bytes)
                        }),
                        disk_request: bytes(
                            c.spec.pointer("/resources/requests/ephemeral-storage"),
                        ),
                        disk_usage: disk_low.then(|| dir_bytes(&c.dir.0)),
                        processes: pids_low.then(|| {
                            c.started
                                .as_ref()
                                .and_then(|s| tasks.get(&s.pid).copied())
                                .unwrap_or(0)
                        }),
                    })
                    .collect(),
            }
        })
        .collect();
    let d =
        crate::eviction::decide_at(&opts.eviction, &signals, &candidates, state, Instant::now());
    if let Some(v) = &d.victim {
        tracing::warn!(pod = %v.name, soft = v.soft, "evicting a pod for node pressure: {}", v.message);
        if let Some(w) = workers.get_mut(&v.uid) {
            w.end(crate::pods::NodeKill::evicted(&v.message, v.grace_cap_secs));
        }
    }
    Some(node::Pressure {
        memory: d.memory_pressure,
        disk: d.disk_pressure,
        pid: d.pid_pressure,
    })
}

async fn renew_lease(api: &Objects, opts: &Options) -> Result<()> {
    let lease = node::lease(
        &opts.name,
        opts.lease_duration.as_secs(),
        &crate::now_micros(),
    );
    match api
        .patch(
            "leases",
            Some(node::LEASE_NAMESPACE),
            &opts.name,
            None,
            &json!({"spec": lease["spec"]}),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some(404) => api
            .create("leases", Some(node::LEASE_NAMESPACE), &lease)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Reports this node's certificates (what it trusts, which CA issued its
/// own) and asks what the cluster trusts and which CA issues now
/// (`ApiRequest::ClusterTrust`); `None` from a master that predates it.
async fn cluster_trust(api: &Objects, cfg: &ClientConfig) -> Result<Option<(String, String)>> {
    let cas = ferry_api::tls::bundle_pems(&cfg.ca_cert);
    let cas: Vec<&str> = cas.iter().map(String::as_str).collect();
    let report = ferry_api::carotation::MemberTls {
        trusts: ferry_api::tls::bundle_hashes(&cfg.ca_cert),
        issuer: ferry_api::tls::issuer_hash(&cfg.client_cert, &cas).unwrap_or_default(),
    };
    match api
        .client
        .call(&ferry_api::proto::ApiRequest::ClusterTrust(report))
        .await
    {
        Ok(ferry_api::proto::ApiResponse::ClusterTrust { trust, signing_ca }) => {
            Ok(Some((trust, signing_ca)))
        }
        Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
        Err(ferry_api::Error::Api(e)) if e.code == ferry_api::proto::ErrorCode::BadRequest => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn renew_cert(api: &Objects, opts: &Options, cfg: &ClientConfig) -> Result<ClientConfig> {
    let (key, csr) = ferry_api::tls::new_csr()?;
    let resp = api
        .client
        .call(&ferry_api::proto::ApiRequest::RenewNodeCert {
            csr,
            lifetime_secs: opts.cert_lifetime.as_secs(),
        })
        .await?;
    match resp {
        ferry_api::proto::ApiResponse::NodeCert(c) => {
            Ok(crate::join::client_config(*c, key, &cfg.masters))
        }
        other => anyhow::bail!("unexpected answer to a renewal: {other:?}"),
    }
}

/// How long the tokens the agent requests for pods live (the kubelet's 3607 s).
const TOKEN_SECONDS: i64 = 3607;

/// Each pod's service-account tokens by pod uid, audience and lifetime, with
/// when to renew them.
type TokenCache = std::sync::Mutex<HashMap<(String, String, i64), (String, std::time::Instant)>>;

/// When a token of `seconds` is renewed: at 80% of its life, or after a day
/// if that comes first (as the kubelet's token manager).
fn renew_after(seconds: i64) -> std::time::Duration {
    let s = u64::try_from(seconds).unwrap_or(0);
    std::time::Duration::from_secs((s * 4 / 5).min(24 * 3600))
}

/// A token of the pod's ServiceAccount for `audience` ("" = the API's),
/// valid `seconds`: from the cache, or a new TokenRequest bound to the pod.
async fn pod_token(
    api: &Objects,
    ns: &str,
    pod: &Value,
    audience: &str,
    seconds: i64,
) -> Option<String> {
    static CACHE: std::sync::OnceLock<TokenCache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str)?;
    let key = (uid.to_string(), audience.to_string(), seconds);
    let now = std::time::Instant::now();
    if let Some((t, renew)) = cache.lock().ok()?.get(&key) {
        if now < *renew {
            // Empty: a failed request, not tried again before `renew`.
            return (!t.is_empty()).then(|| t.clone());
        }
    }
    let name = pod.pointer("/metadata/name").and_then(Value::as_str)?;
    let sa = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    match api.token(ns, sa, name, uid, audience, seconds).await {
        Ok(t) => {
            let mut c = cache.lock().ok()?;
            c.insert(key, (t.clone(), now + renew_after(seconds)));
            Some(t)
        }
        Err(e) => {
            tracing::debug!(pod = name, error = %e, "requesting a service-account token failed");
            // An older token still valid is better than none; else wait 10 s.
            let mut c = cache.lock().ok()?;
            let entry = c.entry(key).or_insert_with(|| (String::new(), now));
            entry.1 = now + std::time::Duration::from_secs(10);
            (!entry.0.is_empty()).then(|| entry.0.clone())
        }
    }
}

/// `services`: the Services the pod's containers see (`None`: not read yet).
async fn fetch(api: &Objects, ns: &str, pod: &Value, services: Option<Value>) -> env::Fetched {
    let mut fetched = env::Fetched::new();
    fetched.insert(env::Source::Services, services);
    // The token is bind-mounted in the container's private mount namespace,
    // which only a root agent can make (a non-root node runs pods without it).
    if crate::volumes::automounts_token(pod) && nix::unistd::geteuid().is_root() {
        if let Some(token) = pod_token(api, ns, pod, "", TOKEN_SECONDS).await {
            fetched.insert(
                env::Source::ServiceAccountToken,
                Some(json!({"token": token, "ca.crt": &*api.ca_pem})),
            );
        }
    }
    // Projected serviceAccountToken sources: one token per audience and lifetime.
    for src in crate::volumes::projected_tokens(pod) {
        if let env::Source::ProjectedToken { audience, seconds } = &src {
            if let Some(token) = pod_token(api, ns, pod, audience, *seconds).await {
                fetched.insert(src.clone(), Some(json!({ "token": token })));
            }
        }
    }
    let all = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    let volume_sources = crate::volumes::sources(pod);
    for c in all {
        for src in env::sources(c).into_iter().chain(volume_sources.clone()) {
            if fetched.contains_key(&src) {
                continue;
            }
            let (plural, name) = match &src {
                env::Source::ConfigMap(n) => ("configmaps", n),
                env::Source::Secret(n) => ("secrets", n),
                env::Source::Claim(n) => {
                    let volume = claim_volume(api, ns, n).await;
                    fetched.insert(src, volume);
                    continue;
                }
                env::Source::Services
                | env::Source::ServiceAccountToken
                | env::Source::ProjectedToken { .. } => continue,
            };
            if let Ok(obj) = api.get(plural, Some(ns), name).await {
                fetched.insert(src, obj);
            }
        }
    }
    fetched
}

/// The PersistentVolume claim `ns/name` is bound to, once it is (None before).
async fn claim_volume(api: &Objects, ns: &str, name: &str) -> Option<Value> {
    let claim = api
        .get("persistentvolumeclaims", Some(ns), name)
        .await
        .ok()??;
    let volume = claim.pointer("/spec/volumeName").and_then(Value::as_str)?;
    if volume.is_empty() {
        return None;
    }
    api.get("persistentvolumes", None, volume).await.ok()?
}

/// The pods bound to this node as a watch shows them.
#[derive(Default)]
struct OwnPods {
    pods: std::collections::BTreeMap<String, Value>,
    synced: bool,
}

impl OwnPods {
    /// The pods, once the watch has listed them (None before: sync lists).
    fn current(&self) -> Option<Vec<Value>> {
        self.synced.then(|| self.pods.values().cloned().collect())
    }
}

/// Follows the pods whose `spec.nodeName` is `node`.
fn watch_own_pods(
    client: Arc<Client>,
    node: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::sync::watch::Receiver<OwnPods> {
    let (tx, rx) = tokio::sync::watch::channel(OwnPods::default());
    let part: crate::follow::Part<OwnPods, Value> = |o| (&mut o.pods, &mut o.synced);
    tokio::spawn(crate::follow::follow_selected(
        client,
        "pods",
        Some(format!("spec.nodeName={node}")),
        // Never "no pods" for a watch that failed: that would stop them all.
        false,
        Arc::new(tx),
        part,
        stop,
    ));
    rx
}

/// Where the pods of `workers` but `uid` mount volumes.
fn targets_in_use_except(
    workers: &HashMap<String, PodWorker>,
    uid: &str,
) -> Vec<std::path::PathBuf> {
    workers
        .iter()
        .filter(|(u, _)| u.as_str() != uid)
        .flat_map(|(_, w)| crate::volumes::targets_in_use(&w.pod))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn sync_pods(
    api: &Objects,
    opts: &Options,
    followed: Option<Vec<Value>>,
    pods_dir: &std::path::Path,
    (workers, recorder): (
        &mut HashMap<String, PodWorker>,
        &mut crate::events::Recorder,
    ),
    cgroups: &crate::cgroups::Layout,
    known: &tokio::sync::watch::Receiver<Known>,
    net: &mut NodeNetwork,
    (pressure, shutting_down): (node::Pressure, bool),
) -> Result<()> {
    let pods = match followed {
        Some(pods) => pods,
        None => {
            api.list("pods", &format!("spec.nodeName={}", opts.name))
                .await?
        }
    };
    let ip = opts.address.to_string();
    let mut seen = std::collections::HashSet::new();
    for pod in pods {
        let Some(uid) = pod.pointer("/metadata/uid").and_then(Value::as_str) else {
            continue;
        };
        let uid = uid.to_string();
        seen.insert(uid.clone());
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // A pod new to this node passes the kubelet's admission first: one
        // it refuses ends Failed without starting (one it already runs, or
        // one a restarted agent finds, is not asked again).
        let admission = if workers.contains_key(&uid)
            || pods_dir.join(&uid).exists()
            || pod.pointer("/metadata/deletionTimestamp").is_some()
            || pod
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .is_some_and(|p| p != "Pending")
        {
            Ok(())
        } else {
            crate::eviction::admit(
                pressure.memory,
                pressure.disk,
                pressure.pid,
                shutting_down,
                &pod,
                crate::pods::qos_class(&pod),
            )
        };
        let w = workers
            .entry(uid.clone())
            .or_insert_with(|| PodWorker::new(pod.clone(), pods_dir.join(&uid)));
        w.pod = pod.clone();
        if let Err(r) = admission {
            tracing::warn!(pod = %name, reason = r.reason, "pod refused: {}", r.message);
            w.end(crate::pods::NodeKill::rejected(&r));
        }
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            w.stop();
            let events = std::mem::take(&mut w.events);
            crate::events::report(api, recorder, &pod, &opts.name, events).await;
            if w.live() == 0 {
                // Every process is gone: remove the pod for good.
                api.delete(
                    "pods",
                    Some(&ns),
                    &name,
                    &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}),
                )
                .await?;
                crate::volumes::release(&w.dir);
                let dir = w.dir.clone();
                crate::volumes::remove_created_targets(
                    &opts.data_dir,
                    Some(&dir),
                    &targets_in_use_except(workers, &uid),
                );
                let _ = std::fs::remove_dir_all(&dir);
                crate::cgroups::remove(cgroups, &uid);
                net.pod_removed(&uid);
                workers.remove(&uid);
                recorder.forget_pod(&uid);
            }
            continue;
        }
        let services = {
            let k = known.borrow();
            k.services_synced
                .then(|| json!({"items": k.services_for(&ns)}))
        };
        let fetched = fetch(api, &ns, &pod, services).await;
        let pod_net = net.for_pod(w, &ip);
        w.sync(&opts.shim, &fetched, &pod_net, cgroups);
        let status = w.status(&pod_net, cgroups);
        if w.written.as_ref() != Some(&status) {
            match api.patch_pod_status(&ns, &name, &status).await {
                Ok(_) => w.written = Some(status),
                Err(e) => tracing::warn!(pod = %name, error = %e, "pod status update failed"),
            }
        }
        // After the status: a pod's start waits for no event's write.
        let events = std::mem::take(&mut w.events);
        crate::events::report(api, recorder, &pod, &opts.name, events).await;
    }
    // Pods this node runs that the API no longer has: stop them.
    let mut gone: Vec<String> = workers
        .keys()
        .filter(|u| !seen.contains(*u))
        .cloned()
        .collect();
    if let Ok(dirs) = std::fs::read_dir(pods_dir) {
        for d in dirs.flatten() {
            let u = d.file_name().to_string_lossy().into_owned();
            if !seen.contains(&u) && !workers.contains_key(&u) {
                workers.insert(
                    u.clone(),
                    PodWorker::new(json!({"metadata": {"uid": u}}), d.path()),
                );
                gone.push(u);
            }
        }
    }
    for uid in gone {
        // Where the other pods mount: their targets stay on the host.
        let in_use = targets_in_use_except(workers, &uid);
        let Some(w) = workers.get_mut(&uid) else {
            continue;
        };
        if w.terminating.is_none() {
            // Forced away: no grace to honour beyond a short one.
            w.pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
        }
        w.stop();
        let events = std::mem::take(&mut w.events);
        if w.pod.pointer("/metadata/name").is_some() {
            // Stopped for a pod deleted without us (forced): still said.
            let pod = w.pod.clone();
            crate::events::report(api, recorder, &pod, &opts.name, events).await;
        }
        if w.live() == 0 {
            crate::volumes::release(&w.dir);
            crate::volumes::remove_created_targets(&opts.data_dir, Some(&w.dir), &in_use);
            let _ = std::fs::remove_dir_all(&w.dir);
            crate::cgroups::remove(cgroups, &uid);
            net.pod_removed(&uid);
            workers.remove(&uid);
            recorder.forget_pod(&uid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::renew_after;
    use std::time::Duration;

    #[test]
    fn tokens_are_renewed_at_80_percent_of_their_life_or_after_a_day() {
        for (seconds, after) in [
            (600, 480),
            (3600, 2880),
            (3607, 2885),
            (7200, 5760),
            (86_400, 69_120),
            (200_000, 86_400),
            (-1, 0),
        ] {
            assert_eq!(
                renew_after(seconds),
                Duration::from_secs(after),
                "{seconds}"
            );
        }
    }
}
