//! Pod volumes for the process runtime: `emptyDir`, `configMap`, `secret`,
//! `downwardAPI`, `projected` and `hostPath`.
//!
//! The agent materializes each volume under the pod's directory
//! (`volumes/<name>`). ConfigMap, Secret, downward API and projected volumes
//! are written as the kubelet writes them: the files live in a timestamped
//! directory, `..data` is a symlink to it, and each key is a symlink through
//! `..data`; an update writes a new directory and swaps `..data` atomically,
//! so a container sees the whole old or the whole new content. The shim then
//! bind-mounts each volume at its `mountPath` in the container's private
//! mount namespace ([`crate::runtime`]).

use crate::env::{self, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One bind mount into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What is mounted (a directory or file on the node).
    pub source: PathBuf,
    /// Where the container sees it (absolute).
    pub target: PathBuf,
    /// Read-only.
    pub read_only: bool,
}

/// Where containers find their service-account token, CA and namespace.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume the agent makes for them.
pub const SA_VOLUME: &str = "kube-api-access";

/// Whether `pod` gets its service-account token mounted (unless
/// `automountServiceAccountToken: false`).
pub fn automounts_token(pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        != Some(false)
}

/// The ConfigMaps and Secrets `pod`'s volumes name.
pub fn sources(pod: &Value) -> Vec<Source> {
    let mut out = Vec::new();
    let mut add = |v: &Value| {
        if let Some(n) = v.pointer("/configMap/name").and_then(Value::as_str) {
            out.push(Source::ConfigMap(n.to_string()));
        }
        if let Some(n) = v.pointer("/secret/secretName").and_then(Value::as_str) {
            out.push(Source::Secret(n.to_string()));
        }
        if let Some(n) = v.pointer("/secret/name").and_then(Value::as_str) {
            out.push(Source::Secret(n.to_string()));
        }
        if let Some(n) = v
            .pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
        {
            out.push(Source::Claim(n.to_string()));
        }
    };
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(v);
        for s in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(s);
        }
    }
    out.sort_by_key(|s| format!("{s:?}"));
    out.dedup();
    out
}

/// The token a projected `serviceAccountToken` source asks for (Kubernetes'
/// default lifetime, an hour, when it names none).
pub fn projected_token(source: &Value) -> Source {
    Source::ProjectedToken {
        audience: source["audience"].as_str().unwrap_or_default().to_string(),
        seconds: source["expirationSeconds"].as_i64().unwrap_or(3600),
    }
}

/// The projected `serviceAccountToken` sources of `pod`'s volumes.
pub fn projected_tokens(pod: &Value) -> Vec<Source> {
    let mut out: Vec<Source> = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|s| s.get("serviceAccountToken").map(projected_token))
        .collect();
    out.sort_by_key(|s| format!("{s:?}"));
    out.dedup();
    out
}

/// A volume's files: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64().map_or(default, |m| m as u32 & 0o777)
}

/// The files of a ConfigMap or Secret source (`items` select and rename keys).
fn object_files(
    src: &Value,
    obj: Option<&Value>,
    secret: bool,
    default_mode: u32,
    files: &mut Files,
) -> Result<(), String> {
    let name = src["name"]
        .as_str()
        .or(src["secretName"].as_str())
        .unwrap_or_default();
    let optional = src["optional"].as_bool().unwrap_or(false);
    let what = if secret { "secret" } else { "configmap" };
    let Some(obj) = obj else {
        if optional {
            return Ok(());
        }
        return Err(format!("{what} \"{name}\" not found"));
    };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (field, b64) in [("data", secret), ("binaryData", true)] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            let s = v.as_str().unwrap_or_default();
            let bytes = if b64 {
                ferry_api::token::base64_decode(s)
                    .ok_or_else(|| format!("{what} \"{name}\": key {k} is not base64"))?
            } else {
                s.as_bytes().to_vec()
            };
            data.insert(k.clone(), bytes);
        }
    }
    let mode = mode_of(&src["defaultMode"], default_mode);
    match src["items"].as_array() {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or_default();
                let path = it["path"].as_str().unwrap_or(key);
                check_path(path)?;
                let Some(bytes) = data.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{what} \"{name}\" has no key {key}"));
                };
                files.insert(
                    path.to_string(),
                    (bytes.clone(), mode_of(&it["mode"], mode)),
                );
            }
        }
        None => {
            for (k, bytes) in data {
                files.insert(k, (bytes, mode));
            }
        }
    }
    Ok(())
}

