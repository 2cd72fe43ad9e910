#!/usr/bin/env bash
# bench/serve.sh: whether `lockgate serve` stays usable on a large PostgreSQL table:
# the server-side time of one 50-row page of /api/tables (sorted by the key, by an
# indexed and by an unindexed column, searched, and deep in the keyset order), and how
# often /api/events reports progress while a ROWS-row export runs.
# Goals (issue): <= 3 ms (median) for the first page by the key, now that the server
# pools its connections, and <= 300 ms for the other pages sorted by the key or an
# indexed column; progress at least twice a second (so no gap between events above 0.5 s).
#
# Page figures are curl's time_total against 127.0.0.1 (so mostly the server's time),
# the median and max of RUNS requests after one warm-up, with the server's own
# Server-Timing `db;dur` next to them (and its `conn;dur`, the part spent getting a
# connection: a pooled one after the warm-up), and the same SELECT timed in psql (\timing, one
# session) as the native reference. Every page's ids must equal that SELECT's, which
# checks the order, the cursors and the search, not just the row count.
#
#     bench/serve.sh                      # 1,000,000 rows, 7 runs per page (about a minute)
#     ROWS=100000 RUNS=3 bench/serve.sh   # quick check
#     KEEP_TMP=1 bench/serve.sh           # keep the data dir and both databases
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, no password), python3, psql, curl.
# It uses its own databases, lockgate_bench_serve and lockgate_bench_serve_dst, so that
# it can share the server with the other scripts' lockgate_bench. Slow figures never
# fail it; a correctness failure (a page's rows, an export not completed with ROWS rows
# or a destination differing from the source) makes it exit 1 after the report.
set -euo pipefail

ROWS=${ROWS:-1000000} # this script's defaults; lib.sh sets the rest
RUNS=${RUNS:-7}
ENGINES=pg # lib.sh's setup log names the engines; only PostgreSQL is used

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# After sourcing: lib.sh's create_db, create_table, fp_pg and cleanup work on $BENCH_DB.
BENCH_DB=lockgate_bench_serve
DST_DB=lockgate_bench_serve_dst
PER_PAGE=50 DEEP_PAGES=20
RATE_GOAL=2 GAP_GOAL=0.5
# email is nearly unique and NOT NULL: the index alone serves its order. city has 7
# values, so its order is a sort of the whole table on every page.
INDEXED=email UNINDEXED=city
# The generator draws last names from 12: "Smith" is about 8 % of the rows, found
# within the first few hundred; a term that matches nothing reads the whole table.
COMMON=Smith NOTHING=zz-no-such-customer
TEXT_COLS=(first_name last_name email phone city) # what lockgate's search reads

SERVER_PID= SSE_PID= DST_CREATED=0
serve_cleanup() {
    set +e
    [[ -n $SSE_PID ]] && kill "$SSE_PID" 2>/dev/null
    # The server first: its connections would keep DROP DATABASE from working.
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        ((PG_CREATED)) && echo "kept the databases $BENCH_DB and $DST_DB"
        PG_CREATED=0
    elif ((DST_CREATED)); then
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DST_DB" >/dev/null 2>&1
    fi
    cleanup
}
trap serve_cleanup EXIT

max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mb() { calc '%.1f' "$1 / 1024"; }
verdict() { [[ $(goal "$@") == ok ]] && echo PASS || echo MISS; } # VALUE LIMIT, VALUE <= LIMIT

# page PARAM...: one GET of the customers page with PARAMs (k=v, URL-encoded by curl);
# the body goes to $TMP/page.json; sets P_CODE, P_MS (curl's time_total), P_DB (the
# Server-Timing db;dur, empty when the server sends none) and P_CONN (its conn;dur).
page() {
    local args=() p out t
    for p in per_page=$PER_PAGE "$@"; do args+=(--data-urlencode "$p"); done
    out=$(curl -sG -o "$TMP/page.json" -D "$TMP/page.h" -w '%{http_code} %{time_total}' "${args[@]}" "$BASE/api/tables/bench/customers")
    read -r P_CODE t <<<"$out"
    P_MS=$(calc '%.1f' "$t * 1000")
    P_DB=$(sed -n 's/^server-timing:.*[ :]db;dur=\([0-9.]*\).*/\1/Ip' "$TMP/page.h" | head -n 1)
    P_CONN=$(sed -n 's/^server-timing:.*conn;dur=\([0-9.]*\).*/\1/Ip' "$TMP/page.h" | head -n 1)
}

# page_ids: "IDS NEXT" of $TMP/page.json: its customer_ids joined by commas ("-" when
# none) and its next cursor ("-" on the last page).
page_ids() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
col = [c["name"] for c in d["columns"]].index("customer_id")
print(",".join(str(r[col]) for r in d["rows"]) or "-", d.get("next") or "-")' "$TMP/page.json" 2>/dev/null || echo "? -"
}

