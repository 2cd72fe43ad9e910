//! Table definitions (loopback-style model JSON from `models/` and each version's
//! `ddl/`) turned into schema changes and record checks.
//!
//! A model maps to the table of the same name under ARCHITECTURE.md's naming rule (exact,
//! else the one case-insensitive match). What a definition may do on its own: create
//! a missing table, add missing columns (a required column with a default fills the
//! existing rows with it), widen a text column. What it must ask for explicitly:
//! dropping a column (`"drop": [...]`) and changing a column's type (`"retype": true`
//! on the property); otherwise a definition that disagrees with the table is refused.

use crate::source::Validation;
use lockgate_bundle::{IndexDef, ModelDef, PropType, PropertyDef};
use lockgate_core::{Kind, Table, TableName, TextForm};
use lockgate_db::schema::{ColumnDefault, ColumnSpec, IndexSpec, KeptAttributes, SchemaChange, TableSpec};
use lockgate_db::Engine;

/// Base models that add no property unless `models/` or `ddl/` defines them:
/// loopback's own, and oe-Cloud's `BaseEntity` (whose framework fields come from
/// mixins Lockgate does not run).
const PLAIN_BASES: [&str; 4] = ["Model", "PersistedModel", "KeyValueModel", "BaseEntity"];

/// The model with what its `base` models give it: their properties first (a
/// property of its own replaces a base's of the same name), their indexes, their
/// tenancy, and their idInjection unless it sets its own. `all` are the definitions
/// in force, which a base must be among unless it is one of [`PLAIN_BASES`]; a
/// definition of one of those (a `BaseEntity` of the app's common properties) is
/// used like any other.
pub(crate) fn with_bases(model: &ModelDef, all: &[&ModelDef]) -> Result<ModelDef, String> {
    let mut out = model.clone();
    let mut seen = vec![model.name.clone()];
    let mut base_name = model.base.clone();
    while let Some(name) = base_name {
        let defined = all
            .iter()
            .find(|m| m.name == name)
            .or_else(|| all.iter().find(|m| m.name.eq_ignore_ascii_case(&name)));
        if defined.is_none() && PLAIN_BASES.iter().any(|b| b.eq_ignore_ascii_case(&name)) {
            break;
        }
        let base = defined.ok_or_else(|| {
                format!(
                    "{}: \"base\" is {name:?}, which is neither a definition in models/ or the version's ddl/ nor one of {}: add {name:?}'s definition to models/",
                    model.path.display(),
                    PLAIN_BASES.join(", ")
                )
            })?;
        if seen.contains(&base.name) {
            return Err(format!(
                "{}: the base models form a loop ({} → {}): break it",
                model.path.display(),
                seen.join(" → "),
                base.name
            ));
        }
        seen.push(base.name.clone());
        let mut properties: Vec<PropertyDef> = base
            .properties
            .iter()
            .filter(|p| !out.properties.iter().any(|own| own.name == p.name))
            .cloned()
            .collect();
        properties.append(&mut out.properties);
        out.properties = properties;
        // Index names are per schema on PostgreSQL and SQLite: an inherited index is
        // named after this model's table.
        out.indexes.extend(base.indexes.iter().map(|i| IndexDef {
            name: None,
            ..i.clone()
        }));
        out.multi_tenant |= base.multi_tenant;
        out.id_injection = out.id_injection.or(base.id_injection);
        base_name = base.base.clone();
    }
    Ok(out)
}

/// The kind a property's type gives a new column.
pub(crate) fn kind_of(p: &PropertyDef) -> Kind {
    if p.generated {
        return Kind::Int {
            bytes: 8,
            unsigned: false,
        };
    }
    match p.prop_type {
        PropType::String => Kind::Text {
            max_chars: p.max,
            max_bytes: None,
            form: TextForm::Free,
        },
        PropType::Number if p.precision.is_some() => Kind::Decimal {
            precision: p.precision,
            scale: p.scale,
            max_significant: None,
        },
        PropType::Number => Kind::Float { bytes: 8 },
        PropType::Integer => Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        PropType::Boolean => Kind::Bool,
        PropType::Date => Kind::TimestampTz {
            epoch32: false,
            fsp: lockgate_core::value::MAX_FSP,
        },
        PropType::Object | PropType::Array | PropType::Any => Kind::Json,
        PropType::Buffer => Kind::Bytes {
            max_bytes: None,
            fixed: false,
        },
    }
}

