//! Admission: every object written through the API is decoded strictly into its
//! k8s-openapi type, defaulted and validated here, as a Kubernetes API server does,
//! before the registry stores it. Pure functions of their inputs.
//!
//! Layout:
//! - [`admit`]: the entry point, dispatching on the kind.
//! - `decode`: strict decoding (type errors and unknown fields are 400s).
//! - `defaults`: `SetDefaults_*` for every served kind.
//! - `validate`: per-kind validation and update rules, as 422 field causes.
//! - `field`: field errors worded as Kubernetes words them.
//! - `cron`: CronJob schedules (quantities are `ferry_api::quantity`).

mod cron;
mod decode;
mod defaults;
mod field;
mod validate;

#[cfg(test)]
mod tests;

use ferry_api::object::{FieldValidation, Status};
use ferry_api::resources::Resource;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use field::Errors;
use validate::meta::NameRule;
use validate::{
    autoscaling, cluster, config, meta, netpol, pod, rbac, service, storage, workloads,
};

/// Defaults that are the same on create and update.
macro_rules! always {
    ($f:path) => {
        |o: &mut _, _: bool| $f(o)
    };
}

/// Update rules that do not change the new object.
macro_rules! update {
    ($f:path) => {
        |n: &mut _, o: &_, e: &mut Errors| $f(n, o, e)
    };
}

/// What the request does to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A replacement of a stored object.
    Update,
}

/// Decodes, defaults and validates `obj` (a whole object: apiVersion, kind, metadata,
/// spec, ...) of kind `res`. `old` is the stored object on update (immutable-field checks).
/// On success `obj` is replaced by the defaulted object, re-encoded through its
/// k8s-openapi type, and the answer is the warnings for the client (unknown
/// fields dropped under `fieldValidation=Warn`).
///
/// Errors: 400 BadRequest for a body that does not decode (wrong type, unknown
/// field, wrong apiVersion/kind); 422 Invalid with one cause per bad field.
pub fn admit(
    res: &Resource,
    obj: &mut Value,
    old: Option<&Value>,
    op: Operation,
    fv: FieldValidation,
) -> Result<Vec<String>, Status> {
    use NameRule::{Dns1035, Label, PathSegment, Subdomain};
    let a = Admit {
        res,
        obj,
        old,
        op,
        fv,
    };
    match res.kind {
        "Pod" if op == Operation::Create => {
            a.run(Subdomain, defaults::pod, validate_pod_create, pod_update)
        }
        "Pod" => a.run(Subdomain, defaults::pod, validate_pod, pod_update),
        "Namespace" => a.run(Label, defaults::namespace, cluster::namespace, none),
        "Node" => a.run(Subdomain, no_defaults, cluster::node, none),
        "Service" => a.run(
            Dns1035,
            always!(defaults::service),
            service::service,
            service::service_update,
        ),
        "Endpoints" => a.run(
            Subdomain,
            always!(defaults::endpoints),
            service::endpoints,
            none,
        ),
        "EndpointSlice" => a.run(
            Subdomain,
            always!(defaults::endpoint_slice),
            service::endpoint_slice,
            update!(service::endpoint_slice_update),
        ),
        "NetworkPolicy" => a.run(
            Subdomain,
            always!(defaults::network_policy),
            netpol::network_policy,
            none,
        ),
        "ResourceQuota" => a.run(
            Subdomain,
            no_defaults,
            cluster::resource_quota,
            update!(cluster::resource_quota_update),
        ),
        "LimitRange" => a.run(Subdomain, no_defaults, cluster::limit_range, none),
        "Ingress" => a.run(Subdomain, no_defaults, netpol::ingress, none),
        "IngressClass" => a.run(Subdomain, no_defaults, netpol::ingress_class, none),
        "ConfigMap" => a.run(
            Subdomain,
            no_defaults,
            config::config_map,
            update!(config::config_map_update),
        ),
        "Secret" => a.run(
            Subdomain,
            always!(defaults::secret),
            config::secret,
            update!(config::secret_update),
        ),
        "ServiceAccount" => a.run(Subdomain, no_defaults, cluster::service_account, none),
        "Event" => a.run(Subdomain, no_defaults, cluster::event, none),
        "ReplicaSet" => a.run(
            Subdomain,
            always!(defaults::replica_set),
            workloads::replica_set,
            update!(workloads::replica_set_update),
        ),
        "ReplicationController" => a.run(
            Subdomain,
            always!(defaults::replication_controller),
            workloads::replication_controller,
            none,
        ),
        "Deployment" => a.run(
            Subdomain,
            always!(defaults::deployment),
            workloads::deployment,
            update!(workloads::deployment_update),
        ),
        "DaemonSet" => a.run(
            Subdomain,
            always!(defaults::daemon_set),
            workloads::daemon_set,
            update!(workloads::daemon_set_update),
        ),
        "StatefulSet" => a.run(
            Subdomain,
            always!(defaults::stateful_set),
            workloads::stateful_set,
            update!(workloads::stateful_set_update),
        ),
        "Job" => a.run(
            Subdomain,
            defaults::job,
            workloads::job,
            workloads::job_update,
        ),
        "CronJob" => a.run(
            Subdomain,
            always!(defaults::cron_job),
            workloads::cron_job,
            none,
        ),
        "Lease" => a.run(Subdomain, no_defaults, cluster::lease, none),
        "ControllerRevision" => a.run(
            Subdomain,
            no_defaults,
            workloads::controller_revision,
            update!(workloads::controller_revision_update),
        ),
        "HorizontalPodAutoscaler" => a.run(
            Subdomain,
            always!(autoscaling::defaults),
            autoscaling::hpa,
            none,
        ),
        "PodDisruptionBudget" => {
            a.run(Subdomain, no_defaults, cluster::pod_disruption_budget, none)
        }
        "PriorityClass" => a.run(
            Subdomain,
            always!(defaults::priority_class),
            cluster::priority_class,
            update!(cluster::priority_class_update),
        ),
        "PersistentVolumeClaim" => a.run(
            Subdomain,
            storage::claim_defaults,
            storage::claim,
            update!(storage::claim_update),
        ),
        "PersistentVolume" => a.run(
            Subdomain,
            storage::volume_defaults,
            storage::volume,
            update!(storage::volume_update),
        ),
        "StorageClass" => a.run(
            Subdomain,
            always!(storage::class_defaults),
            storage::class,
            update!(storage::class_update),
        ),
        "Role" => a.run(PathSegment, no_defaults, rbac::role, none),
        "ClusterRole" => a.run(PathSegment, no_defaults, rbac::cluster_role, none),
        "RoleBinding" => a.run(
            PathSegment,
            always!(rbac::defaults_role_binding),
            rbac::role_binding,
            rbac::role_binding_update,
        ),
        "ClusterRoleBinding" => a.run(
            PathSegment,
            always!(rbac::defaults_cluster_role_binding),
            rbac::cluster_role_binding,
            rbac::cluster_role_binding_update,
        ),
        // Not stored: answered by `rbac::review`.
        k if crate::apiserver::rbac::review::KINDS.contains(&k) => Ok(Vec::new()),
        other => Err(Status::internal(format!(
            "admission has no rules for kind {other:?}"
        ))),
    }
}

