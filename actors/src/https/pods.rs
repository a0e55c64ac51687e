//! `pods/<name>/log` (a streamed text body), `pods/<name>/exec` (a
//! WebSocket speaking `v5.channel.k8s.io` / `v4.channel.k8s.io`, as kubectl
//! 1.30+ does, or a direct SPDY/3.1 upgrade, kubectl 1.29 and older:
//! [`super::remotecommand`]) and `pods/<name>/attach` (output only: the
//! followed log), proxied to the pod's node over its tunnel.
//!
//! The pod is read through the pipeline first (so authorization and a missing
//! pod answer as for any object), then a stream is opened to its node
//! ([`crate::tunnel::open_pod_stream`]), relayed by the master holding the
//! node's tunnel when that is another one.

use super::remotecommand::{self, Expect, Out};
use super::route::PodRoute;
use super::serve::{run, status, Ctx};
use super::upgrade::{self, Conn};
use crate::tunnel::open_pod_stream;
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::object::{ObjectRequest, Status, Verb};
use ferry_api::proto::{ApiError, ApiRequest, ErrorCode, ExecFrame, ExecRequest, LogsRequest};
use ferry_api::tls::Identity;
use serde_json::{json, Value};

/// Largest frame read from a node stream.
const MAX_FRAME: usize = 1 << 20;

/// Channels of the `channel.k8s.io` WebSocket protocols.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closed one of its channels (`[255, channel]`).
const CLOSE: u8 = 255;

/// Serves `pods/<name>/log|exec|attach`.
pub(super) async fn serve(
    ctx: &web::Data<Ctx>,
    who: Identity,
    p: PodRoute,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // Authorized as Kubernetes does: `get pods/log`, `create pods/exec|attach`.
    let verb = if p.what == "log" {
        Verb::Get
    } else {
        Verb::Create
    };
    let mut check = ObjectRequest::new(verb, "pods", Some(&p.namespace), Some(&p.name));
    check.subresource = Some(p.what.clone());
    if let Err(refused) = super::serve::authorize(ctx, &who, check).await {
        return refused;
    }
    let get = ObjectRequest::new(Verb::Get, "pods", Some(&p.namespace), Some(&p.name));
    let pod = match run(ctx, &who, get).await {
        Ok(r) if r.code < 400 => serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        Ok(r) => return super::serve::raw(r.code, "application/json", r.body),
        Err(s) => return status(&s),
    };
    let container = param(&p, "container").map(str::to_string);
    match p.what.as_str() {
        "log" => logs(ctx, &p, &pod, container).await,
        "exec" => {
            let command: Vec<String> = p
                .params
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            if command.is_empty() {
                return status(&Status::bad_request("you must specify at least 1 command"));
            }
            let x = ExecRequest {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                container,
                command,
                stdin: flag(&p, "stdin"),
                tty: flag(&p, "tty"),
                attach: false,
            };
            let expect = Expect {
                stdin: x.stdin,
                stdout: flag(&p, "stdout"),
                stderr: flag(&p, "stderr"),
                tty: x.tty,
            };
            exec(ctx, x, expect, req, payload).await
        }
        "portforward" => super::portforward::serve(ctx, &p, &pod, req, payload).await,
        // With stdin: the node relays it into the container's stdin FIFO,
        // over the exec streams (its output from the log, its exit at the end).
        _ if flag(&p, "stdin") => {
            let x = ExecRequest {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                container,
                command: Vec::new(),
                stdin: true,
                tty: flag(&p, "tty"),
                attach: true,
            };
            let expect = Expect {
                stdin: true,
                stdout: flag(&p, "stdout"),
                stderr: flag(&p, "stderr"),
                tty: x.tty,
            };
            exec(ctx, x, expect, req, payload).await
        }
        _ => {
            let expect = Expect {
                stdout: flag(&p, "stdout"),
                stderr: flag(&p, "stderr"),
                tty: flag(&p, "tty"),
                ..Expect::default()
            };
            attach(ctx, &p, container, expect, req, payload).await
        }
    }
}

