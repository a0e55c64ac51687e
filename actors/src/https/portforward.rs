//! `pods/<name>/portforward`: SPDY/3.1, either tunnelled over a WebSocket
//! (subprotocol `SPDY/3.1+portforward.k8s.io`, kubectl 1.31+), as the API
//! server's tunnelling handler accepts it, or over a direct upgrade
//! (`Upgrade: SPDY/3.1`, protocol `portforward.k8s.io`, kubectl 1.30 and
//! older; see [`super::upgrade`]).
//!
//! kubectl opens two streams per forwarded connection, paired by `requestID`:
//! an error stream (it reads a message there when the forward fails) and a
//! data stream. For each pair the master opens a `PodPortForward` stream to
//! the pod's node ([`open_pod_stream`]), which connects to the port on the
//! pod's loopback; bytes are copied both ways. The error stream is finished
//! when the forward ends, as kubectl waits for it.

use super::route::PodRoute;
use super::serve::{status, Ctx};
use super::spdy::{self, Decoder, Encoder, Frame, Pairs};
use super::upgrade::{self, Conn};
use crate::tunnel::{open_pod_stream, PodStream};
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{web, HttpRequest, HttpResponse};
use ferry_api::frame::read_frame;
use ferry_api::object::Status;
use ferry_api::proto::{ApiError, ApiRequest, PortForwardRequest};
use serde_json::Value;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The WebSocket subprotocol kubectl offers for tunnelled SPDY port forwarding.
pub const TUNNELED_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol of a direct SPDY upgrade.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// Bytes per DATA frame sent to kubectl.
const CHUNK: usize = 32 * 1024;

/// What a forward's task tells the session.
enum Out {
    /// A frame to send.
    Frame(Frame),
    /// The forward on data stream `data` ended, with kubectl's error message if it failed.
    Finished { data: u32, error: Option<String> },
}

/// A forward in progress, by its data stream.
struct Running {
    input: mpsc::UnboundedSender<Option<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
    error_stream: u32,
}

/// Serves the WebSocket upgrade (the caller has read the pod and checked access).
pub(super) async fn serve(
    ctx: &web::Data<Ctx>,
    p: &PodRoute,
    pod: &Value,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let spdy = upgrade::is_spdy(req);
    let offered = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|o| o.trim() == TUNNELED_PROTOCOL);
    if !offered && !spdy {
        return status(&Status::bad_request(format!(
            "port-forward needs a WebSocket upgrade with subprotocol {TUNNELED_PROTOCOL} \
             (kubectl 1.31 or newer; 1.30 with KUBECTL_PORT_FORWARD_WEBSOCKETS=true) \
             or an upgrade to SPDY/3.1"
        )));
    }
    if spdy {
        if let Err(r) = upgrade::handshake(req, &[PROTOCOL]) {
            return r;
        }
    }
    if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        return status(&Status::bad_request(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let (resp, conn) = if spdy {
        Conn::spdy(payload, PROTOCOL)
    } else {
        let (mut resp, session, msgs) = match actix_ws::handle(req, payload) {
            Ok(x) => x,
            Err(e) => return status(&Status::bad_request(format!("WebSocket handshake: {e}"))),
        };
        resp.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(TUNNELED_PROTOCOL),
        );
        let msgs = msgs.max_frame_size(spdy::MAX_LENGTH + 8);
        (resp, Conn::Ws { session, msgs })
    };
    let target = Target {
        ctx: ctx.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    actix_web::rt::spawn(session_loop(target, conn));
    resp
}

/// The pod forwards go to.
#[derive(Clone)]
struct Target {
    ctx: web::Data<Ctx>,
    namespace: String,
    name: String,
    uid: String,
}

/// Runs one SPDY connection until either side ends it.
async fn session_loop(target: Target, mut conn: Conn) {
    let mut dec = Decoder::default();
    let mut enc = Encoder::default();
    let mut pairs = Pairs::default();
    let mut running: HashMap<u32, Running> = HashMap::new();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    'session: loop {
        let mut replies: Vec<Frame> = Vec::new();
        tokio::select! {
            bytes = conn.recv() => {
                let Some(bytes) = bytes else { break };
                dec.push(&bytes);
                loop {
                    let frame = match dec.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "port-forward: bad SPDY input");
                            break 'session;
                        }
                    };
                    match frame {
                        Frame::SynStream { stream, headers, .. } => match pairs.add(stream, &headers) {
                            Err(msg) => {
                                tracing::debug!(stream, %msg, "port-forward: stream refused");
                                replies.push(Frame::RstStream {
                                    stream,
                                    status: spdy::PROTOCOL_ERROR,
                                });
                            }
                            Ok(pair) => {
                                replies.push(Frame::SynReply {
                                    stream,
                                    fin: false,
                                    headers: Vec::new(),
                                });
                                if let Some(fwd) = pair {
                                    let (input, rx) = mpsc::unbounded_channel();
                                    let task = tokio::spawn(forward(
                                        target.clone(),
                                        fwd.port,
                                        fwd.data,
                                        rx,
                                        out_tx.clone(),
                                    ));
                                    running.insert(
                                        fwd.data,
                                        Running {
                                            input,
                                            task,
                                            error_stream: fwd.error,
                                        },
                                    );
                                }
                            }
                        },
                        Frame::Data { stream, fin, data } => {
                            if let Some(r) = running.get(&stream) {
                                if !data.is_empty() {
                                    let _ = r.input.send(Some(data));
                                }
                                if fin {
                                    let _ = r.input.send(None);
                                }
                            }
                        }
                        Frame::RstStream { stream, .. } => {
                            pairs.remove_stream(stream);
                            if let Some(r) = running.remove(&stream) {
                                r.task.abort();
                                replies.push(end(r.error_stream, Vec::new()));
                            }
                        }
                        Frame::Ping(id) => replies.push(Frame::Ping(id)),
                        Frame::GoAway { .. } => break 'session,
                        _ => {}
                    }
                }
            }
            Some(out) = out_rx.recv() => match out {
                Out::Frame(f) => replies.push(f),
                Out::Finished { data, error } => {
                    if let Some(r) = running.remove(&data) {
                        let msg = error.unwrap_or_default().into_bytes();
                        replies.push(end(r.error_stream, msg));
                    }
                }
            },
        }
        for f in replies {
            if conn.send(enc.encode(&f)).await.is_err() {
                break 'session;
            }
        }
    }
    for (_, r) in running {
        r.task.abort();
    }
    conn.close().await;
}

