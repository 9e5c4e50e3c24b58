#!/usr/bin/env bash
# sip-vs-kamailio.sh: Switchyard's SIP proxy and Kamailio 5.6 side by side, same SIPp UAS, same
# SIPp UAC load: SIPp UAC -> proxy -> SIPp UAS, calls INVITE/100/180/200/ACK/BYE/200.
#
# One SIPp UAS (built-in `uas` scenario) serves both proxies. For each proxy (Kamailio with the
# minimal stateful tm relay in kamailio-relay.cfg, then `switchyard serve` with one voice trunk
# pointing at the UAS), a SIPp UAC (built-in `uac` scenario) runs each rate in RATES for STEP_S
# seconds (RATE x STEP_S calls, then waits for them to end). Per step: attempted, successful and
# failed calls (SIPp's -stf statistics), INVITE->200 response time (SIPp's -trace_rtt), and
# the proxy's CPU per successful call from /proc/<pid>/stat utime+stime (Kamailio: the main
# process and every process it forked; Switchyard: its one process, all threads). Prints one
# table, the highest rate each proxy held with < 1 % failed calls, and Switchyard/Kamailio
# ratios. See bench/compare/README.md.
#
# Everything listens on 127.0.0.1; every process this script starts is ended by PID on exit.
# Run as root on a Debian machine: installs kamailio and sip-tester (sipp) with apt when missing.
#
# Knobs (environment):
#   RATES="200 400 650 800 1000 1300 1600 2000 2500"  call rates (calls/s)  STEP_S=12  s per step
#   CALL_MS=0            pause between ACK and BYE (SIPp -d), ms
#   RING_MS=10           the UAS's pause between its 180 Ringing and its 200 OK, ms
#   SYSTEMS="kamailio switchyard"            which proxies, in this order; `baseline` is a
#                        second Switchyard run with the binary BASELINE_BIN (a build to compare
#                        with, in the same run)
#   BASELINE_BIN=        the `switchyard` binary SYSTEMS' `baseline` runs
#   STOP_FAIL_PCT=20     skip a proxy's higher steps once a step failed more than this
#   RECV_TIMEOUT_MS=5000 a call waiting this long for a message fails (SIPp -recv_timeout)
#   SETTLE_S=2           after the UAC ends, wait this long before reading the proxy's CPU
#   KAM_CHILDREN=4       Kamailio UDP worker processes (children=)
#   KAM_SHM_MB=1024 KAM_PKG_MB=8   Kamailio shared and per-process memory (256 MB of shm runs out
#                        near 2000 calls/s: tm keeps every transaction 5 s after its final reply)
#   PATIENT_BREAKER=1    Switchyard's breaker never opens (Kamailio has none); 0: defaults
#   SKIP_BUILD=1         use the switchyard binary already in $CARGO_TARGET_DIR/release
#   KEEP=1               keep the work directory (configs, SIPp statistics and error logs)
#   PROFILE_STEP=RATE    for Switchyard, run `perf record` on the proxy during that step
#                        (perf.data kept in the work directory; implies KEEP=1)
#   PERF_CALLGRAPH=dwarf perf's --call-graph (release builds have no frame pointers: dwarf)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/compare
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sy-target-bench}
BIN=$CARGO_TARGET_DIR/release
RATES=${RATES:-"200 400 650 800 1000 1300 1600 2000 2500"}
STEP_S=${STEP_S:-12}
CALL_MS=${CALL_MS:-0}
RING_MS=${RING_MS:-10}
SYSTEMS=${SYSTEMS:-"kamailio switchyard"}
STOP_FAIL_PCT=${STOP_FAIL_PCT:-20}
RECV_TIMEOUT_MS=${RECV_TIMEOUT_MS:-5000}
SETTLE_S=${SETTLE_S:-2}
KAM_CHILDREN=${KAM_CHILDREN:-4}
KAM_SHM_MB=${KAM_SHM_MB:-1024}
KAM_PKG_MB=${KAM_PKG_MB:-8}
PATIENT_BREAKER=${PATIENT_BREAKER:-1}
PROFILE_STEP=${PROFILE_STEP:-}
BASELINE_BIN=${BASELINE_BIN:-}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-dwarf}
[[ -n $PROFILE_STEP ]] && KEEP=1
CLK_TCK=$(getconf CLK_TCK)
CALLEE=447700900123

