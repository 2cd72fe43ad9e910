# shellcheck shell=bash
# bench/lib.sh: the settings and helpers that bench/load.sh and bench/migrate.sh share.
# Not a script of its own: each of them runs `set -euo pipefail`, sets its own default
# row count (ROWS=${ROWS:-N}) and then sources this file, which
#   * sets RUNS (default 3) and ENGINES (default "pg mariadb sqlite"), the servers'
#     settings (PostgreSQL on 127.0.0.1:5432 as postgres, MariaDB on 127.0.0.1:3306 as
#     root, database BENCH_DB=lockgate_bench), PG_URL, MY_URL, ROOT, GEN (the customers
#     generator; GEN=PATH overrides it) and LOCKGATE (the release binary; LOCKGATE=PATH
#     runs that binary instead and builds nothing), and exits 2 unless ROWS and RUNS are
#     positive integers;
#   * defines the PSQL and MARIADB command arrays, `fail` (records a correctness failure
#     in FAILURES) and `log`;
#   * makes the data dir TMP, removed on exit unless KEEP_TMP=1 (the databases that
#     create_db made are dropped on exit too), and names in it CLEAN (the customers CSV
#     the caller generates) and SQ_DB (the SQLite database);
#   * declares NAME[engine], NATIVE[engine] (the native loader) and STATUS[engine] (set
#     for each engine that ran), engines being pg, mariadb and sqlite.
# Helpers, each described where it is defined:
#   measuring      timed, median, calc, goal, goal_below, ratio, loadavg
#   checking       fp_pg, fp_mariadb, fp_sqlite, fp_file, check_fp (needs EXPECT_FP)
#   setup          bench_setup (tools, release build, sqlite3 version), sqlite_import_setup
#   databases      create_db, create_table, drop_db
#   native loads   native_pg, native_mariadb, native_sqlite (of $CLEAN; MY_LOAD)
#   lockgate       lockgate_json
#   run, report    run_engines, engine_log, results_header, correctness

# ---------------------------------------------------------------- settings

