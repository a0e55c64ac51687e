//! Starting a master: identity, QUIC endpoint, store, and the accept loop.
//!
//! One UDP port carries every ALPN: `ferry-raft/1` from masters (certificate
//! `master:<id>` required), `ferry-api/1` from clients (any cluster certificate),
//! and `ferry-join/1` from masters that have no certificate yet (join token).

pub mod backups;
pub mod ca;
pub mod identity;

use crate::api_server;
use crate::apiserver::actor::ApiServerActor;
use crate::apiserver::ApiServer;
use crate::https::Https;
use crate::join::{request_join, JoinContext};
use crate::supervisor::MasterActors;
use crate::{Error, Result};
use actix::Addr;
use ferry_api::tls::{self, Ca, CertPair, Identity};
use ferry_api::{ALPN_API, ALPN_JOIN, ALPN_RAFT};
use ferry_config::{ClientConfig, MasterConfig};
use ferry_raft::network::Peers;
use ferry_raft::seed;
use ferry_raft::{Store, StoreOptions};
use identity::DataDir;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How a master comes up.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// First master of a new cluster.
    Init,
    /// Join the cluster through the master at `via`.
    Join {
        /// A current master's address.
        via: String,
        /// The join token `ferry master --init` printed.
        token: String,
        /// Become a voter even if that makes the voter count even.
        force: bool,
    },
    /// Restart from an existing data dir.
    Existing,
    /// First master of a new cluster whose store starts as the snapshot file
    /// `ferry snapshot save` wrote (`ferry master --init --restore FILE`).
    Restore(std::path::PathBuf),
    /// Carry on alone from this master's own committed state, as the only voter
    /// of a new one-master cluster, after the cluster lost quorum for good.
    ForceNewCluster,
}

/// A running master.
pub struct Master {
    /// The replicated store.
    pub store: Store,
    /// The QUIC endpoint.
    pub endpoint: quinn::Endpoint,
    /// The address peers and clients use.
    pub addr: SocketAddr,
    /// The HTTPS (Kubernetes REST) address.
    pub https_addr: SocketAddr,
    /// The data dir.
    pub data: DataDir,
    /// This master's id.
    pub id: u64,
    /// The accept loop; once told to stop it waits for its client connections to
    /// drain and hands back the tasks serving other masters (and joiners).
    accept: tokio::task::JoinHandle<tokio::task::JoinSet<()>>,
    /// Turned true to stop: no new connection or request is taken.
    stop: tokio::sync::watch::Sender<bool>,
    /// Asking to be admitted again (joined masters only).
    rejoin: Option<tokio::task::JoinHandle<()>>,
    /// Scheduled backups (`[snapshot] every`).
    backups: Option<tokio::task::JoinHandle<()>>,
    /// Renews this master's certificate before it expires.
    renewal: Option<tokio::task::JoinHandle<()>>,
    /// Follows the cluster CA rotation state.
    ca_follow: Option<tokio::task::JoinHandle<()>>,
    /// The actor tree (API server, controller manager).
    actors: Option<MasterActors>,
    /// The Kubernetes REST front end.
    https: Option<Https>,
    /// What a restore or force-new-cluster seeded the store with.
    pub seeded: Option<Seeded>,
    /// The store events this master's object watches decoded.
    decoded: crate::apiserver::watch::decoded::DecodedEvents,
}

/// What `--restore` or `--force-new-cluster` put in the store.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The revision the store starts at.
    pub revision: u64,
    /// Keys loaded.
    pub pairs: u64,
    /// Where the store it replaced was moved, if there was one.
    pub replaced: Option<std::path::PathBuf>,
}

