//! `lockgate demo`: the seed export app's sample, in SQLite, made with the real
//! transfer engine: a source database of 1,336 customers (FirstName and LastName
//! nullable), a destination whose customers table forbids NULL names, six completed
//! exports holding 1,107 of them (one re-exports rows whose first export failed on
//! a NULL name and were corrected, so a seventh, failed export is in the history),
//! and 229 customers not yet exported. [`generate`] adds customers as the seed's
//! Generate Sample Customers form did.
//!
//! Beside it, `accounts.db`: eight customer accounts with their sub-accounts
//! (`users`: clients, officers, pilots, inspectors, vehicles), jobs with their logs
//! and assignments, products, crops, costing items and invoices, every reference
//! declared, and the merge `customers` in `lockgate.toml` to merge one account into
//! another. Customers [`CONFLICT_FROM`] and [`CONFLICT_INTO`] share sub-account
//! usernames (a merge with conflicts), [`CLEAN_FROM`] and [`CLEAN_INTO`] share none,
//! and [`DELETED_CUSTOMER`] is soft-deleted. The data is fixed, so the ids the demo
//! prints hold on every machine.
//!
//! And one background upgrade, [`UPGRADE`] in `upgrades/`, of the destination's
//! customers (their phone numbers without dashes), for the dashboard's Upgrades page.

use crate::transfer::{self, CreateOptions, RunOptions, Transfer, TransferError};
use chrono::{Days, Utc};
use lockgate_core::{Row, TableName, Value};
use lockgate_db::demo::{self as sample, AccountCounts, Name, Side};
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

/// The sample's merge name (`[merges.customers]`).
pub const MERGE: &str = "customers";

/// The sample's background upgrade (`upgrades/phone_digits.toml`): the
/// destination's customers' phone numbers without their dashes.
pub const UPGRADE: &str = "phone_digits";

/// The connection name of `accounts.db` in the demo's `lockgate.toml`.
pub const ACCOUNTS_CONNECTION: &str = "accounts";

/// A customer of `accounts.db` whose merge into [`CONFLICT_INTO`] has conflicts:
/// both have the client `north-farm`, the pilot `pilot-1` and the vehicle
/// `ag-truck-1` (`users` is unique on parent and username).
pub const CONFLICT_FROM: i64 = 2;

/// The sub-account usernames [`CONFLICT_FROM`] and [`CONFLICT_INTO`] both have.
pub const CONFLICT_USERNAMES: [&str; 3] = ["ag-truck-1", "north-farm", "pilot-1"];

/// The customer [`CONFLICT_FROM`] merges into.
pub const CONFLICT_INTO: i64 = 1;

/// A customer of `accounts.db` that shares no sub-account username with
/// [`CLEAN_INTO`]: a clean merge.
pub const CLEAN_FROM: i64 = 4;

/// The customer [`CLEAN_FROM`] merges into.
pub const CLEAN_INTO: i64 = 3;

/// The soft-deleted customer of `accounts.db` (`deleted = 1`): a merge refuses it.
pub const DELETED_CUSTOMER: i64 = 6;

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
    /// The customer accounts database the merge `customers` runs on.
    pub accounts: PathBuf,
    /// A lockgate.toml naming the transfer `customers`, the connection `accounts`
    /// and the merge `customers`.
    pub config: PathBuf,
    /// The folder of upgrade files, holding [`UPGRADE`] (of the destination).
    pub upgrades: PathBuf,
}

impl DemoFiles {
    /// The files of the demo in `dir`.
    pub fn new(dir: &Path) -> DemoFiles {
        DemoFiles {
            dir: dir.to_path_buf(),
            source: dir.join("source.db"),
            dest: dir.join("destination.db"),
            accounts: dir.join("accounts.db"),
            config: dir.join("lockgate.toml"),
            upgrades: dir.join("upgrades"),
        }
    }

    fn url(path: &Path) -> Result<DbUrl, DemoError> {
        Ok(DbUrl::parse(&format!("sqlite://{}", path.display()))?)
    }

