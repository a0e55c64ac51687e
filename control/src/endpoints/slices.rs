//! The EndpointSlice controller's reconciler (Kubernetes' `endpointslice`
//! reconciler, IPv4 only): endpoints grouped by the ports they resolve to, at
//! most [`MAX_ENDPOINTS_PER_SLICE`] a slice; existing slices keep the
//! endpoints they hold and take new ones before new slices are made; a
//! create paired with a delete becomes an update; a Service with no
//! endpoints keeps one empty placeholder slice.

use super::*;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashMap;
use std::sync::Arc;

/// The writes that bring a Service's slices to what its pods say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SliceChanges {
    /// New slices (`generateName: <service>-`).
    pub create: Vec<EndpointSlice>,
    /// Whole replacements, each with the stored slice's name and resourceVersion.
    pub update: Vec<EndpointSlice>,
    /// (name, uid) of slices to delete.
    pub delete: Vec<(String, String)>,
}

impl SliceChanges {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The index key of a slice this controller manages: `namespace/service`.
pub fn managed_slice_service(s: &EndpointSlice) -> Option<String> {
    let l = s.metadata.labels.as_ref()?;
    if l.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let svc = l.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{svc}",
        s.metadata.namespace.as_deref().unwrap_or("")
    ))
}

/// A port set as a comparable key (order does not matter, as Kubernetes' port map key).
fn port_key(ports: &[EndpointPort]) -> Vec<(String, Option<i32>, String, Option<String>)> {
    let mut k: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

/// An endpoint's identity: its addresses and the object it stands for.
fn endpoint_key(e: &Endpoint) -> (Vec<String>, Option<String>, Option<String>) {
    let mut a = e.addresses.clone();
    a.sort();
    let r = e.target_ref.as_ref();
    (
        a,
        r.and_then(|r| r.namespace.clone()),
        r.and_then(|r| r.name.clone()),
    )
}

/// The pod as an endpoint of `svc`.
fn endpoint(svc: &Service, p: &Pod, ip: String) -> Endpoint {
    let (ready, serving, terminating) = conditions(svc, p);
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(svc, p),
        node_name: node_name(p),
        target_ref: Some(target_ref(p)),
        ..Endpoint::default()
    }
}

/// The desired endpoints, grouped by resolved port set, in first-seen order.
fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for p in selected(svc, pods).filter(|p| in_endpoints(p, true)) {
        let Some(ip) = pod_ipv4(p) else { continue };
        let ports: Vec<EndpointPort> = resolve_ports(svc, p)
            .into_iter()
            .map(|r| EndpointPort {
                name: Some(r.name),
                port: Some(r.port),
                protocol: Some(r.protocol),
                app_protocol: r.app_protocol,
            })
            .collect();
        let ep = endpoint(svc, p, ip);
        let key = port_key(&ports);
        match groups.iter_mut().find(|(ps, _)| port_key(ps) == key) {
            Some((_, eps)) => eps.push(ep),
            None => groups.push((ports, vec![ep])),
        }
    }
    groups
}

/// The labels the Service's slices carry.
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = service_labels(svc);
    l.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l
}

/// A new, empty slice of `svc` with `ports`.
fn new_slice(svc: &Service, ports: Vec<EndpointPort>) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![meta::controller_ref("v1", "Service", &svc.metadata)]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

fn owned_by(s: &EndpointSlice, svc: &Service) -> bool {
    meta::controller_of(&s.metadata)
        .is_some_and(|o| o.kind == "Service" && Some(&o.uid) == svc.metadata.uid.as_ref())
}

/// What one port group decides: slices to create, update, delete, and the
/// names of those left as they are.
#[derive(Default)]
struct Group {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<Arc<EndpointSlice>>,
    unchanged: Vec<Arc<EndpointSlice>>,
}

/// Kubernetes' `reconcileByPortMapping` for one port set.
fn reconcile_group(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    ports: &[EndpointPort],
    want: Vec<Endpoint>,
) -> Group {
    let labels = slice_labels(svc);
    let mut g = Group::default();
    let mut index: HashMap<_, usize> = HashMap::new();
    for (i, e) in want.iter().enumerate() {
        index.insert(endpoint_key(e), i);
    }
    let mut left: Vec<Option<Endpoint>> = want.into_iter().map(Some).collect();
    // 1. Existing slices keep the endpoints still wanted, updated in place.
    for s in existing {
        let mut kept = Vec::new();
        let mut changed = s.metadata.labels.as_ref() != Some(&labels);
        for e in &s.endpoints {
            match index.get(&endpoint_key(e)).and_then(|&i| left[i].take()) {
                Some(d) => {
                    changed |= &d != e;
                    kept.push(d);
                }
                None => changed = true,
            }
        }
        if kept.is_empty() {
            g.delete.push(s.clone());
        } else if changed {
            let mut u = (**s).clone();
            u.endpoints = kept;
            u.metadata.labels = Some(labels.clone());
            g.update.push(u);
        } else {
            g.unchanged.push(s.clone());
        }
    }
    let mut rest: std::collections::VecDeque<Endpoint> = left.into_iter().flatten().collect();
    // 2. New endpoints fill the slices being updated anyway, fullest first.
    g.update
        .sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for u in &mut g.update {
        while u.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some(e) = rest.pop_front() else { break };
            u.endpoints.push(e);
        }
    }
    // 3. Then an unchanged slice they all fit in (closest to full), else new slices.
    while !rest.is_empty() {
        let fill = (rest.len() < MAX_ENDPOINTS_PER_SLICE)
            .then(|| slice_to_fill(&g.unchanged, rest.len()))
            .flatten();
        let mut s = match fill {
            Some(i) => (*g.unchanged.remove(i)).clone(),
            None => new_slice(svc, ports.to_vec()),
        };
        while s.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some(e) = rest.pop_front() else { break };
            s.endpoints.push(e);
        }
        if s.metadata.name.is_some() {
            g.update.push(s);
        } else {
            g.create.push(s);
        }
    }
    g
}

