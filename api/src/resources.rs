//! The Kubernetes resource model ferry serves: which kinds exist, where they are
//! stored, and the name rules every object obeys.
//!
//! Objects live in the store under `/registry/<resource>/<namespace>/<name>`
//! (cluster-scoped kinds have no namespace segment). The API server (a later
//! layer) decodes manifests into `k8s-openapi` types; this module answers the
//! questions that come first: is this apiVersion/kind served, what is its
//! resource name and scope, and is this a valid object name.

/// One served kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Resource {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind, as in manifests.
    pub kind: &'static str,
    /// Plural resource name, as in REST paths and store keys.
    pub plural: &'static str,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Short names accepted by the CLI.
    pub short_names: &'static [&'static str],
}

impl Resource {
    /// `apiVersion` as written in manifests: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The `ObjectRequest.resource` naming this kind: its plural, or for the
    /// metrics kinds `<plural>.metrics.k8s.io`.
    pub fn request_name(&self) -> String {
        if self.group == crate::metrics::GROUP {
            format!("{}.{}", self.plural, self.group)
        } else {
            self.plural.to_string()
        }
    }

    /// The store key of an object, or of the whole collection when `name` is
    /// `None` (a prefix ending in `/`). A namespaced kind with `namespace: None`
    /// gives the prefix of every namespace's objects.
    pub fn key(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut k = format!("/registry/{}/", self.plural);
        if self.namespaced {
            if let Some(ns) = namespace {
                k.push_str(ns);
                k.push('/');
            } else {
                return k;
            }
        }
        if let Some(n) = name {
            k.push_str(n);
        }
        k
    }
}

macro_rules! resources {
    ($( $group:literal $version:literal $kind:literal $plural:literal $ns:literal [$($short:literal),*] ),* $(,)?) => {
        /// Every kind ferry serves.
        pub const RESOURCES: &[Resource] = &[
            $( Resource { group: $group, version: $version, kind: $kind, plural: $plural,
                          namespaced: $ns, short_names: &[$($short),*] } ),*
        ];
    };
}

resources! {
    "" "v1" "Namespace" "namespaces" false ["ns"],
    "" "v1" "Node" "nodes" false ["no"],
    "" "v1" "Pod" "pods" true ["po"],
    "" "v1" "Service" "services" true ["svc"],
    "" "v1" "Endpoints" "endpoints" true ["ep"],
    "" "v1" "ConfigMap" "configmaps" true ["cm"],
    "" "v1" "Secret" "secrets" true [],
    "" "v1" "ServiceAccount" "serviceaccounts" true ["sa"],
    "" "v1" "Event" "events" true ["ev"],
    "" "v1" "PersistentVolumeClaim" "persistentvolumeclaims" true ["pvc"],
    "" "v1" "PersistentVolume" "persistentvolumes" false ["pv"],
    "" "v1" "ResourceQuota" "resourcequotas" true ["quota"],
    "" "v1" "LimitRange" "limitranges" true ["limits"],
    "" "v1" "ReplicationController" "replicationcontrollers" true ["rc"],
    "apps" "v1" "ReplicaSet" "replicasets" true ["rs"],
    "apps" "v1" "Deployment" "deployments" true ["deploy"],
    "apps" "v1" "DaemonSet" "daemonsets" true ["ds"],
    "apps" "v1" "StatefulSet" "statefulsets" true ["sts"],
    "apps" "v1" "ControllerRevision" "controllerrevisions" true [],
    "batch" "v1" "Job" "jobs" true [],
    "batch" "v1" "CronJob" "cronjobs" true ["cj"],
    "autoscaling" "v2" "HorizontalPodAutoscaler" "horizontalpodautoscalers" true ["hpa"],
    "coordination.k8s.io" "v1" "Lease" "leases" true [],
    "discovery.k8s.io" "v1" "EndpointSlice" "endpointslices" true [],
    "networking.k8s.io" "v1" "NetworkPolicy" "networkpolicies" true ["netpol"],
    "networking.k8s.io" "v1" "Ingress" "ingresses" true ["ing"],
    "networking.k8s.io" "v1" "IngressClass" "ingressclasses" false [],
    "policy" "v1" "PodDisruptionBudget" "poddisruptionbudgets" true ["pdb"],
    "scheduling.k8s.io" "v1" "PriorityClass" "priorityclasses" false ["pc"],
    "storage.k8s.io" "v1" "StorageClass" "storageclasses" false ["sc"],
    "rbac.authorization.k8s.io" "v1" "Role" "roles" true [],
    "rbac.authorization.k8s.io" "v1" "ClusterRole" "clusterroles" false [],
    "rbac.authorization.k8s.io" "v1" "RoleBinding" "rolebindings" true [],
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" "clusterrolebindings" false [],
    "authorization.k8s.io" "v1" "SelfSubjectAccessReview" "selfsubjectaccessreviews" false [],
    "authorization.k8s.io" "v1" "SelfSubjectRulesReview" "selfsubjectrulesreviews" false [],
    "authorization.k8s.io" "v1" "SubjectAccessReview" "subjectaccessreviews" false [],
    "authorization.k8s.io" "v1" "LocalSubjectAccessReview" "localsubjectaccessreviews" true [],
    "authentication.k8s.io" "v1" "SelfSubjectReview" "selfsubjectreviews" false [],
    "authentication.k8s.io" "v1" "TokenReview" "tokenreviews" false [],
}

