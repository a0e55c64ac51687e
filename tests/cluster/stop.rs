//! Stopping and failing to start: a SIGTERMed master drains and exits at once
//! with everything it acknowledged on disk; `ferry up` reports a master that
//! cannot start (its port taken) at once, with the master's own error; master
//! logs written to files hold no terminal colour codes.

use crate::harness::serial;
use crate::procs::{free_ports, run_ferry};
use std::time::{Duration, Instant};

fn assert_plain(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).expect("read log");
    assert!(!text.is_empty(), "{} is empty", log.display());
    assert!(
        !text.contains("\x1b["),
        "{} holds ANSI escapes:\n{}",
        log.display(),
        text.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_reports_a_master_that_cannot_start_at_once() {
    let _serial = serial().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let port = free_ports(3);
    let _taken = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("bind");
    let dir = home.join("local");
    let start = Instant::now();
    let ran = run_ferry(
        home,
        &[
            "up",
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ],
        Duration::from_secs(60),
    );
    let took = start.elapsed();
    assert!(!ran.status.success(), "ferry up succeeded: {}", ran.stdout);
    assert!(
        took < Duration::from_secs(10),
        "ferry up took {took:?} to fail: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.to_lowercase().contains("in use")
            && ran.stderr.contains(&format!("127.0.0.1:{port}")),
        "ferry up's error does not name the cause: {}",
        ran.stderr
    );
    assert_plain(&dir.join("m1").join("master.log"));
}
