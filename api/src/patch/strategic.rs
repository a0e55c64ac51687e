//! Kubernetes strategic merge patch for the built-in kinds.
//!
//! Like a JSON merge patch, except that some lists are merged instead of
//! replaced. Which lists, and by which key, comes from the `patchStrategy` and
//! `patchMergeKey` tags of the Kubernetes Go types; [`RULES`] copies them for
//! the core, apps and batch kinds, keyed by the suffix of the field path (list
//! indices omitted), so `spec.containers`, `spec.template.spec.containers` and
//! `spec.jobTemplate.spec.template.spec.containers` share one rule. The kind is
//! a parameter only where a suffix is ambiguous (Service `spec.ports`, Node
//! `status.addresses`); for unknown kinds (custom resources) the suffix rules
//! still apply.

use serde_json::{Map, Value};

use super::{PatchError, Result};

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the target's (the default).
    Replace,
    /// Elements are objects merged by this key; new keys are appended.
    MergeKey(&'static str),
    /// A list of scalars merged as a set (union, target order first).
    Primitive,
}

/// One rule: `kind` ("" for any) and a dotted path suffix.
struct Rule {
    kind: &'static str,
    suffix: &'static str,
    strategy: ListStrategy,
}

const fn rule(kind: &'static str, suffix: &'static str, strategy: ListStrategy) -> Rule {
    Rule {
        kind,
        suffix,
        strategy,
    }
}

use ListStrategy::{MergeKey, Primitive, Replace};

/// Fields of a container whose lists merge, keyed by the container list's name.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];
const CONTAINER_FIELDS: &[(&str, ListStrategy)] = &[
    ("ports", MergeKey("containerPort")),
    ("env", MergeKey("name")),
    ("envFrom", Replace),
    ("volumeMounts", MergeKey("mountPath")),
    ("volumeDevices", MergeKey("devicePath")),
];

/// Path-suffix rules from the Kubernetes core/v1, apps/v1 and batch/v1 types.
const RULES: &[Rule] = &[
    rule("", "containers", MergeKey("name")),
    rule("", "initContainers", MergeKey("name")),
    rule("", "ephemeralContainers", MergeKey("name")),
    rule("", "spec.volumes", MergeKey("name")),
    rule("", "spec.imagePullSecrets", MergeKey("name")),
    rule("", "spec.hostAliases", MergeKey("ip")),
    rule("", "spec.readinessGates", MergeKey("conditionType")),
    rule(
        "",
        "spec.topologySpreadConstraints",
        MergeKey("topologyKey"),
    ),
    rule("", "spec.resourceClaims", MergeKey("name")),
    rule("", "spec.schedulingGates", MergeKey("name")),
    rule("", "metadata.ownerReferences", MergeKey("uid")),
    rule("", "metadata.finalizers", Primitive),
    rule("", "status.conditions", MergeKey("type")),
    rule("", "status.podIPs", MergeKey("ip")),
    rule("", "status.hostIPs", MergeKey("ip")),
    rule("Service", "spec.ports", MergeKey("port")),
    rule("Node", "status.addresses", MergeKey("type")),
    rule("Node", "spec.podCIDRs", Primitive),
    rule("ServiceAccount", "secrets", MergeKey("name")),
    rule("Endpoints", "subsets", Replace),
];

/// The strategy for the list at `path` (field names, list indices omitted) in `kind`.
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    if let [.., list, field] = path {
        if CONTAINER_LISTS.contains(&list.as_str()) {
            if let Some((_, s)) = CONTAINER_FIELDS.iter().find(|(f, _)| f == field) {
                return *s;
            }
        }
    }
    let ends_with = |suffix: &str| {
        let parts: Vec<&str> = suffix.split('.').collect();
        path.len() >= parts.len()
            && path[path.len() - parts.len()..]
                .iter()
                .zip(&parts)
                .all(|(a, b)| a == b)
    };
    RULES
        .iter()
        .find(|r| (r.kind.is_empty() || r.kind == kind) && ends_with(r.suffix))
        .map_or(Replace, |r| r.strategy)
}

