use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// The next `n` firing times after `from`, in UTC RFC 3339.
fn nexts(spec: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
    let s = parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let mut t = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s
            .next(t, tz)
            .unwrap_or_else(|| panic!("{spec} never fires after {t}"));
        out.push(t.to_string());
    }
    out
}

#[test]
fn fields_accept_names_ranges_steps_lists_and_stars() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "every 15 minutes",
            "*/15 * * * *",
            &[
                "2024-01-01T00:15:00Z",
                "2024-01-01T00:30:00Z",
                "2024-01-01T00:45:00Z",
            ],
        ),
        (
            "a list and a range",
            "5,50 9-10 * * *",
            &[
                "2024-01-01T09:05:00Z",
                "2024-01-01T09:50:00Z",
                "2024-01-01T10:05:00Z",
            ],
        ),
        (
            "a start with a step runs to the maximum",
            "0 20/2 * * *",
            &[
                "2024-01-01T20:00:00Z",
                "2024-01-01T22:00:00Z",
                "2024-01-02T20:00:00Z",
            ],
        ),
        (
            "a range with a step",
            "0 1-7/3 * * *",
            &[
                "2024-01-01T01:00:00Z",
                "2024-01-01T04:00:00Z",
                "2024-01-01T07:00:00Z",
            ],
        ),
        (
            "month and weekday names, any case (2024-01-01 is a Monday)",
            "0 0 * FEB Mon-wed",
            &[
                "2024-02-05T00:00:00Z",
                "2024-02-06T00:00:00Z",
                "2024-02-07T00:00:00Z",
            ],
        ),
        (
            "? is a star",
            "0 12 ? * ?",
            &[
                "2024-01-01T12:00:00Z",
                "2024-01-02T12:00:00Z",
                "2024-01-03T12:00:00Z",
            ],
        ),
    ];
    for (what, spec, want) in cases {
        assert_eq!(
            nexts(spec, &TimeZone::UTC, "2024-01-01T00:00:00Z", want.len()),
            *want,
            "{what}"
        );
    }
}

#[test]
fn macros_expand_as_robfig_expands_them() {
    let from = "2024-05-15T10:30:00Z";
    let cases = [
        ("@yearly", "2025-01-01T00:00:00Z"),
        ("@annually", "2025-01-01T00:00:00Z"),
        ("@monthly", "2024-06-01T00:00:00Z"),
        ("@weekly", "2024-05-19T00:00:00Z"), // a Sunday
        ("@daily", "2024-05-16T00:00:00Z"),
        ("@midnight", "2024-05-16T00:00:00Z"),
        ("@hourly", "2024-05-15T11:00:00Z"),
        ("@every 90m", "2024-05-15T12:00:00Z"),
        ("@every 1.5s", "2024-05-15T10:30:01Z"),
    ];
    for (spec, want) in cases {
        assert_eq!(nexts(spec, &TimeZone::UTC, from, 1), [want], "{spec}");
    }
}

#[test]
fn day_of_month_and_day_of_week_match_either_unless_one_is_a_star() {
    // 2024-03: the 1st is a Friday; Mondays are the 4th, 11th, 18th.
    let from = "2024-02-29T12:00:00Z";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "both restricted: the 15th or a Monday",
            "0 0 15 * 1",
            &[
                "2024-03-04T00:00:00Z",
                "2024-03-11T00:00:00Z",
                "2024-03-15T00:00:00Z",
            ],
        ),
        (
            "weekday a star: the 15th only",
            "0 0 15 * *",
            &["2024-03-15T00:00:00Z", "2024-04-15T00:00:00Z"],
        ),
        (
            "day a star: Mondays only",
            "0 0 * * 1",
            &["2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z"],
        ),
        (
            "a stepped star is no star: the odd days or a Monday",
            "0 0 */2 * 1",
            &[
                "2024-03-01T00:00:00Z",
                "2024-03-03T00:00:00Z",
                "2024-03-04T00:00:00Z",
            ],
        ),
    ];
    for (what, spec, want) in cases {
        assert_eq!(
            nexts(spec, &TimeZone::UTC, from, want.len()),
            *want,
            "{what}"
        );
    }
}

