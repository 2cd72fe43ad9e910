//! Model definitions: loopback-style JSON files in a version's `ddl/` folder and in the
//! `db/models/` folder, which say what a table looks like.
//!
//! [`parse_model`] reads one into a [`ModelDef`]: its table, its properties (columns) in
//! the file's order, whether it is multi-tenant, and the destructive changes it asks for
//! explicitly (Lockgate's `"drop"` and `"retype"`). Turning that into DDL is the database
//! crate's job; a property's `dataType` is spliced into that DDL, so it is checked here
//! against a strict pattern.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::jsondoc::{check_object_text, describe, quote, refuse_scalars, strip_bom, Checked, NUMBER_TOKEN};
use crate::BundleError;

/// A model definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDef {
    /// The file it was read from (used in messages).
    pub path: PathBuf,
    /// `"name"`: the model's name.
    pub name: String,
    /// The table, when the file names one (`"table"`, `"options": {"table": …}`, or a
    /// `"postgresql"`, `"mysql"` or `"sqlite"` section with a `"table"`).
    pub table: Option<String>,
    /// `"properties"`, in the file's order.
    pub properties: Vec<PropertyDef>,
    /// Whether rows belong to a tenant: `"mixins": {"MultiTenancyMixin": …}` with anything
    /// but `false`, or a non-empty `"autoscope"` array.
    pub multi_tenant: bool,
    /// Extension `"drop"`: columns to drop, named explicitly because dropping loses data.
    pub drop: Vec<String>,
    /// `"idInjection"` (top level or in `"options"`), when the file sets it. Loopback's
    /// default is on: a model with no id property gets an integer `id` that the
    /// database generates.
    pub id_injection: Option<bool>,
    /// `"base"`: the model this one extends (its properties come first).
    pub base: Option<String>,
    /// `"indexes"`: indexes over one or more properties.
    pub indexes: Vec<IndexDef>,
}

/// An index a model asks for: a property's `"index"`, or an entry of `"indexes"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    /// Its name, when the file gives one (the key in `"indexes"`).
    pub name: Option<String>,
    /// Its properties, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
}

/// One property (column) of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyDef {
    /// The property's name.
    pub name: String,
    /// Its type.
    pub prop_type: PropType,
    /// `"required": true`: NOT NULL.
    pub required: bool,
    /// `"default"`: the value existing rows get when the column is added.
    pub default: Option<Value>,
    /// `"id"`: part of the primary key.
    pub id: bool,
    /// `"max"` or `"length"`: the longest text.
    pub max: Option<u64>,
    /// `"precision"`: a number's significant digits.
    pub precision: Option<u32>,
    /// `"scale"`: a number's digits after the point.
    pub scale: Option<u32>,
    /// `"dataType"`, or the `"dataType"` of a `"postgresql"`, `"mysql"` or `"sqlite"`
    /// section (first given in that order): the column type to use as written. Always
    /// matches `^[A-Za-z][A-Za-z ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$`.
    pub data_type: Option<String>,
    /// Extension `"retype": true`: change an existing column's type to this one, named
    /// explicitly because a conversion can lose data.
    pub retype: bool,
    /// `"generated": true` (with `"id"`): the database fills it (an identity,
    /// AUTO_INCREMENT or SQLite's rowid).
    pub generated: bool,
    /// `"index": true` (`Some(false)`) or `"index": {"unique": true}` (`Some(true)`).
    pub index: Option<bool>,
}

/// Loopback property types (plus oe-Cloud's `integer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropType {
    /// `string`.
    String,
    /// `number`.
    Number,
    /// `integer`.
    Integer,
    /// `boolean`.
    Boolean,
    /// `date`.
    Date,
    /// `object`, `geopoint`, or a nested object type.
    Object,
    /// `array`, or the `["string"]` form.
    Array,
    /// `buffer`.
    Buffer,
    /// `any`.
    Any,
}

