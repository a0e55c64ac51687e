//! Pod workers: drive each pod bound to this node through the process runtime,
//! and compute the status the kubelet would report.

use crate::env;
use crate::events::{self, PodEvent};
use crate::probe::{self, Kind, Result3};
use crate::runtime::{self, ContainerDir, Exited, Started};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Back-off before a restart: 10 s doubling to 5 min, as the kubelet does.
pub fn backoff(restarts: u32) -> Duration {
    let secs = 10u64.saturating_mul(1u64 << restarts.min(5));
    Duration::from_secs(secs.min(300))
}

/// The search path a container gets unless its spec sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A run this long resets the back-off.
pub const RESET_AFTER_SECS: i64 = 600;

fn seconds_between(from: &str, to: &str) -> i64 {
    match (
        from.parse::<jiff::Timestamp>(),
        to.parse::<jiff::Timestamp>(),
    ) {
        (Ok(a), Ok(b)) => (b - a).get_seconds(),
        _ => 0,
    }
}

/// One container's run as the worker tracks it.
pub struct Container {
    /// Its name.
    pub name: String,
    /// Where its spec is in the pod's (`spec.containers{NAME}`), for its events.
    pub field_path: String,
    /// Its spec.
    pub spec: Value,
    /// Its directory.
    pub dir: ContainerDir,
    /// The current run, if started.
    pub started: Option<Started>,
    /// The shim, when this agent started it (so it is reaped).
    pub child: Option<std::process::Child>,
    /// How the current run ended.
    pub exited: Option<Exited>,
    /// How the previous run ended.
    pub last: Option<Exited>,
    /// Restarts so far.
    pub restarts: u32,
    /// Back-offs in a row (reset by a run of ten minutes).
    pub backoffs: u32,
    /// No restart before this.
    pub not_before: Option<Instant>,
    /// Why it waits (`CreateContainerConfigError`, ...) and the message.
    pub waiting: Option<(String, String)>,
    /// The current run's probes.
    pub probes: Vec<probe::State>,
    /// The current run's environment (exec probes run with it).
    pub env: Vec<(String, String)>,
    /// Why the agent killed the current run (a failed probe), and why it killed
    /// the previous one.
    pub killed: Option<String>,
    /// See `killed`.
    pub last_killed: Option<String>,
    /// Its preStop hook, running while the pod stops (SIGTERM waits for it).
    pub pre_stop: Option<Hook>,
    /// Its postStart hook, running since the run started: until it ends the
    /// container is not reported running, and no probe runs; a failure
    /// kills the run (`FailedPostStartHook`).
    pub post_start: Option<Hook>,
    /// SIGTERM was sent to this run.
    pub term_sent: bool,
}

impl Container {
    /// Container `spec` of the pod's `list` (`containers`, ...), re-adopting
    /// what a previous agent started.
    fn new(pod_dir: &Path, list: &str, spec: &Value) -> Container {
        let name = spec["name"].as_str().unwrap_or_default().to_string();
        let dir = ContainerDir(pod_dir.join(&name));
        // Re-adopt what a previous agent started.
        let started = dir.started();
        let exited = dir.exited();
        let restarts = std::fs::read_to_string(dir.0.join("restarts"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Container {
            field_path: events::field_path(list, &name),
            name,
            spec: spec.clone(),
            dir,
            started,
            child: None,
            exited,
            last: None,
            restarts,
            backoffs: 0,
            not_before: None,
            waiting: None,
            probes: Vec::new(),
            env: Vec::new(),
            killed: None,
            last_killed: None,
            pre_stop: None,
            post_start: None,
            term_sent: false,
        }
    }

    /// Whether its startup probe (if any) has succeeded.
    pub fn started_ok(&self) -> bool {
        self.probes
            .iter()
            .filter(|p| p.kind == Kind::Startup)
            .all(|p| p.result == Result3::Success)
    }

    /// Whether it is ready: running, started, and its readiness probe (if any) passing.
    pub fn ready(&mut self) -> bool {
        self.running()
            && self.post_start.is_none()
            && self.started_ok()
            && self
                .probes
                .iter()
                .filter(|p| p.kind == Kind::Readiness)
                .all(|p| p.result == Result3::Success)
    }

    /// Runs the probes that are due; kills the run when its startup or
    /// liveness probe fails (`restart`: the pod's policy restarts it then).
    /// What it reports goes to `events`.
    fn probe(&mut self, workdir: &Path, restart: bool, events: &mut Vec<PodEvent>) {
        if !self.running() || self.killed.is_some() {
            return;
        }
        if let Some(h) = &self.post_start {
            if !h.is_finished() {
                return;
            }
            let done = self.post_start.take().and_then(|h| {
                use futures_util::FutureExt;
                h.now_or_never()
            });
            if let Some(Ok(Err(e))) = done {
                // As the kubelet: the hook's output stays out of the event.
                tracing::warn!(container = %self.name, "postStart hook failed: {e}");
                let fp = &self.field_path;
                events.push(PodEvent::container(
                    fp,
                    "Warning",
                    "FailedPostStartHook",
                    "PostStartHook failed",
                ));
                events.push(events::killing(
                    fp,
                    &self.name,
                    Some("FailedPostStartHook".into()),
                ));
                self.killed = Some(format!("postStart hook failed: {e}"));
                if let Some(s) = &self.started {
                    runtime::signal(s, Signal::SIGKILL);
                }
                return;
            }
        }
        let now = Instant::now();
        let started = self.started_ok();
        for p in self.probes.iter_mut() {
            let due = match p.kind {
                Kind::Startup => !started,
                _ => started,
            };
            if !due {
                continue;
            }
            if p.poll(now, &self.env, workdir) == Some(Result3::Failure) {
                let msg = format!("{} probe failed: {}", p.kind.title(), p.message);
                let fp = &self.field_path;
                events.push(PodEvent::container(fp, "Warning", "Unhealthy", &msg));
                if p.kind != Kind::Readiness && self.killed.is_none() {
                    let probe = p.kind.title().to_lowercase();
                    let why = events::probe_kill_message(&self.name, &probe, restart);
                    events.push(events::killing(fp, &self.name, Some(why)));
                    self.killed = Some(msg);
                }
            }
        }
        if self.killed.is_some() {
            if let Some(s) = &self.started {
                runtime::signal(s, Signal::SIGKILL);
            }
        }
    }

    /// Whether the current run is alive.
    pub fn running(&mut self) -> bool {
        if let Some(c) = &mut self.child {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
            }
        }
        match &self.started {
            Some(s) if self.exited.is_none() => {
                if self.child.is_some() || runtime::running(s) {
                    return true;
                }
                // Gone: its shim recorded the end, or it was SIGKILLed (with
                // its group, or alone: then what it ran is killed now).
                self.exited = Some(self.dir.exited().unwrap_or_else(|| {
                    let cgroups = self.dir.spec_of_run().map(|r| r.cgroups).unwrap_or_default();
                    let killed = runtime::kill_leftovers(s.pid, s.start_ticks, &cgroups, -1);
                    if killed > 0 {
                        tracing::warn!(container = %self.name, killed, "the container's shim died: its processes were killed");
                    }
                    Exited {
                        code: 137,
                        signal: Some(9),
                        finished_at: crate::now(),
                        oom_killed: false,
                        start_error: None,
                    }
                }));
                false
            }
            _ => false,
        }
    }
}

/// A pod's network as its containers get it (built by the agent from the
/// node's pod network, see [`crate::net`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// The pod's address (the node's when the pod shares the node's
    /// network); `None` until its network is set up.
    pub pod_ip: Option<String>,
    /// The pod's network namespace, which its containers join.
    pub netns: Option<PathBuf>,
    /// Why the pod's network is not ready (its containers wait).
    pub pending: Option<String>,
    /// The cluster's DNS domain, when the pod has its own network (its
    /// `/etc/hosts` is written then).
    pub cluster_domain: Option<String>,
    /// The cluster DNS Service's address (the pod's `resolv.conf` names it).
    pub dns_ip: Option<std::net::Ipv4Addr>,
}

