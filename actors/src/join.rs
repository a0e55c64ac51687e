//! Joining the cluster, on `ferry-join/1` (the joiner has no certificate yet).
//!
//! **Masters** ([`request_join`] on the joiner, [`serve_join`] on the master
//! asked): the token `ferry1-<CA hash>.<secret>` pins the CA; the secret is
//! checked in constant time; the joiner gets an id, the CA and its certificate,
//! and is added as a learner.
//!
//! **Nodes** ([`discover`], [`admit_node`]; the node side is `ferry_node::join`):
//! 1. `ApiRequest::NodeDiscover` names the bootstrap token's id; the master
//!    answers with the CA and a MAC of it keyed by the token's secret, so the
//!    node can trust the CA (see [`ferry_api::token`]).
//! 2. `ApiRequest::NodeJoin`, over a connection pinned to that CA, carries the
//!    whole token and a certificate signing request; the master checks the
//!    token against its Secret (`kube-system/bootstrap-token-<id>`: secret,
//!    expiration, usage) read linearizably, and signs the request for identity
//!    `node:<name>`. The node's private key never leaves it.
//!
//! A node renews its certificate with `ApiRequest::RenewNodeCert` on
//! `ferry-api/1`, authenticated by the certificate it is replacing ([`issue`]).

use crate::api_server::reply;
use crate::{Error, Result};
use ferry_api::frame::read_frame;
use ferry_api::proto::{
    ApiError, ApiRequest, ApiResponse, Consistency, ErrorCode, JoinRequest, JoinResponse, NodeCert,
    NodeJoinRequest,
};
use ferry_api::resources;
use ferry_api::tls::{self, Ca, Identity};
use ferry_api::token::{self, BootstrapToken, TokenSecret};
use ferry_config::MasterConfig;
use ferry_raft::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Shortest and longest node certificate lifetime a master issues.
pub const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// See [`MIN_LIFETIME`].
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The shortest lifetime issued: [`MIN_LIFETIME`], or what
/// `FERRY_NODE_CERT_MIN_SECONDS` says (tests of renewal, at least 10 s).
fn min_lifetime() -> Duration {
    std::env::var("FERRY_NODE_CERT_MIN_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(MIN_LIFETIME, |s| Duration::from_secs(s.max(10)))
}

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
    let (kv, _) = store.get(&key, Consistency::Linearizable).await?;
    let kv = kv.ok_or_else(|| refused(format!("no bootstrap token with id {id:?}")))?;
    let secret: serde_json::Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("stored secret: {e}")))?;
    TokenSecret::from_secret(&secret).map_err(refused)
}

/// Answers a discovery request: the CA and the proof.
pub async fn discover(
    store: &Store,
    trust: &str,
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
    if t.expired(ferry_api::clock::now()) {
        return Err(refused(token::TokenError::Expired {
            id: t.token.id.clone(),
            at: t.expiration.clone().unwrap_or_default(),
        }));
    }
    // The CAs trusted (a bundle while the CA rotates), the issuing one
    // first: the node pins that one for its join.
    let ca_cert = trust.to_string();
    let mac = token::discovery_mac(&t.token.secret, nonce, &ca_cert);
    Ok((ca_cert, mac))
}

/// Admits a node: checks its token and signs its request.
pub async fn admit_node(
    store: &Store,
    ca: &Ca,
    trust: &str,
    req: &NodeJoinRequest,
) -> Result<NodeCert, ApiError> {
    let presented = BootstrapToken::parse(&req.token).map_err(refused)?;
    resources::check_dns_subdomain("name", &req.name)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("node name: {e}")))?;
    let t = token_secret(store, &presented.id).await?;
    if let Err(e) = t.check_join(&presented, ferry_api::clock::now()) {
        tracing::warn!(token = %presented.id, node = %req.name, error = %e, "node join refused");
        return Err(refused(e));
    }
    let cert = issue(store, ca, trust, &req.csr, &req.name, req.lifetime_secs).await?;
    tracing::info!(node = %req.name, token = %presented.id, "node joined");
    Ok(cert)
}

