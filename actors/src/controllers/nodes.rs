//! The bootstrap token cleaner (leader only): expired token Secrets are
//! deleted, every ten seconds. (Node lifecycle — unreachable nodes, their taint
//! and evictions — runs in the control plane on the Node and Lease informers:
//! `ferry_control::nodelifecycle`.)

use crate::apiserver::ApiServer;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::tls::Identity;
use ferry_api::token::{self, TokenSecret};
use serde_json::{json, Value};
use std::time::Duration;

async fn list(api: &ApiServer, plural: &str, ns: Option<&str>) -> Option<Vec<Value>> {
    let r = ObjectRequest::new(Verb::List, plural, ns, None);
    let resp = api.handle(&Identity::Admin, &r).await.ok()?;
    if resp.code != 200 {
        return None;
    }
    resp.json().ok()?["items"].as_array().cloned()
}

/// Deletes expired bootstrap token Secrets.
async fn clean_tokens(api: &ApiServer) {
    let Some(secrets) = list(api, "secrets", Some(token::NAMESPACE)).await else {
        return;
    };
    let now = ferry_api::clock::now();
    for s in secrets {
        if s["type"] != token::SECRET_TYPE {
            continue;
        }
        let Ok(t) = TokenSecret::from_secret(&s) else {
            continue;
        };
        if !t.expired(now) {
            continue;
        }
        let name = t.token.secret_name();
        let mut r =
            ObjectRequest::new(Verb::Delete, "secrets", Some(token::NAMESPACE), Some(&name));
        r.body = serde_json::to_vec(&json!({"preconditions": {"uid": s["metadata"]["uid"]}}))
            .unwrap_or_default();
        if let Ok(resp) = api.handle(&Identity::Admin, &r).await {
            if resp.code < 300 {
                tracing::info!(token = %t.token.id, "deleted an expired bootstrap token");
            }
        }
    }
}

/// The cleaner's loop; it runs until its actor stops.
pub async fn run(api: ApiServer) {
    let mut leadership = api.store().leadership();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            changed = leadership.changed() => {
                if changed.is_err() {
                    // Raft stopped: this master is stopping too.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if *leadership.borrow_and_update() {
            clean_tokens(&api).await;
        }
    }
}
