#!/usr/bin/env bash
# smpp-hub.sh: SMPP in → SMPP out, Switchyard and Jasmin side by side. `smpp-load` binds to the
# system's SMPP server as a tenant's ESME, the system submits to one `smsc-sim`, and the
# simulator's receipts come back to the ESME as deliver_sm. One table: per system and step,
# submit_sm_resp'd per second, receipts back per second, submit_sm → submit_sm_resp latency
# p50/p99 (at the ESME), CPU time per message (Jasmin: jasmind, and RabbitMQ and Redis apart),
# then the Switchyard/Jasmin ratios for the steps both ran. See bench/README.md for the columns.
#
# Steps: paced at each rate for STEP_S seconds, then unpaced for MAX_S seconds. A step ends when
# every acknowledged message has its receipt back at the ESME (or DRAIN_S passes after the last
# submit_sm_resp). Jasmin carries under a hundred messages a second here, so it has its own
# rates (JASMIN_RATES); Switchyard runs those too, which gives ratios at the same load.
#
# Jasmin is installed if missing: pip into a venv (JASMIN_VENV), RabbitMQ and Redis with apt
# (needs root). RabbitMQ, Redis and jasmind are started by this script on 127.0.0.1 with their
# own ports and data under the work directory. When Jasmin cannot be installed or started, the
# output says why; the exit status is nonzero only if SYSTEMS was set and names it.
#
# Everything listens on 127.0.0.1; every process this script starts is ended by PID on exit.
#
# Knobs (environment):
#   SYSTEMS="switchyard jasmin"   the systems to run (default: both)
#   RATES="2000 5000"   Switchyard's paced steps, submits/s    STEP_S=10  seconds per paced step
#   JASMIN_RATES="50 100 200"  Jasmin's paced steps (Switchyard runs them too when Jasmin runs)
#   MAX_S=10            unpaced step (0: skip)     JASMIN_MAX_S=$MAX_S   Jasmin's unpaced step
#   DRAIN_S=30          longest wait for receipts after the last response
#   JASMIN_DRAIN_S=120  the same for Jasmin (its queue may hold a backlog after an unpaced step)
#   SIM_DLR_DELAY_MS=500  the simulator's delay from submit to receipt. Jasmin maps the SMSC's
#                       message id to its own only after the submit_sm_resp went through
#                       RabbitMQ to its DLR lookup; a receipt that comes before the mapping is
#                       retried 10 s later ([dlr] dlr_lookup_retry_delay), so at 5 ms a fifth of
#                       its receipts arrive 10 s late.
#   SIM_WINDOW=100      deliver_sm (receipts) the simulator leaves unanswered per bind, at most.
#                       Switchyard answers a receipt once it is committed, so this over the
#                       commit wait caps receipts per second (see bench/README.md).
#   ESME_BINDS=4 ESME_WINDOW=64   the ESME's transceiver binds to the system and their window
#   SY_BINDS=2 SY_WINDOW=100      Switchyard's binds to the simulator and their window
#   JASMIN_CONNECTORS=$SY_BINDS   Jasmin's SMPP client connectors (one TRX bind each; a
#                                 connector has one submit_sm outstanding at a time)
#   JASMIN_VERSION=0.11.0 JASMIN_VENV=/tmp/jasmin-venv JASMIN_PYTHON=python3.11
#   SKIP_BUILD=1        use the binaries already in $CARGO_TARGET_DIR/release
#   KEEP=1              keep the work directory (configs, logs, JSON per step)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
SYSTEMS_ASKED=${SYSTEMS:-}
SYSTEMS=${SYSTEMS:-"switchyard jasmin"}
RATES=${RATES:-"2000 5000"}
JASMIN_RATES=${JASMIN_RATES:-"50 100 200"}
STEP_S=${STEP_S:-10}
MAX_S=${MAX_S:-10}
JASMIN_MAX_S=${JASMIN_MAX_S:-$MAX_S}
DRAIN_S=${DRAIN_S:-30}
SIM_DLR_DELAY_MS=${SIM_DLR_DELAY_MS:-500}
SIM_WINDOW=${SIM_WINDOW:-100}
JASMIN_DRAIN_S=${JASMIN_DRAIN_S:-120}
ESME_BINDS=${ESME_BINDS:-4}
ESME_WINDOW=${ESME_WINDOW:-64}
SY_BINDS=${SY_BINDS:-2}
SY_WINDOW=${SY_WINDOW:-100}
JASMIN_CONNECTORS=${JASMIN_CONNECTORS:-$SY_BINDS}
# 0.11.1 never sends receipts to an SMPP ESME: its submit_sm_resp handler raises AttributeError
# before it maps the SMSC's message id (jookies/jasmin#1236). 0.11.0 does not have that line.
JASMIN_VERSION=${JASMIN_VERSION:-0.11.0}
JASMIN_VENV=${JASMIN_VENV:-/tmp/jasmin-venv}
JASMIN_PYTHON=${JASMIN_PYTHON:-python3.11}
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/smpp-hub.XXXXXX)
RESULTS=$WORK/results.tsv
PIDS=()

