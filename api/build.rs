//! Embeds Kubernetes' `generated.proto` schemas for `ferry_api::protobuf`.
//!
//! The files come from the `k8s-rs-pb` crate (a build dependency, Apache-2.0),
//! whose sources carry go-to-protobuf's `generated.proto` for each Kubernetes
//! minor version; ferry reads the version its `k8s-openapi` serves (1.33).
//! Cargo does not tell a build script where a dependency's sources are: they
//! are looked up in Cargo's registry, else `cargo metadata` is asked;
//! `FERRY_K8S_PROTOS` (a directory laid out as `k8s-rs-pb/src/v1_33`)
//! overrides both. `CRATE_VERSION` must match the pin in `api/Cargo.toml`. The files are copied into `OUT_DIR`
//! without their line comments (the API documentation), which takes them
//! from about 600 KB to about 100 KB of binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// The crate and Kubernetes minor version the schemas come from.
const CRATE: &str = "k8s-rs-pb";
const CRATE_VERSION: &str = "0.5.0";
const VERSION_DIR: &str = "src/v1_33";

/// The files `ferry_api::protobuf` embeds, by import path under
/// `VERSION_DIR`.
const FILES: &[&str] = &[
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/runtime/schema",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/util/intstr",
    "apimachinery/pkg/apis/meta/v1",
    "api/core/v1",
    "api/apps/v1",
    "api/batch/v1",
    "api/coordination/v1",
    "api/authentication/v1",
    "api/authorization/v1",
    "api/policy/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/discovery/v1",
    "api/events/v1",
    "api/rbac/v1",
    "api/networking/v1",
    "api/storage/v1",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FERRY_K8S_PROTOS");
    let root = match env::var_os("FERRY_K8S_PROTOS") {
        Some(dir) => PathBuf::from(dir),
        None => registry_dir()
            .unwrap_or_else(metadata_dir)
            .join(VERSION_DIR),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    let mut table = String::from("/// The embedded files: import path and text.\n");
    table.push_str("pub(crate) const FILES: &[(&str, &str)] = &[\n");
    for dir in FILES {
        let import = format!("{dir}/generated.proto");
        let source = root.join(&import);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("reading the Kubernetes schema {}: {e}", source.display()));
        let name = format!("{}.proto", dir.replace('/', "_"));
        fs::write(out.join(&name), strip_comments(&text))
            .unwrap_or_else(|e| panic!("writing {name} into OUT_DIR: {e}"));
        table.push_str(&format!(
            "    ({import:?}, include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}\"))),\n"
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("protos.rs"), table).expect("writing protos.rs into OUT_DIR");
}

/// The pinned `k8s-rs-pb` package unpacked in Cargo's registry, where a
/// build that compiles it has put it.
fn registry_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let wanted = format!("{CRATE}-{CRATE_VERSION}");
    fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(&wanted))
        .find(|dir| dir.join("Cargo.toml").is_file())
}

/// The `k8s-rs-pb` package's directory, as `cargo metadata` resolves it for
/// this workspace (vendored or otherwise relocated sources).
fn metadata_dir() -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(&env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("Cargo.toml");
    // Only this platform's packages: they are the ones this build fetched.
    let target = env::var("TARGET").expect("TARGET is set for build scripts");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(&target)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("running cargo metadata: {e}"));
    if !output.status.success() {
        panic!(
            "cargo metadata failed (set FERRY_K8S_PROTOS to the schemas' directory): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let manifest_path = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == CRATE)
        .and_then(|p| p["manifest_path"].as_str())
        .unwrap_or_else(|| panic!("cargo metadata lists no {CRATE} package"));
    Path::new(manifest_path)
        .parent()
        .expect("a manifest path has a directory")
        .to_path_buf()
}

/// `text` without whole-line `//` comments, runs of blank lines squeezed.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 4);
    let mut blank = false;
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let is_blank = line.trim().is_empty();
        if is_blank && blank {
            continue;
        }
        blank = is_blank;
        out.push_str(line);
        out.push('\n');
    }
    out
}
