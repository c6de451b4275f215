#!/usr/bin/env bash
# tests/test_badinput.sh: bad input of every kind (spec 4.7), through the
# CLI, through 'resv call SERVICE METHOD JSON' (past the CLI's checks) and
# as raw ZeroMQ messages (tests/rawclient.py: NULs, invalid UTF-8, 200 kB
# fields, a message over the broker's limit, broken frames): impossible
# dates, zero, negative and non-numeric units and days, empty and huge
# strings, quotes, NULs, SQL, unknown ids and fields, illegal status moves.
# Each is refused with the right code (CLI usage errors exit 2), nothing is
# stored (resources, journal, holds and view unchanged) and no process
# crashes. Last, the requests that only services should make (hold,
# release, expire, void, authorize, events publish) are tried by a client.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in AVAILABILITY RESERVATION PAYMENT APPROVAL NOTIFICATION VIEW; do
    export RESV_WORKERS_${s}_COUNT=1
done
export RESV_BROKER_GRACE=300

start_resvd_or_finish

# Every process of the system, to find any that died or was restarted.
procs () { { broker_pid; for s in $DOMAIN_SERVICES; do pids_of "$s"; done; } |
           sort -n | tr '\n' ' '; }
PROCS=$(procs)

RAW=("$PY" "$TOP/tests/rawclient.py")
# raw_req SERVICE METHOD BODY: a well-formed request with BODY as raw bytes
# (see rawclient.py); prints the reply's status and body frames.
raw_req () {
    "${RAW[@]}" "$RESV_BROKER_FRONTEND" 5000 RESVC1 REQ "raw$RANDOM" "$1" "$2" \
        5000 "$3" | sed -n '4,5p'
}
# raw_refused CODE REASON NAME SERVICE METHOD BODY
raw_refused () {
    local out
    out=$(raw_req "$4" "$5" "$6")
    if [ "$(printf '%s\n' "$out" | head -n 1)" = "$1" ] &&
       error_is "$(printf '%s\n' "$out" | sed -n 2p)" "$1" "$2"; then
        ok "$3: $1${2:+ $2}"
    else
        not_ok "$3: wanted $1${2:+ $2}, got: $(printf '%s' "$out" | tr '\n' ' ' | head -c 300)"
    fi
}
# usage NAME CMD...: a CLI usage error: exit 2, nothing on stdout, help on
# stderr.
usage () {
    local name=$1; shift
    OUT=$("$@" 2>"$T/stderr"); local rc=$?
    if [ $rc = 2 ] && [ -z "$OUT" ] && grep -q '^usage: ' "$T/stderr"; then
        ok "$name: usage error (exit 2)"
    else
        not_ok "$name: wanted exit 2 and help on stderr, got exit $rc: $OUT $(head -c 200 "$T/stderr")"
    fi
}
# bad NAME CMD...: refused by the CLI (exit 2) or by the service (exit 1,
# 400): either is a clear refusal of bad input.
bad () {
    local name=$1; shift
    OUT=$("$@" 2>"$T/stderr"); local rc=$?
    if [ $rc = 2 ] && [ -z "$OUT" ]; then ok "$name: usage error (exit 2)"
    elif [ $rc = 1 ] && error_is "$OUT" 400; then ok "$name: 400"
    else not_ok "$name: wanted exit 2, or 1 with 400, got exit $rc: $(printf '%s' "$OUT" | head -c 300) $(head -c 200 "$T/stderr")"; fi
}
# call_bad NAME SERVICE METHOD JSON: 'resv call' is refused with 400.
call_bad () { refused 400 "" "$1" r call "$2" "$3" "$4"; }

# --- What must not change ----------------------------------------------------
RID=$(r resource add --name "Bistro" --owner ann --kind table --capacity 2 \
    --price 100 --approval manual --slots a,b | js 'd["id"]')
check "a resource to aim at" test -n "$RID"
P=$(r reserve --customer pat --resource "$RID" --date 2027-03-01 --slot a \
    --units 2 | js 'd["id"]')
