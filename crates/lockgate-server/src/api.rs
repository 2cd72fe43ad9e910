//! The JSON API: everything the pages do, described by the OpenAPI document at
//! `/api/openapi.json`; long operations answer 202 with a job (or, with
//! `?wait=true`, the finished job), and progress streams from `/api/events`. Also
//! oe-migration's own endpoints, `/getzip` and `POST /uploadzip`, with their contract.

use crate::error::AppError;
use crate::jobs::{Event, Job};
use crate::pages::{browse_query, count_text, dump_request, LogQuery};
use crate::service::{self, ConnectionInfo, DumpRequest, MergeRequest, MigrateFrom, RunInfo, TransferInfo};
use crate::snapshots::{self, RestoreRequest, SnapshotRequest};
use crate::state::Shared;
use crate::upgrades::{self, CleanupRequest, Control, UpgradeInfo};
use crate::upload;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use lockgate::dashboard::{Paging, RowCount};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::OpenApi;

type ApiResult<T> = Result<T, AppError>;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockgate",
        description = "Move data safely between databases, versions and deployments: the dashboard's API."
    ),
    paths(
        connections,
        runs,
        tables,
        table_page,
        transfers,
        create_export,
        export_detail,
        export_history,
        process,
        jobs,
        job,
        events,
        migrations,
        migrate,
        logs,
        dump_zip,
        generate,
        merges,
        merge_detail,
        merge_refs,
        merge_run,
        merge_undo,
        profiles,
        snapshots,
        snapshot_detail,
        snapshot_manifest,
        snapshot_file,
        snapshot_take,
        restore,
        upgrades_list,
        upgrade_pause,
        upgrade_resume,
        upgrade_cancel,
        upgrade_retry,
        upgrade_cleanup,
        getzip,
        uploadzip
    ),
    components(schemas(
        Job,
        ConnectionInfo,
        RunInfo,
        TransferInfo,
        TablePage,
        ColumnInfo,
        ErrorBody,
        Generate,
        MergeRequest,
        UndoRequest,
        MergeDefinitionInfo,
        SnapshotRequest,
        RestoreRequest,
        UpgradeInfo,
        CleanupRequest,
        UpgradeControlled,
        UpgradeRetried
    ))
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`
pub async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

/// An error's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What happened and what to do.
    pub error: String,
}

/// `?wait=true` on the operations that start jobs.
#[derive(Deserialize, Default)]
pub struct WaitQuery {
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    dry_run: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | "yes" | ""))
}

/// 202 with the job, or with `wait` the finished job (200, or 422 when it failed).
async fn job_response(st: &Shared, id: u64, wait: bool) -> Response {
    if wait {
        return match st.jobs.wait(id).await {
            Some(job) => {
                let status = match (job.status_str(), job.exit_code) {
                    ("succeeded", _) => StatusCode::OK,
                    (_, Some(code)) => AppError::from_exit(code, "").status,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, Json(job)).into_response()
            }
            None => AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "the job was lost").into_response(),
        };
    }
    let job = st.jobs.get(id);
    let mut resp = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Every configured connection, each tried.
#[utoipa::path(get, path = "/api/connections", responses((status = 200, body = Vec<ConnectionInfo>)))]
pub async fn connections(State(st): State<Shared>) -> Json<Vec<ConnectionInfo>> {
    Json(service::connections(&st).await)
}

/// The runs query.
#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<u32>,
}

/// The latest runs of every ledger, whoever started them.
#[utoipa::path(get, path = "/api/runs", params(("limit" = Option<u32>, Query, description = "at most this many (default 50)")),
    responses((status = 200, description = "`{runs: [...], errors: [...]}`")))]
pub async fn runs(State(st): State<Shared>, Query(q): Query<LimitQuery>) -> Json<serde_json::Value> {
    let (runs, errors) = service::runs(&st, q.limit.unwrap_or(50).clamp(1, 1000)).await;
    Json(serde_json::json!({ "runs": runs, "errors": errors }))
}

/// The tables of a connection.
#[utoipa::path(get, path = "/api/tables/{conn}", params(("conn" = String, Path, description = "a connection's name")),
    responses((status = 200, description = "`{tables: [...]}`"), (status = 404, body = ErrorBody)))]
pub async fn tables(State(st): State<Shared>, Path(conn): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let c = service::find_connection(&st, &conn)?;
    Ok(Json(serde_json::json!({ "tables": service::tables(&st, c).await? })))
}

/// A column of a page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its type, in Lockgate's words.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One page of a table.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TablePage {
    /// The table.
    pub table: String,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
    /// Rows, one JSON value per column.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// The cursor of the next page (`after=`), none on the last.
    pub next: Option<String>,
    /// The cursor of the previous page (`before=`), none on the first.
    pub prev: Option<String>,
    /// Rows in the table (or matching the search).
    pub total: u64,
    /// Whether `total` is exact, an estimate (`about`) or a lower bound (`at_least`).
    pub total_kind: String,
    /// `total` in words.
    pub total_text: String,
    /// The sort column, none when sorted by the key.
    pub sort: Option<String>,
    /// Descending order.
    pub descending: bool,
    /// The columns that order the pages (the key), empty when the table has none.
    pub key: Vec<String>,
}

/// The table page's query.
#[derive(Deserialize)]
pub struct PageQuery {
    sort: Option<String>,
    desc: Option<String>,
    q: Option<String>,
    after: Option<String>,
    before: Option<String>,
    per_page: Option<usize>,
}

/// One page of a table, sorted and searched on the server.
#[utoipa::path(get, path = "/api/tables/{conn}/{table}",
    params(("conn" = String, Path), ("table" = String, Path),
        ("sort" = Option<String>, Query, description = "a column of the table (checked against the schema)"),
        ("desc" = Option<bool>, Query), ("q" = Option<String>, Query, description = "text to find in any text column"),
        ("after" = Option<String>, Query, description = "the `next` cursor of the page before"),
        ("before" = Option<String>, Query, description = "the `prev` cursor of the page after"),
        ("per_page" = Option<usize>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = TablePage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn table_page(
    State(st): State<Shared>,
    Path((conn, table)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let c = service::find_connection(&st, &conn)?;
    let bq = browse_query(&q.sort, &q.desc, &q.q, &q.after, &q.before, q.per_page.unwrap_or(50))?;
    let started = std::time::Instant::now();
    let read = service::browse_table(&st, c, &table, &bq).await?;
    // The server's own time, for benchmarks and the browser's developer tools: `db`
    // all of it (the connection, the table's lookup, the page query, the count),
    // `conn` the part spent getting the connection (a pooled one, or a new one made
    // for this request: its `desc`), `retry` when the first connection was lost.
    let timing = format!(
        "db;dur={:.1}, conn;dur={:.1};desc={}{}",
        started.elapsed().as_secs_f64() * 1000.0,
        read.checkout.as_secs_f64() * 1000.0,
        if read.reused { "pooled" } else { "new" },
        if read.retried { ", retry" } else { "" }
    );
    let page = read.value;
    let (total, total_kind) = match page.total {
        RowCount::Exact(n) => (n, "exact"),
        RowCount::About(n) => (n, "about"),
        RowCount::AtLeast(n) => (n, "at_least"),
    };
    let mut resp = Json(TablePage {
        total_text: count_text(&page.total),
        table: page.table,
        columns: page
            .columns
            .iter()
            .map(|(n, k)| ColumnInfo {
                name: n.clone(),
                kind: k.describe(),
            })
            .collect(),
        rows: page
            .rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_json()).collect())
            .collect(),
        next: page.next.map(|c| c.encode()),
        prev: page.prev.map(|c| c.encode()),
        total,
        total_kind: total_kind.into(),
        sort: page.sort,
        descending: page.descending,
        key: match page.paging {
            Paging::Key { columns, .. } => columns,
            Paging::RowId => vec!["rowid".into()],
            Paging::FirstRowsOnly => Vec::new(),
        },
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&timing) {
        resp.headers_mut().insert("server-timing", v);
    }
    Ok(resp)
}

/// Every transfer with its exports and how many rows an export would take now.
#[utoipa::path(get, path = "/api/transfers", responses((status = 200, body = Vec<TransferInfo>)))]
pub async fn transfers(State(st): State<Shared>) -> Json<Vec<TransferInfo>> {
    Json(service::transfers(&st).await)
}

/// Creates an export of the transfer (a job); with no rows to export it creates
/// nothing and says so.
#[utoipa::path(post, path = "/api/transfers/{name}/exports",
    params(("name" = String, Path), ("wait" = Option<bool>, Query, description = "answer when done")),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn create_export(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let t = service::find_transfer(&st, &name)?;
    let id = service::start_create(&st, t);
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// An export with every failed row and its error.
#[utoipa::path(get, path = "/api/transfers/{name}/exports/{id}", params(("name" = String, Path), ("id" = i64, Path)),
    responses((status = 200, description = "`{export: {...}, errors: [...]}`"), (status = 404, body = ErrorBody)))]
pub async fn export_detail(
    State(st): State<Shared>,
    Path((name, id)): Path<(String, i64)>,
) -> ApiResult<Json<serde_json::Value>> {
    let t = service::find_transfer(&st, &name)?;
    let d = service::export_detail(t, id).await?;
    Ok(Json(serde_json::json!({ "export": d.export, "errors": d.errors })))
}

/// The history query.
#[derive(Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

/// Every export that attempted row `key`, with the outcome for that row.
#[utoipa::path(get, path = "/api/transfers/{name}/history", params(("name" = String, Path), ("key" = String, Query)),
    responses((status = 200, description = "the attempts, newest first"), (status = 400, body = ErrorBody)))]
pub async fn export_history(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let t = service::find_transfer(&st, &name)?;
    let key = q
        .key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AppError::bad("give the row's key: ?key=… (the key column's value)"))?;
    Ok(Json(
        serde_json::json!({ "key": key, "attempts": service::history(t, key).await? }),
    ))
}

/// Runs every pending export once (the seed's /process), as a job.
#[utoipa::path(post, path = "/api/process", params(("wait" = Option<bool>, Query)),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 422, body = Job)))]
pub async fn process(State(st): State<Shared>, Query(q): Query<WaitQuery>) -> Response {
    let id = service::start_process(&st);
    job_response(&st, id, truthy(&q.wait)).await
}

/// Jobs started from this server, newest first.
#[utoipa::path(get, path = "/api/jobs", responses((status = 200, body = Vec<Job>)))]
pub async fn jobs(State(st): State<Shared>) -> Json<Vec<Job>> {
    Json(st.jobs.list())
}

/// One job.
#[utoipa::path(get, path = "/api/jobs/{id}", params(("id" = u64, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn job(State(st): State<Shared>, Path(id): Path<u64>) -> ApiResult<Json<Job>> {
    st.jobs
        .get(id)
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("there is no job {id} (jobs are kept while the server runs)")))
}

/// Server-sent events: `event: job` with the job as JSON whenever one starts, moves
/// (at most ten times a second) or ends.
#[utoipa::path(get, path = "/api/events", responses((status = 200, description = "text/event-stream of `job` events")))]
pub async fn events(
    State(st): State<Shared>,
) -> Sse<impl Stream<Item = Result<axum::response::sse::Event, Infallible>>> {
    let rx = st.jobs.subscribe();
    let stop = st.stop.subscribe();
    let s = stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                // The server is stopping: end the stream so the shutdown can finish.
                _ = stop.wait_for(|s| *s) => return None,
            };
            match received {
                Ok(Event::Job(mut job)) => {
                    // The page reloads for the result; events carry the state only.
                    job.result = None;
                    let e = axum::response::sse::Event::default()
                        .event("job")
                        .json_data(&job)
                        .unwrap_or_default();
                    return Some((Ok(e), (rx, stop)));
                }
                // A slow reader missed some updates: the next one carries the state.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

/// The migration status: versions applied, pending, changed, partly applied.
#[utoipa::path(get, path = "/api/migrations", responses((status = 200, description = "the status report"), (status = 400, body = ErrorBody)))]
pub async fn migrations(State(st): State<Shared>) -> ApiResult<Json<lockgate::StatusReport>> {
    Ok(Json(service::migration_status(&st).await?))
}

/// Migrates, as a job: from an uploaded zip (multipart, one file) or, without a body,
/// from the server's migrations folder; `dry_run=true` computes and keeps nothing. A zip
/// holding process scripts is refused (400, naming them) unless the server allows them
/// (`[server] upload_scripts = true`); `.sql` scripts are allowed.
#[utoipa::path(post, path = "/api/migrate",
    params(("dry_run" = Option<bool>, Query), ("wait" = Option<bool>, Query)),
    request_body(content_type = "multipart/form-data", description = "a field `file` holding one zip of version folders"),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 413, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn migrate(
    State(st): State<Shared>,
    Query(q): Query<WaitQuery>,
    headers: axum::http::HeaderMap,
    multipart: Option<Multipart>,
) -> ApiResult<Response> {
    let from = match multipart {
        Some(m) => service::unpack_upload(&st, upload::read_zip(m, st.cfg.upload_limit).await?.path).await?,
        // A body that is not a multipart form would otherwise be ignored and the
        // server's folder migrated instead.
        None if has_body(&headers) => return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the zip as multipart/form-data (a field named \"file\"), or no body to migrate the server's folder",
        )),
        None => MigrateFrom::Folder,
    };
    let id = service::start_migrate(&st, from, truthy(&q.dry_run))?;
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

fn has_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The migration logs, filtered.
#[utoipa::path(get, path = "/api/logs",
    params(("type" = Option<String>, Query, description = "INFO, WARN or ERROR"), ("table" = Option<String>, Query),
        ("version" = Option<String>, Query), ("tenant" = Option<String>, Query), ("module" = Option<String>, Query),
        ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "log entries, newest first"), (status = 400, body = ErrorBody)))]
pub async fn logs(State(st): State<Shared>, Query(q): Query<LogQuery>) -> ApiResult<Json<serde_json::Value>> {
    let entries = service::logs(&st, &q.filter()?).await?;
    Ok(Json(serde_json::json!({ "logs": entries })))
}

/// Tables as one version in migrate's format, zipped: `tables=a,b`, or `all=true`
/// (with `exclude_system=true`).
#[utoipa::path(get, path = "/api/dump.zip",
    params(("tables" = Option<String>, Query, description = "comma-separated table names"), ("all" = Option<bool>, Query),
        ("exclude_system" = Option<bool>, Query)),
    responses((status = 200, content_type = "application/zip"), (status = 400, body = ErrorBody)))]
pub async fn dump_zip(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    match dump_request(raw.as_deref(), ("tables", "all", "exclude_system")) {
        Ok(req) => zip_response(&st, &req, true).await,
        Err(e) => e.into_response(),
    }
}

/// oe-migration's download: `tableList=A,B`, `exportAllTables=true`,
/// `excludeFrameworkTables=true`.
#[utoipa::path(get, path = "/getzip",
    params(("tableList" = Option<String>, Query), ("exportAllTables" = Option<bool>, Query),
        ("excludeFrameworkTables" = Option<bool>, Query)),
    responses((status = 200, content_type = "application/zip"), (status = 400, body = ErrorBody)))]
pub async fn getzip(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    match dump_request(
        raw.as_deref(),
        ("tableList", "exportAllTables", "excludeFrameworkTables"),
    ) {
        Ok(req) => zip_response(&st, &req, true).await,
        Err(e) => e.into_response(),
    }
}

/// Dumps and streams the zip; errors as JSON or as a page.
pub async fn zip_response(st: &Shared, req: &DumpRequest, json: bool) -> Response {
    let (dir, path, name) = match service::dump_zip(st, req).await {
        Ok(x) => x,
        Err(e) => return e.respond(json),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the zip: {e}")).respond(json)
        }
    };
    // The file is streamed in pieces; its folder goes when the stream ends.
    let body = stream::unfold((file, dir), |(mut file, dir)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), (file, dir)))
            }
            Err(e) => Some((Err(e), (file, dir))),
        }
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// oe-migration's upload: one zip (multipart) migrated; 200 with `migratedVersions`
/// when done, or a non-200 JSON error (400 for a zip holding process scripts, unless
/// the server allows them).
#[utoipa::path(post, path = "/uploadzip",
    request_body(content_type = "multipart/form-data", description = "one zip file"),
    responses((status = 200, description = "`{\"migratedVersions\": [...]}`"), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn uploadzip(State(st): State<Shared>, t: crate::security::FormToken, multipart: Multipart) -> Response {
    let up = match upload::read_zip(multipart, st.cfg.upload_limit).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // The upload form carries the token; scripts send none (and no browser headers).
    if let Some(token) = &up.csrf {
        if let Err(e) = t.check(token) {
            return e.into_response();
        }
    }
    let from = match service::unpack_upload(&st, up.path).await {
        Ok(from) => from,
        Err(e) => return e.into_response(),
    };
    let id = match service::start_migrate(&st, from, false) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(job) = st.jobs.wait(id).await else {
        return AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "the job was lost").into_response();
    };
    let versions = job
        .result
        .as_ref()
        .and_then(|r| r.get("migrated_versions").cloned())
        .filter(|v| !v.is_null())
        .unwrap_or_else(|| serde_json::json!([]));
    match (job.status_str(), &job.error) {
        ("succeeded", _) => (
            StatusCode::OK,
            Json(serde_json::json!({ "migratedVersions": versions, "job": job.id })),
        )
            .into_response(),
        (_, Some(e)) => AppError::from_exit(job.exit_code.unwrap_or(1), e.clone()).into_response(),
        _ => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "error": job.message.clone().unwrap_or_default(),
                "migratedVersions": versions,
                "report": job.result,
            })),
        )
            .into_response(),
    }
}

