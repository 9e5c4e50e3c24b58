#!/usr/bin/env bash
# smpp-hub.sh: SMPP in → SMPP out. `smpp-load` binds to Switchyard's SMPP server as a tenant's
# ESME, Switchyard submits to `smsc-sim` over its carrier binds, the simulator's receipts come
# back to the ESME as deliver_sm. One table: per step, submit_sm_resp'd per second, receipts back
# per second, submit_sm → submit_sm_resp latency p50/p99 (at the ESME), and the gateway's CPU
# time per message.
#
# Steps: paced at each rate in RATES for STEP_S seconds, then unpaced for MAX_S seconds. A step
# ends when every acknowledged message has its receipt back at the ESME (or DRAIN_S passes).
# Everything listens on 127.0.0.1; every process this script starts is ended by PID on exit.
#
# Knobs (environment):
#   RATES="2000 5000"   paced steps, submits/s          STEP_S=10  seconds per paced step
#   MAX_S=10            unpaced step (0: skip)          DRAIN_S=30 longest wait for receipts
#   ESME_BINDS=4 ESME_WINDOW=64   the ESME's transceiver binds to Switchyard and their window
#   SY_BINDS=2 SY_WINDOW=100      Switchyard's binds to the simulator and their window
#   DURABILITY: the store fsyncs every commit (the default and only mode today)
#   SKIP_BUILD=1        use the binaries already in $CARGO_TARGET_DIR/release
#   KEEP=1              keep the work directory (configs, logs, JSON per step)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
RATES=${RATES:-"2000 5000"}
STEP_S=${STEP_S:-10}
MAX_S=${MAX_S:-10}
DRAIN_S=${DRAIN_S:-30}
ESME_BINDS=${ESME_BINDS:-4}
ESME_WINDOW=${ESME_WINDOW:-64}
SY_BINDS=${SY_BINDS:-2}
SY_WINDOW=${SY_WINDOW:-100}
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/smpp-hub.XXXXXX)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [[ ${KEEP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# announced NAME WORD: the address on the line of NAME's output containing WORD.
announced() {
    local i line
    for ((i = 0; i < 200; i++)); do
        line=$(grep -m1 "$2" "$WORK/$1.out" 2>/dev/null || true)
        if [[ -n $line ]]; then echo "${line##* }"; return 0; fi
        sleep 0.1
    done
    die "$1 did not announce $2 (see $WORK/$1.err)"
}

cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

command -v jq >/dev/null || die "jq is needed"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked -p switchyard-gateway -p switchyard-bench >&2)
fi

start sim "$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms 5
SIM=$(announced sim listening)

cat >"$WORK/deck.csv" <<EOF
Prefix,Price,Currency,Effective Date,Country,Network
44,0.0100,EUR,2025-01-01,United Kingdom,All networks
EOF
cat >"$WORK/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"

[smpp_server]
listen = "127.0.0.1:0"

[[tenants]]
name = "bench"
api_keys = ["sha256:$(printf %s sk_bench_smpp_hub_not_used_over_http | sha256sum | cut -d' ' -f1)"]
smpp_users = [{ system_id = "bench", password = "bench", max_binds = 64, window = 1024 }]

[[carriers]]
name = "sim"
channels = ["sms"]

[carriers.smpp]
host = "127.0.0.1"
port = ${SIM##*:}
system_id = "sim"
password = "pw"
binds = $SY_BINDS
window = $SY_WINDOW

[[decks]]
carrier = "sim"
channel = "sms"
path = "deck.csv"
EOF
start gateway "$BIN/switchyard" serve --config "$WORK/switchyard.toml"
GW_PID=$LAST_PID
HUB=$(announced gateway "SMPP server")
log "Switchyard SMPP server on $HUB, simulator on $SIM"

# step NAME ARGS...: one smpp-load run against the hub; prints a TSV row.
step() {
    local name=$1
    shift
    local c0 c1 json
    c0=$(cpu_ticks "$GW_PID")
    "$BIN/smpp-load" --connect "$HUB" --system-id bench --password bench \
        --binds "$ESME_BINDS" --window "$ESME_WINDOW" --to 447911123456 --dlr \
        --dlr-wait-s "$DRAIN_S" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err"
    c1=$(cpu_ticks "$GW_PID")
    json=$(cat "$WORK/$name.json")
    jq -r --arg name "$name" --argjson ticks "$((c1 - c0))" --argjson hz "$CLK_TCK" '
        [$name, .ok, .throttled, .errors, .dlrs,
         (.submits_per_s | floor), (.receipts_per_s | floor),
         (.latency_us_p50 / 1000), (.latency_us_p99 / 1000),
         (if .ok > 0 then ($ticks / $hz * 1e6 / .ok | floor) else 0 end)] | @tsv' <<<"$json"
}

log "warm-up"
step warmup --count 2000 --rate 1000 --max-seconds 10 >/dev/null
{
    printf 'step\tok\tthrottled\terrors\treceipts\tok/s\treceipts/s\tp50 ms\tp99 ms\tgw CPU µs/msg\n'
    for r in $RATES; do
        log "paced $r/s for ${STEP_S}s"
        step "rate-$r" --rate "$r" --count $((r * STEP_S)) --max-seconds $((STEP_S + 5))
    done
    if ((MAX_S > 0)); then
        log "unpaced for ${MAX_S}s"
        step unpaced --count 10000000 --max-seconds "$MAX_S"
    fi
} | column -t -s $'\t'
