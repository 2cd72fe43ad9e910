#!/usr/bin/env bash
# bench/upgrade.sh: what a background upgrade (`lockgate upgrade run`) costs an
# application that keeps writing to the table, compared with the one bulk UPDATE it
# replaces, on PostgreSQL and MariaDB.
#
# Data, built once per engine and run (never timed): ROWS customers from the generator
# (its --schema DDL), loaded natively (psql \copy, LOAD DATA LOCAL; lib.sh's loads) into
# a fresh database `lockgate_bench` and checked against the CSV's fingerprint; then two
# columns added without a rewrite, `email_lower` (empty) and `writes` (0), a table
# `writer_stop` (see the writer), `lockgate upgrade init --table customers`, VACUUM
# ANALYZE / ANALYZE TABLE; the upgrade `email_lower` declared in upgrades/email_lower.toml:
#     table = "customers"
#     set = { email_lower = "lower(email)" }
# The writer, an application doing RATE (200) single-row updates per second on random
# rows, CLIENTS (4) connections, the arrivals scheduled as pgbench -R does (Poisson), each
# update's latency measured from its scheduled start (so time spent queued behind a
# blocked update counts):
#     UPDATE customers SET email = 'W<writes+1>.<id>@Example.com',
#       email_lower = lower(that), writes = writes + 1 WHERE customer_id = <random id>
#   PostgreSQL: pgbench -n -R RATE -c CLIENTS -l (per-transaction log) with that script;
#     it stops when a row appears in writer_stop (its next UPDATE then divides by zero,
#     which aborts each client without committing), so every committed update is logged;
#   MariaDB: a Python writer using PyMySQL (pip-installed into a venv in the data dir when
#     python3 lacks it; VENV=DIR keeps one), stopped by SIGTERM; a lock wait timeout
#     (1205) is counted, not committed.
# Beside the writer, a sampler every 20 ms records each writer's lock wait, what blocks
# it, the writer UPDATEs slow for another reason (I/O, CPU), and how long lockgate's
# batch UPDATE has been running:
#   PostgreSQL: pg_stat_activity, wait_event_type 'Lock', now() - state_change, the
#     blocker from pg_blocking_pids;
#   MariaDB: information_schema.innodb_trx is a cache InnoDB refreshes only after 100 ms
#     without a read (read every 20 ms it never changes) and its trx_wait_started has
#     whole seconds, so innodb_trx (trx_state 'LOCK WAIT', the blocker from
#     innodb_lock_waits) is read every ~105 ms, which sees every wait longer than that,
#     and the process list every 20 ms gives the waits' lengths: how long each writer
#     UPDATE has been in state Updating (TIME_MS), the state of a row-lock wait.
# Waits shorter than the sampling interval can be missed: the writer's max latency is
# printed as the upper bound of any wait.
# Phases, each after a CHECKPOINT (PostgreSQL) with the writer started 1 s before and
# stopped 2 s after (its backlog drained); writer figures count the updates scheduled
# within the phase:
#   1. baseline: the writer alone, PHASE_S seconds (15; 5 with QUICK=1);
#   2. backfill: `lockgate upgrade run --db URL --table customers --json` at its default
#      pacing (100 ms target batch time), timed: rows/s = rows upgraded / seconds; peak
#      RSS by /usr/bin/time;
#   3. bulk UPDATE: `UPDATE customers SET email_lower = lower(email)` in one statement,
#      after the column was reset (`SET email_lower = NULL`, then VACUUM on PostgreSQL),
#      timed. The reset leaves room in every page (PostgreSQL: the dead versions vacuumed;
#      InnoDB: the shrunk records), so this UPDATE grows rows in place and is cheaper than
#      on the fresh table the backfill had; BULK_FROM=reload loads the table again instead.
# Goals are printed next to the figures, met or MISSED: backfill >= 50,000 rows/s; the
# writer's p99 during the backfill <= 1.5x its baseline p99; no writer lock wait > 100 ms
# during the backfill. The bulk UPDATE's figures are the comparison, without goals.
# Slow figures never fail the script; correctness failures do (exit 1 after the report):
# `upgrade run` must exit 0 and report the upgrade complete, 0 remaining, ROWS rows
# upgraded; then every row's applied_upgrades must be exactly ["email_lower"] and
# email_lower = lower(email) in every row (byte for byte; the writer changed emails
# meanwhile, so a stale or lost write shows); after the bulk UPDATE email_lower =
# lower(email) again; at the end the sum of `writes` must equal the updates the writer
# committed (its logs), and every written row's email must be the one its last write
# set (no writer update lost). A writer that stops early, or a sampler that fails, is a
# failure too.
#
# Run from anywhere (needs PostgreSQL on 127.0.0.1:5432 as postgres and MariaDB on
# 127.0.0.1:3306 as root, both without password; python3, psql, pgbench, mariadb):
#     bench/upgrade.sh                              # 1,000,000 rows, both engines
#     ROWS=100000 QUICK=1 bench/upgrade.sh          # quick check
#     ENGINES=mariadb bench/upgrade.sh              # one engine (ENGINE= works too)
# Other knobs: RUNS (default 1: each run a fresh database, reported side by side),
# RATE (200), CLIENTS (4), PHASE_S (baseline seconds), UPGRADE_ARGS (flags added to
# `upgrade run`, e.g. "--target-batch-time 50ms"), BULK_FROM=reload (see phase 3),
# LOCKGATE=PATH (run that binary, build nothing), GEN=PATH (the customers generator),
# VENV=DIR (the PyMySQL venv to use or make), KEEP_TMP=1 (keep the data dir: logs,
# samples, reports).
# It creates and drops the database `lockgate_bench` on each server; lockgate runs in the
# data dir, so that a lockgate.toml where the script is started cannot change it.
# The settings, helpers and native loads it shares with the other scripts are in bench/lib.sh.
set -euo pipefail