pub use super::meta::qualified_kind;
pub use validate::cluster::SYSTEM_PRIORITY_CLASSES;
pub(crate) use validate::meta::selector_matches;

/// One admission request.
struct Admit<'a> {
    res: &'a Resource,
    obj: &'a mut Value,
    old: Option<&'a Value>,
    op: Operation,
    fv: FieldValidation,
}

type Defaults<T> = fn(&mut T, bool);
type Validate<T> = fn(&T, &mut Errors);
type Update<T> = fn(&mut T, &T, &mut Errors);

impl Admit<'_> {
    /// Decode → default → (update rules) → validate → re-encode.
    fn run<T>(
        self,
        names: NameRule,
        default: Defaults<T>,
        validate: Validate<T>,
        update: Update<T>,
    ) -> Result<Vec<String>, Status>
    where
        T: DeserializeOwned + Serialize + Metadata<Ty = ObjectMeta>,
    {
        let mut warnings = Vec::new();
        let mut new: T = decode::decode(self.res, self.obj, self.fv, &mut warnings)?;
        default(&mut new, self.op == Operation::Create);
        let mut update_errs = Errors::default();
        if let (Operation::Update, Some(old)) = (self.op, self.old) {
            let old: T = decode::decode_stored(self.res, old)?;
            meta::object_meta_update(new.metadata(), old.metadata(), &mut update_errs);
            update(&mut new, &old, &mut update_errs);
        }
        let mut errs = Errors::default();
        meta::object_meta(self.res, new.metadata(), names, &mut errs);
        validate(&new, &mut errs);
        errs.0.extend(update_errs.0);
        if !errs.0.is_empty() {
            let name = new.metadata().name.clone().unwrap_or_default();
            return Err(Status::invalid(&qualified_kind(self.res), &name, errs.0));
        }
        *self.obj = serde_json::to_value(&new).map_err(|e| Status::internal(e.to_string()))?;
        Ok(warnings)
    }
}

fn no_defaults<T>(_: &mut T, _: bool) {}

fn none<T>(_: &mut T, _: &T, _: &mut Errors) {}

fn validate_pod(p: &Pod, errs: &mut Errors) {
    match &p.spec {
        Some(s) => pod::pod_spec("spec", s, errs),
        None => errs.required("spec", ""),
    }
}

fn validate_pod_create(p: &Pod, errs: &mut Errors) {
    validate_pod(p, errs);
    pod::pod_create(p, errs);
}

fn pod_update(new: &mut Pod, old: &Pod, errs: &mut Errors) {
    pod::pod_update(new, old, errs);
}

fn ephemeral_update(new: &mut Pod, old: &Pod, errs: &mut Errors) {
    pod::ephemeral_update(new, old, errs);
}

/// Admits an update through `pods/ephemeralcontainers`: `obj` is the stored
/// pod `old` with the request's `spec.ephemeralContainers`; defaulted and
/// validated as a pod, with `ValidatePodEphemeralContainersUpdate`'s rules
/// instead of a pod update's.
pub fn admit_ephemeral(
    res: &Resource,
    obj: &mut Value,
    old: &Value,
    fv: FieldValidation,
) -> Result<Vec<String>, Status> {
    let a = Admit {
        res,
        obj,
        old: Some(old),
        op: Operation::Update,
        fv,
    };
    a.run(
        NameRule::Subdomain,
        defaults::pod,
        validate_pod,
        ephemeral_update,
    )
}
