//! `ferry explain`: a field's type, documentation and sub-fields, read from
//! the OpenAPI schemas that k8s-openapi generates (its `schemars` feature).

use super::text;
use ferry_api::resources::{by_cli_name, Resource};
use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
};
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

/// kubectl-explain-like text for `field_path` of `res` (`spec.replicas`; a
/// leading resource name, as in `deployment.spec.replicas`, is skipped; ""
/// explains the kind itself). Errors name the field that does not exist.
pub fn explain(res: &Resource, field_path: &str) -> Result<String, String> {
    let root = root_schema(res.kind).ok_or_else(|| format!("no schema for kind {:?}", res.kind))?;
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let mut segments: Vec<&str> = field_path.split('.').filter(|s| !s.is_empty()).collect();
    if segments
        .first()
        .and_then(|s| by_cli_name(s))
        .is_some_and(|r| r == res)
    {
        segments.remove(0);
    }
    let mut node = root.clone();
    let mut field = None;
    for seg in &segments {
        let object = resolve(&defs, element(&node));
        let Some(child) = object.pointer(&format!("/properties/{seg}")) else {
            return Err(format!("field {seg:?} does not exist"));
        };
        let required = list_has(&object, "required", seg);
        field = Some((seg.to_string(), type_name(&defs, child), required));
        node = child.clone();
    }
    let mut out = String::new();
    if !res.group.is_empty() {
        out.push_str(&format!("GROUP:      {}\n", res.group));
    }
    out.push_str(&format!(
        "KIND:       {}\nVERSION:    {}\n\n",
        res.kind, res.version
    ));
    if let Some((name, ty, required)) = &field {
        out.push_str(&format!(
            "FIELD: {name} <{ty}>{}\n\n",
            if *required { " -required-" } else { "" }
        ));
    }
    out.push_str("DESCRIPTION:\n");
    for d in descriptions(&defs, &node) {
        out.push_str(&wrap(&d, 4));
    }
    let object = resolve(&defs, element(&node));
    if let Some(props) = object.get("properties").and_then(Value::as_object) {
        out.push_str("\nFIELDS:\n");
        for (name, child) in props {
            let req = if list_has(&object, "required", name) {
                " -required-"
            } else {
                ""
            };
            out.push_str(&format!("  {name}\t<{}>{req}\n", type_name(&defs, child)));
            out.push_str(&wrap(text(child, "/description"), 4));
            out.push('\n');
        }
    }
    Ok(out.trim_end().to_string())
}

/// The generated schema of a served kind, with its referenced types under `$defs`.
fn root_schema(kind: &str) -> Option<Value> {
    fn of<T: JsonSchema>() -> Value {
        SchemaGenerator::default()
            .into_root_schema_for::<T>()
            .to_value()
    }
    Some(match kind {
        "Namespace" => of::<core::Namespace>(),
        "Node" => of::<core::Node>(),
        "Pod" => of::<core::Pod>(),
        "Service" => of::<core::Service>(),
        "Endpoints" => of::<core::Endpoints>(),
        "ConfigMap" => of::<core::ConfigMap>(),
        "Secret" => of::<core::Secret>(),
        "ServiceAccount" => of::<core::ServiceAccount>(),
        "Event" => of::<core::Event>(),
        "ReplicaSet" => of::<apps::ReplicaSet>(),
        "ReplicationController" => of::<core::ReplicationController>(),
        "Deployment" => of::<apps::Deployment>(),
        "DaemonSet" => of::<apps::DaemonSet>(),
        "StatefulSet" => of::<apps::StatefulSet>(),
        "ControllerRevision" => of::<apps::ControllerRevision>(),
        "Job" => of::<batch::Job>(),
        "CronJob" => of::<batch::CronJob>(),
        "Lease" => of::<coordination::Lease>(),
        "EndpointSlice" => of::<k8s_openapi::api::discovery::v1::EndpointSlice>(),
        "NetworkPolicy" => of::<k8s_openapi::api::networking::v1::NetworkPolicy>(),
        "PodDisruptionBudget" => of::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(),
        "PriorityClass" => of::<k8s_openapi::api::scheduling::v1::PriorityClass>(),
        "StorageClass" => of::<k8s_openapi::api::storage::v1::StorageClass>(),
        "Ingress" => of::<k8s_openapi::api::networking::v1::Ingress>(),
        "IngressClass" => of::<k8s_openapi::api::networking::v1::IngressClass>(),
        "PersistentVolumeClaim" => of::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(),
        "PersistentVolume" => of::<k8s_openapi::api::core::v1::PersistentVolume>(),
        "ResourceQuota" => of::<k8s_openapi::api::core::v1::ResourceQuota>(),
        "LimitRange" => of::<k8s_openapi::api::core::v1::LimitRange>(),
        "Role" => of::<k8s_openapi::api::rbac::v1::Role>(),
        "ClusterRole" => of::<k8s_openapi::api::rbac::v1::ClusterRole>(),
        "RoleBinding" => of::<k8s_openapi::api::rbac::v1::RoleBinding>(),
        "ClusterRoleBinding" => of::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(),
        "HorizontalPodAutoscaler" => {
            of::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>()
        }
        _ => return None,
    })
}

