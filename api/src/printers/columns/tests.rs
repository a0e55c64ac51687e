//! One table per kind, checked cell by cell against what kubectl prints.

use super::{cells, header};
use crate::resources::by_cli_name;
use jiff::Timestamp;
use serde_json::{json, Value};

const NOW: &str = "2025-06-01T00:00:00Z";
/// Three days before [`NOW`]: AGE `3d`.
const CREATED: &str = "2025-05-29T00:00:00Z";

/// The header, then each object's cells as `ferry get` prints them.
fn rows_with(kind: &str, items: &[Value], wide: bool) -> Vec<Vec<String>> {
    let now: Timestamp = NOW.parse().unwrap();
    let kind = by_cli_name(kind).unwrap().kind;
    let mut rows = vec![header(kind, wide)];
    rows.extend(items.iter().map(|o| {
        cells(kind, o, wide, now)
            .iter()
            .map(ToString::to_string)
            .collect()
    }));
    rows
}

fn rows(kind: &str, items: &[Value]) -> Vec<Vec<String>> {
    rows_with(kind, items, false)
}

fn wide(kind: &str, items: &[Value]) -> Vec<Vec<String>> {
    rows_with(kind, items, true)
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": CREATED, "labels": {"app": name}})
}

fn container_status(name: &str, state: Value, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "state": state, "ready": ready, "restartCount": restarts})
}

#[test]
fn pods_count_ready_containers_and_recent_restarts() {
    let mut restarted = container_status("b", json!({"running": {}}), true, 3);
    restarted["lastState"] =
        json!({"terminated": {"exitCode": 1, "finishedAt": "2025-05-31T23:55:00Z"}});
    let pod = json!({
        "metadata": meta("web-1"),
        "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}],
                   "containerStatuses": [container_status("a", json!({"running": {}}), true, 0), restarted]},
    });
    assert_eq!(
        rows("pods", std::slice::from_ref(&pod)),
        [
            vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            vec!["web-1", "2/2", "Running", "3 (5m ago)", "3d"]
        ]
    );
    assert_eq!(
        wide("pods", &[pod]),
        [
            vec![
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ],
            vec![
                "web-1",
                "2/2",
                "Running",
                "3 (5m ago)",
                "3d",
                "10.1.0.5",
                "n1",
                "<none>",
                "<none>"
            ]
        ]
    );
}

#[test]
fn pod_status_follows_kubectls_rules() {
    let pod = |status: Value, extra_meta: Value| {
        let mut m = meta("p");
        m.as_object_mut()
            .unwrap()
            .extend(extra_meta.as_object().unwrap().clone());
        json!({"metadata": m, "spec": {"containers": [{"name": "c"}],
               "initContainers": [{"name": "i1"}, {"name": "i2"}]}, "status": status})
    };
    let cases = [
        (json!({"phase": "Pending"}), json!({}), "Pending", "0/1"),
        (
            json!({"phase": "Running", "containerStatuses": [
                container_status("c", json!({"waiting": {"reason": "CrashLoopBackOff"}}), false, 0)]}),
            json!({}),
            "CrashLoopBackOff",
            "0/1",
        ),
        (
            json!({"phase": "Succeeded", "containerStatuses": [
                container_status("c", json!({"terminated": {"reason": "Completed", "exitCode": 0}}), false, 0)]}),
            json!({}),
            "Completed",
            "0/1",
        ),
        (
            json!({"phase": "Failed", "containerStatuses": [
                container_status("c", json!({"terminated": {"exitCode": 137, "signal": 0}}), false, 0)]}),
            json!({}),
            "ExitCode:137",
            "0/1",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                container_status("c", json!({"running": {}}), true, 0)]}),
            json!({"deletionTimestamp": NOW}),
            "Terminating",
            "1/1",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                container_status("i1", json!({"waiting": {"reason": "PodInitializing"}}), false, 0)]}),
            json!({}),
            "Init:0/2",
            "0/1",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                container_status("i1", json!({"terminated": {"exitCode": 0}}), false, 0),
                container_status("i2", json!({"waiting": {"reason": "CrashLoopBackOff"}}), false, 4)]}),
            json!({}),
            "Init:CrashLoopBackOff",
            "0/1",
        ),
        (
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            json!({}),
            "SchedulingGated",
            "0/1",
        ),
    ];
    for (status, extra, want, ready) in cases {
        let r = rows("po", &[pod(status, extra)]);
        assert_eq!((r[1][2].as_str(), r[1][1].as_str()), (want, ready), "{r:?}");
    }
}

