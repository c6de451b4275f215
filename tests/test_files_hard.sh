#!/usr/bin/env bash
# tests/test_files_hard.sh: more connections than the broker's hard limit
# of open files. The broker raises its soft limit to the hard one
# (tests/test_files.sh), but past the hard limit ZeroMQ accepts no new
# connection: no client or worker got in, and the broker's log said
# nothing. Now the log names the socket, its endpoint and the cause, at
# most one such line every few seconds, and says when it accepts again.
# Here the hard limit is 64 and 100 idle connections are opened.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

use_free_ports
spawn broker bash -c 'ulimit -n 64 && exec "$0"' "$BIN/resv-broker"
BROKER_PID=$LAST_PID
check "the broker answers" wait_for 10 "$BIN/resv" -t 500 ping
hard_limit () { awk '/^Max open files/ { print $5 }' "/proc/$1/limits"; }
check "its hard limit of open files is 64" test "$(hard_limit "$BROKER_PID")" = 64

PORT=${RESV_BROKER_FRONTEND##*:}
check "100 idle connections are open" hold_connections 100 "$PORT" 60
expect_exit 3 "a client cannot get in meanwhile" "$BIN/resv" -t 1000 ping

LINE="broker: cannot accept a connection on the frontend \\($RESV_BROKER_FRONTEND\\): Too many open files \\(the broker's limit is 64 open files\\)"
check "the log names the frontend, its endpoint and the cause" \
    wait_for 10 grep -qE "$LINE; new connections wait" "$T/broker.log"
# ZeroMQ retries the pending connections without pause: one line every
# 5 s (ACCEPT_LOG_EVERY, broker/broker.c) counts the failed tries since
# the one before.
check "while it lasts, a line every few seconds counts the failures" \
    wait_for 15 grep -qE "$LINE; [0-9]+ failed accepts since the last line" \
    "$T/broker.log"
LINES=$(grep -c "cannot accept a connection" "$T/broker.log")
check "and the log is not flooded ($LINES lines)" test "$LINES" -lt 10

kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
check "once they are closed, a client gets in again" \
    wait_for 10 "$BIN/resv" -t 1000 ping
expect_exit 0 "and is answered" "$BIN/resv" -t 2000 ping
check "the log says the frontend accepts connections again" \
    wait_for 15 grep -qE "broker: the frontend \\($RESV_BROKER_FRONTEND\\) accepts connections again, after [0-9]+ failed accepts" \
    "$T/broker.log"
finish
