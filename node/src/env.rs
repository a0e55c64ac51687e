//! A container's environment: `env` with `$(VAR)` expansion, `valueFrom`
//! (ConfigMap and Secret keys, the downward API) and `envFrom`.

use k8s_openapi::api::core::v1::Service;
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
    /// The Services a container sees (`{"items": [...]}`: its namespace's and
    /// `default/kubernetes`), for [`service_env`].
    Services,
    /// The pod's service-account token and the cluster CA
    /// (`{"token": ..., "ca.crt": ...}`), mounted at
    /// [`crate::volumes::SA_DIR`].
    ServiceAccountToken,
    /// The PersistentVolume a claim of the pod's namespace is bound to
    /// (None until it is bound).
    Claim(String),
    /// A token for a projected `serviceAccountToken` source
    /// (`{"token": ...}`): its audience ("" = the API's) and lifetime.
    ProjectedToken {
        /// `audience`.
        audience: String,
        /// `expirationSeconds`.
        seconds: i64,
    },
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
    // Service links first: the container's own variables override them.
    let mut vars: Vec<(String, String)> = match fetched.get(&Source::Services) {
        Some(Some(list)) => {
            let services: Vec<Service> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| serde_json::from_value(s.clone()).ok())
                .collect();
            let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str);
            let links = pod
                .pointer("/spec/enableServiceLinks")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            service_env(ns.unwrap_or("default"), links, &services)
        }
        // As the kubelet: no container starts before the Services are known.
        Some(None) => {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            )
        }
        None => Vec::new(),
    };
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

/// Kubernetes' name for a Service's variables: upper case, `-` as `_`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables the kubelet gives a container for the Services that exist
/// when it starts: those of namespace `ns` when `links`
/// (`enableServiceLinks`, default true), and `default/kubernetes` always
/// (one of `ns`'s own named `kubernetes` wins). Headless Services and those
/// without a ClusterIP give none.
pub fn service_env(ns: &str, links: bool, services: &[Service]) -> Vec<(String, String)> {
    let mut chosen: std::collections::BTreeMap<&str, &Service> = Default::default();
    for s in services {
        let Some(name) = s.metadata.name.as_deref() else {
            continue;
        };
        let sns = s.metadata.namespace.as_deref().unwrap_or("default");
        if sns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(s);
        } else if sns == ns && links {
            chosen.insert(name, s);
        }
    }
    let mut out = Vec::new();
    for (name, s) in chosen {
        let Some(spec) = &s.spec else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => continue,
            Some(ip) => ip,
        };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = env_name(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                ));
            }
        }
        // `ip:port`, bracketed for IPv6 (Go's JoinHostPort).
        let host_port = |port: i32| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", host_port(p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_string()));
            out.push((pp, url));
        }
    }
    out
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
        Source::Services => "the namespace's services".into(),
        Source::ServiceAccountToken => "the service-account token".into(),
        Source::Claim(n) => format!("persistentvolumeclaim {n:?}"),
        Source::ProjectedToken { audience, .. } => {
            format!("a service-account token for audience {audience:?}")
        }
    }
}

pub(crate) fn missing(src: &Source) -> String {
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

    fn service(ns: &str, name: &str, spec: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    fn services() -> Vec<Value> {
        vec![
            service(
                "default",
                "kubernetes",
                json!({"clusterIP": "10.43.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}),
            ),
            service(
                "app",
                "redis-primary",
                json!({"clusterIP": "10.43.0.20",
                "ports": [{"name": "redis", "port": 6379}, {"port": 53, "protocol": "UDP"}]}),
            ),
            service(
                "app",
                "headless",
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            ),
            service(
                "app",
                "ext",
                json!({"type": "ExternalName", "externalName": "x.example"}),
            ),
            service(
                "other",
                "db",
                json!({"clusterIP": "10.43.0.30", "ports": [{"port": 5432}]}),
            ),
        ]
    }

    #[test]
    fn service_links_as_the_kubelet_gives_them() {
        let svcs: Vec<Service> = services()
            .into_iter()
            .map(|s| serde_json::from_value(s).unwrap())
            .collect();
        let kube = [
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.43.0.1"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.43.0.1:443"),
        ];
        let redis = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.43.0.20"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_REDIS", "6379"),
            ("REDIS_PRIMARY_PORT", "tcp://10.43.0.20:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.43.0.20"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.43.0.20:6379"),
            ("REDIS_PRIMARY_PORT_53_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_PORT_53_UDP_PORT", "53"),
            ("REDIS_PRIMARY_PORT_53_UDP_ADDR", "10.43.0.20"),
            ("REDIS_PRIMARY_PORT_53_UDP", "udp://10.43.0.20:53"),
        ];
        let own = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let both: Vec<_> = own(&kube).into_iter().chain(own(&redis)).collect();
        // (namespace, enableServiceLinks, want)
        for (ns, links, want) in [
            ("app", true, both),
            ("app", false, own(&kube)),
            ("empty", true, own(&kube)),
        ] {
            let mut got = service_env(ns, links, &svcs);
            let mut want = want;
            got.sort();
            want.sort();
            assert_eq!(got, want, "{ns} links={links}");
        }
        // A namespace's own `kubernetes` Service wins over default's.
        let mut mine = svcs.clone();
        mine.push(
            serde_json::from_value(service(
                "app",
                "kubernetes",
                json!({"clusterIP": "10.43.0.99", "ports": [{"port": 1}]}),
            ))
            .unwrap(),
        );
        let got = service_env("app", true, &mine);
        assert!(got.contains(&("KUBERNETES_SERVICE_HOST".into(), "10.43.0.99".into())));
        assert!(!got.iter().any(|(_, v)| v == "10.43.0.1"));
    }

    #[test]
    fn container_env_overrides_and_references_service_links() {
        let pod = json!({"metadata": {"namespace": "app", "name": "p"}});
        let c = json!({"env": [
            {"name": "REDIS_PRIMARY_SERVICE_PORT", "value": "1"},
            {"name": "URL", "value": "redis://$(REDIS_PRIMARY_SERVICE_HOST)"}]});
        let mut f = Fetched::new();
        f.insert(Source::Services, Some(json!({"items": services()})));
        let env = build(&pod, &c, &f, "10.42.0.5", "10.0.0.1").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REDIS_PRIMARY_SERVICE_PORT"), Some("1"));
        assert_eq!(get("URL"), Some("redis://10.43.0.20"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(
            env.iter()
                .filter(|(n, _)| n == "REDIS_PRIMARY_SERVICE_PORT")
                .count(),
            1
        );
        // Without the list (not fetched), no links.
        let env = build(&pod, &c, &Fetched::new(), "10.42.0.5", "10.0.0.1").unwrap();
        assert_eq!(get_in(&env, "KUBERNETES_SERVICE_HOST"), None);
    }

    fn get_in<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}
