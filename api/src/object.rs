//! Kubernetes objects on the wire: the object request every front end builds,
//! the answer it gets, and Kubernetes `Status` errors.
//!
//! Bodies are JSON bytes (Kubernetes objects need a self-describing format); the
//! envelope around them is bincode like every other frame. The answer is the
//! JSON a Kubernetes API server would send — an object, a list or a `Status` —
//! with its HTTP status code, so the QUIC CLI and the HTTPS front end share it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How a patch body is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    Merge,
    /// RFC 6902 JSON patch (`application/json-patch+json`).
    Json,
    /// Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`): the body is the
    /// manager's whole intent; `ObjectRequest::field_manager` names the manager.
    Apply,
}

impl PatchType {
    /// The Content-Type that names this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// What the request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verb {
    /// Create the body (`generateName` honoured); on a subresource (`binding`), act on it.
    Create,
    /// Read one object.
    Get,
    /// List objects.
    List,
    /// Stream changes.
    Watch,
    /// Replace the object (optimistic concurrency on `metadata.resourceVersion`).
    Update,
    /// Patch the object.
    Patch(PatchType),
    /// Delete the object; the body is an optional `DeleteOptions`.
    Delete,
}

impl Verb {
    /// Lowercase name, as RBAC and audit logs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Update => "update",
            Verb::Patch(_) => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Reads and watches change nothing.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// List and watch options (Kubernetes `ListOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// Label selector (`app=web,tier in (a,b),!legacy`).
    pub label_selector: Option<String>,
    /// Field selector (`metadata.name=x,status.phase!=Running`).
    pub field_selector: Option<String>,
    /// At most this many items per page (0 = all).
    pub limit: u64,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
    /// List: read at this resourceVersion ("0" or absent = most recent).
    /// Watch: send changes after it (absent = start with the current state as ADDED events).
    pub resource_version: Option<String>,
    /// Watch: send BOOKMARK events.
    pub allow_bookmarks: bool,
}

/// One request against the Kubernetes object API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRequest {
    /// What to do.
    pub verb: Verb,
    /// Plural resource name (`pods`, `deployments`).
    pub resource: String,
    /// Namespace, for namespaced kinds (`None` with list/watch = every namespace).
    pub namespace: Option<String>,
    /// Object name (absent for create, list and watch).
    pub name: Option<String>,
    /// `status`, `binding` or `scale`.
    pub subresource: Option<String>,
    /// JSON body: the object, the patch, or `DeleteOptions`.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// List and watch options.
    pub list: ListOptions,
    /// Run admission but store nothing.
    pub dry_run: bool,
    /// What to do with fields the kind does not have.
    pub field_validation: FieldValidation,
    /// The field manager writing (`fieldManager`): server-side apply's owner,
    /// and the `Update` entry of `metadata.managedFields` for other writes.
    /// `None` (ferry's CLI): managed fields are kept as they are.
    pub field_manager: Option<String>,
    /// Server-side apply: take over fields other managers own (`force=true`).
    pub force: bool,
}

/// Kubernetes' `fieldValidation`: what a write does with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValidation {
    /// Refuse the request (400), naming each field (ferry's CLI and kubectl).
    #[default]
    Strict,
    /// Drop them and say so in `Warning` headers (Kubernetes' default for other clients).
    Warn,
    /// Drop them silently.
    Ignore,
}

impl ObjectRequest {
    /// A request with no body and default options.
    pub fn new(verb: Verb, resource: &str, namespace: Option<&str>, name: Option<&str>) -> Self {
        ObjectRequest {
            verb,
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: None,
            body: Vec::new(),
            list: ListOptions::default(),
            dry_run: false,
            field_validation: FieldValidation::Strict,
            field_manager: None,
            force: false,
        }
    }

    /// Safe to send again to another master after the first one failed mid-request:
    /// reads only (a repeated update would answer 409 for its own success).
    pub fn is_idempotent(&self) -> bool {
        self.verb.is_read()
    }
}

/// The answer: an HTTP status code and a JSON body (object, list or `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectResponse {
    /// HTTP status code (200, 201, 404, 409, 422, ...).
    pub code: u16,
    /// JSON body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Warnings for the client (unknown fields dropped under
    /// `fieldValidation=Warn`), as Kubernetes sends them in `Warning` headers.
    pub warnings: Vec<String>,
}

