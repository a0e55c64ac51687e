//! `ferry describe`: kubectl-describe-like text for one object and its events.
//!
//! Layout: this file (the line writer, common header, generic fallback,
//! events), `pod` (pods and pod templates), `kinds` (deployments, services,
//! config maps, secrets).

mod kinds;
mod node;
mod pod;

use kinds::{config_map, deployment, secret, service};
use pod::pod;

use ferry_api::printers::age::{age, describe_time};

use crate::printers::table::align;
use ferry_api::printers::{int, list, text};
use ferry_api::resources::Resource;
use jiff::Timestamp;
use serde_json::Value;

/// Lines of `describe` output; a tab separates the cells the output aligns.
#[derive(Default)]
struct Doc {
    lines: Vec<String>,
}

impl Doc {
    /// `key:\tvalue` indented by `level` (two spaces each).
    fn kv(&mut self, level: usize, key: &str, value: impl std::fmt::Display) {
        self.lines
            .push(format!("{}{key}:\t{value}", "  ".repeat(level)));
    }

    /// A line as is (a section title, or cells already tab-separated).
    fn line(&mut self, level: usize, text: impl std::fmt::Display) {
        self.lines.push(format!("{}{text}", "  ".repeat(level)));
    }

    /// A string map, one `k=v` (or `k: v`) per line, the first beside the key.
    fn map(&mut self, level: usize, key: &str, map: Option<&Value>, sep: &str) {
        let pairs: Vec<String> = map
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| {
                format!(
                    "{k}{sep}{}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect();
        match pairs.split_first() {
            None => self.kv(level, key, "<none>"),
            Some((first, rest)) => {
                self.kv(level, key, first);
                for p in rest {
                    self.line(level, format!("\t{p}"));
                }
            }
        }
    }

    fn finish(self) -> String {
        let cells: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        align(&cells, 0, 2)
    }
}

/// The `describe` text of `obj` (no final newline), then `events` (those
/// involving it) as a table, or `Events: <none>`.
pub fn describe(res: &Resource, obj: &Value, events: &[Value], now: Timestamp) -> String {
    describe_with(res, obj, None, events, now)
}

/// [`describe`] of a Node with its Lease and the pods bound to it.
pub fn describe_node(
    node: &Value,
    lease: Option<&Value>,
    pods: &[Value],
    events: &[Value],
    now: Timestamp,
) -> String {
    let mut d = Doc::default();
    d.kv(0, "Name", text(node, "/metadata/name"));
    node::node(&mut d, node, lease, pods, now);
    events_section(&mut d, events, now);
    d.finish()
}

/// Conditions with their heartbeat and transition times, reason and message
/// (as kubectl shows a node's).
fn conditions_full(d: &mut Doc, o: &Value) {
    d.line(0, "Conditions:");
    d.line(
        1,
        "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
    );
    d.line(
        1,
        "----\t------\t-----------------\t------------------\t------\t-------",
    );
    for c in list(o, "/status/conditions") {
        d.line(
            1,
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                text(c, "/type"),
                text(c, "/status"),
                describe_time(text(c, "/lastHeartbeatTime")),
                describe_time(text(c, "/lastTransitionTime")),
                text(c, "/reason"),
                text(c, "/message")
            ),
        );
    }
}

/// [`describe`] of a Service with its Endpoints object, which adds each
/// port's `Endpoints:` line as kubectl prints it.
pub fn describe_service(
    svc: &Value,
    endpoints: Option<&Value>,
    events: &[Value],
    now: Timestamp,
) -> String {
    let res = ferry_api::resources::by_cli_name("services").expect("services are served");
    describe_with(res, svc, endpoints, events, now)
}

fn describe_with(
    res: &Resource,
    obj: &Value,
    endpoints: Option<&Value>,
    events: &[Value],
    now: Timestamp,
) -> String {
    let mut d = Doc::default();
    d.kv(0, "Name", text(obj, "/metadata/name"));
    if res.namespaced {
        d.kv(0, "Namespace", text(obj, "/metadata/namespace"));
    }
    match res.kind {
        "Pod" => pod(&mut d, obj),
        "Deployment" => deployment(&mut d, obj),
        "Service" => service(&mut d, obj, endpoints),
        "ConfigMap" => config_map(&mut d, obj),
        "Secret" => secret(&mut d, obj),
        _ => generic(&mut d, obj),
    }
    events_section(&mut d, events, now);
    d.finish()
}

/// Labels and Annotations.
fn meta(d: &mut Doc, o: &Value) {
    d.map(0, "Labels", o.pointer("/metadata/labels"), "=");
    d.map(0, "Annotations", o.pointer("/metadata/annotations"), ": ");
}

/// `Kind/name` of the controlling owner, if any.
fn controlled_by(d: &mut Doc, o: &Value) {
    let owners = list(o, "/metadata/ownerReferences");
    if let Some(c) = owners
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    {
        d.kv(
            0,
            "Controlled By",
            format!("{}/{}", text(c, "/kind"), text(c, "/name")),
        );
    }
}

/// Type / Status / Reason of `status.conditions`, when there are any.
fn conditions_table(d: &mut Doc, o: &Value) {
    let conditions = list(o, "/status/conditions");
    if conditions.is_empty() {
        return;
    }
    d.line(0, "Conditions:");
    d.line(1, "Type\tStatus\tReason");
    d.line(1, "----\t------\t------");
    for c in conditions {
        d.line(
            1,
            format!(
                "{}\t{}\t{}",
                text(c, "/type"),
                text(c, "/status"),
                text(c, "/reason")
            ),
        );
    }
}

/// Any other kind: CreationTimestamp, labels, annotations, then spec and status as indented text.
fn generic(d: &mut Doc, o: &Value) {
    d.kv(
        0,
        "CreationTimestamp",
        describe_time(text(o, "/metadata/creationTimestamp")),
    );
    meta(d, o);
    controlled_by(d, o);
    let top = o.as_object().into_iter().flatten();
    for (k, v) in top.filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) {
        tree(d, 0, &title(k), v);
    }
}

