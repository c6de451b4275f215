#!/usr/bin/env bash
# tests/test_stop_alone.sh: a worker whose broker is gone still stops
# promptly on SIGTERM. That is what happens to every worker when resvd is
# killed with SIGKILL: each child gets SIGTERM (PR_SET_PDEATHSIG), the
# broker among them. A consumer's catch-up is a call that waits up to 5 s
# for a broker that is gone; the reservation service has five consumers,
# and it used to read the journal for each of them in turn, deaf to its
# stop, for some 25 s.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_broker
start_worker reservation
WORKER=$LAST_PID
check "a reservation worker" wait_workers reservation 1
kill -KILL "$BROKER_PID"
# Long enough for the once-a-second check to find the broker gone and
# start reading the journal for each consumer.
sleep 2
START=$SECONDS
kill -TERM "$WORKER"
check "the worker stops within 10 s of SIGTERM" wait_for 10 dead "$WORKER"
RC=running
if dead "$WORKER"; then wait "$WORKER" 2>/dev/null; RC=$?; fi
check "and exits 0 (got $RC, after $((SECONDS - START)) s)" test "$RC" = 0
finish
