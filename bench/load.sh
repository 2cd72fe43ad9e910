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
# The settings, helpers and native loads it shares with bench/migrate.sh are in bench/lib.sh.
set -euo pipefail

ROWS=${ROWS:-1000000} # this script's default; lib.sh sets the rest
BAD_FRACTION=0.001
FAULTS=null,dup,check

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- helpers

# check_report LABEL FILE ROWS: a clean lockgate --json report must say all rows inserted.
check_report() {
    local label=$1 file=$2 rows=$3 line
    line=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows_read"], d["inserted"], len(d["failed"]), str(d["committed"]).lower())' "$file" 2>/dev/null) ||
        { fail "$label: no JSON report ($(head -c 300 "$file"))"; return 1; }
    [[ $line == "$rows $rows 0 true" ]] || { fail "$label: report rows_read/inserted/failed/committed = $line, expected $rows $rows 0 true"; return 1; }
}

# lockgate_load LABEL URL FILE REPORT: timed lockgate load; sets T_*; checks exit status 0.
lockgate_load() { lockgate_json "$1" "$4" load --db "$2" --table customers "$3"; }

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

bench_setup load

log "-- generating data"
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
EXPECT_FP=$(fp_file csv "$CLEAN")
sqlite_import_setup
log "   clean:  $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP)"
log "   faulty: $BAD ($FAULTY faulty rows)"

declare -A NATIVE_MED LG_MED LG_RSS LG_CPU F_TIME F_REP F_LEFT_ROWS F_RSS

# ---------------------------------------------------------------- PostgreSQL

bench_pg() {
    engine_log pg
    create_db pg
    local n=() l=() r=() c=() i
    for ((i = 1; i <= RUNS; i++)); do
        create_table pg
        native_pg "pg native run $i"
        n+=("$T_S")
        check_fp pg "pg native run $i" || true
        local ns=$T_S

        create_table pg
        if lockgate_load "pg lockgate run $i" "$PG_URL" "$CLEAN" "$TMP/pg_$i.json"; then
            check_report "pg lockgate run $i" "$TMP/pg_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_fp pg "pg lockgate run $i" || true
        log "   run $i/$RUNS: \\copy ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[pg]=$(median "${n[@]}") LG_MED[pg]=$(median "${l[@]}") LG_RSS[pg]=$(median "${r[@]}") LG_CPU[pg]=$(median "${c[@]}")

    create_table pg
    timed "$LOCKGATE" load --db "$PG_URL" --table customers "$BAD" --json >"$TMP/pg_bad.json" 2>"$TMP/pg_bad.json.err"
    faulty_check "pg faulty" "$TMP/pg_bad.json" "$("${PSQL[@]}" -d "$BENCH_DB" -At -c 'SELECT count(*) FROM customers')"
    F_TIME[pg]=$T_S F_REP[pg]=$F_REPORTED F_LEFT_ROWS[pg]=$F_LEFT F_RSS[pg]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"

    create_table pg
    if lockgate_load "pg lockgate 100k" "$PG_URL" "$TMP/customers_100k.csv" "$TMP/pg_100k.json"; then
        check_report "pg lockgate 100k" "$TMP/pg_100k.json" "$RSS_ROWS" || true
    fi
    RSS_100K=$T_KB RSS_100K_S=$T_S
    log "   100k rows: ${T_S}s, $((T_KB / 1024)) MB"
    create_table pg
    if lockgate_load "pg lockgate half" "$PG_URL" "$TMP/customers_half.csv" "$TMP/pg_half.json"; then
        check_report "pg lockgate half" "$TMP/pg_half.json" "$HALF_ROWS" || true
    fi
    RSS_HALF=$T_KB
    log "   $HALF_ROWS rows: ${T_S}s, $((T_KB / 1024)) MB"
    drop_db pg
}

# ---------------------------------------------------------------- MariaDB

