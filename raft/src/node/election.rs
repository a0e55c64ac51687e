//! Elections with a pre-vote, as etcd's `PreVote` (Raft thesis §9.6).
//!
//! openraft 0.9 has no pre-vote: a follower whose timer fires raises its term
//! at once, and its higher term deposes a healthy leader the moment the leader
//! hears of it. A follower that was only slow — its process starved, its
//! runtime stalled on a synchronous fsync — stands for election as it resumes,
//! before it has handled the heartbeats queued meanwhile, and the cluster
//! loses its leader to a node that merely paused (issue 16).
//!
//! So openraft's own election timer stays off (`elect(false)`) and this loop
//! decides when to stand. Once the leader has been silent for the timeout
//! openraft would use (the leader's lease plus a random election timeout, or
//! the bare random timeout when no leader is known), it asks every voter
//! whether it *would* vote ([`PreVote`]): nobody's term or vote changes. Only
//! with a majority of yeses does it call openraft's election. A voter says
//! no while it leads, while it has heard from a leader within the lease, when
//! its term is ahead of the candidate's next term, or when its log is ahead of
//! the candidate's.
//!
//! A leader always says no, as etcd's does while its check-quorum window
//! holds: a leader's acknowledgements are late by any stall of its own
//! process, so their age cannot tell a cut-off leader from a paused one. A
//! leader cut off from the others is not asked anyway (the question cannot
//! reach it), and they elect among themselves.
//!
//! The loop also holds back a restarted master (see [`ELECTION_HOLD`]).

use super::{Inner, Store, ELECTION_HOLD};
use crate::network::{PeerRequest, PeerResponse};
use crate::types::{LogId, NodeId};
use ferry_api::proto::ApiError;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A pre-vote request: "would you vote for me in `term`?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVote {
    /// The candidate.
    pub candidate: NodeId,
    /// The term the candidate would stand in (its current term + 1).
    pub term: u64,
    /// The candidate's last log id.
    pub last_log_id: Option<LogId>,
}

/// What a voter knows when it answers a pre-vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VoterView {
    /// This voter leads.
    pub leading: bool,
    /// Milliseconds since this voter last heard from a leader (None: never).
    pub heard_ms: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Its last log id.
    pub last_log_id: Option<LogId>,
}

/// Whether a voter in `view` would vote for `req`'s candidate. `lease_ms`:
/// how long a leader's word keeps a follower from voting (openraft's leader
/// lease, `election_max_ms`).
pub(super) fn would_vote(view: &VoterView, req: &PreVote, lease_ms: u64) -> bool {
    if view.leading || view.heard_ms.is_some_and(|h| h < lease_ms) {
        return false;
    }
    if req.term <= view.term {
        return false;
    }
    req.last_log_id >= view.last_log_id
}

/// Whether `yes` answers out of `voters` (the candidate included, which
/// votes for itself) make a majority.
pub(super) fn majority(yes: usize, voters: usize) -> bool {
    yes * 2 > voters
}

impl Store {
    /// This voter's answer to a pre-vote (the `ferry-raft/1` `PreVote` request).
    pub(super) async fn pre_vote_local(&self, req: PreVote) -> Result<bool, ApiError> {
        let m = self.inner.raft.metrics().borrow().clone();
        let last_log_id = self
            .inner
            .log
            .last_log_id()
            .map_err(|e| super::internal(format!("reading the last log id: {e}")))?;
        let view = VoterView {
            leading: m.state == ServerState::Leader,
            heard_ms: self.heard_ms_ago(),
            term: m.current_term,
            last_log_id,
        };
        let lease = self.inner.election_max.as_millis() as u64;
        let yes = would_vote(&view, &req, lease);
        tracing::debug!(?req, ?view, yes, "pre-vote");
        Ok(yes)
    }

    /// Milliseconds since the leader's last AppendEntries (None: never).
    fn heard_ms_ago(&self) -> Option<u64> {
        let heard = self.inner.heard.load(Ordering::Relaxed);
        (heard != 0).then(|| self.now_ms().saturating_sub(heard))
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Notes that this master granted a vote: as in Raft, it waits a whole
    /// timeout before it stands itself.
    pub(super) fn granted_vote(&self) {
        self.inner
            .vote_granted
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }
}

/// The election loop of one master; it ends when the store is dropped or
/// Raft stops.
pub(super) async fn run(inner: Weak<Inner>, timing: Timing) {
    let started = tokio::time::Instant::now();
    let mut attempted_ms = 0u64;
    let mut timeout = timing.random_timeout();
    let mut tick = tokio::time::interval(timing.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let store = Store { inner };
        let m = store.inner.raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            return;
        }
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        if m.state == ServerState::Leader || !voters.contains(&store.inner.id) {
            attempted_ms = store.now_ms();
            continue;
        }
        let heard = store.inner.heard.load(Ordering::Relaxed);
        if voters.len() > 1 && heard == 0 && started.elapsed() < ELECTION_HOLD {
            continue;
        }
        let now = store.now_ms();
        let quiet_since = heard
            .max(store.inner.vote_granted.load(Ordering::Relaxed))
            .max(attempted_ms);
        let budget = match m.current_leader.is_some() && m.vote.is_committed() {
            true => timing.lease + timeout,
            false => timeout,
        };
        if now.saturating_sub(quiet_since) < budget.as_millis() as u64 {
            continue;
        }
        attempted_ms = now;
        timeout = timing.random_timeout();
        if store.pre_vote_round(&voters, m.current_term).await {
            tracing::info!(
                term = m.current_term + 1,
                "pre-vote won: standing for election"
            );
            if store.inner.raft.trigger().elect().await.is_err() {
                return;
            }
        }
    }
}