/// Signs a node's certificate request for `name`, clamping the lifetime;
/// the node is to trust `trust`.
pub async fn issue(
    store: &Store,
    ca: &Ca,
    trust: &str,
    csr: &str,
    name: &str,
    lifetime_secs: u64,
) -> Result<NodeCert, ApiError> {
    let lifetime = Duration::from_secs(lifetime_secs).clamp(min_lifetime(), MAX_LIFETIME);
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
        ca_cert: trust.to_string(),
        masters,
    })
}

/// Issues a user's client certificate (`ApiRequest::IssueUserCert`, admin
/// only): identity `user:<name>` with `groups`. Names and groups are printable,
/// at most 253 characters, and carry no `,` (certificate subjects list them).
pub fn issue_user(
    ca: &Ca,
    trust: &str,
    csr: &str,
    name: &str,
    groups: &[String],
    lifetime_secs: u64,
) -> Result<ApiResponse, ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
    for (what, v) in
        std::iter::once(("user name", name)).chain(groups.iter().map(|g| ("group", g.as_str())))
    {
        if v.is_empty() || v.len() > 253 || v.chars().any(|c| c.is_control() || c == ',') {
            return Err(bad(format!(
                "{what} {v:?}: must be 1-253 printable characters without ','"
            )));
        }
    }
    let lifetime = Duration::from_secs(lifetime_secs).clamp(MIN_LIFETIME, MAX_LIFETIME);
    let who = Identity::User {
        name: name.to_string(),
        groups: groups.to_vec(),
        uid: String::new(),
        extra: Default::default(),
    };
    let cert = ca
        .sign_csr(csr, &who, lifetime)
        .map_err(|e| bad(e.to_string()))?;
    Ok(ApiResponse::UserCert {
        cert,
        ca_cert: trust.to_string(),
    })
}

/// What the join handler needs.
pub struct JoinContext {
    /// The cluster CA as it rotates: the one issuing certificates, the ones trusted.
    pub ca: Arc<crate::master::ca::CaKeeper>,
    /// How long a joining master's certificate is valid.
    pub master_cert_lifetime: Duration,
    /// The join secret.
    pub secret: String,
    /// Connections nodes offered for streams to them (see [`crate::tunnel::Tunnels`]).
    pub tunnels: crate::tunnel::Tunnels,
    /// The nodes' latest metrics (the API server's, see [`ferry_api::metrics`]).
    pub metrics: ferry_api::metrics::MetricsStore,
}

/// Serves a joining master's connection (it has no certificate yet).
pub async fn serve_join(store: Store, conn: quinn::Connection, ctx: Arc<JoinContext>) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let req = match read_frame::<_, ApiRequest>(&mut recv, 64 * 1024).await {
            Ok(Some(ApiRequest::Join(j))) => j,
            Ok(Some(ApiRequest::NodeDiscover { token_id, nonce })) => {
                let resp = discover(&store, &ctx.ca.trust(), &token_id, &nonce)
                    .await
                    .map(|(ca_cert, mac)| ApiResponse::NodeDiscovered { ca_cert, mac });
                reply(&mut send, &resp).await;
                continue;
            }
            Ok(Some(ApiRequest::NodeJoin(j))) => {
                let resp = admit_node(&store, &ctx.ca.ca(), &ctx.ca.trust(), &j)
                    .await
                    .map(|c| ApiResponse::NodeCert(Box::new(c)));
                reply(&mut send, &resp).await;
                continue;
            }
            Ok(Some(_)) => {
                let e = ApiError::new(
                    ErrorCode::Unauthenticated,
                    "only join requests are accepted without a certificate",
                );
                reply(&mut send, &Err(e)).await;
                continue;
            }
            Ok(None) => continue,
            Err(e) => {
                reply(
                    &mut send,
                    &Err(ApiError::new(
                        ErrorCode::BadRequest,
                        format!("bad join frame: {e}"),
                    )),
                )
                .await;
                continue;
            }
        };
        let resp = admit_master(&store, &ctx, req).await;
        reply(&mut send, &resp.map(|r| ApiResponse::Joined(Box::new(r)))).await;
    }
}