impl PropType {
    /// The type's name as written in a model file.
    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Integer => "integer",
            PropType::Boolean => "boolean",
            PropType::Date => "date",
            PropType::Object => "object",
            PropType::Array => "array",
            PropType::Buffer => "buffer",
            PropType::Any => "any",
        }
    }

    /// Parses a type name in any letter case.
    fn parse(name: &str) -> Option<PropType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "string" => PropType::String,
            "number" => PropType::Number,
            "integer" => PropType::Integer,
            "boolean" => PropType::Boolean,
            "date" => PropType::Date,
            "object" | "geopoint" => PropType::Object,
            "array" => PropType::Array,
            "buffer" => PropType::Buffer,
            "any" => PropType::Any,
            _ => return None,
        })
    }
}

impl fmt::Display for PropType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ModelDef {
    /// The table: `table` when the file names one, else the model's name.
    pub fn table_name(&self) -> &str {
        self.table.as_deref().unwrap_or(&self.name)
    }

    /// The primary key's properties: those with `"id": true`, else the one named `id`, if
    /// any.
    pub fn id_properties(&self) -> Vec<&PropertyDef> {
        let flagged: Vec<&PropertyDef> = self.properties.iter().filter(|property| property.id).collect();
        if !flagged.is_empty() {
            return flagged;
        }
        self.properties
            .iter()
            .filter(|property| property.name == "id")
            .collect()
    }

    /// Whether loopback's idInjection gives the model an `id` that the database
    /// generates: it is on (the default) and no property is the id.
    pub fn injects_id(&self) -> bool {
        self.id_injection != Some(false) && self.id_properties().is_empty()
    }

    /// The property named `name`, if any.
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.iter().find(|property| property.name == name)
    }
}

const ENGINES: [&str; 3] = ["postgresql", "mysql", "sqlite"];

/// Parses a model definition's `text`; `path` names it in messages and in
/// [`ModelDef::path`].
///
/// Errors name the file (with the line and column where `serde_json` knows them) and the
/// property: not JSON or not an object, no `name`, `properties` not an object, a property
/// that is neither a type name nor an object with a `type`, an unknown type (the message
/// lists the valid ones), a bad `max`, `precision` or `scale`, and a `dataType` that is not
/// a plain type name with an optional `(n)` or `(p, s)`, a `"generated"` property that
/// is not an integer id, a `"defaultFn"` other than `"now"`, an engine `"columnName"`,
/// a malformed `"index"` or `"indexes"`. Keys with no bearing on what is stored
/// (`relations`, `acls`, `hidden`, `methods`, …) are ignored.
pub fn parse_model(path: &Path, text: &str) -> Result<ModelDef, BundleError> {
    let text = strip_bom(text);
    check_object_text(
        path,
        text,
        r#"is empty: a model definition is an object such as {"name": "Customer", "properties": {…}}"#,
        r#"a model definition is an object such as {"name": "Customer", "properties": {…}}"#,
    )?;
    let json_error = |error: serde_json::Error| BundleError::from_json(path, &error);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw = ModelVisitor.deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    let Some(name) = raw.name else {
        return Err(BundleError::invalid(
            path,
            r#"has no "name": give the model's name, as in {"name": "Customer", …}"#,
        ));
    };
    let table = raw.table.or(raw.options_table).or(raw.engine_table);
    let mut indexes: Vec<IndexDef> = raw
        .properties
        .iter()
        .filter_map(|p| {
            p.index.map(|unique| IndexDef {
                name: None,
                columns: vec![p.name.clone()],
                unique,
            })
        })
        .collect();
    // Whether an index names existing columns is known only with the base models
    // and the tenant column: the migrate engine checks it.
    indexes.extend(raw.indexes);
    Ok(ModelDef {
        path: path.to_path_buf(),
        name,
        table,
        properties: raw.properties,
        multi_tenant: raw.multi_tenant,
        drop: raw.drop,
        id_injection: raw.id_injection.or(raw.options_id_injection),
        base: raw.base,
        indexes,
    })
}

