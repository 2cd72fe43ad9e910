//! Declared upgrades: `[upgrades.NAME]` in `lockgate.toml` and one file per upgrade
//! in `upgrades/NAME.toml`, read, checked against each other (names, dependencies,
//! the kind of change) and put in dependency order, each with the checksum that
//! tells a started upgrade's definition from a changed one.
//!
//! ```toml
//! [upgrades.split_name]                      # or upgrades/split_name.toml, without the header
//! table = "customers"
//! set = { first_name = "substr(full_name, 1, 20)" }   # column = SQL expression, run by the database
//! where = "full_name IS NOT NULL"             # optional: the rows in scope
//! after = ["add_email"]                       # optional: upgrades it depends on
//! cleanup = "ALTER TABLE customers DROP COLUMN full_name"   # optional: once every row has it
//! ```
//!
//! An upgrade either sets columns to SQL expressions (`set`: one set-based UPDATE per
//! key range, atomic per row) or runs a row script (`script`, Rhai, compiled here so
//! that a syntax error is the declaration's). Everything here is checked without a
//! database; names of tables and columns, and whether the expressions compile, are
//! checked against the database before the first batch.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One upgrade as `lockgate.toml` or an `upgrades/*.toml` file declares it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeSpec {
    /// The table it upgrades (`schema.table` on PostgreSQL).
    pub table: String,
    /// Column = SQL expression, evaluated by the database.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// A Rhai row script, for what SQL cannot say.
    pub script: Option<String>,
    /// The rows in scope (SQL, as written).
    #[serde(rename = "where")]
    pub condition: Option<String>,
    /// SQL to run once every row in scope has the upgrade.
    pub cleanup: Option<String>,
    /// Upgrades that must be applied to a row first.
    #[serde(default, deserialize_with = "one_or_many")]
    pub after: Vec<String>,
}

/// `after = "x"` or `after = ["x", "y"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match <OneOrMany as serde::Deserialize>::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What an upgrade does to a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Columns set to SQL expressions, in column order.
    Set(Vec<(String, String)>),
    /// A Rhai row script.
    Script(String),
    /// A Rust function, registered by a library user ([`Upgrade::rust`]).
    Rust(RustChange),
}

/// A Rust function that upgrades one row: it gets the row's values by column name
/// (without `applied_upgrades`) and changes them in place; an `Err` is that row's
/// error (it is retried, then quarantined).
pub type RowFunction = Arc<dyn Fn(&mut BTreeMap<String, lockgate_core::Value>) -> Result<(), String> + Send + Sync>;

/// A registered [`RowFunction`] and the version its author gave it; two are equal
/// when they are the same function.
#[derive(Clone)]
pub struct RustChange(pub RowFunction, pub String);

impl std::fmt::Debug for RustChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustChange(..)")
    }
}

impl PartialEq for RustChange {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RustChange {}

/// A checked upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// Its name.
    pub name: String,
    /// Where it was declared (`lockgate.toml` or `upgrades/NAME.toml`), for messages.
    pub origin: String,
    /// The table.
    pub table: String,
    /// The change.
    pub change: Change,
    /// The rows in scope.
    pub condition: Option<String>,
    /// SQL to run once every row in scope has it.
    pub cleanup: Option<String>,
    /// The upgrades a row needs first.
    pub after: Vec<String>,
    /// SHA-256 of the definition (lower-case hex): a started upgrade whose checksum
    /// changes is refused.
    pub checksum: String,
}

