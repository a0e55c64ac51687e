//! SIGKILL of the leader under load, and of every master at once: every
//! acknowledged write must be on every member afterwards.

use crate::harness::{serial, wait_until, Cluster};
use ferry_api::kv::Expect;
use ferry_api::proto::{Consistency, ErrorCode};
use ferry_api::Client;
use ferry_config::master::MAX_VALUE_BYTES;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// A write the cluster acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: u64,
}

/// Writers that each put distinct keys in a loop until stopped, recording acks.
/// A key is never written twice, so its mod_revision must equal its ack's revision.
pub struct Load {
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Load {
    pub fn start(clients: &[Arc<Client>], writers: usize, prefix: &str) -> Load {
        Load::start_with(clients, writers, prefix, |key, _| {
            format!("value of {key}").into_bytes()
        })
    }

    /// [`Load::start`] with the value of the `i`th put of `key` made by `value`.
    pub fn start_with(
        clients: &[Arc<Client>],
        writers: usize,
        prefix: &str,
        value: fn(&str, u64) -> Vec<u8>,
    ) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for w in 0..writers {
            let client = clients[w % clients.len()].clone();
            let (acked, stop) = (acked.clone(), stop.clone());
            let prefix = prefix.to_string();
            tasks.spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}w{w:03}/{i:06}");
                    let value = value(&key, i);
                    i += 1;
                    match client.put(&key, value.clone(), Expect::Any).await {
                        Ok(Ok(o)) => acked.lock().expect("acks").push(Acked {
                            key,
                            value,
                            revision: o.revision,
                        }),
                        Ok(Err(e)) => panic!("unconditional put of {key} refused: {e}"),
                        // Unavailable or indeterminate during failover: not acknowledged.
                        Err(_) => {}
                    }
                }
            });
        }
        Load { acked, stop, tasks }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().expect("acks").len()
    }

    pub async fn wait_count(&self, n: usize, what: &str) {
        wait_until(what, Duration::from_secs(90), || async {
            let c = self.count();
            if c >= n {
                Ok(())
            } else {
                Err(format!("{c} of {n} writes acknowledged"))
            }
        })
        .await
    }

    pub async fn finish(mut self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(r) = self.tasks.join_next().await {
            r.expect("writer task");
        }
        std::mem::take(&mut *self.acked.lock().expect("acks"))
    }
}

/// Clients whose master lists start at different masters, so writes also
/// enter through followers and are forwarded.
pub fn rotated_clients(c: &Cluster, timeout: Duration) -> Vec<Arc<Client>> {
    let addrs = c.addrs();
    (0..addrs.len())
        .map(|k| {
            let mut a = addrs.clone();
            a.rotate_left(k);
            Arc::new(Client::new(&c.client_config(&a, timeout)).expect("client"))
        })
        .collect()
}