fn template() -> Value {
    json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
}

#[test]
fn deployments_and_replicasets() {
    let d = json!({"metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        wide("deploy", &[d]),
        [
            vec![
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
            vec![
                "web",
                "2/3",
                "3",
                "2",
                "3d",
                "nginx,log",
                "nginx:1.27,busybox",
                "app=web"
            ]
        ]
    );
    let rs = json!({"metadata": meta("web-6d4cf56db6"),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(
        rows("rs", &[rs]),
        [
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            vec!["web-6d4cf56db6", "2", "2", "1", "3d"]
        ]
    );
}

#[test]
fn replication_controllers_print_as_kubectl_does() {
    let rc = json!({"metadata": meta("shop"),
        "spec": {"replicas": 3, "selector": {"app": "shop", "tier": "web"}, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2}});
    assert_eq!(
        wide("rc", &[rc]),
        [
            vec![
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
            vec![
                "shop",
                "3",
                "3",
                "2",
                "3d",
                "nginx,log",
                "nginx:1.27,busybox",
                "app=shop,tier=web"
            ]
        ]
    );
}

#[test]
fn daemonsets_and_statefulsets() {
    let ds = json!({"metadata": meta("agent"),
        "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": []}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
    assert_eq!(
        rows("ds", &[ds]),
        [
            vec![
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE"
            ],
            vec![
                "agent",
                "3",
                "3",
                "2",
                "3",
                "2",
                "kubernetes.io/os=linux",
                "3d"
            ]
        ]
    );
    let sts = json!({"metadata": meta("db"), "spec": {"replicas": 3, "template": template()},
                     "status": {"readyReplicas": 3}});
    assert_eq!(
        wide("sts", &[sts]),
        [
            vec!["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"],
            vec!["db", "3/3", "3d", "nginx,log", "nginx:1.27,busybox"]
        ]
    );
}

#[test]
fn jobs_and_cronjobs() {
    let done = json!({"metadata": meta("pi"), "spec": {"completions": 1},
        "status": {"succeeded": 1, "startTime": "2025-05-31T23:00:00Z", "completionTime": "2025-05-31T23:00:42Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}});
    let queue = json!({"metadata": meta("work"), "spec": {"parallelism": 3},
        "status": {"startTime": "2025-05-31T23:50:00Z"}});
    assert_eq!(
        rows("jobs", &[done, queue]),
        [
            vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            vec!["pi", "Complete", "1/1", "42s", "3d"],
            vec!["work", "Running", "0/1 of 3", "10m", "3d"]
        ]
    );
    let cj = json!({"metadata": meta("backup"),
        "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": template()}}},
        "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2025-05-31T23:58:00Z"}});
    assert_eq!(
        rows("cj", &[cj]),
        [
            vec![
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE"
            ],
            vec!["backup", "*/5 * * * *", "<none>", "False", "1", "2m", "3d"]
        ]
    );
}

#[test]
fn services_by_type() {
    let svc =
        |spec: Value, status: Value| json!({"metadata": meta("s"), "spec": spec, "status": status});
    let items = [
        svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "selector": {"app": "web"}, "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}),
            json!({}),
        ),
        svc(
            json!({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 30080}]}),
            json!({}),
        ),
        svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 443}]}),
            json!({}),
        ),
        svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "ports": [{"port": 443}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}),
        ),
        svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        ),
        svc(
            json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
            json!({}),
        ),
    ];
    let r = wide("svc", &items);
    assert_eq!(
        r[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert_eq!(
        r[1],
        [
            "s",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "53/UDP,53/TCP",
            "3d",
            "app=web"
        ]
    );
    assert_eq!(
        r[2],
        [
            "s",
            "NodePort",
            "10.96.0.11",
            "<none>",
            "80:30080/TCP",
            "3d",
            "<none>"
        ]
    );
    assert_eq!(r[3][3], "<pending>");
    assert_eq!(r[4][3], "203.0.113.7");
    assert_eq!(r[5][2..5], ["<none>", "db.example.com", "<none>"]);
    assert_eq!(r[6][2..5], ["None", "<none>", "<none>"]);
}

#[test]
fn endpoints_show_three_then_a_count() {
    let addrs: Vec<Value> = (1..=4)
        .map(|i| json!({"ip": format!("10.1.0.{i}")}))
        .collect();
    let ep = json!({"metadata": meta("web"), "subsets": [{"addresses": addrs, "ports": [{"port": 8080}]}]});
    let empty = json!({"metadata": meta("none")});
    assert_eq!(
        rows("ep", &[ep, empty]),
        [
            vec!["NAME", "ENDPOINTS", "AGE"],
            vec![
                "web",
                "10.1.0.1:8080,10.1.0.2:8080,10.1.0.3:8080 + 1 more...",
                "3d"
            ],
            vec!["none", "<none>", "3d"]
        ]
    );
}

#[test]
fn endpoint_slices_show_ports_and_addresses_as_kubectl() {
    let eps: Vec<Value> = (5..=7)
        .map(|i| json!({"addresses": [format!("10.42.1.{i}")]}))
        .chain([json!({"addresses": ["10.42.2.9"]})])
        .collect();
    let web = json!({"metadata": meta("web-abcde"), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
        "endpoints": eps});
    let three = json!({"metadata": meta("db-x"), "addressType": "IPv4",
        "ports": [{"name": "a", "port": 1}, {"name": "named"}, {}, {"port": 4}],
        "endpoints": [{"addresses": ["10.42.1.5"]}, {"addresses": ["10.42.1.6"]}]});
    let empty = json!({"metadata": meta("none-x"), "addressType": "IPv4", "endpoints": null});
    assert_eq!(
        rows("endpointslices", &[web, three, empty]),
        [
            vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
            vec![
                "web-abcde",
                "IPv4",
                "80,443",
                "10.42.1.5,10.42.1.6,10.42.1.7 + 1 more...",
                "3d"
            ],
            vec![
                "db-x",
                "IPv4",
                "1,named,* + 1 more...",
                "10.42.1.5,10.42.1.6",
                "3d"
            ],
            vec!["none-x", "IPv4", "<unset>", "<unset>", "3d"],
        ]
    );
}

#[test]
fn network_policies_show_their_pod_selector_as_kubectl() {
    let web = json!({"metadata": meta("web-only"), "spec": {"podSelector": {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}}});
    let all = json!({"metadata": meta("deny-all"), "spec": {"podSelector": {}}});
    assert_eq!(
        rows("netpol", &[web, all]),
        [
            vec!["NAME", "POD-SELECTOR", "AGE"],
            vec!["web-only", "app=web,tier notin (db)", "3d"],
            vec!["deny-all", "<none>", "3d"],
        ]
    );
}

#[test]
fn secrets_service_accounts_and_leases() {
    let secret = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        rows("secrets", &[secret]),
        [
            vec!["NAME", "TYPE", "DATA", "AGE"],
            vec!["tls", "kubernetes.io/tls", "2", "3d"]
        ]
    );
    let sa = json!({"metadata": meta("default")});
    assert_eq!(
        rows("sa", &[sa]),
        [vec!["NAME", "SECRETS", "AGE"], vec!["default", "0", "3d"]]
    );
    let lease =
        json!({"metadata": meta("ferry-scheduler"), "spec": {"holderIdentity": "master-1"}});
    assert_eq!(
        rows("leases", &[lease]),
        [
            vec!["NAME", "HOLDER", "AGE"],
            vec!["ferry-scheduler", "master-1", "3d"]
        ]
    );
}