/// The top level as read, before the choices between its alternatives are made.
#[derive(Default)]
struct RawModel {
    name: Option<String>,
    table: Option<String>,
    options_table: Option<String>,
    engine_table: Option<String>,
    properties: Vec<PropertyDef>,
    multi_tenant: bool,
    drop: Vec<String>,
    id_injection: Option<bool>,
    options_id_injection: Option<bool>,
    base: Option<String>,
    indexes: Vec<IndexDef>,
}

struct ModelVisitor;

impl<'de> DeserializeSeed<'de> for ModelVisitor {
    type Value = RawModel;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<RawModel, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ModelVisitor {
    type Value = RawModel;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawModel, A::Error> {
        let mut model = RawModel::default();
        let mut seen = BTreeSet::new();
        let mut mixin_tenancy = false;
        let mut autoscope_tenancy = false;
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{} is given twice: keep one", quote(&key))));
            }
            if key == "properties" {
                model.properties = map.next_value_seed(PropertiesVisitor)?;
                continue;
            }
            map.next_value_seed(Checked(|value: Value| match key.as_str() {
                "name" => string(&value, "name").map(|name| model.name = Some(name)),
                "table" => string(&value, "table").map(|table| model.table = Some(table)),
                "idInjection" => flag(&value, "idInjection").map(|on| model.id_injection = Some(on)),
                "base" => string(&value, "base").map(|base| model.base = Some(base)),
                "indexes" => indexes(&value).map(|list| model.indexes = list),
                "options" => match &value {
                    Value::Object(options) => table_in(options, "options")
                        .and_then(|table| {
                            if let Some(on) = options.get("idInjection") {
                                model.options_id_injection = Some(flag(on, "options.idInjection")?);
                            }
                            Ok(table)
                        })
                        .map(|table| {
                            model.options_table = table.or_else(|| {
                                // `"options": {"postgresql": {"table": …}}` is common in loopback too.
                                ENGINES.iter().find_map(|engine| match options.get(*engine) {
                                    Some(Value::Object(section)) => table_in(section, engine).ok().flatten(),
                                    _ => None,
                                })
                            })
                        }),
                    other => Err(format!(r#""options" is {}: use an object"#, describe(other))),
                },
                engine if ENGINES.contains(&engine) => match &value {
                    Value::Object(section) => table_in(section, engine).map(|table| {
                        if model.engine_table.is_none() {
                            model.engine_table = table;
                        }
                    }),
                    other => Err(format!("{} is {}: use an object", quote(engine), describe(other))),
                },
                "mixins" => match &value {
                    Value::Object(mixins) => {
                        mixin_tenancy = mixins
                            .get("MultiTenancyMixin")
                            .is_some_and(|setting| setting != &Value::Bool(false));
                        Ok(())
                    }
                    other => Err(format!(r#""mixins" is {}: use an object"#, describe(other))),
                },
                "autoscope" => match &value {
                    Value::Array(fields) => {
                        autoscope_tenancy = !fields.is_empty();
                        Ok(())
                    }
                    other => Err(format!(
                        r#""autoscope" is {}: use an array of fields such as ["tenantId"]"#,
                        describe(other)
                    )),
                },
                "drop" => names(&value, "drop").map(|columns| model.drop = columns),
                _ => Ok(()),
            }))?;
        }
        model.multi_tenant = mixin_tenancy || autoscope_tenancy;
        Ok(model)
    }
}

/// The `"table"` of an object (`options` or an engine section), checked.
fn table_in(object: &Map<String, Value>, place: &str) -> Result<Option<String>, String> {
    match object.get("table") {
        None => Ok(None),
        Some(value) => string(value, &format!("{place}.table")).map(Some),
    }
}

fn string(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(text) if !text.is_empty() => Ok(text.clone()),
        Value::String(_) => Err(format!("{} is empty: give a name", quote(key))),
        other => Err(format!("{} is {}: use a string", quote(key), describe(other))),
    }
}

/// An array of non-empty strings (`"drop"`).
fn names(value: &Value, key: &str) -> Result<Vec<String>, String> {
    let refuse = || {
        format!(
            "{} must be an array of column names, such as [\"old_column\"]",
            quote(key)
        )
    };
    let Value::Array(items) = value else {
        return Err(refuse());
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(name) if !name.is_empty() => Ok(name.clone()),
            _ => Err(refuse()),
        })
        .collect()
}

/// Reads `"properties"` in the file's order.
struct PropertiesVisitor;

impl PropertiesVisitor {
    fn refuse(&self, what: &str) -> String {
        format!(
            r#""properties" is {what}: use an object such as {{"name": {{"type": "string", "required": true}}, "age": "number"}}"#
        )
    }
}

impl<'de> DeserializeSeed<'de> for PropertiesVisitor {
    type Value = Vec<PropertyDef>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<PropertyDef>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = Vec<PropertyDef>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object of properties")
    }

