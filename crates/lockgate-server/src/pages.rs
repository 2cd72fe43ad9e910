//! The dashboard's pages: plain HTML from askama templates (escaped by default),
//! forms that work without JavaScript, and the little script in `assets/app.js` for
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
    view.table_names = service::tables(c).await?;
    if view.table.is_empty() {
        return Ok(render(&view));
    }
    let bq = browse_query(&q.sort, &q.desc, &q.q, &q.after, &q.before, 50)?;
    let started = Instant::now();
    let page = service::browse_table(c, &view.table, &bq).await?;
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
        Some(c) => match service::tables(c).await {
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

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    c: Chrome,
    job: Job,
    grids: Vec<Grid>,
    apply: bool,
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
    let mut apply = false;
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
            _ => {
                let (g, can_apply) = migrate_grids(r);
                grids.extend(g);
                apply = job.kind == "migrate_dry_run" && can_apply && job.status_str() == "succeeded";
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
        _ => "migrations",
    };
    Ok(render(&JobPage {
        c: chrome(&st, &t, job.title.clone(), nav),
        job,
        grids,
        apply,
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
