#!/usr/bin/env bash
# tests/test_cli.sh: the resv command line (spec section 5): exit codes,
# what goes to stdout and stderr, help on every command, an unreachable
# broker, a service with no worker, and a round trip through the echo
# worker, against a real resv-broker.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

R=$BIN/resv
# A short grace for services with no worker, so the 503 comes quickly.
export RESV_BROKER_GRACE=200

stderr_has () { has "$1" "$(cat "$T/stderr")" "$2"; }
stdout_empty () { check "$1: nothing on stdout" test -z "$OUT"; }
now_ms () { echo $(( $(date +%s%N) / 1000000 )); }

# --- Usage errors: exit 2, help on stderr, nothing on stdout --------------

expect_exit 2 "no command exits 2" "$R"
stderr_has "no command: help on stderr" "^usage: resv "
stdout_empty "no command"

expect_exit 2 "unknown command exits 2" "$R" frobnicate
stderr_has "unknown command: named on stderr" "unknown command 'frobnicate'"
stderr_has "unknown command: help on stderr" "usage: resv "
stdout_empty "unknown command"

expect_exit 2 "unknown global option exits 2" "$R" --bogus ping
expect_exit 2 "-t not a number exits 2" "$R" -t abc ping
stderr_has "-t not a number: said so" "'abc' is not a whole number"
expect_exit 2 "-t 0 exits 2" "$R" -t 0 ping
expect_exit 2 "-t 12ms exits 2" "$R" -t 12ms ping
expect_exit 2 "-t without value exits 2" "$R" -t
expect_exit 2 "-e without value exits 2" "$R" -e

expect_exit 2 "reserve --units two exits 2" "$R" reserve --customer c \
    --resource r --date 2030-01-01 --units two
stderr_has "--units two: said so" "--units: 'two' is not a whole number"
stderr_has "--units two: reserve help on stderr" "^usage: resv reserve"
stdout_empty "--units two"
expect_exit 2 "a bad client/timeout in the configuration exits 2" \
    env RESV_CLIENT_TIMEOUT=abc "$R" ping
stderr_has "... naming the key" "config: client/timeout: 'abc'"
expect_exit 2 "events --limit 99999999999 exits 2" "$R" events \
    --limit 99999999999
stderr_has "--limit too large: said so" "--limit: '99999999999' is too large"
expect_exit 2 "reserve --units 0 exits 2" "$R" reserve --customer c \
    --resource r --date 2030-01-01 --units 0
expect_exit 2 "reserve --days 1.5 exits 2" "$R" reserve --customer c \
    --resource r --date 2030-01-01 --days 1.5
expect_exit 2 "reserve --units without value exits 2" "$R" reserve \
    --customer c --resource r --date 2030-01-01 --units
expect_exit 2 "reserve without --customer exits 2" "$R" reserve \
    --resource r --date 2030-01-01
stderr_has "reserve without --customer: said so" "--customer is required"
expect_exit 2 "reserve unknown option exits 2" "$R" reserve --customer c \
    --resource r --date 2030-01-01 --colour red
expect_exit 2 "status without ID exits 2" "$R" status
stderr_has "status without ID: said so" "missing ID"
expect_exit 2 "status with an extra argument exits 2" "$R" status a b
stderr_has "status extra: said so" "unexpected argument 'b'"
expect_exit 2 "ping with an argument exits 2" "$R" ping now
expect_exit 2 "cancel with --customer twice exits 2" "$R" cancel X \
    --customer a --customer b
expect_exit 2 "resource without subcommand exits 2" "$R" resource
stderr_has "resource without subcommand: group help" \
    "usage: resv resource add\|list"
expect_exit 2 "resource frob exits 2" "$R" resource frob
expect_exit 2 "view without subcommand exits 2" "$R" view
expect_exit 2 "view frob exits 2" "$R" view frob
expect_exit 2 "resource add --approval sometimes exits 2" "$R" resource add \
    --name n --owner o --approval sometimes
expect_exit 2 "resource add --slots a,,b exits 2" "$R" resource add \
    --name n --owner o --slots a,,b
expect_exit 2 "resource add --price -1 exits 2" "$R" resource add \
    --name n --owner o --price -1
expect_exit 2 "resource update without --owner exits 2" "$R" resource \
    update R1 --name n
