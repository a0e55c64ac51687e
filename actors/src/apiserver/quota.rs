//! Quota admission, as Kubernetes' `ResourceQuota` plugin: a create in a
//! namespace with quotas is refused when it would exceed one
//! (`exceeded quota: ...`), and otherwise charged to each quota tracking it
//! by an update of its `status.used` with the read resourceVersion as
//! precondition (retried on a conflict), before the object is stored. The
//! quota controller recounts from the objects (releasing what deletes freed).

use super::{ApiServer, Outcome};
use ferry_api::object::{ObjectRequest, Status, Verb};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::resources::Resource;
use ferry_api::tls::Identity;
use serde_json::Value;
use std::collections::BTreeMap;

/// Conflicting quota updates tried before giving up.
const ATTEMPTS: usize = 8;

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl ApiServer {
    /// LimitRanger: the namespace's LimitRanges default a new pod's
    /// containers' requests and limits, and refuse a pod (its containers or
    /// their sum) or a claim out of bounds.
    pub(super) async fn admit_limit_ranges(
        &self,
        res: &Resource,
        obj: &mut Value,
        ns: &str,
    ) -> Outcome<()> {
        let lr = ferry_api::resources::by_cli_name("limitranges").expect("limitranges served");
        let ranges = self.local_objects(lr, Some(ns)).await?;
        let checked = match res.kind {
            "Pod" => ferry_api::limitrange::apply(obj, &ranges),
            "PersistentVolumeClaim" => ferry_api::limitrange::check_claim(obj, &ranges),
            _ => Ok(()),
        };
        checked.map_err(|errors| {
            let name = obj
                .pointer("/metadata/name")
                .or_else(|| obj.pointer("/metadata/generateName"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            Status::forbidden(ferry_api::limitrange::refusal(res.plural, name, &errors)).into()
        })
    }

    /// Charges a new object to its namespace's quotas, or refuses it.
    pub(super) async fn admit_quota(&self, res: &Resource, obj: &Value, ns: &str) -> Outcome<()> {
        if res.kind == "ResourceQuota" || res.kind == "Event" {
            return Ok(());
        }
        let delta = ferry_api::quota::usage(res.plural, res.group, obj);
        if delta.is_empty() {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .or_else(|| obj.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for attempt in 0.. {
            let quotas = self
                .store
                .range(&RangeRequest {
                    prefix: format!("/registry/resourcequotas/{ns}/"),
                    start_after: None,
                    limit: 0,
                    consistency: if attempt == 0 {
                        Consistency::Local
                    } else {
                        Consistency::Linearizable
                    },
                })
                .await?
                .map_err(|e| Status::internal(e.to_string()))?;
            let mut conflicted = false;
            for kv in &quotas.kvs {
                let Ok(mut quota) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                let qname = quota["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                // A scoped quota covers only the pods its scopes select.
                if !ferry_api::quota::matches(&quota, res.plural, res.group, obj) {
                    continue;
                }
                let hard = strings(quota.pointer("/spec/hard"));
                let used = strings(quota.pointer("/status/used"));
                let next = ferry_api::quota::admit(&qname, &hard, &used, res.plural, obj, &delta)
                    .map_err(|why| {
                    Status::forbidden(format!("{} {name:?} is forbidden: {why}", res.plural))
                })?;
                let Some(next) = next else { continue };
                quota["status"]["used"] = serde_json::to_value(&next).unwrap_or_default();
                if quota.pointer("/status/hard").is_none() {
                    quota["status"]["hard"] = quota["spec"]["hard"].clone();
                }
                let mut r =
                    ObjectRequest::new(Verb::Update, "resourcequotas", Some(ns), Some(&qname));
                r.subresource = Some("status".into());
                r.body = serde_json::to_vec(&quota).unwrap_or_default();
                match Box::pin(self.handle(&Identity::Admin, &r)).await {
                    Ok(resp) if resp.code < 300 => {}
                    Ok(resp) if resp.code == 409 => conflicted = true,
                    Ok(resp) if resp.code == 404 => {}
                    Ok(resp) => {
                        return Err(Status::internal(format!(
                            "charging quota {qname}: {}",
                            String::from_utf8_lossy(&resp.body)
                        ))
                        .into())
                    }
                    Err(e) => return Err(e.into()),
                }
                if conflicted {
                    break;
                }
            }
            if !conflicted {
                return Ok(());
            }
            if attempt + 1 >= ATTEMPTS {
                break;
            }
        }
        Err(Status::new(
            409,
            "Conflict",
            format!(
                "{} {name:?}: its namespace's quota changed too often to charge it; try again",
                res.plural
            ),
        )
        .into())
    }
}
