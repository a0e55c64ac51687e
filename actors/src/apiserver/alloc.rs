//! Service ClusterIPs and NodePorts, allocated as the Service is written.
//!
//! Every address and port a Service holds has a marker key
//! (`/ferry/alloc/serviceips/<ip>`, `/ferry/alloc/nodeports/<port>`) written
//! in the same Raft transaction as the Service, with precondition `Absent`: two
//! Services can never hold one address or port, whichever masters created
//! them at once, and no failover can undo half of it. A Service's delete
//! removes its markers in the same transaction; the leader's repair loop
//! (`controllers::network`) removes markers whose Service is gone by another path.
//!
//! Dynamic picks come from the upper part of each range and requests for a
//! specific value may use all of it, as Kubernetes' static sub-ranges do
//! (`ServiceIPStaticSubrange`, `ServiceNodePortStaticSubrange`), so chosen
//! addresses (the `kubernetes` Service's `.1`, DNS's `.10`) are rarely taken.
//! The errors are Kubernetes' own words.

use ferry_api::kv::{Expect, WriteOp};
use ferry_api::network::Network;
use ferry_api::object::{Status, StatusCause};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Marker keys of allocated ClusterIPs.
pub const IP_PREFIX: &str = "/ferry/alloc/serviceips/";
/// Marker keys of allocated NodePorts.
pub const PORT_PREFIX: &str = "/ferry/alloc/nodeports/";

/// What a Service holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its ClusterIPs.
    pub ips: BTreeSet<IpAddr>,
    /// Its NodePorts.
    pub ports: BTreeSet<u16>,
}

impl Held {
    /// The marker keys.
    pub fn keys(&self) -> Vec<String> {
        let ips = self.ips.iter().map(|ip| format!("{IP_PREFIX}{ip}"));
        let ports = self.ports.iter().map(|p| format!("{PORT_PREFIX}{p}"));
        ips.chain(ports).collect()
    }
}

/// What `svc` holds (its `clusterIPs`, else `clusterIP`, and its ports' `nodePort`s).
pub fn held(svc: &Value) -> Held {
    let spec = &svc["spec"];
    let mut ips: Vec<&str> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if ips.is_empty() {
        ips.extend(spec["clusterIP"].as_str());
    }
    Held {
        ips: ips.iter().filter_map(|s| s.parse().ok()).collect(),
        ports: spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_u64())
            .filter_map(|p| u16::try_from(p).ok().filter(|p| *p != 0))
            .collect(),
    }
}

/// Values taken by other Services (read from the markers).
#[derive(Debug, Default, Clone)]
pub struct Taken {
    /// Addresses.
    pub ips: BTreeSet<IpAddr>,
    /// Ports.
    pub ports: BTreeSet<u16>,
}

/// One value to claim, and whether the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// An address.
    Ip {
        /// The address.
        ip: IpAddr,
        /// The client asked for it (`spec.clusterIP`).
        requested: bool,
    },
    /// A port.
    Port {
        /// The port.
        port: u16,
        /// The client asked for it; the field (`spec.ports[0].nodePort`).
        requested: Option<String>,
    },
}

impl Claim {
    /// Its marker key.
    pub fn key(&self) -> String {
        match self {
            Claim::Ip { ip, .. } => format!("{IP_PREFIX}{ip}"),
            Claim::Port { port, .. } => format!("{PORT_PREFIX}{port}"),
        }
    }

    /// The 422 for a requested value someone else holds (`None` for a
    /// dynamic pick, which is picked again instead).
    pub fn taken_error(&self, name: &str) -> Option<Status> {
        match self {
            Claim::Ip {
                ip,
                requested: true,
            } => Some(invalid(
                name,
                "spec.clusterIPs",
                &format!("[]string{{\"{ip}\"}}"),
                &format!("failed to allocate IP {ip}: provided IP is already allocated"),
            )),
            Claim::Port {
                port,
                requested: Some(field),
            } => Some(invalid(
                name,
                field,
                &port.to_string(),
                "provided port is already allocated",
            )),
            _ => None,
        }
    }
}

