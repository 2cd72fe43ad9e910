//! Subset closures (`lockgate_db::subset`) on all three engines, over one schema: a
//! shop (customers -> countries, orders -> customers, order_items -> orders and
//! products, products -> warehouses by a two-column key), a cycle (teams.captain_id ->
//! players.id, players.team_id -> teams.id), a self-reference (employees.manager_id ->
//! employees.id), an unrelated table, and a table without a key that references
//! orders. Each case asserts the exact key set of every table.

use crate::support::TestDb;
use lockgate_core::{Table, TableName, Value};
use lockgate_db::subset::{check_condition, closure, Subset, SubsetRoot};
use lockgate_db::{Conn, DbError, Engine};

on_every_engine!(
    customers_take_what_they_need_and_what_belongs_to_them,
    a_cycle_ends_and_parents_do_not_pull_siblings,
    a_self_reference_goes_down_the_tree_and_up_the_chain,
    roots_add_up_and_an_empty_root_still_marks_its_tables,
    bad_conditions_are_refused_naming_table_and_condition,
    a_connected_table_without_a_key_is_refused,
    large_key_sets_are_looked_up_in_batches,
);

/// The schema, in creation order. SQLite cannot add a foreign key to an existing
/// table, but accepts one to a table not created yet; the other engines add the
/// cycle's second key afterwards.
fn schema(engine: Engine) -> Vec<String> {
    let captain = if engine == Engine::Sqlite {
        ", FOREIGN KEY (captain_id) REFERENCES players(id)"
    } else {
        ""
    };
    let mut out: Vec<String> = vec![
        "CREATE TABLE countries (id INTEGER PRIMARY KEY, code VARCHAR(8) NOT NULL)".into(),
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, country_id INTEGER, \
         FOREIGN KEY (country_id) REFERENCES countries(id))"
            .into(),
        "CREATE TABLE warehouses (region VARCHAR(8) NOT NULL, code INTEGER NOT NULL, PRIMARY KEY (region, code))"
            .into(),
        "CREATE TABLE products (id INTEGER PRIMARY KEY, wh_region VARCHAR(8), wh_code INTEGER, \
         FOREIGN KEY (wh_region, wh_code) REFERENCES warehouses(region, code))"
            .into(),
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
         FOREIGN KEY (customer_id) REFERENCES customers(id))"
            .into(),
        "CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER, \
         FOREIGN KEY (order_id) REFERENCES orders(id), FOREIGN KEY (product_id) REFERENCES products(id))"
            .into(),
        "CREATE TABLE audit (order_id INTEGER, note VARCHAR(40), FOREIGN KEY (order_id) REFERENCES orders(id))".into(),
        format!("CREATE TABLE teams (id INTEGER PRIMARY KEY, captain_id INTEGER{captain})"),
        "CREATE TABLE players (id INTEGER PRIMARY KEY, team_id INTEGER, FOREIGN KEY (team_id) REFERENCES teams(id))"
            .into(),
        "CREATE TABLE employees (id INTEGER PRIMARY KEY, manager_id INTEGER, \
         FOREIGN KEY (manager_id) REFERENCES employees(id))"
            .into(),
        "CREATE TABLE settings (name VARCHAR(40) PRIMARY KEY, value VARCHAR(40))".into(),
    ];
    if engine != Engine::Sqlite {
        out.push(
            "ALTER TABLE teams ADD CONSTRAINT teams_captain FOREIGN KEY (captain_id) REFERENCES players(id)".into(),
        );
    }
    out
}

