//! The node's tunnel: a connection to one master on which masters open
//! streams to this node (container logs, exec, port forwards), so the node
//! listens on no port.
//! It moves to the next master when its master goes away, and records which
//! master holds it in its Node's `ferry.dev/tunnel-master` annotation, where
//! `ferry logs` looks.

use crate::join;
use crate::objects::Objects;
use crate::runtime::{self, ContainerDir};
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::proto::{
    ApiError, ApiRequest, ApiResponse, ErrorCode, ExecFrame, ExecRequest, LogsRequest, NodeStream,
};
use ferry_api::tls::{self, CertPair};
use ferry_api::{ALPN_API, MASTER_SERVER_NAME};
use ferry_config::TransportLimits;
use futures_util::StreamExt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The annotation naming the master that holds a node's tunnel.
pub const ANNOTATION: &str = "ferry.dev/tunnel-master";

/// Keeps a tunnel open until `stop`.
pub async fn run(
    data_dir: PathBuf,
    name: String,
    api: Objects,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(endpoint) = tls::client_endpoint("0.0.0.0:0".parse().expect("static")) else {
        tracing::warn!("no QUIC endpoint for the node tunnel");
        return;
    };
    let mut next = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        // Read each time: a renewed certificate is used from the next dial.
        let cfg = match join::load(&data_dir) {
            Ok(Some(c)) => c,
            _ => return,
        };
        let addr = cfg.masters[next % cfg.masters.len()].clone();
        next += 1;
        match open(&endpoint, &cfg, &addr).await {
            Ok(conn) => {
                let note = json!({"metadata": {"annotations": {ANNOTATION: addr}}});
                if let Err(e) = api.patch("nodes", None, &name, None, &note).await {
                    tracing::debug!(error = %e, "recording the tunnel's master failed");
                }
                tracing::info!(master = %addr, "node tunnel open");
                serve(&conn, &data_dir, &mut stop).await;
                conn.close(0u32.into(), b"tunnel moves");
            }
            Err(e) => tracing::debug!(master = %addr, error = %e, "node tunnel failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn open(
    endpoint: &quinn::Endpoint,
    cfg: &ferry_config::ClientConfig,
    addr: &str,
) -> Result<quinn::Connection, String> {
    let pair = CertPair {
        cert_pem: cfg.client_cert.clone(),
        key_pem: cfg.client_key.clone(),
    };
    let quic = tls::client_config(&cfg.ca_cert, &pair, ALPN_API, &TransportLimits::default())
        .map_err(|e| e.to_string())?;
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let conn = tokio::time::timeout(Duration::from_secs(5), async {
        endpoint
            .connect_with(quic, target, MASTER_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "timed out".to_string())??;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, &ApiRequest::NodeTunnel)
        .await
        .map_err(|e| e.to_string())?;
    match read_frame::<_, Result<ApiResponse, ApiError>>(&mut recv, 1 << 16).await {
        Ok(Some(Ok(ApiResponse::TunnelOpen))) => Ok(conn),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

async fn serve(
    conn: &quinn::Connection,
    data_dir: &Path,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (send, mut recv) = tokio::select! {
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let pods = data_dir.join("pods");
        tokio::spawn(async move {
            let mut send = send;
            match read_frame::<_, NodeStream>(&mut recv, 1 << 16).await {
                Ok(Some(NodeStream::Logs {
                    uid,
                    container,
                    req,
                })) => {
                    let dir = ContainerDir(pods.join(&uid).join(&container));
                    logs(&dir, &container, &req, &mut send).await;
                }
                Ok(Some(NodeStream::Exec {
                    uid,
                    container,
                    req,
                })) => {
                    let dir = ContainerDir(pods.join(&uid).join(&container));
                    exec(&dir, &container, &req, &mut send, &mut recv).await;
                }
                Ok(Some(NodeStream::PortForward { uid, port })) => {
                    port_forward(&pods.join(&uid), port, &mut send, &mut recv).await;
                }
                _ => {
                    let e = ApiError::new(ErrorCode::BadRequest, "bad node stream request");
                    let _ = write_frame(&mut send, &Err::<Vec<u8>, _>(e)).await;
                }
            }
            let _ = send.finish();
        });
    }
}

/// Formats complete records of `bytes` (a log's text from a record boundary);
/// returns the output and how many bytes it consumed.
pub fn render(bytes: &[u8], timestamps: bool, since: Option<&str>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(i) = bytes[used..].iter().position(|b| *b == b'\n') {
        let line = &bytes[used..used + i];
        used += i + 1;
        let Some(r) = runtime::parse_record(line) else {
            continue;
        };
        if since.is_some_and(|s| r.time < s) {
            continue;
        }
        if timestamps {
            out.extend_from_slice(r.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.text);
        if r.full {
            out.push(b'\n');
        }
    }
    (out, used)
}

/// The offset of the first of the last `n` full lines of `bytes`.
pub fn tail_start(bytes: &[u8], n: u64) -> usize {
    if n == 0 {
        return bytes.len();
    }
    let mut seen = 0;
    // Records end with '\n'; full records have " F " as their tag.
    let mut end = bytes.len();
    while end > 0 {
        let start = bytes[..end - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        if runtime::parse_record(&bytes[start..end - 1]).is_some_and(|r| r.full) {
            seen += 1;
            if seen > n {
                return end;
            }
        }
        end = start;
    }
    0
}

async fn send_chunk(send: &mut quinn::SendStream, bytes: Vec<u8>) -> bool {
    for c in bytes.chunks(64 * 1024) {
        if write_frame(send, &Ok::<Vec<u8>, ApiError>(c.to_vec()))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

async fn logs(
    dir: &ContainerDir,
    container: &str,
    req: &LogsRequest,
    send: &mut quinn::SendStream,
) {
    let path = if req.previous {
        dir.previous_log()
    } else {
        dir.log()
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        let msg = if req.previous {
            format!(
                "previous terminated container \"{container}\" in pod \"{}\" not found",
                req.name
            )
        } else {
            format!(
                "container \"{container}\" in pod \"{}\" is waiting to start",
                req.name
            )
        };
        let _ = write_frame(
            send,
            &Err::<Vec<u8>, _>(ApiError::new(ErrorCode::BadRequest, msg)),
        )
        .await;
        return;
    };
    let since = req.since_secs.map(|s| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s as i64))
            .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
            .to_string()
    });
    // Only whole records: the last one may still be being written.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let from = req.tail.map_or(0, |n| tail_start(&bytes[..complete], n));
    let (out, used) = render(&bytes[from..], req.timestamps, since.as_deref());
    if !send_chunk(send, out).await {
        return;
    }
    if !req.follow || req.previous {
        return;
    }
    // Follow: new records as they land, until this run ends.
    let started = dir.started();
    let mut offset = (from + used) as u64;
    loop {
        let running = started.as_ref().is_some_and(runtime::running) && dir.exited().is_none();
        let grown = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
        if grown > offset {
            let Ok(all) = tokio::fs::read(&path).await else {
                return;
            };
            let new = &all[(offset as usize).min(all.len())..];
            let (out, used) = render(new, req.timestamps, None);
            offset += used as u64;
            if !send_chunk(send, out).await {
                return;
            }
            continue;
        }
        if !running {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = send.stopped() => return,
        }
    }
}

/// Runs `req`'s command with the container's environment and working
/// directory: stdin from the client's frames, output back as frames, then the
/// exit code.
async fn exec(
    dir: &ContainerDir,
    container: &str,
    req: &ExecRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if req.attach {
        return attach(dir, container, req, send, recv).await;
    }
    let refuse = |msg: String| ExecFrame::Error(ApiError::new(ErrorCode::BadRequest, msg));
    let running = dir.started().as_ref().is_some_and(runtime::running) && dir.exited().is_none();
    let (Some(spec), true) = (dir.spec_of_run(), running) else {
        let msg = format!("container {container} in pod {} is not running", req.name);
        let _ = write_frame(send, &refuse(msg)).await;
        return;
    };
    let Some((prog, args)) = req.command.split_first() else {
        let msg = "you must specify at least one command for the container".to_string();
        let _ = write_frame(send, &refuse(msg)).await;
        return;
    };
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // With a terminal, the command's stdin, stdout and stderr are its pty's
    // slave side, and the session reads and writes the master side; the
    // terminal starts at the client's size (its first frame of one).
    let frames = client_frames(recv);
    tokio::pin!(frames);
    let (size, mut early) = if req.tty {
        size_first(&mut frames).await
    } else {
        (None, std::collections::VecDeque::new())
    };
    let size = size.map(|(width, height)| nix::pty::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = if req.tty {
        match nix::pty::openpty(size.as_ref(), None) {
            Ok(p) => Some(p),
            Err(e) => {
                let msg = format!("allocating a terminal: {e}");
                let _ = write_frame(send, &refuse(msg)).await;
                return;
            }
        }
    } else {
        None
    };
    let slave = |p: &nix::pty::OpenptyResult| -> std::io::Result<std::process::Stdio> {
        Ok(std::process::Stdio::from(p.slave.try_clone()?))
    };
    let stdio = match &pty {
        Some(p) => (|| Ok::<_, std::io::Error>((slave(p)?, slave(p)?, slave(p)?)))(),
        None => Ok((
            if req.stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            },
            std::process::Stdio::piped(),
            std::process::Stdio::piped(),
        )),
    };
    let (stdin_mode, stdout_mode, stderr_mode) = match stdio {
        Ok(s) => s,
        Err(e) => {
            let _ = write_frame(send, &refuse(format!("allocating a terminal: {e}"))).await;
            return;
        }
    };
    // A container with volumes or a pod network has its own namespaces:
    // enter them first (through `ferry nsenter`, a fresh single-threaded process).
    // Through `ferry nsenter` (a fresh single-threaded process): into the
    // container's namespaces and cgroup, and with a terminal its own session.
    let started = dir.started();
    let mut cmd = match (&started, std::env::current_exe()) {
        (Some(s), Ok(ferry)) => {
            let mut c = tokio::process::Command::new(ferry);
            c.arg("nsenter")
                .arg("--pid")
                .arg(s.pid.to_string())
                .arg("--start-ticks")
                .arg(s.start_ticks.to_string())
                .arg("--workdir")
                .arg(&spec.workdir)
                .arg("--cgroups")
                .arg(serde_json::to_string(&spec.cgroups).expect("serializes"));
            if let Some(u) = &spec.user {
                c.arg("--user").arg(u.arg());
            }
            if req.tty {
                c.arg("--tty");
            } else {
                // Out of the agent's group: a Ctrl-C meant for it is not for this.
                c.process_group(0);
            }
            c.arg("--").arg(resolve(prog, &path));
            c
        }
        _ => tokio::process::Command::new(resolve(prog, &path)),
    };
    let child = cmd
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.workdir)
        .stdin(stdin_mode)
        .stdout(stdout_mode)
        .stderr(stderr_mode)
        .kill_on_drop(true)
        .spawn();
    // The builder holds the terminal's slave side: closed here, so the master
    // side reads an end once the command (the only holder left) exits.
    drop(cmd);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let msg = format!("exec: {prog:?}: {e}\n");
            let _ = write_frame(send, &ExecFrame::Stderr(msg.into_bytes())).await;
            let _ = write_frame(send, &ExecFrame::Exit(code)).await;
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExecFrame>(16);
    let pump = |mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>, err: bool| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let b = buf[..n].to_vec();
                let f = if err {
                    ExecFrame::Stderr(b)
                } else {
                    ExecFrame::Stdout(b)
                };
                if tx.send(f).await.is_err() {
                    break;
                }
            }
        })
    };
    // The terminal's master side: output from it, input to it.
    let (mut term_in, term_out) = match pty {
        Some(p) => {
            drop(p.slave);
            let master = std::fs::File::from(p.master);
            match master.try_clone() {
                Ok(m2) => (
                    Some(tokio::fs::File::from_std(m2)),
                    Some(tokio::fs::File::from_std(master)),
                ),
                Err(_) => (None, None),
            }
        }
        None => (None, None),
    };
    let out = match term_out {
        Some(t) => Some(pump(Box::new(t), false)),
        None => child.stdout.take().map(|o| pump(Box::new(o), false)),
    };
    let err = child.stderr.take().map(|o| pump(Box::new(o), true));
    drop(tx);
    let mut stdin = child.stdin.take();
    let input = async {
        loop {
            let f = match early.pop_front() {
                Some(f) => f,
                None => frames.next().await,
            };
            let Some(f) = f else { break };
            let failed = match (f, stdin.as_mut(), term_in.as_mut()) {
                (ExecFrame::Stdin(b), Some(i), _) => i.write_all(&b).await.is_err(),
                (ExecFrame::Stdin(b), None, Some(t)) => {
                    t.write_all(&b).await.is_err() || t.flush().await.is_err()
                }
                (ExecFrame::StdinEnd, _, _) => true,
                // The client's window: the terminal's size (no SIGWINCH: the
                // terminal is not the command's controlling one).
                (ExecFrame::Resize { width, height }, _, Some(t)) => {
                    if let Err(e) = rustix::termios::tcsetwinsize(&*t, winsize(width, height)) {
                        tracing::debug!(error = %e, "exec: setting the terminal size");
                    }
                    false
                }
                _ => false,
            };
            if failed {
                break;
            }
        }
        // Closes the command's stdin; the session ends with its output.
        drop(stdin.take());
        std::future::pending::<()>().await
    };
    tokio::pin!(input);
    loop {
        tokio::select! {
            f = rx.recv() => match f {
                Some(f) => {
                    if write_frame(send, &f).await.is_err() {
                        return; // the client went away: the command is killed on drop
                    }
                }
                None => break,
            },
            _ = &mut input => {}
        }
    }
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    let code = match child.wait().await {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or(128 + s.signal().unwrap_or(0))
        }
        Err(_) => 1,
    };
    let _ = write_frame(send, &ExecFrame::Exit(code)).await;
}

