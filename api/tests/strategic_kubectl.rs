//! Strategic merge patch against Kubernetes' own implementation: every case in
//! `fixtures/strategic/cases.json` (an object, a patch) is applied by
//! `ferry_api::patch::strategic_merge_patch` and compared with what
//! `kubectl patch --local -f OBJ --type strategic -p PATCH -o json` (kubectl
//! 1.32) printed for it, stored in `fixtures/strategic/expected.json`: the
//! same object, list order included, or an error for an error.
//!
//! - `FERRY_REGENERATE_FIXTURES=1 cargo test -p ferry-api --test strategic_kubectl`
//!   rewrites `expected.json` with kubectl (after adding cases).
//! - With `kubectl` on PATH, `live_kubectl_agrees` also compares each case with
//!   a live kubectl run; without it, that test only says it skipped.

use ferry_api::patch::strategic_merge_patch;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/strategic")
}

/// `(name, object, patch)` of every case.
fn cases() -> Vec<(String, Value, Value)> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let all: Vec<Value> = serde_json::from_str(&text).expect("cases.json is a JSON list");
    all.into_iter()
        .map(|c| {
            let name = c["name"].as_str().expect("case name").to_string();
            (name, c["object"].clone(), c["patch"].clone())
        })
        .collect()
}

/// `{"ok": OBJECT}` or `{"error": MESSAGE}`.
fn ferry(obj: &Value, patch: &Value) -> Value {
    let kind = obj["kind"].as_str().unwrap_or_default();
    match strategic_merge_patch(kind, obj, patch) {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn kubectl_on_path() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What kubectl makes of `patch` on `obj`: `{"ok": OBJECT}` or `{"error": MESSAGE}`.
fn kubectl(name: &str, obj: &Value, patch: &Value) -> Value {
    let file = std::env::temp_dir().join(format!(
        "ferry-smp-{}-{}.json",
        std::process::id(),
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    std::fs::write(&file, obj.to_string()).expect("write object");
    let out = Command::new("kubectl")
        .args([
            "patch",
            "--local",
            "--type",
            "strategic",
            "-o",
            "json",
            "-f",
        ])
        .arg(&file)
        .arg("-p")
        .arg(patch.to_string())
        .output()
        .expect("run kubectl");
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        json!({ "ok": serde_json::from_slice::<Value>(&out.stdout).expect("kubectl prints JSON") })
    } else {
        json!({ "error": String::from_utf8_lossy(&out.stderr).trim() })
    }
}

/// Whether two answers agree: equal objects, or both errors.
fn agree(ours: &Value, theirs: &Value) -> bool {
    match (ours.get("ok"), theirs.get("ok")) {
        (Some(a), Some(b)) => a == b,
        (None, None) => true,
        _ => false,
    }
}

fn compare(what: &str, expected: impl Fn(&str, &Value, &Value) -> Value) {
    let mut failed = Vec::new();
    let all = cases();
    for (name, obj, patch) in &all {
        let want = expected(name, obj, patch);
        let got = ferry(obj, patch);
        if !agree(&got, &want) {
            failed.push(format!(
                "{name}:\n  patch: {patch}\n  {what}: {want}\n  ferry:   {got}"
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ from {what}:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}

#[test]
fn matches_kubectl_fixtures() {
    let path = dir().join("expected.json");
    if std::env::var_os("FERRY_REGENERATE_FIXTURES").is_some() {
        let mut out = Map::new();
        for (name, obj, patch) in cases() {
            out.insert(name.clone(), kubectl(&name, &obj, &patch));
        }
        let text = serde_json::to_string_pretty(&Value::Object(out)).unwrap() + "\n";
        std::fs::write(&path, text).expect("write expected.json");
    }
    let expected: Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("expected.json"))
            .expect("expected.json is a JSON object");
    let names: Vec<String> = cases().into_iter().map(|c| c.0).collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !expected.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "cases without kubectl's answer (regenerate): {missing:?}"
    );
    compare("kubectl (fixture)", |name, _, _| expected[name].clone());
}

#[test]
fn live_kubectl_agrees() {
    if !kubectl_on_path() {
        eprintln!("kubectl is not on PATH: live comparison skipped");
        return;
    }
    compare("kubectl (live)", kubectl);
}
