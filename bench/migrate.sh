#!/usr/bin/env bash
# bench/migrate.sh: how fast `lockgate migrate` applies a version folder of customer
# records compared with each engine's native bulk load of the same rows, how fast a
# `--force` re-apply (an upsert of identical rows) is, and whether a run with nothing
# pending is quick and changes nothing.
#
# What it measures, for PostgreSQL, MariaDB and SQLite, RUNS times each, alternating
# (native, then lockgate), the MEDIAN wall time reported, plus lockgate's peak RSS and
# client CPU (/usr/bin/time -f '%e %M %U %S'):
#   * native: the generator's CSV of the ROWS rows into a freshly created `customers` table
#       PostgreSQL  psql  \copy customers FROM 'file' csv header
#       MariaDB     mariadb --local-infile=1  LOAD DATA LOCAL INFILE ... (CRLF lines, NULLIF)
#       SQLite      sqlite3 db ".mode csv" ".import --skip 1 file customers"
#   * first apply: a fresh database (so a fresh ledger too) with the empty `customers`
#     table, then `lockgate migrate --db URL --dir DIR --json`; DIR holds one version,
#     1.0.0, whose meta.json names default/customers.json (the same ROWS rows as JSON).
#   * force re-apply: `lockgate migrate --force` on that database: upserts identical rows.
#   * nothing pending: `lockgate migrate` once more, without --force.
# Goals are printed next to the figures (first apply and force re-apply <= 3x native,
# nothing pending < 0.5 s). Slow timings never fail the script; correctness failures do
# (a lockgate run failing, a wrong version list in its --json report, a table whose
# fingerprint differs from the CSV's or whose ordered dump differs from the native
# load's, in any step): the script then exits 1 after printing the report.
#
# Run from anywhere (needs the local servers: PostgreSQL on 127.0.0.1:5432 as user postgres,
# MariaDB on 127.0.0.1:3306 as root, both without password; python3, psql, mariadb):
#     bench/migrate.sh                       # 100,000 rows, 3 runs
#     ROWS=10000 RUNS=1 bench/migrate.sh     # quick check
# Other knobs: ENGINES="pg mariadb sqlite" (subset), KEEP_TMP=1 (keep the data dir).
# It creates and drops the databases `lockgate_bench` on both servers; generated files go
# to a mktemp directory that is removed at the end.
# The settings, helpers and native loads it shares with bench/load.sh are in bench/lib.sh.
set -euo pipefail

ROWS=${ROWS:-100000} # this script's default; lib.sh sets the rest
VERSION=1.0.0

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- helpers

# Ordered dump of a customers table, one row per line, NULL spelled <NULL>: compared
# byte for byte with the native load's, it catches a value moved to another row, which
# the fingerprint's sums would not. SQLite's NUMERIC column keeps 12.5 or 12 for
# '12.50' / '12.00' whichever way it arrives, so the value is printed with 2 decimals.
DUMP_COLS="customer_id, first_name, last_name, email, phone, city, acquisition_date"
dump_pg() {
    "${PSQL[@]}" -d "$BENCH_DB" -At -F'|' -P null='<NULL>' -c "SELECT $DUMP_COLS, lifetime_value FROM customers ORDER BY customer_id"
}
dump_mariadb() {
    "${MARIADB[@]}" -N -B "$BENCH_DB" -e "SELECT customer_id, first_name, last_name, email, coalesce(phone, '<NULL>'),
      coalesce(city, '<NULL>'), acquisition_date, coalesce(lifetime_value, '<NULL>') FROM customers ORDER BY customer_id" | tr '\t' '|'
}
dump_sqlite() {
    sqlite3 -separator '|' -nullvalue '<NULL>' "$SQ_DB" \
        "SELECT $DUMP_COLS, CASE WHEN lifetime_value IS NULL THEN NULL ELSE printf('%.2f', lifetime_value) END FROM customers ORDER BY customer_id"
}

# check_table ENGINE LABEL [REFERENCE_DUMP]: the table's fingerprint must equal the CSV's
# and, given a reference dump, its ordered dump must equal that one.
check_table() {
    local e=$1 label=$2 ref=${3:-} dump="$TMP/${1}_check.dump"
    check_fp "$e" "$label" || return 1
    [[ -n $ref ]] || return 0
    "dump_$e" >"$dump"
    if ! cmp -s "$ref" "$dump"; then
        fail "$label: table differs from the native load's: $(diff "$ref" "$dump" | head -n 4 | tr '\n' ' ' | head -c 400)"
        return 1
    fi
}

