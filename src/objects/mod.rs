//! The kubectl-like commands: Kubernetes objects over QUIC (`ferry-api/1`).
//!
//! Layout:
//! - [`api`]: typed object calls and kubectl-style server errors.
//! - [`manifest`]: reading YAML/JSON manifests from files, directories and stdin.
//! - [`get`]: `get` (tables, `-o`, `-w`), `describe`, `explain`.
//! - [`apply`]: `create -f`, `apply -f` (three-way merge), `delete`.
//! - [`mutate`]: `scale`, `label`, `annotate`, `patch`, `edit`.

pub mod api;
pub mod apply;
pub mod drain;
pub mod get;
pub mod manifest;
pub mod mutate;
pub mod rollout;
pub mod top;

pub use get::parse_names;

use crate::client::{config_path, connect};
use anyhow::{bail, Result};
use api::Api;
use clap::CommandFactory;
use ferry_api::object::PatchType;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The object commands.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Display one or many objects (`ferry get pods`, `ferry get deploy web -o yaml`, `-w` to stream).
    Get {
        #[command(flatten)]
        args: get::GetArgs,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show details of objects, with their events.
    Describe {
        /// KIND [NAME...] or KIND/NAME...
        #[arg(required = true)]
        names: Vec<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Create objects from manifests (fails if they exist).
    Create {
        /// Manifest file, directory, or `-` for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Only print what would be created.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create or update objects from manifests (three-way merge, as kubectl apply).
    Apply {
        /// Manifest file, directory, or `-` for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete objects by name or from manifests.
    Delete {
        /// KIND NAME... or KIND/NAME...
        names: Vec<String>,
        /// Manifest file, directory, or `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        /// What happens to dependents.
        #[arg(long, value_enum, default_value = "background")]
        cascade: apply::Cascade,
        /// Seconds the object has to terminate (pods).
        #[arg(long)]
        grace_period: Option<i64>,
        /// Delete at once (grace period 0).
        #[arg(long)]
        force: bool,
        /// Wait until the objects are gone.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Succeed when an object does not exist.
        #[arg(long)]
        ignore_not_found: bool,
        /// Delete every object of the kind (in the namespace).
        #[arg(long)]
        all: bool,
        /// Delete the objects this label selector picks.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Set the replicas of a deployment, replicaset or statefulset.
    Scale {
        /// KIND NAME or KIND/NAME.
        #[arg(required = true)]
        names: Vec<String>,
        /// New replica count.
        #[arg(long)]
        replicas: u32,
        /// Only scale if the current count is this.
        #[arg(long)]
        current_replicas: Option<u32>,
    },
    /// Create a HorizontalPodAutoscaler for a deployment, replicaset or statefulset.
    Autoscale {
        /// KIND NAME or KIND/NAME.
        #[arg(required = true)]
        names: Vec<String>,
        /// The most replicas.
        #[arg(long)]
        max: i32,
        /// The fewest replicas (default 1).
        #[arg(long)]
        min: Option<i32>,
        /// Target average CPU utilization, percent of request (default: the server's 80%).
        #[arg(long)]
        cpu_percent: Option<i32>,
        /// The autoscaler's name (default: the target's).
        #[arg(long)]
        name: Option<String>,
    },
    /// Add, change (--overwrite) or remove (KEY-) labels.
    Label {
        /// KIND NAME KEY=VALUE... KEY-...
        #[arg(required = true)]
        args: Vec<String>,
        /// Replace existing values.
        #[arg(long)]
        overwrite: bool,
    },
    /// Add, change (--overwrite) or remove (KEY-) annotations.
    Annotate {
        /// KIND NAME KEY=VALUE... KEY-...
        #[arg(required = true)]
        args: Vec<String>,
        /// Replace existing values.
        #[arg(long)]
        overwrite: bool,
    },
    /// Patch an object (strategic merge by default).
    Patch {
        /// KIND NAME or KIND/NAME.
        #[arg(required = true)]
        names: Vec<String>,
        /// The patch, as JSON or YAML.
        #[arg(short = 'p', long)]
        patch: String,
        /// strategic, merge or json.
        #[arg(long = "type", default_value = "strategic", value_parser = ["strategic", "merge", "json"])]
        patch_type: String,
        /// Patch this subresource (status, scale).
        #[arg(long)]
        subresource: Option<String>,
    },
    /// Edit an object in $EDITOR (FERRY_EDITOR, KUBE_EDITOR, EDITOR, else vi).
    Edit {
        /// KIND NAME or KIND/NAME.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Documentation of a kind or field: `ferry explain deployment.spec.replicas`.
    Explain {
        /// KIND[.field.path]
        what: String,
    },
    /// Mark a node unschedulable (its pods stay).
    Cordon {
        /// The node.
        node: String,
    },
    /// Mark a node schedulable again.
    Uncordon {
        /// The node.
        node: String,
    },
    /// Cordon a node and evict its pods (through the eviction subresource).
    Drain {
        /// The node.
        node: String,
        /// Skip DaemonSet-managed pods instead of refusing.
        #[arg(long)]
        ignore_daemonsets: bool,
        /// Evict pods with emptyDir volumes too (their data is lost).
        #[arg(long)]
        delete_emptydir_data: bool,
        /// Evict pods no controller will replace.
        #[arg(long)]
        force: bool,
        /// Grace period for each pod, seconds (default: the pod's own).
        #[arg(long)]
        grace_period: Option<i64>,
        /// Give up after this many seconds (0: wait for ever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Manage a Deployment's rollout: status, history, undo, pause, resume, restart.
    #[command(subcommand)]
    Rollout(rollout::RolloutCmd),
    /// CPU and memory use of nodes and pods (metrics.k8s.io).
    #[command(subcommand)]
    Top(top::TopCmd),
    /// Show the client config.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `ferry config`.
#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Print the client config with certificates and keys redacted.
    View {
        /// Show certificates and keys too.
        #[arg(long)]
        raw: bool,
    },
}

fn one(names: &[String]) -> Result<(&'static ferry_api::resources::Resource, String)> {
    match parse_names(names)?.as_slice() {
        [(res, Some(name))] => Ok((res, name.clone())),
        _ => bail!("name exactly one object: KIND NAME or KIND/NAME"),
    }
}

/// A kind and an object name.
type Named = (&'static ferry_api::resources::Resource, String);

/// Splits `KIND NAME KEY=V...` or `KIND/NAME... KEY=V...` into targets and changes.
fn targets_and_changes(args: &[String]) -> Result<(Vec<Named>, Vec<String>)> {
    let is_change = |a: &String| a.contains('=') || (a.ends_with('-') && a.len() > 1);
    let split = args.iter().position(is_change).unwrap_or(args.len());
    let (names, changes) = args.split_at(split);
    if names.is_empty() || changes.is_empty() {
        bail!("usage: KIND NAME KEY=VALUE... (or KEY- to remove)");
    }
    let targets = parse_names(names)?
        .into_iter()
        .map(|(r, n)| {
            n.map(|n| (r, n))
                .ok_or_else(|| anyhow::anyhow!("name the object: KIND NAME"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((targets, changes.to_vec()))
}

/// Runs an object command.
pub async fn run(cmd: Cmd, config: Option<&Path>, ns: Option<&str>) -> Result<ExitCode> {
    match cmd {
        Cmd::Explain { what } => return get::explain(&what),
        Cmd::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut crate::Cli::command(),
                "ferry",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Config(ConfigCmd::View { raw }) => return config_view(config, raw),
        _ => {}
    }
    let api = Api {
        client: connect(config)?,
    };
    match cmd {
        Cmd::Get {
            args,
            all_namespaces,
        } => get::get(&api, &args, ns, all_namespaces).await,
        Cmd::Describe { names, selector } => get::describe(&api, &names, ns, selector).await,
        Cmd::Create { files, dry_run } => apply::create(&api, &files, ns, dry_run).await,
        Cmd::Apply { files } => apply::apply(&api, &files, ns).await,
        Cmd::Delete {
            names,
            files,
            cascade,
            grace_period,
            force,
            wait,
            timeout,
            ignore_not_found,
            all,
            selector,
        } => {
            if !names.is_empty() && !files.is_empty() {
                bail!("pass either KIND NAME or -f FILE, not both");
            }
            let targets =
                apply::delete_targets(&api, &names, &files, ns, selector.as_deref(), all).await?;
            let args = apply::DeleteArgs {
                cascade,
                grace: if force { Some(0) } else { grace_period },
                wait,
                timeout: Duration::from_secs(timeout),
                ignore_not_found,
            };
            apply::delete(&api, targets, &args).await
        }
        Cmd::Scale {
            names,
            replicas,
            current_replicas,
        } => {
            let (res, name) = one(&names)?;
            let ns = res.namespaced.then(|| ns.unwrap_or("default"));
            mutate::scale(&api, res, ns, &name, replicas, current_replicas).await
        }
        Cmd::Autoscale {
            names,
            max,
            min,
            cpu_percent,
            name: hpa_name,
        } => {
            let (res, name) = one(&names)?;
            let ns = res.namespaced.then(|| ns.unwrap_or("default"));
            let hpa = mutate::autoscaler(res, &name, hpa_name.as_deref(), min, max, cpu_percent)?;
            mutate::autoscale(&api, res, ns, &name, &hpa).await
        }
        Cmd::Label { args, overwrite } => {
            let (targets, changes) = targets_and_changes(&args)?;
            mutate::set_metadata_map(&api, &targets, ns, &changes, overwrite, "labels").await
        }
        Cmd::Annotate { args, overwrite } => {
            let (targets, changes) = targets_and_changes(&args)?;
            mutate::set_metadata_map(&api, &targets, ns, &changes, overwrite, "annotations").await
        }
        Cmd::Patch {
            names,
            patch,
            patch_type,
            subresource,
        } => {
            let (res, name) = one(&names)?;
            let ns = res.namespaced.then(|| ns.unwrap_or("default"));
            let pt = match patch_type.as_str() {
                "merge" => PatchType::Merge,
                "json" => PatchType::Json,
                _ => PatchType::Strategic,
            };
            mutate::patch(&api, res, ns, &name, &patch, pt, subresource.as_deref()).await
        }
        Cmd::Edit { names } => {
            let (res, name) = one(&names)?;
            let ns = res.namespaced.then(|| ns.unwrap_or("default"));
            mutate::edit(&api, res, ns, &name).await
        }
        Cmd::Rollout(cmd) => rollout::run(&api, cmd, ns).await,
        Cmd::Top(cmd) => top::run(&api, cmd, ns).await,
        Cmd::Cordon { node } => drain::cordon(&api, &node, true).await,
        Cmd::Uncordon { node } => drain::cordon(&api, &node, false).await,
        Cmd::Drain {
            node,
            ignore_daemonsets,
            delete_emptydir_data,
            force,
            grace_period,
            timeout,
        } => {
            let args = drain::DrainArgs {
                ignore_daemonsets,
                delete_emptydir_data,
                force,
                grace_period,
                timeout: Duration::from_secs(timeout),
            };
            drain::drain(&api, &node, &args).await
        }
        Cmd::Explain { .. } | Cmd::Completion { .. } | Cmd::Config(_) => {
            unreachable!("handled above")
        }
    }
}

fn config_view(config: Option<&Path>, raw: bool) -> Result<ExitCode> {
    let path = config_path(config);
    let cfg = ferry_config::ClientConfig::load(&path)?;
    outln!("# {}", path.display());
    outln!("masters = {:?}", cfg.masters);
    outln!("timeout_ms = {}", cfg.timeout_ms);
    let show = |pem: &str| {
        if raw {
            pem.to_string()
        } else {
            "DATA+OMITTED".to_string()
        }
    };
    outln!("ca_cert = {:?}", show(&cfg.ca_cert));
    outln!("client_cert = {:?}", show(&cfg.client_cert));
    outln!(
        "client_key = {:?}",
        if raw {
            cfg.client_key.clone()
        } else {
            "REDACTED".into()
        }
    );
    Ok(ExitCode::SUCCESS)
}
