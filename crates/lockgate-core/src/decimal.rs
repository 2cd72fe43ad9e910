//! Exact decimals, kept as validated text so that no digit is ever lost.
//!
//! `rust_decimal` stops at 28 digits while MariaDB's DECIMAL reaches 65, so the
//! value is a normalized string: an optional `-`, integer digits without leading
//! zeros, and an optional fraction whose trailing zeros are kept (they carry the
//! scale). Equality is numeric: `1.50 == 1.5`.

use std::cmp::Ordering;
use std::fmt;

/// The widest decimal the three engines share (MariaDB's DECIMAL(65,30)).
pub const MAX_PRECISION: u32 = 65;
/// The largest scale the three engines share.
pub const MAX_SCALE: u32 = 30;

/// An exact decimal number.
#[derive(Clone, Debug, Eq)]
pub struct Decimal {
    /// Invariant: `^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`, and never `-0` with an all-zero fraction.
    text: String,
}

impl Decimal {
    /// Parses `1`, `-1.50`, `+.5`, `1e3`, `2.5E-2` into an exact decimal. Returns
    /// `None` for anything else (NaN and infinities are not decimals).
    pub fn parse(input: &str) -> Option<Decimal> {
        if let Some(d) = Decimal::parse_plain(input) {
            return Some(d);
        }
        Decimal::parse_general(input)
    }

    /// The common form (`123.45`, `-7`, no exponent, no leading zeros, no sign
    /// before zero) in one allocation; anything else goes the general way.
    fn parse_plain(s: &str) -> Option<Decimal> {
        let b = s.as_bytes();
        let digits = b.strip_prefix(b"-").unwrap_or(b);
        let (int, frac) = match digits.iter().position(|&c| c == b'.') {
            Some(p) => (&digits[..p], &digits[p + 1..]),
            None => (digits, &digits[digits.len()..]),
        };
        let plain = !int.is_empty()
            && (int == b"0" || int[0] != b'0')
            && (digits.len() == int.len() || !frac.is_empty())
            && int.iter().chain(frac).all(u8::is_ascii_digit);
        let negative_zero = b.len() != digits.len() && int == b"0" && frac.iter().all(|&c| c == b'0');
        (plain && !negative_zero).then(|| Decimal { text: s.to_string() })
    }

    fn parse_general(input: &str) -> Option<Decimal> {
        let s = input.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], s[at + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Apply the exponent by moving the point; guard against absurd exponents.
        if exponent.unsigned_abs() > 400 {
            return None;
        }
        let mut digits: String = format!("{int_part}{frac_part}");
        let mut point = int_part.len() as i64 + exponent as i64;
        if point < 0 {
            digits = "0".repeat((-point) as usize) + &digits;
            point = 0;
        }
        if point as usize > digits.len() {
            digits.push_str(&"0".repeat(point as usize - digits.len()));
        }
        let (i, f) = digits.split_at(point as usize);
        let i = i.trim_start_matches('0');
        let i = if i.is_empty() { "0" } else { i };
        let all_zero = i == "0" && f.bytes().all(|b| b == b'0');
        let mut text = String::with_capacity(digits.len() + 2);
        if negative && !all_zero {
            text.push('-');
        }
        text.push_str(i);
        if !f.is_empty() {
            text.push('.');
            text.push_str(f);
        }
        Some(Decimal { text })
    }

