//! The machine's routes (`ip -j route show table all`), which of them are
//! ferry's, and whether the cluster's ranges clash with the others.

use ferry_api::network::{Cidr, Network};
use serde_json::Value;

/// One route as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its destination (`default` is the family's `/0`).
    pub dst: Cidr,
    /// `unicast`, `unreachable`, `local`, `broadcast`, ...
    pub kind: String,
    /// Its device, if any.
    pub dev: Option<String>,
    /// Its metric (0 when `ip` shows none).
    pub metric: u32,
    /// Its table (`main` when `ip` shows none).
    pub table: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind != "unicast" {
            write!(f, "{} ", self.kind)?;
        }
        write!(f, "{}", self.dst)?;
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if self.table != "main" {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// Parses `ip -j [-6] route show ...` output; `v6` says which family `default` is.
pub fn parse(json: &str, v6: bool) -> Result<Vec<Route>, String> {
    let items: Vec<Value> = serde_json::from_str(if json.trim().is_empty() { "[]" } else { json })
        .map_err(|e| format!("reading `ip -j route` output: {e}"))?;
    Ok(items
        .iter()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?;
            let dst: Cidr = match dst {
                "default" if v6 => "::/0".parse().ok()?,
                "default" => "0.0.0.0/0".parse().ok()?,
                d if d.contains('/') => d.parse().ok()?,
                d => {
                    let a: std::net::IpAddr = d.parse().ok()?;
                    Cidr::new(a, if a.is_ipv4() { 32 } else { 128 })?
                }
            };
            Some(Route {
                dst,
                kind: r["type"].as_str().unwrap_or("unicast").to_string(),
                dev: r["dev"].as_str().map(str::to_string),
                metric: r["metric"].as_u64().unwrap_or(0) as u32,
                table: r["table"].as_str().unwrap_or("main").to_string(),
            })
        })
        .collect())
}

/// Whether `name` is one of the interface names ferry makes (`fn`, `fm`, `fp`
/// and 8 hex digits: node interfaces, their veth peers, pod veths).
pub fn is_ferry_iface(name: &str) -> bool {
    name.len() == 10
        && matches!(&name[..2], "fn" | "fm" | "fp")
        && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the route is one a ferry node made: through a ferry interface, or
/// an `unreachable` route with a node's metric (see [`super::route_metric`]).
pub fn is_ferrys(r: &Route) -> bool {
    r.dev.as_deref().is_some_and(is_ferry_iface)
        || (r.kind == "unreachable" && (super::METRIC_BASE..super::METRIC_END).contains(&r.metric))
}

/// The machine's routes that overlap the cluster's ranges and are not ferry's
/// (default routes do not count: more specific routes win over them), each
/// said as "route X overlaps the cluster CIDR Y".
pub fn clashes(routes: &[Route], net: &Network) -> Vec<String> {
    let ranges = [
        ("the cluster CIDR", &net.cluster_cidr),
        ("the service CIDR", &net.service_cidr),
        ("the LoadBalancer pool", &net.load_balancer_pool),
    ];
    let mut out = Vec::new();
    for r in routes {
        if r.dst.prefix() == 0 || is_ferrys(r) {
            continue;
        }
        for (what, range) in ranges {
            if r.dst.overlaps(range) {
                out.push(format!("route {r} overlaps {what} {range}"));
            }
        }
    }
    out
}

/// A ferry node interface (`fn...`) as `ip -j link`/`ip -j addr` show it:
/// who made it (its alias `ferry <host key> <pid>`, see [`owner_alias`]) and
/// its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLink {
    /// The interface.
    pub name: String,
    /// The maker's host key and agent pid, when it carries ferry's alias.
    pub owner: Option<(String, u32)>,
    /// Its addresses.
    pub addrs: Vec<std::net::IpAddr>,
}

/// The alias a node gives its interface: its host key (cluster and node,
/// [`super::host_key`]) and its agent's pid.
pub fn owner_alias(key: &str, pid: u32) -> String {
    format!("ferry {key} {pid}")
}

/// The node interfaces in `ip -j link show` and `ip -j addr show` output.
pub fn parse_links(link_json: &str, addr_json: &str) -> Vec<NodeLink> {
    let read = |j: &str| -> Vec<Value> {
        serde_json::from_str(if j.trim().is_empty() { "[]" } else { j }).unwrap_or_default()
    };
    let addrs = read(addr_json);
    read(link_json)
        .iter()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?;
            if !(is_ferry_iface(name) && name.starts_with("fn")) {
                return None;
            }
            let owner = l["ifalias"].as_str().and_then(|a| {
                let mut w = a.split(' ');
                match (
                    w.next(),
                    w.next(),
                    w.next().map(str::parse::<u32>),
                    w.next(),
                ) {
                    (Some("ferry"), Some(key), Some(Ok(pid)), None) => Some((key.to_string(), pid)),
                    _ => None,
                }
            });
            let addrs = addrs
                .iter()
                .filter(|a| a["ifname"].as_str() == Some(name))
                .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
                .filter_map(|i| i["local"].as_str()?.parse().ok())
                .collect();
            Some(NodeLink {
                name: name.to_string(),
                owner,
                addrs,
            })
        })
        .collect()
}

