//! Lockgate's shared vocabulary, with no I/O: the portable [`Value`], the column
//! [`Kind`]s it is typed against, [`Row`]s and [`Batch`]es, table definitions
//! ([`Table`]) and [`RowError`]s.
//!
//! Every engine reads into and writes from these types, so a value copied from
//! PostgreSQL to MariaDB to SQLite passes through one representation whose rules
//! (the shared domain) live in [`value`].
#![deny(missing_docs)]

pub mod copytext;
pub mod decimal;
pub mod duration;
pub mod narrow;
pub mod row;
pub mod table;
pub mod value;

pub use decimal::Decimal;
pub use duration::{parse_duration, DurationError};
pub use narrow::narrowing;
pub use row::{Batch, Row, RowError};
pub use table::{CheckConstraint, Column, ForeignKey, Index, Table, TableName, UniqueConstraint};
pub use value::{fingerprint, ConvertError, Kind, Labels, TextForm, Value};
