//! Nodes of a `ferry chaos --nodes N` run: each a hollow node in a process
//! of its own (`ferry node --simulate 1`, so one node agent can be killed or
//! stopped alone), a watch of the Nodes' Ready conditions, and the check that
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
    /// The Node's name (`chaos-n<i>-0`).
    pub node: String,
    /// Its directory (`<dir>/n<i>`), holding `node.log`.
    dir: PathBuf,
    /// The process, while it runs.
    pub child: Option<Child>,
}

impl NodeProc {
    /// (Re)starts the hollow node with the admin's client config `admin`.
    pub fn spawn(&mut self, admin: &Path) -> Result<()> {
        let exe = std::env::current_exe().context("locating the ferry binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let prefix = self.node.trim_end_matches("-0");
        let child = Command::new(exe)
            .arg("--config")
            .arg(admin)
            .args(["node", "--simulate", "1", "--name-prefix", prefix])
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
}

/// Starts `n` hollow nodes in `dir/n1..` and waits (≤ 60 s) until each
/// Node is Ready.
pub async fn start(dir: &Path, n: usize, admin: &Path, client: &Client) -> Result<Vec<NodeProc>> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        let d = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d)?;
        let mut p = NodeProc {
            node: format!("chaos-n{i}-0"),
            dir: d,
            child: None,
        };
        p.spawn(admin)?;
        nodes.push(p);
    }
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
                "nodes {} did not become Ready within 60s; see {}/n*/node.log",
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
}

/// A node that went NotReady with no fault of its own to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unexcused {
    pub node: String,
    pub at_ns: u64,
    pub status: String,
}

/// Every change of a Node from Ready=True to another status (every Node
/// starts Ready) that no fault of that node explains: a fault explains the
/// changes from its start until [`EXCUSE`] after it was healed.
pub fn check(changes: &[ReadyChange], faults: &[NodeFault]) -> Vec<Unexcused> {
    let mut ready: BTreeMap<&str, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for c in changes {
        let was = ready.insert(&c.node, c.status == "True").unwrap_or(true);
        if !was || c.status == "True" {
            continue;
        }
        let excused = faults.iter().any(|f| {
            f.node == c.node
                && f.at_ns <= c.at_ns
                && c.at_ns <= f.healed_ns + EXCUSE.as_nanos() as u64
        });
        if !excused {
            out.push(Unexcused {
                node: c.node.clone(),
                at_ns: c.at_ns,
                status: c.status.clone(),
            });
        }
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
            vec![
                Unexcused {
                    node: "n2".into(),
                    at_ns: 13_000_000_000,
                    status: "Unknown".into()
                },
                Unexcused {
                    node: "n1".into(),
                    at_ns: 40_000_000_000,
                    status: "Unknown".into()
                },
            ]
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
    fn ready_status_of_a_node() {
        let v = br#"{"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"Unknown"}]}}"#;
        assert_eq!(ready_status(v), "Unknown");
        assert_eq!(ready_status(b"{}"), "None");
        assert_eq!(ready_status(b"not json"), "invalid");
    }
}
