//! NetworkPolicy on `ferry up` (3 masters, 2 real nodes, root), driven by
//! unmodified kubectl: servers and clients in two namespaces spread over both
//! nodes. A default-deny ingress policy makes connections to the servers
//! time out (ferry's policy chains drop, as Calico's and Cilium's dataplanes
//! do, so the client sees no refusal); an allow policy by podSelector,
//! namespaceSelector and port lets only the selected clients in, to the
//! selected port, by pod address and through a ClusterIP; an egress policy
//! limits a client to one namespace's servers on one port; deleting the
//! policies restores every connection. Only traffic between the test's own
//! pods.
//!
//! Without root (no namespaces, no enforcement), the test says so and checks
//! nothing else.

use crate::harness::{poll, LocalUp};
use crate::kubectl::Kubectl;
use std::collections::BTreeMap;
use std::time::Duration;

/// Two namespaces: `np-a` (server `srv-a` on n2, clients `cli-ok` with
/// `role: client` and `cli-no` with `role: other` on n1, a Service `srv`)
/// and `np-b` labelled `team: b` (server `srv-b` on n1, client `cli-b` on
/// n2). Each server answers HTTP on 8080 and 9090.
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: np-a, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: np-b, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: srv-a, namespace: np-a, labels: {app: srv}}
spec:
  nodeName: n2
  containers:
  - name: s
    image: python:3
    command: ["sh", "-c", "cd /tmp && python3 -m http.server 8080 & cd /tmp && exec python3 -m http.server 9090"]
    ports: [{name: http, containerPort: 8080}, {name: alt, containerPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: srv, namespace: np-a}
spec:
  selector: {app: srv}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: srv-b, namespace: np-b, labels: {app: srv}}
spec:
  nodeName: n1
  containers:
  - name: s
    image: python:3
    command: ["sh", "-c", "cd /tmp && python3 -m http.server 8080 & cd /tmp && exec python3 -m http.server 9090"]
    ports: [{name: http, containerPort: 8080}, {name: alt, containerPort: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: cli-ok, namespace: np-a, labels: {role: client}}
spec:
  nodeName: n1
  containers: [{name: c, image: python:3, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: cli-no, namespace: np-a, labels: {role: other}}
spec:
  nodeName: n1
  containers: [{name: c, image: python:3, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: cli-b, namespace: np-b, labels: {role: client}}
spec:
  nodeName: n2
  containers: [{name: c, image: python:3, command: ["sleep", "3600"]}]
"#;

const DENY_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-in, namespace: np-a}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#;

/// Into `app: srv` of np-a on 8080 only: from `role: client` pods of np-a
/// and from any pod of a namespace labelled `team: b`.
const ALLOW_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-in, namespace: np-a}
spec:
  podSelector: {matchLabels: {app: srv}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
    - namespaceSelector: {matchLabels: {team: b}}
    ports: [{protocol: TCP, port: 8080}]
"#;

/// Out of `role: client` of np-a: only to `app: srv` pods of namespaces
/// labelled `team: b`, on the port named `http`.
const ALLOW_EGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out-b, namespace: np-a}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {team: b}}
      podSelector: {matchLabels: {app: srv}}
    ports: [{protocol: TCP, port: http}]
"#;

/// Python run in a client pod: a TCP connect to each `ip:port` of argv (in
/// parallel, 2 s each), printing `target open|timeout|refused|error`.
const PROBE: &str = r#"
import socket, sys, threading
out = {}
def probe(t):
    ip, port = t.rsplit(':', 1)
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((ip, int(port))); out[t] = 'open'
    except socket.timeout:
        out[t] = 'timeout'
    except ConnectionRefusedError:
        out[t] = 'refused'
    except OSError as e:
        out[t] = 'error:' + str(e.errno)
    finally:
        s.close()
ts = [threading.Thread(target=probe, args=(t,)) for t in sys.argv[1:]]
[t.start() for t in ts]
[t.join() for t in ts]
for t in sys.argv[1:]:
    print(t, out[t])
"#;

/// What each client sees of each target: `(client, target) -> outcome`.
type Seen = BTreeMap<(String, String), String>;

