#!/usr/bin/env bash
# The broker as a process, with real workers and the resv CLI: routing,
# grace, lost workers, deadlines, the queue bound, the circuit breaker,
# garbage on its ports, and a restart under clients and workers.
# Heartbeats every 250 ms: a worker busy in a handler sends none, so the
# liveness (3 x 250 ms) must outlast the longest sleep asked of echo here.
export RESV_BROKER_HEARTBEAT=250
source "$(dirname "$0")/lib.sh"

export RESV_BROKER_GRACE=300
export RESV_BROKER_BREAKER_FAILURES=3
export RESV_BROKER_BREAKER_COOLDOWN=1000
export RESV_BROKER_QUEUE_MAX=2
RESV="$BIN/resv"

start_broker || { not_ok "broker starts"; finish; }
ok "broker starts and answers ping"

expect_exit 0 "resv ping" "$RESV" ping
has "ping says pong" "$OUT" '"pong":true'

# --- a worker round trip -------------------------------------------------
start_worker echo
W1=$LAST_PID
check "echo worker announces itself" wait_workers echo 1
expect_exit 0 "echo through a worker" "$RESV" call echo echo '{"a":"b\"c"}'
has "echo returns the body" "$OUT" '"a":"b\\"c"'

# --- no worker: 503 right after the grace --------------------------------
# Which timer answers, not how fast: the grace (300 ms) and not the
# deadline (30 s), whatever the load on the machine.
start=$(date +%s%N)
expect_exit 3 "service with no worker fails" "$RESV" -t 30000 call nobody x
ms=$(( ($(date +%s%N) - start) / 1000000 ))
has "no worker is 503 no_worker" "$OUT" '"code":503.*"reason":"no_worker"'
if [ "$ms" -ge 250 ] && [ "$ms" -lt 20000 ]; then
    ok "503 comes after the grace, not at the deadline ($ms ms)"
else not_ok "503 came after $ms ms, grace is 300, deadline 30000"; fi

# --- deadline: 504 ------------------------------------------------------
expect_exit 3 "slow request passes its deadline" "$RESV" -t 300 call echo sleep '{"ms":1000}'
has "deadline is 504 deadline_exceeded" "$OUT" '"code":504.*deadline_exceeded'

# --- a worker killed with a request in hand ------------------------------
"$RESV" -t 8000 call echo sleep '{"ms":600}' >"$T/slow.out" 2>&1 &
CLIENT=$!
sleep 0.1
start_worker echo
W2=$LAST_PID
wait_workers echo 2
kill -9 "$W1"
wait "$CLIENT"; rc=$?
if [ $rc -eq 0 ] && grep -q '"slept":600' "$T/slow.out"; then
    ok "request of a killed worker re-dispatched and answered"
else
    not_ok "request of a killed worker: exit $rc, $(cat "$T/slow.out")"
fi
check "killed worker dropped from stats" wait_workers echo 1

# A request that kills every worker it reaches: re-sent once, then 503 at
# its deadline (either worker could still have done it until then).
start_worker echo
W3=$LAST_PID
wait_workers echo 2
# echo exit is a test hook: only a holder of the internal key may call it
# (any client could kill the echo worker of a default system).
expect_exit 1 "echo exit without the internal key is refused" "$RESV" -t 3000 call echo exit
has "403 internal_only" "$OUT" '"code":403.*internal_only'
check "and both workers live" has_workers echo 2
OUT=$(python3 "$TOP/tests/rawclient.py" "$RESV_BROKER_FRONTEND" 8000 RESVC1 REQ \
      kill1 echo exit 5000 '{}' "$RESV_BROKER_INTERNAL_KEY")
rc=$?
check "request that kills its workers fails, no hang (exit $rc)" test "$rc" -eq 0
has "lost twice is 503 worker_lost" "$(printf '%s\n' "$OUT" | sed -n '4,5p' | tr '\n' ' ')" \
    '^503 .*"reason":"worker_lost"'
check "both workers gone" wait_workers echo 0

# --- queue bound: 429 ---------------------------------------------------
RESV_WORKERS_CREDIT=1 spawn worker-q "$BIN/resv-worker" echo
WQ=$LAST_PID
wait_workers echo 1
for i in 1 2 3; do
    "$RESV" -t 5000 call echo sleep '{"ms":500}' >"$T/q$i.out" 2>&1 &
    QP[$i]=$!
    sleep 0.1
