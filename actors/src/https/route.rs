//! Kubernetes REST paths and query strings → what the request asks for.
//!
//! Pure: a method, a path and a query string in, a [`Route`] out (or the
//! `Status` Kubernetes answers for a path it does not serve). Object routes are
//! the same [`ObjectRequest`] the QUIC front end builds, so both front ends
//! share every verb.

use ferry_api::object::{FieldValidation, ListOptions, ObjectRequest, PatchType, Status, Verb};
use ferry_api::resources::{Resource, RESOURCES};
use serde_json::{json, Map, Value};

/// What a request is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their `/<check>` forms); `verbose` lists the checks.
    Health {
        /// Which endpoint (`healthz`, `livez`, `readyz`).
        which: String,
        /// `?verbose`.
        verbose: bool,
    },
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`.
    Resources {
        /// API group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3` (`None`) or `/openapi/v3/<path>`.
    OpenApiV3(Option<String>),
    /// An object request for the pipeline.
    Object(Box<ObjectRoute>),
    /// A stream to a pod: `pods/<name>/log`, `exec`, `attach`, `portforward`.
    Pod(PodRoute),
    /// `pods/<name>/proxy/...` or `services/<name>/proxy/...`: an HTTP
    /// request passed to the pod (or one of the Service's endpoints).
    Proxy(ProxyRoute),
}

/// `pods/[scheme:]<name>[:port]/proxy[/path]` and the same for services.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyRoute {
    /// `pods` or `services`.
    pub plural: &'static str,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// `http` or `https`, when the target names one.
    pub scheme: Option<String>,
    /// The port, by number or name, when the target names one.
    pub port: Option<String>,
    /// The path passed on, from `/`.
    pub path: String,
    /// The query passed on, as sent.
    pub query: String,
}

/// Splits a proxy target `[scheme:]name[:port]` as Kubernetes'
/// `SplitSchemeNamePort` does: `name`, `name:port`, `scheme:name:port`
/// (the port may be empty: `https:name:`).
pub fn split_target(target: &str) -> Option<(Option<String>, String, Option<String>)> {
    let parts: Vec<&str> = target.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => (None, *name, None),
        [name, port] => (None, *name, Some(*port)),
        [scheme, name, port] => (Some(*scheme), *name, Some(*port)),
        _ => return None,
    };
    if name.is_empty() || scheme.is_some_and(|s| s != "http" && s != "https") {
        return None;
    }
    Some((
        scheme.map(str::to_string),
        name.to_string(),
        port.filter(|p| !p.is_empty()).map(str::to_string),
    ))
}

/// `pods/<name>/log|exec|attach|portforward` and their query.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRoute {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// `log`, `exec`, `attach` or `portforward`.
    pub what: String,
    /// The query's parameters, in order (`command` repeats).
    pub params: Vec<(String, String)>,
}

/// An object request and what the HTTP front end itself does around it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRoute {
    /// The request (its body is filled in from the HTTP body).
    pub req: ObjectRequest,
    /// The kind it is about.
    pub res: &'static Resource,
    /// Watch: end the stream after this many seconds (`timeoutSeconds`).
    pub timeout_secs: Option<u64>,
    /// Delete: options given in the query (`gracePeriodSeconds`,
    /// `propagationPolicy`, `orphanDependents`, preconditions are body-only),
    /// merged into the body's `DeleteOptions`.
    pub delete_query: Map<String, Value>,
    /// `DELETE` on a collection (`deletecollection`).
    pub delete_collection: bool,
    /// Tables: what each row carries (`includeObject`: `None`, `Metadata`, `Object`).
    pub include_object: Option<String>,
    /// An `autoscaling/v1` HorizontalPodAutoscaler path: bodies converted
    /// to the stored `autoscaling/v2` and answers back.
    pub hpa_v1: bool,
}

/// The subresources the object pipeline serves.
const SUBRESOURCES: &[&str] = &[
    "status",
    "scale",
    "binding",
    "eviction",
    "finalize",
    "token",
    "ephemeralcontainers",
];

