//! Node and Event cells.

use super::{or_none, Cell};
use crate::printers::age::age;
use crate::printers::{int, list, text};
use jiff::Timestamp;
use serde_json::Value;

/// A Node's NAME STATUS ROLES AGE VERSION.
pub(super) fn node(o: &Value, created: Cell) -> Vec<Cell> {
    let mut status: Vec<String> = list(o, "/status/conditions")
        .iter()
        .rfind(|c| text(c, "/type") == "Ready")
        .map(|c| {
            if text(c, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
            .to_string()
        })
        .into_iter()
        .collect();
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role),
            None if k == "kubernetes.io/role" => v.as_str(),
            None => None,
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    vec![
        text(o, "/metadata/name").into(),
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        created,
        text(o, "/status/nodeInfo/kubeletVersion").into(),
    ]
}

/// The first node address of `kind`, or `<none>`.
pub(super) fn node_address(o: &Value, kind: &str) -> String {
    let a = list(o, "/status/addresses")
        .iter()
        .find(|a| text(a, "/type") == kind);
    or_none(a.map_or("", |a| text(a, "/address")))
}

/// An Event's row: LAST SEEN TYPE REASON OBJECT [SUBOBJECT SOURCE] MESSAGE [FIRST SEEN COUNT NAME].
pub(super) fn event(o: &Value, wide: bool, now: Timestamp) -> Vec<Cell> {
    let first = match text(o, "/firstTimestamp") {
        "" => age(text(o, "/eventTime"), now),
        t => age(t, now),
    };
    let (last, count) = if let Some(series) = o.get("series") {
        (
            age(text(series, "/lastObservedTime"), now),
            int(series, "/count"),
        )
    } else {
        let last = match text(o, "/lastTimestamp") {
            "" => first.clone(),
            t => age(t, now),
        };
        (last, int(o, "/count").max(1))
    };
    let kind = text(o, "/involvedObject/kind").to_ascii_lowercase();
    let object = match text(o, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let message = text(o, "/message").trim().to_string();
    let mut row: Vec<Cell> = vec![
        last.into(),
        text(o, "/type").into(),
        text(o, "/reason").into(),
        object.into(),
    ];
    if wide {
        row.push(text(o, "/involvedObject/fieldPath").into());
        row.push(event_source(o).into());
        row.push(message.into());
        row.extend([first.into(), count.into(), text(o, "/metadata/name").into()]);
    } else {
        row.push(message.into());
    }
    row
}

/// An Event's source: `component, host`, falling back to the reporting controller and instance.
fn event_source(o: &Value) -> String {
    let pick = |a: &str, b: &str| {
        if text(o, a).is_empty() {
            text(o, b)
        } else {
            text(o, a)
        }
        .to_string()
    };
    let component = pick("/source/component", "/reportingController");
    let instance = pick("/source/host", "/reportingInstance");
    if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    }
}