bench_mariadb() {
    engine_log mariadb
    create_db mariadb
    local n=() l=() r=() c=() i
    for ((i = 1; i <= RUNS; i++)); do
        create_table mariadb
        native_mariadb "mariadb native run $i"
        n+=("$T_S")
        check_fp mariadb "mariadb native run $i" || true
        local ns=$T_S

        create_table mariadb
        if lockgate_load "mariadb lockgate run $i" "$MY_URL" "$CLEAN" "$TMP/my_$i.json"; then
            check_report "mariadb lockgate run $i" "$TMP/my_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_fp mariadb "mariadb lockgate run $i" || true
        log "   run $i/$RUNS: LOAD DATA ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[mariadb]=$(median "${n[@]}") LG_MED[mariadb]=$(median "${l[@]}") LG_RSS[mariadb]=$(median "${r[@]}") LG_CPU[mariadb]=$(median "${c[@]}")

    create_table mariadb
    timed "$LOCKGATE" load --db "$MY_URL" --table customers "$BAD" --json >"$TMP/my_bad.json" 2>"$TMP/my_bad.json.err"
    faulty_check "mariadb faulty" "$TMP/my_bad.json" "$("${MARIADB[@]}" -N -B "$BENCH_DB" -e 'SELECT count(*) FROM customers')"
    F_TIME[mariadb]=$T_S F_REP[mariadb]=$F_REPORTED F_LEFT_ROWS[mariadb]=$F_LEFT F_RSS[mariadb]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"
    drop_db mariadb
}

# ---------------------------------------------------------------- SQLite

bench_sqlite() {
    engine_log sqlite
    local n=() l=() r=() c=() i
    for ((i = 1; i <= RUNS; i++)); do
        create_table sqlite
        native_sqlite "sqlite native run $i"
        n+=("$T_S")
        check_fp sqlite "sqlite native run $i" || true
        local ns=$T_S

        create_table sqlite
        if lockgate_load "sqlite lockgate run $i" "sqlite://$SQ_DB" "$CLEAN" "$TMP/sq_$i.json"; then
            check_report "sqlite lockgate run $i" "$TMP/sq_$i.json" "$ROWS" || true
        fi
        l+=("$T_S") r+=("$T_KB") c+=("$T_CPU")
        check_fp sqlite "sqlite lockgate run $i" || true
        log "   run $i/$RUNS: .import ${ns}s, lockgate ${T_S}s (CPU ${T_CPU}s), $((T_KB / 1024)) MB"
    done
    NATIVE_MED[sqlite]=$(median "${n[@]}") LG_MED[sqlite]=$(median "${l[@]}") LG_RSS[sqlite]=$(median "${r[@]}") LG_CPU[sqlite]=$(median "${c[@]}")

    create_table sqlite
    timed "$LOCKGATE" load --db "sqlite://$SQ_DB" --table customers "$BAD" --json >"$TMP/sq_bad.json" 2>"$TMP/sq_bad.json.err"
    faulty_check "sqlite faulty" "$TMP/sq_bad.json" "$(sqlite3 "$SQ_DB" 'SELECT count(*) FROM customers')"
    F_TIME[sqlite]=$T_S F_REP[sqlite]=$F_REPORTED F_LEFT_ROWS[sqlite]=$F_LEFT F_RSS[sqlite]=$T_KB
    log "   faulty: ${T_S}s, exit $T_RC, $F_REPORTED/$FAULTY rows reported, $F_LEFT rows left"
    drop_db sqlite
}

# ---------------------------------------------------------------- run

bench_engine() { "bench_$1"; }
run_engines bench_engine

# ---------------------------------------------------------------- report

declare -A RATIO_GOAL=([pg]=1.3 [mariadb]=1.3 [sqlite]=1.5)
RSS_GOAL_MB=100
FAULTY_GOAL=2

results_header "$ROWS rows"
echo "Clean file (ratio = lockgate / native; rows/s, RSS and CPU s (user+sys, client only) are lockgate's)"
printf '%-11s %-11s %9s %10s %7s %-14s %10s %7s %-12s %6s\n' engine native "native s" "lockgate s" ratio "ratio goal" "rows/s" "RSS MB" "RSS goal" "CPU s"
for e in pg mariadb sqlite; do
    [[ -n ${STATUS[$e]:-} ]] || continue
    ratio=$(ratio "${LG_MED[$e]}" "${NATIVE_MED[$e]}")
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
    fr=$(ratio "${F_TIME[$e]}" "${LG_MED[$e]}")
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
correctness "row counts and contents, faulty rows reported, nothing left behind"
