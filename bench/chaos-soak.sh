#!/usr/bin/env bash
# chaos-soak.sh: many messages through Switchyard while it is killed, its SMSC drops the
# connections and answers some submits with transient errors; then checks that nothing
# accepted was lost.
#
# The load: MESSAGES requests to POST /v1/messages at RATE per second (each to its own number,
# +447 and the request's sequence number), over CONNS keep-alive connections. Meanwhile:
#   - the gateway is killed with SIGKILL every KILL_EVERY_S seconds (± a fifth, at random) and
#     started again at once, on the same store and port;
#   - the simulator drops every SMPP connection every DROP_EVERY_S seconds (POST /disconnect);
#   - the simulator answers TRANSIENT of the submits with ESME_RTHROTTLED / ESME_RMSGQFUL.
# Then the load stops, the faults stop, and the run drains (every message final, every event's
# webhook at the sink) for at most DRAIN_S seconds. The checks:
#   - lost: accepted (answered 202) but never submitted to the simulator       must be 0
#   - unfinished: messages in the store not in a final state                   must be 0
#   - events missing: status changes (the event log) whose webhook never came   must be 0
#   - duplicates: submits to the simulator beyond the first per message, reported with the
#     bound the faults allow (a window in flight per bind at each kill, and per connection the
#     simulator dropped: a submit whose response the fault cut off is sent again)
#   - webhook repeats: events POSTed more than once (the sink de-duplicates by event id)
# The script exits 1 when a check that must be 0 is not.
#
# Not in CI (minutes of load). Everything listens on 127.0.0.1; every process this script
# starts is ended by PID on exit.
#
# Knobs (environment):
#   MESSAGES=1000000  RATE=2000  CONNS=64  KILL_EVERY_S=30  DROP_EVERY_S=10
#   TRANSIENT="0x58=0.005,0x14=0.005"   (1 %)   BINDS=2  WINDOW=100   DURABILITY=fsync
#   DRAIN_S=900   DATA_BASE=/tmp   SKIP_BUILD=1 (use the release binaries already built)
#   KEEP=1 (keep the work directory: store, logs, the simulator's record of every submit)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
MESSAGES=${MESSAGES:-1000000}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
KILL_EVERY_S=${KILL_EVERY_S:-30}
DROP_EVERY_S=${DROP_EVERY_S:-10}
TRANSIENT=${TRANSIENT:-"0x58=0.005,0x14=0.005"}
BINDS=${BINDS:-2}
WINDOW=${WINDOW:-100}
DURABILITY=${DURABILITY:-fsync}
DRAIN_S=${DRAIN_S:-900}
DATA_BASE=${DATA_BASE:-/tmp}

WORK=$(mktemp -d "$DATA_BASE/chaos-soak.XXXXXX")
PIDS=()

DIE_STATUS=2
# shellcheck source=bench/compare/lib.sh
source "$ROOT/bench/compare/lib.sh"

GW_PID=
cleanup() {
    [[ -n $GW_PID ]] && stop_pid "$GW_PID"
    stop_all
    finish_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM


if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries into $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release -q -p switchyard-gateway -p switchyard-bench) ||
        die "build failed"
fi
for b in switchyard smsc-sim http-load http-sink; do
    [[ -x $BIN/$b ]] || die "$BIN/$b missing"
done
for t in curl jq python3; do command -v "$t" >/dev/null || die "$t is needed"; done

# ---------------------------------------------------------------------------------------------
# The simulator, the webhook sink, the gateway

"$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --window 50 \
    --error-rates "$TRANSIENT" --record "$WORK/submits.jsonl" \
    >"$WORK/smsc-sim.out" 2>"$WORK/smsc-sim.err" &
PIDS+=($!)
wait_for 10 grep -q "control on" "$WORK/smsc-sim.out" || die "smsc-sim did not start"
SIM_SMPP=$(addr_in "$WORK/smsc-sim.out" "listening on")
SIM_CTL=$(addr_in "$WORK/smsc-sim.out" "control on")

"$BIN/http-sink" --listen 127.0.0.1:0 --distinct-field id \
    >"$WORK/http-sink.out" 2>"$WORK/http-sink.err" &
PIDS+=($!)
wait_for 10 grep -q "listening on" "$WORK/http-sink.out" || die "http-sink did not start"
SINK=$(addr_in "$WORK/http-sink.out" "listening on")

