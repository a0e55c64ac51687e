//! The master data dir's format version: `<data_dir>/FORMAT`
//! ([`ferry_api::files::format`]), the layout of its `store/` and `snapshots/`.
//!
//! Version 1: one sled database in `store/` (trees `log`, `raft`,
//! `sm.<generation>`, root key `sm_generation`; the keys of `sm::keys`) and
//! snapshot files in `snapshots/`. Finer-grained formats carry versions of
//! their own inside it (`Command::V1`/`V2` log payloads, the snapshot file
//! header); a change that an older binary would misread bumps [`CURRENT`], and
//! [`prepare`] migrates the versions before it.

use crate::Result;
use ferry_api::files::format::{self, Opening};
use std::path::Path;

/// The newest master data dir format this binary reads and the one it writes.
pub const CURRENT: u32 = 1;

const WHAT: &str = "master data dir";

/// Whether `data_dir` holds a store (and so has a format, recorded or not).
fn populated(data_dir: &Path) -> bool {
    data_dir.join("store").exists()
}

/// How `data_dir` would open, writing nothing: an error when a newer ferry
/// wrote it (`ferry master` checks before it touches the dir).
pub fn check(data_dir: &Path) -> Result<Opening> {
    Ok(format::check(data_dir, WHAT, populated(data_dir), CURRENT)?)
}

/// Checks `data_dir` before its store opens, recording [`CURRENT`] when the
/// store is about to be made. Returns the version of the store it holds.
pub fn prepare(data_dir: &Path) -> Result<u32> {
    let version = format::prepare(data_dir, WHAT, populated(data_dir), CURRENT)?;
    // Version 1 is the only one: nothing to migrate yet.
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::files::format::{read, FormatError, FILE};

    #[test]
    fn a_store_without_a_record_is_version_one_and_stays_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        assert_eq!(check(dir.path()).unwrap(), Opening::Open(1));
        assert_eq!(prepare(dir.path()).unwrap(), 1);
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_new_data_dir_records_the_current_version_before_its_store() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path()).unwrap(), Opening::Create(CURRENT));
        assert_eq!(read(dir.path()).unwrap(), None, "check writes nothing");
        assert_eq!(prepare(dir.path()).unwrap(), CURRENT);
        assert_eq!(read(dir.path()).unwrap(), Some(CURRENT));
    }

    #[tokio::test]
    async fn force_new_cluster_refuses_a_newer_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        std::fs::write(dir.path().join(FILE), format!("{}\n", CURRENT + 1)).unwrap();
        let err = crate::seed::stage_local(dir.path(), 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::Error::Format(FormatError::Newer { .. })),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("store"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "sled never opened the store: {left:?}");
    }
}
