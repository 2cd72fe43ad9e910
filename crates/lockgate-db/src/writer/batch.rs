//! One batch's rows with what is needed to report on them (line, record number,
//! source, key), and the client-side checks that need no round trip.

use super::*;

/// The rows of one batch with what is needed to report on them.
pub(super) struct BatchCtx<'a> {
    pub(super) plan: &'a Plan,
    pub(super) columns: &'a Arc<Vec<String>>,
    pub(super) rows: &'a [Row],
    pub(super) source: Option<&'a str>,
}

impl BatchCtx<'_> {
    pub(super) fn row_error(&self, i: usize, e: &EngineError) -> RowError {
        let column = e.column.clone().or_else(|| {
            // Name the column from the constraint when the engine names only that.
            let c = e.constraint.as_deref()?;
            let t = &self.plan.table;
            t.unique
                .iter()
                .find(|u| u.name == c)
                .map(|u| u.columns.join(", "))
                .or_else(|| {
                    t.foreign_keys
                        .iter()
                        .find(|f| f.name == c)
                        .map(|f| f.columns.iter().map(|p| p.0.clone()).collect::<Vec<_>>().join(", "))
                })
                .or_else(|| (c.ends_with("_pkey") || c == "PRIMARY").then(|| t.primary_key.join(", ")))
        });
        RowError {
            file: self.source.map(str::to_string),
            line: Some(self.rows[i].line),
            record: self.rows[i].record(),
            key: render_key(self.plan, self.columns, &self.rows[i]),
            column,
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }

    /// The image of row `i`: its key and given columns from the batch.
    pub(super) fn image(
        &self,
        i: usize,
        op: char,
        before: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> crate::versions::RowImage {
        let row = &self.rows[i];
        // An update sets the given columns but the write key's: the row keeps its key
        // as stored (which the record may spell otherwise, under a collation that
        // ignores case, say), so the key is not part of what the update left.
        let after: serde_json::Map<String, serde_json::Value> = self
            .columns
            .iter()
            .cloned()
            .zip(row.values.iter().map(Value::to_json))
            .filter(|(c, _)| op != 'u' || !self.plan.key.iter().any(|k| k.name == *c))
            .collect();
        // The row's own key (primary or unique), from the whole row before.
        let whole = before.as_ref().unwrap_or(&after);
        let key = image_key(&self.plan.table)
            .iter()
            .map(|k| (k.clone(), whole.get(k).cloned().unwrap_or_default()))
            .collect();
        crate::versions::RowImage {
            table: self.plan.table.name.to_string(),
            op,
            key,
            before,
            after: Some(after),
            after_fingerprint: None,
        }
    }

    pub(super) fn lockgate_error(&self, i: usize, column: Option<&str>, message: String) -> RowError {
        self.violation(i, None, column, message)
    }

    /// A row a set-based check found; it carries the code the engine itself gives
    /// that violation, so reports read the same whichever way the row was found.
    pub(super) fn violation(
        &self,
        i: usize,
        kind: Option<Violation>,
        column: Option<&str>,
        message: String,
    ) -> RowError {
        RowError {
            file: self.source.map(str::to_string),
            line: Some(self.rows[i].line),
            record: self.rows[i].record(),
            key: render_key(self.plan, self.columns, &self.rows[i]),
            column: column.map(str::to_string),
            code: kind.map_or("lockgate".to_string(), |k| k.code(self.plan.dialect.0).to_string()),
            message,
        }
    }
}

/// A row's key as a hashable value: a single integer (the common key) without
/// allocating, anything else as the values' canonical text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum KeyRepr {
    Int(i64),
    Text(Vec<String>),
    /// A key with a NULL part, equal to no other: the row's own position.
    Row(usize),
}

impl KeyRepr {
    /// The key's values, to stage them (text forms are the values' canonical text,
    /// which every engine reads back as the column's value).
    pub(super) fn values(&self) -> Vec<Value> {
        match self {
            KeyRepr::Int(i) => vec![Value::Int(*i)],
            KeyRepr::Text(parts) => parts.iter().map(|p| Value::Text(p.clone())).collect(),
            KeyRepr::Row(_) => Vec::new(),
        }
    }

    /// The key of a row, `None` when a part of it is NULL (no key's value: such
    /// records are never merged).
    pub(super) fn of(values: &[Value], idx: &[usize]) -> Option<KeyRepr> {
        if idx.iter().any(|&j| values[j].is_null()) {
            return None;
        }
        Some(match idx {
            [one] => match &values[*one] {
                Value::Int(i) => KeyRepr::Int(*i),
                other => KeyRepr::Text(vec![other.to_string()]),
            },
            _ => KeyRepr::Text(idx.iter().map(|&j| values[j].to_string()).collect()),
        })
    }
}

