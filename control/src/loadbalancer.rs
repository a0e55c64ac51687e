//! LoadBalancer addresses, as MetalLB's controller gives them: a Service of
//! `type: LoadBalancer` without an ingress address gets the next free
//! address of the pool (or its `spec.loadBalancerIP`, when free and in the
//! pool); a Service that stops being one loses its ingress. No address goes
//! to two Services — counting the ones this term assigned that the cache
//! does not show yet.

use ferry_api::network::Cidr;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What to do about one Service's load-balancer status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Keep,
    /// Set `status.loadBalancer.ingress` to this address.
    Assign(IpAddr),
    /// Clear its ingress (it is no longer a LoadBalancer Service).
    Clear,
    /// No address for it: the `AllocationFailed` Event's message.
    Fail(String),
}

fn ingress_ips(s: &Service) -> impl Iterator<Item = IpAddr> + '_ {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
}

fn has_ingress(s: &Service) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}

/// Whether the pool hands out `ip`: in it, and not its network or broadcast
/// address (a /31 or /32 has neither).
fn usable(pool: Cidr, ip: IpAddr) -> bool {
    match pool.index_of(ip) {
        Some(i) => pool.size() <= 2 || (i != 0 && i != pool.size() - 1),
        None => false,
    }
}

/// The load-balancer status a decision writes (None: none to write).
pub fn status_for(d: &Decision) -> Option<LoadBalancerStatus> {
    match d {
        Decision::Assign(ip) => Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some(ip.to_string()),
                ip_mode: Some("VIP".into()),
                ..LoadBalancerIngress::default()
            }]),
        }),
        Decision::Clear => Some(LoadBalancerStatus::default()),
        _ => None,
    }
}

