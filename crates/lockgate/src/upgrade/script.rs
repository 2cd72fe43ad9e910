//! Row scripts: an upgrade's `script`, a Rhai program run on one row at a time for
//! what a `set` upgrade's SQL cannot say, in a sandbox with no I/O and hard limits.
//!
//! ```toml
//! [upgrades.tidy_contacts]
//! table = "customers"
//! script = """
//! row.email = row.email.to_lower();
//! if row.country == () { row.country = "unknown"; }
//! row.balance = "0.10";                  // a decimal column takes its exact text
//! row.seen_at = "2024-05-01T09:30:00Z";  // a timestamp column, ISO 8601
//! row.prefs.theme = "dark";              // a JSON column is a map
//! """
//! ```
//!
//! **What the script sees.** One variable, `row`: an object map from column name to
//! the row's value, every column but `applied_upgrades` (the list of upgrades a row
//! has, which the runner keeps). Values are integers (`i64`) for integer columns,
//! floats (`f64`) for float columns, `true`/`false`, `()` for NULL, a blob for bytes,
//! maps and arrays for JSON, and strings for everything else: text, decimals (their
//! exact text, `"12.50"`), dates (`"2024-05-01"`), times (`"09:30:00"`), timestamps
//! in ISO 8601 (`"2024-05-01T09:30:00"`; an instant in UTC with a `Z`) and UUIDs.
//! Reading a field `row` does not have is an error, as is using a variable the script
//! does not declare: a misspelt name fails instead of reading `()`. (Test an optional
//! key of a JSON map with `"key" in row.prefs`.)
//!
//! **What it changes.** The fields of `row`. A field it leaves alone, or sets to the
//! value it had, keeps the value read, unconverted; so do the parts of a JSON value
//! it leaves alone, numbers included. A changed field is typed for its column by the
//! column's own rules ([`Kind::check`], and [`Kind::parse_json`] for strings, maps
//! and arrays): a string goes into a decimal, timestamp or UUID column as that
//! column reads text, exactly; a float with a fraction into an integer column is an
//! error naming the column and the value, as is `()` in a NOT NULL column. Setting a
//! name that is not a column, removing a column from `row`, declaring another `row`,
//! and changing a primary-key column or `applied_upgrades` are errors too.
//!
//! **The sandbox.** No I/O at all: `print` and `debug` go nowhere, there are no
//! modules (`import` is a syntax error), `eval` is disabled, and Rhai's standard
//! library reads no clock, file or environment. [`Limits`] bound the operations, the
//! time (the clock is read every 64 operations), the sizes of strings, arrays and
//! maps, the depth of function calls and of expressions. Rhai counts a container's
//! contents together: all the text in `row` counts against the string limit, every
//! entry of its JSON maps against the map limit; a row already past a limit is
//! refused before the script runs, and the row the script leaves is checked again.
//! A script runs on the calling thread and may hold it for up to its time limit, so
//! async callers run it with `spawn_blocking`.

use lockgate_core::value::excerpt;
use lockgate_core::{Column, Kind, Table, Value};
use lockgate_db::upgrades::APPLIED_COLUMN;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position, Scope, AST};
use serde_json::Value as J;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Sandbox limits of a row script. Zero means no limit (Rhai's convention) for every
/// field but `max_call_levels`, where it means no function calls at all.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Operations (Rhai's unit of work: an expression, a call, a loop turn) per row.
    pub max_operations: u64,
    /// Time per row.
    pub max_time: Duration,
    /// Bytes of text in one string, or in one map or array together.
    pub max_string_bytes: usize,
    /// Items of an array (a blob's bytes count as items), nested ones included.
    pub max_array: usize,
    /// Entries of a map, nested ones included.
    pub max_map: usize,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Nesting of expressions and statements.
    pub max_expr_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 1_000_000,
            max_time: Duration::from_secs(1),
            max_string_bytes: 1 << 20,
            max_array: 10_000,
            max_map: 10_000,
            max_call_levels: 32,
            max_expr_depth: 64,
        }
    }
}

/// A compiled row script (Send + Sync, cheap to share behind Arc).
pub struct Script {
    engine: Engine,
    ast: AST,
    limits: Limits,
}

/// The variable that holds the row.
const ROW: &str = "row";

/// How often, in operations, a running script reads the clock: often enough that a
/// script of costly operations overruns its time by little, seldom enough that the
/// clock costs nothing next to the operations.
const CLOCK_EVERY: u64 = 64;

