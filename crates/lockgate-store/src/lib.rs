//! Lockgate's snapshot storage: named objects (a snapshot's manifest and data files) kept in
//! a local folder or an S3-compatible bucket, streamed both ways. It knows no database.
//!
//! A [`Store`] is opened from a user's URL ([`Store::open`]): `s3://bucket/prefix`, or a
//! folder (`file:///abs/path` or a plain path, created when missing). Objects are named by
//! keys, `/`-separated relative paths such as
//! `customer1/20261207T101500Z-ab12cd/customers.tsv.zst` (see [`Store::open`] for the
//! rules). Writes stream through an [`ObjectWriter`] (multipart, bounded memory) and become
//! visible only when [`ObjectWriter::finish`] succeeds, on either kind of store: a killed
//! process leaves no object behind under the key. Reads stream through an [`ObjectReader`]
//! or [`Store::download`]. Every error is a [`StoreError`], whose [`StoreError::exit_code`]
//! follows ARCHITECTURE.md's conventions.
//!
//! ```no_run
//! use lockgate_store::{Store, StoreConfig};
//!
//! # async fn run() -> Result<(), lockgate_store::StoreError> {
//! let store = Store::open("s3://snapshots/lockgate", &StoreConfig::default())?;
//! let mut writer = store.writer("customer1/20261207T101500Z-ab12cd/customers.tsv.zst").await?;
//! writer.write(b"id\tname\n1\tAda\n").await?;
//! writer.finish().await?;
//! for object in store.list("customer1/").await? {
//!     println!("{} {} {}", object.key, object.size, object.modified);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod error;
mod io;
mod key;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use io::{ObjectReader, ObjectWriter, PARTS_IN_FLIGHT, PART_SIZE};
pub use store::{ObjectInfo, Store, StoreConfig};
