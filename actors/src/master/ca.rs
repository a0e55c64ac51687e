//! A master's cluster CA as it rotates (`ferry ca rotate`, see
//! [`ferry_api::carotation`]): the CA issuing certificates now, the CAs
//! trusted, and the rotation steps.
//!
//! The rotation state is the store key [`carotation::KEY`]; every master
//! reads its applied copy every [`POLL`] and takes it in ([`CaKeeper::apply`]):
//! `ca-rotation.json` in the data dir (one atomic, durable file: a start
//! before the store is open trusts what the cluster trusted), `ca.crt` and
//! `ca.key` (the issuing CA), `join-token` (pinning the issuing CA), the
//! listeners' trust ([`tls::Live`]), and a wake-up for the certificate
//! renewal, which renews at once when the issuing CA is not its
//! certificate's. Each master then reports what it trusts and presents
//! under [`carotation::MEMBERS`].

use super::identity::{self, DataDir};
use crate::Result;
use ferry_api::carotation::{self, MemberTls, Rotation, Step};
use ferry_api::kv::{Expect, Write, WriteOp};
use ferry_api::proto::{ApiError, ApiResponse, CaStatus, Consistency, ErrorCode, RangeRequest};
use ferry_api::tls::{self, Ca, CertPair, Identity, Live};
use ferry_raft::Store;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often a master reads the rotation state.
pub const POLL: Duration = Duration::from_secs(1);

/// The data dir's copy of the rotation state.
const STATE_FILE: &str = "ca-rotation.json";

/// A master's CA and trust, as they change.
pub struct CaKeeper {
    /// The listeners' and dials' credentials.
    pub live: Arc<Live>,
    signing: RwLock<Arc<Ca>>,
    rotation: RwLock<Option<Rotation>>,
    data: DataDir,
    /// Woken when the issuing CA changes (the renewal checks its certificate).
    pub changed: tokio::sync::Notify,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

impl CaKeeper {
    /// The CA and trust of a data dir (its rotation state copy, if any), and
    /// this master's certificate.
    pub fn open(data: &DataDir, cert: &CertPair) -> Result<Arc<CaKeeper>> {
        let rotation =
            match data.read(STATE_FILE) {
                Ok(text) => Some(Rotation::decode(text.as_bytes()).map_err(|e| {
                    crate::Error::DataDirState {
                        path: data.path.join(STATE_FILE),
                        message: e,
                    }
                })?),
                Err(_) => None,
            };
        let (ca, trust) = match &rotation {
            Some(r) => {
                let s = r.signing();
                // A crash between the files' writes is repaired here.
                if data.ca().ok().map(|c| c.cert_pem) != Some(s.cert.clone()) {
                    data.write("ca.key", &s.key)?;
                    data.write("ca.crt", &s.cert)?;
                }
                (Ca::load(&s.cert, &s.key)?, r.trust())
            }
            None => {
                let ca = data.ca()?;
                (Ca::load(&ca.cert_pem, &ca.key_pem)?, ca.cert_pem)
            }
        };
        Ok(Arc::new(CaKeeper {
            live: Live::new(&trust, cert)?,
            signing: RwLock::new(Arc::new(ca)),
            rotation: RwLock::new(rotation),
            data: data.clone(),
            changed: tokio::sync::Notify::new(),
        }))
    }

