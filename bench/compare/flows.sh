#!/usr/bin/env bash
# flows.sh: what a flow (one message over several channels) costs next to a single SMS, in one
# run on one machine.
#
# Starts smsc-sim, an aiosmtpd relay (tests/interop/smtp_relay.py), provider-sim (an RBM agent, a Telegram bot)
# and `switchyard serve` (release builds) on 127.0.0.1, then sends with `http-load`, each run
# bounded by COUNT requests and DURATION seconds:
#   single      POST /v1/messages, one SMS                       (the baseline)
#   cascade     mode cascade: SMS (success delivered, 60 s), then email (never needed: the
#               simulator delivers)                               one delivery per request
#   all         mode all_channels: SMS and email (last: aiosmtpd, in Python, is slower than
#               the gateway, so its queue fills and the API answers 503)
#                                                                 two deliveries per request
#   rcs         one RCS message to an RCS-capable phone (agent message, signed DELIVERED
#               event)                                            one delivery per request
#   all3        mode all_channels: SMS, RCS and Telegram          three deliveries per request
#   rcs_sms     cascade RCS → SMS to phones without RCS (the RCS step is rejected by the
#               agent message's 404, the SMS step delivers)       two deliveries per request
# and prints one line per run: accepted/s, p50/p99 latency, the gateway's CPU µs per request
# and per delivery (from /proc, counted until the gateway is idle again after the run, so the
# deliveries still under way when the load ends are included), provider-sim's CPU µs per request
# and the load average, so the ratios against `single` are read off directly.
#
# Knobs (environment): COUNT=20000 DURATION=15 CONNS=64 RATE= (unpaced when empty)
#   SKIP_BUILD=1     use the binaries already in $CARGO_TARGET_DIR/release
#   RUNS="all3 rcs"  only these runs (default: every run, in the order above)
#   PERF_OUT=FILE    record the gateway with `perf record $PERF_ARGS` (default -g) during the
#                    runs into FILE
#   RBM_CHECK=1      the RBM agent checks each phone's capability before its first message
#                    (`capability_check = true`: one more provider request per RCS message)
#   DATA_BASE=/tmp   where the store lives (the disk's fsync is part of the measure)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/bench/compare/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
PYTHON=${SWITCHYARD_PYTHON:-/tmp/switchyard-venv/bin/python}
COUNT=${COUNT:-20000}
DURATION=${DURATION:-15}
CONNS=${CONNS:-64}
KEY=sk_flows_bench_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
WORK=$(mktemp -d "${DATA_BASE:-/tmp}/flows-bench.XXXXXX")
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
        -p switchyard-bench --bin smsc-sim --bin http-load --bin provider-sim)
fi

wait_line() { # file pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
    echo "no '$2' in $1" >&2
    exit 1
}

"$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms 10 >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
wait_line "$WORK/sim.out" "listening on"
SIM=$(addr_in "$WORK/sim.out" "listening on")
"$PYTHON" "$ROOT/tests/interop/smtp_relay.py" "$WORK/mail" >"$WORK/relay.out" 2>"$WORK/relay.err" &
PIDS+=($!)
wait_line "$WORK/relay.out" "listening on"
RELAY=$(addr_in "$WORK/relay.out" "listening on")
"$BIN/provider-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 >"$WORK/provider.out" 2>"$WORK/provider.err" &
PIDS+=($!)
wait_line "$WORK/provider.out" "control on"
PROVIDER=$(addr_in "$WORK/provider.out" "listening on")
PROVIDER_CONTROL=$(addr_in "$WORK/provider.out" "control on")
HASH=$(key_hash "$KEY")
cat >"$WORK/switchyard.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"

[[tenants]]
name = "bench"
api_keys = ["$HASH"]
preference = "cheapest"

