//! `ferry describe`: kubectl-describe-like text for one object and its events.

use super::age::{age, describe_time};
use super::columns::{or_none, service_ports};
use super::table::align;
use super::{int, labels_string, list, selector_string, text};
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
        self.lines.push(format!("{}{key}:\t{value}", "  ".repeat(level)));
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
            .map(|(k, v)| format!("{k}{sep}{}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
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
        let cells: Vec<Vec<String>> = self.lines.iter().map(|l| l.split('\t').map(str::to_string).collect()).collect();
        align(&cells, 0, 2)
    }
}

/// The `describe` text of `obj` (no final newline), then `events` (those
/// involving it) as a table, or `Events: <none>`.
pub fn describe(res: &Resource, obj: &Value, events: &[Value], now: Timestamp) -> String {
    let mut d = Doc::default();
    d.kv(0, "Name", text(obj, "/metadata/name"));
    if res.namespaced {
        d.kv(0, "Namespace", text(obj, "/metadata/namespace"));
    }
    match res.kind {
        "Pod" => pod(&mut d, obj),
        "Deployment" => deployment(&mut d, obj),
        "Service" => service(&mut d, obj),
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
    if let Some(c) = owners.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)) {
        d.kv(0, "Controlled By", format!("{}/{}", text(c, "/kind"), text(c, "/name")));
    }
}

fn pod(d: &mut Doc, o: &Value) {
    if let Some(p) = o.pointer("/spec/priority") {
        d.kv(0, "Priority", p);
    }
    d.kv(0, "Service Account", text(o, "/spec/serviceAccountName"));
    let node = match (text(o, "/spec/nodeName"), text(o, "/status/hostIP")) {
        ("", _) => "<none>".to_string(),
        (n, "") => n.to_string(),
        (n, ip) => format!("{n}/{ip}"),
    };
    d.kv(0, "Node", node);
    if let Some(t) = o.pointer("/status/startTime").and_then(Value::as_str) {
        d.kv(0, "Start Time", describe_time(t));
    }
    meta(d, o);
    if let Some(t) = o.pointer("/metadata/deletionTimestamp").and_then(Value::as_str) {
        d.kv(0, "Status", format!("Terminating (lasts since {})", describe_time(t)));
    } else {
        d.kv(0, "Status", text(o, "/status/phase"));
    }
    for (key, ptr) in [("Reason", "/status/reason"), ("Message", "/status/message")] {
        if !text(o, ptr).is_empty() {
            d.kv(0, key, text(o, ptr));
        }
    }
    d.kv(0, "IP", text(o, "/status/podIP"));
    let ips = list(o, "/status/podIPs");
    if ips.is_empty() {
        d.kv(0, "IPs", "<none>");
    } else {
        d.line(0, "IPs:");
        for ip in ips {
            d.kv(1, "IP", text(ip, "/ip"));
        }
    }
    controlled_by(d, o);
    let statuses = |ptr: &str| list(o, ptr).to_vec();
    for (title, spec, st) in [
        ("Init Containers", "/spec/initContainers", "/status/initContainerStatuses"),
        ("Containers", "/spec/containers", "/status/containerStatuses"),
    ] {
        let specs = list(o, spec);
        if specs.is_empty() && title == "Init Containers" {
            continue;
        }
        d.line(0, format!("{title}:"));
        let st = statuses(st);
        for c in specs {
            let status = st.iter().find(|s| text(s, "/name") == text(c, "/name"));
            container(d, 1, c, status);
        }
    }
    let conditions = list(o, "/status/conditions");
    if !conditions.is_empty() {
        d.line(0, "Conditions:");
        d.line(1, "Type\tStatus");
        for c in conditions {
            d.line(1, format!("{} \t{} ", text(c, "/type"), text(c, "/status")));
        }
    }
    volumes(d, 0, list(o, "/spec/volumes"));
    d.kv(0, "QoS Class", text(o, "/status/qosClass"));
    d.kv(0, "Node-Selectors", labels_string(o.pointer("/spec/nodeSelector")));
    tolerations(d, 0, list(o, "/spec/tolerations"));
}

