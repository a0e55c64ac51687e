//! The answers a Kubernetes API server gives to `Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io` and `...;as=PartialObjectMetadata;...`:
//! a `meta.k8s.io/v1` Table built from the kind's printer (every column, the
//! `-o wide` ones with priority 1; kubectl picks what it shows), and an
//! object's metadata alone.
//!
//! As Kubernetes does: the server always fills the wide cells, cells are
//! strings or integers as its printers type them, a kind without a printer
//! gets the default table (Name, Created At), a succeeded or failed pod's row
//! carries a `Completed` condition, and `includeObject` decides each row's `object`.

use super::columns::{cells, definitions, Cell, Column, CREATION_TIMESTAMP, NAME};
use super::text;
use crate::resources::Resource;
use jiff::Timestamp;
use serde_json::{json, Value};

/// What a Table row carries as `object` (Kubernetes `includeObject`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `includeObject=None`: `"object": null`.
    None,
    /// `includeObject=Metadata` (Kubernetes' default): the object's
    /// [`partial_object_metadata`].
    #[default]
    Metadata,
    /// `includeObject=Object`: the whole object.
    Object,
}

impl std::str::FromStr for IncludeObject {
    type Err = String;

    /// The `includeObject` query parameter; "" is the default, [`IncludeObject::Metadata`].
    /// The error is Kubernetes' message for a 400 Bad Request.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "None" => Ok(IncludeObject::None),
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// The columns of a kind without a printer (Kubernetes' default table convertor).
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        type_: "date",
        format: "",
        description: CREATION_TIMESTAMP,
        priority: 0,
    },
];

/// A `meta.k8s.io/v1` Table of `items` (objects of kind `res`) as a Kubernetes API server returns it.
///
/// One row per item, in order; `now` dates the ages. The table's `metadata`
/// is `{}`: the caller fills in what Kubernetes copies from the list (or, for
/// a single object, from the object), leaving out what is empty:
///
/// ```
/// use ferry_api::printers::{table_json, IncludeObject};
/// use ferry_api::resources::by_cli_name;
///
/// let pods = [serde_json::json!({"metadata": {"name": "web-1"}})];
/// let mut table = table_json(by_cli_name("pods").unwrap(), &pods, IncludeObject::default(), jiff::Timestamp::now());
/// table["metadata"]["resourceVersion"] = "42".into();
/// // and, when the listing continues: table["metadata"]["continue"] = token.into();
/// assert_eq!(table["rows"][0]["cells"][0], "web-1");
/// ```
pub fn table_json(
    res: &Resource,
    items: &[Value],
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let printer = definitions(res.kind);
    let columns = printer.unwrap_or(DEFAULT_COLUMNS);
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells: Vec<Value> = match printer {
                Some(_) => cells(res.kind, o, true, now)
                    .iter()
                    .map(Cell::to_json)
                    .collect(),
                None => vec![
                    text(o, "/metadata/name").into(),
                    created_at(text(o, "/metadata/creationTimestamp")).into(),
                ],
            };
            let mut row = json!({"cells": cells});
            if let Some(c) = row_conditions(res.kind, o) {
                row["conditions"] = c;
            }
            row["object"] = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_object_metadata(o),
                IncludeObject::Object => whole_object(res, o),
            };
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns.iter().map(column_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// An object's metadata as a `meta.k8s.io/v1` PartialObjectMetadata (the
/// answer to `as=PartialObjectMetadata`, and a Table row's default `object`).
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `TableColumnDefinition`: every field present, as Kubernetes serializes it.
fn column_json(c: &Column) -> Value {
    json!({
        "name": c.name,
        "type": c.type_,
        "format": c.format,
        "description": c.description,
        "priority": c.priority,
    })
}

/// The whole object, with its `apiVersion` and `kind` (Kubernetes always types it).
fn whole_object(res: &Resource, o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.entry("apiVersion")
            .or_insert_with(|| res.api_version().into());
        m.entry("kind").or_insert_with(|| res.kind.into());
    }
    o
}

