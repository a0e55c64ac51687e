//! Keep-alive to endpoints, as nginx's `upstream keepalive` (ingress-nginx's
//! `upstream-keepalive-connections`, `-timeout` and `-requests`): the idle
//! connections of each endpoint, the most recently used handed out first.
//! One is dropped when it has been idle [`Pool::idle_timeout`], has carried
//! [`Pool::max_requests`] requests, is over [`Pool::max_idle`] for its
//! endpoint, or when the endpoint closed it (or sent something unasked)
//! while it sat idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per endpoint.
pub const MAX_IDLE: usize = 32;
/// How long an idle connection is kept (ingress-nginx: 60 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests one endpoint connection carries (ingress-nginx: 10000).
pub const MAX_REQUESTS: usize = 10_000;

struct Idle {
    conn: TcpStream,
    since: Instant,
    used: usize,
}

/// Idle endpoint connections by endpoint.
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    /// Idle connections kept per endpoint.
    pub max_idle: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Requests one connection carries before it is closed.
    pub max_requests: usize,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new(MAX_IDLE, IDLE_TIMEOUT, MAX_REQUESTS)
    }
}

/// Whether an idle connection is still usable: nothing to read (a close
/// or unasked bytes make it unusable).
fn alive(conn: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(conn.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Pool {
    /// A pool with these limits.
    pub fn new(max_idle: usize, idle_timeout: Duration, max_requests: usize) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
            max_requests,
        }
    }

    /// An idle connection to `ep` and the requests it carried, if one is
    /// still open.
    pub fn take(&self, ep: SocketAddr) -> Option<(TcpStream, usize)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&ep)?;
        let now = Instant::now();
        let mut found = None;
        while let Some(i) = list.pop() {
            if now.duration_since(i.since) < self.idle_timeout && alive(&i.conn) {
                found = Some((i.conn, i.used));
                break;
            }
        }
        if list.is_empty() {
            idle.remove(&ep);
        }
        found
    }

    /// Keeps `conn` to `ep`, which has carried `used` requests, for the
    /// next request to `ep` (closed instead when it has carried its share).
    pub fn put(&self, ep: SocketAddr, conn: TcpStream, used: usize) {
        if used >= self.max_requests || self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(ep).or_default();
        list.push(Idle {
            conn,
            since: Instant::now(),
            used,
        });
        if list.len() > self.max_idle {
            // The least recently used goes.
            list.remove(0);
        }
    }

    /// Closes the connections idle too long.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(|i| now.duration_since(i.since) < self.idle_timeout);
            !list.is_empty()
        });
    }

    /// How many idle connections `ep` has.
    pub fn idle(&self, ep: SocketAddr) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get(&ep).map_or(0, Vec::len)
    }
}
