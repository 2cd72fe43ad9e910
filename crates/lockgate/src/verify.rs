//! `verify`: whether two tables hold the same rows, across engines, with the work
//! done inside the databases (`lockgate_db::checksum`): each side, in one consistent
//! snapshot, counts and sums its row hashes per range of the key, only those
//! aggregates cross the network, and a range whose aggregates differ is split and
//! compared again until it holds at most [`LEAF_ROWS`] rows, which are then read from
//! both sides and compared value by value, down to the column.
//!
//! This first version compares tables keyed by one integer column (the source's
//! primary key, or `key`); other keys are refused as bad input, saying so. Columns
//! are paired by name; each pair is compared by the canonical text of its kinds
//! (`Canon`): decimals at the larger of the two scales, doubles by their shortest
//! digits, instants in UTC, so that a MariaDB `DATETIME(6)` and a PostgreSQL
//! `timestamp` holding the same moment are equal. JSON columns are not compared yet
//! (the engines cannot write the same text for a document): excluding them is
//! required, and said.

use lockgate_core::{Kind, Table, Value};
use lockgate_db::checksum::{self, Canon};
use lockgate_db::{Conn, DbError, DbUrl, Engine};
use std::collections::BTreeMap;
use std::time::Instant;

/// A range whose larger side holds at most this many rows is read and compared
/// row by row.
pub const LEAF_ROWS: u64 = 256;

/// How many sub-ranges a differing range is split into.
const SPLIT: i64 = 16;

/// What to compare.
#[derive(Clone, Debug)]
pub struct VerifySpec {
    /// The source database.
    pub source: DbUrl,
    /// Its table.
    pub source_table: String,
    /// The destination database.
    pub dest: DbUrl,
    /// Its table (the source's name when `None`).
    pub dest_table: Option<String>,
    /// The key column (the source's one-column primary key when `None`).
    pub key: Option<String>,
    /// Columns left out of the comparison.
    pub exclude: Vec<String>,
    /// At most this many differences are listed (the counts stay exact).
    pub limit: usize,
}

/// Why a verify could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Bad input, found before anything was compared (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// A database failed (exit 1).
    #[error("{0}")]
    Db(#[from] DbError),
}

impl VerifyError {
    /// ARCHITECTURE.md's exit code: 2 for bad input, 1 at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Invalid(_) => 2,
            VerifyError::Db(e) => e.exit_code(),
        }
    }
}

/// A column that differs in a row: its name and both values (as text).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ColumnDiff {
    /// The column.
    pub column: String,
    /// The source's value.
    pub source: String,
    /// The destination's value.
    pub dest: String,
}

/// A row whose columns differ.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RowDiff {
    /// Its key.
    pub key: i64,
    /// The columns that differ.
    pub columns: Vec<ColumnDiff>,
}

/// How a pair of columns was compared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ColumnPair {
    /// The column's name.
    pub column: String,
    /// Its type on the source.
    pub source_type: String,
    /// Its type on the destination.
    pub dest_type: String,
    /// How: `integer`, `decimal at scale 2`, `double`, `text`, …
    pub compared_as: String,
}

/// What a verify found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// Whether the tables hold the same rows.
    pub equal: bool,
    /// Rows in the source table.
    pub source_rows: u64,
    /// Rows in the destination table.
    pub dest_rows: u64,
    /// Keys only in the source (at most `limit`).
    pub only_in_source: Vec<i64>,
    /// Keys only in the destination (at most `limit`).
    pub only_in_dest: Vec<i64>,
    /// Rows in both whose columns differ (at most `limit`).
    pub differing: Vec<RowDiff>,
    /// Exact counts of the three.
    pub only_in_source_count: u64,
    /// See `only_in_source_count`.
    pub only_in_dest_count: u64,
    /// See `only_in_source_count`.
    pub differing_count: u64,
    /// The key column.
    pub key: String,
    /// The column pairs compared, and how.
    pub columns: Vec<ColumnPair>,
    /// Columns left out (`exclude`).
    pub excluded: Vec<String>,
    /// Ranges whose aggregates were compared.
    pub ranges: u64,
    /// Rows read back for the value-by-value comparison.
    pub rows_fetched: u64,
    /// Seconds taken.
    pub seconds: f64,
}