/// The load-balancer address `svc` (cache key `key`) should get; `services`
/// is every Service in the cache, `pending` the addresses this term assigned
/// by Service key.
pub fn decide(
    pool: Cidr,
    key: &str,
    svc: &Service,
    services: &[Arc<Service>],
    pending: &BTreeMap<String, IpAddr>,
) -> Decision {
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return if has_ingress(svc) {
            Decision::Clear
        } else {
            Decision::Keep
        };
    }
    // Another implementation's class, an address already, or one on its way.
    if spec.load_balancer_class.is_some() || has_ingress(svc) || pending.contains_key(key) {
        return Decision::Keep;
    }
    let mut used: BTreeMap<IpAddr, String> = BTreeMap::new();
    for s in services {
        let k = crate::meta::key(&s.metadata);
        if k != key {
            used.extend(ingress_ips(s).map(|ip| (ip, k.clone())));
        }
    }
    used.extend(
        pending
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, ip)| (*ip, k.clone())),
    );
    let failed = |why: String| Decision::Fail(format!("Failed to allocate IP for {key:?}: {why}"));
    if let Some(want) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        return match want.parse::<IpAddr>() {
            Ok(ip) if !usable(pool, ip) => failed(format!("{want:?} is not allowed in config")),
            Ok(ip) => match used.get(&ip) {
                Some(other) => failed(format!("address also in use by {other}")),
                None => Decision::Assign(ip),
            },
            Err(_) => failed(format!("{want:?} is not an IP address")),
        };
    }
    let (first, last) = if pool.size() <= 2 {
        (0, pool.size() - 1)
    } else {
        (1, pool.size() - 2)
    };
    (first..=last)
        .filter_map(|i| pool.nth(i))
        .find(|ip| !used.contains_key(ip))
        .map_or_else(|| failed("no available IPs".into()), Decision::Assign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn svc(name: &str, spec: Value, ingress: Option<&str>) -> Arc<Service> {
        let mut v = json!({"metadata": {"name": name, "namespace": "d"}, "spec": spec});
        if let Some(ip) = ingress {
            v["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn lb() -> Value {
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]})
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn load_balancers_get_the_next_free_address() {
        let pool: Cidr = "10.44.0.0/24".parse().unwrap();
        let none = BTreeMap::new();
        let pending = BTreeMap::from([("d/p".to_string(), ip("10.44.0.2"))]);
        let with_ip = |a: &str| {
            let mut s = lb();
            s["loadBalancerIP"] = json!(a);
            s
        };
        type Case<'a> = (
            &'a str,
            Value,
            Vec<Arc<Service>>,
            &'a BTreeMap<String, IpAddr>,
            Decision,
        );
        let cases: Vec<Case> = vec![
            (
                "first: skips the network address",
                lb(),
                vec![],
                &none,
                Decision::Assign(ip("10.44.0.1")),
            ),
            (
                "taken and pending addresses are skipped",
                lb(),
                vec![svc("a", lb(), Some("10.44.0.1"))],
                &pending,
                Decision::Assign(ip("10.44.0.3")),
            ),
            (
                "a requested free address",
                with_ip("10.44.0.77"),
                vec![svc("a", lb(), Some("10.44.0.1"))],
                &none,
                Decision::Assign(ip("10.44.0.77")),
            ),
            (
                "a requested address in use",
                with_ip("10.44.0.1"),
                vec![svc("a", lb(), Some("10.44.0.1"))],
                &none,
                Decision::Fail(
                    "Failed to allocate IP for \"d/me\": address also in use by d/a".into(),
                ),
            ),
            (
                "a requested address outside the pool",
                with_ip("10.9.0.1"),
                vec![],
                &none,
                Decision::Fail(
                    "Failed to allocate IP for \"d/me\": \"10.9.0.1\" is not allowed in config"
                        .into(),
                ),
            ),
            (
                "the broadcast address is not handed out",
                with_ip("10.44.0.255"),
                vec![],
                &none,
                Decision::Fail(
                    "Failed to allocate IP for \"d/me\": \"10.44.0.255\" is not allowed in config"
                        .into(),
                ),
            ),
        ];
        for (what, spec, mut others, pending, want) in cases {
            let me = svc("me", spec, None);
            others.push(me.clone());
            assert_eq!(decide(pool, "d/me", &me, &others, pending), want, "{what}");
        }
    }

    #[test]
    fn services_with_an_address_keep_it_and_others_lose_theirs() {
        let pool: Cidr = "10.44.0.0/24".parse().unwrap();
        let none = BTreeMap::new();
        let has = svc("me", lb(), Some("10.44.0.9"));
        assert_eq!(
            decide(pool, "d/me", &has, std::slice::from_ref(&has), &none),
            Decision::Keep
        );
        let was = svc("me", json!({"type": "ClusterIP"}), Some("10.44.0.9"));
        assert_eq!(
            decide(pool, "d/me", &was, std::slice::from_ref(&was), &none),
            Decision::Clear
        );
        assert_eq!(
            status_for(&Decision::Clear).unwrap().ingress,
            None,
            "the ingress is cleared"
        );
        let plain = svc("me", json!({"type": "ClusterIP"}), None);
        assert_eq!(
            decide(pool, "d/me", &plain, std::slice::from_ref(&plain), &none),
            Decision::Keep
        );
        let mut other_class = lb();
        other_class["loadBalancerClass"] = json!("example.com/lb");
        let other = svc("me", other_class, None);
        assert_eq!(
            decide(pool, "d/me", &other, std::slice::from_ref(&other), &none),
            Decision::Keep
        );
        let pending = BTreeMap::from([("d/me".to_string(), ip("10.44.0.4"))]);
        let me = svc("me", lb(), None);
        assert_eq!(
            decide(pool, "d/me", &me, std::slice::from_ref(&me), &pending),
            Decision::Keep
        );
        let st = status_for(&Decision::Assign(ip("10.44.0.4"))).unwrap();
        let i = &st.ingress.unwrap()[0];
        assert_eq!(
            (i.ip.as_deref(), i.ip_mode.as_deref()),
            (Some("10.44.0.4"), Some("VIP"))
        );
    }

    #[test]
    fn an_exhausted_pool_fails_and_never_gives_one_address_twice() {
        // A /30: two usable addresses.
        let pool: Cidr = "10.44.0.0/30".parse().unwrap();
        let mut services: Vec<Arc<Service>> = Vec::new();
        let mut pending = BTreeMap::new();
        let mut given = Vec::new();
        for i in 0..3 {
            let key = format!("d/s{i}");
            let me = svc(&format!("s{i}"), lb(), None);
            let mut all = services.clone();
            all.push(me.clone());
            match decide(pool, &key, &me, &all, &pending) {
                Decision::Assign(a) => {
                    given.push(a);
                    if i == 0 {
                        services.push(svc(&format!("s{i}"), lb(), Some(&a.to_string())));
                    } else {
                        services.push(me);
                        pending.insert(key, a);
                    }
                }
                Decision::Fail(m) => {
                    assert_eq!(i, 2);
                    assert_eq!(m, "Failed to allocate IP for \"d/s2\": no available IPs");
                }
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(given, [ip("10.44.0.1"), ip("10.44.0.2")]);
        let single: Cidr = "10.44.0.9/32".parse().unwrap();
        let me = svc("me", lb(), None);
        assert_eq!(
            decide(
                single,
                "d/me",
                &me,
                std::slice::from_ref(&me),
                &BTreeMap::new()
            ),
            Decision::Assign(ip("10.44.0.9"))
        );
    }
}
