//! Text forms Go's JSON encoder gives: RFC 3339 times, `time.Duration`
//! strings, and standard base64 for `[]byte`.

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// `seconds` since the Unix epoch in RFC 3339 UTC (`2024-01-02T03:04:05Z`),
/// with `micros` (0..1_000_000) as six fraction digits when given. `None` for a
/// year outside 0..=9999, which RFC 3339 cannot write.
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let fraction = micros.map(|us| format!(".{us:06}")).unwrap_or_default();
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z"
    ))
}

/// `seconds` and `nanos` as Go's `time.Unix(seconds, nanos)` normalises them,
/// with the nanoseconds truncated to microseconds first (as `MicroTime` does).
pub(crate) fn unix_micros(seconds: i64, nanos: i32) -> Option<(i64, u32)> {
    let nanos = i64::from(nanos);
    let nanos = nanos - nanos % 1000;
    let seconds = seconds.checked_add(nanos.div_euclid(NANOS_PER_SEC))?;
    Some((seconds, (nanos.rem_euclid(NANOS_PER_SEC) / 1000) as u32))
}

/// Year, month (1..=12) and day (1..=31) of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A nanosecond count as Go's `time.Duration.String()` writes it: `1h0m0s`,
/// `1.5s`, `300ms`, `2µs`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    let mut u = nanos.unsigned_abs();
    let sign = if nanos < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (whole, frac) = split_fraction(u, prec);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (secs, frac) = split_fraction(u, 9);
    u = secs;
    let mut out = format!("{}{frac}s", u % 60);
    u /= 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// `v / 10^prec` and the fraction `.ddd` with trailing zeros dropped (empty
/// when the fraction is zero).
fn split_fraction(v: u64, prec: u32) -> (u64, String) {
    let scale = 10u64.pow(prec);
    let frac = v % scale;
    if frac == 0 {
        return (v / scale, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / scale, format!(".{}", digits.trim_end_matches('0')))
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let cases = [
            (0, None, Some("1970-01-01T00:00:00Z")),
            (1_704_164_645, None, Some("2024-01-02T03:04:05Z")),
            (951_782_400, None, Some("2000-02-29T00:00:00Z")),
            (-1, None, Some("1969-12-31T23:59:59Z")),
            (
                1_704_164_645,
                Some(120),
                Some("2024-01-02T03:04:05.000120Z"),
            ),
            (253_402_300_799, None, Some("9999-12-31T23:59:59Z")),
            (253_402_300_800, None, None),
            (-62_167_219_201, None, None),
        ];
        for (secs, micros, want) in cases {
            assert_eq!(rfc3339(secs, micros).as_deref(), want, "{secs}");
        }
    }

    #[test]
    fn normalises_micro_time() {
        assert_eq!(unix_micros(10, 123_456_789), Some((10, 123_456)));
        assert_eq!(unix_micros(10, -1_500), Some((9, 999_999)));
        assert_eq!(unix_micros(10, 1_999_999_999), Some((11, 999_999)));
        assert_eq!(unix_micros(i64::MAX, 1_000_000_000), None);
    }

    #[test]
    fn formats_go_durations() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn encodes_base64() {
        let cases: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (&[0xff, 0xfe, 0x03, 0x00], "//4DAA=="),
        ];
        for (bytes, want) in cases {
            assert_eq!(base64(bytes), want);
        }
    }
}
