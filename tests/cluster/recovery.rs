//! Disaster recovery with real processes: `ferry snapshot save` from a live
//! cluster and `ferry master --init --restore` into a new one; damaged snapshot
//! files refused with nothing written; `ferry snapshot save --local` and
//! `ferry master --force-new-cluster` on the last master of a cluster that lost quorum.

use crate::harness::{serial, wait_until, Cluster};
use crate::procs::run_ferry;
use ferry_api::kv::{Expect, KeyValue};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Writes `n` keys under `prefix` from 8 concurrent writers, the first with a
/// value near the 1.5 MiB limit; returns the acknowledged keys and revisions.
async fn write_keys(c: &Cluster, prefix: &str, n: usize) -> BTreeMap<String, (Vec<u8>, u64)> {
    let client = c.client(Duration::from_secs(30));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (client, prefix) = (Arc::clone(&client), prefix.to_string());
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for i in (w..n).step_by(8) {
                let key = format!("{prefix}{i:04}");
                let value = match i {
                    0 => vec![b'b'; 1_400_000],
                    _ => format!("value-{i}").into_bytes(),
                };
                let rev = client
                    .put(&key, value.clone(), Expect::Any)
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"))
                    .unwrap_or_else(|e| panic!("put {key}: {e}"))
                    .revision;
                acked.push((key, (value, rev)));
            }
            acked
        });
    }
    let mut all = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("writer"));
    }
    all
}

/// Asserts master `i` holds exactly `want` under `prefix`, at the same revisions.
async fn assert_holds(
    c: &Cluster,
    i: usize,
    prefix: &str,
    want: &BTreeMap<String, (Vec<u8>, u64)>,
) {
    let got: BTreeMap<String, KeyValue> = c.local_range(i, prefix).await;
    let name = &c.masters[i].name;
    assert_eq!(got.len(), want.len(), "{name}: keys under {prefix}");
    for (k, (v, rev)) in want {
        let kv = got
            .get(k)
            .unwrap_or_else(|| panic!("{name}: acknowledged {k} is missing"));
        assert!(kv.value == *v, "{name}: {k} has another value");
        assert_eq!(kv.mod_revision, *rev, "{name}: {k} revision");
    }
}

