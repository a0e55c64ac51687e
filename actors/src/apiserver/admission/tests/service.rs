//! Services and Endpoints.

use serde_json::{json, Value};

use super::{create, expect_invalid, ok, refuse_all, update, with};

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "targetPort": "https"}]}
    })
}

#[test]
fn defaults() {
    let s = ok("Service", &service());
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(
        spec["ports"][0],
        json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["ports"][1]["targetPort"], "https");
    assert!(
        spec.get("clusterIP").is_none(),
        "cluster IPs are the registry's"
    );
    let np = ok(
        "Service",
        &with(&service(), "/spec/type", json!("NodePort")),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    // A protobuf body's zero health check port is none.
    let zero = ok(
        "Service",
        &with(
            &with(&service(), "/spec/type", json!("NodePort")),
            "/spec/healthCheckNodePort",
            json!(0),
        ),
    );
    assert!(zero["spec"].get("healthCheckNodePort").is_none(), "{zero}");
    let affinity = ok(
        "Service",
        &with(&service(), "/spec/sessionAffinity", json!("ClientIP")),
    );
    assert_eq!(
        affinity["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );
    // Headless and ExternalName services need no ports.
    ok(
        "Service",
        &with(
            &with(&service(), "/spec/ports", json!(null)),
            "/spec/clusterIP",
            json!("None"),
        ),
    );
    let ext = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    ok("Service", &ext);
}

#[test]
fn refused() {
    let cases = vec![
        ("/metadata/name", json!("1web"), "metadata.name", "a DNS-1035 label must consist of"),
        ("/metadata/name", json!("web.svc"), "metadata.name", "a DNS-1035 label"),
        ("/spec/ports", json!(null), "spec.ports", "Required value"),
        ("/spec/ports/0/port", json!(0), "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ("/spec/ports/1/port", json!(80), "spec.ports[1]", "Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}"),
        ("/spec/ports/1/name", json!(null), "spec.ports[1].name", "Required value"),
        ("/spec/ports/1/name", json!("http"), "spec.ports[1].name", "Duplicate value: \"http\""),
        ("/spec/ports/1/name", json!("HTTPS"), "spec.ports[1].name", "a lowercase RFC 1123 label"),
        ("/spec/ports/0/protocol", json!("ICMP"), "spec.ports[0].protocol", "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
        ("/spec/ports/0/targetPort", json!(0), "spec.ports[0].targetPort", "must be between 1 and 65535"),
        ("/spec/ports/0/targetPort", json!("--x"), "spec.ports[0].targetPort", "must not contain consecutive hyphens"),
        ("/spec/ports/0/nodePort", json!(30000), "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
        ("/spec/type", json!("Magic"), "spec.type", "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ("/spec/type", json!("ExternalName"), "spec.externalName", "Required value"),
        ("/spec/selector", json!({"app": "a b"}), "spec.selector", "a valid label must be"),
        ("/spec/sessionAffinity", json!("Sticky"), "spec.sessionAffinity", "Unsupported value: \"Sticky\""),
        ("/spec/clusterIP", json!("10.0.0.300"), "spec.clusterIP", "must be a valid IP address"),
        ("/spec/externalTrafficPolicy", json!("Local"), "spec.externalTrafficPolicy", "may only be set when `type` is 'NodePort' or 'LoadBalancer'"),
        ("/spec/internalTrafficPolicy", json!("Nearest"), "spec.internalTrafficPolicy", "Unsupported value: \"Nearest\""),
    ];
    refuse_all("Service", &service(), cases);
}

#[test]
fn cluster_ip_is_immutable_once_set() {
    let old = with(&service(), "/spec/clusterIP", json!("10.96.0.10"));
    let old = with(&old, "/spec/clusterIPs", json!(["10.96.0.10"]));
    // Leaving the IPs out keeps them.
    let out = update("Service", &old, &service()).unwrap_or_else(|s| panic!("{}", s.message));
    assert_eq!(out["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(out["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    let moved = with(
        &with(&old, "/spec/clusterIP", json!("10.96.0.11")),
        "/spec/clusterIPs",
        json!(["10.96.0.11"]),
    );
    let got = update("Service", &old, &moved);
    expect_invalid(
        "Service",
        got.clone(),
        "spec.clusterIP",
        "field is immutable",
        "clusterIP",
    );
    expect_invalid(
        "Service",
        got,
        "spec.clusterIPs",
        "field is immutable",
        "clusterIPs",
    );
    // Becoming an ExternalName service drops the IP.
    let ext = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "web.example.com"}});
    update("Service", &old, &ext).unwrap_or_else(|s| panic!("{}", s.message));
}

#[test]
fn endpoints() {
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"name": "http", "port": 80}]}]
    });
    let out = ok("Endpoints", &ep);
    assert_eq!(out["subsets"][0]["ports"][0]["protocol"], "TCP");
    let cases = vec![
        (
            "/subsets/0/addresses/0/ip",
            json!("nope"),
            "subsets[0].addresses[0].ip",
            "must be a valid IP address",
        ),
        (
            "/subsets/0/addresses/0/ip",
            json!(""),
            "subsets[0].addresses[0].ip",
            "Required value",
        ),
        (
            "/subsets/0/ports/0/port",
            json!(0),
            "subsets[0].ports[0].port",
            "must be between 1 and 65535",
        ),
        (
            "/subsets/0/ports/1",
            json!({"port": 81}),
            "subsets[0].ports[1].name",
            "Required value",
        ),
        (
            "/subsets/0/ports/0/protocol",
            json!("TLS"),
            "subsets[0].ports[0].protocol",
            "Unsupported value: \"TLS\"",
        ),
    ];
    refuse_all("Endpoints", &ep, cases);
}

