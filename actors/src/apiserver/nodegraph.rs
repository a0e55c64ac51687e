//! The node authorizer's graph (Kubernetes' `Node` authorizer): a node may
//! read a Secret, ConfigMap or PersistentVolumeClaim only when a pod bound to
//! it references it (a PersistentVolume only when bound to such a claim)
//! (volumes, projected sources, `env`/`envFrom`, `imagePullSecrets`), and
//! never list or watch them except one object by name; ServiceAccounts it
//! does not read at all (it asks for its pods' tokens, checked in `tokens`).
//!
//! Each master keeps an index from its own applied pods ([`run`]: listed,
//! then watched), so a node's read costs a map lookup, not a scan of the
//! pods (the agent reads its pods' objects on every sync). The index follows
//! this master's applied state, which may lag a pod's binding that the node
//! already saw elsewhere; so a miss is confirmed against the pods of the
//! object's namespace read linearizably before it is refused.
//!
//! Every node runs ferry's ingress controller, so a node also reads a Secret
//! that a served Ingress of its namespace names in `spec.tls` (checked
//! against the store's Ingresses and IngressClasses, linearizably, on a miss).

use super::{ApiServer, Outcome};
use ferry_api::object::{ObjectRequest, Status, Verb};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::resources::Resource;
use ferry_api::selector::FieldSelector;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The kinds the graph restricts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// A Secret.
    Secret,
    /// A ConfigMap.
    ConfigMap,
    /// A PersistentVolumeClaim (and through it, the volume it is bound to).
    Claim,
}

impl RefKind {
    /// The kind `res` is, if the graph restricts it.
    pub fn of(res: &Resource) -> Option<RefKind> {
        match (res.group, res.kind) {
            ("", "Secret") => Some(RefKind::Secret),
            ("", "ConfigMap") => Some(RefKind::ConfigMap),
            ("", "PersistentVolumeClaim") => Some(RefKind::Claim),
            _ => None,
        }
    }
}

/// Objects every node reads whatever its pods reference: the cluster
/// network ConfigMap the agent configures pod networking from.
fn always_readable(kind: RefKind, ns: &str, name: &str) -> bool {
    kind == RefKind::ConfigMap
        && ns == ferry_api::network::CONFIGMAP_NAMESPACE
        && name == ferry_api::network::CONFIGMAP_NAME
}

