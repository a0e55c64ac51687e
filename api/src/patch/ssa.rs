//! Server-side apply and `metadata.managedFields`, as Kubernetes 1.33 keeps them.
//!
//! Kubernetes' field manager (k8s.io/apimachinery `pkg/util/managedfields`,
//! over sigs.k8s.io/structured-merge-diff v6) records, for every write, which
//! *manager* owns which fields of an object, as a set of field paths in the
//! `FieldsV1` format of `metadata.managedFields`. This module is that
//! bookkeeping over `serde_json::Value`, pure:
//!
//! - [`apply`]: `PATCH` with `Content-Type: application/apply-patch+yaml`
//!   (`kubectl apply --server-side`): merges the applied configuration into the
//!   live object, removes what the manager applied last time and no longer
//!   does (unless another manager owns it too), and refuses with [`Conflicts`]
//!   to change a value another manager owns, unless forced.
//! - [`record_update`]: every other write (create, update, patch, status and
//!   scale writes): the fields that changed move to the writer's `Update` entry.
//! - [`fields_v1`]: the `FieldsV1` set an apply of an object records.
//! - [`default_manager`]: the manager name the API server derives from the
//!   `User-Agent` when a request gives no `fieldManager`.
//!
//! The shape of an object comes from the OpenAPI schemas ferry serves
//! ([`crate::discovery`]), as Kubernetes builds its apply types from its own
//! OpenAPI: `properties` are struct fields, `additionalProperties` map keys;
//! a list is keyed by `x-kubernetes-list-map-keys` or, lacking that, by its
//! `x-kubernetes-patch-merge-key`, a set when it merges without a key, and
//! atomic otherwise. Kubernetes' `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` markers, which
//! k8s-openapi's schemas lack, are in this module's `LIST_TYPES`,
//! `ATOMIC_STRUCTS` and `ATOMIC_MAPS`; where a field has no schema, the
//! [`list_strategy`] table of strategic merge patch decides.
//!
//! What the caller does around these functions, as Kubernetes' handlers do:
//! refuse an apply without `fieldManager` (400, `fieldManager: Required value:
//! is required for apply patch`), one whose `apiVersion`/`kind` differ from the
//! resource's, and one carrying `metadata.managedFields` (400,
//! `metadata.managedFields must be nil`; [`apply`] ignores them); default,
//! validate and keep the server-set metadata of the object [`apply`] returns;
//! answer [`Conflicts`] with [`Conflicts::status`] (409).

use std::borrow::Cow::{self, Borrowed};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{json, Map, Value};

use super::apply::{last_applied, set_last_applied, LAST_APPLIED_ANNOTATION};
use super::strategic::{list_strategy, ListStrategy};
use crate::discovery;

/// The manager Kubernetes records when a write names none and has no
/// `User-Agent` either.
const UNKNOWN_MANAGER: &str = "unknown";
/// The `Update` manager that takes the fields of an object which had no
/// managed fields when it is first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// At most this many `Update` entries; older ones merge into [`ANCIENT_CHANGES`].
const MAX_UPDATE_MANAGERS: usize = 10;
/// The `Update` entry the oldest updaters are merged into, one per apiVersion.
const ANCIENT_CHANGES: &str = "ancient-changes";
/// The longest manager name Kubernetes accepts, in bytes.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

// ---------------------------------------------------------------------------
// Public API

/// The `FieldsV1` set of `obj` (of `kind`) as Kubernetes writes it in
/// `managedFields` for an apply of `obj`: `{"f:metadata":{"f:labels":{"f:app":{}}},
/// "f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}`.
///
/// `f:<field>` for fields and map keys, `k:{...}` for the items of lists keyed
/// by their map keys, `v:<json>` for the members of sets, `.` for a node that
/// is itself owned and has owned children. A scalar, an atomic list or map,
/// an empty map and a null are leaves; a list item, a map key (not a struct
/// field) and an empty or null struct are owned themselves. `apiVersion`,
/// `kind`, `metadata.{name,namespace,uid,resourceVersion,generation,
/// creationTimestamp,managedFields,selfLink}` and `status` are left out, as
/// Kubernetes strips them from every manager's set.
pub fn fields_v1(obj: &Value, kind: &str) -> Value {
    let cx = Cx::new(kind);
    let ty = Ty::root(&cx);
    strip_meta(&to_set(obj, &ty).without("status")).to_fields()
}

/// Server-side apply of `applied` by `manager` to `current` (`None`: the
/// object does not exist and the apply creates it) at time `now` (RFC 3339).
///
/// Returns the object after the apply, `metadata.managedFields` updated: the
/// manager's `Apply` entry holds exactly the fields of `applied` (see
/// [`fields_v1`]). As Kubernetes:
///
/// - maps merge recursively, lists keyed by their map keys merge item by item
///   (the applied items in the applied order, the live items others own kept
///   where they were), sets and atomic lists and maps are replaced;
/// - a field the manager applied last time and no longer applies is removed,
///   unless another manager owns it;
/// - a field the apply would change (or add) that another manager owns is a
///   conflict; `force` takes the field from that manager instead. A field
///   applied with the value it already has is not a conflict: the manager
///   co-owns it;
/// - `status` in `applied` is ignored (it belongs to the status subresource);
/// - the entry's `time` is `now` when the object changed; an apply that changes
///   nothing keeps the object (and the entry's time) as it was;
/// - an object without managed fields first gets a `before-first-apply`
///   `Update` entry owning everything it has;
/// - for the manager `kubectl` (kubectl's default for `--server-side`), a
///   conflict on a field whose value the object's last-applied-configuration
///   annotation still holds is not one (the client-side to server-side apply
///   upgrade), and that annotation, when present, is rewritten to `applied`.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    kind: &str,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Conflicts> {
    let manager = if manager.is_empty() {
        UNKNOWN_MANAGER
    } else {
        manager
    };
    let cx = Cx::new(kind);
    let ty = Ty::root(&cx);
    let api_version = api_version_of(Some(applied)).or_else(|| api_version_of(current));
    let api_version = api_version.unwrap_or_default();
    let mut config = without_managed_fields(applied);
    if let Value::Object(o) = &mut config {
        o.remove("status");
    }
    let (live, managers) = match current {
        Some(c) => (
            strip_nulls(without_managed_fields(c)),
            decode(c).unwrap_or_default(),
        ),
        None => (json!({}), Vec::new()),
    };
    let op = ApplyOp {
        ty: &ty,
        live: &live,
        config: &config,
        manager,
        api_version: &api_version,
        now,
        create: current.is_none(),
    };
    let (obj, managers) = match op.run(managers.clone(), force) {
        Ok(done) => done,
        Err(conflicts) if manager == "kubectl" => {
            // Kubernetes' lastAppliedManager: conflicts on fields whose value is
            // still the one client-side apply recorded are allowed.
            let Some(allowed) = current.and_then(|c| allowed_by_last_applied(c, &ty)) else {
                return Err(conflicts);
            };
            let rest: Vec<Conflict> = conflicts
                .0
                .iter()
                .filter(|c| !allowed.contains(&c.field))
                .cloned()
                .collect();
            if !rest.is_empty() {
                return Err(Conflicts(rest));
            }
            op.run(managers, true)?
        }
        Err(conflicts) => return Err(conflicts),
    };
    let mut obj = strip_nulls(obj);
    if manager == "kubectl" && has_last_applied(&obj) {
        set_last_applied(&mut obj, applied);
    }
    set_managed_fields(&mut obj, encode(managers));
    Ok(obj)
}

