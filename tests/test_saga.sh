#!/usr/bin/env bash
# tests/test_saga.sh: the reservation flow end to end, through the CLI,
# against the whole system run by resvd (spec sections 2, 3 and 5): one
# scenario per kind of resource (a restaurant with manual approval and time
# slots, a car rented for days, a resort stay cancelled and refunded, a
# storage unit released by cancellation, a meeting room fought over), the
# owner and customer rules (403), the illegal status moves (409) and the
# rules of resource update and remove.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

# A short approval timeout, so that a manual reservation left alone expires
# within the test; long enough that one decided at once never does.
export RESV_APPROVAL_TIMEOUT=6000
export RESV_APPROVAL_TICK=200
export RESV_WORKERS_AVAILABILITY_COUNT=2
export RESV_WORKERS_RESERVATION_COUNT=2
export RESV_WORKERS_PAYMENT_COUNT=1
export RESV_WORKERS_APPROVAL_COUNT=1
export RESV_WORKERS_NOTIFICATION_COUNT=1
export RESV_WORKERS_VIEW_COUNT=1

start_resvd_or_finish

# reserve_ok NAME ARGS...: a reserve that must succeed; its id in $ID and
# the reservation in $RES.
reserve_ok () {
    local name=$1; shift
    expect_exit 0 "$name" r reserve "$@"
    RES=$OUT
    ID=$(printf '%s' "$OUT" | js 'd["id"]')
}
# add_resource ARGS...: registers a resource; its id in $RID.
add_resource () {
    RID=$(r resource add "$@" | js 'd["id"]')
    if [ -n "$RID" ]; then ok "resource add $*"
    else not_ok "resource add $*"; fi
}
# ms_between JSON TYPE1 TYPE2: the milliseconds from the one event of TYPE1
# to the one of TYPE2 among the items of JSON, by their "at" (ISO-8601 UTC
# with ms); nothing, and a failure, unless each type is there once.
ms_between () {
    printf '%s' "$1" | "$PY" -c '
import datetime, json, sys
items = json.load(sys.stdin)["items"]
def at(t):
    [e] = [e for e in items if e["type"] == t]
    return datetime.datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
print(round((at(sys.argv[2]) - at(sys.argv[1])).total_seconds() * 1000))' \
        "$2" "$3"
}
# held_all RESOURCE DATE DAYS N: N units are held on each of the DAYS dates
# from DATE (DAYS values, each N).
held_all () {
    local want
    want=$(yes "$4" | head -n "$3" | paste -sd ' ')
    [ "$(helds "$1" "$2" "$3")" = "$want" ]
}
# in_order JSON TYPE...: the items of JSON have these types in this order
# (others may come between), with seqs strictly increasing.
in_order () {
    printf '%s' "$1" | "$PY" -c '
import json, sys
items = json.load(sys.stdin)["items"]
seqs = [e["seq"] for e in items]
assert seqs == sorted(set(seqs)), seqs
types = [e["type"] for e in items]
at = -1
for t in sys.argv[1:]:
    assert t in types[at + 1:], (t, types)
    at = types.index(t, at + 1)' "${@:2}"
}

# === Restaurant: manual approval, time slots, capacity = tables ==========
add_resource --name "Chez Ann" --owner ann --kind table --capacity 2 \
    --price 2500 --approval manual --slots 18:00,20:00
REST=$RID
expect_exit 0 "resource show of the restaurant" r resource show "$REST"
has "the restaurant has its slots, capacity and approval" "$OUT" \
    '"capacity":2,.*"approval":"manual","slots":\["18:00","20:00"\]'

# Each decision comes right after its reserve, well within the timeout;
# dave's reservation is left to expire.
reserve_ok "bob reserves a table at 18:00" --customer bob \
    --resource "$REST" --date 2027-03-05 --slot 18:00
A=$ID
expect_exit 0 "ann approves bob's table" r approve "$A" --owner ann
has "the decision is approved" "$OUT" '"decision":"approved"'
has "bob's reservation was PENDING, 2500, payment authorized" "$RES" \
    '"amount":2500,"status":"PENDING".*"payment":\{"id":"[^"]+","status":"authorized"\}'
