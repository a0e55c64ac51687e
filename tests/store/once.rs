//! Exactly-once writes: a write sent again with its request id applies once,
//! and every attempt answers the first outcome.

use crate::harness::{delete, local_value, put, TestCluster};
use ferry_api::kv::{Expect, RequestId, Write, WriteOp, WriteOutcome};
use ferry_api::proto::Consistency;
use ferry_config::MasterConfig;

fn create(key: &str, value: &str) -> Write {
    Write::Op(WriteOp::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        expect: Expect::Absent,
    })
}

/// The defect: a create whose first attempt applied but went unanswered is
/// sent again; the retry must answer the first outcome, not AlreadyExists.
/// (Before exactly-once writes the concurrent retry answered AlreadyExists.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_answers_its_first_outcome() {
    let c = TestCluster::new(1).await;
    let store = &c.master(0).store;
    let (id, w) = (RequestId::random(), create("/once/a", "1"));
    // Sent twice at once: the second is in flight before the first applied
    // (same entry or the next one).
    let (first, retry) = tokio::join!(
        store.write_once(id, w.clone()),
        store.write_once(id, w.clone())
    );
    let first = first.expect("first attempt").expect("create applies");
    assert_eq!(retry.expect("retry"), Ok(first.clone()));
    let later = store.write_once(id, w.clone()).await.expect("later retry");
    assert_eq!(later, Ok(first.clone()), "a later retry too");
    // Through the client as well, and a different id is a different write.
    let again = c.client.write_once(id, w.clone()).await.expect("rpc");
    assert_eq!(again, Ok(first));
    let other = c.client.write(w).await.expect("rpc");
    assert!(other.is_err(), "a new create of the key exists: {other:?}");
}

/// A create, a delete by someone else, then the create sent again: the retry
/// answers the first outcome and the key stays deleted. Ids outlive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_delete_does_not_resurrect_and_ids_survive_a_restart() {
    let mut c = TestCluster::new(3).await;
    let f = c.follower().await;
    let (id, w) = (RequestId::random(), create("/once/b", "1"));
    // Through a follower: the leader gets it forwarded with its id.
    let first = c
        .master(f)
        .store
        .write_once(id, w.clone())
        .await
        .expect("first")
        .expect("created");
    delete(&c.client, "/once/b").await;
    let retry = c.master(f).store.write_once(id, w.clone()).await;
    assert_eq!(retry.expect("retry"), Ok(first.clone()));
    let kv = c.client.get("/once/b", Consistency::Linearizable).await;
    assert_eq!(kv.expect("get"), None, "the retry resurrected the key");

    // Every master restarts; the ids are in each state machine.
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    let l = c.leader().await;
    let retry = c.master(l).store.write_once(id, w).await;
    assert_eq!(retry.expect("retry after restart"), Ok(first));
    let kv = c.client.get("/once/b", Consistency::Linearizable).await;
    assert_eq!(kv.expect("get"), None, "the retry resurrected the key");
}

const EVERY: u64 = 40;

fn small_snapshots(cfg: &mut MasterConfig) {
    cfg.raft.snapshot_every = EVERY;
    cfg.raft.keep_behind_snapshot = 4;
}

