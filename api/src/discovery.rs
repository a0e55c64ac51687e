//! The documents a Kubernetes REST front end serves so that unmodified
//! clients (kubectl 1.27–1.33, the official Python client) find their way:
//! `/version`, discovery (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`,
//! aggregated discovery) and OpenAPI (`/openapi/v3`, `/openapi/v3/<gv>`,
//! `/openapi/v2`). Everything here is pure: built from
//! [`RESOURCES`] and its
//! [`Discovery`](crate::resources::Discovery) facts, the OpenAPI schemas from
//! k8s-openapi's `schemars` feature; the large documents are built once.
//!
//! What the front end must do around them (learned from client-go, cli-runtime
//! and kubectl 1.27–1.33):
//!
//! - **Discovery.** client-go asks `GET /api` and `GET /apis` with
//!   `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json`
//!   (kubectl 1.30+; 1.27–1.29 send only the `v2beta1` range and `application/json`).
//!   It picks the format by the response's `Content-Type` (media type
//!   parameters `g`, `v`, `as`, in any order), so the answer must carry
//!   [`CONTENT_TYPE_DISCOVERY_V2`] or [`CONTENT_TYPE_DISCOVERY_V2BETA1`] with an
//!   aggregated body, or plain `application/json` with `APIVersions` /
//!   `APIGroupList` (then it fetches `/api/v1` and every `/apis/<g>/<v>`).
//!   [`discovery_format`] makes that choice from the `Accept` header; add
//!   `Vary: Accept`. Both of `/api` and `/apis` must answer in the same format:
//!   client-go only uses aggregated resources when both are aggregated. A 404 on
//!   `/api` is tolerated (empty core group); any other error fails discovery.
//! - **OpenAPI v3.** `GET /openapi/v3` ([`openapi_v3_root`]) and then the
//!   `serverRelativeURL` it lists, with `Accept: application/json`. The
//!   `?hash=` is the document's SHA-512 ([`openapi_v3_hash`]); Kubernetes
//!   answers a matching hash with `Cache-Control: public, immutable` and an
//!   `ETag`, and a stale one with a redirect to the current URL. kubectl uses
//!   v3 for `explain`, for the field-validation check of `create`/`apply`/
//!   `replace` (the `fieldValidation` parameter of the PATCH operation matched by
//!   `x-kubernetes-group-version-kind`; when found, kubectl sends
//!   `fieldValidation=Strict` and expects the server to reject unknown fields),
//!   and (1.29+) for the strategic-merge-patch metadata of client-side `apply`
//!   and `diff` (`x-kubernetes-patch-strategy` / `-merge-key` on the schemas,
//!   used when the PATCH operation accepts `application/strategic-merge-patch+json`).
//! - **OpenAPI v2.** kubectl asks for it only as protobuf
//!   (`Accept:` [`ACCEPT_OPENAPI_V2_PROTOBUF`]), and the answer must carry the
//!   dotted [`CONTENT_TYPE_OPENAPI_V2_PROTOBUF`] (Go cannot parse the `@` form).
//!   kubectl 1.27 and 1.28 fetch it eagerly for `explain`, client-side `diff`,
//!   and `create`/`apply`/`replace` with the default `--validate=true`, and
//!   fail when it errors; 1.29+ fetch it only as a fallback (when v3 is missing
//!   or lacks the GVK). Serving [`openapi_v2_protobuf`] (an empty but valid
//!   document) satisfies all of them: kubectl then finds no v2 models and uses
//!   v3 or its compiled-in types. [`openapi_v2`] is the JSON form for other
//!   clients (`Accept: application/json`).

use crate::resources::{Resource, Subresource, RESOURCES};
use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, autoscaling::v1 as autoscaling,
    batch::v1 as batch, coordination::v1 as coordination, core::v1 as core, policy::v1 as policy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The Kubernetes release whose API ferry serves.
pub const KUBERNETES_MAJOR: &str = "1";
/// The minor version of that release.
pub const KUBERNETES_MINOR: &str = "33";
/// `gitVersion` in `/version` and `info.version` in the OpenAPI documents.
pub const GIT_VERSION: &str = "v1.33.0-ferry";

/// `Content-Type` of an aggregated discovery answer (`apidiscovery.k8s.io/v2`).
pub const CONTENT_TYPE_DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// `Content-Type` of an aggregated discovery answer for kubectl 1.27–1.29
/// (`apidiscovery.k8s.io/v2beta1`, the same JSON but for `apiVersion`).
pub const CONTENT_TYPE_DISCOVERY_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
/// `Content-Type` of [`openapi_v2_protobuf`]. kubectl asks with
/// [`ACCEPT_OPENAPI_V2_PROTOBUF`] (an `@`, which Go's media type parser
/// refuses in a response: kubectl 1.27/1.28 then fail with "mime: unexpected
/// content after media subtype"); Kubernetes answers with this dotted form.
pub const CONTENT_TYPE_OPENAPI_V2_PROTOBUF: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The media type kubectl puts in `Accept` for `/openapi/v2`; serve
/// [`openapi_v2_protobuf`] for it or for [`CONTENT_TYPE_OPENAPI_V2_PROTOBUF`].
pub const ACCEPT_OPENAPI_V2_PROTOBUF: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `/version`: the `version.Info` kubectl prints and checks skew against.
pub fn version() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "emulationMajor": KUBERNETES_MAJOR,
        "emulationMinor": KUBERNETES_MINOR,
        "minCompatibilityMajor": KUBERNETES_MAJOR,
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("FERRY_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": option_env!("FERRY_GIT_TREE_STATE").unwrap_or(""),
        "buildDate": option_env!("FERRY_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "none (ferry is written in Rust)",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `os/arch` with Go's names, as Kubernetes reports its platform.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{}/{}", std::env::consts::OS, arch)
}

/// `/api` in the unaggregated format: `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// `(group, version)` of every served group-version, core first, then the
/// groups in the order [`RESOURCES`] first names them.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out.sort_by_key(|(g, _)| !g.is_empty());
    out
}

/// [`group_versions`] and `metrics.k8s.io/v1beta1` (served from memory, with
/// no OpenAPI document): what discovery lists.
fn listed_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = group_versions();
    for r in crate::resources::METRICS {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The versions of a group, preferred first (ferry serves one per group).
fn versions_of(group: &str) -> Vec<&'static str> {
    listed_group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

fn api_group_value(group: &str) -> Option<Value> {
    let versions = versions_of(group);
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    let preferred = gv(versions.first()?);
    Some(json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": preferred,
    }))
}