/// A volume file path must stay inside the volume.
fn check_path(p: &str) -> Result<(), String> {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == ".." || c.starts_with(".."))
    {
        return Err(format!(
            "volume file path {p:?} must be relative and may not contain '..'"
        ));
    }
    Ok(())
}

fn downward_files(
    src: &Value,
    pod: &Value,
    ip: &str,
    host_ip: &str,
    default_mode: u32,
    files: &mut Files,
) -> Result<(), String> {
    for it in src["items"].as_array().into_iter().flatten() {
        let path = it["path"].as_str().unwrap_or_default();
        check_path(path)?;
        let value = if let Some(f) = it.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
            match f {
                "metadata.labels" | "metadata.annotations" => {
                    let map = &pod["metadata"][f.trim_start_matches("metadata.")];
                    map.as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or_default()))
                        .collect::<String>()
                }
                _ => {
                    let probe = serde_json::json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": f}}}]});
                    let vars = env::build(pod, &probe, &env::Fetched::new(), ip, host_ip)?;
                    vars.into_iter().next().map(|(_, v)| v).unwrap_or_default()
                }
            }
        } else {
            return Err(format!(
                "downwardAPI item {path}: only fieldRef is supported"
            ));
        };
        files.insert(
            path.to_string(),
            (value.into_bytes(), mode_of(&it["mode"], default_mode)),
        );
    }
    Ok(())
}

/// Writes `files` into `dir` the kubelet's way (see the module doc); returns
/// whether anything changed.
pub fn write_atomic(dir: &Path, files: &Files) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    // Unchanged: nothing to do.
    if let Ok(cur) = std::fs::read_link(&data) {
        let cur = dir.join(cur);
        let same = files.iter().all(|(p, (bytes, mode))| {
            let f = cur.join(p);
            std::fs::read(&f).ok().as_ref() == Some(bytes)
                && std::fs::metadata(&f).is_ok_and(|m| m.permissions().mode() & 0o777 == *mode)
        }) && count_files(&cur) == files.len();
        if same {
            return Ok(false);
        }
    }
    let stamp = format!("..{}", jiff::Timestamp::now().as_nanosecond());
    let new = dir.join(&stamp);
    std::fs::create_dir_all(&new)?;
    for (p, (bytes, mode)) in files {
        let f = new.join(p);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&f, bytes)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))?;
    }
    // Swap `..data` atomically: a new symlink renamed over the old one.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    let old = std::fs::read_link(&data).ok();
    std::fs::rename(&tmp, &data)?;
    // Top-level names point through `..data`.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p).to_string())
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(t), &link)?;
        }
    }
    // Names no longer in the volume go.
    for e in std::fs::read_dir(dir)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with("..") && !tops.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += count_files(&e.path()),
            Ok(_) => n += 1,
            Err(_) => {}
        }
    }
    n
}

