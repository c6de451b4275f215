#!/usr/bin/env bash
# tests/test_resvd.sh: the supervisor and the worker processes. resvd starts
# the broker and its workers, restarts what dies (a worker, the broker),
# scales a service up and down, refuses bad scale requests, and on SIGTERM
# stops everything and exits 0 leaving no process behind; a killed resvd
# leaves none either. A worker told to stop with a request in hand answers
# it first, and a stop under a load of reserves finishes each of them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_domain.sh"

# Slower heartbeats than lib.sh's: echo sleep blocks its worker for 600 ms,
# which must not be taken for dead meanwhile (liveness 3 x 300 ms).
export RESV_BROKER_HEARTBEAT=300
export RESV_RESVD_RESTART_MIN=100
export RESV_RESVD_STOP_TIMEOUT=5000
# A light system: two echo workers, one availability, no other service.
export RESV_WORKERS_ECHO_COUNT=2
export RESV_WORKERS_AVAILABILITY_COUNT=1
for s in RESERVATION PAYMENT APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=0
done
R=("$BIN/resv" -t 3000)

# wait_count SERVICE N: waits until the broker counts N workers of SERVICE,
# asking again each time (as lib.sh's wait_workers does too).
counts () { test "$(workers_of "$1")" = "$2"; }
wait_count () { wait_for 10 counts "$1" "$2"; }

# none_alive PID...: every one of them is gone.
none_alive () {
    local pid
    for pid in "$@"; do alive "$pid" && return 1; done
    return 0
}

# The PIDs of resvd's children, and of its echo workers, in PID order.
children () { pgrep -P "$RESVD_PID" | sort -n; }
echo_pids () { pgrep -P "$RESVD_PID" -f 'resv-worker( .*)? echo$' | sort -n; }
count_echo () { echo_pids | wc -l; }
echo_count_is () { test "$(count_echo)" = "$1"; }

# The PIDs of the echo workers as resvd lists them, oldest first.
resvd_echo_pids () {
    "${R[@]}" call resvd status '{}' |
        grep -o '"service":"echo","pid":[0-9]*' | grep -o '[0-9]*$'
}

