use super::super::fixtures::*;
use super::*;
use serde_json::json;

/// Stores `changes` over `slices` as the API would (names for creates,
/// resourceVersions bumped); the slices after.
fn store(slices: &[Arc<EndpointSlice>], changes: &SliceChanges) -> Vec<Arc<EndpointSlice>> {
    let mut out: Vec<EndpointSlice> = slices
        .iter()
        .filter(|s| {
            !changes
                .delete
                .iter()
                .any(|(n, _)| s.metadata.name.as_ref() == Some(n))
        })
        .map(|s| (**s).clone())
        .collect();
    for u in &changes.update {
        let at = out
            .iter()
            .position(|s| s.metadata.name == u.metadata.name)
            .expect("an update names a stored slice");
        assert_eq!(
            u.metadata.resource_version,
            out[at].metadata.resource_version
        );
        out[at] = u.clone();
        out[at].metadata.resource_version = Some("2".into());
    }
    for (i, c) in changes.create.iter().enumerate() {
        let mut c = c.clone();
        c.metadata.name = Some(format!("web-{}{i}", out.len()));
        c.metadata.uid = Some(format!("slice-{}{i}", out.len()));
        c.metadata.resource_version = Some("1".into());
        out.push(c);
    }
    out.into_iter().map(Arc::new).collect()
}

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            arc(pod(
                &format!("p{i:03}"),
                "web",
                Some(&format!("10.42.{}.{}", i / 200, i % 200 + 1)),
                true,
            ))
        })
        .collect()
}

fn count(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
    let mut v: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    v.sort();
    v
}

#[test]
fn a_new_service_gets_one_slice_of_its_pods_endpoints() {
    let mut gone = pod("d", "web", Some("10.42.1.8"), true);
    gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let ps = [
        arc(pod("a", "web", Some("10.42.1.5"), true)),
        arc(pod("b", "web", Some("10.42.1.6"), false)),
        arc(pod("x", "db", Some("10.42.1.9"), true)),
        arc(pod("n", "web", None, true)),
        arc(gone),
    ];
    let c = reconcile(&web(), &ps, &[]);
    assert!(c.update.is_empty() && c.delete.is_empty());
    let [s] = &c.create[..] else { panic!("{c:?}") };
    let want: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"generateName": "web-", "namespace": "d",
            "labels": {"kubernetes.io/service-name": "web", "team": "a",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                "uid": "svc-uid", "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.42.1.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "a", "namespace": "d", "uid": "uid-a"}},
            {"addresses": ["10.42.1.6"], "conditions": {"ready": false, "serving": false, "terminating": false},
             "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "b", "namespace": "d", "uid": "uid-b"}},
            {"addresses": ["10.42.1.8"], "conditions": {"ready": false, "serving": true, "terminating": true},
             "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "d", "namespace": "d", "uid": "uid-d"}},
        ]
    }))
    .unwrap();
    assert_eq!(s, &want);
    // Stored, nothing more to do.
    let stored = store(&[], &c);
    assert!(reconcile(&web(), &ps, &stored).is_empty());
}

#[test]
fn a_service_that_selects_nothing_keeps_one_empty_slice() {
    let c = reconcile(&web(), &[], &[]);
    assert_eq!(c.create.len(), 1);
    assert!(c.create[0].endpoints.is_empty());
    assert_eq!(c.create[0].ports.as_deref(), Some(&[][..]));
    let stored = store(&[], &c);
    assert!(reconcile(&web(), &[], &stored).is_empty(), "kept as it is");
    // The last pod going turns its slice into the placeholder in place.
    let one = pods(1);
    let stored = store(&[], &reconcile(&web(), &one, &[]));
    let c = reconcile(&web(), &[], &stored);
    assert!(c.create.is_empty() && c.delete.is_empty(), "{c:?}");
    assert_eq!(c.update.len(), 1);
    assert_eq!(c.update[0].metadata.name, stored[0].metadata.name);
    assert!(c.update[0].endpoints.is_empty());
}

#[test]
fn a_readiness_change_updates_the_slice_in_place() {
    let ready = pods(3);
    let stored = store(&[], &reconcile(&web(), &ready, &[]));
    let mut changed = ready.clone();
    changed[1] = arc(pod("p001", "web", Some("10.42.0.2"), false));
    let c = reconcile(&web(), &changed, &stored);
    assert!(c.create.is_empty() && c.delete.is_empty(), "{c:?}");
    let [u] = &c.update[..] else { panic!("{c:?}") };
    assert_eq!(u.metadata.name, stored[0].metadata.name);
    assert_eq!(u.metadata.resource_version.as_deref(), Some("1"));
    let conds: Vec<Option<bool>> = u
        .endpoints
        .iter()
        .map(|e| e.conditions.as_ref().unwrap().ready)
        .collect();
    assert_eq!(conds, [Some(true), Some(false), Some(true)]);
}

