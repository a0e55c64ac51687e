//! Nodes end to end on `ferry up` (3 masters, 2 real `ferry node` processes):
//! joining with bootstrap tokens (and the refusals), pods run as real
//! processes with what their spec says, re-adopted across a SIGKILL of their
//! agent, crash-looping with their exit code, stopped within their grace
//! period; and NodeRestriction refusing a node's writes to another node's
//! objects.

use crate::harness::{poll, verdict, LocalUp};
use crate::procs::{ferry, ok, pids_with_arg, run_ferry, T};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn apply(home: &Path, conf: &str, manifest: &str) {
    let path = home.join(format!("m-{}.yaml", rand::random::<u32>()));
    std::fs::write(&path, manifest).unwrap();
    ok(home, conf, &["apply", "-f", path.to_str().unwrap()]);
}

fn pod(home: &Path, conf: &str, name: &str) -> Option<Value> {
    let r = ferry(home, conf, &["get", "pod", name, "-o", "json"]);
    r.status
        .success()
        .then(|| serde_json::from_str(&r.stdout).expect("JSON"))
}

/// Waits until `check` holds for pod `name`, returning it.
async fn wait_pod(
    home: &Path,
    conf: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    poll(what, T, || {
        let p = pod(home, conf, name);
        let r = match p {
            Some(p) if check(&p) => Ok(p),
            Some(p) => Err(format!("status: {}", p["status"])),
            None => Err("no pod".to_string()),
        };
        r
    })
    .await
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {mode: fast, "settings.txt": "x=1"}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {app: web}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 3
  initContainers:
  - name: prepare
    image: busybox
    workingDir: WORKDIR
    command: ["/bin/sh", "-c", "echo prepared > init-done"]
  containers:
  - name: main
    image: busybox
    workingDir: WORKDIR
    command: ["/bin/sh", "-c", "echo MODE=$MODE PASS=$PASS POD=$POD APP=$APP GREETING=$GREETING; cat init-done; trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.2; done", "marker-app-main"]
    envFrom:
    - configMapRef: {name: app-config}
      prefix: CFG_
    env:
    - {name: MODE, valueFrom: {configMapKeyRef: {name: app-config, key: mode}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: NAME, value: world}
    - {name: GREETING, value: "hello-$(NAME)"}
    volumeMounts:
    - {name: config, mountPath: MOUNT, readOnly: true}
    - {name: secret, mountPath: MOUNT-secret}
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: secret
    secret: {secretName: app-secret, defaultMode: 0400}
"#;

const CRASH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  nodeName: n2
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "exit 3"]
"#;

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  nodeName: n2
  containers:
  - name: main
    image: busybox
    workingDir: WORKDIR
    command: ["/bin/sh", "-c", "touch alive; while true; do sleep 0.2; done", "marker-probed"]
    readinessProbe:
      exec: {command: ["/bin/sh", "-c", "test -f ready"]}
      periodSeconds: 1
    livenessProbe:
      exec: {command: ["/bin/sh", "-c", "test -f alive"]}
      periodSeconds: 1
      failureThreshold: 2
"#;

const HUNGRY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  nodeName: n1
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "sleep 1; head -c 400000000 /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi, cpu: 500m}
"#;

const BAD_REF: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: badref}
spec:
  nodeName: n2
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "sleep 100"]
    env:
    - {name: X, valueFrom: {configMapKeyRef: {name: no-such-config, key: k}}}
"#;

/// Pids of the container processes (not their shims) with `marker` in their arguments.
pub(crate) fn container_pids(marker: &str) -> Vec<i32> {
    let pids: Vec<i32> = pids_with_arg(marker)
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmd.split(|b| *b == 0).any(|a| a == b"shim")
        })
        .collect();
    // A container's shell forks for each command it runs, and the child
    // carries the parent's command line until it execs: not a second process
    // of the container.
    pids.iter()
        .copied()
        .filter(|pid| !parent_of(*pid).is_some_and(|p| pids.contains(&p)))
        .collect()
}

/// The parent pid of `pid` (`/proc/PID/stat`'s fourth field; the command name
/// before it is in parentheses and may hold spaces).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The Events about pod `name` (`ferry get events`).
fn events_of(home: &Path, conf: &str, name: &str) -> Vec<Value> {
    let selector = format!("involvedObject.name={name}");
    let out = ok(
        home,
        conf,
        &["get", "events", "--field-selector", &selector, "-o", "json"],
    );
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The one Event with `reason` about `field_path` among `events`.
fn the_event<'a>(events: &'a [Value], reason: &str, field_path: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == reason && e["involvedObject"]["fieldPath"] == field_path)
        .collect();
    assert_eq!(found.len(), 1, "one {reason} of {field_path}: {events:#?}");
    found[0]
}

/// The Events about pod `name` once one has `reason` about `field_path`
/// (the agent writes them after the pod's status).
async fn wait_event(
    home: &Path,
    conf: &str,
    name: &str,
    reason: &str,
    field_path: &str,
) -> Vec<Value> {
    poll(&format!("{reason} of {name}'s {field_path}"), T, || {
        let events = events_of(home, conf, name);
        let found = events
            .iter()
            .any(|e| e["reason"] == reason && e["involvedObject"]["fieldPath"] == field_path);
        if found {
            Ok(events)
        } else {
            Err(format!("{events:#?}"))
        }
    })
    .await
}

