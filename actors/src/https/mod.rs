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
mod proxy;
mod remotecommand;
pub mod route;
mod serve;
pub mod spdy;
pub mod upgrade;

use crate::apiserver::actor::ApiServerActor;
use crate::{Error, Result};
use actix::Addr;
use ferry_api::tls::{self, Identity};
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
    /// Binds `addr` and serves until [`Https::stop`]; `live` holds this
    /// master's certificate (its server certificate, and its client identity
    /// toward other masters) and the CAs it trusts, read at each handshake.
    pub fn start(
        addr: SocketAddr,
        live: Arc<tls::Live>,
        api: Addr<ApiServerActor>,
        store: Store,
        tunnels: crate::tunnel::Tunnels,
    ) -> Result<Https> {
        let tls = tls::live_https_server_config(&live)?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| Error::BindHttps { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::BindHttps { addr, source })?;
        let ctx = Arc::new(serve::Ctx {
            api,
            store,
            address: local.to_string(),
            tunnels,
            live,
        });
        // As many HTTP workers as the master's runtime has threads (`ferry up`
        // gives each master its share of the cores), at most 4.
        let workers = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .clamp(1, 4);
        // actix-web's `HttpServer`, assembled by hand so each HTTP/1.1
        // connection reads through `upgrade::Sniff` (direct SPDY upgrades).
        let mut tls = tls;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let builder = actix_server::Server::build();
        // Open connections hear of a stop (HTTP/1.1 ones idle in keep-alive close).
        let stopping = builder.graceful_shutdown_signal();
        let server = builder
            .workers(workers)
            .disable_signals()
            .shutdown_timeout(1)
            .listen("ferry-https", listener, move || {
                use actix_service::ServiceFactoryExt;
                let ctx = ctx.clone();
                let app = actix_web::App::new()
                    .app_data(actix_web::web::Data::from(ctx))
                    .default_service(actix_web::web::to(serve::handle));
                let app = actix_service::map_config(
                    actix_service::IntoServiceFactory::into_factory(app)
                        .map_err(|e: actix_web::Error| e.error_response()),
                    |_| actix_web::dev::AppConfig::default(),
                );
                let stopping = stopping.clone();
                // HttpServer's defaults.
                let http = actix_http::HttpService::build()
                    .client_request_timeout(std::time::Duration::from_secs(5))
                    .client_disconnect_timeout(std::time::Duration::from_secs(1))
                    .graceful_shutdown_signal(move || {
                        let s = stopping.clone();
                        async move { s.notified().await }
                    })
                    .on_connect_ext(|io: &upgrade::Sniff<Tls>, ext| remember_identity(io, ext))
                    .finish(app)
                    .map_err(|e| tracing::debug!(error = ?e, "HTTPS connection"));
                actix_tls::accept::rustls_0_23::Acceptor::new(tls.clone())
                    .map_init_err(|_| ())
                    .map_err(|e| tracing::debug!(error = ?e, "TLS handshake"))
                    .and_then(|io: Tls| async move {
                        // Small answers go out at once (Nagle plus delayed ACKs cost ~40 ms each).
                        let _ = io.get_ref().0.set_nodelay(true);
                        let peer = io.get_ref().0.peer_addr().ok();
                        let h2 = io.get_ref().1.alpn_protocol() == Some(&b"h2"[..]);
                        let proto = if h2 {
                            actix_http::Protocol::Http2
                        } else {
                            actix_http::Protocol::Http1
                        };
                        Ok::<_, ()>((upgrade::Sniff::new(io, !h2), proto, peer))
                    })
                    .and_then(http)
            })
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

/// A TLS connection as accepted.
type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// Keeps the identity a connection's client certificate names in the
/// connection's data, where every request on it finds it.
fn remember_identity(conn: &upgrade::Sniff<Tls>, ext: &mut actix_web::dev::Extensions) {
    let (_, session) = conn.get_ref().get_ref();
    if let Some(who) = session.peer_certificates().and_then(tls::chain_identity) {
        ext.insert::<Identity>(who);
    }
}
