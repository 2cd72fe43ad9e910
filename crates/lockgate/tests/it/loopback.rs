//! oe-migration's record semantics and loopback model JSON, on each engine, from
//! realistic `db/` folders: a data file holding one object, idInjection and
//! generated ids, records without their key's value, tables without a key, JSON
//! columns holding what the JSON says, `dump` then `migrate` of every model type,
//! defaults in each engine's literal form (and `"$now"`), base models (and the
//! tables that only-base models do not get), indexes, every definition checked
//! before the first DDL statement (MariaDB's kept schema changes named when DDL did
//! run; on MariaDB a file into a table an earlier version of the run creates checked
//! against that table's planned columns), and each failing record of a compact JSON
//! array logged with its own data, keyed or not.

use crate::migrate::{entry, entry_with, logs, meta, run, run_ok, snapshot, strings, Bundle};
use crate::support::*;
use lockgate::{DumpOptions, MigrateError};
use lockgate_db::Engine;
use serde_json::json;

/// A loopback `Customer` as an app's `common/models/customer.json` says it: no id
/// property (idInjection gives one), shorthand properties, a unique index, hidden
/// fields, a base model.
const CUSTOMER_MODEL: &str = r#"{
  "name": "Customer",
  "base": "PersistedModel",
  "idInjection": true,
  "hidden": ["secret"],
  "properties": {
    "email": {"type": "string", "required": true, "max": 120, "index": {"unique": true}},
    "name": "string",
    "secret": {"type": "string", "hidden": true},
    "vip": "boolean"
  },
  "relations": {"orders": {"type": "hasMany", "model": "Order"}},
  "acls": []
}"#;

/// An `Order` whose id the database generates, as `"id": true, "generated": true`.
const ORDER_MODEL: &str = r#"{
  "name": "Order",
  "base": "PersistedModel",
  "properties": {
    "orderId": {"type": "number", "id": true, "generated": true},
    "customerEmail": {"type": "string", "required": true},
    "total": {"type": "number", "dataType": "decimal", "precision": 10, "scale": 2}
  }
}"#;

