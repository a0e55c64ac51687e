//! Each kind's column definitions, as Kubernetes' printers declare them
//! (`pkg/printers/internalversion/printers.go`): names, types, formats,
//! priorities (1: only with `-o wide`) and descriptions. The descriptions are
//! the API field docs Kubernetes 1.33 quotes (`SwaggerDoc()` of the types it names).

use super::Column;

/// The columns of `kind`, or None for a kind Kubernetes has no printer for.
pub fn definitions(kind: &str) -> Option<&'static [Column]> {
    Some(match kind {
        "Pod" => POD,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" => REPLICA_SET,
        "ReplicationController" => REPLICATION_CONTROLLER,
        "DaemonSet" => DAEMON_SET,
        "StatefulSet" => STATEFUL_SET,
        "ControllerRevision" => CONTROLLER_REVISION,
        "Job" => JOB,
        "CronJob" => CRON_JOB,
        "HorizontalPodAutoscaler" => HPA,
        "Service" => SERVICE,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINT_SLICE,
        "NetworkPolicy" => NETWORK_POLICY,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Namespace" => NAMESPACE,
        "Node" => NODE,
        "Event" => EVENT,
        "Lease" => LEASE,
        "PodDisruptionBudget" => POD_DISRUPTION_BUDGET,
        "PriorityClass" => PRIORITY_CLASS,
        "PersistentVolumeClaim" => PERSISTENT_VOLUME_CLAIM,
        "PersistentVolume" => PERSISTENT_VOLUME,
        "StorageClass" => STORAGE_CLASS,
        "ResourceQuota" => RESOURCE_QUOTA,
        "Ingress" => INGRESS,
        "IngressClass" => INGRESS_CLASS,
        "Role" | "ClusterRole" | "LimitRange" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        _ => return None,
    })
}

