#!/usr/bin/env bash
# tests/test_guarantees.sh: the guarantees of spec section 4 with real
# processes under resvd: no overbooking under a race of 40 clients,
# idempotent reserve / approve / cancel (one after the other and at once),
# consumers that were down (approval, notification, view scaled to 0)
# catching up exactly once, and kill -9 of workers and of the broker during
# a load of reserves: no duplicate, no overbooking, no gap in the journal,
# and a view that ends equal to the command side.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

export RESV_WORKERS_AVAILABILITY_COUNT=3
export RESV_WORKERS_RESERVATION_COUNT=3
export RESV_WORKERS_PAYMENT_COUNT=2
export RESV_WORKERS_APPROVAL_COUNT=1
export RESV_WORKERS_NOTIFICATION_COUNT=1
export RESV_WORKERS_VIEW_COUNT=1
export RESV_RESVD_RESTART_MIN=100
# A service with no worker answers 503 after 300 ms rather than 1 s.
export RESV_BROKER_GRACE=300
# Each authorization takes 20 ms, so that the kills below find reserves in
# the middle of their saga.
export RESV_PAYMENT_LATENCY=20

start_resvd_or_finish

add () { r resource add "$@" | js 'd["id"]'; }

# count_events FILE TYPE ID: events of TYPE about reservation ID in FILE.
count_events () {
    jq_file "$1" "len([e for e in d if e['type'] == '$2' and e.get('reservation') == '$3'])"
}
# counts_are ID "TYPE=N ...": each TYPE has N events about ID in the journal.
counts_are () {
    journal "$T/j.json" || return 1
    local pair
    for pair in $2; do
        [ "$(count_events "$T/j.json" "${pair%=*}" "$1")" = "${pair#*=}" ] ||
            return 1
    done
}

# === 1. Race: 40 clients for the last 3 units ==========================
echo "# section 1 at ${SECONDS} s"
RACE=$(add --name "Last seats" --owner ann --kind table --capacity 5 \
    --approval auto)
check "a resource of capacity 5" test -n "$RACE"
expect_exit 0 "2 of the 5 units are taken first" r reserve --customer early \
    --resource "$RACE" --date 2027-08-01 --units 2
mkdir -p "$T/race"
for i in $(seq 1 40); do
    "$BIN/resv" -t 30000 reserve --customer "racer$i" --resource "$RACE" \
        --date 2027-08-01 >"$T/race/$i.out" 2>"$T/race/$i.err" &
    echo $! >"$T/race/$i.pid"
done
for i in $(seq 1 40); do
    wait "$(cat "$T/race/$i.pid")"; echo $? >"$T/race/$i.rc"
done
outcomes "$T/race" >"$T/race/outcomes"
WON=$(grep -c ' ok ' "$T/race/outcomes")
LOST=$(grep -c ' err 409 no_capacity$' "$T/race/outcomes")
ODD=$(grep -v -e ' ok ' -e ' err 409 no_capacity$' "$T/race/outcomes" |
      head -n 3 | tr '\n' ';')
check "race: exactly 3 of 40 clients succeed (got $WON)" test "$WON" = 3
check "race: the 37 others get 409 no_capacity, exit 1 (got $LOST)${ODD:+: $ODD}" \
    test "$LOST" = 37
check "race: held == capacity == 5" \
    test "$(r availability --resource "$RACE" --date 2027-08-01 |
            js '(d["days"][0]["held"], d["days"][0]["capacity"])')" = "[5, 5]"
journal "$T/j.json"
check "race: 4 reservation.requested for the resource (1 + 3)" \
    test "$(jq_file "$T/j.json" "len([e for e in d if e['type'] == 'reservation.requested' and e['data']['reservation']['resource'] == '$RACE'])")" = 4
check "race: 4 payment authorizations, no more" \
    test "$(jq_file "$T/j.json" "len([e for e in d if e['type'] == 'payment.authorized' and e['data']['customer'].startswith(('racer', 'early'))])")" = 4

