//! The type-mapping table: engine type ↔ [`Kind`] ↔ engine type.
//!
//! `*_kind` read an introspected type into a [`Kind`]; `*_type` give the type
//! Lockgate declares when it creates a column of a kind (staging tables, the
//! cross-engine tests, later migrations). ARCHITECTURE.md publishes this table and
//! the `types` tests in `tests/it` check both directions on the real servers.

use lockgate_core::Kind;

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
        "text" | "name" | "citext" => Kind::Text {
            max_chars: None,
            max_bytes: None,
        },
        "varchar" | "bpchar" => Kind::Text {
            max_chars: args.first().copied(),
            max_bytes: None,
        },
        "bytea" => Kind::Bytes { max_bytes: None },
        "date" => Kind::Date,
        "time" => Kind::Time,
        "timestamp" => Kind::Timestamp,
        "timestamptz" => Kind::TimestampTz { epoch32: false },
        "json" | "jsonb" => Kind::Json,
        "uuid" => Kind::Uuid,
        _ if is_enum => Kind::Text {
            max_chars: None,
            max_bytes: None,
        },
        _ => Kind::Unsupported {
            type_name: full.to_string(),
        },
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
        Kind::Text { max_chars: Some(n), .. } => format!("varchar({n})"),
        Kind::Text { .. } | Kind::Any => "text".into(),
        Kind::Bytes { .. } => "bytea".into(),
        Kind::Date => "date".into(),
        Kind::Time => "time".into(),
        Kind::Timestamp => "timestamp".into(),
        Kind::TimestampTz { .. } => "timestamptz".into(),
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
        "smallint" | "year" => Kind::Int { bytes: 2, unsigned },
        "mediumint" => Kind::Int { bytes: 3, unsigned },
        "int" | "integer" => Kind::Int { bytes: 4, unsigned },
        "bigint" => Kind::Int { bytes: 8, unsigned },
        "float" => Kind::Float { bytes: 4 },
        "double" | "real" => Kind::Float { bytes: 8 },
        "decimal" | "numeric" => Kind::Decimal {
            precision: Some(args.first().copied().unwrap_or(10) as u32),
            scale: Some(args.get(1).copied().unwrap_or(0) as u32),
            max_significant: None,
        },
        "char" | "varchar" => Kind::Text {
            max_chars: char_max,
            max_bytes: None,
        },
        "longtext" if is_json => Kind::Json,
        "json" => Kind::Json,
        "tinytext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(255),
        },
        "text" => Kind::Text {
            max_chars: None,
            max_bytes: Some(65_535),
        },
        "mediumtext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(16_777_215),
        },
        "longtext" => Kind::Text {
            max_chars: None,
            max_bytes: Some(4_294_967_295),
        },
        "enum" | "set" => Kind::Text {
            max_chars: None,
            max_bytes: None,
        },
        "binary" | "varbinary" => Kind::Bytes {
            max_bytes: args.first().copied(),
        },
        "tinyblob" => Kind::Bytes { max_bytes: Some(255) },
        "blob" => Kind::Bytes {
            max_bytes: Some(65_535),
        },
        "mediumblob" => Kind::Bytes {
            max_bytes: Some(16_777_215),
        },
        "longblob" => Kind::Bytes {
            max_bytes: Some(4_294_967_295),
        },
        "date" => Kind::Date,
        "time" => Kind::Time,
        "datetime" => Kind::Timestamp,
        "timestamp" => Kind::TimestampTz { epoch32: true },
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
        Kind::Text { max_chars: Some(n), .. } if *n <= 16_383 => format!("varchar({n})"),
        Kind::Text { .. } | Kind::Any => "longtext".into(),
        Kind::Bytes { .. } => "longblob".into(),
        Kind::Date => "date".into(),
        Kind::Time => "time(6)".into(),
        Kind::Timestamp => "datetime(6)".into(),
        // DATETIME, not TIMESTAMP: TIMESTAMP stops in 2038. Values are UTC.
        Kind::TimestampTz { .. } => "datetime(6)".into(),
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
        "TIME" => return Kind::Time,
        "DATETIME" | "TIMESTAMP" => return Kind::Timestamp,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" | "DATETIMETZ" => return Kind::TimestampTz { epoch32: false },
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
        }
    } else if upper.contains("BLOB") {
        Kind::Bytes { max_bytes: None }
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
        Kind::Time => "TIME".into(),
        Kind::Timestamp => "TIMESTAMP".into(),
        Kind::TimestampTz { .. } => "TIMESTAMPTZ".into(),
        Kind::Json => "JSON TEXT".into(),
        Kind::Uuid => "UUID".into(),
        Kind::Any => "".into(),
        Kind::Unsupported { type_name } => type_name.clone(),
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
            },
            Kind::Text {
                max_chars: None,
                max_bytes: None,
            },
            Kind::Bytes { max_bytes: None },
            Kind::Date,
            Kind::Time,
            Kind::Timestamp,
            Kind::TimestampTz { epoch32: false },
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
                },
                Kind::Decimal { precision, scale, .. } => Kind::Decimal {
                    precision: *precision,
                    scale: *scale,
                    max_significant: Some(15),
                },
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
            Kind::TimestampTz { epoch32: true }
        );
    }
}