check "it has an id" test -n "$A"
reserve_ok "carol reserves two tables at 20:00" --customer carol \
    --resource "$REST" --date 2027-03-05 --slot 20:00 --units 2
B=$ID
expect_exit 0 "ann declines carol's tables" r decline "$B" --owner ann \
    --reason "private party"
has "the decision is declined" "$OUT" '"decision":"declined"'
has "carol's amount is 2 x 2500" "$RES" '"units":2,"amount":5000,'
reserve_ok "dave reserves the last table at 18:00" --customer dave \
    --resource "$REST" --date 2027-03-05 --slot 18:00
C=$ID
refused 403 forbidden "bob (not the owner) may not approve" \
    r approve "$C" --owner bob
refused 403 forbidden "eve (not the owner) may not decline" \
    r decline "$C" --owner eve
refused 403 forbidden "carol may not cancel dave's reservation" \
    r cancel "$C" --customer carol
check "dave's is still PENDING before the timeout" \
    test "$(cmd_status "$C")" = PENDING
check "the three reservations have three ids" \
    test "$(printf '%s\n' "$A" "$B" "$C" | sort -u | wc -l)" = 3
refused 409 no_capacity "erin finds 18:00 full" r reserve --customer erin \
    --resource "$REST" --date 2027-03-05 --slot 18:00
refused 400 "" "a slot the restaurant does not have" r reserve \
    --customer erin --resource "$REST" --date 2027-03-05 --slot 19:00
check "18:00 holds both tables (bob's and dave's)" \
    test "$(held "$REST" 2027-03-05 18:00)" = 2

check "bob's reservation becomes CONFIRMED, payment captured" \
    wait_for 15 status_is "$A" CONFIRMED captured
check "carol's becomes DECLINED, payment voided" \
    wait_for 15 status_is "$B" DECLINED voided
has "the decline carries the owner's reason" "$(r status "$B")" \
    '"reason":"private party"'
check "dave's expires without a decision, payment voided" \
    wait_for 20 status_is "$C" EXPIRED voided
# By the events' own times, not this script's clock (which starts late,
# and reads late after the waits above).
WAITED=$(ms_between "$(r history "$C")" reservation.requested \
    reservation.expired)
check "not before the 6 s approval timeout (${WAITED:-no times} ms)" \
    test "${WAITED:-0}" -ge 6000
check "the command side agrees: CONFIRMED, DECLINED, EXPIRED" \
    test "$(cmd_status "$A") $(cmd_status "$B") $(cmd_status "$C")" = \
         "CONFIRMED DECLINED EXPIRED"
check "18:00 holds 1 table (bob's), 20:00 none" wait_for 10 eval \
    'test "$(helds "$REST" 2027-03-05 1 18:00) $(helds "$REST" 2027-03-05 1 20:00)" = "1 0"'
reserve_ok "the expired table is free again for erin" --customer erin \
    --resource "$REST" --date 2027-03-05 --slot 18:00
E=$ID
expect_exit 0 "erin cancels it at once" r cancel "$E" --customer erin
has "cancel answers CANCELLED" "$OUT" '"status":"CANCELLED"'

# Illegal moves.
refused 403 forbidden "carol may not cancel bob's confirmed table" \
    r cancel "$A" --customer carol
refused 409 conflict "approve after decline" r approve "$B" --owner ann
refused 409 conflict "decline after approve" r decline "$A" --owner ann
refused 409 conflict "approve after expiry" r approve "$C" --owner ann
refused 409 conflict "decline after expiry" r decline "$C" --owner ann
refused 409 conflict "cancel after expiry" r cancel "$C" --customer dave
refused 409 conflict "cancel after decline" r cancel "$B" --customer carol
refused 409 conflict "approve after cancel" r approve "$E" --owner ann
check "no illegal move changed a status" \
    test "$(view_status "$A") $(view_status "$B") $(view_status "$C")" = \
         "CONFIRMED DECLINED EXPIRED"

# Notifications: one per customer-facing change.
check "bob is notified once: reservation.confirmed" \
    wait_for 10 notes_are bob 1 reservation.confirmed "$A"
