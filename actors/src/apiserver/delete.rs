//! delete: preconditions, grace periods, finalizers and propagation policies.
//!
//! An object with finalizers (its own, or the `orphan` / `foregroundDeletion`
//! finalizer a propagation policy adds) is only marked with a
//! `deletionTimestamp`; whoever owns each finalizer removes it, and the update
//! that removes the last one deletes the object. A pod bound to a node is
//! deleted gracefully: marked, and removed by its kubelet (or by a delete with
//! `gracePeriodSeconds: 0`). Dependents are cleaned up by the garbage collector, and a terminating
//! namespace's content by the namespace controller (`ferry_control::run::gc`),
//! which finalizes it (`namespaces/finalize`) and deletes it again: a
//! namespace marked, finalized and without finalizers is removed.

use super::commit::Once;
use super::meta::{self, metadata_mut};
use super::{kv_status, ApiServer, Outcome};
use ferry_api::kv::{Expect, WriteOp};
use ferry_api::object::{ObjectRequest, ObjectResponse, Status};
use ferry_api::resources::Resource;
use serde_json::{json, Value};

/// Finalizer that orphans dependents before the owner goes.
pub const ORPHAN: &str = "orphan";
/// Finalizer that deletes dependents before the owner goes.
pub const FOREGROUND: &str = "foregroundDeletion";

/// What to do with an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Keep them; drop their owner references.
    Orphan,
    /// Delete the owner now, the dependents after.
    Background,
    /// Delete the dependents first, then the owner.
    Foreground,
}

/// The parts of `DeleteOptions` ferry honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy` (or the deprecated `orphanDependents`).
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<u64>,
}

impl DeleteOptions {
    /// Parses a `DeleteOptions` body (empty = defaults).
    pub fn parse(body: &[u8]) -> Result<DeleteOptions, Status> {
        let v: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Status::bad_request(format!("DeleteOptions is not valid JSON: {e}")))?
        };
        let grace = match v.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(g) => Some(g.as_i64().filter(|g| *g >= 0).ok_or_else(|| {
                Status::bad_request(format!(
                    "gracePeriodSeconds: Invalid value: {g}: must be a non-negative integer"
                ))
            })?),
        };
        let propagation = match v.get("propagationPolicy").and_then(Value::as_str) {
            Some("Orphan") => Propagation::Orphan,
            Some("Foreground") => Propagation::Foreground,
            Some("Background") => Propagation::Background,
            None if v["orphanDependents"] == json!(true) => Propagation::Orphan,
            None => Propagation::Background,
            Some(p) => {
                return Err(Status::bad_request(format!(
                    "propagationPolicy: Unsupported value: {p:?}: supported values: \"Orphan\", \"Background\", \"Foreground\""
                )))
            }
        };
        Ok(DeleteOptions {
            grace,
            propagation,
            uid: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            resource_version: meta::parse_rv(
                v.pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str),
            )?,
        })
    }
}

