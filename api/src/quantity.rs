//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`), parsed to
//! an exact count of nano-units so requests and limits compare without rounding
//! surprises. Fractions finer than a nano-unit round up, as Kubernetes does.
//! One parser for every reader: admission, the scheduler, the node's cgroups.

/// The message Kubernetes gives for a malformed quantity.
pub const QUANTITY_SYNTAX: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity in nano-units (1 = 10⁻⁹).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(pub i128);

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);

    /// Parses a quantity; `None` when it is malformed or absurdly large.
    pub fn parse(s: &str) -> Option<Quantity> {
        let (neg, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_len);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        let (mul, div) = suffix_scale(suffix)?;
        // value = (int.frac) * mul / div, in nano-units, rounded up.
        let digits = format!("{int}{frac}");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let frac_div = 10i128.checked_pow(frac.len() as u32)?;
        let num = mantissa.checked_mul(mul)?.checked_mul(NANO)?;
        let den = frac_div.checked_mul(div)?;
        let v = (num + den - 1) / den;
        Some(Quantity(if neg { -v } else { v }))
    }

    /// True when the quantity is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// In milli-units (millicores, millibytes), rounded up as Kubernetes'
    /// `MilliValue`: cpu and memory then compare in one integer type.
    pub fn milli(self) -> i128 {
        ceil_div(self.0, NANO / 1000)
    }

    /// In base units (bytes, cores), rounded up as Kubernetes' `Value`.
    pub fn value(self) -> i128 {
        ceil_div(self.0, NANO)
    }
}

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 {
        q + 1
    } else {
        q
    }
}

/// The multiplier and divisor a suffix stands for.
fn suffix_scale(s: &str) -> Option<(i128, i128)> {
    let bin = |p: u32| Some((1i128 << p, 1));
    let dec = |p: u32| Some((10i128.pow(p), 1));
    match s {
        "" => dec(0),
        "n" => Some((1, NANO)),
        "u" => Some((1, 1_000_000)),
        "m" => Some((1, 1000)),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let exp = s.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let e: i32 = exp.parse().ok()?;
            if e.abs() > 30 {
                return None;
            }
            let p = 10i128.pow(e.unsigned_abs());
            Some(if e >= 0 { (p, 1) } else { (1, p) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(NANO)),
            ("100m", Some(NANO / 10)),
            ("1.5", Some(3 * NANO / 2)),
            ("0.1", Some(NANO / 10)),
            ("128Mi", Some(128 * (1 << 20) * NANO)),
            ("1G", Some(1_000_000_000 * NANO)),
            ("1Ki", Some(1024 * NANO)),
            ("2e3", Some(2000 * NANO)),
            ("2E-3", Some(2 * NANO / 1000)),
            ("-1", Some(-NANO)),
            ("+5", Some(5 * NANO)),
            ("1n", Some(1)),
            ("0.5n", Some(1)),
            (".5", Some(NANO / 2)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("1Zi", None),
            ("1e", None),
            ("12 Mi", None),
            (".", None),
            ("1e999", None),
        ];
        for (s, want) in cases {
            assert_eq!(Quantity::parse(s).map(|q| q.0), *want, "{s:?}");
        }
        assert!(Quantity::parse("500m") < Quantity::parse("1"));
        assert_eq!(Quantity::parse("1000m"), Quantity::parse("1"));
        assert_eq!(Quantity::parse("1Gi"), Quantity::parse("1024Mi"));
    }

    #[test]
    fn quantities_read_as_milli_units() {
        let milli = |s: &str| Quantity::parse(s).map(Quantity::milli);
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
        assert_eq!(Quantity::parse("1.5Gi").map(Quantity::value), Some(3 << 29));
    }
}