#[test]
fn nodes_with_roles_and_wide_columns() {
    let node = json!({
        "metadata": {"name": "n1", "creationTimestamp": CREATED,
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}}});
    let bare = json!({"metadata": {"name": "n2"}});
    assert_eq!(
        wide("nodes", &[node, bare]),
        [
            vec![
                "NAME",
                "STATUS",
                "ROLES",
                "AGE",
                "VERSION",
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ],
            vec![
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "3d",
                "v1.33.0",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "containerd://1.7.0"
            ],
            vec![
                "n2",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        ]
    );
}

#[test]
fn events_name_the_object_and_count() {
    let ev = json!({"metadata": {"name": "web-1.17f", "namespace": "default"},
        "type": "Warning", "reason": "BackOff", "message": " Back-off restarting failed container \n",
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
        "source": {"component": "kubelet", "host": "n1"}, "count": 7,
        "firstTimestamp": "2025-05-31T23:00:00Z", "lastTimestamp": "2025-05-31T23:59:30Z"});
    assert_eq!(
        rows("ev", std::slice::from_ref(&ev)),
        [
            vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            vec![
                "30s",
                "Warning",
                "BackOff",
                "pod/web-1",
                "Back-off restarting failed container"
            ]
        ]
    );
    assert_eq!(
        wide("ev", &[ev])[1],
        [
            "30s",
            "Warning",
            "BackOff",
            "pod/web-1",
            "spec.containers{a}",
            "kubelet, n1",
            "Back-off restarting failed container",
            "60m",
            "7",
            "web-1.17f"
        ]
    );
}