/// The generate request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Generate {
    /// How many customers, 1 to 500.
    pub n: i64,
}

/// Demo mode: adds `n` (1 to 500) sample customers to the demo's source.
#[utoipa::path(post, path = "/api/demo/generate", request_body = Generate, params(("wait" = Option<bool>, Query)),
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn generate(
    State(st): State<Shared>,
    Query(q): Query<WaitQuery>,
    Json(g): Json<Generate>,
) -> ApiResult<Response> {
    let id = service::start_generate(&st, g.n)?;
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// The merges' queries: the connection, a definition, a table, how many.
#[derive(Deserialize, Default)]
pub struct MergeQuery {
    conn: Option<String>,
    def: Option<String>,
    table: Option<String>,
    limit: Option<u32>,
    wait: Option<String>,
}

fn merge_def<'a>(st: &'a Shared, def: &Option<String>) -> ApiResult<Option<&'a crate::state::MergeDefinition>> {
    match def.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(name) => service::find_merge_definition(st, name).map(Some),
        None => Ok(None),
    }
}

/// A definition as `/api/merges` lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MergeDefinitionInfo {
    /// Its name (`[merges.NAME]`).
    pub name: String,
    /// Its connection, when it has one (its `db`, else the server's default).
    pub conn: Option<String>,
    /// Its table.
    pub table: Option<String>,
}

