//! Masking rules (`lockgate::mask`), data-driven and without a database: `--mask`
//! parsing (good and bad entries), the checks of each rule against a column's kind,
//! key and nullability, NULL handling, determinism across columns and salts, and
//! uniqueness over 100,000 distinct inputs for each rule (integers over every value
//! of the narrow widths: the permutation keeps them all, within the width).

use lockgate::mask::{check_tables, parse_masks, plan, MaskError, MaskRule, MaskSpec, TableMask};
use lockgate_core::{Column, Kind, Table, TableName, TextForm, UniqueConstraint, Value};
use std::collections::HashSet;

const SALT: [u8; 32] = [7; 32];
const OTHER_SALT: [u8; 32] = [8; 32];

fn text(max: Option<u64>) -> Kind {
    Kind::Text {
        max_chars: max,
        max_bytes: None,
        form: TextForm::Free,
    }
}

fn int(bytes: u8, unsigned: bool) -> Kind {
    Kind::Int { bytes, unsigned }
}

fn column(name: &str, kind: Kind, nullable: bool) -> Column {
    Column {
        name: name.into(),
        data_type: kind.describe(),
        kind,
        nullable,
        default: None,
        auto: false,
        collation: None,
    }
}

/// A table `name` with these columns (name, kind, nullable), the first the primary
/// key, and a unique constraint on each column named `u_…`.
fn table(name: &str, columns: &[(&str, Kind, bool)]) -> Table {
    Table {
        name: TableName::parse(name),
        columns: columns.iter().map(|(n, k, null)| column(n, k.clone(), *null)).collect(),
        primary_key: vec![columns[0].0.to_string()],
        unique: columns
            .iter()
            .filter(|(n, _, _)| n.starts_with("u_"))
            .map(|(n, _, _)| UniqueConstraint {
                name: format!("{n}_key"),
                columns: vec![n.to_string()],
            })
            .collect(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        engine: None,
        unchecked: Vec::new(),
    }
}

fn spec(table: &str, column: &str, rule: MaskRule) -> MaskSpec {
    MaskSpec {
        table: table.into(),
        column: column.into(),
        rule,
    }
}

/// The mask of one column of a two-column table (`id`, then `col`).
fn one(kind: Kind, nullable: bool, rule: &str, salt: &[u8; 32]) -> Result<TableMask, MaskError> {
    let t = table("t", &[("id", int(8, false), false), ("col", kind, nullable)]);
    plan(&t, &[spec("t", "col", MaskRule::parse(rule).unwrap())], salt)
}

/// `value` in `col` masked.
fn masked(mask: &TableMask, value: Value) -> Value {
    let mut row = vec![Value::Int(1), value];
    mask.apply(&mut row);
    row.pop().unwrap()
}

#[test]
fn good_entries_parse() {
    use MaskRule::*;
    let cases: Vec<(&str, Vec<MaskSpec>)> = vec![
        (
            "users.email=email,users.name=name,payments.card=hash,users.note=fixed:n/a",
            vec![
                spec("users", "email", Email),
                spec("users", "name", Name),
                spec("payments", "card", Hash),
                spec("users", "note", Fixed("n/a".into())),
            ],
        ),
        ("public.users.email=EMAIL", vec![spec("public.users", "email", Email)]),
        (
            r"users.note=fixed:a\,b=c:d",
            vec![spec("users", "note", Fixed("a,b=c:d".into()))],
        ),
        ("users.note=fixed:", vec![spec("users", "note", Fixed(String::new()))]),
        (
            " users.x=keep , users.y = null,",
            vec![spec("users", "x", Keep), spec("users", "y", Null)],
        ),
        ("users.phone=phone", vec![spec("users", "phone", Phone)]),
        ("", vec![]),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_masks(input).unwrap_or_else(|e| panic!("{input}: {e}")),
            want,
            "{input}"
        );
    }
    assert_eq!(MaskRule::Fixed("a:b".into()).to_string(), "fixed:a:b");
}

