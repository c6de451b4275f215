#!/usr/bin/env bash
# tests/test_readme.sh: the README's five-minute tour, run as it is written
# (its sh block, from a directory whose bin/ is the build) against resvd
# with the default config on fresh ports: every command succeeds, and what
# its comments promise holds. A README whose tour no longer works fails
# here.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

# The counts of config/resv.cfg, which start_resvd waits for.
for s in $DOMAIN_SERVICES echo; do
    export "RESV_WORKERS_${s^^}_COUNT=1"
done
check "resvd starts with the default config" start_resvd

# The tour: the first sh block after its heading.
awk '/^## A five-minute tour/ { tour = 1 }
     tour && /^```sh/ { block = 1; next }
     block && /^```/ { exit }
     block { print }' "$TOP/README.md" >"$T/tour.sh"
check "the README has a tour of more than 10 lines" \
    test "$(wc -l <"$T/tour.sh")" -gt 10
mkdir -p "$T/tour"
ln -s "$BIN" "$T/tour/bin"

# Each command in turn (bash -e stops at the first that fails).
(cd "$T/tour" && bash -e "$T/tour.sh") >"$T/tour.out" 2>"$T/tour.err"
check "every command of the tour succeeds" test $? -eq 0
head -c 600 "$T/tour.err" | sed 's/^/# stderr: /'
TOUR=$(cat "$T/tour.out")
has "ping: the broker answers" "$TOUR" '"pong":true'
has "a round trip through echo" "$TOUR" '\{"hi":1\}'
has "scale echo 3: from 1 to 3" "$TOUR" \
    '"service":"echo","count":3,"previous":1'
check "... and the broker sees 3 echo workers" wait_count echo 3
has "the journal has the car, auto approval" "$TOUR" \
    '"name":"Blue Fiat".*"approval":"auto"'
has "the reserve answers PENDING, payment authorized" "$TOUR" \
    '"customer":"bob".*"days":3,.*"status":"PENDING".*"status":"authorized"'
has "availability: three days, each with its unit held" "$TOUR" \
    '"days":\[(\{[^}]*"capacity":1,"held":1,"free":0\},?){3}\]'
has "events from 1: the car, then bob's reservation" "$TOUR" \
    '"seq":1,[^}]*"type":"resource.registered".*"type":"reservation.requested"'

# "CONFIRMED a moment later, payment captured".
confirmed () {
    r list --customer bob |
        js '"%s %s" % (d["items"][0]["status"],
                       d["items"][0]["payment"]["status"])' |
        grep -qx "CONFIRMED captured"
}
check "bob's car is CONFIRMED a moment later, payment captured" \
    wait_for 10 confirmed

finish
