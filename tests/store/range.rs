//! Range: pagination, and continuing a list at the first page's revision.

use crate::harness::{delete, put, TestCluster};
use ferry_api::kv::{KeyValue, KvError, Write};
use ferry_api::proto::{Consistency, RangeRequest, RangeResponse};
use ferry_api::Client;

fn page(prefix: &str, after: Option<&str>, limit: u64, c: Consistency) -> RangeRequest {
    RangeRequest {
        prefix: prefix.into(),
        start_after: after.map(str::to_string),
        limit,
        consistency: c,
    }
}

async fn range(client: &Client, req: RangeRequest) -> RangeResponse {
    client
        .range(req.clone())
        .await
        .unwrap_or_else(|e| panic!("range {req:?}: {e}"))
        .unwrap_or_else(|e| panic!("range {req:?}: {e}"))
}

/// Lists `prefix` in pages of `limit`; the first page is linearizable and every
/// later one continues at its revision. `between` runs after the first page.
async fn list_paged<F: std::future::Future<Output = ()>>(
    client: &Client,
    prefix: &str,
    limit: u64,
    between: impl FnOnce() -> F,
) -> (Vec<KeyValue>, u64, usize) {
    let first = range(client, page(prefix, None, limit, Consistency::Linearizable)).await;
    assert!(first.kvs.len() as u64 <= limit);
    between().await;
    let (rev, mut more, mut kvs, mut pages) = (first.revision, first.more, first.kvs, 1);
    while more {
        let after = kvs.last().map(|kv| kv.key.clone());
        let p = range(
            client,
            page(
                prefix,
                after.as_deref(),
                limit,
                Consistency::AtRevision(rev),
            ),
        )
        .await;
        assert_eq!(
            p.revision, rev,
            "a continued page is read at the list's revision"
        );
        assert!(p.kvs.len() as u64 <= limit, "page larger than the limit");
        assert!(
            !p.kvs.is_empty() || !p.more,
            "an empty page cannot have more"
        );
        more = p.more;
        kvs.extend(p.kvs);
        pages += 1;
    }
    (kvs, rev, pages)
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_paginates_in_key_order() {
    let c = TestCluster::new(1).await;
    let mut want = Vec::new();
    for i in 0..23 {
        let k = format!("/r/k{i:02}");
        put(&c.client, &k, "v").await;
        want.push(k);
    }
    put(&c.client, "/r-outside", "v").await;
    put(&c.client, "/q", "v").await;

    let one = range(&c.client, page("/r/", None, 10, Consistency::Linearizable)).await;
    assert_eq!(keys(&one.kvs), want[..10].to_vec());
    assert!(one.more, "23 keys with limit 10 leave more");

    let all = range(&c.client, page("/r/", None, 0, Consistency::Linearizable)).await;
    assert_eq!(
        keys(&all.kvs),
        want,
        "limit 0 returns every key under the prefix"
    );
    assert!(!all.more);

    let exact = range(&c.client, page("/r/", None, 23, Consistency::Linearizable)).await;
    assert_eq!(exact.kvs.len(), 23);
    assert!(!exact.more, "a page holding exactly the rest has no more");

    let (kvs, _, pages) = list_paged(&c.client, "/r/", 10, || async {}).await;
    assert_eq!(keys(&kvs), want);
    assert_eq!(pages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continued_list_reflects_the_first_page_revision() {
    let c = TestCluster::new(3).await;
    let mut before = Vec::new();
    for i in 0..20 {
        let k = format!("/c/k{i:02}");
        let o = put(&c.client, &k, &format!("old{i}")).await;
        before.push((k, format!("old{i}"), o.revision));
    }
    let cl = c.client.clone();
    let (kvs, rev, pages) = list_paged(&c.client, "/c/", 6, || async move {
        // Change keys on both sides of the first page's end.
        delete(&cl, "/c/k01").await;
        delete(&cl, "/c/k10").await;
        delete(&cl, "/c/k19").await;
        put(&cl, "/c/k12", "new").await;
        put(&cl, "/c/k07a", "inserted").await;
        put(&cl, "/c/k99", "appended").await;
    })
    .await;
    assert_eq!(pages, 4);
    let got: Vec<(String, String, u64)> = kvs
        .iter()
        .map(|kv| {
            let v = String::from_utf8(kv.value.clone()).expect("utf-8");
            (kv.key.clone(), v, kv.mod_revision)
        })
        .collect();
    assert_eq!(
        got, before,
        "the list must show the store as of revision {rev}"
    );

    // The latest state differs, and a follower serves the same old revision.
    let now = range(&c.client, page("/c/", None, 0, Consistency::Linearizable)).await;
    assert_eq!(now.kvs.len(), 20 - 3 + 2);
    let f = c.follower().await;
    let old = range(
        c.local(f),
        page("/c/", None, 0, Consistency::AtRevision(rev)),
    )
    .await;
    assert_eq!(old.kvs, kvs, "a follower reads the same revision");

    // Once compacted past it, the old revision is gone.
    let latest = now.revision;
    c.client
        .write(Write::Compact(latest))
        .await
        .expect("rpc")
        .expect("compact");
    let gone = c
        .client
        .range(page("/c/", None, 0, Consistency::AtRevision(rev)))
        .await
        .expect("rpc");
    assert!(
        matches!(gone, Err(KvError::TooOld { revision, .. }) if revision == rev),
        "a range below the compacted revision is too old, got {gone:?}"
    );
}
