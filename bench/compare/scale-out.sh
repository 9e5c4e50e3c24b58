#!/usr/bin/env bash
# scale-out.sh: the single-SMS API path on the embedded SQLite store, on PostgreSQL with one
# node, and on PostgreSQL with two nodes sharing the database, in one run on one machine.
#
# Starts smsc-sim, a PostgreSQL cluster of its own (initdb under $WORK, durable: fsync and
# synchronous_commit on, as an operator runs it) and `switchyard serve` (release builds) on
# 127.0.0.1, then sends POST /v1/messages with `http-load`, each run bounded by COUNT requests
# and DURATION seconds:
#   sqlite      one node on SQLite                                    (the baseline)
#   pg-1        one node on PostgreSQL
#   pg-2        two nodes on PostgreSQL, the load split evenly over them
# and prints one line per run: accepted/s, p50/p99 latency, the gateways' CPU µs per request
# and PostgreSQL's (every server process of the cluster). All of it shares the machine's
# cores, so pg-2 shows what a second node costs here, not what a second machine would give.
#
# Knobs (environment): COUNT=20000 DURATION=15 CONNS=64 RATE= (unpaced when empty)
#   SKIP_BUILD=1     use the binaries already in $CARGO_TARGET_DIR/release
#   PG_STATEMENTS=1  load pg_stat_statements and print, after pg-1, the statements that took
#                    the most time per accepted message (where PostgreSQL's CPU goes)
#   DATA_BASE=/tmp   where the stores live (the disk's fsync is part of the measure)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/bench/compare/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
COUNT=${COUNT:-20000}
DURATION=${DURATION:-15}
CONNS=${CONNS:-64}
KEY=sk_scale_bench_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
WORK=$(mktemp -d "${DATA_BASE:-/tmp}/scale-bench.XXXXXX")
PIDS=()
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
PG_USER=switchyard-pg
AS_PG=()

cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if [[ -f $WORK/pg/postmaster.pid ]]; then
        "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build -q --release -p switchyard-gateway --bin switchyard \
        -p switchyard-bench --bin smsc-sim --bin http-load)
fi

wait_line() { # file pattern
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
    echo "no '$2' in $1" >&2
    exit 1
}

# PostgreSQL refuses to run as root: the cluster runs as $PG_USER then.
if [[ $(id -u) == 0 ]]; then
    id -u "$PG_USER" >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
    chown "$PG_USER" "$WORK"
    AS_PG=(runuser -u "$PG_USER" --)
fi
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
PG_OPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK -c max_connections=200 -c shared_buffers=256MB"
[[ ${PG_STATEMENTS:-0} == 1 ]] && PG_OPTS+=" -c shared_preload_libraries=pg_stat_statements"
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w -o "$PG_OPTS" start >/dev/null
psql_() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -qAt -c "$2"; }
psql_ postgres "CREATE DATABASE switchyard" >/dev/null
[[ ${PG_STATEMENTS:-0} == 1 ]] && psql_ switchyard "CREATE EXTENSION pg_stat_statements" >/dev/null
PG_URL="host=127.0.0.1 port=$PG_PORT user=postgres dbname=switchyard sslmode=disable"

"$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms 10 >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
wait_line "$WORK/sim.out" "listening on"
SIM=$(addr_in "$WORK/sim.out" "listening on")
HASH=$(key_hash "$KEY")

config() { # name store-table node-table
    cat >"$WORK/$1.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/$1"

[store]
$2

$3

[[tenants]]
name = "bench"
api_keys = ["$HASH"]
preference = "cheapest"

$(sim_sms_toml "${SIM##*:}")
TOML
}

GWS=()
APIS=()
start_gw() { # name
    "$BIN/switchyard" serve --config "$WORK/$1.toml" >"$WORK/$1.out" 2>"$WORK/$1.err" &
    local pid=$!
    PIDS+=($pid)
    GWS+=($pid)
    wait_line "$WORK/$1.out" "listening on"
    local api
    api=$(addr_in "$WORK/$1.out" "listening on")
    for _ in $(seq 100); do curl -sf "http://$api/readyz" >/dev/null && break; sleep 0.1; done
    APIS+=("$api")
}
stop_gws() {
    local pid
    for pid in "${GWS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    GWS=()
    APIS=()
}

