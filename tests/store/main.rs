//! Integration tests of the replicated store: masters in one process over QUIC.
//!
//! Layout:
//! - [`harness`]: `TestCluster` (temp dirs, port 0, tight Raft timing) and waits.
//! - [`writes`]: writes, preconditions, transactions, local reads.
//! - [`range`]: pagination and reads at a revision.
//! - [`watch`]: ordering, gaps, atomicity, resume, compaction, bookmarks.
//! - [`snapshot`]: snapshot install on a lagging member and a new master.
//! - [`format`]: the data dir's format record: old stores open, newer ones are refused,
//!   a committed data dir from an earlier ferry reads back.
//! - [`membership`]: learners, promotion, removal.
//! - [`liveness`]: a slow follower keeps its leader (no elections against a live one).

mod format;
mod harness;
mod liveness;
mod membership;
mod once;
mod range;
mod snapshot;
mod watch;
mod writes;