/// `new` with `metadata.managedFields` updated for a write that is not an
/// apply (create, update, any other patch) by `manager` at `now` (RFC 3339);
/// `old` is the object before (`None` for a create), `subresource` the
/// subresource written (`status`, `scale`), `None` for the object itself.
///
/// As Kubernetes: the fields that changed (on create, all the fields set) join
/// the manager's `Update` entry (one per manager, apiVersion and subresource)
/// and leave every other manager's set, which is how a later apply of them
/// conflicts; fields removed leave every set. `status` changes are not
/// recorded for the object itself, nor `spec` changes for `status`. The entry's
/// time becomes `now` when it gained fields. The managed fields of `new` are
/// kept when it carries some (a client sending back what it read); `[]` or
/// `[{}]` there clear them. An existing object without managed fields is not
/// tracked by updates (Kubernetes starts tracking at create or at the first
/// apply). At most 10 `Update` entries are kept: the oldest merge into
/// `ancient-changes`. Entries with an empty set are dropped; entries are
/// sorted as Kubernetes sorts them (`Apply` first, then by time, manager,
/// apiVersion, subresource).
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) -> Value {
    let manager = if manager.is_empty() {
        UNKNOWN_MANAGER
    } else {
        manager
    };
    let subresource = subresource.unwrap_or_default();
    let cx = Cx::new(kind);
    let ty = Ty::root(&cx);
    let api_version = api_version_of(Some(new))
        .or_else(|| api_version_of(old))
        .unwrap_or_default();
    let mut managers = if subresource.is_empty() {
        managers_of_request(old, new)
    } else {
        old.and_then(decode).unwrap_or_default()
    };
    let mut out = without_managed_fields(new);
    if managers.is_empty() && old.is_some() {
        return out;
    }
    let before = match old {
        Some(o) => strip_nulls(without_managed_fields(o)),
        None => zero_object(kind),
    };
    let reset = if subresource == "status" {
        "spec"
    } else {
        "status"
    };
    let writer = Writer {
        name: manager,
        api_version: &api_version,
        subresource,
        reset,
        now,
    };
    let after = strip_nulls(out.clone());
    if old.is_none() && managers.is_empty() && subresource.is_empty() {
        // A create: what it owns depends only on the object's shape.
        let changed = created_fields(kind, &before, &after, || {
            writer.changed(&before, &after, &ty)
        });
        writer.own(changed, &mut managers);
    } else {
        writer.record(&before, &after, &ty, &mut managers);
    }
    cap_update_managers(&mut managers);
    set_managed_fields(&mut out, encode(managers));
    out
}

/// The field manager Kubernetes uses for a write without `fieldManager`: the
/// `User-Agent` up to its first `/` (`kubectl/v1.33.0 (linux/amd64) ...` gives
/// `kubectl`), non-printable characters dropped, at most 128 bytes; `unknown`
/// when that leaves nothing. (kubectl names its writes itself: `kubectl-create`,
/// `kubectl-edit`, `kubectl-client-side-apply`, `kubectl` for `apply
/// --server-side`, ...)
pub fn default_manager(user_agent: Option<&str>) -> String {
    let prefix = user_agent.unwrap_or_default().split('/').next();
    let mut out = String::new();
    for c in prefix.unwrap_or_default().chars().filter(|c| is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        UNKNOWN_MANAGER.to_string()
    } else {
        out
    }
}

/// One field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// Its operation: `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion of its entry.
    pub api_version: String,
    /// The subresource it wrote through (`status`, `scale`), empty for the object.
    pub subresource: String,
    /// The field as Kubernetes prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`,
    /// `.metadata.finalizers[="x"]`.
    pub field: String,
}

impl Conflict {
    /// The manager as Kubernetes names it in conflict messages:
    /// `"kubectl-client-side-apply" using apps/v1` for an updater,
    /// `"kubectl"` for an applier, `"kubelet" with subresource "status" using v1`.
    pub fn manager_description(&self) -> String {
        let mut s = quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", quote(&self.subresource));
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    /// Kubernetes' identifier of the manager, the key its messages sort by.
    fn identifier(&self) -> String {
        identifier(
            &self.manager,
            self.operation == "Apply",
            &self.api_version,
            &self.subresource,
        )
    }
}

/// The conflicts that refused an apply, grouped by manager as Kubernetes
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// Kubernetes' message: `Apply failed with 1 conflict: conflict with
    /// "kubectl-client-side-apply" using apps/v1: .spec.replicas`, or for more,
    /// `Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n- ...`.
    pub fn message(&self) -> String {
        if let [c] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager_description(),
                c.field
            );
        }
        let mut by_manager: BTreeMap<String, Vec<&Conflict>> = BTreeMap::new();
        for c in &self.0 {
            by_manager.entry(c.identifier()).or_default().push(c);
        }
        let mut lines = Vec::new();
        for cs in by_manager.values() {
            lines.push(format!("conflicts with {}:", cs[0].manager_description()));
            lines.extend(cs.iter().map(|c| format!("- {}", c.field)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The 409 `Status` Kubernetes answers: reason `Conflict`, [`message`](Self::message),
    /// and a `details.causes` entry per conflict (`reason: FieldManagerConflict`,
    /// `message: conflict with "a"`, `field: .spec.replicas`).
    ///
    /// Kubernetes builds this error without the object, so its `details` name
    /// neither kind nor name; `_kind` and `_name` are accepted for symmetry
    /// with the other errors and left out likewise.
    pub fn status(&self, _kind: &str, _name: &str) -> Value {
        let causes: Vec<Value> = self
            .0
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager_description()),
                    "field": c.field,
                })
            })
            .collect();
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": "Conflict",
            "details": {"causes": causes},
            "code": 409,
        })
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}

