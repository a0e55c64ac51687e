//! HTTPS for the ingress listener: the certificates of the Ingresses'
//! `spec.tls` Secrets, chosen by SNI.
//!
//! [`wanted`] and [`build`] are pure: which Secrets the served Ingresses
//! name, and from what the node saw of them ([`Seen`], one watch per Secret
//! by name — the node authorizer lets a node read those) the [`Certs`] map
//! — an exact host, then a wildcard (`*.example.com`, one label), else
//! ingress-nginx's self-signed "Kubernetes Ingress Controller Fake
//! Certificate" — and the [`Problem`]s to report: a Secret missing,
//! unreadable, or not a usable `kubernetes.io/tls` Secret (`tls.crt` a PEM
//! chain, `tls.key` its PEM key). A host is given the oldest served
//! Ingress's usable certificate; a `spec.tls` entry without hosts covers its
//! Ingress's rule hosts.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// The type `kubectl create secret tls` gives a Secret.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// What the node saw of one Secret (absent from the map: not yet known).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// It does not exist.
    Missing,
    /// It, as last watched.
    Found(Box<Secret>),
    /// It cannot be read (the error).
    Unreadable(String),
}

/// Something wrong with an Ingress's TLS, reported on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// Its uid (for the Event's `involvedObject`).
    pub uid: Option<String>,
    /// The Event's reason.
    pub reason: &'static str,
    /// What is wrong, naming the Secret and the hosts.
    pub message: String,
}

/// Certificates by SNI host.
#[derive(Debug, Clone)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the wildcard's suffix (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Arc<CertifiedKey>,
}

impl Certs {
    /// Only the fallback certificate.
    pub fn new(fallback: Arc<CertifiedKey>) -> Certs {
        Certs {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            fallback,
        }
    }

    /// The certificate for `sni` (none, or no Ingress's: the fallback).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(host) = sni.map(|h| h.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.fallback.clone();
        };
        self.exact
            .get(&host)
            .or_else(|| {
                host.split_once('.')
                    .and_then(|(_, suffix)| self.wildcard.get(suffix))
            })
            .unwrap_or(&self.fallback)
            .clone()
    }

    /// Whether `host` has a certificate of its own (not the fallback).
    pub fn has(&self, host: &str) -> bool {
        !Arc::ptr_eq(&self.pick(Some(host)), &self.fallback)
    }
}

/// The rustls resolver reading the current [`Certs`].
#[derive(Debug)]
pub struct Resolver(pub Arc<RwLock<Arc<Certs>>>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        Some(certs.pick(hello.server_name()))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration of the TLS listener (TLS 1.2 and 1.3, HTTP/1.1).
pub fn server_config(certs: Arc<RwLock<Arc<Certs>>>) -> Result<rustls::ServerConfig, String> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(certs)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// ingress-nginx's default certificate: self-signed, made at start.
pub fn fake_certificate() -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])
        .map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme Co".to_string());
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Kubernetes Ingress Controller Fake Certificate".to_string(),
    );
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    CertifiedKey::from_der(vec![cert.der().clone()], der, &provider())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The certificate and key of a TLS Secret, or why it is not usable.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, String> {
    let data = secret.data.clone().unwrap_or_default();
    let field = |k: &str| -> Result<Vec<u8>, String> {
        match data.get(k) {
            Some(v) if !v.0.is_empty() => Ok(v.0.clone()),
            _ => {
                let ty = secret.type_.as_deref().unwrap_or("Opaque");
                Err(if ty == TLS_SECRET_TYPE {
                    format!("it has no {k}")
                } else {
                    format!("it has no {k} (its type is {ty:?}, not {TLS_SECRET_TYPE})")
                })
            }
        }
    };
    let crt = field("tls.crt")?;
    let key = field("tls.key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no PEM CERTIFICATE".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| format!("tls.key holds no PEM private key: {e}"))?;
    if let Err(e) = x509_check(&chain[0]) {
        return Err(format!("tls.crt: {e}"));
    }
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            "tls.key is not the key of the certificate in tls.crt".to_string()
        }
        e => format!("tls.key: {e}"),
    })
}

/// The certificate parses as X.509.
fn x509_check(der: &CertificateDer<'_>) -> Result<(), String> {
    rustls::server::ParsedCertificate::try_from(der)
        .map(|_| ())
        .map_err(|e| format!("not a certificate: {e}"))
}

/// The served ones of `ingresses`, oldest first (ties by name), as
/// [`super::Table`] orders them.
pub(super) fn served<'a>(ingresses: &'a [Ingress], classes: &[IngressClass]) -> Vec<&'a Ingress> {
    let mut served: Vec<&Ingress> = ingresses
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| ferry_api::ingress::served(i, classes))
        .collect();
    served.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            i.metadata.namespace.clone(),
            i.metadata.name.clone(),
        )
    });
    served
}

fn key_of(ing: &Ingress) -> (String, String) {
    (
        ing.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        ing.metadata.name.clone().unwrap_or_default(),
    )
}

/// The Secrets (`namespace/name`) the served Ingresses name in `spec.tls`.
pub fn wanted(ingresses: &[Ingress], classes: &[IngressClass]) -> BTreeSet<String> {
    served(ingresses, classes)
        .into_iter()
        .flat_map(|i| {
            let (ns, _) = key_of(i);
            ferry_api::ingress::tls_secrets(i)
                .into_iter()
                .map(move |s| format!("{ns}/{s}"))
        })
        .collect()
}

