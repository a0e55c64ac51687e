//! Pod specs (`ValidatePodSpec`) and pod updates (`ValidatePodUpdate`).

use std::collections::{BTreeMap, BTreeSet};

use ferry_api::resources::{check_dns_label, check_dns_subdomain};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

use super::meta::qualified_name_errors;
use crate::apiserver::admission::field::{at, json, q, Errors};
use ferry_api::quantity::{Quantity, QUANTITY_SYNTAX};

/// Pod restart policies, in Kubernetes' order.
pub(crate) const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
/// Port protocols, sorted as Kubernetes lists them.
pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Checks a pod spec found at `path` (`spec`, `spec.template.spec`, ...).
pub(crate) fn pod_spec(path: &str, s: &PodSpec, errs: &mut Errors) {
    let volumes = volumes(
        &at(path, "volumes"),
        s.volumes.as_deref().unwrap_or_default(),
        errs,
    );
    if s.containers.is_empty() {
        errs.required(&at(path, "containers"), "");
    }
    let mut names = BTreeSet::new();
    for (field, list) in [
        (
            "initContainers",
            s.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &s.containers[..]),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = format!("{}[{i}]", at(path, field));
            if !c.name.is_empty() && !names.insert(c.name.as_str()) {
                errs.duplicate(&at(&p, "name"), q(&c.name));
            }
            container(&p, c, &volumes, errs);
            if field == "initContainers" {
                errs.one_of(
                    &at(&p, "restartPolicy"),
                    c.restart_policy.as_deref(),
                    &["Always"],
                );
            } else if c.restart_policy.is_some() {
                errs.forbidden(
                    &at(&p, "restartPolicy"),
                    "may not be set for non-init containers",
                );
            }
        }
    }
    ephemeral_containers(path, s, &volumes, &names, errs);
    let rp = s.restart_policy.as_deref().unwrap_or_default();
    if rp.is_empty() {
        errs.required(&at(path, "restartPolicy"), "");
    } else {
        errs.one_of(&at(path, "restartPolicy"), Some(rp), RESTART_POLICIES);
    }
    errs.one_of(
        &at(path, "dnsPolicy"),
        s.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    errs.non_negative(
        &at(path, "terminationGracePeriodSeconds"),
        s.termination_grace_period_seconds,
    );
    if let Some(d) = s
        .active_deadline_seconds
        .filter(|d| *d <= 0 || *d > i64::from(i32::MAX))
    {
        errs.invalid(
            &at(path, "activeDeadlineSeconds"),
            d,
            "must be between 1 and 2147483647, inclusive",
        );
    }
    for (field, v) in [
        ("serviceAccountName", &s.service_account_name),
        ("nodeName", &s.node_name),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            errs.name(check_dns_subdomain(&at(path, field), v));
        }
    }
    for (field, v) in [("hostname", &s.hostname), ("subdomain", &s.subdomain)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            errs.name(check_dns_label(&at(path, field), v));
        }
    }
    super::meta::labels(&at(path, "nodeSelector"), s.node_selector.as_ref(), errs);
    tolerations(path, s, errs);
}

/// The fields an ephemeral container may set (Kubernetes'
/// `allowedEphemeralContainerFields`): no ports, probes, resources, lifecycle
/// or restart policy, which a workload relies on.
const EPHEMERAL_ALLOWED: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];
const EPHEMERAL_FORBIDDEN: &str = "cannot be set for an Ephemeral Container";

/// `validateEphemeralContainers`: each is a valid container with a name
/// unique across all containers, setting only the allowed fields, targeting
/// a regular or init container.
fn ephemeral_containers(
    path: &str,
    s: &PodSpec,
    volumes: &BTreeSet<&str>,
    others: &BTreeSet<&str>,
    errs: &mut Errors,
) {
    let mut all = others.clone();
    for (i, e) in s.ephemeral_containers.iter().flatten().enumerate() {
        let p = format!("{}[{i}]", at(path, "ephemeralContainers"));
        let mut fields = serde_json::to_value(e).unwrap_or_default();
        if let Some(m) = fields.as_object_mut() {
            m.remove("targetContainerName");
        }
        if let Ok(c) = serde_json::from_value::<Container>(fields.clone()) {
            container(&p, &c, volumes, errs);
        }
        if !e.name.is_empty() && !all.insert(e.name.as_str()) {
            errs.duplicate(&at(&p, "name"), q(&e.name));
        }
        if let Some(t) = e.target_container_name.as_deref().filter(|t| !t.is_empty()) {
            if !others.contains(t) {
                errs.not_found(&at(&p, "targetContainerName"), q(t));
            }
        }
        for (k, v) in fields.as_object().into_iter().flatten() {
            if !EPHEMERAL_ALLOWED.contains(&k.as_str()) && !is_zero(v) {
                errs.forbidden(&at(&p, k), EPHEMERAL_FORBIDDEN);
            }
        }
        for (j, m) in e.volume_mounts.iter().flatten().enumerate() {
            let mp = format!("{}[{j}]", at(&p, "volumeMounts"));
            for (f, v) in [("subPath", &m.sub_path), ("subPathExpr", &m.sub_path_expr)] {
                if v.as_deref().is_some_and(|v| !v.is_empty()) {
                    errs.forbidden(&at(&mp, f), EPHEMERAL_FORBIDDEN);
                }
            }
        }
    }
}