thread_local! {
    /// When the script running on this thread must stop. One engine serves every
    /// call of a [`Script`], from any thread, and its progress callback has no
    /// per-call state; a script runs synchronously on its caller's thread, so the
    /// deadline of the call in progress is this thread's.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The engine of one script: the standard library, without I/O, within `limits`.
fn sandbox(limits: &Limits) -> Engine {
    let mut e = Engine::new();
    e.on_print(|_| {});
    e.on_debug(|_, _, _| {});
    e.disable_symbol("eval");
    e.set_strict_variables(true);
    e.set_fail_on_invalid_map_property(true);
    e.set_max_operations(limits.max_operations);
    e.set_max_string_size(limits.max_string_bytes);
    e.set_max_array_size(limits.max_array);
    e.set_max_map_size(limits.max_map);
    e.set_max_call_levels(limits.max_call_levels);
    e.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    e.on_progress(|ops| {
        if !ops.is_multiple_of(CLOCK_EVERY) {
            return None;
        }
        let late = DEADLINE.with(Cell::get).is_some_and(|d| Instant::now() >= d);
        late.then_some(Dynamic::UNIT)
    });
    e
}

/// `line 3, column 7: ` for a known position, else nothing.
fn at(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl Script {
    /// Compiles `source`; a syntax error is Err(String) naming line and column, e.g.
    /// "line 3, column 7: expected ')'" (the caller prefixes file and field).
    pub fn compile(source: &str, limits: Limits) -> Result<Script, String> {
        let engine = sandbox(&limits);
        // `row` is declared for the compiler, so that any other undeclared name is
        // a compile error (strict variables).
        let mut scope = Scope::new();
        scope.push(ROW, Map::new());
        let ast = engine
            .compile_with_scope(&scope, source)
            .map_err(|e| format!("{}{}", at(e.position()), e.err_type()))?;
        Ok(Script { engine, ast, limits })
    }

    /// Runs the script on one row of `table`. `row` holds the row's values in `table.columns` order.
    /// Returns the row's new values (same length and order), each typed and checked for its
    /// column (a value the column cannot hold is Err naming the column and the value).
    /// Errors (a runtime error, a limit exceeded, an unknown column set, the primary key or
    /// `applied_upgrades` changed) are Err(String) with a clear message.
    pub fn apply(&self, table: &Table, row: &[Value]) -> Result<Vec<Value>, String> {
        if row.len() != table.columns.len() {
            return Err(format!(
                "the row given for {} has {} values, but the table has {} columns",
                table.name,
                row.len(),
                table.columns.len()
            ));
        }
        // What the script was given, column by column, to tell what it changed.
        let given: Vec<Option<Dynamic>> = table
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name != APPLIED_COLUMN).then(|| to_dynamic(v)))
            .collect();
        let map: Map = table
            .columns
            .iter()
            .zip(&given)
            .filter_map(|(c, d)| Some((c.name.as_str().into(), d.clone()?)))
            .collect();
        let input = Dynamic::from_map(map);
        // Rhai checks a container's size only when the script changes it; a row
        // already too large is said to be so, not blamed on the script's first write.
        if let Err(e) = self.engine.ensure_data_size_within_limits(&input) {
            return Err(format!(
                "the row is too large for a script: it holds {}",
                self.size_limit(&e).unwrap_or_else(|| e.to_string())
            ));
        }
        let mut scope = Scope::new();
        scope.push_dynamic(ROW, input);
        let deadline = (!self.limits.max_time.is_zero()).then(|| Instant::now() + self.limits.max_time);
        let outer = DEADLINE.with(|d| d.replace(deadline));
        let ran = self.engine.run_ast_with_scope(&mut scope, &self.ast);
        DEADLINE.with(|d| d.set(outer));
        ran.map_err(|e| self.runtime_error(*e))?;

        if scope.iter_raw().filter(|(name, ..)| *name == ROW).count() != 1 {
            return Err(
                "the script declares a variable `row` of its own (`let row`): change the fields of the row it is \
                 given instead"
                    .into(),
            );
        }
        let out = scope.remove::<Dynamic>(ROW).unwrap_or(Dynamic::UNIT).flatten();
        // Rhai does not check a map's size after an indexed write (`m[k] = v`), so
        // the row is checked as it comes back.
        if let Err(e) = self.engine.ensure_data_size_within_limits(&out) {
            return Err(format!(
                "the script exceeded its limit of {}",
                self.size_limit(&e).unwrap_or_else(|| e.to_string())
            ));
        }
        let mut out = out.try_cast_result::<Map>().map_err(|d| {
            format!(
                "the script replaced `row` with {} ({}): change its fields instead",
                show(&d),
                d.type_name()
            )
        })?;
        for key in out.keys() {
            let key = key.as_str();
            if key == APPLIED_COLUMN {
                return Err(format!(
                    "the script set `{key}`, the list of the upgrades applied to the row, which the runner keeps: \
                     a script cannot change it"
                ));
            }
            if !table.columns.iter().any(|c| c.name == key) {
                let hint = table
                    .columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(key) && c.name != APPLIED_COLUMN)
                    .map(|c| format!(" (did you mean `{}`?)", c.name))
                    .unwrap_or_default();
                return Err(format!(
                    "the script set `{key}`, which is not a column of {}{hint}",
                    table.name
                ));
            }
        }
        let mut values = Vec::with_capacity(row.len());
        for ((c, old), given) in table.columns.iter().zip(row).zip(given) {
            let Some(given) = given else {
                values.push(old.clone());
                continue;
            };
            let Some(new) = out.remove(c.name.as_str()) else {
                return Err(format!(
                    "the script removed `{}` from row: set it to () to make it NULL",
                    c.name
                ));
            };
            values.push(typed(table, c, old, &given, new)?);
        }
        Ok(values)
    }

    /// A runtime error as one line: a limit says which and its number; anything else
    /// is Rhai's message after the line and column.
    fn runtime_error(&self, mut e: EvalAltResult) -> String {
        use EvalAltResult as E;
        let l = &self.limits;
        match e.unwrap_inner() {
            E::ErrorTooManyOperations(_) => {
                return format!("the script exceeded its limit of {} operations", l.max_operations)
            }
            E::ErrorTerminated(..) => return format!("the script exceeded its time limit of {:?}", l.max_time),
            E::ErrorStackOverflow(_) => {
                return format!(
                    "the script exceeded its limit of {} nested function calls",
                    l.max_call_levels
                )
            }
            inner @ E::ErrorDataTooLarge(..) => {
                if let Some(what) = self.size_limit(inner) {
                    return format!("{}the script exceeded its limit of {what}", at(inner.position()));
                }
            }
            _ => {}
        }
        let pos = e.take_position();
        let message = match &e {
            E::ErrorRuntime(thrown, _) => format!("the script threw {}", show(thrown)),
            other => other.to_string(),
        };
        format!("{}{message}", at(pos))
    }

    /// Which size limit an [`EvalAltResult::ErrorDataTooLarge`] is, with its number.
    fn size_limit(&self, e: &EvalAltResult) -> Option<String> {
        let EvalAltResult::ErrorDataTooLarge(what, _) = e else {
            return None;
        };
        let l = &self.limits;
        // Rhai names the limit in the message's text: "Length of string",
        // "Size of array/BLOB", "Size of object map".
        Some(if what.contains("string") {
            format!(
                "{} bytes of text (all the text in a map or array, `row` included, counts together)",
                l.max_string_bytes
            )
        } else if what.contains("array") {
            format!(
                "{} array items (nested arrays' items and blobs' bytes count too)",
                l.max_array
            )
        } else if what.contains("map") {
            format!("{} map entries (nested maps' entries count too)", l.max_map)
        } else {
            return None;
        })
    }
}