/// One container: image, ports, command, state, readiness, env and mounts.
fn container(d: &mut Doc, level: usize, c: &Value, status: Option<&Value>) {
    d.line(level, format!("{}:", text(c, "/name")));
    let l = level + 1;
    if let Some(s) = status {
        d.kv(l, "Container ID", text(s, "/containerID"));
    }
    d.kv(l, "Image", text(c, "/image"));
    if let Some(s) = status {
        d.kv(l, "Image ID", text(s, "/imageID"));
    }
    let ports = list(c, "/ports");
    let proto = |p: &Value| Some(text(p, "/protocol")).filter(|s| !s.is_empty()).unwrap_or("TCP").to_string();
    let port_list = |f: &str| ports.iter().map(|p| format!("{}/{}", int(p, f), proto(p))).collect::<Vec<_>>();
    let plural = if ports.len() > 1 { "s" } else { "" };
    d.kv(l, &format!("Port{plural}"), or_none(&port_list("/port").join(", ")));
    d.kv(l, &format!("Host Port{plural}"), or_none(&port_list("/hostPort").join(", ")));
    for (key, ptr) in [("Command", "/command"), ("Args", "/args")] {
        let words = list(c, ptr);
        if !words.is_empty() {
            d.line(l, format!("{key}:"));
            for w in words {
                d.line(l + 1, w.as_str().unwrap_or_default());
            }
        }
    }
    if let Some(s) = status {
        state(d, l, "State", s.get("state"));
        if s.pointer("/lastState").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            state(d, l, "Last State", s.get("lastState"));
        }
        d.kv(l, "Ready", if s.get("ready").and_then(Value::as_bool) == Some(true) { "True" } else { "False" });
        d.kv(l, "Restart Count", int(s, "/restartCount"));
    }
    for (key, ptr) in [("Limits", "/resources/limits"), ("Requests", "/resources/requests")] {
        if let Some(m) = c.pointer(ptr).and_then(Value::as_object) {
            d.line(l, format!("{key}:"));
            for (k, v) in m {
                d.kv(l + 1, k, v.as_str().map_or_else(|| v.to_string(), str::to_string));
            }
        }
    }
    env(d, l, c);
    let mounts = list(c, "/volumeMounts");
    if mounts.is_empty() {
        d.kv(l, "Mounts", "<none>");
    } else {
        d.line(l, "Mounts:");
        for m in mounts {
            let ro = if m.get("readOnly").and_then(Value::as_bool) == Some(true) { "ro" } else { "rw" };
            d.line(l + 1, format!("{} from {} ({ro})", text(m, "/mountPath"), text(m, "/name")));
        }
    }
}

/// A container state: `Running` with Started, `Waiting` with Reason, `Terminated` with details.
fn state(d: &mut Doc, level: usize, key: &str, st: Option<&Value>) {
    let st = st.and_then(Value::as_object);
    let Some((name, detail)) = st.and_then(|m| m.iter().next()) else {
        d.kv(level, key, "Waiting");
        return;
    };
    let title = match name.as_str() {
        "running" => "Running",
        "terminated" => "Terminated",
        _ => "Waiting",
    };
    d.kv(level, key, title);
    let l = level + 1;
    for (k, ptr) in [("Reason", "/reason"), ("Message", "/message")] {
        if !text(detail, ptr).is_empty() {
            d.kv(l, k, text(detail, ptr));
        }
    }
    if name == "terminated" {
        d.kv(l, "Exit Code", int(detail, "/exitCode"));
        if int(detail, "/signal") != 0 {
            d.kv(l, "Signal", int(detail, "/signal"));
        }
    }
    for (k, ptr) in [("Started", "/startedAt"), ("Finished", "/finishedAt")] {
        if !text(detail, ptr).is_empty() {
            d.kv(l, k, describe_time(text(detail, ptr)));
        }
    }
}

/// A container's environment: values, or where they come from.
fn env(d: &mut Doc, level: usize, c: &Value) {
    let vars = list(c, "/env");
    if vars.is_empty() && list(c, "/envFrom").is_empty() {
        d.kv(level, "Environment", "<none>");
        return;
    }
    for from in list(c, "/envFrom") {
        let (kind, name) = match from.get("configMapRef") {
            Some(r) => ("ConfigMap", text(r, "/name")),
            None => ("Secret", text(from, "/secretRef/name")),
        };
        d.kv(level, "Environment Variables from", "");
        d.line(level + 1, format!("{name}\t{kind}\tOptional: false"));
    }
    d.line(level, "Environment:");
    for v in vars {
        let value = match v.get("valueFrom") {
            None => text(v, "/value").to_string(),
            Some(f) => {
                if let Some(k) = f.get("configMapKeyRef") {
                    format!("<set to the key '{}' of config map '{}'>", text(k, "/key"), text(k, "/name"))
                } else if let Some(k) = f.get("secretKeyRef") {
                    format!("<set to the key '{}' in secret '{}'>", text(k, "/key"), text(k, "/name"))
                } else if let Some(k) = f.get("fieldRef") {
                    format!(" ({}:{})", text(k, "/apiVersion"), text(k, "/fieldPath"))
                } else {
                    "<set from a source>".to_string()
                }
            }
        };
        d.kv(level + 1, text(v, "/name"), value);
    }
}

