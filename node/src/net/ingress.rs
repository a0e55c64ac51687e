//! The ingress controller's data path: every node serves the Ingresses
//! ferry serves ([`ferry_api::ingress::served`]) on `network.ingress_port`
//! of its own address, as a plain HTTP/1.1 reverse proxy (no TLS).
//!
//! [`Table`] (pure) is the routing table built from the watched Ingresses,
//! IngressClasses, Services and EndpointSlices ([`super::proxy::Known`]):
//! - hosts: an exact host first, then a wildcard (`*.example.com` matches
//!   one more label), then rules without a host; the first of these groups
//!   with a matching path answers;
//! - paths as Kubernetes defines them: `Exact` the whole path, `Prefix` by
//!   `/`-separated elements (`/foo` matches `/foo` and `/foo/bar`, not
//!   `/foobar`; a trailing `/` is ignored), `ImplementationSpecific` as
//!   `Prefix`; the longest path first, `Exact` before `Prefix` at equal
//!   length; between Ingresses, the oldest first;
//! - else a served Ingress's `defaultBackend` (the oldest), else 404.
//!
//! A backend is a Service port (by number or name) resolved to its ready
//! endpoints (else serving-terminating ones, as the proxy does); none gives
//! 503. The server forwards each request to a random endpoint (another one
//! when the connect fails; 502 when all do) with `X-Forwarded-For`,
//! `X-Forwarded-Host` and `X-Forwarded-Proto`, one request per connection
//! (`Connection: close` both ways, the connection closed once the answer's
//! body — by `Content-Length`, chunked, or to the endpoint's close — is
//! through, even if the endpoint keeps its side open; `Upgrade` requests
//! pass through as is).