# native_ms SQL: psql's \timing of SQL, RUNS times after a warm-up, in one session (so
# without the connection that lockgate makes per page); one figure per line.
native_ms() {
    { echo '\timing on'; echo '\o /dev/null'; for ((i = 0; i <= RUNS; i++)); do echo "$1;"; done; } |
        "${PSQL[@]}" -d "$BENCH_DB" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n +2
}

# ---------------------------------------------------------------- setup (not timed)

bench_setup serve serve
command -v curl >/dev/null 2>&1 || { echo "error: curl not found" >&2; exit 2; }
cd "$TMP" # no lockgate.toml of the caller's

log "-- generating $ROWS customers and loading $BENCH_DB (index on $INDEXED, none on $UNINDEXED)"
python3 "$GEN" "$ROWS" --out "$CLEAN"
create_db pg
create_table pg
native_pg "source load"
((${#FAILURES[@]} == 0)) || exit 2
# VACUUM too: the pages should not pay for setting the fresh rows' hint bits.
"${PSQL[@]}" -d "$BENCH_DB" -c "CREATE INDEX customers_$INDEXED ON customers ($INDEXED)" -c "VACUUM ANALYZE customers"
SRC_FP=$(fp_pg)
[[ ${SRC_FP%%|*} == "$ROWS" ]] || { echo "error: $BENCH_DB.customers holds ${SRC_FP%%|*} rows, not $ROWS" >&2; exit 2; }
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DST_DB" 2>/dev/null
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DST_DB"
DST_CREATED=1
BENCH_DB=$DST_DB create_table pg

SRC_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$BENCH_DB"
DST_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DST_DB"
cat >"$TMP/lockgate.toml" <<EOF
[connections.bench]
url = "$SRC_URL"

[connections.dst]
url = "$DST_URL"

[transfers.customers]
source = "$SRC_URL"
source_table = "customers"
dest = "$DST_URL"
dest_table = "customers"
key = ["customer_id"]
EOF
SRV_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$SRV_PORT"
# Without DATABASE_URL the server has no migrations database to reach for.
env -u DATABASE_URL "$LOCKGATE" --config "$TMP/lockgate.toml" serve --bind "127.0.0.1:$SRV_PORT" >"$TMP/serve.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; ; i++)); do
    curl -sf -o /dev/null "$BASE/api/connections" && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null || ((i > 150)); then
        echo "error: lockgate serve did not start: $(tail -c 500 "$TMP/serve.log")" >&2
        exit 2
    fi
    sleep 0.2
done
log "   lockgate serve at $BASE (pid $SERVER_PID)"

# ---------------------------------------------------------------- pages

# A case: its title, its query parameters, the WHERE and ORDER BY of the same page in
# SQL, the number of pages followed before it (0: the first page), and whether it has
# the 300 ms goal and a psql reference.
CASES=(key indexed unindexed search nomatch deep_key deep_indexed)
search_where() { printf "%s ILIKE '%%$1%%' OR " "${TEXT_COLS[@]}" | sed 's/ OR $//'; }
declare -A TITLE=([key]="by key (customer_id)" [indexed]="by $INDEXED (indexed)" [unindexed]="by $UNINDEXED (no index)"
    [search]="search '$COMMON'" [nomatch]="search, no match" [deep_key]="by key, page $((DEEP_PAGES + 1))"
    [deep_indexed]="by $INDEXED, page $((DEEP_PAGES + 1))")
declare -A PARAMS=([key]="" [indexed]="sort=$INDEXED" [unindexed]="sort=$UNINDEXED" [search]="q=$COMMON"
    [nomatch]="q=$NOTHING" [deep_key]="" [deep_indexed]="sort=$INDEXED")
declare -A WHERE=([search]="WHERE $(search_where "$COMMON")" [nomatch]="WHERE $(search_where "$NOTHING")")
declare -A ORDER=([key]="customer_id" [indexed]="$INDEXED, customer_id" [unindexed]="$UNINDEXED NULLS FIRST, customer_id"
    [search]="customer_id" [nomatch]="customer_id" [deep_key]="customer_id" [deep_indexed]="$INDEXED, customer_id")
declare -A DEEP=([deep_key]=$DEEP_PAGES [deep_indexed]=$DEEP_PAGES)
# The goal of each case that has one: the most its median may be, in ms.
declare -A GOAL=([key]=3 [indexed]=300 [deep_key]=300 [deep_indexed]=300)
declare -A NATIVE_REF=([key]=1 [indexed]=1 [unindexed]=1)
declare -A MED MAX DBMED CONNMED PSQL_MED

log "-- pages: $PER_PAGE rows, 1 warm-up + $RUNS timed requests each"
for c in "${CASES[@]}"; do
    # shellcheck disable=SC2206 # PARAMS hold no spaces
    params=(${PARAMS[$c]})
    cursor=
    for ((i = 0; i < ${DEEP[$c]:-0}; i++)); do
        page "${params[@]}" ${cursor:+"after=$cursor"}
        read -r _ cursor < <(page_ids)
        [[ $cursor != - ]] || { fail "${TITLE[$c]}: page $((i + 1)) has no next cursor"; cursor=; break; }
    done
    [[ -z $cursor ]] || params+=("after=$cursor")
    offset=$((${DEEP[$c]:-0} * PER_PAGE))
    expect=$("${PSQL[@]}" -d "$BENCH_DB" -At -c "SELECT customer_id FROM customers ${WHERE[$c]:-} ORDER BY ${ORDER[$c]} LIMIT $PER_PAGE OFFSET $offset" | paste -sd,)
    ms=() dbs=() conns=()
    for ((r = 0; r <= RUNS; r++)); do
        page "${params[@]}"
        [[ $P_CODE == 200 ]] || { fail "${TITLE[$c]}: HTTP $P_CODE: $(head -c 300 "$TMP/page.json")"; break; }
        if ((r == 0)); then
            read -r ids _ < <(page_ids)
            [[ $ids == "${expect:--}" ]] ||
                fail "${TITLE[$c]}: the page's $(awk -F, '{print NF}' <<<"$ids") customer_ids (${ids:0:60}...) differ from the SQL's (${expect:0:60}...)"
            continue
        fi
        ms+=("$P_MS")
        [[ -z $P_DB ]] || dbs+=("$P_DB")
        [[ -z $P_CONN ]] || conns+=("$P_CONN")
    done
    ((${#ms[@]})) || continue
    MED[$c]=$(median "${ms[@]}") MAX[$c]=$(max "${ms[@]}")
    DBMED[$c]=$( ((${#dbs[@]})) && median "${dbs[@]}" || echo -)
    CONNMED[$c]=$( ((${#conns[@]})) && median "${conns[@]}" || echo -)
    if [[ -n ${NATIVE_REF[$c]:-} ]]; then
        mapfile -t nat < <(native_ms "SELECT * FROM customers ORDER BY ${ORDER[$c]} LIMIT $((PER_PAGE + 1))")
        PSQL_MED[$c]=$(median "${nat[@]}")
    fi
    log "   ${TITLE[$c]}: ${ms[*]} ms (Server-Timing db: ${dbs[*]:--}; conn: ${conns[*]:--})${PSQL_MED[$c]:+; psql ${PSQL_MED[$c]} ms}"
done
RSS_PAGES=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status" || echo 0)

# Where a slow page's time goes: the plans of the unindexed sort and of a search that
# reads the whole table (its count reads it once more), for the log.
for sql in "SELECT * FROM customers ORDER BY ${ORDER[unindexed]} LIMIT $((PER_PAGE + 1))" \
    "SELECT * FROM customers ${WHERE[nomatch]} ORDER BY customer_id LIMIT $((PER_PAGE + 1))"; do
    "${PSQL[@]}" -d "$BENCH_DB" -At -c "EXPLAIN (ANALYZE, COSTS OFF) $sql" >"$TMP/plan.txt"
    log "   plan of $sql:"
    sed 's/^/        /' "$TMP/plan.txt"
done

# ---------------------------------------------------------------- progress events

log "-- export of $ROWS rows with /api/events read"
EVENTS="$TMP/events.txt"
# curl's own pid (the process substitution stamps the lines), so that killing it ends both.
curl -sN "$BASE/api/events" > >(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$EVENTS") &
SSE_PID=$!
sleep 1 # the subscription must exist before the first job starts
out=$(curl -s -o "$TMP/create.json" -w '%{http_code} %{time_total}' -X POST "$BASE/api/transfers/customers/exports?wait=true")
read -r code t <<<"$out"
CREATE_S=$(calc '%.2f' "$t")
read -r status rows < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(j.get("status"), ((j.get("result") or {}).get("export") or {}).get("rows"))' "$TMP/create.json" 2>/dev/null || echo "? ?")
[[ "$code $status $rows" == "200 succeeded $ROWS" ]] ||
    fail "create export: HTTP/status/rows = $code $status $rows, expected 200 succeeded $ROWS: $(head -c 300 "$TMP/create.json")"
out=$(curl -s -o "$TMP/process.json" -w '%{http_code} %{time_total}' -X POST "$BASE/api/process?wait=true")
read -r code t <<<"$out"
PROCESS_S=$(calc '%.2f' "$t")
RSS_END=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status" || echo 0)
sleep 0.5 # the job's last event may follow the response
kill "$SSE_PID" 2>/dev/null || true
wait "$SSE_PID" 2>/dev/null || true
SSE_PID=
# A run report's item is {"export": {...}, "errors": [...]} or the export itself.
read -r status n xstatus rows errs < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
xs = [x.get("export", x) for x in (j.get("result") or {}).get("exports", [])]
e = xs[0] if xs else {}
print(j.get("status"), len(xs), e.get("status"), e.get("rows"), e.get("error_count"))' "$TMP/process.json" 2>/dev/null || echo "? ? ? ? ?")
[[ "$code $status $n $xstatus $rows $errs" == "200 succeeded 1 completed $ROWS 0" ]] ||
    fail "process: HTTP/job/exports/export status/rows/errors = $code $status $n $xstatus $rows $errs, expected 200 succeeded 1 completed $ROWS 0"
DST_FP=$(BENCH_DB=$DST_DB fp_pg)
[[ $DST_FP == "$SRC_FP" ]] || fail "the destination's fingerprint $DST_FP differs from the source's $SRC_FP"

# The process job's events, timed as they arrived: the "running" ones (its start and
# its progress) and the gaps between them up to the final one.
read -r N_EV RUN_S RATE GAP JOB_S GAP_AT < <(python3 - "$EVENTS" <<'EOF' 2>/dev/null || echo "0 0 0 0 ? ?"
import json, sys
ev = []
for line in open(sys.argv[1], encoding="utf-8"):
    t, _, rest = line.rstrip("\n").partition(" ")
    if rest.startswith("data:"):
        j = json.loads(rest[5:])
        if j.get("kind") == "process":
            ev.append((float(t), j))
running = [(t, j) for t, j in ev if j["status"] == "running"]
final = [(t, j) for t, j in ev if j["status"] != "running"][:1]
times = [t for t, _ in running + final]
dur = times[-1] - times[0]
gap, i = max((b - a, i) for i, (a, b) in enumerate(zip(times, times[1:])))
msgs = [j.get("message") or "start" for _, j in running + final]
print(len(running), f"{dur:.2f}", f"{len(running) / dur:.1f}", f"{gap:.2f}", f"{(final[0][1].get('seconds') or 0):.2f}",
      f"after '{msgs[i]}' at {times[i] - times[0]:.1f} s, until '{msgs[i + 1]}'")
EOF
)
((N_EV > 0)) || fail "no progress event of the process job on /api/events ($(wc -l <"$EVENTS") lines read)"
log "   create ${CREATE_S}s, process ${PROCESS_S}s (job ${JOB_S}s); $N_EV progress events in ${RUN_S}s; largest gap ${GAP}s $GAP_AT"

# ---------------------------------------------------------------- report

results_header "$ROWS rows"
echo "Table pages: GET /api/tables/bench/customers?per_page=$PER_PAGE&..., curl time_total in ms (median and max);"
echo "db = the server's Server-Timing db;dur (median), conn = the part of it spent getting a connection (median);"
echo "psql = the same SELECT in psql (median); ratio = median / psql; goal = the median's, in ms"
printf '%-26s %9s %9s %9s %9s %9s %8s %-12s\n' case median max db conn psql ratio goal
for c in "${CASES[@]}"; do
    [[ -n ${MED[$c]:-} ]] || { printf '%-26s %9s\n' "${TITLE[$c]}" "(failed)"; continue; }
    ratio=- g=-
    [[ -z ${PSQL_MED[$c]:-} ]] || ratio="$(ratio "${MED[$c]}" "${PSQL_MED[$c]}")x"
    [[ -z ${GOAL[$c]:-} ]] || g="<=${GOAL[$c]} $(verdict "${MED[$c]}" "${GOAL[$c]}")"
    printf '%-26s %9s %9s %9s %9s %9s %8s %-12s\n' "${TITLE[$c]}" "${MED[$c]}" "${MAX[$c]}" "${DBMED[$c]}" "${CONNMED[$c]}" "${PSQL_MED[$c]:--}" "$ratio" "$g"
done
echo
echo "Export of $ROWS rows (POST /api/transfers/customers/exports, then POST /api/process, both ?wait=true):"
echo "   create ${CREATE_S} s, run ${PROCESS_S} s (the job's own ${JOB_S} s)"
echo "   progress events while running: $N_EV in ${RUN_S} s = ${RATE}/s (goal >= ${RATE_GOAL}/s: $(verdict "$RATE_GOAL" "$RATE"))"
echo "   largest gap between events: ${GAP} s (goal <= ${GAP_GOAL} s: $(verdict "$GAP" "$GAP_GOAL")), $GAP_AT"
echo "Server peak RSS (VmHWM): $(mb "$RSS_PAGES") MB after the pages, $(mb "$RSS_END") MB after the export"
correctness "every page's ids equal its SELECT's; the export completed with $ROWS rows and the destination equals the source"