/// Volumes: each one's source kind and its fields.
fn volumes(d: &mut Doc, level: usize, vols: &[Value]) {
    if vols.is_empty() {
        d.kv(level, "Volumes", "<none>");
        return;
    }
    d.line(level, "Volumes:");
    for v in vols {
        d.line(level + 1, format!("{}:", text(v, "/name")));
        let source = v.as_object().into_iter().flatten().find(|(k, _)| k.as_str() != "name");
        let Some((kind, fields)) = source else { continue };
        let mut kind_title = kind.clone();
        if let Some(f) = kind_title.get_mut(..1) {
            f.make_ascii_uppercase();
        }
        d.kv(level + 2, "Type", kind_title);
        for (k, val) in fields.as_object().into_iter().flatten() {
            d.kv(level + 2, k, val.as_str().map_or_else(|| val.to_string(), str::to_string));
        }
    }
}

/// Tolerations as `key=value:Effect op=Exists for 300s`, one per line.
fn tolerations(d: &mut Doc, level: usize, ts: &[Value]) {
    let lines: Vec<String> = ts
        .iter()
        .map(|t| {
            let mut s = text(t, "/key").to_string();
            if !text(t, "/value").is_empty() {
                s.push_str(&format!("={}", text(t, "/value")));
            }
            if !text(t, "/effect").is_empty() {
                s.push_str(&format!(":{}", text(t, "/effect")));
            }
            if text(t, "/operator") == "Exists" && text(t, "/value").is_empty() {
                s.push_str(" op=Exists");
            }
            if let Some(secs) = t.get("tolerationSeconds") {
                s.push_str(&format!(" for {secs}s"));
            }
            s
        })
        .collect();
    match lines.split_first() {
        None => d.kv(level, "Tolerations", "<none>"),
        Some((first, rest)) => {
            d.kv(level, "Tolerations", first);
            for l in rest {
                d.line(level, format!("\t{l}"));
            }
        }
    }
}

fn deployment(d: &mut Doc, o: &Value) {
    d.kv(0, "CreationTimestamp", describe_time(text(o, "/metadata/creationTimestamp")));
    meta(d, o);
    d.kv(0, "Selector", selector_string(o.pointer("/spec/selector")));
    let desired = o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    d.kv(
        0,
        "Replicas",
        format!(
            "{desired} desired | {} updated | {} total | {} available | {} unavailable",
            int(o, "/status/updatedReplicas"),
            int(o, "/status/replicas"),
            int(o, "/status/availableReplicas"),
            int(o, "/status/unavailableReplicas"),
        ),
    );
    let strategy = Some(text(o, "/spec/strategy/type")).filter(|s| !s.is_empty()).unwrap_or("RollingUpdate");
    d.kv(0, "StrategyType", strategy);
    d.kv(0, "MinReadySeconds", int(o, "/spec/minReadySeconds"));
    if strategy == "RollingUpdate" {
        let ru = |f: &str| match o.pointer(&format!("/spec/strategy/rollingUpdate/{f}")) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "25%".to_string(),
        };
        d.kv(0, "RollingUpdateStrategy", format!("{} max unavailable, {} max surge", ru("maxUnavailable"), ru("maxSurge")));
    }
    d.line(0, "Pod Template:");
    let template = o.pointer("/spec/template").unwrap_or(&Value::Null);
    d.map(1, "Labels", template.pointer("/metadata/labels"), "=");
    if template.pointer("/metadata/annotations").is_some() {
        d.map(1, "Annotations", template.pointer("/metadata/annotations"), ": ");
    }
    let spec = template.get("spec").unwrap_or(&Value::Null);
    if !text(spec, "/serviceAccountName").is_empty() {
        d.kv(1, "Service Account", text(spec, "/serviceAccountName"));
    }
    d.line(1, "Containers:");
    for c in list(spec, "/containers") {
        container(d, 2, c, None);
    }
    volumes(d, 1, list(spec, "/volumes"));
    d.kv(1, "Node-Selectors", labels_string(spec.get("nodeSelector")));
    tolerations(d, 1, list(spec, "/tolerations"));
    conditions_table(d, o);
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
        d.line(1, format!("{}\t{}\t{}", text(c, "/type"), text(c, "/status"), text(c, "/reason")));
    }
}

