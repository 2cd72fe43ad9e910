//! CSV: PostgreSQL COPY's NULL rule, quoting, line ends, header checks and errors.

use std::io::Cursor;

use lockgate_bundle::{records_from_reader, Format, RawValue, Record};

use crate::support::{check, check_bytes};

const CSV: Format = Format::Csv;

#[test]
fn null_empty_and_text() {
    check("a,b,c\n,\"\",x\n", CSV, r#"@2 a=null b="" c="x""#);
    check("a\n\"\"\n", CSV, r#"@2 a="""#);
    check("a,b\n1,\n", CSV, r#"@2 a="1" b=null"#);
    check("a,b\n,\n", CSV, "@2 a=null b=null");
    check("a, b\n x ,\" y \"\n", CSV, r#"@2 a=" x "  b=" y ""#);
    check("name\nZoë\n", CSV, r#"@2 name="Zoë""#);
}

#[test]
fn reused_record_switches_between_null_and_text() {
    check(
        "a,b\nx,\n,\"\"\ny,z\n",
        CSV,
        r#"@2 a="x" b=null; @3 a=null b=""; @4 a="y" b="z""#,
    );
}

#[test]
fn quotes_commas_and_newlines_inside_fields() {
    check(
        "a,b\n\"he said \"\"hi\"\"\",\"1,2\"\n\"multi\nline\",z\n",
        CSV,
        r#"@2 a="he said \"hi\"" b="1,2"; @3 a="multi\nline" b="z""#,
    );
    check("a\n\"\"\"\"\n", CSV, r#"@2 a="\"""#);
    check("a\n\"x\r\ny\"\n", CSV, r#"@2 a="x\r\ny""#);
    // A record spanning lines moves the next record's line accordingly.
    check(
        "a,b\n\"1\n2\n3\",x\n4,y\n",
        CSV,
        r#"@2 a="1\n2\n3" b="x"; @5 a="4" b="y""#,
    );
}

#[test]
fn line_ends() {
    check("a,b\r\n1,2\r\n3,4\r\n", CSV, r#"@2 a="1" b="2"; @3 a="3" b="4""#);
    check("a,b\r\n\"1\",\"2\"\r\n", CSV, r#"@2 a="1" b="2""#);
    check("a\r1\r2", CSV, r#"@2 a="1"; @3 a="2""#);
    check("a,b\n1,2", CSV, r#"@2 a="1" b="2""#);
    check("a,b\n1,", CSV, r#"@2 a="1" b=null"#);
    check("a\n\"x\"", CSV, r#"@2 a="x""#);
}

/// As PostgreSQL's `COPY … CSV HEADER` reads them (checked with psql's `\copy`): in
/// one column an empty line is an unquoted empty field, so a NULL row; a line break
/// that ends the file adds no row, an empty line after it does.
#[test]
fn an_empty_line_is_a_null_row_in_a_csv_of_one_column() {
    check(
        "a\n\n1\n\n\n2\n\n",
        CSV,
        "@2 a=null; @3 a=\"1\"; @4 a=null; @5 a=null; @6 a=\"2\"; @7 a=null",
    );
    check("a\r\n\r\n1\r\n\r\n", CSV, "@2 a=null; @3 a=\"1\"; @4 a=null");
    check("a\r\r1\r", CSV, "@2 a=null; @3 a=\"1\"");
    check("a\n1\n\n", CSV, "@2 a=\"1\"; @3 a=null");
    check("a\n1\n", CSV, "@2 a=\"1\"");
    check("a\n\"\"\n\n", CSV, "@2 a=\"\"; @3 a=null");
    // Empty lines before the header hold nothing.
    check("\n\na\n1\n", CSV, r#"@4 a="1""#);
}

/// PostgreSQL refuses an empty line in a CSV of several columns ("missing data for
/// column"); so does Lockgate, naming the line, whether it is inside or at the end.
#[test]
fn an_empty_line_in_a_csv_of_several_columns_is_an_error() {
    let message = "the line is empty, but the header has 2 columns: remove the empty line \
                   (as in PostgreSQL's COPY, an empty line is a NULL row only in a CSV of one column)";
    check(
        "a,b\n1,2\n\n3,4\n",
        CSV,
        &format!("@2 a=\"1\" b=\"2\"; error: in:3: {message}"),
    );
    check(
        "a,b\r\n1,2\r\n\r\n",
        CSV,
        &format!("@2 a=\"1\" b=\"2\"; error: in:3: {message}"),
    );
    check("a,b\n\n", CSV, &format!("error: in:2: {message}"));
}

#[test]
fn byte_order_mark_is_stripped() {
    check("\u{feff}id,name\n1,x\n", CSV, r#"@2 id="1" name="x""#);
    check(
        "\u{feff}\"id\"\n1,x\n",
        CSV,
        r#"error: in:2: expected 1 fields as in the header, found 2: check the separators and quotes"#,
    );
}

#[test]
fn header_only_gives_no_records() {
    check("a,b\n", CSV, "no records");
    check("a,b", CSV, "no records");
    check("a\r\n", CSV, "no records");
}

#[test]
fn header_errors() {
    check(
        "a,,b\n1,2,3\n",
        CSV,
        "error: in:1: column 2 of the header has no name: every column needs one",
    );
    check(
        "\"\",b\n",
        CSV,
        "error: in:1: column 1 of the header has no name: every column needs one",
    );
    check(
        "a, \n",
        CSV,
        "error: in:1: column 2 of the header has no name: every column needs one",
    );
    check(
        "a,b,a\n",
        CSV,
        r#"error: in:1: column 3 of the header repeats the name "a" of column 1: column names must be unique"#,
    );
    check_bytes(b"a,\xff\n", CSV, "error: in:1: invalid UTF-8: save the file as UTF-8");
}

#[test]
fn field_count_mismatch() {
    check(
        "a,b\n1,2\n1,2,3\n",
        CSV,
        r#"@2 a="1" b="2"; error: in:3: expected 2 fields as in the header, found 3: check the separators and quotes"#,
    );
    check(
        "a,b\n1\n",
        CSV,
        "error: in:2: expected 2 fields as in the header, found 1: check the separators and quotes",
    );
}

#[test]
fn quote_errors_name_line_and_column() {
    check(
        "a,b\n1,x\"y\n",
        CSV,
        "error: in:2:4: quote inside an unquoted field: quote the whole field and double the quotes inside it",
    );
    check(
        "a,b\n\"1\n2\",x\"\n",
        CSV,
        "error: in:3:5: quote inside an unquoted field: quote the whole field and double the quotes inside it",
    );
    check(
        "a\n\"x\"y\n",
        CSV,
        "error: in:2:4: 'y' after the closing quote of a field: put the whole field inside the quotes, or a ',' after them",
    );
    check(
        "a\n\"x\" \n",
        CSV,
        "error: in:2:4: ' ' after the closing quote of a field: put the whole field inside the quotes, or a ',' after them",
    );
    check(
        "a,b\n1,\"abc\n\n",
        CSV,
        "error: in:2:3: quoted field is not closed before the end of the file: add the closing quote",
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    check_bytes(
        b"a\nok\n\xff\n",
        CSV,
        r#"@2 a="ok"; error: in:3: invalid UTF-8: save the file as UTF-8"#,
    );
    check_bytes(
        b"a\n\"x\ny\xc3\"\n",
        CSV,
        "error: in:3: invalid UTF-8: save the file as UTF-8",
    );
    // Two fields holding one half each of "é" are valid together but not apart.
    check_bytes(
        b"a,b\n\xc3,\xa9\n",
        CSV,
        "error: in:2: invalid UTF-8: save the file as UTF-8",
    );
}

#[test]
fn empty_input_is_an_error() {
    check("", CSV, "error: in: is empty: nothing to load");
    check(" \n\t\r\n", CSV, "error: in: is empty: nothing to load");
    check("\u{feff}", CSV, "error: in: is empty: nothing to load");
}

/// Many records with fields of every kind cross the reader's buffer boundary many times.
#[test]
fn large_input_crosses_buffer_boundaries() {
    let mut input = String::from("id,quoted,plain,empty\n");
    let rows = 60_000;
    for row in 0..rows {
        input.push_str(&format!("{row},\"q \"\"{row}\"\"\nnext\",plain {row},\r\n"));
    }
    let mut reader = records_from_reader(Box::new(Cursor::new(input.into_bytes())), "in", CSV).expect("opens");
    let mut record = Record::default();
    let mut count = 0u64;
    while reader.next_record(&mut record).expect("reads") {
        let row = count;
        count += 1;
        assert_eq!(record.number, count);
        assert_eq!(record.line, 2 + 2 * row);
        let expect = vec![
            (0, RawValue::Text(row.to_string())),
            (1, RawValue::Text(format!("q \"{row}\"\nnext"))),
            (2, RawValue::Text(format!("plain {row}"))),
            (3, RawValue::Null),
        ];
        assert_eq!(record.fields, expect);
    }
    assert_eq!(count, rows);
}