ROWS=${ROWS:-1000000} # this script's defaults; lib.sh sets the rest
RUNS=${RUNS:-1}
ENGINES=${ENGINES:-${ENGINE:-"pg mariadb"}}
QUICK=${QUICK:-0}
RATE=${RATE:-200}
CLIENTS=${CLIENTS:-4}
if [[ $QUICK == 1 ]]; then PHASE_S=${PHASE_S:-5}; else PHASE_S=${PHASE_S:-15}; fi
UPGRADE_ARGS=${UPGRADE_ARGS:-} # more flags for `upgrade run` (default: none, its default pacing)
BULK_FROM=${BULK_FROM:-reset}  # the bulk UPDATE's table: reset (email_lower = NULL) or reload
case $BULK_FROM in reset | reload) ;; *) echo "BULK_FROM takes reset or reload" >&2; exit 2 ;; esac
read -ra RUN_ARGS <<<"$UPGRADE_ARGS"

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for v in RATE CLIENTS PHASE_S; do
    case ${!v} in '' | *[!0-9]* | 0) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
ENGINE_LIST=()
for engine in ${ENGINES//,/ }; do
    case $engine in
        pg | postgres | postgresql) ENGINE_LIST+=(pg) ;;
        mariadb | mysql) ENGINE_LIST+=(mariadb) ;;
        sqlite) echo "SQLite has one writer at a time: upgrade.sh measures PostgreSQL and MariaDB (ENGINES=\"pg mariadb\")" >&2; exit 2 ;;
        *) echo "unknown engine $engine: ENGINES takes pg and mariadb" >&2; exit 2 ;;
    esac
done

UPGRADE=email_lower
APPLIED='["email_lower"]' # applied_upgrades of a row upgraded once
WRITER_APP=lockgate_bench_writer
WARMUP=1 TAIL=2
SAMPLE_S=0.02
WAIT_GOAL_MS=100 RATE_GOAL=50000 P99_GOAL=1.5
WORK="$TMP/work" # lockgate's working directory: upgrades/email_lower.toml, no lockgate.toml
declare -A URL=([pg]=$PG_URL [mariadb]=$MY_URL)

# Background processes of this script (writer, sampler), stopped on exit by their pids.
BG_PIDS=()
upgrade_cleanup() {
    set +e
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    cleanup
}
trap upgrade_cleanup EXIT

now() { date +%s.%N; }
# sql ENGINE QUERY: QUERY in lockgate_bench; rows one per line, columns separated by '|'.
sql() {
    case $1 in
        pg) "${PSQL[@]}" -d "$BENCH_DB" -At -F'|' -c "$2" ;;
        mariadb) "${MARIADB[@]}" -N -B "$BENCH_DB" -e "$2" | tr '\t' '|' ;;
    esac
}

# ---------------------------------------------------------------- programs