fn container_log(dir: &Path, node: &str, uid: &str, c: &str) -> String {
    std::fs::read_to_string(dir.join(node).join("pods").join(uid).join(c).join("log"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_and_run_pods_as_processes_that_outlive_their_agent() {
    let mut c = LocalUp::start().await;
    let (home, dir, up) = (&c.home, &c.dir, &mut c.up);
    let conf = &c.conf;

    // Both nodes registered, Ready, with their own addresses and a lease.
    let nodes: Value =
        serde_json::from_str(&ok(home, conf, &["get", "nodes", "-o", "json"])).unwrap();
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{nodes}");
    for (n, want_ip) in items.iter().zip(["127.0.1.1", "127.0.1.2"]) {
        assert_eq!(n["status"]["addresses"][0]["address"], want_ip);
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"],
            "process://ferry"
        );
    }
    let leases = ok(
        home,
        conf,
        &["get", "leases", "-n", "kube-node-lease", "-o", "name"],
    );
    assert_eq!(
        leases,
        "lease.coordination.k8s.io/n1\nlease.coordination.k8s.io/n2\n"
    );

    // A pod with env from a ConfigMap, a Secret and the downward API, and an
    // init container, runs as a real process and reports Running and Ready.
    // A configMap volume at an absolute mountPath: seen by the container (in
    // its own mount namespace), not by the host.
    let mount = home.join("mnt").join("app-config");
    let mount = mount.to_str().unwrap();
    // The containers' working directories, on the host (the process
    // runtime's containers see the host's files).
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let work_dir = work.to_str().unwrap();
    apply(
        home,
        conf,
        &APP.replace("MOUNT", mount).replace("WORKDIR", work_dir),
    );
    let p = wait_pod(home, conf, "app", "app Running and Ready", |p| {
        p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true
    })
    .await;
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    // As root the pod has its own network namespace and address from the
    // node's range; otherwise it shares the node's.
    let pod_ip = p["status"]["podIP"].as_str().unwrap_or_default();
    if crate::network::is_root() {
        let range: ferry_api::network::Cidr = "10.42.0.0/16".parse().unwrap();
        assert!(range.contains(pod_ip.parse().unwrap()), "{pod_ip}");
    } else {
        assert_eq!(pod_ip, "127.0.1.1");
    }
    assert_eq!(p["status"]["hostIP"], "127.0.1.1");
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let log = poll("the container's output", T, || {
        let l = container_log(dir, "n1", &uid, "main");
        if l.contains("prepared") {
            Ok(l)
        } else {
            Err(l)
        }
    })
    .await;
    assert!(
        log.contains("MODE=fast PASS=s3cret POD=app APP=web GREETING=hello-world"),
        "{log}"
    );
    let pids = container_pids("marker-app-main");
    assert_eq!(pids.len(), 1, "one container process: {pids:?}");
    // `ferry logs` reaches the node through its tunnel's master.
    let logs = ok(home, conf, &["logs", "app"]);
    assert!(logs.starts_with("MODE=fast PASS=s3cret"), "{logs}");
    assert_eq!(
        ok(home, conf, &["logs", "app", "--tail", "1"]),
        "prepared\n"
    );
    assert_eq!(ok(home, conf, &["logs", "app", "-c", "prepare"]), "");
    let stamped = ok(
        home,
        conf,
        &["logs", "pod/app", "--timestamps", "--tail", "1"],
    );
    assert!(stamped.ends_with("Z prepared\n"), "{stamped}");
    let r = ferry(home, conf, &["logs", "app", "-c", "nope"]);
    assert!(
        r.stderr.contains("choose one of: [main prepare]"),
        "{}",
        r.stderr
    );
    // `ferry exec` runs in the container's environment and directory, passes
    // stdin and the exit code through.
    let out = ok(
        home,
        conf,
        &[
            "exec",
            "app",
            "--",
            "sh",
            "-c",
            "echo $MODE $POD; cat init-done",
        ],
    );
    assert_eq!(out, "fast app\nprepared\n");
    let script = format!("cat {mount}/mode {mount}/settings.txt; echo; cat {mount}-secret/password; echo; touch {mount}/x 2>/dev/null || echo read-only");
    let out = ok(home, conf, &["exec", "app", "--", "sh", "-c", &script]);
    assert_eq!(out, "fastx=1\ns3cret\nread-only\n");
    assert_eq!(
        std::fs::read_dir(mount).map(|d| d.count()).unwrap_or(0),
        0,
        "the host sees the volume"
    );
    // The volume follows its ConfigMap (the `..data` swap).
    ok(
        home,
        conf,
        &[
            "patch",
            "configmap",
            "app-config",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ],
    );
    poll("the volume updated in place", T, || {
        let r = ferry(
            home,
            conf,
            &["exec", "app", "--", "cat", &format!("{mount}/mode")],
        );
        verdict(r.stdout == "slow", || format!("{}{}", r.stdout, r.stderr))
    })
    .await;
    let r = ferry(
        home,
        conf,
        &["exec", "app", "--", "sh", "-c", "echo oops >&2; exit 7"],
    );
    assert_eq!(r.status.code(), Some(7), "{}", r.stderr);
    assert!(
        r.stderr.contains("oops") && r.stderr.contains("exit code 7"),
        "{}",
        r.stderr
    );
    // -t: the command runs on a terminal (a pty on the node).
    let t = ok(
        home,
        conf,
        &[
            "exec",
            "-t",
            "app",
            "--",
            "sh",
            "-c",
            "test -t 1 && echo on-a-terminal",
        ],
    );
    assert!(t.contains("on-a-terminal"), "{t:?}");
    let t = ok(
        home,
        conf,
        &[
            "exec",
            "app",
            "--",
            "sh",
            "-c",
            "test -t 1 || echo no-terminal",
        ],
    );
    assert_eq!(t, "no-terminal\n");
    let r = ferry(home, conf, &["exec", "app", "--", "no-such-command"]);
    assert_eq!(r.status.code(), Some(127), "{}", r.stderr);
    let piped = {
        use std::io::Write as _;
        let mut c = crate::procs::ferry_cmd(home)
            .args([
                "--config", conf, "exec", "-i", "app", "--", "tr", "a-z", "A-Z",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn exec -i");
        c.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        c.wait_with_output().expect("exec -i")
    };
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout),
        "HELLO\n",
        "{:?}",
        piped
    );

    // SIGKILL the node agent: the pod keeps running; the restarted agent
    // re-adopts the same process and the pod stays Running.
    let agent = up.master_pids("n1");
    assert_eq!(agent.len(), 1, "{agent:?}");
    kill(Pid::from_raw(agent[0]), Signal::SIGKILL).unwrap();
    up.wait_log("node n1 restarted", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        container_pids("marker-app-main"),
        pids,
        "the same process, re-adopted"
    );
    let p = pod(home, conf, "app").unwrap();
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    // The kubelet's events, each about its container, once: the restarted
    // agent did not report its re-adopted container again.
    let events = events_of(home, conf, "app");
    for (reason, message) in [
        (
            "Pulled",
            r#"Container image "busybox" already present on machine"#,
        ),
        ("Created", "Created container: main"),
        ("Started", "Started container main"),
    ] {
        let e = the_event(&events, reason, "spec.containers{main}");
        assert_eq!(e["message"], message, "{e}");
        assert_eq!(e["type"], "Normal", "{e}");
        assert_eq!(e["count"], 1, "{e}");
        assert_eq!(e["involvedObject"]["uid"].as_str(), Some(uid.as_str()));
        assert_eq!(e["source"]["component"], "kubelet");
        assert_eq!(e["reportingInstance"], "n1");
    }
    the_event(&events, "Started", "spec.initContainers{prepare}");

    // Probes: not Ready until its readiness probe passes; a failing liveness
    // probe restarts the container and says why (status and an event).
    let probed_dir = home.join("probed-work");
    std::fs::create_dir_all(&probed_dir).unwrap();
    apply(
        home,
        conf,
        &PROBED.replace("WORKDIR", probed_dir.to_str().unwrap()),
    );
    wait_pod(home, conf, "probed", "probed running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    let pdir = probed_dir;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pod(home, conf, "probed").unwrap();
    assert_eq!(
        p["status"]["containerStatuses"][0]["ready"], false,
        "ready without its probe"
    );
    std::fs::write(pdir.join("ready"), b"").unwrap();
    wait_pod(home, conf, "probed", "probed Ready", |p| {
        p["status"]["containerStatuses"][0]["ready"] == true
    })
    .await;
    let first = container_pids("marker-probed");
    assert_eq!(first.len(), 1, "{first:?}");
    std::fs::remove_file(pdir.join("alive")).unwrap();
    let p = wait_pod(
        home,
        conf,
        "probed",
        "probed restarted by its liveness probe",
        |p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1),
    )
    .await;
    let why = p["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("Liveness probe failed"), "{}", p["status"]);
    assert_ne!(container_pids("marker-probed"), first, "a new process");
    let events = ok(home, conf, &["get", "events", "-o", "json"]);
    assert!(
        events.contains("Unhealthy") && events.contains("Liveness probe failed"),
        "{events}"
    );
    let events = wait_event(home, conf, "probed", "Killing", "spec.containers{main}").await;
    let killing = the_event(&events, "Killing", "spec.containers{main}");
    assert_eq!(
        killing["message"],
        "Container main failed liveness probe, will be restarted"
    );

    // Limits: a container over its memory limit is OOMKilled (where the node
    // may create cgroups, as root on CI; elsewhere an event says so).
    apply(home, conf, HUNGRY);
    if !matches!(
        ferry_node::cgroups::Layout::detect(),
        ferry_node::cgroups::Layout::Unavailable(_)
    ) {
        let h = wait_pod(home, conf, "hungry", "hungry OOMKilled", |p| {
            p["status"]["phase"] == "Failed"
        })
        .await;
        let t = &h["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["reason"], "OOMKilled", "{}", h["status"]);
        assert_eq!(t["exitCode"], 137);
        assert_eq!(h["status"]["qosClass"], "Guaranteed");
    } else {
        poll("an event saying limits are not enforced", T, || {
            let events = ferry(home, conf, &["get", "events", "-o", "json"]).stdout;
            verdict(events.contains("LimitsNotEnforced"), || events)
        })
        .await;
    }

    // A container that exits non-zero backs off and says so, with its exit code.
    apply(home, conf, CRASH);
    let c = wait_pod(home, conf, "crash", "crash in CrashLoopBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    assert_eq!(
        c["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        3
    );
    // Started at least twice (at once after its first exit), counted on
    // one Event, then held back.
    let events = wait_event(home, conf, "crash", "BackOff", "spec.containers{main}").await;
    let started = the_event(&events, "Started", "spec.containers{main}");
    assert!(started["count"].as_u64() >= Some(2), "{started}");
    let back_off = the_event(&events, "BackOff", "spec.containers{main}");
    assert_eq!(back_off["type"], "Warning");
    let crash_uid = c["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        back_off["message"],
        format!("Back-off restarting failed container main in pod crash_default({crash_uid})")
    );

    // A missing ConfigMap: the container waits, naming it; nothing runs.
    apply(home, conf, BAD_REF);
    let b = wait_pod(home, conf, "badref", "badref waiting on its config", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    })
    .await;
    let msg = b["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("no-such-config"), "{msg}");

    // Deleting the pod stops its process (SIGTERM: it exits 0 on it) within
    // the grace period, and the pod is then gone from the API.
    let started = std::time::Instant::now();
    ok(home, conf, &["delete", "pod", "app"]);
    poll("the app pod gone from the API", T, || {
        let gone = pod(home, conf, "app").is_none();
        verdict(gone, || "still there".to_string())
    })
    .await;
    assert!(
        container_pids("marker-app-main").is_empty(),
        "process left behind"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let log = container_log(dir, "n1", &uid, "main");
    assert!(
        log.is_empty() || log.contains("got TERM"),
        "no SIGTERM first: {log}"
    );
    let events = wait_event(home, conf, "app", "Killing", "spec.containers{main}").await;
    let killing = the_event(&events, "Killing", "spec.containers{main}");
    assert_eq!(killing["message"], "Stopping container main");
    assert!(
        !dir.join("n1/pods").join(&uid).exists(),
        "pod directory left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_refuses_bad_tokens_and_nodes_may_not_touch_other_nodes() {
    let c = LocalUp::start().await;
    let (home, dir) = (&c.home, &c.dir);
    let conf = &c.conf;
    let admin = ferry_config::ClientConfig::load(Path::new(conf)).unwrap();
    let masters = admin.masters.join(",");
    let join = |token: &str, data: &str| {
        run_ferry(
            home,
            &[
                "node",
                "--data-dir",
                home.join(data).to_str().unwrap(),
                "--join",
                &masters,
                "--token",
                token,
                "--name",
                "x1",
                "--address",
                "127.0.1.9",
            ],
            T,
        )
    };
    // Malformed, unknown, and expired tokens: refused, naming why; nothing written.
    let r = join("not-a-token", "bad1");
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stderr.contains("[a-z0-9]{6}.[a-z0-9]{16}"),
        "{}",
        r.stderr
    );
    let r = join("abcdef.0123456789abcdef", "bad2");
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stderr.contains("no bootstrap token with id \"abcdef\""),
        "{}",
        r.stderr
    );
    assert!(
        !home.join("bad2/node.conf").exists(),
        "credentials written for a refused join"
    );
    let expired = r#"
apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-old123, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: old123
  token-secret: 0123456789abcdef
  expiration: "2020-01-01T00:00:00Z"
  usage-bootstrap-authentication: "true"
"#;
    let path = home.join("expired.yaml");
    std::fs::write(&path, expired).unwrap();
    ok(home, conf, &["apply", "-f", path.to_str().unwrap()]);
    let r = join("old123.0123456789abcdef", "bad3");
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    // The right id with a wrong secret cannot even get the CA proven.
    let listed = ok(home, conf, &["token", "list"]);
    let id = listed
        .lines()
        .find(|l| l.contains("nodes join with it"))
        .and_then(|l| l.split('.').next())
        .unwrap_or_else(|| panic!("ferry up's token is not listed:\n{listed}"))
        .to_string();
    assert!(
        !listed.contains("0123456789abcdef"),
        "a secret listed: {listed}"
    );
    let r = join(&format!("{id}.0000000000000000"), "bad4");
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stderr
            .contains("could not prove it knows the bootstrap token"),
        "{}",
        r.stderr
    );
    // The token cleaner deletes the expired token's Secret.
    poll("the expired token deleted", T, || {
        let r = ferry(
            home,
            conf,
            &[
                "get",
                "secret",
                "bootstrap-token-old123",
                "-n",
                "kube-system",
            ],
        );
        verdict(
            r.status.code() == Some(1) && r.stderr.contains("not found"),
            || r.stdout,
        )
    })
    .await;
    // `token delete` removes it.
    let t = ok(home, conf, &["token", "create", "--ttl", "1h"]);
    let t = t.trim().to_string();
    ok(home, conf, &["token", "delete", &t]);
    let r = join(&t, "bad5");
    assert!(r.stderr.contains("no bootstrap token"), "{}", r.stderr);

    // Node n1's own certificate may not write node n2's Node or Lease, nor a
    // pod bound to n2 — but may write its own.
    let n1 = dir.join("n1").join("node.conf");
    let n1 = n1.to_str().unwrap();
    let patch = r#"{"metadata":{"labels":{"stolen":"yes"}}}"#;
    for (kind, name, ns) in [
        ("node", "n2", None),
        ("lease", "n2", Some("kube-node-lease")),
    ] {
        let mut args = vec!["patch", kind, name, "--type", "merge", "-p", patch];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let r = ferry(home, n1, &args);
        assert_eq!(r.status.code(), Some(1), "{kind} {name}: {}", r.stdout);
        assert!(r.stderr.contains("may only change its own"), "{}", r.stderr);
    }
    ok(
        home,
        n1,
        &["patch", "node", "n1", "--type", "merge", "-p", patch],
    );
    apply(home, conf, CRASH);
    let r = ferry(home, n1, &["delete", "pod", "crash"]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains("may only change pods bound to it"),
        "{}",
        r.stderr
    );
    let r = ferry(home, n1, &["delete", "configmap", "kube-root-ca.crt"]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
}

pub(crate) fn node_ready(home: &Path, conf: &str, name: &str) -> (String, bool) {
    let r = ferry(home, conf, &["get", "node", name, "-o", "json"]);
    let n: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("?")
        .to_string();
    let tainted = n
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable")
        });
    (ready, tainted)
}

const ON_N2: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: on-n2}
spec:
  nodeName: n2
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 0.2; done", "marker-on-n2"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_marked_and_its_pods_evicted_but_a_master_failover_marks_none() {
    let c = LocalUp::start().await;
    let (home, up) = (&c.home, &c.up);
    let conf = &c.conf;
    apply(home, conf, ON_N2);
    wait_pod(home, conf, "on-n2", "on-n2 Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;

    // SIGKILL the leader master: for the next 12 s (longer than the grace
    // period) neither node is ever anything but Ready.
    let admin = ferry_config::ClientConfig::load(Path::new(conf)).unwrap();
    let status = run_ferry(
        home,
        &["--config", conf, "cluster", "status", "-o", "json"],
        T,
    );
    let s: Value = serde_json::from_str(&status.stdout).unwrap();
    let leader = s["leader"].as_u64().expect("a leader");
    let victim = up.master_pids(&format!("m{leader}"));
    assert_eq!(victim.len(), 1, "{victim:?}");
    kill(Pid::from_raw(victim[0]), Signal::SIGKILL).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(12);
    let mut checks = 0;
    while std::time::Instant::now() < until {
        for n in ["n1", "n2"] {
            let (ready, tainted) = node_ready(home, conf, n);
            assert!(
                ready == "True" || ready == "?",
                "{n} went {ready} after a master failover"
            );
            assert!(!tainted, "{n} tainted after a master failover");
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(checks > 5, "{checks} checks");
    drop(admin);

    // Freeze n2's agent (its pod keeps running): within 15 s it is
    // Ready=Unknown, tainted, and its pod is marked for deletion.
    let agent = up.master_pids("n2");
    assert_eq!(agent.len(), 1, "{agent:?}");
    kill(Pid::from_raw(agent[0]), Signal::SIGSTOP).unwrap();
    let frozen = std::time::Instant::now();
    poll(
        "n2 unreachable and its pod marked",
        Duration::from_secs(30),
        || {
            let (ready, tainted) = node_ready(home, conf, "n2");
            let marked = pod(home, conf, "on-n2")
                .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some());
            verdict(ready == "Unknown" && tainted && marked, || {
                format!("ready={ready} tainted={tainted} marked={marked}")
            })
        },
    )
    .await;
    let took = frozen.elapsed();
    eprintln!("node frozen -> Unknown, tainted, pod marked: {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    // Marked as Kubernetes' taint eviction marks it before the delete.
    let marked = pod(home, conf, "on-n2").expect("on-n2 terminating");
    let disruption = marked["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .unwrap_or_else(|| panic!("no DisruptionTarget: {marked:#}"));
    assert_eq!(disruption["status"], "True");
    assert_eq!(disruption["reason"], "DeletionByTaintManager");
    assert_eq!(
        disruption["message"],
        "Taint manager: deleting due to NoExecute taint"
    );
    assert_eq!(
        node_ready(home, conf, "n1"),
        ("True".to_string(), false),
        "n1 untouched"
    );

    // Thawed: the agent stops the marked pod and removes it; the node is
    // Ready again and untainted.
    kill(Pid::from_raw(agent[0]), Signal::SIGCONT).unwrap();
    poll("n2 back and its pod gone", T, || {
        let (ready, tainted) = node_ready(home, conf, "n2");
        let gone = pod(home, conf, "on-n2").is_none();
        verdict(ready == "True" && !tainted && gone, || {
            format!("ready={ready} tainted={tainted} gone={gone}")
        })
    })
    .await;
    assert!(
        container_pids("marker-on-n2").is_empty(),
        "the evicted pod's process is left"
    );
}

/// The masters named in `node tunnel open master=ADDR` lines of a node's log.
fn tunnel_masters(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("node tunnel open"))
        .filter_map(|l| {
            let rest = l.split("master=").nth(1)?;
            Some(
                rest.split(|c: char| c.is_whitespace() || c == '\u{1b}')
                    .next()?
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .collect()
}

fn steady_pod(flag: &Path) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 0.2; done", "marker-steady"]
    readinessProbe: {{exec: {{command: ["test", "-e", "{}"]}}, periodSeconds: 1}}
"#,
        flag.display()
    )
}

/// A pod on n1 with a volume of each kind mounted under ROOT (a directory
/// the host does not have): deleting it leaves nothing there.
const LATE_ON_N1: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: late-config}
data: {"one.txt": "1", "two.txt": "2"}
---
apiVersion: v1
kind: Secret
metadata: {name: late-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: config, configMap: {name: late-config}}
  - {name: secret, secret: {secretName: late-secret}}
  - name: all
    projected:
      sources:
      - configMap: {name: late-config}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "echo late-pod-says-hello; cat ROOT/files/one.txt; echo; cat ROOT/all/name; echo; while true; do sleep 0.2; done", "marker-late"]
    volumeMounts:
    - {name: scratch, mountPath: ROOT/scratch}
    - {name: config, mountPath: ROOT/conf/app}
    - {name: secret, mountPath: ROOT/sec/ret}
    - {name: all, mountPath: ROOT/all}
    - {name: config, mountPath: ROOT/files/one.txt, subPath: one.txt}
"#;

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// SIGKILL of the master a node's tunnel is connected to: the node moves to
/// another master, stays Ready throughout, its pod keeps running (same
/// process) and its status keeps updating (it turns Ready afterwards), a new
/// pod bound to it starts, and `ferry logs` reaches it over the new tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_moves_to_another_master_when_its_master_dies() {
    let mut c = LocalUp::start().await;
    let (home, dir, up) = (&c.home, &c.dir, &mut c.up);
    let conf = &c.conf;
    let flag = home.join("steady-ready");
    apply(home, conf, &steady_pod(&flag));
    let p = wait_pod(home, conf, "steady", "steady Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    assert!(!is_ready(&p), "not Ready before its flag exists");
    let pids = container_pids("marker-steady");
    assert_eq!(pids.len(), 1, "{pids:?}");

    let log = dir.join("n1").join("node.log");
    let before = tunnel_masters(&log);
    let master = before.last().cloned().expect("n1's tunnel is open");
    // The master listening there (the others may name it in `--join`).
    let victim: Vec<i32> = pids_with_arg(&master)
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"--listen" && w[1] == master.as_bytes())
        })
        .collect();
    assert_eq!(
        victim.len(),
        1,
        "one master listens on {master}: {victim:?}"
    );
    kill(Pid::from_raw(victim[0]), Signal::SIGKILL).unwrap();
    let killed = std::time::Instant::now();

    // For 12 s (longer than the node grace period) n1 is never anything
    // but Ready, never tainted; meanwhile its tunnel opens on another master.
    let mut moved: Option<(Duration, String)> = None;
    let mut checks = 0;
    while killed.elapsed() < Duration::from_secs(12) {
        let (ready, tainted) = node_ready(home, conf, "n1");
        assert!(
            ready == "True" || ready == "?",
            "n1 went {ready} after its master died"
        );
        assert!(!tainted, "n1 tainted after its master died");
        if moved.is_none() {
            let now = tunnel_masters(&log);
            if now.len() > before.len() {
                moved = Some((killed.elapsed(), now.last().cloned().unwrap()));
            }
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(checks > 10, "{checks} checks");
    let (took, to) = moved.expect("n1's tunnel reopened within 12 s");
    eprintln!("n1's tunnel moved from {master} to {to} {took:?} after the kill");
    assert_ne!(to, master, "the tunnel moved to another master");

    // Its pod kept running, and its status still updates: it turns Ready.
    assert_eq!(container_pids("marker-steady"), pids, "same process");
    std::fs::write(&flag, b"").unwrap();
    wait_pod(home, conf, "steady", "steady Ready", is_ready).await;

    // A new pod bound to n1 starts, and its log comes over the new tunnel.
    let root = format!("/ferry-e2e-mounts-{}", rand::random::<u32>());
    apply(home, conf, &LATE_ON_N1.replace("ROOT", &root));
    wait_pod(home, conf, "late", "late Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    poll("ferry logs late", T, || {
        let r = ferry(home, conf, &["logs", "late"]);
        verdict(r.stdout.contains("late-pod-says-hello\n1\nlate\n"), || {
            format!("{}{}", r.stdout, r.stderr)
        })
    })
    .await;
    assert_eq!(container_pids("marker-steady"), pids, "same process");

    // Deleted, the pod leaves nothing on the host: not its mount targets
    // (nor the directories made for them), not its directory on the node.
    assert!(Path::new(&root).join("conf/app").is_dir(), "{root} made");
    let uid = pod(home, conf, "late").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    ok(home, conf, &["delete", "pod", "late"]);
    poll("late gone", T, || {
        let gone = pod(home, conf, "late").is_none();
        gone.then_some(()).ok_or_else(|| "still there".to_string())
    })
    .await;
    poll("late's host paths removed", Duration::from_secs(10), || {
        let left: Vec<String> = [
            Path::new(&root).to_path_buf(),
            dir.join("n1").join("pods").join(&uid),
        ]
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
        verdict(left.is_empty(), || format!("left: {left:?}"))
    })
    .await;
    up.stop_gracefully().await;
}

const RENEWER_ON_N1: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: renewer}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 0.2; done", "marker-renewer"]
"#;

fn on_n1(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 0.2; done"]
"#
    )
}

