//! Snapshot files.
//!
//! A snapshot is a file of length-prefixed bincode records: a header carrying the
//! snapshot meta, every (key, value) pair of the state-machine tree, and a trailer
//! with the pair count and (version 2) the SHA-256 of every byte before it. A
//! truncated or corrupt file fails to load and changes nothing. The current
//! snapshot is `<snap_dir>/current.snap`; it is replaced by write-to-temporary,
//! fsync, rename, fsync of the directory. The same files are what
//! `ferry snapshot save` writes and `ferry master --restore` reads.

use crate::types::{decode, encode, LogId, StorageError, StoredMembership, TypeConfig};
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, SnapshotMeta};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A snapshot's meta: the last applied log id and the membership.
pub type Meta = SnapshotMeta<u64, openraft::BasicNode>;

const CURRENT: &str = "current.snap";
/// Largest record a snapshot may hold (a value is at most 1.5 MiB).
const MAX_RECORD: usize = 8 * 1024 * 1024;
/// The format written: version 2 ends with [`Record::Sealed`].
const VERSION: u32 = 2;

/// On-disk records: never change a variant, only add new ones.
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
    /// Version 1 trailer.
    End {
        pairs: u64,
    },
    /// Version 2 trailer: the pair count and the SHA-256 of every byte before this record.
    Sealed {
        pairs: u64,
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
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

/// Writes records, hashing every byte written.
struct RecordWriter<W: Write> {
    out: W,
    hash: ring::digest::Context,
    pairs: u64,
}

impl<W: Write> RecordWriter<W> {
    fn new(out: W, meta: &Meta) -> crate::Result<Self> {
        let mut w = RecordWriter {
            out,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            pairs: 0,
        };
        w.write(&Record::Header {
            version: VERSION,
            meta: meta.clone(),
        })?;
        Ok(w)
    }

    /// Writes `r` length-prefixed; every record but the trailer is hashed.
    fn write(&mut self, r: &Record) -> crate::Result<()> {
        let body = encode(r);
        let len = (body.len() as u32).to_be_bytes();
        if !matches!(r, Record::Sealed { .. }) {
            self.hash.update(&len);
            self.hash.update(&body);
        }
        self.out.write_all(&len)?;
        self.out.write_all(&body)?;
        Ok(())
    }

    fn pair(&mut self, k: Vec<u8>, v: Vec<u8>) -> crate::Result<()> {
        self.pairs += 1;
        self.write(&Record::Pair(k, v))
    }

    /// Writes the trailer; returns the writer.
    fn seal(mut self) -> crate::Result<W> {
        let sha256 = self.hash.clone().finish().as_ref().to_vec();
        self.write(&Record::Sealed {
            pairs: self.pairs,
            sha256,
        })?;
        Ok(self.out)
    }
}

/// Reads one record; `hash` (if any) takes its bytes unless it is a trailer.
fn read_record(
    r: &mut impl Read,
    hash: Option<&mut ring::digest::Context>,
) -> crate::Result<Record> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| crate::Error::Corrupt(format!("snapshot truncated: {e}")))?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_RECORD {
        return Err(crate::Error::Corrupt(format!(
            "snapshot record of {n} bytes (the limit is {MAX_RECORD})"
        )));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)
        .map_err(|e| crate::Error::Corrupt(format!("snapshot truncated: {e}")))?;
    let record = decode(&body, "snapshot record")?;
    if let Some(h) = hash {
        if !matches!(record, Record::End { .. } | Record::Sealed { .. }) {
            h.update(&len);
            h.update(&body);
        }
    }
    Ok(record)
}

