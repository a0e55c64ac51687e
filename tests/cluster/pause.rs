//! A paused (SIGSTOP) leader: the others elect a new one; once resumed, the old
//! leader steps down, serves no stale linearizable read, and forwards writes.

use crate::harness::{serial, wait_until, Cluster};
use ferry_api::kv::Expect;
use ferry_api::proto::Consistency;
use ferry_api::Client;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstopped_leader_is_replaced_and_serves_no_stale_read() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let old = c.leader(&[]).await;
    c.put("/t3/k", b"v1").await;
    // Connected before the pause, so a read can be on the wire when it resumes.
    let to_old = c.client_for(old, Duration::from_secs(20));
    to_old
        .prefer(&c.masters[old].addr)
        .await
        .expect("connect to the leader");

    c.stop(old);
    let new = c.leader(&[old]).await;
    assert_ne!(new, old);
    let others: Vec<String> = (0..3)
        .filter(|&i| i != old)
        .map(|i| c.masters[i].addr.clone())
        .collect();
    let without_old =
        Client::new(&c.client_config(&others, Duration::from_secs(20))).expect("client");
    let v2 = without_old
        .put("/t3/k", b"v2".to_vec(), Expect::Any)
        .await
        .expect("put v2 while the old leader is paused")
        .expect("put v2");

    // Sent before SIGCONT, so the old leader may still believe it leads when it
    // sees the read.
    let read = tokio::spawn({
        let to_old = to_old.clone();
        async move { to_old.get("/t3/k", Consistency::Linearizable).await }
    });
    c.cont(old);
    let kv = read
        .await
        .expect("read task")
        .expect("linearizable read on the resumed old leader")
        .expect("key present");
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"v2"[..], v2.revision),
        "stale read from the resumed old leader"
    );

    let name = c.masters[old].name.clone();
    let old_id = c.masters[old].id;
    wait_until(
        &format!("{name} to step down"),
        Duration::from_secs(30),
        || async {
            let s = c.status_of(old).await?;
            match s.leader {
                Some(l) if l != old_id => Ok(()),
                other => Err(format!("{name} sees leader {other:?} at term {}", s.term)),
            }
        },
    )
    .await;

    // A write sent to the old leader is forwarded to the new one.
    let v3 = to_old
        .put("/t3/k", b"v3".to_vec(), Expect::ModRevision(v2.revision))
        .await
        .expect("put through the old leader")
        .expect("precondition on v2 holds");
    let leader = c.leader(&[]).await;
    let kv = c
        .client_for(leader, Duration::from_secs(20))
        .get("/t3/k", Consistency::Linearizable)
        .await
        .expect("read on the leader")
        .expect("key present");
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"v3"[..], v3.revision)
    );
    let kv = to_old
        .get("/t3/k", Consistency::Linearizable)
        .await
        .expect("read on the old leader")
        .expect("key present");
    assert_eq!(kv.value, b"v3");
}
