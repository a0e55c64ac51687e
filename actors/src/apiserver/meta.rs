//! Object metadata the API server owns: names, uids, timestamps, resourceVersion.
//!
//! Stored objects never carry `metadata.resourceVersion`: it is the store's
//! `mod_revision`, written in on every read.

use ferry_api::kv::KeyValue;
use ferry_api::object::Status;
use ferry_api::resources::Resource;
use serde_json::{json, Map, Value};

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name`.
pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

/// The `metadata` map, created when missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// Decodes a stored value and writes its resourceVersion in.
pub fn decode(kv: &KeyValue) -> Result<Value, Status> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| Status::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// Writes `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rev: u64) {
    metadata_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

/// Parses a resourceVersion string; empty means none.
pub fn parse_rv(rv: Option<&str>) -> Result<Option<u64>, Status> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            Status::bad_request(format!(
                "invalid resourceVersion {s:?}: must be a decimal revision"
            ))
        }),
    }
}

/// The object's `metadata.resourceVersion`, if it has one.
pub fn resource_version(obj: &Value) -> Result<Option<u64>, Status> {
    parse_rv(meta_str(obj, "resourceVersion"))
}

/// The encoded form to store: the object without its resourceVersion.
pub fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    ferry_api::clock::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now plus `secs`, as a Kubernetes timestamp.
pub fn now_plus(secs: i64) -> String {
    let now = ferry_api::clock::now();
    let t = now
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(now);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random version-4 UUID.
pub fn new_uid() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut uid = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            uid.push('-');
        }
        uid.push(HEX[usize::from(x >> 4)] as char);
        uid.push(HEX[usize::from(x & 0x0f)] as char);
    }
    uid
}

/// `generateName` plus five random characters, as Kubernetes makes them.
pub fn generate_name(prefix: &str) -> String {
    generate_name_from(prefix, None)
}

/// [`generate_name`] with the suffix taken from `seed` when given (so every
/// attempt of one request generates the same name), random otherwise.
pub fn generate_name_from(prefix: &str, seed: Option<u128>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix = &prefix[..prefix.len().min(58)];
    let mut seed = seed.unwrap_or_else(rand::random);
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(seed % ALPHABET.len() as u128) as usize] as char;
            seed /= ALPHABET.len() as u128;
            c
        })
        .collect();
    format!("{prefix}{suffix}")
}

/// `Kind.group` as Kubernetes names a kind in messages (`Deployment.apps`, `Pod`).
pub fn qualified_kind(res: &Resource) -> String {
    if res.group.is_empty() {
        res.kind.to_string()
    } else {
        format!("{}.{}", res.kind, res.group)
    }
}

/// `plural.group` as Kubernetes names a resource in messages (`deployments.apps`, `pods`).
pub fn qualified_resource(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `metadata.finalizers` (removing the field when empty).
pub fn set_finalizers(obj: &mut Value, fins: &[String]) {
    let m = metadata_mut(obj);
    if fins.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(fins));
    }
}

/// The uids in `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the kind has a `status` that only the status subresource may change.
pub fn has_status_subresource(res: &Resource) -> bool {
    !matches!(
        res.kind,
        "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Event"
            | "Endpoints"
            | "EndpointSlice"
            | "NetworkPolicy"
            | "Lease"
            | "PriorityClass"
            | "StorageClass"
            | "IngressClass"
            | "LimitRange"
            | "ControllerRevision"
    )
}

/// Whether the kind's `metadata.generation` is the server's, as Kubernetes
/// 1.33's registry strategies keep it: 1 on create, one more on each update
/// that [`generation_moves`]. Other kinds keep what a create gave (most give
/// none) and no update changes it: Services, ConfigMaps, Namespaces, Nodes,
/// claims and volumes, quotas, HorizontalPodAutoscalers, RBAC, ...
pub fn tracks_generation(res: &Resource) -> bool {
    matches!(
        res.kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "PodDisruptionBudget"
            | "Ingress"
            | "IngressClass"
            | "NetworkPolicy"
            | "EndpointSlice"
    )
}

/// Whether an update from `old` to `new` moves a tracked generation: a spec
/// change (a Pod's since 1.33, the `PodObservedGenerationTracking` KEP's
/// ungated half), or for an EndpointSlice, which has no spec, any change but
/// to metadata other than its labels.
pub fn generation_moves(res: &Resource, old: &Value, new: &Value) -> bool {
    if res.kind == "EndpointSlice" {
        let body = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("metadata");
            }
            v
        };
        return body(old) != body(new)
            || old.pointer("/metadata/labels") != new.pointer("/metadata/labels");
    }
    old.get("spec") != new.get("spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_generated_name_is_the_same_on_every_attempt() {
        let a = generate_name_from("cm-", Some(12345));
        assert_eq!(a, generate_name_from("cm-", Some(12345)));
        assert_ne!(a, generate_name_from("cm-", Some(12346)));
        assert!(a.starts_with("cm-") && a.len() == 8);
    }

    #[test]
    fn uids_names_and_versions() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let dashes: Vec<usize> = u.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23], "{u}");
        assert!("89ab".contains(&u[19..20]), "variant bits: {u}");
        assert!(u
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(u, new_uid());
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        let mut o = json!({"metadata": {"name": "x"}});
        set_resource_version(&mut o, 42);
        assert_eq!(resource_version(&o).unwrap(), Some(42));
        assert!(!String::from_utf8(encode(&o))
            .unwrap()
            .contains("resourceVersion"));
        assert!(parse_rv(Some("abc")).is_err());
        assert_eq!(now().len(), 20);
    }
}