/// The merges recorded in a connection's database (`lockgate merge history`),
/// newest first, and the merge definitions this server offers.
#[utoipa::path(get, path = "/api/merges",
    params(("conn" = Option<String>, Query, description = "a connection's name (default the server's default database)"),
        ("limit" = Option<u32>, Query, description = "at most this many (default 50)")),
    responses((status = 200, description = "`{connection, merges: [...], definitions: [...]}`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn merges(State(st): State<Shared>, Query(q): Query<MergeQuery>) -> ApiResult<Json<serde_json::Value>> {
    let def = merge_def(&st, &q.def)?;
    let c = service::merge_connection(&st, q.conn.as_deref(), def)?;
    let history = service::merge_history(c, q.limit.unwrap_or(50).clamp(1, 1000)).await?;
    let definitions: Vec<MergeDefinitionInfo> = st
        .cfg
        .merges
        .iter()
        .map(|m| MergeDefinitionInfo {
            name: m.name.clone(),
            conn: m.conn.and_then(|i| st.cfg.connections.get(i)).map(|c| c.name.clone()),
            table: m.spec.table.clone(),
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "connection": c.name, "merges": history, "definitions": definitions }),
    ))
}

/// One merge (`lockgate merge show`): its options, counts, conflicts, rows merged
/// away and its first 1000 row-level changes (`changes_truncated` when there are more).
#[utoipa::path(get, path = "/api/merges/{id}",
    params(("id" = i64, Path), ("conn" = Option<String>, Query, description = "a connection's name")),
    responses((status = 200, description = "the merge"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn merge_detail(
    State(st): State<Shared>,
    Path(id): Path<i64>,
    Query(q): Query<MergeQuery>,
) -> ApiResult<Json<lockgate::merge::MergeDetail>> {
    let c = service::merge_connection(&st, q.conn.as_deref(), merge_def(&st, &q.def)?)?;
    Ok(Json(service::merge_show(c, id).await?))
}

/// Every reference to a table (`lockgate merge refs`): foreign keys and the
/// definition's declared references, with the unique keys that include them.
#[utoipa::path(get, path = "/api/merges/refs",
    params(("conn" = Option<String>, Query, description = "a connection's name (default the definition's)"),
        ("table" = Option<String>, Query, description = "the table (default the definition's)"),
        ("def" = Option<String>, Query, description = "a merge definition")),
    responses((status = 200, description = "`{table, references: [...]}`"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn merge_refs(State(st): State<Shared>, Query(q): Query<MergeQuery>) -> ApiResult<Json<serde_json::Value>> {
    let def = merge_def(&st, &q.def)?;
    let c = service::merge_connection(&st, q.conn.as_deref(), def)?;
    let (table, refs) = service::merge_refs(c, def, q.table.clone()).await?;
    Ok(Json(
        serde_json::json!({ "connection": c.name, "table": table, "references": refs }),
    ))
}

/// A JSON body, or 400 saying what is wrong with it.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad(format!("{what}: {e} (see /api/openapi.json for its fields)")))
}

/// Merges rows (or previews it) as a job: 202 with the job, or with `?wait=true`
/// the finished job: 200 when it completed or previewed (a preview's result also
/// holds its first 1000 changes and `changes_truncated`), 400 for bad input (the
/// engine's message in `error`), 409 when conflicts aborted it (its report, status
/// `aborted_conflicts`, in `result`).
#[utoipa::path(post, path = "/api/merges", request_body = MergeRequest,
    params(("wait" = Option<bool>, Query, description = "answer when done")),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = Job)))]
