//! Reading SQL that users wrote (migration `.sql` scripts) just enough to refuse
//! what would break the transaction it runs in: statements that end it (COMMIT,
//! BEGIN, ROLLBACK…) on every engine, and on MariaDB the statements that commit
//! implicitly (DDL and friends), which would leave a version half applied.

use crate::url::Engine;

/// The first words of each statement of `sql` (upper-cased), as `engine` reads it:
/// comments (`--`, `/* */`, and `#` on MariaDB, whose `/*! … */` runs as code) and
/// quoted text (`'…'`, `"…"`, `` `…` ``, PostgreSQL's `$tag$…$tag$`, backslash escapes
/// on MariaDB only) are skipped; statements end at `;`, except inside the body of a
/// trigger, routine or `BEGIN NOT ATOMIC` block (between its BEGIN and END).
pub fn statement_heads(engine: Engine, sql: &str) -> Vec<String> {
    let mysql = engine == Engine::Mysql;
    let b: Vec<char> = sql.chars().collect();
    let n = b.len();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    let mut heads = Vec::new();
    let mut words: Vec<String> = Vec::new();
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
    let flush = |words: &mut Vec<String>, heads: &mut Vec<String>| {
        if !words.is_empty() {
            heads.push(words.iter().take(3).cloned().collect::<Vec<_>>().join(" "));
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
                flush(&mut words, &mut heads);
                compound = false;
                depth = 0;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
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
    flush(&mut words, &mut heads);
    heads
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
}
