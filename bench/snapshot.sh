#!/usr/bin/env bash
# bench/snapshot.sh: how fast `lockgate snapshot create` and `lockgate restore` are, and
# how large a snapshot is, compared with pg_dump / pg_restore and sqlite3 .import, on one
# PostgreSQL customers table; whether a snapshot to S3 costs more than one to a folder;
# and whether lockgate's memory stays flat as the table grows.
#
# Data, built once at setup (never timed): ROWS customers from the generator (its
# --schema DDL), loaded with psql \copy into a fresh PostgreSQL database `lockgate_bench`
# and checked against the CSV's fingerprint; the first ROWS/10 of them likewise into
# `lockgate_bench_small`; the table exported once with `psql \copy customers TO ... csv`
# for the SQLite import; a profile `bench` (`lockgate profile create bench --store DIR
# --dir TMP/db`); moto's S3 server (.ci/moto.sh, unless something answers already) and a
# bucket of this run's own.
# What it measures, RUNS times each, alternating (the order reversed on even runs), the
# MEDIAN wall time reported, plus lockgate's peak RSS (the max over the runs) and client
# CPU (/usr/bin/time -f '%e %M %U %S'):
#   * snapshot: `pg_dump -Fc -t customers -f X.dump lockgate_bench` vs `lockgate snapshot
#     create --db URL --profile bench --store DIR --dir TMP/db --tables customers --json`;
#     and their sizes: the dump file vs every file of the snapshot's folder (DIR/bench/ID/,
#     its manifest included);
#   * restore into PostgreSQL: `pg_restore -d lockgate_bench_pgr X.dump` vs `lockgate
#     restore --profile bench --store DIR --dir TMP/db --id ID --into URL --json`, each
#     into a freshly created, empty database (`lockgate_bench_pgr`, `lockgate_bench_dst`);
#   * PostgreSQL -> SQLite: `sqlite3 F "CREATE TABLE customers (...)" ".import --csv CSV
#     customers"` (the generator's SQLite DDL, the table created in the same invocation)
#     vs `lockgate restore ... --into sqlite://F`, each into a new file F;
#   * snapshot to moto S3 (`--store s3://BUCKET/snapshots`, endpoint and credentials in
#     AWS_*) vs the same snapshot to a folder (the first step above);
#   * once per run, snapshot create and restore into PostgreSQL of `lockgate_bench_small`
#     (ROWS/10 rows), for their peak RSS.
# Goals are printed next to the figures (snapshot <= 1.0x pg_dump's time and <= 1.0x its
# size, restore <= 1.5x pg_restore, PostgreSQL -> SQLite <= 1.5x .import, peak RSS <= 150
# MB and flat: at ROWS <= 1.5x at ROWS/10; S3 vs folder has no goal). Slow timings never
# fail the script; correctness failures do: every lockgate step must exit 0 and its
# --json report name one table of ROWS rows (ROWS/10 for the small one); pg_dump,
# pg_restore and sqlite3 must exit 0; after every restore and import the table's
# fingerprint (as in bench/load.sh) must equal the CSV's, and after a restore into
# PostgreSQL its ordered checksum (every column, in key order) must equal the source's;
# after the runs, the last S3 snapshot is restored into a fresh database and checked the
# same way (its time is logged, not compared). The script then exits 1 after printing
# the report.
#
# Run from anywhere (needs PostgreSQL on 127.0.0.1:5432 as user postgres without
# password, pg_dump and pg_restore of its version, python3, psql, curl; sqlite3 and
# /usr/bin/time are installed when missing; moto from PyPI by .ci/moto.sh):
#     bench/snapshot.sh                        # 1,000,000 rows, 3 runs
#     ROWS=20000 RUNS=1 bench/snapshot.sh      # quick check
# Other knobs: LOCKGATE=PATH (run that binary, build nothing), GEN=PATH (the customers
# generator), LOCKGATE_TEST_S3=URL (an S3-compatible server already running; default
# http://127.0.0.1:5055, where .ci/moto.sh starts moto when nothing answers), KEEP_TMP=1
# (keep the data dir, the dump and the snapshots).
# It creates and drops the PostgreSQL databases `lockgate_bench`, `lockgate_bench_small`,
# `lockgate_bench_dst` and `lockgate_bench_pgr`, and deletes its snapshots and bucket
# from the S3 server at the end (moto itself is left running, as .ci/moto.sh leaves it);
# generated files go to a mktemp directory that is removed at the end. lockgate runs in
# that directory, so that a lockgate.toml where the script is started cannot change it.
# The settings and helpers it shares with the other scripts are in bench/lib.sh.
set -euo pipefail

