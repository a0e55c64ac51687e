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
    /// Killed by the kernel for exceeding its memory limit (set by the agent).
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the command never started (`exec: "x": executable file not found
    /// in $PATH`): the run ends as Kubernetes' `StartError`, exit code 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_error: Option<String>,
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
    fn spec(&self) -> PathBuf {
        self.0.join("spec.json")
    }

    /// What the current run was started with.
    pub fn spec_of_run(&self) -> Option<Spec> {
        let b = std::fs::read(self.spec()).ok()?;
        serde_json::from_slice(&b).ok()
    }
    /// The current run's log: stdout and stderr, one line per record in the
    /// CRI format (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`).
    pub fn log(&self) -> PathBuf {
        self.0.join("log")
    }

    /// The FIFO that is the command's stdin (containers with `stdin: true`).
    pub fn stdin_fifo(&self) -> PathBuf {
        self.0.join("stdin")
    }

    /// The marker that ends a `stdinOnce` container's stdin: made when the
    /// first attach leaves, the shim then closes the FIFO's last writer.
    pub fn stdin_closed(&self) -> PathBuf {
        self.0.join("stdin.closed")
    }

    /// Where the shim writes the name of a `tty: true` container's terminal
    /// (`/dev/pts/N`), which an attach resizes.
    pub fn tty_name(&self) -> PathBuf {
        self.0.join("tty")
    }

    /// The previous run's log.
    pub fn previous_log(&self) -> PathBuf {
        self.0.join("log.previous")
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

/// The process group and start time (clock ticks since boot) of `pid`.
fn group_and_start(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let pgrp = rest.nth(2)?.parse().ok()?;
    let start = rest.nth(16)?.parse().ok()?;
    Some((pgrp, start))
}

/// SIGKILLs what is left of a container run whose command ended (the shim
/// calls it before it records the end) or whose shim is gone (the agent
/// does): the other processes of its process group `pgid` — started since
/// the group's leader did at `since` clock ticks, so never a later process
/// that took a freed number — and every process its cgroups (`cgroup.procs`
/// files) still hold, except `except` (the caller). As the end of a pod's
/// PID namespace in Kubernetes takes every process in it: a background
/// process outlives neither its container nor a crashed shim (it ran on
/// beside the restarted container, and held its output open so the end was
/// never recorded). Returns how many it killed.
pub fn kill_leftovers(pgid: i32, since: u64, cgroup_procs: &[PathBuf], except: i32) -> usize {
    let mut victims = std::collections::BTreeSet::new();
    for f in cgroup_procs {
        if let Ok(s) = std::fs::read_to_string(f) {
            victims.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if group_and_start(pid).is_some_and(|(g, start)| g == pgid && start >= since) {
                victims.insert(pid);
            }
        }
    }
    victims.remove(&except);
    victims.retain(|pid| *pid > 1);
    for pid in &victims {
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    victims.len()
}

/// Who a container's processes run as (`securityContext`): the user, its
/// group, and its supplementary groups (`supplementalGroups`, `fsGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `runAsUser`.
    pub uid: u32,
    /// `runAsGroup` (0, the image's group, when unset).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl User {
    /// As a command-line argument: `UID:GID:G1,G2`.
    pub fn arg(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        format!("{}:{}:{}", self.uid, self.gid, groups.join(","))
    }

    /// Parses [`User::arg`]'s form.
    pub fn parse(s: &str) -> Option<User> {
        let mut it = s.splitn(3, ':');
        let uid = it.next()?.parse().ok()?;
        let gid = it.next()?.parse().ok()?;
        let groups = match it.next()? {
            "" => Vec::new(),
            g => g
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        Some(User { uid, gid, groups })
    }

    /// Becomes this user in the calling process: supplementary groups, then
    /// the group, then the user (after which the first two are not allowed).
    pub fn become_it(&self) -> std::io::Result<()> {
        let groups: Vec<nix::unistd::Gid> = self
            .groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(self.gid))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(self.uid))?;
        Ok(())
    }
}