check "carol is notified once: reservation.declined" \
    wait_for 10 notes_are carol 1 reservation.declined "$B"
check "dave is notified once: reservation.expired" \
    wait_for 10 notes_are dave 1 reservation.expired "$C"
check "bob, carol and dave have one notification each" \
    test "$(notes bob) $(notes carol) $(notes dave)" = "1 1 1"
has "a notification has the spec's fields" "$(r notifications --customer carol)" \
    '^\{"items":\[\{"id":"[^"]+","customer":"carol","reservation":"'"$B"'","kind":"reservation.declined","text":"[^"]+","at":"[0-9T:.-]+Z"\}\]\}$'

# History: the reservation's events, in journal order.
expect_exit 0 "history of bob's reservation" r history "$A"
HIST=$OUT
check "history: requested, approved, confirmed, captured, in seq order" \
    in_order "$HIST" reservation.requested approval.approved \
        reservation.confirmed payment.captured
check "history: payment authorized before the capture" \
    in_order "$HIST" payment.authorized payment.captured
check "history: every event is bob's reservation's" \
    eval "printf '%s' \"\$HIST\" | js 'all(e[\"correlation_id\"] == \"$A\" for e in d[\"items\"])' | grep -qx true"
check "history of the expired one ends expired then voided" \
    in_order "$(r history "$C")" reservation.requested reservation.expired \
        payment.voided
refused 404 not_found "history of an unknown id" r history r-nosuch

# === Car: several days, auto approval ======================================
add_resource --name "Blue Fiat" --owner ann --kind car --capacity 2 \
    --price 4500 --approval auto
CAR=$RID
reserve_ok "frank rents a car for 3 days" --customer frank --resource "$CAR" \
    --date 2027-04-10 --days 3
F=$ID
has "amount = 4500 x 1 unit x 3 days" "$RES" '"days":3,.*"units":1,"amount":13500,'
check "the car is CONFIRMED at once (auto), payment captured" \
    wait_for 15 status_is "$F" CONFIRMED captured
check "held on each day of the stay, not before or after" \
    test "$(helds "$CAR" 2027-04-09 5)" = "0 1 1 1 0"
refused 409 no_capacity "2 cars from the 11th: one day is short" \
    r reserve --customer grace --resource "$CAR" --date 2027-04-11 \
    --days 3 --units 2
check "the refused stay held nothing on any day" \
    test "$(helds "$CAR" 2027-04-09 6)" = "0 1 1 1 0 0"
# The short day last: the two days before it, which had room, are not held
# either (a hold is all or nothing).
refused 409 no_capacity "2 cars from the 8th: the third day is short" \
    r reserve --customer grace --resource "$CAR" --date 2027-04-08 \
    --days 3 --units 2
check "the stay refused on its last day held nothing on the days before" \
    test "$(helds "$CAR" 2027-04-07 6)" = "0 0 0 1 1 1"
reserve_ok "grace rents 2 cars for 2 days from the 13th" --customer grace \
    --resource "$CAR" --date 2027-04-13 --days 2 --units 2
G=$ID
has "amount = 4500 x 2 units x 2 days" "$RES" '"units":2,"amount":18000,'
check "grace's stay is CONFIRMED" wait_for 15 status_is "$G" CONFIRMED captured
check "availability: 0 1 1 1 2 2 0 held" \
    test "$(helds "$CAR" 2027-04-09 7)" = "0 1 1 1 2 2 0"
has "availability prints capacity, held and free" \
    "$(r availability --resource "$CAR" --date 2027-04-13)" \
    '^\{"resource":"'"$CAR"'","days":\[\{"date":"2027-04-13","slot":"all-day","capacity":2,"held":2,"free":0\}\]\}$'
check "frank is notified once, of the confirmation" \
    wait_for 10 notes_are frank 1 reservation.confirmed "$F"

# === Resort: paid, confirmed, cancelled, refunded ==========================
add_resource --name "Palm Resort" --owner olga --kind room --capacity 3 \
    --price 20000 --approval auto
RESORT=$RID
reserve_ok "henry books 2 rooms for 2 nights" --customer henry \
    --resource "$RESORT" --date 2027-07-01 --days 2 --units 2
