//! Membership: learner then promotion, removal, refusal of an even voter count.

use crate::harness::{eventually, put, TestCluster, WAIT};
use ferry_api::proto::{ApiRequest, ApiResponse, ErrorCode};
use ferry_api::Error;
use std::collections::BTreeSet;

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiner_waits_as_learner_until_voters_stay_odd() {
    let mut c = TestCluster::start_first(|_| {}).await;
    let first = c.master(0).id;
    let rev = put(&c.client, "/m/a", "1").await.revision;

    let second = c.join().await;
    let id2 = c.master(second).id;
    c.wait_members(&set(&[first]), &set(&[id2])).await;
    // A learner replicates: it applies writes but does not vote.
    c.wait_applied(second, rev).await;
    let rev = put(&c.client, "/m/b", "2").await.revision;
    c.wait_applied(second, rev).await;
    let status = c.status().await;
    let m2 = status
        .members
        .iter()
        .find(|m| m.id == id2)
        .expect("second master listed");
    assert!(
        !m2.voter,
        "two voters would be even: the second master stays a learner"
    );
    c.wait_members(&set(&[first]), &set(&[id2])).await;

    let third = c.join().await;
    let id3 = c.master(third).id;
    c.wait_members(&set(&[first, id2, id3]), &set(&[])).await;
    let status = c.status().await;
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.voter), "{status:?}");
    let rev = put(&c.client, "/m/c", "3").await.revision;
    c.wait_applied(third, rev).await;
}

async fn remove(c: &TestCluster, id: u64, force: bool) -> Result<ApiResponse, Error> {
    c.client.call(&ApiRequest::RemoveMember { id, force }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_keeps_voters_odd_unless_forced() {
    let mut c = TestCluster::new(3).await;
    let voters: BTreeSet<u64> = c.ids().into_iter().collect();
    let learner = c.join().await;
    let lid = c.master(learner).id;
    c.wait_members(&voters, &set(&[lid])).await;

    let f = c.follower().await;
    let fid = c.master(f).id;
    match remove(&c, fid, false).await {
        Err(Error::Api(e)) => assert_eq!(e.code, ErrorCode::Refused, "{e}"),
        other => panic!("removing a voter of 3 without force must be refused, got {other:?}"),
    }
    c.wait_members(&voters, &set(&[lid])).await;

    // A learner goes without force: voters are unchanged.
    let r = remove(&c, lid, false).await.expect("remove learner");
    assert_eq!(r, ApiResponse::Removed);
    c.stop(learner).await;
    c.wait_members(&voters, &set(&[])).await;

    // A follower goes with force; the rest keep serving.
    let r = remove(&c, fid, true)
        .await
        .expect("forced removal of a follower");
    assert_eq!(r, ApiResponse::Removed);
    c.stop(f).await;
    let left: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != fid).collect();
    c.wait_members(&left, &set(&[])).await;
    let status = c.status().await;
    assert_eq!(
        status.members.iter().map(|m| m.id).collect::<BTreeSet<_>>(),
        left,
        "status lists the remaining masters"
    );
    let rev = put(&c.client, "/m/after", "1").await.revision;
    for i in c.running().collect::<Vec<_>>() {
        c.wait_applied(i, rev).await;
    }
}

async fn replace(
    c: &TestCluster,
    dead: u64,
    with: &str,
    force: bool,
) -> Result<ApiResponse, Error> {
    let req = ApiRequest::ReplaceMember {
        dead,
        with: with.to_string(),
        force,
    };
    c.client.call(&req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_swaps_a_stopped_voter_for_a_learner_in_one_change() {
    let mut c = TestCluster::new(3).await;
    let voters: BTreeSet<u64> = c.ids().into_iter().collect();
    let f = c.follower().await;
    let fid = c.master(f).id;
    let new = c.join().await;
    let nid = c.master(new).id;
    let naddr = c.master(new).addr.to_string();
    c.wait_members(&voters, &set(&[nid])).await;

    // The follower is alive: refused without --force.
    match replace(&c, fid, &naddr, false).await {
        Err(Error::Api(e)) => {
            assert_eq!(e.code, ErrorCode::Refused, "{e}");
            assert!(e.message.contains("is alive"), "{e}");
        }
        other => panic!("replacing a live voter must be refused, got {other:?}"),
    }
    // Not a member; a learner is not a voter to replace.
    match replace(&c, 99, &naddr, false).await {
        Err(Error::Api(e)) => assert!(e.message.contains("not a member"), "{e}"),
        other => panic!("{other:?}"),
    }
    match replace(&c, nid, &naddr, false).await {
        Err(Error::Api(e)) => assert!(e.message.contains("not a voter"), "{e}"),
        other => panic!("{other:?}"),
    }

    c.stop(f).await;
    // The leader's health report shows it gone.
    let health = eventually("the stopped voter to be unreachable", WAIT, || async {
        let h = c.client.status_health().await.ok()?;
        let m = h.health.iter().find(|m| m.id == fid)?.clone();
        (!m.reachable && m.down_ms.is_some()).then_some(h)
    })
    .await;
    assert!(
        health
            .health
            .iter()
            .filter(|m| m.id != fid && m.id != nid)
            .all(|m| m.reachable && m.down_ms.is_none()),
        "{health:?}"
    );

    let r = replace(&c, fid, &naddr, false).await.expect("replace");
    assert_eq!(r, ApiResponse::Replaced { id: nid });
    let after: BTreeSet<u64> = voters
        .iter()
        .copied()
        .filter(|v| *v != fid)
        .chain([nid])
        .collect();
    c.wait_members(&after, &set(&[])).await;
    // Asked again (a lost answer): the same answer, nothing changes.
    let r = replace(&c, fid, &naddr, false)
        .await
        .expect("replace again");
    assert_eq!(r, ApiResponse::Replaced { id: nid });
    let rev = put(&c.client, "/m/replaced", "1").await.revision;
    c.wait_applied(new, rev).await;
}
