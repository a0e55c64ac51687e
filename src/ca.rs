//! `ferry ca status|rotate`: rotating the cluster CA in steps, with no
//! downtime (see `ferry_api::carotation`).

use crate::client::{config_path, connect};
use anyhow::{bail, Context, Result};
use ferry_api::proto::{ApiRequest, ApiResponse};
use ferry_config::ClientConfig;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Where a CA rotation stands: the step, the CAs trusted, each master's
    /// and node's certificates, and what would hold the next step back.
    Status,
    /// Take the next step of a CA rotation: `trust` (a new CA, trusted by
    /// every master and node beside the old), `reissue` (every master and
    /// node gets a certificate of the new CA), `drop` (the old CA is trusted
    /// no more). Each step rewrites this client config (the admin's) with
    /// the CAs trusted and, from `reissue` on, an admin certificate of the
    /// new CA; re-create kubeconfigs (`ferry kubeconfig`) after `reissue`.
    Rotate {
        /// trust, reissue or drop, in that order.
        #[arg(long, value_parser = ["trust", "reissue", "drop"])]
        step: String,
    },
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    match cmd {
        Cmd::Status => {
            let ApiResponse::CaStatus(s) = client.call(&ApiRequest::CaStatus).await? else {
                bail!("unexpected answer to a CA status request");
            };
            match &s.step {
                None => outln!("step: none (the cluster has never rotated its CA)"),
                Some(step) => outln!("step: {step}"),
            }
            for (i, (hash, pem)) in s.trusted.iter().enumerate() {
                let until = ferry_api::tls::validity(pem)
                    .ok()
                    .and_then(|(_, to)| jiff::Timestamp::try_from(to).ok())
                    .map_or("?".to_string(), |t| t.to_string());
                let role = if i == 0 { "issuing" } else { "trusted" };
                outln!("CA {role}: sha256:{hash} (valid until {until})");
            }
            for (name, report) in &s.members {
                let line = match report {
                    None => "no report".to_string(),
                    Some(r) => format!(
                        "trusts {}; certificate from {}",
                        r.trusts
                            .iter()
                            .map(|h| format!("sha256:{}", short(h)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if r.issuer.is_empty() {
                            "an unknown CA".to_string()
                        } else {
                            format!("sha256:{}", short(&r.issuer))
                        }
                    ),
                };
                outln!("  {name}: {line}");
            }
            for b in &s.blocking {
                outln!("next step waits: {b}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rotate { step } => {
            let resp = client.call(&ApiRequest::CaRotate { step }).await?;
            let ApiResponse::CaRotated {
                step,
                trust,
                admin_cert,
                admin_key,
            } = resp
            else {
                bail!("unexpected answer to a CA rotation step");
            };
            let path = config_path(config);
            let mut cfg = ClientConfig::load(&path)?;
            cfg.ca_cert = trust;
            if step != "trust" {
                cfg.client_cert = admin_cert;
                cfg.client_key = admin_key;
            }
            ferry_api::files::write_private(&path, cfg.to_toml().as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            outln!("CA rotation: step {step} taken");
            outln!("rewrote {} with the CAs trusted now", path.display());
            match step.as_str() {
                "trust" => outln!(
                    "next, once `ferry ca status` shows every member trusting the new CA: ferry ca rotate --step reissue"
                ),
                "reissue" => outln!(
                    "next, once `ferry ca status` shows every member on the new CA: ferry ca rotate --step drop\n\
                     other admin configs and kubeconfigs of the old CA stop working at the drop: re-create them (ferry kubeconfig)"
                ),
                _ => outln!("the old CA is trusted no more"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}
