//! Defaults as Kubernetes sets them (`SetDefaults_*` in `pkg/apis/*/v1/defaults.go`,
//! plus what the registries' `PrepareForCreate` fills in for pods and namespaces).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, Container, Endpoints, EphemeralContainer, Namespace, NamespaceSpec,
    NamespaceStatus, Pod, PodSpec, PodStatus, PodTemplateSpec, Probe, ReplicationController,
    Secret, Service, SessionAffinityConfig, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

use ferry_api::quantity::Quantity;

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn set_str(slot: &mut Option<String>, v: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(v.to_string());
    }
}

/// Pod: its spec, requests defaulted from limits, host ports on the host network, and on create a fresh status
/// (phase Pending, QoS class).
pub(crate) fn pod(p: &mut Pod, create: bool) {
    let spec = p.spec.get_or_insert_with(Default::default);
    pod_spec(spec);
    let host_network = spec.host_network == Some(true);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        // Host-network pods listen on the host: hostPort defaults to containerPort.
        for port in c.ports.iter_mut().flatten().filter(|_| host_network) {
            if port.host_port.unwrap_or(0) == 0 {
                port.host_port = Some(port.container_port);
            }
        }
        let r = c.resources.get_or_insert_with(Default::default);
        if let Some(limits) = &r.limits {
            let req = r.requests.get_or_insert_with(Default::default);
            for (k, v) in limits {
                req.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if create {
        p.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos_class(spec).into()),
            ..Default::default()
        });
    }
}

/// A pod template's spec.
pub(crate) fn template(t: &mut PodTemplateSpec) {
    pod_spec(t.spec.get_or_insert_with(Default::default));
}

/// `SetDefaults_PodSpec` and the defaults of everything inside it.
pub(crate) fn pod_spec(s: &mut PodSpec) {
    set_str(&mut s.dns_policy, "ClusterFirst");
    set_str(&mut s.restart_policy, "Always");
    set(&mut s.security_context, Default::default());
    set(&mut s.termination_grace_period_seconds, 30);
    set_str(&mut s.scheduler_name, "default-scheduler");
    set(&mut s.enable_service_links, true);
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        container(c);
    }
    for e in s.ephemeral_containers.iter_mut().flatten() {
        ephemeral_container(e);
    }
    for v in s.volumes.iter_mut().flatten() {
        volume(v);
    }
}

fn container(c: &mut Container) {
    let policy = if image_tag_is_latest(c.image.as_deref().unwrap_or_default()) {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_str(&mut c.image_pull_policy, policy);
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    set(&mut c.resources, Default::default());
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|s| s.field_ref.as_mut()) {
            set_str(&mut f.api_version, "v1");
        }
    }
}

/// An ephemeral container's defaults are a container's (its fields are a
/// container's, less none Kubernetes defaults, plus `targetContainerName`).
fn ephemeral_container(e: &mut EphemeralContainer) {
    let target = e.target_container_name.take();
    let Ok(mut c) = serde_json::to_value(&*e).and_then(serde_json::from_value::<Container>) else {
        e.target_container_name = target;
        return;
    };
    container(&mut c);
    if let Ok(d) = serde_json::to_value(&c).and_then(serde_json::from_value::<EphemeralContainer>) {
        *e = d;
    }
    e.target_container_name = target;
}

/// Kubernetes pulls `Always` when the tag is `latest` or absent (and no digest is given).
fn image_tag_is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => !digest,
    }
}

fn probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        set_str(&mut h.path, "/");
        set_str(&mut h.scheme, "HTTP");
    }
}

fn volume(v: &mut Volume) {
    const MODE: i32 = 0o644;
    if let Some(s) = &mut v.secret {
        set(&mut s.default_mode, MODE);
    }
    if let Some(s) = &mut v.config_map {
        set(&mut s.default_mode, MODE);
    }
    if let Some(s) = &mut v.downward_api {
        set(&mut s.default_mode, MODE);
    }
    if let Some(s) = &mut v.projected {
        set(&mut s.default_mode, MODE);
        for src in s.sources.iter_mut().flatten() {
            if let Some(t) = &mut src.service_account_token {
                set(&mut t.expiration_seconds, 3600);
            }
        }
    }
}

/// `BestEffort`, `Burstable` or `Guaranteed`, from the cpu and memory requests and limits.
pub(crate) fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.as_ref();
        let add = |from: Option<&BTreeMap<String, _>>, into: &mut BTreeMap<&str, Quantity>| {
            let mut seen = 0;
            for name in ["cpu", "memory"] {
                let q = from
                    .and_then(|m| m.get(name))
                    .and_then(
                        |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                            Quantity::parse(&q.0)
                        },
                    )
                    .filter(|q| !q.is_zero());
                if let Some(q) = q {
                    let e = into.entry(name).or_insert(Quantity::ZERO);
                    e.0 += q.0;
                    seen += 1;
                }
            }
            seen
        };
        add(r.and_then(|r| r.requests.as_ref()), &mut requests);
        if add(r.and_then(|r| r.limits.as_ref()), &mut limits) < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn percent(p: &str) -> IntOrString {
    IntOrString::String(p.into())
}