# The PostgreSQL writer's pgbench script. writer_stop is empty while it runs: the
# subquery is NULL and adds 0; a row (x = 1) makes it 1 / 0, an error that aborts the
# client with its update rolled back. (A constant 1 / 0 would fail at plan time.)
write_programs() {
    cat >"$TMP/writer.sql" <<'EOF'
\set id random(1, :rows)
UPDATE customers SET email = 'W' || (writes + 1) || '.' || customer_id || '@Example.com', email_lower = lower('W' || (writes + 1) || '.' || customer_id || '@Example.com'), writes = writes + 1 + coalesce((SELECT 1 / (x - 1) FROM writer_stop LIMIT 1), 0) WHERE customer_id = :id;
EOF

    # The MariaDB writer: the same update, the same schedule as pgbench -R (each client
    # RATE/CLIENTS per second, exponential gaps, latency from the scheduled start).
    # MariaDB evaluates SET left to right: `writes` is assigned last, so the email and
    # email_lower read its old value, as on PostgreSQL.
    cat >"$TMP/writer.py" <<'EOF'
import random, signal, sys, threading, time
import pymysql

host, port, user, db, rows, rate, clients, log_path, ids_path = sys.argv[1:]
port, rows, rate, clients = int(port), int(rows), float(rate), int(clients)
SQL = ("UPDATE customers SET email = CONCAT('W', writes + 1, '.', customer_id, '@Example.com'), "
       "email_lower = LOWER(CONCAT('W', writes + 1, '.', customer_id, '@Example.com')), "
       "writes = writes + 1 WHERE customer_id = %s")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
conns = [pymysql.connect(host=host, port=port, user=user, database=db, autocommit=True) for _ in range(clients)]
with open(ids_path, "w") as f:
    for c in conns:
        f.write(f"{c.thread_id()}\n")
results = [[] for _ in range(clients)]
fatal = []

def client(i):
    rng = random.Random()  # seeded from the OS, as pgbench seeds from the time
    per_client = rate / clients
    out, conn = results[i], conns[i]
    due = time.time()
    try:
        while True:
            due += rng.expovariate(per_client)
            delay = due - time.time()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                break
            status = "ok"
            try:
                with conn.cursor() as cur:
                    if cur.execute(SQL, (rng.randint(1, rows),)) != 1:
                        status = "norow"
            except pymysql.err.OperationalError as e:
                if e.args[0] == 1205:
                    status = "timeout"  # lock wait timeout: the statement rolled back
                elif e.args[0] == 1213:
                    status = "deadlock"
                else:
                    raise
            end = time.time()
            out.append((end, int((end - due) * 1e6), status))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        fatal.append(f"client {i}: {e!r}")
        stop.set()

threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
while not stop.wait(0.2):
    pass
for t in threads:
    t.join()
with open(log_path, "w") as f:
    for out in results:
        for end, lat, status in out:
            f.write(f"{end:.6f} {lat} {status}\n")
if fatal:
    print("\n".join(fatal), file=sys.stderr)
    sys.exit(1)
EOF

    # The MariaDB sampler. innodb_trx is a cache that InnoDB refreshes only when it has
    # not been read for 100 ms (read every 20 ms it would never change), so one thread
    # reads it every 102 ms plus the query's time: each transaction in LOCK WAIT and what
    # blocks it (L lines: a wait longer than about 105 ms is always seen). Another thread
    # reads the process list every SAMPLE_S: how long each writer UPDATE has been in its
    # state (TIME_MS; an UPDATE waiting for a row lock is in state Updating) and how long
    # lockgate's batch UPDATE has been running:
    #   P|epoch|thread|time_ms|state     a writer's UPDATE running
    #   B|epoch|thread|time_ms           lockgate's batch UPDATE running
    #   L|epoch|thread|trx|blocker       a transaction waiting for a lock
    cat >"$TMP/sampler.py" <<'EOF'
import signal, sys, threading, time
import pymysql

host, port, user, interval, out_path = sys.argv[1:]
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
RUNNING = """SELECT ID, TIME_MS, STATE FROM information_schema.PROCESSLIST
  WHERE COMMAND = 'Query' AND INFO LIKE 'UPDATE customers SET email = CONCAT(%'"""
BATCH = """SELECT ID, TIME_MS FROM information_schema.PROCESSLIST
  WHERE INFO LIKE 'UPDATE `customers` SET%'"""
WAITING = """SELECT r.trx_mysql_thread_id, r.trx_id,
  REPLACE(REPLACE(LEFT(b.trx_query, 60), '|', ' '), '\n', ' ')
  FROM information_schema.innodb_trx r
  LEFT JOIN information_schema.innodb_lock_waits w ON w.requesting_trx_id = r.trx_id
  LEFT JOIN information_schema.innodb_trx b ON b.trx_id = w.blocking_trx_id
  WHERE r.trx_state = 'LOCK WAIT'"""
lines, failures = [], []

def sample(queries, pause):
    try:
        conn = pymysql.connect(host=host, port=int(port), user=user, autocommit=True)
        while not stop.is_set():
            began = time.time()
            with conn.cursor() as cur:
                for tag, sql in queries:
                    cur.execute(sql)
                    lines.extend(f"{tag}|{began:.6f}|" + "|".join(str(v) for v in row) + "\n" for row in cur.fetchall())
            stop.wait(pause(began))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        failures.append(repr(e))
        stop.set()

threads = [
    threading.Thread(target=sample, args=([("P", RUNNING), ("B", BATCH)],
                                          lambda began: max(0.0, float(interval) - (time.time() - began)))),
    threading.Thread(target=sample, args=([("L", WAITING)], lambda began: 0.102)),
]
for t in threads:
    t.start()
while not stop.wait(0.2):
    pass
for t in threads:
    t.join()
with open(out_path, "w") as f:
    f.writelines(line.replace("|None\n", "|?\n") for line in lines)
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
EOF

    # Writer statistics: pgbench logs (client txn latency_us script epoch_s epoch_us lag)
    # or the Python writer's (end_epoch latency_us status). Prints, for the updates
    # scheduled in [T0, T1]: count p50 p99 max (ms); then, over the whole log, committed
    # updates, failed ones, and the first failure.
    cat >"$TMP/stats.py" <<'EOF'
import glob, math, sys

kind, t0, t1, pattern = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lat, committed, failed, first_failure = [], 0, 0, "-"
for path in sorted(glob.glob(pattern)):
    for line in open(path):
        f = line.split()
        if kind == "pgbench":
            if len(f) < 6:
                continue
            if not f[2].isdigit():  # "failed" or "skipped"
                failed += 1
                first_failure = first_failure if first_failure != "-" else f[2]
                continue
            us, end = int(f[2]), int(f[4]) + int(f[5]) / 1e6
        else:
            end, us, status = float(f[0]), int(f[1]), f[2]
            if status != "ok":
                failed += 1
                first_failure = first_failure if first_failure != "-" else status
                continue
        committed += 1
        if t0 <= end - us / 1e6 <= t1:
            lat.append(us / 1000)
lat.sort()
def pct(p):
    return lat[max(0, math.ceil(p * len(lat)) - 1)] if lat else 0.0
print(len(lat), f"{pct(0.5):.2f}", f"{pct(0.99):.2f}", f"{lat[-1] if lat else 0:.1f}", committed, failed, first_failure)
EOF

    # Lock waits from a sampler's file, of the writer's sessions only. Prints
    # longest|waits|over|samples|batch|slow|slowest|blocker: the longest lock wait (ms),
    # how many, how many over WAIT_GOAL_MS, the writer samples, the longest batch UPDATE
    # of lockgate's seen running (ms), the writer UPDATEs seen running SAMPLE_S or more
    # without a lock wait seen and the longest of them (ms: I/O, CPU), and the statement
    # that blocked the writers most often.
    #   pg:      W|epoch|wait_ms|pid|state_change_epoch|wait_event|blocker   (a lock wait)
    #            S|epoch|ms|pid|query_start_epoch|wait_event|               (running, no lock wait)
    #            B|epoch|ms|pid|query_start_epoch||                         (lockgate's batch)
    #   mariadb: the P, B and L lines above, the writer's threads in IDS_FILE; a wait is a
    #            writer transaction innodb_trx saw in LOCK WAIT, as long as the longest
    #            TIME_MS in state Updating of the writer UPDATE it belongs to (else the
    #            span of its LOCK WAIT samples)
    cat >"$TMP/waits.py" <<'EOF'
import collections, sys

kind, path, goal_ms, interval = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
ids = set(open(sys.argv[5]).read().split()) if len(sys.argv) > 5 else None
waits, slow, blockers, samples, batch = {}, {}, collections.Counter(), 0, 0.0

def statements(seen):
    """[(epoch, ms)] samples of one session -> [start, longest ms, last seen]: one per
    run of samples whose start (epoch - ms) stays put."""
    out = []
    for t, ms in sorted(seen):
        start = t - ms / 1000
        if out and abs(out[-1][0] - start) < 0.005:
            out[-1][1], out[-1][2] = max(out[-1][1], ms), t
        else:
            out.append([start, ms, t])
    return out

if kind == "pg":
    running = collections.defaultdict(list)
    for line in open(path):
        f = line.rstrip("\n").split("|")
        if len(f) < 7:
            continue
        if f[0] == "B":
            batch = max(batch, float(f[2]))
        elif f[0] == "W":
            key = (f[3], f[4])  # pid, state_change: one statement
            waits[key] = max(waits.get(key, 0.0), float(f[2]))
            samples += 1
            blockers[" ".join(f[6].split())[:50] or "?"] += 1
        elif f[0] == "S":
            running[f[3]].append((float(f[1]), float(f[2])))
            samples += 1
    waited = collections.defaultdict(list)
    for pid, change in waits:
        waited[pid].append(float(change))
    for pid, seen in running.items():
        for start, ms, _ in statements(seen):
            if ms >= interval * 1000 and not any(abs(start - c) < 0.05 for c in waited[pid]):
                slow[(pid, start)] = ms
else:
    running = collections.defaultdict(list)  # thread -> [(epoch, ms)] in state Updating
    locked = collections.defaultdict(list)  # (thread, trx) -> epochs seen in LOCK WAIT
    for line in open(path):
        f = line.rstrip("\n").split("|")
        if f[0] == "B" and len(f) == 4:
            batch = max(batch, float(f[3]))
        elif f[0] == "P" and len(f) == 5 and f[2] in ids:
            samples += 1
            if f[4] == "Updating":
                running[f[2]].append((float(f[1]), float(f[3])))
        elif f[0] == "L" and len(f) == 5 and f[2] in ids:
            locked[(f[2], f[3])].append(float(f[1]))
            blockers[" ".join(f[4].split())[:50] or "?"] += 1
    stmts = {thread: statements(seen) for thread, seen in running.items()}
    confirmed = set()
    for (thread, trx), ts in locked.items():
        length = (max(ts) - min(ts)) * 1000
        for i, (start, ms, last) in enumerate(stmts.get(thread, [])):
            if any(start - 0.001 <= t <= last + interval + 0.001 for t in ts):
                length = max(length, ms)
                confirmed.add((thread, i))
        waits[(thread, trx)] = length
    for thread, ss in stmts.items():
        for i, (start, ms, _) in enumerate(ss):
            if ms >= interval * 1000 and (thread, i) not in confirmed:
                slow[(thread, start)] = ms
longest = max(waits.values(), default=0.0)
top = blockers.most_common(1)[0][0] if blockers else "-"
print(f"{longest:.1f}|{len(waits)}|{sum(1 for v in waits.values() if v > goal_ms)}|{samples}|{batch:.1f}"
      f"|{len(slow)}|{max(slow.values(), default=0.0):.1f}|{top}")
EOF
}

