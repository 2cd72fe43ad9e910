//! JSON arrays: streamed elements, key interning, exact numbers, and errors placed in the
//! file's coordinates.

use std::fmt::Write as _;
use std::fs;

use lockgate_bundle::{open_records, Format, Record};

use crate::support::{check, check_bytes};

const JSON: Format = Format::Json;

#[test]
fn values_of_every_kind() {
    check(
        r#"[{"a":1,"b":"x","c":null,"d":true,"e":"","f":{"x":[1,2]},"g":[true,null]}]"#,
        JSON,
        r#"@1 a=1 b="x" c=null d=true e="" f={"x":[1,2]} g=[true,null]"#,
    );
    check(
        r#"[{"s":"\u00e9\n\"","t":"x]}\"{[","u":"\\"}]"#,
        JSON,
        r#"@1 s="é\n\"" t="x]}\"{[" u="\\""#,
    );
}

#[test]
fn numbers_keep_every_digit() {
    check(
        r#"[{"n":12345678901234567890.123456789,"m":1e400,"z":-0,"i":18446744073709551616}]"#,
        JSON,
        "@1 n=12345678901234567890.123456789 m=1e+400 z=-0 i=18446744073709551616",
    );
}

#[test]
fn keys_not_given_stay_missing_and_new_keys_join_the_columns() {
    check(
        r#"[{"a":1},{"b":2},{"a":3,"c":4},{}]"#,
        JSON,
        "@1 a=1; @1 b=2; @1 a=3 c=4; @1",
    );
    // Columns are in order of first appearance, and fields follow the column order.
    check(r#"[{"b":1,"a":2},{"a":3,"b":4}]"#, JSON, "@1 b=1 a=2; @1 b=4 a=3");
}

#[test]
fn records_carry_the_line_where_they_start() {
    check(
        "[\n {\"a\":1},\n {\"a\":\n2}, {\"a\":3}\n]\n",
        JSON,
        "@2 a=1; @3 a=2; @4 a=3",
    );
    check("\u{feff} [ {\"a\":1} ] \n", JSON, "@1 a=1");
}

#[test]
fn empty_arrays_and_empty_input() {
    check("[]", JSON, "no records");
    check(" \n [ \n ] \n", JSON, "no records");
    check("", JSON, "error: in: is empty: nothing to load");
    check(" \r\n\t", JSON, "error: in: is empty: nothing to load");
}

#[test]
fn top_level_must_be_an_array_or_one_object() {
    check(
        "1",
        JSON,
        "error: in:1:1: expected a JSON array of objects (or one object), found a number",
    );
    check(
        "x",
        JSON,
        "error: in:1:1: expected a JSON array of objects (or one object), found 'x'",
    );
    check(
        r#""s""#,
        JSON,
        "error: in:1:1: expected a JSON array of objects (or one object), found a string",
    );
}

/// oe-migration `require`s a data file and wraps a lone object in an array: a file
/// holding one object is one record.
#[test]
fn a_file_holding_one_object_is_one_record() {
    check("\n {\"a\":1,\"b\":{\"c\":[2]}}\n", JSON, r#"@2 a=1 b={"c":[2]}"#);
    check("\u{feff}{}", JSON, "@1");
    // Anything after the object is an error, placed where it starts.
    check(
        "{\"a\":1}\n{\"a\":2}\n",
        JSON,
        "@1 a=1; error: in:2:1: '{' after the file's one object: a .json file holds one array of objects or one object; for one object per line, name the file .ndjson",
    );
    check(
        "{\"a\":1} ]",
        JSON,
        "@1 a=1; error: in:1:9: ']' after the file's one object: a .json file holds one array of objects or one object; for one object per line, name the file .ndjson",
    );
    // An object that is not closed is JSON's own error, in file coordinates.
    check(
        "{\"a\":",
        JSON,
        "error: in:1:5: invalid JSON: EOF while parsing a value",
    );
}

#[test]
fn array_syntax_errors() {
    check(
        r#"[{"a":1},]"#,
        JSON,
        "@1 a=1; error: in:1:9: trailing comma after the last element: remove it",
    );
    check(
        r#"[{"a":1} {"a":2}]"#,
        JSON,
        "@1 a=1; error: in:1:10: expected ',' or ']' after an array element, found '{'",
    );
    check(
        r#"[{"a":1}] x"#,
        JSON,
        "@1 a=1; error: in:1:11: 'x' after the end of the array: remove it",
    );
    check(
        r#"[{"a":1}]]"#,
        JSON,
        "@1 a=1; error: in:1:10: ']' after the end of the array: remove it",
    );
    check(
        "[{\"a\":1},\n  2]",
        JSON,
        "@1 a=1; error: in:2:3: expected a JSON object, found a number",
    );
    check(
        r#"[[1]]"#,
        JSON,
        "error: in:1:2: expected a JSON object, found an array",
    );
    check(r#"[null]"#, JSON, "error: in:1:2: expected a JSON object, found null");
    check(
        r#"[true]"#,
        JSON,
        "error: in:1:2: expected a JSON object, found a boolean",
    );
    check(r#"[nul"#, JSON, "error: in:1:2: expected a JSON object, found 'n'");
    check(r#"[,]"#, JSON, "error: in:1:2: expected a JSON object, found ','");
    check(
        "[{\"a\":1}\n",
        JSON,
        "@1 a=1; error: in:2: the file ends inside the array opened on line 1: add the closing ']'",
    );
    check(
        "\n[",
        JSON,
        "error: in:2: the file ends inside the array opened on line 2: add the closing ']'",
    );
}

#[test]
fn element_errors_are_in_file_coordinates() {
    check(r#"[{"a" 1}]"#, JSON, "error: in:1:7: invalid JSON: expected `:`");
    check(
        "[\n  {\"a\": 1,\n   \"b\" 2}\n]",
        JSON,
        "error: in:3:8: invalid JSON: expected `:`",
    );
    check(
        r#"[{"a":1,"a":2}]"#,
        JSON,
        r#"error: in:1:11: invalid JSON: the key "a" appears twice in one object: keep one"#,
    );
    check(r#"[{"a":}]"#, JSON, "error: in:1:7: invalid JSON: expected value");
    check(r#"[{"a":1]"#, JSON, "error: in:1:8: invalid JSON: expected `,` or `}`");
    check(
        "[{\"a\":\n\"x",
        JSON,
        "error: in:2:2: invalid JSON: EOF while parsing a string",
    );
    check_bytes(
        b"[{\"a\":\"\xff\"}]",
        JSON,
        "error: in:1:8: invalid JSON: invalid unicode code point",
    );
}

/// A minified array of more than 10 MB on one line streams element by element, and an
/// error at its far end still has the right column.
#[test]
fn minified_array_of_ten_megabytes_on_one_line() {
    let mut text = String::from("[");
    let mut count = 0u64;
    while text.len() < 10 * 1024 * 1024 {
        if count > 0 {
            text.push(',');
        }
        write!(
            text,
            r#"{{"id":{count},"name":"customer {count}","tags":["a","b,]"],"nested":{{"x":{count}}}}}"#
        )
        .expect("writes to a string");
        count += 1;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("big.json");
    fs::write(&good, format!("{text}]")).expect("writes");
    let mut reader = open_records(&good, None).expect("opens");
    let mut record = Record::default();
    let mut read = 0u64;
    while reader.next_record(&mut record).expect("reads") {
        assert_eq!(record.line, 1);
        assert_eq!(record.fields.len(), 4);
        read += 1;
    }
    assert_eq!(read, count);
    assert_eq!(reader.columns(), ["id", "name", "tags", "nested"]);

    let bad = dir.path().join("bad.json");
    fs::write(&bad, format!("{text},]")).expect("writes");
    let mut reader = open_records(&bad, Some(Format::Json)).expect("opens");
    let error = loop {
        match reader.next_record(&mut record) {
            Ok(true) => {}
            Ok(false) => panic!("a trailing comma must fail"),
            Err(error) => break error,
        }
    };
    assert_eq!((error.line, error.column), (Some(1), Some(text.len() as u64 + 1)));
    assert_eq!(error.message, "trailing comma after the last element: remove it");
}
