//! A master's data dir: who it is, its certificates, the cluster CA and join secret.
//!
//! Files are written to a temporary name, fsynced, and renamed, with mode 0600;
//! the directory is 0700. `identity.toml` is written last, so a master whose
//! first start was interrupted starts over rather than half-configured.

use crate::{Error, Result};
use ferry_api::tls::{ca_hash, CertPair};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const IDENTITY: &str = "identity.toml";

/// `identity.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Persisted master id.
    pub id: u64,
    /// Address of the master this one joined through (none for the first master).
    pub joined_via: Option<String>,
}

/// Everything a master keeps besides its store.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
}

fn dd_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::DataDir {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    ferry_api::files::create_private_dir(dir).map_err(|e| dd_err(dir, e))
}

/// Writes `data` to `path` atomically and durably with mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    ferry_api::files::write_private(path, data).map_err(|e| dd_err(path, e))
}

impl DataDir {
    /// Opens (creating if needed) a data dir.
    pub fn new(path: &Path) -> Result<DataDir> {
        create_private_dir(path)?;
        Ok(DataDir {
            path: path.to_path_buf(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a text file of the data dir.
    pub fn read(&self, name: &str) -> Result<String> {
        let p = self.file(name);
        std::fs::read_to_string(&p).map_err(|e| dd_err(&p, e))
    }

    /// Writes a private file of the data dir.
    pub fn write(&self, name: &str, data: &str) -> Result<()> {
        write_private(&self.file(name), data.as_bytes())
    }

    /// The identity, if this master has been set up.
    pub fn identity(&self) -> Result<Option<Identity>> {
        let p = self.file(IDENTITY);
        if !p.exists() {
            return Ok(None);
        }
        ferry_config::read_toml(&p)
            .map(Some)
            .map_err(|e| dd_err(&p, e))
    }

    /// Records the identity (last step of setting up).
    pub fn set_identity(&self, id: &Identity) -> Result<()> {
        let text = toml::to_string(id).map_err(|e| dd_err(&self.file(IDENTITY), e))?;
        self.write(IDENTITY, &text)
    }

    /// The master certificate and key.
    pub fn master_cert(&self) -> Result<CertPair> {
        Ok(CertPair {
            cert_pem: self.read("master.crt")?,
            key_pem: self.read("master.key")?,
        })
    }

    /// The cluster CA certificate and key.
    pub fn ca(&self) -> Result<CertPair> {
        Ok(CertPair {
            cert_pem: self.read("ca.crt")?,
            key_pem: self.read("ca.key")?,
        })
    }

    /// Stores the CA, this master's certificate, and the join secret.
    pub fn store_credentials(&self, ca: &CertPair, cert: &CertPair, secret: &str) -> Result<()> {
        self.write("ca.crt", &ca.cert_pem)?;
        self.write("ca.key", &ca.key_pem)?;
        self.write("master.crt", &cert.cert_pem)?;
        self.write("master.key", &cert.key_pem)?;
        self.write("join-secret", secret)?;
        self.write(
            "join-token",
            &format!("{}\n", make_token(&ca.cert_pem, secret)?),
        )
    }

    /// The join secret.
    pub fn secret(&self) -> Result<String> {
        Ok(self.read("join-secret")?.trim().to_string())
    }
}

/// A join token: `ferry1-<sha256 of CA cert>.<secret>`.
pub fn make_token(ca_cert_pem: &str, secret: &str) -> Result<String> {
    Ok(format!("ferry1-{}.{secret}", ca_hash(ca_cert_pem)?))
}

/// Splits a join token into (CA pin, secret).
pub fn parse_token(token: &str) -> Result<(String, String)> {
    let body = token
        .trim()
        .strip_prefix("ferry1-")
        .ok_or_else(|| Error::Token("must start with `ferry1-`".into()))?;
    let (pin, secret) = body
        .split_once('.')
        .ok_or_else(|| Error::Token("must be ferry1-<ca-hash>.<secret>".into()))?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if pin.len() != 64 || !hex(pin) {
        return Err(Error::Token("the CA hash must be 64 hex digits".into()));
    }
    if secret.len() != 32 || !hex(secret) {
        return Err(Error::Token("the secret must be 32 hex digits".into()));
    }
    Ok((pin.to_string(), secret.to_string()))
}

/// A fresh random 128-bit secret, hex.
pub fn new_secret() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Compares secrets in time independent of where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens() {
        let good = format!("ferry1-{}.{}", "a".repeat(64), "b".repeat(32));
        assert!(parse_token(&good).is_ok());
        for bad in [
            "",
            "ferry1-abc",
            "x-aa.bb",
            &format!("ferry1-{}.{}", "a".repeat(64), "z".repeat(32)),
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_data_dir_is_0700_and_its_files_0600() {
        let tmp = tempfile::tempdir().unwrap();
        // A new dir (and its missing parents' last component) is created 0700.
        let fresh = tmp.path().join("a/b");
        let data = DataDir::new(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        // An existing, wider dir is narrowed.
        let wide = tmp.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
        DataDir::new(&wide).unwrap();
        assert_eq!(mode(&wide), 0o700);

        // Credentials and identity are 0600 — also over a wider file of that name,
        // and over a wider temporary an interrupted write left behind.
        std::fs::write(fresh.join("ca.key"), "old").unwrap();
        std::fs::set_permissions(fresh.join("ca.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::write(fresh.join("master.tmp-write"), "half").unwrap();
        std::fs::set_permissions(
            fresh.join("master.tmp-write"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let pair = |n: &str| CertPair {
            cert_pem: format!("{n} cert"),
            key_pem: format!("{n} key"),
        };
        let ca = ferry_api::tls::Ca::generate("t").unwrap();
        let ca_pair = ca.pair().clone();
        data.store_credentials(&ca_pair, &pair("master"), &new_secret())
            .unwrap();
        data.set_identity(&Identity {
            id: 1,
            joined_via: None,
        })
        .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&fresh)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "identity.toml",
                "join-secret",
                "join-token",
                "master.crt",
                "master.key"
            ]
        );
        for n in &names {
            assert_eq!(mode(&fresh.join(n)), 0o600, "{n}");
        }
        assert_eq!(data.read("master.key").unwrap(), "master key");
        assert_eq!(data.identity().unwrap().unwrap().id, 1);
    }
}
