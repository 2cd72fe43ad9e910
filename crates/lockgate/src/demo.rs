//! `lockgate demo`: the seed export app's sample, in SQLite, made with the real
//! transfer engine: a source database of 1,336 customers (FirstName and LastName
//! nullable), a destination whose customers table forbids NULL names, six completed
//! exports holding 1,107 of them (one re-exports rows whose first export failed on
//! a NULL name and were corrected, so a seventh, failed export is in the history),
//! and 229 customers not yet exported. [`generate`] adds customers as the seed's
//! Generate Sample Customers form did.

use crate::transfer::{self, CreateOptions, RunOptions, Transfer, TransferError};
use chrono::{Days, Utc};
use lockgate_core::{Row, TableName, Value};
use lockgate_db::demo::{self as sample, Name, Side};
use lockgate_db::{Conn, DbError, DbUrl};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The sample's transfer name.
pub const TRANSFER: &str = "customers";

/// Customers in the sample source.
pub const CUSTOMERS: i64 = 1_336;

/// Customers the sample's completed exports hold.
pub const EXPORTED: i64 = 1_107;

/// The most customers one [`generate`] adds (the seed's form: 1 to 500).
pub const MAX_GENERATE: i64 = 500;

/// Why the demo could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Bad input (a count out of range, a folder that is not a demo).
    #[error("{0}")]
    Input(String),
    /// A file could not be written.
    #[error("{0}")]
    Io(String),
    /// A database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A transfer failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

impl DemoError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            DemoError::Input(_) => 2,
            DemoError::Io(_) => 1,
            DemoError::Db(e) => e.exit_code(),
            DemoError::Transfer(e) => e.exit_code(),
        }
    }
}

/// The demo's files.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoFiles {
    /// Its folder.
    pub dir: PathBuf,
    /// The source database.
    pub source: PathBuf,
    /// The destination database (with the export ledger).
    pub dest: PathBuf,
    /// A lockgate.toml naming the transfer `customers`.
    pub config: PathBuf,
}

impl DemoFiles {
    /// The files of the demo in `dir`.
    pub fn new(dir: &Path) -> DemoFiles {
        DemoFiles {
            dir: dir.to_path_buf(),
            source: dir.join("source.db"),
            dest: dir.join("destination.db"),
            config: dir.join("lockgate.toml"),
        }
    }

    fn url(path: &Path) -> Result<DbUrl, DemoError> {
        Ok(DbUrl::parse(&format!("sqlite://{}", path.display()))?)
    }

    /// The sample's transfer.
    pub fn transfer(&self) -> Result<Transfer, DemoError> {
        Ok(Transfer {
            name: TRANSFER.into(),
            source: Self::url(&self.source)?,
            from: transfer::SourceSpec::Table("customers".into()),
            dest: Self::url(&self.dest)?,
            dest_table: "customers".into(),
            key: vec!["CustomerID".into()],
            map: Vec::new(),
            batch_size: 500,
            mode: lockgate_db::writer::WriteMode::Insert,
            commit_every: None,
            on_error: lockgate_db::writer::OnError::Rollback,
            lock_timeout: transfer::DEFAULT_LOCK_TIMEOUT,
        })
    }
}

/// What [`create`] found or made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoReport {
    /// The files.
    pub files: DemoFiles,
    /// Whether this call made the sample (false: it was there).
    pub created: bool,
    /// Customers in the source.
    pub customers: i64,
    /// Customers in the destination.
    pub exported: i64,
    /// Customers no pending, running or completed export holds.
    pub exportable: i64,
    /// Exports, newest first.
    pub exports: Vec<lockgate_db::exports::Export>,
}

const FIRST: &[&str] = &[
    "Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivan", "Jill", "Kemal", "Lena", "Mo", "Nia", "Omar",
    "Pia", "Zoë", "José",
];
const LAST: &[&str] = &[
    "Smith", "Jones", "Brown", "García", "Miller", "Davis", "Lopez", "Wilson", "Anders", "Taylor", "O'Neil", "Moore",
];
const CITIES: &[&str] = &["Oslo", "Lyon", "Austin", "Pune", "Osaka", "Lagos", "São Paulo"];

/// The sample's exports, in order: rows per wave. The third wave's first export
/// fails on two NULL names; after the fix it is exported again.
const WAVES: [i64; 6] = [200, 200, 200, 200, 150, 157];