/// Probes from every client in `want` and waits until the outcomes are
/// `want`'s (each node's proxy syncs on its own).
async fn expect(k: &Kubectl, what: &str, want: &Seen) {
    poll(what, Duration::from_secs(30), || {
        let mut seen = Seen::new();
        let clients: std::collections::BTreeSet<&String> = want.keys().map(|(c, _)| c).collect();
        for client in clients {
            let (ns, pod) = client.split_once('/').unwrap();
            let targets: Vec<&str> = want
                .keys()
                .filter(|(c, _)| c == client)
                .map(|(_, t)| t.as_str())
                .collect();
            let mut args = vec!["exec", "-n", ns, pod, "--", "python3", "-c", PROBE];
            args.extend(targets);
            let out = k.run(&args, None);
            for line in out.stdout.lines() {
                if let Some((t, r)) = line.split_once(' ') {
                    seen.insert((client.clone(), t.to_string()), r.to_string());
                }
            }
        }
        let r = if seen == *want {
            Ok(())
        } else {
            let diff: Vec<String> = want
                .iter()
                .filter(|(key, v)| seen.get(*key) != Some(*v))
                .map(|((c, t), v)| {
                    format!(
                        "{c} -> {t}: want {v}, saw {}",
                        seen.get(&(c.clone(), t.clone()))
                            .map_or("nothing", String::as_str)
                    )
                })
                .collect();
            Err(diff.join("; "))
        };
        r
    })
    .await;
}

fn table(rows: &[(&str, &str, &str)]) -> Seen {
    rows.iter()
        .map(|(c, t, v)| ((c.to_string(), t.to_string()), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_policies_deny_and_allow_on_two_nodes() {
    let Some(mut c) =
        LocalUp::start_as_root("NetworkPolicy enforcement needs pod network namespaces (root)")
            .await
    else {
        return;
    };
    c.pod_network().await;
    let (k, up) = (&c.k, &mut c.up);

    k.ok_in(&["apply", "-f", "-"], MANIFESTS);
    for (ns, pods) in [
        ("np-a", "pod/srv-a pod/cli-ok pod/cli-no"),
        ("np-b", "pod/srv-b pod/cli-b"),
    ] {
        let mut args = vec!["wait", "-n", ns, "--for=condition=Ready", "--timeout=90s"];
        args.extend(pods.split(' '));
        k.ok(&args);
    }
    let ip = |ns: &str, pod: &str| {
        k.json(&["get", "-n", ns, "pod", pod])["status"]["podIP"]
            .as_str()
            .expect("podIP")
            .to_string()
    };
    let a = ip("np-a", "srv-a");
    let b = ip("np-b", "srv-b");
    let svc = k.json(&["get", "-n", "np-a", "svc", "srv"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let (a80, a90) = (format!("{a}:8080"), format!("{a}:9090"));
    let (b80, b90) = (format!("{b}:8080"), format!("{b}:9090"));
    let vip = format!("{svc}:80");
    let (ok, no, cb) = ("np-a/cli-ok", "np-a/cli-no", "np-b/cli-b");
    // Every client, every target.
    let open_all = table(&[
        (ok, &a80, "open"),
        (ok, &a90, "open"),
        (ok, &vip, "open"),
        (ok, &b80, "open"),
        (ok, &b90, "open"),
        (no, &a80, "open"),
        (no, &vip, "open"),
        (no, &b80, "open"),
        (cb, &a80, "open"),
        (cb, &a90, "open"),
    ]);
    expect(k, "every connection open without policies", &open_all).await;

    // Default deny: nothing gets into np-a's server, not even through its
    // Service; np-b is not isolated.
    k.ok_in(&["apply", "-f", "-"], DENY_INGRESS);
    let denied = table(&[
        (ok, &a80, "timeout"),
        (ok, &a90, "timeout"),
        (ok, &vip, "timeout"),
        (ok, &b80, "open"),
        (no, &a80, "timeout"),
        (no, &vip, "timeout"),
        (cb, &a80, "timeout"),
        (cb, &a90, "timeout"),
    ]);
    expect(k, "default-deny ingress", &denied).await;

    // Allow by podSelector and namespaceSelector, on 8080 only.
    k.ok_in(&["apply", "-f", "-"], ALLOW_INGRESS);
    let allowed = table(&[
        (ok, &a80, "open"),
        (ok, &a90, "timeout"),
        (ok, &vip, "open"),
        (no, &a80, "timeout"),
        (no, &vip, "timeout"),
        (cb, &a80, "open"),
        (cb, &a90, "timeout"),
    ]);
    expect(
        k,
        "ingress allowed for the selected clients and port",
        &allowed,
    )
    .await;

    // Egress: role=client pods of np-a reach only np-b's server on `http`.
    k.ok_in(&["apply", "-f", "-"], ALLOW_EGRESS);
    let egress = table(&[
        (ok, &b80, "open"),
        (ok, &b90, "timeout"),
        (ok, &a80, "timeout"),
        (ok, &vip, "timeout"),
        (no, &b80, "open"),
        (no, &b90, "open"),
        (cb, &a80, "open"),
    ]);
    expect(k, "egress limited to np-b's server on http", &egress).await;

    // Deleting the policies restores every connection.
    k.ok(&[
        "delete",
        "-n",
        "np-a",
        "networkpolicy",
        "deny-in",
        "allow-in",
        "out-b",
    ]);
    expect(
        k,
        "every connection open after the policies are gone",
        &open_all,
    )
    .await;

    up.stop_gracefully().await;
}
