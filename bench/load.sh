#!/usr/bin/env bash
# bench/load.sh: how fast `lockgate load` loads a CSV compared with each engine's native
# bulk loader, and whether it still reports every bad row and keeps nothing.
#
# What it measures, for PostgreSQL, MariaDB and SQLite:
#   * clean file (ROWS rows): the native loader vs `lockgate load`, each into a freshly
#     created `customers` table, RUNS times each, alternating; the MEDIAN wall time is
#     reported, plus lockgate's rows/s, peak RSS and client CPU (/usr/bin/time -f '%e %M %U %S').
#       PostgreSQL  psql  \copy customers FROM 'file' csv header
#       MariaDB     mariadb --local-infile=1  LOAD DATA LOCAL INFILE ... (CRLF lines, NULLIF)
#       SQLite      sqlite3 db ".mode csv" ".import --skip 1 file customers"
#   * faulty file (ROWS rows, 0.1 % faulty: NULL first_name, duplicate key, negative
#     lifetime_value): one `lockgate load` per engine, timed; it must exit 3, list every
#     faulty row in its --json report, and leave 0 rows in the table.
#   * peak RSS of a 100k-row PostgreSQL load, to show memory does not grow with the file.
# Goals are printed next to the figures (PG, MariaDB <= 1.3x native, SQLite <= 1.5x,
# faulty <= 2x clean, RSS <= 100 MB). Slow timings never fail the script; correctness
# failures do (wrong row counts or contents, a faulty row not reported, rows left behind,
# a clean load failing): the script then exits 1 after printing the report.
#
# Run from anywhere (needs the local servers: PostgreSQL on 127.0.0.1:5432 as user postgres,
# MariaDB on 127.0.0.1:3306 as root, both without password; python3, psql, mariadb):
#     bench/load.sh                       # 1,000,000 rows, 3 runs (a few minutes)
#     ROWS=100000 RUNS=1 bench/load.sh    # quick check
# Other knobs: ENGINES="pg mariadb sqlite" (subset), KEEP_TMP=1 (keep the data dir).
# It creates and drops the databases `lockgate_bench` on both servers; generated files go
# to a mktemp directory that is removed at the end.
set -euo pipefail

ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
ENGINES=${ENGINES:-"pg mariadb sqlite"}
BAD_FRACTION=0.001
FAULTS=null,dup,check
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
# goal VALUE LIMIT -> "ok" or "MISSED"
goal() { awk -v v="$1" -v l="$2" 'BEGIN {print (v <= l) ? "ok" : "MISSED"}'; }

