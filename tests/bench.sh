#!/usr/bin/env bash
# tests/bench.sh: resv against its baselines (make bench). Two sections:
#
# echo: starts resv-broker and echo workers on free loopback ports in a
# temporary directory. For 1 and 2 workers and 1, 16 and 64 requests in
# flight it runs `resv-bench ping` (echo/echo: client -> broker -> worker
# and back) and raw-echo (the same shape in plain CZMQ, tests/raw_echo.c,
# each piece a process as in resv) alternately, BENCH_RUNS times each, and
# prints a table of medians. Then, for reference, it measures the broker
# alone (`--service ping`) and raw-echo with its pieces as threads of one
# process.
#
# reserve: starts resvd with the default worker counts of config/resv.cfg
# (no echo worker) on fresh ports and data. BENCH_RUNS rounds, each of:
# `resv-bench reserve` at 1, 16 and 64 in flight for BENCH_RESERVE_SECONDS
# (reservations/s, latency, the event lag to the view, and the CPU time of
# resvd's processes per reservation), saga-baseline
# (the same SQLite transactions with no messaging, tests/saga_baseline.c)
# and raw-echo at 64 in flight with 1 worker. It prints a table of medians
# and ratios, then runs reserve open-loop at half the median rate measured
# at 64 in flight for BENCH_SUSTAIN_SECONDS, with the lag p99 of each 10 s
# window, to show whether the asynchronous part keeps up.
#
# Everything it starts is stopped on exit (tests/lib.sh); every run is
# bounded by `timeout`. Other load on the machine skews the figures: the
# headers show the load average.
#
# Environment (defaults in brackets):
#   RESV_BIN            resv programs [bin]
#   RESV_RAW_ECHO       the echo baseline [build/obj/raw-echo]
#   RESV_SAGA_BASELINE  the reserve baseline [build/obj/saga-baseline]
#   BENCH_SECTIONS      sections to run ["echo reserve"]
#   BENCH_RUNS          runs of each measurement, medians are kept [5]
#   BENCH_REQUESTS_1, BENCH_REQUESTS_16, BENCH_REQUESTS_64
#                       requests per echo run at 1, 16, 64 in flight
#                       [5000, 20000, 50000]
#   BENCH_SIZE          request body size, bytes [128]
#   BENCH_TIMEOUT       deadline of each request, ms [5000]
#   BENCH_RESERVE_SECONDS   length of one reserve run [4]
#   BENCH_BASELINE_REQUESTS reservations of one saga-baseline run [3000]
#   BENCH_SUSTAIN_SECONDS   length of the sustained run [60]
#
# Adding a measurement: write a function that runs it $RUNS times with
# run_json (which keeps each JSON line in a file) and prints a row from
# median FILE FIELD; call it from main.

# Benchmarks run with the production heartbeat, not the tests' fast one.
export RESV_BROKER_HEARTBEAT=${RESV_BROKER_HEARTBEAT:-1000}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TOP" || exit 1

RAW_ECHO=${RESV_RAW_ECHO:-build/obj/raw-echo}
SAGA_BASELINE=${RESV_SAGA_BASELINE:-build/obj/saga-baseline}
SECTIONS=${BENCH_SECTIONS:-echo reserve}
RUNS=${BENCH_RUNS:-5}
RESERVE_SECONDS=${BENCH_RESERVE_SECONDS:-4}
BASELINE_REQUESTS=${BENCH_BASELINE_REQUESTS:-3000}
SUSTAIN_SECONDS=${BENCH_SUSTAIN_SECONDS:-60}
SIZE=${BENCH_SIZE:-128}
TIMEOUT=${BENCH_TIMEOUT:-5000}
CREDIT=${RESV_WORKERS_CREDIT:-16}   # raw-echo gets the credit resv workers use
RUN_LIMIT=120                       # seconds any single run may take

# requests_for C: how many requests one run at C in flight makes.
requests_for () {
    case $1 in
        1)  echo "${BENCH_REQUESTS_1:-5000}" ;;
        16) echo "${BENCH_REQUESTS_16:-20000}" ;;
        *)  echo "${BENCH_REQUESTS_64:-50000}" ;;
    esac
}

# run_json FILE CMD...: runs CMD (bounded by $RUN_LIMIT seconds) and
# appends its JSON line to FILE; a run that prints none, or reports failed
# requests, is logged.
run_json () {
    local file=$1; shift
    local line
    line=$(timeout "$RUN_LIMIT" "$@" 2>>"$T/bench-stderr.log" | grep '^{' | tail -n 1)
    if [ -z "$line" ]; then
        echo "# no result from: $*" >&2
        FAILED=$((FAILED + 1))
        return 1
    fi
    echo "$line" >>"$file"
    case "$line" in
        *'"failed":0,'*) ;;
        *) echo "# failed requests in: $* -> ${line##*\"failed\":}" >&2 ;;
    esac
}

