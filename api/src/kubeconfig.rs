//! kubeconfig files, so kubectl and client libraries reach the HTTPS API with
//! a certificate signed by the cluster CA.

use base64::Engine;

/// A kubeconfig (YAML) with one cluster, one user and one context, the
/// credentials embedded (`*-data` fields) so the file stands alone.
pub fn render(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str, user: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: ferry\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: ferry\n  \
           context:\n    \
             cluster: ferry\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: ferry\n\
         preferences: {{}}\n",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

/// `text` (a kubeconfig) after a CA rotation step: each user whose embedded
/// `client-certificate-data` is `old_cert_pem` gets `cert_pem` and `key_pem`,
/// and each cluster a context of such a user names gets `ca_pem` as its
/// `certificate-authority-data`; everything else is kept. `Ok(None)`: no
/// user holds `old_cert_pem` (not a kubeconfig of these credentials).
/// Fails, naming the problem, when `text` is not a kubeconfig.
pub fn rekey(
    text: &str,
    old_cert_pem: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Option<String>, String> {
    use serde_json::Value;
    let engine = base64::engine::general_purpose::STANDARD;
    let b64 = |s: &str| Value::String(engine.encode(s.as_bytes()));
    let mut v: Value =
        serde_yaml::from_str(text).map_err(|e| format!("not a kubeconfig (YAML): {e}"))?;
    if v.get("kind").and_then(Value::as_str) != Some("Config") {
        return Err("not a kubeconfig: kind is not Config".into());
    }
    let mut users = Vec::new();
    for u in v["users"].as_array_mut().into_iter().flatten() {
        let holds = u["user"]["client-certificate-data"]
            .as_str()
            .and_then(|d| engine.decode(d.trim()).ok())
            .is_some_and(|pem: Vec<u8>| {
                String::from_utf8_lossy(&pem).trim() == old_cert_pem.trim()
            });
        if holds {
            users.push(u["name"].as_str().unwrap_or_default().to_string());
            u["user"]["client-certificate-data"] = b64(cert_pem);
            u["user"]["client-key-data"] = b64(key_pem);
        }
    }
    if users.is_empty() {
        return Ok(None);
    }
    let clusters: Vec<String> = v["contexts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["context"]["user"]
                .as_str()
                .is_some_and(|u| users.iter().any(|n| n == u))
        })
        .filter_map(|c| c["context"]["cluster"].as_str().map(str::to_string))
        .collect();
    for c in v["clusters"].as_array_mut().into_iter().flatten() {
        let named = c["name"]
            .as_str()
            .is_some_and(|n| clusters.iter().any(|x| x == n));
        if named && c["cluster"].is_object() {
            c["cluster"]["certificate-authority-data"] = b64(ca_pem);
        }
    }
    serde_yaml::to_string(&v)
        .map(Some)
        .map_err(|e| format!("writing the kubeconfig: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rekey_replaces_the_credentials_it_holds_and_keeps_the_rest() {
        let k = render(
            "https://127.0.0.1:6443",
            "OLD-CA",
            "OLD",
            "OLD-KEY",
            "admin",
        );
        let got = rekey(&k, "OLD\n", "BOTH-CAS", "NEW", "NEW-KEY")
            .unwrap()
            .expect("holds OLD");
        let v: serde_json::Value = serde_yaml::from_str(&got).unwrap();
        let d = |p: &serde_json::Value| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p.as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        };
        assert_eq!(
            d(&v["clusters"][0]["cluster"]["certificate-authority-data"]),
            "BOTH-CAS"
        );
        assert_eq!(d(&v["users"][0]["user"]["client-certificate-data"]), "NEW");
        assert_eq!(d(&v["users"][0]["user"]["client-key-data"]), "NEW-KEY");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(v["current-context"], "ferry");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
        // Another user's kubeconfig (or one rekeyed already): left alone.
        assert_eq!(rekey(&got, "OLD", "X", "Y", "Z").unwrap(), None);
        // Not a kubeconfig: said so.
        let e = rekey("masters = []\n", "OLD", "X", "Y", "Z").unwrap_err();
        assert!(e.contains("not a kubeconfig"), "{e}");
        let e = rekey("kind: Pod\n", "OLD", "X", "Y", "Z").unwrap_err();
        assert!(e.contains("kind is not Config"), "{e}");
    }

    #[test]
    fn a_kubeconfig_carries_its_credentials() {
        let k = render("https://127.0.0.1:6443", "CA", "CERT", "KEY", "admin");
        let v: serde_json::Value = serde_yaml::from_str(&k).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(v["users"][0]["name"], "admin");
        assert_eq!(v["users"][0]["user"]["client-certificate-data"], "Q0VSVA==");
        assert_eq!(v["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(v["contexts"][0]["context"]["user"], "admin");
        assert_eq!(v["current-context"], "ferry");
    }
}