# Fingerprint of a customers table / CSV: rows|sum(id)|sum(value cents)|chars of text
# columns|non-NULL phone+city+value|min date|max date. Catches lost rows, mangled text
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
    sqlite3 "$1" "SELECT $(printf "${FP_SQL_COMMON//char_length/length}" 'sum(cast(round(lifetime_value * 100) as integer))')"
}
fp_csv() {
    python3 - "$1" <<'EOF'
import csv, sys
n = ids = cents = chars = nonnull = 0
dmin = dmax = None
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    r = csv.reader(f)
    next(r)
    for cid, first, last, email, phone, city, date, value in r:
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

# check_table LABEL GOT: compares a fingerprint with the clean file's.
check_table() {
    local label=$1 got=$2
    if [[ $got != "$EXPECT_FP" ]]; then
        fail "$label: table fingerprint $got, expected $EXPECT_FP (rows|sum id|cents|chars|non-null|min date|max date)"
        return 1
    fi
}

# check_report LABEL FILE ROWS: a clean lockgate --json report must say all rows inserted.
check_report() {
    local label=$1 file=$2 rows=$3 line
    line=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows_read"], d["inserted"], len(d["failed"]), str(d["committed"]).lower())' "$file" 2>/dev/null) ||
        { fail "$label: no JSON report ($(head -c 300 "$file"))"; return 1; }
    [[ $line == "$rows $rows 0 true" ]] || { fail "$label: report rows_read/inserted/failed/committed = $line, expected $rows $rows 0 true"; return 1; }
}

# lockgate_load LABEL URL FILE REPORT: timed lockgate load; sets T_*; checks exit status 0.
lockgate_load() {
    local label=$1 url=$2 file=$3 report=$4
    timed "$LOCKGATE" load --db "$url" --table customers "$file" --json >"$report" 2>"$report.err"
    if ((T_RC != 0)); then
        fail "$label: lockgate exited $T_RC: $(tr '\n' ' ' <"$report.err" | head -c 400)"
        return 1
    fi
}

# faulty_check LABEL REPORT COUNT_ROWS_LEFT: exit 3, every faulty row reported, nothing kept.
faulty_check() {
    local label=$1 report=$2 left=$3 reported
    reported=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["failed"]), str(d["committed"]).lower())' "$report" 2>/dev/null) || reported="? ?"
    F_REPORTED=${reported%% *}
    F_LEFT=$left
    ((T_RC == 3)) || fail "$label: lockgate exited $T_RC, expected 3 ($(tr '\n' ' ' <"$report.err" | head -c 300))"
    [[ $F_REPORTED == "$FAULTY" ]] || fail "$label: report lists $F_REPORTED failed rows, the generator made $FAULTY"
    [[ ${reported#* } == false ]] || fail "$label: report says committed=${reported#* }"
    [[ $left == 0 ]] || fail "$label: $left rows left in the table after a rolled-back load"
}

# ---------------------------------------------------------------- setup

log "== lockgate load benchmark: ROWS=$ROWS RUNS=$RUNS engines: $ENGINES"
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
log "   $LOCKGATE ($("$LOCKGATE" --version))"

SQLITE_VERSION=$(sqlite3 --version | awk '{print $1}')
# `.import --skip N` exists since sqlite3 3.32.0.
SQLITE_HAS_SKIP=0
[[ $(printf '3.32.0\n%s\n' "$SQLITE_VERSION" | sort -V | head -n 1) == 3.32.0 ]] && SQLITE_HAS_SKIP=1

log "-- generating data"
CLEAN="$TMP/customers.csv"
BAD="$TMP/customers_faulty.csv"
python3 "$GEN" "$ROWS" --out "$CLEAN"
python3 "$GEN" "$ROWS" --bad "$BAD_FRACTION" --faults "$FAULTS" --out "$BAD" 2>"$TMP/gen.err"
FAULTY=$(sed -n 's/^faulty rows: \([0-9]*\)$/\1/p' "$TMP/gen.err")
[[ -n $FAULTY ]] || { echo "error: no faulty row count from the generator: $(cat "$TMP/gen.err")" >&2; exit 2; }
RSS_ROWS=100000
if ((ROWS >= RSS_ROWS)); then
    head -n $((RSS_ROWS + 1)) "$CLEAN" >"$TMP/customers_100k.csv"
else
    python3 "$GEN" "$RSS_ROWS" --out "$TMP/customers_100k.csv"
fi
# Half the file too: peak memory is reached once the reader-to-writer pipeline has
# filled, so half and all of a large file must need the same.
HALF_ROWS=$((ROWS / 2))
head -n $((HALF_ROWS + 1)) "$CLEAN" >"$TMP/customers_half.csv"
EXPECT_FP=$(fp_csv "$CLEAN")
if ((SQLITE_HAS_SKIP)); then
    CLEAN_NOHEADER=$CLEAN
else # old sqlite3 without .import --skip: strip the header beforehand (not timed)
    CLEAN_NOHEADER="$TMP/customers_noheader.csv"
    tail -n +2 "$CLEAN" >"$CLEAN_NOHEADER"
fi
log "   clean:  $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP)"
log "   faulty: $BAD ($FAULTY faulty rows)"

declare -A NATIVE_MED LG_MED LG_RSS LG_CPU F_TIME F_REP F_LEFT_ROWS F_RSS STATUS

# ---------------------------------------------------------------- PostgreSQL

pg_recreate() {
    python3 "$GEN" --schema postgres >"$TMP/pg_schema.sql"
    { echo "DROP TABLE IF EXISTS customers;"; cat "$TMP/pg_schema.sql"; echo "CHECKPOINT;"; } | "${PSQL[@]}" -d "$BENCH_DB" >/dev/null
}

bench_pg() {
    log "-- PostgreSQL"
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" 2>/dev/null
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $BENCH_DB"
    PG_CREATED=1
    local n=() l=() r=() c=() i
    for ((i = 1; i <= RUNS; i++)); do
        pg_recreate
        timed "${PSQL[@]}" -d "$BENCH_DB" -c "\\copy customers FROM '$CLEAN' csv header" >/dev/null
        ((T_RC == 0)) || fail "pg native run $i: psql exited $T_RC"
        n+=("$T_S")
        check_table "pg native run $i" "$(fp_pg)" || true
        local ns=$T_S

        pg_recreate
        if lockgate_load "pg lockgate run $i" "$PG_URL" "$CLEAN" "$TMP/pg_$i.json"; then
            check_report "pg lockgate run $i" "$TMP/pg_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_table "pg lockgate run $i" "$(fp_pg)" || true
        log "   run $i/$RUNS: \\copy ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[pg]=$(median "${n[@]}") LG_MED[pg]=$(median "${l[@]}") LG_RSS[pg]=$(median "${r[@]}") LG_CPU[pg]=$(median "${c[@]}")

    pg_recreate
    timed "$LOCKGATE" load --db "$PG_URL" --table customers "$BAD" --json >"$TMP/pg_bad.json" 2>"$TMP/pg_bad.json.err"
    faulty_check "pg faulty" "$TMP/pg_bad.json" "$("${PSQL[@]}" -d "$BENCH_DB" -At -c 'SELECT count(*) FROM customers')"
    F_TIME[pg]=$T_S F_REP[pg]=$F_REPORTED F_LEFT_ROWS[pg]=$F_LEFT F_RSS[pg]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"

    pg_recreate
    if lockgate_load "pg lockgate 100k" "$PG_URL" "$TMP/customers_100k.csv" "$TMP/pg_100k.json"; then
        check_report "pg lockgate 100k" "$TMP/pg_100k.json" "$RSS_ROWS" || true
    fi
    RSS_100K=$T_KB RSS_100K_S=$T_S
    log "   100k rows: ${T_S}s, $((T_KB / 1024)) MB"
    pg_recreate
    if lockgate_load "pg lockgate half" "$PG_URL" "$TMP/customers_half.csv" "$TMP/pg_half.json"; then
        check_report "pg lockgate half" "$TMP/pg_half.json" "$HALF_ROWS" || true
    fi
    RSS_HALF=$T_KB
    log "   $HALF_ROWS rows: ${T_S}s, $((T_KB / 1024)) MB"
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB"
    PG_CREATED=0
}

# ---------------------------------------------------------------- MariaDB

my_recreate() {
    { echo "DROP TABLE IF EXISTS customers;"; python3 "$GEN" --schema mysql; } | "${MARIADB[@]}" "$BENCH_DB"
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

bench_mariadb() {
    log "-- MariaDB"
    "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB; CREATE DATABASE $BENCH_DB CHARACTER SET utf8mb4"
    MY_CREATED=1
    local n=() l=() r=() c=() i
    for ((i = 1; i <= RUNS; i++)); do
        my_recreate
        timed "${MARIADB[@]}" --local-infile=1 -N -B "$BENCH_DB" -e "$MY_LOAD" >"$TMP/my_native.out"
        ((T_RC == 0)) || fail "mariadb native run $i: mariadb exited $T_RC"
        [[ $(cat "$TMP/my_native.out") == 0 ]] || fail "mariadb native run $i: LOAD DATA gave $(cat "$TMP/my_native.out") warnings"
        n+=("$T_S")
        check_table "mariadb native run $i" "$(fp_mariadb)" || true
        local ns=$T_S

        my_recreate
        if lockgate_load "mariadb lockgate run $i" "$MY_URL" "$CLEAN" "$TMP/my_$i.json"; then
            check_report "mariadb lockgate run $i" "$TMP/my_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_table "mariadb lockgate run $i" "$(fp_mariadb)" || true
        log "   run $i/$RUNS: LOAD DATA ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[mariadb]=$(median "${n[@]}") LG_MED[mariadb]=$(median "${l[@]}") LG_RSS[mariadb]=$(median "${r[@]}") LG_CPU[mariadb]=$(median "${c[@]}")

    my_recreate
    timed "$LOCKGATE" load --db "$MY_URL" --table customers "$BAD" --json >"$TMP/my_bad.json" 2>"$TMP/my_bad.json.err"
    faulty_check "mariadb faulty" "$TMP/my_bad.json" "$("${MARIADB[@]}" -N -B "$BENCH_DB" -e 'SELECT count(*) FROM customers')"
    F_TIME[mariadb]=$T_S F_REP[mariadb]=$F_REPORTED F_LEFT_ROWS[mariadb]=$F_LEFT F_RSS[mariadb]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"
    "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB"
    MY_CREATED=0
}

# ---------------------------------------------------------------- SQLite

sqlite_fresh() {
    rm -f "$1" "$1-journal" "$1-wal" "$1-shm"
    python3 "$GEN" --schema sqlite | sqlite3 "$1"
}

bench_sqlite() {
    log "-- SQLite ($SQLITE_VERSION)"
    local n=() l=() r=() c=() i db="$TMP/bench.db" import
    if ((SQLITE_HAS_SKIP)); then import=".import --skip 1 \"$CLEAN\" customers"; else import=".import \"$CLEAN_NOHEADER\" customers"; fi
    for ((i = 1; i <= RUNS; i++)); do
        sqlite_fresh "$db"
        timed sqlite3 "$db" ".bail on" ".mode csv" "$import" >"$TMP/sq_native.out" 2>&1
        ((T_RC == 0)) || fail "sqlite native run $i: sqlite3 exited $T_RC: $(head -c 300 "$TMP/sq_native.out")"
        n+=("$T_S")
        check_table "sqlite native run $i" "$(fp_sqlite "$db")" || true
        local ns=$T_S

        sqlite_fresh "$db"
        if lockgate_load "sqlite lockgate run $i" "sqlite://$db" "$CLEAN" "$TMP/sq_$i.json"; then
            check_report "sqlite lockgate run $i" "$TMP/sq_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_table "sqlite lockgate run $i" "$(fp_sqlite "$db")" || true
        log "   run $i/$RUNS: .import ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[sqlite]=$(median "${n[@]}") LG_MED[sqlite]=$(median "${l[@]}") LG_RSS[sqlite]=$(median "${r[@]}") LG_CPU[sqlite]=$(median "${c[@]}")

    sqlite_fresh "$db"
    timed "$LOCKGATE" load --db "sqlite://$db" --table customers "$BAD" --json >"$TMP/sq_bad.json" 2>"$TMP/sq_bad.json.err"
    faulty_check "sqlite faulty" "$TMP/sq_bad.json" "$(sqlite3 "$db" 'SELECT count(*) FROM customers')"
    F_TIME[sqlite]=$T_S F_REP[sqlite]=$F_REPORTED F_LEFT_ROWS[sqlite]=$F_LEFT F_RSS[sqlite]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"
    rm -f "$db"
}

# ---------------------------------------------------------------- run

for engine in $ENGINES; do
    case $engine in
        pg | postgres | postgresql) bench_pg; STATUS[pg]=1 ;;
        mariadb | mysql) bench_mariadb; STATUS[mariadb]=1 ;;
        sqlite) bench_sqlite; STATUS[sqlite]=1 ;;
        *) echo "unknown engine $engine" >&2; exit 2 ;;
    esac
