//! NetworkPolicies.

use serde_json::{json, Value};

use super::{ok, refuse_all, with};

fn policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": {"app": "a"}}},
                    {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
                ],
                "ports": [{"port": 80}, {"port": "http"}, {"port": 8000, "endPort": 8100, "protocol": "UDP"}]
            }],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.9.8.1/24"}}], "ports": [{"port": 53, "protocol": "UDP"}]}]
        }
    })
}

#[test]
fn defaults() {
    let p = ok("NetworkPolicy", &policy());
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(p["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(p["spec"]["ingress"][0]["ports"][2]["protocol"], "UDP");
    let ingress_only = ok(
        "NetworkPolicy",
        &with(&policy(), "/spec/egress", json!(null)),
    );
    assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));
    let egress_only = ok(
        "NetworkPolicy",
        &with(&policy(), "/spec/policyTypes", json!(["Egress"])),
    );
    assert_eq!(egress_only["spec"]["policyTypes"], json!(["Egress"]));
}

#[test]
fn refused() {
    let cases = vec![
        (
            "/spec/policyTypes",
            json!(["Ingress", "Sideways"]),
            "spec.policyTypes[1]",
            "Unsupported value: \"Sideways\"",
        ),
        (
            "/spec/policyTypes",
            json!(["Ingress", "Egress", "Ingress"]),
            "spec.policyTypes",
            "may not specify more than two policyTypes",
        ),
        (
            "/spec/podSelector/matchLabels",
            json!({"app": "-bad-"}),
            "spec.podSelector.matchLabels",
            "a valid label must be",
        ),
        (
            "/spec/podSelector/matchExpressions",
            json!([{"key": "a", "operator": "In"}]),
            "spec.podSelector.matchExpressions[0].values",
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            "/spec/ingress/0/ports/0/protocol",
            json!("ICMP"),
            "spec.ingress[0].ports[0].protocol",
            "Unsupported value: \"ICMP\"",
        ),
        (
            "/spec/ingress/0/ports/0/port",
            json!(0),
            "spec.ingress[0].ports[0].port",
            "must be between 1 and 65535, inclusive",
        ),
        (
            "/spec/ingress/0/ports/1/port",
            json!("HTTP_"),
            "spec.ingress[0].ports[1].port",
            "must contain only alpha-numeric",
        ),
        (
            "/spec/ingress/0/ports/1/endPort",
            json!(90),
            "spec.ingress[0].ports[1].endPort",
            "may not be specified when `port` is non-numeric",
        ),
        (
            "/spec/ingress/0/ports/2/endPort",
            json!(7999),
            "spec.ingress[0].ports[2].endPort",
            "must be greater than or equal to `port`",
        ),
        (
            "/spec/ingress/0/ports/2/endPort",
            json!(70000),
            "spec.ingress[0].ports[2].endPort",
            "must be between 1 and 65535",
        ),
        (
            "/spec/ingress/0/ports/0",
            json!({"endPort": 90}),
            "spec.ingress[0].ports[0].endPort",
            "may not be specified when `port` is not specified",
        ),
        (
            "/spec/ingress/0/from/0",
            json!({}),
            "spec.ingress[0].from[0]",
            "must specify a peer",
        ),
        (
            "/spec/ingress/0/from/0/ipBlock",
            json!({"cidr": "10.0.0.0/8"}),
            "spec.ingress[0].from[0]",
            "may not specify both ipBlock and another peer",
        ),
        (
            "/spec/ingress/0/from/1/namespaceSelector/matchLabels",
            json!({"a/b/c": "x"}),
            "spec.ingress[0].from[1].namespaceSelector.matchLabels",
            "qualified name",
        ),
        (
            "/spec/ingress/0/from/2/ipBlock/cidr",
            json!("10.0.0.0"),
            "spec.ingress[0].from[2].ipBlock.cidr",
            "must be a valid CIDR value",
        ),
        (
            "/spec/ingress/0/from/2/ipBlock/cidr",
            json!(""),
            "spec.ingress[0].from[2].ipBlock.cidr",
            "Required value",
        ),
        (
            "/spec/ingress/0/from/2/ipBlock/except/0",
            json!("11.0.0.0/16"),
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "must be a strict subset of `cidr`",
        ),
        (
            "/spec/ingress/0/from/2/ipBlock/except/0",
            json!("10.0.0.0/8"),
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "must be a strict subset of `cidr`",
        ),
        (
            "/spec/ingress/0/from/2/ipBlock/except/0",
            json!("10.1.0.0/33"),
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "must be a valid CIDR value",
        ),
        (
            "/spec/egress/0/to/0/ipBlock/cidr",
            json!("fd00::/200"),
            "spec.egress[0].to[0].ipBlock.cidr",
            "must be a valid CIDR value",
        ),
    ];
    refuse_all("NetworkPolicy", &policy(), cases);
}