/// The new value of column `c`: `old` itself when the script left `given` as it
/// was, else the script's value typed for the column.
fn typed(table: &Table, c: &Column, old: &Value, given: &Dynamic, new: Dynamic) -> Result<Value, String> {
    if same(&new, given) {
        return Ok(old.clone());
    }
    if table.primary_key.contains(&c.name) {
        return Err(format!(
            "the script changed `{}` from {} to {}: it is part of the primary key of {}, which an upgrade cannot \
             change",
            c.name,
            show(given),
            show(&new),
            table.name
        ));
    }
    let value = to_value(&c.kind, old, &new).map_err(|e| {
        format!(
            "column `{}` of {} ({}) cannot hold the script's value {}: {e}",
            c.name,
            table.name,
            c.kind.describe(),
            show(&new)
        )
    })?;
    if value.is_null() && !c.nullable {
        return Err(format!(
            "the script set `{}` to () (NULL), but column {} of {} is NOT NULL",
            c.name, c.name, table.name
        ));
    }
    Ok(value)
}

/// A value as the script sees it.
fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Int(i) => Dynamic::from_int(*i),
        Value::Float(x) => Dynamic::from_float(*x),
        Value::Bytes(b) => Dynamic::from_blob(b.clone()),
        Value::Json(j) => json_to_dynamic(j),
        Value::Timestamp(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string().into(),
        Value::TimestampTz(t) => t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string().into(),
        Value::Text(s) => s.as_str().into(),
        // Decimals as their exact text, dates, times and UUIDs as their canonical text.
        Value::Decimal(_) | Value::Date(_) | Value::Time(_) | Value::Uuid(_) => v.to_string().into(),
    }
}

/// The script's value `new` typed for a column of `kind`, whose value was `old`.
fn to_value(kind: &Kind, old: &Value, new: &Dynamic) -> Result<Value, String> {
    if new.is_unit() {
        return Ok(Value::Null);
    }
    if *kind == Kind::Json {
        let original = match old {
            Value::Json(j) => Some(j),
            _ => None,
        };
        return kind.parse_json(&to_json(new, original)?).map_err(|e| e.0);
    }
    let v = if let Ok(b) = new.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = new.as_int() {
        Value::Int(i)
    } else if let Ok(x) = new.as_float() {
        if !x.is_finite() {
            return Err(format!("{x} is not a number any column holds"));
        }
        Value::Float(x)
    } else if let Ok(s) = new.as_immutable_string_ref() {
        // Text as the column reads text: a decimal exactly, a timestamp by its zone.
        return kind.parse_json(&J::String(s.to_string())).map_err(|e| e.0);
    } else if let Ok(ch) = new.as_char() {
        return kind.parse_json(&J::String(ch.to_string())).map_err(|e| e.0);
    } else if let Ok(b) = new.as_blob_ref() {
        Value::Bytes(b.to_vec())
    } else if new.is_array() || new.is_map() {
        return kind.parse_json(&to_json(new, None)?).map_err(|e| e.0);
    } else {
        return Err(format!("a {} is not a value a column holds", new.type_name()));
    };
    kind.check(v).map_err(|e| e.0)
}

