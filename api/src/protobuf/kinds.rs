//! Which message an envelope's `apiVersion` and `kind` name.
//!
//! A kind of group `g` version `v` is the message `<kind>` of the group's
//! package (`api.<dir>.<v>`) when it is an object (a message with
//! `ObjectMeta` or `ListMeta` metadata, less the templates embedded in other
//! kinds) or one of the query-option kinds; the `meta/v1` options and
//! `WatchEvent` belong to every group version, and `Status` and the discovery
//! kinds to plain `v1`, as Go's `metav1.AddToGroupVersion` registers them.

use super::schema::{Message, Schema, Type};
use super::ProtobufError;

/// The package of `meta.k8s.io/v1`.
const META_PACKAGE: &str = "apimachinery.pkg.apis.meta.v1";

/// API groups with embedded schemas and their directory under `k8s.io/api`.
const GROUPS: &[(&str, &str)] = &[
    ("", "core"),
    ("apps", "apps"),
    ("batch", "batch"),
    ("coordination.k8s.io", "coordination"),
    ("authentication.k8s.io", "authentication"),
    ("authorization.k8s.io", "authorization"),
    ("policy", "policy"),
    ("autoscaling", "autoscaling"),
    ("discovery.k8s.io", "discovery"),
    ("events.k8s.io", "events"),
    ("rbac.authorization.k8s.io", "rbac"),
    ("networking.k8s.io", "networking"),
    ("storage.k8s.io", "storage"),
];

/// `meta/v1` kinds every group version registers.
const META_OPTION_KINDS: &[&str] = &[
    "ListOptions",
    "GetOptions",
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "WatchEvent",
];

/// `meta/v1` kinds registered as unversioned under plain `v1`.
const META_UNVERSIONED_KINDS: &[&str] = &[
    "Status",
    "APIVersions",
    "APIGroupList",
    "APIGroup",
    "APIResourceList",
];

/// Messages with object metadata that are no kind: templates inside kinds.
const NOT_KINDS: &[&str] = &[
    "api.core.v1.PodTemplateSpec",
    "api.core.v1.PersistentVolumeClaimTemplate",
    "api.batch.v1.JobTemplateSpec",
];

/// Kinds without object metadata: query options of subresources.
const OPTION_KINDS: &[&str] = &[
    "api.core.v1.PodLogOptions",
    "api.core.v1.PodAttachOptions",
    "api.core.v1.PodExecOptions",
    "api.core.v1.PodPortForwardOptions",
    "api.core.v1.PodProxyOptions",
    "api.core.v1.NodeProxyOptions",
    "api.core.v1.ServiceProxyOptions",
    "api.core.v1.SerializedReference",
];

/// The message of `kind` in `api_version` (`v1`, `apps/v1`, `meta.k8s.io/v1`).
pub(crate) fn message_for<'s>(
    schema: &'s Schema,
    api_version: &str,
    kind: &str,
) -> Result<&'s Message, ProtobufError> {
    let unknown = || ProtobufError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !is_name(version) || !is_name(kind) {
        return Err(unknown());
    }
    let package = if group == "meta.k8s.io" {
        (version == "v1").then(|| META_PACKAGE.to_string())
    } else {
        GROUPS
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, dir)| format!("api.{dir}.{version}"))
    };
    let package = package
        .filter(|p| schema.has_package(p))
        .ok_or_else(unknown)?;
    let meta = META_OPTION_KINDS.contains(&kind)
        || (api_version == "v1" && META_UNVERSIONED_KINDS.contains(&kind));
    let name = format!("{}.{kind}", if meta { META_PACKAGE } else { &package });
    let msg = schema.message(&name).ok_or_else(unknown)?;
    if meta || is_object(msg) || OPTION_KINDS.contains(&name.as_str()) {
        Ok(msg)
    } else {
        Err(unknown())
    }
}

/// A message with object or list metadata that is not a template.
fn is_object(msg: &Message) -> bool {
    let metadata = msg.field_named("metadata").map(|f| &f.ty);
    let object_meta = |t: &str| format!("{META_PACKAGE}.{t}");
    matches!(metadata, Some(Type::Message(m)) if *m == object_meta("ObjectMeta") || *m == object_meta("ListMeta"))
        && !NOT_KINDS.contains(&msg.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_of_each_kind() {
        let schema = Schema::embedded().unwrap();
        let cases = [
            ("v1", "ConfigMap", Some("api.core.v1.ConfigMap")),
            ("v1", "PodList", Some("api.core.v1.PodList")),
            ("apps/v1", "Deployment", Some("api.apps.v1.Deployment")),
            ("batch/v1", "CronJob", Some("api.batch.v1.CronJob")),
            (
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                Some("api.authorization.v1.SelfSubjectAccessReview"),
            ),
            (
                "authentication.k8s.io/v1",
                "TokenRequest",
                Some("api.authentication.v1.TokenRequest"),
            ),
            ("policy/v1", "Eviction", Some("api.policy.v1.Eviction")),
            ("autoscaling/v1", "Scale", Some("api.autoscaling.v1.Scale")),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                Some("api.rbac.v1.ClusterRole"),
            ),
            (
                "v1",
                "DeleteOptions",
                Some("apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            ),
            (
                "apps/v1",
                "DeleteOptions",
                Some("apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            ),
            (
                "meta.k8s.io/v1",
                "DeleteOptions",
                Some("apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            ),
            (
                "meta.k8s.io/v1",
                "PartialObjectMetadata",
                Some("apimachinery.pkg.apis.meta.v1.PartialObjectMetadata"),
            ),
            ("v1", "Status", Some("apimachinery.pkg.apis.meta.v1.Status")),
            ("v1", "PodExecOptions", Some("api.core.v1.PodExecOptions")),
            ("apps/v1", "Status", None),
            ("v1", "PodSpec", None),
            ("v1", "PodTemplateSpec", None),
            ("v1", "Deployment", None),
            ("apps/v2", "Deployment", None),
            ("example.com/v1", "Widget", None),
            ("meta.k8s.io/v2", "DeleteOptions", None),
            ("v1", "core.v1.ConfigMap", None),
            ("v1.core", "ConfigMap", None),
        ];
        for (api_version, kind, want) in cases {
            let got = message_for(schema, api_version, kind).map(|m| m.name.as_str());
            match want {
                Some(name) => assert_eq!(got, Ok(name), "{api_version} {kind}"),
                None => assert_eq!(
                    got,
                    Err(ProtobufError::UnknownKind {
                        api_version: api_version.into(),
                        kind: kind.into()
                    })
                ),
            }
        }
    }
}
