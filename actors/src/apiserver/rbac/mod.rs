//! RBAC: the authorizer for users and service accounts.
//!
//! Each master keeps the four RBAC kinds in memory ([`Rbac`]), listed then
//! watched from its own applied state ([`run`]), and evaluates requests
//! against a [`Policy`] rebuilt on every change — no store read per request.
//! Layout: [`eval`] (the pure evaluation: rule matching, aggregation,
//! coverage for escalation checks), [`defaults`] (the default roles and
//! bindings made at cluster start), [`review`] (the access review kinds).

pub mod defaults;
pub mod eval;
pub mod review;

use super::{ApiServer, Outcome};
use eval::{Objects, Policy, Request, Rule, User};
use ferry_api::object::{ObjectRequest, Status};
use ferry_api::resources::Resource;
use ferry_api::tls::Identity;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// The store prefixes of the four kinds, in [`Objects`] order.
const PREFIXES: [&str; 4] = [
    "/registry/roles/",
    "/registry/clusterroles/",
    "/registry/rolebindings/",
    "/registry/clusterrolebindings/",
];

/// This master's RBAC cache: cheap to clone, shared by the pipeline.
#[derive(Clone, Default)]
pub struct Rbac {
    inner: Arc<RwLock<Cache>>,
}

#[derive(Default)]
struct Cache {
    /// Each kind's stored objects by key, in [`PREFIXES`] order.
    kinds: [BTreeMap<String, Value>; 4],
    synced: [bool; 4],
    policy: Option<Arc<Policy>>,
}

impl Cache {
    fn rebuild(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        fn parse<T: serde::de::DeserializeOwned>(m: &BTreeMap<String, Value>) -> Vec<T> {
            m.values()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        }
        let o = Objects {
            roles: parse(&self.kinds[0]),
            cluster_roles: parse(&self.kinds[1]),
            role_bindings: parse(&self.kinds[2]),
            cluster_role_bindings: parse(&self.kinds[3]),
        };
        self.policy = Some(Arc::new(Policy::build(&o)));
    }
}

impl Rbac {
    /// The current policy; `None` until every kind has been listed once.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.inner.read().ok()?.policy.clone()
    }

    /// The stored ClusterRoles that have an aggregation rule.
    fn aggregated_roles(&self) -> Vec<Value> {
        let Ok(c) = self.inner.read() else {
            return Vec::new();
        };
        c.kinds[1]
            .values()
            .filter(|v| v.get("aggregationRule").is_some_and(|a| !a.is_null()))
            .cloned()
            .collect()
    }

    fn replace(&self, kind: usize, objects: BTreeMap<String, Value>) {
        if let Ok(mut c) = self.inner.write() {
            c.kinds[kind] = objects;
            c.synced[kind] = true;
            c.rebuild();
        }
    }

    fn apply(&self, kind: usize, changes: Vec<(String, Option<Value>)>) {
        if let Ok(mut c) = self.inner.write() {
            for (k, v) in changes {
                match v {
                    Some(v) => c.kinds[kind].insert(k, v),
                    None => c.kinds[kind].remove(&k),
                };
            }
            c.rebuild();
        }
    }
}

