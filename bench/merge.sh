#!/usr/bin/env bash
# bench/merge.sh: how fast `lockgate merge` re-points every row that references some
# customers (the sources) to another customer (the target), compared with the floor,
# the bare UPDATEs that do the same in one transaction; how fast its preview and its
# undo are; and whether its memory stays flat as the number of moved rows grows.
#
# Data, built at setup for every timed step (never timed): a fresh database holding
#   * `customers`: CUSTOMERS rows from the generator (its --schema DDL), loaded natively
#     (psql \copy, LOAD DATA LOCAL, as in bench/load.sh);
#   * `ref_01` .. `ref_10`: (id bigint PRIMARY KEY, customer_id bigint NOT NULL
#     REFERENCES customers (customer_id), payload text, n int), an index on customer_id,
#     generated in SQL (PostgreSQL generate_series, MariaDB a recursive CTE). The sources,
#     customers 1, 2 and 3, own ROWS rows in all, spread evenly over the 10 tables (odd
#     ids, taking the sources in turn); as many rows again (even ids) belong to customers
#     4 .. CUSTOMERS, the target 4 among them. n = id, and ref_10 also has
#     UNIQUE (customer_id, n): merge's conflict detection has a unique key to check, and
#     no conflict to find (n differs between the sources' and the target's rows).
# What it measures, per engine (PostgreSQL, MariaDB), RUNS times each, alternating (the
# order reversed on even runs), the MEDIAN wall time reported, plus lockgate's peak RSS
# (the max over the runs; /usr/bin/time -f '%e %M %U %S'):
#   * floor: in one transaction, `UPDATE ref_XX SET customer_id = 4 WHERE customer_id IN
#     (1,2,3)` for each of the 10 tables (`psql -1 -f`, or `mariadb -e "START TRANSACTION;
#     ...; COMMIT;"`);
#   * preview: `lockgate merge --db URL --table customers --from 1,2,3 --into 4 --preview
#     --json`, its output (every change) discarded;
#   * merge: the same without --preview (before-images, history), then its undo:
#     `lockgate merge undo ID --db URL --json`, right after it, on the same data;
#   * the merge's peak RSS at ROWS/10 moved rows as well as at ROWS (once per run).
# Goals are printed next to the figures (merge <= 2x floor, preview <= 1x floor, undo
# <= 2x floor, peak RSS <= 150 MB, and flat: at ROWS <= 1.5x at ROWS/10). Slow timings
# never fail the script; correctness failures do: the floor and the merge must each leave
# no row referencing a source and the target owning exactly the sources' rows in every
# table; the merge must exit 0 with its --json report saying status `completed`, giving
# an id, and listing for each ref table as many rows as the floor moved; the preview must
# exit 0 and change nothing; the undo must exit 0, its report say `undone` and list the
# same rows per table, and it must leave every table (customers and the ref tables) with
# the checksum it had before the merge. The script then exits 1 after printing the
# report. Without a `merge` command in the binary (`$LOCKGATE merge --help` failing), it
# runs the setup and the floor only, prints their figures and exits 2. lockgate's own
# --timeout (60 s unless TIMEOUT is given) still applies: a step exceeding it exits 2 and
# counts as a failed check (the message names the timeout); raise TIMEOUT to measure it.
#
# Run from anywhere (needs the local servers: PostgreSQL on 127.0.0.1:5432 as user postgres,
# MariaDB on 127.0.0.1:3306 as root, both without password; python3, psql, mariadb):
#     bench/merge.sh                        # 1,000,000 moved rows, 3 runs
#     ROWS=100000 RUNS=1 bench/merge.sh     # quick check
# Other knobs: ENGINES="pg mariadb" (subset; commas work too), CUSTOMERS=10000 (rows of
# the customers table, at least 5), TIMEOUT=10m (lockgate's --timeout for merge, preview
# and undo; its default is 60 s), LOCKGATE=PATH (run that binary, build nothing),
# GEN=PATH (the customers generator), KEEP_TMP=1 (keep the data dir).
# It creates and drops the database `lockgate_bench` on both servers; generated files go
# to a mktemp directory that is removed at the end. lockgate runs in that directory, so
# that a lockgate.toml where the script is started cannot change the merges.
# The settings and helpers it shares with the other scripts are in bench/lib.sh.
set -euo pipefail

