#!/usr/bin/env bash
# tests/test_pause.sh: a worker process stopped (SIGSTOP, as a debugger, a
# paused container or an overloaded host stops it) while a request waits
# for it, then resumed. The broker takes the worker for dead after its
# liveness and answers the request: 503 worker_lost, since the worker may
# have done it, so the reservation service undoes what it asked for. Once
# resumed, the worker serves nothing of what waited on its socket (the
# broker has answered it or handed it on): no hold and no payment is left
# behind that belongs to no reservation. It then announces itself again
# and serves, and a retry of the request makes one reservation.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# lib.sh's heartbeats: a worker silent for 1 s (4 x 250 ms) is dead.

start_resvd_or_finish
RES=$(r resource add --name "Paused" --owner ann --kind room --capacity 10 \
    --price 100 --approval auto | js 'd["id"]')
check "a resource" test -n "$RES"

# paused SERVICE CUSTOMER DATE: reserves 2 units on DATE for CUSTOMER
# (request id CUSTOMER) while SERVICE's one worker is stopped, then
# resumes it. Sets OUT and RC to the reserve's output and exit status.
paused () {
    local pid
    pid=$(pids_of "$1" | head -n 1)
    if [ -z "$pid" ]; then
        not_ok "a $1 worker is found, to stop"
        return 1
    fi
    kill -STOP "$pid"
    OUT=$("$BIN/resv" -t 8000 reserve --customer "$2" --resource "$RES" \
        --date "$3" --units 2 --request-id "$2" 2>&1)
    RC=$?
    kill -CONT "$pid"
    echo "# $1 worker $pid stopped during the reserve: exit $RC, $(printf '%s' "$OUT" | head -c 200)"
    check "the $1 worker is announced again after its pause" wait_count "$1" 1 15
    # What it would serve of its stale requests, it serves at once.
    sleep 1
}

# === availability stopped while reservation asks it for a hold ==========
paused availability pa 2027-10-01
check "the reserve fails clearly (exit 3, 503 or 504)" \
    eval '[ "$RC" = 3 ] && printf "%s" "$OUT" | grep -qE "\"code\":50[34]"'
check "nothing is held on the date: the stale hold was not served" \
    test "$(held "$RES" 2027-10-01)" = 0
grep -qE 'availability: (broker silent|silent towards the broker for its whole liveness).*reconnecting' "$T/resvd.log"
check "the availability worker said why it reconnected" test $? = 0
expect_exit 0 "a retry of the same request succeeds" \
    r reserve --customer pa --resource "$RES" --date 2027-10-01 --units 2 \
    --request-id pa
PA=$(printf '%s' "$OUT" | js 'd["id"]')
check "and holds its 2 units" test "$(held "$RES" 2027-10-01)" = 2
check "which end CONFIRMED" wait_for 15 status_is "$PA" CONFIRMED captured

# === payment stopped while reservation asks it to authorise ==============
paused payment pb 2027-10-02
check "the reserve fails clearly (exit 3, 503 or 504)" \
    eval '[ "$RC" = 3 ] && printf "%s" "$OUT" | grep -qE "\"code\":50[34]"'
check "the hold was undone" wait_for 10 eval \
    'test "$(held "$RES" 2027-10-02)" = 0'
# Every authorisation belongs to a reservation that was made.
orphans () {
    journal "$T/j.json" || return 1
    jq_file "$T/j.json" 'sorted(set(e["reservation"] for e in d if e["type"] == "payment.authorized") - set(e["reservation"] for e in d if e["type"] == "reservation.requested"))'
}
ORPHANS=$(orphans)
check "no payment was authorised for a reservation that was not made: $ORPHANS" \
    test "$ORPHANS" = "[]"
expect_exit 0 "a retry of the same request succeeds" \
    r reserve --customer pb --resource "$RES" --date 2027-10-02 --units 2 \
    --request-id pb
PB=$(printf '%s' "$OUT" | js 'd["id"]')
check "which ends CONFIRMED" wait_for 15 status_is "$PB" CONFIRMED captured

check "no process died" \
    test "$(grep -cE 'was killed|exited with' "$T/resvd.log")" = 0
finish
