//! A write is retried on another master when its master goes silent, under the
//! same request id, and the answer is the write's one real outcome either way:
//! - the request was lost: the retry applies it and the client reports success;
//! - the answer was lost (the write applied): the retry finds the id remembered
//!   and answers the first outcome — no conflict, no AlreadyExists, no second apply.
//!
//! A UDP relay in front of the leader drops one direction of its traffic on
//! demand, so the test decides which half of the exchange is lost.

use crate::harness::{serial, Cluster};
use ferry_api::kv::Expect;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::proto::Consistency;
use ferry_api::Client;
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

/// A key as the cluster holds it (a linearizable read through `direct`).
async fn stored(direct: &Client, key: &str) -> ferry_api::kv::KeyValue {
    direct
        .get(key, Consistency::Linearizable)
        .await
        .expect("read")
        .expect("present")
}

/// [`relayed_client`] after it created `key` (`1`) through the relay; the
/// create's revision.
async fn relayed_create(c: &Cluster, leader: usize, key: &str) -> (Relay, Arc<Client>, u64) {
    let (relay, client) = relayed_client(c, leader).await;
    let rev = client
        .put(key, b"1".to_vec(), Expect::Absent)
        .await
        .expect("through the relay")
        .expect("created")
        .revision;
    (relay, client, rev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_retried_after_silence_applies_once_and_answers_its_outcome() {
    let _serial = serial().await;
    let c = Cluster::start(3).await;
    let leader = c.leader(&[]).await;
    let direct = c.client(Duration::from_secs(20));

    // The request is lost: the retry on another master applies it.
    let (relay, client, rev) = relayed_create(&c, leader, "retry/lost-request").await;
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
    let kv = stored(&direct, "retry/lost-request").await;
    assert_eq!((kv.value, kv.mod_revision), (b"2".to_vec(), out.revision));
    drop(relay);

    // The answer is lost: the write applied; the retry on another master carries
    // the same request id, so it answers the first outcome instead of a conflict.
    let (relay, client, rev) = relayed_create(&c, leader, "retry/lost-answer").await;
    relay.drop_replies.store(true, Ordering::Relaxed);
    let out = client
        .put("retry/lost-answer", b"2".to_vec(), Expect::ModRevision(rev))
        .await
        .expect("the retry reaches another master")
        .expect("the retry answers the first attempt's success");
    let kv = stored(&direct, "retry/lost-answer").await;
    assert_eq!(kv.value, b"2".to_vec(), "the write applied exactly once");
    assert_eq!(kv.version, 2, "created once, updated once");
    assert_eq!(
        kv.mod_revision, out.revision,
        "the first outcome's revision"
    );
    drop(relay);

    // The defect exactly-once writes fix: a create whose answer is lost is
    // retried and answers its own success, not AlreadyExists; an unconditional
    // put is not applied twice.
    let (relay, client) = relayed_client(&c, leader).await;
    client
        .put("retry/warm", b"1".to_vec(), Expect::Any)
        .await
        .expect("through the relay")
        .expect("applied");
    relay.drop_replies.store(true, Ordering::Relaxed);
    let created = client
        .put("retry/created", b"1".to_vec(), Expect::Absent)
        .await
        .expect("the retry reaches another master")
        .expect("a retried create answers its first outcome, not AlreadyExists");
    let put = client
        .put("retry/created", b"2".to_vec(), Expect::Any)
        .await
        .expect("rpc")
        .expect("applied");
    let kv = stored(&direct, "retry/created").await;
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (created.revision, put.revision, 2)
    );
}

/// An object request through `client`, answered with a 2xx code and a body.
async fn object_ok(client: &Client, req: ObjectRequest, what: &str) -> (u16, serde_json::Value) {
    let r = client
        .object(req)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let body = r.json().expect("JSON body");
    assert!((200..300).contains(&r.code), "{what}: {} {body}", r.code);
    (r.code, body)
}

/// The configmaps of namespace `once`, read linearizably.
async fn configmaps(direct: &Client) -> Vec<serde_json::Value> {
    let (_, list) = object_ok(
        direct,
        ObjectRequest::new(Verb::List, "configmaps", Some("once"), None),
        "list",
    )
    .await;
    list["items"].as_array().cloned().unwrap_or_default()
}

/// [`relayed_client`] with its relayed connection warmed by a read of the
/// configmaps of `once` (the one named `name`, else the list).
async fn relayed_object_client(
    c: &Cluster,
    leader: usize,
    name: Option<&str>,
) -> (Relay, Arc<Client>) {
    let (relay, client) = relayed_client(c, leader).await;
    let verb = if name.is_some() {
        Verb::Get
    } else {
        Verb::List
    };
    object_ok(
        &client,
        ObjectRequest::new(verb, "configmaps", Some("once"), name),
        "warm the relayed connection",
    )
    .await;
    (relay, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_writes_retried_after_their_master_died_apply_once() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let leader = c.leader(&[]).await;
    let direct = c.client(Duration::from_secs(30));
    let mut ns = ObjectRequest::new(Verb::Create, "namespaces", None, None);
    ns.body = br#"{"metadata":{"name":"once"}}"#.to_vec();
    object_ok(&direct, ns, "create the namespace").await;

    // A generateName create reaches the leader, applies, and its answer is lost;
    // then the leader is SIGKILLed. The client retries on another master.
    let (relay, client) = relayed_object_client(&c, leader, None).await;
    relay.drop_replies.store(true, Ordering::Relaxed);
    let mut create = ObjectRequest::new(Verb::Create, "configmaps", Some("once"), None);
    create.body = br#"{"metadata":{"generateName":"cm-"},"data":{"a":"1"}}"#.to_vec();
    let created = tokio::spawn({
        let client = client.clone();
        async move { client.object(create).await }
    });
    crate::harness::wait_until("the create applied", Duration::from_secs(20), || async {
        match configmaps(&direct).await.len() {
            1 => Ok(()),
            n => Err(format!("{n} configmaps")),
        }
    })
    .await;
    c.kill(leader);
    let r = created
        .await
        .expect("task")
        .expect("the create is retried on another master, not Indeterminate");
    let body = r.json().expect("JSON");
    assert_eq!(r.code, 201, "{body}");
    let stored = configmaps(&direct).await;
    assert_eq!(stored.len(), 1, "exactly one object: {stored:?}");
    let stored = &stored[0];
    assert_eq!(
        (
            &body["metadata"]["name"],
            &body["metadata"]["uid"],
            &body["metadata"]["resourceVersion"],
            &body["metadata"]["creationTimestamp"]
        ),
        (
            &stored["metadata"]["name"],
            &stored["metadata"]["uid"],
            &stored["metadata"]["resourceVersion"],
            &stored["metadata"]["creationTimestamp"]
        ),
        "the answer is the object as stored"
    );
    drop(relay);
    let name = stored["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();

    // An update whose answer is lost answers its own success, not 409.
    let leader = c.leader(&[leader]).await;
    let (relay, client) = relayed_object_client(&c, leader, Some(&name)).await;
    relay.drop_replies.store(true, Ordering::Relaxed);
    let mut update = ObjectRequest::new(Verb::Update, "configmaps", Some("once"), Some(&name));
    let mut new = stored.clone();
    new["data"]["a"] = serde_json::json!("2");
    update.body = serde_json::to_vec(&new).expect("encode");
    let (_, updated) = object_ok(&client, update, "a retried update").await;
    let stored = configmaps(&direct).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["data"]["a"], "2");
    assert_eq!(
        updated["metadata"]["resourceVersion"],
        stored[0]["metadata"]["resourceVersion"]
    );
    drop(relay);

    // A delete whose answer is lost answers its own success, not 404.
    let (relay, client) = relayed_object_client(&c, leader, Some(&name)).await;
    relay.drop_replies.store(true, Ordering::Relaxed);
    let (code, deleted) = object_ok(
        &client,
        ObjectRequest::new(Verb::Delete, "configmaps", Some("once"), Some(&name)),
        "a retried delete",
    )
    .await;
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(deleted["metadata"]["uid"], stored[0]["metadata"]["uid"]);
    assert!(configmaps(&direct).await.is_empty());
}
