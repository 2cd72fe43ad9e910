//! Values never change silently (issue 11, §2), end to end: a transfer between
//! engines and a load into each engine refuse every value the destination column
//! would store differently (a finer fraction of a second, an integer past 2^53 into
//! a double, a longer text), each as that row's error naming the column, the given
//! value and what the column would have stored; `transfer check` names the columns
//! where that can happen. Measured before the fix: PostgreSQL `timestamp(6)`
//! `10:00:00.123456` arrived in a MariaDB DATETIME as `10:00:00`, and the bigint
//! `9007199254740993` in a DOUBLE as `9007199254740992`, both exports "completed".

use crate::support::{count, load, table_rows, temp_file, TestDb};
use lockgate::db::writer::{OnError, WriteMode};
use lockgate::transfer::{self, CreateOptions, RunOptions, SourceSpec, Transfer};
use lockgate_db::{Conn, Engine};

/// A table whose columns keep less than the sources below give: whole seconds
/// (PostgreSQL timestamp(0), MariaDB DATETIME), a double, five characters. SQLite's
/// declared types keep every fraction and every character (they are text).
fn narrow_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CREATE TABLE events (id bigint PRIMARY KEY, at timestamp(0), big double precision, name varchar(5))"
        }
        Engine::Mysql => {
            "CREATE TABLE events (id bigint PRIMARY KEY, at datetime, big double, name varchar(5)) ENGINE=InnoDB"
        }
        Engine::Sqlite => "CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP, big REAL, name VARCHAR(5))",
    }
}

/// A source that keeps microseconds, 64-bit integers and long texts.
fn wide_schema(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "CREATE TABLE events (id bigint PRIMARY KEY, at timestamp(6), big bigint, name text)",
        Engine::Mysql => {
            "CREATE TABLE events (id bigint PRIMARY KEY, at datetime(6), big bigint, name varchar(100)) ENGINE=InnoDB"
        }
        Engine::Sqlite => "CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP, big INTEGER, name TEXT)",
    }
}

/// Row 1 fits everywhere; rows 2 and 5 carry fractions of a second, row 3 an
/// integer past 2^53, row 4 a name of 13 characters.
const WIDE_ROWS: &str = "INSERT INTO events (id, at, big, name) VALUES \
    (1, '2024-01-01 10:00:00', 9007199254740992, 'ok'), \
    (2, '2024-01-01 10:00:00.123456', 1, 'ok'), \
    (3, '2024-01-01 10:00:00', 9007199254740993, 'ok'), \
    (4, '2024-01-01 10:00:00', 2, 'too long name'), \
    (5, '2024-01-01 10:00:00.5', 3, 'ok')";

/// What each failing row's error must say, by key: its column and the given and
/// stored values. SQLite destinations keep fractions and long texts.
fn expected_errors(dest: Engine) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let all = vec![
        (
            "2",
            "at",
            vec![
                "2024-01-01 10:00:00.123456 is more precise than the column, which keeps whole seconds",
                "it would store 2024-01-01 10:00:00",
            ],
        ),
        (
            "3",
            "big",
            vec!["9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992"],
        ),
        (
            "4",
            "name",
            vec!["\"too long name\" is 13 characters long; the column holds at most 5, so it would be cut to \"too l\""],
        ),
        (
            "5",
            "at",
            vec![
                "2024-01-01 10:00:00.500",
                "it would store 2024-01-01 10:00:00 (cut, as MariaDB does) or 2024-01-01 10:00:01 (rounded, as PostgreSQL does)",
            ],
        ),
    ];
    match dest {
        Engine::Sqlite => all.into_iter().filter(|(k, _, _)| *k == "3").collect(),
        _ => all,
    }
}

