//! Certificates of a live cluster: each master renews its own two thirds
//! into its validity, with no restart and no dropped connection; the cluster
//! CA rotates in steps (`ferry ca rotate`) with nodes running pods.

use crate::harness::{serial, wait_until, Cluster, LocalUp};
use crate::kubectl::Kubectl;
use crate::nodes::{container_pids, node_ready};
use crate::procs::{ferry, ok, run_ferry};
use ferry_api::frame::{read_frame, write_frame};
use ferry_api::proto::{ApiError, ApiRequest, ApiResponse};
use ferry_api::tls::{self, CertPair, Identity};
use ferry_config::TransportLimits;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One request on an open connection.
async fn call_on(conn: &quinn::Connection, req: &ApiRequest) -> Result<ApiResponse, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, req)
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    match read_frame::<_, Result<ApiResponse, ApiError>>(&mut recv, 1 << 20).await {
        Ok(Some(Ok(r))) => Ok(r),
        other => Err(format!("{other:?}")),
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

/// The certificate a master's HTTPS listener presents to a new connection.
fn https_presented(
    addr: &str,
    ca: &str,
    admin: &CertPair,
) -> Result<CertificateDer<'static>, String> {
    let cfg = tls::https_client_config(ca, admin, &[b"http/1.1"]).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name.to_owned())
        .map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    conn.peer_certificates()
        .and_then(|c| c.first().cloned())
        .map(|c| c.into_owned())
        .ok_or_else(|| "no certificate presented".to_string())
}

/// Masters whose certificates live 20 s (`FERRY_MASTER_CERT_SECONDS`) renew
/// them before they expire: `master.crt` is replaced for the same key and
/// identity, the QUIC and HTTPS listeners present the new one to new
/// connections without a restart, a connection opened before the renewal
/// still serves after the old certificate expired, and writes keep
/// committing (Raft between the masters on renewed certificates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_renew_their_certificates_without_a_restart_or_a_dropped_connection() {
    let _serial = serial().await;
    let c = Cluster::start_with_env(
        3,
        vec![(ferry_actors::master::MASTER_CERT_SECONDS_ENV, "20")],
    )
    .await;
    let pids: Vec<_> = (0..3).map(|i| c.pid(i)).collect();
    let read = |i: usize, f: &str| {
        std::fs::read_to_string(c.masters[i].data.join(f)).expect("master credential file")
    };
    let first: Vec<String> = (0..3).map(|i| read(i, "master.crt")).collect();
    let keys: Vec<String> = (0..3).map(|i| read(i, "master.key")).collect();
    for (i, cert) in first.iter().enumerate() {
        let (from, to) = tls::validity(cert).expect("validity");
        let life = to.duration_since(from).expect("ordered");
        assert!(
            life <= Duration::from_secs(26),
            "m{}'s certificate lives {life:?}, not 20 s (+5 s early start)",
            i + 1
        );
    }
    // A connection opened now, kept open throughout.
    let admin = c.client_config(&[c.masters[0].addr.clone()], Duration::from_secs(10));
    let pair = CertPair {
        cert_pem: admin.client_cert.clone(),
        key_pem: admin.client_key.clone(),
    };
    let quic = tls::client_config(
        &admin.ca_cert,
        &pair,
        ferry_api::ALPN_API,
        &TransportLimits::default(),
    )
    .expect("client config");
    let endpoint = tls::client_endpoint("127.0.0.1:0".parse().unwrap()).expect("endpoint");
    let target = c.masters[0].addr.parse().unwrap();
    let conn = endpoint
        .connect_with(quic, target, ferry_api::MASTER_SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let before = call_on(&conn, &ApiRequest::Status).await;
    assert!(matches!(before, Ok(ApiResponse::Status(_))), "{before:?}");

    // Every master renews its certificate: same key, same identity, later.
    let renewed: Vec<String> = wait_until(
        "every master to renew its certificate",
        Duration::from_secs(60),
        || {
            let now: Vec<String> = (0..3).map(|i| read(i, "master.crt")).collect();
            let first = first.clone();
            async move {
                match now.iter().zip(&first).position(|(n, f)| n == f) {
                    Some(i) => Err(format!("m{} not renewed yet", i + 1)),
                    None => Ok(now),
                }
            }
        },
    )
    .await;
    for i in 0..3 {
        assert_eq!(read(i, "master.key"), keys[i], "m{}'s key changed", i + 1);
        assert_eq!(
            tls::cert_identity(&renewed[i]).expect("identity"),
            Identity::Master(c.masters[i].id)
        );
        let (old_from, _) = tls::validity(&first[i]).unwrap();
        let (new_from, _) = tls::validity(&renewed[i]).unwrap();
        assert!(new_from > old_from, "m{}: not a later certificate", i + 1);
        // The master logs the renewal just after it replaced the file.
        let log = c.masters[i].log.clone();
        wait_until(
            &format!("m{} to log its renewal", i + 1),
            Duration::from_secs(10),
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                async move {
                    match text.contains("master certificate renewed") {
                        true => Ok(()),
                        false => Err(text),
                    }
                }
            },
        )
        .await;
    }
    // Past the first certificates' expiry, nothing of them is needed.
    let expiry = first
        .iter()
        .map(|p| tls::validity(p).unwrap().1)
        .max()
        .unwrap();
    if let Ok(left) = expiry.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
    // The connection opened before still serves.
    let after = call_on(&conn, &ApiRequest::Status).await;
    assert!(
        matches!(after, Ok(ApiResponse::Status(_))) && conn.close_reason().is_none(),
        "the open connection: {after:?} {:?}",
        conn.close_reason()
    );
    // New connections get each master's current certificate, on QUIC and HTTPS.
    for i in 0..3 {
        let current = read(i, "master.crt");
        let client = c.client_for(i, Duration::from_secs(5));
        client.status().await.expect("status on a new connection");
        let quic = tls::client_config(
            &admin.ca_cert,
            &pair,
            ferry_api::ALPN_API,
            &TransportLimits::default(),
        )
        .unwrap();
        let fresh = endpoint
            .connect_with(
                quic,
                c.masters[i].addr.parse().unwrap(),
                ferry_api::MASTER_SERVER_NAME,
            )
            .expect("connect")
            .await
            .expect("handshake with a renewed certificate");
        let chain = fresh
            .peer_identity()
            .and_then(|a| a.downcast::<Vec<CertificateDer<'static>>>().ok())
            .expect("the master's chain");
        assert_eq!(chain[0], der(&current), "m{}'s QUIC certificate", i + 1);
        let addr = c.masters[i].addr.clone();
        let (ca, p) = (admin.ca_cert.clone(), pair.clone());
        let https = tokio::task::spawn_blocking(move || https_presented(&addr, &ca, &p))
            .await
            .unwrap()
            .expect("HTTPS handshake");
        assert_eq!(https, der(&current), "m{}'s HTTPS certificate", i + 1);
    }
    // Writes commit; no master restarted.
    c.put("/after-renewal", b"x").await;
    for (i, pid) in pids.iter().enumerate() {
        c.check_alive(i).expect("alive");
        assert_eq!(c.pid(i), *pid, "m{} restarted", i + 1);
    }
}

