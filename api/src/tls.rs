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

    /// Issues a certificate for `identity` with a new key, valid until 2124
    /// (admin configs). Masters get the server name and `ips` as SANs.
    pub fn issue(&self, identity: &Identity, ips: &[IpAddr]) -> Result<CertPair> {
        self.issue_with(identity, &Sans::ips(ips), None, None)
    }

    /// [`Ca::issue`] for `key_pem` (a new key when `None`: a renewed
    /// certificate keeps its key, so renewal rewrites one file), valid from now
    /// for `lifetime` (until 2124 when `None`); `not_before` is a little early,
    /// as for nodes ([`Ca::sign_csr`]).
    pub fn issue_with(
        &self,
        identity: &Identity,
        sans: &Sans,
        key_pem: Option<&str>,
        lifetime: Option<Duration>,
    ) -> Result<CertPair> {
        let key = match key_pem {
            Some(pem) => KeyPair::from_pem(pem).map_err(tls_err("certificate key"))?,
            None => KeyPair::generate().map_err(tls_err("generate key"))?,
        };
        let mut params = CertificateParams::new(vec![
            MASTER_SERVER_NAME.to_string(),
            "localhost".to_string(),
        ])
        .map_err(tls_err("certificate"))?;
        if !matches!(identity, Identity::Master(_)) {
            params.subject_alt_names.clear();
        }
        for name in &sans.names {
            let name = name
                .clone()
                .try_into()
                .map_err(tls_err("certificate name"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &sans.ips {
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
        match lifetime {
            None => {
                params.not_before = rcgen::date_time_ymd(2024, 1, 1);
                params.not_after = rcgen::date_time_ymd(2124, 1, 1);
            }
            Some(lifetime) => {
                let now = std::time::SystemTime::now();
                let slack = Duration::from_secs(300).min(lifetime / 4);
                params.not_before = (now - slack).into();
                params.not_after = (now + lifetime).into();
            }
        }
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(tls_err("sign certificate"))?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The names and addresses a master's certificate holds besides
/// [`MASTER_SERVER_NAME`] and `localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// DNS names.
    pub names: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl Sans {
    /// Addresses only.
    pub fn ips(ips: &[IpAddr]) -> Sans {
        Sans {
            names: Vec::new(),
            ips: ips.to_vec(),
        }
    }

    /// A master's: its address and loopback, and the names and address pods
    /// reach the API server by — the `kubernetes` Service's ClusterIP
    /// `service_ip` and `kubernetes`, `kubernetes.default`,
    /// `kubernetes.default.svc`, `kubernetes.default.svc.<domain>`, as
    /// kube-apiserver's serving certificate holds them.
    pub fn master(addr: IpAddr, service_ip: IpAddr, domain: &str) -> Sans {
        let mut ips = vec![addr, std::net::Ipv4Addr::LOCALHOST.into(), service_ip];
        ips.dedup();
        Sans {
            names: vec![
                "kubernetes".into(),
                "kubernetes.default".into(),
                "kubernetes.default.svc".into(),
                format!("kubernetes.default.svc.{domain}"),
            ],
            ips,
        }
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

/// Whether a certificate names every one of `sans`.
pub fn holds_sans(cert_pem: &str, sans: &Sans) -> Result<bool> {
    let der = cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Error::Tls(format!("bad certificate: {e}")))?;
    let mut names = std::collections::HashSet::new();
    let mut ips = std::collections::HashSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    names.insert(d.to_string());
                }
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    ips.extend(ip);
                }
                _ => {}
            }
        }
    }
    Ok(sans.names.iter().all(|n| names.contains(n)) && sans.ips.iter().all(|i| ips.contains(i)))
}

/// When a certificate is due for renewal: two thirds into its validity (as a
/// node's, and as kubelets and kubeadm renew).
pub fn renew_at(cert_pem: &str) -> Result<std::time::SystemTime> {
    let (from, to) = validity(cert_pem)?;
    let life = to.duration_since(from).unwrap_or_default();
    Ok(from + life * 2 / 3)
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

/// Of the CA certificates `cas` (PEM), the hash ([`ca_hash`]) of the one
/// whose subject is `cert_pem`'s issuer (CA names differ: a rotated CA's
/// name carries when it was made).
pub fn issuer_hash(cert_pem: &str, cas: &[&str]) -> Option<String> {
    let der = cert_der(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let issuer = cert.issuer().as_raw();
    cas.iter().find_map(|ca| {
        let ca_der = cert_der(ca).ok()?;
        let (_, c) = x509_parser::parse_x509_certificate(ca_der.as_ref()).ok()?;
        (c.subject().as_raw() == issuer).then(|| ca_hash(ca).ok())?
    })
}

/// The hash ([`ca_hash`]) of every CA of a PEM bundle.
pub fn bundle_hashes(pem: &str) -> Vec<String> {
    bundle_certs(pem)
        .unwrap_or_default()
        .iter()
        .map(|d| hex(ring::digest::digest(&ring::digest::SHA256, d.as_ref()).as_ref()))
        .collect()
}

/// Each CA certificate of a PEM bundle, as PEM.
pub fn bundle_pems(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") {
            cur.clear();
        }
        cur.push_str(line);
        cur.push('\n');
        if line.starts_with("-----END") {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
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

/// Every certificate of a PEM bundle (one CA, or several while the cluster
/// CA rotates), in order; none is an error.
pub fn bundle_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in the CA PEM".into()));
    }
    Ok(certs)
}

/// Trust anchors: every CA of `ca_pem` (a bundle trusts each of its CAs).
fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for der in bundle_certs(ca_pem)? {
        roots
            .add(der)
            .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The idle timeout the accepting side offers at least (see [`transport`]).
pub const ACCEPTED_IDLE_MS: u64 = 5000;

/// The largest UDP payload MTU discovery may find (quinn's default is 1452).
const MTU_UPPER_BOUND: u16 = 65527;

/// The QUIC transport of one side. `keep_alive`: whether this side pings.
/// Only the dialing side does (a client, a node, a master dialing a peer):
/// it keeps its own connection alive, and a master pinging every connection
/// it accepted — 5,000 nodes' — would send ten pings per connection per
/// second for nothing. Either side still closes a silent connection after
/// the idle timeout.
///
/// A connection's idle timeout is the shorter of the two sides'. The
/// accepting side offers at least [`ACCEPTED_IDLE_MS`], so each dialer's own
/// timeout decides: a master dialing a peer, a CLI and a node each close a
/// silent master's connection when they choose to, and a node may ping
/// seldom (5,000 nodes' keep-alives arrive on one socket of each master).
fn transport(limits: &TransportLimits, keep_alive: bool) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(1024u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.keep_alive_interval(keep_alive.then(|| Duration::from_millis(limits.keepalive_ms)));
    let idle = match keep_alive {
        true => limits.idle_timeout_ms,
        false => limits.idle_timeout_ms.max(ACCEPTED_IDLE_MS),
    };
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_millis(idle)).expect("idle timeout in range"),
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
/// Fixed credentials: a running master uses [`live_server_config`].
pub fn server_config(
    ca_pem: &str,
    cert: &CertPair,
    limits: &TransportLimits,
) -> Result<quinn::ServerConfig> {
    live_server_config(&Live::new(ca_pem, cert)?, limits)
}

/// The HTTPS side of a master (the Kubernetes REST front end): presents
/// `[cert, CA]`, asks for a client certificate but lets requests without one
/// through (they authenticate with a bearer token or are anonymous). TLS 1.2 and
/// 1.3, as kubectl, client-go and Python's `ssl` speak; the HTTP server adds ALPN.
/// Fixed credentials: a running master uses [`live_https_server_config`].
pub fn https_server_config(ca_pem: &str, cert: &CertPair) -> Result<rustls::ServerConfig> {
    live_https_server_config(&Live::new(ca_pem, cert)?)
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

/// A master's TLS credentials as they change while it runs: its certificate
/// (renewed before it expires) and the CAs it trusts (a bundle while the
/// cluster CA rotates). The QUIC listener, the HTTPS listener and its dials to
/// other masters read them at each handshake ([`live_server_config`],
/// [`live_https_server_config`], [`live_client_config`]): [`Live::set`]
/// takes effect for the next connection, and open connections carry on.
pub struct Live {
    state: std::sync::RwLock<LiveState>,
}

struct LiveState {
    pair: CertPair,
    trust_pem: String,
    /// `[leaf, every trusted CA]`: a joiner pins its token's CA among them.
    server: Arc<rustls::sign::CertifiedKey>,
    /// `[leaf]`, as a client.
    client: Arc<rustls::sign::CertifiedKey>,
    client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    server_verifier: Arc<rustls::client::WebPkiServerVerifier>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    /// Credentials trusting the CAs of `trust_pem` and presenting `cert`.
    pub fn new(trust_pem: &str, cert: &CertPair) -> Result<Arc<Live>> {
        Ok(Arc::new(Live {
            state: std::sync::RwLock::new(LiveState::build(trust_pem, cert)?),
        }))
    }

    /// Replaces both for every later handshake (checked whole first: on an
    /// error nothing changes).
    pub fn set(&self, trust_pem: &str, cert: &CertPair) -> Result<()> {
        let next = LiveState::build(trust_pem, cert)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// Replaces the certificate, keeping the trusted CAs (atomically: a
    /// concurrent [`Live::set_trust`] is not undone).
    pub fn set_cert(&self, cert: &CertPair) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        *state = LiveState::build(&state.trust_pem, cert)?;
        Ok(())
    }

    /// Replaces the trusted CAs, keeping the certificate (atomically).
    pub fn set_trust(&self, trust_pem: &str) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        *state = LiveState::build(trust_pem, &state.pair)?;
        Ok(())
    }

    /// The certificate presented now.
    pub fn cert(&self) -> CertPair {
        self.read().pair.clone()
    }

    /// The CAs trusted now (PEM bundle).
    pub fn trust(&self) -> String {
        self.read().trust_pem.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LiveState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl LiveState {
    fn build(trust_pem: &str, cert: &CertPair) -> Result<LiveState> {
        let cas = bundle_certs(trust_pem)?;
        let leaf = cert_der(&cert.cert_pem)?;
        let key = provider()
            .key_provider
            .load_private_key(key_der(&cert.key_pem)?)
            .map_err(|e| Error::Tls(format!("master key: {e}")))?;
        let mut chain = vec![leaf.clone()];
        chain.extend(cas);
        let server = rustls::sign::CertifiedKey::new(chain, key.clone());
        match server.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(Error::Tls(format!("master certificate and key: {e}"))),
        }
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(trust_pem)?,
            provider(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
        let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(trust_pem)?,
            provider(),
        )
        .build()
        .map_err(|e| Error::Tls(format!("server verifier: {e}")))?;
        Ok(LiveState {
            pair: cert.clone(),
            trust_pem: trust_pem.to_string(),
            server: Arc::new(server),
            client: Arc::new(rustls::sign::CertifiedKey::new(vec![leaf], key)),
            client_verifier,
            server_verifier,
        })
    }
}

/// [`Live`] as rustls' certificate resolvers and verifiers (each call reads
/// the current state).
#[derive(Debug, Clone)]
struct LiveTls(Arc<Live>);

impl rustls::server::ResolvesServerCert for LiveTls {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().server.clone())
    }
}

impl rustls::client::ResolvesClientCert for LiveTls {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().client.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::danger::ClientCertVerifier for LiveTls {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Joins come without one; other ALPNs check per connection.
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints (they would borrow from state that changes): a client
        // then offers its one certificate, as with hints that name its CA.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let v = self.0.read().client_verifier.clone();
        v.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.0.read().client_verifier.clone();
        v.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.0.read().client_verifier.clone();
        v.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.read().client_verifier.supported_verify_schemes()
    }
}

impl ServerCertVerifier for LiveTls {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let v = self.0.read().server_verifier.clone();
        v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.0.read().server_verifier.clone();
        v.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let v = self.0.read().server_verifier.clone();
        v.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.read().server_verifier.supported_verify_schemes()
    }
}

/// [`server_config`] reading `live` at each handshake.
pub fn live_server_config(
    live: &Arc<Live>,
    limits: &TransportLimits,
) -> Result<quinn::ServerConfig> {
    let tls = LiveTls(live.clone());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(tls.clone()))
        .with_cert_resolver(Arc::new(tls));
    cfg.alpn_protocols = vec![ALPN_RAFT.to_vec(), ALPN_API.to_vec(), ALPN_JOIN.to_vec()];
    cfg.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(transport(limits, false));
    Ok(server)
}