check "a PENDING reservation of 2 units to aim at" test -n "$P"
X=$(r reserve --customer pat --resource "$RID" --date 2027-03-02 --slot a |
    js 'd["id"]')
expect_exit 0 "and a CANCELLED one" r cancel "$X" --customer pat
check "the view has both" wait_for 10 eval \
    'status_is "$P" PENDING authorized && status_is "$X" CANCELLED voided'
# snapshot FILE: resources, journal, holds and the view, as text.
snapshot () {
    {
        r resource list
        journal "$T/snap.json" && cat "$T/snap.json"
        echo
        r availability --resource "$RID" --date 2027-03-01 --days 3
        r list
        r call reservation get "{\"id\":\"$P\"}"
    } >"$1"
}
snapshot "$T/before"
check "the snapshot is whole" test "$(grep -c . "$T/before")" = 5

# --- CLI usage errors: exit 2 -----------------------------------------------
for v in 0 -1 abc 1.5 99999999999999999999 "" " 1"; do
    usage "reserve --units '$v'" r reserve --customer c --resource "$RID" \
        --date 2027-03-01 --slot a --units "$v"
done
for v in 0 -3 x 2.0 ""; do
    usage "reserve --days '$v'" r reserve --customer c --resource "$RID" \
        --date 2027-03-01 --slot a --days "$v"
done
usage "availability --days 0" r availability --resource "$RID" \
    --date 2027-03-01 --days 0
usage "reserve without --date" r reserve --customer c --resource "$RID"
usage "reserve with an unknown option" r reserve --customer c \
    --resource "$RID" --date 2027-03-01 --colour red
usage "resource add --capacity 0" r resource add --name n --owner o --capacity 0
usage "resource add --capacity -2" r resource add --name n --owner o --capacity -2
usage "resource add --price ten" r resource add --name n --owner o --price ten
usage "resource add --approval sometimes" r resource add --name n --owner o \
    --approval sometimes
usage "resource add without --owner" r resource add --name n
usage "resource update --capacity 0" r resource update "$RID" --owner ann \
    --capacity 0
# The CLI takes any whole number for these; the domain's limits
# (resv_proto.h) are the services', which answer 400 beyond them.
refused 400 bad_request "resource add --price 100000001" \
    r resource add --name n --owner o --price 100000001
refused 400 bad_request "resource add --capacity 1000001" \
    r resource add --name n --owner o --capacity 1000001
refused 400 bad_request "reserve --days 367" r reserve --customer c \
    --resource "$RID" --date 2027-03-01 --slot a --days 367
refused 400 bad_request "reserve --units 1000001" r reserve --customer c \
    --resource "$RID" --date 2027-03-01 --slot a --units 1000001
# ... and the help states those same limits (from resv_proto.h).
OUT=$(r resource add --help)
has "resource add --help: the capacity's limit" "$OUT" '--capacity N .* 1 to 1000000; default 1$'
has "resource add --help: the price's limit" "$OUT" '--price CENTS .* 0 to 100000000; default 0$'
OUT=$(r reserve --help)
has "reserve --help: the days' limit" "$OUT" '--days N .* 1 to 366; default 1$'
has "reserve --help: the units' limit" "$OUT" '--units N .* 1 to 1000000; default 1$'
OUT=$(r availability --help)
has "availability --help: the days' limit" "$OUT" '--days N .* 1 to 366; default 1$'
usage "approve without --owner" r approve "$P"
usage "cancel without --customer" r cancel "$P"
usage "list --limit -1" r list --limit -1
usage "events --from -1" r events --from -1
usage "call with JSON that is not JSON" r call reservation reserve "{'a':1}"
usage "call with a NUL in JSON (\\u0000)" r call availability resource.add \
    '{"name":"a\u0000b","owner":"o"}'

