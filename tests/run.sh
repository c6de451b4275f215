#!/usr/bin/env bash
# tests/run.sh: runs every resv test and prints, as its last line,
# "N passed, N failed". Exits non-zero if any test failed.
#
# Unit tests are the cmocka binaries under $RESV_TEST_BIN, run with TAP
# output; integration tests are tests/test_*.sh. Each "ok" line counts as a
# pass and each "not ok" line as a failure; a test program that exits
# non-zero without reporting a failure (a crash, a sanitizer report, a hang
# stopped by its timeout) counts as one failure more. Set RESV_TESTS to a
# pattern to run only some scripts.

set -u
cd "$(dirname "$0")/.."
TEST_BIN=${RESV_TEST_BIN:-build/obj/test}
pass=0
fail=0

run_one () {
    local name=$1; shift
    local log started=$SECONDS
    log=$(mktemp)
    echo "# $name"
    "$@" >"$log" 2>&1
    local rc=$?
    echo "# $name took $((SECONDS - started)) s"
    local p f
    p=$(grep -cE '^ok ' "$log")
    f=$(grep -cE '^not ok ' "$log")
    grep -E '^(not ok|ok) |^# ' "$log"
    if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
        if [ "$f" -eq 0 ]; then
            f=1
            echo "not ok - $name exited $rc without reporting a failure"
        fi
        echo "# --- output of $name ---"
        tail -n 40 "$log" | sed 's/^/#   /'
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    rm -f "$log"
}

UNITS=$(find "$TEST_BIN" -type f -name '*_test' 2>/dev/null | sort)
if [ -z "$UNITS" ]; then
    # No unit test ran: a wrong RESV_TEST_BIN, or nothing built.
    echo "not ok - unit test binaries (*_test) under $TEST_BIN"
    fail=$((fail + 1))
fi
# Every test is bounded: one that hangs is stopped (SIGTERM, then SIGKILL
# 10 s later) and counts as failed, and the run goes on to its summary.
# The longest unit test takes some 70 s, the longest script some 65 s
# (both under the sanitizers, on the development machine).
for t in $UNITS; do
    run_one "$t" timeout -k 10 600 env CMOCKA_MESSAGE_OUTPUT=TAP "$t"
done
for t in tests/test_*.sh; do
    case "$t" in *${RESV_TESTS:-}*) ;; *) continue ;; esac
    run_one "$t" timeout -k 10 300 bash "$t"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
