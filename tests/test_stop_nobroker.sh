#!/usr/bin/env bash
# tests/test_stop_nobroker.sh: resvd told to stop while its broker is down
# (it died, and its restart waits for the backoff) still stops its workers
# gracefully. It restarted nothing once stopping, so the workers stopped
# without a broker: each waited for its BYE, then for the journal, to read
# and to flush its outbox, until resvd killed it after stop_timeout (25 s
# of stop, approval and reservation killed by SIGKILL, approval's events
# left in its outbox). Spec 4.8: every process exits 0, outboxes flushed.
# The default heartbeats: a worker takes 3 s to find its broker gone.
export RESV_BROKER_HEARTBEAT=1000 RESV_BROKER_LIVENESS=3
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in AVAILABILITY RESERVATION PAYMENT APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=1
done
# The broker's restart waits long enough that SIGTERM surely finds it down.
export RESV_RESVD_RESTART_MIN=1500
export RESV_RESVD_STOP_TIMEOUT=6000
start_resvd_or_finish
# Events on their way when the broker dies: a load of reserves, each
# confirmed by approval, captured by payment, seen by notification and
# view.
spawn bench "$BIN/resv-bench" reserve -c 8 --duration 3 --resources 5 \
    --lag-sample 0
BENCH=$LAST_PID
sleep 1.5
BROKER=$(broker_pid)
kill -KILL "$BROKER"
wait_for 5 dead "$BROKER"
kill -TERM "$RESVD_PID"
START=$SECONDS
check "resvd exits within 10 s of SIGTERM" wait_for 10 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0 (after $((SECONDS - START)) s)" test $? -eq 0
wait "$BENCH"
LOG=$T/resvd.log
ENDED=$(grep -cE 'resvd: [a-z]+, pid [0-9]+, .*; stopped' "$LOG")
ZERO=$(grep -cE 'resvd: [a-z]+, pid [0-9]+, exited with status 0 .*; stopped' "$LOG")
ODD=$(grep -E 'did not stop|resvd: [a-z]+, pid [0-9]+, (was killed|exited with status [1-9]).*; stopped' \
      "$LOG" | sed 's/.*resvd: //' | head -n 3 | tr '\n' ';')
check "the 6 workers and the broker exit 0 ($ZERO of $ENDED)${ODD:+: $ODD}" \
    test "$ZERO" = 7 -a "$ENDED" = 7
LEFT=$(outboxes_left)
check "every outbox is flushed${LEFT:+ (left:$LEFT)}" test -z "$LEFT"
# And flushed into the journal, not dropped: every change the stores
# committed has its event there (a relay that took a refused publish for
# done emptied its outbox too).
AGREE=$(journal_agrees)
check "every committed change has its event in the journal ($AGREE)" \
    test "$AGREE" = "missing 0"
finish