# === 2. Idempotent retries =============================================
echo "# section 2 at ${SECONDS} s"
IDEM=$(add --name "Idem" --owner ann --kind room --capacity 10 --price 100 \
    --approval manual)
check "a manual resource of capacity 10" test -n "$IDEM"
expect_exit 0 "reserve with request id k1" r reserve --customer pat \
    --resource "$IDEM" --date 2027-08-02 --units 2 --request-id k1
K1=$(printf '%s' "$OUT" | js 'd["id"]')
expect_exit 0 "the same reserve again" r reserve --customer pat \
    --resource "$IDEM" --date 2027-08-02 --units 2 --request-id k1
check "the retry returns the same reservation" \
    test "$(printf '%s' "$OUT" | js 'd["id"]')" = "$K1"
check "the retry holds nothing more (held 2)" \
    test "$(held "$IDEM" 2027-08-02)" = 2
mkdir -p "$T/idem"
for i in 1 2 3 4 5 6; do
    "$BIN/resv" -t 30000 reserve --customer pat --resource "$IDEM" \
        --date 2027-08-02 --request-id k2 >"$T/idem/$i.out" 2>&1 &
    echo $! >"$T/idem/$i.pid"
done
for i in 1 2 3 4 5 6; do
    wait "$(cat "$T/idem/$i.pid")"; echo $? >"$T/idem/$i.rc"
done
outcomes "$T/idem" >"$T/idem/outcomes"
BAD=$(grep -v ' ok ' "$T/idem/outcomes" | head -n 3 | tr '\n' ';')
check "6 concurrent reserves with request id k2 all succeed${BAD:+: $BAD}" \
    test -z "$BAD"
K2=$(awk '{print $3}' "$T/idem/outcomes" | sort -u)
check "and all return one and the same reservation" \
    test "$(grep -c ' ok ' "$T/idem/outcomes") $(printf '%s\n' "$K2" | grep -c .)" = "6 1"
check "held once: 2 (k1) + 1 (k2) = 3" test "$(held "$IDEM" 2027-08-02)" = 3
check "one reservation.requested and one payment.authorized for k1 and for k2" \
    eval 'counts_are "$K1" "reservation.requested=1 payment.authorized=1" &&
          counts_are "$K2" "reservation.requested=1 payment.authorized=1"'
# The same key with other parameters is still the same request: it must not
# make a second reservation or hold more. It may answer k1's reservation
# (201) or refuse (a 4xx, exit 1; doc/saga.md says 409), nothing else.
r reserve --customer pat --resource "$IDEM" --date 2027-08-02 --units 5 \
    --request-id k1 >"$T/k1b.out"
K1B_RC=$?
k1b_answer () {
    case $K1B_RC in
        0) test "$(js 'd["id"]' <"$T/k1b.out")" = "$K1" ;;
        1) error_is "$(cat "$T/k1b.out")" '4[0-9][0-9]' ;;
        *) false ;;
    esac
}
K1B="exit $K1B_RC: $(head -c 160 "$T/k1b.out")"
check "k1 with other units: k1's reservation or a 4xx ($K1B)" k1b_answer
check "k1 with other units: no new reservation, nothing more held" \
    eval 'test "$(js "d.get(\"id\", \"$K1\")" <"$T/k1b.out")" = "$K1" &&
          test "$(held "$IDEM" 2027-08-02)" = 3'

expect_exit 0 "approve k1" r approve "$K1" --owner ann
expect_exit 0 "approve k1 again: 200" r approve "$K1" --owner ann
has "the second approve answers approved" "$OUT" '"decision":"approved"'
# three_at_once TAG ARGS...: runs resv ARGS three times at once; sets BAD
# to the outputs of those that failed.
three_at_once () {
    local tag=$1 i pids=()
    shift
    for i in 1 2 3; do
        "$BIN/resv" -t 30000 "$@" >"$T/idem/$tag$i.out" 2>&1 &
        pids+=($!)
    done
    BAD=""
    for i in 1 2 3; do
        wait "${pids[$((i - 1))]}" || BAD="$BAD [$(cat "$T/idem/$tag$i.out")]"
    done
}
three_at_once a approve "$K2" --owner ann
check "3 concurrent approves of k2: all 200${BAD:+:$BAD}" test -z "$BAD"
check "k1 and k2 are CONFIRMED and captured" eval \
    'wait_for 15 status_is "$K1" CONFIRMED captured &&
     wait_for 15 status_is "$K2" CONFIRMED captured'
