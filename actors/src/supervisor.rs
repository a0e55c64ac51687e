//! The master's actor tree on its own actix system.
//!
//! ```text
//! MasterActors (actix System on thread `ferry-actors`)
//! ├── ApiServerActor     (Supervisor) the object request pipeline
//! └── ControllerManager  (Supervisor) control loops, active while leader
//! ```
//!
//! The store, quinn and the connection tasks run on the process's tokio
//! runtime; the actors run on this system's arbiter, and `Addr::send` works from
//! either side. Each master has its own system, so several masters can run in
//! one test process. A crashed actor is restarted by its supervisor; the store
//! is not an actor here — it is a `Send + Sync` handle the actors hold, and a
//! storage failure stops Raft (and with it the master's service).

use crate::apiserver::actor::ApiServerActor;
use crate::apiserver::ApiServer;
use crate::controllers::ControllerManager;
use actix::{Addr, Supervisor};

/// The running actor tree of one master.
pub struct MasterActors {
    /// The API server.
    pub api: Addr<ApiServerActor>,
    /// The controller manager.
    pub controllers: Addr<ControllerManager>,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MasterActors {
    /// Starts the actor system thread and the supervised actors on it.
    pub fn start(api: ApiServer) -> std::io::Result<MasterActors> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-actors".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let a = api.clone();
                    let api_addr = Supervisor::start(move |_| ApiServerActor::new(a));
                    let controllers = Supervisor::start(move |_| ControllerManager::new(api));
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
            system,
            thread: Some(thread),
        })
    }

    /// Stops every actor and waits for the system thread (the actors drop their
    /// store handles, so the data dir can be released).
    pub async fn stop(mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for MasterActors {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.system.stop();
        }
    }
}
