//! The type-mapping table: engine type ↔ [`Kind`] ↔ engine type.
//!
//! `*_kind` read an introspected type into a [`Kind`]; `*_type` give the type
//! Lockgate declares when it creates a column of a kind (staging tables, the
//! cross-engine tests, later migrations). ARCHITECTURE.md publishes this table and
//! the `types` tests in `tests/it` check both directions on the real servers.

use lockgate_core::value::{sql_labels, MAX_FSP};
use lockgate_core::{Kind, TextForm};

/// Digits inside the first parentheses of a type: `numeric(12,2)` → `[12, 2]`.
fn type_args(full: &str) -> Vec<u64> {
    let Some(open) = full.find('(') else { return Vec::new() };
    let Some(close) = full[open..].find(')') else {
        return Vec::new();
    };
    full[open + 1..open + close]
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The labels of a MariaDB `enum('a','b')` or `set(…)` COLUMN_TYPE, unquoted: the
/// server doubles a quote inside a label and writes a backslash as `\\` and a
/// newline as `\n`.
pub fn type_labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut label = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            label.push('\'');
                        }
                        '\'' => break,
                        '\\' => match chars.next() {
                            Some('n') => label.push('\n'),
                            Some('r') => label.push('\r'),
                            Some('t') => label.push('\t'),
                            Some('0') => label.push('\0'),
                            Some('Z') => label.push('\u{1a}'),
                            Some(other) => label.push(other),
                            None => break,
                        },
                        other => label.push(other),
                    }
                }
                labels.push(label);
            }
            ')' => break,
            _ => {}
        }
    }
    labels
}

/// Fractional-second digits from a type's argument: `timestamp(3)` → 3; none → `default`.
fn fsp_of(args: &[u64], default: u8) -> u8 {
    args.first().map_or(default, |n| (*n).min(u64::from(MAX_FSP)) as u8)
}

/// PostgreSQL: `udt` is `pg_type.typname`, `full` is `format_type(atttypid, atttypmod)`,
/// `is_enum` marks enum types (their labels load as text).
pub fn pg_kind(udt: &str, full: &str, is_enum: bool) -> Kind {
    let args = type_args(full);
    match udt {
        "bool" => Kind::Bool,
        "int2" => Kind::Int {
            bytes: 2,
            unsigned: false,
        },
        "int4" => Kind::Int {
            bytes: 4,
            unsigned: false,
        },
        "int8" => Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        "float4" => Kind::Float { bytes: 4 },
        "float8" => Kind::Float { bytes: 8 },
        "numeric" => Kind::Decimal {
            precision: args.first().map(|p| *p as u32),
            scale: args.first().map(|_| args.get(1).copied().unwrap_or(0) as u32),
            max_significant: None,
        },
        "text" | "citext" => Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        },
        // An identifier type: PostgreSQL cuts its input to 63 bytes (NAMEDATALEN - 1).
        "name" => Kind::Text {
            max_chars: None,
            max_bytes: Some(63),
            form: TextForm::Free,
        },
        "varchar" => Kind::Text {
            max_chars: args.first().copied(),
            max_bytes: None,
            form: TextForm::Free,
        },
        // `character(n)` pads with spaces that carry no meaning: PostgreSQL ignores
        // them in comparisons and drops them in a cast to text, and Lockgate reads the
        // value without them (`pg::Cell`). A text that ends in spaces would lose them.
        "bpchar" => Kind::Text {
            max_chars: args.first().copied(),
            max_bytes: None,
            form: TextForm::Padded,
        },
        "bytea" => Kind::Bytes {
            max_bytes: None,
            fixed: false,
        },
        "date" => Kind::Date,
        // `timestamp(3) without time zone`; without an argument PostgreSQL keeps 6 digits.
        "time" => Kind::Time {
            fsp: fsp_of(&args, MAX_FSP),
        },
        "timestamp" => Kind::Timestamp {
            fsp: fsp_of(&args, MAX_FSP),
        },
        "timestamptz" => Kind::TimestampTz {
            epoch32: false,
            fsp: fsp_of(&args, MAX_FSP),
        },
        "json" | "jsonb" => Kind::Json,
        "uuid" => Kind::Uuid,
        _ if is_enum => Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        },
        _ => Kind::Unsupported {
            type_name: full.to_string(),
        },
    }
}

/// `timestamp(3)`, or the bare name for PostgreSQL's default of 6 digits.
fn with_fsp(name: &str, fsp: u8) -> String {
    if fsp >= MAX_FSP {
        name.into()
    } else {
        format!("{name}({fsp})")
    }
}

