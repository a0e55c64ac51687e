//! openraft's storage conformance suite against the sled log store and state machine.

use ferry_raft::log_store::{Flusher, LogStore};
use ferry_raft::sm::StateMachine;
use ferry_raft::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ferry_raft::open_db(&dir.path().join("store")).expect("open db");
        let flusher = Flusher::start(db.clone(), &dir.path().join("store")).expect("flusher");
        let log = LogStore::open(&db, flusher.clone()).expect("log store");
        let sm = StateMachine::open(&db, dir.path().join("snapshots"), 1000, flusher).expect("sm");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(SledBuilder).expect("storage suite");
}
