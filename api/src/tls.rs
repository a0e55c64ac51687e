//! The cluster CA, certificates, identities, and quinn endpoint configs.
//!
//! Every master, node and client holds a certificate issued by the cluster CA; the
//! identity is in the subject: CN `master:<id>`, `node:<name>`, `admin`, or
//! `user:<name>` with groups as O entries. Masters present `[leaf, CA]` so a
//! joining master, which has no CA yet, can pin the CA by the hash in its token.

use crate::{Error, Result, ALPN_API, ALPN_JOIN, ALPN_RAFT, MASTER_SERVER_NAME};
use ferry_config::TransportLimits;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Who a peer is, read from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A master, by id.
    Master(u64),
    /// A node agent, by node name.
    Node(String),
    /// The cluster administrator (may do anything).
    Admin,
    /// A user with groups.
    User {
        /// User name.
        name: String,
        /// Groups.
        groups: Vec<String>,
        /// The user's uid (`Impersonate-Uid`; empty when none was given).
        uid: String,
        /// Extra attributes (`Impersonate-Extra-<key>`), by lower-case key.
        extra: std::collections::BTreeMap<String, Vec<String>>,
    },
}

impl Identity {
    fn common_name(&self) -> String {
        match self {
            Identity::Master(id) => format!("master:{id}"),
            Identity::Node(n) => format!("node:{n}"),
            Identity::Admin => "admin".to_string(),
            Identity::User { name, .. } => format!("user:{name}"),
        }
    }

    fn parse(cn: &str, groups: Vec<String>) -> Option<Identity> {
        if cn == "admin" {
            return Some(Identity::Admin);
        }
        let (kind, rest) = cn.split_once(':')?;
        match kind {
            "master" => rest.parse().ok().map(Identity::Master),
            "node" => Some(Identity::Node(rest.to_string())),
            "user" => Some(Identity::User {
                name: rest.to_string(),
                groups,
                uid: String::new(),
                extra: Default::default(),
            }),
            _ => None,
        }
    }
}

/// A user's groups in the certificate subject. rcgen keeps one value per
/// attribute type (a second `O` replaces the first), so they go in one `O`,
/// comma-separated (group names may not hold a comma); [`cert_identity`]
/// splits every `O` on commas.
fn push_groups(dn: &mut DistinguishedName, groups: &[String]) {
    if !groups.is_empty() {
        dn.push(DnType::OrganizationName, groups.join(","));
    }
}

/// A certificate and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
}

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

