//! List-then-watch into a [`Cache`], as an explicit state machine (kube-rs's
//! `watcher`): `List` fills the cache at one revision; `Watch(rev)` applies
//! events after it; a broken watch resumes from the last revision it applied
//! (so a master failover costs no re-list while the history allows); a
//! compacted revision (410) starts over with a list. Every applied change is
//! handed to `on_change`, which queues the keys the controllers care about.

use crate::api::{ControlApi, EventStream};
use crate::cache::{Cache, Change};
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::proto::ErrorCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Where the informer stands.
enum State {
    List,
    Watch(u64),
}

/// Runs the informer for `plural` until its future is dropped.
pub async fn run<K, F>(api: &dyn ControlApi, plural: &str, cache: &Cache<K>, mut on_change: F)
where
    K: DeserializeOwned + Metadata<Ty = ObjectMeta>,
    F: FnMut(&Change<K>),
{
    let mut state = State::List;
    let mut failures = 0u32;
    loop {
        state = match state {
            State::List => match crate::api::list::<K>(api, plural).await {
                Ok((items, rev)) => {
                    for c in cache.replace(items, rev) {
                        on_change(&c);
                    }
                    failures = 0;
                    State::Watch(rev)
                }
                Err(e) => {
                    tracing::debug!("informer {plural}: list failed: {}", e.message);
                    pause(&mut failures).await;
                    State::List
                }
            },
            State::Watch(rev) => {
                let mut req = ObjectRequest::new(Verb::Watch, plural, None, None);
                req.list.resource_version = Some(rev.to_string());
                req.list.allow_bookmarks = true;
                match api.watch(req).await {
                    Ok(stream) => {
                        failures = 0;
                        follow(stream, plural, cache, &mut on_change).await
                    }
                    Err(e) if e.code == ErrorCode::TooOld => State::List,
                    Err(e) => {
                        tracing::debug!("informer {plural}: watch failed: {}", e.message);
                        pause(&mut failures).await;
                        State::Watch(rev)
                    }
                }
            }
        };
    }
}

/// Applies a watch's events until it ends; the state to go on from.
async fn follow<K, F>(
    mut stream: Box<dyn EventStream>,
    plural: &str,
    cache: &Cache<K>,
    on_change: &mut F,
) -> State
where
    K: DeserializeOwned + Metadata<Ty = ObjectMeta>,
    F: FnMut(&Change<K>),
{
    loop {
        let ev = match stream.next().await {
            Ok(ev) => ev,
            Err(e) if e.code == ErrorCode::TooOld => return State::List,
            Err(e) => {
                tracing::debug!("informer {plural}: watch ended: {}", e.message);
                // One Raft entry gives several events one revision, and the
                // stream may have broken among them: resume with that whole
                // revision again (applying an event twice changes nothing).
                return State::Watch(cache.revision().saturating_sub(1));
            }
        };
        match ev.kind.as_str() {
            "BOOKMARK" => cache.advance(ev.revision),
            // A 410 Gone from a compacted revision: list again.
            "ERROR" => return State::List,
            kind => match serde_json::from_slice::<K>(&ev.object) {
                Ok(obj) => {
                    let key = crate::meta::key(obj.metadata());
                    let new = (kind != "DELETED").then(|| Arc::new(obj));
                    let change = cache.apply(key, new, ev.revision);
                    on_change(&change);
                }
                Err(e) => {
                    tracing::warn!("informer {plural}: an event that does not decode: {e}");
                    cache.advance(ev.revision);
                }
            },
        }
    }
}

async fn pause(failures: &mut u32) {
    *failures = failures.saturating_add(1);
    let ms = (100u64 << (*failures).min(5)).min(2000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