impl Network {
    /// A pod sharing the node's network at `host_ip`.
    pub fn host(host_ip: &str) -> Network {
        Network {
            host_ip: host_ip.to_string(),
            pod_ip: Some(host_ip.to_string()),
            ..Network::default()
        }
    }

    fn ip(&self) -> &str {
        self.pod_ip.as_deref().unwrap_or(&self.host_ip)
    }
}

/// A pod this node runs.
pub struct PodWorker {
    /// The pod's uid.
    pub uid: String,
    /// The pod as last seen.
    pub pod: Value,
    /// Its directory.
    pub dir: PathBuf,
    /// Init containers, then containers.
    pub init: Vec<Container>,
    /// App containers.
    pub containers: Vec<Container>,
    /// Ephemeral containers (`kubectl debug`): each started once, never
    /// restarted, added as the pod's spec gains them.
    pub ephemeral: Vec<Container>,
    /// When termination began (SIGTERM sent), and the grace period.
    pub terminating: Option<(Instant, Duration)>,
    /// The status last written.
    pub written: Option<Value>,
    /// When the pod started on this node.
    pub start_time: String,
    /// Events to report (the agent takes them after each sync).
    pub events: Vec<PodEvent>,
    /// The pod's own network, once set up (see [`crate::net::podnet`]).
    pub net: Option<crate::net::podnet::PodAddr>,
    /// Why the pod's network was last reported not ready.
    net_waiting: Option<String>,
    /// Ended by the node itself — evicted for pressure, refused at
    /// admission ([`crate::eviction`]), or stopped for a node shutdown: its
    /// containers are stopped and never restarted; the pod ends `Failed`.
    pub evicted: Option<NodeKill>,
}

/// The reason of a pod stopped for a graceful node shutdown.
pub const SHUTDOWN_REASON: &str = "Terminated";
/// Its message, the kubelet's.
pub const SHUTDOWN_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";

/// Why the node itself ended a pod, as its status will read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKill {
    /// `status.reason`: `Evicted`, `NodeShutdown` or `Terminated`.
    pub reason: String,
    /// `status.message`.
    pub message: String,
    /// The most grace its containers get, in seconds (its own grace period
    /// if less).
    pub grace_cap_secs: u64,
    /// Whether it gets `DisruptionTarget` (`TerminationByKubelet`): a pod
    /// the node stopped, not one it refused.
    pub disruption: bool,
}

