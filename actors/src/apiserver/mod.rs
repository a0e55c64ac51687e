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
//! - [`write`]: create, update, patch and the `status`, `scale`, `binding`,
//!   `ephemeralcontainers` subresources.
//! - [`commit`]: every object write under one request id, retried until it has an answer.
//! - [`delete`]: grace periods, finalizers, propagation policies.
//! - [`watch`]: object watches from a resourceVersion, with bookmarks and 410 Gone.
//! - [`tokens`]: service-account tokens (signing key, TokenRequest, bearer authentication).
//! - [`rbac`]: the RBAC authorizer (an in-memory policy per master), escalation checks,
//!   default roles, access reviews.
//! - [`actor`]: the actix actor that runs this pipeline for the connection tasks.

pub mod actor;
pub mod admission;
pub mod alloc;
pub mod commit;
pub mod delete;
pub mod impersonate;
pub mod meta;
mod mirror;
pub mod nodegraph;
pub mod priority;
mod quota;
pub mod rbac;
pub mod read;
pub mod storage;
pub mod tokens;
pub mod watch;
pub mod write;

use ferry_api::kv::KvError;
use ferry_api::object::{ObjectRequest, ObjectResponse, Status, Verb};
use ferry_api::proto::{ApiError, Consistency, ErrorCode};
use ferry_api::resources::{self, Resource};
use ferry_api::tls::Identity;
use ferry_raft::Store;
use serde_json::Value;
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
    /// The cluster network Services are allocated from.
    network: Arc<ferry_api::network::Network>,
    /// Each namespace's state as last decoded, by its mod_revision (see
    /// [`ApiServer::check_namespace`]): a create checks its namespace without
    /// parsing the Namespace object again while it is unchanged.
    namespaces: Arc<Mutex<HashMap<String, (u64, NamespaceState)>>>,
    /// The RBAC policy, kept current by [`rbac::run`].
    rbac: rbac::Rbac,
    /// Which Secrets and ConfigMaps each node's pods reference, kept current
    /// by [`nodegraph::run`].
    node_graph: nodegraph::NodeGraph,
    /// The service-account signing key, once read ([`tokens`]).
    sa_key: Arc<std::sync::OnceLock<Arc<Vec<u8>>>>,
    /// The nodes' latest resource metrics (`metrics.k8s.io`), in memory only.
    metrics: ferry_api::metrics::MetricsStore,
    /// The store events this master's watches saw, each decoded once and shared.
    decoded: watch::decoded::DecodedEvents,
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
    pub fn new(
        store: Store,
        max_object_bytes: usize,
        network: ferry_api::network::Network,
    ) -> Self {
        ApiServer {
            store,
            max_object_bytes,
            network: Arc::new(network),
            namespaces: Arc::default(),
            rbac: rbac::Rbac::default(),
            node_graph: nodegraph::NodeGraph::default(),
            sa_key: Arc::default(),
            metrics: Default::default(),
            decoded: Default::default(),
        }
    }

    /// The store events this master's watches decoded, shared between them.
    pub fn decoded_events(&self) -> watch::decoded::DecodedEvents {
        self.decoded.clone()
    }

    /// The nodes' latest metrics reports this master holds.
    pub fn metrics(&self) -> &ferry_api::metrics::MetricsStore {
        &self.metrics
    }

    /// A get or list of `metrics.k8s.io` NodeMetrics or PodMetrics: answered
    /// from this master's memory, read-only, for whoever may read the core
    /// nodes or pods.
    fn metrics_request(&self, who: &Identity, req: &ObjectRequest) -> Outcome<ObjectResponse> {
        use ferry_api::metrics;
        let core = if req.resource == metrics::NODES {
            "nodes"
        } else {
            "pods"
        };
        let res = resources::by_cli_name(core).expect("core kinds are served");
        authorize(who, res, req, self.rbac.policy().as_deref())?;
        if !matches!(req.verb, Verb::Get | Verb::List) || req.subresource.is_some() {
            return Err(Status::not_allowed(format!(
                "{} is not supported on {}",
                req.verb.as_str(),
                req.resource
            ))
            .into());
        }
        if req.verb == Verb::Get && req.name.is_none() {
            return Err(Status::bad_request("get needs an object name").into());
        }
        let namespace = if req.resource == metrics::PODS {
            req.namespace.as_deref()
        } else {
            None
        };
        Ok(self.metrics.answer(
            &req.resource,
            namespace,
            req.name.as_deref(),
            &req.list,
            std::time::Instant::now(),
            &meta::now(),
        ))
    }

    /// The cluster network Services are allocated from.
    pub fn network(&self) -> &ferry_api::network::Network {
        &self.network
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
        rbac::as_requester(who.clone(), self.handle_as(who, req)).await
    }

    async fn handle_as(
        &self,
        who: &Identity,
        req: &ObjectRequest,
    ) -> Result<ObjectResponse, ApiError> {
        if req.resource == ferry_api::metrics::NODES || req.resource == ferry_api::metrics::PODS {
            return match self.metrics_request(who, req) {
                Ok(r) => Ok(r),
                Err(Failure::Status(s)) => Ok(s.response()),
                Err(Failure::Api(e)) => Err(e),
            };
        }
        let result = match self.route(who, req) {
            Ok(res) => match self.bound_to(who, res, req).await {
                Err(e) => Err(e),
                Ok(()) => match self.dispatch(res, req).await {
                    Ok(r) if commit::Once::repeated() => Ok(self.as_stored(res, req, r).await),
                    other => other,
                },
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => Ok(r),
            Err(Failure::Status(s)) => Ok(s.response()),
            Err(Failure::Api(e)) => Err(e),
        }
    }

    /// The node authorizer's graph for reads ([`nodegraph`]), and
    /// NodeRestriction for pods: a node writes the status of, and deletes, only
    /// pods bound to it (read from the store, not from the request).
    async fn bound_to(&self, who: &Identity, res: &Resource, req: &ObjectRequest) -> Outcome<()> {
        let Identity::Node(node) = who else {
            return Ok(());
        };
        self.node_may_read(node, res, req).await?;
        if res.kind != "Pod" || req.verb.is_read() {
            return Ok(());
        }
        let name = req.name.as_deref().unwrap_or_default();
        let stored = self
            .read_object(
                res,
                req.namespace.as_deref(),
                name,
                Consistency::Linearizable,
            )
            .await?;
        let bound = stored
            .as_ref()
            .and_then(|(p, _)| p.pointer("/spec/nodeName"))
            .and_then(Value::as_str);
        match (stored.is_some(), bound) {
            // Gone already: the write answers 404 as it would for anyone.
            (false, _) => Ok(()),
            (true, Some(b)) if b == node => Ok(()),
            _ => Err(Status::forbidden(format!(
                "pods {name:?} is forbidden: node {node:?} may only change pods bound to it \
                 (spec.nodeName {:?})",
                bound.unwrap_or("")
            ))
            .into()),
        }
    }

    /// The answer to a request whose outcome may be a repeat's: the store then
    /// answered the first attempt's outcome (its revision), but `r`'s body was
    /// built by this attempt (a create's new uid and creationTimestamp). So the
    /// object is read back, and answered as stored at that revision.
    async fn as_stored(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        r: ObjectResponse,
    ) -> ObjectResponse {
        if req.dry_run
            || !matches!(r.code, 200..=202)
            || !matches!(
                req.subresource.as_deref(),
                None | Some("status" | "ephemeralcontainers")
            )
        {
            return r;
        }
        let Ok(body) = r.json() else { return r };
        let (Ok(Some(rev)), Some(name)) = (meta::resource_version(&body), meta::name(&body)) else {
            return r;
        };
        for c in [
            ferry_api::proto::Consistency::Linearizable,
            ferry_api::proto::Consistency::AtRevision(rev),
        ] {
            if let Ok(Some((obj, at))) = self
                .read_object(res, req.namespace.as_deref(), name, c)
                .await
            {
                if at == rev {
                    return ObjectResponse::ok(r.code, &obj);
                }
            }
        }
        r
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
        authorize(who, res, req, self.rbac.policy().as_deref())?;
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
        if rbac::review::is_review(res) {
            return self.review(res, req).await;
        }
        match (req.verb, req.subresource.as_deref()) {
            (Verb::Get, None) => self.get(res, req).await,
            (Verb::List, None) => self.list(res, req).await,
            (Verb::Create, None) => self.create(res, req).await,
            (Verb::Update, None | Some("status")) => self.update(res, req).await,
            (Verb::Update, Some("finalize")) if res.kind == "Namespace" => {
                self.update(res, req).await
            }
            (Verb::Patch(pt), None | Some("status")) => self.patch(res, req, pt).await,
            (Verb::Delete, None) => self.delete(res, req).await,
            (Verb::Get, Some("status")) => self.get(res, req).await,
            (Verb::Get, Some("ephemeralcontainers")) if res.kind == "Pod" => {
                self.get(res, req).await
            }
            (Verb::Update, Some("ephemeralcontainers")) if res.kind == "Pod" => {
                self.update(res, req).await
            }
            (Verb::Patch(pt), Some("ephemeralcontainers"))
                if res.kind == "Pod" && pt != ferry_api::object::PatchType::Apply =>
            {
                self.patch(res, req, pt).await
            }
            (Verb::Get | Verb::Update | Verb::Patch(_), Some("scale")) => {
                self.scale(res, req).await
            }
            (Verb::Create, Some("binding")) if res.kind == "Pod" => self.bind(req).await,
            (Verb::Create, Some("eviction")) if res.kind == "Pod" => self.evict(res, req).await,
            (Verb::Create, Some("token")) if res.kind == "ServiceAccount" => {
                self.token_request(req).await
            }
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

/// The name a request writes: the URL's, or for a create the body's.
fn target_name(req: &ObjectRequest) -> Option<String> {
    if let Some(n) = &req.name {
        return Some(n.clone());
    }
    let body: Value = serde_json::from_slice(&req.body).ok()?;
    body.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// NodeRestriction for a node's writes to its Node and Lease: only its own
/// (its pods are checked against the stored pod, in [`ApiServer::handle`]).
fn own_objects_only(node: &str, res: &Resource, req: &ObjectRequest) -> Result<(), Status> {
    let own = match res.kind {
        "Node" => target_name(req).as_deref() == Some(node),
        "Lease" => {
            req.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE)
                && target_name(req).as_deref() == Some(node)
        }
        _ => return Ok(()),
    };
    if own {
        return Ok(());
    }
    let name = target_name(req).unwrap_or_default();
    Err(Status::forbidden(format!(
        "{} {name:?} is forbidden: node {node:?} may only change its own {} \
         (its Node, and its Lease in {NODE_LEASE_NAMESPACE:?})",
        res.plural, res.kind
    )))
}

/// The reviews about oneself (`kubectl auth can-i`, `kubectl auth whoami`)
/// every authenticated user may create.
const SELF_REVIEWS: [&str; 3] = [
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SelfSubjectReview",
];

/// The reviews Kubernetes' node rules let a kubelet create (to authenticate
/// and authorize callers of its own API).
const NODE_REVIEWS: [&str; 3] = [
    "TokenReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
];

/// Where node heartbeat Leases live.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Decides whether `who` may make `req`. Admins and masters may do anything;
/// nodes may read everything (Secrets and ConfigMaps only as their pods'
/// references allow, checked after: [`nodegraph`]) and write what a kubelet
/// writes (nodes, pod status, pod deletion, events, leases: the node
/// authorizer); users and
/// service accounts have what `policy` (RBAC) grants them, nothing while it
/// is not yet loaded.
pub fn authorize(
    who: &Identity,
    res: &Resource,
    req: &ObjectRequest,
    policy: Option<&rbac::eval::Policy>,
) -> Result<(), Status> {
    let allowed = match who {
        Identity::Admin | Identity::Master(_) => true,
        Identity::Node(n) => {
            if !req.verb.is_read() {
                own_objects_only(n, res, req)?;
            }
            req.verb.is_read()
                || matches!(res.kind, "Node" | "Event" | "Lease")
                // Tokens for its pods' service accounts (checked in `tokens`).
                || (res.kind == "ServiceAccount"
                    && req.verb == Verb::Create
                    && req.subresource.as_deref() == Some("token"))
                || (res.kind == "Pod"
                    && (req.subresource.as_deref() == Some("status") || req.verb == Verb::Delete))
                // What `system:basic-user` gives every authenticated user, and
                // the reviews a kubelet makes for its own API (Kubernetes' node rules).
                || (req.verb == Verb::Create
                    && (SELF_REVIEWS.contains(&res.kind) || NODE_REVIEWS.contains(&res.kind)))
        }
        Identity::User { .. } => {
            policy.is_some_and(|p| p.allows(&rbac::user_of(who), &rbac::request_of(res, req)))
        }
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
    // As Kubernetes words it: the group-qualified resource and the object's
    // name first, the subresource in the rule that was missing.
    let what = match req.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("{} {n:?}", meta::qualified_resource(res)),
        None => meta::qualified_resource(res),
    };
    Err(Status::forbidden(format!(
        "{what} is forbidden: User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::object::PatchType;

    fn res(plural: &str) -> &'static Resource {
        resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .unwrap()
    }

    fn req(verb: Verb, plural: &str, sub: Option<&str>) -> ObjectRequest {
        let namespaced = res(plural).namespaced;
        let mut r = ObjectRequest::new(
            verb,
            plural,
            namespaced.then_some("default"),
            (!matches!(verb, Verb::Create | Verb::List | Verb::Watch) || sub.is_some())
                .then_some("x"),
        );
        r.subresource = sub.map(str::to_string);
        r
    }

    const WRITES: [Verb; 5] = [
        Verb::Create,
        Verb::Update,
        Verb::Patch(PatchType::Merge),
        Verb::Patch(PatchType::Strategic),
        Verb::Delete,
    ];
    const READS: [Verb; 3] = [Verb::Get, Verb::List, Verb::Watch];

    #[test]
    fn admins_and_masters_may_do_anything() {
        for who in [Identity::Admin, Identity::Master(1), Identity::Master(7)] {
            for r in resources::RESOURCES.iter() {
                for verb in READS.iter().chain(&WRITES) {
                    for sub in [None, Some("status"), Some("scale"), Some("binding")] {
                        let q = req(*verb, r.plural, sub);
                        assert!(authorize(&who, r, &q, None).is_ok(), "{who:?} {q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nodes_read_everything_and_write_only_what_a_kubelet_writes() {
        let node = Identity::Node("n1".into());
        // Reads of every kind, subresources included.
        for r in resources::RESOURCES.iter() {
            for verb in READS {
                for sub in [None, Some("status")] {
                    let q = req(verb, r.plural, sub);
                    assert!(authorize(&node, r, &q, None).is_ok(), "node read {q:?}");
                }
            }
        }
        // (verb, resource, subresource, allowed)
        let merge = Verb::Patch(PatchType::Merge);
        let table: &[(Verb, &str, Option<&str>, bool)] = &[
            // Its Node object, events and leases: every verb.
            (Verb::Create, "nodes", None, true),
            (Verb::Update, "nodes", None, true),
            (merge, "nodes", Some("status"), true),
            (Verb::Delete, "nodes", None, true),
            (Verb::Create, "events", None, true),
            (merge, "events", None, true),
            (Verb::Delete, "events", None, true),
            (Verb::Create, "leases", None, true),
            (Verb::Update, "leases", None, true),
            (Verb::Delete, "leases", None, true),
            // Pods: status and deletion only.
            (Verb::Update, "pods", Some("status"), true),
            (merge, "pods", Some("status"), true),
            (Verb::Patch(PatchType::Json), "pods", Some("status"), true),
            (Verb::Delete, "pods", None, true),
            (Verb::Create, "pods", None, false),
            (Verb::Update, "pods", None, false),
            (merge, "pods", None, false),
            (Verb::Create, "pods", Some("binding"), false),
            // Nothing else.
            (Verb::Create, "namespaces", None, false),
            (Verb::Delete, "namespaces", None, false),
            (Verb::Create, "configmaps", None, false),
            (Verb::Update, "secrets", None, false),
            (Verb::Delete, "services", None, false),
            (Verb::Update, "endpoints", None, false),
            (merge, "deployments", Some("scale"), false),
            (Verb::Update, "replicasets", Some("status"), false),
            (Verb::Delete, "daemonsets", None, false),
            (Verb::Create, "jobs", None, false),
            (Verb::Create, "serviceaccounts", None, false),
            // Tokens for its pods (which pod is checked against the store).
            (Verb::Create, "serviceaccounts", Some("token"), true),
            (Verb::Update, "serviceaccounts", Some("token"), false),
            // Reviews about itself, as any authenticated user, and a kubelet's.
            (Verb::Create, "selfsubjectaccessreviews", None, true),
            (Verb::Create, "selfsubjectrulesreviews", None, true),
            (Verb::Create, "selfsubjectreviews", None, true),
            (Verb::Create, "subjectaccessreviews", None, true),
            (Verb::Create, "localsubjectaccessreviews", None, true),
            (Verb::Create, "tokenreviews", None, true),
        ];
        for (verb, plural, sub, allowed) in table {
            let q = own(req(*verb, plural, *sub));
            let got = authorize(&node, res(plural), &q, None);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "node {verb:?} {plural} {sub:?}: {got:?}"
            );
            if let Err(s) = got {
                assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
                let sub = sub.map(|s| format!("/{s}")).unwrap_or_default();
                let scope = if res(plural).namespaced {
                    "in the namespace \"default\"".to_string()
                } else {
                    "at the cluster scope".to_string()
                };
                let group = res(plural).group;
                let qualified = meta::qualified_resource(res(plural));
                let what = match &q.name {
                    Some(n) => format!("{qualified} {n:?}"),
                    None => qualified,
                };
                assert_eq!(
                    s.message,
                    format!(
                        "{what} is forbidden: User \"system:node:n1\" cannot {} resource \
                         \"{plural}{sub}\" in API group \"{group}\" {scope}",
                        verb.as_str()
                    )
                );
            }
        }
        // Every write to every other kind is refused.
        for r in resources::RESOURCES.iter() {
            if matches!(r.kind, "Node" | "Event" | "Lease" | "Pod") {
                continue;
            }
            for verb in WRITES {
                if verb == Verb::Create
                    && (SELF_REVIEWS.contains(&r.kind) || NODE_REVIEWS.contains(&r.kind))
                {
                    continue;
                }
                let q = req(verb, r.plural, None);
                assert!(authorize(&node, r, &q, None).is_err(), "node {q:?}");
            }
        }
    }

    /// A node's own Node and Lease: named n1 (in the URL, or in a create's body).
    fn own(mut q: ObjectRequest) -> ObjectRequest {
        if matches!(q.resource.as_str(), "nodes" | "leases") {
            if q.resource == "leases" {
                q.namespace = Some(NODE_LEASE_NAMESPACE.into());
            }
            match q.name {
                Some(_) => q.name = Some("n1".into()),
                None => q.body = br#"{"metadata":{"name":"n1"}}"#.to_vec(),
            }
        }
        q
    }

    #[test]
    fn a_node_may_not_write_another_nodes_node_or_lease() {
        let node = Identity::Node("n1".into());
        let merge = Verb::Patch(PatchType::Merge);
        let named = |verb, plural: &str, ns: Option<&str>, name: &str| {
            let mut q = ObjectRequest::new(verb, plural, ns, Some(name));
            q.subresource = (plural == "nodes" && verb == merge).then(|| "status".into());
            q
        };
        let lease_ns = Some(NODE_LEASE_NAMESPACE);
        let mut create_n2 = ObjectRequest::new(Verb::Create, "nodes", None, None);
        create_n2.body = br#"{"metadata":{"name":"n2"}}"#.to_vec();
        for q in [
            named(merge, "nodes", None, "n2"),
            named(Verb::Update, "nodes", None, "n2"),
            named(Verb::Delete, "nodes", None, "n2"),
            named(merge, "leases", lease_ns, "n2"),
            named(Verb::Delete, "leases", lease_ns, "n2"),
            // Its own name, but a lease elsewhere is not its heartbeat.
            named(merge, "leases", Some("default"), "n1"),
            create_n2,
        ] {
            let s = authorize(&node, res(&q.resource), &q, None).expect_err("allowed");
            assert_eq!(s.code, 403, "{q:?}");
            assert!(
                s.message.contains("may only change its own"),
                "{}",
                s.message
            );
        }
        assert!(authorize(
            &node,
            res("nodes"),
            &named(merge, "nodes", None, "n1"),
            None
        )
        .is_ok());
        assert!(authorize(
            &node,
            res("leases"),
            &named(merge, "leases", lease_ns, "n1"),
            None
        )
        .is_ok());
    }

    #[test]
    fn users_have_what_rbac_grants_them() {
        let alice = Identity::User {
            name: "alice".into(),
            groups: vec!["dev".into()],
            uid: String::new(),
            extra: Default::default(),
        };
        let root = Identity::User {
            name: "root".into(),
            groups: vec!["system:masters".into()],
            uid: String::new(),
            extra: Default::default(),
        };
        // No policy loaded yet, or no grants: refused, in Kubernetes' words.
        let rbac_objects = rbac::eval::Objects {
            cluster_roles: vec![serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cluster-admin"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}))
            .unwrap()],
            cluster_role_bindings: vec![serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cluster-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}))
            .unwrap()],
            ..Default::default()
        };
        let policy = rbac::eval::Policy::build(&rbac_objects);
        for p in [None, Some(&policy)] {
            for r in resources::RESOURCES.iter() {
                for verb in READS.iter().chain(&WRITES) {
                    let q = req(*verb, r.plural, None);
                    let s = authorize(&alice, r, &q, p).expect_err("user allowed");
                    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
                    assert!(
                        s.message.contains(&format!(
                            "User \"alice\" cannot {} resource \"{}\"",
                            verb.as_str(),
                            r.plural
                        )),
                        "{}",
                        s.message
                    );
                    // A member of system:masters has cluster-admin, once loaded.
                    assert_eq!(authorize(&root, r, &q, p).is_ok(), p.is_some(), "{q:?}");
                }
            }
        }
    }
}
