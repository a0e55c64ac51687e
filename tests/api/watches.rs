//! Object watches: order, selector transitions, initial state and bookmarks,
//! 410 Gone after compaction, and resuming across a master failure.

use crate::api::{configmap, rv, Api};
use crate::harness::WAIT;
use ferry_api::client::Watch;
use ferry_api::kv::Write;
use ferry_api::object::{ObjectEvent, ObjectRequest, PatchType, Verb};
use serde_json::{json, Value};

fn watch_req(ns: Option<&str>, rv: Option<String>, labels: Option<&str>) -> ObjectRequest {
    let mut r = ObjectRequest::new(Verb::Watch, "configmaps", ns, None);
    r.list.resource_version = rv;
    r.list.label_selector = labels.map(str::to_string);
    r.list.allow_bookmarks = true;
    r
}

/// The next non-bookmark event: (type, name, object).
async fn next(w: &mut Watch<ObjectRequest>) -> (String, String, Value) {
    loop {
        let ev: ObjectEvent = tokio::time::timeout(WAIT, w.next())
            .await
            .unwrap_or_else(|_| panic!("no watch event within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("watch failed: {e}"));
        if ev.kind == "BOOKMARK" {
            continue;
        }
        let obj: Value = serde_json::from_slice(&ev.object).expect("event object is JSON");
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return (ev.kind, name, obj);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_selectors_initial_state_and_gone() {
    let (c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let a = api
        .create("configmaps", ns, &configmap("a", json!({"app": "x"})))
        .await;

    // From a resourceVersion: every later change, in order.
    let mut w = c.client.watch_objects(watch_req(ns, Some(rv(&a)), None));
    let mut sel = c
        .client
        .watch_objects(watch_req(ns, Some(rv(&a)), Some("app=x")));
    api.patch(
        "configmaps",
        ns,
        "a",
        PatchType::Merge,
        &json!({"data": {"k": "v2"}}),
        None,
    )
    .await;
    api.create("configmaps", ns, &configmap("b", json!({"app": "y"})))
        .await;
    api.patch(
        "configmaps",
        ns,
        "b",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "x"}}}),
        None,
    )
    .await;
    api.patch(
        "configmaps",
        ns,
        "a",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "z"}}}),
        None,
    )
    .await;
    api.delete("configmaps", ns, "b", &json!({})).await;
    let mut got = Vec::new();
    let mut last = 0u64;
    for _ in 0..5 {
        let (t, n, o) = next(&mut w).await;
        let r: u64 = rv(&o).parse().unwrap();
        assert!(r > last, "revisions increase: {r} after {last}");
        last = r;
        got.push((t, n));
    }
    let want = [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ];
    assert_eq!(got, want.map(|(t, n)| (t.to_string(), n.to_string())));
    // With a selector: objects entering and leaving the selection.
    let mut got = Vec::new();
    for _ in 0..4 {
        let (t, n, _) = next(&mut sel).await;
        got.push((t, n));
    }
    let want = [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("DELETED", "b"),
    ];
    assert_eq!(got, want.map(|(t, n)| (t.to_string(), n.to_string())));

    // Without a resourceVersion: the current objects as ADDED, then a bookmark.
    let mut fresh = c.client.watch_objects(watch_req(ns, None, None));
    let (t, n, _) = next(&mut fresh).await;
    assert_eq!((t.as_str(), n.as_str()), ("ADDED", "a"));
    api.create("configmaps", ns, &configmap("c", json!({})))
        .await;
    let (t, n, _) = next(&mut fresh).await;
    assert_eq!((t.as_str(), n.as_str()), ("ADDED", "c"));

    // After compaction, an old resourceVersion gets one ERROR event: 410 Gone.
    let head = api
        .create("configmaps", ns, &configmap("d", json!({})))
        .await;
    let head: u64 = rv(&head).parse().unwrap();
    c.client.write(Write::Compact(head)).await.unwrap().unwrap();
    let mut old = c.client.watch_objects(watch_req(ns, Some(rv(&a)), None));
    let ev = tokio::time::timeout(WAIT, old.next())
        .await
        .expect("an event")
        .expect("an ERROR event, not a failure");
    assert_eq!(ev.kind, "ERROR");
    let status: Value = serde_json::from_slice(&ev.object).unwrap();
    assert_eq!(
        (status["code"].as_u64(), status["reason"].as_str()),
        (Some(410), Some("Expired")),
        "{status}"
    );
    // A list continued from a compacted revision is also 410.
    let (_, page) = api
        .list(
            "configmaps",
            ns,
            ferry_api::object::ListOptions {
                limit: 1,
                ..Default::default()
            },
        )
        .await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let newer = api
        .create("configmaps", ns, &configmap("e", json!({})))
        .await;
    c.client
        .write(Write::Compact(rv(&newer).parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let opts = ferry_api::object::ListOptions {
        limit: 1,
        continue_token: Some(token),
        ..Default::default()
    };
    assert_eq!(api.list("configmaps", ns, opts).await.0, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_master_without_loss_or_repeats() {
    let (mut c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let start = api
        .create("configmaps", ns, &configmap("w-000", json!({})))
        .await;
    let mut w = c
        .client
        .watch_objects(watch_req(ns, Some(rv(&start)), None));
    // The watch's master: the one the shared client is connected to.
    api.create("configmaps", ns, &configmap("w-001", json!({})))
        .await;
    assert_eq!(next(&mut w).await.1, "w-001");
    let serving = c.client.current_master().await.expect("connected");
    let victim = (0..3)
        .find(|i| c.master(*i).addr.to_string() == serving)
        .unwrap();
    let other = Api(c.local_arc((victim + 1) % 3));
    for i in 2..40 {
        if i == 15 {
            c.stop(victim).await;
        }
        let name = format!("w-{i:03}");
        let (code, body) = other
            .call(Api::req(
                Verb::Create,
                "configmaps",
                ns,
                None,
                Some(&configmap(&name, json!({}))),
            ))
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let mut names = Vec::new();
    while names.len() < 38 {
        let (t, n, _) = next(&mut w).await;
        assert_eq!(t, "ADDED");
        names.push(n);
    }
    let want: Vec<String> = (2..40).map(|i| format!("w-{i:03}")).collect();
    assert_eq!(
        names, want,
        "every event once, in order, across the failover"
    );
    assert_ne!(
        c.client.current_master().await.as_deref(),
        Some(serving.as_str())
    );
}

/// A watch opened without a resourceVersion starts with the objects that exist
/// (ADDED, no resume point). When its master dies among them, the watch lists
/// again on another master: what it already delivered is not repeated, what
/// changed in between comes as MODIFIED or DELETED, and live events follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cut_among_its_initial_objects_repeats_none() {
    let (mut c, api) = crate::api::cluster().await;
    let ns = Some("default");
    // 30 objects of 400 KiB: more than a stream's 4 MiB flow-control window, so the
    // serving master is still sending the initial objects when it stops.
    let blob = "x".repeat(400 * 1024);
    let name = |i: usize| format!("i-{i:02}");
    for i in 0..30 {
        let mut cm = configmap(&name(i), json!({}));
        cm["data"] = json!({ "blob": blob });
        api.create("configmaps", ns, &cm).await;
    }
    let mut w = c.client.watch_objects(watch_req(ns, None, None));
    for i in 0..3 {
        let (t, n, _) = next(&mut w).await;
        assert_eq!((t.as_str(), n), ("ADDED", name(i)));
    }
    let serving = c.client.current_master().await.expect("connected");
    let victim = (0..3)
        .find(|i| c.master(*i).addr.to_string() == serving)
        .unwrap();
    let other = Api(c.local_arc((victim + 1) % 3));
    // Changes after the first list began: one delivered object deleted, one
    // delivered object changed, one object not yet delivered deleted.
    for n in [name(1), name(28)] {
        assert_eq!(other.delete("configmaps", ns, &n, &json!({})).await.0, 200);
    }
    let (code, body) = other
        .patch(
            "configmaps",
            ns,
            &name(2),
            PatchType::Merge,
            &json!({"metadata": {"labels": {"changed": "yes"}}}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    c.stop(victim).await;
    let mut added = Vec::new();
    let mut others = Vec::new();
    while added.len() < 26 || others.len() < 2 {
        let (t, n, obj) = next(&mut w).await;
        match t.as_str() {
            "ADDED" => added.push(n),
            _ => others.push((t, n, obj)),
        }
    }
    let want: Vec<String> = (3..30).filter(|i| *i != 28).map(name).collect();
    assert_eq!(
        added, want,
        "each remaining object once, in order, none repeated"
    );
    others.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        others
            .iter()
            .map(|(t, n, _)| (t.as_str(), n.as_str()))
            .collect::<Vec<_>>(),
        vec![("DELETED", "i-01"), ("MODIFIED", "i-02")],
        "what changed between the two lists"
    );
    assert_eq!(others[1].2["metadata"]["labels"]["changed"], "yes");
    // Live events follow, once.
    other
        .create("configmaps", ns, &configmap("i-30", json!({})))
        .await;
    let (t, n, _) = next(&mut w).await;
    assert_eq!((t.as_str(), n.as_str()), ("ADDED", "i-30"));
}

/// The next event, bookmarks included.
async fn raw(w: &mut Watch<ObjectRequest>) -> ObjectEvent {
    tokio::time::timeout(WAIT, w.next())
        .await
        .unwrap_or_else(|_| panic!("no watch event within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("watch failed: {e}"))
}

/// A bookmark is the kind's bare object carrying its revision as resourceVersion.
fn check_bookmark(ev: &ObjectEvent) {
    assert_eq!(ev.kind, "BOOKMARK");
    let obj: Value = serde_json::from_slice(&ev.object).expect("bookmark object is JSON");
    assert_eq!(
        obj,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"resourceVersion": ev.revision.to_string()}}),
    );
}

/// Every bookmark's revision is at least that of every event before it; every
/// change's is above that of every event (bookmarks included) before it.
fn check_order(seq: &[ObjectEvent]) {
    let kinds: Vec<_> = seq.iter().map(|e| (e.kind.as_str(), e.revision)).collect();
    for (i, e) in seq.iter().enumerate() {
        for before in &seq[..i] {
            assert!(before.revision <= e.revision, "{kinds:?}");
            if e.kind != "BOOKMARK" {
                assert!(before.revision < e.revision, "{kinds:?}");
            }
        }
    }
}

/// With `allowWatchBookmarks`: a watch from a resourceVersion starts with a bookmark
/// at it; one without starts with the current objects, then a bookmark at the
/// list's revision; an idle watch reports its progress with bookmarks. Without
/// `allowWatchBookmarks` no bookmark comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_at_start_and_when_idle_only_when_asked() {
    let (c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let a = api
        .create("configmaps", ns, &configmap("a", json!({})))
        .await;
    let b = api
        .create("configmaps", ns, &configmap("b", json!({})))
        .await;
    let start: u64 = rv(&b).parse().unwrap();
    let mut from = c.client.watch_objects(watch_req(ns, Some(rv(&b)), None));
    let mut fresh = c.client.watch_objects(watch_req(ns, None, None));
    let mut plain_req = watch_req(ns, Some(rv(&b)), None);
    plain_req.list.allow_bookmarks = false;
    let mut plain = c.client.watch_objects(plain_req);

    // From a resourceVersion: first a bookmark at it.
    let first = raw(&mut from).await;
    check_bookmark(&first);
    assert_eq!(first.revision, start);

    // Without one: the objects (no resume point), then at once a bookmark at the
    // list's revision, which covers every object listed. The changes below are made
    // once the list is read (its first object has come), so they come after it.
    let ev = raw(&mut fresh).await;
    assert_eq!((ev.kind.as_str(), ev.revision), ("ADDED", 0));
    let mut listed = vec![ev];

    // Three changes; then the idle watch reports progress past the last one.
    let mut last = 0;
    let mut changed = Vec::new();
    for i in 0..3 {
        let (code, o) = api
            .patch(
                "configmaps",
                ns,
                "a",
                PatchType::Merge,
                &json!({"data": {"i": i.to_string()}}),
                None,
            )
            .await;
        assert_eq!(code, 200, "{o}");
        last = rv(&o).parse().unwrap();
        changed.push(last);
    }
    let list_bookmark = loop {
        let ev = raw(&mut fresh).await;
        if ev.kind == "BOOKMARK" {
            break ev;
        }
        assert_eq!(
            (ev.kind.as_str(), ev.revision),
            ("ADDED", 0),
            "objects, then a bookmark"
        );
        listed.push(ev);
    };
    let listed: Vec<_> = listed
        .iter()
        .map(|ev| {
            let obj: Value = serde_json::from_slice(&ev.object).unwrap();
            (
                obj["metadata"]["name"].as_str().unwrap().to_string(),
                rv(&obj),
            )
        })
        .collect();
    check_bookmark(&list_bookmark);
    assert_eq!(listed, [("a".into(), rv(&a)), ("b".into(), rv(&b))]);
    assert!(
        start <= list_bookmark.revision && list_bookmark.revision < changed[0],
        "the list's bookmark {} is not between {start} and {changed:?}",
        list_bookmark.revision
    );

    let mut seqs = [
        ("from a resourceVersion", &mut from, vec![first]),
        ("from the list", &mut fresh, vec![list_bookmark]),
    ];
    for (what, w, seq) in &mut seqs {
        let mut changes = 0;
        loop {
            let kinds: Vec<_> = seq.iter().map(|e| (&e.kind, e.revision)).collect();
            assert!(
                kinds.len() < 20,
                "{what}: not 3 changes and a bookmark: {kinds:?}"
            );
            let ev = raw(w).await;
            if ev.kind == "BOOKMARK" {
                check_bookmark(&ev);
            } else {
                assert_eq!(ev.kind, "MODIFIED", "{what}");
                changes += 1;
            }
            let done = ev.kind == "BOOKMARK" && changes == 3;
            seq.push(ev);
            if done {
                break;
            }
        }
        check_order(seq);
        let idle = seq.last().unwrap();
        assert!(idle.revision >= last, "{what}: {} < {last}", idle.revision);
    }
    // The next change comes after those bookmarks.
    let (code, o) = api
        .patch(
            "configmaps",
            ns,
            "b",
            PatchType::Merge,
            &json!({"data": {"k": "changed"}}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{o}");
    for (what, w, seq) in &mut seqs {
        loop {
            let ev = raw(w).await;
            let kinds: Vec<_> = seq.iter().map(|e| (&e.kind, e.revision)).collect();
            assert!(kinds.len() < 20, "{what}: no change among {kinds:?}");
            let change = ev.kind != "BOOKMARK";
            seq.push(ev);
            if change {
                break;
            }
        }
        check_order(seq);
        assert_eq!(seq.last().unwrap().revision.to_string(), rv(&o), "{what}");
    }

    // Not asked for: the changes and nothing else, even idle for two bookmark periods.
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        kinds.push(raw(&mut plain).await.kind);
    }
    assert_eq!(kinds, ["MODIFIED"; 4]);
    let more = tokio::time::timeout(std::time::Duration::from_millis(2500), plain.next()).await;
    assert!(
        more.is_err(),
        "an event without allowWatchBookmarks: {more:?}"
    );
}

/// Concurrent creates are group-committed: several objects share one
/// revision. A watch delivers every one of them (it dropped all but the first
/// of a revision, taking the rest for repeats of a resumed stream), and a
/// watch resumed from a revision in the middle of them repeats none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_sharing_a_revision_all_arrive_once() {
    let (c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let first = api
        .create("configmaps", ns, &configmap("start", json!({})))
        .await;
    let mut w = c
        .client
        .watch_objects(watch_req(ns, Some(rv(&first)), None));
    let creates = (0..60).map(|i| {
        let api = Api(c.client.clone());
        async move {
            api.create(
                "configmaps",
                Some("default"),
                &configmap(&format!("m{i}"), json!({})),
            )
            .await
        }
    });
    let made = futures_util::future::join_all(creates).await;
    let mut revisions: Vec<String> = made.iter().map(rv).collect();
    revisions.sort();
    revisions.dedup();
    assert!(
        revisions.len() < made.len(),
        "the creates were batched: {} revisions for {} objects",
        revisions.len(),
        made.len()
    );
    let mut seen = std::collections::BTreeMap::new();
    let all = tokio::time::timeout(WAIT, async {
        while seen.len() < made.len() {
            let (t, n, _) = next(&mut w).await;
            assert_eq!(t, "ADDED");
            *seen.entry(n).or_insert(0) += 1;
        }
    })
    .await;
    assert!(
        all.is_ok(),
        "{} of {} creates arrived on the watch",
        seen.len(),
        made.len()
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

/// A pod bound to `node` (as a node agent's field selector picks its pods).
fn bound_pod(name: &str, node: &str) -> Value {
    let mut p = crate::api::pod(name);
    p["spec"]["nodeName"] = json!(node);
    p
}

/// Many field-selected watches on one master — node agents watching their own
/// pods — share each store event's decode: the master decodes every event
/// once, not once per watch, and each watch still gets exactly its pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selected_watches_decode_each_event_once() {
    const WATCHES: usize = 20;
    const PODS: usize = 40;
    let (c, api) = crate::api::cluster().await;
    let ns = Some("default");
    let start = api.create("pods", ns, &bound_pod("start", "none")).await;
    let mut watches: Vec<_> = (0..WATCHES)
        .map(|k| {
            let mut r = ObjectRequest::new(Verb::Watch, "pods", ns, None);
            r.list.resource_version = Some(rv(&start));
            r.list.field_selector = Some(format!("spec.nodeName=n{k}"));
            r.list.allow_bookmarks = true;
            c.local_arc(0).watch_objects(r)
        })
        .collect();
    let before = c.master(0).watch_decodes();
    let mut last = 0;
    for i in 0..PODS {
        let p = api
            .create(
                "pods",
                ns,
                &bound_pod(&format!("p{i}"), &format!("n{}", i % WATCHES)),
            )
            .await;
        last = rv(&p).parse::<u64>().expect("numeric resourceVersion");
    }
    // A bookmark past the last create: the watch has converted every event.
    for (k, w) in watches.iter_mut().enumerate() {
        let mut added = Vec::new();
        loop {
            let ev = raw(w).await;
            match ev.kind.as_str() {
                "BOOKMARK" if ev.revision >= last => break,
                "BOOKMARK" => {}
                "ADDED" => {
                    let obj: Value = serde_json::from_slice(&ev.object).expect("JSON");
                    added.push(obj["metadata"]["name"].as_str().unwrap().to_string());
                }
                other => panic!("watch n{k}: unexpected {other}"),
            }
        }
        let want: Vec<String> = (k..PODS)
            .step_by(WATCHES)
            .map(|i| format!("p{i}"))
            .collect();
        assert_eq!(added, want, "watch n{k}");
    }
    let decodes = c.master(0).watch_decodes() - before;
    assert!(
        decodes <= 2 * PODS as u64,
        "{decodes} store events decoded for {PODS} pod creates seen by {WATCHES} watches: \
         each event should be decoded once per master, not once per watch"
    );
}
