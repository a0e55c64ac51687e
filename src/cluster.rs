//! `ferry cluster status|remove`.

use crate::client::connect;
use anyhow::Result;
use ferry_api::proto::{ApiRequest, ApiResponse};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Members, leader, term, commit and applied index, and each member's lag.
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
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    match cmd {
        Cmd::Status { output } => {
            let s = client.status().await?;
            if output == "json" {
                outln!("{}", serde_json::to_string_pretty(&s)?);
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
            let rows: Vec<[String; 5]> = s
                .members
                .iter()
                .map(|m| {
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
                    ]
                })
                .collect();
            print_table(&["ID", "ADDRESS", "ROLE", "MATCHED", "LAG"], &rows);
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