/// The cluster certificate authority.
pub struct Ca {
    pair: CertPair,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// Creates a new CA for a cluster.
    pub fn generate(cluster: &str) -> Result<Ca> {
        let key = KeyPair::generate().map_err(tls_err("generate CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("ferry-ca {cluster}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.self_signed(&key).map_err(tls_err("self-sign CA"))?;
        Ok(Ca {
            pair: CertPair {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            issuer: cert,
            key,
        })
    }

    /// Loads a CA from its PEMs.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(tls_err("CA key"))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem).map_err(tls_err("CA cert"))?;
        // Re-signing the same subject with the same key yields an equivalent issuer.
        let issuer = params.self_signed(&key).map_err(tls_err("CA cert"))?;
        Ok(Ca {
            pair: CertPair {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
            issuer,
            key,
        })
    }

    /// The CA's own certificate and key.
    pub fn pair(&self) -> &CertPair {
        &self.pair
    }

    /// Issues a certificate for `identity`. Masters get the server name and `ips` as SANs.
    pub fn issue(&self, identity: &Identity, ips: &[IpAddr]) -> Result<CertPair> {
        let key = KeyPair::generate().map_err(tls_err("generate key"))?;
        let mut params = CertificateParams::new(vec![
            MASTER_SERVER_NAME.to_string(),
            "localhost".to_string(),
        ])
        .map_err(tls_err("certificate"))?;
        if !matches!(identity, Identity::Master(_)) {
            params.subject_alt_names.clear();
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.common_name());
        if let Identity::User { groups, .. } = identity {
            push_groups(&mut dn, groups);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(tls_err("sign certificate"))?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Ca {
    /// Signs a node's certificate signing request: identity `node:<name>`
    /// (whatever subject the request names), valid from now for `lifetime`.
    /// The node's private key never leaves the node.
    pub fn sign_node_csr(&self, csr_pem: &str, name: &str, lifetime: Duration) -> Result<String> {
        self.sign_csr(csr_pem, &Identity::Node(name.to_string()), lifetime)
    }

    /// Signs a certificate signing request for `identity` (a node, or a user
    /// with its groups as O), for client authentication only: the requester's
    /// key never leaves it.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<String> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(tls_err("certificate signing request"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.common_name());
        if let Identity::User { groups, .. } = identity {
            push_groups(&mut dn, groups);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = std::time::SystemTime::now();
        // A little slack before now for clocks a few minutes apart (at most a
        // quarter of the lifetime, so a short-lived certificate is not due for
        // renewal — two thirds from `not_before` — as soon as it is issued).
        let slack = Duration::from_secs(300).min(lifetime / 4);
        params.not_before = (now - slack).into();
        params.not_after = (now + lifetime).into();
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer, &self.key)
            .map_err(tls_err("sign certificate"))?;
        Ok(cert.pem())
    }
}

/// A new key pair and a certificate signing request for it (the subject is
/// chosen by the CA): `(key PEM, CSR PEM)`.
pub fn new_csr() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(tls_err("generate key"))?;
    let params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("request"))?;
    let csr = params
        .serialize_request(&key)
        .map_err(tls_err("certificate signing request"))?;
    let pem = csr.pem().map_err(tls_err("certificate signing request"))?;
    Ok((key.serialize_pem(), pem))
}

/// A certificate's validity period: `(not before, not after)`.
pub fn validity(cert_pem: &str) -> Result<(std::time::SystemTime, std::time::SystemTime)> {
    let der = cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Error::Tls(format!("bad certificate: {e}")))?;
    let v = cert.validity();
    let at = |t: x509_parser::time::ASN1Time| {
        std::time::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Ok((at(v.not_before), at(v.not_after)))
}

/// The identity a certificate names.
pub fn cert_identity(cert_pem: &str) -> Result<Identity> {
    let der = cert_der(cert_pem)?;
    identity_of(&der).ok_or_else(|| Error::Tls("the certificate names no ferry identity".into()))
}

fn identity_of(leaf: &CertificateDer<'_>) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .flat_map(|o| o.split(','))
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    Identity::parse(&cn, groups)
}

/// Hex SHA-256 of the CA certificate's DER: the pin in a join token.
pub fn ca_hash(ca_cert_pem: &str) -> Result<String> {
    let der = cert_der(ca_cert_pem)?;
    Ok(hex(ring::digest::digest(
        &ring::digest::SHA256,
        der.as_ref(),
    )
    .as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::Tls(format!("bad certificate PEM: {e}")))
}

fn key_der(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::Tls(format!("bad private key PEM: {e}")))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(cert_der(ca_pem)?)
        .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
    Ok(Arc::new(roots))
}

/// The largest UDP payload MTU discovery may find (quinn's default is 1452).
const MTU_UPPER_BOUND: u16 = 65527;

fn transport(limits: &TransportLimits) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(1024u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.keep_alive_interval(Some(Duration::from_millis(limits.keepalive_ms)));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_millis(limits.idle_timeout_ms))
            .expect("idle timeout in range"),
    ));
    // Bounded buffering per connection (a peer without a certificate gets the same
    // transport as everyone until the handshake tells us its ALPN).
    t.stream_receive_window((4u32 * 1024 * 1024).into());
    t.receive_window((16u32 * 1024 * 1024).into());
    t.send_window(16 * 1024 * 1024);
    // Let MTU discovery grow packets past Ethernet's 1452 bytes where the path
    // allows (loopback: 64 KiB): fewer packets, syscalls and per-packet crypto
    // for Raft batches. Probing is safe on any path; it starts at 1200 bytes.
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    Arc::new(t)
}

