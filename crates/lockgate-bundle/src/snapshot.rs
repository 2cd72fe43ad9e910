//! A snapshot's manifest (`manifest.json`): the versioned document that says what a
//! snapshot holds, written last so that a snapshot without one does not exist.
//!
//! It carries the source (engine, server version), each module's migration version
//! from the source's ledger, and per table its portable definition ([`TableDef`]:
//! columns with their types and limits, keys, unique constraints, foreign keys,
//! indexes, plus the source engine's own DDL for people to read) and its data file
//! (rows, sizes, SHA-256). Column types are [`ColumnType`]s, an explicit serialized
//! form of [`lockgate_core::Kind`] kept apart from it, so the core type can change
//! without changing what old snapshots mean.
//!
//! Data files hold one row per line in PostgreSQL's COPY text format
//! ([`lockgate_core::copytext`]), compressed with zstd ([`DATA_ENCODING`]).

use lockgate_core::{Kind, Labels, TextForm};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifest format this build writes and the newest it reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The encoding of every data file: COPY text lines, zstd-compressed.
pub const DATA_ENCODING: &str = "copy-text+zstd";

/// A snapshot's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The format version ([`SNAPSHOT_FORMAT`] when written by this build).
    pub format: u32,
    /// The snapshot's id (sortable by time: `20261207T163000.123Z-1a2b3c`).
    pub id: String,
    /// Its profile.
    pub profile: String,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// Where its data came from.
    pub source: SourceInfo,
    /// Each module's migration version in the source's ledger (module → version).
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// The versions the source's ledger records as applied, so that a restored
    /// database's drift checks see the same history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<LedgerVersion>,
    /// The data files' encoding ([`DATA_ENCODING`]).
    pub encoding: String,
    /// The subset conditions it was taken with (`table: condition`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subset: Vec<String>,
    /// The tables, parents first (the order to restore them in).
    pub tables: Vec<TableEntry>,
    /// User media (`--files`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<MediaFile>,
}

impl SnapshotManifest {
    /// Bytes stored for the snapshot: data files and media.
    pub fn stored_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.stored_bytes).sum::<u64>() + self.files.iter().map(|f| f.bytes).sum::<u64>()
    }

    /// Rows in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Reads a manifest, refusing one of a newer format than this build knows
    /// (`origin` names it in messages: a store URL and key).
    pub fn parse(bytes: &[u8], origin: &str) -> Result<SnapshotManifest, String> {
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(bytes)
            .map_err(|e| format!("{origin}: not a snapshot manifest ({e}); the snapshot is damaged"))?;
        if head.format > SNAPSHOT_FORMAT {
            return Err(format!(
                "{origin}: the snapshot has manifest format {}, newer than the {SNAPSHOT_FORMAT} this lockgate \
                 reads; restore it with a newer lockgate",
                head.format
            ));
        }
        let m: SnapshotManifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("{origin}: not a snapshot manifest ({e}); the snapshot is damaged"))?;
        if m.encoding != DATA_ENCODING {
            return Err(format!(
                "{origin}: data encoding {:?} is not one this lockgate reads ({DATA_ENCODING})",
                m.encoding
            ));
        }
        Ok(m)
    }
}

/// One applied version in the source's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerVersion {
    /// The module.
    pub module: String,
    /// The version.
    pub version: String,
    /// `applied` or `partial`.
    pub status: String,
    /// The version folder's checksum when it ran.
    pub checksum: String,
    /// Parts committed.
    #[serde(default)]
    pub parts_done: i64,
    /// Process scripts it ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
}

/// The database a snapshot was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `postgres`, `mysql` or `sqlite`.
    pub engine: String,
    /// The server's version string (`sqlite 3.46.0` for SQLite).
    pub server_version: String,
    /// The database's URL without its password.
    pub database: String,
}

/// One table of a snapshot: its definition and its data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The definition.
    #[serde(flatten)]
    pub def: TableDef,
    /// The data file's key, relative to the snapshot's folder (`data/0001-customers.tsv.zst`).
    pub file: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes of its rows before compression.
    pub bytes: u64,
    /// Bytes stored (compressed).
    pub stored_bytes: u64,
    /// SHA-256 of the stored file, lower-case hex.
    pub sha256: String,
    /// The condition its rows were taken with (`--where`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Columns masked, with their rules (`email`, `hash`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<(String, String)>,
    /// Whether only a subset of its rows was taken (`--subset`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subset: bool,
}

