# Shell helpers the benchmark scripts share (sourced, not run): logging, starting and stopping
# the processes a script started (by PID, never by name), waiting, addresses, API key hashes,
# free ports, CPU ticks.
#
# A script sets `WORK` (its work directory) and `PIDS=()` before using them; `start` appends
# to `PIDS`, `stop_all` ends them newest first, `finish_work` removes `WORK` unless `KEEP=1`.

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit "${DIE_STATUS:-1}"
}

# Ends one process: TERM, up to 10 s to exit, then KILL.
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

# Ends every process in PIDS, newest first.
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
}

# Removes the work directory, or says where it is with KEEP=1.
finish_work() {
    if [[ ${KEEP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}

# start NAME CMD...: runs CMD in the background with its output in $WORK/NAME.{out,err};
# its PID goes to LAST_PID and PIDS.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS CMD...: until CMD succeeds (1 when SECONDS pass first).
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# addr_in FILE PATTERN: the last word of FILE's first line with PATTERN (the address a tool
# printed that it listens on).
addr_in() { grep -m1 "$2" "$1" | awk '{print $NF}'; }

# key_hash KEY: API key KEY hashed as a tenant's `api_keys` take it (with $BIN/switchyard).
key_hash() { "$BIN/switchyard" hash-key "$1" | awk '/^hash:/ {print $2}'; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# cpu_ticks PID...: user + system clock ticks of the processes still running, summed.
cpu_ticks() {
    local files=() pid
    for pid in "$@"; do [[ -r /proc/$pid/stat ]] && files+=("/proc/$pid/stat"); done
    if ((${#files[@]} == 0)); then
        echo 0
        return
    fi
    # Fields after the ")" closing the command name: utime is the 12th, stime the 13th.
    awk '{sub(/.*\) /, ""); s += $12 + $13} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0
}

# sim_sms_toml PORT [LINE...]: prints the SMS carrier "sim" (an smsc-sim on 127.0.0.1:PORT, two
# binds, window 100, each LINE added to its [carriers.smpp]) and its deck, and writes the deck
# (+44 at 0.01 EUR) to $WORK/deck.csv: the carrier of a gateway config in $WORK.
sim_sms_toml() {
    local port=$1 line
    shift
    printf 'Prefix,Price,Currency,Effective Date,Country,Network\n44,0.0100,EUR,2025-01-01,United Kingdom,All\n' >"$WORK/deck.csv"
    printf '[[carriers]]\nname = "sim"\nchannels = ["sms"]\n[carriers.smpp]\nhost = "127.0.0.1"\n'
    printf 'port = %s\nsystem_id = "sim"\npassword = "pw"\nbinds = 2\nwindow = 100\n' "$port"
    for line in "$@"; do printf '%s\n' "$line"; done
    printf '\n[[decks]]\ncarrier = "sim"\nchannel = "sms"\npath = "deck.csv"\n'
}