# ---------------------------------------------------------------- setup

bench_setup upgrade upgrade
command -v pgbench >/dev/null 2>&1 || [[ " ${ENGINE_LIST[*]} " != *" pg "* ]] || { echo "error: pgbench not found (apt-get install postgresql-contrib or the client package of the server's version)" >&2; exit 2; }
write_programs
mkdir -p "$WORK/upgrades"
printf 'table = "customers"\nset = { email_lower = "lower(email)" }\n' >"$WORK/upgrades/$UPGRADE.toml"
cd "$WORK" # see the header: no lockgate.toml of the caller's

PY=python3
if [[ " ${ENGINE_LIST[*]} " == *" mariadb "* ]] && ! python3 -c 'import pymysql' 2>/dev/null; then
    VENV=${VENV:-"$TMP/venv"}
    if ! "$VENV/bin/python" -c 'import pymysql' 2>/dev/null; then
        log "-- installing PyMySQL into the venv $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q PyMySQL >"$TMP/pip.log" 2>&1 || { cat "$TMP/pip.log" >&2; echo "error: pip install PyMySQL failed" >&2; exit 2; }
    fi
    PY="$VENV/bin/python"
fi

log "-- generating $ROWS customers"
python3 "$GEN" "$ROWS" --out "$CLEAN"
EXPECT_FP=$(fp_file csv "$CLEAN")
log "   $CLEAN ($(du -h "$CLEAN" | cut -f1), fingerprint $EXPECT_FP)"
log "   writer: $RATE updates/s over $CLIENTS connections; baseline $PHASE_S s; lock waits sampled every ${SAMPLE_S}s"

# load ENGINE: a fresh lockgate_bench with the customers table loaded and checked, the
# columns the upgrade and the writer need, writer_stop, applied_upgrades (upgrade init).
load() {
    local e=$1 out
    create_db "$e" >/dev/null
    create_table "$e"
    "native_$e" "${NAME[$e]} load"
    check_fp "$e" "${NAME[$e]} load" || { correctness "load"; }
    case $e in
        pg)
            sql pg "ALTER TABLE customers ADD COLUMN email_lower text, ADD COLUMN writes int NOT NULL DEFAULT 0;
                    CREATE TABLE writer_stop (x int)" >/dev/null
            ;;
        mariadb)
            sql mariadb "ALTER TABLE customers ADD COLUMN email_lower varchar(200) NULL,
                         ADD COLUMN writes int NOT NULL DEFAULT 0, ALGORITHM=INSTANT" >/dev/null
            ;;
    esac
    if ! out=$("$LOCKGATE" upgrade init --db "${URL[$e]}" --table customers 2>&1); then
        fail "${NAME[$e]}: lockgate upgrade init exited non-zero: $out"
        correctness "load"
    fi
    case $e in
        pg) "${PSQL[@]}" -d "$BENCH_DB" -c "VACUUM ANALYZE customers" ;;
        mariadb) sql mariadb "ANALYZE TABLE customers" >/dev/null ;;
    esac
}

