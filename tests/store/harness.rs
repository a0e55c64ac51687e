//! `TestCluster`: n masters in this process, temp dirs, port 0, tight Raft timing.
//!
//! Every wait polls a condition with a deadline and fails with a message naming
//! what it waited for; nothing sleeps to "let things settle".

use ferry_actors::master::{admin_config, Bootstrap, Master};
use ferry_api::kv::{Expect, WriteOutcome};
use ferry_api::proto::{ClusterStatus, Consistency};
use ferry_api::Client;
use ferry_config::MasterConfig;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::Instant;

/// How long a harness wait may take before failing the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Routes the masters' logs to the test output when `RUST_LOG` is set.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// One master slot: its data dir and address outlive the running master.
struct Slot {
    dir: TempDir,
    addr: SocketAddr,
    master: Option<Master>,
    local: Arc<Client>,
}

/// Masters started in this process.
pub struct TestCluster {
    slots: Vec<Slot>,
    tweak: fn(&mut MasterConfig),
    /// Admin client over every master the cluster started with.
    pub client: Arc<Client>,
}

/// Heartbeat 50 ms, elections 300-600 ms; everything else at defaults.
pub fn fast(cfg: &mut MasterConfig) {
    cfg.raft.heartbeat_ms = 50;
    cfg.raft.election_min_ms = 300;
    cfg.raft.election_max_ms = 600;
}

impl TestCluster {
    /// `n` masters, all voters.
    pub async fn new(n: usize) -> TestCluster {
        Self::with(n, |_| {}).await
    }

    /// `n` masters with `tweak` applied to each config (after [`fast`]); waits until all vote.
    pub async fn with(n: usize, tweak: fn(&mut MasterConfig)) -> TestCluster {
        let mut c = Self::start_first(tweak).await;
        for _ in 1..n {
            c.join().await;
        }
        let all: BTreeSet<u64> = c.ids().into_iter().collect();
        c.wait_members(&all, &BTreeSet::new()).await;
        let addrs: Vec<String> = c.slots.iter().map(|s| s.addr.to_string()).collect();
        c.client = Arc::new(Client::new(&c.admin(&addrs)).expect("admin client"));
        c
    }

