//! exec and attach over a direct SPDY/3.1 upgrade (kubectl 1.29 and older),
//! as the kubelet's `remotecommand` server speaks it: the client opens one
//! stream per role (`streamType` error, stdin, stdout, stderr, resize); once
//! every stream the request's `stdin`/`stdout`/`stderr`/`tty` asked for is
//! open, output flows. At the end stdout and stderr are finished and the
//! error stream carries the outcome: with `v4.channel.k8s.io` a `Status`
//! (`NonZeroExitCode` with the code as an `ExitCode` cause), with older
//! protocols the failure's message as text.

use super::spdy::{self, header, Decoder, Encoder, Frame, Headers};
use super::upgrade::Conn;
use ferry_api::proto::ExecFrame;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

/// The protocols served, in the kubelet's order.
pub const PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long the client has to open its streams (the kubelet's default
/// stream-creation timeout).
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long the finished session waits for the client to hang up.
const LINGER: Duration = Duration::from_secs(5);
/// Bytes per DATA frame.
const CHUNK: usize = 32 * 1024;
/// Largest pending resize message.
const MAX_RESIZE: usize = 4096;

/// What the request asked for (its query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The streams the client opened, by role.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecStreams {
    pub error: Option<u32>,
    pub stdin: Option<u32>,
    pub stdout: Option<u32>,
    pub stderr: Option<u32>,
    pub resize: Option<u32>,
}

impl ExecStreams {
    /// Records a stream from its SYN_STREAM headers; an error for a stream
    /// type this protocol does not have, or a second stream of one role.
    pub fn add(&mut self, stream: u32, headers: &Headers, protocol: &str) -> Result<(), String> {
        let slot = match header(headers, "streamtype") {
            Some("error") => &mut self.error,
            Some("stdin") => &mut self.stdin,
            Some("stdout") => &mut self.stdout,
            Some("stderr") => &mut self.stderr,
            Some("resize") if resizes(protocol) => &mut self.resize,
            Some(t) => return Err(format!("unexpected stream type: {t:?}")),
            None => return Err("streamType header is required".into()),
        };
        if slot.is_some() {
            return Err(format!(
                "a {} stream is already open",
                header(headers, "streamtype").unwrap_or_default()
            ));
        }
        *slot = Some(stream);
        Ok(())
    }

    /// Whether every stream the request needs is open: the error stream, one
    /// per requested stdio, and the resize stream for a tty when the
    /// protocol has one.
    pub fn complete(&self, e: Expect, protocol: &str) -> bool {
        self.error.is_some()
            && (!e.stdin || self.stdin.is_some())
            && (!e.stdout || self.stdout.is_some())
            && (!e.stderr || self.stderr.is_some())
            && (!(e.tty && resizes(protocol)) || self.resize.is_some())
    }
}

/// Whether the protocol carries terminal sizes (v3 and v4).
fn resizes(protocol: &str) -> bool {
    matches!(protocol, "v4.channel.k8s.io" | "v3.channel.k8s.io")
}

/// A terminal size as kubectl sends it (`{"Width":80,"Height":24}`; Go
/// matches field names without regard to case).
#[derive(serde::Deserialize)]
struct Size {
    #[serde(rename = "Width", alias = "width")]
    width: u16,
    #[serde(rename = "Height", alias = "height")]
    height: u16,
}

/// One JSON terminal size (a WebSocket channel-4 message's body).
pub fn parse_size(b: &[u8]) -> Option<ExecFrame> {
    let s: Size = serde_json::from_slice(b).ok()?;
    Some(ExecFrame::Resize {
        width: s.width,
        height: s.height,
    })
}

/// Takes the complete newline-ended sizes from `buf` (the resize stream's
/// bytes so far: kubectl's JSON encoder ends each with a newline); bad ones
/// are skipped.
pub fn take_sizes(buf: &mut Vec<u8>) -> Vec<ExecFrame> {
    let Some(last) = buf.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let done: Vec<u8> = buf.drain(..=last).collect();
    done.split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter_map(parse_size)
        .collect()
}

/// The error stream's last bytes for an outcome `status` (a `Status` object).
pub fn error_body(status: &Value, protocol: &str) -> Vec<u8> {
    if protocol == "v4.channel.k8s.io" {
        return serde_json::to_vec(status).unwrap_or_default();
    }
    if status["status"] == "Success" {
        return Vec::new();
    }
    status["message"]
        .as_str()
        .unwrap_or("error executing command")
        .as_bytes()
        .to_vec()
}

