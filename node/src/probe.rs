//! Liveness, readiness and startup probes (exec, httpGet, tcpSocket), with
//! Kubernetes' defaults and semantics: a result turns Success after
//! `successThreshold` consecutive successes and Failure after
//! `failureThreshold` consecutive failures; the startup probe gates the
//! others; readiness drives `ready`; a liveness or startup failure restarts
//! the container.
//!
//! [`State::observe`] is the pure state machine; [`Action::run`] performs one
//! probe with its timeout.

use serde_json::Value;
use std::time::{Duration, Instant};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Restarts the container when it fails.
    Liveness,
    /// Drives the container's `ready`.
    Readiness,
    /// Gates the other two; restarts the container when it fails.
    Startup,
}

impl Kind {
    /// As Kubernetes names it in messages.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run a command; exit 0 is success.
    Exec(Vec<String>),
    /// GET `path` on `host:port`; a status from 200 to 399 is success.
    Http {
        /// Host (the pod IP by default).
        host: String,
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Open a TCP connection.
    Tcp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
}

/// A probe's spec with Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// What it does.
    pub action: Action,
    /// Before the first run.
    pub initial_delay: Duration,
    /// Between runs.
    pub period: Duration,
    /// Per run.
    pub timeout: Duration,
    /// Consecutive successes to turn Success.
    pub success_threshold: u32,
    /// Consecutive failures to turn Failure.
    pub failure_threshold: u32,
}

fn port_of(p: &Value, container: &Value) -> Result<u16, String> {
    match p {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("port {n} is out of range")),
        Value::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|cp| cp["name"] == name.as_str())
                .and_then(|cp| cp["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("no container port named {name:?}"))
        }
        _ => Err("no port".into()),
    }
}