/// Deployment: replicas 1, RollingUpdate 25%/25%, history 10, progress deadline 600s.
pub(crate) fn deployment(d: &mut Deployment) {
    let s = d.spec.get_or_insert_with(Default::default);
    set(&mut s.replicas, 1);
    let st = s.strategy.get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut st.type_, "RollingUpdate");
    if st.type_.as_deref() == Some("RollingUpdate") {
        let ru = st
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, percent("25%"));
        set(&mut ru.max_surge, percent("25%"));
    }
    set(&mut s.revision_history_limit, 10);
    set(&mut s.progress_deadline_seconds, 600);
    template(&mut s.template);
}

/// ReplicaSet: replicas 1.
pub(crate) fn replica_set(r: &mut ReplicaSet) {
    let s = r.spec.get_or_insert_with(Default::default);
    set(&mut s.replicas, 1);
    if let Some(t) = &mut s.template {
        template(t);
    }
}

/// ReplicationController, as `SetDefaults_ReplicationController`: the
/// selector and the object's labels, when empty, are the template's labels;
/// replicas 1.
pub(crate) fn replication_controller(rc: &mut ReplicationController) {
    let s = rc.spec.get_or_insert_with(Default::default);
    let labels = s
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if let Some(labels) = labels {
        if s.selector.as_ref().is_none_or(BTreeMap::is_empty) {
            s.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            rc.metadata.labels = Some(labels);
        }
    }
    set(&mut s.replicas, 1);
    if let Some(t) = &mut s.template {
        template(t);
    }
}

/// StatefulSet: replicas 1, OrderedReady, RollingUpdate partition 0, history 10,
/// PVC retention Retain/Retain.
pub(crate) fn stateful_set(st: &mut StatefulSet) {
    let s = st.spec.get_or_insert_with(Default::default);
    set(&mut s.replicas, 1);
    set_str(&mut s.pod_management_policy, "OrderedReady");
    let u = s
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    set_str(&mut u.type_, "RollingUpdate");
    if u.type_.as_deref() == Some("RollingUpdate") {
        let ru = u
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        set(&mut ru.partition, 0);
    }
    set(&mut s.revision_history_limit, 10);
    let r = s
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    set_str(&mut r.when_deleted, "Retain");
    set_str(&mut r.when_scaled, "Retain");
    for pvc in s.volume_claim_templates.iter_mut().flatten() {
        if let Some(ps) = &mut pvc.spec {
            set_str(&mut ps.volume_mode, "Filesystem");
        }
    }
    template(&mut s.template);
}

/// DaemonSet: RollingUpdate maxUnavailable 1 maxSurge 0, history 10.
pub(crate) fn daemon_set(d: &mut DaemonSet) {
    let s = d.spec.get_or_insert_with(Default::default);
    let u = s
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    set_str(&mut u.type_, "RollingUpdate");
    if u.type_.as_deref() == Some("RollingUpdate") {
        let ru = u
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        set(&mut ru.max_unavailable, IntOrString::Int(1));
        set(&mut ru.max_surge, IntOrString::Int(0));
    }
    set(&mut s.revision_history_limit, 10);
    template(&mut s.template);
}

/// Job: completions and parallelism 1 when both unset, backoffLimit 6, NonIndexed;
/// on create without `manualSelector: true`, the selector and pod labels the
/// registry generates (`generateSelector`); the Job's labels default to its
/// template's.
pub(crate) fn job(j: &mut Job, create: bool) {
    let uid = j.metadata.uid.clone().unwrap_or_default();
    let name = j.metadata.name.clone().unwrap_or_default();
    let s = j.spec.get_or_insert_with(Default::default);
    job_spec(s);
    if create && s.manual_selector != Some(true) {
        generate_job_selector(s, &name, &uid);
    }
    let labels = s.template.metadata.as_ref().and_then(|m| m.labels.clone());
    if labels.is_some() && j.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        j.metadata.labels = labels;
    }
}

/// The pod labels `job-name` and `controller-uid` (legacy and
/// `batch.kubernetes.io/` forms, each unless the template sets it) and a
/// selector on the uid, as Kubernetes' Job strategy makes them; a selector
/// the user wrote that disagrees is refused by validation.
fn generate_job_selector(s: &mut JobSpec, name: &str, uid: &str) {
    let labels = s
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    for (k, v) in [
        ("job-name", name),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("batch.kubernetes.io/controller-uid", uid),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.into());
    }
    s.selector
        .get_or_insert_with(Default::default)
        .match_labels
        .get_or_insert_with(Default::default)
        .entry("batch.kubernetes.io/controller-uid".into())
        .or_insert_with(|| uid.into());
}

