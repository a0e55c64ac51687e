//! Bad input must fail the one request, connection or command it came with,
//! with a message that says what was wrong, and leave the cluster serving.

use crate::harness::{serial, Cluster};
use crate::procs::{free_ports, run_ferry, Ran};
use ferry_api::frame::{encode, read_frame};
use ferry_api::kv::Expect;
use ferry_api::proto::{ApiError, ApiRequest, ApiResponse, Consistency, ErrorCode};
use ferry_api::tls::{self, Ca, CertPair, Identity};
use ferry_api::{ALPN_API, ALPN_RAFT, MASTER_SERVER_NAME};
use ferry_config::{ClientConfig, MasterConfig, TransportLimits};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

type Reply = Result<ApiResponse, ApiError>;

/// Connects to `addr` on `ferry-api/1` with `quic`.
async fn connect(quic: quinn::ClientConfig, addr: &str) -> Result<quinn::Connection, String> {
    let endpoint =
        tls::client_endpoint("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    let conn = endpoint
        .connect_with(quic, addr.parse().unwrap(), MASTER_SERVER_NAME)
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Sends `bytes` raw on a new stream, finishes it, and reads one reply frame.
async fn raw_request(conn: &quinn::Connection, bytes: &[u8]) -> Result<Option<Reply>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, 1 << 20))
        .await
        .map_err(|_| "no reply within 10s".to_string())?
        .map_err(|e| e.to_string())
}

/// How a master ends a connection from `quic`: in the handshake, or (TLS 1.3 lets a
/// client finish first) right after it. A master that is not listening fails the test.
async fn rejection(quic: quinn::ClientConfig, addr: &str) -> quinn::ConnectionError {
    let endpoint = tls::client_endpoint("127.0.0.1:0".parse().unwrap()).expect("endpoint");
    let connecting = endpoint
        .connect_with(quic, addr.parse().unwrap(), MASTER_SERVER_NAME)
        .expect("connect");
    let conn = match tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .expect("the master answers the handshake within 10s")
    {
        Err(e) => return e,
        Ok(conn) => conn,
    };
    // Give the master a request to refuse; it must never be answered.
    let r = raw_request(&conn, &status_frame()).await;
    assert!(r.is_err(), "served: {r:?}");
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the master closes the connection within 10s")
}

/// The data dir is mode 0700 and its identity and credential files 0600.
fn check_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for f in [
        "identity.toml",
        "ca.crt",
        "ca.key",
        "master.crt",
        "master.key",
        "join-secret",
        "join-token",
    ] {
        let p = dir.join(f);
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

fn status_frame() -> Vec<u8> {
    encode(&ApiRequest::Status).expect("encode")
}

fn admin_quic(cfg: &ClientConfig) -> quinn::ClientConfig {
    let pair = CertPair {
        cert_pem: cfg.client_cert.clone(),
        key_pem: cfg.client_key.clone(),
    };
    tls::client_config(&cfg.ca_cert, &pair, ALPN_API, &TransportLimits::default()).expect("quic")
}

/// A client that trusts the cluster CA but presents no certificate.
fn anonymous_quic(ca_pem: &str) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA");
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_API.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cfg).expect("quic crypto");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// Put then linearizable get through every master.
async fn assert_serving(c: &mut Cluster, key: &str) {
    for i in 0..c.masters.len() {
        c.check_alive(i).expect("master running");
        let client = c.client_for(i, Duration::from_secs(20));
        let value = format!("{key} via {}", c.masters[i].name).into_bytes();
        client
            .put(key, value.clone(), Expect::Any)
            .await
            .expect("put after bad input")
            .expect("put after bad input");
        let kv = client
            .get(key, Consistency::Linearizable)
            .await
            .expect("get after bad input")
            .expect("key present");
        assert_eq!(kv.value, value);
    }
}

