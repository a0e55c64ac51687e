//! get and list: reads from this master's applied state, linearizable unless
//! the request names a resourceVersion.

use super::meta::{self, decode, parse_rv};
use super::{kv_status, ApiServer, Outcome};
use ferry_api::object::{ListOptions, ObjectRequest, ObjectResponse, Status};
use ferry_api::proto::{Consistency, RangeRequest};
use ferry_api::resources::Resource;
use ferry_api::selector::{FieldSelector, LabelSelector};
use serde_json::{json, Value};

/// Keys read per store page while filtering a list.
const SCAN_PAGE: u64 = 500;

/// The fields a field selector may name for a kind.
pub fn selectable_fields(res: &Resource) -> &'static [&'static str] {
    match res.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ],
        // As Kubernetes' event strategy (`source` aside: it names
        // `source.component`); `kubectl events --for` selects on the
        // involved object's kind, name and apiVersion.
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.resourceVersion",
            "involvedObject.uid",
            "reason",
            "reportingComponent",
            "type",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "Namespace" => &["metadata.name", "status.phase"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// Parsed list filters.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// Parses the selectors of `opts` for `res`.
    pub fn new(res: &Resource, opts: &ListOptions) -> Result<Filter, Status> {
        let labels = LabelSelector::parse(opts.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| Status::bad_request(format!("invalid label selector: {e}")))?;
        let fields = FieldSelector::parse(
            opts.field_selector.as_deref().unwrap_or(""),
            selectable_fields(res),
        )
        .map_err(|e| Status::bad_request(format!("invalid field selector: {e}")))?;
        Ok(Filter { labels, fields })
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

/// How fresh a read must be, from its resourceVersion: none = linearizable,
/// "0" = whatever this master has, N = at least N.
pub async fn consistency_for(server: &ApiServer, rv: Option<&str>) -> Outcome<Consistency> {
    Ok(match rv {
        None | Some("") => Consistency::Linearizable,
        Some("0") => Consistency::Local,
        Some(_) => {
            let n = parse_rv(rv)?.unwrap_or(0);
            server.store.wait_applied(n).await?;
            Consistency::Local
        }
    })
}

fn continue_token(rev: u64, key: &str) -> String {
    format!("{rev}/{key}")
}

fn parse_continue(token: &str, prefix: &str) -> Result<(u64, String), Status> {
    let bad = || {
        Status::bad_request(format!(
            "invalid continue token {token:?}: pass the token of the previous page unchanged"
        ))
    };
    let (rev, key) = token.split_once('/').ok_or_else(bad)?;
    let rev = rev.parse().map_err(|_| bad())?;
    let key = format!("/{key}");
    if !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rev, key))
}

impl ApiServer {
    /// GET one object.
    pub(super) async fn get(&self, res: &Resource, req: &ObjectRequest) -> Outcome<ObjectResponse> {
        let name = req.name.as_deref().unwrap_or_default();
        let consistency = consistency_for(self, req.list.resource_version.as_deref()).await?;
        match self
            .read_object(res, req.namespace.as_deref(), name, consistency)
            .await?
        {
            Some((obj, _)) => Ok(ObjectResponse::ok(200, &obj)),
            None => Err(Status::not_found(&meta::qualified_resource(res), name).into()),
        }
    }

