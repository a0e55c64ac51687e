//! Service ClusterIPs and NodePorts: allocated once, never twice — not for
//! Services created at once through different masters, not across a leader
//! failover — checked and freed as Kubernetes does, with its error words.

use crate::api::{cluster, Api};
use ferry_api::object::{PatchType, Verb};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;

fn service(name: &str, ty: &str, extra: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": ty, "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    if let (Some(spec), Some(extra)) = (s["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    s
}

fn ip_of(s: &Value) -> IpAddr {
    s["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .parse()
        .expect("an address")
}

fn node_port(s: &Value) -> u16 {
    s["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("nodePort") as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_ips_and_node_ports_are_allocated_once_through_every_master_and_failover() {
    let (mut c, api) = cluster().await;
    let ns = Some("default");
    let range: ferry_api::network::Cidr = "10.43.0.0/16".parse().unwrap();

    // The leader publishes the network and the `kubernetes` Service at .1.
    let k = crate::harness::eventually("the kubernetes Service", crate::harness::WAIT, || async {
        api.get("services", ns, "kubernetes").await
    })
    .await;
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    let cm = crate::harness::eventually("the network ConfigMap", crate::harness::WAIT, || async {
        api.get("configmaps", Some("kube-system"), "ferry-network")
            .await
    })
    .await;
    assert_eq!(cm["data"]["serviceCIDR"], "10.43.0.0/16");
    assert_eq!(cm["data"]["ingressPort"], "8880");
    // And the default IngressClass the nodes' ingress listeners serve.
    let class =
        crate::harness::eventually("the IngressClass ferry", crate::harness::WAIT, || async {
            api.get("ingressclasses", None, "ferry").await
        })
        .await;
    assert_eq!(class["spec"]["controller"], "ferry.dev/ingress");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );

    // 24 Services created at once, 8 through each master, half NodePort.
    let creates = (0..24).map(|i| {
        let client = Api(c.local_arc(i % 3));
        let ty = if i % 2 == 0 { "NodePort" } else { "ClusterIP" };
        async move {
            client
                .create(
                    "services",
                    Some("default"),
                    &service(&format!("s{i}"), ty, json!({})),
                )
                .await
        }
    });
    let made = futures_util::future::join_all(creates).await;
    let mut ips = BTreeSet::from([ip_of(&k)]);
    let mut ports = BTreeSet::new();
    for s in &made {
        let ip = ip_of(s);
        assert!(range.contains(ip), "{ip} is in the service range");
        assert!(ips.insert(ip), "{ip} handed out twice");
        assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
        if s["spec"]["type"] == "NodePort" {
            let p = node_port(s);
            assert!((30000..=32767).contains(&p), "{p}");
            assert!(ports.insert(p), "nodePort {p} handed out twice");
        } else {
            assert!(s["spec"]["ports"][0].get("nodePort").is_none(), "{s}");
        }
    }

    // Asking for a held address or port, or one out of range: 422, Kubernetes' words.
    let taken_ip = ip_of(&made[1]);
    let taken_port = node_port(&made[0]);
    for (body, want) in [
        (service("x1", "ClusterIP", json!({"clusterIP": taken_ip.to_string()})),
         format!("spec.clusterIPs: Invalid value: []string{{\"{taken_ip}\"}}: failed to allocate IP {taken_ip}: provided IP is already allocated")),
        (service("x2", "ClusterIP", json!({"clusterIP": "10.99.0.1"})),
         "failed to allocate IP 10.99.0.1: the provided IP (10.99.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16".to_string()),
        (service("x3", "NodePort", json!({"ports": [{"port": 80, "nodePort": taken_port}]})),
         format!("spec.ports[0].nodePort: Invalid value: {taken_port}: provided port is already allocated")),
        (service("x4", "NodePort", json!({"ports": [{"port": 80, "nodePort": 80}]})),
         "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".to_string()),
    ] {
        let (code, v) = api.call(Api::req(Verb::Create, "services", ns, None, Some(&body))).await;
        assert_eq!(code, 422, "{v}");
        assert!(v["message"].as_str().unwrap().contains(&want), "{}\nwant: {want}", v["message"]);
    }

    // The same Service again, asking for its own address: a duplicate (409), not 422.
    let dup = service(
        "s1",
        "ClusterIP",
        json!({"clusterIP": taken_ip.to_string()}),
    );
    let (code, v) = api
        .call(Api::req(Verb::Create, "services", ns, None, Some(&dup)))
        .await;
    assert_eq!(
        (code, v["reason"].as_str()),
        (409, Some("AlreadyExists")),
        "{v}"
    );

    // A delete frees what the Service held: another may ask for it.
    let (code, _) = api.delete("services", ns, "s1", &json!({})).await;
    assert_eq!(code, 200);
    let again = api
        .create(
            "services",
            ns,
            &service(
                "reuse-ip",
                "ClusterIP",
                json!({"clusterIP": taken_ip.to_string()}),
            ),
        )
        .await;
    assert_eq!(ip_of(&again), taken_ip);

    // NodePort -> ClusterIP drops the ports (freed), and keeps the address.
    let (code, v) = api
        .patch(
            "services",
            ns,
            "s0",
            PatchType::Merge,
            &json!({"spec": {"type": "ClusterIP"}}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v["spec"]["ports"][0].get("nodePort").is_none(), "{v}");
    assert_eq!(ip_of(&v), ip_of(&made[0]));
    let reuse = api
        .create(
            "services",
            ns,
            &service(
                "reuse-port",
                "NodePort",
                json!({"ports": [{"port": 80, "nodePort": taken_port}]}),
            ),
        )
        .await;
    assert_eq!(node_port(&reuse), taken_port);
    // An update that leaves nodePort out keeps it.
    let mut put = reuse.clone();
    put["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    put["metadata"]["labels"] = json!({"changed": "yes"});
    let (code, v) = api.update("services", ns, "reuse-port", &put, None).await;
    assert_eq!((code, node_port(&v)), (200, taken_port), "{v}");

    // Across a leader failover, new Services still get addresses nobody holds.
    let (_, list) = api.list("services", ns, Default::default()).await;
    let held: BTreeSet<IpAddr> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(ip_of)
        .collect();
    let leader = c.leader().await;
    c.stop(leader).await;
    for i in 0..6 {
        let s = api
            .create(
                "services",
                ns,
                &service(&format!("after{i}"), "NodePort", json!({})),
            )
            .await;
        assert!(
            !held.contains(&ip_of(&s)),
            "{} handed out twice after failover",
            ip_of(&s)
        );
    }
    let (_, list) = api.list("services", ns, Default::default()).await;
    let all: Vec<IpAddr> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(ip_of)
        .collect();
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "every Service has its own address: {all:?}"
    );
}
