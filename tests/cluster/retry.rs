//! A write pinned to an exact `mod_revision` is retried on another master when
//! its master goes silent, and the answer the client gives is honest either way:
//! - the request was lost: the retry applies it and the client reports success;
//! - the answer was lost (the write applied): the retry fails its precondition,
//!   which the first attempt's success explains, so the client reports the
//!   outcome as unknown instead of a conflict.
//!
//! A UDP relay in front of the leader drops one direction of its traffic on
//! demand, so the test decides which half of the exchange is lost.

use crate::harness::{serial, Cluster};
use ferry_api::kv::Expect;
use ferry_api::proto::Consistency;
use ferry_api::{Client, Error};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Relays one client's datagrams to `target` and back, dropping either
/// direction when told to.
struct Relay {
    addr: SocketAddr,
    drop_requests: Arc<AtomicBool>,
    drop_replies: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        back.connect(target).await.expect("relay target");
        let addr = front.local_addr().expect("relay address");
        let drop_requests = Arc::new(AtomicBool::new(false));
        let drop_replies = Arc::new(AtomicBool::new(false));
        let (dq, dr) = (drop_requests.clone(), drop_replies.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { return };
                        client = Some(from);
                        if !dq.load(Ordering::Relaxed) {
                            let _ = back.send(&up[..n]).await;
                        }
                    }
                    r = back.recv(&mut down) => {
                        let Ok(n) = r else { return };
                        if let (Some(to), false) = (client, dr.load(Ordering::Relaxed)) {
                            let _ = front.send_to(&down[..n], to).await;
                        }
                    }
                }
            }
        });
        Relay {
            addr,
            drop_requests,
            drop_replies,
            task,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client whose first master is reached through a relay to `leader`; the
/// others are direct.
async fn relayed_client(c: &Cluster, leader: usize) -> (Relay, Arc<Client>) {
    let relay = Relay::start(c.masters[leader].addr.parse().expect("address")).await;
    let mut masters = vec![relay.addr.to_string()];
    masters.extend(
        (0..c.masters.len())
            .filter(|i| *i != leader)
            .map(|i| c.masters[i].addr.clone()),
    );
    let client = Client::new(&c.client_config(&masters, Duration::from_secs(30))).expect("client");
    (relay, Arc::new(client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_write_retried_after_silence_applies_once_and_reports_honestly() {
    let _serial = serial().await;
    let c = Cluster::start(3).await;
    let leader = c.leader(&[]).await;
    let direct = c.client(Duration::from_secs(20));

    // The request is lost: the retry on another master applies it.
    let (relay, client) = relayed_client(&c, leader).await;
    let rev = client
        .put("retry/lost-request", b"1".to_vec(), Expect::Absent)
        .await
        .expect("through the relay")
        .expect("created")
        .revision;
    relay.drop_requests.store(true, Ordering::Relaxed);
    let out = client
        .put(
            "retry/lost-request",
            b"2".to_vec(),
            Expect::ModRevision(rev),
        )
        .await
        .expect("the retry reaches another master")
        .expect("the retry applies the write");
    assert!(out.revision > rev);
    let kv = direct
        .get("retry/lost-request", Consistency::Linearizable)
        .await
        .expect("read")
        .expect("present");
    assert_eq!((kv.value, kv.mod_revision), (b"2".to_vec(), out.revision));
    drop(relay);

    // The answer is lost: the write applied, the retry conflicts, and the client
    // says the outcome is unknown rather than that the write was refused.
    let (relay, client) = relayed_client(&c, leader).await;
    let rev = client
        .put("retry/lost-answer", b"1".to_vec(), Expect::Absent)
        .await
        .expect("through the relay")
        .expect("created")
        .revision;
    relay.drop_replies.store(true, Ordering::Relaxed);
    let err = match client
        .put("retry/lost-answer", b"2".to_vec(), Expect::ModRevision(rev))
        .await
    {
        Err(e @ Error::Indeterminate { .. }) => e.to_string(),
        other => panic!("a write whose answer was lost must be reported unknown, got {other:?}"),
    };
    assert!(
        err.contains("outcome is unknown") && err.contains("conflict"),
        "the message says why: {err}"
    );
    let kv = direct
        .get("retry/lost-answer", Consistency::Linearizable)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(kv.value, b"2".to_vec(), "the write applied exactly once");
    assert_eq!(kv.version, 2, "created once, updated once");
}