# shellcheck source=bench/compare/lib.sh
source "$ROOT/bench/compare/lib.sh"
# Why a system did not run (one line each), printed under the table.
UNAVAILABLE=()

cleanup() {
    stop_all
    release_jasmind_lock
    finish_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# jasmind takes /tmp/jasmind.lock (a hard link to /tmp/HOST-THREAD.PID…) and removes it when
# it exits cleanly. If ours had to be killed, remove the lock it left, and only that one.
JASMIND_PID=
release_jasmind_lock() {
    [[ -n $JASMIND_PID && -e /tmp/jasmind.lock ]] || return 0
    kill -0 "$JASMIND_PID" 2>/dev/null && return 0
    local own
    own=$(find /tmp -maxdepth 1 -samefile /tmp/jasmind.lock -name "*.$JASMIND_PID*" 2>/dev/null)
    [[ -n $own ]] && rm -f /tmp/jasmind.lock "$own"
    return 0
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

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cpu_sampler: every 0.25 s, a line "unix-time gw-ticks broker-ticks redis-ticks", until ended.
cpu_sampler() {
    while :; do
        echo "$(date +%s.%N) $(cpu_ticks "${GW_PIDS[@]}") $(cpu_ticks "${BROKER_PIDS[@]}") $(cpu_ticks "${REDIS_PIDS[@]}")"
        sleep 0.25
    done
}

# PID and all its descendants (RabbitMQ is a shell wrapper around the Erlang VM and its helpers).
process_tree() {
    local pid=$1 child
    echo "$pid"
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do process_tree "$child"; done
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
# Build and prerequisites

command -v jq >/dev/null || die "jq is needed"
command -v python3 >/dev/null || die "python3 is needed"
for system in $SYSTEMS; do
    case $system in switchyard | jasmin) ;; *) die "unknown system $system" ;; esac
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked -p switchyard-gateway -p switchyard-bench >&2)
fi
for b in switchyard smsc-sim smpp-load; do
    [[ -x $BIN/$b ]] || die "$BIN/$b missing"
done

