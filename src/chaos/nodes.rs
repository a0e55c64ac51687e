//! Nodes of a `ferry chaos` run: with `--nodes N` each a hollow node in a
//! process of its own (`ferry node --simulate 1`, so one node agent can be
//! killed or stopped alone); with `--real-nodes N` real `ferry node` agents,
//! each reaching the masters through fault proxies of its own (so it can be
//! cut off from them); a watch of the Nodes' Ready conditions, and the check that
//! no node went NotReady unless a fault of that very node explains it (a
//! master failure alone must never mark a node NotReady).

use anyhow::{bail, Context, Result};
use ferry_api::kv::{EventKind, WatchItem};
use ferry_api::proto::Consistency;
use ferry_api::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where Nodes live in the store.
const NODES: &str = "/registry/nodes/";

/// How long after a node fault is healed a change of that node's Ready
/// condition is still the fault's doing: the master's grace (7 s) runs from
/// the last Lease renewal it saw, and it polls every second.
pub const EXCUSE: Duration = Duration::from_secs(10);

/// One node agent process.
pub struct NodeProc {
    /// The Node's name (`chaos-n<i>-0` hollow, `chaos-r<i>` real).
    pub node: String,
    /// Its directory (`<dir>/n<i>` or `<dir>/r<i>`), holding `node.log`.
    dir: PathBuf,
    /// The arguments it is (re)started with.
    args: Vec<OsString>,
    /// The process, while it runs.
    pub child: Option<Child>,
    /// A real node agent's fault proxies, one in front of each master (its
    /// `node.conf` names them): cutting it off from the masters drops
    /// everything they carry.
    pub proxies: Vec<super::proxy::Proxy>,
    /// A real node agent (its pods are processes on this machine).
    real: bool,
    /// Its pods and network are gone (a real node, stopped).
    cleaned: bool,
}

impl NodeProc {
    /// (Re)starts the node agent.
    pub fn spawn(&mut self) -> Result<()> {
        let exe = std::env::current_exe().context("locating the ferry binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let child = Command::new(exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {}", self.node))?;
        self.child = Some(child);
        Ok(())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Its directory's name (`r1`), as [`super::pods::Shim::node_dir`] says it.
    pub fn dir_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Cuts the node off from every master (`true`) or heals the cut.
    pub fn cut(&self, cut: bool) {
        for p in &self.proxies {
            p.rules.lock().expect("rules").loss = if cut { 1.0 } else { 0.0 };
        }
    }
}

/// Starts `n` hollow nodes in `dir/n1..` and waits (≤ 60 s) until each
/// Node is Ready.
pub async fn start(dir: &Path, n: usize, admin: &Path, client: &Client) -> Result<Vec<NodeProc>> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        let d = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d)?;
        let prefix = format!("chaos-n{i}");
        let mut p = NodeProc {
            node: format!("{prefix}-0"),
            dir: d,
            args: vec![
                "--config".into(),
                admin.into(),
                "node".into(),
                "--simulate".into(),
                "1".into(),
                "--name-prefix".into(),
                prefix.into(),
            ],
            child: None,
            proxies: Vec::new(),
            real: false,
            cleaned: false,
        };
        p.spawn()?;
        nodes.push(p);
    }
    wait_ready(dir, nodes, client).await
}

/// Starts `n` real node agents `chaos-r<i>` in `dir/r<i>` (address
/// 127.0.1.<i>, pod network `auto`: namespaces as root, else the host's),
/// each joined with a fresh bootstrap token and then given a `node.conf`
/// that reaches every master (`masters`: their real QUIC addresses) through
/// a fault proxy of its own; waits (≤ 60 s) until each Node is Ready.
pub async fn start_real(
    dir: &Path,
    n: usize,
    admin: &ferry_config::ClientConfig,
    masters: &[std::net::SocketAddr],
    client: &Client,
) -> Result<Vec<NodeProc>> {
    let token = crate::master::node_token(admin)
        .await
        .context("creating the nodes' bootstrap token")?;
    let mut nodes = Vec::new();
    for i in 1..=n {
        let d = dir.join(format!("r{i}"));
        ferry_actors::master::identity::create_private_dir(&d)?;
        let name = format!("chaos-r{i}");
        let mut proxies = Vec::new();
        for m in masters {
            proxies.push(super::proxy::start(([127, 0, 0, 1], 0).into(), *m).await?);
        }
        let mut cfg =
            ferry_node::join::join(&admin.masters, &token, &name, Duration::from_secs(86_400))
                .await
                .with_context(|| format!("joining node {name}"))?;
        cfg.masters = proxies.iter().map(|p| p.addr.to_string()).collect();
        ferry_node::join::store(&d, &cfg)?;
        let mut p = NodeProc {
            node: name.clone(),
            args: vec![
                "node".into(),
                "--data-dir".into(),
                d.clone().into(),
                "--name".into(),
                name.into(),
                "--address".into(),
                format!("127.0.1.{i}").into(),
            ],
            dir: d,
            child: None,
            proxies,
            real: true,
            cleaned: false,
        };
        p.spawn()?;
        nodes.push(p);
    }
    wait_ready(dir, nodes, client).await
}