check "one approval.approved, one confirmed, one capture for k1" \
    wait_for 5 counts_are "$K1" \
        "approval.approved=1 reservation.confirmed=1 payment.captured=1"
check "one approval.approved, one confirmed, one capture for k2" \
    counts_are "$K2" \
        "approval.approved=1 reservation.confirmed=1 payment.captured=1"

expect_exit 0 "cancel k1" r cancel "$K1" --customer pat
expect_exit 0 "cancel k1 again: 200" r cancel "$K1" --customer pat
has "the second cancel answers CANCELLED" "$OUT" '"status":"CANCELLED"'
three_at_once c cancel "$K2" --customer pat
check "3 concurrent cancels of k2: all 200${BAD:+:$BAD}" test -z "$BAD"
check "k1 and k2 are CANCELLED and refunded" eval \
    'wait_for 15 status_is "$K1" CANCELLED refunded &&
     wait_for 15 status_is "$K2" CANCELLED refunded'
check "one cancellation and one refund for k1" \
    wait_for 5 counts_are "$K1" "reservation.cancelled=1 payment.refunded=1"
check "one cancellation and one refund for k2" \
    counts_are "$K2" "reservation.cancelled=1 payment.refunded=1"
check "everything released (held 0)" \
    wait_for 10 eval 'test "$(held "$IDEM" 2027-08-02)" = 0'
check "pat: 2 confirmed, 2 cancelled, 2 refunded notifications, no more" \
    wait_for 10 eval 'test "$(notes pat reservation.confirmed) $(notes pat reservation.cancelled) $(notes pat payment.refunded) $(notes pat)" = "2 2 2 6"'
# CONFIRMED -> CANCELLED is final: an approve now is an illegal move.
refused 409 conflict "approve of k1 after its cancel" \
    r approve "$K1" --owner ann
expect_exit 0 "reserve k1 retried after the cancel answers" \
    r reserve --customer pat --resource "$IDEM" --date 2027-08-02 --units 2 \
    --request-id k1
check "with the same, cancelled reservation, holding nothing" eval \
    'test "$(printf "%s" "$OUT" | js "d[\"id\"], d[\"status\"]")" = "[\"$K1\", \"CANCELLED\"]" &&
     test "$(held "$IDEM" 2027-08-02)" = 0'

# === 3. Consumers down: reservations still accepted, then caught up ====
echo "# section 3 at ${SECONDS} s"
CATCH=$(add --name "Catch-up" --owner ann --kind storage --capacity 100 \
    --price 50 --approval auto)
for s in approval notification view; do
    expect_exit 0 "resv scale $s 0" r scale "$s" 0
done
check "approval, notification and view have no worker" eval \
    'wait_count approval 0 && wait_count notification 0 && wait_count view 0'
mkdir -p "$T/catch"
for i in $(seq 1 30); do
    "$BIN/resv" -t 30000 reserve --customer "cu$i" --resource "$CATCH" \
        --date 2027-08-03 --request-id "cu-$i" >"$T/catch/$i.out" 2>&1 &
    echo $! >"$T/catch/$i.pid"
    if [ $((i % 10)) = 0 ]; then
        for j in $(seq $((i - 9)) "$i"); do
            wait "$(cat "$T/catch/$j.pid")"; echo $? >"$T/catch/$j.rc"
        done
    fi
done
outcomes "$T/catch" >"$T/catch/outcomes"
ACCEPTED=$(grep -c ' ok [^ ]* PENDING$' "$T/catch/outcomes")
awk '{print $3}' "$T/catch/outcomes" >"$T/catch/ids"
check "all 30 reserves accepted (201, PENDING), consumers down ($ACCEPTED)" \
    test "$ACCEPTED" = 30
