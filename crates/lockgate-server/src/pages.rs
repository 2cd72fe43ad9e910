//! The dashboard's pages (Overview, Tables, Exports, Merge, Snapshots, Upgrades,
//! Migrations, Data, jobs):
//! plain HTML from askama templates (escaped by default), forms that work without
//! JavaScript, and the little script in `assets/app.js` for
//! live progress. Long operations start a job and redirect to its page.

use crate::error::{render, AppError, PageError};
use crate::jobs::Job;
use crate::security::{self, FormToken, SESSION_COOKIE};
use crate::service::{self, ConnectionInfo, DumpRequest, MigrateFrom, RunInfo};
use crate::state::{same_secret, Shared};
use crate::upload;
use askama::Template;
use axum::extract::{Multipart, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use lockgate::dashboard::{BrowseQuery, Cursor, Export, LogEntry, LogFilter, Paging, RowCount};
use serde::Deserialize;
use std::time::Instant;

type PageResult = Result<Response, PageError>;

/// What every page's frame needs.
pub struct Chrome {
    /// The page's title (also its heading).
    pub title: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// Demo mode.
    pub demo: bool,
    /// Whether sign-in is on (shows "Sign out").
    pub auth: bool,
    /// The forms' CSRF token (this browser's).
    pub csrf: String,
}

fn chrome(st: &Shared, t: &FormToken, title: impl Into<String>, nav: &'static str) -> Chrome {
    Chrome {
        title: title.into(),
        nav,
        demo: st.cfg.demo.is_some(),
        auth: st.auth_required(),
        csrf: t.0.clone(),
    }
}

/// One cell of a [`Grid`].
pub struct Cell {
    /// Its text.
    pub text: String,
    /// A link, when it is one.
    pub href: Option<String>,
    /// A CSS class (`status failed`, `null`…).
    pub class: String,
}

impl Cell {
    fn text(t: impl ToString) -> Cell {
        Cell {
            text: t.to_string(),
            href: None,
            class: String::new(),
        }
    }
    fn link(t: impl ToString, href: String) -> Cell {
        Cell {
            text: t.to_string(),
            href: Some(href),
            class: String::new(),
        }
    }
    fn class(t: impl ToString, class: &str) -> Cell {
        Cell {
            text: t.to_string(),
            href: None,
            class: class.into(),
        }
    }
}

/// A table of cells, drawn by the `grid` macro.
pub struct Grid {
    /// Its caption (may be empty).
    pub caption: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
    /// What to say when there are no rows.
    pub empty: String,
}

impl Grid {
    fn new(caption: impl Into<String>, headers: &[&str], empty: &str) -> Grid {
        Grid {
            caption: caption.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            empty: empty.into(),
        }
    }
}

/// A query string from pairs, percent-encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn encode(s: &str) -> String {
    query_string(&[("x", s)])[2..].to_string()
}

// ---------------------------------------------------------------- overview

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    c: Chrome,
    connections: Vec<ConnectionInfo>,
    status: Option<lockgate::StatusReport>,
    status_error: String,
    modules: Vec<(String, String)>,
    runs: Vec<RunInfo>,
    run_errors: Vec<String>,
    jobs: Vec<Job>,
}

/// `GET /`
pub async fn overview(State(st): State<Shared>, t: FormToken) -> PageResult {
    let connections = service::connections(&st).await;
    let (status, status_error) = match service::migration_status(&st).await {
        Ok(s) => (Some(s), String::new()),
        Err(e) => (None, e.message),
    };
    let (runs, run_errors) = service::runs(&st, 20).await;
    let jobs = st.jobs.list().into_iter().take(10).collect();
    // Other modules than the one shown in full (oe-migration's app-list).
    let modules = service::modules(&st)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(m, _)| *m != st.cfg.module)
        .collect();
    Ok(render(&Overview {
        c: chrome(&st, &t, "Overview", "overview"),
        connections,
        status,
        status_error,
        modules,
        runs,
        run_errors,
        jobs,
    }))
}

// ---------------------------------------------------------------- tables

