//! A bounded chaos soak, not run in CI (it is a command, like the benchmarks):
//!
//! ```sh
//! FERRY_CHAOS_ROUNDS=30 cargo test --release --test cluster chaos -- --ignored --nocapture
//! ```
//!
//! A cluster (3 masters, or `FERRY_CHAOS_MASTERS`) that snapshots and purges its
//! log every few hundred entries takes random faults (SIGKILL of the leader, of a
//! follower, of a minority, of a majority — quorum lost until they return — of
//! every master; SIGSTOP of the leader) while writers put
//! distinct keys, owners of counters increment them with compare-and-set, and a
//! watch streams everything. After every fault the cluster must commit again.
//! At the end:
//! - every acknowledged put is on every master with its value and revision;
//! - every counter holds at least its acknowledged increments and at most those
//!   plus the increments whose outcome was unknown (nothing lost, nothing doubled);
//! - the watch saw every acknowledged write, each revision once and in order;
//! - every master holds the same keys at the same revisions.
//!
//! `FERRY_CHAOS_SEED` replays a run's faults (the seed is printed).

use crate::crash::{rotated_clients, verify_everywhere, Load};
use crate::harness::{serial, wait_until, Cluster};
use ferry_api::kv::{Expect, KvError, WatchItem};
use ferry_api::proto::Consistency;
use ferry_api::Client;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Snapshots (and log purges) every 300 entries, so restarted masters catch up
/// through snapshot installs as well as through the log.
const CONFIG: &str = "[raft]\nsnapshot_every = 300\nkeep_behind_snapshot = 50\n";

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    KillMinority,
    KillMajority,
    KillAll,
}

/// Written last; the watch ends when it sees it.
const END: &str = "chaos/end";

const FAULTS: [Fault; 6] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::KillMinority,
    Fault::KillMajority,
    Fault::KillAll,
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// Owners of counters: each increments its own key with compare-and-set.
struct Counters {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<(String, u64, u64)>,
}

impl Counters {
    fn start(clients: &[Arc<Client>], n: usize) -> Counters {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for k in 0..n {
            let client = clients[k % clients.len()].clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                let key = format!("chaos/ctr/{k}");
                let (mut acked, mut unknown) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(cur) = client.get(&key, Consistency::Linearizable).await else {
                        continue;
                    };
                    let (n, expect) = match &cur {
                        Some(kv) => (parse(&kv.value), Expect::ModRevision(kv.mod_revision)),
                        None => (0, Expect::Absent),
                    };
                    let next = (n + 1).to_string().into_bytes();
                    match client.put(&key, next, expect).await {
                        Ok(Ok(_)) => acked += 1,
                        // Only an earlier increment of unknown outcome that did apply
                        // can move the key under its only writer.
                        Ok(Err(KvError::Conflict { .. } | KvError::AlreadyExists { .. })) => {
                            assert!(unknown > 0, "{key} changed under its only writer");
                        }
                        Ok(Err(e)) => panic!("increment of {key} refused: {e}"),
                        Err(_) => unknown += 1,
                    }
                }
                (key, acked, unknown)
            });
        }
        Counters { stop, tasks }
    }

    async fn finish(mut self) -> Vec<(String, u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        while let Some(r) = self.tasks.join_next().await {
            out.push(r.expect("counter task"));
        }
        out
    }
}

fn parse(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("counter value {v:?} is not a number"))
}

/// Everything a watch of `chaos/` delivered up to the key `chaos/end`, checked
/// for order as it arrives: `(key, revision)` of every event.
async fn watch_all(client: Arc<Client>) -> BTreeSet<(String, u64)> {
    let mut watch = client.watch("chaos/", None, 200);
    let mut seen = BTreeSet::new();
    let mut last = 0u64;
    loop {
        let item = watch
            .next()
            .await
            .unwrap_or_else(|e| panic!("watch ended: {e}"));
        if let WatchItem::Events { revision, events } = item {
            assert!(
                revision > last,
                "watch: revision {revision} after {last}: out of order or repeated"
            );
            last = revision;
            for e in events {
                assert_eq!(e.kv.mod_revision, revision, "event outside its revision");
                assert!(
                    seen.insert((e.kv.key.clone(), revision)),
                    "watch: {} at {revision} twice",
                    e.kv.key
                );
                if e.kv.key == END {
                    return seen;
                }
            }
        }
    }
}