fn customer_bundle() -> Bundle {
    let b = Bundle::new();
    b.put("models/Customer.json", CUSTOMER_MODEL)
        .put("models/Order.json", ORDER_MODEL)
        .json(
            "1.0.0/meta.json",
            meta(json!([
                entry("Customer", "default/Customer.json"),
                entry("Order", "default/Order.json")
            ])),
        )
        // No ids: the database generates them; one record gives its own.
        .json(
            "1.0.0/default/Customer.json",
            json!([
                {"email": "ann@x.com", "name": "Ann", "vip": true},
                {"email": "bob@x.com", "name": "Bob", "secret": "s"},
                {"id": 10, "email": "cy@x.com", "name": "Cy"}
            ]),
        )
        // A file holding one object is one record.
        .put(
            "1.0.0/default/Order.json",
            r#"{"customerEmail": "ann@x.com", "total": 12.5}"#,
        );
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ids_are_made_by_the_database_and_records_without_one_are_inserted() {
    let b = customer_bundle();
    // 1.1.0: a record with an id updates it, records without one (or with a null id)
    // are new rows whose ids come after every id given so far.
    b.json(
        "1.1.0/meta.json",
        meta(json!([
            entry("Customer", "default/Customer.json"),
            entry("Order", "default/Order.json")
        ])),
    )
    .json(
        "1.1.0/default/Customer.json",
        json!([
            {"id": 10, "email": "cy@x.com", "name": "Cyrus"},
            {"email": "dee@x.com", "name": "Dee"},
            {"id": null, "email": "eve@x.com", "name": "Eve"}
        ]),
    )
    .json(
        "1.1.0/default/Order.json",
        json!([{"orderId": 1, "customerEmail": "ann@x.com", "total": 13}, {"customerEmail": "bob@x.com", "total": 1}]),
    );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |o| o.to = Some("1.0.0".parse().unwrap())).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        let t = conn.find_table("Customer").await.unwrap();
        assert_eq!(t.primary_key, strings(&["id"]), "{engine}");
        assert!(t.column("id").unwrap().auto, "{engine}: id is generated");
        assert!(!t.column("id").unwrap().nullable, "{engine}");
        let o = conn.find_table("Order").await.unwrap();
        assert_eq!(o.primary_key, strings(&["orderId"]), "{engine}");
        assert!(o.column("orderId").unwrap().auto, "{engine}");
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            strings(&[
                "1|ann@x.com|Ann|NULL|true",
                "2|bob@x.com|Bob|s|NULL",
                "10|cy@x.com|Cy|NULL|NULL"
            ]),
            "{engine}"
        );
        assert_eq!(
            table_rows(&mut conn, "Order").await.unwrap(),
            strings(&["1|ann@x.com|12.50"]),
            "{engine}"
        );

        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let step = &r.versions[0].steps[0];
        assert_eq!((step.inserted, step.updated), (2, 1), "{engine}: {step:?}");
        // Ids after 10: PostgreSQL's identity was moved past the ids files gave.
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            strings(&[
                "1|ann@x.com|Ann|NULL|true",
                "2|bob@x.com|Bob|s|NULL",
                "10|cy@x.com|Cyrus|NULL|NULL",
                "11|dee@x.com|Dee|NULL|NULL",
                "12|eve@x.com|Eve|NULL|NULL"
            ]),
            "{engine}"
        );
        assert_eq!(
            table_rows(&mut conn, "Order").await.unwrap(),
            strings(&["1|ann@x.com|13.00", "2|bob@x.com|1.00"]),
            "{engine}"
        );
        // The unique index of `"index": {"unique": true}` holds.
        let again = Bundle::new();
        again
            .put("models/Customer.json", CUSTOMER_MODEL)
            .json("9.0.0/meta.json", meta(json!([entry("Customer", "default/c.json")])))
            .json("9.0.0/default/c.json", json!([{"email": "ann@x.com", "name": "Twin"}]));
        let r = run_ok(&db, &again, |_| {}).await;
        assert_eq!(r.exit_code(), 3, "{engine}: {r:?}");
        let failure = &r.versions[0].failures[0];
        assert_eq!(failure.error.line, Some(2), "{engine}: {failure:?}");
        assert_eq!(table_rows(&mut conn, "Customer").await.unwrap().len(), 5, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_attributes_without_the_key_is_that_records_error() {
    let b = customer_bundle();
    b.json(
        "1.1.0/meta.json",
        meta(json!([entry_with(
            "Customer",
            "default/upd.json",
            json!({"updateAttributes": true})
        )])),
    )
    .put(
        "1.1.0/default/upd.json",
        "[\n{\"id\": 1, \"name\": \"Ann B\"},\n{\"name\": \"nobody\"},\n{\"id\": null, \"name\": \"null\"}\n]\n",
    );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |o| o.to = Some("1.0.0".parse().unwrap())).await;
        let before = snapshot(&db, &["Customer"]).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 3, "{engine}: {r:?}");
        let failures = &r.versions[0].failures;
        let lines: Vec<Option<u64>> = failures.iter().map(|f| f.error.line).collect();
        assert_eq!(lines, vec![Some(3), Some(4)], "{engine}: {failures:?}");
        assert!(
            failures[0].error.message.contains("does not give key column id"),
            "{engine}: {}",
            failures[0].error.message
        );
        assert_eq!(snapshot(&db, &["Customer"]).await, before, "{engine}: nothing kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_key_is_loaded_as_inserts_and_force_relies_on_clear_tables() {
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        db.conn()
            .await
            .batch("CREATE TABLE audit (who varchar(20), what varchar(20))")
            .await
            .unwrap();
        let b = Bundle::new();
        b.json(
            "1.0.0/meta.json",
            json!({"contexts": crate::migrate::contexts(), "files": [entry("audit", "default/audit.json")], "clearTables": true}),
        )
        .json(
            "1.0.0/default/audit.json",
            json!([{"who": "a", "what": "x"}, {"who": "a", "what": "x"}]),
        );
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        assert_eq!(count(&mut conn, "audit").await, 2, "{engine}");
        // --force: clearTables empties the table first, so the rows are not doubled.
        let r = run_ok(&db, &b, |o| o.force = true).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        assert_eq!(count(&mut conn, "audit").await, 2, "{engine}");
        // Without clearTables a re-run adds the rows again, as oe-migration does.
        b.json("1.0.0/meta.json", meta(json!([entry("audit", "default/audit.json")])));
        run_ok(&db, &b, |o| o.force = true).await;
        assert_eq!(count(&mut conn, "audit").await, 4, "{engine}");
        // updateAttributes needs a key: refused before anything is written.
        b.json(
            "2.0.0/meta.json",
            meta(json!([entry_with(
                "audit",
                "default/audit.json",
                json!({"updateAttributes": true})
            )])),
        )
        .json("2.0.0/default/audit.json", json!([{"who": "a"}]));
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(e.to_string().contains("no primary key and no id"), "{engine}: {e}");
        assert_eq!(count(&mut conn, "audit").await, 4, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reads_a_file_holding_one_object() {
    for engine in ENGINES {
        let db = customers_db(engine).await;
        let (_d, file) = temp_file(
            "one.json",
            br#"{"customer_id": 7, "first_name": "A", "last_name": "B", "email": "a@b", "acquisition_date": "2024-01-02"}"#,
        );
        let r = load(&db, "customers", &[file], |_| {}).await.unwrap();
        assert_eq!((r.rows_read, r.inserted), (1, 1), "{engine}");
        let mut conn = db.conn().await;
        assert_eq!(count(&mut conn, "customers").await, 1, "{engine}");
    }
}

/// Every loopback type, shorthand and long form, a generated id and defaults.
const EVERY_TYPE_MODEL: &str = r#"{
  "name": "Thing",
  "properties": {
    "id": {"type": "number", "id": true, "generated": true},
    "label": "string",
    "code": {"type": "string", "max": 8, "required": true},
    "ratio": "number",
    "price": {"type": "number", "precision": 12, "scale": 2},
    "cost": {"type": "number", "dataType": "decimal", "precision": 9, "scale": 3},
    "qty": {"type": "integer"},
    "active": "boolean",
    "born": "date",
    "day": {"type": "date", "dataType": "date"},
    "meta": "object",
    "tags": ["string"],
    "list": "array",
    "anything": "any",
    "blob": "buffer"
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_columns_hold_what_the_json_says_and_a_dump_migrates_back_identically() {
    let b = Bundle::new();
    b.put("models/Thing.json", EVERY_TYPE_MODEL)
        .json("1.0.0/meta.json", meta(json!([entry("Thing", "default/Thing.json")])))
        .json(
            "1.0.0/default/Thing.json",
            json!([
                {"label": "full", "code": "A1", "ratio": 0.25, "price": 10.5, "cost": 1.125, "qty": 3,
                 "active": true, "born": "2020-01-01T10:00:00.123Z", "day": "2021-02-03",
                 "meta": {"s": 1, "n": [1, 2]}, "tags": ["a", "b"], "list": [1, {"x": null}],
                 "anything": "text", "blob": "\\x00ff"},
                // A JSON string stays a string in a JSON column, even one holding JSON text.
                {"label": "strings", "code": "B2", "meta": "{\"s\":1}", "tags": "[]", "anything": "42"},
                {"label": "scalars", "code": "C3", "meta": 5, "list": true, "anything": null},
                {"code": "D4"}
            ]),
        );
    for engine in ENGINES {
        let source = TestDb::new(engine).await;
        let r = run_ok(&source, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = source.conn().await;
        let t = conn.find_table("Thing").await.unwrap();
        let kinds: Vec<lockgate_core::Kind> = ["meta", "tags", "anything"]
            .iter()
            .map(|c| t.column(c).unwrap().kind.clone())
            .collect();
        let d = conn.dialect();
        let sql = format!(
            "SELECT {}, {}, {} FROM {} ORDER BY {}",
            d.quote("meta"),
            d.quote("tags"),
            d.quote("anything"),
            d.quote("Thing"),
            d.quote("id")
        );
        let values = conn.query(&sql, &[], Some(&kinds)).await.unwrap();
        let json_of = |v: &lockgate_core::Value| v.to_json();
        assert_eq!(json_of(&values[0][0]), json!({"s": 1, "n": [1, 2]}), "{engine}");
        assert_eq!(
            json_of(&values[0][2]),
            json!("text"),
            "{engine}: {{\"any\": \"text\"}} works"
        );
        assert_eq!(
            json_of(&values[1][0]),
            json!("{\"s\":1}"),
            "{engine}: stored as the string"
        );
        assert_eq!(json_of(&values[1][1]), json!("[]"), "{engine}");
        assert_eq!(json_of(&values[1][2]), json!("42"), "{engine}");
        assert_eq!(json_of(&values[2][0]), json!(5), "{engine}");
        let original = table_rows(&mut conn, "Thing").await.unwrap();

        // dump, then migrate into an empty database of the same engine.
        let out = tempfile::tempdir().unwrap();
        let folder = out.path().join("db");
        lockgate::dump(
            &source.url,
            &DumpOptions {
                tables: vec!["Thing".into()],
                out: folder.clone(),
                ..DumpOptions::default()
            },
        )
        .await
        .unwrap();
        let target = TestDb::new(engine).await;
        let r = lockgate::migrate(
            &target.url,
            &lockgate::MigrateOptions {
                dir: folder.clone(),
                ..lockgate::MigrateOptions::default()
            },
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut back = target.conn().await;
        assert_eq!(table_rows(&mut back, "Thing").await.unwrap(), original, "{engine}");
        let tb = back.find_table("Thing").await.unwrap();
        assert!(tb.column("id").unwrap().auto, "{engine}: the id is generated again");
        for c in &t.columns {
            assert_eq!(tb.column(&c.name).unwrap().kind, c.kind, "{engine}: column {}", c.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_are_written_in_each_engines_literal_form_and_now_is_the_current_time() {
    let b = Bundle::new();
    b.put(
        "models/Event.json",
        r#"{"name": "Event", "properties": {
            "title": {"type": "string", "required": true}
        }}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Event", "default/e.json")])))
    .json("1.0.0/default/e.json", json!([{"title": "old"}]))
    // 1.1.0 adds required date columns to a table that has a row.
    .put(
        "1.1.0/ddl/Event.json",
        r#"{"name": "Event", "properties": {
            "title": {"type": "string", "required": true},
            "starts": {"type": "date", "required": true, "default": "2020-01-01T00:00:00Z"},
            "flag": {"type": "boolean", "default": true},
            "note": {"type": "string", "default": "it's \\ here"}
        }}"#,
    )
    .json("1.1.0/meta.json", meta(json!([entry("Event", "default/e.json")])))
    .json("1.1.0/default/e.json", json!([{"title": "new"}]))
    // 2.0.0: a new table whose date defaults to the current time ($now, defaultFn).
    .put(
        "2.0.0/ddl/Visit.json",
        r#"{"name": "Visit", "properties": {
            "who": {"type": "string", "required": true},
            "at": {"type": "date", "required": true, "default": "$now"},
            "seen": {"type": "date", "defaultFn": "now"}
        }}"#,
    )
    .json("2.0.0/meta.json", meta(json!([entry("Visit", "default/v.json")])))
    .json("2.0.0/default/v.json", json!([{"who": "a"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let before = chrono::Utc::now() - chrono::Duration::seconds(5);
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        let rows = table_rows(&mut conn, "Event").await.unwrap();
        // MariaDB keeps instants as UTC DATETIME(6), read back without a zone.
        let zone = if engine == Engine::Mysql { "" } else { "+00:00" };
        assert_eq!(
            rows,
            vec![
                format!("1|old|2020-01-01 00:00:00{zone}|true|it's \\ here"),
                format!("2|new|2020-01-01 00:00:00{zone}|true|it's \\ here")
            ],
            "{engine}"
        );
        let t = conn.find_table("Visit").await.unwrap();
        let kinds = vec![
            t.column("at").unwrap().kind.clone(),
            t.column("seen").unwrap().kind.clone(),
        ];
        let d = conn.dialect();
        let sql = format!(
            "SELECT {}, {} FROM {}",
            d.quote("at"),
            d.quote("seen"),
            d.quote("Visit")
        );
        let row = conn.query(&sql, &[], Some(&kinds)).await.unwrap().remove(0);
        for v in row {
            let at = match v {
                lockgate_core::Value::TimestampTz(at) => at,
                lockgate_core::Value::Timestamp(at) if engine == Engine::Mysql => at.and_utc(),
                other => panic!("{engine}: {other:?} is not an instant"),
            };
            assert!(
                at >= before && at <= chrono::Utc::now() + chrono::Duration::seconds(5),
                "{engine}: {at}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_is_checked_and_written_for_the_declared_data_type() {
    // A `date` column's default is a date (not an instant), an `integer` column's a
    // whole number: records that omit them read back as those.
    let b = Bundle::new();
    b.put(
        "1.0.0/ddl/Slot.json",
        r#"{"name": "Slot", "properties": {
            "who": {"type": "string", "required": true},
            "d": {"type": "date", "dataType": "date", "default": "2021-02-03"},
            "n": {"type": "number", "dataType": "integer", "default": 7}
        }}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Slot", "default/s.json")])))
    .json(
        "1.0.0/default/s.json",
        json!([{"who": "a"}, {"who": "b", "d": "2022-05-06", "n": 8}]),
    );
    // A default the declared type cannot hold is refused before anything is created.
    let bad = Bundle::new();
    bad.put(
        "1.0.0/ddl/Slot.json",
        r#"{"name": "Slot", "properties": {"n": {"type": "number", "dataType": "integer", "default": 1.5}}}"#,
    )
    .json("1.0.0/meta.json", meta(json!([])));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        let t = conn.find_table("Slot").await.unwrap();
        assert_eq!(t.column("d").unwrap().kind, lockgate_core::Kind::Date, "{engine}");
        assert_eq!(
            table_rows(&mut conn, "Slot").await.unwrap(),
            strings(&["1|a|2021-02-03|7", "2|b|2022-05-06|8"]),
            "{engine}"
        );
        let db = TestDb::new(engine).await;
        let e = run(&db, &bad, |_| {}).await.unwrap_err();
        let text = e.to_string();
        assert_eq!(e.exit_code(), 2, "{engine}: {text}");
        assert!(
            text.contains("Slot.json") && text.contains("\"n\"") && text.contains("dataType integer"),
            "{engine}: {text}"
        );
        assert!(
            db.conn().await.lookup_table("Slot").await.unwrap().is_none(),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_models_give_their_properties_and_unknown_model_json_is_a_clear_error() {
    let b = Bundle::new();
    b.put(
        "models/Party.json",
        r#"{"name": "Party", "base": "BaseEntity", "idInjection": false, "properties": {
            "code": {"type": "string", "id": true, "max": 10},
            "name": {"type": "string", "required": true}
        }, "indexes": {"party_name_idx": {"keys": {"name": 1}}}}"#,
    )
    .put(
        "models/Supplier.json",
        r#"{"name": "Supplier", "base": "Party", "properties": {
            "name": {"type": "string", "required": false},
            "rating": "number"
        }}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Supplier", "default/s.json")])))
    .json("1.0.0/default/s.json", json!([{"code": "S1", "rating": 4.5}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        let t = conn.find_table("Supplier").await.unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["code", "name", "rating"], "{engine}");
        assert_eq!(t.primary_key, strings(&["code"]), "{engine}: no injected id");
        assert!(t.column("name").unwrap().nullable, "{engine}: the own property wins");
        assert!(
            t.indexes.iter().any(|i| i.columns == strings(&["name"])),
            "{engine}: the base's index: {:?}",
            t.indexes
        );
        assert_eq!(
            table_rows(&mut conn, "Supplier").await.unwrap(),
            strings(&["S1|NULL|4.5"]),
            "{engine}"
        );
        assert!(
            conn.lookup_table("Party").await.unwrap().is_none(),
            "{engine}: Party only serves as Supplier's base"
        );
    }
    // Errors name the file and what to change; nothing is created.
    let cases: [(&str, &str, &str); 3] = [
        (
            r#"{"name": "Bad", "base": "Nowhere", "properties": {"a": "string"}}"#,
            "\"base\" is \"Nowhere\"",
            "add \"Nowhere\"'s definition",
        ),
        (
            r#"{"name": "Bad", "properties": {"a": {"type": "string", "postgresql": {"columnName": "b"}}}}"#,
            "\"postgresql.columnName\" is not supported",
            "rename the property",
        ),
        (
            r#"{"name": "Bad", "properties": {"a": {"type": "string", "defaultFn": "uuidv4"}}}"#,
            "\"defaultFn\" \"uuidv4\" is not supported",
            "property \"a\"",
        ),
    ];
    for (model, what, hint) in cases {
        let b = Bundle::new();
        b.put("1.0.0/ddl/Bad.json", model)
            .json("1.0.0/meta.json", meta(json!([])));
        for engine in ENGINES {
            let db = TestDb::new(engine).await;
            let e = run(&db, &b, |_| {}).await.unwrap_err();
            let text = e.to_string();
            assert_eq!(e.exit_code(), 2, "{engine}: {text}");
            assert!(
                text.contains("Bad.json") && text.contains(what) && text.contains(hint),
                "{engine}: {text}"
            );
            assert!(db.conn().await.lookup_table("Bad").await.unwrap().is_none(), "{engine}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_definition_and_file_is_checked_before_the_first_ddl() {
    // A good definition and a bad one (its default does not fit its type): nothing
    // is created, on every engine (MariaDB included, whose DDL cannot roll back).
    let b = Bundle::new();
    b.put(
        "1.0.0/ddl/Aaa.json",
        r#"{"name": "Aaa", "properties": {"x": "string"}}"#,
    )
    .put(
        "1.0.0/ddl/Zzz.json",
        r#"{"name": "Zzz", "properties": {"n": {"type": "integer", "default": "many"}}}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Aaa", "default/a.json")])))
    .json("1.0.0/default/a.json", json!([{"x": "1"}]));
    // A file giving a column its table will not have, after a table it creates.
    let c = Bundle::new();
    c.put(
        "1.0.0/ddl/Aaa.json",
        r#"{"name": "Aaa", "properties": {"x": "string"}}"#,
    )
    .put(
        "1.0.0/ddl/Bbb.json",
        r#"{"name": "Bbb", "properties": {"y": "string"}}"#,
    )
    .json(
        "1.0.0/meta.json",
        meta(json!([entry("Aaa", "default/a.json"), entry("Bbb", "default/b.json")])),
    )
    .json("1.0.0/default/a.json", json!([{"x": "1"}]))
    .put("1.0.0/default/b.json", "[{\"y\": \"1\"},\n{\"y\": \"2\", \"typo\": 3}]");
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(
            e.to_string().contains("Zzz.json") && e.to_string().contains("\"n\""),
            "{engine}: {e}"
        );
        let mut conn = db.conn().await;
        for t in ["Aaa", "Zzz"] {
            assert!(
                conn.lookup_table(t).await.unwrap().is_none(),
                "{engine}: {t} was created"
            );
        }
        let e = run(&db, &c, |_| {}).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{engine}: {e}");
        assert!(e.to_string().contains("typo"), "{engine}: {e}");
        for t in ["Aaa", "Bbb"] {
            assert!(
                conn.lookup_table(t).await.unwrap().is_none(),
                "{engine}: {t} was created"
            );
        }
    }
    // MariaDB: a version that changes the schema has every data file read through
    // first, also one into a table it does not change (here one applied before).
    let d = Bundle::new();
    d.put("1.0.0/ddl/Aa.json", r#"{"name": "Aa", "properties": {"x": "string"}}"#)
        .json("1.0.0/meta.json", meta(json!([entry("Aa", "default/a.json")])))
        .json("1.0.0/default/a.json", json!([{"x": "1"}]));
    let db = TestDb::new(Engine::Mysql).await;
    let r = run_ok(&db, &d, |_| {}).await;
    assert_eq!(r.exit_code(), 0, "{r:?}");
    d.put("2.0.0/ddl/Bb.json", r#"{"name": "Bb", "properties": {"y": "string"}}"#)
        .json(
            "2.0.0/meta.json",
            meta(json!([entry("Bb", "default/b.json"), entry("Aa", "default/a.json")])),
        )
        .json("2.0.0/default/b.json", json!([{"y": "1"}]))
        .put("2.0.0/default/a.json", "[{\"x\": \"2\"},\n{\"x\": \"3\", \"typo\": 3}]");
    let e = run(&db, &d, |_| {}).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(
        e.to_string().contains("typo") && e.to_string().contains("table Aa"),
        "{e}"
    );
    let mut conn = db.conn().await;
    assert!(conn.lookup_table("Bb").await.unwrap().is_none(), "Bb was created");
    assert_eq!(count(&mut conn, "Aa").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_names_the_schema_changes_that_stayed_when_a_version_fails() {
    let b = Bundle::new();
    b.put(
        "1.0.0/ddl/Kept.json",
        r#"{"name": "Kept", "properties": {"x": {"type": "string", "required": true}}}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Kept", "default/k.json")])))
    .json("1.0.0/default/k.json", json!([{"x": "ok"}, {"x": null}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        let v = &r.versions[0];
        let exists = db.conn().await.lookup_table("Kept").await.unwrap().is_some();
        if engine == Engine::Mysql {
            assert_eq!(r.exit_code(), 5, "{engine}: {r:?}");
            assert_eq!(v.schema_kept, strings(&["create table Kept (id, x)"]), "{engine}");
            assert!(
                v.error
                    .as_deref()
                    .unwrap()
                    .contains("these stay: create table Kept (id, x)"),
                "{engine}: {:?}",
                v.error
            );
            assert!(exists, "{engine}");
        } else {
            assert_eq!(r.exit_code(), 3, "{engine}: {r:?}");
            assert!(v.schema_kept.is_empty(), "{engine}");
            assert!(!exists, "{engine}: rolled back with the version");
        }
        let mut conn = db.conn().await;
        if exists {
            assert_eq!(count(&mut conn, "Kept").await, 0, "{engine}: the data was rolled back");
        }
    }
    // An error that is not a record's, after MariaDB's DDL: a MigrateError saying so.
    let c = Bundle::new();
    c.put(
        "1.0.0/ddl/Kept.json",
        r#"{"name": "Kept", "properties": {"x": "string"}}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Kept", "default/k.json")])))
    .put("1.0.0/default/k.json", "[{\"x\": \"a\"}, {\"x\": ]");
    let db = TestDb::new(Engine::Mysql).await;
    let e = run(&db, &c, |_| {}).await.unwrap_err();
    // The malformed file is found by reading it before the DDL: nothing stays.
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(db.conn().await.lookup_table("Kept").await.unwrap().is_none());
    assert!(!matches!(e, MigrateError::SchemaKept(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_and_without_ids_in_one_file_are_all_inserted() {
    // The keyless records must not take ids a record gives (before or after them):
    // that record would then update the generated row instead of inserting its own.
    let b = Bundle::new();
    b.put("models/gid.json", r#"{"name":"gid","properties":{"name":"string"}}"#)
        .json("1.0.0/meta.json", meta(json!([entry("gid", "default/gid.json")])))
        .json(
            "1.0.0/default/gid.json",
            json!([{"id": 1, "name": "a"}, {"name": "b"}, {"id": 2, "name": "c"}, {"name": "d"}]),
        )
        // Keyless first, on a table that has rows (ids past any the first version
        // may have generated, since MariaDB's rolled-back ids leave gaps).
        .json("1.1.0/meta.json", meta(json!([entry("gid", "default/gid.json")])))
        .json(
            "1.1.0/default/gid.json",
            json!([{"name": "e"}, {"id": 50, "name": "f"}, {"name": "g"}, {"id": 90, "name": "h"}]),
        );
    for engine in ENGINES {
        // One batch per column set, and one batch per record (input order).
        for batch_rows in [10_000, 1] {
            let db = TestDb::new(engine).await;
            let r = run_ok(&db, &b, |o| o.batch_rows = batch_rows).await;
            assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
            for v in &r.versions {
                let step = &v.steps[0];
                assert_eq!(
                    (step.rows_read, step.inserted, step.updated, step.failed),
                    (4, 4, 0, 0),
                    "{engine} {batch_rows}: {step:?}"
                );
            }
            let mut conn = db.conn().await;
            let rows = table_rows(&mut conn, "gid").await.unwrap();
            let mut names: Vec<&str> = rows.iter().map(|r| r.split('|').nth(1).unwrap()).collect();
            names.sort();
            assert_eq!(
                names,
                ["a", "b", "c", "d", "e", "f", "g", "h"],
                "{engine} {batch_rows}: {rows:?}"
            );
            for given in ["1|a", "2|c", "50|f", "90|h"] {
                assert!(rows.contains(&given.to_string()), "{engine} {batch_rows}: {rows:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_only_serves_as_a_base_gets_a_table_only_where_a_version_names_it() {
    // An app's common properties in a `BaseEntity` of its own, a second base on it,
    // and the model the data goes into: only that model's table is made, with every
    // base's properties.
    let b = Bundle::new();
    b.put(
        "models/BaseEntity.json",
        r#"{"name": "BaseEntity", "base": "PersistedModel", "properties": {
            "createdBy": "string", "note": {"type": "string", "max": 30}}}"#,
    )
    .put(
        "models/AuditBase.json",
        r#"{"name": "AuditBase", "base": "BaseEntity", "idInjection": false, "properties": {
            "code": {"type": "string", "id": true, "max": 10}}}"#,
    )
    .put(
        "models/Account.json",
        r#"{"name": "Account", "base": "AuditBase", "properties": {"balance": "number"}}"#,
    )
    .json("1.0.0/meta.json", meta(json!([entry("Account", "default/a.json")])))
    .json(
        "1.0.0/default/a.json",
        json!([{"code": "A1", "createdBy": "ann", "balance": 5}]),
    );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |o| o.to = Some(lockgate_bundle::Version::new(1, 0, 0))).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        assert_eq!(
            r.versions[0].schema_changes,
            strings(&["create table Account (createdBy, note, code, balance)"]),
            "{engine}"
        );
        let mut conn = db.conn().await;
        let t = conn.find_table("Account").await.unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["createdBy", "note", "code", "balance"], "{engine}");
        assert_eq!(t.primary_key, strings(&["code"]), "{engine}");
        assert_eq!(
            table_rows(&mut conn, "Account").await.unwrap(),
            strings(&["ann|NULL|A1|5"]),
            "{engine}"
        );
        for base in ["BaseEntity", "AuditBase"] {
            assert!(
                conn.lookup_table(base).await.unwrap().is_none(),
                "{engine}: {base} got a table"
            );
        }
    }
    // A version that names a base (a data file, a clearTables entry, a definition in
    // its ddl/) gets its table.
    b.json("1.1.0/meta.json", meta(json!([entry("AuditBase", "default/b.json")])))
        .json("1.1.0/default/b.json", json!([{"code": "B1", "note": "n"}]))
        .json(
            "1.2.0/meta.json",
            json!({"contexts": crate::migrate::contexts(), "files": [], "clearTables": ["BaseEntity"]}),
        )
        .put(
            "models/Ledger.json",
            r#"{"name": "Ledger", "base": "PersistedModel", "properties": {"entry": "string"}}"#,
        )
        .put(
            "models/Posting.json",
            r#"{"name": "Posting", "base": "Ledger", "properties": {"amount": "number"}}"#,
        )
        .json("1.3.0/meta.json", meta(json!([])))
        .put(
            "1.3.0/ddl/Ledger.json",
            r#"{"name": "Ledger", "base": "PersistedModel", "properties": {"entry": "string", "memo": "string"}}"#,
        );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        let columns = |t: lockgate_core::Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let audit = conn.find_table("AuditBase").await.unwrap();
        assert_eq!(columns(audit), strings(&["createdBy", "note", "code"]), "{engine}");
        assert_eq!(
            table_rows(&mut conn, "AuditBase").await.unwrap(),
            strings(&["NULL|n|B1"]),
            "{engine}"
        );
        let base = conn.find_table("BaseEntity").await.unwrap();
        assert_eq!(columns(base), strings(&["id", "createdBy", "note"]), "{engine}");
        // Ledger, Posting's base, gets its table only in 1.3.0, whose ddl/ defines
        // it; Posting, a base of nothing, has one from 1.0.0 on, and gets the
        // property 1.3.0 adds to its base.
        let ledger = conn.find_table("Ledger").await.unwrap();
        assert_eq!(columns(ledger), strings(&["id", "entry", "memo"]), "{engine}");
        let posting = conn.find_table("Posting").await.unwrap();
        assert_eq!(
            columns(posting),
            strings(&["id", "entry", "amount", "memo"]),
            "{engine}"
        );
        let created: Vec<&str> = r
            .versions
            .iter()
            .flat_map(|v| v.schema_changes.iter())
            .filter(|c| c.starts_with("create table"))
            .map(|c| c.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(
            created,
            ["Account", "Posting", "AuditBase", "BaseEntity", "Ledger"],
            "{engine}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failing_record_of_a_compact_array_is_logged_with_its_own_data_keyed_or_not() {
    // One line, three records, the 2nd and 3rd failing: into a table without a key
    // (loaded as inserts: the failures have no key to tell them apart), and into a
    // keyed one, as inserts and as upserts.
    let b = Bundle::new();
    b.json(
        "1.0.0/meta.json",
        meta(json!([
            entry("marks", "default/marks.json"),
            entry_with("keyed", "default/inserted.json", json!({"mode": "insert"})),
            entry("keyed", "default/upserted.json")
        ])),
    )
    .put(
        "1.0.0/default/marks.json",
        r#"[{"n": 1, "note": "a"}, {"n": -2, "note": "b"}, {"n": 3, "note": null}]"#,
    )
    .put(
        "1.0.0/default/inserted.json",
        r#"[{"id": 1, "n": 1, "note": "a"}, {"id": 2, "n": -2, "note": "b"}, {"id": 1, "n": 3, "note": "c"}]"#,
    )
    .put(
        "1.0.0/default/upserted.json",
        r#"[{"id": 5, "n": 1, "note": "e"}, {"id": 6, "n": -6, "note": "f"}, {"id": 7, "n": 7, "note": null}]"#,
    );
    let expected = [
        ("marks.json", 2, json!({"n": -2, "note": "b"})),
        ("marks.json", 3, json!({"n": 3, "note": null})),
        ("inserted.json", 2, json!({"id": 2, "n": -2, "note": "b"})),
        ("inserted.json", 3, json!({"id": 1, "n": 3, "note": "c"})),
        ("upserted.json", 2, json!({"id": 6, "n": -6, "note": "f"})),
        ("upserted.json", 3, json!({"id": 7, "n": 7, "note": null})),
    ];
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut conn = db.conn().await;
        conn.batch("CREATE TABLE marks (n bigint CHECK (n > 0), note varchar(20) NOT NULL)")
            .await
            .unwrap();
        conn.batch("CREATE TABLE keyed (id bigint PRIMARY KEY, n bigint CHECK (n > 0), note varchar(20) NOT NULL)")
            .await
            .unwrap();
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.exit_code(), 3, "{engine}: {r:?}");
        let failures = &r.versions[0].failures;
        assert_eq!(failures.len(), expected.len(), "{engine}: {failures:#?}");
        for (file, number, data) in &expected {
            let f = failures
                .iter()
                .find(|f| f.error.file.as_deref().is_some_and(|p| p.ends_with(file)) && f.error.record == Some(*number))
                .unwrap_or_else(|| panic!("{engine}: no failure of {file} record {number}: {failures:#?}"));
            assert_eq!(f.data.as_ref(), Some(data), "{engine}: {file} record {number}: {f:?}");
            // The message names the file, the line and, since they share the line,
            // the record.
            assert!(
                f.error.to_string().contains(&format!("{file}:1 (record {number}): ")),
                "{engine}: {}",
                f.error
            );
        }
        // The log keeps each record's own data.
        let entries = logs(&db, "1.0.0", &["ERROR"]).await;
        for (file, number, data) in &expected {
            let logged: Vec<_> = entries.iter().filter(|e| e.message.get("data") == Some(data)).collect();
            assert_eq!(logged.len(), 1, "{engine}: {file} record {number}: {entries:#?}");
            assert!(
                logged[0].file.as_deref().is_some_and(|p| p.ends_with(file)),
                "{engine}: {:?}",
                logged[0]
            );
        }
        assert_eq!(
            count(&mut conn, "marks").await,
            0,
            "{engine}: the version was rolled back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb_a_file_into_a_table_an_earlier_version_creates_is_checked_before_any_ddl() {
    // 1.0.0 defines t; 2.0.0 (with a schema change of its own) loads t with a record
    // giving a property t will not have.
    let b = Bundle::new();
    b.put("1.0.0/ddl/t.json", r#"{"name": "t", "properties": {"x": "string"}}"#)
        .json("1.0.0/meta.json", meta(json!([entry("t", "default/t.json")])))
        .json("1.0.0/default/t.json", json!([{"x": "1"}]))
        .put("2.0.0/ddl/u.json", r#"{"name": "u", "properties": {"y": "string"}}"#)
        .json("2.0.0/meta.json", meta(json!([entry("t", "default/t.json")])))
        .put("2.0.0/default/t.json", "[{\"x\": \"2\"},\n{\"x\": \"3\", \"typo\": 3}]");
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        let text = e.to_string();
        assert_eq!(e.exit_code(), 2, "{engine}: {text}");
        assert!(
            text.contains("2.0.0/default/t.json:2: column \"typo\""),
            "{engine}: {text}"
        );
        let mut conn = db.conn().await;
        assert!(
            conn.lookup_table("u").await.unwrap().is_none(),
            "{engine}: u was created"
        );
        if engine == Engine::Mysql {
            // Found before the run's first DDL: nothing is created.
            assert!(text.contains("is not a column of table t"), "{engine}: {text}");
            assert!(
                conn.lookup_table("t").await.unwrap().is_none(),
                "{engine}: t was created"
            );
        } else {
            // Found when 2.0.0 loads it, which rolls back with its DDL; 1.0.0 stays.
            assert_eq!(count(&mut conn, "t").await, 1, "{engine}");
        }
    }
    // A column that an earlier version of the run adds to an existing table is
    // known to the check of a later one.
    let c = Bundle::new();
    c.put("1.0.0/ddl/t.json", r#"{"name": "t", "properties": {"x": "string"}}"#)
        .json("1.0.0/meta.json", meta(json!([entry("t", "default/t.json")])))
        .json("1.0.0/default/t.json", json!([{"x": "1"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &c, |_| {}).await;
        c.put(
            "1.1.0/ddl/t.json",
            r#"{"name": "t", "properties": {"x": "string", "z": "string"}}"#,
        )
        .json("1.1.0/meta.json", meta(json!([])))
        .put("2.0.0/ddl/u.json", r#"{"name": "u", "properties": {"y": "string"}}"#)
        .json("2.0.0/meta.json", meta(json!([entry("t", "default/t.json")])))
        .json("2.0.0/default/t.json", json!([{"x": "2", "z": "zz"}]));
        let r = run_ok(&db, &c, |_| {}).await;
        assert_eq!(r.exit_code(), 0, "{engine}: {r:?}");
        let mut conn = db.conn().await;
        assert_eq!(
            table_rows(&mut conn, "t").await.unwrap(),
            strings(&["1|1|NULL", "2|2|zz"]),
            "{engine}"
        );
        for v in ["1.1.0", "2.0.0"] {
            std::fs::remove_dir_all(c.root().join(v)).unwrap();
        }
    }
}