expect_exit 2 "events --follow=yes exits 2" "$R" events --follow=yes
expect_exit 2 "events --from x exits 2" "$R" events --from x
expect_exit 2 "list --limit 0 exits 2" "$R" list --limit 0
expect_exit 2 "scale echo many exits 2" "$R" scale echo many
expect_exit 2 "scale without N exits 2" "$R" scale echo
expect_exit 2 "scale echo 65 (over resvd's 64) exits 2" "$R" scale echo 65
stderr_has "scale echo 65: said so" "from 0 to 64"
expect_exit 2 "call with bad JSON exits 2" "$R" call echo echo '{a:1}'
stderr_has "call with bad JSON: said so" "JSON: not JSON"
expect_exit 2 "call without METHOD exits 2" "$R" call echo
expect_exit 2 "invalid endpoint exits 2" "$R" -e nonsense ping
stderr_has "invalid endpoint: said so" "cannot use endpoint 'nonsense'"
stderr_has "invalid endpoint: help on stderr" "^usage: resv "
expect_exit 2 "missing config file exits 2" "$R" -c "$T/none.cfg" ping
stderr_has "missing config file: said so" "cannot load the configuration"
stderr_has "missing config file: help on stderr" "^usage: resv "
printf '=1\n' >"$T/bad.cfg"
expect_exit 2 "bad config file exits 2" "$R" -c "$T/bad.cfg" ping
stdout_empty "bad config file"

# --- Help: exit 0, on stdout -----------------------------------------------

expect_exit 0 "--version exits 0" "$R" --version
has "--version prints the version" "$OUT" "^resv [0-9]+\.[0-9]+"
for cmd in "" "resource" "resource add" "resource list" "resource show" \
           "resource update" "resource remove" "availability" "reserve" \
           "cancel" "approve" "decline" "status" "list" "history" "view" \
           "view rebuild" "notifications" "events" "stats" "scale" "ping" \
           "call"; do
    # shellcheck disable=SC2086  # the words of cmd are separate arguments
    expect_exit 0 "resv $cmd --help exits 0" "$R" $cmd --help
    has "resv $cmd --help: help on stdout" "$OUT" "^usage: resv ${cmd%% *}"
    check "resv $cmd --help: nothing on stderr" test ! -s "$T/stderr"
done
expect_exit 0 "resv -h exits 0" "$R" -h
expect_exit 0 "resv reserve -h exits 0" "$R" reserve -h
has "resv reserve -h: reserve help" "$OUT" "^usage: resv reserve"
# --help wins over an error elsewhere on the line.
expect_exit 0 "--help after a bad option exits 0" "$R" reserve --units x \
    --help

# --- No broker: exit 3, quickly --------------------------------------------

free_port dead_port
dead=tcp://127.0.0.1:$dead_port
start=$(now_ms)
expect_exit 3 "unreachable broker exits 3" "$R" -e "$dead" -t 300 ping
elapsed=$(( $(now_ms) - start ))
has "unreachable: reason broker_unreachable" "$OUT" \
    '^\{"error":\{"code":504,"reason":"broker_unreachable",'
check "unreachable: exits within 2 s of a 300 ms deadline (${elapsed} ms)" \
    test "$elapsed" -lt 2000
check "unreachable: nothing on stderr" test ! -s "$T/stderr"
expect_exit 3 "unreachable via RESV_BROKER_FRONTEND exits 3" \
    env RESV_BROKER_FRONTEND="$dead" "$R" -t 300 stats
has "unreachable via environment: broker_unreachable" "$OUT" \
    '"reason":"broker_unreachable"'
expect_exit 3 "unreachable via RESV_CLIENT_TIMEOUT exits 3" \
    env RESV_BROKER_FRONTEND="$dead" RESV_CLIENT_TIMEOUT=200 "$R" ping

# --- With a broker ---------------------------------------------------------

# This broker runs without an internal key, so that the CLI can publish
# the events its journal commands read (test_badinput.sh checks that a
# broker with a key refuses that to clients).
unset RESV_BROKER_INTERNAL_KEY
if ! start_broker; then
    not_ok "resv-broker starts and answers ping"
    finish
fi
expect_exit 0 "ping exits 0" "$R" ping
has "ping prints pong" "$OUT" '^\{.*"pong":true.*\}$'
check "ping prints one line" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 1
expect_exit 0 "stats exits 0" "$R" stats
has "stats prints services" "$OUT" '^\{.*"services":\{'

# Where the endpoint comes from: -e, then the environment, then the file.
cat >"$T/good.cfg" <<EOF
broker
    frontend = "$RESV_BROKER_FRONTEND"
EOF
cat >"$T/dead.cfg" <<EOF
broker
    frontend = "$dead"
EOF
expect_exit 3 "-e wins over RESV_BROKER_FRONTEND" "$R" -e "$dead" -t 300 ping
expect_exit 0 "-e alone reaches the broker" env -u RESV_BROKER_FRONTEND \
    "$R" -c "$T/dead.cfg" -e "$RESV_BROKER_FRONTEND" ping
expect_exit 0 "broker/frontend from the config file" env \
    -u RESV_BROKER_FRONTEND "$R" -c "$T/good.cfg" ping