impl Master {
    /// Sets up (if new) and starts a master.
    pub async fn start(cfg: MasterConfig, boot: Bootstrap) -> Result<Master> {
        // Before anything is written: a dir a newer ferry made is left as it is.
        ferry_raft::format::check(&cfg.data_dir)?;
        let data = DataDir::new(&cfg.data_dir)?;
        let socket = std::net::UdpSocket::bind(cfg.listen).map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let local = socket.local_addr().map_err(|source| Error::Bind {
            addr: cfg.listen,
            source,
        })?;
        let addr = cfg.advertise.unwrap_or(local);
        let existing = data.identity()?;
        let staged = seed::staged(&data.path);
        let seeding = matches!(boot, Bootstrap::Restore(_) | Bootstrap::ForceNewCluster);
        if staged && !seeding {
            return Err(Error::DataDirState {
                path: data.path.join(seed::STAGED),
                message: "a --restore or --force-new-cluster into this data dir did not finish; \
                          run the same command again to finish it"
                    .into(),
            });
        }
        let mut fresh_init = false;
        let ident = match (existing, &boot) {
            (Some(id), Bootstrap::Restore(_)) if staged => {
                tracing::warn!("finishing the restore an earlier run staged");
                id
            }
            (Some(_), Bootstrap::Restore(_)) => return Err(Error::DataDirState {
                path: data.path.clone(),
                message: "already set up: --restore starts a new cluster and needs a new data dir"
                    .into(),
            }),
            (None, Bootstrap::Restore(file)) => {
                // Checked whole before anything is written to the data dir.
                let revision = seed::stage_file(file, &data.path)?;
                tracing::info!(file = %file.display(), revision, "restoring from snapshot");
                init_credentials(
                    &data,
                    addr,
                    &master_sans(addr, &cfg.network),
                    master_cert_lifetime(&cfg),
                )?
            }
            (Some(id), Bootstrap::ForceNewCluster) => {
                if !staged {
                    let revision =
                        seed::stage_local(&data.path, cfg.store.history_revisions).await?;
                    tracing::warn!(revision, "forcing a new one-master cluster from this master's committed state");
                }
                id
            }
            (None, Bootstrap::ForceNewCluster) => return Err(Error::DataDirState {
                path: data.path.clone(),
                message: "not set up: --force-new-cluster needs the data dir of a master of the cluster to recover".into(),
            }),
            (Some(id), Bootstrap::Init | Bootstrap::Join { .. }) => {
                tracing::info!(id = id.id, dir = %data.path.display(), "data dir already set up; restarting from it");
                id
            }
            (Some(id), Bootstrap::Existing) => id,
            (None, Bootstrap::Existing) => return Err(Error::DataDirState {
                path: data.path.clone(),
                message:
                    "not set up: pass --init to start a new cluster, or --join ADDR --token TOKEN"
                        .into(),
            }),
            (None, Bootstrap::Init) => {
                fresh_init = true;
                init_credentials(
                    &data,
                    addr,
                    &master_sans(addr, &cfg.network),
                    master_cert_lifetime(&cfg),
                )?
            }
            (None, Bootstrap::Join { via, token, force }) => {
                let resp = request_join(via, token, addr, *force, None, &cfg).await?;
                data.store_credentials(
                    &CertPair {
                        cert_pem: resp.ca_cert.clone(),
                        key_pem: resp.ca_key.clone(),
                    },
                    &CertPair {
                        cert_pem: resp.cert.clone(),
                        key_pem: resp.key.clone(),
                    },
                    &resp.secret,
                )?;
                let ident = identity::Identity {
                    id: resp.id,
                    joined_via: Some(via.clone()),
                };
                data.set_identity(&ident)?;
                ident
            }
        };
        let seeded = match seeding {
            true => {
                let (s, replaced) = seed::seed(
                    &data.path,
                    ident.id,
                    &addr.to_string(),
                    cfg.store.history_revisions,
                )
                .await?;
                Some(Seeded {
                    revision: s.revision,
                    pairs: s.pairs,
                    replaced,
                })
            }
            false => None,
        };
        let cert = data.master_cert()?;
        // Read at each handshake: renewal and CA rotation swap them in place.
        let keeper = ca::CaKeeper::open(&data, &cert)?;
        let live = keeper.live.clone();
        let server = tls::live_server_config(&live, &cfg.transport)?;
        let endpoint = quinn::Endpoint::new(
            tls::master_endpoint_config(&cert.key_pem),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| Error::Endpoint { source })?;
        let peer_quic = tls::live_client_config(&live, ALPN_RAFT, &cfg.transport)?;
        let peers = Arc::new(Peers::new(
            endpoint.clone(),
            peer_quic,
            cfg.transport.max_frame_bytes,
        ));
        let store = Store::open(
            StoreOptions {
                id: ident.id,
                addr: addr.to_string(),
                dir: data.path.clone(),
                timings: cfg.raft.clone(),
                limits: cfg.store.clone(),
            },
            peers,
        )
        .await?;
        if fresh_init {
            store.initialize().await?;
        }
        let api = ApiServer::new(
            store.clone(),
            cfg.store.max_value_bytes,
            cfg.network.clone(),
        );
        let decoded = api.decoded_events();
        let lifetime = master_cert_lifetime(&cfg);
        let join_ctx = Arc::new(JoinContext {
            ca: keeper.clone(),
            master_cert_lifetime: lifetime,
            secret: data.secret()?,
            tunnels: Default::default(),
            metrics: api.metrics().clone(),
        });
        let settings = ferry_control::run::Settings {
            network: cfg.network.clone(),
            event_ttl: Duration::from_secs(cfg.event_ttl_seconds),
            https_address: Some(https_advertised(&cfg)),
        };
        let actors = MasterActors::start(api, cfg.workload_controllers, settings)
            .map_err(|source| Error::Actors { source })?;
        let https = match Https::start(
            cfg.https_addr(),
            live.clone(),
            actors.api.clone(),
            store.clone(),
            join_ctx.tunnels.clone(),
        ) {
            Ok(h) => h,
            Err(e) => {
                actors.stop().await;
                store.shutdown().await;
                return Err(e);
            }
        };
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let accept = tokio::spawn(accept_loop(
            endpoint.clone(),
            actors.api.clone(),
            store.clone(),
            join_ctx,
            cfg.transport.max_frame_bytes,
            stopping,
        ));
        let rejoin = ident.joined_via.clone().map(|via| {
            tokio::spawn(rejoin_until_member(
                store.clone(),
                data.clone(),
                via,
                addr,
                cfg.clone(),
            ))
        });
        let backups = cfg.snapshot.interval().map(|every| {
            let dir = cfg.snapshot.dir_for(&data.path);
            tracing::info!(dir = %dir.display(), ?every, keep = cfg.snapshot.keep, "scheduled backups");
            tokio::spawn(backups::run(
                store.clone(),
                dir,
                every,
                cfg.snapshot.keep as usize,
            ))
        });
        let renewal = Some(tokio::spawn(renew_certificate(
            keeper.clone(),
            ident.id,
            master_sans(addr, &cfg.network),
            lifetime,
        )));
        let ca_follow = Some(tokio::spawn(ca::follow(store.clone(), keeper)));
        tracing::info!(id = ident.id, %addr, "master started");
        Ok(Master {
            renewal,
            ca_follow,
            backups,
            store,
            endpoint,
            addr,
            data,
            id: ident.id,
            accept,
            stop,
            rejoin,
            actors: Some(actors),
            https_addr: https.addr,
            https: Some(https),
            seeded,
            decoded,
        })
    }

