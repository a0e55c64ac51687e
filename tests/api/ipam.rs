//! Node IPAM end to end: a cluster CIDR of four node ranges, six Nodes.
//! Four get distinct ranges, the other two wait with one `CIDRNotAvailable`
//! Event each, and a Node's deletion hands its range to the first waiting
//! Node — by the informer's event, with no resync.

use crate::api::Api;
use crate::harness::{eventually, TestCluster, WAIT};
use ferry_api::object::ListOptions;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

/// Node name → podCIDR (`None`: none yet).
async fn ranges(api: &Api) -> BTreeMap<String, Option<String>> {
    let (code, list) = api.list("nodes", None, ListOptions::default()).await;
    assert_eq!(code, 200, "{list}");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap().to_string();
            (name, n["spec"]["podCIDR"].as_str().map(str::to_string))
        })
        .collect()
}

/// The CIDRNotAvailable Events' involved Node names, with their counts.
async fn not_available(api: &Api) -> Vec<(String, i64)> {
    let (code, list) = api
        .list("events", Some("default"), ListOptions::default())
        .await;
    assert_eq!(code, 200, "{list}");
    let mut out: Vec<(String, i64)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["reason"] == "CIDRNotAvailable")
        .map(|e| {
            let n = e["involvedObject"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (n, e["count"].as_i64().unwrap_or(1))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ranges_run_out_and_a_deleted_node_hands_its_range_to_a_waiting_one() {
    let c = TestCluster::with(1, |cfg| {
        crate::harness::fast(cfg);
        cfg.workload_controllers = true;
        cfg.network.cluster_cidr = "10.42.0.0/22".parse().expect("static");
    })
    .await;
    let api = Api(c.client.clone());
    for i in 0..4 {
        api.create("nodes", None, &node(&format!("n{i}"))).await;
    }
    let first = eventually("four nodes with ranges", WAIT, || async {
        let r = ranges(&api).await;
        (r.values().flatten().count() == 4).then_some(r)
    })
    .await;
    let mut got: Vec<&String> = first.values().flatten().collect();
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        [
            "10.42.0.0/24",
            "10.42.1.0/24",
            "10.42.2.0/24",
            "10.42.3.0/24"
        ]
    );
    // Two more: none left for them.
    api.create("nodes", None, &node("late0")).await;
    api.create("nodes", None, &node("late1")).await;
    let events = eventually(
        "a CIDRNotAvailable Event per waiting node",
        WAIT,
        || async {
            let e = not_available(&api).await;
            (e.len() == 2).then_some(e)
        },
    )
    .await;
    assert_eq!(
        events.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["late0", "late1"]
    );
    // Status writes of the waiting nodes decide nothing again: no new Event.
    for _ in 0..3 {
        for n in ["late0", "late1"] {
            let body =
                json!({"metadata": {"labels": {"touched": format!("{}", rand::random::<u32>())}}});
            let (code, v) = api
                .patch(
                    "nodes",
                    None,
                    n,
                    ferry_api::object::PatchType::Merge,
                    &body,
                    None,
                )
                .await;
            assert_eq!(code, 200, "{v}");
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(not_available(&api).await, events, "Events repeated");
    let r = ranges(&api).await;
    assert_eq!((r["late0"].as_ref(), r["late1"].as_ref()), (None, None));
    // n1 goes: its range is late0's (it waited longest); late1 still waits.
    let freed = first["n1"].clone().expect("n1 had a range");
    let (code, v) = api.delete("nodes", None, "n1", &json!({})).await;
    assert_eq!(code, 200, "{v}");
    let after = eventually("late0 given n1's range", WAIT, || async {
        let r = ranges(&api).await;
        r["late0"].is_some().then_some(r)
    })
    .await;
    assert_eq!(after["late0"], Some(freed));
    assert_eq!(after["late1"], None);
    // n2 goes too: late1 gets its range.
    let (code, v) = api.delete("nodes", None, "n2", &json!({})).await;
    assert_eq!(code, 200, "{v}");
    let last = eventually("late1 given n2's range", WAIT, || async {
        let r = ranges(&api).await;
        r["late1"].is_some().then_some(r)
    })
    .await;
    assert_eq!(last["late1"], first["n2"]);
}
