//! This master's apiserver Lease (`kube-system/apiserver-<id>`, as
//! Kubernetes' apiserver identity leases) with its HTTPS address, renewed
//! every few seconds by every master: the leader's controllers make the
//! `kubernetes` Service's endpoints from the leases they see renewed
//! (`ferry_control::endpoints::apiserver`).

use crate::apiserver::ApiServer;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::tls::Identity;
use ferry_control::endpoints::apiserver::{
    lease_name, ADDRESS_ANNOTATION, IDENTITY, IDENTITY_LABEL, LEASE_NAMESPACE, LEASE_RENEW_SECONDS,
    LEASE_SECONDS,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// The lease `id` keeps for `addr`, renewed now (over `current`'s
/// resourceVersion and holder, when there is one).
fn lease(id: u64, addr: SocketAddr, current: Option<&Value>) -> Value {
    let name = lease_name(id);
    let now = ferry_api::clock::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let mut l = current.cloned().unwrap_or_else(|| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
               "spec": {"acquireTime": now}})
    });
    l["metadata"]["labels"][IDENTITY_LABEL] = json!(IDENTITY);
    l["metadata"]["annotations"][ADDRESS_ANNOTATION] = json!(addr.to_string());
    l["spec"]["holderIdentity"] = json!(name);
    l["spec"]["leaseDurationSeconds"] = json!(LEASE_SECONDS);
    l["spec"]["renewTime"] = json!(now);
    l
}

/// Renews this master's lease every [`LEASE_RENEW_SECONDS`] while the
/// actor lives (a failed renewal is retried at the next tick).
pub async fn run(api: ApiServer, addr: SocketAddr) {
    let id = api.store().id();
    let name = lease_name(id);
    let mut current: Option<Value> = None;
    loop {
        match renew(&api, id, addr, current.as_ref()).await {
            Ok(stored) => current = Some(stored),
            Err(e) => {
                tracing::debug!(lease = %name, "renewing this master's apiserver lease: {e}");
                current = None;
            }
        }
        tokio::time::sleep(Duration::from_secs(LEASE_RENEW_SECONDS)).await;
    }
}

/// One renewal: an update over the lease last written (a conflict re-reads
/// it), else a create. Returns the lease as stored.
async fn renew(
    api: &ApiServer,
    id: u64,
    addr: SocketAddr,
    current: Option<&Value>,
) -> Result<Value, String> {
    let name = lease_name(id);
    let send = async |verb: Verb, name: Option<&str>, body: Option<&Value>| {
        let mut r = ObjectRequest::new(verb, "leases", Some(LEASE_NAMESPACE), name);
        if let Some(b) = body {
            r.body = serde_json::to_vec(b).unwrap_or_default();
        }
        let resp = api
            .handle(&Identity::Admin, &r)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((resp.code, resp.json().unwrap_or(Value::Null)))
    };
    let current = match current {
        Some(c) => c.clone(),
        None => match send(Verb::Get, Some(&name), None).await? {
            (200, l) => l,
            (404, _) => {
                return match send(Verb::Create, None, Some(&lease(id, addr, None))).await? {
                    (201, l) => Ok(l),
                    (code, body) => Err(format!("create: {code} {}", body["message"])),
                };
            }
            (code, body) => return Err(format!("get: {code} {}", body["message"])),
        },
    };
    match send(
        Verb::Update,
        Some(&name),
        Some(&lease(id, addr, Some(&current))),
    )
    .await?
    {
        (200, l) => Ok(l),
        (code, body) => Err(format!("update: {code} {}", body["message"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_master_and_address_and_keeps_what_it_renews() {
        let addr: SocketAddr = "127.0.0.1:6444".parse().unwrap();
        let first = lease(2, addr, None);
        assert_eq!(first["metadata"]["name"], "apiserver-2");
        assert_eq!(first["metadata"]["namespace"], "kube-system");
        assert_eq!(
            first["metadata"]["labels"][IDENTITY_LABEL],
            "kube-apiserver"
        );
        assert_eq!(
            first["metadata"]["annotations"][ADDRESS_ANNOTATION],
            "127.0.0.1:6444"
        );
        assert_eq!(first["spec"]["leaseDurationSeconds"], LEASE_SECONDS);
        let l: k8s_openapi::api::coordination::v1::Lease =
            serde_json::from_value(first.clone()).expect("a valid Lease");
        assert_eq!(
            ferry_control::endpoints::apiserver::lease_address(&l),
            Some(addr)
        );
        let mut stored = first.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        let again = lease(2, addr, Some(&stored));
        assert_eq!(again["metadata"]["resourceVersion"], "7");
        assert_eq!(again["spec"]["acquireTime"], first["spec"]["acquireTime"]);
    }
}