fn events(src: &TestDb, dst: &TestDb) -> Transfer {
    Transfer {
        name: "events".into(),
        source: src.url.clone(),
        from: SourceSpec::Table("events".into()),
        dest: dst.url.clone(),
        dest_table: "events".into(),
        key: Vec::new(),
        map: Vec::new(),
        batch_size: 2,
        mode: WriteMode::Insert,
        commit_every: None,
        on_error: OnError::Rollback,
        lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
    }
}

/// Each engine as a source and as a destination, including the measured pair.
const PAIRS: [(Engine, Engine); 4] = [
    (Engine::Postgres, Engine::Mysql),
    (Engine::Mysql, Engine::Postgres),
    (Engine::Sqlite, Engine::Mysql),
    (Engine::Postgres, Engine::Sqlite),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_refuses_every_value_the_destination_would_change() {
    for (s, d) in PAIRS {
        let what = format!("{s} -> {d}");
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        let mut sc = src.conn().await;
        sc.batch(wide_schema(s)).await.unwrap();
        sc.batch(WIDE_ROWS).await.unwrap();
        dst.conn().await.batch(narrow_schema(d)).await.unwrap();
        let t = events(&src, &dst);

        // The check passes and names each column that cannot hold every source value.
        let check = transfer::check(&t).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut noted: Vec<(&str, &str)> = check
            .narrowing
            .iter()
            .map(|n| (n.column.as_str(), n.why.as_str()))
            .collect();
        noted.sort_unstable();
        let mut expect = vec![(
            "big",
            "integers past 2^53 do not fit a float64 exactly (it would store a neighbour)",
        )];
        if d != Engine::Sqlite {
            expect.push((
                "at",
                "the column keeps whole seconds: values with a finer fraction of a second are errors",
            ));
            expect.push((
                "name",
                if s == Engine::Mysql {
                    "texts of up to 100 characters do not all fit 5"
                } else {
                    "texts longer than 5 characters do not fit"
                },
            ));
        }
        expect.sort_unstable();
        assert_eq!(noted, expect, "{what}: {:#?}", check.narrowing);

        // The export fails whole, each row that would change named; nothing is kept.
        let created = transfer::create(&t, &CreateOptions::default()).await.unwrap();
        assert!(created.created, "{what}");
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 3, "{what}");
        let e = &r.exports[0];
        assert_eq!(e.export.status, "failed", "{what}");
        let expected = expected_errors(d);
        let got: Vec<(&str, Option<&str>)> = e.errors.iter().map(|x| (x.key.as_str(), x.column.as_deref())).collect();
        let want: Vec<(&str, Option<&str>)> = expected.iter().map(|(k, c, _)| (*k, Some(*c))).collect();
        assert_eq!(got, want, "{what}: {:#?}", e.errors);
        for ((_, _, says), err) in expected.iter().zip(&e.errors) {
            for s in says {
                assert!(err.message.contains(s), "{what}: {:?} does not say {s:?}", err.message);
            }
        }
        let mut dc = dst.conn().await;
        assert_eq!(count(&mut dc, "events").await, 0, "{what}: nothing may be kept");

        // Once the source's values fit, the next export carries them unchanged.
        sc.batch("UPDATE events SET at = '2024-01-01 10:00:00', big = 1, name = 'fixed' WHERE id IN (2, 3, 4, 5)")
            .await
            .unwrap();
        assert!(
            transfer::create(&t, &CreateOptions::default()).await.unwrap().created,
            "{what}"
        );
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
        let mut rows = vec!["1|2024-01-01 10:00:00|9007199254740992|ok".to_string()];
        rows.extend((2..=5).map(|i| format!("{i}|2024-01-01 10:00:00|1|fixed")));
        assert_eq!(table_rows(&mut dc, "events").await.unwrap(), rows, "{what}");
    }
}

