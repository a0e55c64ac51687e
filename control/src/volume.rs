//! The PersistentVolume controller's pure core, after Kubernetes'
//! `pkg/controller/volume/persistentvolume` with the `local-path`
//! provisioner of k3s folded in:
//! - an unbound claim binds to the smallest Available volume of its class
//!   that is large enough and offers its access modes (or to the volume that
//!   names it in `claimRef`);
//! - failing that, a claim of a class whose provisioner is
//!   [`LOCAL_PATH_PROVISIONER`] gets a new volume `pvc-<claim uid>`: a
//!   directory on one node (`hostPath`, with node affinity to it), on the node
//!   the scheduler selected for a `WaitForFirstConsumer` claim;
//! - a volume's phase follows its claim: Available without one, Bound while
//!   it exists, Released once it is gone — and a Released volume whose
//!   reclaim policy is `Delete` is deleted (the node removes its directory);
//! - the protection finalizers (`kubernetes.io/pvc-protection`,
//!   `kubernetes.io/pv-protection`) are dropped only from a claim no running
//!   pod uses and a volume no claim is bound to.

use ferry_api::quantity::Quantity;
use ferry_api::storage::{
    volume_dir, CLAIM_PROTECTION, DEFAULT_STORAGE_DIR, LOCAL_PATH_PROVISIONER, NODE_STORAGE_DIR,
    PROVISIONED_BY, SELECTED_NODE, VOLUME_PROTECTION,
};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What to do about one claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimAction {
    /// Nothing (bound and recorded, or waiting for a node or a volume).
    Keep,
    /// Bind it to this existing volume: the volume's `claimRef` (when not
    /// yet set), then the claim's `volumeName` and status.
    Bind(String),
    /// Create this volume for it (its `claimRef` already names the claim);
    /// the next pass binds them.
    Provision(Box<PersistentVolume>),
    /// Its volume is bound to it but the claim's status does not say so.
    MarkBound(String),
    /// Its volume is gone: phase `Lost`.
    Lost,
    /// Being deleted and used by no pod: drop the protection finalizer.
    Unprotect,
}

/// What to do about one volume.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeAction {
    /// Nothing.
    Keep,
    /// Write this phase.
    Phase(&'static str),
    /// Delete it: Released with reclaim policy `Delete`.
    Delete,
    /// Being deleted and bound to no claim: drop the protection finalizer.
    Unprotect,
}

fn protected(m: &ObjectMeta, finalizer: &str) -> bool {
    m.finalizers.iter().flatten().any(|f| f == finalizer)
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn phase_of_volume(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The class a claim asks for (`""`: none), the beta annotation first.
pub fn claim_class(c: &PersistentVolumeClaim) -> &str {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .map(String::as_str)
        .or_else(|| c.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

fn volume_class(v: &PersistentVolume) -> &str {
    v.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn request(c: &PersistentVolumeClaim) -> Option<Quantity> {
    let r = c.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    Quantity::parse(&r.get("storage")?.0)
}

fn capacity(v: &PersistentVolume) -> Option<Quantity> {
    Quantity::parse(&v.spec.as_ref()?.capacity.as_ref()?.get("storage")?.0)
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether `r` names `c` (by namespace and name, and uid when it has one).
fn names(r: &ObjectReference, c: &PersistentVolumeClaim) -> bool {
    r.namespace == c.metadata.namespace
        && r.name == c.metadata.name
        && r.uid
            .as_deref()
            .is_none_or(|u| Some(u) == c.metadata.uid.as_deref())
}

/// Whether an unfinished pod of `pods` mounts claim `namespace/name`.
pub fn claim_in_use(pods: &[Arc<k8s_openapi::api::core::v1::Pod>], name: &str) -> bool {
    pods.iter()
        .filter(|p| crate::meta::pod_active(p) || p.metadata.deletion_timestamp.is_some())
        .any(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == name)
                    })
                })
        })
}

/// Whether volume `v` can serve claim `c`: class, size, access modes, mode.
fn fits(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    let (Some(vs), Some(cs)) = (&v.spec, &c.spec) else {
        return false;
    };
    let modes = vs.access_modes.as_deref().unwrap_or_default();
    let wanted = cs.access_modes.as_deref().unwrap_or_default();
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    volume_class(v) == claim_class(c)
        && v.metadata.deletion_timestamp.is_none()
        && request(c).is_some_and(|r| capacity(v).is_some_and(|cap| cap >= r))
        && wanted.iter().all(|w| modes.contains(w))
        && mode(&vs.volume_mode) == mode(&cs.volume_mode)
}