/// Materializes `pod`'s volumes under `pod_dir/volumes` (again on every sync:
/// ConfigMap and Secret volumes follow their objects) and returns each
/// volume's directory by name. `Err` names what is missing or unsupported.
pub fn prepare(
    pod: &Value,
    pod_dir: &Path,
    fetched: &env::Fetched,
    ip: &str,
    host_ip: &str,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut out = BTreeMap::new();
    let root = pod_dir.join("volumes");
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let dir = root.join(&name);
        let mut files = Files::new();
        let get = |s: &Source| fetched.get(s).cloned().flatten();
        if let Some(e) = v.get("emptyDir") {
            std::fs::create_dir_all(&dir).map_err(|e| format!("volume {name}: {e}"))?;
            // World-writable, as the kubelet makes it: any container user writes.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("volume {name}: {e}"))?;
            if e["medium"] == "Memory" {
                memory_backed(&dir, e["sizeLimit"].as_str());
            }
            out.insert(name, dir);
            continue;
        } else if let Some(h) = v.get("hostPath") {
            let path = PathBuf::from(h["path"].as_str().unwrap_or_default());
            match h["type"].as_str().unwrap_or("") {
                "DirectoryOrCreate" => {
                    std::fs::create_dir_all(&path).map_err(|e| format!("volume {name}: {e}"))?
                }
                "Directory" if !path.is_dir() => {
                    return Err(format!("hostPath {} is not a directory", path.display()))
                }
                "File" if !path.is_file() => {
                    return Err(format!("hostPath {} is not a file", path.display()))
                }
                _ => {}
            }
            out.insert(name, path);
            continue;
        } else if let Some(c) = v.get("persistentVolumeClaim") {
            let claim = c["claimName"].as_str().unwrap_or_default();
            let Some(pv) = get(&Source::Claim(claim.into())) else {
                return Err(format!(
                    "persistentvolumeclaim \"{claim}\" is not bound to a volume yet"
                ));
            };
            out.insert(name, claim_path(&pv, claim)?);
            continue;
        } else if let Some(c) = v.get("configMap") {
            let src = Source::ConfigMap(c["name"].as_str().unwrap_or_default().into());
            object_files(c, get(&src).as_ref(), false, 0o644, &mut files)?;
        } else if let Some(s) = v.get("secret") {
            let src = Source::Secret(s["secretName"].as_str().unwrap_or_default().into());
            object_files(s, get(&src).as_ref(), true, 0o644, &mut files)?;
        } else if let Some(d) = v.get("downwardAPI") {
            let mode = mode_of(&d["defaultMode"], 0o644);
            downward_files(d, pod, ip, host_ip, mode, &mut files)?;
        } else if let Some(p) = v.get("projected") {
            let mode = mode_of(&p["defaultMode"], 0o644);
            for s in p["sources"].as_array().into_iter().flatten() {
                if let Some(c) = s.get("configMap") {
                    let src = Source::ConfigMap(c["name"].as_str().unwrap_or_default().into());
                    object_files(c, get(&src).as_ref(), false, mode, &mut files)?;
                } else if let Some(c) = s.get("secret") {
                    let src = Source::Secret(c["name"].as_str().unwrap_or_default().into());
                    object_files(c, get(&src).as_ref(), true, mode, &mut files)?;
                } else if let Some(d) = s.get("downwardAPI") {
                    downward_files(d, pod, ip, host_ip, mode, &mut files)?;
                } else if let Some(t) = s.get("serviceAccountToken") {
                    let path = t["path"].as_str().unwrap_or_default();
                    check_path(path)?;
                    let src = projected_token(t);
                    let token = get(&src)
                        .and_then(|v| v["token"].as_str().map(str::to_string))
                        .ok_or_else(|| format!("volume {name}: {}", env::missing(&src)))?;
                    files.insert(path.to_string(), (token.into_bytes(), mode));
                } else {
                    return Err(format!("volume {name}: this projected source is not supported by the process runtime"));
                }
            }
        } else {
            let kind = v
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "name").cloned())
                .unwrap_or_else(|| "(none)".into());
            return Err(format!(
                "volume {name}: {kind} volumes are not supported by the process runtime"
            ));
        }
        write_atomic(&dir, &files).map_err(|e| format!("volume {name}: {e}"))?;
        out.insert(name, dir);
    }
    // The service-account token (renewed by the agent), the CA and the namespace.
    if let Some(Some(sa)) = fetched.get(&Source::ServiceAccountToken) {
        let text = |k: &str| sa.get(k).and_then(Value::as_str).unwrap_or_default();
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let mut files = Files::new();
        files.insert("token".into(), (text("token").as_bytes().to_vec(), 0o644));
        files.insert("ca.crt".into(), (text("ca.crt").as_bytes().to_vec(), 0o644));
        files.insert("namespace".into(), (ns.as_bytes().to_vec(), 0o644));
        let dir = root.join(SA_VOLUME);
        write_atomic(&dir, &files).map_err(|e| format!("volume {SA_VOLUME}: {e}"))?;
        out.insert(SA_VOLUME.to_string(), dir);
    }
    Ok(out)
}

