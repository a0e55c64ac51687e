//! Pods and pod templates in `describe`.

use super::{controlled_by, meta, Doc};
use ferry_api::printers::age::describe_time;
use ferry_api::printers::columns::or_none;
use ferry_api::printers::{int, labels_string, list, text};
use serde_json::Value;

pub(super) fn pod(d: &mut Doc, o: &Value) {
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
    if let Some(t) = o
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        d.kv(
            0,
            "Status",
            format!("Terminating (lasts since {})", describe_time(t)),
        );
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
    pod_containers(d, o);
    volumes(d, 0, list(o, "/spec/volumes"));
    d.kv(0, "QoS Class", text(o, "/status/qosClass"));
    d.kv(
        0,
        "Node-Selectors",
        labels_string(o.pointer("/spec/nodeSelector")),
    );
    tolerations(d, 0, list(o, "/spec/tolerations"));
}

/// Init containers (when there are any) and containers with their statuses,
/// then the pod's conditions.
fn pod_containers(d: &mut Doc, o: &Value) {
    for (title, spec, st) in [
        (
            "Init Containers",
            "/spec/initContainers",
            "/status/initContainerStatuses",
        ),
        (
            "Containers",
            "/spec/containers",
            "/status/containerStatuses",
        ),
    ] {
        let specs = list(o, spec);
        if specs.is_empty() && title == "Init Containers" {
            continue;
        }
        d.line(0, format!("{title}:"));
        let statuses = list(o, st);
        for c in specs {
            let status = statuses
                .iter()
                .find(|s| text(s, "/name") == text(c, "/name"));
            container(d, 1, c, In::Pod(status));
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
}

/// How a container is described: in a pod, with its status (if reported yet),
/// or in a pod template, where kubectl puts its name one space deeper.
pub(super) enum In<'a> {
    Pod(Option<&'a Value>),
    Template,
}

/// One container: image, ports, command, state, readiness, env and mounts.
pub(super) fn container(d: &mut Doc, level: usize, c: &Value, place: In<'_>) {
    let (nudge, status) = match place {
        In::Pod(status) => ("", status),
        In::Template => (" ", None),
    };
    d.line(level, format!("{nudge}{}:", text(c, "/name")));
    let l = level + 1;
    if let Some(s) = status {
        d.kv(l, "Container ID", text(s, "/containerID"));
    }
    d.kv(l, "Image", text(c, "/image"));
    if let Some(s) = status {
        d.kv(l, "Image ID", text(s, "/imageID"));
    }
    ports(d, l, c);
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
        if s.get("lastState")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            state(d, l, "Last State", s.get("lastState"));
        }
        let ready = s.get("ready").and_then(Value::as_bool) == Some(true);
        d.kv(l, "Ready", if ready { "True" } else { "False" });
        d.kv(l, "Restart Count", int(s, "/restartCount"));
    }
    for (key, ptr) in [
        ("Limits", "/resources/limits"),
        ("Requests", "/resources/requests"),
    ] {
        if let Some(m) = c.pointer(ptr).and_then(Value::as_object) {
            d.line(l, format!("{key}:"));
            for (k, v) in m {
                d.kv(
                    l + 1,
                    k,
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
        }
    }
    env(d, l, c);
    mounts(d, l, c);
}

/// `Port:` and `Host Port:` (`Ports:` when several), or `<none>`.
fn ports(d: &mut Doc, level: usize, c: &Value) {
    let ports = list(c, "/ports");
    fn proto(p: &Value) -> &str {
        Some(text(p, "/protocol"))
            .filter(|s| !s.is_empty())
            .unwrap_or("TCP")
    }
    let joined = |f: &str| {
        let all: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", int(p, f), proto(p)))
            .collect();
        or_none(&all.join(", "))
    };
    let plural = if ports.len() > 1 { "s" } else { "" };
    d.kv(level, &format!("Port{plural}"), joined("/containerPort"));
    d.kv(level, &format!("Host Port{plural}"), joined("/hostPort"));
}

/// `Mounts:`, one `path from volume (ro|rw)` per line, or `<none>`.
fn mounts(d: &mut Doc, l: usize, c: &Value) {
    let mounts = list(c, "/volumeMounts");
    if mounts.is_empty() {
        d.kv(l, "Mounts", "<none>");
    } else {
        d.line(l, "Mounts:");
        for m in mounts {
            let ro = if m.get("readOnly").and_then(Value::as_bool) == Some(true) {
                "ro"
            } else {
                "rw"
            };
            d.line(
                l + 1,
                format!("{} from {} ({ro})", text(m, "/mountPath"), text(m, "/name")),
            );
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
                    format!(
                        "<set to the key '{}' of config map '{}'>",
                        text(k, "/key"),
                        text(k, "/name")
                    )
                } else if let Some(k) = f.get("secretKeyRef") {
                    format!(
                        "<set to the key '{}' in secret '{}'>",
                        text(k, "/key"),
                        text(k, "/name")
                    )
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
pub(super) fn volumes(d: &mut Doc, level: usize, vols: &[Value]) {
    if vols.is_empty() {
        d.kv(level, "Volumes", "<none>");
        return;
    }
    d.line(level, "Volumes:");
    for v in vols {
        d.line(level + 1, format!("{}:", text(v, "/name")));
        let source = v
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, _)| k.as_str() != "name");
        let Some((kind, fields)) = source else {
            continue;
        };
        let mut kind_title = kind.clone();
        if let Some(f) = kind_title.get_mut(..1) {
            f.make_ascii_uppercase();
        }
        d.kv(level + 2, "Type", kind_title);
        for (k, val) in fields.as_object().into_iter().flatten() {
            d.kv(
                level + 2,
                k,
                val.as_str().map_or_else(|| val.to_string(), str::to_string),
            );
        }
    }
}

/// Tolerations as `key=value:Effect op=Exists for 300s`, one per line.
pub(super) fn tolerations(d: &mut Doc, level: usize, ts: &[Value]) {
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

/// A workload's `Pod Template:` section.
pub(super) fn pod_template(d: &mut Doc, template: &Value) {
    d.line(0, "Pod Template:");
    d.map(1, "Labels", template.pointer("/metadata/labels"), "=");
    if template.pointer("/metadata/annotations").is_some() {
        d.map(
            1,
            "Annotations",
            template.pointer("/metadata/annotations"),
            ": ",
        );
    }
    let spec = template.get("spec").unwrap_or(&Value::Null);
    if !text(spec, "/serviceAccountName").is_empty() {
        d.kv(1, "Service Account", text(spec, "/serviceAccountName"));
    }
    d.line(1, "Containers:");
    for c in list(spec, "/containers") {
        container(d, 1, c, In::Template);
    }
    volumes(d, 1, list(spec, "/volumes"));
    d.kv(1, "Node-Selectors", labels_string(spec.get("nodeSelector")));
    tolerations(d, 1, list(spec, "/tolerations"));
}