#[test]
fn bad_entries_are_named_with_the_rules() {
    for input in [
        "users.email",
        "users=email",
        ".email=hash",
        "users.=hash",
        "users.email=scramble",
        "users.email=fixed",
        "users.email=",
        "users.email=email,users.name=nom",
    ] {
        let err = parse_masks(input).unwrap_err();
        let message = err.to_string();
        let entry = input.rsplit(',').next().unwrap();
        assert!(message.contains(&format!("{entry:?}")), "{input}: {message}");
        assert!(
            message.contains("null, hash, email, name, phone, fixed:VALUE, keep"),
            "{message}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn rules_are_checked_against_the_column() {
    let dec = Kind::Decimal {
        precision: Some(10),
        scale: Some(2),
        max_significant: None,
    };
    let labels = Kind::Text {
        max_chars: Some(5),
        max_bytes: None,
        form: TextForm::Enum(vec!["a".to_string(), "b".to_string()].into()),
    };
    // (kind, nullable, rule, None = accepted / Some(what the error says))
    let cases: Vec<(Kind, bool, &str, Option<&str>)> = vec![
        (
            text(Some(20)),
            true,
            "email",
            Some("needs room for 33 characters, and col holds 20"),
        ),
        (text(Some(33)), true, "email", None),
        (text(None), true, "email", None),
        (Kind::Any, true, "email", None),
        (
            int(4, false),
            true,
            "name",
            Some("needs a text column, and col is int32"),
        ),
        (
            text(Some(20)),
            true,
            "name",
            Some("needs room for 30 characters, and col holds 20"),
        ),
        (text(Some(30)), true, "name", None),
        (text(Some(30)), true, "phone", Some("needs room for 31 characters")),
        (text(Some(31)), true, "phone", None),
        (labels.clone(), true, "phone", Some("needs a text column")),
        (
            text(Some(15)),
            true,
            "hash",
            Some("needs room for 16 characters, and col holds 15"),
        ),
        (text(Some(16)), true, "hash", None),
        (
            dec.clone(),
            true,
            "hash",
            Some("fits text, bytes, integer and uuid columns, and col is decimal(10,2)"),
        ),
        (labels, true, "hash", Some("fits text, bytes, integer and uuid")),
        (Kind::Bool, true, "hash", Some("col is boolean")),
        (int(1, true), false, "hash", None),
        (Kind::Uuid, false, "hash", None),
        (
            Kind::Bytes {
                max_bytes: Some(4),
                fixed: false,
            },
            true,
            "hash",
            Some("needs room for 8 bytes, and col holds 4"),
        ),
        (
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
            true,
            "hash",
            None,
        ),
        (
            int(4, false),
            false,
            "fixed:abc",
            Some("\"abc\" does not fit col (int32)"),
        ),
        (int(4, false), false, "fixed:42", None),
        (dec, false, "fixed:12.50", None),
        (Kind::Date, false, "fixed:2020-01-01", None),
        (text(Some(3)), false, "fixed:toolong", Some("does not fit col")),
        (text(None), false, "null", Some("col is NOT NULL")),
        (text(None), true, "null", None),
        (Kind::Json, true, "keep", None),
    ];
    for (kind, nullable, rule, want) in cases {
        let what = format!("{rule} on {} (nullable: {nullable})", kind.describe());
        match (one(kind, nullable, rule, &SALT), want) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                let message = e.to_string();
                assert!(message.contains(want), "{what}: {message}");
                assert!(message.contains(&format!("mask t.col={rule}:")), "{what}: {message}");
                assert_eq!(e.exit_code(), 2);
            }
            (Ok(_), Some(want)) => panic!("{what}: accepted, expected {want:?}"),
            (Err(e), None) => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn keys_unknown_columns_and_repeats_are_refused_together() {
    let t = table(
        "app.users",
        &[
            ("id", int(4, false), false),
            ("u_email", text(Some(100)), true),
            ("note", text(None), true),
        ],
    );
    let specs = parse_masks(
        "app.users.id=fixed:1,users.u_email=null,users.U_EMAIL=fixed:x,users.nope=hash,users.note=hash,USERS.note=email,\
         other.x=hash",
    )
    .unwrap();
    let err = plan(&t, &specs, &SALT).unwrap_err().to_string();
    for want in [
        "mask app.users.id=fixed:1: id is in the primary key or a unique key",
        "mask app.users.u_email=null: u_email is in the primary key or a unique key",
        "mask app.users.U_EMAIL=fixed:x: u_email is in the primary key or a unique key",
        "mask app.users.nope=hash: no such column; its columns: id, u_email, note",
        "mask app.users.note=email: column note is masked twice",
    ] {
        assert!(err.contains(want), "{want}\nnot in\n{err}");
    }
    assert_eq!(err.lines().count(), 5, "{err}");
    // Keys may be hashed; other tables' masks are not this table's business.
    let specs = parse_masks("users.id=hash,users.u_email=email,users.note=keep,other.x=null").unwrap();
    let mask = plan(&t, &specs, &SALT).unwrap();
    assert_eq!(
        mask.describe(),
        vec![
            ("id".to_string(), "hash".to_string()),
            ("u_email".into(), "email".into())
        ]
    );
    assert!(!mask.is_empty());
    assert!(plan(&t, &parse_masks("users.note=keep").unwrap(), &SALT)
        .unwrap()
        .is_empty());
    assert!(plan(&t, &[], &SALT).unwrap().is_empty());
}

#[test]
fn masks_name_tables_the_snapshot_takes() {
    let tables = [TableName::parse("app.users"), TableName::new("orders")];
    check_tables(
        &parse_masks("users.a=hash,APP.Users.b=hash,Orders.c=null").unwrap(),
        &tables,
    )
    .unwrap();
    let err = check_tables(&parse_masks("users.a=hash,payments.card=hash").unwrap(), &tables).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mask payments.card=hash names a table the snapshot does not take; its tables: app.users, orders"
    );
}

/// Every rule keeps NULL but `fixed`, which writes its value in every row.
#[test]
fn nulls_stay_null_but_under_fixed() {
    for (kind, rule) in [
        (text(None), "email"),
        (text(None), "name"),
        (text(None), "phone"),
        (text(None), "hash"),
        (int(4, false), "hash"),
        (Kind::Uuid, "hash"),
        (Kind::Any, "hash"),
        (text(None), "null"),
        (text(None), "keep"),
    ] {
        let mask = one(kind, true, rule, &SALT).unwrap();
        assert_eq!(masked(&mask, Value::Null), Value::Null, "{rule}");
    }
    let mask = one(text(None), true, "fixed:n/a", &SALT).unwrap();
    assert_eq!(masked(&mask, Value::Null), Value::Text("n/a".into()));
    assert_eq!(masked(&mask, Value::Text("x".into())), Value::Text("n/a".into()));
    let mask = one(text(None), true, "null", &SALT).unwrap();
    assert_eq!(masked(&mask, Value::Text("x".into())), Value::Null);
    let mask = one(text(None), true, "keep", &SALT).unwrap();
    assert_eq!(masked(&mask, Value::Text("x".into())), Value::Text("x".into()));
}

/// A rule, the column kind it masks, and the input for the n-th distinct value.
type RuleCase = (&'static str, Kind, fn(u32) -> Value);

/// The rules and columns the determinism and uniqueness tests run over.
fn rule_cases() -> Vec<RuleCase> {
    fn email(i: u32) -> Value {
        Value::Text(format!("person{i}@example.com"))
    }
    fn int4(i: u32) -> Value {
        Value::Int(i as i64 * 7919 - 300_000_000)
    }
    fn int8(i: u32) -> Value {
        Value::Int((i as i64) << 40 | i as i64)
    }
    fn bytes(i: u32) -> Value {
        Value::Bytes(i.to_le_bytes().to_vec())
    }
    fn uuid(i: u32) -> Value {
        Value::Uuid(uuid::Uuid::from_u128(i as u128))
    }
    vec![
        ("email", text(Some(255)), email),
        ("name", text(Some(100)), email),
        ("phone", text(Some(40)), email),
        ("hash", text(Some(255)), email),
        ("hash", text(Some(16)), email),
        ("hash", int(4, false), int4),
        ("hash", int(8, false), int8),
        ("hash", Kind::Any, email),
        (
            "hash",
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
            bytes,
        ),
        (
            "hash",
            Kind::Bytes {
                max_bytes: Some(40),
                fixed: true,
            },
            bytes,
        ),
        ("hash", Kind::Uuid, uuid),
    ]
}

#[test]
fn same_input_same_output_in_any_column_and_other_salt_other_output() {
    for (rule, kind, input) in rule_cases() {
        let what = format!("{rule} on {}", kind.describe());
        let a = one(kind.clone(), true, rule, &SALT).unwrap();
        // Another table, another column, the value at another position.
        let t = table(
            "orders",
            &[
                ("id", int(8, false), false),
                ("x", text(None), true),
                ("contact", kind.clone(), true),
            ],
        );
        let b = plan(&t, &parse_masks(&format!("orders.contact={rule}")).unwrap(), &SALT).unwrap();
        let c = one(kind.clone(), true, rule, &OTHER_SALT).unwrap();
        // Not 0: an integer of the smallest class may be its own image.
        for i in [1, 42, 777, 99_999] {
            let v = input(i);
            let out = masked(&a, v.clone());
            assert_ne!(out, v, "{what}: {v:?} unchanged");
            assert_eq!(masked(&a, v.clone()), out, "{what}: {v:?} twice");
            let mut row = vec![Value::Int(1), Value::Text("x".into()), v.clone()];
            b.apply(&mut row);
            assert_eq!(row[2], out, "{what}: {v:?} in orders.contact");
            assert_eq!(row[1], Value::Text("x".into()));
            assert_ne!(masked(&c, v.clone()), out, "{what}: {v:?} under another salt");
        }
    }
}

#[test]
fn distinct_inputs_stay_distinct_and_fit_the_column() {
    const N: u32 = 100_000;
    for (rule, kind, input) in rule_cases() {
        let what = format!("{rule} on {}", kind.describe());
        let mask = one(kind.clone(), false, rule, &SALT).unwrap();
        let mut seen = HashSet::with_capacity(N as usize);
        for i in 0..N {
            let out = masked(&mask, input(i));
            if let Err(e) = kind.check(out.clone()) {
                panic!("{what}: {out:?} does not fit: {e}");
            }
            assert!(seen.insert(out.to_string()), "{what}: {out} twice");
        }
    }
}

#[test]
fn narrow_integers_are_permuted_within_their_width() {
    for (kind, range) in [
        (int(1, false), -128..=127),
        (int(1, true), 0..=255),
        (int(2, false), -32768..=32767),
        (int(2, true), 0..=65535),
    ] {
        let mask = one(kind.clone(), false, "hash", &SALT).unwrap();
        let inputs: HashSet<i64> = range.clone().collect();
        let mut outputs = HashSet::new();
        let mut moved = 0;
        for i in range {
            let Value::Int(o) = masked(&mask, Value::Int(i)) else {
                panic!("not an integer")
            };
            outputs.insert(o);
            moved += usize::from(o != i);
        }
        assert_eq!(outputs, inputs, "{}", kind.describe());
        assert!(moved > inputs.len() * 9 / 10, "{}: {moved} moved", kind.describe());
    }
    // The extremes of the widest class stay integers of their class.
    let mask = one(int(8, false), false, "hash", &SALT).unwrap();
    for v in [i64::MIN, i64::MAX, -(1 << 31) - 1, 1 << 32] {
        let Value::Int(o) = masked(&mask, Value::Int(v)) else {
            panic!("not an integer")
        };
        assert_eq!(o < 0, v < 0, "{v} -> {o}");
        assert!(o.unsigned_abs() > 1 << 31, "{v} -> {o}");
    }
}

#[test]
fn outputs_have_their_documented_shapes() {
    let v = Value::Text("ann@example.com".into());
    let shape = |rule: &str, kind: Kind| match masked(&one(kind, true, rule, &SALT).unwrap(), v.clone()) {
        Value::Text(s) => s,
        other => panic!("{rule}: {other:?}"),
    };
    let email = shape("email", text(None));
    assert!(
        email.starts_with('u') && email.ends_with("@example.invalid") && email.len() == 33,
        "{email}"
    );
    assert!(email[1..17].chars().all(|c| c.is_ascii_hexdigit()), "{email}");
    let phone = shape("phone", text(None));
    assert!(phone.starts_with("+1 555 01") && phone.len() == 31, "{phone}");
    assert_eq!(phone.split(' ').count(), 7, "{phone}");
    let name = shape("name", text(None));
    assert_eq!(name.split(' ').count(), 3, "{name}");
    assert_eq!(shape("hash", text(None)).len(), 32);
    assert_eq!(shape("hash", text(Some(20))), shape("hash", text(None))[..20]);
    assert_eq!(shape("hash", text(Some(64))), shape("hash", text(None)));
    let mask = one(
        Kind::Bytes {
            max_bytes: Some(40),
            fixed: true,
        },
        true,
        "hash",
        &SALT,
    )
    .unwrap();
    assert!(matches!(masked(&mask, Value::Bytes(vec![1])), Value::Bytes(b) if b.len() == 40));
    let mask = one(Kind::Uuid, true, "hash", &SALT).unwrap();
    let Value::Uuid(u) = masked(&mask, Value::Uuid(uuid::Uuid::nil())) else {
        panic!("not a uuid")
    };
    assert_eq!(u.get_version_num(), 4);
}
