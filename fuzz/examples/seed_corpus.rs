//! Writes the seed corpora under `fuzz/corpus/<target>/` (committed; run it again after
//! changing the seeds): `cargo run --example seed_corpus` from `fuzz/`, no nightly flags
//! needed. Real meta.json and model files (the oe-migration documentation's example, seed
//! 001, and Lockgate's extensions), and small zips: one written by `write_zip` and others
//! made here with each compression method, folders, and hostile names.

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const MANIFESTS: &[(&str, &str)] = &[
    ("empty", "{}"),
    (
        "oe-migration-doc",
        r#"{
  "clearTables": true,
  "contexts": {
    "/default": {"id": 0, "tenantId": "/default", "remoteUser": "defaultuser"},
    "/default/tenant1": {"id": 1, "tenantId": "/default/tenant1", "remoteUser": "tenant1user"}
  },
  "files": [
    {"skipValidation": true, "updateAttributes": true, "key": "field2", "model": "Customer",
     "enabled": true, "file": "default/customer.json", "ctxId": "/default"},
    {"model": "Account", "enabled": true, "file": "tenant1/Account.json", "ctxId": "/default/tenant1"},
    {"file": "default/custom-script-1.js", "ctxId": "/default", "enabled": false}
  ]
}
"#,
    ),
    (
        "extensions",
        "\u{feff}{\"clearTables\": [\"Customer\", \"Account\"], \"onError\": \"skip\", \"tenantColumn\": \"tenant_id\",
 \"scripts\": {\"before\": [\"pre.sql\"], \"after\": [\"post.py\", \"post.sh\"]},
 \"contexts\": {\"/default\": {\"id\": 0, \"amount\": 1.50e3, \"tags\": [null, true, {}]}},
 \"files\": [
  {\"model\": \"Customer\", \"file\": \"default/c.csv.gz\", \"key\": [\"a\", \"b,c\"], \"mode\": \"sync\", \"onError\": \"stop\"},
  {\"model\": \"Account\", \"file\": \"default/a.dat\", \"format\": \"ndjson\", \"mode\": \"insert-missing\", \"ctxId\": \"/default\"},
  {\"model\": \"Note\", \"file\": \"n.jsonl.zst\", \"key\": \"x, y\", \"updateAttributes\": true, \"mode\": \"update\"},
  {\"file\": \"bin/run\", \"typo\": 1}
 ],
 \"unknownTop\": {\"x\": [1, 2]}}
",
    ),
];

const MODELS: &[(&str, &str)] = &[
    (
        "customer",
        r#"{"name": "Customer", "base": "BaseEntity", "plural": "Customers", "table": "customer",
 "properties": {"name": {"type": "string", "required": true, "max": 100}, "age": "number",
                "status": {"type": "string", "default": "active"}, "code": {"type": "string", "id": true},
                "tags": ["string"], "address": {"type": {"street": "string"}}},
 "mixins": {"MultiTenancyMixin": true}, "autoscope": ["tenantId"], "relations": {}, "acls": []}
"#,
    ),
    (
        "account",
        r#"{"name": "Account", "options": {"postgresql": {"table": "account"}},
 "properties": {"id": {"type": "integer", "id": 1}, "balance": {"type": "number", "precision": 12, "scale": 2,
                "dataType": "numeric(12, 2)"}, "kind": {"type": "string", "length": 20, "max": 20,
                "postgresql": {"dataType": "varchar(20)"}, "mysql": {"dataType": "char ( 20 )"}},
                "opened": {"type": "date", "retype": true}, "flag": "Boolean", "blob": "buffer"},
 "drop": ["old_column"], "mysql": {"table": "acct"}}
"#,
    ),
];