H=$ID
has "amount = 20000 x 2 x 2" "$RES" '"amount":80000,'
check "henry's stay is CONFIRMED and captured" \
    wait_for 15 status_is "$H" CONFIRMED captured
check "the command side has the capture too" \
    wait_for 10 eval 'test "$(cmd_payment "$H")" = captured'
check "2 rooms held on both nights" test "$(helds "$RESORT" 2027-07-01 2)" = "2 2"
refused 403 forbidden "ivan may not cancel henry's stay" \
    r cancel "$H" --customer ivan
refused 409 conflict "the resort cannot be removed with a confirmed stay" \
    r resource remove "$RESORT" --owner olga
expect_exit 0 "henry cancels" r cancel "$H" --customer henry
has "cancel answers CANCELLED, the payment captured (to be refunded)" "$OUT" \
    '"status":"CANCELLED".*"payment":\{"id":"[^"]+","status":"captured"\}'
check "the view shows CANCELLED, payment refunded" \
    wait_for 15 status_is "$H" CANCELLED refunded
check "the command side shows CANCELLED" test "$(cmd_status "$H")" = CANCELLED
check "and the payment refunded" \
    wait_for 10 eval 'test "$(cmd_payment "$H")" = refunded'
check "the rooms are released" \
    wait_for 10 eval 'test "$(helds "$RESORT" 2027-07-01 2)" = "0 0"'
check "henry is notified of the refund" \
    wait_for 10 notes_are henry 1 payment.refunded "$H"
check "henry: confirmed, cancelled, refunded, once each (3 notifications)" \
    eval 'test "$(notes henry reservation.confirmed) $(notes henry reservation.cancelled) $(notes henry)" = "1 1 3"'
check "history: confirmed, captured, cancelled, refunded" \
    in_order "$(r history "$H")" reservation.confirmed payment.captured \
        reservation.cancelled payment.refunded
refused 403 forbidden "the resort cannot be removed by another owner" \
    r resource remove "$RESORT" --owner ann
expect_exit 0 "with nothing active, olga removes the resort" \
    r resource remove "$RESORT" --owner olga
refused 404 not_found "the removed resort is not shown" \
    r resource show "$RESORT"
refused 404 not_found "the removed resort cannot be reserved" \
    r reserve --customer henry --resource "$RESORT" --date 2027-07-10

# === Storage unit: reserved, then released by cancellation ==================
add_resource --name "Box 12" --owner sam --kind storage --capacity 1 \
    --price 900 --approval manual
BOX=$RID
reserve_ok "judy rents the box for 30 days" --customer judy --resource "$BOX" \
    --date 2027-05-01 --days 30
J=$ID
has "amount = 900 x 30, PENDING" "$RES" '"amount":27000,"status":"PENDING"'
check "the box is held on all 30 days" held_all "$BOX" 2027-05-01 30 1
refused 409 no_capacity "the box is taken on day 30" r reserve \
    --customer kim --resource "$BOX" --date 2027-05-30
expect_exit 0 "judy cancels while PENDING" r cancel "$J" --customer judy
check "the view shows CANCELLED, payment voided (never captured)" \
    wait_for 15 status_is "$J" CANCELLED voided
check "held back to 0 on all 30 days" \
    wait_for 10 held_all "$BOX" 2027-05-01 30 0
refused 409 conflict "the owner cannot approve it after the cancel" \
    r approve "$J" --owner sam
expect_exit 0 "cancelling it again is idempotent (200)" r cancel "$J" --customer judy
check "judy is notified once, of the cancellation, with no refund" \
    wait_for 10 eval 'test "$(notes judy reservation.cancelled) $(notes judy)" = "1 1"'
reserve_ok "kim now gets the box" --customer kim --resource "$BOX" \
    --date 2027-05-30
expect_exit 0 "and kim cancels" r cancel "$ID" --customer kim

# === Meeting room: competing requests for one slot ==========================
add_resource --name "Room Ada" --owner tom --kind meeting-room --capacity 1 \
    --approval auto --slots 09:00,10:00
