//! Operations on a live cluster of real processes: `ferry cluster status`
//! health, `ferry cluster replace` of a dead master under load, scheduled
//! backups (`[snapshot] every`) that restore, and a rolling restart under load.

use crate::harness::{serial, wait_until, Cluster};
use crate::procs::{ferry, run_ferry};
use ferry_api::kv::Expect;
use ferry_api::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Client writers looping until stopped: each put is retried by the client
/// (under one request id) until its 30 s deadline; a put that still fails is
/// a failed client request.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<Written>,
}

/// One writer's acknowledged keys with their revisions, and its failures.
type Written = (Vec<(String, u64)>, Vec<String>);

impl Load {
    fn start(client: Arc<Client>, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let (client, stop) = (client.clone(), stop.clone());
            tasks.spawn(async move {
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("/load/{w}/{n:06}");
                    match client
                        .put(&key, key.clone().into_bytes(), Expect::Any)
                        .await
                    {
                        Ok(Ok(o)) => acked.push((key, o.revision)),
                        Ok(Err(e)) => failed.push(format!("{key}: {e}")),
                        Err(e) => failed.push(format!("{key}: {e}")),
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (acked, failed)
            });
        }
        Load { stop, tasks }
    }

    /// Stops the writers; returns the acknowledged keys and the failures.
    async fn finish(mut self) -> (BTreeMap<String, u64>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acked, mut failed) = (BTreeMap::new(), Vec::new());
        while let Some(r) = self.tasks.join_next().await {
            let (a, f) = r.expect("writer");
            acked.extend(a);
            failed.extend(f);
        }
        (acked, failed)
    }
}

/// Every acknowledged key is on master `i` at its revision.
async fn assert_has_all(c: &Cluster, i: usize, acked: &BTreeMap<String, u64>) {
    let top = acked.values().copied().max().unwrap_or(0);
    c.wait_applied(i, top).await;
    let got = c.local_range(i, "/load/").await;
    for (k, rev) in acked {
        let kv = got
            .get(k)
            .unwrap_or_else(|| panic!("{}: acknowledged {k} is missing", c.masters[i].name));
        assert_eq!(kv.mod_revision, *rev, "{}: {k}", c.masters[i].name);
    }
}

