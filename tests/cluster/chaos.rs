//! A bounded chaos soak. CI runs a short one (every fault kind once, a fixed
//! seed); the long one is a command, like the benchmarks:
//!
//! ```sh
//! FERRY_CHAOS_ROUNDS=30 cargo test --release --test cluster chaos_soak -- --ignored --nocapture
//! ```
//!
//! A cluster (3 masters, or `FERRY_CHAOS_MASTERS`) that snapshots and purges its
//! log every few hundred entries takes random faults (SIGKILL of the leader, of a
//! follower, of a minority, of a majority — quorum lost until they return — of
//! every master; SIGSTOP of the leader) while writers put
//! distinct keys (one of them values of 256 KiB to 1.5 MiB, the object limit),
//! owners of counters increment them with compare-and-set, a watch streams
//! everything, and two more watches stop reading for seconds at a time (their
//! streams lag behind the live channel and fall back to history). After every
//! fault the cluster must commit again. At the end:
//! - every acknowledged put, large ones included, is on every master with its
//!   value and revision;
//! - every counter holds at least its acknowledged increments and at most those
//!   plus the increments whose outcome was unknown (nothing lost, nothing doubled);
//! - every watch, stalled or not, saw every acknowledged write, each revision
//!   once and in order;
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

/// Written to learn that the cluster commits again.
const PROBE: &str = "chaos/probe";

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
/// With `stall_seed`, the consumer stops reading for 0.5 to 3 s after every few
/// hundred items, so the master's stream lags and falls back to history.
async fn watch_all(client: Arc<Client>, stall_seed: Option<u64>) -> BTreeSet<(String, u64)> {
    let mut watch = client.watch("chaos/", None, 200);
    let mut seen = BTreeSet::new();
    let mut last = 0u64;
    let mut stalls = stall_seed.map(StdRng::seed_from_u64);
    let mut items = 0u64;
    loop {
        items += 1;
        if let Some(rng) = stalls.as_mut() {
            if items.is_multiple_of(300) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
            }
        }
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
                // The probe is an unconditional put retried after timeouts: two
                // attempts can land in one group-committed entry (one revision).
                assert!(
                    seen.insert((e.kv.key.clone(), revision)) || e.kv.key == PROBE,
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
                .put(PROBE, after.as_bytes().to_vec(), Expect::Any)
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

/// A value of 256 KiB to 1.5 MiB (the object limit) that names its key.
fn big_value(key: &str, i: u64) -> Vec<u8> {
    let len = 256 * 1024 + (i.wrapping_mul(2_654_435_761) % (1280 * 1024)) as usize;
    let mut v = format!("{key}:").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: run it as a command (see the module doc)"]
async fn chaos_soak_keeps_every_acknowledged_write_and_counter() {
    let rounds = env_u64("FERRY_CHAOS_ROUNDS").unwrap_or(12);
    let n = env_u64("FERRY_CHAOS_MASTERS").unwrap_or(3) as usize;
    let seed = env_u64("FERRY_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    });
    soak(n, rounds, seed, false).await;
}

/// The short soak CI runs: every fault kind once, in order, on a fixed seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short_every_fault_once() {
    soak(3, FAULTS.len() as u64, 1, true).await;
}

/// `rounds` faults on `n` masters, chosen from `seed` (`in_order`: the fault
/// kinds one after another), then every check of the module doc.
async fn soak(n: usize, rounds: u64, seed: u64, in_order: bool) {
    let _serial = serial().await;
    assert!(
        n >= 3 && n % 2 == 1,
        "FERRY_CHAOS_MASTERS={n}: an odd number, at least 3"
    );
    eprintln!("chaos: {n} masters, {rounds} rounds, FERRY_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Cluster::start_configured(n, &["--init"], Some(CONFIG)).await;

    let watcher = tokio::spawn(watch_all(c.client(Duration::from_secs(120)), None));
    let stalled: Vec<_> = (0..2)
        .map(|k| {
            tokio::spawn(watch_all(
                c.client(Duration::from_secs(120)),
                Some(seed.wrapping_add(k)),
            ))
        })
        .collect();
    let clients = rotated_clients(&c, Duration::from_secs(5));
    let load = Load::start(&clients, 6, "chaos/w/");
    let big = Load::start_with(&clients, 1, "chaos/big/", big_value);
    let counters = Counters::start(&clients, 3);
    load.wait_count(50, "50 writes before the first fault")
        .await;

    for round in 1..=rounds {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2000))).await;
        let fault = if in_order {
            FAULTS[(round as usize - 1) % FAULTS.len()]
        } else {
            FAULTS[rng.gen_range(0..FAULTS.len())]
        };
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

    let mut acked = load.finish().await;
    let acked_big = big.finish().await;
    let counted = counters.finish().await;
    let final_rev = wait_writable(&c, "the last round").await;
    c.wait_members(n).await;
    verify_everywhere(&c, "chaos/w/", &acked, final_rev).await;
    verify_everywhere(&c, "chaos/big/", &acked_big, final_rev).await;
    eprintln!("chaos: {} large values acknowledged", acked_big.len());
    acked.extend(acked_big);

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
                .filter(|(k, _)| k != PROBE && k != END)
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

    let watches = std::iter::once(("the watch", watcher))
        .chain(stalled.into_iter().map(|w| ("a stalled watch", w)));
    for (which, watch) in watches {
        let seen = tokio::time::timeout(Duration::from_secs(120), watch)
            .await
            .unwrap_or_else(|_| panic!("{which} to reach chaos/end"))
            .expect("watch task");
        let missing: Vec<&crate::crash::Acked> = acked
            .iter()
            .filter(|a| !seen.contains(&(a.key.clone(), a.revision)))
            .collect();
        assert!(
            missing.is_empty(),
            "{which} missed {} of {} acknowledged puts, e.g. {:?}",
            missing.len(),
            acked.len(),
            missing.first().map(|a| (&a.key, a.revision))
        );
        for (key, (rev, _)) in &states[0] {
            assert!(
                seen.contains(&(key.clone(), *rev)),
                "{which} never showed {key} at its current revision {rev}"
            );
        }
    }
    eprintln!(
        "chaos: {rounds} rounds passed: {} puts and {} counter increments acknowledged, final revision {final_rev}",
        acked.len(),
        counted.iter().map(|c| c.1).sum::<u64>()
    );
}