/// Parses a request. `content_type` picks the patch type of a `PATCH`.
pub fn route(
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&str>,
) -> Result<Route, Status> {
    let q = Query::parse(query)?;
    let segs: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect();
    let get_only = |r: Route| {
        if method == "GET" || method == "HEAD" {
            Ok(r)
        } else {
            Err(method_not_allowed(method, path))
        }
    };
    match segs.as_slice() {
        ["version"] => get_only(Route::Version),
        [which @ ("healthz" | "livez" | "readyz"), ..] => get_only(Route::Health {
            which: which.to_string(),
            verbose: q.has("verbose"),
        }),
        ["api"] => get_only(Route::CoreVersions),
        ["apis"] => get_only(Route::Groups),
        ["apis", group] => get_only(Route::Group(group.to_string())),
        ["api", version] => get_only(Route::Resources {
            group: String::new(),
            version: version.to_string(),
        }),
        ["apis", group, version] => get_only(Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["openapi", "v2"] => get_only(Route::OpenApiV2),
        ["openapi", "v3"] => get_only(Route::OpenApiV3(None)),
        ["openapi", "v3", rest @ ..] => get_only(Route::OpenApiV3(Some(rest.join("/")))),
        ["api", "v1", "namespaces", ns, plural @ ("pods" | "services"), target, "proxy", ..] => {
            let (scheme, name, port) = split_target(target).ok_or_else(|| {
                Status::bad_request(format!("invalid {plural} proxy target {target:?}"))
            })?;
            let prefix = format!("/api/v1/namespaces/{ns}/{plural}/{target}/proxy");
            let rest = path.strip_prefix(&prefix).unwrap_or_default();
            Ok(Route::Proxy(ProxyRoute {
                plural: if *plural == "pods" {
                    "pods"
                } else {
                    "services"
                },
                namespace: ns.to_string(),
                name,
                scheme,
                port,
                path: if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("/{rest}")
                },
                query: query.to_string(),
            }))
        }
        ["api", version, rest @ ..] => object("", version, rest, method, &q, content_type, path),
        ["apis", group, version, rest @ ..] => {
            object(group, version, rest, method, &q, content_type, path)
        }
        _ => Err(not_found_path()),
    }
}