impl NodeKill {
    /// A pod evicted for node pressure, with `grace_cap_secs` of grace.
    pub fn evicted(message: &str, grace_cap_secs: u64) -> NodeKill {
        NodeKill {
            reason: crate::eviction::REASON.into(),
            message: message.into(),
            grace_cap_secs,
            disruption: true,
        }
    }
    /// A pod refused at admission (`Pod was rejected: ` and the message).
    pub fn rejected(r: &crate::eviction::Rejection) -> NodeKill {
        NodeKill {
            reason: r.reason.into(),
            message: format!("Pod was rejected: {}", r.message),
            grace_cap_secs: 0,
            disruption: false,
        }
    }
    /// A pod stopped for a graceful node shutdown within `budget_secs`.
    pub fn shutdown(budget_secs: u64) -> NodeKill {
        NodeKill {
            reason: SHUTDOWN_REASON.into(),
            message: SHUTDOWN_MESSAGE.into(),
            grace_cap_secs: budget_secs,
            disruption: true,
        }
    }
    /// What a stored status says the node did to its pod, if anything.
    fn of_status(status: &Value) -> Option<NodeKill> {
        let reason = status.pointer("/reason").and_then(Value::as_str)?;
        let message = status
            .pointer("/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let disruption = status
            .pointer("/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "DisruptionTarget"));
        let ours = reason == crate::eviction::REASON
            || reason == crate::eviction::SHUTDOWN_REJECT_REASON
            || (reason == SHUTDOWN_REASON && message == SHUTDOWN_MESSAGE);
        ours.then(|| NodeKill {
            reason: reason.into(),
            message: message.into(),
            grace_cap_secs: 0,
            disruption,
        })
    }
}

fn restart_policy(pod: &Value) -> &str {
    pod.pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
}

impl PodWorker {
    /// A worker for `pod`, re-adopting anything already under `dir`.
    pub fn new(pod: Value, dir: PathBuf) -> PodWorker {
        let list = |k: &str| -> Vec<Container> {
            pod.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Container::new(&dir, k, c))
                .collect()
        };
        let (init, containers) = (list("initContainers"), list("containers"));
        let ephemeral = list("ephemeralContainers");
        // Ended by the node before the agent restarted: it stays so.
        let evicted = pod.get("status").and_then(NodeKill::of_status);
        let start_time =
            std::fs::read_to_string(dir.join("start-time")).unwrap_or_else(|_| crate::now());
        let _ = std::fs::create_dir_all(&dir);
        let _ = ferry_api::files::write_private(&dir.join("start-time"), start_time.as_bytes());
        PodWorker {
            uid: pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pod,
            dir,
            init,
            containers,
            ephemeral,
            terminating: None,
            written: None,
            start_time,
            events: Vec::new(),
            net: None,
            net_waiting: None,
            evicted,
        }
    }

    /// Ends the pod for the node's own reason ([`NodeKill`]): its containers
    /// are stopped within the kill's grace; an eviction or a refusal is
    /// reported as a Warning event, as the kubelet does.
    pub fn end(&mut self, kill: NodeKill) {
        if self.evicted.is_none() {
            if kill.reason != SHUTDOWN_REASON {
                // The event carries the message without the status's prefix.
                let message = kill
                    .message
                    .strip_prefix("Pod was rejected: ")
                    .unwrap_or(&kill.message);
                self.events.push(PodEvent::warning(&kill.reason, message));
            }
            self.evicted = Some(kill);
        }
        self.stop();
    }

    /// Evicts the pod for node pressure: its containers are killed now.
    pub fn evict(&mut self, message: &str) {
        self.end(NodeKill::evicted(message, 0));
    }

    /// Every container that is running now.
    pub fn live(&mut self) -> usize {
        self.init
            .iter_mut()
            .chain(self.containers.iter_mut())
            .chain(self.ephemeral.iter_mut())
            .filter_map(|c| c.running().then_some(()))
            .count()
    }

    /// Starts, restarts or stops containers as the pod's spec and policy say.
    /// `fetched` holds the ConfigMaps and Secrets the environment reads.
    pub fn sync(
        &mut self,
        shim: &Path,
        fetched: &env::Fetched,
        net: &Network,
        cgroups: &crate::cgroups::Layout,
    ) {
        if self.terminating.is_some() || self.evicted.is_some() {
            return self.stop();
        }
        // Ephemeral containers added to the pod since (they are only ever added).
        let added: Vec<Value> = self
            .pod
            .pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| !self.ephemeral.iter().any(|c| c.name == e["name"]))
            .cloned()
            .collect();
        for e in added {
            self.ephemeral
                .push(Container::new(&self.dir, "ephemeralContainers", &e));
        }
        // The pod's network first: no container starts without it.
        if let Some(why) = &net.pending {
            self.wait_for_network(why);
            return;
        }
        self.net_waiting = None;
        let ip = net.ip();
        let net_mounts = match &net.cluster_domain {
            Some(domain) => {
                match crate::net::podnet::pod_files(&self.pod, &self.dir, ip, domain, net.dns_ip) {
                    Ok(m) => m,
                    Err(e) => {
                        self.wait_for_network(&format!(
                            "writing the pod's /etc/hosts and /etc/resolv.conf: {e}"
                        ));
                        return;
                    }
                }
            }
            None => Vec::new(),
        };
        // Volumes next (again each time: ConfigMap and Secret volumes follow
        // their objects); a container starts only once its volumes exist.
        let volumes = match crate::volumes::prepare(&self.pod, &self.dir, fetched, ip, &net.host_ip)
        {
            Ok(v) => v,
            Err(why) => {
                // An unbound claim is waited for, not an error in the spec.
                let reason = if crate::volumes::claims_pending(&self.pod, fetched) {
                    "ContainerCreating"
                } else {
                    "CreateContainerConfigError"
                };
                for c in self
                    .init
                    .iter_mut()
                    .chain(self.containers.iter_mut())
                    .chain(self.ephemeral.iter_mut())
                {
                    if c.started.is_none() {
                        let w = Some((reason.to_string(), why.clone()));
                        if c.waiting != w {
                            self.events.push(PodEvent::warning(
                                "FailedMount",
                                format!("MountVolume.SetUp failed: {why}"),
                            ));
                        }
                        c.waiting = w;
                    }
                }
                return;
            }
        };
        // Copies: the workers below borrow `self` mutably.
        let pod = self.pod.clone();
        let ctx = StartCtx {
            pod: &pod,
            shim,
            fetched,
            net,
            volumes: &volumes,
            net_mounts: &net_mounts,
            cgroups,
        };
        let policy = restart_policy(&self.pod).to_string();
        // Ephemeral containers start once, whether or not the pod is
        // initialized, and are never restarted (as the kubelet does).
        for c in &mut self.ephemeral {
            if c.started.is_none() && c.exited.is_none() {
                let before = c.waiting.clone();
                start(c, &ctx, &mut self.events);
                failed_event(&mut self.events, &before, c);
            }
        }
        // Init containers run one at a time, in order, and must succeed.
        for i in 0..self.init.len() {
            let c = &mut self.init[i];
            if c.running() {
                return;
            }
            match &c.exited {
                Some(e) if e.code == 0 => continue,
                Some(_) if policy == "Never" => return,
                _ => {}
            }
            let before = c.waiting.clone();
            start(c, &ctx, &mut self.events);
            failed_event(&mut self.events, &before, c);
            return;
        }
        for c in &mut self.containers {
            if c.running() {
                c.probe(&self.dir, policy != "Never", &mut self.events);
                continue;
            }
            let restart = match &c.exited {
                None => c.started.is_none(),
                Some(e) => match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => e.code != 0,
                    _ => true,
                },
            };
            if restart {
                let before = c.waiting.clone();
                start(c, &ctx, &mut self.events);
                failed_event(&mut self.events, &before, c);
            }
        }
    }

    /// Marks containers not yet started as waiting for the pod's network,
    /// with a `NetworkNotReady` event when the reason is new.
    fn wait_for_network(&mut self, why: &str) {
        for c in self
            .init
            .iter_mut()
            .chain(self.containers.iter_mut())
            .chain(self.ephemeral.iter_mut())
        {
            if c.started.is_none() {
                c.waiting = Some((
                    "ContainerCreating".into(),
                    format!("network is not ready: {why}"),
                ));
            }
        }
        if self.net_waiting.as_deref() != Some(why) {
            self.events.push(PodEvent::warning(
                "NetworkNotReady",
                format!("network is not ready: {why}"),
            ));
            self.net_waiting = Some(why.to_string());
        }
    }

    /// Begins or continues stopping every container: its preStop hook, then
    /// SIGTERM, then SIGKILL once the grace period (which the hook counts
    /// against, as in Kubernetes) is over.
    pub fn stop(&mut self) {
        let grace = self
            .pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .or(self.pod.pointer("/spec/terminationGracePeriodSeconds"))
            .and_then(Value::as_u64)
            .unwrap_or(30);
        // The node's own kill caps the grace (a hard eviction: at once).
        let grace = match &self.evicted {
            Some(k) => grace.min(k.grace_cap_secs),
            None => grace,
        };
        let first = self.terminating.is_none();
        let (since, grace) = *self
            .terminating
            .get_or_insert((Instant::now(), Duration::from_secs(grace)));
        let kill = since.elapsed() >= grace;
        let pod_ip = self
            .pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1")
            .to_string();
        for c in self
            .init
            .iter_mut()
            .chain(self.containers.iter_mut())
            .chain(self.ephemeral.iter_mut())
        {
            if c.running() {
                if first {
                    self.events
                        .push(events::killing(&c.field_path, &c.name, None));
                }
                if let Some(s) = c.started.clone() {
                    if kill {
                        runtime::signal(&s, Signal::SIGKILL);
                    } else {
                        if first {
                            c.pre_stop = pre_stop(c, &s, &pod_ip, grace);
                        }
                        let hook_done = c.pre_stop.as_ref().is_none_or(|h| h.is_finished());
                        if hook_done && !c.term_sent {
                            runtime::signal(&s, Signal::SIGTERM);
                            c.term_sent = true;
                        }
                    }
                }
            }
            // A restart must not begin while stopping.
            c.not_before = None;
        }
    }

    /// The pod's status as the kubelet reports it.
    pub fn status(&mut self, net: &Network, cgroups: &crate::cgroups::Layout) -> Value {
        // A run the kernel SIGKILLed in its cgroup for its memory: OOMKilled.
        for c in self
            .init
            .iter_mut()
            .chain(self.containers.iter_mut())
            .chain(self.ephemeral.iter_mut())
        {
            if let Some(e) = c.exited.as_mut() {
                if (e.signal == Some(9) || e.code == 137)
                    && !e.oom_killed
                    && c.killed.is_none()
                    && crate::cgroups::oom_killed(cgroups, &self.uid, &c.name)
                {
                    e.oom_killed = true;
                }
            }
        }
        let policy = restart_policy(&self.pod).to_string();
        // Stable across syncs, so an unchanged status is not written again.
        let since = self.start_time.clone();
        let init_done = self
            .init
            .iter()
            .all(|c| c.exited.as_ref().is_some_and(|e| e.code == 0));
        let statuses =
            |cs: &mut Vec<Container>, image_of: &dyn Fn(&Value) -> String| -> Vec<Value> {
                cs.iter_mut()
                    .map(|c| container_status(c, image_of(&c.spec)))
                    .collect()
            };
        let image = |s: &Value| s["image"].as_str().unwrap_or_default().to_string();
        let init_statuses = statuses(&mut self.init, &image);
        let app_statuses = statuses(&mut self.containers, &image);
        let ephemeral_statuses = statuses(&mut self.ephemeral, &image);
        let all_ready =
            !self.containers.is_empty() && self.containers.iter_mut().all(|c| c.ready());
        let terminated: Vec<i32> = self
            .containers
            .iter()
            .filter_map(|c| c.exited.as_ref().map(|e| e.code))
            .collect();
        let init_failed = policy == "Never"
            && self
                .init
                .iter()
                .any(|c| c.exited.as_ref().is_some_and(|e| e.code != 0));
        let done = terminated.len() == self.containers.len() && !self.containers.is_empty();
        let phase = if init_failed {
            "Failed"
        } else if done && terminated.iter().all(|c| *c == 0) && policy != "Always" {
            "Succeeded"
        } else if done && policy == "Never" {
            "Failed"
        } else if init_done && self.containers.iter().any(|c| c.started.is_some()) {
            "Running"
        } else {
            "Pending"
        };
        let ready = all_ready && init_done;
        let cond = |t: &str, ok: bool| {
            json!({"type": t, "status": if ok {"True"} else {"False"}, "lastProbeTime": null,
                   "lastTransitionTime": since})
        };
        let host_ip = &net.host_ip;
        let mut status = json!({
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", net.pod_ip.is_some()),
                cond("Initialized", init_done),
                cond("Ready", ready),
                cond("ContainersReady", ready),
                cond("PodScheduled", true),
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": self.start_time,
            "initContainerStatuses": init_statuses,
            "containerStatuses": app_statuses,
            "qosClass": qos_class(&self.pod),
        });
        if !ephemeral_statuses.is_empty() {
            status["ephemeralContainerStatuses"] = json!(ephemeral_statuses);
        }
        if let Some(ip) = &net.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(kill) = &self.evicted {
            ended_status(&mut status, kill, &since);
        }
        status
    }
}