/// Whether an existing column can hold what the property describes without a change.
fn compatible(p: &PropertyDef, column: &Kind) -> bool {
    use PropType as P;
    match (p.prop_type, column) {
        (_, Kind::Any) => true,
        (P::String, Kind::Text { .. } | Kind::Uuid | Kind::Unsupported { .. }) => true,
        (P::Number, Kind::Float { .. } | Kind::Decimal { .. } | Kind::Int { .. }) => true,
        (P::Integer, Kind::Int { .. }) => true,
        (P::Integer, Kind::Decimal { scale, .. }) => scale.unwrap_or(0) == 0,
        (P::Boolean, Kind::Bool | Kind::Int { bytes: 1, .. }) => true,
        (P::Date, Kind::Date | Kind::Timestamp { .. } | Kind::TimestampTz { .. }) => true,
        (P::Object | P::Array | P::Any, Kind::Json | Kind::Text { .. }) => true,
        (P::Buffer, Kind::Bytes { .. }) => true,
        _ => false,
    }
}

fn column_spec(model: &ModelDef, p: &PropertyDef, engine: Engine) -> Result<ColumnSpec, String> {
    // A declared `dataType` is the column's real type: its default is checked and
    // written for that type (a `date` column's default is a date, not an instant),
    // unless Lockgate cannot read that type, when the property's type stands.
    let kind = match p
        .data_type
        .as_deref()
        .map(|t| lockgate_db::types::declared_kind(engine, t))
    {
        Some(Kind::Unsupported { .. }) | None => kind_of(p),
        Some(declared) => declared,
    };
    let default = match &p.default {
        None => None,
        // Loopback's "the current time"; on a non-date property it is just text.
        Some(serde_json::Value::String(now)) if now == lockgate_bundle::NOW && p.prop_type == PropType::Date => {
            Some(ColumnDefault::Now)
        }
        Some(j) => Some(ColumnDefault::Value(kind.parse_json(j).map_err(|e| {
            format!(
                "{}: property {:?}: its default {j} does not fit its {} ({e}): fix the default",
                model.path.display(),
                p.name,
                match &p.data_type {
                    Some(t) => format!("dataType {t}"),
                    None => "type".into(),
                }
            )
        })?)),
    };
    if p.generated && default.is_some() {
        return Err(format!(
            "{}: property {:?} is generated by the database and has a default: remove one of them",
            model.path.display(),
            p.name
        ));
    }
    Ok(ColumnSpec {
        name: p.name.clone(),
        kind,
        data_type: p.data_type.clone(),
        nullable: !p.required && !p.generated,
        default,
        generated: p.generated,
        kept: None,
    })
}

/// The integer `id` that loopback's idInjection gives a model without an id property.
fn injected_id() -> ColumnSpec {
    ColumnSpec {
        name: "id".into(),
        kind: Kind::Int {
            bytes: 8,
            unsigned: false,
        },
        data_type: None,
        nullable: false,
        default: None,
        generated: true,
        kept: None,
    }
}

