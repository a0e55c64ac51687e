//! The ingress controller's data path: every node serves the Ingresses
//! ferry serves ([`ferry_api::ingress::served`]) on `network.ingress_port`
//! (HTTP) and `network.ingress_tls_port` (HTTPS, [`tls`]) of its own
//! address, as an HTTP/1.1 reverse proxy.
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
//! 503. Client connections are kept alive (HTTP/1.1 unless `Connection:
//! close`, HTTP/1.0 with `Connection: keep-alive`; an idle minute, 1000
//! requests): requests are read one after another, pipelined ones from the
//! buffer, each body by its framing (`Content-Length` or chunked; both, or
//! another coding, refused as request smuggling).
//!
//! Plain HTTP to a host a served Ingress's `spec.tls` covers is answered
//! `308 Permanent Redirect` to `https://host:<ingress_tls_port>/path?query`,
//! as ingress-nginx does; the annotations honoured, on the Ingress whose
//! route matched, are ingress-nginx's `nginx.ingress.kubernetes.io/ssl-redirect`
//! (`"false"`: no redirect) and `.../force-ssl-redirect` (`"true"`: redirect
//! hosts without TLS too); a value that is not a boolean is reported as an
//! `InvalidAnnotation` Event and the default used.
//!
//! Each request goes to a random endpoint (another when the connect fails;
//! 502 when all do) with `X-Forwarded-For`, `X-Forwarded-Host` and
//! `X-Forwarded-Proto`. HTTP/1.1 requests use kept-alive endpoint
//! connections ([`pool`]: idle ones by endpoint, as nginx's upstream
//! keepalive), an idempotent bodiless request sent again on a new
//! connection when a kept-alive one turns out closed; HTTP/1.0 and
//! `Upgrade` requests get a connection of their own (`Connection: close`
//! for 1.0). The answer — by `Content-Length`, chunked, or to the
//! endpoint's close, which closes the client's connection too — is passed
//! on without its hop-by-hop headers; the endpoint connection goes back to
//! the pool when the answer was HTTP/1.1, framed, without `Connection:
//! close`, and the request body was sent whole. `Upgrade` requests pass
//! through as is and turn the connection into a tunnel.

use super::proxy::Known;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub mod pool;
pub mod tls;

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
    /// Plain HTTP to a host with TLS is redirected to HTTPS
    /// ([`SSL_REDIRECT`], default true).
    pub ssl_redirect: bool,
    /// Plain HTTP is redirected to HTTPS even without TLS for the host
    /// ([`FORCE_SSL_REDIRECT`], default false).
    pub force_ssl_redirect: bool,
}

/// ingress-nginx's annotation turning the HTTP→HTTPS redirect of hosts
/// with TLS off (`"false"`).
pub const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// ingress-nginx's annotation redirecting to HTTPS even for hosts without
/// TLS (`"true"`).
pub const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";