ROWS=${ROWS:-1000000} # this script's default; lib.sh sets the rest
ENGINES=pg            # PostgreSQL is the source; SQLite is a restore target only

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMALL=$((ROWS / 10))
SMALL_DB=lockgate_bench_small
DST_DB=lockgate_bench_dst
PGR_DB=lockgate_bench_pgr
pg_url() { echo "postgres://$PG_USER@$PG_HOST:$PG_PORT/$1"; }
PROFILE=bench
DB_DIR="$TMP/db"             # the profile's pin file goes to $DB_DIR/profiles
STORE="$TMP/store"           # the folder store
STORE_SMALL="$TMP/store_small"
DUMP="$TMP/customers.dump"
EXPORT_CSV="$TMP/customers_export.csv" # psql \copy TO csv: no header, NULL as an empty field
SQ_LG="$TMP/lockgate.db"     # lockgate's SQLite target
SQ_NATIVE="$TMP/native.db"   # sqlite3 .import's
S3_ENDPOINT=${LOCKGATE_TEST_S3:-"http://127.0.0.1:${LOCKGATE_MOTO_PORT:-5055}"}
S3_BUCKET="lockgate-bench-$$-$RANDOM"
S3_STORE="s3://$S3_BUCKET/snapshots"
# moto takes any credentials; these override a caller's real AWS settings on purpose.
export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
    AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
unset AWS_SESSION_TOKEN AWS_PROFILE
PG_TOOL_ARGS=(-h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")

# ---------------------------------------------------------------- helpers

# The extra databases and the S3 snapshots go before lib.sh's cleanup (the source
# database, the data dir).
EXTRA_DBS=0 BUCKET_MADE=0
S3_IDS=()
snapshot_cleanup() {
    set +e
    if ((EXTRA_DBS)); then
        local db
        for db in "$SMALL_DB" "$DST_DB" "$PGR_DB"; do
            "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
        done
    fi
    if ((BUCKET_MADE)) && [[ ${KEEP_TMP:-0} != 1 ]]; then
        local id
        for id in "${S3_IDS[@]}"; do
            "$LOCKGATE" snapshot delete "$id" --profile "$PROFILE" --store "$S3_STORE" --dir "$DB_DIR" >/dev/null 2>&1
        done
        curl -s -o /dev/null -X DELETE "$S3_ENDPOINT/$S3_BUCKET"
    fi
    cleanup
}
trap snapshot_cleanup EXIT

# fresh_pg DB: a new, empty PostgreSQL database DB, its creation flushed (not timed).
fresh_pg() {
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" 2>/dev/null
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $1" -c "CHECKPOINT"
}

# fresh_sqlite FILE: no database file FILE.
fresh_sqlite() { rm -f "$1" "$1-journal" "$1-wal" "$1-shm"; }

# fp_pg_db DB / fp_sqlite_file FILE: lib.sh's fingerprints of another database.
fp_pg_db() { local BENCH_DB=$1; fp_pg; }
fp_sqlite_file() { local SQ_DB=$1; fp_sqlite; }

# sum_pg DB: the row count and the md5 of every row (every column, NULLs spelled out) in
# key order: catches values moved between rows, which the fingerprint's sums miss.
sum_pg() {
    "${PSQL[@]}" -d "$1" -At -c "SELECT count(*) || ':' || coalesce(md5(string_agg(concat_ws('|', customer_id,
      first_name, last_name, email, coalesce(phone, '<NULL>'), coalesce(city, '<NULL>'), acquisition_date::text,
      coalesce(lifetime_value::text, '<NULL>')), ',' ORDER BY customer_id)), '') FROM customers"
}