/// The cluster part of a host key (`<cluster>/<node>`; none for a bare name).
fn cluster_of(key: &str) -> Option<&str> {
    key.split_once('/').map(|(c, _)| c)
}

/// Another cluster's node interfaces on this machine, against this node's
/// host key `ours` and network: the clashes (a live one holding an address
/// in one of this cluster's ranges, said in words) and the stale ones (their
/// agent is gone — `alive(pid)` is false — to be removed by host key).
/// Interfaces of this cluster, and ones without ferry's alias, are left alone.
pub fn foreign_nodes(
    links: &[NodeLink],
    ours: &str,
    net: &Network,
    alive: impl Fn(u32) -> bool,
) -> (Vec<String>, Vec<String>) {
    let ranges = [
        ("the cluster CIDR", &net.cluster_cidr),
        ("the service CIDR", &net.service_cidr),
        ("the LoadBalancer pool", &net.load_balancer_pool),
    ];
    let (mut clashes, mut stale) = (Vec::new(), Vec::new());
    for l in links {
        let Some((key, pid)) = &l.owner else { continue };
        if key == ours || cluster_of(key) == cluster_of(ours) {
            continue;
        }
        if !alive(*pid) {
            stale.push(key.clone());
            continue;
        }
        let hit = l.addrs.iter().find_map(|a| {
            let (what, r) = ranges.iter().find(|(_, r)| r.contains(*a))?;
            Some(format!("{a} in {what} {r}"))
        });
        if let Some(hit) = hit {
            let node = key.split_once('/').map_or(key.as_str(), |(_, n)| n);
            clashes.push(format!(
                "another ferry cluster runs on this machine with the same ranges: its node {node:?} (agent pid {pid}, interface {}) holds {hit}; stop that cluster or give this one other [network] ranges",
                l.name
            ));
        }
    }
    (clashes, stale)
}

/// Reads the machine's ferry node interfaces.
pub fn read_links() -> Result<Vec<NodeLink>, super::cmd::CmdError> {
    let links = super::cmd::output(&["ip", "-j", "link", "show"])?;
    let addrs = super::cmd::output(&["ip", "-j", "addr", "show"])?;
    Ok(parse_links(&links, &addrs))
}