impl ObjectResponse {
    /// This answer with `warnings` added.
    pub fn warned(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// A success with a JSON value.
    pub fn ok(code: u16, body: &Value) -> Self {
        ObjectResponse {
            code,
            body: serde_json::to_vec(body).unwrap_or_default(),
            warnings: Vec::new(),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The `Status` when this is an error answer.
    pub fn status(&self) -> Option<Status> {
        if self.code < 400 {
            return None;
        }
        Some(
            serde_json::from_slice::<Value>(&self.body)
                .ok()
                .and_then(|v| Status::from_json(&v))
                .unwrap_or_else(|| {
                    Status::new(self.code, "Unknown", String::from_utf8_lossy(&self.body))
                }),
        )
    }
}

/// One event of an object watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: String,
    /// The store revision the event reports; a resumed watch continues after it.
    pub revision: u64,
    /// The object (for `ERROR`, a `Status`) as JSON.
    #[serde(with = "serde_bytes")]
    pub object: Vec<u8>,
}

impl ObjectEvent {
    /// The event as Kubernetes writes it on a watch stream: `{"type":..,"object":..}`.
    pub fn to_json(&self) -> Value {
        let object: Value = serde_json::from_slice(&self.object).unwrap_or(Value::Null);
        json!({ "type": self.kind, "object": object })
    }
}

/// A field-level cause in a `Status` (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: String,
    /// What is wrong.
    pub message: String,
    /// Field path (`spec.template.spec.containers[0].image`).
    pub field: String,
}

/// A Kubernetes `Status` error: HTTP code, reason, message, details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Status {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Gone`, ...
    pub reason: String,
    /// Human-readable message naming the object and the problem.
    pub message: String,
    /// Kind of the object concerned (`details.kind`).
    pub kind: Option<String>,
    /// Name of the object concerned (`details.name`).
    pub name: Option<String>,
    /// Field-level causes.
    pub causes: Vec<StatusCause>,
}

impl Status {
    /// A status with a code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            code,
            reason: reason.to_string(),
            message: message.into(),
            kind: None,
            name: None,
            causes: Vec::new(),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::new(400, "BadRequest", message)
    }

    /// 404 NotFound: `pods "web" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Status::new(404, "NotFound", format!("{resource} {name:?} not found")).about(resource, name)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Status::new(
            409,
            "AlreadyExists",
            format!("{resource} {name:?} already exists"),
        )
        .about(resource, name)
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Status::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} {name:?}: {why}"),
        )
        .about(resource, name)
    }

    /// 410 Gone: the resourceVersion is compacted.
    pub fn gone(message: impl Into<String>) -> Self {
        Status::new(410, "Expired", message)
    }

    /// 422 Invalid with field causes; the message lists them as Kubernetes does:
    /// `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be ...`.
    pub fn invalid(qualified_kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = match list.len() {
            0 => format!("{qualified_kind} {name:?} is invalid"),
            1 => format!("{qualified_kind} {name:?} is invalid: {}", list[0]),
            _ => format!(
                "{qualified_kind} {name:?} is invalid: [{}]",
                list.join(", ")
            ),
        };
        let mut s = Status::new(422, "Invalid", message).about(qualified_kind, name);
        s.causes = causes;
        s
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Status::new(403, "Forbidden", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Status::new(500, "InternalError", message)
    }

    /// 405 MethodNotAllowed.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Status::new(405, "MethodNotAllowed", message)
    }

    /// Names the object concerned.
    pub fn about(mut self, kind: &str, name: &str) -> Self {
        self.kind = Some(kind.to_string());
        self.name = Some(name.to_string());
        self
    }

    /// The Kubernetes JSON form.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // Kubernetes' generic responses always carry `details`, `{}` when
        // nothing is named (kubectl debug reads `details.name` of a 404).
        if self.kind.is_some() || !self.causes.is_empty() || self.code == 404 {
            let mut details = serde_json::Map::new();
            if let Some(n) = &self.name {
                details.insert("name".into(), json!(n));
            }
            if let Some(k) = &self.kind {
                details.insert("kind".into(), json!(k));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), json!(causes));
            }
            v["details"] = Value::Object(details);
        }
        v
    }

    /// Parses the Kubernetes JSON form.
    pub fn from_json(v: &Value) -> Option<Status> {
        if v.get("kind")?.as_str()? != "Status" {
            return None;
        }
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let causes = v
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| StatusCause {
                        reason: c["reason"].as_str().unwrap_or_default().to_string(),
                        message: c["message"].as_str().unwrap_or_default().to_string(),
                        field: c["field"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Status {
            code: v.get("code")?.as_u64()? as u16,
            reason: s("/reason").unwrap_or_default(),
            message: s("/message").unwrap_or_default(),
            kind: s("/details/kind"),
            name: s("/details/name"),
            causes,
        })
    }

    /// The answer carrying this status.
    pub fn response(&self) -> ObjectResponse {
        ObjectResponse::ok(self.code, &self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_formats_like_kubernetes() {
        let s = Status::invalid(
            "Deployment.apps",
            "web",
            vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
                field: "spec.replicas".into(),
            }],
        );
        assert_eq!(
            s.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let back = Status::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let r = Status::not_found("pods", "x").response();
        assert_eq!(r.code, 404);
        assert_eq!(r.status().unwrap().message, "pods \"x\" not found");
        assert!(ObjectResponse::ok(200, &json!({})).status().is_none());
        // A 404 naming nothing still carries `details` (kubectl debug reads it).
        let path = Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        assert_eq!(path.to_json()["details"], json!({}));
        assert_eq!(
            Status::not_found("pods", "x").to_json()["details"],
            json!({"name": "x", "kind": "pods"})
        );
        assert!(Status::bad_request("b").to_json().get("details").is_none());
    }
}
