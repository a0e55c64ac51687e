//! Hollow nodes (`ferry node --simulate N`), as kubemark and kwok make them:
//! N Nodes registered from one process, each with a Lease renewed in
//! `kube-node-lease`, reporting the pods bound to them Running and Ready
//! without starting any process, and finishing deleted pods (the kubelet's
//! final delete, grace 0). A load generator for the control plane, not a node.
//!
//! Design:
//! - Connections ([`Conns`]): either one per node with that node's own
//!   identity (`Conns::per_node`: a `node:<name>` certificate from a real
//!   join, as kubemark opens one per node; `ferry bench nodes` by default),
//!   the node authorizer and node restriction applying to each; or a few
//!   shared by the hollow nodes with the admin's credentials, node `i` on
//!   connection `i mod C` (`ferry node --simulate`, `ferry bench nodes
//!   --connections C`). The pod and Node watches and the clean-up use an
//!   admin connection (`ferry up`'s `<dir>/admin.conf`): no node may watch
//!   every pod or delete Nodes.
//! - Leases are renewed spread evenly over the interval ([`Spread`]): each
//!   tick renews the nodes whose turn came, concurrently, so the masters'
//!   group commit puts them in a few Raft entries instead of 5,000 at once.
//! - Pods: one watch of every pod, filtered here to the hollow nodes (a
//!   `spec.nodeName` field selector per node would be 5,000 watches). A bound
//!   pod gets the status the node agent writes for a running, ready pod; a pod
//!   with a `deletionTimestamp` is deleted with grace 0.
//! - Nodes: a watch of the hollow Nodes writes a Node's status again when a
//!   master marked it not Ready, and registers a deleted one again.

use crate::node::{self, Machine, Reserved, LEASE_NAMESPACE};
use crate::objects::{code_of, Objects};
use anyhow::Result;
use ferry_api::object::{ObjectRequest, Verb};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The label every hollow node carries (`type=hollow`, as kubemark's).
pub const LABEL: (&str, &str) = ("type", "hollow");
/// Requests in flight at once, over all the hollow nodes' work.
const PARALLEL: usize = 256;
/// How often the lease loop looks for renewals that are due.
const TICK: Duration = Duration::from_millis(50);

/// What the hollow nodes run with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Node names are `<prefix>-0` .. `<prefix>-<count-1>`.
    pub prefix: String,
    /// How many nodes.
    pub count: usize,
    /// Lease renewal interval (each node's; spread over the nodes).
    pub lease_interval: Duration,
    /// Lease duration written into each Lease.
    pub lease_duration: Duration,
    /// CPUs each node reports.
    pub cpus: u64,
    /// Memory each node reports, in bytes.
    pub memory: u64,
    /// Where to record each Lease renewal's latency, in microseconds
    /// (`ferry bench nodes`).
    pub heartbeats: Option<Arc<Mutex<Vec<u64>>>>,
}

impl Options {
    /// `count` nodes named `<prefix>-i` of 4 CPUs and 16 GiB, renewing their
    /// Leases every `lease_interval` (duration: four intervals, at least 1 s).
    pub fn new(prefix: &str, count: usize, lease_interval: Duration) -> Options {
        Options {
            prefix: prefix.to_string(),
            count,
            lease_interval,
            lease_duration: (lease_interval * 4).max(Duration::from_secs(1)),
            cpus: 4,
            memory: 16 << 30,
            heartbeats: None,
        }
    }

    /// Node `i`'s name.
    pub fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    /// The index of the hollow node called `name`, if it is one of these.
    pub fn index(&self, name: &str) -> Option<usize> {
        let i: usize = name
            .strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        (i < self.count && self.name(i) == name).then_some(i)
    }

    fn machine(&self) -> Machine {
        Machine {
            cpus: self.cpus,
            memory: self.memory,
            storage: 100 << 30,
            kernel: "hollow".into(),
            os_image: "ferry hollow node".into(),
            arch: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
            .into(),
            ..Machine::default()
        }
    }