/// A query parameter (the last one given).
fn param<'a>(p: &'a PodRoute, k: &str) -> Option<&'a str> {
    p.params
        .iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (absent: false).
fn flag(p: &PodRoute, k: &str) -> bool {
    matches!(
        param(p, k),
        Some("1" | "true" | "True" | "TRUE" | "t" | "T")
    )
}

async fn logs(ctx: &Ctx, p: &PodRoute, pod: &Value, container: Option<String>) -> HttpResponse {
    let number = |k: &str| -> Result<Option<u64>, Status> {
        param(p, k)
            .map(|v| {
                v.parse::<i64>()
                    .map(|n| n.max(0) as u64)
                    .map_err(|_| Status::bad_request(format!("{k}: invalid value {v:?}")))
            })
            .transpose()
    };
    let parsed = (|| {
        let tail = number("tailLines")?;
        let limit = number("limitBytes")?;
        let mut since = number("sinceSeconds")?;
        if let Some(t) = param(p, "sinceTime") {
            let at: jiff::Timestamp = t.parse().map_err(|e| {
                Status::bad_request(format!("sinceTime: invalid RFC 3339 time {t:?}: {e}"))
            })?;
            let secs = ferry_api::clock::now().duration_since(at).as_secs().max(0) as u64;
            since = Some(secs);
        }
        Ok::<_, Status>((tail, limit, since))
    })();
    let (tail, limit, since) = match parsed {
        Ok(x) => x,
        Err(s) => return status(&s),
    };
    if let Some(c) = &container {
        let known = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .any(|list| {
                pod["spec"][list]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|x| x["name"] == c.as_str()))
            });
        if !known {
            return status(&Status::bad_request(format!(
                "container {c} is not valid for pod {}",
                p.name
            )));
        }
    }
    let req = ApiRequest::PodLogs(LogsRequest {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        container,
        follow: flag(p, "follow"),
        tail,
        previous: flag(p, "previous"),
        timestamps: flag(p, "timestamps"),
        since_secs: since,
    });
    let mut stream = match open_pod_stream(&ctx.store, &ctx.tunnels, &ctx.relay(), &req).await {
        Ok(s) => s,
        Err(e) => return status(&node_status(e)),
    };
    let _ = stream.to.finish();
    // The first frame decides the answer: an error before any output is the
    // request's error (a container not started yet is 400, as Kubernetes says).
    let first = match read_frame::<_, Result<Vec<u8>, ApiError>>(&mut stream.from, MAX_FRAME).await
    {
        Ok(Some(Ok(bytes))) => Some(bytes),
        Ok(Some(Err(e))) => return status(&node_status(e)),
        Ok(None) => None,
        Err(e) => {
            return status(&Status::new(
                503,
                "ServiceUnavailable",
                format!("the log stream from the node broke: {e}"),
            ))
        }
    };
    let budget = limit.unwrap_or(u64::MAX);
    let body = futures_util::stream::unfold(
        (stream, first, budget, false),
        |(mut stream, first, budget, done)| async move {
            if done || budget == 0 {
                return None;
            }
            let bytes = match first {
                Some(b) => b,
                None => {
                    match read_frame::<_, Result<Vec<u8>, ApiError>>(&mut stream.from, MAX_FRAME)
                        .await
                    {
                        Ok(Some(Ok(b))) => b,
                        // An error mid-stream, the end, or a broken stream: stop.
                        _ => return None,
                    }
                }
            };
            let take = (bytes.len() as u64).min(budget) as usize;
            let left = budget - take as u64;
            let chunk = Bytes::from(bytes).slice(..take);
            Some((
                Ok::<_, std::convert::Infallible>(chunk),
                (stream, None, left, false),
            ))
        },
    );
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body)
}

/// A node-side failure as the Status Kubernetes answers.
fn node_status(e: ApiError) -> Status {
    match e.code {
        ErrorCode::BadRequest => Status::bad_request(e.message),
        ErrorCode::Unavailable => Status::new(503, "ServiceUnavailable", e.message),
        ErrorCode::Forbidden | ErrorCode::Unauthenticated => Status::forbidden(e.message),
        _ => Status::internal(e.message),
    }
}

