//! The `ferry-api/1` and `ferry-join/1` request handlers.
//!
//! Every request goes through one pipeline: authenticate (the connection's
//! certificate identity) → authorize ([`authorize`], the hook RBAC will fill) →
//! the store. A malformed or oversized frame fails its own stream with an error
//! frame; the connection and the process carry on.

use crate::apiserver::actor::{ApiServerActor, Handle, Impersonate, StartWatch};
use crate::apiserver::impersonate::Impersonation;
use crate::apiserver::Failure;
use crate::join::JoinContext;
use actix::Addr;
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::object::{ObjectEvent, ObjectRequest, Verb};
use ferry_api::proto::{ApiError, ApiRequest, ApiResponse, ErrorCode, SnapshotPart};
use ferry_api::tls::Identity;
use ferry_raft::Store;
use std::sync::Arc;

/// Decides whether `who` may make `req`. Admins and masters may do anything;
/// other identities may read cluster status and use the object API (which
/// authorizes each object request itself, see [`crate::apiserver::authorize`]).
pub fn authorize(who: &Identity, req: &ApiRequest) -> Result<(), ApiError> {
    match (who, req) {
        (Identity::Admin | Identity::Master(_), _) => Ok(()),
        (
            _,
            ApiRequest::Status
            | ApiRequest::StatusHealth
            | ApiRequest::Version
            | ApiRequest::Object(_)
            | ApiRequest::ObjectOnce { .. }
            | ApiRequest::ObjectAs { .. },
        ) => Ok(()),
        (
            Identity::Node(_),
            ApiRequest::RenewNodeCert { .. }
            | ApiRequest::NodeTunnel
            | ApiRequest::ReportMetrics(_)
            | ApiRequest::ClusterTrust(_),
        ) => Ok(()),
        (_, ApiRequest::CaRotate { .. } | ApiRequest::CaStatus) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{who:?} may not rotate the cluster CA or read its state (admin only)"),
        )),
        (_, ApiRequest::IssueUserCert { .. }) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{who:?} may not issue user certificates (admin only)"),
        )),
        _ => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{who:?} may not use the raw store or change membership (admin only)"),
        )),
    }
}

/// A metrics report is kept only from the node it is about (NodeRestriction).
pub fn may_report(who: &Identity, node: &str) -> Result<(), ApiError> {
    match who {
        Identity::Node(name) if name == node => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{who:?} may report metrics of its own node only, not of {node:?}"),
        )),
    }
}

pub(crate) async fn reply(send: &mut quinn::SendStream, r: &Result<ApiResponse, ApiError>) {
    if write_frame(send, r).await.is_ok() {
        let _ = send.finish();
    }
}

