//! What a power failure may leave of the files [`super`] writes: a recorder
//! of the steps that matter and a model of a journaling file system's crash
//! behaviour, for tests.
//!
//! The model is deliberately pessimistic, as ext4 with delayed allocation or
//! XFS may be: a file's bytes are durable only once the file is synced; a
//! directory entry (a file or directory created, a rename) only once its
//! directory is synced, though unsynced entries may persist too, in the order
//! they were made (the journal commits metadata in order). A file whose bytes
//! were not synced may come back as they were at its last sync, as written,
//! or torn (cut in the middle).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One step that decides what is on disk after a power failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A directory was created.
    MkDir(PathBuf),
    /// A file was created, or truncated if it existed.
    Create(PathBuf),
    /// Bytes were appended to the file.
    Write(PathBuf, Vec<u8>),
    /// `fsync` of the file: its bytes are durable.
    SyncFile(PathBuf),
    /// `rename(from, to)`.
    Rename(PathBuf, PathBuf),
    /// `fsync` of a directory: its entries are durable.
    SyncDir(PathBuf),
}

/// The steps recorded, after `before` (steps taken to be durable already,
/// such as an earlier recording's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Steps whose every effect is on disk before `ops` start.
    pub before: Vec<Op>,
    /// The recorded steps.
    pub ops: Vec<Op>,
}

thread_local! {
    static RECORDING: RefCell<Option<Vec<Op>>> = const { RefCell::new(None) };
}

/// Whether this thread is recording (see [`record`]).
pub fn recording() -> bool {
    RECORDING.with(|r| r.borrow().is_some())
}

/// Records `op` if this thread is recording.
pub fn note(op: Op) {
    RECORDING.with(|r| {
        if let Some(ops) = r.borrow_mut().as_mut() {
            ops.push(op);
        }
    });
}

/// Runs `f`, recording the steps this module's writers take on this thread.
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Trace) {
    let outer = RECORDING.with(|r| r.borrow_mut().replace(Vec::new()));
    let out = f();
    let ops = RECORDING.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
    let ops = ops.unwrap_or_default();
    (
        out,
        Trace {
            before: Vec::new(),
            ops,
        },
    )
}

/// A file or directory as the model holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Dir,
    File(usize),
}

/// A change to a directory, in the order it was made.
#[derive(Debug, Clone)]
struct Meta {
    /// The directory whose sync makes it durable.
    dir: PathBuf,
    /// Entry removed (a rename's source).
    unlink: Option<PathBuf>,
    /// Entry added.
    link: (PathBuf, Node),
}

/// How the bytes of files not synced since their last change come back.
#[derive(Debug, Clone, Copy)]
enum Bytes {
    Synced,
    Written,
    Torn,
}

/// What the disk holds after a power failure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Disk {
    entries: BTreeMap<PathBuf, Option<Vec<u8>>>,
    made_dirs: BTreeSet<PathBuf>,
}

impl Disk {
    /// Whether `path` exists (with every directory of it the trace made).
    pub fn exists(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
            && path
                .ancestors()
                .skip(1)
                .all(|d| !self.made_dirs.contains(d) || self.entries.contains_key(d))
    }

    /// The bytes of file `path`, if it exists.
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        if !self.exists(path) {
            return None;
        }
        self.entries.get(path).cloned().flatten()
    }
}

