//! Request handling: authenticate, route, run through the pipeline, encode.

use super::content::{body_json, negotiate, Answer};
use super::route::{not_found_path, route, ObjectRoute, Route};
use super::MAX_BODY_BYTES;
use crate::apiserver::actor::{ApiServerActor, Authenticate, Handle, Impersonate, StartWatch};
use crate::apiserver::impersonate::Impersonation;
use crate::apiserver::watch::ObjectWatch;
use crate::apiserver::Failure;
use actix::Addr;
use actix_web::http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use ferry_api::discovery::{self, DiscoveryFormat};
use ferry_api::object::{ObjectEvent, ObjectRequest, ObjectResponse, Status, Verb};
use ferry_api::printers::{partial_object_metadata, table_json, IncludeObject};
use ferry_api::proto::{ApiError, ErrorCode};
use ferry_api::resources::Resource;
use ferry_api::tls::Identity;
use ferry_raft::Store;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// What every handler shares.
pub(super) struct Ctx {
    pub api: Addr<ApiServerActor>,
    pub store: Store,
    /// This front end's address, for `/api`'s `serverAddressByClientCIDRs`.
    pub address: String,
    /// Node tunnels held by this master (logs, exec).
    pub tunnels: crate::tunnel::Tunnels,
    /// This master's certificate and trusted CAs: it is a client of the
    /// others with them (relaying logs and exec to the master holding a
    /// node's tunnel), see [`Ctx::relay`].
    pub live: std::sync::Arc<ferry_api::tls::Live>,
}

impl Ctx {
    /// This master as a client of the others, with its current certificate.
    pub fn relay(&self) -> ferry_config::ClientConfig {
        let cert = self.live.cert();
        ferry_config::ClientConfig {
            masters: Vec::new(),
            ca_cert: self.live.trust(),
            client_cert: cert.cert_pem,
            client_key: cert.key_pem,
            timeout_ms: 10_000,
            api_server: None,
        }
    }
}

const JSON: &str = "application/json";

