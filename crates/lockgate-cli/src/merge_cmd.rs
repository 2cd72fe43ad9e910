//! `lockgate merge` and its subcommands (`refs`, `history`, `show`, `undo`):
//! arguments, the definition from lockgate.toml that flags override, and the
//! rendering of reports. A preview's changes are written as they are read, so
//! that a preview of a million rows holds a page of them at a time.

use crate::render;
use lockgate::merge::{self, MergeOnError, MergeReport, RowAction, UndoOptions};
use lockgate::Config;
use std::io::Write;
use std::time::Duration;

/// `lockgate merge …`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MergeArgs {
    #[command(subcommand)]
    command: Option<MergeCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// The merge itself.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Database URL or connection name; default the definition's, else DATABASE_URL.
    #[arg(long)]
    db: Option<String>,
    /// A merge definition from lockgate.toml (`[merges.NAME]`); flags override it.
    #[arg(long = "def")]
    def: Option<String>,
    /// The merged table (schema.table on PostgreSQL).
    #[arg(long)]
    table: Option<String>,
    /// The rows to merge away: primary keys separated by commas; a composite key's
    /// parts separated by ':' in key order (1:5,1:6); `\` escapes ',' ':' '\'. Repeatable.
    #[arg(long = "from")]
    from: Vec<String>,
    /// The row to merge into (its primary key, as --from writes one).
    #[arg(long = "into")]
    into: Option<String>,
    /// Show every change and conflict; change nothing (the preview is recorded in the history).
    #[arg(long, visible_alias = "dry-run")]
    preview: bool,
    /// Merge conflicting rows into their counterparts instead of aborting (exit 4).
    #[arg(long)]
    merge_conflicts: bool,
    /// What happens to the sources: keep, delete, or set:COL=EXPR,… (SQL expressions).
    #[arg(long, value_parser = RowAction::parse)]
    sources: Option<RowAction>,
    /// What happens to conflicting rows merged into their counterparts: keep, delete
    /// (default) or set:COL=EXPR,….
    #[arg(long, value_parser = RowAction::parse)]
    conflict_rows: Option<RowAction>,
    /// Referencing tables to leave alone (comma-separated, repeatable).
    #[arg(long = "skip-table", value_delimiter = ',')]
    skip_table: Vec<String>,
    /// A soft reference for schemas without foreign keys: `jobs.byPuid -> customers.id`
    /// (or `jobs(a, b) -> customers(x, y)`). Repeatable.
    #[arg(long = "ref")]
    references: Vec<String>,
    /// The soft-delete condition on the merged table (SQL): such sources or targets are refused.
    #[arg(long)]
    deleted_when: Option<String>,
    /// The longest the merge may take, retries included (default 60s).
    #[arg(long, value_parser = crate::duration)]
    timeout: Option<Duration>,
    /// How long to wait for other lockgate commands writing the tables.
    #[arg(long, default_value = "60s", value_parser = crate::duration)]
    lock_timeout: Duration,
    /// How long one statement waits for a row lock (PostgreSQL lock_timeout, MariaDB
    /// innodb_lock_wait_timeout) before the attempt is retried.
    #[arg(long, value_parser = crate::duration)]
    lock_wait: Option<Duration>,
    /// rollback (retry transient errors, then roll back) or stop (roll back at once).
    #[arg(long = "on-error", default_value = "rollback")]
    on_error: MergeOnError,
    /// How deep conflicts may nest.
    #[arg(long, default_value_t = 3)]
    max_depth: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum MergeCommand {
    /// List every reference to a table (foreign keys and declared ones), with the
    /// unique keys that include them.
    Refs {
        /// Database URL or connection name.
        #[arg(long)]
        db: Option<String>,
        /// A merge definition whose table and declared references to use.
        #[arg(long = "def")]
        def: Option<String>,
        /// The table.
        #[arg(long)]
        table: Option<String>,
        /// A declared soft reference (repeatable).
        #[arg(long = "ref")]
        references: Vec<String>,
        /// Referencing tables a merge would leave alone.
        #[arg(long = "skip-table", value_delimiter = ',')]
        skip_table: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The merges recorded in the database, newest first.
    History {
        /// Database URL or connection name.
        #[arg(long)]
        db: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One merge: options, counts, conflicts, rows merged away, row-level changes.
    Show {
        /// The merge's id.
        id: i64,
        /// Database URL or connection name.
        #[arg(long)]
        db: Option<String>,
        /// At most this many row-level changes.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revert a completed merge in one transaction; rows changed since stop it (exit 4)
    /// unless --overwrite.
    Undo {
        /// The merge's id.
        id: i64,
        /// Database URL or connection name.
        #[arg(long)]
        db: Option<String>,
        /// List what would be put back and what changed since; change nothing.
        #[arg(long, visible_alias = "dry-run")]
        preview: bool,
        /// Put rows back even where they changed since the merge.
        #[arg(long)]
        overwrite: bool,
        /// The longest the undo may take.
        #[arg(long, default_value = "60s", value_parser = crate::duration)]
        timeout: Duration,
        /// How long to wait for other lockgate commands writing the tables.
        #[arg(long, default_value = "60s", value_parser = crate::duration)]
        lock_timeout: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn definition<'c>(config: &'c Config, name: Option<&str>) -> Result<Option<&'c merge::MergeSpec>, i32> {
    let Some(name) = name else { return Ok(None) };
    match config.merges.get(name) {
        Some(d) => Ok(Some(d)),
        None => {
            let known: Vec<&str> = config.merges.keys().map(String::as_str).collect();
            Err(render::fail(
                &format!(
                    "no merge definition {name:?} in the configuration ({})",
                    if known.is_empty() {
                        "it defines none: add [merges.NAME]".to_string()
                    } else {
                        format!("it defines {}", known.join(", "))
                    }
                ),
                2,
            ))
        }
    }
}

/// Runs `lockgate merge …`.
pub async fn merge(config: &Config, a: MergeArgs) -> i32 {
    match a.command {
        Some(cmd) => subcommand(config, cmd).await,
        None => run(config, a.run).await,
    }
}

async fn run(config: &Config, a: RunArgs) -> i32 {
    let def = match definition(config, a.def.as_deref()) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let db = a.db.clone().or_else(|| def.and_then(|d| d.db.clone()));
    let url = match config.resolve_db(db.as_deref()) {
        Ok(u) => u,
        Err(e) => return render::fail(&e.to_string(), 2),
    };
    // The definition, then the flags over it: the library's one reading of both
    // (the server reads a definition and a request's fields through it too).
    let over = merge::MergeOverrides {
        table: a.table,
        from: a.from,
        into: a.into,
        preview: a.preview,
        merge_conflicts: a.merge_conflicts,
        sources: a.sources,
        conflict_rows: a.conflict_rows,
        skip_tables: a.skip_table,
        references: a.references,
        deleted_when: a.deleted_when,
        timeout: a.timeout,
        lock_timeout: Some(a.lock_timeout),
        lock_wait: a.lock_wait,
        on_error: Some(a.on_error),
        max_depth: Some(a.max_depth),
    };
    let opts = match merge::options(def.zip(a.def.as_deref()).map(|(d, n)| (n, d)), over) {
        Ok(o) => o,
        Err(e) => return render::fail(&e.to_string(), e.exit_code()),
    };

    let mut out = std::io::BufWriter::new(std::io::stdout());
    let json = a.json;
    let mut first = true;
    let mut write_change = |c: merge::Change| {
        if json {
            let sep = if first { "" } else { ",\n" };
            let _ = write!(out, "{sep}{}", serde_json::to_string(&c).unwrap_or_default());
        } else {
            let _ = writeln!(out, "{}", change_text(&c));
        }
        first = false;
    };
    if opts.preview && json {
        println!("{{\"changes\": [");
    }
    let sink: Option<&mut (dyn FnMut(merge::Change) + Send)> =
        if opts.preview { Some(&mut write_change) } else { None };
    let result = merge::merge(&url, &opts, sink).await;
    let _ = out.flush();
    drop(out);
    match result {
        Ok(report) => {
            if opts.preview && json {
                // The report's fields follow the changes in the same object.
                let body = serde_json::to_string_pretty(&report).unwrap_or_default();
                let rest = body.trim_start().strip_prefix('{').unwrap_or(&body);
                println!("\n],{rest}");
            } else if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report_text(&report));
            }
            report.exit_code()
        }
        Err(e) => {
            if opts.preview && json {
                println!("\n]}}");
            }
            render::fail(&e.to_string(), e.exit_code())
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn key_text(m: &serde_json::Map<String, serde_json::Value>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", json_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn change_text(c: &merge::Change) -> String {
    let vals = |v: &[serde_json::Value]| v.iter().map(json_text).collect::<Vec<_>>().join(":");
    format!(
        "  {} [{}]: {} {} -> {}",
        c.table,
        key_text(&c.key),
        c.columns.join(","),
        vals(&c.old),
        vals(&c.new)
    )
}

fn report_text(r: &MergeReport) -> String {
    let sources: Vec<String> = r.sources.iter().map(key_text).collect();
    let mut s = format!(
        "merge {} of {}: {} into {}: {}\n",
        r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
        r.table,
        sources.join(" | "),
        key_text(&r.target),
        r.status.as_str()
    );
    for t in &r.tables {
        s.push_str(&format!(
            "  {:>10} rows  {} ({}){}\n",
            t.rows,
            t.table,
            t.columns.join(", "),
            if t.level > 0 {
                format!("  [level {}]", t.level)
            } else {
                String::new()
            }
        ));
    }
    s.push_str(&format!(
        "  {:>10} rows in all, {:.2} s, {} attempt(s)\n",
        r.total_rows, r.seconds, r.attempts
    ));
    if !r.conflicts.is_empty() {
        let at_least = if r.conflicts_truncated { "at least " } else { "" };
        s.push_str(&format!("conflicts ({at_least}{}):\n", r.conflicts.len()));
        for c in &r.conflicts {
            s.push_str(&format!(
                "  {} unique ({}) = ({}): row [{}] collides with [{}]{}\n",
                c.table,
                c.unique.join(", "),
                c.values.iter().map(json_text).collect::<Vec<_>>().join(", "),
                key_text(&c.row),
                key_text(&c.counterpart),
                if c.level > 0 {
                    format!(" [level {}]", c.level)
                } else {
                    String::new()
                }
            ));
        }
        if r.status == merge::MergeStatus::AbortedConflicts {
            s.push_str(
                "nothing was changed: resolve them, or merge them into their counterparts with --merge-conflicts\n",
            );
        }
    }
    if !r.actions.is_empty() && r.status != merge::MergeStatus::AbortedConflicts {
        s.push_str("rows merged away:\n");
        for a in &r.actions {
            s.push_str(&format!("  {} [{}]: {}\n", a.table, key_text(&a.key), a.action));
        }
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("error: {e}\n"));
    }
    for w in &r.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}

async fn subcommand(config: &Config, cmd: MergeCommand) -> i32 {
    let resolve = |db: Option<&str>| config.resolve_db(db).map_err(|e| render::fail(&e.to_string(), 2));
    match cmd {
        MergeCommand::Refs {
            db,
            def,
            table,
            references,
            skip_table,
            json,
        } => {
            let d = match definition(config, def.as_deref()) {
                Ok(d) => d,
                Err(code) => return code,
            };
            let url = match resolve(db.as_deref().or(d.and_then(|d| d.db.as_deref()))) {
                Ok(u) => u,
                Err(code) => return code,
            };
            // The table, declared references and skipped tables as a merge would
            // read them (the definition's, then the flags').
            let over = merge::MergeOverrides {
                table,
                references,
                skip_tables: skip_table,
                ..merge::MergeOverrides::default()
            };
            let o = match merge::options(d.zip(def.as_deref()).map(|(d, n)| (n, d)), over) {
                Ok(o) => o,
                Err(e) => return render::fail(&e.to_string(), e.exit_code()),
            };
            let table = o.table.clone();
            match merge::references(&url, &o.table, &o.references, &o.skip_tables).await {
                Ok(refs) if json => {
                    println!("{}", serde_json::to_string_pretty(&refs).unwrap_or_default());
                    0
                }
                Ok(refs) => {
                    if refs.is_empty() {
                        println!("nothing references {table}");
                    }
                    for r in refs {
                        let unique = if r.unique.is_empty() {
                            "no unique key includes them".to_string()
                        } else {
                            format!(
                                "unique: {}",
                                r.unique
                                    .iter()
                                    .map(|u| format!("({})", u.join(", ")))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            )
                        };
                        let via = match (&r.via, r.changes) {
                            (None, _) => String::new(),
                            (Some(_), false) => "  [transitive: follows its row unchanged]".into(),
                            (Some(_), true) => {
                                "  [transitive through re-pointed columns: needs ON UPDATE CASCADE]".into()
                            }
                        };
                        println!(
                            "{}({}) -> {}({})  {} {}; {unique}; {}{}{via}",
                            r.table,
                            r.columns.join(", "),
                            r.via.as_deref().unwrap_or(&table),
                            r.referenced.join(", "),
                            r.kind.replace('_', " "),
                            r.name,
                            if r.row_key.is_empty() {
                                "no key to record its rows by: a merge refuses it unless skipped".to_string()
                            } else {
                                format!("rows by ({})", r.row_key.join(", "))
                            },
                            if r.skipped { "; skipped" } else { "" }
                        );
                    }
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        MergeCommand::History { db, limit, json } => {
            let url = match resolve(db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            match merge::history(&url, limit).await {
                Ok(h) if json => {
                    println!("{}", serde_json::to_string_pretty(&h).unwrap_or_default());
                    0
                }
                Ok(h) => {
                    if h.is_empty() {
                        println!("no merges recorded");
                    }
                    for m in h {
                        println!(
                            "{:>5}  {:<18} {}  {} -> {}  {} rows, {} conflicts  {}{}",
                            m.id,
                            m.status.as_str(),
                            m.table,
                            m.sources,
                            m.target,
                            m.total_rows,
                            m.conflicts,
                            m.started_at,
                            m.error.map(|e| format!("  {e}")).unwrap_or_default()
                        );
                    }
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        MergeCommand::Show { id, db, limit, json } => {
            let url = match resolve(db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            match merge::show(&url, id, limit).await {
                Ok(d) if json => {
                    println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
                    0
                }
                Ok(d) => {
                    let m = &d.summary;
                    println!(
                        "merge {} of {}: {}\n  by {}\n  started {}{}\n  sources {}  target {}\n  options {}",
                        m.id,
                        m.table,
                        m.status.as_str(),
                        m.holder,
                        m.started_at,
                        m.duration_ms.map(|d| format!(", took {d} ms")).unwrap_or_default(),
                        m.sources,
                        m.target,
                        d.options
                    );
                    for t in &d.tables {
                        println!("  {:>10} rows  {} ({})", t.rows, t.table, t.columns.join(", "));
                    }
                    for c in &d.conflicts_found {
                        println!(
                            "  conflict: {} ({}): [{}] with [{}]",
                            c.table,
                            c.unique.join(", "),
                            key_text(&c.row),
                            key_text(&c.counterpart)
                        );
                    }
                    for a in &d.actions {
                        println!("  merged away: {} [{}]: {}", a.table, key_text(&a.key), a.action);
                    }
                    if let Some(e) = &m.error {
                        println!("  error: {e}");
                    }
                    for c in &d.changes {
                        println!("{}", change_text(c));
                    }
                    if d.changes_truncated {
                        println!("  … more changes: raise --limit");
                    }
                    0
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
        MergeCommand::Undo {
            id,
            db,
            preview,
            overwrite,
            timeout,
            lock_timeout,
            json,
        } => {
            let url = match resolve(db.as_deref()) {
                Ok(u) => u,
                Err(code) => return code,
            };
            let opts = UndoOptions {
                preview,
                overwrite,
                timeout,
                lock_timeout,
                ..UndoOptions::default()
            };
            match merge::undo(&url, id, &opts).await {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        println!("merge {id}: undo {}", r.status);
                        for t in &r.tables {
                            println!("  {:>10} rows  {} ({})", t.rows, t.table, t.columns.join(", "));
                        }
                        println!("  {} rows merged away put back", r.rows_restored);
                        for c in &r.changed {
                            println!("  changed since: {} [{}]: {}", c.table, key_text(&c.key), c.reason);
                        }
                        if r.status == "changed" {
                            println!("nothing was changed: to put these rows back anyway, add --overwrite");
                        }
                    }
                    r.exit_code()
                }
                Err(e) => render::fail(&e.to_string(), e.exit_code()),
            }
        }
    }
}
