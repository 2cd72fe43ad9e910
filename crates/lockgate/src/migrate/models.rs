//! Table definitions (loopback-style model JSON from `models/` and each version's
//! `ddl/`) turned into schema changes and record checks.
//!
//! A model maps to the table of the same name under DESIGN.md's naming rule (exact,
//! else the one case-insensitive match). What a definition may do on its own: create
//! a missing table, add missing columns (a required column with a default fills the
//! existing rows with it), widen a text column. What it must ask for explicitly:
//! dropping a column (`"drop": [...]`) and changing a column's type (`"retype": true`
//! on the property); otherwise a definition that disagrees with the table is refused.

use crate::source::Validation;
use lockgate_bundle::{ModelDef, PropType, PropertyDef};
use lockgate_core::{Kind, Table, TableName};
use lockgate_db::schema::{ColumnSpec, KeptAttributes, SchemaChange, TableSpec};

/// The kind a property's type gives a new column.
pub(crate) fn kind_of(p: &PropertyDef) -> Kind {
    match p.prop_type {
        PropType::String => Kind::Text {
            max_chars: p.max,
            max_bytes: None,
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
        PropType::Buffer => Kind::Bytes { max_bytes: None },
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

fn column_spec(model: &ModelDef, p: &PropertyDef) -> Result<ColumnSpec, String> {
    let kind = kind_of(p);
    let default = match &p.default {
        None => None,
        Some(j) => Some(kind.parse_json(j).map_err(|e| {
            format!(
                "{}: property {:?}: its default {j} does not fit its type ({e}): fix the default",
                model.path.display(),
                p.name
            )
        })?),
    };
    Ok(ColumnSpec {
        name: p.name.clone(),
        kind,
        data_type: p.data_type.clone(),
        nullable: !p.required,
        default,
        kept: None,
    })
}

/// The tenant column a multi-tenant table gets.
fn tenant_spec(tenant_column: &str) -> ColumnSpec {
    ColumnSpec {
        name: tenant_column.to_string(),
        kind: Kind::Text {
            max_chars: Some(255),
            max_bytes: None,
        },
        data_type: None,
        nullable: false,
        default: None,
        kept: None,
    }
}

/// The changes that make `existing` (or a missing table) match the definition.
/// Errors name the definition file and property and say what to do.
pub(crate) fn changes(
    model: &ModelDef,
    existing: Option<&Table>,
    tenant_column: &str,
) -> Result<Vec<SchemaChange>, String> {
    let Some(table) = existing else {
        let mut columns = Vec::new();
        for p in &model.properties {
            columns.push(column_spec(model, p)?);
        }
        let mut primary_key: Vec<String> = model.id_properties().iter().map(|p| p.name.clone()).collect();
        if model.multi_tenant {
            if !columns.iter().any(|c| c.name == tenant_column) {
                columns.push(tenant_spec(tenant_column));
            }
            if !primary_key.is_empty() && !primary_key.iter().any(|k| k == tenant_column) {
                primary_key.push(tenant_column.to_string());
            }
        }
        for k in &primary_key {
            if let Some(c) = columns.iter_mut().find(|c| &c.name == k) {
                c.nullable = false;
            }
        }
        return Ok(vec![SchemaChange::CreateTable(TableSpec {
            name: TableName::parse(model.table_name()),
            columns,
            primary_key,
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
        let spec = column_spec(model, p)?;
        match table.column(&p.name) {
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
        // A required property with a default is filled by the column's default.
        if p.required && p.default.is_none() {
            v.required.push(col.name.clone());
        }
        if let (Some(max), PropType::String) = (p.max, p.prop_type) {
            v.max_chars.push((col.name.clone(), max));
        }
    }
    v
}