/// A table's portable definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// The PostgreSQL schema it was in, when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its name.
    pub name: String,
    /// Its columns, in order (the data file's field order).
    pub columns: Vec<ColumnDef>,
    /// Primary key columns, in key order.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Unique constraints and unique indexes (the primary key not included).
    #[serde(default)]
    pub unique: Vec<KeyDef>,
    /// Foreign keys.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Other (non-unique) indexes over plain columns.
    #[serde(default)]
    pub indexes: Vec<KeyDef>,
    /// CHECK constraints as the source engine writes them (`name: expression`), for
    /// people to read: a restore does not recreate them (their SQL is the source
    /// engine's) and says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// The source engine's own DDL for the table, for people to read.
    #[serde(default)]
    pub source_ddl: String,
}

impl TableDef {
    /// `schema.name` or `name`.
    pub fn display_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Its name.
    pub name: String,
    /// Its portable type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether it may hold NULL.
    pub nullable: bool,
    /// Whether the database generated its values (identity, auto-increment).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
    /// The type as the source engine declared it (`character varying(100)`).
    pub source_type: String,
    /// The default as the source engine wrote it, for people to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_default: Option<String>,
    /// The longest value the snapshot holds (texts and bytes), so that a restore can
    /// tell whether a bounded target column holds every value it will get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// The longest text or bytes value of a column in a snapshot's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Characters of the longest text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u64>,
    /// Bytes of the longest text (UTF-8) or bytes value.
    pub max_bytes: u64,
}

/// A named list of columns (a unique key or an index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDef {
    /// Its name on the source.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
}

/// A foreign key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    /// Its name on the source.
    pub name: String,
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced table's schema, when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references_schema: Option<String>,
    /// The referenced table.
    pub references: String,
    /// The referenced columns, pairwise with `columns`.
    pub references_columns: Vec<String>,
}

/// User media stored with a snapshot (`--files DIR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFile {
    /// The path relative to the folder, `/`-separated.
    pub path: String,
    /// Its key relative to the snapshot's folder (`files/<path>`).
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// A column's type in a manifest: a serialized [`Kind`], field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    /// `bool`, `int`, `float`, `decimal`, `text`, `bytes`, `date`, `time`,
    /// `timestamp`, `timestamptz`, `json`, `uuid`, `any` or `unsupported`.
    pub kind: String,
    /// Width in bytes (integers and floats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u8>,
    /// Unsigned integers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
    /// Decimal digits in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// Decimal digits after the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Significant digits an SQLite NUMERIC column keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_significant: Option<u32>,
    /// The most characters (text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u64>,
    /// The most bytes (text, bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// `padded` (char(n)), `enum` or `set`; absent for free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// An ENUM's or SET's labels, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Fixed-width bytes (BINARY(n)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed: bool,
    /// Fractional-second digits kept (times and timestamps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsp: Option<u8>,
    /// MariaDB TIMESTAMP's 1970–2038 range.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub epoch32: bool,
    /// The engine's name of an unsupported type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
}

impl From<&Kind> for ColumnType {
    fn from(k: &Kind) -> ColumnType {
        let t = |kind: &str| ColumnType {
            kind: kind.into(),
            ..ColumnType::default()
        };
        match k {
            Kind::Bool => t("bool"),
            Kind::Int { bytes, unsigned } => ColumnType {
                width: Some(*bytes),
                unsigned: *unsigned,
                ..t("int")
            },
            Kind::Float { bytes } => ColumnType {
                width: Some(*bytes),
                ..t("float")
            },
            Kind::Decimal {
                precision,
                scale,
                max_significant,
            } => ColumnType {
                precision: *precision,
                scale: *scale,
                max_significant: *max_significant,
                ..t("decimal")
            },
            Kind::Text {
                max_chars,
                max_bytes,
                form,
            } => {
                let (form, labels) = match form {
                    TextForm::Free => (None, Vec::new()),
                    TextForm::Padded => (Some("padded"), Vec::new()),
                    TextForm::Enum(l) => (Some("enum"), l.to_vec()),
                    TextForm::Set(l) => (Some("set"), l.to_vec()),
                };
                ColumnType {
                    max_chars: *max_chars,
                    max_bytes: *max_bytes,
                    form: form.map(str::to_string),
                    labels,
                    ..t("text")
                }
            }
            Kind::Bytes { max_bytes, fixed } => ColumnType {
                max_bytes: *max_bytes,
                fixed: *fixed,
                ..t("bytes")
            },
            Kind::Date => t("date"),
            Kind::Time { fsp } => ColumnType {
                fsp: Some(*fsp),
                ..t("time")
            },
            Kind::Timestamp { fsp } => ColumnType {
                fsp: Some(*fsp),
                ..t("timestamp")
            },
            Kind::TimestampTz { epoch32, fsp } => ColumnType {
                fsp: Some(*fsp),
                epoch32: *epoch32,
                ..t("timestamptz")
            },
            Kind::Json => t("json"),
            Kind::Uuid => t("uuid"),
            Kind::Any => t("any"),
            Kind::Unsupported { type_name } => ColumnType {
                type_name: Some(type_name.clone()),
                ..t("unsupported")
            },
        }
    }
}