/// How long a stopping master lets the requests in flight finish.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves one client connection until it closes, or until `stop` turns true:
/// then it takes no new request, ends its watches (their clients resume on
/// another master) and gives the requests in flight up to [`DRAIN`] to finish.
pub async fn serve(
    api: Addr<ApiServerActor>,
    store: Store,
    join: Arc<JoinContext>,
    conn: quinn::Connection,
    who: Identity,
    max_frame: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut streams = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = conn.accept_bi() => a,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let Ok((mut send, mut recv)) = accepted else {
            break;
        };
        while streams.try_join_next().is_some() {}
        let (api, store, join) = (api.clone(), store.clone(), join.clone());
        let who = who.clone();
        let conn = conn.clone();
        let stop = stop.clone();
        // Boxed: the task holds a pointer, so spawning and finishing it does not
        // copy the whole future (tokio moves a task's future in and out of its cell).
        streams.spawn(Box::pin(async move {
            let req = match read_frame::<_, ApiRequest>(&mut recv, max_frame).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    let err =
                        ApiError::new(ErrorCode::BadRequest, format!("bad request frame: {e}"));
                    return reply(&mut send, &Err(err)).await;
                }
            };
            if let Err(e) = authorize(&who, &req) {
                return reply(&mut send, &Err(e)).await;
            }
            // `ferry --as`: the impersonation checked as over HTTPS, then the
            // object request runs as that user.
            let (who, req) = match req {
                ApiRequest::ObjectAs { as_, req } => match acting_as(&api, who, &as_, *req).await {
                    Ok(pair) => pair,
                    Err(Refused::Api(e)) => return reply(&mut send, &Err(e)).await,
                    Err(Refused::Status {
                        watch: true,
                        status,
                    }) => {
                        let ev = ObjectEvent {
                            kind: "ERROR".into(),
                            revision: 0,
                            object: status.response().body,
                        };
                        return last_frame(&mut send, &Ok::<_, ApiError>(ev)).await;
                    }
                    Err(Refused::Status { status, .. }) => {
                        return reply(&mut send, &Ok(ApiResponse::Object(status.response()))).await
                    }
                },
                req => (who, req),
            };
            match &req {
                ApiRequest::Watch(w) => {
                    return Box::pin(stream_watch(&store, w, &mut send, stop)).await
                }
                ApiRequest::Snapshot { local } => {
                    return Box::pin(stream_snapshot(&store, *local, &mut send)).await
                }
                ApiRequest::Object(o) if o.verb == Verb::Watch => {
                    return Box::pin(stream_object_watch(&api, &who, o, &mut send, stop)).await
                }
                ApiRequest::NodeTunnel => {
                    let Identity::Node(name) = &who else {
                        let e = ApiError::new(ErrorCode::Forbidden, "only nodes offer tunnels");
                        return reply(&mut send, &Err(e)).await;
                    };
                    reply(&mut send, &Ok(ApiResponse::TunnelOpen)).await;
                    join.tunnels.hold(name, conn, stop).await;
                    return;
                }
                ApiRequest::ReportMetrics(r) => {
                    let resp = may_report(&who, &r.node).map(|()| {
                        join.metrics.put((**r).clone(), std::time::Instant::now());
                        ApiResponse::Reported
                    });
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::PodExec(_) => {
                    return Box::pin(crate::tunnel::stream_exec(
                        &store,
                        &join.tunnels,
                        &req,
                        &mut send,
                        &mut recv,
                    ))
                    .await
                }
                ApiRequest::PodPortForward(_) => {
                    return Box::pin(crate::tunnel::stream_port_forward(
                        &store,
                        &join.tunnels,
                        &req,
                        &mut send,
                        &mut recv,
                    ))
                    .await
                }
                ApiRequest::PodLogs(_) => {
                    return Box::pin(crate::tunnel::stream_logs(
                        &store,
                        &join.tunnels,
                        &req,
                        &mut send,
                    ))
                    .await
                }
                ApiRequest::IssueUserCert {
                    csr,
                    name,
                    groups,
                    lifetime_secs,
                } => {
                    let resp = crate::join::issue_user(
                        &join.ca.ca(),
                        &join.ca.trust(),
                        csr,
                        name,
                        groups,
                        *lifetime_secs,
                    );
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::CaRotate { step } => {
                    let resp = crate::master::ca::rotate(&store, &join.ca, step).await;
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::CaStatus => {
                    let resp = crate::master::ca::status(&store).await;
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::ClusterTrust(report) => {
                    let resp = match &who {
                        Identity::Node(name) => {
                            crate::master::ca::record(&store, &format!("node-{name}"), report)
                                .await
                                .map(|()| ApiResponse::ClusterTrust {
                                    trust: join.ca.trust(),
                                    signing_ca: join.ca.ca().pair().cert_pem.clone(),
                                })
                        }
                        _ => Err(ApiError::new(
                            ErrorCode::Forbidden,
                            format!("{who:?} is not a node: only nodes report their certificates"),
                        )),
                    };
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::RenewNodeCert { csr, lifetime_secs } => {
                    let resp = match &who {
                        Identity::Node(name) => crate::join::issue(
                            &store,
                            &join.ca.ca(),
                            &join.ca.trust(),
                            csr,
                            name,
                            *lifetime_secs,
                        )
                        .await
                        .map(|c| ApiResponse::NodeCert(Box::new(c))),
                        _ => Err(ApiError::new(
                            ErrorCode::Forbidden,
                            format!("{who:?} is not a node: only nodes renew node certificates"),
                        )),
                    };
                    return reply(&mut send, &resp).await;
                }
                ApiRequest::Object(o) | ApiRequest::ObjectOnce { req: o, .. } => {
                    let once = match &req {
                        ApiRequest::ObjectOnce { id, attempt, .. } => Some((*id, *attempt)),
                        _ => None,
                    };
                    let msg = Handle {
                        who: who.clone(),
                        req: (**o).clone(),
                        once,
                    };
                    let resp = api
                        .send(msg)
                        .await
                        .unwrap_or_else(|e| Err(actor_gone(e)))
                        .map(ApiResponse::Object);
                    return reply(&mut send, &resp).await;
                }
                _ => {}
            }
            let resp = handle(&store, req).await;
            reply(&mut send, &resp).await;
        }));
    }
    if *stop.borrow() {
        // Stopping: the requests in flight may finish (watches end at once).
        let drained = async { while streams.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN, drained).await;
    }
    // The connection is gone, or the master stops: end its requests and watches
    // (they hold the store).
    streams.shutdown().await;
}

/// Why an [`ApiRequest::ObjectAs`] does not run.
enum Refused {
    /// Not an object request, or the API server is gone.
    Api(ApiError),
    /// Kubernetes' answer (a 403 for an impersonation not allowed), as an
    /// object request's `Status` — or a watch's ERROR event.
    Status {
        watch: bool,
        status: ferry_api::object::Status,
    },
}

/// The identity an [`ApiRequest::ObjectAs`] runs as, and its object request:
/// the `Impersonate-*` rules and `impersonate` checks of the HTTPS front end.
async fn acting_as(
    api: &Addr<ApiServerActor>,
    who: Identity,
    as_: &ferry_api::proto::Impersonate,
    req: ApiRequest,
) -> Result<(Identity, ApiRequest), Refused> {
    let watch = match &req {
        ApiRequest::Object(o) => o.verb == Verb::Watch,
        ApiRequest::ObjectOnce { .. } => false,
        _ => {
            return Err(Refused::Api(ApiError::new(
                ErrorCode::BadRequest,
                "ObjectAs carries an object request (Object or ObjectOnce) only",
            )))
        }
    };
    let headers = as_.headers();
    let imp = Impersonation::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|status| Refused::Status { watch, status })?;
    let Some(imp) = imp else {
        return Ok((who, req));
    };
    match api.send(Impersonate { who, imp }).await {
        Ok(Ok(w)) => Ok((w, req)),
        Ok(Err(status)) => Err(Refused::Status { watch, status }),
        Err(e) => Err(Refused::Api(actor_gone(e))),
    }
}

/// Resolves once the master stops.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn handle(store: &Store, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    Ok(match req {
        ApiRequest::Write(w) => ApiResponse::Write(store.write(w).await?),
        ApiRequest::WriteOnce { id, write } => {
            ApiResponse::Write(store.write_once(id, write).await?)
        }
        ApiRequest::Get { key, consistency } => {
            let (kv, revision) = store.get(&key, consistency).await?;
            ApiResponse::Get { kv, revision }
        }
        ApiRequest::Range(r) => ApiResponse::Range(store.range(&r).await?),
        ApiRequest::Status => ApiResponse::Status(store.status().await?),
        ApiRequest::RemoveMember { id, force } => {
            store.remove_member(id, force).await?;
            ApiResponse::Removed
        }
        ApiRequest::StatusHealth => {
            ApiResponse::StatusHealth(Box::new(store.status_health().await?))
        }
        ApiRequest::Version => ApiResponse::Version(ferry_api::proto::MasterVersion {
            binary: ferry_api::binary_version(),
            format: store.format_version(),
        }),
        ApiRequest::ReplaceMember { dead, with, force } => ApiResponse::Replaced {
            id: store.replace_member(dead, with, force).await?,
        },
        ApiRequest::Watch(_)
        | ApiRequest::Join(_)
        | ApiRequest::NodeDiscover { .. }
        | ApiRequest::NodeJoin(_)
        | ApiRequest::NodeTunnel
        | ApiRequest::PodLogs(_)
        | ApiRequest::PodExec(_)
        | ApiRequest::PodPortForward(_)
        | ApiRequest::ReportMetrics(_)
        | ApiRequest::RenewNodeCert { .. }
        | ApiRequest::IssueUserCert { .. }
        | ApiRequest::Object(_)
        | ApiRequest::ObjectOnce { .. }
        | ApiRequest::ObjectAs { .. }
        | ApiRequest::CaRotate { .. }
        | ApiRequest::CaStatus
        | ApiRequest::ClusterTrust(_)
        | ApiRequest::Snapshot { .. } => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "watches and snapshots are streamed, and joins go to the ferry-join/1 ALPN",
            ))
        }
    })
}