/// The Tables page's query.
#[derive(Deserialize, Default)]
pub struct TablesQuery {
    conn: Option<String>,
    table: Option<String>,
    sort: Option<String>,
    desc: Option<String>,
    q: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

struct ColumnView {
    name: String,
    kind: String,
    href: String,
    aria: &'static str,
    arrow: &'static str,
}

struct PageView {
    columns: Vec<ColumnView>,
    rows: Vec<Vec<Option<String>>>,
    total_text: String,
    sorted_by: String,
    ms: u128,
    first_href: Option<String>,
    prev_href: Option<String>,
    next_href: Option<String>,
}

#[derive(Template)]
#[template(path = "tables.html")]
struct TablesPage {
    c: Chrome,
    connection_names: Vec<String>,
    conn: String,
    table_names: Vec<String>,
    table: String,
    q: String,
    sort: String,
    desc: String,
    page: Option<PageView>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A browse request from query parameters (the page's and the API's).
pub fn browse_query(
    sort: &Option<String>,
    desc: &Option<String>,
    q: &Option<String>,
    after: &Option<String>,
    before: &Option<String>,
    per_page: usize,
) -> Result<BrowseQuery, AppError> {
    let cursor = |s: &Option<String>| -> Result<Option<Cursor>, AppError> {
        non_empty(s)
            .map(|c| Cursor::decode(&c).map_err(|e| AppError::bad(e.to_string())))
            .transpose()
    };
    Ok(BrowseQuery {
        sort: non_empty(sort),
        descending: matches!(desc.as_deref(), Some("true" | "1" | "yes")),
        search: non_empty(q),
        per_page,
        after: cursor(after)?,
        before: cursor(before)?,
    })
}

/// Text for a row count.
pub fn count_text(total: &RowCount) -> String {
    match total {
        RowCount::Exact(n) => format!("{n} rows"),
        RowCount::About(n) => format!("about {n} rows"),
        RowCount::AtLeast(n) => format!("more than {n} rows"),
    }
}

/// `GET /tables`
pub async fn tables(State(st): State<Shared>, t: FormToken, Query(q): Query<TablesQuery>) -> PageResult {
    let connection_names: Vec<String> = st.cfg.connections.iter().map(|c| c.name.clone()).collect();
    let conn_name = non_empty(&q.conn)
        .or_else(|| st.cfg.migrate_conn().map(|c| c.name.clone()))
        .or_else(|| connection_names.first().cloned())
        .unwrap_or_default();
    let mut view = TablesPage {
        c: chrome(&st, &t, "Tables", "tables"),
        connection_names,
        conn: conn_name.clone(),
        table_names: Vec::new(),
        table: non_empty(&q.table).unwrap_or_default(),
        q: non_empty(&q.q).unwrap_or_default(),
        sort: non_empty(&q.sort).unwrap_or_default(),
        desc: q.desc.clone().unwrap_or_default(),
        page: None,
    };
    if conn_name.is_empty() {
        return Ok(render(&view));
    }
    let c = service::find_connection(&st, &conn_name)?;
    view.table_names = service::tables(&st, c).await?;
    if view.table.is_empty() {
        return Ok(render(&view));
    }
    let bq = browse_query(&q.sort, &q.desc, &q.q, &q.after, &q.before, 50)?;
    let started = Instant::now();
    let page = service::browse_table(&st, c, &view.table, &bq).await?.value;
    let ms = started.elapsed().as_millis();
    let base = |extra: &[(&str, &str)], sort: Option<&str>, desc: bool| {
        let mut pairs: Vec<(&str, &str)> = vec![("conn", &conn_name), ("table", &page.table)];
        if let Some(s) = sort {
            pairs.push(("sort", s));
            pairs.push(("desc", if desc { "true" } else { "false" }));
        }
        if !view.q.is_empty() {
            pairs.push(("q", &view.q));
        }
        pairs.extend_from_slice(extra);
        format!("/tables?{}", query_string(&pairs))
    };
    let sorted = page.sort.clone();
    let columns = page
        .columns
        .iter()
        .map(|(name, kind)| {
            let this = sorted.as_deref() == Some(name.as_str());
            let (aria, arrow) = match (this, page.descending) {
                (true, false) => ("ascending", " ▲"),
                (true, true) => ("descending", " ▼"),
                _ => ("none", ""),
            };
            ColumnView {
                name: name.clone(),
                kind: kind.describe(),
                href: base(&[], Some(name), this && !page.descending),
                aria,
                arrow,
            }
        })
        .collect();
    let rows = page
        .rows
        .iter()
        .map(|r| r.iter().map(|v| (!v.is_null()).then(|| v.to_string())).collect())
        .collect();
    let sorted_by = match (&page.sort, &page.paging) {
        (Some(s), _) => format!("{s}{}", if page.descending { " (descending)" } else { "" }),
        (None, Paging::Key { columns, .. }) => format!("key {}", columns.join(", ")),
        (None, Paging::RowId) => "rowid".into(),
        (None, Paging::FirstRowsOnly) => "nothing (no key: only the first rows are shown)".into(),
    };
    let s = page.sort.as_deref();
    let d = page.descending;
    let first = page.prev.is_some().then(|| base(&[], s, d));
    let prev = page.prev.as_ref().map(|c| base(&[("before", &c.encode())], s, d));
    let next = page.next.as_ref().map(|c| base(&[("after", &c.encode())], s, d));
    view.page = Some(PageView {
        columns,
        rows,
        total_text: count_text(&page.total),
        sorted_by,
        ms,
        first_href: first,
        prev_href: prev,
        next_href: next,
    });
    Ok(render(&view))
}

// ---------------------------------------------------------------- exports

struct TransferView {
    name: String,
    source: String,
    dest: String,
    dest_table: String,
    available: Option<i64>,
    error: Option<String>,
    grid: Grid,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    c: Chrome,
    demo: bool,
    notice: Option<String>,
    pending_total: usize,
    transfers: Vec<TransferView>,
}

/// `GET /exports`
pub async fn exports(State(st): State<Shared>, t: FormToken) -> PageResult {
    let infos = service::transfers(&st).await;
    let pending_total = infos.iter().map(|t| t.pending).sum();
    let transfers = infos
        .into_iter()
        .map(|t| {
            let mut grid = Grid::new(
                format!("Exports of {}", t.name),
                &[
                    "Export", "Status", "Rows", "Written", "Errors", "Attempts", "Created", "Ended",
                ],
                "No exports yet.",
            );
            for e in &t.exports {
                let mut row = vec![Cell::link(e.id, format!("/exports/{}/{}", encode(&t.name), e.id))];
                row.extend(export_cells(e));
                grid.rows.push(row);
            }
            TransferView {
                name: t.name,
                source: t.source,
                dest: t.dest,
                dest_table: t.dest_table,
                available: t.available,
                error: t.error,
                grid,
            }
        })
        .collect();
    Ok(render(&ExportsPage {
        c: chrome(&st, &t, "Exports", "exports"),
        demo: st.cfg.demo.is_some(),
        notice: None,
        pending_total,
        transfers,
    }))
}

/// An export's status and counts, as the list and its page show them.
fn export_cells(e: &Export) -> Vec<Cell> {
    vec![
        Cell::class(&e.status, &format!("status {}", e.status)),
        Cell::text(e.rows),
        Cell::text(e.rows_written),
        Cell::text(e.error_count),
        Cell::text(e.attempts),
        Cell::text(&e.created_at),
        Cell::text(e.ended_at.as_deref().unwrap_or("")),
    ]
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /exports/{transfer}/create`
pub async fn export_create(
    State(st): State<Shared>,
    t: FormToken,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    t.check(&f.csrf)?;
    let t = service::find_transfer(&st, &name)?;
    let id = service::start_create(&st, t);
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    c: Chrome,
    intro: Option<String>,
    grids: Vec<Grid>,
    back: Option<String>,
}

/// `GET /exports/{transfer}/{id}`
pub async fn export_detail(
    State(st): State<Shared>,
    t: FormToken,
    Path((name, id)): Path<(String, i64)>,
) -> PageResult {
    let tr = service::find_transfer(&st, &name)?;
    let d = service::export_detail(tr, id).await?;
    let e = &d.export;
    let mut facts = Grid::new(
        "",
        &["Status", "Rows", "Written", "Errors", "Attempts", "Created", "Ended"],
        "",
    );
    facts.rows.push(export_cells(e));
    let mut errors = Grid::new(
        "Failed rows",
        &["Row", "Key", "Column", "Code", "Error"],
        "No row failed.",
    );
    for x in &d.errors {
        errors.rows.push(vec![
            Cell::text(x.n),
            Cell::link(
                &x.key,
                format!(
                    "/exports/{}/history?{}",
                    encode(&tr.name),
                    query_string(&[("key", &x.key)])
                ),
            ),
            Cell::text(x.column.as_deref().unwrap_or("")),
            Cell::text(&x.code),
            Cell::class(&x.message, "error"),
        ]);
    }
    let intro = match (e.status.as_str(), &e.error) {
        ("failed", _) if e.error_count > 0 => Some(format!(
            "{} of its {} rows failed, so nothing was written (the whole export rolled back); fix the rows in the source and export again.",
            e.error_count, e.rows
        )),
        (_, Some(err)) => Some(err.clone()),
        _ => None,
    };
    Ok(render(&DetailPage {
        c: chrome(&st, &t, format!("Export {} of {}", e.id, tr.name), "exports"),
        intro,
        grids: vec![facts, errors],
        back: Some("/exports".into()),
    }))
}

/// The history page's query.
#[derive(Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    key: String,
}

/// `GET /exports/{transfer}/history?key=K`
pub async fn export_history(
    State(st): State<Shared>,
    t: FormToken,
    Path(name): Path<String>,
    Query(q): Query<KeyQuery>,
) -> PageResult {
    let tr = service::find_transfer(&st, &name)?;
    let key = q.key.trim();
    if key.is_empty() {
        return Err(AppError::bad("give the row's key: ?key=… (the key column's value)").into());
    }
    let attempts = service::history(tr, key).await?;
    let mut g = Grid::new(
        format!("Exports that attempted row {key}"),
        &["Export", "Export status", "Created", "Ended", "This row"],
        "No export has attempted this row.",
    );
    for a in &attempts {
        let this = match (a.status.as_str(), &a.error) {
            (_, Some(err)) => Cell::class(format!("failed: {err}"), "error"),
            ("completed", None) => Cell::class("exported", "status completed"),
            ("failed", None) => Cell::text("rolled back (other rows failed)"),
            (other, None) => Cell::text(other),
        };
        g.rows.push(vec![
            Cell::link(a.export_id, format!("/exports/{}/{}", encode(&tr.name), a.export_id)),
            Cell::class(&a.status, &format!("status {}", a.status)),
            Cell::text(&a.created_at),
            Cell::text(a.ended_at.as_deref().unwrap_or("")),
            this,
        ]);
    }
    Ok(render(&DetailPage {
        c: chrome(&st, &t, format!("History of row {key} ({})", tr.name), "exports"),
        intro: None,
        grids: vec![g],
        back: Some("/exports".into()),
    }))
}

#[derive(Template)]
#[template(path = "process.html")]
struct ProcessPage {
    c: Chrome,
    pending: usize,
}

/// `GET /process`: a page whose button posts; a GET changes nothing.
pub async fn process_page(State(st): State<Shared>, t: FormToken) -> PageResult {
    let mut pending = 0;
    for t in &st.cfg.transfers {
        if let Ok(list) = lockgate::transfer::list(&t.dest, Some(&t.name), 1000).await {
            pending += list.iter().filter(|e| e.status == "pending").count();
        }
    }
    Ok(render(&ProcessPage {
        c: chrome(&st, &t, "Run pending exports", "exports"),
        pending,
    }))
}

/// The process form.
#[derive(Deserialize)]
pub struct ProcessForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /process`: from the page, runs as a job and shows it; from a script (no
/// form token), runs and answers the report as JSON when done, as cron wants.
pub async fn process(State(st): State<Shared>, t: FormToken, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: ProcessForm = serde_urlencoded::from_bytes(&body).unwrap_or(ProcessForm { csrf: None });
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser || form.csrf.is_some() {
        if let Err(e) = t.check(form.csrf.as_deref().unwrap_or("")) {
            return PageError(e).into_response();
        }
        let id = service::start_process(&st);
        return Redirect::to(&format!("/jobs/{id}")).into_response();
    }
    let id = service::start_process(&st);
    match st.jobs.wait(id).await {
        Some(job) => {
            let status = match (job.status_str(), job.exit_code) {
                ("succeeded", _) => StatusCode::OK,
                (_, Some(code)) => AppError::from_exit(code, "").status,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, axum::Json(job)).into_response()
        }
        None => AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "the job was lost").into_response(),
    }
}

/// The Generate Sample Customers form.
#[derive(Deserialize)]
pub struct GenerateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    n: String,
}

/// `POST /demo/generate`
pub async fn demo_generate(State(st): State<Shared>, t: FormToken, Form(f): Form<GenerateForm>) -> PageResult {
    t.check(&f.csrf)?;
    let n: i64 = f.n.trim().parse().map_err(|_| {
        AppError::bad(format!(
            "how many customers: give a whole number from 1 to 500 (got {:?})",
            f.n
        ))
    })?;
    let id = service::start_generate(&st, n)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

// ---------------------------------------------------------------- migrations

/// The Migrations page's log filter.
#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(rename = "type")]
    log_type: Option<String>,
    table: Option<String>,
    version: Option<String>,
    tenant: Option<String>,
    module: Option<String>,
    limit: Option<u32>,
}

impl LogQuery {
    /// The ledger's filter.
    pub fn filter(&self) -> Result<LogFilter, AppError> {
        let types = match non_empty(&self.log_type) {
            None => Vec::new(),
            Some(t) => {
                let t = t.to_uppercase();
                if !["INFO", "WARN", "ERROR"].contains(&t.as_str()) {
                    return Err(AppError::bad(format!("log type {t:?}: give INFO, WARN or ERROR")));
                }
                vec![t]
            }
        };
        Ok(LogFilter {
            module: non_empty(&self.module),
            types,
            table: non_empty(&self.table),
            version: non_empty(&self.version),
            tenant: non_empty(&self.tenant),
            limit: self.limit.unwrap_or(200).min(10_000),
        })
    }
}

#[derive(Template)]
#[template(path = "migrations.html")]
struct MigrationsPage {
    c: Chrome,
    db: String,
    folder: String,
    status: Option<lockgate::StatusReport>,
    status_error: String,
    applied: Grid,
    logs: Grid,
    types: Vec<(&'static str, bool)>,
    filter_table: String,
    filter_version: String,
    filter_tenant: String,
}

/// `GET /migrations`
pub async fn migrations(State(st): State<Shared>, t: FormToken, Query(q): Query<LogQuery>) -> PageResult {
    let filter = q.filter()?;
    let (status, status_error) = match service::migration_status(&st).await {
        Ok(s) => (Some(s), String::new()),
        Err(e) => (None, e.message),
    };
    let mut applied = Grid::new(
        "Applied versions",
        &["Version", "Status", "Applied", "Run"],
        "No version applied yet.",
    );
    if let Some(s) = &status {
        for v in s.applied.iter().rev() {
            let v = serde_json::to_value(v).unwrap_or_default();
            let field = |k: &str| match &v[k] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            applied.rows.push(vec![
                Cell::text(field("version")),
                Cell::class(field("status"), &format!("status {}", field("status"))),
                Cell::text(field("applied_at")),
                Cell::text(field("run_id")),
            ]);
        }
    }
    let entries = service::logs(&st, &filter).await.unwrap_or_default();
    let mut logs = Grid::new(
        "",
        &["When", "Type", "Version", "Table", "Tenant", "File", "Message"],
        "No log entries (match).",
    );
    for e in &entries {
        logs.rows.push(vec![
            Cell::text(&e.logged_at),
            Cell::class(&e.log_type, &format!("status {}", e.log_type.to_lowercase())),
            Cell::text(e.version.as_deref().unwrap_or("")),
            Cell::text(e.table.as_deref().unwrap_or("")),
            Cell::text(e.tenant.as_deref().unwrap_or("")),
            Cell::text(log_file(e)),
            Cell::text(log_message(&e.message)),
        ]);
    }
    Ok(render(&MigrationsPage {
        c: chrome(&st, &t, "Migrations", "migrations"),
        db: st.cfg.migrate_conn().map(|c| c.name.clone()).unwrap_or_default(),
        folder: st.cfg.migrations_dir.display().to_string(),
        status,
        status_error,
        applied,
        logs,
        types: ["INFO", "WARN", "ERROR"]
            .into_iter()
            .map(|t| (t, non_empty(&q.log_type).is_some_and(|f| f.eq_ignore_ascii_case(t))))
            .collect(),
        filter_table: non_empty(&q.table).unwrap_or_default(),
        filter_version: non_empty(&q.version).unwrap_or_default(),
        filter_tenant: non_empty(&q.tenant).unwrap_or_default(),
    }))
}

/// A log entry's file, from its version folder on (an uploaded zip was unpacked in a
/// temporary folder that no longer exists).
fn log_file(e: &LogEntry) -> String {
    let file = e.file.as_deref().unwrap_or("");
    match &e.version {
        Some(v) => match file.find(&format!("/{v}/")) {
            Some(at) => file[at + 1..].to_string(),
            None => file.to_string(),
        },
        None => file.to_string(),
    }
}

/// A log entry's message for people: its text, or its counts.
fn log_message(m: &serde_json::Value) -> String {
    let inner = m.get("message").unwrap_or(m);
    let text = match inner {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) if o.contains_key("total") => format!(
            "{} records: {} succeeded, {} failed",
            o["total"],
            o.get("success").cloned().unwrap_or_default(),
            o.get("failed").cloned().unwrap_or_default()
        ),
        other => other.to_string(),
    };
    match m.get("data") {
        Some(d) => format!("{text} (record {d})"),
        None => text,
    }
}

/// The migrate form.
#[derive(Deserialize)]
pub struct MigrateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dry_run: String,
}

/// `POST /migrations/run`
pub async fn migrations_run(State(st): State<Shared>, t: FormToken, Form(f): Form<MigrateForm>) -> PageResult {
    t.check(&f.csrf)?;
    let dry_run = f.dry_run != "false";
    let id = service::start_migrate(&st, MigrateFrom::Folder, dry_run)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

// ---------------------------------------------------------------- data

#[derive(Template)]
#[template(path = "data.html")]
struct DataPage {
    c: Chrome,
    db: String,
    tables: Vec<String>,
    limit_mb: usize,
    error: Option<String>,
}

/// `GET /data`
pub async fn data(State(st): State<Shared>, t: FormToken) -> PageResult {
    let (db, tables, error) = match st.cfg.migrate_conn() {
        Some(c) => match service::tables(&st, c).await {
            Ok(t) => (
                c.name.clone(),
                t.into_iter().filter(|t| !t.starts_with("lockgate_")).collect(),
                None,
            ),
            Err(e) => (c.name.clone(), Vec::new(), Some(e.message)),
        },
        None => (
            String::new(),
            Vec::new(),
            Some("no database for migrations is configured: start the server with --db URL".into()),
        ),
    };
    Ok(render(&DataPage {
        c: chrome(&st, &t, "Data", "data"),
        db,
        tables,
        limit_mb: st.cfg.upload_limit / (1024 * 1024),
        error,
    }))
}

/// Reads the download form's (or the API's) repeated and comma-separated parameters.
pub fn dump_request(raw: Option<&str>, names: (&str, &str, &str)) -> Result<DumpRequest, AppError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| AppError::bad(format!("the query string: {e}")))?;
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on" | "");
    let mut req = DumpRequest::default();
    for (k, v) in pairs {
        if k == names.0 || k == "table" {
            req.tables
                .extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
        } else if k == names.1 {
            req.all = truthy(&v);
        } else if k == names.2 {
            req.exclude_system = truthy(&v);
        }
    }
    Ok(req)
}