/// The PostgreSQL type Lockgate declares for a kind.
pub fn pg_type(kind: &Kind) -> String {
    match kind {
        Kind::Bool => "boolean".into(),
        Kind::Int {
            bytes: 1 | 2,
            unsigned: false,
        } => "smallint".into(),
        Kind::Int {
            bytes: 1,
            unsigned: true,
        } => "smallint".into(),
        Kind::Int { bytes: 2..=4, .. } => "integer".into(),
        Kind::Int { .. } => "bigint".into(),
        Kind::Float { bytes: 4 } => "real".into(),
        Kind::Float { .. } => "double precision".into(),
        Kind::Decimal {
            precision: Some(p),
            scale,
            ..
        } => format!("numeric({p},{})", scale.unwrap_or(0)),
        Kind::Decimal { .. } => "numeric".into(),
        Kind::Text {
            max_chars: Some(n),
            form: TextForm::Padded,
            ..
        } => format!("character({n})"),
        // PostgreSQL has no inline label type: labels are text (their values fit).
        Kind::Text {
            form: TextForm::Enum(_) | TextForm::Set(_),
            ..
        } => "text".into(),
        Kind::Text { max_chars: Some(n), .. } => format!("varchar({n})"),
        Kind::Text { .. } | Kind::Any => "text".into(),
        Kind::Bytes { .. } => "bytea".into(),
        Kind::Date => "date".into(),
        Kind::Time { fsp } => with_fsp("time", *fsp),
        Kind::Timestamp { fsp } => with_fsp("timestamp", *fsp),
        Kind::TimestampTz { fsp, .. } => with_fsp("timestamptz", *fsp),
        Kind::Json => "jsonb".into(),
        Kind::Uuid => "uuid".into(),
        Kind::Unsupported { type_name } => type_name.clone(),
    }
}

/// MariaDB: `data_type` is `information_schema.COLUMNS.DATA_TYPE`, `column_type` its
/// `COLUMN_TYPE`, `char_max` its `CHARACTER_MAXIMUM_LENGTH`, `is_json` whether a
/// `json_valid` CHECK guards it (MariaDB's JSON is LONGTEXT with that check).
pub fn mysql_kind(data_type: &str, column_type: &str, char_max: Option<u64>, is_json: bool) -> Kind {
    let unsigned = column_type.contains("unsigned");
    let args = type_args(column_type);
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => Kind::Bool,
        "bool" | "boolean" => Kind::Bool,
        "tinyint" => Kind::Int { bytes: 1, unsigned },
        "smallint" => Kind::Int { bytes: 2, unsigned },
        // YEAR holds 1901–2155 and 0, and reads 1–99 as 2001–2069 / 1970–1999: no
        // integer kind says that, so it is refused rather than changed silently.
        "year" => Kind::Unsupported {
            type_name: format!("{column_type} (MariaDB YEAR turns 2-digit years into 19xx/20xx)"),
        },
        "mediumint" => Kind::Int { bytes: 3, unsigned },
        "int" | "integer" => Kind::Int { bytes: 4, unsigned },
        "bigint" => Kind::Int { bytes: 8, unsigned },
        // FLOAT(M,D) / DOUBLE(M,D) round to D decimals: exact decimals as far as a
        // single (6 significant digits) or a double (15) keeps them.
        "float" | "double" | "real" if args.len() == 2 => Kind::Decimal {
            precision: Some(args[0] as u32),
            scale: Some(args[1] as u32),
            max_significant: Some(if data_type.eq_ignore_ascii_case("float") { 6 } else { 15 }),
        },
        "float" => Kind::Float { bytes: 4 },
        "double" | "real" => Kind::Float { bytes: 8 },
        "decimal" | "numeric" => Kind::Decimal {
            precision: Some(args.first().copied().unwrap_or(10) as u32),
            scale: Some(args.get(1).copied().unwrap_or(0) as u32),
            max_significant: None,
        },
        "varchar" => Kind::Text {
            max_chars: char_max,
            max_bytes: None,
            form: TextForm::Free,
        },
        // CHAR(n) pads with spaces and gives values back without trailing spaces.
        "char" => Kind::Text {
            max_chars: char_max,
            max_bytes: None,
            form: TextForm::Padded,
        },
        "longtext" if is_json => Kind::Json,
        "json" => Kind::Json,
        "tinytext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(255),
            form: TextForm::Free,
        },
        "text" => Kind::Text {
            max_chars: None,
            max_bytes: Some(65_535),
            form: TextForm::Free,
        },
        "mediumtext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(16_777_215),
            form: TextForm::Free,
        },
        "longtext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(4_294_967_295),
            form: TextForm::Free,
        },
        // The labels are in COLUMN_TYPE: `enum('a','b')`.
        "enum" => Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Enum(type_labels(column_type).into()),
        },
        "set" => Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Set(type_labels(column_type).into()),
        },
        // BINARY(n) pads a shorter value with zero bytes; without (n) it is BINARY(1).
        "binary" => Kind::Bytes {
            max_bytes: Some(args.first().copied().unwrap_or(1)),
            fixed: true,
        },
        "varbinary" => Kind::Bytes {
            max_bytes: args.first().copied(),
            fixed: false,
        },
        "tinyblob" => Kind::Bytes {
            max_bytes: Some(255),
            fixed: false,
        },
        "blob" => Kind::Bytes {
            max_bytes: Some(65_535),
            fixed: false,
        },
        "mediumblob" => Kind::Bytes {
            max_bytes: Some(16_777_215),
            fixed: false,
        },
        "longblob" => Kind::Bytes {
            max_bytes: Some(4_294_967_295),
            fixed: false,
        },
        "date" => Kind::Date,
        // Without an argument MariaDB keeps whole seconds (and cuts any fraction).
        "time" => Kind::Time { fsp: fsp_of(&args, 0) },
        "datetime" => Kind::Timestamp { fsp: fsp_of(&args, 0) },
        "timestamp" => Kind::TimestampTz {
            epoch32: true,
            fsp: fsp_of(&args, 0),
        },
        "uuid" => Kind::Uuid,
        _ => Kind::Unsupported {
            type_name: column_type.to_string(),
        },
    }
}

