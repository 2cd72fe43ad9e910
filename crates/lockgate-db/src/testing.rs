//! Test databases (feature `testing`): a fresh, uniquely named database per test
//! on each engine, dropped when the test ends. Used by every crate's tests.

use crate::{Conn, DbUrl, Engine};
use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL server tests use.
pub fn pg_admin_url() -> String {
    std::env::var("LOCKGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The MariaDB server tests use.
pub fn mysql_admin_url() -> String {
    std::env::var("LOCKGATE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its URL.
    pub url: DbUrl,
    admin: Option<DbUrl>,
    name: String,
    _dir: Option<tempfile::TempDir>,
    /// Whether [`TestDb::password_url`] made a user of the database's name.
    user: std::sync::atomic::AtomicBool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("lgtest_{}_{}_{}", std::process::id(), n, nanos % 100_000)
}

impl TestDb {
    /// Creates a fresh database on `engine`. An unreachable server fails the test:
    /// it is never skipped (CI runs with the servers up; so should you).
    pub async fn new(engine: Engine) -> TestDb {
        let name = unique_name();
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(format!("{name}.db"));
                TestDb {
                    url: DbUrl::parse(&format!("sqlite://{}", path.display())).unwrap(),
                    admin: None,
                    name,
                    _dir: Some(dir),
                    user: Default::default(),
                }
            }
            Engine::Postgres | Engine::Mysql => {
                let admin = DbUrl::parse(&if engine == Engine::Postgres {
                    pg_admin_url()
                } else {
                    mysql_admin_url()
                })
                .unwrap();
                let mut conn = Conn::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("{engine} is needed for this test and is unreachable ({e}); start it (see README.md)")
                });
                conn.batch(&format!("CREATE DATABASE {name}")).await.unwrap();
                TestDb {
                    url: admin.with_database(&name),
                    admin: Some(admin),
                    name,
                    _dir: None,
                    user: Default::default(),
                }
            }
        }
    }

    /// A connection to it.
    pub async fn conn(&self) -> Conn {
        Conn::connect(&self.url).await.unwrap()
    }

    /// A URL of this database with a password in it: a user of the database's name
    /// whose password is returned second, owning the database (PostgreSQL) or granted
    /// everything in it (MariaDB), dropped with it. SQLite has no users: its URL and
    /// no password.
    pub async fn password_url(&self) -> (DbUrl, Option<String>) {
        let Some(admin) = &self.admin else {
            return (self.url.clone(), None);
        };
        let password = format!("pw-{}-Secret", self.name);
        let mut conn = Conn::connect(admin).await.unwrap();
        let sql = match admin.engine {
            Engine::Postgres => format!(
                "CREATE ROLE {n} LOGIN PASSWORD '{password}'; ALTER DATABASE {n} OWNER TO {n}",
                n = self.name
            ),
            _ => format!(
                "CREATE USER '{n}'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON {n}.* TO '{n}'@'%'",
                n = self.name
            ),
        };
        for statement in sql.split("; ") {
            conn.batch(statement).await.unwrap();
        }
        self.user.store(true, Ordering::SeqCst);
        // scheme://admin@host… becomes scheme://name:password@host…
        let (scheme, rest) = self.url.as_str().split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let url = DbUrl::parse(&format!("{scheme}://{}:{password}@{host}", self.name)).unwrap();
        (url, Some(password))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.admin.clone() else { return };
        let name = self.name.clone();
        let user = self.user.load(Ordering::SeqCst);
        // Drop runs outside async code: use a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = Conn::connect(&admin).await {
                    let sql = match admin.engine {
                        Engine::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        _ => format!("DROP DATABASE IF EXISTS {name}"),
                    };
                    let _ = c.batch(&sql).await;
                    if user {
                        let sql = match admin.engine {
                            Engine::Postgres => format!("DROP ROLE IF EXISTS {name}"),
                            _ => format!("DROP USER IF EXISTS '{name}'@'%'"),
                        };
                        let _ = c.batch(&sql).await;
                    }
                }
            });
        })
        .join();
    }
}