/// `kubectl attach -i`: the client's input into the container's stdin FIFO,
/// the container's output from its log (from now on), and the stream's
/// end (a success) once it ends. With `stdinOnce`, the container's stdin ends when this
/// session's input does.
async fn attach(
    dir: &ContainerDir,
    container: &str,
    req: &ExecRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) {
    let refuse = |msg: String| ExecFrame::Error(ApiError::new(ErrorCode::BadRequest, msg));
    let running = dir.started().as_ref().is_some_and(runtime::running) && dir.exited().is_none();
    let (Some(spec), true) = (dir.spec_of_run(), running) else {
        let msg = format!("container {container} in pod {} is not running", req.name);
        let _ = write_frame(send, &refuse(msg)).await;
        return;
    };
    if !spec.stdin {
        let msg = format!(
            "container {container} in pod {} does not keep its stdin open (its spec has no `stdin: true`)",
            req.name
        );
        let _ = write_frame(send, &refuse(msg)).await;
        return;
    }
    // The shim makes the FIFO just after the container is recorded started:
    // wait for it; opening for writing then waits only for its reader.
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true);
    let fifo_path = dir.stdin_fifo();
    let open = async {
        loop {
            match options.open(&fifo_path).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
    };
    let mut fifo = match tokio::time::timeout(Duration::from_secs(5), open).await {
        Ok(Ok(f)) => Some(f),
        _ => {
            let msg = format!(
                "container {container} in pod {} no longer reads its stdin",
                req.name
            );
            let _ = write_frame(send, &refuse(msg)).await;
            return;
        }
    };
    let log = dir.log();
    let mut pos = tokio::fs::metadata(&log)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let mut partial = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut input_open = true;
    let frames = client_frames(recv);
    tokio::pin!(frames);
    // A `tty: true` container's terminal takes the client's window size (the
    // kernel signals its foreground group); a size that comes before the
    // shim has named its terminal is set on a later tick. Input that comes
    // before the client's first size waits for it (see `size_first`).
    let (first, early) = if spec.tty && req.tty {
        size_first(&mut frames).await
    } else {
        (None, std::collections::VecDeque::new())
    };
    let mut size = first;
    let mut early = early;
    // The shim names its terminal just after it opens the FIFO.
    for _ in 0..40 {
        if !spec.tty || dir.tty_name().exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        if let Some((width, height)) = size {
            if resize_terminal(dir, width, height) {
                size = None;
            }
        }
        let f = match early.pop_front() {
            Some(f) => f,
            None => tokio::select! {
                f = frames.next(), if input_open => f,
                _ = tick.tick() => {
                    if !emit_log(dir, req, &log, &mut pos, &mut partial, send).await {
                        return;
                    }
                    continue;
                }
            },
        };
        match f {
            Some(ExecFrame::Stdin(b)) => write_stdin(&mut fifo, &b).await,
            Some(ExecFrame::Resize { width, height }) if spec.tty => {
                size = Some((width, height));
            }
            Some(ExecFrame::StdinEnd) | None => {
                input_open = false;
                fifo = None;
                if spec.stdin_once {
                    let _ = tokio::fs::write(dir.stdin_closed(), b"").await;
                }
            }
            Some(_) => {}
        }
    }
}
/// Sends the container's log records written since `pos` (whole lines;
/// `partial` keeps the rest); false when the attach is over: the client is
/// gone, or the container has exited (an attach then ends in success, as the
/// kubelet's does: the exit code is the pod's status to read).
async fn emit_log(
    dir: &ContainerDir,
    req: &ExecRequest,
    log: &Path,
    pos: &mut u64,
    partial: &mut Vec<u8>,
    send: &mut quinn::SendStream,
) -> bool {
    let exited = dir.exited();
    if let Ok(bytes) = tokio::fs::read(log).await {
        let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(bytes.len());
        partial.extend_from_slice(&bytes[start..]);
        *pos = bytes.len() as u64;
        while let Some(i) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            let Some(r) = runtime::parse_record(&line[..line.len() - 1]) else {
                continue;
            };
            let mut text = r.text.to_vec();
            if r.full {
                text.push(b'\n');
            }
            let frame = if r.stream == "stderr" && !req.tty {
                ExecFrame::Stderr(text)
            } else {
                ExecFrame::Stdout(text)
            };
            if write_frame(send, &frame).await.is_err() {
                return false;
            }
        }
    }
    if exited.is_some() {
        let _ = write_frame(send, &ExecFrame::Exit(0)).await;
        return false;
    }
    true
}

