#!/usr/bin/env bash
# tests/test_view_rebuild_stop.sh: a view worker told to stop (SIGTERM)
# while its 'resv view rebuild' replays a long journal stops the replay
# between two pages and answers 503 stopping, and exits 0 at once. It went
# on to the end of the journal, however long that took, and resvd would
# kill one that outlasted resvd/stop_timeout (then exit 1). The worker
# resvd starts again finishes the view from the cursor, by itself.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
RESERVATIONS=3000

start_resvd_or_finish
# Some 18 000 events: a replay of a second or more.
"$BIN/resv-bench" -e "$RESV_BROKER_FRONTEND" reserve -n "$RESERVATIONS" \
    -c 32 --lag-sample 0 --json >"$T/bench.out" 2>&1
check "$RESERVATIONS reservations made" \
    grep -q "\"transactions\":$RESERVATIONS,.*\"failed\":0" "$T/bench.out"

last () { r events --limit 1 | js 'd["last"]'; }
# whole: the view has applied every event of the journal.
whole () {
    [ "$(store_sql view "SELECT seq FROM cursors WHERE name = 'view'")" = "$(last)" ]
}
check "the view has every event" wait_for 60 whole

VIEW=$(pids_of view)
spawn rebuild "$BIN/resv" -t 60000 view rebuild
rebuild_pid=$LAST_PID
under_way () { [ "$(store_sql view 'SELECT holder FROM rebuild')" -gt 0 ]; }
check "the rebuild is under way" wait_for 20 under_way
kill -TERM "$VIEW"
gone () { ! kill -0 "$1" 2>/dev/null; }
check "the rebuild is answered" wait_for 10 gone "$rebuild_pid"
wait "$rebuild_pid"; rc=$?
check "the rebuild exits 3 (exit $rc)" test "$rc" -eq 3
has "the rebuild is answered 503 stopping" "$(cat "$T/rebuild.log")" \
    '"code":503,"reason":"stopping".*rebuilt up to seq [0-9]+'
check "the view worker has exited" wait_for 10 gone "$VIEW"
has "it exited 0" "$(cat "$T/resvd.log")" "view, pid $VIEW, exited with status 0"

# resvd starts another, whose live consumer goes on from the cursor.
check "a view worker again" wait_count view 1 30
check "the view is whole again" wait_for 60 whole
check "with every reservation" \
    test "$(store_sql view 'SELECT count (*) FROM reservations')" -eq "$RESERVATIONS"
finish