/// One side: its connection, table and the SQL pieces over it.
struct Side {
    conn: Conn,
    engine: Engine,
    table: Table,
    from: String,
    key: String,
    hash: String,
    kinds: Vec<Kind>,
    select: String,
}

/// Count and hash sum of a range, by bucket.
type Buckets = BTreeMap<i64, (u64, u64)>;

impl Side {
    /// The buckets of `width` keys from `lo` (up to `hi`, exclusive), counted and summed.
    async fn buckets(&mut self, lo: i64, hi: i64, width: i64) -> Result<Buckets, DbError> {
        let div = if self.engine == Engine::Mysql { "DIV" } else { "/" };
        let sum = match self.engine {
            Engine::Sqlite => format!("{}({})", checksum::SQLITE_SUM64, self.hash),
            _ => format!("sum({})", self.hash),
        };
        let sql = format!(
            "SELECT ({k} - {lo}) {div} {width}, count(*), {sum} FROM {t} WHERE {k} >= {lo} AND {k} < {hi} GROUP BY 1",
            k = self.key,
            t = self.from,
        );
        let rows = self.conn.query(&sql, &[], None).await?;
        let mut out = Buckets::new();
        for r in rows {
            let b = int(&r[0]);
            let n = int(&r[1]) as u64;
            let s = checksum::sum_mod64(&r[2]).unwrap_or(0);
            out.insert(b, (n, s));
        }
        Ok(out)
    }

    /// The rows with keys from `lo` to `hi` (exclusive), by key.
    async fn rows(&mut self, lo: i64, hi: i64) -> Result<BTreeMap<i64, Vec<Value>>, DbError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {k} >= {lo} AND {k} < {hi} ORDER BY {k}",
            self.select,
            self.from,
            k = self.key
        );
        let rows = self.conn.query(&sql, &[], Some(&self.kinds)).await?;
        Ok(rows.into_iter().map(|r| (int(&r[0]), r)).collect())
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Decimal(d) => d.to_i64().unwrap_or(0),
        Value::Text(t) => t.parse().unwrap_or(0),
        _ => 0,
    }
}

/// How a pair of kinds is compared, or why it cannot be.
fn canon_of(a: &Kind, b: &Kind) -> Result<Canon, String> {
    use Kind as K;
    Ok(match (a, b) {
        (K::Bool, K::Bool) => Canon::Bool,
        (K::Bool, K::Int { .. }) | (K::Int { .. }, K::Bool) => Canon::Bool,
        (K::Int { .. }, K::Int { .. }) => Canon::Int,
        (K::Decimal { scale: s1, .. }, K::Decimal { scale: s2, .. }) => Canon::Decimal {
            scale: s1.unwrap_or(0).max(s2.unwrap_or(0)),
        },
        (K::Int { .. }, K::Decimal { scale, .. }) | (K::Decimal { scale, .. }, K::Int { .. }) => Canon::Decimal {
            scale: scale.unwrap_or(0),
        },
        (K::Float { bytes: 8 }, K::Float { bytes: 8 }) => Canon::Float,
        (K::Text { .. }, K::Text { .. }) => Canon::Text,
        (K::Bytes { .. }, K::Bytes { .. }) => Canon::Bytes,
        (K::Date, K::Date) => Canon::Date,
        (K::Time { .. }, K::Time { .. }) => Canon::Time,
        (K::Timestamp { .. }, K::Timestamp { .. }) => Canon::Timestamp,
        (K::TimestampTz { .. }, K::TimestampTz { .. }) => Canon::TimestampUtc,
        (K::Uuid, K::Uuid) | (K::Uuid, K::Text { .. }) | (K::Text { .. }, K::Uuid) => Canon::Uuid,
        (K::Json, K::Json) => {
            return Err(
                "JSON columns are not compared yet (the engines write a document differently): \
                        leave it out with --exclude-columns"
                    .into(),
            )
        }
        _ => return Err(format!("a {} cannot be compared with a {}", a.describe(), b.describe())),
    })
}

