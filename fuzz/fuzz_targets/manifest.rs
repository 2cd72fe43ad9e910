//! `meta.json`: any text either fails to parse or parses to a manifest that
//! `to_json_pretty` writes back to text parsing to the same manifest (warnings aside:
//! unknown keys are not written), and writing that again gives the same text.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lockgate_bundle::parse_manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("db/1.0.0/meta.json");
    let Ok(mut manifest) = parse_manifest(path, text) else {
        return;
    };
    let written = manifest.to_json_pretty();
    let mut again = match parse_manifest(path, &written) {
        Ok(again) => again,
        Err(error) => panic!("the written manifest does not parse: {error}\ninput: {text:?}\nwritten:\n{written}"),
    };
    // Unknown keys are not written, so reading back may only repeat warnings, such as a
    // script entry's ignored "model", never add one.
    for warning in &again.warnings {
        assert!(
            manifest.warnings.contains(warning),
            "the written manifest has a new warning: {warning}\ninput: {text:?}\nwritten:\n{written}"
        );
    }
    manifest.warnings.clear();
    again.warnings.clear();
    assert_eq!(
        manifest, again,
        "the round trip changed the manifest\ninput: {text:?}\nwritten:\n{written}"
    );
    // Written twice, the same text: the output is a fixed point.
    assert_eq!(again.to_json_pretty(), written, "writing is not stable");
});
