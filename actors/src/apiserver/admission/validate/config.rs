//! ConfigMaps and Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use crate::apiserver::admission::field::{q, Errors};

/// ConfigMaps and Secrets hold at most this many bytes.
pub(crate) const MAX_SIZE: usize = 1024 * 1024;
const IMMUTABLE: &str = "field is immutable when `immutable` is set";

/// Reasons `key` is not a valid ConfigMap/Secret key.
fn key_errors(key: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters");
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
    }
    if key == "." {
        out.push("must not be '.'");
    } else if key == ".." {
        out.push("must not be '..'");
    } else if key.starts_with("..") {
        out.push("must not start with '..'");
    }
    out
}

fn keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>, errs: &mut Errors) {
    for k in keys {
        for why in key_errors(k) {
            errs.invalid(&format!("{field}[{k}]"), q(k), why);
        }
    }
}

/// ConfigMap keys, size, and no key in both data and binaryData.
pub(crate) fn config_map(c: &ConfigMap, errs: &mut Errors) {
    let data = c.data.as_ref();
    let bin = c.binary_data.as_ref();
    keys("data", data.into_iter().flat_map(|m| m.keys()), errs);
    keys("binaryData", bin.into_iter().flat_map(|m| m.keys()), errs);
    for k in bin.into_iter().flat_map(|m| m.keys()) {
        if data.is_some_and(|d| d.contains_key(k)) {
            errs.invalid("binaryData", q(k), "duplicate of key present in data");
        }
    }
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + bin
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    if size > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
}

/// ConfigMap update: nothing changes once `immutable` is set.
pub(crate) fn config_map_update(new: &ConfigMap, old: &ConfigMap, errs: &mut Errors) {
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.forbidden("immutable", IMMUTABLE);
        }
        if new.data != old.data {
            errs.forbidden("data", IMMUTABLE);
        }
        if new.binary_data != old.binary_data {
            errs.forbidden("binaryData", IMMUTABLE);
        }
    }
}

/// Secret keys, size, and the keys each well-known type requires.
pub(crate) fn secret(s: &Secret, errs: &mut Errors) {
    let empty = BTreeMap::new();
    let data: &BTreeMap<String, ByteString> = s.data.as_ref().unwrap_or(&empty);
    keys("data", data.keys(), errs);
    let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    if size > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
    let need = |key: &str, errs: &mut Errors| {
        if !data.contains_key(key) {
            errs.required(&format!("data[{key}]"), "");
        }
    };
    match s.type_.as_deref().unwrap_or_default() {
        "kubernetes.io/service-account-token" => {
            let ann = s.metadata.annotations.as_ref();
            if ann
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_none()
            {
                errs.required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                );
            }
        }
        "kubernetes.io/dockercfg" => need(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => {
            need(".dockerconfigjson", errs);
            if let Some(v) = data.get(".dockerconfigjson") {
                if serde_json::from_slice::<serde_json::Value>(&v.0).is_err() {
                    errs.invalid(
                        "data[.dockerconfigjson]",
                        "<secret contents redacted>",
                        "invalid JSON",
                    );
                }
            }
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.required("data[username]", "");
            errs.required("data[password]", "");
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey", errs),
        "kubernetes.io/tls" => {
            need("tls.crt", errs);
            need("tls.key", errs);
        }
        _ => {}
    }
}

/// Secret update: the type never changes; nothing changes once `immutable` is set.
pub(crate) fn secret_update(new: &Secret, old: &Secret, errs: &mut Errors) {
    errs.immutable("type", &new.type_, &old.type_);
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.forbidden("immutable", IMMUTABLE);
        }
        if new.data != old.data {
            errs.forbidden("data", IMMUTABLE);
        }
    }
}