/// The words for how a pair is compared.
fn compared_as(c: &Canon) -> String {
    match c {
        Canon::Bool => "boolean".into(),
        Canon::Int => "integer".into(),
        Canon::Decimal { scale } => format!("decimal at scale {scale}"),
        Canon::Float => "double (shortest digits)".into(),
        Canon::Text => "text (bytes, no collation)".into(),
        Canon::Bytes => "bytes".into(),
        Canon::Date => "date".into(),
        Canon::Time => "time (microseconds)".into(),
        Canon::Timestamp => "timestamp (microseconds)".into(),
        Canon::TimestampUtc => "instant in UTC (microseconds)".into(),
        Canon::Uuid => "UUID".into(),
    }
}

/// Compares the two tables `spec` names. `progress` hears of each level's ranges.
pub async fn verify(spec: &VerifySpec, progress: &(dyn Fn(&str) + Sync)) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let mut src = Conn::connect_existing(&spec.source).await?;
    let mut dst = Conn::connect_existing(&spec.dest).await?;
    let dest_name = spec.dest_table.clone().unwrap_or_else(|| spec.source_table.clone());
    let src_table = src.find_table(&spec.source_table).await.map_err(invalid)?;
    let dst_table = dst.find_table(&dest_name).await.map_err(invalid)?;

    // The key: given, else the source's primary key; one integer column on both.
    let key = match &spec.key {
        Some(k) => k.clone(),
        None => match src_table.primary_key.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(VerifyError::Invalid(format!(
                    "table {} has no primary key: name the key column with --key",
                    src_table.name
                )))
            }
            many => {
                return Err(VerifyError::Invalid(format!(
                "the primary key of {} has {} columns ({}): this version compares tables keyed by one integer column",
                src_table.name,
                many.len(),
                many.join(", ")
            )))
            }
        },
    };
    let find = |t: &Table, name: &str| t.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
    for (t, side) in [(&src_table, "source"), (&dst_table, "destination")] {
        let Some(i) = find(t, &key) else {
            return Err(VerifyError::Invalid(format!(
                "the {side} table {} has no key column {key}",
                t.name
            )));
        };
        if !matches!(t.columns[i].kind, Kind::Int { .. }) {
            return Err(VerifyError::Invalid(format!(
                "the key {key} of {} is a {}: this version compares tables keyed by one integer column",
                t.name,
                t.columns[i].kind.describe()
            )));
        }
    }
    for x in &spec.exclude {
        if find(&src_table, x).is_none() && find(&dst_table, x).is_none() {
            return Err(VerifyError::Invalid(format!(
                "--exclude-columns names {x}, a column of neither table"
            )));
        }
    }

    // The column pairs, by name, key first.
    let mut pairs: Vec<(usize, usize, Canon)> = Vec::new();
    let mut columns = Vec::new();
    let mut problems = Vec::new();
    let key_first = std::iter::once(find(&src_table, &key).expect("checked"))
        .chain((0..src_table.columns.len()).filter(|i| !src_table.columns[*i].name.eq_ignore_ascii_case(&key)));
    for i in key_first {
        let c = &src_table.columns[i];
        if spec.exclude.iter().any(|x| x.eq_ignore_ascii_case(&c.name)) {
            continue;
        }
        let Some(j) = find(&dst_table, &c.name) else {
            problems.push(format!(
                "column {} is not in the destination table {}",
                c.name, dst_table.name
            ));
            continue;
        };
        match canon_of(&c.kind, &dst_table.columns[j].kind) {
            Ok(canon) => {
                columns.push(ColumnPair {
                    column: c.name.clone(),
                    source_type: c.data_type.clone(),
                    dest_type: dst_table.columns[j].data_type.clone(),
                    compared_as: compared_as(&canon),
                });
                pairs.push((i, j, canon));
            }
            Err(why) => problems.push(format!("column {}: {why}", c.name)),
        }
    }
    for c in &dst_table.columns {
        let excluded = spec.exclude.iter().any(|x| x.eq_ignore_ascii_case(&c.name));
        if !excluded && find(&src_table, &c.name).is_none() {
            problems.push(format!(
                "column {} is not in the source table {}",
                c.name, src_table.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(VerifyError::Invalid(format!(
            "{} and {} cannot be compared as they are: {}",
            src_table.name,
            dst_table.name,
            problems.join("; ")
        )));
    }

    let mut sides = Vec::new();
    for (conn, table, pick) in [(src, src_table, 0), (dst, dst_table, 1)] {
        let d = conn.dialect();
        let engine = conn.engine();
        let fields: Vec<(String, Canon)> = pairs
            .iter()
            .map(|(i, j, canon)| {
                (
                    d.quote(&table.columns[if pick == 0 { *i } else { *j }].name),
                    canon.clone(),
                )
            })
            .collect();
        let idx: Vec<usize> = pairs.iter().map(|(i, j, _)| if pick == 0 { *i } else { *j }).collect();
        let kinds: Vec<Kind> = idx.iter().map(|i| table.columns[*i].kind.clone()).collect();
        let mut conn = conn;
        conn.register_checksum(kinds.iter().cloned().zip(pairs.iter().map(|p| p.2.clone())).collect())
            .await?;
        // One snapshot per side, for every range it reads.
        conn.begin_snapshot().await?;
        if engine == Engine::Postgres {
            // The bucket counts look like one group per row to the planner, which then
            // sorts; a hash aggregate of a few hundred groups needs no sort.
            conn.batch("SET LOCAL enable_sort = off; SET LOCAL extra_float_digits = 1")
                .await?;
        }
        sides.push(Side {
            engine,
            from: d.table(&table.name),
            key: fields[0].0.clone(),
            hash: checksum::row_hash_sql(engine, &fields),
            select: fields.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>().join(", "),
            kinds,
            table,
            conn,
        });
    }
    let (s, d) = sides.split_at_mut(1);
    let (s, d) = (&mut s[0], &mut d[0]);

    // The key range of both, and the first level: every bucket in one scan per side,
    // both sides at once.
    let range = |side: &Side| {
        format!(
            "SELECT min({k}), max({k}), count(*) FROM {t}",
            k = side.key,
            t = side.from
        )
    };
    let (rs, rd) = (range(s), range(d));
    let (a, b) = tokio::join!(s.conn.query(&rs, &[], None), d.conn.query(&rd, &[], None));
    let (a, b) = (a?, b?);
    let (source_rows, dest_rows) = (int(&a[0][2]) as u64, int(&b[0][2]) as u64);
    let mut report = VerifyReport {
        equal: true,
        source_rows,
        dest_rows,
        only_in_source: Vec::new(),
        only_in_dest: Vec::new(),
        differing: Vec::new(),
        only_in_source_count: 0,
        only_in_dest_count: 0,
        differing_count: 0,
        key: key.clone(),
        columns,
        excluded: spec.exclude.clone(),
        ranges: 0,
        rows_fetched: 0,
        seconds: 0.0,
    };
    let ends: Vec<i64> = [&a[0][0], &a[0][1], &b[0][0], &b[0][1]]
        .into_iter()
        .filter(|v| !matches!(v, Value::Null))
        .map(int)
        .collect();
    if let (Some(lo), Some(hi)) = (ends.iter().min(), ends.iter().max()) {
        let (lo, hi) = (*lo, hi.saturating_add(1));
        let total = source_rows.max(dest_rows);
        let buckets = (total / 4096).clamp(16, 1024) as i64;
        let mut todo = vec![(lo, hi, buckets)];
        let mut level = 1;
        while !todo.is_empty() {
            progress(&format!("level {level}: comparing {} range(s)", todo.len()));
            let mut next = Vec::new();
            for (lo, hi, parts) in todo {
                let width = ((hi - lo) + parts - 1) / parts;
                let width = width.max(1);
                let (x, y) = tokio::join!(s.buckets(lo, hi, width), d.buckets(lo, hi, width));
                let (x, y) = (x?, y?);
                let all: std::collections::BTreeSet<i64> = x.keys().chain(y.keys()).copied().collect();
                report.ranges += all.len() as u64;
                for b in all {
                    let (xs, ys) = (
                        x.get(&b).copied().unwrap_or((0, 0)),
                        y.get(&b).copied().unwrap_or((0, 0)),
                    );
                    if xs == ys {
                        continue;
                    }
                    let (blo, bhi) = (lo + b * width, (lo + (b + 1) * width).min(hi));
                    if xs.0.max(ys.0) <= LEAF_ROWS || bhi - blo <= 1 {
                        leaf(s, d, &pairs, blo, bhi, spec.limit, &mut report).await?;
                    } else {
                        next.push((blo, bhi, SPLIT));
                    }
                }
            }
            todo = next;
            level += 1;
        }
    }
    let _ = s.conn.rollback().await;
    let _ = d.conn.rollback().await;
    report.equal = report.only_in_source_count == 0 && report.only_in_dest_count == 0 && report.differing_count == 0;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads the rows of one range from both sides and compares them value by value.
async fn leaf(
    s: &mut Side,
    d: &mut Side,
    pairs: &[(usize, usize, Canon)],
    lo: i64,
    hi: i64,
    limit: usize,
    report: &mut VerifyReport,
) -> Result<(), DbError> {
    let (x, y) = tokio::join!(s.rows(lo, hi), d.rows(lo, hi));
    let (x, y) = (x?, y?);
    report.rows_fetched += (x.len() + y.len()) as u64;
    for (k, row) in &x {
        match y.get(k) {
            None => {
                report.only_in_source_count += 1;
                if report.only_in_source.len() < limit {
                    report.only_in_source.push(*k);
                }
            }
            Some(other) => {
                let mut diffs = Vec::new();
                for (n, (i, _, canon)) in pairs.iter().enumerate() {
                    let (a, b) = (&row[n], &other[n]);
                    if !same(canon, a, b) {
                        diffs.push(ColumnDiff {
                            column: s.table.columns[*i].name.clone(),
                            source: shown(a),
                            dest: shown(b),
                        });
                    }
                }
                if !diffs.is_empty() {
                    report.differing_count += 1;
                    if report.differing.len() < limit {
                        report.differing.push(RowDiff {
                            key: *k,
                            columns: diffs,
                        });
                    }
                }
            }
        }
    }
    for k in y.keys().filter(|k| !x.contains_key(k)) {
        report.only_in_dest_count += 1;
        if report.only_in_dest.len() < limit {
            report.only_in_dest.push(*k);
        }
    }
    Ok(())
}

/// Whether two values are the same under `canon`: the same canonical text, or two
/// doubles that are the same number (PostgreSQL prints a rare halfway double with
/// one digit more than the shortest; the value is the same).
fn same(canon: &Canon, a: &Value, b: &Value) -> bool {
    if let (Canon::Float, Value::Float(x), Value::Float(y)) = (canon, a, b) {
        return x == y || (x.is_nan() && y.is_nan());
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    checksum::write_field(canon, a, &mut x);
    checksum::write_field(canon, b, &mut y);
    x == y
}

/// A value as the report shows it.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(t) => format!("{t:?}"),
        other => other.to_string(),
    }
}

fn invalid(e: DbError) -> VerifyError {
    match e {
        DbError::Invalid(m) => VerifyError::Invalid(m),
        other => VerifyError::Db(other),
    }
}
