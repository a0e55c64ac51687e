//! `ferry exec POD -- CMD`: runs a command in a container, on the node that
//! runs it (through the master holding the node's tunnel), with stdin (`-i`);
//! exits with the command's code.

use crate::client::connect;
use crate::objects::api::Api;
use anyhow::{bail, Result};
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::proto::{ApiRequest, ErrorCode, ExecFrame, ExecRequest};
use ferry_api::{resources, Client};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The pod (NAME or pod/NAME).
    pod: String,
    /// The container (default: the first).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Run the command on a terminal (with -i from a terminal: raw mode here).
    #[arg(short = 't', long)]
    tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Points `client` at the master holding the tunnel of the node that runs
/// pod `name`; returns the pod.
pub async fn route(client: &Client, api: &Api, ns: &str, name: &str) -> Result<Value> {
    let pods = resources::by_cli_name("pods").expect("served");
    let Some(pod) = api.get(pods, Some(ns), name).await? else {
        bail!("pods \"{name}\" not found");
    };
    let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
        bail!("pod {name} is not bound to a node yet");
    };
    let nodes = resources::by_cli_name("nodes").expect("served");
    let tunnel = api.get(nodes, None, node).await?.and_then(|n| {
        n.pointer("/metadata/annotations/ferry.dev~1tunnel-master")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(addr) = tunnel {
        let _ = client.prefer(&addr).await;
    }
    Ok(pod)
}

/// The local terminal in raw mode until dropped.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

/// This terminal's size as a frame (80x24 when stdout is no terminal).
fn window_size() -> ExecFrame {
    let (width, height) = rustix::termios::tcgetwinsize(std::io::stdout())
        .map(|w| (w.ws_col, w.ws_row))
        .unwrap_or((80, 24));
    ExecFrame::Resize { width, height }
}

/// The pod name of `pod/NAME` or `NAME`.
pub fn pod_name(arg: &str) -> String {
    arg.strip_prefix("pod/")
        .or_else(|| arg.strip_prefix("pods/"))
        .unwrap_or(arg)
        .to_string()
}

pub async fn run(a: Args, config: Option<&Path>, namespace: Option<&str>) -> Result<ExitCode> {
    let stdin = a.stdin;
    let r = session(a, config, namespace).await;
    if !stdin {
        return r.map(ExitCode::from);
    }
    // The runtime would wait on its read of stdin at exit (a terminal in raw
    // mode may never end it): leave at once, the terminal restored.
    let _ = std::io::stdout().flush();
    match r {
        Ok(code) => std::process::exit(code.into()),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }
    }
}

/// Runs the command; its exit code.
async fn session(a: Args, config: Option<&Path>, namespace: Option<&str>) -> Result<u8> {
    let client = connect(config)?;
    let api = Api {
        client: client.clone(),
    };
    let ns = namespace.unwrap_or("default").to_string();
    let name = pod_name(&a.pod);
    use std::io::IsTerminal;
    let tty = a.tty && (!a.stdin || std::io::stdin().is_terminal());
    if a.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    // Raw mode while a terminal session runs; restored on the way out.
    let _raw = (tty && a.stdin).then(RawMode::enter).flatten();
    let req = ApiRequest::PodExec(ExecRequest {
        namespace: ns.clone(),
        name: name.clone(),
        container: a.container.clone(),
        command: a.command.clone(),
        stdin: a.stdin,
        tty,
        attach: false,
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        route(&client, &api, &ns, &name).await?;
        let (mut send, mut recv) = client.open_duplex(&req).await?;
        // Stdin, or its end at once.
        let input = if a.stdin {
            Some(tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                use tokio::signal::unix::{signal, SignalKind};
                // A terminal's size goes first and again on every SIGWINCH.
                let mut winch = if tty {
                    signal(SignalKind::window_change()).ok()
                } else {
                    None
                };
                if tty && write_frame(&mut send, &window_size()).await.is_err() {
                    return;
                }
                let mut stdin = tokio::io::stdin();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let frame = tokio::select! {
                        n = stdin.read(&mut buf) => match n {
                            Ok(0) | Err(_) => break,
                            Ok(n) => ExecFrame::Stdin(buf[..n].to_vec()),
                        },
                        Some(()) = async {
                            match winch.as_mut() {
                                Some(w) => w.recv().await,
                                None => std::future::pending().await,
                            }
                        } => window_size(),
                    };
                    if write_frame(&mut send, &frame).await.is_err() {
                        return;
                    }
                }
                let _ = write_frame(&mut send, &ExecFrame::StdinEnd).await;
                let _ = send.finish();
            }))
        } else {
            let _ = write_frame(&mut send, &ExecFrame::StdinEnd).await;
            let _ = send.finish();
            None
        };
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        loop {
            match read_frame::<_, ExecFrame>(&mut recv, 1 << 20).await {
                Ok(Some(ExecFrame::Stdout(b))) => {
                    let _ = out.write_all(&b).and_then(|_| out.flush());
                }
                Ok(Some(ExecFrame::Stderr(b))) => {
                    let _ = err.write_all(&b);
                }
                Ok(Some(ExecFrame::Exit(code))) => {
                    if let Some(i) = input {
                        i.abort();
                    }
                    if code != 0 {
                        eprintln!("command terminated with exit code {code}");
                    }
                    return Ok(code.clamp(0, 255) as u8);
                }
                Ok(Some(ExecFrame::Error(e))) if e.code == ErrorCode::Unavailable => {
                    if Instant::now() > deadline {
                        bail!("{}", e.message);
                    }
                    break; // the node's tunnel moved: look again
                }
                Ok(Some(ExecFrame::Error(e))) => bail!("{}", e.message),
                Ok(Some(_)) => {}
                Ok(None) => bail!("the exec session ended without an exit code"),
                Err(e) => bail!("the exec session broke: {e}"),
            }
        }
        if let Some(i) = input {
            i.abort();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
