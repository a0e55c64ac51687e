//! Real kubectl (the one on PATH) against the in-process cluster's HTTPS
//! API: client-side apply and server-side apply one after the other, as
//! Kubernetes upgrades the managed fields between them.

use crate::api::cluster;
use crate::harness::TestCluster;
use ferry_api::tls::{Ca, Identity};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// kubectl with a kubeconfig for the cluster's admin through master 1's
/// HTTPS port; HOME in a temporary directory (kubectl's caches).
pub(crate) struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: String,
}

/// What a finished kubectl returned.
pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// `None` when kubectl is not on PATH (the test then says so and passes).
    pub fn new(c: &TestCluster, who: &Identity) -> Option<Kubectl> {
        if Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("kubectl is not on PATH: skipped");
            return None;
        }
        let pair = c.master(0).data.ca().unwrap();
        let ca = Ca::load(&pair.cert_pem, &pair.key_pem).unwrap();
        let cert = ca.issue(who, &[]).unwrap();
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("kubeconfig");
        let text = ferry_api::kubeconfig::render(
            &format!("https://{}", c.master(1).https_addr),
            &pair.cert_pem,
            &cert.cert_pem,
            &cert.key_pem,
            "test",
        );
        std::fs::write(&path, text).unwrap();
        Some(Kubectl {
            kubeconfig: path.to_str().unwrap().to_string(),
            home,
        })
    }

    pub fn run(&self, args: &[&str], input: Option<&str>) -> Out {
        let mut child = Command::new("kubectl")
            .args(["--kubeconfig", &self.kubeconfig, "--request-timeout", "20s"])
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(text) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `input` on stdin and expects success; returns stdout.
    pub fn ok_in(&self, args: &[&str], input: &str) -> String {
        let o = self.run(args, Some(input));
        assert!(o.ok, "kubectl {}: {}{}", args.join(" "), o.stdout, o.stderr);
        o.stdout
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, None);
        assert!(o.ok, "kubectl {}: {}{}", args.join(" "), o.stdout, o.stderr);
        o.stdout
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl -o json")
    }

    #[allow(dead_code)]
    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

/// A Deployment manifest with `replicas`, the label `tier` when given, and `image`.
fn manifest(replicas: u32, tier: Option<&str>, image: &str) -> String {
    let tier = tier.map(|t| format!("\n    tier: {t}")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web{tier}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

/// `(manager, operation, subresource)` of each managedFields entry.
fn managers(obj: &Value) -> Vec<(String, String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("manager"), s("operation"), s("subresource"))
        })
        .collect()
}

fn last_applied(obj: &Value) -> Value {
    let text = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("no last-applied annotation: {obj}"));
    serde_json::from_str(text).expect("last-applied JSON")
}

