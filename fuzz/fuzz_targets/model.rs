//! Model definitions: any bytes either fail to parse or give a model whose every
//! `dataType` matches the pattern `PropertyDef::data_type` documents (it is spliced into
//! DDL), and whose properties are named, once each.

#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockgate_bundle::parse_model;
use regex::bytes::Regex;

/// `^[A-Za-z][A-Za-z ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$` with `\s` as Rust's ASCII
/// whitespace (space, tab, LF, FF, CR) and `\d` as ASCII digits, written out so that the
/// check does not depend on the regex crate's Unicode classes. `\z`, not `$`: no trailing
/// newline slips through.
static DATA_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    let s = r"[ \t\n\x0C\r]";
    Regex::new(&format!(
        r"(?-u)\A[A-Za-z][A-Za-z ]*(\({s}*[0-9]+{s}*(,{s}*[0-9]+{s}*)?\))?\z"
    ))
    .expect("the pattern compiles")
});

fuzz_target!(|data: &[u8]| {
    // Text that is not UTF-8 cannot be a model file: the caller reads it with
    // `fs::read_to_string`. Lossy conversion lets the fuzzer reach the parser anyway.
    let text = String::from_utf8_lossy(data);
    let Ok(model) = parse_model(Path::new("db/1.0.0/ddl/m.json"), &text) else {
        return;
    };
    assert!(!model.name.is_empty(), "a model without a name");
    let mut names = HashSet::new();
    for property in &model.properties {
        assert!(!property.name.is_empty(), "a property without a name");
        assert!(names.insert(&property.name), "property {:?} twice", property.name);
        if let Some(data_type) = &property.data_type {
            assert!(
                DATA_TYPE.is_match(data_type.as_bytes()),
                "dataType {data_type:?} of {:?} does not match the documented pattern\ninput: {text:?}",
                property.name
            );
        }
    }
});
