//! Resource usage, as the kubelet's summary feeds metrics-server: every
//! [`INTERVAL`] the node reads each running container's cumulative CPU time
//! and memory working set (from its cgroup; without one, from its process
//! group in `/proc`) and the node's totals (`/proc/stat`, `/proc/meminfo`),
//! turns CPU time into a rate over the interval, and pushes one
//! [`NodeReport`] to every master it knows (`ApiRequest::ReportMetrics`), so
//! each master answers `kubectl top` alone.

use crate::cgroups::Layout;
use crate::runtime::{self, ContainerDir};
use ferry_api::metrics::{rate, ContainerUsage, NodeReport, PodUsage};
use ferry_api::proto::{ApiRequest, ApiResponse};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often usage is sampled and reported.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// A running pod the sampler reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRef {
    /// Uid (its directory and cgroup).
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// App container names.
    pub containers: Vec<String>,
}

/// What the agent tells the sampler: its node's labels and its pods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The Node's labels.
    pub labels: BTreeMap<String, String>,
    /// Pods on the node.
    pub pods: Vec<PodRef>,
}

/// The value of `key` in a `key value` file (`memory.stat`, `cpu.stat`).
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Working set as the kubelet computes it: usage less inactive file pages (never below 0).
pub fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

/// Busy CPU ticks from `/proc/stat`'s first line (user, nice, system, irq,
/// softirq, steal; idle and iowait excluded).
pub fn proc_stat_busy(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// The node's memory working set from `/proc/meminfo`: MemTotal − MemAvailable, bytes.
pub fn meminfo_used(text: &str) -> Option<u64> {
    let kb = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(kb("MemTotal")?.saturating_sub(kb("MemAvailable")?) * 1024)
}

/// `(process group, utime + stime ticks, rss pages)` from a `/proc/<pid>/stat` line.
pub fn pid_stat(text: &str) -> Option<(i32, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some((f.get(2)?.parse().ok()?, n(11)? + n(12)?, n(21)?))
}

fn ticks_per_sec() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t as u64)
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64)
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// One container's cumulative CPU nanoseconds and working set bytes, from its cgroup.
fn from_cgroup(layout: &Layout, uid: &str, container: &str) -> Option<(u64, u64)> {
    let rel = Path::new("ferry").join(uid).join(container);
    match layout {
        Layout::V1(root) => {
            let cpu: u64 = read(&root.join("cpuacct").join(&rel).join("cpuacct.usage"))?
                .trim()
                .parse()
                .ok()?;
            let mem = root.join("memory").join(&rel);
            let usage: u64 = read(&mem.join("memory.usage_in_bytes"))?
                .trim()
                .parse()
                .ok()?;
            let stat = read(&mem.join("memory.stat")).unwrap_or_default();
            let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
            Some((cpu, working_set(usage, inactive)))
        }
        Layout::V2(root) => {
            let d = root.join(&rel);
            let cpu = stat_value(&read(&d.join("cpu.stat"))?, "usage_usec")? * 1000;
            let usage: u64 = read(&d.join("memory.current"))?.trim().parse().ok()?;
            let stat = read(&d.join("memory.stat")).unwrap_or_default();
            let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
            Some((cpu, working_set(usage, inactive)))
        }
        Layout::Unavailable(_) => None,
    }
}

/// Every process's `(pgrp, cpu ticks, rss pages)`, read once per sample.
fn proc_table() -> Vec<(i32, u64, u64)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| read(&e.path().join("stat")).and_then(|s| pid_stat(&s)))
        .collect()
}

/// A container without a cgroup: the sum over its process group.
fn from_procs(table: &[(i32, u64, u64)], pgid: i32) -> (u64, u64) {
    let (ticks, pages) = table
        .iter()
        .filter(|(g, _, _)| *g == pgid)
        .fold((0, 0), |(t, p), (_, tt, pp)| (t + tt, p + pp));
    (ticks * 1_000_000_000 / ticks_per_sec(), pages * page_size())
}

/// Keeps the previous cumulative readings to turn them into rates.
#[derive(Default)]
pub struct Sampler {
    prev: HashMap<String, (Instant, u64)>,
    node_prev: Option<(Instant, u64)>,
    last: Option<Instant>,
}

impl Sampler {
    /// One sample: the report, once a previous reading gives rates (pods
    /// whose containers lack one are left out until the next sample).
    pub fn sample(
        &mut self,
        node: &str,
        snap: &Snapshot,
        pods_dir: &Path,
        layout: &Layout,
    ) -> Option<NodeReport> {
        let now = Instant::now();
        let table = proc_table();
        let mut seen = HashMap::new();
        let mut pods = Vec::new();
        for p in &snap.pods {
            let mut containers = Vec::new();
            let mut whole = true;
            for c in &p.containers {
                let dir = ContainerDir(pods_dir.join(&p.uid).join(c));
                let Some(started) = dir.started().filter(runtime::running) else {
                    continue;
                };
                if dir.exited().is_some() {
                    continue;
                }
                let (cpu, mem) = from_cgroup(layout, &p.uid, c)
                    .unwrap_or_else(|| from_procs(&table, started.pid));
                // A new run (restart) starts a new counter.
                let key = format!("{}/{c}/{}", p.uid, started.start_ticks);
                let r = self
                    .prev
                    .get(&key)
                    .and_then(|(t, before)| rate(*before, cpu, now - *t));
                seen.insert(key, (now, cpu));
                match r {
                    Some(n) => containers.push(ContainerUsage {
                        name: c.clone(),
                        cpu_nanocores: n,
                        memory_bytes: mem,
                    }),
                    None => whole = false,
                }
            }
            if whole && !containers.is_empty() {
                pods.push(PodUsage {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    labels: p.labels.clone(),
                    containers,
                });
            }
        }
        self.prev = seen;
        let busy_ns = read(Path::new("/proc/stat"))
            .and_then(|s| proc_stat_busy(&s))
            .map(|t| t * 1_000_000_000 / ticks_per_sec())?;
        let mem = read(Path::new("/proc/meminfo")).and_then(|s| meminfo_used(&s))?;
        let node_rate = self
            .node_prev
            .and_then(|(t, before)| rate(before, busy_ns, now - t));
        let window = self.last.map(|t| now - t);
        self.node_prev = Some((now, busy_ns));
        self.last = Some(now);
        Some(NodeReport {
            node: node.to_string(),
            labels: snap.labels.clone(),
            timestamp: crate::now(),
            window_ms: window?.as_millis() as u64,
            cpu_nanocores: node_rate?,
            memory_bytes: mem,
            pods,
        })
    }
}