/// Every request enters here.
pub(super) async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    ctx: web::Data<Ctx>,
) -> HttpResponse {
    let who = req.conn_data::<Identity>().cloned();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let accept = header(ACCEPT);
    let content_type = header(CONTENT_TYPE);
    let route = match route(
        req.method().as_str(),
        req.path(),
        req.query_string(),
        content_type,
    ) {
        Ok(r) => r,
        Err(s) => return status(&s),
    };
    let public = matches!(route, Route::Version | Route::Health { .. });
    // A client certificate first, else a bearer token (a service account's).
    let bearer = header(AUTHORIZATION).and_then(bearer_token);
    let who = match (who, bearer) {
        (None, Some(token)) => {
            let token = token.to_string();
            match ctx.api.send(Authenticate { token }).await {
                Ok(Ok(w)) => Some(w),
                Ok(Err(why)) => {
                    tracing::debug!("bearer token refused: {why}");
                    return status(&Status::new(401, "Unauthorized", "Unauthorized"));
                }
                Err(_) => {
                    return status(&Status::new(
                        503,
                        "ServiceUnavailable",
                        "the API server is restarting",
                    ))
                }
            }
        }
        (w, _) => w,
    };
    let who = match who {
        Some(w) => w,
        None if public => Identity::User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            uid: String::new(),
            extra: Default::default(),
        },
        None => {
            return status(&Status::new(
                401,
                "Unauthorized",
                "Unauthorized: present a client certificate signed by the cluster CA",
            ))
        }
    };
    // Impersonation (`kubectl --as`): checked, then the request runs as that user.
    let headers = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
    let who = match Impersonation::from_headers(headers) {
        Err(s) => return status(&s),
        Ok(None) => who,
        Ok(Some(imp)) => match ctx.api.send(Impersonate { who, imp }).await {
            Ok(Ok(w)) => w,
            Ok(Err(s)) => return status(&s),
            Err(_) => {
                return status(&Status::new(
                    503,
                    "ServiceUnavailable",
                    "the API server is restarting",
                ))
            }
        },
    };
    // (actix-http sends no body in answer to HEAD.)
    match route {
        Route::Version => json_answer(&discovery::version()),
        Route::Health { which, verbose } => health(&ctx.store, &which, verbose),
        Route::CoreVersions | Route::Groups => {
            let legacy = matches!(route, Route::CoreVersions);
            let r = match discovery::discovery_format(accept) {
                DiscoveryFormat::AggregatedV2 => typed(
                    200,
                    discovery::CONTENT_TYPE_DISCOVERY_V2,
                    &discovery::aggregated_discovery(legacy),
                ),
                DiscoveryFormat::AggregatedV2Beta1 => typed(
                    200,
                    discovery::CONTENT_TYPE_DISCOVERY_V2BETA1,
                    &discovery::aggregated_discovery_v2beta1(legacy),
                ),
                DiscoveryFormat::Unaggregated if legacy => {
                    json_answer(&discovery::api_versions(&ctx.address))
                }
                DiscoveryFormat::Unaggregated => json_answer(&discovery::api_group_list()),
            };
            vary_accept(r)
        }
        Route::Group(g) => match discovery::api_group(&g) {
            Some(group) => json_answer(&group),
            None => status(&not_found_path()),
        },
        Route::Resources { group, version } => {
            match discovery::api_resource_list(&group, &version) {
                Some(doc) => json_answer(&doc),
                None => status(&not_found_path()),
            }
        }
        // kubectl 1.27 and 1.28 fetch v2 as protobuf before `explain`, `diff`
        // and validation, and fail when it errors; an empty document lets them
        // go on to v3 or their built-in types.
        Route::OpenApiV2 if accept.is_some_and(|a| a.contains("protobuf")) => raw(
            200,
            discovery::CONTENT_TYPE_OPENAPI_V2_PROTOBUF,
            discovery::openapi_v2_protobuf(),
        ),
        Route::OpenApiV2 => json_answer(&discovery::openapi_v2()),
        Route::OpenApiV3(None) => json_answer(&discovery::openapi_v3_root()),
        Route::OpenApiV3(Some(path)) => match discovery::openapi_v3_bytes(&path) {
            Some(doc) => {
                let mut r = raw(200, JSON, doc.to_vec());
                if let Some(hash) = discovery::openapi_v3_hash(&path) {
                    let h = r.headers_mut();
                    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                        h.insert(actix_web::http::header::ETAG, v);
                    }
                    h.insert(
                        actix_web::http::header::CACHE_CONTROL,
                        HeaderValue::from_static("public, immutable"),
                    );
                }
                r
            }
            None => status(&not_found_path()),
        },
        Route::Object(mut o) => {
            // Writes are tracked in managedFields under their field manager:
            // the one named, else the client's user agent, as Kubernetes does.
            if !o.req.verb.is_read() && o.req.field_manager.is_none() {
                let agent = req
                    .headers()
                    .get(actix_web::http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                o.req.field_manager = Some(ferry_api::patch::ssa::default_manager(agent));
            }
            object(&ctx, who, *o, accept, content_type, payload).await
        }
        Route::Pod(p) => super::pods::serve(&ctx, who, p, &req, payload).await,
        Route::Proxy(p) => super::proxy::serve(&ctx, who, p, &req, payload).await,
    }
}

