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
/// Follows Kubernetes' `strategicpatch.StrategicMergeMapPatch`
/// (k8s.io/apimachinery `pkg/util/strategicpatch/patch.go`, as kubectl 1.32
/// runs it), including its ordering and its quirks:
///
/// - a map with `$patch: replace` becomes the patch's map; `$patch: delete`
///   leaves `{}`; any other `$patch` on a map is an error. `null` removes a key.
/// - a field the target lacks (or holds with another JSON type) takes the patch
///   value as written, nulls dropped, maps carrying `$patch` left out; other
///   directives in it stay.
/// - lists merged by a key: `$patch: delete` elements remove their key,
///   `{"$patch": "replace"}` makes the rest of the patch the list; then each
///   element merges into the target element with its key, or is appended as
///   written. Lists of scalars with the merge strategy are a set union;
///   `$deleteFromPrimitiveList/<f>` removes members.
/// - order: the patch's elements come in the patch's order, the target's
///   other elements keep theirs, and the two interleave by the target's order
///   (an element the patch adds goes before the target elements still to
///   come): adding `side` to `[nginx]` gives `[side, nginx]`.
///   `$setElementOrder/<f>` gives the order of the listed elements instead.
/// - `$retainKeys` drops the target keys it does not list (and refuses a
///   patched key it does not list).
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
    Ok(Value::Object(cx.map(t.clone(), p.clone())?))
}

/// Whether a map key is a patch directive rather than data.
pub(super) fn is_directive(key: &str) -> bool {
    key == "$patch"
        || key == "$retainKeys"
        || key.starts_with("$deleteFromPrimitiveList/")
        || key.starts_with("$setElementOrder/")
}

const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// What the elements of one or more lists are (they must all be alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Map,
    Scalar,
}