/// Reads a whole snapshot file, handing each pair to `each`; checks the trailer
/// (count, and for version 2 the checksum) and that nothing follows it.
fn read_all(
    path: &Path,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> crate::Result<()>,
) -> crate::Result<(Meta, u64)> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let (version, meta) = match read_record(&mut r, Some(&mut hash))? {
        Record::Header { version, meta } if version == 1 || version == VERSION => (version, meta),
        Record::Header { version, .. } => {
            return Err(crate::Error::Corrupt(format!(
            "snapshot format version {version} is not supported (this ferry reads 1 and {VERSION})"
        )))
        }
        _ => return Err(crate::Error::Corrupt("snapshot has no header".into())),
    };
    let mut pairs = 0u64;
    let (want, sum) = loop {
        match read_record(&mut r, Some(&mut hash))? {
            Record::Pair(k, v) => {
                each(k, v)?;
                pairs += 1;
            }
            Record::End { pairs } if version == 1 => break (pairs, None),
            Record::Sealed { pairs, sha256 } if version == VERSION => break (pairs, Some(sha256)),
            Record::End { .. } | Record::Sealed { .. } => {
                return Err(crate::Error::Corrupt(format!(
                    "snapshot trailer does not match format version {version}"
                )))
            }
            Record::Header { .. } => {
                return Err(crate::Error::Corrupt("second header in snapshot".into()))
            }
        }
    };
    if want != pairs {
        return Err(crate::Error::Corrupt(format!(
            "snapshot trailer says {want} pairs, found {pairs}"
        )));
    }
    if let Some(sum) = sum {
        if hash.finish().as_ref() != sum.as_slice() {
            return Err(crate::Error::Corrupt(
                "snapshot checksum does not match its contents".into(),
            ));
        }
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest)? != 0 {
        return Err(crate::Error::Corrupt(
            "snapshot has bytes after its trailer".into(),
        ));
    }
    Ok((meta, pairs))
}

/// Checks a whole snapshot file without loading it; returns its meta and pair count.
pub fn validate(path: &Path) -> crate::Result<(Meta, u64)> {
    read_all(path, |_, _| Ok(()))
}

/// Copies the snapshot at `src` to a new temporary file in `dir` with `meta` as
/// its header and the keys in `set` replaced (`Some`) or dropped (`None`).
pub fn rewrite(
    src: &Path,
    dir: &Path,
    meta: &Meta,
    set: &[(&[u8], Option<Vec<u8>>)],
) -> crate::Result<PathBuf> {
    let path = temp_path(dir, "rewrite");
    let mut w = RecordWriter::new(BufWriter::new(std::fs::File::create(&path)?), meta)?;
    read_all(src, |k, v| {
        if set.iter().any(|(key, _)| *key == k.as_slice()) {
            return Ok(());
        }
        w.pair(k, v)
    })?;
    for (k, v) in set {
        if let Some(v) = v {
            w.pair(k.to_vec(), v.clone())?;
        }
    }
    finish(w, &path)?;
    Ok(path)
}

/// Seals a snapshot being written to `path` and makes it durable.
fn finish(w: RecordWriter<BufWriter<std::fs::File>>, path: &Path) -> crate::Result<()> {
    let file = w
        .seal()?
        .into_inner()
        .map_err(|e| crate::Error::Storage(format!("{}: {e}", path.display())))?;
    file.sync_all()?;
    Ok(())
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
    let mut w = RecordWriter::new(BufWriter::new(std::fs::File::create(&path)?), &meta)?;
    crate::fault::hit("snapshot_dump", dir);
    for item in tree.iter() {
        let (k, v) = item?;
        w.pair(k.to_vec(), v.to_vec())?;
    }
    finish(w, &path)?;
    Ok((path, meta))
}

/// Loads a snapshot file into an (emptied) tree; returns its meta.
pub fn load(path: &Path, tree: &sled::Tree) -> crate::Result<Meta> {
    tree.clear()?;
    // Plain inserts, no `sled::Batch` (see `apply::Writes`): the tree is not in
    // use until the generation switch makes it current.
    read_all(path, |k, v| {
        tree.insert(k, v)?;
        Ok(())
    })
    .map(|(meta, _)| meta)
}

/// Makes a directory's entries (a rename) durable.
pub(crate) fn fsync_dir(dir: &Path) -> crate::Result<()> {
    crate::fault::fsync(dir)?;
    Ok(())
}