ROWS=${ROWS:-1000000} # this script's default; lib.sh sets the rest
ENGINES=${ENGINES:-"pg mariadb"}
ENGINES=${ENGINES//,/ }
CUSTOMERS=${CUSTOMERS:-10000}
SOURCES=1,2,3
TARGET=4
TABLES=10
UNIQUE_TABLE=ref_10

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "$CUSTOMERS" in '' | *[!0-9]*) echo "CUSTOMERS must be a positive integer" >&2; exit 2 ;; esac
# the sources, the target and at least one other customer
((CUSTOMERS >= 5)) || { echo "CUSTOMERS must be at least 5" >&2; exit 2; }
for e in $ENGINES; do
    case $e in
        pg | postgres | postgresql | mariadb | mysql) ;;
        *) echo "unknown engine $e: ENGINES takes pg and mariadb" >&2; exit 2 ;;
    esac
done

REF_TABLES=()
for ((t = 1; t <= TABLES; t++)); do REF_TABLES+=("$(printf 'ref_%02d' "$t")"); done
SMALL=$((ROWS / 10))
declare -A URL=([pg]=$PG_URL [mariadb]=$MY_URL)
MERGE_ARGS=(--table customers --from "$SOURCES" --into "$TARGET")
# lockgate's --timeout for merge, preview and undo (its default, 60 s, when not given)
TIMEOUT_ARGS=()
if [[ -n ${TIMEOUT:-} ]]; then TIMEOUT_ARGS=(--timeout "$TIMEOUT"); fi

# ---------------------------------------------------------------- helpers

# sql ENGINE [QUERY]: runs QUERY (else standard input) in lockgate_bench; a query's rows
# come out one per line, columns separated by '|'.
sql() {
    case $1 in
        pg) "${PSQL[@]}" -d "$BENCH_DB" -At -F'|' ${2:+-c "$2"} ;;
        mariadb) "${MARIADB[@]}" -N -B "$BENCH_DB" ${2:+-e "$2"} | tr '\t' '|' ;;
    esac
}

# per_table N T: how many of N source rows table number T (1-based) holds.
per_table() { echo $(($1 / TABLES + ($2 <= $1 % TABLES ? 1 : 0))); }

# ref_sql ENGINE N: the SQL that creates and fills the ref tables, N source rows in all.
# Row i of a table belongs to a source when i is odd (the sources in turn), else to one of
# the customers TARGET .. CUSTOMERS (in turn); n = i.
ref_sql() {
    local e=$1 n=$2 i rows tab src other
    if [[ $e == pg ]]; then
        src="((i - 1) / 2) % 3 + 1"
        other="$TARGET + (i / 2 - 1) % ($CUSTOMERS - $TARGET + 1)"
    else
        src="((i - 1) DIV 2) MOD 3 + 1"
        other="$TARGET + (i DIV 2 - 1) MOD ($CUSTOMERS - $TARGET + 1)"
        rows=$((2 * $(per_table "$n" 1)))
        # a numbers table for INSERT ... SELECT (the server allows 1000 recursions by default)
        echo "SET SESSION max_recursive_iterations = $((rows + 10));"
        echo "CREATE TEMPORARY TABLE seq (i bigint PRIMARY KEY);"
        echo "INSERT INTO seq WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $rows) SELECT i FROM s WHERE $rows > 0;"
    fi
    for ((i = 1; i <= TABLES; i++)); do
        tab=${REF_TABLES[i - 1]}
        rows=$((2 * $(per_table "$n" "$i")))
        if [[ $e == pg ]]; then
            # filled first, then indexed and constrained: faster than row by row
            echo "CREATE TABLE $tab (id bigint PRIMARY KEY, customer_id bigint NOT NULL, payload text, n int);"
            echo "INSERT INTO $tab SELECT i, CASE WHEN i % 2 = 1 THEN $src ELSE $other END, md5(i::text), i FROM generate_series(1, $rows) AS g(i);"
            echo "CREATE INDEX ${tab}_customer_id ON $tab (customer_id);"
            echo "ALTER TABLE $tab ADD FOREIGN KEY (customer_id) REFERENCES customers (customer_id);"
            if [[ $tab == "$UNIQUE_TABLE" ]]; then echo "ALTER TABLE $tab ADD UNIQUE (customer_id, n);"; fi
        else
            echo "CREATE TABLE $tab (id bigint PRIMARY KEY, customer_id bigint NOT NULL, payload text, n int,
              KEY ${tab}_customer_id (customer_id),$([[ $tab == "$UNIQUE_TABLE" ]] && echo " UNIQUE KEY ${tab}_customer_n (customer_id, n),")
              FOREIGN KEY (customer_id) REFERENCES customers (customer_id)) ENGINE=InnoDB;"
            echo "INSERT INTO $tab SELECT i, CASE WHEN i MOD 2 = 1 THEN $src ELSE $other END, MD5(i), i FROM seq WHERE i <= $rows;"
        fi
    done
    if [[ $e == pg ]]; then
        echo "VACUUM ANALYZE;"
        echo "CHECKPOINT;" # as lib.sh's create_table: the setup's writes are not flushed in a timed step
    else
        echo "ANALYZE TABLE customers, $(IFS=,; echo "${REF_TABLES[*]}");"
    fi
}