WORK=$(mktemp -d /tmp/sip-vs-kamailio.XXXXXX)
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

# start NAME CMD...: runs CMD in the background in $WORK, output in $WORK/NAME.{out,err};
# sets LAST_PID.
start() {
    local name=$1
    shift
    (cd "$WORK" && exec "$@") >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# UDP datagrams the kernel dropped because a socket's receive buffer was full (whole host).
udp_drops() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 }
        else print $c }' /proc/net/snmp
}

# Datagrams dropped on the UDP socket bound to 127.0.0.1:PORT (its receive buffer was full).
socket_drops() {
    awk -v a="$(printf '0100007F:%04X' "$1")" '$2 == a {print $NF; f = 1} END {if (!f) print 0}' \
        /proc/net/udp
}

# Nanoseconds the threads of processes PID... spent runnable but waiting for a core
# (/proc/PID/task/TID/schedstat, second field), summed: what the scheduler adds to a proxy's
# response times.
runq_wait_ns() {
    local pid files=()
    for pid in "$@"; do
        [[ -d /proc/$pid/task ]] && files+=(/proc/"$pid"/task/*/schedstat)
    done
    ((${#files[@]} > 0)) || { echo 0; return; }
    cat "${files[@]}" 2>/dev/null | awk '{s += $2} END {printf "%.0f\n", s}'
}

# User-mode clock ticks of the processes PID... (utime alone: what the proxy's own code costs,
# without the kernel's per-datagram work).
user_ticks() {
    local files=() pid
    for pid in "$@"; do [[ -r /proc/$pid/stat ]] && files+=("/proc/$pid/stat"); done
    ((${#files[@]} > 0)) || { echo 0; return; }
    awk '{sub(/.*\) /, ""); s += $12} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0
}

# The value of column NAME in the last line of SIPp's ;-separated statistics file FILE.
stat_col() {
    awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
        END { if (c) print $c; else print 0 }' "$1"
}

# ---------------------------------------------------------------------------------------------
# Build and prerequisites

apt_install() {
    ((EUID == 0)) || die "$* missing: run as root (or apt-get install $*)"
    log "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" \
        >"$WORK/apt.log" 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" \
                >"$WORK/apt.log" 2>&1; } || die "could not install $* (see $WORK/apt.log)"
}
command -v sipp >/dev/null || apt_install sip-tester
if [[ " $SYSTEMS " == *" kamailio "* ]]; then
    command -v kamailio >/dev/null || apt_install kamailio
    KAM_VERSION=$({ kamailio -v 2>/dev/null || true; } | awk '/^version:/ {v = $3} END {print v}')
    KAM_MODULES=$(dirname "$(ls /usr/lib/*/kamailio/modules/tm.so /usr/lib/kamailio/modules/tm.so \
        2>/dev/null | head -1)")
    [[ -f $KAM_MODULES/tm.so ]] || die "Kamailio's tm.so not found"
fi
for t in python3 awk sort; do command -v "$t" >/dev/null || die "$t is needed"; done
if [[ " $SYSTEMS " == *" switchyard "* ]]; then
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building the release switchyard binary into $CARGO_TARGET_DIR"
        (cd "$ROOT" && cargo build --release -q -p switchyard-gateway) || die "build failed"
    fi
    [[ -x $BIN/switchyard ]] || die "$BIN/switchyard missing"
fi
if [[ " $SYSTEMS " == *" baseline "* ]]; then
    [[ -x $BASELINE_BIN ]] || die "SYSTEMS has baseline: BASELINE_BIN must name a switchyard binary"
fi
if [[ -n $PROFILE_STEP ]]; then command -v perf >/dev/null || die "perf is needed for PROFILE_STEP"; fi
SIPP_VERSION=$({ sipp -v 2>&1 || true; } | awk '/SIPp v/ {v = $2} END {sub(/-.*/, "", v); print v}')

# ---------------------------------------------------------------------------------------------
# SIPp's built-in scenarios, made tolerant of reordering between the 180 and the 200 (and
# between the ACK and the BYE): a proxy with several worker processes (Kamailio) may relay two
# messages sent back to back in either order, which the built-in scenarios count as failed
# calls. `optional="global"` lets the 180/183 (UAC) and the ACK (UAS) arrive at any point.
# That alone is not enough: SIPp 3.6.1 re-arms the recv timeout of a call that gets a late 180
# during its pause before the BYE (the call then fails 5 s later), so the UAS also waits
# RING_MS between its 180 and its 200, as a phone rings before it is answered.

{ sipp -sd uac || true; } | sed -e 's/<recv response="18\([03]\)" optional="true">/<recv response="18\1" optional="global">/' \
    >"$WORK/uac.xml"
{ sipp -sd uas || true; } | sed -e '/<recv request="ACK"/,/>/ s/optional="true"/optional="global"/' |
    awk -v ms="$RING_MS" '{print} /<\/send>/ && !done && ms > 0 {
        printf "\n  <pause milliseconds=\"%d\"/>\n", ms; done = 1 }' >"$WORK/uas.xml"