RUNS=${RUNS:-3}
ENGINES=${ENGINES:-"pg mariadb sqlite"}
BENCH_DB=lockgate_bench
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=root
# shellcheck disable=SC2034 # used by the scripts
PG_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$BENCH_DB"
# shellcheck disable=SC2034 # used by the scripts
MY_URL="mysql://$MY_USER@$MY_HOST:$MY_PORT/$BENCH_DB"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# Both may be given: GEN for a checkout whose ../shared is elsewhere (a git worktree),
# LOCKGATE for a binary built elsewhere, which bench_setup then does not build.
GEN=${GEN:-"$ROOT/../shared/bench/gen_customers.py"}
LOCKGATE_GIVEN=${LOCKGATE:+1}
LOCKGATE=${LOCKGATE:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/lockgate"}

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

CLEAN="$TMP/customers.csv"
SQ_DB="$TMP/bench.db"

declare -A NAME=([pg]=PostgreSQL [mariadb]=MariaDB [sqlite]=SQLite)
# shellcheck disable=SC2034 # used by the scripts' reports
declare -A NATIVE=([pg]='psql \copy' [mariadb]='LOAD DATA' [sqlite]='.import')
declare -A STATUS

# ---------------------------------------------------------------- helpers

# timed CMD...: runs CMD under /usr/bin/time; sets T_S (elapsed s), T_KB (max RSS KB),
# T_CPU (user + system CPU s of CMD itself, not of the server), T_RC.
# The caller redirects CMD's stdout.
# shellcheck disable=SC2034 # the T_* are read by the scripts
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
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

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

# check_fp ENGINE LABEL: the customers table's fingerprint (fp_ENGINE) must equal the
# clean CSV's, EXPECT_FP, which the caller sets.
check_fp() {
    local got
    got=$("fp_$1")
    # shellcheck disable=SC2154 # EXPECT_FP is set by the scripts
    if [[ $got != "$EXPECT_FP" ]]; then
        fail "$2: table fingerprint $got, expected $EXPECT_FP (rows|sum id|cents|chars|non-null|min date|max date)"
        return 1
    fi
}

# ---------------------------------------------------------------- setup

# bench_setup TITLE [SUBCOMMAND]: logs the start ("lockgate TITLE benchmark"), installs
# sqlite3 and /usr/bin/time when missing, checks the other tools, builds the release
# binary unless LOCKGATE was given (and, given SUBCOMMAND, checks that it has that
# command), and sets SQLITE_VERSION and SQLITE_HAS_SKIP.
bench_setup() {
    local title=$1 subcommand=${2:-} missing=() tool
    log "== lockgate $title benchmark: ROWS=$ROWS RUNS=$RUNS engines: $ENGINES"
    log "   data dir $TMP ($(df -T "$TMP" | awk 'NR==2 {print $2}')), $(nproc) cores, load average $(loadavg)"

    command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
    [[ -x /usr/bin/time ]] || missing+=(time)
    if ((${#missing[@]})); then
        log "-- installing ${missing[*]}"
        apt-get install -y "${missing[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
    fi
    local tools=(python3 psql mariadb)
    [[ -n $LOCKGATE_GIVEN ]] || tools+=(cargo)
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found" >&2; exit 2; }
    done
    [[ -f $GEN ]] || { echo "error: no customers generator at $GEN (set GEN=PATH)" >&2; exit 2; }

    if [[ -n $LOCKGATE_GIVEN ]]; then
        log "-- not building: LOCKGATE=$LOCKGATE given"
    else
        log "-- building lockgate (cargo build --release -p lockgate-cli)"
        if ! (cd "$ROOT" && cargo build --release -p lockgate-cli) >"$TMP/build.log" 2>&1; then
            tail -n 40 "$TMP/build.log" >&2
            echo "error: build failed" >&2
            exit 2
        fi
    fi
    if [[ -n $subcommand ]]; then
        "$LOCKGATE" "$subcommand" --help >/dev/null 2>&1 || { echo "error: $LOCKGATE has no $subcommand command" >&2; exit 2; }
    fi
    log "   $LOCKGATE ($("$LOCKGATE" --version 2>/dev/null || echo 'cannot run it'))"

    SQLITE_VERSION=$(sqlite3 --version | awk '{print $1}')
    # `.import --skip N` exists since sqlite3 3.32.0.
    SQLITE_HAS_SKIP=0
    if [[ $(printf '3.32.0\n%s\n' "$SQLITE_VERSION" | sort -V | head -n 1) == 3.32.0 ]]; then SQLITE_HAS_SKIP=1; fi
}

# sqlite_import_setup: once $CLEAN is written, sets SQLITE_IMPORT, the sqlite3 .import
# command that native_sqlite runs; an old sqlite3 without .import --skip gets a
# header-less copy of the file, made here (not timed).
sqlite_import_setup() {
    if ((SQLITE_HAS_SKIP)); then
        SQLITE_IMPORT=".import --skip 1 \"$CLEAN\" customers"
    else
        tail -n +2 "$CLEAN" >"$TMP/customers_noheader.csv"
        SQLITE_IMPORT=".import \"$TMP/customers_noheader.csv\" customers"
    fi
}

# ---------------------------------------------------------------- databases and native loads

# create_db ENGINE: a new, empty lockgate_bench database (SQLite: removes the file).
create_db() {
    case $1 in
        pg)
            "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" 2>/dev/null
            "${PSQL[@]}" -d postgres -c "CREATE DATABASE $BENCH_DB"
            PG_CREATED=1
            ;;
        mariadb)
            "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB; CREATE DATABASE $BENCH_DB CHARACTER SET utf8mb4"
            MY_CREATED=1
            ;;
        sqlite) rm -f "$SQ_DB" "$SQ_DB-journal" "$SQ_DB-wal" "$SQ_DB-shm" ;;
    esac
}

# drop_db ENGINE: drops the lockgate_bench database (SQLite: removes the file).
drop_db() {
    case $1 in
        pg) "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB"; PG_CREATED=0 ;;
        mariadb) "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $BENCH_DB"; MY_CREATED=0 ;;
        sqlite) rm -f "$SQ_DB" "$SQ_DB-journal" "$SQ_DB-wal" "$SQ_DB-shm" ;;
    esac
}