/// The write ops for a Service write: put a marker for every claim (absent
/// first) and delete the markers of what `old` held and `new` no longer does.
pub fn marker_ops(svc: &Value, claims: &[Claim], released: &Held) -> Vec<WriteOp> {
    let owner = json!({
        "namespace": svc["metadata"]["namespace"],
        "name": svc["metadata"]["name"],
        "uid": svc["metadata"]["uid"],
    });
    let value = serde_json::to_vec(&owner).expect("serializes");
    let puts = claims.iter().map(|c| WriteOp::Put {
        key: c.key(),
        value: value.clone(),
        expect: Expect::Absent,
    });
    let deletes = released.keys().into_iter().map(|key| WriteOp::Delete {
        key,
        expect: Expect::Any,
    });
    puts.chain(deletes).collect()
}

fn invalid(name: &str, field: &str, value: &str, detail: &str) -> Status {
    Status::invalid(
        "Service",
        name,
        vec![StatusCause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }],
    )
}

fn full(what: &str) -> Status {
    Status::internal(format!(
        "Internal error occurred: failed to allocate a {what}: range is full"
    ))
}

/// Kubernetes' static band: the lower `min(max(16, size/16), 256)` values
/// (addresses) or `min(max(16, size/32), 128)` (ports) are picked only on request.
fn static_band(size: u128, div: u128, cap: u128) -> u128 {
    (size / div).clamp(16, cap).min(size / 2)
}

/// Picks a free value in `first..first+size`, above the static band,
/// preferring a random start; falls back to the static band when the upper
/// part is full. `None`: all taken.
fn pick(size: u128, band: u128, free: impl Fn(u128) -> bool, seed: u64) -> Option<u128> {
    let upper = size - band;
    if upper > 0 {
        let start = u128::from(seed) % upper;
        if let Some(i) = (0..upper)
            .map(|k| band + (start + k) % upper)
            .find(|&i| free(i))
        {
            return Some(i);
        }
    }
    (0..band).find(|&i| free(i))
}

