//! The master's actor tree on its own actix system.
//!
//! ```text
//! MasterActors (the caller's actix System, or one on thread `ferry-actors`)
//! ├── ApiServerActor     (Supervisor) the object request pipeline
//! └── ControllerManager  (Supervisor) control loops, active while leader
//! ```
//!
//! The store, quinn and the connection tasks run on the process's tokio
//! runtime. A `ferry master` given one worker thread runs that runtime inside
//! an actix System (`src/main.rs`), and the actors run on it too: one thread,
//! and a request reaches the API server actor and its answer reaches the
//! connection task without waking another thread. Otherwise (a multi-thread
//! runtime, or several masters in one test process) each master's actors get a
//! system of their own on a thread of its own; `Addr::send` works from either
//! side. A crashed actor is restarted by its supervisor; the store
//! is not an actor here — it is a `Send + Sync` handle the actors hold, and a
//! storage failure stops Raft (and with it the master's service).

use crate::apiserver::actor::ApiServerActor;
use crate::apiserver::ApiServer;
use crate::controllers::ControllerManager;
use actix::{Addr, Supervisor};
use ferry_control::run::Settings;

/// The running actor tree of one master.
pub struct MasterActors {
    /// The API server.
    pub api: Addr<ApiServerActor>,
    /// The controller manager.
    pub controllers: Addr<ControllerManager>,
    /// The system of their own and its thread (`None`: the caller's system).
    own: Option<(actix_rt::System, std::thread::JoinHandle<()>)>,
}

/// Starts the supervised actors on the current thread's actix system.
fn start_supervised(
    api: ApiServer,
    workloads: bool,
    settings: Settings,
) -> (Addr<ApiServerActor>, Addr<ControllerManager>) {
    let a = api.clone();
    let api_addr = Supervisor::start(move |_| ApiServerActor::new(a));
    let controllers = Supervisor::start(move |_| ControllerManager::new(api, workloads, settings));
    (api_addr, controllers)
}

impl MasterActors {
    /// Starts the supervised actors: on the caller's thread when it runs an
    /// actix System, else on a system thread of their own.
    /// `workloads`: whether the controller manager runs the scheduler and the
    /// workload controllers; `settings`: what they are configured with.
    pub fn start(
        api: ApiServer,
        workloads: bool,
        settings: Settings,
    ) -> std::io::Result<MasterActors> {
        if actix_rt::System::is_registered() {
            let (api_addr, controllers) = start_supervised(api, workloads, settings);
            return Ok(MasterActors {
                api: api_addr,
                controllers,
                own: None,
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-actors".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let (api_addr, controllers) = start_supervised(api, workloads, settings);
                    let _ = tx.send((actix_rt::System::current(), api_addr, controllers));
                });
                if let Err(e) = system.run() {
                    tracing::error!("actor system failed: {e}");
                }
            })?;
        let (system, api, controllers) = rx
            .recv()
            .map_err(|_| std::io::Error::other("actor system thread died at start"))?;
        Ok(MasterActors {
            api,
            controllers,
            own: Some((system, thread)),
        })
    }

    /// Stops the actors, on either system: the controller manager is told to
    /// stop, and with every address gone neither supervisor restarts its actor
    /// (the API server actor stops once its mailbox is empty; requests it already
    /// took run to their end). A system of their own is stopped and its thread
    /// joined. The actors drop their store handles, so the data dir can be released.
    pub async fn stop(mut self) {
        self.controllers.do_send(crate::controllers::Stop);
        if let Some((system, thread)) = self.own.take() {
            system.stop();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for MasterActors {
    fn drop(&mut self) {
        if let Some((system, _)) = &self.own {
            system.stop();
        }
    }
}