/// The certificate map for the served Ingresses and what is known of their
/// Secrets (`namespace/name`), with the problems to report.
pub fn build(
    ingresses: &[Ingress],
    classes: &[IngressClass],
    secrets: &BTreeMap<String, Seen>,
    fallback: Arc<CertifiedKey>,
) -> (Certs, Vec<Problem>) {
    let mut certs = Certs::new(fallback);
    let mut problems = Vec::new();
    // One parse per Secret, shared by the Ingresses naming it.
    let mut parsed: BTreeMap<String, Result<Arc<CertifiedKey>, String>> = BTreeMap::new();
    for ing in served(ingresses, classes) {
        let (ns, name) = key_of(ing);
        let Some(spec) = &ing.spec else { continue };
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .filter(|h| !h.is_empty())
            .collect();
        for tls in spec.tls.iter().flatten() {
            let hosts: Vec<String> = match tls.hosts.as_deref() {
                Some(h) if !h.is_empty() => h.to_vec(),
                _ => rule_hosts.clone(),
            };
            let hosts: Vec<String> = hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
            // No Secret named: the default certificate, as ingress-nginx.
            let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let skey = format!("{ns}/{secret}");
            let outcome = match secrets.get(&skey) {
                None => continue, // not known yet
                Some(Seen::Missing) => Err((
                    "MissingTLSSecret",
                    format!("Secret {skey} named in spec.tls does not exist"),
                )),
                Some(Seen::Unreadable(e)) => Err((
                    "MissingTLSSecret",
                    format!("Secret {skey} named in spec.tls cannot be read: {e}"),
                )),
                Some(Seen::Found(s)) => parsed
                    .entry(skey.clone())
                    .or_insert_with(|| certified_key(s).map(Arc::new))
                    .clone()
                    .map_err(|why| {
                        (
                            "InvalidTLSSecret",
                            format!(
                                "Secret {skey} named in spec.tls is not a usable TLS Secret: {why}"
                            ),
                        )
                    }),
            };
            match outcome {
                Ok(ck) => {
                    for h in hosts {
                        let map = match h.strip_prefix("*.") {
                            Some(suffix) => certs.wildcard.entry(suffix.to_string()),
                            None => certs.exact.entry(h.clone()),
                        };
                        map.or_insert_with(|| ck.clone());
                    }
                }
                Err((reason, msg)) => {
                    let shown = if hosts.is_empty() {
                        "no hosts".to_string()
                    } else {
                        hosts.join(", ")
                    };
                    problems.push(Problem {
                        ingress: format!("{ns}/{name}"),
                        uid: ing.metadata.uid.clone(),
                        reason,
                        message: format!("{msg}; {shown} get the default certificate"),
                    });
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    (certs, problems)
}

/// The Event reporting `p` from `node`'s ingress listener.
pub fn event(p: &Problem, node: &str, now: &str) -> serde_json::Value {
    let (ns, name) = p.ingress.split_once('/').unwrap_or(("default", &p.ingress));
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "involvedObject": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "name": name,
            "namespace": ns,
            "uid": p.uid,
        },
        "reason": p.reason,
        "message": p.message,
        "type": "Warning",
        "source": {"component": "ferry-ingress", "host": node},
        "reportingComponent": "ferry-ingress",
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

/// Follows Secret `key` (`namespace/name`) by a watch of it by name into
/// `tx`'s map until aborted: [`Seen::Missing`] or [`Seen::Found`] once the
/// watch's initial list is in, [`Seen::Unreadable`] while it fails before
/// that.
pub async fn follow_secret(
    client: Arc<ferry_api::Client>,
    key: String,
    tx: Arc<tokio::sync::watch::Sender<BTreeMap<String, Seen>>>,
) {
    use ferry_api::object::{ObjectRequest, Verb};
    let Some((ns, name)) = key.split_once('/') else {
        return;
    };
    let publish = |seen: Seen| {
        tx.send_if_modified(|m| {
            if m.get(&key) == Some(&seen) {
                return false;
            }
            m.insert(key.clone(), seen);
            true
        });
    };
    let mut failures = 0u32;
    // Once seen, a failing watch (a master failover) keeps what was seen.
    let mut known_once = false;
    loop {
        let mut req = ObjectRequest::new(Verb::Watch, "secrets", Some(ns), None);
        req.list.allow_bookmarks = true;
        req.list.field_selector = Some(format!("metadata.name={name}"));
        let mut w = client.watch_objects(req);
        let mut current: Option<Secret> = None;
        let mut synced = false;
        loop {
            match w.next().await {
                Ok(ev) if ev.kind == "ERROR" => break, // compacted: start over
                Ok(ev) => {
                    failures = 0;
                    match ev.kind.as_str() {
                        "DELETED" => current = None,
                        "BOOKMARK" => {}
                        _ => match serde_json::from_slice::<Secret>(&ev.object) {
                            Ok(s) if s.metadata.name.as_deref() == Some(name) => current = Some(s),
                            Ok(_) => {}
                            Err(e) => {
                                publish(Seen::Unreadable(format!("it does not decode: {e}")));
                                continue;
                            }
                        },
                    }
                    synced |= ev.revision != 0;
                    if synced {
                        known_once = true;
                        publish(match &current {
                            Some(s) => Seen::Found(Box::new(s.clone())),
                            None => Seen::Missing,
                        });
                    }
                }
                Err(e) => {
                    failures += 1;
                    if known_once {
                        tracing::debug!("ingress: watching Secret {key} failed: {e}");
                    } else {
                        publish(Seen::Unreadable(e.to_string()));
                    }
                    break;
                }
            }
        }
        let ms = (200u64 << failures.min(5)).min(5000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}