/// A boolean annotation as ingress-nginx reads it (Go's `ParseBool`):
/// absent gives `default`; a value that is not a boolean, an error.
fn bool_annotation(ing: &Ingress, name: &str, default: bool) -> Result<bool, String> {
    let Some(v) = ing.metadata.annotations.as_ref().and_then(|a| a.get(name)) else {
        return Ok(default);
    };
    match v.as_str() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "annotation {name}: {v:?} is not a boolean (true or false); using {default}"
        )),
    }
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
    /// Hosts a served Ingress's `spec.tls` covers (its rule hosts when the
    /// entry names none), whatever its Secret: exact, and wildcard suffixes.
    tls_exact: BTreeSet<String>,
    tls_wildcard: BTreeSet<String>,
    /// What is wrong with the served Ingresses' annotations (reported as
    /// Events, reason `InvalidAnnotation`).
    pub problems: Vec<tls::Problem>,
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
        ssl_redirect: true,
        force_ssl_redirect: false,
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
        // The oldest first (ties by name): it wins conflicting rules.
        let served = tls::served(ingresses, classes);
        let mut t = Table::default();
        for ing in served {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let name = ing.metadata.name.as_deref().unwrap_or_default();
            let Some(spec) = &ing.spec else { continue };
            let mut flag = |annotation: &str, default: bool| {
                bool_annotation(ing, annotation, default).unwrap_or_else(|message| {
                    t.problems.push(tls::Problem {
                        ingress: format!("{ns}/{name}"),
                        uid: ing.metadata.uid.clone(),
                        reason: "InvalidAnnotation",
                        message,
                    });
                    default
                })
            };
            let (ssl_redirect, force_ssl_redirect) =
                (flag(SSL_REDIRECT, true), flag(FORCE_SSL_REDIRECT, false));
            let resolve = |b: &IngressBackend| {
                resolve(ns, name, b, services, slices).map(|b| Backend {
                    ssl_redirect,
                    force_ssl_redirect,
                    ..b
                })
            };
            if t.default.is_none() {
                t.default = spec.default_backend.as_ref().and_then(resolve);
            }
            let rule_hosts: Vec<String> = spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.clone())
                .collect();
            for entry in spec.tls.iter().flatten() {
                let hosts = match entry.hosts.as_deref() {
                    Some(h) if !h.is_empty() => h,
                    _ => &rule_hosts,
                };
                for h in hosts {
                    let h = h.trim_end_matches('.').to_ascii_lowercase();
                    match h.strip_prefix("*.") {
                        Some(suffix) => t.tls_wildcard.insert(suffix.to_string()),
                        None if !h.is_empty() => t.tls_exact.insert(h),
                        None => false,
                    };
                }
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
                    let Some(backend) = resolve(&p.backend) else {
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

    /// Whether a served Ingress's `spec.tls` covers `host` (a Host header,
    /// a port allowed): exactly, or by a wildcard of one label.
    pub fn has_tls(&self, host: &str) -> bool {
        let host = host_of(host);
        self.tls_exact.contains(&host)
            || host
                .split_once('.')
                .is_some_and(|(_, suffix)| self.tls_wildcard.contains(suffix))
    }

    /// Where a plain-HTTP request for `host` and `target` (its path and
    /// query) routed to `backend` is redirected, as ingress-nginx does:
    /// hosts with TLS unless the route's Ingress says `ssl-redirect:
    /// "false"`, every host with `force-ssl-redirect: "true"`; to
    /// `https://host[:https_port]target` (the port left out when 443).
    /// `None`: proxied.
    pub fn redirect(
        &self,
        host: &str,
        target: &str,
        backend: &Backend,
        https_port: u16,
    ) -> Option<String> {
        let wanted = backend.force_ssl_redirect || (backend.ssl_redirect && self.has_tls(host));
        if !wanted || https_port == 0 {
            return None;
        }
        let h = host_of(host);
        let h = if h.contains(':') { format!("[{h}]") } else { h };
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        let target = if target.starts_with('/') { target } else { "/" };
        Some(format!("https://{h}{port}{target}"))
    }
}

/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a kept-alive connection waits for its next request (nginx: 75 s).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Requests one client connection may make (nginx's `keepalive_requests`);
/// the last one's answer says `Connection: close`.
const MAX_REQUESTS: usize = 1000;
/// How long a connect to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Why a head could not be read.
#[derive(Debug)]
enum HeadError {
    /// Over [`MAX_HEAD`].
    TooLong,
    /// The connection failed or closed inside the head.
    Io(std::io::Error),
}

/// Reads one HTTP head (up to its blank line) from `r`, leaving what
/// follows in `r`'s buffer (a body, or the next pipelined request);
/// `Ok(None)`: the peer closed before sending a byte.
async fn read_head<R>(r: &mut R) -> Result<Option<Vec<u8>>, HeadError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let avail = r.fill_buf().await.map_err(HeadError::Io)?;
        if avail.is_empty() {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(HeadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let n = avail.len();
        let old = head.len();
        head.extend_from_slice(avail);
        let from = old.saturating_sub(3);
        if let Some(end) = find_end(&head[from..]).map(|e| e + from) {
            head.truncate(end);
            r.consume(end - old);
            return Ok(Some(head));
        }
        r.consume(n);
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLong);
        }
    }
}

