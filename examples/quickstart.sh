#!/usr/bin/env bash
# Quick start on the embedded SQLite default: builds lockgate, creates a sample
# database, loads 500 customers, shows the schema, then shows a load with bad rows
# being refused as a whole (exit 3) with every bad row reported, then migrates the
# sample db/ folder (examples/db) and shows its status.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lockgate-cli
lg=target/release/lockgate
db=examples/demo.db
rm -f "$db"
$lg exec --db "$db" --file examples/customers.sqlite.sql
$lg load --db "$db" --table customers examples/customers.csv
$lg inspect --db "$db" --table customers
echo "--- a file with faulty rows (NULL names, duplicate ids, negative values): nothing is kept"
$lg exec --db "$db" --sql "DELETE FROM customers"
$lg load --db "$db" --table customers examples/customers_bad.csv || echo "(exit $? as expected: row errors, rolled back)"
echo "--- versioned data migrations from an oe-migration style db/ folder (examples/db)"
$lg migrate --db "$db" --dir examples/db --dry-run
$lg migrate --db "$db" --dir examples/db
$lg migrate --db "$db" --dir examples/db   # nothing pending: no harm done
$lg status --db "$db" --dir examples/db