// ---------------------------------------------------------------------------
// Field paths and sets (structured-merge-diff's fieldpath)

/// One step of a field path.
#[derive(Debug, Clone)]
enum Pe {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An item of a keyed list, by its key fields sorted by name: `k:{"name":"web"}`.
    Key(Vec<(String, Value)>),
    /// A member of a set: `v:"x"`.
    Value(Value),
    /// A list item by position (only where an item has no key): `i:0`.
    Index(usize),
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// The key of this step in `FieldsV1`.
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => {
                let m: Map<String, Value> = k.iter().cloned().collect();
                format!("k:{}", Value::Object(m))
            }
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Pe> {
        let (tag, rest) = s.split_once(':')?;
        match tag {
            "f" => Some(Pe::Field(rest.to_string())),
            "k" => {
                let Value::Object(m) = serde_json::from_str(rest).ok()? else {
                    return None;
                };
                let mut k: Vec<(String, Value)> = m.into_iter().collect();
                k.sort_by(|a, b| a.0.cmp(&b.0));
                Some(Pe::Key(k))
            }
            "v" => serde_json::from_str(rest).ok().map(Pe::Value),
            "i" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }
}

/// Kubernetes' order of path elements: fields, then keys, values, indices.
impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let c = x.0.cmp(&y.0).then_with(|| value_cmp(&x.1, &y.1));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Pe::Value(a), Pe::Value(b)) => value_cmp(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pe {}

/// As Kubernetes prints a path element in conflicts: `.spec`, `[name="web"]`,
/// `[containerPort=80,protocol="TCP"]`, `[="x"]`, `[0]`.
impl fmt::Display for Pe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pe::Field(n) => write!(f, ".{n}"),
            Pe::Key(k) => {
                let parts: Vec<String> = k
                    .iter()
                    .map(|(n, v)| format!("{n}={}", go_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Pe::Value(v) => write!(f, "[={}]", go_string(v)),
            Pe::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::to_string).collect()
}

/// structured-merge-diff's `value.ToString`.
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => quote(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", go_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// structured-merge-diff's order of values: numbers, strings, booleans,
/// lists, maps, null.
fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| value_cmp(p, q))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((k1, v1), (k2, v2))| k1.cmp(k2).then_with(|| value_cmp(v1, v2)))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A set of field paths: the members at this level and the sets below each
/// step. Children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    fn difference(&self, other: &Set) -> Set {
        Set {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(pe, c)| {
                    let d = match other.children.get(pe) {
                        Some(o) => c.difference(o),
                        None => c.clone(),
                    };
                    (!d.is_empty()).then(|| (pe.clone(), d))
                })
                .collect(),
        }
    }

    fn intersection(&self, other: &Set) -> Set {
        Set {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(pe, c)| {
                    let i = c.intersection(other.children.get(pe)?);
                    (!i.is_empty()).then(|| (pe.clone(), i))
                })
                .collect(),
        }
    }

    /// Without the top-level field `name` and everything below it.
    fn without(mut self, name: &str) -> Set {
        let pe = Pe::Field(name.to_string());
        self.members.remove(&pe);
        self.children.remove(&pe);
        self
    }

    /// Every path, in structured-merge-diff's order (members, then children).
    fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out: Vec<Vec<Pe>> = self.members.iter().map(|pe| vec![pe.clone()]).collect();
        for (pe, c) in &self.children {
            for mut p in c.paths() {
                p.insert(0, pe.clone());
                out.push(p);
            }
        }
        out
    }

    /// The `FieldsV1` JSON of the set.
    fn to_fields(&self) -> Value {
        let mut out = Map::new();
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                out.insert(pe.encode(), json!({}));
            }
        }
        for (pe, c) in &self.children {
            let mut inner = match c.to_fields() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if self.members.contains(pe) {
                inner.insert(".".into(), json!({}));
            }
            out.insert(pe.encode(), Value::Object(inner));
        }
        Value::Object(out)
    }

    /// Parses `FieldsV1` JSON; `None` when it is not.
    fn from_fields(v: &Value) -> Option<Set> {
        let mut out = Set::default();
        for (k, child) in v.as_object()? {
            if k == "." {
                continue;
            }
            let pe = Pe::decode(k)?;
            let inner = child.as_object()?;
            let sub = Set::from_fields(child)?;
            if inner.contains_key(".") || sub.is_empty() {
                out.members.insert(pe.clone());
            }
            if !sub.is_empty() {
                out.children.insert(pe, sub);
            }
        }
        Some(out)
    }
}

/// Kubernetes' stripMetaManager: fields no manager owns.
fn strip_meta(s: &Set) -> Set {
    let mut out = s.clone();
    for f in ["apiVersion", "kind", "metadata"] {
        out.members.remove(&Pe::Field(f.into()));
    }
    let meta = Pe::Field("metadata".into());
    if let Some(m) = out.children.get_mut(&meta) {
        for f in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            m.members.remove(&Pe::Field(f.into()));
        }
        if m.is_empty() {
            out.children.remove(&meta);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Types: what structured-merge-diff knows of each node from the schema

/// How the items of a list relate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListType {
    /// Replaced as a whole, owned as one field.
    Atomic,
    /// A set of scalars: items are `v:<json>`.
    Set,
    /// Items keyed by these fields (with the default of a key an item omits).
    Map(Cow<'static, [KeyField]>),
}

/// A key field of a keyed list and its default.
type KeyField = (&'static str, Option<&'static str>);

/// Kubernetes' `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` where
/// they differ from what the patch strategy implies (Kubernetes 1.33 Go type
/// markers, for the types reachable from ferry's kinds): (schema, property, type).
const LIST_TYPES: &[(&str, &str, ListType)] = &[
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        ListType::Map(Borrowed(&[
            ("containerPort", None),
            ("protocol", Some("TCP")),
        ])),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        ListType::Map(Borrowed(&[
            ("containerPort", None),
            ("protocol", Some("TCP")),
        ])),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        ListType::Map(Borrowed(&[("port", None), ("protocol", Some("TCP"))])),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        ListType::Map(Borrowed(&[
            ("topologyKey", None),
            ("whenUnsatisfiable", None),
        ])),
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        "claims",
        ListType::Map(Borrowed(&[("name", None)])),
    ),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", ListType::Atomic),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        ListType::Atomic,
    ),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        "succeeded",
        ListType::Set,
    ),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        "failed",
        ListType::Set,
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        "values",
        ListType::Set,
    ),
];

/// Structs Kubernetes marks `+structType=atomic`: replaced and owned whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
];