fn admin_conf(c: &Cluster) -> PathBuf {
    let path = c.dir.path().join("admin.conf");
    let cfg = c.client_config(&c.addrs(), Duration::from_secs(30));
    std::fs::write(&path, cfg.to_toml()).expect("write admin.conf");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `ferry cluster status -o json`, members by id.
fn status_json(c: &Cluster, conf: &Path) -> (serde_json::Value, BTreeMap<u64, serde_json::Value>) {
    let r = ferry(c.dir.path(), s(conf), &["cluster", "status", "-o", "json"]);
    assert!(r.status.success(), "cluster status: {}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("status json");
    let members = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["id"].as_u64().expect("id"), m.clone()))
        .collect();
    (v, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_replace_swaps_a_dead_master_under_load_and_status_shows_health() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let conf = admin_conf(&c);
    let home = c.dir.path().to_path_buf();

    // Every member reachable, heard from within the threshold.
    let (v, members) = status_json(&c, &conf);
    let within = v["unreachable_after_ms"].as_u64().expect("threshold");
    assert!(within > 0, "{v}");
    for (id, m) in &members {
        assert_eq!(m["reachable"], true, "master {id}: {m}");
        assert!(
            m["last_contact_ms"].as_u64().expect("contact") <= within,
            "{m}"
        );
        assert!(m["down_ms"].is_null(), "{m}");
    }

    let load = Load::start(c.client(Duration::from_secs(30)), 4);
    let leader = c.leader(&[]).await;
    let dead = (0..3).find(|i| *i != leader).expect("a follower");
    let live = (0..3)
        .find(|i| *i != leader && *i != dead)
        .expect("another");
    let dead_id = c.masters[dead].id;
    c.kill(dead);

    // The dead master shows as unreachable, gone for longer and longer.
    let gone = wait_until(
        "the dead master to show as unreachable",
        Duration::from_secs(30),
        || {
            let (_, members) = status_json(&c, &conf);
            let m = members[&dead_id].clone();
            async move {
                match (m["reachable"].as_bool(), m["down_ms"].as_u64()) {
                    (Some(false), Some(ms)) if ms > 500 => Ok(ms),
                    _ => Err(m.to_string()),
                }
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, members) = status_json(&c, &conf);
    let later = members[&dead_id]["down_ms"].as_u64().expect("down_ms");
    assert!(later > gone, "down_ms did not grow: {gone} then {later}");
    assert!(
        members[&dead_id]["last_contact_ms"]
            .as_u64()
            .expect("last contact")
            >= later,
        "{}",
        members[&dead_id]
    );
    for i in [leader, live] {
        assert_eq!(members[&c.masters[i].id]["reachable"], true, "{members:?}");
    }
    let table = ferry(&home, s(&conf), &["cluster", "status"]);
    assert!(
        table.stdout.contains("HEALTH") && table.stdout.contains("unreachable"),
        "{}",
        table.stdout
    );

    // Refusals, each naming the problem.
    let live_id = c.masters[live].id.to_string();
    let dead_s = dead_id.to_string();
    let dead_addr = c.masters[dead].addr.clone();
    let nowhere = format!("127.0.0.1:{}", crate::procs::free_ports(1));
    for (args, says) in [
        (
            vec!["cluster", "replace", "99", "--with", &dead_addr],
            "not a member",
        ),
        (
            vec!["cluster", "replace", &dead_s, "--with", &nowhere],
            "has joined",
        ),
        (
            vec!["cluster", "replace", &dead_s, "--with", "nonsense"],
            "not a QUIC address",
        ),
    ] {
        let r = ferry(&home, s(&conf), &args);
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }

    // The new master joins as a learner (4 voters would be even).
    let new = c.add_master(leader).await;
    let new_id = c.masters[new].id;
    let new_addr = c.masters[new].addr.clone();
    wait_until(
        "the new master to be a learner",
        Duration::from_secs(60),
        || async {
            let st = c.status_of(leader).await?;
            match st.members.iter().find(|m| m.id == new_id) {
                Some(m) if !m.voter => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let r = ferry(
        &home,
        s(&conf),
        &["cluster", "replace", &live_id, "--with", &new_addr],
    );
    assert!(
        !r.status.success() && r.stderr.contains("is alive"),
        "replacing a live master: {}",
        r.stderr
    );
    let r = ferry(
        &home,
        s(&conf),
        &["cluster", "replace", &dead_s, "--with", &new_addr],
    );
    assert!(r.status.success(), "replace: {}{}", r.stderr, r.stdout);
    assert!(
        r.stdout.contains(&format!("replaced by master {new_id}")),
        "{}",
        r.stdout
    );

    // Membership: the three live masters, all voters.
    let st = c.status_of(leader).await.expect("status");
    let mut voters: Vec<u64> = st
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    voters.sort();
    let mut want = vec![c.masters[leader].id, c.masters[live].id, new_id];
    want.sort();
    assert_eq!(voters, want, "{st:?}");
    assert_eq!(st.members.len(), 3, "{st:?}");

    // The replaced master, started again on its old data dir, learns from
    // the others that it was removed and stops, naming why.
    c.spawn(dead, &[]);
    let status = c.wait_exit(dead, Duration::from_secs(30)).await;
    let log = std::fs::read_to_string(&c.masters[dead].log).unwrap_or_default();
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the replaced master did not stop: {status:?}\n{}",
        tail_of(&log)
    );
    assert!(
        log.contains("this master was removed from the cluster"),
        "{}",
        tail_of(&log)
    );

    // Writes go on; then none failed and the new voter holds every one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, failed) = load.finish().await;
    assert!(failed.is_empty(), "failed client writes: {failed:?}");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    eprintln!(
        "replace under load: {} writes acknowledged, none failed",
        acked.len()
    );
    assert_has_all(&c, new, &acked).await;
    // The replacement keeps quorum without the old master: a write commits
    // with one of the three voters stopped.
    c.kill(live);
    let rev = c.put("/after-replace", b"x").await;
    c.wait_applied(new, rev).await;
}

/// The last lines of a log, for a failure message.
fn tail_of(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The backup files in `dir`, oldest first.
fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        n.starts_with("ferry-") && n.ends_with(".snap")
    });
    files.sort();
    files
}

/// The revision in a backup's name (`ferry-<time>-rev<revision>.snap`).
fn revision_of(p: &Path) -> u64 {
    let n = p.file_name().and_then(|n| n.to_str()).expect("name");
    n.rsplit_once("-rev")
        .and_then(|(_, r)| r.strip_suffix(".snap"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_backups_keep_the_newest_and_restore() {
    let _serial = serial().await;
    let config = "[snapshot]\nevery = \"2s\"\nkeep = 2\n";
    let c = Cluster::start_configured(1, &["--init"], Some(config)).await;
    let dir = c.masters[0].data.join("backups");
    let client = c.client(Duration::from_secs(20));
    let mut acked = BTreeMap::new();
    for i in 0..50 {
        let key = format!("/load/0/{i:06}");
        let o = client
            .put(&key, key.clone().into_bytes(), Expect::Any)
            .await
            .expect("put")
            .expect("put");
        acked.insert(key, o.revision);
    }
    let top = acked.values().copied().max().expect("writes");
    // Backups come every 2 s; never more than `keep` stay, and newer ones
    // replace older ones.
    let mut seen = std::collections::BTreeSet::new();
    wait_until(
        "five backups to have been made",
        Duration::from_secs(60),
        || {
            let files = backups(&dir);
            assert!(files.len() <= 2, "more than keep = 2 backups: {files:?}");
            seen.extend(files.iter().cloned());
            let n = seen.len();
            async move {
                match n >= 5 {
                    true => Ok(()),
                    false => Err(format!("{n} seen")),
                }
            }
        },
    )
    .await;
    let files = backups(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let newest = files.last().expect("a backup").clone();
    assert!(
        revision_of(&newest) >= top,
        "{newest:?} misses revision {top}"
    );
    assert!(
        !seen.iter().next().expect("first").exists(),
        "the oldest backup was not removed"
    );
    // No temporary file is left behind once a backup is in place.
    let stray: Vec<_> = std::fs::read_dir(&dir)
        .expect("backups dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
        .collect();
    assert!(stray.len() <= 1, "temporary files left: {stray:?}");
    let keep = tempfile::tempdir().expect("temp dir");
    let file = keep.path().join("backup.snap");
    std::fs::copy(&newest, &file).expect("copy backup");
    let st = run_ferry(
        keep.path(),
        &["snapshot", "status", s(&file)],
        Duration::from_secs(30),
    );
    assert!(st.status.success(), "snapshot status: {}", st.stderr);
    drop(c);

    let r = Cluster::start_with(1, &["--init", "--restore", s(&file)]).await;
    r.wait_applied(0, top).await;
    let got = r.local_range(0, "/load/").await;
    assert_eq!(got.len(), acked.len());
    for (k, rev) in &acked {
        assert_eq!(got.get(k).map(|kv| kv.mod_revision), Some(*rev), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_fails_no_client_request() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let load = Load::start(c.client(Duration::from_secs(30)), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..3 {
        let (status, _) = c
            .terminate(i, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{} did not exit on SIGTERM", c.masters[i].name));
        assert!(status.success(), "{}: {status}", c.masters[i].name);
        c.restart(i).await;
        // Caught up: it has applied what the cluster committed after its return.
        let rev = c.put(&format!("/rolled/{i}"), b"x").await;
        c.wait_applied(i, rev).await;
        c.leader(&[]).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, failed) = load.finish().await;
    assert!(failed.is_empty(), "failed client writes: {failed:?}");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    eprintln!(
        "rolling restart: {} writes acknowledged, none failed",
        acked.len()
    );
    for i in 0..3 {
        assert_has_all(&c, i, &acked).await;
    }
}
