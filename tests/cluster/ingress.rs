//! The ingress controller on `ferry up` (3 masters, 2 real nodes, root),
//! driven by unmodified kubectl: the leader's default IngressClass `ferry`;
//! an Ingress routes by host and path (Prefix, Exact, longest first) to its
//! Services' pods through every node's listener on `network.ingress_port`
//! (8880) of the node's address, reached from the host; no matching rule
//! answers 404, a Service without endpoints 503; an Ingress without a class
//! goes to the default class; `status.loadBalancer.ingress` lists the nodes.
//! TLS from kubectl's generators (`create secret tls`, `create ingress
//! --rule=...,tls=...`): curl over HTTPS on `network.ingress_tls_port`
//! (8443) with the Secret's certificate, two requests on one connection,
//! the TLS port beside the plain one in the status; plain HTTP to its host
//! redirected (308) to HTTPS unless `ssl-redirect: "false"`;
//! an Ingress naming a missing Secret gets an Event, its host the default
//! certificate, and the Secret once created is picked up.
//!
//! Without root (no pod network namespaces), the test says so and checks
//! nothing else.

use crate::harness::{poll, LocalUp};
use crate::kubectl::{run, Kubectl};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Answers `<pod name>|<path>|<X-Forwarded-For>` on 8080.
const SERVER: &str = r#"
import os, http.server
name = os.environ["POD_NAME"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("%s|%s|%s" % (name, self.path, self.headers.get("X-Forwarded-For", ""))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

fn manifests() -> String {
    let code: String = SERVER.lines().map(|l| format!("    {l}\n")).collect();
    let deploy = |name: &str, replicas: u32| {
        format!(
            r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      volumes: [{{name: code, configMap: {{name: ing-code}}}}]
      containers:
      - name: server
        image: python:3
        command: ["python3", "/code/server.py"]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        volumeMounts: [{{name: code, mountPath: /code}}]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: web, port: 80, targetPort: http}}]
"#
        )
    };
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: ing-code}}
data:
  server.py: |
{code}
{}{}
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nothing}}
  ports: [{{port: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: site}}
spec:
  ingressClassName: ferry
  rules:
  - host: web.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
      - {{path: /other, pathType: Prefix, backend: {{service: {{name: other, port: {{name: web}}}}}}}}
      - {{path: /exact, pathType: Exact, backend: {{service: {{name: other, port: {{number: 80}}}}}}}}
      - {{path: /down, pathType: Prefix, backend: {{service: {{name: empty, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: plain}}
spec:
  rules:
  - host: "*.plain.example"
    http:
      paths:
      - {{path: /, pathType: ImplementationSpecific, backend: {{service: {{name: other, port: {{number: 80}}}}}}}}
"#,
        deploy("web", 2),
        deploy("other", 1)
    )
}

/// One HTTP/1.1 GET through the ingress at `at`: (status code, body).
fn get(at: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    get_full(at, host, path).map(|(code, _, body)| (code, body))
}

/// One HTTP/1.1 GET through the ingress at `at`: (status code, head, body).
fn get_full(at: SocketAddr, host: &str, path: &str) -> Result<(u16, String, String), String> {
    let mut s =
        TcpStream::connect_timeout(&at, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or(format!("no HTTP answer: {out:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no status in {head:?}"))?;
    Ok((code, head.to_string(), body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingress_routes_by_host_and_path_on_every_node() {
    let Some(mut c) =
        LocalUp::start_as_root("the ingress e2e runs pods in network namespaces (root)").await
    else {
        return;
    };
    let (k, up, home) = (&c.k, &mut c.up, c.home.clone());
    let home = home.as_path();

    // The leader's default class.
    let class = poll("the IngressClass ferry", Duration::from_secs(20), || {
        let out = k.run(&["get", "ingressclass", "ferry", "-o", "json"], None);

        if out.ok {
            Ok(serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap())
        } else {
            Err(out.stderr)
        }
    })
    .await;
    assert_eq!(class["spec"]["controller"], "ferry.dev/ingress");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );

    k.ok_in(&["apply", "-f", "-"], &manifests());
    k.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    k.ok(&["rollout", "status", "deployment/other", "--timeout=90s"]);
    let web: BTreeSet<String> = k.json(&["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(web.len(), 2);
    let other = k.json(&["get", "pods", "-l", "app=other"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // Every node's address, and the status lists them all.
    let nodes = k.json(&["get", "nodes"]);
    let mut addrs: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .unwrap()["address"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    addrs.sort();
    assert_eq!(addrs.len(), 2);
    for ing in ["site", "plain"] {
        poll(
            &format!("{ing}'s status with both nodes"),
            Duration::from_secs(20),
            || {
                let s = k.json(&["get", "ingress", ing]);
                let got: Vec<String> = s["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|i| {
                        let ports: Vec<String> = i["ports"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .iter()
                            .map(|p| {
                                format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or(""))
                            })
                            .collect();
                        format!("{}:{}", i["ip"].as_str().unwrap_or(""), ports.join(","))
                    })
                    .collect();
                // The plain and the TLS listener's port, beside each address.
                let want: Vec<String> = addrs
                    .iter()
                    .map(|a| format!("{a}:8880/TCP,8443/TCP"))
                    .collect();
                let r = (got == want).then_some(()).ok_or(format!("{got:?}"));
                r
            },
        )
        .await;
    }
    assert!(
        k.ok(&["get", "ingress", "site"]).contains(&addrs[0]),
        "ADDRESS shown"
    );

    for a in &addrs {
        let at: SocketAddr = format!("{a}:8880").parse().unwrap();
        // Prefix `/` reaches both replicas of web (the table may lag the
        // endpoints at first).
        let seen = poll(
            &format!("both web replicas through {at}"),
            Duration::from_secs(20),
            || {
                let mut seen = BTreeSet::new();
                let mut err = None;
                for _ in 0..30 {
                    match get(at, "web.example", "/some/page?q=1") {
                        Ok((200, body)) => {
                            let parts: Vec<&str> = body.split('|').collect();
                            assert_eq!(parts[1], "/some/page?q=1", "the path passed on: {body}");
                            assert_eq!(parts[2], "127.0.0.1", "X-Forwarded-For: {body}");
                            seen.insert(parts[0].to_string());
                        }
                        other => err = Some(format!("{other:?}")),
                    }
                }
                let r = match err {
                    Some(e) => Err(e),
                    None if seen == web => Ok(seen),
                    None => Err(format!("saw {seen:?}")),
                };
                r
            },
        )
        .await;
        assert_eq!(seen, web);
        // Longer prefixes and Exact win over `/`; `/otherx` is not `/other`.
        for (host, path, want) in [
            ("web.example", "/other", Some(&other)),
            ("WEB.example:8880", "/other/deep", Some(&other)),
            ("web.example", "/exact", Some(&other)),
            ("web.example", "/exact/not", None),
            ("web.example", "/otherx", None),
            ("a.plain.example", "/x", Some(&other)),
        ] {
            let (code, body) = get(at, host, path).unwrap();
            assert_eq!(code, 200, "{host}{path}: {body}");
            let name = body.split('|').next().unwrap().to_string();
            match want {
                Some(w) => assert_eq!(&name, w, "{host}{path}"),
                None => assert!(web.contains(&name), "{host}{path} to web: {body}"),
            }
        }
        // Nothing matches: 404; a Service without endpoints: 503.
        for (host, path, code, says) in [
            ("nowhere.example", "/", 404, "no Ingress rule"),
            ("b.a.plain.example", "/", 404, "no Ingress rule"),
            ("web.example", "/down", 503, "default/empty:80"),
        ] {
            let (c, body) = get(at, host, path).unwrap();
            assert_eq!(c, code, "{host}{path}: {body}");
            assert!(body.contains(says), "{host}{path}: {body}");
        }
    }

    tls_from_kubectl_generators(k, home, &addrs, &web).await;

    // Deleting the Ingress stops the routing.
    k.ok(&["delete", "ingress", "site"]);
    let at: SocketAddr = format!("{}:8880", addrs[0]).parse().unwrap();
    poll("site's routes gone", Duration::from_secs(10), || {
        let r = match get(at, "web.example", "/") {
            Ok((404, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        r
    })
    .await;

    up.stop_gracefully().await;
}

/// A self-signed certificate and key for `host` in `dir`: (cert, key) paths.
fn certificate(dir: &std::path::Path, host: &str) -> (String, String) {
    let crt = dir.join(format!("{host}.crt")).display().to_string();
    let key = dir.join(format!("{host}.key")).display().to_string();
    let o = run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            &format!("/CN={host}"),
            "-addext",
            &format!("subjectAltName=DNS:{host}"),
        ],
        None,
    );
    assert!(o.ok, "openssl: {}", o.stderr);
    (crt, key)
}

/// curl over HTTPS to `host` at `addr:8443` (`--resolve`), trusting `ca`
/// (else `-k`), each of `paths` on one curl: stdout, with after each
/// answer `<code> <new connections>`.
fn curl(
    home: &std::path::Path,
    addr: &str,
    host: &str,
    ca: Option<&str>,
    paths: &[&str],
) -> Result<String, String> {
    let resolve = format!("{host}:8443:{addr}");
    let mut args = vec![
        "-sS",
        "--max-time",
        "10",
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_code} %{num_connects}\n",
    ];
    match ca {
        Some(ca) => args.extend(["--cacert", ca]),
        None => args.push("-k"),
    }
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("https://{host}:8443{p}"))
        .collect();
    args.extend(urls.iter().map(String::as_str));
    let o = run(home, "curl", &args, None);
    if o.ok {
        Ok(o.stdout)
    } else {
        Err(format!("curl {}: {}{}", args.join(" "), o.stdout, o.stderr))
    }
}

async fn tls_from_kubectl_generators(
    k: &Kubectl,
    home: &std::path::Path,
    addrs: &[String],
    web: &BTreeSet<String>,
) {
    let (crt, key) = certificate(home, "secure.example");
    k.ok(&[
        "create",
        "secret",
        "tls",
        "secure-tls",
        "--cert",
        &crt,
        "--key",
        &key,
    ]);
    k.ok(&[
        "create",
        "ingress",
        "secure",
        "--class=ferry",
        "--rule=secure.example/*=web:80,tls=secure-tls",
    ]);
    let tls = k.json(&["get", "ingress", "secure"])["spec"]["tls"].clone();
    assert_eq!(
        tls,
        serde_json::json!([{"hosts": ["secure.example"], "secretName": "secure-tls"}])
    );
    for a in addrs {
        // Two requests, one connection: the second made no new connect.
        let out = poll(
            &format!("HTTPS to secure.example through {a}"),
            Duration::from_secs(20),
            || curl(home, a, "secure.example", Some(&crt), &["/one", "/two"]),
        )
        .await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        for (body, path) in [(lines[0], "/one"), (lines[2], "/two")] {
            let parts: Vec<&str> = body.split('|').collect();
            assert!(web.contains(parts[0]), "a web pod answers: {out}");
            assert_eq!(parts[1], path, "{out}");
        }
        assert_eq!(
            (lines[1], lines[3]),
            ("200 1", "200 0"),
            "one connection: {out}"
        );
        // No rule for the host: 404 over HTTPS too (the default certificate).
        let out = curl(home, a, "nowhere.example", None, &["/"]).unwrap();
        assert!(out.ends_with("404 1\n"), "{out}");
        // Plain HTTP to the TLS host: 308 to HTTPS on the TLS port, as
        // ingress-nginx; a host without TLS is still proxied.
        let at: SocketAddr = format!("{a}:8880").parse().unwrap();
        let (code, head, _) = get_full(at, "secure.example", "/login?next=1").unwrap();
        assert_eq!(code, 308, "{head}");
        assert!(
            head.contains("\r\nLocation: https://secure.example:8443/login?next=1"),
            "{head}"
        );
        let (code, body) = get(at, "web.example", "/").unwrap();
        assert_eq!(code, 200, "{body}");
    }
    // ssl-redirect "false" (kubectl annotate): plain HTTP proxied again.
    k.ok(&[
        "annotate",
        "ingress",
        "secure",
        "nginx.ingress.kubernetes.io/ssl-redirect=false",
    ]);
    let at: SocketAddr = format!("{}:8880", addrs[0]).parse().unwrap();
    poll(
        "no redirect once ssl-redirect is false",
        Duration::from_secs(20),
        || {
            let r = match get(at, "secure.example", "/plain") {
                Ok((200, body)) if body.contains("|/plain|") => Ok(()),
                other => Err(format!("{other:?}")),
            };
            r
        },
    )
    .await;

    // A missing Secret: an Event on the Ingress, the default certificate
    // meanwhile; the Secret created later is picked up.
    k.ok(&[
        "create",
        "ingress",
        "later",
        "--class=ferry",
        "--rule=later.example/*=web:80,tls=later-tls",
    ]);
    let msg = poll(
        "the MissingTLSSecret event",
        Duration::from_secs(20),
        || {
            let ev = k.json(&["get", "events"]);
            ev["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .find(|e| {
                    e["reason"] == "MissingTLSSecret"
                        && e["involvedObject"]["kind"] == "Ingress"
                        && e["involvedObject"]["name"] == "later"
                })
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .ok_or(format!("{ev}"))
        },
    )
    .await;
    assert!(
        msg.contains("Secret default/later-tls named in spec.tls does not exist"),
        "{msg}"
    );
    let (later_crt, later_key) = certificate(home, "later.example");
    assert!(
        curl(home, &addrs[0], "later.example", Some(&later_crt), &["/"]).is_err(),
        "no certificate of its own yet"
    );
    let out = curl(home, &addrs[0], "later.example", None, &["/"]).unwrap();
    assert!(
        out.ends_with("200 1\n"),
        "served with the default certificate: {out}"
    );
    k.ok(&[
        "create",
        "secret",
        "tls",
        "later-tls",
        "--cert",
        &later_crt,
        "--key",
        &later_key,
    ]);
    for a in addrs {
        poll(
            &format!("later.example's new Secret through {a}"),
            Duration::from_secs(20),
            || curl(home, a, "later.example", Some(&later_crt), &["/"]),
        )
        .await;
    }
    k.ok(&["delete", "ingress", "secure", "later"]);
}
