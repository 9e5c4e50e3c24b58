#!/usr/bin/env bash
# sms-vs-kannel.sh: Switchyard and Kannel 1.4.5 side by side on one smsc-sim, same HTTP load.
#
# For each system: start it against the simulator, warm up, then run the load steps (paced at
# each rate in RATES for STEP_S seconds, then unpaced for MAX_S seconds), wait for each step to
# drain (every accepted message submitted and its receipt through), and print one table with
# both systems and the Switchyard/Kannel ratios. See bench/README.md for the columns.
#
# Everything listens on 127.0.0.1; every process this script starts is ended by PID on exit.
#
# Knobs (environment):
#   RATES="2000 5000 10000"  paced steps, requests/s     STEP_S=10   seconds per paced step
#   MAX_S=10                 unpaced step (0: skip)      CONNS=256   HTTP keep-alive connections
#   DRAIN_S=90               longest wait for a step to drain
#   SY_BINDS=2 SY_WINDOW=100 Switchyard's TRX binds and window to the simulator
#   SIM_WINDOW=50            simulator's deliver_sm window per bind (see README: receipts)
#   SYSTEMS="switchyard kannel"                           DATA_BASE=/tmp  where stores live
#   SY_DURABILITY="fsync os" Switchyard runs once per [store] durability, labelled sy-fsync, sy-os
#   SY_LINGER_MS=2           Switchyard's [store] group_commit_linger_ms
#   SY_LOG=warn              Switchyard's RUST_LOG (e.g. "warn,switchyard_gateway::store=debug"
#                            logs each commit slower than 20 ms and where its time went)
#   SY_WEBHOOK_CONNS=8       Switchyard's [webhooks] max_per_endpoint (requests at once to the sink)
#   SY_WEBHOOK_TENANT=512    Switchyard's [webhooks] max_in_flight_per_tenant (webhooks of the
#                            bench tenant sent or waiting for the sink; the rest wait in the store)
#   SY_WEBHOOK_EVENTS=…      the bench tenant's webhook_events (default: sent and the outcomes,
#                            as Kannel's dlr-mask=31; every type: all twelve, quoted, comma-separated)
#   SY_WEBHOOK_BATCH=1       the bench tenant's webhook_batch_max (events per webhook request; above
#                            1 each request is a JSON array of the events waiting, the sink counts each)
#   SKIP_BUILD=1             use the binaries already in $CARGO_TARGET_DIR/release
#   KEEP=1                   keep the work directory (configs, logs, JSON per step, Switchyard's /metrics after each step)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
RATES=${RATES:-"2000 5000 10000"}
STEP_S=${STEP_S:-10}
MAX_S=${MAX_S:-10}
CONNS=${CONNS:-256}
DRAIN_S=${DRAIN_S:-90}
SY_BINDS=${SY_BINDS:-2}
SY_WINDOW=${SY_WINDOW:-100}
SIM_WINDOW=${SIM_WINDOW:-50}
SYSTEMS=${SYSTEMS:-"switchyard kannel"}
SY_DURABILITY=${SY_DURABILITY:-"fsync os"}
SY_LINGER_MS=${SY_LINGER_MS:-2}
SY_LOG=${SY_LOG:-warn}
SY_WEBHOOK_CONNS=${SY_WEBHOOK_CONNS:-8}
SY_WEBHOOK_TENANT=${SY_WEBHOOK_TENANT:-512}
SY_WEBHOOK_BATCH=${SY_WEBHOOK_BATCH:-1}
# The events Switchyard POSTs, as Kannel's dlr-mask=31 asks for its own: the carrier took it
# (sent; Kannel's type 8), and the outcomes (delivered 1, failures 2/16).
SY_WEBHOOK_EVENTS=${SY_WEBHOOK_EVENTS:-'"message.sent", "message.delivered", "message.undeliverable", "message.failed", "message.rejected", "message.expired"'}
DATA_BASE=${DATA_BASE:-/tmp}
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "$DATA_BASE/sms-vs-kannel.XXXXXX")
RESULTS=$WORK/results.tsv
PIDS=()

# shellcheck source=bench/compare/lib.sh
source "$ROOT/bench/compare/lib.sh"