/// Reads every route of the machine (both families, every table).
pub fn read_all() -> Result<Vec<Route>, super::cmd::CmdError> {
    let v4 = super::cmd::output(&["ip", "-j", "route", "show", "table", "all"])?;
    let v6 = super::cmd::output(&["ip", "-j", "-6", "route", "show", "table", "all"])?;
    let mut out = parse(&v4, false).unwrap_or_default();
    out.extend(parse(&v6, true).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
      {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
      {"type":"local","dst":"127.0.0.1","dev":"lo","table":"local","flags":[]},
      {"type":"unreachable","dst":"10.42.0.0/16","metric":4711,"flags":[]},
      {"dst":"10.42.0.7","dev":"fp0123abcd","flags":[]},
      {"type":"local","dst":"10.42.0.1","dev":"fn89abcdef","table":"local","flags":[]}]"#;

    #[test]
    fn routes_parse_with_defaults_hosts_and_types() {
        let rs = parse(V4, false).unwrap();
        assert_eq!(rs.len(), 6);
        assert_eq!(rs[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(rs[2].dst.to_string(), "127.0.0.1/32");
        assert_eq!(rs[2].table, "local");
        assert_eq!((rs[3].kind.as_str(), rs[3].metric), ("unreachable", 4711));
        assert_eq!(rs[1].to_string(), "192.0.2.0/24 dev eth0");
        let v6 = parse(
            r#"[{"dst":"default","gateway":"fd00::1","dev":"eth0","metric":1024}]"#,
            true,
        )
        .unwrap();
        assert_eq!(v6[0].dst.to_string(), "::/0");
        assert!(parse("not json", false).is_err());
        assert_eq!(parse("", false).unwrap(), vec![]);
    }

    #[test]
    fn another_clusters_live_node_in_our_ranges_clashes_and_a_dead_ones_is_stale() {
        let links = r#"[{"ifname":"eth0"},
          {"ifname":"fn00000001","ifalias":"ferry aaaaaaaaaaaa/n1 10"},
          {"ifname":"fn00000002","ifalias":"ferry bbbbbbbbbbbb/n1 20"},
          {"ifname":"fn00000003","ifalias":"ferry cccccccccccc/n2 30"},
          {"ifname":"fn00000004","ifalias":"ferry dddddddddddd/n3 40"},
          {"ifname":"fn00000005"},
          {"ifname":"fn00000006","ifalias":"ferry aaaaaaaaaaaa/n2 11"}]"#;
        let addrs = r#"[{"ifname":"fn00000001","addr_info":[{"local":"10.42.0.1"}]},
          {"ifname":"fn00000002","addr_info":[{"local":"10.42.1.1"},{"local":"10.43.0.10"}]},
          {"ifname":"fn00000003","addr_info":[{"local":"10.42.2.1"}]},
          {"ifname":"fn00000004","addr_info":[{"local":"10.142.0.1"}]},
          {"ifname":"fn00000005","addr_info":[{"local":"10.42.9.1"}]},
          {"ifname":"fn00000006","addr_info":[{"local":"10.42.3.1"}]}]"#;
        let ls = parse_links(links, addrs);
        assert_eq!(ls.len(), 6, "eth0 is not ferry's");
        assert_eq!(ls[1].owner, Some(("bbbbbbbbbbbb/n1".into(), 20)));
        assert_eq!(ls[1].addrs.len(), 2);
        assert_eq!(ls[4].owner, None);
        let net = Network::default();
        // Ours (cluster aaaa...): n1 and n2 pass; bbbb's live n1 clashes;
        // cccc's agent (pid 30) is gone: stale; dddd's ranges do not overlap.
        let (clash, stale) = foreign_nodes(&ls, "aaaaaaaaaaaa/n1", &net, |p| p != 30);
        assert_eq!(clash.len(), 1, "{clash:?}");
        assert!(clash[0].contains("\"n1\" (agent pid 20, interface fn00000002) holds 10.42.1.1 in the cluster CIDR 10.42.0.0/16"), "{}", clash[0]);
        assert_eq!(stale, vec!["cccccccccccc/n2".to_string()]);
        assert_eq!(
            owner_alias("aaaaaaaaaaaa/n1", 10),
            "ferry aaaaaaaaaaaa/n1 10"
        );
    }

    #[test]
    fn only_foreign_specific_routes_clash() {
        let net = Network::default(); // 10.42/16, 10.43/16, 10.44.0/24
        let mut rs = parse(V4, false).unwrap();
        assert_eq!(
            clashes(&rs, &net),
            Vec::<String>::new(),
            "ferry's and default routes"
        );
        for (json, want) in [
            (
                r#"{"dst":"10.0.0.0/8","dev":"eth1"}"#,
                vec![
                    "route 10.0.0.0/8 dev eth1 overlaps the cluster CIDR 10.42.0.0/16",
                    "route 10.0.0.0/8 dev eth1 overlaps the service CIDR 10.43.0.0/16",
                    "route 10.0.0.0/8 dev eth1 overlaps the LoadBalancer pool 10.44.0.0/24",
                ],
            ),
            (
                r#"{"dst":"10.43.5.0/24","dev":"docker0"}"#,
                vec!["route 10.43.5.0/24 dev docker0 overlaps the service CIDR 10.43.0.0/16"],
            ),
            // An unreachable route with a metric ferry never uses is not ferry's.
            (
                r#"{"type":"unreachable","dst":"10.44.0.0/24"}"#,
                vec!["route unreachable 10.44.0.0/24 overlaps the LoadBalancer pool 10.44.0.0/24"],
            ),
            (r#"{"dst":"10.45.0.0/16","dev":"eth1"}"#, vec![]),
            (
                r#"{"dst":"10.42.3.4","dev":"eth1x0000000"}"#,
                vec!["route 10.42.3.4/32 dev eth1x0000000 overlaps the cluster CIDR 10.42.0.0/16"],
            ),
        ] {
            rs.truncate(6);
            rs.extend(parse(&format!("[{json}]"), false).unwrap());
            assert_eq!(clashes(&rs, &net), want, "{json}");
        }
    }

    #[test]
    fn ferry_interfaces_are_recognised() {
        for (n, want) in [
            ("fn0123abcd", true),
            ("fp0123abcd", true),
            ("fm0123abcd", true),
            ("fx0123abcd", false),
            ("fn0123abc", false),
            ("fnzz23abcd", false),
            ("eth0", false),
        ] {
            assert_eq!(is_ferry_iface(n), want, "{n}");
        }
    }
}