/// `kubectl apply` then `kubectl apply --server-side` with a changed field,
/// and back: as Kubernetes, the server-side apply by `kubectl` does not
/// conflict on what the client-side apply owned while the live values are
/// still the last-applied ones (`lastAppliedManager`), keeps the annotation
/// up to date (`lastAppliedUpdater`), and kubectl's managed-fields migration
/// (a JSON patch of `metadata.managedFields` with the resourceVersion as
/// precondition) hands the client-side fields to the `kubectl` Apply entry,
/// so a field dropped from the manifest is removed. A value another manager
/// changed since still conflicts. The annotation is dropped when it would not
/// fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_and_server_side_apply_take_turns_without_conflicts() {
    let (c, _api) = cluster().await;
    let Some(k) = Kubectl::new(&c, &Identity::Admin) else {
        return;
    };
    let get = || {
        k.json(&[
            "get",
            "deployment",
            "web",
            "-n",
            "default",
            "--show-managed-fields",
        ])
    };

    // Client-side apply creates it.
    let out = k.ok_in(
        &["apply", "-f", "-"],
        &manifest(2, Some("front"), "nginx:1.25"),
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");

    // Server-side apply of a changed replicas: no conflict with
    // kubectl-client-side-apply, which owned it.
    let out = k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &manifest(3, Some("front"), "nginx:1.25"),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let d = get();
    assert_eq!(d["spec"]["replicas"], 3, "{d}");
    // The annotation follows the server-side apply.
    assert_eq!(last_applied(&d)["spec"]["replicas"], 3, "{d}");
    // Migrated: the client-side apply's Update entry is gone, kubectl's Apply
    // entry owns its fields, kubectl-last-applied the annotation.
    let m = managers(&d);
    assert!(
        !m.iter().any(|(n, _, _)| n == "kubectl-client-side-apply"),
        "{m:?}"
    );
    assert!(
        m.contains(&("kubectl".into(), "Apply".into(), String::new())),
        "{m:?}"
    );
    assert!(
        m.contains(&("kubectl-last-applied".into(), "Apply".into(), String::new())),
        "{m:?}"
    );

    // A label dropped from the manifest is removed: kubectl owns it now.
    k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &manifest(3, None, "nginx:1.25"),
    );
    let d = get();
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d}");
    assert!(last_applied(&d)["metadata"]["labels"].get("tier").is_none());

    // Back to client-side apply: it patches from the annotation the
    // server-side applies kept, and takes the fields it changes.
    let out = k.ok_in(&["apply", "-f", "-"], &manifest(4, None, "nginx:1.26"));
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = get();
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert!(
        managers(&d).contains(&(
            "kubectl-client-side-apply".into(),
            "Update".into(),
            String::new()
        )),
        "{:?}",
        managers(&d)
    );

    // And server-side again: still no conflict.
    k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &manifest(5, None, "nginx:1.26"),
    );
    let d = get();
    assert_eq!(d["spec"]["replicas"], 5);
    assert!(
        !managers(&d)
            .iter()
            .any(|(n, _, _)| n == "kubectl-client-side-apply"),
        "{:?}",
        managers(&d)
    );

    // The reverse start: created by a server-side apply (no annotation),
    // then client-side applied (kubectl warns and records the annotation),
    // then server-side applied again with a change.
    let third = |replicas: u32, image: &str| {
        manifest(replicas, Some("back"), image)
            .replace("name: web\n  namespace", "name: web3\n  namespace")
    };
    k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &third(1, "nginx:1.25"),
    );
    let o = k.run(&["apply", "-f", "-"], Some(&third(2, "nginx:1.26")));
    assert!(o.ok, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains("missing the kubectl.kubernetes.io/last-applied-configuration annotation"),
        "{}",
        o.stderr
    );
    let out = k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &third(3, "nginx:1.27"),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let d = k.json(&[
        "get",
        "deployment",
        "web3",
        "-n",
        "default",
        "--show-managed-fields",
    ]);
    assert_eq!(d["spec"]["replicas"], 3, "{d}");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(last_applied(&d)["spec"]["replicas"], 3, "{d}");
    assert!(
        !managers(&d)
            .iter()
            .any(|(n, _, _)| n == "kubectl-client-side-apply"),
        "{:?}",
        managers(&d)
    );

    // A server-side apply whose configuration would not fit beside its
    // copy in the annotation (256 KiB for all annotations): Kubernetes drops
    // the annotation and applies; so does ferry.
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: default\ndata:\n  k: {value}\n"
        )
    };
    k.ok_in(&["apply", "-f", "-"], &cm("small"));
    let out = k.ok_in(
        &["apply", "--server-side", "-f", "-"],
        &cm(&"x".repeat(300_000)),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let got = k.json(&["get", "configmap", "big", "-n", "default"]);
    assert_eq!(got["data"]["k"].as_str().map(str::len), Some(300_000));
    assert!(
        got["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none(),
        "{}",
        got["metadata"]["annotations"]
    );

    // A second object, client-side applied, whose replicas another manager
    // (kubectl scale) changed since: the live value is no longer the
    // last-applied one, so the server-side apply conflicts, as in Kubernetes.
    let other = manifest(2, None, "nginx:1.25")
        .replace("name: web\n  namespace", "name: web2\n  namespace");
    k.ok_in(&["apply", "-f", "-"], &other);
    k.ok(&[
        "scale",
        "deployment",
        "web2",
        "-n",
        "default",
        "--replicas",
        "6",
    ]);
    let o = k.run(
        &["apply", "--server-side", "-f", "-"],
        Some(&other.replace("replicas: 2", "replicas: 3")),
    );
    assert!(!o.ok, "applied over kubectl scale: {}", o.stdout);
    assert!(
        o.stderr.contains("conflict") && o.stderr.contains(".spec.replicas"),
        "{}",
        o.stderr
    );
}

/// `kubectl apply --prune -l`: kubectl maps every kind of its default prune
/// allowlist (core/v1 ReplicationController among them) before it prunes, so
/// all must be served; what left the manifest is then deleted. `kubectl get
/// rc` prints Kubernetes' columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_prune_maps_its_default_kinds_and_deletes_what_left_the_manifest() {
    let (c, _api) = cluster().await;
    let Some(k) = Kubectl::new(&c, &Identity::Admin) else {
        return;
    };
    let cm = |name: &str| {
        format!(
            "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: default
  labels:
    stack: shop
data:
  k: v
"
        )
    };
    let rc = "apiVersion: v1
kind: ReplicationController
metadata:
  name: shop
  namespace: default
  labels:
    stack: shop
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: shop
    spec:
      containers:
      - name: web
        image: nginx:1.25
";
    let prune = ["apply", "-f", "-", "--prune", "-l", "stack=shop"];
    // No RC in the manifest: kubectl still maps the kind to look for them.
    let out = k.ok_in(&prune, &format!("{}---\n{}", cm("a"), cm("b")));
    assert!(out.contains("configmap/b created"), "{out}");
    let out = k.ok_in(&prune, &format!("{}---\n{rc}", cm("a")));
    assert!(out.contains("configmap/b pruned"), "{out}");
    assert!(out.contains("replicationcontroller/shop created"), "{out}");
    let table = k.ok(&["get", "rc", "shop", "-n", "default"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("shop "),
        "{table}"
    );
}