/// Applies a strategic merge patch to an object of `kind` and returns the result.
///
/// Directives: `$patch: replace|delete|merge` on a map, `{"$patch": "replace"}`
/// as a list element (replace the list), `$patch: delete` on a list element
/// (remove the element with that merge key), `$deleteFromPrimitiveList/<f>`,
/// `$retainKeys` (drop target keys not listed), and `$setElementOrder/<f>`
/// (accepted and ignored: merged lists keep target order, new elements appended).
/// `$patch: delete` on a nested map removes its key (at the top level it
/// leaves `{}`); `null` removes a key. No directive survives in the result.
pub fn strategic_merge_patch(kind: &str, target: &Value, patch: &Value) -> Result<Value> {
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return Err(PatchError::Strategic {
            path: "<root>".into(),
            reason: "the target and the patch must both be JSON objects".into(),
        });
    };
    let mut cx = Cx {
        kind,
        path: Vec::new(),
    };
    let merged = cx.map(t.clone(), p)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Whether a map key is a patch directive rather than data.
pub(super) fn is_directive(key: &str) -> bool {
    key == "$patch"
        || key == "$retainKeys"
        || key.starts_with("$deleteFromPrimitiveList/")
        || key.starts_with("$setElementOrder/")
}

struct Cx<'a> {
    kind: &'a str,
    path: Vec<String>,
}