[[ $(grep -c 'optional="global"' "$WORK/uac.xml") == 2 ]] || die "could not adapt SIPp's uac scenario"
[[ $(grep -c 'optional="global"' "$WORK/uas.xml") == 1 ]] || die "could not adapt SIPp's uas scenario"

# ---------------------------------------------------------------------------------------------
# The SIPp UAS, shared by both proxies

UAS_PORT=$(free_udp_port)
UAS=127.0.0.1:$UAS_PORT
start sipp-uas sipp -sf "$WORK/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin -buff_size 1048576 \
    -recv_timeout "$((RECV_TIMEOUT_MS * 2))" -trace_err -error_file "$WORK/uas-errors.log" \
    -trace_stat -stf "$WORK/uas-stat.csv" -fd 1
UAS_PID=$LAST_PID
wait_for 10 test -s "$WORK/uas-stat.csv" || die "SIPp UAS did not start (see $WORK/sipp-uas.err)"
log "SIPp $SIPP_VERSION UAS on udp $UAS, pid $UAS_PID"

# ---------------------------------------------------------------------------------------------
# One load step

# run_step SYSTEM RATE TARGET: RATE calls/s for STEP_S seconds to TARGET (ip:port); appends a
# row to $RESULTS. Needs PROXY_PIDS (whose CPU is charged). Sets LAST_FAIL_PCT.
run_step() {
    local system=$1 rate=$2 target=$3
    local calls=$((rate * STEP_S)) dir=$WORK/$system-$rate
    mkdir -p "$dir"
    local c0 us0 w0 u0 uf0 t0 d0 pd0 ud0 uac perf_pid=""
    d0=$(udp_drops)
    pd0=$(socket_drops "$PROXY_PORT")
    ud0=$(socket_drops "$UAS_PORT")
    c0=$(cpu_ticks "${PROXY_PIDS[@]}")
    us0=$(user_ticks "${PROXY_PIDS[@]}")
    w0=$(runq_wait_ns "${PROXY_PIDS[@]}")
    u0=$(cpu_ticks "$UAS_PID")
    uf0=$(stat_col "$WORK/uas-stat.csv" 'FailedCall(C)')
    t0=$(now)
    (cd "$dir" && exec timeout --signal=KILL "$((STEP_S + RECV_TIMEOUT_MS / 1000 * 4 + 60))" \
        sipp -sf "$WORK/uac.xml" "$target" -s "$CALLEE" -i 127.0.0.1 -p 0 -r "$rate" -m "$calls" \
        -d "$CALL_MS" -buff_size 1048576 -recv_timeout "$RECV_TIMEOUT_MS" -timeout "$((STEP_S + 60))s" -nostdin \
        -trace_err -error_file "$dir/uac-errors.log" -trace_stat -stf "$dir/uac-stat.csv" \
        -trace_rtt -rtt_freq 1) >"$dir/uac.out" 2>&1 &
    uac=$!
    PIDS+=("$uac")
    if [[ $system == switchyard && $rate == "$PROFILE_STEP" ]]; then
        sleep 1
        perf record --call-graph "$PERF_CALLGRAPH" -o "$WORK/perf.data" -p "${PROXY_PIDS[0]}" \
            -- sleep "$((STEP_S - 2))" \
            >"$WORK/perf.out" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
    fi
    # SIPp's own CPU, sampled while it runs (the last sample before it exits).
    local uac_ticks=0 t sipp_pid=""
    while kill -0 "$uac" 2>/dev/null; do
        [[ -n $sipp_pid ]] || sipp_pid=$(pgrep -P "$uac" sipp || true)
        if [[ -n $sipp_pid ]]; then
            t=$(cpu_ticks "$sipp_pid")
            ((t > 0)) && uac_ticks=$t
        fi
        sleep 0.2
    done
    wait "$uac" || true
    [[ -n $perf_pid ]] && { wait "$perf_pid" || true; }
    local t_end
    t_end=$(now)
    sleep "$SETTLE_S"
    local cpu uas_cpu uf1 la
    cpu=$(($(cpu_ticks "${PROXY_PIDS[@]}") - c0))
    local user
    user=$(($(user_ticks "${PROXY_PIDS[@]}") - us0))
    local runq
    runq=$((($(runq_wait_ns "${PROXY_PIDS[@]}") - w0) / 1000000))
    uas_cpu=$(($(cpu_ticks "$UAS_PID") - u0))
    uf1=$(stat_col "$WORK/uas-stat.csv" 'FailedCall(C)')
    la=$(loadavg)
    local drops=$(($(udp_drops) - d0)) pdrops=$(($(socket_drops "$PROXY_PORT") - pd0))
    local udrops=$(($(socket_drops "$UAS_PORT") - ud0))
    local csv=$dir/uac-stat.csv rtt
    [[ -s $csv ]] || die "$system $rate/s: SIPp wrote no statistics (see $dir/uac.out)"
    rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)
    # Response times, and the answered-call rate: 200s received over the span between the
    # first and the last one (SIPp's own CallRate(C) divides by the whole run, including the
    # wait for a last call that timed out).
    local p50=- p99=- cps=0
    if [[ -n $rtt ]]; then
        cps=$(awk -F';' 'NR > 1 && $3 == 1 { if (n == 0) a = $1; b = $1; n++ }
            END { print (n > 1 && b > a) ? (n - 1) * 1000 / (b - a) : 0 }' "$rtt")
        read -r p50 p99 < <(awk -F';' 'NR > 1 && $3 == 1 {print $2}' "$rtt" | sort -n |
            awk '{v[NR] = $1} END {
                if (NR == 0) { print "- -"; exit }
                i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
                i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                printf "%d %d\n", v[i50] + 0.5, v[i99] + 0.5 }')
    fi
    # Why calls failed: the non-zero Failed* counters.
    local why
    why=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) n[i] = $i }
        END { for (i = 1; i <= NF; i++) if (n[i] ~ /^Failed.+\(C\)$/ && n[i] != "FailedCall(C)" && $i > 0) {
                  s = n[i]; sub(/^Failed/, "", s); sub(/\(C\)$/, "", s); out = out s "=" $i " " }
              print out }' "$csv")
    # system rate attempted/s attempted ok failed fail% retrans cpu_ms/call proxy_cores
    #   p50 p99 uac_cores uas_cores uas_failed load why udp_drops proxy_drops uas_drops runq_ms
    #   user_ms/call
    awk -F'\t' -v sys="$system" -v rate="$rate" -v hz="$CLK_TCK" -v cpu="$cpu" \
        -v t0="$t0" -v t1="$t_end" -v uac="$uac_ticks" -v uas="$uas_cpu" \
        -v uasf=$((uf1 - uf0)) -v la="$la" -v drops="$drops" -v step_s="$STEP_S" \
        -v pdrops="$pdrops" -v udrops="$udrops" -v p50="$p50" -v p99="$p99" -v why="$why" \
        -v runq="$runq" -v user="$user" \
        -v att="$(stat_col "$csv" 'OutgoingCall(C)')" -v ok="$(stat_col "$csv" 'SuccessfulCall(C)')" \
        -v bad="$(stat_col "$csv" 'FailedCall(C)')" -v cps="$cps" \
        -v rtx="$(stat_col "$csv" 'Retransmissions(C)')" 'BEGIN {
            span = step_s
            printf "%s\t%s\t%.0f\t%d\t%d\t%d\t%.2f\t%d\t%.3f\t%.2f\t%s\t%s\t%.2f\t%.2f\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%.3f\n",
                sys, rate, cps, att, ok, bad, (att > 0 ? 100 * bad / att : 100), rtx,
                (cpu / hz) * 1000 / (ok > 0 ? ok : 1), cpu / hz / span, p50, p99,
                uac / hz / span, uas / hz / span, uasf, la, why, drops, pdrops, udrops, runq,
                (user / hz) * 1000 / (ok > 0 ? ok : 1)
        }' >>"$RESULTS"
    LAST_FAIL_PCT=$(tail -1 "$RESULTS" | cut -f7)
    log "$system $rate/s: $(tail -1 "$RESULTS" | cut -f3-)"
}