    /// How many store events this master's object watches have decoded so far.
    pub fn watch_decodes(&self) -> u64 {
        self.decoded.decodes()
    }

    /// Issues a client config for the admin, listing `masters`.
    pub fn admin_config(&self, masters: &[String]) -> Result<ClientConfig> {
        admin_config(&self.data, masters)
    }

    /// Stops the master, draining in this order: take no new connection or
    /// request; let the requests in flight finish (up to
    /// [`api_server::DRAIN`]) and stop the actors; stop Raft; flush the store;
    /// close the endpoint (other masters' connections); then wait until every
    /// task has let go of the store and the database is released. Then waits
    /// until the UDP port is free too, so a master can start on the same data
    /// dir and port again in this process (in-process test clusters).
    pub async fn shutdown(self) {
        self.stop(true).await
    }

    /// [`Master::shutdown`] for a process about to exit (`ferry master` on
    /// SIGTERM): the same drain, but it does not wait for quinn to let go of the
    /// UDP port (closed connections linger up to three probe timeouts; the
    /// process's exit closes the socket).
    pub async fn shutdown_for_exit(self) {
        self.stop(false).await
    }

    async fn stop(mut self, release_port: bool) {
        let local = self.endpoint.local_addr().ok();
        let started = std::time::Instant::now();
        let step = |what: &str| {
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "shutdown: {what}"
            )
        };
        // 1. No new connections; the accept loop stops and its client connections
        //    drain (watches end, requests in flight get DRAIN to finish).
        self.endpoint.set_server_config(None);
        let _ = self.stop.send(true);
        // The HTTPS front end drains beside QUIC (each gives its requests up
        // to a second), not after it.
        let https = self.https.take().map(|h| tokio::spawn(h.stop()));
        let conns = match (&mut self.accept).await {
            Ok(conns) => Some(conns),
            Err(e) => {
                tracing::warn!(error = %e, "accept loop failed");
                None
            }
        };
        if let Some(h) = https {
            let _ = h.await;
        }
        step("client connections drained");
        // 2. The actors: no one sends them requests any more.
        if let Some(actors) = self.actors.take() {
            actors.stop().await;
        }
        for task in [
            self.rejoin.take(),
            self.backups.take(),
            self.renewal.take(),
            self.ca_follow.take(),
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        step("actors stopped");
        // 3. Raft stops (a request still waiting on it fails), 4. the store is
        //    flushed, 5. the endpoint closes, which ends the other masters'
        //    connections and with them the last tasks holding the store.
        self.store.shutdown().await;
        step("Raft stopped");
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        step("store flushed");
        self.endpoint.close(0u32.into(), b"shutdown");
        if let Some(mut conns) = conns {
            while conns.join_next().await.is_some() {}
        }
        step("connections closed");
        let released = self.store.released();
        drop(self.store);
        if tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .is_err()
        {
            tracing::warn!("the store is still in use 5 s after shutdown");
        }
        step("store released");
        // Closing connections tell their peers at once; a close that is lost
        // is sent again, so give them a moment.
        let idle = Duration::from_millis(if release_port { 500 } else { 100 });
        let _ = tokio::time::timeout(idle, self.endpoint.wait_idle()).await;
        drop(self.endpoint);
        step("endpoint idle");
        // quinn releases the socket when its driver task notices the last handle is gone.
        if let Some(local) = local.filter(|_| release_port) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while std::net::UdpSocket::bind(local).is_err() {
                if tokio::time::Instant::now() > deadline {
                    tracing::warn!(%local, "UDP port still in use 5 s after shutdown");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "stopped: store flushed and released"
        );
    }
}

/// Issues an admin client config from the CA in a master's data dir
/// (trusting every CA the cluster trusts while its CA rotates).
pub fn admin_config(data: &DataDir, masters: &[String]) -> Result<ClientConfig> {
    let ca = data.ca()?;
    let issued = Ca::load(&ca.cert_pem, &ca.key_pem)?.issue(&Identity::Admin, &[])?;
    Ok(ClientConfig {
        masters: masters.to_vec(),
        ca_cert: ca::trust_of(data)?,
        client_cert: issued.cert_pem,
        client_key: issued.key_pem,
        timeout_ms: 10_000,
        api_server: None,
    })
}

/// The lifetime of the master certificates this master issues (its own
/// renewals, joining masters'): `master_cert_seconds`, or
/// `FERRY_MASTER_CERT_SECONDS` (at least 10 s) when set.
pub fn master_cert_lifetime(cfg: &MasterConfig) -> Duration {
    std::env::var(MASTER_CERT_SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(cfg.master_cert_seconds), |s| {
            Duration::from_secs(s.max(10))
        })
}

/// See [`master_cert_lifetime`].
pub const MASTER_CERT_SECONDS_ENV: &str = "FERRY_MASTER_CERT_SECONDS";

/// The addresses a master certificate names: the advertised address's and loopback.
/// The HTTPS address others reach this master at: its HTTPS listen address,
/// or, when that is a wildcard, the advertised address's IP on the HTTPS port.
fn https_advertised(cfg: &MasterConfig) -> SocketAddr {
    let https = cfg.https_addr();
    if https.ip().is_unspecified() {
        SocketAddr::new(cfg.advertise_addr().ip(), https.port())
    } else {
        https
    }
}

/// What this master's certificate names: its address, loopback, and the
/// `kubernetes` Service's ClusterIP and names pods reach it by.
fn master_sans(addr: SocketAddr, net: &ferry_config::Network) -> tls::Sans {
    tls::Sans::master(addr.ip(), net.api_service_ip(), &net.cluster_domain)
}

/// When this master's certificate `cert_pem` must be renewed: two thirds
/// into its validity; now if it runs longer than `lifetime` from now allows
/// (a certificate of an older version, valid for a century, or a shorter
/// `master_cert_seconds`), if `signing_ca` did not issue it (a CA
/// rotation's `reissue` step), or if it lacks one of `sans` (a certificate of
/// an older version, without the `kubernetes` Service's names).
fn renewal_due(
    cert_pem: &str,
    signing_ca: &str,
    sans: &tls::Sans,
    lifetime: Duration,
) -> Result<std::time::SystemTime> {
    let (_, until) = tls::validity(cert_pem)?;
    let now = std::time::SystemTime::now();
    // A minute of slack: a certificate issued just now with this lifetime fits.
    if until > now + lifetime + Duration::from_secs(60)
        || tls::issuer_hash(cert_pem, &[signing_ca]).is_none()
        || !tls::holds_sans(cert_pem, sans)?
    {
        return Ok(now);
    }
    Ok(tls::renew_at(cert_pem)?)
}

/// Renews this master's certificate when due ([`renewal_due`]), from the
/// issuing CA, for the same key: `master.crt` is replaced atomically and
/// durably (a crash leaves the old certificate or the new one, each matching
/// `master.key`), and the listeners and dials present it to every new
/// connection (QUIC, HTTPS, other masters) without a restart; open
/// connections carry on. A failure is logged and retried a minute later.
async fn renew_certificate(
    keeper: Arc<ca::CaKeeper>,
    id: u64,
    sans: tls::Sans,
    lifetime: Duration,
) {
    loop {
        let signing = keeper.ca().pair().cert_pem.clone();
        let due = match renewal_due(&keeper.live.cert().cert_pem, &signing, &sans, lifetime) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "reading this master's certificate");
                return;
            }
        };
        // Slept in steps of at most a minute, so a wall clock that moves
        // (suspend, a correction) is followed; a new issuing CA wakes it.
        let now = std::time::SystemTime::now();
        if let Ok(left) = due.duration_since(now) {
            if !left.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                    _ = keeper.changed.notified() => {}
                }
                continue;
            }
        }
        match renew_once(&keeper, id, &sans, lifetime) {
            Ok(until) => tracing::info!(
                until = %jiff::Timestamp::try_from(until).map(|t| t.to_string()).unwrap_or_default(),
                "master certificate renewed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "renewing this master's certificate failed; retrying in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

/// One renewal: returns the new certificate's expiry.
fn renew_once(
    keeper: &ca::CaKeeper,
    id: u64,
    sans: &tls::Sans,
    lifetime: Duration,
) -> Result<std::time::SystemTime> {
    let live = &keeper.live;
    let old = live.cert();
    let new = keeper.ca().issue_with(
        &Identity::Master(id),
        sans,
        Some(&old.key_pem),
        Some(lifetime),
    )?;
    // A certificate that misses them would be due again at once: a loop.
    if !tls::holds_sans(&new.cert_pem, sans)? {
        return Err(
            ferry_api::Error::Tls(format!("a new certificate lacks the names {sans:?}")).into(),
        );
    }
    // Checked whole (key match) before the file changes.
    live.set_cert(&new)?;
    if let Err(e) = keeper.data().write("master.crt", &new.cert_pem) {
        live.set_cert(&old)?;
        return Err(e);
    }
    Ok(tls::validity(&new.cert_pem)?.1)
}

fn init_credentials(
    data: &DataDir,
    addr: SocketAddr,
    sans: &tls::Sans,
    lifetime: Duration,
) -> Result<identity::Identity> {
    let ca = Ca::generate(&format!("{addr}"))?;
    let cert = ca.issue_with(&Identity::Master(1), sans, None, Some(lifetime))?;
    data.store_credentials(ca.pair(), &cert, &identity::new_secret())?;
    let admin = admin_config(data, &[addr.to_string()])?;
    data.write("admin.conf", &admin.to_toml())?;
    let ident = identity::Identity {
        id: 1,
        joined_via: None,
    };
    data.set_identity(&ident)?;
    Ok(ident)
}

/// Accepts connections until `stop` turns true; then waits for the client
/// connections to drain and returns every connection task: those serving other
/// masters and joiners end when the endpoint closes, after Raft has stopped.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    api: Addr<ApiServerActor>,
    store: Store,
    join: Arc<JoinContext>,
    max_frame: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut conns = tokio::task::JoinSet::new();
    // Each client connection (and each handshake) holds a clone: the channel
    // closes once they have all drained.
    let (draining, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    let mut stopping = stop.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let Some(incoming) = incoming else {
            break;
        };
        while conns.try_join_next().is_some() {}
        let (api, store, join, stop) = (api.clone(), store.clone(), join.clone(), stop.clone());
        let client = draining.clone();
        conns.spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "handshake failed");
                    return;
                }
            };
            let alpn = tls::alpn(&conn).unwrap_or_default();
            let who = tls::peer_identity(&conn);
            match (alpn.as_slice(), who) {
                (ALPN_API, Some(who)) => {
                    api_server::serve(api, store, join, conn, who, max_frame, stop).await;
                    drop(client);
                }
                (ALPN_RAFT, Some(who)) => {
                    drop((client, api));
                    store.serve_peer(conn, who).await
                }
                (ALPN_JOIN, _) => {
                    drop((client, api));
                    crate::join::serve_join(store, conn, join).await
                }
                (_, None) => conn.close(3u32.into(), b"a client certificate is required"),
                _ => conn.close(4u32.into(), b"unknown ALPN"),
            }
        });
    }
    drop((draining, api));
    // A handshake still under way when the stop came may hold its clone longer.
    let slack = api_server::DRAIN + Duration::from_millis(500);
    let _ = tokio::time::timeout(slack, drained.recv()).await;
    conns
}

