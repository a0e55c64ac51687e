//! `ferry --as USER [--as-group G] [--as-uid U]` over QUIC: the same
//! impersonation checks as kubectl's `Impersonate-*` headers over HTTPS, then
//! the request runs as that user.

use crate::api::{cluster, configmap};
use crate::harness::{eventually, TestCluster, WAIT};
use ferry_api::client::Watch;
use ferry_api::object::{ObjectRequest, Verb};
use ferry_api::tls::{Ca, Identity};
use serde_json::json;
use std::path::Path;

/// A client config (TOML) for `who` against the cluster's masters.
fn config(c: &TestCluster, dir: &Path, file: &str, who: &Identity) -> String {
    let data = &c.master(0).data;
    let masters: Vec<String> = (0..3).map(|i| c.master(i).addr.to_string()).collect();
    let mut cfg = ferry_actors::master::admin_config(data, &masters).unwrap();
    let pair = data.ca().unwrap();
    let cert = Ca::load(&pair.cert_pem, &pair.key_pem)
        .unwrap()
        .issue(who, &[])
        .unwrap();
    cfg.client_cert = cert.cert_pem;
    cfg.client_key = cert.key_pem;
    let path = dir.join(file);
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

/// What `ferry ARGS` printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the ferry binary (off the runtime's threads: the masters run on them).
async fn ferry(home: &Path, args: &[&str]) -> Ran {
    let home = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(&args)
            .env("HOME", &home)
            .env_remove("FERRY_CONFIG")
            .output()
            .expect("ferry runs");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_as_impersonates_over_quic_with_the_same_checks() {
    let (c, admin) = cluster().await;
    let home = tempfile::tempdir().unwrap();
    let user = |name: &str| Identity::User {
        name: name.into(),
        groups: vec![],
        uid: String::new(),
        extra: Default::default(),
    };
    let alice = config(&c, home.path(), "alice.conf", &user("alice"));
    let root = config(&c, home.path(), "admin.conf", &Identity::Admin);

    admin
        .create(
            "namespaces",
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
    admin
        .create("configmaps", Some("team"), &configmap("a", json!({})))
        .await;
    // bob may list ConfigMaps in team; alice may impersonate bob, only.
    for (resource, ns, body) in [
        (
            "roles",
            Some("team"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "rolebindings",
            Some("team"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "bob"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}),
        ),
        (
            "clusterroles",
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "impersonate-bob"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                       "resourceNames": ["bob"]}]}),
        ),
        (
            "clusterrolebindings",
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "alice-impersonates"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-bob"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
        ),
    ] {
        admin.create(resource, ns, &body).await;
    }

    // As herself alice may not list them; as bob she may (once every master
    // has the policy).
    let h = home.path();
    let mine = ferry(h, &["--config", &alice, "get", "configmaps", "-n", "team"]).await;
    assert!(!mine.ok, "{}", mine.stdout);
    assert!(
        mine.stderr
            .contains("User \"alice\" cannot list resource \"configmaps\""),
        "{}",
        mine.stderr
    );
    let as_bob = eventually("alice lists as bob", WAIT, || async {
        let r = ferry(
            h,
            &[
                "--config",
                &alice,
                "--as",
                "bob",
                "get",
                "configmaps",
                "-n",
                "team",
            ],
        )
        .await;
        r.ok.then_some(r)
    })
    .await;
    assert!(
        as_bob.stdout.lines().any(|l| l.starts_with("a ")),
        "{}",
        as_bob.stdout
    );

    // The request runs as bob: what bob may not do is refused in his name.
    let write = ferry(
        h,
        &[
            "--config",
            &alice,
            "--as",
            "bob",
            "delete",
            "configmap",
            "a",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(!write.ok, "{}", write.stdout);
    assert!(
        write
            .stderr
            .contains("User \"bob\" cannot delete resource \"configmaps\""),
        "{}",
        write.stderr
    );

    // Nobody else, and no group or uid: Kubernetes' refusals.
    let carol = ferry(
        h,
        &[
            "--config",
            &alice,
            "--as",
            "carol",
            "get",
            "configmaps",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(!carol.ok);
    assert!(
        carol.stderr.contains(
            "users \"carol\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{}",
        carol.stderr
    );
    let group = ferry(
        h,
        &[
            "--config",
            &alice,
            "--as",
            "bob",
            "--as-group",
            "ops",
            "get",
            "configmaps",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(!group.ok);
    assert!(
        group.stderr.contains(
            "groups \"ops\" is forbidden: User \"alice\" cannot impersonate resource \"groups\""
        ),
        "{}",
        group.stderr
    );
    let uid = ferry(
        h,
        &[
            "--config",
            &alice,
            "--as",
            "bob",
            "--as-uid",
            "u-42",
            "get",
            "configmaps",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(!uid.ok);
    assert!(
        uid.stderr
            .contains("uids.authentication.k8s.io \"u-42\" is forbidden"),
        "{}",
        uid.stderr
    );

    // The admin may act as anyone, with groups: as dave in group `ops` it
    // gets their rights only (none here), as bob bob's.
    let admin_as = ferry(
        h,
        &[
            "--config",
            &root,
            "--as",
            "dave",
            "--as-group",
            "ops",
            "get",
            "configmaps",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(!admin_as.ok, "{}", admin_as.stdout);
    assert!(
        admin_as
            .stderr
            .contains("User \"dave\" cannot list resource \"configmaps\""),
        "{}",
        admin_as.stderr
    );
    let admin_bob = ferry(
        h,
        &[
            "--config",
            &root,
            "--as",
            "bob",
            "get",
            "configmaps",
            "-n",
            "team",
        ],
    )
    .await;
    assert!(admin_bob.ok, "{}", admin_bob.stderr);

    // A watch acts as the user too (the client wraps each stream it opens):
    // alice watching as bob sees the ConfigMaps; as carol, an ERROR event.
    let alice_cfg = ferry_config::ClientConfig::load(Path::new(&alice)).unwrap();
    let watch_as = |user: &str| {
        let client =
            ferry_api::Client::new(&alice_cfg)
                .unwrap()
                .acting_as(ferry_api::proto::Impersonate {
                    user: Some(user.into()),
                    ..Default::default()
                });
        let mut req = ObjectRequest::new(Verb::Watch, "configmaps", Some("team"), None);
        req.list.resource_version = Some("0".into());
        Watch::new(&std::sync::Arc::new(client), req)
    };
    let mut w = watch_as("bob");
    let ev = tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap();
    assert_eq!(ev.kind, "ADDED", "{}", String::from_utf8_lossy(&ev.object));
    let mut w = watch_as("carol");
    let ev = tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap();
    assert_eq!(ev.kind, "ERROR");
    let status: serde_json::Value = serde_json::from_slice(&ev.object).unwrap();
    assert_eq!(status["code"], 403, "{status}");

    // Bad flags are named before anything is sent.
    let alone = ferry(
        h,
        &["--config", &alice, "--as-group", "ops", "get", "configmaps"],
    )
    .await;
    assert!(!alone.ok);
    assert!(alone.stderr.contains("need --as USER"), "{}", alone.stderr);
    let extra = ferry(
        h,
        &[
            "--config",
            &alice,
            "--as",
            "bob",
            "--as-user-extra",
            "novalue",
            "get",
            "configmaps",
        ],
    )
    .await;
    assert!(!extra.ok);
    assert!(
        extra.stderr.contains("expected KEY=VALUE"),
        "{}",
        extra.stderr
    );
    // A request that cannot act as someone else is refused, not run as alice.
    let logs = ferry(
        h,
        &[
            "--config", &root, "--as", "bob", "logs", "nothing", "-n", "team",
        ],
    )
    .await;
    assert!(!logs.ok, "{}", logs.stdout);
    assert!(
        logs.stderr.contains("applies to object requests") || logs.stderr.contains("User \"bob\""),
        "{}",
        logs.stderr
    );
    drop(c);
}