fn expect_bad_request(what: &str, got: Result<Option<Reply>, String>, needle: &str) {
    match got {
        Ok(Some(Err(e))) if e.code == ErrorCode::BadRequest && e.message.contains(needle) => {}
        other => {
            panic!("{what}: expected a BadRequest error frame mentioning `{needle}`, got {other:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_certificates_are_rejected_and_the_cluster_keeps_serving() {
    let _serial = serial().await;
    let mut c = Cluster::start(3).await;
    let admin = c.client_config(&c.addrs(), Duration::from_secs(10));

    // Every master's data dir (the first, and two that joined) is private: the
    // directory 0700, its identity, keys, certificates, secret and token 0600.
    for m in &c.masters {
        check_private(&m.data);
    }

    for i in 0..3 {
        let addr = c.masters[i].addr.clone();
        let conn = connect(admin_quic(&admin), &addr)
            .await
            .expect("admin connects");
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 5]);
        expect_bad_request(
            "malformed frame",
            raw_request(&conn, &garbage).await,
            "malformed",
        );
        expect_bad_request(
            "oversized frame",
            raw_request(&conn, &[0xff; 4]).await,
            "exceeds the limit",
        );
        let mut short = 100u32.to_be_bytes().to_vec();
        short.extend_from_slice(b"0123456789");
        expect_bad_request("truncated frame", raw_request(&conn, &short).await, "ended");
        let mut trailing = status_frame();
        trailing.push(0);
        let n = (trailing.len() - 4) as u32;
        trailing[..4].copy_from_slice(&n.to_be_bytes());
        expect_bad_request(
            "trailing bytes",
            raw_request(&conn, &trailing).await,
            "trailing",
        );
        // The connection survives its bad streams.
        match raw_request(&conn, &status_frame()).await {
            Ok(Some(Ok(ApiResponse::Status(_)))) => {}
            other => panic!("status on the same connection after bad frames: {other:?}"),
        }
        // An oversized length followed by data, on a stream left open.
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        send.write_all(&[0xff; 4]).await.expect("write");
        let _ = send.write_all(&[0u8; 64 * 1024]).await;
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame::<_, Reply>(&mut recv, 1 << 20),
        )
        .await
        .expect("reply to an oversized frame on an open stream")
        .map_err(|e| e.to_string());
        expect_bad_request("oversized open stream", got, "exceeds the limit");
    }

    // A certificate from another CA: the server's TLS stack refuses it with the
    // unknown_ca alert (a QUIC CRYPTO_ERROR carrying alert 48), not with a timeout
    // or an application close.
    let foreign = Ca::generate("elsewhere")
        .expect("CA")
        .issue(&Identity::Admin, &[])
        .expect("cert");
    let quic = tls::client_config(
        &admin.ca_cert,
        &foreign,
        ALPN_API,
        &TransportLimits::default(),
    )
    .expect("quic");
    let e = rejection(quic, &c.masters[0].addr).await;
    match &e {
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::crypto(48) => {}
        other => panic!("a foreign certificate must draw the unknown_ca TLS alert: {other:?}"),
    }
    eprintln!("foreign certificate rejected: {e}");

    // No certificate at all: TLS lets it through (the API has the join ALPN), and
    // the master closes the connection with code 3 and says why.
    let e = rejection(anonymous_quic(&admin.ca_cert), &c.masters[0].addr).await;
    match &e {
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(3)
                && &close.reason[..] == b"a client certificate is required" => {}
        other => panic!("a client without a certificate: expected close code 3: {other:?}"),
    }

    // `ferry-raft/1` is for masters: an admin or node certificate, valid for the
    // API, is closed with code 1; a master's certificate is served (a bad frame
    // fails its stream, the connection stays).
    let read = |i: usize, f: &str| {
        std::fs::read_to_string(c.masters[i].data.join(f)).expect("data dir file")
    };
    let node = Ca::load(&read(0, "ca.crt"), &read(0, "ca.key"))
        .expect("CA")
        .issue(&Identity::Node("n1".into()), &[])
        .expect("node cert");
    let admin_pair = CertPair {
        cert_pem: admin.client_cert.clone(),
        key_pem: admin.client_key.clone(),
    };
    for (who, pair) in [("admin", &admin_pair), ("node", &node)] {
        let quic = tls::client_config(&admin.ca_cert, pair, ALPN_RAFT, &TransportLimits::default())
            .expect("quic");
        let e = rejection(quic, &c.masters[0].addr).await;
        match &e {
            quinn::ConnectionError::ApplicationClosed(close)
                if close.error_code == quinn::VarInt::from_u32(1)
                    && &close.reason[..] == b"ferry-raft/1 is for masters only" => {}
            other => panic!("{who} certificate on ferry-raft/1: expected close code 1: {other:?}"),
        }
    }
    let master_pair = CertPair {
        cert_pem: read(1, "master.crt"),
        key_pem: read(1, "master.key"),
    };
    let quic = tls::client_config(
        &admin.ca_cert,
        &master_pair,
        ALPN_RAFT,
        &TransportLimits::default(),
    )
    .expect("quic");
    let conn = connect(quic, &c.masters[0].addr)
        .await
        .expect("a master connects on ferry-raft/1");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&[0, 0, 0, 2, 0xff, 0xff])
        .await
        .expect("write");
    let _ = send.finish();
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), recv.read(&mut buf)).await {
        Ok(Err(quinn::ReadError::Reset(code))) => assert_eq!(code, quinn::VarInt::from_u32(2)),
        other => panic!("a bad frame from a master resets its stream with code 2: {other:?}"),
    }
    assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());

    // The join ALPN takes no certificate: bad frames there fail their stream too.
    let pin = c
        .token()
        .trim_start_matches("ferry1-")
        .split('.')
        .next()
        .expect("pin")
        .to_string();
    for i in 0..3 {
        let (quic, _) =
            tls::join_client_config(&pin, &TransportLimits::default()).expect("join quic");
        let conn = connect(quic, &c.masters[i].addr)
            .await
            .expect("join ALPN connects");
        let mut garbage = 3u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xfe; 3]);
        expect_bad_request(
            "malformed join frame",
            raw_request(&conn, &garbage).await,
            "bad join frame",
        );
        expect_bad_request(
            "oversized join frame",
            raw_request(&conn, &[0xff; 4]).await,
            "exceeds the limit",
        );
        match raw_request(&conn, &status_frame()).await {
            Ok(Some(Err(e))) if e.code == ErrorCode::Unauthenticated => {}
            other => panic!("status on the join ALPN must be refused: {other:?}"),
        }
    }

    assert_serving(&mut c, "/t4/after-bad-frames").await;
    join_with_bad_tokens(&mut c).await;
    assert_serving(&mut c, "/t4/after-bad-joins").await;
}