/// What the node's side of the session says.
pub enum Out {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The outcome, a `Status` object; the session ends.
    End(Value),
}

/// Runs one session until it ends: `from_node` is the command's output and
/// outcome, `to_node` (exec only) takes its input and window sizes.
pub async fn run(
    mut conn: Conn,
    protocol: &'static str,
    expect: Expect,
    mut from_node: mpsc::Receiver<Out>,
    to_node: Option<mpsc::UnboundedSender<ExecFrame>>,
) {
    let mut dec = Decoder::default();
    let mut enc = Encoder::default();
    let mut streams = ExecStreams::default();
    let mut sizes = Vec::new();
    let wait = tokio::time::sleep(STREAM_WAIT);
    tokio::pin!(wait);
    let send = |f: ExecFrame| {
        if let Some(t) = &to_node {
            let _ = t.send(f);
        }
    };
    let outcome = 'session: loop {
        let ready = streams.complete(expect, protocol);
        let mut replies: Vec<Frame> = Vec::new();
        tokio::select! {
            bytes = conn.recv() => {
                let Some(bytes) = bytes else { break 'session None };
                dec.push(&bytes);
                loop {
                    let frame = match dec.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "exec: bad SPDY input");
                            break 'session None;
                        }
                    };
                    match frame {
                        Frame::SynStream { stream, headers, .. } => {
                            match streams.add(stream, &headers, protocol) {
                                Ok(()) => replies.push(Frame::SynReply {
                                    stream,
                                    fin: false,
                                    headers: Vec::new(),
                                }),
                                Err(msg) => {
                                    tracing::debug!(stream, %msg, "exec: stream refused");
                                    replies.push(Frame::RstStream {
                                        stream,
                                        status: spdy::PROTOCOL_ERROR,
                                    });
                                }
                            }
                        }
                        Frame::Data { stream, fin, data } => {
                            if Some(stream) == streams.stdin {
                                if !data.is_empty() {
                                    send(ExecFrame::Stdin(data));
                                }
                                if fin {
                                    send(ExecFrame::StdinEnd);
                                }
                            } else if Some(stream) == streams.resize {
                                sizes.extend_from_slice(&data);
                                take_sizes(&mut sizes).into_iter().for_each(send);
                                if sizes.len() > MAX_RESIZE {
                                    sizes.clear();
                                }
                            }
                        }
                        Frame::RstStream { stream, .. } if Some(stream) == streams.stdin => {
                            send(ExecFrame::StdinEnd);
                        }
                        Frame::Ping(id) => replies.push(Frame::Ping(id)),
                        Frame::GoAway { .. } => break 'session None,
                        _ => {}
                    }
                }
            }
            out = from_node.recv(), if ready => match out {
                Some(Out::Stdout(b)) => push_data(&mut replies, streams.stdout, b),
                Some(Out::Stderr(b)) => push_data(&mut replies, streams.stderr.or(streams.stdout), b),
                Some(Out::End(status)) => break 'session Some(status),
                None => break 'session Some(ferry_api::object::Status::internal(
                    "the exec stream from the node ended without an exit code",
                ).to_json()),
            },
            _ = &mut wait, if !ready => {
                tracing::debug!("exec: timed out waiting for the client to create streams");
                break 'session None;
            }
        }
        for f in replies {
            if conn.send(enc.encode(&f)).await.is_err() {
                break 'session None;
            }
        }
    };
    let Some(status) = outcome else {
        conn.close().await;
        return;
    };
    // Output streams end first; kubectl then reads the error stream to its end.
    let mut last = Vec::new();
    for s in [streams.stdout, streams.stderr].into_iter().flatten() {
        last.push(Frame::Data {
            stream: s,
            fin: true,
            data: Vec::new(),
        });
    }
    if let Some(s) = streams.error {
        last.push(Frame::Data {
            stream: s,
            fin: true,
            data: error_body(&status, protocol),
        });
    }
    for f in last {
        if conn.send(enc.encode(&f)).await.is_err() {
            return;
        }
    }
    // Closing at once could reset the connection (and lose the answer) while
    // the client's input is still arriving: let it hang up first.
    let _ = tokio::time::timeout(LINGER, async { while conn.recv().await.is_some() {} }).await;
    conn.close().await;
}