    /// Converts a finite float through its shortest round-trip text.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        Decimal::parse(&format!("{v}"))
    }

    /// The normalized text, e.g. `-12.50`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the number is negative.
    pub fn is_negative(&self) -> bool {
        self.text.starts_with('-')
    }

    fn parts(&self) -> (&str, &str) {
        let unsigned = self.text.trim_start_matches('-');
        match unsigned.find('.') {
            Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
            None => (unsigned, ""),
        }
    }

    /// Digits after the point, trailing zeros included.
    pub fn scale(&self) -> u32 {
        self.parts().1.len() as u32
    }

    /// Digits after the point that matter (trailing zeros dropped).
    pub fn significant_scale(&self) -> u32 {
        self.parts().1.trim_end_matches('0').len() as u32
    }

    /// Digits before the point (0 for `0.5`).
    pub fn integer_digits(&self) -> u32 {
        let i = self.parts().0;
        if i == "0" {
            0
        } else {
            i.len() as u32
        }
    }

    /// Significant digits in all, as SQLite's 15-digit REAL conversion counts them.
    pub fn significant_digits(&self) -> u32 {
        // The integer part has no leading zeros unless it is `0`; counted in place,
        // as this runs for every float and SQLite numeric a load checks.
        let (i, f) = self.parts();
        let f = f.trim_end_matches('0');
        let n = if i == "0" {
            f.trim_start_matches('0').len()
        } else {
            i.len() + f.len()
        };
        n.max(1) as u32
    }

    /// The same number written with exactly `scale` fraction digits, or `None` when
    /// that would drop a non-zero digit.
    pub fn with_scale(&self, scale: u32) -> Option<Decimal> {
        if self.significant_scale() > scale {
            return None;
        }
        let (i, f) = self.parts();
        let mut f = f.trim_end_matches('0').to_string();
        while (f.len() as u32) < scale {
            f.push('0');
        }
        let text = if f.is_empty() {
            format!("{}{i}", if self.is_negative() { "-" } else { "" })
        } else {
            format!("{}{i}.{f}", if self.is_negative() { "-" } else { "" })
        };
        Decimal::parse(&text)
    }

    /// The number rounded to `scale` fraction digits, halves away from zero, as
    /// PostgreSQL's numeric and MariaDB's DECIMAL round: what such a column would
    /// store (for messages that show it).
    pub fn round(&self, scale: u32) -> Decimal {
        if let Some(d) = self.with_scale(scale) {
            return d;
        }
        let (i, f) = self.parts();
        let scale = scale as usize;
        let mut digits: Vec<u8> = i.bytes().chain(f.bytes().take(scale)).collect();
        if f.as_bytes()[scale] >= b'5' {
            // Carry from the last kept digit leftwards; a carry out of the first adds a digit.
            let mut at = digits.len();
            loop {
                if at == 0 {
                    digits.insert(0, b'1');
                    break;
                }
                at -= 1;
                if digits[at] == b'9' {
                    digits[at] = b'0';
                } else {
                    digits[at] += 1;
                    break;
                }
            }
        }
        let point = digits.len() - scale;
        let mut text = String::with_capacity(digits.len() + 2);
        if self.is_negative() {
            text.push('-');
        }
        text.push_str(std::str::from_utf8(&digits[..point]).expect("digits"));
        if scale > 0 {
            text.push('.');
            text.push_str(std::str::from_utf8(&digits[point..]).expect("digits"));
        }
        // The general parser drops leading zeros and the sign of a zero.
        Decimal::parse(&text).expect("rounded digits form a decimal")
    }

    /// The value as a float (lossy; for display and float columns only).
    pub fn to_f64(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// The value as an integer when it has no fraction and fits.
    pub fn to_i64(&self) -> Option<i64> {
        if self.significant_scale() > 0 {
            return None;
        }
        let (i, _) = self.parts();
        let sign = if self.is_negative() { "-" } else { "" };
        format!("{sign}{i}").parse().ok()
    }

    fn normalized_key(&self) -> (bool, &str, &str) {
        let (i, f) = self.parts();
        (self.is_negative(), i, f.trim_end_matches('0'))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.normalized_key() == other.normalized_key()
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let (an, ai, af) = self.normalized_key();
        let (bn, bi, bf) = other.normalized_key();
        let magnitude = ai.len().cmp(&bi.len()).then(ai.cmp(bi)).then(af.cmp(bf));
        match (an, bn) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Decimal::parse(s)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn parses_and_normalizes() {
        let cases = [
            ("1", "1"),
            ("-1.50", "-1.50"),
            ("+.5", "0.5"),
            ("007.10", "7.10"),
            ("-0.00", "0.00"),
            ("1e3", "1000"),
            ("2.5E-2", "0.025"),
            ("12345678901234567890.123456789", "12345678901234567890.123456789"),
            ("abc", "none"),
            ("", "none"),
            ("1.2.3", "none"),
            ("NaN", "none"),
            (".", "none"),
        ];
        for (input, expect) in cases {
            assert_eq!(norm(input), expect, "input {input:?}");
        }
    }

    /// The one-allocation fast path agrees with the general parser wherever it applies.
    #[test]
    fn plain_fast_path_agrees_with_the_general_parser() {
        for s in [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "-0.5",
            "12.50",
            "007",
            "1.",
            ".5",
            "-",
            "1e3",
            "+1",
            "123456789012345678901234567890.1",
            "1a",
            "",
        ] {
            if let Some(fast) = Decimal::parse_plain(s) {
                let general = Decimal::parse_general(s).expect("the general parser accepts what the fast one does");
                assert_eq!(fast.as_str(), general.as_str(), "{s:?}");
            }
            assert_eq!(
                Decimal::parse(s).map(|d| d.text),
                Decimal::parse_general(s).map(|d| d.text),
                "{s:?}"
            );
        }
    }

    #[test]
    fn compares_numerically() {
        let d = |s| Decimal::parse(s).unwrap();
        assert_eq!(d("1.50"), d("1.5"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("10") > d("9.99"));
        assert_eq!(d("2.5").with_scale(2).unwrap().as_str(), "2.50");
        assert!(d("2.555").with_scale(2).is_none());
        assert_eq!(d("2.555").round(2).as_str(), "2.56");
        assert_eq!(d("-2.554").round(2).as_str(), "-2.55");
        assert_eq!(d("9.95").round(1).as_str(), "10.0");
        assert_eq!(d("-0.4").round(0).as_str(), "0");
        assert_eq!(d("99.5").round(0).as_str(), "100");
        assert_eq!(d("1.5").round(3).as_str(), "1.500");
        assert_eq!(d("123.4500").significant_digits(), 5);
        assert_eq!(d("0.001").integer_digits(), 0);
    }
}