# check_pg LABEL DB FP SUM: the restored table's fingerprint must be FP and its ordered
# checksum SUM.
check_pg() {
    local got
    got=$(fp_pg_db "$2" 2>&1) || true
    [[ $got == "$3" ]] || { fail "$1: table fingerprint $got, expected $3 (rows|sum id|cents|chars|non-null|min date|max date)"; return 0; }
    got=$(sum_pg "$2" 2>&1) || true
    [[ $got == "$4" ]] || fail "$1: rows differ from the source's (ordered checksum $got, the source's $4)"
}

# check_sqlite LABEL FILE: the table's fingerprint must be the CSV's.
check_sqlite() {
    local got
    got=$(fp_sqlite_file "$2" 2>&1) || true
    [[ $got == "$EXPECT_FP" ]] || fail "$1: table fingerprint $got, expected $EXPECT_FP (rows|sum id|cents|chars|non-null|min date|max date)"
}

# report_rows REPORT: tables|rows in all|id from a snapshot or restore --json report
# ("?" for what it lacks).
report_rows() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo "?|?|?"
import json, sys
d = json.load(open(sys.argv[1]))
t = d.get("tables") or []
print(len(t), sum(int(x.get("rows") or 0) for x in t), d.get("id", "?"), sep="|")
EOF
}

# check_report LABEL REPORT ROWS: the report must name one table of ROWS rows; sets R_ID.
check_report() {
    local tables rows
    IFS='|' read -r tables rows R_ID < <(report_rows "$2")
    [[ $tables == 1 && $rows == "$3" ]] || fail "$1: report lists $tables table(s), $rows rows; expected 1 table, $3 rows"
    if [[ $R_ID == '?' || $R_ID == None ]]; then
        R_ID=
        fail "$1: report gives no snapshot id"
    fi
}

# folder_bytes DIR: the bytes of every file under DIR.
folder_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
# "?" stands for a figure a failed step did not give; these pass it on
known() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
mb() { if known "$1"; then calc '%.1f' "$1 / 1048576"; else echo '?'; fi; }
kb_mb() { if known "$1"; then calc '%.1f' "$1 / 1024"; else echo '?'; fi; }
ratio_of() { if known "$1" && known "$2"; then ratio "$1" "$2"; else echo '?'; fi; }
goal_of() { if known "$1"; then goal "$1" "$2"; else echo 'n/a'; fi; }
err() { tr '\n' ' ' <"$1" | head -c 400; }

# lg LABEL REPORT ROWS ARGS...: timed `lockgate ARGS... --json` (lib.sh's lockgate_json),
# its report checked for ROWS rows; sets T_* and R_ID (empty when it failed).
lg() {
    local label=$1 report=$2 rows=$3
    shift 3
    R_ID=
    if lockgate_json "$label" "$report" "$@"; then check_report "$label" "$report" "$rows"; fi
}

# ---------------------------------------------------------------- setup

bench_setup snapshot
for c in restore profile; do
    "$LOCKGATE" "$c" --help >/dev/null 2>&1 || { echo "error: $LOCKGATE has no $c command" >&2; exit 2; }
done
for tool in pg_dump pg_restore curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found" >&2; exit 2; }
done
cd "$TMP" # see the header: no lockgate.toml of the caller's
SERVER_VERSION=$("${PSQL[@]}" -d postgres -At -c 'SHOW server_version' | awk '{print $1}')
log "   PostgreSQL $SERVER_VERSION; $(pg_dump --version); $(pg_restore --version); sqlite3 $SQLITE_VERSION"

log "-- S3: $S3_ENDPOINT"
if ! curl -s -o /dev/null --max-time 2 "$S3_ENDPOINT/"; then
    if [[ -n ${LOCKGATE_TEST_S3:-} ]]; then
        echo "error: nothing answers at LOCKGATE_TEST_S3=$S3_ENDPOINT; start the server or unset it" >&2
        exit 2
    fi
    bash "$ROOT/.ci/moto.sh" >"$TMP/moto.out" 2>&1 || { cat "$TMP/moto.out" >&2; echo "error: .ci/moto.sh could not start moto" >&2; exit 2; }
    log "   $(tail -n 1 "$TMP/moto.out")"
