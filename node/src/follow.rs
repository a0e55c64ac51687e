//! Objects followed by a watch into a map kept in a `tokio::sync::watch`
//! channel: listed, then changed event by event, resumed by the client's
//! watch after a master failover, started over after a 410. The proxy, DNS
//! and policy follow Services, EndpointSlices, NetworkPolicies, pods and
//! namespaces this way; the agent follows the pods bound to its node.

use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::Client;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch::{Receiver, Sender};

/// Where in the shared state `S` one kind's map and its synced flag are.
pub type Part<S, K> = fn(&mut S) -> (&mut BTreeMap<String, K>, &mut bool);

/// `namespace/name` of an object.
fn key_of(obj: &serde_json::Value) -> String {
    let m = &obj["metadata"];
    format!(
        "{}/{}",
        m["namespace"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default()
    )
}

/// Applies one watch event to `map`; whether it changed anything (a pod's
/// status change leaves the proxy's `PolicyPod` as it was).
pub fn apply_event<K: DeserializeOwned + PartialEq>(
    map: &mut BTreeMap<String, K>,
    ev: &ferry_api::object::ObjectEvent,
    plural: &str,
) -> bool {
    if ev.kind == "BOOKMARK" {
        return false;
    }
    let Ok(obj) = serde_json::from_slice::<serde_json::Value>(&ev.object) else {
        return false;
    };
    let key = key_of(&obj);
    if ev.kind == "DELETED" {
        return map.remove(&key).is_some();
    }
    match serde_json::from_value::<K>(obj) {
        Ok(o) if map.get(&key) == Some(&o) => false,
        Ok(o) => {
            map.insert(key, o);
            true
        }
        Err(e) => {
            tracing::warn!("a {plural} event that does not decode ({key}): {e}");
            false
        }
    }
}

/// Follows every `plural` object into `part` of `tx`'s state until `stop`
/// turns true; the synced flag turns true once the initial list is in (or
/// when the kind cannot be watched yet: work goes on with nothing).
pub async fn follow<S, K>(
    client: Arc<Client>,
    plural: &'static str,
    tx: Arc<Sender<S>>,
    part: Part<S, K>,
    stop: Receiver<bool>,
) where
    S: Send + Sync + 'static,
    K: DeserializeOwned + PartialEq + Send + Sync + 'static,
{
    follow_selected(client, plural, None, true, tx, part, stop).await
}

/// [`follow`] for the objects `field_selector` selects (`spec.nodeName=n1`);
/// `blind_ok`: whether a kind that cannot be watched counts as synced and
/// empty (false: the synced flag waits for a real list).
pub async fn follow_selected<S, K>(
    client: Arc<Client>,
    plural: &'static str,
    field_selector: Option<String>,
    blind_ok: bool,
    tx: Arc<Sender<S>>,
    part: Part<S, K>,
    mut stop: Receiver<bool>,
) where
    S: Send + Sync + 'static,
    K: DeserializeOwned + PartialEq + Send + Sync + 'static,
{
    let mut failures = 0u32;
    loop {
        let mut req = ObjectRequest::new(Verb::Watch, plural, None, None);
        req.list.allow_bookmarks = true;
        req.list.field_selector = field_selector.clone();
        let mut w = client.watch_objects(req);
        // The initial objects, until the first resume point completes them.
        let mut initial = Some(BTreeMap::new());
        loop {
            let ev = tokio::select! {
                ev = w.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            let ev = match ev {
                Ok(ev) if ev.kind != "ERROR" => ev,
                Ok(_) => break, // compacted: start over
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!("watching {plural} failed: {e}");
                    }
                    // Not watchable yet: go on with what is known (nothing).
                    if blind_ok {
                        tx.send_if_modified(|k| !std::mem::replace(part(k).1, true));
                    }
                    break;
                }
            };
            failures = 0;
            match initial.as_mut() {
                Some(init) => {
                    apply_event(init, &ev, plural);
                    if ev.revision != 0 {
                        let init = initial.take().unwrap_or_default();
                        tx.send_modify(|k| {
                            let (map, synced) = part(k);
                            *map = init;
                            *synced = true;
                        });
                    }
                }
                None => {
                    tx.send_if_modified(|k| apply_event(part(k).0, &ev, plural));
                }
            }
        }
        let ms = (100u64 << failures.min(6)).min(5000);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
