//! Whether a column of one [`Kind`] holds every value of another: the type rule of
//! the destination check (`transfer check`). A column that cannot hold every value
//! of its source's type is reported before anything runs; the values that then do
//! not fit are each that row's error (`Kind::check`), never silently changed.

use crate::decimal;
use crate::value::{Kind, Labels, TextForm, MAX_FSP};

/// The numbers a numeric kind holds: how many digits before and after the point,
/// and how many significant digits in all it keeps exactly.
#[derive(Clone, Copy, Debug)]
struct Digits {
    /// Integer digits (before the point).
    int: u32,
    /// Fraction digits (after the point).
    frac: u32,
    /// Significant digits kept exactly (the float widths' 15 and 6, SQLite's 15).
    significant: u32,
}

/// The largest magnitude of an integer kind, within the shared domain (signed 64
/// bits: a BIGINT UNSIGNED past it is an error anyway).
fn int_max(bytes: u8, unsigned: bool) -> u128 {
    let bits = u32::from(bytes) * 8;
    let max: u128 = if unsigned {
        (1u128 << bits) - 1
    } else {
        1u128 << (bits - 1)
    };
    max.min(i64::MAX as u128 + 1)
}

/// Decimal digits of an integer kind's largest magnitude.
fn int_digits(bytes: u8, unsigned: bool) -> u32 {
    int_max(bytes, unsigned).to_string().len() as u32
}

/// A decimal kind's digits; an unbounded one holds the shared domain (DECIMAL(65,30)
/// as values: 65 digits in all, at most 30 after the point).
fn decimal_digits(precision: Option<u32>, scale: Option<u32>, max_significant: Option<u32>) -> Digits {
    let (int, frac) = match precision {
        Some(p) => {
            let s = scale.unwrap_or(0);
            (p.saturating_sub(s), s)
        }
        None => (decimal::MAX_PRECISION, decimal::MAX_SCALE),
    };
    let total = precision.unwrap_or(decimal::MAX_PRECISION);
    Digits {
        int,
        frac,
        significant: max_significant.map_or(total, |m| m.min(total)),
    }
}

/// The longest text a value of `k` is written as (`Value`'s Display), when bounded.
fn text_len(k: &Kind) -> Option<u64> {
    let fraction = |fsp: u8| match fsp {
        0 => 0,
        1..=3 => 4,
        _ => 7,
    };
    Some(match k {
        Kind::Bool => 5,
        Kind::Int { bytes, unsigned } => u64::from(int_digits(*bytes, *unsigned)) + u64::from(!*unsigned),
        Kind::Decimal {
            precision: Some(p),
            scale,
            ..
        } => u64::from(*p) + 2 + u64::from(scale.unwrap_or(0) == *p),
        Kind::Date => 10,
        Kind::Time { fsp } => 8 + fraction(*fsp),
        Kind::Timestamp { fsp } => 19 + fraction(*fsp),
        Kind::TimestampTz { fsp, .. } => 25 + fraction(*fsp),
        Kind::Uuid => 36,
        Kind::Text { max_chars: Some(n), .. } => *n,
        // Floats are written out in full (1e300 has 301 digits); the rest is unbounded.
        _ => return None,
    })
}

