//! CLI behaviour that needs no cluster: `ferry api-resources`, output into a
//! pipe that closes early (`ferry ... | head`) ends quietly, and a pod's shim
//! keeps none of the descriptors it inherited.

use crate::procs::{ferry_cmd, run_ferry};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn api_resources_lists_served_kinds() {
    let home = tempfile::tempdir().expect("home");
    let ran = run_ferry(home.path(), &["api-resources"], Duration::from_secs(30));
    assert!(ran.status.success(), "stderr: {}", ran.stderr);
    let header = ran.stdout.lines().next().expect("header");
    assert!(
        header.starts_with("NAME") && header.contains("APIVERSION"),
        "{header}"
    );
    for row in [
        "deployments",
        "apps/v1",
        "configmaps",
        "coordination.k8s.io/v1",
    ] {
        assert!(ran.stdout.contains(row), "missing {row}:\n{}", ran.stdout);
    }
}

#[test]
fn closed_stdout_pipe_ends_quietly() {
    let home = tempfile::tempdir().expect("home");
    let mut child = ferry_cmd(home.path())
        .arg("api-resources")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry");
    // Close the read end before ferry has started writing: its first write fails
    // with EPIPE, as when `head` has exited.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "ferry panicked on a closed pipe: {stderr}"
    );
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
}

/// A pod's shim outlives the agent that started it, so it must not keep what
/// the agent inherited: a lock file its parent held (`flock`'s descriptor, not
/// close-on-exec) stayed locked for as long as the pod ran. The shim is
/// started here as an agent would be under `flock`: with descriptor 9 open on
/// a lock file; neither the shim nor its command may hold it.
#[test]
fn a_pod_shim_keeps_no_descriptor_it_inherited() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let lock = d.join("lock");
    let script = format!(
        "exec 9>{lock}; exec {ferry} shim --exit-file {exit} --log-file {log} -- sleep 30",
        lock = lock.display(),
        ferry = crate::procs::FERRY,
        exit = d.join("exit").display(),
        log = d.join("log").display(),
    );
    let mut shim = std::process::Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("start the shim");
    let pid = shim.id();
    // The command's pid, once the shim has started it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let child = loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children.split_whitespace().next() {
            break c.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shim started no command"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let holding = |p: &str| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{p}/fd"))
            .map(|fds| {
                fds.filter_map(|e| {
                    let e = e.ok()?;
                    let target = std::fs::read_link(e.path()).ok()?;
                    (target == lock).then(|| e.file_name().to_string_lossy().into_owned())
                })
                .collect()
            })
            .unwrap_or_default()
    };
    let (by_shim, by_command) = (holding(&pid.to_string()), holding(&child));
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &child, &pid.to_string()])
        .status();
    let _ = shim.wait();
    assert!(
        by_shim.is_empty() && by_command.is_empty(),
        "the lock file is still open: shim fds {by_shim:?}, command fds {by_command:?}"
    );
}
