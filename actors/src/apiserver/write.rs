//! create, update, patch, and the `status`, `scale` and `binding` subresources.
//!
//! Every write is a store put conditional on what was read: `Absent` for a
//! create, the read `mod_revision` for an update. A stale resourceVersion is a
//! 409 Conflict; nothing is ever overwritten blindly.

use super::admission::{self, Operation};
use super::alloc;
use super::commit::Once;
use super::meta::{self, metadata_mut};
use super::{kv_status, ApiServer, NamespaceState, Outcome};
use ferry_api::kv::{Expect, KeyValue, KvError, Write, WriteOp};
use ferry_api::object::{ObjectRequest, ObjectResponse, PatchType, Status, StatusCause};
use ferry_api::patch;
use ferry_api::patch::ssa;
use ferry_api::proto::Consistency;
use ferry_api::proto::RangeRequest;
use ferry_api::resources::Resource;

/// An update's picked NodePort was taken meanwhile (never answered: picked again).
const RACED: &str = "ferry:AllocationRaced";
use ferry_api::selector::LabelSelector;
use serde_json::{json, Value};

/// Metadata fields only the server sets; copied from the stored object on update.
const SYSTEM_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// What a create does with `metadata.managedFields`.
#[derive(Debug, Clone, Copy)]
enum Managed<'a> {
    /// Keeps none (ferry's CLI names no field manager).
    Drop,
    /// Records the body's fields for this manager (an `Update` entry).
    Record(&'a str),
    /// Keeps the body's (a server-side apply computed them).
    Keep,
}