/// Which JSON type a value has (numbers are one type, as Go decodes them).
fn json_type(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Drops null members everywhere in a value the target lacks.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(l) => l.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Removes every map carrying `$patch` (and the key or element holding it);
/// `None` when `v` itself is one.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key("$patch") => None,
        Value::Object(m) => Some(Value::Object(
            m.into_iter()
                .filter_map(|(k, x)| remove_directives(x).map(|x| (k, x)))
                .collect(),
        )),
        Value::Array(l) => Some(Value::Array(
            l.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
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

    /// Go's `mergeMap`.
    fn map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        if let Some(d) = patch.get("$patch") {
            return match d.as_str() {
                Some("replace") => {
                    patch.remove("$patch");
                    Ok(patch)
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(PatchError::UnknownDirective {
                    path: self.path(),
                    directive: d.as_str().map_or_else(|| d.to_string(), str::to_string),
                }),
            };
        }
        self.retain_keys(&mut original, &mut patch)?;
        self.set_element_orders(&mut original, &mut patch)?;
        for (k, v) in patch {
            let (key, delete_list) = match k.strip_prefix(DELETE_FROM) {
                Some(f) => (f.to_string(), true),
                None => (k, false),
            };
            if v.is_null() {
                original.remove(&key);
                continue;
            }
            let same_type = original
                .get(&key)
                .is_some_and(|o| json_type(o) == json_type(&v));
            if !same_type {
                if !delete_list {
                    let mut v = v;
                    discard_nulls(&mut v);
                    match remove_directives(v) {
                        Some(v) => original.insert(key, v),
                        None => original.remove(&key),
                    };
                }
                continue;
            }
            self.path.push(key.clone());
            let old = original.remove(&key).unwrap_or(Value::Null);
            let merged = match (old, v) {
                (Value::Object(o), Value::Object(p)) => Some(Value::Object(self.map(o, p)?)),
                (Value::Array(o), Value::Array(p)) => {
                    Some(Value::Array(self.slice_handler(o, p, delete_list)?))
                }
                (_, v) => remove_directives(v),
            };
            self.path.pop();
            if let Some(m) = merged {
                original.insert(key, m);
            }
        }
        Ok(original)
    }

    /// Go's `applyRetainKeysDirective`.
    fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<()> {
        let Some(keys) = patch.remove("$retainKeys") else {
            return Ok(());
        };
        let Value::Array(keys) = keys else {
            return self.error("$retainKeys must be a list of strings");
        };
        let listed = |k: &str| keys.iter().any(|x| x.as_str() == Some(k));
        if let Some(k) = patch.iter().find_map(|(k, v)| {
            let exempt = v.is_null() || k.starts_with(DELETE_FROM) || k.starts_with(SET_ORDER);
            (!exempt && !listed(k)).then_some(k)
        }) {
            return self.error(format!("$retainKeys does not list the patched key {k:?}"));
        }
        original.retain(|k, _| listed(k));
        Ok(())
    }

    /// Go's `mergePatchIntoOriginal`: each `$setElementOrder/<f>` with its list.
    fn set_element_orders(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<()> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let order = patch.remove(&directive).unwrap_or(Value::Null);
            let field = directive[SET_ORDER.len()..].to_string();
            let Value::Array(order) = order else {
                return self.error(format!("{directive} must be a list"));
            };
            let as_list = |v: Option<&Value>, what: &str| -> Result<Option<Vec<Value>>> {
                match v {
                    None => Ok(None),
                    Some(Value::Array(l)) => Ok(Some(l.clone())),
                    Some(other) => self.error(format!("{what} {field} is not a list: {other}")),
                }
            };
            let old = as_list(original.get(&field), "the target's")?;
            let new = as_list(patch.get(&field), "the patch's")?;
            self.path.push(field.clone());
            let strategy = list_strategy(self.kind, &self.path);
            let key = strategy_key(strategy);
            self.validate_order(new.as_deref().unwrap_or_default(), &order, key)?;
            let merged = match (&old, &new) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => p.clone(),
                (Some(o), Some(p)) => self.slice_handler(o.clone(), p.clone(), false)?,
                (None, None) => {
                    self.path.pop();
                    continue;
                }
            };
            let old = old.unwrap_or_default();
            let elem = self.element_type(&[&old, new.as_deref().unwrap_or_default()])?;
            let (items, server_only) = self.partition(merged, &order, key)?;
            let both = self.normalize(items, server_only, &order, &old, key, elem)?;
            self.path.pop();
            original.insert(field.clone(), Value::Array(both));
            patch.remove(&field);
        }
        Ok(())
    }

    /// Go's `validatePatchWithSetOrderList`: the patch's elements appear in the
    /// `$setElementOrder` list, in the same relative order.
    fn validate_order(&self, patch: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
        if patch.is_empty() || order.is_empty() {
            return Ok(());
        }
        let kept: Vec<&Value> = match key {
            Some(_) => {
                if let Some(e) = patch.iter().find(|e| !e.is_object()) {
                    return self.error(format!("list element is not an object: {e}"));
                }
                patch
                    .iter()
                    .filter(|e| e.get("$patch").and_then(Value::as_str) != Some("delete"))
                    .collect()
            }
            None => patch.iter().collect(),
        };
        let (mut i, mut j) = (0, 0);
        while i < kept.len() && j < order.len() {
            if kept[i].get("$patch").is_some() {
                i += 1;
                continue;
            }
            if self.same_key(kept[i], &order[j], key)? {
                i += 1;
            }
            j += 1;
        }
        if i < kept.len() && j >= order.len() {
            return self.error(format!(
                "the order of the patch's list does not match $setElementOrder/{}",
                self.path.last().map_or("", String::as_str)
            ));
        }
        Ok(())
    }

    /// Go's `mergeKeyValueEqual`.
    fn same_key(&self, a: &Value, b: &Value, key: Option<&str>) -> Result<bool> {
        let Some(key) = key else { return Ok(a == b) };
        let get = |v: &Value| -> Result<Value> {
            match v {
                Value::Object(m) => match m.get(key) {
                    Some(x) => Ok(x.clone()),
                    None => Err(self.missing_key(key, v)),
                },
                _ => Err(PatchError::Strategic {
                    path: self.path(),
                    reason: format!("list element is not an object: {v}"),
                }),
            }
        };
        Ok(get(a)? == get(b)?)
    }

    fn missing_key(&self, key: &str, element: &Value) -> PatchError {
        PatchError::MissingMergeKey {
            path: self.path(),
            key: key.to_string(),
            element: element.to_string(),
        }
    }

    /// Go's `mergeSliceHandler`: lists without the merge strategy are replaced
    /// by the patch's list as written.
    fn slice_handler(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        delete_list: bool,
    ) -> Result<Vec<Value>> {
        match list_strategy(self.kind, &self.path) {
            Replace => Ok(patch),
            MergeKey(key) => self.slice(original, patch, Some(key), delete_list),
            Primitive => self.slice(original, patch, None, delete_list),
        }
    }

    /// Go's `sliceElementType`: every element of every list has one type.
    fn element_type(&self, lists: &[&[Value]]) -> Result<Elem> {
        let mut seen: Option<u8> = None;
        for e in lists.iter().flat_map(|l| l.iter()) {
            let t = json_type(e);
            if t == 4 {
                return self.error("lists of lists cannot be merged");
            }
            if seen.is_some_and(|s| s != t) {
                return self.error(format!(
                    "the elements of the lists are not all of one type: {e}"
                ));
            }
            seen = Some(t);
        }
        match seen {
            None => self.error("no elements in any of the lists"),
            Some(5) => Ok(Elem::Map),
            Some(_) => Ok(Elem::Scalar),
        }
    }

    /// Go's `mergeSlice`.
    fn slice(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: Option<&'static str>,
        delete_list: bool,
    ) -> Result<Vec<Value>> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let elem = self.element_type(&[&original, &patch])?;
        let (original, patch, merged) = if elem == Elem::Scalar {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::new();
            for v in original.iter().chain(&patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            (original, patch, merged)
        } else {
            let Some(key) = key else {
                return self.error("lists of objects cannot be merged without a merge key");
            };
            let (original, patch) = self.special_elements(original, patch, key)?;
            let merged = self.merge_elements(original.clone(), &patch, key)?;
            (original, patch, merged)
        };
        let (items, server_only) = self.partition(merged, &patch, key)?;
        self.normalize(items, server_only, &patch, &original, key, elem)
    }

    /// Go's `mergeSliceWithSpecialElements`: `$patch: delete` elements remove
    /// their key from the target; `$patch: replace` makes the other elements the
    /// list. Returns the target and the patch without special elements.
    fn special_elements(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut plain = Vec::new();
        let mut replace = false;
        for e in patch {
            let Some(d) = e.get("$patch") else {
                plain.push(e);
                continue;
            };
            match d.as_str() {
                Some("delete") => {
                    let Some(id) = e.get(key) else {
                        return Err(self.missing_key(key, &e));
                    };
                    original.retain(|o| o.get(key) != Some(id));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return self.error("merging lists cannot yet be specified in the patch")
                }
                _ => {
                    return Err(PatchError::UnknownDirective {
                        path: self.path(),
                        directive: d.as_str().map_or_else(|| d.to_string(), str::to_string),
                    })
                }
            }
        }
        Ok(if replace {
            (plain, Vec::new())
        } else {
            (original, plain)
        })
    }

    /// Go's `mergeSliceWithoutSpecialElements`: each patch element merges into
    /// the target element with its key, or is appended as written.
    fn merge_elements(
        &mut self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
    ) -> Result<Vec<Value>> {
        for e in patch {
            let Some(id) = e.get(key) else {
                return Err(self.missing_key(key, e));
            };
            match original.iter().position(|o| o.get(key) == Some(id)) {
                Some(i) => {
                    let old = match original[i].take() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    let p = e.as_object().cloned().unwrap_or_default();
                    original[i] = Value::Object(self.map(old, p)?);
                }
                None => original.push(e.clone()),
            }
        }
        Ok(original)
    }

    /// Go's `partition{Maps,Primitives}ByPresentInList`: the elements of `list`
    /// `by` names, and the others, each in `list`'s order.
    fn partition(
        &self,
        list: Vec<Value>,
        by: &[Value],
        key: Option<&str>,
    ) -> Result<(Vec<Value>, Vec<Value>)> {
        let (mut named, mut others) = (Vec::new(), Vec::new());
        for v in list {
            let found = match key {
                None => by.contains(&v),
                Some(k) => {
                    let Some(id) = v.get(k) else {
                        return Err(self.missing_key(k, &v));
                    };
                    by.iter().any(|b| b.get(k) == Some(id))
                }
            };
            if found {
                named.push(v);
            } else {
                others.push(v);
            }
        }
        Ok((named, others))
    }

    /// Go's `normalizeElementOrder`: `items` sorted by `order`, `server_only`
    /// by `server_order`, then merged by `server_order`.
    fn normalize(
        &self,
        items: Vec<Value>,
        server_only: Vec<Value>,
        order: &[Value],
        server_order: &[Value],
        key: Option<&str>,
        elem: Elem,
    ) -> Result<Vec<Value>> {
        let key = if elem == Elem::Map { key } else { None };
        let items = self.sort_by(items, order, key, elem)?;
        let server_only = self.sort_by(server_only, server_order, key, elem)?;
        Ok(merge_sorted(server_only, items, server_order, key))
    }

    /// Go's `normalizeSliceOrder`: a stable sort by position in `order`; with
    /// objects, `$patch: delete` elements go last.
    fn sort_by(
        &self,
        list: Vec<Value>,
        order: &[Value],
        key: Option<&str>,
        elem: Elem,
    ) -> Result<Vec<Value>> {
        let (mut list, deleted): (Vec<Value>, Vec<Value>) = if elem == Elem::Map {
            if let Some(k) = key {
                if let Some(v) = list.iter().chain(order).find(|v| v.get(k).is_none()) {
                    return Err(self.missing_key(k, v));
                }
            }
            list.into_iter()
                .partition(|v| v.get("$patch").and_then(Value::as_str) != Some("delete"))
        } else {
            (list, Vec::new())
        };
        list.sort_by_key(|v| index(order, v, key).unwrap_or(usize::MAX));
        list.extend(deleted);
        Ok(list)
    }
}

