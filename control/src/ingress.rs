//! Ingress status, as an ingress controller publishes it: every Ingress
//! ferry serves ([`ferry_api::ingress::served`]) gets in
//! `status.loadBalancer.ingress` the InternalIP of each Ready node (each
//! node's ingress listeners answer there), sorted, with `ports` (Kubernetes'
//! `IngressPortStatus`) `network.ingress_port` and `network.ingress_tls_port`,
//! TCP, those not 0; none while no node is Ready or both ports are 0.
//! Ingresses of other
//! controllers are left alone, but one that leaves ferry's classes loses
//! the node addresses ferry wrote.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressClass, IngressLoadBalancerIngress, IngressLoadBalancerStatus,
    IngressPortStatus, IngressStatus,
};
use std::sync::Arc;

fn ready_address(n: &Node) -> Option<String> {
    if n.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let st = n.status.as_ref()?;
    let ready = st
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    st.addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

/// The ports each address lists: the plain and the TLS port, those not 0.
fn ports(port: u16, tls_port: u16) -> Vec<IngressPortStatus> {
    [port, tls_port]
        .into_iter()
        .filter(|p| *p != 0)
        .map(|p| IngressPortStatus {
            port: i32::from(p),
            protocol: "TCP".into(),
            error: None,
        })
        .collect()
}

/// The status `ing` should have; `None` when it has it already (or is not
/// ferry's). `port` and `tls_port`: the ingress listeners' (0: off).
pub fn status(
    ing: &Ingress,
    classes: &[Arc<IngressClass>],
    nodes: &[Arc<Node>],
    port: u16,
    tls_port: u16,
) -> Option<IngressStatus> {
    let listed = ports(port, tls_port);
    let classes: Vec<IngressClass> = classes.iter().map(|c| (**c).clone()).collect();
    let have = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default();
    if !ferry_api::ingress::served(ing, &classes) {
        // One that left ferry's classes loses what ferry wrote: node
        // addresses with the ingress ports (the plain one alone, as
        // earlier versions wrote).
        let node_ips: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.status.as_ref()?.addresses.clone())
            .flatten()
            .map(|a| a.address)
            .collect();
        let ours = |i: &IngressLoadBalancerIngress| {
            i.ip.as_ref().is_some_and(|ip| node_ips.contains(ip))
                && i.ports.as_deref().is_some_and(|p| {
                    p == listed.as_slice()
                        || (p.len() == 1 && p[0].port == i32::from(port) && p[0].protocol == "TCP")
                })
        };
        return (!have.is_empty() && have.iter().all(ours)).then(IngressStatus::default);
    }
    let mut ips: Vec<String> = if listed.is_empty() {
        Vec::new()
    } else {
        nodes.iter().filter_map(|n| ready_address(n)).collect()
    };
    ips.sort();
    ips.dedup();
    let want = IngressStatus {
        load_balancer: Some(IngressLoadBalancerStatus {
            ingress: Some(
                ips.into_iter()
                    .map(|ip| IngressLoadBalancerIngress {
                        ip: Some(ip),
                        ports: Some(listed.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
    };
    let want_list = want
        .load_balancer
        .as_ref()
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default();
    (have != want_list).then_some(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ip: &str, ready: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                           "conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap(),
        )
    }

    fn ing(class: &str, status: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "i", "namespace": "default"},
            "spec": {"ingressClassName": class},
            "status": status,
        }))
        .unwrap()
    }

    fn ips(s: &IngressStatus) -> Vec<(String, Vec<i32>)> {
        s.load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .iter()
            .flatten()
            .map(|i| {
                let ports: Vec<i32> = i.ports.iter().flatten().map(|p| p.port).collect();
                (i.ip.clone().unwrap(), ports)
            })
            .collect()
    }

    #[test]
    fn ready_nodes_addresses_with_both_ports_once() {
        let nodes = [
            node("n2", "127.0.1.3", "True"),
            node("n1", "127.0.1.2", "True"),
            node("n3", "127.0.1.4", "False"),
        ];
        let s = status(&ing("ferry", json!({})), &[], &nodes, 8880, 8443).unwrap();
        assert_eq!(
            ips(&s),
            [
                ("127.0.1.2".into(), vec![8880, 8443]),
                ("127.0.1.3".into(), vec![8880, 8443])
            ]
        );
        let wire = serde_json::to_value(&s).unwrap();
        assert_eq!(
            wire["loadBalancer"]["ingress"][0]["ports"],
            json!([{"port": 8880, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}])
        );
        // Written already: nothing to do.
        let done = ing("ferry", serde_json::to_value(&s).unwrap());
        assert_eq!(status(&done, &[], &nodes, 8880, 8443), None);
        // A node gone NotReady drops out.
        let fewer = [node("n1", "127.0.1.2", "True")];
        let s = status(&done, &[], &fewer, 8880, 8443).unwrap();
        assert_eq!(ips(&s), [("127.0.1.2".into(), vec![8880, 8443])]);
        // The TLS listener off: the plain port alone; written by an earlier
        // version (the plain port alone): the TLS port added.
        let plain = status(&ing("ferry", json!({})), &[], &fewer, 8880, 0).unwrap();
        assert_eq!(ips(&plain), [("127.0.1.2".into(), vec![8880])]);
        let older = ing("ferry", serde_json::to_value(&plain).unwrap());
        let s2 = status(&older, &[], &fewer, 8880, 8443).unwrap();
        assert_eq!(ips(&s2), [("127.0.1.2".into(), vec![8880, 8443])]);
        // Only the TLS port.
        let tls_only = status(&ing("ferry", json!({})), &[], &fewer, 0, 8443).unwrap();
        assert_eq!(ips(&tls_only), [("127.0.1.2".into(), vec![8443])]);
        // Another controller's Ingress is not touched; both ports 0 list nobody.
        assert_eq!(
            status(&ing("nginx", json!({})), &[], &nodes, 8880, 8443),
            None
        );
        let theirs = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        assert_eq!(status(&ing("nginx", theirs), &[], &nodes, 8880, 8443), None);
        // One that moved to another class loses ferry's addresses, whichever
        // version wrote them.
        for written in [&s, &plain] {
            let moved = ing("nginx", serde_json::to_value(written).unwrap());
            assert_eq!(
                status(&moved, &[], &nodes, 8880, 8443),
                Some(IngressStatus::default())
            );
        }
        let s = status(&done, &[], &nodes, 0, 0).unwrap();
        assert!(ips(&s).is_empty());
    }
}