/// A joined master keeps asking to be added until it sees itself in the membership
/// (the master that admitted it may have failed before adding it).
async fn rejoin_until_member(
    store: Store,
    data: DataDir,
    via: String,
    addr: SocketAddr,
    cfg: MasterConfig,
) {
    let marker = data.path.join("admitted");
    if marker.exists() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if store.is_member() {
            let _ = identity::write_private(&marker, b"yes\n");
            return;
        }
        let token = match data
            .ca()
            .and_then(|ca| identity::make_token(&ca.cert_pem, &data.secret()?))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot rebuild join token");
                return;
            }
        };
        tracing::info!(%via, "not a member yet; asking to join again");
        if let Err(e) = request_join(&via, &token, addr, false, Some(store.id()), &cfg).await {
            tracing::warn!(error = %e, "join retry failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::files::crash;
    use std::path::PathBuf;

    /// `identity.toml` means "set up": a power failure at any step of a
    /// first start leaves either no identity or every file of the set-up
    /// whole, and once the set-up returned, all of them.
    #[test]
    fn a_power_failure_during_set_up_never_leaves_an_identity_without_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m1");
        let addr: SocketAddr = "127.0.0.1:7100".parse().unwrap();
        let (ident, trace) = crash::record(|| {
            let data = DataDir::new(&dir).unwrap();
            init_credentials(
                &data,
                addr,
                &tls::Sans::ips(&[addr.ip()]),
                Duration::from_secs(3600),
            )
            .unwrap()
        });
        assert_eq!(ident.id, 1);
        let files = [
            "ca.crt",
            "ca.key",
            "master.crt",
            "master.key",
            "join-secret",
            "admin.conf",
        ];
        let whole: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|f| (dir.join(f), std::fs::read(dir.join(f)).unwrap()))
            .collect();
        let identity = dir.join("identity.toml");
        let mut seen_set_up = false;
        for step in 0..=trace.ops.len() {
            for disk in trace.after_power_failure(step) {
                if !disk.exists(&identity) {
                    continue;
                }
                seen_set_up = true;
                for (path, bytes) in &whole {
                    assert_eq!(
                        disk.file(path).as_ref(),
                        Some(bytes),
                        "a power failure after step {step} leaves identity.toml but not {path:?}"
                    );
                }
            }
        }
        assert!(seen_set_up, "identity.toml never durable: {:?}", trace.ops);
        for disk in trace.after_power_failure(trace.ops.len()) {
            assert!(disk.exists(&identity), "set up, then lost: {:?}", trace.ops);
            for (path, bytes) in &whole {
                assert_eq!(disk.file(path).as_ref(), Some(bytes), "{path:?}");
            }
        }
    }
}
