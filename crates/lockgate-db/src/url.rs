//! Database URLs: which engine, where, and how to print them without a password.

use crate::error::DbError;
use std::fmt;
use std::path::PathBuf;

/// The three engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// SQLite, embedded (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MariaDB",
        })
    }
}

/// A parsed database URL. `sqlite://path` or a path (containing `/` or ending in
/// `.db`, `.sqlite`, `.sqlite3`), `postgres://…` (`postgresql://`), `mysql://…` or
/// `mariadb://…`.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The engine named by the scheme.
    pub engine: Engine,
    /// The URL as given (mariadb:// rewritten to mysql:// for the driver).
    raw: String,
}

impl DbUrl {
    /// Parses a URL. An unknown scheme, or a bare word that is no path, is
    /// [`DbError::BadUrl`] (exit 2).
    pub fn parse(input: &str) -> Result<DbUrl, DbError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(DbError::BadUrl(
                "the database URL is empty: give --db URL or set DATABASE_URL".into(),
            ));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            // A plain path is an SQLite file; a bare word is not (`--db prdo`, a typo of a
            // connection name, must not become a new file named prdo).
            if !looks_like_path(input) {
                return Err(DbError::BadUrl(format!(
                    "{input:?} is neither a database URL nor a path to an SQLite file: \
                     write sqlite://{input} or ./{input} for a file, postgres://… or mysql://… for a server"
                )));
            }
            return Ok(DbUrl {
                engine: Engine::Sqlite,
                raw: format!("sqlite://{input}"),
            });
        };
        let engine = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" | "file" => Engine::Sqlite,
            "postgres" | "postgresql" => Engine::Postgres,
            "mysql" | "mariadb" => Engine::Mysql,
            other => {
                return Err(DbError::BadUrl(format!(
                    "unknown database URL scheme {other:?} in {}: use sqlite://, postgres:// or mysql:// (mariadb://)",
                    redact(input)
                )))
            }
        };
        let raw = match engine {
            Engine::Mysql => format!("mysql://{rest}"),
            Engine::Postgres => format!("postgres://{rest}"),
            Engine::Sqlite => format!("sqlite://{rest}"),
        };
        if engine == Engine::Sqlite && rest.is_empty() {
            return Err(DbError::BadUrl(
                "sqlite:// needs a file path, e.g. sqlite://data.db".into(),
            ));
        }
        Ok(DbUrl { engine, raw })
    }

    /// The URL for the driver (with its password).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The SQLite file path.
    pub fn sqlite_path(&self) -> PathBuf {
        let rest = self.raw.trim_start_matches("sqlite://");
        PathBuf::from(rest.split('?').next().unwrap_or(rest))
    }

    /// The database name in a server URL's path, if any.
    pub fn database(&self) -> Option<String> {
        let after_scheme = self.raw.split_once("://")?.1;
        let path = authority(after_scheme).2.strip_prefix('/')?;
        let name = path.split('?').next()?;
        (!name.is_empty()).then(|| name.to_string())
    }

    /// The same URL pointing at another database on the same server.
    pub fn with_database(&self, database: &str) -> DbUrl {
        let (scheme, rest) = self.raw.split_once("://").expect("parsed URLs have a scheme");
        let (userinfo, host, tail) = authority(rest);
        let authority = match userinfo {
            Some(u) => format!("{u}@{host}"),
            None => host.to_string(),
        };
        let query = tail.split_once('?').map(|(_, q)| q);
        let raw = match query {
            Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
            None => format!("{scheme}://{authority}/{database}"),
        };
        DbUrl {
            engine: self.engine,
            raw,
        }
    }

    /// The URL with its password replaced by `***`, for messages.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The URL without its password, and the password (percent-decoded) from the user
    /// info or a `password=` query parameter: a process script gets the first in its
    /// environment and the second only in the engine's own variable (`PGPASSWORD`,
    /// `MYSQL_PWD`).
    pub fn split_password(&self) -> (String, Option<String>) {
        split_password(&self.raw)
    }
}

/// A URL after its `scheme://` cut into its user info (when it has one), its host (and
/// port), and the rest (path and query). A password may hold `/`, `@`, `:` and `?`
/// unencoded (people paste them so), so the user info ends at the last `@` before the
/// first `?`, or, when no `@` comes before a `?`, at the last `@` of all; the host ends
/// at the first `/` or `?` after it. Cutting at the first `/` instead would leave the
/// end of a password with a `/` in the "host", where no redaction looks.
fn authority(rest: &str) -> (Option<&str>, &str, &str) {
    let at = rest
        .find('?')
        .and_then(|q| rest[..q].rfind('@'))
        .or_else(|| rest.rfind('@'));
    let (userinfo, after) = match at {
        Some(a) => (Some(&rest[..a]), &rest[a + 1..]),
        None => (None, rest),
    };
    let host_end = after.find(['/', '?']).unwrap_or(after.len());
    let (host, tail) = after.split_at(host_end);
    (userinfo, host, tail)
}

fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let mut password = None;
    let (userinfo, host, tail) = authority(rest);
    let authority = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, pw)) => {
                password = Some(percent_decode(pw));
                format!("{user}@{host}")
            }
            None => format!("{userinfo}@{host}"),
        },
        None => host.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| match kv.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("password") => {
                        password = Some(percent_decode(v));
                        false
                    }
                    _ => true,
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    (format!("{scheme}://{authority}{tail}"), password)
}

