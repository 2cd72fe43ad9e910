//! `lockgate baseline`: the managed tables written as a baseline version folder of the
//! `db/` folder (the seed's post-release routine), with the folders before it pruned
//! on request; its human report, or `--json` like `dump`.

use crate::render;
use clap::Args;
use lockgate::{BaselineError, BaselineOptions, BaselineReport};
use lockgate_bundle::Version;
use std::path::PathBuf;

/// `lockgate baseline`.
#[derive(Args)]
pub struct BaselineArgs {
    /// Database URL or connection name; default DATABASE_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The folder of version folders to write the baseline into.
    #[arg(long, default_value = "db")]
    dir: PathBuf,
    /// The module whose version is the default and whose ledger is checked.
    #[arg(long, default_value = "./")]
    module: String,
    /// The baseline's version (default: the database's current version of the module).
    #[arg(long)]
    version: Option<Version>,
    /// The tables (comma-separated; default: every table the db/ folder names).
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    tables: Vec<String>,
    /// Every user table.
    #[arg(long)]
    all: bool,
    /// Remove the version folders older than the baseline once it is written (needs --yes).
    #[arg(long)]
    prune: bool,
    /// Confirm --prune.
    #[arg(long)]
    yes: bool,
    /// Write the folder again when it is already a baseline.
    #[arg(long)]
    force: bool,
    /// Say what would be written and pruned; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `baseline`; returns the exit code.
pub async fn baseline(url: &lockgate::db::DbUrl, a: BaselineArgs) -> i32 {
    let opts = BaselineOptions {
        dir: a.dir,
        module: a.module,
        version: a.version,
        tables: a.tables,
        all: a.all,
        prune: a.prune,
        yes: a.yes,
        force: a.force,
        dry_run: a.dry_run,
        ..BaselineOptions::default()
    };
    match lockgate::baseline(url, &opts).await {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", report_text(&r));
            }
            0
        }
        Err(BaselineError::Confirm { folders }) => {
            // The list first, so that what --yes would remove is in front of the user.
            if !a.json {
                println!("--prune would remove:");
                for f in &folders {
                    println!("  {f}");
                }
            }
            let e = BaselineError::Confirm {
                folders: folders.clone(),
            };
            let mut fields = serde_json::Map::new();
            fields.insert("prune".into(), serde_json::json!(folders));
            render::fail_with(&e.to_string(), e.exit_code(), fields)
        }
        Err(e) => render::fail(&e.to_string(), e.exit_code()),
    }
}

/// The human report of a baseline.
fn report_text(r: &BaselineReport) -> String {
    let mut out = String::new();
    let how = if r.replaced {
        " (in place of the version folder the database applied)"
    } else if r.rewritten {
        " (the earlier baseline written again)"
    } else {
        ""
    };
    if r.dry_run {
        out.push_str(&format!(
            "dry run: would write baseline {} to {}{how}\n",
            r.version, r.folder
        ));
        for t in &r.tables {
            out.push_str(&format!("  {t}\n"));
        }
    } else {
        out.push_str(&format!("wrote baseline {} to {}{how}\n", r.version, r.folder));
        for t in &r.written {
            out.push_str(&format!("  {} -> {} ({} rows)\n", t.table, t.file, t.rows));
        }
    }
    out.push_str(&format!("  stands for versions {}\n", r.covers.join(", ")));
    if !r.absent.is_empty() {
        out.push_str(&format!("not in the database (left out): {}\n", r.absent.join(", ")));
    }
    if !r.pruned.is_empty() {
        out.push_str(if r.dry_run { "would remove:\n" } else { "removed:\n" });
        for p in &r.pruned {
            out.push_str(&format!("  {p}\n"));
        }
    }
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if !r.dry_run {
        out.push_str(&format!(
            "a database with no version now starts at {}; databases at {0} or later skip it; commit the folder\n",
            r.version
        ));
    }
    out
}