async fn stream_watch(
    store: &Store,
    req: &ferry_api::proto::WatchRequest,
    send: &mut quinn::SendStream,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let mut watch = match store.watch(req) {
        Ok(w) => w,
        Err(e) => return last_frame(send, &Err::<ferry_api::kv::WatchItem, _>(e)).await,
    };
    loop {
        // A client that goes away stops the stream even when no events flow.
        let item = tokio::select! {
            item = watch.next() => item,
            _ = send.stopped() => return,
            // The master stops: the client resumes the watch on another master.
            _ = &mut stop => return,
        };
        let failed = item.is_err();
        if write_frame(send, &item).await.is_err() || failed {
            let _ = send.finish();
            return;
        }
    }
}

/// Streams an object watch: `Result<ObjectEvent, ApiError>` frames until the
/// client goes away, the watch ends with an ERROR event, or the master fails.
async fn stream_object_watch(
    api: &Addr<ApiServerActor>,
    who: &Identity,
    req: &ObjectRequest,
    send: &mut quinn::SendStream,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let msg = StartWatch {
        who: who.clone(),
        req: req.clone(),
    };
    let started = api
        .send(msg)
        .await
        .unwrap_or_else(|e| Err(Failure::Api(actor_gone(e))));
    let mut watch = match started {
        Ok(w) => w,
        Err(Failure::Status(s)) => {
            let ev = ObjectEvent {
                kind: "ERROR".into(),
                revision: 0,
                object: s.response().body,
            };
            return last_frame(send, &Ok::<_, ApiError>(ev)).await;
        }
        Err(Failure::Api(e)) => return last_frame(send, &Err::<ObjectEvent, _>(e)).await,
    };
    loop {
        let item = tokio::select! {
            item = watch.next() => item,
            _ = send.stopped() => return,
            // The master stops: the client resumes the watch on another master.
            _ = &mut stop => return,
        };
        let last = item.as_ref().map_or(true, |e| e.kind == "ERROR");
        if write_frame(send, &item).await.is_err() || last {
            let _ = send.finish();
            return;
        }
    }
}