# --- Impossible dates: 400 -------------------------------------------------
for d in 2026-02-30 2026-13-01 2027-02-29 2027-04-31 2027-00-10 tomorrow \
         2027-1-5 "" "2027-03-05T10:00" " 2027-03-05" 1969-12-31 10000-01-01 \
         "2027-03-0'"; do
    bad "reserve --date '$d'" r reserve --customer c --resource "$RID" \
        --date "$d" --slot a
    bad "availability --date '$d'" r availability --resource "$RID" --date "$d"
done
# A date of the wrong length is refused as a date, not as a string.
for d in "2027-03-05 " "+2027-03-05" "2027-03-05T10:00:00Z"; do
    OUT=$(r reserve --customer c --resource "$RID" --date "$d" --slot a 2>&1)
    has "reserve --date '$d': the answer says what a date is" "$OUT" \
        'date must be a real date, YYYY-MM-DD'
    OUT=$(r availability --resource "$RID" --date "$d" 2>&1)
    has "availability --date '$d': the answer says what a date is" "$OUT" \
        'date must be a real date, YYYY-MM-DD'
done
call_bad "reserve with a numeric date" reservation reserve \
    "{\"customer\":\"c\",\"resource\":\"$RID\",\"date\":20270301,\"slot\":\"a\"}"
call_bad "reserve with a date object" reservation reserve \
    "{\"customer\":\"c\",\"resource\":\"$RID\",\"date\":{\"y\":2027},\"slot\":\"a\"}"
call_bad "a stay past 9999-12-31" reservation reserve \
    "{\"customer\":\"c\",\"resource\":\"$RID\",\"date\":\"9999-12-31\",\"days\":2,\"slot\":\"a\"}"

# --- Units and days through call: 400 ---------------------------------------
base="\"customer\":\"c\",\"resource\":\"$RID\",\"date\":\"2027-03-01\",\"slot\":\"a\""
for v in 0 -1 '"1"' 1.5 1e3 true '[1]' 1000001 9223372036854775807 \
         -9223372036854775808; do
    call_bad "reserve units $v" reservation reserve "{$base,\"units\":$v}"
done
for v in 0 -1 '"2"' 2.5 367 false; do
    call_bad "reserve days $v" reservation reserve "{$base,\"days\":$v}"
done
for v in 0 -1 '"1"' 367; do
    call_bad "availability days $v" availability availability \
        "{\"resource\":\"$RID\",\"date\":\"2027-03-01\",\"days\":$v}"
done

# --- Strings: empty, long, quotes, SQL, control characters --------------------
LONG=$(head -c 100000 /dev/zero | tr '\0' x)
bad "reserve --customer ''" r reserve --customer "" --resource "$RID" \
    --date 2027-03-01 --slot a
bad "reserve --customer with a quote" r reserve --customer 'bob"x' \
    --resource "$RID" --date 2027-03-01 --slot a
bad "reserve --customer with SQL" r reserve \
    --customer "x'); DROP TABLE resources;--" --resource "$RID" \
    --date 2027-03-01 --slot a
bad "reserve --customer of 100 kB" r reserve --customer "$LONG" \
    --resource "$RID" --date 2027-03-01 --slot a
bad "reserve --slot with SQL" r reserve --customer c --resource "$RID" \
    --date 2027-03-01 --slot "a' OR '1'='1"
bad "reserve --slot of 100 kB" r reserve --customer c --resource "$RID" \
    --date 2027-03-01 --slot "$LONG"
bad "reserve --request-id with SQL" r reserve --customer c --resource "$RID" \
    --date 2027-03-01 --slot a --request-id "k'; DELETE FROM reservations;--"
bad "resource add --name ''" r resource add --name "" --owner o
bad "resource add --name of 100 kB" r resource add --name "$LONG" --owner o
bad "resource add --name of 257 bytes" r resource add \
    --name "$(head -c 257 /dev/zero | tr '\0' n)" --owner o
bad "resource add --name with a newline" r resource add --name "$(printf 'a\nb')" \
    --owner o
bad "resource add --name with a tab" r resource add --name "$(printf 'a\tb')" \
    --owner o