run_steps() {
    local system=$1 target=$2 r
    log "$system: warm-up (100 calls at 100/s)"
    local saved=$RESULTS
    RESULTS=$WORK/warmup.tsv STEP_S=1 run_step "$system" 100 "$target"
    RESULTS=$saved
    for r in $RATES; do
        run_step "$system" "$r" "$target"
        if awk -v f="$LAST_FAIL_PCT" -v m="$STOP_FAIL_PCT" 'BEGIN {exit !(f > m)}'; then
            log "$system: $LAST_FAIL_PCT % failed at $r/s, higher steps skipped"
            break
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Kamailio

run_kamailio() {
    local dir=$WORK/kamailio port
    mkdir -p "$dir"
    port=$(free_udp_port)
    sed -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@TRUNK@|$UAS|g" -e "s|@CHILDREN@|$KAM_CHILDREN|" \
        -e "s|@ALLOW@|127.0.0.1|" -e "s|^mpath=.*|mpath=\"$KAM_MODULES/\"|" \
        "$HERE/kamailio-relay.cfg" >"$dir/kamailio.cfg"
    kamailio -c -f "$dir/kamailio.cfg" >"$dir/check.out" 2>&1 ||
        die "generated Kamailio config is invalid (see $dir/check.out)"
    # -DD: stay in the foreground (our PID is the main process) but fork the workers.
    start kamailio kamailio -f "$dir/kamailio.cfg" -DD -E -m "$KAM_SHM_MB" -M "$KAM_PKG_MB" \
        -Y "$dir" -P "$dir/kamailio.pid"
    local pid=$LAST_PID
    # Every process it forks (UDP workers, timers, slow timer, …) is charged.
    wait_for 20 bash -c "[[ \$(pgrep -P $pid | wc -l) -ge $KAM_CHILDREN ]]" ||
        die "Kamailio did not start (see $WORK/kamailio.err)"
    sleep 1
    mapfile -t PROXY_PIDS < <(echo "$pid"; pgrep -P "$pid")
    PROXY_PORT=$port
    log "kamailio $KAM_VERSION on udp 127.0.0.1:$port: pid $pid, ${#PROXY_PIDS[@]} processes, children=$KAM_CHILDREN"
    run_steps kamailio "127.0.0.1:$port"
    stop_pid "$pid"
}

# ---------------------------------------------------------------------------------------------
# Switchyard

# run_switchyard [SYSTEM BINARY]: `switchyard` with $BIN/switchyard, or SYSTEM (e.g. baseline)
# with BINARY.
run_switchyard() {
    local system=${1:-switchyard} exe=${2:-$BIN/switchyard}
    local dir=$WORK/$system key hash
    mkdir -p "$dir"
    key=sk_bench$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 38)
    hash=sha256:$(printf %s "$key" | sha256sum | cut -d' ' -f1)
    printf '%s\n' "prefix,rate,currency,effective_date,connection_fee,billing,country,description" \
        "44,0.0100,EUR,2025-01-01,0.0000,60/60,United Kingdom,All" >"$dir/uas.csv"
    cat >"$dir/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$dir/data"
shutdown_timeout_s = 2

[sip]
listen = "127.0.0.1:0"
# Kamailio's minimal relay does not probe its destination either; SIPp's built-in UAS would
# count OPTIONS as unexpected messages.
options_interval_ms = 0

[[tenants]]
name = "bench"
api_keys = ["$hash"]
preference = "cheapest"
sip_allow = ["127.0.0.1"]

[[carriers]]
name = "uas"
channels = ["voice"]

[carriers.sip]
host = "127.0.0.1"
port = $UAS_PORT

[[decks]]
carrier = "uas"
channel = "voice"
path = "uas.csv"
EOF
    if [[ $PATIENT_BREAKER == 1 ]]; then
        printf '\n[routing.breaker]\nconsecutive_failures = 10000\nerror_rate = 1.0\nmin_requests = 1000000\n' \
            >>"$dir/switchyard.toml"
    fi
    "$exe" check-config --config "$dir/switchyard.toml" >"$dir/check.out" 2>&1 ||
        die "generated Switchyard config is invalid (see $dir/check.out)"
    start "$system" env RUST_LOG=warn "$exe" serve --config "$dir/switchyard.toml"
    local pid=$LAST_PID
    wait_for 20 grep -q "SIP proxy on udp" "$WORK/$system.out" ||
        die "$system did not start (see $WORK/$system.err)"
    local sip
    sip=$(grep -m1 "SIP proxy on udp" "$WORK/$system.out" | awk '{print $NF}')
    PROXY_PIDS=("$pid")
    PROXY_PORT=${sip##*:}
    log "$system ($exe) on udp $sip: pid $pid ($(nproc) cores, tokio default runtime), RUST_LOG=warn"
    run_steps "$system" "$sip"
    stop_pid "$pid"
    # The proxy warns of its own stalls: turns of its loop over 20 ms, timers fired 20 ms late.
    local slow late
    slow=$(cat "$WORK/$system.out" "$WORK/$system.err" | grep -c "slow SIP proxy turn" || true)
    late=$(cat "$WORK/$system.out" "$WORK/$system.err" | grep -c "SIP proxy timer fired late" || true)
    printf '%s\t%s\t%s\n' "$system" "$slow" "$late" >>"$WORK/stalls.tsv"
}

: >"$RESULTS"
for system in $SYSTEMS; do
    case $system in
    kamailio) run_kamailio ;;
    switchyard) run_switchyard ;;
    baseline) run_switchyard baseline "$BASELINE_BIN" ;;
    *) die "unknown system $system" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# The table