/// The WebSocket subprotocol to speak: the newest `channel.k8s.io` one offered.
fn subprotocol(req: &HttpRequest) -> Option<&'static str> {
    let offered: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
}

async fn exec(
    ctx: &Ctx,
    x: ExecRequest,
    expect: Expect,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if upgrade::is_spdy(req) {
        return exec_spdy(ctx, x, expect, req, payload).await;
    }
    let Some(proto) = subprotocol(req) else {
        return status(&Status::bad_request(
            "exec needs a WebSocket upgrade with subprotocol v5.channel.k8s.io or v4.channel.k8s.io \
             (kubectl 1.30 or newer) or an upgrade to SPDY/3.1",
        ));
    };
    let v5 = proto.starts_with("v5");
    let command = x.command.clone();
    let stream = match open_pod_stream(
        &ctx.store,
        &ctx.tunnels,
        &ctx.relay(),
        &ApiRequest::PodExec(x),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return status(&node_status(e)),
    };
    let (mut resp, session, msgs) = match actix_ws::handle(req, payload) {
        Ok(x) => x,
        Err(e) => return status(&Status::bad_request(format!("WebSocket handshake: {e}"))),
    };
    resp.headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(proto));
    actix_web::rt::spawn(run_exec(stream, session, msgs, command, v5));
    resp
}

/// `attach` without stdin: the container's output from now on (its log,
/// followed; stdout and stderr both on the stdout channel) until its run ends
/// or the client leaves.
async fn attach(
    ctx: &Ctx,
    p: &PodRoute,
    container: Option<String>,
    expect: Expect,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let spdy = if upgrade::is_spdy(req) {
        match upgrade::handshake(req, &remotecommand::PROTOCOLS) {
            Ok(p) => Some(p),
            Err(r) => return r,
        }
    } else {
        None
    };
    let proto = subprotocol(req);
    if spdy.is_none() && proto.is_none() {
        return status(&Status::bad_request(
            "attach needs a WebSocket upgrade with subprotocol v5.channel.k8s.io or v4.channel.k8s.io \
             (kubectl 1.30 or newer) or an upgrade to SPDY/3.1",
        ));
    }
    let logs = ApiRequest::PodLogs(LogsRequest {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        container,
        follow: true,
        tail: Some(0),
        previous: false,
        timestamps: false,
        since_secs: None,
    });
    let stream = match open_pod_stream(&ctx.store, &ctx.tunnels, &ctx.relay(), &logs).await {
        Ok(s) => s,
        Err(e) => return status(&node_status(e)),
    };
    if let Some(protocol) = spdy {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        actix_web::rt::spawn(attach_output(stream, tx));
        let (resp, conn) = Conn::spdy(payload, protocol);
        actix_web::rt::spawn(remotecommand::run(conn, protocol, expect, rx, None));
        return resp;
    }
    let proto = proto.unwrap_or_default();
    let (mut resp, session, msgs) = match actix_ws::handle(req, payload) {
        Ok(x) => x,
        Err(e) => return status(&Status::bad_request(format!("WebSocket handshake: {e}"))),
    };
    resp.headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(proto));
    actix_web::rt::spawn(run_attach(stream, session, msgs));
    resp
}

