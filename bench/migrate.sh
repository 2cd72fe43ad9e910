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
set -euo pipefail

ROWS=${ROWS:-100000}
RUNS=${RUNS:-3}
ENGINES=${ENGINES:-"pg mariadb sqlite"}
VERSION=1.0.0
BENCH_DB=lockgate_bench
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=root
PG_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$BENCH_DB"
MY_URL="mysql://$MY_USER@$MY_HOST:$MY_PORT/$BENCH_DB"

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
GEN="$ROOT/../shared/bench/gen_customers.py"
LOCKGATE="${CARGO_TARGET_DIR:-$ROOT/target}/release/lockgate"

case "$ROWS" in '' | *[!0-9]*) echo "ROWS must be a positive integer" >&2; exit 2 ;; esac
case "$RUNS" in '' | *[!0-9]*) echo "RUNS must be a positive integer" >&2; exit 2 ;; esac
((ROWS > 0 && RUNS > 0)) || { echo "ROWS and RUNS must be positive" >&2; exit 2; }

export PGCLIENTENCODING=UTF8 PGOPTIONS="-c client_min_messages=warning"
# Arrays, not functions, so that /usr/bin/time can run them.
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")
MARIADB=(mariadb -h"$MY_HOST" -P"$MY_PORT" -u"$MY_USER" --default-character-set=utf8mb4)