/// Map fields Kubernetes marks `+mapType=atomic`: (schema, property).
const ATOMIC_MAPS: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
    ("io.k8s.api.core.v1.ServiceSpec", "selector"),
    ("io.k8s.api.core.v1.ReplicationControllerSpec", "selector"),
];

type Schemas = &'static Map<String, Value>;

/// The kind and its schemas.
struct Cx<'k> {
    kind: &'k str,
    schema: Option<(Schemas, &'static str)>,
}

impl<'k> Cx<'k> {
    fn new(kind: &'k str) -> Self {
        Cx {
            kind,
            schema: discovery::kind_schema(kind),
        }
    }

    /// A schema node with its `$ref` (or `allOf: [{$ref}]`) followed: the
    /// node and its component name ("" when inline).
    fn resolve(&self, node: &'static Value) -> (Option<&'static Map<String, Value>>, &'static str) {
        let r = node
            .get("$ref")
            .or_else(|| node.get("allOf")?.get(0)?.get("$ref"))
            .and_then(Value::as_str);
        match (r, self.schema) {
            (Some(r), Some((schemas, _))) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                (schemas.get(name).and_then(Value::as_object), name)
            }
            (Some(_), None) => (None, ""),
            (None, _) => (node.as_object(), ""),
        }
    }
}

/// The type of one node: its schema (`None` where there is none) and what
/// apply needs of it.
#[derive(Clone)]
struct Ty<'c> {
    cx: &'c Cx<'c>,
    node: Option<&'static Map<String, Value>>,
    name: &'static str,
    atomic: bool,
    list: ListType,
    /// Field names from the root (list items omitted), for [`list_strategy`].
    path: Vec<String>,
}

impl<'c> Ty<'c> {
    fn root(cx: &'c Cx<'c>) -> Self {
        let (node, name) = match cx.schema {
            Some((schemas, name)) => (schemas.get(name).and_then(Value::as_object), name),
            None => (None, ""),
        };
        Ty {
            cx,
            node,
            name,
            atomic: false,
            list: ListType::Atomic,
            path: Vec::new(),
        }
    }

    /// The type of field (or map key) `key`, and whether it is a named struct field.
    fn field(&self, key: &str) -> (Ty<'c>, bool) {
        let mut path = self.path.clone();
        path.push(key.to_string());
        let Some(node) = self.node else {
            return (self.untyped(path), true);
        };
        if let Some(p) = node.get("properties").and_then(|p| p.get(key)) {
            let (cnode, cname) = self.cx.resolve(p);
            let ty = Ty {
                cx: self.cx,
                node: cnode,
                name: cname,
                atomic: ATOMIC_STRUCTS.contains(&cname)
                    || ATOMIC_MAPS
                        .iter()
                        .any(|(s, p)| *s == self.name && *p == key),
                list: list_type(self.name, key, p),
                path,
            };
            return (ty, true);
        }
        if let Some(ap) = node.get("additionalProperties").filter(|a| a.is_object()) {
            let (cnode, cname) = self.cx.resolve(ap);
            let ty = Ty {
                cx: self.cx,
                node: cnode,
                name: cname,
                atomic: ATOMIC_STRUCTS.contains(&cname),
                list: list_type("", "", ap),
                path,
            };
            return (ty, false);
        }
        // A field the schema does not know is typed by the path rules; the
        // keys of a free-form object are not struct fields.
        let named = node.contains_key("properties");
        (self.untyped(path), named)
    }

    /// The type of this list's items.
    fn item(&self) -> Ty<'c> {
        let Some(items) = self.node.and_then(|n| n.get("items")) else {
            return self.untyped(self.path.clone());
        };
        let (node, name) = self.cx.resolve(items);
        Ty {
            cx: self.cx,
            node,
            name,
            atomic: ATOMIC_STRUCTS.contains(&name),
            list: list_type("", "", items),
            path: self.path.clone(),
        }
    }

    fn untyped(&self, path: Vec<String>) -> Ty<'c> {
        let list = match list_strategy(self.cx.kind, &path) {
            ListStrategy::MergeKey(k) => ListType::Map(vec![(k, None)].into()),
            ListStrategy::Primitive => ListType::Set,
            ListStrategy::Replace => ListType::Atomic,
        };
        Ty {
            cx: self.cx,
            node: None,
            name: "",
            atomic: false,
            list,
            path,
        }
    }
}

/// How the list at `property` of schema `parent` (its schema node `prop`)
/// relates its items, as Kubernetes derives it: its list-type markers, else
/// its patch strategy (merge with a key: keyed; merge without: a set), else atomic.
fn list_type(parent: &str, property: &str, prop: &'static Value) -> ListType {
    if let Some((_, _, t)) = LIST_TYPES
        .iter()
        .find(|(s, p, _)| *s == parent && *p == property)
    {
        return t.clone();
    }
    match prop.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("atomic") => return ListType::Atomic,
        Some("set") => return ListType::Set,
        Some("map") => {
            let keys: Vec<KeyField> = prop
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|k| (k, None))
                        .collect()
                })
                .unwrap_or_default();
            return ListType::Map(keys.into());
        }
        _ => {}
    }
    let merge = prop
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(',').any(|s| s == "merge"));
    match prop
        .get("x-kubernetes-patch-merge-key")
        .and_then(Value::as_str)
    {
        Some(key) if merge => ListType::Map(vec![(key, None)].into()),
        None if merge => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// The path element of item `index` of a list of `list` type: its key fields
/// (defaulted where the item omits them), its value for a set, its position
/// when it has neither.
fn item_pe(item: &Value, list: &ListType, index: usize) -> Pe {
    match (list, item) {
        (ListType::Map(keys), Value::Object(m)) => {
            let mut k: Vec<(String, Value)> = keys
                .iter()
                .filter_map(|(name, default)| {
                    let v = m
                        .get(*name)
                        .cloned()
                        .or_else(|| default.map(|d| Value::String(d.into())))?;
                    Some((name.to_string(), v))
                })
                .collect();
            if k.is_empty() {
                return Pe::Index(index);
            }
            k.sort_by(|a, b| a.0.cmp(&b.0));
            Pe::Key(k)
        }
        (ListType::Set, Value::Array(_) | Value::Object(_) | Value::Null) => Pe::Index(index),
        (ListType::Set, v) => Pe::Value(v.clone()),
        _ => Pe::Index(index),
    }
}

fn item_pes(items: &[Value], list: &ListType) -> Vec<Pe> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item_pe(v, list, i))
        .collect()
}

// ---------------------------------------------------------------------------
// Typed operations: field set, comparison, merge, removal

