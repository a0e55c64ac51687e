//! Processes and ports: running `ferry` commands, finding processes by argument,
//! picking free UDP ports, and reading log tails.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `ferry` binary under test.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Picks `n` consecutive free UDP ports on 127.0.0.1 in 24000-26999 (the range
/// this project's tests use), checked by binding each and releasing it. The
/// range lies below Linux's ephemeral ports (32768-60999), so no client socket
/// of another process can take a port between this check and its master's
/// bind, and below the NodePort range (30000-32767) nodes bind.
pub fn free_ports(n: u16) -> u16 {
    for _ in 0..500 {
        let base = 24000 + rand::random::<u16>() % (3000 - n);
        let socks: Vec<_> = (0..n)
            .map_while(|i| std::net::UdpSocket::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if socks.len() == n as usize {
            return base;
        }
    }
    panic!("no {n} consecutive free UDP ports in 24000-26999");
}

/// A base port with `n` consecutive free TCP ports on 127.0.0.1 (27000-29999,
/// below the ephemeral and NodePort ranges as above), for HTTPS front ends
/// (`ferry up --https-port`).
pub fn free_tcp_ports(n: u16) -> u16 {
    for _ in 0..500 {
        let base = 27000 + rand::random::<u16>() % (3000 - n);
        let socks: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if socks.len() == n as usize {
            return base;
        }
    }
    panic!("no {n} consecutive free TCP ports in 27000-29999");
}

/// The last `lines` lines of a file (for failure reports).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Pids of live processes whose command line contains `needle` as one argument.
pub fn pids_with_arg(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let is_zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !is_zombie && cmd.split(|b| *b == 0).any(|a| a == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// A `ferry` command with HOME pointed at `home` and no ferry variables inherited.
pub fn ferry_cmd(home: &Path) -> Command {
    let mut c = Command::new(FERRY);
    c.env("HOME", home)
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_LOG")
        // Masters hold their flushes while `<data dir>/hold-flush` exists
        // (`Cluster::hold_flush`); no test file exists otherwise.
        .env("FERRY_FAULT_HOLD_FLUSH", "1")
        .stdin(Stdio::null());
    // FERRY_TEST_LOG sets the log filter of the processes a test starts (post-mortems).
    if let Some(filter) = std::env::var_os("FERRY_TEST_LOG") {
        c.env("FERRY_LOG", filter);
    }
    c
}

/// What a finished `ferry` command returned.
pub struct Ran {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `ferry` with `args` and HOME=`home`, waiting up to `timeout`.
pub fn run_ferry(home: &Path, args: &[&str], timeout: Duration) -> Ran {
    let n = rand::random::<u32>();
    let (out_path, err_path) = (home.join(format!("out-{n}")), home.join(format!("err-{n}")));
    let mut child = ferry_cmd(home)
        .args(args)
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn ferry");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ferry {}` did not exit within {timeout:?}; stderr:\n{}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let ran = Ran {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    ran
}

/// How long one CLI command in the end-to-end tests may take.
pub const T: Duration = Duration::from_secs(60);

/// `ferry --config CONF ARGS`.
pub fn ferry(home: &Path, conf: &str, args: &[&str]) -> Ran {
    let mut all = vec!["--config", conf];
    all.extend_from_slice(args);
    run_ferry(home, &all, T)
}

/// The stdout of `ferry --config CONF ARGS`, which must succeed.
pub fn ok(home: &Path, conf: &str, args: &[&str]) -> String {
    let r = ferry(home, conf, args);
    assert!(
        r.status.success(),
        "`ferry {}` failed: {}{}",
        args.join(" "),
        r.stderr,
        r.stdout
    );
    r.stdout
}