expect_exit 0 "RESV_BROKER_FRONTEND wins over the config file" \
    "$R" -c "$T/dead.cfg" ping
expect_exit 0 "global options after the command" "$R" ping -t 1000
# Twice: the last one counts, so that a wrapper's default can be
# overridden (resv -t 10000 as an alias, then -t 300 for one call).
expect_exit 3 "the last -t counts" "$R" -t 100000 -e "$dead" ping -t 300
expect_exit 0 "the last -e counts" "$R" -e "$dead" -e "$RESV_BROKER_FRONTEND" ping
# Between a group word and its subcommand, as anywhere else.
# (No availability worker here: the request goes, and is answered 503/504.)
expect_exit 3 "global options after a group word" "$R" resource -t 300 list
has "the request went out" "$OUT" '"code":50[34]'
expect_exit 2 "an unknown option there is a usage error" "$R" resource -x list

# Refused locally (an empty id): exit 1 with the error on stdout.
expect_exit 1 "empty ID is refused, exit 1" "$R" status ""
has "empty ID: 400 on stdout" "$OUT" '^\{"error":\{"code":400,'

# A service with no worker: 503 after the grace, exit 3.
start=$(now_ms)
expect_exit 3 "service with no worker exits 3" "$R" -t 30000 call nosuch m '{}'
has "no worker: 503 no_worker" "$OUT" '"code":503,"reason":"no_worker"'
check "no worker: at the grace, not at the deadline" \
    test $(( $(now_ms) - start )) -lt 20000
expect_exit 3 "reserve with no reservation worker exits 3" "$R" -t 2000 \
    reserve --customer c --resource r --date 2030-01-01
has "reserve with no worker: 503" "$OUT" '"code":503'

# The journal, through the broker's events service.
expect_exit 0 "events exits 0" "$R" events
has "events prints a page, with the newest seq and no next (not cut)" \
    "$OUT" '^\{"items":\[.*\],"last":[0-9]+\}$'
next=$(( $(printf '%s' "$OUT" | grep -o '"last":[0-9]*' | grep -o '[0-9]*$') + 1 ))
spawn follow "$R" events --follow --from "${next:-1}" --limit 2
follow_pid=$LAST_PID
spawn follow-typed "$R" events --follow --from "${next:-1}" --type cli.b \
    --limit 1
typed_pid=$LAST_PID
expect_exit 0 "publish two events" "$R" call events publish \
    '{"events":[{"id":"cli-e1","type":"cli.a"},{"id":"cli-e2","type":"cli.b"}]}'
follow_done () { ! kill -0 "$1" 2>/dev/null; }
# follow_ok NAME PID LOG ID...: the follower PID exits 0 having printed
# one line per ID, in order.
follow_ok () {
    local name=$1 pid=$2 log=$3 rc; shift 3
    if ! wait_for 10 follow_done "$pid"; then
        not_ok "$name ends: $(head -c 300 "$log")"
        return
    fi
    wait "$pid"; rc=$?
    check "$name exits 0" test "$rc" -eq 0
    check "$name prints $# lines" test "$(wc -l <"$log")" -eq $#
    local line=1 id
    for id in "$@"; do
        has "$name prints $id as line $line" "$(sed -n "${line}p" "$log")" \
            "^\\{.*\"id\":\"$id\".*\\}\$"
        line=$((line + 1))
    done
}
follow_ok "events --follow --from --limit 2" "$follow_pid" "$T/follow.log" \
    cli-e1 cli-e2
follow_ok "events --follow --type" "$typed_pid" "$T/follow-typed.log" cli-e2
# Without --from, following starts after the newest event.
spawn follow-new "$R" events --follow --limit 1
new_pid=$LAST_PID
sleep 1
expect_exit 0 "publish a third event" "$R" call events publish \
    '{"events":[{"id":"cli-e3","type":"cli.c"}]}'
follow_ok "events --follow without --from" "$new_pid" "$T/follow-new.log" \
    cli-e3
expect_exit 0 "events --follow --from replays the journal" "$R" events \
    --follow --from 1 --type cli. --limit 3
check "events --follow --from 1: three lines" \
    test "$(printf '%s\n' "$OUT" | wc -l)" -eq 3
has "events --follow --from 1: in journal order" \
    "$(printf '%s\n' "$OUT" | grep -o '"id":"cli-e[0-9]"' | tr -d '\n')" \
    '^"id":"cli-e1""id":"cli-e2""id":"cli-e3"$'
# A page that --limit filled is cut only when an event of its --type comes
# after it: cli-e2 is the last cli.b, so its page has no next.
expect_exit 0 "events --type --limit: a full page" "$R" events --from 1 \
    --type cli.b --limit 1
