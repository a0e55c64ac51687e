//! `ferry bench failover --rounds 1`: its summary line's format, and no
//! acknowledged write lost across the kill. No timed assertion: the figures
//! depend on the machine (docs/benchmarks.md, "Failover").

use crate::harness::serial;
use crate::procs::{pids_with_arg, run_ferry};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_failover_one_round_loses_nothing() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cluster");
    let ran = run_ferry(
        tmp.path(),
        &[
            "bench",
            "failover",
            "--rounds",
            "1",
            "--load-ops",
            "640",
            "--writers",
            "2",
            "--dir",
            dir.to_str().unwrap(),
        ],
        Duration::from_secs(240),
    );
    // Whatever happened, no master of this run outlives the test.
    for pid in pids_with_arg(dir.to_str().unwrap()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(
        ran.status.success(),
        "bench failover failed: {}\nstderr: {}",
        ran.stdout,
        ran.stderr
    );
    let last = ran.stdout.lines().last().unwrap_or_default();
    let fields: Vec<&str> = last.split(' ').collect();
    let keys: Vec<&str> = fields
        .iter()
        .skip(1)
        .map(|f| f.split('=').next().unwrap_or_default())
        .collect();
    assert_eq!(fields[0], "failover", "{last}");
    assert_eq!(
        keys,
        [
            "rounds",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "lost",
            "spurious_elections"
        ],
        "{last}"
    );
    for f in &fields[1..] {
        let v = f.split_once('=').map(|(_, v)| v).unwrap_or_default();
        assert!(v.parse::<u64>().is_ok(), "{f} in {last}");
    }
    assert!(fields.contains(&"rounds=1"), "{last}");
    assert!(fields.contains(&"lost=0"), "{last}\n{}", ran.stdout);
}
