//! Cron schedules as Kubernetes' CronJob controller reads them (robfig/cron's
//! `ParseStandard`): five fields (minute, hour, day of month, month, day of
//! week) with names, ranges, steps and lists, the `@daily`-style macros,
//! `@every <duration>`, and a `TZ=`/`CRON_TZ=` prefix naming the zone.
//!
//! A time matches when its wall-clock fields in the zone match, so a time
//! skipped by a daylight-saving jump never runs and one repeated runs twice,
//! as robfig/cron's absolute stepping behaves.

#[cfg(test)]
mod tests;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// How far ahead `next` looks before calling a schedule impossible (such as
/// the 31st of February).
const HORIZON_YEARS: i16 = 5;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The zone from a `TZ=`/`CRON_TZ=` prefix, if any.
    pub tz: Option<TimeZone>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Cron(Fields),
    /// `@every`: a fixed period in whole seconds.
    Every(i64),
}

/// The allowed values of each field, one bit per value.
#[derive(Debug, Clone, PartialEq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day of month or of week written `*`/`?`: then both must match,
    /// otherwise either may (robfig's `starBit`).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a schedule; the error says why, in robfig/cron's words.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let mut rest = spec.trim();
    let mut tz = None;
    if let Some(zoned) = rest
        .strip_prefix("TZ=")
        .or_else(|| rest.strip_prefix("CRON_TZ="))
    {
        let (name, after) = zoned
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("missing schedule after time zone: {spec}"))?;
        let zone = TimeZone::get(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        tz = Some(zone);
        rest = after.trim();
    }
    let kind = if rest.starts_with('@') {
        descriptor(rest)?
    } else {
        Kind::Cron(fields(rest)?)
    };
    Ok(Schedule { tz, kind })
}

fn descriptor(d: &str) -> Result<Kind, String> {
    let expand = match d {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            let every = d.strip_prefix("@every ").map(str::trim);
            return match every.and_then(go_duration_secs) {
                Some(secs) => Ok(Kind::Every(secs)),
                None if every.is_some() => Err(format!("failed to parse duration {d}")),
                None => Err(format!("unrecognized descriptor: {d}")),
            };
        }
    };
    fields(expand).map(Kind::Cron)
}

fn fields(spec: &str) -> Result<Fields, String> {
    let f: Vec<&str> = spec.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = f[..] else {
        return Err(format!(
            "expected exactly 5 fields, found {}: {spec}",
            f.len()
        ));
    };
    let (minute, _) = field(minute, 0, 59, &[])?;
    let (hour, _) = field(hour, 0, 23, &[])?;
    let (dom, dom_star) = field(dom, 1, 31, &[])?;
    let (month, _) = field(month, 1, 12, &MONTHS)?;
    let (dow, dow_star) = field(dow, 0, 6, &DAYS)?;
    Ok(Fields {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    })
}

/// One comma-separated field: its bits, and whether it was a bare star.
fn field(f: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for part in f.split(',') {
        let (b, s) = range(part, min, max, names)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// One `a`, `a-b`, `*` or `?`, with an optional `/step` (`a/step` runs to the
/// field's maximum). A star with a step above one is no longer a star.
fn range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let parts: Vec<&str> = expr.split('/').collect();
    let (range, step) = match parts[..] {
        [r] => (r, None),
        [r, s] => (r, Some(int(s)?)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let bounds: Vec<&str> = range.split('-').collect();
    let (mut lo, mut hi, mut star) = match bounds[..] {
        ["*" | "?"] => (min, max, true),
        [a] => (value(a, names)?, value(a, names)?, false),
        [a, b] => (value(a, names)?, value(b, names)?, false),
        _ => return Err(format!("too many hyphens: {expr}")),
    };
    if let Some(step) = step {
        if bounds.len() == 1 && !star {
            hi = max;
        }
        if step == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
        star &= step == 1;
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
    let mut bits = 0u64;
    let step = step.unwrap_or(1);
    while lo <= hi {
        bits |= 1 << lo;
        lo = lo.saturating_add(step);
    }
    Ok((bits, star))
}

fn value(s: &str, names: &[&str]) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    match names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0.
        Some(i) => Ok(u32::try_from(i).unwrap_or(0) + u32::from(names.len() == 12)),
        None => int(s),
    }
}

fn int(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("failed to parse int from {s}"));
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}"))
}

/// A Go duration (`1h30m`, `90s`, `1.5m`) in whole seconds, at least one.
fn go_duration_secs(s: &str) -> Option<i64> {
    const UNITS: [(&str, i128); 8] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let mut rest = s;
    let mut nanos: i128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(n);
        let (unit, scale) = UNITS.iter().find(|(u, _)| tail.starts_with(u))?;
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if (whole.is_empty() && frac.is_empty()) || num.len() > 18 {
            return None;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac_value: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        let frac_scale = 10i128.pow(u32::try_from(frac.len()).ok()?);
        nanos += whole * scale + frac_value * scale / frac_scale;
        rest = &tail[unit.len()..];
    }
    i64::try_from(nanos / 1_000_000_000).ok().map(|s| s.max(1))
}

