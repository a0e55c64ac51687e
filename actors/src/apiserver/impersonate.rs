//! Impersonation (`kubectl --as=U --as-group=G`): the `Impersonate-User`,
//! `Impersonate-Group` (repeatable), `Impersonate-Uid` and
//! `Impersonate-Extra-<key>` headers. The requester needs `impersonate` on
//! each thing named — `users`, `groups`, `serviceaccounts` (core) and
//! `uids`, `userextras/<key>` (authentication.k8s.io), as Kubernetes checks —
//! and the request then runs as the impersonated user.
//!
//! The uid and extra ride on in the [`Identity`], so a `SelfSubjectReview`
//! (`kubectl auth whoami --as U --as-uid X`) reports them.

use super::rbac::eval::Request;
use super::{rbac, ApiServer};
use ferry_api::object::Status;
use ferry_api::tls::Identity;
use std::collections::BTreeMap;

/// What the headers ask to act as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Impersonation {
    /// `Impersonate-User`.
    pub user: String,
    /// `Impersonate-Group`, in order.
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub uid: Option<String>,
    /// `Impersonate-Extra-<key>` (key unescaped and lower-cased).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// One `impersonate` permission the requester needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// API group.
    pub group: &'static str,
    /// Resource.
    pub resource: &'static str,
    /// Subresource (an extra's key).
    pub subresource: String,
    /// Namespace (a service account's).
    pub namespace: String,
    /// Name.
    pub name: String,
}

const AUTHN: &str = "authentication.k8s.io";

/// Percent-decodes an extra's key (`Impersonate-Extra-` keys are escaped so
/// any key fits a header name).
fn unescape(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Impersonation {
    /// Reads the impersonation headers from `(name, value)` pairs (names in
    /// any case). `Ok(None)`: none given. `Err`: groups, uid or extra asked
    /// without a user, as Kubernetes refuses.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Impersonation>, Status> {
        let mut imp = Impersonation::default();
        let (mut any, mut has_user) = (false, false);
        let mut asked = Vec::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if lower == "impersonate-user" {
                imp.user = value.to_string();
                has_user = true;
            } else if lower == "impersonate-group" {
                imp.groups.push(value.to_string());
                asked.push(format!("group {value:?}"));
            } else if lower == "impersonate-uid" {
                imp.uid = Some(value.to_string());
                asked.push(format!("uid {value:?}"));
            } else if let Some(key) = lower.strip_prefix("impersonate-extra-") {
                imp.extra
                    .entry(unescape(key).to_lowercase())
                    .or_default()
                    .push(value.to_string());
                asked.push(format!("extra {key:?}"));
            } else {
                continue;
            }
            any = true;
        }
        if !any {
            return Ok(None);
        }
        if !has_user || imp.user.is_empty() {
            return Err(Status::internal(format!(
                "requested [{}] without impersonating a user",
                asked.join(" ")
            )));
        }
        Ok(Some(imp))
    }

    /// The `impersonate` permissions needed, in Kubernetes' order: the user
    /// (or service account), each group, each extra value, the uid.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let check = |group, resource, namespace: &str, name: &str, sub: &str| Check {
            group,
            resource,
            subresource: sub.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match service_account(&self.user) {
            Some((ns, sa)) => out.push(check("", "serviceaccounts", ns, sa, "")),
            None => out.push(check("", "users", "", &self.user, "")),
        }
        for g in &self.groups {
            out.push(check("", "groups", "", g, ""));
        }
        for (k, values) in &self.extra {
            for v in values {
                out.push(check(AUTHN, "userextras", "", v, k));
            }
        }
        if let Some(uid) = &self.uid {
            out.push(check(AUTHN, "uids", "", uid, ""));
        }
        out
    }

    /// The identity the request runs as: the user and groups (a service
    /// account given no groups gets its fixed ones), plus
    /// `system:authenticated` unless a group says (un)authenticated — or
    /// `system:unauthenticated` for `system:anonymous`. A `system:node:<n>`
    /// user in group `system:nodes` is node `n`, as the node authorizer sees.
    pub fn identity(&self) -> Identity {
        let mut groups = self.groups.clone();
        if groups.is_empty() {
            if let Some((ns, _)) = service_account(&self.user) {
                groups = vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                ];
            }
        }
        if self.user == "system:anonymous" {
            if !groups.iter().any(|g| g == "system:unauthenticated") {
                groups.push("system:unauthenticated".into());
            }
        } else if !groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
        {
            groups.push("system:authenticated".into());
        }
        if let Some(node) = self.user.strip_prefix("system:node:") {
            if !node.is_empty() && groups.iter().any(|g| g == "system:nodes") {
                return Identity::Node(node.to_string());
            }
        }
        Identity::User {
            name: self.user.clone(),
            groups,
            uid: self.uid.clone().unwrap_or_default(),
            extra: self.extra.clone(),
        }
    }
}

