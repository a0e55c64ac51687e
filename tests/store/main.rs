//! Integration tests of the replicated store: masters in one process over QUIC.
//!
//! Layout:
//! - [`harness`]: `TestCluster` (temp dirs, port 0, tight Raft timing) and waits.
//! - [`writes`]: writes, preconditions, transactions, local reads.
//! - [`range`]: pagination and reads at a revision.
//! - [`watch`]: ordering, gaps, atomicity, resume, compaction, bookmarks.
//! - [`snapshot`]: snapshot install on a lagging member and a new master.
//! - [`membership`]: learners, promotion, removal.
//! - [`liveness`]: a slow follower keeps its leader (no elections against a live one).

mod harness;
mod liveness;
mod membership;
mod once;
mod range;
mod snapshot;
mod watch;
mod writes;
