#!/usr/bin/env bash
# tests/test_files.sh: many connections to the broker. Each TCP connection
# is a file of the broker's process, and Debian's soft limit of open
# files is 1024: with 1075 idle connections open (a fuzz's), the broker
# accepted no other, so no client or worker reached it, and nothing said
# why. resv's daemons now raise the soft limit to the hard one at start.
# Here the soft limit starts at 128 and 300 idle connections are opened.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ulimit -Sn 128
HARD=$(ulimit -Hn)
start_broker
expect_exit 0 "the broker answers" "$BIN/resv" -t 2000 ping
soft_limit () { awk '/^Max open files/ { print $4 }' "/proc/$1/limits"; }
LIMIT=$(soft_limit "$BROKER_PID")
WANT=$HARD
[ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ] && WANT=65536
check "its soft limit of open files is raised to $WANT (got $LIMIT)" \
    test "$LIMIT" = "$WANT"
PORT=${RESV_BROKER_FRONTEND##*:}
check "300 idle connections are open" hold_connections 300 "$PORT" 30
expect_exit 0 "the broker still answers a client" "$BIN/resv" -t 3000 ping
start_worker echo
check "and a worker joins it" wait_workers echo 1
expect_exit 0 "which serves a request" "$BIN/resv" -t 3000 call echo echo '{"a":1}'
kill "$HOLDER" 2>/dev/null
finish
