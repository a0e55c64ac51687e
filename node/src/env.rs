//! A container's environment: `env` with `$(VAR)` expansion, `valueFrom`
//! (ConfigMap and Secret keys, the downward API) and `envFrom`.

use serde_json::Value;
use std::collections::HashMap;

/// Expands `$(VAR)` references to variables defined earlier (as Kubernetes
/// does): `$$` escapes a `$`; an undefined reference stays as written.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(j) => {
                    let name = &tail[..j];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Where a value comes from that needs an object the agent must read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A ConfigMap in the pod's namespace.
    ConfigMap(String),
    /// A Secret in the pod's namespace.
    Secret(String),
}

/// Objects a container's environment reads, by source.
pub type Fetched = HashMap<Source, Option<Value>>;

/// Every ConfigMap and Secret `container`'s environment names.
pub fn sources(container: &Value) -> Vec<Source> {
    let mut out = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        if let Some(n) = e
            .pointer("/valueFrom/configMapKeyRef/name")
            .and_then(Value::as_str)
        {
            out.push(Source::ConfigMap(n.to_string()));
        }
        if let Some(n) = e
            .pointer("/valueFrom/secretKeyRef/name")
            .and_then(Value::as_str)
        {
            out.push(Source::Secret(n.to_string()));
        }
    }
    for e in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(n) = e.pointer("/configMapRef/name").and_then(Value::as_str) {
            out.push(Source::ConfigMap(n.to_string()));
        }
        if let Some(n) = e.pointer("/secretRef/name").and_then(Value::as_str) {
            out.push(Source::Secret(n.to_string()));
        }
    }
    out.sort_by_key(|s| format!("{s:?}"));
    out.dedup();
    out
}

