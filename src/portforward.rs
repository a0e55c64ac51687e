//! `ferry port-forward POD [LOCAL:]REMOTE...`: listens on local ports and
//! carries each connection to the port on the pod's loopback, through the
//! master holding its node's tunnel (`ApiRequest::PodPortForward`), until
//! interrupted.

use crate::client::connect;
use crate::exec::{pod_name, route};
use crate::objects::api::Api;
use anyhow::{bail, Context, Result};
use ferry_api::frame::read_frame;
use ferry_api::proto::{ApiError, ApiRequest, ErrorCode, PortForwardRequest};
use ferry_api::Client;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args)]
pub struct Args {
    /// The pod (NAME or pod/NAME).
    pod: String,
    /// Ports: REMOTE (the same locally), LOCAL:REMOTE, or :REMOTE (any free local port).
    #[arg(required = true)]
    ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
}

/// A `[LOCAL:]REMOTE` argument as kubectl reads it: `(local, remote)`, local 0
/// for any free port.
pub fn parse_ports(arg: &str) -> Result<(u16, u16), String> {
    let (local, remote) = match arg.split_once(':') {
        Some((l, r)) => (l, r),
        None => (arg, arg),
    };
    let local = if local.is_empty() {
        0
    } else {
        local
            .parse::<u16>()
            .map_err(|e| format!("Error parsing local port '{local}': {e}"))?
    };
    let remote = remote
        .parse::<u16>()
        .map_err(|e| format!("Error parsing remote port '{remote}': {e}"))?;
    if remote == 0 {
        return Err(format!("Remote port must be > 0: '{arg}'"));
    }
    Ok((local, remote))
}

pub async fn run(a: Args, config: Option<&Path>, namespace: Option<&str>) -> Result<ExitCode> {
    let ports = a
        .ports
        .iter()
        .map(|p| parse_ports(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let client = connect(config)?;
    let api = Api {
        client: client.clone(),
    };
    let ns = namespace.unwrap_or("default").to_string();
    let name = pod_name(&a.pod);
    let pod = route(&client, &api, &ns, &name).await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    if phase != "Running" {
        bail!("unable to forward port because pod is not running. Current status={phase}");
    }
    for (local, remote) in ports {
        let listener = tokio::net::TcpListener::bind((a.address.as_str(), local))
            .await
            .with_context(|| format!("unable to listen on {}:{local}", a.address))?;
        let at = listener.local_addr()?;
        println!("Forwarding from {at} -> {remote}");
        let (client, ns, name) = (client.clone(), ns.clone(), name.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                println!("Handling connection for {}", at.port());
                let (client, ns, name) = (client.clone(), ns.clone(), name.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&client, &ns, &name, remote, conn).await {
                        eprintln!("error forwarding {} -> {remote}: {e:#}", at.port());
                    }
                });
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}

/// Carries one local connection to `port` in the pod.
async fn forward(
    client: &Arc<Client>,
    ns: &str,
    name: &str,
    port: u16,
    mut conn: tokio::net::TcpStream,
) -> Result<()> {
    let req = ApiRequest::PodPortForward(PortForwardRequest {
        namespace: ns.to_string(),
        name: name.to_string(),
        port,
    });
    // Twice at most: the node's tunnel may have moved to another master.
    let mut tries = 0;
    let (mut send, mut recv) = loop {
        tries += 1;
        let (send, mut recv) = client.open_duplex(&req).await?;
        match read_frame::<_, Result<(), ApiError>>(&mut recv, 1 << 16).await? {
            Some(Ok(())) => break (send, recv),
            Some(Err(e)) if e.code == ErrorCode::Unavailable && tries < 2 => {
                let api = Api {
                    client: client.clone(),
                };
                route(client, &api, ns, name).await?;
            }
            Some(Err(e)) => bail!("{}", e.message),
            None => bail!("the master ended the stream"),
        }
    };
    let (mut rd, mut wr) = conn.split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = send.finish();
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            if wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    // The pod's side ending ends the connection; ours may end first.
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ports;

    #[test]
    fn ports_parse_as_kubectl_reads_them() {
        let ok: &[(&str, (u16, u16))] = &[
            ("8080", (8080, 8080)),
            ("18080:8080", (18080, 8080)),
            (":8080", (0, 8080)),
            ("0:80", (0, 80)),
        ];
        for (arg, want) in ok {
            assert_eq!(parse_ports(arg), Ok(*want), "{arg}");
        }
        let bad: &[(&str, &str)] = &[
            ("x:80", "Error parsing local port 'x'"),
            ("80:y", "Error parsing remote port 'y'"),
            ("70000", "Error parsing local port '70000'"),
            ("8080:0", "Remote port must be > 0: '8080:0'"),
            ("", "Error parsing remote port ''"),
        ];
        for (arg, want) in bad {
            let e = parse_ports(arg).unwrap_err();
            assert!(e.starts_with(want), "{arg}: {e}");
        }
    }
}