/// The frames a client sends, as a stream: a `select!` that picks another
/// branch loses no partly read frame (the read goes on at the next poll).
/// It ends with the client's stream (or a bad frame).
fn client_frames<'a>(
    recv: &'a mut quinn::RecvStream,
) -> impl futures_util::Stream<Item = ExecFrame> + 'a {
    futures_util::stream::unfold(recv, |r| async move {
        match read_frame::<_, ExecFrame>(r, 1 << 20).await {
            Ok(Some(f)) => Some((f, r)),
            _ => None,
        }
    })
}

/// kubectl sends a terminal session's first window size and what was typed
/// on separate streams at once, so input may come first: reads frames until
/// the first size (at most `SIZE_WAIT`), and returns it with the frames
/// read before it, in order (`None` for the client's end), so a command
/// that reads its terminal's size never sees 0x0.
async fn size_first<S>(
    frames: &mut std::pin::Pin<&mut S>,
) -> (
    Option<(u16, u16)>,
    std::collections::VecDeque<Option<ExecFrame>>,
)
where
    S: futures_util::Stream<Item = ExecFrame>,
{
    let mut early = std::collections::VecDeque::new();
    let deadline = tokio::time::sleep(SIZE_WAIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return (None, early),
            f = frames.next() => match f {
                Some(ExecFrame::Resize { width, height }) => {
                    return (Some((width, height)), early);
                }
                Some(f) => early.push_back(Some(f)),
                None => {
                    early.push_back(None);
                    return (None, early);
                }
            },
        }
    }
}

