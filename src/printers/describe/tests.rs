//! `describe` of a pod, a deployment, a secret and a generic kind.

use super::describe;
use ferry_api::resources::by_cli_name;
use jiff::Timestamp;
use serde_json::json;

fn now() -> Timestamp {
    "2025-06-01T00:00:00Z".parse().unwrap()
}

#[test]
fn a_pod_shows_containers_conditions_volumes_and_events() {
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2025-05-31T23:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "6d4"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-6d4", "controller": true}]},
        "spec": {"nodeName": "n1", "serviceAccountName": "default",
                 "containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                 "env": [{"name": "MODE", "value": "prod"}],
                                 "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
                 "volumes": [{"name": "cache", "emptyDir": {}}]},
        "status": {"phase": "Running", "hostIP": "192.168.1.10", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
                   "startTime": "2025-05-31T23:00:01Z", "qosClass": "BestEffort",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                                          "containerID": "ferry://abc", "imageID": "",
                                          "state": {"running": {"startedAt": "2025-05-31T23:00:02Z"}}}]},
    });
    let event = json!({"type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/web-1 to n1",
                       "source": {"component": "default-scheduler"}, "firstTimestamp": "2025-05-31T23:00:00Z",
                       "lastTimestamp": "2025-05-31T23:00:00Z", "count": 1});
    let out = describe(by_cli_name("po").unwrap(), &pod, &[event], now());
    let want = "\
Name:             web-1
Namespace:        default
Service Account:  default
Node:             n1/192.168.1.10
Start Time:       Sat, 31 May 2025 23:00:01 +0000
Labels:           app=web
                  pod-template-hash=6d4
Annotations:      <none>
Status:           Running
IP:               10.1.0.5
IPs:
  IP:           10.1.0.5
Controlled By:  ReplicaSet/web-6d4
Containers:
  nginx:
    Container ID:   ferry://abc
    Image:          nginx:1.27
    Image ID:
    Port:           80/TCP
    Host Port:      0/TCP
    State:          Running
      Started:      Sat, 31 May 2025 23:00:02 +0000
    Ready:          True
    Restart Count:  0
    Environment:
      MODE:  prod
    Mounts:
      /cache from cache (rw)
Conditions:
  Type    Status
  Ready   True
Volumes:
  cache:
    Type:        EmptyDir
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type    Reason     Age   From               Message
  ----    ------     ----  ----               -------
  Normal  Scheduled  60m   default-scheduler  Successfully assigned default/web-1 to n1";
    assert_eq!(out, want, "\n{out}");
}

#[test]
fn a_deployment_shows_replicas_strategy_and_template() {
    let d = json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-05-31T23:00:00Z",
                     "labels": {"app": "web"}, "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]},
    });
    let out = describe(by_cli_name("deploy").unwrap(), &d, &[], now());
    let want = "\
Name:                   web
Namespace:              default
CreationTimestamp:      Sat, 31 May 2025 23:00:00 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 1
Selector:               app=web
Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   nginx:
    Image:         nginx:1.27
    Port:          <none>
    Host Port:     <none>
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type       Status  Reason
  ----       ------  ------
  Available  True    MinimumReplicasAvailable
Events:      <none>";
    assert_eq!(out, want, "\n{out}");
}

#[test]
fn a_secret_shows_sizes_not_values() {
    let s = json!({"metadata": {"name": "db", "namespace": "default"}, "type": "Opaque",
                   "data": {"password": "aHVudGVyMg=="}});
    let out = describe(by_cli_name("secret").unwrap(), &s, &[], now());
    assert!(out.contains("password:  7 bytes"), "{out}");
    assert!(!out.contains("aHVudGVyMg"), "{out}");
}

#[test]
fn other_kinds_print_spec_and_status_as_a_tree() {
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "sched", "namespace": "kube-system", "creationTimestamp": "2025-05-31T23:00:00Z"},
                       "spec": {"holderIdentity": "master-1", "leaseDurationSeconds": 15}});
    let out = describe(by_cli_name("leases").unwrap(), &lease, &[], now());
    assert!(
        out.contains(
            "\nSpec:\n  Holder Identity:         master-1\n  Lease Duration Seconds:  15\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("\nEvents:                    <none>"),
        "{out}"
    );
}

#[test]
fn a_service_shows_ports_and_their_endpoints() {
    let svc = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                 "sessionAffinity": "None"}});
    let ep = json!({"subsets": [{"addresses": [{"ip": "10.1.0.5"}, {"ip": "10.1.0.6"}],
                                 "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]}]});
    let out = super::describe_service(&svc, Some(&ep), &[], now());
    let want = "\
Name:              web
Namespace:         default
Labels:            <none>
Annotations:       <none>
Selector:          app=web
Type:              ClusterIP
IP:                10.96.0.20
IPs:               10.96.0.20
Port:              http  80/TCP
TargetPort:        8080/TCP
Endpoints:         10.1.0.5:8080,10.1.0.6:8080
Session Affinity:  None
Events:            <none>";
    assert_eq!(out, want, "\n{out}");
}

#[test]
fn a_config_map_shows_its_data() {
    let cm =
        json!({"metadata": {"name": "conf", "namespace": "default"}, "data": {"mode": "prod"}});
    let out = describe(by_cli_name("cm").unwrap(), &cm, &[], now());
    assert!(
        out.contains("\nData\n====\nmode:\n----\nprod\n\n\nBinaryData\n====\n"),
        "{out}"
    );
}

#[test]
fn a_node_shows_taints_lease_conditions_capacity_and_its_pods() {
    let node = json!({
        "metadata": {"name": "n1", "creationTimestamp": "2025-05-31T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": ""}},
        "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
        "status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.1.1"}, {"type": "Hostname", "address": "n1"}],
            "conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.",
                            "lastHeartbeatTime": "2025-05-31T23:59:00Z", "lastTransitionTime": "2025-05-31T23:59:30Z"}],
            "nodeInfo": {"kernelVersion": "6.1", "osImage": "Debian", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "process://ferry",
                         "kubeletVersion": "v1.33.0-ferry"}},
    });
    let lease =
        json!({"spec": {"holderIdentity": "n1", "renewTime": "2025-05-31T23:59:00.000000Z"}});
    let pod = |name: &str, phase: &str| {
        json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2025-05-31T23:00:00Z"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"phase": phase},
        })
    };
    let out = super::describe_node(
        &node,
        Some(&lease),
        &[pod("a", "Running"), pod("b", "Succeeded")],
        &[],
        now(),
    );
    for want in [
        "Roles:              worker",
        "Taints:             node.kubernetes.io/unreachable:NoExecute",
        "HolderIdentity:  n1",
        "Ready  Unknown",
        "Kubelet stopped posting node status.",
        "InternalIP:  127.0.1.1",
        "Container Runtime Version:  process://ferry",
        "Non-terminated Pods:          (1 in total)",
        "default                     a     500m (25%)    500m (25%)  1Gi (25%)        1Gi (25%)      60m",
        "cpu       500m (25%)  500m (25%)",
        "memory    1Gi (25%)   1Gi (25%)",
        "Events:",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}
