#!/usr/bin/env bash
# tests/test_pause_short.sh: a payment worker, then an availability
# worker, stopped (SIGSTOP) for less than the broker's liveness, under
# load, several times each. The broker does not take it for dead, but the
# authorisations (holds) waiting in its socket outlive their deadlines:
# the broker answers each 504, and each reserve voids its payment and
# releases its hold (at the other worker of the service, which finds
# none yet). Resumed, the worker reads them late. It must count their
# deadlines from when the broker sent them, and begin none: counted from
# when it read them, it authorised them (held them), and each stayed
# authorised (held) for good with no reservation, and no saga row left
# for the sweep to find: 35 such payments in one run of this test.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in RESERVATION APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=1
done
export RESV_WORKERS_PAYMENT_COUNT=2 RESV_WORKERS_AVAILABILITY_COUNT=2
# lib.sh's heartbeats: a worker silent for 1 s (4 x 250 ms) is dead. A
# pause of 500 ms, and up to 250 ms since its last heartbeat, stays short
# of it. Reserves live 300 ms, so their authorisations do not.
PAUSE=0.5

start_resvd_or_finish

"$BIN/resv-bench" -e "$RESV_BROKER_FRONTEND" reserve -c 8 --duration 14 \
    -t 300 --resources 4 --lag-sample 0 --json >"$T/bench.json" \
    2>"$T/bench.err" &
BENCH=$!
PAUSED=0
sleep 1.5
for service in payment payment payment payment payment availability \
               availability availability availability availability; do
    pid=$(pids_of $service | head -n 1)
    [ -n "$pid" ] || break
    kill -STOP "$pid" && PAUSED=$((PAUSED + 1))
    sleep "$PAUSE"
    kill -CONT "$pid"
    sleep 0.7
done
wait "$BENCH"
check "the bench ran ($(head -c 200 "$T/bench.err"))" \
    test -s "$T/bench.json"
check "a payment and an availability worker were stopped 5 times each ($PAUSED)" \
    test "$PAUSED" = 10
MADE=$(js 'd["transactions"]' <"$T/bench.json")
check "reserves were made ($MADE; failed: $(js 'd["failed_by_status"]' <"$T/bench.json"))" \
    test "${MADE:-0}" -gt 0
# The case this test is for: the broker kept the worker.
check "no worker was taken for dead" \
    eval '! grep -Eq "worker [0-9A-F]+ of [a-z]+ (expired|gone)" "$T/resvd.log"'

# The stores agree: no payment authorised for no reservation, every unit
# held belongs to a live reservation, no saga left open.
check "the stores agree (orphan payments, held, live units, open sagas)" \
    wait_for 10 stores_agree
stores_agree | sed 's/^/# /'

finish
