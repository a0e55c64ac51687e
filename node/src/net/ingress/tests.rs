use super::*;
use serde_json::json;

fn svc(ns: &str, name: &str, ports: serde_json::Value) -> (String, Service) {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports},
    }))
    .unwrap();
    (format!("{ns}/{name}"), s)
}

/// A slice of Service `name` with port `pname` → `target`, endpoints (ip, ready).
fn slice(ns: &str, name: &str, pname: &str, target: u16, eps: &[(&str, bool)]) -> EndpointSlice {
    let eps: Vec<_> = eps
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": pname, "port": target, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

fn ingress(ns: &str, name: &str, created: &str, spec: serde_json::Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

fn path(p: &str, kind: &str, svc: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": port}}})
}

/// Services a, b, c, d (port 80 named `web` → 8080, one ready endpoint
/// each: 10.42.0.1..4), `down` (no ready endpoint) and the Ingresses.
fn table(ingresses: &[Ingress]) -> Table {
    let mut services = BTreeMap::new();
    let mut slices = Vec::new();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let (k, s) = svc(
            "web",
            name,
            json!([{"name": "web", "port": 80, "targetPort": 8080}]),
        );
        services.insert(k, s);
        let ip = format!("10.42.0.{}", i + 1);
        slices.push(slice("web", name, "web", 8080, &[(ip.as_str(), true)]));
    }
    let (k, s) = svc("web", "down", json!([{"name": "web", "port": 80}]));
    services.insert(k, s);
    slices.push(slice("web", "down", "web", 80, &[("10.42.0.9", false)]));
    Table::new(ingresses, &[], &services, &slices)
}

fn to(t: &Table, host: &str, path: &str) -> Option<String> {
    t.route(host, path).map(|b| {
        let eps: Vec<String> = b.endpoints.iter().map(|e| e.to_string()).collect();
        format!("{} {}", b.service, eps.join(","))
    })
}

#[test]
fn paths_match_as_kubernetes_defines_them() {
    use PathKind::*;
    // Kubernetes' table of examples (concepts/services-networking/ingress).
    for (kind, want, path, ok) in [
        (Prefix, "/", "/anything", true),
        (Exact, "/foo", "/foo", true),
        (Exact, "/foo", "/bar", false),
        (Exact, "/foo", "/foo/", false),
        (Exact, "/foo/", "/foo", false),
        (Prefix, "/foo", "/foo", true),
        (Prefix, "/foo", "/foo/", true),
        (Prefix, "/foo/", "/foo", true),
        (Prefix, "/foo/", "/foo/", true),
        (Prefix, "/aaa/bb", "/aaa/bbb", false),
        (Prefix, "/aaa/bbb", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb/", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb", "/aaa/bbb/", true),
        (Prefix, "/aaa/bbb", "/aaa/bbb/ccc", true),
        (Prefix, "/aaa/bbb", "/aaa/bbbxyz", false),
    ] {
        assert_eq!(path_matches(kind, want, path), ok, "{kind:?} {want} {path}");
    }
}

#[test]
fn the_longest_path_wins_exact_before_prefix() {
    let t = table(&[ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [{"http": {"paths": [
            path("/", "Prefix", "a", json!({"number": 80})),
            path("/api", "Prefix", "b", json!({"number": 80})),
            path("/api/v2", "ImplementationSpecific", "c", json!({"name": "web"})),
            path("/api", "Exact", "d", json!({"number": 80})),
        ]}}]}),
    )]);
    assert_eq!(to(&t, "x", "/").unwrap(), "web/a:80 10.42.0.1:8080");
    assert_eq!(to(&t, "x", "/apix").unwrap(), "web/a:80 10.42.0.1:8080");
    assert_eq!(to(&t, "x", "/api").unwrap(), "web/d:80 10.42.0.4:8080");
    assert_eq!(to(&t, "x", "/api/").unwrap(), "web/b:80 10.42.0.2:8080");
    assert_eq!(
        to(&t, "x", "/api/v1?q=1").unwrap(),
        "web/b:80 10.42.0.2:8080"
    );
    assert_eq!(
        to(&t, "x", "/api/v2/x").unwrap(),
        "web/c:web 10.42.0.3:8080"
    );
}

