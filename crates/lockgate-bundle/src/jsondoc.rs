//! Helpers shared by the bundle's JSON documents (`meta.json` and model definitions): the
//! check that a document is one object, descriptions of JSON values for messages, and
//! `serde` visitor pieces that keep `serde_json`'s positions in errors.
//!
//! Both documents are read with hand-written visitors rather than through
//! `serde_json::Value`: errors raised inside a visitor get the line and column where the
//! parser stands (just after the offending value), and maps are seen in the file's order
//! (`serde_json` here has no `preserve_order`).

use std::path::Path;

use serde_json::Value;

use crate::BundleError;

/// The key under which `serde_json` with `arbitrary_precision` hands a number to
/// `Visitor::visit_map`: a visitor that sees it as the first key was given a number.
pub(crate) const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Checks that `text` (without a byte order mark) is one JSON object before it is read.
///
/// Errors: empty text; a syntax error (with its place); valid JSON that is not an object,
/// at the place where it starts. `example` ends the message "is not a JSON object: …".
pub(crate) fn check_object_text(path: &Path, text: &str, empty: &str, example: &str) -> Result<(), BundleError> {
    let Some(start) = text.find(|c: char| !c.is_ascii_whitespace()) else {
        return Err(BundleError::invalid(path, empty));
    };
    if text[start..].starts_with('{') {
        return Ok(());
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(BundleError::from_json(path, &error));
    }
    let line = text[..start].matches('\n').count() as u64 + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |newline| newline + 1);
    let column = (start - line_start) as u64 + 1;
    Err(BundleError::invalid_at(
        path,
        line,
        column,
        format!("is not a JSON object: {example}"),
    ))
}

/// Strips a UTF-8 byte order mark, which editors on Windows like to write.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// "a string", "an array", …: what a JSON value is, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON string, quoted and escaped as JSON writes it, for messages.
pub(crate) fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Implements the `Visitor` methods for every JSON value that is not an array or an object
/// by calling `self.refuse(description)`, which returns the error to raise.
macro_rules! refuse_scalars {
    () => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("a boolean")))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("a number")))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("a number")))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("a number")))
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("a string")))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom(self.refuse("null")))
        }
    };
}
pub(crate) use refuse_scalars;

/// A seed that reads any JSON value and hands it to a check, so that the check's error is
/// placed just after the value (`serde_json` fills in the position of an error as it
/// leaves the `deserialize_*` call it was raised in; raised later, an error would be placed
/// after the enclosing object instead).
pub(crate) struct Checked<F>(pub(crate) F);

impl<'de, T, F: FnOnce(Value) -> Result<T, String>> serde::de::DeserializeSeed<'de> for Checked<F> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<F> Checked<F> {
    fn check<T, E: serde::de::Error>(self, value: Value) -> Result<T, E>
    where
        F: FnOnce(Value) -> Result<T, String>,
    {
        (self.0)(value).map_err(E::custom)
    }
}

impl<'de, T, F: FnOnce(Value) -> Result<T, String>> serde::de::Visitor<'de> for Checked<F> {
    type Value = T;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<T, E> {
        self.check(Value::Bool(flag))
    }

    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<T, E> {
        self.check(Value::from(number))
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<T, E> {
        self.check(Value::from(number))
    }

    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<T, E> {
        self.check(Value::from(number))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        self.check(Value::String(text.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<T, E> {
        self.check(Value::String(text))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        self.check(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        let value = serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        self.check(value)
    }

    // Objects, and numbers too: with `arbitrary_precision`, serde_json hands a number over
    // as a map, which `Value`'s own visitor recognises.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let value = serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.check(value)
    }
}
