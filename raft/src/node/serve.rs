//! The server side of `ferry-raft/1`: one task per stream, one request per stream.

use super::Store;
use crate::network::{PeerRequest, PeerResponse};
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::tls::Identity;
use openraft::error::{Fatal, RaftError};
use openraft::raft::AppendEntriesResponse;
use openraft::{ErrorSubject, ErrorVerb, StorageError};

impl Store {
    /// Serves a connection from another master until it closes.
    pub async fn serve_peer(&self, conn: quinn::Connection, peer: Identity) {
        if !matches!(peer, Identity::Master(_)) {
            conn.close(1u32.into(), b"ferry-raft/1 is for masters only");
            return;
        }
        let mut streams = tokio::task::JoinSet::new();
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            while streams.try_join_next().is_some() {}
            let store = self.clone();
            // Boxed, so tokio moves a pointer in and out of the task, not the future.
            streams.spawn(Box::pin(async move {
                let req =
                    match read_frame::<_, PeerRequest>(&mut recv, store.inner.peers.max_frame())
                        .await
                    {
                        Ok(Some(r)) => r,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "bad frame from peer");
                            let _ = send.reset(2u32.into());
                            return;
                        }
                    };
                let resp = store.handle_peer(req).await;
                if write_frame(&mut send, &resp).await.is_ok() {
                    let _ = send.finish();
                }
            }));
        }
        // The connection is gone: its requests end with it (they hold this store).
        streams.shutdown().await;
    }

    async fn handle_peer(&self, req: PeerRequest) -> PeerResponse {
        let raft = &self.inner.raft;
        match req {
            PeerRequest::AppendEntries(r) => {
                if !r.entries.is_empty() {
                    crate::fault::hit("append_entries", &self.inner.snap_dir);
                    if let Some(d) = crate::fault::delay("append_entries", &self.inner.snap_dir) {
                        tokio::time::sleep(d).await;
                    }
                }
                let mut res = raft.append_entries(r).await;
                if matches!(
                    &res,
                    Ok(AppendEntriesResponse::Success
                        | AppendEntriesResponse::PartialSuccess(_)
                        | AppendEntriesResponse::Conflict)
                ) {
                    self.heard_from_leader();
                }
                // The entries this answer vouches for must be on disk, including
                // any this master appended as leader and has not flushed yet.
                if let Ok(
                    AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_),
                ) = &res
                {
                    if let Err(e) = self.inner.flusher.settle().await {
                        tracing::error!(error = %e, "log flush failed");
                        res = Err(RaftError::Fatal(Fatal::StorageError(
                            StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Write, e),
                        )));
                    }
                }
                PeerResponse::AppendEntries(res)
            }
            PeerRequest::Vote(r) => {
                let res = raft.vote(r).await;
                if res.as_ref().is_ok_and(|v| v.vote_granted) {
                    self.granted_vote();
                }
                PeerResponse::Vote(res)
            }
            PeerRequest::InstallSnapshot(r) => {
                let res = raft.install_snapshot(r).await;
                if res.is_ok() {
                    self.heard_from_leader();
                }
                PeerResponse::InstallSnapshot(res)
            }
            PeerRequest::Forward(w) => {
                let id = ferry_api::kv::RequestId::random();
                PeerResponse::Forward(self.write_local(id, w).await)
            }
            PeerRequest::ForwardOnce { id, write } => {
                PeerResponse::Forward(self.write_local(id, write).await)
            }
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(self.read_index_local().await),
            PeerRequest::AddMember { id, addr, force } => {
                PeerResponse::Done(self.add_member_local(id, addr, force).await)
            }
            PeerRequest::RemoveMember { id, force } => {
                PeerResponse::Done(self.remove_member_local(id, force).await)
            }
            PeerRequest::NextId => PeerResponse::Id(self.allocate_id_local().await),
            PeerRequest::Status => PeerResponse::Status(Ok(self.local_status())),
            PeerRequest::StatusHealth => PeerResponse::StatusHealth(Ok(self.local_status_health())),
            PeerRequest::ReplaceMember { dead, with, force } => {
                PeerResponse::Id(self.replace_member_local(dead, with, force).await)
            }
            PeerRequest::Membership => PeerResponse::Membership(self.committed_membership().await),
            PeerRequest::PreVote(r) => PeerResponse::PreVote(self.pre_vote_local(r).await),
        }
    }
}
