//! `migrate`, `status` and `rollback` end to end on each engine, from oe-migration
//! `db/` folders built in temporary folders by small builders: idempotency, every
//! meta.json option, tenants, ddl back-fill, record validation, version order,
//! scripts (SQL, shell, oe-style JS), rollback and its conflicts, dry runs, bad input
//! of every kind (folders and zips), zips, and the module's job lock.

use crate::support::*;
use lockgate::db::ledger::{Holder, Ledger};
use lockgate::db::versions::{self, LogEntry, LogFilter};
use lockgate::db::writer::OnError;
use lockgate::db::{DbError, Engine};
use lockgate::migrate::{StepReport, VersionStatus};
use lockgate::{MigrateError, MigrateOptions, MigrateReport, RollbackOptions, StatusOptions, StatusReport};
use lockgate_bundle::{Version, ZipLimits};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// A `db/` folder in a temporary folder, written file by file.
pub(crate) struct Bundle {
    tmp: tempfile::TempDir,
}

impl Bundle {
    pub(crate) fn new() -> Bundle {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("db")).unwrap();
        Bundle { tmp }
    }

    /// The `db/` folder.
    pub(crate) fn root(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    /// A path beside the `db/` folder (script outputs, zips).
    fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes `db/{rel}`, creating its folders.
    pub(crate) fn put(&self, rel: &str, body: impl AsRef<[u8]>) -> &Bundle {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        self
    }

    /// Writes `db/{rel}` as JSON.
    pub(crate) fn json(&self, rel: &str, value: Json) -> &Bundle {
        self.put(rel, serde_json::to_string_pretty(&value).unwrap())
    }

    /// Options for this folder: short script and lock timeouts.
    pub(crate) fn opts(&self) -> MigrateOptions {
        MigrateOptions {
            dir: self.root(),
            script_timeout: Duration::from_secs(2),
            lock_timeout: Duration::from_secs(60),
            ..MigrateOptions::default()
        }
    }
}

/// The contexts every meta.json here uses.
pub(crate) fn contexts() -> Json {
    json!({
        "/default": {"id": 0, "tenantId": "/default", "remoteUser": "defaultuser"},
        "/default/t1": {"id": 1, "tenantId": "/default/t1", "remoteUser": "t1user"}
    })
}

/// A meta.json with the usual contexts and these entries.
pub(crate) fn meta(files: Json) -> Json {
    json!({"contexts": contexts(), "files": files})
}

/// A data entry in context `/default`.
pub(crate) fn entry(model: &str, file: &str) -> Json {
    json!({"model": model, "file": file, "ctxId": "/default"})
}

/// A data entry with extra keys.
pub(crate) fn entry_with(model: &str, file: &str, extra: Json) -> Json {
    let mut e = entry(model, file);
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e
}

/// `item`: id, name (required, at most 50), qty.
pub(crate) const ITEM_MODEL: &str = r#"{"name": "item", "properties": {
  "id": {"type": "integer", "id": true},
  "name": {"type": "string", "required": true, "max": 50},
  "qty": "integer"}}"#;

/// `tag`: id, label.
const TAG_MODEL: &str = r#"{"name": "tag", "properties": {
  "id": {"type": "integer", "id": true},
  "label": {"type": "string", "max": 50}}}"#;

/// The rows of version 1.0.0 of [`item_bundle`].
pub(crate) const BASE_ITEMS: [&str; 3] = ["1|a|1", "2|b|2", "3|c|3"];
const BASE_TAGS: [&str; 2] = ["1|red", "2|blue"];

/// `models/` with item and tag, and version 1.0.0 loading three items and two tags.
pub(crate) fn item_bundle() -> Bundle {
    let b = Bundle::new();
    b.put("models/item.json", ITEM_MODEL)
        .put("models/tag.json", TAG_MODEL)
        .json(
            "1.0.0/meta.json",
            meta(json!([entry("item", "default/item.json"), entry("tag", "default/tag.json")])),
        )
        .json(
            "1.0.0/default/item.json",
            json!([{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}, {"id": 3, "name": "c", "qty": 3}]),
        )
        .json(
            "1.0.0/default/tag.json",
            json!([{"id": 1, "label": "red"}, {"id": 2, "label": "blue"}]),
        );
    b
}

/// A gzip stream of `data` (stored deflate blocks: valid gzip, no compressor needed).
fn gzip(data: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            }
        }
        !c
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// One entry of a hand-made zip.
enum ZipEntry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// Writes a zip of `entries` (names as given, even hostile ones).
fn make_zip(path: &Path, entries: &[ZipEntry<'_>]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for e in entries {
        match e {
            ZipEntry::File(name, body) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(body).unwrap();
            }
            ZipEntry::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
        }
    }
    zip.finish().unwrap();
}

// ---------------------------------------------------------------------------
// Running and observing
// ---------------------------------------------------------------------------

pub(crate) async fn run(
    db: &TestDb,
    b: &Bundle,
    tweak: impl FnOnce(&mut MigrateOptions),
) -> Result<MigrateReport, MigrateError> {
    let mut opts = b.opts();
    tweak(&mut opts);
    lockgate::migrate(&db.url, &opts, None).await
}

/// Runs and expects a report (not an error).
pub(crate) async fn run_ok(db: &TestDb, b: &Bundle, tweak: impl FnOnce(&mut MigrateOptions)) -> MigrateReport {
    let engine = db.url.engine;
    run(db, b, tweak)
        .await
        .unwrap_or_else(|e| panic!("{engine}: migrate failed: {e}"))
}

async fn status(db: &TestDb, b: &Bundle) -> StatusReport {
    lockgate::status(
        &db.url,
        &StatusOptions {
            dir: Some(b.root()),
            ..StatusOptions::default()
        },
    )
    .await
    .unwrap()
}

/// What a test compares to say "nothing changed": the module's version, the
/// versions the ledger knows (with their status) and every table's rows.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) version: Option<String>,
    pub(crate) applied: Vec<String>,
    pub(crate) tables: Vec<(String, Option<Vec<String>>)>,
}

impl Snapshot {
    pub(crate) fn table(&self, name: &str) -> Vec<String> {
        self.tables
            .iter()
            .find(|(t, _)| t == name)
            .and_then(|(_, rows)| rows.clone())
            .unwrap_or_else(|| panic!("table {name} does not exist: {self:?}"))
    }
}

pub(crate) async fn snapshot(db: &TestDb, tables: &[&str]) -> Snapshot {
    let mut ledger = Ledger::open(&db.url).await.unwrap();
    let conn = ledger.conn();
    let version = versions::module_version(conn, "./").await.unwrap();
    let mut applied: Vec<String> = versions::applied_versions(conn, "./")
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{}:{}", a.version, a.status))
        .collect();
    applied.sort();
    let mut out = Vec::new();
    for t in tables {
        out.push((t.to_string(), table_rows(conn, t).await));
    }
    Snapshot {
        version,
        applied,
        tables: out,
    }
}

pub(crate) async fn logs(db: &TestDb, version: &str, types: &[&str]) -> Vec<LogEntry> {
    let mut ledger = Ledger::open(&db.url).await.unwrap();
    versions::read_logs(
        ledger.conn(),
        &LogFilter {
            module: Some("./".into()),
            version: Some(version.into()),
            types: types.iter().map(|t| t.to_string()).collect(),
            ..LogFilter::default()
        },
    )
    .await
    .unwrap()
}

pub(crate) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn versions_of(list: &[&str]) -> Option<Vec<String>> {
    Some(strings(list))
}

/// A data step's counts: (file, read, inserted, updated, unchanged, deleted).
fn counts(s: &StepReport) -> (String, u64, u64, u64, u64, u64) {
    (
        s.file.clone(),
        s.rows_read,
        s.inserted,
        s.updated,
        s.unchanged,
        s.deleted,
    )
}