#[test]
fn hosts_exact_then_wildcard_then_any_and_404() {
    let t = table(&[ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [
            {"host": "foo.example.com", "http": {"paths": [path("/", "Prefix", "a", json!({"number": 80}))]}},
            {"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "b", json!({"number": 80}))]}},
            {"http": {"paths": [path("/only", "Prefix", "c", json!({"number": 80}))]}},
        ]}),
    )]);
    assert!(to(&t, "FOO.example.com:8880", "/x")
        .unwrap()
        .starts_with("web/a:80"));
    assert!(to(&t, "bar.example.com", "/x")
        .unwrap()
        .starts_with("web/b:80"));
    // A wildcard covers one label only.
    assert_eq!(to(&t, "a.bar.example.com", "/x"), None);
    assert_eq!(to(&t, "example.com", "/x"), None);
    assert!(to(&t, "other", "/only/1").unwrap().starts_with("web/c:80"));
    assert!(to(&t, "127.0.1.2:8880", "/only")
        .unwrap()
        .starts_with("web/c:80"));
    assert_eq!(to(&t, "other", "/"), None);
    assert!(to(&t, "[::1]:8880", "/only")
        .unwrap()
        .starts_with("web/c:80"));
}

#[test]
fn default_backend_classes_oldest_first_and_no_endpoints() {
    let old = ingress(
        "web",
        "old",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry",
               "defaultBackend": {"service": {"name": "d", "port": {"number": 80}}},
               "rules": [{"http": {"paths": [path("/x", "Prefix", "a", json!({"number": 80}))]}}]}),
    );
    let new = ingress(
        "web",
        "new",
        "2026-02-01T00:00:00Z",
        json!({"ingressClassName": "ferry",
        "defaultBackend": {"service": {"name": "c", "port": {"number": 80}}},
        "rules": [{"http": {"paths": [
            path("/x", "Prefix", "b", json!({"number": 80})),
            path("/down", "Prefix", "down", json!({"number": 80})),
            path("/gone", "Prefix", "nothing", json!({"number": 80})),
            path("/badport", "Prefix", "a", json!({"number": 81})),
        ]}}]}),
    );
    let other = ingress(
        "web",
        "nginx",
        "2025-01-01T00:00:00Z",
        json!({"ingressClassName": "nginx",
               "rules": [{"http": {"paths": [path("/y", "Prefix", "a", json!({"number": 80}))]}}]}),
    );
    // Listed in any order: the older Ingress wins the same path.
    let t = table(&[new, other, old]);
    assert!(to(&t, "h", "/x").unwrap().starts_with("web/a:80"));
    assert!(
        to(&t, "h", "/zzz").unwrap().starts_with("web/d:80"),
        "old's default"
    );
    assert!(
        to(&t, "h", "/y").unwrap().starts_with("web/d:80"),
        "nginx's is not ours"
    );
    // Known routes without usable endpoints: 503.
    for p in ["/down", "/gone", "/badport"] {
        let b = t.route("h", p).unwrap();
        assert!(b.endpoints.is_empty(), "{p}: {b:?}");
        assert_eq!(b.ingress, "web/new");
    }
    assert_eq!(t.route("h", "/badport").unwrap().service, "web/a:81");
    // No served Ingress: nothing routes.
    let t = table(&[]);
    assert_eq!(to(&t, "h", "/"), None);
}

/// A table routing every request to Service `web/a` with endpoints `eps`
/// (127.0.0.1 ports; none: no endpoints).
fn loopback_table(ports: &[u16]) -> Arc<RwLock<Arc<Table>>> {
    let (k, s) = svc("web", "a", json!([{"name": "web", "port": 80}]));
    let eps: Vec<serde_json::Value> = ports
        .iter()
        .map(|_| json!({"addresses": ["127.0.0.1"], "conditions": {"ready": true}}))
        .collect();
    // One slice per port: a slice has one port set.
    let slices: Vec<EndpointSlice> = ports
        .iter()
        .zip(eps)
        .enumerate()
        .map(|(i, (p, e))| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("a-{i}"), "namespace": "web",
                             "labels": {"kubernetes.io/service-name": "a"}},
                "addressType": "IPv4",
                "ports": [{"name": "web", "port": p, "protocol": "TCP"}],
                "endpoints": [e],
            }))
            .unwrap()
        })
        .collect();
    let ing = ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [{"host": "web.example", "http": {"paths": [
            path("/", "Prefix", "a", json!({"number": 80})),
        ]}}]}),
    );
    let t = Table::new(&[ing], &[], &BTreeMap::from([(k, s)]), &slices);
    Arc::new(RwLock::new(Arc::new(t)))
}

