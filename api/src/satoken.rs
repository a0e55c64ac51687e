//! Service-account tokens: ES256 JWTs (JWS compact form) signed with the
//! cluster's service-account key, with Kubernetes' claims — `iss`, `sub`
//! (`system:serviceaccount:<ns>:<name>`), `aud`, `iat`, `nbf`, `exp` and the
//! private `kubernetes.io` claim naming the namespace, the ServiceAccount
//! (name, uid) and, for a bound token, the pod (name, uid). Pure: the key is
//! a PKCS#8 document the caller keeps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};

/// The issuer (and default audience) of ferry's tokens, as Kubernetes' default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Kubernetes' private claims.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: Ref,
    /// The pod the token is bound to (it dies with the pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
}

/// An object by name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

impl Claims {
    /// Claims for ServiceAccount `sa` (uid `sa_uid`) in `namespace`, valid
    /// from `now` for `seconds`, bound to `pod` if given.
    pub fn new(
        namespace: &str,
        sa: &str,
        sa_uid: &str,
        pod: Option<Ref>,
        audiences: Vec<String>,
        now: i64,
        seconds: i64,
    ) -> Claims {
        Claims {
            iss: ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{sa}"),
            aud: audiences,
            iat: now,
            nbf: now,
            exp: now + seconds,
            kubernetes: Private {
                namespace: namespace.to_string(),
                serviceaccount: Ref {
                    name: sa.to_string(),
                    uid: sa_uid.to_string(),
                },
                pod,
            },
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the cluster's key.
    #[error("invalid signature")]
    Signature,
    /// Past its expiry, or before its start.
    #[error("token has expired")]
    Expired,
    /// Key trouble.
    #[error("service-account key: {0}")]
    Key(String),
}

/// A new P-256 key as PKCS#8 DER.
pub fn generate_key() -> Result<Vec<u8>, TokenError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| TokenError::Key(e.to_string()))
}

fn pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair, TokenError> {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|e| TokenError::Key(e.to_string()))
}

/// The key id: the first 16 bytes of the public key's SHA-256, base64url.
fn kid(pair: &EcdsaKeyPair) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
    B64.encode(&d.as_ref()[..16])
}

/// Signs `claims` with the key in `pkcs8`.
pub fn sign(pkcs8: &[u8], claims: &Claims) -> Result<String, TokenError> {
    let pair = pair(pkcs8)?;
    let header = serde_json::json!({"alg": "ES256", "kid": kid(&pair), "typ": "JWT"});
    let body = serde_json::to_vec(claims).map_err(|e| TokenError::Key(e.to_string()))?;
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(body));
    let sig = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|e| TokenError::Key(e.to_string()))?;
    Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
}

/// Checks `token`'s signature with the key in `pkcs8` and its times against
/// `now` (Unix seconds), and returns its claims. Whether its ServiceAccount
/// and pod still exist is the caller's check.
pub fn verify(pkcs8: &[u8], token: &str, now: i64) -> Result<Claims, TokenError> {
    let pair = pair(pkcs8)?;
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: serde_json::Value = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header["alg"] != "ES256" {
        return Err(TokenError::Signature);
    }
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = B64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if now >= claims.exp || now < claims.nbf {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_in_their_time() {
        let key = generate_key().unwrap();
        let other = generate_key().unwrap();
        let pod = Ref {
            name: "p".into(),
            uid: "u2".into(),
        };
        let claims = Claims::new(
            "ns",
            "robot",
            "u1",
            Some(pod),
            vec![ISSUER.into()],
            1000,
            600,
        );
        assert_eq!(claims.sub, "system:serviceaccount:ns:robot");
        let t = sign(&key, &claims).unwrap();
        assert_eq!(verify(&key, &t, 1000).unwrap(), claims);
        assert_eq!(verify(&key, &t, 1599).unwrap(), claims);
        let cases: &[(&[u8], String, i64, TokenError)] = &[
            (&key, t.clone(), 1600, TokenError::Expired),
            (&key, t.clone(), 999, TokenError::Expired),
            (&other, t.clone(), 1000, TokenError::Signature),
            (&key, "a.b".into(), 1000, TokenError::Malformed),
            (&key, format!("{t}.x"), 1000, TokenError::Malformed),
        ];
        for (k, tok, now, want) in cases {
            assert_eq!(verify(k, tok, *now).unwrap_err(), *want, "{tok} at {now}");
        }
        // Claims changed after signing: the signature no longer holds.
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut forged = claims.clone();
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged = B64.encode(serde_json::to_vec(&forged).unwrap());
        parts[1] = &forged;
        assert_eq!(
            verify(&key, &parts.join("."), 1000).unwrap_err(),
            TokenError::Signature
        );
    }
}