    /// One master that initialized a new cluster.
    pub async fn start_first(tweak: fn(&mut MasterConfig)) -> TestCluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(tweak, &dir, "127.0.0.1:0".parse().expect("static"));
        let master = Master::start(cfg, Bootstrap::Init)
            .await
            .expect("first master starts");
        let addr = master.addr;
        let admin = admin_config(&master.data, &[addr.to_string()]).expect("admin config");
        let local = Arc::new(Client::new(&admin).expect("client"));
        let c = TestCluster {
            slots: vec![Slot {
                dir,
                addr,
                master: Some(master),
                local: local.clone(),
            }],
            tweak,
            client: local,
        };
        eventually("the first master to lead", WAIT, || async {
            c.master(0)
                .store
                .raft()
                .current_leader()
                .await
                .filter(|l| *l == c.master(0).id)
        })
        .await;
        c
    }

    /// An admin client config for `masters`, in that order.
    pub fn admin(&self, masters: &[String]) -> ferry_config::ClientConfig {
        let data = &self.slots[0]
            .master
            .as_ref()
            .or_else(|| self.slots.iter().find_map(|s| s.master.as_ref()))
            .expect("a running master")
            .data;
        admin_config(data, masters).expect("admin config")
    }

    /// Starts a new master that joins through a running one; returns its index.
    /// Does not wait for it to become a member.
    pub async fn join(&mut self) -> usize {
        let via = self
            .running()
            .next()
            .expect("a running master to join through");
        let token = self.slots[via]
            .master
            .as_ref()
            .expect("running")
            .data
            .read("join-token")
            .expect("join-token in the first master's data dir");
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(self.tweak, &dir, "127.0.0.1:0".parse().expect("static"));
        let boot = Bootstrap::Join {
            via: self.slots[via].addr.to_string(),
            token: token.trim().to_string(),
            force: false,
        };
        let master = Master::start(cfg, boot)
            .await
            .expect("joining master starts");
        let addr = master.addr;
        let local = Arc::new(Client::new(&self.admin(&[addr.to_string()])).expect("client"));
        self.slots.push(Slot {
            dir,
            addr,
            master: Some(master),
            local,
        });
        self.slots.len() - 1
    }

    /// Master `i`'s data dir (running or not).
    pub fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.slots[i].dir.path().join("data")
    }

    /// Master `i`'s config, as [`Self::restart`] starts it.
    pub fn config(&self, i: usize) -> MasterConfig {
        config(self.tweak, &self.slots[i].dir, self.slots[i].addr)
    }

    /// Cuts master `l` off from every other running master (clients still
    /// reach it) until the returned guards drop; returns them and the others.
    pub fn cut_off(&self, l: usize) -> (Vec<ferry_raft::fault::Guard>, Vec<usize>) {
        let others: Vec<usize> = self.running().filter(|i| *i != l).collect();
        let cuts = others
            .iter()
            .map(|o| ferry_raft::fault::cut(&self.addr(l), &self.addr(*o)))
            .collect();
        (cuts, others)
    }

    /// Indexes of running masters.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|i| self.slots[*i].master.is_some())
    }

    /// Ids of running masters.
    pub fn ids(&self) -> Vec<u64> {
        self.running().map(|i| self.master(i).id).collect()
    }

    /// The running master at `i`.
    pub fn master(&self, i: usize) -> &Master {
        self.slots[i].master.as_ref().expect("master is running")
    }

    /// Master `i`'s listen address (as its peers dial it).
    pub fn addr(&self, i: usize) -> String {
        self.slots[i].addr.to_string()
    }

    /// A client that talks to master `i` only.
    pub fn local(&self, i: usize) -> &Client {
        &self.slots[i].local
    }

    /// [`Self::local`], shareable (watches need an `Arc<Client>`).
    pub fn local_arc(&self, i: usize) -> Arc<Client> {
        self.slots[i].local.clone()
    }

    /// Index of the master with this id.
    pub fn index_of(&self, id: u64) -> usize {
        self.running()
            .find(|i| self.master(*i).id == id)
            .expect("a running master with this id")
    }

    /// Stops master `i` and waits until it released its data dir and port.
    pub async fn stop(&mut self, i: usize) {
        let m = self.slots[i].master.take().expect("master is running");
        m.shutdown().await;
    }

    /// Restarts master `i` on its data dir and address.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.slots[i].master.is_none(), "master {i} is running");
        // The old HTTPS listener (same port number over TCP) may take a moment
        // to be released: retry that bind for a while, nothing else.
        let mut tries = 0;
        let m = loop {
            let cfg = config(self.tweak, &self.slots[i].dir, self.slots[i].addr);
            match Master::start(cfg, Bootstrap::Existing).await {
                Err(e) if tries < 50 && format!("{e:?}").starts_with("BindHttps") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                r => break r.expect("master restarts on its data dir"),
            }
        };
        self.slots[i].master = Some(m);
    }

    /// Index of the leader every running master agrees on.
    pub async fn leader(&self) -> usize {
        let id = eventually("all running masters to agree on a leader", WAIT, || async {
            let mut seen = BTreeSet::new();
            for i in self.running() {
                seen.insert(self.master(i).store.raft().current_leader().await?);
            }
            (seen.len() == 1).then(|| *seen.first().expect("one"))
        })
        .await;
        self.index_of(id)
    }

    /// Index of a running master that is not the leader.
    pub async fn follower(&self) -> usize {
        let l = self.leader().await;
        self.running().find(|i| *i != l).expect("a follower")
    }

    /// Waits until every running master sees exactly these voters and learners.
    pub async fn wait_members(&self, voters: &BTreeSet<u64>, learners: &BTreeSet<u64>) {
        let what = format!("every master to see voters {voters:?} and learners {learners:?}");
        eventually(&what, WAIT, || async {
            self.running()
                .all(|i| {
                    let m = self.master(i).store.raft().metrics().borrow().clone();
                    let mem = m.membership_config.membership();
                    let v: BTreeSet<u64> = mem.voter_ids().collect();
                    let l: BTreeSet<u64> = mem.learner_ids().collect();
                    &v == voters && &l == learners && mem.get_joint_config().len() == 1
                })
                .then_some(())
        })
        .await
    }

    /// Waits until master `i` has applied `revision`.
    pub async fn wait_applied(&self, i: usize, revision: u64) {
        let what = format!("master {i} to apply revision {revision}");
        eventually(&what, WAIT, || async {
            (self.master(i).store.applied() >= revision).then_some(())
        })
        .await
    }

    /// Cluster status from the leader.
    pub async fn status(&self) -> ClusterStatus {
        self.client.status().await.expect("cluster status")
    }
}

/// A test master's config: data dir `<dir>/data`, [`fast`] timings, then `tweak`.
pub fn config(tweak: fn(&mut MasterConfig), dir: &TempDir, listen: SocketAddr) -> MasterConfig {
    let mut cfg = MasterConfig {
        data_dir: dir.path().join("data"),
        listen,
        // API-only masters (as kube-apiserver alone): these tests check the
        // store and the API's own semantics, with no controller writing too.
        workload_controllers: false,
        ..MasterConfig::default()
    };
    fast(&mut cfg);
    tweak(&mut cfg);
    cfg.validate().expect("valid test config");
    cfg
}

/// Puts `key` = `value` with no precondition; panics unless it applied.
pub async fn put(client: &Client, key: &str, value: &str) -> WriteOutcome {
    client
        .put(key, value.as_bytes().to_vec(), Expect::Any)
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
}

/// Deletes `key` (which must exist); panics unless it applied.
pub async fn delete(client: &Client, key: &str) -> WriteOutcome {
    client
        .delete(key, Expect::Exists)
        .await
        .unwrap_or_else(|e| panic!("delete {key}: {e}"))
        .unwrap_or_else(|e| panic!("delete {key}: {e}"))
}

/// The value of `key` as master-local state has it (no leader round trip).
pub async fn local_value(client: &Client, key: &str) -> Option<String> {
    client
        .get(key, Consistency::Local)
        .await
        .unwrap_or_else(|e| panic!("local get {key}: {e}"))
        .map(|kv| String::from_utf8(kv.value).expect("utf-8 value"))
}
