//! RBAC evaluation, pure: which rules bind a user, whether they allow a
//! request, and whether one set of rules covers another (escalation checks).
//! Kubernetes' `rbac.RBACAuthorizer` and `validation.Covers`, rebuilt.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One policy rule (`PolicyRule`), with absent lists empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Verbs (`*`: all).
    pub verbs: Vec<String>,
    /// API groups (`""`: core, `*`: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource` or `*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names; empty: every name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource URL paths (`/healthz`, `/api/*`, `*`).
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    fn from_k8s(r: &k8s_openapi::api::rbac::v1::PolicyRule) -> Rule {
        let v = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        Rule {
            verbs: r.verbs.clone(),
            api_groups: v(&r.api_groups),
            resources: v(&r.resources),
            resource_names: v(&r.resource_names),
            non_resource_urls: v(&r.non_resource_urls),
        }
    }

    /// Rules from a stored Role's or ClusterRole's `rules`.
    pub fn list(rules: Option<&Vec<k8s_openapi::api::rbac::v1::PolicyRule>>) -> Vec<Rule> {
        rules.into_iter().flatten().map(Rule::from_k8s).collect()
    }
}

/// What a request asks to do (Kubernetes' `authorizer.Attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// A resource request.
    Resource {
        /// `get`, `list`, `create`, ...
        verb: &'a str,
        /// API group (`""` for core).
        group: &'a str,
        /// Plural resource.
        resource: &'a str,
        /// Subresource, or `""`.
        subresource: &'a str,
        /// Object name, or `""` (create, list).
        name: &'a str,
        /// Namespace, or `""` for cluster-scoped requests and all-namespace lists.
        namespace: &'a str,
    },
    /// A non-resource request (`GET /healthz`).
    NonResource {
        /// Lower-case HTTP verb (`get`, `post`).
        verb: &'a str,
        /// Path.
        path: &'a str,
    },
}

/// Who asks: user name and groups (`system:authenticated` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`alice`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

/// Whether `rule` allows `req` (`RuleAllows`).
pub fn rule_allows(rule: &Rule, req: &Request) -> bool {
    match *req {
        Request::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !has(&rule.verbs, verb) || !has(&rule.api_groups, group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_ok = rule.resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
            });
            resource_ok
                && (rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name))
        }
        Request::NonResource { verb, path } => {
            has(&rule.verbs, verb)
                && rule.non_resource_urls.iter().any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                })
        }
    }
}

/// A binding: where it applies, what role it grants, to whom.
#[derive(Debug, Clone)]
struct Binding {
    /// The RoleBinding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    /// `Role` (in `namespace`) or `ClusterRole`.
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// The four RBAC kinds as one evaluable policy, ClusterRole aggregation
/// resolved. Built afresh whenever the cache changes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_roles: HashMap<String, Vec<Rule>>,
    bindings: Vec<Binding>,
}

/// The stored objects a [`Policy`] is built from.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Roles.
    pub roles: Vec<Role>,
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

impl Policy {
    /// Builds the policy. A ClusterRole with an `aggregationRule` gets the
    /// rules of every ClusterRole its selectors match (transitively, as the
    /// aggregation controller's repeated passes give), its own stored rules
    /// replaced as the controller would.
    pub fn build(o: &Objects) -> Policy {
        let mut p = Policy::default();
        for r in &o.roles {
            let ns = r.metadata.namespace.clone().unwrap_or_default();
            p.roles
                .insert((ns, name_of(&r.metadata)), Rule::list(r.rules.as_ref()));
        }
        let by_name: BTreeMap<String, &ClusterRole> = o
            .cluster_roles
            .iter()
            .map(|c| (name_of(&c.metadata), c))
            .collect();
        for name in by_name.keys() {
            let mut seen = HashSet::new();
            let rules = aggregated(name, &by_name, &mut seen);
            p.cluster_roles.insert(name.clone(), rules);
        }
        for b in &o.role_bindings {
            p.bindings.push(Binding {
                namespace: Some(b.metadata.namespace.clone().unwrap_or_default()),
                role_kind: b.role_ref.kind.clone(),
                role_name: b.role_ref.name.clone(),
                subjects: b.subjects.clone().unwrap_or_default(),
            });
        }
        for b in &o.cluster_role_bindings {
            p.bindings.push(Binding {
                namespace: None,
                role_kind: b.role_ref.kind.clone(),
                role_name: b.role_ref.name.clone(),
                subjects: b.subjects.clone().unwrap_or_default(),
            });
        }
        p
    }

    /// The effective rules of a ClusterRole (aggregation resolved), if it exists.
    pub fn cluster_role(&self, name: &str) -> Option<&[Rule]> {
        self.cluster_roles.get(name).map(Vec::as_slice)
    }