/// A field name as describe titles it: `spec` → `Spec`, `nodeInfo` → `Node Info`.
fn title(field: &str) -> String {
    let mut out = String::new();
    for (i, c) in field.char_indices() {
        if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else if c.is_ascii_uppercase() && !field[..i].ends_with(|p: char| p.is_ascii_uppercase())
        {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// A value as nested `Key:  value` lines.
fn tree(d: &mut Doc, level: usize, key: &str, v: &Value) {
    match v {
        Value::Object(m) if m.is_empty() => d.kv(level, key, "<none>"),
        Value::Object(m) => {
            d.line(level, format!("{key}:"));
            for (k, v) in m {
                tree(d, level + 1, &title(k), v);
            }
        }
        Value::Array(a) if a.is_empty() => d.kv(level, key, "<none>"),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            d.kv(
                level,
                key,
                a.iter().map(scalar).collect::<Vec<_>>().join(", "),
            );
        }
        Value::Array(a) => {
            d.line(level, format!("{key}:"));
            for item in a {
                tree(d, level + 1, "-", item);
            }
        }
        _ => d.kv(level, key, scalar(v)),
    }
}

/// A scalar as text: strings bare, `<none>` for null.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        v => v.to_string(),
    }
}

/// The Events section, oldest first: Type Reason Age From Message.
fn events_section(d: &mut Doc, events: &[Value], now: Timestamp) {
    if events.is_empty() {
        d.kv(0, "Events", "<none>");
        return;
    }
    let last_seen = |e: &Value| {
        let t = [
            text(e, "/series/lastObservedTime"),
            text(e, "/lastTimestamp"),
            text(e, "/eventTime"),
            text(e, "/firstTimestamp"),
        ];
        t.into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("")
            .parse::<Timestamp>()
            .ok()
    };
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| last_seen(e));
    d.line(0, "Events:");
    d.line(1, "Type\tReason\tAge\tFrom\tMessage");
    d.line(1, "----\t------\t----\t----\t-------");
    for e in sorted {
        let first = match text(e, "/eventTime") {
            "" => age(text(e, "/firstTimestamp"), now),
            t => age(t, now),
        };
        let interval = if let Some(s) = e.get("series") {
            format!(
                "{} (x{} over {first})",
                age(text(s, "/lastObservedTime"), now),
                int(s, "/count")
            )
        } else if int(e, "/count") > 1 {
            format!(
                "{} (x{} over {first})",
                age(text(e, "/lastTimestamp"), now),
                int(e, "/count")
            )
        } else {
            first
        };
        let from = match text(e, "/source/component") {
            "" => text(e, "/reportingController"),
            c => c,
        };
        d.line(
            1,
            format!(
                "{}\t{}\t{interval}\t{from}\t{}",
                text(e, "/type"),
                text(e, "/reason"),
                text(e, "/message").trim()
            ),
        );
    }
}

#[cfg(test)]
mod tests;