fn key_of(obj: &Value, secret: bool, key: &str) -> Option<String> {
    if secret {
        let b64 = obj.pointer(&format!("/data/{}", escape(key)))?.as_str()?;
        ferry_api::token::base64_decode(b64).and_then(|b| String::from_utf8(b).ok())
    } else {
        obj.pointer(&format!("/data/{}", escape(key)))?
            .as_str()
            .map(str::to_string)
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The downward API fields a `fieldRef` may name.
fn field(pod: &Value, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).map(str::to_string);
    match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName").or(Some("default".into())),
        "status.podIP" => Some(pod_ip.to_string()),
        "status.podIPs" => Some(pod_ip.to_string()),
        "status.hostIP" => Some(host_ip.to_string()),
        "status.hostIPs" => Some(host_ip.to_string()),
        p => {
            let (map, key) = if let Some(k) = p.strip_prefix("metadata.labels['") {
                ("labels", k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['") {
                ("annotations", k)
            } else {
                return None;
            };
            let key = key.strip_suffix("']")?;
            pod["metadata"][map][key].as_str().map(str::to_string)
        }
    }
}

/// Builds the environment of `container` in `pod`. `Err` names the missing
/// reference (the container then waits with `CreateContainerConfigError`).
pub fn build(
    pod: &Value,
    container: &Value,
    fetched: &Fetched,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| match vars
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(slot) => slot.1 = v,
        None => vars.push((k, v)),
    };
    for e in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = e["prefix"].as_str().unwrap_or_default();
        let (src, optional, secret) =
            if let Some(n) = e.pointer("/configMapRef/name").and_then(Value::as_str) {
                (
                    Source::ConfigMap(n.into()),
                    e.pointer("/configMapRef/optional")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    false,
                )
            } else if let Some(n) = e.pointer("/secretRef/name").and_then(Value::as_str) {
                (
                    Source::Secret(n.into()),
                    e.pointer("/secretRef/optional")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    true,
                )
            } else {
                continue;
            };
        match fetched.get(&src).cloned().flatten() {
            Some(obj) => {
                for (k, _) in obj["data"].as_object().into_iter().flatten() {
                    if let Some(v) = key_of(&obj, secret, k) {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
            }
            None if optional => {}
            None => return Err(missing(&src)),
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(vf) = e.get("valueFrom") {
            if let Some(path) = vf.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                field(pod, path, pod_ip, host_ip)
                    .ok_or_else(|| format!("env {name}: unsupported fieldRef {path:?}"))?
            } else if let Some(r) = vf.get("configMapKeyRef").or(vf.get("secretKeyRef")) {
                let secret = vf.get("secretKeyRef").is_some();
                let obj_name = r["name"].as_str().unwrap_or_default().to_string();
                let key = r["key"].as_str().unwrap_or_default();
                let optional = r["optional"].as_bool().unwrap_or(false);
                let src = if secret {
                    Source::Secret(obj_name)
                } else {
                    Source::ConfigMap(obj_name)
                };
                match fetched.get(&src).cloned().flatten() {
                    Some(obj) => match key_of(&obj, secret, key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(format!("couldn't find key {key} in {}", describe(&src)))
                        }
                    },
                    None if optional => continue,
                    None => return Err(missing(&src)),
                }
            } else if let Some(r) = vf.get("resourceFieldRef") {
                resource_field(pod, container, r)
                    .ok_or_else(|| format!("env {name}: unsupported resourceFieldRef"))?
            } else {
                return Err(format!("env {name}: unsupported valueFrom"));
            }
        } else {
            let map: HashMap<String, String> = vars.iter().cloned().collect();
            expand(e["value"].as_str().unwrap_or_default(), &map)
        };
        set(&mut vars, name.to_string(), value);
    }
    Ok(vars)
}

fn resource_field(_pod: &Value, container: &Value, r: &Value) -> Option<String> {
    let res = r["resource"].as_str()?;
    let (kind, what) = res.split_once('.')?;
    let v = container["resources"][kind][what].as_str()?;
    Some(v.to_string())
}

fn describe(src: &Source) -> String {
    match src {
        Source::ConfigMap(n) => format!("configmap {n:?}"),
        Source::Secret(n) => format!("secret {n:?}"),
    }
}

fn missing(src: &Source) -> String {
    format!("{} not found", describe(src))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dollar_references_expand_as_kubernetes_does() {
        let vars: HashMap<String, String> = [
            ("A".to_string(), "1".to_string()),
            ("B".into(), "x y".into()),
        ]
        .into();
        for (input, want) in [
            ("$(A)", "1"),
            ("pre-$(A)-$(B)", "pre-1-x y"),
            ("$$(A)", "$(A)"),
            ("$(C)", "$(C)"),
            ("$(A", "$(A"),
            ("a$b", "a$b"),
            ("$", "$"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }

    #[test]
    fn env_reads_configmaps_secrets_and_the_downward_api() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                                      "labels": {"app": "web"}},
                         "spec": {"nodeName": "n1"}});
        let c = json!({
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-b"},
                {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "s", "key": "user"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k", "optional": true}}},
            ]
        });
        assert_eq!(
            sources(&c),
            [
                Source::ConfigMap("cfg".into()),
                Source::ConfigMap("none".into()),
                Source::Secret("s".into())
            ]
        );
        let mut fetched = Fetched::new();
        fetched.insert(
            Source::ConfigMap("cfg".into()),
            Some(json!({"data": {"mode": "fast"}})),
        );
        fetched.insert(
            Source::Secret("s".into()),
            Some(json!({"data": {"user": "YWRtaW4="}})),
        );
        fetched.insert(Source::ConfigMap("none".into()), None);
        let env = build(&pod, &c, &fetched, "127.0.1.1", "127.0.1.1").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("B"), Some("a-b"));
        assert_eq!(get("USER"), Some("admin"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("127.0.1.1"));
        assert_eq!(get("OPT"), None);

        // A missing, required reference names what is missing.
        fetched.insert(Source::Secret("s".into()), None);
        let e = build(&pod, &c, &fetched, "", "").unwrap_err();
        assert_eq!(e, "secret \"s\" not found");
        fetched.insert(Source::Secret("s".into()), Some(json!({"data": {}})));
        let e = build(&pod, &c, &fetched, "", "").unwrap_err();
        assert!(e.contains("couldn't find key user"), "{e}");
    }
}