/// Parses a request body as a JSON object.
pub fn body_object(req: &ObjectRequest) -> Result<Value, Status> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(Status::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn required(res: &Resource, name: &str, field: &str, message: &str) -> Status {
    Status::invalid(
        &meta::qualified_kind(res),
        name,
        vec![StatusCause {
            reason: "FieldValueRequired".into(),
            message: format!("Required value: {message}"),
            field: field.into(),
        }],
    )
}

/// Makes the object's namespace agree with the request's.
fn place(res: &Resource, obj: &mut Value, ns: Option<&str>) -> Result<(), Status> {
    let m = metadata_mut(obj);
    if !res.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let ns = ns.unwrap_or("default");
    match m.get("namespace").and_then(Value::as_str) {
        Some(x) if !x.is_empty() && x != ns => Err(Status::bad_request(format!(
            "the namespace of the provided object ({x}) does not match the namespace sent on the request ({ns})"
        ))),
        _ => {
            m.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

impl ApiServer {
    /// Fails unless namespace `ns` exists and is not terminating.
    ///
    /// Reads the Namespace from this master's applied state (linearizably when
    /// it is missing there: it may have been created a moment ago through
    /// another master), and decodes it only when its revision is new to this
    /// API server.
    /// Refusals are Kubernetes' own (NamespaceLifecycle admission): 404 for a
    /// missing namespace; 403 `<resource> "<name>" is forbidden: unable to create
    /// new content in namespace <ns> because it is being terminated` with a
    /// `NamespaceTerminating` cause for a terminating one.
    ///
    /// Answers the guard the create's write must carry: the Namespace's key at
    /// the revision checked. This master's state may lag the leader's (the
    /// namespace may already be terminating there); the guard fails the write
    /// then, and the create checks again linearizably (`linearizable`).
    pub async fn check_namespace(
        &self,
        res: &Resource,
        name: &str,
        ns: &str,
        linearizable: bool,
    ) -> Outcome<WriteOp> {
        let ns_res = ferry_api::resources::by_cli_name("namespaces").expect("namespaces served");
        let key = ns_res.key(None, Some(ns));
        let mut found = None;
        if !linearizable {
            found = self.store.get(&key, Consistency::Local).await?.0;
        }
        if found.is_none() {
            found = self.store.get(&key, Consistency::Linearizable).await?.0;
        }
        let Some(kv) = found else {
            return Err(Status::not_found("namespaces", ns).into());
        };
        match self.namespace_state(ns, &kv)? {
            NamespaceState::Active => Ok(WriteOp::Check {
                key,
                expect: Expect::ModRevision(kv.mod_revision),
            }),
            NamespaceState::Terminating => {
                let r = meta::qualified_resource(res);
                let mut s = Status::forbidden(format!(
                    "{r} {name:?} is forbidden: unable to create new content in namespace {ns} \
                     because it is being terminated"
                ))
                .about(&r, name);
                s.causes.push(StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                });
                Err(s.into())
            }
        }
    }

    /// The state of namespace `ns` as stored in `kv`.
    fn namespace_state(&self, ns: &str, kv: &KeyValue) -> Outcome<NamespaceState> {
        const REMEMBERED: usize = 4096;
        let mut seen = self.namespaces.lock().expect("namespace cache lock");
        if let Some(&(rev, state)) = seen.get(ns) {
            if rev == kv.mod_revision {
                return Ok(state);
            }
        }
        let obj = meta::decode(kv)?;
        let state = if obj.pointer("/metadata/deletionTimestamp").is_some()
            || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            NamespaceState::Terminating
        } else {
            NamespaceState::Active
        };
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(ns.to_string(), (kv.mod_revision, state));
        Ok(state)
    }

    /// CREATE.
    pub(super) async fn create(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let managed = match &req.field_manager {
            Some(m) => Managed::Record(m),
            None => Managed::Drop,
        };
        self.create_managed(res, req, managed).await
    }

    /// CREATE, with `metadata.managedFields` as `managed` says.
    async fn create_managed(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        managed: Managed<'_>,
    ) -> Outcome<ObjectResponse> {
        let mut obj = body_object(req)?;
        place(res, &mut obj, req.namespace.as_deref())?;
        let generate = meta::meta_str(&obj, "generateName")
            .filter(|g| !g.is_empty())
            .map(str::to_string);
        if meta::name(&obj).is_none_or(str::is_empty) {
            let Some(g) = &generate else {
                return Err(
                    required(res, "", "metadata.name", "name or generateName is required").into(),
                );
            };
            metadata_mut(&mut obj).insert(
                "name".into(),
                json!(meta::generate_name_from(g, Once::seed())),
            );
        }
        let m = metadata_mut(&mut obj);
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        if matches!(managed, Managed::Drop | Managed::Record(_)) {
            m.remove("managedFields");
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        if meta::tracks_generation(res) {
            m.insert("generation".into(), json!(1));
        } else if m.get("generation") == Some(&json!(0)) {
            // Go's omitempty: a zero generation (every protobuf body has one)
            // is no generation.
            m.remove("generation");
        }
        if meta::has_status_subresource(res) && res.kind != "Node" {
            obj.as_object_mut().expect("object").remove("status");
        }
        let namespace = req.namespace.as_deref().filter(|_| res.namespaced);
        let guard = match namespace {
            Some(ns) => Some(
                self.check_namespace(res, meta::name(&obj).unwrap_or_default(), ns, false)
                    .await?,
            ),
            None => None,
        };
        let warnings =
            admission::admit(res, &mut obj, None, Operation::Create, req.field_validation)?;
        match res.kind {
            "Pod" => {
                if let Some(ns) = namespace {
                    self.admit_limit_ranges(res, &mut obj, ns).await?;
                }
                self.admit_pod_priority(&mut obj).await?
            }
            "PriorityClass" => self.admit_priority_class(&obj).await?,
            "PersistentVolumeClaim" => {
                if let Some(ns) = namespace {
                    self.admit_limit_ranges(res, &mut obj, ns).await?;
                }
                self.admit_claim_class(&mut obj).await?
            }
            _ => {}
        }
        self.check_escalation(res, &obj)?;
        if let Some(ns) = namespace {
            if !req.dry_run {
                self.admit_quota(res, &obj, ns).await?;
            }
        }
        if let Managed::Record(manager) = managed {
            obj = ssa::record_update(None, &obj, res.kind, manager, None, &meta::now());
        }
        self.put_created(res, req, obj, namespace, guard, generate)
            .await
            .map(|r| r.warned(warnings))
    }

    /// Stores an admitted create (`guard`: its namespace's precondition), with
    /// another generated name when the one made is taken.
    async fn put_created(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        mut obj: Value,
        namespace: Option<&str>,
        mut guard: Option<WriteOp>,
        generate: Option<String>,
    ) -> Outcome<ObjectResponse> {
        for _ in 0..5 {
            let name = meta::name(&obj).unwrap_or_default().to_string();
            // A Service's address and ports are claimed in the same transaction.
            let mut stored = obj.clone();
            let key = res.key(req.namespace.as_deref(), Some(&name));
            let (markers, claims) = match res.kind {
                "Service" => match self.service_markers(&mut stored, None).await {
                    Ok(m) => m,
                    // A Service of this name holds the address asked for: the
                    // create is a duplicate (409, as Kubernetes answers).
                    Err(super::Failure::Status(s)) if s.code == 422 => {
                        return Err(self.duplicate_or(res, &key, &name, s).await);
                    }
                    Err(e) => return Err(e),
                },
                _ => (Vec::new(), Vec::new()),
            };
            let value = self.encode_checked(res, &stored)?;
            if req.dry_run {
                return Ok(ObjectResponse::ok(201, &stored));
            }
            let put = WriteOp::Put {
                key: key.clone(),
                value,
                expect: Expect::Absent,
            };
            // The namespace must still be the one checked when the create applies.
            let mut ops: Vec<WriteOp> = guard.iter().cloned().collect();
            ops.push(put);
            let first_marker = ops.len();
            ops.extend(markers);
            let w = match ops.len() {
                1 => Write::Op(ops.pop().expect("one op")),
                _ => Write::Txn(ops),
            };
            let result = match self.commit_write(w).await? {
                Err(KvError::TxnFailed { index: 0, .. }) if guard.is_some() => {
                    let ns = namespace.expect("a guard only for a namespace");
                    guard = Some(self.check_namespace(res, &name, ns, true).await?);
                    continue;
                }
                Err(KvError::TxnFailed { index, .. }) if index >= first_marker => {
                    // Someone else claimed it first: a requested value is an
                    // error, a picked one is picked again.
                    match claims[index - first_marker].taken_error(&name) {
                        Some(e) => return Err(self.duplicate_or(res, &key, &name, e).await),
                        None => continue,
                    }
                }
                Err(KvError::TxnFailed { source, .. }) => Err(*source),
                other => other,
            };
            match result {
                Ok(out) => {
                    meta::set_resource_version(&mut stored, out.revision);
                    return Ok(ObjectResponse::ok(201, &stored));
                }
                Err(KvError::AlreadyExists { .. }) if generate.is_some() => {
                    let g = generate.as_deref().unwrap_or_default();
                    metadata_mut(&mut obj).insert(
                        "name".into(),
                        json!(meta::generate_name_from(g, Once::seed())),
                    );
                }
                Err(e) => return Err(kv_status(res, &name, e).into()),
            }
        }
        Err(Status::new(
            500,
            "ServerTimeout",
            "the create did not commit in 5 attempts (its generated name or allocated address was taken, or its namespace kept changing); try again",
        )
        .into())
    }

    /// `AlreadyExists` when `key` is stored (a create's real conflict),
    /// else `otherwise`.
    async fn duplicate_or(
        &self,
        res: &Resource,
        key: &str,
        name: &str,
        otherwise: Status,
    ) -> super::Failure {
        match self.store.get(key, Consistency::Local).await {
            Ok((Some(_), _)) => Status::already_exists(&meta::qualified_resource(res), name).into(),
            _ => otherwise.into(),
        }
    }

    /// What other Services hold, from the allocation markers (a local read:
    /// the markers' `Absent` preconditions catch anything it missed).
    async fn allocated(&self) -> Outcome<alloc::Taken> {
        let mut taken = alloc::Taken::default();
        for prefix in [alloc::IP_PREFIX, alloc::PORT_PREFIX] {
            let page = self
                .store
                .range(&RangeRequest {
                    prefix: prefix.to_string(),
                    start_after: None,
                    limit: 0,
                    consistency: Consistency::Local,
                })
                .await?
                .map_err(|e| Status::internal(e.to_string()))?;
            for kv in page.kvs {
                let v = &kv.key[prefix.len()..];
                if prefix == alloc::IP_PREFIX {
                    taken.ips.extend(v.parse::<std::net::IpAddr>());
                } else {
                    taken.ports.extend(v.parse::<u16>());
                }
            }
        }
        Ok(taken)
    }

    /// Fills in a Service's ClusterIP and NodePorts (create, or update of
    /// `old`) and returns the marker writes with the claims they make.
    async fn service_markers(
        &self,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Outcome<(Vec<WriteOp>, Vec<alloc::Claim>)> {
        let mut taken = self.allocated().await?;
        if let Some(old) = old {
            let mine = alloc::held(old);
            taken.ips.retain(|ip| !mine.ips.contains(ip));
            taken.ports.retain(|p| !mine.ports.contains(p));
        }
        let (claims, released) =
            alloc::assign(&self.network, svc, old, &taken, rand::random::<u64>())?;
        Ok((alloc::marker_ops(svc, &claims, &released), claims))
    }

    /// The stored form of `obj`, refused when over the object size limit.
    fn encode_checked(&self, res: &Resource, obj: &Value) -> Result<Vec<u8>, Status> {
        let value = meta::encode(obj);
        if value.len() > self.max_object_bytes {
            return Err(Status::new(
                413,
                "RequestEntityTooLarge",
                format!(
                    "{} {:?} is {} bytes; the limit is {} bytes",
                    meta::qualified_kind(res),
                    meta::name(obj).unwrap_or_default(),
                    value.len(),
                    self.max_object_bytes
                ),
            ));
        }
        Ok(value)
    }

    /// Reads the object an update, patch or delete starts from.
    pub async fn current(&self, res: &Resource, req: &ObjectRequest) -> Outcome<(Value, u64)> {
        let name = req.name.as_deref().unwrap_or_default();
        self.read_object(
            res,
            req.namespace.as_deref(),
            name,
            Consistency::Linearizable,
        )
        .await?
        .ok_or_else(|| Status::not_found(&meta::qualified_resource(res), name).into())
    }

    /// UPDATE (PUT), of the object or its status.
    pub(super) async fn update(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let name = req.name.as_deref().unwrap_or_default();
        let mut obj = body_object(req)?;
        match meta::name(&obj) {
            Some(n) if !n.is_empty() && n != name => {
                return Err(Status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                ))
                .into())
            }
            _ => {
                metadata_mut(&mut obj).insert("name".into(), json!(name));
            }
        }
        place(res, &mut obj, req.namespace.as_deref())?;
        let (old, rev) = self.current(res, req).await?;
        let expect = meta::resource_version(&obj)?.unwrap_or(rev);
        let new = merge_into_old(res, req, &old, obj);
        self.finish_update(res, req, &old, new, expect).await
    }

    /// PATCH, of the object or its status; retried on conflict unless the patch
    /// pins a resourceVersion.
    pub(super) async fn patch(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        pt: PatchType,
    ) -> Outcome<ObjectResponse> {
        if pt == PatchType::Apply {
            return self.server_side_apply(res, req).await;
        }
        let p: Value = serde_json::from_slice(&req.body)
            .map_err(|e| Status::bad_request(format!("the patch is not valid JSON: {e}")))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (old, rev) = self.current(res, req).await?;
            let patched = apply_patch(&old, &p, pt, res)?;
            let pinned = meta::resource_version(&patched)?.filter(|r| *r != rev);
            let new = merge_into_old(res, req, &old, patched);
            match self
                .finish_update(res, req, &old, new, pinned.unwrap_or(rev))
                .await
            {
                Err(super::Failure::Status(s))
                    if s.code == 409 && pinned.is_none() && attempts < 5 =>
                {
                    continue
                }
                r => return r,
            }
        }
    }

    /// Server-side apply: the manager's whole intent merged into the object (made
    /// when missing) with `metadata.managedFields` kept as Kubernetes keeps them;
    /// a field another manager owns with another value is a 409 conflict unless
    /// `force`. Retried when the object changed under it.
    async fn server_side_apply(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let applied = body_object(req)?;
        let name = req.name.as_deref().unwrap_or_default();
        match meta::name(&applied) {
            Some(n) if n != name => {
                return Err(Status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                ))
                .into())
            }
            _ => {}
        }
        let manager = req.field_manager.as_deref().unwrap_or_default();
        let conflict = |c: ssa::Conflicts| -> super::Failure {
            let v = c.status(res.kind, name);
            Status::from_json(&v)
                .unwrap_or_else(|| Status::new(409, "Conflict", c.message()))
                .into()
        };
        // The writes below record nothing more: apply computed the managed fields.
        let mut inner = req.clone();
        inner.field_manager = None;
        for _ in 0..5 {
            let now = meta::now();
            let ns = req.namespace.as_deref();
            let current = self
                .read_object(res, ns, name, Consistency::Linearizable)
                .await?;
            let result = match current {
                None => {
                    let mut obj = ssa::apply(None, &applied, res.kind, manager, req.force, &now)
                        .map_err(conflict)?;
                    metadata_mut(&mut obj).insert("name".into(), json!(name));
                    let mut create = inner.clone();
                    create.verb = ferry_api::object::Verb::Create;
                    create.name = None;
                    create.body = serde_json::to_vec(&obj).unwrap_or_default();
                    self.create_managed(res, &create, Managed::Keep).await
                }
                Some((old, rev)) => {
                    let new = ssa::apply(Some(&old), &applied, res.kind, manager, req.force, &now)
                        .map_err(conflict)?;
                    let mut keep = inner.clone();
                    keep.field_manager = Some(manager.to_string());
                    let new = merge_into_old(res, &keep, &old, new);
                    self.finish_update(res, &inner, &old, new, rev).await
                }
            };
            match result {
                // Made or changed meanwhile (field conflicts were answered above):
                // apply again to what is there now.
                Err(super::Failure::Status(s)) if s.code == 409 => continue,
                r => return r,
            }
        }
        Err(Status::new(
            409,
            "Conflict",
            format!("the apply of {name} kept racing other writes; try again"),
        )
        .into())
    }

    /// Admits `new` as an update of `old` and writes it if `old` is still at `expect`.
    pub async fn finish_update(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        old: &Value,
        mut new: Value,
        expect: u64,
    ) -> Outcome<ObjectResponse> {
        let warnings = match req.subresource.as_deref() {
            None => admission::admit(
                res,
                &mut new,
                Some(old),
                Operation::Update,
                req.field_validation,
            )?,
            Some("ephemeralcontainers") => {
                admission::admit_ephemeral(res, &mut new, old, req.field_validation)?
            }
            Some(_) => Vec::new(),
        };
        if res.kind == "PriorityClass" && req.subresource.is_none() {
            self.admit_priority_class(&new).await?;
        }
        self.check_escalation(res, &new)?;
        if let Some(manager) = &req.field_manager {
            let sub = req.subresource.as_deref();
            new = ssa::record_update(Some(old), &new, res.kind, manager, sub, &meta::now());
        }
        if res.kind != "Service" || req.subresource.is_some() {
            return self
                .put_updated(res, req, old, new, expect, (Vec::new(), Vec::new()))
                .await
                .map(|r| r.warned(warnings));
        }
        // A Service's type or ports may change what it holds: claims and
        // releases go in the update's transaction; a picked value someone
        // else took meanwhile is picked again.
        for _ in 0..5 {
            let mut attempt = new.clone();
            let markers = self.service_markers(&mut attempt, Some(old)).await?;
            match self
                .put_updated(res, req, old, attempt, expect, markers)
                .await
            {
                Err(super::Failure::Status(s)) if s.reason == RACED => continue,
                r => return r.map(|r| r.warned(warnings)),
            }
        }
        Err(Status::new(
            500,
            "ServerTimeout",
            "the update's newly allocated ports kept being taken; try again",
        )
        .into())
    }

    /// Stores an admitted update if `old` is still at `expect`.
    async fn put_updated(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        old: &Value,
        mut new: Value,
        expect: u64,
        (markers, claims): (Vec<WriteOp>, Vec<alloc::Claim>),
    ) -> Outcome<ObjectResponse> {
        let name = meta::name(old).unwrap_or_default().to_string();
        if meta::tracks_generation(res) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let generation = generation + i64::from(meta::generation_moves(res, old, &new));
            if generation > 0 {
                metadata_mut(&mut new).insert("generation".into(), json!(generation));
            }
        }
        let unchanged = {
            let mut a = new.clone();
            let mut b = old.clone();
            metadata_mut(&mut a).remove("resourceVersion");
            metadata_mut(&mut b).remove("resourceVersion");
            a == b
        };
        let old_rev = meta::resource_version(old)?.unwrap_or(0);
        if unchanged && expect == old_rev {
            return Ok(ObjectResponse::ok(200, old));
        }
        let key = res.key(req.namespace.as_deref(), Some(&name));
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && meta::finalizers(&new).is_empty();
        if finalized && res.kind != "Namespace" {
            if !req.dry_run {
                self.commit_delete(res, &name, key, expect, old).await?;
            }
            return Ok(ObjectResponse::ok(200, &new));
        }
        let value = self.encode_checked(res, &new)?;
        if req.dry_run {
            return Ok(ObjectResponse::ok(200, &new));
        }
        let put = WriteOp::Put {
            key,
            value,
            expect: Expect::ModRevision(expect),
        };
        let w = match markers.is_empty() {
            true => Write::Op(put),
            false => Write::Txn(std::iter::once(put).chain(markers).collect()),
        };
        let out = match self.commit_write(w).await? {
            Err(KvError::TxnFailed { index, .. }) if index >= 1 => {
                return match claims[index - 1].taken_error(&name) {
                    Some(e) => Err(e.into()),
                    None => Err(Status::new(409, RACED, "an allocated port was taken").into()),
                };
            }
            r => r.map_err(|e| kv_status(res, &name, e))?,
        };
        meta::set_resource_version(&mut new, out.revision);
        Ok(ObjectResponse::ok(200, &new))
    }

    /// Deletes the stored `old` if still at `expect`, with what it holds (a
    /// Service's allocation markers) in the same transaction.
    pub(super) async fn commit_delete(
        &self,
        res: &Resource,
        name: &str,
        key: String,
        expect: u64,
        old: &Value,
    ) -> Outcome<ferry_api::kv::WriteOutcome> {
        let del = WriteOp::Delete {
            key,
            expect: Expect::ModRevision(expect),
        };
        let w = match res.kind {
            "Service" => {
                let held = alloc::held(old);
                Write::Txn(
                    std::iter::once(del)
                        .chain(alloc::marker_ops(old, &[], &held))
                        .collect(),
                )
            }
            _ => Write::Op(del),
        };
        Ok(self
            .commit_write(w)
            .await?
            .map_err(|e| kv_status(res, name, e))?)
    }

    /// GET, UPDATE or PATCH of `<workload>/scale`.
    pub(super) async fn scale(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        if !matches!(
            res.kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController"
        ) {
            return Err(Status::new(
                404,
                "NotFound",
                format!("{} have no scale subresource", res.plural),
            )
            .into());
        }
        let (old, rev) = self.current(res, req).await?;
        let current = scale_of(&old);
        let (replicas, expect) = match req.verb {
            ferry_api::object::Verb::Get => return Ok(ObjectResponse::ok(200, &current)),
            ferry_api::object::Verb::Update => {
                let s = body_object(req)?;
                (
                    s.pointer("/spec/replicas").cloned(),
                    meta::resource_version(&s)?.unwrap_or(rev),
                )
            }
            ferry_api::object::Verb::Patch(pt) => {
                let p: Value = serde_json::from_slice(&req.body).map_err(|e| {
                    Status::bad_request(format!("the patch is not valid JSON: {e}"))
                })?;
                let s = apply_patch(&current, &p, pt, res)?;
                (s.pointer("/spec/replicas").cloned(), rev)
            }
            _ => unreachable!("routed verbs only"),
        };
        let replicas = replicas
            .and_then(|r| r.as_i64())
            .filter(|r| *r >= 0)
            .ok_or_else(|| {
                Status::invalid(
                    "Scale.autoscaling",
                    meta::name(&old).unwrap_or_default(),
                    vec![StatusCause {
                        reason: "FieldValueInvalid".into(),
                        message: "Invalid value: spec.replicas must be an integer >= 0".into(),
                        field: "spec.replicas".into(),
                    }],
                )
            })?;
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        let mut plain = req.clone();
        plain.subresource = None;
        let r = self.finish_update(res, &plain, &old, new, expect).await?;
        let updated: Value = r.json().map_err(|e| Status::internal(e.to_string()))?;
        Ok(ObjectResponse::ok(200, &scale_of(&updated)))
    }

    /// CREATE `pods/binding`: assigns a pod to a node, once.
    pub(super) async fn bind(&self, req: &ObjectRequest) -> Outcome<ObjectResponse> {
        let res = ferry_api::resources::by_cli_name("pods").expect("pods served");
        let binding = body_object(req)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let name = req.name.as_deref().unwrap_or_default();
        let Some(node) = node else {
            return Err(required(res, name, "target.name", "a binding names the node").into());
        };
        let (old, rev) = self.current(res, req).await?;
        if let Some(n) = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(Status::conflict(
                "pods",
                name,
                &format!("pod {name} is already assigned to node {n:?}"),
            )
            .into());
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(Status::conflict("pods", name, "the pod is being deleted").into());
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let cond =
            json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": meta::now()});
        match new
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            Some(cs) => {
                cs.retain(|c| c["type"] != "PodScheduled");
                cs.push(cond);
            }
            None => new["status"]["conditions"] = json!([cond]),
        }
        let mut sub = req.clone();
        sub.subresource = Some("binding".into());
        self.finish_update(res, &sub, &old, new, rev).await?;
        Ok(ObjectResponse::ok(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }
}