impl Upgrade {
    /// An upgrade of `table` by a Rust function, for library users. Its checksum
    /// ([`Upgrade::effective_checksum`]) covers the table, `version`, and the
    /// `condition`, `after` and `cleanup` set on it afterwards: change `version` when
    /// the function's behaviour changes, and the ledger refuses it for an upgrade
    /// already started (as it refuses a changed declaration), so declare it under a
    /// new name instead.
    pub fn rust(
        name: &str,
        table: &str,
        version: &str,
        f: impl Fn(&mut BTreeMap<String, lockgate_core::Value>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Result<Upgrade, DeclarationError> {
        if !valid_name(name) {
            return Err(DeclarationError(vec![format!(
                "{name:?} is not an upgrade name: use letters, digits, '_', '-' and '.'"
            )]));
        }
        let mut u = Upgrade {
            name: name.to_string(),
            origin: format!("Rust function {name}"),
            table: table.to_string(),
            change: Change::Rust(RustChange(Arc::new(f), version.to_string())),
            condition: None,
            cleanup: None,
            after: Vec::new(),
            checksum: String::new(),
        };
        u.checksum = u.effective_checksum();
        Ok(u)
    }

    /// The checksum the ledger compares: the declared one, or for a Rust function
    /// one over its table, version, condition, dependencies and cleanup as they are
    /// now (those fields are public, set after [`Upgrade::rust`]).
    pub fn effective_checksum(&self) -> String {
        match &self.change {
            Change::Rust(r) => {
                let canonical = serde_json::json!({
                    "table": self.table,
                    "rust": r.1,
                    "where": self.condition,
                    "cleanup": self.cleanup,
                    "after": self.after.iter().collect::<BTreeSet<_>>(),
                });
                lockgate_core::copytext::hex_string(&Sha256::digest(canonical.to_string().as_bytes()))
            }
            _ => self.checksum.clone(),
        }
    }
}

/// A declaration as read: its name, where it was declared, and its fields.
pub type Declared = (String, String, UpgradeSpec);

/// Bad declarations: every problem, each naming its file and field (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct DeclarationError(pub Vec<String>);

/// Whether a name can be an upgrade's: it is stored in rows' `applied_upgrades`
/// and matched there, so it keeps to letters, digits, `_`, `-` and `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The checksum of a definition: SHA-256 over its fields in a fixed order, so that
/// the same definition gives the same checksum whichever file and layout held it.
fn checksum(spec: &UpgradeSpec) -> String {
    let canonical = serde_json::json!({
        "table": spec.table,
        "set": spec.set,
        "script": spec.script,
        "where": spec.condition,
        "cleanup": spec.cleanup,
        "after": spec.after.iter().collect::<BTreeSet<_>>(),
    });
    lockgate_core::copytext::hex_string(&Sha256::digest(canonical.to_string().as_bytes()))
}

/// Reads `upgrades/*.toml` (each file one upgrade, named by the file's stem); a
/// missing folder holds none.
pub fn read_folder(dir: &Path) -> Result<Vec<Declared>, DeclarationError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DeclarationError(vec![format!("{}: {e}", dir.display())])),
    };
    files.sort();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        match toml::from_str::<UpgradeSpec>(&text) {
            Ok(spec) => out.push((name, f.display().to_string(), spec)),
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
                    .unwrap_or_default();
                problems.push(format!("{}{line}: {}", f.display(), e.message()));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(DeclarationError(problems))
    }
}