impl Spec {
    /// Reads `container[field]` (`livenessProbe`, ...); `pod_ip` is the default host.
    pub fn parse(container: &Value, field: &str, pod_ip: &str) -> Result<Option<Spec>, String> {
        let Some(p) = container.get(field).filter(|p| !p.is_null()) else {
            return Ok(None);
        };
        let secs = |k: &str, default: u64, min: u64| {
            Duration::from_secs(p[k].as_u64().unwrap_or(default).max(min))
        };
        let action = if let Some(cmd) = p.pointer("/exec/command").and_then(Value::as_array) {
            Action::Exec(
                cmd.iter()
                    .map(|a| a.as_str().unwrap_or_default().to_string())
                    .collect(),
            )
        } else if let Some(h) = p.get("httpGet") {
            if h["scheme"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err(format!("{field}: httpGet over HTTPS is not supported yet"));
            }
            Action::Http {
                host: h["host"].as_str().unwrap_or(pod_ip).to_string(),
                port: port_of(&h["port"], container).map_err(|e| format!("{field}: {e}"))?,
                path: h["path"].as_str().unwrap_or("/").to_string(),
                headers: h["httpHeaders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|kv| {
                        (
                            kv["name"].as_str().unwrap_or_default().to_string(),
                            kv["value"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            }
        } else if let Some(t) = p.get("tcpSocket") {
            Action::Tcp {
                host: t["host"].as_str().unwrap_or(pod_ip).to_string(),
                port: port_of(&t["port"], container).map_err(|e| format!("{field}: {e}"))?,
            }
        } else {
            return Err(format!("{field}: needs exec, httpGet or tcpSocket"));
        };
        Ok(Some(Spec {
            action,
            initial_delay: secs("initialDelaySeconds", 0, 0),
            period: secs("periodSeconds", 10, 1),
            timeout: secs("timeoutSeconds", 1, 1),
            success_threshold: p["successThreshold"].as_u64().unwrap_or(1).max(1) as u32,
            failure_threshold: p["failureThreshold"].as_u64().unwrap_or(3).max(1) as u32,
        }))
    }
}

/// A probe's result so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result3 {
    /// Not decided yet.
    Unknown,
    /// Passing.
    Success,
    /// Failing.
    Failure,
}

/// One probe of one container run.
#[derive(Debug)]
pub struct State {
    /// Which probe.
    pub kind: Kind,
    /// Its spec.
    pub spec: Spec,
    /// The current result.
    pub result: Result3,
    successes: u32,
    failures: u32,
    /// The next run is due then.
    pub next: Instant,
    /// The last failure's message.
    pub message: String,
    /// What an exec probe's command is run through to enter the container's
    /// namespaces (`ferry nsenter ... --`); empty runs it on the node.
    pub exec_prefix: Vec<String>,
    running: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl State {
    /// A probe for a run that started at `started`.
    pub fn new(kind: Kind, spec: Spec, started: Instant) -> State {
        State {
            kind,
            next: started + spec.initial_delay,
            spec,
            result: Result3::Unknown,
            successes: 0,
            failures: 0,
            message: String::new(),
            exec_prefix: Vec::new(),
            running: None,
        }
    }

    /// Takes one run's outcome; returns the result if it changed.
    pub fn observe(&mut self, outcome: Result<(), String>) -> Option<Result3> {
        let before = self.result;
        match outcome {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.spec.success_threshold {
                    self.result = Result3::Success;
                }
            }
            Err(m) => {
                self.successes = 0;
                self.failures += 1;
                self.message = m;
                if self.failures >= self.spec.failure_threshold {
                    self.result = Result3::Failure;
                }
            }
        }
        (self.result != before).then_some(self.result)
    }

    /// Starts a run if one is due (and none is under way), and takes the
    /// outcome of a finished one. Returns the result if it changed.
    pub fn poll(
        &mut self,
        now: Instant,
        env: &[(String, String)],
        workdir: &std::path::Path,
    ) -> Option<Result3> {
        if let Some(h) = &self.running {
            if !h.is_finished() {
                return None;
            }
            let h = self.running.take().expect("checked");
            let outcome = futures_now(h).unwrap_or_else(|| Err("probe task failed".into()));
            return self.observe(outcome);
        }
        if now >= self.next {
            self.next = now + self.spec.period;
            let action = self.spec.action.clone();
            let timeout = self.spec.timeout;
            let env = env.to_vec();
            let workdir = workdir.to_path_buf();
            let prefix = self.exec_prefix.clone();
            self.running = Some(tokio::spawn(async move {
                match tokio::time::timeout(timeout, action.run_in(&prefix, &env, &workdir)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                }
            }));
        }
        None
    }
}

/// The output of a finished task.
fn futures_now<T>(h: tokio::task::JoinHandle<T>) -> Option<T> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut h = h;
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::Pin::new(&mut h).poll(&mut cx) {
        Poll::Ready(Ok(v)) => Some(v),
        _ => None,
    }
}

impl Action {
    /// Performs the probe once (no timeout: the caller bounds it).
    pub async fn run(
        &self,
        env: &[(String, String)],
        workdir: &std::path::Path,
    ) -> Result<(), String> {
        self.run_in(&[], env, workdir).await
    }

