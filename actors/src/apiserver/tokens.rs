//! Service-account tokens: the cluster's signing key (made once by the
//! leader, kept in the store under [`KEY`] so every master verifies), the
//! `serviceaccounts/token` subresource (TokenRequest) and bearer-token
//! authentication (the token's ServiceAccount, and its pod for a bound
//! token, must still exist with the uids it names).

use super::{ApiServer, Outcome};
use ferry_api::kv::{Expect, Write, WriteOp};
use ferry_api::object::{ObjectRequest, ObjectResponse, Status, StatusCause};
use ferry_api::proto::Consistency;
use ferry_api::resources::{self, Resource};
use ferry_api::satoken::{self, Claims, Ref, ISSUER};
use ferry_api::tls::Identity;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The store key of the service-account signing key (PKCS#8 DER).
pub const KEY: &str = "/ferry/serviceaccount-key";

/// A TokenRequest's lifetime when it names none (Kubernetes' default).
const DEFAULT_SECONDS: i64 = 3600;

/// What a reviewed token proves.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// The service account's user and groups.
    pub identity: Identity,
    /// The ServiceAccount's uid.
    pub uid: String,
    /// A bound token's pod (`authentication.kubernetes.io/pod-name`, `pod-uid`).
    pub extra: BTreeMap<String, Vec<String>>,
    /// The audiences asked for that the token carries.
    pub audiences: Vec<String>,
}

fn kind(plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .expect("served kind")
}

fn now() -> i64 {
    ferry_api::clock::now().as_second()
}

impl ApiServer {
    /// The signing key, read from this master's applied state once and kept.
    async fn sa_key(&self) -> Option<Arc<Vec<u8>>> {
        if let Some(k) = self.sa_key.get() {
            return Some(k.clone());
        }
        let (kv, _) = self.store.get(KEY, Consistency::Local).await.ok()?;
        let k = Arc::new(kv?.value);
        Some(self.sa_key.get_or_init(|| k).clone())
    }

    /// Makes the signing key if the cluster has none (run by the leader).
    pub async fn ensure_sa_key(&self) -> bool {
        match self.store.get(KEY, Consistency::Linearizable).await {
            Ok((Some(_), _)) => return true,
            Ok((None, _)) => {}
            Err(_) => return false,
        }
        let Ok(key) = satoken::generate_key() else {
            return false;
        };
        let w = Write::Op(WriteOp::Put {
            key: KEY.into(),
            value: key,
            expect: Expect::Absent,
        });
        // Ok, or taken by another leader meanwhile: either way there is one.
        self.store.write(w).await.is_ok()
    }

    /// The identity a bearer token proves: its ServiceAccount's user, with
    /// the groups Kubernetes gives service accounts. Err: why it is refused.
    pub async fn authenticate_token(&self, token: &str) -> Result<Identity, String> {
        self.review_token(token, &[ISSUER.to_string()])
            .await
            .map(|t| t.identity)
    }