/// `/apis` in the unaggregated format: `APIGroupList` with every non-core group.
pub fn api_group_list() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in listed_group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().filter_map(|g| api_group_value(g)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`: one `APIGroup`, or `None` when the group is not served.
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut v = api_group_value(group)?;
    let o = v.as_object_mut()?;
    o.insert("kind".into(), "APIGroup".into());
    o.insert("apiVersion".into(), "v1".into());
    Some(v)
}

/// The served kinds of one group-version.
fn resources_in(group: &str, version: &str) -> Vec<&'static Resource> {
    RESOURCES
        .iter()
        .chain(crate::resources::METRICS)
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

fn strings(list: &[&str]) -> Value {
    Value::Array(list.iter().map(|s| Value::String((*s).into())).collect())
}

/// `/api/v1` and `/apis/<group>/<version>`: the `APIResourceList` with each
/// resource and subresource, sorted by name as Kubernetes lists them; `None`
/// when the group-version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let rs = resources_in(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    for r in rs {
        let d = r.discovery();
        let mut e = Map::new();
        e.insert("name".into(), r.plural.into());
        e.insert("singularName".into(), d.singular.into());
        e.insert("namespaced".into(), r.namespaced.into());
        e.insert("kind".into(), r.kind.into());
        e.insert("verbs".into(), strings(d.verbs));
        if !r.short_names.is_empty() {
            e.insert("shortNames".into(), strings(r.short_names));
        }
        if !d.categories.is_empty() {
            e.insert("categories".into(), strings(d.categories));
        }
        entries.push((r.plural.to_string(), Value::Object(e)));
        for s in d.subresources {
            let name = format!("{}/{}", r.plural, s.name);
            let mut e = Map::new();
            e.insert("name".into(), name.clone().into());
            e.insert("singularName".into(), "".into());
            e.insert("namespaced".into(), r.namespaced.into());
            if !s.group.is_empty() || !s.version.is_empty() {
                e.insert("group".into(), s.group.into());
                e.insert("version".into(), s.version.into());
            }
            e.insert("kind".into(), s.kind.into());
            e.insert("verbs".into(), strings(s.verbs));
            entries.push((name, Value::Object(e)));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list = Map::new();
    list.insert("kind".into(), "APIResourceList".into());
    if !group.is_empty() {
        // Kubernetes sets apiVersion on the group lists only.
        list.insert("apiVersion".into(), "v1".into());
    }
    list.insert("groupVersion".into(), group_version.into());
    list.insert(
        "resources".into(),
        Value::Array(entries.into_iter().map(|(_, v)| v).collect()),
    );
    Some(Value::Object(list))
}

/// Which discovery format a request for `/api` or `/apis` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` / `APIGroupList`, `Content-Type: application/json`.
    Unaggregated,
    /// [`aggregated_discovery`], `Content-Type:` [`CONTENT_TYPE_DISCOVERY_V2`].
    AggregatedV2,
    /// [`aggregated_discovery_v2beta1`], `Content-Type:` [`CONTENT_TYPE_DISCOVERY_V2BETA1`].
    AggregatedV2Beta1,
}

/// The discovery format an `Accept` header asks for: the first media range
/// that names `as=APIGroupDiscoveryList` in group `apidiscovery.k8s.io` at a
/// served version (`v2`, `v2beta1`), else the unaggregated format (as the
/// Kubernetes API server, which honours the client's order).
pub fn discovery_format(accept: Option<&str>) -> DiscoveryFormat {
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if media != "application/json" {
            continue;
        }
        let (mut g, mut v, mut as_) = ("", "", "");
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let val = val.trim().trim_matches('"');
                match k.trim() {
                    "g" => g = val,
                    "v" => v = val,
                    "as" => as_ = val,
                    _ => {}
                }
            }
        }
        if g == "apidiscovery.k8s.io" && as_ == "APIGroupDiscoveryList" {
            match v {
                "v2" => return DiscoveryFormat::AggregatedV2,
                "v2beta1" => return DiscoveryFormat::AggregatedV2Beta1,
                _ => {}
            }
        }
    }
    DiscoveryFormat::Unaggregated
}

/// `{group, version, kind}` as aggregated discovery writes a response kind:
/// group and version empty when they are the listing's own.
fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_discovery(r: &Resource) -> Value {
    let d = r.discovery();
    let mut e = Map::new();
    e.insert("resource".into(), r.plural.into());
    e.insert("responseKind".into(), response_kind("", "", r.kind));
    e.insert(
        "scope".into(),
        if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }
        .into(),
    );
    e.insert("singularResource".into(), d.singular.into());
    e.insert("verbs".into(), strings(d.verbs));
    if !r.short_names.is_empty() {
        e.insert("shortNames".into(), strings(r.short_names));
    }
    if !d.categories.is_empty() {
        e.insert("categories".into(), strings(d.categories));
    }
    if !d.subresources.is_empty() {
        let subs: Vec<Value> = d
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": response_kind(s.group, s.version, s.kind),
                    "verbs": strings(s.verbs),
                })
            })
            .collect();
        e.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(e)
}