check "30 distinct reservation ids" test "$(sort -u "$T/catch/ids" | grep -c .)" = 30
check "held 30" test "$(held "$CATCH" 2027-08-03)" = 30
expect_exit 3 "status answers 503 while the view is down" \
    r -t 2000 status "$(head -n 1 "$T/catch/ids")"
sleep 1
check "still PENDING on the command side (no approval ran)" \
    test "$(cmd_status "$(head -n 1 "$T/catch/ids")")" = PENDING
for s in approval notification view; do
    expect_exit 0 "resv scale $s 1" r scale "$s" 1
done
check "they come back" eval \
    'wait_count approval 1 && wait_count notification 1 && wait_count view 1'
confirmed_30 () {
    [ "$(r list --resource "$CATCH" --status CONFIRMED | js 'len(d["items"])')" = 30 ]
}
check "all 30 reach CONFIRMED in the view" wait_for 30 confirmed_30
CUSTOMERS=$(seq -f 'cu%g' 1 30)
# all_notified: a line for each of the 30, none without a notification.
# shellcheck disable=SC2086
all_notified () {
    [ "$(kinds_of $CUSTOMERS | grep -vc ' 0 -$\| ? -$')" = 30 ]
}
check "every customer gets a notification" wait_for 20 all_notified
sleep 1
# shellcheck disable=SC2086
PER=$(kinds_of $CUSTOMERS | awk '{print $2, $3}' | sort | uniq -c | sed 's/^ *//')
check "each is notified exactly once, of the confirmation ($PER)" \
    test "$PER" = "30 1 reservation.confirmed"
r list --resource "$CATCH" | js '"\n".join(sorted(x["id"] for x in d["items"]))' \
    >"$T/catch/listed"
check "resv list shows each reservation exactly once" \
    test "$(sort "$T/catch/ids")" = "$(cat "$T/catch/listed")"
check "every payment captured" test "$(r list --resource "$CATCH" |
    js 'sorted(set(x["payment"]["status"] for x in d["items"]))')" = '["captured"]'
# And in the journal, each of the 30 has exactly one event of each kind of
# its flow, however the consumers caught up.
journal "$T/catch/j.json"
IDS=$(tr '\n' ' ' <"$T/catch/ids")
KINDS=$(jq_file "$T/catch/j.json" "sorted(set(
    (t, sum(1 for e in d if e['type'] == t and e.get('reservation') == r))
    for r in '$IDS'.split() for t in ('reservation.requested',
        'payment.authorized', 'approval.approved', 'reservation.confirmed',
        'payment.captured', 'notification.sent')))")
check "each has one event of each kind in the journal ($KINDS)" \
    test "$KINDS" = '[["approval.approved", 1], ["notification.sent", 1], ["payment.authorized", 1], ["payment.captured", 1], ["reservation.confirmed", 1], ["reservation.requested", 1]]'

# === 4. kill -9 of workers and of the broker under load ================
echo "# section 4 at ${SECONDS} s"
CR1=$(add --name "Crash auto" --owner ann --kind car --capacity 10 \
    --price 1000 --approval auto)
CR2=$(add --name "Crash manual" --owner ann --kind room --capacity 10 \
    --price 1000 --approval manual)
