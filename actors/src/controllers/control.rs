//! The control plane (`ferry_control`: scheduler, workload and networking
//! controllers) reaching this master's API pipeline through `ControlApi`.

use crate::apiserver::watch::ObjectWatch;
use crate::apiserver::{ApiServer, Failure};
use ferry_api::object::{ObjectEvent, ObjectRequest, ObjectResponse};
use ferry_api::proto::{ApiError, ErrorCode};
use ferry_api::tls::Identity;
use ferry_control::api::{ControlApi, EventStream, LocalFuture};

/// This master's API server as the controllers see it.
pub struct MasterApi(pub ApiServer);

struct Stream(ObjectWatch);

impl EventStream for Stream {
    fn next(&mut self) -> LocalFuture<'_, Result<ObjectEvent, ApiError>> {
        Box::pin(self.0.next())
    }
}

impl ControlApi for MasterApi {
    fn request(&self, req: ObjectRequest) -> LocalFuture<'_, Result<ObjectResponse, ApiError>> {
        Box::pin(async move { self.0.handle(&Identity::Admin, &req).await })
    }

    fn watch(&self, req: ObjectRequest) -> LocalFuture<'_, Result<Box<dyn EventStream>, ApiError>> {
        Box::pin(async move {
            match self.0.watch(&Identity::Admin, &req).await {
                Ok(w) => Ok(Box::new(Stream(w)) as Box<dyn EventStream>),
                Err(Failure::Status(s)) if s.code == 410 => {
                    Err(ApiError::new(ErrorCode::TooOld, s.message))
                }
                Err(Failure::Status(s)) => Err(ApiError::new(ErrorCode::Internal, s.message)),
                Err(Failure::Api(e)) => Err(e),
            }
        })
    }

    fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.store().leadership()
    }

    fn is_leader(&self) -> bool {
        self.0.store().is_leader()
    }
}

/// Runs the control plane on this master until the future is dropped, with
/// the master's configured `settings`.
pub async fn run(api: ApiServer, settings: ferry_control::run::Settings) {
    let api = MasterApi(api);
    ferry_control::run::run(&api, &settings).await;
}

/// Runs the garbage collector and the namespace controller on this master
/// until the future is dropped (every master runs them; they act while it leads).
pub async fn run_gc(api: ApiServer) {
    let api = MasterApi(api);
    ferry_control::run::gc::run(&api).await;
}
