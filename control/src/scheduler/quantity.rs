//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`) read
//! as milli-units, so cpu (millicores) and bytes compare in one integer type.
//! Fractions finer than a milli-unit round up, as Kubernetes' `MilliValue` does.

/// Parses a quantity into milli-units; `None` when malformed or too large.
pub(crate) fn milli(s: &str) -> Option<i128> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let (mul, div) = scale(suffix)?;
    let digits: i128 = format!("0{whole}{fraction}").parse().ok()?;
    let num = digits.checked_mul(mul)?.checked_mul(1000)?;
    let den = 10i128
        .checked_pow(u32::try_from(fraction.len()).ok()?)?
        .checked_mul(div)?;
    let v = num.checked_add(den - 1)? / den;
    Some(if negative { -v } else { v })
}

/// The milli-units of a quantity, 0 when it cannot be read: a malformed
/// quantity never panics the scheduler (admission refuses them anyway).
pub(crate) fn milli_or_zero(s: &str) -> i128 {
    milli(s).unwrap_or(0)
}

/// The multiplier and divisor a suffix stands for.
fn scale(suffix: &str) -> Option<(i128, i128)> {
    let binary = |shift: u32| Some((1i128 << shift, 1));
    let decimal = |exp: u32| Some((10i128.pow(exp), 1));
    match suffix {
        "" => decimal(0),
        "n" => Some((1, 1_000_000_000)),
        "u" => Some((1, 1_000_000)),
        "m" => Some((1, 1000)),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => exponent(suffix),
    }
}

/// A decimal exponent suffix (`e3`, `E-2`).
fn exponent(suffix: &str) -> Option<(i128, i128)> {
    let exp = suffix.strip_prefix(['e', 'E'])?;
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let e: i32 = exp.parse().ok()?;
    // Beyond 10^24 nothing real is measured; refusing keeps i128 safe.
    if e.abs() > 24 {
        return None;
    }
    let p = 10i128.pow(e.unsigned_abs());
    Some(if e >= 0 { (p, 1) } else { (1, p) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_milli_units() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(1000)),
            ("100m", Some(100)),
            ("1.5", Some(1500)),
            ("0.1", Some(100)),
            (".5", Some(500)),
            ("128Mi", Some(128 * 1024 * 1024 * 1000)),
            ("1G", Some(1_000_000_000_000)),
            ("2Ki", Some(2048 * 1000)),
            ("1e3", Some(1_000_000)),
            ("2E-3", Some(2)),
            ("1u", Some(1)),
            ("1n", Some(1)),
            ("0", Some(0)),
            ("-1", Some(-1000)),
            ("+5", Some(5000)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("1Zi", None),
            ("1e", None),
            ("12 Mi", None),
            (".", None),
            ("1e999", None),
            ("99999999999999999999999999999999999999999", None),
        ];
        for (s, want) in cases {
            assert_eq!(milli(s), *want, "{s:?}");
        }
        assert_eq!(milli("1Gi"), milli("1024Mi"));
        assert_eq!(milli("1000m"), milli("1"));
    }

    #[test]
    fn malformed_quantities_count_as_zero() {
        assert_eq!(milli_or_zero("lots"), 0);
        assert_eq!(milli_or_zero("250m"), 250);
    }
}
