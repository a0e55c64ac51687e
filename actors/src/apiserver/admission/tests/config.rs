//! ConfigMaps and Secrets.

use serde_json::{json, Value};

use super::{expect_invalid, ok, refuse_all, update, with};

fn config_map() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.conf": "x=1", "MODE": "prod"},
        "binaryData": {"logo.png": "iVBORw0K"}
    })
}

fn secret() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"user": "admin"}
    })
}

#[test]
fn config_maps() {
    ok("ConfigMap", &config_map());
    let cases = vec![
        ("/data/bad key", json!("x"), "data[bad key]", "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters"),
        ("/data/..x", json!("x"), "data[..x]", "must not start with '..'"),
        ("/binaryData/MODE", json!("eA=="), "binaryData", "Invalid value: \"MODE\": duplicate of key present in data"),
        ("/data/big", json!("x".repeat(1024 * 1024)), "data", "Too long: may not be more than 1048576 bytes"),
    ];
    refuse_all("ConfigMap", &config_map(), cases);
    let frozen = with(&config_map(), "/immutable", json!(true));
    let changed = with(&frozen, "/data/MODE", json!("dev"));
    expect_invalid(
        "ConfigMap",
        update("ConfigMap", &frozen, &changed),
        "data",
        "Forbidden: field is immutable when `immutable` is set",
        "data",
    );
    let thawed = with(&frozen, "/immutable", json!(false));
    expect_invalid(
        "ConfigMap",
        update("ConfigMap", &frozen, &thawed),
        "immutable",
        "field is immutable when `immutable` is set",
        "immutable",
    );
    update(
        "ConfigMap",
        &config_map(),
        &with(&config_map(), "/data/MODE", json!("dev")),
    )
    .unwrap();
}

#[test]
fn secrets() {
    let s = ok("Secret", &secret());
    assert_eq!(s["type"], "Opaque");
    assert_eq!(
        s["data"]["user"], "YWRtaW4=",
        "stringData is merged into data"
    );
    assert!(s.get("stringData").is_none());
    let cases = vec![
        (
            "/data/a:b",
            json!("eA=="),
            "data[a:b]",
            "a valid config key",
        ),
        (
            "/type",
            json!("kubernetes.io/tls"),
            "data[tls.crt]",
            "Required value",
        ),
        (
            "/type",
            json!("kubernetes.io/dockerconfigjson"),
            "data[.dockerconfigjson]",
            "Required value",
        ),
        (
            "/type",
            json!("kubernetes.io/service-account-token"),
            "metadata.annotations[kubernetes.io/service-account.name]",
            "Required value",
        ),
    ];
    refuse_all("Secret", &secret(), cases);
    let tls = with(&secret(), "/type", json!("kubernetes.io/tls"));
    let tls = with(
        &with(&tls, "/data/tls.crt", json!("eA==")),
        "/data/tls.key",
        json!("eA=="),
    );
    ok("Secret", &tls);
    expect_invalid(
        "Secret",
        update("Secret", &secret(), &tls),
        "type",
        "Invalid value: \"kubernetes.io/tls\": field is immutable",
        "type",
    );
    let frozen = with(&secret(), "/immutable", json!(true));
    let changed = with(&frozen, "/data/password", json!("eA=="));
    expect_invalid(
        "Secret",
        update("Secret", &frozen, &changed),
        "data",
        "field is immutable when `immutable` is set",
        "data",
    );
}