/// A JSON value as the script sees it: integers that fit `i64` as integers, other
/// numbers as floats (a number no float holds, like 1e400, as its text).
fn json_to_dynamic(j: &J) -> Dynamic {
    match j {
        J::Null => Dynamic::UNIT,
        J::Bool(b) => Dynamic::from_bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Dynamic::from_int(i),
            (None, Some(x)) => Dynamic::from_float(x),
            (None, None) => n.to_string().into(),
        },
        J::String(s) => s.as_str().into(),
        J::Array(a) => Dynamic::from_array(a.iter().map(json_to_dynamic).collect()),
        J::Object(o) => Dynamic::from_map(o.iter().map(|(k, v)| (k.as_str().into(), json_to_dynamic(v))).collect()),
    }
}

/// Whether `d` is what [`json_to_dynamic`] makes of `j`.
fn json_matches(d: &Dynamic, j: &J) -> bool {
    match j {
        J::Null => d.is_unit(),
        J::Bool(b) => d.as_bool() == Ok(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => d.as_int() == Ok(i),
            (None, Some(x)) => d.as_float().is_ok_and(|y| y.to_bits() == x.to_bits()),
            (None, None) => d.as_immutable_string_ref().is_ok_and(|s| *s == n.to_string()),
        },
        J::String(s) => d.as_immutable_string_ref().is_ok_and(|t| t.as_str() == s),
        J::Array(a) => d
            .as_array_ref()
            .is_ok_and(|x| x.len() == a.len() && x.iter().zip(a).all(|(d, j)| json_matches(d, j))),
        J::Object(o) => d.as_map_ref().is_ok_and(|m| {
            m.len() == o.len()
                && o.iter()
                    .all(|(k, j)| m.get(k.as_str()).is_some_and(|d| json_matches(d, j)))
        }),
    }
}

/// The script's value as JSON. Where `original` (the JSON it was made from) says the
/// same, that part is kept as it was, so numbers the script did not touch keep
/// every digit (a float would not: 12345678901234567890, 0.1000000000000000001).
fn to_json(d: &Dynamic, original: Option<&J>) -> Result<J, String> {
    if let Some(o) = original.filter(|o| json_matches(d, o)) {
        return Ok(o.clone());
    }
    if d.is_unit() {
        Ok(J::Null)
    } else if let Ok(b) = d.as_bool() {
        Ok(J::Bool(b))
    } else if let Ok(i) = d.as_int() {
        Ok(J::from(i))
    } else if let Ok(x) = d.as_float() {
        serde_json::Number::from_f64(x)
            .map(J::Number)
            .ok_or_else(|| format!("{x} is not a number JSON holds"))
    } else if let Ok(s) = d.as_immutable_string_ref() {
        Ok(J::String(s.to_string()))
    } else if let Ok(ch) = d.as_char() {
        Ok(J::String(ch.to_string()))
    } else if let Ok(a) = d.as_array_ref() {
        a.iter()
            .enumerate()
            .map(|(i, x)| to_json(x, original.and_then(|o| o.get(i))))
            .collect::<Result<_, _>>()
            .map(J::Array)
    } else if let Ok(m) = d.as_map_ref() {
        m.iter()
            .map(|(k, x)| Ok((k.to_string(), to_json(x, original.and_then(|o| o.get(k.as_str())))?)))
            .collect::<Result<_, String>>()
            .map(J::Object)
    } else if d.is_blob() {
        Err("a blob (bytes) has no JSON form: make it a string or an array of numbers".into())
    } else {
        Err(format!("a {} has no JSON form", d.type_name()))
    }
}

/// Whether two script values are the same, exactly (floats bit for bit), so that a
/// field the script did not change keeps its value unconverted.
fn same(a: &Dynamic, b: &Dynamic) -> bool {
    if a.type_id() != b.type_id() {
        return false;
    }
    if a.is_unit() {
        return true;
    }
    if let (Ok(x), Ok(y)) = (a.as_bool(), b.as_bool()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_int(), b.as_int()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_float(), b.as_float()) {
        return x.to_bits() == y.to_bits();
    }
    if let (Ok(x), Ok(y)) = (a.as_char(), b.as_char()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_immutable_string_ref(), b.as_immutable_string_ref()) {
        return *x == *y;
    }
    if let (Ok(x), Ok(y)) = (a.as_blob_ref(), b.as_blob_ref()) {
        return *x == *y;
    }
    if let (Ok(x), Ok(y)) = (a.as_array_ref(), b.as_array_ref()) {
        return x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b));
    }
    if let (Ok(x), Ok(y)) = (a.as_map_ref(), b.as_map_ref()) {
        return x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)));
    }
    false
}

