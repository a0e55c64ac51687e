//! The object-level workload of a `ferry chaos --real-nodes N` run and its
//! checks: a Deployment (`chaos-web`, 4 replicas at first, then scaled and
//! rolled by [`super::deploy`]) and a StatefulSet (`chaos-db`, 2) of `sleep`
//! pods on the real node agents, and a writer creating a ConfigMap after
//! another. A sampler looks at the machine's
//! processes (every container shim of the run's nodes, from `/proc`) and at
//! the API four times a second:
//!
//! - no pod has two live container processes, and no pod name (a
//!   StatefulSet identity) runs under two uids at once;
//! - whether the workloads are at their desired state (the Deployment's
//!   last spec): the replica counts met by pods Running on Ready nodes, each
//!   with its live process, none terminating, the Deployment's on its last
//!   template and its old ReplicaSets at 0;
//! - the Deployment's pods not terminating and Ready, for the rolling-update
//!   fences ([`super::deploy::fences`]).
//!
//! After the faults: the workloads converge, and every acknowledged
//! ConfigMap exists (no acknowledged object write lost). The pure parts
//! ([`duplicates`], [`at_desired_state`], [`lost`]) are unit-tested.

use crate::objects::api::{status_of, Api};
use anyhow::{Context, Result};
use ferry_api::object::ListOptions;
use ferry_api::resources::{by_cli_name, Resource};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The namespace the workload runs in.
pub const NS: &str = "default";
/// The Deployment, its replicas at first, and its rolling-update fences.
pub const DEPLOYMENT: &str = "chaos-web";
pub const DEPLOYMENT_INITIAL: usize = 4;
pub const MAX_SURGE: usize = 1;
pub const MAX_UNAVAILABLE: usize = 1;
/// The env var of the Deployment's template that a roll changes.
pub const REV_ENV: &str = "CHAOS_REV";

/// The Deployment's desired spec: its replicas and its template's
/// `CHAOS_REV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Want {
    pub replicas: usize,
    pub rev: u64,
}

impl Want {
    /// The spec the Deployment is created with.
    pub const INITIAL: Want = Want {
        replicas: DEPLOYMENT_INITIAL,
        rev: 0,
    };
}

/// The `CHAOS_REV` of a pod or a pod template (0 when it has none).
pub fn rev_of(pod: &Value) -> u64 {
    pod.pointer("/spec/containers/0/env")
        .and_then(Value::as_array)
        .and_then(|env| env.iter().find(|e| e["name"] == REV_ENV))
        .and_then(|e| e["value"].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
/// The StatefulSet and its replicas.
pub const STATEFULSET: &str = "chaos-db";
pub const STATEFULSET_REPLICAS: usize = 2;
/// The label every object of the run carries (value: the seed in hex).
pub const RUN_LABEL: &str = "chaos.ferry.dev/run";

fn res(name: &str) -> &'static Resource {
    by_cli_name(name).expect("served")
}

/// A pod template running `sleep` with its pod's name in `POD_NAME`.
fn template(app: &str, run: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app, RUN_LABEL: run}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "c",
                "image": "busybox",
                "command": ["/bin/sh", "-c", "sleep 3600"],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
            }]
        }
    })
}

/// Creates the Deployment and the StatefulSet.
pub async fn create(api: &Api, run: &str) -> Result<()> {
    let labels = json!({"app": DEPLOYMENT, RUN_LABEL: run});
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "labels": labels},
        "spec": {
            "replicas": DEPLOYMENT_INITIAL,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": MAX_UNAVAILABLE}},
            "template": template(DEPLOYMENT, run)
        }
    });
    api.create(res("deployments"), Some(NS), &d)
        .await
        .context("creating the chaos Deployment")?;
    let s = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": STATEFULSET, "labels": {"app": STATEFULSET, RUN_LABEL: run}},
        "spec": {
            "replicas": STATEFULSET_REPLICAS,
            "serviceName": STATEFULSET,
            "selector": {"matchLabels": {"app": STATEFULSET}},
            "template": template(STATEFULSET, run)
        }
    });
    api.create(res("statefulsets"), Some(NS), &s)
        .await
        .context("creating the chaos StatefulSet")?;
    Ok(())
}

