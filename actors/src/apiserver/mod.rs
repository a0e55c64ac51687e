//! The Kubernetes object API server: admission (decode, default, validate).

pub mod admission;