/// A script value for a message, short: strings quoted and cut, blobs by length.
fn show(d: &Dynamic) -> String {
    if d.is_unit() {
        return "()".into();
    }
    if let Ok(s) = d.as_immutable_string_ref() {
        return excerpt(s.as_str());
    }
    if let Ok(b) = d.as_blob_ref() {
        return format!("a blob of {} bytes", b.len());
    }
    let text = d.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveDateTime};
    use lockgate_core::{Decimal, TableName, TextForm};

    fn column(name: &str, kind: Kind, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: kind.describe(),
            kind,
            nullable,
            default: None,
            auto: false,
            collation: None,
        }
    }

    fn text() -> Kind {
        Kind::Text {
            max_chars: None,
            max_bytes: None,
            form: TextForm::Free,
        }
    }

    /// `customers`, a column of each kind, keyed by `id`.
    fn customers() -> Table {
        let cols = vec![
            column(
                "id",
                Kind::Int {
                    bytes: 8,
                    unsigned: false,
                },
                false,
            ),
            column(
                "n",
                Kind::Int {
                    bytes: 4,
                    unsigned: false,
                },
                true,
            ),
            column("x", Kind::Float { bytes: 8 }, true),
            column("name", text(), false),
            column(
                "price",
                Kind::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                    max_significant: None,
                },
                true,
            ),
            column(
                "big",
                Kind::Decimal {
                    precision: None,
                    scale: None,
                    max_significant: None,
                },
                true,
            ),
            column("at", Kind::Timestamp { fsp: 6 }, true),
            column("tz", Kind::TimestampTz { epoch32: false, fsp: 6 }, true),
            column("doc", Kind::Json, true),
            column("note", text(), true),
            column("flag", Kind::Bool, true),
            column(
                "raw",
                Kind::Bytes {
                    max_bytes: None,
                    fixed: false,
                },
                true,
            ),
            column("day", Kind::Date, true),
            column("uid", Kind::Uuid, true),
            column(APPLIED_COLUMN, text(), true),
        ];
        Table {
            name: TableName::new("customers"),
            columns: cols,
            primary_key: vec!["id".into()],
            unique: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            checks: vec![],
            engine: None,
            unchecked: vec![],
        }
    }

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::parse(s).unwrap())
    }

    /// One row of [`customers`].
    fn row() -> Vec<Value> {
        vec![
            Value::Int(7),
            Value::Int(41),
            Value::Float(1.25),
            Value::Text("Ada Lovelace".into()),
            dec("12.50"),
            dec("1.5"),
            Value::Timestamp(ts("2024-01-02 03:04:05.25")),
            Value::TimestampTz(ts("2024-01-02 03:04:05").and_utc()),
            Value::Json(
                serde_json::from_str(
                    r#"{"theme": "light", "list": [1, 2, 3], "big": 12345678901234567890, "exact": 0.1000000000000000001}"#,
                )
                .unwrap(),
            ),
            Value::Text("vip".into()),
            Value::Bool(false),
            Value::Bytes(vec![0, 1, 2, 255]),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Uuid(uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()),
            Value::Text(r#"["earlier"]"#.into()),
        ]
    }

    fn run(source: &str) -> Result<Vec<Value>, String> {
        Script::compile(source, Limits::default())?.apply(&customers(), &row())
    }

    /// The value of `name` in `out`.
    fn get<'a>(out: &'a [Value], name: &str) -> &'a Value {
        &out[customers().column_index(name).unwrap()]
    }

    /// Exactly the same value, representation included (`Value`'s `==` compares
    /// decimals and JSON numbers by value).
    fn identical(a: &Value, b: &Value) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn the_script_sees_each_value_as_documented() {
        let out = run(r#"
            row.note = `${row.id}:${type_of(row.n)}|${row.x}|${row.name}|${type_of(row.price)} ${row.price}|${row.at}|${row.tz}|${type_of(row.doc)} ${row.doc.theme} ${row.doc.list}|${row.flag}|${type_of(row.raw)} ${row.raw.len()}|${row.day}|${row.uid}|${"applied_upgrades" in row}`;
        "#)
        .unwrap();
        assert_eq!(
            get(&out, "note"),
            &Value::Text(
                "7:i64|1.25|Ada Lovelace|string 12.50|2024-01-02T03:04:05.250|2024-01-02T03:04:05Z|map light [1, 2, 3]|\
                 false|blob 4|2024-02-29|67e55044-10b1-426f-9247-bb680e5fe0c8|false"
                    .into()
            )
        );
        // NULL is ().
        let mut r = row();
        r[1] = Value::Null;
        let out = Script::compile(r#"row.note = type_of(row.n);"#, Limits::default())
            .unwrap()
            .apply(&customers(), &r)
            .unwrap();
        assert_eq!(get(&out, "note"), &Value::Text("()".into()));
    }

    #[test]
    fn changes_come_back_typed_for_their_columns() {
        let out = run(r#"
            row.n += 1;
            row.x *= 2.0;
            row.name = row.name.to_upper();
            row.price = "13.10";
            row.big = "12345678901234567890.123456789";
            row.at = "2024-05-01T09:30:00.123456";
            row.tz = "2024-05-01T11:30:00+02:00";
            row.doc.theme = "dark";
            row.doc.list.push(4);
            row.note = ();
            row.flag = !row.flag;
            row.day = "2025-01-31";
        "#)
        .unwrap();
        assert!(identical(get(&out, "n"), &Value::Int(42)));
        assert!(identical(get(&out, "x"), &Value::Float(2.5)));
        assert!(identical(get(&out, "name"), &Value::Text("ADA LOVELACE".into())));
        // Decimals exactly as written: no float on the way.
        assert!(identical(get(&out, "price"), &dec("13.10")), "{:?}", get(&out, "price"));
        assert!(identical(get(&out, "big"), &dec("12345678901234567890.123456789")));
        assert!(identical(
            get(&out, "at"),
            &Value::Timestamp(ts("2024-05-01 09:30:00.123456"))
        ));
        assert!(identical(
            get(&out, "tz"),
            &Value::TimestampTz(ts("2024-05-01 09:30:00").and_utc())
        ));
        let Value::Json(doc) = get(&out, "doc") else {
            panic!("{:?}", get(&out, "doc"))
        };
        assert_eq!(doc["theme"], "dark");
        assert_eq!(doc["list"], serde_json::json!([1, 2, 3, 4]));
        // The numbers the script did not touch keep every digit, which no float does.
        assert_eq!(doc["big"].to_string(), "12345678901234567890");
        assert_eq!(doc["exact"].to_string(), "0.1000000000000000001");
        assert!(identical(get(&out, "note"), &Value::Null));
        assert!(identical(get(&out, "flag"), &Value::Bool(true)));
        assert!(identical(
            get(&out, "day"),
            &Value::Date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap())
        ));
        // Bytes, the key, the UUID and applied_upgrades were not touched.
        for name in ["id", "raw", "uid", APPLIED_COLUMN] {
            let i = customers().column_index(name).unwrap();
            assert!(identical(&out[i], &row()[i]), "{name}");
        }
        // Integers into a float column, integral floats into an integer column, text
        // into a number column and a new JSON document all go by the column's rules.
        let out =
            run(r#"row.x = 3; row.n = 6.0; row.big = 2; row.price = 0.5; row.doc = #{a: [1, "b", ()]};"#).unwrap();
        assert!(identical(get(&out, "x"), &Value::Float(3.0)));
        assert!(identical(get(&out, "n"), &Value::Int(6)));
        assert!(identical(get(&out, "big"), &dec("2")));
        assert_eq!(get(&out, "price"), &dec("0.5"));
        assert_eq!(get(&out, "doc"), &Value::Json(serde_json::json!({"a": [1, "b", null]})));
        // A closure that captures `row` makes it a shared value; its changes count.
        let out = run("let f = |x| row.n + x; row.n = f.call(1); row.note = `${f.call(2)}`;").unwrap();
        assert!(identical(get(&out, "n"), &Value::Int(42)));
        assert!(identical(get(&out, "note"), &Value::Text("44".into())));
        // A blob into a bytes column.
        let out = run(r#"row.raw = blob(2, 0x41);"#).unwrap();
        assert!(identical(get(&out, "raw"), &Value::Bytes(b"AA".to_vec())));
    }

    /// What the script leaves alone, or sets to what it was, comes back as it was
    /// read, even where converting it again would change it or fail.
    #[test]
    fn unchanged_fields_come_back_identical() {
        let mut table = customers();
        table.columns[3].kind = Kind::Text {
            max_chars: Some(20),
            max_bytes: None,
            form: TextForm::Padded,
        };
        let mut r = row();
        // A char(20)'s padding, and nanoseconds a timestamp(6) column would refuse
        // on the way in: both come back untouched.
        r[3] = Value::Text("Ada   ".into());
        r[6] = Value::Timestamp(ts("2024-01-02 03:04:05.123456789"));
        for source in [
            "row.n = 1;",
            "row.n = 1; row.name = row.name; row.at = row.at + \"\"; row.doc = row.doc; row.x = row.x * 1.0;",
            "row.n = 1; row.doc.theme = \"x\"; row.doc.theme = \"light\";",
        ] {
            let out = Script::compile(source, Limits::default())
                .unwrap()
                .apply(&table, &r)
                .unwrap();
            assert_eq!(out.len(), r.len());
            for (i, (a, b)) in out.iter().zip(&r).enumerate() {
                if i != 1 {
                    assert!(identical(a, b), "{source}: {} {a:?} {b:?}", table.columns[i].name);
                }
            }
        }
        // A script that changes nothing gives the row back.
        let out = Script::compile("let x = row.n * 2;", Limits::default())
            .unwrap()
            .apply(&table, &r)
            .unwrap();
        assert!(out.iter().zip(&r).all(|(a, b)| identical(a, b)));
    }

    #[test]
    fn a_value_the_column_cannot_hold_is_an_error_naming_both() {
        let cases = [
            (
                "row.n = 2.5;",
                "column `n` of customers (int32) cannot hold the script's value 2.5: 2.5 is not an integer: the \
                 column would store 3",
            ),
            (
                "row.n = \"abc\";",
                "column `n` of customers (int32) cannot hold the script's value \"abc\"",
            ),
            (
                "row.price = \"1.005\";",
                "column `price` of customers (decimal(12,2)) cannot hold",
            ),
            ("row.at = \"yesterday\";", "\"yesterday\" is not a timestamp"),
            ("row.x = 1.0 / 0.0;", "column `x`"),
            (
                "row.name = ();",
                "the script set `name` to () (NULL), but column name of customers is NOT NULL",
            ),
            ("row.flag = [1];", "column `flag`"),
            ("row.doc = blob(1);", "a blob (bytes) has no JSON form"),
            ("row.note = Fn(\"to_upper\");", "is not a value a column holds"),
        ];
        for (source, want) in cases {
            let e = run(source).unwrap_err();
            assert!(e.contains(want), "{source}: {want:?} not in {e:?}");
        }
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = Script::compile("row.n = 1;\nrow.name = (1 + ;\n", Limits::default())
            .err()
            .unwrap();
        assert!(e.starts_with("line 2, column "), "{e}");
        // An undeclared variable is found when compiling, not on the first row.
        let e = Script::compile("rwo.n = 1;", Limits::default()).err().unwrap();
        assert!(e.starts_with("line 1, column 1: ") && e.contains("rwo"), "{e}");
        // Expressions nested past the limit.
        let deep = format!("row.n = {}1{};", "(".repeat(20), ")".repeat(20));
        let limits = Limits {
            max_expr_depth: 10,
            ..Limits::default()
        };
        assert!(Script::compile(&deep, limits).is_err());
        assert!(Script::compile(&deep, Limits::default()).is_ok());
    }

    #[test]
    fn runtime_errors_name_line_and_column() {
        let e = run("row.n = 1;\nthrow \"no \" + row.name;").unwrap_err();
        assert_eq!(e, "line 2, column 1: the script threw \"no Ada Lovelace\"");
        let e = run("let a = [];\nrow.n = a[3];").unwrap_err();
        assert!(e.starts_with("line 2, column ") && e.contains("out of bounds"), "{e}");
    }

    #[test]
    fn an_endless_loop_stops_at_the_operation_limit() {
        let limits = Limits {
            max_time: Duration::ZERO,
            ..Limits::default()
        };
        let e = Script::compile("loop { row.n += 1; }", limits)
            .unwrap()
            .apply(&customers(), &row())
            .unwrap_err();
        assert_eq!(e, "the script exceeded its limit of 1000000 operations");
        // Recursion stops at the call limit.
        let e = run("fn f(x) { f(x + 1) } row.n = f(0);").unwrap_err();
        assert!(e.contains("limit of 32 nested function calls"), "{e}");
    }

    #[test]
    fn a_slow_script_stops_at_the_time_limit() {
        let limits = Limits {
            max_operations: 0,
            max_time: Duration::from_millis(50),
            ..Limits::default()
        };
        let script = Script::compile("loop { row.n += 1; row.n -= 1; }", limits).unwrap();
        let start = Instant::now();
        let e = script.apply(&customers(), &row()).unwrap_err();
        assert_eq!(e, "the script exceeded its time limit of 50ms");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        // The deadline was this call's: the next call has its own.
        let quick = Script::compile("row.n = 1;", Limits::default()).unwrap();
        assert!(quick.apply(&customers(), &row()).is_ok());
    }

    #[test]
    fn data_past_the_size_limits_is_refused() {
        let e = run(r#"let s = "x"; loop { s += s; }"#).unwrap_err();
        assert!(e.contains("exceeded its limit of 1048576 bytes of text"), "{e}");
        let e = run(r#"row.name = "x".pad(2000000, "y");"#).unwrap_err();
        assert!(e.contains("exceeded its limit of 1048576 bytes of text"), "{e}");
        let e = run("let a = []; loop { a.push(1); }").unwrap_err();
        assert!(e.contains("exceeded its limit of 10000 array items"), "{e}");
        let e = run("let m = #{}; let i = 0; loop { m.mixin(#{a: i}); m[`k${i}`] = i; i += 1; }").unwrap_err();
        assert!(e.contains("exceeded its limit of 10000 map entries"), "{e}");
        // Rhai lets an indexed write past the map limit; the row coming back is checked.
        let e = run("for i in 0..10001 { row.doc[`k${i}`] = i; }").unwrap_err();
        assert_eq!(
            e,
            "the script exceeded its limit of 10000 map entries (nested maps' entries count too)"
        );
        let e = run(r#"let s = "x"; s.pad(1000000, "y"); row["note"] = s; row["name"] = s;"#).unwrap_err();
        assert!(e.contains("exceeded its limit of 1048576 bytes of text"), "{e}");
        // A row already past a limit is refused before the script runs.
        let mut r = row();
        r[9] = Value::Text("z".repeat(2 << 20));
        let e = Script::compile("row.n = 1;", Limits::default())
            .unwrap()
            .apply(&customers(), &r)
            .unwrap_err();
        assert!(
            e.starts_with("the row is too large for a script: it holds 1048576 bytes of text"),
            "{e}"
        );
    }

    #[test]
    fn only_the_row_s_own_columns_can_change() {
        let cases = [
            (
                "row.nmae = \"x\";",
                "the script set `nmae`, which is not a column of customers",
            ),
            (
                "row.Name = \"x\";",
                "which is not a column of customers (did you mean `name`?)",
            ),
            ("row.n = row.nmae;", "line 1, column 13: Property not found: nmae"),
            (
                "row.remove(\"note\");",
                "the script removed `note` from row: set it to () to make it NULL",
            ),
            (
                "row = 5;",
                "the script replaced `row` with 5 (i64): change its fields instead",
            ),
            ("let row = #{}; row.n = 1;", "declares a variable `row` of its own"),
            (
                "row.id = 8;",
                "the script changed `id` from 7 to 8: it is part of the primary key of customers, which an upgrade \
                 cannot change",
            ),
            (
                "row.applied_upgrades = \"[]\";",
                "the script set `applied_upgrades`, the list of the upgrades applied to the row",
            ),
        ];
        for (source, want) in cases {
            let e = run(source).unwrap_err();
            assert!(e.contains(want), "{source}: {want:?} not in {e:?}");
        }
        // The key may be read, and set to what it is.
        assert!(run("row.id = row.id; row.note = `#${row.id}`;").is_ok());
    }

    #[test]
    fn the_sandbox_has_no_import_eval_or_output() {
        let e = Script::compile("import \"x\" as y;\nrow.n = 1;", Limits::default())
            .err()
            .unwrap();
        assert_eq!(e, "line 1, column 1: 'import' is a reserved keyword");
        let e = Script::compile("eval(\"row.n = 1\");", Limits::default())
            .err()
            .unwrap();
        assert_eq!(e, "line 1, column 1: reserved keyword 'eval' is disabled");
        // Nor through a function pointer, whose name is only known when it runs.
        for source in [
            "let f = Fn(\"eval\"); f.call(\"row.n = 1\");",
            "let name = \"ev\" + \"al\"; call(Fn(name), \"row.n = 1\");",
        ] {
            let e = run(source).unwrap_err();
            assert!(e.contains("'eval' is a reserved keyword"), "{source}: {e}");
        }
        // No clock to read.
        let e = run("let t = timestamp();").unwrap_err();
        assert!(e.contains("Function not found: timestamp"), "{e}");
        // print and debug run and go nowhere; `exit` ends the script, keeping its changes.
        let out = run("print(\"hello\"); debug(row); row.n = 1; exit(); row.n = 2;").unwrap();
        assert!(identical(get(&out, "n"), &Value::Int(1)));
    }

    #[test]
    fn a_compiled_script_is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Script>();
        let script = std::sync::Arc::new(Script::compile("row.n += 1;", Limits::default()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = script.clone();
                std::thread::spawn(move || s.apply(&customers(), &row()).unwrap())
            })
            .collect();
        for t in threads {
            assert!(identical(get(&t.join().unwrap(), "n"), &Value::Int(42)));
        }
    }

    /// The example in the module's documentation runs as it says.
    #[test]
    fn the_documented_example_runs() {
        let mut table = customers();
        table.columns[9].name = "email".into();
        table.columns[3].name = "country".into();
        table.columns[3].nullable = true;
        table.columns[6].name = "seen_at".into();
        table.columns[4].name = "balance".into();
        table.columns[8].name = "prefs".into();
        let mut r = row();
        r[9] = Value::Text("Ada@Example.COM".into());
        r[3] = Value::Null;
        let source = r#"
            row.email = row.email.to_lower();
            if row.country == () { row.country = "unknown"; }
            row.balance = "0.10";                  // a decimal column takes its exact text
            row.seen_at = "2024-05-01T09:30:00Z";  // a timestamp column, ISO 8601
            row.prefs.theme = "dark";              // a JSON column is a map
        "#;
        let out = Script::compile(source, Limits::default())
            .unwrap()
            .apply(&table, &r)
            .unwrap();
        assert_eq!(out[9], Value::Text("ada@example.com".into()));
        assert_eq!(out[3], Value::Text("unknown".into()));
        assert!(identical(&out[4], &dec("0.10")));
        assert_eq!(out[6], Value::Timestamp(ts("2024-05-01 09:30:00")));
        let Value::Json(prefs) = &out[8] else { panic!() };
        assert_eq!(prefs["theme"], "dark");
    }
}