bad "resource add --owner with SQL" r resource add --name n \
    --owner "o'); DROP TABLE resources;--"
bad "resource add --kind ''" r resource add --name n --owner o --kind ""
bad "resource add --slots with a 100 kB label" r resource add --name n \
    --owner o --slots "a,$LONG"
bad "decline with a 100 kB reason" r decline "$P" --owner ann --reason "$LONG"
check "the refused decline left the reservation PENDING" \
    test "$(cmd_status "$P")" = PENDING
call_bad "resource.add name with \\u0001" availability resource.add \
    '{"name":"a\u0001b","owner":"o"}'
call_bad "resource.add name as a number" availability resource.add \
    '{"name":5,"owner":"o"}'
call_bad "resource.add capacity \"2\"" availability resource.add \
    '{"name":"n","owner":"o","capacity":"2"}'
call_bad "resource.add capacity 0" availability resource.add \
    '{"name":"n","owner":"o","capacity":0}'
call_bad "resource.add capacity 1.5" availability resource.add \
    '{"name":"n","owner":"o","capacity":1.5}'
call_bad "resource.add price -1" availability resource.add \
    '{"name":"n","owner":"o","price":-1}'
call_bad "resource.add slots as a string" availability resource.add \
    '{"name":"n","owner":"o","slots":"a,b"}'
call_bad "resource.add slots []" availability resource.add \
    '{"name":"n","owner":"o","slots":[]}'
call_bad "resource.add slots [\"\"]" availability resource.add \
    '{"name":"n","owner":"o","slots":[""]}'
call_bad "resource.add slots [1]" availability resource.add \
    '{"name":"n","owner":"o","slots":[1]}'
call_bad "resource.add slots twice the same" availability resource.add \
    '{"name":"n","owner":"o","slots":["a","a"]}'
call_bad "resource.add 33 slots" availability resource.add \
    "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[$(seq -f '"s%g"' 1 33 | paste -sd,)]}"
call_bad "resource.update capacity -1" availability resource.update \
    "{\"id\":\"$RID\",\"owner\":\"ann\",\"capacity\":-1}"

# --- Missing and unknown fields, bodies that are not objects ----------------
call_bad "reserve without a date" reservation reserve \
    "{\"customer\":\"c\",\"resource\":\"$RID\"}"
call_bad "reserve without a customer" reservation reserve \
    "{\"resource\":\"$RID\",\"date\":\"2027-03-01\"}"
call_bad "reserve with an empty body" reservation reserve '{}'
call_bad "reserve with an unknown field" reservation reserve \
    "{$base,\"colour\":\"red\"}"
call_bad "reserve with a status field" reservation reserve \
    "{$base,\"status\":\"CONFIRMED\"}"
call_bad "reserve with an amount field" reservation reserve \
    "{$base,\"amount\":0}"
call_bad "resource.add with an unknown field" availability resource.add \
    '{"name":"n","owner":"o","colour":"red"}'
call_bad "resource.add with an id field" availability resource.add \
    "{\"name\":\"n\",\"owner\":\"o\",\"id\":\"$RID\"}"
call_bad "cancel with an unknown field" reservation cancel \
    "{\"id\":\"$P\",\"customer\":\"pat\",\"force\":true}"
call_bad "view list with status WHATEVER" view list '{"status":"WHATEVER"}'
call_bad "view list with limit 0" view list '{"limit":0}'
call_bad "view list with limit \"5\"" view list '{"limit":"5"}'
call_bad "events read with from -1" events read '{"from":-1}'
for body in '[1,2]' '"text"' 42 null true; do
    call_bad "reserve with the body $body" reservation reserve "$body"
done
refused 400 unknown_method "an unknown method" r call reservation frobnicate '{}'
refused 400 unknown_method "an empty method" r call availability '' '{}'
expect_exit 3 "a service nobody runs: 503 after the grace" \
    r call nosuch thing '{}'
has "with 503 no_worker" "$OUT" '"code":503,"reason":"no_worker"'