/// `/healthz`, `/livez`, `/readyz`: live while the process serves; ready while
/// this master knows a Raft leader (it can serve linearizable requests).
fn health(store: &Store, which: &str, verbose: bool) -> HttpResponse {
    let leader = store.local_status().leader.is_some();
    let ready = which != "readyz" || leader;
    let mut checks = vec![("ping", true), ("log", true)];
    if which == "readyz" {
        checks.push(("raft-leader", leader));
    }
    let code = if ready { 200 } else { 503 };
    let body = if verbose {
        let mut s = String::new();
        for (name, ok) in &checks {
            s.push_str(&format!(
                "[{}]{name} {}\n",
                if *ok { "+" } else { "-" },
                if *ok {
                    "ok"
                } else {
                    "failed: no Raft leader known"
                }
            ));
        }
        s.push_str(&format!(
            "{which} check {}\n",
            if ready { "passed" } else { "failed" }
        ));
        s
    } else if ready {
        "ok".to_string()
    } else {
        "[-]raft-leader failed: no Raft leader known\nreadyz check failed\n".to_string()
    };
    HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

async fn object(
    ctx: &Ctx,
    who: Identity,
    mut o: ObjectRoute,
    accept: Option<&str>,
    content_type: Option<&str>,
    payload: web::Payload,
) -> HttpResponse {
    let answer = match negotiate(accept) {
        Ok(a) => a,
        Err(s) => return status(&s),
    };
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(s) => return status(&s),
    };
    o.req.body = match body_json(content_type, &body) {
        Ok(b) => b,
        Err(s) => return status(&s),
    };
    if o.req.verb == Verb::Delete && !o.delete_query.is_empty() {
        o.req.body = merge_delete_options(&o.delete_query, &o.req.body);
    }
    if o.hpa_v1 && matches!(o.req.verb, Verb::Create | Verb::Update) {
        o.req.body = super::hpa_v1::to_v2(&o.req.body);
    }
    let include: IncludeObject = match o.include_object.as_deref().unwrap_or("").parse() {
        Ok(i) => i,
        Err(message) => return status(&Status::bad_request(message)),
    };
    if o.req.verb == Verb::Watch {
        return watch(ctx, who, o, answer, include).await;
    }
    if o.delete_collection {
        return delete_collection(ctx, &who, o.res, o.req, answer).await;
    }
    match run(ctx, &who, o.req).await {
        Ok(mut r) if r.code < 400 => {
            if o.hpa_v1 && answer != Answer::Table {
                r.body = super::hpa_v1::to_v1(&r.body);
            }
            warn(encode(o.res, &r, answer, include), &r.warnings)
        }
        Ok(r) => raw(r.code, JSON, r.body),
        Err(s) => status(&s),
    }
}

/// One request through the pipeline, as the QUIC front end sends it. HTTP
/// clients do not fail over between masters, so a request this master could
/// not serve for want of a leader or quorum (a failover under way) is tried
/// again here for a few seconds, under one request id so a write still
/// applies once, before it is answered 503.
pub(super) async fn run(
    ctx: &Ctx,
    who: &Identity,
    req: ObjectRequest,
) -> Result<ObjectResponse, Status> {
    let id = ferry_api::kv::RequestId::random();
    let deadline = tokio::time::Instant::now() + UNAVAILABLE_RETRY;
    let mut pause = std::time::Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        let msg = Handle {
            who: who.clone(),
            req: req.clone(),
            once: Some((id, attempt)),
        };
        let e = match ctx.api.send(msg).await {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) if e.code == ErrorCode::Unavailable => e.message,
            Ok(Err(e)) => return Err(api_status(e)),
            Err(e) => format!("the API server is restarting: {e}"),
        };
        if tokio::time::Instant::now() + pause > deadline {
            return Err(Status::new(503, "ServiceUnavailable", e));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
        attempt += 1;
    }
}

/// How long a request waits out a failover before it is answered 503.
const UNAVAILABLE_RETRY: std::time::Duration = std::time::Duration::from_secs(8);

/// A transport condition as the HTTP status Kubernetes uses for it.
fn api_status(e: ApiError) -> Status {
    match e.code {
        ErrorCode::Unavailable => Status::new(503, "ServiceUnavailable", e.message),
        ErrorCode::Indeterminate => Status::new(
            504,
            "Timeout",
            format!(
                "the outcome of the request is unknown; it may still be applied: {}",
                e.message
            ),
        ),
        _ => match Failure::from(e) {
            Failure::Status(s) => s,
            Failure::Api(e) => Status::new(503, "ServiceUnavailable", e.message),
        },
    }
}

