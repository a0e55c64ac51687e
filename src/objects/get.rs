//! `ferry get`, `ferry describe`, `ferry explain`.

use super::api::{status_of, Api};
use crate::printers::{self, Items, Output, TableOptions};
use anyhow::{bail, Result};
use ferry_api::object::{ListOptions, ObjectRequest, Verb};
use ferry_api::resources::{self, Resource};
use serde_json::Value;
use std::process::ExitCode;

/// `ferry get` options.
#[derive(clap::Args)]
pub struct GetArgs {
    /// KIND [NAME...], KIND/NAME..., or KIND,KIND.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Label selector (`app=web,tier in (a,b),!legacy`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`metadata.name=x`, `spec.nodeName=n1`, `status.phase!=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: wide, json, yaml, name or jsonpath=TEMPLATE (default: a table).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// After listing, stream changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Stream changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// With --watch: print each event as `{"type":..,"object":..}` JSON.
    #[arg(long)]
    pub output_watch_events: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Omit the header row.
    #[arg(long)]
    pub no_headers: bool,
}

/// The kinds `ferry get all` shows, as kubectl's `all` category.
const ALL: &[&str] = &[
    "pods",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "jobs",
    "cronjobs",
];

/// Splits what the user typed into kinds and optional names:
/// `pods`, `pods a b`, `pod/a deploy/b`, `pods,services`.
pub fn parse_names(args: &[String]) -> Result<Vec<(&'static Resource, Option<String>)>> {
    let resolve = |k: &str| {
        resources::by_cli_name(k).ok_or_else(|| {
            anyhow::anyhow!(
                "the server doesn't have a resource type {k:?} (see `ferry api-resources`)"
            )
        })
    };
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource: ferry get KIND [NAME]");
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|a| match a.split_once('/') {
                Some((k, n)) if !n.is_empty() => Ok((resolve(k)?, Some(n.to_string()))),
                _ => bail!("{a:?}: use KIND/NAME for every argument when one uses it"),
            })
            .collect();
    }
    let mut kinds: Vec<&'static Resource> = Vec::new();
    for k in first.split(',') {
        if k == "all" {
            kinds.extend(ALL.iter().map(|k| resolve(k)).collect::<Result<Vec<_>>>()?);
        } else {
            kinds.push(resolve(k)?);
        }
    }
    if args.len() == 1 {
        return Ok(kinds.into_iter().map(|k| (k, None)).collect());
    }
    if kinds.len() > 1 {
        bail!("names cannot be given with several kinds ({first}); use KIND/NAME");
    }
    Ok(args[1..]
        .iter()
        .map(|n| (kinds[0], Some(n.clone())))
        .collect())
}

fn output(args: &GetArgs) -> Result<Output> {
    match &args.output {
        None => Ok(Output::Table),
        Some(o) => o.parse().map_err(|e: String| anyhow::anyhow!(e)),
    }
}