fn winsize(width: u16, height: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// How long a terminal session holds the client's input for its first size.
const SIZE_WAIT: Duration = Duration::from_millis(500);

/// Writes an attach's input into the container's stdin FIFO; a FIFO whose
/// reader is gone is dropped.
async fn write_stdin(fifo: &mut Option<tokio::fs::File>, b: &[u8]) {
    use tokio::io::AsyncWriteExt;
    if let Some(w) = fifo.as_mut() {
        if w.write_all(b).await.is_err() || w.flush().await.is_err() {
            *fifo = None;
        }
    }
}

/// Sets the window size of the terminal a `tty: true` container runs on;
/// false while the shim has not named it yet.
fn resize_terminal(dir: &ContainerDir, width: u16, height: u16) -> bool {
    let size = winsize(width, height);
    let set = std::fs::read_to_string(dir.tty_name())
        .map_err(|e| e.to_string())
        .and_then(|name| {
            use std::os::unix::fs::OpenOptionsExt;
            // Never the agent's own controlling terminal.
            let t = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(name.trim())
                .map_err(|e| e.to_string())?;
            rustix::termios::tcsetwinsize(&t, size).map_err(|e| e.to_string())
        });
    match set {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "attach: setting the terminal size");
            false
        }
    }
}

/// The network namespace of the pod whose directory is `pod_dir`: `Ok(None)`
/// when it shares the node's (host mode, `hostNetwork`), an error when no
/// container of the pod has started on this node.
pub fn pod_netns(pod_dir: &Path) -> Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(pod_dir)
        .map_err(|_| "the pod has no containers on this node".to_string())?;
    entries
        .flatten()
        .filter_map(|e| ContainerDir(e.path()).spec_of_run())
        .map(|spec| spec.netns)
        .next()
        .ok_or_else(|| "the pod has no started container on this node".to_string())
}

