//! Scheduled backups (`[snapshot] every`, `keep`, `dir` in the master config).
//!
//! Every `every`, the master takes the snapshot `ferry snapshot save` would
//! stream (one covering the cluster's read index: everything committed when
//! it starts) and writes it into the backup directory as
//! `ferry-<UTC time>-rev<revision>.snap`: copied to a hidden temporary file,
//! fsynced, checked whole (record count and SHA-256); the oldest backups are
//! removed so that, with it, the newest `keep` stay; then it is renamed into
//! place and the directory fsynced — a file with that name is always
//! complete, and there are never more than `keep`. Every master keeps its own backups in
//! its own directory, so each host holds copies; a master that cannot reach
//! a quorum skips its turn (its own state may be stale) and tries at the next.

use ferry_raft::sm::snapshot;
use ferry_raft::Store;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prefix and suffix of backup file names.
const PREFIX: &str = "ferry-";
const SUFFIX: &str = ".snap";
/// Temporary files start with this (and are never counted as backups).
const PARTIAL: &str = ".partial-";

/// Runs the schedule until the task is aborted.
pub async fn run(store: Store, dir: PathBuf, every: Duration, keep: usize) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match save(&store, &dir, keep).await {
            Ok((path, removed)) => tracing::info!(
                file = %path.display(),
                removed,
                "scheduled backup saved"
            ),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "scheduled backup skipped"),
        }
    }
}

/// Takes one backup into `dir` and prunes to `keep`; returns the new file
/// and how many old ones were removed.
pub async fn save(store: &Store, dir: &Path, keep: usize) -> Result<(PathBuf, usize), String> {
    let (file, revision) = store.backup(false).await.map_err(|e| e.to_string())?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write(file, revision, &dir, keep))
        .await
        .map_err(|e| format!("backup task: {e}"))?
}

/// Writes the backup under a temporary name, makes room (the newest
/// `keep - 1` stay), then renames it into place: never more than `keep`
/// backups, and each one whole.
fn write(
    mut src: std::fs::File,
    revision: u64,
    dir: &Path,
    keep: usize,
) -> Result<(PathBuf, usize), String> {
    let at = |what: &str, p: &Path| format!("{what} {}", p.display());
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", at("creating", dir)))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let now = jiff::Timestamp::now();
    let name = format!(
        "{PREFIX}{}-rev{revision:012}{SUFFIX}",
        now.strftime("%Y%m%dT%H%M%S%.3fZ")
    );
    let tmp = dir.join(format!("{PARTIAL}{name}"));
    let mut copy = || -> Result<(), String> {
        let mut out =
            std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", at("creating", &tmp)))?;
        std::io::copy(&mut src, &mut out).map_err(|e| format!("{}: {e}", at("writing", &tmp)))?;
        out.sync_all()
            .map_err(|e| format!("{}: {e}", at("fsync", &tmp)))?;
        snapshot::validate(&tmp).map_err(|e| format!("the backup is not whole: {e}"))?;
        Ok(())
    };
    if let Err(e) = copy() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let removed = prune(dir, keep.saturating_sub(1))?;
    let path = dir.join(&name);
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", at("renaming to", &path)))?;
    sync_dir(dir)?;
    Ok((path, removed))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

/// The backup files in `dir`, oldest first (their names sort by time).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Removes all but the newest `keep` backups, and temporary files a crash
/// left (not the one being written); returns how many backups went.
fn prune(dir: &Path, keep: usize) -> Result<usize, String> {
    let files = list(dir)?;
    let old = files.len().saturating_sub(keep);
    for f in &files[..old] {
        std::fs::remove_file(f).map_err(|e| format!("removing {}: {e}", f.display()))?;
    }
    let partial: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PARTIAL))
        })
        .collect();
    // A temporary file another save is writing right now is at most seconds
    // old; one from before a crash is older than that.
    for p in partial {
        let stale = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if stale {
            let _ = std::fs::remove_file(&p);
        }
    }
    if old > 0 {
        sync_dir(dir)?;
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_and_leaves_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for t in [
            "20260101T000001.000Z",
            "20260101T000003.000Z",
            "20260101T000002.000Z",
        ] {
            std::fs::write(d.join(format!("ferry-{t}-rev000000000001.snap")), b"x").unwrap();
        }
        std::fs::write(d.join("notes.txt"), b"mine").unwrap();
        std::fs::write(d.join(".partial-ferry-x.snap"), b"in flight").unwrap();
        assert_eq!(prune(d, 2).unwrap(), 1);
        let left: Vec<String> = list(d)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                "ferry-20260101T000002.000Z-rev000000000001.snap",
                "ferry-20260101T000003.000Z-rev000000000001.snap"
            ]
        );
        assert!(d.join("notes.txt").exists());
        assert!(
            d.join(".partial-ferry-x.snap").exists(),
            "a fresh partial may be in use"
        );
    }
}
