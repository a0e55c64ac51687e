//! The kubectl-like CLI end to end against `ferry up`: apply a multi-document
//! manifest, get in every output format, scale, label, annotate, edit, explain,
//! config view, completion, delete with each cascade policy, clear errors; and `get -w` streaming on across the SIGKILL of the
//! master it is connected to.

use crate::harness::{poll, verdict, wait_until, LocalUp};
use crate::procs::{ferry, ferry_cmd, ok, Ran, T};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The stdout of a successful `ferry ARGS` (an `-o json` get), parsed.
fn get_json(home: &Path, conf: &str, args: &[&str]) -> Value {
    serde_json::from_str(&ok(home, conf, args)).expect("JSON output")
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "fast"}}
"#;

/// `ferry up`, once the default namespace is there.
async fn start() -> LocalUp {
    let c = LocalUp::start().await;
    poll("the default namespace", T, || {
        let r = ferry(
            &c.home,
            &c.conf,
            &["get", "namespace", "default", "-o", "name"],
        );
        verdict(r.status.success(), || r.stderr)
    })
    .await;
    c
}

/// `ferry describe deploy web` of the applied manifest (3 replicas), with the
/// test's own event among the controllers': every line of the object is exact
/// but times and the replica counts the controllers move; the Conditions the
/// Deployment controller writes come before the events.
fn check_describe(d: &str) {
    let mut lines: Vec<&str> = d.lines().collect();
    // The controllers' conditions and events come and go: keep the event
    // header and the test's own event.
    if let Some(c) = lines.iter().position(|l| *l == "Conditions:") {
        let e = lines.iter().position(|l| *l == "Events:").expect("events");
        lines.drain(c..e);
    }
    let head = lines
        .iter()
        .position(|l| l.starts_with("  ----"))
        .expect("event table")
        + 1;
    // Ours by its message: the controller's own events name
    // deployment-controller too.
    let ours = lines
        .iter()
        .rposition(|l| l.contains("Scaled up replica set web-1 to 3"))
        .expect("our event");
    lines.drain(head..ours);
    lines.truncate(head + 1);
    let want = [
        "Name:                   web",
        "Namespace:              shop",
        "CreationTimestamp:      *",
        "Labels:                 app=web",
        "Annotations:            *",
        "Selector:               app=web",
        "Replicas:               3 desired | *",
        "StrategyType:           RollingUpdate",
        "MinReadySeconds:        0",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Pod Template:",
        "  Labels:  app=web",
        "  Containers:",
        "   nginx:",
        "    Image:         nginx:1.25",
        "    Port:          80/TCP",
        "    Host Port:     0/TCP",
        "    Environment:   <none>",
        "    Mounts:        <none>",
        "  Volumes:         <none>",
        "  Node-Selectors:  <none>",
        "  Tolerations:     <none>",
        "Events:",
        "  Type    Reason             Age*",
        "  ----    ------             ----*",
        "  Normal  ScalingReplicaSet  *",
    ];
    assert_eq!(lines.len(), want.len(), "{d}");
    for (got, want) in lines.iter().zip(want) {
        match want.strip_suffix('*') {
            Some(prefix) => assert!(got.starts_with(prefix), "{got:?} vs {want:?} in\n{d}"),
            None => assert_eq!(*got, want, "in\n{d}"),
        }
    }
    // The creation time as kubectl prints it (`Sat, 31 May 2025 23:00:00 +0000`).
    let created = lines[2].trim_start_matches("CreationTimestamp:").trim();
    assert!(
        created.ends_with(" +0000") && created.len() == 31,
        "{created:?}"
    );
    // The event table (the Age column is as wide as its widest cell).
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(words(23), ["Type", "Reason", "Age", "From", "Message"]);
    assert_eq!(words(24), ["----", "------", "----", "----", "-------"]);
    let from = lines[23].find("From").unwrap();
    assert_eq!(lines[25].find("deployment-controller"), Some(from), "{d}");
    // The event row: type, reason, age, source, message.
    let row: Vec<&str> = lines[25].split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4..].join(" ")),
        (
            "Normal",
            "ScalingReplicaSet",
            "deployment-controller",
            "Scaled up replica set web-1 to 3".to_string()
        ),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_scale_label_and_delete_through_the_cli() {
    let c = start().await;
    let (home, conf) = (c.home.as_path(), c.conf.as_str());
    let m = home.join("shop.yaml");
    std::fs::write(&m, MANIFEST).unwrap();
    let mf = m.to_str().unwrap();

    // apply: created, then unchanged, then configured for what changed.
    let out = ok(home, conf, &["apply", "-f", mf]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/settings created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let out = ok(home, conf, &["apply", "-f", mf]);
    assert_eq!(out.matches("unchanged").count(), 4, "{out}");
    std::fs::write(&m, MANIFEST.replace("replicas: 2", "replicas: 3")).unwrap();
    let out = ok(home, conf, &["apply", "-f", home.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/settings unchanged"), "{out}");

    // get in every output format.
    let table = ok(home, conf, &["get", "deployments", "-n", "shop"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().starts_with("web "), "{table}");
    let wide = ok(
        home,
        conf,
        &["get", "deploy", "web", "-n", "shop", "-o", "wide"],
    );
    assert!(
        wide.contains("CONTAINERS") && wide.contains("nginx:1.25") && wide.contains("app=web"),
        "{wide}"
    );
    let json = get_json(
        home,
        conf,
        &["get", "deploy", "web", "-n", "shop", "-o", "json"],
    );
    assert_eq!(
        (json["kind"].as_str(), json["spec"]["replicas"].as_i64()),
        (Some("Deployment"), Some(3))
    );
    let yaml: Value =
        serde_yaml::from_str(&ok(home, conf, &["get", "cm", "-n", "shop", "-o", "yaml"])).unwrap();
    assert_eq!(yaml["kind"], "List");
    assert_eq!(yaml["items"][0]["data"]["mode"], "fast");
    let names = ok(
        home,
        conf,
        &["get", "deploy,svc,cm", "-n", "shop", "-o", "name"],
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["deployment.apps/web", "service/web", "configmap/settings"]
    );
    let all = ok(home, conf, &["get", "configmaps", "-A"]);
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    let svc = ok(home, conf, &["get", "svc", "-n", "shop"]);
    assert!(svc.contains("80/TCP"), "{svc}");
    // describe: kubectl's sections and values, and the events about the object.
    let uid = json["metadata"]["uid"].as_str().unwrap().to_string();
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1, namespace: shop}}\n\
         involvedObject: {{apiVersion: apps/v1, kind: Deployment, namespace: shop, name: web, uid: {uid}}}\n\
         type: Normal\nreason: ScalingReplicaSet\nmessage: Scaled up replica set web-1 to 3\n\
         source: {{component: deployment-controller}}\n\
         firstTimestamp: \"{ts}\"\nlastTimestamp: \"{ts}\"\ncount: 1\n",
        ts = json["metadata"]["creationTimestamp"].as_str().unwrap()
    );
    std::fs::write(home.join("event.yaml"), event).unwrap();
    ok(
        home,
        conf,
        &["create", "-f", home.join("event.yaml").to_str().unwrap()],
    );
    let d = ok(home, conf, &["describe", "deploy", "web", "-n", "shop"]);
    check_describe(&d);

    // scale and label.
    assert_eq!(
        ok(
            home,
            conf,
            &["scale", "deploy/web", "-n", "shop", "--replicas", "5"]
        )
        .trim(),
        "deployment.apps/web scaled"
    );
    let json = get_json(
        home,
        conf,
        &["get", "deploy", "web", "-n", "shop", "-o", "json"],
    );
    assert_eq!(json["spec"]["replicas"], 5);
    assert_eq!(
        ok(
            home,
            conf,
            &["label", "cm", "settings", "-n", "shop", "tier=cache"]
        )
        .trim(),
        "configmap/settings labeled"
    );
    let clash = ferry(
        home,
        conf,
        &["label", "cm", "settings", "-n", "shop", "tier=db"],
    );
    assert_eq!(clash.status.code(), Some(1));
    assert!(
        clash.stderr.contains("--overwrite is false"),
        "{}",
        clash.stderr
    );
    let sel = ok(
        home,
        conf,
        &[
            "get",
            "cm",
            "-n",
            "shop",
            "-l",
            "tier in (cache,db)",
            "-o",
            "name",
        ],
    );
    assert_eq!(sel.trim(), "configmap/settings");

    // annotate, edit through $FERRY_EDITOR, explain, config view, completion.
    assert_eq!(
        ok(
            home,
            conf,
            &["annotate", "cm", "settings", "-n", "shop", "owner=ops"]
        )
        .trim(),
        "configmap/settings annotated"
    );
    let edit = ferry_cmd(home)
        .env("FERRY_EDITOR", "sed -i 's/mode: fast/mode: slow/'")
        .args(["--config", conf, "edit", "cm", "settings", "-n", "shop"])
        .output()
        .expect("run ferry edit");
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&edit.stdout).trim(),
        "configmap/settings edited"
    );
    let cm = get_json(
        home,
        conf,
        &["get", "cm", "settings", "-n", "shop", "-o", "json"],
    );
    assert_eq!(
        (
            cm["data"]["mode"].as_str(),
            cm["metadata"]["annotations"]["owner"].as_str(),
            cm["metadata"]["labels"]["tier"].as_str()
        ),
        (Some("slow"), Some("ops"), Some("cache")),
        "{cm}"
    );
    let explain = ok(home, conf, &["explain", "deployment.spec.replicas"]);
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");
    let view = ok(home, conf, &["config", "view"]);
    assert!(
        view.contains("masters = [") && view.contains("REDACTED") && !view.contains("PRIVATE KEY"),
        "{view}"
    );
    let completion = ok(home, conf, &["completion", "bash"]);
    assert!(completion.contains("_ferry()"), "{completion}");

    // delete with each cascade policy: owners with dependents.
    for policy in ["background", "foreground", "orphan"] {
        let owner = format!("{policy}-owner");
        let spec = format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{owner}\",\"namespace\":\"shop\"}}}}");
        std::fs::write(home.join("owner.json"), spec).unwrap();
        ok(
            home,
            conf,
            &["create", "-f", home.join("owner.json").to_str().unwrap()],
        );
        let o = get_json(
            home,
            conf,
            &["get", "cm", &owner, "-n", "shop", "-o", "json"],
        );
        // The foreground dependent holds a finalizer and blocks its owner's
        // deletion (`blockOwnerDeletion`), so its owner must wait for it.
        let (hold, block) = if policy == "foreground" {
            (
                "  finalizers: [example.com/hold]\n",
                ", blockOwnerDeletion: true",
            )
        } else {
            ("", "")
        };
        let dep = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {policy}-dep\n  namespace: shop\n{hold}  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {}{block}}}\n",
            o["metadata"]["uid"].as_str().unwrap()
        );
        std::fs::write(home.join("dep.yaml"), dep).unwrap();
        ok(
            home,
            conf,
            &["apply", "-f", home.join("dep.yaml").to_str().unwrap()],
        );
        let cascade = format!("--cascade={policy}");
        let mut args = vec!["delete", "cm", &owner, "-n", "shop", &cascade];
        if policy == "foreground" {
            // The owner stays until its dependent's finalizer goes: do not wait for it.
            args.push("--wait=false");
        }
        let out = ok(home, conf, &args);
        assert_eq!(out.trim(), format!("configmap \"{owner}\" deleted"));
        let dep_name = format!("{policy}-dep");
        let dep_state = || {
            ferry(
                home,
                conf,
                &["get", "cm", &dep_name, "-n", "shop", "-o", "json"],
            )
        };
        match policy {
            "orphan" => {
                let r = dep_state();
                assert!(r.status.success(), "orphan kept: {}", r.stderr);
                let v: Value = serde_json::from_str(&r.stdout).unwrap();
                assert!(v["metadata"].get("ownerReferences").is_none(), "{v}");
            }
            "foreground" => {
                // The owner is marked (foregroundDeletion finalizer, deletionTimestamp)
                // and the collector deletes its dependent, which its finalizer keeps.
                let owner_state = || {
                    get_json(
                        home,
                        conf,
                        &["get", "cm", &owner, "-n", "shop", "-o", "json"],
                    )
                };
                let o = owner_state();
                assert_eq!(
                    o["metadata"]["finalizers"],
                    serde_json::json!(["foregroundDeletion"]),
                    "{o}"
                );
                assert!(o["metadata"]["deletionTimestamp"].is_string(), "{o}");
                poll("the foreground dependent to be marked", T, || {
                    let r = dep_state();
                    let v: Value = serde_json::from_str(&r.stdout).map_err(|_| r.stderr)?;
                    if v["metadata"]["deletionTimestamp"].is_string() {
                        Ok(())
                    } else {
                        Err(v.to_string())
                    }
                })
                .await;
                // The owner waits while its dependent exists.
                let o = owner_state();
                assert_eq!(
                    o["metadata"]["finalizers"],
                    serde_json::json!(["foregroundDeletion"]),
                    "{o}"
                );
                // Releasing the dependent lets both go: the dependent, then the owner.
                ok(
                    home,
                    conf,
                    &[
                        "patch",
                        "cm",
                        &dep_name,
                        "-n",
                        "shop",
                        "--type",
                        "merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ],
                );
                poll("the foreground owner and dependent to go", T, || {
                    let gone = |args: &[&str]| ferry(home, conf, args).status.code() == Some(1);
                    let both = gone(&["get", "cm", &dep_name, "-n", "shop"])
                        && gone(&["get", "cm", &owner, "-n", "shop"]);
                    verdict(both, || "still there".to_string())
                })
                .await;
            }
            _ => {
                poll("the background dependent to be collected", T, || {
                    let r = dep_state();
                    verdict(r.status.code() == Some(1), || r.stdout)
                })
                .await;
            }
        }
    }

    // jsonpath, and deleting by label selector.
    let jp = ok(
        home,
        conf,
        &[
            "get",
            "deploy",
            "-n",
            "shop",
            "-o",
            "jsonpath={.items[*].spec.replicas}",
        ],
    );
    assert_eq!(jp.trim(), "5");
    let jp = ok(
        home,
        conf,
        &[
            "get",
            "cm",
            "settings",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ],
    );
    assert_eq!(jp.trim(), "cache");
    let out = ok(
        home,
        conf,
        &["delete", "cm", "-n", "shop", "-l", "tier=cache"],
    );
    assert_eq!(out.trim(), "configmap \"settings\" deleted");

    // Errors: non-zero exit, a message naming the problem, nothing written.
    let missing = ferry(home, conf, &["get", "deploy", "nope", "-n", "shop"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{}",
        missing.stderr
    );
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: shop}}\ndata: {{blob: {}}}\n",
        "x".repeat(1_600_000)
    );
    for (text, want) in [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n",
            "invalid YAML",
        ),
        (
            "apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: x}\n",
            "use apps/v1",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: shop}\n",
            "Bad_Name",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n",
            "namespaces \"nowhere\" not found",
        ),
        (big.as_str(), "may not be more than 1048576 bytes"),
    ] {
        std::fs::write(home.join("bad.yaml"), text).unwrap();
        let r = ferry(
            home,
            conf,
            &["apply", "-f", home.join("bad.yaml").to_str().unwrap()],
        );
        let short = &text[..text.len().min(80)];
        assert_eq!(r.status.code(), Some(1), "{short}: {}", r.stdout);
        assert!(r.stderr.contains(want), "{short}: {}", r.stderr);
    }
    let cms = ok(home, conf, &["get", "cm", "-A", "-o", "name"]);
    assert!(
        !cms.contains("configmap/x\n")
            && !cms.contains("Bad_Name")
            && !cms.contains("configmap/big"),
        "{cms}"
    );
}

