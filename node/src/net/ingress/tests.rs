use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A listener serving `table` as the node's plain ingress listener does
/// (with its own endpoint connection pool, redirects to 8443).
async fn front(table: Arc<RwLock<Arc<Table>>>) -> SocketAddr {
    front_with(table, Arc::new(pool::Pool::default()), 8443).await
}

/// A plain listener serving `table` with `pool`, redirecting to `https_port`.
async fn front_with(
    table: Arc<RwLock<Arc<Table>>>,
    pool: Arc<pool::Pool>,
    https_port: u16,
) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let front = Arc::new(Front {
        scheme: "http",
        table,
        pool,
        https_port,
    });
    tokio::spawn(async move {
        while let Ok((c, peer)) = l.accept().await {
            tokio::spawn(serve(c, peer, front.clone()));
        }
    });
    at
}

/// An upstream answering each request with its head and body as received
/// (keep-alive, as many servers answer).
async fn echo_upstream() -> u16 {
    echo_upstream_counting().await.0
}

/// [`echo_upstream`], with the number of connections it accepted and of
/// those still open. `GET /bye` is answered with `Connection: close`, then
/// closed; `GET /quiet` is answered, then the connection closed by the
/// endpoint after 200 ms without saying so (an idle timeout).
async fn echo_upstream_counting() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (a, o) = (accepted.clone(), open.clone());
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            o.fetch_add(1, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for served in 0.. {
                    let Some((head, rest)) = raw_head_from(&mut c, &mut buf).await else {
                        break;
                    };
                    let mut body = rest;
                    let text = String::from_utf8_lossy(&head).to_string();
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |n| n.trim().parse().unwrap());
                    let chunked = text.contains("Transfer-Encoding: chunked\r\n");
                    // A chunked body: up to its last chunk (no trailers here).
                    let mut closed = false;
                    while body.len() < len || (chunked && !body.ends_with(b"0\r\n\r\n")) {
                        let mut b = [0u8; 1024];
                        let n = c.read(&mut b).await.unwrap_or(0);
                        if n == 0 {
                            closed = true;
                            break;
                        }
                        body.extend_from_slice(&b[..n]);
                    }
                    // `/drop` after the first request: closed unanswered (any
                    // method), as an endpoint closing a kept-alive connection just then.
                    if closed || (served > 0 && text.split_whitespace().nth(1) == Some("/drop")) {
                        break;
                    }
                    // What follows this request's body: the next request.
                    let end = if chunked { body.len() } else { len };
                    buf = body.split_off(end);
                    let answer = format!("{text}{}", String::from_utf8_lossy(&body));
                    let bye = text.starts_with("GET /bye ");
                    let msg = if text.starts_with("GET /chunked ") {
                        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                         5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                            .to_string()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nConnection: {}\r\nContent-Length: {}\r\n\r\n{answer}",
                            if bye { "close" } else { "keep-alive" },
                            answer.len()
                        )
                    };
                    if c.write_all(msg.as_bytes()).await.is_err() || bye {
                        break;
                    }
                    if text.starts_with("GET /quiet ") {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, accepted, open)
}

