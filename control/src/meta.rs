//! Small facts about objects that every controller reads the same way.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The cache key of an object: `namespace/name`, or `name` when cluster-scoped.
pub fn key(meta: &ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// An owner reference naming `meta`'s object as controller (with
/// `blockOwnerDeletion`, as Kubernetes' controllers set it).
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `sel` matches `labels`. An empty selector matches everything (the
/// workload kinds' admission refuses empty selectors before they get here).
pub fn selector_matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let got = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a pod is terminating or finished: it no longer counts as a replica.
pub fn pod_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether a pod has finished (Succeeded or Failed).
pub fn pod_terminal(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// The time its Ready condition became True, if it is True.
pub fn ready_since(p: &Pod) -> Option<Option<Timestamp>> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| {
        c.last_transition_time
            .as_ref()
            .map(|t| Timestamp::from_second(t.0.as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
    })
}

/// Whether a pod is Ready.
pub fn pod_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// Whether a pod is available: Ready for at least `min_ready_seconds` at `now`.
pub fn pod_available(p: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(p) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// The `pod-template-hash` of a template (and the Deployment's
/// `collisionCount`): FNV-1a of its JSON, in Kubernetes' safe alphabet (no
/// vowels, so a hash never spells a word).
pub fn template_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = t.clone();
    // The hash label itself never counts.
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove("pod-template-hash");
            if l.is_empty() {
                m.labels = None;
            }
        }
    }
    if t.metadata == Some(ObjectMeta::default()) {
        t.metadata = None;
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    let mut eat = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    };
    bytes.iter().copied().for_each(&mut eat);
    if let Some(c) = collision_count {
        c.to_le_bytes().iter().copied().for_each(&mut eat);
    }
    safe_encode(&h.to_string())
}

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into an alphabet
/// without vowels or confusable characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// `now` as Kubernetes writes times.
pub fn time(now: Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_kubernetes_matches_them() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let cases = [
            (labels(&[("app", "web"), ("tier", "a")]), true),
            (labels(&[("app", "web"), ("tier", "c")]), false),
            (labels(&[("app", "web")]), false),
            (
                labels(&[("app", "web"), ("tier", "b"), ("canary", "1")]),
                false,
            ),
            (labels(&[("app", "db"), ("tier", "a")]), false),
        ];
        for (l, want) in cases {
            assert_eq!(selector_matches(&sel, Some(&l)), want, "{l:?}");
        }
        assert!(selector_matches(&LabelSelector::default(), None));
    }

    #[test]
    fn template_hashes_are_stable_safe_and_ignore_their_own_label() {
        let mut t = PodTemplateSpec::default();
        let h = template_hash(&t, None);
        assert!(!h.is_empty());
        assert!(h
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        t.metadata = Some(ObjectMeta {
            labels: Some(labels(&[("pod-template-hash", &h)])),
            ..ObjectMeta::default()
        });
        assert_eq!(
            template_hash(&t, None),
            template_hash(&PodTemplateSpec::default(), None)
        );
        assert_ne!(
            template_hash(&t, Some(1)),
            h,
            "the collision count changes the hash"
        );
    }
}
