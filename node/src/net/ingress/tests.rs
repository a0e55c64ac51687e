use super::*;
use serde_json::json;

fn svc(ns: &str, name: &str, ports: serde_json::Value) -> (String, Service) {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports},
    }))
    .unwrap();
    (format!("{ns}/{name}"), s)
}

/// A slice of Service `name` with port `pname` → `target`, endpoints (ip, ready).
fn slice(ns: &str, name: &str, pname: &str, target: u16, eps: &[(&str, bool)]) -> EndpointSlice {
    let eps: Vec<_> = eps
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": pname, "port": target, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

fn ingress(ns: &str, name: &str, created: &str, spec: serde_json::Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

fn path(p: &str, kind: &str, svc: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": port}}})
}

/// Services a, b, c, d (port 80 named `web` → 8080, one ready endpoint
/// each: 10.42.0.1..4), `down` (no ready endpoint) and the Ingresses.
fn table(ingresses: &[Ingress]) -> Table {
    let mut services = BTreeMap::new();
    let mut slices = Vec::new();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let (k, s) = svc(
            "web",
            name,
            json!([{"name": "web", "port": 80, "targetPort": 8080}]),
        );
        services.insert(k, s);
        let ip = format!("10.42.0.{}", i + 1);
        slices.push(slice("web", name, "web", 8080, &[(ip.as_str(), true)]));
    }
    let (k, s) = svc("web", "down", json!([{"name": "web", "port": 80}]));
    services.insert(k, s);
    slices.push(slice("web", "down", "web", 80, &[("10.42.0.9", false)]));
    Table::new(ingresses, &[], &services, &slices)
}

fn to(t: &Table, host: &str, path: &str) -> Option<String> {
    t.route(host, path).map(|b| {
        let eps: Vec<String> = b.endpoints.iter().map(|e| e.to_string()).collect();
        format!("{} {}", b.service, eps.join(","))
    })
}

#[test]
fn paths_match_as_kubernetes_defines_them() {
    use PathKind::*;
    // Kubernetes' table of examples (concepts/services-networking/ingress).
    for (kind, want, path, ok) in [
        (Prefix, "/", "/anything", true),
        (Exact, "/foo", "/foo", true),
        (Exact, "/foo", "/bar", false),
        (Exact, "/foo", "/foo/", false),
        (Exact, "/foo/", "/foo", false),
        (Prefix, "/foo", "/foo", true),
        (Prefix, "/foo", "/foo/", true),
        (Prefix, "/foo/", "/foo", true),
        (Prefix, "/foo/", "/foo/", true),
        (Prefix, "/aaa/bb", "/aaa/bbb", false),
        (Prefix, "/aaa/bbb", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb/", "/aaa/bbb", true),
        (Prefix, "/aaa/bbb", "/aaa/bbb/", true),
        (Prefix, "/aaa/bbb", "/aaa/bbb/ccc", true),
        (Prefix, "/aaa/bbb", "/aaa/bbbxyz", false),
    ] {
        assert_eq!(path_matches(kind, want, path), ok, "{kind:?} {want} {path}");
    }
}

#[test]
fn the_longest_path_wins_exact_before_prefix() {
    let t = table(&[ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [{"http": {"paths": [
            path("/", "Prefix", "a", json!({"number": 80})),
            path("/api", "Prefix", "b", json!({"number": 80})),
            path("/api/v2", "ImplementationSpecific", "c", json!({"name": "web"})),
            path("/api", "Exact", "d", json!({"number": 80})),
        ]}}]}),
    )]);
    assert_eq!(to(&t, "x", "/").unwrap(), "web/a:80 10.42.0.1:8080");
    assert_eq!(to(&t, "x", "/apix").unwrap(), "web/a:80 10.42.0.1:8080");
    assert_eq!(to(&t, "x", "/api").unwrap(), "web/d:80 10.42.0.4:8080");
    assert_eq!(to(&t, "x", "/api/").unwrap(), "web/b:80 10.42.0.2:8080");
    assert_eq!(
        to(&t, "x", "/api/v1?q=1").unwrap(),
        "web/b:80 10.42.0.2:8080"
    );
    assert_eq!(
        to(&t, "x", "/api/v2/x").unwrap(),
        "web/c:web 10.42.0.3:8080"
    );
}

