#!/usr/bin/env bash
# tests/test_attempts_kill.sh: a reservation worker killed (kill -9) in the
# middle of a reserve. The broker hands the request on to another worker
# (spec section 4, guarantee 6), whose attempt, refused (the payment
# declined), leaves the hold and the payment to the first attempt, which
# may still be under way until its deadline and 1 s. That attempt is dead:
# once its time is over, the sweep undoes the reserve, as it would undo one
# that every attempt left. It waited for reservation/abandon (70 s by
# default) instead, the whole time holding the only unit of a resource of
# capacity 1 for a reserve that its client had seen declined.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# The authorisation takes a while: the reserve is still waiting for it
# when its worker is killed. Then it is declined: above max_amount.
export RESV_PAYMENT_LATENCY=700
export RESV_PAYMENT_MAX_AMOUNT=1000
export RESV_RESERVATION_SWEEP=1000

start_resvd_or_finish
ONE=$(r resource add --name One --owner ann --capacity 1 --price 5000 \
    --approval manual | js 'd["id"]')
check "a resource of capacity 1" test -n "$ONE"
DAY=2027-05-01

W1=$(pids_of reservation | head -n 1)
"$BIN/resv" -t 4000 reserve --customer pat --resource "$ONE" --date "$DAY" \
    --request-id killed >"$T/first.out" 2>&1 &
FIRST=$!
sleep 0.3
kill -9 "$W1"
wait "$FIRST"
RC=$?
check "the reserve, handed on to the restarted worker, is declined (exit $RC): $(head -c 160 "$T/first.out")" \
    eval '[ "$RC" = 1 ] && grep -q payment_declined "$T/first.out"'
check "no reservation" test "$(r list --resource "$ONE" | js 'len(d["items"])')" = 0
# The first attempt's time ends 5 s after it began; a sweep follows
# within 1 s.
check "its hold is undone soon after the first attempt's deadline" \
    wait_for 10 eval 'test "$(held "$ONE" "$DAY")" = 0'
check "nothing of the reserve is left to the sweep" \
    test "$(sqlite3 "$T/var/reservation.db" 'SELECT count (*) FROM sagas')" = 0
expect_exit 1 "a reserve of another customer is declined too, not refused for capacity" \
    r reserve --customer zed --resource "$ONE" --date "$DAY"
has "402 payment_declined" "$OUT" '"payment_declined"'
finish