# check_versions LABEL REPORT EXPECTED: the --json report's migrated_versions, as JSON
# (["1.0.0"] or null), must be EXPECTED. Sets M_ROWS (the data steps' inserted/updated/
# unchanged/failed rows, for the log) and M_WARN (the number of warnings, logged).
check_versions() {
    local label=$1 report=$2 expected=$3 line
    M_ROWS=-/-/-/- M_WARN=-
    line=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
w = d.get("warnings") or []
steps = [s for v in d.get("versions") or [] for s in v.get("steps") or []]
counts = "/".join(str(sum(s.get(k) or 0 for s in steps)) for k in ("inserted", "updated", "unchanged", "failed"))
print(json.dumps(d["migrated_versions"], separators=(",", ":")), counts, len(w), "; ".join(map(str, w))[:300])' "$report" 2>/dev/null) ||
        { fail "$label: no JSON report ($(head -c 300 "$report"))"; return 1; }
    local got=${line%% *} rest=${line#* }
    M_ROWS=${rest%% *} rest=${rest#* }
    M_WARN=${rest%% *}
    ((M_WARN == 0)) || log "   $label: $M_WARN warning(s): ${rest#* }"
    [[ $got == "$expected" ]] || { fail "$label: migrated_versions $got, expected $expected"; return 1; }
}

# lockgate_migrate LABEL URL REPORT [--force]: timed lockgate migrate --json; sets T_*;
# checks exit status 0.
lockgate_migrate() {
    local label=$1 url=$2 report=$3
    shift 3
    lockgate_json "$label" "$report" migrate --db "$url" --dir "$BUNDLE" "$@"
}

# ---------------------------------------------------------------- setup

bench_setup migrate migrate

log "-- generating data"
BUNDLE="$TMP/db"
JSON="$BUNDLE/$VERSION/default/customers.json"
mkdir -p "$(dirname "$JSON")"
python3 "$GEN" "$ROWS" --format csv --out "$CLEAN"
python3 "$GEN" "$ROWS" --format json --out "$JSON"
cat >"$BUNDLE/$VERSION/meta.json" <<'EOF'
{
  "contexts": {"/default": {"id": 0, "tenantId": "/default", "remoteUser": "bench"}},
  "files": [{"model": "customers", "file": "default/customers.json", "ctxId": "/default"}]
}
EOF
EXPECT_FP=$(fp_file csv "$CLEAN")
JSON_FP=$(fp_file json "$JSON")
[[ $JSON_FP == "$EXPECT_FP" ]] || { echo "error: the JSON ($JSON_FP) and the CSV ($EXPECT_FP) hold different rows" >&2; exit 2; }
sqlite_import_setup
log "   csv:    $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP)"
log "   bundle: $BUNDLE (version $VERSION, customers.json $(du -h "$JSON" | cut -f1), same fingerprint)"

# ---------------------------------------------------------------- engines
# Per engine E: fresh E (a fresh database holding only the empty customers table, and an
# empty ledger), native_E (lib.sh: the timed native load of $CLEAN), URL[E].

declare -A URL=([pg]=$PG_URL [mariadb]=$MY_URL [sqlite]="sqlite://$SQ_DB")
fresh() { create_db "$1"; create_table "$1"; }

declare -A NATIVE_MED FIRST_MED FORCE_MED NOOP_MED FIRST_RSS FORCE_RSS FIRST_CPU

bench_engine() {
    local e=$1 n=() f=() fo=() no=() fr=() fok=() fc=() i ns ref="$TMP/${1}_native.dump"
    engine_log "$e"
    for ((i = 1; i <= RUNS; i++)); do
        # native bulk load of the CSV into a fresh table
        fresh "$e"
        "native_$e" "$e native run $i"
        n+=("$T_S") ns=$T_S
        check_table "$e" "$e native run $i" || true
        "dump_$e" >"$ref"
        [[ $(wc -l <"$ref") == "$ROWS" ]] || fail "$e native run $i: the ordered dump has $(wc -l <"$ref") lines, expected $ROWS"

        # first apply into a fresh database (fresh ledger)
        fresh "$e"
        M_ROWS=-/-/-/-
        if lockgate_migrate "$e first apply run $i" "${URL[$e]}" "$TMP/${e}_first_$i.json"; then
            check_versions "$e first apply run $i" "$TMP/${e}_first_$i.json" "[\"$VERSION\"]" || true
        fi
        f+=("$T_S") fr+=("$T_KB") fc+=("$T_CPU")
        local fs=$T_S fkb=$T_KB fcpu=$T_CPU frows=$M_ROWS
        check_table "$e" "$e first apply run $i" "$ref" || true

        # --force re-applies every version: identical rows upserted, table unchanged
        M_ROWS=-/-/-/-
        if lockgate_migrate "$e force re-apply run $i" "${URL[$e]}" "$TMP/${e}_force_$i.json" --force; then
            check_versions "$e force re-apply run $i" "$TMP/${e}_force_$i.json" "[\"$VERSION\"]" || true
        fi
        fo+=("$T_S") fok+=("$T_KB")
        local fos=$T_S fokb=$T_KB forows=$M_ROWS
        check_table "$e" "$e force re-apply run $i" "$ref" || true

        # nothing pending: must report migrated_versions null and leave the table alone
        if lockgate_migrate "$e nothing pending run $i" "${URL[$e]}" "$TMP/${e}_noop_$i.json"; then
            check_versions "$e nothing pending run $i" "$TMP/${e}_noop_$i.json" null || true
        fi
        no+=("$T_S")
        check_table "$e" "$e nothing pending run $i" || true
        log "   run $i/$RUNS: native ${ns}s, first apply ${fs}s (CPU ${fcpu}s, $((fkb / 1024)) MB, rows $frows)," \
            "force ${fos}s ($((fokb / 1024)) MB, rows $forows), nothing pending ${T_S}s"
    done
    NATIVE_MED[$e]=$(median "${n[@]}") FIRST_MED[$e]=$(median "${f[@]}") FORCE_MED[$e]=$(median "${fo[@]}")
    NOOP_MED[$e]=$(median "${no[@]}") FIRST_RSS[$e]=$(median "${fr[@]}") FORCE_RSS[$e]=$(median "${fok[@]}")
    FIRST_CPU[$e]=$(median "${fc[@]}")
    drop_db "$e"
}

# ---------------------------------------------------------------- run

run_engines bench_engine

# ---------------------------------------------------------------- report

RATIO_GOAL=3
NOOP_GOAL=0.5

results_header "$ROWS rows in version $VERSION"
echo "lockgate migrate vs the native load of the same rows as CSV (ratio = lockgate / native;"
echo "RSS and CPU s (user+sys, client only) are lockgate's, first apply / force re-apply)"
printf '%-11s %-11s %8s %8s %6s %-10s %8s %6s %-10s %8s %-11s %11s %6s\n' engine native "native s" "first s" ratio "goal" "force s" ratio "goal" "noop s" "goal" "RSS MB" "CPU s"
for e in pg mariadb sqlite; do
    [[ -n ${STATUS[$e]:-} ]] || continue
    r1=$(ratio "${FIRST_MED[$e]}" "${NATIVE_MED[$e]}")
    r2=$(ratio "${FORCE_MED[$e]}" "${NATIVE_MED[$e]}")
    printf '%-11s %-11s %8s %8s %5sx %-10s %8s %5sx %-10s %8s %-11s %11s %6s\n' "${NAME[$e]}" "${NATIVE[$e]}" "${NATIVE_MED[$e]}" \
        "${FIRST_MED[$e]}" "$r1" "<=${RATIO_GOAL}x $(goal "$r1" "$RATIO_GOAL")" \
        "${FORCE_MED[$e]}" "$r2" "<=${RATIO_GOAL}x $(goal "$r2" "$RATIO_GOAL")" \
        "${NOOP_MED[$e]}" "<$NOOP_GOAL $(goal_below "${NOOP_MED[$e]}" "$NOOP_GOAL")" \
        "$(calc '%.1f' "${FIRST_RSS[$e]} / 1024") / $(calc '%.1f' "${FORCE_RSS[$e]} / 1024")" "${FIRST_CPU[$e]}"
done
echo "(first = first apply into a fresh database, force = migrate --force on it, noop = migrate with nothing pending;"
echo " the log's rows are inserted/updated/unchanged/failed from lockgate's --json report)"
correctness "exit status, migrated_versions, table contents after every step"
