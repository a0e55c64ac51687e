//! Scheduling and the workload controllers on `ferry up` (3 masters, 2 real
//! nodes), driven by unmodified kubectl: a Deployment becomes available as real
//! processes spread over both nodes; a rolling update keeps within
//! maxUnavailable/maxSurge at every watch event; `rollout history` and `undo`;
//! scaling; a rollback survives the SIGKILL of the leader master; a pod that
//! fits nowhere says why as Kubernetes does; a dead node's pods are
//! replaced on the other node; and a DaemonSet covers a node that joins later.

use crate::harness::{poll, verdict, LocalUp};
use crate::kubectl::Kubectl;
use crate::nodes::container_pids;
use crate::procs::T;
use crate::up::Up;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done", "marker-web"]
        readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
"#;

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn terminating(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_some()
}

/// The pods of `app=web` now.
fn web_pods(k: &Kubectl) -> Vec<Value> {
    k.json(&["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Follows `kubectl get pods -l app=web -w` and records, at every event, the
/// pods not terminating and those of them Ready, and a timeline of the events
/// (printed when a fence is breached, to name the pods and writes behind it).
struct Watcher {
    child: std::process::Child,
    seen: Arc<Mutex<Seen>>,
}

/// (live, available) at every event, and the timeline's lines.
type Seen = (Vec<(usize, usize)>, Vec<String>);

/// One timeline line: the event, the pod's resourceVersion, owner, node,
/// phase, Ready and terminating, and the counts after it.
fn timeline_line(ev: &Value, live: usize, avail: usize) -> String {
    let p = &ev["object"];
    let m = &p["metadata"];
    format!(
        "{} {} rv={} owner={} node={} phase={} ready={} terminating={} -> live={live} available={avail}",
        ev["type"].as_str().unwrap_or("?"),
        m["name"].as_str().unwrap_or("?"),
        m["resourceVersion"].as_str().unwrap_or("?"),
        m["ownerReferences"][0]["name"].as_str().unwrap_or("-"),
        p["spec"]["nodeName"].as_str().unwrap_or("-"),
        p["status"]["phase"].as_str().unwrap_or("-"),
        ready(p),
        terminating(p),
    )
}

impl Watcher {
    fn start(k: &Kubectl) -> Watcher {
        Watcher::start_at(k, None)
    }

    /// A watcher talking to one master's HTTPS port (`server`) rather than
    /// `ferry up`'s front end, which follows the leader.
    fn start_at(k: &Kubectl, server: Option<String>) -> Watcher {
        let mut cmd = Command::new("kubectl");
        if let Some(s) = server {
            cmd.args(["--server", &s]);
        }
        let mut child = cmd
            .args([
                "--kubeconfig",
                &k.kubeconfig,
                "get",
                "pods",
                "-l",
                "app=web",
                "-w",
            ])
            .args(["--output-watch-events", "-o", "json"])
            .env("HOME", &k.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut pods: BTreeMap<String, Value> = BTreeMap::new();
            let events = serde_json::Deserializer::from_reader(BufReader::new(out));
            for ev in events.into_iter::<Value>().map_while(Result::ok) {
                let name = ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if ev["type"] == "DELETED" {
                    pods.remove(&name);
                } else {
                    pods.insert(name, ev["object"].clone());
                }
                let live: Vec<_> = pods.values().filter(|p| !terminating(p)).collect();
                let avail = live.iter().filter(|p| ready(p)).count();
                let mut s = s.lock().unwrap();
                s.0.push((live.len(), avail));
                s.1.push(timeline_line(&ev, live.len(), avail));
            }
        });
        Watcher { child, seen }
    }

    /// The counts at every event, and the timeline.
    fn stop(mut self) -> (Vec<(usize, usize)>, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (seen, timeline) = std::mem::take(&mut *self.seen.lock().unwrap());
        (seen, timeline.join("\n"))
    }
}

/// The pid of the Raft leader's `ferry master` process, and its id.
fn leader_pid(home: &Path, dir: &Path, up: &Up) -> (i32, u16) {
    let conf = dir.join("admin.conf");
    let args = [
        "--config",
        conf.to_str().unwrap(),
        "cluster",
        "status",
        "-o",
        "json",
    ];
    let status = crate::procs::run_ferry(home, &args, T);
    let s: Value = serde_json::from_str(&status.stdout).expect("cluster status JSON");
    let leader = s["leader"].as_u64().expect("a leader");
    let pids = up.master_pids(&format!("m{leader}"));
    assert_eq!(pids.len(), 1, "{pids:?}");
    (pids[0], leader as u16)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_out_roll_back_and_scale_as_real_processes() {
    let c = LocalUp::start().await;
    let (k, home, dir, up) = (&c.k, &c.home, &c.dir, &c.up);

    // A Deployment of 4 becomes available, spread over both nodes, as 4 real processes.
    k.ok_in(&["apply", "-f", "-"], WEB);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = web_pods(k);
    assert_eq!(pods.len(), 4, "{pods:#?}");
    let nodes: std::collections::BTreeSet<_> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 2, "replicas spread over both nodes: {nodes:?}");
    assert!(pods.iter().all(ready));
    poll("4 web processes", T, || {
        let n = container_pids("marker-web").len();
        verdict(n == 4, || format!("{n} processes"))
    })
    .await;
    let events = k.ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    assert!(
        events.contains("Successfully assigned default/web-"),
        "{events}"
    );

    // A rolling update: at every watch event at most 5 pods (replicas +
    // maxSurge) not terminating, and, once under way, at least 3 of them
    // (replicas - maxUnavailable) Ready.
    let watcher = Watcher::start(k);
    tokio::time::sleep(Duration::from_secs(1)).await;
    k.ok(&["set", "env", "deployment/web", "VERSION=2"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let (seen, timeline) = watcher.stop();
    // The watch starts with the list, one ADDED at a time: check from the
    // first moment all 4 are there.
    let from = seen
        .iter()
        .position(|s| *s == (4, 4))
        .expect("all 4 listed");
    let during = &seen[from..];
    assert!(during.len() > 8, "the watch saw the rollout: {seen:?}");
    for (live, avail) in during {
        assert!(
            *live <= 5,
            "more than replicas+maxSurge pods: {seen:?}\n{timeline}"
        );
        assert!(
            *avail >= 3,
            "fewer than replicas-maxUnavailable available: {seen:?}\n{timeline}"
        );
    }
    let pods = web_pods(k);
    let live: Vec<_> = pods.iter().filter(|p| !terminating(p)).collect();
    assert_eq!(live.len(), 4);
    for p in &live {
        let env = &p["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "VERSION", "{p}");
    }

    // History and undo: the first template comes back as revision 3.
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    // The undo rolls out while the leader master is SIGKILLed: the next
    // leader's controllers finish it, within the same fences at every watch
    // event (a decision applied twice would show as a sixth live pod), and
    // no node goes NotReady.
    let (leader, leader_id) = leader_pid(home, dir, up);
    // The watch goes to a follower (its stream must outlive the leader).
    let follower = if leader_id == 1 { 2 } else { 1 };
    let server = format!("https://127.0.0.1:{}", up.https_port + follower);
    let watcher = Watcher::start_at(k, Some(server));
    tokio::time::sleep(Duration::from_secs(1)).await;
    k.ok(&["rollout", "undo", "deployment/web"]);
    kill(Pid::from_raw(leader), Signal::SIGKILL).unwrap();
    k.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let (seen, timeline) = watcher.stop();
    let from = seen
        .iter()
        .position(|s| *s == (4, 4))
        .expect("all 4 listed");
    assert!(seen.len() - from > 8, "the watch saw the undo: {seen:?}");
    for (live, avail) in &seen[from..] {
        assert!(
            *live <= 5 && *avail >= 3,
            "out of the fences across a failover: {seen:?}\n{timeline}"
        );
    }
    let nodes = k.json(&["get", "nodes"]);
    for n in nodes["items"].as_array().unwrap() {
        let ready = n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        assert_eq!(
            ready,
            Some(Value::from("True")),
            "{}",
            n["metadata"]["name"]
        );
    }
    let d = k.json(&["get", "deployment", "web"]);
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]["env"].is_null(),
        "{d}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let rss = k.json(&["get", "rs", "-l", "app=web"]);
    assert_eq!(
        rss["items"].as_array().unwrap().len(),
        2,
        "the first RS was reused: {rss}"
    );

    // Scaling down to 2 leaves 2 processes.
    k.ok(&["scale", "deployment/web", "--replicas=2"]);
    poll("2 web processes and 2 pods", T, || {
        let n = container_pids("marker-web").len();
        let pods = web_pods(k).len();
        verdict(n == 2 && pods == 2, || {
            format!("{n} processes, {pods} pods")
        })
    })
    .await;

    // kubectl drain evicts a node's replicas (the eviction subresource); the
    // Deployment brings them back on the other node, and the drained one
    // takes no new pods until uncordoned. The drained node is one that holds
    // a replica (where the scheduler put the two is not fixed).
    let from = web_pods(k)
        .iter()
        .filter(|p| !terminating(p))
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .max()
        .expect("a web replica is bound");
    let to = if from == "n1" { "n2" } else { "n1" };
    // A budget allowing no disruption stops the drain (429, retried until
    // the timeout); one allowing a disruption lets it through.
    let pdb = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}}"#;
    k.ok_in(&["apply", "-f", "-"], pdb);
    k.wait_json("the budget's status", T, &["get", "pdb", "web"], |b| {
        verdict(
            b["status"]["expectedPods"] == 2 && b["status"]["currentHealthy"] == 2,
            || b["status"].to_string(),
        )
    })
    .await;
    let refused = k.run(
        &["drain", &from, "--ignore-daemonsets", "--timeout=7s"],
        None,
    );
    assert!(
        !refused.ok,
        "the budget did not stop the drain: {}",
        refused.stdout
    );
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        said.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{said}"
    );
    assert_eq!(web_pods(k).len(), 2, "nothing was evicted");
    let table = k.ok(&["get", "pdb", "web"]);
    assert!(table.contains("ALLOWED DISRUPTIONS"), "{table}");
    k.ok_in(
        &["apply", "-f", "-"],
        &pdb.replace("\"maxUnavailable\": 0", "\"minAvailable\": 1"),
    );
    k.wait_json("the budget allows one", T, &["get", "pdb", "web"], |b| {
        verdict(b["status"]["disruptionsAllowed"] == 1, || {
            b["status"].to_string()
        })
    })
    .await;
    k.ok(&["drain", &from, "--ignore-daemonsets", "--timeout=60s"]);
    poll("both replicas Ready on the other node", T, || {
        let on_n1 = web_pods(k)
            .iter()
            .filter(|p| !terminating(p) && p["spec"]["nodeName"] == to && ready(p))
            .count();
        let total = web_pods(k).len();
        verdict(on_n1 == 2 && total == 2, || {
            format!("{on_n1} Ready on {to} of {total}")
        })
    })
    .await;
    let nodes = k.ok(&["get", "node", &from]);
    assert!(nodes.contains("SchedulingDisabled"), "{nodes}");
    k.ok(&["uncordon", &from]);

    // A pod that fits nowhere says why, as Kubernetes words it.
    k.ok_in(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "100"],
                     "resources": {"requests": {"cpu": "500"}}}]}}"#,
    );
    let msg = k
        .wait_json("huge unschedulable", T, &["get", "pod", "huge"], |p| {
            let c = p["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned());
            match c {
                Some(c) if c["status"] == "False" => {
                    Ok(c["message"].as_str().unwrap_or("").to_string())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(msg, "0/2 nodes are available: 2 Insufficient cpu.");
    let describe = k.ok(&["describe", "pod", "huge"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");

    // A Deployment whose selector does not select its template: 422, as Kubernetes.
    let bad = k.run(
        &["apply", "-f", "-"],
        Some(
            &WEB.replace("name: web}", "name: bad}")
                .replace("matchLabels: {app: web}", "matchLabels: {app: other}"),
        ),
    );
    assert!(
        !bad.ok && bad.stderr.contains("selector") && bad.stderr.contains("does not match"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_pods_are_replaced_on_the_other_node() {
    let c = LocalUp::start().await;
    let (k, up) = (&c.k, &c.up);
    k.ok_in(&["apply", "-f", "-"], WEB);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let on_n2: Vec<String> = web_pods(k)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!on_n2.is_empty(), "some replicas on n2");

    // n2 dies: its agent freezes (SIGSTOP: `ferry up` would restart a
    // killed one) and its pods' processes are SIGKILLed.
    let agent = up.master_pids("n2");
    assert_eq!(agent.len(), 1, "{agent:?}");
    kill(Pid::from_raw(agent[0]), Signal::SIGSTOP).unwrap();
    for pid in container_pids("marker-web") {
        let on_n2_dir = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .is_ok_and(|d| d.components().any(|c| c.as_os_str() == "n2"));
        if on_n2_dir {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let killed = Instant::now();
    poll("4 Ready web pods on n1", Duration::from_secs(60), || {
        let pods = web_pods(k);
        let n = pods
            .iter()
            .filter(|p| !terminating(p) && p["spec"]["nodeName"] == "n1" && ready(p))
            .count();
        verdict(n == 4, || format!("{n} Ready on n1"))
    })
    .await;
    let took = killed.elapsed();
    eprintln!("node n2 killed -> its replicas Ready on n1: {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    kill(Pid::from_raw(agent[0]), Signal::SIGCONT).unwrap();
}

const BATCH: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done", "marker-agent"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "echo I am $HOSTNAME; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
---
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 6
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "sleep 0.3; echo done"]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "@every 3s"
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            command: ["/bin/sh", "-c", "echo tick"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonsets_statefulsets_jobs_and_cronjobs_run_to_their_ends() {
    let c = LocalUp::start().await;
    let k = &c.k;
    k.ok_in(&["apply", "-f", "-"], BATCH);

    // The Job: 6 completions, at most 2 at a time.
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "--timeout=90s",
    ]);
    let job = k.json(&["get", "job", "count"]);
    assert_eq!(job["status"]["succeeded"], 6, "{job}");
    let pods = k.json(&["get", "pods", "-l", "job-name=count"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 6, "{pods}");

    // The DaemonSet: one pod on each node, as two processes.
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    let ds = k.json(&["get", "pods", "-l", "app=agent"]);
    let nodes: std::collections::BTreeSet<_> = ds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(nodes, ["n1", "n2"].map(String::from).into(), "{ds}");
    assert_eq!(container_pids("marker-agent").len(), 2);

    // The StatefulSet: db-0 and db-1, each knowing its own name.
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    for name in ["db-0", "db-1"] {
        let p = k.json(&["get", "pod", name]);
        assert!(ready(&p), "{p}");
        assert_eq!(p["spec"]["hostname"], name);
        let log = k.ok(&["logs", name]);
        assert!(log.contains(&format!("I am {name}")), "{log}");
    }
    let (db0, db1) = (
        k.json(&["get", "pod", "db-0"]),
        k.json(&["get", "pod", "db-1"]),
    );
    let ready_at = |p: &Value| {
        p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["lastTransitionTime"].as_str().unwrap_or("").to_string())
    };
    assert!(
        ready_at(&db0)
            <= db1["metadata"]["creationTimestamp"]
                .as_str()
                .map(String::from),
        "OrderedReady: db-1 made only once db-0 was Ready"
    );

    // The CronJob runs its Jobs, and keeps at most 2 finished ones.
    k.wait_json("two ticks done", T, &["get", "jobs"], |jobs| {
        let done = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| {
                j["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("tick-"))
            })
            .filter(|j| j["status"]["succeeded"] == 1)
            .count();
        verdict(done >= 2, || format!("{done} done"))
    })
    .await;
    let cj = k.json(&["get", "cronjob", "tick"]);
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{cj}");
    assert!(cj["status"]["lastSuccessfulTime"].is_string(), "{cj}");
}

const BURN: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "while :; do :; done", "marker-burn"]
        resources: {requests: {cpu: 50m}, limits: {cpu: 200m}}
"#;

/// The CPU cell (`123m`) of `name`'s line in `kubectl top` / `ferry top` output.
fn top_cpu(out: &str, name: &str) -> Option<u64> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.strip_suffix('m'))
        .and_then(|c| c.parse().ok())
}

/// `kubectl top pods/nodes` and `ferry top` show a busy pod's CPU within
/// ~30 s, every master answers metrics.k8s.io, and `kubectl autoscale`
/// makes an autoscaler that scales the busy Deployment up to its max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pod_shows_in_top_and_an_autoscaler_scales_it_up() {
    let c = LocalUp::start().await;
    let (k, home, up) = (&c.k, &c.home, &c.up);
    k.ok_in(&["apply", "-f", "-"], BURN);
    k.ok(&["rollout", "status", "deployment/burn", "--timeout=60s"]);
    let pod = k.json(&["get", "pods", "-l", "app=burn"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // kubectl top pods: the busy loop's CPU, non-zero, within ~30 s.
    let started = Instant::now();
    poll(
        "the busy pod in kubectl top pods",
        Duration::from_secs(45),
        || {
            let o = k.run(&["top", "pods"], None);
            let cpu = top_cpu(&o.stdout, &pod);
            match cpu {
                Some(c) if c > 0 => Ok(()),
                _ => Err(format!("{}{}", o.stdout, o.stderr)),
            }
        },
    )
    .await;
    eprintln!("busy pod in top after {:?}", started.elapsed());
    let all = k.ok(&["top", "pods", "-A", "--containers"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.contains(&pod) && l.contains(" main ")),
        "{all}"
    );
    let nodes = k.ok(&["top", "nodes"]);
    for n in ["n1", "n2"] {
        assert!(top_cpu(&nodes, n).is_some(), "{n} has metrics: {nodes}");
    }
    // ferry top, over QUIC, agrees.
    let conf = &c.conf;
    let ours = crate::procs::ok(home, conf, &["top", "pods", "-l", "app=burn"]);
    assert!(top_cpu(&ours, &pod).is_some_and(|c| c > 0), "{ours}");
    let ours = crate::procs::ok(home, conf, &["top", "nodes"]);
    assert!(ours.starts_with("NAME"), "{ours}");
    // Every master answers, whichever master the node is connected to.
    for i in 1..=3 {
        let server = format!("https://127.0.0.1:{}", up.https_port + i);
        let raw = k.ok(&[
            "--server",
            &server,
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        ]);
        let v: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["kind"], "PodMetricsList", "{raw}");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["metadata"]["name"] == pod.as_str()),
            "master {i}: {raw}"
        );
    }

    // kubectl autoscale (autoscaling/v1 on the wire): 200m used of 50m
    // requested is far over 50%, so the Deployment goes to its max.
    k.ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    poll(
        "the autoscaler scales burn to 3",
        Duration::from_secs(90),
        || {
            let d = k.json(&["get", "deployment", "burn"]);
            verdict(d["spec"]["replicas"] == 3, || {
                format!("replicas {}", d["spec"]["replicas"])
            })
        },
    )
    .await;
    let hpa = k.json(&["get", "hpa", "burn"]);
    assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{hpa}");
    assert_eq!(hpa["status"]["desiredReplicas"], 3, "{hpa}");
    let util = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
        .as_i64()
        .unwrap_or(0);
    assert!(util > 50, "{hpa}");
    let table = k.ok(&["get", "hpa"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("Deployment/burn") && table.contains("%/50%"),
        "{table}"
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ]);
    assert!(events.contains("New size: 3"), "{events}");
    // ferry autoscale makes one too (for another name).
    let out = crate::procs::ok(
        home,
        conf,
        &[
            "autoscale",
            "deployment",
            "burn",
            "--max",
            "3",
            "--name",
            "burn2",
        ],
    );
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/burn2 autoscaled"),
        "{out}"
    );
    k.ok(&["delete", "hpa", "burn", "burn2"]);
    k.ok(&["delete", "deployment", "burn"]);
}

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        env: [{name: VERSION, value: "1"}]
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done", "marker-agent"]
"#;

/// The live `app=agent` pods' (VERSION, controller-revision-hash), once there
/// is one on each node and none terminating.
fn agent_versions(k: &Kubectl) -> Result<Vec<(String, String)>, String> {
    let pods = k.json(&["get", "pods", "-l", "app=agent"]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    if items.len() != 2 || items.iter().any(terminating) {
        return Err(format!("{} pods, some may be terminating", items.len()));
    }
    Ok(items
        .iter()
        .map(|p| {
            let v = &p["spec"]["containers"][0]["env"][0]["value"];
            let h = &p["metadata"]["labels"]["controller-revision-hash"];
            (
                v.as_str().unwrap_or("").to_string(),
                h.as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// The DaemonSet's ControllerRevisions: name → revision.
fn agent_revisions(k: &Kubectl) -> BTreeMap<String, i64> {
    let revs = k.json(&["get", "controllerrevisions", "-l", "app=agent"]);
    revs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap().to_string(),
                r["revision"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `kubectl rollout history daemonset` and `rollout undo daemonset` work off
/// the ControllerRevisions the DaemonSet controller keeps: a changed
/// template is revision 2, the undo brings revision 1's template (and its
/// pods' hash label) back as revision 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_a_daemonset_back_by_its_controller_revisions() {
    let c = LocalUp::start().await;
    let k = &c.k;
    k.ok_in(&["apply", "-f", "-"], AGENT);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);

    // Revision 1, printed as kubectl prints ControllerRevisions.
    let table = k.ok(&["get", "controllerrevisions"]);
    assert!(
        table.starts_with("NAME") && table.contains("CONTROLLER") && table.contains("REVISION"),
        "{table}"
    );
    assert!(table.contains("daemonset.apps/agent"), "{table}");
    let first = agent_revisions(k);
    assert_eq!(
        first.values().copied().collect::<Vec<_>>(),
        [1],
        "{first:?}"
    );
    let (v1_name, _) = first.into_iter().next().unwrap();
    let v1_hash = v1_name.strip_prefix("agent-").unwrap().to_string();
    let pods = agent_versions(k).unwrap();
    assert!(
        pods.iter().all(|(v, h)| v == "1" && *h == v1_hash),
        "{pods:?}"
    );

    // A new template: revision 2, rolled onto both nodes.
    k.ok(&["set", "env", "daemonset/agent", "VERSION=2"]);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    poll("both pods on VERSION=2", T, || {
        let r = agent_versions(k);
        match r {
            Ok(p) if p.iter().all(|(v, h)| v == "2" && *h != v1_hash) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let revs = agent_revisions(k);
    assert_eq!(revs.len(), 2, "{revs:?}");
    assert_eq!(revs[&v1_name], 1, "{revs:?}");
    let history = k.ok(&["rollout", "history", "daemonset/agent"]);
    let lines: Vec<&str> = history.lines().map(str::trim).collect();
    assert!(lines.contains(&"REVISION  CHANGE-CAUSE"), "{history}");
    assert!(lines.iter().any(|l| l.starts_with("1 ")), "{history}");
    assert!(lines.iter().any(|l| l.starts_with("2 ")), "{history}");
    // kubectl applies revision 1's data to show its template.
    let one = k.ok(&["rollout", "history", "daemonset/agent", "--revision=1"]);
    assert!(one.contains("VERSION:") && one.contains('1'), "{one}");

    // Undo: revision 1's template comes back, renumbered 3.
    let out = k.ok(&["rollout", "undo", "daemonset/agent"]);
    assert!(out.contains("daemonset.apps/agent rolled back"), "{out}");
    let ds = k.json(&["get", "daemonset", "agent"]);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "1",
        "{ds}"
    );
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    poll("both pods back on VERSION=1", T, || {
        let r = agent_versions(k);
        match r {
            Ok(p) if p.iter().all(|(v, h)| v == "1" && *h == v1_hash) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    poll("revision 1 renumbered 3", T, || {
        let revs = agent_revisions(k);
        let name = v1_name.clone();
        verdict(revs.len() == 2 && revs.get(&name) == Some(&3), || {
            format!("{revs:?}")
        })
    })
    .await;
    // Undo to a revision that is not there names it, as kubectl does.
    let err = k.fails(&["rollout", "undo", "daemonset/agent", "--to-revision=9"]);
    assert!(
        err.contains("unable to find specified revision 9 in history"),
        "{err}"
    );
}

const LATE_AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: late}
spec:
  selector: {matchLabels: {app: late}}
  template:
    metadata: {labels: {app: late}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done", "marker-late"]
"#;

/// The nodes the `late` DaemonSet's Running pods are on.
fn late_nodes(k: &Kubectl) -> std::collections::BTreeSet<String> {
    let pods = k.json(&["get", "pods", "-l", "app=late"]);
    pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
        .collect()
}

/// A DaemonSet covers a node that joins after it was made: a third real
/// node joins `ferry up` with a bootstrap token and gets its pod, as a
/// process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_covers_a_node_that_joins_later() {
    let c = LocalUp::start().await;
    let k = &c.k;
    k.ok_in(&["apply", "-f", "-"], LATE_AGENT);
    k.ok(&["rollout", "status", "daemonset/late", "--timeout=60s"]);
    assert_eq!(late_nodes(k), ["n1", "n2"].map(String::from).into());

    // n3 joins with a fresh token, on its own loopback address.
    let n3 = c.join_node("n3", "127.0.1.3", &[]);
    poll("a late pod Running on n3", T, || {
        let nodes = late_nodes(k);
        verdict(nodes.contains("n3"), || format!("on {nodes:?}"))
    })
    .await;
    assert_eq!(late_nodes(k), ["n1", "n2", "n3"].map(String::from).into());
    k.ok(&["rollout", "status", "daemonset/late", "--timeout=60s"]);
    let ds = k.json(&["get", "daemonset", "late"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3, "{ds}");
    assert_eq!(ds["status"]["numberReady"], 3, "{ds}");
    assert_eq!(container_pids("marker-late").len(), 3);

    // The pods go before the node does, so it leaves no process behind.
    k.ok(&["delete", "daemonset", "late"]);
    poll("the late pods gone", T, || {
        let left = container_pids("marker-late").len();
        match left {
            0 => Ok(()),
            n => Err(format!("{n} processes left")),
        }
    })
    .await;
    n3.stop();
}

const STUCK: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
"#;

const VICTIM: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#;

fn condition(p: &Value, type_: &str) -> Option<Value> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// A Deployment whose new pods never become Ready, with
/// `progressDeadlineSeconds: 10`, gets `Progressing=False`
/// (`ProgressDeadlineExceeded`), and `kubectl rollout status` exits non-zero
/// with kubectl's error. And a pod evicted through `pods/eviction` carries
/// `DisruptionTarget` (`EvictionByEvictionAPI`) while it terminates, kept
/// through its node's status writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_past_its_progress_deadline_fails_and_an_eviction_marks_its_pod() {
    let mut c = LocalUp::start().await;
    let (k, up) = (&c.k, &mut c.up);

    k.ok_in(&["apply", "-f", "-"], STUCK);
    let started = Instant::now();
    let progressing = k
        .wait_json(
            "Progressing=False",
            Duration::from_secs(60),
            &["get", "deployment/stuck"],
            |d| match condition(&d, "Progressing") {
                Some(c) if c["status"] == "False" => Ok(c),
                other => Err(format!("{other:?}")),
            },
        )
        .await;
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    let msg = progressing["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("ReplicaSet \"stuck-") && msg.ends_with("\" has timed out progressing."),
        "{progressing}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before the deadline"
    );
    let out = k.run(
        &["rollout", "status", "deployment/stuck", "--timeout=60s"],
        None,
    );
    assert!(!out.ok, "rollout status succeeded: {}", out.stdout);
    assert!(
        out.stderr
            .contains("error: deployment \"stuck\" exceeded its progress deadline"),
        "{}",
        out.stderr
    );

    // The Eviction API marks the pod before deleting it; the pod ignores
    // SIGTERM, so it terminates for its whole grace period, and its node's
    // status writes keep the condition.
    k.ok_in(&["apply", "-f", "-"], VICTIM);
    k.ok(&[
        "wait",
        "pod/victim",
        "--for=condition=Ready",
        "--timeout=60s",
    ]);
    k.ok_in(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/victim/eviction",
            "-f",
            "-",
        ],
        r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "victim"}}"#,
    );
    for _ in 0..2 {
        let p = k.json(&["get", "pod/victim"]);
        assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
        let c = condition(&p, "DisruptionTarget").unwrap_or_else(|| panic!("{p:#}"));
        assert_eq!(c["status"], "True");
        assert_eq!(c["reason"], "EvictionByEvictionAPI");
        assert_eq!(c["message"], "Eviction API: evicting");
        // The kubelet's own conditions are still there beside it.
        assert!(condition(&p, "Ready").is_some(), "{p:#}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    k.ok(&["delete", "pod/victim", "--grace-period=0", "--force"]);
    up.stop_gracefully().await;
}