/// What the status of a pod the node ended says, as the kubelet writes it:
/// `Failed` (a pod that succeeded before a shutdown stays `Succeeded`), the
/// reason and message, not ready, and for a pod it stopped
/// `DisruptionTarget` (`TerminationByKubelet`).
pub fn ended_status(status: &mut Value, kill: &NodeKill, since: &str) {
    if !(kill.reason == SHUTDOWN_REASON && status["phase"] == "Succeeded") {
        status["phase"] = json!("Failed");
    }
    status["reason"] = json!(kill.reason);
    status["message"] = json!(kill.message);
    let message = kill.message.as_str();
    if let Some(conds) = status["conditions"].as_array_mut() {
        for c in conds.iter_mut() {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                c["status"] = json!("False");
            }
        }
        conds.retain(|c| c["type"] != "DisruptionTarget");
        if !kill.disruption {
            return;
        }
        conds.push(json!({"type": "DisruptionTarget", "status": "True",
            "reason": crate::eviction::DISRUPTION_REASON, "message": message,
            "lastProbeTime": null, "lastTransitionTime": since}));
    }
}

/// A `Failed` event when a container newly waits on an error.
fn failed_event(events: &mut Vec<PodEvent>, before: &Option<(String, String)>, c: &Container) {
    if let Some((reason, msg)) = &c.waiting {
        if before.as_ref() != Some(&(reason.clone(), msg.clone())) {
            events.push(PodEvent::container(
                &c.field_path,
                "Warning",
                "Failed",
                format!("Error: {reason}: {msg}"),
            ));
        }
    }
}

