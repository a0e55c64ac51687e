use super::*;
use serde_json::{json, Value};

use crate::net::test_net as net;

fn pod(ns: &str, name: &str, ip: &str, labels: Value) -> PolicyPod {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]},
        "status": {"podIP": ip, "phase": "Running"},
    }))
    .unwrap()
}

fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .unwrap()
}

fn namespaces() -> BTreeMap<String, NamespaceLabels> {
    [("ns", json!({})), ("other", json!({"team": "x"}))]
        .into_iter()
        .map(|(n, l)| {
            let ns: NamespaceLabels =
                serde_json::from_value(json!({"metadata": {"name": n, "labels": l}})).unwrap();
            (n.to_string(), ns)
        })
        .collect()
}

/// Pods: a (app=a, local), b (app=b, local), c (app=c, local),
/// d (app=a, another node), x (app=a, namespace "other", local).
fn pods() -> Vec<PolicyPod> {
    vec![
        pod("ns", "a", "10.42.1.2", json!({"app": "a"})),
        pod("ns", "b", "10.42.1.3", json!({"app": "b"})),
        pod("ns", "c", "10.42.1.4", json!({"app": "c"})),
        pod("ns", "d", "10.42.2.2", json!({"app": "a"})),
        pod("other", "x", "10.42.1.9", json!({"app": "a"})),
    ]
}

/// The chain of `dir` for `ip`, as its lines, and the sets it uses by content.
fn chain(r: &Rules, dir: &str, ip: &str) -> Option<Vec<String>> {
    let body = r.chains.get(&format!("pol-{dir}-{ip}"))?;
    Some(
        body.lines()
            .map(|l| {
                // Replace set references by their elements, for readable asserts.
                let mut l = l.to_string();
                for (name, def) in &r.sets {
                    let elems = def
                        .split("elements = { ")
                        .nth(1)
                        .and_then(|e| e.split(" }").next())
                        .unwrap_or_default();
                    l = l.replace(&format!("@{name} "), &format!("{{{elems}}} "));
                }
                l
            })
            .collect(),
    )
}

#[test]
fn selectors_match_like_kubernetes() {
    let l: BTreeMap<String, String> = [("app", "a"), ("tier", "web")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let sel = |v: Value| -> LabelSelector { serde_json::from_value(v).unwrap() };
    for (s, want) in [
        (json!({}), true),
        (json!({"matchLabels": {"app": "a"}}), true),
        (json!({"matchLabels": {"app": "b"}}), false),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}),
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["web"]}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}),
            false,
        ),
    ] {
        assert_eq!(selects(&sel(s.clone()), &l), want, "{s}");
    }
}

#[test]
fn ip_blocks_subtract_their_excepts() {
    let r = |c: &str| vec![interval(c).unwrap()];
    assert_eq!(
        interval("10.1.2.3/24"),
        interval("10.1.2.0/24"),
        "host bits ignored"
    );
    assert_eq!(interval("fd00::/8"), None);
    let got = subtract(
        &r("10.0.0.0/8"),
        &merge([r("10.1.0.0/16"), r("10.3.0.0/16")].concat()),
    );
    let show: Vec<String> = got
        .iter()
        .map(|&(a, b)| format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)))
        .collect();
    assert_eq!(
        show,
        [
            "10.0.0.0-10.0.255.255",
            "10.2.0.0-10.2.255.255",
            "10.4.0.0-10.255.255.255"
        ]
    );
    assert_eq!(subtract(&r("10.0.0.0/24"), &r("10.0.0.0/16")), vec![]);
    assert_eq!(
        merge(vec![(5, 5), (1, 3), (4, 4), (7, 9)]),
        vec![(1, 5), (7, 9)],
        "adjacent and overlapping intervals merge"
    );
}