/// Writes a short plain-text answer of the proxy's own; `close`: says so.
async fn respond<W>(w: &mut W, status: &str, body: &str, close: bool) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    w.write_all(msg.as_bytes()).await?;
    w.flush().await
}

/// Hop-by-hop headers the proxy replaces.
fn hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (a request without length, HEAD's answer, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, up to the last chunk and trailers.
    Chunked,
    /// Until the endpoint closes (answers only).
    Close,
}

/// A request's body framing (RFC 9112 §6.3): chunked when its last transfer
/// coding is, else `Content-Length` (repeats must agree), else none. Both
/// together, other codings or a bad length are refused (request smuggling).
fn request_framing(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    let values = |n: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .flat_map(|h| {
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|v| v.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err("both Transfer-Encoding and Content-Length".into());
        }
        if te.last().map(String::as_str) != Some("chunked") {
            return Err(format!(
                "Transfer-Encoding {:?}: only chunked is accepted last",
                te.join(", ")
            ));
        }
        return Ok(Framing::Chunked);
    }
    match cl.first() {
        None => Ok(Framing::None),
        Some(first) => {
            if cl.iter().any(|v| v != first) {
                return Err(format!("conflicting Content-Length values {cl:?}"));
            }
            match first.parse::<u64>() {
                Ok(0) => Ok(Framing::None),
                Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) => Ok(Framing::Length(n)),
                _ => Err(format!("Content-Length {first:?} is not a length")),
            }
        }
    }
}