/// The MariaDB type Lockgate declares for a kind. Text without a limit becomes
/// LONGTEXT so that nothing PostgreSQL's `text` holds is cut.
pub fn mysql_type(kind: &Kind) -> String {
    match kind {
        Kind::Bool => "tinyint(1)".into(),
        Kind::Int { bytes, unsigned } => {
            let base = match bytes {
                1 => "tinyint",
                2 => "smallint",
                3 => "mediumint",
                4 => "int",
                _ => "bigint",
            };
            if *unsigned {
                format!("{base} unsigned")
            } else {
                base.into()
            }
        }
        Kind::Float { bytes: 4 } => "float".into(),
        Kind::Float { .. } => "double".into(),
        Kind::Decimal {
            precision: Some(p),
            scale,
            ..
        } => format!("decimal({p},{})", scale.unwrap_or(0)),
        // An unconstrained numeric takes the widest shared decimal.
        Kind::Decimal { .. } => "decimal(65,30)".into(),
        Kind::Text {
            max_chars: Some(n),
            form: TextForm::Padded,
            ..
        } if *n <= 255 => format!("char({n})"),
        Kind::Text {
            form: TextForm::Enum(labels),
            ..
        } => format!("enum({})", sql_labels(labels, None)),
        Kind::Text {
            form: TextForm::Set(labels),
            ..
        } => format!("set({})", sql_labels(labels, None)),
        Kind::Text { max_chars: Some(n), .. } if *n <= 16_383 => format!("varchar({n})"),
        Kind::Text { .. } | Kind::Any => "longtext".into(),
        Kind::Bytes {
            max_bytes: Some(n),
            fixed: true,
        } if *n <= 255 => format!("binary({n})"),
        Kind::Bytes { .. } => "longblob".into(),
        Kind::Date => "date".into(),
        Kind::Time { fsp } => format!("time({fsp})"),
        Kind::Timestamp { fsp } => format!("datetime({fsp})"),
        // DATETIME, not TIMESTAMP: TIMESTAMP stops in 2038. Values are UTC.
        Kind::TimestampTz { fsp, .. } => format!("datetime({fsp})"),
        Kind::Json => "json".into(),
        Kind::Uuid => "uuid".into(),
        Kind::Unsupported { type_name } => type_name.clone(),
    }
}

