//! The Kubernetes API server: one request pipeline for every front end.
//!
//! authenticate (the connection's certificate identity, done by the caller) →
//! [`authorize`] (the hook RBAC fills) → admission ([`admission`]: decode,
//! default, validate) → the registry verbs ([`read`], [`write`], [`delete`],
//! [`watch`]) → the store. Reads and watches are served from this master's
//! applied state (linearizable by default through the read index); writes go
//! through Raft on the leader with a `mod_revision` precondition, so concurrent
//! writers get 409 Conflict instead of lost updates.
//!
//! Layout:
//! - [`meta`]: system metadata (uid, timestamps, resourceVersion, generateName).
//! - [`admission`]: strict decoding, defaulting and validation per kind.
//! - [`read`]: get and list (selectors, pages).
//! - [`write`]: create, update, patch and the `status`, `scale`, `binding` subresources.
//! - [`commit`]: every object write under one request id, retried until it has an answer.
//! - [`delete`]: grace periods, finalizers, propagation policies.
//! - [`watch`]: object watches from a resourceVersion, with bookmarks and 410 Gone.
//! - [`actor`]: the actix actor that runs this pipeline for the connection tasks.

pub mod actor;
pub mod admission;
pub mod commit;
pub mod delete;
pub mod meta;
pub mod read;
pub mod watch;
pub mod write;

use ferry_api::kv::KvError;
use ferry_api::object::{ObjectRequest, ObjectResponse, Status, Verb};
use ferry_api::proto::{ApiError, ErrorCode};
use ferry_api::resources::{self, Resource};
use ferry_api::tls::Identity;
use ferry_raft::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a request failed: a Kubernetes `Status` for the user, or a transport
/// condition (no leader, unknown outcome) the client acts on.
#[derive(Debug)]
pub enum Failure {
    /// Answered with this `Status`.
    Status(Status),
    /// Not answered by the API: retry elsewhere (`Unavailable`) or report (`Indeterminate`).
    Api(ApiError),
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        Failure::Status(s)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        match e.code {
            ErrorCode::Unavailable | ErrorCode::Indeterminate => Failure::Api(e),
            ErrorCode::TooOld => Failure::Status(Status::gone(e.message)),
            ErrorCode::BadRequest => Failure::Status(Status::bad_request(e.message)),
            ErrorCode::Forbidden | ErrorCode::Unauthenticated => {
                Failure::Status(Status::forbidden(e.message))
            }
            ErrorCode::Refused | ErrorCode::Internal => {
                Failure::Status(Status::internal(e.message))
            }
        }
    }
}

/// Result of a pipeline step.
pub type Outcome<T> = Result<T, Failure>;

/// The API server: cheap to clone, one per master.
#[derive(Clone)]
pub struct ApiServer {
    store: Store,
    max_object_bytes: usize,
    /// Each namespace's state as last decoded, by its mod_revision (see
    /// [`ApiServer::check_namespace`]): a create checks its namespace without
    /// parsing the Namespace object again while it is unchanged.
    namespaces: Arc<Mutex<HashMap<String, (u64, NamespaceState)>>>,
}

/// Whether a namespace takes new objects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NamespaceState {
    /// It does.
    Active,
    /// It is being deleted (`deletionTimestamp` set, or phase `Terminating`).
    Terminating,
}

