//! NDJSON: one object per line, blank lines, keys not given, and errors per line.

use crate::support::{check, check_bytes};
use lockgate_bundle::Format;

const NDJSON: Format = Format::Ndjson;

#[test]
fn objects_per_line_with_missing_and_new_keys() {
    check(
        "{\"a\":1}\n{\"b\":\"x\"}\n\n  \t\n{\"a\":null,\"c\":[1]}\n",
        NDJSON,
        r#"@1 a=1; @2 b="x"; @5 a=null c=[1]"#,
    );
    check("{\"b\":1,\"a\":2}\n{\"a\":3}\n{}", NDJSON, "@1 b=1 a=2; @2 a=3; @3");
    check(
        "{\"n\":0.10000000000000000000000001}",
        NDJSON,
        "@1 n=0.10000000000000000000000001",
    );
}

#[test]
fn line_ends_and_byte_order_mark() {
    check("{\"a\":1}\r\n\r\n{\"a\":2}\r\n", NDJSON, "@1 a=1; @3 a=2");
    check("\u{feff}{\"a\":1}", NDJSON, "@1 a=1");
    check("\n\n  {\"a\":1}  \n\n", NDJSON, "@3 a=1");
}

#[test]
fn a_line_that_is_not_an_object() {
    check(
        "{\"a\":1}\n[1]\n",
        NDJSON,
        "@1 a=1; error: in:2:1: expected a JSON object, found an array",
    );
    check(
        "\n  7\n",
        NDJSON,
        "error: in:2:3: expected a JSON object, found a number",
    );
    check("\"x\"", NDJSON, "error: in:1:1: expected a JSON object, found a string");
    check("nope", NDJSON, "error: in:1:1: expected a JSON object, found 'n'");
    check("null", NDJSON, "error: in:1:1: expected a JSON object, found null");
    check("#", NDJSON, "error: in:1:1: expected a JSON object, found '#'");
}

#[test]
fn parse_errors_carry_line_and_column() {
    check(
        "{\"a\":1}\n{\"a\":}\n",
        NDJSON,
        "@1 a=1; error: in:2:6: invalid JSON: expected value",
    );
    check(
        "{\"a\":1} {\"b\":2}",
        NDJSON,
        "error: in:1:9: invalid JSON: trailing characters",
    );
    check(
        "{\"a\":1,\n\"b\":2}",
        NDJSON,
        "error: in:1:7: invalid JSON: EOF while parsing a value",
    );
    check(
        "{\"a\":1,\"a\":1}",
        NDJSON,
        r#"error: in:1:10: invalid JSON: the key "a" appears twice in one object: keep one"#,
    );
    check_bytes(
        b"{\"a\":\"\xff\"}",
        NDJSON,
        "error: in:1:7: invalid JSON: invalid unicode code point",
    );
}

#[test]
fn empty_input_is_an_error() {
    check("", NDJSON, "error: in: is empty: nothing to load");
    check("\n \n\t", NDJSON, "error: in: is empty: nothing to load");
}