impl Cx<'_> {
    fn path(&self) -> String {
        if self.path.is_empty() {
            "<root>".into()
        } else {
            self.path.join(".")
        }
    }

    fn error<T>(&self, reason: impl Into<String>) -> Result<T> {
        Err(PatchError::Strategic {
            path: self.path(),
            reason: reason.into(),
        })
    }

    /// Merges `patch` into `original`; `None` means the map is deleted.
    fn map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>> {
        match patch.get("$patch") {
            None => {}
            Some(Value::String(d)) if d == "merge" => {}
            Some(Value::String(d)) if d == "replace" => original = Map::new(),
            Some(Value::String(d)) if d == "delete" => return Ok(None),
            Some(d) => {
                return Err(PatchError::UnknownDirective {
                    path: self.path(),
                    directive: d.as_str().map_or_else(|| d.to_string(), str::to_string),
                })
            }
        }
        if let Some(keys) = patch.get("$retainKeys") {
            self.retain_keys(&mut original, patch, keys)?;
        }
        for (k, v) in patch {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                let Value::Array(gone) = v else {
                    return self.error(format!("{k} must be a list"));
                };
                if let Some(Value::Array(list)) = original.get_mut(field) {
                    list.retain(|x| !gone.contains(x));
                }
            }
        }
        for (k, v) in patch {
            if is_directive(k) {
                continue;
            }
            if v.is_null() {
                original.remove(k);
                continue;
            }
            self.path.push(k.clone());
            let old = original.remove(k);
            let merged = self.value(old, v)?;
            self.path.pop();
            if let Some(m) = merged {
                original.insert(k.clone(), m);
            }
        }
        Ok(Some(original))
    }

    /// Merges one field's patch value into its old value; `None` deletes the field.
    fn value(&mut self, old: Option<Value>, patch: &Value) -> Result<Option<Value>> {
        Ok(match (old, patch) {
            (Some(Value::Object(o)), Value::Object(p)) => self.map(o, p)?.map(Value::Object),
            (_, Value::Object(p)) => self.map(Map::new(), p)?.map(Value::Object),
            (Some(Value::Array(o)), Value::Array(p)) => Some(Value::Array(self.list(o, p)?)),
            (_, Value::Array(p)) => Some(Value::Array(self.list(Vec::new(), p)?)),
            (_, scalar) => Some(scalar.clone()),
        })
    }

    fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        keys: &Value,
    ) -> Result<()> {
        let keys: Vec<&str> = match keys.as_array() {
            Some(list) => list.iter().filter_map(Value::as_str).collect(),
            None => return self.error("$retainKeys must be a list of strings"),
        };
        if let Some(k) = patch
            .keys()
            .find(|k| !is_directive(k) && !keys.contains(&k.as_str()))
        {
            return self.error(format!("$retainKeys does not list the patched key {k:?}"));
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
        Ok(())
    }

    fn list(&mut self, original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>> {
        let strategy = list_strategy(self.kind, &self.path);
        let is_replace = |e: &Value| match e.get("$patch") {
            Some(Value::String(d)) => {
                d == "replace" && strategy_key(strategy).is_none_or(|k| e.get(k).is_none())
            }
            _ => false,
        };
        let (mut result, patch): (Vec<Value>, Vec<&Value>) = if patch.iter().any(is_replace) {
            (
                Vec::new(),
                patch.iter().filter(|e| !is_replace(e)).collect(),
            )
        } else {
            (original, patch.iter().collect())
        };
        match strategy {
            Replace => {
                result.clear();
                for e in patch {
                    result.extend(self.value(None, e)?);
                }
            }
            Primitive => {
                for e in patch {
                    if !result.contains(e) {
                        result.push(e.clone());
                    }
                }
            }
            MergeKey(key) => {
                for e in patch {
                    self.merge_element(&mut result, key, e)?;
                }
            }
        }
        Ok(result)
    }

    fn merge_element(&mut self, list: &mut Vec<Value>, key: &str, e: &Value) -> Result<()> {
        let Value::Object(p) = e else {
            return self.error(format!(
                "list merged by {key:?} has an element that is not an object: {e}"
            ));
        };
        let Some(id) = p.get(key) else {
            return Err(PatchError::MissingMergeKey {
                path: self.path(),
                key: key.to_string(),
                element: e.to_string(),
            });
        };
        let at = list.iter().position(|o| o.get(key) == Some(id));
        if p.get("$patch").and_then(Value::as_str) == Some("delete") {
            list.retain(|o| o.get(key) != Some(id));
            return Ok(());
        }
        match at {
            Some(i) => {
                let old = match list[i].take() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                match self.map(old, p)? {
                    Some(m) => list[i] = Value::Object(m),
                    None => {
                        list.remove(i);
                    }
                }
            }
            None => list.extend(self.map(Map::new(), p)?.map(Value::Object)),
        }
        Ok(())
    }
}

fn strategy_key(s: ListStrategy) -> Option<&'static str> {
    match s {
        MergeKey(k) => Some(k),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, target: Value, patch: Value) -> Value {
        strategic_merge_patch(kind, &target, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
    }

    #[test]
    fn strategies_by_path() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        let cases = [
            ("Pod", "spec.containers", MergeKey("name")),
            (
                "Deployment",
                "spec.template.spec.containers",
                MergeKey("name"),
            ),
            (
                "CronJob",
                "spec.jobTemplate.spec.template.spec.initContainers",
                MergeKey("name"),
            ),
            ("Pod", "spec.containers.ports", MergeKey("containerPort")),
            ("Pod", "spec.ephemeralContainers.env", MergeKey("name")),
            ("Pod", "spec.containers.envFrom", Replace),
            ("Pod", "spec.containers.args", Replace),
            (
                "StatefulSet",
                "spec.template.spec.containers.volumeMounts",
                MergeKey("mountPath"),
            ),
            (
                "Pod",
                "spec.containers.volumeDevices",
                MergeKey("devicePath"),
            ),
            ("Service", "spec.ports", MergeKey("port")),
            ("Pod", "spec.ports", Replace),
            ("Endpoints", "subsets", Replace),
            ("Endpoints", "subsets.ports", Replace),
            ("Pod", "metadata.finalizers", Primitive),
            ("Pod", "metadata.ownerReferences", MergeKey("uid")),
            ("Deployment", "status.conditions", MergeKey("type")),
            ("Pod", "spec.tolerations", Replace),
            ("Node", "status.addresses", MergeKey("type")),
            (
                "Pod",
                "spec.topologySpreadConstraints",
                MergeKey("topologyKey"),
            ),
            ("Pod", "spec.readinessGates", MergeKey("conditionType")),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_strategy(kind, &p(path)), want, "{kind} {path}");
        }
    }

    fn pod(containers: Value) -> Value {
        json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn merges_and_directives() {
        let two = pod(
            json!([{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}, {"name": "side", "image": "s:1"}]),
        );
        // (name, kind, target, patch, result)
        let cases = [
            (
                "image change keeps other containers",
                "Deployment",
                two.clone(),
                pod(json!([{"name": "app", "image": "a:2"}])),
                pod(
                    json!([{"name": "app", "image": "a:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}, {"name": "side", "image": "s:1"}]),
                ),
            ),
            (
                "delete a container",
                "Deployment",
                two.clone(),
                pod(json!([{"name": "side", "$patch": "delete"}])),
                pod(
                    json!([{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]),
                ),
            ),
            (
                "env merged by name",
                "Deployment",
                two.clone(),
                pod(
                    json!([{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}]}]),
                ),
                pod(
                    json!([{"name": "app", "image": "a:1", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}, {"name": "side", "image": "s:1"}]),
                ),
            ),
            (
                "new container appended, directives stripped",
                "Deployment",
                two.clone(),
                json!({"$setElementOrder/x": [], "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "new"}], "containers": [{"name": "new", "image": "n", "env": [{"name": "Z", "$patch": "delete"}]}]}}}}),
                pod(
                    json!([{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}, {"name": "side", "image": "s:1"}, {"name": "new", "image": "n", "env": []}]),
                ),
            ),
            (
                "replace a list",
                "Deployment",
                two.clone(),
                pod(json!([{"$patch": "replace"}, {"name": "only", "image": "o"}])),
                pod(json!([{"name": "only", "image": "o"}])),
            ),
            (
                "null deletes a key",
                "Pod",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                json!({"metadata": {"labels": {"b": "2", "c": "3"}}}),
            ),
            (
                "$patch replace on a map",
                "Pod",
                json!({"metadata": {"labels": {"a": "1"}, "name": "p"}}),
                json!({"metadata": {"labels": {"$patch": "replace", "b": "2"}}}),
                json!({"metadata": {"labels": {"b": "2"}, "name": "p"}}),
            ),
            (
                "$patch delete on a map",
                "Pod",
                json!({"spec": {"securityContext": {"runAsUser": 1}, "x": 1}}),
                json!({"spec": {"securityContext": {"$patch": "delete"}}}),
                json!({"spec": {"x": 1}}),
            ),
            (
                "$patch merge is the default",
                "Pod",
                json!({"a": {"b": 1}}),
                json!({"a": {"$patch": "merge", "c": 2}}),
                json!({"a": {"b": 1, "c": 2}}),
            ),
            (
                "lists without a rule are replaced",
                "Pod",
                json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
            ),
            (
                "container ports by containerPort",
                "Pod",
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]}}),
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]}]}}),
            ),
            (
                "service ports by port",
                "Service",
                json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            ),
            (
                "finalizers are a set",
                "Pod",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
            ),
            (
                "deleteFromPrimitiveList alone",
                "Pod",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "z"]}}),
                json!({"metadata": {"finalizers": ["a"]}}),
            ),
            (
                "retainKeys drops unlisted keys",
                "Deployment",
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "conditions by type",
                "Pod",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]}}),
            ),
            (
                "volumes and mounts",
                "Pod",
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}]}}),
                json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}], "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "$patch": "delete"}, {"mountPath": "/b", "name": "w"}]}]}}),
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}], "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/b", "name": "w"}]}]}}),
            ),
            (
                "ownerReferences by uid",
                "Pod",
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}),
            ),
            (
                "object replaces a scalar",
                "Pod",
                json!({"a": 1}),
                json!({"a": {"b": null, "c": 1}}),
                json!({"a": {"c": 1}}),
            ),
            (
                "endpoints subsets replaced",
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
            ),
            (
                "top-level delete leaves an empty object",
                "Pod",
                json!({"a": 1}),
                json!({"$patch": "delete"}),
                json!({}),
            ),
        ];
        for (name, kind, target, patch, want) in cases {
            assert_eq!(smp(kind, target, patch), want, "{name}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let cases = [
            (json!([1]), json!({}), "strategic merge patch at <root>: the target and the patch must both be JSON objects"),
            (json!({}), json!({"spec": {"containers": [{"image": "x"}]}}), "strategic merge patch at spec.containers: list element has no merge key \"name\": {\"image\":\"x\"}"),
            (json!({}), json!({"spec": {"containers": ["x"]}}), "at spec.containers: list merged by \"name\" has an element that is not an object: \"x\""),
            (json!({}), json!({"metadata": {"labels": {"$patch": "remove"}}}), "at metadata.labels: unknown $patch directive \"remove\""),
            (json!({}), json!({"spec": {"$retainKeys": "type"}}), "at spec: $retainKeys must be a list of strings"),
            (json!({}), json!({"spec": {"$retainKeys": ["type"], "other": 1}}), "at spec: $retainKeys does not list the patched key \"other\""),
            (json!({}), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}), "at metadata: $deleteFromPrimitiveList/finalizers must be a list"),
        ];
        for (target, patch, want) in cases {
            let err = strategic_merge_patch("Pod", &target, &patch)
                .expect_err(&patch.to_string())
                .to_string();
            assert!(err.contains(want), "{patch}: {err}");
        }
    }
}
