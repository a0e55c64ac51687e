//! Who runs what on this machine: a directory one process at a time owns
//! (`ferry up`'s cluster dir, a node's data dir), and the processes `ferry up`
//! starts, which end with it.

use anyhow::{bail, Context, Result};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

/// The environment variable `ferry up` sets for the masters and nodes it
/// starts: its own pid.
pub const PARENT_ENV: &str = "FERRY_UP_PID";

/// How long a process whose `ferry up` is gone has for its graceful stop
/// (`ferry up` gives its masters and nodes as long).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// An exclusive lock on a file, with the owner's pid in it; released when
/// dropped or when the process ends, however it ends.
#[derive(Debug)]
pub struct Owned(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Takes `path` for this process, or fails naming the process that holds it
/// (`what` says what is held, `how` what to do about it).
pub fn own(path: &Path, what: &str, how: &str) -> Result<Owned> {
    use nix::fcntl::{Flock, FlockArg};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut f) => {
            // The pid, for the message another process shows.
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())?;
            Ok(Owned(f))
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                "another process".to_string()
            } else {
                format!("process {pid}")
            };
            bail!("{what} is in use by {who} ({}); {how}", path.display())
        }
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    }
}

/// For a master or node started by `ferry up`: stops this process (SIGTERM,
/// its graceful stop) once that `ferry up` is gone, however it ended, so a
/// killed `ferry up` leaves no cluster running without its supervisor.
pub fn end_with_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    let watch = move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if nix::unistd::getppid().as_raw() != parent {
            use nix::sys::signal::{kill, Signal};
            tracing::warn!(
                parent,
                "ferry up (the supervisor that started this process) is gone: stopping"
            );
            let _ = kill(nix::unistd::getpid(), Signal::SIGTERM);
            // As `ferry up` itself would: SIGKILL once the graceful stop has
            // had its time (a master whose peers all stop too may wait on
            // them; what it acknowledged is on disk).
            std::thread::sleep(STOP_GRACE);
            tracing::warn!("still running {STOP_GRACE:?} after SIGTERM: exiting");
            let _ = kill(nix::unistd::getpid(), Signal::SIGKILL);
            return;
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("ferry-parent".into())
        .spawn(watch)
    {
        tracing::warn!(error = %e, "cannot follow ferry up's life");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = own(&path, "the dir", "stop it first").unwrap();
        let e = own(&path, "the dir", "stop it first")
            .unwrap_err()
            .to_string();
        let me = std::process::id().to_string();
        assert!(e.contains("the dir is in use by process"), "{e}");
        assert!(e.contains(&me), "{e}");
        assert!(e.ends_with("stop it first"), "{e}");
        drop(first);
        own(&path, "the dir", "stop it first").expect("free once dropped");
    }
}