# field LINE NAME: the numeric value of NAME in a JSON line.
field () {
    printf '%s\n' "$1" | grep -oE "\"$2\":[0-9.]+" | cut -d: -f2
}

# median FILE NAME: the median of NAME over the JSON lines of FILE ("-" if
# FILE has none).
median () {
    local values
    [ -s "$1" ] || { echo "-"; return; }
    values=$(while read -r line; do field "$line" "$2"; done <"$1" | sort -g)
    printf '%s\n' "$values" | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2];
              else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B [DECIMALS]: A / B with two (or DECIMALS) decimals, "-" if
# either is missing or B is 0.
ratio () {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-";
        else printf "%.*f\n", d, a / b }'
}

# has_workers SERVICE N: true once the broker counts N workers of SERVICE.
# (The same as lib.sh's.)
has_workers () {
    [ "$(workers_of "$1")" = "$2" ]
}

# bench_echo WORKERS C: resv-bench echo/echo and raw-echo, alternately,
# $RUNS times each, at C in flight; prints one row of the table.
bench_echo () {
    local workers=$1 c=$2 n
    n=$(requests_for "$c")
    local resv=$T/resv-w$workers-c$c.jsonl raw=$T/raw-w$workers-c$c.jsonl
    local run
    for run in $(seq "$RUNS"); do
        run_json "$resv" "${RESV_PING[@]}" -c "$c" -n "$n" --size "$SIZE"
        run_json "$raw" "$RAW_ECHO" -c "$c" -n "$n" -w "$workers" \
            --size "$SIZE" -t "$TIMEOUT" --credit "$CREDIT" --json
    done
    local resv_rate raw_rate resv_p50 raw_p50 rtt="-"
    resv_rate=$(median "$resv" rate)
    raw_rate=$(median "$raw" rate)
    resv_p50=$(median "$resv" p50_ms)
    raw_p50=$(median "$raw" p50_ms)
    [ "$c" -eq 1 ] && rtt=$(ratio "$resv_p50" "$raw_p50")
    printf '%7s %9s %11s %11s %8s %15s %15s %9s\n' "$workers" "$c" \
        "$resv_rate" "$raw_rate" "$(ratio "$resv_rate" "$raw_rate")" \
        "$resv_p50/$(median "$resv" p99_ms)" \
        "$raw_p50/$(median "$raw" p99_ms)" "$rtt"
}

# bench_broker C: the broker alone (service ping), $RUNS times at C in
# flight; prints one line.
bench_broker () {
    local c=$1 n
    n=$(requests_for "$c")
    local file=$T/broker-ping-c$c.jsonl run
    for run in $(seq "$RUNS"); do
        run_json "$file" "${RESV_PING[@]}" -c "$c" -n "$n" --service ping \
            --method "" --size "$SIZE"
    done
    echo "broker alone (--service ping), $c in flight:" \
         "$(median "$file" rate) req/s, p50/p99" \
         "$(median "$file" p50_ms)/$(median "$file" p99_ms) ms"
}

# bench_raw_threads C: raw-echo with its pieces as threads of one process
# (one ZeroMQ context), 1 worker, $RUNS times at C in flight; prints one
# line. resv, being several programs, cannot share a context like this:
# the line shows what that costs, not a target.
bench_raw_threads () {
    local c=$1 n
    n=$(requests_for "$c")
    local file=$T/raw-threads-c$c.jsonl run
    for run in $(seq "$RUNS"); do
        run_json "$file" "$RAW_ECHO" --threads -c "$c" -n "$n" -w 1 \
            --size "$SIZE" -t "$TIMEOUT" --credit "$CREDIT" --json
    done
    echo "raw-echo --threads (one process), 1 worker, $c in flight:" \
         "$(median "$file" rate) req/s, p50/p99" \
         "$(median "$file" p50_ms)/$(median "$file" p99_ms) ms"
}

# --- echo -------------------------------------------------------------

