#!/usr/bin/env bash
# tests/test_attempts_stale.sh: an attempt of a reserve that outlived its
# deadline in a stopped reservation worker (SIGSTOP, as a paused container
# or an overloaded host stops it), taken for gone by a retry that undid the
# reserve, must not act once it runs again: not on the attempt of a later
# retry, which is under way within its own deadline (spec section 4,
# guarantees 1, 2 and 6). The attempts of one reservation id were
# numbered 1, 2, ... from the rows left, so that once an undo had deleted
# them the next retry was attempt 1 again, and the stopped first attempt,
# attempt 1 too, took that retry's row for its own: it stored its
# reservation on the hold the undo had released (a resource of capacity 1
# then took another customer's reserve too), or undid the retry (503
# in_progress to a retry that had outlived nothing).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# Each authorisation takes a while (less than the liveness, so that
# payment is not taken for dead): the first attempt is still waiting
# for it when its worker is stopped.
export RESV_PAYMENT_LATENCY=700

start_resvd_or_finish
ONE=$(r resource add --name One --owner ann --capacity 1 --price 100 \
    --approval manual | js 'd["id"]')
check "a resource of capacity 1" test -n "$ONE"
DAY=2027-04-01
held_is () { test "$(held "$1" "$2")" = "$3"; }
live_units () {
    r list --resource "$ONE" --limit 1000 |
        js 'sum(x["units"] for x in d["items"] if x["status"] in ("PENDING", "CONFIRMED"))'
}

# The first attempt: its worker, the only reservation worker, is stopped
# while the payment authorises. The broker takes it for dead, finds no
# other worker, and answers 503 worker_lost.
W1=$(pids_of reservation | head -n 1)
"$BIN/resv" -t 2500 reserve --customer pat --resource "$ONE" --date "$DAY" \
    --request-id stale >"$T/first.out" 2>&1 &
FIRST=$!
# Stopped once its unit is held: it is then waiting for the authorisation,
# between two of its store's transactions (stopped within one, it would
# keep the store locked from the worker started below).
wait_for 2 held_is "$ONE" "$DAY" 1
kill -STOP "$W1"
wait "$FIRST"
RC=$?
check "the first attempt fails (exit $RC): $(head -c 160 "$T/first.out")" \
    test "$RC" = 3
# Another worker, for the retries, and past the first attempt's deadline.
r scale reservation 2 >/dev/null
check "a second reservation worker serves" wait_count reservation 1
sleep 3
# A retry with other units: refused 409 by availability, and, the last
# attempt (the first one is past its deadline), it undoes the reserve.
expect_exit 1 "a retry with other units is refused" \
    r reserve --customer pat --resource "$ONE" --date "$DAY" --units 2 \
    --request-id stale
check "and nothing is held" test "$(held "$ONE" "$DAY")" = 0
# A retry as the first, whose hold waits for a stopped availability worker
# (taken for dead: the hold is answered 503 worker_lost) while the first
# attempt's worker runs again: that attempt, taken for gone, gets its
# authorisation's answer late and must leave the retry alone.
AV=$(pids_of availability | head -n 1)
kill -STOP "$AV"
"$BIN/resv" -t 10000 reserve --customer pat --resource "$ONE" --date "$DAY" \
    --request-id stale >"$T/again.out" 2>&1 &
AGAIN=$!
sleep 0.3
kill -CONT "$W1"
sleep 3.5
kill -CONT "$AV"
wait "$AGAIN"
RC=$?
echo "# the retry: exit $RC, $(head -c 200 "$T/again.out")"
check "the retry is not refused as if it had outlived its deadline" \
    test "$(grep -c in_progress "$T/again.out")" = 0
check "availability serves again" wait_count availability 1
reserve_retrying () {
    local try rc
    for try in 1 2 3 4 5 6; do
        "$BIN/resv" -t 5000 reserve "$@" >"$T/last.out" 2>&1
        rc=$?
        [ "$rc" -ne 3 ] && return "$rc"
        sleep 0.5
    done
    return "$rc"
}
reserve_retrying --customer pat --resource "$ONE" --date "$DAY" \
    --request-id stale
check "a retry then has the reservation (exit $?)" test "$(live_units)" = 1
check "its unit is held ($(held "$ONE" "$DAY"))" test "$(held "$ONE" "$DAY")" = 1
expect_exit 1 "another customer finds no capacity" \
    r reserve --customer zed --resource "$ONE" --date "$DAY"
check "one live reservation still" test "$(live_units)" = 1
check "nothing of the reserve is left to the sweep" \
    test "$(sqlite3 "$T/var/reservation.db" 'SELECT count (*) FROM sagas')" = 0
finish