fn aggregated(legacy: bool, api_version: &str) -> Value {
    let mut items = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (group, _) in listed_group_versions() {
        if group.is_empty() != legacy || seen.contains(&group) {
            continue;
        }
        seen.push(group);
        let versions: Vec<Value> = versions_of(group)
            .into_iter()
            .map(|version| {
                let mut rs = resources_in(group, version);
                rs.sort_by_key(|r| r.plural);
                json!({
                    "version": version,
                    "resources": rs.into_iter().map(resource_discovery).collect::<Vec<_>>(),
                    "freshness": "Current",
                })
            })
            .collect();
        let mut metadata = Map::new();
        metadata.insert("creationTimestamp".into(), Value::Null);
        if !group.is_empty() {
            metadata.insert("name".into(), group.into());
        }
        items.push(json!({"metadata": metadata, "versions": versions}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery (`APIGroupDiscoveryList`, `apidiscovery.k8s.io/v2`)
/// for `/api` (`legacy`: the core group, whose name is empty) or `/apis`
/// (every other group): each version's resources with their response kind,
/// scope, singular name, verbs, short names, categories and subresources,
/// freshness `Current`.
///
/// The answer must carry `Content-Type:` [`CONTENT_TYPE_DISCOVERY_V2`]
/// (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`):
/// client-go reads the body as aggregated only when the response's media type
/// says so, and serve it only when [`discovery_format`] of the request's
/// `Accept` is [`DiscoveryFormat::AggregatedV2`].
pub fn aggregated_discovery(legacy: bool) -> Value {
    aggregated(legacy, "apidiscovery.k8s.io/v2")
}

/// [`aggregated_discovery`] as `apidiscovery.k8s.io/v2beta1`, the only
/// aggregated format kubectl 1.27–1.29 ask for. Serve it with
/// `Content-Type:` [`CONTENT_TYPE_DISCOVERY_V2BETA1`].
pub fn aggregated_discovery_v2beta1(legacy: bool) -> Value {
    aggregated(legacy, "apidiscovery.k8s.io/v2beta1")
}

// ---------------------------------------------------------------------------
// OpenAPI

/// The strategic-merge-patch metadata Kubernetes 1.33 declares on its Go types
/// (`patchStrategy` / `patchMergeKey` struct tags, which its OpenAPI publishes
/// as `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`), for the
/// schemas reachable from ferry's kinds: (schema, property, strategy, merge key).
/// k8s-openapi's schemas do not carry them; kubectl 1.29+ computes client-side
/// `apply` and `diff` patches from them.
#[rustfmt::skip]
const PATCH_STRATEGIES: &[(&str, &str, &str, &str)] = &[
    ("io.k8s.api.core.v1.Container",                    "ports",                    "merge",           "containerPort"),
    ("io.k8s.api.core.v1.Container",                    "env",                      "merge",           "name"),
    ("io.k8s.api.core.v1.Container",                    "volumeMounts",             "merge",           "mountPath"),
    ("io.k8s.api.core.v1.Container",                    "volumeDevices",            "merge",           "devicePath"),
    ("io.k8s.api.core.v1.EphemeralContainer",           "ports",                    "merge",           "containerPort"),
    ("io.k8s.api.core.v1.EphemeralContainer",           "env",                      "merge",           "name"),
    ("io.k8s.api.core.v1.EphemeralContainer",           "volumeMounts",             "merge",           "mountPath"),
    ("io.k8s.api.core.v1.EphemeralContainer",           "volumeDevices",            "merge",           "devicePath"),
    ("io.k8s.api.core.v1.ContainerStatus",              "volumeMounts",             "merge",           "mountPath"),
    ("io.k8s.api.core.v1.ContainerStatus",              "allocatedResourcesStatus", "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "volumes",                  "merge,retainKeys","name"),
    ("io.k8s.api.core.v1.PodSpec",                      "initContainers",           "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "containers",               "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "ephemeralContainers",      "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "imagePullSecrets",         "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "hostAliases",              "merge",           "ip"),
    ("io.k8s.api.core.v1.PodSpec",                      "topologySpreadConstraints", "merge",           "topologyKey"),
    ("io.k8s.api.core.v1.PodSpec",                      "schedulingGates",          "merge",           "name"),
    ("io.k8s.api.core.v1.PodSpec",                      "resourceClaims",           "merge,retainKeys","name"),
    ("io.k8s.api.core.v1.PodStatus",                    "conditions",               "merge",           "type"),
    ("io.k8s.api.core.v1.PodStatus",                    "hostIPs",                  "merge",           "ip"),
    ("io.k8s.api.core.v1.PodStatus",                    "podIPs",                   "merge",           "ip"),
    ("io.k8s.api.core.v1.PodStatus",                    "resourceClaimStatuses",    "merge,retainKeys","name"),
    ("io.k8s.api.core.v1.ServiceSpec",                  "ports",                    "merge",           "port"),
    ("io.k8s.api.core.v1.ServiceStatus",                "conditions",               "merge",           "type"),
    ("io.k8s.api.core.v1.ServiceAccount",               "secrets",                  "merge",           "name"),
    ("io.k8s.api.core.v1.NodeSpec",                     "podCIDRs",                 "merge",           ""),
    ("io.k8s.api.core.v1.NodeStatus",                   "conditions",               "merge",           "type"),
    ("io.k8s.api.core.v1.NodeStatus",                   "addresses",                "merge",           "type"),
    ("io.k8s.api.core.v1.NamespaceStatus",              "conditions",               "merge",           "type"),
    ("io.k8s.api.core.v1.ReplicationControllerStatus",  "conditions",               "merge",           "type"),
    ("io.k8s.api.apps.v1.DeploymentSpec",               "strategy",                 "retainKeys",      ""),
    ("io.k8s.api.apps.v1.DeploymentStatus",             "conditions",               "merge",           "type"),
    ("io.k8s.api.apps.v1.ReplicaSetStatus",             "conditions",               "merge",           "type"),
    ("io.k8s.api.apps.v1.DaemonSetStatus",              "conditions",               "merge",           "type"),
    ("io.k8s.api.apps.v1.StatefulSetStatus",            "conditions",               "merge",           "type"),
    ("io.k8s.api.batch.v1.JobStatus",                   "conditions",               "merge",           "type"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences",          "merge",           "uid"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers",               "merge",           ""),
];

/// The patch media types a PATCH operation accepts. Server-side apply
/// (`application/apply-patch+yaml`) is left out until the front end serves it.
const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

const SCHEMA_PREFIX: &str = "#/components/schemas/";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Registers the schema of `group`'s `kind` (and of what it references) and
/// returns its component name, or `None` for a kind without a schema
/// (`PodExecOptions` and the other connect options).
fn register(gen: &mut SchemaGenerator, group: &str, kind: &str) -> Option<String> {
    macro_rules! kinds {
        ($($g:literal $k:literal => $t:ty),* $(,)?) => {
            match (group, kind) {
                $( ($g, $k) => gen.subschema_for::<$t>(), )*
                _ => return None,
            }
        };
    }
    let schema = kinds! {
        "" "Namespace" => core::Namespace,
        "" "Node" => core::Node,
        "" "Pod" => core::Pod,
        "" "Service" => core::Service,
        "" "Endpoints" => core::Endpoints,
        "" "ConfigMap" => core::ConfigMap,
        "" "Secret" => core::Secret,
        "" "ServiceAccount" => core::ServiceAccount,

        "" "Event" => core::Event,
        "" "Binding" => core::Binding,
        "" "PersistentVolumeClaim" => core::PersistentVolumeClaim,
        "" "PersistentVolume" => core::PersistentVolume,
        "" "ResourceQuota" => core::ResourceQuota,
        "" "LimitRange" => core::LimitRange,
        "" "ReplicationController" => core::ReplicationController,
        "apps" "ReplicaSet" => apps::ReplicaSet,
        "apps" "Deployment" => apps::Deployment,
        "apps" "DaemonSet" => apps::DaemonSet,
        "apps" "StatefulSet" => apps::StatefulSet,
        "apps" "ControllerRevision" => apps::ControllerRevision,

        "batch" "Job" => batch::Job,
        "batch" "CronJob" => batch::CronJob,
        "coordination.k8s.io" "Lease" => coordination::Lease,
        "discovery.k8s.io" "EndpointSlice" => k8s_openapi::api::discovery::v1::EndpointSlice,
        "networking.k8s.io" "NetworkPolicy" => k8s_openapi::api::networking::v1::NetworkPolicy,
        "networking.k8s.io" "Ingress" => k8s_openapi::api::networking::v1::Ingress,
        "networking.k8s.io" "IngressClass" => k8s_openapi::api::networking::v1::IngressClass,
        "autoscaling" "Scale" => autoscaling::Scale,
        "autoscaling" "HorizontalPodAutoscaler" => k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        "policy" "Eviction" => policy::Eviction,
        "policy" "PodDisruptionBudget" => policy::PodDisruptionBudget,
        "scheduling.k8s.io" "PriorityClass" => k8s_openapi::api::scheduling::v1::PriorityClass,
        "storage.k8s.io" "StorageClass" => k8s_openapi::api::storage::v1::StorageClass,
        "rbac.authorization.k8s.io" "Role" => k8s_openapi::api::rbac::v1::Role,
        "rbac.authorization.k8s.io" "ClusterRole" => k8s_openapi::api::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io" "RoleBinding" => k8s_openapi::api::rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io" "ClusterRoleBinding" => k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        "authorization.k8s.io" "SelfSubjectAccessReview" => k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
        "authorization.k8s.io" "SelfSubjectRulesReview" => k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
        "authorization.k8s.io" "SubjectAccessReview" => k8s_openapi::api::authorization::v1::SubjectAccessReview,
        "authorization.k8s.io" "LocalSubjectAccessReview" => k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
        "authentication.k8s.io" "SelfSubjectReview" => authentication::SelfSubjectReview,
        "authentication.k8s.io" "TokenRequest" => authentication::TokenRequest,
        "authentication.k8s.io" "TokenReview" => authentication::TokenReview,
        "meta" "DeleteOptions" => meta::DeleteOptions,
        "meta" "Status" => meta::Status,
        "meta" "Patch" => meta::Patch,
    };
    let r = schema.get("$ref")?.as_str()?;
    Some(r.rsplit('/').next()?.to_string())
}

/// Adds the schema of a kind's list (`io.k8s.api.core.v1.PodList`; k8s-openapi
/// has one generic `List<T>` without a schema) and returns its name.
fn register_list(gen: &mut SchemaGenerator, item: &str, kind: &str) -> String {
    let list_meta = gen.subschema_for::<meta::ListMeta>().to_value();
    let name = format!("{item}List");
    let field = |f: &str| {
        gen.definitions()
            .get(item)
            .and_then(|s| s.pointer(&format!("/properties/{f}")))
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}))
    };
    let schema = json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": field("apiVersion"),
            "kind": field("kind"),
            "metadata": {
                "allOf": [list_meta],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{SCHEMA_PREFIX}{item}")},
            },
        },
    });
    gen.definitions_mut().insert(name.clone(), schema);
    name
}