/// n1's certificate as `node.conf` holds it: (PEM, not before, not after).
fn n1_cert(dir: &Path) -> (String, std::time::SystemTime, std::time::SystemTime) {
    let cfg = ferry_config::ClientConfig::load(&dir.join("n1").join("node.conf"))
        .expect("n1's node.conf");
    let (from, to) = ferry_api::tls::validity(&cfg.client_cert).expect("a certificate");
    (cfg.client_cert, from, to)
}

/// With 20 s node certificates (`FERRY_NODE_CERT_SECONDS`), a node renews
/// its certificate at two thirds of its life over its own connection, again
/// and again, without a restart: it stays Ready, its pod keeps its process,
/// and after the first certificate has expired and every master has been
/// SIGKILLed in turn (every connection made again), a new pod bound to it
/// starts;
/// SIGKILLed, the agent comes back on the renewed certificate from its data
/// dir, re-adopts its pod and keeps renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificate_and_keeps_working_across_a_restart() {
    let mut c = LocalUp::start_env(&[
        ("FERRY_NODE_CERT_SECONDS", "20"),
        ("FERRY_NODE_CERT_MIN_SECONDS", "10"),
    ])
    .await;
    let (home, dir, up) = (&c.home, &c.dir, &mut c.up);
    let conf = &c.conf;
    let (first, from, to) = n1_cert(dir);
    let life = to.duration_since(from).unwrap();
    assert!(
        life <= Duration::from_secs(60),
        "a short certificate: {life:?}"
    );
    apply(home, conf, RENEWER_ON_N1);
    wait_pod(home, conf, "renewer", "renewer Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    let pids = container_pids("marker-renewer");
    assert_eq!(pids.len(), 1, "{pids:?}");

    // Past the first certificate's expiry: renewed at least twice, Ready all along.
    let log = dir.join("n1").join("node.log");
    let renewals = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("node certificate renewed")
            .count()
    };
    let mut checks = 0;
    let watched = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < watched
        || std::time::SystemTime::now() < to + Duration::from_secs(5)
        || renewals(&log) < 2
    {
        assert!(
            std::time::SystemTime::now() < to + Duration::from_secs(60),
            "n1 renewed {} times; log:\n{}",
            renewals(&log),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let (ready, tainted) = node_ready(home, conf, "n1");
        assert!(ready == "True" || ready == "?", "n1 went {ready}");
        assert!(!tainted, "n1 tainted");
        checks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(checks > 10, "{checks} checks");
    let (renewed, _, renewed_to) = n1_cert(dir);
    assert_ne!(renewed, first, "node.conf holds a new certificate");
    assert!(renewed_to > to, "the new certificate lasts longer");
    assert_eq!(container_pids("marker-renewer"), pids, "same process");
    // Every connection n1 holds must now be made again, on the renewed
    // certificate (its first one has expired): each master in turn is
    // SIGKILLed (`ferry up` restarts it).
    for m in ["m1", "m2", "m3"] {
        let before = up.master_pids(m);
        assert_eq!(before.len(), 1, "{m}: {before:?}");
        let old = before[0];
        kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
        poll(&format!("{m} restarted"), T, || {
            let now = up.master_pids(m);
            match now.as_slice() {
                [p] if *p != old => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    apply(home, conf, &on_n1("after-expiry"));
    wait_pod(home, conf, "after-expiry", "after-expiry Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;

    // SIGKILL the agent: `ferry up` restarts it, on the renewed certificate.
    let agent = up.master_pids("n1");
    assert_eq!(agent.len(), 1, "{agent:?}");
    let old = agent[0];
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let before = renewals(&log);
    poll("n1's agent back", T, || {
        let back = up.master_pids("n1");
        match back.as_slice() {
            [p] if *p != old => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    apply(home, conf, &on_n1("after-restart"));
    wait_pod(home, conf, "after-restart", "after-restart Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    assert_eq!(
        container_pids("marker-renewer"),
        pids,
        "re-adopted, same process"
    );
    poll(
        "a renewal after the restart",
        Duration::from_secs(60),
        || {
            let n = renewals(&log);
            verdict(n > before, || format!("{n} renewals"))
        },
    )
    .await;
    assert_eq!(node_ready(home, conf, "n1"), ("True".to_string(), false));
    up.stop_gracefully().await;
}

const LEFTOVERS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  volumes: [{name: d, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'id -u; id -g; id -G; touch /data-7305/f && echo wrote; while true; do sleep 0.2; done']
    volumeMounts: [{name: d, mountPath: /data-7305}]
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'while true; do sleep 0.2; done']
    volumeMounts: [{name: v, mountPath: /hook-7304}]
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'sleep 1; echo post-start-ran > /hook-7304/mark']}}
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'while true; do sleep 0.2; done']
    lifecycle:
      postStart: {exec: {command: ["false"]}}
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: nginx, command: [no-such-program-7303]}
---
apiVersion: v1
kind: Pod
metadata: {name: bg}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: [sh, -c, 'sleep 7301.25 & echo started; pwd; echo home=$HOME; exit 3']}
---
apiVersion: v1
kind: Pod
metadata: {name: loop}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: busybox, command: [sh, -c, 'while true; do sleep 1; done', marker-leftover-loop]}
"#;

/// A container runs as its securityContext's user, or refuses a root one
/// under runAsNonRoot. It starts in `/` with HOME set, as from an image, after its
/// postStart hook (a failing one restarts it); one whose command is missing
/// ends in StartError. And its
/// processes end with it, as a pod's PID namespace ends in
/// Kubernetes: a background child when the command exits (it held the
/// output open, and the pod stayed Running), the container when its shim is
/// SIGKILLed (it ran on beside the restarted copy), and what `kubectl exec`
/// started (it outlived the pod, outside the container's cgroup). And
/// `kubectl exec -it` gives the command a controlling terminal: Ctrl-C
/// interrupts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_processes_end_with_it_and_with_its_shim() {
    let c = LocalUp::start().await;
    let (home, conf, k) = (&c.home, &c.conf, &c.k);
    apply(home, conf, LEFTOVERS);

    let bg = wait_pod(home, conf, "bg", "bg to fail with exit code 3", |p| {
        p["status"]["phase"] == "Failed"
    })
    .await;
    let term = &bg["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 3, "{bg}");
    assert!(
        container_pids("7301.25").is_empty(),
        "the background child outlived its container"
    );
    // A command that is not there never starts: StartError, as Kubernetes
    // reports the runtime's failure (not the exit code of a shell).
    let nocmd = wait_pod(home, conf, "nocmd", "nocmd to fail", |p| {
        p["status"]["phase"] == "Failed"
    })
    .await;
    let term = &nocmd["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["reason"], "StartError", "{nocmd}");
    assert_eq!(term["exitCode"], 128, "{nocmd}");
    assert_eq!(
        term["message"],
        "failed to start container: exec: \"no-such-program-7303\": executable file not found in $PATH",
        "{nocmd}"
    );
    // postStart runs in the container once it starts, before it counts as
    // Running; a failing one kills the run, which restarts.
    wait_pod(home, conf, "hooked", "hooked to run", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    })
    .await;
    assert_eq!(
        k.ok(&["exec", "hooked", "--", "cat", "/hook-7304/mark"]),
        "post-start-ran\n"
    );
    wait_pod(
        home,
        conf,
        "badhook",
        "badhook restarted after its hook failed",
        |p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1),
    )
    .await;
    let events = wait_event(
        home,
        conf,
        "badhook",
        "FailedPostStartHook",
        "spec.containers{c}",
    )
    .await;
    let failed = the_event(&events, "FailedPostStartHook", "spec.containers{c}");
    assert_eq!(failed["message"], "PostStartHook failed");
    // securityContext: the user, group and groups it names; runAsNonRoot
    // refuses the images' root user in the kubelet's words.
    wait_pod(home, conf, "sec", "sec to run", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    })
    .await;
    let log = poll("sec's output", T, || {
        let l = k.run(&["logs", "sec"], None).stdout;
        if l.contains("wrote") {
            Ok(l)
        } else {
            Err(l)
        }
    })
    .await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(&lines[..2], ["1000", "3000"], "{log}");
    assert!(lines[2].split_whitespace().any(|g| g == "2000"), "{log}");
    assert_eq!(
        k.ok(&["exec", "sec", "--", "id", "-u"]),
        "1000\n",
        "exec runs as the container's user"
    );
    let nonroot = wait_pod(home, conf, "nonroot", "nonroot refused", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    })
    .await;
    let msg = nonroot["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"nonroot_default("
        ),
        "{msg}"
    );
    // As an image's defaults: the working directory `/` (not the agent's
    // pod directory), HOME that of root.
    assert_eq!(k.ok(&["logs", "bg"]), "started\n/\nhome=/root\n");

    wait_pod(home, conf, "loop", "loop to run", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    let first = container_pids("marker-leftover-loop");
    assert_eq!(first.len(), 1, "one container process: {first:?}");
    let shim = pids_with_arg("marker-leftover-loop")
        .into_iter()
        .find(|p| !first.contains(p))
        .expect("the shim");
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    poll("the container restarted alone", T, || {
        let now = container_pids("marker-leftover-loop");
        let p = pod(home, conf, "loop").unwrap_or_default();
        let restarts = p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        if restarts >= 1 && now.len() == 1 && now[0] != first[0] {
            Ok(())
        } else {
            Err(format!("restarts {restarts}, container processes {now:?}"))
        }
    })
    .await;

    // What an exec starts in the background runs in the container's cgroup
    // and ends with it.
    k.ok(&[
        "exec",
        "loop",
        "--",
        "sh",
        "-c",
        "sleep 7302.25 > /dev/null 2>&1 &",
    ]);
    assert_eq!(container_pids("7302.25").len(), 1, "the exec'd sleep runs");
    assert_eq!(
        k.ok(&["exec", "loop", "--", "sh", "-c", "pwd; echo home=$HOME"]),
        "/\nhome=/root\n"
    );
    // `kubectl exec -it`: Ctrl-C interrupts the command (exit 130).
    let kubectl = format!(
        "kubectl --kubeconfig {} exec -it loop -- sh -c 'sleep 12; echo finished'",
        k.kubeconfig
    );
    let started = std::time::Instant::now();
    let o = crate::kubectl::run(
        home,
        "sh",
        &[
            "-c",
            &format!("(sleep 3; printf '\\003'; sleep 1) | script -qec \"{kubectl}\" /dev/null"),
        ],
        None,
    );
    assert!(
        !o.stdout.contains("finished"),
        "Ctrl-C did not interrupt: {}",
        o.stdout
    );
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "exec -it ran on after Ctrl-C: {:?}",
        started.elapsed()
    );
    k.ok(&["delete", "pod", "loop", "--wait=true"]);
    poll("the exec'd process gone with the pod", T, || {
        let left = container_pids("7302.25");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?}"))
        }
    })
    .await;
}