/// Connects to 127.0.0.1:`port` inside `netns` (on the node when `None`):
/// from a thread of its own that joins the namespace and then ends, since a
/// socket stays in the namespace it was made in.
async fn connect_in(netns: Option<PathBuf>, port: u16) -> Result<tokio::net::TcpStream, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let dial = move || -> Result<std::net::TcpStream, String> {
        if let Some(ns) = &netns {
            let f = std::fs::File::open(ns)
                .map_err(|e| format!("opening network namespace {}: {e}", ns.display()))?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("joining network namespace {}: {e}", ns.display()))?;
        }
        let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("dial tcp4 {addr}: connect: {}", e.kind()))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = tx.send(dial());
        })
        .map_err(|e| e.to_string())?;
    let s = rx
        .await
        .map_err(|_| "the connecting thread died".to_string())??;
    tokio::net::TcpStream::from_std(s).map_err(|e| e.to_string())
}

/// Answers `NodeStream::PortForward`: one frame (connected or why not), then
/// the connection's bytes both ways; each side's end half-closes the other.
async fn port_forward(
    pod_dir: &Path,
    port: u16,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let conn = match pod_netns(pod_dir) {
        Ok(ns) => connect_in(ns, port).await,
        Err(e) => Err(e),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(msg) => {
            let e = ApiError::new(ErrorCode::BadRequest, msg);
            let _ = write_frame(send, &Err::<(), _>(e)).await;
            return;
        }
    };
    if write_frame(send, &Ok::<(), ApiError>(())).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = conn.into_split();
    let inbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            if wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = send.stopped() => return,
            };
            if send.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    };
    tokio::join!(inbound, outbound);
}

