# tests/lib.sh: shared helpers of the integration tests, sourced by each
# tests/test_*.sh. Each test runs real resv processes on free loopback ports
# in a temporary directory, reports TAP lines ("ok - name", "not ok - name")
# and, on exit, stops every process it started (by PID) and removes the
# directory.

set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(cd "$TOP/${RESV_BIN:-bin}" && pwd)
T=$(mktemp -d /tmp/resv-test.XXXXXX)
PIDS=()
FAILED=0
USED_PORTS=" "

# Settings every test shares: heartbeats fast enough that a dead peer is
# found in about a second, yet slow enough that a worker busy on a loaded
# machine (40 clients on 2 cores) is not taken for dead; data in the
# temporary directory.
export RESV_BROKER_HEARTBEAT=${RESV_BROKER_HEARTBEAT:-250}
export RESV_BROKER_LIVENESS=${RESV_BROKER_LIVENESS:-4}
export RESV_DATA_DIR=$T/var
# Workers and broker share an internal key, as under resvd; the CLI never
# sends it, so the tests see what clients see.
export RESV_BROKER_INTERNAL_KEY=${RESV_BROKER_INTERNAL_KEY:-test-$RANDOM$RANDOM$RANDOM}
mkdir -p "$T/var"

cleanup () {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$FAILED" -ne 0 ] && [ -z "${CI:-}" ]; then
        echo "# logs kept in $T"
    else
        # Under CI the directory goes: the end of each process's log goes
        # to the output instead, so that a failure there can be read.
        if [ "$FAILED" -ne 0 ]; then
            local log
            for log in "$T"/*.log; do
                [ -f "$log" ] || continue
                echo "# --- last lines of ${log##*/}"
                tail -n 20 "$log" | sed 's/^/# /'
            done
        fi
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# free_port VAR: sets VAR to a free TCP port on 127.0.0.1: nothing
# answers on it and this test has not handed it out before. It sets a
# variable rather than printing, since a $(...) would run it in a subshell
# whose record of the ports handed out is lost: the three ports of one
# broker could then come out equal. The range stays below the kernel's
# ephemeral ports (32768 and up), which outgoing connections take: a
# broker that resvd restarts binds its ports again, and no connection
# must have taken one meanwhile.
free_port () {
    local _free_port        # Named so as not to hide the caller's VAR
    while :; do
        _free_port=$((20000 + RANDOM % 12768))
        case "$USED_PORTS" in *" $_free_port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$_free_port") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$_free_port "
            printf -v "$1" '%s' "$_free_port"
            return
        fi
    done
}

# alive PID: the process exists and is not a zombie; dead PID: it is gone.
alive () {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}
dead () { ! alive "$1"; }

# Points every resv program at three fresh ports.
use_free_ports () {
    local frontend backend events
    free_port frontend; free_port backend; free_port events
    export RESV_BROKER_FRONTEND=tcp://127.0.0.1:$frontend
    export RESV_BROKER_BACKEND=tcp://127.0.0.1:$backend
    export RESV_BROKER_EVENTS=tcp://127.0.0.1:$events
}

# spawn NAME CMD...: starts CMD in the background, logging to $T/NAME.log,
# and records its PID in $LAST_PID and in PIDS for cleanup.
spawn () {
    local name=$1; shift
    "$@" >>"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# hold_connections COUNT PORT SECONDS: opens COUNT idle TCP connections to
# 127.0.0.1:PORT from a process of its own (its soft limit of open files
# raised to its hard one), holds them SECONDS, and records its PID in
# $HOLDER and in PIDS. Returns once they are all open, or fails after 10 s.
hold_connections () {
    rm -f "$T/conns.ready"
    python3 -c 'import resource, socket, sys, time
hard = resource.getrlimit (resource.RLIMIT_NOFILE) [1]
resource.setrlimit (resource.RLIMIT_NOFILE, (hard, hard))
conns = [socket.create_connection (("127.0.0.1", int (sys.argv [2])))
         for _ in range (int (sys.argv [1]))]
open (sys.argv [4], "w").write ("open")
time.sleep (float (sys.argv [3]))' "$1" "$2" "$3" "$T/conns.ready" &
    HOLDER=$!
    PIDS+=("$HOLDER")
    wait_for 10 test -s "$T/conns.ready"
}

# wait_for SECONDS CMD...: runs CMD every 50 ms until it succeeds; fails
# after SECONDS.
wait_for () {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.05
    done
}

# Starts resv-broker on fresh ports and waits until it answers ping.
start_broker () {
    [ -n "${RESV_BROKER_FRONTEND:-}" ] || use_free_ports
    spawn broker "$BIN/resv-broker"
    BROKER_PID=$LAST_PID
    wait_for 10 "$BIN/resv" -t 500 ping
}

# start_worker SERVICE: starts one resv-worker of SERVICE; $LAST_PID is it.
start_worker () {
    spawn "worker-$1" "$BIN/resv-worker" "$1"
}

# workers_of SERVICE: how many live workers the broker counts for SERVICE:
# 0 when the broker's stats list no such service, and '?' when there are
# no stats to read (no broker answered), so that a wait for 0 workers does
# not take a broker that is down for a service with none.
workers_of () {
    local stats
    if ! stats=$("$BIN/resv" -t 1000 stats 2>/dev/null) ||
       ! printf '%s' "$stats" | grep -q '"services":'; then
        echo '?'
        return
    fi
    printf '%s' "$stats" |
        grep -o "\"$1\":{\"workers\":[0-9]*" | grep -o '[0-9]*$' || echo 0
}

# has_workers SERVICE N: the broker counts N workers of SERVICE now.
has_workers () {
    [ "$(workers_of "$1")" = "$2" ]
}

# wait_workers SERVICE N: waits until the broker counts N workers of SERVICE
# (asking it again on every try).
wait_workers () {
    wait_for 10 has_workers "$1" "$2"
}

ok () { echo "ok - $*"; }
not_ok () { echo "not ok - $*"; FAILED=$((FAILED + 1)); }

# check NAME CMD...: ok if CMD exits 0.
check () {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# expect_exit CODE NAME CMD...: ok if CMD exits with CODE; its stdout is
# left in $OUT.
expect_exit () {
    local want=$1 name=$2; shift 2
    OUT=$("$@" 2>"$T/stderr"); local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name"
    else not_ok "$name (exit $rc, wanted $want): $OUT $(head -c 300 "$T/stderr")"; fi
}

# has NAME TEXT PATTERN: ok if TEXT contains PATTERN (a grep -E regex).
has () {
    if printf '%s' "$2" | grep -qE -- "$3"; then ok "$1"
    else not_ok "$1: '$3' not in: $(printf '%s' "$2" | head -c 400)"; fi
}

# Ends the test script: exit status says whether any check failed.
finish () {
    exit $((FAILED > 0))
}