# listen_on ADDRESS PORT READY: a process of its own (PID in $LISTENER and
# in PIDS) listens on ADDRESS:PORT (IPv4 or IPv6) for 60 s, and writes
# READY once it does.
listen_on () {
    python3 -c 'import socket, sys, time
s = socket.socket (socket.AF_INET6 if ":" in sys.argv [1] else socket.AF_INET)
s.setsockopt (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind ((sys.argv [1], int (sys.argv [2])))
s.listen ()
open (sys.argv [3], "w").write ("listening")
time.sleep (60)' "$1" "$2" "$3" 2>/dev/null &
    LISTENER=$!
    PIDS+=("$LISTENER")
}

# --- The programs' command lines -------------------------------------------
expect_exit 0 "resvd --help exits 0" "$BIN/resvd" --help
expect_exit 2 "resvd with a bad option exits 2" "$BIN/resvd" -x
expect_exit 0 "resv-worker --help exits 0" "$BIN/resv-worker" --help
has "resv-worker --help lists the services" "$OUT" "echo"
expect_exit 2 "resv-worker without a service exits 2" "$BIN/resv-worker"
expect_exit 2 "resv-worker of an unknown service exits 2" \
    "$BIN/resv-worker" nosuch
has "the usage error goes to stderr" "$(cat "$T/stderr")" "unknown service"
expect_exit 1 "resvd refuses a bad count" \
    env RESV_WORKERS_ECHO_COUNT=lots "$BIN/resvd"
expect_exit 1 "resvd refuses a count over 64" \
    env RESV_WORKERS_ECHO_COUNT=65 "$BIN/resvd"
expect_exit 1 "resvd refuses a missing config file" \
    "$BIN/resvd" -c "$T/none.cfg"
# At once: its own worker, made before the value was found bad, has told
# no broker anything, and its socket must not linger (heartbeat x
# liveness, 100 s here) for a broker that is not there.
use_free_ports
expect_exit 1 "resvd refuses a bad value of its own (broker/heartbeat)" \
    env RESV_BROKER_HEARTBEAT=abc RESV_BROKER_LIVENESS=100 \
    timeout 10 "$BIN/resvd"
has "naming the key" "$(cat "$T/stderr")" "config: broker/heartbeat: 'abc'"
printf 'broker\n    heartbeat = "abc"\n' >"$T/bad.cfg"
expect_exit 1 "resvd refuses a bad value of its own in its config file" \
    env -u RESV_BROKER_HEARTBEAT RESV_BROKER_LIVENESS=100 \
    timeout 10 "$BIN/resvd" -c "$T/bad.cfg"
has "naming the key" "$(cat "$T/stderr")" "config: broker/heartbeat: 'abc'"
# A bad value that only a worker reads: the worker refuses to serve, and
# resvd stops everything rather than restart it for ever.
use_free_ports
expect_exit 1 "resvd stops when a worker refuses its configuration" \
    env RESV_APPROVAL_TIMEOUT=-5 RESV_WORKERS_APPROVAL_COUNT=1 \
    RESV_DATA_DIR="$T/badcfg" timeout 20 "$BIN/resvd"
has "the worker names the key" "$(cat "$T/stderr")" \
    "config: approval/timeout: '-5'"
has "resvd says why it stops" "$(cat "$T/stderr")" \
    "approval, pid [0-9]+, refused its configuration"
# An endpoint that is not one: the broker cannot bind it at any restart.
expect_exit 1 "resvd stops when the broker's endpoint is not one" \
    env RESV_BROKER_FRONTEND=garbage RESV_DATA_DIR="$T/badcfg" \
    timeout 20 "$BIN/resvd"
has "the broker names it" "$(cat "$T/stderr")" \
    "bind garbage \(broker/frontend\)"
has "resvd stops, not restarts" "$(cat "$T/stderr")" \
    "broker, pid [0-9]+, refused its configuration"

# --- Start -------------------------------------------------------------------
use_free_ports
spawn resvd "$BIN/resvd"
RESVD_PID=$LAST_PID
check "resvd starts the broker" wait_for 10 "${R[@]}" ping
check "resvd starts 2 echo workers" wait_count echo 2
check "resvd starts 1 availability worker" wait_count availability 1
check "resvd is a worker of service resvd" wait_count resvd 1
check "a service with count 0 gets no worker" \
    test "$(workers_of reservation)" = 0
check "resvd has 4 children: broker, availability, echo x2" \
    test "$(children | wc -l)" = 4
expect_exit 0 "echo answers through the broker" \
    "${R[@]}" call echo echo '{"a":"b"}'
has "echo returns the body" "$OUT" '^\{"a": ?"b"\}'

# --- A second resvd on the same data directory -------------------------------
# Started again by mistake, with the same config: its workers would join
# the first broker with another internal key. It stops at once instead.
expect_exit 1 "a second resvd on the same data directory exits 1" \
    timeout 10 "$BIN/resvd"
has "saying that another resvd runs there" "$(cat "$T/stderr")" \
    "another resvd runs on data directory"
check "the first resvd still has its 4 children" \
    test "$(children | wc -l)" = 4
# One of another data directory on the same ports: its broker could not
# bind, and its workers would join the first broker with another key.
expect_exit 1 "a resvd of another data directory on the same ports exits 1" \
    env RESV_DATA_DIR="$T/other" timeout 10 "$BIN/resvd"
has "saying that something listens there" "$(cat "$T/stderr")" \
    "something already listens at $RESV_BROKER_FRONTEND"
check "the first resvd still has its 4 children, again" \
    test "$(children | wc -l)" = 4
check "and the broker still counts 2 echo workers" wait_count echo 2
# The same endpoint written as a host name: resvd resolves it to look.
expect_exit 1 "one with that frontend written as a host name exits 1" \
    env RESV_DATA_DIR="$T/other" \
    RESV_BROKER_FRONTEND="${RESV_BROKER_FRONTEND/127.0.0.1/localhost}" \
    timeout 10 "$BIN/resvd"
has "saying that something listens there" "$(cat "$T/stderr")" \
    "something already listens at tcp://localhost:"
# An IPv6 address, where something else listens (the broker binds IPv4
# only; the test needs IPv6 loopback, as Debian has by default): before
# resvd looked at IPv6 addresses, its broker failed to bind and it
# stopped for a bad value.
free_port V6_PORT; free_port V6_BACKEND
listen_on ::1 "$V6_PORT" "$T/v6.ready"
V6_PID=$LISTENER
if wait_for 5 test -s "$T/v6.ready"; then
    expect_exit 1 "one whose frontend is an IPv6 address in use exits 1" \
        env RESV_DATA_DIR="$T/other" \
        RESV_BROKER_FRONTEND="tcp://[::1]:$V6_PORT" \
        RESV_BROKER_BACKEND="tcp://127.0.0.1:$V6_BACKEND" \
        timeout 10 "$BIN/resvd"
    has "saying that something listens there" "$(cat "$T/stderr")" \
        "something already listens at tcp://\[::1\]:$V6_PORT "
else
    #  Not left out: a check that cannot run here is a failure.
    not_ok "an IPv6 listener on [::1]:$V6_PORT (no IPv6 loopback here?)"
fi
kill -TERM "$V6_PID" 2>/dev/null

# --- Restart of a killed worker --------------------------------------------
OLD=$(echo_pids | head -n 1)
kill -KILL "$OLD"
restarted () { [ "$(count_echo)" = 2 ] && ! echo_pids | grep -qx "$OLD"; }
check "a killed echo worker is replaced by a new process" wait_for 10 restarted
check "the broker counts 2 echo workers again" wait_count echo 2
has "resvd logs the death and the delay" "$(cat "$T/resvd.log")" \
    "echo, pid $OLD, was killed by signal 9.*restarting in [0-9]+ ms"

# --- Restart of a killed broker ---------------------------------------------
BROKER=$(pgrep -P "$RESVD_PID" -f resv-broker)
kill -KILL "$BROKER"
broker_back () {
    local pid
    pid=$(pgrep -P "$RESVD_PID" -f resv-broker) && [ "$pid" != "$BROKER" ]
}
check "a killed broker is restarted" wait_for 10 broker_back
check "the workers find the new broker" wait_count echo 2
check "and so does resvd's own worker" wait_count resvd 1
expect_exit 0 "echo works after the broker restart" \
    "${R[@]}" call echo echo '{}'

# --- Scale ------------------------------------------------------------------
expect_exit 0 "scale echo 4" "${R[@]}" scale echo 4
has "scale answers the count and the previous one" "$OUT" \
    '"service": ?"echo", ?"count": ?4, ?"previous": ?2'
check "4 echo processes run" wait_for 10 echo_count_is 4
check "the broker counts 4 echo workers" wait_count echo 4
OLDEST=$(resvd_echo_pids | head -n 1)
check "resvd lists its echo workers" test -n "$OLDEST"
expect_exit 0 "scale echo 1" "${R[@]}" scale echo 1
has "scale down answers count 1, previous 4" "$OUT" \
    '"count": ?1, ?"previous": ?4'
check "1 echo process runs" wait_for 10 echo_count_is 1
check "the newest were stopped, the oldest is left" \
    test "$(echo_pids)" = "$OLDEST"
check "the broker counts 1 echo worker" wait_count echo 1
stopped_clean () {
    [ "$(grep -cE "echo, pid [0-9]+, exited with status 0 .*; stopped" \
        "$T/resvd.log")" = 3 ]
}
check "the 3 stopped workers exited 0" wait_for 5 stopped_clean
expect_exit 0 "scale echo 0" "${R[@]}" scale echo 0
check "no echo process runs" wait_for 10 echo_count_is 0
expect_exit 0 "scale echo 1 again" "${R[@]}" scale echo 1
check "1 echo process runs again" wait_for 10 echo_count_is 1
check "the broker counts 1 echo worker again" wait_count echo 1

MAIN_FRONTEND=$RESV_BROKER_FRONTEND
MAIN_BACKEND=$RESV_BROKER_BACKEND
MAIN_EVENTS=$RESV_BROKER_EVENTS

# --- Bad scale requests -----------------------------------------------------
expect_exit 1 "scale of an unknown service is refused" \
    "${R[@]}" scale nosuch 2
has "with 404 not_found" "$OUT" '"code": ?404, ?"reason": ?"not_found"'
expect_exit 1 "scale of the broker is refused" "${R[@]}" scale broker 2
has "with 404" "$OUT" '"code": ?404'
expect_exit 1 "scale over 64 is refused" \
    "${R[@]}" call resvd scale '{"service":"echo","count":65}'
has "with 400 bad_request" "$OUT" '"code": ?400, ?"reason": ?"bad_request"'
expect_exit 1 "scale without a count is refused" \
    "${R[@]}" call resvd scale '{"service":"echo"}'
has "with 400" "$OUT" '"code": ?400'
expect_exit 1 "scale without a service is refused" \
    "${R[@]}" call resvd scale '{"count":1}'
has "with 400" "$OUT" '"code": ?400'
expect_exit 1 "scale with a text count is refused" \
    "${R[@]}" call resvd scale '{"service":"echo","count":"2"}'
has "with 400" "$OUT" '"code": ?400'
expect_exit 1 "scale with a fractional count is refused" \
    "${R[@]}" call resvd scale '{"service":"echo","count":1.5}'
has "with 400" "$OUT" '"code": ?400'
expect_exit 1 "scale with a member it does not know is refused" \
    "${R[@]}" call resvd scale '{"service":"echo","count":3,"x":1}'
has "with 400 naming it" "$OUT" "unknown field 'x'"
expect_exit 1 "an unknown resvd method is refused" \
    "${R[@]}" call resvd grow '{}'
has "with 400 unknown_method" "$OUT" '"reason": ?"unknown_method"'
check "bad requests changed nothing" test "$(count_echo)" = 1

# --- Scaled up into a bad configuration -------------------------------------
# A bad value that only a service at count 0 reads: resv scale starts one,
# which refuses its configuration. resvd starts no more of it and runs on;
# it used to stop everything, the whole system taken down by one command.
RESVD_MAIN=$RESVD_PID
use_free_ports
spawn resvd-scale env RESV_APPROVAL_TIMEOUT=-5 RESV_DATA_DIR="$T/scale" \
    "$BIN/resvd"
RESVD_PID=$LAST_PID
check "a resvd whose approval config is bad starts (approval count 0)" \
    wait_count echo 2
expect_exit 0 "scale approval 1 is answered" "${R[@]}" scale approval 1
check "the approval worker names the bad key" wait_for 10 grep -q \
    "config: approval/timeout: '-5'" "$T/resvd-scale.log"
check "resvd says it starts no more of it" wait_for 10 grep -qE \
    "approval, pid [0-9]+, refused its configuration .*starting no more" \
    "$T/resvd-scale.log"
sleep 0.5
check "and it is not started again" test "$(grep -c \
    "config: approval/timeout: '-5'" "$T/resvd-scale.log")" = 1
check "resvd still runs" alive "$RESVD_PID"
expect_exit 0 "and so does the rest: echo answers" \
    "${R[@]}" call echo echo '{}'
kill -TERM "$RESVD_PID"
check "that resvd stops on SIGTERM" wait_for 10 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0

# --- The configuration is read once -----------------------------------------
# Every process reads the copy resvd keeps in memory (-c /dev/fd/3):
# an edit of the file while resvd runs reaches none of them. A worker
# restarted after an edit of data/dir used to read it, and served from an
# empty store in another directory (404 for a resource that was there).
# The file is the shipped one, with its data/dir here and one key misspelt:
# resvd warns of that one, and of no other.
use_free_ports
sed -e "s|dir = \"./var\"|dir = \"$T/live\"|" \
    -e 's|^    liveness = |    livenes = |' "$TOP/config/resv.cfg" >"$T/live.cfg"
spawn resvd-live env -u RESV_DATA_DIR "$BIN/resvd" -c "$T/live.cfg"
RESVD_PID=$LAST_PID
check "a resvd with a config file starts" wait_count availability 1
has "it warns of the misspelt key" "$(cat "$T/resvd-live.log")" \
    "config: broker/livenes is not a key resv reads"
check "and of no other in the shipped file" test "$(grep -c \
    'resvd.*config: ' "$T/resvd-live.log")" = 1
check "a worker reads the copy of the file that resvd keeps" \
    cmp -s "$T/live.cfg" \
    "/proc/$(pgrep -P "$RESVD_PID" -f 'resv-worker( .*)? availability$')/fd/3"
LIVE_RES=$("${R[@]}" resource add --name Live --owner ann --capacity 2 \
           --price 100 | js 'd["id"]')
check "a resource is added" test -n "$LIVE_RES"
printf 'data\n    dir = "%s"\n' "$T/live2" >"$T/live.cfg"
AVAIL=$(pgrep -P "$RESVD_PID" -f 'resv-worker( .*)? availability$')
kill -KILL "$AVAIL"
avail_back () {
    local pid
    pid=$(pgrep -P "$RESVD_PID" -f 'resv-worker( .*)? availability$') &&
        [ "$pid" != "$AVAIL" ] && counts availability 1
}
check "the killed availability worker is restarted" wait_for 10 avail_back
expect_exit 0 "the restarted worker still has the resource" \
    "${R[@]}" resource show "$LIVE_RES"
check "no store was made in the edited data/dir" test ! -e "$T/live2"
kill -TERM "$RESVD_PID"
check "that resvd stops on SIGTERM" wait_for 10 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0

# --- A broker that refuses its configuration after a restart ---------------
# The broker exits 78 when it cannot bind an endpoint whose address is not
# there (EADDRNOTAVAIL: an interface gone for a while). Restarted later, it
# is restarted again, with the backoff, not left out for good as a worker
# that refuses its configuration is. Played here by a resv-broker beside a
# copy of resvd that refuses while $T/refuse exists, else runs the broker.
use_free_ports
mkdir -p "$T/fakebin"
cp "$BIN/resvd" "$T/fakebin/resvd"
ln -s "$BIN/resv-worker" "$T/fakebin/resv-worker"
printf '#!/bin/sh\n[ -e "%s" ] && { echo "fake broker: refusing" >&2; exit 78; }\nexec "%s" "$@"\n' \
    "$T/refuse" "$BIN/resv-broker" >"$T/fakebin/resv-broker"
chmod +x "$T/fakebin/resv-broker"
spawn resvd-fake env RESV_DATA_DIR="$T/fake" "$T/fakebin/resvd"
RESVD_PID=$LAST_PID
check "a resvd with a broker that may refuse starts" wait_count echo 2
touch "$T/refuse"
kill -KILL "$(pgrep -P "$RESVD_PID" -f resv-broker)"
check "the restarted broker refuses its configuration" wait_for 10 grep -q \
    "broker, pid [0-9]*, exited with status 78 .*restarting in" \
    "$T/resvd-fake.log"
rm -f "$T/refuse"
check "and is restarted until it runs" wait_for 15 "${R[@]}" -t 500 ping
check "the workers find it" wait_count echo 2
check "resvd did not stop" alive "$RESVD_PID"
kill -TERM "$RESVD_PID"
check "that resvd stops on SIGTERM" wait_for 10 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0

# --- The events endpoint in use ----------------------------------------------
# Its broker could not bind it, and was restarted for ever.
use_free_ports
listen_on 127.0.0.1 "${RESV_BROKER_EVENTS##*:}" "$T/events.ready"
EV_PID=$LISTENER
check "something listens on the events endpoint" wait_for 5 test -s "$T/events.ready"
expect_exit 1 "a resvd whose events endpoint is in use exits 1" \
    env RESV_DATA_DIR="$T/events" timeout 10 "$BIN/resvd"
has "saying that something listens there" "$(cat "$T/stderr")" \
    "something already listens at $RESV_BROKER_EVENTS \(broker/events\)"
kill -TERM "$EV_PID" 2>/dev/null
wait "$EV_PID" 2>/dev/null

# --- Values resvd takes for nonsense -----------------------------------------
expect_exit 1 "a stop_timeout of 0 is refused" \
    env RESV_RESVD_STOP_TIMEOUT=0 RESV_DATA_DIR="$T/st0" timeout 10 "$BIN/resvd"
has "naming the key" "$(cat "$T/stderr")" "resvd/stop_timeout: '0'"
expect_exit 1 "a count with a space and a sign is refused" \
    env RESV_WORKERS_ECHO_COUNT=' +2' RESV_DATA_DIR="$T/cnt" timeout 10 \
    "$BIN/resvd"
has "naming the key" "$(cat "$T/stderr")" "workers/echo/count: ' \+2'"
RESVD_PID=$RESVD_MAIN
# The events endpoint of the first resvd again: the tests below use it.
RESV_BROKER_FRONTEND=$MAIN_FRONTEND
RESV_BROKER_BACKEND=$MAIN_BACKEND
RESV_BROKER_EVENTS=$MAIN_EVENTS

# --- A worker stops gracefully with a request in hand ----------------------
WORKER=$(echo_pids)
"${R[@]}" call echo sleep '{"ms":600}' >"$T/sleep.out" 2>&1 &
CALL=$!
sleep 0.3
kill -TERM "$WORKER"
wait "$CALL"
check "the request in hand is answered 200" test $? -eq 0
has "with its result" "$(cat "$T/sleep.out")" '"slept": ?600'
check "the worker exits" wait_for 5 dead "$WORKER"
# resvd reaps and logs it on its next turn, a moment after it is gone.
check "resvd logs its exit with status 0" wait_for 5 \
    grep -q "echo, pid $WORKER, exited with status 0" "$T/resvd.log"
check "resvd replaces it" wait_for 10 echo_count_is 1
check "and the broker counts it" wait_count echo 1

# --- Stops one after another are no crash loop -----------------------------
# A process that exits 0 stopped because it was told to (a rolling
# restart, SIGTERM by hand): resvd restarts it after restart_min each time.
# The crash backoff used to apply, doubling at each stop: the fifth in
# 10 s waited 1.6 s for its restart, past the broker's grace (1 s), and a
# request sent at the stop got 503 where the grace should have covered it.
RESTARTS_OK=0
for round in 1 2 3 4 5; do
    WORKER=$(echo_pids)
    kill -TERM "$WORKER"
    wait_for 5 dead "$WORKER"
    # Sent while the service has no worker: it waits for the restart.
    "${R[@]}" call echo echo '{}' >/dev/null 2>&1 &&
        RESTARTS_OK=$((RESTARTS_OK + 1))
    wait_for 5 counts echo 1
done
check "a request sent at each of 5 stops in a row is answered ($RESTARTS_OK)" \
    test "$RESTARTS_OK" = 5
check "each stopped worker is restarted after restart_min" eval \
    '! grep -E "echo, pid [0-9]+, exited with status 0 .*restarting in [0-9]{4}" "$T/resvd.log"'

# --- resvd stops everything on SIGTERM -------------------------------------
mapfile -t KIDS < <(children)
check "resvd has children to stop" test "${#KIDS[@]}" -eq 3
kill -TERM "$RESVD_PID"
check "resvd exits within 5 s of SIGTERM" wait_for 5 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0
check "no child of resvd is left" none_alive "${KIDS[@]}"
# The log from the stop on: workers stopped, each exited 0, then the broker.
sed -n '/resvd: stopping [0-9]* workers/,$p' "$T/resvd.log" >"$T/stop.log"
stop_order () {
    local broker last_worker
    broker=$(grep -n "resvd: broker, pid [0-9]*, exited" "$T/stop.log" |
             cut -d: -f1)
    last_worker=$(grep -nE "resvd: (echo|availability), pid [0-9]+, exited" \
                  "$T/stop.log" | tail -n 1 | cut -d: -f1)
    [ -n "$broker" ] && [ -n "$last_worker" ] &&
        [ "$last_worker" -lt "$broker" ]
}
check "the workers end before the broker is stopped" stop_order
check "every child exited 0" test "$(grep -cE \
    'pid [0-9]+, exited with status 0 .*; stopped' "$T/stop.log")" -eq 3
check "none had to be killed" eval '! grep -q "did not stop" "$T/stop.log"'

# --- A closed log pipe stops nothing ---------------------------------------
# resvd logging into a pipe whose reader then goes away (a log shipper
# that died): the next log lines find no reader, which would end each
# process by SIGPIPE; they must go on without their log.
use_free_ports
RESV_WORKERS_AVAILABILITY_COUNT=0 "$BIN/resvd" 2> >(cat >>"$T/resvd3.log") &
RESVD_PID=$!
PIDS+=("$RESVD_PID")
check "a resvd logging into a pipe starts its workers" wait_count echo 2
resv_children () { pgrep -P "$RESVD_PID" -f 'resv-(broker|worker)' | sort -n; }
mapfile -t KIDS < <(resv_children)
# The pipe's reader: a child of resvd (bash starts it in resvd's process,
# before the exec), else of this shell.
READER=$(pgrep -P "$RESVD_PID" -x cat || pgrep -P $$ -x cat)
check "the log's reader is found" test -n "$READER"
kill -KILL $READER
# Log lines now: resvd starts a worker, the broker greets it.
"${R[@]}" scale echo 3 >/dev/null
check "resvd scales up after its log's reader is gone" wait_count echo 3
echo_served () { "${R[@]}" call echo echo '{"x":1}' >/dev/null; }
check "and serves requests" echo_served
all_alive () { local pid; for pid in "$@"; do alive "$pid" || return 1; done; }
check "resvd and its first ${#KIDS[@]} children are all alive" all_alive "$RESVD_PID" "${KIDS[@]}"
kill -TERM "$RESVD_PID"
check "it still stops on SIGTERM" wait_for 10 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0

# --- A killed resvd leaves no orphan ---------------------------------------
# Echo workers only: what is checked is that every child is told to stop
# (PR_SET_PDEATHSIG), not how long a domain service takes to stop without
# its broker.
use_free_ports
RESV_WORKERS_AVAILABILITY_COUNT=0 spawn resvd2 "$BIN/resvd"
RESVD_PID=$LAST_PID
check "a second resvd starts its workers" wait_count echo 2
mapfile -t KIDS < <(children)
check "it has 3 children" test "${#KIDS[@]}" -eq 3
kill -KILL "$RESVD_PID"
wait "$RESVD_PID" 2>/dev/null
check "its children all exit when it is killed" \
    wait_for 10 none_alive "${KIDS[@]}"

# --- A stop under load finishes the reserves in flight ---------------------
# The whole system, payment taking 300 ms a call and one request at a time
# (credit 1): the authorisations of 20 reserves at once wait their turn at
# the broker, 6 s in all. SIGTERM comes once all 20 hold their units, so
# each is in the middle of its saga. Spec 4.8: each must finish, and nothing may be
# left half done. That needs resvd to stop reservation, the caller, before
# availability and payment, which it calls: stopped at once, payment would
# take no more of the queue, and availability no release of an undo.
# The reservation worker's stop waits for the broker, which answers, for
# half of stop_timeout at most: 8 s here. It gave up at a quarter (4 s)
# however live the broker was, and 5 or 6 of the 20 were answered 503,
# their holds and authorisations left to the sweep.
use_free_ports
for s in AVAILABILITY RESERVATION PAYMENT APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=1
done
export RESV_WORKERS_ECHO_COUNT=0 RESV_WORKERS_PAYMENT_CREDIT=1
export RESV_PAYMENT_LATENCY=300
# Reservation sends its calls in batches of up to 16 (4.8 s of payments
# here), and a stopped worker still finishes what it holds: through both
# the workers go on with their heartbeats, so lib.sh's liveness of 1 s
# stands.
# The 6 s of payments take more than a quarter of it and less than half,
# so that no process is killed.
export RESV_RESVD_STOP_TIMEOUT=16000
spawn resvd4 "$BIN/resvd"
RESVD_PID=$LAST_PID
system_up () {
    local s
    for s in availability reservation payment approval notification view; do
        counts "$s" 1 || return 1
    done
}
check "resvd starts every domain service" wait_for 15 system_up
RESOURCE=$("${R[@]}" resource add --name Hall --owner ann --capacity 50 |
           js 'd["id"]')
check "a resource of capacity 50" test -n "$RESOURCE"
held_now () {
    "${R[@]}" availability --resource "$RESOURCE" --date 2027-09-01 |
        js 'd["days"][0]["held"]'
}
held_is () { test "$(held_now)" = "$1"; }
mkdir -p "$T/load"
for i in $(seq 1 20); do
    "$BIN/resv" -t 30000 reserve --customer "guest$i" --resource "$RESOURCE" \
        --date 2027-09-01 >"$T/load/$i.out" 2>&1 &
    echo $! >"$T/load/$i.pid"
done
check "the 20 reserves hold their units, mid-saga" wait_for 10 held_is 20
kill -TERM "$RESVD_PID"
for i in $(seq 1 20); do
    wait "$(cat "$T/load/$i.pid")"; echo $? >"$T/load/$i.rc"
done
check "resvd exits within 20 s of SIGTERM" wait_for 20 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0
# Every one of them was in flight (its units held), so each must end
# 201: not a 503 or 504 about a call to availability or payment, nor the
# broker's "no worker came in time" of a request its stopping worker lost.
outcomes "$T/load" >"$T/load/outcomes"
MADE=$(grep -c ' ok ' "$T/load/outcomes")
ODD=$(grep -v ' ok ' "$T/load/outcomes" | head -n 3 | tr '\n' ';')
check "the 20 reserves in flight all get 201 (got $MADE)${ODD:+: $ODD}" \
    test "$MADE" = 20
sed -n '/resvd: stopping [0-9]* workers/,$p' "$T/resvd4.log" >"$T/stop4.log"
check "none had to be killed" eval '! grep -q "did not stop" "$T/stop4.log"'
# line_of PATTERN: the number of the first line of the stop's log with it.
line_of () { grep -nE "$1" "$T/stop4.log" | head -n 1 | cut -d: -f1; }
in_waves () {
    local approval reservation payment
    approval=$(line_of 'resvd: approval, pid [0-9]+, exited')
    reservation=$(line_of 'resvd: stopping reservation, pid')
    [ -n "$approval" ] && [ -n "$reservation" ] &&
        [ "$approval" -lt "$reservation" ] || return 1
    reservation=$(line_of 'resvd: reservation, pid [0-9]+, exited')
    payment=$(line_of 'resvd: stopping payment, pid')
    [ -n "$reservation" ] && [ -n "$payment" ] &&
        [ "$reservation" -lt "$payment" ]
}
check "approval ends before reservation is stopped, reservation before payment" \
    in_waves
# Back on the same data: the units held are those of the reservations made,
# none held by a reserve that was cut short.
use_free_ports
spawn resvd5 "$BIN/resvd"
RESVD_PID=$LAST_PID
check "resvd starts again on the same data" wait_for 15 system_up
check "the units held are the $MADE reserved (held $(held_now))" \
    held_is "$MADE"
kill -TERM "$RESVD_PID"
check "the second resvd stops too" wait_for 20 dead "$RESVD_PID"
wait "$RESVD_PID"
check "with status 0" test $? -eq 0

finish
