#!/usr/bin/env bash
# batch-load.sh: POST /v1/messages/batch throughput, in durable accepted messages per second.
#
# Starts smsc-sim and `switchyard serve` (release builds) on 127.0.0.1, sends BATCHES batches of
# RECIPIENTS recipients over CONNS connections with `batch-load`, prints its JSON report (accepted
# msg/s, gateway CPU µs per message, load average), and ends the processes it started by PID.
#
# Knobs (environment): BATCHES=20 RECIPIENTS=10000 CONNS=4
#   SCHEDULED=1      schedule every message an hour ahead: measures acceptance alone, without
#                    the binds submitting to the simulator at the same time
#   SKIP_BUILD=1     use the binaries already in $CARGO_TARGET_DIR/release
#   DATA_BASE=/tmp   where the store lives (the disk's fsync is part of the measure)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=compare/lib.sh
source "$ROOT/bench/compare/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
BATCHES=${BATCHES:-20}
RECIPIENTS=${RECIPIENTS:-10000}
CONNS=${CONNS:-4}
KEY=sk_batch_load_bench_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
WORK=$(mktemp -d "${DATA_BASE:-/tmp}/batch-load.XXXXXX")
PIDS=()

cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build -q --release -p switchyard-gateway --bin switchyard \
        -p switchyard-bench --bin smsc-sim --bin batch-load)
fi

"$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms 10 >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM=$(addr_in "$WORK/sim.out" "listening on")
HASH=$(key_hash "$KEY")
cat >"$WORK/switchyard.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"

[[tenants]]
name = "bench"
api_keys = ["$HASH"]
preference = "cheapest"

$(sim_sms_toml "${SIM##*:}")
TOML
"$BIN/switchyard" serve --config "$WORK/switchyard.toml" >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW=$!
PIDS+=($GW)
for _ in $(seq 200); do grep -q "listening on" "$WORK/gw.out" 2>/dev/null && break; sleep 0.1; done
API=$(addr_in "$WORK/gw.out" "listening on")
for _ in $(seq 100); do curl -sf "http://$API/readyz" >/dev/null && break; sleep 0.1; done

ARGS=(--api "$API" --key "$KEY" --batches "$BATCHES" --recipients "$RECIPIENTS" --connections "$CONNS" --gateway-pid "$GW")
if [[ ${SCHEDULED:-0} == 1 ]]; then
    ARGS+=(--scheduled-at "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)")
fi
"$BIN/batch-load" "${ARGS[@]}"