pub async fn merge_run(
    State(st): State<Shared>,
    Query(q): Query<WaitQuery>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let req: MergeRequest = json_body(&body, "the merge request")?;
    let id = service::start_merge(&st, req)?;
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// The undo request (an empty body is `{}`).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoRequest {
    /// Only list what would be put back and what changed since.
    #[serde(default)]
    pub preview: bool,
    /// Put rows back even where they changed since the merge.
    #[serde(default)]
    pub overwrite: bool,
}

/// Undoes a completed merge (`lockgate merge undo`) as a job: 202, or with
/// `?wait=true` 200 when undone (or previewed), 409 when rows changed since the
/// merge stopped it (its report, status `changed`, lists them: undo again with
/// `overwrite`), 400 for a merge that cannot be undone.
#[utoipa::path(post, path = "/api/merges/{id}/undo", request_body = UndoRequest,
    params(("id" = i64, Path), ("conn" = Option<String>, Query, description = "a connection's name"),
        ("wait" = Option<bool>, Query, description = "answer when done")),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = Job)))]
pub async fn merge_undo(
    State(st): State<Shared>,
    Path(id): Path<i64>,
    Query(q): Query<MergeQuery>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let req: UndoRequest = if body.iter().all(u8::is_ascii_whitespace) {
        UndoRequest::default()
    } else {
        json_body(&body, "the undo request")?
    };
    let c = service::merge_connection(&st, q.conn.as_deref(), merge_def(&st, &q.def)?)?;
    let id = service::start_undo(&st, c, id, req.preview, req.overwrite);
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// Every data profile (`[profiles.NAME]` in lockgate.toml, or pinned in the
/// migrations folder's `profiles/`) with its store, newest snapshot, its size and
/// module versions (`lockgate profile list`); a store that cannot be read is said
/// in that profile's `error`.
#[utoipa::path(get, path = "/api/profiles",
    responses((status = 200, description = "`{profiles: [{profile, store, pinned, latest, snapshots, latest_bytes, modules, error}]}`"),
        (status = 400, body = ErrorBody)))]
