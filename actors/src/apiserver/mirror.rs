//! An in-memory mirror of one key prefix of this master's applied state, as
//! the RBAC cache and the node graph keep them: listed, then watched from
//! the listing's revision.

use super::ApiServer;
use ferry_api::kv::{EventKind, WatchItem};
use ferry_api::proto::{Consistency, RangeRequest, WatchRequest};
use serde_json::Value;

/// The objects under `prefix` go to `replace` (key, object), then each batch
/// of watched changes to `apply` (`None`: deleted), until the watch breaks:
/// the caller lists again.
pub(crate) async fn follow(
    api: &ApiServer,
    prefix: &str,
    replace: impl Fn(Vec<(String, Value)>),
    apply: impl Fn(Vec<(String, Option<Value>)>),
) -> Result<(), String> {
    let page = api
        .store()
        .range(&RangeRequest {
            prefix: prefix.into(),
            start_after: None,
            limit: 0,
            consistency: Consistency::Local,
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    replace(
        page.kvs
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), serde_json::from_slice(&kv.value).ok()?)))
            .collect(),
    );
    let mut w = api
        .store()
        .watch(&WatchRequest {
            prefix: prefix.into(),
            after_revision: Some(page.revision),
            bookmark_ms: 0,
        })
        .map_err(|e| e.to_string())?;
    loop {
        if let WatchItem::Events { events, .. } = w.next().await.map_err(|e| e.to_string())? {
            apply(
                events
                    .into_iter()
                    .map(|e| {
                        let v = match e.kind {
                            EventKind::Delete => None,
                            _ => serde_json::from_slice(&e.kv.value).ok(),
                        };
                        (e.kv.key, v)
                    })
                    .collect(),
            );
        }
    }
}