/// The update's result before admission: the body for the main resource (with
/// the stored system metadata and status), or the stored object with the body's
/// status for the status subresource.
fn merge_into_old(res: &Resource, req: &ObjectRequest, old: &Value, body: Value) -> Value {
    if req.subresource.as_deref() == Some("status") {
        let mut new = old.clone();
        match body.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
        return new;
    }
    // `namespaces/finalize`: the stored namespace with the request's
    // `spec.finalizers` (as Kubernetes' finalize strategy keeps the rest).
    if req.subresource.as_deref() == Some("finalize") {
        let mut new = old.clone();
        match body.pointer("/spec/finalizers") {
            Some(f) if !f.is_null() => new["spec"]["finalizers"] = f.clone(),
            _ => {
                if let Some(s) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    s.remove("finalizers");
                }
            }
        }
        return new;
    }
    // `pods/ephemeralcontainers`: the stored pod with the request's
    // ephemeral containers; anything else the request changes is dropped.
    if req.subresource.as_deref() == Some("ephemeralcontainers") {
        let mut new = old.clone();
        match body.pointer("/spec/ephemeralContainers") {
            Some(e) if !e.is_null() => new["spec"]["ephemeralContainers"] = e.clone(),
            _ => {
                if let Some(s) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    s.remove("ephemeralContainers");
                }
            }
        }
        return new;
    }
    let mut new = body;
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let m = metadata_mut(&mut new);
    for f in SYSTEM_FIELDS {
        match old_meta.get(*f) {
            Some(v) => m.insert((*f).into(), v.clone()),
            None => m.remove(*f),
        };
    }
    for f in ["name", "namespace"] {
        if let Some(v) = old_meta.get(f) {
            m.insert(f.into(), v.clone());
        }
    }
    // A request naming a field manager brings its managed fields (apply made
    // them; an update may send back what it read, which record_update weighs);
    // others keep the stored ones.
    if req.field_manager.is_none() {
        match old_meta.get("managedFields") {
            Some(v) => m.insert("managedFields".into(), v.clone()),
            None => m.remove("managedFields"),
        };
    }
    if meta::has_status_subresource(res) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
    }
    new
}