/// Queues `b` as DATA frames on `stream` (dropped when the client opened none).
fn push_data(replies: &mut Vec<Frame>, stream: Option<u32>, b: Vec<u8>) {
    let Some(stream) = stream else { return };
    for c in b.chunks(CHUNK) {
        replies.push(Frame::Data {
            stream,
            fin: false,
            data: c.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(t: &str) -> Headers {
        vec![("streamtype".to_string(), t.to_string())]
    }

    #[test]
    fn streams_pair_by_type_until_the_request_is_covered() {
        let v4 = "v4.channel.k8s.io";
        let v2 = "v2.channel.k8s.io";
        let all = Expect {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let tty = Expect {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        let out_only = Expect {
            stdout: true,
            stderr: true,
            ..Expect::default()
        };
        // (name, protocol, expect, streams opened in order, complete after each)
        type Case<'a> = (&'a str, &'a str, Expect, &'a [&'a str], &'a [bool]);
        let cases: &[Case] = &[
            (
                "exec -i",
                v4,
                all,
                &["error", "stdin", "stdout", "stderr"],
                &[false, false, false, true],
            ),
            (
                "exec without stdin",
                v4,
                out_only,
                &["error", "stdout", "stderr"],
                &[false, false, true],
            ),
            (
                "exec -it waits for resize",
                v4,
                tty,
                &["error", "stdin", "stdout", "resize"],
                &[false, false, false, true],
            ),
            (
                "order does not matter",
                v4,
                out_only,
                &["stderr", "stdout", "error"],
                &[false, false, true],
            ),
            (
                "v2 has no resize stream",
                v2,
                tty,
                &["error", "stdin", "stdout"],
                &[false, false, true],
            ),
        ];
        for (name, proto, expect, opened, after) in cases {
            let mut s = ExecStreams::default();
            for (i, (t, want)) in opened.iter().zip(after.iter()).enumerate() {
                s.add(1 + 2 * i as u32, &h(t), proto)
                    .unwrap_or_else(|e| panic!("{name}: {t}: {e}"));
                assert_eq!(s.complete(*expect, proto), *want, "{name}: after {t}");
            }
        }
        let mut s = ExecStreams::default();
        s.add(1, &h("error"), v4).unwrap();
        s.add(3, &h("stdout"), v4).unwrap();
        assert_eq!((s.error, s.stdout), (Some(1), Some(3)));
        assert!(s.add(5, &h("error"), v4).is_err(), "a second error stream");
        assert!(s.add(7, &h("resize"), v2).is_err(), "resize under v2");
        assert!(s.add(9, &h("data"), v4).is_err(), "a port-forward type");
        assert!(s.add(11, &Vec::new(), v4).is_err(), "no type");
        assert_eq!(s.error, Some(1));
    }

    #[test]
    fn sizes_are_read_per_line() {
        let mut buf = b"{\"Width\":80,\"Height\":24}\n{\"width\":1".to_vec();
        assert_eq!(
            take_sizes(&mut buf),
            vec![ExecFrame::Resize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(buf, b"{\"width\":1");
        buf.extend_from_slice(b"00,\"height\":50}\nnot json\n");
        assert_eq!(
            take_sizes(&mut buf),
            vec![ExecFrame::Resize {
                width: 100,
                height: 50
            }]
        );
        assert!(buf.is_empty());
        assert_eq!(take_sizes(&mut b"{\"Width\":3".to_vec()), vec![]);
    }

    #[test]
    fn the_error_stream_carries_the_outcome_per_protocol() {
        let ok = serde_json::json!({ "metadata": {}, "status": "Success" });
        let failed = serde_json::json!({
            "status": "Failure",
            "message": "command terminated with non-zero exit code: exit code 3",
            "reason": "NonZeroExitCode",
            "details": { "causes": [ { "reason": "ExitCode", "message": "3" } ] },
        });
        let v4: Value = serde_json::from_slice(&error_body(&failed, "v4.channel.k8s.io")).unwrap();
        assert_eq!(v4, failed);
        assert_eq!(
            serde_json::from_slice::<Value>(&error_body(&ok, "v4.channel.k8s.io")).unwrap(),
            ok
        );
        assert_eq!(error_body(&ok, "v2.channel.k8s.io"), b"");
        assert_eq!(
            error_body(&failed, "channel.k8s.io"),
            b"command terminated with non-zero exit code: exit code 3"
        );
    }
}
