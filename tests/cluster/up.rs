//! `ferry up`: a supervised local cluster that restarts a killed master and
//! takes every master down with it on SIGINT or SIGTERM; on it, the `ferry kv`
//! commands (put, get, txn, del, watch) and `ferry cluster remove`'s refusal to
//! leave an even number of voters.

use crate::harness::{serial, wait_until};
use crate::procs::{ferry_cmd, free_ports, free_tcp_ports, pids_with_arg, run_ferry, tail};
use ferry_api::proto::ClusterStatus;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// A running `ferry up`; on drop it and every master under its dir are SIGKILLed.
pub struct Up {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
    /// The local Kubernetes API port (`https://127.0.0.1:PORT`).
    pub https_port: u16,
}

impl Up {
    pub fn start(home: &Path, dir: &Path, port: u16, run: usize) -> Up {
        Up::start_env(home, dir, port, run, &[])
    }

    /// [`Up::start`] with environment variables for `ferry up` and all it starts.
    pub fn start_env(home: &Path, dir: &Path, port: u16, run: usize, env: &[(&str, &str)]) -> Up {
        Up::start_full(home, dir, port, run, env, &[])
    }

    /// [`Up::start`] with more `ferry up` flags (`--nodes 0`).
    pub fn start_args(home: &Path, dir: &Path, port: u16, run: usize, args: &[&str]) -> Up {
        Up::start_full(home, dir, port, run, &[], args)
    }