/// An admin client config listing every master of `c`, written to a file.
fn admin_conf(c: &Cluster) -> PathBuf {
    let path = c.dir.path().join("admin.conf");
    let cfg = c.client_config(&c.addrs(), Duration::from_secs(30));
    std::fs::write(&path, cfg.to_toml()).expect("write admin.conf");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saved_snapshot_restores_whole_and_a_damaged_one_is_refused() {
    let _serial = serial().await;
    let c = Cluster::start(3).await;
    let acked = write_keys(&c, "/backup/", 160).await;
    let conf = admin_conf(&c);
    // Outlives the first cluster's temp dir.
    let keep = tempfile::tempdir().expect("temp dir");
    let home = keep.path();
    let file = home.join("backup.snap");
    let saved = run_ferry(
        home,
        &["--config", s(&conf), "snapshot", "save", s(&file)],
        Duration::from_secs(120),
    );
    assert!(saved.status.success(), "snapshot save: {}", saved.stderr);
    let top = acked.values().map(|(_, r)| *r).max().expect("writes");
    let revision: u64 = saved
        .stdout
        .split("at revision ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {:?}", saved.stdout));
    assert!(
        revision >= top,
        "snapshot at {revision} misses writes up to {top}"
    );
    let status = run_ferry(
        home,
        &["snapshot", "status", s(&file), "-o", "json"],
        Duration::from_secs(30),
    );
    assert!(
        status.status.success(),
        "snapshot status: {}",
        status.stderr
    );
    let st: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    assert_eq!(st["revision"], revision);
    // Written after the save: must not be in the restored cluster.
    c.put("/backup/after", b"later").await;

    // Damaged copies: each refused with a message naming the problem; nothing set up.
    let good = std::fs::read(&file).expect("read snapshot");
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    let damaged: [(&str, Vec<u8>, &str); 3] = [
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        ("flipped", flipped, "checksum does not match"),
        (
            "junk",
            b"not a snapshot at all\n".to_vec(),
            "snapshot record of",
        ),
    ];
    for (name, bytes, says) in damaged {
        let bad = home.join(format!("{name}.snap"));
        std::fs::write(&bad, bytes).expect("write damaged copy");
        let dir = home.join(format!("restore-{name}"));
        let port = crate::procs::free_ports(1);
        let ran = run_ferry(
            home,
            &[
                "master",
                "--data-dir",
                s(&dir),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--init",
                "--restore",
                s(&bad),
            ],
            Duration::from_secs(60),
        );
        assert!(!ran.status.success(), "{name}: restore succeeded");
        assert!(
            ran.stderr.contains(says) && ran.stderr.contains(s(&bad)),
            "{name}: stderr does not name the problem ({says}): {}",
            ran.stderr
        );
        assert!(
            !dir.join("identity.toml").exists() && !dir.join("store").exists(),
            "{name}: a refused restore set up {}",
            dir.display()
        );
        let st = run_ferry(
            home,
            &["snapshot", "status", s(&bad)],
            Duration::from_secs(30),
        );
        assert!(
            !st.status.success() && st.stderr.contains(says),
            "{name}: status: {}",
            st.stderr
        );
    }
    drop(c);

    // A new 3-master cluster from the file: every acknowledged write, same revisions.
    let r = Cluster::start_with(3, &["--init", "--restore", s(&file)]).await;
    for i in 0..3 {
        r.wait_applied(i, revision).await;
        assert_holds(&r, i, "/backup/", &acked).await;
    }
    let next = r.put("/backup/new", b"after restore").await;
    assert!(next > revision, "new write at {next}, not above {revision}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_quorum_loss_a_local_backup_and_force_new_cluster_keep_every_write() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let acked = write_keys(&c, "/force/", 120).await;
    let top = acked.values().map(|(_, r)| *r).max().expect("writes");
    // The survivor has applied everything (as `ferry cluster status` would show),
    // and the commit index it learned is on its disk: it is saved before entries
    // are applied, and the survivor's next append (of a later write, outside the
    // prefix) is flushed before it is acknowledged or applied.
    c.wait_applied(1, top).await;
    let marker = c.put("/force-marker", b"flushes the commit index").await;
    c.wait_applied(1, marker).await;
    // m1 and m3 are lost for good.
    for i in [0, 2] {
        c.kill(i);
    }
    std::fs::remove_dir_all(&c.masters[0].data).expect("wipe m1");
    std::fs::remove_dir_all(&c.masters[2].data).expect("wipe m3");

    // Without quorum a backup needs --local: the survivor's own applied state.
    let conf = c.dir.path().join("m2.conf");
    let cfg = c.client_config(&[c.masters[1].addr.clone()], Duration::from_secs(5));
    std::fs::write(&conf, cfg.to_toml()).expect("write m2.conf");
    let home = c.dir.path();
    let file = home.join("local.snap");
    let save = |local: bool| {
        let mut args = vec!["--config", s(&conf), "snapshot", "save", s(&file)];
        if local {
            args.push("--local");
        }
        run_ferry(home, &args, Duration::from_secs(60))
    };
    let refused = save(false);
    assert!(
        !refused.status.success() && refused.stderr.contains("Unavailable"),
        "a linearizable save without quorum: {} {}",
        refused.stdout,
        refused.stderr
    );
    assert!(!file.exists(), "a refused save left {}", file.display());
    let saved = save(true);
    assert!(
        saved.status.success(),
        "snapshot save --local: {}",
        saved.stderr
    );
    let status = run_ferry(
        home,
        &["snapshot", "status", s(&file), "-o", "json"],
        Duration::from_secs(30),
    );
    let st: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    assert!(st["revision"].as_u64().is_some_and(|r| r >= top), "{st}");

    // m2 carries on alone.
    c.kill(1);
    c.spawn(1, &["--force-new-cluster".to_string()]);
    let survivor = c.client_for(1, Duration::from_secs(10));
    let me = c.masters[1].id;
    wait_until(
        "m2 to lead a one-master cluster",
        Duration::from_secs(60),
        || async {
            c.check_alive(1)?;
            let st = survivor.status().await.map_err(|e| e.to_string())?;
            match (st.leader, st.members.len()) {
                (Some(l), 1) if l == me => Ok(()),
                _ => Err(format!(
                    "leader {:?}, {} members",
                    st.leader,
                    st.members.len()
                )),
            }
        },
    )
    .await;
    assert_holds(&c, 1, "/force/", &acked).await;
    let aside: Vec<_> = std::fs::read_dir(&c.masters[1].data)
        .expect("read m2 data dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "m2's old store is kept aside");
    assert!(aside[0].path().join("store").is_dir());
    let next = survivor
        .put("/force/new", b"after".to_vec(), Expect::Absent)
        .await
        .expect("write after force-new-cluster")
        .expect("key absent");
    assert!(next.revision > top);

    // The lost masters come back as new members (same token: same CA and secret).
    let via = c.masters[1].addr.clone();
    let token = c.token().to_string();
    for i in [0, 2] {
        c.spawn(i, &["--join", &via, "--token", &token].map(String::from));
    }
    c.wait_members(3).await;
    let mut want = acked.clone();
    want.insert("/force/new".into(), (b"after".to_vec(), next.revision));
    for i in [0, 2] {
        c.wait_applied(i, next.revision).await;
        assert_holds(&c, i, "/force/", &want).await;
    }
}
