//! MariaDB or MySQL: which server answers a `mysql://` connection (from its
//! `VERSION()`), and the SQL forms that differ between the two. Where a portable form
//! exists Lockgate uses it on both (`LAST_INSERT_ID()` rather than `INSERT …
//! RETURNING` for one new id, a lock name cut to 64 characters); the choices below
//! are the ones where MariaDB's own form is better and MySQL has none, or where the
//! two spell the same thing differently.
//!
//! Tested here on MariaDB 10.11, with the MySQL forms forced by the URL parameter
//! `lockgate_portable=true` ([`PORTABLE_PARAM`]); MySQL 8.0.16+ is expected to work.

/// The URL query parameter that makes a MariaDB connection use the MySQL forms
/// wherever MariaDB also runs them (the tests' way to exercise them without a MySQL
/// server). It is taken out of the URL before the driver sees it.
pub const PORTABLE_PARAM: &str = "lockgate_portable";

/// The two servers of the `mysql://` scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (its version string says `MariaDB`).
    MariaDb,
    /// MySQL, or a server that presents itself as MySQL (Percona, Aurora…).
    MySql,
}

/// The server behind a connection and the forms it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// Major, minor, patch as the version string gives them (0 where missing).
    pub version: (u32, u32, u32),
    /// Use the MySQL forms wherever MariaDB runs them too ([`PORTABLE_PARAM`]).
    pub portable: bool,
}

impl Server {
    /// Reads `SELECT VERSION()`: `10.11.6-MariaDB-0+deb12u1`, `5.5.5-10.4.32-MariaDB`
    /// (the prefix old clients needed), `8.0.36`, `8.0.36-0ubuntu0.22.04.1`,
    /// `8.4.0-percona`…
    pub fn from_version(text: &str) -> Server {
        let mariadb = text.to_ascii_lowercase().contains("mariadb");
        // MariaDB before 11 may prefix its version with 5.5.5- for old clients.
        let text = if mariadb {
            text.strip_prefix("5.5.5-").unwrap_or(text)
        } else {
            text
        };
        let mut parts = text
            .split(|c: char| !c.is_ascii_digit())
            .take_while(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        Server {
            flavor: if mariadb { Flavor::MariaDb } else { Flavor::MySql },
            version,
            portable: false,
        }
    }

    fn mariadb_since(&self, version: (u32, u32, u32)) -> bool {
        self.flavor == Flavor::MariaDb && self.version >= version
    }

    /// Whether `INSERT … SELECT … RETURNING` runs (MariaDB 10.5+; MySQL has no
    /// RETURNING): without it, inserted rows are read back after the insert.
    pub fn insert_returning(&self) -> bool {
        !self.portable && self.mariadb_since((10, 5, 0))
    }

    /// The statement that makes the server end this session once a transaction has
    /// been idle for `seconds`: MariaDB 10.3+ has `idle_transaction_timeout`; MySQL
    /// only `wait_timeout`, which also counts idleness outside a transaction (the
    /// same for a connection that lives for one transaction).
    pub fn idle_timeout_sql(&self, seconds: u64) -> String {
        let seconds = seconds.max(1);
        if !self.portable && self.mariadb_since((10, 3, 0)) {
            format!("SET SESSION idle_transaction_timeout = {seconds}")
        } else {
            format!("SET SESSION wait_timeout = {seconds}")
        }
    }

    /// The statement that bounds each statement of this session to `seconds`:
    /// MariaDB's `max_statement_time`; MySQL's `max_execution_time` (milliseconds,
    /// read-only statements only: MySQL has no bound for writes).
    pub fn statement_limit_sql(&self, seconds: f64) -> String {
        match self.flavor {
            Flavor::MariaDb => format!("SET SESSION max_statement_time = {seconds:.3}"),
            Flavor::MySql => format!(
                "SET SESSION max_execution_time = {}",
                (seconds * 1000.0).ceil().max(1.0) as u64
            ),
        }
    }

    /// The utf8mb4 collation that compares bytes without padding (`'a'` and `'a '`
    /// differ): MariaDB's `utf8mb4_nopad_bin`; MySQL 8's `utf8mb4_0900_bin`. MariaDB
    /// has no 0900 collation, so this follows the server, not [`Server::portable`].
    pub fn nopad_bin_collation(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb => "utf8mb4_nopad_bin",
            Flavor::MySql => "utf8mb4_0900_bin",
        }
    }