/// A `string` column shown by default.
const fn string(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// An `integer` column shown by default.
const fn integer(name: &'static str, description: &'static str) -> Column {
    Column {
        type_: "integer",
        ..string(name, description)
    }
}

/// `c`, shown only with `-o wide` (priority 1).
const fn wide(c: Column) -> Column {
    Column { priority: 1, ..c }
}

/// The object's name (format `name`).
pub(crate) const NAME: Column = Column {
    format: "name",
    ..string("Name", OBJECT_NAME)
};
/// The object's age.
const AGE: Column = string("Age", CREATION_TIMESTAMP);
/// A pod template's container names (wide).
const CONTAINERS: Column = wide(string(
    "Containers",
    "Names of each container in the template.",
));
/// A pod template's images (wide).
const IMAGES: Column = wide(string(
    "Images",
    "Images referenced by each container in the template.",
));

const POD: &[Column] = &[
    NAME,
    string(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    string(
        "Status",
        "The aggregate status of the containers in this pod.",
    ),
    string("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide(string("IP", POD_IP)),
    wide(string("Node", POD_NODE_NAME)),
    wide(string("Nominated Node", POD_NOMINATED_NODE_NAME)),
    wide(string("Readiness Gates", POD_READINESS_GATES)),
];

const DEPLOYMENT: &[Column] = &[
    NAME,
    string("Ready", "Number of the pod with ready state"),
    string("Up-to-date", DEPLOYMENT_UPDATED),
    string("Available", DEPLOYMENT_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", DEPLOYMENT_SELECTOR)),
];

const REPLICA_SET: &[Column] = &[
    NAME,
    integer("Desired", REPLICA_SET_DESIRED),
    integer("Current", REPLICA_SET_CURRENT),
    integer("Ready", REPLICA_SET_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", REPLICA_SET_SELECTOR)),
];

const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    integer("Desired", RC_DESIRED),
    integer("Current", RC_CURRENT),
    integer("Ready", RC_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", RC_SELECTOR)),
];

const DAEMON_SET: &[Column] = &[
    NAME,
    integer("Desired", DAEMON_SET_DESIRED),
    integer("Current", DAEMON_SET_CURRENT),
    integer("Ready", DAEMON_SET_READY),
    integer("Up-to-date", DAEMON_SET_UPDATED),
    integer("Available", DAEMON_SET_AVAILABLE),
    string("Node Selector", POD_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", DAEMON_SET_SELECTOR)),
];

const STATEFUL_SET: &[Column] = &[
    NAME,
    string("Ready", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const JOB: &[Column] = &[
    NAME,
    string("Status", "Status of the job."),
    string("Completions", JOB_SUCCEEDED),
    string("Duration", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", JOB_SELECTOR)),
];

const CRON_JOB: &[Column] = &[
    NAME,
    string("Schedule", CRON_JOB_SCHEDULE),
    string("Timezone", CRON_JOB_TIME_ZONE),
    Column {
        type_: "boolean",
        ..string("Suspend", CRON_JOB_SUSPEND)
    },
    integer("Active", CRON_JOB_ACTIVE),
    string("Last Schedule", CRON_JOB_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(string("Selector", JOB_SELECTOR)),
];

const HPA: &[Column] = &[
    NAME,
    string("Reference", HPA_REFERENCE),
    string("Targets", HPA_TARGETS),
    string("MinPods", HPA_MIN),
    integer("MaxPods", HPA_MAX),
    integer("Replicas", HPA_REPLICAS),
    AGE,
];

/// `HorizontalPodAutoscalerSpec.scaleTargetRef` (autoscaling/v2).
const HPA_REFERENCE: &str = "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.";
/// `HorizontalPodAutoscalerSpec.metrics`.
const HPA_TARGETS: &str = "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.";
/// `HorizontalPodAutoscalerSpec.minReplicas`.
const HPA_MIN: &str = "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.";
/// `HorizontalPodAutoscalerSpec.maxReplicas`.
const HPA_MAX: &str = "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.";
/// `HorizontalPodAutoscalerStatus.currentReplicas`.
const HPA_REPLICAS: &str = "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.";

const SERVICE: &[Column] = &[
    NAME,
    string("Type", SERVICE_TYPE),
    string("Cluster-IP", SERVICE_CLUSTER_IP),
    string("External-IP", SERVICE_EXTERNAL_IPS),
    string("Port(s)", SERVICE_PORTS),
    AGE,
    wide(string("Selector", SERVICE_SELECTOR)),
];

const ENDPOINTS: &[Column] = &[NAME, string("Endpoints", ENDPOINTS_SUBSETS), AGE];

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    string("AddressType", SLICE_ADDRESS_TYPE),
    string("Ports", SLICE_PORTS),
    string("Endpoints", SLICE_ENDPOINTS),
    AGE,
];

const NETWORK_POLICY: &[Column] = &[NAME, string("Pod-Selector", NETPOL_POD_SELECTOR), AGE];

const CONFIG_MAP: &[Column] = &[NAME, string("Data", CONFIG_MAP_DATA), AGE];

const SECRET: &[Column] = &[
    NAME,
    string("Type", SECRET_TYPE),
    string("Data", SECRET_DATA),
    AGE,
];

const SERVICE_ACCOUNT: &[Column] = &[NAME, string("Secrets", SERVICE_ACCOUNT_SECRETS), AGE];

const NAMESPACE: &[Column] = &[NAME, string("Status", "The status of the namespace"), AGE];

const NODE: &[Column] = &[
    NAME,
    string("Status", "The status of the node"),
    string("Roles", "The roles of the node"),
    AGE,
    string("Version", NODE_KUBELET_VERSION),
    wide(string("Internal-IP", NODE_ADDRESSES)),
    wide(string("External-IP", NODE_ADDRESSES)),
    wide(string("OS-Image", NODE_OS_IMAGE)),
    wide(string("Kernel-Version", NODE_KERNEL_VERSION)),
    wide(string("Container-Runtime", NODE_CONTAINER_RUNTIME)),
];

const EVENT: &[Column] = &[
    string("Last Seen", EVENT_LAST_TIMESTAMP),
    string("Type", EVENT_TYPE),
    string("Reason", EVENT_REASON),
    string("Object", EVENT_INVOLVED_OBJECT),
    wide(string("Subobject", EVENT_FIELD_PATH)),
    wide(string("Source", EVENT_SOURCE)),
    string("Message", EVENT_MESSAGE),
    wide(string("First Seen", EVENT_FIRST_TIMESTAMP)),
    wide(string("Count", EVENT_COUNT)),
    wide(NAME),
];

const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    string("Controller", "Controller of the object"),
    string(
        "Revision",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];
const LEASE: &[Column] = &[NAME, string("Holder", LEASE_HOLDER), AGE];
const POD_DISRUPTION_BUDGET: &[Column] = &[
    NAME,
    string("Min Available", PDB_MIN_AVAILABLE),
    string("Max Unavailable", PDB_MAX_UNAVAILABLE),
    integer("Allowed Disruptions", PDB_ALLOWED),
    AGE,
];

const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    string("Status", "phase represents the current phase of PersistentVolumeClaim."),
    string("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    string("Capacity", "capacity represents the actual resources of the underlying volume."),
    string("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
    string("StorageClass", "storageClassName is the name of the StorageClass required by the claim."),
    string("VolumeAttributesClass", "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    AGE,
    wide(string("VolumeMode", "volumeMode defines what type of volume is required by the claim.")),
];

const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    string("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
    string("Access Modes", "accessModes contains all ways the volume can be mounted."),
    string("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    string("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    string("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    string("StorageClass", "storageClassName is the name of StorageClass to which this persistent volume belongs."),
    string("VolumeAttributesClass", "Name of VolumeAttributesClass to which this persistent volume belongs."),
    string("Reason", "reason is a brief CamelCase string that describes any failure."),
    AGE,
    wide(string("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.")),
];

const INGRESS: &[Column] = &[
    NAME,
    string(
        "Class",
        "The name of the IngressClass resource that should be used for ingress control.",
    ),
    string(
        "Hosts",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    string(
        "Address",
        "Address is a list containing ingress points for the load-balancer",
    ),
    string("Ports", "Ports of TLS configurations that open"),
    AGE,
];

const INGRESS_CLASS: &[Column] = &[
    NAME,
    string(
        "Controller",
        "Controller that is responsible for handling this class",
    ),
    string(
        "Parameters",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    AGE,
    string("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
    string("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
];

const STORAGE_CLASS: &[Column] = &[
    NAME,
    string("Provisioner", "provisioner indicates the type of the provisioner."),
    string("ReclaimPolicy", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
    string("VolumeBindingMode", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
    string("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

const PRIORITY_CLASS: &[Column] = &[
    NAME,
    integer("Value", PRIORITY_CLASS_VALUE),
    Column {
        type_: "boolean",
        ..string("Global-Default", PRIORITY_CLASS_GLOBAL_DEFAULT)
    },
    AGE,
    string("PreemptionPolicy", PRIORITY_CLASS_PREEMPTION_POLICY),
];

/// `PriorityClass.value`.
const PRIORITY_CLASS_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
/// `PriorityClass.globalDefault`.
const PRIORITY_CLASS_GLOBAL_DEFAULT: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
/// `PriorityClass.preemptionPolicy`.
const PRIORITY_CLASS_PREEMPTION_POLICY: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";

/// Roles print their creation time, not an age (`printRole`).
const ROLE: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        type_: "date",
        format: "",
        description: CREATION_TIMESTAMP,
        priority: 0,
    },
];
const ROLE_BINDING: &[Column] = &[
    NAME,
    string("Role", ROLE_REF),
    AGE,
    wide(string("Users", "Users in the roleBinding")),
    wide(string("Groups", "Groups in the roleBinding")),
    wide(string(
        "ServiceAccounts",
        "ServiceAccounts in the roleBinding",
    )),
];

// The API field docs the columns quote, as Kubernetes 1.33's `SwaggerDoc()`
// gives them (k8s.io/api and k8s.io/apimachinery v0.33).

/// `PodDisruptionBudgetSpec.minAvailable`.
const PDB_MIN_AVAILABLE: &str = "An eviction is allowed if at least \"minAvailable\" pods selected by \"selector\" will still be available after the eviction, i.e. even in the absence of the evicted pod.  So for example you can prevent all voluntary evictions by specifying \"100%\".";
/// `PodDisruptionBudgetSpec.maxUnavailable`.
const PDB_MAX_UNAVAILABLE: &str = "An eviction is allowed if at most \"maxUnavailable\" pods selected by \"selector\" are unavailable after the eviction, i.e. even in absence of the evicted pod. For example, one can prevent all voluntary evictions by specifying 0. This is a mutually exclusive setting with \"minAvailable\".";
/// `PodDisruptionBudgetStatus.disruptionsAllowed`.
const PDB_ALLOWED: &str = "Number of pod disruptions that are currently allowed.";
/// `EndpointSlice.addressType` (discovery.k8s.io/v1).
const SLICE_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
/// `EndpointSlice.ports`.
const SLICE_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
/// `EndpointSlice.endpoints`.
const SLICE_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
/// `NetworkPolicySpec.podSelector` (extensions/v1beta1, as kubectl's printer cites it).
const NETPOL_POD_SELECTOR: &str = "Selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.";
/// `ObjectMeta.name`.
pub(crate) const OBJECT_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// `ObjectMeta.creationTimestamp`.
pub(crate) const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
/// `PodStatus.podIP`.
const POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
/// `PodSpec.nodeName`.
const POD_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
/// `PodStatus.nominatedNodeName`.
const POD_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
/// `PodSpec.readinessGates`.
const POD_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
/// `DeploymentStatus.updatedReplicas`.
const DEPLOYMENT_UPDATED: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
/// `DeploymentStatus.availableReplicas`.
const DEPLOYMENT_AVAILABLE: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
/// `DeploymentSpec.selector`.
const DEPLOYMENT_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";
/// `ReplicaSetSpec.replicas`.
const REPLICA_SET_DESIRED: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
/// `ReplicaSetStatus.replicas`.
const REPLICA_SET_CURRENT: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
/// `ReplicaSetStatus.readyReplicas`.
const REPLICA_SET_READY: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
/// `ReplicaSetSpec.selector`.
const REPLICA_SET_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
/// `ReplicationControllerSpec.replicas`.
const RC_DESIRED: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
/// `ReplicationControllerStatus.replicas`.
const RC_CURRENT: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
/// `ReplicationControllerStatus.readyReplicas`.
const RC_READY: &str = "The number of ready replicas for this replication controller.";
/// `ReplicationControllerSpec.selector`.
const RC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
/// `DaemonSetStatus.desiredNumberScheduled`.
const DAEMON_SET_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
/// `DaemonSetStatus.currentNumberScheduled`.
const DAEMON_SET_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
/// `DaemonSetStatus.numberReady`.
const DAEMON_SET_READY: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.";
/// `DaemonSetStatus.updatedNumberScheduled`.
const DAEMON_SET_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
/// `DaemonSetStatus.numberAvailable`.
const DAEMON_SET_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
/// `PodSpec.nodeSelector`.
const POD_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
/// `DaemonSetSpec.selector`.
const DAEMON_SET_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
/// `JobStatus.succeeded`.
const JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
/// `JobSpec.selector`.
const JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
/// `CronJobSpec.schedule`.
const CRON_JOB_SCHEDULE: &str =
    "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
/// `CronJobSpec.timeZone`.
const CRON_JOB_TIME_ZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
/// `CronJobSpec.suspend`.
const CRON_JOB_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
/// `CronJobStatus.active`.
const CRON_JOB_ACTIVE: &str = "A list of pointers to currently running jobs.";
/// `CronJobStatus.lastScheduleTime`.
const CRON_JOB_LAST_SCHEDULE: &str =
    "Information when was the last time the job was successfully scheduled.";
/// `ServiceSpec.type`.
const SERVICE_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
/// `ServiceSpec.clusterIP`.
const SERVICE_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
/// `ServiceSpec.externalIPs`.
const SERVICE_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
/// `ServiceSpec.ports`.
const SERVICE_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
/// `ServiceSpec.selector`.
const SERVICE_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
/// `Endpoints.subsets`.
const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
/// `NodeSystemInfo.kubeletVersion`.
const NODE_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
/// `NodeStatus.addresses`.
const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
/// `NodeSystemInfo.osImage`.
const NODE_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
/// `NodeSystemInfo.kernelVersion`.
const NODE_KERNEL_VERSION: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
/// `NodeSystemInfo.containerRuntimeVersion`.
const NODE_CONTAINER_RUNTIME: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
/// `Event.lastTimestamp`.
const EVENT_LAST_TIMESTAMP: &str =
    "The time at which the most recent occurrence of this event was recorded.";
/// `Event.type`.
const EVENT_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
/// `Event.reason`.
const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
/// `Event.involvedObject`.
const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
/// `ObjectReference.fieldPath`.
const EVENT_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
/// `Event.source`.
const EVENT_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
/// `Event.message`.
const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
/// `Event.firstTimestamp`.
const EVENT_FIRST_TIMESTAMP: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
/// `Event.count`.
const EVENT_COUNT: &str = "The number of times this event has occurred.";
/// `Secret.type`.
const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
/// `Secret.data`.
const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
/// `ServiceAccount.secrets`.
const SERVICE_ACCOUNT_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
/// `ConfigMap.data`.
const CONFIG_MAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
/// `RoleBinding.roleRef` (rbac.authorization.k8s.io/v1beta1, as kubectl's printer cites it).
const ROLE_REF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";
/// `LeaseSpec.holderIdentity`.
const LEASE_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