/// Why a column of kind `to` cannot hold every value of kind `from`, or `None` when
/// it can. Untyped sides (`Any`: an SQLite column without a type, an expression)
/// say nothing in advance. Unsupported types are the check's own error.
pub fn narrowing(from: &Kind, to: &Kind) -> Option<String> {
    use Kind as K;
    if from == to {
        return None;
    }
    match (from, to) {
        (K::Any, _) | (_, K::Any) | (K::Unsupported { .. }, _) | (_, K::Unsupported { .. }) => None,
        (
            K::Text {
                max_chars: from_chars,
                max_bytes: from_bytes,
                form: from_form,
            },
            K::Text {
                max_chars,
                max_bytes,
                form,
            },
        ) => {
            // Every reason, not the first: each is a different set of values refused.
            let mut reasons = Vec::new();
            if let Some(why) = form_narrowing(from_form, form, to) {
                reasons.push(why);
            }
            let (from_chars, from_bytes) = text_bounds(*from_chars, *from_bytes, from_form);
            if let Some(to_chars) = max_chars {
                // A byte-bounded text holds at most as many characters as bytes.
                match from_chars.or(from_bytes) {
                    Some(n) if n <= *to_chars => {}
                    Some(n) => reasons.push(format!("texts of up to {n} characters do not all fit {to_chars}")),
                    None => reasons.push(format!("texts longer than {to_chars} characters do not fit")),
                }
            }
            if let Some(to_bytes) = max_bytes {
                // UTF-8 takes up to 4 bytes a character (utf8mb4).
                match from_bytes.or(from_chars.map(|n| n * 4)) {
                    Some(n) if n <= *to_bytes => {}
                    _ => reasons.push(format!("texts longer than {to_bytes} bytes do not fit")),
                }
            }
            (!reasons.is_empty()).then(|| reasons.join("; "))
        }
        (K::Text { .. }, to) => Some(format!(
            "text is read as {}: a text that is not one is that row's error",
            to.describe()
        )),
        (
            from,
            K::Text {
                max_chars,
                max_bytes,
                form,
            },
        ) => {
            let limit = match (max_chars, max_bytes) {
                (Some(c), Some(b)) => Some((*c).min(*b)),
                (c, b) => c.or(*b),
            };
            match (from, limit) {
                (K::Bytes { .. }, _) => Some("bytes are not text: each such value is that row's error".into()),
                // A number or a date is no label unless it happens to be written as one.
                _ if matches!(form, TextForm::Enum(_) | TextForm::Set(_)) => Some(format!(
                    "{} values are not labels of {}: each that is not one is that row's error",
                    from.describe(),
                    to.describe()
                )),
                (_, None) => None,
                (from, Some(limit)) => match text_len(from) {
                    Some(n) if n <= limit => None,
                    _ => Some(format!(
                        "{} values can be longer than the {limit} characters the column holds",
                        from.describe()
                    )),
                },
            }
        }
        (K::Bool, K::Int { .. } | K::Float { .. }) => None,
        (
            K::Bool,
            K::Decimal {
                precision,
                scale,
                max_significant,
            },
        ) => {
            let d = decimal_digits(*precision, *scale, *max_significant);
            (d.int < 1).then(|| format!("{} holds no 1", to.describe()))
        }
        (K::Int { .. } | K::Float { .. } | K::Decimal { .. }, K::Bool) => {
            Some("a boolean column holds only 0 and 1".into())
        }
        (
            K::Int {
                bytes: fb,
                unsigned: fu,
            },
            K::Int {
                bytes: tb,
                unsigned: tu,
            },
        ) => {
            let fits = if *tu {
                *fu && int_max(*fb, true) <= int_max(*tb, true)
            } else if *fu {
                int_max(*fb, true) < int_max(*tb, false)
            } else {
                int_max(*fb, false) <= int_max(*tb, false)
            };
            (!fits).then(|| {
                format!(
                    "{} values can be outside the range of {}",
                    from.describe(),
                    to.describe()
                )
            })
        }
        (K::Float { .. }, K::Int { .. }) => Some(format!(
            "floats with a fraction or past the range of {} are errors",
            to.describe()
        )),
        (
            K::Decimal {
                precision,
                scale,
                max_significant,
            },
            K::Int { bytes, unsigned },
        ) => {
            let d = decimal_digits(*precision, *scale, *max_significant);
            if d.frac > 0 {
                Some("decimals with a fraction are errors: an integer column would round them".into())
            } else if d.int >= int_digits(*bytes, *unsigned) {
                Some(format!(
                    "decimals of {} digits can be outside the range of {}",
                    d.int,
                    to.describe()
                ))
            } else {
                None
            }
        }
        (
            K::Int {
                bytes: fb,
                unsigned: fu,
            },
            K::Float { bytes: tb },
        ) => {
            let exact_bits = if *tb == 4 { 24 } else { 53 };
            (int_max(*fb, *fu) > 1u128 << exact_bits).then(|| {
                format!(
                    "integers past 2^{exact_bits} do not fit a {} exactly (it would store a neighbour)",
                    to.describe()
                )
            })
        }
        (K::Float { bytes: 4 }, K::Float { bytes: 8 }) => None,
        (K::Float { .. }, K::Float { .. }) => {
            Some("a float32 keeps about 7 significant digits: doubles that need more are errors".into())
        }
        (
            K::Decimal {
                precision,
                scale,
                max_significant,
            },
            K::Float { bytes },
        ) => {
            let d = decimal_digits(*precision, *scale, *max_significant);
            let exact = if *bytes == 4 { 6 } else { 15 };
            let total = d.significant.min(d.int + d.frac);
            (total > exact).then(|| {
                format!(
                    "decimals of {total} significant digits do not all fit a {} exactly (it keeps {exact})",
                    to.describe()
                )
            })
        }
        (
            K::Int { bytes, unsigned },
            K::Decimal {
                precision,
                scale,
                max_significant,
            },
        ) => {
            let d = decimal_digits(*precision, *scale, *max_significant);
            let need = int_digits(*bytes, *unsigned);
            (need > d.int.min(d.significant)).then(|| {
                format!(
                    "integers of {need} digits do not all fit {} (at most {} digits before the point)",
                    to.describe(),
                    d.int.min(d.significant)
                )
            })
        }
        (K::Float { .. }, K::Decimal { .. }) => {
            Some(format!("floats can be larger or finer than {} holds", to.describe()))
        }
        (
            K::Decimal {
                precision: fp,
                scale: fs,
                max_significant: fm,
            },
            K::Decimal {
                precision: tp,
                scale: ts,
                max_significant: tm,
            },
        ) => {
            let f = decimal_digits(*fp, *fs, *fm);
            let t = decimal_digits(*tp, *ts, *tm);
            if f.frac > t.frac && tp.is_some() {
                Some(format!(
                    "decimals with more than {} decimal places are errors (the column would round them)",
                    t.frac
                ))
            } else if f.int > t.int {
                Some(format!(
                    "decimals with more than {} digits before the point do not fit",
                    t.int
                ))
            } else if f.significant.min(f.int + f.frac) > t.significant {
                Some(format!(
                    "decimals of more than {} significant digits are errors (the column keeps {})",
                    t.significant, t.significant
                ))
            } else {
                None
            }
        }
        (K::Date, K::Timestamp { .. }) => None,
        (K::Date, K::TimestampTz { epoch32, .. }) => epoch32.then(epoch32_note),
        (K::Timestamp { fsp: f } | K::TimestampTz { fsp: f, .. }, K::Timestamp { fsp: t }) => fraction_note(*f, *t),
        (K::Timestamp { fsp: f } | K::TimestampTz { fsp: f, .. }, K::TimestampTz { epoch32, fsp: t }) => {
            let from_epoch32 = matches!(from, K::TimestampTz { epoch32: true, .. });
            // Every reason, not the first: each is a different set of values refused.
            let reasons: Vec<String> = [fraction_note(*f, *t), (*epoch32 && !from_epoch32).then(epoch32_note)]
                .into_iter()
                .flatten()
                .collect();
            (!reasons.is_empty()).then(|| reasons.join("; "))
        }
        (K::Time { fsp: f }, K::Time { fsp: t }) => fraction_note(*f, *t),
        (K::Timestamp { .. } | K::TimestampTz { .. }, K::Date) => {
            Some("a date column keeps no time of day: only midnights fit".into())
        }
        (
            K::Bytes {
                max_bytes: f,
                fixed: from_fixed,
            },
            K::Bytes {
                max_bytes: Some(t),
                fixed,
            },
        ) => {
            let mut reasons = Vec::new();
            match f {
                Some(n) if n <= t => {}
                _ => reasons.push(format!("values longer than {t} bytes do not fit")),
            }
            // Only values of exactly t bytes read back from binary(t) as written.
            if *fixed && !(*from_fixed && *f == Some(*t)) {
                reasons.push(format!(
                    "values shorter than {t} bytes are errors: binary({t}) pads them with zero bytes"
                ));
            }
            (!reasons.is_empty()).then(|| reasons.join("; "))
        }
        (K::Bytes { .. }, K::Bytes { max_bytes: None, .. }) => None,
        (K::Json, K::Json) | (K::Uuid, K::Uuid) | (K::Bool, K::Bool) | (K::Date, K::Date) => None,
        (from, to) => Some(format!(
            "{} values are not {}: each such value is that row's error",
            from.describe(),
            to.describe()
        )),
    }
}