# ---------------------------------------------------------------- writer and sampler

WRITER_PID='' SAMPLER_PID=''
# start_writer ENGINE PREFIX: the writer in the background; its log at PREFIX.*
start_writer() {
    case $1 in
        pg)
            sql pg "TRUNCATE writer_stop" >/dev/null
            PGAPPNAME=$WRITER_APP pgbench -n -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -c "$CLIENTS" -j 1 \
                -R "$RATE" -T 86400 -f "$TMP/writer.sql" -D rows="$ROWS" -l --log-prefix "$2.log" \
                "$BENCH_DB" >"$2.out" 2>"$2.err" &
            ;;
        mariadb)
            "$PY" "$TMP/writer.py" "$MY_HOST" "$MY_PORT" "$MY_USER" "$BENCH_DB" "$ROWS" "$RATE" "$CLIENTS" \
                "$2.log" "$2.ids" >"$2.out" 2>"$2.err" &
            ;;
    esac
    WRITER_PID=$!
    BG_PIDS+=("$WRITER_PID")
}

# wait_for PID SECONDS: waits for PID to exit, at most SECONDS, then kills it; sets
# WAIT_RC (its exit status; 999 when it had to be killed).
wait_for() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        WAIT_RC=999
        return
    fi
    WAIT_RC=0
    wait "$1" || WAIT_RC=$?
}

# stop_writer ENGINE LABEL PREFIX: stops the writer; one that had stopped by itself, or
# that did not stop cleanly, is a failure.
stop_writer() {
    local e=$1 label=$2 p=$3
    if ! kill -0 "$WRITER_PID" 2>/dev/null; then
        fail "$label: the writer stopped early: $(tr '\n' ' ' <"$p.err" | head -c 300)"
        wait "$WRITER_PID" || true
        return
    fi
    case $e in
        pg)
            sql pg "INSERT INTO writer_stop VALUES (1)" >/dev/null
            wait_for "$WRITER_PID" 30
            # Every client must have ended on the stop (the division by zero), nothing else.
            if ((WAIT_RC != 2)) || [[ $(grep -c 'aborted in command' "$p.err" || true) != "$CLIENTS" ]] ||
                [[ $(grep -c 'aborted in command .*division by zero' "$p.err" || true) != "$CLIENTS" ]]; then
                fail "$label: pgbench did not stop cleanly (exit $WAIT_RC): $(tr '\n' ' ' <"$p.err" | head -c 300)"
            fi
            ;;
        mariadb)
            kill -TERM "$WRITER_PID"
            wait_for "$WRITER_PID" 60
            ((WAIT_RC == 0)) || fail "$label: the writer exited $WAIT_RC: $(tr '\n' ' ' <"$p.err" | head -c 300)"
            ;;
    esac
}

# start_sampler ENGINE FILE: the lock-wait sampler in the background.
start_sampler() {
    case $1 in
        pg)
            # One session, \watch every SAMPLE_S: each writer session waiting on a lock, how
            # long (now() - state_change: its UPDATE started then) and its first blocker
            # (W lines); each writer UPDATE running but not waiting for a lock (S lines);
            # and lockgate's batch UPDATE, how long it has run (B lines).
            printf '%s\n' "SELECT 'W', extract(epoch FROM now()), round((extract(epoch FROM now() - a.state_change) * 1000)::numeric, 1),
  a.pid, extract(epoch FROM a.state_change), a.wait_event,
  coalesce(b.application_name || ': ' || translate(left(b.query, 60), E'|\n', '  '), '?')
  FROM pg_stat_activity a LEFT JOIN pg_stat_activity b ON b.pid = (pg_blocking_pids(a.pid))[1]
  WHERE a.wait_event_type = 'Lock' AND a.application_name = '$WRITER_APP'
  UNION ALL
  SELECT 'S', extract(epoch FROM now()), round((extract(epoch FROM now() - query_start) * 1000)::numeric, 1),
  pid, extract(epoch FROM query_start), coalesce(wait_event_type || ':' || wait_event, 'CPU'), ''
  FROM pg_stat_activity WHERE application_name = '$WRITER_APP' AND state = 'active'
  AND wait_event_type IS DISTINCT FROM 'Lock'
  UNION ALL
  SELECT 'B', extract(epoch FROM now()), round((extract(epoch FROM now() - query_start) * 1000)::numeric, 1),
  pid, extract(epoch FROM query_start), '', ''
  FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'UPDATE \"customers\" SET%'" "\\watch $SAMPLE_S" |
                "${PSQL[@]}" -d "$BENCH_DB" -At -F'|' >"$2" 2>"$2.err" &
            ;;
        mariadb) "$PY" "$TMP/sampler.py" "$MY_HOST" "$MY_PORT" "$MY_USER" "$SAMPLE_S" "$2" 2>"$2.err" & ;;
    esac
    SAMPLER_PID=$!
    BG_PIDS+=("$SAMPLER_PID")
}

stop_sampler() {
    local label=$1 file=$2
    if ! kill -0 "$SAMPLER_PID" 2>/dev/null; then
        fail "$label: the lock-wait sampler stopped early: $(tr '\n' ' ' <"$file.err" | head -c 300)"
        wait "$SAMPLER_PID" || true
        return
    fi
    kill -TERM "$SAMPLER_PID"
    wait_for "$SAMPLER_PID" 10
}

# ---------------------------------------------------------------- phases

# Results, by "COLUMN,KEY": COLUMN is ENGINE.RUN, KEY a phase's figure.
declare -A R
COLUMNS=()