impl ApiServer {
    /// DELETE; retried when the object changed between its read and the
    /// write (a controller's status update, say), unless the client pinned a
    /// resourceVersion: a delete without preconditions never answers 409.
    pub(super) async fn delete(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let opts = DeleteOptions::parse(&req.body)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.delete_once(res, req, &opts).await {
                Err(super::Failure::Status(s))
                    if s.code == 409
                        && opts.resource_version.is_none()
                        && !s.message.starts_with("Precondition failed")
                        && attempts < 5 =>
                {
                    continue
                }
                r => return r,
            }
        }
    }

    /// CREATE `pods/eviction` (policy/v1 `Eviction`): the pod is deleted with
    /// the Eviction's `deleteOptions` (graceful, as any delete), once the
    /// PodDisruptionBudget covering it allows one more disruption — taken
    /// from its status under a resourceVersion precondition, so two
    /// evictions never spend one allowance. Refused with 429, as Kubernetes.
    pub(super) async fn evict(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let name = req.name.as_deref().unwrap_or_default();
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&req.body)
                .map_err(|e| Status::bad_request(format!("the Eviction is not valid JSON: {e}")))?
        };
        if let Some(kind) = body.get("kind").and_then(Value::as_str) {
            if kind != "Eviction" {
                return Err(Status::bad_request(format!(
                    "pods/eviction takes an Eviction (policy/v1), not a {kind}"
                ))
                .into());
            }
        }
        if let Some(n) = body.pointer("/metadata/name").and_then(Value::as_str) {
            if n != name {
                return Err(Status::bad_request(format!(
                    "name in URL does not match name in Eviction object: {name:?} vs {n:?}"
                ))
                .into());
            }
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.spend_budget(res, req).await {
                Err(super::Failure::Status(s)) if s.code == 409 && attempts < 5 => continue,
                r => break r?,
            }
        }
        let mut del = req.clone();
        del.verb = ferry_api::object::Verb::Delete;
        del.subresource = None;
        let mut options = match body.get("deleteOptions") {
            Some(o) if !o.is_null() => o.clone(),
            _ => json!({}),
        };
        let opts = DeleteOptions::parse(&serde_json::to_vec(&options).unwrap_or_default())?;
        if !req.dry_run {
            let rv = self.mark_evicted(res, req, &opts).await?;
            // The client's resourceVersion precondition moves to the version
            // this eviction's own condition write made.
            if opts.resource_version.is_some() {
                options["preconditions"]["resourceVersion"] = json!(rv.to_string());
            }
        }
        del.body = if options == json!({}) {
            Vec::new()
        } else {
            serde_json::to_vec(&options).unwrap_or_default()
        };
        self.delete(res, &del).await?;
        Ok(ObjectResponse::ok(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// Writes `DisruptionTarget=True` (`EvictionByEvictionAPI`) on the pod an
    /// eviction is about to delete, as Kubernetes' eviction subresource does,
    /// checking the delete's preconditions against the pod read; returns the
    /// pod's resourceVersion after the write.
    async fn mark_evicted(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        opts: &DeleteOptions,
    ) -> Outcome<u64> {
        use ferry_control::podgc::{disruption_target, Disruption};
        let name = req.name.as_deref().unwrap_or_default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (pod, rev) = self.current(res, req).await?;
            let uid = meta::meta_str(&pod, "uid").unwrap_or_default();
            if let Some(want) = opts.uid.as_deref().filter(|u| !u.is_empty()) {
                if want != uid {
                    return Err(Status::conflict("Pod", name, &format!(
                        "the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                    )).into());
                }
            }
            if let Some(want) = opts.resource_version {
                if want != rev {
                    return Err(Status::conflict("Pod", name, &format!(
                        "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({rev}). The object might have been modified"
                    )).into());
                }
            }
            let now = ferry_api::clock::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let Some(cond) = disruption_target(
                pod.pointer("/status/conditions"),
                &Disruption::EvictionApi,
                &now,
            ) else {
                return Ok(rev);
            };
            let mut new = pod.clone();
            let mut conds: Vec<Value> = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match conds.iter_mut().find(|c| c["type"] == cond["type"]) {
                Some(c) => *c = cond,
                None => conds.push(cond),
            }
            new["status"]["conditions"] = json!(conds);
            meta::set_resource_version(&mut new, rev);
            let mut upd = req.clone();
            upd.verb = ferry_api::object::Verb::Update;
            upd.subresource = Some("status".into());
            upd.body = serde_json::to_vec(&new).unwrap_or_default();
            match Box::pin(self.handle(&ferry_api::tls::Identity::Admin, &upd)).await {
                Ok(r) if r.code < 300 => {
                    let written: Value = r.json().unwrap_or_default();
                    return Ok(meta::resource_version(&written)?.unwrap_or(rev));
                }
                Ok(r) if r.code == 409 && attempts < 5 => continue,
                Ok(r) => {
                    return Err(r
                        .status()
                        .unwrap_or_else(|| Status::internal("marking the pod evicted"))
                        .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Checks the pod's disruption budget and takes one allowed disruption
    /// from it; a 409 means the budget moved (try again).
    async fn spend_budget(&self, res: &Resource, req: &ObjectRequest) -> Outcome<()> {
        let (pod, _) = self.current(res, req).await?;
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed" | "Pending") | None)
            || pod.pointer("/metadata/deletionTimestamp").is_some()
        {
            return Ok(());
        }
        let pdbs = ferry_api::resources::by_cli_name("poddisruptionbudgets").expect("served");
        let list = ObjectRequest::new(
            ferry_api::object::Verb::List,
            pdbs.plural,
            req.namespace.as_deref(),
            None,
        );
        let all = self.list(pdbs, &list).await?.json().unwrap_or_default();
        let empty = serde_json::Map::new();
        let labels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let covering: Vec<&Value> = all["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|b| {
                let sel = b.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
                ferry_api::selector::LabelSelector::from_json(&sel)
                    .is_ok_and(|s| !s.is_empty() && s.matches(labels))
            })
            .collect();
        let b = match covering.as_slice() {
            [] => return Ok(()),
            [b] => *b,
            _ => {
                return Err(Status::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )
                .into())
            }
        };
        let name = meta::name(b).unwrap_or_default().to_string();
        let n = |f: &str| b.pointer(f).and_then(Value::as_i64).unwrap_or(0);
        let refuse = |why: String| {
            let mut s = Status::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            s.causes.push(ferry_api::object::StatusCause {
                reason: "DisruptionBudget".into(),
                message: why,
                field: String::new(),
            });
            Err(s.into())
        };
        if n("/status/observedGeneration") < n("/metadata/generation") {
            return refuse(format!(
                "The disruption budget {name} is still being processed by the server."
            ));
        }
        let ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        let (healthy, desired) = (n("/status/currentHealthy"), n("/status/desiredHealthy"));
        if !ready {
            let always =
                b.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
            if always || healthy >= desired {
                return Ok(());
            }
        }
        let allowed = n("/status/disruptionsAllowed");
        if allowed <= 0 {
            return refuse(format!(
                "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
            ));
        }
        let mut spent = b.clone();
        spent["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let mut upd = ObjectRequest::new(
            ferry_api::object::Verb::Update,
            pdbs.plural,
            req.namespace.as_deref(),
            Some(&name),
        );
        upd.subresource = Some("status".into());
        upd.body = serde_json::to_vec(&spent).unwrap_or_default();
        match Box::pin(self.handle(&ferry_api::tls::Identity::Admin, &upd)).await {
            Ok(r) if r.code < 300 => Ok(()),
            Ok(r) => Err(r
                .status()
                .unwrap_or_else(|| Status::internal("updating the disruption budget"))
                .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// One read-decide-write of a DELETE.
    async fn delete_once(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        opts: &DeleteOptions,
    ) -> Outcome<ObjectResponse> {
        let name = req.name.as_deref().unwrap_or_default();
        let (old, rev) = match self.current(res, req).await {
            Err(super::Failure::Status(s)) if s.code == 404 && Once::is_retry() => {
                return self.deleted_before(res, req, s).await;
            }
            r => r?,
        };
        let qualified = meta::qualified_resource(res);
        if let Some(uid) = &opts.uid {
            let actual = meta::meta_str(&old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(Status::conflict(
                    &qualified,
                    name,
                    &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
                )
                .into());
            }
        }
        if let Some(rv) = opts.resource_version.filter(|r| *r != rev) {
            return Err(Status::conflict(&qualified, name, &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"
            )).into());
        }
        let key = res.key(req.namespace.as_deref(), Some(name));
        let marked = old.pointer("/metadata/deletionTimestamp").is_some();
        let force = opts.grace == Some(0);
        let mut fins = meta::finalizers(&old);
        match opts.propagation {
            Propagation::Orphan => add(&mut fins, ORPHAN),
            Propagation::Foreground => add(&mut fins, FOREGROUND),
            Propagation::Background => {}
        }
        let graceful_pod = res.kind == "Pod"
            && !force
            && old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
        // A terminating namespace the namespace controller has finalized
        // (no `spec.finalizers`, no finalizers) goes now.
        if res.kind == "Namespace" && marked && fins.is_empty() && namespace_finalized(&old) {
            if !req.dry_run {
                self.commit_delete(res, name, key, rev, &old).await?;
            }
            return Ok(ObjectResponse::ok(200, &old));
        }
        let pending = fins.iter().any(|f| f != ORPHAN && f != FOREGROUND) || (!force && marked);
        let must_mark = res.kind == "Namespace" || graceful_pod || !fins.is_empty();
        if !must_mark || (force && res.kind == "Pod" && !pending) {
            if !req.dry_run {
                self.commit_delete(res, name, key, rev, &old).await?;
            }
            return Ok(ObjectResponse::ok(200, &old));
        }
        if marked && fins == meta::finalizers(&old) {
            return Ok(ObjectResponse::ok(202, &old));
        }
        let mut new = old.clone();
        let grace = if graceful_pod {
            opts.grace
                .or_else(|| {
                    old.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30)
        } else {
            0
        };
        if !marked {
            let m = metadata_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(meta::now_plus(grace)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            // As Kubernetes marks an object deleting: a generation moves on.
            if let Some(g) = m
                .get("generation")
                .and_then(Value::as_i64)
                .filter(|g| *g > 0)
            {
                m.insert("generation".into(), json!(g + 1));
            }
        }
        meta::set_finalizers(&mut new, &fins);
        if res.kind == "Namespace" {
            new["status"]["phase"] = json!("Terminating");
        }
        if req.dry_run {
            return Ok(ObjectResponse::ok(202, &new));
        }
        let out = self
            .commit(WriteOp::Put {
                key,
                value: meta::encode(&new),
                expect: Expect::ModRevision(rev),
            })
            .await?
            .map_err(|e| kv_status(res, name, e))?;
        meta::set_resource_version(&mut new, out.revision);
        Ok(ObjectResponse::ok(202, &new))
    }
}

impl ApiServer {
    /// A retried delete of an object that is gone: perhaps an earlier attempt
    /// of this request deleted it. Its delete is sent again under the same id,
    /// with a precondition no stored key meets (so it applies nothing): a
    /// remembered id answers the first attempt's success, with the object it
    /// deleted (or marked); otherwise the answer is `missing` (404).
    async fn deleted_before(
        &self,
        res: &Resource,
        req: &ObjectRequest,
        missing: Status,
    ) -> Outcome<ObjectResponse> {
        if req.dry_run {
            return Err(missing.into());
        }
        let key = res.key(req.namespace.as_deref(), req.name.as_deref());
        match self
            .commit(WriteOp::Delete {
                key,
                expect: Expect::ModRevision(0),
            })
            .await?
        {
            Ok(out) => {
                // The first attempt may have marked the object (gone since, say
                // removed by its kubelet): then answer the mark, as it did.
                let at = ferry_api::proto::Consistency::AtRevision(out.revision);
                let name = req.name.as_deref().unwrap_or_default();
                if let Ok(Some((marked, rev))) = self
                    .read_object(res, req.namespace.as_deref(), name, at)
                    .await
                {
                    if rev == out.revision {
                        return Ok(ObjectResponse::ok(202, &marked));
                    }
                }
                match out.prev.first() {
                    Some(Some(kv)) => Ok(ObjectResponse::ok(200, &meta::decode(kv)?)),
                    _ => Err(missing.into()),
                }
            }
            Err(_) => Err(missing.into()),
        }
    }
}

/// Whether a namespace's `spec.finalizers` are all removed.
fn namespace_finalized(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty())
}

fn add(fins: &mut Vec<String>, f: &str) {
    if !fins.iter().any(|x| x == f) {
        fins.push(f.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_options_parse_and_explain() {
        let o = DeleteOptions::parse(b"").unwrap();
        assert_eq!((o.grace, o.propagation), (None, Propagation::Background));
        let o = DeleteOptions::parse(br#"{"gracePeriodSeconds":0,"propagationPolicy":"Foreground","preconditions":{"uid":"u","resourceVersion":"7"}}"#).unwrap();
        assert_eq!(o.grace, Some(0));
        assert_eq!(o.propagation, Propagation::Foreground);
        assert_eq!((o.uid.as_deref(), o.resource_version), (Some("u"), Some(7)));
        assert_eq!(
            DeleteOptions::parse(br#"{"orphanDependents":true}"#)
                .unwrap()
                .propagation,
            Propagation::Orphan
        );
        let cases: &[(&[u8], &str)] = &[
            (b"{", "not valid JSON"),
            (
                br#"{"propagationPolicy":"Sideways"}"#,
                "Unsupported value: \"Sideways\"",
            ),
            (
                br#"{"gracePeriodSeconds":-1}"#,
                "gracePeriodSeconds: Invalid value: -1",
            ),
            (
                br#"{"preconditions":{"resourceVersion":"x"}}"#,
                "invalid resourceVersion",
            ),
        ];
        for (body, want) in cases {
            let e = DeleteOptions::parse(body).unwrap_err();
            assert!(
                e.message.contains(want),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
    }
}
