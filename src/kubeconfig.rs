//! `ferry kubeconfig`: a kubeconfig for kubectl and client libraries, made from
//! the admin client config (the same certificate, for the HTTPS API), or for a
//! new user (`--user NAME [--group G ...] [--ttl 24h]`): a key made here and a
//! certificate for `user:NAME` the cluster CA signs (admin only).

use crate::client::config_path;
use anyhow::{Context, Result};
use ferry_actors::master::identity::write_private;
use ferry_api::proto::{ApiRequest, ApiResponse};
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
    /// A kubeconfig for this user instead of the admin (a new key and certificate).
    #[arg(long)]
    user: Option<String>,
    /// The user's groups (repeat the flag); with --user.
    #[arg(long = "group", requires = "user")]
    groups: Vec<String>,
    /// How long the user's certificate is valid: 30m, 24h, 7d (10 minutes to 10 years).
    #[arg(long, default_value = "24h", value_parser = crate::token::parse_ttl, requires = "user")]
    ttl: std::time::Duration,
}

pub async fn run(a: Args, config: Option<&Path>) -> Result<ExitCode> {
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
    let text = match &a.user {
        None => ferry_api::kubeconfig::render(
            &server,
            &cfg.ca_cert,
            &cfg.client_cert,
            &cfg.client_key,
            "admin",
        ),
        Some(name) => {
            if a.ttl.is_zero() {
                anyhow::bail!("--ttl 0: a user certificate needs a lifetime (10m to 10 years)");
            }
            let (key, csr) = ferry_api::tls::new_csr()?;
            let client = ferry_api::Client::new(&cfg)?;
            let req = ApiRequest::IssueUserCert {
                csr,
                name: name.clone(),
                groups: a.groups.clone(),
                lifetime_secs: a.ttl.as_secs(),
            };
            match client.call(&req).await? {
                ApiResponse::UserCert { cert, ca_cert } => {
                    ferry_api::kubeconfig::render(&server, &ca_cert, &cert, &key, name)
                }
                other => anyhow::bail!("unexpected answer to the certificate request: {other:?}"),
            }
        }
    };
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
