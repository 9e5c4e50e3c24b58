#!/usr/bin/env bash
# memory.sh: the gateway's resident memory with STORED messages in its store and IN_FLIGHT more
# in flight.
#
# Starts smsc-sim and `switchyard serve` (release builds) on 127.0.0.1, then, sampling the
# gateway's VmRSS every second:
#   stored     STORED messages accepted through the batch API and delivered (receipts back)
#   in_flight  the simulator holds its receipts back (an hour), IN_FLIGHT more are accepted and
#              submitted: they stay `sent`, waiting for a receipt, as on a carrier whose
#              receipts are slow
#   queued     the simulator refuses binds and drops its connections, QUEUED more are accepted:
#              they wait in the carrier's queue and, beyond it, in the store (only their ids in
#              memory) for the carrier to come back
#   idle       IDLE_S seconds later, nothing moving
# and prints one line per phase (RSS now and the peak during the phase, in MB, the messages in
# the store, the phase's duration) and the store's size on disk. Ends the processes it started,
# by PID.
#
# Knobs (environment): STORED=1000000 IN_FLIGHT=100000 QUEUED=100000 RECIPIENTS=10000 IDLE_S=10
#   DURABILITY=fsync  the store's [store] durability
#   GW_ENV="…"        extra environment for the gateway (e.g. "MALLOC_ARENA_MAX=2")
#   SKIP_BUILD=1      use the binaries already in $CARGO_TARGET_DIR/release
#   DATA_BASE=/tmp    where the store lives
#   KEEP=1            keep the work directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=compare/lib.sh
source "$ROOT/bench/compare/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
STORED=${STORED:-1000000}
IN_FLIGHT=${IN_FLIGHT:-100000}
QUEUED=${QUEUED:-100000}
RECIPIENTS=${RECIPIENTS:-10000}
IDLE_S=${IDLE_S:-10}
DURABILITY=${DURABILITY:-fsync}
KEY=sk_memory_bench_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
WORK=$(mktemp -d "${DATA_BASE:-/tmp}/memory-bench.XXXXXX")
PIDS=()
trap 'stop_all; finish_work' EXIT

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build -q --release -p switchyard-gateway --bin switchyard \
        -p switchyard-bench --bin smsc-sim --bin batch-load)
fi

start sim "$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms 10
wait_for 10 grep -q "control on" "$WORK/sim.out" || die "smsc-sim did not start"
SIM=$(addr_in "$WORK/sim.out" "listening on")
CONTROL=$(addr_in "$WORK/sim.out" "control on")
HASH=$(key_hash "$KEY")
cat >"$WORK/switchyard.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"

[store]
durability = "$DURABILITY"

# The queued phase takes the carrier down: a breaker that never opens keeps accepting for it
# (with an open breaker the batch API refuses what no carrier can take now).
[routing.breaker]
consecutive_failures = 10000
min_requests = 1000000

[[tenants]]
name = "bench"
api_keys = ["$HASH"]
preference = "cheapest"

$(sim_sms_toml "${SIM##*:}" "registered_delivery = 1")
TOML
# shellcheck disable=SC2086
start gw env ${GW_ENV:-} "$BIN/switchyard" serve --config "$WORK/switchyard.toml"
GW=$LAST_PID
wait_for 20 grep -q "listening on" "$WORK/gw.out" || die "the gateway did not start"
API=$(addr_in "$WORK/gw.out" "listening on")
wait_for 20 curl -sf "http://$API/readyz" || die "the gateway is not ready"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$GW/status"; }
# The gateway's RSS every second, in kB, into rss.log (one line each).
(while kill -0 "$GW" 2>/dev/null; do rss_kb >>"$WORK/rss.log" 2>/dev/null || true; sleep 1; done) &
SAMPLER=$!
PIDS+=("$SAMPLER")
lines() { wc -l <"$WORK/rss.log" 2>/dev/null || echo 0; }
peak_since() { # line number: the highest sample after it, in MB
    tail -n +"$(($1 + 1))" "$WORK/rss.log" | sort -n | tail -1 | awk '{printf "%.0f", $1 / 1024}'
}
sim_stat() { curl -sf "http://$CONTROL/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
stored_messages() { sqlite3 -readonly "$WORK/data/switchyard.db" 'SELECT count(*) FROM messages' 2>/dev/null || echo '?'; }

sim_behave() { # field python-value: changes one field of the simulator's behaviour
    curl -sf "http://$CONTROL/behaviour" |
        python3 -c "import json,sys; b=json.load(sys.stdin); b['$1']=$2; print(json.dumps(b))" |
        curl -sf -X PUT -H 'content-type: application/json' --data-binary @- "http://$CONTROL/behaviour" >/dev/null
}

send() { # messages
    local batches=$(($1 / RECIPIENTS))
    ((batches > 0)) || return 0
    "$BIN/batch-load" --api "$API" --key "$KEY" --batches "$batches" --recipients "$RECIPIENTS" \
        --connections 2 --numbers 100000 >>"$WORK/batch-load.out"
}

# wait_until COUNTER N SECONDS: until the simulator's COUNTER reaches N.
wait_until() {
    local deadline=$((SECONDS + $3))
    until (($(sim_stat "$1") >= $2)); do
        ((SECONDS < deadline)) || die "$1 stayed at $(sim_stat "$1") (wanted $2)"
        sleep 1
    done
}

report() { # phase started_line started_seconds
    printf '%-10s %8s %8s %10s %6ss\n' "$1" "$(($(rss_kb) / 1024))" "$(peak_since "$2")" \
        "$(stored_messages)" "$((SECONDS - $3))"
}

printf '%-10s %8s %8s %10s %7s\n' phase "RSS MB" "peak MB" stored took
report start 0 "$SECONDS"

mark=$(lines) t=$SECONDS
send "$STORED"
wait_until dlrs_acked "$((STORED / RECIPIENTS * RECIPIENTS))" 1800
report stored "$mark" "$t"

if ((IN_FLIGHT > 0)); then
    mark=$(lines) t=$SECONDS
    sim_behave dlr_delay 3600000
    before=$(sim_stat submits_ok)
    send "$IN_FLIGHT"
    wait_until submits_ok "$((before + IN_FLIGHT / RECIPIENTS * RECIPIENTS))" 1800
    report in_flight "$mark" "$t"
fi

if ((QUEUED > 0)); then
    mark=$(lines) t=$SECONDS
    sim_behave reject_binds True
    curl -sf -X POST "http://$CONTROL/disconnect" >/dev/null
    send "$QUEUED"
    report queued "$mark" "$t"
fi

mark=$(lines) t=$SECONDS
sleep "$IDLE_S"
report idle "$mark" "$t"
echo "store on disk: $(du -sm "$WORK/data" | cut -f1) MB; gateway CPU: $(($(cpu_ticks "$GW") / $(getconf CLK_TCK))) s; peak (VmHWM): $(awk '/^VmHWM:/ {printf "%.0f MB", $2 / 1024}' "/proc/$GW/status")"
