//! `ferry cluster status|remove|replace`.

use crate::client::connect;
use anyhow::Result;
use ferry_api::proto::{ApiRequest, ApiResponse};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Members, leader, term, commit and applied index, and each member's lag
    /// and health: reachable from the leader or not, its last contact with the
    /// leader, and how long an unreachable one has been gone.
    Status {
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Remove master ID from the cluster.
    Remove {
        id: u64,
        /// Allow leaving an even number of voters.
        #[arg(long)]
        force: bool,
    },
    /// Swap dead voter DEAD_ID for a new master in one membership change. Start
    /// the new master first with `ferry master --listen ADDR --join LIVE_MASTER
    /// --token TOKEN` (without --force: it joins as a learner); this waits
    /// until it has caught up, then makes it a voter and removes DEAD_ID in one
    /// joint change, so the number of voters never changes.
    Replace {
        /// The id of the dead voter (`ferry cluster status`).
        dead_id: u64,
        /// The QUIC address of the new master, which has joined as a learner.
        #[arg(long = "with", value_name = "ADDR")]
        with: String,
        /// Replace DEAD_ID even though the leader still hears from it.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    let connect_with_timeout = crate::client::connect_with_timeout;
    match cmd {
        Cmd::Status { output } => {
            let sh = client.status_health().await?;
            let s = &sh.status;
            let health = |id: u64| sh.health.iter().find(|h| h.id == id);
            if output == "json" {
                let mut v = serde_json::to_value(s)?;
                if let Some(members) = v["members"].as_array_mut() {
                    for m in members {
                        let h = m["id"].as_u64().and_then(health);
                        m["reachable"] = h.map(|h| h.reachable).into();
                        m["last_contact_ms"] = h.and_then(|h| h.last_contact_ms).into();
                        m["down_ms"] = h.and_then(|h| h.down_ms).into();
                    }
                }
                v["unreachable_after_ms"] = sh.unreachable_after_ms.into();
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "leader: {}  term: {}  commit: {}  applied: {} (on master {})",
                s.leader.map_or("none".into(), |l| l.to_string()),
                s.term,
                s.commit_index,
                s.applied_index,
                s.serving
            );
            let rows: Vec<[String; 8]> = s
                .members
                .iter()
                .map(|m| {
                    let h = health(m.id);
                    [
                        m.id.to_string(),
                        m.addr.clone(),
                        if Some(m.id) == s.leader {
                            "leader".into()
                        } else if m.voter {
                            "voter".into()
                        } else {
                            "learner".into()
                        },
                        m.matched.map_or("-".into(), |x| x.to_string()),
                        m.lag.map_or("-".into(), |x| x.to_string()),
                        h.map_or("-".into(), |h| match h.reachable {
                            true => "reachable".into(),
                            false => "unreachable".into(),
                        }),
                        h.and_then(|h| h.last_contact_ms)
                            .map_or("-".into(), |ms| format!("{} ago", millis(ms))),
                        h.and_then(|h| h.down_ms).map_or("-".into(), millis),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "ADDRESS",
                    "ROLE",
                    "MATCHED",
                    "LAG",
                    "HEALTH",
                    "LAST CONTACT",
                    "DOWN FOR",
                ],
                &rows,
            );
            if sh.health.is_empty() {
                outln!("(no health: no leader answered, or it predates health reports)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Remove { id, force } => {
            match client.call(&ApiRequest::RemoveMember { id, force }).await? {
                ApiResponse::Removed => {
                    outln!("master {id} removed");
                    Ok(ExitCode::SUCCESS)
                }
                other => anyhow::bail!("unexpected answer: {other:?}"),
            }
        }
        Cmd::Replace {
            dead_id,
            with,
            force,
        } => {
            with.parse::<std::net::SocketAddr>().map_err(|e| {
                anyhow::anyhow!("--with {with:?}: not a QUIC address (HOST_IP:PORT): {e}")
            })?;
            // Catching up may take a while: retried while the learner is behind.
            let client = connect_with_timeout(config, Duration::from_secs(120))?;
            let req = ApiRequest::ReplaceMember {
                dead: dead_id,
                with: with.clone(),
                force,
            };
            match client.call(&req).await? {
                ApiResponse::Replaced { id } => {
                    outln!("master {dead_id} replaced by master {id} at {with}");
                    Ok(ExitCode::SUCCESS)
                }
                other => anyhow::bail!("unexpected answer: {other:?}"),
            }
        }
    }
}

/// A duration in milliseconds, for a table cell: `850ms`, `12.3s`, `4m05s`, `2h10m`.
fn millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// `ferry api-resources`: the served kinds, in kubectl's columns.
pub fn print_api_resources() {
    let rows: Vec<[String; 5]> = ferry_api::resources::RESOURCES
        .iter()
        .map(|r| {
            [
                r.plural.to_string(),
                r.short_names.join(","),
                r.api_version(),
                r.namespaced.to_string(),
                r.kind.to_string(),
            ]
        })
        .collect();
    print_table(
        &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        &rows,
    );
}

/// Prints an aligned table, as kubectl lines up its columns.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(rows.iter().map(|r| r.to_vec()));
    outln!("{}", crate::printers::render_table(&all));
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(super::millis(0), "0ms");
        assert_eq!(super::millis(850), "850ms");
        assert_eq!(super::millis(12_345), "12.3s");
        assert_eq!(super::millis(245_000), "4m05s");
        assert_eq!(super::millis(7_800_000), "2h10m");
    }
}
