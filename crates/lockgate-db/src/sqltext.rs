//! Reading SQL that users wrote (migration `.sql` scripts) just enough to refuse
//! what would break the transaction it runs in: statements that end it (COMMIT,
//! BEGIN, ROLLBACK…) on every engine, and on MariaDB the statements that commit
//! implicitly (DDL and friends), which would leave a version half applied.

use crate::url::Engine;

/// The first words of each statement of `sql` (upper-cased), skipping comments and
/// string literals; statements are split at `;` outside quotes and comments.
pub fn statement_heads(sql: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut words = 0;
    let flush = |current: &mut String, words: &mut usize, heads: &mut Vec<String>| {
        let t = current.trim().to_string();
        if !t.is_empty() {
            heads.push(t);
        }
        current.clear();
        *words = 0;
    };
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                current.push(' ');
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                current.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                current.push(' ');
            }
            '\'' | '"' | '`' => {
                // A quoted string or name: skip it ('' and "" escape themselves).
                loop {
                    match chars.next() {
                        None => break,
                        Some('\\') if c == '\'' => {
                            chars.next();
                        }
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                }
                current.push_str(" _ ");
                words += 1;
            }
            ';' => flush(&mut current, &mut words, &mut heads),
            c => {
                if words < 4 {
                    if c.is_whitespace() && !current.ends_with(' ') && !current.is_empty() {
                        words += 1;
                    }
                    current.push(c.to_ascii_uppercase());
                }
            }
        }
    }
    flush(&mut current, &mut words, &mut heads);
    heads
        .into_iter()
        .map(|h| h.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Why a script cannot run inside a version's transaction on `engine`, naming the
/// statement (1-based) and what to do; `None` when it can.
pub fn transaction_breaker(engine: Engine, sql: &str) -> Option<String> {
    for (i, head) in statement_heads(sql).iter().enumerate() {
        let first = head.split(' ').next().unwrap_or_default();
        let second = head.split(' ').nth(1).unwrap_or_default();
        let ends = matches!(first, "COMMIT" | "BEGIN" | "END" | "START" | "ROLLBACK")
            && !(first == "ROLLBACK" && second == "TO")
            && !(first == "BEGIN" && engine == Engine::Postgres && second == "ATOMIC");
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
            statement_heads(sql),
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
        ];
        for (engine, sql, refused) in cases {
            assert_eq!(transaction_breaker(engine, sql).is_some(), refused, "{engine}: {sql}");
        }
    }
}