/// The directory this node's local-path volumes live under.
pub fn storage_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// The host directory of a bound claim's PersistentVolume: `hostPath` or
/// `local`, made when the node's provisioner owns it (its directory is
/// created on first use, as k3s's local-path does).
fn claim_path(pv: &Value, claim: &str) -> Result<PathBuf, String> {
    let path = pv
        .pointer("/spec/hostPath/path")
        .or_else(|| pv.pointer("/spec/local/path"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            let name = pv
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!(
                "persistentvolumeclaim \"{claim}\": volume {name} is neither hostPath nor local, \
                 which the process runtime cannot mount"
            )
        })?;
    let path = PathBuf::from(path);
    let ours = pv
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ferry_api::storage::PROVISIONED_BY))
        .and_then(Value::as_str)
        == Some(ferry_api::storage::LOCAL_PATH_PROVISIONER);
    let create = ours
        || pv.pointer("/spec/hostPath/type").and_then(Value::as_str) == Some("DirectoryOrCreate");
    if create {
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("persistentvolumeclaim \"{claim}\": {}: {e}", path.display()))?;
    } else if !path.exists() {
        return Err(format!(
            "persistentvolumeclaim \"{claim}\": {} does not exist on this node",
            path.display()
        ));
    }
    Ok(path)
}

/// Whether one of `pod`'s claims is not bound yet (the pod waits in
/// ContainerCreating rather than failing).
pub fn claims_pending(pod: &Value, fetched: &env::Fetched) -> bool {
    sources(pod)
        .iter()
        .any(|s| matches!(s, Source::Claim(_)) && fetched.get(s).is_none_or(Option::is_none))
}

/// The local-path volume directories under `storage`: (volume name, path).
pub fn stored_volumes(storage: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(storage) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name();
            let pv = file.to_str()?.split('_').next()?;
            pv.starts_with("pvc-").then(|| (pv.to_string(), e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Makes `dir` a tmpfs (an `emptyDir` with `medium: Memory`), of
/// `size_limit` bytes when given, once; where the node may not mount (not
/// root) the volume stays on disk, as a directory.
fn memory_backed(dir: &Path, size_limit: Option<&str>) {
    if is_mount_point(dir) {
        return;
    }
    let mut opts = String::from("mode=0777");
    if let Some(bytes) = size_limit
        .and_then(ferry_api::quantity::Quantity::parse)
        .map(|q| (q.milli() + 999) / 1000)
        .filter(|b| *b > 0)
    {
        opts.push_str(&format!(",size={bytes}"));
    }
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV;
    if let Err(e) = nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some(opts.as_str()),
    ) {
        tracing::info!(
            "emptyDir {} stays on disk: tmpfs not mounted: {e}",
            dir.display()
        );
    }
}

/// Whether `dir` is a mount point (another device than its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Some(Ok(p))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) else {
        return false;
    };
    d.dev() != p.dev()
}

/// Unmounts the memory-backed volumes under `pod_dir` (before the pod's
/// directory is removed).
pub fn release(pod_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pod_dir.join("volumes")) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        if is_mount_point(&dir) {
            if let Err(e) = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting {}: {e}", dir.display());
            }
        }
    }
}

/// The file, in a container's directory, where its shim lists the mount
/// targets (directories, empty files, their missing parents) it created on
/// the host's filesystem; and, in the node's data dir, the agent's list of
/// those left by pods already removed (still in use by another pod then).
pub const CREATED_TARGETS: &str = "mount-targets.json";

fn read_targets(path: &Path) -> Vec<PathBuf> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Adds `created` to the list in `record` (a container's runs add up).
pub fn record_created(record: &Path, created: &[PathBuf]) -> std::io::Result<()> {
    let mut all = read_targets(record);
    for p in created {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    ferry_api::files::write_private(record, &serde_json::to_vec(&all).expect("serializes"))
}

/// Where `pod`'s containers mount volumes (the targets a live pod needs).
pub fn targets_in_use(pod: &Value) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let sa = automounts_token(pod);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                if let Some(t) = m["mountPath"].as_str() {
                    out.push(PathBuf::from(t));
                }
            }
            if sa {
                out.push(PathBuf::from(SA_DIR));
            }
        }
    }
    out
}