/// A group's name in operation IDs: `Core`, `Apps`, `Coordination`.
fn group_id(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(capitalize)
        .collect()
}

/// A group-version's operation tag: `core_v1`, `apps_v1`, `coordination_v1`.
fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.trim_end_matches(".k8s.io").replace(['.', '-'], "_")
    };
    format!("{g}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// One parameter of an operation.
#[derive(Clone, Copy)]
struct Param {
    name: &'static str,
    path: bool,
    ty: &'static str,
    description: &'static str,
}

const fn q(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        path: false,
        ty,
        description,
    }
}

const PRETTY: Param = q(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
const NAMESPACE: Param = Param {
    name: "namespace",
    path: true,
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
const DRY_RUN: Param = q(
    "dryRun",
    "string",
    "When present, the request is processed but not persisted. The only valid value is All.",
);
const FIELD_MANAGER: Param = q(
    "fieldManager",
    "string",
    "A name for the actor making these changes, recorded in managedFields.",
);
const FIELD_VALIDATION: Param = q(
    "fieldValidation",
    "string",
    "How the server treats unknown or duplicate fields in the request body: Ignore (drop them silently), Warn (drop them and warn; the default) or Strict (reject the request).",
);
#[rustfmt::skip]
const LIST_PARAMS: &[Param] = &[
    q("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events; ignored when not watching."),
    q("continue", "string", "The continue token of a previous chunked list, to get its next chunk."),
    q("fieldSelector", "string", "Restrict the returned objects by their fields. Defaults to everything."),
    q("labelSelector", "string", "Restrict the returned objects by their labels. Defaults to everything."),
    q("limit", "integer", "The most objects to return in one chunk; the list metadata then carries a continue token."),
    q("resourceVersion", "string", "The resource version the list must be at least as new as, or the one to watch from."),
    q("resourceVersionMatch", "string", "How resourceVersion applies to a list: NotOlderThan or Exact."),
    q("sendInitialEvents", "boolean", "With watch, send the current objects as ADDED events first, then a bookmark."),
    q("timeoutSeconds", "integer", "Timeout for the list or watch call."),
    q("watch", "boolean", "Watch for changes to the described resources instead of listing them."),
];
#[rustfmt::skip]
const DELETE_PARAMS: &[Param] = &[
    DRY_RUN,
    q("gracePeriodSeconds", "integer", "Seconds before the object is deleted; zero deletes at once. Defaults to the kind's own grace period."),
    q("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "Delete an object whose stored form cannot be read (unsafe)."),
    q("orphanDependents", "boolean", "Deprecated: use propagationPolicy. Whether dependents are orphaned."),
    q("propagationPolicy", "string", "Whether and how dependents are garbage collected: Orphan, Background or Foreground."),
];
#[rustfmt::skip]
const LOG_PARAMS: &[Param] = &[
    q("container", "string", "The container to stream logs of; defaults to the only container."),
    q("follow", "boolean", "Follow the log stream."),
    q("insecureSkipTLSVerifyBackend", "boolean", "Skip verifying the serving certificate of the node the logs come from."),
    q("limitBytes", "integer", "Stop after this many bytes of log output."),
    q("previous", "boolean", "Return the logs of the container's previous run."),
    q("sinceSeconds", "integer", "Only logs newer than this many seconds."),
    q("stream", "string", "Which stream to return: All, Stdout or Stderr."),
    q("tailLines", "integer", "Only this many lines from the end of the log."),
    q("timestamps", "boolean", "Prefix every line with an RFC3339 timestamp."),
];
#[rustfmt::skip]
const EXEC_PARAMS: &[Param] = &[
    q("command", "string", "The command to run; repeat the parameter for each argument."),
    q("container", "string", "The container to run it in; defaults to the only container."),
    q("stderr", "boolean", "Redirect the standard error stream."),
    q("stdin", "boolean", "Redirect the standard input stream."),
    q("stdout", "boolean", "Redirect the standard output stream."),
    q("tty", "boolean", "Allocate a terminal."),
];
#[rustfmt::skip]
const ATTACH_PARAMS: &[Param] = &[
    q("container", "string", "The container to attach to; defaults to the only container."),
    q("stderr", "boolean", "Stream the standard error of the container."),
    q("stdin", "boolean", "Pass standard input to the container."),
    q("stdout", "boolean", "Stream the standard output of the container."),
    q("tty", "boolean", "The stdin, stdout and stderr streams are a terminal."),
];
const PORTFORWARD_PARAMS: &[Param] = &[q(
    "ports",
    "integer",
    "The ports to forward; repeat the parameter for each port.",
)];

/// What an operation answers with.
#[derive(Clone)]
enum Answer {
    /// A component schema, with the status codes Kubernetes documents.
    Schema(String, &'static [u16]),
    /// A stream or text (`pods/log`, connect operations).
    Text(&'static str),
}

/// What an operation's request body is.
#[derive(Clone)]
enum Body {
    None,
    Schema(String),
    Patch,
}

/// One operation (path + method).
#[derive(Clone)]
struct Op {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    gvk: Option<(String, String, String)>,
    params: Vec<Param>,
    body: Body,
    answer: Answer,
    watchable: bool,
}

/// One path with its shared parameters and its operations.
struct PathItem {
    path: String,
    params: Vec<Param>,
    ops: Vec<Op>,
}

fn gvk(group: &str, version: &str, kind: &str) -> Option<(String, String, String)> {
    Some((group.into(), version.into(), kind.into()))
}

fn concat(a: &[Param], b: &[Param]) -> Vec<Param> {
    a.iter().chain(b).copied().collect()
}

/// Everything one group-version document needs, before rendering.
struct GvModel {
    group: &'static str,
    version: &'static str,
    paths: Vec<PathItem>,
    /// Component schemas, `$ref`s still in schemars' form.
    schemas: Map<String, Value>,
    /// Component name → the GVKs it is the schema of.
    kinds: Vec<(String, (String, String, String))>,
}

/// Builds the paths and schemas of one served group-version.
fn gv_model(group: &'static str, version: &'static str) -> Option<GvModel> {
    let rs = resources_in(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(String, (String, String, String))> = Vec::new();
    let status = register(&mut gen, "meta", "Status")?;
    let delete_options = register(&mut gen, "meta", "DeleteOptions")?;
    register(&mut gen, "meta", "Patch")?;
    kinds.push((status.clone(), ("".into(), "v1".into(), "Status".into())));
    kinds.push((
        delete_options.clone(),
        (group.into(), version.into(), "DeleteOptions".into()),
    ));
    let gid = format!("{}{}", group_id(group), capitalize(version));
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Vec::new();
    for r in rs {
        let d = r.discovery();
        let kind = register(&mut gen, group, r.kind)?;
        let list = register_list(&mut gen, &kind, r.kind);
        let own = gvk(group, version, r.kind);
        kinds.push((kind.clone(), own.clone()?));
        kinds.push((
            list.clone(),
            gvk(group, version, &format!("{}List", r.kind))?,
        ));
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let k = r.kind;
        let has = |v: &str| d.verbs.contains(&v);
        let (collection, scope_params) = if r.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                vec![NAMESPACE],
            )
        } else {
            (format!("{prefix}/{}", r.plural), vec![])
        };
        let op = |method, id: String, description: String, action, params: Vec<Param>| Op {
            method,
            id,
            description,
            action,
            gvk: own.clone(),
            params,
            body: Body::None,
            answer: Answer::Schema(kind.clone(), &[200]),
            watchable: false,
        };
        // The collection: list, create, deletecollection.
        let mut ops = Vec::new();
        if has("list") {
            let mut o = op(
                "get",
                format!("list{gid}{ns}{k}"),
                format!("list or watch objects of kind {k}"),
                "list",
                LIST_PARAMS.to_vec(),
            );
            o.answer = Answer::Schema(list.clone(), &[200]);
            o.watchable = true;
            ops.push(o);
        }
        if has("create") {
            let mut o = op(
                "post",
                format!("create{gid}{ns}{k}"),
                format!("create a {k}"),
                "post",
                vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            );
            o.body = Body::Schema(kind.clone());
            o.answer = Answer::Schema(kind.clone(), &[200, 201, 202]);
            ops.push(o);
        }
        if has("deletecollection") {
            let mut o = op(
                "delete",
                format!("delete{gid}Collection{ns}{k}"),
                format!("delete collection of {k}"),
                "deletecollection",
                concat(&LIST_PARAMS[1..9], DELETE_PARAMS),
            );
            o.params.sort_by_key(|p| p.name);
            o.body = Body::Schema(delete_options.clone());
            o.answer = Answer::Schema(status.clone(), &[200]);
            ops.push(o);
        }
        paths.push(PathItem {
            path: collection.clone(),
            params: concat(&scope_params, &[PRETTY]),
            ops,
        });
        // Every namespace's objects.
        if r.namespaced && has("list") {
            let mut o = op(
                "get",
                format!("list{gid}{k}ForAllNamespaces"),
                format!("list or watch objects of kind {k}"),
                "list",
                vec![],
            );
            o.answer = Answer::Schema(list.clone(), &[200]);
            o.watchable = true;
            paths.push(PathItem {
                path: format!("{prefix}/{}", r.plural),
                params: concat(LIST_PARAMS, &[PRETTY]),
                ops: vec![o],
            });
        }
        // One object: read, replace, patch, delete.
        let name_param = Param {
            name: "name",
            path: true,
            ty: "string",
            description: "name of the object",
        };
        let item_params = concat(&[name_param], &concat(&scope_params, &[PRETTY]));
        let mut ops = Vec::new();
        if has("get") {
            ops.push(op(
                "get",
                format!("read{gid}{ns}{k}"),
                format!("read the specified {k}"),
                "get",
                vec![],
            ));
        }
        if has("update") {
            let mut o = op(
                "put",
                format!("replace{gid}{ns}{k}"),
                format!("replace the specified {k}"),
                "put",
                vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            );
            o.body = Body::Schema(kind.clone());
            o.answer = Answer::Schema(kind.clone(), &[200, 201]);
            ops.push(o);
        }
        if has("patch") {
            let mut o = op(
                "patch",
                format!("patch{gid}{ns}{k}"),
                format!("partially update the specified {k}"),
                "patch",
                vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            );
            o.body = Body::Patch;
            o.answer = Answer::Schema(kind.clone(), &[200, 201]);
            ops.push(o);
        }
        if has("delete") {
            let mut o = op(
                "delete",
                format!("delete{gid}{ns}{k}"),
                format!("delete a {k}"),
                "delete",
                DELETE_PARAMS.to_vec(),
            );
            o.body = Body::Schema(delete_options.clone());
            o.answer = Answer::Schema(status.clone(), &[200, 202]);
            ops.push(o);
        }
        let item = format!("{collection}/{{name}}");
        paths.push(PathItem {
            path: item.clone(),
            params: item_params.clone(),
            ops,
        });
        for s in d.subresources {
            paths.push(subresource_path(
                &mut gen,
                &mut kinds,
                (group, version),
                r,
                s,
                &item,
                &item_params,
                &format!("{gid}{ns}{k}"),
            )?);
        }
    }
    let schemas = gen.take_definitions(true);
    Some(GvModel {
        group,
        version,
        paths,
        schemas,
        kinds,
    })
}

/// The path of one subresource (`.../pods/{name}/status`).
#[allow(clippy::too_many_arguments)]
fn subresource_path(
    gen: &mut SchemaGenerator,
    kinds: &mut Vec<(String, (String, String, String))>,
    (group, version): (&str, &str),
    r: &Resource,
    s: &Subresource,
    item: &str,
    item_params: &[Param],
    id_base: &str,
) -> Option<PathItem> {
    let (sg, sv) = if s.group.is_empty() && s.version.is_empty() {
        (group, version)
    } else {
        (s.group, s.version)
    };
    let sub_gvk = gvk(sg, sv, s.kind);
    let schema = register(gen, sg, s.kind);
    if let Some(name) = &schema {
        if !kinds.iter().any(|(n, _)| n == name) {
            kinds.push((name.clone(), sub_gvk.clone()?));
        }
    }
    let sub = capitalize(s.name);
    let connect = s.kind.ends_with("Options");
    let mut ops = Vec::new();
    for verb in s.verbs {
        let (method, id_verb, action, what) = match *verb {
            "get" if connect => ("get", "connect", "connect", "connect GET requests to"),
            "create" if connect => ("post", "connect", "connect", "connect POST requests to"),
            "get" => ("get", "read", "get", "read"),
            "update" => ("put", "replace", "put", "replace"),
            "patch" => ("patch", "patch", "patch", "partially update"),
            "create" => ("post", "create", "post", "create"),
            _ => continue,
        };
        let id = if connect {
            format!(
                "{id_verb}{}{}",
                id_base.replacen(
                    &capitalize(version),
                    &format!("{}{}", capitalize(version), capitalize(method)),
                    1
                ),
                sub
            )
        } else {
            format!("{id_verb}{id_base}{sub}")
        };
        let mut op = Op {
            method,
            id,
            description: format!("{what} {} of {}", s.name, r.kind),
            action,
            gvk: sub_gvk.clone(),
            params: vec![],
            body: Body::None,
            answer: match &schema {
                Some(n) => Answer::Schema(n.clone(), &[200]),
                None => Answer::Text("*/*"),
            },
            watchable: false,
        };
        if connect {
            op.params = match s.name {
                "exec" => EXEC_PARAMS,
                "attach" => ATTACH_PARAMS,
                "portforward" => PORTFORWARD_PARAMS,
                _ => &[],
            }
            .to_vec();
        } else if s.name == "log" {
            op.params = LOG_PARAMS.to_vec();
            op.answer = Answer::Text("text/plain");
        } else {
            match method {
                "put" | "post" => {
                    op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
                    op.body = Body::Schema(schema.clone()?);
                    op.answer = Answer::Schema(
                        schema.clone()?,
                        if method == "put" {
                            &[200, 201]
                        } else {
                            &[200, 201, 202]
                        },
                    );
                }
                "patch" => {
                    op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
                    op.body = Body::Patch;
                    op.answer = Answer::Schema(schema.clone()?, &[200, 201]);
                }
                _ => {}
            }
        }
        ops.push(op);
    }
    Some(PathItem {
        path: format!("{item}/{}", s.name),
        params: item_params.to_vec(),
        ops,
    })
}

/// Rewrites every `$ref` under `v` to point into `prefix` (`#/components/schemas/`
/// or `#/definitions/`), whatever schemars wrote (`#/$defs/`, `#/definitions/`),
/// and moves a `$ref` with siblings into an `allOf` (OpenAPI ignores a
/// `$ref`'s siblings; Kubernetes writes `{"allOf": [{"$ref": ...}], "description": ...}`).
fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                let name = r.rsplit('/').next().unwrap_or_default().to_string();
                *r = format!("{prefix}{name}");
            }
            if o.len() > 1 {
                if let Some(r) = o.remove("$ref") {
                    o.insert("allOf".into(), json!([{ "$ref": r }]));
                }
            }
            o.remove("$schema");
            for (_, c) in o.iter_mut() {
                rewrite_refs(c, prefix);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, prefix)),
        _ => {}
    }
}

