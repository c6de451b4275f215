#!/usr/bin/env bash
# tests/test_ipv6.sh: the whole system on IPv6 loopback. Every socket of
# an endpoint "tcp://[ADDRESS]:PORT" needs ZeroMQ's IPv6 option: without
# it the broker could not bind [::1] ("No such device") and resvd stopped
# for a bad value. Here the broker binds all three ports on [::1], and
# clients, workers and the consumers' subscriptions reach it there. The
# test needs IPv6 loopback, as Debian has by default; without it, it
# fails rather than being left out.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

free_port FRONT; free_port BACK; free_port EVENTS
export RESV_BROKER_FRONTEND="tcp://[::1]:$FRONT"
export RESV_BROKER_BACKEND="tcp://[::1]:$BACK"
export RESV_BROKER_EVENTS="tcp://[::1]:$EVENTS"
export RESV_WORKERS_ECHO_COUNT=0
for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
spawn resvd "$BIN/resvd" -c "$TOP/config/resv.cfg"
RESVD_PID=$LAST_PID
check "resvd's broker answers on [::1]" wait_for 15 "$BIN/resv" -t 500 ping
up () {
    local s
    for s in $DOMAIN_SERVICES; do counts "$s" 1 || return 1; done
}
check "every service's worker joins it there" wait_for 15 up
check "nothing listens on 127.0.0.1 at those ports" \
    eval "! (exec 3<>/dev/tcp/127.0.0.1/$FRONT) 2>/dev/null"
RES=$(r resource add --name "Van" --owner vera --capacity 1 | js 'd["id"]')
check "a resource" test -n "$RES"
ID=$(r reserve --customer ivan --resource "$RES" --date 2027-05-01 | js 'd["id"]')
check "a reserve (availability and payment called over IPv6)" test -n "$ID"
check "the view shows it CONFIRMED (events fanned out over IPv6)" \
    wait_for 15 status_is "$ID" CONFIRMED
check "the customer is notified" wait_for 15 notes_are ivan 1 reservation.confirmed
has "the journal replays over IPv6" "$(r events --limit 2)" '"seq":1'
kill -TERM "$RESVD_PID"
check "resvd stops" wait_for 20 dead "$RESVD_PID"
RC=running
if dead "$RESVD_PID"; then wait "$RESVD_PID" 2>/dev/null; RC=$?; fi
check "and exits 0 (got $RC)" test "$RC" = 0
finish