/// SQLite: from the declared type, exact names first, then SQLite's affinity rules.
pub fn sqlite_kind(declared: &str) -> Kind {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let args = type_args(&upper);
    match base {
        "" => return Kind::Any,
        "BOOL" | "BOOLEAN" => return Kind::Bool,
        "DATE" => return Kind::Date,
        // Text keeps every digit Lockgate writes, whatever `(n)` the declaration says
        // (SQLite enforces no length or precision).
        "TIME" => return Kind::Time { fsp: MAX_FSP },
        "DATETIME" | "TIMESTAMP" => return Kind::Timestamp { fsp: MAX_FSP },
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" | "DATETIMETZ" => {
            return Kind::TimestampTz {
                epoch32: false,
                fsp: MAX_FSP,
            }
        }
        // "JSON TEXT" is what Lockgate declares: TEXT affinity keeps a bare number
        // document as the text it was.
        "JSON" | "JSONB" | "JSON TEXT" => return Kind::Json,
        "UUID" => return Kind::Uuid,
        "DECIMAL" | "NUMERIC" => {
            return Kind::Decimal {
                precision: args.first().map(|p| *p as u32),
                scale: args.first().map(|_| args.get(1).copied().unwrap_or(0) as u32),
                // NUMERIC affinity turns decimal text into REAL, exact to 15 digits.
                max_significant: Some(15),
            };
        }
        _ => {}
    }
    if upper.contains("INT") {
        Kind::Int {
            bytes: 8,
            unsigned: false,
        }
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        // SQLite does not enforce VARCHAR(n); storing the whole value is lossless.
        Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        }
    } else if upper.contains("BLOB") {
        Kind::Bytes {
            max_bytes: None,
            fixed: false,
        }
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        Kind::Float { bytes: 8 }
    } else {
        Kind::Decimal {
            precision: None,
            scale: None,
            max_significant: Some(15),
        }
    }
}

/// The SQLite type Lockgate declares for a kind; each reads back as the same kind.
pub fn sqlite_type(kind: &Kind) -> String {
    match kind {
        Kind::Bool => "BOOLEAN".into(),
        Kind::Int { .. } => "INTEGER".into(),
        Kind::Float { .. } => "REAL".into(),
        Kind::Decimal {
            precision: Some(p),
            scale,
            ..
        } => format!("NUMERIC({p},{})", scale.unwrap_or(0)),
        Kind::Decimal { .. } => "NUMERIC".into(),
        Kind::Text { .. } => "TEXT".into(),
        Kind::Bytes { .. } => "BLOB".into(),
        Kind::Date => "DATE".into(),
        Kind::Time { .. } => "TIME".into(),
        Kind::Timestamp { .. } => "TIMESTAMP".into(),
        Kind::TimestampTz { .. } => "TIMESTAMPTZ".into(),
        Kind::Json => "JSON TEXT".into(),
        Kind::Uuid => "UUID".into(),
        Kind::Any => "".into(),
        Kind::Unsupported { type_name } => type_name.clone(),
    }
}