    pub fn start_full(
        home: &Path,
        dir: &Path,
        port: u16,
        run: usize,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Up {
        let log = home.join(format!("up-{run}.log"));
        let out = std::fs::File::create(&log).expect("log");
        // The front end and one port per master.
        let https_port = free_tcp_ports(8);
        let child = ferry_cmd(home)
            .envs(env.iter().copied())
            .args([
                "up",
                "--dir",
                dir.to_str().unwrap(),
                "--port",
                &port.to_string(),
                "--https-port",
                &https_port.to_string(),
            ])
            .args(args)
            .stdout(out.try_clone().expect("fd"))
            .stderr(out)
            .spawn()
            .expect("spawn ferry up");
        Up {
            child: Some(child),
            dir: dir.to_path_buf(),
            log,
            https_port,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let what = format!("`{needle}` in the ferry up output");
        wait_until(&what, timeout, || {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            let log = self.log();
            async move {
                if log.contains(needle) {
                    return Ok(());
                }
                match exited {
                    Some(s) => panic!("ferry up exited ({s}) before `{needle}`:\n{log}"),
                    None => Err("not yet".to_string()),
                }
            }
        })
        .await
    }

    /// The `ferry up` process's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn master_pids(&self, name: &str) -> Vec<i32> {
        pids_with_arg(self.dir.join(name).to_str().unwrap())
    }

    /// Stops `ferry up` as Ctrl-C would (see [`Up::stop`]).
    pub async fn stop_gracefully(&mut self) {
        self.stop(Signal::SIGINT).await
    }

    /// Sends `sig` to `ferry up` and waits for it to exit 0 and every master to be gone.
    async fn stop(&mut self, sig: Signal) {
        let mut child = self.child.take().expect("running");
        let start = std::time::Instant::now();
        kill(Pid::from_raw(child.id() as i32), sig).expect("signal ferry up");
        let status = wait_until("ferry up to exit", Duration::from_secs(30), || {
            let r = child.try_wait().map_err(|e| e.to_string());
            async move { r?.ok_or_else(|| "still running".to_string()) }
        })
        .await;
        // Its masters drain and stop in well under a second each (they took 10 s
        // when a leftover store handle kept their storage busy).
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "ferry up took {took:?} to stop on {sig}:\n{}",
            self.log()
        );
        assert!(
            status.success(),
            "ferry up exited with {status} on {sig}:\n{}",
            self.log()
        );
        let left: Vec<i32> = ["m1", "m2", "m3", "n1", "n2"]
            .iter()
            .flat_map(|m| self.master_pids(m))
            .collect();
        assert!(
            left.is_empty(),
            "masters or nodes {left:?} outlived ferry up after {sig}"
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in ["m1", "m2", "m3", "n1", "n2"] {
            for pid in self.master_pids(m) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for n in ["n1", "n2"] {
            ferry_node::runtime::kill_all(&self.dir.join(n).join("pods"));
            // Nothing of a killed cluster's pod network stays on the machine.
            let key = ferry_node::net::host_key_in(&self.dir.join(n), n);
            let _ = ferry_node::net::proxy::delete_table(&key);
            let _ = ferry_node::net::podnet::teardown_node(&self.dir.join(n), &key);
        }
        if std::thread::panicking() {
            eprintln!("---- ferry up output:\n{}", tail(&self.log, 40));
            for m in ["m1", "m2", "m3"] {
                let log = self.dir.join(m).join("master.log");
                eprintln!("---- {m} log tail:\n{}", tail(&log, 40));
            }
            for n in ["n1", "n2"] {
                let log = self.dir.join(n).join("node.log");
                eprintln!("---- {n} log tail:\n{}", tail(&log, 40));
            }
        }
    }
}

fn cluster_status(home: &Path, conf: &str) -> Result<ClusterStatus, String> {
    let ran = run_ferry(
        home,
        &["--config", conf, "cluster", "status", "-o", "json"],
        Duration::from_secs(30),
    );
    if !ran.status.success() {
        return Err(ran.stderr);
    }
    serde_json::from_str(&ran.stdout).map_err(|e| format!("{e}: {}", ran.stdout))
}

/// A master removed from the cluster stops with its own exit code, and
/// `ferry up` says so once and leaves it stopped (it restarted it forever,
/// each start finding out again that it was removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_leaves_a_removed_master_stopped() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let dir = home.join("local");
    let port = free_ports(3);
    let mut up = Up::start_args(home, &dir, port, 1, &["--nodes", "0"]);
    up.wait_log("is up", Duration::from_secs(120)).await;
    let conf = dir.join("admin.conf");
    let conf = conf.to_str().unwrap();
    // A follower (pausing the leader would stall the removal itself).
    let status = cluster_status(home, conf).expect("cluster status");
    let (name, id) = (1..=3)
        .rev()
        .find_map(|k| {
            let addr = format!("127.0.0.1:{}", port + k - 1);
            let m = status.members.iter().find(|m| m.addr == addr)?;
            (Some(m.id) != status.leader).then(|| (format!("m{k}"), m.id))
        })
        .unwrap_or_else(|| panic!("no follower: {status:?}"));
    let m3 = up.master_pids(&name);
    assert_eq!(m3.len(), 1, "expected one {name} process, found {m3:?}");
    // Paused while it is removed, it misses the change; resumed, it hears
    // from no leader, asks the others, and learns it was removed.
    kill(Pid::from_raw(m3[0]), Signal::SIGSTOP).expect("pause the follower");
    let removed = run_ferry(
        home,
        &[
            "--config",
            conf,
            "cluster",
            "remove",
            &id.to_string(),
            "--force",
        ],
        Duration::from_secs(30),
    );
    kill(Pid::from_raw(m3[0]), Signal::SIGCONT).expect("resume the follower");
    assert!(
        removed.status.success(),
        "cluster remove: {}{}",
        removed.stdout,
        removed.stderr
    );
    up.wait_log(
        &format!("master {name} (pid {}) was removed from the cluster", m3[0]),
        Duration::from_secs(60),
    )
    .await;
    let master_log = dir.join(&name).join("master.log");
    assert!(
        std::fs::read_to_string(&master_log)
            .unwrap_or_default()
            .contains("this master was removed from the cluster"),
        "{}",
        tail(&master_log, 20)
    );
    // It stays stopped: no restart, the reason said once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        up.master_pids(&name).is_empty(),
        "{name} was started again: {:?}\n{}",
        up.master_pids(&name),
        up.log()
    );
    let log = up.log();
    assert_eq!(
        log.matches("was removed from the cluster").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("not restarting it") && !log.contains(&format!("master {name} restarted")),
        "{log}"
    );
    // The two masters left serve.
    let put = run_ferry(
        home,
        &["--config", conf, "kv", "put", "after-remove", "x"],
        Duration::from_secs(30),
    );
    assert!(put.status.success(), "kv put: {}", put.stderr);
    up.stop_gracefully().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_supervises_its_masters_and_stops_them_all() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let dir = home.join("local");
    let port = free_ports(3);
    let mut up = Up::start(home, &dir, port, 1);
    up.wait_log("is up", Duration::from_secs(120)).await;
    assert!(
        home.join(".ferry/config").exists(),
        "ferry up did not write ~/.ferry/config"
    );