/// The data, in an order every foreign key accepts.
const DATA: &[&str] = &[
    "INSERT INTO countries VALUES (1, 'NL'), (2, 'DE'), (3, 'FR')",
    // Customer 3 shares customer 1's country; customer 4 has none.
    "INSERT INTO customers VALUES (1, 'ann', 1), (2, 'bob', 2), (3, 'cy', 1), (4, 'dee', NULL), (5, 'eve', 3)",
    "INSERT INTO warehouses VALUES ('eu', 1), ('eu', 2), ('us', 1)",
    // Product 3 is in no warehouse (NULLs reference nothing).
    "INSERT INTO products VALUES (1, 'eu', 1), (2, 'us', 1), (3, NULL, NULL), (4, 'eu', 2), (5, 'eu', 1)",
    "INSERT INTO orders VALUES (10, 1), (11, 1), (12, 2), (13, 3), (14, 4)",
    // Item 106 has no product.
    "INSERT INTO order_items VALUES (100, 10, 1), (101, 10, 2), (102, 11, 2), (103, 12, 3), (104, 13, 4), \
     (105, 14, 4), (106, 12, NULL)",
    "INSERT INTO audit VALUES (10, 'checked'), (13, 'checked')",
    "INSERT INTO teams VALUES (1, NULL), (2, NULL), (3, NULL), (4, NULL)",
    // Player 41 is in no team.
    "INSERT INTO players VALUES (11, 1), (12, 1), (13, 1), (21, 2), (22, 2), (31, 3), (41, NULL)",
    // Team 3's captain plays for team 1; team 4 has none.
    "UPDATE teams SET captain_id = 11 WHERE id = 1",
    "UPDATE teams SET captain_id = 21 WHERE id = 2",
    "UPDATE teams SET captain_id = 12 WHERE id = 3",
    // 1 manages 2 and 3; 2 manages 4, who manages 5; 3 manages 6; 7 stands alone.
    "INSERT INTO employees VALUES (1, NULL), (2, 1), (3, 1), (4, 2), (5, 4), (6, 3), (7, NULL)",
    "INSERT INTO settings VALUES ('theme', 'dark')",
];