/// The fields set in `v`: structured-merge-diff's `ToFieldSet`.
fn to_set(v: &Value, ty: &Ty) -> Set {
    let mut out = Set::default();
    walk_set(v, ty, &mut Vec::new(), &mut out);
    out
}

fn walk_set(v: &Value, ty: &Ty, path: &mut Vec<Pe>, out: &mut Set) {
    match v {
        Value::Object(m) if !ty.atomic => {
            for (k, c) in m {
                let (cty, named) = ty.field(k);
                path.push(Pe::Field(k.clone()));
                walk_set(c, &cty, path, out);
                let empty = c.is_null() || c.as_object().is_some_and(Map::is_empty);
                if empty || !named {
                    out.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) if ty.list != ListType::Atomic => {
            let ity = ty.item();
            let pes = item_pes(items, &ty.list);
            for (item, pe) in items.iter().zip(&pes) {
                // Items with the same key are owned as one, not field by field.
                let duplicated = pes.iter().filter(|p| *p == pe).count() > 1;
                path.push(pe.clone());
                if !duplicated {
                    walk_set(item, &ity, path, out);
                }
                out.insert(path);
                path.pop();
            }
        }
        _ => out.insert(path),
    }
}

/// What differs from one object to another.
#[derive(Debug, Default)]
struct Comparison {
    added: Set,
    modified: Set,
    removed: Set,
}

/// structured-merge-diff's `Compare`.
fn compare(l: &Value, r: &Value, ty: &Ty) -> Comparison {
    let mut out = Comparison::default();
    walk_cmp(Some(l), Some(r), ty, &mut Vec::new(), &mut out);
    out
}

#[derive(PartialEq)]
enum Shape {
    Map,
    List,
    Leaf,
}

/// The shape two values share; a leaf when they differ.
fn shape(l: Option<&Value>, r: Option<&Value>) -> Shape {
    let of = |v: Option<&Value>| match v {
        Some(Value::Object(_)) => Some(Shape::Map),
        Some(Value::Array(_)) => Some(Shape::List),
        Some(Value::Null) | None => None,
        Some(_) => Some(Shape::Leaf),
    };
    match (of(l), of(r)) {
        (Some(a), Some(b)) if a != b => Shape::Leaf,
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => Shape::Leaf,
    }
}

fn walk_cmp(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: &Ty,
    path: &mut Vec<Pe>,
    out: &mut Comparison,
) {
    let leaf = |out: &mut Comparison, path: &[Pe]| match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if a != b => out.modified.insert(path),
        _ => {}
    };
    match shape(l, r) {
        Shape::Map if !ty.atomic => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                return leaf(out, path);
            }
            let keys = lm
                .into_iter()
                .flat_map(|m| m.keys())
                .chain(rm.into_iter().flat_map(|m| m.keys()))
                .collect::<BTreeSet<_>>();
            for k in keys {
                let (cty, _) = ty.field(k);
                path.push(Pe::Field(k.clone()));
                walk_cmp(
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    &cty,
                    path,
                    out,
                );
                path.pop();
            }
        }
        Shape::List if ty.list != ListType::Atomic => {
            let ll = l.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let rl = r.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            if ll.is_empty() && rl.is_empty() {
                return leaf(out, path);
            }
            let ity = ty.item();
            let (lp, rp) = (item_pes(ll, &ty.list), item_pes(rl, &ty.list));
            let mut order: Vec<&Pe> = Vec::new();
            for pe in lp.iter().chain(&rp) {
                if !order.contains(&pe) {
                    order.push(pe);
                }
            }
            for pe in order {
                let lv: Vec<&Value> = ll
                    .iter()
                    .zip(&lp)
                    .filter(|(_, p)| *p == pe)
                    .map(|(v, _)| v)
                    .collect();
                let rv: Vec<&Value> = rl
                    .iter()
                    .zip(&rp)
                    .filter(|(_, p)| *p == pe)
                    .map(|(v, _)| v)
                    .collect();
                path.push(pe.clone());
                match (lv.len(), rv.len()) {
                    (a, b) if a <= 1 && b <= 1 => {
                        walk_cmp(lv.first().copied(), rv.first().copied(), &ity, path, out)
                    }
                    (a, b) if a >= 2 && b >= 2 => {
                        if lv != rv {
                            out.modified.insert(path);
                        }
                    }
                    (a, _) if a >= 2 => {
                        if let Some(r0) = rv.first() {
                            walk_cmp(None, Some(r0), &ity, path, out);
                        }
                        out.removed.insert(path);
                    }
                    _ => {
                        if let Some(l0) = lv.first() {
                            walk_cmp(Some(l0), None, &ity, path, out);
                        }
                        out.added.insert(path);
                    }
                }
                path.pop();
            }
        }
        _ => return leaf(out, path),
    }
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

/// structured-merge-diff's `Merge`: `r` wins, maps merge by key, keyed lists
/// and sets by item.
fn merge(l: Option<&Value>, r: Option<&Value>, ty: &Ty) -> Option<Value> {
    match (l, r) {
        (None, None) => None,
        (Some(l), None) => Some(l.clone()),
        (None, Some(r)) => Some(r.clone()),
        (Some(l), Some(r)) => Some(merge_values(l, r, ty)),
    }
}

