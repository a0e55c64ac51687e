//! The master's actor tree.
//!
//! ```text
//! MasterActors
//! ├── ApiServerActor     (Supervisor) the object request pipeline: the
//! │                      caller's actix System, or one on thread `ferry-actors`
//! └── ControllerManager  (Supervisor) control loops, active while leader:
//!                        always an actix System on thread `ferry-control`
//! ```
//!
//! The store, quinn and the connection tasks run on the process's tokio
//! runtime. A `ferry master` given one worker thread runs that runtime inside
//! an actix System (`src/main.rs`), and the API server actor runs on it too:
//! one thread, and a request reaches the API server actor and its answer
//! reaches the connection task without waking another thread. Otherwise (a
//! multi-thread runtime, or several masters in one test process) it gets a
//! system of its own on a thread of its own; `Addr::send` works from either
//! side.
//!
//! The controller manager always gets a thread of its own: its work comes in
//! long stretches (a scheduling pass over thousands of nodes, an informer's
//! first list, a resync), and on the thread that runs Raft any stretch longer
//! than the election timeout costs the cluster its leader — the heartbeats
//! wait behind it. On a thread of its own the kernel shares the cores between
//! the two, and Raft's heartbeats go out on time while the scheduler works.
//!
//! A crashed actor is restarted by its supervisor; the store is not an actor
//! here — it is a `Send + Sync` handle the actors hold, and a storage failure
//! stops Raft (and with it the master's service).

use crate::apiserver::actor::ApiServerActor;
use crate::apiserver::ApiServer;
use crate::controllers::ControllerManager;
use actix::{Actor, Addr, Supervisor};
use ferry_control::run::Settings;

/// An actix system of the master's own and the thread it runs on.
type OwnSystem = (actix_rt::System, std::thread::JoinHandle<()>);

/// The running actor tree of one master.
pub struct MasterActors {
    /// The API server.
    pub api: Addr<ApiServerActor>,
    /// The controller manager.
    pub controllers: Addr<ControllerManager>,
    /// The systems of their own and their threads.
    own: Vec<OwnSystem>,
}

/// Runs `start` on a new actix system on thread `name`; returns the address
/// it gave and the system.
fn on_own_thread<A: Actor>(
    name: &str,
    start: impl FnOnce() -> Addr<A> + Send + 'static,
) -> std::io::Result<(Addr<A>, OwnSystem)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let _ = tx.send((actix_rt::System::current(), start()));
            });
            if let Err(e) = system.run() {
                tracing::error!("actor system failed: {e}");
            }
        })?;
    let (system, addr) = rx
        .recv()
        .map_err(|_| std::io::Error::other("actor system thread died at start"))?;
    Ok((addr, (system, thread)))
}

impl MasterActors {
    /// Starts the supervised actors: the API server on the caller's thread
    /// when it runs an actix System, else on a system thread of its own; the
    /// controller manager on a system thread of its own.
    /// `workloads`: whether the controller manager runs the scheduler and the
    /// workload controllers; `settings`: what they are configured with.
    pub fn start(
        api: ApiServer,
        workloads: bool,
        settings: Settings,
    ) -> std::io::Result<MasterActors> {
        let mut own = Vec::new();
        let a = api.clone();
        let api_addr = if actix_rt::System::is_registered() {
            Supervisor::start(move |_| ApiServerActor::new(a))
        } else {
            let (addr, system) = on_own_thread("ferry-actors", move || {
                Supervisor::start(move |_| ApiServerActor::new(a))
            })?;
            own.push(system);
            addr
        };
        let (controllers, system) = on_own_thread("ferry-control", move || {
            Supervisor::start(move |_| ControllerManager::new(api, workloads, settings))
        })?;
        own.push(system);
        Ok(MasterActors {
            api: api_addr,
            controllers,
            own,
        })
    }

    /// Stops the actors: the controller manager is told to stop, and with
    /// every address gone neither supervisor restarts its actor (the API
    /// server actor stops once its mailbox is empty; requests it already took
    /// run to their end). The systems of their own are stopped and their
    /// threads joined. The actors drop their store handles, so the data dir
    /// can be released.
    pub async fn stop(mut self) {
        self.controllers.do_send(crate::controllers::Stop);
        for (system, thread) in std::mem::take(&mut self.own) {
            system.stop();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for MasterActors {
    fn drop(&mut self) {
        for (system, _) in &self.own {
            system.stop();
        }
    }
}