    /// The rules of a Role, if it exists.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&[Rule]> {
        self.roles
            .get(&(namespace.to_string(), name.to_string()))
            .map(Vec::as_slice)
    }

    fn binding_rules(&self, b: &Binding) -> &[Rule] {
        let rules = match (b.role_kind.as_str(), &b.namespace) {
            ("ClusterRole", _) => self.cluster_role(&b.role_name),
            ("Role", Some(ns)) => self.role(ns, &b.role_name),
            _ => None,
        };
        rules.unwrap_or_default()
    }

    /// Every rule that applies to `user` in `namespace` (`""`: cluster-wide
    /// bindings only): its ClusterRoleBindings' and that namespace's RoleBindings'.
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<Rule> {
        let mut out = Vec::new();
        for b in &self.bindings {
            let applies = match &b.namespace {
                None => true,
                Some(ns) => !namespace.is_empty() && ns == namespace,
            };
            if applies && binds(b, user) {
                out.extend_from_slice(self.binding_rules(b));
            }
        }
        out
    }

    /// Whether `user` may make `req`.
    pub fn allows(&self, user: &User, req: &Request) -> bool {
        let namespace = match req {
            Request::Resource { namespace, .. } => *namespace,
            Request::NonResource { .. } => "",
        };
        self.bindings.iter().any(|b| {
            let applies = match &b.namespace {
                None => true,
                Some(ns) => !namespace.is_empty() && ns == namespace,
            };
            applies && binds(b, user) && self.binding_rules(b).iter().any(|r| rule_allows(r, req))
        })
    }
}

/// A ClusterRole's rules: its own, or with an aggregation rule, those of the
/// ClusterRoles it selects (deduplicated, in name order).
fn aggregated(
    name: &str,
    all: &BTreeMap<String, &ClusterRole>,
    seen: &mut HashSet<String>,
) -> Vec<Rule> {
    let Some(role) = all.get(name) else {
        return Vec::new();
    };
    if !seen.insert(name.to_string()) {
        return Vec::new();
    }
    let Some(agg) = &role.aggregation_rule else {
        return Rule::list(role.rules.as_ref());
    };
    let selectors = agg.cluster_role_selectors.as_deref().unwrap_or_default();
    let mut out: Vec<Rule> = Vec::new();
    for (other, c) in all {
        if other == name {
            continue;
        }
        let labels = c.metadata.labels.as_ref();
        if selectors.iter().any(|s| selects(s, labels)) {
            for r in aggregated(other, all, seen) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

fn selects(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    // An empty selector selects nothing here (Kubernetes' aggregation
    // controller treats a selector with no requirements as matching nothing).
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    !empty && crate::apiserver::admission::selector_matches(sel, labels)
}

/// Whether a binding's subjects name `user` (`appliesTo`).
fn binds(b: &Binding, user: &User) -> bool {
    b.subjects.iter().any(|s| match s.kind.as_str() {
        "User" => s.name == user.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = match s.namespace.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => n,
                None => b.namespace.as_deref().unwrap_or_default(),
            };
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    })
}

/// Whether `owner`'s rules cover every permission `servant` grants
/// (`validation.Covers`): each of the servant's rules, broken into one verb,
/// group, resource and name (or URL) at a time, is allowed by some owner rule,
/// where a servant's `*` is covered only by an owner's `*`. Answers the rules
/// not covered (empty when covered).
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for s in servant {
        for atom in atoms(s) {
            if !owner.iter().any(|o| covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    missing
}

/// A rule split into rules of one verb, group, resource and name, or one verb and URL.
fn atoms(r: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for v in &r.verbs {
        for u in &r.non_resource_urls {
            out.push(Rule {
                verbs: one(v),
                non_resource_urls: one(u),
                ..Rule::default()
            });
        }
        for g in &r.api_groups {
            for res in &r.resources {
                if r.resource_names.is_empty() {
                    out.push(Rule {
                        verbs: one(v),
                        api_groups: one(g),
                        resources: one(res),
                        ..Rule::default()
                    });
                }
                for n in &r.resource_names {
                    out.push(Rule {
                        verbs: one(v),
                        api_groups: one(g),
                        resources: one(res),
                        resource_names: one(n),
                        ..Rule::default()
                    });
                }
            }
        }
    }
    out
}

/// Whether owner rule `o` covers the single-valued rule `a`.
fn covers(o: &Rule, a: &Rule) -> bool {
    let verb = &a.verbs[0];
    if !has(&o.verbs, verb) {
        return false;
    }
    if let Some(url) = a.non_resource_urls.first() {
        return o.non_resource_urls.iter().any(|u| {
            u == "*"
                || u == url
                || u.strip_suffix('*').is_some_and(|p| {
                    url.starts_with(p) && (!url.ends_with('*') || url.len() >= u.len())
                })
        });
    }
    let (group, res) = (&a.api_groups[0], &a.resources[0]);
    if !has(&o.api_groups, group) {
        return false;
    }
    let res_ok = o.resources.iter().any(|r| {
        r == "*"
            || r == res
            || (r.starts_with("*/") && res.split_once('/').is_some_and(|(_, sub)| r[2..] == *sub))
    });
    res_ok
        && (o.resource_names.is_empty()
            || a.resource_names
                .first()
                .is_some_and(|n| o.resource_names.contains(n)))
}

#[cfg(test)]
mod tests;
