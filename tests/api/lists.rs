//! list: label selectors with every operator, field selectors, pages.

use crate::api::{configmap, pod, Api};

use ferry_api::object::{ListOptions, Verb};
use serde_json::json;

fn sel(labels: &str) -> ListOptions {
    ListOptions {
        label_selector: Some(labels.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_pages() {
    let (_cluster, api) = crate::api::cluster().await;
    api.create(
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    )
    .await;
    let tiers = ["front", "back", "db"];
    for i in 0..24 {
        let labels = if i % 4 == 3 {
            json!({"app": "shop"})
        } else {
            json!({"app": "shop", "tier": tiers[i % 4]})
        };
        api.create(
            "configmaps",
            Some("default"),
            &configmap(&format!("cm-{i:02}"), labels),
        )
        .await;
    }
    api.create(
        "configmaps",
        Some("other"),
        &configmap("elsewhere", json!({"app": "shop"})),
    )
    .await;

    let count = |l: &serde_json::Value| Api::names(l).len();
    let cases = [
        ("app=shop", 24),
        ("tier==front", 6),
        ("tier!=front", 18),
        ("tier in (front,back)", 12),
        ("tier notin (front,back)", 12),
        ("tier", 18),
        ("!tier", 6),
        ("app=shop,tier in (db)", 6),
        ("", 24),
    ];
    for (s, want) in cases {
        let (code, l) = api.list("configmaps", Some("default"), sel(s)).await;
        assert_eq!(code, 200, "{s}: {l}");
        assert_eq!(count(&l), want, "selector {s:?}");
    }
    // Every namespace.
    let (_, all) = api.list("configmaps", None, sel("app=shop")).await;
    assert_eq!(count(&all), 25);
    // Field selectors.
    let fs = |f: &str| ListOptions {
        field_selector: Some(f.into()),
        ..Default::default()
    };
    let (_, one) = api
        .list("configmaps", None, fs("metadata.name=cm-05"))
        .await;
    assert_eq!(Api::names(&one), ["cm-05"]);
    let (_, ns_only) = api
        .list("configmaps", None, fs("metadata.namespace=other"))
        .await;
    assert_eq!(Api::names(&ns_only), ["elsewhere"]);
    let (code, bad) = api.list("configmaps", None, fs("spec.nodeName=x")).await;
    assert_eq!(code, 400);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported"),
        "{bad}"
    );
    let (code, bad) = api.list("configmaps", None, sel("tier in (a")).await;
    assert_eq!(code, 400, "{bad}");
    // Pods by node and phase.
    api.create("pods", Some("default"), &pod("a")).await;
    let mut b = pod("b");
    b["spec"]["nodeName"] = json!("n1");
    api.create("pods", Some("default"), &b).await;
    let (_, on_n1) = api
        .list("pods", Some("default"), fs("spec.nodeName=n1"))
        .await;
    assert_eq!(Api::names(&on_n1), ["b"]);
    let (_, unbound) = api
        .list("pods", Some("default"), fs("spec.nodeName="))
        .await;
    assert_eq!(Api::names(&unbound), ["a"]);

    // Pages: limit 10 over the 24 in default, with a selector, all at one revision.
    let mut opts = ListOptions {
        limit: 5,
        ..sel("tier")
    };
    let mut seen = Vec::new();
    let mut revisions = Vec::new();
    let mut tokens = Vec::new();
    loop {
        let (code, page) = api.list("configmaps", Some("default"), opts.clone()).await;
        assert_eq!(code, 200, "{page}");
        assert!(Api::names(&page).len() <= 5);
        seen.extend(Api::names(&page));
        revisions.push(page["metadata"]["resourceVersion"].clone());
        // A write between pages does not show up in the continued list.
        api.create(
            "configmaps",
            Some("default"),
            &configmap(&format!("late-{}", seen.len()), json!({"tier": "x"})),
        )
        .await;
        match page["metadata"]["continue"].as_str() {
            Some(t) => {
                tokens.push(t.to_string());
                opts.continue_token = Some(t.to_string())
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 18, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "pages in key order without repeats: {seen:?}"
    );
    assert!(
        revisions.windows(2).all(|w| w[0] == w[1]),
        "one revision for every page: {revisions:?}"
    );
    // A continue token that is not ours is refused.
    let bad = ListOptions {
        continue_token: Some("garbage".into()),
        ..Default::default()
    };
    assert_eq!(api.list("configmaps", Some("default"), bad).await.0, 400);

    // A well-formed token of another collection never reaches the scan: a real
    // token of configmaps in default, and `<revision>/<key>` tokens made by hand.
    let token = tokens
        .first()
        .expect("the list had more than one page")
        .clone();
    let (rev, key) = token.split_once('/').expect("<revision>/<key>");
    assert!(key.starts_with("registry/configmaps/default/"), "{token}");
    let with = |t: &str| ListOptions {
        continue_token: Some(t.to_string()),
        ..Default::default()
    };
    let cases = [
        ("pods", Some("default"), token.clone()),
        ("secrets", Some("default"), token.clone()),
        ("configmaps", Some("kube-system"), token.clone()),
        ("namespaces", None, token.clone()),
        (
            "configmaps",
            Some("default"),
            format!("{rev}/registry/secrets/default/x"),
        ),
        (
            "configmaps",
            Some("default"),
            format!("{rev}/registry/configmaps/defaultx/a"),
        ),
        (
            "configmaps",
            None,
            format!("{rev}/registry/configmapsx/default/a"),
        ),
        ("configmaps", Some("default"), format!("{rev}/")),
    ];
    for (resource, ns, t) in cases {
        let (code, e) = api.list(resource, ns, with(&t)).await;
        assert_eq!(
            (code, e["reason"].as_str()),
            (400, Some("BadRequest")),
            "{resource} in {ns:?} with {t}: {e}"
        );
        assert_eq!(
            e["message"],
            format!("invalid continue token {t:?}: pass the token of the previous page unchanged"),
            "{resource} in {ns:?}"
        );
    }
    // The same shape for this collection is taken: the refusals above are the prefix check.
    for (ns, t) in [
        (Some("default"), token.clone()),
        (None, token.clone()),
        (
            Some("default"),
            format!("{rev}/registry/configmaps/default/"),
        ),
    ] {
        let (code, page) = api.list("configmaps", ns, with(&t)).await;
        assert_eq!(code, 200, "{t} in {ns:?}: {page}");
    }
    let _ = Verb::List;
}
