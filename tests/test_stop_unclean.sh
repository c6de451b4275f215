#!/usr/bin/env bash
# tests/test_stop_unclean.sh: resvd's exit status says whether its stop
# was clean. A process that had to be killed past resvd/stop_timeout (here
# a worker frozen with SIGSTOP) may have left work unfinished; resvd
# exited 0 all the same, so a supervisor above it could not tell.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

export RESV_RESVD_STOP_TIMEOUT=1000
export RESV_WORKERS_ECHO_COUNT=1
for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=0"; done
start_resvd_or_finish
ECHO=$(pids_of echo)
check "an echo worker" test -n "$ECHO"
kill -STOP "$ECHO"
kill -TERM "$RESVD_PID"
check "resvd exits within 10 s of SIGTERM" wait_for 10 dead "$RESVD_PID"
RC=running
if dead "$RESVD_PID"; then wait "$RESVD_PID" 2>/dev/null; RC=$?; fi
check "with status 1 (got $RC)" test "$RC" = 1
check "its log names the worker it killed" \
    grep -qE "echo, pid $ECHO, was killed by signal 9 .*did not stop cleanly" "$T/resvd.log"
check "and says the stop was not clean" \
    grep -q "every process stopped, 1 of them not cleanly" "$T/resvd.log"
check "the worker is gone" dead "$ECHO"
finish
