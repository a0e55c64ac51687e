//! The object API as the CLI uses it: typed calls over [`ferry_api::Client`],
//! with Kubernetes errors as [`ServerError`] (printed as kubectl prints them).

use anyhow::Result;
use ferry_api::object::{ListOptions, ObjectRequest, PatchType, Status, Verb};
use ferry_api::resources::Resource;
use ferry_api::Client;
use serde_json::Value;
use std::sync::Arc;

/// Items per list page.
const PAGE: u64 = 500;

/// A Kubernetes error answered by the server.
#[derive(Debug, thiserror::Error)]
#[error("Error from server ({}): {}", .0.reason, .0.message)]
pub struct ServerError(pub Status);

/// The `Status` inside an error, if the server answered with one.
pub fn status_of(e: &anyhow::Error) -> Option<&Status> {
    e.downcast_ref::<ServerError>().map(|s| &s.0)
}

/// `deployment.apps/web`, `pod/x` — how kubectl names an object in messages.
pub fn display_name(res: &Resource, name: &str) -> String {
    let kind = res.kind.to_ascii_lowercase();
    if res.group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{}/{name}", res.group)
    }
}

/// The object API.
#[derive(Clone)]
pub struct Api {
    /// The client (fails over between masters).
    pub client: Arc<Client>,
}

impl Api {
    /// Sends a request; a non-2xx answer becomes a [`ServerError`].
    pub async fn send(&self, req: ObjectRequest) -> Result<Value> {
        let resp = self.client.object(req).await?;
        if let Some(s) = resp.status() {
            return Err(ServerError(s).into());
        }
        Ok(resp.json()?)
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get(&self, res: &Resource, ns: Option<&str>, name: &str) -> Result<Option<Value>> {
        match self
            .send(ObjectRequest::new(Verb::Get, res.plural, ns, Some(name)))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if status_of(&e).is_some_and(|s| s.code == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists every matching object (page by page, one revision); returns them
    /// and the list's resourceVersion.
    pub async fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(Vec<Value>, String)> {
        let mut items = Vec::new();
        let mut req = ObjectRequest::new(Verb::List, res.plural, ns, None);
        req.list = opts.clone();
        req.list.limit = PAGE;
        loop {
            let page = self.send(req.clone()).await?;
            if let Some(a) = page["items"].as_array() {
                items.extend(a.iter().cloned());
            }
            let rv = page
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match page.pointer("/metadata/continue").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => req.list.continue_token = Some(c.to_string()),
                _ => return Ok((items, rv.to_string())),
            }
        }
    }

    /// Creates an object.
    pub async fn create(&self, res: &Resource, ns: Option<&str>, obj: &Value) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Create, res.plural, ns, None);
        req.body = serde_json::to_vec(obj)?;
        self.send(req).await
    }

    /// Replaces an object (conflicts when its resourceVersion is stale).
    pub async fn update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
    ) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Update, res.plural, ns, Some(name));
        req.body = serde_json::to_vec(obj)?;
        self.send(req).await
    }

    /// Patches an object or one of its subresources.
    pub async fn patch(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Patch(pt), res.plural, ns, Some(name));
        req.subresource = subresource.map(str::to_string);
        req.body = serde_json::to_vec(patch)?;
        self.send(req).await
    }

    /// Deletes an object with `DeleteOptions`.
    pub async fn delete(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        opts: &Value,
    ) -> Result<Value> {
        let mut req = ObjectRequest::new(Verb::Delete, res.plural, ns, Some(name));
        req.body = serde_json::to_vec(opts)?;
        self.send(req).await
    }
}

/// The namespace an object goes to: its own, else `-n`, else `default`
/// (`None` for cluster-scoped kinds). A manifest namespace that contradicts
/// an explicit `-n` is an error, as in kubectl.
pub fn namespace_for(res: &Resource, obj: &Value, flag: Option<&str>) -> Result<Option<String>> {
    if !res.namespaced {
        return Ok(None);
    }
    let own = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    match (own, flag) {
        (Some(o), Some(f)) if o != f => anyhow::bail!(
            "the namespace from the provided object {o:?} does not match the namespace {f:?}. You must pass '--namespace={o}' to perform this operation."
        ),
        (Some(o), _) => Ok(Some(o.to_string())),
        (None, Some(f)) => Ok(Some(f.to_string())),
        (None, None) => Ok(Some("default".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::resources::by_cli_name;
    use serde_json::json;

    #[test]
    fn namespaces_and_names_as_kubectl_has_them() {
        let cm = by_cli_name("cm").unwrap();
        let ns = by_cli_name("ns").unwrap();
        let own = json!({"metadata": {"namespace": "shop"}});
        let none = json!({"metadata": {}});
        assert_eq!(
            namespace_for(cm, &own, None).unwrap().as_deref(),
            Some("shop")
        );
        assert_eq!(
            namespace_for(cm, &own, Some("shop")).unwrap().as_deref(),
            Some("shop")
        );
        assert_eq!(
            namespace_for(cm, &none, Some("x")).unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(
            namespace_for(cm, &none, None).unwrap().as_deref(),
            Some("default")
        );
        assert_eq!(namespace_for(ns, &own, Some("x")).unwrap(), None);
        let e = namespace_for(cm, &own, Some("other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match the namespace \"other\""), "{e}");
        assert_eq!(display_name(cm, "a"), "configmap/a");
        assert_eq!(
            display_name(by_cli_name("deploy").unwrap(), "w"),
            "deployment.apps/w"
        );
    }
}
