use super::*;
use ferry_api::network::Network;
use serde_json::json;

fn info(node: &str) -> NetInfo {
    let network = Network {
        cluster_cidr: "10.250.0.0/16".parse().unwrap(),
        service_cidr: "10.251.0.0/24".parse().unwrap(),
        load_balancer_pool: "10.252.0.0/24".parse().unwrap(),
        ..Network::default()
    };
    NetInfo::new(
        Mode::Namespaces,
        network,
        "10.250.7.0/24".parse().unwrap(),
        node,
        node,
    )
    .unwrap()
}

/// A plan as the command lines it runs (sysctls as `sysctl k=v`).
fn lines(plan: &[Step]) -> Vec<String> {
    plan.iter()
        .map(|s| match s {
            Step::Run(c) => c.to_string(),
            Step::Sysctl(k, v) => format!("sysctl {k}={v}"),
            Step::Iface { name, peer } => format!("iface {name} (peer {peer})"),
        })
        .collect()
}

#[test]
fn the_host_plan_holds_the_gateway_and_unreachable_routes() {
    let i = info("n1");
    let (f, m) = (node_iface("n1"), route_metric("n1"));
    let peer = node_iface_peer("n1");
    assert_eq!(
        lines(&host_plan(&i)),
        [
            format!("iface {f} (peer {peer})"),
            format!("ip link set {f} up"),
            format!("ip link set {f} alias ferry n1 {}", std::process::id()),
            format!("ip addr replace 10.250.7.1/32 dev {f}"),
            format!("ip route replace unreachable 10.250.0.0/16 metric {m}"),
            format!("ip route replace unreachable 10.251.0.0/24 metric {m}"),
            format!("ip route replace unreachable 10.252.0.0/24 metric {m}"),
            "sysctl net/ipv4/ip_forward=1".to_string(),
        ]
    );
    let ranges = [i.network.cluster_cidr, i.network.service_cidr];
    assert_eq!(
        lines(&host_teardown_plan("n1", &ranges)),
        [
            format!("ip route del unreachable 10.250.0.0/16 metric {m}"),
            format!("ip route del unreachable 10.251.0.0/24 metric {m}"),
            format!("ip link del {f}"),
        ]
    );
}

#[test]
fn the_pod_plan_routes_only_cluster_ranges_through_the_gateway() {
    let i = info("n1");
    let uid = "0c5e-pod";
    let (ns, v) = (netns_name(uid), pod_veth(uid));
    let plan = lines(&pod_plan(&i, uid, "10.250.7.9".parse().unwrap()));
    assert_eq!(
        plan,
        [
            format!("ip netns add {ns}"),
            format!("ip link add {v} address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns {ns}"),
            format!("ip -n {ns} link set lo up"),
            format!("ip -n {ns} addr replace 10.250.7.9/32 dev eth0"),
            format!("ip -n {ns} link set eth0 up"),
            format!("ip link set {v} up"),
            format!("sysctl net/ipv4/conf/{v}/proxy_arp=1"),
            format!("sysctl net/ipv4/neigh/{v}/proxy_delay=0"),
            format!("ip -n {ns} route replace 169.254.1.1 dev eth0 scope link"),
            format!("ip -n {ns} neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent"),
            format!("ip -n {ns} route replace 10.250.0.0/16 via 169.254.1.1 dev eth0"),
            format!("ip -n {ns} route replace 10.251.0.0/24 via 169.254.1.1 dev eth0"),
            format!("ip -n {ns} route replace 10.252.0.0/24 via 169.254.1.1 dev eth0"),
            format!("ip route replace 10.250.7.9/32 dev {v} src 10.250.7.1"),
        ]
    );
    assert!(
        !plan.iter().any(|l| l.contains("default")),
        "no default route"
    );
    // Re-running must not fail on what exists: creations tolerate it.
    let p = pod_plan(&i, uid, "10.250.7.9".parse().unwrap());
    for s in &p[..2] {
        let Step::Run(c) = s else { panic!() };
        assert_eq!(c.tolerate, [cmd::EXISTS], "{c}");
    }
    assert_eq!(
        lines(&pod_teardown_plan(uid)),
        [format!("ip link del {v}"), format!("ip netns del {ns}")]
    );
}

#[test]
fn hosts_files_are_the_kubelets() {
    let head = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
    for (pod, want) in [
        (
            json!({"metadata": {"name": "web-0", "namespace": "ns1"}}),
            "10.42.0.5\tweb-0\n".to_string(),
        ),
        (
            json!({"metadata": {"name": "web-0", "namespace": "ns1"},
                   "spec": {"hostname": "h", "subdomain": "web"}}),
            "10.42.0.5\th.web.ns1.svc.cluster.local\th\n".to_string(),
        ),
        (
            json!({"metadata": {"name": "p", "namespace": "ns1"},
                   "spec": {"hostAliases": [{"ip": "10.1.2.3", "hostnames": ["a", "b"]}]}}),
            "10.42.0.5\tp\n\n# Entries added by HostAliases.\n10.1.2.3\ta\tb\n".to_string(),
        ),
    ] {
        assert_eq!(
            hosts_file(&pod, "10.42.0.5", "cluster.local"),
            format!("{head}{want}")
        );
    }
}

