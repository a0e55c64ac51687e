//! Resource limits for containers: a cgroup per container (v1 — one
//! hierarchy per controller, memory, cpu and pids — or v2, the unified one),
//! `ferry/<pod uid>/<container>`, created with the container's limits before
//! it starts; the shim moves itself in before it starts the command, so the
//! command and its children are all in it. Where the node may not create
//! cgroups, containers run unlimited and the pod gets an event saying so.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The cgroup layout this node can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: `<root>/<controller>/...`.
    V1(PathBuf),
    /// cgroup v2: `<root>/...`.
    V2(PathBuf),
    /// None; why.
    Unavailable(String),
}

const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// The v1 hierarchies a container joins: [`V1_CONTROLLERS`], and `cpuacct`
/// (its CPU time, for metrics) where it is mounted apart from `cpu`.
fn v1_controllers(root: &Path) -> Vec<&'static str> {
    let mut out = V1_CONTROLLERS.to_vec();
    let (acct, cpu) = (root.join("cpuacct"), root.join("cpu"));
    let same = std::fs::canonicalize(&acct).ok() == std::fs::canonicalize(&cpu).ok();
    if acct.join("cgroup.procs").exists() && !same {
        out.push("cpuacct");
    }
    out
}

impl Layout {
    /// Finds what `/sys/fs/cgroup` offers and whether this process may use it.
    pub fn detect() -> Layout {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    /// As [`Layout::detect`], under `root`.
    pub fn detect_at(root: &Path) -> Layout {
        let probe = |dir: &Path| {
            let p = dir.join(format!("ferry-probe-{}", std::process::id()));
            let ok = std::fs::create_dir(&p).is_ok();
            let _ = std::fs::remove_dir(&p);
            ok
        };
        let v2 = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if ["memory", "cpu", "pids"]
            .iter()
            .all(|c| v2.split_whitespace().any(|x| x == *c))
        {
            return if probe(root) {
                Layout::V2(root.to_path_buf())
            } else {
                Layout::Unavailable(format!("cannot create cgroups under {}", root.display()))
            };
        }
        let missing: Vec<&str> = V1_CONTROLLERS
            .into_iter()
            .filter(|c| !root.join(c).join("cgroup.procs").exists())
            .collect();
        if !missing.is_empty() {
            return Layout::Unavailable(format!(
                "no cgroup controllers {} under {}",
                missing.join(", "),
                root.display()
            ));
        }
        if V1_CONTROLLERS.into_iter().all(|c| probe(&root.join(c))) {
            Layout::V1(root.to_path_buf())
        } else {
            Layout::Unavailable("this node may not create cgroups (not root?)".into())
        }
    }

    /// The directories of one container's cgroup (one per v1 controller).
    fn dirs(&self, uid: &str, container: &str) -> Vec<PathBuf> {
        let rel = Path::new("ferry").join(uid).join(container);
        match self {
            Layout::V1(root) => v1_controllers(root)
                .iter()
                .map(|c| root.join(c).join(&rel))
                .collect(),
            Layout::V2(root) => vec![root.join(&rel)],
            Layout::Unavailable(_) => vec![],
        }
    }

    fn pod_dirs(&self, uid: &str) -> Vec<PathBuf> {
        let rel = Path::new("ferry").join(uid);
        match self {
            Layout::V1(root) => v1_controllers(root)
                .iter()
                .map(|c| root.join(c).join(&rel))
                .collect(),
            Layout::V2(root) => vec![root.join(&rel)],
            Layout::Unavailable(_) => vec![],
        }
    }
}

/// A container's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Millicores.
    pub cpu_millis: Option<u64>,
    /// Processes.
    pub pids: Option<u64>,
    /// The CPU request in millicores (`resources.requests.cpu`, else the
    /// limit): its share of CPU against the node's other containers, as the
    /// kubelet sets it (`cpu.shares` = request × 1024 / 1000, at least 2).
    pub cpu_request_millis: Option<u64>,
}

/// `cpu.shares` for a CPU request in millicores, as the kubelet computes it.
pub fn cpu_shares(millis: u64) -> u64 {
    (millis * 1024 / 1000).max(2)
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.cpu_millis.is_some()
            || self.pids.is_some()
            || self.cpu_request_millis.is_some()
    }
}

/// A Kubernetes quantity in base units (`128Mi`, `1G`, `2`, `0.5`), or in
/// thousandths with `milli` (`500m` → 500, `2` → 2000).
pub fn quantity(s: &str, milli: bool) -> Option<u64> {
    let q = ferry_api::quantity::Quantity::parse(s.trim())?;
    let v = if milli { q.milli() } else { q.value() };
    u64::try_from(v).ok()
}

/// The limits of `container` (`resources.limits`), with the node's pid limit.
pub fn limits(container: &Value, pids: Option<u64>) -> Result<Limits, String> {
    let get = |kind: &str, k: &str, milli: bool| -> Result<Option<u64>, String> {
        match container["resources"][kind].get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                quantity(&s, milli)
                    .map(Some)
                    .ok_or_else(|| format!("resources.{kind}.{k}: {s:?} is not a quantity"))
            }
        }
    };
    let cpu_millis = get("limits", "cpu", true)?;
    Ok(Limits {
        memory: get("limits", "memory", false)?,
        cpu_millis,
        pids,
        cpu_request_millis: get("requests", "cpu", true)?.or(cpu_millis),
    })
}

/// CFS period for CPU limits.
const PERIOD_US: u64 = 100_000;

