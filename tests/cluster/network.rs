//! Networking on `ferry up` (3 masters, 2 real nodes, root: pods in their own
//! network namespaces), driven by unmodified kubectl: every pod has its own
//! address; two replicas on one node both listen on 8080; a ClusterIP
//! Service reaches every replica from the host and from a pod on each node,
//! by address and by DNS name; NodePort on each node and the LoadBalancer
//! address answer; a hostPort answers on its node; UDP goes through;
//! headless and SRV records resolve; an unready replica and a deleted one
//! stop getting traffic without a failed request; Services without endpoints
//! refuse connections; unallocated cluster addresses are unreachable; a pod
//! reaches the API server through the `kubernetes` Service with its
//! service-account token; the API server proxies to pods and Services; and
//! stopping the cluster removes the nodes'
//! routes and namespaces.
//!
//! Without root (no namespaces), the test says so and checks nothing else.

use crate::harness::{poll, wait_until, LocalUp};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// An HTTP server answering its pod's name on 8080 (`/unready` turns its
/// readiness endpoint to 503), and a UDP echo on 9090 that prefixes it.
const SERVER: &str = r#"
import os, socket, threading, http.server
name = os.environ["POD_NAME"].encode()
ready = [True]
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 9090))
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(name + b":" + d, a)
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/unready":
            ready[0] = False
        code = 503 if self.path == "/ready" and not ready[0] else 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

fn manifests() -> String {
    let code: String = SERVER.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: echo-code}}