    /// Node `i` as registered (and its status as reported), at `now`.
    pub fn node_object(&self, i: usize, now: &str) -> Value {
        let name = self.name(i);
        let mut n = node::node_object(
            &name,
            &address(i).to_string(),
            &self.machine(),
            &Reserved::default(),
            &node::NetworkReport {
                mode: "host".into(),
                ready: true,
                reason: "HostNetwork".into(),
                message: "hollow node: pods share its address".into(),
            },
            now,
        );
        n["metadata"]["labels"][LABEL.0] = json!(LABEL.1);
        n["status"]["nodeInfo"]["containerRuntimeVersion"] = json!("hollow://ferry");
        n
    }
}

/// Node `i`'s address (InternalIP, shared by its pods as on a real node):
/// `127.1.0.0 + i`, on loopback so nothing ever sends to a hollow pod off the host.
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)).wrapping_add(i as u32))
}

/// Spreads `n` periodic renewals evenly over `interval`: at any moment, the
/// renewals due since the last call, by index (wrapping round).
#[derive(Debug)]
pub struct Spread {
    n: usize,
    interval: Duration,
    start: Instant,
    issued: u128,
}

impl Spread {
    /// Starts counting at `start`.
    pub fn new(n: usize, interval: Duration, start: Instant) -> Spread {
        Spread {
            n,
            interval,
            start,
            issued: 0,
        }
    }

    /// The indices due at `now` that no earlier call returned; never more than
    /// one round (a loop that fell behind skips rather than catches up twice).
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let interval = self.interval.as_nanos().max(1);
        let total = now.duration_since(self.start).as_nanos() * self.n as u128 / interval;
        let from = self.issued.max(total.saturating_sub(self.n as u128));
        self.issued = total;
        (from..total)
            .map(|k| (k % self.n.max(1) as u128) as usize)
            .collect()
    }
}

/// What a hollow node does about one of its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Report it Running and Ready.
    Run,
    /// It is being deleted: delete it for good (grace 0), as the kubelet does
    /// once its containers are gone.
    Finish,
}

/// What to do about `pod`, bound to a hollow node; `None`: nothing.
pub fn decide(pod: &Value) -> Option<Act> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Some(Act::Finish);
    }
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True");
    (phase != Some("Running") || !ready).then_some(Act::Run)
}

/// The status a running, ready pod gets from the node agent, for `pod` on a
/// hollow node at `host_ip`, started at `now`: init containers completed,
/// containers running and ready.
pub fn pod_status(pod: &Value, host_ip: &str, now: &str) -> Value {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let list = |field: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let status = |c: &Value, state: Value, ready: bool| {
        let name = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        json!({
            "name": name,
            "image": image,
            "imageID": format!("hollow://{image}"),
            "containerID": format!("hollow://{uid}/{name}"),
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": state,
            "lastState": {},
        })
    };
    let init: Vec<Value> = list("initContainers")
        .iter()
        .map(|c| {
            let done = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": now, "finishedAt": now}});
            status(c, done, false)
        })
        .collect();
    let containers: Vec<Value> = list("containers")
        .iter()
        .map(|c| status(c, json!({"running": {"startedAt": now}}), true))
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "conditions": [
            cond("PodReadyToStartContainers"),
            cond("Initialized"),
            cond("Ready"),
            cond("ContainersReady"),
            cond("PodScheduled"),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": now,
        "initContainerStatuses": init,
        "containerStatuses": containers,
        "qosClass": crate::pods::qos_class(pod),
    })
}

/// Runs `f(i)` for every `i` in `items`, at most [`PARALLEL`] at once; the
/// first error, if any, after all have run.
async fn each<F, Fut>(items: Vec<usize>, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    for i in items {
        let permit = permits.clone().acquire_owned().await?;
        let fut = f(i);
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
    }
    let mut first = None;
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The connections hollow nodes share: node `i` uses the `i mod len`th.
#[derive(Clone)]
pub struct Conns {
    nodes: Arc<Vec<Objects>>,
    admin: Objects,
}

impl Conns {
    /// Connections the nodes share (at least one), with the admin's
    /// credentials; the first also carries the watches.
    pub fn new(conns: Vec<Objects>) -> Result<Conns> {
        let admin = conns
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("hollow nodes need a connection"))?;
        Ok(Conns {
            nodes: Arc::new(conns),
            admin,
        })
    }

    /// One connection per node, each with that node's own identity
    /// (`node:<name>`, as a joined node has), and `admin` for the watches
    /// and the clean-up, which no node may do.
    pub fn per_node(nodes: Vec<Objects>, admin: Objects) -> Result<Conns> {
        anyhow::ensure!(!nodes.is_empty(), "hollow nodes need a connection");
        Ok(Conns {
            nodes: Arc::new(nodes),
            admin,
        })
    }

    /// Node `i`'s connection.
    pub fn of(&self, i: usize) -> &Objects {
        &self.nodes[i % self.nodes.len()]
    }

    /// The watches' and the clean-up's connection.
    pub fn admin(&self) -> &Objects {
        &self.admin
    }
}