/// Creates the container's cgroup with `limits`; returns the `cgroup.procs`
/// files the shim joins.
pub fn create(
    layout: &Layout,
    uid: &str,
    container: &str,
    limits: &Limits,
) -> std::io::Result<Vec<PathBuf>> {
    let dirs = layout.dirs(uid, container);
    let write = |p: PathBuf, v: String| {
        std::fs::write(&p, v)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    };
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    match layout {
        Layout::V1(root) => {
            let at = |c: &str| root.join(c).join("ferry").join(uid).join(container);
            if let Some(m) = limits.memory {
                write(at("memory").join("memory.limit_in_bytes"), m.to_string())?;
            }
            if let Some(c) = limits.cpu_millis {
                write(at("cpu").join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                write(
                    at("cpu").join("cpu.cfs_quota_us"),
                    (c * PERIOD_US / 1000).max(1000).to_string(),
                )?;
            }
            if let Some(p) = limits.pids {
                write(at("pids").join("pids.max"), p.to_string())?;
            }
            if let Some(r) = limits.cpu_request_millis {
                write(at("cpu").join("cpu.shares"), cpu_shares(r).to_string())?;
            }
        }
        Layout::V2(root) => {
            // Controllers must be enabled down the path.
            let mut p = root.clone();
            for part in ["ferry", uid] {
                let _ = std::fs::write(p.join("cgroup.subtree_control"), "+memory +cpu +pids");
                p = p.join(part);
            }
            let _ = std::fs::write(p.join("cgroup.subtree_control"), "+memory +cpu +pids");
            let d = &dirs[0];
            if let Some(m) = limits.memory {
                write(d.join("memory.max"), m.to_string())?;
            }
            if let Some(c) = limits.cpu_millis {
                write(
                    d.join("cpu.max"),
                    format!("{} {PERIOD_US}", (c * PERIOD_US / 1000).max(1000)),
                )?;
            }
            if let Some(n) = limits.pids {
                write(d.join("pids.max"), n.to_string())?;
            }
            if let Some(r) = limits.cpu_request_millis {
                // The kubelet's shares-to-weight conversion.
                let weight = 1 + (cpu_shares(r) - 2) * 9999 / 262_142;
                write(d.join("cpu.weight"), weight.to_string())?;
            }
        }
        Layout::Unavailable(_) => {}
    }
    Ok(dirs.iter().map(|d| d.join("cgroup.procs")).collect())
}

/// Whether the container's cgroup saw an OOM kill.
pub fn oom_killed(layout: &Layout, uid: &str, container: &str) -> bool {
    // v1 counts kills in `memory.oom_control`, v2 in `memory.events`.
    let file = match layout {
        Layout::V1(root) => root
            .join("memory/ferry")
            .join(uid)
            .join(container)
            .join("memory.oom_control"),
        Layout::V2(root) => root
            .join("ferry")
            .join(uid)
            .join(container)
            .join("memory.events"),
        Layout::Unavailable(_) => return false,
    };
    std::fs::read_to_string(file).is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
    })
}

/// Removes a pod's cgroups (once its processes are gone).
pub fn remove(layout: &Layout, uid: &str) {
    for pod in layout.pod_dirs(uid) {
        if let Ok(rd) = std::fs::read_dir(&pod) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&pod);
    }
}

/// Moves this process into each of `procs` (the shim, before the command).
pub fn join(procs: &[PathBuf]) -> std::io::Result<()> {
    for p in procs {
        std::fs::write(p, std::process::id().to_string())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(quantity("128Mi", false), Some(128 << 20));
        assert_eq!(quantity("1G", false), Some(1_000_000_000));
        assert_eq!(quantity("1.5Gi", false), Some(3 << 29));
        assert_eq!(quantity("500m", true), Some(500));
        assert_eq!(quantity("2", true), Some(2000));
        assert_eq!(quantity("0.25", true), Some(250));
        assert_eq!(quantity("12x", false), None);
        let c = json!({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}});
        assert_eq!(
            limits(&c, Some(100)).unwrap(),
            Limits {
                memory: Some(64 << 20),
                cpu_millis: Some(250),
                pids: Some(100),
                cpu_request_millis: Some(250),
            }
        );
        // A request of its own sets the share; none and no limit, none.
        let c = json!({"resources": {"requests": {"cpu": "50m"}}});
        assert_eq!(limits(&c, None).unwrap().cpu_request_millis, Some(50));
        assert_eq!(cpu_shares(50), 51);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(limits(&json!({}), None).unwrap().cpu_request_millis, None);
        let bad = json!({"resources": {"limits": {"memory": "lots"}}});
        assert!(limits(&bad, None)
            .unwrap_err()
            .contains("resources.limits.memory"));
    }

    #[test]
    fn v1_cgroups_get_their_limits_written() {
        let tmp = tempfile::tempdir().unwrap();
        for c in V1_CONTROLLERS {
            std::fs::create_dir_all(tmp.path().join(c)).unwrap();
            std::fs::write(tmp.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let layout = Layout::detect_at(tmp.path());
        assert_eq!(layout, Layout::V1(tmp.path().to_path_buf()));
        let l = Limits {
            memory: Some(1 << 20),
            cpu_millis: Some(500),
            pids: Some(64),
            cpu_request_millis: Some(250),
        };
        let procs = create(&layout, "u1", "main", &l).unwrap();
        assert_eq!(procs.len(), 3);
        let read = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(
            read("memory/ferry/u1/main/memory.limit_in_bytes"),
            "1048576"
        );
        assert_eq!(read("cpu/ferry/u1/main/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/ferry/u1/main/cpu.shares"), "256");
        assert_eq!(read("pids/ferry/u1/main/pids.max"), "64");
        let none = Layout::detect_at(&tmp.path().join("nothing"));
        assert!(
            matches!(none, Layout::Unavailable(ref why) if why.contains("no cgroup controllers")),
            "{none:?}"
        );
    }
}
