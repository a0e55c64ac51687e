//! The Node object and its heartbeats: registration, the Lease, status.

use serde_json::{json, Value};

/// Facts about this machine, read once at start.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: u64,
    /// Memory in bytes.
    pub memory: u64,
    /// Bytes of the data dir's file system.
    pub storage: u64,
    /// `uname -r`.
    pub kernel: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// Kubernetes' name for the architecture (`amd64`, `arm64`).
    pub arch: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// The firmware's product UUID (`/sys/class/dmi/id/product_uuid`, root only).
    pub system_uuid: String,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
}

impl Machine {
    /// Reads the machine's facts (the storage of `data_dir`'s file system).
    pub fn read(data_dir: &std::path::Path) -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let storage = nix::sys::statvfs::statvfs(data_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
        .to_string();
        let first_line = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Machine {
            cpus,
            memory,
            storage,
            kernel,
            os_image,
            arch,
            machine_id: first_line("/etc/machine-id"),
            system_uuid: first_line("/sys/class/dmi/id/product_uuid"),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// Reserved for the system, subtracted from capacity to make allocatable.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    /// Millicores.
    pub cpu_millis: u64,
    /// Bytes.
    pub memory: u64,
}

/// The pod network as the Node reports it: the `ferry.dev/pod-network`
/// annotation and the `NetworkUnavailable` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkReport {
    /// The mode (`namespaces` or `host`).
    pub mode: String,
    /// Whether pods can get their network now.
    pub ready: bool,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// Pods a node runs at most (Kubernetes' default).
pub const MAX_PODS: u64 = 110;

/// The Node's labels and `status` as this agent reports them, heartbeat at `now`.
pub fn node_object(
    name: &str,
    address: &str,
    m: &Machine,
    reserved: &Reserved,
    net: &NetworkReport,
    now: &str,
) -> Value {
    let cpu_millis = m.cpus * 1000;
    let alloc_cpu = cpu_millis.saturating_sub(reserved.cpu_millis);
    let alloc_mem = m.memory.saturating_sub(reserved.memory);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {crate::net::MODE_ANNOTATION: net.mode},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": m.arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": m.arch,
            },
        },
        "spec": {},
        "status": status(name, address, m, alloc_cpu, alloc_mem, net, now),
    })
}

fn status(
    name: &str,
    address: &str,
    m: &Machine,
    alloc_cpu: u64,
    alloc_mem: u64,
    net: &NetworkReport,
    now: &str,
) -> Value {
    let cond = |t: &str, s: &str, reason: &str, msg: &str| {
        json!({"type": t, "status": s, "reason": reason, "message": msg,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": {
            "cpu": m.cpus.to_string(),
            "memory": format!("{}Ki", m.memory / 1024),
            "ephemeral-storage": format!("{}Ki", m.storage / 1024),
            "pods": MAX_PODS.to_string(),
        },
        "allocatable": {
            "cpu": format!("{alloc_cpu}m"),
            "memory": format!("{}Ki", alloc_mem / 1024),
            "ephemeral-storage": format!("{}Ki", m.storage / 1024),
            "pods": MAX_PODS.to_string(),
        },
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ],
        "nodeInfo": {
            "machineID": m.machine_id, "systemUUID": m.system_uuid, "bootID": m.boot_id,
            "kernelVersion": m.kernel,
            "osImage": m.os_image,
            "operatingSystem": "linux",
            "architecture": m.arch,
            "containerRuntimeVersion": "process://ferry",
            "kubeletVersion": concat!("v1.33.0-ferry.", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
        },
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            cond("NetworkUnavailable", if net.ready { "False" } else { "True" }, &net.reason, &net.message),
        ],
    })
}

/// Node pressure as the eviction manager sees it ([`crate::eviction`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `memory.available` below its threshold.
    pub memory: bool,
    /// `nodefs.available` below its threshold.
    pub disk: bool,
    /// `pid.available` below its threshold.
    pub pid: bool,
}

/// The taints a node under pressure gets (Kubernetes' `TaintNodesByCondition`).
pub const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";
/// See [`MEMORY_PRESSURE_TAINT`].
pub const DISK_PRESSURE_TAINT: &str = "node.kubernetes.io/disk-pressure";
/// See [`MEMORY_PRESSURE_TAINT`].
pub const PID_PRESSURE_TAINT: &str = "node.kubernetes.io/pid-pressure";