async fn admit_master(
    store: &Store,
    ctx: &JoinContext,
    req: JoinRequest,
) -> Result<JoinResponse, ApiError> {
    if !crate::master::identity::secrets_match(&req.secret, &ctx.secret) {
        tracing::warn!(addr = %req.addr, "join refused: bad token");
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "join token secret is wrong",
        ));
    }
    let sock: std::net::SocketAddr = req.addr.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("joining address {}: {e}", req.addr),
        )
    })?;
    let id = match req.id {
        Some(id) => id,
        None => store.allocate_id().await?,
    };
    let ips = [sock.ip(), std::net::Ipv4Addr::LOCALHOST.into()];
    let ca = ctx.ca.ca();
    let cert = ca
        .issue_with(
            &Identity::Master(id),
            // The in-cluster names come with its first renewal, made at
            // its start from its own [network] (`renewal_due`).
            &ferry_api::tls::Sans::ips(&ips),
            None,
            Some(ctx.master_cert_lifetime),
        )
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    tracing::info!(id, addr = %req.addr, "master joining");
    let (s, addr, force) = (store.clone(), req.addr.clone(), req.force);
    tokio::spawn(async move {
        if let Err(e) = s.add_member(id, addr.clone(), force).await {
            tracing::warn!(id, %addr, error = %e, "adding joined master failed; it will retry");
        }
    });
    Ok(JoinResponse {
        id,
        ca_cert: ca.pair().cert_pem.clone(),
        ca_key: ca.pair().key_pem.clone(),
        secret: ctx.secret.clone(),
        cert: cert.cert_pem,
        key: cert.key_pem,
        voter: false,
    })
}

/// Asks a master to admit this one.
pub async fn request_join(
    via: &str,
    token: &str,
    addr: SocketAddr,
    force: bool,
    id: Option<u64>,
    cfg: &MasterConfig,
) -> Result<JoinResponse> {
    let (pin, secret) = crate::master::identity::parse_token(token)?;
    let (quic, pin_check) = tls::join_client_config(&pin, &cfg.transport)?;
    let endpoint = tls::client_endpoint("0.0.0.0:0".parse().expect("static"))?;
    let target: SocketAddr = tokio::net::lookup_host(via)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Join {
            via: via.to_string(),
            reason: "cannot resolve the address".into(),
        })?;
    let join_err = |reason: String| Error::Join {
        via: via.to_string(),
        reason,
    };
    let mut last = String::new();
    for _ in 0..20 {
        let req = ApiRequest::Join(JoinRequest {
            secret: secret.clone(),
            addr: addr.to_string(),
            force,
            id,
        });
        let attempt = ferry_api::client::request_once(&endpoint, &quic, target, &req);
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(Ok(ApiResponse::Joined(r)))) => return Ok(*r),
            Ok(Ok(Ok(other))) => return Err(join_err(format!("unexpected answer {other:?}"))),
            Ok(Ok(Err(e))) if e.code == ferry_api::proto::ErrorCode::Unavailable => {
                last = e.to_string()
            }
            Ok(Ok(Err(e))) => return Err(join_err(e.message)),
            Ok(Err(_)) if pin_check.mismatched() => {
                return Err(Error::CaMismatch {
                    via: via.to_string(),
                })
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(join_err(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_certificates_refuse_names_a_subject_cannot_hold() {
        let ca = Ca::generate("t").unwrap();
        let (_, csr) = tls::new_csr().unwrap();
        let trust = ca.pair().cert_pem.clone();
        let ok = issue_user(&ca, &trust, &csr, "alice", &["dev".into()], 3600);
        assert!(matches!(ok, Ok(ApiResponse::UserCert { .. })), "{ok:?}");
        for (name, groups) in [
            ("", vec![]),
            ("a,b", vec![]),
            ("alice", vec!["x\ny".to_string()]),
            ("alice", vec!["".to_string()]),
        ] {
            let e = issue_user(&ca, &trust, &csr, name, &groups, 3600).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{name:?} {groups:?}");
        }
        let e = issue_user(&ca, &trust, "garbage", "alice", &[], 3600).unwrap_err();
        assert!(
            e.message.contains("certificate signing request"),
            "{}",
            e.message
        );
    }
}
