//! A UDP fault proxy in front of one master's QUIC port, for network faults
//! without root. Each master advertises its proxy's address, so its peers and
//! the clients reach it only through the proxy; a master's own packets leave
//! from its real listen address, so the proxy knows which peer a flow is.
//!
//! Per source address the proxy keeps one upstream socket (a flow); packets
//! from the source go up through it, answers come back from the proxy's
//! address. [`Rules`] decide per packet: drop (partitions, both or one
//! direction; random loss), delay, duplicate.

use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// The faults a proxy applies now.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Sources whose packets toward the master are dropped.
    pub drop_from: HashSet<SocketAddr>,
    /// Sources to which the master's packets are dropped.
    pub drop_to: HashSet<SocketAddr>,
    /// Share of all packets dropped (0.0..1.0).
    pub loss: f64,
    /// Share of packets sent twice.
    pub duplicate: f64,
    /// Each packet is held up to this long (uniformly at random).
    pub max_delay: Duration,
}

impl Rules {
    /// Whether the proxy lets through a packet from `src` toward the master
    /// (`up`) or from the master to `src`, and with what delay and copies.
    fn verdict(&self, src: SocketAddr, up: bool, rng: &mut impl Rng) -> Option<(Duration, usize)> {
        let blocked = if up {
            self.drop_from.contains(&src)
        } else {
            self.drop_to.contains(&src)
        };
        if blocked || (self.loss > 0.0 && rng.gen_bool(self.loss.min(1.0))) {
            return None;
        }
        let copies = if self.duplicate > 0.0 && rng.gen_bool(self.duplicate.min(1.0)) {
            2
        } else {
            1
        };
        let delay = if self.max_delay.is_zero() {
            Duration::ZERO
        } else {
            self.max_delay.mul_f64(rng.gen_range(0.0..1.0))
        };
        Some((delay, copies))
    }
}

/// A running proxy: its rules can be changed at any time.
pub struct Proxy {
    pub addr: SocketAddr,
    pub rules: Arc<Mutex<Rules>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `buf` on `sock` (to `to`, or connected) `copies` times: at once, or
/// from a task after `delay`.
async fn deliver(
    sock: &Arc<UdpSocket>,
    to: Option<SocketAddr>,
    buf: &[u8],
    (delay, copies): (Duration, usize),
) {
    let send = |sock: Arc<UdpSocket>, buf: Vec<u8>| async move {
        for _ in 0..copies {
            let _ = match to {
                Some(to) => sock.send_to(&buf, to).await,
                None => sock.send(&buf).await,
            };
        }
    };
    if delay.is_zero() {
        send(sock.clone(), buf.to_vec()).await;
    } else {
        let later = send(sock.clone(), buf.to_vec());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            later.await
        });
    }
}

/// One source's upstream socket and the task carrying its answers back
/// (stopped with the proxy).
struct Flow(Arc<UdpSocket>, tokio::task::JoinHandle<()>);

impl Drop for Flow {
    fn drop(&mut self) {
        self.1.abort();
    }
}

