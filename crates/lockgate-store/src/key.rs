//! Keys and prefixes checked before they reach object_store, so that a folder store and
//! a bucket accept exactly the same names and no key escapes the store's root.

use crate::StoreError;
use object_store::path::Path;

/// Checks one `/`-separated segment run (a whole key, or the part of a prefix before its
/// last `/`). `what` names it in messages ("key", "prefix").
pub(crate) fn check_segments(text: &str, whole: &str, what: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        StoreError::Input(format!(
            "bad {what} {whole:?}: {why}; use a relative path of `/`-separated names such as \
             customer1/20261207T101500Z-ab12cd/customers.tsv.zst"
        ))
    };
    if text.starts_with('/') {
        return Err(bad("it starts with `/`"));
    }
    if text.contains('\\') {
        return Err(bad("it has a backslash"));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("it has a control character"));
    }
    // A folder store keeps unfinished writes as `NAME#N` files beside the target and
    // hides such names from listings: a key of that form would vanish, so `#` is refused
    // on every store alike.
    if text.contains('#') {
        return Err(bad("it has a `#`"));
    }
    for segment in text.split('/') {
        match segment {
            "" => return Err(bad("it has an empty segment (`//` or a `/` at the end)")),
            "." | ".." => return Err(bad("it has a `.` or `..` segment")),
            _ => {}
        }
    }
    Ok(())
}

/// The object_store path of a key, after the checks.
pub(crate) fn key_path(key: &str) -> Result<Path, StoreError> {
    if key.is_empty() {
        return Err(StoreError::Input(
            "bad key \"\": it is empty; name an object such as customer1/20261207T101500Z-ab12cd/manifest.json".into(),
        ));
    }
    check_segments(key, key, "key")?;
    Path::parse(key).map_err(|e| StoreError::Input(format!("bad key {key:?}: {e}")))
}

/// A listing prefix split into the folder object_store lists (everything up to the last
/// `/`, checked like a key) and the whole prefix the listed keys must start with.
pub(crate) fn prefix_dir(prefix: &str) -> Result<Option<Path>, StoreError> {
    let Some((dir, rest)) = prefix.rsplit_once('/') else {
        if !prefix.is_empty() {
            check_segments(prefix, prefix, "prefix")?;
        }
        return Ok(None);
    };
    check_segments(dir, prefix, "prefix")?;
    if !rest.is_empty() {
        check_segments(rest, prefix, "prefix")?;
    }
    Path::parse(dir)
        .map(Some)
        .map_err(|e| StoreError::Input(format!("bad prefix {prefix:?}: {e}")))
}
