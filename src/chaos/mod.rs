//! `ferry chaos`: fault injection against a local cluster of real masters,
//! with a linearizability checker (`docs/chaos.md`).
//!
//! - [`check`]: the checkers (pure): per-key linearizability of read, write
//!   and compare-and-set histories with unknown outcomes, watch streams,
//!   acknowledged writes lost.
//! - [`run`]: the run — cluster, seeded faults, workload, history, report.
//! - [`proxy`]: the UDP fault proxy in front of each master for network faults.
//! - [`nodes`]: hollow nodes in processes of their own, their Ready
//!   conditions watched, and the check that only their own faults make them
//!   NotReady; real node agents behind fault proxies of their own.
//! - [`pods`]: the object workload on real nodes (a Deployment, a
//!   StatefulSet, ConfigMap writes) and its checks: convergence, no pod
//!   running twice, no pod stopped by a node fault, no object write lost.
//! - [`deploy`]: the Deployment scaled and rolled during the faults (a
//!   seeded driver), and the rolling-update fences.
//!
//! `ferry chaos check FILE` checks a saved history again.

pub mod check;
mod deploy;
mod nodes;
mod pods;
mod proxy;
mod run;

use anyhow::{Context, Result};
use check::{CheckReport, History, Op, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ferry chaos`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Sub>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Check a saved history (the JSON format of docs/chaos.md) again; exits
    /// non-zero when a check fails.
    Check {
        /// The history file.
        file: PathBuf,
    },
}

pub async fn run(a: Args, config: Option<&std::path::Path>) -> Result<ExitCode> {
    match a.cmd {
        Some(Sub::Check { file }) => check_file(&file),
        None => run::run(a.run, config).await,
    }
}

fn check_file(file: &std::path::Path) -> Result<ExitCode> {
    let text =
        std::fs::read(file).with_context(|| format!("reading history {}", file.display()))?;
    let h: History = serde_json::from_slice(&text)
        .with_context(|| format!("history {} is not a chaos history", file.display()))?;
    check::validate(&h).map_err(|e| anyhow::anyhow!("history {}: {e}", file.display()))?;
    let report = check::check_history(&h);
    print_verdicts(&report);
    outln!(
        "chaos check ops={} keys={} linearizable={} lost_writes={} watch_violations={}",
        report.ops,
        report.keys.len(),
        report.linearizable,
        report.lost_writes.len(),
        report.watch_violations.len()
    );
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn show_op(o: &Op) -> String {
    let v = |x: &Option<String>| x.as_deref().unwrap_or("<absent>").to_string();
    let what = match o.kind {
        check::OpType::Read => format!("read -> {}", v(&o.result)),
        check::OpType::Write => format!("write {}", v(&o.value)),
        check::OpType::Cas => format!("cas {} -> {}", v(&o.expect), v(&o.value)),
    };
    let end = match o.outcome {
        check::Outcome::Unknown => "?".to_string(),
        _ => format!("{:.3}", o.complete_ns as f64 / 1e9),
    };
    format!(
        "  p{} [{:.3}s, {end}s] {what} {:?}{}{}",
        o.process,
        o.invoke_ns as f64 / 1e9,
        o.outcome,
        if o.revision > 0 {
            format!(" rev={}", o.revision)
        } else {
            String::new()
        },
        o.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    )
}

/// Prints each failed check: a key's smallest violating sub-history, watch
/// violations, lost writes.
fn print_verdicts(r: &CheckReport) {
    for k in &r.keys {
        match k.verdict {
            Verdict::Linearizable => {}
            Verdict::Undecided => outln!(
                "key {}: undecided ({} ops; the search ran out of its budget)",
                k.key,
                k.ops
            ),
            Verdict::Violation => {
                outln!(
                    "key {}: NOT linearizable ({} ops); smallest history showing it ({} ops):",
                    k.key,
                    k.ops,
                    k.minimal.len()
                );
                for o in &k.minimal {
                    outln!("{}", show_op(o));
                }
            }
        }
    }
    for v in &r.watch_violations {
        outln!("watch {}: {}: {}", v.watcher, v.kind, v.detail);
    }
    for o in &r.lost_writes {
        outln!("lost write:{}", show_op(o));
    }
}