cleanup() {
    stop_all
    finish_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The address printed on the first line of FILE matching PATTERN (last word of the line).

now() { date +%s.%N; }

# Peak resident set (VmHWM) of the given PIDs, summed, in KiB.
peak_rss_kb() {
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

sim_stats() { curl -sf "http://$SIM_CTL/stats"; }
submits_now() { sim_stats | jq '.submits_ok'; }

# ---------------------------------------------------------------------------------------------
# Build and prerequisites

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries into $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release -q -p switchyard-gateway -p switchyard-bench) ||
        die "build failed"
fi
for b in switchyard smsc-sim http-load http-sink fsync-probe; do
    [[ -x $BIN/$b ]] || die "$BIN/$b missing"
done
for t in curl jq python3 awk; do command -v "$t" >/dev/null || die "$t is needed"; done
if [[ " $SYSTEMS " == *" kannel "* ]] && ! command -v bearerbox >/dev/null; then
    log "installing Kannel (Debian packages kannel, kannel-extras)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras \
        >/dev/null || die "could not install Kannel"
fi
if [[ " $SYSTEMS " == *" kannel "* ]]; then
    KANNEL_VERSION=$(dpkg-query -W -f '${Version}' kannel 2>/dev/null || echo unknown)
fi

# ---------------------------------------------------------------------------------------------
# Shared pieces: the simulator and the callback sink

start smsc-sim "$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --window "$SIM_WINDOW"
SIM_PID=$LAST_PID
wait_for 10 grep -q "control on" "$WORK/smsc-sim.out" || die "smsc-sim did not start"
SIM_SMPP=$(addr_in "$WORK/smsc-sim.out" "listening on")
SIM_CTL=$(addr_in "$WORK/smsc-sim.out" "control on")
log "smsc-sim: SMPP $SIM_SMPP, control $SIM_CTL"

start http-sink "$BIN/http-sink" --listen 127.0.0.1:0 --count-param t
SINK_PID=$LAST_PID
wait_for 10 grep -q "listening on" "$WORK/http-sink.out" || die "http-sink did not start"
SINK=$(addr_in "$WORK/http-sink.out" "listening on")
sink_type() { curl -sf "http://$SINK/stats" | jq --arg t "$1" '.by_param[$t] // 0'; }
sink_event() { curl -sf "http://$SINK/stats" | jq --arg t "$1" '.by_field[$t] // 0'; }
sink_requests() { curl -sf "http://$SINK/stats" | jq '.requests'; }

BODY_TEXT='Your verification code is {seq6}. It expires in 10 minutes.'
SEQ=0 # sequence numbers keep growing across steps and systems: every request is distinct
# Recipients are +447123{seq6}: every one of that million is a valid UK mobile number (in
# +447911… only some ranges are, and a gateway that checks numbers refuses the others with 422).

# ---------------------------------------------------------------------------------------------
# One load step

# run_step SYSTEM STEP RATE|max SECONDS: runs the load, waits for the drain, appends a row.
# Needs LOAD_ARGS (the http-load request), GW_PIDS and dlrs_now (the system's receipt counter).
run_step() {
    local system=$1 step=$2 rate=$3 secs=$4 record=${5:-1}
    local count rate_args=() json=$WORK/$system-${step//\//-}.json
    if [[ $rate == max ]]; then
        count=$((secs * 200000))
    else
        count=$(awk -v r="$rate" -v s="$secs" 'BEGIN {printf "%d", r * s}')
        rate_args=(--rate "$rate")
    fi
    local s0 d0 c0 sim0 t0 r0
    s0=$(submits_now)
    r0=$(sink_requests)
    d0=$(dlrs_now)
    c0=$(cpu_ticks "${GW_PIDS[@]}")
    sim0=$(cpu_ticks "$SIM_PID" "$SINK_PID")
    t0=$(now)
    # The disk's fsync latency where the stores live, measured during the load.
    local fsync_json=${json%.json}.fsync.json probe
    "$BIN/fsync-probe" --dir "$WORK" --duration-s "$secs" >"$fsync_json" &
    probe=$!
    "$BIN/http-load" "${LOAD_ARGS[@]}" --connections "$CONNS" --count "$count" \
        --duration-s "$secs" --seq-start "$SEQ" --label "$system $step" "${rate_args[@]}" >"$json" ||
        die "http-load failed ($system $step)"
    wait "$probe" || die "fsync-probe failed ($system $step)"
    SEQ=$((SEQ + count))
    # A gateway that died mid-step would show as requests lost to connection errors, not as a
    # result: stop here and show why.
    local pid io_errors
    for pid in "${GW_PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$WORK"/*.err >&2 || true
            die "$system: process $pid exited during the $step step"
        fi
    done
    io_errors=$(jq '.io_errors' "$json")
    ((io_errors == 0)) ||
        log "$system $step: $io_errors requests lost to connection errors (refused, reset or timed out)"
    local accepted load_s
    # Rates are measured from when the load started (opening the connections comes first).
    t0=$(jq '.started_at_unix_s' "$json")
    accepted=$(jq '.ok' "$json")
    load_s=$(jq '.seconds' "$json")
    # Drain: poll until every accepted message was submitted and its receipt came back, or
    # nothing moved for 10 s, or DRAIN_S passed. Remember when each counter last moved and
    # the CPU used up to then (idle time after the end is not charged).
    local s d ls=-1 ld=-1 ts t_s t_d c_end idle_since deadline
    t_s=$(now) t_d=$t_s c_end=$(cpu_ticks "${GW_PIDS[@]}")
    idle_since=$SECONDS deadline=$((SECONDS + DRAIN_S))
    while :; do
        s=$(($(submits_now) - s0))
        d=$(($(dlrs_now) - d0))
        ts=$(now)
        if ((s != ls || d != ld)); then
            ((s != ls)) && t_s=$ts
            ((d != ld)) && t_d=$ts
            c_end=$(cpu_ticks "${GW_PIDS[@]}")
            ls=$s ld=$d idle_since=$SECONDS
        fi
        ((s >= accepted && d >= accepted)) && break
        ((SECONDS - idle_since >= 10 || SECONDS >= deadline)) && break
        sleep 0.2
    done
    local sim_ticks
    sim_ticks=$(($(cpu_ticks "$SIM_PID" "$SINK_PID") - sim0))
    if [[ ${KEEP:-0} == 1 && -n ${METRICS_URL:-} ]]; then
        curl -sf "$METRICS_URL" >"${json%.json}.metrics" || true
    fi
    ((record == 1)) || return 0
    # system step accepted/s submit/s dlr/s p50 p99 cpu_ms_per_msg rss_mb lost undelivered
    #   gateway_cores sim_cores loadgen_cores accepted errors refused_p50 refused_p99 retry_after
    #   fsync_p50 fsync_p99 (the disk's, ms)
    awk -v sys="$system" -v step="$step" -v acc="$accepted" -v load_s="$load_s" \
        -v s="$s" -v d="$d" -v t0="$t0" -v ts="$t_s" -v td="$t_d" \
        -v cpu=$((c_end - c0)) -v simcpu="$sim_ticks" -v hz="$CLK_TCK" \
        -v p50="$(jq '.latency_us.p50' "$json")" -v p99="$(jq '.latency_us.p99' "$json")" \
        -v gen="$(jq '.cpu_s' "$json")" -v sent="$(jq '.sent' "$json")" \
        -v rp50="$(jq '.refused_latency_us.p50' "$json")" -v rp99="$(jq '.refused_latency_us.p99' "$json")" \
        -v ra="$(jq '.refused_with_retry_after' "$json")" \
        -v f50="$(jq '.p50_us' "$fsync_json")" -v f99="$(jq '.p99_us' "$fsync_json")" \
        -v rss="$(peak_rss_kb "${GW_PIDS[@]}")" 'BEGIN {
            span_s = ts - t0; span_d = td - t0; span = (span_d > span_s ? span_d : span_s)
            printf "%s\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.3f\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.3f\t%.3f\t%d\t%.2f\t%.2f\n",
                sys, step, acc / load_s, s / span_s, d / span_d, p50 / 1000, p99 / 1000,
                (cpu / hz) * 1000 / (acc > 0 ? acc : 1), rss / 1024, acc - s, acc - d,
                cpu / hz / span, simcpu / hz / span, gen / load_s, acc, sent - acc,
                rp50 / 1000, rp99 / 1000, ra, f50 / 1000, f99 / 1000
        }' >>"$RESULTS"
    log "$system $step: $(tail -1 "$RESULTS" | cut -f3-)"
    log "$system $step: $(($(sink_requests) - r0)) requests reached the sink"
}

run_steps() {
    local system=$1 r
    log "$system: warm-up"
    run_step "$system" warmup 2000 2 0
    for r in $RATES; do run_step "$system" "${r}/s" "$r" "$STEP_S"; done
    if ((MAX_S > 0)); then run_step "$system" max max "$MAX_S"; fi
}

# ---------------------------------------------------------------------------------------------
# Switchyard

# run_switchyard DURABILITY: one run with [store] durability = DURABILITY, labelled sy-DURABILITY.
run_switchyard() {
    local durability=$1 system=sy-$1
    local dir=$WORK/$system key hash
    mkdir -p "$dir"
    key=sk_bench$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 38)
    hash=$(key_hash "$key")
    cat >"$dir/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$dir/data"

[store]
kind = "sqlite"
group_commit_linger_ms = $SY_LINGER_MS
durability = "$durability"

[egress]
allow = ["127.0.0.1/32"]

[webhooks]
max_per_endpoint = $SY_WEBHOOK_CONNS
max_in_flight_per_tenant = $SY_WEBHOOK_TENANT

[[tenants]]
name = "bench"
api_keys = ["$hash"]
webhook_url = "http://$SINK/switchyard"
webhook_secrets = ["bench-webhook-secret-0123456789"]
webhook_events = [$SY_WEBHOOK_EVENTS]
webhook_batch_max = $SY_WEBHOOK_BATCH

[[carriers]]
name = "sim"
channels = ["sms"]

[carriers.smpp]
host = "${SIM_SMPP%:*}"
port = ${SIM_SMPP##*:}
system_id = "switchyard"
password = "secret"
bind_type = "trx"
binds = $SY_BINDS
window = $SY_WINDOW
registered_delivery = 1

[[decks]]
carrier = "sim"
channel = "sms"
sandbox = true
EOF
    "$BIN/switchyard" check-config --config "$dir/switchyard.toml" >/dev/null ||
        die "generated Switchyard config is invalid"
    start "$system" env RUST_LOG="$SY_LOG" "$BIN/switchyard" serve --config "$dir/switchyard.toml"
    local pid=$LAST_PID
    wait_for 20 grep -q "listening on" "$WORK/$system.out" || die "switchyard did not start"
    local api
    api=$(addr_in "$WORK/$system.out" "listening on")
    wait_for 20 curl -sf "http://$api/readyz" || die "switchyard not ready (binds down?)"
    log "$system: API $api, $SY_BINDS TRX binds, window $SY_WINDOW, durability $durability, pid $pid"
    GW_PIDS=("$pid")
    METRICS_URL=http://$api/metrics
    # Receipts that reached the tenant: signed `message.delivered` webhooks at the sink (the
    # same end of the path as Kannel's dlr-url callbacks).
    dlrs_now() { sink_event message.delivered; }
    LOAD_ARGS=(--url "http://$api/v1/messages" --method POST
        --header "Authorization: Bearer $key"
        --body "{\"to\":\"+447123{seq6}\",\"from\":\"Switchyard\",\"body\":\"$BODY_TEXT\"}")
    run_steps "$system"
    stop_pid "$pid"
    METRICS_URL=
}

# ---------------------------------------------------------------------------------------------
# Kannel

run_kannel() {
    local dir=$WORK/kannel admin smsbox sendsms
    mkdir -p "$dir"
    admin=$(free_port) smsbox=$(free_port) sendsms=$(free_port)
    cat >"$dir/kannel.conf" <<EOF
group = core
admin-port = $admin
admin-interface = 127.0.0.1
admin-password = bench
smsbox-port = $smsbox
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-level = 4
log-file = "$dir/bearerbox.log"
store-type = file
store-location = "$dir/kannel.store"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = ${SIM_SMPP%:*}
port = ${SIM_SMPP##*:}
transceiver-mode = true
smsc-username = kannel
smsc-password = secret
system-type = ""
max-pending-submits = 100
enquire-link-interval = 30
log-level = 4

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $smsbox
sendsms-port = $sendsms
sendsms-interface = 127.0.0.1
log-level = 4
log-file = "$dir/smsbox.log"

group = sendsms-user
username = bench
password = bench
max-messages = 1
EOF
    # -v 4: errors only on stderr too (the default verbosity dumps every PDU).
    start bearerbox bearerbox -v 4 "$dir/kannel.conf"
    local bb=$LAST_PID
    wait_for 20 curl -sf "http://127.0.0.1:$admin/status.txt?password=bench" ||
        die "bearerbox did not start"
    start smsbox smsbox -v 4 "$dir/kannel.conf"
    local sb=$LAST_PID
    kannel_online() {
        curl -sf "http://127.0.0.1:$admin/status.txt?password=bench" | grep -q "sim.*online" &&
            curl -s -o /dev/null "http://127.0.0.1:$sendsms/"
    }
    wait_for 30 kannel_online || die "Kannel did not come up (SMPP bind or smsbox)"
    log "kannel $KANNEL_VERSION: bearerbox pid $bb, smsbox pid $sb, sendsms 127.0.0.1:$sendsms"
    GW_PIDS=("$bb" "$sb")
    # Final receipts (type 1) that reached the dlr-url sink: Kannel's end-to-end DLR path.
    dlrs_now() { sink_type 1; }
    local dlr_url
    dlr_url=$(jq -rn --arg u "http://$SINK/dlr?t=%d" '$u | @uri')
    LOAD_ARGS=(--url "http://127.0.0.1:$sendsms/cgi-bin/sendsms?username=bench&password=bench&from=Switchyard&to=%2B447123{seq6}&text=$(jq -rn --arg t "$BODY_TEXT" '$t | @uri' | sed 's/%7Bseq6%7D/{seq6}/g')&dlr-mask=31&dlr-url=$dlr_url")
    run_steps kannel
    stop_pid "$sb"
    stop_pid "$bb"
}

: >"$RESULTS"
for system in $SYSTEMS; do
    case $system in
    switchyard) for d in $SY_DURABILITY; do run_switchyard "$d"; done ;;
    kannel) run_kannel ;;
    *) die "unknown system $system" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# The table

{
    echo
    echo "Switchyard vs Kannel ${KANNEL_VERSION:-} on one smsc-sim ($(nproc) cores, $CONNS HTTP connections, $STEP_S s paced steps, unpaced $MAX_S s)"
    echo "Switchyard: SQLite store (WAL, group commit), $SY_BINDS TRX binds, window $SY_WINDOW; sy-fsync: durability"
    echo "\"fsync\" (synchronous=FULL, survives a power cut), sy-os: durability \"os\" (synchronous=NORMAL, survives a"
    echo "crash of the process, not of the machine); a signed webhook to the sink for: $SY_WEBHOOK_EVENTS"
    echo "(webhook_batch_max = $SY_WEBHOOK_BATCH: up to that many events per request)."
    echo "Kannel: bearerbox + smsbox, 1 SMPP transceiver, max-pending-submits 100, store-type file (not fsynced per"
    echo "message), dlr-url callbacks. Rates include the drain after the load stopped; DLR/s is final receipts that"
    echo "reached the sink: message.delivered webhooks for Switchyard, dlr-url callbacks of type 1 for Kannel."
    echo "fsync p99: the disk's own fsync latency (ms) during the step, where the stores live (fsync-probe: a"
    echo "4 KiB write and fsync every 20 ms)."
    echo
    awk -F'\t' '
        BEGIN {
            fmt = "%-11s %-8s %9s %9s %9s %8s %8s %9s %8s %6s %7s %7s %7s %7s %9s\n"
            printf fmt, "system", "step", "accept/s", "submit/s", "DLR/s", "p50 ms", "p99 ms",
                "CPU ms/msg", "RSS MB", "lost", "no-DLR", "gw core", "sim core", "gen core", "fsync p99"
        }
        {
            printf "%-11s %-8s %9d %9d %9d %8.2f %8.2f %9.3f %8d %6d %7d %7.2f %7.2f %7.2f %9.2f\n",
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $21
            key = $2; steps[key] = 1
            for (i = 3; i <= 9; i++) v[$1, key, i] = $i
            if ($1 != "kannel" && !($1 in seen)) { seen[$1] = 1; systems[++ns] = $1 }
            if (!(key in order)) { order[key] = ++n; names[n] = key }
            if ($1 == "sy-fsync") fsyncs = fsyncs sprintf("  %s: p99 accept %.2f ms, the disk'"'"'s fsync p99 %.2f ms: %s its fsync p99 + 2 ms\n", $2, $7, $21, ($7 <= $21 + 2 ? "within" : "over"))
            if ($16 > 0) notes = notes sprintf("  %s %s: %d requests not accepted (non-2xx or I/O error); refusals answered in p50 %.3f / p99 %.3f ms, %d with Retry-After\n", $1, $2, $16, $17, $18, $19)
        }
        END {
            for (m = 1; m <= ns; m++) {
                sy = systems[m]
                printf "\n%s/Kannel ratios (higher is better for rates, lower for latency, CPU and RSS):\n", sy
                printf "%-8s %9s %9s %9s %8s %8s %10s %8s\n", "step", "accept/s", "submit/s", "DLR/s", "p50", "p99", "CPU/msg", "RSS"
                for (j = 1; j <= n; j++) {
                    k = names[j]
                    if (!((sy, k, 3) in v) || !(("kannel", k, 3) in v)) continue
                    line = sprintf("%-8s", k)
                    for (i = 3; i <= 9; i++) {
                        a = v[sy, k, i]; b = v["kannel", k, i]
                        line = line sprintf(" %8s", b > 0 ? sprintf("%.2fx", a / b) : "-")
                    }
                    print line
                }
            }
            if (fsyncs != "") printf "\nsy-fsync accept latency against the disk (target: p99 within the fsync p99 + 2 ms):\n%s", fsyncs
            if (notes != "") printf "\n%s", notes
        }' "$RESULTS"
} | tee "$WORK/table.txt"