/// exec over a direct SPDY upgrade: the node's frames as [`Out`], the
/// client's input and sizes as frames to the node.
async fn exec_spdy(
    ctx: &Ctx,
    x: ExecRequest,
    expect: Expect,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let protocol = match upgrade::handshake(req, &remotecommand::PROTOCOLS) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let command = x.command.clone();
    let stream = match open_pod_stream(
        &ctx.store,
        &ctx.tunnels,
        &ctx.relay(),
        &ApiRequest::PodExec(x),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return status(&node_status(e)),
    };
    let crate::tunnel::PodStream {
        mut to,
        mut from,
        _relay,
    } = stream;
    let (in_tx, mut in_rx) = tokio::sync::mpsc::unbounded_channel::<ExecFrame>();
    actix_web::rt::spawn(async move {
        while let Some(f) = in_rx.recv().await {
            if write_frame(&mut to, &f).await.is_err() {
                break;
            }
        }
        let _ = write_frame(&mut to, &ExecFrame::StdinEnd).await;
    });
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(16);
    actix_web::rt::spawn(async move {
        let _relay = _relay;
        let end = loop {
            let out = match read_frame::<_, ExecFrame>(&mut from, MAX_FRAME).await {
                Ok(Some(ExecFrame::Stdout(b))) => Out::Stdout(b),
                Ok(Some(ExecFrame::Stderr(b))) => Out::Stderr(b),
                Ok(Some(ExecFrame::Exit(code))) => break exit_status(&command, code),
                Ok(Some(ExecFrame::Error(e))) => break node_status(e).to_json(),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    break Status::internal(
                        "the exec stream from the node ended without an exit code",
                    )
                    .to_json()
                }
            };
            if out_tx.send(out).await.is_err() {
                return;
            }
        };
        let _ = out_tx.send(Out::End(end)).await;
    });
    let (resp, conn) = Conn::spdy(payload, protocol);
    actix_web::rt::spawn(remotecommand::run(
        conn,
        protocol,
        expect,
        out_rx,
        Some(in_tx),
    ));
    resp
}

/// A followed log as attach's output, then its end.
async fn attach_output(stream: crate::tunnel::PodStream, out: tokio::sync::mpsc::Sender<Out>) {
    let crate::tunnel::PodStream {
        mut to, mut from, ..
    } = stream;
    let _ = to.finish();
    let end = loop {
        match read_frame::<_, Result<Vec<u8>, ApiError>>(&mut from, MAX_FRAME).await {
            Ok(Some(Ok(b))) => {
                if !b.is_empty() && out.send(Out::Stdout(b)).await.is_err() {
                    return;
                }
            }
            Ok(Some(Err(e))) => break node_status(e).to_json(),
            Ok(None) | Err(_) => break json!({ "metadata": {}, "status": "Success" }),
        }
    };
    let _ = out.send(Out::End(end)).await;
}

async fn run_attach(
    stream: crate::tunnel::PodStream,
    mut session: actix_ws::Session,
    mut msgs: actix_ws::MessageStream,
) {
    let crate::tunnel::PodStream {
        mut to, mut from, ..
    } = stream;
    let _ = to.finish();
    let output = async {
        let ended = loop {
            match read_frame::<_, Result<Vec<u8>, ApiError>>(&mut from, MAX_FRAME).await {
                Ok(Some(Ok(b))) => {
                    if !b.is_empty() && session.binary(channel(STDOUT, &b)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Err(e))) => break node_status(e).to_json(),
                Ok(None) | Err(_) => break json!({ "metadata": {}, "status": "Success" }),
            }
        };
        let body = serde_json::to_vec(&ended).unwrap_or_default();
        let _ = session.binary(channel(ERROR, &body)).await;
        let _ = session
            .close(Some(actix_ws::CloseReason {
                code: actix_ws::CloseCode::Normal,
                description: None,
            }))
            .await;
    };
    // The client leaving ends the session too.
    let client = async {
        while let Some(Ok(m)) = msgs.recv().await {
            if matches!(m, actix_ws::Message::Close(_)) {
                break;
            }
        }
    };
    tokio::select! {
        _ = output => {}
        _ = client => {}
    }
}