/// Keeps `api`'s RBAC cache current: each kind listed from this master's
/// applied state, then watched from that revision; a broken watch re-lists.
/// Runs on every master until its actor stops.
pub async fn run(api: ApiServer) {
    let follow = |kind: usize| {
        let api = api.clone();
        async move {
            loop {
                if let Err(e) = follow(&api, kind).await {
                    tracing::debug!(prefix = PREFIXES[kind], "RBAC cache re-lists: {e}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    tokio::join!(follow(0), follow(1), follow(2), follow(3), aggregate(&api));
}

/// The ClusterRole aggregation controller: while this master leads, every
/// ClusterRole with an `aggregationRule` gets its computed rules written into
/// `rules` (what `kubectl get clusterrole admin -o yaml` shows; the
/// authorizer computes them itself and does not wait for this).
async fn aggregate(api: &ApiServer) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !api.store().is_leader() {
            continue;
        }
        let Some(policy) = api.rbac.policy() else {
            continue;
        };
        for mut role in api.rbac.aggregated_roles() {
            let name = super::meta::name(&role).unwrap_or_default().to_string();
            let Some(want) = policy.cluster_role(&name) else {
                continue;
            };
            let stored: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>> = role
                .get("rules")
                .and_then(|r| serde_json::from_value(r.clone()).ok());
            if Rule::list(stored.as_ref()) == want {
                continue;
            }
            role["rules"] = serde_json::to_value(want).unwrap_or_default();
            let mut r = ObjectRequest::new(
                ferry_api::object::Verb::Update,
                "clusterroles",
                None,
                Some(&name),
            );
            r.body = serde_json::to_vec(&role).unwrap_or_default();
            // The stored resourceVersion is the precondition: a stale cache conflicts.
            if let Err(e) = api.handle(&Identity::Admin, &r).await {
                tracing::debug!(role = %name, "aggregating a ClusterRole failed: {e}");
            }
        }
    }
}

async fn follow(api: &ApiServer, kind: usize) -> Result<(), String> {
    super::mirror::follow(
        api,
        PREFIXES[kind],
        |objects| api.rbac.replace(kind, objects.into_iter().collect()),
        |changes| api.rbac.apply(kind, changes),
    )
    .await
}

/// The user RBAC sees for an identity: a certificate's user with its groups
/// and `system:authenticated` (the anonymous user keeps its own group).
pub fn user_of(who: &Identity) -> User {
    let (name, mut groups) = match who {
        Identity::User { name, groups, .. } => (name.clone(), groups.clone()),
        Identity::Admin => ("admin".to_string(), vec!["system:masters".to_string()]),
        Identity::Master(id) => (format!("system:master:{id}"), vec!["system:masters".into()]),
        Identity::Node(n) => (format!("system:node:{n}"), vec!["system:nodes".into()]),
    };
    let anonymous = name == "system:anonymous";
    if !anonymous && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    User { name, groups }
}

/// The RBAC attributes of an object request.
pub fn request_of<'a>(res: &'a Resource, req: &'a ObjectRequest) -> Request<'a> {
    Request::Resource {
        verb: req.verb.as_str(),
        group: res.group,
        resource: res.plural,
        subresource: req.subresource.as_deref().unwrap_or_default(),
        name: req.name.as_deref().unwrap_or_default(),
        namespace: req.namespace.as_deref().unwrap_or_default(),
    }
}

tokio::task_local! {
    /// The caller of the request being served (for the escalation check,
    /// which runs after admission has the object).
    static REQUESTER: Identity;
}

/// The caller of the request being served, if inside [`as_requester`].
pub fn requester() -> Option<Identity> {
    REQUESTER.try_with(Clone::clone).ok()
}

/// Runs `f` with `who` as the requester the escalation check sees.
pub async fn as_requester<F: std::future::Future>(who: Identity, f: F) -> F::Output {
    REQUESTER.scope(who, f).await
}

impl ApiServer {
    /// Escalation prevention, after admission: a user may create or update a
    /// Role or ClusterRole only with every permission it grants (or
    /// `escalate` on it), and a binding only to a role whose permissions it
    /// holds (or `bind` on that role). Admins, masters and nodes are not checked.
    pub(super) fn check_escalation(&self, res: &Resource, obj: &Value) -> Outcome<()> {
        if res.group != GROUP {
            return Ok(());
        }
        let Ok(Identity::User { .. }) = REQUESTER.try_with(Clone::clone) else {
            return Ok(());
        };
        let who = REQUESTER.with(Clone::clone);
        let user = user_of(&who);
        let policy = self.rbac.policy().unwrap_or_default();
        let name = super::meta::name(obj).unwrap_or_default();
        let ns = super::meta::meta_str(obj, "namespace").unwrap_or_default();
        let ns = if res.namespaced { ns } else { "" };
        let allowed = |verb: &str, resource: &str, role: &str, namespace: &str| {
            policy.allows(
                &user,
                &Request::Resource {
                    verb,
                    group: GROUP,
                    resource,
                    subresource: "",
                    name: role,
                    namespace,
                },
            )
        };
        let granted: Vec<Rule> = match res.kind {
            "Role" | "ClusterRole" => {
                if allowed("escalate", res.plural, name, ns) {
                    return Ok(());
                }
                let rules: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>> = obj
                    .get("rules")
                    .and_then(|r| serde_json::from_value(r.clone()).ok());
                // An aggregation rule can gather anything: it takes full authority.
                if obj.get("aggregationRule").is_some_and(|a| !a.is_null())
                    && !eval::uncovered(&policy.rules_for(&user, ""), &full_authority()).is_empty()
                {
                    return Err(Status::forbidden(format!(
                        "{} {name:?} is forbidden: must have cluster-admin privileges to use \
                         the aggregationRule",
                        super::meta::qualified_resource(res)
                    ))
                    .into());
                }
                Rule::list(rules.as_ref())
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let kind = obj.pointer("/roleRef/kind").and_then(Value::as_str);
                let role = obj
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (plural, rules) = match kind {
                    Some("Role") => ("roles", policy.role(ns, role)),
                    _ => ("clusterroles", policy.cluster_role(role)),
                };
                if allowed("bind", plural, role, ns) {
                    return Ok(());
                }
                match rules {
                    Some(r) => r.to_vec(),
                    None => {
                        return Err(Status::forbidden(format!(
                            "{} {name:?} is forbidden: user {:?} (groups={}) is attempting to \
                             grant RBAC permissions not currently held: {plural} {role:?} not found",
                            super::meta::qualified_resource(res),
                            user.name,
                            go_list(&user.groups)
                        ))
                        .into())
                    }
                }
            }
            _ => return Ok(()),
        };
        let missing = eval::uncovered(&policy.rules_for(&user, ns), &granted);
        if missing.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = missing.iter().map(show_rule).collect();
        Err(Status::forbidden(format!(
            "{} {name:?} is forbidden: user {:?} (groups={}) is attempting to grant RBAC \
             permissions not currently held:\n{}",
            super::meta::qualified_resource(res),
            user.name,
            go_list(&user.groups),
            lines.join("\n")
        ))
        .into())
    }
}

/// `*` on everything: what an aggregation rule may gather.
fn full_authority() -> Vec<Rule> {
    let all = || vec!["*".to_string()];
    vec![
        Rule {
            verbs: all(),
            api_groups: all(),
            resources: all(),
            ..Rule::default()
        },
        Rule {
            verbs: all(),
            non_resource_urls: all(),
            ..Rule::default()
        },
    ]
}

/// A Go `%q` of a string slice: `["a" "b"]`.
fn go_list(l: &[String]) -> String {
    let q: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(" "))
}

/// A rule as Kubernetes' escalation message prints it (`PolicyRule.CompactString`).
fn show_rule(r: &Rule) -> String {
    let mut parts = Vec::new();
    let field = |name: &str, l: &[String]| format!("{name}:{}", go_list(l));
    if !r.api_groups.is_empty() {
        parts.push(field("APIGroups", &r.api_groups));
    }
    if !r.resources.is_empty() {
        parts.push(field("Resources", &r.resources));
    }
    if !r.resource_names.is_empty() {
        parts.push(field("ResourceNames", &r.resource_names));
    }
    if !r.non_resource_urls.is_empty() {
        parts.push(field("NonResourceURLs", &r.non_resource_urls));
    }
    parts.push(field("Verbs", &r.verbs));
    format!("{{{}}}", parts.join(", "))
}
