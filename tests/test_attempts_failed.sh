#!/usr/bin/env bash
# tests/test_attempts_failed.sh: a payment worker stopped (kill -STOP) in
# the middle of an authorisation is taken for lost, and the broker sends
# the authorisation to the other payment worker, whose provider fails it
# (503 payment_unavailable). The stopped one goes on a moment later and
# records the authorisation before its deadline. The reserve must still
# void it: the broker holds the failure until the authorisation's
# deadline, when the lost worker has recorded all it will. Told at once,
# the reserve voided before there was anything to void (the void found no
# payment), released its hold and closed its saga, and the authorisation
# stayed for good, with no reservation and nothing left for the sweep.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# Slower than the broker's liveness (4 x 250 ms): the second worker's
# call ends well after the first was taken for lost.
export RESV_PAYMENT_LATENCY=1500
export RESV_RESERVATION_SWEEP=1000
export RESV_RESERVATION_ABANDON=10000

start_resvd_or_finish
RES=$(r resource add --name One --owner ann --capacity 5 --price 100 | js 'd["id"]')
check "a resource" test -n "$RES"
FIRST=$(pids_of payment)

"$BIN/resv" -t 8000 reserve --customer pat --resource "$RES" \
    --date 2027-05-01 >"$T/reserve.out" 2>&1 &
RESERVE=$!
payment_busy () {
    r stats | js 'd["services"]["payment"]["inflight"]' | grep -qx 1
}
check "the authorisation reaches the payment worker" wait_for 5 payment_busy
# In the middle of its provider call.
sleep 0.2
kill -STOP "$FIRST"
# The other payment worker: its provider fails every call.
RESV_PAYMENT_FAILURE_RATE=100 spawn payment-failing "$BIN/resv-worker" payment
SECOND=$LAST_PID
check "a second payment worker" wait_count payment 2 5
# Taken for lost after 1 s, sent to the second, failed there 1.5 s
# later; then the first goes on, its deadline 7 s away.
sleep 3.6
kill -CONT "$FIRST"
wait "$RESERVE"
RC=$?
check "the reserve fails, unavailable (exit $RC): $(head -c 200 "$T/reserve.out")" \
    test "$RC" = 3
# Voids and the sweep now go to the first worker, whose provider works.
kill -TERM "$SECOND"
check "the failing payment worker stops" wait_for 10 dead "$SECOND"

check "no authorisation, hold or saga is left of it" wait_for 20 stores_agree
has "the stores" "$(stores_agree 2>&1)" '^orphans=\[\] held=0 live=0 sagas=0$'
finish
