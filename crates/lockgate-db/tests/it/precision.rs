//! Values never change silently (issue 11, §2), at the writer: a value that a column
//! would store differently (a fraction of a second it does not keep, an integer past
//! a float's mantissa, a text longer than it holds) is that row's error, naming the
//! column, the given value and what the column would have stored, on every engine,
//! in the insert path and the key modes, and in a MariaDB session whose `sql_mode`
//! is not strict. Values that fit read back unchanged.

use crate::support::{dec, TestDb};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use lockgate_core::{Batch, Kind, Row, Table, TableName, TextForm, Value};
use lockgate_db::writer::{self, BatchSource, OnError, SourceError, WriteConfig, WriteMode, WriteReport};
use lockgate_db::{Conn, Engine};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The batches of one write.
struct Pages(Vec<Batch>);

impl BatchSource for Pages {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(2);
        let pages = self.0.clone();
        tokio::spawn(async move {
            for page in pages {
                if tx.send(Ok(page)).await.is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// One value written into one column of its own row (the row's other columns NULL),
/// and the parts of the error message it must give when it does not fit.
struct Case {
    column: &'static str,
    value: Value,
    /// `None` when the value fits; else substrings of the row's error message.
    error: Option<Vec<String>>,
}

fn fits(column: &'static str, value: Value) -> Case {
    Case {
        column,
        value,
        error: None,
    }
}

fn fails(column: &'static str, value: Value, says: &[&str]) -> Case {
    Case {
        column,
        value,
        error: Some(says.iter().map(|s| s.to_string()).collect()),
    }
}

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").unwrap()
}

/// Creates table `name` (`ddl` is its column list after `id`) and writes one row
/// per case (id = its position + 1) in `mode` with `--on-error skip`.
async fn write_cases(conn: &mut Conn, name: &str, ddl: &str, cases: &[Case], mode: WriteMode) -> (Table, WriteReport) {
    let table = create_table(conn, name, ddl).await;
    let report = write_rows(conn, &table, cases, mode, OnError::Skip).await;
    (table, report)
}

/// Creates table `name` (`ddl` is its column list after `id`).
async fn create_table(conn: &mut Conn, name: &str, ddl: &str) -> Table {
    let id_type = if conn.engine() == Engine::Sqlite {
        "INTEGER"
    } else {
        "int"
    };
    let sql = format!(
        "CREATE TABLE {} (id {id_type} PRIMARY KEY, {ddl})",
        conn.dialect().quote(name)
    );
    conn.batch(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.describe(&TableName::new(name)).await.unwrap().unwrap()
}

/// Writes one row per case (id = its position + 1) into `table`.
async fn write_rows(conn: &mut Conn, table: &Table, cases: &[Case], mode: WriteMode, on_error: OnError) -> WriteReport {
    let name = table.name.to_string();
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let mut batch = Batch::new(Arc::new(columns.clone()));
    for (i, case) in cases.iter().enumerate() {
        let mut values = vec![Value::Null; columns.len()];
        values[0] = Value::Int(i as i64 + 1);
        let at = columns
            .iter()
            .position(|c| c == case.column)
            .unwrap_or_else(|| panic!("no column {}", case.column));
        values[at] = case.value.clone();
        batch.push(Row {
            line: i as u64 + 1,
            number: i as u64 + 1,
            values,
        });
    }
    let cfg = WriteConfig {
        mode,
        on_error,
        ..WriteConfig::default()
    };
    writer::write(conn, table, &cfg, &Pages(vec![batch]), None)
        .await
        .unwrap_or_else(|e| panic!("{}: writing {name}: {e}", conn.engine()))
}

/// Checks a write of `cases`: exactly the cases that do not fit failed, each naming
/// its column and saying what it must; the others read back as the column's kind
/// says they are (`Kind::check`'s value: the single a FLOAT column keeps, say).
async fn assert_cases(conn: &mut Conn, table: &Table, report: &WriteReport, cases: &[Case], what: &str) {
    let mut problems = Vec::new();
    let failed_ids: Vec<String> = report
        .failed
        .iter()
        .map(|e| e.key.clone().unwrap_or_default())
        .collect();
    let d = conn.dialect();
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        d.columns(None, &names),
        d.table(&table.name),
        d.quote("id")
    );
    let stored = conn.query(&sql, &[], Some(&kinds)).await.unwrap();
    for (i, case) in cases.iter().enumerate() {
        let id = i as i64 + 1;
        let key = format!("id={id}");
        let error = report.failed.iter().find(|e| e.key.as_deref() == Some(key.as_str()));
        let row = stored.iter().find(|r| r[0] == Value::Int(id));
        match (&case.error, error, row) {
            (None, None, Some(row)) => {
                let at = names.iter().position(|c| c == case.column).unwrap();
                let expect = table.columns[at].kind.check(case.value.clone()).unwrap();
                if row[at] != expect {
                    problems.push(format!(
                        "{what}: {} = {:?} read back as {:?}",
                        case.column, case.value, row[at]
                    ));
                }
            }
            (None, Some(e), _) => problems.push(format!("{what}: {} = {:?} failed: {e}", case.column, case.value)),
            (None, None, None) => problems.push(format!("{what}: {} = {:?} is missing", case.column, case.value)),
            (Some(_), None, _) => problems.push(format!(
                "{what}: {} = {:?} did not fail (stored: {row:?})",
                case.column, case.value
            )),
            (Some(says), Some(e), row) => {
                if e.column.as_deref() != Some(case.column) {
                    problems.push(format!(
                        "{what}: {} = {:?}: error names column {:?}",
                        case.column, case.value, e.column
                    ));
                }
                for s in says {
                    if !e.message.contains(s.as_str()) {
                        problems.push(format!(
                            "{what}: {} = {:?}: message {:?} does not say {s:?}",
                            case.column, case.value, e.message
                        ));
                    }
                }
                if row.is_some() {
                    problems.push(format!(
                        "{what}: {} = {:?} failed but was stored",
                        case.column, case.value
                    ));
                }
            }
        }
    }
    let expected_failures = cases.iter().filter(|c| c.error.is_some()).count();
    if report.failed.len() != expected_failures {
        problems.push(format!(
            "{what}: failed rows {failed_ids:?}, expected {expected_failures}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Writes `cases` into a fresh table, once by insert and once by upsert.
async fn check_both_modes(engine: Engine, ddl: &str, cases: &[Case]) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    for (name, mode) in [("by_insert", WriteMode::Insert), ("by_upsert", WriteMode::Upsert)] {
        let (table, report) = write_cases(&mut conn, name, ddl, cases, mode).await;
        assert_cases(&mut conn, &table, &report, cases, &format!("{engine} {name}")).await;
    }
}

/// The fractions the timestamp cases write: whole seconds, milliseconds,
/// microseconds, and a tenth that rounds up where cutting does not.
const FRACTIONS: [(&str, u8); 4] = [("", 0), (".123", 3), (".123456", 6), (".9", 1)];

/// Timestamp cases for `columns` of (name, fractional digits kept, kind of value).
fn timestamp_cases(columns: &[(&'static str, u8, &str)]) -> Vec<Case> {
    let mut cases = Vec::new();
    for (column, fsp, what) in columns {
        for (fraction, digits) in FRACTIONS {
            let (value, given, cut, rounded) = match *what {
                "time" => (
                    Value::Time(time(&format!("10:00:00{fraction}"))),
                    Value::Time(time(&format!("10:00:00{fraction}"))).to_string(),
                    "it would store 10:00:00".to_string(),
                    "or 10:00:01 (rounded".to_string(),
                ),
                "instant" => {
                    let v = Value::TimestampTz(ts(&format!("2024-01-01 10:00:00{fraction}")).and_utc());
                    (
                        v.clone(),
                        v.to_string(),
                        "it would store 2024-01-01 10:00:00+00:00".to_string(),
                        "or 2024-01-01 10:00:01+00:00 (rounded".to_string(),
                    )
                }
                _ => {
                    let v = Value::Timestamp(ts(&format!("2024-01-01 10:00:00{fraction}")));
                    (
                        v.clone(),
                        v.to_string(),
                        "it would store 2024-01-01 10:00:00".to_string(),
                        "or 2024-01-01 10:00:01 (rounded".to_string(),
                    )
                }
            };
            cases.push(if digits <= *fsp {
                fits(column, value)
            } else if *fsp == 0 && digits == 1 {
                // .9 cut is :00, rounded is :01: both are named.
                fails(column, value, &[&given, &cut, &rounded])
            } else if *fsp == 0 {
                fails(column, value, &[&given, &cut, "keeps whole seconds"])
            } else {
                fails(column, value, &[&given, &format!("keeps {fsp} fractional digits")])
            });
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_seconds_finer_than_a_postgres_column_are_row_errors() {
    let ddl = "ts0 timestamp(0), ts3 timestamp(3), ts6 timestamp, tz0 timestamptz(0), tz6 timestamptz, \
               t0 time(0), t6 time";
    let cases = timestamp_cases(&[
        ("ts0", 0, "ts"),
        ("ts3", 3, "ts"),
        ("ts6", 6, "ts"),
        ("tz0", 0, "instant"),
        ("tz6", 6, "instant"),
        ("t0", 0, "time"),
        ("t6", 6, "time"),
    ]);
    check_both_modes(Engine::Postgres, ddl, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_seconds_finer_than_a_mariadb_column_are_row_errors() {
    // DATETIME and TIMESTAMP without (n) keep whole seconds and cut the rest silently.
    let ddl = "dt datetime, dt3 datetime(3), dt6 datetime(6), tsp timestamp NULL, tsp6 timestamp(6) NULL, \
               t0 time, t6 time(6)";
    let cases = timestamp_cases(&[
        ("dt", 0, "ts"),
        ("dt3", 3, "ts"),
        ("dt6", 6, "ts"),
        ("tsp", 0, "instant"),
        ("tsp6", 6, "instant"),
        ("t0", 0, "time"),
        ("t6", 6, "time"),
    ]);
    check_both_modes(Engine::Mysql, ddl, &cases).await;
}

/// SQLite keeps date and time values as the text Lockgate writes: every digit,
/// whatever precision the declaration names (ARCHITECTURE.md, type mapping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_text_timestamps_keep_every_fraction() {
    let ddl = "ts TIMESTAMP, dt DATETIME(3), tz TIMESTAMPTZ, t TIME";
    let cases = timestamp_cases(&[("ts", 6, "ts"), ("dt", 6, "ts"), ("tz", 6, "instant"), ("t", 6, "time")]);
    check_both_modes(Engine::Sqlite, ddl, &cases).await;
    // Past microseconds no engine keeps: an error on SQLite too.
    let finer = vec![fails(
        "ts",
        Value::Timestamp(
            NaiveDate::from_ymd_opt(2024, 1, 1)
                .unwrap()
                .and_hms_nano_opt(10, 0, 0, 123_456_789)
                .unwrap(),
        ),
        &[
            "2024-01-01 10:00:00.123456789",
            "it would store 2024-01-01 10:00:00.123456",
        ],
    )];
    check_both_modes(Engine::Sqlite, "ts TIMESTAMP", &finer).await;
}

/// The float cases: double columns hold integers to 2^53; single ones to 2^24 and
/// about 7 digits (`single` is false on SQLite, whose floats are all doubles).
fn float_cases(single: bool) -> Vec<Case> {
    let two53 = 1i64 << 53;
    let mut cases = vec![
        fits("d", Value::Int(two53)),
        fits("d", Value::Int(-two53)),
        fails(
            "d",
            Value::Int(two53 + 1),
            &["9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992"],
        ),
        fails(
            "d",
            Value::Int(-two53 - 1),
            &["-9007199254740993", "it would store -9007199254740992"],
        ),
        fails(
            "d",
            Value::Int(i64::MAX),
            &["9223372036854775807", "it would store 9223372036854775808"],
        ),
        fits("d", dec("0.1")),
        fits("d", dec("12345.678901234")),
        fails("d", dec("9007199254740993"), &["it would store 9007199254740992"]),
        fails(
            "d",
            dec("3.14159265358979323846"),
            &["it would store 3.141592653589793"],
        ),
        fits("d", Value::Float(0.1)),
        fits("r", Value::Int(16_777_216)),
        fits("r", Value::Float(0.1)),
        fits("r", dec("1.5")),
    ];
    if single {
        cases.extend([
            fails(
                "r",
                Value::Int(16_777_217),
                &["16777217 does not fit a float32 column exactly: it would store 16777216"],
            ),
            fails(
                "r",
                Value::Float(0.123456789),
                &["0.123456789 does not fit a float32 column exactly: it would store 0.12345679"],
            ),
            fails("r", dec("1.23456789"), &["it would store 1.2345679"]),
        ]);
    } else {
        cases.extend([
            fits("r", Value::Int(16_777_217)),
            fits("r", Value::Float(0.123456789)),
            fails("r", Value::Int(two53 + 1), &["it would store 9007199254740992"]),
        ]);
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_past_2_53_into_float_columns_are_row_errors() {
    check_both_modes(Engine::Postgres, "d double precision, r real", &float_cases(true)).await;
    check_both_modes(Engine::Mysql, "d double, r float", &float_cases(true)).await;
    check_both_modes(Engine::Sqlite, "d REAL, r FLOAT", &float_cases(false)).await;
}

/// Text cases for a 5-character column `column`: `varchar(5)`, or with `padded` a
/// `char(5)`, whose trailing spaces are padding (dropped, and not counted).
fn text_cases(column: &'static str, padded: bool) -> Vec<Case> {
    let t = |s: &str| Value::Text(s.to_string());
    let mut cases = vec![
        fits(column, t("abcde")),
        fits(column, t("ééééé")),
        fails(
            column,
            t("abcdef"),
            &["\"abcdef\" is 6 characters long; the column holds at most 5, so it would be cut to \"abcde\""],
        ),
        fails(column, t("éééééé"), &["is 6 characters long", "cut to \"ééééé\""]),
        fails(
            column,
            Value::Int(123_456),
            &["\"123456\" is 6 characters long", "cut to \"12345\""],
        ),
    ];
    if padded {
        cases.push(fits(column, t("abcde ")));
        cases.push(fails(
            column,
            t("abcdef   "),
            &["\"abcdef\" is 6 characters long", "cut to \"abcde\""],
        ));
    } else {
        // PostgreSQL cuts trailing spaces past the length without a word.
        cases.push(fails(
            column,
            t("abcde "),
            &["\"abcde \" is 6 characters long", "cut to \"abcde\""],
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_longer_than_the_column_is_a_row_error() {
    let mut pg = text_cases("v", false);
    pg.extend(text_cases("c", true));
    check_both_modes(Engine::Postgres, "v varchar(5), c char(5)", &pg).await;

    let mut my = text_cases("v", false);
    my.extend(text_cases("c", true));
    // TINYTEXT holds 255 bytes: 127 two-byte characters and one more byte fit.
    let t = |s: String| Value::Text(s);
    my.push(fits("tt", t(format!("{}a", "é".repeat(127)))));
    my.push(fails(
        "tt",
        t("é".repeat(128)),
        &["is 256 bytes long; the column holds at most 255, so it would be cut to"],
    ));
    check_both_modes(Engine::Mysql, "v varchar(5), c char(5), tt tinytext", &my).await;

    // SQLite does not enforce VARCHAR(n) or CHAR(n): it keeps the whole text, so
    // Lockgate does too (the value is not changed).
    let whole = |c: &'static str| {
        vec![
            fits(c, Value::Text("abcdef".into())),
            fits(c, Value::Text("a much longer text than five".into())),
        ]
    };
    let mut lite = whole("v");
    lite.extend(whole("c"));
    check_both_modes(Engine::Sqlite, "v VARCHAR(5), c CHAR(5)", &lite).await;
}

/// MariaDB's FLOAT(M,D) and DOUBLE(M,D) round to D decimals: they are bounded
/// decimals, and a value with more places is that row's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_float_with_decimals_rounds_nothing_silently() {
    let cases = vec![
        fits("f", dec("1.23")),
        fits("d", dec("12345678.12")),
        fails(
            "f",
            dec("1.239"),
            &["1.239 has more than 2 decimal places; the column would round it to 1.24"],
        ),
        fails("f", Value::Float(1.239), &["would round it to 1.24"]),
        fails("d", dec("0.005"), &["would round it to 0.01"]),
        fails(
            "f",
            dec("12345.67"),
            &["12345.67 has 7 significant digits; the column keeps 6 and would store 12345.7"],
        ),
    ];
    check_both_modes(Engine::Mysql, "f float(7,2), d double(10,2)", &cases).await;
}

/// A user's MariaDB may run without a strict `sql_mode`: in such a session the
/// server itself cuts texts and fractions without an error. Lockgate's checks do not
/// depend on the session: every such value is still that row's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_strict_mariadb_session_still_changes_no_value() {
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch("SET SESSION sql_mode = ''").await.unwrap();
    let ddl = "v varchar(5), dt datetime, d double, n decimal(5,2)";
    let cases = vec![
        fits("v", Value::Text("abcde".into())),
        fails("v", Value::Text("abcdefgh".into()), &["cut to \"abcde\""]),
        fails(
            "dt",
            Value::Timestamp(ts("2024-01-01 10:00:00.123456")),
            &["it would store 2024-01-01 10:00:00"],
        ),
        fails("d", Value::Int((1 << 53) + 1), &["it would store 9007199254740992"]),
        fails("n", dec("1.005"), &["would round it to 1.01"]),
        fails("n", dec("12345"), &["does not fit decimal(5,2)"]),
    ];
    for (name, mode) in [("by_insert", WriteMode::Insert), ("by_upsert", WriteMode::Upsert)] {
        let (table, report) = write_cases(&mut conn, name, ddl, &cases, mode).await;
        assert_cases(&mut conn, &table, &report, &cases, &format!("non-strict {name}")).await;
    }
    // The session really was lenient: the server stores what Lockgate refused, changed.
    let mode = conn.query("SELECT @@SESSION.sql_mode", &[], None).await.unwrap();
    assert_eq!(
        mode[0][0],
        Value::Text(String::new()),
        "the writer left the session's sql_mode as it was"
    );
    conn.execute(
        "INSERT INTO by_insert (id, v, dt, d, n) VALUES (100, ?, ?, ?, ?)",
        &[
            Value::Text("abcdefgh".into()),
            Value::Timestamp(ts("2024-01-01 10:00:00.123456")),
            Value::Int((1 << 53) + 1),
            dec("12345"),
        ],
    )
    .await
    .unwrap();
    let kinds = [
        Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        },
        Kind::Timestamp { fsp: 6 },
        Kind::Float { bytes: 8 },
        Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: None,
        },
    ];
    let raw = conn
        .query("SELECT v, dt, d, n FROM by_insert WHERE id = 100", &[], Some(&kinds))
        .await
        .unwrap();
    assert_eq!(
        raw[0],
        vec![
            Value::Text("abcde".into()),
            Value::Timestamp(ts("2024-01-01 10:00:00")),
            Value::Float(9_007_199_254_740_992.0),
            dec("999.99"),
        ],
        "a non-strict session changes values silently; Lockgate refused each of them above"
    );
}

/// Types the kinds cannot describe change nothing silently: PostgreSQL `name` cuts
/// its input to 63 bytes, so a longer one is that row's error; MariaDB YEAR turns
/// `5` into 2005, so no value goes into it (it is an unsupported type, said plainly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_that_would_change_a_value_refuse_it() {
    let t = |s: String| Value::Text(s);
    let pg = vec![
        fits("n", t("a".repeat(63))),
        fits("n", t(format!("{}é", "a".repeat(61)))),
        fails(
            "n",
            t("a".repeat(64)),
            &["is 64 bytes long; the column holds at most 63, so it would be cut to"],
        ),
        fails(
            "n",
            t(format!("{}é", "a".repeat(62))),
            &["is 64 bytes long; the column holds at most 63"],
        ),
    ];
    check_both_modes(Engine::Postgres, "n name", &pg).await;

    let my = vec![
        fails("y", Value::Int(5), &["does not map the type year", "2-digit years"]),
        fails("y", Value::Int(2005), &["does not map the type year"]),
    ];
    check_both_modes(Engine::Mysql, "y year", &my).await;
}

/// Every row of `table`, by id, typed by its columns' kinds.
async fn all_rows(conn: &mut Conn, table: &Table) -> Vec<Vec<Value>> {
    let d = conn.dialect();
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let kinds: Vec<Kind> = table.columns.iter().map(|c| c.kind.clone()).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        d.columns(None, &names),
        d.table(&table.name),
        d.quote("id")
    );
    conn.query(&sql, &[], Some(&kinds)).await.unwrap()
}

/// Exactly the cases that do not fit failed, each naming its column and saying what
/// it must (the value given, what the column would store).
fn assert_refused(report: &WriteReport, cases: &[Case], what: &str) {
    let mut problems = Vec::new();
    let mut want: Vec<String> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let key = format!("id={}", i + 1);
        let error = report.failed.iter().find(|e| e.key.as_deref() == Some(key.as_str()));
        match (&case.error, error) {
            (None, None) => {}
            (None, Some(e)) => problems.push(format!("{what}: {} = {:?} failed: {e}", case.column, case.value)),
            (Some(_), None) => problems.push(format!("{what}: {} = {:?} did not fail", case.column, case.value)),
            (Some(says), Some(e)) => {
                want.push(key);
                if e.column.as_deref() != Some(case.column) {
                    problems.push(format!(
                        "{what}: {} = {:?}: error names column {:?}",
                        case.column, case.value, e.column
                    ));
                }
                for s in says {
                    if !e.message.contains(s.as_str()) {
                        problems.push(format!(
                            "{what}: {} = {:?}: message {:?} does not say {s:?}",
                            case.column, case.value, e.message
                        ));
                    }
                }
            }
        }
    }
    let mut failed: Vec<String> = report
        .failed
        .iter()
        .map(|e| e.key.clone().unwrap_or_default())
        .collect();
    failed.sort_unstable();
    want.sort_unstable();
    if failed != want {
        problems.push(format!("{what}: failed rows {failed:?}, expected {want:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Writes `cases` into fresh tables by insert and by upsert (`check_both_modes`'s
/// checks), then shows that a refusal changes nothing: into a table that already
/// has a row for each case (its columns NULL), an upsert leaves every refused row as
/// it was and sets the others; an insert under `--on-error rollback` keeps no row
/// when any is refused.
async fn check_refusals_change_nothing(conn: &mut Conn, prefix: &str, ddl: &str, cases: &[Case]) {
    let engine = conn.engine();
    for (name, mode) in [("by_insert", WriteMode::Insert), ("by_upsert", WriteMode::Upsert)] {
        let name = format!("{prefix}_{name}");
        let (table, report) = write_cases(conn, &name, ddl, cases, mode).await;
        assert_cases(conn, &table, &report, cases, &format!("{engine} {name}")).await;
    }

    let what = format!("{engine} {prefix} over existing rows");
    let table = create_table(conn, &format!("{prefix}_seeded"), ddl).await;
    let d = conn.dialect();
    let ids: Vec<String> = (1..=cases.len()).map(|i| format!("({i})")).collect();
    conn.batch(&format!(
        "INSERT INTO {} ({}) VALUES {}",
        d.table(&table.name),
        d.quote("id"),
        ids.join(", ")
    ))
    .await
    .unwrap();
    let before = all_rows(conn, &table).await;
    let report = write_rows(conn, &table, cases, WriteMode::Upsert, OnError::Skip).await;
    assert_refused(&report, cases, &what);
    let mut want = before;
    for (i, case) in cases.iter().enumerate() {
        if case.error.is_none() {
            let at = table.columns.iter().position(|c| c.name == case.column).unwrap();
            want[i][at] = table.columns[at].kind.check(case.value.clone()).unwrap();
        }
    }
    assert_eq!(
        all_rows(conn, &table).await,
        want,
        "{what}: refused rows stay as they were"
    );

    let what = format!("{engine} {prefix} under rollback");
    let table = create_table(conn, &format!("{prefix}_rollback"), ddl).await;
    let report = write_rows(conn, &table, cases, WriteMode::Insert, OnError::Rollback).await;
    assert_refused(&report, cases, &what);
    let kept = all_rows(conn, &table).await.len();
    if cases.iter().any(|c| c.error.is_some()) {
        assert_eq!(kept, 0, "{what}: nothing is kept");
    } else {
        assert_eq!(kept, cases.len(), "{what}: every row fits");
    }
}

/// The MariaDB cases of issue 11 §2 that the server changes silently, in strict and
/// non-strict sessions alike: ENUM matches a label regardless of case and trailing
/// spaces (and reads a number as a position), SET reorders and merges members,
/// BINARY(n) pads with zero bytes. CHAR(n) drops trailing spaces, which are its
/// padding, not data: those values fit, stored and read back without them, and the
/// length is counted without them. A CHAR(36) holding UUIDs (what Lockgate creates
/// on servers without a `uuid` type) takes them as ever.
fn mariadb_fixed_and_label_cases() -> Vec<Case> {
    let t = |s: &str| Value::Text(s.to_string());
    let b = |s: &[u8]| Value::Bytes(s.to_vec());
    let labels = "(\"a\", \"b\", \"B2\"; case and spaces count)";
    let set = "(\"a\", \"b\", \"c\"): it takes those labels joined by commas";
    vec![
        fits("c", t("ab")),
        fits("c", t(" ab")),
        fits("c", t("abcde")),
        fits("c", t("")),
        fits("c", t("ab  ")),
        fits("c", t(" ")),
        fits("c", t("abcde ")),
        fits("c", t("abcde     ")),
        fails("c", t("abcdef "), &["\"abcdef\" is 6 characters long", "cut to \"abcde\""]),
        fits(
            "u",
            Value::Uuid(uuid::Uuid::parse_str("0b3a3f5e-8a4c-4c1e-9d7e-3f1a2b3c4d5e").unwrap()),
        ),
        fits("u", t("f47ac10b-58cc-4372-a567-0e02b2c3d479")),
        fits("e", t("a")),
        fits("e", t("B2")),
        fails(
            "e",
            t("A"),
            &[&format!("\"A\" is not one of the column's labels {labels}: MariaDB would store \"a\"")],
        ),
        fails("e", t("a "), &["\"a \" is not one of the column's labels", "would store \"a\""]),
        fails("e", t("b2"), &["\"b2\" is not one", "would store \"B2\""]),
        fails(
            "e",
            t("2"),
            &["\"2\" is not one of the column's labels", "would store \"b\", label number 2"],
        ),
        fails(
            "e",
            t("zz"),
            &[&format!(
                "\"zz\" is not one of the column's labels {labels}: MariaDB would store \"\" (its error value) where sql_mode is not strict"
            )],
        ),
        fails("e", t(""), &["\"\" is not one of the column's labels", "would store \"\""]),
        fits("s", t("")),
        fits("s", t("a")),
        fits("s", t("a,c")),
        fits("s", t("a,b,c")),
        fails(
            "s",
            t("b,a"),
            &[&format!("\"b,a\" is not a value of the column's set {set}"), "MariaDB would store \"a,b\""],
        ),
        fails("s", t("a,a"), &["\"a,a\" is not a value", "would store \"a\""]),
        fails("s", t("A,b"), &["\"A,b\" is not a value", "would store \"a,b\""]),
        fails(
            "s",
            t("a,x"),
            &["\"a,x\" is not a value", "would store \"a\", dropping \"x\""],
        ),
        fails("s", t("5"), &["\"5\" is not a value", "would store \"a,c\""]),
        fits("b", b(b"abcd")),
        fits("b", b(&[0, 1, 2, 0])),
        fails(
            "b",
            b(b"ab"),
            &["\\x6162 is 2 bytes; a binary(4) column pads it with zero bytes to 4: it would store \\x61620000"],
        ),
        fails("b", b(b""), &["\\x is 0 bytes", "it would store \\x00000000"]),
        fails("b", b(b"abcde"), &["5 bytes do not fit: the column holds at most 4"]),
        fits("vb", b(b"ab")),
        fits("vb", b(b"")),
    ]
}

const MARIADB_FIXED_DDL: &str = "c char(5), u char(36), e enum('a','b','B2'), s set('a','b','c'), \
                                 b binary(4), vb varbinary(4)";

/// The same values written by hand, to show what the server does with them in this
/// session: every one is stored changed, and no error is raised.
async fn mariadb_changes_them_silently(conn: &mut Conn, what: &str) {
    conn.batch(&format!("CREATE TABLE raw (id int PRIMARY KEY, {MARIADB_FIXED_DDL})"))
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO raw (id, c, e, s, b) VALUES (1, ?, ?, ?, ?), (2, ?, ?, ?, ?)",
        &[
            Value::Text("ab  ".into()),
            Value::Text("A".into()),
            Value::Text("b,a".into()),
            Value::Bytes(b"ab".to_vec()),
            Value::Text(" ".into()),
            Value::Text("2".into()),
            Value::Text("A,a".into()),
            Value::Bytes(Vec::new()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = conn
        .query("SELECT c, e, s, b FROM raw ORDER BY id", &[], None)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            vec![
                Value::Text("ab".into()),
                Value::Text("a".into()),
                Value::Text("a,b".into()),
                Value::Bytes(b"ab\0\0".to_vec()),
            ],
            vec![
                Value::Text(String::new()),
                Value::Text("b".into()),
                Value::Text("a".into()),
                Value::Bytes(vec![0; 4]),
            ],
        ],
        "{what}: MariaDB changes these values without an error; Lockgate refuses each \
         (but CHAR(5)'s trailing spaces, padding it drops itself)"
    );
    conn.batch("DROP TABLE raw").await.unwrap();
}

/// MariaDB CHAR(n), ENUM, SET and BINARY(n) change values silently in a strict
/// session (Lockgate's own) and in a lenient one: each such value is that row's
/// error naming the column, the value and what MariaDB would store, and nothing is
/// written for it. What a column holds reads back as it is, even ENUM's `''`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_fixed_widths_and_labels_change_no_value() {
    let cases = mariadb_fixed_and_label_cases();
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    let mode = conn.query("SELECT @@SESSION.sql_mode", &[], None).await.unwrap();
    let Value::Text(strict) = &mode[0][0] else {
        panic!("sql_mode is {mode:?}")
    };
    assert!(
        strict.contains("STRICT_ALL_TABLES"),
        "Lockgate's session is strict: {strict}"
    );
    mariadb_changes_them_silently(&mut conn, "strict").await;
    check_refusals_change_nothing(&mut conn, "strict", MARIADB_FIXED_DDL, &cases).await;

    conn.batch("SET SESSION sql_mode = ''").await.unwrap();
    mariadb_changes_them_silently(&mut conn, "non-strict").await;
    check_refusals_change_nothing(&mut conn, "lenient", MARIADB_FIXED_DDL, &cases).await;
    let mode = conn.query("SELECT @@SESSION.sql_mode", &[], None).await.unwrap();
    assert_eq!(mode[0][0], Value::Text(String::new()), "the session stayed lenient");

    // A lenient session stores '' for an unknown label: reading it gives '' back
    // (a value the column holds), though writing '' is refused above.
    conn.batch("INSERT INTO lenient_by_insert (id, e) VALUES (1000, 'zz')")
        .await
        .unwrap();
    let table = conn
        .describe(&TableName::new("lenient_by_insert"))
        .await
        .unwrap()
        .unwrap();
    let rows = all_rows(&mut conn, &table).await;
    let at = table.columns.iter().position(|c| c.name == "e").unwrap();
    assert_eq!(rows.last().unwrap()[0], Value::Int(1000));
    assert_eq!(rows.last().unwrap()[at], Value::Text(String::new()));
    // CHAR(5)'s trailing spaces are dropped: 'ab  ' (case 5) reads back 'ab', and
    // 'abcde     ' (case 8) fits, as 'abcde'.
    let c = table.columns.iter().position(|c| c.name == "c").unwrap();
    let row = |id: i64| rows.iter().find(|r| r[0] == Value::Int(id)).unwrap();
    assert_eq!(row(5)[c], Value::Text("ab".into()));
    assert_eq!(row(6)[c], Value::Text(String::new()));
    assert_eq!(row(8)[c], Value::Text("abcde".into()));
}

/// PostgreSQL `character(n)` pads a value with spaces that carry no meaning: it
/// compares and casts to text without them, and Lockgate reads it without them, so
/// 'ab' comes back 'ab', as from MariaDB's CHAR. A text that ends in spaces is the
/// text without them (its padding, as PostgreSQL compares it): it is stored and read
/// back without them, and its length is counted without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_character_n_keeps_values_without_trailing_spaces() {
    let t = |s: &str| Value::Text(s.to_string());
    let cases = vec![
        fits("c", t("ab")),
        fits("c", t(" ab")),
        fits("c", t("abcde")),
        fits("c", t("")),
        fits("c", t("ab   ")),
        fits("c", t("abcde ")),
        fits("c", t("abcde        ")),
        fails(
            "c",
            t("abcdef "),
            &["\"abcdef\" is 6 characters long", "cut to \"abcde\""],
        ),
        fits("b", t("x ")),
        fits("b", t("a much longer text")),
        fits("c", t("ab \t")),
    ];
    let db = TestDb::new(Engine::Postgres).await;
    let mut conn = db.conn().await;
    check_refusals_change_nothing(&mut conn, "pg", "c character(5), b bpchar", &cases).await;
    // Read back without the spaces (case 5 is 'ab   ', case 7 'abcde' and 8 spaces),
    // and equal to the value without them in PostgreSQL's own terms.
    let table = conn.describe(&TableName::new("pg_by_insert")).await.unwrap().unwrap();
    let rows = all_rows(&mut conn, &table).await;
    let row = |id: i64| rows.iter().find(|r| r[0] == Value::Int(id)).unwrap();
    assert_eq!(row(5)[1], t("ab"));
    assert_eq!(row(7)[1], t("abcde"));
    assert_eq!(row(9)[2], t("x"));
    assert_eq!(row(11)[1], t("ab \t"), "only spaces are padding");
    let r = conn
        .query(
            "SELECT c = 'ab', octet_length(c) FROM pg_by_insert WHERE id = 5",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r[0], vec![Value::Bool(true), Value::Int(5)]);

    // What PostgreSQL does: the padding is no part of the value.
    let r = conn
        .query(
            "SELECT 'ab'::character(5) = 'ab  '::character(5), octet_length('ab'::character(5)), \
                    length('ab'::character(5)), ('ab'::character(5))::text, 'ab'::character(5)",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        r[0],
        vec![Value::Bool(true), Value::Int(5), Value::Int(2), t("ab"), t("ab")],
        "stored padded to 5, yet equal to 'ab  ', 2 characters long, 'ab' as text and as Lockgate reads it"
    );
}

/// SQLite has no fixed-width text: CHAR(5) is TEXT affinity, so trailing spaces and
/// longer texts are kept whole and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_char_keeps_trailing_spaces() {
    let t = |s: &str| Value::Text(s.to_string());
    let cases = vec![
        fits("c", t("ab  ")),
        fits("c", t("ab")),
        fits("c", t(" ")),
        fits("c", t("abcde   ")),
    ];
    let db = TestDb::new(Engine::Sqlite).await;
    let mut conn = db.conn().await;
    check_refusals_change_nothing(&mut conn, "lite", "c CHAR(5)", &cases).await;
    let table = conn.describe(&TableName::new("lite_by_insert")).await.unwrap().unwrap();
    let rows = all_rows(&mut conn, &table).await;
    assert_eq!(rows[0][1], t("ab  "), "read back with its spaces");
    assert_eq!(rows[3][1], t("abcde   "));
}
