//! The process runtime: each container runs as a host process group.
//!
//! A container is started through a shim (`ferry shim`, the same binary): the
//! shim leads a new session and process group, starts the container's command
//! in that group, waits for it and writes its exit status to a file in the
//! container's directory. So the node agent can restart without touching
//! running containers, re-adopt them by the pid and start time it recorded
//! (a reused pid is never mistaken for the container), and still learn how
//! each one ended.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What the agent records about a started container (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The shim's pid (the process group's id).
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// Exit code (128 + signal when killed by one).
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// The files of one container run.
#[derive(Debug, Clone)]
pub struct ContainerDir(pub PathBuf);

impl ContainerDir {
    fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    fn exit(&self) -> PathBuf {
        self.0.join("exit.json")
    }
    /// The container's log (stdout and stderr).
    pub fn log(&self) -> PathBuf {
        self.0.join("log")
    }

    /// The recorded start, if any.
    pub fn started(&self) -> Option<Started> {
        let b = std::fs::read(self.state()).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// The recorded exit, if any.
    pub fn exited(&self) -> Option<Exited> {
        let b = std::fs::read(self.exit()).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

/// A process's start time in clock ticks since boot, if it exists.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its closing ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorded process still runs (same pid and start time, not a zombie).
pub fn running(s: &Started) -> bool {
    if start_ticks(s.pid) != Some(s.start_ticks) {
        return false;
    }
    let state = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap_or_default();
    let st = state
        .rfind(')')
        .and_then(|i| state[i + 1..].split_whitespace().next());
    !matches!(st, Some("Z" | "X"))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The environment (nothing is inherited from the agent).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: PathBuf,
}

/// Starts `spec` through the shim, in a fresh container directory `dir`. The
/// caller keeps the returned child and polls it (`try_wait`) so it is reaped.
pub fn start(
    shim: &Path,
    dir: &ContainerDir,
    spec: &Spec,
) -> std::io::Result<(Started, std::process::Child)> {
    std::fs::create_dir_all(&dir.0)?;
    let _ = std::fs::remove_file(dir.exit());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())?;
    let mut cmd = std::process::Command::new(shim);
    cmd.arg("shim")
        .arg("--exit-file")
        .arg(dir.exit())
        .arg("--")
        .args(&spec.argv)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: signals reach the whole container.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let started = Started {
        pid,
        start_ticks: start_ticks(pid).unwrap_or_default(),
        started_at: crate::now(),
    };
    ferry_api::files::write_private(
        &dir.state(),
        &serde_json::to_vec(&started).expect("serializes"),
    )?;
    Ok((started, child))
}

/// Sends `sig` to the container's whole process group (if it is still the same).
pub fn signal(s: &Started, sig: Signal) {
    if start_ticks(s.pid) == Some(s.start_ticks) {
        let _ = killpg(Pid::from_raw(s.pid), sig);
    }
}

/// The shim: runs `argv` in this process group, waits, records the exit in
/// `exit_file`, and exits with the same code. SIGTERM, SIGINT and SIGHUP reach
/// the command through the group; the shim catches them (a handler, which the
/// command does not inherit, unlike an ignored signal) to outlive the command
/// and record its end. SIGKILL ends both: the agent then reports exit 137.
pub fn shim(exit_file: &Path, argv: &[String]) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry shim: {e}");
            return 126;
        }
    };
    use tokio::signal::unix::{signal as catch, SignalKind};
    let _caught: Vec<_> = rt.block_on(async {
        [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter_map(|k| catch(k).ok())
        .collect()
    });
    let Some((prog, args)) = argv.split_first() else {
        eprintln!("ferry shim: no command");
        return 127;
    };
    let exited = match std::process::Command::new(prog).args(args).status() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal();
            Exited {
                code: status.code().unwrap_or(128 + signal.unwrap_or(0)),
                signal,
                finished_at: crate::now(),
            }
        }
        Err(e) => {
            eprintln!("ferry shim: cannot run {prog:?}: {e}");
            Exited {
                code: if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                },
                signal: None,
                finished_at: crate::now(),
            }
        }
    };
    let _ = ferry_api::files::write_private(
        exit_file,
        &serde_json::to_vec(&exited).expect("serializes"),
    );
    exited.code
}

/// SIGKILLs every container recorded under `pods_dir` (`<pod>/<container>/`)
/// that still runs: for a local cluster that stops with its nodes.
pub fn kill_all(pods_dir: &Path) {
    let Ok(pods) = std::fs::read_dir(pods_dir) else {
        return;
    };
    for pod in pods.flatten() {
        let Ok(containers) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for c in containers.flatten() {
            if let Some(s) = ContainerDir(c.path()).started() {
                signal(&s, Signal::SIGKILL);
            }
        }
    }
}