/// Sets the MemoryPressure, DiskPressure and PIDPressure conditions of a Node `status`
/// as the kubelet words them.
pub fn set_pressure(status: &mut Value, p: Pressure) {
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conds {
        let (on, reason, message) = match c["type"].as_str() {
            Some("MemoryPressure") if p.memory => (
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            Some("MemoryPressure") => (
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            Some("DiskPressure") if p.disk => {
                (true, "KubeletHasDiskPressure", "kubelet has disk pressure")
            }
            Some("DiskPressure") => (
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            Some("PIDPressure") if p.pid => (
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            Some("PIDPressure") => (
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            _ => continue,
        };
        c["status"] = json!(if on { "True" } else { "False" });
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
}

/// Marks a Node `status` NotReady as the kubelet does while its node shuts
/// down gracefully.
pub fn set_shutting_down(status: &mut Value) {
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
        c["status"] = json!("False");
        c["reason"] = json!("KubeletNotReady");
        c["message"] = json!("node is shutting down");
    }
}

/// The Node's `spec.taints` with the pressure taints (`NoSchedule`) added
/// or removed as `p` says; `None` when they are right already.
pub fn pressure_taints(taints: Option<&Value>, p: Pressure) -> Option<Value> {
    let have: Vec<Value> = taints
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut want: Vec<Value> = have
        .iter()
        .filter(|t| {
            let key = t["key"].as_str();
            (key != Some(MEMORY_PRESSURE_TAINT) || p.memory)
                && (key != Some(DISK_PRESSURE_TAINT) || p.disk)
                && (key != Some(PID_PRESSURE_TAINT) || p.pid)
        })
        .cloned()
        .collect();
    for (on, key) in [
        (p.memory, MEMORY_PRESSURE_TAINT),
        (p.disk, DISK_PRESSURE_TAINT),
        (p.pid, PID_PRESSURE_TAINT),
    ] {
        if on
            && !want
                .iter()
                .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
        {
            want.push(json!({"key": key, "effect": "NoSchedule"}));
        }
    }
    (want != have).then(|| json!(want))
}

/// The node's Lease in `kube-node-lease`, renewed at `now`.
pub fn lease(name: &str, duration_secs: u64, now_micros: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_secs,
            "renewTime": now_micros,
        },
    })
}

/// An Event about `pod` (or one of its containers), reported by this node's kubelet.
pub fn event(pod: &Value, node: &str, e: &crate::events::PodEvent, now: &str) -> Value {
    let m = &pod["metadata"];
    let mut event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": format!("{}.", m["name"].as_str().unwrap_or("pod")),
            "namespace": m["namespace"],
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
        },
        "reason": e.reason,
        "message": e.message,
        "type": e.kind,
    });
    from_kubelet(&mut event, node, now);
    if let Some(path) = &e.field_path {
        event["involvedObject"]["fieldPath"] = json!(path);
    }
    event
}

/// Marks a new Event as the kubelet of `node` reports it, first seen `now`.
pub fn from_kubelet(event: &mut Value, node: &str, now: &str) {
    event["source"] = json!({"component": "kubelet", "host": node});
    event["reportingComponent"] = json!("kubelet");
    event["reportingInstance"] = json!(node);
    event["firstTimestamp"] = json!(now);
    event["lastTimestamp"] = json!(now);
    event["count"] = json!(1);
}