/// Registers every hollow node (Node, its status, its Lease), concurrently.
pub async fn register(conns: &Conns, opts: &Options) -> Result<()> {
    let o = Arc::new(opts.clone());
    each((0..opts.count).collect(), |i| {
        let (api, o) = (conns.of(i).clone(), o.clone());
        async move { register_one(&api, &o, i).await }
    })
    .await
}

async fn register_one(api: &Objects, o: &Options, i: usize) -> Result<()> {
    let obj = o.node_object(i, &crate::now());
    api.register_node(&obj).await?;
    renew_lease(api, o, i).await
}

async fn write_status(api: &Objects, o: &Options, i: usize) -> Result<()> {
    let obj = o.node_object(i, &crate::now());
    api.patch(
        "nodes",
        None,
        &o.name(i),
        Some("status"),
        &json!({"status": obj["status"]}),
    )
    .await
    .map(|_| ())
}

async fn renew_lease(api: &Objects, o: &Options, i: usize) -> Result<()> {
    let t = Instant::now();
    let renewed = renew_lease_once(api, o, i).await;
    if let (Ok(()), Some(h)) = (&renewed, &o.heartbeats) {
        if let Ok(mut h) = h.lock() {
            h.push(t.elapsed().as_micros() as u64);
        }
    }
    renewed
}