/// The `metrics.k8s.io` kinds: answered from the masters' memory (see
/// [`crate::metrics`]), never stored, so kept out of [`RESOURCES`]; their
/// `ObjectRequest.resource` is [`crate::metrics::NODES`] / [`crate::metrics::PODS`].
pub const METRICS: &[Resource] = &[
    Resource {
        group: "metrics.k8s.io",
        version: "v1beta1",
        kind: "NodeMetrics",
        plural: "nodes",
        namespaced: false,
        short_names: &[],
    },
    Resource {
        group: "metrics.k8s.io",
        version: "v1beta1",
        kind: "PodMetrics",
        plural: "pods",
        namespaced: true,
        short_names: &[],
    },
];

/// Discovery of [`METRICS`], as metrics-server lists it (no singular name).
const METRICS_DISCOVERY: &[Discovery] = &[
    disc("nodes", "", &["get", "list"], &[], &[]),
    disc("pods", "", &["get", "list"], &[], &[]),
];

/// A subresource of a served kind (`pods/status`, `deployments/scale`), as
/// Kubernetes 1.33 lists it in discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The path segment after the object's name (`status`, `scale`, `log`).
    pub name: &'static str,
    /// API group of the kind it takes or returns; with `version`, both empty
    /// when that kind is in the parent's group-version (as in `APIResource`).
    pub group: &'static str,
    /// Version of that kind, empty when it is the parent's.
    pub version: &'static str,
    /// The kind it takes or returns (`Scale`, `PodExecOptions`, the parent's own kind).
    pub kind: &'static str,
    /// Verbs, as Kubernetes lists them (sorted).
    pub verbs: &'static [&'static str],
}

/// What discovery says of a served kind beyond [`Resource`]: its singular
/// name, verbs, categories and subresources (Kubernetes 1.33's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    /// The kind's plural resource name (the key into [`RESOURCES`]).
    pub plural: &'static str,
    /// Singular resource name (`pod`, `endpoints`).
    pub singular: &'static str,
    /// Verbs on the resource itself, sorted as Kubernetes lists them.
    pub verbs: &'static [&'static str],
    /// Categories (`all` for the kinds `kubectl get all` shows).
    pub categories: &'static [&'static str],
    /// Subresources, sorted by name.
    pub subresources: &'static [Subresource],
}

impl Resource {
    /// The discovery facts of this kind (every served kind has them).
    pub fn discovery(&self) -> &'static Discovery {
        if self.group == crate::metrics::GROUP {
            return METRICS_DISCOVERY
                .iter()
                .find(|d| d.plural == self.plural)
                .unwrap_or(&UNKNOWN_DISCOVERY);
        }
        DISCOVERY
            .iter()
            .find(|d| d.plural == self.plural)
            .unwrap_or(&UNKNOWN_DISCOVERY)
    }
}

