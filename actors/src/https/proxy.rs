//! `pods/<name>/proxy/...` and `services/<name>/proxy/...`: the API server
//! as an HTTP proxy to a pod (`kubectl proxy`, `kubectl get --raw`,
//! `kubectl cluster-info`'s links). A Service's request goes to one of its
//! ready endpoints' pods; the connection to the pod's port is made by its
//! node (the tunnel's port-forward stream, as `kubectl port-forward`), so
//! any master reaches any pod, host-mode pods included.
//!
//! The request is sent as HTTP/1.0 with `Connection: close` (so the answer
//! is never chunked and ends with the connection), without the client's
//! credentials and hop-by-hop headers; the answer's head is parsed and its
//! body streamed back. Plain HTTP only: an `https:` target is refused.

use super::route::ProxyRoute;
use super::serve::{run, status, Ctx};
use crate::tunnel::open_pod_stream;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use ferry_api::frame::read_frame;
use ferry_api::object::{ObjectRequest, Status, Verb};
use ferry_api::proto::{ApiError, ApiRequest, PortForwardRequest};
use ferry_api::tls::Identity;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Largest response head read from a pod.
const MAX_HEAD: usize = 64 * 1024;

/// Headers never passed on (hop-by-hop, and the client's credentials).
const DROPPED: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn dropped(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    DROPPED.contains(&n.as_str()) || n.starts_with("impersonate-")
}

/// The verb a proxied request is authorized as (Kubernetes' mapping of
/// HTTP methods for `pods/proxy` and `services/proxy`).
fn verb(method: &str) -> Verb {
    match method {
        "POST" => Verb::Create,
        "PUT" => Verb::Update,
        "PATCH" => Verb::Patch(ferry_api::object::PatchType::Merge),
        "DELETE" => Verb::Delete,
        _ => Verb::Get,
    }
}

fn unavailable(message: impl Into<String>) -> HttpResponse {
    status(&Status::new(503, "ServiceUnavailable", message.into()))
}

/// Serves a proxy route.
pub(super) async fn serve(
    ctx: &web::Data<Ctx>,
    who: Identity,
    p: ProxyRoute,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let mut check = ObjectRequest::new(
        verb(req.method().as_str()),
        p.plural,
        Some(&p.namespace),
        Some(&p.name),
    );
    check.subresource = Some("proxy".into());
    if let Err(refused) = super::serve::authorize(ctx, &who, check).await {
        return refused;
    }
    if p.scheme.as_deref() == Some("https") {
        return status(&Status::bad_request(
            "ferry proxies plain HTTP only: an https: target is not served",
        ));
    }
    // Read as the API server itself: `get pods/proxy` is all Kubernetes
    // asks of the caller (not `get pods`, nor a list of EndpointSlices).
    let get = ObjectRequest::new(Verb::Get, p.plural, Some(&p.namespace), Some(&p.name));
    let object = match run(ctx, &Identity::Admin, get).await {
        Ok(r) if r.code < 400 => serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        Ok(r) => return super::serve::raw(r.code, "application/json", r.body),
        Err(s) => return status(&s),
    };
    let target = if p.plural == "pods" {
        match pod_port(&object, p.port.as_deref()) {
            Ok(port) => (p.name.clone(), port),
            Err(s) => return status(&s),
        }
    } else {
        let mut list = ObjectRequest::new(Verb::List, "endpointslices", Some(&p.namespace), None);
        list.list.label_selector = Some(format!("kubernetes.io/service-name={}", p.name));
        let slices = match run(ctx, &Identity::Admin, list).await {
            Ok(r) if r.code < 400 => {
                serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null)
            }
            Ok(r) => return super::serve::raw(r.code, "application/json", r.body),
            Err(s) => return status(&s),
        };
        match service_endpoint(&object, &slices, p.port.as_deref()) {
            Ok(t) => t,
            Err(s) => return status(&s),
        }
    };
    let body = match super::serve::read_body(payload).await {
        Ok(b) => b,
        Err(s) => return status(&s),
    };
    forward(ctx, &p, target, req, body).await
}