/// Writes a stream's final frame and ends the stream.
/// Bytes of snapshot file per frame.
const SNAPSHOT_CHUNK: usize = 1024 * 1024;

/// Streams a snapshot holding everything committed so far (`ferry snapshot save`).
async fn stream_snapshot(store: &Store, local: bool, send: &mut quinn::SendStream) {
    use tokio::io::AsyncReadExt;
    let fail = |e: String| Err::<SnapshotPart, _>(ApiError::new(ErrorCode::Internal, e));
    let (file, revision) = match store.backup(local).await {
        Ok(f) => f,
        Err(e) => return last_frame(send, &Err::<SnapshotPart, _>(e)).await,
    };
    let bytes = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return last_frame(send, &fail(format!("snapshot file: {e}"))).await,
    };
    let begin = Ok::<_, ApiError>(SnapshotPart::Begin { revision, bytes });
    if write_frame(send, &begin).await.is_err() {
        return;
    }
    let mut file = tokio::fs::File::from_std(file);
    let mut buf = vec![0u8; SNAPSHOT_CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return last_frame(send, &fail(format!("reading the snapshot: {e}"))).await,
        };
        sent += n as u64;
        let chunk = Ok::<_, ApiError>(SnapshotPart::Chunk(buf[..n].to_vec()));
        if write_frame(send, &chunk).await.is_err() {
            return;
        }
    }
    if sent != bytes {
        return last_frame(
            send,
            &fail(format!("snapshot file ended at {sent} of {bytes} bytes")),
        )
        .await;
    }
    last_frame(send, &Ok::<_, ApiError>(SnapshotPart::End)).await;
}

async fn last_frame<T: serde::Serialize>(send: &mut quinn::SendStream, item: &T) {
    let _ = write_frame(send, item).await;
    let _ = send.finish();
}