use super::proxy::Known;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, case-sensitive.
    Exact,
    /// By `/`-separated elements (`ImplementationSpecific` too).
    Prefix,
}

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/name` of the Ingress the route came from.
    pub ingress: String,
    /// `namespace/name:port` of the Service port, as messages name it.
    pub service: String,
    /// Its usable endpoints (empty: 503).
    pub endpoints: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
struct Route {
    path: String,
    kind: PathKind,
    backend: Backend,
}

/// The routing table of one node's ingress listener.
#[derive(Debug, Clone, Default)]
pub struct Table {
    exact: BTreeMap<String, Vec<Route>>,
    /// By the wildcard's suffix (`example.com` for `*.example.com`).
    wildcard: BTreeMap<String, Vec<Route>>,
    any: Vec<Route>,
    default: Option<Backend>,
}

/// Whether `path` (a request path without its query) matches.
pub fn path_matches(kind: PathKind, want: &str, path: &str) -> bool {
    match kind {
        PathKind::Exact => want == path,
        PathKind::Prefix => {
            let p = want.trim_end_matches('/');
            p.is_empty()
                || path == p
                || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
        }
    }
}

/// The Host header's host: lower case, without the port.
fn host_of(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        h.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(h, |(h, _)| h)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn resolve(
    ns: &str,
    ing: &str,
    b: &IngressBackend,
    services: &BTreeMap<String, Service>,
    slices: &[EndpointSlice],
) -> Option<Backend> {
    let s = b.service.as_ref()?;
    let (num, name) = s
        .port
        .as_ref()
        .map(|p| (p.number, p.name.clone()))
        .unwrap_or_default();
    let port_text = name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| num.map(|n| n.to_string()))
        .unwrap_or_default();
    let mut backend = Backend {
        ingress: format!("{ns}/{ing}"),
        service: format!("{ns}/{}:{port_text}", s.name),
        endpoints: Vec::new(),
    };
    let svc = services.get(&format!("{ns}/{}", s.name));
    let port = svc
        .and_then(|svc| svc.spec.as_ref())
        .and_then(|spec| spec.ports.as_ref())
        .and_then(|ports| {
            ports.iter().find(|p| {
                let tcp = p.protocol.as_deref().unwrap_or("TCP") == "TCP";
                let by_num = num.is_some_and(|n| n == p.port);
                let by_name = name
                    .as_deref()
                    .is_some_and(|n| !n.is_empty() && p.name.as_deref() == Some(n));
                tcp && (by_num || by_name)
            })
        });
    if let Some(port) = port {
        let eps = super::proxy::endpoints(ns, &s.name, port, slices);
        backend.endpoints = super::proxy::usable(&eps, None)
            .into_iter()
            .map(|(ip, p)| SocketAddr::new(IpAddr::V4(ip), p))
            .collect();
    }
    Some(backend)
}

impl Table {
    /// The table for what `known` holds.
    pub fn from_known(known: &Known) -> Table {
        let ingresses: Vec<Ingress> = known.ingresses.values().cloned().collect();
        let classes: Vec<IngressClass> = known.ingress_classes.values().cloned().collect();
        let slices: Vec<EndpointSlice> = known.slices.values().cloned().collect();
        Table::new(&ingresses, &classes, &known.services, &slices)
    }

    /// The table for the served ones of `ingresses`; `services` by
    /// `namespace/name`.
    pub fn new(
        ingresses: &[Ingress],
        classes: &[IngressClass],
        services: &BTreeMap<String, Service>,
        slices: &[EndpointSlice],
    ) -> Table {
        let mut served: Vec<&Ingress> = ingresses
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .filter(|i| ferry_api::ingress::served(i, classes))
            .collect();
        // The oldest first (ties by name): it wins conflicting rules.
        served.sort_by_key(|i| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                i.metadata.namespace.clone(),
                i.metadata.name.clone(),
            )
        });
        let mut t = Table::default();
        for ing in served {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let name = ing.metadata.name.as_deref().unwrap_or_default();
            let Some(spec) = &ing.spec else { continue };
            if t.default.is_none() {
                t.default = spec
                    .default_backend
                    .as_ref()
                    .and_then(|b| resolve(ns, name, b, services, slices));
            }
            for rule in spec.rules.iter().flatten() {
                let Some(http) = &rule.http else { continue };
                let host = rule
                    .host
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase);
                let group = match &host {
                    None => &mut t.any,
                    Some(h) => match h.strip_prefix("*.") {
                        Some(suffix) => t.wildcard.entry(suffix.to_string()).or_default(),
                        None => t.exact.entry(h.clone()).or_default(),
                    },
                };
                for p in &http.paths {
                    let Some(backend) = resolve(ns, name, &p.backend, services, slices) else {
                        continue;
                    };
                    let kind = match p.path_type.as_str() {
                        "Exact" => PathKind::Exact,
                        _ => PathKind::Prefix,
                    };
                    group.push(Route {
                        path: p.path.clone().unwrap_or_else(|| "/".into()),
                        kind,
                        backend,
                    });
                }
            }
        }
        // Longest first, Exact before Prefix; stable, so older Ingresses
        // keep precedence among equals.
        let order = |routes: &mut Vec<Route>| {
            routes.sort_by_key(|r| (std::cmp::Reverse(r.path.len()), r.kind != PathKind::Exact))
        };
        t.exact.values_mut().for_each(order);
        t.wildcard.values_mut().for_each(order);
        order(&mut t.any);
        t
    }

    /// The backend for a request to `host` (its Host header, a port
    /// allowed) and `path` (a query allowed); `None`: 404.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        let host = host_of(host);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let wildcard = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix));
        let groups = [self.exact.get(&host), wildcard, Some(&self.any)];
        groups
            .into_iter()
            .flatten()
            .find_map(|routes| {
                routes
                    .iter()
                    .find(|r| path_matches(r.kind, &r.path, path))
                    .map(|r| &r.backend)
            })
            .or(self.default.as_ref())
    }
}

/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connect to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads up to the end of an HTTP head: (head, bytes read past it).
async fn read_head(s: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_end(&buf) {
            let rest = buf.split_off(end);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(s: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).await?;
    s.shutdown().await
}

/// Hop-by-hop headers the proxy replaces.
fn hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, up to the last chunk and trailers.
    Chunked,
    /// Until the endpoint closes.
    Close,
}

/// Copies one response body framed as `framing` from `from` to `to`, as is.
async fn copy_body<R, W>(from: &mut R, to: &mut W, framing: Framing) -> std::io::Result<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    match framing {
        Framing::None => Ok(()),
        Framing::Length(n) => {
            let copied = tokio::io::copy(&mut from.take(n), to).await?;
            if copied < n {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(())
        }
        Framing::Close => tokio::io::copy(from, to).await.map(|_| ()),
        Framing::Chunked => loop {
            let mut line = String::new();
            if from.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            to.write_all(line.as_bytes()).await?;
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {hex:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if from.read_line(&mut t).await? == 0 {
                        return Ok(());
                    }
                    to.write_all(t.as_bytes()).await?;
                    if t == "\r\n" || t == "\n" {
                        return Ok(());
                    }
                }
            }
            // The data and its CRLF.
            let want = size + 2;
            if tokio::io::copy(&mut from.take(want), to).await? < want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        },
    }
}

/// Serves one client connection: one request, proxied.
async fn serve(mut client: TcpStream, peer: SocketAddr, table: Arc<RwLock<Arc<Table>>>) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => {
            let _ = respond(
                &mut client,
                "431 Request Header Fields Too Large",
                "request head over 64 KiB\n",
            )
            .await;
            return;
        }
        _ => return,
    };
    let (head, rest) = head;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
        let _ = respond(&mut client, "400 Bad Request", "malformed HTTP request\n").await;
        return;
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        let _ = respond(&mut client, "400 Bad Request", "malformed HTTP request\n").await;
        return;
    };
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| String::from_utf8_lossy(h.value).to_string())
    };
    // An absolute-form target names the host itself.
    let (host, path) = match target.split_once("://") {
        Some((_, after)) => {
            let (h, p) = after.split_at(after.find('/').unwrap_or(after.len()));
            (
                h.to_string(),
                if p.is_empty() { "/" } else { p }.to_string(),
            )
        }
        None => (header("host").unwrap_or_default(), target.to_string()),
    };
    let backend = {
        let t = table.read().unwrap_or_else(|e| e.into_inner()).clone();
        t.route(&host, &path).cloned()
    };
    let Some(backend) = backend else {
        let body = format!(
            "404 page not found: no Ingress rule of class {} matches host {:?} path {:?}\n",
            ferry_api::ingress::CLASS,
            host_of(&host),
            path
        );
        let _ = respond(&mut client, "404 Not Found", &body).await;
        return;
    };
    if backend.endpoints.is_empty() {
        let body = format!(
            "503 Service Unavailable: Service {} of Ingress {} has no ready endpoints\n",
            backend.service, backend.ingress
        );
        let _ = respond(&mut client, "503 Service Unavailable", &body).await;
        return;
    }
    let mut order = backend.endpoints.clone();
    {
        use rand::seq::SliceRandom;
        order.shuffle(&mut rand::thread_rng());
    }
    let mut upstream = None;
    for ep in order {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
            Ok(Ok(s)) => {
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => tracing::debug!(endpoint = %ep, "ingress: connect failed: {e}"),
            Err(_) => tracing::debug!(endpoint = %ep, "ingress: connect timed out"),
        }
    }
    let Some(mut upstream) = upstream else {
        let body = format!(
            "502 Bad Gateway: no endpoint of Service {} accepted a connection\n",
            backend.service
        );
        let _ = respond(&mut client, "502 Bad Gateway", &body).await;
        return;
    };
    let upgrade = header("upgrade").is_some();
    let mut out = format!("{method} {target} HTTP/1.{version}\r\n");
    let mut forwarded_for = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = Some(String::from_utf8_lossy(h.value).to_string());
            continue;
        }
        if (!upgrade && hop_by_hop(h.name))
            || h.name.eq_ignore_ascii_case("x-forwarded-host")
            || h.name.eq_ignore_ascii_case("x-forwarded-proto")
        {
            continue;
        }
        out.push_str(h.name);
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(h.value));
        out.push_str("\r\n");
    }
    let xff = match forwarded_for {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    out.push_str(&format!(
        "X-Forwarded-For: {xff}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Proto: http\r\n"
    ));
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if upstream.write_all(out.as_bytes()).await.is_err() || upstream.write_all(&rest).await.is_err()
    {
        let _ = respond(&mut client, "502 Bad Gateway", "the endpoint closed\n").await;
        return;
    }
    if upgrade {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    // The request body, as it comes.
    let body = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
    });
    // The response: its head with `Connection: close`, then the rest.
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let answer = async {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        // Interim (1xx) answers go on as they are; the final one ends the
        // exchange once its body, however framed, is through.
        loop {
            let end = loop {
                if let Some(end) = find_end(&buf) {
                    break Some(end);
                }
                if buf.len() > MAX_HEAD {
                    break None;
                }
                let n = ur.read(&mut chunk).await?;
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let Some(end) = end else {
                // Not an HTTP head: passed on as it came.
                cw.write_all(&buf).await?;
                tokio::io::copy(&mut ur, &mut cw).await?;
                return cw.shutdown().await;
            };
            let rest = buf.split_off(end);
            let mut hs = [httparse::EMPTY_HEADER; 128];
            let mut resp = httparse::Response::new(&mut hs);
            let code = match resp.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => resp.code.unwrap_or(0),
                _ => 0,
            };
            if (100..200).contains(&code) && code != 101 {
                cw.write_all(&buf).await?;
                buf = rest;
                continue;
            }
            let value = |n: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(n))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
            };
            let framing = if head_only || code == 204 || code == 304 {
                Framing::None
            } else if value("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
                Framing::Chunked
            } else if let Some(n) = value("content-length").and_then(|v| v.parse().ok()) {
                Framing::Length(n)
            } else {
                Framing::Close
            };
            let text = String::from_utf8_lossy(&buf);
            let mut lines = text.split("\r\n");
            let mut head = lines.next().unwrap_or_default().to_string();
            head.push_str("\r\n");
            for l in lines.filter(|l| !l.is_empty()) {
                let name = l.split(':').next().unwrap_or_default().trim();
                if !hop_by_hop(name) {
                    head.push_str(l);
                    head.push_str("\r\n");
                }
            }
            head.push_str("Connection: close\r\n\r\n");
            cw.write_all(head.as_bytes()).await?;
            let mut from = tokio::io::BufReader::new(rest.as_slice().chain(&mut ur));
            copy_body(&mut from, &mut cw, framing).await?;
            return cw.shutdown().await;
        }
    };
    let r: std::io::Result<()> = answer.await;
    if let Err(e) = r {
        tracing::debug!(%peer, "ingress: proxying ended: {e}");
    }
    body.abort();
}

/// The ingress listener: once the cluster network is read (the
/// `kube-system/ferry-network` ConfigMap, in either pod network mode) and
/// its `ingress_port` is not 0, serves the Ingresses of [`Table`] on
/// `address:ingress_port` (retrying the bind every 2 s while the port is
/// taken) until `stop` turns true.
pub async fn run(
    address: IpAddr,
    api: crate::objects::Objects,
    mut known: tokio::sync::watch::Receiver<Known>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use ferry_api::network::{Network, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
    let mut warned = false;
    let network = loop {
        let read = api
            .get("configmaps", Some(CONFIGMAP_NAMESPACE), CONFIGMAP_NAME)
            .await;
        let r = match read {
            Ok(Some(cm)) => {
                let data = serde_json::from_value(cm["data"].clone()).unwrap_or_default();
                Network::from_data(&data)
            }
            Ok(None) => Err(format!(
                "waiting for ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
            )),
            Err(e) => Err(format!(
                "reading ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {e}"
            )),
        };
        match r {
            Ok(n) => break n,
            Err(e) if !warned => {
                tracing::debug!("ingress: {e}");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    };
    let port = network.ingress_port;
    if port == 0 {
        tracing::info!("ingress: network.ingress_port is 0; no ingress listener");
        return;
    }
    let table = Arc::new(RwLock::new(Arc::new(Table::from_known(
        &known.borrow_and_update(),
    ))));
    // The table follows the watches.
    let t = table.clone();
    let mut stop2 = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = known.changed() => if r.is_err() { return },
                _ = stop2.wait_for(|s| *s) => return,
            }
            tokio::time::sleep(super::proxy::DEBOUNCE).await;
            let new = Arc::new(Table::from_known(&known.borrow_and_update()));
            *t.write().unwrap_or_else(|e| e.into_inner()) = new;
        }
    });
    let at = SocketAddr::new(address, port);
    let mut warned = false;
    let listener = loop {
        match TcpListener::bind(at).await {
            Ok(l) => break l,
            Err(e) => {
                if !warned {
                    tracing::warn!("ingress: cannot listen on {at} (retrying every 2 s): {e}");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    };
    tracing::info!(
        "ingress: serving Ingresses of class {} on http://{at}",
        ferry_api::ingress::CLASS
    );
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((conn, peer)) => {
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve(conn, peer, table.clone()));
            }
            Err(e) => {
                tracing::warn!("ingress: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