/// Where `v` is in `list`: by merge key for objects, by value for scalars.
fn index(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => list.iter().position(|x| x.get(k) == v.get(k)),
        None => list.iter().position(|x| x == v),
    }
}

/// Go's `mergeSortedSlice`: interleaves the server-only elements (`left`) with
/// the patch's (`right`), both already sorted. A left element goes first only
/// when both are in `server_order` and it comes earlier there; so an element
/// the patch adds precedes the server elements still to come.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, key), index(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
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
                "a new container goes first, as written (directives in it stay)",
                "Deployment",
                two.clone(),
                json!({"$setElementOrder/x": [], "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "new"}], "containers": [{"name": "new", "image": "n", "env": [{"name": "Z", "$patch": "delete"}]}]}}}}),
                pod(
                    json!([{"name": "new", "image": "n", "env": [{"name": "Z", "$patch": "delete"}]}, {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}, {"name": "side", "image": "s:1"}]),
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
                "$patch delete on a map leaves it empty",
                "Pod",
                json!({"spec": {"securityContext": {"runAsUser": 1}, "x": 1}}),
                json!({"spec": {"securityContext": {"$patch": "delete"}}}),
                json!({"spec": {"securityContext": {}, "x": 1}}),
            ),
            (
                "$patch delete on a missing map adds nothing",
                "Pod",
                json!({"spec": {"x": 1}}),
                json!({"spec": {"securityContext": {"$patch": "delete"}}}),
                json!({"spec": {"x": 1}}),
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
                json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}, {"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/b", "name": "w"}]}]}}),
            ),
            (
                "ownerReferences by uid",
                "Pod",
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
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
            (json!({"spec": {"containers": [{"name": "a"}]}}), json!({"spec": {"containers": [{"image": "x"}]}}), "strategic merge patch at spec.containers: list element has no merge key \"name\": {\"image\":\"x\"}"),
            (json!({"spec": {"containers": [{"name": "a"}]}}), json!({"spec": {"containers": ["x"]}}), "at spec.containers: the elements of the lists are not all of one type: \"x\""),
            (json!({"metadata": {"labels": {}}}), json!({"metadata": {"labels": {"$patch": "remove"}}}), "at metadata.labels: unknown $patch directive \"remove\""),
            (json!({"metadata": {"labels": {}}}), json!({"metadata": {"labels": {"$patch": "merge"}}}), "at metadata.labels: unknown $patch directive \"merge\""),
            (json!({"spec": {"containers": [{"name": "a"}]}}), json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}), "at spec.containers: merging lists cannot yet be specified in the patch"),
            (json!({"spec": {}}), json!({"spec": {"$retainKeys": "type"}}), "at spec: $retainKeys must be a list of strings"),
            (json!({"spec": {}}), json!({"spec": {"$retainKeys": ["type"], "other": 1}}), "at spec: $retainKeys does not list the patched key \"other\""),
            (json!({"spec": {"containers": [{"name": "a"}]}}), json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a"}]}}), "at spec.containers: the order of the patch's list does not match $setElementOrder/containers"),
        ];
        for (target, patch, want) in cases {
            let err = strategic_merge_patch("Pod", &target, &patch)
                .expect_err(&patch.to_string())
                .to_string();
            assert!(err.contains(want), "{patch}: {err}");
        }
    }
}