bench_echo_section () {
    start_broker || { echo "bench: the broker did not start" >&2; exit 1; }
    ECHO_PIDS=("$BROKER_PID")
    # resv-bench ping with what every run shares; bench_* add the rest.
    RESV_PING=("$BIN/resv-bench" -e "$RESV_BROKER_FRONTEND" ping
               -t "$TIMEOUT" --json)
    echo "# resv vs raw CZMQ: median of $RUNS runs, ${SIZE}-byte bodies," \
         "echo/echo, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%7s %9s %11s %11s %8s %15s %15s %9s\n' workers in-flight \
        "resv req/s" "raw req/s" resv/raw "resv p50/p99" "raw p50/p99" \
        "rtt ratio"
    local workers c
    for workers in 1 2; do
        start_worker echo
        ECHO_PIDS+=("$LAST_PID")
        if ! wait_for 10 has_workers echo "$workers"; then
            echo "bench: $workers echo workers did not come up" >&2
            exit 1
        fi
        for c in 1 16 64; do
            bench_echo "$workers" "$c"
        done
    done
    bench_broker 64
    bench_raw_threads 1
    bench_raw_threads 64
    echo "# latencies in ms; rtt ratio = resv p50 / raw p50 at 1 in flight"
    echo "# targets: resv/raw >= 0.90 pipelined, rtt ratio <= 1.20"
    # The next section wants the machine to itself.
    stop_pids "${ECHO_PIDS[@]}"
}

# stop_pids PID...: stops these processes of ours and waits for them.
stop_pids () {
    local pid i
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "$@"; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
}


# --- reserve ----------------------------------------------------------

# resvd_ready: every worker resvd runs has announced itself to the broker.
resvd_ready () {
    local status svc want
    status=$("$BIN/resv" -t 1000 call resvd status '{}' 2>/dev/null) || return 1
    for svc in $(printf '%s' "$status" | grep -o '"service":"[a-z]*"' |
                 cut -d'"' -f4 | grep -v '^broker$' | sort -u); do
        want=$(printf '%s' "$status" | grep -o "\"service\":\"$svc\"" | wc -l)
        [ "$(workers_of "$svc")" = "$want" ] || return 1
    done
}

# json_list LINE NAME: the objects of the array NAME in a JSON line, one a
# line (flat objects only, as resv-bench's lag_windows).
json_list () {
    printf '%s\n' "$1" | grep -oE "\"$2\":\[[^]]*\]" | grep -oE '\{[^}]*\}'
}