/// Copies one body framed as `framing` from `from` to `to`, as is.
async fn copy_body<R, W>(from: &mut R, to: &mut W, framing: Framing) -> std::io::Result<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    match framing {
        Framing::None => Ok(()),
        Framing::Length(n) => {
            let copied = tokio::io::copy_buf(&mut from.take(n), to).await?;
            if copied < n {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(())
        }
        Framing::Close => tokio::io::copy_buf(from, to).await.map(|_| ()),
        Framing::Chunked => loop {
            let mut line = Vec::new();
            if (&mut *from).take(4096).read_until(b'\n', &mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if !line.ends_with(b"\n") {
                return Err(std::io::Error::other("chunk size line over 4 KiB"));
            }
            to.write_all(&line).await?;
            let text = String::from_utf8_lossy(&line);
            let hex = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {hex:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = Vec::new();
                    if (&mut *from)
                        .take(MAX_HEAD as u64)
                        .read_until(b'\n', &mut t)
                        .await?
                        == 0
                    {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    to.write_all(&t).await?;
                    if t == b"\r\n" || t == b"\n" {
                        return Ok(());
                    }
                }
            }
            // The data and its CRLF.
            let want = size + 2;
            if tokio::io::copy_buf(&mut (&mut *from).take(want), to).await? < want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        },
    }
}

/// The shared routing table the listeners read.
pub type Shared = Arc<RwLock<Arc<Table>>>;

/// What a listener serves with: its scheme (`X-Forwarded-Proto`), the
/// routing table, the endpoint connections kept alive (shared by the
/// node's listeners), and for the plain listener the TLS listener's port
/// redirects go to (0: none).
pub struct Front {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The routing table.
    pub table: Shared,
    /// Idle endpoint connections.
    pub pool: Arc<pool::Pool>,
    /// Where HTTP→HTTPS redirects go (0: no redirects, as on the TLS listener).
    pub https_port: u16,
}

/// What a connection does after one exchange.
enum Next {
    /// Reads the next request.
    KeepAlive,
    /// Closes.
    Close,
    /// Becomes a tunnel to this endpoint (the upgrade's answer follows from it).
    Upgrade(TcpStream),
}

/// Serves one client connection (plain, or TLS once its handshake is done)
/// as HTTP/1.1 with keep-alive: requests are read one after another
/// (pipelined ones wait in the buffer), each proxied to an endpoint over a
/// kept-alive connection of `front`'s pool (or a new one), its body passed
/// on by its framing.
pub async fn serve<S>(stream: S, peer: SocketAddr, front: Arc<Front>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (r, mut w) = tokio::io::split(stream);
    let mut r = tokio::io::BufReader::with_capacity(16 * 1024, r);
    for served in 0..MAX_REQUESTS {
        let wait = if served == 0 {
            HEAD_TIMEOUT
        } else {
            KEEPALIVE_IDLE
        };
        let head = match tokio::time::timeout(wait, read_head(&mut r)).await {
            Ok(Ok(Some(h))) => h,
            Ok(Err(HeadError::TooLong)) => {
                let _ = respond(
                    &mut w,
                    "431 Request Header Fields Too Large",
                    "request head over 64 KiB\n",
                    true,
                )
                .await;
                break;
            }
            // Closed, failed or idle.
            _ => break,
        };
        let last = served + 1 == MAX_REQUESTS;
        match exchange(&mut r, &mut w, &head, peer, &front, last).await {
            Next::KeepAlive => continue,
            Next::Close => break,
            Next::Upgrade(mut upstream) => {
                // Bytes the client sent after the head belong to the new protocol.
                let early = r.buffer().to_vec();
                if !early.is_empty() && upstream.write_all(&early).await.is_err() {
                    return;
                }
                let mut client = r.into_inner().unsplit(w);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
        }
    }
    let _ = w.shutdown().await;
}

/// A new connection to one of `order`, the first that accepts.
async fn connect(order: &[SocketAddr]) -> Option<(TcpStream, SocketAddr)> {
    for &ep in order {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some((s, ep));
            }
            Ok(Err(e)) => tracing::debug!(endpoint = %ep, "ingress: connect failed: {e}"),
            Err(_) => tracing::debug!(endpoint = %ep, "ingress: connect timed out"),
        }
    }
    None
}