/// A member that catches up from a snapshot remembers the ids in it: applying a
/// retry, it answers the first outcome as the leader does and does not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_ids_travel_in_snapshots() {
    let mut c = TestCluster::with(3, small_snapshots).await;
    let (id, w) = (RequestId::random(), create("/once/c", "1"));
    let first: WriteOutcome = c
        .client
        .write_once(id, w.clone())
        .await
        .expect("rpc")
        .expect("created");
    delete(&c.client, "/once/c").await;
    let f = c.follower().await;
    let behind = c.master(f).store.raft().metrics().borrow().last_log_index;
    c.stop(f).await;
    let l = c.leader().await;
    let mut last = 0;
    for n in 0.. {
        let purged = c.master(l).store.raft().metrics().borrow().purged;
        if purged.is_some_and(|p| Some(p.index) > behind) {
            break;
        }
        assert!(
            n < 30 * EVERY,
            "the leader never purged its log past {behind:?}"
        );
        last = put(&c.client, &format!("/once/n/{}", n % 7), "x")
            .await
            .revision;
    }
    c.restart(f).await;
    c.wait_applied(f, last).await;
    assert!(
        c.master(f)
            .store
            .raft()
            .metrics()
            .borrow()
            .snapshot
            .map(|s| s.index)
            > behind,
        "the restarted member must have installed a snapshot"
    );
    let retry = c.client.write_once(id, w).await.expect("rpc");
    assert_eq!(retry, Ok(first));
    let after = put(&c.client, "/once/after", "1").await.revision;
    c.wait_applied(f, after).await;
    assert_eq!(
        local_value(c.local(f), "/once/c").await,
        None,
        "the member that installed the snapshot applied the retry again"
    );
}

/// A follower's write and linearizable read, forwarded to a leader just cut
/// off from every other master, are answered by the next leader: the
/// follower waits for the election and sends them there, rather than
/// answering the client "unreachable" (which sent clients to another master,
/// perhaps the cut-off one, where they waited for the partition to heal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sends_a_write_for_a_cut_off_leader_to_the_next_one() {
    let c = TestCluster::with(3, |_| {}).await;
    put(&c.client, "/cut/before", "1").await;
    let l = c.leader().await;
    let (_cuts, others) = c.cut_off(l);
    let follower = &c.master(others[0]).store;
    let (id, w) = (RequestId::random(), create("/cut/after", "2"));
    let (written, read) = tokio::join!(follower.write_once(id, w.clone()), follower.read_index());
    let written = written
        .expect("the write is answered by the next leader")
        .expect("the create applies");
    let read = read.expect("the read index comes from the next leader");
    assert!(read >= 2, "a read index after the first write: {read}");
    // Applied once: the value is there at the revision answered, and the same
    // id sent again answers that outcome.
    let again = follower.write_once(id, w).await.expect("repeat");
    assert_eq!(again, Ok(written.clone()));
    let (got, _) = follower
        .get("/cut/after", Consistency::Linearizable)
        .await
        .expect("linearizable get on the follower");
    assert_eq!(got.map(|kv| kv.value), Some(b"2".to_vec()));
}

/// A client of a leader just cut off from every other master (the client
/// still reaches it) gets its write and its linearizable read answered by the
/// others' new leader: unanswered after a while, the request goes to the next
/// master too, and the first answer counts. The write applies once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_cut_off_leader_is_answered_by_the_next_one() {
    let c = TestCluster::with(3, |_| {}).await;
    put(&c.client, "/hedge/before", "1").await;
    let l = c.leader().await;
    // The leader first: the client starts there.
    let masters: Vec<String> = std::iter::once(l)
        .chain(c.running().filter(|i| *i != l))
        .map(|i| c.addr(i))
        .collect();
    let mut cfg = c.admin(&masters);
    cfg.timeout_ms = 8000;
    let client = ferry_api::client::Client::new(&cfg).expect("client");
    put(&client, "/hedge/warm", "1").await;
    let _cuts = c.cut_off(l);
    let (id, w) = (RequestId::random(), create("/hedge/after", "2"));
    let (written, read) = tokio::join!(
        client.write_once(id, w.clone()),
        client.get("/hedge/before", Consistency::Linearizable)
    );
    let written = written
        .expect("the write is answered while the cut lasts")
        .expect("the create applies");
    let read = read.expect("the read is answered while the cut lasts");
    assert_eq!(read.map(|kv| kv.value), Some(b"1".to_vec()));
    // Once: the same id again answers the same outcome.
    let again = client.write_once(id, w).await.expect("repeat");
    assert_eq!(again, Ok(written));
}
