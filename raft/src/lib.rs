//! ferry's replicated store: openraft with a sled log and state machine, over QUIC.
//!
//! Layout:
//! - [`types`]: the openraft type config and the Raft command (an on-disk format, versioned).
//! - [`log_store`]: the sled Raft log; durable before acknowledged ([`log_store::Flusher`]).
//! - [`log_cache`]: the newest log entries, decoded, for replication and apply.
//! - [`sm`]: the sled state machine: versioned KV, apply, reads at a revision, snapshots.
//! - [`watch`]: watch streams from the state machine's history window and live events.
//! - [`network`]: Raft RPCs between masters over QUIC (`ferry-raft/1`).
//! - [`node`]: [`Store`], the handle the rest of ferry uses: group commit, forwarding to
//!   the leader, linearizable reads, watches, membership.
//! - [`format`]: the master data dir's format version (`FORMAT`), checked before the store opens.
//! - [`seed`]: seeding a store from a snapshot file (restore, force-new-cluster).
//! - [`Error`]: this crate's errors.
//!
//! This crate knows nothing of actix; it exposes `Send + Sync` async handles.

pub mod error;
pub mod fault;
pub mod format;
pub mod log_cache;
pub mod log_store;
pub mod network;
pub mod node;
pub mod seed;
pub mod sm;
pub mod types;
pub mod watch;

pub use error::{Error, Result};
pub use node::{Removed, Store, StoreOptions};
pub use types::{Command, CommandResponse, TypeConfig};

/// Opens the sled database a master keeps its log and state machine in.
pub fn open_db(dir: &std::path::Path) -> Result<sled::Db> {
    let db = sled::Config::new()
        .path(dir)
        // Records above segment_size/4 go to blob files (fsynced as sled writes
        // them, vendor patch 5); 16 MiB segments keep every object inline.
        .segment_size(16 * 1024 * 1024)
        .cache_capacity(256 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|e| match e {
            // sled holds an exclusive lock on its `db` file while open.
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                Error::Storage(format!(
                    "the store {} is in use by another process (a master already runs on this data dir; stop it first)",
                    dir.display()
                ))
            }
            e => Error::Storage(format!("open sled database at {}: {e}", dir.display())),
        })?;
    // sled recovers what the page cache still held after a SIGKILL, flushed or
    // not: make all of it durable before this master vouches for any of it. And
    // the directory entries sled may just have created (`db`, `conf`, `blobs/`,
    // the store directory itself) are durable only once their directories are.
    sync_on_open(dir)?;
    Ok(db)
}

/// `fsync` of everything sled keeps in `dir` (see [`open_db`]); a store that
/// emulates power failures images what this made durable.
fn sync_on_open(dir: &std::path::Path) -> Result<()> {
    let image = log_store::keeps_sync_image(dir);
    let failed = |what: &std::path::Path, e: std::io::Error| {
        Error::Storage(format!("fsync {}: {e}", what.display()))
    };
    let durable = |what: &std::path::Path| fault::fsync(what).map_err(|e| failed(what, e));
    durable(&dir.join("db"))?;
    if image {
        log_store::image_db(dir).map_err(|e| failed(&dir.join("db"), e))?;
    }
    durable(&dir.join("conf"))?;
    let blobs = dir.join("blobs");
    if blobs.exists() {
        let entries = std::fs::read_dir(&blobs)
            .map_err(|e| Error::Storage(format!("list {}: {e}", blobs.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::Storage(format!("list {}: {e}", blobs.display())))?;
            durable(&entry.path())?;
            if image {
                log_store::image_blob(dir, &entry.path()).map_err(|e| failed(&entry.path(), e))?;
            }
        }
        durable(&blobs)?;
    }
    durable(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        durable(parent)?;
    }
    Ok(())
}
