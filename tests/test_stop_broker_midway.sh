#!/usr/bin/env bash
# tests/test_stop_broker_midway.sh: a broker stopped on its own (SIGTERM,
# not through resvd) in the middle of a reserve lets the reserve finish.
# Stopping, it answers new requests 503 stopping, but a reserve whose hold
# was in flight then calls payment's authorize: that call used to be
# refused 503 stopping as new work, and the reserve was undone and
# answered 503. The broker now takes a worker's calls while requests are
# in flight (doc/architecture.md).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

start_broker
for s in availability payment reservation; do
    start_worker "$s"
    eval "PID_$s=\$LAST_PID"
    wait_workers "$s" 1
done
RES=$(r resource add --name "Room 1" --owner olga --capacity 2 | js 'd["id"]')
check "a resource" test -n "$RES"

# Hold the reserve at availability: stop its process, send the reserve,
# stop the broker, then let availability answer the hold.
kill -STOP "$PID_availability"
"${R[@]}" reserve --customer carl --resource "$RES" --date 2027-03-01 \
    --request-id midway-1 >"$T/reserve.out" 2>&1 &
RESERVE=$!
sleep 0.5
kill -TERM "$BROKER_PID"
sleep 0.3
check "the broker waits for the reserve in flight" alive "$BROKER_PID"
expect_exit 3 "a new request is refused while it stops" "$BIN/resv" -t 2000 resource list
has "with 503 stopping" "$OUT" '"code":503.*stopping'
kill -CONT "$PID_availability"
wait "$RESERVE"; RC=$?
check "the reserve succeeds (exit $RC: $(head -c 300 "$T/reserve.out"))" test "$RC" = 0
has "and is PENDING or CONFIRMED" "$(cat "$T/reserve.out")" '"status":"(PENDING|CONFIRMED)"'
check "the broker then stops" wait_for 10 dead "$BROKER_PID"
RC=running
if dead "$BROKER_PID"; then wait "$BROKER_PID" 2>/dev/null; RC=$?; fi
check "and exits 0 (got $RC)" test "$RC" = 0
finish