/// A fresh database with the schema and data, a connection to it, and its tables
/// (all of them, `audit` included).
async fn setup(engine: Engine) -> (TestDb, Conn, Vec<Table>) {
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    for sql in schema(engine).iter().map(String::as_str).chain(DATA.iter().copied()) {
        conn.batch(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tables = conn.user_tables().await.unwrap();
    (db, conn, tables)
}

/// The tables but `audit` (no key): its foreign key to orders then does not count.
fn keyed(tables: &[Table]) -> Vec<Table> {
    tables.iter().filter(|t| t.name.name != "audit").cloned().collect()
}

fn root(table: &str, condition: &str) -> SubsetRoot {
    SubsetRoot {
        table: TableName::new(table),
        condition: condition.into(),
    }
}

/// The closure computed in a snapshot transaction, as a subset would be.
async fn run(conn: &mut Conn, tables: &[Table], roots: &[SubsetRoot]) -> Result<Subset, DbError> {
    conn.begin_snapshot().await.unwrap();
    let out = closure(conn, tables, roots).await;
    conn.rollback().await.unwrap();
    out
}

fn ints(ids: &[i64]) -> Vec<Vec<Value>> {
    ids.iter().map(|&i| vec![Value::Int(i)]).collect()
}

/// Asserts every table's key set: `Some(ids)` for a one-column integer key, `None` for
/// a table the subset leaves whole.
fn expect(subset: &Subset, expected: &[(&str, Option<&[i64]>)]) {
    for (table, ids) in expected {
        let name = TableName::new(*table);
        let got = subset.keys(&name).map(<[Vec<Value>]>::to_vec);
        assert_eq!(got, ids.map(ints), "keys of {table}");
        assert_eq!(
            subset.row_count(&name),
            ids.map(|i| i.len() as u64),
            "row count of {table}"
        );
    }
}

async fn customers_take_what_they_need_and_what_belongs_to_them(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let subset = run(&mut conn, &keyed(&tables), &[root("customers", "id IN (1,2)")])
        .await
        .unwrap();
    expect(
        &subset,
        &[
            // Customer 3 shares country 1 but is reached by nothing as a member.
            ("customers", Some(&[1, 2])),
            ("countries", Some(&[1, 2])),
            ("orders", Some(&[10, 11, 12])),
            ("order_items", Some(&[100, 101, 102, 103, 106])),
            // Products are parents only: item 104's product 4 stays out, and product
            // 1's warehouse does not bring product 5.
            ("products", Some(&[1, 2, 3])),
            ("teams", None),
            ("players", None),
            ("employees", None),
            ("settings", None),
            ("audit", None),
        ],
    );
    let warehouses = TableName::new("warehouses");
    assert_eq!(
        subset.keys(&warehouses).unwrap(),
        &[
            vec![Value::Text("eu".into()), Value::Int(1)],
            vec![Value::Text("us".into()), Value::Int(1)]
        ]
    );
    assert_eq!(subset.key_columns(&warehouses).unwrap(), &["region", "code"]);
    assert_eq!(subset.key_columns(&TableName::new("orders")).unwrap(), &["id"]);
}

async fn a_cycle_ends_and_parents_do_not_pull_siblings(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let tables = keyed(&tables);
    // Team 3 brings its player 31 (down) and its captain 12 (up); 12's team 1 and
    // its captain 11 come as parents, so team 1's player 13 does not.
    let subset = run(&mut conn, &tables, &[root("teams", "id = 3")]).await.unwrap();
    expect(
        &subset,
        &[
            ("teams", Some(&[1, 3])),
            ("players", Some(&[11, 12, 31])),
            ("customers", None),
            ("employees", None),
        ],
    );
    // Player 21 captains team 2, which belongs to it (down), and so brings team 2's
    // other player 22.
    let subset = run(&mut conn, &tables, &[root("players", "id = 21")]).await.unwrap();
    expect(&subset, &[("teams", Some(&[2])), ("players", Some(&[21, 22]))]);
    // A player in no team, captain of none: itself only.
    let subset = run(&mut conn, &tables, &[root("players", "id = 41")]).await.unwrap();
    expect(&subset, &[("teams", Some(&[])), ("players", Some(&[41]))]);
}

async fn a_self_reference_goes_down_the_tree_and_up_the_chain(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let tables = keyed(&tables);
    // 2's reports, transitively (4, 5), and its manager 1, without 1's other reports.
    let subset = run(&mut conn, &tables, &[root("employees", "id = 2")]).await.unwrap();
    expect(
        &subset,
        &[("employees", Some(&[1, 2, 4, 5])), ("teams", None), ("customers", None)],
    );
    let subset = run(&mut conn, &tables, &[root("employees", "id = 1")]).await.unwrap();
    expect(&subset, &[("employees", Some(&[1, 2, 3, 4, 5, 6]))]);
    let subset = run(&mut conn, &tables, &[root("employees", "id = 5")]).await.unwrap();
    expect(&subset, &[("employees", Some(&[1, 2, 4, 5]))]);
}

async fn roots_add_up_and_an_empty_root_still_marks_its_tables(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let tables = keyed(&tables);
    let subset = run(
        &mut conn,
        &tables,
        &[
            root("customers", "id = 4"),
            root("employees", "id = 6"),
            root("customers", "name = 'eve' -- a trailing comment"),
        ],
    )
    .await
    .unwrap();
    expect(
        &subset,
        &[
            ("customers", Some(&[4, 5])),
            ("countries", Some(&[3])),
            ("orders", Some(&[14])),
            ("order_items", Some(&[105])),
            ("products", Some(&[4])),
            ("employees", Some(&[1, 3, 6])),
            ("teams", None),
        ],
    );
    let subset = run(&mut conn, &tables, &[root("customers", "id = 999")]).await.unwrap();
    expect(
        &subset,
        &[
            ("customers", Some(&[])),
            ("countries", Some(&[])),
            ("orders", Some(&[])),
            ("order_items", Some(&[])),
            ("products", Some(&[])),
            ("employees", None),
        ],
    );
    assert_eq!(subset.keys(&TableName::new("warehouses")), Some(&[][..]));
    // No roots: every table whole.
    let subset = run(&mut conn, &tables, &[]).await.unwrap();
    expect(&subset, &[("customers", None), ("orders", None), ("employees", None)]);
}

async fn bad_conditions_are_refused_naming_table_and_condition(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let tables = keyed(&tables);
    let customers = tables.iter().find(|t| t.name.name == "customers").unwrap();
    check_condition(&mut conn, customers, "id IN (1,2)").await.unwrap();
    check_condition(&mut conn, customers, "name LIKE 'a%' -- comment")
        .await
        .unwrap();
    for bad in ["no_such_column = 1", "id IN (1,", ""] {
        let err = check_condition(&mut conn, customers, bad).await.unwrap_err();
        let DbError::Invalid(message) = &err else {
            panic!("{bad:?}: expected Invalid, got {err:?}")
        };
        assert!(
            message.contains("customers") && message.contains(&format!("{bad:?}")),
            "{message}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    let err = run(&mut conn, &tables, &[root("customers", "no_such_column = 1")])
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DbError::Invalid(_)) && message.contains("customers") && message.contains("no_such_column"),
        "{message}"
    );
    // A root on a table that is not taken.
    let without: Vec<Table> = tables.iter().filter(|t| t.name.name != "customers").cloned().collect();
    let err = run(&mut conn, &without, &[root("customers", "id = 1")])
        .await
        .unwrap_err();
    assert!(matches!(&err, DbError::Invalid(m) if m.contains("customers")), "{err}");
}

async fn a_connected_table_without_a_key_is_refused(engine: Engine) {
    let (_db, mut conn, tables) = setup(engine).await;
    let err = run(&mut conn, &tables, &[root("customers", "id = 1")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Invalid(m) if m.contains("audit") && m.contains("primary key")),
        "{err}"
    );
    // Not connected to the root: taken whole, key or not.
    let subset = run(&mut conn, &tables, &[root("employees", "id = 1")]).await.unwrap();
    expect(&subset, &[("audit", None), ("orders", None)]);
}

/// More keys than one statement may bind (`relation::MAX_KEY_PARAMS`): each lookup
/// goes in several batches, and every row is found.
async fn large_key_sets_are_looked_up_in_batches(engine: Engine) {
    const N: i64 = 35_000;
    let db = TestDb::new(engine).await;
    let mut conn = db.conn().await;
    // 1..=N as a product of two short recursions (MariaDB sessions stop a recursion
    // after 1,000 iterations).
    let hundreds = "(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199) SELECT i FROM n)";
    let numbers = format!(
        "SELECT a.i * 200 + b.i + 1 AS i FROM {hundreds} a CROSS JOIN {hundreds} b WHERE a.i < {}",
        N / 200
    );
    for sql in [
        "CREATE TABLE parents (id INTEGER PRIMARY KEY)".to_string(),
        "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, \
         FOREIGN KEY (parent_id) REFERENCES parents(id))"
            .to_string(),
        format!("INSERT INTO parents (id) {numbers}"),
        format!("INSERT INTO children (id, parent_id) SELECT i + {N}, i FROM ({numbers}) y"),
    ] {
        conn.batch(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tables = conn.user_tables().await.unwrap();
    let subset = run(&mut conn, &tables, &[root("parents", "id > 0")]).await.unwrap();
    let all: Vec<i64> = (1..=N).collect();
    assert_eq!(subset.keys(&TableName::new("parents")).unwrap(), ints(&all).as_slice());
    let children: Vec<i64> = (N + 1..=2 * N).collect();
    assert_eq!(
        subset.keys(&TableName::new("children")).unwrap(),
        ints(&children).as_slice()
    );
}