/// Methods a request may be sent again for on a new connection when a
/// kept-alive one closed without an answer (RFC 9110 §9.2.2).
fn idempotent(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// One request read from `r` (its head given) and its answer written to `w`.
async fn exchange<R, W>(
    r: &mut tokio::io::BufReader<R>,
    w: &mut W,
    head: &[u8],
    peer: SocketAddr,
    front: &Front,
    last: bool,
) -> Next
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let scheme = front.scheme;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = matches!(req.parse(head), Ok(httparse::Status::Complete(_)));
    let (true, Some(method), Some(target), Some(version)) =
        (parsed, req.method, req.path, req.version)
    else {
        let _ = respond(w, "400 Bad Request", "malformed HTTP request\n", true).await;
        return Next::Close;
    };
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| String::from_utf8_lossy(h.value).to_string())
    };
    let tokens: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    // HTTP/1.1 keeps the connection unless told to close; 1.0 only when asked.
    let keep = !last
        && if version >= 1 {
            !tokens.iter().any(|t| t == "close")
        } else {
            tokens.iter().any(|t| t == "keep-alive")
        };
    let framing = match request_framing(req.headers) {
        Ok(f) => f,
        Err(e) => {
            let _ = respond(w, "400 Bad Request", &format!("{e}\n"), true).await;
            return Next::Close;
        }
    };
    // The proxy's own answer: the connection stays only when no request
    // body is left unread.
    let own = |status: &'static str, body: String| {
        let close = !keep || framing != Framing::None;
        (status, body, close)
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
    let table = front
        .table
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let backend = table.route(&host, &path).cloned();
    // Plain HTTP to a host with TLS: 308 to HTTPS, as ingress-nginx.
    if let Some(location) = backend
        .as_ref()
        .and_then(|b| table.redirect(&host, &path, b, front.https_port))
    {
        let (_, _, close) = own("", String::new());
        let body = format!("308 Permanent Redirect: {location}\n");
        let msg = format!(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: {location}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let sent = w.write_all(msg.as_bytes()).await.is_ok() && w.flush().await.is_ok();
        return if sent && !close {
            Next::KeepAlive
        } else {
            Next::Close
        };
    }
    let refusal = match &backend {
        None => Some(own(
            "404 Not Found",
            format!(
                "404 page not found: no Ingress rule of class {} matches host {:?} path {:?}\n",
                ferry_api::ingress::CLASS,
                host_of(&host),
                path
            ),
        )),
        Some(b) if b.endpoints.is_empty() => Some(own(
            "503 Service Unavailable",
            format!(
                "503 Service Unavailable: Service {} of Ingress {} has no ready endpoints\n",
                b.service, b.ingress
            ),
        )),
        Some(_) => None,
    };
    if let Some((status, body, close)) = refusal {
        return match respond(w, status, &body, close).await {
            Ok(()) if !close => Next::KeepAlive,
            _ => Next::Close,
        };
    }
    let backend = backend.expect("refused above");
    let mut order = backend.endpoints.clone();
    {
        use rand::seq::SliceRandom;
        order.shuffle(&mut rand::thread_rng());
    }
    let upgrade = header("upgrade").is_some();
    // HTTP/1.1 requests go over kept-alive endpoint connections; upgrades
    // and HTTP/1.0 (whose answers must not be chunked) over one of their own.
    let pooled = !upgrade && version >= 1;
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
        "X-Forwarded-For: {xff}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Proto: {scheme}\r\n"
    ));
    if !upgrade && !pooled {
        // One request on this endpoint connection: its answer's end is clear.
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    // A kept-alive connection to the first endpoint that has one, else a new one.
    let reused = if pooled {
        order
            .iter()
            .take(1)
            .find_map(|&ep| front.pool.take(ep).map(|(s, used)| (s, ep, used)))
    } else {
        None
    };
    let (mut upstream, mut ep, mut used, mut is_reused) = match reused {
        Some((s, ep, used)) => (s, ep, used, true),
        None => match connect(&order).await {
            Some((s, ep)) => (s, ep, 0, false),
            None => {
                let (status, body, close) = own(
                    "502 Bad Gateway",
                    format!(
                        "502 Bad Gateway: no endpoint of Service {} accepted a connection\n",
                        backend.service
                    ),
                );
                return match respond(w, status, &body, close).await {
                    Ok(()) if !close => Next::KeepAlive,
                    _ => Next::Close,
                };
            }
        },
    };
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let http10 = version == 0;
    // A kept-alive connection the endpoint closed meanwhile: the request
    // again on a new one, when nothing of it is lost (no body, idempotent).
    let retry = framing == Framing::None && idempotent(method);
    loop {
        if upstream.write_all(out.as_bytes()).await.is_err() {
            if is_reused {
                if let Some((s, e)) = connect(&order).await {
                    (upstream, ep, used, is_reused) = (s, e, 0, false);
                    continue;
                }
            }
            let _ = respond(w, "502 Bad Gateway", "the endpoint closed\n", true).await;
            return Next::Close;
        }
        if upgrade {
            return Next::Upgrade(upstream);
        }
        let (ur, mut uw) = upstream.into_split();
        let mut ur = tokio::io::BufReader::new(ur);
        let (answered, sent) = {
            // The request body, as its framing says, while the answer comes.
            let send = async {
                copy_body(r, &mut uw, framing).await?;
                uw.flush().await
            };
            let answer = answer(&mut ur, w, head_only, keep, http10);
            tokio::pin!(send);
            tokio::pin!(answer);
            let mut sent = None;
            let answered = loop {
                tokio::select! {
                    biased;
                    s = &mut send, if sent.is_none() => sent = Some(s.is_ok()),
                    a = &mut answer => break a,
                }
            };
            // An answer before the whole body: the rest of the body is not
            // read, so the connection cannot go on (one more poll first: the
            // body may be done).
            let sent = match sent {
                Some(ok) => ok,
                None => matches!(
                    tokio::time::timeout(Duration::ZERO, &mut send).await,
                    Ok(Ok(()))
                ),
            };
            (answered, sent)
        };
        return match answered {
            Ok(Answered::Nothing) if is_reused && retry => {
                tracing::debug!(endpoint = %ep, "ingress: a kept-alive endpoint connection closed; sending again");
                match connect(&order).await {
                    Some((s, e)) => {
                        (upstream, ep, used, is_reused) = (s, e, 0, false);
                        continue;
                    }
                    None => {
                        let _ = respond(w, "502 Bad Gateway", "the endpoint closed\n", true).await;
                        Next::Close
                    }
                }
            }
            Ok(Answered::Nothing) => {
                let _ = respond(
                    w,
                    "502 Bad Gateway",
                    "the endpoint closed without an answer\n",
                    true,
                )
                .await;
                Next::Close
            }
            Ok(Answered::Done { go_on, reusable }) => {
                // The endpoint connection back to the pool when its answer
                // ended cleanly and nothing more came.
                if pooled && reusable && sent && ur.buffer().is_empty() {
                    if let Ok(s) = ur.into_inner().reunite(uw) {
                        front.pool.put(ep, s, used + 1);
                    }
                }
                if go_on && sent {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            Err(e) => {
                tracing::debug!(%peer, "ingress: proxying ended: {e}");
                Next::Close
            }
        };
    }
}

/// How an endpoint answered.
enum Answered {
    /// It closed (or failed) before a byte of an answer; nothing was written.
    Nothing,
    /// An answer was passed on. `go_on`: the client connection may go on;
    /// `reusable`: the endpoint connection may carry another request.
    Done { go_on: bool, reusable: bool },
}

/// Passes the endpoint's answer on: interim (1xx) answers as they are, then
/// the final one with its hop-by-hop headers replaced and its body, however
/// framed. The client connection may go on with `keep` and an answer whose
/// end is known without the endpoint closing; the endpoint connection, with
/// an HTTP/1.1 answer so framed that does not say `Connection: close`.
async fn answer<R, W>(
    ur: &mut R,
    cw: &mut W,
    head_only: bool,
    keep: bool,
    http10: bool,
) -> std::io::Result<Answered>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut interim = false;
    loop {
        let head = match read_head(ur).await {
            Ok(Some(h)) => h,
            Ok(None) | Err(HeadError::Io(_)) if !interim => return Ok(Answered::Nothing),
            Ok(None) => {
                respond(
                    cw,
                    "502 Bad Gateway",
                    "the endpoint closed without an answer\n",
                    true,
                )
                .await?;
                return Ok(Answered::Done {
                    go_on: false,
                    reusable: false,
                });
            }
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::TooLong) => {
                respond(
                    cw,
                    "502 Bad Gateway",
                    "the endpoint's answer head is over 64 KiB\n",
                    true,
                )
                .await?;
                return Ok(Answered::Done {
                    go_on: false,
                    reusable: false,
                });
            }
        };
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut hs);
        let (code, http11) = match resp.parse(&head) {
            Ok(httparse::Status::Complete(_)) => (resp.code.unwrap_or(0), resp.version == Some(1)),
            _ => (0, false),
        };
        if code == 0 {
            // Not an HTTP answer: passed on as it came, until the endpoint closes.
            cw.write_all(&head).await?;
            tokio::io::copy_buf(ur, cw).await?;
            cw.flush().await?;
            return Ok(Answered::Done {
                go_on: false,
                reusable: false,
            });
        }
        if (100..200).contains(&code) && code != 101 {
            cw.write_all(&head).await?;
            cw.flush().await?;
            interim = true;
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
        let go_on = keep && framing != Framing::Close;
        let closes = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .any(|h| {
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            });
        let reusable = http11 && !closes && code != 101 && framing != Framing::Close;
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        // The proxy's own version (RFC 9110 §7.6.3): an HTTP/1.0 endpoint's
        // answer does not end a kept-alive client connection.
        let status = lines.next().unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 {}\r\n",
            status.split_once(' ').map_or("", |(_, rest)| rest)
        );
        for l in lines.filter(|l| !l.is_empty()) {
            let name = l.split(':').next().unwrap_or_default().trim();
            if !hop_by_hop(name) {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        if !go_on {
            out.push_str("Connection: close\r\n");
        } else if http10 {
            out.push_str("Connection: keep-alive\r\n");
        }
        out.push_str("\r\n");
        cw.write_all(out.as_bytes()).await?;
        copy_body(ur, cw, framing).await?;
        cw.flush().await?;
        return Ok(Answered::Done { go_on, reusable });
    }
}

/// Binds `at`, retrying every 2 s while it is taken; `None` once `stop`.
async fn bind(
    at: SocketAddr,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<TcpListener> {
    let mut warned = false;
    loop {
        match TcpListener::bind(at).await {
            Ok(l) => return Some(l),
            Err(e) => {
                if !warned {
                    tracing::warn!("ingress: cannot listen on {at} (retrying every 2 s): {e}");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return None,
                }
            }
        }
    }
}

/// Accepts on `at` until `stop`: each connection served by [`serve`],
/// after a TLS handshake when `tls` is given.
async fn listen(
    at: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    front: Arc<Front>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(listener) = bind(at, &mut stop).await else {
        return;
    };
    let scheme = front.scheme;
    tracing::info!(
        "ingress: serving Ingresses of class {} on {scheme}://{at}",
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
                let front = front.clone();
                match &tls {
                    None => {
                        tokio::spawn(serve(conn, peer, front));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(conn)).await {
                                Ok(Ok(s)) => serve(s, peer, front).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "ingress: TLS handshake failed: {e}")
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "ingress: TLS handshake timed out")
                                }
                            }
                        });
                    }
                }
            }
            Err(e) => {
                tracing::warn!("ingress: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The ingress listeners: once the cluster network is read (the
/// `kube-system/ferry-network` ConfigMap, in either pod network mode),
/// serves the Ingresses of [`Table`] on `address:ingress_port` (plain) and
/// `address:ingress_tls_port` (TLS, certificates by SNI from the Ingresses'
/// `spec.tls` Secrets, each followed by a watch; a missing or unusable one
/// is logged and reported by an Event on the Ingress, once per problem and
/// node) — either off when its port is 0 — retrying a taken port every
/// 2 s, until `stop` turns true.
pub async fn run(
    address: IpAddr,
    node: String,
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
    let (port, tls_port) = (network.ingress_port, network.ingress_tls_port);
    if port == 0 && tls_port == 0 {
        tracing::info!(
            "ingress: network.ingress_port and ingress_tls_port are 0; no ingress listener"
        );
        return;
    }
    let table: Shared = Arc::new(RwLock::new(Arc::new(Table::from_known(
        &known.borrow_and_update(),
    ))));
    let tls_setup = if tls_port == 0 {
        None
    } else {
        match tls::fake_certificate() {
            Ok(fallback) => {
                let certs = Arc::new(RwLock::new(Arc::new(tls::Certs::new(fallback.clone()))));
                match tls::server_config(certs.clone()) {
                    Ok(cfg) => Some((fallback, certs, cfg)),
                    Err(e) => {
                        tracing::warn!("ingress: no TLS listener: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    "ingress: no TLS listener: cannot make the default certificate: {e}"
                );
                None
            }
        }
    };
    // The table (and certificates) follow the watches and the Secrets.
    let (secrets_tx, mut secrets_rx) =
        tokio::sync::watch::channel(BTreeMap::<String, tls::Seen>::new());
    let secrets_tx = Arc::new(secrets_tx);
    let t = table.clone();
    let mut stop2 = stop.clone();
    let tls_state = tls_setup
        .as_ref()
        .map(|(fallback, certs, _)| (fallback.clone(), certs.clone()));
    tokio::spawn(async move {
        let mut followers: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
        let mut reported: BTreeSet<tls::Problem> = BTreeSet::new();
        let mut last_input = None;
        let mut tls_problems = Vec::new();
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::select! {
                    r = known.changed() => if r.is_err() { break },
                    r = secrets_rx.changed() => if r.is_err() { break },
                    _ = stop2.wait_for(|s| *s) => break,
                }
                tokio::time::sleep(super::proxy::DEBOUNCE).await;
            }
            let (new, ingresses, classes) = {
                let k = known.borrow_and_update();
                (
                    Table::from_known(&k),
                    k.ingresses.values().cloned().collect::<Vec<_>>(),
                    k.ingress_classes.values().cloned().collect::<Vec<_>>(),
                )
            };
            let mut now: BTreeSet<tls::Problem> = new.problems.iter().cloned().collect();
            *t.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
            if let Some((fallback, certs)) = &tls_state {
                let want = tls::wanted(&ingresses, &classes);
                followers.retain(|k, h| {
                    let keep = want.contains(k);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for k in &want {
                    followers.entry(k.clone()).or_insert_with(|| {
                        tokio::spawn(tls::follow_secret(
                            api.client.clone(),
                            k.clone(),
                            secrets_tx.clone(),
                        ))
                    });
                }
                secrets_tx.send_if_modified(|m| {
                    let before = m.len();
                    m.retain(|k, _| want.contains(k));
                    m.len() != before
                });
                let seen = secrets_rx.borrow_and_update().clone();
                // Certificates are parsed again only when what they come from changed.
                let input = (ingresses, classes, seen);
                if last_input.as_ref() != Some(&input) {
                    let (ingresses, classes, seen) = last_input.insert(input);
                    let (c, problems) = tls::build(ingresses, classes, seen, fallback.clone());
                    *certs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
                    tls_problems = problems;
                }
                now.extend(tls_problems.iter().cloned());
            }
            for p in now.difference(&reported) {
                tracing::warn!("ingress: Ingress {}: {}", p.ingress, p.message);
                let ns = p.ingress.split_once('/').map_or("default", |(ns, _)| ns);
                let ev = tls::event(p, &node, &crate::now());
                if let Err(e) = api.create("events", Some(ns), &ev).await {
                    tracing::debug!("ingress: recording an event failed: {e}");
                }
            }
            reported = now;
        }
        for (_, h) in followers {
            h.abort();
        }
    });
    // Idle endpoint connections, shared by both listeners, swept as they age.
    let pool = Arc::new(pool::Pool::default());
    let sweeper = {
        let (pool, mut stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(pool.idle_timeout / 4) => pool.sweep(),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };
    // Redirects go to the TLS listener when there is one.
    let https_port = if tls_setup.is_some() { tls_port } else { 0 };
    let plain = (port != 0).then(|| {
        let front = Arc::new(Front {
            scheme: "http",
            table: table.clone(),
            pool: pool.clone(),
            https_port,
        });
        tokio::spawn(listen(
            SocketAddr::new(address, port),
            None,
            front,
            stop.clone(),
        ))
    });
    if let Some((_, _, cfg)) = tls_setup {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let front = Arc::new(Front {
            scheme: "https",
            table,
            pool,
            https_port: 0,
        });
        listen(
            SocketAddr::new(address, tls_port),
            Some(acceptor),
            front,
            stop.clone(),
        )
        .await;
    }
    sweeper.abort();
    if let Some(p) = plain {
        let _ = p.await;
    }
}

#[cfg(test)]
mod tests;