    /// The URL of `accounts.db`.
    pub fn accounts_url(&self) -> Result<DbUrl, DemoError> {
        Self::url(&self.accounts)
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
    /// Whether this call made the sample or `accounts.db` (false: both were there).
    pub created: bool,
    /// Customers in the source.
    pub customers: i64,
    /// Customers in the destination.
    pub exported: i64,
    /// Customers no pending, running or completed export holds.
    pub exportable: i64,
    /// Exports, newest first.
    pub exports: Vec<lockgate_db::exports::Export>,
    /// The rows of `accounts.db`, table by table.
    pub accounts: AccountCounts,
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
    let made_sample = !files.source.exists();
    if made_sample {
        for f in [&files.source, &files.dest] {
            let _ = std::fs::remove_file(f);
        }
        make(&files).await?;
    }
    // Apart from the sample, so that a demo folder made before accounts.db existed
    // gains it and keeps its exports.
    let made_accounts = !files.accounts.exists();
    if made_accounts {
        make_accounts(&files).await?;
    }
    if made_sample || made_accounts || !files.config.exists() {
        write_config(&files)?;
    }
    // A demo folder made before the upgrade existed gains it; one whose folder is
    // there is left as its user made it.
    if !files.upgrades.exists() {
        write_upgrade(&files)?;
    }
    report(files, made_sample || made_accounts).await
}

/// The sample's state: counts and exports.
pub async fn report(files: DemoFiles, created: bool) -> Result<DemoReport, DemoError> {
    let t = files.transfer()?;
    let customers = count(&t.source).await?;
    let exported = count(&t.dest).await?;
    let exportable = transfer::create(&t, &CreateOptions { dry_run: true }).await?.available;
    let exports = transfer::list(&t.dest, Some(TRANSFER), 100).await?;
    let mut conn = Conn::connect_existing(&files.accounts_url()?).await?;
    let accounts = sample::count_accounts(&mut conn).await?;
    Ok(DemoReport {
        files,
        created,
        customers,
        exported,
        exportable,
        exports,
        accounts,
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

/// A TOML basic string holding `text` (a folder's path may hold quotes or
/// backslashes).
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the demo's lockgate.toml: the transfer, the connection to accounts.db
/// and the merge of customer accounts.
fn write_config(files: &DemoFiles) -> Result<(), DemoError> {
    let url = |p: &Path| toml_string(&format!("sqlite://{}", p.display()));
    let config = files.config.display();
    let toml = format!(
        "# The demo's transfer: `lockgate --config {config} transfer create customers`, then `transfer run`.\n\
         [transfers.customers]\nsource = {source}\nsource_table = \"customers\"\n\
         dest = {dest}\ndest_table = \"customers\"\nkey = [\"CustomerID\"]\nbatch_size = 500\n\n\
         [connections.{ACCOUNTS_CONNECTION}]\nurl = {accounts}\n\n\
         # The demo's merge of customer accounts in accounts.db: preview one with\n\
         # `lockgate --config {config} merge --def {MERGE} --from {CONFLICT_FROM} --into {CONFLICT_INTO} --preview`.\n\
         [merges.{MERGE}]\ndb = \"{ACCOUNTS_CONNECTION}\"\ntable = \"customers\"\ndeleted_when = \"deleted = 1\"\n\
         sources = \"set:deleted=1,active=0\"\nconflict_rows = \"set:deleted=1\"\nskip_tables = []\ntimeout = \"60s\"\n",
        source = url(&files.source),
        dest = url(&files.dest),
        accounts = url(&files.accounts),
    );
    std::fs::write(&files.config, toml)
        .map_err(|e| DemoError::Io(format!("{}: cannot write: {e}", files.config.display())))
}

/// Writes `upgrades/phone_digits.toml`: the destination's customers' phone numbers
/// without dashes, and an index on them once every row has the upgrade (its
/// cleanup). The column it needs and the run are the user's to start, as in a real
/// project (`lockgate upgrade init`, `lockgate upgrade run`).
fn write_upgrade(files: &DemoFiles) -> Result<(), DemoError> {
    // Shown in comments: a control character in the folder's name would end one.
    let plain = |s: String| s.replace(|c: char| c.is_control(), "?");
    let dest = plain(format!("sqlite://{}", files.dest.display()));
    let dir = plain(files.upgrades.display().to_string());
    let text = format!(
        "# The demo's background upgrade of the destination's customers: phone numbers\n\
         # without their dashes, applied in throttled batches. Try it, and watch the\n\
         # dashboard's Upgrades page:\n\
         #   lockgate upgrade init --db {dest} --table customers\n\
         #   lockgate upgrade run --db {dest} --dir {dir} --max-rows-per-second 50\n\
         table = \"customers\"\n\
         set = {{ Phone = \"replace(Phone, '-', '')\" }}\n\
         # Once every row has it: `lockgate upgrade cleanup {UPGRADE} --db … --dir …`.\n\
         cleanup = \"CREATE INDEX IF NOT EXISTS customers_phone ON customers (Phone)\"\n"
    );
    std::fs::create_dir_all(&files.upgrades)
        .map_err(|e| DemoError::Io(format!("{}: cannot create the folder: {e}", files.upgrades.display())))?;
    let path = files.upgrades.join(format!("{UPGRADE}.toml"));
    std::fs::write(&path, text).map_err(|e| DemoError::Io(format!("{}: cannot write: {e}", path.display())))
}

/// Users' kinds in accounts.db (`users.kind`).
const CLIENT: &str = "3";
const OFFICER: &str = "4";
const PILOT: &str = "5";
const INSPECTOR: &str = "6";
const VEHICLE: &str = "9";

/// One customer account of accounts.db; its id is its place in [`ACCOUNTS`] + 1.
struct Account {
    name: &'static str,
    username: &'static str,
    /// Soft-deleted (`deleted = 1`, `active = 0`).
    deleted: bool,
    /// Its sub-accounts: (kind, username).
    users: &'static [(&'static str, &'static str)],
    /// Those of its sub-accounts that are soft-deleted.
    deleted_users: &'static [&'static str],
}

/// The accounts. Customers 1 and 2 are one business entered twice: they share the
/// client `north-farm`, the pilot `pilot-1` and the vehicle `ag-truck-1`. Customers 3
/// and 4 share no username. Customer 6 is soft-deleted. Customer 5's `pilot-1` is a
/// common name, not a duplicate.
const ACCOUNTS: [Account; 8] = [
    Account {
        name: "Northern Air Ag",
        username: "northern",
        deleted: false,
        users: &[
            (CLIENT, "north-farm"),
            (CLIENT, "lakeside-ranch"),
            (CLIENT, "birch-acres"),
            (OFFICER, "anna-office"),
            (PILOT, "pilot-1"),
            (PILOT, "pilot-2"),
            (PILOT, "pilot-old"),
            (INSPECTOR, "inspector-kim"),
            (VEHICLE, "ag-truck-1"),
            (VEHICLE, "tender-2"),
        ],
        deleted_users: &["pilot-old"],
    },
    Account {
        name: "Northern Air Ag (second account)",
        username: "northern-air",
        deleted: false,
        users: &[
            (CLIENT, "north-farm"),
            (CLIENT, "hollow-creek"),
            (OFFICER, "ben-office"),
            (PILOT, "pilot-1"),
            (PILOT, "pilot-3"),
            (INSPECTOR, "inspector-lee"),
            (VEHICLE, "ag-truck-1"),
            (VEHICLE, "tender-5"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Prairie Sprayers",
        username: "prairie",
        deleted: false,
        users: &[
            (CLIENT, "wheat-valley"),
            (CLIENT, "sunflower-co"),
            (OFFICER, "prairie-office"),
            (PILOT, "prairie-pilot-1"),
            (PILOT, "prairie-pilot-2"),
            (INSPECTOR, "prairie-inspector"),
            (VEHICLE, "prairie-truck-1"),
            (VEHICLE, "prairie-truck-2"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Prairie Sprayers West",
        username: "prairie-west",
        deleted: false,
        users: &[
            (CLIENT, "canola-ridge"),
            (CLIENT, "dry-creek"),
            (OFFICER, "west-office"),
            (PILOT, "west-pilot-1"),
            (PILOT, "west-pilot-2"),
            (INSPECTOR, "west-inspector"),
            (VEHICLE, "west-truck-1"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Delta Crop Care",
        username: "delta",
        deleted: false,
        users: &[
            (CLIENT, "rice-bend"),
            (CLIENT, "cotton-row"),
            (OFFICER, "delta-office"),
            (PILOT, "pilot-1"),
            (PILOT, "delta-pilot-2"),
            (INSPECTOR, "delta-inspector"),
            (VEHICLE, "delta-truck-1"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Skyline Aerial (closed)",
        username: "skyline",
        deleted: true,
        users: &[
            (CLIENT, "skyline-farm"),
            (OFFICER, "skyline-office"),
            (PILOT, "skyline-pilot-1"),
            (INSPECTOR, "skyline-inspector"),
            (VEHICLE, "skyline-truck-1"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Hilltop Farms Co-op",
        username: "hilltop",
        deleted: false,
        users: &[
            (CLIENT, "hilltop-east"),
            (CLIENT, "hilltop-west"),
            (CLIENT, "orchard-lane"),
            (OFFICER, "hilltop-office"),
            (PILOT, "hilltop-pilot-1"),
            (PILOT, "hilltop-pilot-2"),
            (INSPECTOR, "hilltop-inspector"),
            (VEHICLE, "hilltop-truck-1"),
            (VEHICLE, "hilltop-truck-2"),
        ],
        deleted_users: &[],
    },
    Account {
        name: "Riverbend Applicators",
        username: "riverbend",
        deleted: false,
        users: &[
            (CLIENT, "river-flats"),
            (CLIENT, "mill-pond"),
            (OFFICER, "riverbend-office"),
            (PILOT, "riverbend-pilot-1"),
            (INSPECTOR, "riverbend-inspector"),
            (VEHICLE, "riverbend-truck-1"),
            (VEHICLE, "riverbend-truck-2"),
        ],
        deleted_users: &[],
    },
];

const CROPS: [&str; 9] = [
    "wheat",
    "canola",
    "barley",
    "corn",
    "soybeans",
    "rice",
    "cotton",
    "sunflower",
    "oats",
];
const PRODUCTS: [&str; 8] = [
    "Glyphosate 540",
    "2,4-D Amine",
    "Urea 46%",
    "Liquid nitrogen",
    "Fungicide A",
    "Insecticide B",
    "Surfactant",
    "Drift control",
];
/// Costing items: name and base amount in cents.
const COSTS: [(&str, i64); 5] = [
    ("Flight hour", 48_000),
    ("Ferry km", 350),
    ("Chemical handling", 9_500),
    ("Standby hour", 12_000),
    ("Mixing", 6_750),
];
const WORK: [&str; 4] = ["spraying", "spreading", "seeding", "survey"];

/// A table of accounts.db and the rows to put in it.
struct Fill {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
}

/// An amount in cents as an exact decimal.
fn money(cents: i64) -> Value {
    let text = format!("{}.{:02}", cents / 100, cents % 100);
    Value::Decimal(lockgate_core::Decimal::parse(&text).expect("a decimal"))
}

/// Every row of accounts.db, parents first, computed from [`ACCOUNTS`] alone (no
/// randomness: the ids the demo prints must hold).
fn accounts_rows() -> Vec<Fill> {
    let text = |s: &str| Value::Text(s.into());
    let flag = |b: bool| Value::Int(i64::from(b));
    let mut customers = Vec::new();
    let mut users = Vec::new();
    let mut jobs = Vec::new();
    let mut logs = Vec::new();
    let mut assignments = Vec::new();
    let mut products = Vec::new();
    let mut crops = Vec::new();
    let mut costs = Vec::new();
    let mut invoices = Vec::new();
    for (i, a) in ACCOUNTS.iter().enumerate() {
        let c = i as i64 + 1;
        customers.push(vec![
            Value::Int(c),
            text(a.name),
            text(a.username),
            text("1"),
            flag(!a.deleted),
            flag(a.deleted),
        ]);
        // This account's users of each kind: (id, username).
        let mut of_kind: std::collections::BTreeMap<&str, Vec<(i64, &str)>> = Default::default();
        for (kind, username) in a.users {
            let id = users.len() as i64 + 1;
            users.push(vec![
                Value::Int(id),
                Value::Int(c),
                text(kind),
                text(username),
                flag(a.deleted_users.contains(username)),
            ]);
            of_kind.entry(kind).or_default().push((id, username));
        }
        let pick = |kind: &str, n: usize| of_kind[kind][n % of_kind[kind].len()];
        let own_crops: Vec<&str> = (0..3).map(|k| CROPS[(i * 2 + k) % CROPS.len()]).collect();
        for (k, crop) in own_crops.iter().enumerate() {
            crops.push(vec![Value::Int(crops.len() as i64 + 1), Value::Int(c), text(crop)]);
            let product = PRODUCTS[(i * 3 + k) % PRODUCTS.len()];
            products.push(vec![
                Value::Int(products.len() as i64 + 1),
                Value::Int(c),
                text(product),
            ]);
            let (name, cents) = COSTS[(i + k) % COSTS.len()];
            costs.push(vec![
                Value::Int(costs.len() as i64 + 1),
                Value::Int(c),
                text(name),
                money(cents + c * 125),
            ]);
        }
        for k in 0..2 + i % 3 {
            let cents = 80_000 + c * 13_700 + k as i64 * 25_100 + (c * 7 + k as i64 * 13) % 100;
            invoices.push(vec![Value::Int(invoices.len() as i64 + 1), Value::Int(c), money(cents)]);
        }
        // 5 to 8 jobs a customer, each booked by an officer for a client, with a
        // vehicle, one or two assignments (pilot and vehicle) and two or three logs.
        for j in 0..5 + (c as usize) % 4 {
            let job = jobs.len() as i64 + 1;
            let (client, client_name) = pick(CLIENT, j);
            let (officer, officer_name) = pick(OFFICER, j);
            let (vehicle, _) = pick(VEHICLE, j);
            let crop = own_crops[j % own_crops.len()];
            jobs.push(vec![
                Value::Int(job),
                Value::Int(c),
                Value::Int(client),
                Value::Int(officer),
                Value::Int(vehicle),
                Value::Text(format!("{crop} {} at {client_name}", WORK[j % WORK.len()])),
            ]);
            let crew: Vec<usize> = if j % 4 == 0 { vec![j, j + 1] } else { vec![j] };
            for n in &crew {
                let (pilot, _) = pick(PILOT, *n);
                let (vehicle, _) = pick(VEHICLE, *n);
                assignments.push(vec![
                    Value::Int(assignments.len() as i64 + 1),
                    Value::Int(job),
                    Value::Int(pilot),
                    Value::Int(vehicle),
                ]);
            }
            let (_, pilot_name) = pick(PILOT, j);
            let mut messages = vec![format!("booked by {officer_name}"), format!("assigned to {pilot_name}")];
            if j % 3 != 2 {
                messages.push(format!("completed: {} ha", 40 + (c as usize * 17 + j * 23) % 160));
            }
            for m in messages {
                logs.push(vec![Value::Int(logs.len() as i64 + 1), Value::Int(job), Value::Text(m)]);
            }
        }
    }
    vec![
        Fill {
            table: "customers",
            columns: &["id", "name", "username", "kind", "active", "deleted"],
            rows: customers,
        },
        Fill {
            table: "users",
            columns: &["id", "parent", "kind", "username", "deleted"],
            rows: users,
        },
        Fill {
            table: "jobs",
            columns: &["id", "customer", "client", "operator", "vehicle", "title"],
            rows: jobs,
        },
        Fill {
            table: "job_logs",
            columns: &["id", "job", "message"],
            rows: logs,
        },
        Fill {
            table: "job_assignments",
            columns: &["id", "job", "pilot", "vehicle"],
            rows: assignments,
        },
        Fill {
            table: "products",
            columns: &["id", "customer", "name"],
            rows: products,
        },
        Fill {
            table: "crops",
            columns: &["id", "customer", "name"],
            rows: crops,
        },
        Fill {
            table: "costing_items",
            columns: &["id", "customer", "name", "amount"],
            rows: costs,
        },
        Fill {
            table: "invoices",
            columns: &["id", "customer", "total"],
            rows: invoices,
        },
    ]
}

/// Makes accounts.db: filled under a temporary name, then renamed, so that a run
/// that fails half-way leaves no accounts.db for the next run to take as made.
async fn make_accounts(files: &DemoFiles) -> Result<(), DemoError> {
    let partial = files.accounts.with_extension("db.partial");
    let _ = std::fs::remove_file(&partial);
    let mut conn = Conn::connect(&DemoFiles::url(&partial)?).await?;
    sample::create_accounts(&mut conn).await?;
    conn.begin().await?;
    for fill in accounts_rows() {
        let columns: Vec<String> = fill.columns.iter().map(|c| c.to_string()).collect();
        let rows: Vec<Row> = fill
            .rows
            .into_iter()
            .enumerate()
            .map(|(n, values)| Row {
                line: n as u64 + 1,
                number: 0,
                values,
            })
            .collect();
        let outcome = conn
            .bulk_insert(&TableName::new(fill.table), &columns, &rows, None)
            .await;
        let failed = match outcome {
            Ok(o) => o.row_errors.into_iter().next().map(|(_, e)| e),
            Err(e) => {
                let _ = conn.rollback().await;
                return Err(e.into());
            }
        };
        if let Some(e) = failed {
            let _ = conn.rollback().await;
            return Err(DbError::engine(format!("filling the sample's {} table", fill.table), e).into());
        }
    }
    conn.commit().await?;
    drop(conn);
    std::fs::rename(&partial, &files.accounts).map_err(|e| {
        DemoError::Io(format!(
            "{}: cannot rename to {}: {e}",
            partial.display(),
            files.accounts.display()
        ))
    })
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
