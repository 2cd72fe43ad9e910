//! The quick diagnose of an insert: the checked columns of the whole input staged
//! once, checked set-based once (repeated keys found with a Bloom filter), then the
//! good rows streamed into the table.

use super::*;

pub(super) const LINE: &str = "__lg_line";
/// The record's number in its file ([`Row::number`]), which its line alone does not
/// give when records share a line.
pub(super) const REC: &str = "__lg_rec";
pub(super) const FILE: &str = "__lg_file";
pub(super) const CANDIDATES: &str = "lockgate_stage_repeats";

/// Finds, in one read and fixed memory, the keys that may occur more than once in
/// the input: a Bloom filter per unique key (16 MiB in all) remembers the keys seen;
/// a key it already holds is a candidate. Candidates are a superset of the repeated
/// keys (about 0.5% false ones at 10 million rows), checked exactly in SQL.
pub(super) struct RepeatFinder {
    pub(super) bits: Vec<Vec<u64>>,
    pub(super) candidates: Vec<HashMap<KeyRepr, Vec<Value>>>,
}

impl RepeatFinder {
    const BITS_TOTAL: usize = 16 * 1024 * 1024 * 8;
    const HASHES: u64 = 4;

    pub(super) fn new(keys: usize) -> RepeatFinder {
        let words = (Self::BITS_TOTAL / keys.max(1)) / 64;
        RepeatFinder {
            bits: vec![vec![0; words.max(1)]; keys],
            candidates: vec![HashMap::new(); keys],
        }
    }

    pub(super) fn see(&mut self, key_no: usize, key: KeyRepr) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let h1 = h.finish();
        let h2 = h1.rotate_left(32) | 1;
        let bits = &mut self.bits[key_no];
        let size = (bits.len() * 64) as u64;
        let mut present = true;
        for i in 0..Self::HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % size;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            present &= bits[word] & mask != 0;
            bits[word] |= mask;
        }
        if present {
            let values = key.values();
            self.candidates[key_no].entry(key).or_insert(values);
        }
    }

    /// The candidate keys, as values for the key's columns.
    pub(super) fn candidates(&self, key_no: usize) -> Vec<Vec<Value>> {
        self.candidates[key_no].values().cloned().collect()
    }
}