/// One pass over claim `c`, given every volume, class and node, and whether
/// a pod that has not finished uses it.
pub fn reconcile_claim(
    c: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    classes: &[Arc<StorageClass>],
    nodes: &[Arc<Node>],
    in_use: bool,
) -> ClaimAction {
    if c.metadata.deletion_timestamp.is_some() {
        return if !in_use && protected(&c.metadata, CLAIM_PROTECTION) {
            ClaimAction::Unprotect
        } else {
            ClaimAction::Keep
        };
    }
    let bound_to = volume_name(c);
    if !bound_to.is_empty() {
        let Some(v) = volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(bound_to))
        else {
            return match phase_of_claim(c) {
                "Lost" => ClaimAction::Keep,
                // Pre-bound to a volume that does not exist yet: wait for it.
                "Pending" | "" => ClaimAction::Keep,
                _ => ClaimAction::Lost,
            };
        };
        return match claim_ref(v) {
            None => ClaimAction::Bind(bound_to.to_string()),
            Some(r) if names(r, c) => {
                if phase_of_claim(c) == "Bound" {
                    ClaimAction::Keep
                } else {
                    ClaimAction::MarkBound(bound_to.to_string())
                }
            }
            // The volume went to another claim.
            Some(_) => ClaimAction::Keep,
        };
    }
    // A volume that already names this claim (pre-bound, or provisioned for it).
    if let Some(v) = volumes.iter().find(|v| {
        claim_ref(v).is_some_and(|r| names(r, c)) && v.metadata.deletion_timestamp.is_none()
    }) {
        return ClaimAction::Bind(v.metadata.name.clone().unwrap_or_default());
    }
    let best = volumes
        .iter()
        .filter(|v| claim_ref(v).is_none() && fits(v, c))
        .min_by_key(|v| (capacity(v), v.metadata.name.clone()));
    if let Some(v) = best {
        return ClaimAction::Bind(v.metadata.name.clone().unwrap_or_default());
    }
    let class_name = claim_class(c);
    let Some(class) = classes
        .iter()
        .find(|k| k.metadata.name.as_deref() == Some(class_name) && !class_name.is_empty())
    else {
        return ClaimAction::Keep;
    };
    if class.provisioner != LOCAL_PATH_PROVISIONER {
        return ClaimAction::Keep;
    }
    let selected = c
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE))
        .cloned();
    let node = match selected {
        Some(n) => nodes
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(&n)),
        None if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => None,
        // Immediate binding: any node, the first by name.
        None => nodes.iter().min_by_key(|n| n.metadata.name.clone()),
    };
    match node {
        Some(node) => ClaimAction::Provision(Box::new(provisioned(c, class, node))),
        None => ClaimAction::Keep,
    }
}