/// Reads up to the end of an HTTP head from `s`, starting with what `buf`
/// holds: (head, bytes read past it); `buf` is left empty.
async fn raw_head_from(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_end(buf) {
            let rest = buf.split_off(end);
            return Some((std::mem::take(buf), rest));
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads up to the end of an HTTP head from `s`: (head, bytes read past it).
async fn raw_head(s: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_end(&buf) {
            let rest = buf.split_off(end);
            return Some((buf, rest));
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request`, closes the sending side (so a kept-alive connection
/// ends after the answer) and reads everything the proxy answers.
async fn exchange(at: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("the proxy closes the connection once the client is done")
        .unwrap();
    out
}

#[tokio::test]
async fn requests_are_proxied_with_forwarding_headers() {
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
    // The endpoint's hop-by-hop header dropped; the client's connection kept.
    assert!(!head.contains("Connection:"), "{head}");
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
    // HTTP/1.1 to the endpoint over a kept-alive connection: no
    // `Connection` header of the client's passed on, none of the proxy's.
    assert!(
        !body.contains("Connection:") && !body.contains("keep-alive"),
        "{body}"
    );
    assert!(body.ends_with("\r\n\r\nhello"), "{body}");
    // A chunked answer after an interim one, the endpoint's side kept open:
    // passed on whole.
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
        let (head, _) = raw_head(&mut c).await.unwrap();
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

/// Reads whole answers from `s` (each by its `Content-Length`) until `n`
/// have come: (status line, head, body) each.
async fn answers(s: &mut TcpStream, n: usize) -> Vec<(String, String, String)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        if let Some(end) = find_end(&buf) {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + len {
                let body = String::from_utf8_lossy(&buf[end..end + len]).to_string();
                buf.drain(..end + len);
                let status = head.lines().next().unwrap_or_default().to_string();
                out.push((status, head, body));
                continue;
            }
        }
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(r > 0, "closed after {} answers", out.len());
        buf.extend_from_slice(&chunk[..r]);
    }
    out
}

#[tokio::test]
async fn one_connection_carries_many_requests_pipelined_and_chunked() {
    let port = echo_upstream().await;
    let at = front(loopback_table(&[port])).await;
    let mut s = TcpStream::connect(at).await.unwrap();
    // One after another on one connection, the 404 included.
    for (path, host, code) in [
        ("/one", "web.example", "200"),
        ("/", "nowhere.example", "404"),
        ("/two", "web.example", "200"),
    ] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let a = answers(&mut s, 1).await;
        assert!(a[0].0.starts_with(&format!("HTTP/1.1 {code}")), "{a:?}");
        assert!(!a[0].1.contains("Connection: close"), "{a:?}");
        if code == "200" {
            assert!(
                a[0].2.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
                "{a:?}"
            );
        }
    }
    // Pipelined in one write: a chunked POST between two GETs, the last
    // asking to close; answered in order, the body passed on as sent.
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: web.example\r\n\r\n\
          POST /p2 HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n\
          POST /p3 HTTP/1.1\r\nHost: web.example\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await
    .unwrap();
    let a = answers(&mut s, 3).await;
    assert!(a[0].2.starts_with("GET /p1 HTTP/1.1\r\n"), "{a:?}");
    assert!(a[1].2.starts_with("POST /p2 HTTP/1.1\r\n"), "{a:?}");
    assert!(
        a[1].2.contains("Transfer-Encoding: chunked\r\n")
            && a[1]
                .2
                .ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "{a:?}"
    );
    assert!(a[2].2.starts_with("POST /p3 HTTP/1.1\r\n"), "{a:?}");
    assert!(a[2].2.ends_with("\r\n\r\nabc"), "{a:?}");
    // `Connection: close` honoured: said, then closed.
    assert!(a[2].1.contains("Connection: close\r\n"), "{a:?}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed after the answer to Connection: close")
        .unwrap();
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn http10_closes_unless_asked_and_smuggling_is_refused() {
    let port = echo_upstream().await;
    let at = front(loopback_table(&[port])).await;
    // HTTP/1.0 without keep-alive: one answer, closed (no half-close here).
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(b"GET /old HTTP/1.0\r\nHost: web.example\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("HTTP/1.0 closes")
        .unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("Connection: close\r\n"),
        "{out}"
    );
    // HTTP/1.0 with keep-alive: kept, and said so.
    let mut s = TcpStream::connect(at).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /old HTTP/1.0\r\nHost: web.example\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let a = answers(&mut s, 1).await;
        assert!(a[0].1.contains("Connection: keep-alive\r\n"), "{a:?}");
    }
    // Both framings, or a coding other than chunked last: 400, closed.
    for bad in [
        "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: -1\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(at).await.unwrap();
        s.write_all(bad.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("closed after a bad request")
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request"), "{bad:?}: {out}");
    }
}

#[test]
fn request_framing_follows_rfc_9112() {
    let h = |pairs: &[(&'static str, &'static str)]| -> Vec<httparse::Header<'static>> {
        pairs
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect()
    };
    assert_eq!(request_framing(&h(&[])), Ok(Framing::None));
    assert_eq!(
        request_framing(&h(&[("Content-Length", "0")])),
        Ok(Framing::None)
    );
    assert_eq!(
        request_framing(&h(&[("content-length", "12")])),
        Ok(Framing::Length(12))
    );
    assert_eq!(
        request_framing(&h(&[("Content-Length", "12"), ("Content-Length", "12")])),
        Ok(Framing::Length(12))
    );
    assert_eq!(
        request_framing(&h(&[("Transfer-Encoding", "gzip, chunked")])),
        Ok(Framing::Chunked)
    );
    for (bad, says) in [
        (
            vec![("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
            "both",
        ),
        (vec![("Transfer-Encoding", "chunked, gzip")], "only chunked"),
        (vec![("Content-Length", "+3")], "not a length"),
        (
            vec![("Content-Length", "3"), ("Content-Length", "4")],
            "conflicting",
        ),
    ] {
        let e = request_framing(&h(&bad)).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}

/// A self-signed certificate for `hosts` as `kubectl create secret tls`
/// stores it: (the Secret, the certificate's DER).
fn tls_secret(
    ns: &str,
    name: &str,
    hosts: &[&str],
) -> (k8s_openapi::api::core::v1::Secret, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let s = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64_of(ck.cert.pem().as_bytes()),
            "tls.key": base64_of(ck.key_pair.serialize_pem().as_bytes()),
        },
    }))
    .unwrap();
    (s, ck.cert.der().to_vec())
}

fn base64_of(b: &[u8]) -> String {
    // k8s-openapi's ByteString is base64 in JSON; encode through it.
    serde_json::to_value(k8s_openapi::ByteString(b.to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn tls_ingress(name: &str, created: &str, class: &str, tls: serde_json::Value) -> Ingress {
    ingress(
        "web",
        name,
        created,
        json!({"ingressClassName": class, "tls": tls,
               "rules": [{"host": "rule.example", "http": {"paths": [
                   path("/", "Prefix", "a", json!({"number": 80}))]}}]}),
    )
}

fn der_of(ck: &rustls::sign::CertifiedKey) -> Vec<u8> {
    ck.cert[0].as_ref().to_vec()
}

#[test]
fn certificates_by_host_and_what_is_wrong_with_secrets() {
    use tls::Seen;
    let fallback = tls::fake_certificate().unwrap();
    let (good, good_der) = tls_secret("web", "good", &["a.example"]);
    let (wild, wild_der) = tls_secret("web", "wild", &["*.wild.example"]);
    let (newer, _) = tls_secret("web", "newer", &["a.example"]);
    // A key of another certificate.
    let (mut mismatched, _) = tls_secret("web", "mismatched", &["m.example"]);
    let (other, _) = tls_secret("web", "x", &["m.example"]);
    mismatched.data.as_mut().unwrap().insert(
        "tls.key".into(),
        other.data.as_ref().unwrap()["tls.key"].clone(),
    );
    let opaque: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "opaque", "namespace": "web"}, "type": "Opaque",
        "data": {"k": "dg=="}}))
    .unwrap();
    let (mut garbage, _) = tls_secret("web", "garbage", &["g.example"]);
    garbage.data.as_mut().unwrap().insert(
        "tls.crt".into(),
        k8s_openapi::ByteString(b"not pem".to_vec()),
    );
    let ingresses = [
        tls_ingress(
            "old",
            "2026-01-01T00:00:00Z",
            "ferry",
            json!([{"hosts": ["a.example", "*.wild.example"], "secretName": "good"},
                   {"hosts": ["*.wild.example"], "secretName": "wild"},
                   {"hosts": ["gone.example"], "secretName": "gone"},
                   {"hosts": ["m.example"], "secretName": "mismatched"},
                   {"hosts": ["o.example"], "secretName": "opaque"},
                   {"hosts": ["g.example"], "secretName": "garbage"},
                   {"hosts": ["later.example"], "secretName": "unknown-yet"},
                   {"hosts": ["none.example"]}]),
        ),
        // Newer: a.example keeps the older Ingress's certificate; no hosts:
        // its rules' hosts.
        tls_ingress(
            "new",
            "2026-02-01T00:00:00Z",
            "ferry",
            json!([{"hosts": ["a.example"], "secretName": "newer"},
                   {"secretName": "newer"}]),
        ),
        // Not ferry's: neither read nor reported.
        tls_ingress(
            "nginx",
            "2026-01-01T00:00:00Z",
            "nginx",
            json!([{"hosts": ["n.example"], "secretName": "nginx-secret"}]),
        ),
    ];
    let want: Vec<String> = tls::wanted(&ingresses, &[]).into_iter().collect();
    assert_eq!(
        want,
        [
            "web/garbage",
            "web/gone",
            "web/good",
            "web/mismatched",
            "web/newer",
            "web/opaque",
            "web/unknown-yet",
            "web/wild"
        ]
    );
    let seen: BTreeMap<String, Seen> = [
        ("good", Seen::Found(Box::new(good))),
        ("wild", Seen::Found(Box::new(wild))),
        ("newer", Seen::Found(Box::new(newer))),
        ("mismatched", Seen::Found(Box::new(mismatched))),
        ("opaque", Seen::Found(Box::new(opaque))),
        ("garbage", Seen::Found(Box::new(garbage))),
        ("gone", Seen::Missing),
    ]
    .into_iter()
    .map(|(k, v)| (format!("web/{k}"), v))
    .collect();
    let (certs, problems) = tls::build(&ingresses, &[], &seen, fallback.clone());
    assert_eq!(der_of(&certs.pick(Some("a.example"))), good_der);
    assert_eq!(der_of(&certs.pick(Some("A.Example."))), good_der);
    // The first entry naming the wildcard wins: `good`'s.
    assert_eq!(der_of(&certs.pick(Some("x.wild.example"))), good_der);
    assert!(!certs.has("y.x.wild.example"), "a wildcard is one label");
    assert!(certs.has("rule.example"), "no hosts: the rules' hosts");
    for h in [
        "gone.example",
        "m.example",
        "o.example",
        "g.example",
        "later.example",
        "none.example",
        "n.example",
    ] {
        assert!(!certs.has(h), "{h}");
        assert_eq!(der_of(&certs.pick(Some(h))), der_of(&fallback));
    }
    assert_eq!(der_of(&certs.pick(None)), der_of(&fallback));
    let _ = wild_der;
    let got: Vec<(String, &str, String)> = problems
        .iter()
        .map(|p| (p.ingress.clone(), p.reason, p.message.clone()))
        .collect();
    let want = vec![
        (
            "web/old",
            "InvalidTLSSecret",
            "Secret web/garbage named in spec.tls is not a usable TLS Secret: tls.crt holds no PEM CERTIFICATE; g.example get the default certificate",
        ),
        (
            "web/old",
            "InvalidTLSSecret",
            "Secret web/mismatched named in spec.tls is not a usable TLS Secret: tls.key is not the key of the certificate in tls.crt; m.example get the default certificate",
        ),
        (
            "web/old",
            "InvalidTLSSecret",
            "Secret web/opaque named in spec.tls is not a usable TLS Secret: it has no tls.crt (its type is \"Opaque\", not kubernetes.io/tls); o.example get the default certificate",
        ),
        (
            "web/old",
            "MissingTLSSecret",
            "Secret web/gone named in spec.tls does not exist; gone.example get the default certificate",
        ),
    ];
    let want: Vec<(String, &str, String)> = want
        .into_iter()
        .map(|(i, r, m)| (i.to_string(), r, m.to_string()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    // The Event names the Ingress and says what is wrong.
    let ev = tls::event(&problems[0], "n1", "2026-01-01T00:00:00Z");
    assert_eq!(ev["involvedObject"]["kind"], "Ingress");
    assert_eq!(ev["involvedObject"]["name"], "old");
    assert_eq!(ev["metadata"]["namespace"], "web");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["source"]["host"], "n1");
}

/// A TLS front serving `table` with `certs`, as the node's TLS listener.
async fn tls_front(
    table: Arc<RwLock<Arc<Table>>>,
    certs: Arc<RwLock<Arc<tls::Certs>>>,
) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(certs).unwrap()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((c, peer)) = l.accept().await {
            let acceptor = acceptor.clone();
            let front = Arc::new(Front {
                scheme: "https",
                table: table.clone(),
                pool: Arc::new(pool::Pool::default()),
                https_port: 0,
            });
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(c).await {
                    serve(s, peer, front).await;
                }
            });
        }
    });
    at
}

/// A TLS client trusting only `trusted` (DER), connected to `at` with SNI `sni`.
async fn tls_client(
    at: SocketAddr,
    sni: &str,
    trusted: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(at).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
}

#[tokio::test]
async fn https_chooses_the_certificate_by_sni_and_keeps_connections() {
    let port = echo_upstream().await;
    let fallback = tls::fake_certificate().unwrap();
    let (secret, der) = tls_secret("web", "s", &["web.example"]);
    let ing = tls_ingress(
        "i",
        "2026-01-01T00:00:00Z",
        "ferry",
        json!([{"hosts": ["web.example"], "secretName": "s"}]),
    );
    let seen = BTreeMap::from([("web/s".to_string(), tls::Seen::Found(Box::new(secret)))]);
    let (certs, problems) = tls::build(&[ing], &[], &seen, fallback.clone());
    assert!(problems.is_empty(), "{problems:?}");
    let certs = Arc::new(RwLock::new(Arc::new(certs)));
    let at = tls_front(loopback_table(&[port]), certs.clone()).await;

    // The Secret's certificate for its host; two requests on one connection.
    let mut s = tls_client(at, "web.example", &der).await.unwrap();
    for p in ["/first", "/second"] {
        s.write_all(format!("GET {p} HTTP/1.1\r\nHost: web.example\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        let body = loop {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&b[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
                    break body.to_string();
                }
            }
        };
        assert!(body.starts_with(&format!("GET {p} HTTP/1.1\r\n")), "{body}");
        assert!(body.contains("X-Forwarded-Proto: https\r\n"), "{body}");
    }
    // Another host: the fake certificate (trusted as ingress.local here),
    // and 404 from the routes, as ingress-nginx answers.
    assert!(
        tls_client(at, "other.example", &der).await.is_err(),
        "not the Secret's certificate"
    );
    let mut s = tls_client(at, "ingress.local", &der_of(&fallback))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 404 Not Found"), "{out}");
    // A Secret change is picked up by the next handshake.
    let (renewed, renewed_der) = tls_secret("web", "s", &["web.example"]);
    let ing = tls_ingress(
        "i",
        "2026-01-01T00:00:00Z",
        "ferry",
        json!([{"hosts": ["web.example"], "secretName": "s"}]),
    );
    let seen = BTreeMap::from([("web/s".to_string(), tls::Seen::Found(Box::new(renewed)))]);
    *certs.write().unwrap() = Arc::new(tls::build(&[ing], &[], &seen, fallback).0);
    assert!(tls_client(at, "web.example", &der).await.is_err());
    assert!(tls_client(at, "web.example", &renewed_der).await.is_ok());
}

/// One request on a new client connection that asks to close: the answer.
async fn once(at: SocketAddr, path: &str) -> String {
    exchange(
        at,
        &format!("GET {path} HTTP/1.1\r\nHost: web.example\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn endpoint_connections_are_kept_alive_and_reused() {
    let (port, accepted, open) = echo_upstream_counting().await;
    let ep: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pool = Arc::new(pool::Pool::default());
    let at = front_with(loopback_table(&[port]), pool.clone(), 8443).await;
    // Five requests on one client connection, then five client connections
    // of one request each: one endpoint connection carries them all.
    let mut s = TcpStream::connect(at).await.unwrap();
    for i in 0..5 {
        s.write_all(format!("GET /k{i} HTTP/1.1\r\nHost: web.example\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let a = answers(&mut s, 1).await;
        assert!(a[0].0.starts_with("HTTP/1.1 200"), "{a:?}");
        assert!(
            a[0].2.starts_with(&format!("GET /k{i} HTTP/1.1\r\n")),
            "{a:?}"
        );
    }
    drop(s);
    for i in 0..5 {
        let out = once(at, &format!("/c{i}")).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        // The client's `Connection: close` is not the endpoint's.
        assert!(
            !out.split_once("\r\n\r\n")
                .unwrap()
                .1
                .contains("Connection:"),
            "{out}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "ten requests, one endpoint connection"
    );
    assert_eq!(pool.idle(ep), 1, "kept idle for the next request");
    // The endpoint says `Connection: close`: not kept; the next request
    // opens a new connection.
    assert!(once(at, "/bye").await.starts_with("HTTP/1.1 200"));
    assert_eq!(pool.idle(ep), 0);
    assert!(once(at, "/after-bye").await.starts_with("HTTP/1.1 200"));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // The endpoint closes an idle kept-alive connection: seen at the next
    // take, which opens a new one.
    assert!(once(at, "/quiet").await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(once(at, "/after-quiet").await.starts_with("HTTP/1.1 200"));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // The endpoint closes it just as a request comes (unanswered): a
    // bodiless GET is sent again on a new connection, the client sees 200.
    let out = once(at, "/drop").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("GET /drop HTTP/1.1"), "{out}");
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    // A POST is not sent twice: 502 when its kept-alive connection closes
    // unanswered (no body here, but not idempotent).
    let out = exchange(
        at,
        "POST /drop HTTP/1.1\r\nHost: web.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    // HTTP/1.0: a connection of its own, closed after the answer.
    let out = exchange(at, "GET /old HTTP/1.0\r\nHost: web.example\r\n\r\n").await;
    assert!(
        out.contains("GET /old HTTP/1.0\r\n") && out.contains("\r\nConnection: close\r\n"),
        "{out}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    assert_eq!(pool.idle(ep), 0, "the POST's connection closed, not kept");

    // Limits: an idle timeout and requests per connection.
    let (port, accepted, open2) = echo_upstream_counting().await;
    let ep: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pool = Arc::new(pool::Pool::new(8, Duration::from_secs(1), 3));
    let at = front_with(loopback_table(&[port]), pool.clone(), 8443).await;
    for i in 0..4 {
        assert!(once(at, &format!("/r{i}"))
            .await
            .starts_with("HTTP/1.1 200"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "three requests a connection"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    pool.sweep();
    assert_eq!(pool.idle(ep), 0, "idle past the timeout: closed");
    // Closed on our side: the endpoint sees both connections gone.
    let gone = async {
        while open2.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the swept connections are closed");
    assert!(once(at, "/r4").await.starts_with("HTTP/1.1 200"));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    let _ = open;
}

/// A table like [`loopback_table`] whose Ingress has `spec.tls` for
/// `tls_host` and `annotations`, plus a host-less Ingress without TLS.
fn tls_table(port: u16, tls_host: &str, annotations: serde_json::Value) -> Table {
    let (k, s) = svc("web", "a", json!([{"name": "web", "port": 80}]));
    let slices = vec![slice("web", "a", "web", port, &[("127.0.0.1", true)])];
    let mut ing = ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry",
        "tls": [{"hosts": [tls_host], "secretName": "s"}],
        "rules": [
          {"host": "web.example", "http": {"paths": [path("/", "Prefix", "a", json!({"number": 80}))]}},
          {"host": "a.wild.example", "http": {"paths": [path("/", "Prefix", "a", json!({"number": 80}))]}},
        ]}),
    );
    ing.metadata.annotations = serde_json::from_value(annotations).unwrap();
    let plain = ingress(
        "web",
        "plain",
        "2026-01-02T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [
            {"host": "plain.example", "http": {"paths": [path("/", "Prefix", "a", json!({"number": 80}))]}},
        ]}),
    );
    Table::new(&[ing, plain], &[], &BTreeMap::from([(k, s)]), &slices)
}

#[test]
fn plain_http_to_tls_hosts_is_redirected_as_ingress_nginx_does() {
    let redirect = |t: &Table, host: &str, target: &str, port: u16| {
        let b = t.route(host, target).expect("routed");
        t.redirect(host, target, b, port)
    };
    let t = tls_table(8080, "web.example", json!(null));
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(
        redirect(&t, "WEB.example:8880", "/a/b?c=1", 8443).as_deref(),
        Some("https://web.example:8443/a/b?c=1")
    );
    // Port 443 is left out; no TLS listener (0): no redirect.
    assert_eq!(
        redirect(&t, "web.example", "/", 443).as_deref(),
        Some("https://web.example/")
    );
    assert_eq!(redirect(&t, "web.example", "/", 0), None);
    // A host without TLS, of the same Ingress or another: proxied.
    assert_eq!(redirect(&t, "a.wild.example", "/", 8443), None);
    assert_eq!(redirect(&t, "plain.example", "/", 8443), None);
    // A wildcard TLS host covers one label.
    let t = tls_table(8080, "*.wild.example", json!(null));
    assert!(t.has_tls("a.wild.example:8880") && !t.has_tls("b.a.wild.example"));
    assert_eq!(
        redirect(&t, "a.wild.example", "/x", 8443).as_deref(),
        Some("https://a.wild.example:8443/x")
    );
    assert_eq!(redirect(&t, "web.example", "/", 8443), None);
    // ssl-redirect "false" turns it off; force-ssl-redirect redirects hosts
    // without TLS too.
    let off = tls_table(8080, "web.example", json!({SSL_REDIRECT: "false"}));
    assert_eq!(redirect(&off, "web.example", "/", 8443), None);
    let forced = tls_table(
        8080,
        "web.example",
        json!({SSL_REDIRECT: "false", FORCE_SSL_REDIRECT: "true"}),
    );
    assert_eq!(
        redirect(&forced, "a.wild.example", "/", 8443).as_deref(),
        Some("https://a.wild.example:8443/")
    );
    // Only the Ingress whose route matched decides: plain.example's has none.
    assert_eq!(redirect(&forced, "plain.example", "/", 8443), None);
    // A value that is not a boolean: the default, and a problem naming it.
    let bad = tls_table(8080, "web.example", json!({SSL_REDIRECT: "nope"}));
    assert!(redirect(&bad, "web.example", "/", 8443).is_some());
    assert_eq!(bad.problems.len(), 1, "{:?}", bad.problems);
    assert_eq!(bad.problems[0].reason, "InvalidAnnotation");
    assert_eq!(bad.problems[0].ingress, "web/i");
    assert!(
        bad.problems[0]
            .message
            .contains("nginx.ingress.kubernetes.io/ssl-redirect: \"nope\" is not a boolean"),
        "{}",
        bad.problems[0].message
    );
}

#[tokio::test]
async fn the_plain_listener_answers_308_for_tls_hosts() {
    let (port, accepted, _) = echo_upstream_counting().await;
    let table = Arc::new(RwLock::new(Arc::new(tls_table(
        port,
        "web.example",
        json!(null),
    ))));
    let at = front_with(table.clone(), Arc::new(pool::Pool::default()), 8443).await;
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(b"POST /form?x=1 HTTP/1.1\r\nHost: web.example:8880\r\n\r\n")
        .await
        .unwrap();
    let a = answers(&mut s, 1).await;
    assert!(
        a[0].0.starts_with("HTTP/1.1 308 Permanent Redirect"),
        "{a:?}"
    );
    assert!(
        a[0].1
            .contains("\r\nLocation: https://web.example:8443/form?x=1\r\n"),
        "{a:?}"
    );
    // The client connection goes on; a host without TLS is proxied.
    s.write_all(b"GET / HTTP/1.1\r\nHost: plain.example\r\n\r\n")
        .await
        .unwrap();
    let a = answers(&mut s, 1).await;
    assert!(a[0].0.starts_with("HTTP/1.1 200"), "{a:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "only the proxied request reached it"
    );
    // The TLS listener proxies the same host (no redirect there).
    let tls_at = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        let front = Arc::new(Front {
            scheme: "https",
            table,
            pool: Arc::new(pool::Pool::default()),
            https_port: 0,
        });
        tokio::spawn(async move {
            while let Ok((c, peer)) = l.accept().await {
                tokio::spawn(serve(c, peer, front.clone()));
            }
        });
        at
    };
    let out = once(tls_at, "/secure").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}