/// Checks declarations (`(name, origin, spec)`, from `lockgate.toml` and the folder
/// together) and returns them in dependency order (an upgrade after those it names
/// in `after`; otherwise by name). Every problem is listed: a bad name, a name
/// declared twice, no change or two kinds of change, an empty expression, a
/// dependency on an unknown upgrade or on one of another table, a cycle.
pub fn check(declared: Vec<Declared>) -> Result<Vec<Upgrade>, DeclarationError> {
    let mut problems = Vec::new();
    let mut by_name: BTreeMap<String, Upgrade> = BTreeMap::new();
    for (name, origin, spec) in declared {
        let at = |field: &str| format!("{origin}: upgrade {name:?}, {field}");
        if !valid_name(&name) {
            problems.push(format!(
                "{origin}: {name:?} is not an upgrade name: use letters, digits, '_', '-' and '.' (it is stored in \
                 each row's applied_upgrades)"
            ));
            continue;
        }
        if let Some(first) = by_name.get(&name) {
            problems.push(format!(
                "{origin}: upgrade {name:?} is declared twice (also in {}): rename one",
                first.origin
            ));
            continue;
        }
        if spec.table.trim().is_empty() {
            problems.push(format!("{}: name the table the upgrade changes", at("table")));
        }
        let change = match (spec.set.is_empty(), &spec.script) {
            (false, None) => {
                for (col, expr) in &spec.set {
                    if expr.trim().is_empty() {
                        problems.push(format!("{}: the expression for {col:?} is empty", at("set")));
                    }
                }
                Change::Set(
                    spec.set
                        .iter()
                        .map(|(c, e)| (c.clone(), e.trim().to_string()))
                        .collect(),
                )
            }
            (true, Some(s)) if !s.trim().is_empty() => {
                // A syntax error is the declaration's, found before any row is read.
                if let Err(e) = super::script::Script::compile(s, super::script::Limits::default()) {
                    problems.push(format!("{}: {e}", at("script")));
                }
                Change::Script(s.clone())
            }
            (false, Some(_)) => {
                problems.push(format!(
                    "{}: give either `set` (SQL expressions) or `script` (a Rhai row script), not both",
                    at("set/script")
                ));
                continue;
            }
            _ => {
                problems.push(format!(
                    "{}: say what the upgrade does: `set = {{ column = \"SQL expression\" }}` or `script = \"…\"`",
                    at("set/script")
                ));
                continue;
            }
        };
        for (field, text) in [("where", &spec.condition), ("cleanup", &spec.cleanup)] {
            if text.as_ref().is_some_and(|t| t.trim().is_empty()) {
                problems.push(format!("{}: it is empty; leave it out instead", at(field)));
            }
        }
        by_name.insert(
            name.clone(),
            Upgrade {
                checksum: checksum(&spec),
                name,
                origin,
                table: spec.table.trim().to_string(),
                change,
                condition: spec.condition.filter(|c| !c.trim().is_empty()),
                cleanup: spec.cleanup.filter(|c| !c.trim().is_empty()),
                after: spec.after,
            },
        );
    }
    for u in by_name.values() {
        for dep in &u.after {
            match by_name.get(dep) {
                None => problems.push(format!(
                    "{}: upgrade {:?}, after: {dep:?} is not a declared upgrade (declared: {})",
                    u.origin,
                    u.name,
                    by_name.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
                Some(d) if d.table != u.table => problems.push(format!(
                    "{}: upgrade {:?}, after: {dep:?} upgrades table {}, not {}: an upgrade can only follow one \
                     of its own table",
                    u.origin, u.name, d.table, u.table
                )),
                Some(_) => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(DeclarationError(problems));
    }
    order(by_name)
}

/// Upgrades in dependency order (Kahn's algorithm, ties by name); a cycle is an
/// error naming its members.
pub(crate) fn order(mut by_name: BTreeMap<String, Upgrade>) -> Result<Vec<Upgrade>, DeclarationError> {
    let mut out: Vec<Upgrade> = Vec::new();
    while !by_name.is_empty() {
        let ready: Option<String> = by_name
            .values()
            .find(|u| u.after.iter().all(|d| out.iter().any(|o| &o.name == d)))
            .map(|u| u.name.clone());
        match ready {
            Some(name) => out.push(by_name.remove(&name).expect("present")),
            None => {
                let names: Vec<String> = by_name.keys().cloned().collect();
                return Err(DeclarationError(vec![format!(
                    "upgrades {} depend on each other in a cycle (their `after` lists): break it",
                    names.join(", ")
                )]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(table: &str, set: &[(&str, &str)], after: &[&str]) -> UpgradeSpec {
        UpgradeSpec {
            table: table.into(),
            set: set.iter().map(|(c, e)| (c.to_string(), e.to_string())).collect(),
            after: after.iter().map(|s| s.to_string()).collect(),
            ..UpgradeSpec::default()
        }
    }

    fn decl(name: &str, s: UpgradeSpec) -> Declared {
        (name.into(), "lockgate.toml".into(), s)
    }

    #[test]
    fn dependencies_come_first_and_ties_go_by_name() {
        let got = check(vec![
            decl("c", spec("t", &[("x", "1")], &["b"])),
            decl("b", spec("t", &[("x", "2")], &[])),
            decl("a", spec("t", &[("x", "3")], &[])),
        ])
        .unwrap();
        let names: Vec<&str> = got.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn every_problem_is_listed_with_its_file_and_field() {
        let cases: Vec<(Vec<Declared>, &str)> = vec![
            (
                vec![decl("bad name!", spec("t", &[("x", "1")], &[]))],
                "is not an upgrade name",
            ),
            (
                vec![
                    decl("a", spec("t", &[("x", "1")], &[])),
                    ("a".into(), "upgrades/a.toml".into(), spec("t", &[("x", "1")], &[])),
                ],
                "upgrades/a.toml: upgrade \"a\" is declared twice (also in lockgate.toml)",
            ),
            (vec![decl("a", spec("t", &[], &[]))], "say what the upgrade does"),
            (
                vec![decl(
                    "a",
                    UpgradeSpec {
                        script: Some("row".into()),
                        ..spec("t", &[("x", "1")], &[])
                    },
                )],
                "not both",
            ),
            (
                vec![decl("a", spec("t", &[("x", " ")], &[]))],
                "the expression for \"x\" is empty",
            ),
            (vec![decl("a", spec("", &[("x", "1")], &[]))], "name the table"),
            (
                vec![decl("a", spec("t", &[("x", "1")], &["z"]))],
                "\"z\" is not a declared upgrade",
            ),
            (
                vec![
                    decl("a", spec("t", &[("x", "1")], &["b"])),
                    decl("b", spec("u", &[("x", "1")], &[])),
                ],
                "upgrades table u, not t",
            ),
            (
                vec![
                    decl("a", spec("t", &[("x", "1")], &["b"])),
                    decl("b", spec("t", &[("x", "1")], &["a"])),
                ],
                "upgrades a, b depend on each other in a cycle",
            ),
        ];
        for (declared, want) in cases {
            let e = check(declared).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    /// A script is compiled with the declarations: its syntax error is the file's,
    /// with the script's line and column.
    #[test]
    fn a_script_s_syntax_error_names_the_file_field_line_and_column() {
        let scripted = |script: &str| UpgradeSpec {
            table: "t".into(),
            script: Some(script.into()),
            ..UpgradeSpec::default()
        };
        let e = check(vec![(
            "x".into(),
            "upgrades/x.toml".into(),
            scripted("row.a = 1;\nrow.b = (2 + ;\n"),
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("upgrades/x.toml: upgrade \"x\", script: line 2, column "),
            "{e}"
        );
        let got = check(vec![decl("x", scripted("row.a = row.b + 1;"))]).unwrap();
        assert_eq!(got[0].change, Change::Script("row.a = row.b + 1;".into()));
    }

    #[test]
    fn the_checksum_follows_the_definition_not_its_layout() {
        let a = spec("t", &[("x", "1"), ("y", "2")], &["p", "q"]);
        let mut b = spec("t", &[("y", "2"), ("x", "1")], &["q", "p"]);
        assert_eq!(checksum(&a), checksum(&b));
        b.condition = Some("x > 0".into());
        assert_ne!(checksum(&a), checksum(&b));
    }

    #[test]
    fn files_in_the_folder_are_one_upgrade_each() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("lower_email.toml"),
            "table = \"users\"\nset = { email = \"lower(email)\" }\nafter = \"trim\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.toml"), "table = \"users\"\nsett = {}\n").unwrap();
        let e = read_folder(dir.path()).unwrap_err().to_string();
        assert!(e.contains("broken.toml:2") && e.contains("sett"), "{e}");
        std::fs::remove_file(dir.path().join("broken.toml")).unwrap();
        let got = read_folder(dir.path()).unwrap();
        assert_eq!(got[0].0, "lower_email");
        assert_eq!(got[0].2.after, vec!["trim"]);
        assert!(read_folder(&dir.path().join("missing")).unwrap().is_empty());
    }
}