/// The quick diagnose of an insert: two reads of the source in one transaction.
/// First, the checked columns of every row (numbered in input order) stream into a
/// narrow staging table, and set-based queries find, once for the whole input, the
/// rows that repeat a key of the input or of the table, lack a foreign-key parent
/// or fail a CHECK. Then the source is read again and the other rows stream into
/// the table. Memory holds only the failing rows. If the engine still refuses
/// something, the checks missed a kind of error: the unit starts over carefully.
pub(super) async fn quick_pass(
    conn: &mut Conn,
    plan: &Plan,
    source: &dyn BatchSource,
    progress: Option<&mpsc::UnboundedSender<Progress>>,
) -> Result<WriteReport, PassError> {
    let d = plan.dialect;
    let careful = |e: DbError| {
        if e.is_transient() {
            PassError::Engine(e)
        } else {
            PassError::Careful(e)
        }
    };
    if d.0 == Engine::Postgres {
        // One scan of the table per check is right here (see `begin` for the opposite).
        // Memory for hashing the whole input's keys once, instead of spilling to disk.
        conn.batch("SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on; SET LOCAL work_mem = '64MB'")
            .await?;
    }
    let staged: Vec<&lockgate_core::Column> = stage_columns(plan, true);
    let mut cols: Vec<(String, String)> = staged.iter().map(|c| (c.name.clone(), stage_type(d, c))).collect();
    cols.push((ORD.into(), d.bigint().into()));
    cols.push((LINE.into(), d.bigint().into()));
    cols.push((REC.into(), d.bigint().into()));
    cols.push((FILE.into(), d.bigint().into()));
    conn.batch(&d.drop_temp(STAGE)).await?;
    conn.batch(&d.create_temp(STAGE, &cols)).await?;
    let stage = lockgate_core::TableName::new(STAGE);
    // Sources by number, so that a staged row can be named without the second read.
    let mut files: Vec<Option<Arc<String>>> = Vec::new();
    let mut read1_errors: Vec<RowError> = Vec::new();
    let mut rows_read = 0u64;

    // Read 1: stage, and note keys that may repeat within the input.
    let keys: Vec<Vec<String>> = plan
        .table
        .unique_keys()
        .into_iter()
        .filter(|k| k.iter().all(|c| plan.table.column(c).is_some()))
        .collect();
    // Keys compared exactly in memory; text keys compare by the column's collation
    // (case-insensitive, say), so the database groups those itself.
    let exact: Vec<bool> = keys
        .iter()
        .map(|k| {
            k.iter().all(|c| {
                !matches!(
                    plan.table.column(c).map(|c| &c.kind),
                    Some(lockgate_core::Kind::Text { .. })
                )
            })
        })
        .collect();
    let mut repeats = RepeatFinder::new(keys.len());
    // Whether the checks below see every way a row can fail (see `complete`).
    let mut complete = complete(plan);
    let mut failed_already = false;
    let mut n: i64 = 0;
    let mut rx = source.open();
    while let Some(item) = rx.recv().await {
        let mut batch = item.map_err(PassError::Source)?;
        rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
        let (rows, mut errors) = precheck(plan, &mut batch);
        failed_already |= !errors.is_empty();
        read1_errors.append(&mut errors);
        let file_no = match files.iter().position(|f| *f == batch.source) {
            Some(i) => i,
            None => {
                files.push(batch.source.clone());
                files.len() - 1
            }
        } as i64;
        complete &= batch.columns.iter().all(|c| {
            plan.table.column(c).is_some_and(|c| {
                !c.auto
                    && !matches!(
                        c.kind,
                        lockgate_core::Kind::Any | lockgate_core::Kind::Unsupported { .. }
                    )
            })
        });
        for (k, key) in keys.iter().enumerate().filter(|(k, _)| exact[*k]) {
            let idx: Option<Vec<usize>> = key.iter().map(|c| batch.columns.iter().position(|b| b == c)).collect();
            if let Some(idx) = idx {
                for r in &rows {
                    if let Some(key) = KeyRepr::of(&r.values, &idx) {
                        repeats.see(k, key);
                    }
                }
            }
        }
        let picks: Vec<usize> = (0..batch.columns.len())
            .filter(|&i| staged.iter().any(|c| c.name == batch.columns[i]))
            .collect();
        let mut names: Vec<String> = picks.iter().map(|&i| batch.columns[i].clone()).collect();
        names.push(ORD.into());
        names.push(LINE.into());
        names.push(REC.into());
        names.push(FILE.into());
        let projected: Vec<Row> = rows
            .iter()
            .map(|r| {
                let mut values: Vec<Value> = picks.iter().map(|&i| r.values[i].clone()).collect();
                values.push(Value::Int(n));
                values.push(Value::Int(r.line as i64));
                values.push(Value::Int(r.number as i64));
                values.push(Value::Int(file_no));
                n += 1;
                Row {
                    line: r.line,
                    number: r.number,
                    values,
                }
            })
            .collect();
        conn.stream_rows(&stage, &names, &projected).await.map_err(careful)?;
        if let Some(p) = progress {
            let _ = p.send(Progress {
                phase: "checking",
                rows: n as u64,
            });
        }
    }
    conn.finish_stream().await.map_err(careful)?;

    // The checks, once for the whole input.
    let (bad, all_ran) = whole_input_checks(conn, plan, &keys, &exact, &repeats).await?;
    complete &= all_ran;
    // With every failure foreseen and some found, the verdict of a rollback policy is
    // known: the second read only names the failing rows, without writing the others
    // (which would all be rolled back).
    let write_good_rows = !(complete && plan.on_error == OnError::Rollback && (failed_already || !bad.is_empty()));
    if !write_good_rows {
        // Name the failing rows from the staging table: no second read at all.
        let mut failed = read1_errors;
        failed.extend(name_staged_rows(conn, plan, &bad, &files).await?);
        let file_order = |e: &RowError| {
            files
                .iter()
                .position(|f| f.as_deref().map(|s| s.as_str()) == e.file.as_deref())
        };
        failed.sort_by_key(|e| (file_order(e), e.line, e.record));
        let good = n as u64 - bad.len() as u64;
        return Ok(WriteReport {
            rows_read,
            inserted: good,
            failed,
            diagnosed: true,
            ..WriteReport::default()
        });
    }

    // Read 2: write the rows that pass.
    let mut report = WriteReport {
        diagnosed: true,
        ..WriteReport::default()
    };
    let mut n: u64 = 0;
    let mut rx = source.open();
    let keyless = keyless_plan(plan);
    while let Some(item) = rx.recv().await {
        let mut batch = item.map_err(PassError::Source)?;
        report.rows_read += (batch.rows.len() + batch.rejected.len()) as u64;
        // Records that do not give the key are inserted, as oe-migration's upsert
        // without an id creates a row (through staging: the unit may have other
        // batches to match by key, so no COPY stream is opened in between).
        let plan = match &keyless {
            Some(p) if plan.key.iter().any(|k| !batch.columns.contains(&k.name)) => p,
            _ => plan,
        };
        let (rows, mut errors) = precheck(plan, &mut batch);
        report.failed.append(&mut errors);
        let ctx = BatchCtx {
            plan,
            columns: &batch.columns,
            rows: &rows,
            source: batch.source.as_deref().map(|s| s.as_str()),
        };
        let mut keep = vec![true; rows.len()];
        for (i, k) in keep.iter_mut().enumerate() {
            if let Some(f) = bad.get(&n) {
                report
                    .failed
                    .push(ctx.violation(i, Some(f.kind), f.column.as_deref(), f.message.clone()));
                *k = false;
            }
            n += 1;
        }
        let good: Vec<Row> = rows.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect();
        if !write_good_rows {
            report.inserted += good.len() as u64;
        } else if !good.is_empty() {
            let outcome = conn
                .stream_rows(&plan.table.name, &batch.columns, &good)
                .await
                .map_err(careful)?;
            report.inserted += outcome.written;
        }
        if let Some(p) = progress {
            let _ = p.send(Progress {
                phase: "diagnosing",
                rows: report.rows_read,
            });
        }
    }
    conn.finish_stream().await.map_err(careful)?;
    Ok(report)
}

