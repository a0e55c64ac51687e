//! Test hooks on the durability path: named points that tests can attach a
//! function to, for the paths under one directory (so tests running at once in
//! one process never see each other's hooks). Compiled in only with the
//! `failpoints` feature; without it [`hit`] is an empty inline function.
//!
//! Points: `"fsync"` (after a file or directory under ferry's store was
//! fsynced; the path is what was synced) and `"make_current"` (a snapshot
//! passed the check that it is newer than `current.snap` and is about to be
//! renamed over it; the path is the snapshot directory).

use std::path::Path;

#[cfg(feature = "failpoints")]
mod hooks {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    type Hook = Arc<dyn Fn(&Path) + Send + Sync>;

    static SET: AtomicUsize = AtomicUsize::new(0);
    #[allow(clippy::type_complexity)]
    static HOOKS: Mutex<Vec<(u64, &'static str, PathBuf, Hook)>> = Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    pub fn hit(point: &'static str, path: &Path) {
        if SET.load(Ordering::Acquire) == 0 {
            return;
        }
        let found: Vec<Hook> = HOOKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, p, under, _)| *p == point && path.starts_with(under))
            .map(|(_, _, _, h)| h.clone())
            .collect();
        for h in found {
            h(path);
        }
    }

    /// Removes its hook when dropped.
    pub struct Guard(u64);

    impl Drop for Guard {
        fn drop(&mut self) {
            let mut hooks = HOOKS.lock().unwrap_or_else(|p| p.into_inner());
            hooks.retain(|(id, ..)| *id != self.0);
            SET.store(hooks.len(), Ordering::Release);
        }
    }

    /// Runs `hook` whenever `point` is hit for a path under `under`, until the
    /// guard drops.
    pub fn set(
        point: &'static str,
        under: &Path,
        hook: impl Fn(&Path) + Send + Sync + 'static,
    ) -> Guard {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut hooks = HOOKS.lock().unwrap_or_else(|p| p.into_inner());
        hooks.push((id, point, under.to_path_buf(), Arc::new(hook)));
        SET.store(hooks.len(), Ordering::Release);
        Guard(id)
    }
}

#[cfg(feature = "failpoints")]
pub use hooks::{set, Guard};

/// Runs the hooks set for `point` on `path` (none without `failpoints`).
#[inline]
pub fn hit(point: &'static str, path: &Path) {
    #[cfg(feature = "failpoints")]
    hooks::hit(point, path);
    #[cfg(not(feature = "failpoints"))]
    let _ = (point, path);
}

/// `fsync` of a file or directory, then the `"fsync"` point.
pub fn fsync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    hit("fsync", path);
    Ok(())
}