/// Samples every [`INTERVAL`] and sends each report to every master in the
/// node's config, and into `latest` (what eviction ranks pods by), until `stop`.
pub async fn run(
    data_dir: PathBuf,
    name: String,
    layout: Layout,
    snap: tokio::sync::watch::Receiver<Snapshot>,
    latest: tokio::sync::watch::Sender<Option<NodeReport>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let pods_dir = data_dir.join("pods");
    let mut sampler = Sampler::default();
    // One client per master, made again when the node's certificate changes.
    let mut clients: Vec<(String, std::sync::Arc<ferry_api::Client>)> = Vec::new();
    let mut cert = String::new();
    loop {
        let s = snap.borrow().clone();
        let report = {
            let (name, dir, layout) = (name.clone(), pods_dir.clone(), layout.clone());
            let mut owned = std::mem::take(&mut sampler);
            let (r, back) = tokio::task::spawn_blocking(move || {
                let r = owned.sample(&name, &s, &dir, &layout);
                (r, owned)
            })
            .await
            .unwrap_or_default();
            sampler = back;
            r
        };
        if let Some(r) = &report {
            latest.send_replace(Some(r.clone()));
        }
        if let (Some(r), Ok(Some(cfg))) = (report, crate::join::load(&data_dir)) {
            if cfg.client_cert != cert || clients.len() != cfg.masters.len() {
                cert = cfg.client_cert.clone();
                clients = cfg
                    .masters
                    .iter()
                    .filter_map(|m| {
                        let one = ferry_config::ClientConfig {
                            masters: vec![m.clone()],
                            ..cfg.clone()
                        };
                        ferry_api::Client::for_node(&one)
                            .ok()
                            .map(|c| (m.clone(), std::sync::Arc::new(c)))
                    })
                    .collect();
            }
            let req = std::sync::Arc::new(ApiRequest::ReportMetrics(Box::new(r)));
            let mut sends = tokio::task::JoinSet::new();
            for (m, c) in &clients {
                let (m, c, req) = (m.clone(), c.clone(), req.clone());
                sends.spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(5), c.call(&req)).await {
                        Ok(Ok(ApiResponse::Reported)) => {}
                        other => tracing::debug!(master = %m, ?other, "metrics report not kept"),
                    }
                });
            }
            while sends.join_next().await.is_some() {}
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_and_proc_files_parse() {
        let v2 = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(stat_value(v2, "usage_usec"), Some(1500));
        assert_eq!(stat_value(v2, "nope"), None);
        let v1 = "cache 4096\ntotal_inactive_file 8192\ninactive_file 4096\n";
        assert_eq!(stat_value(v1, "total_inactive_file"), Some(8192));
        assert_eq!(stat_value(v1, "inactive_file"), Some(4096));
        assert_eq!(working_set(10_000, 8192), 1808);
        assert_eq!(working_set(100, 8192), 0);
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(proc_stat_busy(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        let meminfo = "MemTotal:       2000 kB\nMemFree:  100 kB\nMemAvailable:   1500 kB\n";
        assert_eq!(meminfo_used(meminfo), Some(500 * 1024));
        // pid (comm with) spaces) state ppid pgrp ...: utime 14, stime 15, rss 24.
        let pid = "42 (sh -c x) S 1 40 40 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 555 1000000 250 18446744073709551615";
        assert_eq!(pid_stat(pid), Some((40, 10, 250)));
    }

    #[test]
    fn procs_of_one_group_add_up() {
        let table = [(40, 100, 10), (40, 50, 5), (41, 1000, 1000)];
        let (ns, bytes) = from_procs(&table, 40);
        assert_eq!(ns, 150 * 1_000_000_000 / ticks_per_sec());
        assert_eq!(bytes, 15 * page_size());
        assert_eq!(from_procs(&table, 7), (0, 0));
    }

    #[test]
    fn the_first_sample_only_remembers_and_the_second_reports() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::Unavailable("test".into());
        let mut s = Sampler::default();
        let snap = Snapshot::default();
        assert!(s.sample("n1", &snap, dir.path(), &layout).is_none());
        std::thread::sleep(Duration::from_millis(20));
        let r = s.sample("n1", &snap, dir.path(), &layout).unwrap();
        assert_eq!(r.node, "n1");
        assert!(r.window_ms >= 20, "{}", r.window_ms);
        assert!(r.memory_bytes > 0);
        assert!(r.pods.is_empty());
    }
}
