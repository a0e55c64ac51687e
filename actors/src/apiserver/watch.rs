//! Object watches: the store's key watch turned into Kubernetes watch events.
//!
//! Without a resourceVersion a watch first sends the current objects as ADDED
//! (read at one revision), then every change after it. With one, it sends the
//! changes after it — or, when that revision is compacted, a single ERROR event
//! carrying a 410 Gone `Status`, as Kubernetes does. With selectors, an object
//! that stops matching is reported DELETED and one that starts matching ADDED.
//!
//! Layout:
//! - [`decoded`]: each store event decoded once per master, shared by the watches.

pub mod decoded;

use super::meta::parse_rv;
use super::read::{consistency_for, Filter};
use super::{ApiServer, Failure, Outcome};
use decoded::{Decoded, DecodedEvents};
use ferry_api::kv::{EventKind, WatchItem};
use ferry_api::object::{ObjectEvent, ObjectRequest, Status, Verb};
use ferry_api::proto::{ApiError, ErrorCode, WatchRequest};
use ferry_api::resources::Resource;
use ferry_api::tls::Identity;
use ferry_raft::watch::WatchStream;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// How often an idle watch reports its progress (a BOOKMARK).
const BOOKMARK_MS: u64 = 1000;

/// A running object watch.
pub struct ObjectWatch {
    res: &'static Resource,
    decoded: DecodedEvents,
    filter: Filter,
    stream: Option<WatchStream>,
    pending: VecDeque<ObjectEvent>,
    bookmarks: bool,
}

impl ApiServer {
    /// Starts a watch; errors before the first event come back as a `Status` or `ApiError`.
    pub async fn watch(&self, who: &Identity, req: &ObjectRequest) -> Outcome<ObjectWatch> {
        if req.verb != Verb::Watch {
            return Err(Status::bad_request("not a watch request").into());
        }
        let res = self.route(who, req)?;
        if let Identity::Node(node) = who {
            self.node_may_read(node, res, req).await?;
        }
        let filter = Filter::new(res, &req.list)?;
        let prefix = res.key(req.namespace.as_deref(), None);
        let mut pending = VecDeque::new();
        let after = match parse_rv(req.list.resource_version.as_deref())? {
            Some(rv) if rv > 0 => rv,
            _ => {
                let consistency =
                    consistency_for(self, req.list.resource_version.as_deref()).await?;
                let scan = self
                    .scan(res, &prefix, &filter, consistency, None, 0)
                    .await?;
                // The initial objects carry no resume point (revision 0): a watch cut
                // short among them starts over. The resume point follows them: a
                // bookmark, or the last object when bookmarks are off.
                for obj in &scan.items {
                    pending.push_back(event("ADDED", 0, obj));
                }
                if req.list.allow_bookmarks {
                    pending.push_back(bookmark(res, scan.revision));
                } else if let Some(last) = pending.back_mut() {
                    last.revision = scan.revision;
                }
                scan.revision
            }
        };
        let stream = match self.store.watch(&WatchRequest {
            prefix,
            after_revision: Some(after),
            bookmark_ms: BOOKMARK_MS,
        }) {
            Ok(s) => Some(s),
            Err(e) if e.code == ErrorCode::TooOld => {
                pending.push_back(gone(&e));
                None
            }
            Err(e) => return Err(Failure::from(e)),
        };
        Ok(ObjectWatch {
            res,
            decoded: self.decoded.clone(),
            filter,
            stream,
            pending,
            bookmarks: req.list.allow_bookmarks,
        })
    }
}

fn event(kind: &str, revision: u64, obj: &Value) -> ObjectEvent {
    ObjectEvent {
        kind: kind.into(),
        revision,
        object: serde_json::to_vec(obj).unwrap_or_default(),
    }
}

fn bookmark(res: &Resource, revision: u64) -> ObjectEvent {
    let obj = json!({
        "apiVersion": res.api_version(),
        "kind": res.kind,
        "metadata": { "resourceVersion": revision.to_string() },
    });
    event("BOOKMARK", revision, &obj)
}

fn gone(e: &ApiError) -> ObjectEvent {
    let s = Status::gone(format!("too old resource version: {}", e.message));
    event("ERROR", 0, &s.to_json())
}

impl ObjectWatch {
    /// The next event. After an ERROR event the watch is over and this fails.
    pub async fn next(&mut self) -> Result<ObjectEvent, ApiError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(ApiError::new(
                    ErrorCode::TooOld,
                    "the watch ended with an ERROR event",
                ));
            };
            match stream.next().await {
                Ok(WatchItem::Events { revision, events }) => {
                    let decoded = self.decoded.get(revision, &events);
                    for (ev, d) in events.iter().zip(&decoded) {
                        if let Some(e) = self.convert(revision, ev.kind, d) {
                            self.pending.push_back(e);
                        }
                    }
                }
                Ok(WatchItem::Bookmark { revision }) if self.bookmarks => {
                    self.pending.push_back(bookmark(self.res, revision));
                }
                Ok(WatchItem::Bookmark { .. }) => {}
                Err(e) if e.code == ErrorCode::TooOld => {
                    self.stream = None;
                    self.pending.push_back(gone(&e));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The event this watch reports for one store event, if its filter
    /// matches the object before or after.
    fn convert(&self, revision: u64, kind: EventKind, d: &Decoded) -> Option<ObjectEvent> {
        let old_matches = d.old.as_ref().is_some_and(|o| self.filter.matches(o));
        let kind = match kind {
            EventKind::Put => match (old_matches, self.filter.matches(d.cur.as_ref()?)) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
            EventKind::Delete if old_matches => "DELETED",
            EventKind::Delete => return None,
        };
        Some(ObjectEvent {
            kind: kind.into(),
            revision,
            object: d.reported(revision).to_vec(),
        })
    }
}
