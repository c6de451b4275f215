#!/usr/bin/env bash
# tests/test_busy.sh: the whole system, under resvd, while another process
# holds a store's write lock (an administrator's sqlite3 shell left in a
# transaction, a backup tool). A worker that waits for the lock is alive:
# its heartbeats go on, so the broker neither takes it for dead nor sends
# its requests elsewhere, and a reserve that the lock held up for longer
# than the broker's liveness still succeeds once the lock is gone. A lock
# held past the request's deadline gives a clear 504; past SQLite's busy
# timeout (10 s) the worker gives up the transaction with a log line, and
# a retry of the same request id afterwards makes one reservation. No
# process dies, nothing is half-written.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
# lib.sh's heartbeats: a worker silent for 1 s (4 x 250 ms) is dead.

start_resvd_or_finish
PIDS_BEFORE=$(pgrep -P "$RESVD_PID" | sort -n | tr '\n' ' ')
RES=$(r resource add --name "Busy" --owner ann --kind room --capacity 100 \
    --price 100 --approval auto | js 'd["id"]')
check "a resource" test -n "$RES"

# lock STORE SECONDS: holds STORE's write lock (BEGIN IMMEDIATE, as any
# writer takes it) for SECONDS, in the background; returns once it holds
# it. T/releasing appears just before the lock is let go.
lock () {
    rm -f "$T/locked" "$T/releasing"
    "$PY" - "$RESV_DATA_DIR/$1.db" "$2" "$T" <<'EOF' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[3] + "/locked", "w").close()
time.sleep(float(sys.argv[2]))
open(sys.argv[3] + "/releasing", "w").close()
db.execute("ROLLBACK")
EOF
    LOCKER=$!
    wait_for 10 test -e "$T/locked"
}
mkdir -p "$T/out"
# reserve NAME [TIMEOUT_MS]: request NAME, its reply in out/NAME.out and
# its exit status in out/NAME.rc.
reserve () {
    "$BIN/resv" -t "${2:-10000}" reserve --customer "bc-$1" --resource "$RES" \
        --date 2027-05-01 --request-id "busy-$1" >"$T/out/$1.out" 2>&1
    echo $? >"$T/out/$1.rc"
}
is_ok () { [ "$(cat "$T/out/$1.rc")" = 0 ] && grep -q '^{"id":"r' "$T/out/$1.out"; }

reserve a
check "a reserve before any lock" is_ok a

# Locks shorter than the deadline, longer than the broker's liveness.
for store in reservation availability payment; do
    check "another process holds $store.db's write lock for 2.5 s" lock "$store" 2.5
    reserve "$store"
    check "a reserve meanwhile succeeds once the lock is gone: $(head -c 200 "$T/out/$store.out")" \
        is_ok "$store"
    check "which the lock held up (it ended after the lock's release began)" \
        test -e "$T/releasing"
    wait "$LOCKER"
done
check "the broker took no worker for dead" \
    test "$(grep -c 'expired' "$T/resvd.log")" = 0

# A lock longer than the deadline, and than SQLite's busy timeout.
check "another process holds reservation.db's write lock for 12 s" lock reservation 12
reserve late1 2500 &
FIRST=$!
reserve late2 2500
wait "$FIRST"
for name in late1 late2; do
    check "a reserve held up past its deadline gets a clear 504 (exit 3): $(head -c 200 "$T/out/$name.out")" \
        sh -c "[ \"\$(cat '$T/out/$name.rc')\" = 3 ] && grep -q '\"code\":504' '$T/out/$name.out'"
done
check "reads go on meanwhile (the view)" test "$(r list --resource "$RES" | js 'len(d["items"])')" -ge 1
wait "$LOCKER"
check "the reservation worker said it gave up on the lock" \
    wait_for 5 grep -q 'database is locked' "$T/resvd.log"
for name in late1 late2; do
    reserve "$name"
    check "a retry of $name once the lock is gone succeeds" is_ok "$name"
done

# Nothing half-written.
ids () { for f in "$T"/out/*.out; do js 'd["id"]' <"$f"; done | sort; }
check "each request has its own reservation (6)" test "$(ids | uniq | grep -c .)" = 6
all_confirmed () {
    [ "$(r list --resource "$RES" --status CONFIRMED --limit 100 |
         js '"\n".join(sorted(x["id"] for x in d["items"]))')" = "$(ids)" ]
}
check "the view shows each one CONFIRMED, and no other" wait_for 20 all_confirmed
holds_are () { [ "$(held "$RES" 2027-05-01)" = "$1" ]; }
check "holds equal the reservations (6 units)" wait_for 10 holds_are 6
check "the journal reads whole" journal "$T/j.json"
check "journal: one reservation.requested per reservation" \
    test "$(jq_file "$T/j.json" '"\n".join(sorted(e["reservation"] for e in d if e["type"] == "reservation.requested"))')" = "$(ids)"
check "journal: seqs run 1..N with no gap" \
    test "$(jq_file "$T/j.json" '[e["seq"] for e in d] == list(range(1, len(d) + 1))')" = true
check "no process died or was restarted" \
    test "$(pgrep -P "$RESVD_PID" | sort -n | tr '\n' ' ')" = "$PIDS_BEFORE"
finish