ROOM=$RID
for i in 1 2 3 4 5 6; do
    r reserve --customer "m$i" --resource "$ROOM" --date 2027-06-01 \
        --slot 09:00 >"$T/room.$i.out" 2>&1 &
    echo $! >"$T/room.$i.pid"
done
WINS=0 LOSSES=0 OTHER=""
for i in 1 2 3 4 5 6; do
    wait "$(cat "$T/room.$i.pid")"; rc=$?
    out=$(cat "$T/room.$i.out")
    if [ $rc = 0 ] && printf '%s' "$out" | grep -q '"status":"\(PENDING\|CONFIRMED\)"'; then
        WINS=$((WINS + 1)); WINNER=$(printf '%s' "$out" | js 'd["id"]')
    elif [ $rc = 1 ] && error_is "$out" 409 no_capacity; then
        LOSSES=$((LOSSES + 1))
    else OTHER="$OTHER [$rc $out]"; fi
done
check "6 competing requests for one room: exactly one wins ($WINS)" test "$WINS" = 1
check "the other 5 get 409 no_capacity ($LOSSES)${OTHER:+:$OTHER}" test "$LOSSES" = 5
check "09:00 holds 1, 10:00 holds 0" \
    test "$(held "$ROOM" 2027-06-01 09:00) $(held "$ROOM" 2027-06-01 10:00)" = "1 0"
list_room_is_1 () {
    [ "$(r list --resource "$ROOM" | js 'len(d["items"])')" = 1 ]
}
check "the view lists one reservation of the room" wait_for 10 list_room_is_1
check "it is the winner's, CONFIRMED" wait_for 10 status_is "${WINNER:-none}" CONFIRMED

# === Resource update and remove rules =======================================
refused 403 forbidden "update by another than the owner" \
    r resource update "$ROOM" --owner ann --name "Mine now"
refused 403 forbidden "remove by another than the owner" \
    r resource remove "$ROOM" --owner ann
refused 409 conflict "remove while a reservation is CONFIRMED" \
    r resource remove "$ROOM" --owner tom
refused 409 conflict "capacity 2 -> 1 below the 2 cars held on the 13th" \
    r resource update "$CAR" --owner ann --capacity 1
check "the refused update changed nothing" \
    eval 'r resource show "$CAR" | grep -q "\"capacity\":2,"'
refused 404 not_found "update of an unknown resource" \
    r resource update res-nosuch --owner ann --name x
expect_exit 0 "the owner renames the room and raises its price" \
    r resource update "$ROOM" --owner tom --name "Room Lovelace" --price 700
has "update answers the changed resource" "$OUT" \
    '"name":"Room Lovelace".*"price":700'
has "show has the change" "$(r resource show "$ROOM")" '"name":"Room Lovelace"'
expect_exit 0 "capacity 2 -> 3 for the car" \
    r resource update "$CAR" --owner ann --capacity 3
check "availability follows the new capacity" \
    eval 'r availability --resource "$CAR" --date 2027-04-13 | grep -q "\"capacity\":3,\"held\":2,\"free\":1"'
expect_exit 0 "capacity back down to exactly what is held (2)" \
    r resource update "$CAR" --owner ann --capacity 2

# === Lists and the journal ================================================
has "list --customer bob: only bob's" "$(r list --customer bob)" \
    '^\{"items":\[\{"id":"'"$A"'"[^]]*\]\}$'
check "list --status EXPIRED has dave's" \
    eval 'r list --status EXPIRED | js "[x[\"id\"] for x in d[\"items\"]]" | grep -q "$C"'

journal "$T/journal.json"
check "the journal has one resource.registered per resource (5)" \
    test "$(jq_file "$T/journal.json" 'len([e for e in d if e["type"] == "resource.registered"])')" = 5
check "journal seqs run 1..N with no gap" \
    test "$(jq_file "$T/journal.json" '[e["seq"] for e in d] == list(range(1, len(d) + 1))')" = true
check "every event of a reservation carries its id as correlation_id" \
    test "$(jq_file "$T/journal.json" 'all(e["correlation_id"] == e["reservation"] for e in d if "reservation" in e)')" = true