/// Waits until every member has applied `final_rev`, then checks with local reads
/// that every acknowledged write under `prefix` is there with its value and revision.
pub async fn verify_everywhere(c: &Cluster, prefix: &str, acked: &[Acked], final_rev: u64) {
    for i in 0..c.masters.len() {
        c.wait_applied(i, final_rev).await;
        let got = c.local_range(i, prefix).await;
        let bad: Vec<String> = acked
            .iter()
            .filter_map(|a| match got.get(&a.key) {
                None => Some(format!("{} (rev {}) missing", a.key, a.revision)),
                Some(kv) if kv.value != a.value => Some(format!("{} has a wrong value", a.key)),
                Some(kv) if kv.mod_revision != a.revision => Some(format!(
                    "{} mod_revision {} != acknowledged {}",
                    a.key, kv.mod_revision, a.revision
                )),
                Some(_) => None,
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{} lost {} of {} acknowledged writes, e.g. {:?}",
            c.masters[i].name,
            bad.len(),
            acked.len(),
            &bad[..bad.len().min(5)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leader_under_concurrent_writes_loses_no_acknowledged_write() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let old = c.leader(&[]).await;
    let load = Load::start(&rotated_clients(&c, Duration::from_secs(5)), 6, "/t1/");
    load.wait_count(100, "100 writes before the crash").await;

    c.kill(old);
    let at_kill = load.count();
    let new = c.leader(&[old]).await;
    assert_ne!(new, old, "the killed master cannot lead");
    load.wait_count(
        at_kill + 100,
        "100 more writes acknowledged after the leader died",
    )
    .await;
    let acked = load.finish().await;

    c.restart(old).await;
    let final_rev = c.put("/t1/final", b"done").await;
    assert!(acked.iter().all(|a| a.revision < final_rev));
    verify_everywhere(&c, "/t1/", &acked, final_rev).await;
}

/// A 1.5 MiB value whose bytes depend on `seed`.
fn big_value(seed: usize) -> Vec<u8> {
    (0..MAX_VALUE_BYTES)
        .map(|j| ((j * 31 + seed * 7) % 251) as u8)
        .collect()
}

/// Many writers at once on one connection, so the leader's group commit closes
/// large batches; returns the acks and the largest number sharing one revision.
async fn burst(client: &Arc<Client>, writers: usize, each: usize, prefix: &str) -> Vec<Acked> {
    let mut tasks = JoinSet::new();
    for w in 0..writers {
        let (client, prefix) = (client.clone(), prefix.to_string());
        tasks.spawn(async move {
            let mut acks = Vec::new();
            for i in 0..each {
                let key = format!("{prefix}{w:04}/{i}");
                let value = format!("{w}.{i}").into_bytes();
                let o = client
                    .put(&key, value.clone(), Expect::Any)
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"))
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
                acks.push(Acked {
                    key,
                    value,
                    revision: o.revision,
                });
            }
            acks
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("burst writer"));
    }
    all
}

fn largest_batch(acks: &[Acked]) -> usize {
    let mut per_rev = BTreeMap::new();
    for a in acks {
        *per_rev.entry(a.revision).or_insert(0) += 1;
    }
    per_rev.into_values().max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_all_masters_keeps_every_acknowledged_write() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;

    // Objects of exactly the size limit, one entering through each master.
    let mut big = Vec::new();
    for i in 0..3 {
        let key = format!("/t2/big/{i}");
        let value = big_value(i);
        let o = c
            .client_for(i, Duration::from_secs(30))
            .put(&key, value.clone(), Expect::Any)
            .await
            .unwrap_or_else(|e| panic!("put {key} via {}: {e}", c.masters[i].name))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        big.push(Acked {
            key,
            value,
            revision: o.revision,
        });
    }
    let over = c
        .client(Duration::from_secs(10))
        .put("/t2/big/over", vec![1; MAX_VALUE_BYTES + 1], Expect::Any)
        .await;
    assert!(
        matches!(&over, Err(ferry_api::Error::Api(e)) if e.code == ErrorCode::BadRequest),
        "a value one byte over the limit must be refused, got {over:?}"
    );

    // The largest group-commit batches: many small writers at once.
    let client = c.client(Duration::from_secs(30));
    let small = burst(&client, 512, 4, "/t2/small/burst/").await;
    let batch = largest_batch(&small);
    eprintln!("largest group-commit batch: {batch} writes");
    assert!(batch > 8, "512 concurrent writers never shared a batch");

    // And writes in flight when every master dies.
    let load = Load::start(
        &rotated_clients(&c, Duration::from_secs(3)),
        32,
        "/t2/small/live/",
    );
    load.wait_count(200, "200 writes before the crash").await;
    for i in 0..3 {
        c.kill(i);
    }
    let live = load.finish().await;

    for i in 0..3 {
        c.restart(i).await;
    }
    c.leader(&[]).await;
    let final_rev = c.put("/t2/final", b"done").await;
    let small: Vec<Acked> = small.into_iter().chain(live).collect();
    verify_everywhere(&c, "/t2/small/", &small, final_rev).await;
    for i in 0..3 {
        let client = c.client_for(i, Duration::from_secs(10));
        for a in &big {
            let kv = client
                .get(&a.key, Consistency::Local)
                .await
                .unwrap_or_else(|e| panic!("get {} on {}: {e}", a.key, c.masters[i].name))
                .unwrap_or_else(|| panic!("{} lost {}", c.masters[i].name, a.key));
            assert_eq!(kv.value.len(), MAX_VALUE_BYTES);
            assert!(
                kv.value == a.value,
                "{} on {} corrupted",
                a.key,
                c.masters[i].name
            );
            assert_eq!(kv.mod_revision, a.revision);
        }
    }
}

/// A power failure of every master at once, under concurrent writes: each
/// store keeps only what its last sync made durable (the image the flusher
/// keeps with `FERRY_FAULT_SYNC_IMAGE`). SIGKILL alone keeps the page cache,
/// so only this test fails when a sync on the acknowledgement path is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_failure_of_every_master_loses_no_acknowledged_write() {
    let _serial = serial().await;
    let mut c = Cluster::start_emulating_power_failures(3).await;
    let load = Load::start(&rotated_clients(&c, Duration::from_secs(5)), 6, "/pf/");
    load.wait_count(150, "150 writes before the power failure")
        .await;
    for i in 0..3 {
        c.power_fail(i);
    }
    let acked = load.finish().await;
    for i in 0..3 {
        c.spawn(i, &[]);
    }
    let final_rev = c.put("/pf-after", b"x").await;
    verify_everywhere(&c, "/pf/", &acked, final_rev).await;
}
