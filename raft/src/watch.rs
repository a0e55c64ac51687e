//! Watch streams over the state machine.
//!
//! A stream subscribes to live applied events *before* reading the history
//! window, so nothing falls between the two; it delivers each revision at most
//! once (revisions are monotonic), never splits a revision, and falls back to the
//! history whenever it lags behind the live channel or a snapshot replaces the state.

use crate::sm::{Applied, SmShared};
use ferry_api::kv::{Event, KvError, WatchItem};
use ferry_api::proto::{ApiError, ErrorCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;

/// Revisions read from history per scan.
const HISTORY_PAGE: usize = 256;

/// One watch over a key prefix.
pub struct WatchStream {
    shared: Arc<SmShared>,
    rx: Receiver<Applied>,
    prefix: String,
    /// Every matching event at or below this revision has been queued.
    last: u64,
    pending: VecDeque<WatchItem>,
    catch_up: bool,
    bookmark: Option<Duration>,
    next_bookmark: Instant,
}

fn too_old(e: KvError) -> ApiError {
    match e {
        KvError::TooOld { .. } => ApiError::new(ErrorCode::TooOld, e.to_string()),
        other => ApiError::new(ErrorCode::Internal, other.to_string()),
    }
}

impl WatchStream {
    /// Starts a watch after `after` (default: the current revision). The first
    /// item is a bookmark at the start revision.
    pub fn start(
        shared: Arc<SmShared>,
        prefix: String,
        after: Option<u64>,
        bookmark_ms: u64,
    ) -> Result<WatchStream, ApiError> {
        let rx = shared.subscribe();
        let last = after.unwrap_or_else(|| shared.applied());
        let compacted = shared.compacted();
        if last < compacted {
            return Err(too_old(KvError::TooOld {
                revision: last,
                compacted,
            }));
        }
        let bookmark = (bookmark_ms > 0).then(|| Duration::from_millis(bookmark_ms));
        Ok(WatchStream {
            shared,
            rx,
            prefix,
            last,
            pending: VecDeque::from([WatchItem::Bookmark { revision: last }]),
            catch_up: true,
            bookmark,
            next_bookmark: Instant::now() + bookmark.unwrap_or(Duration::from_secs(3600)),
        })
    }

    fn filter(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.kv.key.starts_with(&self.prefix))
            .cloned()
            .collect()
    }

    /// Queues a live message. While the stream is catching up (it lagged, or a
    /// snapshot replaced the state) live messages are dropped: the history read
    /// from `last` delivers them, and moving `last` here would skip the gap.
    fn take_live(&mut self, msg: Applied) {
        if self.catch_up {
            return;
        }
        match msg {
            Applied::Revision { revision, events } if revision > self.last => {
                let matching = self.filter(&events);
                self.last = revision;
                if !matching.is_empty() {
                    self.pending.push_back(WatchItem::Events {
                        revision,
                        events: matching,
                    });
                }
            }
            Applied::Revision { .. } => {}
            Applied::Reset => self.catch_up = true,
        }
    }

    fn read_history(&mut self) -> Result<(), ApiError> {
        let (revs, scanned) = self
            .shared
            .history(self.last, &self.prefix, HISTORY_PAGE)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(too_old)?;
        let full = revs.len() >= HISTORY_PAGE;
        for (revision, events) in revs {
            self.pending
                .push_back(WatchItem::Events { revision, events });
        }
        self.last = self.last.max(scanned);
        self.catch_up = full;
        Ok(())
    }

    /// A bookmark is honest only when every event up to it is queued: read the
    /// applied revision first, then drain what was published before it.
    fn bookmark_now(&mut self) {
        let applied = self.shared.applied();
        while !self.catch_up {
            match self.rx.try_recv() {
                Ok(msg) => self.take_live(msg),
                Err(TryRecvError::Lagged(_)) => self.catch_up = true,
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        if !self.catch_up && applied > self.last {
            self.last = applied;
        }
        if !self.catch_up {
            self.pending.push_back(WatchItem::Bookmark {
                revision: self.last,
            });
        }
    }

    /// The next item. Errors are final for this stream (`TooOld`: re-list).
    pub async fn next(&mut self) -> Result<WatchItem, ApiError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if let Some(b) = self.bookmark {
                    self.next_bookmark = Instant::now() + b;
                }
                return Ok(item);
            }
            if self.catch_up {
                self.read_history()?;
                continue;
            }
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Ok(m) => self.take_live(m),
                    Err(RecvError::Lagged(_)) => self.catch_up = true,
                    Err(RecvError::Closed) => {
                        return Err(ApiError::new(ErrorCode::Unavailable, "store is shutting down"))
                    }
                },
                _ = tokio::time::sleep_until(self.next_bookmark), if self.bookmark.is_some() => {
                    self.bookmark_now();
                    if self.pending.is_empty() {
                        self.next_bookmark = Instant::now() + self.bookmark.unwrap_or_default();
                    }
                }
            }
        }
    }
}
