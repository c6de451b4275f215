#!/usr/bin/env bash
# tests/test_broker_stall.sh: the broker process stopped (SIGSTOP, as a
# debugger, a paused container or an overloaded host stops it) for longer
# than the deadlines of the requests a worker holds, and than the workers'
# liveness, then resumed. Those requests answer 504, but their deadlines
# passed while the broker itself did not run: they say nothing of the
# service, whose circuit stays closed, and the next request is served. The
# worker, silent only to a broker that did not listen, is kept. Before,
# the requests counted as the service's failures, and a pause longer than
# the deadlines opened the circuit of every busy service, which then
# refused every request for broker/breaker_cooldown after the broker ran
# again; and a worker whose heartbeats waited unread was taken for dead.
# Then idle workers that took the stopped broker for dead and came back on
# new connections: their old ones are dropped, and given no request.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export RESV_BROKER_BREAKER_FAILURES=3
# An open circuit would stay open to the end of the test.
export RESV_BROKER_BREAKER_COOLDOWN=60000
RESV="$BIN/resv"

start_broker || { not_ok "broker starts"; finish; }
ok "broker starts"
start_worker echo
WORKER=$LAST_PID
check "an echo worker" wait_workers echo 1

# A request the worker takes and sleeps on for 4.5 s (its heartbeats go
# on), then four of 1.5 s that wait behind it in the worker.
"$RESV" -t 10000 call echo sleep '{"ms":4500}' >"$T/sleep.out" 2>&1 &
SLEEP=$!
inflight () {
    "$RESV" -t 500 stats 2>/dev/null |
        grep -q "\"echo\":{[^}]*\"inflight\":$1[,}]"
}
check "the worker sleeps" wait_for 5 inflight 1
QUICK=()
for i in 1 2 3 4; do
    ( "$RESV" -t 1500 call echo echo '{}' >"$T/quick.$i.out" 2>&1
      echo $? >"$T/quick.$i.rc" ) &
    QUICK+=($!)
done
check "and holds four more behind" wait_for 5 inflight 5

kill -STOP "$BROKER_PID"
sleep 3
kill -CONT "$BROKER_PID"
wait "${QUICK[@]}"
rcs=$(cat "$T"/quick.*.rc | tr '\n' ' ')
check "each of the four failed by its deadline, exit 3 ($rcs)" \
    test "$rcs" = "3 3 3 3 "
check "the broker says it did not run" \
    wait_for 5 grep -q 'broker: did not run for [0-9]* ms' "$T/broker.log"

has "stats show the circuit closed" "$("$RESV" stats)" \
    '"echo":\{[^}]*"breaker":"closed"'
expect_exit 0 "the next request is served, after the worker's sleep" \
    "$RESV" -t 8000 call echo echo '{"after":"stall"}'
has "with its body" "$OUT" '"after":"stall"'
check "the sleep, whose deadline did not pass, is answered" wait "$SLEEP"
check "the worker was never taken for dead" \
    test "$(grep -c 'of echo expired' "$T/broker.log")" = 0
check "the worker lives" alive "$WORKER"

# Idle workers take the stopped broker for dead (after their liveness, 1 s
# here) and come back on new connections, which it reads once it runs:
# their old connections are gone, and requests sent there would be lost.
# The requests sent meanwhile all go to the new ones, none waits on an old
# one until it expires. Before, each old one was kept two heartbeat
# intervals and given requests: "expired holding 4 requests", thrice.
start_worker echo
start_worker echo
check "three idle echo workers" wait_workers echo 3
lost () { grep -c 'broker silent; reconnecting' "$T/worker-echo.log"; }
LOST=$(lost)
kill -STOP "$BROKER_PID"
sleep 2
QUICK=()
for i in $(seq 12); do
    ( "$RESV" -t 5000 call echo echo "{\"i\":$i}" >"$T/idle.$i.out" 2>&1
      echo $? >"$T/idle.$i.rc" ) &
    QUICK+=($!)
done
sleep 1
kill -CONT "$BROKER_PID"
wait "${QUICK[@]}"
check "the three took the broker for dead meanwhile" \
    test "$(lost)" -ge $((LOST + 3))
rcs=$(cat "$T"/idle.*.rc | tr -d '\n')
check "the twelve requests sent meanwhile are answered ($rcs)" \
    test "$rcs" = 000000000000
check "no old connection was kept until it expired" \
    test "$(grep -c 'of echo expired' "$T/broker.log")" = 0
check "the old connections are dropped" \
    test "$(grep -c 'of echo gone (its connection closed)' "$T/broker.log")" -ge 3
check "three workers, on their new connections" wait_workers echo 3

finish