const STEADY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["/bin/sh", "-c", "while true; do sleep 0.2; done", "marker-ca-steady"]
"#;

fn after_drop(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: busybox, command: [/bin/sh, -c, 'while true; do sleep 0.2; done']}}\n"
    )
}

/// Waits until `ferry ca status` names every master and node (5) with a
/// report and nothing holding the next step back.
async fn wait_members_caught_up(home: &Path, conf: &str, what: &str) -> String {
    wait_until(what, Duration::from_secs(90), || {
        let r = ferry(home, conf, &["ca", "status"]);
        async move {
            let reported = r
                .stdout
                .lines()
                .filter(|l| l.contains("certificate from"))
                .count();
            if r.status.success() && reported == 5 && !r.stdout.contains("next step waits") {
                Ok(r.stdout)
            } else {
                Err(format!("{}{}", r.stdout, r.stderr))
            }
        }
    })
    .await
}

/// Every step the cluster answers `ferry get` with the admin config and
/// kubectl with the kubeconfig `ferry up` wrote (both rewritten by the
/// step), n1 stays Ready and its pod keeps its one process.
fn still_serving(home: &Path, conf: &str, pids: &[i32], step: &str) {
    let nodes = ferry(home, conf, &["get", "nodes"]);
    assert!(nodes.status.success(), "get after {step}: {}", nodes.stderr);
    let dir = Path::new(conf).parent().expect("admin.conf's directory");
    let k = Kubectl::of_up(home, dir);
    let out = k.run(&["get", "nodes", "-o", "name"], None);
    assert!(
        out.ok && out.stdout.contains("node/n1"),
        "kubectl --kubeconfig {} get nodes after {step}: {}{}",
        k.kubeconfig,
        out.stdout,
        out.stderr
    );
    let (ready, _) = node_ready(home, conf, "n1");
    assert_eq!(ready, "True", "n1 after {step}");
    assert_eq!(
        container_pids("marker-ca-steady"),
        pids,
        "the pod's process after {step}"
    );
}