/// `prog` looked up in `path` (as a shell would) when it has no '/'.
fn resolve(prog: &str, path: &str) -> PathBuf {
    if prog.contains('/') {
        return PathBuf::from(prog);
    }
    path.split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(prog))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-12-05T01:00:00.000000001Z stdout F one\n\
2026-12-05T01:00:01.000000001Z stderr F two\n\
2026-12-05T01:00:02.000000001Z stdout P thr\n\
2026-12-05T01:00:02.000000002Z stdout F ee\n\
2026-12-05T01:00:03.000000001Z stdout F four\n\
2026-12-05T01:00:04.000000001Z stdout F par";

    #[test]
    fn records_render_with_or_without_timestamps_and_from_a_time() {
        let (out, used) = render(LOG, false, None);
        assert_eq!(String::from_utf8(out).unwrap(), "one\ntwo\nthree\nfour\n");
        assert_eq!(
            used,
            LOG.len() - "2026-12-05T01:00:04.000000001Z stdout F par".len(),
            "the incomplete record waits"
        );
        let (out, _) = render(LOG, true, Some("2026-12-05T01:00:03"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-05T01:00:03.000000001Z four\n"
        );
    }

    #[test]
    fn tail_counts_whole_lines() {
        let full = &LOG[..LOG.len() - "2026-12-05T01:00:04.000000001Z stdout F par".len()];
        let last =
            |n| String::from_utf8(render(&full[tail_start(full, n)..], false, None).0).unwrap();
        assert_eq!(last(1), "four\n");
        assert_eq!(last(2), "three\nfour\n");
        assert_eq!(last(3), "two\nthree\nfour\n");
        assert_eq!(last(10), "one\ntwo\nthree\nfour\n");
        assert_eq!(last(0), "");
    }
}