# counters ENGINE: the server's cumulative counters that say where writers may wait
# besides row locks, space-separated (deltas over a phase are reported):
#   pg:      WAL bytes, WAL writes, WAL syncs, WAL buffers full, blocks read (this database)
#   mariadb: Innodb_os_log_written, Innodb_log_waits, Innodb_buffer_pool_reads,
#            Innodb_buffer_pool_wait_free, Innodb_row_lock_waits, Innodb_row_lock_time (ms)
counters() {
    case $1 in
        pg)
            sql pg "SELECT w.wal_bytes, w.wal_write, w.wal_sync, w.wal_buffers_full, d.blks_read
                    FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = current_database()" | tr '|' ' '
            ;;
        mariadb)
            sql mariadb "SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY FIELD(VARIABLE_NAME, 'INNODB_OS_LOG_WRITTEN',
                           'INNODB_LOG_WAITS', 'INNODB_BUFFER_POOL_READS', 'INNODB_BUFFER_POOL_WAIT_FREE',
                           'INNODB_ROW_LOCK_WAITS', 'INNODB_ROW_LOCK_TIME') SEPARATOR ' ')
                         FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('INNODB_OS_LOG_WRITTEN',
                           'INNODB_LOG_WAITS', 'INNODB_BUFFER_POOL_READS', 'INNODB_BUFFER_POOL_WAIT_FREE',
                           'INNODB_ROW_LOCK_WAITS', 'INNODB_ROW_LOCK_TIME')"
            ;;
    esac
}

# counters_text ENGINE BEFORE AFTER: the counters' deltas, in words.
counters_text() {
    local -a b a
    read -ra b <<<"$2"
    read -ra a <<<"$3"
    case $1 in
        pg)
            echo "WAL $(calc '%.1f' "(${a[0]} - ${b[0]}) / 1048576") MB, $((a[1] - b[1])) WAL writes, $((a[2] - b[2])) WAL syncs," \
                "WAL buffers full $((a[3] - b[3])) times, $((a[4] - b[4])) blocks read"
            ;;
        mariadb)
            echo "redo $(calc '%.1f' "(${a[0]} - ${b[0]}) / 1048576") MB, log waits $((a[1] - b[1])), buffer pool reads $((a[2] - b[2]))," \
                "free-page waits $((a[3] - b[3])), row lock waits $((a[4] - b[4])) ($((a[5] - b[5])) ms in all, any session)"
            ;;
    esac
}

# phase ENGINE COL PHASE: one phase (base, backfill, bulk) with the writer and sampler
# around it; stores the figures in R.
phase() {
    local e=$1 col=$2 ph=$3 label="${NAME[$1]} run ${2#*.}, $3" p="$TMP/$2.$3" t0 t1 kind=pgbench
    local n p50 p99 max committed failed first longest nwaits over samples batch slow slowest top before
    if [[ $e == pg ]]; then sql pg CHECKPOINT >/dev/null; fi
    before=$(counters "$e")
    start_sampler "$e" "$p.samples"
    start_writer "$e" "$p"
    sleep "$WARMUP"
    t0=$(now)
    case $ph in
        base) sleep "$PHASE_S" ;;
        backfill)
            timed "$LOCKGATE" upgrade run --db "${URL[$e]}" --table customers "${RUN_ARGS[@]}" --json >"$p.json" 2>"$p.json.err"
            R[$col,run_rc]=$T_RC R[$col,kb]=$T_KB
            ;;
        bulk)
            case $e in
                pg) timed "${PSQL[@]}" -d "$BENCH_DB" -c "UPDATE customers SET email_lower = lower(email)" >"$p.out.sql" 2>&1 ;;
                mariadb) timed "${MARIADB[@]}" "$BENCH_DB" -e "UPDATE customers SET email_lower = lower(email)" >"$p.out.sql" 2>&1 ;;
            esac
            ((T_RC == 0)) || fail "$label: the UPDATE exited $T_RC: $(head -c 300 "$p.out.sql")"
            ;;
    esac
    t1=$(now)
    sleep "$TAIL"
    stop_writer "$e" "$label" "$p"
    stop_sampler "$label" "$p.samples"
    R[$col,$ph.counters]=$(counters_text "$e" "$before" "$(counters "$e")")
    R[$col,$ph.s]=$(calc '%.2f' "$t1 - $t0")

    if [[ $e == mariadb ]]; then kind=py; fi
    read -r n p50 p99 max committed failed first < <(python3 "$TMP/stats.py" "$kind" "$t0" "$t1" "$p.log*" || echo "0 0 0 0 0 1 stats.py-failed")
    R[$col,$ph.n]=$n R[$col,$ph.p50]=$p50 R[$col,$ph.p99]=$p99 R[$col,$ph.max]=$max
    R[$col,committed]=$((${R[$col,committed]:-0} + committed))
    R[$col,since_load]=$((${R[$col,since_load]:-0} + committed))
    R[$col,$ph.failed]=$failed
    [[ $first != stats.py-failed ]] || fail "$label: cannot read the writer's log $p.log*"
    ((failed == 0)) || log "   !! $label: $failed writer updates failed ($first)"
    if [[ $e == pg ]]; then
        IFS='|' read -r longest nwaits over samples batch slow slowest top < <(python3 "$TMP/waits.py" pg "$p.samples" "$WAIT_GOAL_MS" "$SAMPLE_S" || echo "?|?|?|?|?|?|?|waits.py failed")
    else
        IFS='|' read -r longest nwaits over samples batch slow slowest top < <(python3 "$TMP/waits.py" mariadb "$p.samples" "$WAIT_GOAL_MS" "$SAMPLE_S" "$p.ids" || echo "?|?|?|?|?|?|?|waits.py failed")
    fi
    [[ $longest != '?' ]] || fail "$label: cannot read the lock-wait samples $p.samples"
    R[$col,$ph.wait]=$longest R[$col,$ph.waits]=$nwaits R[$col,$ph.over]=$over R[$col,$ph.blocker]=$top R[$col,$ph.batch]=$batch
    R[$col,$ph.slow]=$slow R[$col,$ph.slowest]=$slowest
    local extra=''
    if [[ $ph == backfill ]]; then extra="; longest batch UPDATE seen $batch ms"; fi
    log "   $ph: $(calc '%.1f' "$t1 - $t0") s; writer $n updates (p50 $p50, p99 $p99, max $max ms), $failed failed;" \
        "lock waits $nwaits (longest $longest ms, $over over $WAIT_GOAL_MS ms, $samples samples; blocker: $top);" \
        "$slow updates slow without a lock wait seen (longest $slowest ms)${extra}"
}