/// Every mount point of every mount namespace on the machine (one
/// `mountinfo` read per namespace).
fn mount_points_anywhere() -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = e.path();
        let Ok(ns) = std::fs::read_link(dir.join("ns/mnt")) else {
            continue;
        };
        if !seen.insert(ns) {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(dir.join("mountinfo")) else {
            continue;
        };
        out.extend(
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|m| PathBuf::from(unescape_mountinfo(m))),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// `mountinfo`'s octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which recorded targets to remove now: those no live pod's target is at
/// or under, deepest first. Pure.
pub fn removable(recorded: &[PathBuf], in_use: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = recorded
        .iter()
        .filter(|p| p.is_absolute() && p.parent().is_some())
        .filter(|p| !in_use.iter().any(|t| t.starts_with(p)))
        .cloned()
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Removes, when a pod is removed, the mount targets its containers created
/// on the host (`pod_dir`'s records, and those earlier pods left to the
/// node's list because another pod still used them): each one no live pod
/// (`in_use`) mounts at or under, if it is still an empty directory or an
/// empty file and not a mount point; what stays in use is kept in the
/// node's list for a later removal.
pub fn remove_created_targets(data_dir: &Path, pod_dir: Option<&Path>, in_use: &[PathBuf]) {
    let node_list = data_dir.join(CREATED_TARGETS);
    let mut recorded = read_targets(&node_list);
    let before = recorded.clone();
    if let Some(dir) = pod_dir {
        for c in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for p in read_targets(&c.path().join(CREATED_TARGETS)) {
                if !recorded.contains(&p) {
                    recorded.push(p);
                }
            }
        }
    }
    if recorded.is_empty() {
        return;
    }
    // Another pod on this machine (another node's, or one this agent does not
    // know) may have a volume mounted there in its own mount namespace:
    // removing the directory would detach it. Those stay too.
    let mut in_use = in_use.to_vec();
    in_use.extend(mount_points_anywhere());
    let in_use = &in_use[..];
    for p in removable(&recorded, in_use) {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let r = if meta.is_dir() {
            if is_mount_point(&p) {
                continue;
            }
            std::fs::remove_dir(&p)
        } else if meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(&p)
        } else {
            continue;
        };
        match r {
            Ok(()) => tracing::debug!("removed mount target {}", p.display()),
            // Not empty: something else writes there now; it stays.
            Err(e) => tracing::debug!("mount target {} stays: {e}", p.display()),
        }
    }
    // Kept: what still exists and is in use (removed later, once unused).
    recorded.retain(|p| {
        std::fs::symlink_metadata(p).is_ok() && in_use.iter().any(|t| t.starts_with(p))
    });
    if recorded != before {
        let w = if recorded.is_empty() {
            std::fs::remove_file(&node_list).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        } else {
            ferry_api::files::write_private(
                &node_list,
                &serde_json::to_vec(&recorded).expect("serializes"),
            )
        };
        if let Err(e) = w {
            tracing::warn!("{}: {e}", node_list.display());
        }
    }
}

