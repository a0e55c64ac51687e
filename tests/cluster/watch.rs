//! A watch keeps streaming while the master serving it is SIGKILLed: the client
//! resumes on another master after its last revision, losing and repeating nothing.

use crate::harness::{serial, wait_until, Cluster};
use ferry_api::kv::{Expect, WatchItem};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_continues_across_master_failover() {
    let _one = serial().await;
    let mut cluster = Cluster::start(3).await;
    let watcher = cluster.client(Duration::from_secs(30));
    let mut watch = watcher.watch("wf/", None, 200);
    let first = watch.next().await.expect("first watch item");
    assert!(
        matches!(first, WatchItem::Bookmark { .. }),
        "a watch starts with a bookmark: {first:?}"
    );
    let serving = watcher.current_master().await.expect("watch is connected");
    let victim = cluster
        .addrs()
        .iter()
        .position(|a| *a == serving)
        .expect("known master");
    let writer_idx = (victim + 1) % 3;
    let writer = cluster.client_for(writer_idx, Duration::from_secs(30));

    let mut acked = Vec::new();
    let put = |key: String| {
        let writer = writer.clone();
        async move {
            // Retry until acknowledged; a retried put may apply twice, which the
            // watch must then show twice (distinct revisions), never zero times.
            wait_until(&format!("put {key}"), Duration::from_secs(60), || async {
                match writer
                    .put(&key, key.clone().into_bytes(), Expect::Any)
                    .await
                {
                    Ok(Ok(o)) => Ok(o.revision),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await
        }
    };
    for i in 0..30 {
        let key = format!("wf/before/{i:03}");
        acked.push((key.clone(), put(key).await));
    }
    cluster.kill(victim);
    for i in 0..30 {
        let key = format!("wf/after/{i:03}");
        acked.push((key.clone(), put(key).await));
    }

    let want: BTreeSet<(String, u64)> = acked.iter().cloned().collect();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut last_rev = first.revision();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&seen) {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| {
                panic!("watch stalled; missing {:?}", want.difference(&seen).next())
            })
            .expect("watch survives the failover");
        if let WatchItem::Events { revision, events } = item {
            assert!(
                revision > last_rev,
                "revision {revision} after {last_rev}: out of order or repeated"
            );
            last_rev = revision;
            for e in events {
                assert_eq!(
                    e.kv.mod_revision, revision,
                    "event carries its item's revision"
                );
                assert!(
                    seen.insert((e.kv.key.clone(), revision)),
                    "event {} at {revision} delivered twice",
                    e.kv.key
                );
            }
        }
    }
    let now_serving = watcher.current_master().await.expect("reconnected");
    assert_ne!(now_serving, serving, "the watch moved to another master");
}

/// A `ferry kv watch` frozen (SIGSTOP) past the QUIC idle timeout while
/// thousands of puts land under its prefix resumes by itself after SIGCONT and
/// prints every event exactly once, in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_cli_watch_resumes_and_prints_every_event_once() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _one = serial().await;
    let cluster = Cluster::start(3).await;
    // A short client timeout: the stall alone must not use it up.
    let conf = cluster.dir.path().join("watch.conf");
    let cfg = cluster.client_config(&cluster.addrs(), Duration::from_secs(3));
    std::fs::write(&conf, cfg.to_toml()).expect("write client config");
    let start = cluster.put("frozen/start", b"x").await;
    let out_path = cluster.dir.path().join("watch.out");
    let err_path = cluster.dir.path().join("watch.err");
    let mut child = crate::procs::ferry_cmd(cluster.dir.path())
        .args([
            "--config",
            conf.to_str().expect("utf-8"),
            "kv",
            "watch",
            "frozen/w/",
        ])
        .args(["--rev", &(start + 1).to_string()])
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn ferry kv watch");
    let pid = Pid::from_raw(child.id() as i32);
    // Running and connected: it prints a first event.
    let first = cluster.put("frozen/w/first", b"x").await;
    wait_until(
        "the watch to print its first event",
        Duration::from_secs(30),
        || async {
            let out = std::fs::read_to_string(&out_path).unwrap_or_default();
            if out.contains("frozen/w/first") {
                Ok(())
            } else {
                Err(std::fs::read_to_string(&err_path).unwrap_or_default())
            }
        },
    )
    .await;
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP the watch");
    let frozen_at = std::time::Instant::now();
    let writer = cluster.client(Duration::from_secs(30));
    let total = 6000;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..32 {
        let writer = writer.clone();
        tasks.spawn(async move {
            let mut revs = Vec::new();
            for i in (t..total).step_by(32) {
                let key = format!("frozen/w/{i:05}");
                let o = writer
                    .put(&key, b"v".to_vec(), Expect::Any)
                    .await
                    .expect("put reaches a master")
                    .expect("put applies");
                revs.push((key, o.revision));
            }
            revs
        });
    }
    let mut acked: Vec<(String, u64)> = vec![("frozen/w/first".into(), first)];
    while let Some(r) = tasks.join_next().await {
        acked.extend(r.expect("writer task"));
    }
    // Frozen past the transport's idle timeout (4 s) and the client's timeout (3 s).
    let thaw = frozen_at + Duration::from_secs(7);
    tokio::time::sleep_until(thaw.into()).await;
    kill(pid, Signal::SIGCONT).expect("SIGCONT the watch");
    let want = acked.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let printed = loop {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        if lines.len() >= want {
            break lines;
        }
        let err = || std::fs::read_to_string(&err_path).unwrap_or_default();
        if let Some(status) = child.try_wait().expect("wait for the watch") {
            panic!(
                "the watch exited ({status}) after {} of {want} events: {}",
                lines.len(),
                err()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch printed {} of {want} events within 60 s: {}",
            lines.len(),
            err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for line in &printed {
        // `PUT <key> rev=<revision> <value>`
        let mut f = line.split(' ');
        assert_eq!(f.next(), Some("PUT"), "line {line:?}");
        let key = f.next().expect("key").to_string();
        let rev: u64 = f
            .next()
            .and_then(|r| r.strip_prefix("rev="))
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {line:?}"));
        assert!(rev >= last, "revision {rev} after {last}: out of order");
        last = rev;
        assert!(
            seen.insert((key.clone(), rev)),
            "{key} at {rev} printed twice"
        );
    }
    let want: BTreeSet<(String, u64)> = acked.into_iter().collect();
    assert_eq!(
        seen, want,
        "printed events differ from the acknowledged puts"
    );
}
