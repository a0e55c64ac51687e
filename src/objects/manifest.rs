//! Reading manifests: files, directories and stdin; multi-document YAML and
//! JSON; `List` objects expanded. Every error names the file and document.

use anyhow::{bail, Context, Result};
use ferry_api::resources::{self, Resource};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One object from a manifest.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Where it came from: `file.yaml#2` (document 2).
    pub source: String,
    /// Its kind.
    pub res: &'static Resource,
    /// The object.
    pub obj: Value,
}

/// Reads every object from `paths` (`-` = stdin; a directory = its `.yaml`,
/// `.yml` and `.json` files in name order).
pub fn read(paths: &[PathBuf]) -> Result<Vec<Doc>> {
    if paths.is_empty() {
        bail!("no manifest given: pass -f FILE, -f DIR or -f -");
    }
    let mut docs = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the manifest from stdin")?;
            docs.extend(parse("<stdin>", &text)?);
        } else if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    matches!(
                        f.extension().and_then(|x| x.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!(
                    "directory {} has no .yaml, .yml or .json files",
                    p.display()
                );
            }
            for f in files {
                docs.extend(read_file(&f)?);
            }
        } else {
            docs.extend(read_file(p)?);
        }
    }
    if docs.is_empty() {
        bail!("no objects found in {}", names(paths));
    }
    Ok(docs)
}

fn names(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

fn read_file(path: &Path) -> Result<Vec<Doc>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Parses multi-document YAML (JSON is YAML) into objects of served kinds.
pub fn parse(name: &str, text: &str) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = format!("{name}#{}", i + 1);
        let v: Value = match serde_yaml::Value::deserialize(de) {
            Ok(serde_yaml::Value::Null) => continue,
            Ok(y) => {
                let mut v = serde_json::to_value(y)
                    .map_err(|e| anyhow::anyhow!("{source}: not representable as JSON: {e}"))?;
                octal_modes(&mut v);
                v
            }
            Err(e) => bail!("{source}: invalid YAML: {e}"),
        };
        expand(&source, v, &mut out)?;
    }
    Ok(out)
}

use serde::Deserialize;

/// File modes written as YAML 1.1 octal literals (`defaultMode: 0644`), which
/// kubectl's YAML reader turns into numbers (420); serde_yaml, a YAML 1.2
/// reader, leaves a number with a leading zero as a string.
fn octal_modes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let octal = matches!(k.as_str(), "defaultMode" | "mode")
                    .then(|| x.as_str())
                    .flatten()
                    .filter(|s| s.len() > 1 && s.starts_with('0'))
                    .and_then(|s| i64::from_str_radix(&s[1..], 8).ok());
                match octal {
                    Some(n) => *x = Value::from(n),
                    None => octal_modes(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

fn expand(source: &str, v: Value, out: &mut Vec<Doc>) -> Result<()> {
    if !v.is_object() {
        bail!("{source}: a manifest document must be an object with apiVersion and kind");
    }
    let api_version = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        bail!("{source}: apiVersion and kind are required (got apiVersion {api_version:?}, kind {kind:?})");
    }
    if kind == "List" || kind.ends_with("List") && v.get("items").is_some() {
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for (j, item) in items.into_iter().enumerate() {
            expand(&format!("{source} items[{j}]"), item, out)?;
        }
        return Ok(());
    }
    let res = resources::by_api_version_kind(api_version, kind)
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    out.push(Doc {
        source: source.to_string(),
        res,
        obj: v,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_file_modes_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0400, items: [{key: k, path: k, mode: 0644}]}\n  - name: c\n    configMap: {name: c, defaultMode: 420}\n  containers: [{name: c, image: i, env: [{name: mode, value: '0644'}]}]\n";
        let docs = parse("m.yaml", text).unwrap();
        let v = &docs[0].obj["spec"];
        assert_eq!(v["volumes"][0]["secret"]["defaultMode"], 256);
        assert_eq!(v["volumes"][0]["secret"]["items"][0]["mode"], 420);
        assert_eq!(v["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(
            v["containers"][0]["env"][0]["value"], "0644",
            "other strings stay"
        );
    }

    #[test]
    fn multi_document_yaml_json_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\"}}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n";
        let docs = parse("m.yaml", text).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d.res.kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment", "Secret"]);
        assert_eq!(docs[1].source, "m.yaml#3");
    }

    #[test]
    fn bad_manifests_name_the_problem() {
        let cases = [
            ("a: [1, 2\n", "m.yaml#1: invalid YAML"),
            ("- 1\n- 2\n", "must be an object"),
            ("kind: Pod\n", "apiVersion and kind are required"),
            ("apiVersion: apps/v1\nkind: Pod\n", "use v1"),
            ("apiVersion: v1\nkind: Gizmo\n", "no kind \"Gizmo\""),
            (
                "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Gizmo\n",
                "m.yaml#2",
            ),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", parse("m.yaml", text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
