//! Ages and timestamps as kubectl prints them.

use jiff::Timestamp;

/// Time since `created` (RFC 3339) in kubectl's short form (`45s`, `5m10s`,
/// `2d5h`); `<unknown>` when missing or not a timestamp.
pub fn age(created: &str, now: Timestamp) -> String {
    match created.parse::<Timestamp>() {
        Ok(t) => human_duration(now.duration_since(t).as_secs()),
        Err(_) => "<unknown>".to_string(),
    }
}

/// kubectl's `duration.HumanDuration` of a whole number of seconds: precise
/// when short, coarser as it grows; up to 1s in the future reads `0s`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with_rest(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

/// `5m10s`, or `5m` when the smaller unit is zero.
fn with_rest(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// A timestamp as `kubectl describe` prints it (RFC 1123 with numeric zone),
/// in UTC; the raw text when it does not parse.
pub fn describe_time(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ago(secs: i64) -> String {
        let now: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let created = now - jiff::SignedDuration::from_secs(secs);
        age(&created.to_string(), now)
    }

    #[test]
    fn ages_follow_human_duration() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (310, "5m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (3 * 365 * 86400 + 45 * 86400, "3y45d"),
            (9 * 365 * 86400 + 45 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(ago(secs), want, "{secs}s");
        }
    }

    #[test]
    fn missing_or_bad_timestamps_are_unknown() {
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(age("", now), "<unknown>");
        assert_eq!(age("yesterday", now), "<unknown>");
    }

    #[test]
    fn describe_times_are_rfc1123z() {
        assert_eq!(
            describe_time("2024-01-01T10:00:00Z"),
            "Mon, 01 Jan 2024 10:00:00 +0000"
        );
    }
}