/// The election loop's timing, from the master's Raft timings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub tick: Duration,
    pub lease: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Timing {
    fn random_timeout(&self) -> Duration {
        let (lo, hi) = (self.min.as_millis() as u64, self.max.as_millis() as u64);
        Duration::from_millis(lo + rand::random::<u64>() % (hi - lo).max(1))
    }
}

impl Store {
    /// Asks every other voter for a pre-vote; true once a majority (this
    /// master included) would vote for it.
    async fn pre_vote_round(&self, voters: &[NodeId], term: u64) -> bool {
        if majority(1, voters.len()) {
            return true;
        }
        let last_log_id = match self.inner.log.last_log_id() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last log id for a pre-vote");
                return false;
            }
        };
        let req = PeerRequest::PreVote(PreVote {
            candidate: self.inner.id,
            term: term + 1,
            last_log_id,
        });
        let frame = match ferry_api::frame::encode(&req) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a pre-vote");
                return false;
            }
        };
        let members = self.inner.raft.metrics().borrow().membership_config.clone();
        let wait = self.inner.election_max;
        let mut asks = tokio::task::JoinSet::new();
        for id in voters.iter().filter(|id| **id != self.inner.id) {
            let Some(node) = members.membership().get_node(id) else {
                continue;
            };
            let (peers, addr, frame) = (
                Arc::clone(&self.inner.peers),
                node.addr.clone(),
                frame.clone(),
            );
            asks.spawn(async move {
                matches!(
                    peers.call_frame(&addr, frame, wait).await,
                    Ok(PeerResponse::PreVote(Ok(true)))
                )
            });
        }
        let mut yes = 1;
        while let Some(answer) = asks.join_next().await {
            yes += usize::from(answer.unwrap_or(false));
            if majority(yes, voters.len()) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn follower(heard_ms: Option<u64>) -> VoterView {
        VoterView {
            leading: false,
            heard_ms,
            term: 3,
            last_log_id: log(3, 10),
        }
    }

    fn ask(term: u64, last: Option<LogId>) -> PreVote {
        PreVote {
            candidate: 2,
            term,
            last_log_id: last,
        }
    }

    const LEASE: u64 = 240;

    #[test]
    fn a_follower_that_heard_its_leader_within_the_lease_says_no() {
        assert!(!would_vote(
            &follower(Some(100)),
            &ask(4, log(3, 10)),
            LEASE
        ));
        assert!(would_vote(&follower(Some(300)), &ask(4, log(3, 10)), LEASE));
        assert!(would_vote(&follower(None), &ask(4, log(3, 10)), LEASE));
    }

    #[test]
    fn a_leader_says_no() {
        let mut v = follower(None);
        v.leading = true;
        assert!(!would_vote(&v, &ask(4, log(3, 10)), LEASE));
        assert!(!would_vote(&v, &ask(9, log(9, 99)), LEASE));
    }

    #[test]
    fn a_candidate_behind_in_term_or_log_gets_no() {
        let v = follower(None);
        assert!(
            !would_vote(&v, &ask(3, log(3, 10)), LEASE),
            "term not ahead"
        );
        assert!(!would_vote(&v, &ask(4, log(3, 9)), LEASE), "shorter log");
        assert!(
            !would_vote(&v, &ask(4, log(2, 50)), LEASE),
            "older last term"
        );
        assert!(!would_vote(&v, &ask(9, None), LEASE), "empty log");
        assert!(would_vote(&v, &ask(4, log(3, 11)), LEASE), "longer log");
        assert!(would_vote(&v, &ask(4, log(4, 1)), LEASE), "newer last term");
    }

    #[test]
    fn a_majority_counts_the_candidate() {
        assert!(majority(1, 1));
        assert!(!majority(1, 2));
        assert!(majority(2, 3));
        assert!(!majority(2, 4));
        assert!(majority(3, 5));
    }
}