/// The longest text (characters, bytes) of a text kind: its limits, or for labels
/// the longest label (ENUM) or all of them joined (SET).
fn text_bounds(max_chars: Option<u64>, max_bytes: Option<u64>, form: &TextForm) -> (Option<u64>, Option<u64>) {
    let (chars, bytes) = match form {
        TextForm::Enum(labels) => (
            labels.iter().map(|l| l.chars().count() as u64).max().unwrap_or(0),
            labels.iter().map(|l| l.len() as u64).max().unwrap_or(0),
        ),
        TextForm::Set(labels) => {
            let commas = labels.len().saturating_sub(1) as u64;
            (
                labels.iter().map(|l| l.chars().count() as u64).sum::<u64>() + commas,
                labels.iter().map(|l| l.len() as u64).sum::<u64>() + commas,
            )
        }
        TextForm::Free | TextForm::Padded => return (max_chars, max_bytes),
    };
    (
        Some(max_chars.map_or(chars, |m| m.min(chars))),
        Some(max_bytes.map_or(bytes, |m| m.min(bytes))),
    )
}

/// Why a text column of form `to_form` (the column `to`) does not give back every
/// text a column of form `from` holds, as written.
fn form_narrowing(from: &TextForm, to_form: &TextForm, to: &Kind) -> Option<String> {
    let has = |labels: &Labels, l: &String| labels.position(l).is_some();
    match (from, to_form) {
        (_, TextForm::Free) => None,
        (TextForm::Padded, TextForm::Padded) => None,
        (TextForm::Enum(f) | TextForm::Set(f), TextForm::Padded) if !f.iter().any(|l| l.ends_with(' ')) => None,
        // Not an error: the engines count them as padding (TextForm::Padded), but the
        // text that arrives is not the text sent.
        (_, TextForm::Padded) => Some(format!(
            "trailing spaces are dropped: {} pads values with spaces and gives them back without",
            to.describe()
        )),
        (TextForm::Enum(f), TextForm::Enum(t) | TextForm::Set(t)) if f.iter().all(|l| has(t, l)) => None,
        // A set's members in the same order, each a label of the destination.
        (TextForm::Set(f), TextForm::Set(t)) if f.iter().all(|l| has(t, l)) => {
            let at: Vec<usize> = f.iter().filter_map(|l| t.position(l)).collect();
            if at.windows(2).all(|w| w[0] < w[1]) {
                None
            } else {
                Some(format!(
                    "{} orders its members differently: sets of more than one are errors",
                    to.describe()
                ))
            }
        }
        (_, TextForm::Enum(_)) => Some(format!(
            "only the labels of {} fit, exactly: other texts are errors",
            to.describe()
        )),
        (_, TextForm::Set(_)) => Some(format!(
            "only the labels of {} fit, joined by commas in its order: other texts are errors",
            to.describe()
        )),
    }
}