# --- Unknown ids: 404 ------------------------------------------------------
refused 404 not_found "status of an unknown reservation" r status rnosuch
refused 404 not_found "history of an unknown reservation" r history rnosuch
refused 404 not_found "cancel of an unknown reservation" \
    r cancel rnosuch --customer pat
refused 404 not_found "approve of an unknown reservation" \
    r approve rnosuch --owner ann
refused 404 not_found "decline of an unknown reservation" \
    r decline rnosuch --owner ann
refused 404 not_found "get of an unknown reservation" \
    r call reservation get '{"id":"rnosuch"}'
refused 404 not_found "show of an unknown resource" r resource show res-nosuch
refused 404 not_found "update of an unknown resource" \
    r resource update res-nosuch --owner ann --name x
refused 404 not_found "remove of an unknown resource" \
    r resource remove res-nosuch --owner ann
refused 404 not_found "availability of an unknown resource" \
    r availability --resource res-nosuch --date 2027-03-01
refused 404 not_found "reserve of an unknown resource" \
    r reserve --customer c --resource res-nosuch --date 2027-03-01
bad "show of an id with SQL (malformed id: 400)" \
    r resource show "x'); DROP TABLE resources;--"
OUT=$(r status "r\"1'; --"); rc=$?
check "status of an id with quotes and SQL: exit 1, 400 or 404" eval \
    '[ $rc = 1 ] && { error_is "$OUT" 400 || error_is "$OUT" 404; }'

# --- Illegal moves: 403, 409 ------------------------------------------------
refused 409 conflict "approve of a cancelled reservation" r approve "$X" --owner ann
refused 409 conflict "decline of a cancelled reservation" r decline "$X" --owner ann
refused 403 forbidden "cancel by another customer" r cancel "$P" --customer eve
refused 403 forbidden "approve by another owner" r approve "$P" --owner eve
refused 403 forbidden "update by another owner" \
    r resource update "$RID" --owner eve --capacity 5
refused 409 conflict "capacity 1, below the 2 units held" \
    r resource update "$RID" --owner ann --capacity 1
refused 409 conflict "remove with a PENDING reservation" \
    r resource remove "$RID" --owner ann
refused 400 "" "reserve of a slot the resource lacks" \
    r reserve --customer c --resource "$RID" --date 2027-03-01 --slot c

# --- Raw messages: what the CLI cannot send -----------------------------------
raw_refused 400 malformed "a NUL as \\u0000 in a JSON string" \
    availability resource.add '{"name":"a\u0000b","owner":"o"}'
raw_refused 400 malformed "a raw NUL byte in the body" \
    availability resource.add '{"name":"a\x00b","owner":"o"}'
raw_refused 400 malformed "invalid UTF-8 in the body" \
    availability resource.add '{"name":"a\xff\xfeb","owner":"o"}'
raw_refused 400 malformed "a body that is not JSON" \
    reservation reserve "{customer: c}"
raw_refused 400 malformed "a key given twice" reservation reserve \
    "{\"customer\":\"dup\",\"resource\":\"$RID\",\"date\":\"2027-03-01\",\"slot\":\"a\",\"units\":2,\"units\":1}"
raw_refused 400 malformed "a key given twice, to the broker" \
    events read '{"from":1,"from":2}'
raw_refused 400 malformed "a body that is not JSON, to the broker" \
    events read '{from: 1}'
"$PY" -c 'import sys
sys.stdout.write("{\"customer\":\"" + "c" * 200000 + "\",\"resource\":\"%s\",\"date\":\"2027-03-01\",\"slot\":\"a\"}" % sys.argv[1])' \
    "$RID" >"$T/big-customer.json"
raw_refused 400 bad_request "a 200 kB customer" reservation reserve \
    "@$T/big-customer.json"
"$PY" -c 'import sys
sys.stdout.write("{\"name\":\"" + "n" * 200000 + "\",\"owner\":\"o\"}")' \
    >"$T/big-name.json"