#[test]
fn ingress_rules_per_selected_local_pod() {
    type Want = Vec<(&'static str, Option<Vec<&'static str>>)>;
    let cases: Vec<(&str, Value, Want)> = vec![
        (
            "no policy: nothing isolated",
            json!(null),
            vec![("10.42.1.3", None), ("10.42.1.2", None)],
        ),
        (
            "deny all ingress to b",
            json!({"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}),
            vec![("10.42.1.3", Some(vec!["drop"])), ("10.42.1.2", None)],
        ),
        (
            "empty podSelector isolates every local pod of the namespace, not other namespaces' or nodes'",
            json!({"podSelector": {}}),
            vec![
                ("10.42.1.2", Some(vec!["drop"])),
                ("10.42.1.4", Some(vec!["drop"])),
                ("10.42.1.9", None),
            ],
        ),
        (
            "from app=a on a port: pods of the namespace only, any node",
            json!({"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                                "ports": [{"port": 80, "protocol": "TCP"}]}]}),
            vec![(
                "10.42.1.3",
                Some(vec![
                    "ip saddr {10.42.1.2, 10.42.2.2} meta l4proto tcp th dport 80 return",
                    "drop",
                ]),
            )],
        ),
        (
            "an empty rule allows everything",
            json!({"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{}]}),
            vec![("10.42.1.3", Some(vec!["return", "drop"]))],
        ),
        (
            "namespaceSelector alone and with a podSelector",
            json!({"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]},
                               {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "c"}}}]}]}),
            vec![(
                "10.42.1.3",
                Some(vec![
                    "ip saddr {10.42.1.9} return",
                    "ip saddr {10.42.1.4} return",
                    "drop",
                ]),
            )],
        ),
        (
            "kubernetes.io/metadata.name selects a namespace by name",
            json!({"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]}]}),
            vec![("10.42.1.3", Some(vec!["ip saddr {10.42.1.9} return", "drop"]))],
        ),
        (
            "ipBlock with except, endPort, protocol only, named ports per destination",
            json!({"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                                "ports": [{"port": 8000, "endPort": 8100, "protocol": "TCP"},
                                          {"protocol": "UDP"},
                                          {"port": "http", "protocol": "TCP"},
                                          {"port": "dns", "protocol": "TCP"},
                                          {"port": "nope", "protocol": "TCP"}]}]}),
            vec![(
                "10.42.1.3",
                Some(vec![
                    "ip saddr {192.168.0.0-192.168.0.255, 192.168.2.0-192.168.255.255} meta l4proto tcp th dport 8000-8100 return",
                    "ip saddr {192.168.0.0-192.168.0.255, 192.168.2.0-192.168.255.255} meta l4proto tcp th dport 8080 return",
                    "ip saddr {192.168.0.0-192.168.0.255, 192.168.2.0-192.168.255.255} meta l4proto udp return",
                    "drop",
                ]),
            )],
        ),
        (
            "a peer naming no pod allows nothing",
            json!({"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "zzz"}}}]}]}),
            vec![("10.42.1.3", Some(vec!["drop"]))],
        ),
        (
            "egress only: ingress not isolated",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            vec![("10.42.1.3", None)],
        ),
    ];
    for (what, spec, want) in cases {
        let policies: Vec<NetworkPolicy> = if spec.is_null() {
            vec![]
        } else {
            vec![policy("ns", "p", spec)]
        };
        let r = rules(&net(), &policies, &pods(), &namespaces());
        for (ip, lines) in want {
            let got = chain(&r, "in", ip);
            let want = lines.map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{what}: {ip}");
            assert_eq!(
                r.ingress.get(&ip.parse().unwrap()).cloned(),
                want.map(|_| format!("jump pol-in-{ip}")),
                "{what}: map element of {ip}"
            );
        }
    }
}

#[test]
fn egress_rules_and_several_policies_add_up() {
    let deny = policy(
        "ns",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let dns = policy(
        "ns",
        "dns",
        json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.42.1.1/32"}}], "ports": [{"port": 53, "protocol": "UDP"}]},
                          {"to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": "http", "protocol": "TCP"}]},
                          {"ports": [{"port": "dns", "protocol": "UDP"}]}]}),
    );
    let r = rules(&net(), &[deny.clone(), dns], &pods(), &namespaces());
    assert_eq!(
        chain(&r, "out", "10.42.1.2").unwrap(),
        [
            "ip daddr 10.42.1.2 meta l4proto udp th dport 5353 return",
            "ip daddr 10.42.1.3 meta l4proto tcp th dport 8080 return",
            "ip daddr 10.42.1.3 meta l4proto udp th dport 5353 return",
            "ip daddr 10.42.1.4 meta l4proto udp th dport 5353 return",
            "ip daddr 10.42.1.9 meta l4proto udp th dport 5353 return",
            "ip daddr 10.42.2.2 meta l4proto udp th dport 5353 return",
            "ip daddr {10.42.1.1} meta l4proto udp th dport 53 return",
            "drop"
        ],
        "named ports resolve per destination pod; DNS only where a rule allows it"
    );
    assert_eq!(chain(&r, "out", "10.42.1.3").unwrap(), ["drop"]);
    assert_eq!(chain(&r, "in", "10.42.1.2").unwrap(), ["drop"]);
    assert!(chain(&r, "out", "10.42.1.9").is_none(), "other namespace");
    assert!(chain(&r, "out", "10.42.2.2").is_none(), "other node");
    // Egress rules without policyTypes imply Egress.
    let implied = policy(
        "ns",
        "implied",
        json!({"podSelector": {"matchLabels": {"app": "c"}}, "egress": [{}]}),
    );
    let r = rules(&net(), &[implied], &pods(), &namespaces());
    assert_eq!(chain(&r, "out", "10.42.1.4").unwrap(), ["return", "drop"]);
    assert_eq!(chain(&r, "in", "10.42.1.4").unwrap(), ["drop"]);
}

#[test]
fn pods_without_an_address_here_are_left_alone() {
    let finished: PolicyPod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "done", "labels": {"app": "a"}},
        "spec": {"containers": []},
        "status": {"podIP": "10.42.1.7", "phase": "Succeeded"}}))
    .unwrap();
    assert_eq!(finished.ip, None, "a finished pod's address may be reused");
    let host: PolicyPod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "h"},
        "spec": {"containers": [], "hostNetwork": true},
        "status": {"podIP": "10.42.1.8"}}))
    .unwrap();
    assert_eq!(host.ip, None);
    let r = rules(
        &net(),
        &[policy("ns", "all", json!({"podSelector": {}}))],
        &[finished, host],
        &namespaces(),
    );
    assert_eq!(r, Rules::default());
}

#[test]
fn the_fixed_part_checks_replies_egress_then_ingress() {
    let r = rules(
        &net(),
        &[policy("ns", "all", json!({"podSelector": {}}))],
        &pods(),
        &namespaces(),
    );
    let (maps, chains) = r.fixed();
    assert!(maps.contains("map pol-ingress {\ntype ipv4_addr : verdict;\nelements = { 10.42.1.2 : jump pol-in-10.42.1.2, 10.42.1.3 : jump pol-in-10.42.1.3, 10.42.1.4 : jump pol-in-10.42.1.4 }"), "{maps}");
    assert!(
        maps.contains("map pol-egress {\ntype ipv4_addr : verdict;\n}"),
        "{maps}"
    );
    let fwd = &chains[0].1;
    let order: Vec<usize> = ["established,related accept", "@pol-egress", "@pol-ingress"]
        .iter()
        .map(|s| fwd.find(s).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{fwd}");
    assert!(chains[1].1.contains("hook input"));
}