/// One live container shim of the run's real nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shim {
    pub pid: i32,
    pub start_ticks: u64,
    /// Its parent process.
    pub ppid: i32,
    /// The node whose directory holds it (`<dir>/<node dir>/pods/...`).
    pub node_dir: String,
    pub uid: String,
    pub container: String,
    /// Its pod's name (`POD_NAME` in its spec), if known.
    pub pod: Option<String>,
}

/// Every live (not zombie) `ferry shim` process whose container directory
/// lies under `dir` (`<dir>/<node dir>/pods/<uid>/<container>/`): the
/// container processes of the run's nodes, whichever agent started them.
pub fn live_shims(dir: &Path) -> Vec<Shim> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        if argv.get(1) != Some(&&b"shim"[..]) {
            continue;
        }
        let Some(i) = argv.iter().position(|a| *a == b"--exit-file") else {
            continue;
        };
        let Some(exit) = argv.get(i + 1) else {
            continue;
        };
        let exit = PathBuf::from(String::from_utf8_lossy(exit).into_owned());
        let Ok(rel) = exit.strip_prefix(dir) else {
            continue;
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // <node dir>/pods/<uid>/<container>/exit.json
        if parts.len() != 5 || parts[1] != "pods" {
            continue;
        }
        let Some(start_ticks) = ferry_node::runtime::start_ticks(pid) else {
            continue;
        };
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let mut fields = stat
            .rfind(')')
            .map(|i| stat[i + 1..].split_whitespace())
            .into_iter()
            .flatten();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if matches!(state, Some("Z" | "X")) {
            continue;
        }
        let cdir = ferry_node::runtime::ContainerDir(exit.parent().expect("a dir").to_path_buf());
        let pod = cdir.spec_of_run().and_then(|s| {
            s.env
                .into_iter()
                .find(|(k, _)| k == "POD_NAME")
                .map(|(_, v)| v)
        });
        out.push(Shim {
            pid,
            start_ticks,
            ppid,
            node_dir: parts[0].clone(),
            uid: parts[2].clone(),
            container: parts[3].clone(),
            pod,
        });
    }
    out.sort_by_key(|s| s.pid);
    without_forks(out)
}

/// `shims` less those whose parent is a shim of the same container: a
/// shim's child between its fork and its exec still shows the shim's
/// command line (seen as a "duplicate" with the next pid while the driver
/// scaled the Deployment up).
pub fn without_forks(shims: Vec<Shim>) -> Vec<Shim> {
    let parents: BTreeSet<(i32, String, String)> = shims
        .iter()
        .map(|s| (s.pid, s.uid.clone(), s.container.clone()))
        .collect();
    shims
        .into_iter()
        .filter(|s| !parents.contains(&(s.ppid, s.uid.clone(), s.container.clone())))
        .collect()
}

/// The live container processes on the node in `node_dir` of the run's
/// pods that are not terminating (empty when the API does not answer).
pub async fn running_on(api: &Api, run: &str, dir: &Path, node_dir: &str) -> Vec<Shim> {
    let asked = tokio::time::timeout(Duration::from_secs(3), observe(api, run)).await;
    let Ok(Some(o)) = asked else {
        return Vec::new();
    };
    let live: BTreeSet<&str> = o
        .pods
        .iter()
        .filter(|p| !terminating(p))
        .map(|p| str_at(p, "/metadata/uid"))
        .collect();
    live_shims(dir)
        .into_iter()
        .filter(|s| s.node_dir == node_dir && live.contains(s.uid.as_str()))
        .collect()
}

/// Whether `s` still runs (same pid, same start, not a zombie).
pub fn still_runs(s: &Shim) -> bool {
    ferry_node::runtime::running(&ferry_node::runtime::Started {
        pid: s.pid,
        start_ticks: s.start_ticks,
        started_at: String::new(),
    })
}