has "events --type --limit: a full page with none after has no next" \
    "$OUT" '^\{"items":\[\{[^]]*"id":"cli-e2".*\],"last":[0-9]+\}$'
expect_exit 0 "events --type --limit: a cut page" "$R" events --from 1 \
    --type cli. --limit 2
has "events --type --limit: a page with one of its type after has next" \
    "$OUT" '"id":"cli-e2".*\],"next":[0-9]+,"last":[0-9]+\}$'
# A follower whose reader went away ends as a write would end it (SIGPIPE),
# though no event comes to be written: resv events --follow | head -1.
timeout 10 "$R" events --follow | true
rc=${PIPESTATUS[0]}
check "events --follow ends when its reader is gone (exit $rc)" \
    test "$rc" -eq 141 -o "$rc" -eq 3
# So too while its reads fail (no broker at that endpoint), which it now
# makes again and again.
free_port nowhere
timeout 10 "$R" -e "tcp://127.0.0.1:$nowhere" -t 200 events --follow \
    --from 1 2>/dev/null | true
rc=${PIPESTATUS[0]}
check "events --follow with no broker ends when its reader is gone (exit $rc)" \
    test "$rc" -eq 141 -o "$rc" -eq 3
# And without --from, whose first read (of the newest seq) is made again
# too: it used to end at once, 504.
timeout 10 "$R" -e "tcp://127.0.0.1:$nowhere" -t 200 events --follow \
    2>"$T/follow-first.err" | true
rc=${PIPESTATUS[0]}
check "events --follow, no broker, no --from: ends with its reader (exit $rc)" \
    test "$rc" -eq 141
has "events --follow, no broker, no --from: reads again" \
    "$(cat "$T/follow-first.err")" "reading from seq 1 failed \\(504 "
# A type prefix longer than any type is refused, and the error says why.
expect_exit 1 "events --type of 65 bytes exits 1" "$R" events \
    --type "$(printf 'a%.0s' $(seq 65))"
has "events --type of 65 bytes: 400 naming the limit" "$OUT" \
    '"code":400,.*type \(a prefix of at most 64 bytes\)'
# A follower lives through a broker restart: its reads fail meanwhile (504
# after -t), a line on stderr says so, and once the broker is back it goes
# on from where it was, with nothing skipped or printed twice.
spawn follow-restart sh -c 'exec "$@" 2>>"$0"' "$T/follow-restart.err" \
    "$R" -t 300 events --follow --from 1 --type cli.r --limit 2
restart_pid=$LAST_PID
expect_exit 0 "publish an event before the restart" "$R" call events publish \
    '{"events":[{"id":"cli-r1","type":"cli.r"}]}'
check "the follower prints it" wait_for 10 grep -q cli-r1 "$T/follow-restart.log"
kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
sleep 1
check "broker back after the restart" start_broker
expect_exit 0 "publish an event after the restart" "$R" call events publish \
    '{"events":[{"id":"cli-r2","type":"cli.r"}]}'
follow_ok "events --follow through a broker restart" "$restart_pid" \
    "$T/follow-restart.log" cli-r1 cli-r2
has "the follower said its reads failed" "$(cat "$T/follow-restart.err")" \
    "reading from seq [0-9]+ failed \\(504 "
has "the follower said when it read again" "$(cat "$T/follow-restart.err")" \
    "reading again from seq [0-9]+"

# --- With the echo worker --------------------------------------------------

if [ -x "$BIN/resv-worker" ]; then
    start_worker echo
    # (Asks the broker again on every try, as lib.sh's wait_workers does.)
    echo_ready () { test "$(workers_of echo)" = 1; }
    check "echo worker registers" wait_for 10 echo_ready
    expect_exit 0 "call echo echo exits 0" "$R" call echo echo '{"a":1}'
    has "call echo echo round-trips the body" "$OUT" '^\{"a":1\}$'
    expect_exit 0 "call echo echo with quotes exits 0" "$R" call echo echo \
        '{"q":"it'\''s \"quoted\""}'
    has "quotes round-trip" "$OUT" '"q":"it'\''s \\"quoted\\""'
    expect_exit 1 "call echo nosuch exits 1 (400)" "$R" call echo nosuch
    has "unknown method: 400" "$OUT" '"code":400'
    expect_exit 3 "call echo fail exits 3 (500)" "$R" call echo fail
    has "fail: 500 on stdout" "$OUT" '^\{"error":\{"code":500,'
    expect_exit 3 "a slow call past its deadline exits 3 (504)" "$R" -t 300 \
        call echo sleep '{"ms":1500}'
    has "slow call: the broker's 504 deadline_exceeded" "$OUT" \
        '"code":504,"reason":"deadline_exceeded"'
else
    not_ok "bin/resv-worker exists, for the echo round trip"
fi

finish