/// Go's zero value, as JSON: what a client sends for a field it did not set.
fn is_zero(v: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match v {
        V::Null => true,
        V::Bool(b) => !b,
        V::Number(n) => n.as_f64() == Some(0.0),
        V::String(s) => s.is_empty(),
        V::Array(a) => a.is_empty(),
        V::Object(o) => o.values().all(is_zero),
    }
}

/// `ValidatePodCreate`'s rule: ephemeral containers are only added to a
/// running pod, through `pods/ephemeralcontainers`.
pub(crate) fn pod_create(p: &Pod, errs: &mut Errors) {
    if p.spec.as_ref().is_some_and(|s| {
        s.ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
    }) {
        errs.forbidden("spec.ephemeralContainers", "cannot be set on create");
    }
}

/// `ValidatePodEphemeralContainersUpdate`: existing ephemeral containers may
/// be neither removed nor changed (the rest of the pod is the stored one:
/// the subresource takes only `spec.ephemeralContainers` from the request).
pub(crate) fn ephemeral_update(new: &Pod, old: &Pod, errs: &mut Errors) {
    if old
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
    {
        errs.forbidden("", "static pods do not support ephemeral containers");
        return;
    }
    let path = "spec.ephemeralContainers";
    let list = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.clone())
            .unwrap_or_default()
    };
    let new_list = list(new);
    for o in list(old) {
        match new_list.iter().find(|n| n.name == o.name) {
            None => errs.forbidden(
                path,
                &format!(
                    "existing ephemeral containers {:?} may not be removed",
                    o.name
                ),
            ),
            Some(n) if *n != o => {
                let (nv, ov) = (
                    serde_json::to_value(n).unwrap_or_default(),
                    serde_json::to_value(&o).unwrap_or_default(),
                );
                let mut keys: BTreeSet<&String> = BTreeSet::new();
                keys.extend(nv.as_object().into_iter().flat_map(|m| m.keys()));
                keys.extend(ov.as_object().into_iter().flat_map(|m| m.keys()));
                let changed: Vec<String> = keys
                    .into_iter()
                    .filter(|k| nv.get(k.as_str()) != ov.get(k.as_str()))
                    .map(|k| {
                        format!(
                            "{k}: {} -> {}",
                            json(&ov.get(k.as_str())),
                            json(&nv.get(k.as_str()))
                        )
                    })
                    .collect();
                errs.forbidden(
                    path,
                    &format!(
                        "existing ephemeral containers {:?} may not be changed\n  changed: {}",
                        o.name,
                        changed.join("; ")
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

fn tolerations(path: &str, s: &PodSpec, errs: &mut Errors) {
    for (i, t) in s.tolerations.iter().flatten().enumerate() {
        let p = format!("{}[{i}]", at(path, "tolerations"));
        errs.one_of(
            &at(&p, "operator"),
            t.operator.as_deref(),
            &["Equal", "Exists"],
        );
        errs.one_of(
            &at(&p, "effect"),
            t.effect.as_deref().filter(|e| !e.is_empty()),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
        );
        if t.operator.as_deref() == Some("Exists")
            && t.value.as_deref().is_some_and(|v| !v.is_empty())
        {
            errs.invalid(
                &at(&p, "operator"),
                q("Exists"),
                "value must be empty when `operator` is 'Exists'",
            );
        }
    }
}

/// Checks volume names and that each names exactly one source; returns the names.
fn volumes<'a>(path: &str, vols: &'a [Volume], errs: &mut Errors) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, v) in vols.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if v.name.is_empty() {
            errs.required(&at(&p, "name"), "");
        } else {
            errs.name(check_dns_label(&at(&p, "name"), &v.name));
            if !names.insert(v.name.as_str()) {
                errs.duplicate(&at(&p, "name"), q(&v.name));
            }
        }
        let sources = serde_json::to_value(v)
            .ok()
            .and_then(|j| {
                j.as_object()
                    .map(|m| m.keys().filter(|k| *k != "name").count())
            })
            .unwrap_or(0);
        match sources {
            0 => errs.required(&p, "must specify a volume type"),
            1 => {}
            _ => errs.forbidden(&p, "may not specify more than 1 volume type"),
        }
        let projected = v.projected.as_ref().and_then(|pr| pr.sources.as_ref());
        for (j, src) in projected.into_iter().flatten().enumerate() {
            let Some(t) = &src.service_account_token else {
                continue;
            };
            let tp = format!("{p}.projected.sources[{j}].serviceAccountToken");
            let seconds = t.expiration_seconds.unwrap_or(3600);
            if seconds < 600 {
                errs.invalid(
                    &at(&tp, "expirationSeconds"),
                    seconds,
                    "may not specify a duration less than 10 minutes",
                );
            } else if seconds > 1 << 32 {
                errs.invalid(
                    &at(&tp, "expirationSeconds"),
                    seconds,
                    "may not specify a duration larger than 2^32 seconds",
                );
            }
            if t.path.is_empty() {
                errs.required(&at(&tp, "path"), "");
            }
        }
    }
    names
}

fn container(p: &str, c: &Container, volumes: &BTreeSet<&str>, errs: &mut Errors) {
    if c.name.is_empty() {
        errs.required(&at(p, "name"), "");
    } else {
        errs.name(check_dns_label(&at(p, "name"), &c.name));
    }
    let image = c.image.as_deref().unwrap_or_default();
    if image.is_empty() {
        errs.required(&at(p, "image"), "");
    } else if image.trim() != image {
        errs.invalid(
            &at(p, "image"),
            q(image),
            "must not have leading or trailing whitespace",
        );
    }
    errs.one_of(
        &at(p, "imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    errs.one_of(
        &at(p, "terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        MESSAGE_POLICIES,
    );
    ports(p, c, errs);
    env(p, c, errs);
    let mut paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{}[{i}]", at(p, "volumeMounts"));
        if m.name.is_empty() {
            errs.required(&at(&mp, "name"), "");
        } else if !volumes.contains(m.name.as_str()) {
            errs.not_found(&at(&mp, "name"), q(&m.name));
        }
        if m.mount_path.is_empty() {
            errs.required(&at(&mp, "mountPath"), "");
        } else if !paths.insert(m.mount_path.as_str()) {
            errs.invalid(&at(&mp, "mountPath"), q(&m.mount_path), "must be unique");
        }
    }
    if let Some(r) = &c.resources {
        resources(&at(p, "resources"), r, errs);
    }
}

fn ports(p: &str, c: &Container, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{}[{i}]", at(p, "ports"));
        if let Some(n) = port.name.as_deref().filter(|n| !n.is_empty()) {
            for why in port_name_errors(n) {
                errs.invalid(&at(&pp, "name"), q(n), why);
            }
            if !names.insert(n) {
                errs.duplicate(&at(&pp, "name"), q(n));
            }
        }
        if port.container_port == 0 {
            errs.required(&at(&pp, "containerPort"), "");
        } else if !(1..=65535).contains(&port.container_port) {
            errs.invalid(&at(&pp, "containerPort"), port.container_port, PORT_RANGE);
        }
        if let Some(h) = port
            .host_port
            .filter(|h| *h != 0 && !(1..=65535).contains(h))
        {
            errs.invalid(&at(&pp, "hostPort"), h, PORT_RANGE);
        }
        match port.protocol.as_deref() {
            None | Some("") => errs.required(&at(&pp, "protocol"), ""),
            proto => errs.one_of(&at(&pp, "protocol"), proto, PROTOCOLS),
        }
    }
}

/// Reasons a port name (IANA_SVC_NAME) is invalid.
pub(crate) fn port_name_errors(n: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if n.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if n.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if !n.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if n.starts_with('-') || n.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

fn env(p: &str, c: &Container, errs: &mut Errors) {
    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{}[{i}]", at(p, "env"));
        if e.name.is_empty() {
            errs.required(&at(&ep, "name"), "");
        } else if !e
            .name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
        {
            errs.invalid(&at(&ep, "name"), q(&e.name), "a valid environment variable name must consist only of printable ASCII characters other than '='");
        }
        if let Some(from) = &e.value_from {
            let n = serde_json::to_value(from)
                .ok()
                .and_then(|j| j.as_object().map(|m| m.len()))
                .unwrap_or(0);
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.invalid(
                    &at(&ep, "valueFrom"),
                    q(""),
                    "may not be specified when `value` is not empty",
                );
            }
            if n == 0 {
                errs.invalid(&at(&ep, "valueFrom"), q(""), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
            } else if n > 1 {
                errs.invalid(
                    &at(&ep, "valueFrom"),
                    q(""),
                    "may not have more than one field specified at a time",
                );
            }
        }
    }
}

/// Resource names, quantity syntax, non-negative values, requests ≤ limits.
fn resources(p: &str, r: &ResourceRequirements, errs: &mut Errors) {
    let limits = quantities(&at(p, "limits"), r.limits.as_ref(), errs);
    let requests = quantities(&at(p, "requests"), r.requests.as_ref(), errs);
    for (name, (req, req_s)) in &requests {
        if let Some((lim, lim_s)) = limits.get(name) {
            if req > lim {
                errs.invalid(
                    &format!("{}[{name}]", at(p, "requests")),
                    q(req_s),
                    &format!("must be less than or equal to {name} limit of {lim_s}"),
                );
            }
        }
    }
}

fn quantities<'a>(
    p: &str,
    m: Option<&'a BTreeMap<String, Q>>,
    errs: &mut Errors,
) -> BTreeMap<&'a str, (Quantity, &'a str)> {
    let mut out = BTreeMap::new();
    for (name, v) in m.into_iter().flatten() {
        let f = format!("{p}[{name}]");
        let standard = matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !standard && (!name.contains('/') || !qualified_name_errors(name).is_empty()) {
            errs.invalid(
                &f,
                q(name),
                "must be a standard resource type or fully qualified",
            );
        }
        match Quantity::parse(&v.0) {
            None => errs.invalid(&f, q(&v.0), QUANTITY_SYNTAX),
            Some(n) if n.0 < 0 => errs.invalid(&f, q(&v.0), "must be greater than or equal to 0"),
            Some(n) => {
                out.insert(name.as_str(), (n, v.0.as_str()));
            }
        }
    }
    out
}