/// The pod's port a target names: a number, a container port's name, or
/// none (80, as Kubernetes' URL without a port).
fn pod_port(pod: &Value, port: Option<&str>) -> Result<u16, Status> {
    let Some(port) = port else { return Ok(80) };
    if let Ok(n) = port.parse::<u16>() {
        return if n == 0 {
            Err(Status::bad_request("port 0 is not a valid port"))
        } else {
            Ok(n)
        };
    }
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    containers
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == port)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            Status::bad_request(format!(
                "no container port named {port:?} in pod {}",
                pod.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ))
        })
}

/// A ready endpoint of the Service port the target names (by name or
/// number; none: the Service's only port, or its first): the pod behind
/// it and the port on that pod.
fn service_endpoint(
    svc: &Value,
    slices: &Value,
    port: Option<&str>,
) -> Result<(String, u16), Status> {
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = match port {
        None => ports.first(),
        Some(p) => ports.iter().find(|sp| {
            sp["name"] == p || sp["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(p)
        }),
    }
    .ok_or_else(|| {
        Status::new(
            503,
            "ServiceUnavailable",
            format!(
                "no service port {:?} found for service {name:?}",
                port.unwrap_or("")
            ),
        )
    })?;
    let port_name = chosen["name"].as_str().unwrap_or_default();
    for s in slices["items"].as_array().into_iter().flatten() {
        let Some(target) = s["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let ready = e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false);
            let pod = e
                .pointer("/targetRef")
                .filter(|r| r["kind"] == "Pod")
                .and_then(|r| r["name"].as_str());
            if let (true, Some(pod)) = (ready, pod) {
                return Ok((pod.to_string(), target));
            }
        }
    }
    Err(Status::new(
        503,
        "ServiceUnavailable",
        format!("no endpoints available for service {name:?}"),
    ))
}

/// The request line and headers sent to the pod.
fn request_head(method: &str, p: &ProxyRoute, req: &HttpRequest, host: &str, len: usize) -> String {
    let mut head = format!("{method} {}", p.path);
    if !p.query.is_empty() {
        head.push('?');
        head.push_str(&p.query);
    }
    head.push_str(" HTTP/1.0\r\n");
    head.push_str(&format!("Host: {host}\r\nConnection: close\r\n"));
    for (name, value) in req.headers() {
        if dropped(name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    if len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A parsed response head and the body bytes read with it.
struct Head {
    code: u16,
    headers: Vec<(String, Vec<u8>)>,
    rest: Vec<u8>,
}

/// Parses a response head from `buf`: None while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) => Ok(Some(Head {
            code: resp.code.unwrap_or(502),
            headers: resp
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
            rest: buf[n..].to_vec(),
        })),
        Err(e) => Err(format!("the pod's answer is not HTTP: {e}")),
    }
}