    /// Reads one object and its mod_revision.
    pub async fn read_object(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        consistency: Consistency,
    ) -> Outcome<Option<(Value, u64)>> {
        let key = res.key(ns, Some(name));
        let (kv, _) = self.store.get(&key, consistency).await?;
        match kv {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// LIST with selectors and pages.
    pub(super) async fn list(
        &self,
        res: &Resource,
        req: &ObjectRequest,
    ) -> Outcome<ObjectResponse> {
        let filter = Filter::new(res, &req.list)?;
        let prefix = res.key(req.namespace.as_deref(), None);
        let (consistency, start_after) = match req.list.continue_token.as_deref() {
            Some(t) if !t.is_empty() => {
                let (rev, key) = parse_continue(t, &prefix)?;
                (Consistency::AtRevision(rev), Some(key))
            }
            _ => (
                consistency_for(self, req.list.resource_version.as_deref()).await?,
                None,
            ),
        };
        let scan = self
            .scan(
                res,
                &prefix,
                &filter,
                consistency,
                start_after,
                req.list.limit,
            )
            .await?;
        let mut metadata = json!({ "resourceVersion": scan.revision.to_string() });
        if let Some(k) = scan.next {
            metadata["continue"] = json!(continue_token(scan.revision, &k[1..]));
        }
        let list = json!({
            "apiVersion": res.api_version(),
            "kind": format!("{}List", res.kind),
            "metadata": metadata,
            "items": scan.items,
        });
        Ok(ObjectResponse::ok(200, &list))
    }

    /// Every object of `res` (in `namespace`, for a namespaced kind) as this
    /// master has applied it: what admission plugins read (classes, ranges).
    pub(super) async fn local_objects(
        &self,
        res: &Resource,
        namespace: Option<&str>,
    ) -> Outcome<Vec<Value>> {
        let filter = Filter::new(res, &Default::default())?;
        let prefix = res.key(namespace, None);
        let scan = self
            .scan(res, &prefix, &filter, Consistency::Local, None, 0)
            .await?;
        Ok(scan.items)
    }

    /// Reads the objects under `prefix` that pass `filter`, at most `limit`
    /// (0 = all), all at one revision.
    pub async fn scan(
        &self,
        res: &Resource,
        prefix: &str,
        filter: &Filter,
        mut consistency: Consistency,
        mut start_after: Option<String>,
        limit: u64,
    ) -> Outcome<Scan> {
        let mut scan = Scan {
            items: Vec::new(),
            revision: 0,
            next: None,
        };
        loop {
            let page = self
                .store
                .range(&RangeRequest {
                    prefix: prefix.to_string(),
                    start_after: start_after.clone(),
                    limit: if limit == 0 { 0 } else { SCAN_PAGE.max(limit) },
                    consistency,
                })
                .await?
                .map_err(|e| match e {
                    ferry_api::kv::KvError::TooOld { .. } => Status::gone(format!(
                        "the provided continue parameter is too old to display a consistent list result: {e}; list again without it"
                    )),
                    e => kv_status(res, "", e),
                })?;
            scan.revision = page.revision;
            consistency = Consistency::AtRevision(page.revision);
            let n = page.kvs.len();
            for (i, kv) in page.kvs.iter().enumerate() {
                let obj = decode(kv)?;
                if filter.matches(&obj) {
                    scan.items.push(obj);
                }
                if limit > 0 && scan.items.len() as u64 == limit {
                    if i + 1 < n || page.more {
                        scan.next = Some(kv.key.clone());
                    }
                    return Ok(scan);
                }
            }
            if !page.more {
                return Ok(scan);
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
        }
    }
}

/// Objects read by [`ApiServer::scan`].
pub struct Scan {
    /// Matching objects, in key order.
    pub items: Vec<Value>,
    /// The revision they were read at.
    pub revision: u64,
    /// The last key returned when more may follow.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_events_for_an_object_selects_its_events() {
        let events = ferry_api::resources::by_cli_name("events").expect("events are served");
        // What `kubectl events --for deploy/ro` (1.32) sends.
        let opts = ListOptions {
            field_selector: Some(
                "involvedObject.kind=Deployment,involvedObject.apiVersion=apps/v1,\
                 involvedObject.name=ro"
                    .into(),
            ),
            ..ListOptions::default()
        };
        let f = Filter::new(events, &opts).unwrap_or_else(|e| panic!("{}", e.message));
        let event = |name: &str| {
            json!({"involvedObject": {"kind": "Deployment", "apiVersion": "apps/v1", "name": name},
                   "reason": "ScalingReplicaSet"})
        };
        assert!(f.matches(&event("ro")));
        assert!(!f.matches(&event("other")));
        let unknown = ListOptions {
            field_selector: Some("involvedObject.color=red".into()),
            ..ListOptions::default()
        };
        assert!(Filter::new(events, &unknown).is_err());
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = continue_token(17, "registry/pods/default/web-1");
        let (rev, key) = parse_continue(&t, "/registry/pods/default/").unwrap();
        assert_eq!((rev, key.as_str()), (17, "/registry/pods/default/web-1"));
        for bad in ["", "abc", "x/registry/pods/a"] {
            let e = parse_continue(bad, "/registry/pods/").unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
        }
    }
}