/// What starting a container needs from its pod and node.
struct StartCtx<'a> {
    pod: &'a Value,
    shim: &'a Path,
    fetched: &'a env::Fetched,
    net: &'a Network,
    volumes: &'a std::collections::BTreeMap<String, PathBuf>,
    /// Files the pod network mounts into every container (`/etc/hosts`).
    net_mounts: &'a [crate::volumes::Mount],
    cgroups: &'a crate::cgroups::Layout,
}

#[cfg(test)]
#[test]
fn pods_are_named_by_their_hostname_or_name_cut_to_a_label() {
    let cases = [
        (serde_json::json!({"metadata": {"name": "web-1"}}), "web-1"),
        (
            serde_json::json!({"metadata": {"name": "db-0"}, "spec": {"hostname": "db-0h"}}),
            "db-0h",
        ),
        (
            serde_json::json!({"metadata": {"name": format!("{}-x", "a".repeat(62))}}),
            &*"a".repeat(62),
        ),
    ];
    for (pod, want) in cases {
        assert_eq!(pod_hostname(&pod), want, "{pod}");
    }
}

/// A pod's hostname, as the kubelet gives it: `spec.hostname`, else its name,
/// cut to 63 characters without a trailing `-` or `.`.
pub fn pod_hostname(pod: &Value) -> String {
    let name = pod
        .pointer("/spec/hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .or_else(|| pod.pointer("/metadata/name").and_then(Value::as_str))
        .unwrap_or("pod");
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

fn start(c: &mut Container, ctx: &StartCtx, events: &mut Vec<PodEvent>) {
    let StartCtx {
        pod,
        shim,
        fetched,
        net,
        volumes,
        net_mounts,
        cgroups,
    } = *ctx;
    let ip = net.ip();
    if c.not_before.is_some_and(|t| Instant::now() < t) {
        return;
    }
    if let (Some(e), None) = (&c.exited, c.not_before) {
        // Exited: the first restart is at once, then 10 s doubling to 5 min;
        // a run of ten minutes or more starts the count again.
        let ran = c
            .started
            .as_ref()
            .map_or(0, |s| seconds_between(&s.started_at, &e.finished_at));
        if ran >= RESET_AFTER_SECS {
            c.backoffs = 0;
        }
        let delay = match c.backoffs {
            0 => Duration::ZERO,
            n => backoff(n - 1),
        };
        c.backoffs += 1;
        c.not_before = Some(Instant::now() + delay);
        if !delay.is_zero() {
            // Once per held-back restart, not per pass while it waits.
            events.push(events::back_off(&c.field_path, &c.name, pod));
            return;
        }
    }
    let argv = match argv(&c.spec) {
        Ok(argv) => argv,
        Err(why) => {
            c.waiting = Some(("CreateContainerError".into(), why));
            return;
        }
    };
    let env = match env::build(pod, &c.spec, fetched, ip, &net.host_ip) {
        Ok(mut e) => {
            // What an image would give: a search path, and the pod's host name.
            if !e.iter().any(|(k, _)| k == "PATH") {
                e.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
            }
            if !e.iter().any(|(k, _)| k == "HOSTNAME") {
                e.insert(1, ("HOSTNAME".into(), pod_hostname(pod)));
            }
            // The runtime's for a root user (processes run as the agent's).
            if !e.iter().any(|(k, _)| k == "HOME") {
                e.push(("HOME".into(), "/root".into()));
            }
            e
        }
        Err(why) => {
            c.waiting = Some(("CreateContainerConfigError".into(), why));
            return;
        }
    };
    let mut probes = Vec::new();
    for (kind, field) in [
        (Kind::Startup, "startupProbe"),
        (Kind::Liveness, "livenessProbe"),
        (Kind::Readiness, "readinessProbe"),
    ] {
        match probe::Spec::parse(&c.spec, field, ip) {
            Ok(Some(spec)) => probes.push(probe::State::new(kind, spec, Instant::now())),
            Ok(None) => {}
            Err(why) => {
                c.waiting = Some(("CreateContainerConfigError".into(), why));
                return;
            }
        }
    }
    let vars: std::collections::HashMap<String, String> = env.iter().cloned().collect();
    let argv: Vec<String> = argv.iter().map(|a| env::expand(a, &vars)).collect();
    // An image's default working directory: `/` (never the agent's own
    // state, where a relative path would write).
    let workdir = match c.spec["workingDir"].as_str() {
        Some(w) if !w.is_empty() => PathBuf::from(w),
        _ => PathBuf::from("/"),
    };
    if c.exited.is_some() {
        c.restarts += 1;
        let _ = std::fs::create_dir_all(&c.dir.0);
        let _ = ferry_api::files::write_private(
            &c.dir.0.join("restarts"),
            c.restarts.to_string().as_bytes(),
        );
    }
    let mounts = match crate::volumes::mounts(&c.spec, volumes) {
        Ok(mut m) => {
            // A volume mounted at /etc/hosts wins over the pod network's.
            for n in net_mounts {
                if !m.iter().any(|v| v.target == n.target) {
                    m.push(n.clone());
                }
            }
            m
        }
        Err(why) => {
            c.waiting = Some(("CreateContainerConfigError".into(), why));
            return;
        }
    };
    let limits = match crate::cgroups::limits(&c.spec, None) {
        Ok(l) => l,
        Err(why) => {
            c.waiting = Some(("CreateContainerConfigError".into(), why));
            return;
        }
    };
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let cgroup_procs = match cgroups {
        crate::cgroups::Layout::Unavailable(why) => {
            if limits.any() && c.restarts == 0 && c.started.is_none() {
                events.push(PodEvent::container(
                    &c.field_path,
                    "Warning",
                    "LimitsNotEnforced",
                    format!(
                        "container {}: resource limits are not enforced on this node: {why}",
                        c.name
                    ),
                ));
            }
            Vec::new()
        }
        layout => match crate::cgroups::create(layout, uid, &c.name, &limits) {
            Ok(p) => p,
            Err(e) => {
                c.waiting = Some((
                    "RunContainerError".into(),
                    format!("creating its cgroup: {e}"),
                ));
                return;
            }
        },
    };
    let user = match run_as(ctx.pod, &c.spec) {
        Ok(u) => u,
        Err(why) => {
            c.waiting = Some(("CreateContainerConfigError".into(), why));
            return;
        }
    };
    let spec = runtime::Spec {
        user,
        argv,
        env: env.clone(),
        workdir,
        mounts,
        cgroups: cgroup_procs,
        netns: net.netns.clone(),
        hostname: net.netns.as_ref().map(|_| pod_hostname(ctx.pod)),
        stdin: c.spec["stdin"] == true,
        stdin_once: c.spec["stdinOnce"] == true,
        tty: c.spec["tty"] == true,
    };
    match runtime::start(shim, &c.dir, &spec) {
        Ok((started, child)) => {
            c.last = c.exited.take().or(c.last.take());
            c.last_killed = c.killed.take();
            if spec.netns.is_some() || !spec.mounts.is_empty() {
                // Exec probes run where the container runs.
                let prefix = nsenter_prefix(shim, &started, &spec.workdir);
                for p in &mut probes {
                    p.exec_prefix = prefix.clone();
                }
            }
            c.probes = probes;
            c.env = env;
            c.post_start = lifecycle_hook(c, &started, ip, "postStart", POST_START_LIMIT);
            c.started = Some(started);
            c.child = Some(child);
            c.waiting = None;
            c.not_before = None;
            let image = c.spec["image"].as_str().unwrap_or_default();
            events.extend(events::started(&c.field_path, &c.name, image));
        }
        Err(e) => {
            c.waiting = Some(("RunContainerError".into(), e.to_string()));
        }
    }
}

/// Who container `c` of `pod` runs as, from the pod's and the container's
/// `securityContext` (the container's wins): `runAsUser`, `runAsGroup`,
/// and as supplementary groups the pod's `supplementalGroups` and
/// `fsGroup`. `None` runs it as the agent (root): ferry's images are the
/// node's programs, whose user is root. `runAsNonRoot` refuses a root user
/// in the kubelet's words (the container waits, `CreateContainerConfigError`).
pub fn run_as(pod: &Value, c: &Value) -> Result<Option<runtime::User>, String> {
    let psc = &pod["spec"]["securityContext"];
    let csc = &c["securityContext"];
    let pick = |k: &str| csc[k].as_u64().or_else(|| psc[k].as_u64());
    let non_root = csc["runAsNonRoot"]
        .as_bool()
        .or_else(|| psc["runAsNonRoot"].as_bool())
        .unwrap_or(false);
    let uid = pick("runAsUser");
    let gid = pick("runAsGroup");
    let mut groups: Vec<u32> = psc["supplementalGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_u64().and_then(|g| u32::try_from(g).ok()))
        .collect();
    if let Some(f) = psc["fsGroup"].as_u64().and_then(|g| u32::try_from(g).ok()) {
        groups.push(f);
    }
    groups.sort_unstable();
    groups.dedup();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let container = c["name"].as_str().unwrap_or_default();
    let whose = format!("(pod: \"{name}_{ns}({pod_uid})\", container: {container})");
    match uid {
        Some(0) if non_root => Err(format!(
            "container's runAsUser breaks non-root policy {whose}"
        )),
        None if non_root => Err(format!(
            "container has runAsNonRoot and image will run as root {whose}"
        )),
        None if gid.is_none() && groups.is_empty() => Ok(None),
        uid => {
            let to32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
            Ok(Some(runtime::User {
                uid: to32(uid),
                gid: to32(gid),
                groups,
            }))
        }
    }
}

/// A lifecycle hook's run: its end, or why it failed.
pub type Hook = tokio::task::JoinHandle<Result<(), String>>;

/// The longest a postStart hook may run before it counts as failed.
const POST_START_LIMIT: Duration = Duration::from_secs(120);

/// Starts container `c`'s `lifecycle.preStop` hook, bounded by the grace period.
fn pre_stop(c: &Container, s: &Started, pod_ip: &str, grace: Duration) -> Option<Hook> {
    lifecycle_hook(c, s, pod_ip, "preStop", grace)
}

/// Starts container `c`'s lifecycle hook `which` (`postStart`, `preStop`):
/// exec in the container, httpGet, tcpSocket or sleep, bounded by `limit`.
fn lifecycle_hook(
    c: &Container,
    s: &Started,
    pod_ip: &str,
    which: &'static str,
    limit: Duration,
) -> Option<Hook> {
    let lifecycle = &c.spec["lifecycle"];
    let hook = lifecycle.get(which).filter(|h| !h.is_null())?;
    let name = c.name.clone();
    if let Some(secs) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
        let d = Duration::from_secs(secs).min(limit);
        return Some(tokio::spawn(async move {
            tokio::time::sleep(d).await;
            Ok(())
        }));
    }
    // Parsed as a probe is (the same handler shape; named ports are the
    // container's).
    let mut with_hook = c.spec.clone();
    with_hook[which] = hook.clone();
    let spec = match probe::Spec::parse(&with_hook, which, pod_ip) {
        Ok(spec) => spec?,
        Err(e) => {
            tracing::warn!(container = %name, "{which} hook: {e}");
            return Some(tokio::spawn(async move { Err(e) }));
        }
    };
    let shim = std::env::current_exe().ok()?;
    let workdir = PathBuf::from(c.spec["workingDir"].as_str().unwrap_or("/"));
    let prefix = nsenter_prefix(&shim, s, &workdir);
    let env = c.env.clone();
    Some(tokio::spawn(async move {
        let run = spec.action.run_in(&prefix, &env, &workdir);
        let r = match tokio::time::timeout(limit, run).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("it ran for more than {limit:?}")),
        };
        if let Err(e) = &r {
            tracing::warn!(container = %name, "{which} hook failed: {e}");
        }
        r
    }))
}

