//! The Service proxy of a node in host mode (pods share the node's network:
//! a node that may not make network namespaces or nftables rules, such as a
//! rootless one): a userspace TCP and UDP proxy, as kube-proxy's old
//! userspace mode, listening on the node's address at each NodePort of a
//! `NodePort` or `LoadBalancer` Service and passing traffic to the Service's
//! usable endpoints. ClusterIPs need the namespace mode's nftables proxy: a
//! node without privileges cannot hold or capture them.
//!
//! - [`plan`] (pure, table-tested): the listeners and their endpoints, the
//!   choice kube-proxy makes (ready endpoints, else serving terminating ones;
//!   this node's only under `externalTrafficPolicy: Local`).
//! - [`run`]: keeps one listener per planned port. Endpoints are taken round
//!   robin; a TCP connection whose endpoint refuses or does not answer
//!   within [`CONNECT_TIMEOUT`] tries the next one. Each connection holds its
//!   own sockets, so a change of endpoints — or the Service's removal —
//!   never cuts an established connection; a removed port stops accepting.
//!   UDP keeps one upstream socket per client address, closed after
//!   [`UDP_IDLE`] without an answer.

use super::proxy::{endpoints, usable, Known, Proto};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a TCP connect to one endpoint may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a UDP client's upstream socket lives without traffic.
pub const UDP_IDLE: Duration = Duration::from_secs(30);

/// A listener: protocol and NodePort.
pub type Port = (Proto, u16);

/// What each NodePort of the node's Services reaches (an empty list: the
/// Service has no usable endpoint; connections are refused).
pub fn plan(
    node: &str,
    services: &[Service],
    slices: &[EndpointSlice],
) -> BTreeMap<Port, Vec<SocketAddr>> {
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind != "NodePort" && kind != "LoadBalancer" {
            continue;
        }
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let local = (spec.external_traffic_policy.as_deref() == Some("Local")).then_some(node);
        for p in spec.ports.iter().flatten() {
            let (Some(proto), Some(node_port)) = (
                Proto::parse(p.protocol.as_deref()),
                p.node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0),
            ) else {
                continue;
            };
            let to = usable(&endpoints(ns, name, p, slices), local)
                .into_iter()
                .map(|(ip, port)| SocketAddr::new(IpAddr::V4(ip), port))
                .collect();
            // The first Service to claim a NodePort keeps it.
            out.entry((proto, node_port)).or_insert(to);
        }
    }
    out
}