/// Builds the reports of failing staged rows from what the staging table holds:
/// their line, record number, source and key.
pub(super) async fn name_staged_rows(
    conn: &mut Conn,
    plan: &Plan,
    bad: &HashMap<u64, Finding>,
    files: &[Option<Arc<String>>],
) -> Result<Vec<RowError>, DbError> {
    let d = plan.dialect;
    let key: Vec<String> = plan.key.iter().map(|k| k.name.clone()).collect();
    let mut ords: Vec<u64> = bad.keys().copied().collect();
    ords.sort_unstable();
    let mut out = Vec::with_capacity(ords.len());
    for chunk in ords.chunks(500) {
        let params: Vec<Value> = chunk.iter().map(|n| Value::Int(*n as i64)).collect();
        let list = (1..=params.len()).map(|i| d.param(i)).collect::<Vec<_>>().join(", ");
        let key_cols = key.iter().map(|k| format!(", {}", d.quote(k))).collect::<String>();
        let sql = format!(
            "SELECT {ORD}, {LINE}, {FILE}, {REC}{key_cols} FROM {} WHERE {ORD} IN ({list})",
            d.quote(STAGE)
        );
        for row in conn.query(&sql, &params, None).await? {
            let Some(n) = as_u64(&row[0]) else { continue };
            let Some(f) = bad.get(&n) else { continue };
            let file = as_u64(&row[2])
                .and_then(|f| files.get(f as usize))
                .and_then(|f| f.as_deref().cloned());
            let key_text = key
                .iter()
                .zip(&row[4..])
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(RowError {
                file,
                line: as_u64(&row[1]),
                record: as_u64(&row[3]).filter(|n| *n > 0),
                key: (!key.is_empty()).then_some(key_text),
                column: f.column.clone(),
                code: f.kind.code(d.0).to_string(),
                message: f.message.clone(),
            });
        }
    }
    Ok(out)
}

/// Whether the set-based checks see every way a row of this table can fail: no
/// trigger, enum or other engine-only rule ([`lockgate_core::Table::unchecked`]),
/// and no foreign key onto the table itself (its parents may be in the input).
/// Columns the input gives are checked as they are read.
pub(super) fn complete(plan: &Plan) -> bool {
    plan.table.unchecked.is_empty() && plan.table.foreign_keys.iter().all(|f| f.references != plan.table.name)
}

