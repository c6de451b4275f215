#!/usr/bin/env bash
# tests/test_stop_starting.sh: resvd told to stop just after it started
# processes (a scale up, a restart after a crash) stops each of them
# gracefully too. A process that SIGTERM reached before it caught the
# signal (between resvd's fork and its own set-up) used to die of it,
# killed by signal 15, or lose it (before the exec) and be killed by
# resvd after stop_timeout. Spec 4.8: every process exits 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for s in AVAILABILITY RESERVATION PAYMENT APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=0
done
export RESV_WORKERS_ECHO_COUNT=1
# A stop lost on the way is killed after this, and shows as such.
export RESV_RESVD_STOP_TIMEOUT=5000

echo_answers () { "$BIN/resv" -t 500 call echo echo '{}'; }

# Each round: resvd starts 15 echo workers at once on 'resv scale' and is
# told to stop as soon as it answers, while most are still starting. One
# round most often catches a few of them before their set-up; three
# make it all but certain.
for round in 1 2 3; do
    use_free_ports
    spawn "resvd$round" "$BIN/resvd"
    RESVD_PID=$LAST_PID
    if ! wait_for 15 echo_answers; then
        not_ok "round $round: resvd starts an echo worker"
        continue
    fi
    "$BIN/resv" -t 5000 scale echo 16 >/dev/null
    kill -TERM "$RESVD_PID"
    START=$SECONDS
    check "round $round: resvd exits within 4 s of SIGTERM" \
        wait_for 4 dead "$RESVD_PID"
    wait "$RESVD_PID"
    check "round $round: with status 0 (after $((SECONDS - START)) s)" \
        test $? -eq 0
    LOG=$T/resvd$round.log
    ENDED=$(grep -c 'resvd: echo, pid [0-9]*, ' "$LOG")
    ZERO=$(grep -c 'resvd: echo, pid [0-9]*, exited with status 0' "$LOG")
    ODD=$(grep -E 'resvd: echo, pid [0-9]*, (was killed|exited with status [1-9]|did not stop)' \
          "$LOG" | head -n 2 | sed 's/.*resvd: //' | tr '\n' ';')
    check "round $round: all 16 echo workers exit 0 ($ZERO of $ENDED)${ODD:+: $ODD}" \
        test "$ZERO" = 16 -a "$ENDED" = 16
done

finish
