//! Bootstrap tokens, as Kubernetes keeps them: `<id>.<secret>` with a 6-character
//! id and a 16-character secret from `[a-z0-9]`, stored as the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`.
//!
//! A node proves a token to join the cluster: first it asks for the cluster CA
//! naming only the token's id, and the master answers with the CA and an HMAC of
//! it keyed by the token's secret ([`discovery_mac`]) — only a holder of the
//! secret can make it, so the node trusts the CA without knowing its hash in
//! advance. Then, over a connection pinned to that CA, it sends the whole token
//! with a certificate signing request.

use serde_json::{json, Value};
use std::fmt;

/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The Secret name prefix.
pub const NAME_PREFIX: &str = "bootstrap-token-";
/// The usages a token created by `ferry token create` carries.
pub const DEFAULT_USAGES: [&str; 2] = ["authentication", "signing"];

/// A parsed bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part (6 characters).
    pub id: String,
    /// The secret part (16 characters).
    pub secret: String,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<secret>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

fn token_chars(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Why a token string is not a bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad bootstrap token {shown:?}: {why} (expected the form [a-z0-9]{{6}}.[a-z0-9]{{16}})")]
pub struct BadToken {
    /// The token with its secret part hidden.
    pub shown: String,
    /// What is wrong.
    pub why: &'static str,
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`.
    pub fn parse(s: &str) -> Result<BootstrapToken, BadToken> {
        let s = s.trim();
        let shown = match s.split_once('.') {
            Some((id, _)) => format!("{id}.<secret>"),
            None => "<hidden>".to_string(),
        };
        let bad = |why| BadToken {
            shown: shown.clone(),
            why,
        };
        let (id, secret) = s.split_once('.').ok_or_else(|| bad("no '.'"))?;
        if !token_chars(id, 6) {
            return Err(bad("the id must be 6 characters from a-z and 0-9"));
        }
        if !token_chars(secret, 16) {
            return Err(bad("the secret must be 16 characters from a-z and 0-9"));
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A new random token.
    pub fn generate() -> BootstrapToken {
        use rand::Rng;
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
                .collect()
        };
        BootstrapToken {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// The name of the Secret that holds this token.
    pub fn secret_name(&self) -> String {
        secret_name(&self.id)
    }

    /// The Secret for this token: `expiration` as RFC 3339 (none: never expires).
    pub fn to_secret(&self, expiration: Option<&str>, description: Option<&str>) -> Value {
        let mut string_data = json!({
            "token-id": self.id,
            "token-secret": self.secret,
        });
        let m = string_data.as_object_mut().expect("object");
        if let Some(e) = expiration {
            m.insert("expiration".into(), json!(e));
        }
        if let Some(d) = description {
            m.insert("description".into(), json!(d));
        }
        for u in DEFAULT_USAGES {
            m.insert(format!("usage-bootstrap-{u}"), json!("true"));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name(), "namespace": NAMESPACE},
            "type": SECRET_TYPE,
            "stringData": string_data,
        })
    }
}

/// The Secret name for token id `id`.
pub fn secret_name(id: &str) -> String {
    format!("{NAME_PREFIX}{id}")
}

/// A bootstrap token as read back from its Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret {
    /// The token.
    pub token: BootstrapToken,
    /// When it expires (RFC 3339), if ever.
    pub expiration: Option<String>,
    /// Its usages (`authentication`, `signing`, ...).
    pub usages: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecret")
            .field("token", &self.token)
            .field("expiration", &self.expiration)
            .field("usages", &self.usages)
            .finish()
    }
}

/// Why a Secret does not hold a usable bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The Secret is not a bootstrap token Secret, or is malformed.
    #[error("secret {name} is not a valid bootstrap token: {why}")]
    Malformed {
        /// Secret name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Past its expiration.
    #[error("bootstrap token {id} expired at {at}")]
    Expired {
        /// Token id.
        id: String,
        /// Expiration.
        at: String,
    },
    /// It may not be used to join.
    #[error("bootstrap token {id} is not usable for authentication")]
    NotForAuthentication {
        /// Token id.
        id: String,
    },
}

fn data_field(secret: &Value, field: &str) -> Option<String> {
    if let Some(s) = secret
        .pointer(&format!("/data/{field}"))
        .and_then(Value::as_str)
    {
        return base64_decode(s).and_then(|b| String::from_utf8(b).ok());
    }
    secret
        .pointer(&format!("/stringData/{field}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl TokenSecret {
    /// Reads a token Secret (its `data` base64, as stored; `stringData` accepted too).
    pub fn from_secret(secret: &Value) -> Result<TokenSecret, TokenError> {
        let name = secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bad = |why: String| TokenError::Malformed {
            name: name.clone(),
            why,
        };
        if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
            return Err(bad(format!("its type is not {SECRET_TYPE}")));
        }
        let id = data_field(secret, "token-id").ok_or_else(|| bad("no token-id".into()))?;
        let sec =
            data_field(secret, "token-secret").ok_or_else(|| bad("no token-secret".into()))?;
        let token =
            BootstrapToken::parse(&format!("{id}.{sec}")).map_err(|e| bad(e.to_string()))?;
        if name != token.secret_name() {
            return Err(bad(format!("its name must be {}", token.secret_name())));
        }
        let mut usages: Vec<String> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| {
                data_field(secret, &format!("usage-bootstrap-{u}")).as_deref() == Some("true")
            })
            .map(str::to_string)
            .collect();
        usages.sort();
        Ok(TokenSecret {
            token,
            expiration: data_field(secret, "expiration"),
            usages,
            description: data_field(secret, "description"),
        })
    }

    /// Whether it expired at `now`. An unparsable expiration counts as expired.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        match &self.expiration {
            None => false,
            Some(e) => e.parse::<jiff::Timestamp>().map_or(true, |t| t <= now),
        }
    }

    /// Checks that `presented` is this token and that a node may join with it at `now`.
    pub fn check_join(
        &self,
        presented: &BootstrapToken,
        now: jiff::Timestamp,
    ) -> Result<(), TokenError> {
        let id = self.token.id.clone();
        // Compared in constant time: the secret is what is being guessed.
        if !same_bytes(self.token.secret.as_bytes(), presented.secret.as_bytes())
            || presented.id != self.token.id
        {
            return Err(TokenError::Malformed {
                name: self.token.secret_name(),
                why: "the token's secret does not match".into(),
            });
        }
        if self.expired(now) {
            return Err(TokenError::Expired {
                id,
                at: self.expiration.clone().unwrap_or_default(),
            });
        }
        if !self.usages.iter().any(|u| u == "authentication") {
            return Err(TokenError::NotForAuthentication { id });
        }
        Ok(())
    }
}

/// HMAC-SHA256 keyed by the token's secret over the node's nonce and the CA
/// certificate: the master's proof that it knows the token (see the module doc).
pub fn discovery_mac(token_secret: &str, nonce: &[u8], ca_cert_pem: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(b"ferry-node-discovery\0");
    ctx.update(&(nonce.len() as u64).to_be_bytes());
    ctx.update(nonce);
    ctx.update(ca_cert_pem.as_bytes());
    ctx.sign().as_ref().to_vec()
}

/// Checks a [`discovery_mac`] in constant time.
pub fn verify_discovery_mac(
    token_secret: &str,
    nonce: &[u8],
    ca_cert_pem: &str,
    mac: &[u8],
) -> bool {
    same_bytes(&discovery_mac(token_secret, nonce, ca_cert_pem), mac)
}

/// Equality in time that depends only on the lengths.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (as Secret `data` holds it); `None` when malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=');
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_only_in_the_kubernetes_form() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(
            (t.id.as_str(), t.secret.as_str()),
            ("abcdef", "0123456789abcdef")
        );
        assert_eq!(t.to_string(), "abcdef.0123456789abcdef");
        assert!(
            !format!("{t:?}").contains("0123456789abcdef"),
            "Debug hides the secret"
        );
        for (bad, why) in [
            ("abcdef0123456789abcdef", "no '.'"),
            ("abcde.0123456789abcdef", "the id"),
            ("ABCDEF.0123456789abcdef", "the id"),
            ("abcdef.0123456789abcde", "the secret"),
            ("abcdef.0123456789abcdeF", "the secret"),
            ("abcdef.0123456789abcdef0", "the secret"),
        ] {
            let e = BootstrapToken::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert!(
                !e.to_string().contains("0123456789"),
                "{bad}: the error shows the secret: {e}"
            );
        }
        let g = BootstrapToken::generate();
        assert_eq!(BootstrapToken::parse(&g.to_string()).unwrap(), g);
    }

    #[test]
    fn a_token_secret_round_trips_and_join_checks_secret_expiry_and_usage() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let s = t.to_secret(Some("2030-01-01T00:00:00Z"), Some("for nodes"));
        let read = TokenSecret::from_secret(&s).unwrap();
        assert_eq!(read.token, t);
        assert_eq!(read.usages, ["authentication", "signing"]);
        assert_eq!(read.description.as_deref(), Some("for nodes"));
        let before: jiff::Timestamp = "2029-12-31T23:59:59Z".parse().unwrap();
        let after: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(read.check_join(&t, before).is_ok());
        assert!(matches!(
            read.check_join(&t, after),
            Err(TokenError::Expired { .. })
        ));
        let wrong = BootstrapToken::parse("abcdef.0123456789abcdee").unwrap();
        assert!(matches!(
            read.check_join(&wrong, before),
            Err(TokenError::Malformed { .. })
        ));

        // As stored: `data` in base64 ("dHJ1ZQ==" is "true").
        let mut stored = json!({
            "metadata": {"name": "bootstrap-token-abcdef"},
            "type": SECRET_TYPE,
            "data": {"token-id": "YWJjZGVm", "token-secret": "MDEyMzQ1Njc4OWFiY2RlZg==",
                     "usage-bootstrap-signing": "dHJ1ZQ=="},
        });
        let read = TokenSecret::from_secret(&stored).unwrap();
        assert_eq!(read.token, t);
        assert!(read.expiration.is_none());
        assert!(matches!(
            read.check_join(&t, after),
            Err(TokenError::NotForAuthentication { .. })
        ));
        stored["metadata"]["name"] = json!("bootstrap-token-zzzzzz");
        assert!(
            TokenSecret::from_secret(&stored).is_err(),
            "name must match the id"
        );
        stored["type"] = json!("Opaque");
        assert!(TokenSecret::from_secret(&stored).is_err());
    }

    #[test]
    fn the_discovery_mac_binds_secret_nonce_and_ca() {
        let mac = discovery_mac("0123456789abcdef", b"nonce", "CA");
        assert!(verify_discovery_mac(
            "0123456789abcdef",
            b"nonce",
            "CA",
            &mac
        ));
        assert!(!verify_discovery_mac(
            "0123456789abcdee",
            b"nonce",
            "CA",
            &mac
        ));
        assert!(!verify_discovery_mac(
            "0123456789abcdef",
            b"nonc3",
            "CA",
            &mac
        ));
        assert!(!verify_discovery_mac(
            "0123456789abcdef",
            b"nonce",
            "CB",
            &mac
        ));
    }

    #[test]
    fn base64_decodes_standard_padding() {
        assert_eq!(base64_decode("dHJ1ZQ==").unwrap(), b"true");
        assert_eq!(base64_decode("YWJjZGVm").unwrap(), b"abcdef");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("Y$==").is_none());
    }
}