    /// Verifies a service-account token for one of `audiences`: signature,
    /// times, issuer, and that its ServiceAccount (and a bound token's pod)
    /// still exist with the uids it names. Err: why it is refused.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Reviewed, String> {
        let key = self.sa_key().await.ok_or("no service-account key yet")?;
        let claims = satoken::verify(&key, token, now()).map_err(|e| e.to_string())?;
        if claims.iss != ISSUER {
            return Err("token issuer is not this cluster's API".into());
        }
        let matched: Vec<String> = audiences
            .iter()
            .filter(|a| claims.aud.contains(a))
            .cloned()
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {:?}",
                claims.aud, audiences
            ));
        }
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        let exists = |plural: &'static str, r: &Ref| {
            let r = r.clone();
            async move {
                match self
                    .read_object(kind(plural), Some(ns), &r.name, Consistency::Local)
                    .await
                {
                    Ok(Some((o, _))) => {
                        o.pointer("/metadata/uid").and_then(Value::as_str) == Some(&r.uid)
                            && o.pointer("/metadata/deletionTimestamp").is_none()
                    }
                    _ => false,
                }
            }
        };
        if !exists("serviceaccounts", &k.serviceaccount).await {
            return Err(format!(
                "service account {ns}/{} has been deleted",
                k.serviceaccount.name
            ));
        }
        let mut extra = BTreeMap::new();
        if let Some(pod) = &k.pod {
            if !exists("pods", pod).await {
                return Err(format!(
                    "pod {ns}/{} the token is bound to is gone",
                    pod.name
                ));
            }
            extra.insert(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".to_string(),
                vec![pod.uid.clone()],
            );
        }
        Ok(Reviewed {
            identity: Identity::User {
                name: claims.sub.clone(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                    "system:authenticated".into(),
                ],
                uid: k.serviceaccount.uid.clone(),
                extra: extra.clone(),
            },
            uid: k.serviceaccount.uid.clone(),
            extra,
            audiences: matched,
        })
    }

    /// A TokenReview's status (`authentication.k8s.io/v1`): whether
    /// `spec.token` authenticates for `spec.audiences` (default: this API's),
    /// and as whom.
    pub(super) async fn token_review(&self, spec: &Value) -> Outcome<Value> {
        let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
        if token.is_empty() {
            return Err(
                Status::bad_request("token is required for TokenReview in authentication").into(),
            );
        }
        let audiences: Vec<String> = spec
            .get("audiences")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .filter(|a: &Vec<String>| !a.is_empty())
            .unwrap_or_else(|| vec![ISSUER.to_string()]);
        Ok(match self.review_token(token, &audiences).await {
            Ok(r) => {
                let Identity::User { name, groups, .. } = &r.identity else {
                    unreachable!("tokens prove service accounts")
                };
                let mut user = json!({"username": name, "uid": r.uid, "groups": groups});
                if !r.extra.is_empty() {
                    user["extra"] = json!(r.extra);
                }
                json!({"authenticated": true, "user": user, "audiences": r.audiences})
            }
            Err(why) => json!({"user": {}, "error": why}),
        })
    }

    /// `POST .../serviceaccounts/NAME/token`: a TokenRequest answered with a
    /// signed token (`spec.expirationSeconds`, default an hour, at least ten
    /// minutes; `spec.boundObjectRef` to a Pod binds it to that pod).
    pub(super) async fn token_request(&self, req: &ObjectRequest) -> Outcome<ObjectResponse> {
        let ns = req.namespace.as_deref().unwrap_or_default();
        let name = req.name.as_deref().unwrap_or_default();
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
        if body.get("spec").is_none_or(|s| !s.is_object()) {
            body["spec"] = json!({});
        }
        let spec = &mut body["spec"];
        let seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_SECONDS,
            Some(v) => v.as_i64().unwrap_or(0),
        };
        let invalid = |field: &str, message: String| {
            Status::invalid(
                "TokenRequest.authentication.k8s.io",
                name,
                vec![StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message,
                    field: field.into(),
                }],
            )
        };
        if seconds < 600 {
            return Err(invalid(
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
            )
            .into());
        }
        if seconds > 1 << 32 {
            return Err(invalid(
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
                ),
            )
            .into());
        }
        spec["expirationSeconds"] = json!(seconds);
        let audiences: Vec<String> = spec
            .get("audiences")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .filter(|a: &Vec<String>| !a.is_empty())
            .unwrap_or_else(|| vec![ISSUER.to_string()]);
        spec["audiences"] = json!(audiences);
        let sa = self
            .read_object(
                kind("serviceaccounts"),
                Some(ns),
                name,
                Consistency::Linearizable,
            )
            .await?
            .ok_or_else(|| Status::not_found("serviceaccounts", name))?
            .0;
        let uid = |o: &Value| {
            o.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut pod = None;
        if let Some(b) = spec.get("boundObjectRef").filter(|b| !b.is_null()).cloned() {
            let bkind = b.get("kind").and_then(Value::as_str).unwrap_or_default();
            if bkind != "Pod" {
                return Err(Status::invalid(
                    "TokenRequest.authentication.k8s.io",
                    name,
                    vec![StatusCause {
                        reason: "FieldValueNotSupported".into(),
                        message: format!("Unsupported value: {bkind:?}: supported values: \"Pod\""),
                        field: "spec.boundObjectRef.kind".into(),
                    }],
                )
                .into());
            }
            let pname = b
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let pname = pname.as_str();
            let p = self
                .read_object(kind("pods"), Some(ns), pname, Consistency::Linearizable)
                .await?
                .ok_or_else(|| Status::not_found("pods", pname))?
                .0;
            let want = b.get("uid").and_then(Value::as_str).unwrap_or_default();
            if !want.is_empty() && want != uid(&p) {
                return Err(Status::conflict(
                    "pods",
                    pname,
                    &format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                )
                .into());
            }
            // NodeRestriction: a node asks only for its own pods' accounts.
            if let Some(Identity::Node(node)) = super::rbac::requester() {
                let on = p.pointer("/spec/nodeName").and_then(Value::as_str);
                let sa_of = p
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                if on != Some(node.as_str()) || sa_of != name {
                    return Err(Status::forbidden(format!(
                        "serviceaccounts {name:?} is forbidden: node {node:?} may only request \
                         tokens for service accounts of pods bound to it"
                    ))
                    .into());
                }
            }
            spec["boundObjectRef"]["uid"] = json!(uid(&p));
            spec["boundObjectRef"]["apiVersion"] = json!("v1");
            pod = Some(Ref {
                name: pname.to_string(),
                uid: uid(&p),
            });
        }
        if pod.is_none() {
            if let Some(Identity::Node(node)) = super::rbac::requester() {
                return Err(Status::forbidden(format!(
                    "serviceaccounts {name:?} is forbidden: node {node:?} may only request \
                     tokens bound to its pods"
                ))
                .into());
            }
        }
        let key = self.sa_key().await.ok_or_else(|| {
            Status::new(
                503,
                "ServiceUnavailable",
                "no service-account signing key yet",
            )
        })?;
        let now = now();
        let claims = Claims::new(ns, name, &uid(&sa), pod, audiences, now, seconds);
        let token = satoken::sign(&key, &claims).map_err(|e| Status::internal(e.to_string()))?;
        let expires = jiff::Timestamp::from_second(claims.exp)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        body["apiVersion"] = json!("authentication.k8s.io/v1");
        body["kind"] = json!("TokenRequest");
        body["metadata"] =
            json!({"name": name, "namespace": ns, "creationTimestamp": super::meta::now()});
        body["status"] = json!({"token": token, "expirationTimestamp": expires});
        Ok(ObjectResponse::ok(201, &body))
    }
}
