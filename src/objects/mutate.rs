//! `ferry scale`, `ferry label`, `ferry annotate`, `ferry patch`, `ferry edit`.

use super::api::{display_name, Api};
use anyhow::{bail, Context, Result};
use ferry_api::object::PatchType;
use ferry_api::resources::Resource;
use serde_json::{json, Map, Value};
use std::process::ExitCode;

/// `ferry scale KIND/NAME --replicas N [--current-replicas M]`.
pub async fn scale(
    api: &Api,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    replicas: u32,
    current: Option<u32>,
) -> Result<ExitCode> {
    if !matches!(
        res.kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController"
    ) {
        bail!(
            "{} cannot be scaled: only deployments, replicasets, replicationcontrollers and statefulsets have replicas",
            res.plural
        );
    }
    let mut patch = json!({ "spec": { "replicas": replicas } });
    if let Some(c) = current {
        let scale = api
            .send({
                let mut r = ferry_api::object::ObjectRequest::new(
                    ferry_api::object::Verb::Get,
                    res.plural,
                    ns,
                    Some(name),
                );
                r.subresource = Some("scale".into());
                r
            })
            .await?;
        let now = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if now != u64::from(c) {
            bail!("expected replicas to be {c}, was {now}");
        }
        patch["metadata"] =
            json!({ "resourceVersion": scale.pointer("/metadata/resourceVersion") });
    }
    api.patch(res, ns, name, PatchType::Merge, &patch, Some("scale"))
        .await?;
    outln!("{} scaled", display_name(res, name));
    Ok(ExitCode::SUCCESS)
}

/// A `key=value` or `key-` argument of label/annotate.
fn parse_changes(args: &[String], what: &str) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for a in args {
        if let Some(k) = a.strip_suffix('-').filter(|k| !k.contains('=')) {
            out.insert(k.to_string(), Value::Null);
        } else if let Some((k, v)) = a.split_once('=') {
            if k.is_empty() {
                bail!("invalid {what} {a:?}: the key is empty");
            }
            out.insert(k.to_string(), json!(v));
        } else {
            bail!("invalid {what} {a:?}: use KEY=VALUE to set or KEY- to remove");
        }
    }
    if out.is_empty() {
        bail!("at least one {what} update is required (KEY=VALUE or KEY-)");
    }
    Ok(out)
}