raw_refused 400 bad_request "a 200 kB name" availability resource.add \
    "@$T/big-name.json"
"$PY" -c 'import sys
sys.stdout.write("{\"name\":\"" + "n" * 2000000 + "\",\"owner\":\"o\"}")' \
    >"$T/huge.json"
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 5000 RESVC1 REQ huge1 availability \
    resource.add 5000 "@$T/huge.json")
# Spec 4.7: oversized messages get a clear 400 (not a closed connection,
# nor a client left waiting for its deadline).
if [ "$(printf '%s\n' "$OUT" | sed -n 4p)" = 400 ]; then
    ok "a 2 MB message (over broker/max_message) gets a clear 400"
else
    not_ok "a 2 MB message (over broker/max_message) gets a clear 400: got '$(printf '%s' "$OUT" | tr '\n' ' ' | head -c 200)'"
fi
# Over four times max_message too, up to the 16 MiB libresv may send.
"$PY" -c 'import sys
sys.stdout.write("{\"name\":\"" + "n" * 6000000 + "\",\"owner\":\"o\"}")' \
    >"$T/huger.json"
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 5000 RESVC1 REQ huge2 availability \
    resource.add 5000 "@$T/huger.json")
if [ "$(printf '%s\n' "$OUT" | sed -n 4p)" = 400 ] &&
   printf '%s' "$OUT" | grep -q '"reason":"too_large"'; then
    ok "a 6 MB message (over four times broker/max_message) gets 400 too_large"
else
    not_ok "a 6 MB message (over four times broker/max_message) gets 400 too_large: got '$(printf '%s' "$OUT" | tr '\n' ' ' | head -c 200)'"
fi
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 3000 RESVC1 REQ short1 availability)
has "too few frames: 400 malformed" "$OUT" '"reason":"malformed"'
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 3000 RESVC1 REQ t1 availability \
    resource.list abc '{}')
has "a timeout that is not a number: 400 malformed" "$OUT" '"reason":"malformed"'
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 3000 RESVC1 REQ t2 'AV"ail' \
    resource.list 1000 '{}')
has "a service name with a quote: 400 malformed" "$OUT" '"reason":"malformed"'
# An event that jansson reads alone but not inside a page of the journal
# (2047 levels), published as a worker would, with the internal key: it
# is refused, and every page still reads (the snapshot below). It was
# journaled, and every read of its page failed after.
"$PY" -c 'import sys
sys.stdout.write("{\"events\":[{\"id\":\"deep\",\"type\":\"deep\",\"data\":"
                 + "{\"k\":" * 2045 + "{}" + "}" * 2045 + "}]}")' >"$T/deep.json"
OUT=$("${RAW[@]}" "$RESV_BROKER_FRONTEND" 5000 RESVC1 REQ deep1 events publish \
    5000 "@$T/deep.json" "$RESV_BROKER_INTERNAL_KEY")
if [ "$(printf '%s\n' "$OUT" | sed -n 4p)" = 400 ]; then
    ok "an event of 2047 levels, published with the internal key: 400"
else
    not_ok "an event of 2047 levels, published with the internal key: 400: got '$(printf '%s' "$OUT" | tr '\n' ' ' | head -c 200)'"
fi
# Garbage that names no request: dropped, the broker goes on.
"${RAW[@]}" "$RESV_BROKER_FRONTEND" 1000 GARBAGE >/dev/null
"${RAW[@]}" "$RESV_BROKER_FRONTEND" 1000 RESVC1 FOO x y z 1 '{}' >/dev/null
"${RAW[@]}" "$RESV_BROKER_FRONTEND" 1000 RESVC1 REQ "" availability \
    resource.list 1000 '{}' >/dev/null
"${RAW[@]}" "$RESV_BROKER_FRONTEND" 1000 "$(printf '\x01\x02')" >/dev/null
expect_exit 0 "the broker still answers after the garbage" r ping

# --- Nothing changed, nothing crashed -------------------------------------------
snapshot "$T/after"
check "resources, journal, holds, view and the reservation are unchanged" \
    cmp -s "$T/before" "$T/after"