/// An index's name when the model gives none: `table_columns_idx` (`_key` when
/// unique), within the 63 bytes PostgreSQL keeps.
fn index_name(table: &str, index: &IndexDef) -> String {
    if let Some(name) = &index.name {
        return name.clone();
    }
    let mut name = format!(
        "{table}_{}_{}",
        index.columns.join("_"),
        if index.unique { "key" } else { "idx" }
    );
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// The model's indexes over `columns` (the table's, by their names there). An index
/// naming a column the table will not have is an error naming the file.
fn index_specs(model: &ModelDef, table: &str, columns: &[String]) -> Result<Vec<IndexSpec>, String> {
    let mut out: Vec<IndexSpec> = Vec::new();
    for index in &model.indexes {
        let mut resolved = Vec::new();
        for c in &index.columns {
            let found = columns
                .iter()
                .find(|n| *n == c)
                .or_else(|| columns.iter().find(|n| n.eq_ignore_ascii_case(c)))
                .ok_or_else(|| {
                    format!(
                        "{}: index {} names {c:?}, which is not a property of the model: fix the name",
                        model.path.display(),
                        index_name(table, index)
                    )
                })?;
            resolved.push(found.clone());
        }
        let spec = IndexSpec {
            name: index_name(table, index),
            columns: resolved,
            unique: index.unique,
        };
        // A property's index and an `indexes` entry over the same columns are one.
        match out.iter_mut().find(|o| o.columns == spec.columns) {
            Some(same) => same.unique |= spec.unique,
            None => out.push(spec),
        }
    }
    Ok(out)
}

/// The tenant column a multi-tenant table gets.
fn tenant_spec(tenant_column: &str) -> ColumnSpec {
    ColumnSpec {
        name: tenant_column.to_string(),
        kind: Kind::Text {
            max_chars: Some(255),
            max_bytes: None,
            form: TextForm::Free,
        },
        data_type: None,
        nullable: false,
        default: None,
        generated: false,
        kept: None,
    }
}

/// The changes that make `existing` (or a missing table) match the definition on
/// `engine`. Errors name the definition file and property and say what to do.
pub(crate) fn changes(
    model: &ModelDef,
    existing: Option<&Table>,
    tenant_column: &str,
    engine: Engine,
) -> Result<Vec<SchemaChange>, String> {
    let generated: Vec<&PropertyDef> = model.properties.iter().filter(|p| p.generated).collect();
    if !generated.is_empty() && model.id_properties().len() > 1 {
        return Err(format!(
            "{}: property {:?} is a generated id, so it must be the only id: remove \"id\" from the others or \"generated\" from it",
            model.path.display(),
            generated[0].name
        ));
    }
    let Some(table) = existing else {
        let mut columns = Vec::new();
        if model.injects_id() && !model.properties.iter().any(|p| p.name.eq_ignore_ascii_case("id")) {
            columns.push(injected_id());
        }
        for p in &model.properties {
            columns.push(column_spec(model, p, engine)?);
        }
        let mut primary_key: Vec<String> = if model.injects_id() {
            vec!["id".into()]
        } else {
            model.id_properties().iter().map(|p| p.name.clone()).collect()
        };
        let generated_key = columns.iter().any(|c| c.generated);
        if model.multi_tenant {
            if !columns.iter().any(|c| c.name == tenant_column) {
                columns.push(tenant_spec(tenant_column));
            }
            // A generated id is unique across tenants: it is the key alone (an
            // AUTO_INCREMENT or rowid cannot share a key with another column).
            if !generated_key && !primary_key.is_empty() && !primary_key.iter().any(|k| k == tenant_column) {
                primary_key.push(tenant_column.to_string());
            }
        }
        for k in &primary_key {
            if let Some(c) = columns.iter_mut().find(|c| &c.name == k) {
                c.nullable = false;
            }
        }
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let indexes = index_specs(model, model.table_name(), &names)?;
        if engine == Engine::Mysql {
            for c in &columns {
                let indexed = indexes.iter().any(|i| i.columns.contains(&c.name));
                if indexed && c.data_type.is_none() && matches!(c.kind, Kind::Json | Kind::Bytes { .. }) {
                    return Err(format!(
                        "{}: property {:?} is indexed, and MariaDB cannot index a {} column: remove the index",
                        model.path.display(),
                        c.name,
                        c.kind.describe()
                    ));
                }
            }
        }
        return Ok(vec![SchemaChange::CreateTable(TableSpec {
            name: TableName::parse(model.table_name()),
            columns,
            primary_key,
            indexes,
            foreign_keys: Vec::new(),
        })]);
    };
    let mut out = Vec::new();
    for p in &model.properties {
        if model.drop.iter().any(|d| d.eq_ignore_ascii_case(&p.name)) {
            return Err(format!(
                "{}: property {:?} is both defined and listed in \"drop\": remove one of them",
                model.path.display(),
                p.name
            ));
        }
        let spec = column_spec(model, p, engine)?;
        match table.column(&p.name) {
            None if p.generated => {
                return Err(format!(
                    "{}: property {:?} is a generated id, and table {} exists without it: a database generates ids only in a column created with its table; add the column to the table yourself, or remove \"generated\"",
                    model.path.display(),
                    p.name,
                    table.name
                ));
            }
            None => out.push(SchemaChange::AddColumn {
                table: table.name.clone(),
                column: spec,
            }),
            Some(col) if p.retype => {
                if p.data_type.as_deref() != Some(col.data_type.as_str()) && col.kind != spec.kind {
                    out.push(SchemaChange::AlterColumn {
                        table: table.name.clone(),
                        column: ColumnSpec {
                            name: col.name.clone(),
                            ..spec
                        },
                    });
                }
            }
            Some(col) if p.data_type.is_none() && !compatible(p, &col.kind) => {
                return Err(format!(
                    "{}: property {:?} is a {} but column {}.{} is {} ({}): set \"retype\": true on the property to change the column's type",
                    model.path.display(),
                    p.name,
                    p.prop_type.name(),
                    table.name,
                    col.name,
                    col.data_type,
                    col.kind.describe()
                ));
            }
            Some(col) => {
                // A longer maximum only widens the column: nothing is lost, so it
                // needs no permission.
                if let (
                    Kind::Text {
                        max_chars: Some(have), ..
                    },
                    Some(want),
                ) = (&col.kind, p.max)
                {
                    if want > *have && p.prop_type == PropType::String {
                        out.push(SchemaChange::AlterColumn {
                            table: table.name.clone(),
                            column: ColumnSpec {
                                name: col.name.clone(),
                                nullable: col.nullable,
                                default: None,
                                kept: Some(KeptAttributes {
                                    default_sql: col.default.clone(),
                                    collation: col.collation.clone(),
                                }),
                                ..spec
                            },
                        });
                    }
                }
            }
        }
    }
    if model.multi_tenant && table.column(tenant_column).is_none() {
        out.push(SchemaChange::AddColumn {
            table: table.name.clone(),
            column: ColumnSpec {
                nullable: true,
                ..tenant_spec(tenant_column)
            },
        });
    }
    for d in &model.drop {
        if let Some(col) = table.column(d) {
            out.push(SchemaChange::DropColumn {
                table: table.name.clone(),
                column: col.name.clone(),
            });
        }
    }
    // Indexes the table lacks (by their columns, whatever their names).
    let mut columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    for c in &out {
        if let SchemaChange::AddColumn { column, .. } = c {
            columns.push(column.name.clone());
        }
    }
    if model.multi_tenant && table.column(tenant_column).is_none() {
        columns.push(tenant_column.to_string());
    }
    for index in index_specs(model, &table.name.name, &columns)? {
        let exists = table
            .unique_keys()
            .iter()
            .map(|k| (k, true))
            .chain(table.indexes.iter().map(|i| (&i.columns, false)))
            .any(|(cols, unique)| {
                (unique || !index.unique)
                    && cols.len() == index.columns.len()
                    && cols.iter().zip(&index.columns).all(|(a, b)| a.eq_ignore_ascii_case(b))
            });
        if exists {
            continue;
        }
        if engine == Engine::Mysql {
            if let Some(c) = index.columns.iter().filter_map(|c| table.column(c)).find(|c| {
                matches!(
                    c.kind,
                    Kind::Text { max_chars: None, .. } | Kind::Json | Kind::Bytes { .. } | Kind::Any
                )
            }) {
                return Err(format!(
                    "{}: index {} covers column {}.{} ({}), and MariaDB indexes only bounded text: give the property a \"max\" and \"retype\": true, or remove the index",
                    model.path.display(),
                    index.name,
                    table.name,
                    c.name,
                    c.data_type
                ));
            }
        }
        out.push(SchemaChange::CreateIndex {
            table: table.name.clone(),
            index,
        });
    }
    Ok(out)
}

/// The checks a definition asks of each record written to `table`.
pub(crate) fn validation(model: &ModelDef, table: &Table, partial: bool) -> Validation {
    let mut v = Validation {
        partial,
        ..Validation::default()
    };
    for p in &model.properties {
        let Some(col) = table.column(&p.name) else { continue };
        // A required property with a default is filled by the column's default, a
        // generated one by the database.
        if p.required && p.default.is_none() && !p.generated {
            v.required.push(col.name.clone());
        }
        if let (Some(max), PropType::String) = (p.max, p.prop_type) {
            v.max_chars.push((col.name.clone(), max));
        }
    }
    v
}