API=127.0.0.1:$(free_port)
KEY=sk_soak$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 38)
HASH=$(key_hash "$KEY")
mkdir -p "$WORK/data"
cat >"$WORK/switchyard.toml" <<EOF
[server]
listen = "$API"
data_dir = "$WORK/data"

[store]
kind = "sqlite"
durability = "$DURABILITY"

[egress]
allow = ["127.0.0.1/32"]

[[tenants]]
name = "soak"
api_keys = ["$HASH"]
webhook_url = "http://$SINK/switchyard"
webhook_secrets = ["soak-webhook-secret-0123456789"]

[[carriers]]
name = "sim"
channels = ["sms"]

[carriers.smpp]
host = "${SIM_SMPP%:*}"
port = ${SIM_SMPP##*:}
system_id = "switchyard"
password = "secret"
bind_type = "trx"
binds = $BINDS
window = $WINDOW
registered_delivery = 1

[[decks]]
carrier = "sim"
channel = "sms"
sandbox = true
EOF
"$BIN/switchyard" check-config --config "$WORK/switchyard.toml" >/dev/null ||
    die "generated config is invalid"

GW_CPU=0 # CPU ticks of the gateway processes that ended
STARTS=0
start_gateway() {
    STARTS=$((STARTS + 1))
    RUST_LOG=warn "$BIN/switchyard" serve --config "$WORK/switchyard.toml" \
        >>"$WORK/switchyard.out" 2>>"$WORK/switchyard.err" &
    GW_PID=$!
}
# Ends the gateway with SIGKILL (no drain, no final commit), counting its CPU first.
kill_gateway() {
    GW_CPU=$((GW_CPU + $(cpu_ticks "$GW_PID")))
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}

start_gateway
wait_for 30 curl -sf "http://$API/readyz" || die "switchyard not ready"
log "smsc-sim $SIM_SMPP (control $SIM_CTL), sink $SINK, gateway $API (durability $DURABILITY)"

# ---------------------------------------------------------------------------------------------
# Load and faults

LOAD_S=$(awk -v m="$MESSAGES" -v r="$RATE" 'BEGIN {printf "%d", m / r + 1}')
log "load: $MESSAGES messages at $RATE/s (~${LOAD_S} s); SIGKILL every ~${KILL_EVERY_S} s," \
    "SMPP drops every ${DROP_EVERY_S} s, transient errors $TRANSIENT"
"$BIN/http-load" --url "http://$API/v1/messages" --method POST \
    --header "Authorization: Bearer $KEY" \
    --body '{"to":"+447{seq9}","from":"Soak","body":"Chaos soak message {seq}"}' \
    --connections "$CONNS" --count "$MESSAGES" --rate "$RATE" --duration-s "$LOAD_S" \
    --timeout-s 10 --accepted-log "$WORK/accepted.txt" --label soak \
    >"$WORK/load.json" 2>"$WORK/load.err" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
T0=$SECONDS
KILLS=0 DROPS=0
next_kill() { echo $((SECONDS + KILL_EVERY_S * 4 / 5 + RANDOM % (KILL_EVERY_S * 2 / 5 + 1))); }
KILL_AT=$(next_kill)
DROP_AT=$((SECONDS + DROP_EVERY_S))
while kill -0 "$LOAD_PID" 2>/dev/null; do
    if ((SECONDS >= KILL_AT)); then
        kill_gateway
        start_gateway
        KILLS=$((KILLS + 1))
        KILL_AT=$(next_kill)
        log "kill $KILLS at $((SECONDS - T0)) s: restarted (pid $GW_PID)"
    fi
    if ((SECONDS >= DROP_AT)); then
        curl -sf -X POST "http://$SIM_CTL/disconnect" >/dev/null || true
        DROPS=$((DROPS + 1))
        DROP_AT=$((SECONDS + DROP_EVERY_S))
    fi
    sleep 0.2
done
wait "$LOAD_PID" || die "http-load failed: $(cat "$WORK/load.err")"
LOAD_END=$SECONDS
log "load done in $((LOAD_END - T0)) s: $(jq -c '{ok, by_status, io_errors, ok_per_s}' "$WORK/load.json")"

# ---------------------------------------------------------------------------------------------
# Drain: every message final and every event's webhook at the sink (faults stopped)

DB=$WORK/data/switchyard.db
db_state() {
    # unfinished messages, events in the log
    python3 - "$DB" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
unfinished = db.execute(
    "SELECT count(*) FROM messages WHERE status IN ('accepted','queued','submitting','sent')"
).fetchone()[0]
events = db.execute("SELECT coalesce(max(seq), 0) FROM history").fetchone()[0]
print(unfinished, events)
EOF
}
kill -0 "$GW_PID" 2>/dev/null || start_gateway
DRAIN_DEADLINE=$((SECONDS + DRAIN_S))
while :; do
    read -r UNFINISHED EVENTS < <(db_state)
    AT_SINK=$(curl -sf "http://$SINK/stats" | jq '.distinct')
    if ((UNFINISHED == 0 && AT_SINK >= EVENTS)); then break; fi
    if ((SECONDS >= DRAIN_DEADLINE)); then
        log "drain: gave up after $DRAIN_S s ($UNFINISHED unfinished, $AT_SINK of $EVENTS events at the sink)"
        break
    fi
    sleep 5
done
DRAIN_END=$SECONDS
GW_CPU=$((GW_CPU + $(cpu_ticks "$GW_PID")))
stop_pid "$GW_PID"
GW_PID=

# ---------------------------------------------------------------------------------------------
# Checks

SINK_STATS=$(curl -sf "http://$SINK/stats")
SIM_STATS=$(curl -sf "http://$SIM_CTL/stats")
python3 - "$WORK" "$DB" "$KILLS" "$DROPS" "$BINDS" "$WINDOW" "$SINK_STATS" "$SIM_STATS" \
    "$((LOAD_END - T0))" "$((DRAIN_END - LOAD_END))" "$GW_CPU" "$(getconf CLK_TCK)" "$STARTS" <<'EOF'
import collections, json, sqlite3, sys

work, db_path = sys.argv[1], sys.argv[2]
kills, drops, binds, window = map(int, sys.argv[3:7])
sink, sim = json.loads(sys.argv[7]), json.loads(sys.argv[8])
load_s, drain_s, gw_ticks, hz, starts = map(int, sys.argv[9:14])
load = json.load(open(f"{work}/load.json"))

accepted = {int(l) for l in open(f"{work}/accepted.txt") if l.strip()}
submits = collections.Counter()
with open(f"{work}/submits.jsonl") as f:
    for line in f:
        dest = json.loads(line)["dest"]
        submits[int(dest.lstrip("+")[3:])] += 1  # 447 + the sequence number
lost = sorted(accepted - submits.keys())
duplicates = sum(n - 1 for n in submits.values())

db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
statuses = dict(db.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
stored = sum(statuses.values())
unfinished = sum(n for s, n in statuses.items() if s in ("accepted", "queued", "submitting", "sent"))
events = db.execute("SELECT count(*) FROM history").fetchone()[0]
missing_events = max(0, events - sink["distinct"])

report = {
    "offered": load["sent"],
    "accepted": len(accepted),
    "refused_by_status": {k: v for k, v in load["by_status"].items() if not 200 <= int(k) < 300},
    "io_errors": load["io_errors"],
    "load_s": load_s,
    "drain_s": drain_s,
    "kills": kills,
    "gateway_starts": starts,
    "smpp_drops": drops,
    "sim_disconnects": sim["disconnects"],
    "sim_transient_errors": sim["throttled"] + sim["submit_errors"],
    "stored": stored,
    "statuses": statuses,
    "submitted_distinct": len(submits),
    "lost": len(lost),
    "lost_examples": lost[:10],
    "duplicates": duplicates,
    "duplicate_bound": (kills * binds + sim["disconnects"]) * window,
    "unfinished": unfinished,
    "events": events,
    "webhooks_distinct": sink["distinct"],
    "webhooks_repeats": sink["repeats"],
    "events_missing": missing_events,
    "gateway_cpu_s": round(gw_ticks / hz, 1),
    "gateway_cpu_us_per_message": round(gw_ticks / hz * 1e6 / max(1, len(accepted)), 1),
}
print(json.dumps(report, indent=2))
ok = not lost and unfinished == 0 and missing_events == 0
print("PASS" if ok else "FAIL", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