# check_table ENGINE LABEL WHAT: every row's email_lower is lower(email), byte for byte;
# WHAT=applied: also every row's applied_upgrades is exactly ["email_lower"].
check_table() {
    local e=$1 label=$2 got
    case $e in
        pg)
            got=$(sql pg "SELECT count(*), count(*) FILTER (WHERE applied_upgrades IS DISTINCT FROM '$APPLIED'),
                                 count(*) FILTER (WHERE email_lower IS DISTINCT FROM lower(email)) FROM customers")
            ;;
        mariadb)
            got=$(sql mariadb "SELECT count(*), coalesce(sum(NOT (applied_upgrades <=> '$APPLIED')), 0),
                                      coalesce(sum(NOT (CAST(email_lower AS BINARY) <=> CAST(lower(email) AS BINARY))), 0) FROM customers")
            ;;
    esac
    local rows wrong_applied wrong_lower
    IFS='|' read -r rows wrong_applied wrong_lower <<<"$got"
    [[ $rows == "$ROWS" ]] || fail "$label: customers has $rows rows, expected $ROWS"
    ((wrong_lower == 0)) || fail "$label: $wrong_lower rows where email_lower is not lower(email)"
    if [[ $3 == applied ]]; then
        ((wrong_applied == 0)) || fail "$label: $wrong_applied rows whose applied_upgrades is not exactly $APPLIED"
    fi
}

# check_writes ENGINE COL: the sum of `writes` is what the writer committed since the
# table was loaded, and every written row holds the email of its last write.
check_writes() {
    local e=$1 col=$2 label="${NAME[$1]} run ${2#*.}" got sum wrong
    case $e in
        pg)
            got=$(sql pg "SELECT coalesce(sum(writes), 0), count(*) FILTER (WHERE writes > 0
                            AND email IS DISTINCT FROM 'W' || writes || '.' || customer_id || '@Example.com') FROM customers")
            ;;
        mariadb)
            got=$(sql mariadb "SELECT coalesce(sum(writes), 0), coalesce(sum(writes > 0
                            AND NOT (CAST(email AS BINARY) <=> CAST(CONCAT('W', writes, '.', customer_id, '@Example.com') AS BINARY))), 0) FROM customers")
            ;;
    esac
    IFS='|' read -r sum wrong <<<"$got"
    R[$col,sum]=$((${R[$col,sum]:-0} + sum))
    [[ $sum == "${R[$col,since_load]}" ]] ||
        fail "$label: the writer committed ${R[$col,since_load]} updates, the table's writes add up to $sum (updates lost or doubled)"
    R[$col,since_load]=0
    ((wrong == 0)) || fail "$label: $wrong written rows whose email is not their last write's"
}

# check_run COL LABEL: the upgrade run's exit status and --json report.
check_run() {
    local col=$1 label=$2 p="$TMP/$1.backfill" summary
    if [[ ${R[$col,run_rc]} != 0 ]]; then
        fail "$label: lockgate upgrade run exited ${R[$col,run_rc]}: $(tr '\n' ' ' <"$p.json.err" | head -c 400)"
        R[$col,upgraded]=0 R[$col,batches]=0
        return
    fi
    summary=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
u = d["upgrades"]
o = u[0] if len(u) == 1 else {}
print(len(u), o.get("upgrade", "?"), o.get("state", "?"), o.get("remaining", "?"), o.get("upgraded", 0), o.get("batches", 0), d.get("seconds", 0))' "$p.json" 2>/dev/null || echo "? ? ? ? 0 0 0")
    local n name state remaining upgraded batches secs
    read -r n name state remaining upgraded batches secs <<<"$summary"
    R[$col,upgraded]=$upgraded R[$col,batches]=$batches R[$col,run_s]=$secs
    [[ "$n $name $state $remaining $upgraded" == "1 $UPGRADE complete 0 $ROWS" ]] ||
        fail "$label: upgrade run reported upgrades/name/state/remaining/upgraded = $n $name $state $remaining $upgraded, expected 1 $UPGRADE complete 0 $ROWS"
}

bench_engine() {
    local e=$1 run=$2 col="$1.$2" label
    label="${NAME[$e]} run $run"
    log "-- ${NAME[$e]}, run $run/$RUNS: loading $ROWS rows"
    load "$e"
    COLUMNS+=("$col")
    phase "$e" "$col" base
    phase "$e" "$col" backfill
    check_run "$col" "$label"
    check_table "$e" "$label, after the backfill" applied
    R[$col,rps]=$(calc '%.0f' "${R[$col,upgraded]} / (${R[$col,backfill.s]} > 0 ? ${R[$col,backfill.s]} : 0.01)")
    log "   backfill: ${R[$col,upgraded]} rows in ${R[$col,batches]} batches, ${R[$col,rps]} rows/s, peak RSS $(calc '%.1f' "${R[$col,kb]} / 1024") MB"

    if [[ $BULK_FROM == reload ]]; then
        # The bulk UPDATE on a freshly loaded table, as the backfill had it.
        check_writes "$e" "$col"
        log "   reloading $ROWS rows for the bulk UPDATE"
        load "$e"
    else
        log "   resetting email_lower for the bulk UPDATE"
        sql "$e" "UPDATE customers SET email_lower = NULL" >/dev/null
        if [[ $e == pg ]]; then "${PSQL[@]}" -d "$BENCH_DB" -c "VACUUM customers"; fi
    fi
    phase "$e" "$col" bulk
    check_table "$e" "$label, after the bulk UPDATE" lower
    check_writes "$e" "$col"
    drop_db "$e" >/dev/null
}