pub(crate) fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// 1. Idempotency
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_again_changes_nothing_and_force_reapplies_unchanged() {
    let b = item_bundle();
    b.json("1.1.0/meta.json", meta(json!([entry("item", "default/more.json")])))
        .json("1.1.0/default/more.json", json!([{"id": 4, "name": "d", "qty": 4}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.old_version, None, "{engine}");
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0", "1.1.0"]), "{engine}");
        assert_eq!(r.new_version.as_deref(), Some("1.1.0"), "{engine}");
        assert_eq!(r.exit_code(), 0, "{engine}");
        let first = snapshot(&db, &["item", "tag"]).await;
        assert_eq!(
            first.table("item"),
            strings(&["1|a|1", "2|b|2", "3|c|3", "4|d|4"]),
            "{engine}"
        );
        assert_eq!(first.table("tag"), strings(&BASE_TAGS), "{engine}");
        assert_eq!(first.version.as_deref(), Some("1.1.0"), "{engine}");

        // Nothing pending: nothing migrated, nothing changed.
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, None, "{engine}");
        assert_eq!(r.old_version.as_deref(), Some("1.1.0"), "{engine}");
        assert_eq!(r.new_version.as_deref(), Some("1.1.0"), "{engine}");
        assert!(r.versions.is_empty(), "{engine}: {:?}", r.versions);
        assert_eq!(snapshot(&db, &["item", "tag"]).await, first, "{engine}");

        // force, twice: every version again, the same tables, and nothing to write.
        for round in 1..=2 {
            let r = run_ok(&db, &b, |o| o.force = true).await;
            assert_eq!(
                r.migrated_versions,
                versions_of(&["1.0.0", "1.1.0"]),
                "{engine} force {round}"
            );
            assert_eq!(r.new_version.as_deref(), Some("1.1.0"), "{engine} force {round}");
            assert_eq!(snapshot(&db, &["item", "tag"]).await, first, "{engine} force {round}");
            let data: Vec<&StepReport> = r
                .versions
                .iter()
                .flat_map(|v| &v.steps)
                .filter(|s| s.kind == "data")
                .collect();
            assert_eq!(data.len(), 3, "{engine} force {round}: {data:?}");
            for s in data {
                assert_eq!(
                    (s.inserted, s.updated, s.deleted, s.unchanged),
                    (0, 0, 0, s.rows_read),
                    "{engine} force {round}: {s:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Every meta.json option
// ---------------------------------------------------------------------------

/// Version 2.0.0 over [`item_bundle`], and what the tables hold after it.
struct OptionCase {
    name: &'static str,
    meta: Json,
    files: Vec<(&'static str, Vec<u8>)>,
    on_error: Option<OnError>,
    /// Whether 2.0.0 is applied (else it fails and leaves nothing).
    applied: bool,
    items: Vec<&'static str>,
    tags: Vec<&'static str>,
    /// Fragments of warnings the report must hold (unknown keys).
    warns: &'static [&'static str],
}

fn option_cases() -> Vec<OptionCase> {
    let with = |extra: &[&'static str]| {
        BASE_ITEMS
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>()
    };
    let j = |v: Json| v.to_string().into_bytes();
    let new_items = j(json!([{"id": 7, "name": "g", "qty": 7}, {"id": 8, "name": "h"}]));
    let one_bad = j(json!([{"id": 7, "name": "g", "qty": 7}, {"id": 8, "qty": 8}]));
    vec![
        OptionCase {
            name: "clearTables true empties the tables the version loads, and only those",
            meta: json!({"clearTables": true, "contexts": contexts(), "files": [entry("item", "default/new.json")]}),
            files: vec![("default/new.json", j(json!([{"id": 9, "name": "z"}])))],
            on_error: None,
            applied: true,
            items: vec!["9|z|NULL"],
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "clearTables as a list empties the tables it names",
            meta: json!({"clearTables": ["tag"], "contexts": contexts(), "files": [entry("item", "default/new.json")]}),
            files: vec![("default/new.json", j(json!([{"id": 9, "name": "z"}])))],
            on_error: None,
            applied: true,
            items: with(&["9|z|NULL"]),
            tags: vec![],
            warns: &[],
        },
        OptionCase {
            name: "enabled false skips the entry",
            meta: meta(json!([entry_with(
                "item",
                "default/new.json",
                json!({"enabled": false})
            )])),
            files: vec![("default/new.json", j(json!([{"id": 9, "name": "z"}])))],
            on_error: None,
            applied: true,
            items: BASE_ITEMS.to_vec(),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "enabled false skips a script entry too",
            meta: meta(
                json!([{"file": "default/wipe.sql", "enabled": false}, {"file": "default/fail.sh", "enabled": false}]),
            ),
            files: vec![
                ("default/wipe.sql", b"DELETE FROM item;".to_vec()),
                ("default/fail.sh", b"exit 1\n".to_vec()),
            ],
            on_error: None,
            applied: true,
            items: BASE_ITEMS.to_vec(),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "updateAttributes with key updates the fields given, found by that key",
            meta: meta(json!([entry_with(
                "item",
                "default/u.json",
                json!({"updateAttributes": true, "key": "name"})
            )])),
            files: vec![("default/u.json", j(json!([{"name": "b", "qty": 20}])))],
            on_error: None,
            applied: true,
            items: vec!["1|a|1", "2|b|20", "3|c|3"],
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "mode upsert updates and inserts, keeping the columns not given",
            meta: meta(json!([entry_with("item", "default/u.json", json!({"mode": "upsert"}))])),
            files: vec![(
                "default/u.json",
                j(json!([{"id": 1, "name": "A"}, {"id": 4, "name": "d", "qty": 4}])),
            )],
            on_error: None,
            applied: true,
            items: vec!["1|A|1", "2|b|2", "3|c|3", "4|d|4"],
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "mode update changes the given fields only",
            meta: meta(json!([entry_with("item", "default/u.json", json!({"mode": "update"}))])),
            files: vec![("default/u.json", j(json!([{"id": 1, "qty": 10}])))],
            on_error: None,
            applied: true,
            items: vec!["1|a|10", "2|b|2", "3|c|3"],
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "mode insert-missing leaves existing rows alone",
            meta: meta(json!([entry_with(
                "item",
                "default/u.json",
                json!({"mode": "insert-missing"})
            )])),
            files: vec![(
                "default/u.json",
                j(json!([{"id": 1, "name": "X"}, {"id": 5, "name": "e"}])),
            )],
            on_error: None,
            applied: true,
            items: with(&["5|e|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "mode sync deletes the rows of that table the file lacks",
            meta: meta(json!([entry_with("item", "default/u.json", json!({"mode": "sync"}))])),
            files: vec![(
                "default/u.json",
                j(json!([{"id": 1, "name": "a", "qty": 1}, {"id": 6, "name": "f"}])),
            )],
            on_error: None,
            applied: true,
            items: vec!["1|a|1", "6|f|NULL"],
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "format given explicitly for a file with an odd extension",
            meta: meta(json!([entry_with(
                "item",
                "default/items.txt",
                json!({"format": "ndjson"})
            )])),
            files: vec![(
                "default/items.txt",
                b"{\"id\": 7, \"name\": \"g\", \"qty\": 7}\n{\"id\": 8, \"name\": \"h\"}\n".to_vec(),
            )],
            on_error: None,
            applied: true,
            items: with(&["7|g|7", "8|h|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "CSV (an unquoted empty field is NULL)",
            meta: meta(json!([entry("item", "default/items.csv")])),
            files: vec![("default/items.csv", b"id,name,qty\n7,g,7\n8,h,\n".to_vec())],
            on_error: None,
            applied: true,
            items: with(&["7|g|7", "8|h|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "NDJSON",
            meta: meta(json!([entry("item", "default/items.ndjson")])),
            files: vec![(
                "default/items.ndjson",
                b"{\"id\": 7, \"name\": \"g\", \"qty\": 7}\n{\"id\": 8, \"name\": \"h\"}\n".to_vec(),
            )],
            on_error: None,
            applied: true,
            items: with(&["7|g|7", "8|h|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "gzipped NDJSON and CSV",
            meta: meta(json!([
                entry("item", "default/items.ndjson.gz"),
                entry("tag", "default/tags.csv.gz")
            ])),
            files: vec![
                (
                    "default/items.ndjson.gz",
                    gzip(b"{\"id\": 7, \"name\": \"g\", \"qty\": 7}\n{\"id\": 8, \"name\": \"h\"}\n"),
                ),
                ("default/tags.csv.gz", gzip(b"id,label\n3,green\n")),
            ],
            on_error: None,
            applied: true,
            items: with(&["7|g|7", "8|h|NULL"]),
            tags: vec!["1|red", "2|blue", "3|green"],
            warns: &[],
        },
        OptionCase {
            name: "gzipped JSON array",
            meta: meta(json!([entry("item", "default/items.json.gz")])),
            files: vec![("default/items.json.gz", gzip(&new_items))],
            on_error: None,
            applied: true,
            items: with(&["7|g|7", "8|h|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "onError skip in meta.json skips the bad record and applies the rest",
            meta: json!({"onError": "skip", "contexts": contexts(), "files": [entry("item", "default/new.json")]}),
            files: vec![("default/new.json", one_bad.clone())],
            on_error: None,
            applied: true,
            items: with(&["7|g|7"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "the on_error option skip does the same when meta.json sets no policy",
            meta: meta(json!([entry("item", "default/new.json")])),
            files: vec![("default/new.json", one_bad.clone())],
            on_error: Some(OnError::Skip),
            applied: true,
            items: with(&["7|g|7"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "meta.json's onError rollback wins over the on_error option",
            meta: json!({"onError": "rollback", "contexts": contexts(), "files": [entry("item", "default/new.json")]}),
            files: vec![("default/new.json", one_bad.clone())],
            on_error: Some(OnError::Skip),
            applied: false,
            items: BASE_ITEMS.to_vec(),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "an entry's onError wins over meta.json's",
            meta: json!({"onError": "rollback", "contexts": contexts(),
                "files": [entry_with("item", "default/new.json", json!({"onError": "skip"}))]}),
            files: vec![("default/new.json", one_bad)],
            on_error: None,
            applied: true,
            items: with(&["7|g|7"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "a meta.json without files loads nothing and is recorded",
            meta: json!({}),
            files: vec![],
            on_error: None,
            applied: true,
            items: BASE_ITEMS.to_vec(),
            tags: BASE_TAGS.to_vec(),
            warns: &[],
        },
        OptionCase {
            name: "unknown keys are warnings naming meta.json, not errors",
            meta: json!({"clearTabels": true, "contexts": contexts(),
                "files": [entry_with("item", "default/new.json", json!({"skipValidaton": true}))]}),
            files: vec![("default/new.json", j(json!([{"id": 9, "name": "z"}])))],
            on_error: None,
            applied: true,
            items: with(&["9|z|NULL"]),
            tags: BASE_TAGS.to_vec(),
            warns: &[
                "2.0.0/meta.json: unknown key \"clearTabels\"",
                "files[0]: unknown key \"skipValidaton\"",
            ],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meta_json_option() {
    let cases: Vec<(OptionCase, Bundle)> = option_cases()
        .into_iter()
        .map(|c| {
            let b = item_bundle();
            b.json("2.0.0/meta.json", c.meta.clone());
            for (rel, body) in &c.files {
                b.put(&format!("2.0.0/{rel}"), body);
            }
            (c, b)
        })
        .collect();
    for engine in ENGINES {
        for (c, b) in &cases {
            let name = c.name;
            let db = TestDb::new(engine).await;
            let r = run_ok(&db, b, |o| {
                if let Some(p) = c.on_error {
                    o.on_error = p;
                }
            })
            .await;
            let s = snapshot(&db, &["item", "tag"]).await;
            assert_eq!(s.table("item"), strings(&c.items), "{engine}: {name}: {r:#?}");
            assert_eq!(s.table("tag"), strings(&c.tags), "{engine}: {name}");
            if c.applied {
                assert_eq!(r.failed_version, None, "{engine}: {name}: {r:#?}");
                assert_eq!(r.exit_code(), 0, "{engine}: {name}");
                assert_eq!(
                    r.migrated_versions,
                    versions_of(&["1.0.0", "2.0.0"]),
                    "{engine}: {name}"
                );
                assert_eq!(s.version.as_deref(), Some("2.0.0"), "{engine}: {name}");
                assert_eq!(
                    s.applied,
                    strings(&["1.0.0:applied", "2.0.0:applied"]),
                    "{engine}: {name}"
                );
            } else {
                assert_eq!(r.failed_version.as_deref(), Some("2.0.0"), "{engine}: {name}");
                assert_eq!(r.exit_code(), 3, "{engine}: {name}");
                assert_eq!(s.version.as_deref(), Some("1.0.0"), "{engine}: {name}");
                assert_eq!(s.applied, strings(&["1.0.0:applied"]), "{engine}: {name}");
            }
            // A skipped record is a warning of the report.
            let skipped = r
                .versions
                .iter()
                .flat_map(|v| &v.failures)
                .filter(|f| f.skipped)
                .count();
            let warned = r.warnings.iter().filter(|w| w.contains("skipped")).count();
            assert_eq!(warned, skipped, "{engine}: {name}: {:?}", r.warnings);
            for w in c.warns {
                assert!(
                    r.warnings.iter().any(|x| x.contains(w)),
                    "{engine}: {name}: {w:?} not in {:?}",
                    r.warnings
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Tenancy
// ---------------------------------------------------------------------------

const CUSTOMER_MODEL: &str = r#"{"name": "Customer", "properties": {
  "code": {"type": "string", "id": true, "max": 20},
  "name": {"type": "string", "required": true, "max": 100}},
  "mixins": {"MultiTenancyMixin": true}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_share_ids_and_keys_include_the_tenant() {
    let t1 = |file: &str, extra: Json| {
        let mut e = json!({"model": "Customer", "file": file, "ctxId": "/default/t1"});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e
    };
    let b = Bundle::new();
    b.put("models/customer.json", CUSTOMER_MODEL)
        .json(
            "1.0.0/meta.json",
            meta(json!([entry("Customer", "default/c.json"), t1("t1/c.json", json!({}))])),
        )
        .json(
            "1.0.0/default/c.json",
            json!([{"code": "A", "name": "def-a"}, {"code": "B", "name": "def-b"}]),
        )
        .json("1.0.0/t1/c.json", json!([{"code": "A", "name": "t1-a"}]))
        // Upsert in t1: the key is (code, tenant), so default's A stays.
        .json("2.0.0/meta.json", meta(json!([t1("t1/c.json", json!({}))])))
        .json("2.0.0/t1/c.json", json!([{"code": "A", "name": "t1-A2"}]))
        // Sync in t1: deletes t1's rows the file lacks, none of default's.
        .json(
            "3.0.0/meta.json",
            meta(json!([t1("t1/c.json", json!({"mode": "sync"}))])),
        )
        .json("3.0.0/t1/c.json", json!([{"code": "C", "name": "t1-c"}]))
        // clearTables true on a multi-tenant table: only the rows of the tenants it loads.
        .json(
            "4.0.0/meta.json",
            json!({"clearTables": true, "contexts": contexts(), "files": [t1("t1/c.json", json!({}))]}),
        )
        .json("4.0.0/t1/c.json", json!([{"code": "D", "name": "t1-d"}]))
        // A record of t1's file that names another tenant fails.
        .json("5.0.0/meta.json", meta(json!([t1("t1/c.json", json!({}))])))
        .json(
            "5.0.0/t1/c.json",
            json!([{"code": "E", "name": "t1-e"}, {"code": "F", "name": "x", "tenant_id": "/default"}]),
        );
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}");
        let mut conn = db.conn().await;
        let table = conn.find_table("Customer").await.unwrap();
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["code", "name", "tenant_id"], "{engine}");
        assert!(!table.column("tenant_id").unwrap().nullable, "{engine}");
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            ["A|def-a|/default", "A|t1-a|/default/t1", "B|def-b|/default"],
            "{engine}"
        );

        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(2, 0, 0))).await;
        let step = &r.versions[0].steps[0];
        assert_eq!((step.inserted, step.updated), (0, 1), "{engine}: {step:?}");
        assert_eq!(step.tenant.as_deref(), Some("/default/t1"), "{engine}");
        let info = logs(&db, "2.0.0", &["INFO"]).await;
        let entry = info.iter().find(|e| e.file.is_some()).unwrap();
        assert_eq!(
            (entry.table.as_deref(), entry.tenant.as_deref()),
            (Some("Customer"), Some("/default/t1")),
            "{engine}: {entry:?}"
        );
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            ["A|def-a|/default", "A|t1-A2|/default/t1", "B|def-b|/default"],
            "{engine}"
        );

        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(3, 0, 0))).await;
        let step = &r.versions[0].steps[0];
        assert_eq!((step.inserted, step.deleted), (1, 1), "{engine}: {step:?}");
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            ["A|def-a|/default", "B|def-b|/default", "C|t1-c|/default/t1"],
            "{engine}"
        );

        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(4, 0, 0))).await;
        let clear = &r.versions[0].steps[0];
        assert_eq!(
            (clear.kind.as_str(), clear.deleted),
            ("clear", 1),
            "{engine}: {clear:?}"
        );
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            ["A|def-a|/default", "B|def-b|/default", "D|t1-d|/default/t1"],
            "{engine}"
        );

        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.failed_version.as_deref(), Some("5.0.0"), "{engine}: {r:#?}");
        let f = &r.versions[0].failures;
        assert_eq!(f.len(), 1, "{engine}: {f:#?}");
        assert!(f[0].error.to_string().contains("context"), "{engine}: {}", f[0].error);
        assert_eq!(
            table_rows(&mut conn, "Customer").await.unwrap(),
            ["A|def-a|/default", "B|def-b|/default", "D|t1-d|/default/t1"],
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_context_is_refused_before_writing() {
    let b = Bundle::new();
    b.put("models/customer.json", CUSTOMER_MODEL)
        .json("1.0.0/meta.json", meta(json!([entry("Customer", "default/c.json")])))
        .json("1.0.0/default/c.json", json!([{"code": "A", "name": "def-a"}]))
        .json(
            "2.0.0/meta.json",
            meta(json!([{"model": "Customer", "file": "t2/c.json", "ctxId": "/default/t2"}])),
        )
        .json("2.0.0/t2/c.json", json!([{"code": "A", "name": "t2-a"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(matches!(e, MigrateError::Input(_)), "{engine}: {e:?}");
        assert_eq!(e.exit_code(), 2, "{engine}");
        let msg = e.to_string();
        assert!(
            msg.contains("2.0.0/meta.json") && msg.contains("/default/t2"),
            "{engine}: {msg}"
        );
        // Refused before writing: not even 1.0.0 was applied, no table was created.
        let s = snapshot(&db, &["Customer"]).await;
        assert_eq!(
            s,
            Snapshot {
                version: None,
                applied: vec![],
                tables: vec![("Customer".into(), None)]
            },
            "{engine}"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. ddl
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_back_fills_a_required_default_and_refuses_unasked_retypes() {
    let product = |extra: Json| {
        let mut props = json!({
            "id": {"type": "integer", "id": true},
            "name": {"type": "string", "required": true, "max": 50}
        });
        props
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"name": "product", "properties": props})
    };
    let b = Bundle::new();
    b.json("1.0.0/ddl/product.json", product(json!({})))
        .json("1.0.0/meta.json", meta(json!([entry("product", "default/p.json")])))
        .json(
            "1.0.0/default/p.json",
            json!([{"id": 1, "name": "p1"}, {"id": 2, "name": "p2"}]),
        )
        .json(
            "2.0.0/ddl/product.json",
            product(json!({"status": {"type": "string", "required": true, "max": 10, "default": "active"}})),
        )
        .json("2.0.0/meta.json", meta(json!([entry("product", "default/p.json")])))
        .json("2.0.0/default/p.json", json!([{"id": 3, "name": "p3"}]))
        .json("3.0.0/meta.json", meta(json!([entry("product", "default/p.json")])))
        .json("3.0.0/default/p.json", json!([{"id": 4, "name": "4"}]));
    // Version 3.0.0's bad definitions, one after the other (each fails and leaves nothing).
    let bad: [(&str, Json, &[&str]); 2] = [
        (
            "a retype not asked for",
            json!({"name": "product", "properties": {
                "id": {"type": "integer", "id": true},
                "name": {"type": "integer", "required": true},
                "status": {"type": "string", "required": true, "max": 10, "default": "active"}}}),
            &["3.0.0/ddl/product.json", "\"name\"", "retype"],
        ),
        (
            "a required property without default on a table with rows",
            product(json!({
                "status": {"type": "string", "required": true, "max": 10, "default": "active"},
                "code": {"type": "string", "required": true}})),
            &["3.0.0/ddl/product.json", "\"code\"", "default"],
        ),
    ];
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        b.json("3.0.0/ddl/product.json", bad[0].1.clone());
        let r = run_ok(&db, &b, |o| o.to = Some(Version::new(2, 0, 0))).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0", "2.0.0"]), "{engine}");
        let at_2 = snapshot(&db, &["product"]).await;
        assert_eq!(
            at_2.table("product"),
            ["1|p1|active", "2|p2|active", "3|p3|active"],
            "{engine}: existing rows get the new column's default"
        );
        let mut conn = db.conn().await;
        let status = conn.find_table("product").await.unwrap();
        assert!(!status.column("status").unwrap().nullable, "{engine}");

        for (what, def, fragments) in &bad {
            b.json("3.0.0/ddl/product.json", def.clone());
            let e = run(&db, &b, |_| {}).await.unwrap_err();
            assert_eq!(e.exit_code(), 2, "{engine}: {what}: {e:?}");
            let msg = e.to_string();
            for f in *fragments {
                assert!(msg.contains(f), "{engine}: {what}: {f:?} not in {msg}");
            }
            assert_eq!(
                snapshot(&db, &["product"]).await,
                at_2,
                "{engine}: {what}: nothing written"
            );
            let t = conn.find_table("product").await.unwrap();
            assert_eq!(t.columns.len(), 3, "{engine}: {what}: the table is as it was");
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Validation and record failures
// ---------------------------------------------------------------------------

/// Version 2.0.0 over [`item_bundle`] with failing records.
struct RecordCase {
    name: &'static str,
    files: Json,
    data: Vec<(&'static str, Json)>,
    on_error: OnError,
    /// Create `item` by hand first, with a nullable `name` (the model still says required).
    nullable_name: bool,
    applied: bool,
    items: Vec<&'static str>,
    /// The failing record as logged, and a fragment of its message.
    failure: Option<(Json, &'static str)>,
    /// The INFO log of the second file: (file, total, failed).
    info: (&'static str, u64, u64),
}

fn record_cases() -> Vec<RecordCase> {
    let good = ("default/a.json", json!([{"id": 10, "name": "x"}]));
    let bad = ("default/b.json", json!([{"id": 11, "qty": 1}, {"id": 12, "name": "y"}]));
    let both = json!([entry("item", "default/a.json"), entry("item", "default/b.json")]);
    let both_unchecked = json!([
        entry("item", "default/a.json"),
        entry_with("item", "default/b.json", json!({"skipValidation": true}))
    ]);
    let base = BASE_ITEMS.to_vec();
    vec![
        RecordCase {
            name: "a record missing a required property fails the version, earlier files included",
            files: both.clone(),
            data: vec![good.clone(), bad.clone()],
            on_error: OnError::Rollback,
            nullable_name: false,
            applied: false,
            items: base.clone(),
            failure: Some((json!({"id": 11, "qty": 1}), "name")),
            info: ("default/b.json", 2, 1),
        },
        RecordCase {
            name: "under skip the record is skipped and the rest applied",
            files: both.clone(),
            data: vec![good.clone(), bad.clone()],
            on_error: OnError::Skip,
            nullable_name: false,
            applied: true,
            items: vec!["1|a|1", "2|b|2", "3|c|3", "10|x|NULL", "12|y|NULL"],
            failure: Some((json!({"id": 11, "qty": 1}), "name")),
            info: ("default/b.json", 2, 1),
        },
        RecordCase {
            name: "skipValidation lets it through to the database, which refuses NULL in NOT NULL",
            files: both_unchecked.clone(),
            data: vec![good.clone(), bad.clone()],
            on_error: OnError::Rollback,
            nullable_name: false,
            applied: false,
            items: base.clone(),
            failure: Some((json!({"id": 11, "qty": 1}), "name")),
            info: ("default/b.json", 2, 1),
        },
        RecordCase {
            name: "skipValidation lets it through to a nullable column",
            files: both_unchecked,
            data: vec![good.clone(), bad.clone()],
            on_error: OnError::Rollback,
            nullable_name: true,
            applied: true,
            items: vec!["1|a|1", "2|b|2", "3|c|3", "10|x|NULL", "11|NULL|1", "12|y|NULL"],
            failure: None,
            info: ("default/b.json", 2, 0),
        },
        RecordCase {
            name: "validation still applies when the column is nullable",
            files: both,
            data: vec![good.clone(), bad],
            on_error: OnError::Rollback,
            nullable_name: true,
            applied: false,
            items: base.clone(),
            failure: Some((json!({"id": 11, "qty": 1}), "name")),
            info: ("default/b.json", 2, 1),
        },
        RecordCase {
            name: "an update whose row does not exist is a record failure",
            files: json!([
                entry("item", "default/a.json"),
                entry_with("item", "default/u.json", json!({"mode": "update"}))
            ]),
            data: vec![good.clone(), ("default/u.json", json!([{"id": 99, "qty": 5}]))],
            on_error: OnError::Rollback,
            nullable_name: false,
            applied: false,
            items: base.clone(),
            failure: Some((json!({"id": 99, "qty": 5}), "99")),
            info: ("default/u.json", 1, 1),
        },
        RecordCase {
            name: "an update whose row does not exist is skipped under skip",
            files: json!([
                entry("item", "default/a.json"),
                entry_with("item", "default/u.json", json!({"mode": "update"}))
            ]),
            data: vec![
                good,
                ("default/u.json", json!([{"id": 99, "qty": 5}, {"id": 1, "qty": 100}])),
            ],
            on_error: OnError::Skip,
            nullable_name: false,
            applied: true,
            items: vec!["1|a|100", "2|b|2", "3|c|3", "10|x|NULL"],
            failure: Some((json!({"id": 99, "qty": 5}), "99")),
            info: ("default/u.json", 2, 1),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_fail_the_version_or_are_skipped_and_are_logged_with_their_data() {
    let cases: Vec<(RecordCase, Bundle)> = record_cases()
        .into_iter()
        .map(|c| {
            let b = item_bundle();
            b.json("2.0.0/meta.json", meta(c.files.clone()));
            for (rel, body) in &c.data {
                b.json(&format!("2.0.0/{rel}"), body.clone());
            }
            (c, b)
        })
        .collect();
    for engine in ENGINES {
        for (c, b) in &cases {
            let name = c.name;
            let db = TestDb::new(engine).await;
            if c.nullable_name {
                db.conn()
                    .await
                    .batch("CREATE TABLE item (id bigint PRIMARY KEY, name varchar(50), qty bigint)")
                    .await
                    .unwrap();
            }
            let r = run_ok(&db, b, |o| o.to = Some(Version::new(1, 0, 0))).await;
            assert_eq!(r.exit_code(), 0, "{engine}: {name}");
            let before = snapshot(&db, &["item", "tag"]).await;
            assert_eq!(before.table("item"), strings(&BASE_ITEMS), "{engine}: {name}");

            let r = run_ok(&db, b, |o| o.on_error = c.on_error).await;
            let after = snapshot(&db, &["item", "tag"]).await;
            assert_eq!(after.table("item"), strings(&c.items), "{engine}: {name}: {r:#?}");
            let v = &r.versions[0];
            let logged_as = if c.applied {
                assert_eq!(r.failed_version, None, "{engine}: {name}: {r:#?}");
                assert_eq!(r.exit_code(), 0, "{engine}: {name}");
                assert_eq!(v.status, VersionStatus::Applied, "{engine}: {name}");
                assert_eq!(after.version.as_deref(), Some("2.0.0"), "{engine}: {name}");
                "WARN"
            } else {
                assert_eq!(r.failed_version.as_deref(), Some("2.0.0"), "{engine}: {name}: {r:#?}");
                assert_eq!(r.exit_code(), 3, "{engine}: {name}");
                assert_eq!(v.status, VersionStatus::Failed, "{engine}: {name}");
                assert_eq!(after, before, "{engine}: {name}: nothing of 2.0.0 stays");
                "ERROR"
            };
            // oe-migration's per-file log entry, which outlives a rollback too.
            let (file, total, failed) = c.info;
            let info = logs(&db, "2.0.0", &["INFO"]).await;
            let entry = info
                .iter()
                .find(|e| e.file.as_deref().is_some_and(|f| f.ends_with(file)))
                .unwrap_or_else(|| panic!("{engine}: {name}: no INFO for {file}: {info:#?}"));
            assert_eq!(
                entry.message,
                json!({"message": {"total": total, "success": total - failed, "failed": failed}}),
                "{engine}: {name}"
            );
            assert_eq!(entry.table.as_deref(), Some("item"), "{engine}: {name}: {entry:#?}");
            match &c.failure {
                None => assert!(v.failures.is_empty(), "{engine}: {name}: {:?}", v.failures),
                Some((data, fragment)) => {
                    assert_eq!(v.failures.len(), 1, "{engine}: {name}: {:#?}", v.failures);
                    let f = &v.failures[0];
                    assert_eq!(f.skipped, c.applied, "{engine}: {name}");
                    assert_eq!(f.data.as_ref(), Some(data), "{engine}: {name}: {f:?}");
                    assert!(f.error.to_string().contains(fragment), "{engine}: {name}: {}", f.error);
                    // The log keeps the record's data, even when its version was rolled back.
                    let entries = logs(&db, "2.0.0", &[logged_as]).await;
                    let with_data: Vec<&LogEntry> =
                        entries.iter().filter(|e| e.message.get("data") == Some(data)).collect();
                    assert_eq!(with_data.len(), 1, "{engine}: {name}: {entries:#?}");
                    assert!(
                        with_data[0].file.as_deref().is_some_and(|p| p.ends_with(".json")),
                        "{engine}: {name}: {:?}",
                        with_data[0]
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 6. Versions in order
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_apply_in_order_and_stop_at_the_first_that_fails() {
    let b = item_bundle();
    let one = || meta(json!([entry("item", "default/i.json")]));
    b.json("1.2.0/meta.json", one())
        .json("1.2.0/default/i.json", json!([{"id": 1, "name": "v1.2"}]))
        .json("1.10.0/meta.json", one())
        .json("1.10.0/default/i.json", json!([{"id": 1, "name": "v1.10"}]))
        .json("2.0.0/meta.json", one())
        .json("2.0.0/default/i.json", json!([{"id": 20, "name": "v2"}, {"id": 21}]))
        .json("3.0.0/meta.json", one())
        .json("3.0.0/default/i.json", json!([{"id": 30, "name": "v3"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "1.2.0", "1.10.0"]),
            "{engine}"
        );
        let order: Vec<&str> = r.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(
            order,
            ["1.0.0", "1.2.0", "1.10.0", "2.0.0"],
            "{engine}: 3.0.0 is not tried"
        );
        assert_eq!(r.failed_version.as_deref(), Some("2.0.0"), "{engine}");
        assert_eq!(r.new_version.as_deref(), Some("1.10.0"), "{engine}");
        assert_eq!(r.exit_code(), 3, "{engine}");
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(s.table("item"), ["1|v1.10|1", "2|b|2", "3|c|3"], "{engine}");
        assert_eq!(s.version.as_deref(), Some("1.10.0"), "{engine}");
        assert_eq!(
            s.applied,
            ["1.0.0:applied", "1.10.0:applied", "1.2.0:applied"],
            "{engine}"
        );
        let st = status(&db, &b).await;
        assert_eq!(st.current_version.as_deref(), Some("1.10.0"), "{engine}");
        assert_eq!(st.pending, ["2.0.0", "3.0.0"], "{engine}");
        assert!(st.partial.is_empty() && st.changed.is_empty(), "{engine}: {st:?}");
    }
}

// ---------------------------------------------------------------------------
// 7. Scripts
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_file_runs_inside_the_versions_transaction() {
    let b = item_bundle();
    b.json(
        "2.0.0/meta.json",
        meta(json!([{"file": "default/add.sql"}, entry("item", "default/i.json")])),
    )
    .put(
        "2.0.0/default/add.sql",
        "INSERT INTO item (id, name, qty) VALUES (50, 'sql', 5);\nUPDATE item SET qty = 30 WHERE id = 3;\n",
    )
    .json("2.0.0/default/i.json", json!([{"id": 51, "qty": 1}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        // A later file fails: the SQL's changes go with the version.
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.failed_version.as_deref(), Some("2.0.0"), "{engine}: {r:#?}");
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(s.table("item"), strings(&BASE_ITEMS), "{engine}");
        assert_eq!(s.version.as_deref(), Some("1.0.0"), "{engine}");

        b.json("2.0.0/default/i.json", json!([{"id": 51, "name": "ok"}]));
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["2.0.0"]), "{engine}: {r:#?}");
        assert_eq!(r.versions[0].steps[0].kind, "sql", "{engine}");
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(
            s.table("item"),
            ["1|a|1", "2|b|2", "3|c|30", "50|sql|5", "51|ok|NULL"],
            "{engine}"
        );

        // Every row the script changed in the table its statements name was
        // recorded with the version: a rollback puts them back with the file's rows,
        // and needs no --ignore-scripts (nothing of the script is left unrecorded).
        let back = RollbackOptions {
            to: Version::new(1, 0, 0),
            ..RollbackOptions::default()
        };
        let r = lockgate::rollback(&db.url, &back).await.unwrap();
        assert!(r.committed, "{engine}: {r:#?}");
        assert!(r.scripts_not_undone.is_empty(), "{engine}: {r:#?}");
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(s.table("item"), strings(&BASE_ITEMS), "{engine}");
        assert_eq!(s.version.as_deref(), Some("1.0.0"), "{engine}");
        b.json("2.0.0/default/i.json", json!([{"id": 51, "qty": 1}]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_script_gets_the_url_version_module_and_context() {
    let b = item_bundle();
    let out = b.outside("env.out");
    b.json(
        "1.0.0/meta.json",
        meta(json!([entry("item", "default/item.json"), {"file": "t1/env.sh", "ctxId": "/default/t1"}])),
    )
    .put(
        "1.0.0/t1/env.sh",
        format!(
            "{{ echo \"$LOCKGATE_DATABASE_URL\"; echo \"$LOCKGATE_VERSION\"; echo \"$LOCKGATE_MODULE\"; pwd; cat; }} > '{}'\n",
            out.display()
        ),
    );
    for engine in ENGINES {
        let _ = std::fs::remove_file(&out);
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}: {r:#?}");
        let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{engine}: the script did not run: {e}"));
        let lines: Vec<&str> = text.splitn(5, '\n').collect();
        assert_eq!(lines[0], db.url.as_str(), "{engine}");
        assert_eq!(lines[1], "1.0.0", "{engine}");
        assert_eq!(lines[2], "./", "{engine}");
        assert!(
            lines[3].ends_with("/db/1.0.0"),
            "{engine}: runs in the version folder: {}",
            lines[3]
        );
        let ctx: Json = serde_json::from_str(lines[4].trim()).unwrap_or_else(|e| panic!("{engine}: {e}: {text}"));
        assert_eq!(ctx, contexts()["/default/t1"], "{engine}");
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let applied = versions::applied_versions(ledger.conn(), "./").await.unwrap();
        assert_eq!(applied[0].scripts, ["t1/env.sh"], "{engine}");
        assert_eq!(applied[0].status, "applied", "{engine}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_script_runs_after_the_rows_before_it_are_committed() {
    let b = item_bundle();
    let out = b.outside("py.out");
    b.json(
        "1.0.0/meta.json",
        meta(json!([entry("item", "default/item.json"), {"file": "t1/look.py", "ctxId": "/default/t1"}])),
    )
    .put(
        "1.0.0/t1/look.py",
        format!(
            r#"import json, os, sqlite3, sys
ctx = json.load(sys.stdin)
url = os.environ["LOCKGATE_DATABASE_URL"]
seen = "-"
if url.startswith("sqlite://"):
    # A process sees only committed data: the rows listed before it must be there.
    seen = str(sqlite3.connect(url[len("sqlite://"):]).execute("SELECT count(*) FROM item").fetchone()[0])
with open({out:?}, "w") as f:
    f.write("\n".join([os.environ["LOCKGATE_VERSION"], ctx["tenantId"], seen]))
"#,
            out = out.display().to_string()
        ),
    );
    for engine in ENGINES {
        let _ = std::fs::remove_file(&out);
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}: {r:#?}");
        let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{engine}: the script did not run: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["1.0.0", "/default/t1"], "{engine}");
        if engine == Engine::Sqlite {
            assert_eq!(lines[2], BASE_ITEMS.len().to_string(), "{engine}: committed rows seen");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_halts_the_run_and_leaves_a_partial_version_that_is_rerun() {
    let b = Bundle::new();
    b.put("models/item.json", ITEM_MODEL)
        .json(
            "1.0.0/meta.json",
            meta(json!([entry("item", "default/a.json"), {"file": "default/s.sh"}, entry("item", "default/b.json")])),
        )
        .json("1.0.0/default/a.json", json!([{"id": 1, "name": "a"}]))
        .json("1.0.0/default/b.json", json!([{"id": 2, "name": "b"}]))
        .json("1.1.0/meta.json", meta(json!([entry("item", "default/c.json")])))
        .json("1.1.0/default/c.json", json!([{"id": 3, "name": "c"}]));
    for engine in ENGINES {
        b.put("1.0.0/default/s.sh", "echo boom >&2\nexit 3\n");
        let db = TestDb::new(engine).await;
        let e = run(&db, &b, |_| {}).await.unwrap_err();
        assert!(matches!(e, MigrateError::Script(_)), "{engine}: {e:?}");
        assert_eq!(e.exit_code(), 1, "{engine}");
        let msg = e.to_string();
        assert!(
            msg.contains("default/s.sh") && msg.contains("exited with 3") && msg.contains("boom"),
            "{engine}: {msg}"
        );
        // The part before the script is committed; the rest and 1.1.0 are not.
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(s.table("item"), ["1|a|NULL"], "{engine}");
        assert_eq!(s.version, None, "{engine}");
        let st = status(&db, &b).await;
        assert_eq!(st.partial, ["1.0.0"], "{engine}: {st:?}");
        assert_eq!(st.pending, ["1.1.0"], "{engine}: {st:?}");

        // Fixed: the next migrate runs 1.0.0 again from its start, then 1.1.0.
        b.put("1.0.0/default/s.sh", "exit 0\n");
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "1.1.0"]),
            "{engine}: {r:#?}"
        );
        let s = snapshot(&db, &["item"]).await;
        assert_eq!(s.table("item"), ["1|a|NULL", "2|b|NULL", "3|c|NULL"], "{engine}");
        assert_eq!(s.applied, ["1.0.0:applied", "1.1.0:applied"], "{engine}");
        let st = status(&db, &b).await;
        assert!(st.partial.is_empty() && st.pending.is_empty(), "{engine}: {st:?}");
    }
}

/// A version whose only script is `script`, run with a 2 s timeout: the error.
async fn script_error(engine: lockgate_db::Engine, file: &str, body: &str) -> (MigrateError, Duration) {
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([{"file": file, "ctxId": "/default"}])))
        .put(&format!("2.0.0/{file}"), body);
    let db = TestDb::new(engine).await;
    run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
    let before = snapshot(&db, &["item", "tag"]).await;
    let started = Instant::now();
    let e = run(&db, &b, |_| {}).await.unwrap_err();
    let took = started.elapsed();
    let after = snapshot(&db, &["item", "tag"]).await;
    assert_eq!(
        (&after.version, &after.tables),
        (&before.version, &before.tables),
        "{engine}: {file}"
    );
    (e, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_shell_script_hits_the_timeout() {
    for engine in ENGINES {
        let (e, took) = script_error(engine, "default/hang.sh", "exec sleep 30\n").await;
        assert!(matches!(e, MigrateError::Script(_)), "{engine}: {e:?}");
        assert_eq!(e.exit_code(), 1, "{engine}");
        assert!(e.to_string().contains("did not finish within 2 s"), "{engine}: {e}");
        assert!(took < Duration::from_secs(10), "{engine}: took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oe_style_js_file_gets_the_context_and_a_callback() {
    let b = item_bundle();
    let out = b.outside("js.out");
    b.json(
        "2.0.0/meta.json",
        meta(json!([{"file": "t1/script.js", "ctxId": "/default/t1"}, entry("item", "default/i.json")])),
    )
    .put(
        "2.0.0/t1/script.js",
        format!(
            "const fs = require('fs');\nmodule.exports = function (opts, cb) {{\n  fs.writeFileSync({}, JSON.stringify({{opts, version: process.env.LOCKGATE_VERSION, module: process.env.LOCKGATE_MODULE, url: process.env.LOCKGATE_DATABASE_URL}}));\n  setTimeout(() => cb(), 10);\n}};\n",
            json!(out.display().to_string())
        ),
    )
    .json("2.0.0/default/i.json", json!([{"id": 4, "name": "d"}]));
    for engine in ENGINES {
        let _ = std::fs::remove_file(&out);
        let db = TestDb::new(engine).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "2.0.0"]),
            "{engine}: {r:#?}"
        );
        let got: Json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(
            got,
            json!({"opts": contexts()["/default/t1"], "version": "2.0.0", "module": "./", "url": db.url.as_str()}),
            "{engine}"
        );
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            ["1|a|1", "2|b|2", "3|c|3", "4|d|NULL"],
            "{engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oe_style_js_file_calling_back_with_an_error_halts_the_run_with_its_message() {
    for engine in ENGINES {
        let (e, _) = script_error(
            engine,
            "default/err.js",
            "module.exports = function (opts, cb) { cb(new Error('nope from js')); };\n",
        )
        .await;
        assert!(matches!(e, MigrateError::Script(_)), "{engine}: {e:?}");
        assert_eq!(e.exit_code(), 1, "{engine}");
        assert!(e.to_string().contains("nope from js"), "{engine}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oe_style_js_file_that_never_calls_back_times_out() {
    for engine in ENGINES {
        let (e, took) = script_error(
            engine,
            "default/never.js",
            "module.exports = function (opts, cb) { /* forgets cb */ };\n",
        )
        .await;
        assert!(matches!(e, MigrateError::Script(_)), "{engine}: {e:?}");
        assert_eq!(e.exit_code(), 1, "{engine}");
        let msg = e.to_string();
        assert!(
            msg.contains("did not finish within 2 s") && msg.contains("callback"),
            "{engine}: {msg}"
        );
        assert!(took < Duration::from_secs(10), "{engine}: took {took:?}");
    }
}

// ---------------------------------------------------------------------------
// 8. Rollback
// ---------------------------------------------------------------------------

/// [`item_bundle`] plus 2.0.0 (sync that updates, keeps, deletes and inserts; clears
/// and reloads tag) and 3.0.0 (an update and an insert).
fn rollback_bundle() -> Bundle {
    let b = item_bundle();
    b.json(
        "2.0.0/meta.json",
        json!({"clearTables": ["tag"], "contexts": contexts(), "files": [
            entry_with("item", "default/i.json", json!({"mode": "sync"})),
            entry("tag", "default/t.json")]}),
    )
    .json(
        "2.0.0/default/i.json",
        json!([{"id": 1, "name": "A", "qty": 1}, {"id": 2, "name": "b", "qty": 2}, {"id": 4, "name": "d"}]),
    )
    .json(
        "2.0.0/default/t.json",
        json!([{"id": 9, "label": "new"}, {"id": 1, "label": "RED"}]),
    )
    .json(
        "3.0.0/meta.json",
        meta(json!([
            entry_with("item", "default/u.json", json!({"mode": "update"})),
            entry("item", "default/n.json")
        ])),
    )
    .json("3.0.0/default/u.json", json!([{"id": 2, "qty": 22}]))
    .json("3.0.0/default/n.json", json!([{"id": 5, "name": "e"}]));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_puts_every_table_back_and_stops_on_rows_changed_since() {
    let b = rollback_bundle();
    let to_v = || RollbackOptions {
        to: Version::new(1, 0, 0),
        lock_timeout: Duration::from_secs(60),
        ..RollbackOptions::default()
    };
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let at_v = snapshot(&db, &["item", "tag"]).await;
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["2.0.0", "3.0.0"]),
            "{engine}: {r:#?}"
        );
        let at_w = snapshot(&db, &["item", "tag"]).await;
        assert_eq!(
            at_w.table("item"),
            ["1|A|1", "2|b|22", "4|d|NULL", "5|e|NULL"],
            "{engine}"
        );
        assert_eq!(at_w.table("tag"), ["1|RED", "9|new"], "{engine}");

        let r = lockgate::rollback(&db.url, &to_v()).await.unwrap();
        assert!(r.committed && r.conflicts.is_empty(), "{engine}: {r:#?}");
        assert_eq!(r.exit_code(), 0, "{engine}");
        assert_eq!(r.versions, ["3.0.0", "2.0.0"], "{engine}");
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            at_v,
            "{engine}: every table as at 1.0.0"
        );

        // Again to W, then someone changes rows the migration wrote: an updated row,
        // a row it inserted, a row it inserted deleted, a row it deleted put back.
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["2.0.0", "3.0.0"]),
            "{engine}: {r:#?}"
        );
        assert_eq!(snapshot(&db, &["item", "tag"]).await, at_w, "{engine}");
        let mut conn = db.conn().await;
        conn.batch("UPDATE item SET name = 'zz' WHERE id = 2").await.unwrap();
        conn.batch("UPDATE item SET name = 'dd' WHERE id = 4").await.unwrap();
        conn.batch("DELETE FROM tag WHERE id = 9").await.unwrap();
        conn.batch("INSERT INTO item (id, name, qty) VALUES (3, 'back', 3)")
            .await
            .unwrap();
        let edited = snapshot(&db, &["item", "tag"]).await;

        let r = lockgate::rollback(&db.url, &to_v()).await.unwrap();
        assert!(!r.committed, "{engine}: {r:#?}");
        assert_eq!(r.exit_code(), 4, "{engine}");
        let mut keys: Vec<(String, String)> = r
            .conflicts
            .iter()
            .map(|c| (c.table.clone(), c.key.get("id").map(json_text).unwrap_or_default()))
            .collect();
        keys.sort();
        let expected: Vec<(String, String)> = [("item", "2"), ("item", "3"), ("item", "4"), ("tag", "9")]
            .iter()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect();
        assert_eq!(keys, expected, "{engine}: {:#?}", r.conflicts);
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            edited,
            "{engine}: nothing changed"
        );

        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                overwrite: true,
                ..to_v()
            },
        )
        .await
        .unwrap();
        assert!(r.committed, "{engine}: {r:#?}");
        assert_eq!(r.exit_code(), 0, "{engine}");
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            at_v,
            "{engine}: overwritten back to 1.0.0"
        );

        // Back to before the first version: the tables stay, empty; migrate starts over.
        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                to: Version::new(0, 0, 0),
                ..to_v()
            },
        )
        .await
        .unwrap();
        assert!(r.committed, "{engine}: {r:#?}");
        let s = snapshot(&db, &["item", "tag"]).await;
        assert_eq!(s.table("item"), Vec::<String>::new(), "{engine}");
        assert_eq!(s.table("tag"), Vec::<String>::new(), "{engine}");
        assert!(s.applied.is_empty(), "{engine}: {s:?}");
        let r = run_ok(&db, &b, |_| {}).await;
        assert_eq!(
            r.migrated_versions,
            versions_of(&["1.0.0", "2.0.0", "3.0.0"]),
            "{engine}: {r:#?}"
        );
        assert_eq!(snapshot(&db, &["item", "tag"]).await.tables, at_w.tables, "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_sees_a_change_to_a_column_an_inserted_record_did_not_give() {
    let b = item_bundle();
    b.json("2.0.0/meta.json", meta(json!([entry("item", "default/i.json")])))
        .json("2.0.0/default/i.json", json!([{"id": 4, "name": "d"}]));
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &b, |_| {}).await;
        // qty was NULL as the migration left it; someone sets it.
        db.conn()
            .await
            .batch("UPDATE item SET qty = 99 WHERE id = 4")
            .await
            .unwrap();
        let edited = snapshot(&db, &["item", "tag"]).await;
        let r = lockgate::rollback(
            &db.url,
            &RollbackOptions {
                to: Version::new(1, 0, 0),
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(!r.committed, "{engine}: the row was changed since: {r:#?}");
        assert_eq!(r.exit_code(), 4, "{engine}");
        assert_eq!(r.conflicts.len(), 1, "{engine}: {r:#?}");
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            edited,
            "{engine}: nothing changed"
        );
    }
}

// ---------------------------------------------------------------------------
// 9. Dry run
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_real_runs_counts_and_changes_nothing() {
    let b = rollback_bundle();
    b.json(
        "2.0.0/meta.json",
        json!({"clearTables": ["tag"], "contexts": contexts(), "files": [
            entry_with("item", "default/i.json", json!({"mode": "sync"})),
            entry_with("item", "default/u.json", json!({"mode": "update"})),
            entry("tag", "default/t.json")]}),
    )
    .json("2.0.0/default/u.json", json!([{"id": 2, "qty": 20}]));
    let data_steps = |r: &MigrateReport| -> Vec<(String, u64, u64, u64, u64, u64)> {
        r.versions.iter().flat_map(|v| &v.steps).map(counts).collect()
    };
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        // From nothing: the tables the definitions would create are not created.
        let empty = snapshot(&db, &["item", "tag"]).await;
        let dry = run_ok(&db, &b, |o| o.dry_run = true).await;
        assert_eq!(dry.versions.len(), 3, "{engine}: {dry:#?}");
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            empty,
            "{engine}: a dry run creates nothing"
        );
        if engine != lockgate_db::Engine::Mysql {
            // (MariaDB cannot roll DDL back: it reads such files without computing.)
            assert_eq!(
                counts(&dry.versions[0].steps[0]),
                ("default/item.json".into(), 3, 3, 0, 0, 0),
                "{engine}"
            );
        }

        run_ok(&db, &b, |o| o.to = Some(Version::new(1, 0, 0))).await;
        let before = snapshot(&db, &["item", "tag"]).await;
        let dry = run_ok(&db, &b, |o| o.dry_run = true).await;
        assert!(dry.dry_run, "{engine}");
        assert_eq!(dry.run_id, None, "{engine}");
        assert_eq!(dry.new_version.as_deref(), Some("1.0.0"), "{engine}");
        assert!(
            dry.versions.iter().all(|v| v.status == VersionStatus::WouldApply),
            "{engine}: {dry:#?}"
        );
        assert_eq!(
            snapshot(&db, &["item", "tag"]).await,
            before,
            "{engine}: a dry run changes nothing"
        );
        let steps = data_steps(&dry);
        let expected: Vec<(String, u64, u64, u64, u64, u64)> = vec![
            ("tag".into(), 0, 0, 0, 0, 2),
            ("default/i.json".into(), 3, 1, 1, 1, 1),
            ("default/u.json".into(), 1, 0, 1, 0, 0),
            ("default/t.json".into(), 2, 2, 0, 0, 0),
            ("default/u.json".into(), 1, 0, 1, 0, 0),
            ("default/n.json".into(), 1, 1, 0, 0, 0),
        ];
        assert_eq!(steps, expected, "{engine}: {dry:#?}");

        let real = run_ok(&db, &b, |_| {}).await;
        assert_eq!(data_steps(&real), steps, "{engine}: {real:#?}");
        assert_eq!(real.migrated_versions, versions_of(&["2.0.0", "3.0.0"]), "{engine}");
    }
}

// ---------------------------------------------------------------------------
// 10. Bad input
// ---------------------------------------------------------------------------

/// A bad `db/` folder (or zip, or option): what the error must name.
struct BadCase {
    name: &'static str,
    /// Adds the bad part to a bundle holding the applied 1.0.0.
    build: fn(&Bundle),
    /// Adjusts the options (a zip, a missing folder, limits).
    tweak: fn(&Bundle, &mut MigrateOptions),
    expect: &'static [&'static str],
}

fn no_tweak(_: &Bundle, _: &mut MigrateOptions) {}

fn use_zip(b: &Bundle, o: &mut MigrateOptions) {
    o.zip = Some(b.outside("bad.zip"));
}

/// A zip of a valid 1.0.0 (meta.json `{}`) plus `extra`.
fn bad_zip(b: &Bundle, extra: ZipEntry<'_>) {
    make_zip(
        &b.outside("bad.zip"),
        &[
            ZipEntry::File("1.0.0/meta.json", b"{}"),
            ZipEntry::File("2.0.0/meta.json", b"{}"),
            extra,
        ],
    );
}

fn bad_cases() -> Vec<BadCase> {
    vec![
        BadCase {
            name: "a folder that is not x.y.z",
            build: |b| {
                b.put("4.0/meta.json", "{}");
            },
            tweak: no_tweak,
            expect: &["db/4.0"],
        },
        BadCase {
            name: "a version folder without meta.json",
            build: |b| {
                b.json("2.0.0/default/item.json", json!([]));
            },
            tweak: no_tweak,
            expect: &["db/2.0.0", "meta.json"],
        },
        BadCase {
            name: "malformed meta.json names line and column",
            build: |b| {
                b.put(
                    "2.0.0/meta.json",
                    "{\n  \"files\": [\n    {\"model\": \"item\",, \"file\": \"default/i.json\"}\n  ]\n}\n",
                );
            },
            tweak: no_tweak,
            expect: &["2.0.0/meta.json:3:"],
        },
        BadCase {
            name: "a missing data file",
            build: |b| {
                b.json("2.0.0/meta.json", meta(json!([entry("item", "default/missing.json")])));
            },
            tweak: no_tweak,
            expect: &["2.0.0/meta.json", "files[0]", "default/missing.json", "does not exist"],
        },
        BadCase {
            name: "a malformed data file names line and column",
            build: |b| {
                b.json(
                    "2.0.0/meta.json",
                    meta(json!([
                        entry("item", "default/ok.json"),
                        entry("item", "default/bad.json")
                    ])),
                )
                .json("2.0.0/default/ok.json", json!([{"id": 40, "name": "ok"}]))
                .put("2.0.0/default/bad.json", "[\n{\"id\": 41, \"name\": \"x\",}\n]\n");
            },
            tweak: no_tweak,
            expect: &["default/bad.json:2:"],
        },
        BadCase {
            name: "an unknown ctxId",
            build: |b| {
                b.json(
                    "2.0.0/meta.json",
                    meta(json!([{"model": "item", "file": "default/i.json", "ctxId": "/default/nope"}])),
                )
                .json("2.0.0/default/i.json", json!([{"id": 40, "name": "x"}]));
            },
            tweak: no_tweak,
            expect: &["2.0.0/meta.json", "/default/nope"],
        },
        BadCase {
            name: "an unknown table with no definition",
            build: |b| {
                b.json("2.0.0/meta.json", meta(json!([entry("nosuch", "default/i.json")])))
                    .json("2.0.0/default/i.json", json!([{"id": 40}]));
            },
            tweak: no_tweak,
            expect: &["2.0.0/meta.json", "nosuch", "does not exist"],
        },
        BadCase {
            name: "clearTables naming an unknown table",
            build: |b| {
                b.json(
                    "2.0.0/meta.json",
                    json!({"clearTables": ["item", "nosuch"], "contexts": contexts(), "files": []}),
                );
            },
            tweak: no_tweak,
            expect: &["2.0.0/meta.json", "clearTables", "nosuch"],
        },
        // An update whose records lack the key is no longer refused before writing:
        // each such record is that record's error, as in oe-migration (see
        // loopback::update_attributes_without_the_key_is_that_records_error).
        BadCase {
            name: "a base path that does not exist",
            build: |_| {},
            tweak: |b, o| o.dir = b.root().join("nope"),
            expect: &["db/nope", "does not exist"],
        },
        BadCase {
            name: "a zip with a ../ entry",
            build: |b| bad_zip(b, ZipEntry::File("../evil.json", b"[]")),
            tweak: use_zip,
            expect: &["bad.zip", "../evil.json"],
        },
        BadCase {
            name: "a zip with an absolute entry",
            build: |b| bad_zip(b, ZipEntry::File("/tmp/lockgate-evil.json", b"[]")),
            tweak: use_zip,
            expect: &["bad.zip", "/tmp/lockgate-evil.json", "absolute"],
        },
        BadCase {
            name: "a zip with a symlink entry",
            build: |b| bad_zip(b, ZipEntry::Symlink("2.0.0/default/link.json", "/etc/passwd")),
            tweak: use_zip,
            expect: &["bad.zip", "2.0.0/default/link.json", "symbolic link"],
        },
        BadCase {
            name: "a zip entry expanding past the limit",
            build: |b| bad_zip(b, ZipEntry::File("2.0.0/default/big.json", &[b' '; 5000])),
            tweak: |b, o| {
                use_zip(b, o);
                o.zip_limits = ZipLimits {
                    max_entries: 100,
                    max_entry_bytes: 1000,
                    max_total_bytes: 100_000,
                };
            },
            expect: &["bad.zip", "2.0.0/default/big.json", "limit"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_place_and_nothing_is_written() {
    let good = item_bundle();
    let cases: Vec<(BadCase, Bundle)> = bad_cases()
        .into_iter()
        .map(|c| {
            let b = item_bundle();
            (c.build)(&b);
            (c, b)
        })
        .collect();
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        run_ok(&db, &good, |_| {}).await;
        let before = snapshot(&db, &["item", "tag", "nosuch"]).await;
        assert_eq!(before.version.as_deref(), Some("1.0.0"), "{engine}");
        for (c, b) in &cases {
            let name = c.name;
            let e = run(&db, b, |o| (c.tweak)(b, o))
                .await
                .err()
                .unwrap_or_else(|| panic!("{engine}: {name}: migrate succeeded"));
            assert!(
                matches!(e, MigrateError::Input(_) | MigrateError::Source(_)),
                "{engine}: {name}: {e:?}"
            );
            assert_eq!(e.exit_code(), 2, "{engine}: {name}: {e}");
            let msg = e.to_string();
            for f in c.expect {
                assert!(msg.contains(f), "{engine}: {name}: {f:?} not in: {msg}");
            }
            assert_eq!(
                snapshot(&db, &["item", "tag", "nosuch"]).await,
                before,
                "{engine}: {name}: nothing written"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 11. Zips
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_of_the_folder_migrates_the_same_as_the_folder() {
    let b = rollback_bundle();
    b.json(
        "3.1.0/ddl/item.json",
        json!({"name": "item", "properties": {
            "id": {"type": "integer", "id": true},
            "name": {"type": "string", "required": true, "max": 50},
            "qty": "integer",
            "state": {"type": "string", "required": true, "max": 10, "default": "new"}}}),
    )
    .json("3.1.0/meta.json", meta(json!([entry("item", "default/i.csv")])))
    .put("3.1.0/default/i.csv", "id,name,qty,state\n6,f,6,old\n");
    // A zip of the version folders, and a zip of the folder holding db/.
    let parent_zip = b.outside("parent.zip");
    lockgate_bundle::write_zip(b.tmp.path(), &parent_zip).unwrap();
    let zip = b.outside("db.zip");
    lockgate_bundle::write_zip(&b.root(), &zip).unwrap();
    for engine in ENGINES {
        let from_folder = TestDb::new(engine).await;
        let from_zip = TestDb::new(engine).await;
        let rf = run_ok(&from_folder, &b, |_| {}).await;
        let rz = run_ok(&from_zip, &b, |o| o.zip = Some(zip.clone())).await;
        assert_eq!(rz.migrated_versions, rf.migrated_versions, "{engine}");
        assert_eq!(
            rz.migrated_versions,
            versions_of(&["1.0.0", "2.0.0", "3.0.0", "3.1.0"]),
            "{engine}"
        );
        let sf = snapshot(&from_folder, &["item", "tag"]).await;
        let sz = snapshot(&from_zip, &["item", "tag"]).await;
        assert_eq!(sz, sf, "{engine}");
        assert_eq!(
            sf.table("item"),
            ["1|A|1|new", "2|b|22|new", "4|d|NULL|new", "5|e|NULL|new", "6|f|6|old"],
            "{engine}"
        );
        // The same content gives the same checksums, so status sees nothing changed.
        let checksums = |db: &TestDb| {
            let url = db.url.clone();
            async move {
                let mut ledger = Ledger::open(&url).await.unwrap();
                let mut v: Vec<(String, String)> = versions::applied_versions(ledger.conn(), "./")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|a| (a.version, a.checksum))
                    .collect();
                v.sort();
                v
            }
        };
        assert_eq!(checksums(&from_zip).await, checksums(&from_folder).await, "{engine}");
        let from_parent = TestDb::new(engine).await;
        run_ok(&from_parent, &b, |o| o.zip = Some(parent_zip.clone())).await;
        assert_eq!(
            snapshot(&from_parent, &["item", "tag"]).await,
            sf,
            "{engine}: db/ inside the zip"
        );
        let st = lockgate::status(
            &from_zip.url,
            &StatusOptions {
                zip: Some(zip.clone()),
                ..StatusOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(
            st.pending.is_empty() && st.changed.is_empty() && st.partial.is_empty(),
            "{engine}: {st:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 12. The job lock
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_migrate_of_the_module_waits_for_the_lock() {
    let b = item_bundle();
    for engine in ENGINES {
        let db = TestDb::new(engine).await;
        let mut ledger = Ledger::open(&db.url).await.unwrap();
        let holder = Holder::current("test: another migrate of ./");
        let lock = ledger
            .lock("migrate:./", &holder, Duration::from_secs(5))
            .await
            .unwrap();

        // A short wait gives up, naming the holder; nothing is written.
        let started = Instant::now();
        let e = run(&db, &b, |o| o.lock_timeout = Duration::from_millis(600))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(600), "{engine}: it waited");
        match &e {
            MigrateError::Db(DbError::LockTimeout { job, holder, .. }) => {
                assert_eq!(job, "migrate:./", "{engine}");
                assert!(holder.contains("test: another migrate of ./"), "{engine}: {holder}");
            }
            other => panic!("{engine}: expected a lock timeout, got {other:?}"),
        }
        assert_eq!(e.exit_code(), 1, "{engine}");
        let s = snapshot(&db, &["item"]).await;
        assert_eq!((s.version, s.tables[0].1.clone()), (None, None), "{engine}");

        // A longer wait gets the lock once it is given back.
        let url = db.url.clone();
        let opts = MigrateOptions {
            lock_timeout: Duration::from_secs(30),
            ..b.opts()
        };
        let waiting = tokio::spawn(async move { lockgate::migrate(&url, &opts, None).await });
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!waiting.is_finished(), "{engine}: the second migrate must wait");
        ledger.unlock(lock).await.unwrap();
        let r = waiting.await.unwrap().unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(r.migrated_versions, versions_of(&["1.0.0"]), "{engine}");
        assert_eq!(
            snapshot(&db, &["item"]).await.table("item"),
            strings(&BASE_ITEMS),
            "{engine}"
        );
    }
}