done

# ---------------------------------------------------------------- report

declare -A NAME=([pg]=PostgreSQL [mariadb]=MariaDB [sqlite]=SQLite)
declare -A NATIVE=([pg]='psql \copy' [mariadb]='LOAD DATA' [sqlite]='.import')
declare -A RATIO_GOAL=([pg]=1.3 [mariadb]=1.3 [sqlite]=1.5)
RSS_GOAL_MB=100
FAULTY_GOAL=2

echo
echo "== Results: $ROWS rows, median of $RUNS run(s); lockgate $("$LOCKGATE" --version | awk '{print $2}'), $(nproc) cores"
echo "   (load average now $(loadavg): other work on this machine skews the timings)"
echo
echo "Clean file (ratio = lockgate / native; rows/s, RSS and CPU s (user+sys, client only) are lockgate's)"
printf '%-11s %-11s %9s %10s %7s %-14s %10s %7s %-12s %6s\n' engine native "native s" "lockgate s" ratio "ratio goal" "rows/s" "RSS MB" "RSS goal" "CPU s"
for e in pg mariadb sqlite; do
    [[ -n ${STATUS[$e]:-} ]] || continue
    ratio=$(calc '%.2f' "${LG_MED[$e]} / (${NATIVE_MED[$e]} > 0 ? ${NATIVE_MED[$e]} : 0.01)")
    rps=$(calc '%.0f' "$ROWS / (${LG_MED[$e]} > 0 ? ${LG_MED[$e]} : 0.01)")
    mb=$(calc '%.1f' "${LG_RSS[$e]} / 1024")
    printf '%-11s %-11s %9s %10s %6sx %-14s %10s %7s %-12s %6s\n' "${NAME[$e]}" "${NATIVE[$e]}" "${NATIVE_MED[$e]}" "${LG_MED[$e]}" "$ratio" \
        "<=${RATIO_GOAL[$e]}x $(goal "$ratio" "${RATIO_GOAL[$e]}")" "$rps" "$mb" "<=$RSS_GOAL_MB $(goal "$mb" "$RSS_GOAL_MB")" "${LG_CPU[$e]}"