/// Starts a proxy on `listen` forwarding to `upstream`.
pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Proxy> {
    let front = Arc::new(UdpSocket::bind(listen).await?);
    let addr = front.local_addr()?;
    let rules: Arc<Mutex<Rules>> = Arc::default();
    let r = rules.clone();
    let task = tokio::spawn(async move {
        let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, src)) = front.recv_from(&mut buf).await else {
                continue;
            };
            let flow = match flows.get(&src) {
                Some(f) => f.0.clone(),
                None => {
                    let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else {
                        continue;
                    };
                    if s.connect(upstream).await.is_err() {
                        continue;
                    }
                    let s = Arc::new(s);
                    // Answers from the master, back to `src` from the front address.
                    let (back, front, r) = (s.clone(), front.clone(), r.clone());
                    // A master killed and restarted: while it is down, this
                    // connected socket reports the ICMP port-unreachable of a
                    // packet sent up as an error of its next `recv`. The flow
                    // outlives it (it used to end here, and the restarted
                    // master stayed unreachable through its proxy).
                    let h = tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let n = match back.recv(&mut buf).await {
                                Ok(n) => n,
                                Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                    continue;
                                }
                            };
                            let v = r.lock().expect("rules").verdict(
                                src,
                                false,
                                &mut rand::thread_rng(),
                            );
                            if let Some(v) = v {
                                deliver(&front, Some(src), &buf[..n], v).await;
                            }
                        }
                    });
                    flows.insert(src, Flow(s.clone(), h));
                    s
                }
            };
            let v = r
                .lock()
                .expect("rules")
                .verdict(src, true, &mut rand::thread_rng());
            if let Some(v) = v {
                deliver(&flow, None, &buf[..n], v).await;
            }
        }
    });
    Ok(Proxy { addr, rules, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on `echo`.
    fn serve(echo: UdpSocket) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        })
    }

    /// An echo server, a proxy before it, and a client socket.
    async fn setup() -> (Proxy, UdpSocket, tokio::task::JoinHandle<()>) {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        let server = serve(echo);
        let proxy = start("127.0.0.1:0".parse().unwrap(), upstream)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.addr).await.unwrap();
        (proxy, client, server)
    }

    async fn echoes(client: &UdpSocket, msg: &[u8]) -> usize {
        client.send(msg).await.unwrap();
        let mut got = 0;
        let mut buf = [0u8; 1500];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(150), client.recv(&mut buf)).await
        {
            assert_eq!(&buf[..n], msg);
            got += 1;
        }
        got
    }

    #[tokio::test]
    async fn forwards_drops_and_duplicates() {
        let (proxy, client, server) = setup().await;
        let me = client.local_addr().unwrap();
        assert_eq!(echoes(&client, b"hello").await, 1, "plain forwarding");

        proxy.rules.lock().unwrap().drop_from.insert(me);
        assert_eq!(echoes(&client, b"in").await, 0, "dropped toward the master");
        *proxy.rules.lock().unwrap() = Rules::default();
        proxy.rules.lock().unwrap().drop_to.insert(me);
        assert_eq!(echoes(&client, b"out").await, 0, "dropped from the master");
        *proxy.rules.lock().unwrap() = Rules::default();
        assert_eq!(echoes(&client, b"healed").await, 1, "healed");

        proxy.rules.lock().unwrap().loss = 1.0;
        assert_eq!(echoes(&client, b"lost").await, 0, "total loss");
        *proxy.rules.lock().unwrap() = Rules {
            duplicate: 1.0,
            ..Rules::default()
        };
        // Duplicated on the way up and on the way back.
        assert_eq!(echoes(&client, b"twice").await, 4, "duplication");
        *proxy.rules.lock().unwrap() = Rules {
            max_delay: Duration::from_millis(50),
            ..Rules::default()
        };
        assert_eq!(echoes(&client, b"late").await, 1, "delay");
        server.abort();
    }

    /// The master behind the proxy killed (its port closed, so the proxy's
    /// upstream socket gets ICMP port-unreachable) and started again on the
    /// same port: the same client is answered again.
    #[tokio::test]
    async fn a_restarted_master_is_reachable_again() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        let server = serve(echo);
        let proxy = start("127.0.0.1:0".parse().unwrap(), upstream)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.addr).await.unwrap();
        assert_eq!(echoes(&client, b"before").await, 1);
        server.abort();
        let _ = server.await;
        // Sent while the master is down: refused.
        assert_eq!(echoes(&client, b"down").await, 0);
        assert_eq!(echoes(&client, b"down again").await, 0);
        let server = serve(UdpSocket::bind(upstream).await.unwrap());
        assert_eq!(
            echoes(&client, b"after").await,
            1,
            "unreachable after a restart"
        );
        server.abort();
    }
}