    /// Whether a `uuid` column type exists (MariaDB 10.7+); else Lockgate creates
    /// UUIDs as `char(36)`.
    pub fn uuid_type(&self) -> bool {
        !self.portable && self.mariadb_since((10, 7, 0))
    }

    /// The CHECK constraints of a table: `information_schema.CHECK_CONSTRAINTS` joined
    /// to `TABLE_CONSTRAINTS` (MySQL's CHECK_CONSTRAINTS has no table column). MariaDB
    /// names CHECK constraints per table (a JSON column's is the column's name), so
    /// there the join also matches the table. Parameters: the table name twice
    /// (plain and BINARY equality); the schema is `schema_sql`.
    pub fn check_constraints_sql(&self, schema_sql: &str) -> String {
        let same_table = match self.flavor {
            Flavor::MariaDb => " AND cc.TABLE_NAME = tc.TABLE_NAME",
            Flavor::MySql => "",
        };
        format!(
            "SELECT tc.CONSTRAINT_NAME, cc.CHECK_CLAUSE FROM information_schema.TABLE_CONSTRAINTS tc \
             JOIN information_schema.CHECK_CONSTRAINTS cc \
               ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME{same_table} \
             WHERE tc.CONSTRAINT_TYPE = 'CHECK' AND tc.TABLE_SCHEMA = {schema_sql} \
               AND tc.TABLE_NAME = ? AND BINARY tc.TABLE_NAME = ? \
             ORDER BY tc.CONSTRAINT_NAME"
        )
    }
}

