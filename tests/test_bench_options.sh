#!/usr/bin/env bash
# tests/test_bench_options.sh: resv-bench's own edges against a real
# resv-broker (its ping service: no worker needed): option values at their
# limits start a run, and Ctrl-C ends one with its summary.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

B=$BIN/resv-bench
if ! start_broker; then
    not_ok "broker starts"
    finish
fi

# The largest --rate for the longest --duration: the run starts (its
# latency table grows with the run, up to the -n limit) and Ctrl-C, here
# after a second, ends it with the summary.
timeout -s INT 2 "$B" ping --service ping --rate 10000000 --duration 86400 \
    -c 1 >"$T/long.out" 2>"$T/long.err"
has "--rate 10000000 --duration 86400 runs and sums up" \
    "$(cat "$T/long.out" "$T/long.err")" "^Transactions: +[1-9][0-9]* hits"
# A rate too small to time (its requests' due times would overflow) is a
# usage error, not a run that sends everything at once.
"$B" ping --service ping --rate 1e-300 -n 3 >"$T/tiny.out" 2>"$T/tiny.err"
check "--rate 1e-300 is a usage error (exit 2)" test $? = 2
has "... that names --rate" "$(cat "$T/tiny.err")" "^resv-bench: --rate: bad"
finish