/// [`https_server_config`] reading `live` at each handshake.
pub fn live_https_server_config(live: &Arc<Live>) -> Result<rustls::ServerConfig> {
    let tls = LiveTls(live.clone());
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(tls.clone()))
        .with_cert_resolver(Arc::new(tls)))
}

/// [`client_config`] reading `live` at each handshake (a master dialing
/// another).
pub fn live_client_config(
    live: &Arc<Live>,
    alpn: &[u8],
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig> {
    let tls = LiveTls(live.clone());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(tls.clone()))
        .with_client_cert_resolver(Arc::new(tls));
    cfg.alpn_protocols = vec![alpn.to_vec()];
    finish_client(cfg, limits)
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
    client.transport_config(transport(limits, true));
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
    fn a_masters_certificate_names_the_kubernetes_service_and_an_older_one_is_told_apart() {
        let ca = Ca::generate("c").unwrap();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let sans = Sans::master(addr, "10.43.0.1".parse().unwrap(), "cluster.local");
        assert!(sans
            .names
            .contains(&"kubernetes.default.svc.cluster.local".to_string()));
        let hour = Some(Duration::from_secs(3600));
        let new = ca
            .issue_with(&Identity::Master(1), &sans, None, hour)
            .unwrap();
        assert!(holds_sans(&new.cert_pem, &sans).unwrap());
        let old = ca
            .issue_with(&Identity::Master(1), &Sans::ips(&[addr]), None, hour)
            .unwrap();
        assert!(holds_sans(&old.cert_pem, &Sans::ips(&[addr])).unwrap());
        assert!(!holds_sans(&old.cert_pem, &sans).unwrap());
        // A TLS client checks the name against it.
        let v = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert_der(&ca.pair().cert_pem).unwrap()).unwrap();
            roots
        }))
        .build()
        .unwrap();
        let end = cert_der(&new.cert_pem).unwrap();
        let now = rustls::pki_types::UnixTime::now();
        for name in ["kubernetes.default.svc", "10.43.0.1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            v.verify_server_cert(&end, &[], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("kubernetes.other").unwrap();
        assert!(v.verify_server_cert(&end, &[], &other, &[], now).is_err());
    }

    #[test]
    fn a_renewed_master_certificate_keeps_its_key_and_a_bundle_trusts_each_ca() {
        let old = Ca::generate("old").unwrap();
        let new = Ca::generate("new").unwrap();
        let ips: [IpAddr; 1] = ["127.0.0.1".parse().unwrap()];
        let hour = Duration::from_secs(3600);
        let first = old
            .issue_with(&Identity::Master(2), &Sans::ips(&ips), None, Some(hour))
            .unwrap();
        let (from, to) = validity(&first.cert_pem).unwrap();
        let now = std::time::SystemTime::now();
        assert!(from < now && to > now + hour - Duration::from_secs(60) && to <= now + hour);
        let at = renew_at(&first.cert_pem).unwrap();
        assert!(at > now + hour / 2 && at < to, "renewal two thirds in");
        let renewed = new
            .issue_with(
                &Identity::Master(2),
                &Sans::ips(&ips),
                Some(&first.key_pem),
                Some(hour),
            )
            .unwrap();
        assert_eq!(
            cert_identity(&renewed.cert_pem).unwrap(),
            Identity::Master(2)
        );
        let bundle = format!("{}{}", old.pair().cert_pem, new.pair().cert_pem);
        let (o, n) = (
            ca_hash(&old.pair().cert_pem).unwrap(),
            ca_hash(&new.pair().cert_pem).unwrap(),
        );
        assert_eq!(bundle_hashes(&bundle), [o.clone(), n.clone()]);
        assert_eq!(bundle_pems(&bundle).len(), 2);
        let both = [old.pair().cert_pem.as_str(), new.pair().cert_pem.as_str()];
        assert_eq!(issuer_hash(&first.cert_pem, &both), Some(o));
        assert_eq!(issuer_hash(&renewed.cert_pem, &both), Some(n));
        assert_eq!(issuer_hash(&renewed.cert_pem, &both[..1]), None);
        // The same key: the renewed certificate is taken with the old key.
        let live = Live::new(&bundle, &first).unwrap();
        let same_key = CertPair {
            cert_pem: renewed.cert_pem.clone(),
            key_pem: first.key_pem.clone(),
        };
        live.set(&bundle, &same_key).unwrap();
        assert_eq!(live.cert().cert_pem, renewed.cert_pem);
        // A key that does not match is refused, and nothing changes.
        let other = new.issue(&Identity::Master(3), &[]).unwrap();
        let bad = CertPair {
            cert_pem: renewed.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(live.set(&new.pair().cert_pem, &bad).is_err());
        assert_eq!(live.cert().cert_pem, renewed.cert_pem);
        assert_eq!(live.trust(), bundle);
        // Client configs take bundles; an empty one is refused.
        client_config(&bundle, &same_key, ALPN_API, &TransportLimits::default()).unwrap();
        assert!(bundle_certs("").is_err());
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
