//! Reading SQL that users wrote (migration `.sql` scripts) just enough to run it
//! safely inside a version's transaction: split into statements (each with the line
//! it starts on, so an error can name it), refuse what would break the transaction
//! (COMMIT, BEGIN, ROLLBACK… on every engine; on MariaDB the statements that commit
//! implicitly, DDL and friends, which would leave a version half applied), and name
//! the tables a statement writes, so that what it changes can be recorded.

use crate::url::Engine;

/// One statement of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// 1-based position in the script.
    pub number: usize,
    /// 1-based line of the script on which its first word stands.
    pub line: usize,
    /// Its first words, upper-cased (quoted text shows as `_`).
    pub head: String,
    /// Its text as written, without the `;` that ends it.
    pub text: String,
}

/// What a statement may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// No table rows (SELECT, SET, SAVEPOINT, temporary tables…).
    Nothing,
    /// The rows of these tables (as written: `schema.table` or `table`, unquoted).
    Tables(Vec<String>),
    /// Something Lockgate cannot name from the text (a CALL, a DO block, a WITH
    /// before the write, a multi-table UPDATE…).
    Unknown,
}

/// The first words of each statement of `sql` (upper-cased), as `engine` reads it.
pub fn statement_heads(engine: Engine, sql: &str) -> Vec<String> {
    statements(engine, sql).into_iter().map(|s| s.head).collect()
}

