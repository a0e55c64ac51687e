//! The wall clock where masters compare wall time (token and lease-like
//! expiries, object timestamps, event TTLs, CronJob schedules, the leader's
//! stamp on Raft entries), with a test offset: with `FERRY_CLOCK_OFFSET_FILE`
//! set, [`now`] is the system time plus the signed number of seconds in that
//! file (absent or empty: 0). `ferry chaos`'s `clock-jump` fault writes it to
//! jump one master's clock and back. The file is read again at most every
//! 100 ms; without the variable it is never read.
//!
//! Raft's timers, the node lifecycle's grace periods and every timeout use
//! monotonic time ([`std::time::Instant`]), which a jump does not move.
//! Certificates are issued and checked against the system clock: rustls
//! checks them with it too.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable naming the offset file.
pub const OFFSET_FILE_ENV: &str = "FERRY_CLOCK_OFFSET_FILE";

/// How long a read of the offset file is used before it is read again.
const REREAD: Duration = Duration::from_millis(100);

/// Now, by this process's clock (the system's plus the test offset).
pub fn now() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    match offset() {
        0 => t,
        ms => t
            .checked_add(jiff::SignedDuration::from_millis(ms))
            .unwrap_or(t),
    }
}

/// [`now`] in milliseconds since the Unix epoch (0 before it).
pub fn unix_ms() -> u64 {
    now().as_millisecond().max(0) as u64
}

/// Milliseconds since the Unix epoch by a clock that follows [`now`] as it
/// was at this process's first call and moves with monotonic time after:
/// a later jump of the wall clock (a step by NTP, `clock-jump`) does not
/// move it. The leader stamps Raft entries with it: remembered request ids
/// age by those stamps, and a forward jump would forget them early (a
/// retried write applied twice), a backward one keep them long.
pub fn steady_unix_ms() -> u64 {
    static STEADY: OnceLock<Steady> = OnceLock::new();
    STEADY.get_or_init(|| Steady::new(unix_ms())).now_ms()
}

/// A wall time taken once, moved on by monotonic time.
pub struct Steady {
    base_ms: u64,
    at: Instant,
}

impl Steady {
    /// Starts at `base_ms` now.
    pub fn new(base_ms: u64) -> Steady {
        Steady {
            base_ms,
            at: Instant::now(),
        }
    }

    /// The base plus the monotonic time since.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.at.elapsed().as_millis() as u64
    }
}

/// The test offset in milliseconds (0 without `FERRY_CLOCK_OFFSET_FILE`).
pub fn offset() -> i64 {
    static CLOCK: OnceLock<Option<OffsetFile>> = OnceLock::new();
    CLOCK
        .get_or_init(|| std::env::var_os(OFFSET_FILE_ENV).map(OffsetFile::new))
        .as_ref()
        .map_or(0, OffsetFile::offset)
}

/// An offset file, read again at most every [`REREAD`].
pub struct OffsetFile {
    file: PathBuf,
    last: Mutex<Option<(Instant, i64)>>,
}

impl OffsetFile {
    /// The offset in `file` (not read yet).
    pub fn new(file: impl Into<PathBuf>) -> OffsetFile {
        OffsetFile {
            file: file.into(),
            last: Mutex::new(None),
        }
    }

    /// The offset in milliseconds: 0 while the file is absent or unreadable.
    pub fn offset(&self) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, ms)) = *last {
            if at.elapsed() < REREAD {
                return ms;
            }
        }
        let ms = match std::fs::read_to_string(&self.file) {
            Ok(text) => parse_offset(&text).unwrap_or_else(|e| {
                tracing::warn!(file = %self.file.display(), error = %e, "clock offset ignored");
                0
            }),
            Err(_) => 0,
        };
        if last.map_or(ms != 0, |(_, before)| before != ms) {
            tracing::info!(offset_ms = ms, "clock offset (test) changed");
        }
        *last = Some((Instant::now(), ms));
        ms
    }
}

/// An offset file's text: signed seconds (`-30`, `+3600`, `1.5`; empty: 0),
/// in milliseconds.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let secs: f64 = t
        .parse()
        .map_err(|_| format!("{t:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs.abs() > 100.0 * 365.0 * 86_400.0 {
        return Err(format!("{t:?} is not a clock offset within a century"));
    }
    Ok((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset(""), Ok(0));
        assert_eq!(parse_offset("  \n"), Ok(0));
        assert_eq!(parse_offset("-30\n"), Ok(-30_000));
        assert_eq!(parse_offset("+3600"), Ok(3_600_000));
        assert_eq!(parse_offset("1.5"), Ok(1_500));
        assert!(parse_offset("soon").unwrap_err().contains("not a number"));
        assert!(parse_offset("1e12").unwrap_err().contains("century"));
        assert!(parse_offset("NaN").is_err());
    }

    /// The file's offset applies, is read again after a change, and is 0
    /// once the file is gone (the jump is over).
    #[test]
    fn an_offset_file_moves_the_clock_and_back() {
        let dir = std::env::temp_dir().join(format!("ferry-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clock-offset");
        let f = OffsetFile::new(&path);
        assert_eq!(f.offset(), 0, "no file: no offset");
        std::fs::write(&path, "-90").unwrap();
        std::thread::sleep(REREAD + Duration::from_millis(20));
        assert_eq!(f.offset(), -90_000);
        std::fs::write(&path, "3600\n").unwrap();
        std::thread::sleep(REREAD + Duration::from_millis(20));
        assert_eq!(f.offset(), 3_600_000);
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(REREAD + Duration::from_millis(20));
        assert_eq!(f.offset(), 0, "the file removed: the clock is back");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A steady clock moves with monotonic time only: what the wall clock
    /// does after its start (here: jumping an hour) does not move it.
    #[test]
    fn a_steady_clock_ignores_later_jumps() {
        let f = std::env::temp_dir().join(format!("ferry-steady-{}", std::process::id()));
        let wall = OffsetFile::new(&f);
        let wall_ms =
            |o: &OffsetFile| (jiff::Timestamp::now().as_millisecond() + o.offset()) as u64;
        let steady = Steady::new(wall_ms(&wall));
        std::fs::write(&f, "3600").unwrap();
        std::thread::sleep(REREAD + Duration::from_millis(20));
        let (w, s) = (wall_ms(&wall), steady.now_ms());
        let _ = std::fs::remove_file(&f);
        assert!(w >= s + 3_599_000, "the wall clock jumped: {w} vs {s}");
        let real = jiff::Timestamp::now().as_millisecond() as u64;
        assert!(s.abs_diff(real) < 1000, "steady {s} left real time {real}");
        assert!(steady_unix_ms().abs_diff(unix_ms()) < 1000);
    }

    /// Without the variable (the tests' environment), the offset is 0 and
    /// [`now`] is the system clock.
    #[test]
    fn without_the_variable_now_is_the_system_clock() {
        if std::env::var_os(OFFSET_FILE_ENV).is_some() {
            return;
        }
        assert_eq!(offset(), 0);
        let d = now().duration_since(jiff::Timestamp::now()).abs();
        assert!(d < jiff::SignedDuration::from_secs(5));
    }
}