check "one payment.refunded in the whole run (henry's)" \
    test "$(jq_file "$T/journal.json" '[e["reservation"] for e in d if e["type"] == "payment.refunded"]')" = "[\"$H\"]"

# Paging: a page that was cut says where the next one starts ("next"),
# --after (--from for the journal) reads it, and the last page has none.
# pages CMD...: runs CMD with --limit 2, then with --after each "next",
# and prints each page's ids on a line ("-" when a page has no next).
pages () {
    local out next="" args=()
    for _ in 1 2 3 4 5; do
        out=$(r "$@" --limit 2 "${args[@]}") || { echo "failed"; return; }
        printf '%s %s\n' \
            "$(printf '%s' "$out" | js '",".join(x["id"] for x in d["items"])')" \
            "$(printf '%s' "$out" | js 'd.get("next", "-")')"
        next=$(printf '%s' "$out" | js 'd.get("next", "")')
        [ -n "$next" ] || return 0
        args=(--after "$next")
    done
}
for i in 1 2 3; do
    add_resource --name "Unit $i" --owner paula --kind storage
    UNITS+=("$RID")
done
PAGES=$(pages resource list --owner paula)
check "resource list pages: 2, then 1 with no next" \
    test "$(printf '%s\n' "$PAGES" | cut -d' ' -f1 | paste -sd,)" \
        = "${UNITS[0]},${UNITS[1]},${UNITS[2]}"
check "resource list: the last page has no next, the first has" \
    test "$(printf '%s\n' "$PAGES" | cut -d' ' -f2 | grep -c -- '^-$') \
$(printf '%s\n' "$PAGES" | wc -l)" = "1 2"
NOTES=$(r notifications --customer henry | js '",".join(x["id"] for x in d["items"])')
PAGES=$(pages notifications --customer henry)
check "notifications page through henry's 3, in order" \
    test "$(printf '%s\n' "$PAGES" | cut -d' ' -f1 | paste -sd,)" = "$NOTES"
check "notifications: 2 pages, the last with no next" \
    test "$(printf '%s\n' "$PAGES" | cut -d' ' -f2 | grep -c -- '^-$') \
$(printf '%s\n' "$PAGES" | wc -l) $(printf '%s' "$NOTES" | tr ',' '\n' | grep -c .)" \
        = "1 2 3"
refused 400 bad_request "notifications --limit past a page (1001)" \
    r notifications --customer henry --limit 1001
refused 400 bad_request "resource list --after that is no cursor" \
    r resource list --after x
LAST=$(r events --limit 1 | js 'd["last"]')
has "events: a page cut by --limit has next" \
    "$(r events --from 1 --limit 1)" '"next":2,"last":'"$LAST"'\}$'
has "events: the page that reaches the end has no next" \
    "$(r events --from "$LAST")" '^\{"items":\[\{"seq":'"$LAST"',.*\],"last":'"$LAST"'\}$'
has "events: past the end, no items and no next" \
    "$(r events --from $((LAST + 1)))" '^\{"items":\[\],"last":'"$LAST"'\}$'

# === The largest availability: a year of the most slots ===================
# A reserve takes a stay of 366 days on a resource of 32 slots, so its
# owner can see that whole stay in one answer (some 1.6 MB with labels of
# 64 bytes), through the broker and the CLI.
SLOTS=$(for i in $(seq -w 0 31); do printf '%s%062d,' "$i" 0; done)
RID=$(r resource add --name Hall --owner harriet --capacity 1 --price 1 \
    --slots "${SLOTS%,}" | js 'd["id"]')
check "a resource of 32 slots of 64 bytes" test -n "$RID"
LAST_SLOT=$(printf '31%062d' 0)
reserve_ok "a reserve of 366 days in the last of 32 slots" --customer ivan \
    --resource "$RID" --date 2028-01-01 --days 366 --slot "$LAST_SLOT"
OUT=$(r availability --resource "$RID" --date 2028-01-01 --days 366)
check "availability of 366 days of 32 slots: every day and slot, the held ones" \
    test "$(printf '%s' "$OUT" | js 'str(len(d["days"])) + " " + str(sum(x["held"] for x in d["days"]))')" = "11712 366"

finish
