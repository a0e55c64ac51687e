//! CronJob schedules: five cron fields or an `@hourly`-style macro, checked the
//! way Kubernetes' parser (robfig/cron `ParseStandard`) checks them, with its messages.

/// minute, hour, day of month, month, day of week: name, min, max, and names for values.
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (
        "day of week",
        0,
        6,
        &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    ),
];

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Checks a schedule; the error is the reason, as Kubernetes reports it.
pub(crate) fn check(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if let Some(every) = spec.strip_prefix("@every ") {
        return check_duration(every.trim())
            .ok_or_else(|| format!("failed to parse duration {spec}"));
    }
    if spec.starts_with('@') {
        return if MACROS.contains(&spec) {
            Ok(())
        } else {
            Err(format!("unrecognized descriptor: {spec}"))
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {spec}",
            fields.len()
        ));
    }
    for (f, (_, min, max, names)) in fields.iter().zip(FIELDS) {
        for part in f.split(',') {
            check_range(part, min, max, names)?;
        }
    }
    Ok(())
}

/// One `a`, `a-b`, `*` or `?`, with an optional `/step`.
fn check_range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match expr.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (expr, None),
    };
    let (lo, hi) = if range == "*" || range == "?" {
        (min, max)
    } else {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        (value(a, names)?, value(b, names)?)
    };
    if let Some(s) = step {
        if s.contains('/') {
            return Err(format!("too many slashes: {expr}"));
        }
        if parse_int(s)? == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if lo < min {
        return Err(format!(
            "beginning of range ({lo}) below minimum ({min}): {expr}"
        ));
    }
    if hi > max {
        return Err(format!("end of range ({hi}) above maximum ({max}): {expr}"));
    }
    if lo > hi {
        return Err(format!(
            "beginning of range ({lo}) beyond end of range ({hi}): {expr}"
        ));
    }
    Ok(())
}

fn value(s: &str, names: &[&str]) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    match names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0.
        Some(i) if names.len() == 12 => Ok(i as u32 + 1),
        Some(i) => Ok(i as u32),
        None => parse_int(s),
    }
}

fn parse_int(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("failed to parse int from {s}"));
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}"))
}

/// A Go duration such as `1h30m` or `90s`.
fn check_duration(s: &str) -> Option<()> {
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n == 0 {
            return None;
        }
        rest = &rest[n..];
        let unit = ["ns", "us", "ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let good = [
            "*/5 * * * *",
            "0 0 * * 0",
            "30 2 1-15 JAN,jun mon-fri",
            "0 0 ? * *",
            "0-59/10 0,12 * * *",
            "@hourly",
            "@every 1h30m",
        ];
        for s in good {
            assert_eq!(check(s), Ok(()), "{s}");
        }
        let bad = [
            ("* * * *", "expected exactly 5 fields, found 4"),
            ("60 * * * *", "end of range (60) above maximum (59)"),
            ("* * 0 * *", "beginning of range (0) below minimum (1)"),
            ("* * * * 7", "end of range (7) above maximum (6)"),
            ("*/0 * * * *", "step of range should be a positive number"),
            ("x * * * *", "failed to parse int from x"),
            ("5-1 * * * *", "beyond end of range"),
            ("@fortnightly", "unrecognized descriptor"),
            ("@every soon", "failed to parse duration"),
        ];
        for (s, want) in bad {
            let e = check(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
