//! `ferry create -f`, `ferry apply -f`, `ferry delete`.

use super::api::{display_name, namespace_for, status_of, Api};
use super::manifest::{self, Doc};
use anyhow::{bail, Result};
use ferry_api::patch;
use ferry_api::resources::Resource;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The annotation that records what `apply` last applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What `apply` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It changed.
    Configured,
    /// Nothing to change.
    Unchanged,
}

impl Applied {
    fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Runs `f` on each document, printing its line or its error; exit 1 if any failed.
async fn each<'a, F, Fut>(docs: &'a [Doc], mut f: F) -> ExitCode
where
    F: FnMut(&'a Doc) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let mut failed = false;
    for d in docs {
        match f(d).await {
            Ok(line) => outln!("{line}"),
            Err(e) => {
                failed = true;
                match status_of(&e) {
                    Some(_) => eprintln!("{e:#}"),
                    None => eprintln!("error: {}: {e:#}", d.source),
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `ferry create -f`.
pub async fn create(
    api: &Api,
    files: &[PathBuf],
    ns: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode> {
    let docs = manifest::read(files)?;
    Ok(each(&docs, |d| async move {
        let target = namespace_for(d.res, &d.obj, ns)?;
        if dry_run {
            let name = d
                .obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("(generated)");
            return Ok(format!("{} created (dry run)", display_name(d.res, name)));
        }
        let named = d
            .obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let created = match api.create(d.res, target.as_deref(), &d.obj).await {
            Ok(c) => c,
            // The master died before answering. With a name the answer can be
            // found: send it again; "already exists" then means the first one landed.
            Err(e) if is_indeterminate(&e) && named.is_some() => {
                let name = named.unwrap_or_default();
                return match api.create(d.res, target.as_deref(), &d.obj).await {
                    Ok(_) => Ok(format!("{} created", display_name(d.res, name))),
                    Err(e2) if status_of(&e2).is_some_and(|s| s.reason == "AlreadyExists") => Ok(format!(
                        "{} created (its master failed before answering; the object exists now)",
                        display_name(d.res, name)
                    )),
                    Err(e2) => Err(e2),
                };
            }
            Err(e) if is_indeterminate(&e) => anyhow::bail!(
                "the master failed before answering, so whether the object (generateName {:?}) was created is unknown; check with `ferry get {}`",
                d.obj.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default(),
                d.res.plural
            ),
            Err(e) => return Err(e),
        };
        let name = created
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(format!("{} created", display_name(d.res, name)))
    })
    .await)
}

/// `ferry apply -f`.
pub async fn apply(api: &Api, files: &[PathBuf], ns: Option<&str>) -> Result<ExitCode> {
    let docs = manifest::read(files)?;
    Ok(each(&docs, |d| async move {
        let name = d
            .obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() {
            bail!("metadata.name is required: apply cannot use generateName");
        }
        let target = namespace_for(d.res, &d.obj, ns)?;
        let how = apply_one(api, d.res, target.as_deref(), &d.obj).await?;
        Ok(format!("{} {}", display_name(d.res, name), how.as_str()))
    })
    .await)
}

/// Creates or updates one object the way `kubectl apply` does: a three-way
/// merge of the last applied configuration, the manifest and the live object,
/// so fields set by others (status, defaults, controllers) survive. Retries on
/// conflict, and after a failover re-reads rather than guessing.
pub async fn apply_one(
    api: &Api,
    res: &Resource,
    ns: Option<&str>,
    desired: &Value,
) -> Result<Applied> {
    let name = desired
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut recorded = desired.clone();
    strip_last_applied(&mut recorded);
    let record = serde_json::to_string(&recorded)?;
    let mut with_record = recorded.clone();
    with_record["metadata"]["annotations"][LAST_APPLIED] = json!(record);
    let mut last_err = None;
    for _ in 0..5 {
        let Some(live) = api.get(res, ns, name).await? else {
            match api.create(res, ns, &with_record).await {
                Ok(_) => return Ok(Applied::Created),
                Err(e) if status_of(&e).is_some_and(|s| s.code == 409) => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) if is_indeterminate(&e) => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        let last: Option<Value> = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok());
        let mut merged = patch::three_way(res.kind, last.as_ref(), &recorded, &live)?;
        merged["metadata"]["annotations"][LAST_APPLIED] = json!(record);
        if merged == live {
            return Ok(Applied::Unchanged);
        }
        // The server has the last word: it keeps system metadata and status
        // (kubectl's generated manifests carry `creationTimestamp: null` and
        // `status: {}`), fills defaults, and writes nothing when the object
        // comes out the same, answering with the version it has.
        match api.update(res, ns, name, &merged).await {
            Ok(stored) => {
                let version = |o: &Value| o.pointer("/metadata/resourceVersion").cloned();
                return Ok(if version(&stored) == version(&live) {
                    Applied::Unchanged
                } else {
                    Applied::Configured
                });
            }
            Err(e) if status_of(&e).is_some_and(|s| s.code == 409) || is_indeterminate(&e) => {
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("apply of {name} did not settle")))
}

fn is_indeterminate(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ferry_api::Error>(),
        Some(ferry_api::Error::Indeterminate { .. })
    )
}

fn strip_last_applied(obj: &mut Value) {
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            obj["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
}

/// `--cascade` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cascade {
    /// Delete dependents in the background (default).
    Background,
    /// Delete dependents first, then the owner.
    Foreground,
    /// Keep dependents.
    Orphan,
}

/// Options of `ferry delete`.
pub struct DeleteArgs {
    /// `--cascade`.
    pub cascade: Cascade,
    /// `--grace-period` (`--force` = 0).
    pub grace: Option<i64>,
    /// Wait until the objects are gone.
    pub wait: bool,
    /// How long to wait.
    pub timeout: Duration,
    /// `--ignore-not-found`.
    pub ignore_not_found: bool,
}

/// `ferry delete KIND NAME...` or `ferry delete -f FILE`.
pub async fn delete(
    api: &Api,
    targets: Vec<(&'static Resource, Option<String>, String)>,
    args: &DeleteArgs,
) -> Result<ExitCode> {
    let policy = match args.cascade {
        Cascade::Background => "Background",
        Cascade::Foreground => "Foreground",
        Cascade::Orphan => "Orphan",
    };
    let mut opts = json!({ "propagationPolicy": policy });
    if let Some(g) = args.grace {
        opts["gracePeriodSeconds"] = json!(g);
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for (res, ns, name) in &targets {
        match api.delete(res, ns.as_deref(), name, &opts).await {
            Ok(_) => {
                outln!("{} {name:?} deleted", qualified(res));
                deleted.push((*res, ns.clone(), name.clone()));
            }
            Err(e) if args.ignore_not_found && status_of(&e).is_some_and(|s| s.code == 404) => {}
            Err(e) => {
                failed = true;
                eprintln!("{e:#}");
            }
        }
    }
    if args.wait {
        let deadline = tokio::time::Instant::now() + args.timeout;
        for (res, ns, name) in deleted {
            while api.get(res, ns.as_deref(), &name).await?.is_some() {
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "timed out after {:?} waiting for {} to be deleted",
                        args.timeout,
                        display_name(res, &name)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `deployment.apps`, `pod`: how kubectl names a kind in `deleted` lines.
fn qualified(res: &Resource) -> String {
    let kind = res.kind.to_ascii_lowercase();
    if res.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", res.group)
    }
}

/// The objects a delete names: `KIND NAME...`, `KIND/NAME...`, every object of
/// a kind (`--all`) or those a label selector picks (`-l`), or the manifests' objects.
pub async fn delete_targets(
    api: &Api,
    args: &[String],
    files: &[PathBuf],
    ns: Option<&str>,
    selector: Option<&str>,
    all: bool,
) -> Result<Vec<(&'static Resource, Option<String>, String)>> {
    let mut out = Vec::new();
    if !files.is_empty() {
        for d in manifest::read(files)? {
            let name = d
                .obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            out.push((d.res, namespace_for(d.res, &d.obj, ns)?, name));
        }
        return Ok(out);
    }
    for (res, name) in super::parse_names(args)? {
        let ns = res.namespaced.then(|| ns.unwrap_or("default").to_string());
        match name {
            Some(name) if selector.is_none() && !all => out.push((res, ns, name)),
            Some(_) => bail!("names cannot be combined with --all or -l"),
            None if selector.is_some() || all => {
                let opts = ferry_api::object::ListOptions {
                    label_selector: selector.map(str::to_string),
                    ..Default::default()
                };
                for o in api.list(res, ns.as_deref(), &opts).await?.0 {
                    let n = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    out.push((res, ns.clone(), n.to_string()));
                }
            }
            None => bail!(
                "delete needs object names: ferry delete {} NAME (or --all, or -l SELECTOR)",
                res.plural
            ),
        }
    }
    if out.is_empty() && (selector.is_some() || all) {
        eprintln!("No resources found");
        return Ok(out);
    }
    if out.is_empty() {
        bail!("nothing to delete: pass KIND NAME, KIND/NAME or -f FILE");
    }
    Ok(out)
}