{
    echo
    echo "Switchyard vs Kamailio ${KAM_VERSION:-} (tm stateful relay, children=$KAM_CHILDREN, shm ${KAM_SHM_MB} MB), SIPp $SIPP_VERSION UAC -> proxy -> SIPp UAS,"
    echo "$(nproc) cores shared by everything, ${STEP_S} s per step, ringing ${RING_MS} ms, call length ${CALL_MS} ms, recv timeout ${RECV_TIMEOUT_MS} ms."
    echo "CPU ms/call: proxy utime+stime / successful calls. Cores: CPU seconds / STEP_S. UASerr: calls the UAS failed."
    echo "UDPdrop all: datagrams the kernel dropped on full receive buffers (whole host, /proc/net/snmp RcvbufErrors);"
    echo "proxy/UAS drop: of those, on the proxy's and on the UAS's socket (/proc/net/udp); the rest is mostly the UAC's."
    echo "200s/s: answered calls per second at the UAC. calls: attempted; ok/failed: SIPp's verdict per call."
    echo "RTT: INVITE -> 200 OK at the UAC (SIPp's clock, ms). load: 1-minute load average at the end of the step."
    echo "runq ms: time the proxy's threads (Kamailio: all its processes) were runnable but waited for a core."
    echo "user ms/call: the proxy's user-mode CPU alone (utime) per successful call."
    echo
    awk -F'\t' '
        BEGIN {
            fmt = "%-10s %6s %7s %7s %7s %6s %7s %7s %8s %6s %6s %6s %6s %6s %6s %7s %6s %6s %6s %6s %9s\n"
            printf fmt, "proxy", "rate", "200s/s", "calls", "ok", "failed", "fail%", "retrans",
                "CPUms/call", "proxy", "UAC", "UAS", "RTTp50", "RTTp99", "UASerr", "UDPdrop", "proxy", "UAS", "load", "runq", "user"
            printf fmt, "", "", "", "", "", "", "", "", "", "cores", "cores", "cores", "ms", "ms", "", "all", "drop", "drop", "", "ms", "ms/call"
        }
        {
            printf "%-10s %6s %7d %7d %7d %6d %7.2f %7d %10.3f %6.2f %6.2f %6.2f %6s %6s %6d %7d %6d %6d %6s %6d %9.3f\n",
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $14, $11, $12, $15, $18, $19, $20, $16, $21, $22
            if ($17 != "") notes = notes sprintf("  %s %s/s failures: %s\n", $1, $2, $17)
            if ($7 < 1 && $3 >= 0.95 * $2 && $2 + 0 > best[$1]) { best[$1] = $2 + 0; bestcpu[$1] = $9 }
            cpu[$1, $2] = $9; fail[$1, $2] = $7
            if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
        }
        END {
            printf "\nHighest rate with < 1 %% failed calls (and >= 95 %% of the rate reached):\n"
            for (s in best) printf "  %-10s %5d calls/s at %.3f CPU ms/call\n", s, best[s], bestcpu[s]
            if (("switchyard" in best) && ("kamailio" in best))
                printf "  Switchyard/Kamailio: rate %.2fx\n", best["switchyard"] / best["kamailio"]
            printf "\nSwitchyard/Kamailio CPU per call at each rate (target <= 0.33x):\n"
            for (j = 1; j <= n; j++) {
                k = order[j]
                if ((("switchyard", k) in cpu) && (("kamailio", k) in cpu) && cpu["kamailio", k] > 0)
                    printf "  %5s/s  %.2fx   (failed: switchyard %.2f %%, kamailio %.2f %%)\n", k,
                        cpu["switchyard", k] / cpu["kamailio", k], fail["switchyard", k], fail["kamailio", k]
                if ((("baseline", k) in cpu) && (("kamailio", k) in cpu) && cpu["kamailio", k] > 0)
                    printf "  %5s/s  %.2fx   baseline (failed: %.2f %%)\n", k,
                        cpu["baseline", k] / cpu["kamailio", k], fail["baseline", k]
            }
            if (notes != "") printf "\nSIPp failure counters:\n%s", notes
        }' "$RESULTS"
    if [[ -s $WORK/stalls.tsv ]]; then
        echo
        echo "Switchyard's own stall warnings over all its steps (turns > 20 ms, timers > 20 ms late):"
        awk -F'\t' '{printf "  %-10s %5d slow turns, %5d late timers\n", $1, $2, $3}' "$WORK/stalls.tsv"
    fi
} | tee "$WORK/table.txt"
