#!/usr/bin/env bash
# tests/bench.sh: resv against its raw CZMQ baseline (make bench).
#
# Starts resv-broker and echo workers on free loopback ports in a temporary
# directory. For 1 and 2 workers and 1, 16 and 64 requests in flight it runs
# `resv-bench ping` (echo/echo: client -> broker -> worker and back) and
# raw-echo (the same shape in plain CZMQ, tests/raw_echo.c, each piece a
# process as in resv) alternately, BENCH_RUNS times each, and prints a table
# of medians. Then, for reference, it measures the broker alone
# (`--service ping`) and raw-echo with its pieces as threads of one process.
# Everything it starts is stopped on exit (tests/lib.sh); every run is
# bounded by `timeout`. Other load on the machine skews the figures: the
# header shows the load average.
#
# Environment (defaults in brackets):
#   RESV_BIN            resv programs [bin]
#   RESV_RAW_ECHO       the baseline program [build/obj/raw-echo]
#   BENCH_RUNS          runs of each measurement, medians are kept [5]
#   BENCH_REQUESTS_1, BENCH_REQUESTS_16, BENCH_REQUESTS_64
#                       requests per run at 1, 16, 64 in flight
#                       [5000, 20000, 50000]
#   BENCH_SIZE          request body size, bytes [128]
#   BENCH_TIMEOUT       deadline of each request, ms [5000]
#
# Adding a measurement: write a function that runs it $RUNS times with
# run_json (which keeps each JSON line in a file) and prints a row from
# median FILE FIELD; call it from main.

# Benchmarks run with the production heartbeat, not the tests' fast one.
export RESV_BROKER_HEARTBEAT=${RESV_BROKER_HEARTBEAT:-1000}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TOP" || exit 1

RAW_ECHO=${RESV_RAW_ECHO:-build/obj/raw-echo}
RUNS=${BENCH_RUNS:-5}
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

# run_json FILE CMD...: runs CMD (bounded) and appends its JSON line to
# FILE; a run that prints none, or reports failed requests, is logged.
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

# ratio A B: A / B with two decimals, "-" if either is missing or B is 0.
ratio () {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-";
        else printf "%.2f\n", a / b }'
}

# has_workers SERVICE N: true once the broker counts N workers of SERVICE.
# (lib.sh's wait_workers evaluates its count only once, before it waits.)
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

main () {
    local missing=""
    for prog in "$BIN/resv-broker" "$BIN/resv-worker" "$BIN/resv" \
                "$BIN/resv-bench" "$RAW_ECHO"; do
        [ -x "$prog" ] || missing="$missing $prog"
    done
    if [ -n "$missing" ]; then
        echo "bench: missing$missing (run make first)" >&2
        exit 1
    fi
    start_broker || { echo "bench: the broker did not start" >&2; exit 1; }
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
    [ "$FAILED" -eq 0 ]
}

main