/// Makes the sample in `dir` (created if missing), or reports the one already there.
pub async fn create(dir: &Path) -> Result<DemoReport, DemoError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| DemoError::Io(format!("{}: cannot create the folder: {e}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| DemoError::Io(format!("{}: {e}", dir.display())))?;
    let files = DemoFiles::new(&dir);
    let created = !files.source.exists();
    if created {
        for f in [&files.source, &files.dest] {
            let _ = std::fs::remove_file(f);
        }
        make(&files).await?;
    }
    report(files, created).await
}

/// The sample's state: counts and exports.
pub async fn report(files: DemoFiles, created: bool) -> Result<DemoReport, DemoError> {
    let t = files.transfer()?;
    let customers = count(&t.source).await?;
    let exported = count(&t.dest).await?;
    let exportable = transfer::create(&t, &CreateOptions { dry_run: true }).await?.available;
    let exports = transfer::list(&t.dest, Some(TRANSFER), 100).await?;
    Ok(DemoReport {
        files,
        created,
        customers,
        exported,
        exportable,
        exports,
    })
}

async fn count(url: &DbUrl) -> Result<i64, DemoError> {
    let mut conn = Conn::connect(url).await?;
    Ok(sample::count_customers(&mut conn).await?)
}

async fn make(files: &DemoFiles) -> Result<(), DemoError> {
    let t = files.transfer()?;
    let mut src = Conn::connect(&t.source).await?;
    sample::create_customers(&mut src, Side::Source).await?;
    let mut dst = Conn::connect(&t.dest).await?;
    sample::create_customers(&mut dst, Side::Destination).await?;
    drop(dst);
    let toml = format!(
        "# The demo's transfer: `lockgate --config {config} transfer create customers`, then `transfer run`.\n\
         [transfers.customers]\nsource = \"sqlite://{}\"\nsource_table = \"customers\"\n\
         dest = \"sqlite://{}\"\ndest_table = \"customers\"\nkey = [\"CustomerID\"]\nbatch_size = 500\n",
        files.source.display(),
        files.dest.display(),
        config = files.config.display()
    );
    std::fs::write(&files.config, toml)
        .map_err(|e| DemoError::Io(format!("{}: cannot write: {e}", files.config.display())))?;
    let mut rng = fastrand::Rng::with_seed(2026);
    let today = Utc::now().date_naive();
    let mut next = 1i64;
    let quiet = RunOptions {
        holder: "lockgate demo".into(),
        ..RunOptions::default()
    };
    for (wave, size) in WAVES.iter().enumerate() {
        let first = next;
        insert(&mut src, &mut rng, first, *size, |id| {
            today - Days::new(((CUSTOMERS - id) / 2 + 8) as u64)
        })
        .await?;
        next += size;
        if wave == 2 {
            // The seed's way to make an export fail: NULL names in the source.
            sample::set_name(&mut src, first + 33, Name::First, None).await?;
            sample::set_name(&mut src, first + 117, Name::Last, None).await?;
            transfer::create(&t, &CreateOptions::default()).await?;
            transfer::run_pending(std::slice::from_ref(&t), &quiet).await?;
            // Corrected, then exported again.
            sample::set_name(&mut src, first + 33, Name::First, Some("Nia")).await?;
            sample::set_name(&mut src, first + 117, Name::Last, Some("Moore")).await?;
        }
        transfer::create(&t, &CreateOptions::default()).await?;
        transfer::run_pending(std::slice::from_ref(&t), &quiet).await?;
    }
    insert(&mut src, &mut rng, next, CUSTOMERS - EXPORTED, |id| {
        today - Days::new(((CUSTOMERS - id) / 2 + 8) as u64)
    })
    .await?;
    Ok(())
}

async fn insert(
    conn: &mut Conn,
    rng: &mut fastrand::Rng,
    first: i64,
    n: i64,
    date: impl Fn(i64) -> chrono::NaiveDate,
) -> Result<(), DemoError> {
    let columns = Arc::new(
        [
            "CustomerID",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "City",
            "AcquisitionDate",
        ]
        .map(String::from)
        .to_vec(),
    );
    let rows: Vec<Row> = (first..first + n)
        .map(|id| {
            let f = FIRST[rng.usize(..FIRST.len())];
            let l = LAST[rng.usize(..LAST.len())];
            Row {
                line: id as u64,
                number: 0,
                values: vec![
                    Value::Int(id),
                    Value::Text(f.into()),
                    Value::Text(l.into()),
                    Value::Text(format!("{}.{id}@example.com", f.to_lowercase())),
                    Value::Text(format!("+1-555-{:04}", id % 10_000)),
                    Value::Text(CITIES[rng.usize(..CITIES.len())].into()),
                    Value::Date(date(id)),
                ],
            }
        })
        .collect();
    conn.begin().await?;
    let outcome = conn
        .bulk_insert(&TableName::new("customers"), &columns, &rows, None)
        .await?;
    if let Some((_, e)) = outcome.row_errors.into_iter().next() {
        let _ = conn.rollback().await;
        return Err(DbError::engine("adding sample customers", e).into());
    }
    conn.commit().await?;
    Ok(())
}

/// Adds `n` (1 to 500) random customers to the demo's source, each acquired on a
/// random day within the last week; returns their ids.
pub async fn generate(dir: &Path, n: i64) -> Result<std::ops::Range<i64>, DemoError> {
    if !(1..=MAX_GENERATE).contains(&n) {
        return Err(DemoError::Input(format!(
            "cannot generate {n} customers: give a number from 1 to {MAX_GENERATE}"
        )));
    }
    let files = DemoFiles::new(dir);
    if !files.source.exists() {
        return Err(DemoError::Input(format!(
            "{} has no demo (no source.db): run `lockgate demo --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    let t = files.transfer()?;
    let mut src = Conn::connect(&t.source).await?;
    let first = match sample::max_customer_id(&mut src).await? {
        Some(m) => m + 1,
        None => 1,
    };
    let mut rng = fastrand::Rng::new();
    let today = Utc::now().date_naive();
    let days: Vec<u64> = (0..n).map(|_| rng.u64(0..7)).collect();
    insert(&mut src, &mut rng, first, n, |id| {
        today - Days::new(days[(id - first) as usize])
    })
    .await?;
    Ok(first..first + n)
}