impl ColumnType {
    /// The [`Kind`] it describes; an unknown kind or a missing width is an error.
    pub fn to_kind(&self) -> Result<Kind, String> {
        let fsp = || self.fsp.unwrap_or(lockgate_core::value::MAX_FSP);
        let width = |allowed: &[u8]| match self.width {
            Some(w) if allowed.contains(&w) => Ok(w),
            other => Err(format!(
                "a {} type needs a width of {allowed:?}, not {other:?}",
                self.kind
            )),
        };
        Ok(match self.kind.as_str() {
            "bool" => Kind::Bool,
            "int" => Kind::Int {
                bytes: width(&[1, 2, 3, 4, 8])?,
                unsigned: self.unsigned,
            },
            "float" => Kind::Float { bytes: width(&[4, 8])? },
            "decimal" => Kind::Decimal {
                precision: self.precision,
                scale: self.scale,
                max_significant: self.max_significant,
            },
            "text" => Kind::Text {
                max_chars: self.max_chars,
                max_bytes: self.max_bytes,
                form: match self.form.as_deref() {
                    None => TextForm::Free,
                    Some("padded") => TextForm::Padded,
                    Some("enum") => TextForm::Enum(Labels::new(self.labels.clone())),
                    Some("set") => TextForm::Set(Labels::new(self.labels.clone())),
                    Some(other) => return Err(format!("unknown text form {other:?}")),
                },
            },
            "bytes" => Kind::Bytes {
                max_bytes: self.max_bytes,
                fixed: self.fixed,
            },
            "date" => Kind::Date,
            "time" => Kind::Time { fsp: fsp() },
            "timestamp" => Kind::Timestamp { fsp: fsp() },
            "timestamptz" => Kind::TimestampTz {
                epoch32: self.epoch32,
                fsp: fsp(),
            },
            "json" => Kind::Json,
            "uuid" => Kind::Uuid,
            "any" => Kind::Any,
            "unsupported" => Kind::Unsupported {
                type_name: self.type_name.clone().unwrap_or_default(),
            },
            other => return Err(format!("unknown column type {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_column_type() {
        let kinds = vec![
            Kind::Bool,
            Kind::Int {
                bytes: 3,
                unsigned: true,
            },
            Kind::Float { bytes: 4 },
            Kind::Decimal {
                precision: Some(12),
                scale: Some(2),
                max_significant: None,
            },
            Kind::Text {
                max_chars: Some(10),
                max_bytes: None,
                form: TextForm::Padded,
            },
            Kind::Text {
                max_chars: None,
                max_bytes: Some(65_535),
                form: TextForm::Enum(Labels::new(vec!["a".into(), "b'c".into()])),
            },
            Kind::Bytes {
                max_bytes: Some(16),
                fixed: true,
            },
            Kind::Date,
            Kind::Time { fsp: 3 },
            Kind::Timestamp { fsp: 0 },
            Kind::TimestampTz { epoch32: true, fsp: 6 },
            Kind::Json,
            Kind::Uuid,
            Kind::Any,
            Kind::Unsupported {
                type_name: "interval".into(),
            },
        ];
        for k in kinds {
            let t = ColumnType::from(&k);
            let json = serde_json::to_string(&t).unwrap();
            let back: ColumnType = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_kind().unwrap(), k, "{json}");
        }
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let e = SnapshotManifest::parse(br#"{"format": 99, "id": "x"}"#, "s3://b/p/manifest.json").unwrap_err();
        assert!(e.contains("format 99, newer than the 1"), "{e}");
    }
}