/// The server side of a master: presents `[cert, CA]`; requires a client
/// certificate on every ALPN but `ferry-join/1` (checked per connection).
pub fn server_config(
    ca_pem: &str,
    cert: &CertPair,
    limits: &TransportLimits,
) -> Result<quinn::ServerConfig> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert_der(&cert.cert_pem)?, cert_der(ca_pem)?],
            key_der(&cert.key_pem)?,
        )
        .map_err(|e| Error::Tls(format!("master certificate: {e}")))?;
    cfg.alpn_protocols = vec![ALPN_RAFT.to_vec(), ALPN_API.to_vec(), ALPN_JOIN.to_vec()];
    cfg.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(transport(limits));
    Ok(server)
}

/// The HTTPS side of a master (the Kubernetes REST front end): presents
/// `[cert, CA]`, asks for a client certificate but lets requests without one
/// through (they authenticate with a bearer token or are anonymous). TLS 1.2 and
/// 1.3, as kubectl, client-go and Python's `ssl` speak; the HTTP server adds ALPN.
pub fn https_server_config(ca_pem: &str, cert: &CertPair) -> Result<rustls::ServerConfig> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert_der(&cert.cert_pem)?, cert_der(ca_pem)?],
            key_der(&cert.key_pem)?,
        )
        .map_err(|e| Error::Tls(format!("master certificate: {e}")))
}

/// A TLS client of the HTTPS API (benchmarks, tests): trusts the cluster CA,
/// presents `cert`, offers `alpn` (`h2`, `http/1.1`).
pub fn https_client_config(
    ca_pem: &str,
    cert: &CertPair,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(vec![cert_der(&cert.cert_pem)?], key_der(&cert.key_pem)?)
        .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(cfg)
}

/// A TLS client of the HTTPS API without a client certificate (bearer
/// tokens, anonymous requests): trusts the cluster CA, offers `alpn`.
pub fn https_client_config_without_cert(
    ca_pem: &str,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(cfg)
}

/// The identity a verified certificate chain's leaf names (TLS front ends).
pub fn chain_identity(chain: &[CertificateDer<'_>]) -> Option<Identity> {
    identity_of(chain.first()?)
}

/// The client side: verifies the master against the CA, presents `cert`.
pub fn client_config(
    ca_pem: &str,
    cert: &CertPair,
    alpn: &[u8],
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(vec![cert_der(&cert.cert_pem)?], key_der(&cert.key_pem)?)
        .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    finish_client(cfg, limits)
}

/// A client with no certificate that trusts a master only if its CA hashes to `pin`.
///
/// The [`PinCheck`] tells, after a failed handshake, whether the master
/// presented another cluster's CA.
pub fn join_client_config(
    pin: &str,
    limits: &TransportLimits,
) -> Result<(quinn::ClientConfig, PinCheck)> {
    pinned_join_config(Some(pin), limits)
}

/// A client config for a node's discovery request on `ferry-join/1`, which
/// trusts no CA yet: the answer itself proves the master knows the bootstrap
/// token ([`crate::token::discovery_mac`]), and nothing secret is sent on it.
pub fn discovery_client_config(limits: &TransportLimits) -> Result<quinn::ClientConfig> {
    Ok(pinned_join_config(None, limits)?.0)
}

fn pinned_join_config(
    pin: Option<&str>,
    limits: &TransportLimits,
) -> Result<(quinn::ClientConfig, PinCheck)> {
    let check = PinCheck::default();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: pin.map(str::to_string),
            provider: provider(),
            mismatch: check.clone(),
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_JOIN.to_vec()];
    Ok((finish_client(cfg, limits)?, check))
}

/// Set when a master presented a chain without the pinned CA.
#[derive(Debug, Clone, Default)]
pub struct PinCheck(Arc<std::sync::atomic::AtomicBool>);

impl PinCheck {
    /// Whether any handshake with this config met a CA other than the pinned one.
    pub fn mismatched(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

fn finish_client(
    cfg: rustls::ClientConfig,
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cfg)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport(limits));
    Ok(client)
}