/// The component schemas of a model, refs under `prefix`, with the GVK and
/// strategic-merge-patch extensions.
fn finished_schemas(m: &GvModel, prefix: &str) -> Map<String, Value> {
    let mut schemas = m.schemas.clone();
    for s in schemas.values_mut() {
        rewrite_refs(s, prefix);
    }
    for (name, (g, v, k)) in &m.kinds {
        if let Some(Value::Object(o)) = schemas.get_mut(name) {
            // k8s-openapi requires every kind's metadata; Kubernetes does not
            // (kubectl explain would print `metadata -required-`).
            if let Some(Value::Array(required)) = o.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    o.remove("required");
                }
            }
            let list = o
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                let e = json!({"group": g, "kind": k, "version": v});
                if !a.contains(&e) {
                    a.push(e);
                }
            }
        }
    }
    for (schema, property, strategy, key) in PATCH_STRATEGIES {
        if let Some(Value::Object(p)) = schemas
            .get_mut(*schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
        {
            p.insert("x-kubernetes-patch-strategy".into(), (*strategy).into());
            if !key.is_empty() {
                p.insert("x-kubernetes-patch-merge-key".into(), (*key).into());
            }
        }
    }
    schemas
}

fn gvk_value((g, v, k): &(String, String, String)) -> Value {
    json!({"group": g, "kind": k, "version": v})
}