done
echo
echo "Faulty file ($FAULTY of $ROWS rows faulty: $FAULTS), all-or-nothing"
printf '%-11s %10s %14s %-12s %9s %9s %10s %7s\n' engine "lockgate s" "ratio to clean" "ratio goal" expected reported "rows left" "RSS MB"
for e in pg mariadb sqlite; do
    [[ -n ${STATUS[$e]:-} ]] || continue
    fr=$(calc '%.2f' "${F_TIME[$e]} / (${LG_MED[$e]} > 0 ? ${LG_MED[$e]} : 0.01)")
    printf '%-11s %10s %13sx %-12s %9s %9s %10s %7s\n' "${NAME[$e]}" "${F_TIME[$e]}" "$fr" "<=${FAULTY_GOAL}x $(goal "$fr" "$FAULTY_GOAL")" \
        "$FAULTY" "${F_REP[$e]}" "${F_LEFT_ROWS[$e]}" "$(calc '%.1f' "${F_RSS[$e]:-0} / 1024")"
done
if [[ -n ${STATUS[pg]:-} ]]; then
    echo
    mb100=$(calc '%.1f' "$RSS_100K / 1024")
    mbhalf=$(calc '%.1f' "$RSS_HALF / 1024")
    mbfull=$(calc '%.1f' "${LG_RSS[pg]} / 1024")
    echo "Memory (PostgreSQL): peak RSS $mb100 MB for $RSS_ROWS rows (${RSS_100K_S}s), $mbhalf MB for $HALF_ROWS rows, $mbfull MB for $ROWS rows"
    echo "   goal <= $RSS_GOAL_MB MB: $(goal "$mbfull" "$RSS_GOAL_MB"); flat in size (all vs half): $(goal "$mbfull" "$(calc '%.1f' "$mbhalf * 1.1 + 2")")"
    echo "   (a short load ends before the reader-to-writer pipeline fills; the bound is batch size x pipeline depth)"
fi
echo
if ((${#FAILURES[@]})); then
    echo "CORRECTNESS: ${#FAILURES[@]} check(s) FAILED"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "CORRECTNESS: all checks passed (row counts and contents, faulty rows reported, nothing left behind)"