data:
  server.py: |
{code}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 5
      volumes: [{{name: code, configMap: {{name: echo-code}}}}]
      containers:
      - name: server
        image: python:3
        command: ["python3", "/code/server.py"]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        volumeMounts: [{{name: code, mountPath: /code}}]
        ports: [{{name: http, containerPort: 8080}}, {{name: echo, containerPort: 9090, protocol: UDP}}]
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 3}}
        lifecycle: {{preStop: {{exec: {{command: ["sleep", "2"]}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports:
  - {{name: web, port: 80, targetPort: http}}
  - {{name: udp, port: 9090, targetPort: echo, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo-np}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{name: web, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-lb}}
spec:
  type: LoadBalancer
  selector: {{app: echo}}
  ports: [{{name: web, port: 8081, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-h}}
spec:
  clusterIP: None
  selector: {{app: echo}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: hp}}
spec:
  nodeName: n2
  volumes: [{{name: code, configMap: {{name: echo-code}}}}]
  containers:
  - name: server
    image: python:3
    command: ["python3", "/code/server.py"]
    env: [{{name: POD_NAME, value: hp}}]
    volumeMounts: [{{name: code, mountPath: /code}}]
    ports: [{{containerPort: 8080, hostPort: 18080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client-n1}}
spec:
  nodeName: n1
  containers: [{{name: c, image: python:3, command: ["sleep", "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client-n2}}
spec:
  nodeName: n2
  containers: [{{name: c, image: python:3, command: ["sleep", "3600"]}}]
"#
    )
}

/// Python run inside a client pod: GETs `url` `n` times, prints the bodies.
fn fetch_script(url: &str, n: usize) -> String {
    format!(
        "import urllib.request\nfor _ in range({n}):\n    print(urllib.request.urlopen('{url}', timeout=3).read().decode())\n"
    )
}

/// Python that asks the pod's resolver's first nameserver for `name`'s
/// records of `qtype` (1 = A, 33 = SRV) over UDP and prints each answer's
/// type and data (A as an address, SRV as `port target`).
fn dns_script(name: &str, qtype: u16) -> String {
    format!(
        r#"
import socket, struct
ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]
q = struct.pack('>HHHHHH', 7, 0x100, 1, 0, 0, 0)
for part in '{name}'.split('.'):
    q += bytes([len(part)]) + part.encode()
q += b'\0' + struct.pack('>HH', {qtype}, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (ns, 53))
r = s.recv(4096)
an = struct.unpack('>H', r[6:8])[0]
def skip(i):
    while True:
        n = r[i]
        if n == 0: return i + 1
        if n >= 192: return i + 2
        i += n + 1
def name_at(i):
    out = []
    while True:
        n = r[i]
        if n == 0: return '.'.join(out)
        if n >= 192:
            i = struct.unpack('>H', r[i:i+2])[0] & 0x3fff
            continue
        out.append(r[i+1:i+1+n].decode()); i += n + 1
i = skip(12) + 4
print('rcode', r[3] & 15)
for _ in range(an):
    i = skip(i)
    t, _, _, l = struct.unpack('>HHIH', r[i:i+10]); i += 10
    if t == 1: print('A', socket.inet_ntoa(r[i:i+4]))
    if t == 33: print('SRV', struct.unpack('>H', r[i+4:i+6])[0], name_at(i+6))
    i += l
"#
    )
}

/// One HTTP GET over TCP to `addr` (the body, or the error).
fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.to_string())
}

fn names_via(addr: SocketAddr, n: usize) -> BTreeSet<String> {
    try_names_via(addr, n).unwrap_or_else(|e| panic!("{e}"))
}

/// The pod names `n` GETs of `addr` answered, or the first failure.
fn try_names_via(addr: SocketAddr, n: usize) -> Result<BTreeSet<String>, String> {
    (0..n)
        .map(|_| http_get(addr, "/").map_err(|e| format!("GET {addr}: {e}")))
        .collect()
}

/// Waits until GETs of `at` reach every one of `names` (a node's proxy may
/// not have synced yet); the names seen.
async fn every_replica_at(
    at: SocketAddr,
    names: &BTreeSet<String>,
    what: &str,
) -> BTreeSet<String> {
    wait_until(
        &format!("every replica behind {what}"),
        Duration::from_secs(10),
        || {
            let r = try_names_via(at, 30).and_then(|got| {
                (got == *names)
                    .then_some(got)
                    .ok_or_else(|| "not every replica yet".into())
            });
            async move { r }
        },
    )
    .await
}

fn ip_route_get(ip: &str) -> String {
    let out = Command::new("ip")
        .args(["route", "get", ip])
        .output()
        .expect("ip");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether this process's effective uid is 0 (nodes then give pods their own
/// network namespaces).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uid = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            Some(uid.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_dns_and_pod_addresses_on_two_nodes() {
    let Some(mut c) =
        LocalUp::start_as_root("pod network namespaces need root (nodes run in host mode)").await
    else {
        return;
    };
    // Each node got a pod range and runs its pods in namespaces.
    let nodes = c.pod_network().await;
    let (k, dir, up) = (&c.k, &c.dir, &mut c.up);
    let ranges: BTreeSet<_> = nodes
        .iter()
        .map(|n| n["spec"]["podCIDR"].to_string())
        .collect();
    assert_eq!(ranges.len(), 2, "each node its own range: {ranges:?}");

    k.ok_in(&["apply", "-f", "-"], &manifests());
    k.ok(&["rollout", "status", "deployment/echo", "--timeout=90s"]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client-n1",
        "pod/client-n2",
        "--timeout=60s",
    ]);

    // Own addresses, in the cluster range; two replicas share a node and port 8080.
    let pods = k.json(&["get", "pods", "-l", "app=echo"]);
    let pods = pods["items"].as_array().unwrap().clone();
    let cluster: ferry_api::network::Cidr = "10.42.0.0/16".parse().unwrap();
    let mut ips = BTreeSet::new();
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for p in &pods {
        let ip: std::net::IpAddr = p["status"]["podIP"]
            .as_str()
            .expect("podIP")
            .parse()
            .unwrap();
        assert!(cluster.contains(ip), "{ip}");
        assert!(ips.insert(ip), "{ip} twice");
        assert_eq!(p["status"]["podIPs"][0]["ip"], ip.to_string());
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap().into())
            .or_default() += 1;
        // Reachable from the host at its own address.
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(http_get(SocketAddr::new(ip, 8080), "/").unwrap(), name);
    }
    assert!(
        per_node.values().any(|n| *n >= 2),
        "two replicas on one node: {per_node:?}"
    );
    let names: BTreeSet<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    // The ClusterIP from the host reaches every replica.
    let svc = k.json(&["get", "svc", "echo"]);
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let vip: SocketAddr = format!("{cip}:80").parse().unwrap();
    let got = wait_until(
        "every replica behind the ClusterIP",
        Duration::from_secs(20),
        || async {
            // Until the proxies have synced: refused, or routed nowhere.
            let got = try_names_via(vip, 40)?;
            (got == names)
                .then_some(got)
                .ok_or_else(|| "not every replica yet".to_string())
        },
    )
    .await;
    assert_eq!(got, names);

    // From a pod on each node: by address and by DNS name.
    for client in ["client-n1", "client-n2"] {
        for url in [
            format!("http://{cip}/"),
            "http://echo/".to_string(),
            "http://echo.default.svc.cluster.local/".to_string(),
        ] {
            // Each node's proxy syncs on its own: the first tries may fail.
            let what = format!("every replica from {client} at {url}");
            wait_until(&what, Duration::from_secs(15), || {
                let out = k.run(
                    &[
                        "exec",
                        client,
                        "--",
                        "python3",
                        "-c",
                        &fetch_script(&url, 30),
                    ],
                    None,
                );
                let seen: BTreeSet<String> = out.stdout.lines().map(str::to_string).collect();
                let r = match (out.ok, seen == names) {
                    (true, true) => Ok(()),
                    (true, false) => Err(format!("saw {seen:?}")),
                    (false, _) => Err(out.stderr.lines().last().unwrap_or_default().to_string()),
                };
                async move { r }
            })
            .await;
        }
    }

    // NodePort on each node's address, and the LoadBalancer address.
    let np = k.json(&["get", "svc", "echo-np"])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap();
    for n in &nodes {
        let addr = n["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == "InternalIP")
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string();
        let at: SocketAddr = format!("{addr}:{np}").parse().unwrap();
        let got = every_replica_at(at, &names, "the NodePort").await;
        assert_eq!(got, names, "NodePort {addr}:{np}");
    }
    let lb = wait_until(
        "a LoadBalancer address",
        Duration::from_secs(20),
        || async {
            let s = k.json(&["get", "svc", "echo-lb"]);
            s["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "pending".to_string())
        },
    )
    .await;
    assert!(lb.starts_with("10.44.0."), "{lb}");
    let at: SocketAddr = format!("{lb}:8081").parse().unwrap();
    let got = every_replica_at(at, &names, "the LoadBalancer address").await;
    assert_eq!(got, names, "LoadBalancer {lb}");
    assert!(
        k.ok(&["get", "svc", "echo-lb"]).contains(&lb),
        "EXTERNAL-IP shown"
    );

    // A hostPort: the pod answers on its node's address.
    k.ok(&["wait", "--for=condition=Ready", "pod/hp", "--timeout=60s"]);
    let at: SocketAddr = "127.0.1.2:18080".parse().unwrap();
    let got = wait_until("the hostPort on n2", Duration::from_secs(10), || {
        let r = http_get(at, "/");
        async move { r }
    })
    .await;
    assert_eq!(got, "hp");

    // UDP through the Service.
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut udp_seen = BTreeSet::new();
    for i in 0..30 {
        // A new socket each time: conntrack keeps one flow on one endpoint.
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(format!("ping{i}").as_bytes(), format!("{cip}:9090"))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.recv(&mut buf).expect("UDP echo through the Service");
        let reply = String::from_utf8_lossy(&buf[..n]).to_string();
        let (name, msg) = reply.split_once(':').unwrap();
        assert_eq!(msg, format!("ping{i}"));
        udp_seen.insert(name.to_string());
    }
    drop(sock);
    assert!(
        udp_seen.len() >= 2,
        "UDP spread over replicas: {udp_seen:?}"
    );

    // DNS from a pod: the Service, the headless Service's pods, SRV.
    let want: BTreeSet<String> = ips.iter().map(|i| i.to_string()).collect();
    let mut tries = 0;
    let (headless, out) = wait_until(
        "the headless Service's pods in DNS",
        Duration::from_secs(10),
        || {
            tries += 1;
            let out = k.ok(&[
                "exec",
                "client-n1",
                "--",
                "python3",
                "-c",
                &dns_script("echo-h.default.svc.cluster.local", 1),
            ]);
            let headless: BTreeSet<String> = out
                .lines()
                .filter_map(|l| l.strip_prefix("A "))
                .map(str::to_string)
                .collect();
            let r = if headless == want {
                Ok((headless, out))
            } else {
                let echo = dns_script("echo.default.svc.cluster.local", 1);
                Err(format!(
                    "{out}\n{}\n{}",
                    k.ok(&["get", "svc,endpointslices", "-o", "wide"]),
                    k.ok(&["exec", "client-n1", "--", "python3", "-c", &echo])
                ))
            };
            async move { r }
        },
    )
    .await;
    if tries > 1 {
        eprintln!("headless DNS answered after {tries} tries");
    }
    assert_eq!(headless, want, "{out}");
    let out = k.ok(&[
        "exec",
        "client-n2",
        "--",
        "python3",
        "-c",
        &dns_script("_web._tcp.echo.default.svc.cluster.local", 33),
    ]);
    assert!(
        out.contains("SRV 80 echo.default.svc.cluster.local"),
        "{out}"
    );
    let out = k.ok(&[
        "exec",
        "client-n2",
        "--",
        "python3",
        "-c",
        &dns_script("nothing.default.svc.cluster.local", 1),
    ]);
    assert!(out.contains("rcode 3"), "NXDOMAIN: {out}");
    let resolv = k.ok(&["exec", "client-n1", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // The API server from a pod: the official Python client's in-cluster
    // config (KUBERNETES_SERVICE_HOST, the mounted service-account token and
    // CA) reaches a master through the `kubernetes` Service; RBAC answers
    // for the pod's service account; curl by the Service's DNS name checks
    // the masters' certificates name it.
    in_cluster_api(k).await;

    // The API server as a proxy (`kubectl get --raw`, `kubectl proxy`): to a
    // pod by port number and by name, to a Service's ready endpoint, and
    // an answer naming why for a Service without endpoints.
    let first = names.iter().next().unwrap();
    for port in ["8080", "http"] {
        let path = format!("/api/v1/namespaces/default/pods/{first}:{port}/proxy/");
        assert_eq!(&k.ok(&["get", "--raw", &path]), first, "{path}");
    }
    let via_svc = k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/echo:web/proxy/",
    ]);
    assert!(names.contains(&via_svc), "{via_svc}");
    let none = k.run(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/kube-system/services/kube-dns:dns-tcp/proxy/",
        ],
        None,
    );
    assert!(
        !none.ok
            && none
                .stderr
                .contains("no endpoints available for service \"kube-dns\""),
        "{}",
        none.stderr
    );

    // One replica turned unready stops getting traffic.
    let victim = &pods[0];
    let vname = victim["metadata"]["name"].as_str().unwrap().to_string();
    let vip_pod: SocketAddr = format!("{}:8080", victim["status"]["podIP"].as_str().unwrap())
        .parse()
        .unwrap();
    http_get(vip_pod, "/unready").unwrap();
    wait_until(
        "the unready replica out of the Service",
        Duration::from_secs(10),
        || async {
            // The others stay: every answer comes from them.
            let got = try_names_via(vip, 30)?;
            (!got.contains(&vname) && got.len() == 2)
                .then_some(())
                .ok_or_else(|| format!("served by {got:?}"))
        },
    )
    .await;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        assert!(
            !names_via(vip, 5).contains(&vname),
            "an unready replica got traffic"
        );
    }

    // Deleting a replica: no request fails while it goes and is replaced.
    let other = pods[1]["metadata"]["name"].as_str().unwrap().to_string();
    k.ok(&["delete", "pod", &other, "--wait=false"]);
    let t = Instant::now();
    let mut served = 0;
    while t.elapsed() < Duration::from_secs(8) {
        http_get(vip, "/").unwrap_or_else(|e| panic!("a request failed while {other} went: {e}"));
        served += 1;
    }
    assert!(served > 20, "{served}");

    // Addresses nobody holds stay on the machine: unreachable.
    for ip in ["10.42.250.77", "10.43.250.250", "10.44.0.250"] {
        let r = ip_route_get(ip);
        assert!(
            r.contains("unreachable") || r.contains("No route"),
            "{ip}: {r}"
        );
    }

    // A bad Service: a NodePort out of range, in Kubernetes' words.
    let bad = k.run(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}\n"),
    )
    .stderr;
    assert!(
        bad.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{bad}"
    );

    // A Service selecting nothing, and one whose targetPort names a port no
    // pod defines: no endpoints (`<none>`, as kubectl shows it), and a
    // connection to either is refused at once, as kube-proxy rejects it.
    k.ok_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: nobody}\nspec: {selector: {app: nobody}, ports: [{port: 80}]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: noport}\nspec: {selector: {app: echo}, ports: [{port: 80, targetPort: nope}]}\n",
    );
    for svc in ["nobody", "noport"] {
        let ip = k.json(&["get", "svc", svc])["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        let row = wait_until(
            &format!("{svc}'s Endpoints"),
            Duration::from_secs(10),
            || {
                let out = k.run(&["get", "endpoints", svc, "--no-headers"], None);
                let r = if out.ok {
                    Ok(out.stdout)
                } else {
                    Err(out.stderr)
                };
                async move { r }
            },
        )
        .await;
        assert!(row.contains("<none>"), "{svc}: {row}");
        let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
        let e = wait_until(&format!("{svc} refused"), Duration::from_secs(10), || {
            let r = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(e),
                other => Err(format!("{other:?}")),
            };
            async move { r }
        })
        .await;
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    // Stopping the cluster removes the nodes' routes, namespaces and tables.
    up.stop_gracefully().await;
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for ip in &ips {
        assert!(
            !ip_route_get(&ip.to_string()).contains(" dev fp"),
            "route to {ip} left"
        );
    }
    let pod_uids: Vec<String> = pods
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    for uid in &pod_uids {
        assert!(
            !netns.contains(uid.as_str()),
            "netns of {uid} left: {netns}"
        );
    }
    let tables = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    // Only this cluster's tables: another cluster on the machine (or one a
    // killed run left) has tables of its own.
    for n in ["n1", "n2"] {
        let table = ferry_node::net::nft_table(&ferry_node::net::host_key_in(&dir.join(n), n));
        assert!(
            !tables.contains(&format!("table ip {table}\n")),
            "{n}'s nft table {table} left: {tables}"
        );
    }
    let routes = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["route", "show", "table", "all"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        !routes.contains("10.42.0.0/16"),
        "unreachable routes left: {routes}"
    );
}