FAILURES=()
fail() { FAILURES+=("$*"); echo "  !! CHECK FAILED: $*"; }
log() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lockgate-bench.XXXXXX")
PG_CREATED=0 MY_CREATED=0
cleanup() {
    set +e
    ((PG_CREATED)) && "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1
    ((MY_CREATED)) && "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

# timed CMD...: runs CMD under /usr/bin/time; sets T_S (elapsed s), T_KB (max RSS KB),
# T_CPU (user + system CPU s of CMD itself, not of the server), T_RC.
# The caller redirects CMD's stdout.
timed() {
    local tf="$TMP/time.out"
    set +e
    /usr/bin/time -o "$tf" -f '%e %M %U %S' "$@"
    T_RC=$?
    set -e
    local user sys
    read -r T_S T_KB user sys < <(tail -n 1 "$tf")
    T_CPU=$(calc '%.2f' "$user + $sys")
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
# goal VALUE LIMIT -> "ok" or "MISSED" (VALUE <= LIMIT); goal_below: VALUE < LIMIT
goal() { awk -v v="$1" -v l="$2" 'BEGIN {print (v <= l) ? "ok" : "MISSED"}'; }
goal_below() { awk -v v="$1" -v l="$2" 'BEGIN {print (v < l) ? "ok" : "MISSED"}'; }
# ratio A B -> A / B with 2 decimals (B = 0, as /usr/bin/time can report, counts as 0.01)
ratio() { calc '%.2f' "$1 / ($2 > 0 ? $2 : 0.01)"; }

# Fingerprint of a customers table / CSV / JSON: rows|sum(id)|sum(value cents)|chars of
# text columns|non-NULL phone+city+value|min date|max date. Catches lost rows, mangled text
# (encoding, a stray \r), NULL-vs-empty and decimal mistakes, not just wrong counts.
FP_SQL_COMMON="count(*), sum(customer_id), %s,
  sum(char_length(first_name) + char_length(last_name) + char_length(email)
      + coalesce(char_length(phone), 0) + coalesce(char_length(city), 0)),
  count(phone) + count(city) + count(lifetime_value), min(acquisition_date), max(acquisition_date)
  FROM customers"
fp_pg() {
    # shellcheck disable=SC2059
    "${PSQL[@]}" -d "$BENCH_DB" -At -F'|' -c "SELECT $(printf "$FP_SQL_COMMON" 'sum((lifetime_value * 100)::bigint)')"
}
fp_mariadb() {
    # shellcheck disable=SC2059
    "${MARIADB[@]}" -N -B "$BENCH_DB" -e "SELECT $(printf "$FP_SQL_COMMON" 'sum(cast(lifetime_value * 100 as signed))')" | tr '\t' '|'
}
fp_sqlite() {
    # shellcheck disable=SC2059
    sqlite3 "$SQ_DB" "SELECT $(printf "${FP_SQL_COMMON//char_length/length}" 'sum(cast(round(lifetime_value * 100) as integer))')"
}
# fp_file csv|json FILE: the same fingerprint computed from a generated file.
fp_file() {
    python3 - "$1" "$2" <<'EOF'
import csv, json, sys
fmt, path = sys.argv[1], sys.argv[2]
COLS = ["customer_id", "first_name", "last_name", "email", "phone", "city",
        "acquisition_date", "lifetime_value"]
n = ids = cents = chars = nonnull = 0
dmin = dmax = None
with open(path, newline="", encoding="utf-8") as f:
    if fmt == "csv":
        r = csv.reader(f)
        next(r)
        records = r
    else:  # JSON: null -> "" as in the CSV (the generator writes NULL as an empty field)
        records = ([("" if d[c] is None else str(d[c])) for c in COLS] for d in json.load(f))
    for cid, first, last, email, phone, city, date, value in records:
        n += 1
        ids += int(cid)
        if value:
            whole, _, frac = value.lstrip("-").partition(".")
            c = int(whole) * 100 + int((frac + "00")[:2])
            cents += -c if value.startswith("-") else c
        chars += len(first) + len(last) + len(email) + len(phone) + len(city)
        nonnull += bool(phone) + bool(city) + bool(value)
        dmin = date if dmin is None or date < dmin else dmin
        dmax = date if dmax is None or date > dmax else dmax
print(f"{n}|{ids}|{cents}|{chars}|{nonnull}|{dmin}|{dmax}")
EOF
}

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
    local e=$1 label=$2 ref=${3:-} got dump="$TMP/${1}_check.dump"
    got=$("fp_$e")
    if [[ $got != "$EXPECT_FP" ]]; then
        fail "$label: table fingerprint $got, expected $EXPECT_FP (rows|sum id|cents|chars|non-null|min date|max date)"
        return 1
    fi
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
    timed "$LOCKGATE" migrate --db "$url" --dir "$BUNDLE" "$@" --json >"$report" 2>"$report.err"
    if ((T_RC != 0)); then
        fail "$label: lockgate exited $T_RC: $(tr '\n' ' ' <"$report.err" | head -c 400)"
        return 1
    fi
}

# ---------------------------------------------------------------- setup

log "== lockgate migrate benchmark: ROWS=$ROWS RUNS=$RUNS engines: $ENGINES"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
log "   data dir $TMP ($(df -T "$TMP" | awk 'NR==2 {print $2}')), $(nproc) cores, load average $(loadavg)"

missing=()
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
    log "-- installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi
for tool in python3 psql mariadb cargo; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found" >&2; exit 2; }
done

log "-- building lockgate (cargo build --release -p lockgate-cli)"
if ! (cd "$ROOT" && cargo build --release -p lockgate-cli) >"$TMP/build.log" 2>&1; then
    tail -n 40 "$TMP/build.log" >&2
    echo "error: build failed" >&2
    exit 2
fi
"$LOCKGATE" migrate --help >/dev/null 2>&1 || { echo "error: $LOCKGATE has no migrate command" >&2; exit 2; }
log "   $LOCKGATE ($("$LOCKGATE" --version))"

SQLITE_VERSION=$(sqlite3 --version | awk '{print $1}')
# `.import --skip N` exists since sqlite3 3.32.0.
SQLITE_HAS_SKIP=0
[[ $(printf '3.32.0\n%s\n' "$SQLITE_VERSION" | sort -V | head -n 1) == 3.32.0 ]] && SQLITE_HAS_SKIP=1

log "-- generating data"
CLEAN="$TMP/customers.csv"
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
if ((SQLITE_HAS_SKIP)); then
    CLEAN_NOHEADER=$CLEAN
else # old sqlite3 without .import --skip: strip the header beforehand (not timed)
    CLEAN_NOHEADER="$TMP/customers_noheader.csv"
    tail -n +2 "$CLEAN" >"$CLEAN_NOHEADER"
fi
log "   csv:    $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP)"
log "   bundle: $BUNDLE (version $VERSION, customers.json $(du -h "$JSON" | cut -f1), same fingerprint)"

# ---------------------------------------------------------------- engines
# Per engine: fresh_E (a fresh database holding only the empty customers table, and an
# empty ledger), native_E (the timed native load of $CLEAN), URL[E].

SQ_DB="$TMP/bench.db"
declare -A URL=([pg]=$PG_URL [mariadb]=$MY_URL [sqlite]="sqlite://$SQ_DB")

fresh_pg() {
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" 2>/dev/null
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $BENCH_DB"
    PG_CREATED=1
    { python3 "$GEN" --schema postgres; echo "CHECKPOINT;"; } | "${PSQL[@]}" -d "$BENCH_DB" >/dev/null
}
native_pg() {
    timed "${PSQL[@]}" -d "$BENCH_DB" -c "\\copy customers FROM '$CLEAN' csv header" >"$TMP/native.out" 2>&1
    ((T_RC == 0)) || fail "$1: psql exited $T_RC: $(head -c 300 "$TMP/native.out")"
}

fresh_mariadb() {
    "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB; CREATE DATABASE $BENCH_DB CHARACTER SET utf8mb4"
    MY_CREATED=1
    python3 "$GEN" --schema mysql | "${MARIADB[@]}" "$BENCH_DB"
}
# The generator writes CSV with CRLF line ends (Python's csv module), so the lines end in
# '\r\n' (with '\n' every lifetime_value would carry a '\r' and be truncated with a warning).
# LOAD DATA would store an empty field as '' (0 for decimals), not NULL: the nullable
# columns go through NULLIF. Strict mode is on; warnings are counted and must be 0.
MY_LOAD="LOAD DATA LOCAL INFILE '$CLEAN' INTO TABLE customers CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\r\n' IGNORE 1 LINES
  (customer_id, first_name, last_name, email, @phone, @city, acquisition_date, @lv)
  SET phone = NULLIF(@phone, ''), city = NULLIF(@city, ''), lifetime_value = NULLIF(@lv, '');
  SELECT @@warning_count;"
native_mariadb() {
    timed "${MARIADB[@]}" --local-infile=1 -N -B "$BENCH_DB" -e "$MY_LOAD" >"$TMP/native.out" 2>&1
    ((T_RC == 0)) || fail "$1: mariadb exited $T_RC: $(head -c 300 "$TMP/native.out")"
    [[ $(cat "$TMP/native.out") == 0 ]] || fail "$1: LOAD DATA gave $(head -c 300 "$TMP/native.out") warnings"
}

fresh_sqlite() {
    rm -f "$SQ_DB" "$SQ_DB-journal" "$SQ_DB-wal" "$SQ_DB-shm"
    python3 "$GEN" --schema sqlite | sqlite3 "$SQ_DB"
}
native_sqlite() {
    local import
    if ((SQLITE_HAS_SKIP)); then import=".import --skip 1 \"$CLEAN\" customers"; else import=".import \"$CLEAN_NOHEADER\" customers"; fi
    timed sqlite3 "$SQ_DB" ".bail on" ".mode csv" "$import" >"$TMP/native.out" 2>&1
    ((T_RC == 0)) || fail "$1: sqlite3 exited $T_RC: $(head -c 300 "$TMP/native.out")"
}

drop_engine() {
    case $1 in
        pg) "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB"; PG_CREATED=0 ;;
        mariadb) "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB"; MY_CREATED=0 ;;
        sqlite) rm -f "$SQ_DB" "$SQ_DB-journal" "$SQ_DB-wal" "$SQ_DB-shm" ;;
    esac
}