/// `GET /data/download`
pub async fn data_download(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    match dump_request(raw.as_deref(), ("tables", "all", "exclude_system")) {
        Ok(req) => crate::api::zip_response(&st, &req, false).await,
        Err(e) => PageError(e).into_response(),
    }
}

/// `POST /data/upload`
pub async fn data_upload(State(st): State<Shared>, t: FormToken, multipart: Multipart) -> PageResult {
    let up = upload::read_zip(multipart, st.cfg.upload_limit).await?;
    t.check(up.csrf.as_deref().unwrap_or(""))?;
    let from = service::unpack_upload(&st, up.path).await?;
    let id = service::start_migrate(&st, from, false)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

// ---------------------------------------------------------------- jobs

/// A form a job's page offers after it (apply the migration a dry run showed,
/// merge what a preview showed, undo): hidden fields, checkboxes, buttons.
pub struct FollowUp {
    /// Where it posts.
    pub action: String,
    /// Hidden fields (the CSRF token is added by the template).
    pub hidden: Vec<(String, String)>,
    /// Checkboxes.
    pub checks: Vec<Check>,
    /// Submit buttons.
    pub buttons: Vec<Button>,
    /// A hint beside the buttons (may be empty).
    pub note: String,
}

/// A checkbox of a [`FollowUp`] (sends `true` when checked).
pub struct Check {
    /// Its element id.
    pub id: String,
    /// Its field name.
    pub name: String,
    /// Its label.
    pub label: String,
    /// Checked at first.
    pub checked: bool,
}

/// A submit button of a [`FollowUp`]; a name sends its value.
pub struct Button {
    /// Its element id.
    pub id: String,
    /// Its field name (empty: it sends nothing).
    pub name: String,
    /// The value it sends.
    pub value: String,
    /// Its label.
    pub label: String,
}

impl Button {
    fn new(id: &str, name: &str, value: &str, label: &str) -> Button {
        Button {
            id: id.into(),
            name: name.into(),
            value: value.into(),
            label: label.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    c: Chrome,
    job: Job,
    grids: Vec<Grid>,
    forms: Vec<FollowUp>,
    links: Vec<(String, String)>,
}

/// `GET /jobs/{id}`
pub async fn job(State(st): State<Shared>, t: FormToken, Path(id): Path<u64>) -> PageResult {
    let job = st
        .jobs
        .get(id)
        .ok_or_else(|| AppError::not_found(format!("there is no job {id} (jobs are kept while the server runs)")))?;
    let mut grids = Vec::new();
    let mut links = Vec::new();
    let mut forms = Vec::new();
    if let Some(r) = &job.result {
        match job.kind.as_str() {
            "process" => {
                let mut g = Grid::new(
                    "Exports run",
                    &["Export", "Transfer", "Status", "Rows", "Errors", "Note"],
                    "There were no pending exports.",
                );
                for o in r["exports"].as_array().into_iter().flatten() {
                    let e = &o["export"];
                    let transfer = e["transfer"].as_str().unwrap_or("");
                    let id = e["id"].as_i64().unwrap_or(0);
                    let status = e["status"].as_str().unwrap_or("");
                    g.rows.push(vec![
                        Cell::link(id, format!("/exports/{}/{id}", encode(transfer))),
                        Cell::text(transfer),
                        Cell::class(status, &format!("status {status}")),
                        Cell::text(&e["rows"]),
                        Cell::text(&e["error_count"]),
                        Cell::text(o["note"].as_str().unwrap_or("")),
                    ]);
                }
                grids.push(g);
                links.push(("/exports".into(), "Back to the exports".into()));
            }
            "create_export" => {
                if let (Some(id), Some(t)) = (r["export"]["id"].as_i64(), r["export"]["transfer"].as_str()) {
                    links.push((format!("/exports/{}/{id}", encode(t)), format!("Export {id}")));
                }
                links.push(("/exports".into(), "Back to the exports".into()));
            }
            "generate" => links.push(("/exports".into(), "Back to the exports".into())),
            "merge" | "merge_preview" => {
                grids.extend(merge_grids(r));
                let (f, l) = merge_follow_ups(&job, r);
                forms.extend(f);
                links.extend(l);
            }
            "snapshot" | "restore" | "restore_check" => {
                let (g, f, l) = snapshot_job_view(&job, r);
                grids.extend(g);
                forms.extend(f);
                links.extend(l);
            }
            "merge_undo" | "merge_undo_preview" => {
                grids.extend(undo_grids(r));
                let (f, l) = merge_follow_ups(&job, r);
                forms.extend(f);
                links.extend(l);
            }
            _ => {
                let (g, can_apply) = migrate_grids(r);
                grids.extend(g);
                if job.kind == "migrate_dry_run" && can_apply && job.status_str() == "succeeded" {
                    forms.push(FollowUp {
                        action: "/migrations/run".into(),
                        hidden: vec![("dry_run".into(), "false".into())],
                        checks: Vec::new(),
                        buttons: vec![Button::new("apply", "", "", "Apply migrate")],
                        note: String::new(),
                    });
                }
                if job.kind == "upload" {
                    links.push(("/data".into(), "Back to the data".into()));
                }
                links.push(("/migrations".into(), "The migrations and their logs".into()));
            }
        }
    }
    let nav = match job.kind.as_str() {
        "process" | "create_export" | "generate" => "exports",
        "upload" => "data",
        k if k.starts_with("merge") => "merges",
        "snapshot" | "restore" | "restore_check" => "snapshots",
        _ => "migrations",
    };
    Ok(render(&JobPage {
        c: chrome(&st, &t, job.title.clone(), nav),
        job,
        grids,
        forms,
        links,
    }))
}

/// A migrate report as tables: each version, and each version's files (the per-file
/// log) and failing records. The flag says whether anything would be applied.
fn migrate_grids(r: &serde_json::Value) -> (Vec<Grid>, bool) {
    let mut out = Vec::new();
    let mut versions = Grid::new(
        if r["dry_run"].as_bool() == Some(true) {
            "What migrate would do (dry run: nothing was kept)"
        } else {
            "Versions"
        },
        &["Version", "Status", "Schema changes", "Error"],
        "No version to migrate: every version is applied.",
    );
    let mut files = Grid::new(
        "Files",
        &[
            "Version",
            "File",
            "Table",
            "Tenant",
            "Mode",
            "Read",
            "Inserted",
            "Updated",
            "Unchanged",
            "Deleted",
            "Failed",
        ],
        "No data files.",
    );
    let mut failures = Grid::new(
        "Failing records",
        &["Version", "Table", "Tenant", "Error"],
        "No record failed.",
    );
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let list = r["versions"].as_array().cloned().unwrap_or_default();
    for v in &list {
        let version = text(&v["version"]);
        let changes: Vec<String> = v["schema_changes"].as_array().into_iter().flatten().map(text).collect();
        let status = text(&v["status"]);
        versions.rows.push(vec![
            Cell::text(&version),
            Cell::class(&status, &format!("status {status}")),
            Cell::text(changes.join("; ")),
            Cell::class(text(&v["error"]), "error"),
        ]);
        for s in v["steps"].as_array().into_iter().flatten() {
            files.rows.push(vec![
                Cell::text(&version),
                Cell::text(text(&s["file"])),
                Cell::text(text(&s["table"])),
                Cell::text(text(&s["tenant"])),
                Cell::text(text(&s["mode"])),
                Cell::text(text(&s["rows_read"])),
                Cell::text(text(&s["inserted"])),
                Cell::text(text(&s["updated"])),
                Cell::text(text(&s["unchanged"])),
                Cell::text(text(&s["deleted"])),
                Cell::text(text(&s["failed"])),
            ]);
        }
        for f in v["failures"].as_array().into_iter().flatten() {
            failures.rows.push(vec![
                Cell::text(text(&f["version"])),
                Cell::text(text(&f["table"])),
                Cell::text(text(&f["tenant"])),
                Cell::class(text(&f["error"]["message"]), "error"),
            ]);
        }
    }
    let any = !list.is_empty();
    out.push(versions);
    out.push(files);
    if !failures.rows.is_empty() {
        out.push(failures);
    }
    (out, any)
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    failed: bool,
}

/// The login page's query.
#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`
pub async fn login_page(State(st): State<Shared>, t: FormToken, Query(q): Query<NextQuery>) -> PageResult {
    Ok(render(&LoginPage {
        c: chrome(&st, &t, "Sign in", ""),
        next: security::safe_next(q.next.as_deref().unwrap_or("/")).to_string(),
        failed: false,
    }))
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: the right token gives an HttpOnly, SameSite=Strict session cookie.
pub async fn login(State(st): State<Shared>, t: FormToken, Form(f): Form<LoginForm>) -> PageResult {
    t.check(&f.csrf)?;
    let Some(token) = st.cfg.token.as_deref() else {
        return Ok(Redirect::to("/").into_response());
    };
    if !same_secret(f.token.trim(), token) {
        let mut resp = render(&LoginPage {
            c: chrome(&st, &t, "Sign in", ""),
            next: security::safe_next(&f.next).to_string(),
            failed: true,
        });
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    }
    let session = st.sessions.lock().expect("sessions").issue();
    let mut resp = Redirect::to(security::safe_next(&f.next)).into_response();
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        crate::state::SESSION_FOR.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `POST /logout`
pub async fn logout(State(st): State<Shared>, t: FormToken, headers: HeaderMap, Form(f): Form<CsrfForm>) -> PageResult {
    t.check(&f.csrf)?;
    if let Some(id) = security::session_of(&headers) {
        st.sessions.lock().expect("sessions").end(&id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lockgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

#[derive(Template)]
#[template(path = "uploadzip.html")]
struct UploadZipPage {
    c: Chrome,
}

/// `GET /uploadzip`: oe-migration's example upload form.
pub async fn uploadzip_form(State(st): State<Shared>, t: FormToken) -> PageResult {
    Ok(render(&UploadZipPage {
        c: chrome(&st, &t, "Upload a zip", "data"),
    }))
}

// ---------------------------------------------------------------- merges

/// The Merge page's query: a definition (or a connection and a table), a search
/// of the table, and the rows picked so far (keys as `lockgate merge --from`
/// writes them).
#[derive(Deserialize, Default)]
pub struct MergesQuery {
    def: Option<String>,
    conn: Option<String>,
    table: Option<String>,
    q: Option<String>,
    after: Option<String>,
    from: Option<String>,
    into: Option<String>,
}

/// A merge in the history, as the Merge page lists it.
struct HistoryRow {
    id: i64,
    status: String,
    name: String,
    table: String,
    sources: String,
    target: String,
    rows: u64,
    conflicts: usize,
    started: String,
    holder: String,
    error: String,
    undo: bool,
}

#[derive(Template)]
#[template(path = "merges.html")]
struct MergesPage {
    c: Chrome,
    definitions: Vec<String>,
    def: String,
    /// The definition decides the connection (no connection list).
    def_conn: bool,
    /// The definition decides the table (no table list).
    def_table: bool,
    connection_names: Vec<String>,
    conn: String,
    table_names: Vec<String>,
    table: String,
    q: String,
    from: String,
    into: String,
    /// The query's pairs that keep the choice (definition, connection, table).
    keep: Vec<(String, String)>,
    refs: Option<Grid>,
    refs_error: Option<String>,
    rows: Option<Grid>,
    rows_note: String,
    rows_next: Option<String>,
    history: Vec<HistoryRow>,
    history_error: Option<String>,
}

/// A key as `--from` writes one: its parts joined by `:`, with `\`, `,` and `:`
/// escaped (the inverse of `lockgate::merge::parse_keys`).
fn key_text(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| {
            let mut out = String::new();
            for ch in p.chars() {
                if matches!(ch, '\\' | ',' | ':') {
                    out.push('\\');
                }
                out.push(ch);
            }
            out
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// JSON as people read it: strings without quotes.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A key map (`{"id": 1}`) as `id=1`; several as `id=1 | id=2`.
fn key_map_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", json_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Array(a) => a.iter().map(key_map_text).collect::<Vec<_>>().join(" | "),
        other => json_text(other),
    }
}

/// `GET /merges`
pub async fn merges(State(st): State<Shared>, t: FormToken, Query(q): Query<MergesQuery>) -> PageResult {
    let def = match non_empty(&q.def) {
        Some(name) => Some(service::find_merge_definition(&st, &name)?),
        None => None,
    };
    let def_conn = def.and_then(|d| d.conn).and_then(|i| st.cfg.connections.get(i));
    let def_table = def.and_then(|d| d.spec.table.clone());
    let connection_names: Vec<String> = st.cfg.connections.iter().map(|c| c.name.clone()).collect();
    let conn = match def_conn {
        Some(c) => c.name.clone(),
        None => non_empty(&q.conn)
            .or_else(|| st.cfg.migrate_conn().map(|c| c.name.clone()))
            .or_else(|| connection_names.first().cloned())
            .unwrap_or_default(),
    };
    let table = def_table.clone().or_else(|| non_empty(&q.table)).unwrap_or_default();
    let mut keep: Vec<(String, String)> = Vec::new();
    if let Some(d) = def {
        keep.push(("def".into(), d.name.clone()));
    }
    if def_conn.is_none() && !conn.is_empty() {
        keep.push(("conn".into(), conn.clone()));
    }
    if def_table.is_none() && !table.is_empty() {
        keep.push(("table".into(), table.clone()));
    }
    let mut view = MergesPage {
        c: chrome(&st, &t, "Merge", "merges"),
        definitions: st.cfg.merges.iter().map(|m| m.name.clone()).collect(),
        def: def.map(|d| d.name.clone()).unwrap_or_default(),
        def_conn: def_conn.is_some(),
        def_table: def_table.is_some(),
        connection_names,
        conn: conn.clone(),
        table_names: Vec::new(),
        table: table.clone(),
        q: non_empty(&q.q).unwrap_or_default(),
        from: non_empty(&q.from).unwrap_or_default(),
        into: non_empty(&q.into).unwrap_or_default(),
        keep,
        refs: None,
        refs_error: None,
        rows: None,
        rows_note: String::new(),
        rows_next: None,
        history: Vec::new(),
        history_error: None,
    };
    if conn.is_empty() {
        return Ok(render(&view));
    }
    let c = service::find_connection(&st, &conn)?;
    match service::merge_history(c, 50).await {
        Ok(h) => {
            view.history = h
                .into_iter()
                .map(|m| HistoryRow {
                    id: m.id,
                    status: m.status.as_str().to_string(),
                    name: m.name.clone().unwrap_or_default(),
                    table: m.table.clone(),
                    sources: key_map_text(&m.sources),
                    target: key_map_text(&m.target),
                    rows: m.total_rows,
                    conflicts: m.conflicts,
                    started: m.started_at.clone(),
                    holder: m.holder.clone(),
                    error: m.error.clone().unwrap_or_default(),
                    undo: m.status == lockgate::merge::MergeStatus::Completed,
                })
                .collect()
        }
        Err(e) => view.history_error = Some(e.message),
    }
    if def_table.is_none() {
        match service::tables(&st, c).await {
            Ok(names) => view.table_names = names.into_iter().filter(|n| !n.starts_with("lockgate_")).collect(),
            Err(e) => view.refs_error = Some(e.message),
        }
    }
    if table.is_empty() {
        return Ok(render(&view));
    }
    match service::merge_refs(c, def, Some(table.clone())).await {
        Ok((merged, refs)) => {
            let mut g = Grid::new(
                format!("What references {merged} (a merge re-points these rows)"),
                &[
                    "Table",
                    "Columns",
                    "References",
                    "Kind",
                    "Unique keys with them",
                    "Note",
                ],
                "Nothing references this table: a merge would only act on the rows merged away.",
            );
            for r in &refs {
                let unique = if r.unique.is_empty() {
                    "none".to_string()
                } else {
                    r.unique
                        .iter()
                        .map(|u| format!("({})", u.join(", ")))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                // A reference found through another table (`via`, as `merge refs`
                // reports it) says how its rows follow.
                let v = serde_json::to_value(r).unwrap_or_default();
                let mut note = Vec::new();
                if let Some(via) = v["via"].as_str() {
                    note.push(if v["changes"].as_bool() == Some(true) {
                        format!("through {via}, re-pointed columns: needs ON UPDATE CASCADE")
                    } else {
                        format!("through {via}: follows its row unchanged")
                    });
                }
                if r.skipped {
                    note.push("skipped".to_string());
                }
                g.rows.push(vec![
                    Cell::text(&r.table),
                    Cell::text(r.columns.join(", ")),
                    Cell::text(r.referenced.join(", ")),
                    Cell::text(format!("{} {}", r.kind.replace('_', " "), r.name)),
                    Cell::text(unique),
                    Cell::text(note.join("; ")),
                ]);
            }
            view.refs = Some(g);
        }
        Err(e) => {
            view.refs_error = Some(e.message);
            return Ok(render(&view));
        }
    }
    // The rows to pick from: the table page's search, 20 at a time.
    let bq = browse_query(&None, &None, &q.q, &q.after, &None, 20)?;
    let page = service::browse_table(&st, c, &table, &bq).await?.value;
    let key_cols = match &page.paging {
        Paging::Key { columns, primary: true } => columns.clone(),
        _ => Vec::new(),
    };
    let positions: Vec<usize> = key_cols
        .iter()
        .filter_map(|k| page.columns.iter().position(|(n, _)| n == k))
        .collect();
    if key_cols.is_empty() || positions.len() != key_cols.len() {
        view.rows_note = format!(
            "{} has no primary key: a merge names its rows by their primary key.",
            page.table
        );
        return Ok(render(&view));
    }
    let sources = lockgate::merge::parse_keys(&view.from);
    let link = |from: &str, into: &str, extra: &[(&str, &str)]| {
        let mut pairs: Vec<(&str, &str)> = view.keep.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if !view.q.is_empty() {
            pairs.push(("q", &view.q));
        }
        if !from.is_empty() {
            pairs.push(("from", from));
        }
        if !into.is_empty() {
            pairs.push(("into", into));
        }
        pairs.extend_from_slice(extra);
        format!("/merges?{}#pick", query_string(&pairs))
    };
    let mut headers: Vec<&str> = vec!["", ""];
    let names: Vec<String> = page.columns.iter().map(|(n, _)| n.clone()).collect();
    headers.extend(names.iter().map(String::as_str));
    let mut g = Grid::new(format!("Rows of {}", page.table), &headers, "No rows match.");
    for r in &page.rows {
        let parts: Vec<String> = positions.iter().map(|&i| r[i].to_string()).collect();
        let key = key_text(&parts);
        let picked = sources.contains(&parts);
        let source_cell = if picked {
            Cell::class("a source", "status")
        } else {
            let from = if view.from.is_empty() {
                key.clone()
            } else {
                format!("{},{key}", view.from)
            };
            let into = if view.into == key { "" } else { view.into.as_str() };
            Cell::link("Merge away", link(&from, into, &[]))
        };
        let target_cell = if view.into == key {
            Cell::class("the target", "status")
        } else {
            // A row cannot be both: picking it as the target drops it from the sources.
            let from: Vec<String> = sources.iter().filter(|s| **s != parts).map(|s| key_text(s)).collect();
            Cell::link("Merge into", link(&from.join(","), &key, &[]))
        };
        let mut row = vec![source_cell, target_cell];
        row.extend(r.iter().map(|v| {
            if v.is_null() {
                Cell::class("NULL", "null")
            } else {
                Cell::text(v.to_string())
            }
        }));
        g.rows.push(row);
    }
    view.rows_note = format!(
        "{}{}, by key {}",
        count_text(&page.total),
        if view.q.is_empty() {
            String::new()
        } else {
            format!(" matching “{}”", view.q)
        },
        key_cols.join(", ")
    );
    view.rows_next = page
        .next
        .as_ref()
        .map(|cur| link(&view.from, &view.into, &[("after", &cur.encode())]));
    view.rows = Some(g);
    Ok(render(&view))
}

/// Reads a form's fields, repeated ones included (`from`, `skip_tables`).
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AppError::bad(format!("the form: {e}")))
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn checked(pairs: &[(String, String)], name: &str) -> bool {
    field(pairs, name).is_some_and(|v| matches!(v.as_str(), "true" | "on" | "1" | "yes"))
}

/// `POST /merges/run`: the Merge page's form (and a preview's Merge button):
/// `action` is `preview` or `merge`.
pub async fn merges_run(State(st): State<Shared>, t: FormToken, body: axum::body::Bytes) -> PageResult {
    let pairs = form_pairs(&body)?;
    t.check(field(&pairs, "csrf").as_deref().unwrap_or(""))?;
    let all = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    let action = field(&pairs, "action").unwrap_or_else(|| "preview".into());
    let preview = match action.as_str() {
        "preview" => true,
        "merge" => false,
        other => return Err(AppError::bad(format!("action {other:?}: preview or merge")).into()),
    };
    let from = all("from");
    let req = service::MergeRequest {
        conn: field(&pairs, "conn"),
        def: field(&pairs, "def"),
        table: field(&pairs, "table"),
        from: (!from.is_empty())
            .then(|| service::KeyList::Many(from.into_iter().map(service::KeyText::Text).collect())),
        into: field(&pairs, "into").map(service::KeyText::Text),
        preview,
        merge_conflicts: checked(&pairs, "merge_conflicts"),
        sources: field(&pairs, "sources"),
        conflict_rows: field(&pairs, "conflict_rows"),
        skip_tables: all("skip_tables"),
        references: all("references"),
    };
    let id = service::start_merge(&st, req)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

/// `POST /merges/{id}/undo`: the history's Undo button (a preview first) and the
/// preview's Undo button (with overwrite when rows changed since).
pub async fn merges_undo(
    State(st): State<Shared>,
    t: FormToken,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> PageResult {
    let pairs = form_pairs(&body)?;
    t.check(field(&pairs, "csrf").as_deref().unwrap_or(""))?;
    let c = service::merge_connection(&st, field(&pairs, "conn").as_deref(), None)?;
    let job = service::start_undo(&st, c, id, checked(&pairs, "preview"), checked(&pairs, "overwrite"));
    Ok(Redirect::to(&format!("/jobs/{job}")).into_response())
}

/// The merge detail page's query.
#[derive(Deserialize, Default)]
pub struct ConnQuery {
    conn: Option<String>,
}

/// `GET /merges/{id}?conn=NAME`: one merge from the history.
pub async fn merge_detail(
    State(st): State<Shared>,
    t: FormToken,
    Path(id): Path<i64>,
    Query(q): Query<ConnQuery>,
) -> PageResult {
    let c = service::merge_connection(&st, q.conn.as_deref(), None)?;
    let d = service::merge_show(c, id).await?;
    let m = &d.summary;
    let mut facts = Grid::new(
        "",
        &[
            "Status",
            "Definition",
            "Table",
            "Sources",
            "Target",
            "Started",
            "Took",
            "By",
        ],
        "",
    );
    facts.rows.push(vec![
        Cell::class(m.status.as_str(), &format!("status {}", m.status.as_str())),
        Cell::text(m.name.as_deref().unwrap_or("")),
        Cell::text(&m.table),
        Cell::text(key_map_text(&m.sources)),
        Cell::text(key_map_text(&m.target)),
        Cell::text(&m.started_at),
        Cell::text(m.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default()),
        Cell::text(&m.holder),
    ]);
    let report = serde_json::json!({
        "tables": d.tables,
        "conflicts": d.conflicts_found,
        "actions": d.actions,
        "changes": d.changes,
        "changes_truncated": d.changes_truncated,
    });
    let mut grids = vec![facts];
    grids.extend(merge_grids(&report));
    let mut intro = vec![format!("Options: {}", d.options)];
    if let Some(e) = &m.error {
        intro.push(format!("Error: {e}"));
    }
    if let Some(u) = &m.undone_at {
        intro.push(format!("Undone at {u}."));
    }
    Ok(render(&DetailPage {
        c: chrome(&st, &t, format!("Merge {} ({})", m.id, c.name), "merges"),
        intro: Some(intro.join(" ")),
        grids,
        back: Some(format!("/merges?{}", query_string(&[("conn", &c.name)]))),
    }))
}

/// A merge report (or a merge's detail) as tables: rows re-pointed per table,
/// conflicts, rows merged away, and the row-level changes when it has them.
fn merge_grids(r: &serde_json::Value) -> Vec<Grid> {
    let mut counts = Grid::new(
        "Rows re-pointed, per table and reference",
        &["Table", "Columns", "Rows", "Level"],
        "Nothing references the merged rows.",
    );
    for t in r["tables"].as_array().into_iter().flatten() {
        let cols: Vec<String> = t["columns"].as_array().into_iter().flatten().map(json_text).collect();
        counts.rows.push(vec![
            Cell::text(json_text(&t["table"])),
            Cell::text(cols.join(", ")),
            Cell::text(json_text(&t["rows"])),
            Cell::text(json_text(&t["level"])),
        ]);
    }
    let mut out = vec![counts];
    let conflicts = r["conflicts"].as_array().cloned().unwrap_or_default();
    if !conflicts.is_empty() {
        let caption = if r["conflicts_truncated"].as_bool() == Some(true) {
            format!(
                "Conflicts: rows that would collide in a unique key (the first {}; there are more)",
                conflicts.len()
            )
        } else {
            "Conflicts: rows that would collide in a unique key".to_string()
        };
        let mut g = Grid::new(
            caption,
            &["Table", "Unique key", "Values", "Row", "Collides with", "Level"],
            "",
        );
        for c in &conflicts {
            let unique: Vec<String> = c["unique"].as_array().into_iter().flatten().map(json_text).collect();
            g.rows.push(vec![
                Cell::text(json_text(&c["table"])),
                Cell::text(unique.join(", ")),
                // The values after the move, in the unique key's order.
                Cell::text(
                    unique
                        .iter()
                        .zip(c["values"].as_array().into_iter().flatten())
                        .map(|(u, v)| format!("{u}={}", json_text(v)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Cell::class(key_map_text(&c["row"]), "error"),
                Cell::text(key_map_text(&c["counterpart"])),
                Cell::text(json_text(&c["level"])),
            ]);
        }
        out.push(g);
    }
    let actions = r["actions"].as_array().cloned().unwrap_or_default();
    if !actions.is_empty() {
        let mut g = Grid::new("Rows merged away", &["Table", "Key", "What happens", "Level"], "");
        for a in &actions {
            g.rows.push(vec![
                Cell::text(json_text(&a["table"])),
                Cell::text(key_map_text(&a["key"])),
                Cell::text(json_text(&a["action"])),
                Cell::text(json_text(&a["level"])),
            ]);
        }
        out.push(g);
    }
    if let Some(changes) = r["changes"].as_array() {
        let caption = if r["changes_truncated"].as_bool() == Some(true) {
            format!("Changes (the first {}; the counts above are complete)", changes.len())
        } else {
            "Changes".to_string()
        };
        let mut g = Grid::new(
            caption,
            &["Table", "Row", "Columns", "Before", "After", "Level"],
            "No row changes.",
        );
        for ch in changes {
            let list = |v: &serde_json::Value| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(json_text)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            g.rows.push(vec![
                Cell::text(json_text(&ch["table"])),
                Cell::text(key_map_text(&ch["key"])),
                Cell::text(list(&ch["columns"])),
                Cell::text(list(&ch["old"])),
                Cell::text(list(&ch["new"])),
                Cell::text(json_text(&ch["level"])),
            ]);
        }
        out.push(g);
    }
    out
}

/// An undo report as tables: rows put back per table, and rows changed since.
fn undo_grids(r: &serde_json::Value) -> Vec<Grid> {
    let mut counts = Grid::new(
        "Rows re-pointed back, per table and reference",
        &["Table", "Columns", "Rows"],
        "No rows to re-point back.",
    );
    for t in r["tables"].as_array().into_iter().flatten() {
        let cols: Vec<String> = t["columns"].as_array().into_iter().flatten().map(json_text).collect();
        counts.rows.push(vec![
            Cell::text(json_text(&t["table"])),
            Cell::text(cols.join(", ")),
            Cell::text(json_text(&t["rows"])),
        ]);
    }
    let mut changed = Grid::new(
        "Rows changed since the merge",
        &["Table", "Row", "What changed"],
        "None: the undo puts every row back as the merge found it.",
    );
    for c in r["changed"].as_array().into_iter().flatten() {
        changed.rows.push(vec![
            Cell::text(json_text(&c["table"])),
            Cell::text(key_map_text(&c["key"])),
            Cell::class(json_text(&c["reason"]), "error"),
        ]);
    }
    vec![counts, changed]
}

/// The job page's forms after a merge job: merge (or preview again) what was
/// previewed, undo what was merged, undo for real what an undo previewed.
fn merge_follow_ups(job: &Job, r: &serde_json::Value) -> (Vec<FollowUp>, Vec<(String, String)>) {
    let mut forms = Vec::new();
    let mut links = Vec::new();
    let req = &r["request"];
    let conn = json_text(&req["conn"]);
    match job.kind.as_str() {
        "merge_preview" | "merge" => {
            let status = json_text(&r["status"]);
            if job.kind == "merge_preview" || status == "aborted_conflicts" {
                let mut hidden: Vec<(String, String)> = Vec::new();
                for name in ["conn", "def", "table", "sources", "conflict_rows"] {
                    let v = json_text(&req[name]);
                    if !v.is_empty() {
                        hidden.push((name.into(), v));
                    }
                }
                for name in ["from", "skip_tables", "references"] {
                    for v in req[name].as_array().into_iter().flatten() {
                        hidden.push((name.into(), json_text(v)));
                    }
                }
                hidden.push(("into".into(), json_text(&req["into"])));
                let conflicts = r["conflicts"].as_array().is_some_and(|c| !c.is_empty());
                forms.push(FollowUp {
                    action: "/merges/run".into(),
                    hidden,
                    checks: vec![Check {
                        id: "merge_conflicts".into(),
                        name: "merge_conflicts".into(),
                        label: "Merge conflicting rows into their counterparts".into(),
                        checked: req["merge_conflicts"].as_bool() == Some(true),
                    }],
                    buttons: vec![
                        Button::new("preview-again", "action", "preview", "Preview again"),
                        Button::new("merge", "action", "merge", "Merge"),
                    ],
                    note: if conflicts && req["merge_conflicts"].as_bool() != Some(true) {
                        "Without merging the conflicts, the merge aborts and changes nothing.".into()
                    } else {
                        "The merge runs in one transaction and can be undone from the history.".into()
                    },
                });
            }
            if let (Some(id), "completed") = (r["id"].as_i64(), status.as_str()) {
                forms.push(FollowUp {
                    action: format!("/merges/{id}/undo"),
                    hidden: vec![("conn".into(), conn.clone()), ("preview".into(), "true".into())],
                    checks: Vec::new(),
                    buttons: vec![Button::new("undo-preview", "", "", "Preview undo")],
                    note: String::new(),
                });
            }
            if let Some(id) = r["id"].as_i64() {
                links.push((
                    format!("/merges/{id}?{}", query_string(&[("conn", &conn)])),
                    format!("Merge {id} in the history"),
                ));
            }
        }
        _ => {
            let id = req["id"].as_i64().unwrap_or(0);
            let changed = r["changed"].as_array().is_some_and(|c| !c.is_empty());
            let status = json_text(&r["status"]);
            if status == "preview" || status == "changed" {
                let mut hidden = vec![("conn".into(), conn.clone())];
                let mut checks = Vec::new();
                if changed {
                    checks.push(Check {
                        id: "overwrite".into(),
                        name: "overwrite".into(),
                        label: "Overwrite the rows changed since the merge".into(),
                        checked: false,
                    });
                } else {
                    hidden.push(("overwrite".into(), "false".into()));
                }
                forms.push(FollowUp {
                    action: format!("/merges/{id}/undo"),
                    hidden,
                    checks,
                    buttons: vec![Button::new("undo", "", "", "Undo")],
                    note: if changed {
                        "Rows changed since the merge stop the undo unless it overwrites them.".into()
                    } else {
                        String::new()
                    },
                });
            }
            links.push((
                format!("/merges/{id}?{}", query_string(&[("conn", &conn)])),
                format!("Merge {id} in the history"),
            ));
        }
    }
    // Back to the page as it was chosen: by its definition, else its connection.
    let def = json_text(&req["def"]);
    let back = if def.is_empty() {
        ("conn", conn.as_str())
    } else {
        ("def", def.as_str())
    };
    links.push((
        format!("/merges?{}", query_string(&[back])),
        "Back to the merges".into(),
    ));
    (forms, links)
}

// ---------------------------------------------------------------- snapshots

/// A snapshot as the Snapshots page lists it.
struct SnapshotRow {
    id: String,
    created: String,
    engine: String,
    tables: usize,
    rows: u64,
    size: String,
    modules: String,
    /// `subset`, the masked columns, or empty.
    taken: String,
    href: String,
    manifest: String,
}

/// A profile's section of the Snapshots page.
struct ProfileView {
    name: String,
    store: String,
    pinned: String,
    /// The connection its snapshots are taken from by default (empty: none).
    default_conn: String,
    error: Option<String>,
    list: Vec<SnapshotRow>,
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    c: Chrome,
    error: Option<String>,
    profiles_grid: Grid,
    profiles: Vec<ProfileView>,
    connection_names: Vec<String>,
    /// The connections a restore may write (not a profile's own database).
    target_names: Vec<String>,
}

/// Module versions as `module version, …`.
fn modules_text(v: &std::collections::BTreeMap<String, String>) -> String {
    v.iter()
        .map(|(m, ver)| format!("{m} {ver}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn snapshot_href(profile: &str, id: &str) -> String {
    format!("/snapshots/{}/{}", encode(profile), encode(id))
}

fn api_snapshot_href(profile: &str, id: &str) -> String {
    format!("/api/snapshots/{}/{}", encode(profile), encode(id))
}

/// `GET /snapshots`
pub async fn snapshots(State(st): State<Shared>, t: FormToken) -> PageResult {
    let mut view = SnapshotsPage {
        c: chrome(&st, &t, "Snapshots", "snapshots"),
        error: None,
        profiles_grid: Grid::new(
            "",
            &["Profile", "Store", "Snapshots", "Latest", "Size", "Modules", "Pinned"],
            "No data profiles: add [profiles.NAME] to lockgate.toml, or `lockgate profile create NAME`.",
        ),
        profiles: Vec::new(),
        connection_names: st.cfg.connections.iter().map(|c| c.name.clone()).collect(),
        target_names: st
            .cfg
            .connections
            .iter()
            .filter(|c| !c.name.starts_with("profiles."))
            .map(|c| c.name.clone())
            .collect(),
    };
    let infos = match crate::snapshots::profiles(&st).await {
        Ok(p) => p,
        Err(e) => {
            view.error = Some(e.message);
            return Ok(render(&view));
        }
    };
    for info in infos {
        view.profiles_grid.rows.push(vec![
            Cell::text(&info.profile),
            Cell::text(&info.store),
            Cell::text(info.snapshots),
            match &info.latest {
                Some(id) => Cell::link(id, snapshot_href(&info.profile, id)),
                None => Cell::text(""),
            },
            Cell::text(info.latest_bytes.map(crate::snapshots::bytes_text).unwrap_or_default()),
            Cell::text(modules_text(&info.modules)),
            Cell::text(info.pinned.as_deref().unwrap_or("")),
        ]);
        let mut p = ProfileView {
            name: info.profile.clone(),
            store: info.store.clone(),
            pinned: info.pinned.clone().unwrap_or_default(),
            default_conn: st
                .cfg
                .profile_connection(&info.profile)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            error: info.error.clone(),
            list: Vec::new(),
        };
        // A store that could not be listed for the profile is said once, above.
        if info.error.is_none() {
            match crate::snapshots::snapshots(&st, &info.profile).await {
                Ok(list) => {
                    p.list = list
                        .iter()
                        .map(|s| {
                            let mut taken = Vec::new();
                            if s.subset {
                                taken.push("subset".to_string());
                            }
                            if !s.masked.is_empty() {
                                taken.push(format!("masked: {}", s.masked.join(", ")));
                            }
                            SnapshotRow {
                                id: s.id.clone(),
                                created: s.created.clone(),
                                engine: s.engine.clone(),
                                tables: s.tables,
                                rows: s.rows,
                                size: crate::snapshots::bytes_text(s.stored_bytes),
                                modules: modules_text(&s.modules),
                                taken: taken.join("; "),
                                href: snapshot_href(&s.profile, &s.id),
                                manifest: format!("{}/manifest.json", api_snapshot_href(&s.profile, &s.id)),
                            }
                        })
                        .collect()
                }
                Err(e) => p.error = Some(e.message),
            }
        }
        view.profiles.push(p);
    }
    Ok(render(&view))
}

/// `GET /snapshots/{profile}/{id}`: one snapshot's tables, with their data files
/// to download.
pub async fn snapshot_detail(
    State(st): State<Shared>,
    t: FormToken,
    Path((profile, id)): Path<(String, String)>,
) -> PageResult {
    let m = crate::snapshots::show(&st, &profile, &id).await?;
    let api = api_snapshot_href(&profile, &id);
    let mut facts = Grid::new(
        "",
        &["Created", "Engine", "Server", "Database", "Modules", "Subset"],
        "",
    );
    let modules: Vec<String> = m["modules"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} {}", json_text(v)))
        .collect();
    let subset: Vec<String> = m["subset"].as_array().into_iter().flatten().map(json_text).collect();
    facts.rows.push(vec![
        Cell::text(json_text(&m["created"])),
        Cell::text(json_text(&m["source"]["engine"])),
        Cell::text(json_text(&m["source"]["server_version"])),
        Cell::text(json_text(&m["source"]["database"])),
        Cell::text(modules.join(", ")),
        Cell::text(subset.join("; ")),
    ]);
    let mut tables = Grid::new(
        "Tables (parents first, the order a restore fills them in)",
        &[
            "Table",
            "Columns",
            "Rows",
            "Bytes",
            "Stored",
            "Condition",
            "Masked",
            "Data file",
        ],
        "No tables.",
    );
    for tb in m["tables"].as_array().into_iter().flatten() {
        let name = match tb["schema"].as_str() {
            Some(s) => format!("{s}.{}", json_text(&tb["name"])),
            None => json_text(&tb["name"]),
        };
        let masked: Vec<String> = tb["masked"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}={}", json_text(&p[0]), json_text(&p[1])))
            .collect();
        let file = json_text(&tb["file"]);
        tables.rows.push(vec![
            Cell::text(name),
            Cell::text(tb["columns"].as_array().map(Vec::len).unwrap_or(0)),
            Cell::text(json_text(&tb["rows"])),
            Cell::text(crate::snapshots::bytes_text(tb["bytes"].as_u64().unwrap_or(0))),
            Cell::text(crate::snapshots::bytes_text(tb["stored_bytes"].as_u64().unwrap_or(0))),
            Cell::text(json_text(&tb["condition"])),
            Cell::text(masked.join(", ")),
            Cell::link(
                &file,
                format!(
                    "{api}/files/{}",
                    file.split('/').map(encode).collect::<Vec<_>>().join("/")
                ),
            ),
        ]);
    }
    let mut grids = vec![facts, tables];
    let media = m["files"].as_array().cloned().unwrap_or_default();
    if !media.is_empty() {
        let mut g = Grid::new("Media files", &["Path", "Bytes"], "");
        for f in &media {
            let key = json_text(&f["key"]);
            g.rows.push(vec![
                Cell::link(
                    json_text(&f["path"]),
                    format!(
                        "{api}/files/{}",
                        key.split('/').map(encode).collect::<Vec<_>>().join("/")
                    ),
                ),
                Cell::text(crate::snapshots::bytes_text(f["bytes"].as_u64().unwrap_or(0))),
            ]);
        }
        grids.push(g);
    }
    Ok(render(&DetailPage {
        c: chrome(&st, &t, format!("Snapshot {id} of {profile}"), "snapshots"),
        intro: Some(format!(
            "Data files are compressed tab-separated text (zstd). The manifest: {api}/manifest.json"
        )),
        grids,
        back: Some("/snapshots".into()),
    }))
}

/// `POST /snapshots/take`: the Take snapshot form.
pub async fn snapshots_take(State(st): State<Shared>, t: FormToken, body: axum::body::Bytes) -> PageResult {
    let pairs = form_pairs(&body)?;
    t.check(field(&pairs, "csrf").as_deref().unwrap_or(""))?;
    let req = crate::snapshots::SnapshotRequest {
        profile: field(&pairs, "profile").unwrap_or_default(),
        conn: field(&pairs, "conn"),
    };
    let id = crate::snapshots::start_snapshot(&st, req)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

/// `POST /snapshots/restore`: a profile's Check restore form (`check_only`), and
/// the check's Restore now button.
pub async fn snapshots_restore(State(st): State<Shared>, t: FormToken, body: axum::body::Bytes) -> PageResult {
    let pairs = form_pairs(&body)?;
    t.check(field(&pairs, "csrf").as_deref().unwrap_or(""))?;
    let req = crate::snapshots::RestoreRequest {
        profile: field(&pairs, "profile").unwrap_or_default(),
        id: field(&pairs, "id"),
        into: field(&pairs, "into").unwrap_or_default(),
        replace: checked(&pairs, "replace"),
        check_only: checked(&pairs, "check_only"),
    };
    let id = crate::snapshots::start_restore(&st, req)?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

/// A snapshot or restore job's report as tables (the tables it wrote or would,
/// warnings, the problems a check found), and what follows it: the check's
/// Restore now, the snapshot's page.
fn snapshot_job_view(job: &Job, r: &serde_json::Value) -> (Vec<Grid>, Vec<FollowUp>, Vec<(String, String)>) {
    let mut grids = Vec::new();
    let mut forms = Vec::new();
    let mut links = Vec::new();
    let req = &r["request"];
    if let Some(errors) = r["errors"].as_array() {
        let mut g = Grid::new("Problems found (nothing was written)", &["Problem"], "");
        for e in errors {
            g.rows.push(vec![Cell::class(json_text(e), "error")]);
        }
        grids.push(g);
    }
    let profile = json_text(&r["profile"]);
    let id = json_text(&r["id"]);
    match job.kind.as_str() {
        "snapshot" if !id.is_empty() => {
            let mut g = Grid::new("Tables taken", &["Table", "Rows", "Bytes", "Stored"], "No tables.");
            for tb in r["tables"].as_array().into_iter().flatten() {
                g.rows.push(vec![
                    Cell::text(json_text(&tb["table"])),
                    Cell::text(json_text(&tb["rows"])),
                    Cell::text(crate::snapshots::bytes_text(tb["bytes"].as_u64().unwrap_or(0))),
                    Cell::text(crate::snapshots::bytes_text(tb["stored_bytes"].as_u64().unwrap_or(0))),
                ]);
            }
            grids.push(g);
            links.push((snapshot_href(&profile, &id), format!("Snapshot {id}")));
        }
        "restore" | "restore_check" if !id.is_empty() => {
            let check = job.kind == "restore_check";
            let mut g = Grid::new(
                if check {
                    "What the restore would do (checked: nothing was written)"
                } else {
                    "Tables restored"
                },
                &["Table", "Rows", "Created", "Replaced"],
                "No tables.",
            );
            let yes = |v: &serde_json::Value| if v.as_bool() == Some(true) { "yes" } else { "" };
            for tb in r["tables"].as_array().into_iter().flatten() {
                g.rows.push(vec![
                    Cell::text(json_text(&tb["table"])),
                    Cell::text(json_text(&tb["rows"])),
                    Cell::text(yes(&tb["created"])),
                    Cell::text(yes(&tb["replaced"])),
                ]);
            }
            grids.push(g);
            let mut w = Grid::new("Warnings", &["Warning"], "None.");
            for x in r["warnings"].as_array().into_iter().flatten() {
                w.rows.push(vec![Cell::text(json_text(x))]);
            }
            grids.push(w);
            if check && job.status_str() == "succeeded" {
                let replace = req["replace"].as_bool() == Some(true);
                forms.push(FollowUp {
                    action: "/snapshots/restore".into(),
                    hidden: vec![
                        ("profile".into(), profile.clone()),
                        ("id".into(), id.clone()),
                        ("into".into(), json_text(&req["into"])),
                        ("replace".into(), replace.to_string()),
                        ("check_only".into(), "false".into()),
                    ],
                    checks: Vec::new(),
                    buttons: vec![Button::new("restore-now", "", "", "Restore now")],
                    note: if replace {
                        "The rows of the tables marked replaced are deleted first, in the same transaction.".into()
                    } else {
                        "Tables are created and filled in one transaction; a failure leaves the target as it was."
                            .into()
                    },
                });
            }
            links.push((snapshot_href(&profile, &id), format!("Snapshot {id}")));
        }
        _ => {}
    }
    links.push(("/snapshots".into(), "Back to the snapshots".into()));
    (grids, forms, links)
}

// ---------------------------------------------------------------- upgrades

/// A button of an upgrade's card: its action (the path's last part), its label,
/// and whether the upgrade's state allows it.
struct ActionButton {
    action: &'static str,
    label: &'static str,
    enabled: bool,
}

/// One upgrade's card on the Upgrades page.
struct UpgradeView {
    name: String,
    state: String,
    /// The state as a CSS class (`not started` is `not-started`).
    state_class: String,
    origin: String,
    after: String,
    /// Rows done and done plus remaining; none without `applied_upgrades`.
    progress: Option<(u64, u64)>,
    count: String,
    rate: String,
    eta: String,
    quarantined: usize,
    /// The quarantined rows shown: key, error, attempts, when.
    quarantine: Vec<(String, String, i64, String)>,
    cleanup: String,
    buttons: Vec<ActionButton>,
}

/// The upgrades of one table.
struct UpgradeTableView {
    table: String,
    upgrades: Vec<UpgradeView>,
}

/// A cleanup that passed its check and waits for the user's word.
struct CleanupConfirm {
    name: String,
    sql: String,
}

#[derive(Template)]
#[template(path = "upgrades.html")]
struct UpgradesPage {
    c: Chrome,
    error: Option<String>,
    notice: Option<String>,
    confirm: Option<CleanupConfirm>,
    /// Whether any upgrade is declared.
    declared: bool,
    /// The connection they apply to, and its URL (password hidden).
    connection: String,
    url: String,
    /// The command that starts or continues them.
    run_hint: String,
    tables: Vec<UpgradeTableView>,
}

/// `done of total rows (p%)`, or what to do when the table lacks the column.
fn upgrade_count(info: &crate::upgrades::UpgradeInfo) -> String {
    match info.progress() {
        Some((done, total)) if total > 0 => {
            format!("{done} of {total} rows ({}%)", done.saturating_mul(100) / total)
        }
        Some(_) => "no rows in its scope".into(),
        None => format!(
            "table {} has no applied_upgrades column yet: add it with `lockgate upgrade init --table {}`",
            info.status.table, info.status.table
        ),
    }
}

fn upgrade_view(info: &crate::upgrades::UpgradeInfo) -> UpgradeView {
    let s = &info.status;
    let button = |action: &'static str, label: &'static str| ActionButton {
        action,
        label,
        enabled: crate::upgrades::allowed(info, action),
    };
    let mut buttons = vec![
        button("pause", "Pause"),
        button("resume", "Resume"),
        button("cancel", "Cancel"),
        button("retry", "Retry quarantined rows"),
    ];
    if info.cleanup.is_some() {
        buttons.push(button("cleanup", "Clean up…"));
    }
    UpgradeView {
        name: s.upgrade.clone(),
        state: s.state.clone(),
        state_class: s.state.replace(' ', "-"),
        origin: info.origin.clone(),
        after: info.after.join(", "),
        progress: info.progress(),
        count: upgrade_count(info),
        rate: s
            .rows_per_second
            .map(|r| format!("{r:.1} rows/s"))
            .unwrap_or_else(|| "–".into()),
        eta: match (s.eta_seconds, s.remaining) {
            (Some(e), _) => crate::upgrades::duration_text(e),
            (None, Some(0)) => "none: no row lacks it".into(),
            _ => "–".into(),
        },
        quarantined: s.quarantined,
        quarantine: s
            .quarantine
            .iter()
            .map(|q| (q.key_text.clone(), q.error.clone(), q.attempts, q.at.clone()))
            .collect(),
        cleanup: info.cleanup.clone().unwrap_or_default(),
        buttons,
    }
}

/// The Upgrades page, with what the last action said: an error (and its status),
/// a notice, or a cleanup to confirm.
async fn upgrades_page(
    st: &Shared,
    t: &FormToken,
    mut error: Option<AppError>,
    notice: Option<String>,
    confirm: Option<CleanupConfirm>,
) -> Response {
    let conn = st.cfg.upgrades_conn();
    let mut view = UpgradesPage {
        c: chrome(st, t, "Upgrades", "upgrades"),
        error: None,
        notice,
        confirm,
        declared: !st.cfg.upgrades.is_empty(),
        connection: conn.map(|c| c.name.clone()).unwrap_or_default(),
        url: conn.map(|c| c.url.redacted()).unwrap_or_default(),
        run_hint: String::new(),
        tables: Vec::new(),
    };
    if let Some(c) = conn {
        let dir = st.cfg.upgrades_dir.display().to_string();
        view.run_hint = format!(
            "lockgate upgrade run --db '{}'{}",
            c.url.redacted(),
            if dir == "upgrades" {
                String::new()
            } else {
                format!(" --dir '{dir}'")
            }
        );
    }
    match crate::upgrades::status(st).await {
        Ok(list) => {
            for info in &list {
                let table = info.status.table.clone();
                let v = upgrade_view(info);
                match view.tables.iter_mut().find(|g| g.table == table) {
                    Some(g) => g.upgrades.push(v),
                    None => view.tables.push(UpgradeTableView {
                        table,
                        upgrades: vec![v],
                    }),
                }
            }
        }
        // The action's own error comes first; the status's is said too.
        Err(e) => {
            error = Some(match error {
                Some(mut first) => {
                    first.message = format!("{}\n{}", first.message, e.message);
                    first
                }
                None => e,
            })
        }
    }
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    view.error = error.map(|e| e.message);
    let mut resp = render(&view);
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    resp
}

/// The Upgrades page's query: what the action before the redirect did (a retry's
/// counts too).
#[derive(Deserialize, Default)]
pub struct UpgradesQuery {
    did: Option<String>,
    upgrade: Option<String>,
    tried: Option<u64>,
    upgraded: Option<u64>,
    skipped: Option<u64>,
    quarantined: Option<u64>,
    state: Option<String>,
}

/// `GET /upgrades`: every declared upgrade, per table, with its progress, rate,
/// ETA, state and quarantined rows, and buttons to pause, resume, cancel, retry the
/// quarantined rows and clean up. `app.js` keeps it current from `/api/upgrades`.
pub async fn upgrades(State(st): State<Shared>, t: FormToken, Query(q): Query<UpgradesQuery>) -> Response {
    // Only what this server says after its own actions: never text from the query.
    let notice = match (q.did.as_deref(), q.upgrade.as_deref().and_then(|n| st.cfg.upgrade(n))) {
        (Some(did), Some(u)) => match (crate::upgrades::Control::parse(did), did) {
            (Some(action), _) => Some(action.done_text(&u.name)),
            (None, "cleanup") => Some(format!(
                "{}: ran its cleanup: {}",
                u.name,
                u.cleanup.as_deref().unwrap_or_default()
            )),
            // Numbers and a known state only: the query is anyone's to write.
            (None, "retry") => Some(crate::upgrades::retry_text(&lockgate::upgrade::RetryReport {
                upgrade: u.name.clone(),
                tried: q.tried.unwrap_or(0),
                upgraded: q.upgraded.unwrap_or(0),
                skipped: q.skipped.unwrap_or(0),
                quarantined: q.quarantined.unwrap_or(0),
                state: q
                    .state
                    .as_deref()
                    .and_then(lockgate::db::upgrades::UpgradeState::parse)
                    .map_or("as below", |s| s.as_str())
                    .to_string(),
            })),
            _ => None,
        },
        _ => None,
    };
    upgrades_page(&st, &t, None, notice, None).await
}

/// `POST /upgrades/{name}/{action}`: an upgrade card's buttons (`pause`,
/// `resume`, `cancel`, `retry`, `cleanup`). Cleanup asks first: without `confirm` it only
/// checks (the library's dry run) and shows the SQL with a button to run it, or the
/// refusal (409: rows still lack the upgrade). Done, the page is shown again with
/// what happened; a refusal shows the page with the library's message.
pub async fn upgrades_action(
    State(st): State<Shared>,
    t: FormToken,
    Path((name, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> PageResult {
    let pairs = form_pairs(&body)?;
    t.check(field(&pairs, "csrf").as_deref().unwrap_or(""))?;
    let u = crate::upgrades::find(&st, &name)?;
    let back_with = |did: &str, more: &[(&str, &str)]| {
        let mut pairs = vec![("did", did), ("upgrade", u.name.as_str())];
        pairs.extend_from_slice(more);
        Redirect::to(&format!("/upgrades?{}#upgrade-{}", query_string(&pairs), u.name)).into_response()
    };
    let back = |did: &str| back_with(did, &[]);
    if let Some(control) = crate::upgrades::Control::parse(&action) {
        return Ok(match crate::upgrades::control(&st, u, control).await {
            Ok(()) => back(&action),
            Err(e) => upgrades_page(&st, &t, Some(e), None, None).await,
        });
    }
    match action.as_str() {
        "retry" => Ok(match crate::upgrades::retry(&st, u).await {
            Ok(r) => {
                let n = |v: u64| v.to_string();
                let (tried, upgraded, skipped, quarantined) =
                    (n(r.tried), n(r.upgraded), n(r.skipped), n(r.quarantined));
                back_with(
                    "retry",
                    &[
                        ("tried", &tried),
                        ("upgraded", &upgraded),
                        ("skipped", &skipped),
                        ("quarantined", &quarantined),
                        ("state", &r.state),
                    ],
                )
            }
            Err(e) => upgrades_page(&st, &t, Some(e), None, None).await,
        }),
        "cleanup" if checked(&pairs, "confirm") => Ok(match crate::upgrades::cleanup(&st, u, false).await {
            Ok(_) => back("cleanup"),
            Err(e) => upgrades_page(&st, &t, Some(e), None, None).await,
        }),
        "cleanup" => Ok(match crate::upgrades::cleanup(&st, u, true).await {
            Ok(r) => {
                let confirm = CleanupConfirm {
                    name: r.upgrade,
                    sql: r.cleanup,
                };
                upgrades_page(&st, &t, None, None, Some(confirm)).await
            }
            Err(e) => upgrades_page(&st, &t, Some(e), None, None).await,
        }),
        other => Err(AppError::not_found(format!(
            "an upgrade has no action {other:?}: pause, resume, cancel, retry or cleanup"
        ))
        .into()),
    }
}
