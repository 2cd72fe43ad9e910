//! What re-applying an older version (`--force --from V --to V` at a later version)
//! did to rows that later versions changed: its files write their rows as they were
//! at V, over what the later versions made of them, and put back rows a later `sync`
//! deleted. The row images tell which: the images this run of V wrote are compared,
//! row by row, with the images of the later versions that stay applied, and the run
//! warns naming those versions. The images are read a page at a time and compared
//! against the set of rows this run wrote, so the check is linear in the images and
//! holds one page of them.

use lockgate_bundle::Version;
use lockgate_db::versions::{self, ImagePages, StoredImage, IMAGE_PAGE};
use lockgate_db::{Conn, DbError};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where the images of the version about to be re-applied will start.
pub(crate) async fn mark(conn: &mut Conn) -> Result<i64, DbError> {
    versions::last_image_id(conn).await
}

/// A row, as its images name it: table and key (as JSON text).
type RowId = (String, String);

fn row_id(i: &StoredImage) -> RowId {
    (
        i.image.table.clone(),
        serde_json::Value::Object(i.image.key.clone()).to_string(),
    )
}

/// What one later version lost to the re-applied one: the rows it changed that were
/// rewritten, and the rows it deleted that were put back, each counted once (as
/// indexes into the rows written), with the first of each kind for the message.
#[derive(Default)]
struct Hits {
    changed: HashSet<usize>,
    deleted: HashSet<usize>,
    first_changed: Option<RowId>,
    first_deleted: Option<RowId>,
}

/// The warning for `version`, re-applied after `mark`, when it wrote rows that the
/// `later` versions (applied, and not re-applied by this run) changed.
///
/// The images are read a page at a time ([`versions::ImagePages`], bounded in images,
/// without inserted rows' fingerprints, which only a rollback needs): what is held is
/// the set of rows this run wrote (one entry per row) and, per later version, the
/// indexes of the rows it hit, never the later versions' images themselves. Each image
/// is one hash lookup, so the work is linear in the images read. The later versions
/// are named in semver order (1.9.0 before 1.10.0), whatever order `later` is in.
pub(crate) async fn overwritten(
    conn: &mut Conn,
    module: &str,
    version: &str,
    mark: i64,
    later: &[String],
) -> Result<Option<String>, DbError> {
    if later.is_empty() {
        return Ok(None);
    }
    // Semver order: as text, 1.10.0 would come before 1.9.0, and the advice to
    // re-apply `--from` the first of them would skip 1.9.0.
    let mut later = later.to_vec();
    later.sort_by_cached_key(|v| (v.parse::<Version>().ok(), v.clone()));
    later.dedup();
    let rank: HashMap<&str, usize> = later.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
    // Each row this run wrote, with the op of its last image and its index.
    let mut written: HashMap<RowId, (char, usize)> = HashMap::new();
    let mut mine = ImagePages::new(module, &[version.to_string()], mark, IMAGE_PAGE).without_fingerprints();
    while let Some(page) = mine.next_page(conn).await? {
        for img in page {
            let next = written.len();
            let op = img.image.op;
            written
                .entry(row_id(&img))
                .and_modify(|w| w.0 = op)
                .or_insert((op, next));
        }
    }
    if written.is_empty() {
        return Ok(None);
    }
    // Per later version: rows it changed that V now rewrote, and rows it deleted that
    // V put back. A row counts once per version.
    // Keyed by the version's place in `later`, so that they are said in semver order.
    let mut hits: BTreeMap<usize, Hits> = BTreeMap::new();
    let mut theirs = ImagePages::new(module, &later, 0, IMAGE_PAGE).without_fingerprints();
    while let Some(page) = theirs.next_page(conn).await? {
        for img in page {
            let id = row_id(&img);
            let Some(&(op, index)) = written.get(&id) else { continue };
            let Some(&at) = rank.get(img.version.as_str()) else {
                continue;
            };
            let entry = hits.entry(at).or_default();
            if img.image.op == 'd' && op == 'i' {
                if entry.deleted.insert(index) && entry.first_deleted.is_none() {
                    entry.first_deleted = Some(id);
                }
            } else if entry.changed.insert(index) && entry.first_changed.is_none() {
                entry.first_changed = Some(id);
            }
        }
    }
    if hits.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for (&at, h) in &hits {
        let v = &later[at];
        let mut what = Vec::new();
        if !h.changed.is_empty() {
            what.push(format!("rewrote {} row(s) it changed", h.changed.len()));
        }
        if !h.deleted.is_empty() {
            what.push(format!("re-inserted {} row(s) it deleted", h.deleted.len()));
        }
        let example = h
            .first_changed
            .as_ref()
            .or(h.first_deleted.as_ref())
            .map(|(t, k)| format!(", e.g. {t} {k}"));
        parts.push(format!("{v}: {}{}", what.join(" and "), example.unwrap_or_default()));
    }
    let names: Vec<&String> = hits.keys().map(|&at| &later[at]).collect();
    Ok(Some(format!(
        "version {version} was re-applied over later versions, and its rows replaced theirs ({}): re-apply {} with --force --from {} to bring their changes back, or roll back",
        parts.join("; "),
        names.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
        names[0]
    )))
}