/// `getSliceToFill`: the slice that will be closest to full with `n` more.
fn slice_to_fill(slices: &[Arc<EndpointSlice>], n: usize) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, s) in slices.iter().enumerate() {
        let Some(diff) = MAX_ENDPOINTS_PER_SLICE.checked_sub(n + s.endpoints.len()) else {
            continue;
        };
        if best.is_none_or(|(_, d)| diff < d) {
            best = Some((i, diff));
        }
    }
    best.map(|(i, _)| i)
}

/// Whether `s` is the placeholder an endpoint-less Service keeps.
fn is_placeholder(s: &EndpointSlice, svc: &Service) -> bool {
    s.address_type == "IPv4"
        && owned_by(s, svc)
        && s.endpoints.is_empty()
        && s.ports.as_deref().unwrap_or_default().is_empty()
        && s.metadata.labels.as_ref() == Some(&slice_labels(svc))
}

/// The writes that make `existing` — the slices this controller manages for
/// the Service (labelled with its name) — hold the endpoints of `pods` (any
/// pods; those of other namespaces or labels are ignored). The Service must
/// be [`managed`].
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
) -> SliceChanges {
    reconcile_groups(svc, desired(svc, pods), existing)
}

/// [`reconcile`] for endpoints already grouped by port set (a Service whose
/// endpoints are not pods: the `kubernetes` Service's masters).
pub(crate) fn reconcile_groups(
    svc: &Service,
    mut groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)>,
    existing: &[Arc<EndpointSlice>],
) -> SliceChanges {
    let mut existing: Vec<Arc<EndpointSlice>> = existing.to_vec();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Slices of another address type, or of an older Service of this name, go.
    let (mine, mut delete): (Vec<_>, Vec<_>) = existing
        .iter()
        .cloned()
        .partition(|s| s.address_type == "IPv4" && owned_by(s, svc));
    let mut out = SliceChanges::default();
    let mut unchanged = 0;
    let mut claimed = vec![false; mine.len()];
    for (ports, want) in groups.drain(..) {
        let key = port_key(&ports);
        let mut same = Vec::new();
        for (s, c) in mine.iter().zip(claimed.iter_mut()) {
            if !*c && port_key(s.ports.as_deref().unwrap_or_default()) == key {
                *c = true;
                same.push(s.clone());
            }
        }
        let g = reconcile_group(svc, &same, &ports, want);
        out.create.extend(g.create);
        out.update.extend(g.update);
        delete.extend(g.delete);
        unchanged += g.unchanged.len();
    }
    // Slices whose port set no pod resolves to any more.
    delete.extend(
        mine.iter()
            .zip(&claimed)
            .filter(|(_, c)| !**c)
            .map(|(s, _)| s.clone()),
    );
    // No endpoints at all: keep (or make) one placeholder.
    if unchanged == 0 && out.update.is_empty() && out.create.is_empty() {
        match delete.iter().position(|s| is_placeholder(s, svc)) {
            Some(i) => {
                delete.remove(i);
            }
            None => out.create.push(new_slice(svc, Vec::new())),
        }
    }
    // A create and a delete of an owned IPv4 slice: update that slice instead.
    let mut kept_deletes = Vec::new();
    for d in delete {
        let reusable = d.address_type == "IPv4" && owned_by(&d, svc);
        match out.create.pop() {
            Some(mut c) if reusable => {
                c.metadata.name = d.metadata.name.clone();
                c.metadata.generate_name = None;
                c.metadata.resource_version = d.metadata.resource_version.clone();
                c.metadata.uid = d.metadata.uid.clone();
                out.update.push(c);
            }
            other => {
                out.create.extend(other);
                kept_deletes.push(d);
            }
        }
    }
    out.delete = kept_deletes
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap_or_default(),
                s.metadata.uid.clone().unwrap_or_default(),
            )
        })
        .collect();
    out
}

#[cfg(test)]
mod tests;
