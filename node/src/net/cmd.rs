//! Running `ip` and writing sysctls: the steps a network plan is made of, and
//! errors that say which command failed and what it printed.

use std::fmt;
use std::path::PathBuf;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run a command.
    Run(Cmd),
    /// Write `value` to `/proc/sys/<key>` (`net/ipv4/ip_forward`).
    Sysctl(String, String),
    /// Create the node's interface: a dummy, or where the kernel has no dummy
    /// driver a veth pair whose peer stays in the host namespace.
    Iface {
        /// The interface.
        name: String,
        /// The veth peer's name, used only when there is no dummy driver.
        peer: String,
    },
}

/// A command and the failures that mean "already so" (matched in its stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Stderr fragments that count as success (idempotent steps).
    pub tolerate: Vec<&'static str>,
}

/// `ip ARGS...`, tolerating `tolerate`.
pub fn ip(args: &[&str], tolerate: &[&'static str]) -> Step {
    Step::Run(Cmd {
        argv: std::iter::once("ip")
            .chain(args.iter().copied())
            .map(str::to_string)
            .collect(),
        tolerate: tolerate.to_vec(),
    })
}

/// A sysctl step.
pub fn sysctl(key: &str, value: &str) -> Step {
    Step::Sysctl(key.to_string(), value.to_string())
}

/// What `ip` says when something exists already.
pub const EXISTS: &str = "File exists";
/// What `ip` says when a device is missing.
pub const NO_DEVICE: &str = "Cannot find device";
/// What `ip` says when a route to delete is missing.
pub const NO_ROUTE: &str = "No such process";
/// What `ip netns del` says when the namespace is missing.
pub const NO_NETNS: &str = "No such file or directory";

/// A step that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The command ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The command could not be started.
    #[error("`{cmd}` could not run: {error}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        error: String,
    },
    /// A sysctl could not be written.
    #[error("writing {value} to {path}: {error}")]
    Sysctl {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// The value.
        value: String,
        /// Why.
        error: String,
    },
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Runs `argv`; its stdout on success.
pub fn output(argv: &[&str]) -> Result<String, CmdError> {
    let cmd = Cmd {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        tolerate: Vec::new(),
    };
    run(&cmd)
}

/// Runs `cmd`; its stdout on success (empty when a tolerated failure).
pub fn run(cmd: &Cmd) -> Result<String, CmdError> {
    let (prog, args) = cmd.argv.split_first().expect("a command has a program");
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| CmdError::Spawn {
            cmd: cmd.to_string(),
            error: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if cmd.tolerate.iter().any(|t| stderr.contains(t)) {
        return Ok(String::new());
    }
    Err(CmdError::Failed {
        cmd: cmd.to_string(),
        status: out.status.to_string(),
        stderr,
    })
}

/// Writes a sysctl.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), CmdError> {
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|e| CmdError::Sysctl {
        path,
        value: value.to_string(),
        error: e.to_string(),
    })
}

/// Carries out `steps` in order, stopping at the first failure.
pub fn apply(steps: &[Step]) -> Result<(), CmdError> {
    for s in steps {
        match s {
            Step::Run(c) => {
                run(c)?;
            }
            Step::Sysctl(k, v) => write_sysctl(k, v)?,
            Step::Iface { name, peer } => {
                let dummy = Cmd {
                    argv: ["ip", "link", "add", name, "type", "dummy"]
                        .map(str::to_string)
                        .to_vec(),
                    tolerate: vec![EXISTS],
                };
                match run(&dummy) {
                    Ok(_) => {}
                    Err(CmdError::Failed { stderr, .. })
                        if stderr.contains("Unknown device type")
                            || stderr.contains("not supported") =>
                    {
                        let veth = Cmd {
                            argv: [
                                "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
                            ]
                            .map(str::to_string)
                            .to_vec(),
                            tolerate: vec![EXISTS],
                        };
                        run(&veth)?;
                        run(&Cmd {
                            argv: ["ip", "link", "set", peer, "up"]
                                .map(str::to_string)
                                .to_vec(),
                            tolerate: Vec::new(),
                        })?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_its_stderr_and_tolerated_ones_pass() {
        let e = run(&Cmd {
            argv: vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()],
            tolerate: vec![],
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`sh -c echo oops >&2; exit 3` failed"), "{e}");
        assert!(e.contains("oops") && e.contains('3'), "{e}");
        let ok = run(&Cmd {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo File exists >&2; exit 2".into(),
            ],
            tolerate: vec![EXISTS],
        });
        assert_eq!(ok, Ok(String::new()));
        let e = output(&["/nonexistent/ip"]).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ip` could not run"), "{e}");
    }
}
