#!/usr/bin/env bash
# tests/test_broker_outage.sh: the broker killed (kill -9) under load and
# down for longer than a publish's deadline (5 s), then back: every
# change the stores committed reaches the journal (spec 4.3, 4.6). The
# relays' publishes fail meanwhile (504); each must keep its outbox rows
# and send them again once the broker is back, not take the failure for
# done. Then the stores and the journal agree, event by event.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# resvd starts the broker again 7 s after it died.
export RESV_RESVD_RESTART_MIN=7000 RESV_RESVD_RESTART_MAX=7000
start_resvd_or_finish

# Events on their way when the broker dies: reserves, each confirmed by
# approval, captured by payment, seen by notification and view.
spawn bench "$BIN/resv-bench" reserve -c 8 --duration 2 --resources 5 \
    --lag-sample 0 -t 2000
BENCH=$LAST_PID
sleep 1
BROKER=$(broker_pid)
kill -KILL "$BROKER"
check "the broker is killed" wait_for 5 dead "$BROKER"
wait "$BENCH"
START=$SECONDS
broker_back () {
    local p
    p=$(broker_pid)
    [ -n "$p" ] && [ "$p" != "$BROKER" ] && "$BIN/resv" -t 500 ping
}
check "resvd starts the broker again" wait_for 20 broker_back
check "it was down longer than a publish's deadline ($((SECONDS - START)) s)" \
    test $((SECONDS - START)) -ge 5
check "a relay's publish failed meanwhile, as this test means" \
    grep -q "publish to the journal refused" "$T/resvd.log"

# settled: the asynchronous side has caught up (nothing in an outbox, and
# every reservation CONFIRMED, as its resource is auto).
settled () {
    [ -z "$(outboxes_left)" ] && [ "$(store_sql reservation \
        "SELECT count (*) FROM reservations WHERE status <> 'CONFIRMED'")" = 0 ]
}
check "every reservation confirmed and every outbox sent" wait_for 60 settled
AGREE=$(journal_agrees)
check "every committed change has its event in the journal ($AGREE)" \
    test "$AGREE" = "missing 0"
finish
