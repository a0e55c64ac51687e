//! The controller manager: control loops that act only while this master is
//! the Raft leader (leadership is Raft leadership; there is no second lease).
//!
//! Layout:
//! - [`apiserver`]: this master's apiserver Lease with its HTTPS address
//!   (every master; the leader makes the `kubernetes` Service's endpoints
//!   from them).
//! - [`bootstrap`]: the default namespaces, PriorityClasses, RBAC roles and
//!   bindings, StorageClass and service-account key, made by each new leader.
//! - [`control`]: also the garbage collector and the namespace controller
//!   (`ferry_control::run::gc`), run by every master's controller manager. (Every master also runs `apiserver::rbac::run`, its RBAC cache,
//!   and `apiserver::nodegraph::run`, its node authorizer graph.)
//! - [`control`]: the scheduler, the workload and the networking controllers (`ferry_control`),
//!   reaching this master's API pipeline through its narrow trait.
//! - [`network`]: the `kube-system/ferry-network` ConfigMap, the `kubernetes`
//!   Service, and the repair of leaked ClusterIP/NodePort allocations.
//! - [`nodes`]: the bootstrap token cleaner (node lifecycle runs in the
//!   control plane, `ferry_control::nodelifecycle`).
//!
//! Every write a controller makes goes through the API pipeline with a
//! resourceVersion precondition, so a stale leader's decision fails instead of
//! corrupting state.

pub mod apiserver;
pub mod bootstrap;
pub mod control;
pub mod network;
pub mod nodes;

use crate::apiserver::ApiServer;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Supervised,
    WrapFuture,
};
use ferry_control::run::Settings;

/// The controller manager actor; its loops run as futures in its context and a
/// loop that ends stops the actor, which its supervisor restarts.
pub struct ControllerManager {
    api: ApiServer,
    workloads: bool,
    settings: Settings,
}

impl ControllerManager {
    /// A controller manager writing through `api`; `workloads`: whether it
    /// runs the scheduler and the workload and networking controllers too,
    /// configured by `settings`.
    pub fn new(api: ApiServer, workloads: bool, settings: Settings) -> Self {
        ControllerManager {
            api,
            workloads,
            settings,
        }
    }
}

impl Actor for ControllerManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let api = self.api.clone();
        ctx.spawn(bootstrap::run(api).into_actor(self).map(|(), _, ctx| {
            tracing::warn!("bootstrap loop ended; restarting the controller manager");
            ctx.stop();
        }));
        let api = self.api.clone();
        ctx.spawn(control::run_gc(api).into_actor(self).map(|(), _, ctx| {
            tracing::warn!("garbage collector loop ended; restarting the controller manager");
            ctx.stop();
        }));
        if self.workloads {
            let api = self.api.clone();
            let settings = self.settings.clone();
            ctx.spawn(
                control::run(api, settings)
                    .into_actor(self)
                    .map(|(), _, ctx| {
                        tracing::warn!(
                            "control plane loop ended; restarting the controller manager"
                        );
                        ctx.stop();
                    }),
            );
        }
        let api = self.api.clone();
        ctx.spawn(
            crate::apiserver::rbac::run(api)
                .into_actor(self)
                .map(|(), _, ctx| {
                    tracing::warn!("RBAC cache loop ended; restarting the controller manager");
                    ctx.stop();
                }),
        );
        let api = self.api.clone();
        ctx.spawn(
            crate::apiserver::nodegraph::run(api)
                .into_actor(self)
                .map(|(), _, ctx| {
                    tracing::warn!("node graph loop ended; restarting the controller manager");
                    ctx.stop();
                }),
        );
        let api = self.api.clone();
        ctx.spawn(network::run(api).into_actor(self).map(|(), _, ctx| {
            tracing::warn!("network upkeep loop ended; restarting the controller manager");
            ctx.stop();
        }));
        if let Some(addr) = self.settings.https_address {
            let api = self.api.clone();
            ctx.spawn(
                apiserver::run(api, addr)
                    .into_actor(self)
                    .map(|(), _, ctx| {
                        tracing::warn!(
                            "apiserver lease loop ended; restarting the controller manager"
                        );
                        ctx.stop();
                    }),
            );
        }
        let api = self.api.clone();
        ctx.spawn(nodes::run(api).into_actor(self).map(|(), _, ctx| {
            tracing::warn!("token cleaner loop ended; restarting the controller manager");
            ctx.stop();
        }));
    }
}

impl Supervised for ControllerManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("controller manager restarting");
    }
}

/// Stops the controller manager for good (its master is stopping). Sent with
/// the last address dropped right after, so its supervisor, finding no address
/// left, does not restart it; its loops end with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for ControllerManager {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