fn slice() -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.1.5"], "conditions": {"ready": true},
            "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}],
        "ports": [{"name": "http", "port": 8080}, {"port": 9090}]
    })
}

#[test]
fn endpoint_slices() {
    let out = ok("EndpointSlice", &slice());
    assert_eq!(
        out["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "", "port": 9090, "protocol": "TCP"}])
    );
    let v6 = with(&slice(), "/addressType", json!("IPv6"));
    ok(
        "EndpointSlice",
        &with(&v6, "/endpoints/0/addresses/0", json!("fd00::5")),
    );
    let fqdn = with(&slice(), "/addressType", json!("FQDN"));
    ok(
        "EndpointSlice",
        &with(&fqdn, "/endpoints/0/addresses/0", json!("db.example.com")),
    );
    // ferry's controller may write loopback addresses (a local cluster's
    // nodes, and their pods in host mode); anyone else may not (below).
    let mut ours = slice();
    ours["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] =
        json!("endpointslice-controller.k8s.io");
    ok(
        "EndpointSlice",
        &with(&ours, "/endpoints/0/addresses/0", json!("127.0.1.1")),
    );
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"addresses": [format!("10.42.{}.{}", i / 250, i % 250 + 1)]}))
        .collect();
    let cases = vec![
        (
            "/addressType",
            json!("IPv5"),
            "addressType",
            "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
        ),
        ("/addressType", json!(""), "addressType", "Required value"),
        (
            "/endpoints/0/addresses/0",
            json!("fd00::5"),
            "endpoints[0].addresses[0]",
            "must be a valid IPv4 address",
        ),
        (
            "/endpoints/0/addresses/0",
            json!("web"),
            "endpoints[0].addresses[0]",
            "must be a valid IPv4 address",
        ),
        (
            "/endpoints/0/addresses/0",
            json!("127.0.0.1"),
            "endpoints[0].addresses[0]",
            "may not be in the loopback range",
        ),
        (
            "/endpoints/0/addresses/0",
            json!("169.254.1.1"),
            "endpoints[0].addresses[0]",
            "may not be in the link-local range",
        ),
        (
            "/endpoints/0/addresses/0",
            json!("0.0.0.0"),
            "endpoints[0].addresses[0]",
            "may not be unspecified",
        ),
        (
            "/endpoints/0/addresses",
            json!([]),
            "endpoints[0].addresses",
            "Required value: must contain at least 1 address",
        ),
        (
            "/endpoints/0/nodeName",
            json!("Bad_Node"),
            "endpoints[0].nodeName",
            "a lowercase RFC 1123 subdomain",
        ),
        (
            "/endpoints/0/hostname",
            json!("a.b"),
            "endpoints[0].hostname",
            "a lowercase RFC 1123 label",
        ),
        (
            "/endpoints",
            json!(many),
            "endpoints",
            "Too many: 1001: must have at most 1000 items",
        ),
        (
            "/ports/1/name",
            json!("http"),
            "ports[1].name",
            "Duplicate value: \"http\"",
        ),
        (
            "/ports/0/name",
            json!("HTTP"),
            "ports[0].name",
            "a lowercase RFC 1123 label",
        ),
        (
            "/ports/0/protocol",
            json!("TLS"),
            "ports[0].protocol",
            "Unsupported value: \"TLS\"",
        ),
        (
            "/ports/0/port",
            json!(70000),
            "ports[0].port",
            "must be between 1 and 65535",
        ),
        (
            "/ports/0/appProtocol",
            json!("a/b/c"),
            "ports[0].appProtocol",
            "qualified name",
        ),
    ];
    refuse_all("EndpointSlice", &slice(), cases);
    let v6_addr = with(&fqdn, "/endpoints/0/addresses/0", json!("localhost"));
    expect_invalid(
        "EndpointSlice",
        create("EndpointSlice", &v6_addr),
        "endpoints[0].addresses[0]",
        "at least two segments",
        "a one-label FQDN",
    );
    expect_invalid(
        "EndpointSlice",
        update(
            "EndpointSlice",
            &slice(),
            &with(&v6, "/endpoints/0/addresses/0", json!("fd00::5")),
        ),
        "addressType",
        "field is immutable",
        "addressType changed",
    );
}