pub async fn profiles(State(st): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(serde_json::json!({ "profiles": snapshots::profiles(&st).await? })))
}

/// The snapshots query.
#[derive(Deserialize)]
pub struct SnapshotsQuery {
    profile: Option<String>,
}

/// A profile's snapshots, oldest first (`lockgate snapshot list --profile NAME`).
#[utoipa::path(get, path = "/api/snapshots",
    params(("profile" = String, Query, description = "the profile")),
    responses((status = 200, description = "`{profile, snapshots: [{id, created, engine, tables, rows, stored_bytes, modules, subset, masked}]}`"),
        (status = 400, body = ErrorBody, description = "no or an unknown profile (`errors` lists the problems)")))]
pub async fn snapshots(
    State(st): State<Shared>,
    Query(q): Query<SnapshotsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let profile = q
        .profile
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AppError::bad("say which profile: ?profile=NAME (GET /api/profiles lists them)"))?;
    let list = snapshots::snapshots(&st, profile).await?;
    Ok(Json(serde_json::json!({ "profile": profile, "snapshots": list })))
}

/// One snapshot's manifest (`lockgate snapshot show`): its source, module
/// versions, and per table the definition, rows, sizes, checksum and data file.
#[utoipa::path(get, path = "/api/snapshots/{profile}/{id}", params(("profile" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the manifest"), (status = 400, body = ErrorBody)))]
pub async fn snapshot_detail(
    State(st): State<Shared>,
    Path((profile, id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(snapshots::show(&st, &profile, &id).await?))
}

/// A stored file streamed as a download (memory: one chunk of it at a time).
async fn file_download(
    st: &Shared,
    profile: &str,
    id: &str,
    key: &str,
    content_type: &'static str,
) -> ApiResult<Response> {
    let (stream, name) = snapshots::open_file(st, profile, id, key).await?;
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Downloads a snapshot's `manifest.json` as stored.
#[utoipa::path(get, path = "/api/snapshots/{profile}/{id}/manifest.json", params(("profile" = String, Path), ("id" = String, Path)),
    responses((status = 200, content_type = "application/json"), (status = 400, body = ErrorBody)))]