declare -A NATIVE_MED FIRST_MED FORCE_MED NOOP_MED FIRST_RSS FORCE_RSS FIRST_CPU STATUS

bench_engine() {
    local e=$1 n=() f=() fo=() no=() fr=() fok=() fc=() i ns ref="$TMP/${1}_native.dump"
    case $e in
        pg) log "-- PostgreSQL" ;;
        mariadb) log "-- MariaDB" ;;
        sqlite) log "-- SQLite ($SQLITE_VERSION)" ;;
    esac
    for ((i = 1; i <= RUNS; i++)); do
        # native bulk load of the CSV into a fresh table
        "fresh_$e"
        "native_$e" "$e native run $i"
        n+=("$T_S") ns=$T_S
        check_table "$e" "$e native run $i" || true
        "dump_$e" >"$ref"
        [[ $(wc -l <"$ref") == "$ROWS" ]] || fail "$e native run $i: the ordered dump has $(wc -l <"$ref") lines, expected $ROWS"

        # first apply into a fresh database (fresh ledger)
        "fresh_$e"
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
    drop_engine "$e"
    STATUS[$e]=1
}

# ---------------------------------------------------------------- run

for engine in $ENGINES; do
    case $engine in
        pg | postgres | postgresql) bench_engine pg ;;
        mariadb | mysql) bench_engine mariadb ;;
        sqlite) bench_engine sqlite ;;
        *) echo "unknown engine $engine" >&2; exit 2 ;;
    esac
done

# ---------------------------------------------------------------- report

declare -A NAME=([pg]=PostgreSQL [mariadb]=MariaDB [sqlite]=SQLite)
declare -A NATIVE=([pg]='psql \copy' [mariadb]='LOAD DATA' [sqlite]='.import')
RATIO_GOAL=3
NOOP_GOAL=0.5

echo
echo "== Results: $ROWS rows in version $VERSION, median of $RUNS run(s); lockgate $("$LOCKGATE" --version | awk '{print $2}'), $(nproc) cores"
echo "   (load average now $(loadavg): other work on this machine skews the timings)"
echo
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
echo
if ((${#FAILURES[@]})); then
    echo "CORRECTNESS: ${#FAILURES[@]} check(s) FAILED"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "CORRECTNESS: all checks passed (exit status, migrated_versions, table contents after every step)"