fn fraction_note(from: u8, to: u8) -> Option<String> {
    (from > to).then(|| {
        let keeps = match to {
            0 => "whole seconds".to_string(),
            n if n >= MAX_FSP => "microseconds".to_string(),
            1 => "1 fractional digit".to_string(),
            n => format!("{n} fractional digits"),
        };
        format!("the column keeps {keeps}: values with a finer fraction of a second are errors")
    })
}

fn epoch32_note() -> String {
    "MariaDB TIMESTAMP holds 1970–2038 only: values outside are errors".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(bytes: u8, unsigned: bool) -> Kind {
        Kind::Int { bytes, unsigned }
    }

    fn dec(p: u32, s: u32) -> Kind {
        Kind::Decimal {
            precision: Some(p),
            scale: Some(s),
            max_significant: None,
        }
    }

    fn text(n: Option<u64>) -> Kind {
        Kind::Text {
            max_chars: n,
            max_bytes: None,
            form: TextForm::Free,
        }
    }

    #[test]
    fn holds_every_value_or_says_why_not() {
        let f4 = || Kind::Float { bytes: 4 };
        let f8 = || Kind::Float { bytes: 8 };
        let ts = |fsp| Kind::Timestamp { fsp };
        let tz = |epoch32, fsp| Kind::TimestampTz { epoch32, fsp };
        let fits: Vec<(Kind, Kind)> = vec![
            (int(4, false), int(8, false)),
            (int(4, true), int(8, false)),
            (int(2, false), f4()),
            (int(4, false), f8()),
            (int(4, false), dec(10, 0)),
            (int(8, false), dec(19, 0)),
            (dec(12, 2), dec(14, 4)),
            (dec(15, 2), f8()),
            (f4(), f8()),
            (text(Some(50)), text(Some(100))),
            (text(Some(50)), text(None)),
            (
                text(Some(100)),
                Kind::Text {
                    max_chars: None,
                    max_bytes: Some(65_535),
                    form: TextForm::Free,
                },
            ),
            (ts(3), ts(6)),
            (Kind::Date, ts(0)),
            (Kind::Time { fsp: 0 }, Kind::Time { fsp: 6 }),
            (int(4, false), text(Some(11))),
            (Kind::Date, text(Some(10))),
            (Kind::Any, int(1, false)),
            (Kind::Json, text(None)),
        ];
        for (from, to) in &fits {
            assert_eq!(narrowing(from, to), None, "{from:?} -> {to:?}");
        }
        let narrows: Vec<(Kind, Kind, &str)> = vec![
            (
                int(8, false),
                int(4, false),
                "int64 values can be outside the range of int32",
            ),
            (
                int(4, false),
                int(4, true),
                "int32 values can be outside the range of int32 unsigned",
            ),
            (
                int(8, false),
                f8(),
                "integers past 2^53 do not fit a float64 exactly (it would store a neighbour)",
            ),
            (
                int(4, false),
                f4(),
                "integers past 2^24 do not fit a float32 exactly (it would store a neighbour)",
            ),
            (
                f8(),
                f4(),
                "a float32 keeps about 7 significant digits: doubles that need more are errors",
            ),
            (
                dec(12, 4),
                dec(12, 2),
                "decimals with more than 2 decimal places are errors (the column would round them)",
            ),
            (
                dec(20, 2),
                dec(12, 2),
                "decimals with more than 10 digits before the point do not fit",
            ),
            (
                dec(20, 2),
                f8(),
                "decimals of 20 significant digits do not all fit a float64 exactly (it keeps 15)",
            ),
            (
                text(Some(200)),
                text(Some(50)),
                "texts of up to 200 characters do not all fit 50",
            ),
            (text(None), text(Some(50)), "texts longer than 50 characters do not fit"),
            (
                text(None),
                Kind::Text {
                    max_chars: None,
                    max_bytes: Some(65_535),
                    form: TextForm::Free,
                },
                "texts longer than 65535 bytes do not fit",
            ),
            (
                ts(6),
                ts(0),
                "the column keeps whole seconds: values with a finer fraction of a second are errors",
            ),
            (
                tz(false, 6),
                tz(true, 3),
                "the column keeps 3 fractional digits: values with a finer fraction of a second are errors; \
                 MariaDB TIMESTAMP holds 1970–2038 only: values outside are errors",
            ),
            (
                tz(false, 6),
                tz(true, 1),
                "the column keeps 1 fractional digit: values with a finer fraction of a second are errors; \
                 MariaDB TIMESTAMP holds 1970–2038 only: values outside are errors",
            ),
            (
                tz(true, 6),
                tz(true, 1),
                "the column keeps 1 fractional digit: values with a finer fraction of a second are errors",
            ),
            (
                ts(0),
                tz(true, 0),
                "MariaDB TIMESTAMP holds 1970–2038 only: values outside are errors",
            ),
            (
                ts(6),
                Kind::Date,
                "a date column keeps no time of day: only midnights fit",
            ),
            (
                int(8, false),
                text(Some(5)),
                "int64 values can be longer than the 5 characters the column holds",
            ),
            (
                text(None),
                int(4, false),
                "text is read as int32: a text that is not one is that row's error",
            ),
            (
                Kind::Uuid,
                int(4, false),
                "uuid values are not int32: each such value is that row's error",
            ),
            (
                Kind::Bytes {
                    max_bytes: None,
                    fixed: false,
                },
                text(None),
                "bytes are not text: each such value is that row's error",
            ),
            (
                Kind::Json,
                text(Some(100)),
                "json values can be longer than the 100 characters the column holds",
            ),
        ];
        for (from, to, why) in &narrows {
            assert_eq!(narrowing(from, to).as_deref(), Some(*why), "{from:?} -> {to:?}");
        }
    }

    /// Fixed-width text, labels and fixed-width bytes: a destination that gives back
    /// only some texts as written narrows every source that holds others.
    #[test]
    fn padded_labelled_and_fixed_destinations_narrow_free_sources() {
        let labels = |ls: &[&str]| Labels::new(ls.iter().map(|l| l.to_string()).collect());
        let with = |max_chars: Option<u64>, form: TextForm| Kind::Text {
            max_chars,
            max_bytes: None,
            form,
        };
        let char5 = with(Some(5), TextForm::Padded);
        let ab = with(None, TextForm::Enum(labels(&["a", "b"])));
        let abc = with(None, TextForm::Enum(labels(&["a", "b", "c"])));
        let set_abc = with(None, TextForm::Set(labels(&["a", "b", "c"])));
        let set_ca = with(None, TextForm::Set(labels(&["c", "a"])));
        let set_ac = with(None, TextForm::Set(labels(&["a", "c"])));
        let bytes = |max_bytes, fixed| Kind::Bytes { max_bytes, fixed };
        let fits: Vec<(Kind, Kind)> = vec![
            (char5.clone(), char5.clone()),
            (char5.clone(), text(Some(5))),
            (with(Some(3), TextForm::Padded), char5.clone()),
            (ab.clone(), abc.clone()),
            (ab.clone(), set_abc.clone()),
            (ab.clone(), char5.clone()),
            (ab.clone(), text(Some(1))),
            (set_ac.clone(), set_abc.clone()),
            (set_abc.clone(), text(Some(5))),
            (bytes(Some(4), true), bytes(Some(4), true)),
            (bytes(Some(4), true), bytes(None, false)),
            (bytes(Some(2), false), bytes(Some(4), false)),
        ];
        for (from, to) in &fits {
            assert_eq!(narrowing(from, to), None, "{from:?} -> {to:?}");
        }
        let narrows: Vec<(Kind, Kind, &str)> = vec![
            (
                text(Some(5)),
                char5.clone(),
                "trailing spaces are dropped: char(5) pads values with spaces and gives them back without",
            ),
            (
                with(None, TextForm::Enum(labels(&["a ", "b"]))),
                char5.clone(),
                "trailing spaces are dropped: char(5) pads values with spaces and gives them back without",
            ),
            (
                text(None),
                char5.clone(),
                "trailing spaces are dropped: char(5) pads values with spaces and gives them back without; \
                 texts longer than 5 characters do not fit",
            ),
            (
                text(Some(10)),
                ab.clone(),
                "only the labels of enum('a','b') fit, exactly: other texts are errors",
            ),
            (
                char5.clone(),
                ab.clone(),
                "only the labels of enum('a','b') fit, exactly: other texts are errors",
            ),
            (
                abc.clone(),
                ab.clone(),
                "only the labels of enum('a','b') fit, exactly: other texts are errors",
            ),
            (
                text(None),
                set_abc.clone(),
                "only the labels of set('a','b','c') fit, joined by commas in its order: other texts are errors",
            ),
            (
                set_abc.clone(),
                set_ac.clone(),
                "only the labels of set('a','c') fit, joined by commas in its order: other texts are errors",
            ),
            (
                set_ac.clone(),
                set_ca.clone(),
                "set('c','a') orders its members differently: sets of more than one are errors",
            ),
            (
                set_abc.clone(),
                text(Some(3)),
                "texts of up to 5 characters do not all fit 3",
            ),
            (
                int(4, false),
                ab.clone(),
                "int32 values are not labels of enum('a','b'): each that is not one is that row's error",
            ),
            (
                bytes(None, false),
                bytes(Some(4), true),
                "values longer than 4 bytes do not fit; \
                 values shorter than 4 bytes are errors: binary(4) pads them with zero bytes",
            ),
            (
                bytes(Some(4), false),
                bytes(Some(4), true),
                "values shorter than 4 bytes are errors: binary(4) pads them with zero bytes",
            ),
            (
                bytes(Some(2), true),
                bytes(Some(4), true),
                "values shorter than 4 bytes are errors: binary(4) pads them with zero bytes",
            ),
        ];
        for (from, to, why) in &narrows {
            assert_eq!(narrowing(from, to).as_deref(), Some(*why), "{from:?} -> {to:?}");
        }
    }
}
