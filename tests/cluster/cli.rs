//! CLI behaviour that needs no cluster: `ferry api-resources`, and output into a
//! pipe that closes early (`ferry ... | head`) ends quietly.

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