/// The kind of a column declared as `declared` (a model's `dataType`, as written) on
/// `engine`: what the engine's catalog would report for it, read by the `*_kind`
/// functions above, so a default is checked against the column it goes into.
pub fn declared_kind(engine: crate::Engine, declared: &str) -> Kind {
    use crate::Engine;
    let lower = declared.trim().to_ascii_lowercase();
    // The name without its arguments: `timestamp(3) with time zone` → `timestamp with time zone`.
    let base = match (lower.find('('), lower.find(')')) {
        (Some(open), Some(close)) if close > open => format!("{}{}", &lower[..open], &lower[close + 1..]),
        _ => lower.clone(),
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    let base = base.as_str();
    match engine {
        Engine::Sqlite => sqlite_kind(declared),
        Engine::Mysql => {
            let name = base.split_whitespace().next().unwrap_or("");
            let char_max = matches!(name, "char" | "varchar")
                .then(|| type_args(&lower).first().copied().or(Some(1)))
                .flatten();
            // Labels keep their case: `enum('A','B')` holds "A".
            let column_type = if matches!(name, "enum" | "set") {
                declared.trim()
            } else {
                lower.as_str()
            };
            mysql_kind(name, column_type, char_max, false)
        }
        Engine::Postgres => {
            let udt = match base {
                "bool" | "boolean" => "bool",
                "smallint" | "int2" => "int2",
                "int" | "integer" | "int4" => "int4",
                "bigint" | "int8" => "int8",
                "real" | "float4" => "float4",
                "float" | "double precision" | "float8" => "float8",
                "decimal" | "numeric" => "numeric",
                "varchar" | "character varying" => "varchar",
                "char" | "character" | "bpchar" => "bpchar",
                "time" | "time without time zone" => "time",
                "timestamp" | "timestamp without time zone" => "timestamp",
                "timestamptz" | "timestamp with time zone" => "timestamptz",
                other => other,
            };
            pg_kind(udt, &lower, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind Lockgate declares reads back as itself on each engine (modulo the
    /// limits an engine adds, like SQLite's 15 significant digits).
    #[test]
    fn declared_types_read_back() {
        let kinds = [
            Kind::Bool,
            Kind::Int {
                bytes: 2,
                unsigned: false,
            },
            Kind::Int {
                bytes: 4,
                unsigned: false,
            },
            Kind::Int {
                bytes: 8,
                unsigned: false,
            },
            Kind::Float { bytes: 8 },
            Kind::Decimal {
                precision: Some(12),
                scale: Some(2),
                max_significant: None,
            },
            Kind::Text {
                max_chars: Some(100),
                max_bytes: None,
                form: TextForm::Free,
            },
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: TextForm::Free,
            },
            Kind::Bytes {
                max_bytes: None,
                fixed: false,
            },
            Kind::Date,
            Kind::Time { fsp: 6 },
            Kind::Time { fsp: 0 },
            Kind::Timestamp { fsp: 6 },
            Kind::Timestamp { fsp: 3 },
            Kind::TimestampTz { epoch32: false, fsp: 6 },
            Kind::TimestampTz { epoch32: false, fsp: 0 },
            Kind::Json,
            Kind::Uuid,
        ];
        for k in &kinds {
            let pg = pg_type(k);
            let udt = match pg.split('(').next().unwrap() {
                "boolean" => "bool",
                "smallint" => "int2",
                "integer" => "int4",
                "bigint" => "int8",
                "double precision" => "float8",
                "real" => "float4",
                "varchar" => "varchar",
                "timestamptz" => "timestamptz",
                other => other,
            };
            assert_eq!(&pg_kind(udt, &pg, false), k, "postgres {pg}");
            let sq = sqlite_type(k);
            let back = sqlite_kind(&sq);
            let expect = match k {
                Kind::Int { .. } => Kind::Int {
                    bytes: 8,
                    unsigned: false,
                },
                Kind::Text { .. } => Kind::Text {
                    max_chars: None,
                    max_bytes: None,
                    form: TextForm::Free,
                },
                Kind::Decimal { precision, scale, .. } => Kind::Decimal {
                    precision: *precision,
                    scale: *scale,
                    max_significant: Some(15),
                },
                // SQLite's text keeps every digit written.
                Kind::Time { .. } => Kind::Time { fsp: 6 },
                Kind::Timestamp { .. } => Kind::Timestamp { fsp: 6 },
                Kind::TimestampTz { .. } => Kind::TimestampTz { epoch32: false, fsp: 6 },
                other => other.clone(),
            };
            assert_eq!(back, expect, "sqlite {sq}");
        }
        assert_eq!(mysql_kind("tinyint", "tinyint(1)", None, false), Kind::Bool);
        assert_eq!(mysql_kind("longtext", "longtext", None, true), Kind::Json);
        assert_eq!(
            mysql_kind("bigint", "bigint(20) unsigned", None, false),
            Kind::Int {
                bytes: 8,
                unsigned: true
            }
        );
        assert_eq!(
            mysql_kind("timestamp", "timestamp(6)", None, false),
            Kind::TimestampTz { epoch32: true, fsp: 6 }
        );
        // MariaDB keeps whole seconds unless the type says otherwise.
        assert_eq!(
            mysql_kind("timestamp", "timestamp", None, false),
            Kind::TimestampTz { epoch32: true, fsp: 0 }
        );
        assert_eq!(
            mysql_kind("datetime", "datetime", None, false),
            Kind::Timestamp { fsp: 0 }
        );
        assert_eq!(
            mysql_kind("datetime", "datetime(3)", None, false),
            Kind::Timestamp { fsp: 3 }
        );
        assert_eq!(mysql_kind("time", "time(6)", None, false), Kind::Time { fsp: 6 });
        // PostgreSQL's format_type spelling.
        assert_eq!(
            pg_kind("timestamp", "timestamp(0) without time zone", false),
            Kind::Timestamp { fsp: 0 }
        );
        assert_eq!(
            pg_kind("timestamp", "timestamp without time zone", false),
            Kind::Timestamp { fsp: 6 }
        );
        assert_eq!(
            pg_kind("timestamptz", "timestamp(3) with time zone", false),
            Kind::TimestampTz { epoch32: false, fsp: 3 }
        );
        // FLOAT(M,D) rounds to D decimals: a bounded decimal as far as the float keeps digits.
        assert_eq!(
            mysql_kind("double", "double(10,2)", None, false),
            Kind::Decimal {
                precision: Some(10),
                scale: Some(2),
                max_significant: Some(15)
            }
        );
        assert_eq!(mysql_kind("float", "float", None, false), Kind::Float { bytes: 4 });
        assert_eq!(
            pg_kind("name", "name", false),
            Kind::Text {
                max_chars: None,
                max_bytes: Some(63),
                form: TextForm::Free
            }
        );
        assert!(matches!(
            mysql_kind("year", "year(4)", None, false),
            Kind::Unsupported { .. }
        ));
        assert_eq!(sqlite_kind("DATETIME(3)"), Kind::Timestamp { fsp: 6 });
    }

    /// Fixed-width text, ENUM and SET labels, and BINARY(n) carry what decides
    /// whether a value reads back as written (ARCHITECTURE.md, type mapping).
    #[test]
    fn fixed_widths_and_labels_are_part_of_the_kind() {
        let labels = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let text = |max_chars, form| Kind::Text {
            max_chars,
            max_bytes: None,
            form,
        };
        // COLUMN_TYPE as MariaDB 10.11 writes it (a quote doubled, a backslash and a
        // newline escaped, a comma and a parenthesis inside a label, an empty label).
        assert_eq!(
            type_labels(r"enum('a''b','c\\d','e,f','','ü','x)y','n\nl')"),
            labels(&["a'b", "c\\d", "e,f", "", "ü", "x)y", "n\nl"])
        );
        assert_eq!(
            mysql_kind("enum", "enum('a','B')", Some(1), false),
            text(None, TextForm::Enum(labels(&["a", "B"]).into()))
        );
        assert_eq!(
            mysql_kind("set", "set('a','b','c')", Some(5), false),
            text(None, TextForm::Set(labels(&["a", "b", "c"]).into()))
        );
        assert_eq!(
            mysql_kind("char", "char(36)", Some(36), false),
            text(Some(36), TextForm::Padded)
        );
        assert_eq!(
            mysql_kind("varchar", "varchar(36)", Some(36), false),
            text(Some(36), TextForm::Free)
        );
        assert_eq!(
            mysql_kind("binary", "binary(4)", None, false),
            Kind::Bytes {
                max_bytes: Some(4),
                fixed: true
            }
        );
        assert_eq!(
            mysql_kind("varbinary", "varbinary(4)", None, false),
            Kind::Bytes {
                max_bytes: Some(4),
                fixed: false
            }
        );
        assert_eq!(
            pg_kind("bpchar", "character(5)", false),
            text(Some(5), TextForm::Padded)
        );
        assert_eq!(
            pg_kind("varchar", "character varying(5)", false),
            text(Some(5), TextForm::Free)
        );
        // SQLite has no fixed-width text: CHAR(5) is TEXT affinity, kept whole.
        assert_eq!(sqlite_kind("CHAR(5)"), text(None, TextForm::Free));
        // A model's dataType keeps its labels' case.
        assert_eq!(
            declared_kind(crate::Engine::Mysql, "ENUM('Open','Closed')"),
            text(None, TextForm::Enum(labels(&["Open", "Closed"]).into()))
        );
        assert_eq!(
            declared_kind(crate::Engine::Postgres, "char(3)"),
            text(Some(3), TextForm::Padded)
        );
        // Declared back: each engine's own spelling, and a kind that reads back as itself.
        let kinds = [
            text(Some(5), TextForm::Padded),
            text(None, TextForm::Enum(labels(&["a'b", "c\\d"]).into())),
            text(None, TextForm::Set(labels(&["a", "b"]).into())),
            Kind::Bytes {
                max_bytes: Some(4),
                fixed: true,
            },
        ];
        let declared: Vec<String> = kinds.iter().map(mysql_type).collect();
        assert_eq!(
            declared,
            ["char(5)", r"enum('a''b','c\\d')", "set('a','b')", "binary(4)"]
        );
        for (k, t) in kinds.iter().zip(&declared) {
            let name = t.split('(').next().unwrap();
            assert_eq!(&mysql_kind(name, t, Some(5), false), k, "{t}");
        }
        assert_eq!(pg_type(&kinds[0]), "character(5)");
        assert_eq!(pg_kind("bpchar", &pg_type(&kinds[0]), false), kinds[0]);
        assert_eq!(pg_type(&kinds[1]), "text");
        assert_eq!(pg_type(&kinds[3]), "bytea");
        assert_eq!(sqlite_type(&kinds[1]), "TEXT");
    }
}