# install_jasmin: makes sure Jasmin, RabbitMQ and Redis are here; on failure sets JASMIN_REASON
# and returns 1. Each part is skipped when present.
install_jasmin() {
    local missing=()
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v epmd >/dev/null || missing+=(erlang-base)
    if ((${#missing[@]} > 0)); then
        if [[ $(id -u) != 0 ]]; then
            JASMIN_REASON="${missing[*]} missing and not root: apt-get install -y ${missing[*]}"
            return 1
        fi
        log "installing ${missing[*]} with apt"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${missing[@]}"; } >"$WORK/apt.log" 2>&1; then
            JASMIN_REASON="apt-get install ${missing[*]} failed: $(tail -1 "$WORK/apt.log")"
            return 1
        fi
    fi
    if [[ $(jasmin_version) != "$JASMIN_VERSION" ]]; then
        if [[ ! -x $JASMIN_VENV/bin/pip ]]; then
            command -v "$JASMIN_PYTHON" >/dev/null ||
                { JASMIN_REASON="$JASMIN_PYTHON not found (JASMIN_PYTHON names the interpreter)"; return 1; }
        fi
        log "installing Jasmin $JASMIN_VERSION into $JASMIN_VENV (pip)"
        if ! { { [[ -x $JASMIN_VENV/bin/pip ]] || "$JASMIN_PYTHON" -m venv "$JASMIN_VENV"; } &&
            "$JASMIN_VENV/bin/pip" install -q "jasmin==$JASMIN_VERSION"; } >"$WORK/pip.log" 2>&1; then
            JASMIN_REASON="pip install jasmin==$JASMIN_VERSION into $JASMIN_VENV failed: $(tail -1 "$WORK/pip.log")"
            return 1
        fi
    fi
    # jasmind needs the AMQP 0-9-1 spec, which the jasmin package does not ship; txAMQP (one of
    # its dependencies) does. It is copied into each run's configuration directory.
    AMQP_SPEC=$(find "$JASMIN_VENV" -path '*/txamqp/specs/standard/amqp0-9-1.stripped.xml' |
        head -1)
    [[ -n $AMQP_SPEC ]] ||
        { JASMIN_REASON="no txamqp/specs/standard/amqp0-9-1.stripped.xml under $JASMIN_VENV (txAMQP3 missing?)"; return 1; }
    # jasmind refuses to start while another holds /tmp/jasmind.lock (a path it hardcodes).
    if [[ -e /tmp/jasmind.lock ]]; then
        JASMIN_REASON="/tmp/jasmind.lock exists: another jasmind runs (or one died; remove the file)"
        return 1
    fi
    JASMIN_INSTALLED=$(jasmin_version)
}

# The version of the jasmin package in JASMIN_VENV (empty when there is none).
jasmin_version() {
    "$JASMIN_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("jasmin"))' \
        2>/dev/null || true
}

# not_run SYSTEM REASON: notes that SYSTEM did not run.
not_run() {
    UNAVAILABLE+=("$1: not run: $2")
    log "$1: not run: $2"
}

if [[ " $SYSTEMS " == *" jasmin "* ]]; then
    if install_jasmin; then
        log "Jasmin $JASMIN_INSTALLED in $JASMIN_VENV, RabbitMQ and Redis present"
    else
        not_run jasmin "$JASMIN_REASON"
        SYSTEMS=${SYSTEMS//jasmin/}
    fi
fi
# Switchyard runs Jasmin's rates too when Jasmin is compared, for ratios at the same load.
SY_RATES=$RATES
if [[ " $SYSTEMS " == *" jasmin "* ]]; then
    SY_RATES=$(xargs -n1 <<<"$JASMIN_RATES $RATES" | sort -n -u | xargs)
fi

# ---------------------------------------------------------------------------------------------
# The simulator, shared by both systems

[[ -n ${SYSTEMS// /} ]] || die "no system left to run"
start sim "$BIN/smsc-sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 --dlr-delay-ms "$SIM_DLR_DELAY_MS" \
    --window "$SIM_WINDOW"
SIM=$(announced sim listening)
log "smsc-sim on $SIM"

# ---------------------------------------------------------------------------------------------
# One load step

# step SYSTEM NAME DRAIN ARGS...: one smpp-load run against $HUB as $ESME_USER; appends a row to
# $RESULTS, or returns 1 if smpp-load failed. CPU is counted for GW_PIDS, BROKER_PIDS and
# REDIS_PIDS (the last two may be empty) from the start of the step to the last response or
# receipt, whichever is later: smpp-load may wait longer (a bind whose receipts came over
# another bind waits DRAIN), and that idle time is not charged.
step() {
    local system=$1 name=$2 drain=$3
    shift 3
    local base=$WORK/$system-${name//\//-} g0 b0 r0 g1 b1 r1 t0 end sampler
    g0=$(cpu_ticks "${GW_PIDS[@]}")
    b0=$(cpu_ticks "${BROKER_PIDS[@]}")
    r0=$(cpu_ticks "${REDIS_PIDS[@]}")
    t0=$(date +%s.%N)
    cpu_sampler >"$base.cpu" &
    sampler=$!
    PIDS+=("$sampler")
    if ! "$BIN/smpp-load" --connect "$HUB" --system-id "$ESME_USER" --password "$ESME_PASSWORD" \
        --binds "$ESME_BINDS" --window "$ESME_WINDOW" --to 447911123456 --dlr \
        --dlr-wait-s "$drain" "$@" >"$base.json" 2>"$base.err"; then
        stop_pid "$sampler"
        log "smpp-load failed ($system $name): $(tail -1 "$base.err")"
        return 1
    fi
    stop_pid "$sampler"
    end=$(jq '[.submit_seconds, .receipt_seconds] | max' "$base.json")
    # The first sample at or after the last response or receipt (the last sample if none).
    read -r g1 b1 r1 < <(awk -v t="$(awk -v a="$t0" -v b="$end" 'BEGIN {printf "%.3f", a + b}')" '
        { last = $2 " " $3 " " $4 }
        $1 >= t && !found { print $2, $3, $4; found = 1 }
        END { if (!found) print last }' "$base.cpu")
    # CPU µs per acknowledged message; "-" for a part the system does not have.
    jq -r --arg sys "$system" --arg name "$name" --arg load "$(load1)" --argjson hz "$CLK_TCK" \
        --argjson g $((g1 - g0)) --argjson b $((b1 - b0)) --argjson r $((r1 - r0)) \
        --argjson has_broker ${#BROKER_PIDS[@]} '
        def per_msg($t): if .ok > 0 then ($t / $hz * 1e6 / .ok | floor) else 0 end;
        [$sys, $name, .ok, .throttled, .errors, .dlrs,
         (.submits_per_s | floor), (.receipts_per_s | floor),
         (.latency_us_p50 / 1000), (.latency_us_p99 / 1000),
         per_msg($g),
         (if $has_broker > 0 then per_msg($b) else "-" end),
         (if $has_broker > 0 then per_msg($r) else "-" end),
         per_msg($g + $b + $r), $load] | @tsv' "$base.json" >>"$RESULTS"
    log "$system $name: $(tail -1 "$RESULTS" | cut -f3-)"
}

# run_steps SYSTEM DRAIN UNPACED_S WARMUP_RATE RATES...: warm-up (2 s at WARMUP_RATE, not
# recorded), the paced steps, the unpaced step. Returns 1 at the first step that failed.
run_steps() {
    local system=$1 drain=$2 unpaced=$3 warmup=$4 r
    shift 4
    log "$system: warm-up"
    step "$system" warmup "$drain" --count $((2 * warmup)) --rate "$warmup" --max-seconds 30 ||
        return 1
    sed -i '$d' "$RESULTS"
    for r in "$@"; do
        log "$system: paced $r/s for ${STEP_S}s"
        step "$system" "$r/s" "$drain" --rate "$r" --count $((r * STEP_S)) \
            --max-seconds $((STEP_S + 5)) || return 1
    done
    if ((unpaced > 0)); then
        log "$system: unpaced for ${unpaced}s"
        step "$system" unpaced "$drain" --count 10000000 --max-seconds "$unpaced" || return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Switchyard

run_switchyard() {
    local dir=$WORK/switchyard
    mkdir -p "$dir"
    cat >"$dir/deck.csv" <<EOF
Prefix,Price,Currency,Effective Date,Country,Network
44,0.0100,EUR,2025-01-01,United Kingdom,All networks
EOF
    cat >"$dir/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$dir/data"

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
    start switchyard "$BIN/switchyard" serve --config "$dir/switchyard.toml"
    local pid=$LAST_PID
    HUB=$(announced switchyard "SMPP server")
    log "switchyard: SMPP server on $HUB, pid $pid"
    ESME_USER=bench ESME_PASSWORD=bench
    GW_PIDS=("$pid") BROKER_PIDS=() REDIS_PIDS=()
    # shellcheck disable=SC2086 # SY_RATES is a list of numbers
    run_steps switchyard "$DRAIN_S" "$MAX_S" 1000 $SY_RATES || die "switchyard: a load step failed"
    stop_pid "$pid"
}

# ---------------------------------------------------------------------------------------------
# Jasmin: Redis, RabbitMQ (with its own epmd), jasmind, then the configuration over jCli.

# jcli PORT FILE: sends FILE's lines to jCli one by one, printing the answers; fails on an answer
# that reports an error. `ok` must answer "Successfully".
jcli() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)

def answer(done=lambda text: text.endswith("jcli : ") or text.endswith("> ")):
    """Reads until the console prompts again ("jcli : ", or "> " while adding an object)."""
    buf, deadline = b"", time.time() + 30
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        text = buf.decode("utf-8", "replace").replace("\r", "")
        if done(text):
            return text
    sys.exit("jCli: no prompt after: %r" % buf[-200:])

# The banner ends with a "Session ref: N" line and no prompt.
answer(lambda text: "Session ref:" in text and text.endswith("\n"))
for line in open(sys.argv[2]).read().splitlines():
    if not line.strip():
        continue
    sock.sendall(line.encode() + b"\r\n")
    text = answer()
    print(text, end="")
    bad = any(w in text for w in ("Error", "Unknown", "Invalid", "Incorrect", "Cannot", "Failed"))
    if bad or (line == "ok" and "Successfully" not in text):
        sys.exit("jCli refused %r: %s" % (line, text.strip()))
sock.sendall(b"quit\r\n")
PY
}

# run_jasmin: on a failure, prints why, stops what it started and returns 1.
run_jasmin() {
    local dir=$WORK/jasmin
    local epmd_port rabbit_port dist_port redis_port smpps_port jcli_port i
    mkdir -p "$dir/rabbit/home" "$dir/rabbit/mnesia" "$dir/rabbit/log" "$dir/redis" \
        "$dir/root/etc/jasmin/resource" "$dir/root/etc/jasmin/store" "$dir/root/var/log/jasmin"
    epmd_port=$(free_port) rabbit_port=$(free_port) dist_port=$(free_port)
    redis_port=$(free_port) smpps_port=$(free_port) jcli_port=$(free_port)
    local started=()
    jasmin_failed() {
        local i
        for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[i]}"; done
        release_jasmind_lock
        not_run jasmin "$1"
        return 1
    }

    start redis redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir/redis" \
        --save '' --appendonly no --daemonize no --loglevel warning
    local redis_pid=$LAST_PID
    started+=("$redis_pid")
    wait_for 20 listening "$redis_port" || jasmin_failed "redis-server did not start (see $WORK/redis.out)" || return 1

    # RabbitMQ as Debian ships it, but started by hand: its own node name, ports and data, its
    # own epmd (ended with it), no plugins. +sbwt none: the Erlang schedulers do not busy-wait,
    # which on 2 shared cores would take CPU from everything else.
    start epmd epmd -address 127.0.0.1 -port "$epmd_port"
    local epmd_pid=$LAST_PID
    started+=("$epmd_pid")
    wait_for 10 listening "$epmd_port" || jasmin_failed "epmd did not start" || return 1
    : >"$dir/rabbit/rabbitmq-env.conf"
    echo '[].' >"$dir/rabbit/enabled_plugins"
    start rabbitmq env HOME="$dir/rabbit/home" ERL_EPMD_PORT="$epmd_port" \
        RABBITMQ_CONF_ENV_FILE="$dir/rabbit/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$dir/rabbit/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbit/enabled_plugins" \
        RABBITMQ_NODENAME=jasmin-bench@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$rabbit_port" RABBITMQ_DIST_PORT="$dist_port" \
        RABBITMQ_MNESIA_BASE="$dir/rabbit/mnesia" RABBITMQ_LOG_BASE="$dir/rabbit/log" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
        /usr/lib/rabbitmq/bin/rabbitmq-server
    local rabbit_pid=$LAST_PID
    started+=("$rabbit_pid")
    wait_for 60 grep -q "completed with" "$WORK/rabbitmq.out" ||
        jasmin_failed "RabbitMQ did not start (see $WORK/rabbitmq.out, $dir/rabbit/log)" || return 1

    cp "$AMQP_SPEC" "$dir/root/etc/jasmin/resource/amqp0-9-1.xml"
    # Ports of its own for every listener, jCli on 127.0.0.1 without a login, logging at
    # warnings (a line per message otherwise).
    cat >"$dir/root/etc/jasmin/jasmin.cfg" <<EOF
[smpp-server]
bind = 127.0.0.1
port = $smpps_port
log_level = WARNING

[jcli]
bind = 127.0.0.1
port = $jcli_port
authentication = False
log_level = WARNING

[smpp-server-pb]
bind = 127.0.0.1
port = $(free_port)
log_level = WARNING

[router]
bind = 127.0.0.1
port = $(free_port)
log_level = WARNING

[client-management]
bind = 127.0.0.1
port = $(free_port)
log_level = WARNING

[amqp-broker]
host = 127.0.0.1
port = $rabbit_port
log_level = WARNING

[redis-client]
host = 127.0.0.1
port = $redis_port
log_level = WARNING

[sm-listener]
log_level = WARNING

[dlr]
log_level = WARNING

[dlr-thrower]
log_level = WARNING

[service-smppclient]
log_level = WARNING
EOF

    # The DLR lookup and thrower run inside jasmind (as Jasmin's own Docker image runs them);
    # the HTTP API is not used here.
    start jasmind env ROOT_PATH="$dir/root" "$JASMIN_VENV/bin/python" "$JASMIN_VENV/bin/jasmind.py" \
        -c "$dir/root/etc/jasmin/jasmin.cfg" --enable-dlr-lookup --enable-dlr-thrower \
        --disable-http-api
    local jasmind_pid=$LAST_PID
    JASMIND_PID=$jasmind_pid
    started+=("$jasmind_pid")
    wait_for 60 grep -q "jCli Started" "$WORK/jasmind.out" ||
        jasmin_failed "jasmind did not start: $(grep -m1 -iE 'error|lock|Traceback' "$WORK/jasmind.out" "$WORK/jasmind.err" || echo "see $WORK/jasmind.err")" ||
        return 1
    if grep -q "Cannot start" "$WORK/jasmind.out"; then
        jasmin_failed "jasmind: $(grep -m1 "Cannot start" "$WORK/jasmind.out")" || return 1
    fi

    # A user for the ESME (no balance, count or throughput limit), JASMIN_CONNECTORS connectors
    # to the simulator (no submit throughput limit), an MT route over them: the default route
    # for one, a round-robin route matching every message for more.
    {
        cat <<EOF
group -a
gid bench
ok
user -a
username bench
password bench
uid bench
gid bench
mt_messaging_cred quota balance none
mt_messaging_cred quota sms_count none
mt_messaging_cred quota smpps_throughput none
smpps_cred quota max_bindings none
ok
EOF
        for ((i = 1; i <= JASMIN_CONNECTORS; i++)); do
            printf '%s\n' "smppccm -a" "cid sim$i" "host ${SIM%:*}" "port ${SIM##*:}" \
                "username jasmin" "password pw" "submit_throughput 0" "loglevel 30" ok
        done
        if ((JASMIN_CONNECTORS == 1)); then
            printf '%s\n' "mtrouter -a" "type DefaultRoute" "connector smppc(sim1)" "rate 0.00" ok
        else
            printf '%s\n' "filter -a" "type TransparentFilter" "fid all" ok \
                "mtrouter -a" "type RandomRoundrobinMTRoute" "order 10" "filters all" \
                "connectors $(for ((i = 1; i <= JASMIN_CONNECTORS; i++)); do printf 'smppc(sim%s);' "$i"; done | sed 's/;$//')" \
                "rate 0.00" ok
        fi
        for ((i = 1; i <= JASMIN_CONNECTORS; i++)); do echo "smppccm -1 sim$i"; done
    } >"$dir/jcli-setup.txt"
    jcli "$jcli_port" "$dir/jcli-setup.txt" >"$WORK/jcli-setup.out" 2>&1 ||
        jasmin_failed "configuration over jCli failed: $(tail -1 "$WORK/jcli-setup.out")" || return 1
    echo "smppccm -l" >"$dir/jcli-list.txt"
    jasmin_bound() {
        (($(jcli "$jcli_port" "$dir/jcli-list.txt" | grep -c "BOUND_TRX") >= JASMIN_CONNECTORS))
    }
    wait_for 30 jasmin_bound ||
        jasmin_failed "Jasmin's connectors did not all bind to the simulator" || return 1

    HUB=127.0.0.1:$smpps_port
    log "jasmin $JASMIN_INSTALLED: SMPP server on $HUB, jasmind pid $jasmind_pid, RabbitMQ pid $rabbit_pid, Redis pid $redis_pid"
    ESME_USER=bench ESME_PASSWORD=bench
    GW_PIDS=("$jasmind_pid")
    mapfile -t BROKER_PIDS < <(process_tree "$rabbit_pid")
    BROKER_PIDS+=("$epmd_pid")
    REDIS_PIDS=("$redis_pid")
    # shellcheck disable=SC2086 # JASMIN_RATES is a list of numbers
    run_steps jasmin "$JASMIN_DRAIN_S" "$JASMIN_MAX_S" "${JASMIN_RATES%% *}" $JASMIN_RATES ||
        jasmin_failed "a load step failed (see $WORK/jasmin-*.err, $dir/root/var/log/jasmin)" ||
        return 1
    local i
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[i]}"; done
    release_jasmind_lock
}

: >"$RESULTS"
for system in $SYSTEMS; do
    case $system in
    switchyard) run_switchyard ;;
    jasmin) run_jasmin || true ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# The table

{
    echo
    echo "SMPP in → SMPP out on one smsc-sim ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
    echo "ESME: smpp-load, $ESME_BINDS TRX binds, window $ESME_WINDOW, registered_delivery 1; paced steps of $STEP_S s."
    echo "Switchyard: SQLite store fsynced per group commit, $SY_BINDS TRX binds to the simulator, window $SY_WINDOW."
    [[ " $SYSTEMS " != *" jasmin "* ]] ||
        echo "Jasmin ${JASMIN_INSTALLED:-}: jasmind (DLR lookup and thrower inside), $JASMIN_CONNECTORS TRX connectors (1 submit_sm outstanding each), RabbitMQ and Redis on 127.0.0.1."
    echo "CPU columns: µs per acknowledged message; gw = the gateway process (jasmind for Jasmin), all = gw + broker + redis."
    echo
    awk -F'\t' '
        BEGIN {
            fmt = "%-10s %-8s %7s %5s %5s %8s %8s %10s %8s %8s %7s %7s %7s %7s %5s\n"
            printf fmt, "system", "step", "ok", "thr", "err", "receipts", "ok/s", "receipts/s",
                "p50 ms", "p99 ms", "gw µs", "broker", "redis", "all µs", "load"
        }
        {
            printf "%-10s %-8s %7d %5d %5d %8d %8d %10d %8.2f %8.2f %7s %7s %7s %7s %5s\n",
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
            for (i = 7; i <= 14; i++) v[$1, $2, i] = $i
            if ($6 < $3) notes = notes sprintf("%s %s: %d acknowledged messages had no receipt when the step ended (still queued or lost); its CPU per message leaves their delivery out\n", $1, $2, $3 - $6)
            if (!($2 in order)) { order[$2] = ++n; names[n] = $2 }
        }
        END {
            head = 0
            for (j = 1; j <= n; j++) {
                k = names[j]
                if (!(("switchyard", k, 7) in v) || !(("jasmin", k, 7) in v)) continue
                if (!head++) {
                    printf "\nSwitchyard/Jasmin (higher is better for ok/s and receipts/s, lower for latency and CPU):\n"
                    printf "%-8s %8s %10s %8s %8s %8s %8s\n", "step", "ok/s", "receipts/s", "p50", "p99", "gw µs", "all µs"
                }
                line = sprintf("%-8s", k)
                split("7 8 9 10 11 14", cols, " ")
                for (c = 1; c <= 6; c++) {
                    i = cols[c]; a = v["switchyard", k, i]; b = v["jasmin", k, i]
                    line = line sprintf(" %8s", b > 0 ? sprintf("%.3gx", a / b) : "-")
                }
                print line
            }
            if (notes != "") printf "\n%s", notes
        }' "$RESULTS"
    if ((${#UNAVAILABLE[@]} > 0)); then
        echo
        printf '%s\n' "${UNAVAILABLE[@]}"
    fi
} | tee "$WORK/table.txt"

# A system named in SYSTEMS that did not run fails the script; by default it is only reported.
for line in "${UNAVAILABLE[@]}"; do
    if [[ " $SYSTEMS_ASKED " == *" ${line%%:*} "* ]]; then exit 1; fi
done