/// SQLite keeps what it is given: into its text-typed columns, an export from a
/// source with microseconds and long texts arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_sqlite_fractions_and_long_texts_arrive_whole() {
    let src = TestDb::new(Engine::Mysql).await;
    let dst = TestDb::new(Engine::Sqlite).await;
    let mut sc = src.conn().await;
    sc.batch(wide_schema(Engine::Mysql)).await.unwrap();
    sc.batch(WIDE_ROWS).await.unwrap();
    sc.batch("DELETE FROM events WHERE id = 3").await.unwrap();
    dst.conn().await.batch(narrow_schema(Engine::Sqlite)).await.unwrap();
    let t = events(&src, &dst);
    transfer::create(&t, &CreateOptions::default()).await.unwrap();
    let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(r.exit_code(), 0, "{:?}", r.exports[0].errors);
    assert_eq!(
        table_rows(&mut dst.conn().await, "events").await.unwrap(),
        vec![
            "1|2024-01-01 10:00:00|9007199254740992|ok",
            "2|2024-01-01 10:00:00.123456|1|ok",
            "4|2024-01-01 10:00:00|2|too long name",
            "5|2024-01-01 10:00:00.500|3|ok",
        ]
    );
}

/// The same values from files: a CSV and a JSON array (its number exact), loaded
/// into each engine. Under rollback nothing is kept and each row that would change
/// is reported with its file and line; under skip the rows that fit are kept as
/// given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_refuses_every_value_the_column_would_change() {
    let (_d1, csv) = temp_file(
        "events.csv",
        b"id,at,big,name\n\
          1,2024-01-01 10:00:00,9007199254740992,ok\n\
          2,2024-01-01 10:00:00.123456,1,ok\n\
          3,2024-01-01 10:00:00,9007199254740993,ok\n\
          4,2024-01-01 10:00:00,2,too long name\n\
          5,2024-01-01T10:00:00.5Z,3,ok\n",
    );
    let (_d2, json) = temp_file(
        "more.json",
        b"[{\"id\": 6, \"at\": \"2024-01-01 10:00:00\", \"big\": 9007199254740993, \"name\": \"ok\"}]",
    );
    let files = vec![csv, json];
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let db = TestDb::new(engine).await;
        let mut conn: Conn = db.conn().await;
        conn.batch(narrow_schema(engine)).await.unwrap();

        let r = load(&db, "events", &files, |_| {}).await.unwrap();
        assert_eq!(r.exit_code(), 3, "{engine}");
        assert_eq!(count(&mut conn, "events").await, 0, "{engine}: nothing may stay");
        let mut expected = expected_errors(engine);
        expected.push((
            "6",
            "big",
            vec!["9007199254740993 does not fit a float64 column exactly: it would store 9007199254740992"],
        ));
        let got: Vec<(String, Option<&str>)> = r
            .failed
            .iter()
            .map(|e| (e.key.clone().unwrap_or_default(), e.column.as_deref()))
            .collect();
        let want: Vec<(String, Option<&str>)> =
            expected.iter().map(|(k, c, _)| (format!("id={k}"), Some(*c))).collect();
        assert_eq!(got, want, "{engine}: {:#?}", r.failed);
        for ((k, _, says), e) in expected.iter().zip(&r.failed) {
            for s in says {
                assert!(e.message.contains(s), "{engine}: {:?} does not say {s:?}", e.message);
            }
            // CSV rows are on the line after the header; the JSON record on line 1.
            let line = if *k == "6" { 1 } else { k.parse::<u64>().unwrap() + 1 };
            assert_eq!(e.line, Some(line), "{engine}: {e}");
        }

        let r = load(&db, "events", &files, |o| o.on_error = OnError::Skip)
            .await
            .unwrap();
        assert!(r.committed, "{engine}");
        let kept = table_rows(&mut conn, "events").await.unwrap();
        let want: Vec<&str> = if engine == Engine::Sqlite {
            vec![
                "1|2024-01-01 10:00:00|9007199254740992|ok",
                "2|2024-01-01 10:00:00.123456|1|ok",
                "4|2024-01-01 10:00:00|2|too long name",
                "5|2024-01-01 10:00:00.500|3|ok",
            ]
        } else {
            vec!["1|2024-01-01 10:00:00|9007199254740992|ok"]
        };
        assert_eq!(kept, want, "{engine}");
    }
}

