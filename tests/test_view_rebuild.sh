#!/usr/bin/env bash
# tests/test_view_rebuild.sh: 'resv view rebuild' run by several clients at
# once, against two view processes on one store (spec section 5). Each
# rebuild emptied the view and replayed the journal on its own, so one
# that emptied it just as another had finished its replay made that one
# count the view it had emptied: {"events":0,"reservations":0}, or a view
# half built again, answered 200 although the view ended whole (about one
# rebuild in a hundred here). Rebuilds now take turns: every 200 answers
# the counts of the whole view.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
export RESV_WORKERS_VIEW_COUNT=2
CLIENTS=3
ROUNDS=40

start_resvd_or_finish
RID=$(r resource add --name Hall --owner ann --capacity 100 | js 'd["id"]')
check "a resource" test -n "$RID"
IDS=()
for i in 1 2 3 4 5 6; do
    IDS+=("$(r reserve --customer "c$i" --resource "$RID" --date "2027-05-0$i" |
             js 'd["id"]')")
done
settled () {
    local i
    for i in 1 2 3 4 5 6; do
        status_is "${IDS[$((i - 1))]}" CONFIRMED captured &&
            notes_are "c$i" 1 || return 1
    done
}
# Confirmed, captured and notified: the journal has all it will have.
check "six reservations confirmed, captured and notified" wait_for 30 settled
last () { r events --limit 1 | js 'd["last"]'; }
LAST=$(last)
WANT="{\"events\":$LAST,\"reservations\":6}"

# Every client rebuilds ROUNDS times, while the others do.
pids=()
for k in $(seq 1 $CLIENTS); do
    (
        for n in $(seq 1 $ROUNDS); do
            out=$("$BIN/resv" -t 20000 view rebuild); rc=$?
            printf '%s %s\n' "$rc" "$out"
        done >"$T/client$k.out"
    ) &
    pids+=($!)
done
wait "${pids[@]}"
cat "$T"/client*.out >"$T/answers"
sort "$T/answers" | uniq -c | sed 's/^/# /'
check "$((CLIENTS * ROUNDS)) rebuilds answered" \
    test "$(wc -l <"$T/answers")" -eq $((CLIENTS * ROUNDS))
check "each answered 0 $WANT" \
    test "$(grep -cvxF "0 $WANT" "$T/answers")" -eq 0
check "the journal did not grow meanwhile" test "$(last)" = "$LAST"

# And the view they leave is whole.
expect_exit 0 "list after the rebuilds" r list --resource "$RID"
check "it lists the six reservations" \
    test "$(printf '%s' "$OUT" | js 'len(d["items"])')" = 6
check "each shows confirmed and captured" settled

finish
