//! The Kubernetes REST front end: HTTPS (HTTP/1.1 and HTTP/2, actix-web on
//! rustls) beside the QUIC API, on the same pipeline.
//!
//! A request is authenticated by its connection's client certificate (the
//! cluster CA's, as on QUIC) or else by a service-account bearer token, then
//! runs as the user its `Impersonate-*` headers name if the caller may
//! impersonate it, is routed ([`route`]) to an [`ObjectRequest`] or a
//! discovery document, and object requests go to the [`ApiServerActor`] exactly
//! as QUIC requests do: one implementation of every verb. The answer is encoded
//! as the client asked ([`content`]): JSON, YAML, a `Table` or
//! `PartialObjectMetadata`.
//!
//! [`ObjectRequest`]: ferry_api::object::ObjectRequest

pub mod content;
mod hpa_v1;
mod pods;
mod portforward;
pub mod route;
mod serve;
pub mod spdy;

use crate::apiserver::actor::ApiServerActor;
use crate::{Error, Result};
use actix::Addr;
use ferry_api::tls::{self, CertPair, Identity};
use ferry_raft::Store;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body accepted: Kubernetes' 3 MiB request limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A running HTTPS front end.
pub struct Https {
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<()>,
    /// The bound address.
    pub addr: SocketAddr,
}

impl Https {
    /// Binds `addr` and serves until [`Https::stop`]; `cert` is this master's
    /// (its server certificate, and its client identity toward other masters).
    pub fn start(
        addr: SocketAddr,
        ca_pem: &str,
        cert: &CertPair,
        api: Addr<ApiServerActor>,
        store: Store,
        tunnels: crate::tunnel::Tunnels,
    ) -> Result<Https> {
        let tls = tls::https_server_config(ca_pem, cert)?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| Error::BindHttps { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::BindHttps { addr, source })?;
        let relay = ferry_config::ClientConfig {
            masters: Vec::new(),
            ca_cert: ca_pem.to_string(),
            client_cert: cert.cert_pem.clone(),
            client_key: cert.key_pem.clone(),
            timeout_ms: 10_000,
            api_server: None,
        };
        let ctx = Arc::new(serve::Ctx {
            api,
            store,
            address: local.to_string(),
            tunnels,
            relay,
        });
        // As many HTTP workers as the master's runtime has threads (`ferry up`
        // gives each master its share of the cores), at most 4.
        let workers = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .clamp(1, 4);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(actix_web::web::Data::from(ctx.clone()))
                .default_service(actix_web::web::to(serve::handle))
        })
        .on_connect(remember_identity)
        // Small answers go out at once (Nagle plus delayed ACKs cost ~40 ms each).
        .tcp_nodelay(true)
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(1)
        .listen_rustls_0_23(listener, tls)
        .map_err(|source| Error::BindHttps { addr, source })?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTPS front end failed");
            }
        });
        tracing::info!(addr = %local, "Kubernetes REST API listening (HTTPS)");
        Ok(Https {
            handle,
            task,
            addr: local,
        })
    }

    /// Stops taking connections and ends the ones open (watches end; their
    /// clients resume on another master) within a second.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Keeps the identity a connection's client certificate names in the
/// connection's data, where every request on it finds it.
fn remember_identity(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(stream) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = stream.get_ref();
    if let Some(who) = session.peer_certificates().and_then(tls::chain_identity) {
        ext.insert::<Identity>(who);
    }
}