    /// As [`Action::run`], an exec command run through `prefix`.
    pub async fn run_in(
        &self,
        prefix: &[String],
        env: &[(String, String)],
        workdir: &std::path::Path,
    ) -> Result<(), String> {
        match self {
            Action::Exec(argv) => {
                if argv.is_empty() {
                    return Err("empty exec command".into());
                }
                let full: Vec<&String> = prefix.iter().chain(argv.iter()).collect();
                let (prog, args) = full.split_first().expect("not empty");
                let out = tokio::process::Command::new(prog)
                    .args(args)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .current_dir(workdir)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| format!("exec {prog:?}: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    Err(format!(
                        "command {argv:?} exited with {}{}",
                        out.status.code().unwrap_or(-1),
                        if text.is_empty() {
                            String::new()
                        } else {
                            format!(": {text}")
                        }
                    ))
                }
            }
            Action::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {host}:{port}: {e}")),
            Action::Http {
                host,
                port,
                path,
                headers,
            } => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
                let mut req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
                );
                for (k, v) in headers {
                    req.push_str(&format!("{k}: {v}\r\n"));
                }
                req.push_str("\r\n");
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
                let mut buf = vec![0u8; 1024];
                let mut n = 0;
                while n < 12 {
                    let m = s
                        .read(&mut buf[n..])
                        .await
                        .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
                    if m == 0 {
                        break;
                    }
                    n += m;
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let code: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| {
                        format!("HTTP probe to {host}:{port}{path}: malformed response")
                    })?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(success: u32, failure: u32) -> Spec {
        Spec {
            action: Action::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn results_turn_after_their_thresholds_of_consecutive_outcomes() {
        let mut s = State::new(Kind::Liveness, spec(2, 3), Instant::now());
        let fail = || Err("no".to_string());
        assert_eq!(s.observe(Ok(())), None, "one success of two");
        assert_eq!(s.observe(Ok(())), Some(Result3::Success));
        assert_eq!(s.observe(fail()), None);
        assert_eq!(s.observe(fail()), None);
        assert_eq!(s.observe(Ok(())), None, "a success resets the failures");
        assert_eq!(s.observe(fail()), None);
        assert_eq!(s.observe(fail()), None);
        assert_eq!(s.observe(fail()), Some(Result3::Failure));
        assert_eq!(s.message, "no");
        assert_eq!(s.observe(Ok(())), None, "still failing after one of two");
        assert_eq!(s.observe(Ok(())), Some(Result3::Success));
    }

    #[test]
    fn specs_take_kubernetes_defaults_and_resolve_named_ports() {
        let c = json!({
            "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 2, "failureThreshold": 1},
            "startupProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 5},
        });
        let l = Spec::parse(&c, "livenessProbe", "127.0.1.1")
            .unwrap()
            .unwrap();
        assert_eq!(
            l.action,
            Action::Http {
                host: "127.0.1.1".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![]
            }
        );
        assert_eq!(
            (
                l.period,
                l.timeout,
                l.success_threshold,
                l.failure_threshold,
                l.initial_delay
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(1),
                1,
                3,
                Duration::ZERO
            )
        );
        let r = Spec::parse(&c, "readinessProbe", "h").unwrap().unwrap();
        assert_eq!((r.period, r.failure_threshold), (Duration::from_secs(2), 1));
        let s = Spec::parse(&c, "startupProbe", "h").unwrap().unwrap();
        assert_eq!(s.action, Action::Exec(vec!["true".into()]));
        assert_eq!(s.initial_delay, Duration::from_secs(5));
        assert!(Spec::parse(&c, "none", "h").unwrap().is_none());
        let bad = json!({"livenessProbe": {"httpGet": {"port": "nope"}}});
        let e = Spec::parse(&bad, "livenessProbe", "h").unwrap_err();
        assert!(e.contains("no container port named \"nope\""), "{e}");
        let bad = json!({"livenessProbe": {"periodSeconds": 3}});
        assert!(Spec::parse(&bad, "livenessProbe", "h").is_err());
    }

    #[tokio::test]
    async fn actions_succeed_and_fail_as_their_targets_do() {
        let dir = std::env::temp_dir();
        assert!(Action::Exec(vec!["true".into()])
            .run(&[], &dir)
            .await
            .is_ok());
        let e = Action::Exec(vec!["sh".into(), "-c".into(), "echo bad; exit 2".into()])
            .run(&[("PATH".into(), "/usr/bin:/bin".into())], &dir)
            .await
            .unwrap_err();
        assert!(e.contains("exited with 2: bad"), "{e}");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let tcp = Action::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(tcp.run(&[], &dir).await.is_ok());
        // An HTTP server answering 200 then 503.
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = l.accept().await.unwrap();
                if code.starts_with("200") {
                    // The TCP probe's connection above: take the next one.
                    drop(s);
                    let (s2, _) = l.accept().await.unwrap();
                    s = s2;
                }
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let http = Action::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
            headers: vec![],
        };
        assert!(http.run(&[], &dir).await.is_ok());
        let e = http.run(&[], &dir).await.unwrap_err();
        assert!(e.contains("statuscode: 503"), "{e}");
    }
}