#[test]
fn next_crosses_month_and_year_ends_and_skips_short_months() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "the 31st skips 30-day months",
            "0 0 31 * *",
            "2024-01-31T00:00:00Z",
            &["2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z"],
        ),
        (
            "Feb 29 waits for a leap year",
            "0 0 29 2 *",
            "2024-03-01T00:00:00Z",
            &["2028-02-29T00:00:00Z"],
        ),
        (
            "year end",
            "59 23 31 12 *",
            "2024-12-31T23:59:00Z",
            &["2025-12-31T23:59:00Z"],
        ),
        (
            "strictly after, from a firing time",
            "30 * * * *",
            "2024-01-31T23:30:00Z",
            &["2024-02-01T00:30:00Z"],
        ),
        (
            "from the middle of a minute",
            "* * * * *",
            "2024-01-31T23:59:30.5Z",
            &["2024-02-01T00:00:00Z"],
        ),
    ];
    for (what, spec, from, want) in cases {
        assert_eq!(
            nexts(spec, &TimeZone::UTC, from, want.len()),
            *want,
            "{what}"
        );
    }
}

#[test]
fn impossible_schedules_never_fire() {
    let s = parse("0 0 31 2 *").unwrap();
    assert_eq!(s.next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC), None);
}

#[test]
fn wall_clock_fields_follow_the_zone_through_daylight_saving() {
    let ny = zone("America/New_York");
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "9:00 local is 14:00Z in winter and 13:00Z in summer",
            "0 9 * * *",
            "2024-03-09T00:00:00Z",
            &["2024-03-09T14:00:00Z", "2024-03-10T13:00:00Z"],
        ),
        (
            // 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:30 never happens.
            "a time in the skipped hour is skipped that day",
            "30 2 * * *",
            "2024-03-09T12:00:00Z",
            &["2024-03-11T06:30:00Z"],
        ),
        (
            "hourly runs through the jump",
            "0 * * * *",
            "2024-03-10T06:30:00Z",
            &["2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"],
        ),
        (
            // 2024-11-03 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
            "a time in the repeated hour runs twice",
            "30 1 * * *",
            "2024-11-03T04:00:00Z",
            &[
                "2024-11-03T05:30:00Z",
                "2024-11-03T06:30:00Z",
                "2024-11-04T06:30:00Z",
            ],
        ),
        (
            "from the first pass of the repeated hour, earlier wall times come again",
            "10,50 1 * * *",
            "2024-11-03T05:20:00Z",
            &[
                "2024-11-03T05:50:00Z",
                "2024-11-03T06:10:00Z",
                "2024-11-03T06:50:00Z",
            ],
        ),
    ];
    for (what, spec, from, want) in cases {
        assert_eq!(nexts(spec, &ny, from, want.len()), *want, "{what}");
    }
}

#[test]
fn a_tz_prefix_overrides_the_given_zone() {
    let from = "2024-07-01T00:00:00Z";
    for spec in ["TZ=Asia/Tokyo 0 9 * * *", "CRON_TZ=Asia/Tokyo 0 9 * * *"] {
        // 09:00 in Tokyo is 00:00Z; strictly after the start, so the next day.
        assert_eq!(
            nexts(spec, &zone("America/New_York"), from, 1),
            ["2024-07-02T00:00:00Z"],
            "{spec}"
        );
    }
    assert!(parse("TZ=Asia/Tokyo @daily").unwrap().tz.is_some());
}

#[test]
fn bad_schedules_are_refused_with_robfigs_reasons() {
    let cases = [
        ("* * * *", "expected exactly 5 fields, found 4"),
        ("* * * * * *", "expected exactly 5 fields, found 6"),
        ("60 * * * *", "end of range (60) above maximum (59)"),
        ("* * 0 * *", "beginning of range (0) below minimum (1)"),
        ("* * * * 7", "end of range (7) above maximum (6)"),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1)",
        ),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("1/2/3 * * * *", "too many slashes"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("x * * * *", "failed to parse int from x"),
        ("* * * foo *", "failed to parse int from foo"),
        ("-1 * * * *", "failed to parse int from"),
        ("@fortnightly", "unrecognized descriptor"),
        ("@every soon", "failed to parse duration"),
        (
            "TZ=Mars/Olympus 0 * * * *",
            "provided bad location Mars/Olympus",
        ),
        ("TZ=UTC", "missing schedule after time zone"),
        ("", "expected exactly 5 fields, found 0"),
    ];
    for (spec, want) in cases {
        let err = parse(spec).expect_err(spec);
        assert!(err.contains(want), "{spec:?}: {err}");
    }
}