/// A pod may change only images, activeDeadlineSeconds (never raised or unset)
/// and tolerations (additions only).
pub(crate) fn pod_update(new: &Pod, old: &Pod, errs: &mut Errors) {
    let (Some(ns), Some(os)) = (&new.spec, &old.spec) else {
        return;
    };
    if let Some(old_d) = os.active_deadline_seconds {
        match ns.active_deadline_seconds {
            None => errs.invalid(
                "spec.activeDeadlineSeconds",
                "null",
                "must not update from a positive integer to nil value",
            ),
            Some(d) if d > old_d => errs.invalid(
                "spec.activeDeadlineSeconds",
                d,
                "must be less than or equal to previous value",
            ),
            _ => {}
        }
    }
    let old_tol = os.tolerations.clone().unwrap_or_default();
    let new_tol = ns.tolerations.clone().unwrap_or_default();
    let tol_ok = old_tol.iter().all(|t| new_tol.contains(t));
    // Copy what may change from the old spec; anything else that differs is forbidden.
    let mut masked = ns.clone();
    masked.active_deadline_seconds = os.active_deadline_seconds;
    if tol_ok {
        masked.tolerations = os.tolerations.clone();
    }
    for (m, o) in masked.containers.iter_mut().zip(&os.containers) {
        m.image = o.image.clone();
    }
    for (m, o) in masked
        .init_containers
        .iter_mut()
        .flatten()
        .zip(os.init_containers.iter().flatten())
    {
        m.image = o.image.clone();
    }
    if masked != *os {
        let diff = spec_diff(&masked, os);
        errs.forbidden("spec", &format!("{UPDATE_FORBIDDEN}\n{diff}"));
    }
}

/// The top-level spec fields that differ, for the update error.
fn spec_diff(new: &PodSpec, old: &PodSpec) -> String {
    let (n, o) = (
        serde_json::to_value(new).unwrap_or_default(),
        serde_json::to_value(old).unwrap_or_default(),
    );
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    keys.extend(n.as_object().into_iter().flat_map(|m| m.keys()));
    keys.extend(o.as_object().into_iter().flat_map(|m| m.keys()));
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| n.get(k.as_str()) != o.get(k.as_str()))
        .map(|k| {
            format!(
                "spec.{k}: {} -> {}",
                json(&o.get(k.as_str())),
                json(&n.get(k.as_str()))
            )
        })
        .collect();
    format!("  changed: {}", changed.join("; "))
}