/// What is wrong with the processes of one instant: a container of one pod
/// (uid) running twice, one pod name (a StatefulSet identity) running
/// under two uids.
pub fn duplicates(shims: &[Shim]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_container: BTreeMap<(&str, &str), Vec<&Shim>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in shims {
        by_container
            .entry((&s.uid, &s.container))
            .or_default()
            .push(s);
        if let Some(p) = &s.pod {
            by_name.entry(p).or_default().insert(&s.uid);
        }
    }
    for ((uid, c), v) in by_container {
        if v.len() > 1 {
            let at: Vec<String> = v
                .iter()
                .map(|s| format!("{} pid {}", s.node_dir, s.pid))
                .collect();
            out.push(format!(
                "pod uid {uid} container {c} runs {} times ({})",
                v.len(),
                at.join(", ")
            ));
        }
    }
    for (name, uids) in by_name {
        if uids.len() > 1 {
            let u: Vec<&str> = uids.into_iter().collect();
            out.push(format!(
                "pod {name} runs under {} uids at once ({})",
                u.len(),
                u.join(", ")
            ));
        }
    }
    out
}

fn terminating(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_some()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The Nodes whose Ready condition is `True`.
fn ready_nodes(nodes: &[Value]) -> BTreeSet<&str> {
    nodes
        .iter()
        .filter(|n| {
            n.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .map(|n| str_at(n, "/metadata/name"))
        .collect()
}

/// How many of the Deployment's pods serve: not terminating, Running on a
/// Ready node, their process live there (while a node is away, its
/// evicted pods' replacements elsewhere count).
pub fn deployment_serving(
    pods: &[Value],
    nodes: &[Value],
    shims: &[Shim],
    node_dir: &dyn Fn(&str) -> String,
) -> usize {
    let ready = ready_nodes(nodes);
    pods.iter()
        .filter(|p| str_at(p, "/metadata/labels/app") == DEPLOYMENT && !terminating(p))
        .filter(|p| {
            let node = str_at(p, "/spec/nodeName");
            let uid = str_at(p, "/metadata/uid");
            str_at(p, "/status/phase") == "Running"
                && ready.contains(node)
                && shims
                    .iter()
                    .any(|s| s.uid == uid && s.node_dir == node_dir(node))
        })
        .count()
}

/// For a node fault from `at_ns` to `healed_ns`: milliseconds from the
/// fault to the Deployment serving all its replicas again after it had
/// fewer (its pods on the lost node evicted and replaced elsewhere), if
/// that happened before the heal. `web`: (time, serving, desired replicas)
/// samples.
pub fn replaced_ms(web: &[(u64, usize, usize)], at_ns: u64, healed_ns: u64) -> Option<f64> {
    let during = web
        .iter()
        .filter(|&&(t, _, _)| t >= at_ns && t <= healed_ns);
    let short = during.clone().find(|&&(_, n, want)| n < want)?.0;
    during
        .filter(|&&(t, n, want)| t > short && n >= want)
        .map(|&(t, _, _)| (t - at_ns) as f64 / 1e6)
        .next()
}

/// The Deployment's pods not terminating, and how many of those are Ready
/// (as the workloads test counts them for its fences).
pub fn fence_counts(pods: &[Value]) -> (usize, usize) {
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| str_at(p, "/metadata/labels/app") == DEPLOYMENT && !terminating(p))
        .collect();
    let ready = live
        .iter()
        .filter(|p| {
            p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .count();
    (live.len(), ready)
}

/// Whether the workloads are at their desired state, from the run's pods,
/// the Nodes, the live shims and `node_dir` (a Node's name to its
/// directory's name): `want.replicas` pods of the Deployment, all on its
/// template `want.rev`, its other ReplicaSets (of `rss`) at 0, and the
/// StatefulSet's `chaos-db-0..`, each Running on a Ready node with its
/// container's live process there, and no pod of the run terminating.
/// `Err` says what is missing.
pub fn at_desired_state(
    o: &Observed,
    shims: &[Shim],
    node_dir: &dyn Fn(&str) -> String,
    want: Want,
) -> Result<(), String> {
    let (pods, nodes) = (&o.pods, &o.nodes);
    let ready = ready_nodes(nodes);
    let mut web = 0;
    let mut db = BTreeSet::new();
    for p in pods {
        let name = str_at(p, "/metadata/name");
        if terminating(p) {
            return Err(format!("pod {name} is terminating"));
        }
        let node = str_at(p, "/spec/nodeName");
        let uid = str_at(p, "/metadata/uid");
        let running = str_at(p, "/status/phase") == "Running";
        let live = shims
            .iter()
            .any(|s| s.uid == uid && s.node_dir == node_dir(node));
        if !running || !ready.contains(node) || !live {
            return Err(format!(
                "pod {name}: phase {:?} on node {node:?} ({}), {}",
                str_at(p, "/status/phase"),
                if ready.contains(node) {
                    "Ready"
                } else {
                    "not Ready"
                },
                if live {
                    "its process runs"
                } else {
                    "no process"
                }
            ));
        }
        match str_at(p, "/metadata/labels/app") {
            DEPLOYMENT if rev_of(p) != want.rev => {
                return Err(format!(
                    "pod {name} runs template rev {}, not the last ({})",
                    rev_of(p),
                    want.rev
                ))
            }
            DEPLOYMENT => web += 1,
            STATEFULSET => {
                db.insert(name.to_string());
            }
            _ => {}
        }
    }
    if web != want.replicas {
        return Err(format!("{web} of {} {DEPLOYMENT} pods run", want.replicas));
    }
    for rs in o
        .rss
        .iter()
        .filter(|rs| str_at(rs, "/metadata/labels/app") == DEPLOYMENT)
    {
        let rev = rev_of(&rs["spec"]["template"]);
        let n = rs.pointer("/spec/replicas").and_then(Value::as_u64);
        let status = rs.pointer("/status/replicas").and_then(Value::as_u64);
        let expect = if rev == want.rev { want.replicas } else { 0 } as u64;
        if n != Some(expect) || status.unwrap_or(0) != expect {
            return Err(format!(
                "ReplicaSet {} (rev {rev}) at {n:?} replicas ({status:?} in its status), not {expect}",
                str_at(rs, "/metadata/name")
            ));
        }
    }
    let want: BTreeSet<String> = (0..STATEFULSET_REPLICAS)
        .map(|i| format!("{STATEFULSET}-{i}"))
        .collect();
    if db != want {
        return Err(format!("{STATEFULSET} runs {db:?}, not {want:?}"));
    }
    Ok(())
}

/// Whether `pod` was deleted (its `deletionTimestamp` less its grace) by
/// `by_unix_ms` plus a second (timestamps have seconds): a pod the
/// Deployment's controller deleted just before a node fault, whose
/// container its agent was already stopping — not stopped by the fault.
pub fn deleted_by(pod: &Value, by_unix_ms: i64) -> bool {
    let Some(ts) = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return false;
    };
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    ts.as_millisecond() - grace * 1000 <= by_unix_ms + 1000
}

/// The acknowledged writes (ConfigMap names) missing from `present`.
pub fn lost(acked: &[String], present: &BTreeSet<String>) -> Vec<String> {
    acked
        .iter()
        .filter(|n| !present.contains(*n))
        .cloned()
        .collect()
}

/// What the sampler and the writer saw.
#[derive(Default)]
pub struct Seen {
    /// Each distinct duplicate found, with when it was first seen (ns).
    pub duplicates: Vec<(u64, String)>,
    /// (time, at the desired state) per sample that could ask the API.
    pub desired: Vec<(u64, bool)>,
    /// (time, the Deployment's pods serving, its desired replicas) per sample.
    pub web: Vec<(u64, usize, usize)>,
    /// (time, the Deployment's pods not terminating, Ready) per sample.
    pub fence: Vec<(u64, usize, usize)>,
    /// Why the last sample was not at the desired state.
    pub last_gap: Option<String>,
    /// ConfigMaps created and acknowledged, and those of unknown outcome.
    pub acked: Vec<String>,
    pub unknown: Vec<String>,
    /// Creates refused with an error that says nothing was written.
    pub failed: usize,
}

/// The run's pods and ReplicaSets, and every Node.
#[derive(Debug, Default)]
pub struct Observed {
    pub pods: Vec<Value>,
    pub nodes: Vec<Value>,
    pub rss: Vec<Value>,
}

/// The run's pods and ReplicaSets (of the workload) and every Node, if the
/// API answers.
pub async fn observe(api: &Api, run: &str) -> Option<Observed> {
    let opts = ListOptions {
        label_selector: Some(format!("{RUN_LABEL}={run}")),
        ..Default::default()
    };
    let (pods, _) = api.list(res("pods"), Some(NS), &opts).await.ok()?;
    let (nodes, _) = api
        .list(res("nodes"), None, &ListOptions::default())
        .await
        .ok()?;
    let (rss, _) = api.list(res("replicasets"), Some(NS), &opts).await.ok()?;
    Some(Observed { pods, nodes, rss })
}

/// Samples processes and the API every 250 ms until `stop` (the desired
/// state: the Deployment's spec in `want`).
#[allow(clippy::too_many_arguments)]
pub fn sampler(
    api: Api,
    run: String,
    dir: PathBuf,
    node_dir: Arc<dyn Fn(&str) -> String + Send + Sync>,
    want: Arc<Mutex<Want>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    now_ns: impl Fn() -> u64 + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let shims = live_shims(&dir);
            let t = now_ns();
            {
                let mut s = seen.lock().expect("seen");
                for d in duplicates(&shims) {
                    if !s.duplicates.iter().any(|(_, x)| *x == d) {
                        s.duplicates.push((t, d));
                    }
                }
            }
            let asked = tokio::time::timeout(Duration::from_secs(2), observe(&api, &run)).await;
            if let Ok(Some(o)) = asked {
                // The processes again, after the API's answer: a pod the
                // API shows was started meanwhile.
                let shims = live_shims(&dir);
                let w = *want.lock().expect("want");
                let r = at_desired_state(&o, &shims, &*node_dir, w);
                let web = deployment_serving(&o.pods, &o.nodes, &shims, &*node_dir);
                let (live, ready) = fence_counts(&o.pods);
                let mut s = seen.lock().expect("seen");
                s.web.push((t, web, w.replicas));
                s.fence.push((t, live, ready));
                s.desired.push((t, r.is_ok()));
                s.last_gap = r.err();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Creates ConfigMaps `chaos-obj-<n>` one after another until `stop`,
/// recording which were acknowledged.
pub fn writer(
    api: Api,
    run: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let name = format!("chaos-obj-{n}");
            let cm = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {RUN_LABEL: run}},
                "data": {"n": n.to_string()}
            });
            let r = api.create(res("configmaps"), Some(NS), &cm).await;
            {
                let mut s = seen.lock().expect("seen");
                match r {
                    Ok(_) => s.acked.push(name),
                    // An answer from the server: not written (409 would
                    // mean a retry found its own write: written).
                    Err(e) if status_of(&e).is_some_and(|s| s.code == 409) => s.acked.push(name),
                    // A 4xx: refused, nothing written.
                    Err(e) if status_of(&e).is_some_and(|s| s.code < 500) => s.failed += 1,
                    // No answer, or a 5xx (a timeout): it may have been written.
                    Err(_) => s.unknown.push(name),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The names of the run's ConfigMaps that exist now.
pub async fn present(api: &Api, run: &str) -> Result<BTreeSet<String>> {
    let opts = ListOptions {
        label_selector: Some(format!("{RUN_LABEL}={run}")),
        ..Default::default()
    };
    let (items, _) = api.list(res("configmaps"), Some(NS), &opts).await?;
    Ok(items
        .iter()
        .map(|c| str_at(c, "/metadata/name").to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shim(pid: i32, node: &str, uid: &str, pod: &str) -> Shim {
        Shim {
            pid,
            start_ticks: 1,
            ppid: 1,
            node_dir: node.into(),
            uid: uid.into(),
            container: "c".into(),
            pod: Some(pod.into()),
        }
    }

    #[test]
    fn duplicates_of_a_container_and_of_an_identity_are_found() {
        let ok = [
            shim(1, "r1", "u1", "chaos-db-0"),
            shim(2, "r2", "u2", "chaos-db-1"),
        ];
        assert!(duplicates(&ok).is_empty());
        // One pod's container twice (on two nodes).
        let twice = [
            shim(1, "r1", "u1", "chaos-db-0"),
            shim(3, "r2", "u1", "chaos-db-0"),
        ];
        let d = duplicates(&twice);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("pod uid u1 container c runs 2 times"),
            "{d:?}"
        );
        // One identity under two uids (the old pod still runs).
        let two = [
            shim(1, "r1", "u1", "chaos-db-0"),
            shim(3, "r2", "u9", "chaos-db-0"),
        ];
        let d = duplicates(&two);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("pod chaos-db-0 runs under 2 uids"), "{d:?}");
        // A shim's child before its exec is the same process, not a second.
        let mut forked = vec![
            shim(5, "r1", "u1", "chaos-web-x"),
            shim(6, "r1", "u1", "chaos-web-x"),
        ];
        forked[1].ppid = 5;
        let kept = without_forks(forked.clone());
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(duplicates(&kept).is_empty());
        // Two shims of one container on their own are a duplicate still.
        forked[1].ppid = 1;
        assert_eq!(without_forks(forked.clone()).len(), 2);
        assert_eq!(duplicates(&without_forks(forked)).len(), 1);
    }

    fn pod(name: &str, app: &str, uid: &str, node: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "uid": uid, "labels": {"app": app}},
               "spec": {"nodeName": node}, "status": {"phase": phase}})
    }

    fn node(name: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    fn observed(pods: &[Value], nodes: &[Value], rss: &[Value]) -> Observed {
        Observed {
            pods: pods.to_vec(),
            nodes: nodes.to_vec(),
            rss: rss.to_vec(),
        }
    }

    fn with_rev(mut p: Value, rev: u64) -> Value {
        p["spec"]["containers"] =
            json!([{"name": "c", "env": [{"name": REV_ENV, "value": rev.to_string()}]}]);
        p
    }

    fn rs(name: &str, rev: u64, replicas: u64) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": DEPLOYMENT}},
               "spec": {"replicas": replicas, "template": with_rev(json!({}), rev)},
               "status": {"replicas": replicas}})
    }

    #[test]
    fn the_desired_state_needs_running_pods_on_ready_nodes_with_processes() {
        let dir = |n: &str| n.trim_start_matches("chaos-").to_string();
        let mut pods = vec![
            pod("chaos-db-0", STATEFULSET, "d0", "chaos-r1", "Running"),
            pod("chaos-db-1", STATEFULSET, "d1", "chaos-r2", "Running"),
        ];
        let mut shims = vec![
            shim(1, "r1", "d0", "chaos-db-0"),
            shim(2, "r2", "d1", "chaos-db-1"),
        ];
        for i in 0..4 {
            let node = if i % 2 == 0 { "chaos-r1" } else { "chaos-r2" };
            pods.push(pod(
                &format!("chaos-web-{i}"),
                DEPLOYMENT,
                &format!("w{i}"),
                node,
                "Running",
            ));
            shims.push(shim(
                10 + i,
                &dir(node),
                &format!("w{i}"),
                &format!("chaos-web-{i}"),
            ));
        }
        let nodes = [node("chaos-r1", "True"), node("chaos-r2", "True")];
        let four = Want::INITIAL;
        let at = |pods: &[Value], nodes: &[Value], shims: &[Shim], w: Want| {
            at_desired_state(&observed(pods, nodes, &[]), shims, &dir, w)
        };
        assert_eq!(at(&pods, &nodes, &shims, four), Ok(()));
        // A node not Ready.
        let unready = [node("chaos-r1", "True"), node("chaos-r2", "Unknown")];
        let e = at(&pods, &unready, &shims, four).unwrap_err();
        assert!(e.contains("not Ready"), "{e}");
        // A pod whose process is gone.
        let e = at(&pods, &nodes, &shims[1..], four).unwrap_err();
        assert!(e.contains("chaos-db-0") && e.contains("no process"), "{e}");
        // A replica missing.
        let e = at(&pods[..5], &nodes, &shims, four).unwrap_err();
        assert!(e.contains("3 of 4 chaos-web pods"), "{e}");
        // Scaled to 3: the same 3 pods are the desired state.
        let three = Want {
            replicas: 3,
            rev: 0,
        };
        assert_eq!(at(&pods[..5], &nodes, &shims, three), Ok(()));
        // A pod terminating.
        let mut t = pods.clone();
        t[2]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let e = at(&t, &nodes, &shims, four).unwrap_err();
        assert!(e.contains("terminating"), "{e}");
        // Rolled to rev 2: pods of rev 0 are not the desired state, pods of
        // rev 2 are, once the old ReplicaSet is at 0.
        let two = Want { rev: 2, ..four };
        let e = at(&pods, &nodes, &shims, two).unwrap_err();
        assert!(e.contains("template rev 0, not the last (2)"), "{e}");
        let rolled: Vec<Value> = pods
            .iter()
            .map(|p| match p["metadata"]["labels"]["app"] == DEPLOYMENT {
                true => with_rev(p.clone(), 2),
                false => p.clone(),
            })
            .collect();
        let o = |rss: &[Value]| observed(&rolled, &nodes, rss);
        let done = [rs("web-a", 0, 0), rs("web-b", 1, 0), rs("web-c", 2, 4)];
        assert_eq!(at_desired_state(&o(&done), &shims, &dir, two), Ok(()));
        let old = [rs("web-a", 0, 0), rs("web-b", 1, 1), rs("web-c", 2, 4)];
        let e = at_desired_state(&o(&old), &shims, &dir, two).unwrap_err();
        assert!(e.contains("ReplicaSet web-b (rev 1) at Some(1)"), "{e}");
    }

    #[test]
    fn fence_counts_leave_out_terminating_pods_and_count_ready_ones() {
        let ready = |mut p: Value, r: &str| {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": r}]);
            p
        };
        let mut gone = ready(pod("w3", DEPLOYMENT, "u3", "n", "Running"), "True");
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [
            ready(pod("w1", DEPLOYMENT, "u1", "n", "Running"), "True"),
            ready(pod("w2", DEPLOYMENT, "u2", "n", "Running"), "False"),
            gone,
            pod("w4", DEPLOYMENT, "u4", "n", "Pending"),
            ready(pod("d0", STATEFULSET, "u5", "n", "Running"), "True"),
        ];
        assert_eq!(fence_counts(&pods), (3, 1));
    }

    #[test]
    fn a_deployment_replaced_during_a_node_fault() {
        let s = |t: u64, n: usize| (t * 1_000_000_000, n, 4);
        let web = [s(1, 4), s(5, 4), s(12, 2), s(13, 3), s(14, 4), s(20, 4)];
        // Fault 4..16: short at 12, whole again at 14: 10 s after the fault.
        assert_eq!(
            replaced_ms(&web, 4_000_000_000, 16_000_000_000),
            Some(10_000.0)
        );
        // Healed before the replacements ran: none.
        assert_eq!(replaced_ms(&web, 4_000_000_000, 13_000_000_000), None);
        // Never short: none.
        assert_eq!(replaced_ms(&web, 0, 6_000_000_000), None);
        // Scaled to 3 meanwhile: 3 serving is whole.
        let web = [s(1, 4), (12_000_000_000, 2, 3), (13_000_000_000, 3, 3)];
        assert_eq!(
            replaced_ms(&web, 4_000_000_000, 16_000_000_000),
            Some(9_000.0)
        );
        let dir = |n: &str| n.trim_start_matches("chaos-").to_string();
        let pods = [
            pod("w1", DEPLOYMENT, "u1", "chaos-r1", "Running"),
            pod("w2", DEPLOYMENT, "u2", "chaos-r2", "Running"),
            pod("w3", DEPLOYMENT, "u3", "chaos-r2", "Pending"),
            pod("d0", STATEFULSET, "u4", "chaos-r1", "Running"),
        ];
        let shims = [
            shim(1, "r1", "u1", "w1"),
            shim(2, "r2", "u2", "w2"),
            shim(3, "r1", "u4", "d0"),
        ];
        let nodes = [node("chaos-r1", "True"), node("chaos-r2", "Unknown")];
        assert_eq!(deployment_serving(&pods, &nodes, &shims, &dir), 1);
    }

    #[test]
    fn a_pod_deleted_before_a_fault_is_told_from_one_evicted_during_it() {
        let at = "2026-01-01T00:00:10Z".parse::<jiff::Timestamp>().unwrap();
        let at = at.as_millisecond();
        let del = |ts: &str| json!({"metadata": {"deletionTimestamp": ts, "deletionGracePeriodSeconds": 2}});
        // Deleted at 10 s (stamp 12 s = deletion + grace): before the fault.
        assert!(deleted_by(&del("2026-01-01T00:00:12Z"), at));
        assert!(deleted_by(&del("2026-01-01T00:00:13Z"), at));
        // Evicted 11 s into the fault.
        assert!(!deleted_by(&del("2026-01-01T00:00:23Z"), at));
        assert!(!deleted_by(&json!({"metadata": {}}), at));
    }

    #[test]
    fn an_acknowledged_create_missing_is_lost() {
        let present: BTreeSet<String> = ["a", "c"].iter().map(|s| s.to_string()).collect();
        let acked: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(lost(&acked, &present), ["b"]);
        assert!(lost(&acked[..1], &present).is_empty());
    }
}
