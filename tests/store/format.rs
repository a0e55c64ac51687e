//! The master data dir's format version (`FORMAT`): a store made before the
//! record opens unchanged, a newer one is refused untouched, and a data dir an
//! earlier ferry wrote (`tests/fixtures/master-data-v1/`) opens and reads back.

use crate::harness::{config, eventually, fast, local_value, put, TestCluster, WAIT};
use ferry_actors::master::{admin_config, Bootstrap, Master};
use ferry_api::files::format::FILE;
use ferry_api::proto::{Consistency, MasterVersion};
use ferry_api::Client;
use ferry_config::MasterConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The committed fixture: a data dir made by `write_the_v1_fixture`.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/master-data-v1")
}

/// The keys the fixture holds and their values; `fixture/gone` was deleted.
const FIXTURE_KEYS: [(&str, &str); 3] = [
    ("fixture/a", "alpha"),
    ("fixture/b", "beta"),
    ("fixture/big", "a value written before a snapshot"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_before_format_records_opens_unchanged() {
    let mut c = TestCluster::new(1).await;
    put(c.local(0), "old/k", "v").await;
    c.stop(0).await;
    let record = c.data_dir(0).join(FILE);
    assert_eq!(
        std::fs::read_to_string(&record).expect("a new store has a FORMAT record"),
        format!("{}\n", ferry_raft::format::CURRENT)
    );
    // What every data dir made before this change looks like.
    std::fs::remove_file(&record).unwrap();

    c.restart(0).await;
    let value = eventually("the old store's key", WAIT, || async {
        local_value(c.local(0), "old/k").await
    })
    .await;
    assert_eq!(value, "v");
    put(c.local(0), "old/k2", "v2").await;
    assert!(
        !record.exists(),
        "an old store opens unchanged: no record added"
    );
    let version = c.local(0).version().await.expect("versions");
    assert_eq!(
        version,
        Some(MasterVersion {
            binary: ferry_api::binary_version(),
            format: 1
        }),
        "the master reports its binary and its store's format"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_a_newer_format_is_refused_and_left_untouched() {
    let mut c = TestCluster::new(1).await;
    put(c.local(0), "k", "v").await;
    c.stop(0).await;
    let dir = c.data_dir(0);
    let newer = ferry_raft::format::CURRENT + 1;
    std::fs::write(dir.join(FILE), format!("{newer}\n")).unwrap();
    let before = tree(&dir);

    let err = match Master::start(c.config(0), Bootstrap::Existing).await {
        Ok(_) => panic!("a master started on a data dir of format {newer}"),
        Err(e) => e.to_string(),
    };
    for part in [
        dir.display().to_string(),
        format!("master data dir format version {newer}"),
        format!("versions up to {}", ferry_raft::format::CURRENT),
    ] {
        assert!(err.contains(&part), "{err:?} names {part:?}");
    }
    assert_eq!(tree(&dir), before, "no file of the data dir changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_an_earlier_ferry_wrote_opens_and_reads_back() {
    // As committed, and as a data dir from before format records looks.
    for recorded in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        copy_tree(&fixture(), &data);
        std::fs::remove_file(data.join("README.md")).unwrap();
        if !recorded {
            std::fs::remove_file(data.join(FILE)).unwrap();
        }
        let cfg = config(fast, &tmp, "127.0.0.1:0".parse().unwrap());
        let master = Master::start(cfg, Bootstrap::Existing)
            .await
            .unwrap_or_else(|e| panic!("the fixture's master starts (recorded: {recorded}): {e}"));
        let admin = admin_config(&master.data, &[master.addr.to_string()]).unwrap();
        let client = Client::new(&admin).unwrap();
        for (key, want) in FIXTURE_KEYS {
            let got = eventually(&format!("{key} read back"), WAIT, || async {
                client.get(key, Consistency::Linearizable).await.ok()
            })
            .await;
            let got = got.unwrap_or_else(|| panic!("{key} missing from the fixture"));
            assert_eq!(String::from_utf8(got.value).unwrap(), want, "{key}");
        }
        let gone = client.get("fixture/gone", Consistency::Linearizable).await;
        assert!(gone.unwrap().is_none(), "a deleted key stays deleted");
        put(&client, "fixture/new", "written by this binary").await;
        assert_eq!(
            ferry_api::files::format::read(&data).unwrap(),
            recorded.then_some(1),
            "the fixture's record is kept as it was"
        );
        master.shutdown().await;
    }
}

/// Rewrites `tests/fixtures/master-data-v1/` with this binary (see its README).
/// Run only by hand: `cargo test -p ferry --test store -- --ignored write_the_v1_fixture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the committed fixture"]
async fn write_the_v1_fixture() {
    fn small(cfg: &mut MasterConfig) {
        // Long-lived certificates, and a snapshot and a purged log in the store.
        cfg.master_cert_seconds = ferry_config::master::MAX_CERT_SECONDS;
        cfg.raft.snapshot_every = 8;
        cfg.raft.keep_behind_snapshot = 2;
    }
    let mut c = TestCluster::with(1, small).await;
    put(c.local(0), "fixture/gone", "deleted later").await;
    for i in 0..12 {
        put(c.local(0), &format!("fixture/churn{}", i % 3), "x").await;
    }
    for (key, value) in FIXTURE_KEYS {
        put(c.local(0), key, value).await;
    }
    crate::harness::delete(c.local(0), "fixture/gone").await;
    c.stop(0).await;
    let out = fixture();
    let readme = std::fs::read(out.join("README.md")).ok();
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    copy_tree(&c.data_dir(0), &out);
    if let Some(readme) = readme {
        std::fs::write(out.join("README.md"), readme).unwrap();
    }
}

/// Every file under `dir` with its bytes and mode, and every directory with its mode.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                todo.push(path.clone());
                out.insert(path, (mode, None));
            } else {
                out.insert(path.clone(), (mode, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    out
}

/// Copies the files under `from` to `to` (created), skipping test-only images.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ferry_raft::log_store::SYNC_IMAGE || name == ferry_raft::log_store::BLOB_IMAGE {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