fi
code=$(curl -s -o "$TMP/bucket.out" -w '%{http_code}' -X PUT "$S3_ENDPOINT/$S3_BUCKET") || code=000
[[ $code == 200 ]] || { echo "error: creating bucket $S3_BUCKET at $S3_ENDPOINT answered $code: $(err "$TMP/bucket.out")" >&2; exit 2; }
BUCKET_MADE=1
log "   bucket $S3_BUCKET, store $S3_STORE"

log "-- generating $ROWS customers and loading them (psql \\copy, not timed)"
python3 "$GEN" "$ROWS" --out "$CLEAN"
EXPECT_FP=$(fp_file csv "$CLEAN")
head -n $((SMALL + 1)) "$CLEAN" >"$TMP/customers_small.csv"
SMALL_FP=$(fp_file csv "$TMP/customers_small.csv")
create_db pg >/dev/null
EXTRA_DBS=1
create_table pg
native_pg "setup: loading lockgate_bench"
check_fp pg "setup: lockgate_bench" || { echo "error: the source table is not the CSV's" >&2; exit 2; }
"${PSQL[@]}" -d "$BENCH_DB" -c "VACUUM ANALYZE customers"
SOURCE_SUM=$(sum_pg "$BENCH_DB")
fresh_pg "$SMALL_DB" >/dev/null
{ python3 "$GEN" --schema postgres; echo "\\copy customers FROM '$TMP/customers_small.csv' csv header"; echo "VACUUM ANALYZE customers;"; } |
    "${PSQL[@]}" -d "$SMALL_DB" >/dev/null
[[ $(fp_pg_db "$SMALL_DB") == "$SMALL_FP" ]] || { echo "error: the small source table is not its CSV's" >&2; exit 2; }
SMALL_SUM=$(sum_pg "$SMALL_DB")
"${PSQL[@]}" -d "$BENCH_DB" -c "\\copy customers TO '$EXPORT_CSV' csv"
SQ_DDL=$(python3 "$GEN" --schema sqlite)
if ((SQLITE_HAS_SKIP)); then SQ_IMPORT=".import --csv \"$EXPORT_CSV\" customers"; else SQ_IMPORT=".import \"$EXPORT_CSV\" customers"; fi
"${PSQL[@]}" -d postgres -c "CHECKPOINT"
log "   $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP); export for .import $(du -h "$EXPORT_CSV" | cut -f1)"

if ! "$LOCKGATE" profile create "$PROFILE" --store "$STORE" --dir "$DB_DIR" >"$TMP/profile.out" 2>&1; then
    echo "error: lockgate profile create failed: $(err "$TMP/profile.out")" >&2
    exit 2
fi
log "   profile $PROFILE: $(err "$TMP/profile.out")"
LG_COMMON=(--profile "$PROFILE" --dir "$DB_DIR")

# ---------------------------------------------------------------- steps

# Each step appends its time (and lockgate's peak RSS and CPU) to its lists; LINE
# collects the run's log line. A restore uses the newest snapshot / dump taken (run 1
# runs in order, so both exist before any restore).
SNAP_ID='' S3_ID=''
step_dump() {
    rm -f "$DUMP"
    timed pg_dump "${PG_TOOL_ARGS[@]}" -Fc -t customers -f "$DUMP" "$BENCH_DB" >"$TMP/dump.out" 2>&1
    if ((T_RC != 0)); then
        fail "pg_dump run $1: exited $T_RC: $(err "$TMP/dump.out")"
        LINE+="${LINE:+, }pg_dump failed"
        return 0
    fi
    DUMP_S+=("$T_S") DUMP_BYTES+=("$(stat -c %s "$DUMP")")
    LINE+="${LINE:+, }pg_dump ${T_S}s ($(mb "${DUMP_BYTES[-1]}") MB)"
}

