//! `ferry chaos`: a short run (30 s of seeded faults of every process kind
//! against 3 real masters) whose last line must say the history was
//! linearizable, no acknowledged write was lost, no watch guarantee broken and
//! the masters converged; and `ferry chaos check` on the run's saved history
//! (passes) and on a corrupted copy of it (a read of a value never written:
//! fails, naming the key); and a short run of the network faults (partitions,
//! loss, delay, duplication through the fault proxies). No timed assertion:
//! failover figures depend on the machine.

use crate::harness::serial;
use crate::procs::{pids_with_arg, run_ferry};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

/// Runs `ferry chaos --dir DIR ARGS...` and checks its last line says every
/// check passed; returns the run's stdout.
fn chaos_passes(home: &Path, dir: &Path, args: &[&str], seed: &str) -> String {
    let mut all = vec!["chaos", "--dir", dir.to_str().unwrap(), "--seed", seed];
    all.extend_from_slice(args);
    // The faults, cluster start-up, and the shutdown margin.
    let ran = run_ferry(home, &all, Duration::from_secs(180));
    // Whatever happened, no master of this run outlives the test.
    for m in ["m1", "m2", "m3"] {
        for pid in pids_with_arg(dir.join(m).to_str().unwrap()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let last = ran.stdout.lines().last().unwrap_or_default().to_string();
    let fields: Vec<&str> = last.split(' ').collect();
    let keys: Vec<&str> = fields
        .iter()
        .skip(1)
        .map(|f| f.split('=').next().unwrap_or_default())
        .collect();
    assert_eq!(fields[0], "chaos", "{last}\nstderr: {}", ran.stderr);
    assert_eq!(
        keys,
        [
            "seed",
            "faults",
            "ops",
            "linearizable",
            "lost_writes",
            "watch_violations",
            "failover_p99_ms",
            "converged"
        ],
        "{last}"
    );
    let seed_field = format!("seed={seed}");
    for want in [
        seed_field.as_str(),
        "linearizable=true",
        "lost_writes=0",
        "watch_violations=0",
        "converged=true",
    ] {
        assert!(
            fields.contains(&want),
            "{want} missing: {last}\n{}\nstderr: {}",
            ran.stdout,
            ran.stderr
        );
    }
    let faults: u64 = fields[2].trim_start_matches("faults=").parse().unwrap();
    let ops: u64 = fields[3].trim_start_matches("ops=").parse().unwrap();
    assert!(faults >= 5, "{last}");
    assert!(ops >= 100, "{last}");
    assert!(
        ran.status.success(),
        "{}\nstderr: {}",
        ran.stdout,
        ran.stderr
    );
    assert!(dir.join("report.json").exists());
    ran.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_is_linearizable_and_loses_nothing() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("chaos");
    chaos_passes(tmp.path(), &dir, &["--seconds", "30"], "21");

    // The saved history checks again.
    let history = dir.join("history.json");
    let again = run_ferry(
        tmp.path(),
        &["chaos", "check", history.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(again.status.success(), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again
            .stdout
            .contains("linearizable=true lost_writes=0 watch_violations=0"),
        "{}",
        again.stdout
    );

    // Corrupted: the last acknowledged read of a key returns a value nobody wrote.
    let mut h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    let ops = h["ops"].as_array_mut().unwrap();
    let read = ops
        .iter_mut()
        .rev()
        .find(|o| o["type"] == "read" && o["outcome"] == "ok")
        .expect("an acknowledged read");
    read["result"] = serde_json::json!("never-written");
    let key = read["key"].as_str().unwrap().to_string();
    let bad = tmp.path().join("corrupted.json");
    std::fs::write(&bad, serde_json::to_vec(&h).unwrap()).unwrap();
    let checked = run_ferry(
        tmp.path(),
        &["chaos", "check", bad.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(!checked.status.success(), "{}", checked.stdout);
    assert!(
        checked
            .stdout
            .contains(&format!("key {key}: NOT linearizable")),
        "{}",
        checked.stdout
    );
    assert!(
        checked.stdout.contains("read -> never-written"),
        "{}",
        checked.stdout
    );
    assert!(
        checked
            .stdout
            .lines()
            .last()
            .unwrap()
            .contains("linearizable=false"),
        "{}",
        checked.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_network_faults_keep_the_history_linearizable() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("chaos");
    let out = chaos_passes(
        tmp.path(),
        &dir,
        &[
            "--seconds",
            "25",
            "--faults",
            "partition-leader,partition-asym,lossy-net",
        ],
        "3",
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("fault ") && l.contains("partition")),
        "{out}"
    );
}