    refuse_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Vec<PropertyDef>, A::Error> {
        Err(de::Error::custom(self.refuse("an array")))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<PropertyDef>, A::Error> {
        let mut properties: Vec<PropertyDef> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if name == NUMBER_TOKEN {
                return Err(de::Error::custom(self.refuse("a number")));
            }
            if properties.iter().any(|property| property.name == name) {
                return Err(de::Error::custom(format!(
                    "property {} is given twice: keep one",
                    quote(&name)
                )));
            }
            let property = map.next_value_seed(Checked(|value: Value| {
                property(&name, &value).map_err(|message| format!("property {}: {message}", quote(&name)))
            }))?;
            properties.push(property);
        }
        Ok(properties)
    }
}

const TYPES: &str = "string, number, integer, boolean, date, object, array, buffer, any or geopoint";

/// One property from its value: a type name, the `["string"]` array form, or an object.
fn property(name: &str, value: &Value) -> Result<PropertyDef, String> {
    if name.is_empty() {
        return Err("the name is empty: name the property".to_owned());
    }
    let mut property = PropertyDef {
        name: name.to_owned(),
        prop_type: PropType::Any,
        required: false,
        default: None,
        id: false,
        max: None,
        precision: None,
        scale: None,
        data_type: None,
        retype: false,
        generated: false,
        index: None,
    };
    let object = match value {
        Value::Object(object) => object,
        other => {
            property.prop_type = prop_type(other)?;
            return Ok(property);
        }
    };
    property.prop_type = match object.get("type") {
        Some(value) => prop_type(value)?,
        None => return Err(format!(r#"has no "type": give one of {TYPES}"#)),
    };
    for (key, value) in object {
        match key.as_str() {
            "required" => property.required = flag(value, key)?,
            "retype" => property.retype = flag(value, key)?,
            "id" => {
                // Loopback also writes `"id": 1`, `"id": 2` for the parts of a composite key.
                property.id = match value {
                    Value::Bool(flag) => *flag,
                    Value::Number(number) => number.as_f64().is_some_and(|number| number != 0.0),
                    other => return Err(format!(r#""id" is {}: use true or false"#, describe(other))),
                }
            }
            "default" => property.default = Some(value.clone()),
            "generated" => property.generated = flag(value, key)?,
            "index" => {
                property.index = match value {
                    Value::Bool(false) => None,
                    Value::Bool(true) => Some(false),
                    Value::Object(options) => Some(match options.get("unique") {
                        None => false,
                        Some(unique) => flag(unique, "index.unique")?,
                    }),
                    other => {
                        return Err(format!(
                            r#""index" is {}: use true or {{"unique": true}}"#,
                            describe(other)
                        ))
                    }
                }
            }
            "defaultFn" => match value {
                // Loopback's "now" is the same as the default "$now".
                Value::String(name) if name == "now" => property.default = Some(Value::String(NOW.to_owned())),
                other => {
                    return Err(format!(
                        r#""defaultFn" {} is not supported (only "now" is): give the values in the data files, or a "default""#,
                        match other {
                            Value::String(name) => quote(name),
                            other => describe(other).to_owned(),
                        }
                    ))
                }
            },
            "max" | "length" => property.max = Some(whole(value, key, u64::MAX)?),
            "precision" => property.precision = Some(whole(value, key, u32::MAX.into())? as u32),
            "scale" => property.scale = Some(whole(value, key, u32::MAX.into())? as u32),
            _ => {}
        }
    }
    // `max` and `length` are the same thing; when both are given they must agree.
    if let (Some(Value::Number(max)), Some(Value::Number(length))) = (object.get("max"), object.get("length")) {
        if max.as_u64() != length.as_u64() {
            return Err(r#""max" and "length" differ: give one of them"#.to_owned());
        }
    }
    if let Some(value) = object.get("dataType") {
        property.data_type = Some(data_type(value, "dataType")?);
    }
    for engine in ENGINES {
        let Some(section) = object.get(engine) else { continue };
        let Value::Object(section) = section else {
            return Err(format!("{} is {}: use an object", quote(engine), describe(section)));
        };
        if let Some(value) = section.get("dataType") {
            let checked = data_type(value, &format!("{engine}.dataType"))?;
            property.data_type.get_or_insert(checked);
        }
        if section.contains_key("columnName") {
            return Err(format!(
                r#""{engine}.columnName" is not supported: Lockgate names a column after its property, so rename the property"#
            ));
        }
    }
    if property.generated && !property.id {
        return Err(r#"is "generated" but not the id: give it "id": true, or remove "generated""#.to_owned());
    }
    if property.generated && !matches!(property.prop_type, PropType::Number | PropType::Integer) {
        return Err(format!(
            r#"is a generated id of type {}: SQL databases generate integers, so use "type": "number""#,
            property.prop_type
        ));
    }
    // A bare `decimal` with a precision, or `varchar` with a length, is the type those
    // give (as loopback's connectors declare it), not the engine's bare default.
    if let Some(name) = property.data_type.clone().filter(|t| !t.contains('(')) {
        let lower = name.trim().to_ascii_lowercase();
        match (lower.as_str(), property.precision, property.scale, property.max) {
            ("decimal" | "numeric", Some(p), scale, _) => {
                property.data_type = Some(format!("{}({p},{})", name.trim(), scale.unwrap_or(0)));
            }
            ("decimal" | "numeric", None, Some(_), _) => {
                return Err(r#"gives a "scale" without a "precision": give both"#.to_owned());
            }
            ("varchar" | "char" | "character varying" | "character", _, _, Some(n)) => {
                property.data_type = Some(format!("{}({n})", name.trim()));
            }
            _ => {}
        }
    }
    Ok(property)
}

/// The default that means "the current time" (loopback's `"$now"`).
pub const NOW: &str = "$now";

/// `"indexes"`: each entry is `{"keys": {"a": 1}, "options": {"unique": true}}`,
/// `{"columns": "a, b", "kind": "unique"}`, or the keys alone (`{"a": 1, "b": -1}`).
fn indexes(value: &Value) -> Result<Vec<IndexDef>, String> {
    let Value::Object(entries) = value else {
        return Err(format!(
            r#""indexes" is {}: use an object such as {{"email_idx": {{"keys": {{"email": 1}}, "options": {{"unique": true}}}}}}"#,
            describe(value)
        ));
    };
    let mut out = Vec::new();
    for (name, entry) in entries {
        let refuse = |what: &str| {
            format!(
                r#"index {} {what}: use {{"keys": {{"column": 1}}, "options": {{"unique": true}}}} or {{"columns": "a, b", "kind": "unique"}}"#,
                quote(name)
            )
        };
        let Value::Object(entry) = entry else {
            return Err(refuse(&format!("is {}", describe(entry))));
        };
        let (columns, unique): (Vec<String>, bool) = if let Some(keys) = entry.get("keys") {
            let Value::Object(keys) = keys else {
                return Err(refuse(r#"has "keys" that are not an object"#));
            };
            let unique = match entry.get("options").and_then(|o| o.get("unique")) {
                None => false,
                Some(flag_value) => flag(flag_value, "options.unique")?,
            };
            (keys.keys().cloned().collect(), unique)
        } else if let Some(columns) = entry.get("columns") {
            let Value::String(columns) = columns else {
                return Err(refuse(r#"has "columns" that are not a string"#));
            };
            let unique = match entry.get("kind") {
                None => false,
                Some(Value::String(kind)) if kind.eq_ignore_ascii_case("unique") => true,
                Some(Value::String(kind)) if kind.eq_ignore_ascii_case("index") => false,
                Some(_) => return Err(refuse(r#"has a "kind" other than "unique""#)),
            };
            (
                columns
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect(),
                unique,
            )
        } else {
            if entry.values().any(|v| !v.is_number()) {
                return Err(refuse("is neither keys nor columns"));
            }
            (entry.keys().cloned().collect(), false)
        };
        if columns.is_empty() {
            return Err(refuse("names no column"));
        }
        out.push(IndexDef {
            name: Some(name.clone()),
            columns,
            unique,
        });
    }
    Ok(out)
}

fn prop_type(value: &Value) -> Result<PropType, String> {
    match value {
        Value::String(name) => {
            PropType::parse(name).ok_or_else(|| format!("unknown type {}: use {TYPES}", quote(name)))
        }
        Value::Array(_) => Ok(PropType::Array),
        // An anonymous nested model: `"address": {"type": {"street": "string"}}`.
        Value::Object(_) => Ok(PropType::Object),
        other => Err(format!(r#"the type is {}: use {TYPES}"#, describe(other))),
    }
}

fn flag(value: &Value, key: &str) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(format!("{} is {}: use true or false", quote(key), describe(other))),
    }
}

/// A whole number from 0 to `most`.
fn whole(value: &Value, key: &str, most: u64) -> Result<u64, String> {
    match value {
        Value::Number(number) => match number.as_u64() {
            Some(whole) if whole <= most => Ok(whole),
            _ if most == u64::MAX => Err(format!("{} is {number}: use a whole number", quote(key))),
            _ => Err(format!(
                "{} is {number}: use a whole number from 0 to {most}",
                quote(key)
            )),
        },
        other => Err(format!("{} is {}: use a whole number", quote(key), describe(other))),
    }
}

fn data_type(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(text) if valid_data_type(text) => Ok(text.clone()),
        Value::String(text) => Err(format!(
            "{} {} is not a plain column type: use a type name with an optional (n) or (p, s), such as varchar(20) or numeric(12, 2)",
            quote(key),
            quote(text)
        )),
        other => Err(format!("{} is {}: use a string", quote(key), describe(other))),
    }
}

/// Whether `text` matches `^[A-Za-z][A-Za-z ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$` (with `\s`
/// ASCII whitespace and `\d` ASCII digits): letters and spaces, then optionally one or two
/// numbers in parentheses. Nothing else can reach the DDL this is spliced into.
pub(crate) fn valid_data_type(text: &str) -> bool {
    let bytes = text.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let name_end = bytes
        .iter()
        .position(|byte| !(byte.is_ascii_alphabetic() || *byte == b' '))
        .unwrap_or(bytes.len());
    let rest = &bytes[name_end..];
    if rest.is_empty() {
        return true;
    }
    let Some(inner) = rest.strip_prefix(b"(").and_then(|rest| rest.strip_suffix(b")")) else {
        return false;
    };
    let mut numbers = inner.split(|byte| *byte == b',');
    let number = |part: &[u8]| {
        let trimmed = part.trim_ascii();
        !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit)
    };
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(first), None, None) => number(first),
        (Some(first), Some(second), None) => number(first) && number(second),
        _ => false,
    }
}