/// Whether a pod namespace for `uid` can be made here; the reason when not.
fn root_only() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    match detect_mode("podnet-test") {
        (Mode::Namespaces, _) => None,
        (Mode::Host, why) => Some(why),
    }
}

/// Undoes the test's changes even when it fails.
struct Cleanup {
    data_dir: PathBuf,
    node: String,
    uid: String,
    forward: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = remove_pod(&self.data_dir, &self.uid);
        let _ = remove_host(&self.node);
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.forward);
    }
}

fn ip_out(args: &[&str]) -> Result<String, String> {
    let argv: Vec<&str> = std::iter::once("ip").chain(args.iter().copied()).collect();
    cmd::output(&argv).map_err(|e| e.to_string())
}

/// A TCP listener bound inside network namespace `netns` (from a thread that
/// enters it; the socket stays in that namespace).
fn listen_in(netns: &Path, addr: &str) -> std::net::TcpListener {
    let (netns, addr) = (netns.to_path_buf(), addr.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind(addr).unwrap()
    })
    .join()
    .unwrap()
}

/// Connects from inside `netns` (a thread that enters it).
fn connect_from(netns: &Path, to: std::net::SocketAddr) -> std::io::Result<()> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns)?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3)).map(drop)
    })
    .join()
    .unwrap()
}

#[test]
fn a_real_pod_network_is_reachable_isolated_and_torn_down() {
    if let Some(why) = root_only() {
        eprintln!("skipped: a pod network needs root and network namespaces ({why})");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let node = format!("podnet-test-{}", std::process::id());
    let uid = format!("podnet-test-uid-{}", std::process::id());
    let _cleanup = Cleanup {
        data_dir: d.path().to_path_buf(),
        node: node.clone(),
        uid: uid.clone(),
        forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
    };
    let net = PodNetwork::new(info(&node), d.path());
    net.setup_host().unwrap();
    let a = net.ensure_pod(&uid).unwrap();
    assert_eq!(a.ip.to_string(), "10.250.7.2");
    assert_eq!(
        net.ensure_pod(&uid).unwrap(),
        a,
        "applying again reuses it all"
    );
    assert_eq!(recorded(d.path(), &uid), Some(a.clone()));
    let ns = netns_name(&uid);

    // The pod side: its address on eth0, and no default route.
    let addrs = ip_out(&["-n", &ns, "-j", "addr", "show", "eth0"]).unwrap();
    assert!(addrs.contains("\"local\":\"10.250.7.2\""), "{addrs}");
    let routes = ip_out(&["-n", &ns, "route", "show"]).unwrap();
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        routes.contains("10.250.0.0/16 via 169.254.1.1 dev eth0"),
        "{routes}"
    );

    // The host routes the pod to its veth, from the gateway address.
    let get = ip_out(&["route", "get", "10.250.7.2"]).unwrap();
    assert!(
        get.contains(&format!("dev {} src 10.250.7.1", pod_veth(&uid))),
        "{get}"
    );
    // Unallocated pod, service and LoadBalancer addresses are unreachable.
    for addr in ["10.250.7.77", "10.250.99.3", "10.251.0.10", "10.252.0.1"] {
        let e = ip_out(&["route", "get", addr]).unwrap_err();
        assert!(e.contains("No route to host"), "{addr}: {e}");
    }

    // Host to pod, and pod to the host's gateway address (TCP: both stay on
    // this machine).
    let in_pod = listen_in(&a.netns, "0.0.0.0:0");
    let port = in_pod.local_addr().unwrap().port();
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(a.ip, port),
        std::time::Duration::from_secs(3),
    )
    .expect("the host reaches the pod");
    let on_host = std::net::TcpListener::bind("10.250.7.1:0").unwrap();
    connect_from(&a.netns, on_host.local_addr().unwrap()).expect("the pod reaches its gateway");
    // Nothing outside the cluster's ranges: the pod has no route off the
    // machine (asked of the routing table; no packet is sent).
    let e = ip_out(&["-n", &ns, "route", "get", "192.0.2.1"]).unwrap_err();
    assert!(e.contains("Network is unreachable"), "{e}");
    drop(in_pod);

    // Teardown removes the veth, its route, the namespace and the address.
    remove_pod(d.path(), &uid).unwrap();
    assert!(!a.netns.exists());
    assert!(ip_out(&["link", "show", &pod_veth(&uid)]).is_err());
    assert_eq!(
        ip_out(&["route", "show", "10.250.7.2/32"]).unwrap().trim(),
        ""
    );
    assert_eq!(recorded(d.path(), &uid), None);
    remove_host(&node).unwrap();
    assert!(ip_out(&["link", "show", &node_iface(&node)]).is_err());
    let metric = format!("metric {}", route_metric(&node));
    let left = ip_out(&["route", "show", "type", "unreachable"]).unwrap();
    assert!(!left.contains(&metric), "{left}");
}