/// Checks `who` may make `check` (a subresource's verb, for the pod
/// streams and proxies): Err is the answer to send.
pub(super) async fn authorize(
    ctx: &Ctx,
    who: &Identity,
    check: ObjectRequest,
) -> Result<(), HttpResponse> {
    let asked = crate::apiserver::actor::Authorize {
        who: who.clone(),
        req: check,
    };
    match ctx.api.send(asked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(s)) => Err(status(&s)),
        Err(_) => Err(status(&Status::new(
            503,
            "ServiceUnavailable",
            "the API server is restarting",
        ))),
    }
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] with 413.
pub(super) async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, Status> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Status::bad_request(format!("reading the request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Status::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `DeleteOptions` from the query under those of the body (the body wins).
fn merge_delete_options(query: &Map<String, Value>, body: &[u8]) -> Vec<u8> {
    let mut opts = query.clone();
    if let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) {
        opts.extend(b);
    }
    opts.entry("kind").or_insert(json!("DeleteOptions"));
    opts.entry("apiVersion").or_insert(json!("v1"));
    serde_json::to_vec(&Value::Object(opts)).unwrap_or_default()
}

/// `DELETE` on a collection: every object the selectors match (read at one
/// revision, page by page), each deleted through the pipeline with the
/// request's options. Answers the list of what was deleted.
async fn delete_collection(
    ctx: &Ctx,
    who: &Identity,
    res: &'static Resource,
    req: ObjectRequest,
    answer: Answer,
) -> HttpResponse {
    let mut list = ObjectRequest::new(Verb::List, &req.resource, req.namespace.as_deref(), None);
    list.list = req.list.clone();
    list.list.limit = 500;
    let mut deleted = Vec::new();
    loop {
        let page = match run(ctx, who, list.clone()).await {
            Ok(r) if r.code < 400 => r,
            Ok(r) => return raw(r.code, JSON, r.body),
            Err(s) => return status(&s),
        };
        let page: Value = serde_json::from_slice(&page.body).unwrap_or(Value::Null);
        for item in page["items"].as_array().into_iter().flatten() {
            let ns = item["metadata"]["namespace"].as_str();
            let Some(name) = item["metadata"]["name"].as_str() else {
                continue;
            };
            let mut del = ObjectRequest::new(Verb::Delete, &req.resource, ns, Some(name));
            del.body = req.body.clone();
            del.dry_run = req.dry_run;
            match run(ctx, who, del).await {
                Ok(r) if r.code < 400 => deleted.push(item.clone()),
                // Deleted by someone else meanwhile: nothing to do.
                Ok(r) if r.code == 404 => {}
                Ok(r) => return raw(r.code, JSON, r.body),
                Err(s) => return status(&s),
            }
        }
        match page["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            Some(c) => list.list.continue_token = Some(c.to_string()),
            None => break,
        }
    }
    let out = json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {},
        "items": deleted,
    });
    encode(
        res,
        &ObjectResponse::ok(200, &out),
        answer,
        IncludeObject::Metadata,
    )
}

/// Adds one `Warning: 299 - "..."` header per warning, as Kubernetes does.
fn warn(mut resp: HttpResponse, warnings: &[String]) -> HttpResponse {
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut()
                .append(actix_web::http::header::WARNING, v);
        }
    }
    resp
}

/// A 2xx pipeline answer in the representation the client asked for.
fn encode(
    res: &Resource,
    r: &ObjectResponse,
    answer: Answer,
    include: IncludeObject,
) -> HttpResponse {
    match answer {
        Answer::Json => raw(r.code, JSON, r.body.clone()),
        Answer::Yaml => match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) => raw(
                r.code,
                "application/yaml",
                serde_yaml::to_string(&v).unwrap_or_default().into_bytes(),
            ),
            Err(_) => raw(r.code, JSON, r.body.clone()),
        },
        Answer::Table => {
            let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
                return raw(r.code, JSON, r.body.clone());
            };
            typed(r.code, JSON, &as_table(res, &v, include))
        }
        Answer::Metadata => {
            let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
                return raw(r.code, JSON, r.body.clone());
            };
            typed(r.code, JSON, &as_metadata(&v))
        }
    }
}

/// A list or one object as a `Table` (kubectl get).
fn as_table(res: &Resource, v: &Value, include: IncludeObject) -> Value {
    let now = ferry_api::clock::now();
    match v.get("items").and_then(Value::as_array) {
        Some(items) => {
            let mut t = table_json(res, items, include, now);
            t["metadata"] = v.get("metadata").cloned().unwrap_or_else(|| json!({}));
            t
        }
        None => {
            let mut t = table_json(res, std::slice::from_ref(v), include, now);
            if let Some(rv) = v.pointer("/metadata/resourceVersion") {
                t["metadata"] = json!({ "resourceVersion": rv });
            }
            t
        }
    }
}

