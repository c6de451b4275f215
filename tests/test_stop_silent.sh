#!/usr/bin/env bash
# tests/test_stop_silent.sh: a worker whose broker accepts its connections
# but never answers (the broker stopped with SIGSTOP, as a hung one would
# be) still stops well within resvd/stop_timeout, and loses nothing. Each
# waited for the broker's BYE (heartbeat x liveness), then for its
# requests' calls to their deadline (a reserve with 20 s: 21 s of stop),
# then its events actor for the journal read or publish under way and
# for its last publish of the outbox, 5 s each: about 10 s with events
# in the outbox, past the 10 s of resvd/stop_timeout, so resvd killed it
# and exited 1. Each part of the stop now waits for the broker a quarter
# of stop_timeout at most (worker_stop_wait). The events it could not
# send stay in its outbox, and go once it runs again.
# The default heartbeats: the broker's BYE is waited for 3 s.
export RESV_BROKER_HEARTBEAT=1000 RESV_BROKER_LIVENESS=3
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

# Below the old stop here (some 10 s: the publish under way, then the
# last one, 5 s each) and twice what the new one may wait for the broker
# (a quarter of it, twice).
export RESV_RESVD_STOP_TIMEOUT=7000
STOP_S=$((RESV_RESVD_STOP_TIMEOUT / 1000))
# The reserve below waits in payment's authorize while the broker stops.
export RESV_PAYMENT_LATENCY=1000

# unsent SERVICE: the outbox rows of SERVICE's store that this test put
# there (type test.unsent).
unsent () {
    "$PY" -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(
    "SELECT count(*) FROM outbox WHERE event LIKE ?",
    ("%\"type\":\"test.unsent\"%",)).fetchone()[0])' "$RESV_DATA_DIR/$1.db"
}
no_unsent () { [ "$(unsent "$1")" = 0 ]; }

start_broker
declare -A WORKER
for s in $DOMAIN_SERVICES; do
    start_worker "$s"
    WORKER[$s]=$LAST_PID
done
for s in $DOMAIN_SERVICES; do
    check "one $s worker" wait_workers "$s" 1
done
RID=$(r resource add --name table --owner olga | js 'd["id"]')
check "a resource" test -n "$RID"
# A reserve that the reservation service has in hand, waiting on its
# call to payment, when the broker stops answering.
spawn reserve "$BIN/resv" -t 20000 reserve --customer ivan \
    --resource "$RID" --date 2027-03-01
sleep 0.5
kill -STOP "$BROKER_PID"
# Events committed once the broker no longer answers: each relay sends
# them and waits.
for s in $DOMAIN_SERVICES; do
    "$PY" -c 'import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
for i in range(3):
    event = {"id": "e-%s-%d" % (sys.argv[2], i), "type": "test.unsent",
             "at": "2027-01-01T00:00:00.000Z", "data": {}}
    db.execute("INSERT INTO outbox (event) VALUES (?)",
               (json.dumps(event, separators=(",", ":")),))
db.commit()' "$RESV_DATA_DIR/$s.db" "$s"
done
sleep 0.5
START=$SECONDS
for s in $DOMAIN_SERVICES; do
    kill -TERM "${WORKER[$s]}"
done
# Each has until stop_timeout after the signal, as under resvd.
for s in $DOMAIN_SERVICES; do
    pid=${WORKER[$s]}
    wait_for $((START + STOP_S - SECONDS)) dead "$pid"
    RC=running
    if dead "$pid"; then wait "$pid" 2>/dev/null; RC=$?; fi
    check "$s exits 0 within resvd/stop_timeout of SIGTERM (got $RC, $((SECONDS - START)) s)" \
        test "$RC" = 0
done
for s in $DOMAIN_SERVICES; do
    kill -KILL "${WORKER[$s]}" 2>/dev/null   # Left running: failed above
    has "$s says what it left in its outbox" "$(cat "$T/worker-$s.log")" \
        "$s: stop: [0-9]+ outbox events not acknowledged by the broker, left to be resent"
    check "$s's 3 unsent events are still in its outbox (found $(unsent "$s"))" \
        test "$(unsent "$s")" = 3
done

# The broker answers again, the workers start again: the events go.
kill -CONT "$BROKER_PID"
check "the broker answers again" wait_for 10 "$BIN/resv" -t 500 ping
for s in $DOMAIN_SERVICES; do
    start_worker "$s"
done
for s in $DOMAIN_SERVICES; do
    check "$s sends its outbox once it runs again" wait_for 15 no_unsent "$s"
done
JOURNALED=$(r events --type test.unsent --limit 100 | js 'len(d["items"])')
check "the journal has the 18 events ($JOURNALED)" test "$JOURNALED" = 18
finish