async fn renew_lease_once(api: &Objects, o: &Options, i: usize) -> Result<()> {
    let name = o.name(i);
    let lease = node::lease(&name, o.lease_duration.as_secs(), &crate::now_micros());
    match api
        .patch(
            "leases",
            Some(LEASE_NAMESPACE),
            &name,
            None,
            &json!({"spec": lease["spec"]}),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some(404) => {
            match api.create("leases", Some(LEASE_NAMESPACE), &lease).await {
                // Created meanwhile by the node's registration: renewed.
                Err(e) if code_of(&e) == Some(409) => Ok(()),
                r => r.map(|_| ()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Deletes the hollow nodes' Nodes and Leases (after [`run`] stopped).
pub async fn unregister(conns: &Conns, opts: &Options) -> Result<()> {
    let o = Arc::new(opts.clone());
    each((0..opts.count).collect(), |i| {
        let (api, o) = (conns.admin().clone(), o.clone());
        async move {
            let name = o.name(i);
            api.delete("leases", Some(LEASE_NAMESPACE), &name, &json!({}))
                .await?;
            api.delete("nodes", None, &name, &json!({})).await
        }
    })
    .await
}

/// Runs registered hollow nodes until `stop` turns true: Lease renewals,
/// pods reported Running and finished when deleted, Node status kept Ready.
pub async fn run(
    conns: Conns,
    opts: Options,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let opts = Arc::new(opts);
    let permits = Arc::new(Semaphore::new(PARALLEL));
    tokio::select! {
        () = leases(&conns, &opts, &permits) => Ok(()),
        () = pods(&conns, &opts, &permits) => Ok(()),
        () = nodes(&conns, &opts, &permits) => Ok(()),
        _ = stop.wait_for(|s| *s) => Ok(()),
    }
}

/// Renews every Lease once per interval, spread over it.
async fn leases(conns: &Conns, opts: &Arc<Options>, permits: &Arc<Semaphore>) {
    let mut spread = Spread::new(opts.count, opts.lease_interval, Instant::now());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for i in spread.due(Instant::now()) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (api, o) = (conns.of(i).clone(), opts.clone());
            tokio::spawn(async move {
                if let Err(e) = renew_lease(&api, &o, i).await {
                    tracing::warn!(node = %o.name(i), error = %e, "lease renewal failed");
                }
                drop(permit);
            });
        }
    }
}

/// Which pods have work in flight or are reported, by uid.
#[derive(Default)]
struct Seen {
    busy: HashSet<String>,
    reported: HashSet<String>,
}

/// One watch of every pod; the hollow nodes' pods reported and finished.
async fn pods(conns: &Conns, opts: &Arc<Options>, permits: &Arc<Semaphore>) {
    let api = conns.admin();
    let seen = Arc::new(Mutex::new(Seen::default()));
    loop {
        let mut w = api
            .client
            .watch_objects(ObjectRequest::new(Verb::Watch, "pods", None, None));
        loop {
            let ev = match w.next().await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch failed; watching again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            };
            let Ok(pod) = serde_json::from_slice::<Value>(&ev.object) else {
                continue;
            };
            let Some(node) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .and_then(|n| opts.index(n))
            else {
                continue;
            };
            let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
            if ev.kind == "DELETED" {
                let mut s = seen.lock().expect("not poisoned");
                s.reported.remove(&uid);
                continue;
            }
            if ev.kind != "ADDED" && ev.kind != "MODIFIED" {
                continue;
            }
            let Some(act) = decide(&pod) else { continue };
            {
                let mut s = seen.lock().expect("not poisoned");
                if s.busy.contains(&uid) || (act == Act::Run && s.reported.contains(&uid)) {
                    continue;
                }
                s.busy.insert(uid.clone());
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            // The node's own connection: a node writes its own pods' status.
            let (api, seen) = (conns.of(node).clone(), seen.clone());
            tokio::spawn(async move {
                let done = pod_work(&api, &pod, node, act).await;
                let mut s = seen.lock().expect("not poisoned");
                s.busy.remove(&uid);
                if done && act == Act::Run {
                    s.reported.insert(uid);
                }
                drop(permit);
            });
        }
    }
}

/// Carries out `act` for `pod` on hollow node `node`, a few tries; whether it was done.
async fn pod_work(api: &Objects, pod: &Value, node: usize, act: Act) -> bool {
    let m = &pod["metadata"];
    let (ns, name) = (
        m["namespace"].as_str().unwrap_or("default"),
        m["name"].as_str().unwrap_or(""),
    );
    for attempt in 0..3u32 {
        let r = match act {
            Act::Run => {
                let status = pod_status(pod, &address(node).to_string(), &crate::now());
                api.patch_pod_status(ns, name, &status).await.map(|_| ())
            }
            Act::Finish => {
                api.delete(
                    "pods",
                    Some(ns),
                    name,
                    &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m["uid"]}}),
                )
                .await
            }
        };
        match r {
            Ok(()) => return true,
            // Gone, or no longer the pod this event showed: nothing to do.
            Err(e) if matches!(code_of(&e), Some(404 | 409)) => return false,
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, attempt, "hollow pod update failed");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    false
}

/// Keeps the hollow Nodes registered and Ready: a Node a master marked not
/// Ready (its Lease was late) gets its status again, a deleted one is
/// registered again.
async fn nodes(conns: &Conns, opts: &Arc<Options>, permits: &Arc<Semaphore>) {
    let busy: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let api = conns.admin();
    loop {
        let mut req = ObjectRequest::new(Verb::Watch, "nodes", None, None);
        req.list.label_selector = Some(format!("{}={}", LABEL.0, LABEL.1));
        let mut w = api.client.watch_objects(req);
        loop {
            let ev = match w.next().await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "node watch failed; watching again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            };
            let Ok(n) = serde_json::from_slice::<Value>(&ev.object) else {
                continue;
            };
            let Some(i) = n["metadata"]["name"].as_str().and_then(|n| opts.index(n)) else {
                continue;
            };
            let ready = n
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True");
            let deleted = ev.kind == "DELETED";
            if (ready && !deleted) || !busy.lock().expect("not poisoned").insert(i) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (api, o, busy) = (conns.of(i).clone(), opts.clone(), busy.clone());
            tokio::spawn(async move {
                let r = if deleted {
                    register_one(&api, &o, i).await
                } else {
                    write_status(&api, &o, i).await
                };
                if let Err(e) = r {
                    tracing::warn!(node = %o.name(i), error = %e, "hollow node status failed");
                }
                busy.lock().expect("not poisoned").remove(&i);
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_round_trip_only_for_these_nodes() {
        let o = Options::new("hollow", 3, Duration::from_secs(2));
        assert_eq!(o.name(2), "hollow-2");
        let cases = [
            ("hollow-0", Some(0)),
            ("hollow-2", Some(2)),
            ("hollow-3", None),
            ("hollow-02", None),
            ("hollow-x", None),
            ("hollowy-1", None),
            ("other-1", None),
        ];
        for (name, want) in cases {
            assert_eq!(o.index(name), want, "{name}");
        }
    }

    #[test]
    fn addresses_are_distinct_loopback_addresses() {
        assert_eq!(address(0), Ipv4Addr::new(127, 1, 0, 0));
        assert_eq!(address(257), Ipv4Addr::new(127, 1, 1, 1));
        assert!(address(60_000).is_loopback());
    }

    #[test]
    fn a_hollow_node_looks_like_a_real_one_with_its_label() {
        let o = Options::new("h", 10, Duration::from_secs(2));
        let n = o.node_object(7, "2026-12-05T00:00:00Z");
        assert_eq!(n["metadata"]["name"], "h-7");
        assert_eq!(n["metadata"]["labels"]["type"], "hollow");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "h-7");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(n["status"]["capacity"]["cpu"], "4");
        assert_eq!(n["status"]["allocatable"]["cpu"], "4000m");
        assert_eq!(n["status"]["allocatable"]["memory"], "16777216Ki");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_eq!(n["status"]["addresses"][0]["address"], "127.1.0.7");
        assert_eq!(o.lease_duration, Duration::from_secs(8));
    }

    #[test]
    fn renewals_are_spread_over_the_interval() {
        let t0 = Instant::now();
        let mut s = Spread::new(10, Duration::from_secs(1), t0);
        assert_eq!(s.due(t0), Vec::<usize>::new());
        assert_eq!(s.due(t0 + Duration::from_millis(250)), vec![0, 1]);
        assert_eq!(s.due(t0 + Duration::from_millis(500)), vec![2, 3, 4]);
        assert_eq!(s.due(t0 + Duration::from_millis(500)), Vec::<usize>::new());
        assert_eq!(
            s.due(t0 + Duration::from_millis(1200)),
            vec![5, 6, 7, 8, 9, 0, 1]
        );
        // Far behind: one round, not several.
        let late = s.due(t0 + Duration::from_secs(5));
        assert_eq!(late.len(), 10);
        let mut sorted = late.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn decisions_follow_the_pod() {
        let running = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]});
        let cases = [
            (json!({"metadata": {}}), Some(Act::Run)),
            (json!({"status": {"phase": "Pending"}}), Some(Act::Run)),
            (json!({"status": running.clone()}), None),
            (
                json!({"status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}]}}),
                Some(Act::Run),
            ),
            (json!({"status": {"phase": "Succeeded"}}), None),
            (json!({"status": {"phase": "Failed"}}), None),
            (
                json!({"metadata": {"deletionTimestamp": "2026-12-05T00:00:00Z"},
                    "status": running}),
                Some(Act::Finish),
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(decide(&pod), want, "{pod}");
        }
    }

    #[test]
    fn the_status_is_the_agents_for_a_running_ready_pod() {
        let pod = json!({
            "metadata": {"uid": "u1"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "c", "image": "nginx",
                    "resources": {"requests": {"cpu": "10m"}}}],
            },
        });
        let s = pod_status(&pod, "127.1.0.3", "2026-12-05T00:00:00Z");
        assert_eq!(s["phase"], "Running");
        for t in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            let c = s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap();
            assert_eq!(c["status"], "True", "{t}");
        }
        assert_eq!(s["hostIP"], "127.1.0.3");
        assert_eq!(s["podIP"], "127.1.0.3");
        assert_eq!(s["startTime"], "2026-12-05T00:00:00Z");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2026-12-05T00:00:00Z"
        );
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["containerID"], "hollow://u1/c");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(s["qosClass"], "Burstable");
        assert_eq!(decide(&json!({"status": s})), None);
    }
}