/// `%XX` escapes decoded (as the drivers read a URL's password); anything that is not a
/// valid escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a `--db` value without a scheme names an SQLite file: it contains a path
/// separator or ends in `.db`, `.sqlite` or `.sqlite3`. Anything else is a bare word
/// (a connection name, or a typo of one).
pub fn looks_like_path(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    input.contains('/')
        || input.contains('\\')
        || [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| lower.len() > ext.len() && lower.ends_with(ext))
}

/// Replaces the password of `scheme://user:password@host` (and `password=` query
/// parameters) so that no message ever prints it.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (userinfo, host, tail) = authority(rest);
    let authority = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => host.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let cases = [
            ("data.db", "sqlite://data.db"),
            ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
            ("postgres://u:secret@h:5432/db", "postgres://u:***@h:5432/db"),
            (
                "postgresql://u@h/db?sslmode=disable&password=x",
                "postgres://u@h/db?sslmode=disable&password=***",
            ),
            (
                "mariadb://root:pw@127.0.0.1:3306/test",
                "mysql://root:***@127.0.0.1:3306/test",
            ),
        ];
        for (input, expect) in cases {
            assert_eq!(DbUrl::parse(input).unwrap().redacted(), expect);
        }
        assert!(matches!(DbUrl::parse("oracle://x"), Err(DbError::BadUrl(_))));
        // Paths are files; a bare word is not (a typo of a connection name).
        for path in [
            "./prdo",
            "dir/x",
            "x.db",
            "X.SQLITE",
            "a.sqlite3",
            "/abs/path",
            "c:\\data\\x",
        ] {
            assert_eq!(DbUrl::parse(path).unwrap().engine, Engine::Sqlite, "{path}");
        }
        for word in ["prdo", "prod.backup", ".db", "sqlite"] {
            let e = DbUrl::parse(word).unwrap_err().to_string();
            assert!(
                e.contains("neither a database URL nor a path") && e.contains("./"),
                "{word}: {e}"
            );
        }
        let u = DbUrl::parse("postgres://u:p@h:1/db?x=1").unwrap();
        assert_eq!(u.database().as_deref(), Some("db"));
        assert_eq!(u.with_database("other").as_str(), "postgres://u:p@h:1/other?x=1");
    }

    #[test]
    fn the_password_is_split_off_and_decoded() {
        let cases = [
            (
                "postgres://u:p%40ss%3A1@h:5432/db",
                "postgres://u@h:5432/db",
                Some("p@ss:1"),
            ),
            ("mysql://root@h/db", "mysql://root@h/db", None),
            (
                "postgres://u@h/db?sslmode=disable&password=x%25y",
                "postgres://u@h/db?sslmode=disable",
                Some("x%y"),
            ),
            ("postgres://u@h/db?password=x", "postgres://u@h/db", Some("x")),
            ("postgres://u:bad%zz@h/db", "postgres://u@h/db", Some("bad%zz")),
            ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db", None),
        ];
        for (input, url, password) in cases {
            let (u, p) = DbUrl::parse(input).unwrap().split_password();
            assert_eq!((u.as_str(), p.as_deref()), (url, password), "{input}");
        }
    }

    #[test]
    fn a_password_with_slash_at_colon_or_escapes_never_shows() {
        // (URL, without its password, the password, redacted)
        let cases = [
            (
                "postgres://postgres:pa/ss@127.0.0.1:5432/db",
                "postgres://postgres@127.0.0.1:5432/db",
                "pa/ss",
                "postgres://postgres:***@127.0.0.1:5432/db",
            ),
            (
                "postgres://u:a/b@c:d/e@h:1/db?sslmode=disable",
                "postgres://u@h:1/db?sslmode=disable",
                "a/b@c:d/e",
                "postgres://u:***@h:1/db?sslmode=disable",
            ),
            (
                "mysql://root:p@ss:w/rd@127.0.0.1:3306/test",
                "mysql://root@127.0.0.1:3306/test",
                "p@ss:w/rd",
                "mysql://root:***@127.0.0.1:3306/test",
            ),
            (
                "postgres://u:pa%2Fss@h/db",
                "postgres://u@h/db",
                "pa/ss",
                "postgres://u:***@h/db",
            ),
            (
                "postgres://u:x?y/z@h/db?application_name=a",
                "postgres://u@h/db?application_name=a",
                "x?y/z",
                "postgres://u:***@h/db?application_name=a",
            ),
            (
                "postgres://u:pw@h/db?options=a@b",
                "postgres://u@h/db?options=a@b",
                "pw",
                "postgres://u:***@h/db?options=a@b",
            ),
            (
                "postgres://u:pw@h?password=q/r",
                "postgres://u@h",
                "q/r",
                "postgres://u:***@h?password=***",
            ),
        ];
        for (input, shown, password, redacted) in cases {
            let url = DbUrl::parse(input).unwrap();
            let (u, p) = url.split_password();
            assert_eq!((u.as_str(), p.as_deref()), (shown, Some(password)), "{input}");
            assert_eq!(url.redacted(), redacted, "{input}");
            assert_eq!(redact(input), redacted, "{input}");
            assert!(!u.contains(password) && !redacted.contains(password), "{input}");
        }
        let url = DbUrl::parse("postgres://postgres:pa/ss@127.0.0.1:5432/db?x=1").unwrap();
        assert_eq!(url.database().as_deref(), Some("db"));
        assert_eq!(
            url.with_database("other").as_str(),
            "postgres://postgres:pa/ss@127.0.0.1:5432/other?x=1"
        );
    }
}
