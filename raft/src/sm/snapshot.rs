//! Snapshot files.
//!
//! A snapshot is a file of length-prefixed bincode records: a header carrying the
//! snapshot meta, every (key, value) pair of the state-machine tree, and a trailer
//! with the pair count. A truncated or corrupt file fails to load and changes
//! nothing. The current snapshot is `<snap_dir>/current.snap`; it is replaced by
//! write-to-temporary, fsync, rename, fsync of the directory.

use crate::types::{decode, encode, LogId, StorageError, StoredMembership, TypeConfig};
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, SnapshotMeta};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

type Meta = SnapshotMeta<u64, openraft::BasicNode>;

const CURRENT: &str = "current.snap";
/// Largest record a snapshot may hold (a value is at most 1.5 MiB).
const MAX_RECORD: usize = 8 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
enum Record {
    Header {
        version: u32,
        meta: Meta,
    },
    Pair(
        #[serde(with = "serde_bytes")] Vec<u8>,
        #[serde(with = "serde_bytes")] Vec<u8>,
    ),
    End {
        pairs: u64,
    },
}

/// A unique temporary path in `dir`.
pub fn temp_path(dir: &Path, kind: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    dir.join(format!("{kind}-{nanos}-{}.tmp", rand::random::<u32>()))
}

/// Removes temporaries left by a crash.
pub fn remove_temporaries(dir: &Path) -> crate::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn write_record(w: &mut impl Write, r: &Record) -> crate::Result<()> {
    let body = encode(r);
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    Ok(())
}

fn read_record(r: &mut impl Read) -> crate::Result<Record> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| crate::Error::Corrupt(format!("snapshot truncated: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RECORD {
        return Err(crate::Error::Corrupt(format!(
            "snapshot record of {len} bytes"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|e| crate::Error::Corrupt(format!("snapshot truncated: {e}")))?;
    decode(&body, "snapshot record")
}

/// Dumps `tree` to a new temporary file; the caller must not apply concurrently.
pub fn dump(
    tree: &sled::Tree,
    dir: &Path,
    last: Option<LogId>,
    membership: StoredMembership,
) -> crate::Result<(PathBuf, Meta)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let meta = Meta {
        last_log_id: last,
        last_membership: membership,
        snapshot_id: format!("{}-{nanos}", last.map_or(0, |l| l.index)),
    };
    let path = temp_path(dir, "build");
    let file = std::fs::File::create(&path)?;
    let mut w = BufWriter::new(file);
    write_record(
        &mut w,
        &Record::Header {
            version: 1,
            meta: meta.clone(),
        },
    )?;
    let mut pairs = 0u64;
    for item in tree.iter() {
        let (k, v) = item?;
        write_record(&mut w, &Record::Pair(k.to_vec(), v.to_vec()))?;
        pairs += 1;
    }
    write_record(&mut w, &Record::End { pairs })?;
    let file = w
        .into_inner()
        .map_err(|e| crate::Error::Storage(e.to_string()))?;
    file.sync_all()?;
    Ok((path, meta))
}

/// Loads a snapshot file into an (emptied) tree; returns its meta.
pub fn load(path: &Path, tree: &sled::Tree) -> crate::Result<Meta> {
    tree.clear()?;
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let Record::Header { version: 1, meta } = read_record(&mut r)? else {
        return Err(crate::Error::Corrupt(
            "snapshot has no version-1 header".into(),
        ));
    };
    // Plain inserts, no `sled::Batch` (see `apply::Writes`): the tree is not in
    // use until the generation switch makes it current.
    let mut pairs = 0u64;
    loop {
        match read_record(&mut r)? {
            Record::Pair(k, v) => {
                tree.insert(k, v)?;
                pairs += 1;
            }
            Record::End { pairs: want } if want == pairs => break,
            Record::End { pairs: want } => {
                return Err(crate::Error::Corrupt(format!(
                    "snapshot trailer says {want} pairs, found {pairs}"
                )))
            }
            Record::Header { .. } => {
                return Err(crate::Error::Corrupt("second header in snapshot".into()))
            }
        }
    }
    Ok(meta)
}

fn fsync_dir(dir: &Path) -> crate::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Makes `path` the current snapshot.
pub fn make_current(path: &Path, dir: &Path) -> crate::Result<()> {
    std::fs::rename(path, dir.join(CURRENT))?;
    fsync_dir(dir)
}

/// Copies a received snapshot to a durable temporary file and returns its path.
pub async fn persist_received(
    mut file: Box<tokio::fs::File>,
    dir: &Path,
) -> crate::Result<PathBuf> {
    use tokio::io::AsyncSeekExt;
    file.flush_all().await?;
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let path = temp_path(dir, "install");
    let mut out = tokio::fs::File::create(&path).await?;
    tokio::io::copy(&mut *file, &mut out).await?;
    out.sync_all().await?;
    Ok(path)
}

trait FlushAll {
    async fn flush_all(&mut self) -> std::io::Result<()>;
}

impl FlushAll for tokio::fs::File {
    async fn flush_all(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.flush().await
    }
}

/// Path of the current snapshot, if there is one.
pub fn current_path(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(CURRENT);
    path.exists().then_some(path)
}

/// The current snapshot, opened for reading.
pub async fn current(dir: &Path) -> crate::Result<Option<Snapshot<TypeConfig>>> {
    let path = dir.join(CURRENT);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Record::Header { meta, .. } = read_record(&mut BufReader::new(f))? else {
        return Err(crate::Error::Corrupt(format!(
            "{} has no header",
            path.display()
        )));
    };
    let file = tokio::fs::File::open(&path).await?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(file),
    }))
}

/// Finishes a snapshot dumped by the state machine.
pub struct Builder {
    dumped: Result<(PathBuf, Meta), String>,
    dir: PathBuf,
}

impl Builder {
    /// Wraps the result of [`dump`].
    pub fn new(dumped: crate::Result<(PathBuf, Meta)>, dir: PathBuf) -> Builder {
        Builder {
            dumped: dumped.map_err(|e| e.to_string()),
            dir,
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let err = |e: String| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(None),
                ErrorVerb::Write,
                std::io::Error::other(e),
            )
        };
        let (path, meta) = self.dumped.clone().map_err(err)?;
        // An installed snapshot may have become current while this one was built.
        if let Some(cur) = current(&self.dir).await.map_err(|e| err(e.to_string()))? {
            if cur.meta.last_log_id >= meta.last_log_id {
                let _ = std::fs::remove_file(&path);
                return Ok(cur);
            }
        }
        make_current(&path, &self.dir).map_err(|e| err(e.to_string()))?;
        let file = tokio::fs::File::open(self.dir.join(CURRENT))
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}