fn merge_values(l: &Value, r: &Value, ty: &Ty) -> Value {
    let granular_list = ty.list != ListType::Atomic;
    match (l, r) {
        (Value::Object(lm), Value::Object(rm)) if !ty.atomic => {
            if lm.is_empty() && rm.is_empty() {
                return r.clone();
            }
            let mut out = Map::new();
            for (k, lv) in lm {
                let (cty, _) = ty.field(k);
                if let Some(v) = merge(Some(lv), rm.get(k), &cty) {
                    out.insert(k.clone(), v);
                }
            }
            for (k, rv) in rm {
                if !lm.contains_key(k) {
                    out.insert(k.clone(), rv.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Array(la), Value::Array(ra)) if granular_list => {
            if la.is_empty() && ra.is_empty() {
                return r.clone();
            }
            Value::Array(merge_list(la, ra, ty))
        }
        // A null applied over a granular map or list leaves it.
        (Value::Object(lm), Value::Null) if !ty.atomic && !lm.is_empty() => l.clone(),
        (Value::Array(la), Value::Null) if granular_list && !la.is_empty() => l.clone(),
        _ => r.clone(),
    }
}

/// Merges two keyed lists (or sets) as Kubernetes orders them: the applied
/// items in the applied order; a live item the applied list lacks stays
/// where it was, relative to the shared items.
fn merge_list(la: &[Value], ra: &[Value], ty: &Ty) -> Vec<Value> {
    let ity = ty.item();
    let (lp, rp) = (item_pes(la, &ty.list), item_pes(ra, &ty.list));
    let l_of = |pe: &Pe| lp.iter().position(|p| p == pe).map(|i| &la[i]);
    let r_of = |pe: &Pe| rp.iter().position(|p| p == pe).map(|i| &ra[i]);
    let in_r = |pe: &Pe| rp.contains(pe);
    let mut shared = rp.iter().filter(|pe| lp.contains(pe));
    let mut next_shared = shared.next();
    let mut merged: Vec<&Pe> = Vec::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < lp.len() || ri < rp.len() {
        if li < lp.len() && ri < rp.len() {
            let pe = &lp[li];
            if *pe == rp[ri] {
                merged.push(pe);
                out.extend(merge(l_of(pe), r_of(pe), &ity));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_r(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lp.len() {
            let pe = &lp[li];
            if !in_r(pe) {
                out.extend(merge(Some(&la[li]), None, &ity));
                li += 1;
                continue;
            } else if merged.contains(&pe) {
                li += 1;
            }
        }
        if ri < rp.len() {
            let pe = &rp[ri];
            merged.push(pe);
            out.extend(merge(l_of(pe), r_of(pe), &ity));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// `v` without the fields of `set` (a member goes with everything below
/// it): structured-merge-diff's `RemoveItems`. A map or list left empty
/// becomes null, as there.
fn remove(v: &Value, set: &Set, ty: &Ty) -> Value {
    match v {
        Value::Object(m) if !ty.atomic => {
            let mut out = Map::new();
            for (k, c) in m {
                let pe = Pe::Field(k.clone());
                if set.members.contains(&pe) {
                    continue;
                }
                let c = match set.children.get(&pe) {
                    Some(sub) => remove(c, sub, &ty.field(k).0),
                    None => c.clone(),
                };
                out.insert(k.clone(), c);
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) if ty.list != ListType::Atomic => {
            let ity = ty.item();
            let mut out = Vec::new();
            for (item, pe) in items.iter().zip(item_pes(items, &ty.list)) {
                if set.members.contains(&pe) {
                    continue;
                }
                out.push(match set.children.get(&pe) {
                    Some(sub) => remove(item, sub, &ity),
                    None => item.clone(),
                });
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Array(out)
            }
        }
        _ => v.clone(),
    }
}

/// The set with every struct field that has owned fields below it made a
/// member too: structured-merge-diff's `EnsureNamedFieldsAreMembers`.
fn ensure_named(s: &Set, ty: &Ty) -> Set {
    let mut out = Set {
        members: s.members.clone(),
        children: BTreeMap::new(),
    };
    for (pe, c) in &s.children {
        let cty = match pe {
            Pe::Field(f) => {
                let (cty, named) = ty.field(f);
                if named {
                    out.members.insert(pe.clone());
                }
                cty
            }
            _ => ty.item(),
        };
        out.children.insert(pe.clone(), ensure_named(c, &cty));
    }
    out
}

// ---------------------------------------------------------------------------
// Managers

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Manager {
    name: String,
    apply: bool,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: Set,
}

impl Manager {
    /// Whether this is the entry of that manager: appliers are one entry
    /// whatever their apiVersion, updaters one per apiVersion.
    fn is(&self, name: &str, apply: bool, api_version: &str, subresource: &str) -> bool {
        self.name == name
            && self.apply == apply
            && self.subresource == subresource
            && (apply || self.api_version == api_version)
    }

    fn identifier(&self) -> String {
        identifier(&self.name, self.apply, &self.api_version, &self.subresource)
    }

    fn time_seconds(&self) -> i64 {
        self.time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second())
    }
}

/// Kubernetes' manager identifier: the entry as JSON without its fields,
/// time and (for appliers) apiVersion.
fn identifier(name: &str, apply: bool, api_version: &str, subresource: &str) -> String {
    let mut s = format!(
        "{{\"manager\":{},\"operation\":\"{}\"",
        quote(name),
        if apply { "Apply" } else { "Update" }
    );
    if !apply && !api_version.is_empty() {
        s.push_str(&format!(",\"apiVersion\":{}", quote(api_version)));
    }
    if !subresource.is_empty() {
        s.push_str(&format!(",\"subresource\":{}", quote(subresource)));
    }
    s.push('}');
    s
}

/// The managers of an object's `metadata.managedFields`; `None` when an
/// entry is not valid (operation `Apply` or `Update`, an apiVersion,
/// `fieldsType: FieldsV1`, a `FieldsV1` set).
fn decode(obj: &Value) -> Option<Vec<Manager>> {
    let list = match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(_) => return None,
    };
    let mut out: Vec<Manager> = Vec::new();
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        let apply = match s("operation") {
            "Apply" => true,
            "Update" => false,
            _ => return None,
        };
        if s("apiVersion").is_empty() || s("fieldsType") != "FieldsV1" {
            return None;
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(f) => Set::from_fields(f)?,
        };
        let m = Manager {
            name: s("manager").to_string(),
            apply,
            api_version: s("apiVersion").to_string(),
            subresource: s("subresource").to_string(),
            time: e.get("time").and_then(Value::as_str).map(str::to_string),
            set,
        };
        out.retain(|o| o.identifier() != m.identifier());
        out.push(m);
    }
    Some(out)
}

/// The managed fields a non-apply write to the object itself starts from:
/// those the request carries when it carries valid ones, none when it
/// resets them (`[]`, `[{}]`), else the stored object's.
fn managers_of_request(old: Option<&Value>, new: &Value) -> Vec<Manager> {
    let stored = || old.and_then(decode).unwrap_or_default();
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(l)) if l.is_empty() => Vec::new(),
        Some(Value::Array(l)) if l.len() == 1 && l[0] == json!({}) => Vec::new(),
        Some(_) => match decode(new) {
            Some(m) if !m.is_empty() => m,
            _ => stored(),
        },
        None => stored(),
    }
}

/// The `managedFields` list, sorted as Kubernetes sorts it; `None` for none.
fn encode(mut managers: Vec<Manager>) -> Option<Value> {
    if managers.is_empty() {
        return None;
    }
    managers.sort_by(|p, q| {
        (!p.apply)
            .cmp(&!q.apply)
            .then_with(|| p.time_seconds().cmp(&q.time_seconds()))
            .then_with(|| p.name.cmp(&q.name))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let entries = managers
        .iter()
        .map(|m| {
            let mut e = json!({
                "manager": m.name,
                "operation": if m.apply { "Apply" } else { "Update" },
                "apiVersion": m.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": m.set.to_fields(),
            });
            if let Some(t) = &m.time {
                e["time"] = json!(t);
            }
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    Some(Value::Array(entries))
}

/// Kubernetes' capManagersManager: beyond [`MAX_UPDATE_MANAGERS`] `Update`
/// entries, the oldest are merged into `ancient-changes` (one per apiVersion).
fn cap_update_managers(managers: &mut Vec<Manager>) {
    if managers.iter().filter(|m| !m.apply).count() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut updaters: Vec<(i64, String)> = managers
        .iter()
        .filter(|m| !m.apply)
        .map(|m| (m.time_seconds(), m.identifier()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort();
    let mut length = updaters.len();
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    for (_, id) in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(pos) = managers.iter().position(|m| m.identifier() == id) else {
            continue;
        };
        let version = managers[pos].api_version.clone();
        let Some(first) = first_of_version.get(&version) else {
            first_of_version.insert(version, id);
            continue;
        };
        let bucket = identifier(ANCIENT_CHANGES, false, &version, "");
        if !managers.iter().any(|m| m.identifier() == bucket) {
            if let Some(f) = managers.iter_mut().find(|m| m.identifier() == *first) {
                f.name = ANCIENT_CHANGES.into();
                f.subresource.clear();
            }
        }
        let Some(pos) = managers.iter().position(|m| m.identifier() == id) else {
            continue;
        };
        let gone = managers.remove(pos);
        if let Some(b) = managers.iter_mut().find(|m| m.identifier() == bucket) {
            b.set = gone.set.union(&b.set);
            b.time = gone.time;
        }
        length -= 1;
    }
}

// ---------------------------------------------------------------------------
// Writes

/// A non-apply write: Kubernetes' managedFieldsUpdater over the
/// structured-merge-diff `Update`.
struct Writer<'a> {
    name: &'a str,
    api_version: &'a str,
    subresource: &'a str,
    /// The top-level field the write cannot change (`status` for the object,
    /// `spec` for its status).
    reset: &'a str,
    now: &'a str,
}

impl Writer<'_> {
    /// Moves the fields that changed from `old` to `new` to this writer.
    fn record(&self, old: &Value, new: &Value, ty: &Ty, managers: &mut Vec<Manager>) {
        let cmp = compare(&normalize(old, ty), &normalize(new, ty), ty);
        let changed = cmp.modified.union(&cmp.added).without(self.reset);
        let removed = cmp.removed.without(self.reset);
        for m in managers.iter_mut() {
            m.set = m.set.difference(&changed).difference(&removed);
        }
        managers.retain(|m| !m.set.is_empty());
        self.own(strip_meta(&changed), managers);
    }

    /// What [`Writer::record`] gives this writer when no one owned anything:
    /// the fields that changed, without system metadata.
    fn changed(&self, old: &Value, new: &Value, ty: &Ty) -> Set {
        let cmp = compare(&normalize(old, ty), &normalize(new, ty), ty);
        strip_meta(&cmp.modified.union(&cmp.added).without(self.reset))
    }

    /// Adds `mine` to this writer's entry (made when it has none).
    fn own(&self, mine: Set, managers: &mut Vec<Manager>) {
        if mine.is_empty() {
            return;
        }
        let (name, api_version, subresource) = (self.name, self.api_version, self.subresource);
        match managers
            .iter_mut()
            .find(|m| m.is(name, false, api_version, subresource))
        {
            Some(m) => {
                m.set = mine.union(&m.set);
                m.time = Some(self.now.to_string());
            }
            None => managers.push(Manager {
                name: name.to_string(),
                apply: false,
                api_version: api_version.to_string(),
                subresource: subresource.to_string(),
                time: Some(self.now.to_string()),
                set: mine,
            }),
        }
    }
}

/// The fields a create of `new` (nulls stripped) owns, compared with the
/// kind's zero object `zero`: `compute`'s answer, remembered by the object's
/// shape. The comparison reads no value of a map member the zero object lacks
/// (such a member is added whatever it holds), so those values are left out
/// of the shape and creates of one shape (a workload's replicas, objects
/// made by one client) compare once; list items, which name their own paths,
/// stay in it whole.
fn created_fields(kind: &str, zero: &Value, new: &Value, compute: impl FnOnce() -> Set) -> Set {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    /// Shapes remembered; all are forgotten when this many are.
    const REMEMBERED: usize = 1024;
    /// The fields of each (kind, shape) seen.
    type Seen = HashMap<(String, Vec<u8>), Set>;
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let mut key = Vec::with_capacity(256);
    shape_key(new, Some(zero), &mut key);
    let key = (kind.to_string(), key);
    let seen = SEEN.get_or_init(Default::default);
    if let Some(set) = seen.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return set.clone();
    }
    let set = compute();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= REMEMBERED {
        seen.clear();
    }
    seen.insert(key, set.clone());
    set
}

/// Writes the shape of `v` to `out`: `v` as JSON, but a map member's scalar
/// as its type alone unless the zero object has a scalar there (null aside:
/// every value differs from null). Null members are left out (the comparison
/// strips them); arrays are written whole.
fn shape_key(v: &Value, zero: Option<&Value>, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            out.push(b'{');
            for (k, c) in m {
                if c.is_null() {
                    continue;
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                let z = zero.and_then(|z| z.get(k));
                match c {
                    Value::Object(_) => shape_key(c, z, out),
                    Value::Array(_) => {
                        let _ = serde_json::to_writer(&mut *out, c);
                    }
                    // Equal to the zero value or not: that it compares.
                    _ if z.is_some_and(|z| !(z.is_null() || z.is_object() || z.is_array())) => {
                        let _ = serde_json::to_writer(&mut *out, c);
                    }
                    Value::Bool(_) => out.push(b'b'),
                    Value::Number(_) => out.push(b'n'),
                    _ => out.push(b's'),
                }
                out.push(b',');
            }
            out.push(b'}');
        }
        _ => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

/// One apply: Kubernetes' skipNonApplied, managedFieldsUpdater and
/// stripMeta managers over the structured-merge-diff `Apply`.
struct ApplyOp<'a, 'c> {
    ty: &'a Ty<'c>,
    /// The live object, without managed fields (`{}` for a create).
    live: &'a Value,
    /// The applied configuration, without managed fields and status.
    config: &'a Value,
    manager: &'a str,
    api_version: &'a str,
    now: &'a str,
    create: bool,
}

impl ApplyOp<'_, '_> {
    fn run(
        &self,
        mut managers: Vec<Manager>,
        force: bool,
    ) -> Result<(Value, Vec<Manager>), Conflicts> {
        let ty = self.ty;
        if managers.is_empty() && !self.create {
            let writer = Writer {
                name: BEFORE_FIRST_APPLY,
                api_version: self.api_version,
                subresource: "",
                reset: "status",
                now: self.now,
            };
            writer.record(&zero_object(ty.cx.kind), self.live, ty, &mut managers);
        }
        let merged = merge_values(self.live, self.config, ty);
        let me = managers
            .iter()
            .position(|m| m.is(self.manager, true, "", ""));
        let last = me.map(|i| managers[i].set.clone()).unwrap_or_default();
        let set = to_set(self.config, ty).without("status");
        let me = match me {
            Some(i) => {
                managers[i].set = set;
                managers[i].api_version = self.api_version.to_string();
                i
            }
            None => {
                managers.push(Manager {
                    name: self.manager.to_string(),
                    apply: true,
                    api_version: self.api_version.to_string(),
                    subresource: String::new(),
                    time: None,
                    set,
                });
                managers.len() - 1
            }
        };
        let mut new = prune(&merged, &managers, &last, ty);
        if !new.is_object() {
            new = json!({});
        }
        let cmp = compare(&normalize(self.live, ty), &normalize(&new, ty), ty);
        let changed = cmp.modified.union(&cmp.added).without("status");
        let removed = cmp.removed.without("status");
        let conflicts: Vec<(usize, Set)> = managers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(i, m)| (i, m.set.intersection(&changed)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if !force && !conflicts.is_empty() {
            return Err(conflicts_of(&managers, conflicts));
        }
        for (i, c) in conflicts {
            managers[i].set = managers[i].set.difference(&c);
        }
        for (i, m) in managers.iter_mut().enumerate() {
            if i != me {
                m.set = m.set.difference(&removed);
            }
        }
        managers[me].set = strip_meta(&managers[me].set);
        let changed = new != *self.live;
        if changed {
            managers[me].time = Some(self.now.to_string());
        }
        managers.retain(|m| !m.set.is_empty());
        Ok((if changed { new } else { self.live.clone() }, managers))
    }
}

/// structured-merge-diff's prune: removes from `merged` what the applier
/// owned (`last`) and no longer does, unless another manager owns it.
fn prune(merged: &Value, managers: &[Manager], last: &Set, ty: &Ty) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let last = ensure_named(last, ty);
    let pruned = remove(merged, &last, ty);
    // Add back what someone (the applier included) owns.
    let managed = managers
        .iter()
        .fold(Set::default(), |acc, m| acc.union(&m.set));
    let merged_set = ensure_named(&to_set(merged, ty), ty);
    let keep = ensure_named(&to_set(&pruned, ty), ty).union(&ensure_named(&managed, ty));
    let pruned = remove(merged, &merged_set.difference(&keep), ty);
    // Add back what no one owns and the applier did not own (dangling).
    let pruned_set = ensure_named(&to_set(&pruned, ty), ty);
    remove(
        merged,
        &merged_set.difference(&pruned_set).intersection(&last),
        ty,
    )
}

fn conflicts_of(managers: &[Manager], sets: Vec<(usize, Set)>) -> Conflicts {
    let mut sets: Vec<(String, usize, Set)> = sets
        .into_iter()
        .map(|(i, s)| (managers[i].identifier(), i, s))
        .collect();
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (_, i, s) in sets {
        let m = &managers[i];
        for p in s.paths() {
            out.push(Conflict {
                manager: m.name.clone(),
                operation: if m.apply { "Apply" } else { "Update" }.to_string(),
                api_version: m.api_version.clone(),
                subresource: m.subresource.clone(),
                field: path_string(&p),
            });
        }
    }
    Conflicts(out)
}

/// The fields (as printed paths) whose live value is still the one the
/// object's last-applied-configuration holds: Kubernetes' lastAppliedManager.
fn allowed_by_last_applied(current: &Value, ty: &Ty) -> Option<BTreeSet<String>> {
    let last = last_applied(current)?;
    if api_version_of(Some(&last)) != api_version_of(Some(current)) {
        return None;
    }
    let live = normalize(&strip_nulls(without_managed_fields(current)), ty);
    let cmp = compare(&last, &live, ty);
    let allowed = to_set(&last, ty)
        .difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed);
    Some(allowed.paths().iter().map(|p| path_string(p)).collect())
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------
// Helpers

/// The object Kubernetes compares a create with: the kind's Go zero value as
/// JSON (its non-pointer structs present, its nil selectors and container
/// lists null), so that, as there, creating a Deployment records
/// `f:spec`/`f:template` without `.` but a new `f:labels` with one.
fn zero_object(kind: &str) -> Value {
    let template =
        || json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}});
    let mut z = json!({"metadata": {"creationTimestamp": null}});
    let spec = match kind {
        "Pod" => json!({"containers": null}),
        "Deployment" => json!({"selector": null, "template": template(), "strategy": {}}),
        "ReplicaSet" => json!({"selector": null, "template": template()}),
        "DaemonSet" | "StatefulSet" => {
            json!({"selector": null, "template": template(), "updateStrategy": {}})
        }
        "Job" => json!({"template": template()}),
        "CronJob" => json!({
            "schedule": "",
            "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {"template": template()}},
        }),
        "Service" | "Namespace" | "Node" | "Lease" => json!({}),
        "Event" => {
            z["involvedObject"] = json!({});
            z["source"] = json!({});
            return z;
        }
        _ => return z,
    };
    z["spec"] = spec;
    match kind {
        "Lease" => {}
        "Service" => z["status"] = json!({"loadBalancer": {}}),
        _ => z["status"] = json!({}),
    }
    z
}

/// `obj` as Kubernetes compares it: a typed object, whose non-pointer structs
/// are always there ([`zero_object`] merged under it).
fn normalize(obj: &Value, ty: &Ty) -> Value {
    merge_values(&zero_object(ty.cx.kind), obj, ty)
}

fn api_version_of(obj: Option<&Value>) -> Option<String> {
    obj?.get("apiVersion")?.as_str().map(str::to_string)
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(m)) = out.get_mut("metadata") {
        m.remove("managedFields");
    }
    out
}

fn set_managed_fields(obj: &mut Value, fields: Option<Value>) {
    let Value::Object(o) = obj else { return };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    let Value::Object(m) = meta else { return };
    match fields {
        Some(f) => {
            m.insert("managedFields".into(), f);
        }
        None => {
            m.remove("managedFields");
        }
    }
}

/// Drops null map members everywhere, as Kubernetes' typed objects do.
fn strip_nulls(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(walk);
            }
            Value::Array(l) => l.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Go's `unicode.IsPrint`, near enough: no controls, no spaces but ' ',
/// no invisible format characters.
fn is_print(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

#[cfg(test)]
mod tests;
