//! Host-local address management: pod addresses from the node's pod range,
//! one file per address (`<dir>/<ip>` holding the pod uid), created
//! exclusively, so an address is never handed to two pods, and kept on disk,
//! so an agent restart keeps every assignment.

use ferry_api::network::Cidr;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file remembering the last address handed out (allocation goes round
/// the range, so a freed address is not reused at once).
const LAST: &str = "last";

/// The next free address index in `range` after `last`, skipping the network
/// address, the gateway (index 1) and the broadcast address. `None` when full.
pub fn next_free(range: &Cidr, used: &BTreeSet<u128>, last: Option<u128>) -> Option<u128> {
    let size = range.size();
    if size < 4 {
        return None;
    }
    let (first, end) = (2u128, size - 1); // usable: first..end
    let count = end - first;
    let start = match last {
        Some(l) if (first..end).contains(&l) => l + 1 - first,
        _ => 0,
    };
    (0..count)
        .map(|k| first + (start + k) % count)
        .find(|i| !used.contains(i))
}

/// A node's pod address assignments.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    /// The assignments kept in `dir`.
    pub fn new(dir: PathBuf) -> Ipam {
        Ipam { dir }
    }

    /// Every assignment: (address, pod uid).
    pub fn all(&self) -> Vec<(IpAddr, String)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(IpAddr, String)> = rd
            .flatten()
            .filter_map(|e| {
                let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
                let uid = std::fs::read_to_string(e.path()).unwrap_or_default();
                Some((ip, uid.trim().to_string()))
            })
            .collect();
        out.sort();
        out
    }

    /// The address assigned to `uid`, if any.
    pub fn lookup(&self, uid: &str) -> Option<IpAddr> {
        self.all()
            .into_iter()
            .find_map(|(ip, u)| (u == uid).then_some(ip))
    }

    /// `uid`'s address in `range`: the one it has, or a new one.
    pub fn allocate(&self, range: &Cidr, uid: &str) -> std::io::Result<IpAddr> {
        let all = self.all();
        if let Some((ip, _)) = all.iter().find(|(ip, u)| u == uid && range.contains(*ip)) {
            return Ok(*ip);
        }
        std::fs::create_dir_all(&self.dir)?;
        let mut used: BTreeSet<u128> = all
            .iter()
            .filter_map(|(ip, _)| range.index_of(*ip))
            .collect();
        let mut last = std::fs::read_to_string(self.dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .and_then(|ip: IpAddr| range.index_of(ip));
        loop {
            let Some(i) = next_free(range, &used, last) else {
                return Err(std::io::Error::other(format!(
                    "no free address left in the pod range {range} ({} pods hold one)",
                    used.len()
                )));
            };
            let ip = range.nth(i).expect("in range");
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.path(ip))
            {
                Ok(mut f) => {
                    f.write_all(uid.as_bytes())?;
                    f.sync_all()?;
                    let _ = ferry_api::files::write_private(
                        &self.dir.join(LAST),
                        ip.to_string().as_bytes(),
                    );
                    return Ok(ip);
                }
                // Taken meanwhile: try the next.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    used.insert(i);
                    last = Some(i);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Frees every address `uid` holds.
    pub fn release(&self, uid: &str) {
        for (ip, u) in self.all() {
            if u == uid {
                let _ = std::fs::remove_file(self.path(ip));
            }
        }
    }

    fn path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Where the assignments live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_free_skips_network_gateway_broadcast_and_goes_round() {
        let r: Cidr = "10.250.0.0/29".parse().unwrap(); // 8 addresses: 2..=6 usable
        let set = |v: &[u128]| v.iter().copied().collect::<BTreeSet<u128>>();
        for (used, last, want) in [
            (set(&[]), None, Some(2)),
            (set(&[2, 3]), None, Some(4)),
            (set(&[]), Some(4), Some(5)),
            (set(&[]), Some(6), Some(2)),
            (set(&[2]), Some(6), Some(3)),
            (set(&[2, 3, 4, 5, 6]), Some(3), None),
            (set(&[]), Some(7), Some(2)),
        ] {
            assert_eq!(next_free(&r, &used, last), want, "{used:?} after {last:?}");
        }
        assert_eq!(
            next_free(&"10.0.0.0/31".parse().unwrap(), &set(&[]), None),
            None
        );
    }

    #[test]
    fn assignments_persist_never_collide_and_are_freed() {
        let d = tempfile::tempdir().unwrap();
        let r: Cidr = "10.250.0.0/29".parse().unwrap();
        let ipam = Ipam::new(d.path().join("ips"));
        let a = ipam.allocate(&r, "pod-a").unwrap();
        assert_eq!(a.to_string(), "10.250.0.2");
        assert_eq!(
            ipam.allocate(&r, "pod-a").unwrap(),
            a,
            "same pod, same address"
        );
        // A restarted agent reads the same assignments.
        let again = Ipam::new(d.path().join("ips"));
        assert_eq!(again.lookup("pod-a"), Some(a));
        let b = again.allocate(&r, "pod-b").unwrap();
        assert_eq!(b.to_string(), "10.250.0.3");
        again.release("pod-a");
        assert_eq!(again.lookup("pod-a"), None);
        // Round the range: the freed .2 comes last.
        let got: Vec<String> = ["c", "d", "e", "f"]
            .iter()
            .map(|u| again.allocate(&r, u).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            ["10.250.0.4", "10.250.0.5", "10.250.0.6", "10.250.0.2"]
        );
        let e = again.allocate(&r, "g").unwrap_err().to_string();
        assert!(
            e.contains("no free address left in the pod range 10.250.0.0/29"),
            "{e}"
        );
    }
}
