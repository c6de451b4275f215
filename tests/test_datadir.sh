#!/usr/bin/env bash
# tests/test_datadir.sh: one broker per data directory. The journal has one
# writer, which numbers events from the newest seq it read when it opened:
# a second broker on the same directory (a second resvd started by
# mistake, on other ports) would journal its events under the seqs the
# first gives too, and consumers would skip them. The second broker is
# refused with one line and exits 1; the first goes on journaling.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_broker
FIRST=$BROKER_PID
start_worker availability
check "an availability worker" wait_workers availability 1
# add NAME: registers a resource, whose event the broker journals.
add () {
    "$BIN/resv" -t 5000 resource add --name "$1" --owner ann >/dev/null &&
        wait_for 5 last_is "$2"
}
last_is () {
    "$BIN/resv" -t 3000 events --from 1 | grep -q "\"last\":$1}"
}
check "the first broker journals an event as seq 1" add one 1

# A second broker on three other ports, on the same data directory.
FRONTEND=$RESV_BROKER_FRONTEND
use_free_ports
spawn broker2 "$BIN/resv-broker"
SECOND=$LAST_PID
check "the second broker exits" wait_for 10 dead "$SECOND"
RC=running
if dead "$SECOND"; then wait "$SECOND" 2>/dev/null; RC=$?; fi
check "with status 1 (got $RC)" test "$RC" = 1
check "saying why, in one line" \
    grep -q 'is in use by another broker' "$T/broker2.log"

export RESV_BROKER_FRONTEND=$FRONTEND
check "the first broker is still up" alive "$FIRST"
check "and journals the next event as seq 2" add two 2

# A journal behind a consumer's cursor (replaced by hand, or commits lost
# to a power loss): events it numbers again up to the cursor would be
# taken as applied, so the consumer says so in the log.
start_worker view
VIEW=$LAST_PID
cursor_is () {
    python3 - "$RESV_DATA_DIR/view.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=5)
row = db.execute("SELECT seq FROM cursors WHERE name = 'view'").fetchone()
sys.exit(0 if row and row[0] == int(sys.argv[2]) else 1)
PY
}
check "the view's cursor reaches seq 2" wait_for 15 cursor_is 2
kill -TERM "$VIEW" "$FIRST"
check "the view and the broker stop" wait_for 15 dead "$VIEW"
wait_for 15 dead "$FIRST"
mkdir "$T/old"
mv "$RESV_DATA_DIR"/journal.db* "$T/old/"
start_broker
start_worker view
check "a view on a new journal logs that it is behind its cursor" \
    wait_for 15 grep -q "journal ends at seq 0, before this consumer's cursor, 2" \
    "$T/worker-view.log"
finish