done
expect_exit 1 "request past a full queue is refused" "$RESV" -t 5000 call echo echo
has "full queue is 429 queue_full" "$OUT" '"code":429.*queue_full'
qok=0
for i in 1 2 3; do wait "${QP[$i]}" && qok=$((qok + 1)); done
if [ $qok -eq 3 ]; then ok "queued requests all answered"; else not_ok "only $qok of 3 queued requests answered"; fi
# A retry of the request that killed two workers, sent by its client just
# as the broker answered it 503, must not kill this one (doc/protocol.md,
# section 2, request-id).
check "the queue's worker lives" alive "$WQ"

# --- circuit breaker ----------------------------------------------------
for i in 1 2 3; do "$RESV" call echo fail >/dev/null 2>&1; done
expect_exit 3 "open circuit refuses at once" "$RESV" call echo echo
has "open circuit is 503 circuit_open" "$OUT" '"code":503.*circuit_open'
has "stats shows the circuit open" "$("$RESV" stats)" '"echo":\{[^}]*"breaker":"open"'
sleep 1.1
expect_exit 0 "after the cool-down a probe goes through" "$RESV" call echo echo
has "stats shows the circuit closed" "$("$RESV" stats)" '"echo":\{[^}]*"breaker":"closed"'

# --- garbage on both ports ----------------------------------------------
for ep in "$RESV_BROKER_FRONTEND" "$RESV_BROKER_BACKEND"; do
    port=${ep##*:}
    for size in 1 100 10000 2100000; do
        head -c $size /dev/urandom >"/dev/tcp/127.0.0.1/$port" 2>/dev/null
    done
    # A ZMTP greeting that claims a frame of 2^62 bytes.
    printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL' \
        >"/dev/tcp/127.0.0.1/$port" 2>/dev/null
done
check "broker alive after garbage" kill -0 "$BROKER_PID"
expect_exit 0 "broker serves after garbage" "$RESV" ping
expect_exit 0 "worker still served after garbage" "$RESV" call echo echo '{}'

# --- broker killed and restarted ----------------------------------------
# Four clients, each making three slow calls in a row, span the restart;
# libresv re-sends what the dead broker lost, so none fails.
spawn worker-r "$BIN/resv-worker" echo
wait_workers echo 2
for c in 1 2 3 4; do
    ( for i in 1 2 3; do
          "$RESV" -t 10000 call echo sleep '{"ms":300}' || exit 1
      done ) >"$T/ride$c.out" 2>&1 &
    RIDERS[$c]=$!
done
sleep 0.4
kill -9 "$BROKER_PID"
sleep 0.2
spawn broker2 "$BIN/resv-broker"
BROKER_PID=$LAST_PID
check "restarted broker answers" wait_for 10 "$RESV" -t 500 ping
check "workers reconnect to the new broker" wait_workers echo 2
riders_ok=0
for c in 1 2 3 4; do wait "${RIDERS[$c]}" && riders_ok=$((riders_ok + 1)); done
if [ $riders_ok -eq 4 ]; then
    ok "clients rode through the broker restart with no failure"
else
    not_ok "only $riders_ok of 4 clients rode through the restart: $(cat "$T"/ride*.out | head -c 600)"
fi

# --- graceful stop -------------------------------------------------------
# SIGTERM goes once the broker has the request in flight: a fixed sleep
# lost the race on a loaded machine, where the client had not yet
# connected (libresv keeps nothing in its socket while no broker is
# connected), and the stopping broker took no new connection.
# Nothing else in flight first: a rider's request resent to the new broker
# may still run there after its client had its answer and left, and the
# check below took it for this one, sending SIGTERM before this one came.
in_flight () {
    "$RESV" -t 500 stats | grep -q "\"echo\":{[^}]*\"inflight\":$1"
}
check "no request in flight before the stop's" wait_for 10 in_flight 0
"$RESV" -t 5000 call echo sleep '{"ms":1500}' >"$T/stop.out" 2>&1 &
CLIENT=$!
check "the request is in flight before the stop" wait_for 5 in_flight 1
kill -TERM "$BROKER_PID"
wait "$CLIENT"; rc=$?
if [ $rc -eq 0 ]; then ok "request in flight answered during broker stop"
else not_ok "request during stop: exit $rc $(cat "$T/stop.out")"; fi
wait "$BROKER_PID"; rc=$?
check "broker exits 0 on SIGTERM" test "$rc" -eq 0
finish