async fn join_with_bad_tokens(c: &mut Cluster) {
    let token = c.token().to_string();
    let (pin, secret) = token
        .strip_prefix("ferry1-")
        .and_then(|t| t.split_once('.'))
        .expect("token shape");
    let wrong_secret: String = secret
        .chars()
        .map(|ch| if ch == '0' { '1' } else { '0' })
        .collect();
    let wrong_pin: String = pin
        .chars()
        .map(|ch| if ch == 'a' { 'b' } else { 'a' })
        .collect();
    let port = free_ports(1);
    let cases = [
        (
            "wrong secret",
            format!("ferry1-{pin}.{wrong_secret}"),
            "join token secret is wrong",
        ),
        (
            "wrong CA hash",
            format!("ferry1-{wrong_pin}.{secret}"),
            "CA does not match the join token's CA hash",
        ),
        (
            "garbled token",
            format!("{pin}.{secret}"),
            "must start with `ferry1-`",
        ),
    ];
    for (what, bad, needle) in cases {
        let home = c.dir.path().to_path_buf();
        let data = home.join(format!("joiner-{}", what.replace(' ', "-")));
        let listen = format!("127.0.0.1:{port}");
        let args: Vec<String> = [
            "master",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
            "--join",
            &c.masters[0].addr,
            "--token",
            &bad,
        ]
        .map(String::from)
        .to_vec();
        let ran = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ferry(&home, &args, Duration::from_secs(60))
        })
        .await
        .expect("join task");
        let (status, stderr) = (ran.status, ran.stderr);
        assert!(!status.success(), "join with a {what} succeeded");
        assert!(
            stderr.contains(needle),
            "join with a {what}: message should mention `{needle}`: {stderr}"
        );
        assert!(
            !data.join("identity.toml").exists(),
            "join with a {what} left a set-up data dir"
        );
        eprintln!("join with a {what}: {}", stderr.trim());
    }
}

/// A complete, valid client config pointing nowhere in particular.
fn valid_client_config() -> String {
    let ca = Ca::generate("t").expect("CA");
    let admin = ca.issue(&Identity::Admin, &[]).expect("cert");
    ClientConfig {
        masters: vec!["127.0.0.1:48999".into()],
        ca_cert: ca.pair().cert_pem.clone(),
        client_cert: admin.cert_pem,
        client_key: admin.key_pem,
        timeout_ms: 1000,
        api_server: None,
    }
    .to_toml()
}

