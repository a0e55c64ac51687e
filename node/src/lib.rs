//! ferry's node side: what `ferry node` runs. Depends on `ferry-api` only,
//! never on the store.
//!
//! Layout:
//! - [`format`]: the node data dir's format version (`FORMAT`), checked at start.
//! - [`join`]: joining with a bootstrap token; the node's credentials in its
//!   data dir; certificate renewal timing.
//! - [`agent`]: the agent's loops — registration, Lease and Node status
//!   heartbeats, certificate renewal, pod sync.
//! - [`node`]: the Node object and Lease as the agent reports them, its
//!   pressure conditions and taints (pure).
//! - [`eviction`]: node-pressure eviction, the kubelet's hard and soft
//!   thresholds (memory, nodefs, pids), minimum reclaim, the pressure
//!   transition period and ranking, and admission of new pods under
//!   pressure (pure).
//! - [`shutdown`]: graceful node shutdown, pods in priority groups lowest
//!   first (regular then critical ones by default) within their budgets
//!   (pure).
//! - [`events`]: the kubelet's events about pods and their containers, and
//!   the recorder that counts a repeat on the Event it repeats.
//! - [`pods`]: pod workers (start, restart with back-off, stop with a grace
//!   period) and the pod status they report.
//! - [`probe`]: liveness, readiness and startup probes (exec, httpGet,
//!   tcpSocket): the result state machine and one run of each action.
//! - [`cgroups`]: a cgroup per container (v1 or v2) with its memory, CPU and
//!   pid limits; OOM kills detected.
//! - [`dns`]: cluster DNS served by every node from its Service and
//!   EndpointSlice caches (hickory wire format), and pods' `resolv.conf`.
//! - [`env`]: a container's environment (`$(VAR)`, ConfigMap/Secret refs,
//!   the downward API) (pure).
//! - [`runtime`]: the process runtime — containers as process groups behind a
//!   shim that records their exit, re-adoptable by pid and start time.
//! - [`tunnel`]: the connection masters open streams to this node on (logs),
//!   and serving container logs (tail, since, timestamps, follow, previous).
//! - [`volumes`]: pod volumes materialized under the pod's directory (the
//!   kubelet's atomic `..data` swap) and the container's bind mounts.
//! - [`net`]: the pod network (namespaces, veths, addresses, routes, the
//!   agent's network state) and the Service
//!   proxy (nftables), and the names they own in the host namespace.
//! - [`objects`]: the object requests the agent makes.
//! - [`follow`]: objects followed by a watch into a shared map (the agent's
//!   own pods; the proxy's Services, EndpointSlices, policies, pods).
//! - [`hollow`]: hollow nodes (`ferry node --simulate N`): many Nodes from one
//!   process that register, heartbeat and report their pods Running without
//!   starting processes.

pub mod agent;
pub mod cgroups;
pub mod dns;
pub mod env;
pub mod events;
pub mod eviction;
pub mod follow;
pub mod format;
pub mod hollow;
pub mod join;
pub mod metrics;
pub mod net;
pub mod node;
pub mod objects;
pub mod pods;
pub mod probe;
pub mod runtime;
pub mod shutdown;
pub mod tunnel;
pub mod volumes;

/// Now, RFC 3339 with seconds (as Kubernetes writes times).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now, RFC 3339 with microseconds (as a Lease's `renewTime` is written).
pub fn now_micros() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}