step_snap() {
    local label="snapshot create run $1"
    lg "$label" "$TMP/snap_$1.json" "$ROWS" snapshot create --db "$PG_URL" "${LG_COMMON[@]}" --store "$STORE" --tables customers
    if [[ -n $R_ID ]]; then
        SNAP_S+=("$T_S") SNAP_KB+=("$T_KB") SNAP_CPU+=("$T_CPU")
        SNAP_ID=$R_ID
        SNAP_BYTES+=("$(folder_bytes "$STORE/$PROFILE/$SNAP_ID")")
        ((${SNAP_BYTES[-1]} > 0)) || fail "$label: no files in $STORE/$PROFILE/$SNAP_ID"
        LINE+="${LINE:+, }snapshot ${T_S}s ($(mb "${SNAP_BYTES[-1]}") MB, $(kb_mb "$T_KB") MB RSS)"
    else
        LINE+="${LINE:+, }snapshot failed"
    fi
}

step_s3() {
    lg "snapshot create to S3 run $1" "$TMP/s3_$1.json" "$ROWS" snapshot create --db "$PG_URL" "${LG_COMMON[@]}" --store "$S3_STORE" --tables customers
    if [[ -z $R_ID ]]; then
        LINE+="${LINE:+, }S3 snapshot failed"
        return 0
    fi
    S3_S+=("$T_S") S3_KB+=("$T_KB") S3_ID=$R_ID S3_IDS+=("$R_ID")
    LINE+="${LINE:+, }S3 snapshot ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
}

step_pgrestore() {
    fresh_pg "$PGR_DB" >/dev/null
    timed pg_restore "${PG_TOOL_ARGS[@]}" -d "$PGR_DB" "$DUMP" >"$TMP/pgrestore.out" 2>&1
    if ((T_RC != 0)); then
        fail "pg_restore run $1: exited $T_RC: $(err "$TMP/pgrestore.out")"
        LINE+="${LINE:+, }pg_restore failed"
        return 0
    fi
    check_pg "pg_restore run $1" "$PGR_DB" "$EXPECT_FP" "$SOURCE_SUM"
    PGR_S+=("$T_S")
    LINE+="${LINE:+, }pg_restore ${T_S}s"
}

step_restore() {
    local label="restore into PostgreSQL run $1"
    fresh_pg "$DST_DB" >/dev/null
    if [[ -z $SNAP_ID ]]; then fail "$label: not run, no snapshot taken"; return 0; fi
    lg "$label" "$TMP/restore_$1.json" "$ROWS" restore "${LG_COMMON[@]}" --store "$STORE" --id "$SNAP_ID" --into "$(pg_url "$DST_DB")"
    if ((T_RC != 0)); then
        LINE+="${LINE:+, }restore failed"
        return 0
    fi
    check_pg "$label" "$DST_DB" "$EXPECT_FP" "$SOURCE_SUM"
    RESTORE_S+=("$T_S") RESTORE_KB+=("$T_KB") RESTORE_CPU+=("$T_CPU")
    LINE+="${LINE:+, }restore ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
}

step_import() {
    fresh_sqlite "$SQ_NATIVE"
    timed sqlite3 "$SQ_NATIVE" ".bail on" "$SQ_DDL" ".mode csv" "$SQ_IMPORT" >"$TMP/import.out" 2>&1
    if ((T_RC != 0)); then
        fail "sqlite3 .import run $1: exited $T_RC: $(err "$TMP/import.out")"
        LINE+="${LINE:+, }.import failed"
        return 0
    fi
    IMPORT_S+=("$T_S")
    # .import stores an empty field as '', psql's CSV NULL: made NULL again, not timed
    sqlite3 "$SQ_NATIVE" "UPDATE customers SET phone = NULLIF(phone, ''), city = NULLIF(city, ''),
      lifetime_value = NULLIF(lifetime_value, '') WHERE phone = '' OR city = '' OR lifetime_value = ''"
    check_sqlite "sqlite3 .import run $1" "$SQ_NATIVE"
    LINE+="${LINE:+, }.import ${T_S}s"
}

step_sqlite() {
    local label="restore into SQLite run $1"
    fresh_sqlite "$SQ_LG"
    if [[ -z $SNAP_ID ]]; then fail "$label: not run, no snapshot taken"; return 0; fi
    lg "$label" "$TMP/sqlite_$1.json" "$ROWS" restore "${LG_COMMON[@]}" --store "$STORE" --id "$SNAP_ID" --into "sqlite://$SQ_LG"
    if ((T_RC != 0)); then
        LINE+="${LINE:+, }restore into SQLite failed"
        return 0
    fi
    check_sqlite "$label" "$SQ_LG"
    SQLITE_S+=("$T_S") SQLITE_KB+=("$T_KB") SQLITE_CPU+=("$T_CPU")
    LINE+="${LINE:+, }restore into SQLite ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
}

