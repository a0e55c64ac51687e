//! Membership: id allocation, learner-then-voter joins, removal, and status.
//!
//! Changes run on the leader, one at a time. A joining master enters as a
//! learner, catches up, and is promoted together with any waiting learners when
//! that makes the number of voters odd (or when forced).

use super::{internal, unavailable, Store};
use crate::network::{CommittedMembership, PeerRequest, PeerResponse};
use crate::types::NodeId;
use ferry_api::kv::{Expect, Write, WriteOp};
use ferry_api::proto::{
    ApiError, ClusterStatus, Consistency, ErrorCode, MemberHealth, MemberStatus, StatusHealth,
};
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

const NEXT_ID_KEY: &str = "/ferry/masters/next-id";
/// A learner further behind than this many entries is not promoted.
const PROMOTE_MAX_LAG: u64 = 1000;

/// The answer to a forwarded membership change.
fn done(r: PeerResponse) -> Option<Result<(), ApiError>> {
    match r {
        PeerResponse::Done(r) => Some(r),
        _ => None,
    }
}

fn refused(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Refused, m)
}

impl Store {
    /// Allocates a fresh master id through the store (linearizable, durable).
    pub async fn allocate_id(&self) -> Result<NodeId, ApiError> {
        self.on_leader(
            PeerRequest::NextId,
            self.allocate_id_local(),
            |r| match r {
                PeerResponse::Id(r) => Some(r),
                _ => None,
            },
            |m| Err(unavailable(m)),
        )
        .await?
    }

    pub(super) async fn allocate_id_local(&self) -> Result<NodeId, ApiError> {
        for _ in 0..16 {
            let (kv, _) = self.get(NEXT_ID_KEY, Consistency::Linearizable).await?;
            let max_member = {
                let m = self.inner.raft.metrics().borrow().membership_config.clone();
                m.membership().nodes().map(|(id, _)| *id).max().unwrap_or(0)
            };
            let stored = kv
                .as_ref()
                .and_then(|kv| std::str::from_utf8(&kv.value).ok()?.parse::<u64>().ok())
                .unwrap_or(1);
            let id = stored.max(max_member + 1);
            let expect = kv
                .as_ref()
                .map_or(Expect::Absent, |kv| Expect::ModRevision(kv.mod_revision));
            let put = Write::Op(WriteOp::Put {
                key: NEXT_ID_KEY.into(),
                value: (id + 1).to_string().into_bytes(),
                expect,
            });
            if self
                .write_local(ferry_api::kv::RequestId::random(), put)
                .await?
                .is_ok()
            {
                return Ok(id);
            }
        }
        Err(unavailable("could not allocate a master id; retry"))
    }

    /// Adds a master as learner and promotes it when allowed.
    pub async fn add_member(&self, id: NodeId, addr: String, force: bool) -> Result<(), ApiError> {
        self.on_leader(
            PeerRequest::AddMember {
                id,
                addr: addr.clone(),
                force,
            },
            self.add_member_local(id, addr.clone(), force),
            done,
            |m| Err(unavailable(m)),
        )
        .await?
    }