# counts ENGINE: one line per ref table: table|rows of the sources|rows of the target|rows.
counts() {
    local t q=
    for t in "${REF_TABLES[@]}"; do
        q+="${q:+ UNION ALL }SELECT '$t', count(CASE WHEN customer_id IN ($SOURCES) THEN 1 END),
          count(CASE WHEN customer_id = $TARGET THEN 1 END), count(*) FROM $t"
    done
    sql "$1" "$q ORDER BY 1"
}

# checksums ENGINE: one line per table (customers and the ref tables): table|checksum of
# every row in key order (PostgreSQL: md5 of the rows' text; MariaDB: the sum of each
# row's CRC32, the row holding its key), with the row count.
checksums() {
    local t q
    if [[ $1 == pg ]]; then
        q="SELECT 'customers', count(*) || ':' || coalesce(md5(string_agg(c::text, ',' ORDER BY customer_id)), '') FROM customers c"
        for t in "${REF_TABLES[@]}"; do
            q+=" UNION ALL SELECT '$t', count(*) || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY id)), '') FROM $t r"
        done
    else
        q="SELECT 'customers', CONCAT(count(*), ':', coalesce(sum(CRC32(CONCAT_WS('|', customer_id, first_name, last_name, email,
          coalesce(phone, '<NULL>'), coalesce(city, '<NULL>'), acquisition_date, coalesce(lifetime_value, '<NULL>')))), 0)) FROM customers"
        for t in "${REF_TABLES[@]}"; do
            q+=" UNION ALL SELECT '$t', CONCAT(count(*), ':', coalesce(sum(CRC32(CONCAT_WS('|', id, customer_id, payload, n))), 0)) FROM $t"
        done
    fi
    sql "$1" "$q ORDER BY 1" # a UNION ALL's order is the plan's (PostgreSQL may run it in parallel)
}

# fresh ENGINE N LABEL: a new lockgate_bench (so a fresh ledger too) with the customers and
# the ref tables, N source rows in all; not timed. Sets MOVE[table] (the sources' rows,
# which the floor and the merge must move), TGT[table] (the target's rows) and
# TOTAL[table]. A setup that is not as designed stops the script (exit 2).
declare -A MOVE TGT TOTAL
fresh() {
    local e=$1 n=$2 label=$3 t src tgt total i=0 start=$SECONDS
    create_db "$e" >/dev/null
    create_table "$e"
    "native_$e" "$label: setup, customers"
    check_fp "$e" "$label: setup, customers" || { echo "error: $label: the customers table is not the CSV's" >&2; exit 2; }
    ref_sql "$e" "$n" | sql "$e" >"$TMP/setup.out" 2>&1 ||
        { echo "error: $label: creating the ref tables failed: $(head -c 400 "$TMP/setup.out")" >&2; exit 2; }
    while IFS='|' read -r t src tgt total; do
        i=$((i + 1))
        if [[ $t != "${REF_TABLES[i - 1]}" || $src != $(per_table "$n" "$i") || $total != $((2 * src)) ]]; then
            echo "error: $label: setup made $t with $src source rows and $total rows, expected ${REF_TABLES[i - 1]} with $(per_table "$n" "$i") and twice as many" >&2
            exit 2
        fi
        MOVE[$t]=$src TGT[$t]=$tgt TOTAL[$t]=$total
    done < <(counts "$e")
    ((i == TABLES)) || { echo "error: $label: setup made $i ref tables, expected $TABLES" >&2; exit 2; }
    SETUP_S=$((SECONDS - start))
}

