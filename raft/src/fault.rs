//! Test hooks on the durability path: named points that tests can attach a
//! function to, for the paths under one directory (so tests running at once in
//! one process never see each other's hooks). Compiled in only with the
//! `failpoints` feature; without it [`hit`] is an empty inline function.
//!
//! Points: `"fsync"` (after a file or directory under ferry's store was
//! fsynced, sled's data file by the log's flusher included; the path is what
//! was synced), `"make_current"` (a snapshot passed the check that it is
//! newer than `current.snap` and is about to be renamed over it; the path is
//! the snapshot directory), `"snapshot_dump"` (a snapshot of the state is
//! about to be dumped; the path is the snapshot directory), `"log_purge"` (a
//! purge's background removal of log entries starts; the path is the store
//! directory) and `"append_entries"` (an AppendEntries carrying
//! entries reached a master, on its async runtime: a hook that blocks stalls
//! that thread as a synchronous fsync would; the path is the master's
//! `snapshots/` directory, under its data dir).
//!
//! Delay points, for async code that must not block its thread (`set_delay`,
//! [`delay`]): `"append_entries"` (such a request then waits this long before
//! its Raft sees it: a slow network or a starved receiver).
//!
//! Cuts between masters (`cut`, [`is_cut`]): every master-to-master call
//! between two listen addresses fails at once both ways, as across a network
//! partition; clients still reach both.
//!
//! And, in every build, disk stalls for `ferry chaos`: with `FERRY_FAULT_DIR`
//! set, every fsync of the store waits while `<FERRY_FAULT_DIR>/stall-fsync`
//! exists ([`stall_file`], [`wait_stall`]). Without the variable it costs one
//! cached lookup.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable naming a master's fault directory (`ferry chaos` sets it).
pub const FAULT_DIR_ENV: &str = "FERRY_FAULT_DIR";
/// The file whose presence in the fault directory stalls every fsync.
pub const STALL_FSYNC: &str = "stall-fsync";

/// `<FERRY_FAULT_DIR>/stall-fsync`, when the variable is set (read once).
pub fn stall_file() -> Option<&'static Path> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| std::env::var_os(FAULT_DIR_ENV).map(|d| PathBuf::from(d).join(STALL_FSYNC)))
        .as_deref()
}

/// Waits while `file` exists (a stalled disk): the sync that follows, and
/// every acknowledgement behind it, come later; none is skipped.
pub fn wait_stall(file: &Path) {
    let mut logged = false;
    while file.exists() {
        if !logged {
            tracing::warn!(file = %file.display(), "fsync stalled (fault injection)");
            logged = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(feature = "failpoints")]
mod hooks {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    type Hook = Arc<dyn Fn(&Path) + Send + Sync>;

    static SET: AtomicUsize = AtomicUsize::new(0);
    #[allow(clippy::type_complexity)]
    static HOOKS: Mutex<Vec<(u64, &'static str, PathBuf, Hook)>> = Mutex::new(Vec::new());
    static DELAYS: Mutex<Vec<(u64, &'static str, PathBuf, Duration)>> = Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    /// (guard id, one master's listen address, the other's).
    static CUTS: Mutex<Vec<(u64, String, String)>> = Mutex::new(Vec::new());

    /// Cuts the masters at listen addresses `a` and `b` apart (both ways)
    /// until the guard drops.
    pub fn cut(a: &str, b: &str) -> Guard {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut cuts = CUTS.lock().unwrap_or_else(|p| p.into_inner());
        cuts.push((id, a.to_string(), b.to_string()));
        Guard(id)
    }

    /// Whether calls from the master at `from` to the one at `to` are cut.
    pub fn is_cut(from: &str, to: &str) -> bool {
        let cuts = CUTS.lock().unwrap_or_else(|p| p.into_inner());
        cuts.iter()
            .any(|(_, a, b)| (a == from && b == to) || (a == to && b == from))
    }

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
            let mut delays = DELAYS.lock().unwrap_or_else(|p| p.into_inner());
            delays.retain(|(id, ..)| *id != self.0);
            let mut cuts = CUTS.lock().unwrap_or_else(|p| p.into_inner());
            cuts.retain(|(id, ..)| *id != self.0);
        }
    }

    /// How long the delay point `point` holds `path` (the longest delay set
    /// for a directory above it). The caller sleeps.
    pub fn delay(point: &'static str, path: &Path) -> Option<Duration> {
        let delays = DELAYS.lock().unwrap_or_else(|p| p.into_inner());
        delays
            .iter()
            .filter(|(_, p, under, _)| *p == point && path.starts_with(under))
            .map(|(.., d)| *d)
            .max()
    }

    /// Makes `delay` answer `by` for `point` on paths under `under`, until
    /// the guard drops.
    pub fn set_delay(point: &'static str, under: &Path, by: Duration) -> Guard {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut delays = DELAYS.lock().unwrap_or_else(|p| p.into_inner());
        delays.push((id, point, under.to_path_buf(), by));
        Guard(id)
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
    /// A hook that holds whoever hits `point` under `under` until released
    /// (or 5 s), for tests that check what else runs meanwhile.
    pub struct Hold {
        holding: Arc<std::sync::atomic::AtomicBool>,
        release: std::sync::mpsc::Sender<()>,
        _guard: Guard,
    }

    /// Sets a [`Hold`] on `point` for paths under `under`.
    pub fn hold(point: &'static str, under: &Path) -> Hold {
        let holding = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let held = holding.clone();
        let guard = set(point, under, move |_| {
            held.store(true, Ordering::SeqCst);
            let _ = released
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv_timeout(Duration::from_secs(5));
            held.store(false, Ordering::SeqCst);
        });
        Hold {
            holding,
            release,
            _guard: guard,
        }
    }

    impl Hold {
        /// Whether a caller is being held now.
        pub fn holding(&self) -> bool {
            self.holding.load(Ordering::SeqCst)
        }

        /// Lets the held caller go.
        pub fn release(&self) {
            let _ = self.release.send(());
        }
    }
}

#[cfg(feature = "failpoints")]
pub use hooks::{cut, delay, hold, is_cut, set, set_delay, Guard, Hold};

/// Whether calls between these masters are cut: never without `failpoints`.
#[cfg(not(feature = "failpoints"))]
#[inline]
pub fn is_cut(_from: &str, _to: &str) -> bool {
    false
}

/// How long the delay point `point` holds `path`: never without `failpoints`.
#[cfg(not(feature = "failpoints"))]
#[inline]
pub fn delay(_point: &'static str, _path: &Path) -> Option<std::time::Duration> {
    None
}

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
    let file = std::fs::File::open(path)?;
    if let Some(stall) = stall_file() {
        wait_stall(stall);
    }
    file.sync_all()?;
    hit("fsync", path);
    Ok(())
}