/// A zip in memory: (name, content, method); a name ending in `/` is a folder.
fn zip_of(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content, method) in entries {
        let options = SimpleFileOptions::default().compression_method(*method);
        if name.ends_with('/') {
            zip.add_directory(*name, options).expect("folder");
        } else {
            zip.start_file(*name, options).expect("start");
            zip.write_all(content).expect("write");
        }
    }
    zip.finish().expect("finish").into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus folder");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    // The text seeds are valid, so that the fuzzer starts from inputs that reach the end.
    for (name, text) in MANIFESTS {
        lockgate_bundle::parse_manifest(Path::new("db/1.0.0/meta.json"), text).expect(name);
        write(&corpus.join("manifest"), name, text.as_bytes());
    }
    for (name, text) in MODELS {
        lockgate_bundle::parse_model(Path::new("db/1.0.0/ddl/m.json"), text).expect(name);
        write(&corpus.join("model"), name, text.as_bytes());
    }

    let zips = corpus.join("zip");
    // What `lockgate dump --zip` writes.
    let temp = tempfile::tempdir().expect("temp");
    let db = temp.path().join("db");
    for (path, content) in [
        ("1.0.0/meta.json", MANIFESTS[1].1),
        ("1.0.0/default/customer.json", r#"[{"id": 1, "name": "a"}]"#),
        ("1.0.0/ddl/customer.json", MODELS[0].1),
        ("1.2.0/meta.json", "{}"),
        ("1.2.0/tenant1/a.csv", "id,name\n1,x\n"),
    ] {
        let path = db.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("folders");
        fs::write(path, content).expect("file");
    }
    let out = temp.path().join("db.zip");
    lockgate_bundle::write_zip(&db, &out).expect("write_zip");
    write(&zips, "write_zip", &fs::read(&out).expect("zip"));

    use CompressionMethod::{Deflated, Stored, Zstd};
    let data: &[u8] = b"[{\"id\": 1}, {\"id\": 2}, {\"id\": 3}, {\"id\": 4}, {\"id\": 5}]";
    write(
        &zips,
        "methods",
        &zip_of(&[
            ("db/", b"", Stored),
            ("db/1.0.0/", b"", Stored),
            ("db/1.0.0/stored.json", data, Stored),
            ("db/1.0.0/deflated.json", data, Deflated),
            ("db/1.0.0/zstd.json", data, Zstd),
            ("db/1.0.0/empty.json", b"", Deflated),
        ]),
    );
    write(
        &zips,
        "backslashes",
        &zip_of(&[
            ("1.0.0\\meta.json", b"{}", Stored),
            ("./1.0.0//a\\b.json", b"[]", Deflated),
        ]),
    );
    write(&zips, "dotdot", &zip_of(&[("a/../../evil.txt", b"x", Stored)]));
    write(&zips, "absolute", &zip_of(&[("/tmp/evil.txt", b"x", Stored)]));
    write(
        &zips,
        "twice",
        &zip_of(&[("a.json", b"1", Stored), ("./a.json", b"2", Stored)]),
    );
    // A bomb in miniature: 64 KiB of zeros.
    write(&zips, "zeros", &zip_of(&[("zeros.bin", &[0u8; 65536], Deflated)]));
    write(&zips, "empty", &zip_of(&[]));
    // At the fuzz target's limits (1 MiB per entry, 4 MiB in all, 64 entries) and just past.
    let mib = vec![0u8; 1 << 20];
    write(&zips, "limit-entry", &zip_of(&[("a.bin", &mib, Deflated)]));
    let over = vec![0u8; (1 << 20) + 1];
    write(&zips, "limit-entry-over", &zip_of(&[("a.bin", &over, Deflated)]));
    let names: Vec<String> = (0..5).map(|index| format!("{index}.bin")).collect();
    let five: Vec<(&str, &[u8], CompressionMethod)> =
        names.iter().map(|name| (name.as_str(), &mib[..], Deflated)).collect();
    write(&zips, "limit-total-over", &zip_of(&five));
    let names: Vec<String> = (0..65).map(|index| format!("{index}")).collect();
    let many: Vec<(&str, &[u8], CompressionMethod)> =
        names.iter().map(|name| (name.as_str(), &b"x"[..], Stored)).collect();
    write(&zips, "limit-entries-over", &zip_of(&many));
    println!("seeds written under {}", corpus.display());
}