/// `col=value, col=value` for the row's key (the write key, else the primary key).
pub(super) fn render_key(plan: &Plan, columns: &[String], row: &Row) -> Option<String> {
    let parts: Vec<String> = plan
        .key
        .iter()
        .filter_map(|k| {
            let i = columns.iter().position(|c| *c == k.name)?;
            Some(format!("{}={}", k.name, row.values[i]))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Client-side checks that need no round trip: NULL into NOT NULL, a required
/// column the record does not give (insert), and, for the key modes, a key the
/// record does not give. Returns the rows that pass.
pub(super) fn precheck(plan: &Plan, batch: &mut Batch) -> (Vec<Row>, Vec<RowError>) {
    let mut errors = std::mem::take(&mut batch.rejected);
    let table = &plan.table;
    let col_idx: Vec<Option<&lockgate_core::Column>> = batch.columns.iter().map(|c| table.column(c)).collect();
    let missing_required: Vec<&str> = if matches!(plan.mode, WriteMode::Insert) {
        table
            .columns
            .iter()
            .filter(|c| !c.may_be_omitted() && !batch.columns.contains(&c.name))
            .map(|c| c.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let missing_key: Vec<&str> = if plan.mode != WriteMode::Insert {
        plan.key
            .iter()
            .filter(|k| !batch.columns.contains(&k.name))
            .map(|k| k.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let ctx_cols = batch.columns.clone();
    let not_null_code = match plan.dialect.0 {
        Engine::Postgres => "23502",
        Engine::Mysql => "1048",
        Engine::Sqlite => "SQLITE_CONSTRAINT_NOTNULL",
    };
    // Rows move from the batch to the result: no copy on the hot path.
    let rows = std::mem::take(&mut batch.rows);
    let mut good = Vec::with_capacity(rows.len());
    for mut row in rows {
        // (column, code, message) of the row's first problem.
        let mut err: Option<(Option<&str>, &str, String)> = None;
        if let Some(c) = missing_required.first() {
            err = Some((
                Some(c),
                not_null_code,
                format!("the record does not give column {c}, which is NOT NULL and has no default"),
            ));
        } else if let Some(k) = missing_key.first() {
            let why = match plan.mode {
                WriteMode::Update => "an update finds its row by the key",
                _ => "sync keeps only the rows whose keys the records give",
            };
            err = Some((
                Some(k),
                "lockgate",
                format!("the record does not give key column {k} ({why}): give it"),
            ));
        } else {
            for (i, slot) in row.values.iter_mut().enumerate() {
                let Some(col) = col_idx[i] else { continue };
                if slot.is_null() {
                    if !col.nullable && !col.auto {
                        err = Some((
                            Some(&col.name),
                            not_null_code,
                            format!("null value in column {} violates its NOT NULL constraint", col.name),
                        ));
                        break;
                    }
                } else if !batch.checked {
                    // Values from another engine: they must fit this column (a
                    // decimal past SQLite's 15 digits, a 2040 MariaDB TIMESTAMP).
                    match col.kind.check(std::mem::replace(slot, Value::Null)) {
                        Ok(v) => *slot = v,
                        Err(e) => {
                            err = Some((
                                Some(&col.name),
                                "lockgate",
                                format!("{e} (column {} is {})", col.name, col.data_type),
                            ));
                            break;
                        }
                    }
                }
            }
        }
        match err {
            Some((column, code, message)) => errors.push(RowError {
                file: batch.source.as_deref().map(|s| s.to_string()),
                line: Some(row.line),
                record: row.record(),
                key: render_key(plan, &ctx_cols, &row),
                column: column.map(str::to_string),
                code: code.into(),
                message,
            }),
            None => good.push(row),
        }
    }
    // Key modes: a key given twice in one batch means the later record wins (as if
    // applied one by one); for insert-missing the first one does. Here only keys whose
    // values are equal exactly when the database says so (integers, say); the others
    // (text under a collation, decimals) are merged by the database after staging:
    // see [`merge_equal_keys`].
    if plan.mode != WriteMode::Insert && good.len() > 1 && exact_key(plan) {
        let key_idx: Vec<usize> = plan
            .key
            .iter()
            .filter_map(|k| batch.columns.iter().position(|c| *c == k.name))
            .collect();
        let mut last: HashMap<KeyRepr, usize> = HashMap::with_capacity(good.len());
        for (i, row) in good.iter().enumerate() {
            // NULL keys are never equal (to each other or to a text "NULL").
            let Some(k) = KeyRepr::of(&row.values, &key_idx) else {
                last.insert(KeyRepr::Row(i), i);
                continue;
            };
            if plan.mode == WriteMode::InsertMissing {
                last.entry(k).or_insert(i);
            } else {
                last.insert(k, i);
            }
        }
        if last.len() < good.len() {
            let keep: HashSet<usize> = last.into_values().collect();
            good = good
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, r)| r)
                .collect();
        }
    }
    (good, errors)
}