/// The mounts of `container` from its `volumeMounts`.
pub fn mounts(
    container: &Value,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let target = m["mountPath"].as_str().unwrap_or_default();
        if !target.starts_with('/') {
            return Err(format!(
                "volumeMount {name}: mountPath {target:?} must be absolute"
            ));
        }
        let Some(src) = volumes.get(name) else {
            return Err(format!("volumeMount {name}: no volume of that name"));
        };
        let source = match m["subPath"].as_str().filter(|s| !s.is_empty()) {
            Some(sub) => {
                check_path(sub)?;
                src.join(sub)
            }
            None => src.clone(),
        };
        out.push(Mount {
            source,
            target: PathBuf::from(target),
            read_only: m["readOnly"].as_bool().unwrap_or(false),
        });
    }
    // The service-account volume, where the container mounts nothing itself.
    if let Some(src) = volumes.get(SA_VOLUME) {
        if !out.iter().any(|m| m.target == Path::new(SA_DIR)) {
            out.push(Mount {
                source: src.clone(),
                target: PathBuf::from(SA_DIR),
                read_only: true,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_mount_targets_go_once_no_live_pod_mounts_there() {
        let p = |s: &str| PathBuf::from(s);
        let recorded = [
            p("/a"),
            p("/a/b"),
            p("/a/b/c"),
            p("/x"),
            p("/s/file"),
            p("rel"),
        ];
        let cases: [(&str, Vec<PathBuf>, Vec<PathBuf>); 3] = [
            (
                "nothing in use: deepest first, relative paths never",
                vec![],
                vec![p("/a/b/c"), p("/a/b"), p("/s/file"), p("/a"), p("/x")],
            ),
            (
                "a live pod mounts at /a/b: it and its parents stay",
                vec![p("/a/b")],
                vec![p("/a/b/c"), p("/s/file"), p("/x")],
            ),
            (
                "a live pod mounts under /x",
                vec![p("/x/y"), p("/s/file")],
                vec![p("/a/b/c"), p("/a/b"), p("/a")],
            ),
        ];
        for (name, in_use, want) in cases {
            assert_eq!(removable(&recorded, &in_use), want, "{name}");
        }
    }

    #[test]
    fn a_removed_pods_targets_are_removed_unless_in_use_or_not_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let host = tmp.path().join("host");
        let pod_dir = data.join("pods").join("u1");
        let container = pod_dir.join("main");
        std::fs::create_dir_all(&container).unwrap();
        // The shim made these: two directory trees, an empty file, a tree
        // that someone then wrote into, and one another pod uses.
        let made = [
            host.join("cfg/app"),
            host.join("file-dir/settings.txt"),
            host.join("busy/dir"),
            host.join("shared"),
        ];
        std::fs::create_dir_all(&made[0]).unwrap();
        std::fs::create_dir_all(made[1].parent().unwrap()).unwrap();
        std::fs::write(&made[1], b"").unwrap();
        std::fs::create_dir_all(&made[2]).unwrap();
        std::fs::write(made[2].join("written-later"), b"x").unwrap();
        std::fs::create_dir_all(&made[3]).unwrap();
        let mut created = Vec::new();
        for m in &made {
            created.extend([m.parent().unwrap().to_path_buf(), m.clone()]);
        }
        created.retain(|p| p != &host);
        record_created(&container.join(CREATED_TARGETS), &created).unwrap();
        let in_use = [host.join("shared")];
        remove_created_targets(&data, Some(&pod_dir), &in_use);
        assert!(
            !host.join("cfg").exists(),
            "a created tree goes, parents too"
        );
        assert!(!host.join("file-dir").exists(), "an empty file target goes");
        assert!(
            host.join("busy/dir/written-later").exists(),
            "what was written stays"
        );
        assert!(host.join("shared").exists(), "in use by a live pod: stays");
        // The other pod goes too: its target is now removed from the node's list.
        std::fs::remove_dir_all(&pod_dir).unwrap();
        remove_created_targets(&data, None, &[]);
        assert!(!host.join("shared").exists());
        assert!(
            !data.join(CREATED_TARGETS).exists(),
            "{:?}",
            read_targets(&data.join(CREATED_TARGETS))
        );
    }

    #[test]
    fn memory_empty_dirs_are_tmpfs_of_their_size_limit_as_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting tmpfs needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
        "spec": {"volumes": [
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "disk", "emptyDir": {}},
        ]}});
        let fetched = env::Fetched::new();
        let vols = prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        let fs = |p: &Path| nix::sys::statfs::statfs(p).unwrap();
        assert_eq!(
            fs(&vols["ram"]).filesystem_type(),
            nix::sys::statfs::TMPFS_MAGIC
        );
        let s = fs(&vols["ram"]);
        assert_eq!(s.blocks() * s.block_size() as u64, 1024 * 1024);
        assert!(!is_mount_point(&vols["disk"]));
        // Syncing again mounts nothing more.
        prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        release(tmp.path());
        assert!(!is_mount_point(&vols["ram"]), "released");
        assert_eq!(
            fs(&vols["ram"]).filesystem_type(),
            fs(&vols["disk"]).filesystem_type()
        );
    }

    #[test]
    fn config_volumes_are_written_atomically_and_follow_updates() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"volumes": [
            {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "dir/a.txt"}]}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "scratch", "emptyDir": {}},
        ]}});
        let mut fetched = env::Fetched::new();
        fetched.insert(
            Source::ConfigMap("c".into()),
            Some(json!({"data": {"a": "one", "b": "two"}})),
        );
        fetched.insert(
            Source::Secret("s".into()),
            Some(json!({"data": {"pw": "czNjcmV0"}})),
        );
        let vols = prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        let read = |v: &str, p: &str| std::fs::read_to_string(vols[v].join(p)).unwrap();
        assert_eq!(read("cfg", "dir/a.txt"), "one");
        assert!(!vols["cfg"].join("b").exists(), "items select keys");
        assert_eq!(read("sec", "pw"), "s3cret");
        let mode = std::fs::metadata(vols["sec"].join("pw"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o400);
        assert_eq!(read("info", "name"), "p");
        assert_eq!(read("info", "labels"), "app=\"web\"\n");
        assert!(vols["scratch"].is_dir());
        // An update swaps `..data`; the path through the symlink sees it.
        let before = std::fs::read_link(vols["cfg"].join("..data")).unwrap();
        assert!(
            !write_atomic(&vols["cfg"], &{
                let mut f = Files::new();
                f.insert("dir/a.txt".into(), (b"one".to_vec(), 0o644));
                f
            })
            .unwrap(),
            "unchanged content is not rewritten"
        );
        fetched.insert(
            Source::ConfigMap("c".into()),
            Some(json!({"data": {"a": "uno"}})),
        );
        prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        assert_eq!(read("cfg", "dir/a.txt"), "uno");
        assert_ne!(
            std::fs::read_link(vols["cfg"].join("..data")).unwrap(),
            before
        );
        assert!(
            !vols["cfg"].join(&before).exists(),
            "the old generation is removed"
        );
    }

    #[test]
    fn the_service_account_token_is_mounted_where_pods_expect_it() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"volumes": []}});
        assert!(automounts_token(&pod));
        assert!(!automounts_token(
            &json!({"spec": {"automountServiceAccountToken": false}})
        ));
        let mut fetched = env::Fetched::new();
        // No token fetched: no volume, no mount.
        let vols = prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        assert!(vols.is_empty());
        fetched.insert(
            Source::ServiceAccountToken,
            Some(json!({"token": "a.b.c", "ca.crt": "PEM"})),
        );
        let vols = prepare(&pod, tmp.path(), &fetched, "10.0.0.1", "10.0.0.2").unwrap();
        let read = |p: &str| std::fs::read_to_string(vols[SA_VOLUME].join(p)).unwrap();
        assert_eq!(
            (read("token"), read("ca.crt"), read("namespace")),
            ("a.b.c".into(), "PEM".into(), "team".into())
        );
        // Mounted read-only at SA_DIR, unless the container mounts something there.
        let plain = json!({"name": "c"});
        let m = mounts(&plain, &vols).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].target.to_str().unwrap(), m[0].read_only, &m[0].source),
            (SA_DIR, true, &vols[SA_VOLUME])
        );
        let mut own = vols.clone();
        own.insert("mine".into(), tmp.path().to_path_buf());
        let custom = json!({"name": "c", "volumeMounts": [{"name": "mine", "mountPath": SA_DIR}]});
        let m = mounts(&custom, &own).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].source, tmp.path());
    }

    #[test]
    fn claims_mount_their_volumes_directory_made_when_the_node_provisioned_it() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = storage_dir(tmp.path());
        let dir = storage.join("pvc-u1_default_data");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"volumes": [
            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}});
        let mut f = env::Fetched::new();
        assert!(claims_pending(&pod, &f));
        f.insert(
            Source::Claim("data".into()),
            Some(json!({
            "metadata": {"name": "pvc-u1", "annotations": {
                ferry_api::storage::PROVISIONED_BY: ferry_api::storage::LOCAL_PATH_PROVISIONER}},
            "spec": {"hostPath": {"path": dir.to_str().unwrap()}}})),
        );
        assert!(!claims_pending(&pod, &f));
        let vols = prepare(&pod, tmp.path(), &f, "", "").unwrap();
        assert_eq!(vols["d"], dir);
        assert!(dir.is_dir());
        // Someone else's volume is not made up on this node.
        f.insert(
            Source::Claim("data".into()),
            Some(json!({"metadata": {"name": "pv-x"},
            "spec": {"local": {"path": tmp.path().join("absent").to_str().unwrap()}}})),
        );
        let e = prepare(&pod, tmp.path(), &f, "", "").unwrap_err();
        assert!(e.contains("does not exist on this node"), "{e}");
        // Only the provisioner's volume directories are candidates for removal.
        std::fs::create_dir_all(storage.join("pvc-u2_default_old")).unwrap();
        std::fs::create_dir_all(storage.join("unrelated")).unwrap();
        let names: Vec<String> = stored_volumes(&storage)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["pvc-u1", "pvc-u2"]);
    }

    #[test]
    fn projected_service_account_tokens_are_written_at_their_path() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"volumes": [
            {"name": "v", "projected": {"defaultMode": 0o640, "sources": [
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 7200, "path": "vault/token"}},
                {"serviceAccountToken": {"path": "api-token"}}]}},
            {"name": "w", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 7200, "path": "t"}}]}}
        ]}});
        let vault = Source::ProjectedToken {
            audience: "vault".into(),
            seconds: 7200,
        };
        let api = Source::ProjectedToken {
            audience: String::new(),
            seconds: 3600,
        };
        // One token per audience and lifetime, the default an hour for the API.
        assert_eq!(projected_tokens(&pod), [api.clone(), vault.clone()]);
        let mut fetched = env::Fetched::new();
        fetched.insert(vault.clone(), Some(json!({"token": "v.v.v"})));
        let e = prepare(&pod, tmp.path(), &fetched, "", "").unwrap_err();
        assert_eq!(
            e,
            "volume v: a service-account token for audience \"\" not found"
        );
        fetched.insert(api, Some(json!({"token": "a.a.a"})));
        let vols = prepare(&pod, tmp.path(), &fetched, "", "").unwrap();
        let read = |v: &str, p: &str| std::fs::read_to_string(vols[v].join(p)).unwrap();
        assert_eq!(read("v", "vault/token"), "v.v.v");
        assert_eq!(read("v", "api-token"), "a.a.a");
        assert_eq!(read("w", "t"), "v.v.v");
        let mode = std::fs::metadata(vols["v"].join("api-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640);
        // A renewed token replaces the file.
        fetched.insert(vault, Some(json!({"token": "v2"})));
        let vols = prepare(&pod, tmp.path(), &fetched, "", "").unwrap();
        assert_eq!(std::fs::read_to_string(vols["w"].join("t")).unwrap(), "v2");
    }

    #[test]
    fn missing_objects_and_unsupported_volumes_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = |v: Value| json!({"metadata": {"name": "p"}, "spec": {"volumes": [v]}});
        let none = env::Fetched::new();
        let e = prepare(
            &pod(json!({"name": "v", "configMap": {"name": "gone"}})),
            tmp.path(),
            &none,
            "",
            "",
        )
        .unwrap_err();
        assert_eq!(e, "configmap \"gone\" not found");
        assert!(prepare(
            &pod(json!({"name": "v", "configMap": {"name": "gone", "optional": true}})),
            tmp.path(),
            &none,
            "",
            ""
        )
        .is_ok());
        let e = prepare(
            &pod(json!({"name": "v", "persistentVolumeClaim": {"claimName": "x"}})),
            tmp.path(),
            &none,
            "",
            "",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "persistentvolumeclaim \"x\" is not bound to a volume yet"
        );
        let e = prepare(
            &pod(json!({"name": "v", "iscsi": {"targetPortal": "t"}})),
            tmp.path(),
            &none,
            "",
            "",
        )
        .unwrap_err();
        assert!(e.contains("iscsi volumes are not supported"), "{e}");
        let mut f = env::Fetched::new();
        f.insert(
            Source::ConfigMap("c".into()),
            Some(json!({"data": {"a": "1"}})),
        );
        let e = prepare(&pod(json!({"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "../x"}]}})), tmp.path(), &f, "", "").unwrap_err();
        assert!(e.contains("may not contain '..'"), "{e}");
        let vols: BTreeMap<String, PathBuf> = [("v".to_string(), PathBuf::from("/x"))].into();
        let e = mounts(
            &json!({"volumeMounts": [{"name": "v", "mountPath": "rel"}]}),
            &vols,
        )
        .unwrap_err();
        assert!(e.contains("must be absolute"), "{e}");
        let e = mounts(
            &json!({"volumeMounts": [{"name": "w", "mountPath": "/a"}]}),
            &vols,
        )
        .unwrap_err();
        assert!(e.contains("no volume of that name"), "{e}");
        let m = mounts(&json!({"volumeMounts": [{"name": "v", "mountPath": "/a", "subPath": "k", "readOnly": true}]}), &vols).unwrap();
        assert_eq!(
            m,
            [Mount {
                source: "/x/k".into(),
                target: "/a".into(),
                read_only: true
            }]
        );
    }
}