# check_moved ENGINE LABEL: after a floor or a merge, no row references a source, and in
# every table the target owns its own rows plus the sources' (MOVE) and no row was lost.
check_moved() {
    local e=$1 label=$2 t src tgt total bad=()
    while IFS='|' read -r t src tgt total; do
        [[ $src == 0 && $tgt == $((TGT[$t] + MOVE[$t])) && $total == "${TOTAL[$t]}" ]] ||
            bad+=("$t: $src rows of the sources, $tgt of the target, $total in all (expected 0, $((TGT[$t] + MOVE[$t])), ${TOTAL[$t]})")
    done < <(counts "$e")
    ((${#bad[@]} == 0)) || fail "$label: $(IFS=';'; echo "${bad[*]}")"
}

# check_same ENGINE LABEL BEFORE: every table's checksum must equal the one in the file BEFORE.
check_same() {
    local now="$TMP/checksums.now"
    checksums "$1" >"$now"
    cmp -s "$3" "$now" ||
        fail "$2: tables changed: $(diff "$3" "$now" | sed -n 's/^[<>] \([^|]*\)|.*/\1/p' | sort -u | paste -sd ' ')"
}

# report_summary REPORT: status|id|table=rows ...|table(columns) ... from a --json report
# of merge or undo ("?" for what it lacks); a table listed more than once (a reference
# through several columns) has its rows summed.
report_summary() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo "?|?||"
import json, sys
d = json.load(open(sys.argv[1]))
rows, cols = {}, {}
for t in d.get("tables") or []:
    name = str(t.get("table", "?")).split(".")[-1]
    rows[name] = rows.get(name, 0) + int(t.get("rows") or 0)
    c = t.get("columns")
    cols.setdefault(name, []).append(",".join(map(str, c)) if isinstance(c, list) else str(c))
print(d.get("status", "?"), d.get("id", "?"),
      " ".join(f"{k}={v}" for k, v in rows.items()),
      " ".join(f"{k}({'; '.join(v)})" for k, v in cols.items()), sep="|")
EOF
}

# check_report LABEL REPORT STATUS: a merge's or undo's --json report must say STATUS,
# give an id and list for every ref table as many rows as the floor moves (MOVE). Sets
# R_ID (empty without an id) and R_TABLES (the tables and their columns, for the log).
check_report() {
    local label=$1 status id rows cols t kv bad=()
    local -A got=()
    R_ID='' R_TABLES=''
    IFS='|' read -r status id rows cols < <(report_summary "$2")
    [[ $status == "$3" ]] || fail "$label: report status '$status', expected $3"
    if [[ -n $id && $id != '?' && $id != None ]]; then R_ID=$id; else fail "$label: report gives no id"; fi
    for kv in $rows; do got[${kv%%=*}]=${kv#*=}; done
    for t in "${REF_TABLES[@]}"; do
        [[ ${got[$t]:-none} == "${MOVE[$t]}" ]] || bad+=("$t ${got[$t]:-none} (floor ${MOVE[$t]})")
    done
    ((${#bad[@]} == 0)) || fail "$label: report's rows per table differ from the floor's: ${bad[*]}"
    R_TABLES=$cols
}

max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mb() { calc '%.1f' "$1 / 1024"; }
err() { tr '\n' ' ' <"$1" | head -c 300; }

# ---------------------------------------------------------------- setup

bench_setup merge
cd "$TMP" # see the header: no lockgate.toml of the caller's
LG_OK=1
if ! "$LOCKGATE" merge --help >/dev/null 2>&1; then
    LG_OK=0
    log "!! $LOCKGATE has no \`merge\` command (not built yet?): only the setup and the floor run; exit 2"
fi
log "   $ROWS rows of customers $SOURCES in $TABLES tables (and $ROWS of others), moved to customer $TARGET; $CUSTOMERS customers"

log "-- generating $CUSTOMERS customers"
python3 "$GEN" "$CUSTOMERS" --out "$CLEAN"
EXPECT_FP=$(fp_file csv "$CLEAN")

# the floor, one statement per table
FLOOR_SQL="$TMP/floor.sql"
for t in "${REF_TABLES[@]}"; do
    echo "UPDATE $t SET customer_id = $TARGET WHERE customer_id IN ($SOURCES);"
done >"$FLOOR_SQL"

# ---------------------------------------------------------------- steps

# Each step runs on fresh data and appends its time (and lockgate's peak RSS) to the
# engine's lists; LINE collects the run's log line.
step_floor() {
    local e=$1 i=$2
    fresh "$e" "$ROWS" "${NAME[$e]} floor run $i"
    if [[ $e == pg ]]; then
        timed "${PSQL[@]}" -1 -d "$BENCH_DB" -f "$FLOOR_SQL" >"$TMP/floor.out" 2>&1
    else
        timed "${MARIADB[@]}" "$BENCH_DB" -e "START TRANSACTION; $(cat "$FLOOR_SQL") COMMIT;" >"$TMP/floor.out" 2>&1
    fi
    ((T_RC == 0)) || fail "${NAME[$e]} floor run $i: exited $T_RC: $(err "$TMP/floor.out")"
    check_moved "$e" "${NAME[$e]} floor run $i"
    FLOOR+=("$T_S")
    LINE+="${LINE:+, }floor ${T_S}s"
}

step_preview() {
    local e=$1 i=$2
    local label="${NAME[$e]} preview run $i"
    fresh "$e" "$ROWS" "$label"
    checksums "$e" >"$TMP/checksums.before"
    timed "$LOCKGATE" merge --db "${URL[$e]}" "${MERGE_ARGS[@]}" "${TIMEOUT_ARGS[@]}" --preview --json >/dev/null 2>"$TMP/preview.err"
    ((T_RC == 0)) || fail "$label: lockgate exited $T_RC: $(err "$TMP/preview.err")"
    PREVIEW+=("$T_S") PREVIEW_KB+=("$T_KB")
    check_same "$e" "$label (a preview must change nothing)" "$TMP/checksums.before"
    LINE+="${LINE:+, }preview ${T_S}s ($(mb "$T_KB") MB)"
}

step_merge() {
    local e=$1 i=$2
    local label="${NAME[$e]} merge run $i" out="$TMP/merge_${1}_$2"
    fresh "$e" "$ROWS" "$label"
    checksums "$e" >"$TMP/checksums.before"
    local id=''
    if lockgate_json "$label" "$out.json" merge --db "${URL[$e]}" "${MERGE_ARGS[@]}" "${TIMEOUT_ARGS[@]}"; then
        check_report "$label" "$out.json" completed
        id=$R_ID
        ((i == 1)) && log "   the merge report's tables: ${R_TABLES:-none}"
        check_moved "$e" "$label"
    fi
    MERGE+=("$T_S") MERGE_KB+=("$T_KB")
    LINE+="${LINE:+, }merge ${T_S}s ($(mb "$T_KB") MB, id ${id:-none})"
    if [[ -z $id ]]; then
        fail "${NAME[$e]} undo run $i: not run, the merge gave no id"
        return 0
    fi
    label="${NAME[$e]} undo run $i"
    if lockgate_json "$label" "$out.undo.json" merge undo "$id" --db "${URL[$e]}" "${TIMEOUT_ARGS[@]}"; then
        check_report "$label" "$out.undo.json" undone
        check_same "$e" "$label (every table as before the merge)" "$TMP/checksums.before"
    fi
    UNDO+=("$T_S") UNDO_KB+=("$T_KB")
    LINE+=", undo ${T_S}s ($(mb "$T_KB") MB)"
}

# the merge at ROWS/10 moved rows, for its peak RSS
step_small() {
    local e=$1 i=$2
    local label="${NAME[$e]} merge of $SMALL rows run $i"
    fresh "$e" "$SMALL" "$label"
    if lockgate_json "$label" "$TMP/small.json" merge --db "${URL[$e]}" "${MERGE_ARGS[@]}" "${TIMEOUT_ARGS[@]}"; then
        check_report "$label" "$TMP/small.json" completed
        check_moved "$e" "$label"
    fi
    SMALL_S+=("$T_S") SMALL_KB+=("$T_KB")
    LINE+=", merge of $SMALL rows ${T_S}s ($(mb "$T_KB") MB)"
}

declare -A FLOOR_MED PREVIEW_MED MERGE_MED UNDO_MED SMALL_MED PREVIEW_MAX MERGE_MAX UNDO_MAX SMALL_MAX

bench_engine() {
    local e=$1 i s steps
    FLOOR=() PREVIEW=() PREVIEW_KB=() MERGE=() MERGE_KB=() UNDO=() UNDO_KB=() SMALL_S=() SMALL_KB=()
    engine_log "$e"
    for ((i = 1; i <= RUNS; i++)); do
        steps=(floor)
        ((LG_OK)) && steps=(floor preview merge)
        if ((i % 2 == 0)); then mapfile -t steps < <(printf '%s\n' "${steps[@]}" | tac); fi
        ((LG_OK && SMALL > 0)) && steps+=(small)
        LINE=
        for s in "${steps[@]}"; do "step_$s" "$e" "$i"; done
        log "   run $i/$RUNS: $LINE (setup, not timed: ${SETUP_S}s for the last step)"
    done
    FLOOR_MED[$e]=$(median "${FLOOR[@]}")
    if ((LG_OK)); then
        PREVIEW_MED[$e]=$(median "${PREVIEW[@]}") PREVIEW_MAX[$e]=$(max "${PREVIEW_KB[@]}")
        MERGE_MED[$e]=$(median "${MERGE[@]}") MERGE_MAX[$e]=$(max "${MERGE_KB[@]}")
        UNDO_MED[$e]=$(median "${UNDO[@]:-0}") UNDO_MAX[$e]=$(max "${UNDO_KB[@]:-0}")
        if ((SMALL > 0)); then SMALL_MED[$e]=$(median "${SMALL_S[@]}") SMALL_MAX[$e]=$(max "${SMALL_KB[@]}"); fi
    fi
    drop_db "$e" >/dev/null
}

run_engines bench_engine

# ---------------------------------------------------------------- report

MERGE_GOAL=2
PREVIEW_GOAL=1
UNDO_GOAL=2
RSS_GOAL_MB=150
FLAT_GOAL=1.5
WHAT="$ROWS rows of $TABLES tables moved from customers $SOURCES to $TARGET"

if ((!LG_OK)); then
    echo
    echo "== Results: $WHAT, median of $RUNS run(s), floor only; $(nproc) cores"
    echo "   (load average now $(loadavg): other work on this machine skews the timings)"
    echo
    printf '%-11s %9s\n' engine "floor s"
    for e in pg mariadb; do
        [[ -n ${STATUS[$e]:-} ]] && printf '%-11s %9s\n' "${NAME[$e]}" "${FLOOR_MED[$e]}"
    done
    correctness "setup and floor: no row left on a source, every source row on the target"
    echo "lockgate merge: not measured, $LOCKGATE has no \`merge\` command (build it with cargo build --release -p lockgate-cli)"
    exit 2
fi

results_header "$WHAT"
echo "(ratio = lockgate's time / the floor's; peak RSS = lockgate's, the max over the runs)"
printf '%-11s %-8s %9s %7s %-11s %8s %-10s\n' engine step "median s" ratio goal "RSS MB" "RSS goal"
for e in pg mariadb; do
    [[ -n ${STATUS[$e]:-} ]] || continue
    printf '%-11s %-8s %9s\n' "${NAME[$e]}" floor "${FLOOR_MED[$e]}"
    for s in preview merge undo; do
        case $s in
            preview) med=${PREVIEW_MED[$e]} kb=${PREVIEW_MAX[$e]} g=$PREVIEW_GOAL ;;
            merge) med=${MERGE_MED[$e]} kb=${MERGE_MAX[$e]} g=$MERGE_GOAL ;;
            undo) med=${UNDO_MED[$e]} kb=${UNDO_MAX[$e]} g=$UNDO_GOAL ;;
        esac
        r=$(ratio "$med" "${FLOOR_MED[$e]}")
        m=$(mb "$kb")
        printf '%-11s %-8s %9s %6sx %-11s %8s %-10s\n' "" "$s" "$med" "$r" "<=${g}x $(goal "$r" "$g")" "$m" "<=$RSS_GOAL_MB $(goal "$m" "$RSS_GOAL_MB")"
    done
    if [[ -n ${SMALL_MAX[$e]:-} ]]; then
        small_mb=$(mb "${SMALL_MAX[$e]}") big_mb=$(mb "${MERGE_MAX[$e]}")
        f=$(ratio "$big_mb" "$small_mb")
        printf '%-11s merge peak RSS: %s MB at %s rows (%ss), %s MB at %s rows: %sx (flat: <=%sx %s)\n' "" \
            "$small_mb" "$SMALL" "${SMALL_MED[$e]}" "$big_mb" "$ROWS" "$f" "$FLAT_GOAL" "$(goal "$f" "$FLAT_GOAL")"
    fi
done
correctness "floor and merge move every source row to the target, reports, preview changes nothing, undo restores every table"