#[test]
fn slices_hold_at_most_a_hundred_endpoints() {
    let c = reconcile(&web(), &pods(250), &[]);
    let stored = store(&[], &c);
    assert_eq!(count(&stored), [50, 100, 100]);
    assert!(reconcile(&web(), &pods(250), &stored).is_empty());
    // Ten more: they go to the slice being updated anyway? None is; the
    // half-full slice is the one closest to full that takes them all.
    let c = reconcile(&web(), &pods(260), &stored);
    assert!(c.create.is_empty(), "{c:?}");
    let after = store(&stored, &c);
    assert_eq!(count(&after), [60, 100, 100]);
    // Removing pods empties no slice needlessly; a removal updates in place.
    let c = reconcile(&web(), &pods(120), &after);
    let after = store(&after, &c);
    let total: usize = count(&after).iter().sum();
    assert_eq!(total, 120);
    assert!(reconcile(&web(), &pods(120), &after).is_empty());
}

#[test]
fn new_endpoints_fill_a_slice_already_being_updated_first() {
    let stored = store(&[], &reconcile(&web(), &pods(100), &[]));
    assert_eq!(count(&stored), [100]);
    // One pod leaves and two arrive: one fills the updated slice, one needs a new one.
    let mut ps = pods(102);
    ps.remove(0);
    let c = reconcile(&web(), &ps, &stored);
    assert_eq!(c.update.len(), 1);
    assert_eq!(c.update[0].endpoints.len(), 100);
    assert_eq!(c.create.len(), 1);
    assert_eq!(c.create[0].endpoints.len(), 1);
}

#[test]
fn pods_resolving_different_ports_go_to_different_slices() {
    let svc = service(json!([
        {"name": "a", "port": 80, "targetPort": 9000, "protocol": "TCP"},
        {"name": "b", "port": 81, "targetPort": "http", "protocol": "TCP"},
    ]));
    let mut bare = pod("q", "web", Some("10.42.1.8"), true);
    bare["spec"]["containers"][0]["ports"] = json!([]);
    let ps = [arc(pod("p", "web", Some("10.42.1.5"), true)), arc(bare)];
    let c = reconcile(&svc, &ps, &[]);
    assert_eq!(c.create.len(), 2);
    let ports = |s: &EndpointSlice| -> Vec<(String, i32)> {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
            .collect()
    };
    let addrs = |s: &EndpointSlice| s.endpoints[0].addresses[0].clone();
    let mut got: Vec<_> = c.create.iter().map(|s| (addrs(s), ports(s))).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "10.42.1.5".into(),
                vec![("a".into(), 9000), ("b".into(), 8080)]
            ),
            ("10.42.1.8".into(), vec![("a".into(), 9000)]),
        ]
    );
    // The pod gaining the port joins the other's slice; its own slice goes.
    let stored = store(&[], &c);
    let ps = [
        arc(pod("p", "web", Some("10.42.1.5"), true)),
        arc(pod("q", "web", Some("10.42.1.8"), true)),
    ];
    let c = reconcile(&svc, &ps, &stored);
    assert!(c.create.is_empty(), "{c:?}");
    assert_eq!(c.update.len(), 1);
    assert_eq!(c.update[0].endpoints.len(), 2);
    assert_eq!(c.delete.len(), 1);
    let after = store(&stored, &c);
    assert!(reconcile(&svc, &ps, &after).is_empty());
}

#[test]
fn slices_of_an_older_service_of_the_same_name_are_replaced() {
    let stored = store(&[], &reconcile(&web(), &pods(2), &[]));
    let mut newer = web();
    newer.metadata.uid = Some("svc-uid-2".into());
    let c = reconcile(&newer, &pods(2), &stored);
    assert_eq!(c.delete.len(), 1);
    assert_eq!(c.create.len(), 1);
    assert!(c.update.is_empty());
    let owner = &c.create[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, "svc-uid-2");
}

#[test]
fn a_service_label_change_reaches_its_slices() {
    let stored = store(&[], &reconcile(&web(), &pods(2), &[]));
    let mut relabelled = web();
    relabelled.metadata.labels = Some(BTreeMap::from([("team".into(), "b".into())]));
    let c = reconcile(&relabelled, &pods(2), &stored);
    assert_eq!(c.update.len(), 1);
    assert_eq!(c.update[0].metadata.labels.as_ref().unwrap()["team"], "b");
    assert_eq!(
        managed_slice_service(&c.update[0]).as_deref(),
        Some("d/web")
    );
}
