//! Nodes joining: bootstrap token discovery, certificate issue and renewal.
//!
//! A node without a certificate talks to a master on `ferry-join/1`:
//! 1. [`ApiRequest::NodeDiscover`] names its token's id; the master answers with
//!    the CA and a MAC of it keyed by the token's secret, so the node can trust
//!    the CA (see [`ferry_api::token`]).
//! 2. [`ApiRequest::NodeJoin`], over a connection pinned to that CA, carries the
//!    whole token and a certificate signing request; the master checks the
//!    token against its Secret (`kube-system/bootstrap-token-<id>`: secret,
//!    expiration, usage) read linearizably, and signs the request for identity
//!    `node:<name>`. The node's private key never leaves it.
//!
//! A node renews its certificate with [`ApiRequest::RenewNodeCert`] on
//! `ferry-api/1`, authenticated by the certificate it is replacing.

use ferry_api::proto::{ApiError, ErrorCode, NodeCert, NodeJoinRequest};
use ferry_api::resources;
use ferry_api::tls::Ca;
use ferry_api::token::{self, BootstrapToken, TokenSecret};
use ferry_raft::Store;
use std::time::Duration;

/// Shortest and longest node certificate lifetime a master issues.
pub const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// See [`MIN_LIFETIME`].
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!("node join refused: {why}"),
    )
}

/// Reads the Secret of bootstrap token `id`, linearizably.
async fn token_secret(store: &Store, id: &str) -> Result<TokenSecret, ApiError> {
    let res = resources::by_cli_name("secrets").expect("secrets are served");
    let key = res.key(Some(token::NAMESPACE), Some(&token::secret_name(id)));
    let (kv, _) = store
        .get(&key, ferry_api::proto::Consistency::Linearizable)
        .await?;
    let kv = kv.ok_or_else(|| refused(format!("no bootstrap token with id {id:?}")))?;
    let secret: serde_json::Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("stored secret: {e}")))?;
    TokenSecret::from_secret(&secret).map_err(refused)
}

/// Answers a discovery request: the CA and the proof.
pub async fn discover(
    store: &Store,
    ca: &Ca,
    token_id: &str,
    nonce: &[u8],
) -> Result<(String, Vec<u8>), ApiError> {
    if nonce.len() < 16 || nonce.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "the discovery nonce must be 16 to 64 bytes",
        ));
    }
    let t = token_secret(store, token_id).await?;
    if t.expired(jiff::Timestamp::now()) {
        return Err(refused(token::TokenError::Expired {
            id: t.token.id.clone(),
            at: t.expiration.clone().unwrap_or_default(),
        }));
    }
    let ca_cert = ca.pair().cert_pem.clone();
    let mac = token::discovery_mac(&t.token.secret, nonce, &ca_cert);
    Ok((ca_cert, mac))
}

/// Admits a node: checks its token and signs its request.
pub async fn join(store: &Store, ca: &Ca, req: &NodeJoinRequest) -> Result<NodeCert, ApiError> {
    let presented = BootstrapToken::parse(&req.token).map_err(refused)?;
    resources::check_dns_subdomain("name", &req.name)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("node name: {e}")))?;
    let t = token_secret(store, &presented.id).await?;
    if let Err(e) = t.check_join(&presented, jiff::Timestamp::now()) {
        tracing::warn!(token = %presented.id, node = %req.name, error = %e, "node join refused");
        return Err(refused(e));
    }
    let cert = issue(store, ca, &req.csr, &req.name, req.lifetime_secs).await?;
    tracing::info!(node = %req.name, token = %presented.id, "node joined");
    Ok(cert)
}

/// Signs a node's certificate request for `name`, clamping the lifetime.
pub async fn issue(
    store: &Store,
    ca: &Ca,
    csr: &str,
    name: &str,
    lifetime_secs: u64,
) -> Result<NodeCert, ApiError> {
    let lifetime = Duration::from_secs(lifetime_secs).clamp(MIN_LIFETIME, MAX_LIFETIME);
    let cert = ca
        .sign_node_csr(csr, name, lifetime)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let masters = store
        .status()
        .await
        .map(|s| s.members.into_iter().map(|m| m.addr).collect())
        .unwrap_or_default();
    Ok(NodeCert {
        cert,
        ca_cert: ca.pair().cert_pem.clone(),
        masters,
    })
}