async fn forward(
    ctx: &web::Data<Ctx>,
    p: &ProxyRoute,
    (pod, port): (String, u16),
    req: &HttpRequest,
    body: Vec<u8>,
) -> HttpResponse {
    let open = ApiRequest::PodPortForward(PortForwardRequest {
        namespace: p.namespace.clone(),
        name: pod.clone(),
        port,
    });
    let mut s = match open_pod_stream(&ctx.store, &ctx.tunnels, &ctx.relay(), &open).await {
        Ok(s) => s,
        Err(e) => return unavailable(e.message),
    };
    match read_frame::<_, Result<(), ApiError>>(&mut s.from, 1 << 16).await {
        Ok(Some(Ok(()))) => {}
        Ok(Some(Err(e))) => {
            return unavailable(format!(
                "error trying to reach pod {pod} on port {port}: {}",
                e.message
            ))
        }
        Ok(None) | Err(_) => return unavailable(format!("the node of pod {pod} ended the stream")),
    }
    let head = request_head(
        req.method().as_str(),
        p,
        req,
        &format!("{pod}:{port}"),
        body.len(),
    );
    let sent = async {
        s.to.write_all(head.as_bytes()).await?;
        s.to.write_all(&body).await?;
        s.to.flush().await
    };
    if let Err(e) = sent.await {
        return unavailable(format!("error trying to reach pod {pod}: {e}"));
    }
    let mut buf = Vec::new();
    let head = loop {
        let mut chunk = vec![0u8; 16 * 1024];
        match s.from.read(&mut chunk).await {
            Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(None) => {
                return unavailable(format!("pod {pod} closed the connection without an answer"))
            }
            Err(e) => return unavailable(format!("error reading from pod {pod}: {e}")),
        }
        match parse_head(&buf) {
            Ok(Some(h)) => break h,
            Ok(None) if buf.len() < MAX_HEAD => continue,
            Ok(None) => return unavailable(format!("pod {pod}'s answer has a head over 64 KiB")),
            Err(e) => return unavailable(e),
        }
    };
    let mut out =
        HttpResponse::build(StatusCode::from_u16(head.code).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in &head.headers {
        if !dropped(name) {
            out.append_header((name.as_str(), value.as_slice()));
        }
    }
    let first = Bytes::from(head.rest);
    let rest = futures_util::stream::unfold(Some(s), |s| async move {
        let mut s = s?;
        let mut chunk = vec![0u8; 32 * 1024];
        match s.from.read(&mut chunk).await {
            Ok(Some(n)) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), Some(s)))
            }
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    let body = futures_util::stream::once(async move { Ok(first) }).chain(rest);
    out.streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pods_port_is_a_number_a_container_ports_name_or_80() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "a", "ports": [{"name": "http", "containerPort": 8080}]},
            {"name": "b", "ports": [{"name": "metrics", "containerPort": 9090}]}]}});
        assert_eq!(pod_port(&pod, None).unwrap(), 80);
        assert_eq!(pod_port(&pod, Some("8443")).unwrap(), 8443);
        assert_eq!(pod_port(&pod, Some("metrics")).unwrap(), 9090);
        let e = pod_port(&pod, Some("nope")).unwrap_err();
        assert!(
            e.message.contains("no container port named \"nope\""),
            "{}",
            e.message
        );
        assert!(pod_port(&pod, Some("0")).is_err());
    }

    #[test]
    fn a_services_request_goes_to_a_ready_endpoint_of_the_port_it_names() {
        let svc = json!({"metadata": {"name": "echo"}, "spec": {"ports": [
            {"name": "web", "port": 80}, {"name": "udp", "port": 9090, "protocol": "UDP"}]}});
        let slices = json!({"items": [{"ports": [{"name": "web", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.42.0.2"], "conditions": {"ready": false},
                 "targetRef": {"kind": "Pod", "name": "unready"}},
                {"addresses": ["10.42.0.3"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "good"}}]}]});
        for port in [None, Some("web"), Some("80")] {
            assert_eq!(
                service_endpoint(&svc, &slices, port).unwrap(),
                ("good".to_string(), 8080),
                "{port:?}"
            );
        }
        let none = service_endpoint(&svc, &slices, Some("udp")).unwrap_err();
        assert_eq!(none.code, 503);
        assert!(none
            .message
            .contains("no endpoints available for service \"echo\""));
        let bad = service_endpoint(&svc, &slices, Some("nope")).unwrap_err();
        assert!(
            bad.message.contains("no service port \"nope\""),
            "{}",
            bad.message
        );
    }

    #[test]
    fn a_response_head_is_parsed_once_whole() {
        assert!(parse_head(b"HTTP/1.0 200 OK\r\nContent-Ty")
            .unwrap()
            .is_none());
        let h = parse_head(b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope")
            .unwrap()
            .unwrap();
        assert_eq!(h.code, 404);
        assert_eq!(
            h.headers,
            [("Content-Type".to_string(), b"text/plain".to_vec())]
        );
        assert_eq!(h.rest, b"nope");
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        for h in [
            "Authorization",
            "connection",
            "Impersonate-User",
            "Transfer-Encoding",
        ] {
            assert!(dropped(h), "{h}");
        }
        assert!(!dropped("Accept") && !dropped("X-Request-Id"));
        assert!(matches!(verb("GET"), Verb::Get) && matches!(verb("DELETE"), Verb::Delete));
    }
}