/// Fills in `svc`'s ClusterIP and NodePorts (create, or update of `old`) and
/// returns what it must claim and what `old` held that it releases. `taken`
/// holds what other Services hold (this one's own values excluded).
pub fn assign(
    net: &Network,
    svc: &mut Value,
    old: Option<&Value>,
    taken: &Taken,
    seed: u64,
) -> Result<(Vec<Claim>, Held), Status> {
    let name = svc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let before = old.map(held).unwrap_or_default();
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let mut claims = Vec::new();
    let spec = svc["spec"]
        .as_object_mut()
        .ok_or_else(|| Status::bad_request("a Service needs a spec"))?;

    // The ClusterIP.
    if ty == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        spec.remove("ipFamilies");
        spec.remove("ipFamilyPolicy");
    } else {
        let asked = spec
            .get("clusterIPs")
            .and_then(|v| v.get(0))
            .or_else(|| spec.get("clusterIP"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let ip = match asked.as_deref() {
            Some("None") => None,
            Some(s) => {
                let ip: IpAddr = s.parse().map_err(|_| {
                    invalid(
                        &name,
                        "spec.clusterIPs",
                        &format!("[]string{{\"{s}\"}}"),
                        "must be a valid IP address",
                    )
                })?;
                if !before.ips.contains(&ip) {
                    if !net.service_cidr.contains(ip) {
                        return Err(invalid(
                            &name,
                            "spec.clusterIPs",
                            &format!("[]string{{\"{ip}\"}}"),
                            &format!(
                                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                                net.service_cidr
                            ),
                        ));
                    }
                    let claim = Claim::Ip {
                        ip,
                        requested: true,
                    };
                    if taken.ips.contains(&ip) {
                        return Err(claim.taken_error(&name).expect("requested"));
                    }
                    claims.push(claim);
                }
                Some(ip)
            }
            None => {
                let c = &net.service_cidr;
                // Neither the network address nor (IPv4) the broadcast address.
                let usable = c.size().saturating_sub(2);
                let band = static_band(usable, 16, 256);
                let free = |i: u128| c.nth(i + 1).is_some_and(|ip| !taken.ips.contains(&ip));
                let i = pick(usable, band, free, seed).ok_or_else(|| full("serviceIP"))?;
                let ip = c.nth(i + 1).expect("in range");
                claims.push(Claim::Ip {
                    ip,
                    requested: false,
                });
                Some(ip)
            }
        };
        let value = ip.map_or_else(|| "None".to_string(), |ip| ip.to_string());
        spec.insert("clusterIP".into(), json!(value));
        spec.insert("clusterIPs".into(), json!([value]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    }

    // NodePorts.
    let wants_ports = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
    let range = net.node_port_range;
    let mut mine: BTreeSet<u16> = BTreeSet::new();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let given = p["nodePort"].as_u64().filter(|n| *n != 0);
            if !wants_ports {
                if let Some(o) = p.as_object_mut() {
                    o.remove("nodePort");
                }
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            let port = match given {
                Some(n) => {
                    let n = u16::try_from(n).ok().filter(|n| range.contains(*n)).ok_or_else(|| {
                        invalid(
                            &name,
                            &field,
                            &n.to_string(),
                            &format!("provided port is not in the valid range. The range of valid ports is {range}"),
                        )
                    })?;
                    if !before.ports.contains(&n) && !mine.contains(&n) {
                        let claim = Claim::Port {
                            port: n,
                            requested: Some(field),
                        };
                        if taken.ports.contains(&n) {
                            return Err(claim.taken_error(&name).expect("requested"));
                        }
                        claims.push(claim);
                    }
                    n
                }
                None => {
                    let size = u128::from(range.len());
                    let band = static_band(size, 32, 128);
                    let free = |i: u128| {
                        let p = range.first + i as u16;
                        !taken.ports.contains(&p)
                            && !mine.contains(&p)
                            && !before.ports.contains(&p)
                    };
                    let i = pick(
                        size,
                        band,
                        free,
                        seed.rotate_left(17).wrapping_add(i as u64),
                    )
                    .ok_or_else(|| full("nodePort"))?;
                    let n = range.first + i as u16;
                    claims.push(Claim::Port {
                        port: n,
                        requested: None,
                    });
                    n
                }
            };
            mine.insert(port);
            p["nodePort"] = json!(port);
        }
    }
    let now = held(svc);
    let released = Held {
        ips: before.ips.difference(&now.ips).copied().collect(),
        ports: before.ports.difference(&now.ports).copied().collect(),
    };
    Ok((claims, released))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
               "spec": spec})
    }

    fn net() -> Network {
        Network::default()
    }

    #[test]
    fn a_clusterip_service_gets_a_free_address_above_the_static_band() {
        let mut s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
        let (claims, released) = assign(&net(), &mut s, None, &Taken::default(), 7).unwrap();
        let ip: IpAddr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(net().service_cidr.contains(ip));
        assert!(
            net().service_cidr.index_of(ip).unwrap() > 256,
            "{ip} is above the static band"
        );
        assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(
            claims,
            vec![Claim::Ip {
                ip,
                requested: false
            }]
        );
        assert_eq!(released, Held::default());
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn taken_addresses_are_skipped_and_a_full_range_is_an_internal_error() {
        let mut n = net();
        n.service_cidr = "10.43.0.0/28".parse().unwrap();
        // 14 usable addresses: all of the upper part and all but one of the band taken.
        let mut taken = Taken::default();
        for i in 1..=13 {
            taken.ips.insert(n.service_cidr.nth(i).unwrap());
        }
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        assign(&n, &mut s, None, &taken, 3).unwrap();
        assert_eq!(s["spec"]["clusterIP"], "10.43.0.14");
        taken.ips.insert("10.43.0.14".parse().unwrap());
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        let e = assign(&n, &mut s, None, &taken, 3).unwrap_err();
        assert_eq!(e.code, 500);
        assert!(
            e.message
                .contains("failed to allocate a serviceIP: range is full"),
            "{}",
            e.message
        );
    }

    #[test]
    fn requested_addresses_are_checked_against_range_and_holders() {
        let mut s = svc(json!({"clusterIP": "10.43.0.10", "ports": [{"port": 53}]}));
        let (claims, _) = assign(&net(), &mut s, None, &Taken::default(), 0).unwrap();
        assert_eq!(
            claims,
            vec![Claim::Ip {
                ip: "10.43.0.10".parse().unwrap(),
                requested: true
            }]
        );
        let mut s = svc(json!({"clusterIP": "10.0.0.5", "ports": [{"port": 53}]}));
        let e = assign(&net(), &mut s, None, &Taken::default(), 0).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains(
            "spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        ), "{}", e.message);
        let mut taken = Taken::default();
        taken.ips.insert("10.43.0.10".parse().unwrap());
        let mut s = svc(json!({"clusterIP": "10.43.0.10", "ports": [{"port": 53}]}));
        let e = assign(&net(), &mut s, None, &taken, 0).unwrap_err();
        assert!(
            e.message
                .contains("failed to allocate IP 10.43.0.10: provided IP is already allocated"),
            "{}",
            e.message
        );
    }

    #[test]
    fn headless_and_external_name_services_hold_no_address() {
        let mut s = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        let (claims, _) = assign(&net(), &mut s, None, &Taken::default(), 0).unwrap();
        assert!(claims.is_empty());
        assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
        let mut s = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        let (claims, _) = assign(&net(), &mut s, None, &Taken::default(), 0).unwrap();
        assert!(claims.is_empty());
        assert!(s["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn nodeports_are_allocated_checked_kept_and_released() {
        let mut s = svc(
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 30443}]}),
        );
        let mut taken = Taken::default();
        let (claims, _) = assign(&net(), &mut s, None, &taken, 1).unwrap();
        let p0 = s["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
        assert!(
            net().node_port_range.contains(p0) && p0 >= 30000 + 86,
            "{p0} is above the static band"
        );
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 30443);
        assert_eq!(claims.len(), 3, "{claims:?}");
        // Updating keeps what it held and claims nothing again.
        let old = s.clone();
        let mut new = s.clone();
        let (claims, released) = assign(&net(), &mut new, Some(&old), &taken, 9).unwrap();
        assert!(claims.is_empty(), "{claims:?}");
        assert_eq!(released, Held::default());
        // Back to ClusterIP: the ports are released, the address kept.
        new["spec"]["type"] = json!("ClusterIP");
        let (claims, released) = assign(&net(), &mut new, Some(&old), &taken, 9).unwrap();
        assert!(claims.is_empty());
        assert_eq!(released.ports, BTreeSet::from([p0, 30443]));
        assert!(released.ips.is_empty());
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        // A requested port out of range, or held by another Service.
        let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}));
        let e = assign(&net(), &mut s, None, &taken, 1).unwrap_err();
        assert!(e.message.contains("spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{}", e.message);
        taken.ports.insert(30080);
        let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let e = assign(&net(), &mut s, None, &taken, 1).unwrap_err();
        assert!(
            e.message.contains(
                "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn marker_ops_claim_absent_keys_and_delete_released_ones() {
        let s = svc(json!({}));
        let claims = [Claim::Port {
            port: 30001,
            requested: None,
        }];
        let released = Held {
            ips: BTreeSet::from(["10.43.9.9".parse().unwrap()]),
            ports: BTreeSet::new(),
        };
        let ops = marker_ops(&s, &claims, &released);
        assert!(
            matches!(&ops[0], WriteOp::Put { key, expect: Expect::Absent, .. } if key == "/ferry/alloc/nodeports/30001")
        );
        assert!(
            matches!(&ops[1], WriteOp::Delete { key, .. } if key == "/ferry/alloc/serviceips/10.43.9.9")
        );
    }
}
