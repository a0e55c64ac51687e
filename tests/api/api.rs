//! A small typed object client for the tests.

use ferry_api::object::{ListOptions, ObjectRequest, PatchType, Verb};
use ferry_api::Client;
use serde_json::{json, Value};
use std::sync::Arc;

/// A 3-master cluster whose default namespaces exist, and an admin API over all masters.
pub async fn cluster() -> (crate::harness::TestCluster, Api) {
    let c = crate::harness::TestCluster::new(3).await;
    let api = Api(c.client.clone());
    crate::harness::eventually("namespace default", crate::harness::WAIT, || async {
        api.get("namespaces", None, "default").await
    })
    .await;
    (c, api)
}

/// One master running the workload controllers (the scheduler, the
/// controllers, the garbage collector), its default namespaces made, and an
/// admin API over it.
pub async fn with_controllers() -> (crate::harness::TestCluster, Api) {
    let c = crate::harness::TestCluster::with(1, |cfg| {
        crate::harness::fast(cfg);
        cfg.workload_controllers = true;
    })
    .await;
    let api = Api(c.client.clone());
    crate::harness::eventually("namespace default", crate::harness::WAIT, || async {
        api.get("namespaces", None, "default").await
    })
    .await;
    (c, api)
}

/// Object calls over one client.
pub struct Api(pub Arc<Client>);

/// A ConfigMap manifest.
pub fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

/// A Deployment manifest.
pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
        }
    })
}

/// A Pod manifest.
pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

/// `metadata.resourceVersion`.
pub fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

impl Api {
    /// Sends a request; returns the HTTP code and JSON body.
    pub async fn call(&self, req: ObjectRequest) -> (u16, Value) {
        let r = self.0.object(req).await.expect("request answered");
        (r.code, r.json().expect("JSON body"))
    }

    /// A request with an optional body.
    pub fn req(
        verb: Verb,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
        body: Option<&Value>,
    ) -> ObjectRequest {
        let mut r = ObjectRequest::new(verb, resource, ns, name);
        if let Some(b) = body {
            r.body = serde_json::to_vec(b).expect("json");
        }
        r
    }

    /// Creates; asserts 201.
    pub async fn create(&self, resource: &str, ns: Option<&str>, body: &Value) -> Value {
        let (code, v) = self
            .call(Self::req(Verb::Create, resource, ns, None, Some(body)))
            .await;
        assert_eq!(code, 201, "create {resource}: {v}");
        v
    }

    /// Gets; `None` on 404.
    pub async fn get(&self, resource: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let (code, v) = self
            .call(Self::req(Verb::Get, resource, ns, Some(name), None))
            .await;
        match code {
            200 => Some(v),
            404 => None,
            _ => panic!("get {resource}/{name}: {code} {v}"),
        }
    }

    /// Lists with options; returns the list.
    pub async fn list(&self, resource: &str, ns: Option<&str>, opts: ListOptions) -> (u16, Value) {
        let mut r = Self::req(Verb::List, resource, ns, None, None);
        r.list = opts;
        self.call(r).await
    }

    /// Names of a list's items.
    pub fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Updates (PUT).
    pub async fn update(
        &self,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        body: &Value,
        sub: Option<&str>,
    ) -> (u16, Value) {
        let mut r = Self::req(Verb::Update, resource, ns, Some(name), Some(body));
        r.subresource = sub.map(str::to_string);
        self.call(r).await
    }

    /// Patches.
    pub async fn patch(
        &self,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        p: &Value,
        sub: Option<&str>,
    ) -> (u16, Value) {
        let mut r = Self::req(Verb::Patch(pt), resource, ns, Some(name), Some(p));
        r.subresource = sub.map(str::to_string);
        self.call(r).await
    }

    /// Deletes with `DeleteOptions`.
    pub async fn delete(
        &self,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        opts: &Value,
    ) -> (u16, Value) {
        self.call(Self::req(
            Verb::Delete,
            resource,
            ns,
            Some(name),
            Some(opts),
        ))
        .await
    }
}