#[test]
fn roles_and_bindings() {
    let role = json!({"metadata": meta("reader"), "rules": []});
    assert_eq!(
        rows("roles", std::slice::from_ref(&role)),
        [
            vec!["NAME", "CREATED AT"],
            vec!["reader", "2025-05-29T00:00:00Z"]
        ]
    );
    assert_eq!(rows("clusterroles", &[role])[1][1], "2025-05-29T00:00:00Z");
    let b = json!({"metadata": meta("readers"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "dev"},
            {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"}]});
    assert_eq!(
        wide("rolebindings", std::slice::from_ref(&b)),
        [
            vec!["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            vec![
                "readers",
                "ClusterRole/view",
                "3d",
                "alice, bob",
                "dev",
                "ci/robot"
            ]
        ]
    );
    assert_eq!(
        rows("clusterrolebindings", &[b]),
        [
            vec!["NAME", "ROLE", "AGE"],
            vec!["readers", "ClusterRole/view", "3d"]
        ]
    );
}

#[test]
fn autoscalers_show_their_targets_as_kubectl() {
    let cpu = |u: i64| json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}});
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    let fresh = json!({"metadata": meta("web"), "spec": {"scaleTargetRef": target,
        "minReplicas": 1, "maxReplicas": 5, "metrics": [cpu(50)]}});
    let measured = json!({"metadata": meta("busy"), "spec": {"scaleTargetRef": target,
        "maxReplicas": 3, "metrics": [cpu(50),
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            cpu(70)]},
        "status": {"currentReplicas": 3, "desiredReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 398, "averageValue": "199m"}}},
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "20Mi"}}}]}});
    let none = json!({"metadata": meta("none"), "spec": {"scaleTargetRef": target, "maxReplicas": 2, "metrics": []}});
    assert_eq!(
        rows("hpa", &[fresh, measured, none]),
        [
            vec![
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ],
            vec![
                "web",
                "Deployment/web",
                "cpu: <unknown>/50%",
                "1",
                "5",
                "0",
                "3d"
            ],
            vec![
                "busy",
                "Deployment/web",
                "cpu: 398%/50%, memory: 20Mi/100Mi + 1 more...",
                "<unset>",
                "3",
                "3",
                "3d"
            ],
            vec![
                "none",
                "Deployment/web",
                "<none>",
                "<unset>",
                "2",
                "0",
                "3d"
            ],
        ]
    );
}

#[test]
fn controller_revisions() {
    let owned = |name: &str, refs: Value, revision: i64| {
        let mut m = meta(name);
        m["ownerReferences"] = refs;
        json!({"metadata": m, "data": {}, "revision": revision})
    };
    let ds = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u1", "controller": true}]);
    let core =
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u2", "controller": true}]);
    let not_controller =
        json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u3"}]);
    assert_eq!(
        rows(
            "controllerrevisions",
            &[
                owned("agent-7b9f", ds, 3),
                owned("p-1", core, 1),
                owned("db-5c", not_controller, 2)
            ]
        ),
        [
            vec!["NAME", "CONTROLLER", "REVISION", "AGE"],
            vec!["agent-7b9f", "daemonset.apps/agent", "3", "3d"],
            vec!["p-1", "pod/p", "1", "3d"],
            vec!["db-5c", "<none>", "2", "3d"],
        ]
    );
}
