//! `ferry ca status|rotate`: rotating the cluster CA in steps, with no
//! downtime (see `ferry_api::carotation`).

use crate::client::{config_path, connect};
use anyhow::{bail, Context, Result};
use ferry_api::proto::{ApiRequest, ApiResponse};
use ferry_config::ClientConfig;
use std::path::{Path, PathBuf};
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
    /// new CA — and so every copy of the same admin credentials `ferry up`
    /// and `ferry kubeconfig` keep beside it or in ~/.ferry (`admin.conf`,
    /// `kubeconfig`, `config`, `local/`); other kubeconfigs (`ferry
    /// kubeconfig --user`) are made again after `reissue`.
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
            let old_cert = cfg.client_cert.clone();
            cfg.ca_cert = trust;
            if step != "trust" {
                cfg.client_cert = admin_cert;
                cfg.client_key = admin_key;
            }
            ferry_api::files::write_private(&path, cfg.to_toml().as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            outln!("CA rotation: step {step} taken");
            outln!("rewrote {} with the CAs trusted now", path.display());
            let mut failed = false;
            for copy in copies(&path) {
                match rewrite_copy(&copy, &old_cert, &cfg) {
                    Ok(true) => outln!("rewrote {} (the same admin credentials)", copy.display()),
                    Ok(false) => {}
                    Err(e) => {
                        failed = true;
                        let again = if copy.file_name().is_some_and(|n| n == "kubeconfig") {
                            format!(
                                "ferry --config {} kubeconfig -o {}",
                                path.display(),
                                copy.display()
                            )
                        } else {
                            format!("cp {} {}", path.display(), copy.display())
                        };
                        eprintln!(
                            "ferry: {} holds the admin credentials but was not rewritten: {e:#}; make it again: {again}",
                            copy.display()
                        );
                    }
                }
            }
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
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Where copies of the admin credentials of the client config at `path`
/// may be: `ferry up`'s files beside it (`admin.conf`, `kubeconfig`) and in
/// ~/.ferry (`config`, `local/admin.conf`, `local/kubeconfig`), `path`
/// itself left out.
fn copies(path: &Path) -> Vec<PathBuf> {
    let home = crate::client::ferry_home();
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(dir) = path.parent() {
        out.push(dir.join("admin.conf"));
        out.push(dir.join("kubeconfig"));
    }
    out.push(home.join("config"));
    out.push(home.join("local").join("admin.conf"));
    out.push(home.join("local").join("kubeconfig"));
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let mut seen: Vec<PathBuf> = vec![path.to_path_buf()];
    out.retain(|p| {
        let new = p.exists() && !seen.iter().any(|s| same(s, p));
        if new {
            seen.push(p.clone());
        }
        new
    });
    out
}

/// Rewrites `copy` — a client config or a kubeconfig — when it holds the
/// admin certificate `old_cert`: the CAs and credentials of `now`.
/// `Ok(false)`: it holds other credentials, or is neither.
fn rewrite_copy(copy: &Path, old_cert: &str, now: &ClientConfig) -> Result<bool> {
    let text = std::fs::read_to_string(copy)?;
    let new_text = if let Ok(mut cfg) = toml::from_str::<ClientConfig>(&text) {
        if cfg.client_cert.trim() != old_cert.trim() {
            return Ok(false);
        }
        cfg.ca_cert = now.ca_cert.clone();
        cfg.client_cert = now.client_cert.clone();
        cfg.client_key = now.client_key.clone();
        cfg.to_toml()
    } else {
        match ferry_api::kubeconfig::rekey(
            &text,
            old_cert,
            &now.ca_cert,
            &now.client_cert,
            &now.client_key,
        ) {
            Ok(Some(t)) => t,
            // Another's credentials, or not a kubeconfig: not ours to touch.
            Ok(None) | Err(_) => return Ok(false),
        }
    };
    ferry_api::files::write_private(copy, new_text.as_bytes())
        .with_context(|| format!("writing {}", copy.display()))?;
    Ok(true)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}
