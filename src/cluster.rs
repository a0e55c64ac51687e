//! `ferry cluster status|remove|replace`.

use crate::client::connect;
use anyhow::Result;
use ferry_api::proto::{ApiRequest, ApiResponse, MasterVersion};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Members, leader, term, commit and applied index, and each member's lag
    /// and health: reachable from the leader or not, its last contact with the
    /// leader, how long an unreachable one has been gone, and its binary
    /// version and data dir format (asked of each member).
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
            let members: Vec<_> = s.members.iter().map(|m| (m.id, m.addr.clone())).collect();
            let versions = member_versions(config, &members).await;
            let version = |id: u64| versions.get(&id).cloned().unwrap_or(Asked::NoAnswer);
            if output == "json" {
                let mut v = serde_json::to_value(s)?;
                if let Some(members) = v["members"].as_array_mut() {
                    for m in members {
                        let h = m["id"].as_u64().and_then(health);
                        m["reachable"] = h.map(|h| h.reachable).into();
                        m["last_contact_ms"] = h.and_then(|h| h.last_contact_ms).into();
                        m["down_ms"] = h.and_then(|h| h.down_ms).into();
                        let v = m["id"].as_u64().map(version);
                        let v = match v {
                            Some(Asked::Answered(v)) => Some(v),
                            _ => None,
                        };
                        m["version"] = v.as_ref().map(|v| v.binary.clone()).into();
                        m["format"] = v.map(|v| v.format).into();
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
            let rows: Vec<[String; 10]> = s
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
                        version(m.id).binary(),
                        version(m.id).format(),
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
                    "VERSION",
                    "FORMAT",
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

/// What a member said when asked for its versions.
#[derive(Debug, Clone)]
enum Asked {
    /// Its versions.
    Answered(MasterVersion),
    /// It predates the question: an older ferry.
    Older,
    /// No answer within [`VERSION_WAIT`].
    NoAnswer,
}

impl Asked {
    fn binary(&self) -> String {
        match self {
            Asked::Answered(v) => v.binary.clone(),
            Asked::Older => "older".into(),
            Asked::NoAnswer => "-".into(),
        }
    }

    fn format(&self) -> String {
        match self {
            Asked::Answered(v) => v.format.to_string(),
            Asked::Older => "1".into(),
            Asked::NoAnswer => "-".into(),
        }
    }
}

/// How long `cluster status` waits for each member's versions.
const VERSION_WAIT: Duration = Duration::from_secs(1);

/// Asks each member (id, QUIC address) for its versions, all at once, each
/// over a client of its own that knows only that address.
async fn member_versions(config: Option<&Path>, members: &[(u64, String)]) -> BTreeMap<u64, Asked> {
    let Ok(cfg) = ferry_config::ClientConfig::load(&crate::client::config_path(config)) else {
        return BTreeMap::new();
    };
    let mut asking = tokio::task::JoinSet::new();
    for (id, addr) in members {
        let mut one = cfg.clone();
        one.masters = vec![addr.clone()];
        one.timeout_ms = VERSION_WAIT.as_millis() as u64;
        let id = *id;
        asking.spawn(async move {
            let asked = match ferry_api::Client::new(&one) {
                Ok(client) => match tokio::time::timeout(VERSION_WAIT, client.version()).await {
                    Ok(Ok(Some(v))) => Asked::Answered(v),
                    // A master from before the question has a version-1 data dir.
                    Ok(Ok(None)) => Asked::Older,
                    _ => Asked::NoAnswer,
                },
                Err(_) => Asked::NoAnswer,
            };
            (id, asked)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(Ok((id, asked))) = asking.join_next().await {
        out.insert(id, asked);
    }
    out
}