/// Waits until the cluster commits again: a put through any master succeeds.
async fn wait_writable(c: &Cluster, after: &str) -> u64 {
    let client = c.client(Duration::from_secs(5));
    wait_until(
        &format!("a write to commit after {after}"),
        Duration::from_secs(90),
        || async {
            match client
                .put("chaos/probe", after.as_bytes().to_vec(), Expect::Any)
                .await
            {
                Ok(Ok(o)) => Ok(o.revision),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: run it as a command (see the module doc)"]
async fn chaos_soak_keeps_every_acknowledged_write_and_counter() {
    let _serial = serial().await;
    let rounds = env_u64("FERRY_CHAOS_ROUNDS").unwrap_or(12);
    let n = env_u64("FERRY_CHAOS_MASTERS").unwrap_or(3) as usize;
    assert!(
        n >= 3 && n % 2 == 1,
        "FERRY_CHAOS_MASTERS={n}: an odd number, at least 3"
    );
    let seed = env_u64("FERRY_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    });
    eprintln!("chaos: {n} masters, {rounds} rounds, FERRY_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Cluster::start_configured(n, &["--init"], Some(CONFIG)).await;

    let watcher = tokio::spawn(watch_all(c.client(Duration::from_secs(120))));
    let clients = rotated_clients(&c, Duration::from_secs(5));
    let load = Load::start(&clients, 6, "chaos/w/");
    let counters = Counters::start(&clients, 3);
    load.wait_count(50, "50 writes before the first fault")
        .await;

    for round in 1..=rounds {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2000))).await;
        let fault = FAULTS[rng.gen_range(0..FAULTS.len())];
        let down = Duration::from_millis(rng.gen_range(200..3000));
        let leader = c.leader(&[]).await;
        let before = load.count();
        let mut shuffled: Vec<usize> = (0..n).collect();
        shuffled.shuffle(&mut rng);
        let victims: Vec<usize> = match fault {
            Fault::KillLeader | Fault::PauseLeader => vec![leader],
            Fault::KillFollower => vec![(leader + rng.gen_range(1..n)) % n],
            Fault::KillMinority => shuffled[..n / 2].to_vec(),
            Fault::KillMajority => shuffled[..n / 2 + 1].to_vec(),
            Fault::KillAll => shuffled,
        };
        let names: Vec<&str> = victims
            .iter()
            .map(|i| c.masters[*i].name.as_str())
            .collect();
        eprintln!(
            "chaos: round {round}: {fault:?} {names:?} for {down:?} ({before} puts acknowledged)"
        );
        match fault {
            Fault::PauseLeader => {
                c.stop(leader);
                tokio::time::sleep(down).await;
                c.cont(leader);
            }
            _ => {
                for &i in &victims {
                    c.kill(i);
                }
                tokio::time::sleep(down).await;
                for &i in &victims {
                    c.spawn(i, &[]);
                }
            }
        }
        let rev = wait_writable(&c, &format!("round {round} ({fault:?})")).await;
        load.wait_count(
            before + 20,
            &format!("puts to resume after round {round} ({fault:?})"),
        )
        .await;
        eprintln!("chaos: round {round}: writable again at revision {rev}");
    }

    let acked = load.finish().await;
    let counted = counters.finish().await;
    let final_rev = wait_writable(&c, "the last round").await;
    c.wait_members(n).await;
    verify_everywhere(&c, "chaos/w/", &acked, final_rev).await;

    // A write whose outcome was unknown may still commit after the writers
    // stopped, so the masters are compared at one revision: END's.
    let end_rev = c.put(END, b"done").await;
    let mut states: Vec<BTreeMap<String, (u64, Vec<u8>)>> = Vec::new();
    for i in 0..n {
        c.wait_applied(i, end_rev).await;
        let kvs = c
            .range_on(i, "chaos/", Consistency::AtRevision(end_rev))
            .await;
        states.push(
            kvs.into_iter()
                .filter(|(k, _)| k != "chaos/probe" && k != END)
                .map(|(k, kv)| (k, (kv.mod_revision, kv.value)))
                .collect(),
        );
    }
    for (state, m) in states.iter().zip(&c.masters).skip(1) {
        let differ: Vec<String> = states[0]
            .keys()
            .chain(state.keys())
            .filter(|k| states[0].get(*k) != state.get(*k))
            .take(5)
            .map(|k| {
                let at = |s: &BTreeMap<String, (u64, Vec<u8>)>| s.get(k).map(|(r, _)| *r);
                format!("{k}: rev {:?} vs {:?}", at(&states[0]), at(state))
            })
            .collect();
        assert!(
            differ.is_empty(),
            "{} and {} hold different states at revision {end_rev}, e.g. {differ:?}",
            c.masters[0].name,
            m.name
        );
    }
    for (key, acked, unknown) in &counted {
        let value = states[0].get(key).map_or(0, |(_, v)| parse(v));
        assert!(
            *acked <= value && value <= acked + unknown,
            "{key} = {value}: {acked} increments acknowledged, {unknown} of unknown outcome"
        );
        eprintln!("chaos: {key} = {value} ({acked} acknowledged, {unknown} unknown)");
    }

    let seen = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .expect("the watch to reach chaos/end")
        .expect("watch task");
    let missing: Vec<&crate::crash::Acked> = acked
        .iter()
        .filter(|a| !seen.contains(&(a.key.clone(), a.revision)))
        .collect();
    assert!(
        missing.is_empty(),
        "the watch missed {} of {} acknowledged puts, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first().map(|a| (&a.key, a.revision))
    );
    for (key, (rev, _)) in &states[0] {
        assert!(
            seen.contains(&(key.clone(), *rev)),
            "the watch never showed {key} at its current revision {rev}"
        );
    }
    eprintln!(
        "chaos: {rounds} rounds passed: {} puts and {} counter increments acknowledged, final revision {final_rev}",
        acked.len(),
        counted.iter().map(|c| c.1).sum::<u64>()
    );
}