    pub(super) async fn add_member_local(
        &self,
        id: NodeId,
        addr: String,
        force: bool,
    ) -> Result<(), ApiError> {
        let _one_at_a_time = self.inner.membership.lock().await;
        let raft = &self.inner.raft;
        let membership = raft.metrics().borrow().membership_config.clone();
        let m = membership.membership();
        if m.voter_ids().any(|v| v == id) {
            return Ok(());
        }
        // A master that joined again (lost its first reply, or crashed before saving
        // its id) must not be counted twice: one process answering for two voters
        // would make a quorum on its own.
        if let Some((&other, _)) = m.nodes().find(|(n, node)| **n != id && node.addr == addr) {
            if m.voter_ids().any(|v| v == other) {
                return Err(refused(format!(
                    "master {other} is a voter at {addr}; remove it before joining {id} at the same address"
                )));
            }
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([other])), false)
                .await
                .map_err(|e| {
                    unavailable(format!("removing stale learner {other} at {addr}: {e}"))
                })?;
        }
        let added_at = match m.get_node(&id) {
            None => {
                raft.add_learner(id, BasicNode::new(&addr), false)
                    .await
                    .map_err(|e| unavailable(format!("adding learner {id}: {e}")))?
                    .log_id
                    .index
            }
            Some(_) => membership.log_id().map_or(0, |l| l.index),
        };
        // openraft's blocking add_learner counts a learner within
        // replication_lag_threshold (5000) entries as caught up, even one that has
        // never answered; promote only a learner that has stored the entry adding it.
        let caught_up = raft
            .wait(Some(Duration::from_secs(120)))
            .metrics(
                |m| {
                    m.replication.is_none()
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(&id).copied().flatten())
                            .is_some_and(|l| l.index >= added_at)
                },
                "learner to store the membership entry that added it",
            )
            .await
            .map_err(|_| unavailable(format!("learner {id} at {addr} did not catch up")))?;
        if caught_up.replication.is_none() {
            return Err(unavailable(format!(
                "lost leadership while learner {id} was catching up; retry"
            )));
        }
        let metrics = raft.metrics().borrow().clone();
        let m = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        // Only learners that keep up are promoted: one that joined and died must
        // not become a voter that never votes.
        let last = metrics.last_log_index.unwrap_or(0);
        let learners: BTreeSet<NodeId> = m
            .learner_ids()
            .filter(|l| {
                *l == id
                    || metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(l).copied().flatten())
                        .is_some_and(|x| x.index + PROMOTE_MAX_LAG >= last)
            })
            .collect();
        if (voters.len() + learners.len()).is_multiple_of(2) && !force {
            tracing::info!(
                id,
                "learner stays a learner until another master joins (voters stay odd)"
            );
            return Ok(());
        }
        raft.change_membership(ChangeMembers::AddVoterIds(learners), false)
            .await
            .map_err(|e| unavailable(format!("promoting learners: {e}")))?;
        Ok(())
    }

    /// Removes a master from the cluster.
    pub async fn remove_member(&self, id: NodeId, force: bool) -> Result<(), ApiError> {
        self.on_leader(
            PeerRequest::RemoveMember { id, force },
            self.remove_member_local(id, force),
            done,
            |m| Err(unavailable(m)),
        )
        .await?
    }

    pub(super) async fn remove_member_local(
        &self,
        id: NodeId,
        force: bool,
    ) -> Result<(), ApiError> {
        let _one_at_a_time = self.inner.membership.lock().await;
        let raft = &self.inner.raft;
        let membership = raft.metrics().borrow().membership_config.clone();
        let m = membership.membership();
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        let change = if voters.contains(&id) {
            let left = voters.len() - 1;
            if left == 0 {
                return Err(refused(format!("master {id} is the last voter")));
            }
            if left.is_multiple_of(2) && !force {
                return Err(refused(format!(
                    "removing master {id} would leave {left} voters; an even number of voters \
                     tolerates no more failures than one fewer. Add a master first, or pass --force"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if m.get_node(&id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("master {id} is not a member"),
            ));
        };
        raft.change_membership(change, false)
            .await
            .map_err(|e| unavailable(format!("removing master {id}: {e}")))?;
        Ok(())
    }

    /// The cluster as the leader sees it, or this master's own view when it
    /// knows no leader or the leader does not answer within a second. Never
    /// waits for an election: status must answer while quorum is lost (a
    /// restarted master knows no leader until its peers are back).
    pub async fn status(&self) -> Result<ClusterStatus, ApiError> {
        let leader = super::known_leader(&self.inner.raft.metrics().borrow());
        match leader {
            Some((id, addr)) if id != self.inner.id => match self
                .inner
                .peers
                .call(&addr, &PeerRequest::Status, Duration::from_secs(1))
                .await
            {
                Ok(PeerResponse::Status(r)) => r,
                Ok(_) => Err(internal("leader answered with the wrong message")),
                Err(_) => Ok(self.local_status()),
            },
            _ => Ok(self.local_status()),
        }
    }

    /// This master's view of the cluster.
    pub fn local_status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let last = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).map(|l| l.map_or(0, |l| l.index)))
                    .or((*id == m.id && m.current_leader == Some(m.id)).then_some(last));
                MemberStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    matched,
                    lag: matched.map(|x| last.saturating_sub(x)),
                }
            })
            .collect();
        ClusterStatus {
            serving: m.id,
            leader: m.current_leader,
            leader_addr: m
                .current_leader
                .and_then(|l| membership.get_node(&l).map(|n| n.addr.clone())),
            term: m.current_term,
            last_log_index: last,
            commit_index: self.inner.committed.load(Ordering::Relaxed),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            members,
        }
    }

    /// A member silent toward the leader for longer than this is unreachable:
    /// two election timeouts, at least a second (a leader sends every member a
    /// heartbeat each `heartbeat_ms`).
    fn unreachable_after(&self) -> Duration {
        (2 * self.inner.election_max).max(Duration::from_secs(1))
    }

    /// [`Store::status`] with each member's health from the leader's view
    /// (none when no leader answers within a second).
    pub async fn status_health(&self) -> Result<StatusHealth, ApiError> {
        let leader = super::known_leader(&self.inner.raft.metrics().borrow());
        match leader {
            Some((id, addr)) if id != self.inner.id => {
                let asked = self
                    .inner
                    .peers
                    .call(&addr, &PeerRequest::StatusHealth, Duration::from_secs(1))
                    .await;
                match asked {
                    Ok(PeerResponse::StatusHealth(r)) => r,
                    // A leader that predates health reports: its plain status.
                    _ => Ok(StatusHealth {
                        status: self.status().await?,
                        health: Vec::new(),
                        unreachable_after_ms: self.unreachable_after().as_millis() as u64,
                    }),
                }
            }
            _ => Ok(self.local_status_health()),
        }
    }

    /// This master's view with members' health, which only a leader knows.
    pub fn local_status_health(&self) -> StatusHealth {
        let status = self.local_status();
        let health = match status.leader == Some(self.inner.id) {
            true => status
                .members
                .iter()
                .map(|m| self.member_health(m.id, &m.addr))
                .collect(),
            false => Vec::new(),
        };
        StatusHealth {
            status,
            health,
            unreachable_after_ms: self.unreachable_after().as_millis() as u64,
        }
    }

    /// Member `id`'s health from this master's contacts with it.
    fn member_health(&self, id: NodeId, addr: &str) -> MemberHealth {
        if id == self.inner.id {
            return MemberHealth {
                id,
                reachable: true,
                last_contact_ms: Some(0),
                down_ms: None,
            };
        }
        let now = std::time::Instant::now();
        let ms = |t: std::time::Instant| now.saturating_duration_since(t).as_millis() as u64;
        let c = self.inner.peers.contact(addr);
        let last = c.last_ok.map(ms);
        let reachable = c
            .last_ok
            .is_some_and(|t| now.saturating_duration_since(t) <= self.unreachable_after());
        MemberHealth {
            id,
            reachable,
            last_contact_ms: last,
            down_ms: match reachable {
                true => None,
                false => last.or(c.failing_since.map(ms)),
            },
        }
    }

    /// Swaps dead voter `dead` for the learner at `with` (`ferry cluster
    /// replace`); returns the new voter's id.
    pub async fn replace_member(
        &self,
        dead: NodeId,
        with: String,
        force: bool,
    ) -> Result<NodeId, ApiError> {
        self.on_leader(
            PeerRequest::ReplaceMember {
                dead,
                with: with.clone(),
                force,
            },
            self.replace_member_local(dead, with.clone(), force),
            |r| match r {
                PeerResponse::Id(r) => Some(r),
                _ => None,
            },
            |m| Err(unavailable(format!("replacing master {dead}: {m}"))),
        )
        .await?
    }

    /// The leader's side of [`Store::replace_member`]: the learner must have
    /// joined (`ferry master --join`), `dead` must be a voter the leader has not
    /// heard from (unless `force`); once the learner is within
    /// `PROMOTE_MAX_LAG` entries, one joint change makes the voters the old
    /// ones without `dead`, plus the learner. The voter count never changes, so
    /// an odd one stays odd, and both configurations of the joint step have
    /// the same quorum size.
    pub(super) async fn replace_member_local(
        &self,
        dead: NodeId,
        with: String,
        force: bool,
    ) -> Result<NodeId, ApiError> {
        let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
        let raft = &self.inner.raft;
        let members = || raft.metrics().borrow().membership_config.clone();
        // A master started with --join is added by a task of the master it
        // joined through: give that a moment.
        let appeared = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + appeared;
        while members().membership().nodes().all(|(_, n)| n.addr != with)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _one_at_a_time = self.inner.membership.lock().await;
        let membership = members();
        let m = membership.membership();
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        let at_with = m.nodes().find(|(_, n)| n.addr == with).map(|(id, _)| *id);
        if m.get_node(&dead).is_none() {
            // A retry of a replacement this leader made (its answer was lost).
            let made = self.inner.replaced.lock().expect("replaced lock").clone();
            if let Some(new) = at_with.filter(|n| voters.contains(n) && made.contains(&(dead, *n)))
            {
                return Ok(new);
            }
            return Err(bad(format!("master {dead} is not a member")));
        }
        if !voters.contains(&dead) {
            return Err(refused(format!(
                "master {dead} is a learner, not a voter: remove it with `ferry cluster remove {dead}`"
            )));
        }
        let Some(new) = at_with else {
            return Err(bad(format!(
                "no master at {with} has joined: start it first with `ferry master --listen {with} \
                 --join LIVE_MASTER --token TOKEN` (it joins as a learner), then replace"
            )));
        };
        if new == dead {
            return Err(bad(format!(
                "master {dead} is at {with}: nothing to replace"
            )));
        }
        if voters.contains(&new) {
            return Err(refused(format!(
                "master {new} at {with} is already a voter; replace {dead} with a master that joined as a learner"
            )));
        }
        if dead == self.inner.id {
            return Err(refused(format!(
                "master {dead} leads the cluster: it is alive"
            )));
        }
        let addr = m
            .get_node(&dead)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        let health = self.member_health(dead, &addr);
        if health.reachable && !force {
            return Err(refused(format!(
                "master {dead} is alive (it answered the leader {} ms ago); replace only a dead \
                 master, or pass --force",
                health.last_contact_ms.unwrap_or(0)
            )));
        }
        let lag = |mt: &openraft::RaftMetrics<NodeId, openraft::BasicNode>| {
            let matched = mt
                .replication
                .as_ref()
                .and_then(|r| r.get(&new).copied().flatten())
                .map(|l| l.index);
            (mt.last_log_index.unwrap_or(0), matched)
        };
        let caught_up = raft
            .wait(Some(Duration::from_secs(20)))
            .metrics(
                |mt| {
                    mt.replication.is_none()
                        || matches!(lag(mt), (last, Some(x)) if x + PROMOTE_MAX_LAG >= last)
                },
                "learner to catch up",
            )
            .await;
        let caught_up = match caught_up {
            Ok(mt) => mt,
            Err(_) => {
                let (last, matched) = lag(&raft.metrics().borrow());
                return Err(unavailable(format!(
                    "learner {new} at {with} has not caught up (it holds up to {}, the log is at {last}); \
                 retry when it has",
                    matched.map_or("nothing".into(), |x| x.to_string())
                )));
            }
        };
        if caught_up.replication.is_none() {
            return Err(unavailable(
                "lost leadership while the learner was catching up; retry",
            ));
        }
        let mut next = voters.clone();
        next.remove(&dead);
        next.insert(new);
        tracing::info!(dead, new, %with, "replacing a dead master");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(next), false)
            .await
            .map_err(|e| unavailable(format!("replacing master {dead} with {new}: {e}")))?;
        self.inner
            .replaced
            .lock()
            .expect("replaced lock")
            .push((dead, new));
        Ok(new)
    }

    /// Whether this master is in the cluster's membership (voter or learner).
    pub fn is_member(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        m.membership().get_node(&self.inner.id).is_some()
    }
}

