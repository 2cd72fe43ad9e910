//! What re-applying an older version (`--force --from V --to V` at a later version)
//! did to rows that later versions changed: its files write their rows as they were
//! at V, over what the later versions made of them, and put back rows a later `sync`
//! deleted. The row images tell which: the images this run of V wrote are compared,
//! row by row, with the images of the later versions that stay applied, and the run
//! warns naming those versions.

use lockgate_db::versions::{self, StoredImage};
use lockgate_db::{Conn, DbError};
use std::collections::{BTreeMap, HashMap};

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

/// The warning for `version`, re-applied after `mark`, when it wrote rows that the
/// `later` versions (applied, and not re-applied by this run) changed.
pub(crate) async fn overwritten(
    conn: &mut Conn,
    module: &str,
    version: &str,
    mark: i64,
    later: &[String],
) -> Result<Option<String>, DbError> {
    let mine = versions::read_images_after(conn, module, &[version.to_string()], mark).await?;
    if mine.is_empty() || later.is_empty() {
        return Ok(None);
    }
    let written: HashMap<RowId, char> = mine.iter().map(|i| (row_id(i), i.image.op)).collect();
    // Per later version: rows it changed that V now rewrote, and rows it deleted that
    // V put back. A row counts once per version.
    let mut hits: BTreeMap<String, (Vec<RowId>, Vec<RowId>)> = BTreeMap::new();
    for img in versions::read_images(conn, module, later).await? {
        let id = row_id(&img);
        let Some(op) = written.get(&id) else { continue };
        let entry = hits.entry(img.version.clone()).or_default();
        let reinserted = img.image.op == 'd' && *op == 'i';
        let list = if reinserted { &mut entry.1 } else { &mut entry.0 };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    if hits.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for (v, (changed, deleted)) in &hits {
        let mut what = Vec::new();
        if !changed.is_empty() {
            what.push(format!("rewrote {} row(s) it changed", changed.len()));
        }
        if !deleted.is_empty() {
            what.push(format!("re-inserted {} row(s) it deleted", deleted.len()));
        }
        let example = changed
            .iter()
            .chain(deleted)
            .next()
            .map(|(t, k)| format!(", e.g. {t} {k}"));
        parts.push(format!("{v}: {}{}", what.join(" and "), example.unwrap_or_default()));
    }
    let names: Vec<&String> = hits.keys().collect();
    Ok(Some(format!(
        "version {version} was re-applied over later versions, and its rows replaced theirs ({}): re-apply {} with --force --from {} to bring their changes back, or roll back",
        parts.join("; "),
        names.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
        names[0]
    )))
}