impl Server {
    /// A column's default as SQL text, from `information_schema.COLUMNS`: MariaDB
    /// (10.2.7+) gives SQL already (`'x''y'`, `0`, `current_timestamp(6)`); MySQL gives
    /// a literal's bare value (`x'y`) and marks expressions `DEFAULT_GENERATED` in
    /// `EXTRA` (`extra`, lower-cased). A non-numeric literal is quoted here, so that
    /// code reading defaults (dump's models, a retype that keeps the default) sees
    /// one form.
    pub fn column_default_sql(&self, default: Option<String>, extra: &str, numeric: bool) -> Option<String> {
        match (self.flavor, default) {
            (Flavor::MySql, Some(d)) if !numeric && !extra.contains("default_generated") => {
                Some(format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''")))
            }
            (_, d) => d,
        }
    }
}

/// Takes [`PORTABLE_PARAM`] out of a `mysql://` URL: the URL for the driver, and
/// whether the parameter asked for the portable forms (`true`, `1`, `yes`).
pub fn take_portable_param(url: &str) -> (String, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), false);
    };
    let mut portable = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if k == PORTABLE_PARAM {
                portable = matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
                false
            } else {
                true
            }
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, portable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_string_tells_mariadb_from_mysql() {
        let cases = [
            ("10.11.6-MariaDB-0+deb12u1", Flavor::MariaDb, (10, 11, 6)),
            ("5.5.5-10.4.32-MariaDB", Flavor::MariaDb, (10, 4, 32)),
            ("11.4.2-MariaDB-log", Flavor::MariaDb, (11, 4, 2)),
            ("10.2.44-MariaDB", Flavor::MariaDb, (10, 2, 44)),
            ("8.0.36", Flavor::MySql, (8, 0, 36)),
            ("8.0.36-0ubuntu0.22.04.1", Flavor::MySql, (8, 0, 36)),
            ("8.4.0-percona", Flavor::MySql, (8, 4, 0)),
            ("5.7.44-log", Flavor::MySql, (5, 7, 44)),
            ("9", Flavor::MySql, (9, 0, 0)),
        ];
        for (text, flavor, version) in cases {
            let s = Server::from_version(text);
            assert_eq!((s.flavor, s.version), (flavor, version), "{text}");
            assert!(!s.portable);
        }
    }

    #[test]
    fn each_server_gets_its_forms() {
        let mariadb = Server::from_version("10.11.19-MariaDB-0+deb12u1");
        let old_mariadb = Server::from_version("10.4.32-MariaDB");
        let mysql = Server::from_version("8.0.36");
        let forced = Server {
            portable: true,
            ..mariadb
        };

        assert!(mariadb.insert_returning());
        assert!(!old_mariadb.insert_returning() && !mysql.insert_returning() && !forced.insert_returning());

        assert_eq!(
            mariadb.idle_timeout_sql(60),
            "SET SESSION idle_transaction_timeout = 60"
        );
        assert_eq!(
            old_mariadb.idle_timeout_sql(0),
            "SET SESSION idle_transaction_timeout = 1"
        );
        assert_eq!(mysql.idle_timeout_sql(60), "SET SESSION wait_timeout = 60");
        assert_eq!(forced.idle_timeout_sql(60), "SET SESSION wait_timeout = 60");

        assert_eq!(mariadb.nopad_bin_collation(), "utf8mb4_nopad_bin");
        assert_eq!(forced.nopad_bin_collation(), "utf8mb4_nopad_bin");
        assert_eq!(mysql.nopad_bin_collation(), "utf8mb4_0900_bin");

        assert!(mariadb.uuid_type());
        assert!(!Server::from_version("10.6.1-MariaDB").uuid_type() && !mysql.uuid_type() && !forced.uuid_type());

        let checks = |s: Server| s.check_constraints_sql("DATABASE()");
        assert!(checks(mariadb).contains("AND cc.TABLE_NAME = tc.TABLE_NAME"));
        assert!(checks(forced).contains("AND cc.TABLE_NAME = tc.TABLE_NAME"));
        // MySQL's CHECK_CONSTRAINTS has no TABLE_NAME: the query must not name it.
        assert!(!checks(mysql).contains("cc.TABLE_NAME"), "{}", checks(mysql));
        assert!(checks(mysql).contains("tc.TABLE_SCHEMA = DATABASE()"));
    }

    #[test]
    fn mysql_defaults_become_sql_text_as_mariadb_gives_them() {
        let mariadb = Server::from_version("10.11.19-MariaDB");
        let mysql = Server::from_version("8.0.36");
        let d = |s: &str| Some(s.to_string());
        // MariaDB's are SQL already.
        assert_eq!(mariadb.column_default_sql(d("'x''y'"), "", false), d("'x''y'"));
        // MySQL's literals are bare values; expressions are marked in EXTRA.
        assert_eq!(mysql.column_default_sql(d("x'y"), "", false), d("'x''y'"));
        assert_eq!(mysql.column_default_sql(d("a\\b"), "", false), d("'a\\\\b'"));
        assert_eq!(mysql.column_default_sql(d("0"), "", true), d("0"));
        assert_eq!(mysql.column_default_sql(d("12"), "", false), d("'12'"));
        assert_eq!(
            mysql.column_default_sql(d("CURRENT_TIMESTAMP(6)"), "default_generated", false),
            d("CURRENT_TIMESTAMP(6)")
        );
        assert_eq!(mysql.column_default_sql(None, "", false), None);
    }

    #[test]
    fn the_portable_parameter_is_taken_out_of_the_url() {
        let cases = [
            ("mysql://r@h/db", "mysql://r@h/db", false),
            ("mysql://r@h/db?lockgate_portable=true", "mysql://r@h/db", true),
            (
                "mysql://r@h/db?lockgate_portable=1&prefer_socket=false",
                "mysql://r@h/db?prefer_socket=false",
                true,
            ),
            (
                "mysql://r@h/db?prefer_socket=false&lockgate_portable=no",
                "mysql://r@h/db?prefer_socket=false",
                false,
            ),
            (
                "mysql://r@h/db?prefer_socket=false",
                "mysql://r@h/db?prefer_socket=false",
                false,
            ),
        ];
        for (input, url, portable) in cases {
            assert_eq!(take_portable_param(input), (url.to_string(), portable), "{input}");
        }
    }
}