/// `ferry get`.
pub async fn get(api: &Api, args: &GetArgs, ns: Option<&str>, all: bool) -> Result<ExitCode> {
    let targets = parse_names(&args.names)?;
    let jsonpath = args
        .output
        .as_deref()
        .and_then(|o| o.strip_prefix("jsonpath="))
        .map(|t| t.trim_matches('\''));
    let out = if jsonpath.is_some() {
        Output::Json
    } else {
        output(args)?
    };
    let list_opts = ListOptions {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    };
    let opts = TableOptions {
        wide: out == Output::Wide,
        namespace_column: all,
        show_labels: args.show_labels,
        no_headers: args.no_headers,
    };
    let scope = |res: &Resource| -> Option<String> {
        (res.namespaced && !all).then(|| ns.unwrap_or("default").to_string())
    };
    if args.watch || args.watch_only {
        let (res, name) = &targets[0];
        if targets.iter().any(|(r, _)| r.kind != res.kind) || targets.len() > 1 && name.is_some() {
            bail!("you may only watch one kind, or one object, at a time");
        }
        let mut lo = list_opts.clone();
        if let Some(n) = name {
            lo.field_selector = Some(format!("metadata.name={n}"));
        }
        return watch(api, res, scope(res).as_deref(), lo, out, opts, args).await;
    }
    let now = jiff::Timestamp::now();
    let mut failed = false;
    let mut printed = false;
    let mut i = 0;
    while i < targets.len() {
        let res = targets[i].0;
        let ns = scope(res);
        let mut objs = Vec::new();
        let named = targets[i].1.is_some();
        while i < targets.len() && targets[i].0.kind == res.kind {
            if let Some(n) = &targets[i].1 {
                match api.get(res, ns.as_deref(), n).await? {
                    Some(o) => objs.push(o),
                    None => {
                        failed = true;
                        eprintln!(
                            "Error from server (NotFound): {} {n:?} not found",
                            qualified_plural(res)
                        );
                    }
                }
            }
            i += 1;
        }
        if !named {
            objs = api.list(res, ns.as_deref(), &list_opts).await?.0;
        }
        // One object asked for and not found: the error alone, as kubectl (no
        // empty List for -o yaml|json).
        if named && objs.is_empty() && targets.len() == 1 {
            continue;
        }
        let items = if named && objs.len() == 1 && targets.len() == 1 {
            Items::One(&objs[0])
        } else {
            Items::List(&objs)
        };
        if let Some(t) = jsonpath {
            let root = match items {
                Items::One(o) => o.clone(),
                Items::List(l) => {
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": l})
                }
            };
            outln!(
                "{}",
                printers::jsonpath::render(t, &root).map_err(anyhow::Error::msg)?
            );
            continue;
        }
        let text = printers::format(res, items, out, &opts, now);
        if text.is_empty() {
            if !named && !printed && matches!(out, Output::Table | Output::Wide) {
                eprintln!(
                    "{}",
                    printers::no_resources(if all { None } else { ns.as_deref() })
                );
            }
            continue;
        }
        if printed && matches!(out, Output::Table | Output::Wide) {
            outln!("");
        }
        outln!("{text}");
        printed = true;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn qualified_plural(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

async fn watch(
    api: &Api,
    res: &'static Resource,
    ns: Option<&str>,
    list_opts: ListOptions,
    out: Output,
    opts: TableOptions,
    args: &GetArgs,
) -> Result<ExitCode> {
    let mut header_done = opts.no_headers;
    // Like kubectl, list first even with --watch-only: the watch starts at the
    // list's resourceVersion, so it reports changes only.
    let (items, rv) = api.list(res, ns, &list_opts).await?;
    if !args.watch_only {
        let now = jiff::Timestamp::now();
        if args.output_watch_events {
            for o in &items {
                outln!("{}", serde_json::json!({"type": "ADDED", "object": o}));
            }
        } else if !items.is_empty() {
            outln!(
                "{}",
                printers::format(res, Items::List(&items), out, &opts, now)
            );
            header_done = true;
        }
    }
    let mut req = ObjectRequest::new(Verb::Watch, res.plural, ns, None);
    req.list = list_opts;
    req.list.resource_version = Some(rv);
    req.list.allow_bookmarks = true;
    let mut w = api.client.watch_objects(req);
    loop {
        let ev = w.next().await?;
        match ev.kind.as_str() {
            "BOOKMARK" => continue,
            "ERROR" => {
                let s = serde_json::from_slice::<Value>(&ev.object)
                    .ok()
                    .and_then(|v| ferry_api::object::Status::from_json(&v));
                bail!(
                    "the watch ended: {}",
                    s.map(|s| s.message)
                        .unwrap_or_else(|| "unknown error".into())
                );
            }
            _ => {}
        }
        let obj: Value = serde_json::from_slice(&ev.object)?;
        if args.output_watch_events {
            outln!("{}", serde_json::json!({"type": ev.kind, "object": obj}));
            continue;
        }
        let o = TableOptions {
            no_headers: header_done,
            ..opts
        };
        outln!(
            "{}",
            printers::format(res, Items::One(&obj), out, &o, jiff::Timestamp::now())
        );
        header_done = true;
    }
}

/// `ferry describe KIND [NAME...]`.
pub async fn describe(
    api: &Api,
    names: &[String],
    ns: Option<&str>,
    selector: Option<String>,
) -> Result<ExitCode> {
    let targets = parse_names(names)?;
    let now = jiff::Timestamp::now();
    let events_res = resources::by_cli_name("events").expect("events served");
    let mut first = true;
    let mut failed = false;
    for (res, name) in targets {
        let ns = res.namespaced.then(|| ns.unwrap_or("default"));
        let objs = match name {
            Some(n) => match api.get(res, ns, &n).await? {
                Some(o) => vec![o],
                None => {
                    eprintln!(
                        "Error from server (NotFound): {} {n:?} not found",
                        qualified_plural(res)
                    );
                    failed = true;
                    continue;
                }
            },
            None => {
                let lo = ListOptions {
                    label_selector: selector.clone(),
                    ..Default::default()
                };
                api.list(res, ns, &lo).await?.0
            }
        };
        for obj in objs {
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A Node's Events name its uid (controllers') or its name
            // (its kubelet's), as `kubectl describe node` reads them.
            let mut uids = vec![uid];
            if res.kind == "Node" {
                uids.extend(obj.pointer("/metadata/name").and_then(Value::as_str));
            }
            let mut events = Vec::new();
            for uid in uids {
                let lo = ListOptions {
                    field_selector: Some(format!("involvedObject.uid={uid}")),
                    ..Default::default()
                };
                match api.list(events_res, ns, &lo).await {
                    Ok((e, _)) => events.extend(e),
                    Err(e) if status_of(&e).is_some() => {}
                    Err(e) => return Err(e),
                }
            }
            if !first {
                outln!("");
            }
            first = false;
            let text = if res.kind == "Node" {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let leases = resources::by_cli_name("leases").expect("leases served");
                let lease = api.get(leases, Some("kube-node-lease"), name).await?;
                let pods_res = resources::by_cli_name("pods").expect("pods served");
                let lo = ListOptions {
                    field_selector: Some(format!("spec.nodeName={name}")),
                    ..Default::default()
                };
                let (pods, _) = api.list(pods_res, None, &lo).await?;
                printers::describe::describe_node(&obj, lease.as_ref(), &pods, &events, now)
            } else if res.kind == "Service" {
                let ep_res = resources::by_cli_name("endpoints").expect("endpoints served");
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let endpoints = api.get(ep_res, ns, name).await?;
                printers::describe::describe_service(&obj, endpoints.as_ref(), &events, now)
            } else {
                printers::describe::describe(res, &obj, &events, now)
            };
            outln!("{}", text.trim_end());
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `ferry explain KIND[.field.path]`.
pub fn explain(what: &str) -> Result<ExitCode> {
    let (kind, path) = what.split_once('.').unwrap_or((what, ""));
    let res = resources::by_cli_name(kind).ok_or_else(|| {
        anyhow::anyhow!(
            "the server doesn't have a resource type {kind:?} (see `ferry api-resources`)"
        )
    })?;
    match printers::explain::explain(res, path) {
        Ok(text) => {
            outln!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn names_kinds_and_errors() {
        let got = |v: &[&str]| -> Vec<(&'static str, Option<String>)> {
            parse_names(&s(v))
                .unwrap()
                .into_iter()
                .map(|(r, n)| (r.kind, n))
                .collect()
        };
        assert_eq!(got(&["po"]), [("Pod", None)]);
        assert_eq!(
            got(&["deploy", "a", "b"]),
            [
                ("Deployment", Some("a".into())),
                ("Deployment", Some("b".into()))
            ]
        );
        assert_eq!(
            got(&["pod/x", "svc/y"]),
            [("Pod", Some("x".into())), ("Service", Some("y".into()))]
        );
        assert_eq!(
            got(&["cm,secrets"]),
            [("ConfigMap", None), ("Secret", None)]
        );
        assert_eq!(got(&["all"]).len(), ALL.len());
        for (bad, want) in [
            (&["gizmo"][..], "doesn't have a resource type \"gizmo\""),
            (&["pod/x", "y"][..], "KIND/NAME"),
            (&["cm,secrets", "x"][..], "several kinds"),
            (&[][..], "specify the type"),
        ] {
            let e = parse_names(&s(bad)).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
