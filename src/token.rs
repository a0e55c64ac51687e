//! `ferry token create|list|delete`: bootstrap tokens for nodes to join with.

use crate::client::connect;
use crate::objects::api::Api;
use anyhow::{bail, Context, Result};
use ferry_api::object::ListOptions;
use ferry_api::resources;
use ferry_api::token::{self, BootstrapToken, TokenSecret};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Create a token and print it (and, with --print-join-command, how a node joins).
    Create {
        /// How long it is valid: 30m, 24h, 7d; 0 never expires.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Duration,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Print the whole `ferry node` command a node joins with.
        #[arg(long)]
        print_join_command: bool,
    },
    /// List the tokens: id, time to live, expiry, usages, description.
    List,
    /// Delete a token (by id, or the whole token).
    Delete {
        /// The token's id (or `<id>.<secret>`).
        id: String,
    },
}

/// Parses `30s`, `30m`, `24h`, `7d` (or `0`: no expiry).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (use s, m, h or d, as in 24h)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} must start with a whole number, as in 24h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

fn secrets() -> &'static resources::Resource {
    resources::by_cli_name("secrets").expect("secrets are served")
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    let api = Api {
        client: client.clone(),
    };
    match cmd {
        Cmd::Create {
            ttl,
            description,
            print_join_command,
        } => {
            let t = BootstrapToken::generate();
            let expiration = (!ttl.is_zero()).then(|| {
                let at =
                    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl.as_secs() as i64);
                at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            });
            let secret = t.to_secret(expiration.as_deref(), description.as_deref());
            api.create(secrets(), Some(token::NAMESPACE), &secret)
                .await
                .context("creating the token's secret")?;
            if print_join_command {
                outln!("{}", join_command(&t, client.masters()));
            } else {
                outln!("{t}");
            }
        }
        Cmd::List => {
            let (items, _) = api
                .list(secrets(), Some(token::NAMESPACE), &ListOptions::default())
                .await?;
            let now = jiff::Timestamp::now();
            let mut rows = vec![[
                "TOKEN".to_string(),
                "TTL".into(),
                "EXPIRES".into(),
                "USAGES".into(),
                "DESCRIPTION".into(),
            ]];
            for s in &items {
                if s.get("type").and_then(|v| v.as_str()) != Some(token::SECRET_TYPE) {
                    continue;
                }
                let Ok(t) = TokenSecret::from_secret(s) else {
                    continue;
                };
                let ttl = match &t.expiration {
                    None => "<forever>".to_string(),
                    Some(e) => match e.parse::<jiff::Timestamp>() {
                        Ok(at) if at > now => {
                            ferry_api::printers::age::human_duration((at - now).get_seconds())
                        }
                        Ok(_) => "<expired>".into(),
                        Err(_) => "<invalid>".into(),
                    },
                };
                rows.push([
                    // As kubeadm lists them: the secret half hidden.
                    format!("{}.<secret>", t.token.id),
                    ttl,
                    t.expiration.clone().unwrap_or_else(|| "<never>".into()),
                    t.usages.join(","),
                    t.description.clone().unwrap_or_else(|| "<none>".into()),
                ]);
            }
            if rows.len() == 1 {
                eprintln!("No bootstrap tokens found.");
                return Ok(ExitCode::SUCCESS);
            }
            let widths: Vec<usize> = (0..5)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                outln!("{}", line.join("   ").trim_end());
            }
        }
        Cmd::Delete { id } => {
            let id = id.split('.').next().unwrap_or_default().to_string();
            if id.len() != 6
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                bail!("{id:?} is not a bootstrap token id (6 characters from a-z and 0-9)");
            }
            match api
                .delete(
                    secrets(),
                    Some(token::NAMESPACE),
                    &token::secret_name(&id),
                    &serde_json::json!({}),
                )
                .await
            {
                Ok(_) => outln!("bootstrap token {id:?} deleted"),
                Err(e) if crate::objects::api::status_of(&e).is_some_and(|s| s.code == 404) => {
                    bail!("bootstrap token {id:?} not found")
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The command a node joins with.
pub fn join_command(t: &BootstrapToken, masters: &[String]) -> String {
    format!(
        "ferry node --data-dir /var/lib/ferry-node --join {} --token {t}",
        masters.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units_and_errors_name_the_problem() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_ttl("0").unwrap(), Duration::ZERO);
        assert!(parse_ttl("24").unwrap_err().contains("no unit"));
        assert!(parse_ttl("h").unwrap_err().contains("whole number"));
        assert!(parse_ttl("3w").unwrap_err().contains("unknown unit"));
    }
}
