//! Ingress status, as an ingress controller publishes it: every Ingress
//! ferry serves ([`ferry_api::ingress::served`]) gets in
//! `status.loadBalancer.ingress` the InternalIP of each Ready node (each
//! node's ingress listener answers there) with `network.ingress_port`, sorted;
//! none while no node is Ready or the port is 0. Ingresses of other
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

/// The status `ing` should have; `None` when it has it already (or is not
/// ferry's).
pub fn status(
    ing: &Ingress,
    classes: &[Arc<IngressClass>],
    nodes: &[Arc<Node>],
    port: u16,
) -> Option<IngressStatus> {
    let classes: Vec<IngressClass> = classes.iter().map(|c| (**c).clone()).collect();
    let have = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default();
    if !ferry_api::ingress::served(ing, &classes) {
        // One that left ferry's classes loses what ferry wrote: node
        // addresses with the ingress port.
        let node_ips: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.status.as_ref()?.addresses.clone())
            .flatten()
            .map(|a| a.address)
            .collect();
        let ours = |i: &IngressLoadBalancerIngress| {
            i.ip.as_ref().is_some_and(|ip| node_ips.contains(ip))
                && i.ports.as_deref().is_some_and(|p| {
                    p.len() == 1 && p[0].port == i32::from(port) && p[0].protocol == "TCP"
                })
        };
        return (!have.is_empty() && have.iter().all(ours)).then(IngressStatus::default);
    }
    let mut ips: Vec<String> = if port == 0 {
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
                        ports: Some(vec![IngressPortStatus {
                            port: i32::from(port),
                            protocol: "TCP".into(),
                            error: None,
                        }]),
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

    fn ips(s: &IngressStatus) -> Vec<(String, i32)> {
        s.load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .iter()
            .flatten()
            .map(|i| (i.ip.clone().unwrap(), i.ports.as_ref().unwrap()[0].port))
            .collect()
    }

    #[test]
    fn ready_nodes_addresses_with_the_port_once() {
        let nodes = [
            node("n2", "127.0.1.3", "True"),
            node("n1", "127.0.1.2", "True"),
            node("n3", "127.0.1.4", "False"),
        ];
        let s = status(&ing("ferry", json!({})), &[], &nodes, 8880).unwrap();
        assert_eq!(
            ips(&s),
            [("127.0.1.2".into(), 8880), ("127.0.1.3".into(), 8880)]
        );
        // Written already: nothing to do.
        let done = ing("ferry", serde_json::to_value(&s).unwrap());
        assert_eq!(status(&done, &[], &nodes, 8880), None);
        // A node gone NotReady drops out.
        let fewer = [node("n1", "127.0.1.2", "True")];
        let s = status(&done, &[], &fewer, 8880).unwrap();
        assert_eq!(ips(&s), [("127.0.1.2".into(), 8880)]);
        // Another controller's Ingress is not touched; port 0 lists nobody.
        assert_eq!(status(&ing("nginx", json!({})), &[], &nodes, 8880), None);
        let theirs = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        assert_eq!(status(&ing("nginx", theirs), &[], &nodes, 8880), None);
        // One that moved to another class loses ferry's addresses.
        let moved = ing("nginx", serde_json::to_value(&s).unwrap());
        assert_eq!(
            status(&moved, &[], &nodes, 8880),
            Some(IngressStatus::default())
        );
        let s = status(&done, &[], &nodes, 0).unwrap();
        assert!(ips(&s).is_empty());
    }
}
