//! Streams from a master to a node over the node's tunnel: container logs,
//! exec sessions and port forwards. A node offers one connection (`ApiRequest::NodeTunnel`); the
//! master holding it proxies `ferry logs` and `ferry exec` to the node, so
//! nodes listen on no port.

use ferry_api::frame::write_frame;
use ferry_api::proto::{ApiError, ApiRequest, Consistency, ErrorCode, ExecFrame, NodeStream};
use ferry_api::resources;
use ferry_raft::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections nodes offered (`ApiRequest::NodeTunnel`), by node name: a master
/// opens a stream to a node on its own connection, so nodes listen on no port.
#[derive(Debug, Default, Clone)]
pub struct Tunnels(Arc<Mutex<HashMap<String, quinn::Connection>>>);

impl Tunnels {
    /// Keeps `conn` as `node`'s tunnel until it closes or the master stops.
    pub async fn hold(
        &self,
        node: &str,
        conn: quinn::Connection,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let id = conn.stable_id();
        self.0
            .lock()
            .expect("tunnels lock")
            .insert(node.to_string(), conn.clone());
        tracing::debug!(node, "node tunnel open");
        tokio::select! {
            _ = conn.closed() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        let mut map = self.0.lock().expect("tunnels lock");
        if map.get(node).is_some_and(|c| c.stable_id() == id) {
            map.remove(node);
        }
    }

    fn get(&self, node: &str) -> Option<quinn::Connection> {
        self.0
            .lock()
            .expect("tunnels lock")
            .get(node)
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }
}

/// The annotation a node keeps on its Node: the master its tunnel is on.
pub const TUNNEL_ANNOTATION: &str = "ferry.dev/tunnel-master";

async fn fail(send: &mut quinn::SendStream, e: ApiError) {
    let _ = write_frame(send, &Err::<Vec<u8>, _>(e)).await;
    let _ = send.finish();
}

/// Finds the pod's container and the tunnel to its node: `(uid, container,
/// node, connection)`.
async fn reach(
    store: &Store,
    tunnels: &Tunnels,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<(String, String, quinn::Connection), ApiError> {
    let bad = |msg: String| ApiError::new(ErrorCode::BadRequest, msg);
    let res = resources::by_cli_name("pods").expect("pods are served");
    let key = res.key(Some(namespace), Some(name));
    let pod = match store.get(&key, Consistency::Linearizable).await? {
        (Some(kv), _) => serde_json::from_slice::<Value>(&kv.value).unwrap_or(Value::Null),
        (None, _) => return Err(bad(format!("pods {name:?} not found"))),
    };
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        // Ephemeral containers last: never the default one.
        .chain(
            pod.pointer("/spec/ephemeralContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match container {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(bad(format!(
                "container {c} is not valid for pod {name}: choose one of: [{}]",
                names.join(" ")
            )))
        }
        None => names
            .first()
            .map(|c| c.to_string())
            .ok_or_else(|| bad(format!("pod {name} has no containers")))?,
    };
    let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
        return Err(bad(format!("pod {name} is not bound to a node yet")));
    };
    let conn = tunnels.get(node).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("node {node} is not connected to this master (see its {TUNNEL_ANNOTATION} annotation)"),
        )
    })?;
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((uid, container, conn))
}

/// Opens a stream to the node on `conn` and sends `ask`.
async fn ask_node(
    conn: &quinn::Connection,
    ask: &NodeStream,
) -> Result<(quinn::SendStream, quinn::RecvStream), ApiError> {
    let unavailable = |e: String| ApiError::new(ErrorCode::Unavailable, format!("node: {e}"));
    let (mut to, from) = conn
        .open_bi()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    write_frame(&mut to, ask)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok((to, from))
}

/// Copies `from` to `to` until `from` ends (then finishes `to`) or `to`'s
/// reader goes away (then stops `from`).
async fn pipe(from: &mut quinn::RecvStream, to: &mut quinn::SendStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = to.stopped() => break,
        };
        match read {
            Ok(Some(n)) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Ok(None) => {
                let _ = to.finish();
                return;
            }
            Err(_) => break,
        }
    }
    let _ = from.stop(0u32.into());
    let _ = to.finish();
}

/// The pod an `ApiRequest::PodLogs`, `PodExec` or `PodPortForward` is for:
/// (namespace, name, container).
fn pod_of(req: &ApiRequest) -> Result<(&str, &str, Option<&str>), ApiError> {
    match req {
        ApiRequest::PodLogs(l) => Ok((&l.namespace, &l.name, l.container.as_deref())),
        ApiRequest::PodExec(x) => Ok((&x.namespace, &x.name, x.container.as_deref())),
        ApiRequest::PodPortForward(f) => Ok((&f.namespace, &f.name, None)),
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            "only logs, exec and port-forward open pod streams",
        )),
    }
}