check "two resources of capacity 10" test -n "$CR1" -a -n "$CR2"
N=60
# args_of I: the reserve of request I (fixed: a retry repeats it exactly).
args_of () {
    local i=$1 res=$CR1 days=1 units=1
    [ $((i % 2)) = 0 ] && res=$CR2
    [ $((i % 3)) = 0 ] && days=2
    [ $((i % 4)) = 0 ] && units=2
    echo --customer "kc$i" --resource "$res" --date 2027-09-01 --days $days \
         --units $units --request-id "crash-$i"
}
mkdir -p "$T/crash/first" "$T/crash/final"
load () {
    local i
    for i in $(seq 1 $N); do
        # shellcheck disable=SC2046
        ( "$BIN/resv" -t 4000 reserve $(args_of "$i") \
            >"$T/crash/first/$i.out" 2>&1
          echo $? >"$T/crash/first/$i.rc" ) &
        [ $((i % 6)) = 0 ] && { wait; sleep 0.1; }
    done
    wait
}
load &
LOAD=$!
# The kills made (KILLS) and those planned below: 6 workers and the broker.
KILLS=0
PLANNED=7
answered () { local f n=0; for f in "$T"/crash/first/*.rc; do [ -e "$f" ] && n=$((n + 1)); done; echo $n; }
kill_one () {   # kill_one SERVICE: kill -9 of one of resvd's SERVICE workers
    local pid
    pid=$(pids_of "$1" | head -n 1)
    if [ -z "$pid" ]; then
        not_ok "a $1 worker of resvd is found, to kill ($(answered) answered)"
        return 1
    fi
    kill -KILL "$pid" && KILLS=$((KILLS + 1)) &&
        echo "# killed $1 worker $pid ($(answered) of $N reserves answered)"
}
sleep 0.4; kill_one reservation
sleep 0.4; kill_one availability
sleep 0.4; kill_one payment
sleep 0.3; kill_one notification
journal "$T/before-broker-kill.json"
BROKER=$(broker_pid)
if [ -z "$BROKER" ]; then
    not_ok "resvd's broker is found, to kill ($(answered) answered)"
elif kill -KILL "$BROKER"; then
    KILLS=$((KILLS + 1))
    echo "# killed the broker $BROKER ($(answered) of $N reserves answered)"
fi
sleep 0.5; kill_one reservation
sleep 0.3; kill_one view
wait "$LOAD"
check "all $PLANNED planned kills were made ($KILLS)" \
    test "$KILLS" = "$PLANNED"
broker_back () {
    local p
    p=$(broker_pid)
    [ -n "$p" ] && [ "$p" != "$BROKER" ]
}
check "resvd restarted the broker" wait_for 15 broker_back
for s in $DOMAIN_SERVICES; do
    var=RESV_WORKERS_${s^^}_COUNT
    check "the broker counts ${!var} $s workers again" wait_count "$s" "${!var}" 20
done
outcomes "$T/crash/first" >"$T/crash/first.outcomes"
FIRST_ODD=$(grep -vE ' ok | err (409 no_capacity|503 [a-z_]+|504 [a-z_]+)$' "$T/crash/first.outcomes")
check "first tries under the kills: 201, 409 or a clear 503/504, nothing else${FIRST_ODD:+: $(printf '%s' "$FIRST_ODD" | head -n 3 | tr '\n' ';')}" \
    test -z "$FIRST_ODD"
echo "# first tries: $(awk '{print $2, $3}' "$T/crash/first.outcomes" |
    sed 's/^ok .*/ok/' | sort | uniq -c | tr -s ' \n' ' ')"

# Retry every request id until it has a final answer (201 or 409).
for i in $(seq 1 $N); do
    for _ in 1 2 3 4; do
        # shellcheck disable=SC2046
        "$BIN/resv" -t 10000 reserve $(args_of "$i") >"$T/crash/final/$i.out" 2>&1
        rc=$?
        echo $rc >"$T/crash/final/$i.rc"
        [ $rc = 0 ] || [ $rc = 1 ] && break
        sleep 0.5
    done
done
outcomes "$T/crash/final" >"$T/crash/final.outcomes"
awk '$2 == "ok" {print $3}' "$T/crash/final.outcomes" | sort >"$T/crash/ids"
NOK=$(grep -c . "$T/crash/ids")
check "some reserves of the load succeed ($NOK)" test "$NOK" -gt 0
OTHER=$(grep -v -e ' ok ' -e ' err 409 no_capacity$' "$T/crash/final.outcomes")
check "every retried request ends 201 or 409 no_capacity${OTHER:+: $(printf '%s' "$OTHER" | head -n 3 | tr '\n' ';')}" \
    test -z "$OTHER"
check "each success has its own reservation id ($NOK)" \
    test "$(sort -u "$T/crash/ids" | grep -c .)" = "$NOK"
# Request I that succeeded at once must give the same id on retry.
CHANGED=$(join <(awk '$2 == "ok" {print $1, $3}' "$T/crash/first.outcomes" | sort) \
               <(awk '{print $1, $2 == "ok"? $3: $2}' "$T/crash/final.outcomes" | sort) |
          awk '$2 != $3')
check "every request that succeeded at once gets the same reservation on retry${CHANGED:+: $CHANGED}" \
    test -z "$CHANGED"

check "the journal reads whole after the crashes" journal "$T/j.json"
echo "# the journal holds $(jq_file "$T/j.json" 'len(d)') events, read in pages of 200"
check "the pages reach the last seq the broker reports" \
    test "$(r stats | js 'd["journal"]')" = "$(jq_file "$T/j.json" 'd[-1]["seq"]')"
check "journal: seqs run 1..N with no gap" \
    test "$(jq_file "$T/j.json" '[e["seq"] for e in d] == list(range(1, len(d) + 1))')" = true
check "journal: every event id is unique" \
    test "$(jq_file "$T/j.json" 'len(set(e["id"] for e in d)) == len(d)')" = true
check "journal: nothing committed before the broker's kill was lost" \
    test "$("$PY" -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
print(all(x["id"] == y["id"] and x["seq"] == y["seq"] for x, y in zip(a, b)) and len(b) >= len(a))' \
        "$T/before-broker-kill.json" "$T/j.json")" = True
# reservation.requested of the crash load, by request id.
jq_file "$T/j.json" '"\n".join(sorted(e["data"]["reservation"]["request_id"] + " " + e["reservation"] for e in d if e["type"] == "reservation.requested" and e["data"]["reservation"]["request_id"].startswith("crash-")))' \
    >"$T/crash/requested"
check "no duplicate: one reservation.requested per request id" \
    test "$(awk '{print $1}' "$T/crash/requested" | sort | uniq -d | wc -l)" = 0
check "and exactly one per successful request ($NOK)" \
    test "$(awk '{print $2}' "$T/crash/requested" | sort)" = "$(cat "$T/crash/ids")"
# A reserve cut off by a kill may be undone after its authorisation and
# retried: see payment_runs.
payments=$(payment_runs "$T/j.json" "$T/crash/ids")
printf '%s\n' "$payments" | grep ',' | sed 's/^/# authorised again: /'
odd=$(runs_odd "$payments")
check "each of the $NOK payments authorised once more than voided${odd:+: $(printf '%s' "$odd" | head -n 3 | tr '\n' ';')}" \
    test "$(printf '%s\n' "$payments" | grep -c .)" = "$NOK" -a -z "$odd"

# Holds equal the units of live reservations, never above capacity.
"$PY" - "$T/crash/ids" "$CR1" "$CR2" "${R[@]}" >"$T/crash/holds" <<'EOF'
import json, subprocess, sys
ids, resources, cmd = open(sys.argv[1]).read().split(), sys.argv[2:4], sys.argv[4:]
want = {}
for i in ids:
    p = subprocess.run(cmd + ["call", "reservation", "get", json.dumps({"id": i})],
                       capture_output=True, text=True)
    res = json.loads(p.stdout)
    if res["status"] in ("PENDING", "CONFIRMED"):
        for day in range(res["days"]):
            key = (res["resource"], "2027-09-%02d" % (1 + day))
            want[key] = want.get(key, 0) + res["units"]
for resource in resources:
    p = subprocess.run(cmd + ["availability", "--resource", resource,
                              "--date", "2027-09-01", "--days", "3"],
                       capture_output=True, text=True)
    for day in json.loads(p.stdout)["days"]:
        key = (resource, day["date"])
        print(day["date"], day["held"], day["capacity"], want.get(key, 0))
EOF
check "availability read for both resources" test "$(grep -c . "$T/crash/holds")" = 6
check "no overbooking: held <= capacity on every day ($(tr '\n' ';' <"$T/crash/holds"))" \
    test "$(awk '$2 > $3' "$T/crash/holds" | wc -l)" = 0
check "held == units of live reservations on every day" \
    test "$(awk '$2 != $4' "$T/crash/holds" | wc -l)" = 0
# The first day is asked for more than it has, on each resource: 30 reserves
# of one unit on the auto one, 15 of one and 15 of two on the manual one,
# all retried until 201 or 409 no_capacity, and none cancelled or expired.
# So each ends full.
check "the first day ends full on both resources (held 10 of 10)" \
    test "$(awk '$1 == "2027-09-01" {print $2 "/" $3}' "$T/crash/holds" |
            tr '\n' ' ')" = "10/10 10/10 "