/// `system:serviceaccount:<ns>:<name>` split, if the user is one.
fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Kubernetes' refusal of one impersonation.
fn refused(who: &Identity, c: &Check) -> Status {
    let user = rbac::user_of(who).name;
    let resource = if c.subresource.is_empty() {
        c.resource.to_string()
    } else {
        format!("{}/{}", c.resource, c.subresource)
    };
    let qualified = if c.group.is_empty() {
        c.resource.to_string()
    } else {
        format!("{}.{}", c.resource, c.group)
    };
    let scope = if c.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", c.namespace)
    };
    Status::forbidden(format!(
        "{qualified} {:?} is forbidden: User {user:?} cannot impersonate resource {resource:?} \
         in API group {:?} {scope}",
        c.name, c.group
    ))
}

impl ApiServer {
    /// The identity `who` acts as under `imp`, if every impersonation is
    /// allowed: admins and masters may impersonate anyone, nodes no one,
    /// users and service accounts as RBAC grants `impersonate`.
    pub fn impersonate(&self, who: &Identity, imp: &Impersonation) -> Result<Identity, Status> {
        let policy = self.rbac.policy();
        for c in imp.checks() {
            let allowed = match who {
                Identity::Admin | Identity::Master(_) => true,
                Identity::Node(_) => false,
                Identity::User { .. } => policy.as_deref().is_some_and(|p| {
                    p.allows(
                        &rbac::user_of(who),
                        &Request::Resource {
                            verb: "impersonate",
                            group: c.group,
                            resource: c.resource,
                            subresource: &c.subresource,
                            name: &c.name,
                            namespace: &c.namespace,
                        },
                    )
                }),
            };
            if !allowed {
                return Err(refused(who, &c));
            }
        }
        Ok(imp.identity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(h: &[(&str, &str)]) -> Result<Option<Impersonation>, Status> {
        Impersonation::from_headers(h.iter().copied())
    }

    #[test]
    fn headers_parse_as_kubernetes_reads_them() {
        assert_eq!(parse(&[("Accept", "x")]).unwrap(), None);
        let imp = parse(&[
            ("impersonate-user", "bob"),
            ("Impersonate-Group", "dev"),
            ("impersonate-group", "ops"),
            ("Impersonate-Uid", "1234"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-extra-scopes", "edit"),
            ("impersonate-extra-acme.com%2fProject", "p1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(imp.user, "bob");
        assert_eq!(imp.groups, ["dev", "ops"]);
        assert_eq!(imp.uid.as_deref(), Some("1234"));
        assert_eq!(imp.extra["scopes"], ["view", "edit"]);
        assert_eq!(imp.extra["acme.com/project"], ["p1"]);
        // Groups, uid or extra without a user are refused.
        for h in [
            vec![("impersonate-group", "dev")],
            vec![("impersonate-uid", "1")],
            vec![("impersonate-extra-x", "y")],
            vec![("impersonate-user", ""), ("impersonate-group", "dev")],
        ] {
            let s = parse(&h).expect_err("no user");
            assert_eq!(s.code, 500);
            assert!(
                s.message.ends_with("without impersonating a user"),
                "{}",
                s.message
            );
        }
    }

    #[test]
    fn checks_name_each_impersonated_thing() {
        let imp = parse(&[
            ("impersonate-user", "system:serviceaccount:team:robot"),
            ("impersonate-group", "dev"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-uid", "42"),
        ])
        .unwrap()
        .unwrap();
        let got: Vec<(&str, &str, &str, &str, &str)> = imp
            .checks()
            .iter()
            .map(|c| {
                // Leak for the table: short-lived test strings.
                let l = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
                (
                    c.group,
                    c.resource,
                    l(&c.subresource),
                    l(&c.namespace),
                    l(&c.name),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("", "serviceaccounts", "", "team", "robot"),
                ("", "groups", "", "", "dev"),
                (AUTHN, "userextras", "scopes", "", "view"),
                (AUTHN, "uids", "", "", "42"),
            ]
        );
        let user = parse(&[("impersonate-user", "bob")]).unwrap().unwrap();
        assert_eq!(user.checks()[0].resource, "users");
        assert_eq!(user.checks()[0].name, "bob");
    }

    #[test]
    fn the_impersonated_identity_gets_kubernetes_groups() {
        let id = |h: &[(&str, &str)]| parse(h).unwrap().unwrap().identity();
        let user = |name: &str, groups: &[&str]| Identity::User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: String::new(),
            extra: Default::default(),
        };
        let table: Vec<(Vec<(&str, &str)>, Identity)> = vec![
            (
                vec![("impersonate-user", "bob")],
                user("bob", &["system:authenticated"]),
            ),
            (
                vec![("impersonate-user", "bob"), ("impersonate-group", "dev")],
                user("bob", &["dev", "system:authenticated"]),
            ),
            (
                vec![
                    ("impersonate-user", "bob"),
                    ("impersonate-group", "system:unauthenticated"),
                ],
                user("bob", &["system:unauthenticated"]),
            ),
            (
                vec![("impersonate-user", "system:anonymous")],
                user("system:anonymous", &["system:unauthenticated"]),
            ),
            (
                vec![("impersonate-user", "system:serviceaccount:team:robot")],
                user(
                    "system:serviceaccount:team:robot",
                    &[
                        "system:serviceaccounts",
                        "system:serviceaccounts:team",
                        "system:authenticated",
                    ],
                ),
            ),
            (
                vec![
                    ("impersonate-user", "system:serviceaccount:team:robot"),
                    ("impersonate-group", "g"),
                ],
                user(
                    "system:serviceaccount:team:robot",
                    &["g", "system:authenticated"],
                ),
            ),
            (
                vec![
                    ("impersonate-user", "system:node:n1"),
                    ("impersonate-group", "system:nodes"),
                ],
                Identity::Node("n1".into()),
            ),
            // Without the nodes group it is a plain user.
            (
                vec![("impersonate-user", "system:node:n1")],
                user("system:node:n1", &["system:authenticated"]),
            ),
        ];
        for (h, want) in table {
            assert_eq!(id(&h), want, "{h:?}");
        }
    }

    #[test]
    fn refusals_use_kubernetes_wording() {
        let alice = Identity::User {
            name: "alice".into(),
            groups: vec![],
            uid: String::new(),
            extra: Default::default(),
        };
        let imp = parse(&[
            ("impersonate-user", "system:serviceaccount:team:robot"),
            ("impersonate-uid", "42"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-group", "dev"),
        ])
        .unwrap()
        .unwrap();
        let msgs: Vec<String> = imp
            .checks()
            .iter()
            .map(|c| refused(&alice, c).message)
            .collect();
        assert_eq!(
            msgs,
            [
                "serviceaccounts \"robot\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"team\"",
                "groups \"dev\" is forbidden: User \"alice\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope",
                "userextras.authentication.k8s.io \"view\" is forbidden: User \"alice\" cannot impersonate resource \"userextras/scopes\" in API group \"authentication.k8s.io\" at the cluster scope",
                "uids.authentication.k8s.io \"42\" is forbidden: User \"alice\" cannot impersonate resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope",
            ]
        );
        assert_eq!(refused(&alice, &imp.checks()[0]).code, 403);
    }
}
