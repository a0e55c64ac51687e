//! The Kubernetes API over QUIC against an in-process 3-master cluster: every
//! verb and subresource, selectors and pages, watches (resume, 410, failover),
//! deletion with finalizers and propagation, and bad input.
//!
//! Layout:
//! - `harness`: the store tests' `TestCluster` (shared file).
//! - [`api`]: a small typed client for the tests.
//! - [`verbs`]: create, get, update, patch, and the status, scale and binding subresources.
//! - [`lists`]: selectors and pagination.
//! - [`watches`]: watch order, selectors, bookmarks, 410 Gone, failover.
//! - [`deletion`]: finalizers, grace periods, propagation, namespaces.
//! - [`services`]: ClusterIP and NodePort allocation.
//! - [`bad_input`]: malformed and refused requests.
//! - [`rbac`]: Roles and bindings for a user, access reviews, escalation checks.
//! - [`tokens`]: service-account tokens over HTTPS (bearer), bound tokens, anonymous 401.
//! - [`generation`]: `metadata.generation` per kind, as Kubernetes 1.33 keeps it.
//! - [`kubectl`]: real kubectl over HTTPS: client-side and server-side apply in turns.
//! - [`cli_as`]: `ferry --as` over QUIC, with the impersonation checks of HTTPS.
//! - [`ipam`]: node pod ranges running out and handed on when a Node goes.
//! - [`adoption`]: controllers adopt orphans their selectors match, release relabelled pods.
//! - [`replicationcontrollers`]: the core/v1 kind served (defaults, validation,
//!   scale) and kept at its replicas by the ReplicaSet controller's core.
//! - [`authn`]: the node authorizer's graph (Secrets, ConfigMaps), impersonation, TokenReview.

#[path = "../store/harness.rs"]
#[allow(dead_code)]
mod harness;

mod adoption;
mod api;
mod authn;
mod bad_input;
mod cli_as;
mod deletion;
mod ephemeral;
mod events;
mod generation;
mod ipam;
mod kubectl;
mod lists;
mod priority;
mod quota;
mod rbac;
mod replicationcontrollers;
mod services;
mod tokens;
mod verbs;
mod watches;
