//! Direct SPDY upgrades (`Connection: Upgrade`, `Upgrade: SPDY/3.1`), as
//! kubectl 1.29 and older use for exec and attach and 1.30 and older for
//! port-forward, and the connection both they and WebSockets end up as.
//!
//! actix-http hands a handler the bytes that follow a request's head only for
//! `Upgrade: websocket` (and CONNECT); after any other upgrade it parses them
//! as the next request. So each HTTP/1.1 connection's first request head is
//! read through [`Sniff`], which rewrites an `Upgrade: SPDY/3.1` header to
//! `Upgrade: websocket` plus [`SPDY_MARK`]: the handler then reads the SPDY
//! bytes from its `web::Payload` and answers `101` with a streamed body, as
//! `actix_ws` does. kubectl dials a fresh connection for every upgrade, so the
//! first request is the only one that needs it.

use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// The header [`Sniff`] adds to a request that asked for `Upgrade: SPDY/3.1`.
pub const SPDY_MARK: &str = "x-ferry-upgrade";
/// The protocol-version header of Kubernetes' stream upgrades.
pub const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
/// What a server lists when no protocol matched.
const ACCEPTED_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";

/// Largest request head looked at; a longer one passes unchanged.
const MAX_HEAD: usize = 16 * 1024;

/// An HTTP/1.1 connection whose first request head may be rewritten.
pub struct Sniff<T> {
    io: T,
    state: State,
}

enum State {
    /// Collecting the first head.
    Head(Vec<u8>),
    /// Handing out the (maybe rewritten) head and what came with it.
    Replay(Vec<u8>, usize),
    /// Plain pass-through.
    Pass,
}

impl<T> Sniff<T> {
    /// Wraps `io`; `sniff` false passes everything unchanged (HTTP/2).
    pub fn new(io: T, sniff: bool) -> Self {
        let state = if sniff {
            State::Head(Vec::new())
        } else {
            State::Pass
        };
        Sniff { io, state }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Pass => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Replay(bytes, at) => {
                    let n = (bytes.len() - *at).min(buf.remaining());
                    buf.put_slice(&bytes[*at..*at + n]);
                    *at += n;
                    if *at == bytes.len() {
                        this.state = State::Pass;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Head(head) => {
                    let mut chunk = [0u8; 4096];
                    let mut rb = ReadBuf::new(&mut chunk);
                    match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    let got = rb.filled();
                    head.extend_from_slice(got);
                    let end = memchr::memmem::find(head, b"\r\n\r\n");
                    if got.is_empty() || end.is_some() || head.len() > MAX_HEAD {
                        let mut bytes = std::mem::take(head);
                        if let Some(end) = end {
                            if let Some(mut new) = rewrite_spdy_head(&bytes[..end + 4]) {
                                new.extend_from_slice(&bytes[end + 4..]);
                                bytes = new;
                            }
                        }
                        this.state = if bytes.is_empty() {
                            State::Pass
                        } else {
                            State::Replay(bytes, 0)
                        };
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request head (through its blank line) with `Upgrade: SPDY/3.1` rewritten
/// as `Upgrade: websocket` and [`SPDY_MARK`]; `None` when it asks for no SPDY
/// upgrade (or also carries a body, which an upgrade cannot).
pub fn rewrite_spdy_head(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let mut at = None;
    for (i, line) in lines.iter().enumerate().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("SPDY/3.1") {
            at = Some(i);
        }
        // Go sends `Content-Length: 0` with every bodiless POST.
        let body = name.eq_ignore_ascii_case("content-length") && value.trim() != "0";
        if body
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case(SPDY_MARK)
        {
            return None;
        }
    }
    let at = at?;
    let mark = format!("Upgrade: websocket\r\n{SPDY_MARK}: SPDY/3.1");
    lines[at] = &mark;
    Some(lines.join("\r\n").into_bytes())
}

/// Whether the request asked for a direct SPDY upgrade.
pub fn is_spdy(req: &HttpRequest) -> bool {
    req.headers()
        .get(SPDY_MARK)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"SPDY/3.1"))
}

/// The stream protocol both sides speak, as Kubernetes' `httpstream.Handshake`
/// picks it: the client's first offer the server accepts.
pub fn negotiate<'a>(client: &[String], server: &[&'a str]) -> Option<&'a str> {
    client
        .iter()
        .find_map(|c| server.iter().find(|s| *s == c).copied())
}