impl ApiServer {
    /// An API server over `store`; objects larger than `max_object_bytes` are refused.
    pub fn new(store: Store, max_object_bytes: usize) -> Self {
        ApiServer {
            store,
            max_object_bytes,
            namespaces: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one non-watch request through the pipeline.
    pub async fn handle(
        &self,
        who: &Identity,
        req: &ObjectRequest,
    ) -> Result<ObjectResponse, ApiError> {
        let span = tracing::debug_span!("api", verb = req.verb.as_str(), resource = %req.resource,
            ns = ?req.namespace, name = ?req.name);
        let _g = span.enter();
        let result = match self.route(who, req) {
            Ok(res) => self.dispatch(res, req).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => Ok(r),
            Err(Failure::Status(s)) => Ok(s.response()),
            Err(Failure::Api(e)) => Err(e),
        }
    }

    /// Resolves the resource and checks the request's shape and authorization.
    pub fn route(&self, who: &Identity, req: &ObjectRequest) -> Outcome<&'static Resource> {
        let res = resources::RESOURCES
            .iter()
            .find(|r| r.plural == req.resource)
            .ok_or_else(|| {
                Status::new(
                    404,
                    "NotFound",
                    format!(
                        "the server could not find the requested resource {:?}",
                        req.resource
                    ),
                )
            })?;
        authorize(who, res, req)?;
        if res.namespaced
            && req.namespace.is_none()
            && !matches!(req.verb, Verb::List | Verb::Watch)
        {
            return Err(Status::bad_request(format!(
                "{} is namespaced: a namespace is required to {} it",
                res.plural,
                req.verb.as_str()
            ))
            .into());
        }
        if let Some(ns) = &req.namespace {
            resources::check_dns_label("metadata.namespace", ns)
                .map_err(|e| Status::bad_request(e.to_string()))?;
        }
        let needs_name = !matches!(req.verb, Verb::Create | Verb::List | Verb::Watch)
            || req.subresource.is_some();
        if needs_name && req.name.is_none() {
            return Err(
                Status::bad_request(format!("{} needs an object name", req.verb.as_str())).into(),
            );
        }
        Ok(res)
    }

    async fn dispatch(
        &self,
        res: &'static Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        match (req.verb, req.subresource.as_deref()) {
            (Verb::Get, None) => self.get(res, req).await,
            (Verb::List, None) => self.list(res, req).await,
            (Verb::Create, None) => self.create(res, req).await,
            (Verb::Update, None | Some("status")) => self.update(res, req).await,
            (Verb::Patch(pt), None | Some("status")) => self.patch(res, req, pt).await,
            (Verb::Delete, None) => self.delete(res, req).await,
            (Verb::Get, Some("status")) => self.get(res, req).await,
            (Verb::Get | Verb::Update | Verb::Patch(_), Some("scale")) => {
                self.scale(res, req).await
            }
            (Verb::Create, Some("binding")) if res.kind == "Pod" => self.bind(req).await,
            (Verb::Watch, None) => Err(Status::bad_request(
                "watches are streamed: use the watch call, not a single request",
            )
            .into()),
            (verb, sub) => Err(Status::not_allowed(format!(
                "{} is not supported on {}{}",
                verb.as_str(),
                res.plural,
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ))
            .into()),
        }
    }
}

/// Decides whether `who` may make `req` — the hook RBAC will fill. Admins and
/// masters may do anything; nodes may read everything and write what a kubelet
/// writes (nodes, pod status, pod deletion, events, leases); users are refused
/// until RBAC arrives.
pub fn authorize(who: &Identity, res: &Resource, req: &ObjectRequest) -> Result<(), Status> {
    let allowed = match who {
        Identity::Admin | Identity::Master(_) => true,
        Identity::Node(_) => {
            req.verb.is_read()
                || matches!(res.kind, "Node" | "Event" | "Lease")
                || (res.kind == "Pod"
                    && (req.subresource.as_deref() == Some("status") || req.verb == Verb::Delete))
        }
        Identity::User { .. } => false,
    };
    if allowed {
        return Ok(());
    }
    let user = match who {
        Identity::Node(n) => format!("system:node:{n}"),
        Identity::User { name, .. } => name.clone(),
        _ => String::new(),
    };
    let sub = req
        .subresource
        .as_deref()
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    let scope = match &req.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_string(),
    };
    Err(Status::forbidden(format!(
        "{}{sub} is forbidden: User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
        res.plural,
        req.verb.as_str(),
        format!("{}{sub}", res.plural),
        res.group
    )))
}

/// Maps a store business error on `name` to its Kubernetes status.
pub fn kv_status(res: &Resource, name: &str, e: KvError) -> Status {
    let r = meta::qualified_resource(res);
    match e {
        KvError::AlreadyExists { .. } => Status::already_exists(&r, name),
        KvError::NotFound { .. } => Status::not_found(&r, name),
        KvError::Conflict { .. } => Status::conflict(
            &r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        KvError::TxnFailed { source, .. } => kv_status(res, name, *source),
        KvError::TooOld { .. } => Status::gone(e.to_string()),
        KvError::FutureRevision { .. } | KvError::Invalid(_) => Status::bad_request(e.to_string()),
    }
}