/// A listener serving `table` as the node's ingress does.
async fn front(table: Arc<RwLock<Arc<Table>>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((c, peer)) = l.accept().await {
            tokio::spawn(serve(c, peer, table.clone()));
        }
    });
    at
}

/// An upstream answering each request with its head and body as received
/// (keep-alive, as many servers answer).
async fn echo_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(Some((head, mut body))) = read_head(&mut c).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&head).to_string();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                while body.len() < len {
                    let mut b = [0u8; 1024];
                    let n = c.read(&mut b).await.unwrap();
                    body.extend_from_slice(&b[..n]);
                }
                let answer = format!("{text}{}", String::from_utf8_lossy(&body));
                let msg = if text.starts_with("GET /chunked ") {
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                };
                c.write_all(msg.as_bytes()).await.unwrap();
                // Keep-alive: the proxy must not wait for this side to close.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

async fn exchange(at: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("the proxy closes the connection after one answer")
        .unwrap();
    out
}

#[tokio::test]
async fn requests_are_proxied_with_forwarding_headers_and_closed() {
    let port = echo_upstream().await;
    let at = front(loopback_table(&[port])).await;
    let out = exchange(
        at,
        "POST /x?y=1 HTTP/1.1\r\nHost: web.example:8880\r\nConnection: keep-alive\r\n\
         X-Forwarded-For: 192.0.2.7\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(
        head.contains("Connection: close") && !head.contains("keep-alive"),
        "{head}"
    );
    // What the endpoint got: the request as sent, the hop-by-hop header
    // replaced, the forwarding headers added, the body whole.
    assert!(body.starts_with("POST /x?y=1 HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("Host: web.example:8880\r\n"), "{body}");
    assert!(
        body.contains("X-Forwarded-For: 192.0.2.7, 127.0.0.1\r\n"),
        "{body}"
    );
    assert!(
        body.contains("X-Forwarded-Host: web.example:8880\r\n"),
        "{body}"
    );
    assert!(body.contains("X-Forwarded-Proto: http\r\n"), "{body}");
    assert!(
        body.contains("Connection: close\r\n") && !body.contains("keep-alive"),
        "{body}"
    );
    assert!(body.ends_with("\r\n\r\nhello"), "{body}");
    // A chunked answer after an interim one, the endpoint's side kept open:
    // passed on whole, then closed.
    let out = exchange(at, "GET /chunked HTTP/1.1\r\nHost: web.example\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        "{out}"
    );
    // HEAD: no body, whatever Content-Length says.
    let out = exchange(at, "HEAD / HTTP/1.1\r\nHost: web.example\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("\r\n\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn no_rule_404_no_endpoints_503_dead_endpoints_502_bad_request_400() {
    let port = echo_upstream().await;
    // A port nothing listens on: bound, then released.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let at = front(loopback_table(&[port])).await;
    let out = exchange(at, "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 404 Not Found"), "{out}");
    assert!(
        out.contains("no Ingress rule of class ferry matches host \"other.example\""),
        "{out}"
    );
    let out = exchange(at, "GET http://web.example/abs HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "absolute form routes by its host: {out}"
    );
    let out = exchange(at, "NOT HTTP\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request"), "{out}");

    let empty = front(loopback_table(&[])).await;
    let out = exchange(empty, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 503 Service Unavailable"), "{out}");
    assert!(
        out.contains("web/a:80 of Ingress web/i has no ready endpoints"),
        "{out}"
    );

    // One dead endpoint among live ones: every request still answers.
    let mixed = front(loopback_table(&[dead_port, port])).await;
    for _ in 0..10 {
        let out = exchange(mixed, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
    let dead_only = front(loopback_table(&[dead_port])).await;
    let out = exchange(dead_only, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 502 Bad Gateway"), "{out}");
}

#[tokio::test]
async fn upgrades_pass_through_both_ways() {
    // An endpoint that switches protocols when asked to keep `Connection:
    // Upgrade`, then echoes.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let (head, _) = read_head(&mut c).await.unwrap().unwrap();
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.contains("Connection: Upgrade\r\n") || !head.contains("Upgrade: echo\r\n") {
            c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            return;
        }
        c.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
        let mut b = [0u8; 64];
        loop {
            let n = c.read(&mut b).await.unwrap();
            if n == 0 {
                return;
            }
            c.write_all(&b[..n]).await.unwrap();
        }
    });
    let at = front(loopback_table(&[port])).await;
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while find_end(&got).is_none() {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    for msg in ["ping", "pong"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], msg.as_bytes());
    }
}
