//! Rendering: human tables and reports, `--json` documents, progress bars on a
//! terminal, and one-line errors.

use indicatif::{ProgressBar, ProgressStyle};
use lockgate::db::writer::Progress;
use lockgate::LoadReport;
use lockgate_core::Table;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Whether the command line asked for `--json`: then every error is also a JSON
/// document on stdout, so that a script reading stdout always gets one.
static JSON: AtomicBool = AtomicBool::new(false);

/// Records whether `--json` was given (before anything is rendered).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Prints an error (and, with `--json`, `{"error": …, "exit_code": …}` on stdout)
/// and returns its exit code.
pub fn fail(message: &str, code: i32) -> i32 {
    fail_with(message, code, serde_json::Map::new())
}

/// [`fail`], with more fields in the `--json` error object (`migrate`'s
/// `migrated_versions`: what the run applied before it stopped).
pub fn fail_with(message: &str, code: i32, fields: serde_json::Map<String, serde_json::Value>) -> i32 {
    eprintln!("error: {message}");
    if JSON.load(Ordering::Relaxed) {
        let mut doc = serde_json::json!({ "error": message, "exit_code": code });
        if let Some(obj) = doc.as_object_mut() {
            obj.extend(fields);
        }
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    code
}

/// A progress channel and the task drawing its bar, when stderr is a terminal.
pub fn progress(json: bool) -> (Option<mpsc::UnboundedSender<Progress>>, Option<JoinHandle<()>>) {
    if json || !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let task = tokio::spawn(async move {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        while let Some(p) = rx.recv().await {
            bar.set_message(p.phase);
            bar.set_position(p.rows);
        }
        bar.finish_and_clear();
    });
    (Some(tx), Some(task))
}

/// Prints tables as text or JSON.
pub fn tables(tables: &[Table], json: bool) {
    if json {
        let doc = serde_json::json!({ "version": 1, "tables": tables });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    for t in tables {
        print!("{}", table_text(t));
    }
}

/// One table as aligned text.
pub fn table_text(t: &Table) -> String {
    let mut out = format!("table {}", t.name);
    if let Some(e) = &t.engine {
        out.push_str(&format!(" (engine {e})"));
    }
    out.push('\n');
    let w_name = t.columns.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let w_type = t.columns.iter().map(|c| c.data_type.len()).max().unwrap_or(4).max(4);
    for c in &t.columns {
        let pk = if t.primary_key.contains(&c.name) { " PK" } else { "" };
        let null = if c.nullable { "null" } else { "not null" };
        let default = c
            .default
            .as_deref()
            .map(|d| format!(" default {d}"))
            .unwrap_or_default();
        let auto = if c.auto { " auto" } else { "" };
        out.push_str(&format!(
            "  {:w_name$}  {:w_type$}  {:13} {null}{pk}{auto}{default}\n",
            c.name,
            c.data_type,
            c.kind.describe()
        ));
    }
    if !t.primary_key.is_empty() {
        out.push_str(&format!("  primary key ({})\n", t.primary_key.join(", ")));
    }
    for u in &t.unique {
        out.push_str(&format!("  unique {} ({})\n", u.name, u.columns.join(", ")));
    }
    for f in &t.foreign_keys {
        let (c, p): (Vec<_>, Vec<_>) = f.columns.iter().cloned().unzip();
        out.push_str(&format!(
            "  foreign key {} ({}) references {} ({})\n",
            f.name,
            c.join(", "),
            f.references,
            p.join(", ")
        ));
    }
    for i in &t.indexes {
        out.push_str(&format!(
            "  {}index {} ({})\n",
            if i.unique { "unique " } else { "" },
            i.name,
            i.columns.join(", ")
        ));
    }
    for c in &t.checks {
        out.push_str(&format!("  check {} ({})\n", c.name, c.expression));
    }
    out.push('\n');
    out
}

/// Prints a load report.
pub fn load_report(r: &LoadReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    print!("{}", load_text(r));
}

/// A load report as text.
pub fn load_text(r: &LoadReport) -> String {
    let mut out = String::new();
    let verdict = if r.dry_run {
        "dry run: nothing was kept"
    } else if r.committed && r.failed.is_empty() {
        "loaded"
    } else if r.committed {
        "loaded the good rows; failing rows were skipped"
    } else {
        "FAILED: every change was rolled back, nothing was kept"
    };
    out.push_str(&format!(
        "{verdict}: table {} ({} mode)\n",
        r.table,
        serde_json::to_value(r.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    ));
    // Counts of a run that kept nothing say what it would have done.
    let (ins, upd, del) = if r.committed {
        ("inserted", "updated", "deleted")
    } else {
        ("would insert", "would update", "would delete")
    };
    out.push_str(&format!(
        "  rows read {}, {ins} {}, {upd} {}, unchanged {}, {del} {}, skipped {}, failed {}\n",
        r.rows_read,
        r.inserted,
        r.updated,
        r.unchanged,
        r.deleted,
        r.skipped,
        r.failed.len()
    ));
    const SHOWN: usize = 50;
    for e in r.failed.iter().take(SHOWN) {
        out.push_str(&format!("  {e}\n"));
    }
    if r.failed.len() > SHOWN {
        out.push_str(&format!(
            "  … and {} more (use --json for all)\n",
            r.failed.len() - SHOWN
        ));
    }
    if !r.committed && !r.failed.is_empty() && !r.dry_run {
        out.push_str("  fix these rows and run the load again, or use --on-error skip to keep the good rows\n");
    }
    out.push_str(&format!("  {:.2} s, run {}\n", r.seconds, r.run_id));
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

/// A verify's report: JSON, or a summary with each difference.
pub fn verify(r: &lockgate::verify::VerifyReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    println!(
        "{}: {} source rows, {} destination rows, key {}; {} range(s) compared, {} row(s) read back, {:.2} s",
        if r.equal { "equal" } else { "DIFFERENT" },
        r.source_rows,
        r.dest_rows,
        r.key,
        r.ranges,
        r.rows_fetched,
        r.seconds
    );
    for c in &r.columns {
        println!(
            "  {}: {} / {}, compared as {}",
            c.column, c.source_type, c.dest_type, c.compared_as
        );
    }
    if !r.excluded.is_empty() {
        println!("  left out: {}", r.excluded.join(", "));
    }
    let listed = |n: u64, shown: usize| {
        if n as usize > shown {
            format!(" (first {shown})")
        } else {
            String::new()
        }
    };
    for (what, count, keys) in [
        ("only in the source", r.only_in_source_count, &r.only_in_source),
        ("only in the destination", r.only_in_dest_count, &r.only_in_dest),
    ] {
        if count > 0 {
            println!("{what}: {count}{}", listed(count, keys.len()));
            for k in keys {
                println!("  {} = {k}", r.key);
            }
        }
    }
    if r.differing_count > 0 {
        println!(
            "differing: {}{}",
            r.differing_count,
            listed(r.differing_count, r.differing.len())
        );
        for d in &r.differing {
            for c in &d.columns {
                println!("  {} = {}: {}: {} / {}", r.key, d.key, c.column, c.source, c.dest);
            }
        }
    }
}