/// A list or one object as `PartialObjectMetadata(List)`.
fn as_metadata(v: &Value) -> Value {
    match v.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": items.iter().map(partial_object_metadata).collect::<Vec<_>>(),
        }),
        None => partial_object_metadata(v),
    }
}

/// Streams a watch as Kubernetes does: one JSON event per line,
/// `{"type":...,"object":...}`, until the client goes away, the watch ends
/// with an ERROR event, `timeoutSeconds` pass (default 30-60 minutes, as
/// Kubernetes' `--min-request-timeout`), or the master stops.
async fn watch(
    ctx: &Ctx,
    who: Identity,
    o: ObjectRoute,
    answer: Answer,
    include: IncludeObject,
) -> HttpResponse {
    let msg = StartWatch { who, req: o.req };
    let started = match ctx.api.send(msg).await {
        Ok(r) => r,
        Err(e) => Err(Failure::Api(ApiError::new(
            ErrorCode::Unavailable,
            format!("the API server is restarting: {e}"),
        ))),
    };
    let w = match started {
        Ok(w) => w,
        Err(Failure::Status(s)) => return status(&s),
        Err(Failure::Api(e)) => return status(&api_status(e)),
    };
    let secs = o
        .timeout_secs
        .unwrap_or_else(|| 1800 + rand::random::<u64>() % 1800);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let res = o.res;
    let state = (w, false);
    let stream = futures_util::stream::unfold(
        state,
        move |(mut w, done): (ObjectWatch, bool)| async move {
            if done {
                return None;
            }
            let ev = match tokio::time::timeout_at(deadline, w.next()).await {
                Err(_) => return None,
                Ok(Ok(ev)) => ev,
                // The store watch failed (this master stopped or lost its state):
                // end the stream; the client watches again from its last revision.
                Ok(Err(e)) if e.code != ErrorCode::TooOld => return None,
                Ok(Err(e)) => ObjectEvent {
                    kind: "ERROR".into(),
                    revision: 0,
                    object: Status::gone(e.message).response().body,
                },
            };
            let last = ev.kind == "ERROR";
            let line = event_line(res, &ev, answer, include);
            Some((Ok::<_, std::convert::Infallible>(line), (w, last)))
        },
    );
    HttpResponse::Ok()
        .content_type(JSON)
        .insert_header(("Cache-Control", "no-cache, private"))
        .streaming(stream)
}

/// One watch event as a line of the stream.
fn event_line(res: &Resource, ev: &ObjectEvent, answer: Answer, include: IncludeObject) -> Bytes {
    let object: Value = serde_json::from_slice(&ev.object).unwrap_or(Value::Null);
    let object = match (answer, ev.kind.as_str()) {
        (Answer::Table, "ADDED" | "MODIFIED" | "DELETED") => as_table(res, &object, include),
        (Answer::Metadata, "ADDED" | "MODIFIED" | "DELETED") => as_metadata(&object),
        _ => object,
    };
    let mut line =
        serde_json::to_vec(&json!({ "type": ev.kind, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Discovery answers differ by Accept: caches must keep them apart.
fn vary_accept(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut().insert(
        actix_web::http::header::VARY,
        HeaderValue::from_static("Accept"),
    );
    r
}

fn json_answer(v: &Value) -> HttpResponse {
    typed(200, JSON, v)
}

fn typed(code: u16, content_type: &str, v: &Value) -> HttpResponse {
    raw(
        code,
        content_type,
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

pub(super) fn raw(code: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(content_type.to_string())
        .body(body)
}

/// A `Status` error answer.
pub(super) fn status(s: &Status) -> HttpResponse {
    let r = s.response();
    raw(r.code, JSON, r.body)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any
/// case, as Kubernetes' bearer-token authenticator reads it: the Python
/// client sends `bearer`).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn a_bearer_token_is_read_whatever_the_schemes_case() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