/// `ferry label` (`field` = "labels") and `ferry annotate` (`field` = "annotations").
pub async fn set_metadata_map(
    api: &Api,
    targets: &[(&'static Resource, String)],
    ns: Option<&str>,
    changes: &[String],
    overwrite: bool,
    field: &str,
) -> Result<ExitCode> {
    let (noun, verb) = if field == "labels" {
        ("label", "labeled")
    } else {
        ("annotation", "annotated")
    };
    let changes = parse_changes(changes, noun)?;
    for (res, name) in targets {
        let ns = res.namespaced.then(|| ns.unwrap_or("default"));
        let obj = api
            .get(res, ns, name)
            .await?
            .with_context(|| format!("{} not found", display_name(res, name)))?;
        let current = obj
            .pointer(&format!("/metadata/{field}"))
            .cloned()
            .unwrap_or(json!({}));
        let mut effective = Map::new();
        for (k, v) in &changes {
            match (current.get(k), v) {
                (Some(old), Value::String(_)) if old != v && !overwrite => {
                    bail!(
                        "{k:?} already has a value ({}), and --overwrite is false",
                        old.as_str().unwrap_or_default()
                    )
                }
                (None, Value::Null) => {}
                (Some(old), new) if old == new => {}
                _ => {
                    effective.insert(k.clone(), v.clone());
                }
            }
        }
        if effective.is_empty() {
            outln!("{} not {verb}", display_name(res, name));
            continue;
        }
        let patch = json!({ "metadata": { field: effective, "resourceVersion": obj.pointer("/metadata/resourceVersion") } });
        api.patch(res, ns, name, PatchType::Merge, &patch, None)
            .await?;
        outln!("{} {verb}", display_name(res, name));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry patch KIND NAME -p PATCH [--type strategic|merge|json] [--subresource status]`.
pub async fn patch(
    api: &Api,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    patch: &str,
    pt: PatchType,
    subresource: Option<&str>,
) -> Result<ExitCode> {
    let p: Value = serde_yaml::from_str::<serde_yaml::Value>(patch)
        .map_err(|e| anyhow::anyhow!("the patch is not valid JSON or YAML: {e}"))
        .and_then(|y| Ok(serde_json::to_value(y)?))?;
    let before = api.get(res, ns, name).await?;
    let after = api.patch(res, ns, name, pt, &p, subresource).await?;
    let unchanged = before
        .as_ref()
        .and_then(|b| b.pointer("/metadata/resourceVersion"))
        == after.pointer("/metadata/resourceVersion");
    outln!(
        "{} patched{}",
        display_name(res, name),
        if unchanged { " (no change)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `ferry edit KIND NAME`: the object as YAML in `$EDITOR`, replaced on save.
pub async fn edit(
    api: &Api,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
) -> Result<ExitCode> {
    let obj = api
        .get(res, ns, name)
        .await?
        .with_context(|| format!("{} not found", display_name(res, name)))?;
    let original = serde_yaml::to_string(&obj)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("{}-{name}.yaml", res.plural));
    let header = "# Edit the object below. Lines beginning with '#' are ignored; an unchanged\n# file cancels the edit. It is replaced only if nobody changed it meanwhile.\n";
    std::fs::write(&path, format!("{header}{original}"))?;
    let editor = std::env::var("FERRY_EDITOR")
        .or_else(|_| std::env::var("KUBE_EDITOR"))
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .with_context(|| format!("cannot run editor {editor:?}"))?;
    if !status.success() {
        bail!("editor {editor:?} exited with {status}; nothing changed");
    }
    let text = std::fs::read_to_string(&path)?;
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let edited: Value = match serde_yaml::from_str::<serde_yaml::Value>(&body) {
        Ok(y) => serde_json::to_value(y)?,
        Err(e) => bail!("the edited object is not valid YAML ({e}); nothing changed"),
    };
    if edited == obj {
        eprintln!("Edit cancelled, no changes made.");
        return Ok(ExitCode::SUCCESS);
    }
    api.update(res, ns, name, &edited).await?;
    outln!("{} edited", display_name(res, name));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_changes_parse_and_explain() {
        let c = parse_changes(&["a=1".into(), "b-".into(), "c=".into()], "label").unwrap();
        assert_eq!(Value::Object(c), json!({"a": "1", "b": null, "c": ""}));
        for (bad, want) in [("=x", "key is empty"), ("nokey", "KEY=VALUE")] {
            let e = parse_changes(&[bad.into()], "label")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert!(parse_changes(&[], "label").is_err());
    }
}

/// The HorizontalPodAutoscaler `ferry autoscale` (as `kubectl autoscale`)
/// creates for `res/name`: `name` unless given, min/max replicas, and a CPU
/// utilization target when one is given (else the server's 80%).
pub fn autoscaler(
    res: &Resource,
    name: &str,
    hpa_name: Option<&str>,
    min: Option<i32>,
    max: i32,
    cpu_percent: Option<i32>,
) -> Result<Value> {
    if !matches!(res.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
        bail!(
            "cannot autoscale a {}: only deployments, replicasets and statefulsets can be autoscaled",
            res.kind
        );
    }
    if max < 1 {
        bail!("--max=MAXPODS is required and must be at least 1");
    }
    if let Some(m) = min {
        if m > max {
            bail!("--max=MAXPODS must be larger or equal to --min=MINPODS");
        }
    }
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": res.api_version(), "kind": res.kind, "name": name},
        "maxReplicas": max,
    });
    if let Some(m) = min {
        spec["minReplicas"] = json!(m);
    }
    if let Some(c) = cpu_percent {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": c}}}]);
    }
    Ok(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name.unwrap_or(name)},
        "spec": spec,
    }))
}

/// `ferry autoscale KIND NAME --max N [--min M] [--cpu-percent P]`.
pub async fn autoscale(
    api: &Api,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    hpa: &Value,
) -> Result<ExitCode> {
    if api.get(res, ns, name).await?.is_none() {
        bail!(
            "Error from server (NotFound): {} {name:?} not found",
            res.plural
        );
    }
    let hpa_res = ferry_api::resources::by_cli_name("hpa").expect("served");
    let made = api.create(hpa_res, ns, hpa).await?;
    let made_name = made["metadata"]["name"].as_str().unwrap_or(name);
    outln!("{} autoscaled", display_name(hpa_res, made_name));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod autoscale_tests {
    use super::*;

    #[test]
    fn autoscalers_as_kubectl_makes_them() {
        let deploy = ferry_api::resources::by_cli_name("deploy").unwrap();
        let h = autoscaler(deploy, "web", None, Some(1), 5, Some(50)).unwrap();
        assert_eq!(h["metadata"]["name"], "web");
        assert_eq!(h["spec"]["scaleTargetRef"]["apiVersion"], "apps/v1");
        assert_eq!(h["spec"]["scaleTargetRef"]["kind"], "Deployment");
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(h["spec"]["maxReplicas"], 5);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        let h = autoscaler(deploy, "web", Some("other"), None, 3, None).unwrap();
        assert_eq!(h["metadata"]["name"], "other");
        assert!(
            h["spec"].get("metrics").is_none(),
            "the server defaults 80%"
        );
        assert!(h["spec"].get("minReplicas").is_none());
        let pods = ferry_api::resources::by_cli_name("pods").unwrap();
        assert!(autoscaler(pods, "x", None, None, 3, None).is_err());
        assert!(autoscaler(deploy, "web", None, Some(4), 3, None).is_err());
        assert!(autoscaler(deploy, "web", None, None, 0, None).is_err());
    }
}