pub async fn snapshot_manifest(
    State(st): State<Shared>,
    Path((profile, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    file_download(&st, &profile, &id, "manifest.json", "application/json").await
}

/// Downloads one of a snapshot's stored files, by its key in the manifest (a
/// table's `file`, `data/0001-customers.tsv.zst`, or a media file's `key`),
/// streamed. Keys the manifest does not list are 404.
#[utoipa::path(get, path = "/api/snapshots/{profile}/{id}/files/{key}",
    params(("profile" = String, Path), ("id" = String, Path), ("key" = String, Path, description = "the file's key in the manifest; may hold `/`")),
    responses((status = 200, content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn snapshot_file(
    State(st): State<Shared>,
    Path((profile, id, key)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    file_download(&st, &profile, &id, &key, "application/octet-stream").await
}

/// Takes a snapshot (`lockgate snapshot create --profile NAME`) as a job: 202
/// with the job (progress over `/api/events`), or with `?wait=true` the finished
/// job: 200 with its report, 400 when the engine found bad input (the job's
/// `result.errors` lists every problem). An unknown profile is 400 at once.
#[utoipa::path(post, path = "/api/snapshots", request_body = SnapshotRequest,
    params(("wait" = Option<bool>, Query, description = "answer when done")),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn snapshot_take(
    State(st): State<Shared>,
    Query(q): Query<WaitQuery>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let req: SnapshotRequest = json_body(&body, "the snapshot request")?;
    let id = snapshots::start_snapshot(&st, req)?;
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// Restores a snapshot into one of the server's connections (`lockgate
/// restore`) as a job (`restore`, or `restore_check` with `check_only`, which
/// checks the snapshot, its files and the target and writes nothing: run it
/// first). 202, or with `?wait=true` the finished job: 200 with its report
/// (tables created, filled, replaced; warnings), 400 when the check found
/// problems (`result.errors` lists them: a table with rows without `replace`,
/// types the target cannot hold, an unknown id, a damaged file).
#[utoipa::path(post, path = "/api/restores", request_body = RestoreRequest,
    params(("wait" = Option<bool>, Query, description = "answer when done")),
    responses((status = 202, body = Job), (status = 200, body = Job), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn restore(State(st): State<Shared>, Query(q): Query<WaitQuery>, body: bytes::Bytes) -> ApiResult<Response> {
    let req: RestoreRequest = json_body(&body, "the restore request")?;
    let id = snapshots::start_restore(&st, req)?;
    Ok(job_response(&st, id, truthy(&q.wait)).await)
}

/// Every declared upgrade (`[upgrades.NAME]` in lockgate.toml, `upgrades/NAME.toml`)
/// with its status, as `lockgate upgrade status --json` gives it, in dependency order:
/// state, rows done and remaining, rate, ETA, and the quarantined rows with their
/// errors. `connection` names the database they apply to.
#[utoipa::path(get, path = "/api/upgrades",
    responses((status = 200, description = "`{connection, upgrades: [UpgradeInfo]}`"),
        (status = 400, body = ErrorBody, description = "upgrades are declared but no database is configured"),
        (status = 503, body = ErrorBody, description = "the database cannot be reached")))]
pub async fn upgrades_list(State(st): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    let list = upgrades::status(&st).await?;
    let connection = st.cfg.upgrades_conn().map(|c| c.name.clone());
    Ok(Json(serde_json::json!({ "connection": connection, "upgrades": list })))
}

/// What a pause, resume or cancel did: what happened, and the upgrade's status as
/// the ledger has it now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UpgradeControlled {
    /// What happened.
    pub message: String,
    /// The upgrade's status now.
    pub upgrade: UpgradeInfo,
}

async fn upgrade_control(st: &Shared, name: &str, action: Control) -> ApiResult<Json<UpgradeControlled>> {
    let u = upgrades::find(st, name)?;
    upgrades::control(st, u, action).await?;
    Ok(Json(UpgradeControlled {
        message: action.done_text(&u.name),
        upgrade: upgrades::status_of(st, u).await?,
    }))
}

/// Pauses an upgrade (`lockgate upgrade pause`): a running upgrader, wherever it
/// runs, stops before its next batch, and its cursor stays for the next run.
#[utoipa::path(post, path = "/api/upgrades/{name}/pause", params(("name" = String, Path, description = "the upgrade")),
    responses((status = 200, body = UpgradeControlled),
        (status = 400, body = ErrorBody, description = "it is complete, or its definition changed since it started"),
        (status = 404, body = ErrorBody)))]
pub async fn upgrade_pause(State(st): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<UpgradeControlled>> {
    upgrade_control(&st, &name, Control::Pause).await
}

/// Resumes a paused or cancelled upgrade (`lockgate upgrade resume`): it becomes
/// pending, and the next `lockgate upgrade run` continues it from its cursor.
#[utoipa::path(post, path = "/api/upgrades/{name}/resume", params(("name" = String, Path, description = "the upgrade")),
    responses((status = 200, body = UpgradeControlled), (status = 400, body = ErrorBody, description = "it is complete"),
        (status = 404, body = ErrorBody)))]
pub async fn upgrade_resume(State(st): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<UpgradeControlled>> {
    upgrade_control(&st, &name, Control::Resume).await
}

/// Cancels an upgrade (`lockgate upgrade cancel`): a running upgrader stops before
/// its next batch, and no run takes it up until it is resumed.
#[utoipa::path(post, path = "/api/upgrades/{name}/cancel", params(("name" = String, Path, description = "the upgrade")),
    responses((status = 200, body = UpgradeControlled), (status = 400, body = ErrorBody, description = "it is complete"),
        (status = 404, body = ErrorBody)))]