/// Proof that this master was removed from the cluster: another master
/// committed a membership newer than any this master knows, without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The master that answered.
    pub by: String,
    /// Index of its membership entry.
    pub index: u64,
    /// Its members.
    pub members: BTreeSet<NodeId>,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this master was removed from the cluster: {} committed the membership {:?} at log index {}",
            self.by, self.members, self.index
        )
    }
}

impl Store {
    /// The membership this master has committed.
    pub async fn committed_membership(&self) -> Result<CommittedMembership, ApiError> {
        self.inner
            .raft
            .with_raft_state(|st| {
                let c = st.membership_state.committed();
                CommittedMembership {
                    index: c.log_id().map(|l| l.index),
                    members: c.membership().nodes().map(|(id, _)| *id).collect(),
                }
            })
            .await
            .map_err(|e| unavailable(format!("raft stopped: {e}")))
    }

    /// Asks the other members this master knows whether one has committed a
    /// membership newer than this master's own without it. Ids are never
    /// reused and a membership only grows newer, so that proves a removal; a
    /// master not in its own membership (still joining) never asks.
    pub async fn removed(&self) -> Option<Removed> {
        let own = self.inner.raft.metrics().borrow().membership_config.clone();
        own.membership().get_node(&self.inner.id)?;
        let own_index = own.log_id().map(|l| l.index);
        let peers: Vec<String> = own
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.inner.id)
            .map(|(_, n)| n.addr.clone())
            .collect();
        for addr in peers {
            let asked = self
                .inner
                .peers
                .call(&addr, &PeerRequest::Membership, Duration::from_secs(1))
                .await;
            if let Ok(PeerResponse::Membership(Ok(c))) = asked {
                if c.index > own_index && !c.members.contains(&self.inner.id) {
                    return Some(Removed {
                        by: addr,
                        index: c.index.unwrap_or(0),
                        members: c.members,
                    });
                }
            }
        }
        None
    }

    /// Returns once [`Store::removed`] proves this master removed; it asks
    /// every two seconds while no leader has been heard from (a removed
    /// master hears from none: the leader no longer replicates to it).
    pub async fn wait_removed(&self) -> Removed {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let leading = self.inner.raft.metrics().borrow().current_leader == Some(self.inner.id);
            if leading || !self.leader_silent() {
                continue;
            }
            if let Some(r) = self.removed().await {
                return r;
            }
        }
    }
}