/// Moves frames between the WebSocket and the node until the command ends.
async fn run_exec(
    stream: crate::tunnel::PodStream,
    mut session: actix_ws::Session,
    mut msgs: actix_ws::MessageStream,
    command: Vec<String>,
    v5: bool,
) {
    let crate::tunnel::PodStream {
        mut to, mut from, ..
    } = stream;
    let to_node = async {
        while let Some(Ok(msg)) = msgs.recv().await {
            // Text frames carry channel bytes too: the Python client sends
            // its input as text, and the API server reads either kind.
            let data = match msg {
                actix_ws::Message::Binary(b) => b,
                actix_ws::Message::Text(t) => t.into_bytes(),
                actix_ws::Message::Close(_) => break,
                _ => continue,
            };
            let Some(frame) = ws_input(&data, v5) else {
                continue;
            };
            let end = matches!(frame, ExecFrame::StdinEnd);
            if write_frame(&mut to, &frame).await.is_err() {
                break;
            }
            if end {
                break;
            }
        }
        let _ = write_frame(&mut to, &ExecFrame::StdinEnd).await;
    };
    let from_node = async {
        let ended = loop {
            match read_frame::<_, ExecFrame>(&mut from, MAX_FRAME).await {
                Ok(Some(ExecFrame::Stdout(b))) => {
                    if session.binary(channel(STDOUT, &b)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(ExecFrame::Stderr(b))) => {
                    if session.binary(channel(STDERR, &b)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(ExecFrame::Exit(code))) => break exit_status(&command, code),
                Ok(Some(ExecFrame::Error(e))) => break node_status(e).to_json(),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    break Status::internal(
                        "the exec stream from the node ended without an exit code",
                    )
                    .to_json()
                }
            }
        };
        let body = serde_json::to_vec(&ended).unwrap_or_default();
        let _ = session.binary(channel(ERROR, &body)).await;
        // A normal closure: kubectl reads it as the end of every channel.
        let _ = session
            .close(Some(actix_ws::CloseReason {
                code: actix_ws::CloseCode::Normal,
                description: None,
            }))
            .await;
    };
    // The command's end ends the session; the input side may still wait.
    tokio::select! {
        _ = from_node => {}
        _ = async { to_node.await; std::future::pending::<()>().await } => {}
    }
}

/// What one client WebSocket message means for the command: input (never
/// empty: an empty stdin message carries nothing, not a NUL byte), the end
/// of input — v5's close of the stdin channel, `[255, 0]`, whose stream id
/// is never data —, a window size, or nothing (another channel, a close of
/// another stream, a bad size).
fn ws_input(data: &[u8], v5: bool) -> Option<ExecFrame> {
    let (&channel, rest) = data.split_first()?;
    match channel {
        STDIN if !rest.is_empty() => Some(ExecFrame::Stdin(rest.to_vec())),
        CLOSE if v5 && rest == [STDIN] => Some(ExecFrame::StdinEnd),
        RESIZE => remotecommand::parse_size(rest),
        _ => None,
    }
}

fn channel(id: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(id);
    v.extend_from_slice(data);
    Bytes::from(v)
}

/// The Status the error channel carries when the command ends, as the kubelet
/// writes it: success, or `NonZeroExitCode` with the code as a cause (kubectl
/// exits with it).
fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({ "metadata": {}, "status": "Success" });
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": { "causes": [ { "reason": "ExitCode", "message": code.to_string() } ] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_stdin_ends_the_input_and_never_writes_a_byte() {
        let stdin = |b: &[u8]| Some(ExecFrame::Stdin(b.to_vec()));
        let cases: &[(&[u8], bool, Option<ExecFrame>)] = &[
            (b"\x00x", true, stdin(b"x")),
            (b"\x00\x00", true, stdin(b"\x00")),
            // v5's close of stdin: its end, not its stream id as input.
            (b"\xff\x00", true, Some(ExecFrame::StdinEnd)),
            // v4 has no close message; nor is it input.
            (b"\xff\x00", false, None),
            // A close of another stream, or a malformed one: nothing.
            (b"\xff\x01", true, None),
            (b"\xff", true, None),
            (b"\xff\x00\x00", true, None),
            // An empty stdin message (older clients' end of input) and an
            // empty message carry nothing.
            (b"\x00", true, None),
            (b"\x00", false, None),
            (b"", true, None),
            // Output channels from a client are ignored.
            (b"\x01out", true, None),
            (
                b"\x04{\"Width\":80,\"Height\":24}",
                true,
                Some(ExecFrame::Resize {
                    width: 80,
                    height: 24,
                }),
            ),
            (b"\x04nonsense", true, None),
        ];
        for (data, v5, want) in cases {
            assert_eq!(&ws_input(data, *v5), want, "{data:?} (v5: {v5})");
        }
    }
}