fn service(d: &mut Doc, o: &Value) {
    meta(d, o);
    d.kv(0, "Selector", labels_string(o.pointer("/spec/selector")));
    let kind = Some(text(o, "/spec/type")).filter(|s| !s.is_empty()).unwrap_or("ClusterIP");
    d.kv(0, "Type", kind);
    let ips: Vec<&str> = list(o, "/spec/clusterIPs").iter().filter_map(Value::as_str).collect();
    d.kv(0, "IP", or_none(ips.first().copied().unwrap_or_else(|| text(o, "/spec/clusterIP"))));
    if !ips.is_empty() {
        d.kv(0, "IPs", ips.join(","));
    }
    if kind == "ExternalName" {
        d.kv(0, "External Name", text(o, "/spec/externalName"));
    }
    for p in list(o, "/spec/ports") {
        let name = Some(text(p, "/name")).filter(|s| !s.is_empty()).unwrap_or("<unset>");
        let proto = Some(text(p, "/protocol")).filter(|s| !s.is_empty()).unwrap_or("TCP");
        d.kv(0, "Port", format!("{name}\t{}/{proto}", int(p, "/port")));
        let target = match p.get("targetPort") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => int(p, "/port").to_string(),
        };
        d.kv(0, "TargetPort", format!("{target}/{proto}"));
        if int(p, "/nodePort") != 0 {
            d.kv(0, "NodePort", format!("{name}\t{}/{proto}", int(p, "/nodePort")));
        }
    }
    if list(o, "/spec/ports").is_empty() {
        d.kv(0, "Port", format!("<none>\t{}", or_none(&service_ports(o))));
    }
    d.kv(0, "Session Affinity", Some(text(o, "/spec/sessionAffinity")).filter(|s| !s.is_empty()).unwrap_or("None"));
}

fn config_map(d: &mut Doc, o: &Value) {
    meta(d, o);
    d.line(0, "");
    d.line(0, "Data");
    d.line(0, "====");
    for (k, v) in o.pointer("/data").and_then(Value::as_object).into_iter().flatten() {
        d.line(0, format!("{k}:"));
        d.line(0, "----");
        d.line(0, v.as_str().unwrap_or_default());
        d.line(0, "");
    }
    d.line(0, "");
    d.line(0, "BinaryData");
    d.line(0, "====");
    for (k, v) in o.pointer("/binaryData").and_then(Value::as_object).into_iter().flatten() {
        d.line(0, format!("{k}: {} bytes", decoded_len(v.as_str().unwrap_or_default())));
    }
    d.line(0, "");
}

fn secret(d: &mut Doc, o: &Value) {
    meta(d, o);
    d.line(0, "");
    d.kv(0, "Type", text(o, "/type"));
    d.line(0, "");
    d.line(0, "Data");
    d.line(0, "====");
    for (k, v) in o.pointer("/data").and_then(Value::as_object).into_iter().flatten() {
        d.kv(0, k, format!("{} bytes", decoded_len(v.as_str().unwrap_or_default())));
    }
}

/// Bytes a base64 string decodes to (secret values are never printed).
fn decoded_len(b64: &str) -> usize {
    let s = b64.trim_end_matches('=');
    s.len() * 3 / 4
}

/// Any other kind: CreationTimestamp, labels, annotations, then spec and status as indented text.
fn generic(d: &mut Doc, o: &Value) {
    d.kv(0, "CreationTimestamp", describe_time(text(o, "/metadata/creationTimestamp")));
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
    for (i, c) in field.chars().enumerate() {
        if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else if c.is_ascii_uppercase() && !field[..i].ends_with(|p: char| p.is_ascii_uppercase()) {
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
            d.kv(level, key, a.iter().map(scalar).collect::<Vec<_>>().join(", "));
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
        let t = [text(e, "/series/lastObservedTime"), text(e, "/lastTimestamp"), text(e, "/eventTime"), text(e, "/firstTimestamp")];
        t.into_iter().find(|s| !s.is_empty()).unwrap_or("").parse::<Timestamp>().ok()
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
            format!("{} (x{} over {first})", age(text(s, "/lastObservedTime"), now), int(s, "/count"))
        } else if int(e, "/count") > 1 {
            format!("{} (x{} over {first})", age(text(e, "/lastTimestamp"), now), int(e, "/count"))
        } else {
            first
        };
        let from = match text(e, "/source/component") {
            "" => text(e, "/reportingController"),
            c => c,
        };
        d.line(
            1,
            format!("{}\t{}\t{interval}\t{from}\t{}", text(e, "/type"), text(e, "/reason"), text(e, "/message").trim()),
        );
    }
}
