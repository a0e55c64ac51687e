//! The one narrow trait through which controllers reach the API, and typed
//! helpers over it. Inside a master it is the API server's pipeline itself
//! (`ferry_actors`); out of process it could be a QUIC or HTTPS client.

use ferry_api::object::{ObjectEvent, ObjectRequest, ObjectResponse, PatchType, Verb};
use ferry_api::proto::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A boxed future; the control plane runs on one thread, so it need not be `Send`.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A running watch.
pub trait EventStream {
    /// The next event; an error ends the stream.
    fn next(&mut self) -> LocalFuture<'_, Result<ObjectEvent, ApiError>>;
}

/// What controllers need of the API: requests, watches and Raft leadership.
pub trait ControlApi: 'static {
    /// One request through the API pipeline, as the controller manager.
    fn request(&self, req: ObjectRequest) -> LocalFuture<'_, Result<ObjectResponse, ApiError>>;
    /// Starts a watch; a compacted revision is an error with [`ErrorCode::TooOld`].
    fn watch(&self, req: ObjectRequest) -> LocalFuture<'_, Result<Box<dyn EventStream>, ApiError>>;
    /// Follows this master's Raft leadership (true while it leads).
    fn leadership(&self) -> tokio::sync::watch::Receiver<bool>;
    /// Whether this master leads now: checked before every batch of writes.
    fn is_leader(&self) -> bool;
}

/// A written object's answer: the code, and on success its resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// HTTP status code.
    pub code: u16,
    /// The revision the write landed at (0 when it failed).
    pub revision: u64,
    /// The written object's name (a `generateName` create's answer).
    pub name: String,
    /// The Status message of a failure.
    pub message: String,
}

impl Written {
    /// Whether the write succeeded.
    pub fn ok(&self) -> bool {
        self.code < 300
    }
}

/// Lists a kind in every namespace: the objects and the revision read at.
pub async fn list<K: DeserializeOwned>(
    api: &dyn ControlApi,
    plural: &str,
) -> Result<(Vec<K>, u64), ApiError> {
    let resp = api
        .request(ObjectRequest::new(Verb::List, plural, None, None))
        .await?;
    if resp.code != 200 {
        return Err(ApiError::new(ErrorCode::Internal, status_message(&resp)));
    }
    let mut v: Value = resp
        .json()
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("listing {plural}: {e}")))?;
    let revision = v
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let items = match v.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match serde_json::from_value(it) {
            Ok(k) => out.push(k),
            Err(e) => tracing::warn!("skipping a {plural} object that does not decode: {e}"),
        }
    }
    Ok((out, revision))
}

/// Sends a write and reads its outcome.
pub async fn write(api: &dyn ControlApi, req: ObjectRequest) -> Written {
    match api.request(req).await {
        Ok(resp) if resp.code < 300 => {
            let v = resp.json().unwrap_or_default();
            let field = |f: &str| v.pointer(f).and_then(Value::as_str);
            Written {
                code: resp.code,
                revision: field("/metadata/resourceVersion")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                name: field("/metadata/name").unwrap_or("").to_string(),
                message: String::new(),
            }
        }
        Ok(resp) => Written {
            code: resp.code,
            revision: 0,
            name: String::new(),
            message: status_message(&resp),
        },
        Err(e) => Written {
            code: 503,
            revision: 0,
            name: String::new(),
            message: e.message,
        },
    }
}

/// A request with a JSON body.
pub fn with_body(mut req: ObjectRequest, body: &impl serde::Serialize) -> ObjectRequest {
    req.body = serde_json::to_vec(body).unwrap_or_default();
    req
}

/// A JSON merge patch of `plural/name` (or its `subresource`).
pub fn merge_patch(
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    patch: &Value,
) -> ObjectRequest {
    let mut r = ObjectRequest::new(Verb::Patch(PatchType::Merge), plural, namespace, Some(name));
    r.subresource = subresource.map(str::to_string);
    with_body(r, patch)
}

/// A merge patch that sets one list of an object's metadata
/// (`ownerReferences`, `finalizers`) — removed when empty — with the
/// resourceVersion read as precondition.
pub fn set_metadata_list<T: serde::Serialize>(
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    resource_version: &str,
    field: &str,
    values: &[T],
) -> ObjectRequest {
    let list = if values.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(values).unwrap_or(Value::Null)
    };
    let patch = serde_json::json!({"metadata": {field: list, "resourceVersion": resource_version}});
    merge_patch(plural, namespace, name, None, &patch)
}

/// The message of a failed answer's Status (or its body).
pub fn status_message(resp: &ObjectResponse) -> String {
    resp.json()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("status {}", resp.code))
}