diff "$T/before" "$T/after" | head -c 600 | sed 's/^/# /'
expect_exit 0 "ping" r ping
for s in $DOMAIN_SERVICES; do
    check "the broker counts 1 $s worker" counts "$s" 1
done
check "no process died or was restarted" test "$(procs)" = "$PROCS"
check "resvd logged no death" eval '! grep -E "pid [0-9]+, (was killed|exited)" "$T/resvd.log"'
expect_exit 0 "the system still works: a good reserve" \
    r reserve --customer pat --resource "$RID" --date 2027-03-01 --slot b
GOOD=$(printf '%s' "$OUT" | js 'd["id"]')

# --- Free text is data, never code -----------------------------------------------
SQL="x'); DROP TABLE resources;--"
expect_exit 0 "a resource named with SQL is just a name" \
    r resource add --name "$SQL" --owner ann
SQLID=$(printf '%s' "$OUT" | js 'd["id"]')
check "its name comes back byte for byte" \
    test "$(r resource show "$SQLID" | js 'd["name"]')" = "$SQL"
QUOTED="Ann's \"Bistro\" \\ café"
expect_exit 0 "a name with quotes, a backslash and UTF-8" \
    r resource add --name "$QUOTED" --owner ann
check "comes back byte for byte" \
    test "$(r resource show "$(printf '%s' "$OUT" | js 'd["id"]')" | js 'd["name"]')" = "$QUOTED"
check "the resources table is still there, with all three" \
    test "$(r resource list --owner ann | js 'len(d["items"])')" = 3

# --- Requests only services should make ---------------------------------------------
# The saga's inner steps are methods of the services too. A client that
# calls them directly must be refused (4xx), or it could hold capacity
# with no reservation, free a live reservation's hold (then overbook),
# expire or void what is not its own, or forge events in the journal.
client_refused () {
    local name=$1; shift
    OUT=$("$@" 2>&1); local rc=$?
    if [ $rc = 1 ] && error_is "$OUT" '4[0-9][0-9]'; then ok "$name: refused"
    else not_ok "$name: wanted a 4xx refusal, got exit $rc: $(printf '%s' "$OUT" | head -c 250)"; fi
}
HELD=$(held "$RID" 2027-03-01 a)
check "P holds both units of slot a on 2027-03-01 ($HELD)" test "$HELD" = 2
client_refused "a client's availability release of a live reservation" \
    r call availability release "{\"reservation\":\"$P\"}"
check "P's unit is still held ($HELD)" test "$(held "$RID" 2027-03-01 a)" = "$HELD"
client_refused "a client's availability hold for no reservation" \
    r call availability hold "{\"reservation\":\"rforged\",\"resource\":\"$RID\",\"date\":\"2027-03-05\",\"days\":1,\"slot\":\"a\",\"units\":2}"
check "nothing held on 2027-03-05" test "$(held "$RID" 2027-03-05 a)" = 0
client_refused "a client's payment authorize for no reservation" \
    r call payment authorize '{"reservation":"rforged","customer":"pat","amount":5}'
client_refused "a client's payment void of a live reservation" \
    r call payment void "{\"reservation\":\"$P\"}"
client_refused "a client's reservation expire of a PENDING reservation" \
    r call reservation expire "{\"id\":\"$P\"}"
check "P is still PENDING on the command side" test "$(cmd_status "$P")" = PENDING
client_refused "a client's forged approval.approved in the journal" \
    r call events publish "{\"events\":[{\"id\":\"forged-$GOOD\",\"type\":\"approval.approved\",\"at\":\"2027-01-01T00:00:00.000Z\",\"reservation\":\"$GOOD\",\"correlation_id\":\"$GOOD\",\"data\":{\"owner\":\"mallory\",\"auto\":false}}]}"
sleep 1
check "the forged approval confirmed nothing (still PENDING)" \
    test "$(cmd_status "$GOOD")" = PENDING

finish
