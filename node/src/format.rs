//! The node data dir's format version: `<data_dir>/FORMAT`
//! ([`ferry_api::files::format`]), checked before `ferry node` reads or writes
//! anything there.
//!
//! Version 1: `node.conf` (a client config), `pods/<uid>/` (`spec.json`,
//! `state.json`, `exit.json`, logs, volumes), `net/ips` (the pod address
//! records) and the local volumes' storage.

use ferry_api::files::format::{self, FormatError};
use std::path::Path;

/// The newest node data dir format this binary reads and the one it writes.
pub const CURRENT: u32 = 1;

/// Whether `data_dir` holds anything besides a format record: a dir made
/// before records existed is version 1.
fn populated(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir)
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name() != format::FILE)))
}

/// Checks `data_dir`, recording [`CURRENT`] in a new one (which it creates).
/// Returns the version it holds; an error, having written nothing, when a
/// newer ferry made it.
pub fn prepare(data_dir: &Path) -> Result<u32, FormatError> {
    let version = format::prepare(data_dir, "node data dir", populated(data_dir), CURRENT)?;
    // Version 1 is the only one: nothing to migrate yet.
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_data_dir_is_recorded_when_new_and_left_alone_when_old() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        assert_eq!(prepare(&new).unwrap(), CURRENT);
        assert_eq!(format::read(&new).unwrap(), Some(CURRENT));
        assert_eq!(prepare(&new).unwrap(), CURRENT, "a second start opens it");

        let old = tmp.path().join("old");
        std::fs::create_dir_all(old.join("pods")).unwrap();
        std::fs::write(old.join(crate::join::NODE_CONF), "").unwrap();
        assert_eq!(prepare(&old).unwrap(), 1);
        assert_eq!(
            format::read(&old).unwrap(),
            None,
            "an old dir stays unrecorded"
        );
    }

    #[test]
    fn a_newer_node_data_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(format::FILE), format!("{}\n", CURRENT + 1)).unwrap();
        let err = prepare(tmp.path()).unwrap_err();
        assert!(matches!(err, FormatError::Newer { .. }), "{err}");
        assert!(
            err.to_string().contains("node data dir format version 2"),
            "{err}"
        );
        assert!(!populated(tmp.path()), "nothing but the record");
    }
}
