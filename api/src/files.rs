//! Private files written atomically and durably (keys, certificates, configs).
//!
//! Every step that decides what a power failure leaves is recorded into a
//! [`crash::Trace`] when a test asks for it ([`crash::record`]); the crash
//! model in [`crash`] then lists what the disk may hold after a power failure
//! at each step, so tests check the protocol itself, not only its happy path.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub mod crash;
pub mod format;

use crash::Op;

/// Creates `dir` (and its parents) with mode 0700, and makes its entry durable.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let made = crash::recording().then(|| missing_dirs(dir));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for d in made.into_iter().flatten() {
        crash::note(Op::MkDir(d));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // A directory just created exists after a power failure only once its
    // parent's entry for it is on disk.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// `dir` and those of its ancestors that do not exist yet, outermost first.
fn missing_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut missing: Vec<_> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// `fsync` of a directory: the entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    crash::note(Op::SyncDir(dir.to_path_buf()));
    Ok(())
}

/// Writes `data` to `path` atomically and durably with mode 0600. On error the
/// message names the file.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let named = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{p}: {e}"))
    };
    let tmp = path.with_extension("tmp-write");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(named(&tmp))?;
    crash::note(Op::Create(tmp.clone()));
    // `mode` applies only to a file it creates: a temporary an interrupted write
    // left behind keeps its own mode unless it is set here.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(named(&tmp))?;
    f.write_all(data).map_err(named(&tmp))?;
    crash::note(Op::Write(tmp.clone(), data.to_vec()));
    f.sync_all().map_err(named(&tmp))?;
    crash::note(Op::SyncFile(tmp.clone()));
    std::fs::rename(&tmp, path).map_err(named(path))?;
    crash::note(Op::Rename(tmp.clone(), path.to_path_buf()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(named(parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::crash::{self, Op, Trace};
    use super::*;

    /// What `write_private` of `new` over a file holding `old` (or none)
    /// promises: at every step a power failure leaves the old bytes or the new
    /// ones, never a mix or an empty file; once it returned, the new ones.
    fn atomic_and_durable(trace: &Trace, path: &Path, old: Option<&[u8]>, new: &[u8]) {
        let before = old.map(<[u8]>::to_vec);
        for step in 0..=trace.ops.len() {
            for disk in trace.after_power_failure(step) {
                let got = disk.file(path);
                let ok = got == before || got.as_deref() == Some(new);
                assert!(
                    ok,
                    "a power failure after step {step} of {:?} leaves {path:?} = {got:?}",
                    &trace.ops[..step]
                );
            }
        }
        for disk in trace.after_power_failure(trace.ops.len()) {
            assert_eq!(
                disk.file(path).as_deref(),
                Some(new),
                "written and returned, but not durable: {:?}",
                trace.ops
            );
        }
    }

    #[test]
    fn write_private_leaves_old_or_new_bytes_at_every_step_and_new_ones_after() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let path = dir.join("f");
        let ((), first) = crash::record(|| {
            create_private_dir(&dir).unwrap();
            write_private(&path, b"one").unwrap();
        });
        assert!(first.ops.contains(&Op::MkDir(dir.clone())), "{first:?}");
        atomic_and_durable(&first, &path, None, b"one");
        let ((), second) = crash::record(|| write_private(&path, b"two").unwrap());
        // What the first write made durable is where the second starts.
        let second = Trace::on(&first, second);
        atomic_and_durable(&second, &path, Some(b"one"), b"two");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    /// The model finds the bugs it is there for: the same write without its
    /// file sync, without its directory sync, or straight into the target.
    #[test]
    fn the_crash_model_catches_a_missing_sync_or_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let ((), old) = crash::record(|| write_private(&path, b"old").unwrap());
        let ((), good) = crash::record(|| write_private(&path, b"new").unwrap());
        let good = Trace::on(&old, good);
        atomic_and_durable(&good, &path, Some(b"old"), b"new");
        let without = |drop: fn(&Op) -> bool| Trace {
            ops: good.ops.iter().filter(|o| !drop(o)).cloned().collect(),
            ..good.clone()
        };
        let in_place = Trace {
            ops: vec![
                Op::Create(path.clone()),
                Op::Write(path.clone(), b"new".to_vec()),
                Op::SyncFile(path.clone()),
                Op::SyncDir(tmp.path().to_path_buf()),
            ],
            ..good.clone()
        };
        for (what, bad) in [
            ("no file sync", without(|o| matches!(o, Op::SyncFile(_)))),
            (
                "no directory sync",
                without(|o| matches!(o, Op::SyncDir(_))),
            ),
            ("no rename", in_place),
        ] {
            let caught =
                std::panic::catch_unwind(|| atomic_and_durable(&bad, &path, Some(b"old"), b"new"));
            assert!(caught.is_err(), "{what}: the model found nothing wrong");
        }
    }
}