/// The `X-Stream-Protocol-Version` values offered.
fn offered(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all(PROTOCOL_HEADER)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Negotiates the protocol of a SPDY upgrade, or answers as Kubernetes does
/// when none matches (403, listing the accepted ones).
pub fn handshake(req: &HttpRequest, server: &[&'static str]) -> Result<&'static str, HttpResponse> {
    let client = offered(req);
    if client.is_empty() {
        return Err(HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "unable to upgrade: {PROTOCOL_HEADER} is required\n"
            )));
    }
    negotiate(&client, server).ok_or_else(|| {
        let mut r = HttpResponse::Forbidden();
        for s in server {
            r.append_header((ACCEPTED_HEADER, *s));
        }
        r.content_type("text/plain; charset=utf-8").body(format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]\n",
            client.join(" "),
            server.join(" ")
        ))
    })
}

/// One upgraded connection's bytes, either SPDY directly or inside WebSocket
/// binary messages.
pub enum Conn {
    Ws {
        session: actix_ws::Session,
        msgs: actix_ws::MessageStream,
    },
    Raw {
        input: web::Payload,
        output: mpsc::Sender<Bytes>,
    },
}

impl Conn {
    /// Answers a direct SPDY upgrade with `101` and `protocol`; the returned
    /// connection carries the SPDY bytes both ways.
    pub fn spdy(payload: web::Payload, protocol: &'static str) -> (HttpResponse, Conn) {
        let (output, rx) = mpsc::channel::<Bytes>(64);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        let resp = HttpResponse::SwitchingProtocols()
            .upgrade("SPDY/3.1")
            .insert_header((PROTOCOL_HEADER, HeaderValue::from_static(protocol)))
            .streaming(body);
        (
            resp,
            Conn::Raw {
                input: payload,
                output,
            },
        )
    }

    /// The next bytes from the client; `None` when it is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        match self {
            Conn::Raw { input, .. } => match input.next().await {
                Some(Ok(b)) => Some(b),
                _ => None,
            },
            Conn::Ws { session, msgs } => loop {
                match msgs.recv().await {
                    Some(Ok(actix_ws::Message::Binary(b))) => return Some(b),
                    Some(Ok(actix_ws::Message::Continuation(
                        actix_ws::Item::FirstBinary(b)
                        | actix_ws::Item::Continue(b)
                        | actix_ws::Item::Last(b),
                    ))) => return Some(b),
                    Some(Ok(actix_ws::Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | Some(Err(_)) | None => return None,
                    Some(Ok(_)) => {}
                }
            },
        }
    }

    /// Sends bytes to the client.
    pub async fn send(&mut self, b: Vec<u8>) -> Result<(), ()> {
        match self {
            Conn::Raw { output, .. } => output.send(Bytes::from(b)).await.map_err(|_| ()),
            Conn::Ws { session, .. } => session.binary(b).await.map_err(|_| ()),
        }
    }