TICK=$(getconf CLK_TCK)
gw_ticks() { local t=0 pid; for pid in "${GWS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
pg_ticks() { # every process of the cluster (postmaster and its children)
    local main t=0 pid
    main=$(head -1 "$WORK/pg/postmaster.pid")
    for pid in $main $(pgrep -P "$main"); do
        [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$t"
}

SEQ=0
run() { # label
    local n=${#APIS[@]} i reports=() loads=() gw0 pg0 gw1 pg1
    local conns=$((CONNS / n)) count=$((COUNT / n))
    gw0=$(gw_ticks)
    pg0=$(pg_ticks)
    for ((i = 0; i < n; i++)); do
        local args=(--url "http://${APIS[i]}/v1/messages" --method POST --header "Authorization: Bearer $KEY"
            --header "Content-Type: application/json"
            --body '{"to":"+4479{seq8}","from":"Bench","body":"Your code is {seq6}"}'
            --connections "$conns" --count "$count" --duration-s "$DURATION" --seq-start "$SEQ" --label "$1-$i")
        [[ -n ${RATE:-} ]] && args+=(--rate "$((RATE / n))")
        "$BIN/http-load" "${args[@]}" >"$WORK/report-$i.json" &
        loads+=($!)
        SEQ=$((SEQ + count))
    done
    wait "${loads[@]}"
    gw1=$(gw_ticks)
    pg1=$(pg_ticks)
    for ((i = 0; i < n; i++)); do reports+=("$(cat "$WORK/report-$i.json")"); done
    python3 - "$1" "$((gw1 - gw0))" "$((pg1 - pg0))" "$TICK" "${reports[@]}" <<'PY'
import json, sys
label, gw, pg, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
reports = [json.loads(r) for r in sys.argv[5:]]
ok = max(sum(r["ok"] for r in reports), 1)
rate = sum(r["ok_per_s"] for r in reports)
p50 = max(r["latency_us"]["p50"] for r in reports) / 1000
p99 = max(r["latency_us"]["p99"] for r in reports) / 1000
other = {}
for r in reports:
    for k, v in r["by_status"].items():
        if not k.startswith("2"):
            other[k] = other.get(k, 0) + v
print(f"{label:7} accepted {rate:8.0f}/s  ok {ok:6}  other {other}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
      f"gateway CPU {gw / tick * 1e6 / ok:5.0f} µs/request  PostgreSQL CPU {pg / tick * 1e6 / ok:5.0f} µs/request")
PY
    sleep 2
}

config sqlite 'group_commit_linger_ms = 2' ''
start_gw sqlite
run sqlite
stop_gws

config pg1 "kind = \"postgres\"
url = \"$PG_URL\"
pool_size = 16" '[node]
id = 1'
start_gw pg1
[[ ${PG_STATEMENTS:-0} == 1 ]] && psql_ switchyard "SELECT pg_stat_statements_reset()" >/dev/null
run pg-1
if [[ ${PG_STATEMENTS:-0} == 1 ]]; then
    echo "pg-1: statements by total time (calls and µs per accepted message, mean µs per call):"
    psql_ switchyard "SELECT round(s.calls::numeric / m.n, 2) || ' calls  ' ||
            round((s.total_exec_time * 1000 / m.n)::numeric, 1) || ' µs  ' ||
            round((s.mean_exec_time * 1000)::numeric, 1) || ' µs/call  ' ||
            left(regexp_replace(s.query, '\s+', ' ', 'g'), 90)
        FROM pg_stat_statements s, (SELECT count(*) AS n FROM messages) m
        WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = 'switchyard')
        ORDER BY s.total_exec_time DESC LIMIT 15"
fi
stop_gws

config pg2a "kind = \"postgres\"
url = \"$PG_URL\"
pool_size = 16" '[node]
id = 1'
config pg2b "kind = \"postgres\"
url = \"$PG_URL\"
pool_size = 16" '[node]
id = 2'
start_gw pg2a
start_gw pg2b
run pg-2
stop_gws
