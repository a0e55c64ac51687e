//! A multi-process harness: real `ferry master` processes on loopback, each with
//! a temp data dir and a log file, that tests can SIGKILL, SIGSTOP/SIGCONT and
//! restart on the same port and data dir. Every wait has a deadline that fails
//! the test with a message; on a failed test the log tails are printed.

use crate::kubectl::Kubectl;
use crate::procs::{ferry_cmd, free_ports, tail};
use crate::up::Up;
use ferry_actors::master::identity::DataDir;
use ferry_api::kv::{Expect, KeyValue};
use ferry_api::proto::{ApiRequest, ApiResponse, ClusterStatus, Consistency, RangeRequest};
use ferry_api::Client;
use ferry_config::ClientConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tests in this binary start several masters each; on a 2-core machine they
/// run one at a time so that failover timing is not at the mercy of a sibling test.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the lock that runs this binary's cluster tests one at a time.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Polls `f` every 100 ms until it returns `Ok`, or panics after `timeout`
/// naming `what` and the last error.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// [`wait_until`] for a check that blocks (kubectl, `ferry` commands, /proc):
/// `check` runs once a poll.
pub async fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    wait_until(what, timeout, || {
        let r = check();
        async move { r }
    })
    .await
}

/// `Ok(())` when `ok`, else the error `why` gives (a poll's verdict).
pub fn verdict(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// What the end-to-end tests start from: `ferry up` (3 masters, 2 real
/// nodes) in a temp dir, up, with kubectl on it. It holds the tests' serial
/// lock; on drop `ferry up` and everything it started are killed before the
/// directory is removed and the lock released.
pub(crate) struct LocalUp {
    /// The running `ferry up`.
    pub up: Up,
    /// kubectl on its kubeconfig.
    pub k: Kubectl,
    /// HOME of every command the test runs (kubectl's cache, `ferry` output files).
    pub home: PathBuf,
    /// `ferry up --dir`: data dirs, logs, `admin.conf`, `kubeconfig`.
    pub dir: PathBuf,
    /// Its admin client config (`ferry --config`).
    pub conf: String,
    /// The first master's UDP port (`ferry up --port`); the others follow it.
    pub port: u16,
    _tmp: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl LocalUp {
    /// Starts `ferry up` and waits until it says it is up.
    pub async fn start() -> LocalUp {
        LocalUp::start_env(&[]).await
    }

    /// [`LocalUp::start`] with environment variables for `ferry up` and all it starts.
    pub async fn start_env(env: &[(&str, &str)]) -> LocalUp {
        Self::start_full(env, &[]).await
    }

    /// [`LocalUp::start`] with more `ferry up` flags (`--nodes 0`).
    pub async fn start_args(args: &[&str]) -> LocalUp {
        Self::start_full(&[], args).await
    }

    async fn start_full(env: &[(&str, &str)], args: &[&str]) -> LocalUp {
        let serial = serial().await;
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("local");
        let port = free_ports(3);
        let mut up = Up::start_full(tmp.path(), &dir, port, 1, env, args);
        up.wait_log("is up", Duration::from_secs(120)).await;
        let k = Kubectl::of_up(tmp.path(), &dir);
        LocalUp {
            up,
            k,
            home: tmp.path().to_path_buf(),
            conf: dir.join("admin.conf").to_str().unwrap().to_string(),
            port,
            dir,
            _tmp: tmp,
            _serial: serial,
        }
    }

    /// [`LocalUp::start`] where the nodes give pods network namespaces (root):
    /// `None` without root, after saying the test is skipped and `why`.
    pub async fn start_as_root(why: &str) -> Option<LocalUp> {
        if !crate::network::is_root() {
            eprintln!("skipped: {why}");
            return None;
        }
        Some(LocalUp::start().await)
    }

    /// Starts one more real node agent, `name` on `address` in host network
    /// mode, joining with a fresh bootstrap token; `extra` are more `ferry
    /// node` flags. Its log is `<home>/<name>.log`, its data dir `<home>/<name>`.
    pub fn join_node(&self, name: &str, address: &str, extra: &[&str]) -> JoinedNode {
        let home = self.home.as_path();
        let token = crate::procs::ferry(home, &self.conf, &["token", "create", "--ttl", "1h"]);
        assert!(token.status.success(), "{}", token.stderr);
        let admin = ferry_config::ClientConfig::load(std::path::Path::new(&self.conf)).unwrap();
        let data = home.join(name);
        let log = std::fs::File::create(home.join(format!("{name}.log"))).unwrap();
        let child = crate::procs::ferry_cmd(home)
            .args(["node", "--data-dir", data.to_str().unwrap()])
            .args([
                "--join",
                &admin.masters.join(","),
                "--token",
                token.stdout.trim(),
            ])
            .args([
                "--name",
                name,
                "--address",
                address,
                "--pod-network",
                "host",
            ])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        JoinedNode(Some(child), data)
    }

    /// Waits until both nodes have a pod range and run pods in network
    /// namespaces; returns the nodes.
    pub async fn pod_network(&self) -> Vec<serde_json::Value> {
        let what = "both nodes' pod ranges in namespace mode";
        self.k
            .wait_json(what, Duration::from_secs(30), &["get", "nodes"], |n| {
                let items = n["items"].as_array().cloned().unwrap_or_default();
                let ok = items.len() == 2
                    && items.iter().all(|n| {
                        n["spec"]["podCIDR"].is_string()
                            && n["metadata"]["annotations"]["ferry.dev/pod-network"] == "namespaces"
                    });
                let seen: Vec<_> = items
                    .iter()
                    .map(|n| {
                        let m = &n["metadata"];
                        let mode = &m["annotations"]["ferry.dev/pod-network"];
                        format!("{} {} {mode}", m["name"], n["spec"]["podCIDR"])
                    })
                    .collect();
                verdict(ok, || format!("{seen:?}")).map(|()| items)
            })
            .await
    }
}

/// A node agent started by [`LocalUp::join_node`] and its data dir: SIGKILLed
/// when the test ends early; [`JoinedNode::stop`] ends it with SIGTERM. Its
/// pods' processes are killed when it is dropped (they outlive the agent).
pub(crate) struct JoinedNode(Option<std::process::Child>, PathBuf);

impl JoinedNode {
    /// SIGTERM, then waits for it to exit.
    pub fn stop(mut self) {
        if let Some(mut c) = self.0.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// SIGTERM only (a node with a graceful shutdown begins it).
    pub fn sigterm(&self) {
        if let Some(c) = self.0.as_ref() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Whether it has exited, with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for JoinedNode {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        ferry_node::runtime::kill_all(&self.1.join("pods"));
    }
}

/// One `ferry master` process.
pub struct MasterProc {
    /// `m1`, `m2`, ...
    pub name: String,
    /// Its data dir.
    pub data: PathBuf,
    /// `127.0.0.1:PORT`, kept across restarts.
    pub addr: String,
    /// Its log (stdout and stderr, appended across restarts).
    pub log: PathBuf,
    /// Persisted master id, once set up.
    pub id: u64,
    child: Mutex<Option<Child>>,
    stopped: bool,
}

/// A cluster of real master processes.
pub struct Cluster {
    /// Temp dir holding data dirs, logs and HOME.
    pub dir: tempfile::TempDir,
    /// The masters, by index.
    pub masters: Vec<MasterProc>,
    token: String,
    /// Flags every start of every master gets (after `extra`), e.g. `--config FILE`.
    common: Vec<String>,
    /// Environment every start of every master gets.
    env: Vec<(&'static str, &'static str)>,
}

impl Cluster {
    /// Starts `n` masters: the first with `--init`, the rest with `--join`, and
    /// waits until all are voters (or learners, for an even count) with a leader.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &["--init"]).await
    }

    /// [`Cluster::start`] with `init` as the first master's flags (`--init` and more).
    pub async fn start_with(n: usize, init: &[&str]) -> Cluster {
        Cluster::start_configured(n, init, None).await
    }

    /// [`Cluster::start_with`], every master (at every start) reading `config` as its
    /// master config file when given.
    pub async fn start_configured(n: usize, init: &[&str], config: Option<&str>) -> Cluster {
        Cluster::start_full(n, init, config, Vec::new()).await
    }

    /// [`Cluster::start`] whose masters keep an image of their store as of its
    /// last sync (`FERRY_FAULT_SYNC_IMAGE`), for [`Cluster::power_fail`].
    pub async fn start_emulating_power_failures(n: usize) -> Cluster {
        Cluster::start_full(n, &["--init"], None, vec![("FERRY_FAULT_SYNC_IMAGE", "1")]).await
    }

    /// [`Cluster::start`], every master (at every start) with `env` set.
    pub async fn start_with_env(n: usize, env: Vec<(&'static str, &'static str)>) -> Cluster {
        Cluster::start_full(n, &["--init"], None, env).await
    }

    async fn start_full(
        n: usize,
        init: &[&str],
        config: Option<&str>,
        env: Vec<(&'static str, &'static str)>,
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("ferry-cluster-")
            .tempdir()
            .expect("temp dir");
        let base = free_ports(n as u16);
        let masters = (0..n)
            .map(|i| MasterProc {
                name: format!("m{}", i + 1),
                data: dir.path().join(format!("m{}", i + 1)),
                addr: format!("127.0.0.1:{}", base + i as u16),
                log: dir.path().join(format!("m{}.log", i + 1)),
                id: 0,
                child: Mutex::new(None),
                stopped: false,
            })
            .collect();
        // The runtime `ferry up` gives each master: its share of the cores (on
        // 2 cores, one worker thread each).
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let mut common = vec![
            "--worker-threads".to_string(),
            (cores / n).max(1).to_string(),
        ];
        if let Some(config) = config {
            let path = dir.path().join("master.toml");
            std::fs::write(&path, config).expect("write master config");
            common.extend(["--config".to_string(), path.display().to_string()]);
        }
        let mut c = Cluster {
            dir,
            masters,
            token: String::new(),
            common,
            env,
        };
        c.spawn(0, &init.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let token_file = c.masters[0].data.join("join-token");
        let ident = c.masters[0].data.join("identity.toml");
        let token = wait_until(
            "m1 to write its join token",
            Duration::from_secs(60),
            || {
                let r = c.check_alive(0).and_then(|_| {
                    if !ident.exists() {
                        return Err("identity.toml not written yet".into());
                    }
                    std::fs::read_to_string(&token_file).map_err(|e| e.to_string())
                });
                async move { r }
            },
        )
        .await;
        c.token = token.trim().to_string();
        c.wait_members(1).await;
        for i in 1..n {
            let args = ["--join", &c.masters[0].addr, "--token", &c.token].map(String::from);
            c.spawn(i, &args);
        }
        c.wait_members(n).await;
        for i in 0..n {
            let what = format!("{} to be set up and answer", c.masters[i].name);
            c.masters[i].id = wait_until(&what, Duration::from_secs(60), || async {
                c.check_alive(i)?;
                let id = DataDir::new(&c.masters[i].data)
                    .and_then(|d| d.identity())
                    .map_err(|e| e.to_string())?
                    .ok_or("identity.toml not written yet")?
                    .id;
                c.status_of(i).await.map(|_| id)
            })
            .await;
        }
        c
    }

    /// Starts master `i` (not running) with `extra` flags after its data dir and address.
    pub fn spawn(&mut self, i: usize, extra: &[String]) {
        assert!(
            !self.running(i),
            "{} is already running",
            self.masters[i].name
        );
        let m = &mut self.masters[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open log");
        let child = ferry_cmd(self.dir.path())
            .arg("master")
            .arg("--data-dir")
            .arg(&m.data)
            .arg("--listen")
            .arg(&m.addr)
            .args(extra)
            .args(&self.common)
            .envs(self.env.iter().copied())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn ferry master");
        *m.child.lock().expect("child lock") = Some(child);
        m.stopped = false;
    }

    /// Adds master `m<N+1>` on a free port, started with `--join` through
    /// master `via` (it joins as a learner when that keeps the voters odd);
    /// returns its index once it has written its identity. Its `id` is set.
    pub async fn add_master(&mut self, via: usize) -> usize {
        let i = self.masters.len();
        let name = format!("m{}", i + 1);
        self.masters.push(MasterProc {
            data: self.dir.path().join(&name),
            addr: format!("127.0.0.1:{}", free_ports(1)),
            log: self.dir.path().join(format!("{name}.log")),
            name,
            id: 0,
            child: Mutex::new(None),
            stopped: false,
        });
        let args = ["--join", &self.masters[via].addr, "--token", &self.token].map(String::from);
        self.spawn(i, &args);
        let what = format!("{} to join", self.masters[i].name);
        self.masters[i].id = wait_until(&what, Duration::from_secs(60), || async {
            self.check_alive(i)?;
            let id = DataDir::new(&self.masters[i].data)
                .and_then(|d| d.identity())
                .map_err(|e| e.to_string())?
                .ok_or("identity.toml not written yet")?
                .id;
            self.status_of(i).await.map(|_| id)
        })
        .await;
        i
    }

    /// The join token of the cluster.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every master's address.
    pub fn addrs(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.addr.clone()).collect()
    }

    /// Fails if master `i` is not running; panics with its log if it exited.
    pub fn check_alive(&self, i: usize) -> Result<(), String> {
        let m = &self.masters[i];
        let mut child = m.child.lock().expect("child lock");
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => panic!(
                "{} exited unexpectedly ({status}); log:\n{}",
                m.name,
                tail(&m.log, 40)
            ),
            Some(Err(e)) => Err(e.to_string()),
            None => Err(format!("{} is not running", m.name)),
        }
    }

    fn running(&self, i: usize) -> bool {
        self.masters[i].child.lock().expect("child lock").is_some()
    }

    /// An admin client config for the given masters.
    pub fn client_config(&self, masters: &[String], timeout: Duration) -> ClientConfig {
        // Any set-up master has the cluster CA (a test may wipe some data dirs).
        let dir = self
            .masters
            .iter()
            .map(|m| &m.data)
            .find(|d| d.join("ca.crt").exists())
            .unwrap_or(&self.masters[0].data);
        let data = DataDir::new(dir).expect("data dir");
        let mut cfg = ferry_actors::master::admin_config(&data, masters).expect("admin config");
        cfg.timeout_ms = timeout.as_millis() as u64;
        cfg
    }

    /// An admin client that knows every master.
    pub fn client(&self, timeout: Duration) -> Arc<Client> {
        let cfg = self.client_config(&self.addrs(), timeout);
        Arc::new(Client::new(&cfg).expect("client"))
    }

    /// An admin client that only talks to master `i`.
    pub fn client_for(&self, i: usize, timeout: Duration) -> Arc<Client> {
        let cfg = self.client_config(&[self.masters[i].addr.clone()], timeout);
        Arc::new(Client::new(&cfg).expect("client"))
    }

    /// Master `i`'s own view of the cluster.
    pub async fn status_of(&self, i: usize) -> Result<ClusterStatus, String> {
        self.client_for(i, Duration::from_secs(2))
            .status()
            .await
            .map_err(|e| format!("{}: {e}", self.masters[i].name))
    }

    /// Waits until master 0 reports `n` members with a leader and an odd number of voters.
    pub async fn wait_members(&self, n: usize) {
        let what = format!("{n} members with a leader");
        wait_until(&what, Duration::from_secs(120), || async {
            for i in 0..self.masters.len() {
                if self.running(i) {
                    self.check_alive(i)?;
                }
            }
            let s = self.status_of(0).await?;
            let voters = s.members.iter().filter(|m| m.voter).count();
            let want_voters = if n % 2 == 1 { n } else { n - 1 };
            if s.leader.is_some() && s.members.len() == n && voters == want_voters {
                Ok(())
            } else {
                Err(format!(
                    "{} members, {voters} voters, leader {:?}",
                    s.members.len(),
                    s.leader
                ))
            }
        })
        .await
    }

    /// Index of the master with this id.
    pub fn index_of(&self, id: u64) -> usize {
        self.masters
            .iter()
            .position(|m| m.id == id)
            .unwrap_or_else(|| panic!("no master with id {id}"))
    }

    /// Waits for a leader among the running masters not in `exclude`: a master that
    /// says it leads, confirmed by a majority of all masters at the same term.
    pub async fn leader(&self, exclude: &[usize]) -> usize {
        wait_until("a leader", Duration::from_secs(60), || async {
            let mut seen = Vec::new();
            for i in 0..self.masters.len() {
                if !exclude.contains(&i) && !self.masters[i].stopped {
                    seen.push(self.status_of(i).await);
                }
            }
            let ok: Vec<&ClusterStatus> = seen.iter().flatten().collect();
            let majority = self.masters.len() / 2 + 1;
            for s in &ok {
                if s.leader != Some(s.serving) {
                    continue;
                }
                let agree = ok
                    .iter()
                    .filter(|o| o.leader == s.leader && o.term == s.term)
                    .count();
                if agree >= majority {
                    return Ok(self.index_of(s.serving));
                }
            }
            let views: Vec<String> = seen
                .iter()
                .map(|r| match r {
                    Ok(s) => format!("{} sees leader {:?} term {}", s.serving, s.leader, s.term),
                    Err(e) => e.clone(),
                })
                .collect();
            Err(views.join("; "))
        })
        .await
    }

    /// Waits until master `i` itself has applied `revision` (a local read reports
    /// the revision it reflects; `cluster status` answers with the leader's view).
    pub async fn wait_applied(&self, i: usize, revision: u64) {
        let what = format!("{} to apply revision {revision}", self.masters[i].name);
        let client = self.client_for(i, Duration::from_secs(2));
        let req = ApiRequest::Get {
            key: "/".into(),
            consistency: Consistency::Local,
        };
        wait_until(&what, Duration::from_secs(60), || async {
            match client.call(&req).await.map_err(|e| e.to_string())? {
                ApiResponse::Get { revision: r, .. } if r >= revision => Ok(()),
                ApiResponse::Get { revision: r, .. } => Err(format!("applied {r}")),
                other => Err(format!("unexpected answer {other:?}")),
            }
        })
        .await
    }

    /// Every key under `prefix` as master `i` has applied it (local reads, paged).
    pub async fn local_range(&self, i: usize, prefix: &str) -> BTreeMap<String, KeyValue> {
        self.range_on(i, prefix, Consistency::Local).await
    }

    /// Every key under `prefix` as master `i` reads it with `consistency` (paged).
    pub async fn range_on(
        &self,
        i: usize,
        prefix: &str,
        consistency: Consistency,
    ) -> BTreeMap<String, KeyValue> {
        let client = self.client_for(i, Duration::from_secs(10));
        let mut out = BTreeMap::new();
        let mut req = RangeRequest {
            prefix: prefix.to_string(),
            start_after: None,
            limit: 500,
            consistency,
        };
        loop {
            let page = client
                .range(req.clone())
                .await
                .unwrap_or_else(|e| panic!("range on {}: {e}", self.masters[i].name))
                .unwrap_or_else(|e| panic!("range on {}: {e}", self.masters[i].name));
            for kv in page.kvs {
                req.start_after = Some(kv.key.clone());
                out.insert(kv.key.clone(), kv);
            }
            if !page.more {
                return out;
            }
        }
    }

    /// Writes `key` through any master and returns the revision it committed at.
    pub async fn put(&self, key: &str, value: &[u8]) -> u64 {
        let client = self.client(Duration::from_secs(20));
        client
            .put(key, value.to_vec(), Expect::Any)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
            .revision
    }

    /// Pid of master `i`.
    pub fn pid(&self, i: usize) -> Pid {
        let m = &self.masters[i];
        let child = m.child.lock().expect("child lock");
        let c = child
            .as_ref()
            .unwrap_or_else(|| panic!("{} not running", m.name));
        Pid::from_raw(c.id() as i32)
    }

    fn signal(&self, i: usize, sig: Signal) {
        kill(self.pid(i), sig).unwrap_or_else(|e| panic!("{sig} to {}: {e}", self.masters[i].name));
    }

    /// A power failure of master `i`: SIGKILL, then its store is put back to
    /// the images of its syncs (what the disk would hold: `db` as of its last
    /// sync, only the blobs that were synced), so everything written but not
    /// synced is gone. Needs [`Cluster::start_emulating_power_failures`].
    pub fn power_fail(&mut self, i: usize) {
        self.kill(i);
        let store = self.masters[i].data.join("store");
        ferry_raft::log_store::restore_sync_image(&store).expect("put the sync images back");
    }

    /// SIGKILLs master `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, Signal::SIGKILL);
        let m = &mut self.masters[i];
        if let Some(mut c) = m.child.lock().expect("child lock").take() {
            let _ = c.wait();
        }
        m.stopped = false;
    }

    /// SIGTERMs master `i` and waits (up to `timeout`) for it to exit; returns its
    /// exit status and how long it took, or `None` (after SIGKILLing it) on timeout.
    pub fn terminate(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let start = Instant::now();
        self.signal(i, Signal::SIGTERM);
        let m = &mut self.masters[i];
        let mut c = m.child.lock().expect("child lock").take().expect("running");
        m.stopped = false;
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return Some((status, start.elapsed()));
            }
            if start.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Holds (or releases) every log flush of master `i`: its writes stay in
    /// memory, where a SIGKILL takes them (see `Flusher::start`).
    pub fn hold_flush(&self, i: usize, hold: bool) {
        let path = self.masters[i].data.join("hold-flush");
        if hold {
            std::fs::write(&path, b"").expect("create hold-flush");
        } else if let Err(e) = std::fs::remove_file(&path) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::NotFound,
                "remove hold-flush: {e}"
            );
        }
    }

    /// SIGSTOPs master `i`.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
        self.masters[i].stopped = true;
    }

    /// SIGCONTs master `i`.
    pub fn cont(&mut self, i: usize) {
        self.signal(i, Signal::SIGCONT);
        self.masters[i].stopped = false;
    }

    /// Waits (up to `timeout`) for master `i` to exit by itself; its status,
    /// or `None` if it still runs.
    pub async fn wait_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut child = self.masters[i].child.lock().expect("child lock");
                let c = child.as_mut().expect("master running");
                if let Some(status) = c.try_wait().expect("wait") {
                    *child = None;
                    return Some(status);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Restarts a killed master on its data dir and port, and waits until it answers.
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.running(i), "restart only a killed master");
        self.spawn(i, &[]);
        let what = format!("{} to answer after restart", self.masters[i].name);
        wait_until(&what, Duration::from_secs(60), || async {
            self.check_alive(i)?;
            self.status_of(i).await.map(|_| ())
        })
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.masters {
            let child = m.child.get_mut().map(Option::take);
            if let Ok(Some(mut c)) = child {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            // FERRY_KEEP_FAILED=DIR keeps a failed test's data dirs and logs for a post-mortem.
            if let Some(keep) = std::env::var_os("FERRY_KEEP_FAILED") {
                let keep = PathBuf::from(keep);
                let _ = std::fs::create_dir_all(&keep);
                let to = keep.join(self.dir.path().file_name().expect("temp dir has a name"));
                let copied = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(self.dir.path())
                    .arg(&to)
                    .status();
                eprintln!("kept the cluster's files in {} ({copied:?})", to.display());
            }
            for m in &self.masters {
                eprintln!(
                    "---- {} ({}, id {}) log tail:\n{}",
                    m.name,
                    m.addr,
                    m.id,
                    tail(&m.log, 60)
                );
            }
        }
    }
}