/// The schema a `$ref` points at, or the node itself.
fn resolve(defs: &Value, node: &Value) -> Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => defs.get(def_name(r)).cloned().unwrap_or(Value::Null),
        None => node.clone(),
    }
}

/// The definition name of a `$ref` (`#/$defs/io.k8s.api.apps.v1.DeploymentSpec`).
fn def_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// An array's or map's element schema (fields are explained through them), else the node.
fn element(node: &Value) -> &Value {
    node.get("items")
        .or_else(|| node.get("additionalProperties").filter(|v| v.is_object()))
        .unwrap_or(node)
}

/// The field's own description, then its object type's when that differs.
fn descriptions(defs: &Value, node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let own = text(node, "/description");
    if !own.is_empty() {
        out.push(own.to_string());
    }
    let target = resolve(defs, element(node));
    let ty = text(&target, "/description");
    if target.get("properties").is_some() && !ty.is_empty() && ty != own {
        out.push(ty.to_string());
    }
    if out.is_empty() {
        out.push("<empty>".to_string());
    }
    out
}

/// A type as kubectl explain names it: `string`, `integer`, `DeploymentSpec`,
/// `[]Container`, `map[string]string`.
fn type_name(defs: &Value, node: &Value) -> String {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let target = resolve(defs, node);
        let short = def_name(r).rsplit('.').next().unwrap_or(r).to_string();
        return match target.get("type").and_then(Value::as_str) {
            Some("object") | None => short,
            Some(t) => t.to_string(),
        };
    }
    match node.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "[]{}",
            node.get("items")
                .map_or("Object".to_string(), |i| type_name(defs, i))
        ),
        Some("object") => match node.get("additionalProperties").filter(|v| v.is_object()) {
            Some(v) => format!("map[string]{}", type_name(defs, v)),
            None => "Object".to_string(),
        },
        Some(t) => t.to_string(),
        None => "Object".to_string(),
    }
}

/// `obj[key]` is an array holding the string `value`.
fn list_has(obj: &Value, key: &str, value: &str) -> bool {
    obj.get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == value))
}

/// Words wrapped to 80 columns, each line indented by `indent` spaces.
fn wrap(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && indent + line.len() + 1 + word.len() > 80 {
                out.push_str(&format!("{pad}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("{pad}{line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> &'static Resource {
        by_cli_name(name).unwrap()
    }

    #[test]
    fn a_scalar_field_has_its_type_and_description() {
        let out = explain(kind("deploy"), "deployment.spec.replicas").unwrap();
        assert!(out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: replicas <integer>\n"), "{out}");
        assert!(out.contains("Number of desired pods."), "{out}");
        assert!(!out.contains("FIELDS:"), "{out}");
    }

    #[test]
    fn an_object_field_lists_its_sub_fields() {
        let out = explain(kind("deploy"), "spec").unwrap();
        assert!(out.contains("FIELD: spec <DeploymentSpec>"), "{out}");
        assert!(
            out.contains("  selector\t<LabelSelector> -required-\n"),
            "{out}"
        );
        assert!(
            out.contains("  template\t<PodTemplateSpec> -required-\n"),
            "{out}"
        );
    }

    #[test]
    fn lists_and_maps_are_named_like_kubectl() {
        let out = explain(kind("po"), "spec").unwrap();
        assert!(
            out.contains("  containers\t<[]Container> -required-\n"),
            "{out}"
        );
        assert!(
            out.contains("  nodeSelector\t<map[string]string>\n"),
            "{out}"
        );
        let c = explain(kind("po"), "spec.containers.image").unwrap();
        assert!(
            c.starts_with("KIND:       Pod\nVERSION:    v1\n\nFIELD: image <string>"),
            "{c}"
        );
    }

    #[test]
    fn the_kind_itself_and_unknown_fields() {
        let out = explain(kind("cm"), "").unwrap();
        assert!(out.contains("ConfigMap holds configuration data"), "{out}");
        assert!(out.contains("  data\t<map[string]string>"), "{out}");
        assert_eq!(
            explain(kind("cm"), "spec").unwrap_err(),
            "field \"spec\" does not exist"
        );
    }
}