fn apply_patch(old: &Value, p: &Value, pt: PatchType, res: &Resource) -> Result<Value, Status> {
    let invalid = |e: patch::PatchError| {
        Status::new(
            422,
            "Invalid",
            format!(
                "the patch cannot be applied to {} {:?}: {e}",
                meta::qualified_kind(res),
                meta::name(old).unwrap_or_default()
            ),
        )
    };
    match pt {
        PatchType::Merge => {
            if !p.is_object() {
                return Err(Status::bad_request("a merge patch must be a JSON object"));
            }
            let mut v = old.clone();
            patch::merge_patch(&mut v, p);
            Ok(v)
        }
        PatchType::Json => patch::json_patch(old, p).map_err(invalid),
        PatchType::Strategic => {
            if !p.is_object() {
                return Err(Status::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            patch::strategic_merge_patch(res.kind, old, p).map_err(invalid)
        }
        PatchType::Apply => Err(Status::internal(
            "server-side apply is not a patch of the stored object",
        )),
    }
}

/// The `autoscaling/v1` Scale of a workload.
fn scale_of(obj: &Value) -> Value {
    let sel = obj.pointer("/spec/selector");
    // A ReplicationController's selector is a plain map, not a LabelSelector.
    let sel = match obj["kind"].as_str() {
        Some("ReplicationController") => sel.map(|m| json!({ "matchLabels": m })),
        _ => sel.cloned(),
    };
    let selector = sel
        .and_then(|s| LabelSelector::from_json(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = &obj["metadata"];
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}