# The view, once caught up, equals the command side: each reservation
# whole, its payment's status included.
sides () {
    "$PY" - "$T/crash/ids" "${R[@]}" <<'EOF'
import json, subprocess, sys
ids, cmd = open(sys.argv[1]).read().split(), sys.argv[2:]
def get(*args):
    p = subprocess.run(cmd + list(args), capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except Exception:
        return None
if not ids:
    print("no reservation to compare")
for i in ids:
    a = get("call", "reservation", "get", json.dumps({"id": i}))
    b = get("status", i)
    # Each side must be the reservation itself, not an error or nothing.
    if not (isinstance(a, dict) and a.get("id") == i and a == b):
        print(i, a, b)
EOF
}
sides_agree () { [ -z "$(sides)" ]; }
view_ids () {
    { r list --resource "$CR1" --limit 1000; echo; r list --resource "$CR2" --limit 1000; } |
        "$PY" -c 'import json, sys
for line in sys.stdin:
    if line.strip():
        for x in json.loads(line)["items"]:
            print(x["id"])' | sort
}
check "the view catches up: every reservation in the view == the command side's" \
    wait_for 30 sides_agree
sides | head -n 5 | sed 's/^/# differs: /'
check "the view lists each reservation of the load once, and no other" \
    test "$(view_ids)" = "$(cat "$T/crash/ids")"
# The customers of the auto resource (odd requests) that hold a reservation.
AUTO=$(awk '$2 == "ok" && $1 % 2 == 1 {print "kc" $1}' "$T/crash/final.outcomes")
# auto_notified: a line for each of them, each one confirmation.
# shellcheck disable=SC2086
auto_notified () {
    local want got
    want=$(printf '%s\n' $AUTO | grep -c .)
    got=$(kinds_of $AUTO | grep -c ' 1 reservation.confirmed$')
    [ "$want" -gt 0 ] && [ "$got" = "$want" ]
}
check "each confirmed customer of the auto resource is notified exactly once" \
    wait_for 15 auto_notified
# shellcheck disable=SC2086
kinds_of $AUTO | grep -v ' 1 reservation.confirmed$' | head -n 3 | sed 's/^/# /'
check "resvd saw the $KILLS kills and no other death (but the scale-downs)" \
    test "$(grep -E 'pid [0-9]+, (was killed|exited)' "$T/resvd.log" |
            grep -vc 'exited with status 0 .*; stopped$') $(grep -c 'was killed by signal 9' "$T/resvd.log")" = "$KILLS $KILLS"
# Any other death, and what its process logged last, to read in the output.
grep -E 'pid [0-9]+, (was killed|exited)' "$T/resvd.log" |
    grep -v 'exited with status 0 .*; stopped$' | grep -v 'killed by signal 9' |
    while read -r line; do
        echo "# unexpected: $line"
        pid=$(echo "$line" | grep -oE 'pid [0-9]+' | grep -oE '[0-9]+')
        grep -E "[ (]$pid\)" "$T/resvd.log" | tail -n 5 | sed 's/^/#   /'
    done

echo "# done at ${SECONDS} s"
finish