/// Read, write and watch: what most kinds serve.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces have no `deletecollection`.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// `*/status`, `*/scale`, `pods/ephemeralcontainers`.
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
/// The access reviews: create only, never stored.
const CREATE: &[&str] = &["create"];
/// Streaming subresources (`exec`, `attach`, `portforward`).
const CONNECT: &[&str] = &["create", "get"];
const ALL: &[&str] = &["all"];

const fn sub(
    name: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        group: "",
        version: "",
        kind,
        verbs,
    }
}

const fn sub_in(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

const fn disc(
    plural: &'static str,
    singular: &'static str,
    verbs: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> Discovery {
    Discovery {
        plural,
        singular,
        verbs,
        categories,
        subresources,
    }
}

const UNKNOWN_DISCOVERY: Discovery = disc("", "", ALL_VERBS, &[], &[]);

/// Discovery facts of every served kind, in [`RESOURCES`] order. The
/// subresources are those Kubernetes 1.33 serves for these kinds, less the
/// ones ferry has no handler for (`pods/proxy`, `nodes/proxy`,
/// `services/proxy`, `pods/resize`).
pub const DISCOVERY: &[Discovery] = &[
    disc(
        "namespaces",
        "namespace",
        NAMESPACE_VERBS,
        &[],
        &[
            sub("finalize", "Namespace", &["update"]),
            sub("status", "Namespace", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "nodes",
        "node",
        ALL_VERBS,
        &[],
        &[sub("status", "Node", GET_PATCH_UPDATE)],
    ),
    disc(
        "pods",
        "pod",
        ALL_VERBS,
        ALL,
        &[
            sub("attach", "PodAttachOptions", CONNECT),
            sub("binding", "Binding", &["create"]),
            sub("ephemeralcontainers", "Pod", GET_PATCH_UPDATE),
            sub_in("eviction", "policy", "v1", "Eviction", &["create"]),
            sub("exec", "PodExecOptions", CONNECT),
            sub("log", "Pod", &["get"]),
            sub("portforward", "PodPortForwardOptions", CONNECT),
            sub("status", "Pod", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "services",
        "service",
        ALL_VERBS,
        ALL,
        &[sub("status", "Service", GET_PATCH_UPDATE)],
    ),
    disc("endpoints", "endpoints", ALL_VERBS, &[], &[]),
    disc("configmaps", "configmap", ALL_VERBS, &[], &[]),
    disc("secrets", "secret", ALL_VERBS, &[], &[]),
    disc(
        "serviceaccounts",
        "serviceaccount",
        ALL_VERBS,
        &[],
        &[sub_in(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )],
    ),
    disc("events", "event", ALL_VERBS, &[], &[]),
    disc(
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ALL_VERBS,
        &[],
        &[sub("status", "PersistentVolumeClaim", GET_PATCH_UPDATE)],
    ),
    disc(
        "resourcequotas",
        "resourcequota",
        ALL_VERBS,
        &[],
        &[sub("status", "ResourceQuota", GET_PATCH_UPDATE)],
    ),
    disc("limitranges", "limitrange", ALL_VERBS, &[], &[]),
    disc(
        "replicationcontrollers",
        "replicationcontroller",
        ALL_VERBS,
        ALL,
        &[
            sub_in("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
            sub("status", "ReplicationController", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "persistentvolumes",
        "persistentvolume",
        ALL_VERBS,
        &[],
        &[sub("status", "PersistentVolume", GET_PATCH_UPDATE)],
    ),
    disc(
        "replicasets",
        "replicaset",
        ALL_VERBS,
        ALL,
        &[
            sub_in("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
            sub("status", "ReplicaSet", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "deployments",
        "deployment",
        ALL_VERBS,
        ALL,
        &[
            sub_in("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
            sub("status", "Deployment", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "daemonsets",
        "daemonset",
        ALL_VERBS,
        ALL,
        &[sub("status", "DaemonSet", GET_PATCH_UPDATE)],
    ),
    disc(
        "statefulsets",
        "statefulset",
        ALL_VERBS,
        ALL,
        &[
            sub_in("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
            sub("status", "StatefulSet", GET_PATCH_UPDATE),
        ],
    ),
    disc(
        "controllerrevisions",
        "controllerrevision",
        ALL_VERBS,
        &[],
        &[],
    ),
    disc(
        "jobs",
        "job",
        ALL_VERBS,
        ALL,
        &[sub("status", "Job", GET_PATCH_UPDATE)],
    ),
    disc(
        "cronjobs",
        "cronjob",
        ALL_VERBS,
        ALL,
        &[sub("status", "CronJob", GET_PATCH_UPDATE)],
    ),
    disc(
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ALL_VERBS,
        ALL,
        &[sub("status", "HorizontalPodAutoscaler", GET_PATCH_UPDATE)],
    ),
    disc("leases", "lease", ALL_VERBS, &[], &[]),
    disc("endpointslices", "endpointslice", ALL_VERBS, &[], &[]),
    disc("networkpolicies", "networkpolicy", ALL_VERBS, &[], &[]),
    disc(
        "ingresses",
        "ingress",
        ALL_VERBS,
        &[],
        &[sub("status", "Ingress", GET_PATCH_UPDATE)],
    ),
    disc("ingressclasses", "ingressclass", ALL_VERBS, &[], &[]),
    disc(
        "poddisruptionbudgets",
        "poddisruptionbudget",
        ALL_VERBS,
        &[],
        &[sub("status", "PodDisruptionBudget", GET_PATCH_UPDATE)],
    ),
    disc("priorityclasses", "priorityclass", ALL_VERBS, &[], &[]),
    disc("storageclasses", "storageclass", ALL_VERBS, &[], &[]),
    disc("roles", "role", ALL_VERBS, &[], &[]),
    disc("clusterroles", "clusterrole", ALL_VERBS, &[], &[]),
    disc("rolebindings", "rolebinding", ALL_VERBS, &[], &[]),
    disc(
        "clusterrolebindings",
        "clusterrolebinding",
        ALL_VERBS,
        &[],
        &[],
    ),
    disc(
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        CREATE,
        &[],
        &[],
    ),
    disc(
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        CREATE,
        &[],
        &[],
    ),
    disc(
        "subjectaccessreviews",
        "subjectaccessreview",
        CREATE,
        &[],
        &[],
    ),
    disc(
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        CREATE,
        &[],
        &[],
    ),
    disc("selfsubjectreviews", "selfsubjectreview", CREATE, &[], &[]),
    disc("tokenreviews", "tokenreview", CREATE, &[], &[]),
];

/// Why a kind or name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The apiVersion/kind pair is not served.
    #[error("{0}")]
    UnknownKind(String),
    /// A name breaks the DNS rules for its field.
    #[error("{field}: Invalid value: {value:?}: {reason}")]
    InvalidName {
        /// Field path (e.g. `metadata.name`).
        field: String,
        /// The value.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// Finds the kind a manifest names, with a message listing what is served when not found.
pub fn by_api_version_kind(
    api_version: &str,
    kind: &str,
) -> Result<&'static Resource, ResourceError> {
    if let Some(r) = RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
    {
        return Ok(r);
    }
    let served: Vec<String> = RESOURCES
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.api_version())
        .collect();
    Err(ResourceError::UnknownKind(if served.is_empty() {
        format!("no kind {kind:?} is served (see `ferry api-resources`)")
    } else {
        format!(
            "kind {kind:?} is not served in apiVersion {api_version:?}; use {}",
            served.join(" or ")
        )
    }))
}

/// Finds a kind by what a CLI user types: kind, plural, singular or short name,
/// case-insensitively (`pods`, `pod`, `po`, `Pod`, `deploy`).
pub fn by_cli_name(name: &str) -> Option<&'static Resource> {
    let n = name.to_ascii_lowercase();
    RESOURCES.iter().find(|r| {
        r.plural == n || r.kind.to_ascii_lowercase() == n || r.short_names.contains(&n.as_str())
    })
}

/// Checks a DNS-1123 label (namespaces, most service-like names): at most 63
/// lowercase alphanumerics or '-', starting and ending alphanumeric.
pub fn check_dns_label(field: &str, value: &str) -> Result<(), ResourceError> {
    let bad = |reason: &str| invalid_name(field, value, reason);
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > 63 {
        return bad("must be no more than 63 characters");
    }
    if !label_ok(value) {
        return bad("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')");
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (most object names): at most 253 characters,
/// dot-separated labels of lowercase alphanumerics or '-'.
pub fn check_dns_subdomain(field: &str, value: &str) -> Result<(), ResourceError> {
    let bad = |reason: &str| invalid_name(field, value, reason);
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > 253 {
        return bad("must be no more than 253 characters");
    }
    if !value.split('.').all(label_ok) {
        return bad("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')");
    }
    Ok(())
}

fn invalid_name(field: &str, value: &str, reason: &str) -> Result<(), ResourceError> {
    Err(ResourceError::InvalidName {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    })
}

fn label_ok(l: &str) -> bool {
    let b = l.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_and_unknowns_explain() {
        let d = by_api_version_kind("apps/v1", "Deployment").unwrap();
        assert_eq!((d.plural, d.namespaced), ("deployments", true));
        assert_eq!(
            d.key(Some("default"), Some("web")),
            "/registry/deployments/default/web"
        );
        assert_eq!(
            d.key(Some("default"), None),
            "/registry/deployments/default/"
        );
        assert_eq!(d.key(None, None), "/registry/deployments/");
        let ns = by_api_version_kind("v1", "Namespace").unwrap();
        assert_eq!(
            ns.key(Some("ignored"), Some("kube-system")),
            "/registry/namespaces/kube-system"
        );
        let cases = [
            ("extensions/v1beta1", "Deployment", "use apps/v1"),
            ("v1", "Frobnicator", "no kind \"Frobnicator\""),
            ("apps/v1", "Pod", "use v1"),
        ];
        for (v, k, want) in cases {
            let e = by_api_version_kind(v, k).unwrap_err().to_string();
            assert!(e.contains(want), "{v} {k}: {e}");
        }
        assert_eq!(by_cli_name("po").unwrap().kind, "Pod");
        assert_eq!(by_cli_name("Deployments").unwrap().kind, "Deployment");
        assert_eq!(by_cli_name("cm").unwrap().kind, "ConfigMap");
        assert!(by_cli_name("gizmos").is_none());
        let mut plurals: Vec<_> = RESOURCES.iter().map(|r| r.plural).collect();
        plurals.sort();
        plurals.dedup();
        assert_eq!(plurals.len(), RESOURCES.len(), "plurals are unique");
    }

    #[test]
    fn every_kind_has_discovery_facts() {
        for r in RESOURCES {
            let d = r.discovery();
            assert_eq!(d.plural, r.plural, "{} has no DISCOVERY entry", r.kind);
            assert_eq!(d.singular, r.kind.to_ascii_lowercase());
            assert!(d.verbs.windows(2).all(|w| w[0] < w[1]), "{}", r.plural);
            assert!(d.subresources.windows(2).all(|w| w[0].name < w[1].name));
            for s in d.subresources {
                assert!(s.verbs.windows(2).all(|w| w[0] < w[1]));
                assert_eq!(s.group.is_empty(), s.version.is_empty());
            }
        }
        assert_eq!(DISCOVERY.len(), RESOURCES.len());
    }

    #[test]
    fn dns_names() {
        let long_label = "a".repeat(64);
        let long_sub = format!("{}.{}", "a".repeat(200), "b".repeat(60));
        let cases: &[(&str, bool, bool)] = &[
            // value, valid label, valid subdomain
            ("web", true, true),
            ("web-1", true, true),
            ("1web", true, true),
            ("web.example", false, true),
            ("Web", false, false),
            ("-web", false, false),
            ("web-", false, false),
            ("web_1", false, false),
            ("", false, false),
            ("a..b", false, false),
            (&long_label, false, true),
            (&long_sub, false, false),
        ];
        for (v, label, sub) in cases {
            assert_eq!(
                check_dns_label("metadata.name", v).is_ok(),
                *label,
                "label {v:?}"
            );
            assert_eq!(
                check_dns_subdomain("metadata.name", v).is_ok(),
                *sub,
                "subdomain {v:?}"
            );
        }
        let e = check_dns_subdomain("metadata.name", "Bad_Name")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("metadata.name: Invalid value: \"Bad_Name\""),
            "{e}"
        );
    }
}
