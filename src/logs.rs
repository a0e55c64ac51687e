//! `ferry logs POD`: a container's output, from the node that runs it (through
//! the master holding the node's tunnel).

use crate::client::connect;
use crate::objects::api::Api;
use anyhow::{bail, Result};
use ferry_api::frame::read_frame;
use ferry_api::proto::{ApiError, ApiRequest, ErrorCode, LogsRequest};
use ferry_api::resources;
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
    /// Stream new output until the container's run ends.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous run's output.
    #[arg(short = 'p', long)]
    previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Only output newer than this (5s, 2m, 3h).
    #[arg(long, value_parser = crate::token::parse_ttl)]
    since: Option<Duration>,
    /// Prefix each line with its time (RFC 3339).
    #[arg(long)]
    timestamps: bool,
}

pub async fn run(a: Args, config: Option<&Path>, namespace: Option<&str>) -> Result<ExitCode> {
    let client = connect(config)?;
    let api = Api {
        client: client.clone(),
    };
    let ns = namespace.unwrap_or("default");
    let name = crate::exec::pod_name(&a.pod);
    let pods = resources::by_cli_name("pods").expect("served");
    let Some(pod) = api.get(pods, Some(ns), &name).await? else {
        bail!("pods \"{name}\" not found");
    };
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    if a.container.is_none() && containers.len() > 1 {
        eprintln!(
            "Defaulted container \"{}\" out of: {}",
            containers[0],
            containers.join(", ")
        );
    }
    let req = ApiRequest::PodLogs(LogsRequest {
        namespace: ns.to_string(),
        name: name.clone(),
        container: a.container.clone(),
        follow: a.follow,
        tail: u64::try_from(a.tail).ok(),
        previous: a.previous,
        timestamps: a.timestamps,
        since_secs: a.since.map(|d| d.as_secs()),
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = std::io::stdout().lock();
    loop {
        // The node's tunnel is on one master: ask that one.
        crate::exec::route(&client, &api, ns, &name).await?;
        let mut stream = client.open_stream(&req).await?;
        let mut wrote = false;
        loop {
            match read_frame::<_, Result<Vec<u8>, ApiError>>(&mut stream, 1 << 20).await {
                Ok(Some(Ok(bytes))) => {
                    wrote = true;
                    if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
                        return Ok(ExitCode::SUCCESS); // stdout closed
                    }
                }
                Ok(Some(Err(e))) if e.code == ErrorCode::Unavailable && !wrote => {
                    if Instant::now() > deadline {
                        bail!("{}", e.message);
                    }
                    break; // the tunnel moved: look again
                }
                Ok(Some(Err(e))) => bail!("{}", e.message),
                Ok(None) => return Ok(ExitCode::SUCCESS),
                Err(e) => bail!("the log stream broke: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