impl Schedule {
    /// The first time strictly after `after` the schedule fires, reading its
    /// fields in `tz` (the prefix's zone wins); none for an impossible one.
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let tz = self.tz.as_ref().unwrap_or(tz);
        match &self.kind {
            Kind::Every(secs) => Timestamp::from_second(after.as_second().checked_add(*secs)?).ok(),
            Kind::Cron(f) => f.next(after, tz),
        }
    }
}

impl Fields {
    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let off_now = tz.to_offset(after).seconds();
        let day_later = Timestamp::from_second(after.as_second().saturating_add(86_400)).ok()?;
        // Start from the wall clock at the lowest offset of the coming day, so
        // a repeated hour's later instants are not stepped over.
        let low = off_now.min(tz.to_offset(day_later).seconds());
        let start = civil_at(after, low)?;
        let limit = start.date().year().saturating_add(HORIZON_YEARS);
        let mut cursor = start;
        let mut best: Option<(Timestamp, DateTime)> = None;
        while let Some(m) = self.civil_match(cursor, limit) {
            if let Some((b, bc)) = best {
                // A later wall-clock time comes earlier only in a repeated
                // hour, with a larger offset than the best's.
                let spread =
                    i64::from(off_now.max(tz.to_offset(b).seconds()) - tz.to_offset(b).seconds());
                if seconds_between(bc, m) >= spread {
                    break;
                }
            }
            for t in instants(tz, m) {
                if t > after && best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, m));
                }
            }
            cursor = m.checked_add(jiff::SignedDuration::from_mins(1)).ok()?;
        }
        best.map(|(t, _)| t)
    }

    /// The first wall-clock minute at or after `c` matching every field,
    /// before the year `limit`.
    fn civil_match(&self, c: DateTime, limit: i16) -> Option<DateTime> {
        let (mut d, mut h, mut m) = (c.date(), c.hour(), c.minute());
        while d.year() < limit {
            if !bit(self.month, d.month()) {
                (d, h, m) = (next_month(d)?, 0, 0);
            } else if !self.day_matches(d) {
                (d, h, m) = (d.tomorrow().ok()?, 0, 0);
            } else if let Some(nh) = first_from(self.hour, h) {
                if nh != h {
                    (h, m) = (nh, 0);
                }
                match first_from(self.minute, m) {
                    Some(nm) => return d.at(h, nm, 0, 0).into(),
                    None if h < 23 => (h, m) = (h + 1, 0),
                    None => (d, h, m) = (d.tomorrow().ok()?, 0, 0),
                }
            } else {
                (d, h, m) = (d.tomorrow().ok()?, 0, 0);
            }
        }
        None
    }

    /// robfig's rule: with either day field a star both must match, else either.
    fn day_matches(&self, d: Date) -> bool {
        let dom = bit(self.dom, d.day());
        let dow = bit(self.dow, d.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn bit(mask: u64, v: i8) -> bool {
    u32::try_from(v).is_ok_and(|v| v < 64 && mask & (1 << v) != 0)
}

/// The lowest allowed value at or above `from`.
fn first_from(mask: u64, from: i8) -> Option<i8> {
    let from = u32::try_from(from).ok().filter(|f| *f < 64)?;
    let rest = mask >> from;
    (rest != 0).then(|| i8::try_from(from + rest.trailing_zeros()).unwrap_or(i8::MAX))
}

fn next_month(d: Date) -> Option<Date> {
    let (y, m) = if d.month() == 12 {
        (d.year().checked_add(1)?, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    Date::new(y, m, 1).ok()
}

/// The wall clock of `t` at a UTC offset of `offset` seconds, to the minute.
fn civil_at(t: Timestamp, offset: i32) -> Option<DateTime> {
    let dt = jiff::tz::Offset::from_seconds(offset).ok()?.to_datetime(t);
    dt.date().at(dt.hour(), dt.minute(), 0, 0).into()
}

fn seconds_between(a: DateTime, b: DateTime) -> i64 {
    let ts = |d: DateTime| {
        jiff::tz::Offset::UTC
            .to_timestamp(d)
            .map(|t| t.as_second())
            .unwrap_or(0)
    };
    ts(b) - ts(a)
}

/// The instants a wall-clock time names in `tz`: none in a gap, two in a fold.
fn instants(tz: &TimeZone, c: DateTime) -> Vec<Timestamp> {
    let offsets = match tz.to_ambiguous_timestamp(c).offset() {
        AmbiguousOffset::Unambiguous { offset } => vec![offset],
        AmbiguousOffset::Gap { .. } => Vec::new(),
        AmbiguousOffset::Fold { before, after } => vec![before, after],
    };
    offsets
        .into_iter()
        .filter_map(|o| o.to_timestamp(c).ok())
        .collect()
}