for ((run = 1; run <= RUNS; run++)); do
    for e in "${ENGINE_LIST[@]}"; do bench_engine "$e" "$run"; done
done

# ---------------------------------------------------------------- report

met() { if [[ $(goal "$1" "$2") == ok ]]; then echo met; else echo MISSED; fi; }
# row LABEL FORMAT_FN: one line of the report, FORMAT_FN COL giving each column's cell.
row() {
    local label=$1 fn=$2 col
    printf '%-44s' "$label"
    for col in "${COLUMNS[@]}"; do printf ' %-34s' "$("$fn" "$col")"; done
    echo
}
head_cell() { if ((RUNS > 1)); then echo "${NAME[${1%.*}]} #${1#*.}"; else echo "${NAME[${1%.*}]}"; fi; }
writer_cell() { echo "${R[$1,$PH.p50]} / ${R[$1,$PH.p99]} / ${R[$1,$PH.max]} (${R[$1,$PH.n]})"; }
wait_cell() { echo "${R[$1,$PH.wait]} ms (${R[$1,$PH.waits]} waits, ${R[$1,$PH.over]} > $WAIT_GOAL_MS)"; }
blocker_cell() { echo "${R[$1,$PH.blocker]:0:34}"; }
secs_cell() { echo "${R[$1,$PH.s]} s"; }
rps_cell() { echo "${R[$1,rps]} $(met "$RATE_GOAL" "${R[$1,rps]}")"; } # met: the goal <= rows/s
batch_cell() { echo "${R[$1,batches]} (mean $(calc '%.0f' "${R[$1,upgraded]} / (${R[$1,batches]} > 0 ? ${R[$1,batches]} : 1)") rows)"; }
rss_cell() { calc '%.1f MB' "${R[$1,kb]:-0} / 1024"; }
p99_ratio() { ratio "${R[$1,backfill.p99]}" "${R[$1,base.p99]}"; }
p99_cell() { local r; r=$(p99_ratio "$1"); echo "${r}x $(met "$r" "$P99_GOAL")"; }
goal_wait_cell() { echo "${R[$1,backfill.wait]} ms $(met "${R[$1,backfill.wait]}" "$WAIT_GOAL_MS")"; }
batch_ms_cell() { echo "${R[$1,backfill.batch]} ms"; }
slow_cell() { echo "${R[$1,$PH.slow]} (longest ${R[$1,$PH.slowest]} ms)"; }
failed_cell() { echo "${R[$1,$PH.failed]}"; }
max_cell() { echo "${R[$1,$PH.max]} ms"; }
writes_cell() { echo "${R[$1,committed]} committed, sum ${R[$1,sum]:-?}"; }

echo
echo "== Results: $ROWS rows, writer $RATE updates/s over $CLIENTS connections, $RUNS run(s) side by side;" \
    "lockgate $("$LOCKGATE" --version | awk '{print $2}'), $(nproc) cores"
echo "   (load average now $(loadavg): other work on this machine skews the timings)"
echo "writer latency: p50 / p99 / max ms from the scheduled start, of the updates scheduled in the phase"
echo "lock wait: the longest a writer's UPDATE was seen waiting on a lock, sampled every ${SAMPLE_S}s"
echo
row "" head_cell
for PH in base backfill bulk; do
    case $PH in
        base) echo "1. baseline (writer alone)" ;;
        backfill) echo "2. backfill: lockgate upgrade run (${UPGRADE_ARGS:-default pacing})" ;;
        bulk) echo "3. one UPDATE customers SET email_lower = lower(email) (table: $(if [[ $BULK_FROM == reload ]]; then echo "reloaded"; else echo "email_lower reset to NULL"; fi))" ;;
    esac
    row "   duration" secs_cell
    if [[ $PH == backfill ]]; then
        row "   rows/s (goal >= $RATE_GOAL)" rps_cell
        row "   batches" batch_cell
        row "   lockgate peak RSS" rss_cell
        row "   longest batch UPDATE seen running" batch_ms_cell
    fi
    row "   writer p50 / p99 / max ms (count)" writer_cell
    row "   writer updates failed" failed_cell
    if [[ $PH == backfill ]]; then row "   writer p99 / baseline p99 (goal <= ${P99_GOAL}x)" p99_cell; fi
    row "   longest writer lock wait" wait_cell
    if [[ $PH == backfill ]]; then row "   longest lock wait (goal <= $WAIT_GOAL_MS ms)" goal_wait_cell; fi
    row "   slow writer UPDATEs, no lock wait seen" slow_cell
    if [[ $PH != base ]]; then
        row "   upper bound: writer max latency" max_cell
        row "   what the writers waited for" blocker_cell
    fi
done
row "writer updates (lost-update check)" writes_cell
echo "(MariaDB: a lock wait is a writer transaction innodb_trx saw in LOCK WAIT (read every ~105 ms, as its cache allows),"
echo " as long as its UPDATE was seen in state Updating in the process list (TIME_MS, every ${SAMPLE_S}s);"
echo " slow UPDATEs: writer UPDATEs seen running >= ${SAMPLE_S}s that no lock-wait sample saw)"
echo
echo "Server counters over each phase (writer start to stop), where writers wait besides row locks:"
for col in "${COLUMNS[@]}"; do
    for PH in base backfill bulk; do
        printf '  %-14s %-9s %s\n' "$(head_cell "$col")" "$PH" "${R[$col,$PH.counters]}"
    done
done
correctness "upgrade complete and recorded once per row, email_lower = lower(email) after the backfill and the UPDATE, no writer update lost"
