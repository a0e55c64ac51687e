//! ferry's controllers and scheduler, in the spirit of kube-rs's `kube-runtime`:
//! each controller is a pure `reconcile` over typed objects read from informer
//! caches, returning the writes it wants; a thin shell makes those writes
//! through the API with preconditions. The crate reaches the API through one
//! narrow trait ([`api::ControlApi`]), so it runs inside a master today and
//! could run out of process later; it depends on `ferry-api`, never on the store.
//!
//! Layout:
//! - [`api`]: the narrow trait, and typed helpers over it.
//! - [`cache`], [`informer`]: one list-then-watch per kind feeding an in-memory
//!   cache with indexes; it resumes from its last revision after a failover.
//! - [`queue`]: a work queue with de-duplication and per-key back-off.
//! - [`claim`]: which objects a controller controls (adopting orphans its
//!   selector matches, releasing those it no longer matches).
//! - [`meta`]: owner references, pod readiness, label selectors, template hashes.
//! - [`scheduler`]: the scheduler's pure core (filters, scores, messages).
//! - [`replicaset`], [`deployment`], [`daemonset`], [`statefulset`]: the
//!   workload controllers' reconcilers; [`replicationcontroller`]: the
//!   ReplicaSet reconciler over ReplicationControllers (an adapter).
//! - [`job`], [`cronjob`]: the batch controllers' reconcilers (and a cron parser).
//! - [`disruption`]: PodDisruptionBudget status (allowed disruptions).
//! - [`gc`]: the garbage collector's decisions over the owner-reference graph.
//! - [`namespace`]: the namespace controller's (terminating namespaces emptied,
//!   their conditions, the `kubernetes` finalizer) and the `default` ServiceAccounts.
//! - [`podgc`]: the `DisruptionTarget` pod condition, and the pod garbage collector.
//! - [`nodelifecycle`]: unreachable nodes (Lease grace), their taint and evictions.
//! - [`endpoints`]: EndpointSlices and Endpoints of Services.
//! - [`ipam`]: node pod ranges; [`loadbalancer`]: LoadBalancer addresses.
//! - [`run`]: the control plane's shell: leadership, informers, queues, writes.

pub mod api;
pub mod cache;
pub mod claim;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod eventttl;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod informer;
pub mod ingress;
pub mod ipam;
pub mod job;
pub mod loadbalancer;
pub mod meta;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod queue;
pub mod replicaset;
pub mod replicationcontroller;
pub mod run;
pub mod scheduler;
pub mod statefulset;
pub mod volume;
