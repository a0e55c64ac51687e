//! The cluster network: pod and service address ranges, the NodePort range,
//! the LoadBalancer pool and the DNS domain.
//!
//! Masters take it from their config (`[network]`), allocate from it (Service
//! ClusterIPs and NodePorts in the API server, node pod CIDRs in the node IPAM
//! controller) and publish it as the ConfigMap `kube-system/ferry-network`
//! ([`Network::to_data`]), which nodes read ([`Network::from_data`]) to build
//! pod networks, unreachable routes and proxy rules.

use crate::{invalid, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Namespace of the ConfigMap the leader publishes the network in.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIGMAP_NAME: &str = "ferry-network";

/// An address range: a network address and a prefix length (`10.42.0.0/16`),
/// IPv4 or IPv6. The address has no bits set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The range of `addr/prefix`; `None` when the prefix is too long for the
    /// family or `addr` has bits set past it.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let bits = bits(addr);
        if prefix > bits {
            return None;
        }
        let c = Cidr { addr, prefix };
        (to_u128(addr) & !c.mask() == 0).then_some(c)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn host_bits(&self) -> u32 {
        u32::from(bits(self.addr) - self.prefix)
    }

    fn mask(&self) -> u128 {
        let host = self.host_bits();
        if host >= 128 {
            0
        } else {
            !((1u128 << host) - 1) & family_mask(self.addr)
        }
    }

    /// How many addresses the range holds (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        1u128.checked_shl(self.host_bits()).unwrap_or(u128::MAX)
    }

    /// Whether `ip` is in the range (never for the other family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && to_u128(ip) & self.mask() == to_u128(self.addr)
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address of the range (0 is the network address).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| from_u128(self.addr, to_u128(self.addr) + n))
    }

    /// Where `ip` sits in the range (the inverse of [`Cidr::nth`]).
    pub fn index_of(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - to_u128(self.addr))
    }

    /// The `index`th sub-range of length `prefix` (`10.42.0.0/16` split by /24:
    /// index 3 is `10.42.3.0/24`).
    pub fn subnet(&self, prefix: u8, index: u128) -> Option<Cidr> {
        if prefix < self.prefix || prefix > bits(self.addr) {
            return None;
        }
        let count = 1u128.checked_shl(u32::from(prefix - self.prefix))?;
        if index >= count {
            return None;
        }
        let step = 1u128.checked_shl(u32::from(bits(self.addr) - prefix))?;
        Cidr::new(
            from_u128(self.addr, to_u128(self.addr) + index * step),
            prefix,
        )
    }

    /// How many sub-ranges of length `prefix` the range holds.
    pub fn subnets(&self, prefix: u8) -> u128 {
        if prefix < self.prefix || prefix > bits(self.addr) {
            return 0;
        }
        1u128
            .checked_shl(u32::from(prefix - self.prefix))
            .unwrap_or(u128::MAX)
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn family_mask(a: IpAddr) -> u128 {
    if a.is_ipv4() {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(family: IpAddr, v: u128) -> IpAddr {
    match family {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want ADDRESS/PREFIX, as 10.42.0.0/16)"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{s:?}: {p:?} is not a prefix length"))?;
        if prefix > bits(addr) {
            return Err(format!(
                "{s:?}: prefix length {prefix} is longer than {}",
                bits(addr)
            ));
        }
        Cidr::new(addr, prefix).ok_or_else(|| {
            let masked = from_u128(addr, to_u128(addr) & Cidr { addr, prefix }.mask());
            format!("{s:?} has host bits set (did you mean {masked}/{prefix}?)")
        })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The cluster network, as `[network]` in a master's config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Pod addresses: every node gets a sub-range of it (default `10.42.0.0/16`,
    /// as k3s; it must not overlap the machine's own networks).
    pub cluster_cidr: Cidr,
    /// Prefix length of each node's pod range (default 24: 254 pods a node).
    pub node_cidr_prefix: u8,
    /// Service ClusterIPs (default `10.43.0.0/16`, as k3s). The first address
    /// after the network address is the `kubernetes` Service's, the tenth the
    /// cluster DNS Service's.
    pub service_cidr: Cidr,
    /// NodePorts, inclusive (default 30000-32767, as Kubernetes).
    pub node_port_range: PortRange,
    /// LoadBalancer addresses (default `10.44.0.0/24`), put on each node's
    /// loopback-like `ferry-lb` interface so they are reachable on the machine.
    pub load_balancer_pool: Cidr,
    /// The cluster's DNS domain (default `cluster.local`).
    pub cluster_domain: String,
    /// The port every node serves Ingresses of class `ferry` on, at its own
    /// address (default [`DEFAULT_INGRESS_PORT`]; 0: no ingress listener).
    /// Outside the NodePort range.
    pub ingress_port: u16,
    /// The port every node serves the Ingresses' `spec.tls` hosts on, HTTPS
    /// (default [`DEFAULT_INGRESS_TLS_PORT`]; 0: no TLS listener). Outside
    /// the NodePort range, not `ingress_port`.
    pub ingress_tls_port: u16,
}

/// The default [`Network::ingress_port`]: unprivileged, below the NodePort
/// range and the kernel's ephemeral ports, and clear of the 8080/8000 test
/// servers commonly listen on.
pub const DEFAULT_INGRESS_PORT: u16 = 8880;

/// The default [`Network::ingress_tls_port`]: clear of `ferry up`'s HTTPS
/// ports (6443 and the masters' 6444..) and of the NodePort range.
pub const DEFAULT_INGRESS_TLS_PORT: u16 = 8443;

impl Default for Network {
    fn default() -> Self {
        Network {
            cluster_cidr: "10.42.0.0/16".parse().expect("static"),
            node_cidr_prefix: 24,
            service_cidr: "10.43.0.0/16".parse().expect("static"),
            node_port_range: PortRange {
                first: 30000,
                last: 32767,
            },
            load_balancer_pool: "10.44.0.0/24".parse().expect("static"),
            cluster_domain: "cluster.local".into(),
            ingress_port: DEFAULT_INGRESS_PORT,
            ingress_tls_port: DEFAULT_INGRESS_TLS_PORT,
        }
    }
}

/// An inclusive port range, written `FIRST-LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        (self.first..=self.last).contains(&p)
    }
    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }
    /// Never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<PortRange, String> {
        let bad = || format!("{s:?} is not a port range (want FIRST-LAST, as 30000-32767)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(format!("{s:?}: want 1 <= FIRST <= LAST <= 65535"));
        }
        Ok(PortRange { first, last })
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PortRange, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Network {
    /// The `kubernetes` Service's ClusterIP (the range's first host address).
    pub fn api_service_ip(&self) -> IpAddr {
        self.service_cidr
            .nth(1)
            .expect("validated: at least 16 addresses")
    }

    /// The cluster DNS Service's ClusterIP (the range's tenth address, as kubeadm).
    pub fn dns_service_ip(&self) -> IpAddr {
        self.service_cidr
            .nth(10)
            .expect("validated: at least 16 addresses")
    }

    /// Checks the ranges can work together; errors name the `network.*` field.
    pub fn validate(&self) -> Result<()> {
        let c = &self.cluster_cidr;
        if !c.is_ipv4() || !self.service_cidr.is_ipv4() || !self.load_balancer_pool.is_ipv4() {
            return Err(invalid("network", "only IPv4 ranges are supported for now"));
        }
        if self.node_cidr_prefix < c.prefix() || self.node_cidr_prefix > 30 {
            return Err(invalid(
                "network.node_cidr_prefix",
                format!(
                    "must be between cluster_cidr's prefix ({}) and 30, got {}",
                    c.prefix(),
                    self.node_cidr_prefix
                ),
            ));
        }
        if self.service_cidr.prefix() > 28 {
            return Err(invalid(
                "network.service_cidr",
                "must hold at least 16 addresses (a prefix of 28 or shorter)",
            ));
        }
        if self.service_cidr.prefix() < 12 {
            return Err(invalid(
                "network.service_cidr",
                "must be a prefix of 12 or longer (Kubernetes' limit: at most 2^20 addresses)",
            ));
        }
        let ranges = [
            ("cluster_cidr", c),
            ("service_cidr", &self.service_cidr),
            ("load_balancer_pool", &self.load_balancer_pool),
        ];
        for (i, (a, ra)) in ranges.iter().enumerate() {
            for (b, rb) in &ranges[i + 1..] {
                if ra.overlaps(rb) {
                    return Err(invalid(
                        &format!("network.{b}"),
                        format!("{rb} overlaps network.{a} ({ra})"),
                    ));
                }
            }
        }
        if self.ingress_port != 0 && self.node_port_range.contains(self.ingress_port) {
            return Err(invalid(
                "network.ingress_port",
                format!(
                    "{} is inside network.node_port_range ({}); NodePorts would shadow it",
                    self.ingress_port, self.node_port_range
                ),
            ));
        }
        if self.ingress_tls_port != 0 && self.node_port_range.contains(self.ingress_tls_port) {
            return Err(invalid(
                "network.ingress_tls_port",
                format!(
                    "{} is inside network.node_port_range ({}); NodePorts would shadow it",
                    self.ingress_tls_port, self.node_port_range
                ),
            ));
        }
        if self.ingress_tls_port != 0 && self.ingress_tls_port == self.ingress_port {
            return Err(invalid(
                "network.ingress_tls_port",
                format!(
                    "{} is network.ingress_port too; HTTP and HTTPS need ports of their own",
                    self.ingress_tls_port
                ),
            ));
        }
        if self.cluster_domain.is_empty()
            || !self.cluster_domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        {
            return Err(invalid(
                "network.cluster_domain",
                format!("{:?} is not a DNS domain", self.cluster_domain),
            ));
        }
        Ok(())
    }

    /// The ConfigMap data the leader publishes.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("clusterCIDR".into(), self.cluster_cidr.to_string()),
            ("nodeCIDRPrefix".into(), self.node_cidr_prefix.to_string()),
            ("serviceCIDR".into(), self.service_cidr.to_string()),
            ("nodePortRange".into(), self.node_port_range.to_string()),
            (
                "loadBalancerPool".into(),
                self.load_balancer_pool.to_string(),
            ),
            ("clusterDomain".into(), self.cluster_domain.clone()),
            ("ingressPort".into(), self.ingress_port.to_string()),
            ("ingressTLSPort".into(), self.ingress_tls_port.to_string()),
        ])
    }

    /// Reads the published ConfigMap data back; the error names the key.
    pub fn from_data(data: &BTreeMap<String, String>) -> std::result::Result<Network, String> {
        fn get<T: FromStr>(d: &BTreeMap<String, String>, k: &str) -> std::result::Result<T, String>
        where
            T::Err: fmt::Display,
        {
            let v = d.get(k).ok_or_else(|| {
                format!("ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} has no {k:?}")
            })?;
            v.parse()
                .map_err(|e| format!("ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {k}: {e}"))
        }
        let n = Network {
            cluster_cidr: get(data, "clusterCIDR")?,
            node_cidr_prefix: get(data, "nodeCIDRPrefix")?,
            service_cidr: get(data, "serviceCIDR")?,
            node_port_range: get(data, "nodePortRange")?,
            load_balancer_pool: get(data, "loadBalancerPool")?,
            cluster_domain: get(data, "clusterDomain")?,
            // Published by masters that predate it: the default.
            ingress_port: match data.get("ingressPort") {
                None => DEFAULT_INGRESS_PORT,
                Some(_) => get(data, "ingressPort")?,
            },
            ingress_tls_port: match data.get("ingressTLSPort") {
                None => DEFAULT_INGRESS_TLS_PORT,
                Some(_) => get(data, "ingressTLSPort")?,
            },
        };
        n.validate().map_err(|e| e.to_string())?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_split_and_index() {
        let c: Cidr = "10.42.0.0/16".parse().unwrap();
        assert_eq!(c.size(), 65536);
        assert_eq!(c.subnets(24), 256);
        assert_eq!(c.subnet(24, 3).unwrap().to_string(), "10.42.3.0/24");
        assert_eq!(c.subnet(24, 256), None);
        assert_eq!(c.nth(258).unwrap().to_string(), "10.42.1.2");
        assert_eq!(c.index_of("10.42.1.2".parse().unwrap()), Some(258));
        assert_eq!(c.index_of("10.43.0.1".parse().unwrap()), None);
        assert!(c.contains("10.42.255.255".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(c.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!c.overlaps(&"10.43.0.0/16".parse().unwrap()));
        let v6: Cidr = "fd00:42::/64".parse().unwrap();
        assert_eq!(v6.nth(1).unwrap().to_string(), "fd00:42::1");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.size(), 1 << 32);
    }

    #[test]
    fn bad_cidrs_say_what_is_wrong() {
        for (s, want) in [
            ("10.42.0.0", "not a CIDR"),
            ("10.42.0.1/16", "did you mean 10.42.0.0/16"),
            ("10.42.0.0/33", "longer than 32"),
            ("ten/8", "not an IP address"),
            ("10.0.0.0/x", "not a prefix length"),
        ] {
            let e = s.parse::<Cidr>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn defaults_validate_and_round_trip_through_the_configmap() {
        let n = Network::default();
        n.validate().unwrap();
        assert_eq!(n.api_service_ip().to_string(), "10.43.0.1");
        assert_eq!(n.dns_service_ip().to_string(), "10.43.0.10");
        assert_eq!(Network::from_data(&n.to_data()).unwrap(), n);
        let mut d = n.to_data();
        d.remove("serviceCIDR");
        assert!(Network::from_data(&d).unwrap_err().contains("serviceCIDR"));
        // A ConfigMap without the ingress port (an older master's): the default.
        let mut d = n.to_data();
        assert_eq!(d.remove("ingressPort").as_deref(), Some("8880"));
        assert_eq!(
            Network::from_data(&d).unwrap().ingress_port,
            DEFAULT_INGRESS_PORT
        );
        d.insert("ingressPort".into(), "http".into());
        assert!(Network::from_data(&d).unwrap_err().contains("ingressPort"));
        // Nor the TLS port: the default.
        let mut d = n.to_data();
        assert_eq!(d.remove("ingressTLSPort").as_deref(), Some("8443"));
        assert_eq!(
            Network::from_data(&d).unwrap().ingress_tls_port,
            DEFAULT_INGRESS_TLS_PORT
        );
    }

    #[test]
    fn an_ingress_port_among_the_node_ports_is_refused() {
        let n = Network {
            ingress_port: 30080,
            ..Network::default()
        };
        let e = n.validate().unwrap_err().to_string();
        assert!(
            e.contains("network.ingress_port") && e.contains("node_port_range"),
            "{e}"
        );
        let off = Network {
            ingress_port: 0,
            ..Network::default()
        };
        off.validate().unwrap();
        let n = Network {
            ingress_tls_port: 30443,
            ..Network::default()
        };
        let e = n.validate().unwrap_err().to_string();
        assert!(
            e.contains("network.ingress_tls_port") && e.contains("node_port_range"),
            "{e}"
        );
        let n = Network {
            ingress_tls_port: 8880,
            ..Network::default()
        };
        let e = n.validate().unwrap_err().to_string();
        assert!(
            e.contains("network.ingress_tls_port") && e.contains("ingress_port too"),
            "{e}"
        );
        let off = Network {
            ingress_tls_port: 0,
            ..Network::default()
        };
        off.validate().unwrap();
    }

    #[test]
    fn overlapping_or_odd_ranges_are_refused() {
        let n = Network {
            service_cidr: "10.42.128.0/24".parse().unwrap(),
            ..Network::default()
        };
        let e = n.validate().unwrap_err().to_string();
        assert!(
            e.contains("network.service_cidr") && e.contains("overlaps"),
            "{e}"
        );
        let n = Network {
            node_cidr_prefix: 8,
            ..Network::default()
        };
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("node_cidr_prefix"));
        assert!("32767-30000".parse::<PortRange>().is_err());
        assert_eq!("30000-32767".parse::<PortRange>().unwrap().len(), 2768);
    }
}