/// The set-based checks of [`quick_pass`] over the whole staged input: returns, by
/// row number, what is wrong with each failing row.
pub(super) async fn whole_input_checks(
    conn: &mut Conn,
    plan: &Plan,
    keys: &[Vec<String>],
    exact: &[bool],
    repeats: &RepeatFinder,
) -> Result<(HashMap<u64, Finding>, bool), PassError> {
    let d = plan.dialect;
    let table = &plan.table;
    let stage = d.quote(STAGE);
    let mut bad: HashMap<u64, Finding> = HashMap::new();
    let mut all_ran = true;
    // A query that could not run is noted: the checks are then not the last word.
    let mut run = async |conn: &mut Conn, sql: String| -> Result<Vec<Vec<Value>>, DbError> {
        let rows = checked_rows(conn, d, &sql).await?;
        all_ran &= rows.is_some();
        Ok(rows.unwrap_or_default())
    };
    for key in table.unique_keys() {
        if !key.iter().all(|k| table.column(k).is_some()) {
            continue;
        }
        let names = key.join(", ");
        // Repeats within the input: every occurrence after the first fails. The
        // reader noted the keys that may repeat (a Bloom filter: few, and a superset);
        // only the staged rows with those keys are fetched and compared here.
        let key_no = keys.iter().position(|k| *k == key);
        let by_memory = key_no.is_some_and(|k| exact[k]);
        let candidates = key_no
            .filter(|_| by_memory)
            .map(|k| repeats.candidates(k))
            .unwrap_or_default();
        if !by_memory {
            let group_cols = key.iter().map(|k| d.quote(k)).collect::<Vec<_>>().join(", ");
            let group_not_null = key
                .iter()
                .map(|k| format!("{} IS NOT NULL", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let on = key
                .iter()
                .map(|k| format!("g.{0} = s.{0}", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let sql = format!(
                "SELECT s.{ORD}, g.first_line FROM {stage} s JOIN (SELECT {group_cols}, MIN({ORD}) AS first_n, MIN({LINE}) AS first_line \
                 FROM {stage} WHERE {group_not_null} GROUP BY {group_cols} HAVING COUNT(*) > 1) g ON {on} WHERE s.{ORD} > g.first_n"
            );
            for row in run(conn, sql).await? {
                if let Some(n) = as_u64(&row[0]) {
                    let first = row.get(1).map(|v| v.to_string()).unwrap_or_default();
                    bad.entry(n).or_insert_with(|| Finding {
                        kind: Violation::Unique,
                        column: Some(names.clone()),
                        message: format!("duplicate key: the same {names} as line {first} of the input"),
                    });
                }
            }
        } else if !candidates.is_empty() {
            let cand_cols: Vec<(String, String)> = key
                .iter()
                .map(|c| (c.clone(), stage_type(d, table.column(c).expect("checked above"))))
                .collect();
            conn.batch(&d.drop_temp(CANDIDATES)).await?;
            // The index is declared with the table: a separate CREATE INDEX commits
            // the transaction on MariaDB, even on a temporary table.
            conn.batch(&d.create_temp_indexed(CANDIDATES, &cand_cols, &key)).await?;
            let rows: Vec<Row> = candidates
                .into_iter()
                .map(|values| Row {
                    line: 0,
                    number: 0,
                    values,
                })
                .collect();
            conn.bulk_insert(&lockgate_core::TableName::new(CANDIDATES), &key, &rows, None)
                .await?;
            // Statistics, so that the join probes the few candidates (PostgreSQL
            // guesses badly for a new table; MariaDB, without hash joins, uses the index).
            if d.0 == Engine::Postgres {
                conn.batch(&format!("ANALYZE {}", d.quote(CANDIDATES))).await?;
            }
            let on = key
                .iter()
                .map(|k| format!("c.{0} = s.{0}", d.quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let sql = format!(
                "SELECT s.{ORD}, s.{LINE}, {} FROM {stage} s JOIN {} c ON {on} ORDER BY s.{ORD}",
                key.iter()
                    .map(|k| format!("s.{}", d.quote(k)))
                    .collect::<Vec<_>>()
                    .join(", "),
                d.quote(CANDIDATES)
            );
            let mut first: HashMap<Vec<String>, String> = HashMap::new();
            for row in conn.query(&sql, &[], None).await? {
                let (Some(n), line) = (as_u64(&row[0]), row[1].to_string()) else {
                    continue;
                };
                let k: Vec<String> = row[2..].iter().map(|v| v.to_string()).collect();
                match first.get(&k) {
                    Some(first_line) => {
                        bad.entry(n).or_insert_with(|| Finding {
                            kind: Violation::Unique,
                            column: Some(names.clone()),
                            message: format!("duplicate key: the same {names} as line {first_line} of the input"),
                        });
                    }
                    None => {
                        first.insert(k, line);
                    }
                }
            }
            conn.batch(&d.drop_temp(CANDIDATES)).await?;
        }
    }
    // Keys already in the table, missing parents, CHECK constraints.
    for (sql, finding) in table_checks(plan, "1 = 1", |_| true) {
        for row in run(conn, sql).await? {
            if let Some(n) = as_u64(&row[0]) {
                bad.entry(n).or_insert_with(|| finding.clone());
            }
        }
    }
    Ok((bad, all_ran))
}