/// The default table's Created At: RFC 3339 in UTC to the second; Go's zero
/// time when the object has none.
pub(crate) fn created_at(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// The row conditions Kubernetes' printers set: `Completed` for a pod that
/// succeeded or failed (kubectl may dim such rows).
fn row_conditions(kind: &str, o: &Value) -> Option<Value> {
    if kind != "Pod" {
        return None;
    }
    let (reason, message) = match text(o, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_cli_name;

    const NOW: &str = "2025-06-01T00:00:00Z";
    /// Three days before [`NOW`]: Age `3d`.
    const CREATED: &str = "2025-05-29T00:00:00Z";

    fn table(kind: &str, items: &[Value], include: IncludeObject) -> Value {
        table_json(
            by_cli_name(kind).unwrap(),
            items,
            include,
            NOW.parse().unwrap(),
        )
    }

    /// The column definitions as (name, type, format, priority).
    fn columns(t: &Value) -> Vec<(&str, &str, &str, i64)> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert!(
                    !c["description"].as_str().unwrap().is_empty(),
                    "{c} has no description"
                );
                (
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    c["format"].as_str().unwrap(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "7",
               "creationTimestamp": CREATED, "labels": {"app": name}})
    }

    #[test]
    fn pods_have_kubernetes_columns_cells_and_conditions() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta("web-1"),
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}],
                     "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}],
                       "conditions": [{"type": "example.com/lb", "status": "True"}],
                       "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2,
                           "state": {"running": {}},
                           "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-05-31T23:55:00Z"}}}]},
        });
        let done = json!({"metadata": meta("job-x"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded"}});
        let t = table("pods", &[pod, done], IncludeObject::Metadata);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(
            columns(&t),
            [
                ("Name", "string", "name", 0),
                ("Ready", "string", "", 0),
                ("Status", "string", "", 0),
                ("Restarts", "string", "", 0),
                ("Age", "string", "", 0),
                ("IP", "string", "", 1),
                ("Node", "string", "", 1),
                ("Nominated Node", "string", "", 1),
                ("Readiness Gates", "string", "", 1),
            ]
        );
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(
            rows[0]["cells"],
            json!([
                "web-1",
                "1/1",
                "Running",
                "2 (5m ago)",
                "3d",
                "10.1.0.5",
                "n1",
                "<none>",
                "1/1"
            ])
        );
        assert!(rows[0].get("conditions").is_none());
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("web-1")})
        );
        assert_eq!(rows[1]["cells"][2], "Succeeded");
        assert_eq!(
            rows[1]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
    }

    #[test]
    fn deployments_type_their_counts_as_integers() {
        let d = json!({"metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table("deploy", &[d], IncludeObject::None);
        assert_eq!(
            columns(&t),
            [
                ("Name", "string", "name", 0),
                ("Ready", "string", "", 0),
                ("Up-to-date", "string", "", 0),
                ("Available", "string", "", 0),
                ("Age", "string", "", 0),
                ("Containers", "string", "", 1),
                ("Images", "string", "", 1),
                ("Selector", "string", "", 1),
            ]
        );
        let row = &t["rows"][0];
        assert_eq!(
            row["cells"],
            json!(["web", "2/3", 3, 2, "3d", "nginx", "nginx:1.27", "app=web"])
        );
        assert_eq!(row["object"], Value::Null);
        assert!(row.as_object().unwrap().contains_key("object"));
    }

    #[test]
    fn services_print_wide_cells_untruncated() {
        let svc = json!({"metadata": meta("lb"),
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "selector": {"app": "web"},
                     "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "a-very-long-name.example.com"}]}}});
        let t = table("svc", std::slice::from_ref(&svc), IncludeObject::Object);
        assert_eq!(
            columns(&t),
            [
                ("Name", "string", "name", 0),
                ("Type", "string", "", 0),
                ("Cluster-IP", "string", "", 0),
                ("External-IP", "string", "", 0),
                ("Port(s)", "string", "", 0),
                ("Age", "string", "", 0),
                ("Selector", "string", "", 1),
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "lb",
                "LoadBalancer",
                "10.96.0.12",
                "a-very-long-name.example.com",
                "443:30443/TCP",
                "3d",
                "app=web"
            ])
        );
        let mut whole = svc;
        whole["apiVersion"] = "v1".into();
        whole["kind"] = "Service".into();
        assert_eq!(t["rows"][0]["object"], whole);
    }

    #[test]
    fn nodes_have_status_roles_and_wide_columns() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": CREATED,
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}}});
        let t = table("nodes", &[node], IncludeObject::Metadata);
        assert_eq!(
            columns(&t),
            [
                ("Name", "string", "name", 0),
                ("Status", "string", "", 0),
                ("Roles", "string", "", 0),
                ("Age", "string", "", 0),
                ("Version", "string", "", 0),
                ("Internal-IP", "string", "", 1),
                ("External-IP", "string", "", 1),
                ("OS-Image", "string", "", 1),
                ("Kernel-Version", "string", "", 1),
                ("Container-Runtime", "string", "", 1),
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "n1",
                "Ready",
                "control-plane",
                "3d",
                "v1.33.0",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "containerd://1.7.0"
            ])
        );
    }

    #[test]
    fn events_and_counts_follow_kubernetes_types() {
        let ev = json!({"metadata": {"name": "web-1.17f", "namespace": "default"},
            "type": "Warning", "reason": "BackOff", "message": "Back-off",
            "involvedObject": {"kind": "Pod", "name": "web-1"}, "count": 7,
            "firstTimestamp": "2025-05-31T23:00:00Z", "lastTimestamp": "2025-05-31T23:59:30Z"});
        let t = table("ev", &[ev], IncludeObject::None);
        let names: Vec<(&str, i64)> = columns(&t).iter().map(|c| (c.0, c.3)).collect();
        assert_eq!(
            names,
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web-1",
                "",
                "",
                "Back-off",
                "60m",
                7,
                "web-1.17f"
            ])
        );
        let cm = json!({"metadata": meta("conf"), "data": {"a": "1"}});
        assert_eq!(
            table("cm", &[cm], IncludeObject::None)["rows"][0]["cells"],
            json!(["conf", 1, "3d"])
        );
    }

    #[test]
    fn kinds_without_a_printer_get_name_and_created_at() {
        let widget = Resource {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            namespaced: true,
            short_names: &[],
        };
        let items = [
            json!({"metadata": {"name": "w", "creationTimestamp": "2025-05-29T10:11:12.5+02:00"}}),
            json!({"metadata": {"name": "bare"}}),
        ];
        let t = table_json(&widget, &items, IncludeObject::Object, NOW.parse().unwrap());
        assert_eq!(
            columns(&t),
            [("Name", "string", "name", 0), ("Created At", "date", "", 0)]
        );
        assert_eq!(t["rows"][0]["cells"], json!(["w", "2025-05-29T08:11:12Z"]));
        assert_eq!(
            t["rows"][1]["cells"],
            json!(["bare", "0001-01-01T00:00:00Z"])
        );
        assert_eq!(t["rows"][1]["object"]["apiVersion"], "example.com/v1");
        assert_eq!(t["rows"][1]["object"]["kind"], "Widget");
    }

    #[test]
    fn partial_object_metadata_keeps_only_metadata() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"), "spec": {}});
        assert_eq!(
            partial_object_metadata(&pod),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("p")})
        );
        assert_eq!(partial_object_metadata(&json!({}))["metadata"], json!({}));
    }

    #[test]
    fn include_object_parses_like_kubernetes() {
        assert_eq!("".parse(), Ok(IncludeObject::Metadata));
        assert_eq!("None".parse(), Ok(IncludeObject::None));
        assert_eq!("Object".parse(), Ok(IncludeObject::Object));
        assert_eq!(
            "all".parse::<IncludeObject>(),
            Err("unrecognized includeObject value: \"all\"".to_string())
        );
    }
}