[[carriers]]
name = "sim"
channels = ["sms"]
[carriers.smpp]
host = "127.0.0.1"
port = ${SIM##*:}
system_id = "sim"
password = "pw"
binds = 2
window = 100

[[carriers]]
name = "relay"
channels = ["email"]
[carriers.smtp]
host = "127.0.0.1"
port = ${RELAY##*:}
security = "none"
price = "0.0004"
max_connections = 8

[[carriers]]
name = "agent"
channels = ["rcs"]
[carriers.rbm]
base_url = "http://$PROVIDER"
agent_id = "switchyard-sim-agent"
token = "rbm-access-token"
webhook_token = "rbm-client-token"
capability_check = $([[ ${RBM_CHECK:-0} == 1 ]] && echo true || echo false)
max_connections = 64

[[carriers]]
name = "bot"
channels = ["telegram"]
[carriers.telegram]
base_url = "http://$PROVIDER"
bot_token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
webhook_secret = "telegram-secret-token"
price = "0.001"
max_connections = 64

[[decks]]
carrier = "sim"
channel = "sms"
path = "deck.csv"

[[decks]]
carrier = "agent"
channel = "rcs"
path = "deck.csv"
TOML
printf 'Prefix,Price,Currency,Effective Date,Country,Network\n44,0.0100,EUR,2025-01-01,United Kingdom,All\n' >"$WORK/deck.csv"
"$BIN/switchyard" serve --config "$WORK/switchyard.toml" >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW=$!
PIDS+=("$GW")
wait_line "$WORK/gw.out" "listening on"
API=$(addr_in "$WORK/gw.out" "listening on")
for _ in $(seq 100); do curl -sf "http://$API/readyz" >/dev/null && break; sleep 0.1; done
# The agent's events go to the gateway; phones answer at once (no delivery delay).
curl -sf "http://$PROVIDER_CONTROL/rbm/config" |
    python3 -c "import json,sys; c=json.load(sys.stdin); c['webhook_url']='http://$API/v1/providers/agent/webhook'; print(json.dumps(c))" |
    curl -sf -X PUT -H 'Content-Type: application/json' --data-binary @- "http://$PROVIDER_CONTROL/rbm/config" >/dev/null
rbm_behaviour() { # JSON
    curl -sf -X PUT -H 'Content-Type: application/json' --data "$1" "http://$PROVIDER_CONTROL/rbm/behaviour" >/dev/null
}

TICK=$(getconf CLK_TCK)
PROVIDER_PID=${PIDS[2]}

SMS='"to":"+4479{seq8}","from":"Bench","body":"Your code is {seq6}"'
SEQ=0
wanted() { [[ -z ${RUNS:-} || " $RUNS " == *" $1 "* ]]; }
PERF=
if [[ -n ${PERF_OUT:-} ]]; then
    perf record ${PERF_ARGS:--g} -o "$PERF_OUT" -p "$GW" >"$WORK/perf.out" 2>&1 &
    PERF=$!
fi
run() { # label deliveries-per-request body
    wanted "$1" || return 0
    local before after report pbefore pafter
    before=$(cpu_ticks "$GW")
    pbefore=$(cpu_ticks "$PROVIDER_PID")
    local args=(--url "http://$API/v1/messages" --method POST --header "Authorization: Bearer $KEY"
        --header "Content-Type: application/json" --body "$3" --connections "$CONNS"
        --count "$COUNT" --duration-s "$DURATION" --seq-start "$SEQ" --label "$1")
    [[ -n ${RATE:-} ]] && args+=(--rate "$RATE")
    report=$("$BIN/http-load" "${args[@]}")
    # The deliveries of the last requests accepted are still under way: count the gateway's
    # CPU until it is idle again (less than 2 ticks in half a second), at most 30 s.
    local last now drained=0
    last=$(cpu_ticks "$GW")
    for _ in $(seq 60); do
        drained=$((drained + 1))
        sleep 0.5
        now=$(cpu_ticks "$GW")
        ((now - last < 2)) && break
        last=$now
    done
    after=$(cpu_ticks "$GW")
    pafter=$(cpu_ticks "$PROVIDER_PID")
    SEQ=$((SEQ + COUNT))
    python3 - "$1" "$2" "$((after - before))" "$TICK" "$report" "$((pafter - pbefore))" "$drained" <<'PY'
import json, sys
label, per, ticks, tick, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
provider_us = int(sys.argv[6]) / tick * 1e6
drain_s = int(sys.argv[7]) / 2
ok = max(report["ok"], 1)
cpu_us = ticks / tick * 1e6
lat = report["latency_us"]
print(f"{label:8} accepted {report['ok_per_s']:8.0f}/s  ok {report['ok']:6}  other {dict((k, v) for k, v in report['by_status'].items() if not k.startswith('2'))}  "
      f"p50 {lat['p50'] / 1000:6.2f} ms  p99 {lat['p99'] / 1000:6.2f} ms  "
      f"gateway CPU {cpu_us / ok:6.0f} µs/request  {cpu_us / (ok * per):6.0f} µs/delivery  "
      f"provider-sim CPU {provider_us / ok:4.0f} µs/request  idle {drain_s:.1f} s after  load {open('/proc/loadavg').read().split()[0]}")
PY
    sleep 2
}

run single 1 "{$SMS}"
run cascade 1 "{\"mode\":\"cascade\",\"to\":{\"phone\":\"+4479{seq8}\",\"email\":\"user{seq}@example.org\"},\"body\":\"Your code is {seq6}\",\"channels\":[{\"channel\":\"sms\",\"from\":\"Bench\",\"timeout_s\":60},{\"channel\":\"email\",\"from\":\"codes@bench.example\",\"subject\":\"Code\"}]}"
rbm_behaviour '{"capable":true,"delivered_delay_ms":5,"read_delay_ms":null}'
run all3 3 "{\"mode\":\"all_channels\",\"to\":{\"phone\":\"+4479{seq8}\",\"telegram\":\"5{seq8}\"},\"body\":\"Your code is {seq6}\",\"channels\":[{\"channel\":\"sms\",\"from\":\"Bench\"},{\"channel\":\"rcs\"},{\"channel\":\"telegram\"}]}"
run rcs 1 "{\"channel\":\"rcs\",\"to\":\"+4479{seq8}\",\"body\":\"Your code is {seq6}\"}"
rbm_behaviour '{"capable":false}'
run rcs_sms 2 "{\"mode\":\"cascade\",\"to\":\"+4479{seq8}\",\"body\":\"Your code is {seq6}\",\"channels\":[{\"channel\":\"rcs\",\"timeout_s\":60},{\"channel\":\"sms\",\"from\":\"Bench\"}]}"
run all 2 "{\"mode\":\"all_channels\",\"to\":{\"phone\":\"+4479{seq8}\",\"email\":\"user{seq}@example.org\"},\"body\":\"Your code is {seq6}\",\"channels\":[{\"channel\":\"sms\",\"from\":\"Bench\"},{\"channel\":\"email\",\"from\":\"codes@bench.example\",\"subject\":\"Code\"}]}"
if [[ -n $PERF ]]; then
    kill -INT "$PERF" 2>/dev/null || true
    wait "$PERF" 2>/dev/null || true
fi
curl -sf "http://$PROVIDER_CONTROL/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print('provider-sim:', json.dumps(s.get('counters', s))[:300])" || true
sleep 5
echo "emails the relay stored 5 s later: $(find "$WORK/mail" -name '*.eml' 2>/dev/null | wc -l)"
grep -o "email not taken: .*" "$WORK/gw.err" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-120 | sort | uniq -c | sort -rn | head -3 || true
tail -3 "$WORK/relay.err" || true