/// One listener's endpoints, swapped in place by each sync.
#[derive(Default)]
struct Backends {
    to: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    /// The endpoints in the order this connection tries them: round robin.
    fn order(&self) -> Vec<SocketAddr> {
        let to = self.to.read().expect("not poisoned").clone();
        if to.is_empty() {
            return to;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % to.len();
        to[start..].iter().chain(&to[..start]).copied().collect()
    }
}

struct Listener {
    backends: Arc<Backends>,
    task: tokio::task::JoinHandle<()>,
}

/// Keeps a listener on `address` for each NodePort [`plan`] gives, until
/// `stop`.
pub async fn run(
    address: IpAddr,
    node: String,
    mut known: tokio::sync::watch::Receiver<Known>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut live: HashMap<Port, Listener> = HashMap::new();
    // Ports that failed to bind, tried again at each sync and every 5 s.
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    tracing::info!(%address, "service proxy: userspace, NodePorts on the node's address (host mode)");
    loop {
        tokio::select! {
            r = known.changed() => if r.is_err() { break },
            _ = retry.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let want = {
            let k = known.borrow_and_update();
            if !k.synced() {
                continue;
            }
            let services: Vec<Service> = k.services.values().cloned().collect();
            let slices: Vec<EndpointSlice> = k.slices.values().cloned().collect();
            plan(&node, &services, &slices)
        };
        live.retain(|port, l| {
            let keep = want.contains_key(port);
            if !keep {
                tracing::info!(proto = ?port.0, port = port.1, "service proxy: NodePort closed");
                l.task.abort();
            }
            keep
        });
        for (port, to) in want {
            if let Some(l) = live.get(&port) {
                *l.backends.to.write().expect("not poisoned") = to;
                continue;
            }
            let backends = Arc::new(Backends {
                to: RwLock::new(to),
                next: AtomicUsize::new(0),
            });
            let at = SocketAddr::new(address, port.1);
            let task = match port.0 {
                Proto::Tcp => tokio::net::TcpListener::bind(at)
                    .await
                    .map(|l| tokio::spawn(serve_tcp(l, backends.clone()))),
                Proto::Udp => tokio::net::UdpSocket::bind(at)
                    .await
                    .map(|s| tokio::spawn(serve_udp(Arc::new(s), backends.clone()))),
            };
            match task {
                Ok(task) => {
                    tracing::info!(proto = ?port.0, %at, "service proxy: NodePort open");
                    live.insert(port, Listener { backends, task });
                }
                Err(e) => {
                    tracing::warn!(proto = ?port.0, %at, error = %e, "service proxy: cannot listen on a NodePort")
                }
            }
        }
    }
    for l in live.into_values() {
        l.task.abort();
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, backends: Arc<Backends>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let order = backends.order();
        tokio::spawn(async move {
            let Some(mut upstream) = connect_any(&order).await else {
                return; // dropped: the client sees the connection closed
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

/// The first of `order` that accepts a connection.
async fn connect_any(order: &[SocketAddr]) -> Option<tokio::net::TcpStream> {
    for to in order {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(to)).await {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => {
                tracing::debug!(%to, error = %e, "service proxy: endpoint refused; trying the next")
            }
            Err(_) => {
                tracing::debug!(%to, "service proxy: endpoint did not answer; trying the next")
            }
        }
    }
    None
}

/// A UDP client's socket towards its endpoint, and that endpoint.
type Upstream = Arc<(tokio::net::UdpSocket, SocketAddr)>;
/// The UDP clients' upstream sockets, by client address.
type Sessions = Arc<tokio::sync::Mutex<HashMap<SocketAddr, Upstream>>>;

async fn serve_udp(socket: Arc<tokio::net::UdpSocket>, backends: Arc<Backends>) {
    let sessions: Sessions = Default::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let existing = sessions.lock().await.get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let Some(to) = backends.order().first().copied() else {
                    continue;
                };
                let local: SocketAddr = match to {
                    SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("an address"),
                    SocketAddr::V6(_) => "[::]:0".parse().expect("an address"),
                };
                // Not connected: an endpoint listening on a wildcard address
                // may answer from another of the machine's addresses.
                let Ok(u) = tokio::net::UdpSocket::bind(local).await else {
                    continue;
                };
                let u = Arc::new((u, to));
                sessions.lock().await.insert(client, u.clone());
                tokio::spawn(udp_replies(
                    u.clone(),
                    socket.clone(),
                    client,
                    sessions.clone(),
                ));
                u
            }
        };
        let _ = upstream.0.send_to(&buf[..n], upstream.1).await;
    }
}

/// Sends what an endpoint answers back to its client, until the session
/// idles out.
async fn udp_replies(
    upstream: Upstream,
    socket: Arc<tokio::net::UdpSocket>,
    client: SocketAddr,
    sessions: Sessions,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(UDP_IDLE, upstream.0.recv_from(&mut buf)).await {
            // From the endpoint's port (its address may differ, see above).
            Ok(Ok((n, from))) if from.port() == upstream.1.port() => {
                let _ = socket.send_to(&buf[..n], client).await;
            }
            Ok(Ok(_)) => {}
            // A refused endpoint (ICMP) keeps the session until it idles.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    sessions.lock().await.remove(&client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(svc: &str, eps: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-x"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": eps,
        }))
        .unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn node_ports_reach_usable_endpoints_and_cluster_ips_get_no_listener() {
        let services = vec![
            svc(json!({"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "ports": [
                           {"name": "http", "port": 80, "nodePort": 30080},
                           {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}})),
            svc(
                json!({"metadata": {"name": "inner", "namespace": "default"},
                       "spec": {"clusterIP": "10.43.0.11", "ports": [
                           {"name": "http", "port": 80, "nodePort": 30081}]}}),
            ),
            svc(
                json!({"metadata": {"name": "local", "namespace": "default"},
                       "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                                "clusterIP": "10.43.0.12", "ports": [
                           {"name": "http", "port": 80, "nodePort": 30082}]}}),
            ),
        ];
        let eps = json!([
            {"addresses": ["127.0.1.1"], "nodeName": "n1", "conditions": {"ready": true}},
            {"addresses": ["127.0.1.2"], "nodeName": "n2", "conditions": {"ready": true}},
            {"addresses": ["127.0.1.3"], "nodeName": "n3", "conditions": {"ready": false}},
        ]);
        let slices = vec![
            slice("web", eps.clone()),
            slice("inner", eps.clone()),
            slice("local", eps),
        ];
        let p = plan("n2", &services, &slices);
        assert_eq!(
            p.get(&(Proto::Tcp, 30080)),
            Some(&vec![addr("127.0.1.1:8080"), addr("127.0.1.2:8080")]),
            "ready endpoints only"
        );
        assert_eq!(
            p.get(&(Proto::Udp, 30053)),
            Some(&vec![addr("127.0.1.1:5353"), addr("127.0.1.2:5353")])
        );
        assert!(
            !p.contains_key(&(Proto::Tcp, 30081)),
            "a ClusterIP Service opens no NodePort"
        );
        assert_eq!(
            p.get(&(Proto::Tcp, 30082)),
            Some(&vec![addr("127.0.1.2:8080")]),
            "Local: this node's endpoints"
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_service_without_endpoints_keeps_its_port_with_none() {
        let services = vec![svc(
            json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}),
        )];
        let p = plan("n1", &services, &[]);
        assert_eq!(p.get(&(Proto::Tcp, 30080)), Some(&vec![]));
    }

    #[test]
    fn connections_take_endpoints_round_robin() {
        let b = Backends::default();
        *b.to.write().unwrap() = vec![
            addr("127.0.0.1:1"),
            addr("127.0.0.1:2"),
            addr("127.0.0.1:3"),
        ];
        let firsts: Vec<u16> = (0..4).map(|_| b.order()[0].port()).collect();
        assert_eq!(firsts, vec![1, 2, 3, 1]);
        assert_eq!(b.order().len(), 3, "each connection may try them all");
    }

    #[tokio::test]
    async fn a_refused_endpoint_is_passed_over_and_an_open_connection_outlives_a_change() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // An endpoint nobody listens on (bound, then closed) and a live echo.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let backends = Arc::new(Backends::default());
        *backends.to.write().unwrap() = vec![dead, live];
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = front.local_addr().unwrap();
        tokio::spawn(serve_tcp(front, backends.clone()));
        let mut held = tokio::net::TcpStream::connect(at).await.unwrap();
        for i in 0..4u8 {
            let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
            c.write_all(&[i]).await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], i, "connection {i} reached the live endpoint");
        }
        // The endpoints change: the held connection goes on.
        *backends.to.write().unwrap() = vec![];
        held.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        held.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"x");
        // With no endpoint, a new connection is closed at once.
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("closed, not held")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn udp_datagrams_reach_an_endpoint_and_its_answers_come_back() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            while let Ok((n, from)) = server.recv_from(&mut b).await {
                let mut answer = b"re:".to_vec();
                answer.extend_from_slice(&b[..n]);
                let _ = server.send_to(&answer, from).await;
            }
        });
        let backends = Arc::new(Backends::default());
        *backends.to.write().unwrap() = vec![to];
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let at = front.local_addr().unwrap();
        tokio::spawn(serve_udp(front, backends));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(at).await.unwrap();
        for msg in [&b"one"[..], b"two"] {
            client.send(msg).await.unwrap();
            let mut b = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut b))
                .await
                .expect("an answer")
                .unwrap();
            assert_eq!(&b[..n], [&b"re:"[..], msg].concat().as_slice());
        }
    }
}