/// Where node leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_reports_capacity_allocatable_addresses_and_labels() {
        let m = Machine {
            cpus: 2,
            memory: 4 << 30,
            storage: 10 << 30,
            kernel: "6.1.0".into(),
            os_image: "Debian".into(),
            arch: "amd64".into(),
            machine_id: "m1".into(),
            ..Machine::default()
        };
        let r = Reserved {
            cpu_millis: 100,
            memory: 256 << 20,
        };
        let net = NetworkReport {
            mode: "namespaces".into(),
            ready: false,
            reason: "NoPodCIDR".into(),
            message: "waiting for the Node's spec.podCIDR".into(),
        };
        let n = node_object("n1", "127.0.1.1", &m, &r, &net, "2026-12-05T00:00:00Z");
        assert_eq!(
            n["metadata"]["annotations"]["ferry.dev/pod-network"],
            "namespaces"
        );
        let unavailable = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "NetworkUnavailable")
            .unwrap();
        assert_eq!(unavailable["status"], "True");
        assert_eq!(unavailable["reason"], "NoPodCIDR");
        assert_eq!(n["status"]["capacity"]["cpu"], "2");
        assert_eq!(n["status"]["allocatable"]["cpu"], "1900m");
        assert_eq!(n["status"]["capacity"]["memory"], "4194304Ki");
        assert_eq!(n["status"]["allocatable"]["memory"], "3932160Ki");
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(n["status"]["addresses"][0]["address"], "127.0.1.1");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(n["status"]["nodeInfo"]["machineID"], "m1");
        assert_eq!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"],
            "process://ferry"
        );
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        let l = lease("n1", 40, "2026-12-05T00:00:00.000000Z");
        assert_eq!(l["spec"]["holderIdentity"], "n1");
        assert_eq!(l["metadata"]["namespace"], "kube-node-lease");
    }

    #[test]
    fn pressure_sets_conditions_and_taints() {
        let m = Machine::default();
        let net = NetworkReport {
            mode: "host".into(),
            ready: true,
            reason: "HostNetwork".into(),
            message: String::new(),
        };
        let mut n = node_object("n1", "127.0.1.1", &m, &Reserved::default(), &net, "t");
        let cond = |n: &Value, t: &str| {
            let c = n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone();
            (
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        };
        set_pressure(
            &mut n["status"],
            Pressure {
                memory: true,
                disk: false,
                pid: false,
            },
        );
        assert_eq!(
            cond(&n, "MemoryPressure"),
            ("True".into(), "KubeletHasInsufficientMemory".into())
        );
        assert_eq!(
            cond(&n, "DiskPressure"),
            ("False".into(), "KubeletHasNoDiskPressure".into())
        );
        assert_eq!(cond(&n, "Ready").0, "True");
        set_pressure(
            &mut n["status"],
            Pressure {
                memory: false,
                disk: true,
                pid: false,
            },
        );
        assert_eq!(
            cond(&n, "MemoryPressure"),
            ("False".into(), "KubeletHasSufficientMemory".into())
        );
        assert_eq!(
            cond(&n, "DiskPressure"),
            ("True".into(), "KubeletHasDiskPressure".into())
        );

        // Taints: added once, removed when the pressure ends, others kept.
        let cordon = json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]);
        let mem = Pressure {
            memory: true,
            ..Pressure::default()
        };
        let added = pressure_taints(Some(&cordon), mem).unwrap();
        assert_eq!(
            added,
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": MEMORY_PRESSURE_TAINT, "effect": "NoSchedule"}])
        );
        assert_eq!(pressure_taints(Some(&added), mem), None);
        assert_eq!(
            pressure_taints(Some(&added), Pressure::default()).unwrap(),
            cordon
        );
        assert_eq!(pressure_taints(None, Pressure::default()), None);
        assert_eq!(
            pressure_taints(
                None,
                Pressure {
                    disk: true,
                    ..Pressure::default()
                }
            )
            .unwrap(),
            json!([{"key": DISK_PRESSURE_TAINT, "effect": "NoSchedule"}])
        );
        let pid = Pressure {
            pid: true,
            ..Pressure::default()
        };
        set_pressure(&mut n["status"], pid);
        assert_eq!(
            cond(&n, "PIDPressure"),
            ("True".into(), "KubeletHasInsufficientPID".into())
        );
        assert_eq!(
            pressure_taints(None, pid).unwrap(),
            json!([{"key": PID_PRESSURE_TAINT, "effect": "NoSchedule"}])
        );
        set_pressure(&mut n["status"], Pressure::default());
        assert_eq!(
            cond(&n, "PIDPressure"),
            ("False".into(), "KubeletHasSufficientPID".into())
        );
        // A node shutting down is NotReady, as the kubelet words it.
        set_shutting_down(&mut n["status"]);
        assert_eq!(
            cond(&n, "Ready"),
            ("False".into(), "KubeletNotReady".into())
        );
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["message"], "node is shutting down");
    }
}