pub async fn upgrade_cancel(State(st): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<UpgradeControlled>> {
    upgrade_control(&st, &name, Control::Cancel).await
}

/// What a retry did, and the upgrade's status now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UpgradeRetried {
    /// What happened.
    pub message: String,
    /// `{upgrade, tried, upgraded, skipped, quarantined, state}`: the rows tried,
    /// upgraded now, no longer needing it (gone, out of scope, upgraded meanwhile),
    /// and still quarantined (with their new errors), and the state afterwards.
    #[schema(value_type = Object)]
    pub retry: lockgate::upgrade::RetryReport,
    /// The upgrade's status now (its quarantine lists the rows that failed again).
    pub upgrade: UpgradeInfo,
}

/// Tries an upgrade's quarantined rows again, each alone (`lockgate upgrade
/// retry`): a row upgraded now, or no longer needing it, leaves the quarantine; one
/// that fails again stays with its new error and one more attempt. When no row in
/// scope lacks it afterwards, it is complete.
#[utoipa::path(post, path = "/api/upgrades/{name}/retry", params(("name" = String, Path, description = "the upgrade")),
    responses((status = 200, body = UpgradeRetried),
        (status = 400, body = ErrorBody, description = "it has not run yet, or its definition changed since it started"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a run of it holds its lock: pause it, or retry once the run ends")))]
pub async fn upgrade_retry(State(st): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<UpgradeRetried>> {
    let u = upgrades::find(&st, &name)?;
    let retry = upgrades::retry(&st, u).await?;
    Ok(Json(UpgradeRetried {
        message: upgrades::retry_text(&retry),
        retry,
        upgrade: upgrades::status_of(&st, u).await?,
    }))
}

/// Runs an upgrade's declared cleanup SQL (`lockgate upgrade cleanup`) once a count
/// over its scope finds no row without it and none quarantined; `dry_run` (in the
/// query or the body) checks only. 409 while rows lack it, with how many and why
/// (not run yet, not reached yet, or written since by an application).
#[utoipa::path(post, path = "/api/upgrades/{name}/cleanup", request_body = CleanupRequest,
    params(("name" = String, Path, description = "the upgrade"),
        ("dry_run" = Option<bool>, Query, description = "check only; run nothing")),
    responses((status = 200, description = "`{upgrade, cleanup, ran}`: the SQL, and whether it ran (false with dry_run)"),
        (status = 400, body = ErrorBody, description = "it declares no cleanup, or its table has no applied_upgrades column"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "rows in its scope still lack it, or are quarantined: nothing was run")))]
pub async fn upgrade_cleanup(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
    body: bytes::Bytes,
) -> ApiResult<Json<lockgate::upgrade::CleanupReport>> {
    let u = upgrades::find(&st, &name)?;
    let req: CleanupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CleanupRequest::default()
    } else {
        json_body(&body, "the cleanup request")?
    };
    let dry_run = req.dry_run || truthy(&q.dry_run);
    Ok(Json(upgrades::cleanup(&st, u, dry_run).await?))
}