/// Kubernetes' answer for a path nothing serves.
pub fn not_found_path() -> Status {
    Status::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn method_not_allowed(method: &str, path: &str) -> Status {
    Status::new(
        405,
        "MethodNotAllowed",
        format!(
            "the server does not allow this method on the requested resource ({method} {path})"
        ),
    )
}

fn object(
    group: &str,
    version: &str,
    rest: &[&str],
    method: &str,
    q: &Query,
    content_type: Option<&str>,
    path: &str,
) -> Result<Route, Status> {
    // The legacy `/watch/` prefix: `GET /api/v1/watch/namespaces/x/pods`.
    let (rest, legacy_watch) = match rest {
        ["watch", more @ ..] => (more, true),
        _ => (rest, false),
    };
    // autoscaling/v1 HorizontalPodAutoscalers are served from the stored v2.
    let hpa_v1 = group == "autoscaling" && version == "v1";
    let find = |plural: &str| {
        RESOURCES
            .iter()
            .chain(ferry_api::resources::METRICS)
            .find(|r| {
                r.group == group
                    && (r.version == version || (hpa_v1 && r.kind == "HorizontalPodAutoscaler"))
                    && r.plural == plural
            })
    };
    // (resource, namespace, name, subresource)
    let (res, namespace, name, sub): (&'static Resource, Option<&str>, Option<&str>, Option<&str>) =
        match rest {
            // The namespace object itself and its subresources.
            ["namespaces"] => (
                find("namespaces").ok_or_else(not_found_path)?,
                None,
                None,
                None,
            ),
            ["namespaces", ns] => (
                find("namespaces").ok_or_else(not_found_path)?,
                None,
                Some(ns),
                None,
            ),
            ["namespaces", ns, sub @ ("status" | "finalize")] => (
                find("namespaces").ok_or_else(not_found_path)?,
                None,
                Some(ns),
                Some(*sub),
            ),
            ["namespaces", ns, plural, tail @ ..] => {
                let res = find(plural)
                    .filter(|r| r.namespaced)
                    .ok_or_else(not_found_path)?;
                match tail {
                    [] => (res, Some(*ns), None, None),
                    [name] => (res, Some(*ns), Some(*name), None),
                    [name, sub] => (res, Some(*ns), Some(*name), Some(*sub)),
                    _ => return Err(not_found_path()),
                }
            }
            [plural, tail @ ..] => {
                let res = find(plural).ok_or_else(not_found_path)?;
                match tail {
                    [] => (res, None, None, None),
                    // A namespaced kind's objects are only reachable under their namespace.
                    [name] if !res.namespaced => (res, None, Some(*name), None),
                    [name, sub] if !res.namespaced => (res, None, Some(*name), Some(*sub)),
                    _ => return Err(not_found_path()),
                }
            }
            [] => return Err(not_found_path()),
        };
    if let (Some(s @ ("log" | "exec" | "attach" | "portforward")), Some(ns), Some(n)) =
        (sub, namespace, name)
    {
        let allowed = match s {
            "log" => matches!(method, "GET" | "HEAD"),
            _ => matches!(method, "GET" | "POST"),
        };
        if res.plural != "pods" {
            return Err(not_found_path());
        }
        if !allowed {
            return Err(method_not_allowed(method, path));
        }
        return Ok(Route::Pod(PodRoute {
            namespace: ns.to_string(),
            name: n.to_string(),
            what: s.to_string(),
            params: q.0.clone(),
        }));
    }
    if let Some(s) = sub {
        if !SUBRESOURCES.contains(&s) {
            return Err(not_found_path());
        }
    }
    let collection = name.is_none();
    let watch = legacy_watch || q.flag("watch")?;
    let verb = match (method, collection) {
        ("GET" | "HEAD", true) if watch => Verb::Watch,
        ("GET" | "HEAD", true) => Verb::List,
        ("GET" | "HEAD", false) if !legacy_watch => Verb::Get,
        ("GET" | "HEAD", false) => Verb::Watch,
        ("POST", true) => Verb::Create,
        // `pods/binding`, `pods/eviction`: a create on the subresource.
        ("POST", false) if sub.is_some() => Verb::Create,
        ("PUT", false) => Verb::Update,
        ("PATCH", false) => Verb::Patch(patch_type(content_type)?),
        ("DELETE", _) => Verb::Delete,
        _ => return Err(method_not_allowed(method, path)),
    };
    let mut req = ObjectRequest::new(verb, &res.request_name(), namespace, name);
    // A single-object watch (`/watch/.../name`, or kubectl's
    // `fieldSelector=metadata.name=x`) is a field selector on the name.
    if verb == Verb::Watch {
        if let Some(n) = name {
            req.name = None;
            req.list.field_selector = Some(format!("metadata.name={n}"));
        }
    }
    req.subresource = sub.map(str::to_string);
    req.dry_run = match q.get("dryRun") {
        None => false,
        Some("All") => true,
        Some(other) => {
            return Err(Status::bad_request(format!(
                "Invalid dryRun value {other:?}: the only supported value is \"All\""
            )))
        }
    };
    // Kubernetes' default for requests that do not say is Warn (kubectl says Strict).
    req.field_validation = match q.get("fieldValidation") {
        None | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(fv) => {
            return Err(Status::bad_request(format!(
                "fieldValidation: Unsupported value: {fv:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )))
        }
    };
    req.list = ListOptions {
        label_selector: q.get("labelSelector").map(str::to_string),
        field_selector: match (req.list.field_selector.take(), q.get("fieldSelector")) {
            (Some(a), Some(b)) => Some(format!("{a},{b}")),
            (a, b) => a.or(b.map(str::to_string)),
        },
        limit: q.number("limit")?.unwrap_or(0),
        continue_token: q.get("continue").map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        allow_bookmarks: q.flag("allowWatchBookmarks")?,
    };
    if let Some(m) = q.get("resourceVersionMatch") {
        if !matches!(m, "NotOlderThan" | "Exact") {
            return Err(Status::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if req.list.resource_version.is_none() {
            return Err(Status::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
    }
    req.field_manager = q.get("fieldManager").map(str::to_string);
    if let Some(m) = &req.field_manager {
        if m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(Status::bad_request(format!(
                "fieldManager: Invalid value: {m:?}: must be at most 128 printable characters"
            )));
        }
    }
    req.force = q.flag("force")?;
    if req.force && verb != Verb::Patch(PatchType::Apply) {
        return Err(Status::bad_request(
            "force: Invalid value: true: may not be specified for non-apply patch",
        ));
    }
    if verb == Verb::Patch(PatchType::Apply) && req.field_manager.is_none() {
        return Err(Status::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let mut delete_query = Map::new();
    if verb == Verb::Delete {
        if let Some(g) = q.number::<i64>("gracePeriodSeconds")? {
            delete_query.insert("gracePeriodSeconds".into(), json!(g));
        }
        if let Some(p) = q.get("propagationPolicy") {
            delete_query.insert("propagationPolicy".into(), json!(p));
        }
        if q.get("orphanDependents").is_some() {
            delete_query.insert(
                "orphanDependents".into(),
                json!(q.flag("orphanDependents")?),
            );
        }
    }
    Ok(Route::Object(Box::new(ObjectRoute {
        req,
        res,
        timeout_secs: q.number("timeoutSeconds")?,
        delete_query,
        delete_collection: verb == Verb::Delete && collection,
        include_object: q.get("includeObject").map(str::to_string),
        hpa_v1: hpa_v1 && res.kind == "HorizontalPodAutoscaler",
    })))
}

/// The patch type a `PATCH` request's Content-Type names.
fn patch_type(content_type: Option<&str>) -> Result<PatchType, Status> {
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
        _ => Err(Status::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json, application/apply-patch+yaml (got {:?})",
                content_type.unwrap_or("")
            ),
        )),
    }
}

/// A decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Result<Query, Status> {
        let mut out = Vec::new();
        for part in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((decode(k)?, decode(v)?));
        }
        Ok(Query(out))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it (absent: false).
    fn flag(&self, key: &str) -> Result<bool, Status> {
        match self.get(key) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(Status::bad_request(format!(
                "{key}: invalid boolean value {v:?}"
            ))),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, Status> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    Status::bad_request(format!("{key}: invalid value {v:?}: not a whole number"))
                })
            })
            .transpose()
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> Result<String, Status> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Status::bad_request(format!("malformed query string {s:?}")))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Status::bad_request(format!("query string {s:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(method: &str, path: &str, query: &str) -> ObjectRoute {
        match route(method, path, query, Some("application/merge-patch+json")) {
            Ok(Route::Object(o)) => *o,
            other => panic!("{method} {path}?{query}: {other:?}"),
        }
    }

    #[test]
    fn metrics_and_v1_autoscaler_paths() {
        // path, query, verb, resource, namespace, name
        type Case<'a> = (
            &'a str,
            &'a str,
            Verb,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "/apis/metrics.k8s.io/v1beta1/nodes",
                "",
                Verb::List,
                "nodes.metrics.k8s.io",
                None,
                None,
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/nodes/n1",
                "",
                Verb::Get,
                "nodes.metrics.k8s.io",
                None,
                Some("n1"),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/pods",
                "labelSelector=app%3Dweb",
                Verb::List,
                "pods.metrics.k8s.io",
                None,
                None,
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                "",
                Verb::List,
                "pods.metrics.k8s.io",
                Some("default"),
                None,
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
                "",
                Verb::Get,
                "pods.metrics.k8s.io",
                Some("default"),
                Some("web"),
            ),
            (
                "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
                "",
                Verb::List,
                "horizontalpodautoscalers",
                Some("default"),
                None,
            ),
            (
                "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web",
                "",
                Verb::Get,
                "horizontalpodautoscalers",
                Some("default"),
                Some("web"),
            ),
        ];
        for (path, query, verb, resource, ns, name) in cases {
            let o = obj("GET", path, query);
            assert_eq!(o.req.verb, *verb, "{path}");
            assert_eq!(o.req.resource, *resource, "{path}");
            assert_eq!(o.req.namespace.as_deref(), *ns, "{path}");
            assert_eq!(o.req.name.as_deref(), *name, "{path}");
            assert_eq!(o.hpa_v1, path.contains("autoscaling/v1"), "{path}");
        }
        assert_eq!(
            obj(
                "GET",
                "/apis/metrics.k8s.io/v1beta1/pods",
                "labelSelector=app%3Dweb"
            )
            .req
            .list
            .label_selector
            .as_deref(),
            Some("app=web")
        );
        for bad in [
            "/apis/metrics.k8s.io/v1/nodes",
            "/apis/metrics.k8s.io/v1beta1/deployments",
            "/apis/autoscaling/v1/namespaces/default/deployments",
        ] {
            assert!(route("GET", bad, "", None).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_paths_become_the_pipelines_requests() {
        // method, path, query, verb, resource, namespace, name, subresource
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            Verb,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                "",
                Verb::List,
                "pods",
                Some("default"),
                None,
                None,
            ),
            (
                "GET",
                "/api/v1/pods",
                "",
                Verb::List,
                "pods",
                None,
                None,
                None,
            ),
            (
                "GET",
                "/api/v1/pods",
                "watch=true",
                Verb::Watch,
                "pods",
                None,
                None,
                None,
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/web",
                "",
                Verb::Get,
                "pods",
                Some("a"),
                Some("web"),
                None,
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/web/status",
                "",
                Verb::Get,
                "pods",
                Some("a"),
                Some("web"),
                Some("status"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/web/ephemeralcontainers",
                "",
                Verb::Get,
                "pods",
                Some("a"),
                Some("web"),
                Some("ephemeralcontainers"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/a/pods/web/ephemeralcontainers",
                "",
                Verb::Update,
                "pods",
                Some("a"),
                Some("web"),
                Some("ephemeralcontainers"),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods",
                "",
                Verb::Create,
                "pods",
                Some("a"),
                None,
                None,
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/web/binding",
                "",
                Verb::Create,
                "pods",
                Some("a"),
                Some("web"),
                Some("binding"),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d",
                "",
                Verb::Update,
                "deployments",
                Some("a"),
                Some("d"),
                None,
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                "",
                Verb::Update,
                "deployments",
                Some("a"),
                Some("d"),
                Some("scale"),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d",
                "",
                Verb::Patch(PatchType::Merge),
                "deployments",
                Some("a"),
                Some("d"),
                None,
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/configmaps/c",
                "",
                Verb::Delete,
                "configmaps",
                Some("a"),
                Some("c"),
                None,
            ),
            (
                "GET",
                "/api/v1/namespaces",
                "",
                Verb::List,
                "namespaces",
                None,
                None,
                None,
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                "",
                Verb::Get,
                "namespaces",
                None,
                Some("kube-system"),
                None,
            ),
            (
                "PUT",
                "/api/v1/namespaces/x/finalize",
                "",
                Verb::Update,
                "namespaces",
                None,
                Some("x"),
                Some("finalize"),
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                "",
                Verb::Get,
                "nodes",
                None,
                Some("n1"),
                None,
            ),
            (
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                "",
                Verb::List,
                "leases",
                Some("kube-node-lease"),
                None,
                None,
            ),
            (
                "GET",
                "/apis/batch/v1/cronjobs",
                "watch=1",
                Verb::Watch,
                "cronjobs",
                None,
                None,
                None,
            ),
        ];
        for (m, p, q, verb, plural, ns, name, sub) in cases {
            let o = obj(m, p, q);
            assert_eq!(o.req.verb, *verb, "{m} {p}");
            assert_eq!(o.req.resource, *plural, "{m} {p}");
            assert_eq!(o.req.namespace.as_deref(), *ns, "{m} {p}");
            assert_eq!(o.req.name.as_deref(), *name, "{m} {p}");
            assert_eq!(o.req.subresource.as_deref(), *sub, "{m} {p}");
        }
    }

    #[test]
    fn list_options_and_flags_come_from_the_query() {
        let o = obj(
            "GET",
            "/api/v1/namespaces/a/pods",
            "labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&fieldSelector=status.phase%21%3DRunning&limit=5&continue=abc&resourceVersion=12&allowWatchBookmarks=true&watch=1&timeoutSeconds=30",
        );
        assert_eq!(o.req.verb, Verb::Watch);
        assert_eq!(
            o.req.list.label_selector.as_deref(),
            Some("app=web,tier in (a,b)")
        );
        assert_eq!(
            o.req.list.field_selector.as_deref(),
            Some("status.phase!=Running")
        );
        assert_eq!(o.req.list.limit, 5);
        assert_eq!(o.req.list.continue_token.as_deref(), Some("abc"));
        assert_eq!(o.req.list.resource_version.as_deref(), Some("12"));
        assert!(o.req.list.allow_bookmarks);
        assert_eq!(o.timeout_secs, Some(30));
        let w = obj("GET", "/api/v1/watch/namespaces/a/pods/web", "");
        assert_eq!(w.req.verb, Verb::Watch);
        assert_eq!(w.req.name, None);
        assert_eq!(
            w.req.list.field_selector.as_deref(),
            Some("metadata.name=web")
        );
        let d = obj(
            "POST",
            "/api/v1/namespaces/a/pods",
            "dryRun=All&fieldManager=kubectl&fieldValidation=Strict",
        );
        assert!(d.req.dry_run);
        let del = obj(
            "DELETE",
            "/api/v1/namespaces/a/pods/p",
            "gracePeriodSeconds=0&propagationPolicy=Foreground",
        );
        assert_eq!(del.delete_query.get("gracePeriodSeconds"), Some(&json!(0)));
        assert_eq!(
            del.delete_query.get("propagationPolicy"),
            Some(&json!("Foreground"))
        );
        assert!(!del.delete_collection);
        assert!(obj("DELETE", "/api/v1/namespaces/a/pods", "").delete_collection);
    }

    #[test]
    fn what_is_not_served_answers_as_kubernetes_does() {
        let cases: &[(&str, &str, &str, Option<&str>, u16)] = &[
            ("GET", "/api/v1/gizmos", "", None, 404),
            ("GET", "/apis/apps/v1/pods", "", None, 404),
            ("GET", "/api/v2/pods", "", None, 404),
            ("GET", "/api/v1/pods/web", "", None, 404),
            (
                "GET",
                "/api/v1/namespaces/a/pods/web/frobnicate",
                "",
                None,
                404,
            ),
            ("GET", "/nowhere", "", None, 404),
            ("POST", "/api/v1/namespaces/a/pods/web", "", None, 405),
            ("PUT", "/api/v1/namespaces/a/pods", "", None, 405),
            ("DELETE", "/version", "", None, 405),
            (
                "PATCH",
                "/api/v1/namespaces/a/pods/web",
                "",
                Some("application/json"),
                415,
            ),
            ("PATCH", "/api/v1/namespaces/a/pods/web", "", None, 415),
            ("GET", "/api/v1/pods", "limit=ten", None, 400),
            ("GET", "/api/v1/pods", "watch=maybe", None, 400),
            (
                "POST",
                "/api/v1/namespaces/a/pods",
                "dryRun=Some",
                None,
                400,
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods",
                "fieldValidation=Loose",
                None,
                400,
            ),
            (
                "GET",
                "/api/v1/pods",
                "resourceVersionMatch=Exact",
                None,
                400,
            ),
            ("GET", "/api/v1/pods", "labelSelector=%zz", None, 400),
        ];
        for (m, p, q, ct, code) in cases {
            let e = route(m, p, q, *ct).expect_err(&format!("{m} {p}?{q}"));
            assert_eq!(e.code, *code, "{m} {p}?{q}: {e:?}");
        }
    }

    #[test]
    fn proxy_routes_keep_the_path_and_query_they_pass_on() {
        let r = route(
            "POST",
            "/api/v1/namespaces/a/pods/web:8080/proxy/x/y/",
            "q=1&r=%20",
            None,
        )
        .unwrap();
        let Route::Proxy(p) = r else { panic!("{r:?}") };
        assert_eq!(
            (
                p.plural,
                p.namespace.as_str(),
                p.name.as_str(),
                p.port.as_deref()
            ),
            ("pods", "a", "web", Some("8080"))
        );
        assert_eq!((p.path.as_str(), p.query.as_str()), ("/x/y/", "q=1&r=%20"));
        let r = route(
            "GET",
            "/api/v1/namespaces/a/services/http:echo:web/proxy",
            "",
            None,
        );
        let Ok(Route::Proxy(p)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            (
                p.plural,
                p.scheme.as_deref(),
                p.name.as_str(),
                p.port.as_deref(),
                p.path.as_str()
            ),
            ("services", Some("http"), "echo", Some("web"), "/")
        );
        assert_eq!(
            split_target("https:web:"),
            Some((Some("https".into()), "web".into(), None))
        );
        for bad in ["", ":80", "ftp:web:80", "a:b:c:d"] {
            assert_eq!(split_target(bad), None, "{bad}");
        }
        let e = route("GET", "/api/v1/namespaces/a/pods/a:b:c:d/proxy/", "", None).unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn pod_streams_keep_their_query() {
        let r = route(
            "GET",
            "/api/v1/namespaces/a/pods/web/log",
            "container=c&follow=true&tailLines=5",
            None,
        )
        .unwrap();
        let Route::Pod(p) = r else { panic!("{r:?}") };
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.what.as_str()),
            ("a", "web", "log")
        );
        assert_eq!(p.params[1], ("follow".to_string(), "true".to_string()));
        let r = route(
            "POST",
            "/api/v1/namespaces/a/pods/web/exec",
            "command=sh&command=-c&command=echo+hi&stdout=true",
            None,
        )
        .unwrap();
        let Route::Pod(p) = r else { panic!("{r:?}") };
        assert_eq!(p.what, "exec");
        let cmd: Vec<&str> = p
            .params
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cmd, ["sh", "-c", "echo hi"]);
        let r = route("GET", "/api/v1/namespaces/a/pods/web/portforward", "", None).unwrap();
        let Route::Pod(p) = r else { panic!("{r:?}") };
        assert_eq!((p.name.as_str(), p.what.as_str()), ("web", "portforward"));
        assert_eq!(
            route("POST", "/api/v1/namespaces/a/pods/web/log", "", None)
                .unwrap_err()
                .code,
            405
        );
        assert_eq!(
            route(
                "GET",
                "/apis/apps/v1/namespaces/a/deployments/d/log",
                "",
                None
            )
            .unwrap_err()
            .code,
            404
        );
    }

    #[test]
    fn discovery_and_health_paths() {
        let r = |p: &str| route("GET", p, "", None).unwrap();
        assert_eq!(r("/version"), Route::Version);
        assert_eq!(r("/api"), Route::CoreVersions);
        assert_eq!(r("/apis"), Route::Groups);
        assert_eq!(r("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            r("/api/v1"),
            Route::Resources {
                group: "".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            r("/apis/batch/v1/"),
            Route::Resources {
                group: "batch".into(),
                version: "v1".into()
            }
        );
        assert_eq!(r("/openapi/v3"), Route::OpenApiV3(None));
        assert_eq!(
            r("/openapi/v3/apis/apps/v1"),
            Route::OpenApiV3(Some("apis/apps/v1".into()))
        );
        assert_eq!(
            route("GET", "/readyz", "verbose", None).unwrap(),
            Route::Health {
                which: "readyz".into(),
                verbose: true
            }
        );
    }
}