/// Waits (≤ 60 s) until every node's Node is Ready; stops them all if not.
async fn wait_ready(
    dir: &Path,
    mut nodes: Vec<NodeProc>,
    client: &Client,
) -> Result<Vec<NodeProc>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = Vec::new();
        for p in &nodes {
            let key = format!("{NODES}{}", p.node);
            let ready = match client.get(&key, Consistency::Linearizable).await {
                Ok(Some(kv)) => ready_status(&kv.value) == "True",
                _ => false,
            };
            if !ready {
                waiting.push(p.node.clone());
            }
        }
        if waiting.is_empty() {
            return Ok(nodes);
        }
        if Instant::now() > deadline {
            stop(&mut nodes);
            bail!(
                "nodes {} did not become Ready within 60s; see {}/{{n,r}}*/node.log",
                waiting.join(", "),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGCONT (none stays stopped), SIGTERM, SIGKILL after 5 s.
pub fn stop(nodes: &mut [NodeProc]) {
    for p in nodes.iter() {
        if let Some(pid) = p.pid() {
            let _ = kill(pid, Signal::SIGCONT);
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
    let until = Instant::now() + Duration::from_secs(5);
    for p in nodes.iter_mut() {
        if let Some(mut c) = p.child.take() {
            while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if p.real && !p.cleaned {
            p.cleaned = true;
            // The node stops with its pods, and nothing of its network stays
            // (as `ferry up` does).
            ferry_node::runtime::kill_all(&p.dir.join("pods"));
            let key = ferry_node::net::host_key_in(&p.dir, &p.node);
            let _ = ferry_node::net::proxy::delete_table(&key);
            if let Err(e) = ferry_node::net::podnet::teardown_node(&p.dir, &key) {
                tracing::warn!(node = %p.node, error = %e, "removing the node's pod network failed");
            }
        }
    }
}

/// A Node object's Ready condition status (`True`, `False`, `Unknown`;
/// `None` when it has none, `invalid` when it is not a Node).
fn ready_status(value: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(value) else {
        return "invalid".into();
    };
    v.pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("None")
        .to_string()
}

/// A change of a Node's Ready condition as the watch saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadyChange {
    /// When the watch received it (the run's clock).
    pub at_ns: u64,
    /// The Node.
    pub node: String,
    /// Its Ready status after the change (`Deleted` when the Node went).
    pub status: String,
}

/// Watches every Node from `after_revision` (resuming after errors), and
/// records each change of a Ready status; `now_ns` is the run's clock.
pub fn watch(
    client: Arc<Client>,
    after_revision: u64,
    now_ns: impl Fn() -> u64 + Send + 'static,
) -> (Arc<Mutex<Vec<ReadyChange>>>, tokio::task::JoinHandle<()>) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let out = changes.clone();
    // `Watch::next` is not cancel-safe: the task runs until aborted.
    let handle = tokio::spawn(async move {
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        let mut from = after_revision;
        loop {
            let mut w = client.watch(NODES, Some(from), 1000);
            loop {
                match w.next().await {
                    Ok(WatchItem::Events { revision, events }) => {
                        for e in events {
                            let node = e.kv.key.trim_start_matches(NODES).to_string();
                            let status = match e.kind {
                                EventKind::Put => ready_status(&e.kv.value),
                                EventKind::Delete => "Deleted".into(),
                            };
                            // Every Node starts Ready: a first `True` is no change.
                            let changed = last
                                .get(&node)
                                .map_or(status != "True", |before| *before != status);
                            if changed {
                                last.insert(node.clone(), status.clone());
                                out.lock().expect("changes").push(ReadyChange {
                                    at_ns: now_ns(),
                                    node,
                                    status,
                                });
                            }
                        }
                        from = from.max(revision);
                    }
                    Ok(WatchItem::Bookmark { revision }) => from = from.max(revision),
                    Err(e) => {
                        tracing::debug!(error = %e, "chaos: the node watch ends; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    });
    (changes, handle)
}

/// A fault of one node agent (SIGKILL or SIGSTOP), from `at_ns` until healed.
#[derive(Debug, Clone)]
pub struct NodeFault {
    pub node: String,
    pub at_ns: u64,
    pub healed_ns: u64,
    /// A cut from the masters this short (seconds) that they must not
    /// notice: it excuses nothing.
    pub short: Option<f64>,
}

/// A node that went NotReady with no fault of its own to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unexcused {
    pub node: String,
    pub at_ns: u64,
    pub status: String,
    /// The cut under the grace it came during (seconds), if any.
    pub short_cut: Option<f64>,
    /// Why it is wrong, for the report.
    pub reason: String,
}

/// Every change of a Node from Ready=True to another status (every Node
/// starts Ready) that no fault of that node explains: a fault explains the
/// changes from its start until [`EXCUSE`] after it was healed, but for a
/// cut from the masters shorter than the grace, which explains none.
pub fn check(changes: &[ReadyChange], faults: &[NodeFault]) -> Vec<Unexcused> {
    let mut ready: BTreeMap<&str, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for c in changes {
        let was = ready.insert(&c.node, c.status == "True").unwrap_or(true);
        if !was || c.status == "True" {
            continue;
        }
        let during = |f: &&NodeFault| {
            f.node == c.node
                && f.at_ns <= c.at_ns
                && c.at_ns <= f.healed_ns + EXCUSE.as_nanos() as u64
        };
        if faults.iter().filter(during).any(|f| f.short.is_none()) {
            continue;
        }
        let short_cut = faults.iter().filter(during).find_map(|f| f.short);
        out.push(Unexcused {
            node: c.node.clone(),
            at_ns: c.at_ns,
            status: c.status.clone(),
            short_cut,
            reason: match short_cut {
                Some(s) => format!("after a cut from the masters of {s:.1}s, under the grace"),
                None => "with no fault of its own (a master failure alone)".into(),
            },
        });
    }
    out
}

/// For a fault of `node` at `at_ns`, healed at `healed_ns`: milliseconds
/// from the fault to the Node's first change from Ready=True (within the
/// excuse), and from the heal to its Ready=True again after that.
pub fn figures(
    changes: &[ReadyChange],
    node: &str,
    at_ns: u64,
    healed_ns: u64,
) -> (Option<f64>, Option<f64>) {
    let ms = |t: u64, from: u64| t.saturating_sub(from) as f64 / 1e6;
    let mine = changes.iter().filter(|c| c.node == node);
    let unready = mine
        .clone()
        .find(|c| {
            c.status != "True"
                && c.at_ns >= at_ns
                && c.at_ns <= healed_ns + EXCUSE.as_nanos() as u64
        })
        .map(|c| c.at_ns);
    let ready = unready.and_then(|u| {
        mine.clone()
            .find(|c| c.status == "True" && c.at_ns > u)
            .map(|c| ms(c.at_ns, healed_ns))
    });
    (unready.map(|u| ms(u, at_ns)), ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(at_s: u64, node: &str, status: &str) -> ReadyChange {
        ReadyChange {
            at_ns: at_s * 1_000_000_000,
            node: node.into(),
            status: status.into(),
        }
    }

    fn fault(node: &str, at_s: u64, healed_s: u64) -> NodeFault {
        NodeFault {
            node: node.into(),
            at_ns: at_s * 1_000_000_000,
            healed_ns: healed_s * 1_000_000_000,
            short: None,
        }
    }

    fn master(node: &str, at_s: u64, status: &str) -> Unexcused {
        Unexcused {
            node: node.into(),
            at_ns: at_s * 1_000_000_000,
            status: status.into(),
            short_cut: None,
            reason: "with no fault of its own (a master failure alone)".into(),
        }
    }

    #[test]
    fn a_node_fault_excuses_only_its_own_node_for_a_while() {
        let changes = [
            // n1's own fault: excused, and so is its return.
            ch(12, "n1", "Unknown"),
            ch(15, "n1", "True"),
            // n2 went NotReady during n1's fault: a master's doing.
            ch(13, "n2", "Unknown"),
            ch(14, "n2", "True"),
            // n1 again, long after its fault was healed.
            ch(40, "n1", "Unknown"),
            // Still not Ready: one change, not two.
            ch(41, "n1", "False"),
        ];
        let faults = [fault("n1", 5, 14)];
        let bad = check(&changes, &faults);
        assert_eq!(
            bad,
            vec![master("n2", 13, "Unknown"), master("n1", 40, "Unknown")]
        );
        assert!(check(&changes[..2], &faults).is_empty());
        assert_eq!(
            figures(&changes, "n1", 5_000_000_000, 14_000_000_000),
            (Some(7000.0), Some(1000.0))
        );
        assert_eq!(
            figures(&changes, "n2", 50_000_000_000, 51_000_000_000),
            (None, None)
        );
    }

    #[test]
    fn a_cut_under_the_grace_excuses_nothing() {
        let changes = [ch(12, "n1", "Unknown"), ch(14, "n1", "True")];
        let short = NodeFault {
            short: Some(2.0),
            ..fault("n1", 10, 12)
        };
        let bad = check(&changes, std::slice::from_ref(&short));
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].short_cut, Some(2.0));
        assert!(bad[0].reason.contains("under the grace"), "{bad:?}");
        // A long fault of the same node at the time excuses it.
        assert!(check(&changes, &[short, fault("n1", 5, 13)]).is_empty());
    }

    #[test]
    fn ready_status_of_a_node() {
        let v = br#"{"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"Unknown"}]}}"#;
        assert_eq!(ready_status(v), "Unknown");
        assert_eq!(ready_status(b"{}"), "None");
        assert_eq!(ready_status(b"not json"), "invalid");
    }
}