fn v3_param(p: &Param) -> Value {
    let mut o = json!({
        "name": p.name,
        "in": if p.path { "path" } else { "query" },
        "description": p.description,
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.path {
        o["required"] = true.into();
    }
    o
}

fn code_description(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        _ => "",
    }
}

fn v3_op(op: &Op, tag: &str) -> Value {
    let mut o = Map::new();
    o.insert("description".into(), op.description.clone().into());
    o.insert("operationId".into(), op.id.clone().into());
    o.insert("tags".into(), json!([tag]));
    if !op.params.is_empty() {
        o.insert(
            "parameters".into(),
            Value::Array(op.params.iter().map(v3_param).collect()),
        );
    }
    match &op.body {
        Body::None => {}
        Body::Schema(s) => {
            o.insert(
                "requestBody".into(),
                json!({"content": {"*/*": {"schema": {"$ref": format!("{SCHEMA_PREFIX}{s}")}}}}),
            );
        }
        Body::Patch => {
            let patch = json!({"schema": {"$ref": format!("{SCHEMA_PREFIX}{META}.Patch")}});
            let content: Map<String, Value> = PATCH_CONTENT_TYPES
                .iter()
                .map(|t| ((*t).to_string(), patch.clone()))
                .collect();
            o.insert("requestBody".into(), json!({"content": content}));
        }
    }
    let mut responses = Map::new();
    match &op.answer {
        Answer::Schema(s, codes) => {
            let schema = json!({"schema": {"$ref": format!("{SCHEMA_PREFIX}{s}")}});
            let mut content = Map::new();
            content.insert("application/json".into(), schema.clone());
            if op.watchable {
                content.insert("application/json;stream=watch".into(), schema);
            }
            for c in *codes {
                responses.insert(
                    c.to_string(),
                    json!({"description": code_description(*c), "content": content}),
                );
            }
        }
        Answer::Text(media) => {
            let mut content = Map::new();
            content.insert((*media).into(), json!({"schema": {"type": "string"}}));
            responses.insert(
                "200".into(),
                json!({"description": "OK", "content": content}),
            );
        }
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-kubernetes-action".into(), op.action.into());
    if let Some(g) = &op.gvk {
        o.insert("x-kubernetes-group-version-kind".into(), gvk_value(g));
    }
    Value::Object(o)
}

fn render_v3(m: &GvModel) -> Value {
    let tag = tag(m.group, m.version);
    let mut paths = Map::new();
    for p in &m.paths {
        let mut item = Map::new();
        for op in &p.ops {
            item.insert(op.method.into(), v3_op(op, &tag));
        }
        item.insert(
            "parameters".into(),
            Value::Array(p.params.iter().map(v3_param).collect()),
        );
        paths.insert(p.path.clone(), Value::Object(item));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": finished_schemas(m, SCHEMA_PREFIX)},
    })
}

/// The OpenAPI v3 path of a group-version (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One built group-version document.
struct V3Doc {
    path: String,
    doc: Value,
    bytes: Vec<u8>,
    hash: String,
}

fn v3_docs() -> &'static [V3Doc] {
    static DOCS: OnceLock<Vec<V3Doc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .filter_map(|(g, v)| {
                let doc = render_v3(&gv_model(g, v)?);
                let bytes = serde_json::to_vec(&doc).unwrap_or_default();
                let digest = ring::digest::digest(&ring::digest::SHA512, &bytes);
                let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
                Some(V3Doc {
                    path: gv_path(g, v),
                    doc,
                    bytes,
                    hash,
                })
            })
            .collect()
    })
}