/// The Secrets and ConfigMaps `pod` references, sorted and without repeats.
pub fn references(pod: &Value) -> Vec<(RefKind, String)> {
    let mut out = Vec::new();
    let mut add = |k: RefKind, v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push((k, n.to_string()));
        }
    };
    let spec = &pod["spec"];
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(RefKind::Secret, s.get("name"));
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        add(RefKind::Secret, v.pointer("/secret/secretName"));
        add(RefKind::ConfigMap, v.pointer("/configMap/name"));
        add(
            RefKind::Claim,
            v.pointer("/persistentVolumeClaim/claimName"),
        );
        for s in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(RefKind::Secret, s.pointer("/secret/name"));
            add(RefKind::ConfigMap, s.pointer("/configMap/name"));
        }
        // Volume plugins that name a secret for their credentials.
        for p in [
            "/azureFile/secretName",
            "/cephfs/secretRef/name",
            "/cinder/secretRef/name",
            "/flexVolume/secretRef/name",
            "/iscsi/secretRef/name",
            "/rbd/secretRef/name",
            "/scaleIO/secretRef/name",
            "/storageos/secretRef/name",
            "/csi/nodePublishSecretRef/name",
        ] {
            add(RefKind::Secret, v.pointer(p));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["envFrom"].as_array().into_iter().flatten() {
                add(RefKind::Secret, e.pointer("/secretRef/name"));
                add(RefKind::ConfigMap, e.pointer("/configMapRef/name"));
            }
            for e in c["env"].as_array().into_iter().flatten() {
                add(RefKind::Secret, e.pointer("/valueFrom/secretKeyRef/name"));
                add(
                    RefKind::ConfigMap,
                    e.pointer("/valueFrom/configMapKeyRef/name"),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What one pod contributes: its node, namespace and references.
struct PodEdges {
    node: String,
    namespace: String,
    refs: Vec<(RefKind, String)>,
}

/// (node, kind, namespace, name) → how many of the node's pods reference it.
type Edges = HashMap<(String, RefKind, String, String), usize>;

#[derive(Default)]
struct Graph {
    pods: BTreeMap<String, PodEdges>,
    edges: Edges,
    synced: bool,
}

impl Graph {
    fn remove(&mut self, key: &str) {
        let Some(p) = self.pods.remove(key) else {
            return;
        };
        for (k, name) in p.refs {
            let e = (p.node.clone(), k, p.namespace.clone(), name);
            if let Some(n) = self.edges.get_mut(&e) {
                *n -= 1;
                if *n == 0 {
                    self.edges.remove(&e);
                }
            }
        }
    }

    fn put(&mut self, key: &str, pod: &Value) {
        self.remove(key);
        let Some(node) = bound_node(pod) else {
            return;
        };
        let namespace = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let refs = references(pod);
        for (k, name) in &refs {
            *self
                .edges
                .entry((node.to_string(), *k, namespace.clone(), name.clone()))
                .or_default() += 1;
        }
        self.pods.insert(
            key.to_string(),
            PodEdges {
                node: node.to_string(),
                namespace,
                refs,
            },
        );
    }
}

fn bound_node(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// This master's node graph: cheap to clone, shared by the pipeline.
#[derive(Clone, Default)]
pub struct NodeGraph {
    inner: Arc<RwLock<Graph>>,
}

impl NodeGraph {
    /// Whether the index holds a pod on `node` referencing the object
    /// (false also before the first list).
    pub fn has_edge(&self, node: &str, kind: RefKind, ns: &str, name: &str) -> bool {
        let Ok(g) = self.inner.read() else {
            return false;
        };
        g.synced
            && g.edges
                .contains_key(&(node.to_string(), kind, ns.to_string(), name.to_string()))
    }

    /// Whether `node` may read the object: always-readable, or referenced
    /// by one of its pods in the index.
    pub fn readable(&self, node: &str, kind: RefKind, ns: &str, name: &str) -> bool {
        always_readable(kind, ns, name) || self.has_edge(node, kind, ns, name)
    }

    fn replace(&self, pods: Vec<(String, Value)>) {
        if let Ok(mut g) = self.inner.write() {
            *g = Graph::default();
            for (k, p) in pods {
                g.put(&k, &p);
            }
            g.synced = true;
        }
    }

    fn apply(&self, key: &str, pod: Option<&Value>) {
        if let Ok(mut g) = self.inner.write() {
            match pod {
                Some(p) => g.put(key, p),
                None => g.remove(key),
            }
        }
    }
}

/// Keeps `api`'s node graph current: the pods listed from this master's
/// applied state, then watched; a broken watch re-lists. Runs on every master.
pub async fn run(api: ApiServer) {
    loop {
        if let Err(e) = follow(&api).await {
            tracing::debug!("node graph re-lists: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const PODS: &str = "/registry/pods/";

async fn follow(api: &ApiServer) -> Result<(), String> {
    super::mirror::follow(
        api,
        PODS,
        |pods| api.node_graph.replace(pods),
        |changes| {
            for (key, pod) in changes {
                api.node_graph.apply(&key, pod.as_ref());
            }
        },
    )
    .await
}

/// The object name a node's request reads: the URL's, or for a list or
/// watch a field selector's `metadata.name=` (what a kubelet's watch of one
/// object sends), as Kubernetes takes it.
fn read_name(req: &ObjectRequest) -> Option<String> {
    if let Some(n) = &req.name {
        return Some(n.clone());
    }
    let fs = req.list.field_selector.as_deref()?;
    let sel = FieldSelector::parse(fs, &["metadata.name", "metadata.namespace"]).ok()?;
    sel.equality("metadata.name").map(str::to_string)
}

/// Kubernetes' refusal of a node's request, with the node authorizer's reason.
fn refused(node: &str, res: &Resource, req: &ObjectRequest, name: &str, reason: &str) -> Status {
    let mut s = super::authorize(
        &ferry_api::tls::Identity::User {
            name: format!("system:node:{node}"),
            groups: Vec::new(),
            uid: String::new(),
            extra: Default::default(),
        },
        res,
        req,
        None,
    )
    .expect_err("no policy allows nothing");
    let prefix = if name.is_empty() {
        format!("{} is forbidden: ", res.plural)
    } else {
        format!("{} {name:?} is forbidden: ", res.plural)
    };
    let detail = s
        .message
        .split_once(" is forbidden: ")
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    s.message = format!("{prefix}{detail}: {reason}");
    s
}

impl ApiServer {
    /// The node authorizer's graph check: `node` reads a Secret or ConfigMap
    /// only when one of its pods references it (the index, then on a miss the
    /// namespace's pods read linearizably); other kinds pass unchanged.
    pub(super) async fn node_may_read(
        &self,
        node: &str,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<()> {
        if res.group.is_empty() && res.kind == "ServiceAccount" && req.subresource.is_none() {
            // Its pods' tokens only (`serviceaccounts/token`, checked in `tokens`).
            let name = read_name(req).unwrap_or_default();
            return Err(refused(
                node,
                res,
                req,
                &name,
                "can only create tokens for individual service accounts",
            )
            .into());
        }
        if res.group.is_empty() && res.kind == "PersistentVolume" {
            return self.node_may_read_volume(node, res, req).await;
        }
        let Some(kind) = RefKind::of(res) else {
            return Ok(());
        };
        if !matches!(req.verb, Verb::Get | Verb::List | Verb::Watch) {
            // Writes were refused by `authorize` already.
            return Ok(());
        }
        let name = read_name(req);
        let shown = name.clone().unwrap_or_default();
        if req.subresource.is_some() {
            return Err(refused(node, res, req, &shown, "cannot read subresource").into());
        }
        let Some(ns) = req.namespace.as_deref() else {
            return Err(refused(
                node,
                res,
                req,
                &shown,
                "can only read namespaced object of this type",
            )
            .into());
        };
        let Some(name) = name else {
            return Err(refused(node, res, req, "", "No Object name found").into());
        };
        if self.node_graph.readable(node, kind, ns, &name) {
            return Ok(());
        }
        if self.pods_reference(node, kind, ns, &name).await? {
            return Ok(());
        }
        if kind == RefKind::Secret && self.ingress_tls_secret(ns, &name).await? {
            return Ok(());
        }
        Err(refused(
            node,
            res,
            req,
            &name,
            &format!("no relationship found between node '{node}' and this object"),
        )
        .into())
    }

    /// Whether a pod of `ns` bound to `node` references the object, read
    /// from the store (linearizable): the index's miss confirmed.
    /// A PersistentVolume: readable by a node whose pods reference the claim
    /// it is bound to. One that does not exist is answered (404): the node
    /// looks for its deleted volumes to remove their directories, and a
    /// volume's name (`pvc-<uid>`) tells nothing.
    async fn node_may_read_volume(
        &self,
        node: &str,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<()> {
        if !matches!(req.verb, Verb::Get | Verb::List | Verb::Watch) {
            return Ok(());
        }
        let Some(name) = read_name(req) else {
            return Err(refused(node, res, req, "", "No Object name found").into());
        };
        if req.subresource.is_some() {
            return Err(refused(node, res, req, &name, "cannot read subresource").into());
        }
        let Some((pv, _)) = self
            .read_object(res, None, &name, Consistency::Local)
            .await?
        else {
            return Ok(());
        };
        let claim = pv.pointer("/spec/claimRef").and_then(|r| {
            Some((
                r.get("namespace")?.as_str()?.to_string(),
                r.get("name")?.as_str()?.to_string(),
            ))
        });
        if let Some((ns, claim)) = claim {
            if self.node_graph.readable(node, RefKind::Claim, &ns, &claim)
                || self
                    .pods_reference(node, RefKind::Claim, &ns, &claim)
                    .await?
            {
                return Ok(());
            }
        }
        Err(refused(
            node,
            res,
            req,
            &name,
            &format!("no relationship found between node '{node}' and this object"),
        )
        .into())
    }

    /// Whether an Ingress of `ns` that ferry serves names Secret `name` in
    /// its `spec.tls` (every node's ingress listener reads it).
    async fn ingress_tls_secret(&self, ns: &str, name: &str) -> Outcome<bool> {
        use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
        let ingresses: Vec<Ingress> = self
            .range_all(&format!("/registry/ingresses/{ns}/"))
            .await?
            .into_iter()
            .filter(|i: &Ingress| ferry_api::ingress::tls_secrets(i).iter().any(|s| s == name))
            .collect();
        if ingresses.is_empty() {
            return Ok(false);
        }
        let classes: Vec<IngressClass> = self.range_all("/registry/ingressclasses/").await?;
        Ok(ingresses
            .iter()
            .any(|i| ferry_api::ingress::served(i, &classes)))
    }

    /// Every object under `prefix` that decodes as `T`, read linearizably.
    async fn range_all<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Outcome<Vec<T>> {
        let mut out = Vec::new();
        let mut start_after = None;
        let mut consistency = Consistency::Linearizable;
        loop {
            let page = self
                .store
                .range(&RangeRequest {
                    prefix: prefix.to_string(),
                    start_after: start_after.clone(),
                    limit: 500,
                    consistency,
                })
                .await?
                .map_err(|e| Status::internal(e.to_string()))?;
            out.extend(
                page.kvs
                    .iter()
                    .filter_map(|kv| serde_json::from_slice::<T>(&kv.value).ok()),
            );
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => {
                    start_after = Some(last.key.clone());
                    consistency = Consistency::AtRevision(page.revision);
                }
                _ => return Ok(out),
            }
        }
    }

    async fn pods_reference(
        &self,
        node: &str,
        kind: RefKind,
        ns: &str,
        name: &str,
    ) -> Outcome<bool> {
        let mut start_after = None;
        let mut consistency = Consistency::Linearizable;
        loop {
            let page = self
                .store
                .range(&RangeRequest {
                    prefix: format!("{PODS}{ns}/"),
                    start_after: start_after.clone(),
                    limit: 500,
                    consistency,
                })
                .await?
                .map_err(|e| Status::internal(e.to_string()))?;
            for kv in &page.kvs {
                let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                if bound_node(&pod) == Some(node)
                    && references(&pod)
                        .iter()
                        .any(|(k, n)| *k == kind && n == name)
                {
                    return Ok(true);
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => {
                    start_after = Some(last.key.clone());
                    consistency = Consistency::AtRevision(page.revision);
                }
                _ => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_every_place_a_pod_names_a_secret_or_configmap() {
        let pod = json!({"metadata": {"namespace": "team"}, "spec": {
            "nodeName": "n1",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "projected": {"sources": [
                    {"secret": {"name": "proj-secret"}},
                    {"configMap": {"name": "proj-cm"}},
                    {"serviceAccountToken": {"path": "t"}}]}},
                {"name": "d", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi"}}},
                {"name": "e", "emptyDir": {}}
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-from"}}]}],
            "containers": [{"name": "c",
                "envFrom": [{"configMapRef": {"name": "from-cm"}}],
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                    {"name": "C", "value": "plain"},
                    {"name": "D", "valueFrom": {"secretKeyRef": {"name": "vol-secret", "key": "k"}}}
                ]}],
            "ephemeralContainers": [{"name": "dbg", "env": [
                {"name": "E", "valueFrom": {"secretKeyRef": {"name": "debug", "key": "k"}}}]}]
        }});
        use RefKind::*;
        let want: Vec<(RefKind, String)> = [
            (Secret, "csi"),
            (Secret, "debug"),
            (Secret, "env-secret"),
            (Secret, "init-from"),
            (Secret, "proj-secret"),
            (Secret, "pull"),
            (Secret, "vol-secret"),
            (ConfigMap, "env-cm"),
            (ConfigMap, "from-cm"),
            (ConfigMap, "proj-cm"),
            (ConfigMap, "vol-cm"),
        ]
        .iter()
        .map(|(k, n)| (*k, n.to_string()))
        .collect();
        assert_eq!(references(&pod), want);
        assert!(references(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn the_index_follows_pods_bound_moved_and_deleted() {
        let g = NodeGraph::default();
        let pod = |node: &str, secret: &str| {
            json!({"metadata": {"namespace": "team"}, "spec": {"nodeName": node,
                "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
        };
        let edge = |n: &str, s: &str| g.has_edge(n, RefKind::Secret, "team", s);
        // Nothing before the first list.
        g.apply("/registry/pods/team/a", Some(&pod("n1", "s1")));
        assert!(!edge("n1", "s1"));
        g.replace(vec![("/registry/pods/team/a".into(), pod("n1", "s1"))]);
        assert!(edge("n1", "s1"));
        assert!(!edge("n2", "s1"));
        assert!(!g.has_edge("n1", RefKind::Secret, "other", "s1"));
        assert!(!g.has_edge("n1", RefKind::ConfigMap, "team", "s1"));
        // Two pods of n1 share s1: it stays until both are gone.
        g.apply("/registry/pods/team/b", Some(&pod("n1", "s1")));
        g.apply("/registry/pods/team/a", None);
        assert!(edge("n1", "s1"));
        // A pod updated to another secret drops its old edge.
        g.apply("/registry/pods/team/b", Some(&pod("n1", "s2")));
        assert!(!edge("n1", "s1"));
        assert!(edge("n1", "s2"));
        // Unbound pods give no edges.
        g.apply("/registry/pods/team/c", Some(&pod("", "s3")));
        assert!(!edge("", "s3"));
        g.apply("/registry/pods/team/b", None);
        assert!(!edge("n1", "s2"));
        assert!(g.inner.read().unwrap().edges.is_empty());
    }

    #[test]
    fn a_list_or_watch_names_its_object_by_field_selector() {
        let mut q = ObjectRequest::new(Verb::Watch, "secrets", Some("team"), None);
        assert_eq!(read_name(&q), None);
        q.list.field_selector = Some("metadata.name=s1".into());
        assert_eq!(read_name(&q).as_deref(), Some("s1"));
        q.list.field_selector = Some("metadata.name!=s1".into());
        assert_eq!(read_name(&q), None);
        let g = ObjectRequest::new(Verb::Get, "secrets", Some("team"), Some("s2"));
        assert_eq!(read_name(&g).as_deref(), Some("s2"));
    }

    #[test]
    fn refusals_use_kubernetes_wording() {
        let res = ferry_api::resources::by_cli_name("secrets").unwrap();
        let q = ObjectRequest::new(Verb::Get, "secrets", Some("team"), Some("s2"));
        let s = refused(
            "n1",
            res,
            &q,
            "s2",
            "no relationship found between node 'n1' and this object",
        );
        assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            s.message,
            "secrets \"s2\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" \
             in API group \"\" in the namespace \"team\": no relationship found between node 'n1' \
             and this object"
        );
        let l = ObjectRequest::new(Verb::List, "secrets", Some("team"), None);
        let s = refused("n1", res, &l, "", "No Object name found");
        assert_eq!(
            s.message,
            "secrets is forbidden: User \"system:node:n1\" cannot list resource \"secrets\" \
             in API group \"\" in the namespace \"team\": No Object name found"
        );
    }
}