/// The model's state while it replays steps.
#[derive(Debug, Clone, Default)]
struct Model {
    /// Entries as the running system sees them.
    live: BTreeMap<PathBuf, Node>,
    /// Entries durable for certain.
    durable: BTreeMap<PathBuf, Node>,
    /// Directory changes since `durable`, in order, and whether a later sync
    /// of their directory made them durable.
    pending: Vec<(Meta, bool)>,
    /// Per file: bytes as written, and as last synced.
    written: Vec<Vec<u8>>,
    synced: Vec<Vec<u8>>,
    made_dirs: BTreeSet<PathBuf>,
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Model {
    fn file(&mut self, path: &Path) -> usize {
        match self.live.get(path) {
            Some(Node::File(i)) => *i,
            _ => panic!("crash model: {path:?} written before it was created"),
        }
    }

    fn link(&mut self, unlink: Option<PathBuf>, path: &Path, node: Node) {
        if let Some(from) = &unlink {
            self.live.remove(from);
        }
        self.live.insert(path.to_path_buf(), node);
        let meta = Meta {
            dir: parent(path),
            unlink,
            link: (path.to_path_buf(), node),
        };
        self.pending.push((meta, false));
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::MkDir(d) => {
                self.made_dirs.insert(d.clone());
                self.link(None, d, Node::Dir);
            }
            Op::Create(p) => match self.live.get(p) {
                Some(Node::File(i)) => self.written[*i].clear(),
                _ => {
                    self.written.push(Vec::new());
                    self.synced.push(Vec::new());
                    self.link(None, p, Node::File(self.written.len() - 1));
                }
            },
            Op::Write(p, bytes) => {
                let i = self.file(p);
                self.written[i].extend_from_slice(bytes);
            }
            Op::SyncFile(p) => {
                let i = self.file(p);
                self.synced[i] = self.written[i].clone();
            }
            Op::Rename(from, to) => {
                let node = *self
                    .live
                    .get(from)
                    .unwrap_or_else(|| panic!("crash model: rename of missing {from:?}"));
                self.link(Some(from.clone()), to, node);
            }
            Op::SyncDir(d) => {
                for (meta, forced) in &mut self.pending {
                    if &meta.dir == d {
                        *forced = true;
                    }
                }
            }
        }
    }

    /// Everything so far is on disk.
    fn settle(&mut self) {
        self.durable = self.live.clone();
        self.pending.clear();
        self.synced = self.written.clone();
    }

    fn disk(&self, persisted: usize, bytes: Bytes) -> Disk {
        let mut entries = self.durable.clone();
        for (i, (meta, forced)) in self.pending.iter().enumerate() {
            if i < persisted || *forced {
                if let Some(from) = &meta.unlink {
                    entries.remove(from);
                }
                entries.insert(meta.link.0.clone(), meta.link.1);
            }
        }
        let content = |i: usize| {
            let (written, synced) = (&self.written[i], &self.synced[i]);
            match bytes {
                Bytes::Synced => synced.clone(),
                Bytes::Written => written.clone(),
                Bytes::Torn if written != synced => written[..written.len() / 2].to_vec(),
                Bytes::Torn => synced.clone(),
            }
        };
        Disk {
            entries: entries
                .into_iter()
                .map(|(p, n)| match n {
                    Node::Dir => (p, None),
                    Node::File(i) => (p, Some(content(i))),
                })
                .collect(),
            made_dirs: self.made_dirs.clone(),
        }
    }
}

impl Trace {
    /// `next`, recorded after `prev` had finished (and was durable).
    pub fn on(prev: &Trace, next: Trace) -> Trace {
        let mut before = prev.before.clone();
        before.extend(prev.ops.iter().cloned());
        Trace {
            before,
            ops: next.ops,
        }
    }

    /// Every disk a power failure after the first `step` recorded steps may
    /// leave (a directory change is durable once its directory was synced;
    /// any prefix of the others may be too; unsynced bytes as synced, as
    /// written, or torn).
    pub fn after_power_failure(&self, step: usize) -> Vec<Disk> {
        let mut m = Model::default();
        for op in &self.before {
            m.step(op);
        }
        m.settle();
        for op in &self.ops[..step] {
            m.step(op);
        }
        let mut disks = BTreeSet::new();
        for persisted in 0..=m.pending.len() {
            for bytes in [Bytes::Synced, Bytes::Written, Bytes::Torn] {
                disks.insert(m.disk(persisted, bytes));
            }
        }
        disks.into_iter().collect()
    }
}