# the snapshot and restore of ROWS/10 rows, for their peak RSS
step_small() {
    local label="snapshot create of $SMALL rows run $1"
    lg "$label" "$TMP/small_$1.json" "$SMALL" snapshot create --db "$(pg_url "$SMALL_DB")" "${LG_COMMON[@]}" --store "$STORE_SMALL" --tables customers
    if [[ -z $R_ID ]]; then
        LINE+=", $SMALL rows: snapshot failed"
        return 0
    fi
    SMALL_SNAP_S+=("$T_S") SMALL_SNAP_KB+=("$T_KB")
    LINE+=", $SMALL rows: snapshot ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
    label="restore of $SMALL rows run $1"
    fresh_pg "$DST_DB" >/dev/null
    lg "$label" "$TMP/small_restore_$1.json" "$SMALL" restore "${LG_COMMON[@]}" --store "$STORE_SMALL" --id "$R_ID" --into "$(pg_url "$DST_DB")"
    if ((T_RC != 0)); then
        LINE+=", restore failed"
        return 0
    fi
    check_pg "$label" "$DST_DB" "$SMALL_FP" "$SMALL_SUM"
    SMALL_RESTORE_S+=("$T_S") SMALL_RESTORE_KB+=("$T_KB")
    LINE+=", restore ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
}

DUMP_S=() DUMP_BYTES=() SNAP_S=() SNAP_KB=() SNAP_CPU=() SNAP_BYTES=() S3_S=() S3_KB=()
PGR_S=() RESTORE_S=() RESTORE_KB=() RESTORE_CPU=() IMPORT_S=() SQLITE_S=() SQLITE_KB=() SQLITE_CPU=()
SMALL_SNAP_S=() SMALL_SNAP_KB=() SMALL_RESTORE_S=() SMALL_RESTORE_KB=()
log "-- PostgreSQL $SERVER_VERSION, $ROWS rows (and $SMALL rows for memory)"
for ((i = 1; i <= RUNS; i++)); do
    steps=(dump snap s3 pgrestore restore import sqlite)
    if ((i % 2 == 0)); then mapfile -t steps < <(printf '%s\n' "${steps[@]}" | tac); fi
    ((SMALL > 0)) && steps+=(small)
    LINE=
    for s in "${steps[@]}"; do "step_$s" "$i"; done
    log "   run $i/$RUNS: $LINE"
done

# the last S3 snapshot must restore to the source's rows (a check; its time is logged only)
if [[ -n $S3_ID ]]; then
    fresh_pg "$DST_DB" >/dev/null
    lg "restore from S3" "$TMP/s3_restore.json" "$ROWS" restore "${LG_COMMON[@]}" --store "$S3_STORE" --id "$S3_ID" --into "$(pg_url "$DST_DB")"
    if ((T_RC == 0)); then check_pg "restore from S3" "$DST_DB" "$EXPECT_FP" "$SOURCE_SUM"; fi
    log "   restore from S3 into PostgreSQL (checked, not compared): ${T_S}s ($(kb_mb "$T_KB") MB RSS)"
else
    fail "restore from S3: not run, no S3 snapshot taken"
fi

# ---------------------------------------------------------------- report

SNAP_GOAL=1.0
SIZE_GOAL=1.0
RESTORE_GOAL=1.5
SQLITE_GOAL=1.5
RSS_GOAL_MB=150
FLAT_GOAL=1.5

