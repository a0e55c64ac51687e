//! Writes, preconditions, all-or-nothing transactions, and per-member local reads.

use crate::harness::{local_value, put, TestCluster};
use ferry_api::kv::{Expect, KvError, Write, WriteOp};
use ferry_api::proto::Consistency;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_get_increasing_revisions_and_read_back() {
    let c = TestCluster::new(3).await;
    let first = put(&c.client, "/w/a", "1").await;
    let second = put(&c.client, "/w/a", "2").await;
    assert!(
        second.revision > first.revision,
        "revisions must increase: {} then {}",
        first.revision,
        second.revision
    );
    let prev = second.prev[0]
        .as_ref()
        .expect("second put reports the previous value");
    assert_eq!(prev.value, b"1");
    assert_eq!(prev.mod_revision, first.revision);

    let kv = c
        .client
        .get("/w/a", Consistency::Linearizable)
        .await
        .expect("get")
        .expect("key present");
    assert_eq!(kv.value, b"2");
    assert_eq!(kv.create_revision, first.revision);
    assert_eq!(kv.mod_revision, second.revision);
    assert_eq!(kv.version, 2);

    // A write sent to a follower is forwarded to the leader.
    let f = c.follower().await;
    let via_follower = put(c.local(f), "/w/b", "from-follower").await;
    assert!(via_follower.revision > second.revision);
    let kv = c
        .client
        .get("/w/b", Consistency::Linearizable)
        .await
        .expect("get")
        .expect("forwarded write is visible");
    assert_eq!(kv.value, b"from-follower");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconditions_fail_without_writing() {
    let c = TestCluster::new(1).await;
    let cl = &c.client;
    let created = cl
        .put("/p/k", b"v1".to_vec(), Expect::Absent)
        .await
        .expect("rpc")
        .expect("create of an absent key succeeds");

    let again = cl
        .put("/p/k", b"v2".to_vec(), Expect::Absent)
        .await
        .expect("rpc");
    assert_eq!(again, Err(KvError::AlreadyExists { key: "/p/k".into() }));

    let stale = cl
        .put(
            "/p/k",
            b"v3".to_vec(),
            Expect::ModRevision(created.revision + 1000),
        )
        .await
        .expect("rpc");
    assert_eq!(
        stale,
        Err(KvError::Conflict {
            key: "/p/k".into(),
            expected: created.revision + 1000,
            actual: created.revision,
        })
    );

    let updated = cl
        .put(
            "/p/k",
            b"v4".to_vec(),
            Expect::ModRevision(created.revision),
        )
        .await
        .expect("rpc")
        .expect("update at the current mod_revision succeeds");

    let missing = cl.delete("/p/missing", Expect::Any).await.expect("rpc");
    assert_eq!(
        missing,
        Err(KvError::NotFound {
            key: "/p/missing".into()
        })
    );
    let missing = cl.delete("/p/missing", Expect::Exists).await.expect("rpc");
    assert_eq!(
        missing,
        Err(KvError::NotFound {
            key: "/p/missing".into()
        })
    );

    let old_delete = cl
        .delete("/p/k", Expect::ModRevision(created.revision))
        .await
        .expect("rpc");
    assert!(
        matches!(old_delete, Err(KvError::Conflict { .. })),
        "delete at a stale mod_revision must conflict, got {old_delete:?}"
    );

    let kv = cl
        .get("/p/k", Consistency::Linearizable)
        .await
        .expect("get")
        .expect("key still present");
    assert_eq!(kv.value, b"v4", "failed writes must not change the value");
    assert_eq!(kv.mod_revision, updated.revision);
    assert_eq!(kv.version, 2);

    cl.delete("/p/k", Expect::ModRevision(updated.revision))
        .await
        .expect("rpc")
        .expect("delete at the current mod_revision succeeds");
    assert!(cl
        .get("/p/k", Consistency::Linearizable)
        .await
        .expect("get")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_is_all_or_nothing() {
    let c = TestCluster::new(1).await;
    let cl = &c.client;
    let base = put(cl, "/t/existing", "old").await;

    // Op 2 fails: neither op 0 nor op 1 may apply.
    let failing = Write::Txn(vec![
        WriteOp::Put {
            key: "/t/new".into(),
            value: b"n".to_vec(),
            expect: Expect::Absent,
        },
        WriteOp::Delete {
            key: "/t/existing".into(),
            expect: Expect::ModRevision(base.revision),
        },
        WriteOp::Put {
            key: "/t/other".into(),
            value: b"o".to_vec(),
            expect: Expect::Exists,
        },
    ]);
    let r = cl.write(failing).await.expect("rpc");
    match r {
        Err(KvError::TxnFailed { index, source }) => {
            assert_eq!(index, 2, "the third op is the failing one");
            assert_eq!(
                *source,
                KvError::NotFound {
                    key: "/t/other".into()
                }
            );
        }
        other => panic!("expected TxnFailed, got {other:?}"),
    }
    assert!(cl
        .get("/t/new", Consistency::Linearizable)
        .await
        .expect("get")
        .is_none());
    let kv = cl
        .get("/t/existing", Consistency::Linearizable)
        .await
        .expect("get")
        .expect("a failed txn must not delete");
    assert_eq!(kv.mod_revision, base.revision);

    // Preconditions see the earlier ops of the same txn.
    let ok = cl
        .write(Write::Txn(vec![
            WriteOp::Put {
                key: "/t/new".into(),
                value: b"n".to_vec(),
                expect: Expect::Absent,
            },
            WriteOp::Put {
                key: "/t/new".into(),
                value: b"n2".to_vec(),
                expect: Expect::Exists,
            },
            WriteOp::Delete {
                key: "/t/existing".into(),
                expect: Expect::ModRevision(base.revision),
            },
        ]))
        .await
        .expect("rpc")
        .expect("txn applies");
    assert_eq!(ok.prev.len(), 3);
    assert!(ok.prev[0].is_none());
    assert_eq!(
        ok.prev[1].as_ref().map(|p| p.value.clone()),
        Some(b"n".to_vec())
    );
    let kv = cl
        .get("/t/new", Consistency::Linearizable)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"n2"[..], ok.revision)
    );
    assert!(cl
        .get("/t/existing", Consistency::Linearizable)
        .await
        .expect("get")
        .is_none());
}

/// Every member, once it has applied an acknowledged write's revision, serves it locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_see_acknowledged_writes_after_apply() {
    let c = TestCluster::new(3).await;
    let client = c.client.clone();
    let mut acked = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for k in 0..10 {
                let key = format!("/l/{w}/{k}");
                let o = put(&client, &key, &format!("v{w}.{k}")).await;
                out.push((key, format!("v{w}.{k}"), o.revision));
            }
            out
        });
    }
    while let Some(r) = tasks.join_next().await {
        acked.extend(r.expect("writer task"));
    }
    let max = acked.iter().map(|a| a.2).max().expect("writes");
    for i in c.running().collect::<Vec<_>>() {
        c.wait_applied(i, max).await;
        for (key, value, revision) in &acked {
            let kv = c
                .local(i)
                .get(key, Consistency::Local)
                .await
                .expect("local get")
                .unwrap_or_else(|| panic!("master {i} lacks acknowledged {key}"));
            assert_eq!(kv.value, value.as_bytes(), "master {i}, key {key}");
            assert_eq!(kv.mod_revision, *revision, "master {i}, key {key}");
        }
        // AtRevision reads on any member agree.
        let (k, v, r) = &acked[0];
        let kv = c
            .local(i)
            .get(k, Consistency::AtRevision(*r))
            .await
            .expect("get at revision")
            .expect("present at its own revision");
        assert_eq!(kv.value, v.as_bytes());
        assert_eq!(
            local_value(c.local(i), k).await.as_deref(),
            Some(v.as_str())
        );
    }
}
