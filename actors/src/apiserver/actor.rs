//! The API server as an actix actor: typed messages in, the pipeline's answer out.
//!
//! The actor owns an [`ApiServer`] handle; each message runs the pipeline as a
//! future on the actor's arbiter, so many requests are in flight at once while
//! they wait on the store. Connection tasks (tokio) reach it through its `Addr`.

use super::commit::Once;
use super::watch::ObjectWatch;
use super::{ApiServer, Failure};
use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use ferry_api::kv::RequestId;
use ferry_api::object::{ObjectRequest, ObjectResponse};
use ferry_api::proto::ApiError;
use ferry_api::tls::Identity;

/// The API server actor.
pub struct ApiServerActor {
    api: ApiServer,
}

impl ApiServerActor {
    /// An actor serving `api`.
    pub fn new(api: ApiServer) -> Self {
        ApiServerActor { api }
    }
}

impl Actor for ApiServerActor {
    type Context = Context<Self>;
}

impl Supervised for ApiServerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("API server actor restarting");
    }
}

/// Run one non-watch object request through the pipeline.
#[derive(Message)]
#[rtype(result = "Result<ObjectResponse, ApiError>")]
pub struct Handle {
    /// The authenticated caller.
    pub who: Identity,
    /// The request.
    pub req: ObjectRequest,
    /// The client's request id and attempt (`ApiRequest::ObjectOnce`), if any.
    pub once: Option<(RequestId, u32)>,
}

impl Handler<Handle> for ApiServerActor {
    type Result = ResponseFuture<Result<ObjectResponse, ApiError>>;

    fn handle(&mut self, m: Handle, _: &mut Context<Self>) -> Self::Result {
        let api = self.api.clone();
        Box::pin(async move {
            match m.once {
                Some((id, attempt)) => {
                    Once::new(id, attempt)
                        .scope(api.handle(&m.who, &m.req))
                        .await
                }
                None => api.handle(&m.who, &m.req).await,
            }
        })
    }
}

/// Start an object watch; the caller streams its events.
#[derive(Message)]
#[rtype(result = "Result<ObjectWatch, Failure>")]
pub struct StartWatch {
    /// The authenticated caller.
    pub who: Identity,
    /// The watch request.
    pub req: ObjectRequest,
}

impl Handler<StartWatch> for ApiServerActor {
    type Result = ResponseFuture<Result<ObjectWatch, Failure>>;

    fn handle(&mut self, m: StartWatch, _: &mut Context<Self>) -> Self::Result {
        let api = self.api.clone();
        Box::pin(async move { api.watch(&m.who, &m.req).await })
    }
}

/// Authenticate a bearer token (a service-account token).
#[derive(Message)]
#[rtype(result = "Result<Identity, String>")]
pub struct Authenticate {
    /// The token.
    pub token: String,
}

impl Handler<Authenticate> for ApiServerActor {
    type Result = ResponseFuture<Result<Identity, String>>;

    fn handle(&mut self, m: Authenticate, _: &mut Context<Self>) -> Self::Result {
        let api = self.api.clone();
        Box::pin(async move { api.authenticate_token(&m.token).await })
    }
}

/// Authorize a request without running it (the pod streams: `pods/log`,
/// `pods/exec`, `pods/attach`, which the HTTPS front end serves itself).
#[derive(Message)]
#[rtype(result = "Result<(), ferry_api::object::Status>")]
pub struct Authorize {
    /// The authenticated caller.
    pub who: Identity,
    /// The request.
    pub req: ObjectRequest,
}

impl Handler<Authorize> for ApiServerActor {
    type Result = Result<(), ferry_api::object::Status>;

    fn handle(&mut self, m: Authorize, _: &mut Context<Self>) -> Self::Result {
        match self.api.route(&m.who, &m.req) {
            Ok(_) => Ok(()),
            Err(Failure::Status(s)) => Err(s),
            Err(Failure::Api(e)) => Err(ferry_api::object::Status::new(
                503,
                "ServiceUnavailable",
                e.message,
            )),
        }
    }
}

/// Check an impersonation (`Impersonate-*` headers) and answer the identity
/// the request runs as.
#[derive(Message)]
#[rtype(result = "Result<Identity, ferry_api::object::Status>")]
pub struct Impersonate {
    /// The authenticated caller.
    pub who: Identity,
    /// What it asks to act as.
    pub imp: super::impersonate::Impersonation,
}

impl Handler<Impersonate> for ApiServerActor {
    type Result = Result<Identity, ferry_api::object::Status>;

    fn handle(&mut self, m: Impersonate, _: &mut Context<Self>) -> Self::Result {
        self.api.impersonate(&m.who, &m.imp)
    }
}