/// The document a request path names: `/openapi/v3/apis/apps/v1`,
/// `openapi/v3/api/v1?hash=...` or just `apis/apps/v1`.
fn v3_doc(path: &str) -> Option<&'static V3Doc> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
    let path = path.trim_end_matches('/');
    v3_docs().iter().find(|d| d.path == path)
}

/// The component schemas of the OpenAPI v3 document serving `kind` (one of
/// [`RESOURCES`]) and the name of `kind`'s own schema among them
/// (`io.k8s.api.apps.v1.Deployment`), as served (with the
/// strategic-merge-patch extensions). Server-side apply walks objects with
/// them, as Kubernetes builds its apply types from its OpenAPI.
pub(crate) fn kind_schema(kind: &str) -> Option<(&'static Map<String, Value>, &'static str)> {
    type KindSchemas = Vec<(&'static str, &'static Map<String, Value>, &'static str)>;
    static KINDS: OnceLock<KindSchemas> = OnceLock::new();
    let kinds = KINDS.get_or_init(|| {
        RESOURCES
            .iter()
            .filter_map(|r| {
                let doc = v3_doc(&gv_path(r.group, r.version))?;
                let schemas = doc.doc.pointer("/components/schemas")?.as_object()?;
                let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
                let (name, _) = schemas.iter().find(|(_, s)| {
                    s.get("x-kubernetes-group-version-kind")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.contains(&gvk))
                })?;
                Some((r.kind, schemas, name.as_str()))
            })
            .collect()
    });
    kinds
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, schemas, name)| (*schemas, *name))
}