/// `ferry nsenter` into the namespaces of the container run `s`, as a
/// command prefix.
fn nsenter_prefix(shim: &Path, s: &Started, workdir: &Path) -> Vec<String> {
    vec![
        shim.display().to_string(),
        "nsenter".into(),
        "--pid".into(),
        s.pid.to_string(),
        "--start-ticks".into(),
        s.start_ticks.to_string(),
        "--workdir".into(),
        workdir.display().to_string(),
        "--".into(),
    ]
}

fn terminated(e: &Exited, started_at: &str) -> Value {
    let mut t = json!({
        "exitCode": e.code,
        "reason": if e.start_error.is_some() {
            "StartError"
        } else if e.oom_killed {
            "OOMKilled"
        } else if e.code == 0 {
            "Completed"
        } else {
            "Error"
        },
        "finishedAt": e.finished_at,
    });
    if let Some(m) = &e.start_error {
        t["message"] = json!(m);
    }
    if let Some(sig) = e.signal {
        t["signal"] = json!(sig);
    }
    if !started_at.is_empty() {
        t["startedAt"] = json!(started_at);
    }
    json!({ "terminated": t })
}

fn container_status(c: &mut Container, image: String) -> Value {
    let running = c.running();
    let ready = c.ready();
    let started_ok = running && c.post_start.is_none() && c.started_ok();
    let started_at = c
        .started
        .as_ref()
        .map(|s| s.started_at.clone())
        .unwrap_or_default();
    let with_message = |mut t: Value, m: &Option<String>| {
        if let Some(m) = m {
            t["terminated"]["message"] = json!(m);
        }
        t
    };
    let state = if running && c.post_start.is_some() {
        // Not running until its postStart hook is done, as Kubernetes says.
        json!({"waiting": {"reason": "ContainerCreating"}})
    } else if running {
        json!({"running": {"startedAt": started_at}})
    } else if let Some((reason, message)) = &c.waiting {
        json!({"waiting": {"reason": reason, "message": message}})
    } else if let Some(e) = &c.exited {
        if c.not_before.is_some() {
            json!({"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off restarting failed container {} (exit code {})", c.name, e.code)}})
        } else {
            with_message(terminated(e, &started_at), &c.killed)
        }
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    let last = match (&c.last, &c.exited, c.not_before.is_some()) {
        (_, Some(e), true) => with_message(terminated(e, &started_at), &c.killed),
        (Some(l), _, _) => with_message(terminated(l, ""), &c.last_killed),
        _ => json!({}),
    };
    json!({
        "name": c.name,
        "image": image,
        "imageID": format!("process://{image}"),
        "containerID": c.started.as_ref().map(|s| format!("process://{}", s.pid)),
        "ready": ready,
        "started": started_ok,
        "restartCount": c.restarts,
        "state": state,
        "lastState": last,
    })
}