# cpu_ticks PID: the CPU time (user + system, in clock ticks) used so far
# by PID and its children, resvd and the processes it runs.
cpu_ticks () {
    local pid total=0 t
    for pid in "$1" $(pgrep -P "$1"); do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# bench_reserve_round ROUND: one run of each reserve measurement. Each
# reserve run also records the CPU time of resvd's processes per
# reservation made (ms), which moves less with a shared machine than the
# rate does.
bench_reserve_round () {
    local c before line
    for c in 1 16 64; do
        before=$(cpu_ticks "$RESVD_PID")
        run_json "$T/reserve-c$c.jsonl" "${RESV_RESERVE[@]}" -c "$c" \
            --duration "$RESERVE_SECONDS" || continue
        line=$(tail -n 1 "$T/reserve-c$c.jsonl")
        awk -v t="$(( $(cpu_ticks "$RESVD_PID") - before ))" \
            -v hz="$(getconf CLK_TCK)" -v n="$(field "$line" transactions)" \
            'BEGIN { if (n > 0) printf "{\"cpu_ms\":%.3f}\n", t * 1000 / hz / n }' \
            >>"$T/cpu-c$c.jsonl"
    done
    run_json "$T/baseline.jsonl" "$SAGA_BASELINE" -c "$TOP/config/resv.cfg" \
        --dir "$T/baseline-var" -n "$BASELINE_REQUESTS" --json
    run_json "$T/raw-reserve.jsonl" "$RAW_ECHO" -c 64 -n "$(requests_for 64)" \
        -w 1 --size "$SIZE" -t "$TIMEOUT" --credit "$CREDIT" --json
}

# bench_reserve_table: the medians of the rounds, one row per in-flight.
bench_reserve_table () {
    local base raw c file rate
    base=$(median "$T/baseline.jsonl" rate)
    raw=$(median "$T/raw-reserve.jsonl" rate)
    echo "# reserve: median of $RUNS runs of ${RESERVE_SECONDS} s, default" \
         "workers, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%9s %10s %9s %9s %17s %11s %9s %11s %9s %11s\n' in-flight \
        "reserves/s" "p50 ms" "p99 ms" "lag p50/p99 ms" "baseline/s" \
        resv/base "raw echo/s" resv/raw "cpu ms/res"
    for c in 1 16 64; do
        file=$T/reserve-c$c.jsonl
        rate=$(median "$file" rate)
        printf '%9s %10s %9s %9s %17s %11s %9s %11s %9s %11s\n' "$c" "$rate" \
            "$(median "$file" p50_ms)" "$(median "$file" p99_ms)" \
            "$(median "$file" lag_p50_ms)/$(median "$file" lag_p99_ms)" \
            "$base" "$(ratio "$rate" "$base")" "$raw" "$(ratio "$rate" "$raw" 4)" \
            "$(median "$T/cpu-c$c.jsonl" cpu_ms)"
    done
    echo "# baseline: saga-baseline, the same SQLite transactions one at a" \
         "time with no messaging, p50/p99 $(median "$T/baseline.jsonl" p50_ms)/$(median "$T/baseline.jsonl" p99_ms) ms;" \
         "raw echo: raw-echo, 64 in flight, 1 worker; cpu ms/res: CPU time" \
         "of resvd and every process it runs over a run, per reservation"
    echo "# target: >= 5000 reserves/s at 64 in flight with p99 <= 20 ms"
}

# bench_reserve_sustained: open-loop at half the rate measured at 64 in
# flight; the lag p99 by 10 s window, then overall.
bench_reserve_sustained () {
    local rate line window
    rate=$(awk -v r="$(median "$T/reserve-c64.jsonl" rate)" \
           'BEGIN { if (r == "-" || r + 0 <= 0) print 0; else printf "%.1f\n", r / 2 }')
    if [ "$rate" = 0 ]; then
        echo "# sustained run skipped: no rate at 64 in flight"
        return
    fi
    echo "# sustained: $rate reserves/s (half the median at 64 in flight)" \
         "for $SUSTAIN_SECONDS s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    RUN_LIMIT=$((SUSTAIN_SECONDS + 60)) run_json "$T/sustained.jsonl" \
        "${RESV_RESERVE[@]}" -c 1000 --rate "$rate" \
        --duration "$SUSTAIN_SECONDS" || return
    line=$(tail -n 1 "$T/sustained.jsonl")
    printf '%8s %9s %10s %10s\n' "from s" sampled "lag p50" "lag p99"
    json_list "$line" lag_windows | while read -r window; do
        printf '%8s %9s %10s %10s\n' "$(field "$window" from_s)" \
            "$(field "$window" count)" "$(field "$window" w_p50_ms)" \
            "$(field "$window" w_p99_ms)"
    done
    echo "overall: $(field "$line" rate) reserves/s done, p50/p99" \
         "$(field "$line" p50_ms)/$(field "$line" p99_ms) ms; lag p50/p99/max" \
         "$(field "$line" lag_p50_ms)/$(field "$line" lag_p99_ms)/$(field "$line" lag_max_ms) ms," \
         "$(field "$line" lag_count) sampled, $(field "$line" lag_lost) lost"
    echo "# target: lag p99 <= 50 ms and not growing from window to window"
}

bench_reserve_section () {
    use_free_ports
    export RESV_DATA_DIR=$T/reserve-var
    mkdir -p "$RESV_DATA_DIR" "$T/baseline-var"
    RESV_WORKERS_ECHO_COUNT=0 spawn resvd "$BIN/resvd" -c "$TOP/config/resv.cfg"
    RESVD_PID=$LAST_PID
    if ! wait_for 30 resvd_ready; then
        echo "bench: resvd did not come up (log: $T/resvd.log)" >&2
        FAILED=$((FAILED + 1))
        return
    fi
    RESV_RESERVE=("$BIN/resv-bench" -e "$RESV_BROKER_FRONTEND" reserve
                  -t "$TIMEOUT" --json)
    # A short run first, not counted: the stores and caches warm up.
    "${RESV_RESERVE[@]}" -c 16 --duration 1 >/dev/null 2>&1
    local round
    for round in $(seq "$RUNS"); do
        bench_reserve_round
    done
    bench_reserve_table
    bench_reserve_sustained
}

main () {
    local missing="" prog section
    for prog in "$BIN/resv-broker" "$BIN/resv-worker" "$BIN/resvd" \
                "$BIN/resv" "$BIN/resv-bench" "$RAW_ECHO" "$SAGA_BASELINE"; do
        [ -x "$prog" ] || missing="$missing $prog"
    done
    if [ -n "$missing" ]; then
        echo "bench: missing$missing (run make first)" >&2
        exit 1
    fi
    for section in $SECTIONS; do
        case $section in
            echo)       bench_echo_section ;;
            reserve)    bench_reserve_section ;;
            *)          echo "bench: no section '$section'" >&2; exit 1 ;;
        esac
    done
    [ "$FAILED" -eq 0 ]
}

main