/// A single-precision float says its shortest text: PostgreSQL `real` 0.1 arrives
/// in a MariaDB varchar, double and decimal(10,2) as 0.1 (measured before the fix:
/// '0.10000000149011612', the same in the double, and the decimal refused as having
/// too many places), and MariaDB FLOAT 0.1 in a PostgreSQL numeric as 0.1; a single
/// into a single round-trips exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_float_arrives_as_the_number_it_says() {
    let cases = [
        (
            Engine::Postgres,
            "CREATE TABLE events (id bigint PRIMARY KEY, a real, b real, c real, d real)",
            Engine::Mysql,
            "CREATE TABLE events (id bigint PRIMARY KEY, a varchar(40), b double, c decimal(10,2), d float) ENGINE=InnoDB",
            "1|0.1|0.1|0.10|0.1",
        ),
        (
            Engine::Mysql,
            "CREATE TABLE events (id bigint PRIMARY KEY, a float, b float, c float, d float) ENGINE=InnoDB",
            Engine::Postgres,
            "CREATE TABLE events (id bigint PRIMARY KEY, a text, b double precision, c numeric, d real)",
            "1|0.1|0.1|0.1|0.1",
        ),
    ];
    for (s, src_ddl, d, dst_ddl, want) in cases {
        let what = format!("{s} -> {d}");
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        let mut sc = src.conn().await;
        sc.batch(src_ddl).await.unwrap();
        sc.batch(
            "INSERT INTO events (id, a, b, c, d) VALUES (1, 0.1, 0.1, 0.1, 0.1), (2, 1.25, 16777216, 2.5, 0.123456789)",
        )
        .await
        .unwrap();
        let mut dc = dst.conn().await;
        dc.batch(dst_ddl).await.unwrap();
        let t = events(&src, &dst);
        transfer::create(&t, &CreateOptions::default()).await.unwrap();
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
        let rows = table_rows(&mut dc, "events").await.unwrap();
        assert_eq!(rows[0], want, "{what}");
        // The single 0.123456789 keeps is 0.12345679: a single gets the same single.
        assert!(rows[1].ends_with("|0.12345679"), "{what}: {rows:?}");
        assert!(rows[1].starts_with("2|1.25|16777216|2.5"), "{what}: {rows:?}");
    }
}

/// MariaDB destinations that give back only some values as written: CHAR(n) (no
/// trailing spaces: padding, which is dropped), ENUM and SET (their labels, exactly;
/// a set in declaration order) and BINARY(n) (exactly n bytes; it pads shorter ones
/// with zero bytes).
const MARIADB_FIXED: &str = "CREATE TABLE events (id bigint PRIMARY KEY, c char(5), e enum('a','b'), \
                             s set('a','b','c'), b binary(4)) ENGINE=InnoDB";

/// Row 1 fits; row 2's CHAR(5) value ends in spaces (padding: it fits, as 'ab');
/// rows 3 to 5 each carry one value MariaDB would store changed.
const FREE_ROWS: &str = "INSERT INTO events (id, c, e, s, b) VALUES \
    (1, 'ab', 'a', 'a,c', '\\x61626364'), \
    (2, 'ab  ', 'a', '', '\\x61626364'), \
    (3, 'ab', 'A', 'a', '\\x61626364'), \
    (4, 'ab', 'b', 'b,a', '\\x61626364'), \
    (5, 'ab', 'b', 'a', '\\x6162')";

/// What each failing row's error says: its column, the given value and what
/// MariaDB would store.
fn fixed_errors() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "3",
            "e",
            vec!["\"A\" is not one of the column's labels (\"a\", \"b\"; case and spaces count): MariaDB would store \"a\""],
        ),
        (
            "4",
            "s",
            vec!["\"b,a\" is not a value of the column's set (\"a\", \"b\", \"c\")", "MariaDB would store \"a,b\""],
        ),
        (
            "5",
            "b",
            vec!["\\x6162 is 2 bytes; a binary(4) column pads it with zero bytes to 4: it would store \\x61620000"],
        ),
    ]
}

