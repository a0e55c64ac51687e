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

#[cfg(test)]
mod tests {
    use super::*;

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