fn job_spec(s: &mut JobSpec) {
    if s.completions.is_none() && s.parallelism.is_none() {
        s.completions = Some(1);
    }
    set(&mut s.parallelism, 1);
    let backoff = if s.backoff_limit_per_index.is_some() {
        i32::MAX
    } else {
        6
    };
    set(&mut s.backoff_limit, backoff);
    set_str(&mut s.completion_mode, "NonIndexed");
    set(&mut s.suspend, false);
    let replacement = if s.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_str(&mut s.pod_replacement_policy, replacement);
    template(&mut s.template);
}

/// CronJob: Allow, not suspended, history 3 succeeded / 1 failed.
pub(crate) fn cron_job(c: &mut CronJob) {
    let s = c.spec.get_or_insert_with(Default::default);
    set_str(&mut s.concurrency_policy, "Allow");
    set(&mut s.suspend, false);
    set(&mut s.successful_jobs_history_limit, 3);
    set(&mut s.failed_jobs_history_limit, 1);
    if let Some(t) = s.job_template.spec.as_mut() {
        template(&mut t.template);
    }
}

/// Service: ClusterIP, sessionAffinity None, ports TCP with targetPort = port,
/// internalTrafficPolicy Cluster (cluster IPs are allocated by the registry).
pub(crate) fn service(svc: &mut Service) {
    let s = svc.spec.get_or_insert_with(Default::default);
    set_str(&mut s.type_, "ClusterIP");
    set_str(&mut s.session_affinity, "None");
    if s.session_affinity.as_deref() == Some("ClientIP") {
        let c = s
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default)
            .client_ip
            .get_or_insert_with(ClientIPConfig::default);
        set(&mut c.timeout_seconds, 10800);
    }
    for p in s.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
        set(&mut p.target_port, IntOrString::Int(p.port));
    }
    let ty = s.type_.as_deref().unwrap_or_default();
    if ty != "ExternalName" {
        set_str(&mut s.internal_traffic_policy, "Cluster");
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_str(&mut s.external_traffic_policy, "Cluster");
    }
    if ty == "LoadBalancer" {
        set(&mut s.allocate_load_balancer_node_ports, true);
    }
    // Go's omitempty: a zero health check port (every protobuf body has one)
    // is none.
    if s.health_check_node_port == Some(0) {
        s.health_check_node_port = None;
    }
}

/// Secret: type Opaque; `stringData` is merged into `data` (it is write-only).
pub(crate) fn secret(s: &mut Secret) {
    set_str(&mut s.type_, "Opaque");
    if let Some(sd) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in sd {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// Namespace: the `kubernetes` finalizer, the `kubernetes.io/metadata.name` label,
/// and phase Active on create.
pub(crate) fn namespace(ns: &mut Namespace, create: bool) {
    if let Some(name) = ns.metadata.name.clone() {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    if create {
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let f = spec.finalizers.get_or_insert_with(Vec::new);
        if !f.iter().any(|f| f == "kubernetes") {
            f.push("kubernetes".into());
        }
        let st = ns.status.get_or_insert_with(NamespaceStatus::default);
        st.phase = Some("Active".into());
    }
}

/// Endpoints: ports TCP.
pub(crate) fn endpoints(e: &mut Endpoints) {
    for s in e.subsets.iter_mut().flatten() {
        for p in s.ports.iter_mut().flatten() {
            set_str(&mut p.protocol, "TCP");
        }
    }
}

/// EndpointSlice: ports TCP, a port without a name named "" (`SetDefaults_EndpointPort`).
pub(crate) fn endpoint_slice(e: &mut k8s_openapi::api::discovery::v1::EndpointSlice) {
    for p in e.ports.iter_mut().flatten() {
        p.name.get_or_insert_with(String::new);
        set_str(&mut p.protocol, "TCP");
    }
}

/// NetworkPolicy: ports TCP; policyTypes Ingress, plus Egress when there
/// are egress rules (`SetDefaults_NetworkPolicy`).
pub(crate) fn network_policy(n: &mut k8s_openapi::api::networking::v1::NetworkPolicy) {
    let Some(s) = n.spec.as_mut() else { return };
    let ports = s
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten())
        .chain(
            s.egress
                .iter_mut()
                .flatten()
                .flat_map(|r| r.ports.iter_mut().flatten()),
        );
    for p in ports {
        set_str(&mut p.protocol, "TCP");
    }
    if s.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut t = vec!["Ingress".to_string()];
        if s.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            t.push("Egress".into());
        }
        s.policy_types = Some(t);
    }
}

/// `SetDefaults_PriorityClass`: preemption policy `PreemptLowerPriority`.
pub(crate) fn priority_class(pc: &mut k8s_openapi::api::scheduling::v1::PriorityClass) {
    pc.preemption_policy
        .get_or_insert_with(|| "PreemptLowerPriority".into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", true),
            ("nginx:latest", true),
            ("nginx:1.25", false),
            ("localhost:5000/nginx", true),
            ("localhost:5000/nginx:1.0", false),
            ("nginx@sha256:abc", false),
            ("nginx:latest@sha256:abc", true),
        ];
        for (image, latest) in cases {
            assert_eq!(image_tag_is_latest(image), latest, "{image}");
        }
    }
}