/// Verifies a master whose chain carries a CA with the pinned hash (`None`:
/// any chain, for discovery only).
#[derive(Debug)]
struct PinnedCa {
    pin: Option<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    mismatch: PinCheck,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = &self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let ca = intermediates
            .iter()
            .find(|c| hex(ring::digest::digest(&ring::digest::SHA256, c.as_ref()).as_ref()) == *pin)
            .ok_or_else(|| {
                self.mismatch
                    .0
                    .store(true, std::sync::atomic::Ordering::Release);
                rustls::Error::General(
                    "the master's CA does not match the join token's CA hash".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The verified identity of a connection's peer, if it presented a certificate.
pub fn peer_identity(conn: &quinn::Connection) -> Option<Identity> {
    let any = conn.peer_identity()?;
    let chain = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    identity_of(chain.first()?)
}

/// The ALPN a connection negotiated.
pub fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let data = conn.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
}

/// A master's endpoint config, whose stateless-reset key is derived from the
/// master's private key: the same across restarts. A restarted master then
/// answers packets of its previous incarnation's connections with a reset its
/// peers and clients accept, so they drop those connections at once instead of
/// waiting out the idle timeout (quinn's default key is random per process).
pub fn master_endpoint_config(key_pem: &str) -> quinn::EndpointConfig {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"ferry stateless reset key\0");
    ctx.update(key_pem.as_bytes());
    let seed = ctx.finish();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_ref());
    quinn::EndpointConfig::new(Arc::new(key))
}

/// Builds a client endpoint bound to an ephemeral loopback-or-any port.
pub fn client_endpoint(bind: std::net::SocketAddr) -> Result<quinn::Endpoint> {
    quinn::Endpoint::client(bind).map_err(|e| Error::Connect {
        addr: bind.to_string(),
        message: format!("cannot bind client endpoint: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_csr_is_signed_for_its_name_only_with_the_lifetime_asked() {
        let ca = Ca::generate("t").unwrap();
        let (key, csr) = new_csr().unwrap();
        let day = Duration::from_secs(86_400);
        let cert = ca.sign_node_csr(&csr, "n1", day).unwrap();
        assert_eq!(cert_identity(&cert).unwrap(), Identity::Node("n1".into()));
        let (from, to) = validity(&cert).unwrap();
        let now = std::time::SystemTime::now();
        assert!(from <= now && to > now + day - Duration::from_secs(60) && to <= now + day);
        // The certificate is for the node's key: a client config builds with it.
        let pair = CertPair {
            cert_pem: cert,
            key_pem: key,
        };
        client_config(
            &ca.pair().cert_pem,
            &pair,
            ALPN_API,
            &TransportLimits::default(),
        )
        .unwrap();
        // A garbage request is refused, naming what it is.
        let e = ca.sign_node_csr("not a csr", "n1", day).unwrap_err();
        assert!(e.to_string().contains("certificate signing request"), "{e}");
    }

    #[test]
    fn a_user_csr_is_signed_for_the_user_and_groups_and_serves_https_clients() {
        let ca = Ca::generate("t").unwrap();
        let (key, csr) = new_csr().unwrap();
        let who = Identity::User {
            name: "alice".into(),
            groups: vec!["dev".into(), "ops".into()],
            uid: String::new(),
            extra: Default::default(),
        };
        let cert = ca.sign_csr(&csr, &who, Duration::from_secs(3600)).unwrap();
        assert_eq!(cert_identity(&cert).unwrap(), who);
        let pair = CertPair {
            cert_pem: cert,
            key_pem: key,
        };
        https_client_config(&ca.pair().cert_pem, &pair, &[b"h2"]).unwrap();
    }

    #[test]
    fn issue_and_reload() {
        let ca = Ca::generate("t").unwrap();
        let again = Ca::load(&ca.pair().cert_pem, &ca.pair().key_pem).unwrap();
        let leaf = again
            .issue(&Identity::Master(3), &["127.0.0.1".parse().unwrap()])
            .unwrap();
        assert!(leaf.cert_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(ca_hash(&ca.pair().cert_pem).unwrap().len(), 64);
        assert_eq!(
            Identity::parse("master:3", vec![]),
            Some(Identity::Master(3))
        );
        assert_eq!(Identity::parse("bogus", vec![]), None);
    }
}
