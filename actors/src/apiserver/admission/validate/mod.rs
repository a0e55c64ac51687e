//! Validation per kind, with Kubernetes' field paths and wording.
//!
//! Layout: [`meta`] (metadata, labels, selectors), [`pod`] (pod specs and pod
//! updates), [`workloads`] (apps and batch kinds), [`service`] (Service, Endpoints),
//! [`netpol`] (NetworkPolicy), [`config`] (ConfigMap, Secret), [`cluster`] (Namespace, Node, ServiceAccount,
//! Event, Lease), [`rbac`] (roles and bindings), [`storage`] (claims, volumes, classes).

pub(crate) mod autoscaling;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod meta;
pub(crate) mod netpol;
pub(crate) mod pod;
pub(crate) mod rbac;
pub(crate) mod service;
pub(crate) mod storage;
pub(crate) mod workloads;
