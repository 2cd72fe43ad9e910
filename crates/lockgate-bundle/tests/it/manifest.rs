//! meta.json: the oe-migration format as its documentation shows it, Lockgate's
//! extensions, every error with its place, warnings for unknown keys, and the round trip
//! through `to_json_pretty`.

use std::path::Path;

use lockgate_bundle::{
    parse_manifest, Baseline, ClearTables, EntryKind, FileEntry, FileMode, Format, Manifest, OnErrorSpec, ScriptKind,
    Version,
};

const META: &str = "db/1.0.0/meta.json";

fn parse(text: &str) -> Manifest {
    match parse_manifest(Path::new(META), text) {
        Ok(manifest) => manifest,
        Err(error) => panic!("{error}\n{text}"),
    }
}

/// The example of the oe-migration documentation (seed 001), without its comments.
const SEED: &str = r#"{
  "clearTables": true,
  "contexts": {
    "/default": {
      "id": 0,
      "tenantId": "/default",
      "remoteUser": "defaultuser"
    },
    "/default/tenant1": {
      "id": 1,
      "tenantId": "/default/tenant1",
      "remoteUser": "tenant1user"
    }
  },
  "files": [
    {
      "skipValidation": true,
      "updateAttributes": true,
      "key": "field2",
      "model": "Customer",
      "enabled": true,
      "file": "default/customer.json",
      "ctxId": "/default"
    },
    {
      "model": "Account",
      "enabled": true,
      "file": "tenant1/Account.json",
      "ctxId": "/default/tenant1"
    },
    {
      "file": "default/custom-script-1.js",
      "ctxId": "/default",
      "enabled": false
    }
  ]
}"#;

#[test]
fn the_seed_example_parses() {
    let manifest = parse(SEED);
    assert_eq!(manifest.path, Path::new(META));
    assert_eq!(manifest.clear_tables, ClearTables::All);
    assert_eq!(
        manifest.contexts.keys().collect::<Vec<_>>(),
        ["/default", "/default/tenant1"]
    );
    assert_eq!(
        serde_json::Value::Object(manifest.contexts["/default/tenant1"].clone()).to_string(),
        r#"{"id":1,"remoteUser":"tenant1user","tenantId":"/default/tenant1"}"#
    );
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    assert_eq!(manifest.files.len(), 3);

    let customer = &manifest.files[0];
    assert_eq!(customer.index, 0);
    assert_eq!(customer.model.as_deref(), Some("Customer"));
    assert_eq!(customer.file, "default/customer.json");
    assert_eq!(customer.ctx_id.as_deref(), Some("/default"));
    assert!(customer.enabled && customer.skip_validation && customer.update_attributes);
    assert_eq!(customer.key, ["field2"]);
    assert_eq!(customer.kind(), EntryKind::Data(Some(Format::Json)));
    assert_eq!(customer.effective_mode(), FileMode::Update);

    let account = &manifest.files[1];
    assert_eq!(account.index, 1);
    assert!(account.enabled && !account.skip_validation && !account.update_attributes);
    assert!(account.key.is_empty());
    assert_eq!(account.effective_mode(), FileMode::Upsert);

    let script = &manifest.files[2];
    assert_eq!(script.kind(), EntryKind::Script(ScriptKind::Node));
    assert!(!script.enabled);
    assert_eq!(script.model, None);
}