/// The statements of `sql`, as `engine` reads it: comments (`--`, `/* */`, and `#`
/// on MariaDB, whose `/*! … */` runs as code) and quoted text (`'…'`, `"…"`,
/// `` `…` ``, PostgreSQL's `$tag$…$tag$`, backslash escapes on MariaDB only) are
/// skipped; statements end at `;`, except inside the body of a trigger, routine or
/// `BEGIN NOT ATOMIC` block (between its BEGIN and END). Text holding only
/// comments is no statement.
pub fn statements(engine: Engine, sql: &str) -> Vec<Statement> {
    let mysql = engine == Engine::Mysql;
    let b: Vec<char> = sql.chars().collect();
    let n = b.len();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    // Char index at which each line starts, to name a statement's line.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(b.iter().enumerate().filter(|(_, c)| **c == '\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |i: usize| line_starts.partition_point(|&s| s <= i);
    let mut out: Vec<Statement> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start = 0usize;
    let mut first_at = 0usize;
    let mut compound = false;
    let mut depth = 0i32;
    let mut exec_comment = false;
    let mut i = 0;
    // The next word after position `i` (for END IF and friends).
    let next_word = |mut i: usize| -> String {
        while i < n && !(b[i].is_ascii_alphabetic() || b[i] == '_') {
            if b[i] == ';' {
                return String::new();
            }
            i += 1;
        }
        let mut w = String::new();
        while i < n && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
            w.push(b[i].to_ascii_uppercase());
            i += 1;
        }
        w
    };
    let mut flush = |words: &mut Vec<String>, start: usize, end: usize, first_at: usize| {
        if !words.is_empty() {
            out.push(Statement {
                number: out.len() + 1,
                line: line_of(first_at),
                head: words.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
                text: b[start..end.min(n)].iter().collect(),
            });
        }
        words.clear();
    };
    while i < n {
        let c = b[i];
        if c == '-' && at(i + 1) == '-' || (c == '#' && mysql) {
            while i < n && b[i] != '\n' {
                i += 1;
            }
        } else if c == '*' && at(i + 1) == '/' && exec_comment {
            exec_comment = false;
            i += 2;
        } else if c == '/' && at(i + 1) == '*' {
            let exec = mysql && (at(i + 2) == '!' || (at(i + 2) == 'M' && at(i + 3) == '!'));
            if exec {
                // MariaDB runs what such a comment holds: read it as code.
                i += if at(i + 2) == '!' { 3 } else { 4 };
                while i < n && b[i].is_ascii_digit() {
                    i += 1;
                }
                exec_comment = true;
            } else {
                i += 2;
                while i < n && !(b[i] == '*' && at(i + 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == '\'' || c == '"' || c == '`' {
            if words.is_empty() {
                first_at = i;
            }
            i += 1;
            while i < n {
                if mysql && b[i] == '\\' && c != '`' {
                    i += 2;
                    continue;
                }
                if b[i] == c {
                    if at(i + 1) == c {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            words.push("_".into());
        } else if c == '$' && engine == Engine::Postgres && !at(i + 1).is_ascii_digit() {
            // $tag$ … $tag$ (the tag may be empty).
            let mut j = i + 1;
            while j < n && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            if at(j) == '$' {
                if words.is_empty() {
                    first_at = i;
                }
                let tag: String = b[i..=j].iter().collect();
                let rest: String = b[j + 1..].iter().collect();
                match rest.find(&tag) {
                    Some(k) => i = j + 1 + rest[..k].chars().count() + tag.chars().count(),
                    None => i = n,
                }
                words.push("_".into());
            } else {
                i += 1;
            }
        } else if c == ';' {
            if depth <= 0 {
                flush(&mut words, start, i, first_at);
                start = i + 1;
                compound = false;
                depth = 0;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            if words.is_empty() {
                first_at = i;
            }
            let mut w = String::new();
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                w.push(b[i].to_ascii_uppercase());
                i += 1;
            }
            if !compound {
                let starts_body = (words.first().map(String::as_str) == Some("CREATE")
                    && matches!(w.as_str(), "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT"))
                    || (words.len() == 1 && words[0] == "BEGIN" && matches!(w.as_str(), "NOT" | "ATOMIC"));
                if starts_body {
                    compound = true;
                    depth = if words[0] == "BEGIN" { 1 } else { 0 };
                }
            } else {
                match w.as_str() {
                    "BEGIN" | "CASE" => depth += 1,
                    "END" if !matches!(next_word(i).as_str(), "IF" | "LOOP" | "WHILE" | "REPEAT" | "FOR") => depth -= 1,
                    _ => {}
                }
            }
            words.push(w);
        } else {
            i += 1;
        }
    }
    flush(&mut words, start, n, first_at);
    out
}

/// A token of a statement: a word (bare, upper-cased in `upper`) or a quoted name, or
/// one character of punctuation.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A bare word: as written, and upper-cased.
    Word(String, String),
    /// A quoted identifier, unquoted.
    Quoted(String),
    /// Anything else: punctuation or a character of a number.
    Other(char),
    /// A string literal (PostgreSQL's `$tag$…$tag$` and `E'…'` too).
    Str,
}

/// `text` as `engine` reads it, at most `max` tokens: comments dropped (a MariaDB
/// `/*! … */` read as code), quoted names unquoted, string literals as [`Token::Str`].
/// The one lexer behind [`effect`], [`names`] and [`outside_the_database`].
fn tokens(engine: Engine, text: &str, max: usize) -> Vec<Token> {
    let mysql = engine == Engine::Mysql;
    let b: Vec<char> = text.chars().collect();
    let n = b.len();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    while i < n && out.len() < max {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == '-' || (c == '#' && mysql) {
            while i < n && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            if mysql && (at(i + 2) == '!' || (at(i + 2) == 'M' && at(i + 3) == '!')) {
                i += if at(i + 2) == '!' { 3 } else { 4 };
                while i < n && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i < n && !(b[i] == '*' && at(i + 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == '*' && at(i + 1) == '/' && mysql {
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' {
            let name = (c == '"' && !mysql) || (c == '`' && engine != Engine::Postgres);
            let mut s = String::new();
            i += 1;
            while i < n {
                if mysql && b[i] == '\\' && c != '`' {
                    i += 2;
                    continue;
                }
                if b[i] == c {
                    if at(i + 1) == c {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(if name { Token::Quoted(s) } else { Token::Str });
        } else if c == '[' && engine == Engine::Sqlite {
            let mut s = String::new();
            i += 1;
            while i < n && b[i] != ']' {
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Quoted(s));
        } else if c == '$' && engine == Engine::Postgres && !at(i + 1).is_ascii_digit() {
            let mut j = i + 1;
            while j < n && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            if at(j) == '$' {
                let tag: String = b[i..=j].iter().collect();
                let rest: String = b[j + 1..].iter().collect();
                i = match rest.find(&tag) {
                    Some(k) => j + 1 + rest[..k].chars().count() + tag.chars().count(),
                    None => n,
                };
                out.push(Token::Str);
            } else {
                out.push(Token::Other(c));
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let mut w = String::new();
            while i < n && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                w.push(b[i]);
                i += 1;
            }
            // E'…', B'…', X'…', N'…': a prefixed string literal is a string.
            if at(i) == '\'' && matches!(w.to_ascii_uppercase().as_str(), "E" | "B" | "X" | "N" | "_UTF8") {
                continue;
            }
            let upper = w.to_uppercase();
            out.push(Token::Word(w, upper));
        } else {
            out.push(Token::Other(c));
            i += 1;
        }
    }
    out
}

/// What a statement may change, from its text (see [`Effect`]).
pub fn effect(engine: Engine, text: &str) -> Effect {
    let t = tokens(engine, text, 64);
    let word = |i: usize| match t.get(i) {
        Some(Token::Word(_, u)) => u.as_str(),
        _ => "",
    };
    // A (possibly qualified) name at `i`: its text and the index after it.
    let name = |mut i: usize| -> Option<(String, usize)> {
        let mut parts = Vec::new();
        loop {
            match t.get(i)? {
                Token::Word(w, _) => parts.push(w.clone()),
                Token::Quoted(q) => parts.push(q.clone()),
                Token::Other(_) | Token::Str => return None,
            }
            i += 1;
            if t.get(i) == Some(&Token::Other('.')) {
                i += 1;
            } else {
                break;
            }
        }
        Some((parts.join("."), i))
    };
    // Skips optional modifier words.
    let skip = |mut i: usize, mods: &[&str]| {
        while mods.contains(&word(i)) {
            i += 1;
        }
        i
    };
    let first = word(0);
    match first {
        // One table, written by name, and nothing after the name that names another.
        "UPDATE" => {
            let i = skip(
                1,
                &[
                    "LOW_PRIORITY",
                    "IGNORE",
                    "ONLY",
                    "OR",
                    "ROLLBACK",
                    "ABORT",
                    "REPLACE",
                    "FAIL",
                ],
            );
            let Some((table, mut j)) = name(i) else {
                return Effect::Unknown;
            };
            if word(j) == "AS" {
                j += 1;
            }
            if word(j) != "SET" {
                j += 1; // an alias
            }
            if word(j) == "SET" {
                Effect::Tables(vec![table])
            } else {
                Effect::Unknown // a join, or several tables
            }
        }
        "INSERT" | "REPLACE" => {
            let mut i = skip(1, &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"]);
            if word(i) == "OR" {
                i += 2; // SQLite: INSERT OR REPLACE
            }
            if word(i) == "INTO" {
                i += 1;
            }
            match name(i) {
                Some((table, _)) => Effect::Tables(vec![table]),
                None => Effect::Unknown,
            }
        }
        "DELETE" => {
            let i = skip(1, &["LOW_PRIORITY", "QUICK", "IGNORE"]);
            if word(i) != "FROM" {
                return Effect::Unknown; // DELETE t1, t2 FROM …
            }
            let i = skip(i + 1, &["ONLY"]);
            match name(i) {
                Some((table, j)) if t.get(j) != Some(&Token::Other(',')) => Effect::Tables(vec![table]),
                _ => Effect::Unknown,
            }
        }
        "MERGE" if word(1) == "INTO" => match name(2) {
            Some((table, _)) => Effect::Tables(vec![table]),
            None => Effect::Unknown,
        },
        "TRUNCATE" => {
            let mut i = skip(1, &["TABLE", "ONLY"]);
            let mut tables = Vec::new();
            while let Some((table, j)) = name(i) {
                tables.push(table);
                if t.get(j) == Some(&Token::Other(',')) {
                    i = skip(j + 1, &["ONLY"]);
                } else {
                    break;
                }
            }
            if tables.is_empty() {
                Effect::Unknown
            } else {
                Effect::Tables(tables)
            }
        }
        "SELECT" | "VALUES" | "TABLE" | "SHOW" | "SET" | "RESET" | "SAVEPOINT" | "RELEASE" | "PRAGMA" | "DECLARE"
        | "FETCH" | "CLOSE" | "MOVE" | "PREPARE" | "DEALLOCATE" | "DESCRIBE" | "DESC" | "LISTEN" | "NOTIFY"
        | "UNLISTEN" | "ANALYZE" | "COMMENT" | "LOCK" | "GRANT" | "REVOKE" => Effect::Nothing,
        "ROLLBACK" if word(1) == "TO" => Effect::Nothing,
        "EXPLAIN" if word(1) != "ANALYZE" => Effect::Nothing,
        "CREATE" | "DROP" if word(1) == "TEMPORARY" || word(1) == "TEMP" => Effect::Nothing,
        _ => Effect::Unknown,
    }
}

/// Every name a statement holds, as written (`schema.table` or `table`, unquoted),
/// each once: words, quoted names and dotted names alike, keywords included. What a
/// statement of [`Effect::Unknown`] may change is among them when it changes rows
/// of tables it names; the caller keeps those that are tables.
pub fn names(engine: Engine, text: &str) -> Vec<String> {
    let t = tokens(engine, text, usize::MAX);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let mut parts = Vec::new();
        while let Some(Token::Word(w, _) | Token::Quoted(w)) = t.get(i) {
            parts.push(w.clone());
            i += 1;
            if t.get(i) == Some(&Token::Other('.')) {
                i += 1;
            } else {
                break;
            }
        }
        if parts.is_empty() {
            i += 1;
            continue;
        }
        // `a.b.c` is a column of table `a.b` or of `b` (its last part is no table).
        let mut found = vec![parts.join(".")];
        if parts.len() > 1 {
            found.push(parts[..parts.len() - 1].join("."));
            found.push(parts[parts.len() - 2].clone());
        }
        for n in found {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Why a script cannot run inside a version's transaction on `engine`, naming the
/// statement (1-based) and what to do; `None` when it can.
pub fn transaction_breaker(engine: Engine, sql: &str) -> Option<String> {
    for (i, head) in statement_heads(engine, sql).iter().enumerate() {
        let first = head.split(' ').next().unwrap_or_default();
        let second = head.split(' ').nth(1).unwrap_or_default();
        let ends = matches!(first, "COMMIT" | "BEGIN" | "END" | "START" | "ROLLBACK" | "ABORT")
            && !(first == "ROLLBACK" && second == "TO")
            && !(first == "BEGIN" && matches!(second, "ATOMIC" | "NOT"));
        if ends {
            return Some(format!(
                "statement {} ({head} …) would end the version's transaction: remove it; lockgate commits the version itself",
                i + 1
            ));
        }
        if engine == Engine::Mysql && first == "SET" && head.split(' ').take(3).any(|w| w == "AUTOCOMMIT") {
            return Some(format!(
                "statement {} ({head} …) changes autocommit, which makes MariaDB commit the open transaction: remove it; lockgate commits the version itself",
                i + 1
            ));
        }
        if engine == Engine::Mysql {
            let temporary = second == "TEMPORARY";
            let implicit = matches!(
                first,
                "CREATE"
                    | "ALTER"
                    | "DROP"
                    | "RENAME"
                    | "TRUNCATE"
                    | "LOCK"
                    | "UNLOCK"
                    | "GRANT"
                    | "REVOKE"
                    | "ANALYZE"
                    | "OPTIMIZE"
                    | "REPAIR"
                    | "CHECK"
                    | "FLUSH"
                    | "RESET"
                    | "INSTALL"
                    | "UNINSTALL"
                    | "LOAD"
                    | "CACHE"
            ) && !temporary
                && !(first == "LOAD" && second == "DATA");
            if implicit {
                return Some(format!(
                    "statement {} ({head} …) makes MariaDB commit the open transaction, which would leave the version half applied: put schema changes in ddl/ definitions, or run this statement from a process script (.sh), which runs between committed parts",
                    i + 1
                ));
            }
        }
    }
    None
}

/// A statement that reaches outside the database: what it is, for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outside {
    /// The statement, as the reading that found the construct split it.
    pub statement: Statement,
    /// The construct and what it does (`COPY … TO PROGRAM, which runs a program on
    /// the database server`).
    pub construct: String,
}

/// Functions that read, list or write files of the database server (PostgreSQL's
/// file and large-object functions, MariaDB's `LOAD_FILE`, SQLite's extension loader).
const FILE_FUNCTIONS: [&str; 9] = [
    "LO_IMPORT",
    "LO_EXPORT",
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_LS_DIR",
    "PG_STAT_FILE",
    "PG_FILE_WRITE",
    "LOAD_FILE",
    "LOAD_EXTENSION",
];

/// A token of a statement for [`outside_the_database`]: a word or a quoted name
/// (upper-cased), a string literal, or one character of punctuation.
#[derive(Clone, Debug, PartialEq)]
enum Lex {
    Word(String),
    Str,
    Punct(char),
}

/// `text` as [`tokens`] reads it, in the words [`reaches_outside`] looks for: names
/// upper-cased, quoted or not.
fn lex(engine: Engine, text: &str) -> Vec<Lex> {
    tokens(engine, text, usize::MAX)
        .into_iter()
        .map(|t| match t {
            Token::Word(_, upper) => Lex::Word(upper),
            Token::Quoted(name) => Lex::Word(name.to_uppercase()),
            Token::Str => Lex::Str,
            Token::Other(c) => Lex::Punct(c),
        })
        .collect()
}

/// What one statement's tokens do outside the database, if anything.
fn reaches_outside(t: &[Lex]) -> Option<String> {
    let word = |i: usize| match t.get(i) {
        Some(Lex::Word(w)) => w.as_str(),
        _ => "",
    };
    // A string literal at `i`, after an optional `U&`.
    let string_at = |i: usize| match t.get(i) {
        Some(Lex::Str) => true,
        Some(Lex::Word(w)) if w == "U" => {
            matches!(t.get(i + 1), Some(Lex::Punct('&'))) && matches!(t.get(i + 2), Some(Lex::Str))
        }
        _ => false,
    };
    let first = word(0);
    for (i, tok) in t.iter().enumerate() {
        let Lex::Word(w) = tok else { continue };
        match w.as_str() {
            "PROGRAM" if first == "COPY" => {
                return Some("COPY … PROGRAM, which runs a program on the database server".into());
            }
            "TO" | "FROM" if first == "COPY" && string_at(i + 1) => {
                return Some(format!(
                    "COPY … {w} 'file', which reads or writes a file of the database server (COPY … {} STDIN/STDOUT does not)",
                    w
                ));
            }
            "INTO" if matches!(word(i + 1), "OUTFILE" | "DUMPFILE") && string_at(i + 2) => {
                return Some(format!(
                    "INTO {}, which writes a file of the database server",
                    word(i + 1)
                ));
            }
            "LOAD" if matches!(word(i + 1), "DATA" | "XML") => {
                let infile = (i + 2..t.len()).find(|&j| word(j) == "INFILE").unwrap_or(t.len());
                if !(i + 2..infile).any(|j| word(j) == "LOCAL") {
                    return Some(format!(
                        "LOAD {} INFILE without LOCAL, which reads a file of the database server",
                        word(i + 1)
                    ));
                }
            }
            "ATTACH" if i == 0 => {
                return Some("ATTACH, which opens or creates a database file of the server".into());
            }
            "VACUUM" if i == 0 && (1..t.len()).any(|j| word(j) == "INTO") => {
                return Some("VACUUM INTO, which writes a file of the server".into());
            }
            f if FILE_FUNCTIONS.contains(&f) && matches!(t.get(i + 1), Some(Lex::Punct('('))) => {
                return Some(format!(
                    "{}(), which reaches files or programs of the database server",
                    f.to_lowercase()
                ));
            }
            _ => {}
        }
    }
    None
}

/// The first statement of `sql` that reaches outside the database (runs a program on
/// the database server, or reads or writes its files: `COPY … TO/FROM PROGRAM` or
/// `'file'`, `lo_import`/`lo_export`, `pg_read_file` and friends, `LOAD_FILE(`,
/// `INTO OUTFILE`/`DUMPFILE`, `LOAD DATA` without `LOCAL`, SQLite's `ATTACH`,
/// `VACUUM INTO` and `load_extension`), looking outside quoted text and comments,
/// case-insensitively. The script is read as every engine would read it (quoting rules
/// differ), so that text one engine reads as a string cannot hide code from another.
/// What a statement builds at run time (dynamic SQL, a function body) is not seen:
/// this narrows what an uploaded script can do, a database role without such rights
/// is what prevents it.
pub fn outside_the_database(sql: &str) -> Option<Outside> {
    for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        for s in statements(engine, sql) {
            if let Some(construct) = reaches_outside(&lex(engine, &s.text)) {
                return Some(Outside {
                    statement: s,
                    construct,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_skip_comments_and_strings() {
        let sql = "-- a comment; with a semicolon\nUPDATE t SET a = 'x;y' WHERE b = \"c;d\";\n/* CREATE TABLE no; */ insert into t values (1);;\n  create temporary table x (a int)";
        assert_eq!(
            statement_heads(Engine::Sqlite, sql),
            ["UPDATE T SET", "INSERT INTO T", "CREATE TEMPORARY TABLE"]
        );
    }

    #[test]
    fn breakers_per_engine() {
        let cases = [
            (Engine::Postgres, "UPDATE t SET a = 1", false),
            (Engine::Postgres, "CREATE INDEX i ON t (a)", false),
            (Engine::Postgres, "update t set a = 1; commit", true),
            (Engine::Sqlite, "BEGIN; UPDATE t SET a = 1", true),
            (Engine::Sqlite, "SAVEPOINT x; ROLLBACK TO x", false),
            (Engine::Mysql, "CREATE INDEX i ON t (a)", true),
            (Engine::Mysql, "CREATE TEMPORARY TABLE x (a int)", false),
            (Engine::Mysql, "insert into t select * from u; truncate u", true),
            (Engine::Mysql, "UPDATE t SET note = 'CREATE TABLE x'", false),
            (Engine::Mysql, "ROLLBACK TO SAVEPOINT s", false),
            // Escapes and quoting as each engine reads them.
            (Engine::Postgres, "UPDATE t SET a = 'x\\'; COMMIT; -- '", true),
            (Engine::Sqlite, "UPDATE t SET a = 'x\\'; COMMIT; -- '", true),
            (Engine::Mysql, "UPDATE t SET a = 'x\\'; COMMIT; -- '", false),
            (Engine::Postgres, "UPDATE t SET q = q # 1; COMMIT;", true),
            (Engine::Postgres, "UPDATE t SET a = $$it's$$; COMMIT", true),
            (Engine::Postgres, "UPDATE t SET a = $x$ ; COMMIT; $x$", false),
            (Engine::Mysql, "UPDATE t SET a = 1; /*!40000 COMMIT */", true),
            (Engine::Postgres, "ABORT", true),
            (Engine::Mysql, "SET autocommit = 1", true),
            (Engine::Mysql, "SET SESSION autocommit = 1", true),
            (Engine::Mysql, "SET @@session.autocommit = 1", true),
            (Engine::Mysql, "SET SESSION sql_mode = ''", false),
            // Bodies with their own BEGIN … END are not transactions.
            (
                Engine::Sqlite,
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; END; UPDATE t SET a = 1",
                false,
            ),
            (Engine::Postgres, "DO $$ BEGIN UPDATE t SET a = 1; END $$;", false),
            (
                Engine::Mysql,
                "BEGIN NOT ATOMIC UPDATE t SET a = 1; IF 1 THEN UPDATE t SET a = 2; END IF; END",
                false,
            ),
            (
                Engine::Sqlite,
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; COMMIT",
                true,
            ),
        ];
        for (engine, sql, refused) in cases {
            assert_eq!(transaction_breaker(engine, sql).is_some(), refused, "{engine}: {sql}");
        }
    }

    #[test]
    fn statements_carry_their_line_and_text() {
        let sql =
            "-- header; not a statement\nUPDATE t SET a = 'x;\ny';\n\n  /* c */ DELETE FROM u;\n-- trailing only\n";
        let s = statements(Engine::Postgres, sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].number, s[0].line, s[0].head.as_str()), (1, 2, "UPDATE T SET"));
        assert_eq!(s[0].text, "-- header; not a statement\nUPDATE t SET a = 'x;\ny'");
        assert_eq!((s[1].number, s[1].line, s[1].head.as_str()), (2, 5, "DELETE FROM U"));
        assert_eq!(s[1].text.trim(), "/* c */ DELETE FROM u");
        // A trigger body is one statement, whatever its semicolons.
        let s = statements(
            Engine::Sqlite,
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = 1; END;\nSELECT 1",
        );
        assert_eq!(s.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn effects_name_the_tables_written() {
        let tables = |v: &[&str]| Effect::Tables(v.iter().map(|s| s.to_string()).collect());
        let cases = [
            (
                Engine::Postgres,
                "UPDATE customer SET status = 'x'",
                tables(&["customer"]),
            ),
            (
                Engine::Postgres,
                "update public.\"Customer\" c set a = 1 from u",
                tables(&["public.Customer"]),
            ),
            (
                Engine::Mysql,
                "UPDATE LOW_PRIORITY `db`.`t` AS x SET a = 1",
                tables(&["db.t"]),
            ),
            // A string literal is one token: the words inside it say nothing.
            (
                Engine::Postgres,
                "DELETE FROM t WHERE note = 'x, y FROM z'",
                tables(&["t"]),
            ),
            (Engine::Postgres, "UPDATE t SET body = $b$ JOIN u $b$", tables(&["t"])),
            (
                Engine::Mysql,
                "UPDATE a JOIN b ON a.id = b.id SET a.x = 1",
                Effect::Unknown,
            ),
            (Engine::Mysql, "UPDATE a, b SET a.x = 1", Effect::Unknown),
            (
                Engine::Sqlite,
                "INSERT OR REPLACE INTO [t] (a) VALUES (1)",
                tables(&["t"]),
            ),
            (Engine::Mysql, "INSERT IGNORE t VALUES (1)", tables(&["t"])),
            (Engine::Mysql, "REPLACE INTO t SELECT * FROM u", tables(&["t"])),
            (
                Engine::Postgres,
                "DELETE FROM ONLY t USING u WHERE t.a = u.a",
                tables(&["t"]),
            ),
            (Engine::Mysql, "DELETE t1 FROM t1 JOIN t2", Effect::Unknown),
            (Engine::Mysql, "DELETE FROM t1, t2 USING t1 JOIN t2", Effect::Unknown),
            (Engine::Postgres, "TRUNCATE TABLE a, ONLY b", tables(&["a", "b"])),
            (
                Engine::Postgres,
                "MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE",
                tables(&["t"]),
            ),
            (
                Engine::Postgres,
                "WITH x AS (DELETE FROM t RETURNING *) SELECT 1",
                Effect::Unknown,
            ),
            (Engine::Postgres, "SELECT 1", Effect::Nothing),
            (Engine::Mysql, "/*!40101 SET NAMES utf8mb4 */", Effect::Nothing),
            (Engine::Postgres, "CREATE TEMPORARY TABLE x (a int)", Effect::Nothing),
            (Engine::Postgres, "CALL p()", Effect::Unknown),
            (
                Engine::Postgres,
                "DO $$ BEGIN UPDATE t SET a = 1; END $$",
                Effect::Unknown,
            ),
        ];
        for (engine, sql, want) in cases {
            assert_eq!(effect(engine, sql), want, "{engine}: {sql}");
        }
    }

    #[test]
    fn statements_that_reach_outside_the_database_are_found() {
        let found = |sql: &str| outside_the_database(sql).map(|o| (o.statement.line, o.construct));
        let cases = [
            "COPY (SELECT 1) TO PROGRAM 'id > /tmp/x'",
            "copy t from program 'cat /etc/passwd'",
            "COPY t TO '/tmp/out.csv'",
            "COPY t FROM E'/etc/passwd'",
            "COPY t FROM U&'/etc/passwd'",
            "SELECT lo_import('/etc/passwd')",
            "SELECT lo_export(1, '/tmp/x')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_catalog.pg_read_binary_file ('/etc/passwd')",
            "SELECT * FROM \"pg_ls_dir\"('/')",
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT `load_file`('/etc/passwd')",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "select 1 into dumpfile '/tmp/x'",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "LOAD DATA LOW_PRIORITY INFILE '/etc/passwd' INTO TABLE t",
            "load xml infile '/x' into table t",
            "/*!50000 SELECT LOAD_FILE('/etc/passwd') */",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "VACUUM INTO '/tmp/copy.db'",
            "SELECT load_extension('/tmp/x.so')",
        ];
        for sql in cases {
            let script = format!("-- a comment\nSELECT 1;\n\n{sql};\nSELECT 2;\n");
            let (line, construct) = found(&script).unwrap_or_else(|| panic!("not found: {sql}"));
            assert_eq!(line, 4, "{sql}: {construct}");
        }
        let (_, construct) = found("COPY (SELECT 1) TO PROGRAM 'id'").unwrap();
        assert!(construct.starts_with("COPY … PROGRAM"), "{construct}");
        let (_, construct) = found("SELECT 1 INTO OUTFILE '/tmp/x'").unwrap();
        assert!(construct.starts_with("INTO OUTFILE"), "{construct}");
        let harmless = [
            "COPY t FROM STDIN",
            "COPY (SELECT 'x' FROM t) TO STDOUT WITH (FORMAT csv, DELIMITER ',')",
            "LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t",
            "INSERT INTO t (note) VALUES ('COPY t TO PROGRAM ''id''; SELECT pg_read_file(1)')",
            "-- SELECT LOAD_FILE('/etc/passwd')\nSELECT 1",
            "/* COPY t TO '/tmp/x' */ SELECT 1",
            "INSERT INTO outfile (id) VALUES (1)",
            "SELECT 1 AS program",
            "UPDATE t SET loaded_file = 1",
            "ALTER TABLE p ATTACH PARTITION c FOR VALUES IN (1)",
        ];
        for sql in harmless {
            assert_eq!(found(sql), None, "{sql}");
        }
    }
}