/// A transfer from PostgreSQL text and bytea into MariaDB CHAR(5), ENUM, SET and
/// BINARY(4): `transfer check` names each column as narrowing (for CHAR(5): trailing
/// spaces are dropped), the export refuses each value MariaDB would store changed
/// (naming column, value and what it would store) and keeps nothing; once the values
/// fit they arrive unchanged, and 'ab  ' arrives as 'ab'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_into_mariadb_labels_and_fixed_widths_changes_no_value() {
    let src = TestDb::new(Engine::Postgres).await;
    let dst = TestDb::new(Engine::Mysql).await;
    let mut sc = src.conn().await;
    sc.batch("CREATE TABLE events (id bigint PRIMARY KEY, c text, e text, s text, b bytea)")
        .await
        .unwrap();
    sc.batch(FREE_ROWS).await.unwrap();
    let mut dc = dst.conn().await;
    dc.batch(MARIADB_FIXED).await.unwrap();
    let t = events(&src, &dst);

    let check = transfer::check(&t).await.unwrap();
    let mut noted: Vec<(&str, &str)> = check
        .narrowing
        .iter()
        .map(|n| (n.column.as_str(), n.why.as_str()))
        .collect();
    noted.sort_unstable();
    assert_eq!(
        noted,
        vec![
            (
                "b",
                "values longer than 4 bytes do not fit; values shorter than 4 bytes are errors: binary(4) pads them with zero bytes"
            ),
            (
                "c",
                "trailing spaces are dropped: char(5) pads values with spaces and gives them back without; \
                 texts longer than 5 characters do not fit"
            ),
            ("e", "only the labels of enum('a','b') fit, exactly: other texts are errors"),
            (
                "s",
                "only the labels of set('a','b','c') fit, joined by commas in its order: other texts are errors"
            ),
        ],
        "{:#?}",
        check.narrowing
    );

    assert!(transfer::create(&t, &CreateOptions::default()).await.unwrap().created);
    let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(r.exit_code(), 3);
    let e = &r.exports[0];
    assert_eq!(e.export.status, "failed");
    let expected = fixed_errors();
    let got: Vec<(&str, Option<&str>)> = e.errors.iter().map(|x| (x.key.as_str(), x.column.as_deref())).collect();
    let want: Vec<(&str, Option<&str>)> = expected.iter().map(|(k, c, _)| (*k, Some(*c))).collect();
    assert_eq!(got, want, "{:#?}", e.errors);
    for ((_, _, says), err) in expected.iter().zip(&e.errors) {
        for s in says {
            assert!(err.message.contains(s), "{:?} does not say {s:?}", err.message);
        }
    }
    assert_eq!(count(&mut dc, "events").await, 0, "nothing may be kept");

    // Row 2 keeps its 'ab  ': padding, which arrives dropped.
    sc.batch("UPDATE events SET e = 'a', s = 'a,b', b = '\\x61626364' WHERE id IN (2, 3, 4, 5)")
        .await
        .unwrap();
    assert!(transfer::create(&t, &CreateOptions::default()).await.unwrap().created);
    let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(r.exit_code(), 0, "{:?}", r.exports[0].errors);
    let mut rows = vec!["1|ab|a|a,c|\\x61626364".to_string()];
    rows.extend((2..=5).map(|i| format!("{i}|ab|a|a,b|\\x61626364")));
    assert_eq!(table_rows(&mut dc, "events").await.unwrap(), rows);
}