/// `ferry ca rotate` through its steps on `ferry up` (3 masters, 2 nodes),
/// n1 running a pod: refusals name the step order; `trust` makes every
/// master and node trust both CAs; `reissue` gets every one a new-CA
/// certificate (masters at once, nodes through their renewal); `drop` is
/// refused while a node (n2, paused) still presents an old-CA certificate,
/// naming it, then taken. After each step `ferry get` works with the
/// rewritten admin config, n1 stays Ready and its pod keeps its process; after
/// the drop a client of the old CA alone is refused, and a new pod on n1 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_ca_rotates_in_steps_while_a_node_runs_a_pod() {
    let mut c = LocalUp::start().await;
    let (home, dir, up) = (c.home.clone(), c.dir.clone(), &mut c.up);
    let home = home.as_path();
    let conf_path = dir.join("admin.conf");
    let conf = conf_path.to_str().unwrap();
    let old_conf = home.join("old-admin.conf");
    std::fs::copy(&conf_path, &old_conf).expect("copy admin.conf");
    let old_conf = old_conf.to_str().unwrap();
    let old_kubeconfig = home.join("old-kubeconfig");
    std::fs::copy(dir.join("kubeconfig"), &old_kubeconfig).expect("copy kubeconfig");
    let manifest = home.join("steady.yaml");
    std::fs::write(&manifest, STEADY).unwrap();
    ok(home, conf, &["apply", "-f", manifest.to_str().unwrap()]);
    let pids = wait_until("the steady pod's process", Duration::from_secs(60), || {
        let p = container_pids("marker-ca-steady");
        async move {
            if p.len() == 1 {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        }
    })
    .await;

    // Out of order: refused, naming the next step.
    for (step, says) in [
        (
            "reissue",
            "no rotation is under way; the next step is trust",
        ),
        ("drop", "no rotation is under way; the next step is trust"),
    ] {
        let r = ferry(home, conf, &["ca", "rotate", "--step", step]);
        assert!(
            !r.status.success() && r.stderr.contains(says),
            "{step}: {}",
            r.stderr
        );
    }
    let r = ferry(home, conf, &["ca", "rotate", "--step", "sideways"]);
    assert!(
        !r.status.success() && r.stderr.contains("sideways"),
        "{}",
        r.stderr
    );

    // 1. trust.
    let out = ok(home, conf, &["ca", "rotate", "--step", "trust"]);
    assert!(out.contains("step trust taken"), "{out}");
    let kubeconfig = dir.join("kubeconfig");
    let rewrote = format!(
        "rewrote {} (the same admin credentials)",
        kubeconfig.display()
    );
    let trust_out = out;
    let r = ferry(home, conf, &["ca", "rotate", "--step", "drop"]);
    assert!(
        !r.status.success() && r.stderr.contains("at step trust; the next step is reissue"),
        "{}",
        r.stderr
    );
    let status = wait_members_caught_up(home, conf, "every member to trust the new CA").await;
    assert!(status.contains("step: trust"), "{status}");
    let admin = ferry_config::ClientConfig::load(&conf_path).expect("admin.conf");
    assert_eq!(
        tls::bundle_hashes(&admin.ca_cert).len(),
        2,
        "the admin config trusts both"
    );
    still_serving(home, conf, &pids, "trust");
    assert!(trust_out.contains(&rewrote), "{trust_out}");

    // 2. reissue, n2's agent paused: it keeps its old-CA certificate.
    let n2 = up.master_pids("n2");
    assert_eq!(n2.len(), 1, "{n2:?}");
    kill(Pid::from_raw(n2[0]), Signal::SIGSTOP).expect("pause n2");
    let out = ferry(home, conf, &["ca", "rotate", "--step", "reissue"]);
    if !out.status.success() {
        kill(Pid::from_raw(n2[0]), Signal::SIGCONT).expect("resume n2");
        panic!("reissue: {}{}", out.stdout, out.stderr);
    }
    assert!(out.stdout.contains("step reissue taken"), "{}", out.stdout);
    let reissue_out = out.stdout;
    let admin = ferry_config::ClientConfig::load(&conf_path).expect("admin.conf");
    let new_ca = tls::bundle_pems(&admin.ca_cert)[0].clone();
    wait_until(
        "every master and n1 on the new CA",
        Duration::from_secs(90),
        || {
            let r = ferry(home, conf, &["ca", "status"]);
            async move {
                let waits: Vec<&str> = r
                    .stdout
                    .lines()
                    .filter(|l| l.starts_with("next step waits"))
                    .collect();
                if waits.len() == 1
                    && waits[0].contains("node-n2 still presents a certificate of the old CA")
                {
                    Ok(())
                } else {
                    Err(format!("{}{}", r.stdout, r.stderr))
                }
            }
        },
    )
    .await;
    let r = ferry(home, conf, &["ca", "rotate", "--step", "drop"]);
    kill(Pid::from_raw(n2[0]), Signal::SIGCONT).expect("resume n2");
    assert!(
        !r.status.success()
            && r.stderr
                .contains("node-n2 still presents a certificate of the old CA"),
        "drop with n2 on the old CA: {}",
        r.stderr
    );
    for i in 1..=3 {
        let cert = std::fs::read_to_string(dir.join(format!("m{i}")).join("master.crt")).unwrap();
        assert!(
            tls::issuer_hash(&cert, &[new_ca.as_str()]).is_some(),
            "m{i} not on the new CA"
        );
    }
    let n1 =
        ferry_config::ClientConfig::load(&dir.join("n1").join("node.conf")).expect("node.conf");
    assert!(
        tls::issuer_hash(&n1.client_cert, &[new_ca.as_str()]).is_some(),
        "n1 not on the new CA"
    );
    still_serving(home, conf, &pids, "reissue");
    assert!(reissue_out.contains(&rewrote), "{reissue_out}");
    wait_members_caught_up(home, conf, "n2 on the new CA too").await;

    // 3. drop.
    let out = ok(home, conf, &["ca", "rotate", "--step", "drop"]);
    assert!(out.contains("step drop taken"), "{out}");
    let drop_out = out;
    let admin = ferry_config::ClientConfig::load(&conf_path).expect("admin.conf");
    assert_eq!(
        tls::bundle_hashes(&admin.ca_cert).len(),
        1,
        "the admin config trusts the new CA alone"
    );
    still_serving(home, conf, &pids, "drop");
    assert!(drop_out.contains(&rewrote), "{drop_out}");
    // A client of the old CA alone is refused.
    let r = run_ferry(
        home,
        &["--config", old_conf, "get", "nodes"],
        Duration::from_secs(30),
    );
    assert!(
        !r.status.success(),
        "the old admin config still works: {}",
        r.stdout
    );
    // So is kubectl with the kubeconfig written before the rotation.
    let old_k = Kubectl {
        home: home.to_path_buf(),
        kubeconfig: old_kubeconfig.to_str().unwrap().to_string(),
    };
    old_k.fails(&["get", "nodes"]);
    // ~/.ferry/config, the copy `ferry up` made, holds what admin.conf holds.
    let home_cfg = home.join(".ferry").join("config");
    if home_cfg.exists() {
        let copy = ferry_config::ClientConfig::load(&home_cfg).expect("~/.ferry/config");
        assert_eq!(
            (copy.ca_cert, copy.client_cert),
            (admin.ca_cert.clone(), admin.client_cert.clone()),
            "~/.ferry/config rewritten too"
        );
    }
    // The nodes follow: new connections (a new pod on n1) work; Ready after a while.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let m = home.join("after-drop.yaml");
    std::fs::write(&m, after_drop("after-drop")).unwrap();
    ok(home, conf, &["apply", "-f", m.to_str().unwrap()]);
    wait_until(
        "a new pod on n1 after the drop",
        Duration::from_secs(60),
        || {
            let r = ferry(home, conf, &["get", "pod", "after-drop", "-o", "json"]);
            async move {
                let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
                match v["status"]["phase"].as_str() {
                    Some("Running") => Ok(()),
                    other => Err(format!("{other:?} {}", r.stderr)),
                }
            }
        },
    )
    .await;
    still_serving(home, conf, &pids, "drop, later");
    for n in ["n1", "n2"] {
        let (ready, _) = node_ready(home, conf, n);
        assert_eq!(ready, "True", "{n} after the drop");
    }
    up.stop_gracefully().await;
}