    let conf = dir.join("admin.conf");
    let conf = conf.to_str().unwrap();
    // Once `up` says so, manifests can go into `default` at once.
    let ns = run_ferry(
        home,
        &[
            "--config",
            conf,
            "get",
            "namespace",
            "default",
            "-o",
            "name",
        ],
        Duration::from_secs(30),
    );
    assert!(
        ns.status.success() && ns.stdout == "namespace/default\n",
        "namespace default missing right after up: {} {}",
        ns.stdout,
        ns.stderr
    );
    let put = run_ferry(
        home,
        &["--config", conf, "kv", "put", "greeting", "hello world"],
        Duration::from_secs(30),
    );
    assert!(put.status.success(), "kv put failed: {}", put.stderr);
    let get = run_ferry(
        home,
        &["--config", conf, "kv", "get", "greeting"],
        Duration::from_secs(30),
    );
    assert!(get.status.success(), "kv get failed: {}", get.stderr);
    assert_eq!(
        get.stdout, "hello world\n",
        "kv get must print the value alone"
    );
    let missing = run_ferry(
        home,
        &["--config", conf, "kv", "get", "no-such-key"],
        Duration::from_secs(30),
    );
    assert_eq!(
        missing.status.code(),
        Some(1),
        "get of a missing key: {}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("not found"),
        "stderr: {}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty(), "stdout: {}", missing.stdout);
    // Without --config, ~/.ferry/config (written by ferry up) is used.
    let get = run_ferry(home, &["kv", "get", "greeting"], Duration::from_secs(30));
    assert_eq!(
        get.stdout, "hello world\n",
        "default config: {}",
        get.stderr
    );

    // kv txn (stdin, all or nothing), kv del, kv watch from a revision.
    let txn = |ops: &str| {
        use std::io::Write as _;
        let mut c = ferry_cmd(home)
            .args(["--config", conf, "kv", "txn"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kv txn");
        c.stdin.take().unwrap().write_all(ops.as_bytes()).unwrap();
        c.wait_with_output().expect("kv txn")
    };
    let done = txn("put t/a 1 @new\nput t/b 2 @new\n");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let first: u64 = String::from_utf8_lossy(&done.stdout)
        .trim()
        .strip_prefix("OK revision=")
        .and_then(|r| r.parse().ok())
        .expect("kv txn prints OK revision=N");
    let refused = txn("put t/c 3 @new\nput t/a 9 @new\n");
    assert_eq!(refused.status.code(), Some(1));
    for key in ["t/a", "t/c"] {
        let r = run_ferry(
            home,
            &["--config", conf, "kv", "get", key],
            Duration::from_secs(30),
        );
        let want = if key == "t/a" { "1\n" } else { "" };
        assert_eq!(r.stdout, want, "{key} after a refused txn: {}", r.stderr);
    }
    let del = run_ferry(
        home,
        &["--config", conf, "kv", "del", "t/b"],
        Duration::from_secs(30),
    );
    assert!(del.status.success(), "kv del: {}", del.stderr);
    let watched = run_ferry(
        home,
        &[
            "--config",
            conf,
            "kv",
            "watch",
            "t/",
            "--rev",
            &first.to_string(),
            "--count",
            "3",
        ],
        Duration::from_secs(30),
    );
    let lines: Vec<&str> = watched.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}{}", watched.stdout, watched.stderr);
    assert_eq!(lines[0], format!("PUT t/a rev={first} 1"));
    assert_eq!(lines[1], format!("PUT t/b rev={first} 2"));
    assert!(lines[2].starts_with("DELETE t/b rev="), "{}", lines[2]);
    // Removing a master from three would leave an even number of voters.
    let even = run_ferry(
        home,
        &["--config", conf, "cluster", "remove", "3"],
        Duration::from_secs(30),
    );
    assert_eq!(even.status.code(), Some(1), "{}", even.stdout);
    assert!(even.stderr.contains("pass --force"), "{}", even.stderr);
    assert_eq!(cluster_status(home, conf).map(|s| s.members.len()), Ok(3));

    // SIGKILL one master: ferry up reports it and restarts it.
    let victim = up.master_pids("m2");
    assert_eq!(victim.len(), 1, "expected one m2 process, found {victim:?}");
    kill(Pid::from_raw(victim[0]), Signal::SIGKILL).expect("kill m2");
    up.wait_log("master m2 restarted", Duration::from_secs(30))
        .await;
    assert!(
        up.log()
            .contains(&format!("master m2 (pid {}) exited", victim[0])),
        "{}",
        up.log()
    );
    let again = up.master_pids("m2");
    assert!(
        again.len() == 1 && again != victim,
        "m2 not restarted: {again:?}"
    );
    let s = wait_until(
        "cluster status to show 3 voters with a leader",
        Duration::from_secs(60),
        || async {
            let s = cluster_status(home, conf)?;
            if s.leader.is_some() && s.members.len() == 3 && s.members.iter().all(|m| m.voter) {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    // The restarted master serves again: a put through the cluster is readable on it.
    let put = run_ferry(
        home,
        &["--config", conf, "kv", "put", "after", "restart"],
        Duration::from_secs(30),
    );
    assert!(put.status.success(), "kv put after restart: {}", put.stderr);
    let m2 = format!("127.0.0.1:{}", port + 1);
    assert!(
        s.members.iter().any(|m| m.addr == m2 && m.voter),
        "m2 not a voter: {s:?}"
    );
    let only_m2 = home.join("m2-only.conf");
    let text = std::fs::read_to_string(conf).expect("admin.conf");
    let mut cfg: ferry_config::ClientConfig = toml::from_str(&text).expect("admin.conf parses");
    cfg.masters = vec![m2];
    std::fs::write(&only_m2, cfg.to_toml()).expect("write m2-only.conf");
    let only_m2 = only_m2.to_str().unwrap();
    wait_until(
        "the restarted m2 to apply a later write",
        Duration::from_secs(30),
        || async {
            let args = ["--config", only_m2, "kv", "get", "--serializable", "after"];
            let get = run_ferry(home, &args, Duration::from_secs(30));
            match get.stdout.as_str() {
                "restart\n" => Ok(()),
                _ => Err(format!("{}{}", get.stdout, get.stderr)),
            }
        },
    )
    .await;
    up.stop(Signal::SIGINT).await;

    // A second run on the same dir restarts the cluster with its data; SIGTERM stops it.
    let mut up = Up::start(home, &dir, port, 2);
    up.wait_log("is up", Duration::from_secs(120)).await;
    let get = run_ferry(
        home,
        &["--config", conf, "kv", "get", "after"],
        Duration::from_secs(30),
    );
    assert_eq!(
        get.stdout, "restart\n",
        "data after ferry up restart: {}",
        get.stderr
    );
    // Its nodes came back with their stored credentials; a pod runs on one,
    // and stopping `ferry up` stops the pod's processes too.
    let pod = home.join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: n1\n  containers:\n  - {name: c, image: busybox, command: [/bin/sh, -c, 'while true; do sleep 0.2; done', marker-up-pod]}\n",
    )
    .unwrap();
    crate::procs::ok(home, conf, &["apply", "-f", pod.to_str().unwrap()]);
    wait_until("the pod's process", Duration::from_secs(60), || {
        let running = !pids_with_arg("marker-up-pod").is_empty();
        async move {
            if running {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await;
    up.stop(Signal::SIGTERM).await;
    assert!(
        pids_with_arg("marker-up-pod").is_empty(),
        "the pod's processes outlived ferry up"
    );
}

/// While `ferry up` runs, a second one on its dir and a second agent on a
/// node's data dir are refused, each naming the process that holds it; and a
/// SIGKILLed `ferry up` takes its masters and nodes with it (before, they
/// ran on without a supervisor, and the next `ferry up` restarted masters
/// that found their ports taken, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ferry_up_leaves_nothing_running_and_a_second_one_is_refused() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let dir = home.join("local");
    let port = free_ports(3);
    let mut up = Up::start(home, &dir, port, 1);
    up.wait_log("is up", Duration::from_secs(120)).await;
    let pid = up.pid().to_string();

    let other = free_ports(3).to_string();
    let other_https = free_tcp_ports(8).to_string();
    let d = dir.to_str().unwrap();
    let second = run_ferry(
        home,
        &[
            "up",
            "--dir",
            d,
            "--port",
            &other,
            "--https-port",
            &other_https,
        ],
        Duration::from_secs(30),
    );
    assert!(
        !second.status.success(),
        "a second ferry up ran: {}",
        second.stdout
    );
    assert!(
        second.stderr.contains(&format!(
            "the local cluster in {d} is in use by process {pid}"
        )),
        "{}",
        second.stderr
    );
    let n1 = dir.join("n1");
    let agent = run_ferry(
        home,
        &["node", "--data-dir", n1.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(
        !agent.status.success(),
        "a second agent ran: {}",
        agent.stdout
    );
    let n1_pid = up.master_pids("n1");
    assert!(
        n1_pid
            .iter()
            .any(|p| agent.stderr.contains(&format!("is in use by process {p}"))),
        "{} (n1: {n1_pid:?})",
        agent.stderr
    );

    kill(Pid::from_raw(up.pid()), Signal::SIGKILL).expect("SIGKILL ferry up");
    wait_until(
        "every master and node to stop after ferry up's SIGKILL",
        Duration::from_secs(20),
        || {
            let left: Vec<i32> = ["m1", "m2", "m3", "n1", "n2"]
                .iter()
                .flat_map(|m| up.master_pids(m))
                .collect();
            async move {
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still running: {left:?}"))
                }
            }
        },
    )
    .await;
}
