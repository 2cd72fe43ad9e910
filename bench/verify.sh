#!/usr/bin/env bash
# bench/verify.sh: how fast `lockgate verify` proves a PostgreSQL table and a MariaDB table
# equal, and finds every difference, against the time to read both tables whole.
#
# What it measures (ROWS customers from the generator, loaded natively into both servers
# at setup, not timed), RUNS times each, alternating, the MEDIAN reported:
#   * read both: `psql -c "\copy (SELECT * FROM customers) TO '/dev/null'"` followed by
#     `mariadb -e 'SELECT * FROM customers' > /dev/null` (one after the other, as a
#     client that reads both would)
#   * verify, equal tables: `lockgate verify --source PG --source-table customers --dest
#     MARIADB --json`, which must exit 0 and report the tables equal
#   * verify, 30 differences: after changing `city` in 10 rows of the MariaDB table at
#     random places, deleting 10 other rows there and adding 10 new rows to the PostgreSQL
#     table, it must exit 3 and report exactly those: 10 differing rows, each with `city`
#     and both values, and 20 keys only in the source (the 10 deleted, the 10 added)
#   * lockgate's peak RSS (/usr/bin/time), the largest over the runs
# Goals (issue 16): equal tables in <= 0.5x the time of reading both; the 30 differences
# reported exactly in <= 1.0x; peak RSS <= 100 MB. Slow figures never fail the script; a
# wrong verdict or a difference not reported exactly does (exit 1 after the report).
#
#     bench/verify.sh                      # 1,000,000 rows, 3 runs
#     ROWS=100000 RUNS=1 bench/verify.sh   # quick check
#     LOCKGATE=/path/to/lockgate bench/verify.sh   # a binary built elsewhere, no build
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and MariaDB on 127.0.0.1:3306 (root),
# both without password; python3, psql, mariadb. It creates and drops the databases
# lockgate_bench on both. The settings and helpers are bench/lib.sh's.
set -euo pipefail

ROWS=${ROWS:-1000000}
ENGINES="pg mariadb"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_setup verify verify
log "-- generating $ROWS customers and loading them into both servers"
python3 "$GEN" "$ROWS" --out "$CLEAN"
for e in pg mariadb; do
    create_db "$e"
    create_table "$e"
    "native_$e" "load into $e"
done
"${PSQL[@]}" -d "$BENCH_DB" -c "VACUUM ANALYZE customers" >/dev/null

# Both clients, one after the other, as one timed script.
cat >"$TMP/read_both.sh" <<EOS
set -e
$(printf '%q ' "${PSQL[@]}") -d $BENCH_DB -c "\\copy (SELECT * FROM customers) TO '/dev/null'"
$(printf '%q ' "${MARIADB[@]}") $BENCH_DB -e 'SELECT * FROM customers' >/dev/null
EOS
read_both() {
    timed bash "$TMP/read_both.sh"
    ((T_RC == 0)) || fail "read both: exited $T_RC"
}

# verify_run EXPECTED_EXIT REPORT: times lockgate verify; checks its exit status.
verify_run() {
    timed "$LOCKGATE" verify --source "$PG_URL" --source-table customers --dest "$MY_URL" --json >"$2" 2>"$2.err"
    ((T_RC == $1)) || fail "verify exited $T_RC, not $1: $(head -c 400 "$2.err")"
}

declare -a READ EQUAL DIFF
RSS=0
for ((r = 1; r <= RUNS; r++)); do
    read_both
    READ+=("$T_S")
    verify_run 0 "$TMP/equal.json"
    EQUAL+=("$T_S")
    ((T_KB > RSS)) && RSS=$T_KB
    log "   run $r: read both ${READ[-1]} s, verify equal ${EQUAL[-1]} s"
done
python3 - "$TMP/equal.json" <<'PY' || fail "the equal tables were not reported equal"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["equal"] and r["source_rows"] == r["dest_rows"], r
PY

