//! The Kubernetes REST API over HTTPS, driven by unmodified kubectl (the one
//! on PATH) and curl against `ferry up`'s local endpoint and kubeconfig.

use crate::harness::{poll, verdict, wait_until, LocalUp};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a finished command returned.
pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args` with `input` on stdin, HOME set to `home` (kubectl's
/// discovery cache stays in the test's directory).
pub(crate) fn run(home: &Path, program: &str, args: &[&str], input: Option<&str>) -> Out {
    let mut child = Command::new(program)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) struct Kubectl {
    pub home: PathBuf,
    pub kubeconfig: String,
}

impl Kubectl {
    /// kubectl on the cluster `ferry up --dir DIR` runs (its `kubeconfig`).
    pub fn of_up(home: &Path, dir: &Path) -> Kubectl {
        Kubectl {
            home: home.to_path_buf(),
            kubeconfig: dir.join("kubeconfig").to_str().unwrap().to_string(),
        }
    }

    pub fn run(&self, args: &[&str], input: Option<&str>) -> Out {
        let mut all = vec!["--kubeconfig", &self.kubeconfig, "--request-timeout", "20s"];
        all.extend_from_slice(args);
        run(&self.home, "kubectl", &all, input)
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, None);
        assert!(o.ok, "kubectl {}: {}{}", args.join(" "), o.stdout, o.stderr);
        o.stdout
    }

    pub fn ok_in(&self, args: &[&str], input: &str) -> String {
        let o = self.run(args, Some(input));
        assert!(o.ok, "kubectl {}: {}{}", args.join(" "), o.stdout, o.stderr);
        o.stdout
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args, None);
        assert!(!o.ok, "kubectl {} succeeded: {}", args.join(" "), o.stdout);
        o.stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl -o json")
    }

    /// Polls [`Kubectl::json`] of `args` (which must succeed) until `check`
    /// accepts the object (`Ok`), or fails the test after `timeout` naming
    /// `what` and the last verdict.
    pub async fn wait_json<T>(
        &self,
        what: &str,
        timeout: Duration,
        args: &[&str],
        mut check: impl FnMut(Value) -> Result<T, String>,
    ) -> T {
        poll(what, timeout, || check(self.json(args))).await
    }
}

/// Writes `home/file` with `ferry kubeconfig ARGS -o` from `dir`'s admin
/// config, and returns a kubectl using it.
fn ferry_kubeconfig(home: &Path, dir: &Path, file: &str, args: &[&str]) -> Kubectl {
    let out = home.join(file);
    let admin = dir.join("admin.conf");
    let mut all = vec!["--config", admin.to_str().unwrap(), "kubeconfig"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let ran = crate::procs::run_ferry(home, &all, Duration::from_secs(10));
    assert!(
        ran.status.success(),
        "ferry kubeconfig {args:?}: {}",
        ran.stderr
    );
    Kubectl {
        home: home.to_path_buf(),
        kubeconfig: out.to_str().unwrap().to_string(),
    }
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    app: web
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
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
        image: busybox
        command: ["sleep", "3600"]
"#;

const TALK: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from talk; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_objects_through_the_https_api_and_survives_a_master_death() {
    let c = LocalUp::start().await;
    let (k, home, dir, up) = (&c.k, &c.home, &c.dir, &c.up);

    // Discovery: the version, the served kinds, the nodes ferry up started.
    let v: Value = serde_json::from_str(&k.ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1", "{v}");
    // `ferry kubeconfig` writes an equivalent one from the admin client config.
    let k2 = ferry_kubeconfig(home, dir, "written.kubeconfig", &[]);
    assert!(k2
        .ok(&["get", "namespaces", "-o", "name"])
        .contains("namespace/default"));
    // A new user's kubeconfig: a certificate for user:alice signed by the
    // cluster CA; alice is authenticated (discovery answers) and, with no
    // RBAC grants yet, refused with Kubernetes' message.
    let ka = ferry_kubeconfig(
        home,
        dir,
        "alice.kubeconfig",
        &["--user", "alice", "--group", "dev", "--ttl", "1h"],
    );
    assert!(ka.ok(&["api-resources", "-o", "name"]).contains("pods"));
    let e = ka.fails(&["get", "pods"]);
    assert!(
        e.contains(r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{e}"
    );
    // RBAC: `kubectl auth` as alice (access reviews, sent as protobuf), then
    // a RoleBinding to the default `view` role grants her reads in default.
    ka.fails(&["auth", "can-i", "list", "pods"]);
    let who = ka.ok(&["auth", "whoami"]);
    assert!(
        who.contains("alice") && who.contains("system:authenticated"),
        "{who}"
    );
    assert!(k.ok(&["get", "clusterroles"]).contains("cluster-admin"));
    k.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "default",
    ]);
    let wide = k.ok(&[
        "get",
        "rolebinding",
        "alice-view",
        "-n",
        "default",
        "-o",
        "wide",
    ]);
    assert!(
        wide.contains("ClusterRole/view") && wide.contains("alice"),
        "{wide}"
    );
    let mut can = String::new();
    for _ in 0..50 {
        can = ka.run(&["auth", "can-i", "list", "pods"], None).stdout;
        if can.trim() == "yes" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(can.trim(), "yes");
    ka.ok(&["get", "pods"]);
    assert_eq!(
        ka.run(&["auth", "can-i", "delete", "pods"], None)
            .stdout
            .trim(),
        "no"
    );
    let list = ka.ok(&["auth", "can-i", "--list"]);
    assert!(
        list.contains("pods ") && list.contains("[get list watch]"),
        "{list}"
    );
    let e = ka.fails(&["delete", "configmap", "x"]);
    assert!(e.contains("Forbidden"), "{e}");
    // `kubectl create token`: a TokenRequest answered with a signed JWT.
    k.ok(&["create", "serviceaccount", "robot"]);
    let token = k.ok(&["create", "token", "robot", "--duration", "20m"]);
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    let resources = k.ok(&["api-resources"]);
    for line in [
        "pods ",
        "deployments ",
        "configmaps ",
        "leases ",
        "namespaces ",
    ] {
        assert!(resources.contains(line), "{line} missing:\n{resources}");
    }
    let nodes = k.ok(&["get", "nodes"]);
    let lines: Vec<&str> = nodes.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATUS") && lines[0].contains("ROLES"),
        "{nodes}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("n1 ") && l.contains(" Ready")),
        "{nodes}"
    );

    // Every namespace has its default ServiceAccount.
    poll(
        "the default ServiceAccount",
        Duration::from_secs(20),
        || {
            let o = k.run(
                &["get", "serviceaccounts", "-n", "kube-system", "-o", "name"],
                None,
            );
            verdict(o.stdout.contains("serviceaccount/default"), || {
                format!("{}{}", o.stdout, o.stderr)
            })
        },
    )
    .await;

    // apply: created, then unchanged (kubectl's own client-side apply).
    let out = k.ok_in(&["apply", "-f", "-"], APP);
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let again = k.ok_in(&["apply", "-f", "-"], APP);
    assert!(again.contains("configmap/cfg unchanged"), "{again}");
    assert!(again.contains("deployment.apps/web unchanged"), "{again}");
    assert_eq!(
        k.ok(&["get", "configmap", "cfg", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    let table = k.ok(&["get", "configmaps", "-l", "app=web"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("cfg "), "{table}");
    let deploy = k.ok(&["get", "deployment", "web", "-o", "wide"]);
    assert!(
        deploy.contains("CONTAINERS") && deploy.contains("busybox"),
        "{deploy}"
    );

    // `kubectl create <kind>` uses typed clients, which send protobuf bodies.
    assert!(k
        .ok(&["create", "namespace", "typed"])
        .contains("namespace/typed created"));
    k.ok(&[
        "create",
        "configmap",
        "typed-cm",
        "-n",
        "typed",
        "--from-literal=a=1",
        "--from-literal=b=",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "typed-s",
        "-n",
        "typed",
        "--from-literal=x=y",
    ]);
    k.ok(&[
        "create",
        "deployment",
        "typed-d",
        "-n",
        "typed",
        "--image=busybox",
        "--replicas=0",
        "--port=8080",
        "--",
        "sleep",
        "1000",
    ]);
    k.ok(&[
        "create",
        "service",
        "nodeport",
        "typed-np",
        "-n",
        "typed",
        "--tcp=80:8080",
    ]);
    let cm = k.json(&["get", "configmap", "typed-cm", "-n", "typed"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": ""}), "{cm}");
    assert!(cm["metadata"].get("generation").is_none(), "{cm}");
    let s = k.json(&["get", "secret", "typed-s", "-n", "typed"]);
    assert_eq!(s["data"]["x"], "eQ==", "{s}");
    assert_eq!(s["type"], "Opaque", "{s}");
    let d = k.json(&["get", "deployment", "typed-d", "-n", "typed"]);
    // A pointer field's zero survives: replicas 0 is not defaulted to 1.
    assert_eq!(d["spec"]["replicas"], 0, "{d}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], serde_json::json!(["sleep", "1000"]), "{d}");
    assert_eq!(c["ports"][0]["containerPort"], 8080, "{d}");
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "{d}"
    );
    let np = k.json(&["get", "service", "typed-np", "-n", "typed"]);
    let port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0);
    assert!((30000..=32767).contains(&port), "{np}");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], 8080, "{np}");

    // Patch (merge and JSON), label, annotate, scale.
    k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/greeting","value":"hi"}]"#,
    ]);
    k.ok(&["label", "configmap", "cfg", "tier=front"]);
    k.ok(&["annotate", "configmap", "cfg", "note=kept"]);
    let cm = k.json(&["get", "configmap", "cfg"]);
    assert_eq!(cm["data"]["greeting"], "hi", "{cm}");
    assert_eq!(cm["data"]["extra"], "1", "{cm}");
    assert_eq!(cm["metadata"]["labels"]["tier"], "front", "{cm}");
    assert_eq!(cm["metadata"]["annotations"]["note"], "kept", "{cm}");
    assert_eq!(
        k.ok(&["get", "cm", "-l", "tier=front", "-o", "name"]),
        "configmap/cfg\n"
    );
    k.ok(&["scale", "deployment", "web", "--replicas", "3"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );

    // Server-side apply: created, owned by its manager; another manager's
    // different value conflicts unless forced; a field dropped from the
    // applied config goes.
    let ssa = |data: &str, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend_from_slice(extra);
        k.run(
            &args,
            Some(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n{data}"
            )),
        )
    };
    let o = ssa("  a: \"1\"\n  b: \"2\"\n", &[]);
    assert!(
        o.ok && o.stdout.contains("configmap/owned serverside-applied"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    let managers = k.ok(&[
        "get",
        "cm",
        "owned",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "kubectl", "{managers}");
    let o = ssa("  a: \"9\"\n", &["--field-manager", "other"]);
    assert!(!o.ok, "a conflicting apply succeeded: {}", o.stdout);
    assert!(
        o.stderr.contains("conflict") && o.stderr.contains(".data.a"),
        "{}",
        o.stderr
    );
    let o = ssa(
        "  a: \"9\"\n",
        &["--field-manager", "other", "--force-conflicts"],
    );
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        k.ok(&["get", "cm", "owned", "-o", "jsonpath={.data.a}"]),
        "9"
    );
    // kubectl drops `a` (now other's) and `b` from its intent: `b` goes, `a` stays.
    let o = ssa("  c: \"3\"\n", &[]);
    assert!(o.ok, "{}", o.stderr);
    let cm = k.json(&["get", "cm", "owned"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "9", "c": "3"}), "{cm}");

    // Errors read as Kubernetes writes them.
    let e = k.fails(&["get", "configmap", "missing"]);
    assert!(
        e.contains(r#"Error from server (NotFound): configmaps "missing" not found"#),
        "{e}"
    );

    // A pod on a node: wait for Ready, read its log, exec in it (exit codes
    // and stdin pass through; the node's tunnel may be on another master).
    for node in ["n1", "n2"] {
        k.ok_in(
            &["apply", "-f", "-"],
            &TALK
                .replace("NAME", &format!("talk-{node}"))
                .replace("NODE", node),
        );
    }
    for node in ["n1", "n2"] {
        let pod = format!("pod/talk-{node}");
        k.ok(&["wait", "--for=condition=Ready", &pod, "--timeout=60s"]);
        let log = poll(
            "the container's first lines",
            Duration::from_secs(20),
            || {
                let o = k.run(&["logs", &pod, "--tail", "-1"], None);
                if o.stdout.starts_with("hello from talk\ntick 1\n") {
                    Ok(o.stdout)
                } else {
                    Err(format!("{}{}", o.stdout, o.stderr))
                }
            },
        )
        .await;
        assert!(log.contains("tick 1"), "{log}");
        let o = k.run(
            &[
                "exec",
                &pod,
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            None,
        );
        assert!(!o.ok);
        assert_eq!(o.stdout, "out\n");
        assert!(o.stderr.contains("err\n"), "{}", o.stderr);
        assert!(
            o.stderr.contains("command terminated with exit code 3"),
            "{}",
            o.stderr
        );
        let o = k.run(&["exec", "-i", &pod, "--", "cat"], Some("through stdin\n"));
        assert!(o.ok, "{}", o.stderr);
        assert_eq!(o.stdout, "through stdin\n");
    }
    // kubectl cp runs tar through exec: the container sees the node's files.
    let copied = home.join("copied-hostname");
    k.ok(&["cp", "talk-n1:/etc/hostname", copied.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        std::fs::read_to_string("/etc/hostname").unwrap()
    );
    let e = k.fails(&["logs", "talk-n1", "-c", "nope"]);
    assert!(
        e.contains("container nope is not valid for pod talk-n1"),
        "{e}"
    );

    // A watch sees a change made after it started.
    let mut watch = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &k.kubeconfig,
            "get",
            "configmaps",
            "--watch-only",
            "-o",
            "name",
        ])
        .env("HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("configmap/watched"))
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    k.ok_in(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: \"1\"\n",
    );
    poll(
        "the watch to print configmap/watched",
        Duration::from_secs(20),
        || {
            let done = seen.is_finished();
            verdict(done, || "not yet".to_string())
        },
    )
    .await;
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen.join().unwrap().is_some(), "the watch saw the create");

    // curl with the kubeconfig's certificates: POST a pod.
    let pem = |field: &str| {
        let kc: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&k.kubeconfig).unwrap()).unwrap();
        let b64 = kc
            .pointer(field)
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        let path = home.join(field.replace('/', "_"));
        let out = run(home, "base64", &["-d"], Some(&b64));
        std::fs::write(&path, out.stdout).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (ca, cert, key) = (
        pem("/clusters/0/cluster/certificate-authority-data"),
        pem("/users/0/user/client-certificate-data"),
        pem("/users/0/user/client-key-data"),
    );
    let url = format!(
        "https://127.0.0.1:{}/api/v1/namespaces/default/configmaps",
        up.https_port
    );
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"by-curl"},"data":{"x":"y"}}"#;
    // curl with the admin's certificate: `args` then the URL.
    let curl = |args: &[&str], url: &str| {
        let mut all = vec!["-sS", "--cacert", &ca, "--cert", &cert, "--key", &key];
        all.extend_from_slice(args);
        all.push(url);
        run(home, "curl", &all, None)
    };
    let json = ["-H", "Content-Type: application/json"];
    let o = curl(
        &[
            &json[..],
            &["-X", "POST", "-d", body, "-w", "\n%{http_code}"],
        ]
        .concat(),
        &url,
    );
    assert!(
        o.stdout.trim_end().ends_with("201"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    // Unknown fields: dropped with a Warning header by default (Kubernetes'
    // fieldValidation=Warn), refused under Strict.
    let odd = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"odd"},"data":{"x":"y"},"colour":"red"}"#;
    let post = |query: &str| {
        curl(
            &[&json[..], &["-i", "-X", "POST", "-d", odd]].concat(),
            &format!("{url}{query}"),
        )
        .stdout
    };
    let strict = post("?fieldValidation=Strict");
    assert!(
        strict.starts_with("HTTP/1.1 400") || strict.starts_with("HTTP/2 400"),
        "{strict}"
    );
    assert!(strict.contains(r#"unknown field \"colour\""#), "{strict}");
    let warned = post("");
    assert!(
        warned.starts_with("HTTP/1.1 201") || warned.starts_with("HTTP/2 201"),
        "{warned}"
    );
    assert!(
        warned
            .to_ascii_lowercase()
            .contains(r#"warning: 299 - "unknown field \"colour\"""#),
        "{warned}"
    );
    assert!(
        !warned.contains("red"),
        "the unknown field was dropped: {warned}"
    );

    // Bad requests answer Kubernetes' Status with its code.
    let big = home.join("big.json");
    std::fs::write(
        &big,
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
            "a".repeat(3 * 1024 * 1024)
        ),
    )
    .unwrap();
    let big_arg = format!("@{}", big.display());
    let base = format!("https://127.0.0.1:{}", up.https_port);
    let cases: &[(&str, &str, &[&str], &str, &str)] = &[
        // method, path, extra curl args, status line, reason
        ("GET", "/api/v1/gizmos", &[], "404", "NotFound"),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps",
            &[],
            "405",
            "MethodNotAllowed",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &["-H", "Content-Type: text/plain", "-d", "x"],
            "415",
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &["-H", "Content-Type: application/json", "-d", "{nope"],
            "400",
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[
                "-H",
                "Content-Type: application/vnd.kubernetes.protobuf",
                "-d",
                "k8s",
            ],
            "400",
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &big_arg,
            ],
            "413",
            "RequestEntityTooLarge",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps",
            &["-H", "Accept: application/vnd.kubernetes.protobuf"],
            "406",
            "NotAcceptable",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps",
            &["-G", "-d", "limit=ten"],
            "400",
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps/nope",
            &[],
            "404",
            "NotFound",
        ),
    ];
    for (method, path, extra, code, reason) in cases {
        let url = format!("{base}{path}");
        let o = curl(
            &[&["-X", method, "-w", "\n%{http_code}"], *extra].concat(),
            &url,
        );
        let (body, got) = o.stdout.trim_end().rsplit_once('\n').unwrap_or(("", ""));
        assert_eq!(got, *code, "{method} {path}: {}", o.stdout);
        let status: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
        assert_eq!(status["kind"], "Status", "{body}");
        assert_eq!(status["reason"], *reason, "{method} {path}: {body}");
    }

    // Without a certificate: 401, a Kubernetes Status.
    let o = run(
        home,
        "curl",
        &["-sS", "--cacert", &ca, "-w", "\n%{http_code}", &url],
        None,
    );
    assert!(o.stdout.trim_end().ends_with("401"), "{}", o.stdout);
    assert!(o.stdout.contains(r#""kind":"Status""#), "{}", o.stdout);

    // The endpoint survives a master's death: SIGKILL each master in turn
    // (ferry up restarts it) and kubectl still answers.
    for m in ["m1", "m2"] {
        for pid in up.master_pids(m) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let got = poll(
            "kubectl get after a master died",
            Duration::from_secs(30),
            || {
                let o = k.run(
                    &["get", "configmap", "by-curl", "-o", "jsonpath={.data.x}"],
                    None,
                );
                if o.ok {
                    Ok(o.stdout)
                } else {
                    Err(o.stderr)
                }
            },
        )
        .await;
        assert_eq!(got, "y");
    }

    // delete: gone, and a second delete is NotFound.
    k.ok(&[
        "delete",
        "pod",
        "talk-n1",
        "talk-n2",
        "--grace-period=0",
        "--force",
    ]);
    let out = k.ok(&[
        "delete",
        "configmap",
        "cfg",
        "by-curl",
        "watched",
        "odd",
        "owned",
    ]);
    assert!(out.contains(r#"configmap "cfg" deleted"#), "{out}");
    let e = k.fails(&["delete", "configmap", "cfg"]);
    assert!(e.contains("NotFound"), "{e}");
}

/// The host's python3, by absolute path (HOME differs in the container).
fn host_python() -> String {
    let py = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    String::from_utf8_lossy(&py.stdout).trim().to_string()
}

/// The venv's python with the official Kubernetes client (made once per target dir).
pub(crate) fn python() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("FERRY_TEST_PYTHON") {
            return p;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/py-venv.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .output()
            .expect("run tools/py-venv.sh");
        assert!(
            out.status.success(),
            "making the Python venv with the kubernetes client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
    .clone()
}

fn client_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cluster/python/client.py")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_and_its_watch_resumes_across_a_master_death() {
    let py = python();
    let c = LocalUp::start().await;
    let (k, home, dir, up, base) = (&c.k, &c.home, &c.dir, &c.up, c.port);

    // Create, list, patch, conflict, delete: pods and deployments.
    let o = run(home, &py, &[&client_script(), "crud", &k.kubeconfig], None);
    assert!(o.ok, "{}{}", o.stdout, o.stderr);
    assert_eq!(
        o.stdout,
        "created py-pod True\nlisted py-pod\npatched yes\nscaled 2\nconflict 409\ngone 404\n",
        "{}",
        o.stderr
    );

    // A watch from a list's resourceVersion; the master serving it is
    // SIGKILLed halfway; the client resumes from the last resourceVersion it
    // saw and sees every ConfigMap added exactly once.
    let mut watcher = Command::new(&py)
        .args([&client_script(), "watch", &k.kubeconfig, "cm-last"])
        .env("HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python watch");
    let stdout = watcher.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let listed = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("listed"))
    };
    poll("the python watch to list", Duration::from_secs(30), || {
        let ok = listed();
        verdict(ok, || "not yet".to_string())
    })
    .await;
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: \"1\"\n")
    };
    for i in 0..5 {
        k.ok_in(&["create", "-f", "-"], &cm(&format!("cm-{i}")));
    }
    poll(
        "the python watch to see cm-4",
        Duration::from_secs(30),
        || {
            let ok = lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with("ADDED cm-4 "));
            verdict(ok, || "not yet".to_string())
        },
    )
    .await;
    // ferry up forwards new connections to the leader: kill it.
    let leader = leader_name(home, dir, base);
    for pid in up.master_pids(&leader) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for i in 5..10 {
        let name = format!("cm-{i}");
        poll(
            "a create after the master died",
            Duration::from_secs(30),
            || {
                let o = k.run(&["create", "-f", "-"], Some(&cm(&name)));
                verdict(o.ok || o.stderr.contains("AlreadyExists"), || o.stderr)
            },
        )
        .await;
    }
    k.ok_in(&["create", "-f", "-"], &cm("cm-last"));
    let status = poll(
        "the python watch to finish",
        Duration::from_secs(60),
        || {
            let s = watcher.try_wait().expect("wait");
            s.ok_or_else(|| "running".to_string())
        },
    )
    .await;
    reader.join().unwrap();
    let seen = lines.lock().unwrap().clone();
    assert!(status.success(), "python watch failed: {seen:?}");
    let added: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("ADDED "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut want: Vec<String> = (0..10).map(|i| format!("cm-{i}")).collect();
    want.push("cm-last".into());
    assert_eq!(added, want, "each ConfigMap added once, in order: {seen:?}");
    // The stream did break (ferry up forwarded it to m1, which died).
    assert!(
        seen.iter().any(|l| l.starts_with("resume after")),
        "the watch never had to resume: {seen:?}"
    );
}

/// The `m<N>` directory name of the current Raft leader of a `ferry up`
/// cluster whose masters listen on UDP ports from `base`.
fn leader_name(home: &Path, dir: &Path, base: u16) -> String {
    let ran = crate::procs::run_ferry(
        home,
        &[
            "--config",
            dir.join("admin.conf").to_str().unwrap(),
            "cluster",
            "status",
        ],
        Duration::from_secs(10),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    // The member table: `ID  ADDRESS  ROLE ...`.
    let addr = ran
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("leader"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no leader in:\n{}", ran.stdout));
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    format!("m{}", port - base + 1)
}

/// A pod serving HTTP on its loopback only (so only a forward into its network
/// namespace reaches it), and a Service naming its port.
const LOOPBACK_WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: pf
  labels:
    app: pf
spec:
  containers:
  - name: web
    image: python
    command: ["PYTHON", "-m", "http.server", "8080", "--bind", "127.0.0.1"]
    ports:
    - containerPort: 8080
      name: http
---
apiVersion: v1
kind: Service
metadata:
  name: pf
spec:
  selector:
    app: pf
  ports:
  - port: 80
    targetPort: http
"#;

/// A long-running port forward: its process, and its stderr's file.
struct Forward {
    child: std::process::Child,
    stderr: std::path::PathBuf,
}

impl Forward {
    /// Starts `cmd` and waits until it prints `Forwarding from`.
    fn start(mut cmd: Command, stderr: std::path::PathBuf) -> Forward {
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn port-forward");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(l);
            }
        });
        let listening = (0..)
            .map_while(|_| rx.recv_timeout(Duration::from_secs(30)).ok())
            .any(|l| l.contains("Forwarding from"));
        let f = Forward { child, stderr };
        assert!(listening, "port-forward never listened: {}", f.stderr());
        f
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    fn exited(&mut self, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.0 GET on 127.0.0.1:`port`: the whole answer.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: pf\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_and_ferry_port_forward_reach_a_pods_loopback_and_attach_follows_output() {
    let c = LocalUp::start().await;
    let (k, home, dir) = (&c.k, &c.home, &c.dir);
    let py = host_python();
    k.ok_in(&["apply", "-f", "-"], &LOOPBACK_WEB.replace("PYTHON", &py));
    k.ok(&["wait", "--for=condition=Ready", "pod/pf", "--timeout=60s"]);
    let ports = crate::procs::free_tcp_ports(4);
    let kubectl = |target: &str, mapping: String| {
        let mut c = Command::new("kubectl");
        c.args([
            "--kubeconfig",
            &k.kubeconfig,
            "port-forward",
            target,
            &mapping,
        ])
        .env("HOME", home);
        c
    };
    // The server may take a moment to listen after the pod is Ready.
    let get = |port: u16| {
        wait_until(
            "an answer through the forward",
            Duration::from_secs(20),
            move || async move {
                match http_get(port, "/") {
                    Ok(a) if a.starts_with("HTTP/1.0 200") && a.contains("Directory listing") => {
                        Ok(a)
                    }
                    Ok(a) => Err(a),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
    };

    // kubectl port-forward pod/pf: several connections, one after another and at once.
    let f = Forward::start(
        kubectl("pod/pf", format!("{ports}:8080")),
        home.join("pf1.err"),
    );
    get(ports).await;
    let many: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || http_get(ports, "/")))
        .collect();
    for t in many {
        let a = t.join().unwrap().expect("concurrent GET");
        assert!(a.starts_with("HTTP/1.0 200"), "{a}");
    }
    let a = http_get(ports, "/nope").unwrap();
    assert!(a.starts_with("HTTP/1.0 404"), "{a}");
    drop(f);

    // svc/pf: kubectl picks the Service's pod and resolves the named target port.
    let f = Forward::start(
        kubectl("svc/pf", format!("{}:80", ports + 1)),
        home.join("pf2.err"),
    );
    get(ports + 1).await;
    drop(f);

    // Nothing listening: the connection closes, kubectl reports the kubelet's
    // error from the error stream and gives up, as against Kubernetes.
    let mut f = Forward::start(
        kubectl("pod/pf", format!("{}:9999", ports + 2)),
        home.join("pf3.err"),
    );
    let a = http_get(ports + 2, "/").unwrap_or_default();
    assert_eq!(a, "", "nothing answers on 9999");
    assert!(f.exited(Duration::from_secs(10)), "kubectl kept running");
    let e = f.stderr();
    assert!(
        e.contains("error forwarding port 9999 to pod pf")
            && e.contains("connection refused")
            && e.contains("lost connection to pod"),
        "{e}"
    );

    // ferry port-forward over the QUIC API.
    let admin = dir.join("admin.conf");
    let mut c = crate::procs::ferry_cmd(home);
    c.args([
        "--config",
        admin.to_str().unwrap(),
        "port-forward",
        "pod/pf",
        &format!("{}:8080", ports + 3),
    ]);
    let f = Forward::start(c, home.join("pf4.err"));
    get(ports + 3).await;
    drop(f);
    let o = crate::procs::ferry(
        home,
        admin.to_str().unwrap(),
        &["port-forward", "pf", "0:0"],
    );
    assert!(!o.status.success());
    assert!(o.stderr.contains("Remote port must be > 0"), "{}", o.stderr);

    // kubectl attach: the container's output from now until its run ends
    // (stdin is refused for a container without `stdin: true`).
    k.ok_in(&["apply", "-f", "-"], ATTACH);
    k.ok(&["wait", "--for=condition=Ready", "pod/att", "--timeout=60s"]);
    let e = k.fails(&["attach", "-i", "att"]);
    assert!(e.contains("does not keep its stdin open"), "{e}");
    // `kubectl run -i`: the shell reads what kubectl sends (WebSocket), and
    // kubectl reports the container's exit code.
    let o = k.run(
        &[
            "run",
            "sh-in",
            "-i",
            "--rm",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
        ],
        Some("echo from-stdin-$((40+2))\nexit 3\n"),
    );
    assert!(!o.ok, "exit 3 is a failure: {}", o.stderr);
    assert!(
        o.stdout.contains("from-stdin-42\n"),
        "{} / {}",
        o.stdout,
        o.stderr
    );
    assert!(o.stderr.contains("terminated (Error)"), "{}", o.stderr);
    let o = k.run(&["attach", "att"], None);
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stdout.contains("tick 3\n"), "{}", o.stdout);
    // Input that reaches the node before the client's first window size
    // waits for it: `stty size` typed at once still sees the client's size.
    k.ok_in(&["apply", "-f", "-"], TTY_POD);
    k.ok(&["wait", "--for=condition=Ready", "pod/tty", "--timeout=60s"]);
    let o = run(
        home,
        &python(),
        &[&client_script(), "tty-size", &k.kubeconfig, "tty"],
        None,
    );
    assert_eq!(o.stdout, "size 27 91\n", "{}", o.stderr);
    // `kubectl run -it` from a terminal (`script` gives kubectl one): the
    // container runs on a terminal of the client's size, its prompt shows,
    // and Ctrl-C interrupts the foreground command, not the shell.
    let kubectl = format!(
        "stty cols 91 rows 27; kubectl --kubeconfig {} run sh-tty -it --rm --image=busybox --restart=Never -- sh",
        k.kubeconfig
    );
    let typed = "sleep 4; printf 'tty; stty size\\n'; sleep 2; printf 'sleep 60\\n'; sleep 2; \
                 printf '\\003'; sleep 1; printf 'echo tty-$((40+2))\\n'; sleep 2; printf 'exit 3\\n'; sleep 8";
    let o = run(
        &k.home,
        "sh",
        &[
            "-c",
            &format!("({typed}) | script -qec \"{kubectl}\" /dev/null"),
        ],
        None,
    );
    let out = o.stdout.replace('\r', "");
    assert!(
        out.contains("\n/dev/pts/"),
        "a terminal: {out} / {}",
        o.stderr
    );
    assert!(out.contains("\n27 91\n"), "the client's size: {out}");
    assert!(
        out.contains("# ") || out.contains("$ "),
        "the shell's prompt: {out}"
    );
    assert!(
        out.contains("\ntty-42\n"),
        "the shell outlived Ctrl-C: {out}"
    );
    assert!(out.contains("terminated (Error)"), "exit 3: {out}");
}

const TTY_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: tty
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh"]
    stdin: true
    tty: true
"#;

const ATTACH: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: att
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 6; for i in 1 2 3; do echo tick $i; sleep 1; done"]
"#;

/// A kubectl release from the Cloud SDK's versioned binaries.
fn old_kubectl(version: &str) -> String {
    let path = format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing (the Cloud SDK's versioned kubectl binaries)"
    );
    path
}

/// Runs `program args` on `kubeconfig` with `input`; its exit code and output.
fn run_code(
    home: &Path,
    program: &str,
    kubeconfig: &str,
    args: &[&str],
    input: Option<&str>,
) -> (Option<i32>, Out) {
    let mut all = vec!["--kubeconfig", kubeconfig, "--request-timeout", "20s"];
    all.extend_from_slice(args);
    let mut c = Command::new(program);
    c.args(&all)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        // 1.29 and 1.30 can try WebSockets first; these runs are about SPDY.
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let code = out.status.code();
    (
        code,
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
    )
}

/// `stty size` in `pod` through `kubectl exec -it` under a terminal of 45
/// rows and 123 columns (`script` gives kubectl its pty).
fn tty_size(home: &Path, program: &str, kubeconfig: &str, pod: &str) -> String {
    let line = format!(
        "stty rows 45 cols 123; {program} --kubeconfig {kubeconfig} exec -it {pod} -- \
         sh -c 'sleep 0.5; stty size'"
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SPDY_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ticks
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 5; for i in 1 2 3; do echo tick $i; sleep 1; done"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_to_1_30_exec_attach_and_port_forward_over_direct_spdy() {
    let c = LocalUp::start().await;
    let (k, home) = (&c.k, &c.home);
    let py = host_python();
    k.ok_in(&["apply", "-f", "-"], SPDY_PODS);
    k.ok_in(&["apply", "-f", "-"], &LOOPBACK_WEB.replace("PYTHON", &py));
    for pod in ["pod/shell", "pod/ticks", "pod/pf"] {
        k.ok(&["wait", "--for=condition=Ready", pod, "--timeout=60s"]);
    }
    let cfg = k.kubeconfig.clone();

    // attach (1.28): the output from now until the run ends, then success.
    let (code, o) = run_code(home, &old_kubectl("1.28"), &cfg, &["attach", "ticks"], None);
    assert_eq!(code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("tick 3\n"), "{}", o.stdout);
    // `kubectl run -i` (1.28): stdin into the container over SPDY.
    let (code, o) = run_code(
        home,
        &old_kubectl("1.28"),
        &cfg,
        &[
            "run",
            "spdy-in",
            "-i",
            "--rm",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
        ],
        Some("echo spdy-$((6*7))\n"),
    );
    assert_eq!(code, Some(0), "{}", o.stderr);
    assert!(
        o.stdout.contains("spdy-42\n"),
        "{} / {}",
        o.stdout,
        o.stderr
    );

    // exec: output, stderr, the exit code (v4's Status), stdin.
    for v in ["1.27", "1.28", "1.29"] {
        let kubectl = old_kubectl(v);
        let script = "echo out; echo err >&2; exit 3";
        let (code, o) = run_code(
            home,
            &kubectl,
            &cfg,
            &["exec", "shell", "--", "sh", "-c", script],
            None,
        );
        assert_eq!(code, Some(3), "{v}: {}", o.stderr);
        assert_eq!(o.stdout, "out\n", "{v}");
        assert!(o.stderr.contains("err\n"), "{v}: {}", o.stderr);
        assert!(
            o.stderr.contains("command terminated with exit code 3"),
            "{v}: {}",
            o.stderr
        );
        let (code, o) = run_code(
            home,
            &kubectl,
            &cfg,
            &["exec", "-i", "shell", "--", "cat"],
            Some("through stdin\n"),
        );
        assert_eq!(code, Some(0), "{v}: {}", o.stderr);
        assert_eq!(o.stdout, "through stdin\n", "{v}");
    }

    // A terminal's size reaches the command: over SPDY's resize stream (1.28)
    // and over the WebSocket's channel 4 (1.33).
    for v in ["1.28", "1.33"] {
        let out = tty_size(home, &old_kubectl(v), &cfg, "pod/shell");
        assert!(out.contains("45 123"), "{v}: {out:?}");
    }

    // port-forward (1.27, 1.30): to the pod's loopback, several connections.
    let ports = crate::procs::free_tcp_ports(2);
    for (i, v) in ["1.27", "1.30"].into_iter().enumerate() {
        let port = ports + i as u16;
        let mut c = Command::new(old_kubectl(v));
        c.args(["--kubeconfig", &cfg, "port-forward", "pod/pf"])
            .arg(format!("{port}:8080"))
            .env("HOME", home)
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        let f = Forward::start(c, home.join(format!("pf-{v}.err")));
        let first = wait_until(
            "an answer through the forward",
            Duration::from_secs(20),
            move || async move {
                match http_get(port, "/") {
                    Ok(a) if a.starts_with("HTTP/1.0 200") => Ok(a),
                    Ok(a) => Err(a),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        assert!(first.contains("Directory listing"), "{v}: {first}");
        let a = http_get(port, "/nope").unwrap();
        assert!(a.starts_with("HTTP/1.0 404"), "{v}: {a}");
        drop(f);
    }
}

const DEBUG_TARGET: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: dbg-target
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 1; done", "marker-dbg-target"]
"#;

/// The status of ephemeral container `name` of pod `dbg-target`, once terminated.
fn ephemeral_terminated(k: &Kubectl, name: &str) -> Result<Value, String> {
    let pod = k.json(&["get", "pod", "dbg-target"]);
    let st = pod["status"]["ephemeralContainerStatuses"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name).cloned())
        .ok_or_else(|| format!("no status for {name}: {}", pod["status"]))?;
    if st["state"]["terminated"].is_object() {
        Ok(st)
    } else {
        Err(st.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_runs_an_ephemeral_container_in_the_pod_once() {
    let c = LocalUp::start().await;
    let k = &c.k;
    k.ok_in(&["apply", "-f", "-"], DEBUG_TARGET);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/dbg-target",
        "--timeout=60s",
    ]);

    // -i: the debug shell reads what kubectl sends and its output comes back.
    let out = k.ok_in(
        &[
            "debug",
            "dbg-target",
            "--image=busybox",
            "-i",
            "--container=dbg-i",
            "--",
            "sh",
        ],
        "echo dbg-$((40+2)); exit 3\n",
    );
    assert!(out.contains("dbg-42"), "kubectl debug -i: {out}");
    // -it: a `tty: true` ephemeral container (kubectl, without a terminal of
    // its own, attaches without one).
    let o = k.run(
        &[
            "debug",
            "dbg-target",
            "--image=busybox",
            "-it",
            "--container=dbg-t",
            "--",
            "sh",
        ],
        Some("echo dbg-tty-$((1+1)); exit\n"),
    );
    assert!(
        o.stdout.contains("dbg-tty-2"),
        "kubectl debug -it: {}{}",
        o.stdout,
        o.stderr
    );

    // --target: the target container's process, seen from the debug
    // container by `ps` and in `/proc` (the process runtime gives no
    // container a PID namespace: all share the node's).
    let target = wait_until("the target's process", Duration::from_secs(30), || {
        let p = crate::nodes::container_pids("marker-dbg-target");
        async move {
            match p[..] {
                [pid] => Ok(pid),
                _ => Err(format!("{p:?}")),
            }
        }
    })
    .await;
    let out = k.ok_in(
        &[
            "debug",
            "dbg-target",
            "--image=busybox",
            "-i",
            "--target=main",
            "--container=dbg-ps",
            "--",
            "sh",
        ],
        &format!(
            "ps -eo pid,args | grep -v grep | grep marker-dbg-target; \
             echo cmdline: $(tr '\\0' ' ' < /proc/{target}/cmdline); exit 0\n"
        ),
    );
    assert!(
        out.lines().any(|l| {
            l.split_whitespace().next() == Some(target.to_string().as_str())
                && l.contains("marker-dbg-target")
        }),
        "ps in the debug container shows the target's process {target}: {out}"
    );
    assert!(
        out.contains("cmdline: /bin/sh -c while true; do sleep 1; done marker-dbg-target"),
        "/proc/{target} in the debug container: {out}"
    );
    let pod = k.json(&["get", "pod", "dbg-target"]);
    let dbg_ps = pod["spec"]["ephemeralContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dbg-ps")
        .cloned()
        .unwrap();
    assert_eq!(dbg_ps["targetContainerName"], "main", "{dbg_ps}");

    // --attach=false, then its logs.
    k.ok(&[
        "debug",
        "dbg-target",
        "--image=busybox",
        "--attach=false",
        "--container=dbg-bg",
        "--",
        "sh",
        "-c",
        "echo dbg-$((40+2))",
    ]);
    let st = wait_until("dbg-bg terminated", Duration::from_secs(60), || async {
        ephemeral_terminated(k, "dbg-bg")
    })
    .await;
    assert_eq!(st["state"]["terminated"]["exitCode"], 0, "{st}");
    let logs = k.ok(&["logs", "dbg-target", "-c", "dbg-bg"]);
    assert_eq!(logs.trim(), "dbg-42");
    let st = wait_until("dbg-i terminated", Duration::from_secs(30), || async {
        ephemeral_terminated(k, "dbg-i")
    })
    .await;
    assert_eq!(st["state"]["terminated"]["exitCode"], 3, "{st}");
    let st = wait_until("dbg-ps terminated", Duration::from_secs(30), || async {
        ephemeral_terminated(k, "dbg-ps")
    })
    .await;
    assert_eq!(st["state"]["terminated"]["exitCode"], 0, "{st}");

    // Never restarted; the pod and its own container are untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = k.json(&["get", "pod", "dbg-target"]);
    for s in pod["status"]["ephemeralContainerStatuses"]
        .as_array()
        .unwrap()
    {
        assert_eq!(s["restartCount"], 0, "{s}");
        assert!(s["state"]["terminated"].is_object(), "{s}");
    }
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    let names: Vec<&str> = pod["spec"]["ephemeralContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dbg-i", "dbg-t", "dbg-ps", "dbg-bg"]);
}