/// Finds the pod's node and opens a stream to it through this master's
/// tunnel, carrying `req` (`PodLogs` or `PodExec`) as a [`NodeStream`].
async fn open_local(
    store: &Store,
    tunnels: &Tunnels,
    req: &ApiRequest,
) -> Result<(quinn::SendStream, quinn::RecvStream), ApiError> {
    let (namespace, name, container) = pod_of(req)?;
    let (uid, container, conn) = reach(store, tunnels, namespace, name, container).await?;
    let ask = match req {
        ApiRequest::PodExec(x) => NodeStream::Exec {
            uid,
            container,
            req: x.clone(),
        },
        ApiRequest::PodLogs(l) => NodeStream::Logs {
            uid,
            container,
            req: l.clone(),
        },
        ApiRequest::PodPortForward(f) => NodeStream::PortForward { uid, port: f.port },
        _ => unreachable!("pod_of accepts logs, exec and port-forward only"),
    };
    ask_node(&conn, &ask).await
}

/// A stream to a pod's node, carrying `ApiRequest::PodLogs`, `PodExec` or
/// `PodPortForward` frames both ways: through this master's tunnel, or relayed by the master
/// that holds the node's tunnel.
pub struct PodStream {
    /// Toward the node.
    pub to: quinn::SendStream,
    /// From the node.
    pub from: quinn::RecvStream,
    /// The relay's client, kept open while the stream is.
    pub(crate) _relay: Option<ferry_api::Client>,
}

/// Opens `req` (`ApiRequest::PodLogs`, `PodExec` or `PodPortForward`) to the
/// pod's node. When the node's tunnel is on another master (its Node's
/// [`TUNNEL_ANNOTATION`]), this master asks that one, as itself (`relay`: a
/// client config with this master's certificate), and the frames pass
/// through unchanged. Front ends that cannot pick their master (HTTPS behind
/// `ferry up`'s endpoint, a load balancer) reach every pod this way.
pub async fn open_pod_stream(
    store: &Store,
    tunnels: &Tunnels,
    relay: &ferry_config::ClientConfig,
    req: &ApiRequest,
) -> Result<PodStream, ApiError> {
    let (namespace, name, _) = pod_of(req)?;
    let local = open_local(store, tunnels, req).await;
    match local {
        Ok((to, from)) => Ok(PodStream {
            to,
            from,
            _relay: None,
        }),
        Err(e) if e.code == ErrorCode::Unavailable => {
            let addr = tunnel_master(store, namespace, name).await?.ok_or(e)?;
            let cfg = ferry_config::ClientConfig {
                masters: vec![addr.clone()],
                ..relay.clone()
            };
            let unavailable =
                |e: String| ApiError::new(ErrorCode::Unavailable, format!("master {addr}: {e}"));
            let client = ferry_api::Client::new(&cfg).map_err(|e| unavailable(e.to_string()))?;
            let (to, from) = client
                .open_duplex(req)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(PodStream {
                to,
                from,
                _relay: Some(client),
            })
        }
        Err(e) => Err(e),
    }
}

/// The master holding the tunnel of the node that runs a pod, from its Node's annotation.
async fn tunnel_master(
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    let read = |res: &str, ns: Option<&str>, n: &str| {
        let key = resources::by_cli_name(res)
            .expect("served")
            .key(ns, Some(n));
        async move {
            Ok::<_, ApiError>(match store.get(&key, Consistency::Linearizable).await? {
                (Some(kv), _) => serde_json::from_slice::<Value>(&kv.value).ok(),
                (None, _) => None,
            })
        }
    };
    let Some(pod) = read("pods", Some(namespace), name).await? else {
        return Ok(None);
    };
    let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) else {
        return Ok(None);
    };
    Ok(read("nodes", None, node).await?.and_then(|n| {
        n.pointer("/metadata/annotations")
            .and_then(|a| a.get(TUNNEL_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string)
    }))
}

/// Answers `ApiRequest::PodLogs`: proxies the log stream from the pod's node.
pub async fn stream_logs(
    store: &Store,
    tunnels: &Tunnels,
    req: &ApiRequest,
    send: &mut quinn::SendStream,
) {
    match open_local(store, tunnels, req).await {
        Ok((mut to, mut from)) => {
            let _ = to.finish();
            pipe(&mut from, send).await;
        }
        Err(e) => fail(send, e).await,
    }
}

/// Answers `ApiRequest::PodExec`: proxies the session both ways.
pub async fn stream_exec(
    store: &Store,
    tunnels: &Tunnels,
    req: &ApiRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) {
    let (mut to, mut from) = match open_local(store, tunnels, req).await {
        Ok(s) => s,
        Err(e) => {
            let _ = write_frame(send, &ExecFrame::Error(e)).await;
            let _ = send.finish();
            return;
        }
    };
    tokio::join!(pipe(recv, &mut to), pipe(&mut from, send));
}

/// Answers `ApiRequest::PodPortForward`: proxies the connection both ways
/// (the node's first frame says whether it connected).
pub async fn stream_port_forward(
    store: &Store,
    tunnels: &Tunnels,
    req: &ApiRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) {
    let (mut to, mut from) = match open_local(store, tunnels, req).await {
        Ok(s) => s,
        Err(e) => return fail_unit(send, e).await,
    };
    tokio::join!(pipe(recv, &mut to), pipe(&mut from, send));
}

async fn fail_unit(send: &mut quinn::SendStream, e: ApiError) {
    let _ = write_frame(send, &Err::<(), _>(e)).await;
    let _ = send.finish();
}
