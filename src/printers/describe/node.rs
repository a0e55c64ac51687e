//! `describe node`, as kubectl prints it: roles, taints, the lease,
//! conditions, addresses, capacity, system info, the pods on it and the
//! resources they request.

use super::{conditions_full, meta, Doc};
use ferry_api::printers::age::{age, describe_time};
use ferry_api::printers::{list, text};
use jiff::Timestamp;
use serde_json::Value;

/// A quantity in base units, or thousandths with `milli`.
fn qty(s: &str, milli: bool) -> u64 {
    ferry_node::cgroups::quantity(s, milli).unwrap_or(0)
}

/// Requests and limits of a pod's containers: (cpu millis req, lim, mem req, lim).
fn pod_resources(p: &Value) -> [u64; 4] {
    let mut out = [0u64; 4];
    for c in list(p, "/spec/containers") {
        let r = &c["resources"];
        let get = |k: &str, res: &str, milli| r[k][res].as_str().map_or(0, |s| qty(s, milli));
        // A limit without a request requests the limit.
        let (cl, ml) = (get("limits", "cpu", true), get("limits", "memory", false));
        let cr = r["requests"]["cpu"].as_str().map_or(cl, |s| qty(s, true));
        let mr = r["requests"]["memory"]
            .as_str()
            .map_or(ml, |s| qty(s, false));
        for (o, v) in out.iter_mut().zip([cr, cl, mr, ml]) {
            *o += v;
        }
    }
    out
}

fn cpu(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

fn mem(b: u64) -> String {
    match b {
        0 => "0".into(),
        b if b.is_multiple_of(1 << 30) => format!("{}Gi", b >> 30),
        b if b.is_multiple_of(1 << 20) => format!("{}Mi", b >> 20),
        b if b.is_multiple_of(1024) => format!("{}Ki", b >> 10),
        b => b.to_string(),
    }
}

fn pct(v: u64, of: u64) -> u64 {
    (v * 100).checked_div(of).unwrap_or(0)
}

/// The node's describe text (before the events).
pub fn node(d: &mut Doc, o: &Value, lease: Option<&Value>, pods: &[Value], now: Timestamp) {
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    d.kv(
        0,
        "Roles",
        if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
    );
    meta(d, o);
    d.kv(
        0,
        "CreationTimestamp",
        describe_time(text(o, "/metadata/creationTimestamp")),
    );
    let taints: Vec<String> = list(o, "/spec/taints")
        .iter()
        .map(|t| {
            let v = t["value"]
                .as_str()
                .map(|v| format!("={v}"))
                .unwrap_or_default();
            format!("{}{v}:{}", text(t, "/key"), text(t, "/effect"))
        })
        .collect();
    match taints.split_first() {
        None => d.kv(0, "Taints", "<none>"),
        Some((first, rest)) => {
            d.kv(0, "Taints", first);
            for t in rest {
                d.line(0, format!("\t{t}"));
            }
        }
    }
    d.kv(
        0,
        "Unschedulable",
        o.pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    d.line(0, "Lease:");
    let l = |p: &str| {
        lease
            .and_then(|l| l.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("<unset>")
    };
    d.kv(1, "HolderIdentity", l("/spec/holderIdentity"));
    d.kv(1, "AcquireTime", l("/spec/acquireTime"));
    d.kv(1, "RenewTime", l("/spec/renewTime"));
    conditions_full(d, o);
    d.line(0, "Addresses:");
    for a in list(o, "/status/addresses") {
        d.kv(1, text(a, "/type"), text(a, "/address"));
    }
    for (title, field) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        d.line(0, format!("{title}:"));
        for (k, v) in o
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            d.kv(1, k, v.as_str().unwrap_or_default());
        }
    }
    d.line(0, "System Info:");
    let info = &o["status"]["nodeInfo"];
    for (title, k) in [
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
        ("Kube-Proxy Version", "kubeProxyVersion"),
    ] {
        d.kv(1, title, info[k].as_str().unwrap_or_default());
    }
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let alloc_cpu = o["status"]["allocatable"]["cpu"]
        .as_str()
        .map_or(0, |s| qty(s, true));
    let alloc_mem = o["status"]["allocatable"]["memory"]
        .as_str()
        .map_or(0, |s| qty(s, false));
    d.kv(
        0,
        "Non-terminated Pods",
        format!("({} in total)", running.len()),
    );
    d.line(
        1,
        "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
    );
    d.line(
        1,
        "---------\t----\t------------\t----------\t---------------\t-------------\t---",
    );
    let mut total = [0u64; 4];
    for p in &running {
        let r = pod_resources(p);
        for (t, v) in total.iter_mut().zip(r) {
            *t += v;
        }
        d.line(
            1,
            format!(
                "{}\t{}\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}",
                text(p, "/metadata/namespace"),
                text(p, "/metadata/name"),
                cpu(r[0]),
                pct(r[0], alloc_cpu),
                cpu(r[1]),
                pct(r[1], alloc_cpu),
                mem(r[2]),
                pct(r[2], alloc_mem),
                mem(r[3]),
                pct(r[3], alloc_mem),
                age(text(p, "/metadata/creationTimestamp"), now),
            ),
        );
    }
    d.line(0, "Allocated resources:");
    d.line(
        1,
        "(Total limits may be over 100 percent, i.e., overcommitted.)",
    );
    d.line(1, "Resource\tRequests\tLimits");
    d.line(1, "--------\t--------\t------");
    d.line(
        1,
        format!(
            "cpu\t{} ({}%)\t{} ({}%)",
            cpu(total[0]),
            pct(total[0], alloc_cpu),
            cpu(total[1]),
            pct(total[1], alloc_cpu)
        ),
    );
    d.line(
        1,
        format!(
            "memory\t{} ({}%)\t{} ({}%)",
            mem(total[2]),
            pct(total[2], alloc_mem),
            mem(total[3]),
            pct(total[3], alloc_mem)
        ),
    );
}