# med LIST...: the median, "?" for an empty list (a step that never ran)
med() { if (($#)); then median "$@"; else echo '?'; fi; }
mx() { if (($#)); then max "$@"; else echo "?"; fi; }

results_header "$ROWS rows of customers on PostgreSQL $SERVER_VERSION"
echo "(ratio = lockgate's time / the native tool's; RSS = lockgate's peak, the max over the runs; CPU = its user+sys s)"
printf '%-26s %-16s %9s %11s %7s %-12s %7s %-9s %6s\n' step native "native s" "lockgate s" ratio goal "RSS MB" "RSS goal" "CPU s"
row() { # LABEL NATIVE NATIVE_S LG_S GOAL KB CPU
    local r m
    r=$(ratio_of "$4" "$3")
    m=$(kb_mb "$6")
    printf '%-26s %-16s %9s %11s %6sx %-12s %7s %-9s %6s\n' "$1" "$2" "$3" "$4" "$r" "<=${5}x $(goal_of "$r" "$5")" \
        "$m" "<=$RSS_GOAL_MB $(goal_of "$m" "$RSS_GOAL_MB")" "$7"
}
row "snapshot create" "pg_dump -Fc" "$(med "${DUMP_S[@]}")" "$(med "${SNAP_S[@]}")" "$SNAP_GOAL" "$(mx "${SNAP_KB[@]}")" "$(med "${SNAP_CPU[@]}")"
row "restore into PostgreSQL" "pg_restore" "$(med "${PGR_S[@]}")" "$(med "${RESTORE_S[@]}")" "$RESTORE_GOAL" "$(mx "${RESTORE_KB[@]}")" "$(med "${RESTORE_CPU[@]}")"
row "restore into SQLite" "sqlite3 .import" "$(med "${IMPORT_S[@]}")" "$(med "${SQLITE_S[@]}")" "$SQLITE_GOAL" "$(mx "${SQLITE_KB[@]}")" "$(med "${SQLITE_CPU[@]}")"
echo
folder_med=$(med "${SNAP_S[@]}") s3_med=$(med "${S3_S[@]}")
echo "Snapshot to S3 (moto at $S3_ENDPOINT) vs to a folder: ${s3_med}s vs ${folder_med}s, $(ratio_of "$s3_med" "$folder_med")x (no goal), S3 RSS $(kb_mb "$(mx "${S3_KB[@]}")") MB"
snap_bytes=$(med "${SNAP_BYTES[@]}") dump_bytes=$(med "${DUMP_BYTES[@]}")
if known "$snap_bytes"; then snap_bytes=$(calc '%.0f' "$snap_bytes"); fi # a median of two is their mean
if known "$dump_bytes"; then dump_bytes=$(calc '%.0f' "$dump_bytes"); fi
sr=$(ratio_of "$snap_bytes" "$dump_bytes")
echo "Size: snapshot $(mb "$snap_bytes") MB ($snap_bytes bytes, every file of its folder) vs pg_dump -Fc $(mb "$dump_bytes") MB ($dump_bytes bytes): ${sr}x (goal <=${SIZE_GOAL}x $(goal_of "$sr" "$SIZE_GOAL"))"
if ((SMALL > 0)); then
    for what in snapshot restore; do
        if [[ $what == snapshot ]]; then
            small_kb=$(mx "${SMALL_SNAP_KB[@]}") big_kb=$(mx "${SNAP_KB[@]}") small_s=$(med "${SMALL_SNAP_S[@]}") name="snapshot create"
        else
            small_kb=$(mx "${SMALL_RESTORE_KB[@]}") big_kb=$(mx "${RESTORE_KB[@]}") small_s=$(med "${SMALL_RESTORE_S[@]}") name="restore into PostgreSQL"
        fi
        small_mb=$(kb_mb "$small_kb") big_mb=$(kb_mb "$big_kb")
        f=$(ratio_of "$big_mb" "$small_mb")
        printf 'Memory, %s: peak RSS %s MB at %s rows (%ss), %s MB at %s rows: %sx (flat: <=%sx %s; <=%s MB %s)\n' "$name" \
            "$small_mb" "$SMALL" "$small_s" "$big_mb" "$ROWS" "$f" "$FLAT_GOAL" "$(goal_of "$f" "$FLAT_GOAL")" "$RSS_GOAL_MB" "$(goal_of "$big_mb" "$RSS_GOAL_MB")"
    done
fi
correctness "every step exits 0, reports and restored tables match the source (fingerprint, ordered checksum), the S3 snapshot restores"