log "-- 30 differences: 10 changed and 10 deleted in MariaDB, 10 added to PostgreSQL"
read -r -a PICK < <(python3 -c "import random; r = random.Random(16); print(*r.sample(range(1, $ROWS + 1), 20))")
CHANGED=$(IFS=,; echo "${PICK[*]:0:10}")
DELETED=$(IFS=,; echo "${PICK[*]:10:10}")
"${MARIADB[@]}" "$BENCH_DB" -e "UPDATE customers SET city = 'verify-changed' WHERE customer_id IN ($CHANGED); DELETE FROM customers WHERE customer_id IN ($DELETED)"
"${PSQL[@]}" -d "$BENCH_DB" -c "INSERT INTO customers SELECT customer_id + $ROWS, first_name, last_name, 'added' || email, phone, city, acquisition_date, lifetime_value FROM customers WHERE customer_id <= 10" >/dev/null
for ((r = 1; r <= RUNS; r++)); do
    verify_run 3 "$TMP/diff.json"
    DIFF+=("$T_S")
    ((T_KB > RSS)) && RSS=$T_KB
    log "   run $r: verify with differences ${DIFF[-1]} s"
done
python3 - "$TMP/diff.json" "$CHANGED" "$DELETED" "$ROWS" <<'PY' || fail "the 30 differences were not reported exactly"
import json, sys
r = json.load(open(sys.argv[1]))
changed = sorted(int(k) for k in sys.argv[2].split(","))
deleted = [int(k) for k in sys.argv[3].split(",")]
rows = int(sys.argv[4])
added = [rows + i for i in range(1, 11)]
assert sorted(d["key"] for d in r["differing"]) == changed, r["differing"]
assert all([c["column"] for c in d["columns"]] == ["city"] and c["dest"] == '"verify-changed"' for d in r["differing"] for c in d["columns"]), r["differing"]
assert sorted(r["only_in_source"]) == sorted(deleted + added), r["only_in_source"]
assert r["only_in_dest"] == [], r["only_in_dest"]
assert (r["differing_count"], r["only_in_source_count"], r["only_in_dest_count"]) == (10, 20, 0), r
PY

read_m=$(median "${READ[@]}")
equal_m=$(median "${EQUAL[@]}")
diff_m=$(median "${DIFF[@]}")
eq_ratio=$(ratio "$equal_m" "$read_m")
diff_ratio=$(ratio "$diff_m" "$read_m")
rss_mb=$(calc '%.1f' "$RSS / 1024")
echo
echo "== Results: $ROWS rows in PostgreSQL and MariaDB, median of $RUNS run(s); $("$LOCKGATE" --version), $(nproc) cores"
echo "   (load average now $(loadavg): other work on this machine skews the timings)"
printf '%-34s %8s %8s %-14s\n' case seconds ratio goal
printf '%-34s %8s %8s %-14s\n' "read both whole (psql + mariadb)" "$read_m" "1.00x" "-"
printf '%-34s %8s %8s %-14s\n' "verify, equal" "$equal_m" "${eq_ratio}x" "<=0.5x $(goal "$eq_ratio" 0.5)"
printf '%-34s %8s %8s %-14s\n' "verify, 30 differences" "$diff_m" "${diff_ratio}x" "<=1.0x $(goal "$diff_ratio" 1.0)"
echo "lockgate peak RSS: $rss_mb MB (goal <= 100 MB: $(goal "$rss_mb" 100))"
echo "ranges compared / rows read back, with differences: $(python3 -c "import json; r = json.load(open('$TMP/diff.json')); print(r['ranges'], '/', r['rows_fetched'])")"
echo
if ((${#FAILURES[@]})); then
    echo "CORRECTNESS: ${#FAILURES[@]} check(s) failed:"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "CORRECTNESS: all checks passed (equal tables reported equal; the 30 differences reported exactly)"