#[test]
fn hosts_exact_then_wildcard_then_any_and_404() {
    let t = table(&[ingress(
        "web",
        "i",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry", "rules": [
            {"host": "foo.example.com", "http": {"paths": [path("/", "Prefix", "a", json!({"number": 80}))]}},
            {"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "b", json!({"number": 80}))]}},
            {"http": {"paths": [path("/only", "Prefix", "c", json!({"number": 80}))]}},
        ]}),
    )]);
    assert!(to(&t, "FOO.example.com:8880", "/x")
        .unwrap()
        .starts_with("web/a:80"));
    assert!(to(&t, "bar.example.com", "/x")
        .unwrap()
        .starts_with("web/b:80"));
    // A wildcard covers one label only.
    assert_eq!(to(&t, "a.bar.example.com", "/x"), None);
    assert_eq!(to(&t, "example.com", "/x"), None);
    assert!(to(&t, "other", "/only/1").unwrap().starts_with("web/c:80"));
    assert!(to(&t, "127.0.1.2:8880", "/only")
        .unwrap()
        .starts_with("web/c:80"));
    assert_eq!(to(&t, "other", "/"), None);
    assert!(to(&t, "[::1]:8880", "/only")
        .unwrap()
        .starts_with("web/c:80"));
}

#[test]
fn default_backend_classes_oldest_first_and_no_endpoints() {
    let old = ingress(
        "web",
        "old",
        "2026-01-01T00:00:00Z",
        json!({"ingressClassName": "ferry",
               "defaultBackend": {"service": {"name": "d", "port": {"number": 80}}},
               "rules": [{"http": {"paths": [path("/x", "Prefix", "a", json!({"number": 80}))]}}]}),
    );
    let new = ingress(
        "web",
        "new",
        "2026-02-01T00:00:00Z",
        json!({"ingressClassName": "ferry",
        "defaultBackend": {"service": {"name": "c", "port": {"number": 80}}},
        "rules": [{"http": {"paths": [
            path("/x", "Prefix", "b", json!({"number": 80})),
            path("/down", "Prefix", "down", json!({"number": 80})),
            path("/gone", "Prefix", "nothing", json!({"number": 80})),
            path("/badport", "Prefix", "a", json!({"number": 81})),
        ]}}]}),
    );
    let other = ingress(
        "web",
        "nginx",
        "2025-01-01T00:00:00Z",
        json!({"ingressClassName": "nginx",
               "rules": [{"http": {"paths": [path("/y", "Prefix", "a", json!({"number": 80}))]}}]}),
    );
    // Listed in any order: the older Ingress wins the same path.
    let t = table(&[new, other, old]);
    assert!(to(&t, "h", "/x").unwrap().starts_with("web/a:80"));
    assert!(
        to(&t, "h", "/zzz").unwrap().starts_with("web/d:80"),
        "old's default"
    );
    assert!(
        to(&t, "h", "/y").unwrap().starts_with("web/d:80"),
        "nginx's is not ours"
    );
    // Known routes without usable endpoints: 503.
    for p in ["/down", "/gone", "/badport"] {
        let b = t.route("h", p).unwrap();
        assert!(b.endpoints.is_empty(), "{p}: {b:?}");
        assert_eq!(b.ingress, "web/new");
    }
    assert_eq!(t.route("h", "/badport").unwrap().service, "web/a:81");
    // No served Ingress: nothing routes.
    let t = table(&[]);
    assert_eq!(to(&t, "h", "/"), None);
}