/// The API server actor did not answer (it is restarting or stopped).
fn actor_gone(e: actix::MailboxError) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("the API server actor is unavailable ({e}); try another master"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_report_their_own_metrics_only() {
        let cases = [
            (Identity::Node("n1".into()), "n1", true),
            (Identity::Node("n1".into()), "n2", false),
            (Identity::Admin, "n1", false),
            (Identity::Master(1), "n1", false),
        ];
        for (who, node, ok) in cases {
            let r = may_report(&who, node);
            assert_eq!(r.is_ok(), ok, "{who:?} {node}");
            if let Err(e) = r {
                assert_eq!(e.code, ErrorCode::Forbidden);
            }
        }
        let report = ApiRequest::ReportMetrics(Box::new(ferry_api::metrics::NodeReport {
            node: "n1".into(),
            labels: Default::default(),
            timestamp: String::new(),
            window_ms: 10_000,
            cpu_nanocores: 0,
            memory_bytes: 0,
            pods: vec![],
        }));
        assert!(authorize(&Identity::Node("n1".into()), &report).is_ok());
        let user = Identity::User {
            name: "alice".into(),
            groups: vec![],
            uid: String::new(),
            extra: Default::default(),
        };
        assert!(authorize(&user, &report).is_err(), "users send no reports");
    }
    use ferry_api::kv::{Expect, Write, WriteOp};
    use ferry_api::proto::{Consistency, JoinRequest, RangeRequest, WatchRequest};

    /// Every raw-store, membership and backup request, and the two anyone may make.
    fn requests() -> Vec<(ApiRequest, bool)> {
        let put = WriteOp::Put {
            key: "/registry/secrets/default/x".into(),
            value: b"v".to_vec(),
            expect: Expect::Any,
        };
        vec![
            (ApiRequest::Write(Write::Op(put.clone())), false),
            (ApiRequest::Write(Write::Txn(vec![put])), false),
            (
                ApiRequest::Get {
                    key: "/registry/secrets/default/x".into(),
                    consistency: Consistency::Linearizable,
                },
                false,
            ),
            (
                ApiRequest::Range(RangeRequest {
                    prefix: "/".into(),
                    start_after: None,
                    limit: 0,
                    consistency: Consistency::Local,
                }),
                false,
            ),
            (
                ApiRequest::Watch(WatchRequest {
                    prefix: "/".into(),
                    after_revision: None,
                    bookmark_ms: 0,
                }),
                false,
            ),
            (ApiRequest::RemoveMember { id: 2, force: true }, false),
            (
                ApiRequest::ReplaceMember {
                    dead: 2,
                    with: "127.0.0.1:1".into(),
                    force: false,
                },
                false,
            ),
            (ApiRequest::StatusHealth, true),
            (
                ApiRequest::CaRotate {
                    step: "trust".into(),
                },
                false,
            ),
            (ApiRequest::CaStatus, false),
            (ApiRequest::Snapshot { local: false }, false),
            (ApiRequest::Snapshot { local: true }, false),
            (
                ApiRequest::Join(JoinRequest {
                    secret: String::new(),
                    addr: "127.0.0.1:1".into(),
                    force: false,
                    id: None,
                }),
                false,
            ),
            (ApiRequest::Status, true),
            (
                ApiRequest::Object(Box::new(ObjectRequest::new(
                    Verb::Get,
                    "pods",
                    Some("default"),
                    Some("p"),
                ))),
                true,
            ),
        ]
    }

    #[test]
    fn the_raw_store_membership_and_backups_are_admin_only() {
        for who in [Identity::Admin, Identity::Master(3)] {
            for (req, _) in requests() {
                assert!(authorize(&who, &req).is_ok(), "{who:?} refused {req:?}");
            }
        }
        let others = [
            Identity::Node("n1".into()),
            Identity::User {
                name: "alice".into(),
                groups: vec!["system:masters".into()],
                uid: String::new(),
                extra: Default::default(),
            },
        ];
        for who in others {
            for (req, anyone) in requests() {
                match authorize(&who, &req) {
                    Ok(()) => assert!(anyone, "{who:?} allowed {req:?}"),
                    Err(e) => {
                        assert!(!anyone, "{who:?} refused {req:?}: {e:?}");
                        assert_eq!(e.code, ErrorCode::Forbidden, "{req:?}");
                        assert!(e.message.contains("admin only"), "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn only_nodes_renew_node_certificates() {
        let renew = ApiRequest::RenewNodeCert {
            csr: String::new(),
            lifetime_secs: 3600,
        };
        assert!(authorize(&Identity::Node("n1".into()), &renew).is_ok());
        let trust = ApiRequest::ClusterTrust(ferry_api::carotation::MemberTls {
            trusts: vec![],
            issuer: String::new(),
        });
        assert!(authorize(&Identity::Node("n1".into()), &trust).is_ok());
        let user = Identity::User {
            name: "alice".into(),
            groups: vec![],
            uid: String::new(),
            extra: Default::default(),
        };
        for req in [renew, trust] {
            assert_eq!(
                authorize(&user, &req).unwrap_err().code,
                ErrorCode::Forbidden
            );
        }
    }
}