#[test]
fn corrupt_or_truncated_config_files_fail_with_the_file_and_field_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path();
    let valid = valid_client_config();
    let pem_at = valid.find("-----BEGIN CERTIFICATE-----").expect("pem");
    let key_at = valid.find("client_key").expect("client_key");
    let client_cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "corrupt",
            "masters = [\"127.0.0.1:1\"\nthis is not toml ===\n".into(),
            None,
        ),
        ("binary", "\u{0}\u{1}\u{2}garbage\u{ff}".into(), None),
        ("truncated-in-pem", valid[..pem_at + 40].to_string(), None),
        (
            "truncated-field",
            valid[..key_at].to_string(),
            Some("client_key"),
        ),
        (
            "bad-master",
            valid.replace("127.0.0.1:48999", "nohost"),
            Some("masters[0]"),
        ),
        (
            "bad-pem",
            valid.replacen("-----BEGIN CERTIFICATE-----", "-----BEGIN GARBAGE-----", 1),
            Some("ca_cert"),
        ),
        (
            "unknown-field",
            format!("{valid}colour = \"blue\"\n"),
            Some("colour"),
        ),
        ("empty", String::new(), Some("masters")),
        (
            "too-large",
            format!("{valid}{}", "# padding\n".repeat(110_000)),
            Some("is larger than the limit of 1048576 bytes"),
        ),
    ];
    for (name, text, field) in &client_cases {
        let path = home.join(format!("client-{name}.conf"));
        std::fs::write(&path, text).expect("write config");
        let p = path.to_str().unwrap();
        for args in [
            vec!["--config", p, "kv", "get", "k"],
            vec!["--config", p, "cluster", "status"],
        ] {
            let ran = run_ferry(home, &args, Duration::from_secs(30));
            check_config_error(&format!("client config {name}"), &ran, p, *field);
        }
    }

    let master_valid = toml::to_string(&MasterConfig::default()).expect("toml");
    let cut = master_valid.find("ferry-data").expect("data_dir") + 4;
    let master_cases: Vec<(&str, String, Option<&str>)> = vec![
        ("corrupt", "[raft\nheartbeat_ms = 5\n".into(), None),
        (
            "wrong-type",
            "[raft]\nheartbeat_ms = \"fast\"\n".into(),
            Some("heartbeat_ms"),
        ),
        (
            "unknown-field",
            "[raft]\nheartbeat = 5\n".into(),
            Some("heartbeat"),
        ),
        ("truncated", master_valid[..cut].to_string(), None),
        (
            "invalid-value",
            "[raft]\nelection_min_ms = 900\nelection_max_ms = 800\n".into(),
            Some("raft.election_max_ms"),
        ),
        (
            "bad-listen",
            "listen = \"localhost\"\n".into(),
            Some("listen"),
        ),
    ];
    let port = free_ports(1);
    let listen = format!("127.0.0.1:{port}");
    for (name, text, field) in &master_cases {
        let path = home.join(format!("master-{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        let p = path.to_str().unwrap();
        let data = home.join(format!("data-{name}"));
        let args = [
            "--config",
            p,
            "master",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
            "--init",
        ];
        let ran = run_ferry(home, &args, Duration::from_secs(30));
        check_config_error(&format!("master config {name}"), &ran, p, *field);
        assert!(
            !data.join("identity.toml").exists(),
            "master config {name}: master set up anyway"
        );
    }

    // A node config, as `ferry up --node-config` reads it: refused before
    // anything starts.
    let node_cases = [
        (
            "bad-threshold",
            "[eviction]\nmemory_available = \"lots\"\n",
            "memory_available",
        ),
        (
            "soft-without-grace",
            "[eviction.soft]\nmemory_available = \"1Gi\"\n",
            "eviction.soft_grace_period_secs.memory_available",
        ),
        (
            "shutdown-budgets",
            "[shutdown]\ngrace_period_secs = 5\ncritical_pods_grace_period_secs = 9\n",
            "shutdown.critical_pods_grace_period_secs",
        ),
        (
            "shutdown-both-forms",
            "[shutdown]\ngrace_period_secs = 30\n[[shutdown.grace_period_by_pod_priority]]\n\
             priority = 0\ngrace_period_secs = 20\n",
            "shutdown.grace_period_by_pod_priority",
        ),
        (
            "negative-reclaim",
            "[eviction.minimum_reclaim]\nmemory_available = \"-1Gi\"\n",
            "memory_available",
        ),
        ("unknown-table", "[evict]\n", "evict"),
    ];
    for (name, text, field) in node_cases {
        let path = home.join(format!("node-{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        let p = path.to_str().unwrap();
        let up_dir = home.join(format!("up-{name}"));
        let args = [
            "up",
            "--dir",
            up_dir.to_str().unwrap(),
            "--nodes",
            "1",
            "--node-config",
            p,
        ];
        let ran = run_ferry(home, &args, Duration::from_secs(30));
        check_config_error(&format!("node config {name}"), &ran, p, Some(field));
        assert!(
            ran.stderr.contains("--node-config"),
            "node config {name}: {}",
            ran.stderr
        );
        assert!(
            !up_dir.exists(),
            "node config {name}: ferry up started anyway"
        );
    }
}

fn check_config_error(what: &str, ran: &Ran, path: &str, field: Option<&str>) {
    let (status, stderr) = (ran.status, &ran.stderr);
    assert!(!status.success(), "{what}: ferry exited 0");
    assert!(
        stderr.contains(path),
        "{what}: message does not name the file {path}: {stderr}"
    );
    if let Some(f) = field {
        assert!(
            stderr.contains(f),
            "{what}: message does not name the field `{f}`: {stderr}"
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "{what}: ferry panicked: {stderr}"
    );
}
