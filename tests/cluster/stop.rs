//! Stopping and failing to start: a SIGTERMed master drains and exits at once
//! with everything it acknowledged on disk; `ferry up` reports a master that
//! cannot start (its port taken) at once, with the master's own error; master
//! logs written to files hold no terminal colour codes.

use crate::harness::{serial, Cluster};
use crate::procs::{free_ports, run_ferry};
use ferry_api::kv::Expect;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What SIGTERM may take: drain, stop Raft, flush, close the endpoint.
const STOP: Duration = Duration::from_secs(2);

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
async fn sigterm_stops_a_master_at_once_with_everything_acknowledged_on_disk() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    for i in 0..20 {
        c.put(&format!("before/{i:03}"), b"v").await;
    }
    // A writer keeps going while the leader, then a follower, are stopped; every
    // write it saw acknowledged must survive.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let client = c.client(Duration::from_secs(10));
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("during/{n:05}");
                n += 1;
                if let Ok(Ok(_)) = client.put(&key, b"w".to_vec(), Expect::Any).await {
                    acked.lock().unwrap().push(key);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leader = c.leader(&[]).await;
    let follower = (leader + 1) % 3;
    // Each master to stop also serves a Kubernetes watch over HTTPS (curl,
    // with the admin's certificate): it must not hold the stop up.
    let cfg = c.client_config(&c.addrs(), Duration::from_secs(10));
    let pem = |name: &str, text: &str| {
        let p = c.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ca, cert, key) = (
        pem("ca.pem", &cfg.ca_cert),
        pem("cert.pem", &cfg.client_cert),
        pem("key.pem", &cfg.client_key),
    );
    let mut watches = Vec::new();
    for i in [leader, follower] {
        let url = format!("https://{}/api/v1/configmaps?watch=1", c.masters[i].addr);
        let out = c.dir.path().join(format!("watch-{i}.out"));
        let child = std::process::Command::new("curl")
            .args([
                "-sS", "-N", "--cacert", &ca, "--cert", &cert, "--key", &key, &url,
            ])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("curl");
        watches.push((i, child, out));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, child, out) in &mut watches {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the HTTPS watch on master {i} ended at once: {}",
            std::fs::read_to_string(&*out).unwrap_or_default()
        );
    }
    for i in [leader, follower] {
        let name = c.masters[i].name.clone();
        let (status, took) = c
            .terminate(i, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{name} still running 15 s after SIGTERM"));
        let log = std::fs::read_to_string(&c.masters[i].log).unwrap();
        assert!(
            status.success() && took < STOP,
            "{name} took {took:?} to exit ({status}) after SIGTERM; log:\n{log}"
        );
        assert!(!log.contains("still in use"), "{name}:\n{log}");
        if i == leader {
            // The remaining two elect a new leader; the writer carries on.
            c.leader(&[leader]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // The stopped masters ended their HTTPS watches (curl saw the stream end).
    for (i, mut child, _) in watches {
        let ended = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        assert!(ended, "the HTTPS watch on master {i} outlived its master");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "the writer got no write through");
    // Each stopped master's data dir reopens with everything it had.
    for i in [leader, follower] {
        c.restart(i).await;
        assert_plain(&c.masters[i].log);
    }
    let rev = c.put("after", b"x").await;
    for i in [leader, follower] {
        c.wait_applied(i, rev).await;
        let before = c.local_range(i, "before/").await;
        assert_eq!(before.len(), 20, "{}", c.masters[i].name);
        let during = c.local_range(i, "during/").await;
        let missing: Vec<&String> = acked.iter().filter(|k| !during.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "{} lost acknowledged writes {missing:?}",
            c.masters[i].name
        );
    }
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
            "--https-port",
            &crate::procs::free_tcp_ports(4).to_string(),
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