/// `ferry runas`: becomes `user` and then `argv` (the shim's way to start a
/// container as its securityContext's user). Returns only on failure, with
/// the exit code to use.
pub fn runas(user: &User, argv: &[String]) -> i32 {
    if let Err(e) = user.become_it() {
        eprintln!("ferry runas: becoming {}: {e}", user.arg());
        return 126;
    }
    let Some((prog, args)) = argv.split_first() else {
        return 127;
    };
    let e = std::os::unix::process::CommandExt::exec(std::process::Command::new(prog).args(args));
    eprintln!("exec: {prog:?}: {e}");
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// What to run (kept as `spec.json`, mode 0600, for `ferry exec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Who it runs as (`None`: as the agent, root).
    #[serde(default)]
    pub user: Option<User>,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The environment (nothing is inherited from the agent).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: PathBuf,
    /// Volumes bind-mounted in the container's own mount namespace.
    #[serde(default)]
    pub mounts: Vec<crate::volumes::Mount>,
    /// The `cgroup.procs` files the shim joins before it starts the command.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// The pod's network namespace (`/run/netns/...`), joined first; `None`
    /// shares the node's network.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The pod's hostname, set in a UTS namespace of its own (pods with a
    /// network namespace; the others keep the node's, as `hostNetwork` pods do).
    #[serde(default)]
    pub hostname: Option<String>,
    /// `stdin: true`: the command reads a FIFO that `kubectl attach -i` writes.
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce: true`: the FIFO ends when the first attach leaves.
    #[serde(default)]
    pub stdin_once: bool,
    /// `tty: true`: the command's stdin, stdout and stderr are a terminal
    /// the shim holds (see [`shim`]).
    #[serde(default)]
    pub tty: bool,
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
    // Each run has its own log; the one before stays for `logs --previous`.
    if dir.log().exists() {
        std::fs::rename(dir.log(), dir.previous_log())?;
    }
    ferry_api::files::write_private(&dir.spec(), &serde_json::to_vec(spec).expect("serializes"))?;
    let mut cmd = std::process::Command::new(shim);
    cmd.arg("shim")
        .arg("--exit-file")
        .arg(dir.exit())
        .arg("--log-file")
        .arg(dir.log())
        .arg("--mounts")
        .arg(serde_json::to_string(&spec.mounts).expect("serializes"))
        .arg("--cgroups")
        .arg(serde_json::to_string(&spec.cgroups).expect("serializes"));
    if let Some(ns) = &spec.netns {
        cmd.arg("--netns").arg(ns);
    }
    if let Some(h) = &spec.hostname {
        cmd.arg("--hostname").arg(h);
    }
    if spec.stdin {
        let _ = std::fs::remove_file(dir.stdin_closed());
        cmd.arg("--stdin-fifo").arg(dir.stdin_fifo());
        if spec.stdin_once {
            cmd.arg("--stdin-once");
        }
    }
    if spec.tty {
        let _ = std::fs::remove_file(dir.tty_name());
        cmd.arg("--tty-file").arg(dir.tty_name());
    }
    if let Some(u) = &spec.user {
        cmd.arg("--user").arg(u.arg());
    }
    cmd.arg("--")
        .args(&spec.argv)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: signals reach the whole container. A shim with
    // a terminal makes its own session instead (its group as well), to
    // control the terminal.
    if !spec.tty {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
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

/// What `ferry shim` runs, and where (its command-line arguments).
#[derive(Debug, Clone, Copy)]
pub struct ShimRun<'a> {
    /// Where the exit is recorded.
    pub exit_file: &'a Path,
    /// Where the output is recorded.
    pub log_file: &'a Path,
    /// The volumes to bind-mount (JSON).
    pub mounts: &'a str,
    /// The `cgroup.procs` files to join (JSON).
    pub cgroups: &'a str,
    /// The pod's network namespace.
    pub netns: Option<&'a Path>,
    /// The pod's hostname (a UTS namespace of its own).
    pub hostname: Option<&'a str>,
    /// The stdin FIFO, and whether it ends after the first attach.
    pub stdin: Option<(&'a Path, bool)>,
    /// Give the command a terminal; its name is written to this file.
    pub tty: Option<&'a Path>,
    /// Who the command runs as (`UID:GID:GROUPS`).
    pub user: Option<&'a str>,
    /// The command and its arguments.
    pub argv: &'a [String],
}

/// Closes every descriptor above stderr this process inherited. The shim
/// outlives the agent that started it (pods survive the agent's restart), so
/// whatever the agent's own parent left open without close-on-exec — a lock
/// file held by `flock`, a pipe a supervisor reads to its end — would stay
/// open, and held, for as long as the pod runs. Called first, before the shim
/// opens anything of its own.
fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    // The directory's own descriptor is among them, closed already: EBADF.
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}

/// The shim: joins the pod's network namespace `netns` (if any), runs `argv` in this process group, waits, records the exit in
/// `exit_file`, and exits with the same code. SIGTERM, SIGINT and SIGHUP reach
/// the command through the group; the shim catches them (a handler, which the
/// command does not inherit, unlike an ignored signal) to outlive the command
/// and record its end. SIGKILL ends both: the agent then reports exit 137.
pub fn shim(run: ShimRun<'_>) -> i32 {
    close_inherited_fds();
    let ShimRun {
        exit_file,
        log_file,
        mounts,
        cgroups,
        netns,
        hostname,
        stdin,
        tty,
        user,
        argv,
    } = run;
    let user = match user.map(|u| User::parse(u).ok_or(u)).transpose() {
        Ok(u) => u,
        Err(bad) => {
            eprintln!("ferry shim: bad --user {bad:?}");
            return 126;
        }
    };
    // A terminal's controller leads its session: first, before anything that
    // could fail leaves the shim in the agent's process group.
    if tty.is_some() {
        let _ = nix::unistd::setsid();
    }
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
    {
        Ok(f) => std::sync::Arc::new(std::sync::Mutex::new(f)),
        Err(e) => {
            eprintln!("ferry shim: {}: {e}", log_file.display());
            return 126;
        }
    };
    // The pod's network first: everything after runs in it.
    if let Some(ns) = netns {
        let joined = std::fs::File::open(ns)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = joined {
            let msg = format!(
                "ferry shim: joining the pod's network namespace {}: {e}\n",
                ns.display()
            );
            write_record(&log, "stderr", msg.as_bytes());
            return 126;
        }
    }
    // Its own hostname, as every pod has.
    if let Some(h) = hostname {
        let set = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)
            .and_then(|()| nix::unistd::sethostname(h));
        if let Err(e) = set {
            let msg = format!("ferry shim: setting the pod's hostname {h:?}: {e}\n");
            write_record(&log, "stderr", msg.as_bytes());
            return 126;
        }
    }
    // The mount namespace next: unshare needs a single-threaded process.
    let mounts: Vec<crate::volumes::Mount> = match serde_json::from_str(mounts) {
        Ok(m) => m,
        Err(e) => {
            write_record(
                &log,
                "stderr",
                format!("ferry shim: bad --mounts: {e}\n").as_bytes(),
            );
            return 126;
        }
    };
    let record = exit_file.with_file_name(crate::volumes::CREATED_TARGETS);
    if let Err(e) = mount_volumes(&mounts, &record) {
        write_record(&log, "stderr", format!("ferry shim: {e}\n").as_bytes());
        return 126;
    }
    // Into the container's cgroup: the command and its children start there.
    let cgroup_procs = match serde_json::from_str::<Vec<PathBuf>>(cgroups)
        .map_err(|e| format!("bad --cgroups: {e}"))
        .and_then(|procs| {
            crate::cgroups::join(&procs)
                .map(|()| procs)
                .map_err(|e| format!("joining the container's cgroup: {e}"))
        }) {
        Ok(p) => p,
        Err(e) => {
            write_record(&log, "stderr", format!("ferry shim: {e}\n").as_bytes());
            return 126;
        }
    };
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
        write_record(&log, "stderr", b"ferry shim: no command\n");
        return 127;
    };
    // As another user: through `ferry runas`, which becomes it (groups,
    // group, user) and then execs the command, so the command keeps its pid.
    let mut command = match &user {
        Some(u) => match std::env::current_exe() {
            Ok(ferry) => {
                let mut c = std::process::Command::new(ferry);
                c.args(["runas", "--user", &u.arg(), "--", prog.as_str()]);
                c
            }
            Err(e) => {
                let msg = format!("ferry shim: the ferry binary's path: {e}\n");
                write_record(&log, "stderr", msg.as_bytes());
                return 126;
            }
        },
        None => std::process::Command::new(prog),
    };
    let mut input = None;
    if let Some((fifo, once)) = stdin {
        match stdin_fifo(fifo, once) {
            Ok(r) => input = Some(r),
            Err(e) => {
                let msg = format!(
                    "ferry shim: the container's stdin {}: {e}\n",
                    fifo.display()
                );
                write_record(&log, "stderr", msg.as_bytes());
                return 126;
            }
        }
    }
    let terminal = match tty.map(make_terminal).transpose() {
        Ok(t) => t,
        Err(e) => {
            write_record(&log, "stderr", format!("ferry shim: {e}\n").as_bytes());
            return 126;
        }
    };
    match (&terminal, input.take()) {
        (Some(t), input) => {
            let slave = |t: &nix::pty::OpenptyResult| t.slave.try_clone().map(Stdio::from);
            match (slave(t), slave(t), slave(t)) {
                (Ok(i), Ok(o), Ok(e)) => {
                    command.stdin(i).stdout(o).stderr(e);
                }
                _ => {
                    write_record(&log, "stderr", b"ferry shim: sharing the terminal failed\n");
                    return 126;
                }
            }
            // What an attach writes goes to the terminal, as if typed.
            if let (Some(r), Ok(w)) = (input, t.master.try_clone()) {
                std::thread::spawn(move || {
                    let (mut r, mut w) = (r, std::fs::File::from(w));
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        }
        (None, Some(r)) => {
            command.stdin(Stdio::from(r));
        }
        (None, None) => {}
    }
    if terminal.is_none() {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let child = command.args(args).spawn();
    // The command keeps the terminal's slave side open in this process.
    drop(command);
    let status = child.and_then(|mut c| {
        let mut copiers = Vec::new();
        if let Some(t) = terminal {
            // Only the command holds the terminal now: its reads end (EIO)
            // when the command and its children are gone.
            drop(t.slave);
            let log = log.clone();
            let master = std::fs::File::from(t.master);
            copiers.push(std::thread::spawn(move || {
                copy_chunks(Box::new(master), "stdout", &log)
            }));
        }
        copiers.extend(
            [
                c.stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                c.stderr
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .zip(["stdout", "stderr"])
            .filter_map(|(r, name)| r.map(|r| (r, name)))
            .map(|(r, name)| {
                let log = log.clone();
                std::thread::spawn(move || copy_lines(r, name, &log))
            }),
        );
        let status = c.wait();
        // The command is gone: so is the rest of the container (and its
        // hold on the output, which the copiers read to its end).
        let me = std::process::id() as i32;
        if let Some(since) = start_ticks(me) {
            kill_leftovers(me, since, &cgroup_procs, me);
        }
        for t in copiers {
            let _ = t.join();
        }
        status
    });
    let exited = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal();
            Exited {
                code: status.code().unwrap_or(128 + signal.unwrap_or(0)),
                signal,
                finished_at: crate::now(),
                oom_killed: false,
                start_error: None,
            }
        }
        Err(e) => {
            let msg = format!("ferry shim: cannot run {prog:?}: {e}\n");
            write_record(&log, "stderr", msg.as_bytes());
            // In the OCI runtime's words, as the kubelet reports them.
            let why = match e.kind() {
                std::io::ErrorKind::NotFound if !prog.contains('/') => {
                    "executable file not found in $PATH".to_string()
                }
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            Exited {
                code: 128,
                signal: None,
                finished_at: crate::now(),
                oom_killed: false,
                start_error: Some(format!("failed to start container: exec: {prog:?}: {why}")),
            }
        }
    };
    let _ = ferry_api::files::write_private(
        exit_file,
        &serde_json::to_vec(&exited).expect("serializes"),
    );
    exited.code
}

/// Whether process `pid` has a child (`/proc` scanned for its parent pid).
fn has_child(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .and_then(|st| {
                let rest = st[st.rfind(')')? + 1..].to_string();
                rest.split_whitespace().nth(1)?.parse::<i32>().ok()
            })
            == Some(pid)
    })
}

/// What `ferry nsenter` runs, and where.
#[derive(Debug, Clone, Copy)]
pub struct Enter<'a> {
    /// The container's process (its shim).
    pub pid: i32,
    /// Its start time, so a reused pid is refused.
    pub ticks: u64,
    /// The command's working directory.
    pub workdir: &'a Path,
    /// The container's `cgroup.procs` files: an exec'd command runs under
    /// the container's limits and ends with it.
    pub cgroups: &'a [PathBuf],
    /// stdin is a terminal that becomes the command's controlling one.
    pub tty: bool,
    /// Who the command runs as.
    pub user: Option<&'a User>,
    /// The command and its arguments.
    pub argv: &'a [String],
}

/// `ferry nsenter`: joins the network, hostname and mount namespaces of
/// process `pid` (if it is still the one that started at `ticks`; those it
/// shares with this process are left alone) and its cgroups, and becomes
/// `argv`. Returns only on failure, with the exit code to use.
pub fn nsenter(e: Enter<'_>) -> i32 {
    let Enter {
        pid,
        ticks,
        workdir,
        cgroups,
        tty,
        user,
        argv,
    } = e;
    if start_ticks(pid) != Some(ticks) {
        eprintln!("the container is not running");
        return 126;
    }
    // The shim sets up the container's namespaces and volumes, then starts
    // the command: once it has a child, they are all in place (a hook or an
    // exec at once after the start found the host's mount namespace).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !has_child(pid) {
        if std::time::Instant::now() > deadline || start_ticks(pid) != Some(ticks) {
            eprintln!("the container's command has not started");
            return 126;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    use nix::sched::CloneFlags;
    // Both opened before either is entered: /proc is read in the node's view.
    let mut namespaces = Vec::new();
    for (ns, flag, what) in [
        ("net", CloneFlags::CLONE_NEWNET, "network"),
        ("uts", CloneFlags::CLONE_NEWUTS, "hostname"),
        ("mnt", CloneFlags::CLONE_NEWNS, "mount"),
    ] {
        // A namespace this process is in already (the node's own, as a
        // hostNetwork pod's) is not entered: that needs no privilege.
        let inode = |p: String| {
            std::fs::metadata(p)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        };
        if inode(format!("/proc/{pid}/ns/{ns}")) == inode(format!("/proc/self/ns/{ns}")) {
            continue;
        }
        match std::fs::File::open(format!("/proc/{pid}/ns/{ns}")) {
            Ok(f) => namespaces.push((f, flag, what)),
            Err(e) => {
                eprintln!("entering the container's {what} namespace: {e}");
                return 126;
            }
        }
    }
    for (f, flag, what) in namespaces {
        if let Err(e) = nix::sched::setns(f, flag) {
            eprintln!("entering the container's {what} namespace: {e}");
            return 126;
        }
    }
    if let Err(e) = crate::cgroups::join(cgroups) {
        eprintln!("joining the container's cgroup: {e}");
        return 126;
    }
    if tty {
        // Its own session, the terminal on stdin its controlling one.
        let led = nix::unistd::setsid()
            .map_err(|e| e.to_string())
            .and_then(|_| {
                rustix::process::ioctl_tiocsctty(std::io::stdin()).map_err(|e| e.to_string())
            });
        if let Err(e) = led {
            eprintln!("making the terminal the command's controlling one: {e}");
            return 126;
        }
    }
    if let Some(u) = user {
        if let Err(e) = u.become_it() {
            eprintln!("running as the container's user {}: {e}", u.arg());
            return 126;
        }
    }
    let Some((prog, args)) = argv.split_first() else {
        return 127;
    };
    // Entering a mount namespace moves the working directory to its root.
    let e = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(prog)
            .args(args)
            .current_dir(workdir),
    );
    eprintln!("exec: {prog:?}: {e}");
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Gives this process (and the command it starts) a private mount namespace
/// with each volume bind-mounted at its target (created if missing). The
/// targets' files and directories it creates are on the host's filesystem:
/// they are listed in `record` (see [`crate::volumes::CREATED_TARGETS`]) for
/// the agent to remove with the pod.
fn mount_volumes(mounts: &[crate::volumes::Mount], record: &Path) -> Result<(), String> {
    if mounts.is_empty() {
        return Ok(());
    }
    let mut created = Vec::new();
    let r = mount_all(mounts, &mut created);
    if !created.is_empty() {
        if let Err(e) = crate::volumes::record_created(record, &created) {
            // Not fatal: the pod runs; its targets stay on the host.
            eprintln!(
                "ferry shim: recording mount targets in {}: {e}",
                record.display()
            );
        }
    }
    r
}

/// The outermost missing ancestors of `target` (itself included), outermost first.
fn missing_from(target: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = target
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}

fn mount_all(mounts: &[crate::volumes::Mount], created: &mut Vec<PathBuf>) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        format!("volumes need a private mount namespace, which this node may not create ({e}): run the node as root")
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    for m in mounts {
        let missing = missing_from(&m.target);
        if m.source.is_dir() {
            created.extend(missing);
            std::fs::create_dir_all(&m.target)
                .map_err(|e| format!("mountPath {}: {e}", m.target.display()))?;
        } else if !m.target.exists() {
            created.extend(missing);
            if let Some(p) = m.target.parent() {
                std::fs::create_dir_all(p)
                    .map_err(|e| format!("mountPath {}: {e}", m.target.display()))?;
            }
            std::fs::write(&m.target, b"")
                .map_err(|e| format!("mountPath {}: {e}", m.target.display()))?;
        }
        mount(
            Some(&m.source),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            format!(
                "mounting {} at {}: {e}",
                m.source.display(),
                m.target.display()
            )
        })?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| format!("making {} read-only: {e}", m.target.display()))?;
        }
    }
    Ok(())
}

/// A terminal for the command: a pty whose slave side becomes this session's
/// controlling terminal, with this process group (the shim's and the
/// command's) in the foreground, so Ctrl-C typed on it signals the command;
/// its name is written to `name_file` for resizes.
fn make_terminal(name_file: &Path) -> Result<nix::pty::OpenptyResult, String> {
    let t = nix::pty::openpty(None, None).map_err(|e| format!("opening a terminal: {e}"))?;
    rustix::process::ioctl_tiocsctty(&t.slave)
        .map_err(|e| format!("making the terminal the controlling one: {e}"))?;
    let group = rustix::process::getpgrp();
    rustix::termios::tcsetpgrp(&t.slave, group)
        .map_err(|e| format!("setting the terminal's foreground group: {e}"))?;
    let name = nix::unistd::ttyname(&t.slave).map_err(|e| format!("naming the terminal: {e}"))?;
    ferry_api::files::write_private(name_file, name.as_os_str().as_encoded_bytes())
        .map_err(|e| format!("{}: {e}", name_file.display()))?;
    Ok(t)
}

/// Copies a terminal's output into the log as it comes: whole lines as full
/// records, and what is left of a read (a prompt) at once as a partial one.
fn copy_chunks(
    mut r: Box<dyn std::io::Read + Send>,
    stream: &str,
    log: &std::sync::Mutex<std::fs::File>,
) {
    let mut buf = vec![0u8; MAX_RECORD];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            write_tagged(log, stream, true, &rest[..=i]);
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            write_tagged(log, stream, false, rest);
        }
    }
}

/// The longest record; a longer line is split into partial (`P`) records.
const MAX_RECORD: usize = 16 * 1024;

/// Copies `r` into the log, a record per line (a longer line in parts).
fn copy_lines(
    r: Box<dyn std::io::Read + Send>,
    stream: &str,
    log: &std::sync::Mutex<std::fs::File>,
) {
    use std::io::{BufRead, Read};
    let mut r = std::io::BufReader::with_capacity(MAX_RECORD, r);
    loop {
        let mut line = Vec::new();
        match (&mut r)
            .take(MAX_RECORD as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let full = line.ends_with(b"\n");
        write_tagged(log, stream, full, &line);
    }
}

fn write_tagged(log: &std::sync::Mutex<std::fs::File>, stream: &str, full: bool, text: &[u8]) {
    use std::io::Write;
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut rec = format!(
        "{} {stream} {} ",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%9fZ"),
        if full { "F" } else { "P" }
    )
    .into_bytes();
    rec.extend_from_slice(body);
    rec.push(b'\n');
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(&rec);
    }
}

fn write_record(log: &std::sync::Mutex<std::fs::File>, stream: &str, text: &[u8]) {
    write_tagged(log, stream, true, text);
}

/// Makes `fifo` the command's stdin: its read end for the command, and a
/// write end this process keeps so the command sees no end of input before
/// anyone attached — until the shim exits or, with `once`, until the
/// [`ContainerDir::stdin_closed`] marker appears beside it.
fn stdin_fifo(fifo: &Path, once: bool) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(fifo);
    nix::unistd::mkfifo(
        fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )?;
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fifo)?;
    let keep = std::fs::OpenOptions::new().write(true).open(fifo)?;
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&read),
        FcntlArg::F_SETFL(OFlag::empty()),
    )?;
    let marker = fifo.with_file_name("stdin.closed");
    std::thread::spawn(move || {
        while !(once && marker.exists()) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        drop(keep);
    });
    Ok(read)
}

/// One record of a container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was written (RFC 3339).
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether it ends a line.
    pub full: bool,
    /// The text.
    pub text: &'a [u8],
}

/// Parses one log record (without its newline).
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Record {
        time,
        stream,
        full: tag == b"F",
        text,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn alive(pid: i32) -> bool {
        group_and_start(pid).is_some()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    }

    #[test]
    fn what_a_dead_leader_leaves_in_its_group_is_killed_and_nothing_else() {
        // A group leader that starts two background sleeps and is killed,
        // as a shim SIGKILLed on its own.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; sleep 300 & echo $!; wait"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let since = start_ticks(pgid).unwrap();
        let out = leader.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
        let kids: Vec<i32> = (0..2)
            .map(|_| lines.next().unwrap().unwrap().trim().parse().unwrap())
            .collect();
        // Another process, not in the group: left alone.
        let mut other = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        leader.kill().unwrap();
        leader.wait().unwrap();
        assert!(
            kids.iter().all(|k| alive(*k)),
            "the leader's children outlive it"
        );
        let killed = kill_leftovers(pgid, since, &[], std::process::id() as i32);
        assert_eq!(killed, 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while kids.iter().any(|k| alive(*k)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            kids.iter().all(|k| !alive(*k)),
            "the group's leftovers are gone"
        );
        assert!(
            other.try_wait().unwrap().is_none(),
            "a process outside the group lives"
        );
        // A group that started later than `since` claims is not touched.
        assert_eq!(kill_leftovers(other.id() as i32, u64::MAX, &[], -1), 0);
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