/// Kubernetes' QoS class from the containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let cs: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let any = cs.iter().any(|c| {
        c.pointer("/resources/requests")
            .is_some_and(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            || c.pointer("/resources/limits")
                .is_some_and(|r| r.as_object().is_some_and(|m| !m.is_empty()))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = c.pointer(&format!("/resources/limits/{r}"));
            let q = c.pointer(&format!("/resources/requests/{r}")).or(l);
            l.is_some() && q == l
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A container's command line: `command` then `args`. With no `command` the
/// `args` run by themselves, as an image without an entrypoint runs them
/// (busybox, alpine, debian, python); there is no image to supply either.
fn argv(spec: &Value) -> Result<Vec<String>, String> {
    let words = |k: &str| -> Vec<String> {
        spec[k]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let argv: Vec<String> = words("command").into_iter().chain(words("args")).collect();
    if argv.is_empty() {
        return Err(
            "the process runtime needs a command: images are not run, so set `command` or `args`"
                .into(),
        );
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_command_then_args_or_args_alone() {
        let cases = [
            (
                json!({"command": ["sleep"], "args": ["5"]}),
                Ok(vec!["sleep", "5"]),
            ),
            (json!({"command": ["sleep", "5"]}), Ok(vec!["sleep", "5"])),
            // kubectl run NAME --image=busybox -- sh -c '...'
            (
                json!({"args": ["sh", "-c", "echo hi"]}),
                Ok(vec!["sh", "-c", "echo hi"]),
            ),
            (json!({"command": [], "args": ["true"]}), Ok(vec!["true"])),
            (json!({}), Err(())),
            (json!({"command": [], "args": []}), Err(())),
        ];
        for (spec, want) in cases {
            let got = argv(&spec);
            match want {
                Ok(w) => assert_eq!(
                    got.as_deref(),
                    Ok(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                    "{spec}"
                ),
                Err(()) => assert!(
                    got.unwrap_err().contains("set `command` or `args`"),
                    "{spec}"
                ),
            }
        }
    }

    #[test]
    fn back_off_doubles_from_ten_seconds_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let pod = |r: Value| json!({"spec": {"containers": [{"name": "c", "resources": r}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
            )),
            "Burstable"
        );
    }

    #[test]
    fn an_evicted_pod_is_failed_with_the_kubelets_reason_and_stays_so() {
        let dir = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "1"]}]}});
        let mut w = PodWorker::new(pod.clone(), dir.path().join("u1"));
        assert_eq!(w.evicted, None);
        w.evict("The node was low on resource: memory. ");
        let status = w.status(
            &Network::host("127.0.0.1"),
            &crate::cgroups::Layout::Unavailable(String::new()),
        );
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "Evicted");
        assert_eq!(status["message"], "The node was low on resource: memory. ");
        let conds = status["conditions"].as_array().unwrap();
        let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(get("Ready")["status"], "False");
        assert_eq!(get("DisruptionTarget")["status"], "True");
        assert_eq!(get("DisruptionTarget")["reason"], "TerminationByKubelet");
        assert_eq!(
            w.events,
            [PodEvent::warning(
                "Evicted",
                "The node was low on resource: memory. "
            )]
        );
        // A restarted agent reads it back from the stored status.
        let mut stored = pod;
        stored["status"] = status;
        let again = PodWorker::new(stored, dir.path().join("u1"));
        assert_eq!(
            again.evicted.as_ref().map(|k| k.message.as_str()),
            Some("The node was low on resource: memory. ")
        );
    }

    #[test]
    fn a_pod_stopped_for_node_shutdown_or_refused_reads_as_the_kubelets() {
        let dir = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u2"},
            "spec": {"terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "c", "image": "x", "command": ["sleep", "1"]}]}});
        let net = Network::host("127.0.0.1");
        let cg = crate::cgroups::Layout::Unavailable(String::new());
        let mut w = PodWorker::new(pod.clone(), dir.path().join("u2"));
        w.end(NodeKill::shutdown(8));
        // Its grace: the budget, as it is less than its own 30 s.
        assert_eq!(w.terminating.map(|t| t.1), Some(Duration::from_secs(8)));
        let status = w.status(&net, &cg);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "Terminated");
        assert_eq!(
            status["message"],
            "Pod was terminated in response to imminent node shutdown."
        );
        let conds = status["conditions"].as_array().unwrap();
        let dt = conds
            .iter()
            .find(|c| c["type"] == "DisruptionTarget")
            .unwrap();
        assert_eq!(dt["reason"], "TerminationByKubelet");
        assert_eq!(dt["message"], SHUTDOWN_MESSAGE);
        assert!(w.events.is_empty(), "{:?}", w.events);
        // A restarted agent keeps it ended.
        let mut stored = pod.clone();
        stored["status"] = status;
        let again = PodWorker::new(stored, dir.path().join("u2"));
        assert_eq!(
            again.evicted.as_ref().map(|k| k.reason.as_str()),
            Some("Terminated")
        );
        // A pod whose own grace is shorter keeps it; a soft eviction's cap.
        let mut short = pod.clone();
        short["spec"]["terminationGracePeriodSeconds"] = json!(3);
        let mut w = PodWorker::new(short, dir.path().join("u3"));
        w.end(NodeKill::evicted("low", 10));
        assert_eq!(w.terminating.map(|t| t.1), Some(Duration::from_secs(3)));

        // Refused at admission: Failed, the kubelet's prefix, an event, no
        // DisruptionTarget.
        let mut w = PodWorker::new(pod, dir.path().join("u4"));
        w.end(NodeKill::rejected(&crate::eviction::Rejection {
            reason: "Evicted",
            message: "The node had condition: [MemoryPressure]. ".into(),
        }));
        let status = w.status(&net, &cg);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "Evicted");
        assert_eq!(
            status["message"],
            "Pod was rejected: The node had condition: [MemoryPressure]. "
        );
        assert!(!status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "DisruptionTarget"));
        assert_eq!(
            w.events,
            [PodEvent::warning(
                "Evicted",
                "The node had condition: [MemoryPressure]. "
            )]
        );
        assert_eq!(w.live(), 0);
    }
}

#[cfg(test)]
mod event_tests;
