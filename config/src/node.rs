//! A node agent's config (`ferry node --config FILE`): its hard eviction
//! thresholds, as the kubelet's `evictionHard`.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A node's config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node-pressure eviction.
    pub eviction: Eviction,
}

/// Hard eviction thresholds (the kubelet's `evictionHard`): when a signal's
/// available amount falls below its threshold the node reports pressure and
/// evicts pods. Each is a quantity (`100Mi`) or a share of the capacity
/// (`10%`); `"0"` turns it off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Eviction {
    /// `memory.available` (default `100Mi`, as the kubelet).
    pub memory_available: Threshold,
    /// `nodefs.available`, of the node's data dir file system (default off:
    /// ferry's nodes share one developer machine's file system, where the
    /// kubelet's `10%` would evict every node's pods at once).
    pub nodefs_available: Threshold,
    /// How often the signals are read, in seconds (default 10, the
    /// kubelet's housekeeping interval).
    pub interval_secs: u64,
}

impl Default for Eviction {
    fn default() -> Self {
        Eviction {
            memory_available: Threshold::Bytes(100 << 20),
            nodefs_available: Threshold::Bytes(0),
            interval_secs: 10,
        }
    }
}

/// One threshold: bytes, or a percentage of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// An amount in bytes (0: off).
    Bytes(u64),
    /// A percentage of the capacity, 0 to 100 (0: off).
    Percent(f64),
}

impl Threshold {
    /// The threshold in bytes for `capacity`; `None`: off.
    pub fn bytes(&self, capacity: u64) -> Option<u64> {
        match *self {
            Threshold::Bytes(0) => None,
            Threshold::Bytes(b) => Some(b),
            Threshold::Percent(p) if p <= 0.0 => None,
            Threshold::Percent(p) => Some((capacity as f64 * p / 100.0) as u64),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Bytes(b) => f.write_str(&crate::units::binary_bytes(i128::from(*b))),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Threshold, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage (as 10%)"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{s:?}: a percentage must be between 0% and 100%"));
            }
            return Ok(Threshold::Percent(v));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let mult: u64 = match suffix {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            _ => {
                return Err(format!(
                    "{s:?} is not a quantity (as 100Mi, 1Gi, 500M) or a percentage (as 10%)"
                ))
            }
        };
        let v: f64 = num.parse().map_err(|_| {
            format!("{s:?} is not a quantity (as 100Mi, 1Gi, 500M) or a percentage (as 10%)")
        })?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("{s:?} is too large"));
        }
        Ok(Threshold::Bytes(bytes as u64))
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Threshold, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl NodeConfig {
    /// Reads and validates a node config file.
    pub fn load(path: &Path) -> Result<Self> {
        let cfg: NodeConfig = crate::read_toml(path)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.eviction.interval_secs == 0 || self.eviction.interval_secs > 3600 {
            return Err(invalid(
                "eviction.interval_secs",
                format!(
                    "must be between 1 and 3600 seconds, got {}",
                    self.eviction.interval_secs
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_quantities_or_percentages() {
        for (s, want) in [
            ("100Mi", Threshold::Bytes(100 << 20)),
            ("1Gi", Threshold::Bytes(1 << 30)),
            ("500M", Threshold::Bytes(500_000_000)),
            ("1.5Gi", Threshold::Bytes(3 << 29)),
            ("4096", Threshold::Bytes(4096)),
            ("0", Threshold::Bytes(0)),
            ("10%", Threshold::Percent(10.0)),
            ("7.5%", Threshold::Percent(7.5)),
        ] {
            assert_eq!(s.parse::<Threshold>(), Ok(want), "{s}");
        }
        for (s, says) in [
            ("100MB", "not a quantity"),
            ("lots", "not a quantity"),
            ("120%", "between 0% and 100%"),
            ("x%", "not a percentage"),
        ] {
            let e = s.parse::<Threshold>().unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        assert_eq!(Threshold::Bytes(100 << 20).to_string(), "100Mi");
        assert_eq!(Threshold::Bytes(1 << 50).to_string(), "1Pi");
        assert_eq!(Threshold::Bytes(1500).to_string(), "1500");
        assert_eq!(Threshold::Percent(10.0).bytes(1000), Some(100));
        assert_eq!(Threshold::Bytes(0).bytes(1000), None);
        assert_eq!(Threshold::Percent(0.0).bytes(1000), None);
    }

    #[test]
    fn a_node_config_file_reads_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(
            &p,
            "[eviction]\nmemory_available = \"1Ti\"\nnodefs_available = \"5%\"\n",
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.eviction.memory_available, Threshold::Bytes(1 << 40));
        assert_eq!(c.eviction.nodefs_available, Threshold::Percent(5.0));
        assert_eq!(c.eviction.interval_secs, 10);
        assert_eq!(NodeConfig::default().eviction, Eviction::default());
        std::fs::write(&p, "[eviction]\nmemory_available = \"lots\"\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("memory_available") && e.contains("not a quantity"),
            "{e}"
        );
        std::fs::write(&p, "[eviction]\ninterval_secs = 0\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("eviction.interval_secs"), "{e}");
        std::fs::write(&p, "[evict]\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("evict"), "{e}");
    }

    #[test]
    fn the_example_documents_the_defaults() {
        let c: NodeConfig = toml::from_str(include_str!("../examples/node.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(
            c,
            NodeConfig::default(),
            "examples/node.toml documents the defaults"
        );
    }
}