    /// The CA issuing certificates now.
    pub fn ca(&self) -> Arc<Ca> {
        self.signing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The CAs trusted now (PEM bundle, the issuing one first).
    pub fn trust(&self) -> String {
        self.live.trust()
    }

    fn rotation(&self) -> Option<Rotation> {
        self.rotation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes in a rotation state (a no-op when it is the one held).
    pub fn apply(&self, r: &Rotation) -> Result<()> {
        if self.rotation().as_ref() == Some(r) {
            return Ok(());
        }
        let s = r.signing();
        let ca = Ca::load(&s.cert, &s.key)?;
        // The state file first: it is what a start trusts, and it repairs
        // the two CA files if a crash falls between them.
        self.data
            .write(STATE_FILE, &String::from_utf8_lossy(&r.encode()))?;
        self.data.write("ca.key", &s.key)?;
        self.data.write("ca.crt", &s.cert)?;
        let secret = self.data.secret()?;
        self.data.write(
            "join-token",
            &format!("{}\n", identity::make_token(&s.cert, &secret)?),
        )?;
        self.live.set_trust(&r.trust())?;
        *self.signing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ca);
        *self.rotation.write().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
        tracing::info!(step = r.step.name(), "cluster CA rotation state taken in");
        self.changed.notify_one();
        Ok(())
    }

    /// The data dir.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// This master's report: what it trusts, which CA issued its certificate.
    pub fn report(&self) -> MemberTls {
        member_report(&self.live.cert().cert_pem, &self.trust())
    }
}

/// The CAs a data dir's master trusts (PEM bundle): its rotation state's,
/// else its CA.
pub fn trust_of(data: &DataDir) -> Result<String> {
    match data.read(STATE_FILE) {
        Ok(text) => Rotation::decode(text.as_bytes())
            .map(|r| r.trust())
            .map_err(|e| crate::Error::DataDirState {
                path: data.path.join(STATE_FILE),
                message: e,
            }),
        Err(_) => Ok(data.ca()?.cert_pem),
    }
}

/// What a holder of `cert_pem` trusting `trust` reports.
pub fn member_report(cert_pem: &str, trust: &str) -> MemberTls {
    let pems = tls::bundle_pems(trust);
    let cas: Vec<&str> = pems.iter().map(String::as_str).collect();
    MemberTls {
        trusts: tls::bundle_hashes(trust),
        issuer: tls::issuer_hash(cert_pem, &cas).unwrap_or_default(),
    }
}

/// Stores `report` under `name` unless the stored one is the same.
pub async fn record(store: &Store, name: &str, report: &MemberTls) -> Result<(), ApiError> {
    let key = format!("{}{name}", carotation::MEMBERS);
    let value = serde_json::to_vec(report).map_err(internal)?;
    if let Ok((Some(kv), _)) = store.get(&key, Consistency::Local).await {
        if kv.value == value {
            return Ok(());
        }
    }
    store
        .write(Write::Op(WriteOp::Put {
            key,
            value,
            expect: Expect::Any,
        }))
        .await?
        .map_err(|e| internal(e.to_string()))?;
    Ok(())
}

/// Reads the rotation state every [`POLL`] from this master's applied
/// store and takes it in; reports this master's certificates whenever they
/// change (a rotation step, a renewal).
pub async fn follow(store: Store, keeper: Arc<CaKeeper>) {
    let name = format!("master-{}", store.id());
    let mut reported: Option<MemberTls> = None;
    loop {
        if let Ok((Some(kv), _)) = store.get(carotation::KEY, Consistency::Local).await {
            match Rotation::decode(&kv.value) {
                Ok(r) => {
                    if let Err(e) = keeper.apply(&r) {
                        tracing::error!(error = %e, "taking in the CA rotation state failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "bad CA rotation state in the store"),
            }
        }
        // Reported once a rotation was ever started (its steps need them).
        if keeper.rotation().is_some() {
            let now = keeper.report();
            if reported.as_ref() != Some(&now) {
                match record(&store, &name, &now).await {
                    Ok(()) => reported = Some(now),
                    Err(e) => tracing::debug!(error = %e, "reporting this master's certificates"),
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every master and node by name (`master-<id>`, `node-<name>`), each with
/// its stored report.
async fn members(store: &Store) -> Result<Vec<(String, Option<MemberTls>)>, ApiError> {
    let mut names: Vec<String> = store
        .status()
        .await?
        .members
        .iter()
        .map(|m| format!("master-{}", m.id))
        .collect();
    let nodes = ferry_api::resources::by_cli_name("nodes").expect("served");
    let prefix = nodes.key(None, None);
    for kv in range(store, &prefix).await? {
        if let Some(n) = kv.key.rsplit('/').next() {
            names.push(format!("node-{n}"));
        }
    }
    let reports = range(store, carotation::MEMBERS).await?;
    Ok(names
        .into_iter()
        .map(|n| {
            let key = format!("{}{n}", carotation::MEMBERS);
            let r = reports
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| serde_json::from_slice(&kv.value).ok());
            (n, r)
        })
        .collect())
}

async fn range(store: &Store, prefix: &str) -> Result<Vec<ferry_api::kv::KeyValue>, ApiError> {
    let mut out = Vec::new();
    let mut start_after = None;
    let mut consistency = Consistency::Linearizable;
    loop {
        let page = store
            .range(&RangeRequest {
                prefix: prefix.to_string(),
                start_after: start_after.clone(),
                limit: 1000,
                consistency,
            })
            .await?
            .map_err(|e| internal(e.to_string()))?;
        consistency = Consistency::AtRevision(page.revision);
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        let more = page.more;
        out.extend(page.kvs);
        if !more {
            return Ok(out);
        }
    }
}

async fn state(store: &Store) -> Result<(Option<Rotation>, Expect), ApiError> {
    let (kv, _) = store
        .get(carotation::KEY, Consistency::Linearizable)
        .await?;
    match kv {
        None => Ok((None, Expect::Absent)),
        Some(kv) => Ok((
            Some(Rotation::decode(&kv.value).map_err(internal)?),
            Expect::ModRevision(kv.mod_revision),
        )),
    }
}

fn refused(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Refused, m)
}

/// `ferry ca rotate --step <step>`: checks the order and the members, then
/// stores the next state (compare-and-set on the one read) and takes it in.
pub async fn rotate(store: &Store, keeper: &CaKeeper, step: &str) -> Result<ApiResponse, ApiError> {
    let (current, expect) = state(store).await?;
    let step = carotation::next(current.as_ref(), step).map_err(refused)?;
    let next = match (step, current) {
        (Step::Trust, prev) => {
            let old = match prev {
                Some(p) => p.new,
                None => {
                    let pair = keeper.ca().pair().clone();
                    carotation::CaPair {
                        cert: pair.cert_pem,
                        key: pair.key_pem,
                    }
                }
            };
            let made = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string();
            let ca = Ca::generate(&format!("rotated {made}")).map_err(internal)?;
            Rotation {
                step: Step::Trust,
                old,
                new: carotation::CaPair {
                    cert: ca.pair().cert_pem.clone(),
                    key: ca.pair().key_pem.clone(),
                },
            }
        }
        (step, Some(mut r)) => {
            let new_hash = tls::ca_hash(&r.new.cert).map_err(internal)?;
            let lagging = carotation::laggards(step, &new_hash, &members(store).await?);
            if !lagging.is_empty() {
                return Err(refused(format!(
                    "cannot {} yet: {}",
                    step.name(),
                    lagging.join("; ")
                )));
            }
            r.step = step;
            r
        }
        (_, None) => unreachable!("carotation::next allows only trust without a state"),
    };
    let w = Write::Op(WriteOp::Put {
        key: carotation::KEY.into(),
        value: next.encode(),
        expect,
    });
    store.write(w).await?.map_err(|_| {
        refused("another CA rotation step was taken meanwhile; see ferry ca status")
    })?;
    keeper.apply(&next).map_err(internal)?;
    tracing::warn!(step = step.name(), "cluster CA rotation step taken");
    let admin = keeper.ca().issue(&Identity::Admin, &[]).map_err(internal)?;
    Ok(ApiResponse::CaRotated {
        step: step.name().to_string(),
        trust: next.trust(),
        admin_cert: admin.cert_pem,
        admin_key: admin.key_pem,
    })
}

/// `ferry ca status`.
pub async fn status(store: &Store) -> Result<ApiResponse, ApiError> {
    let (current, _) = state(store).await?;
    let members = members(store).await?;
    let (step, trusted, blocking) = match &current {
        None => (None, Vec::new(), Vec::new()),
        Some(r) => {
            let new_hash = tls::ca_hash(&r.new.cert).map_err(internal)?;
            let blocking = match r.step {
                Step::Trust => carotation::laggards(Step::Reissue, &new_hash, &members),
                Step::Reissue => carotation::laggards(Step::Done, &new_hash, &members),
                Step::Done => Vec::new(),
            };
            let trusted = tls::bundle_pems(&r.trust())
                .into_iter()
                .map(|p| (tls::ca_hash(&p).unwrap_or_default(), p))
                .collect();
            (Some(r.step.name().to_string()), trusted, blocking)
        }
    };
    Ok(ApiResponse::CaStatus(Box::new(CaStatus {
        step,
        trusted,
        members,
        blocking,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ca: &Ca) -> carotation::CaPair {
        carotation::CaPair {
            cert: ca.pair().cert_pem.clone(),
            key: ca.pair().key_pem.clone(),
        }
    }

    #[test]
    fn a_rotation_state_is_taken_in_and_read_back_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::new(tmp.path()).unwrap();
        let old = Ca::generate("old").unwrap();
        let cert = old.issue(&Identity::Master(1), &[]).unwrap();
        data.store_credentials(old.pair(), &cert, &identity::new_secret())
            .unwrap();
        let keeper = CaKeeper::open(&data, &cert).unwrap();
        assert_eq!(keeper.trust(), old.pair().cert_pem);
        let new = Ca::generate("new").unwrap();
        let (old_hash, new_hash) = (
            tls::ca_hash(&old.pair().cert_pem).unwrap(),
            tls::ca_hash(&new.pair().cert_pem).unwrap(),
        );
        let mut r = Rotation {
            step: Step::Trust,
            old: pair(&old),
            new: pair(&new),
        };
        keeper.apply(&r).unwrap();
        // Both trusted, the old one still issuing.
        assert_eq!(
            tls::bundle_hashes(&keeper.trust()),
            [old_hash.clone(), new_hash.clone()]
        );
        assert_eq!(keeper.ca().pair().cert_pem, old.pair().cert_pem);
        let report = keeper.report();
        assert_eq!(report.issuer, old_hash);
        assert_eq!(report.trusts.len(), 2);
        r.step = Step::Reissue;
        keeper.apply(&r).unwrap();
        assert_eq!(keeper.ca().pair().cert_pem, new.pair().cert_pem);
        assert_eq!(data.ca().unwrap().cert_pem, new.pair().cert_pem);
        assert_eq!(data.ca().unwrap().key_pem, new.pair().key_pem);
        assert!(data.read("join-token").unwrap().contains(&new_hash));
        // A restart (before the store is open) trusts what was taken in.
        let again = CaKeeper::open(&data, &cert).unwrap();
        assert_eq!(again.trust(), r.trust());
        assert_eq!(again.ca().pair().cert_pem, new.pair().cert_pem);
        assert_eq!(trust_of(&data).unwrap(), r.trust());
        r.step = Step::Done;
        keeper.apply(&r).unwrap();
        assert_eq!(tls::bundle_hashes(&keeper.trust()), [new_hash]);
    }
}
