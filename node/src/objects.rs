//! The few object requests the node agent makes, over its client.

use anyhow::{anyhow, Result};
use ferry_api::object::{ListOptions, ObjectRequest, PatchType, Status, Verb};
use ferry_api::Client;
use serde_json::{json, Value};
use std::sync::Arc;

/// An object API client for the agent.
#[derive(Clone)]
pub struct Objects {
    /// The client (fails over between masters).
    pub client: Arc<Client>,
    /// The cluster CA (PEM), for pods' `ca.crt`.
    pub ca_pem: Arc<str>,
}

/// A non-2xx answer.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct Failed(pub Status);

/// The HTTP code of a failed request, if that is what it was.
pub fn code_of(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<Failed>().map(|f| f.0.code)
}

impl Objects {
    async fn send(&self, req: ObjectRequest) -> Result<Value> {
        let resp = self.client.object(req).await?;
        if let Some(s) = resp.status() {
            return Err(Failed(s).into());
        }
        resp.json().map_err(|e| anyhow!("bad answer: {e}"))
    }

    /// Reads one object (`None`: not found).
    pub async fn get(&self, plural: &str, ns: Option<&str>, name: &str) -> Result<Option<Value>> {
        match self
            .send(ObjectRequest::new(Verb::Get, plural, ns, Some(name)))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if code_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects matching a field selector.
    pub async fn list(&self, plural: &str, field_selector: &str) -> Result<Vec<Value>> {
        let mut req = ObjectRequest::new(Verb::List, plural, None, None);
        req.list = ListOptions {
            field_selector: Some(field_selector.to_string()),
            ..ListOptions::default()
        };
        let v = self.send(req).await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// A token for ServiceAccount `sa` bound to pod `pod_name` (uid
    /// `pod_uid`), for `audience` ("": the API's), valid `seconds` (a TokenRequest).
    pub async fn token(
        &self,
        ns: &str,
        sa: &str,
        pod_name: &str,
        pod_uid: &str,
        audience: &str,
        seconds: i64,
    ) -> Result<String> {
        let mut req = ObjectRequest::new(Verb::Create, "serviceaccounts", Some(ns), Some(sa));
        req.subresource = Some("token".into());
        let mut spec = json!({"expirationSeconds": seconds, "boundObjectRef":
            {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": pod_uid}});
        if !audience.is_empty() {
            spec["audiences"] = json!([audience]);
        }
        req.body = serde_json::to_vec(&json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}))?;
        let v = self.send(req).await?;
        v.pointer("/status/token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token in the TokenRequest's answer"))
    }

    /// Creates an object.
    pub async fn create(&self, plural: &str, ns: Option<&str>, obj: &Value) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Create, plural, ns, None);
        req.body = serde_json::to_vec(obj)?;
        self.send(req).await
    }

    /// Merge-patches an object or its subresource.
    pub async fn patch(
        &self,
        plural: &str,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        patch: &Value,
    ) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Patch(PatchType::Merge), plural, ns, Some(name));
        req.subresource = sub.map(str::to_string);
        req.body = serde_json::to_vec(patch)?;
        self.send(req).await
    }

    /// Writes a pod's `status` as the kubelet does, by a strategic merge
    /// patch: conditions merge by type, so those others own (the
    /// `DisruptionTarget` an eviction writes) stay.
    pub async fn patch_pod_status(&self, ns: &str, name: &str, status: &Value) -> Result<Value> {
        let mut req = ObjectRequest::new(
            Verb::Patch(PatchType::Strategic),
            "pods",
            Some(ns),
            Some(name),
        );
        req.subresource = Some("status".into());
        req.body = serde_json::to_vec(&json!({"status": status}))?;
        self.send(req).await
    }

    /// Registers the Node `obj`: creates it, or, registered before, refreshes
    /// its labels and annotations; then writes its status.
    pub async fn register_node(&self, obj: &Value) -> Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        match self.create("nodes", None, obj).await {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some(409) => {
                let meta = json!({"metadata": {
                    "labels": obj["metadata"]["labels"],
                    "annotations": obj["metadata"]["annotations"],
                }});
                self.patch("nodes", None, name, None, &meta).await?;
            }
            Err(e) => return Err(e.context(format!("registering node {name}"))),
        }
        let status = json!({"status": obj["status"]});
        self.patch("nodes", None, name, Some("status"), &status)
            .await
            .map(|_| ())
    }

    /// Deletes an object with `options` (a `DeleteOptions` body).
    pub async fn delete(
        &self,
        plural: &str,
        ns: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<()> {
        let mut req = ObjectRequest::new(Verb::Delete, plural, ns, Some(name));
        req.body = serde_json::to_vec(options)?;
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