/// `/openapi/v3`: each group-version's document path and its
/// `serverRelativeURL` with the document's hash (`{"paths": {"api/v1":
/// {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`).
pub fn openapi_v3_root() -> Value {
    let paths: Map<String, Value> = v3_docs()
        .iter()
        .map(|d| {
            (
                d.path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The OpenAPI 3.0 document of one group-version, for `/openapi/v3/api/v1`,
/// `/openapi/v3/apis/apps/v1`, ... (a leading `/openapi/v3/`, a `?hash=` and
/// a leading `/` are optional); `None` for a group-version ferry does not serve.
///
/// Its `paths` hold every resource's collection, item, all-namespaces and
/// subresource operations with `x-kubernetes-action`,
/// `x-kubernetes-group-version-kind` and their parameters (`fieldValidation`,
/// `dryRun`, `fieldManager` on the writes); `components.schemas` holds the
/// kinds' schemas and everything they reference, keyed as Kubernetes keys them
/// (`io.k8s.api.core.v1.Pod`), the kinds (and their lists) carrying
/// `x-kubernetes-group-version-kind`.
pub fn openapi_v3(path: &str) -> Option<Value> {
    v3_doc(path).map(|d| d.doc.clone())
}

/// [`openapi_v3`] serialized (built once), to serve without re-encoding.
pub fn openapi_v3_bytes(path: &str) -> Option<&'static [u8]> {
    v3_doc(path).map(|d| d.bytes.as_slice())
}

/// The hash in [`openapi_v3_root`]'s URL of a document (uppercase hex SHA-512
/// of [`openapi_v3_bytes`]), to compare with a request's `?hash=` and to use as
/// its `ETag`.
pub fn openapi_v3_hash(path: &str) -> Option<&'static str> {
    v3_doc(path).map(|d| d.hash.as_str())
}

fn v2_param(p: &Param) -> Value {
    let mut o = json!({
        "name": p.name,
        "in": if p.path { "path" } else { "query" },
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.path {
        o["required"] = true.into();
    }
    o
}

fn v2_op(op: &Op, tag: &str) -> Value {
    let mut o = Map::new();
    o.insert("description".into(), op.description.clone().into());
    o.insert("operationId".into(), op.id.clone().into());
    o.insert("schemes".into(), json!(["https"]));
    o.insert("tags".into(), json!([tag]));
    let mut params: Vec<Value> = op.params.iter().map(v2_param).collect();
    match &op.body {
        Body::None => {}
        Body::Schema(s) => {
            o.insert("consumes".into(), json!(["*/*"]));
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": true,
                       "schema": {"$ref": format!("#/definitions/{s}")}}),
            );
        }
        Body::Patch => {
            o.insert("consumes".into(), strings(PATCH_CONTENT_TYPES));
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": true,
                       "schema": {"$ref": format!("#/definitions/{META}.Patch")}}),
            );
        }
    }
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    let mut responses = Map::new();
    match &op.answer {
        Answer::Schema(s, codes) => {
            let mut produces = vec!["application/json"];
            if op.watchable {
                produces.push("application/json;stream=watch");
            }
            o.insert("produces".into(), strings(&produces));
            for c in *codes {
                responses.insert(
                    c.to_string(),
                    json!({"description": code_description(*c),
                           "schema": {"$ref": format!("#/definitions/{s}")}}),
                );
            }
        }
        Answer::Text(media) => {
            o.insert("produces".into(), json!([media]));
            responses.insert(
                "200".into(),
                json!({"description": "OK", "schema": {"type": "string"}}),
            );
        }
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-kubernetes-action".into(), op.action.into());
    if let Some(g) = &op.gvk {
        o.insert("x-kubernetes-group-version-kind".into(), gvk_value(g));
    }
    Value::Object(o)
}

/// `/openapi/v2` as JSON (Swagger 2.0): every served group-version's paths and
/// definitions in one document, from the same model as [`openapi_v3`]. kubectl
/// never asks for this form (it wants protobuf: see [`openapi_v2_protobuf`]).
pub fn openapi_v2() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut paths = Map::new();
        let mut definitions = Map::new();
        for (g, v) in group_versions() {
            let Some(m) = gv_model(g, v) else { continue };
            let tag = tag(g, v);
            for p in &m.paths {
                let mut item = Map::new();
                for op in &p.ops {
                    item.insert(op.method.into(), v2_op(op, &tag));
                }
                item.insert(
                    "parameters".into(),
                    Value::Array(p.params.iter().map(v2_param).collect()),
                );
                paths.insert(p.path.clone(), Value::Object(item));
            }
            for (name, schema) in finished_schemas(&m, "#/definitions/") {
                match definitions.get_mut(&name) {
                    // DeleteOptions (and the like) are shared: merge their GVK lists.
                    Some(Value::Object(existing)) => {
                        if let (Some(Value::Array(old)), Some(Value::Array(new))) = (
                            existing.get_mut("x-kubernetes-group-version-kind"),
                            schema.get("x-kubernetes-group-version-kind"),
                        ) {
                            for e in new {
                                if !old.contains(e) {
                                    old.push(e.clone());
                                }
                            }
                        }
                    }
                    _ => {
                        definitions.insert(name, schema);
                    }
                }
            }
        }
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths,
            "definitions": definitions,
        })
    })
    .clone()
}

/// `/openapi/v2` for `Accept:` [`ACCEPT_OPENAPI_V2_PROTOBUF`] (what kubectl
/// sends), served with `Content-Type:` [`CONTENT_TYPE_OPENAPI_V2_PROTOBUF`]: a valid gnostic `openapi_v2.Document` protobuf holding only
/// `swagger: "2.0"` and `info` (title, version), no definitions.
///
/// kubectl 1.27/1.28 fail `explain`, client-side `diff` and validated
/// `create`/`apply`/`replace` when this request errors (it is fetched before
/// anything else); with an empty document they find no v2 models, take
/// explanations and the field-validation check from OpenAPI v3, and compute
/// client-side apply patches from their compiled-in types. kubectl 1.29+ only
/// fall back to it.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        // Wire type 2 (length-delimited); every length here is under 128.
        out.push((number << 3) | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, GIT_VERSION.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

#[cfg(test)]
mod tests;