/// What `kubectl create ... --dry-run=client -o yaml|json` (kubectl 1.32) prints:
/// `creationTimestamp: null`, `status: {}`, `strategy: {}`, `resources: {}`.
const KUBECTL_GENERATED: &[(&str, &str, &str)] = &[
    (
        "configmap",
        "cfg",
        r#"{
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": {
        "name": "cfg",
        "creationTimestamp": null
    },
    "data": {
        "a": "1"
    }
}"#,
    ),
    (
        "deployment",
        "web",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
",
    ),
    (
        "service",
        "svc",
        "apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: svc
  name: svc
spec:
  ports:
  - name: 80-8080
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: svc
  type: ClusterIP
status:
  loadBalancer: {}
",
    ),
    (
        "secret",
        "sec",
        "apiVersion: v1
data:
  k: dg==
kind: Secret
metadata:
  creationTimestamp: null
  name: sec
",
    ),
    (
        "job",
        "jb",
        "apiVersion: batch/v1
kind: Job
metadata:
  creationTimestamp: null
  name: jb
spec:
  template:
    metadata:
      creationTimestamp: null
    spec:
      containers:
      - image: busybox
        name: jb
        resources: {}
      restartPolicy: Never
status: {}
",
    ),
];

/// `ferry apply -f -` with `manifest` on stdin.
fn apply_stdin(home: &Path, conf: &str, manifest: &str) -> Ran {
    use std::io::Write as _;
    let mut c = ferry_cmd(home)
        .args(["--config", conf, "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ferry apply");
    c.stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = c.wait_with_output().expect("ferry apply");
    Ran {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_generated_manifests_apply_unchanged_and_a_missing_get_prints_only_the_error() {
    let c = start().await;
    let (home, conf) = (c.home.as_path(), c.conf.as_str());

    // Applying a kubectl-generated manifest again changes nothing and says so.
    for (kind, name, manifest) in KUBECTL_GENERATED {
        let first = apply_stdin(home, conf, manifest);
        assert!(
            first.status.success() && first.stdout.contains(" created"),
            "{kind}: {}{}",
            first.stdout,
            first.stderr
        );
        // What an apply could change (controllers move status, and with it
        // the resourceVersion, on their own).
        let rv = |home: &Path| {
            let mut o = get_json(home, conf, &["get", kind, name, "-o", "json"]);
            if let Some(a) = o["metadata"]["annotations"].as_object_mut() {
                a.remove("deployment.kubernetes.io/revision");
            }
            let m = &o["metadata"];
            (
                m["generation"].clone(),
                m["labels"].clone(),
                m["annotations"].clone(),
                o["spec"].clone(),
                o["data"].clone(),
            )
        };
        let before = rv(home);
        for _ in 0..2 {
            let again = apply_stdin(home, conf, manifest);
            assert!(
                again.status.success() && again.stdout.trim_end().ends_with(" unchanged"),
                "{kind}: a second apply of the same manifest said: {}{}",
                again.stdout,
                again.stderr
            );
        }
        assert_eq!(rv(home), before, "{kind}: the object changed");
    }

    // A missing object: the NotFound error alone, in every output format.
    for out in [None, Some("yaml"), Some("json"), Some("name"), Some("wide")] {
        let mut args = vec!["get", "configmap", "missing"];
        if let Some(o) = out {
            args.extend(["-o", o]);
        }
        let r = ferry(home, conf, &args);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.is_empty(),
            "{args:?} printed on stdout:\n{}",
            r.stdout
        );
        assert!(
            r.stderr
                .contains("Error from server (NotFound): configmaps \"missing\" not found"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Several names: what exists is printed, what does not is an error.
    let r = ferry(
        home,
        conf,
        &["get", "configmap", "cfg", "missing", "-o", "name"],
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert_eq!(r.stdout, "configmap/cfg\n");
    assert!(r.stderr.contains("\"missing\" not found"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_on_when_its_master_is_killed() {
    let c = start().await;
    let (home, conf, up) = (c.home.as_path(), &c.conf, &c.up);
    let cfg = ferry_config::ClientConfig::load(Path::new(&conf)).unwrap();
    // Writes go through the masters the watchers are not connected to (they dial the first).
    let mut others = cfg.clone();
    others.masters.remove(0);
    let client = ferry_api::Client::new(&others).unwrap();
    let send = |verb: ferry_api::object::Verb, name: String, body: Value| {
        let client = &client;
        async move {
            let named = matches!(verb, ferry_api::object::Verb::Patch(_)).then_some(name.as_str());
            let mut r =
                ferry_api::object::ObjectRequest::new(verb, "configmaps", Some("default"), named);
            r.body = serde_json::to_vec(&body).unwrap();
            let resp = client.object(r).await.expect("request answered");
            assert!(
                resp.code == 200 || resp.code == 201,
                "{name}: {}",
                String::from_utf8_lossy(&resp.body)
            );
        }
    };
    let create = |i: usize| {
        let name = format!("w-{i:03}");
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        send(ferry_api::object::Verb::Create, name, body)
    };
    let seen = |path: &Path| -> Vec<(String, String)> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (
                    v["type"].as_str().unwrap_or_default().to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    // An object from before the watches: `-w` lists it, `--watch-only` must not.
    send(
        ferry_api::object::Verb::Create,
        "pre".into(),
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pre"}}),
    )
    .await;
    let watch = |flag: &str, out: &Path| {
        ferry_cmd(home)
            .args([
                "--config",
                conf,
                "get",
                "configmaps",
                "-n",
                "default",
                flag,
                "--output-watch-events",
            ])
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .expect("spawn ferry get")
    };
    let out_path = home.join("watch.out");
    let only_path = home.join("watch-only.out");
    let mut watcher = watch("-w", &out_path);
    let mut watch_only = watch("--watch-only", &only_path);
    // Touch `pre` until the --watch-only watcher reports it: from then on it is watching.
    let mut touches = 0;
    wait_until("--watch-only reports a change to pre", T, || {
        touches += 1;
        let patch = send(
            ferry_api::object::Verb::Patch(ferry_api::object::PatchType::Merge),
            "pre".into(),
            serde_json::json!({"metadata": {"labels": {"touch": touches.to_string()}}}),
        );
        let only = &only_path;
        async move {
            patch.await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            match seen(only).first() {
                Some(_) => Ok(()),
                None => Err("nothing yet".to_string()),
            }
        }
    })
    .await;
    for i in 0..10 {
        create(i).await;
    }
    let changes = |path: &Path| -> Vec<(String, String)> {
        seen(path).into_iter().filter(|(_, n)| n != "pre").collect()
    };
    poll("10 events before the kill", T, || {
        let n = changes(&out_path).len();
        verdict(n >= 10, || format!("{n} events"))
    })
    .await;
    let victim = up.master_pids("m1");
    assert_eq!(victim.len(), 1, "one m1 process: {victim:?}");
    kill(Pid::from_raw(victim[0]), Signal::SIGKILL).expect("kill m1");
    for i in 10..30 {
        create(i).await;
    }
    poll("30 events after the kill in both watches", T, || {
        let (n, m) = (changes(&out_path).len(), changes(&only_path).len());
        verdict(n >= 30 && m >= 30, || format!("{n} and {m} events"))
    })
    .await;
    for w in [&mut watcher, &mut watch_only] {
        let _ = w.kill();
        let _ = w.wait();
    }
    let want: Vec<(String, String)> = (0..30)
        .map(|i| ("ADDED".to_string(), format!("w-{i:03}")))
        .collect();
    let got = seen(&out_path);
    assert_eq!(
        got.first(),
        Some(&("ADDED".to_string(), "pre".to_string())),
        "-w lists first"
    );
    assert_eq!(
        changes(&out_path),
        want,
        "every event exactly once, in order"
    );
    let only = seen(&only_path);
    assert!(
        only.iter().all(|(t, n)| n != "pre" || t == "MODIFIED"),
        "--watch-only reports changes only, not the objects that were there: {only:?}"
    );
    assert_eq!(
        changes(&only_path),
        want,
        "--watch-only: every event exactly once, in order"
    );
}