/// A node in host mode (pods share its network, as a node without root
/// runs them) has no nftables proxy: its NodePorts are served by a userspace
/// proxy on the node's address, TCP and UDP, passing over an endpoint that
/// refuses, and a NodePort closes with its Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_mode_node_serves_node_ports_through_its_userspace_proxy() {
    // No namespace-mode node: their nftables rules would answer every local
    // address's NodePorts, this one's too.
    let c = LocalUp::start_args(&["--nodes", "0"]).await;
    let k = &c.k;
    let _n1 = c.join_node("n1", "127.0.1.1", &[]);
    k.wait_json(
        "n1 Ready in host mode",
        Duration::from_secs(60),
        &["get", "node", "n1"],
        |n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready
                .then_some(())
                .ok_or_else(|| "not Ready yet".to_string())
        },
    )
    .await;
    // The server listens on the node's address at ports free on the machine.
    let tcp = crate::procs::free_tcp_ports(2);
    let udp = tcp + 1;
    let dead = crate::procs::free_tcp_ports(1);
    let m = manifests()
        .replace("replicas: 3", "replicas: 1")
        .replace(
            "{labels: {app: echo}}",
            "{labels: {app: echo, pool: manual}}",
        )
        .replace("8080", &tcp.to_string())
        .replace("9090", &udp.to_string());
    // Only the echo Deployment and its code (the client pods need namespaces).
    let m: Vec<&str> = m
        .split("\n---\n")
        .filter(|d| d.contains("kind: ConfigMap") || d.contains("kind: Deployment"))
        .collect();
    k.ok_in(&["apply", "-f", "-"], &m.join("\n---\n"));
    k.ok(&["rollout", "status", "deployment/echo", "--timeout=90s"]);
    let services = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: echo-np}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports:
  - {{name: http, port: 80, targetPort: {tcp}}}
  - {{name: udp, port: 90, targetPort: {udp}, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata: {{name: manual}}
spec:
  type: NodePort
  selector: {{pool: manual}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: refuses
  labels: {{pool: manual}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    ports: [{{name: http, containerPort: {dead}}}]
"#
    );
    // `manual` has two endpoints: the server, and a Ready pod whose port
    // nobody serves.
    k.ok_in(&["apply", "-f", "-"], &services);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/refuses",
        "--timeout=60s",
    ]);
    let node_port = |svc: &str, i: usize| -> u16 {
        let s = k.json(&["get", "service", svc]);
        s["spec"]["ports"][i]["nodePort"].as_u64().unwrap() as u16
    };
    let pod = k.json(&["get", "pods", "-l", "app=echo"]);
    let name = pod["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let http_at: SocketAddr = format!("127.0.1.1:{}", node_port("echo-np", 0))
        .parse()
        .unwrap();
    let names = every_replica_at(http_at, &BTreeSet::from([name.clone()]), "the NodePort").await;
    assert_eq!(names, BTreeSet::from([name.clone()]));

    // UDP through the NodePort: the answer comes back from the endpoint.
    let udp_at: SocketAddr = format!("127.0.1.1:{}", node_port("echo-np", 1))
        .parse()
        .unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let answer = wait_until(
        "a UDP answer through the NodePort",
        Duration::from_secs(10),
        || {
            let r = s
                .send_to(b"ping", udp_at)
                .and_then(|_| {
                    let mut b = [0u8; 256];
                    s.recv(&mut b)
                        .map(|n| String::from_utf8_lossy(&b[..n]).into_owned())
                })
                .map_err(|e| e.to_string());
            async move { r }
        },
    )
    .await;
    assert_eq!(answer, format!("{name}:ping"));

    // Two endpoints, one refusing: every request is answered.
    let manual_at: SocketAddr = format!("127.0.1.1:{}", node_port("manual", 0))
        .parse()
        .unwrap();
    every_replica_at(
        manual_at,
        &BTreeSet::from([name.clone()]),
        "the manual NodePort",
    )
    .await;
    let got = names_via(manual_at, 10);
    assert_eq!(got, BTreeSet::from([name]), "no request failed");

    // The Service goes: its NodePort stops accepting.
    k.ok(&["delete", "service", "echo-np"]);
    wait_until("the NodePort closed", Duration::from_secs(10), || {
        let r = match TcpStream::connect_timeout(&http_at, Duration::from_secs(1)) {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepting".to_string()),
        };
        async move { r }
    })
    .await;
}

/// A pod's own client of the API server: the Python client in the pod
/// `client-n1`, configured in-cluster, lists pods (403 until its service
/// account may), and curl reaches `/version` at `kubernetes.default.svc`.
async fn in_cluster_api(k: &crate::kubectl::Kubectl) {
    let slices = k.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=kubernetes",
    ]);
    let script = "from kubernetes import client, config\n\
        config.load_incluster_config()\n\
        try:\n    print('pods', ' '.join(sorted(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod('default').items)))\n\
        except client.ApiException as e:\n    print('status', e.status)\n";
    let py = crate::kubectl::python();
    let list = || k.run(&["exec", "client-n1", "--", &py, "-c", script], None);
    // The listing once its output holds `want`, else why not.
    let check = |want: &str| {
        let out = list();
        match out.ok && out.stdout.contains(want) {
            true => Ok(out.stdout),
            false => Err(format!("{} {} (slices: {slices})", out.stdout, out.stderr)),
        }
    };
    let what = "the API server from a pod (403 for its service account)";
    let out = poll(what, Duration::from_secs(30), || check("status 403")).await;
    assert!(out.contains("status 403"), "{out}");
    k.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let what = "the pod's service account allowed to list pods";
    let out = poll(what, Duration::from_secs(15), || check("pods ")).await;
    assert!(
        out.contains("client-n1") && out.contains("client-n2"),
        "{out}"
    );
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let curl = format!(
        "curl -sS --cacert {sa}/ca.crt -H \"Authorization: Bearer $(cat {sa}/token)\" https://kubernetes.default.svc/version"
    );
    let version = k.ok(&["exec", "client-n1", "--", "sh", "-c", &curl]);
    assert!(version.contains("\"gitVersion\""), "{version}");
}
