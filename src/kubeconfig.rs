//! `ferry kubeconfig`: a kubeconfig for kubectl and client libraries, made from
//! the admin client config (the same certificate, for the HTTPS API).

use crate::client::config_path;
use anyhow::{Context, Result};
use ferry_actors::master::identity::write_private;
use ferry_config::ClientConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The API server URL (default: the client config's `api_server`, which
    /// `ferry up` sets to its local endpoint, else https:// and the first
    /// master's address, where masters serve HTTPS by default).
    #[arg(long)]
    server: Option<String>,
    /// Write it to this file (mode 0600) instead of printing it.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

pub fn run(a: Args, config: Option<&Path>) -> Result<ExitCode> {
    let path = config_path(config);
    let cfg = ClientConfig::load(&path)
        .with_context(|| format!("reading the client config {}", path.display()))?;
    let server = match a.server.or(cfg.api_server.clone()) {
        Some(s) if s.starts_with("https://") => s,
        Some(s) => anyhow::bail!("--server {s:?}: must be an https:// URL"),
        None => format!(
            "https://{}",
            cfg.masters
                .first()
                .context("the client config lists no master")?
        ),
    };
    let text = ferry_api::kubeconfig::render(
        &server,
        &cfg.ca_cert,
        &cfg.client_cert,
        &cfg.client_key,
        "admin",
    );
    match a.output {
        Some(out) => {
            write_private(&out, text.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} (kubectl --kubeconfig {} get nodes)",
                out.display(),
                out.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