#[test]
fn clear_tables_forms() {
    let cases = [
        (r#"{}"#, ClearTables::None),
        (r#"{"clearTables": false}"#, ClearTables::None),
        (r#"{"clearTables": true}"#, ClearTables::All),
        (
            r#"{"clearTables": ["Customer", "Account"]}"#,
            ClearTables::Tables(vec!["Customer".into(), "Account".into()]),
        ),
        (r#"{"clearTables": []}"#, ClearTables::Tables(vec![])),
    ];
    for (text, expect) in cases {
        assert_eq!(parse(text).clear_tables, expect, "{text}");
    }
}

#[test]
fn empty_and_minimal_manifests() {
    for text in ["{}", "\u{feff}{}", " { } \n", r#"{"files": []}"#, r#"{"contexts": {}}"#] {
        let manifest = parse(text);
        assert_eq!(manifest, Manifest::empty(META), "{text:?}");
    }
}

#[test]
fn extensions_parse() {
    let manifest = parse(
        r#"{
          "contexts": {"/default": {"id": 0}},
          "scripts": {"before": ["pre/a.sql", "pre/b.sh"], "after": ["post.js"]},
          "onError": "skip",
          "tenantColumn": "tenant_id",
          "files": [
            {"model": "A", "file": "a.csv.gz", "mode": "insert-missing", "onError": "stop", "key": ["x", " y "]},
            {"model": "B", "file": "b.txt", "format": "jsonl", "key": "p, q,r"},
            {"model": "C", "file": "c.dat", "format": "CSV", "mode": "update", "updateAttributes": true},
            {"model": "D", "file": "d.ndjson.zst", "mode": "sync"}
          ]
        }"#,
    );
    assert_eq!(manifest.scripts.before, ["pre/a.sql", "pre/b.sh"]);
    assert_eq!(manifest.scripts.after, ["post.js"]);
    assert_eq!(manifest.on_error, Some(OnErrorSpec::Skip));
    assert_eq!(manifest.tenant_column.as_deref(), Some("tenant_id"));
    let files = &manifest.files;
    assert_eq!(files[0].mode, Some(FileMode::InsertMissing));
    assert_eq!(files[0].on_error, Some(OnErrorSpec::Stop));
    assert_eq!(files[0].key, ["x", "y"]);
    assert_eq!(files[0].kind(), EntryKind::Data(Some(Format::Csv)));
    assert_eq!(files[1].key, ["p", "q", "r"]);
    assert_eq!(files[1].kind(), EntryKind::Data(Some(Format::Ndjson)));
    assert_eq!(files[2].kind(), EntryKind::Data(Some(Format::Csv)));
    assert_eq!(files[2].effective_mode(), FileMode::Update);
    assert_eq!(files[3].effective_mode(), FileMode::Sync);
}

#[test]
fn the_baseline_extension_parses_is_checked_and_round_trips() {
    assert_eq!(parse("{}").baseline, None);
    assert_eq!(parse(r#"{"baseline": false}"#).baseline, None);
    assert_eq!(parse(r#"{"baseline": true}"#).baseline, Some(Baseline::default()));
    let manifest = parse(r#"{"baseline": {"covers": ["1.1.0", "01.0.0", "1.1.0"], "replaces": "abc", "typo": 1}}"#);
    assert_eq!(
        manifest.baseline,
        Some(Baseline {
            covers: vec![Version::new(1, 0, 0), Version::new(1, 1, 0)],
            replaces: Some("abc".into()),
        })
    );
    assert_eq!(
        manifest.warnings,
        [r#"db/1.0.0/meta.json: baseline: unknown key "typo" is ignored: check its spelling"#]
    );
    for text in [
        r#"{"baseline": true}"#,
        r#"{"baseline": {"covers": ["1.0.0"], "replaces": "x"}}"#,
    ] {
        let manifest = parse(text);
        let written = manifest.to_json_pretty();
        assert_eq!(parse(&written), manifest, "{written}");
    }
    for (text, want) in [
        (
            r#"{"baseline": 1}"#,
            r#"db/1.0.0/meta.json:1:14: "baseline" is a number: use true, or an object such as {"covers": ["1.0.0", "1.1.0"], "replaces": "<checksum>"}"#,
        ),
        (
            r#"{"baseline": {"covers": ["v1"]}}"#,
            r#"db/1.0.0/meta.json:1:31: "baseline.covers" holds "v1", which is not a version: versions are named x.y.z"#,
        ),
        (
            r#"{"baseline": {"covers": "1.0.0"}}"#,
            r#"db/1.0.0/meta.json:1:32: "baseline.covers" must be an array of versions such as ["1.0.0", "1.1.0"]"#,
        ),
        (
            r#"{"baseline": {"replaces": ""}}"#,
            r#"db/1.0.0/meta.json:1:29: "baseline.replaces" is empty: give a value or leave the key out"#,
        ),
    ] {
        let error = parse_manifest(Path::new(META), text).unwrap_err().to_string();
        assert_eq!(error, want, "{text}");
    }
}

#[test]
fn entry_kinds() {
    let entry = |file: &str, model: Option<&str>, format: Option<Format>| {
        let mut entry = FileEntry::new(0, model.map(str::to_owned), file);
        entry.format = format;
        entry.kind()
    };
    let cases = [
        (entry("a.json", Some("A"), None), EntryKind::Data(Some(Format::Json))),
        (entry("a.JSON.gz", Some("A"), None), EntryKind::Data(Some(Format::Json))),
        (
            entry("a.ndjson.zst", Some("A"), None),
            EntryKind::Data(Some(Format::Ndjson)),
        ),
        (entry("a.jsonl", Some("A"), None), EntryKind::Data(Some(Format::Ndjson))),
        (entry("a.csv", Some("A"), None), EntryKind::Data(Some(Format::Csv))),
        (
            entry("a.txt", Some("A"), Some(Format::Csv)),
            EntryKind::Data(Some(Format::Csv)),
        ),
        (
            entry("a.js", None, Some(Format::Json)),
            EntryKind::Data(Some(Format::Json)),
        ),
        // Built by hand only: parse_manifest refuses a data entry whose format is unknown.
        (entry("a.txt", Some("A"), None), EntryKind::Data(None)),
        (entry("s.sql", None, None), EntryKind::Script(ScriptKind::Sql)),
        (entry("s.SQL", None, None), EntryKind::Script(ScriptKind::Sql)),
        (entry("s.js", None, None), EntryKind::Script(ScriptKind::Node)),
        // oe-migration ignores "model" for a script.
        (entry("s.js", Some("A"), None), EntryKind::Script(ScriptKind::Node)),
        (entry("s.mjs", None, None), EntryKind::Script(ScriptKind::Node)),
        (entry("s.py", None, None), EntryKind::Script(ScriptKind::Python)),
        (entry("s.sh", None, None), EntryKind::Script(ScriptKind::Shell)),
        (entry("bin/tool", None, None), EntryKind::Script(ScriptKind::Executable)),
        (entry("tool.exe", None, None), EntryKind::Script(ScriptKind::Executable)),
    ];
    for (index, (kind, expect)) in cases.into_iter().enumerate() {
        assert_eq!(kind, expect, "case {index}");
    }
}

#[test]
fn effective_modes() {
    let cases = [
        (None, false, FileMode::Upsert),
        (None, true, FileMode::Update),
        (Some(FileMode::Insert), false, FileMode::Insert),
        (Some(FileMode::Update), true, FileMode::Update),
        (Some(FileMode::Sync), false, FileMode::Sync),
    ];
    for (mode, update_attributes, expect) in cases {
        let mut entry = FileEntry::new(0, Some("A".into()), "a.json");
        entry.mode = mode;
        entry.update_attributes = update_attributes;
        assert_eq!(entry.effective_mode(), expect, "{mode:?} {update_attributes}");
    }
}

#[test]
fn mode_and_policy_names() {
    for mode in FileMode::ALL {
        assert_eq!(mode.name().parse(), Ok(mode));
        assert_eq!(mode.to_string(), mode.name());
    }
    assert_eq!(
        "merge".parse::<FileMode>(),
        Err(r#""merge" is not a write mode: use insert, upsert, update, insert-missing or sync"#.to_owned())
    );
    assert_eq!("stop".parse(), Ok(OnErrorSpec::Stop));
    assert_eq!(
        "ignore".parse::<OnErrorSpec>(),
        Err(r#""ignore" is not an error policy: use rollback, skip or stop"#.to_owned())
    );
}

/// Every error, with its place: (meta.json text, the error's Display).
#[test]
fn errors_name_the_file_the_place_and_the_entry() {
    let entry = |extra: &str| format!(r#"{{"files": [{{"model": "A", "file": "a.json"{extra}}}]}}"#);
    let cases: Vec<(String, &str)> = vec![
        // Not JSON, or not an object.
        (
            "".into(),
            "db/1.0.0/meta.json: is empty: `{}` is the smallest valid meta.json",
        ),
        (
            " \n ".into(),
            "db/1.0.0/meta.json: is empty: `{}` is the smallest valid meta.json",
        ),
        (
            "[1, 2]".into(),
            r#"db/1.0.0/meta.json:1:1: is not a JSON object: meta.json holds one object such as {"contexts": {…}, "files": […]}"#,
        ),
        (
            "\n  \"x\"".into(),
            r#"db/1.0.0/meta.json:2:3: is not a JSON object: meta.json holds one object such as {"contexts": {…}, "files": […]}"#,
        ),
        (
            "42".into(),
            r#"db/1.0.0/meta.json:1:1: is not a JSON object: meta.json holds one object such as {"contexts": {…}, "files": […]}"#,
        ),
        (
            r#"{"files": [}"#.into(),
            "db/1.0.0/meta.json:1:12: expected value: fix the JSON (comments and trailing commas are not allowed)",
        ),
        (
            "{\n  // the seed's comments\n  \"files\": []\n}".into(),
            "db/1.0.0/meta.json:2:3: key must be a string: fix the JSON (comments and trailing commas are not allowed)",
        ),
        (
            r#"{"files": [],}"#.into(),
            "db/1.0.0/meta.json:1:14: trailing comma: fix the JSON (comments and trailing commas are not allowed)",
        ),
        (
            "{} {}".into(),
            "db/1.0.0/meta.json:1:4: trailing characters: fix the JSON (comments and trailing commas are not allowed)",
        ),
        // "files" not an array, or an entry not an object.
        (
            r#"{"files": {}}"#.into(),
            r#"db/1.0.0/meta.json:1:12: "files" is an object: use an array of entries such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        (
            r#"{"files": 3}"#.into(),
            r#"db/1.0.0/meta.json:1:11: "files" is a number: use an array of entries such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        (
            r#"{"files": "a.json"}"#.into(),
            r#"db/1.0.0/meta.json:1:18: "files" is a string: use an array of entries such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        (
            r#"{"files": null}"#.into(),
            r#"db/1.0.0/meta.json:1:14: "files" is null: use an array of entries such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        (
            r#"{"files": [3]}"#.into(),
            r#"db/1.0.0/meta.json:1:12: files[0] is a number: each entry is an object such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        (
            r#"{"files": [{"model": "A", "file": "a.json"}, []]}"#.into(),
            r#"db/1.0.0/meta.json:1:47: files[1] is an array: each entry is an object such as {"model": "Customer", "file": "default/customer.json", "ctxId": "/default"}"#,
        ),
        // Entries.
        (
            r#"{"files": [{"model": "A"}]}"#.into(),
            r#"db/1.0.0/meta.json:1:25: files[0]: has no "file": give the path of the data file or script, relative to the version folder"#,
        ),
        (
            r#"{"files": [{"file": "a.json"}]}"#.into(),
            r#"db/1.0.0/meta.json:1:29: files[0]: "a.json" is a data file but the entry has no "model": name the model (table) to load it into"#,
        ),
        (
            r#"{"files": [{"file": "a.txt", "format": "csv"}]}"#.into(),
            r#"db/1.0.0/meta.json:1:45: files[0]: "a.txt" is a data file but the entry has no "model": name the model (table) to load it into"#,
        ),
        (
            r#"{"files": [{"model": "A", "file": "a.txt"}]}"#.into(),
            r#"db/1.0.0/meta.json:1:42: files[0]: cannot tell the data format of "a.txt": name it .json, .ndjson, .jsonl or .csv (optionally followed by .gz or .zst), or give "format""#,
        ),
        (
            entry(r#", "file": "b.json""#),
            r#"db/1.0.0/meta.json:1:50: files[0]: "file" is given twice: keep one"#,
        ),
        (
            entry(r#", "mode": "merge""#),
            r#"db/1.0.0/meta.json:1:59: files[0]: "mode": "merge" is not a write mode: use insert, upsert, update, insert-missing or sync"#,
        ),
        (
            entry(r#", "mode": 1"#),
            r#"db/1.0.0/meta.json:1:53: files[0]: "mode" is a number: use "insert", "upsert", "update", "insert-missing" or "sync""#,
        ),
        (
            entry(r#", "mode": "upsert", "updateAttributes": true"#),
            r#"db/1.0.0/meta.json:1:87: files[0]: "mode": "upsert" contradicts "updateAttributes": true (which means mode update): remove one of them"#,
        ),
        (
            entry(r#", "updateAttributes": true, "mode": "insert""#),
            r#"db/1.0.0/meta.json:1:87: files[0]: "mode": "insert" contradicts "updateAttributes": true (which means mode update): remove one of them"#,
        ),
        (
            entry(r#", "format": "xml""#),
            r#"db/1.0.0/meta.json:1:59: files[0]: "format": unknown data format "xml": use csv, ndjson, jsonl or json"#,
        ),
        (
            entry(r#", "format": true"#),
            r#"db/1.0.0/meta.json:1:58: files[0]: "format" is a boolean: use "csv", "ndjson", "jsonl" or "json""#,
        ),
        (
            entry(r#", "onError": "ignore""#),
            r#"db/1.0.0/meta.json:1:63: files[0]: "onError": "ignore" is not an error policy: use rollback, skip or stop"#,
        ),
        (
            entry(r#", "key": """#),
            r#"db/1.0.0/meta.json:1:53: files[0]: "key" is empty or has an empty column name: name the key columns, as "a", "a,b" or ["a", "b"], or leave "key" out to use the primary key"#,
        ),
        (
            entry(r#", "key": []"#),
            r#"db/1.0.0/meta.json:1:53: files[0]: "key" is empty or has an empty column name: name the key columns, as "a", "a,b" or ["a", "b"], or leave "key" out to use the primary key"#,
        ),
        (
            entry(r#", "key": "a,,b""#),
            r#"db/1.0.0/meta.json:1:57: files[0]: "key" is empty or has an empty column name: name the key columns, as "a", "a,b" or ["a", "b"], or leave "key" out to use the primary key"#,
        ),
        (
            entry(r#", "key": [1]"#),
            r#"db/1.0.0/meta.json:1:54: files[0]: "key" holds a number: use column names, as "a", "a,b" or ["a", "b"]"#,
        ),
        (
            entry(r#", "enabled": "no""#),
            r#"db/1.0.0/meta.json:1:59: files[0]: "enabled" is a string: use true or false"#,
        ),
        (
            entry(r#", "model": """#).replacen(r#""model": "A", "#, "", 1),
            r#"db/1.0.0/meta.json:1:41: files[0]: "model" is empty: give a value or leave the key out"#,
        ),
        // Top-level keys.
        (
            r#"{"files": [], "files": []}"#.into(),
            r#"db/1.0.0/meta.json:1:21: "files" is given twice: keep one"#,
        ),
        (
            r#"{"clearTables": "yes"}"#.into(),
            r#"db/1.0.0/meta.json:1:21: "clearTables" is a string: use true, false or an array of table names"#,
        ),
        (
            r#"{"clearTables": ["A", 1]}"#.into(),
            r#"db/1.0.0/meta.json:1:24: "clearTables" holds a number: use true, false or an array of table names"#,
        ),
        (
            r#"{"clearTables": [""]}"#.into(),
            r#"db/1.0.0/meta.json:1:20: "clearTables" holds an empty table name: name the tables to clear"#,
        ),
        (
            r#"{"contexts": []}"#.into(),
            r#"db/1.0.0/meta.json:1:15: "contexts" is an array: use an object of contexts such as {"/default": {"tenantId": "/default", "remoteUser": "admin"}}"#,
        ),
        (
            r#"{"contexts": {"/default": 1}}"#.into(),
            r#"db/1.0.0/meta.json:1:28: context "/default" is a number: each context is an object such as {"tenantId": "/default", "remoteUser": "admin"}"#,
        ),
        (
            r#"{"onError": "ignore"}"#.into(),
            r#"db/1.0.0/meta.json:1:20: "onError": "ignore" is not an error policy: use rollback, skip or stop"#,
        ),
        (
            r#"{"onError": 0}"#.into(),
            r#"db/1.0.0/meta.json:1:13: "onError" is a number: use "rollback", "skip" or "stop""#,
        ),
        (
            r#"{"scripts": []}"#.into(),
            r#"db/1.0.0/meta.json:1:14: "scripts" is an array: use an object such as {"before": ["a.sql"], "after": ["b.js"]}"#,
        ),
        (
            r#"{"scripts": {"before": "a.sql"}}"#.into(),
            r#"db/1.0.0/meta.json:1:31: "scripts.before" must be an array of script paths, relative to the version folder"#,
        ),
        (
            r#"{"tenantColumn": ""}"#.into(),
            r#"db/1.0.0/meta.json:1:19: "tenantColumn" is empty: give a value or leave the key out"#,
        ),
        // A ctxId that is none of the contexts (checked once the whole file is read).
        (
            r#"{"contexts": {"/default": {}, "/default/tenant1": {}},
                "files": [{"model": "A", "file": "a.json", "ctxId": "/default"},
                          {"model": "B", "file": "b.json", "ctxId": "/default/t9"}]}"#
                .into(),
            r#"db/1.0.0/meta.json: files[1]: ctxId "/default/t9" is not one of the contexts: /default, /default/tenant1"#,
        ),
        (
            r#"{"files": [{"model": "A", "file": "a.json", "ctxId": "/default"}]}"#.into(),
            r#"db/1.0.0/meta.json: files[0]: ctxId "/default" names no context: "contexts" is empty or missing: add it to "contexts""#,
        ),
    ];
    crate::support::check_errors(&cases, |text| parse_manifest(Path::new(META), text), |e| e.is_invalid());
}

#[test]
fn the_place_of_an_error_in_a_long_file() {
    let text = "{\n  \"contexts\": {\"/default\": {}},\n  \"files\": [\n    {\"model\": \"A\", \"file\": \"a.json\"},\n    {\"model\": \"B\", \"file\": \"b.json\",\n     \"mode\": \"upsret\", \"ctxId\": \"/default\"}\n  ]\n}\n";
    let error = parse_manifest(Path::new(META), text).expect_err("bad mode");
    let lockgate_bundle::BundleError::Invalid { path, line, column, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!((path.as_path(), *line, *column), (Path::new(META), Some(6), Some(21)));
    assert_eq!(
        error.to_string(),
        r#"db/1.0.0/meta.json:6:21: files[1]: "mode": "upsret" is not a write mode: use insert, upsert, update, insert-missing or sync"#
    );
}

#[test]
fn unknown_keys_are_warnings() {
    let manifest = parse(
        r#"{
          "filez": [],
          "contexts": {"/default": {"anything": ["goes", {"here": 1}]}},
          "files": [{"modle": "A", "model": "B", "file": "a.json", "skipValidaton": true},
                    {"model": "C", "file": "run.js"}],
          "scripts": {"during": ["x.sql"]}
        }"#,
    );
    assert_eq!(
        manifest.warnings,
        [
            r#"db/1.0.0/meta.json: files[0]: unknown key "modle" is ignored: check its spelling"#,
            r#"db/1.0.0/meta.json: files[0]: unknown key "skipValidaton" is ignored: check its spelling"#,
            r#"db/1.0.0/meta.json: files[1]: "model" is ignored: "run.js" is a script, not a data file"#,
            r#"db/1.0.0/meta.json: scripts: unknown key "during" is ignored: check its spelling"#,
            r#"db/1.0.0/meta.json: unknown key "filez" is ignored: check its spelling"#,
        ]
    );
    assert_eq!(manifest.files.len(), 2);
    assert!(manifest.scripts.is_empty());
}

#[test]
fn to_json_pretty_writes_the_oe_migration_format() {
    let manifest = parse(SEED);
    let text = manifest.to_json_pretty();
    assert_eq!(
        text,
        r#"{
  "clearTables": true,
  "contexts": {
    "/default": {
      "id": 0,
      "remoteUser": "defaultuser",
      "tenantId": "/default"
    },
    "/default/tenant1": {
      "id": 1,
      "remoteUser": "tenant1user",
      "tenantId": "/default/tenant1"
    }
  },
  "files": [
    {
      "model": "Customer",
      "file": "default/customer.json",
      "ctxId": "/default",
      "skipValidation": true,
      "updateAttributes": true,
      "key": "field2"
    },
    {
      "model": "Account",
      "file": "tenant1/Account.json",
      "ctxId": "/default/tenant1"
    },
    {
      "file": "default/custom-script-1.js",
      "ctxId": "/default",
      "enabled": false
    }
  ]
}
"#
    );
    assert_eq!(parse(&text), manifest);
}

#[test]
fn round_trips_through_to_json_pretty() {
    let texts = [
        SEED,
        "{}",
        r#"{"clearTables": ["A", "B"], "contexts": {"/default": {"id": 12345678901234567890.25, "big": 1e400}},
            "scripts": {"after": ["post.sql"]}, "onError": "stop", "tenantColumn": "tenant",
            "files": [
              {"model": "A", "file": "a.csv", "key": ["k,1", "k2"], "mode": "sync", "onError": "skip", "ctxId": "/default"},
              {"model": "B", "file": "b.dat", "format": "ndjson", "key": "x, y"},
              {"model": "C", "file": "c.json", "key": "only", "updateAttributes": true, "mode": "update"},
              {"file": "s.sh", "enabled": false}
            ]}"#,
    ];
    for text in texts {
        let manifest = parse(text);
        let written = manifest.to_json_pretty();
        let again = parse(&written);
        assert_eq!(again, manifest, "{written}");
        assert_eq!(again.to_json_pretty(), written);
    }
    // Unset extensions are left out, so oe-migration reads the output.
    let written = parse(SEED).to_json_pretty();
    for key in [
        "\"mode\"",
        "\"format\"",
        "\"onError\"",
        "\"scripts\"",
        "\"tenantColumn\"",
    ] {
        assert!(!written.contains(key), "{key} in {written}");
    }
}

#[test]
fn a_hand_built_manifest_round_trips() {
    let mut manifest = Manifest::empty(META);
    manifest.clear_tables = ClearTables::Tables(vec!["Customer".into()]);
    manifest.contexts.insert("/default".into(), serde_json::Map::new());
    let mut entry = FileEntry::new(0, Some("Customer".into()), "default/Customer.json");
    entry.ctx_id = Some("/default".into());
    entry.key = vec!["a,b".into()];
    manifest.files.push(entry);
    let mut script = FileEntry::new(1, None, "default/fix.sql");
    script.on_error = Some(OnErrorSpec::Rollback);
    manifest.files.push(script);
    assert_eq!(parse(&manifest.to_json_pretty()), manifest);
}