/// The volume the local-path provisioner makes for `c` on `node`.
pub fn provisioned(
    c: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
) -> PersistentVolume {
    let uid = c.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let ns = c.metadata.namespace.clone().unwrap_or_default();
    let claim = c.metadata.name.clone().unwrap_or_default();
    let base = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NODE_STORAGE_DIR))
        .map(String::as_str)
        .unwrap_or(DEFAULT_STORAGE_DIR);
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let hostname = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/hostname"))
        .cloned()
        .unwrap_or_else(|| node_name.clone());
    let spec = c.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_default();
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(BTreeMap::from([
                (
                    PROVISIONED_BY.to_string(),
                    LOCAL_PATH_PROVISIONER.to_string(),
                ),
                (SELECTED_NODE.to_string(), node_name),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: spec.access_modes.clone(),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            host_path: Some(HostPathVolumeSource {
                path: volume_dir(base, &name, &ns, &claim),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![hostname]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns),
                name: Some(claim),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// One pass over volume `v`. `claim` is the claim its `claimRef` names as the
/// cache has it (None: not there), and `settled` whether that cache is recent
/// enough to trust an absence (it has seen the volume's last write).
pub fn reconcile_volume(
    v: &PersistentVolume,
    claim: Option<&PersistentVolumeClaim>,
    settled: bool,
) -> VolumeAction {
    let phase = phase_of_volume(v);
    if v.metadata.deletion_timestamp.is_some() {
        let bound = claim_ref(v).is_some_and(|r| claim.is_some_and(|c| names(r, c)));
        return if !bound && settled && protected(&v.metadata, VOLUME_PROTECTION) {
            VolumeAction::Unprotect
        } else {
            VolumeAction::Keep
        };
    }
    let want = match claim_ref(v) {
        None => "Available",
        Some(r) => match claim {
            Some(c) if names(r, c) => "Bound",
            _ if !settled => return VolumeAction::Keep,
            _ => {
                let policy = v
                    .spec
                    .as_ref()
                    .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
                if policy == Some("Delete") {
                    return VolumeAction::Delete;
                }
                "Released"
            }
        },
    };
    if phase == want {
        VolumeAction::Keep
    } else {
        VolumeAction::Phase(want)
    }
}

/// A pod's claims as the scheduler sees them: the node constraints of their
/// bound volumes, and the claims still waiting for their first consumer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PodClaims {
    /// Each bound volume's required node terms (any one term of each).
    pub terms: Vec<Vec<NodeSelectorTerm>>,
    /// Unbound `WaitForFirstConsumer` claims (name, node already selected).
    pub waiting: Vec<(String, Option<String>)>,
}

/// What a pod's `persistentVolumeClaim` volumes ask of its node, or why it
/// cannot be scheduled yet (Kubernetes' VolumeBinding filter messages).
pub fn pod_claims(
    pod: &k8s_openapi::api::core::v1::Pod,
    claims: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
    volumes: &dyn Fn(&str) -> Option<Arc<PersistentVolume>>,
    classes: &[Arc<StorageClass>],
) -> Result<PodClaims, String> {
    let mut out = PodClaims::default();
    let vols = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for v in vols {
        let Some(src) = &v.persistent_volume_claim else {
            continue;
        };
        let name = &src.claim_name;
        let Some(c) = claims(name) else {
            return Err(format!("persistentvolumeclaim \"{name}\" not found"));
        };
        if c.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        let bound_to = volume_name(&c);
        if !bound_to.is_empty() {
            let Some(pv) = volumes(bound_to) else {
                return Err(format!("pvc {name} bound to non-existent pv {bound_to}"));
            };
            if let Some(req) = pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
            {
                out.terms.push(req.node_selector_terms.clone());
            }
            continue;
        }
        let class = claim_class(&c);
        let wait = classes.iter().any(|k| {
            k.metadata.name.as_deref() == Some(class)
                && k.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
        });
        if !wait {
            return Err("pod has unbound immediate PersistentVolumeClaims".into());
        }
        let selected = c
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SELECTED_NODE))
            .cloned();
        out.waiting.push((name.clone(), selected));
    }
    Ok(out)
}

/// `pod` with its required node affinity narrowed by `claims`: the volumes'
/// terms, and the node already selected for a waiting claim. Kubernetes ORs
/// the terms of one selector, so each added selector multiplies them out.
pub fn constrained(
    pod: &k8s_openapi::api::core::v1::Pod,
    claims: &PodClaims,
) -> k8s_openapi::api::core::v1::Pod {
    let mut selectors = claims.terms.clone();
    for (_, node) in &claims.waiting {
        if let Some(n) = node {
            selectors.push(vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![NodeSelectorRequirement {
                    key: "metadata.name".into(),
                    operator: "In".into(),
                    values: Some(vec![n.clone()]),
                }]),
            }]);
        }
    }
    let mut pod = pod.clone();
    if selectors.is_empty() {
        return pod;
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Default::default);
    let na = affinity.node_affinity.get_or_insert_with(Default::default);
    let mut terms = na
        .required_during_scheduling_ignored_during_execution
        .take()
        .map(|s| s.node_selector_terms)
        .unwrap_or_else(|| vec![NodeSelectorTerm::default()]);
    for sel in selectors {
        let mut next = Vec::new();
        for a in &terms {
            for b in &sel {
                let join = |x: &Option<Vec<NodeSelectorRequirement>>,
                            y: &Option<Vec<NodeSelectorRequirement>>| {
                    let v: Vec<_> = x.iter().chain(y).flatten().cloned().collect();
                    (!v.is_empty()).then_some(v)
                };
                next.push(NodeSelectorTerm {
                    match_expressions: join(&a.match_expressions, &b.match_expressions),
                    match_fields: join(&a.match_fields, &b.match_fields),
                });
            }
        }
        terms = next;
    }
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: terms,
    });
    pod
}

#[cfg(test)]
mod tests;