/// A stream's last DATA frame: `data`, then FIN.
fn end(stream: u32, data: Vec<u8>) -> Frame {
    Frame::Data {
        stream,
        fin: true,
        data,
    }
}

/// One forwarded connection: opens it on the pod's node, then copies kubectl's
/// DATA frames (`input`; `None` is its FIN) to it and its bytes back as DATA
/// frames on `data`, until the pod's side ends.
async fn forward(
    t: Target,
    port: u16,
    data: u32,
    mut input: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Out>,
) {
    let req = ApiRequest::PodPortForward(PortForwardRequest {
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        port,
    });
    let opened = async {
        let mut s = open_pod_stream(&t.ctx.store, &t.ctx.tunnels, &t.ctx.relay(), &req)
            .await
            .map_err(|e| e.message)?;
        match read_frame::<_, Result<(), ApiError>>(&mut s.from, 1 << 16).await {
            Ok(Some(Ok(()))) => Ok(s),
            Ok(Some(Err(e))) => Err(e.message),
            Ok(None) => Err("the node ended the stream".to_string()),
            Err(e) => Err(format!("the node's stream broke: {e}")),
        }
    };
    let stream: PodStream = match opened.await {
        Ok(s) => s,
        Err(m) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {m}",
                t.name, t.uid
            );
            let _ = out.send(Out::Frame(end(data, Vec::new()))).await;
            let _ = out
                .send(Out::Finished {
                    data,
                    error: Some(msg),
                })
                .await;
            return;
        }
    };
    let PodStream {
        mut to,
        mut from,
        _relay,
    } = stream;
    let up = async {
        while let Some(Some(bytes)) = input.recv().await {
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.finish();
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        while let Ok(Some(n)) = from.read(&mut buf).await {
            let f = Frame::Data {
                stream: data,
                fin: false,
                data: buf[..n].to_vec(),
            };
            if out.send(Out::Frame(f)).await.is_err() {
                return;
            }
        }
        let _ = out.send(Out::Frame(end(data, Vec::new()))).await;
    };
    // The pod's side ending ends the forward; kubectl's may end first.
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    let _ = out.send(Out::Finished { data, error: None }).await;
}
