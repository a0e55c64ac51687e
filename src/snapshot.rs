//! `ferry snapshot save|status`: backups of the whole store (admin only).
//!
//! `save` streams a snapshot holding everything committed when it started from
//! any master, checks it whole (record count and SHA-256), and only then puts it
//! at FILE (temporary file, fsync, rename, fsync of the directory): FILE is
//! either the old file or a complete new one. `ferry master --init --restore FILE`
//! starts a new cluster from it.

use crate::client::connect;
use anyhow::{bail, Context, Result};
use ferry_raft::sm::snapshot;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Attempts before `save` gives up (each one starts the stream again).
const ATTEMPTS: usize = 3;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Save a snapshot of the whole store to FILE.
    Save {
        /// Where to write the snapshot.
        file: PathBuf,
        /// Save the answering master's own applied state without asking the
        /// leader: works when the cluster has lost quorum, but may miss the
        /// newest writes. Point --config at the master to save from.
        #[arg(long)]
        local: bool,
    },
    /// Check a snapshot file whole and print its revision, key count, size and membership.
    Status {
        /// The snapshot file.
        file: PathBuf,
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
}

pub async fn run(cmd: Cmd, config: Option<&Path>) -> Result<ExitCode> {
    match cmd {
        Cmd::Save { file, local } => save(&file, local, config).await,
        Cmd::Status { file, output } => status(&file, &output),
    }
}

async fn save(file: &Path, local: bool, config: Option<&Path>) -> Result<ExitCode> {
    let client = connect(config)?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot save to {}: {} is not a directory",
            file.display(),
            dir.display()
        );
    }
    let name = file
        .file_name()
        .with_context(|| format!("{} names no file", file.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.partial-{}", rand::random::<u32>()));
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let streamed = client.snapshot(local, &mut out).await;
        let flushed = out.into_inner().map_err(|e| e.into_error());
        match (streamed, flushed) {
            (Ok((revision, bytes)), Ok(f)) => {
                let placed = place(&tmp, f, file, &dir);
                if placed.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                let pairs = placed?;
                outln!(
                    "saved snapshot at revision {revision} ({pairs} keys, {bytes} bytes) to {}",
                    file.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            (Err(e @ ferry_api::Error::Api(_)), _) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).context("saving the snapshot");
            }
            (Err(e), _) => last = Some(anyhow::Error::new(e)),
            (_, Err(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("writing {}", tmp.display()));
            }
        }
        tracing::warn!(error = %last.as_ref().map(|e| e.to_string()).unwrap_or_default(), "snapshot stream broke; starting again");
    }
    let _ = std::fs::remove_file(&tmp);
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
        .context(format!("saving the snapshot ({ATTEMPTS} attempts)")))
}

/// Checks the downloaded file whole, makes it durable and renames it into place.
fn place(tmp: &Path, f: std::fs::File, file: &Path, dir: &Path) -> Result<u64> {
    f.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    let (_, pairs) = snapshot::validate(tmp).context("the snapshot received is not whole")?;
    std::fs::rename(tmp, file).with_context(|| format!("renaming to {}", file.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))?;
    Ok(pairs)
}

fn status(file: &Path, output: &str) -> Result<ExitCode> {
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let (meta, pairs) = snapshot::validate(file)
        .with_context(|| format!("{} is not a whole snapshot", file.display()))?;
    let revision = meta.last_log_id.map_or(0, |l| l.index);
    let members: Vec<String> = meta
        .last_membership
        .membership()
        .nodes()
        .map(|(id, n)| format!("{id}={}", n.addr))
        .collect();
    if output == "json" {
        let v = serde_json::json!({
            "revision": revision,
            "keys": pairs,
            "bytes": bytes,
            "members": members,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        crate::cluster::print_table(
            &["REVISION", "KEYS", "BYTES", "MEMBERS"],
            &[[
                revision.to_string(),
                pairs.to_string(),
                bytes.to_string(),
                members.join(","),
            ]],
        );
    }
    Ok(ExitCode::SUCCESS)
}