/// The same values from a file: a load into MariaDB refuses each row whose value
/// the server would store changed, with its file and line; nothing is kept. Row 2's
/// 'ab  ' is not among them: a CHAR(5)'s trailing spaces are padding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_into_mariadb_labels_and_fixed_widths_changes_no_value() {
    let (_dir, csv) = temp_file(
        "events.csv",
        b"id,c,e,s,b\n\
          1,ab,a,\"a,c\",\\x61626364\n\
          2,ab  ,a,,\\x61626364\n\
          3,ab,A,a,\\x61626364\n\
          4,ab,b,\"b,a\",\\x61626364\n\
          5,ab,b,a,\\x6162\n",
    );
    let db = TestDb::new(Engine::Mysql).await;
    let mut conn = db.conn().await;
    conn.batch(MARIADB_FIXED).await.unwrap();
    let r = load(&db, "events", std::slice::from_ref(&csv), |_| {}).await.unwrap();
    assert_eq!(r.exit_code(), 3);
    assert_eq!(count(&mut conn, "events").await, 0, "nothing may stay");
    let expected = fixed_errors();
    let got: Vec<(String, Option<&str>, Option<u64>)> = r
        .failed
        .iter()
        .map(|e| (e.key.clone().unwrap_or_default(), e.column.as_deref(), e.line))
        .collect();
    let want: Vec<(String, Option<&str>, Option<u64>)> = expected
        .iter()
        .map(|(k, c, _)| (format!("id={k}"), Some(*c), Some(k.parse::<u64>().unwrap() + 1)))
        .collect();
    assert_eq!(got, want, "{:#?}", r.failed);
    for ((_, _, says), e) in expected.iter().zip(&r.failed) {
        for s in says {
            assert!(e.message.contains(s), "{:?} does not say {s:?}", e.message);
        }
    }
}

/// `character(n)` both ways between PostgreSQL and MariaDB, and into SQLite: the
/// value is the text without its padding, on every engine, so 'ab' arrives as 'ab'
/// and the check notes nothing between two char(5) columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn char_n_values_arrive_without_their_padding() {
    let pairs = [
        (
            Engine::Postgres,
            "CREATE TABLE events (id bigint PRIMARY KEY, c character(5))",
            Engine::Mysql,
            "CREATE TABLE events (id bigint PRIMARY KEY, c char(5)) ENGINE=InnoDB",
        ),
        (
            Engine::Mysql,
            "CREATE TABLE events (id bigint PRIMARY KEY, c char(5)) ENGINE=InnoDB",
            Engine::Postgres,
            "CREATE TABLE events (id bigint PRIMARY KEY, c character(5))",
        ),
        (
            Engine::Postgres,
            "CREATE TABLE events (id bigint PRIMARY KEY, c character(5))",
            Engine::Sqlite,
            "CREATE TABLE events (id INTEGER PRIMARY KEY, c TEXT)",
        ),
    ];
    for (s, src_ddl, d, dst_ddl) in pairs {
        let what = format!("{s} -> {d}");
        let src = TestDb::new(s).await;
        let dst = TestDb::new(d).await;
        let mut sc = src.conn().await;
        sc.batch(src_ddl).await.unwrap();
        sc.batch("INSERT INTO events (id, c) VALUES (1, 'ab'), (2, ' ab'), (3, 'abcde'), (4, '')")
            .await
            .unwrap();
        let mut dc = dst.conn().await;
        dc.batch(dst_ddl).await.unwrap();
        let t = events(&src, &dst);
        let check = transfer::check(&t).await.unwrap();
        assert!(check.narrowing.is_empty(), "{what}: {:#?}", check.narrowing);
        transfer::create(&t, &CreateOptions::default()).await.unwrap();
        let r = transfer::run_pending(std::slice::from_ref(&t), &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_code(), 0, "{what}: {:?}", r.exports[0].errors);
        assert_eq!(
            table_rows(&mut dc, "events").await.unwrap(),
            vec!["1|ab", "2| ab", "3|abcde", "4|"],
            "{what}"
        );
    }
}