/// Serializes every change of `current.snap` with the checks that decide it:
/// a snapshot build (outside the state-machine worker) and an install (inside
/// it) can otherwise interleave check and rename, and move `current.snap` back
/// to the older of the two.
static CURRENT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes `path` (a snapshot at `meta`) the current snapshot unless the current
/// one already covers as much; returns whether it did. In either case `path`
/// is gone afterwards.
pub fn make_current(path: &Path, dir: &Path, meta: &Meta) -> crate::Result<bool> {
    let _guard = CURRENT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, cur)) = open_current(dir)? {
        if cur.last_log_id >= meta.last_log_id {
            std::fs::remove_file(path)?;
            return Ok(false);
        }
    }
    crate::fault::hit("make_current", dir);
    std::fs::rename(path, dir.join(CURRENT))?;
    fsync_dir(dir)?;
    Ok(true)
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

/// The current snapshot opened for reading (at its start) with its meta. The
/// handle keeps reading the same file if a newer snapshot replaces it.
pub fn open_current(dir: &Path) -> crate::Result<Option<(std::fs::File, Meta)>> {
    use std::io::Seek;
    let mut f = match std::fs::File::open(dir.join(CURRENT)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Record::Header { meta, .. } = read_record(&mut BufReader::new(&f), None)? else {
        return Err(crate::Error::Corrupt(
            "current snapshot has no header".into(),
        ));
    };
    f.seek(std::io::SeekFrom::Start(0))?;
    Ok(Some((f, meta)))
}

/// The current snapshot, opened for reading. Its meta and data come from one
/// open file, so a newer snapshot made current meanwhile cannot mix with it.
pub async fn current(dir: &Path) -> crate::Result<Option<Snapshot<TypeConfig>>> {
    Ok(open_current(dir)?.map(|(f, meta)| Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(f)),
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
        // Opened before the rename: the handle reads this snapshot even if another
        // becomes current right after.
        let file = std::fs::File::open(&path).map_err(|e| err(e.to_string()))?;
        if make_current(&path, &self.dir, &meta).map_err(|e| err(e.to_string()))? {
            return Ok(Snapshot {
                meta,
                snapshot: Box::new(tokio::fs::File::from_std(file)),
            });
        }
        // An installed snapshot became current while this one was built.
        current(&self.dir)
            .await
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err("the current snapshot vanished".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64) -> Meta {
        Meta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index)),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("{index}-test"),
        }
    }

    fn pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b"k/a".to_vec(), b"1".to_vec()),
            (b"k/b".to_vec(), vec![0u8; 3000]),
        ]
    }

    /// Appends one length-prefixed record, as a writer of any version does.
    fn push(out: &mut Vec<u8>, r: &Record) {
        let body = encode(r);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
    }

    /// A file the current writer produces.
    fn v2_bytes(dir: &Path) -> Vec<u8> {
        let path = dir.join("v2.snap");
        let mut w = RecordWriter::new(
            BufWriter::new(std::fs::File::create(&path).unwrap()),
            &meta(7),
        )
        .unwrap();
        for (k, v) in pairs() {
            w.pair(k, v).unwrap();
        }
        finish(w, &path).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// A version-1 file: header, pairs, `End` — no checksum.
    fn v1_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        push(
            &mut out,
            &Record::Header {
                version: 1,
                meta: meta(5),
            },
        );
        for (k, v) in pairs() {
            push(&mut out, &Record::Pair(k, v));
        }
        push(&mut out, &Record::End { pairs: 2 });
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn tree(dir: &Path) -> sled::Tree {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .temporary(true)
            .open()
            .unwrap();
        let t = db.open_tree("sm").unwrap();
        t.insert(b"k/old", b"kept".to_vec()).unwrap();
        t
    }

    fn corrupt(r: crate::Result<(Meta, u64)>) -> String {
        match r {
            Err(crate::Error::Corrupt(m)) => m,
            other => panic!("expected a Corrupt error, got {:?}", other.map(|(_, n)| n)),
        }
    }

    #[test]
    fn version_2_round_trips_and_version_1_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = write(dir.path(), "a.snap", &v2_bytes(dir.path()));
        let (m, n) = validate(&v2).unwrap();
        assert_eq!((m.last_log_id.unwrap().index, n), (7, 2));
        let t = tree(dir.path());
        assert_eq!(load(&v2, &t).unwrap().snapshot_id, "7-test");
        let got: Vec<_> = t.iter().map(|r| r.unwrap()).collect();
        let want = pairs();
        assert_eq!(got.len(), 2, "load empties the tree first");
        for ((k, v), (wk, wv)) in got.iter().zip(&want) {
            assert_eq!((k.as_ref(), v.as_ref()), (wk.as_slice(), wv.as_slice()));
        }

        let v1 = write(dir.path(), "v1.snap", &v1_bytes());
        let (m, n) = validate(&v1).unwrap();
        assert_eq!((m.last_log_id.unwrap().index, n), (5, 2));
        assert_eq!(load(&v1, &t).unwrap().snapshot_id, "5-test");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn unknown_versions_mismatched_trailers_and_trailing_bytes_fail_whole() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = v2_bytes(dir.path());

        // Bytes after the trailer, of either version.
        for (name, mut bytes) in [("v2", v2.clone()), ("v1", v1_bytes())] {
            bytes.push(0);
            let p = write(dir.path(), &format!("trailing-{name}.snap"), &bytes);
            let m = corrupt(validate(&p));
            assert!(m.contains("bytes after its trailer"), "{name}: {m}");
            // A whole valid record after the trailer too.
            bytes.pop();
            push(&mut bytes, &Record::Pair(b"k/z".to_vec(), b"z".to_vec()));
            let p = write(dir.path(), &format!("extra-{name}.snap"), &bytes);
            let m = corrupt(validate(&p));
            assert!(m.contains("bytes after its trailer"), "{name}: {m}");
        }

        // A version this ferry does not know (a newer writer), even if well formed.
        for version in [0, 3, u32::MAX] {
            let mut out = Vec::new();
            push(
                &mut out,
                &Record::Header {
                    version,
                    meta: meta(9),
                },
            );
            push(&mut out, &Record::End { pairs: 0 });
            let p = write(dir.path(), &format!("v{version}.snap"), &out);
            let m = corrupt(validate(&p));
            assert!(
                m.contains(&format!("format version {version} is not supported")),
                "{version}: {m}"
            );
        }

        // A version-1 header with a version-2 trailer and the reverse.
        let mut v1_sealed = v1_bytes();
        let end = encode(&Record::End { pairs: 2 }).len() + 4;
        v1_sealed.truncate(v1_sealed.len() - end);
        push(
            &mut v1_sealed,
            &Record::Sealed {
                pairs: 2,
                sha256: vec![0; 32],
            },
        );
        let mut v2_end = v2.clone();
        let sealed = encode(&Record::Sealed {
            pairs: 2,
            sha256: vec![0; 32],
        })
        .len()
            + 4;
        v2_end.truncate(v2_end.len() - sealed);
        push(&mut v2_end, &Record::End { pairs: 2 });
        for (name, bytes) in [("v1-sealed", v1_sealed), ("v2-end", v2_end)] {
            let p = write(dir.path(), &format!("{name}.snap"), &bytes);
            let m = corrupt(validate(&p));
            assert!(
                m.contains("trailer does not match format version"),
                "{name}: {m}"
            );
        }

        // A changed byte in a pair (v2 checksum), a wrong count, no header, a second header.
        let mut flipped = v2.clone();
        let at = v2.len() - sealed - 10;
        flipped[at] ^= 1;
        let p = write(dir.path(), "flipped.snap", &flipped);
        assert!(corrupt(validate(&p)).contains("checksum does not match"));
        let mut counted = v1_bytes();
        counted.truncate(counted.len() - end);
        push(&mut counted, &Record::End { pairs: 3 });
        let p = write(dir.path(), "count.snap", &counted);
        assert!(corrupt(validate(&p)).contains("trailer says 3 pairs, found 2"));
        let mut headless = Vec::new();
        push(&mut headless, &Record::End { pairs: 0 });
        let p = write(dir.path(), "headless.snap", &headless);
        assert!(corrupt(validate(&p)).contains("no header"));
        let mut twice = v1_bytes();
        twice.truncate(twice.len() - end);
        push(
            &mut twice,
            &Record::Header {
                version: 1,
                meta: meta(5),
            },
        );
        let p = write(dir.path(), "twice.snap", &twice);
        assert!(corrupt(validate(&p)).contains("second header"));

        // A record longer than the limit fails before allocating it.
        let mut huge = v2[..v2.len() - sealed].to_vec();
        huge.extend_from_slice(&(MAX_RECORD as u32 + 1).to_be_bytes());
        let p = write(dir.path(), "huge.snap", &huge);
        assert!(corrupt(validate(&p)).contains("the limit is"));

        // Loading a bad file fails; a good load afterwards is whole (no mixing).
        let t = tree(dir.path());
        let mut bad = v2.clone();
        bad.push(0);
        let p = write(dir.path(), "bad.snap", &bad);
        assert!(load(&p, &t).is_err());
        let p = write(dir.path(), "good.snap", &v2);
        load(&p, &t).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.get(b"k/old").unwrap().is_none());
    }

    /// A snapshot file at `index` in `dir`.
    #[cfg(feature = "failpoints")]
    fn snap_file(dir: &Path, name: &str, index: u64) -> PathBuf {
        let path = dir.join(name);
        let w = RecordWriter::new(
            BufWriter::new(std::fs::File::create(&path).unwrap()),
            &meta(index),
        )
        .unwrap();
        finish(w, &path).unwrap();
        path
    }

    /// A build (of index 10) stopped between its "is it newer?" check and its
    /// rename, while an install of index 20 runs: the install must not get
    /// past its own check before the build's rename (else the build's older
    /// file lands last), so `current.snap` ends at 20. Without the lock around
    /// check and rename, the install reaches its rename while the build waits,
    /// and the build then moves `current.snap` back to 10.
    #[cfg(feature = "failpoints")]
    #[test]
    fn a_build_racing_an_install_never_moves_current_back() {
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        let older = snap_file(dir.path(), "older", 10);
        let newer = snap_file(dir.path(), "newer", 20);
        let (at_rename, arrived) = mpsc::channel::<u64>();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = std::sync::Mutex::new(release);
        let first = std::sync::atomic::AtomicBool::new(true);
        let _hook = crate::fault::set("make_current", &snaps, move |_| {
            let is_build = first.swap(false, std::sync::atomic::Ordering::SeqCst);
            let _ = at_rename.send(if is_build { 10 } else { 20 });
            if is_build {
                let _ = release
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30));
            }
        });
        let dir_a = snaps.clone();
        let build = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut b = Builder::new(Ok((older, meta(10))), dir_a);
            let snap = rt.block_on(b.build_snapshot()).unwrap();
            snap.meta.last_log_id.unwrap().index
        });
        assert_eq!(arrived.recv_timeout(Duration::from_secs(30)), Ok(10));
        let dir_b = snaps.clone();
        let install = std::thread::spawn(move || make_current(&newer, &dir_b, &meta(20)).unwrap());
        // The install must wait for the build to finish with current.snap;
        // give it time to (wrongly) get past its check.
        let raced = arrived.recv_timeout(Duration::from_millis(500)).is_ok();
        release_tx.send(()).unwrap();
        let built = build.join().unwrap();
        assert!(install.join().unwrap(), "the newer install became current");
        let (_, cur) = open_current(&snaps).unwrap().unwrap();
        assert_eq!(
            cur.last_log_id.unwrap().index,
            20,
            "current.snap moved back to the older build (the install passed its check \
             while the build waited before its rename: {raced})"
        );
        assert!(
            !raced,
            "the install got past its check while the build held it"
        );
        assert_eq!(built, 10, "the build answers its own snapshot");
    }
}