    /// Ends the connection (a WebSocket with a normal closure).
    pub async fn close(self) {
        if let Conn::Ws { session, .. } = self {
            let _ = session
                .close(Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Normal,
                    description: None,
                }))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_spdy_upgrades() {
        let spdy = "POST /api/v1/namespaces/a/pods/p/exec?command=ls HTTP/1.1\r\nHost: x\r\n\
                    Connection: Upgrade\r\nupgrade: spdy/3.1\r\nContent-Length: 0\r\n\
                    X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
        let out = String::from_utf8(rewrite_spdy_head(spdy.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            "POST /api/v1/namespaces/a/pods/p/exec?command=ls HTTP/1.1\r\nHost: x\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nx-ferry-upgrade: SPDY/3.1\r\n\
             Content-Length: 0\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
        );
        let cases: &[(&str, &str)] = &[
            (
                "websocket",
                "GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            ),
            ("no upgrade", "GET /x HTTP/1.1\r\nHost: y\r\n\r\n"),
            (
                "a body",
                "POST /x HTTP/1.1\r\nUpgrade: SPDY/3.1\r\nContent-Length: 3\r\n\r\n",
            ),
            (
                "chunked",
                "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUpgrade: SPDY/3.1\r\n\r\n",
            ),
            (
                "the mark already",
                "POST /x HTTP/1.1\r\nUpgrade: SPDY/3.1\r\nX-Ferry-Upgrade: x\r\n\r\n",
            ),
            (
                "in the request line only",
                "GET /Upgrade:SPDY/3.1 HTTP/1.1\r\n\r\n",
            ),
        ];
        for (name, head) in cases {
            assert_eq!(rewrite_spdy_head(head.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn negotiation_follows_the_client_order() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let server = ["v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"];
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &["v4.channel.k8s.io", "v3.channel.k8s.io"],
                Some("v4.channel.k8s.io"),
            ),
            (
                &["v3.channel.k8s.io", "v4.channel.k8s.io"],
                Some("v3.channel.k8s.io"),
            ),
            (
                &["v5.channel.k8s.io", "channel.k8s.io"],
                Some("channel.k8s.io"),
            ),
            (&["portforward.k8s.io"], None),
            (&[], None),
        ];
        for (client, want) in cases {
            assert_eq!(negotiate(&s(client), &server), *want, "{client:?}");
        }
    }

    #[test]
    fn handshake_answers_as_kubernetes_does() {
        use actix_web::test::TestRequest;
        let server = ["v4.channel.k8s.io", "channel.k8s.io"];
        let req = TestRequest::default()
            .insert_header((SPDY_MARK, "SPDY/3.1"))
            .append_header((PROTOCOL_HEADER, "v5.channel.k8s.io"))
            .append_header((PROTOCOL_HEADER, "v4.channel.k8s.io"))
            .to_http_request();
        assert!(is_spdy(&req));
        assert_eq!(handshake(&req, &server).ok(), Some("v4.channel.k8s.io"));

        let none = TestRequest::default().to_http_request();
        assert!(!is_spdy(&none));
        let r = handshake(&none, &server).unwrap_err();
        assert_eq!(r.status(), 400);

        let other = TestRequest::default()
            .insert_header((PROTOCOL_HEADER, "portforward.k8s.io"))
            .to_http_request();
        let r = handshake(&other, &server).unwrap_err();
        assert_eq!(r.status(), 403);
        let accepted: Vec<_> = r
            .headers()
            .get_all(ACCEPTED_HEADER)
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(accepted, server);
    }

    #[tokio::test]
    async fn sniff_replays_the_rewritten_head_and_the_rest() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // The head arrives in pieces, the SPDY bytes right behind it.
            for part in [
                &b"POST /e HTTP/1.1\r\nConnection: Upgrade\r\nUpg"[..],
                b"rade: SPDY/3.1\r\n\r\n\x80\x03\x00\x01",
                b"more",
            ] {
                client.write_all(part).await.unwrap();
            }
        });
        let mut sniff = Sniff::new(server, true);
        let mut all = Vec::new();
        sniff.read_to_end(&mut all).await.unwrap();
        writer.await.unwrap();
        assert_eq!(
            all,
            b"POST /e HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              x-ferry-upgrade: SPDY/3.1\r\n\r\n\x80\x03\x00\x01more"
                .to_vec()
        );
    }
}
