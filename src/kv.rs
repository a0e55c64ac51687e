//! `ferry kv`: etcdctl-like access to the raw store.

use crate::client::connect;
use anyhow::{bail, Context, Result};
use ferry_api::kv::{EventKind, Expect, KvError, WatchItem, Write, WriteOp};
use ferry_api::proto::{Consistency, RangeRequest};
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Set KEY to VALUE; exits 0 once the write is committed and durable.
    Put {
        key: String,
        value: String,
        /// Only if the key's mod_revision is REV.
        #[arg(long, conflicts_with = "create")]
        expect_rev: Option<u64>,
        /// Only if the key does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Print KEY's value; exit 1 with `not found` if absent.
    Get {
        key: String,
        /// Read at this revision (within the history window).
        #[arg(long)]
        rev: Option<u64>,
        /// Read this master's applied state instead of a linearizable read.
        #[arg(long)]
        serializable: bool,
        /// Print key, revisions and value.
        #[arg(long, short)]
        verbose: bool,
    },
    /// List keys under PREFIX as `KEY VALUE` lines.
    List {
        prefix: String,
        /// Page size used to read.
        #[arg(long, default_value_t = 500)]
        page: u64,
    },
    /// Delete KEY.
    Del {
        key: String,
        /// Only if the key's mod_revision is REV.
        #[arg(long)]
        expect_rev: Option<u64>,
    },
    /// Apply ops from stdin atomically, one per line:
    /// `put KEY VALUE [@REV|@new]` or `del KEY [@REV]`.
    Txn,
    /// Print one line per event under PREFIX.
    Watch {
        prefix: String,
        /// Start at this revision (events with revision >= REV).
        #[arg(long)]
        rev: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Drop watch history at and below REV.
    Compact { rev: u64 },
}

fn expect_of(rev: Option<u64>, create: bool) -> Expect {
    match (rev, create) {
        (Some(r), _) => Expect::ModRevision(r),
        (None, true) => Expect::Absent,
        (None, false) => Expect::Any,
    }
}

fn parse_txn_line(line: &str, n: usize) -> Result<WriteOp> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let cond = |s: Option<&&str>| -> Result<Expect> {
        match s {
            None => Ok(Expect::Any),
            Some(&"@new") => Ok(Expect::Absent),
            Some(c) => match c.strip_prefix('@').and_then(|r| r.parse().ok()) {
                Some(r) => Ok(Expect::ModRevision(r)),
                None => bail!("line {n}: condition `{c}` must be @REV or @new"),
            },
        }
    };
    match parts.as_slice() {
        ["put", key, value, rest @ ..] if rest.len() <= 1 => Ok(WriteOp::Put {
            key: key.to_string(),
            value: value.as_bytes().to_vec(),
            expect: cond(rest.first())?,
        }),
        ["del", key, rest @ ..] if rest.len() <= 1 => Ok(WriteOp::Delete {
            key: key.to_string(),
            expect: cond(rest.first())?,
        }),
        _ => bail!(
            "line {n}: expected `put KEY VALUE [@REV|@new]` or `del KEY [@REV]`, got `{line}`"
        ),
    }
}

fn report(r: std::result::Result<ferry_api::kv::WriteOutcome, KvError>) -> ExitCode {
    match r {
        Ok(o) => {
            outln!("OK revision={}", o.revision);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    match cmd {
        Cmd::Put {
            key,
            value,
            expect_rev,
            create,
        } => {
            let r = client
                .put(&key, value.into_bytes(), expect_of(expect_rev, create))
                .await?;
            Ok(report(r))
        }
        Cmd::Del { key, expect_rev } => {
            let r = client.delete(&key, expect_of(expect_rev, false)).await?;
            Ok(report(r))
        }
        Cmd::Get {
            key,
            rev,
            serializable,
            verbose,
        } => {
            let consistency = match (rev, serializable) {
                (Some(r), _) => Consistency::AtRevision(r),
                (None, true) => Consistency::Local,
                (None, false) => Consistency::Linearizable,
            };
            match client.get(&key, consistency).await? {
                Some(kv) if verbose => {
                    outln!(
                        "key={} create_revision={} mod_revision={} version={}",
                        kv.key,
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version
                    );
                    outln!("{}", String::from_utf8_lossy(&kv.value));
                    Ok(ExitCode::SUCCESS)
                }
                Some(kv) => {
                    outln!("{}", String::from_utf8_lossy(&kv.value));
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("not found");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::List { prefix, page } => {
            let mut req = RangeRequest {
                prefix,
                start_after: None,
                limit: page,
                consistency: Consistency::Linearizable,
            };
            loop {
                let resp = client
                    .range(req.clone())
                    .await?
                    .map_err(anyhow::Error::from)?;
                for kv in &resp.kvs {
                    outln!("{} {}", kv.key, String::from_utf8_lossy(&kv.value));
                }
                if !resp.more {
                    return Ok(ExitCode::SUCCESS);
                }
                req.start_after = resp.kvs.last().map(|kv| kv.key.clone());
                req.consistency = Consistency::AtRevision(resp.revision);
            }
        }
        Cmd::Txn => {
            let mut ops = Vec::new();
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("reading stdin")?;
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                ops.push(parse_txn_line(&line, i + 1)?);
            }
            if ops.is_empty() {
                bail!("no ops on stdin");
            }
            Ok(report(client.write(Write::Txn(ops)).await?))
        }
        Cmd::Compact { rev } => Ok(report(client.write(Write::Compact(rev)).await?)),
        Cmd::Watch { prefix, rev, count } => {
            let mut w = client.watch(&prefix, rev.map(|r| r.saturating_sub(1)), 1000);
            let mut seen = 0;
            loop {
                match w.next().await? {
                    WatchItem::Events { revision, events } => {
                        for e in events {
                            match e.kind {
                                EventKind::Put => outln!(
                                    "PUT {} rev={revision} {}",
                                    e.kv.key,
                                    String::from_utf8_lossy(&e.kv.value)
                                ),
                                EventKind::Delete => outln!("DELETE {} rev={revision}", e.kv.key),
                            }
                            seen += 1;
                            if count.is_some_and(|c| seen >= c) {
                                return Ok(ExitCode::SUCCESS);
                            }
                        }
                    }
                    WatchItem::Bookmark { .. } => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_lines() {
        assert!(matches!(
            parse_txn_line("put a 1 @new", 1).unwrap(),
            WriteOp::Put {
                expect: Expect::Absent,
                ..
            }
        ));
        assert!(matches!(
            parse_txn_line("del a @7", 1).unwrap(),
            WriteOp::Delete {
                expect: Expect::ModRevision(7),
                ..
            }
        ));
        assert!(parse_txn_line("put a", 3)
            .unwrap_err()
            .to_string()
            .contains("line 3"));
        assert!(parse_txn_line("del a @x", 1).is_err());
    }
}