# create_table ENGINE: an empty customers table from the generator's DDL, in place of any
# earlier one (SQLite: in a new database file).
create_table() {
    case $1 in
        pg) { echo "DROP TABLE IF EXISTS customers;"; python3 "$GEN" --schema postgres; echo "CHECKPOINT;"; } | "${PSQL[@]}" -d "$BENCH_DB" >/dev/null ;;
        mariadb) { echo "DROP TABLE IF EXISTS customers;"; python3 "$GEN" --schema mysql; } | "${MARIADB[@]}" "$BENCH_DB" ;;
        sqlite)
            rm -f "$SQ_DB" "$SQ_DB-journal" "$SQ_DB-wal" "$SQ_DB-shm"
            python3 "$GEN" --schema sqlite | sqlite3 "$SQ_DB"
            ;;
    esac
}

# native_ENGINE LABEL: the timed native bulk load of $CLEAN into the customers table;
# sets T_*; its output goes to $TMP/native.out; a failure is reported as LABEL.
native_pg() {
    timed "${PSQL[@]}" -d "$BENCH_DB" -c "\\copy customers FROM '$CLEAN' csv header" >"$TMP/native.out" 2>&1
    ((T_RC == 0)) || fail "$1: psql exited $T_RC: $(head -c 300 "$TMP/native.out")"
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

# needs sqlite_import_setup first
native_sqlite() {
    timed sqlite3 "$SQ_DB" ".bail on" ".mode csv" "$SQLITE_IMPORT" >"$TMP/native.out" 2>&1
    ((T_RC == 0)) || fail "$1: sqlite3 exited $T_RC: $(head -c 300 "$TMP/native.out")"
}

# lockgate_json LABEL REPORT ARGS...: timed `lockgate ARGS... --json`, its report in
# REPORT and its stderr in REPORT.err; sets T_*; checks exit status 0.
lockgate_json() {
    local label=$1 report=$2
    shift 2
    timed "$LOCKGATE" "$@" --json >"$report" 2>"$report.err"
    if ((T_RC != 0)); then
        fail "$label: lockgate exited $T_RC: $(tr '\n' ' ' <"$report.err" | head -c 400)"
        return 1
    fi
}

# ---------------------------------------------------------------- run and report

# run_engines FUNCTION: FUNCTION ENGINE for each of $ENGINES in turn (pg, mariadb or
# sqlite; postgres, postgresql and mysql are accepted too), then sets STATUS[ENGINE].
run_engines() {
    local engine e
    for engine in $ENGINES; do
        case $engine in
            pg | postgres | postgresql) e=pg ;;
            mariadb | mysql) e=mariadb ;;
            sqlite) e=sqlite ;;
            *) echo "unknown engine $engine" >&2; exit 2 ;;
        esac
        "$1" "$e"
        # shellcheck disable=SC2034 # read by the scripts' reports
        STATUS[$e]=1
    done
}

# engine_log ENGINE: the log line that starts an engine's part.
engine_log() {
    if [[ $1 == sqlite ]]; then log "-- SQLite ($SQLITE_VERSION)"; else log "-- ${NAME[$1]}"; fi
}

# results_header WHAT: the report's title line ("== Results: WHAT, median of ...") and
# the load average.
results_header() {
    echo
    echo "== Results: $1, median of $RUNS run(s); lockgate $("$LOCKGATE" --version | awk '{print $2}'), $(nproc) cores"
    echo "   (load average now $(loadavg): other work on this machine skews the timings)"
    echo
}

# correctness WHAT: the report's last line; exits 1, listing the failed checks, if any
# failed, else says all checks passed (WHAT).
correctness() {
    echo
    if ((${#FAILURES[@]})); then
        echo "CORRECTNESS: ${#FAILURES[@]} check(s) FAILED"
        printf '  - %s\n' "${FAILURES[@]}"
        exit 1
    fi
    echo "CORRECTNESS: all checks passed ($1)"
}
