//! The access review kinds: create-only, never stored, answered with their
//! `status` filled in — `SelfSubjectAccessReview`, `SubjectAccessReview`,
//! `LocalSubjectAccessReview`, `SelfSubjectRulesReview`
//! (authorization.k8s.io/v1) and `SelfSubjectReview` (authentication.k8s.io/v1),
//! what `kubectl auth can-i [--list]` and `kubectl auth whoami` send; and
//! `TokenReview` (authentication.k8s.io/v1, answered in [`crate::apiserver::tokens`]).

use super::eval::{Request, Rule, User};
use super::{user_of, REQUESTER};
use crate::apiserver::nodegraph::RefKind;
use crate::apiserver::{authorize, ApiServer, Outcome};
use ferry_api::object::{ObjectRequest, ObjectResponse, PatchType, Status, Verb};
use ferry_api::resources::{Resource, RESOURCES};
use ferry_api::tls::Identity;
use serde_json::{json, Value};

/// The review kinds.
pub const KINDS: &[&str] = &[
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SelfSubjectReview",
    "TokenReview",
];

/// Whether `res` is a review kind (served by [`ApiServer::review`], never stored).
pub fn is_review(res: &Resource) -> bool {
    KINDS.contains(&res.kind)
}

impl ApiServer {
    /// Answers a review: the request's body with `status` filled in (201).
    pub(crate) async fn review(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        if req.verb != Verb::Create || req.subresource.is_some() || req.name.is_some() {
            return Err(Status::not_allowed(format!(
                "{} only takes create",
                crate::apiserver::meta::qualified_resource(res)
            ))
            .into());
        }
        let who = REQUESTER.try_with(Clone::clone).unwrap_or(Identity::Admin);
        let mut body: Value = if req.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&req.body).map_err(|e| {
                Status::bad_request(format!("the body of the request is not valid JSON: {e}"))
            })?
        };
        if !body.is_object() {
            return Err(Status::bad_request("the body of the request is not an object").into());
        }
        body["apiVersion"] = json!(res.api_version());
        body["kind"] = json!(res.kind);
        if body.get("metadata").is_none_or(|m| !m.is_object()) {
            body["metadata"] = json!({});
        }
        body["metadata"]["creationTimestamp"] = Value::Null;
        let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        let status = match res.kind {
            "TokenReview" => self.token_review(&spec).await?,
            "SelfSubjectReview" => {
                let u = user_of(&who);
                let mut info = json!({"username": u.name, "groups": u.groups});
                if let Identity::User { uid, extra, .. } = &who {
                    if !uid.is_empty() {
                        info["uid"] = json!(uid);
                    }
                    if !extra.is_empty() {
                        info["extra"] = json!(extra);
                    }
                }
                json!({"userInfo": info})
            }
            "SelfSubjectRulesReview" => {
                let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
                self.rules_review(&who, ns)
            }
            "SelfSubjectAccessReview" => {
                let allowed = self.can(&who, None, &spec, None)?;
                access_status(allowed)
            }
            _ => {
                // SubjectAccessReview / LocalSubjectAccessReview: about another user.
                let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
                let groups: Vec<String> = spec
                    .get("groups")
                    .and_then(|g| serde_json::from_value(g.clone()).ok())
                    .unwrap_or_default();
                if user.is_empty() && groups.is_empty() {
                    return Err(Status::invalid(
                        &crate::apiserver::meta::qualified_kind(res),
                        "",
                        vec![ferry_api::object::StatusCause {
                            reason: "FieldValueRequired".into(),
                            message:
                                "Required value: at least one of user or group must be specified"
                                    .into(),
                            field: "spec.user".into(),
                        }],
                    )
                    .into());
                }
                let subject = User {
                    name: user.to_string(),
                    groups,
                };
                let local_ns = res.namespaced.then(|| req.namespace.clone()).flatten();
                let allowed = self.can(&who, Some(&subject), &spec, local_ns.as_deref())?;
                access_status(allowed)
            }
        };
        body["status"] = status;
        if res.namespaced {
            body["metadata"]["namespace"] = json!(req.namespace);
        }
        Ok(ObjectResponse::ok(201, &body))
    }

    /// Whether the requester (or `subject`, for a SubjectAccessReview) may do
    /// what `spec`'s resource or non-resource attributes describe.
    fn can(
        &self,
        who: &Identity,
        subject: Option<&User>,
        spec: &Value,
        namespace: Option<&str>,
    ) -> Outcome<bool> {
        let policy = self.rbac.policy().unwrap_or_default();
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(n) = spec.get("nonResourceAttributes") {
            let (verb, path) = (s(n, "verb"), s(n, "path"));
            let req = Request::NonResource {
                verb: &verb,
                path: &path,
            };
            return Ok(match subject {
                Some(u) => policy.allows(u, &req),
                None => match who {
                    Identity::Admin | Identity::Master(_) => true,
                    Identity::Node(_) => false,
                    Identity::User { .. } => policy.allows(&user_of(who), &req),
                },
            });
        }
        let Some(a) = spec.get("resourceAttributes") else {
            return Err(Status::bad_request(
                "spec: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
            .into());
        };
        let (verb, group, resource, sub, name) = (
            s(a, "verb"),
            s(a, "group"),
            s(a, "resource"),
            s(a, "subresource"),
            s(a, "name"),
        );
        let ns = match namespace {
            Some(n) => n.to_string(),
            None => s(a, "namespace"),
        };
        let req = Request::Resource {
            verb: &verb,
            group: &group,
            resource: &resource,
            subresource: &sub,
            name: &name,
            namespace: &ns,
        };
        if let Some(u) = subject {
            return Ok(policy.allows(u, &req));
        }
        Ok(match who {
            Identity::Admin | Identity::Master(_) => true,
            Identity::User { .. } => policy.allows(&user_of(who), &req),
            Identity::Node(_) => {
                // The node authorizer decides, for the kinds ferry serves.
                let Some(res) = RESOURCES
                    .iter()
                    .find(|r| r.plural == resource && r.group == group)
                else {
                    return Ok(false);
                };
                let verb = match verb.as_str() {
                    "get" => Verb::Get,
                    "list" => Verb::List,
                    "watch" => Verb::Watch,
                    "create" => Verb::Create,
                    "update" => Verb::Update,
                    "patch" => Verb::Patch(PatchType::Merge),
                    "delete" => Verb::Delete,
                    _ => return Ok(false),
                };
                let mut q = ObjectRequest::new(
                    verb,
                    res.plural,
                    (!ns.is_empty()).then_some(ns.as_str()),
                    (!name.is_empty()).then_some(name.as_str()),
                );
                q.subresource = (!sub.is_empty()).then(|| sub.clone());
                let allowed = authorize(who, res, &q, None).is_ok();
                match (who, RefKind::of(res)) {
                    // The node graph, as this master's index has it.
                    (Identity::Node(n), Some(kind)) => {
                        allowed
                            && sub.is_empty()
                            && !ns.is_empty()
                            && !name.is_empty()
                            && self.node_graph.readable(n, kind, &ns, &name)
                    }
                    // Only its pods' tokens.
                    (Identity::Node(_), None) if res.kind == "ServiceAccount" => sub == "token",
                    _ => allowed,
                }
            }
        })
    }

    /// A SelfSubjectRulesReview's status: the requester's rules in `namespace`.
    fn rules_review(&self, who: &Identity, namespace: &str) -> Value {
        let rules: Vec<Rule> = match who {
            Identity::Admin | Identity::Master(_) => vec![
                Rule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Rule::default()
                },
                Rule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Rule::default()
                },
            ],
            _ => self
                .rbac
                .policy()
                .unwrap_or_default()
                .rules_for(&user_of(who), namespace),
        };
        let (urls, resources): (Vec<&Rule>, Vec<&Rule>) =
            rules.iter().partition(|r| !r.non_resource_urls.is_empty());
        let resource_rules: Vec<Value> = resources
            .iter()
            .map(|r| {
                let mut v =
                    json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
                if !r.resource_names.is_empty() {
                    v["resourceNames"] = json!(r.resource_names);
                }
                v
            })
            .collect();
        let url_rules: Vec<Value> = urls
            .iter()
            .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
            .collect();
        json!({
            "resourceRules": resource_rules,
            "nonResourceRules": url_rules,
            "incomplete": false,
        })
    }
}

fn access_status(allowed: bool) -> Value {
    json!({ "allowed": allowed })
}
