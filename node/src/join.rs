//! A node's credentials: joining with a bootstrap token, keeping the
//! certificate in the data dir, and renewing it.
//!
//! Joining (see `ferry_api::token`): a discovery request to any master names
//! the token's id and a fresh nonce; the answer's MAC, keyed by the token's
//! secret, proves the CA. The node then pins that CA, sends the token with a
//! certificate signing request for a key it made, and stores key, certificate
//! and the masters' addresses as `node.conf` (a client config, mode 0600) in
//! its data dir. Later starts read `node.conf` and need no token.

use ferry_api::proto::{ApiError, ApiRequest, ApiResponse, ErrorCode, NodeCert, NodeJoinRequest};
use ferry_api::tls;
use ferry_api::token::{self, BootstrapToken};
use ferry_config::{ClientConfig, TransportLimits};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The node's client config file in its data dir.
pub const NODE_CONF: &str = "node.conf";

/// Why a node could not get or keep its credentials.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is malformed.
    #[error(transparent)]
    BadToken(#[from] token::BadToken),
    /// No credentials in the data dir and no token to join with.
    #[error("{dir} holds no node credentials ({NODE_CONF}); join with --token")]
    NoToken {
        /// The data dir.
        dir: PathBuf,
    },
    /// A master refused the token or the request.
    #[error("master {master} refused the join")]
    Refused {
        /// The master asked.
        master: String,
        /// Its answer.
        #[source]
        source: ApiError,
    },
    /// The discovery answer did not prove the token: the master does not know
    /// the token's secret, or someone is in between.
    #[error(
        "master {master} could not prove it knows the bootstrap token: refusing to trust its CA"
    )]
    Unproven {
        /// The master asked.
        master: String,
    },
    /// No master answered.
    #[error("no master reachable to join through (tried {tried}): {last}")]
    Unreachable {
        /// Addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    File {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: anyhow::Error,
    },
}

fn file_err(what: impl Into<String>) -> impl FnOnce(anyhow::Error) -> JoinError {
    let what = what.into();
    move |source| JoinError::File { what, source }
}

/// Sends one request on a fresh connection made with `quic`.
async fn one_request(
    endpoint: &quinn::Endpoint,
    quic: &quinn::ClientConfig,
    addr: &str,
    req: &ApiRequest,
) -> Result<Result<ApiResponse, ApiError>, String> {
    let target: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let attempt = ferry_api::client::request_once(endpoint, quic, target, req);
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| format!("{addr}: timed out"))?
        .map_err(|e| format!("{addr}: {e}"))
}

/// Joins through the first master of `masters` that answers: returns the
/// node's client config (not yet written).
pub async fn join(
    masters: &[String],
    token: &BootstrapToken,
    name: &str,
    lifetime: Duration,
) -> Result<ClientConfig, JoinError> {
    let limits = TransportLimits::default();
    let endpoint = tls::client_endpoint("0.0.0.0:0".parse().expect("static"))
        .map_err(|e| file_err("QUIC endpoint")(e.into()))?;
    let mut last = String::from("no address given");
    for master in masters {
        // 1. Discovery: the CA, proven by the token's secret.
        let nonce: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        let discover = ApiRequest::NodeDiscover {
            token_id: token.id.clone(),
            nonce: nonce.clone(),
        };
        let quic =
            tls::discovery_client_config(&limits).map_err(|e| file_err("TLS config")(e.into()))?;
        let ca_cert = match one_request(&endpoint, &quic, master, &discover).await {
            Err(e) => {
                last = e;
                continue;
            }
            Ok(Err(e)) if e.code == ErrorCode::Unavailable => {
                last = e.to_string();
                continue;
            }
            Ok(Err(source)) => {
                return Err(JoinError::Refused {
                    master: master.clone(),
                    source,
                })
            }
            Ok(Ok(ApiResponse::NodeDiscovered { ca_cert, mac })) => {
                if !token::verify_discovery_mac(&token.secret, &nonce, &ca_cert, &mac) {
                    return Err(JoinError::Unproven {
                        master: master.clone(),
                    });
                }
                ca_cert
            }
            Ok(Ok(other)) => {
                last = format!("{master}: unexpected answer {other:?}");
                continue;
            }
        };
        // 2. Join over a connection pinned to that CA.
        let pin = tls::ca_hash(&ca_cert).map_err(|e| file_err("CA")(e.into()))?;
        let (quic, _) =
            tls::join_client_config(&pin, &limits).map_err(|e| file_err("TLS config")(e.into()))?;
        let (key, csr) = tls::new_csr().map_err(|e| file_err("node key")(e.into()))?;
        let req = ApiRequest::NodeJoin(NodeJoinRequest {
            token: token.to_string(),
            name: name.to_string(),
            csr,
            lifetime_secs: lifetime.as_secs(),
        });
        match one_request(&endpoint, &quic, master, &req).await {
            Err(e) => last = e,
            Ok(Err(e)) if e.code == ErrorCode::Unavailable => last = e.to_string(),
            Ok(Err(source)) => {
                return Err(JoinError::Refused {
                    master: master.clone(),
                    source,
                })
            }
            Ok(Ok(ApiResponse::NodeCert(c))) => {
                return Ok(client_config(*c, key, masters));
            }
            Ok(Ok(other)) => last = format!("{master}: unexpected answer {other:?}"),
        }
    }
    Err(JoinError::Unreachable {
        tried: masters.join(", "),
        last,
    })
}

/// The node's client config from an issued certificate and its key.
pub fn client_config(c: NodeCert, key: String, given: &[String]) -> ClientConfig {
    let mut masters = c.masters;
    if masters.is_empty() {
        masters = given.to_vec();
    }
    ClientConfig {
        masters,
        ca_cert: c.ca_cert,
        client_cert: c.cert,
        client_key: key,
        timeout_ms: 10_000,
        api_server: None,
    }
}

/// Reads `node.conf` from `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<ClientConfig>, JoinError> {
    let path = dir.join(NODE_CONF);
    if !path.exists() {
        return Ok(None);
    }
    ClientConfig::load(&path)
        .map(Some)
        .map_err(|e| file_err(format!("reading {}", path.display()))(e.into()))
}

/// Writes `node.conf` into `dir` (mode 0600, atomically and durably).
pub fn store(dir: &Path, cfg: &ClientConfig) -> Result<(), JoinError> {
    ferry_api::files::create_private_dir(dir)
        .map_err(|e| file_err(format!("creating {}", dir.display()))(e.into()))?;
    let path = dir.join(NODE_CONF);
    ferry_api::files::write_private(&path, cfg.to_toml().as_bytes())
        .map_err(|e| file_err(format!("writing {}", path.display()))(e.into()))
}

/// When a certificate should be renewed: two thirds into its validity.
pub fn renew_at(cert_pem: &str) -> Result<SystemTime, JoinError> {
    let (from, to) = tls::validity(cert_pem).map_err(|e| file_err("node certificate")(e.into()))?;
    let life = to.duration_since(from).unwrap_or_default();
    Ok(from + life * 2 / 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_into_the_lifetime() {
        let ca = tls::Ca::generate("t").unwrap();
        let (_, csr) = tls::new_csr().unwrap();
        let cert = ca
            .sign_node_csr(&csr, "n1", Duration::from_secs(3 * 3600))
            .unwrap();
        let (from, _) = tls::validity(&cert).unwrap();
        // not_before is 5 minutes early: the lifetime is 3 h + 5 min.
        let at = renew_at(&cert).unwrap();
        let into = at.duration_since(from).unwrap().as_secs();
        assert_eq!(into, (3 * 3600 + 300) * 2 / 3);
    }
}
