//! Files: format and compression from the name, decompression, and errors about the file
//! as a whole.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use lockgate_bundle::{detect, open_records, Compression, Format, ReadError, RecordReader};

use crate::support::render;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Renders with the file name shortened to its last component, so expectations do not
/// depend on where the repository or the temp dir is.
fn render_file(path: &Path, format: Option<Format>) -> String {
    let shorten = |mut error: ReadError| {
        error.file = Path::new(&error.file)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        error
    };
    let reader = open_records(path, format).map_err(shorten);
    let rendered = render(reader);
    rendered.replace(
        &path.display().to_string(),
        &path.file_name().unwrap_or_default().to_string_lossy(),
    )
}

const CUSTOMERS_CSV: &str = r#"@2 customer_id="1" first_name="Ann" phone=null city="Oslo" lifetime_value="12.50"; @3 customer_id="2" first_name="O'Neil, Jo" phone="" city="São Paulo" lifetime_value=null; @4 customer_id="3" first_name="Zoë \"Z\"" phone="+1-555-0003" city="Lyon\r\nCentre" lifetime_value="99999999999999999999.99""#;
const CUSTOMERS_NDJSON: &str = r#"@1 customer_id=1 first_name="Ann" phone=null city="Oslo" lifetime_value=12.50; @2 customer_id=2 first_name="O'Neil, Jo" phone="" city="São Paulo"; @4 customer_id=3 first_name="Zoë \"Z\"" phone="+1-555-0003" city="Lyon\r\nCentre" lifetime_value=99999999999999999999.99"#;
const CUSTOMERS_JSON: &str = r#"@2 customer_id=1 first_name="Ann" phone=null city="Oslo" lifetime_value=12.50; @3 customer_id=2 first_name="O'Neil, Jo" phone="" city="São Paulo"; @4 customer_id=3 first_name="Zoë \"Z\"" phone="+1-555-0003" city="Lyon\r\nCentre" lifetime_value=99999999999999999999.99"#;

#[test]
fn detect_format_and_compression_from_the_name() {
    let cases = [
        ("a.csv", Some(Format::Csv), Compression::None),
        ("a.csv.gz", Some(Format::Csv), Compression::Gzip),
        ("b.JSONL", Some(Format::Ndjson), Compression::None),
        ("b.ndjson.ZST", Some(Format::Ndjson), Compression::Zstd),
        ("c.json.zst", Some(Format::Json), Compression::Zstd),
        ("dir.csv/c.json", Some(Format::Json), Compression::None),
        ("d.txt", None, Compression::None),
        ("e.gz", None, Compression::Gzip),
        ("json", None, Compression::None),
        ("f.csv.bak", None, Compression::None),
        ("", None, Compression::None),
    ];
    for (name, format, compression) in cases {
        assert_eq!(detect(Path::new(name)), (format, compression), "{name}");
    }
}

#[test]
fn format_names() {
    assert_eq!("csv".parse(), Ok(Format::Csv));
    assert_eq!("NDJSON".parse(), Ok(Format::Ndjson));
    assert_eq!("jsonl".parse(), Ok(Format::Ndjson));
    assert_eq!("json".parse(), Ok(Format::Json));
    let error = "xml".parse::<Format>().expect_err("not a format");
    assert_eq!(
        error.to_string(),
        r#"unknown data format "xml": use csv, ndjson, jsonl or json"#
    );
    assert_eq!(Format::Ndjson.to_string(), "ndjson");
    assert_eq!(
        serde_json::to_string(&Format::Ndjson).ok().as_deref(),
        Some(r#""ndjson""#)
    );
}

#[test]
fn the_same_customers_in_every_format() {
    assert_eq!(render_file(&data("customers.csv"), None), CUSTOMERS_CSV);
    assert_eq!(render_file(&data("customers.ndjson"), None), CUSTOMERS_NDJSON);
    assert_eq!(render_file(&data("customers.json"), None), CUSTOMERS_JSON);
}

#[test]
fn compressed_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["customers.csv", "customers.ndjson", "customers.json"] {
        let plain = fs::read(data(name)).expect("test data");
        let gz = dir.path().join(format!("{name}.gz"));
        fs::write(&gz, gzip(&plain)).expect("writes");
        let zst = dir.path().join(format!("{name}.zst"));
        fs::write(&zst, zstd::encode_all(&plain[..], 3).expect("compresses")).expect("writes");
        let expect = render_file(&data(name), None);
        assert_eq!(render_file(&gz, None), expect, "{name}.gz");
        assert_eq!(render_file(&zst, None), expect, "{name}.zst");
    }
}

#[test]
fn gzip_members_are_read_one_after_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("two.csv.gz");
    let mut bytes = gzip(b"a,b\n1,2\n");
    bytes.extend(gzip(b"3,4\n"));
    fs::write(&path, bytes).expect("writes");
    assert_eq!(render_file(&path, None), r#"@2 a="1" b="2"; @3 a="3" b="4""#);
}

#[test]
fn corrupt_compressed_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.csv.gz");
    fs::write(&path, b"this is not gzip").expect("writes");
    let rendered = render_file(&path, None);
    assert!(rendered.starts_with("error: bad.csv.gz:1: cannot read: "), "{rendered}");
    let path = dir.path().join("bad.json.zst");
    fs::write(&path, b"this is not zstd either").expect("writes");
    let rendered = render_file(&path, None);
    assert!(
        rendered.starts_with("error: bad.json.zst:1: cannot read: "),
        "{rendered}"
    );
}

#[test]
fn empty_files_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: [(&str, Vec<u8>); 7] = [
        ("e.csv", Vec::new()),
        ("e.ndjson", Vec::new()),
        ("e.json", Vec::new()),
        ("w.json", b" \n\t\r\n".to_vec()),
        ("e.csv.gz", gzip(b"")),
        ("w.ndjson.gz", gzip(b"\n\n")),
        ("e.json.zst", zstd::encode_all(&b""[..], 3).expect("compresses")),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).expect("writes");
        assert_eq!(
            render_file(&path, None),
            format!("error: {name}: is empty: nothing to load")
        );
    }
    assert_eq!(
        render_file(&data("empty.csv"), None),
        "error: empty.csv: is empty: nothing to load"
    );
}

#[test]
fn file_errors() {
    assert_eq!(
        render_file(&data("missing.csv"), None),
        "error: missing.csv: no such file: check the path (relative paths start at the current directory)"
    );
    assert_eq!(
        render_file(&data("notes.txt"), None),
        "error: notes.txt: cannot tell the data format from the file name: name it .csv, .ndjson, .jsonl or .json (optionally followed by .gz or .zst), or give the format"
    );
    assert_eq!(render_file(&data("notes.txt"), Some(Format::Csv)), r#"@2 a="1" b="2""#);
    // A given format wins over the extension.
    assert_eq!(
        render_file(&data("customers.csv"), Some(Format::Ndjson)),
        "error: customers.csv:1:1: expected a JSON object, found 'c'"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("folder.csv");
    fs::create_dir(&folder).expect("creates");
    assert_eq!(
        render_file(&folder, None),
        "error: folder.csv: is a directory, not a data file: give a file"
    );
}

#[test]
fn readers_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let reader: Box<dyn RecordReader> = open_records(&data("customers.csv"), None).expect("opens");
    assert_send(&reader);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compresses");
    encoder.finish().expect("compresses")
}
